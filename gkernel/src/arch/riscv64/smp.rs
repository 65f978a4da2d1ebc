//! The riscv64 side of the `smp` scenarios (`crate::smp`): SBI HSM, IPI
//! and RFENCE calls through `sbi-rt`, and the program hart 1 runs.

use sbi_rt::HartMask;

/// The firmware interface, for the scenario's first line.
pub const FIRMWARE: &str = "SBI HSM";

core::arch::global_asm!(
    // gkernel_secondary_entry: hart 1's program (SBI HSM hart_start).
    //   in:  a0 = its hart id, a1 = the mailbox's physical address
    //        (`crate::smp::Mailbox`: started, arg, ipis, fault, u64 each);
    //        S-mode, satp = 0 (no translation), interrupts off.
    //   Writes started = hart id + 1 and arg = a1, then for each IPI
    //   (sip.SSIP, polled; cleared by writing sip) counts it in ipis and
    //   sends one back to hart 0 (SBI IPI); with fault set, it reads
    //   0x3000_0000, which the hypervisor never declared. Never returns.
    ".section .text",
    ".global gkernel_secondary_entry",
    "gkernel_secondary_entry:",
    "    addi t0, a0, 1",
    "    sd   t0, 0(a1)",
    "    sd   a1, 8(a1)",
    "    mv   s1, a1",
    "    li   t1, 2",
    "1:  wfi",
    "    csrr t0, sip",
    "    and  t0, t0, t1",
    "    beqz t0, 1b",
    "    csrc sip, t1",
    "    ld   t0, 24(s1)",
    "    bnez t0, 2f",
    "    ld   t0, 16(s1)",
    "    addi t0, t0, 1",
    "    sd   t0, 16(s1)",
    "    fence rw, rw",
    "    li   a7, 0x735049",
    "    li   a6, 0",
    "    li   a0, 1",
    "    li   a1, 0",
    "    ecall",
    "    j    1b",
    "2:  li   t2, 0x30000000",
    "    ld   t0, 0(t2)",
    "3:  j    3b",
);

unsafe extern "C" {
    fn gkernel_secondary_entry();
}

/// The program's (kernel) address.
pub fn secondary_entry() -> usize {
    gkernel_secondary_entry as *const () as usize
}

/// The SBI error or value as a signed number.
fn answer(ret: sbi_rt::SbiRet) -> isize {
    if ret.error != 0 {
        ret.error as isize
    } else {
        ret.value as isize
    }
}

/// SBI IPIs arrive as sip.SSIP, polled; sie.SSIE lets one end a `wfi`
/// (sstatus.SIE stays off: it is never taken).
pub fn prepare() {
    // SAFETY: with sstatus.SIE off, the software interrupt only wakes
    // `wfi`; nothing takes it.
    unsafe { riscv::register::sie::set_ssoft() };
}

/// Waits for an interrupt to be pending (or returns at once if one is).
pub fn wait_for_interrupt() {
    // SAFETY: `wfi` only waits.
    unsafe { core::arch::asm!("wfi") };
}

/// SBI HSM `hart_start`: the error code (0: started).
pub fn start_cpu(hart: usize, entry: usize, opaque: usize) -> isize {
    answer(sbi_rt::hart_start(hart, entry, opaque))
}

/// SBI HSM `hart_get_status` (0 started, 1 stopped, 2 start pending).
pub fn cpu_state(hart: usize) -> isize {
    answer(sbi_rt::hart_get_status(hart))
}

/// An SBI IPI to `hart`.
pub fn send_ipi(hart: usize) {
    let ret = sbi_rt::send_ipi(HartMask::from_mask_base(1, hart));
    assert_eq!(ret.error, 0, "send_ipi answered an error");
}

/// Takes this hart's software interrupt if one is pending.
pub fn take_ipi() -> bool {
    let pending: usize;
    // SAFETY: reading sip, and clearing its SSIP bit (this hart's
    // supervisor software interrupt, never enabled in sie here), have no
    // other effect.
    unsafe { core::arch::asm!("csrr {}, sip", out(reg) pending) };
    if pending & 2 == 0 {
        return false;
    }
    // SAFETY: as above.
    unsafe { core::arch::asm!("csrc sip, {}", in(reg) 2usize) };
    true
}

/// No caches to bypass: the RISC-V memory model keeps harts coherent.
pub fn before_read(_addr: usize) {}

/// As [`before_read`].
pub fn clean(_addr: usize) {}

/// A remote `fence.i` on hart 1 and a remote `sfence.vma` of every
/// address on both harts; each answer printed.
pub fn remote_fences() {
    let one = HartMask::from_mask_base(1, 1);
    println!(
        "remote fence.i on CPU 1: {}",
        answer(sbi_rt::remote_fence_i(one))
    );
    let both = HartMask::from_mask_base(0b11, 0);
    println!(
        "remote sfence.vma on CPUs 0 and 1: {}",
        answer(sbi_rt::remote_sfence_vma(both, 0, usize::MAX))
    );
}

/// The time counter.
pub fn now() -> u64 {
    riscv::register::time::read64()
}

/// Its frequency: QEMU `virt`'s 10 MHz (its device tree's
/// `timebase-frequency`).
pub fn counter_hz() -> u64 {
    10_000_000
}
