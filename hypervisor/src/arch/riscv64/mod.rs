//! riscv64 with the H extension: the guest runs in VS-mode behind an
//! Sv39x4 G-stage table in `hgatp`; traps from the guest come to HS-mode,
//! where this hypervisor (an ArceOS S-mode kernel) runs.

mod hardware;
mod mmio;
mod power;
mod timer;
mod vcpu;

use super::{Arch, BootPlan, Outcome};
use crate::boot_inputs::BootInputs;
use crate::error::HvError;
use guestaspace_core::addr::{GuestPhysAddr, HostPhysAddr};
use guestaspace_core::arch::riscv64::{dtb, linux_image};
use guestaspace_core::arch::setup::HwSetupError;
use guestaspace_core::layout::GuestLayout;
use guestaspace_core::machine::{self, Board, CpuWiring};
use guestaspace_core::stage2::Sv39x4;

pub struct Riscv64;

impl Arch for Riscv64 {
    type Format = Sv39x4;
    type Vcpu = vcpu::RiscvVcpu;
    const DESCRIPTION: &'static str =
        "riscv64 H extension, guest in VS-mode behind an Sv39x4 G-stage";
    const BOARD: Board = machine::RISCV64_VIRT;

    fn init_hardware() -> Result<(), HwSetupError> {
        hardware::init()
    }

    /// Where the guest's device tree is (what `a1` holds at entry).
    type Start = GuestPhysAddr;

    /// A Linux RISC-V `Image` (its header's magic) is booted as its boot
    /// protocol says: at the layout's entry, which must be `text_offset`
    /// above RAM's 2 MiB-aligned base, with the device tree at the top of
    /// RAM and the initrd below it, both named in the tree's `/chosen`.
    /// Any other image is placed whole at the entry, like OpenSBI starting
    /// an S-mode payload, with the tree at the top of RAM. Either way the
    /// tree is generated from the layout (RAM of the `--mem` size, the
    /// emulated PLIC and UART) and its address is `a1`.
    fn boot_plan(
        image: &[u8],
        layout: &GuestLayout,
        inputs: BootInputs,
    ) -> Result<BootPlan<GuestPhysAddr>, HvError> {
        let tree = |initrd| {
            let config = dtb::DtbConfig {
                bootargs: inputs.cmdline.as_deref(),
                initrd,
                cpus: inputs.cpus,
                ..dtb::DtbConfig::QEMU_VIRT
            };
            dtb::riscv64_dtb(&Self::BOARD, layout, &config)
                .map_err(|e| HvError::DeviceTree(alloc::format!("{e}")))
        };
        let kernel = crate::linux_boot::Kernel {
            file: crate::linux_boot::KernelFile {
                kind: "RISC-V",
                path: inputs.kernel,
                image,
            },
            header: linux_image::ImageHeader::parse(image).ok(),
        };
        crate::linux_boot::boot_plan(
            kernel,
            layout,
            inputs.initrd,
            |header, ram, initrd_len, dtb_len| {
                header
                    .plan_boot(ram, layout.entry, image.len() as u64, initrd_len, dtb_len)
                    .map_err(|e| alloc::format!("{e}"))
            },
            tree,
        )
    }

    fn new_vcpu(
        plan: &BootPlan<GuestPhysAddr>,
        stage2_root: HostPhysAddr,
        wiring: CpuWiring,
    ) -> vcpu::RiscvVcpu {
        vcpu::RiscvVcpu::new(0, plan.entry, plan.start, stage2_root, wiring)
    }

    fn new_secondary_vcpu(
        index: usize,
        stage2_root: HostPhysAddr,
        wiring: CpuWiring,
    ) -> vcpu::RiscvVcpu {
        let nowhere = GuestPhysAddr::new(0);
        vcpu::RiscvVcpu::new(index, nowhere, nowhere, stage2_root, wiring)
    }

    /// The H-extension registers are per hart.
    fn init_cpu() -> Result<(), HwSetupError> {
        hardware::init()
    }

    fn invalidate_guest_page(gpa: GuestPhysAddr) {
        hardware::hfence_gvma_page(gpa);
    }

    const HOST_TICK_NS: u64 = timer::HOST_TICK_NS;

    fn power_off(outcome: Outcome) -> ! {
        power::power_off(outcome)
    }
}
