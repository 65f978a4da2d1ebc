//! The `smp` and `smp-fault` scenarios (riscv64, aarch64; the VM has 2
//! vCPUs): this kernel runs on CPU 0 and starts CPU 1 through its
//! firmware interface (SBI HSM, PSCI) at a small program of its own
//! (`arch::smp`'s `gkernel_secondary_entry`, run with the MMU off), which
//! reports through a mailbox in RAM and answers each IPI with one back.
//! Every answer the firmware gives is printed as a number, for the
//! end-to-end case to check against the spec's.

use crate::arch::smp as cpu;
use axhal::mem::{VirtAddr, virt_to_phys};
use core::sync::atomic::{AtomicU64, Ordering};

/// What CPU 1 and this CPU share, at fixed offsets its program uses.
#[repr(C, align(64))]
struct Mailbox {
    /// CPU 1's MPIDR Aff0 / hart id plus one, once it runs.
    started: AtomicU64,
    /// The argument it found in its first argument register (`a1`, `x0`).
    arg: AtomicU64,
    /// IPIs it took.
    ipis: AtomicU64,
    /// Non-zero: on its next IPI it reads an undeclared address.
    fault: AtomicU64,
}

static MAILBOX: Mailbox = Mailbox {
    started: AtomicU64::new(0),
    arg: AtomicU64::new(0),
    ipis: AtomicU64::new(0),
    fault: AtomicU64::new(0),
};

/// IPIs each way.
const ROUNDS: u64 = 100;

/// A mailbox word as CPU 1 last wrote it (its program runs with the MMU,
/// and so the caches, off).
fn read(word: &AtomicU64) -> u64 {
    cpu::before_read(word.as_ptr() as usize);
    word.load(Ordering::SeqCst)
}

/// Waits until `done` holds (CPU 1 runs on a host CPU of its own).
fn wait(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200_000_000u64 {
        if done() {
            return;
        }
        core::hint::spin_loop();
    }
    panic!("scenario smp: timed out waiting for {what}");
}

pub fn scenario(fault: bool) {
    let mailbox = virt_to_phys(VirtAddr::from(&MAILBOX as *const Mailbox as usize)).as_usize();
    let entry = virt_to_phys(VirtAddr::from(cpu::secondary_entry())).as_usize();
    println!("Scenario smp: starting CPU 1 through {}", cpu::FIRMWARE);
    cpu::prepare();
    let start = |target: usize, at: usize| cpu::start_cpu(target, at, mailbox);
    println!(
        "start CPU 1 at {:#x} (outside RAM): {}",
        crate::arch::OUTSIDE_RAM,
        start(1, crate::arch::OUTSIDE_RAM)
    );
    println!("start CPU 5 (no such CPU): {}", start(5, entry));
    println!("CPU 1's state before: {}", cpu::cpu_state(1));
    println!("start CPU 1: {}", start(1, entry));
    println!("start CPU 1 again: {}", start(1, entry));
    println!("start CPU 0 (this one): {}", start(0, entry));
    wait("CPU 1 to run", || read(&MAILBOX.started) != 0);
    println!(
        "CPU 1 runs: it is CPU {}, its argument {} the mailbox",
        read(&MAILBOX.started) - 1,
        if read(&MAILBOX.arg) == mailbox as u64 {
            "is"
        } else {
            "is not"
        }
    );
    println!("CPU 1's state after: {}", cpu::cpu_state(1));
    if fault {
        MAILBOX.fault.store(1, Ordering::SeqCst);
        cpu::clean(MAILBOX.fault.as_ptr() as usize);
        println!("asking CPU 1 to read an undeclared address");
        cpu::send_ipi(1);
        wait("the VM to stop", || false);
        return;
    }
    let start = cpu::now();
    for round in 1..=ROUNDS {
        cpu::send_ipi(1);
        // Halted until CPU 1's IPI arrives, so that under `-icount` (one
        // host thread runs the vCPUs in turn) the round trip counts the
        // instructions of the IPI path, not of a wait loop.
        wait("CPU 1's IPI", || {
            cpu::wait_for_interrupt();
            cpu::take_ipi()
        });
        assert!(
            read(&MAILBOX.ipis) >= round,
            "CPU 1's IPI came before it counted mine"
        );
    }
    let ticks = cpu::now() - start;
    println!("{ROUNDS} IPIs to CPU 1 and {ROUNDS} back, none lost");
    // Nanoseconds by the guest's own counter; under QEMU's `-icount
    // shift=0`, instructions.
    let ns = u128::from(ticks) * 1_000_000_000 / u128::from(cpu::counter_hz()) / u128::from(ROUNDS);
    println!("IPI round trip: {ns} ns (mean of {ROUNDS})");
    cpu::remote_fences();
}
