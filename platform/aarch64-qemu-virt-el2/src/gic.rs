//! The host's own use of the physical GICv2: the hypervisor takes no
//! interrupts while it runs (its DAIF stays masked), but while the guest
//! runs, a physical interrupt (routed to EL2 by HCR_EL2.IMO) ends the
//! guest's time slice as an exit. It enables two interrupts: its EL2
//! physical timer's, which it arms for the guest's timer deadline and its
//! own periodic tick, and the EL1 virtual timer's, the timer the guest
//! drives itself (its registers are not trapped), whose interrupt the
//! hypervisor forwards to the guest's emulated GIC. The register work is `arm-gic-driver`'s (the driver
//! ArceOS's peripherals crate uses, which exposes its GIC module only with
//! host interrupts on).

use crate::config::devices::{GICC_PADDR, GICD_PADDR};
use arm_gic_driver::IntId;
use arm_gic_driver::v2::{Ack, CpuInterface, Gic, SGITarget, TargetList, VirtAddr};
use axplat::mem::{pa, phys_to_virt};

/// The EL2 physical timer's interrupt, PPI 10 (INTID 26) on QEMU `virt`.
pub const HYP_TIMER_INTID: u32 = 26;
/// The EL1 virtual timer's interrupt, PPI 11 (INTID 27) on QEMU `virt`.
pub const VIRT_TIMER_INTID: u32 = 27;

/// The SGI one host CPU sends another to make it leave its guest (a
/// kick, for a vCPU that has work posted) or its wait.
pub const KICK_SGI: u32 = 1;

/// The GIC's CPU interface (banked: the same registers reach each CPU's
/// own), once [`init`] has run.
static mut CPU_INTERFACE: Option<CpuInterface> = None;
/// The distributor, once [`init`] has run: SGIs are sent through it.
static mut DISTRIBUTOR: Option<Gic> = None;

/// Brings up the distributor and this CPU's interface and enables the EL2
/// physical timer's interrupt. Call once, before the first guest entry.
pub fn init() {
    let gicd = VirtAddr::new(phys_to_virt(pa!(GICD_PADDR)).as_usize());
    let gicc = VirtAddr::new(phys_to_virt(pa!(GICC_PADDR)).as_usize());
    // SAFETY: the linear map covers the GIC's MMIO ranges (the platform's
    // `mmio-ranges`), and the hypervisor is the only user of the GIC.
    let mut gic = unsafe { Gic::new(gicd, gicc, None) };
    gic.init();
    let mut cpu = gic.cpu_interface();
    cpu.init_current_cpu();
    cpu.set_eoi_mode_ns(false);
    // SAFETY: called once on the boot CPU before any reader, and before
    // the secondary CPUs start.
    unsafe {
        CPU_INTERFACE = Some(cpu);
        DISTRIBUTOR = Some(gic);
    }
    enable_private_interrupts();
}

/// The calling CPU's share of the set-up (its interface and its banked
/// private interrupts), for a secondary CPU once [`init`] has run on the
/// boot CPU.
pub fn init_secondary() {
    // SAFETY: written once by `init` on the boot CPU before this CPU was
    // started; the interface registers are banked, so each CPU's
    // initialisation touches only its own.
    let Some(cpu) = (unsafe { (*core::ptr::addr_of_mut!(CPU_INTERFACE)).as_mut() }) else {
        return;
    };
    cpu.init_current_cpu();
    cpu.set_eoi_mode_ns(false);
    enable_private_interrupts();
}

/// Enables the calling CPU's banked interrupts: its EL2 and virtual
/// timers' PPIs and the kick SGI.
fn enable_private_interrupts() {
    set_ppi_enabled(HYP_TIMER_INTID, true);
    set_ppi_enabled(VIRT_TIMER_INTID, true);
    // SAFETY: as in `take_irq`.
    if let Some(cpu) = unsafe { (*core::ptr::addr_of!(CPU_INTERFACE)).as_ref() } {
        cpu.set_irq_enable(IntId::sgi(KICK_SGI), true);
    }
}

/// Sends the kick SGI to host CPU `cpu` (its GIC CPU interface number,
/// which is its index on QEMU `virt`).
pub fn send_kick(cpu: usize) {
    // SAFETY: written once by `init` before any CPU kicks another; an SGIR
    // write is one register store, safe from any CPU at any time.
    let Some(gic) = (unsafe { (*core::ptr::addr_of!(DISTRIBUTOR)).as_ref() }) else {
        return;
    };
    gic.send_sgi(
        IntId::sgi(KICK_SGI),
        SGITarget::TargetList(TargetList::new(core::iter::once(cpu))),
    );
}

/// Enables or disables the private interrupt `intid` (16..32) at the
/// distributor: the hypervisor masks a level-triggered interrupt it has
/// handed to the guest until the guest has dealt with its source.
pub fn set_ppi_enabled(intid: u32, enable: bool) {
    // SAFETY: as in `take_irq`.
    let Some(cpu) = (unsafe { (*core::ptr::addr_of!(CPU_INTERFACE)).as_ref() }) else {
        return;
    };
    cpu.set_irq_enable(IntId::ppi(intid - 16), enable);
}

/// Acknowledges and completes the pending physical interrupt; returns its
/// INTID, or `None` if there was none (spurious) or [`init`] never ran.
pub fn take_irq() -> Option<u32> {
    // SAFETY: written once by `init` before the first guest entry, then
    // only read, on the one CPU.
    let cpu = unsafe { (*core::ptr::addr_of!(CPU_INTERFACE)).as_ref()? };
    let ack = cpu.ack();
    if ack.is_special() {
        return None;
    }
    cpu.eoi(ack);
    Some(match ack {
        Ack::Other(intid) | Ack::SGI { intid, .. } => intid.to_u32(),
    })
}
