//! aarch64 at EL2 with VHE: the hypervisor (an ArceOS kernel) runs at EL2
//! with HCR_EL2.{E2H,TGE} = {1,1}, so its EL1-named register accesses reach
//! EL2; the guest runs at EL1 behind a stage-2 table in VTTBR_EL2, with
//! TGE cleared for the duration of each entry.

mod power;
mod registers;
mod timer;
mod vcpu;

use super::{Arch, BootPlan, Outcome};
use crate::boot_inputs::BootInputs;
use crate::error::HvError;
use alloc::format;
use guestaspace_core::arch::aarch64::{dtb, linux_image};

// The platform crate is only reached through ArceOS's interfaces; this
// links it in.
extern crate axplat_aarch64_qemu_virt_el2;
use guestaspace_core::addr::{GuestPhysAddr, HostPhysAddr};
use guestaspace_core::arch::setup::HwSetupError;
use guestaspace_core::layout::GuestLayout;
use guestaspace_core::machine::{self, Board, CpuWiring};
use guestaspace_core::stage2::ArmStage2;

pub struct Aarch64;

impl Arch for Aarch64 {
    type Format = ArmStage2;
    type Vcpu = vcpu::ArmVcpu;
    const DESCRIPTION: &'static str =
        "aarch64 EL2 (VHE), guest at EL1 behind a VTTBR_EL2 stage-2 table";
    const BOARD: Board = machine::AARCH64_VIRT;

    fn init_hardware() -> Result<(), HwSetupError> {
        registers::init()?;
        axplat_aarch64_qemu_virt_el2::gic::init();
        Ok(())
    }

    /// The device tree's address, for `x0`.
    type Start = GuestPhysAddr;

    /// A Linux arm64 `Image` (its header's magic) is booted as its boot
    /// protocol says: at its `text_offset` above a 2 MiB boundary, with the
    /// initrd and the device tree above it, `x0` = the tree. Any other
    /// image is placed whole at the layout's entry, with the tree at the
    /// top of RAM in `x0` too.
    fn boot_plan(
        image: &[u8],
        layout: &GuestLayout,
        inputs: BootInputs,
    ) -> Result<BootPlan<GuestPhysAddr>, HvError> {
        let tree_error = |e: dtb::DtbError| HvError::DeviceTree(format!("{e}"));
        let tree = |initrd| {
            let config = dtb::DtbConfig {
                bootargs: inputs.cmdline.as_deref(),
                initrd,
                cpus: inputs.cpus,
            };
            dtb::aarch64_dtb(&Self::BOARD, layout, &config).map_err(tree_error)
        };
        let kernel = crate::linux_boot::Kernel {
            file: crate::linux_boot::KernelFile {
                kind: "arm64",
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
                    .plan_boot(ram, image.len() as u64, initrd_len, dtb_len)
                    .map_err(|e| format!("{e}"))
            },
            tree,
        )
    }

    fn new_vcpu(
        plan: &BootPlan<GuestPhysAddr>,
        stage2_root: HostPhysAddr,
        wiring: CpuWiring,
    ) -> vcpu::ArmVcpu {
        vcpu::ArmVcpu::new(0, plan.entry, plan.start.as_u64(), stage2_root, wiring)
    }

    fn new_secondary_vcpu(
        index: usize,
        stage2_root: HostPhysAddr,
        wiring: CpuWiring,
    ) -> vcpu::ArmVcpu {
        vcpu::ArmVcpu::new(index, GuestPhysAddr::new(0), 0, stage2_root, wiring)
    }

    /// EL2's registers and the GIC's CPU interface are per CPU.
    fn init_cpu() -> Result<(), HwSetupError> {
        registers::init_cpu()?;
        axplat_aarch64_qemu_virt_el2::gic::init_secondary();
        Ok(())
    }

    fn invalidate_guest_page(gpa: GuestPhysAddr) {
        registers::invalidate_ipa(gpa);
    }

    fn publish_guest_frame(frame: *const u8) {
        registers::clean_to_poc(frame);
    }

    const HOST_TICK_NS: u64 = timer::HOST_TICK_NS;

    fn power_off(outcome: Outcome) -> ! {
        power::power_off(outcome)
    }
}
