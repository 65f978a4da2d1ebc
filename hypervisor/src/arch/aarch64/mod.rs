//! aarch64 at EL2 with VHE: the hypervisor (an ArceOS kernel) runs at EL2
//! with HCR_EL2.{E2H,TGE} = {1,1}, so its EL1-named register accesses reach
//! EL2; the guest runs at EL1 behind a stage-2 table in VTTBR_EL2, with
//! TGE cleared for the duration of each entry.

mod power;
mod registers;
mod vcpu;

use super::{Arch, Outcome, host_device};
use alloc::boxed::Box;
use guestaspace_core::devices::{Bus, pl011};
use guestaspace_core::runloop::Devices;

// The platform crate is only reached through ArceOS's interfaces; this
// links it in.
extern crate axplat_aarch64_qemu_virt_el2;
use guestaspace_core::addr::{GuestPhysAddr, HostPhysAddr};
use guestaspace_core::arch::setup::HwSetupError;
use guestaspace_core::layout::{GuestLayout, HostDevice, machines};
use guestaspace_core::stage2::ArmStage2;

pub struct Aarch64;

impl Arch for Aarch64 {
    type Format = ArmStage2;
    type Vcpu = vcpu::ArmVcpu;
    const DESCRIPTION: &'static str =
        "aarch64 EL2 (VHE), guest at EL1 behind a VTTBR_EL2 stage-2 table";
    const LAYOUT: GuestLayout<'static> = machines::AARCH64_VIRT;
    const HOST_DEVICES: &'static [HostDevice] = &[
        host_device("interrupt controller (GICv2)", 0x0800_0000, 0x2_0000),
        host_device("console UART (PL011)", 0x0900_0000, 0x1000),
    ];

    fn init_hardware() -> Result<(), HwSetupError> {
        registers::init()
    }

    fn new_vcpu(entry: GuestPhysAddr, stage2_root: HostPhysAddr) -> vcpu::ArmVcpu {
        vcpu::ArmVcpu::new(entry, stage2_root)
    }

    fn boot_pages() -> impl Iterator<Item = (GuestPhysAddr, [u64; 512])> {
        // The guest starts with its MMU off: nothing to prepare.
        core::iter::empty()
    }

    fn invalidate_guest_page(gpa: GuestPhysAddr) {
        registers::invalidate_ipa(gpa);
    }

    /// The PL011 console of QEMU `virt`, emulated at its address.
    fn devices() -> Devices {
        let mut bus = Bus::new();
        bus.add(
            GuestPhysAddr::new(pl011::QEMU_VIRT_BASE),
            pl011::PL011_SIZE,
            Box::new(pl011::Pl011::new()),
            None,
        )
        .expect("the PL011 fits on an empty bus");
        Devices::new(bus, 0)
    }

    /// No host tick yet: the guest only exits by itself.
    const HOST_TICK_NS: u64 = 0;

    fn power_off(outcome: Outcome) -> ! {
        power::power_off(outcome)
    }
}
