//! riscv64 with the H extension: the guest runs in VS-mode behind an
//! Sv39x4 G-stage table in `hgatp`; traps from the guest come to HS-mode,
//! where this hypervisor (an ArceOS S-mode kernel) runs.

mod hardware;
mod mmio;
mod power;
mod timer;
mod vcpu;

use super::{Arch, BootPlan, Outcome, host_device};
use crate::boot_inputs::BootInputs;
use crate::error::HvError;
use alloc::boxed::Box;
use guestaspace_core::devices::Bus;
use guestaspace_core::devices::plic::{PLIC_SIZE, Plic, S_MODE_CONTEXT};
use guestaspace_core::devices::uart16550::Uart16550;
use guestaspace_core::runloop::Devices;

/// The UART's PLIC source on QEMU `virt`.
const UART_IRQ: u32 = 10;
use guestaspace_core::addr::{GuestPhysAddr, HostPhysAddr};
use guestaspace_core::arch::riscv64::{dtb, linux_image};
use guestaspace_core::arch::setup::HwSetupError;
use guestaspace_core::layout::{GuestLayout, HostDevice, machines};
use guestaspace_core::stage2::Sv39x4;

pub struct Riscv64;

impl Arch for Riscv64 {
    type Format = Sv39x4;
    type Vcpu = vcpu::RiscvVcpu;
    const DESCRIPTION: &'static str =
        "riscv64 H extension, guest in VS-mode behind an Sv39x4 G-stage";
    const LAYOUT: GuestLayout<'static> = machines::RISCV64_VIRT;
    const HOST_DEVICES: &'static [HostDevice] = &[
        host_device("power-off device (sifive,test)", 0x0010_0000, 0x1000),
        host_device("interrupt controller (PLIC)", 0x0c00_0000, 0x60_0000),
        host_device("console UART", 0x1000_0000, 0x1000),
    ];

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
                ..dtb::DtbConfig::QEMU_VIRT
            };
            dtb::riscv64_dtb(layout, &config)
                .map_err(|e| HvError::DeviceTree(alloc::format!("{e}")))
        };
        crate::linux_boot::boot_plan(
            "RISC-V",
            inputs.kernel,
            image,
            layout,
            inputs.initrd,
            linux_image::ImageHeader::parse(image).ok(),
            |header, ram, initrd_len, dtb_len| {
                header
                    .plan_boot(ram, layout.entry, image.len() as u64, initrd_len, dtb_len)
                    .map_err(|e| alloc::format!("{e}"))
            },
            tree,
        )
    }

    fn new_vcpu(plan: &BootPlan<GuestPhysAddr>, stage2_root: HostPhysAddr) -> vcpu::RiscvVcpu {
        vcpu::RiscvVcpu::new(plan.entry, plan.start, stage2_root)
    }

    fn invalidate_guest_page(gpa: GuestPhysAddr) {
        hardware::hfence_gvma_page(gpa);
    }

    /// QEMU `virt`'s PLIC and 16550 UART, emulated: the UART is wired to
    /// PLIC source 10, and the PLIC's S-mode context of hart 0 (the one a
    /// supervisor kernel uses) drives the guest's `hvip.VSEIP`.
    fn devices() -> Devices {
        let mut bus = Bus::new();
        let plic = bus
            .add(
                GuestPhysAddr::new(0x0c00_0000),
                PLIC_SIZE,
                Box::new(Plic::new()),
                None,
            )
            .expect("the PLIC range is free");
        bus.set_irq_chip(plic).expect("the PLIC was just added");
        bus.add(
            GuestPhysAddr::new(0x1000_0000),
            0x100,
            Box::new(Uart16550::new()),
            Some(UART_IRQ),
        )
        .expect("the UART range is free");
        Devices::new(bus, S_MODE_CONTEXT)
    }

    const HOST_TICK_NS: u64 = timer::HOST_TICK_NS;

    fn power_off(outcome: Outcome) -> ! {
        power::power_off(outcome)
    }
}
