//! x86_64 with AMD SVM: the guest runs in long mode under VMRUN, its
//! guest-physical memory translated by nested page tables (`nCR3`); every
//! intercepted event comes back as a #VMEXIT with a code in the VMCB.

mod power;
mod svm;
mod vcpu;

use super::{Arch, Outcome, host_device};
use core::sync::atomic::{AtomicBool, Ordering};
use guestaspace_core::addr::{GuestPhysAddr, HostPhysAddr};
use guestaspace_core::arch::setup::HwSetupError;
use guestaspace_core::arch::x86_64::boot;
use guestaspace_core::devices::Bus;
use guestaspace_core::layout::{GuestLayout, HostDevice, machines};
use guestaspace_core::runloop::Devices;
use guestaspace_core::stage2::Npt;

pub struct X86_64;

/// Set when a nested mapping changed; the next VMRUN flushes the guest's
/// TLB entries (TLB_CONTROL) and clears it.
static FLUSH_GUEST_TLB: AtomicBool = AtomicBool::new(false);

impl Arch for X86_64 {
    type Format = Npt;
    type Vcpu = vcpu::SvmVcpu;
    const DESCRIPTION: &'static str =
        "x86_64 AMD SVM, guest in long mode behind nested page tables";
    const LAYOUT: GuestLayout<'static> = machines::X86_64_Q35;
    const HOST_DEVICES: &'static [HostDevice] = &[
        host_device("I/O APIC", 0xfec0_0000, 0x1000),
        host_device("local APIC", 0xfee0_0000, 0x1000),
    ];

    fn init_hardware() -> Result<(), HwSetupError> {
        svm::enable()
    }

    fn new_vcpu(entry: GuestPhysAddr, stage2_root: HostPhysAddr) -> vcpu::SvmVcpu {
        vcpu::SvmVcpu::new(entry, stage2_root)
    }

    fn boot_pages() -> impl Iterator<Item = (GuestPhysAddr, [u64; 512])> {
        boot::pages()
    }

    fn invalidate_guest_page(_gpa: GuestPhysAddr) {
        // SVM has no per-page nested-TLB flush without INVLPGB; flushing
        // the guest's ASID on the next VMRUN covers every change.
        FLUSH_GUEST_TLB.store(true, Ordering::Relaxed);
    }

    /// No device is emulated on this architecture yet: the bus is empty,
    /// so no guest access ever reaches it.
    fn devices() -> Devices {
        Devices::new(Bus::new(), 0)
    }

    /// No host tick yet: the guest only exits by itself.
    const HOST_TICK_NS: u64 = 0;

    fn power_off(outcome: Outcome) -> ! {
        power::power_off(outcome)
    }
}
