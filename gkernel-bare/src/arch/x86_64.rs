//! x86_64: entered by the hypervisor in long mode at the image's first
//! byte with RSP set (see `guestaspace_core::arch::x86_64::boot`); calls go out with
//! VMMCALL, function in RAX, arguments in RDI/RSI.

pub const ARCH: &str = "x86_64";
pub const PLATFORM: &str = "x86-pc";
/// Start of guest RAM.
pub const RAM_BASE: u64 = 0;
/// The pflash page the hypervisor emulates.
pub const PFLASH: usize = 0xffc0_0000;
/// The IO APIC: real on q35, never declared for the guest.
pub const UNDECLARED: usize = 0xfec0_0000;

// _start: the first byte of the image. In: RSP = stack top (set in the
// VMCB), interrupts off. Calls main, which never returns.
core::arch::global_asm!(
    ".section .text.entry, \"ax\"",
    ".global _start",
    "_start:",
    "    and rsp, -16",
    "    call {main}",
    "    ud2",
    main = sym crate::main,
);

/// One hypercall: function `f`, arguments `a`, `b`; returns RAX.
pub fn hypercall(f: u64, a: u64, b: u64) -> u64 {
    let ret;
    // SAFETY: VMMCALL exits to the hypervisor, which only writes RAX and
    // advances RIP.
    unsafe {
        core::arch::asm!("vmmcall", inlateout("rax") f => ret, in("rdi") a, in("rsi") b, options(nostack))
    };
    ret
}

/// The time-stamp counter.
pub fn counter() -> u64 {
    // SAFETY: RDTSC has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The TSC's frequency is not known to this guest (no CPUID leaf gives it
/// on AMD); 0 says so, and the reader of the figures supplies it.
pub fn counter_hz() -> u64 {
    0
}

/// Stops in a way the hypervisor reports as a failure: with no IDT, UD2
/// escalates to a triple fault, a SHUTDOWN exit.
pub fn crash() -> ! {
    loop {
        // SAFETY: raising #UD on purpose.
        unsafe { core::arch::asm!("ud2") };
    }
}
