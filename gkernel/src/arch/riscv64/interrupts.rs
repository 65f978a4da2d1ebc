//! Real interrupts in the guest, through its own trap vector: the timer the
//! hypervisor injects (`hvip.VSTIP`) and the emulated UART's receive
//! interrupt, routed by the emulated PLIC (`hvip.VSEIP`).
//!
//! This kernel is built without ArceOS's `irq` feature, so nothing else
//! expects interrupts. [`wait_for`] installs a small vector of its own for
//! the duration of one wait, enables the asked-for interrupt, sleeps in
//! `wfi` until the vector has run, and puts everything back.

use core::sync::atomic::{AtomicU64, Ordering};
use riscv::register::{sie, sstatus};

/// `scause` of the last interrupt the vector took (0: none yet).
#[unsafe(no_mangle)]
static GKERNEL_TRAP_CAUSE: AtomicU64 = AtomicU64::new(0);

core::arch::global_asm!(
    // gkernel_irq_vector: the trap vector while `wait_for` waits.
    //   in:  any interrupt with sstatus.SIE = 1
    //   out: stores scause in GKERNEL_TRAP_CAUSE, masks the supervisor
    //        timer and external interrupts in sie (the waiting code
    //        unmasks what it needs again), returns with sret.
    //   clobbers nothing: t0 and t1 are saved on the interrupted stack.
    ".balign 4",
    ".global gkernel_irq_vector",
    "gkernel_irq_vector:",
    "    addi sp, sp, -16",
    "    sd   t0, 0(sp)",
    "    sd   t1, 8(sp)",
    "    li   t0, 0x220",
    "    csrc sie, t0",
    "    csrr t0, scause",
    "    la   t1, GKERNEL_TRAP_CAUSE",
    "    sd   t0, 0(t1)",
    "    ld   t0, 0(sp)",
    "    ld   t1, 8(sp)",
    "    addi sp, sp, 16",
    "    sret",
);

unsafe extern "C" {
    fn gkernel_irq_vector();
}

/// The interrupt bit of `scause` on RV64.
const INTERRUPT: u64 = 1 << 63;
/// Supervisor timer interrupt code (Privileged spec, `scause` table).
pub const TIMER: u64 = INTERRUPT | 5;
/// Supervisor external interrupt code.
pub const EXTERNAL: u64 = INTERRUPT | 9;

/// Which interrupt [`wait_for`] enables.
#[derive(Clone, Copy)]
pub enum Source {
    /// The supervisor timer (`sie.STIE`).
    Timer,
    /// Supervisor external interrupts from the PLIC (`sie.SEIE`).
    External,
}

/// Enables `source`, sleeps until an interrupt arrives through this
/// kernel's own vector, and returns its `scause`.
pub fn wait_for(source: Source) -> u64 {
    GKERNEL_TRAP_CAUSE.store(0, Ordering::SeqCst);
    let saved: usize;
    // SAFETY: the vector saves what it touches and returns with sret; the
    // original vector is back before this function returns, and interrupts
    // are enabled only between the two.
    unsafe {
        core::arch::asm!("csrrw {saved}, stvec, {new}", saved = out(reg) saved,
            new = in(reg) gkernel_irq_vector as *const () as usize);
        match source {
            Source::Timer => sie::set_stimer(),
            Source::External => sie::set_sext(),
        }
        sstatus::set_sie();
    }
    let cause = loop {
        let cause = GKERNEL_TRAP_CAUSE.load(Ordering::SeqCst);
        if cause != 0 {
            break cause;
        }
        riscv::asm::wfi();
    };
    // SAFETY: as above; the vector already masked the source in sie.
    unsafe {
        sstatus::clear_sie();
        core::arch::asm!("csrw stvec, {}", in(reg) saved);
    }
    cause
}
