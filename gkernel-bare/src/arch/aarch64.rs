//! aarch64: entered by the hypervisor at EL1 with the MMU off at the
//! image's first byte; calls go out with `HVC #0`, function in x0,
//! arguments in x1/x2 (SMCCC), result in x0. With the MMU off every data
//! access is Device memory, which the target's strict alignment respects.

pub const ARCH: &str = "aarch64";
pub const PLATFORM: &str = "aarch64-qemu-virt";
/// Start of guest RAM.
pub const RAM_BASE: u64 = 0x4000_0000;
/// QEMU virt pflash1, passed through by the hypervisor.
pub const PFLASH: usize = 0x0400_0000;
/// The first virtio-mmio transport: real on virt, never declared for the
/// guest.
pub const UNDECLARED: usize = 0x0a00_0000;

/// Stack for the guest (the image's .bss: fresh zeroed RAM).
const STACK_SIZE: usize = 64 * 1024;
#[unsafe(link_section = ".bss.stack")]
static mut STACK: [u8; STACK_SIZE] = [0; STACK_SIZE];

// _start: the first byte of the image, at EL1, MMU and caches off.
// Sets SP to the top of STACK, clears .bss and calls main (never returns).
core::arch::global_asm!(
    ".section .text.entry, \"ax\"",
    ".global _start",
    "_start:",
    "    adrp x0, {stack}",
    "    add  x0, x0, :lo12:{stack}",
    "    add  x0, x0, {size}",
    "    mov  sp, x0",
    "    adrp x1, __bss_start",
    "    add  x1, x1, :lo12:__bss_start",
    "    adrp x2, __bss_end",
    "    add  x2, x2, :lo12:__bss_end",
    "1:  cmp  x1, x2",
    "    b.hs 2f",
    "    str  xzr, [x1], #8",
    "    b    1b",
    "2:  bl   {main}",
    "    udf  #0",
    stack = sym STACK,
    size = const STACK_SIZE,
    main = sym crate::main,
);

/// One hypercall: function `f`, arguments `a`, `b`; returns x0.
pub fn hypercall(f: u64, a: u64, b: u64) -> u64 {
    let ret;
    // SAFETY: HVC exits to the hypervisor, which only writes x0.
    unsafe {
        core::arch::asm!("hvc #0", inlateout("x0") f => ret, in("x1") a, in("x2") b, options(nostack))
    };
    ret
}

/// Cleans and invalidates pflash's first cache line by address before any
/// load touches it: the first access to the page is a cache-maintenance
/// instruction, whose stage-2 fault (ESR CM = 1, WnR = 1) the hypervisor
/// must serve as the read it is, not refuse as a write to read-only flash.
pub fn touch_pflash_by_cache_maintenance() {
    // SAFETY: cache maintenance by address changes no memory contents.
    unsafe { core::arch::asm!("dc civac, {}", in(reg) PFLASH, options(nostack)) };
    crate::println!("pflash line cleaned and invalidated with DC CIVAC");
}

/// aarch64 has an SMC instruction (the `smc` scenario).
pub const HAS_SMC: bool = true;

/// An SMCCC call with `SMC #0` (function `f` in x0); returns x0.
pub fn smc(f: u64) -> u64 {
    let ret;
    // SAFETY: with HCR_EL2.TSC set, SMC traps to the hypervisor, which only
    // writes x0 (if it returns at all).
    unsafe { core::arch::asm!("smc #0", inlateout("x0") f => ret, options(nostack)) };
    ret
}

/// The virtual counter.
pub fn counter() -> u64 {
    let v: u64;
    // SAFETY: reading CNTVCT_EL0 has no side effects.
    unsafe { core::arch::asm!("isb", "mrs {0}, cntvct_el0", out(reg) v, options(nostack)) };
    v
}

/// Prints the physical counter as read at EL1: a read the hypervisor
/// must let through (CNTHCTL_EL2.EL1PCTEN) rather than trap.
pub fn report_counter() {
    let v: u64;
    // SAFETY: reading CNTPCT_EL0 has no side effects.
    unsafe { core::arch::asm!("isb", "mrs {0}, cntpct_el0", out(reg) v, options(nostack)) };
    crate::println!("physical counter at EL1: {v}");
}

/// The counter's frequency (CNTFRQ_EL0).
pub fn counter_hz() -> u64 {
    let v: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { core::arch::asm!("mrs {0}, cntfrq_el0", out(reg) v, options(nostack)) };
    v
}

/// Stops in a way the hypervisor reports as a failure: with no vector
/// table installed (VBAR_EL1 = 0), the undefined instruction sends the CPU
/// to address 0x200, outside guest memory, a wild instruction fetch.
pub fn crash() -> ! {
    loop {
        // SAFETY: raising an undefined-instruction exception on purpose.
        unsafe { core::arch::asm!("udf #0") };
    }
}
