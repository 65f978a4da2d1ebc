//! The hypervisor's own timer on x86_64: the host's local APIC timer
//! (one-shot), armed for the earlier of the guest's APIC-timer
//! deadline and a 10 ms host tick. While the guest runs, its interrupt is a
//! physical INTR, which SVM turns into `#VMEXIT(INTR)` (the guest's own
//! IF does not hold it back: V_INTR_MASKING). Back in the host, with GIF
//! set again, a one-instruction `sti` window lets the CPU take it through
//! ArceOS's IDT into [`host_irq`], which completes it (EOI).
//!
//! The host APIC is in whichever mode ArceOS's platform left it: x2APIC
//! (MSR 0x800 + offset / 16) if the CPU has it, else xAPIC (the page at
//! IA32_APIC_BASE; QEMU's EPYC model has no x2APIC under TCG). Registers
//! (Intel SDM vol. 3, 11.4.1 "The Local APIC Block Diagram", table "Local
//! APIC Register Address Map"; AMD APM vol. 2, 16.3): EOI at 0xB0, LVT
//! timer 0x320, initial count 0x380, current count 0x390, divide
//! configuration 0x3E0. The timer's rate is measured against the TSC once
//! ([`calibrate`]): the hypervisor's clock is the TSC at the rate ArceOS's
//! platform assumes, which need not be the true one, so deadlines are
//! converted through TSC ticks, not through nanoseconds.

use axhal::mem::{PhysAddr, phys_to_virt};
use axhal::time::{monotonic_time_nanos, nanos_to_ticks};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use x86_64::registers::model_specific::Msr;

/// Period of the hypervisor's own tick: 10 ms.
pub const HOST_TICK_NS: u64 = 10_000_000;

/// The host timer's vector: ArceOS's own APIC timer vector, which its IDT
/// routes to the IRQ trap slot.
const VECTOR: u32 = 0xf0;
/// Register offsets in the xAPIC page (x2APIC MSR = 0x800 + offset / 16).
const EOI: u32 = 0xb0;
const LVT_TIMER: u32 = 0x320;
const INITIAL_COUNT: u32 = 0x380;
const CURRENT_COUNT: u32 = 0x390;
const DIVIDE: u32 = 0x3e0;
/// IA32_APIC_BASE and its EXTD bit (x2APIC mode, bit 10) and base field.
const MSR_APIC_BASE: u32 = 0x1b;
const APIC_BASE_EXTD: u64 = 1 << 10;
const APIC_BASE_ADDR: u64 = 0x000f_ffff_ffff_f000;
/// Divide configuration 0b1011: divide by 1.
const DIVIDE_BY_1: u32 = 0b1011;

/// Set by [`host_irq`] when the host timer's interrupt was taken.
static FIRED: AtomicBool = AtomicBool::new(false);
/// APIC timer ticks per TSC tick, as a 32.32 fixed-point number.
static APIC_PER_TSC: AtomicU64 = AtomicU64::new(1 << 32);
/// LVT timer mask bit (bit 16).
const LVT_MASKED: u32 = 1 << 16;

/// The host APIC's register page (kernel address), or 0 in x2APIC mode;
/// learned once by [`calibrate`] (the mode never changes after ArceOS's
/// platform set it up), so arming the timer reads no MSR.
static XAPIC_PAGE: AtomicUsize = AtomicUsize::new(0);

/// Reads IA32_APIC_BASE and notes where the host APIC's registers are.
fn find_apic() {
    // SAFETY: reading IA32_APIC_BASE has no side effects.
    let base = unsafe { Msr::new(MSR_APIC_BASE).read() };
    let page = if base & APIC_BASE_EXTD == 0 {
        phys_to_virt(PhysAddr::from((base & APIC_BASE_ADDR) as usize)).as_usize()
    } else {
        0
    };
    XAPIC_PAGE.store(page, Ordering::Relaxed);
}

