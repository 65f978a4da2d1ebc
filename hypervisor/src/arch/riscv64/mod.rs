//! riscv64 with the H extension: the guest runs in VS-mode behind an
//! Sv39x4 G-stage table in `hgatp`; traps from the guest come to HS-mode,
//! where this hypervisor (an ArceOS S-mode kernel) runs.

mod hardware;
mod power;
mod vcpu;

use super::{Arch, Outcome};
use guestaspace_core::addr::{GuestPhysAddr, HostPhysAddr};
use guestaspace_core::arch::setup::HwSetupError;
use guestaspace_core::layout::{GuestLayout, machines};
use guestaspace_core::stage2::Sv39x4;

pub struct Riscv64;

impl Arch for Riscv64 {
    type Format = Sv39x4;
    type Vcpu = vcpu::RiscvVcpu;
    const DESCRIPTION: &'static str =
        "riscv64 H extension, guest in VS-mode behind an Sv39x4 G-stage";
    const LAYOUT: GuestLayout = machines::RISCV64_VIRT;

    fn init_hardware() -> Result<(), HwSetupError> {
        hardware::init()
    }

    fn new_vcpu(entry: GuestPhysAddr, stage2_root: HostPhysAddr) -> vcpu::RiscvVcpu {
        vcpu::RiscvVcpu::new(entry, stage2_root)
    }

    fn boot_pages() -> impl Iterator<Item = (GuestPhysAddr, [u64; 512])> {
        // The guest boots like an S-mode kernel: nothing to prepare.
        core::iter::empty()
    }

    fn invalidate_guest_page(gpa: GuestPhysAddr) {
        hardware::hfence_gvma_page(gpa);
    }

    fn power_off(outcome: Outcome) -> ! {
        power::power_off(outcome)
    }
}