/// The host APIC's register page, or `None` in x2APIC mode.
fn xapic_page() -> Option<*mut u8> {
    match XAPIC_PAGE.load(Ordering::Relaxed) {
        0 => None,
        page => Some(page as *mut u8),
    }
}

/// Reads the host APIC register at `offset`, in its current mode.
fn read_reg(offset: u32) -> u32 {
    match xapic_page() {
        // SAFETY: as in `write_reg`: the mapped, aligned xAPIC page.
        Some(page) => unsafe { page.add(offset as usize).cast::<u32>().read_volatile() },
        // SAFETY: an x2APIC register of the host's own APIC.
        None => unsafe { Msr::new(0x800 + offset / 16).read() as u32 },
    }
}

/// Measures the APIC timer's rate against the TSC: counts down from the
/// top for about ten million TSC ticks, masked. Call once, at start.
pub fn calibrate() {
    const TSC_SPAN: u64 = 10_000_000;
    find_apic();
    write_reg(DIVIDE, DIVIDE_BY_1);
    write_reg(LVT_TIMER, LVT_MASKED | VECTOR);
    write_reg(INITIAL_COUNT, u32::MAX);
    // SAFETY: RDTSC has no side effects.
    let start = unsafe { core::arch::x86_64::_rdtsc() };
    // SAFETY: as above.
    while unsafe { core::arch::x86_64::_rdtsc() } - start < TSC_SPAN {
        core::hint::spin_loop();
    }
    let counted = u64::from(u32::MAX - read_reg(CURRENT_COUNT));
    write_reg(INITIAL_COUNT, 0);
    APIC_PER_TSC.store((counted << 32) / TSC_SPAN, Ordering::Relaxed);
}

/// Writes the host APIC register at `offset`, in its current mode.
fn write_reg(offset: u32, value: u32) {
    match xapic_page() {
        // SAFETY: the xAPIC page is in the platform's MMIO ranges, mapped
        // by the linear map; registers are 32-bit and 16-byte aligned.
        Some(page) => unsafe {
            page.add(offset as usize)
                .cast::<u32>()
                .write_volatile(value)
        },
        // SAFETY: an x2APIC register of the host's own APIC.
        None => unsafe { Msr::new(0x800 + offset / 16).write(u64::from(value)) },
    }
}

/// Completes any host interrupt taken in [`take_pending`]'s window; notes
/// the timer's.
#[axhal::trap::register_trap_handler(axhal::trap::IRQ)]
fn host_irq(vector: usize) -> bool {
    if vector == VECTOR as usize {
        FIRED.store(true, Ordering::Relaxed);
    }
    // Writing 0 to EOI completes the interrupt in service; nothing else.
    write_reg(EOI, 0);
    true
}

/// Arms the host APIC timer to fire at `deadline_ns` (the hypervisor's
/// clock), or at once if that has passed.
pub fn arm(deadline_ns: u64) {
    let tsc = nanos_to_ticks(deadline_ns.saturating_sub(monotonic_time_nanos()));
    let apic = (u128::from(tsc) * u128::from(APIC_PER_TSC.load(Ordering::Relaxed))) >> 32;
    let count = apic.clamp(1, u128::from(u32::MAX)) as u32;
    // The host's APIC timer is the hypervisor's alone (ArceOS's runs
    // without its `irq` feature here): one-shot mode, unmasked.
    write_reg(DIVIDE, DIVIDE_BY_1);
    write_reg(LVT_TIMER, VECTOR);
    write_reg(INITIAL_COUNT, count);
}

/// After an INTR exit: lets the pending host interrupt in (and out again,
/// through [`host_irq`]); says whether it was the timer's.
pub fn take_pending() -> bool {
    // SAFETY: the host's IDT handles every vector; interrupts are enabled
    // for one instruction only (`sti` takes effect after `nop`).
    unsafe { core::arch::asm!("sti", "nop", "cli") };
    FIRED.swap(false, Ordering::Relaxed)
}
