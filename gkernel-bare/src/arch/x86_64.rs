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

/// Prints what CPUID tells this guest about where it runs: the
/// hypervisor-present bit (leaf 1 ECX bit 31), the hypervisor's vendor
/// leaf 0x4000_0000, and whether SVM (leaf 0x8000_0001 ECX bit 2) is
/// offered, which it must not be.
pub fn report_cpu() {
    use core::arch::x86_64::__cpuid;
    // SAFETY: CPUID is available on every x86_64 CPU.
    let (features, vendor, extended) =
        unsafe { (__cpuid(1), __cpuid(0x4000_0000), __cpuid(0x8000_0001)) };
    let mut name = [0u8; 12];
    for (chunk, reg) in name.chunks_mut(4).zip([vendor.ebx, vendor.ecx, vendor.edx]) {
        chunk.copy_from_slice(&reg.to_le_bytes());
    }
    crate::println!(
        "CPUID: hypervisor bit {}, vendor \"{}\", SVM {}",
        if features.ecx & 1 << 31 != 0 {
            "set"
        } else {
            "clear"
        },
        core::str::from_utf8(&name).unwrap_or("?"),
        if extended.ecx & 1 << 2 != 0 {
            "offered"
        } else {
            "not offered"
        },
    );
}

/// COM1's ports: data (RBR/THR) and line status (LSR, bit 0 = data ready).
const COM1_DATA: u16 = 0x3f8;
const COM1_LSR: u16 = 0x3fd;
const LSR_DATA_READY: u8 = 1 << 0;

/// One `in al, dx` from `port`: a port-I/O exit to the emulated device.
pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: a port read; the hypervisor emulates the device behind it.
    unsafe { core::arch::asm!("in al, dx", out("al") v, in("dx") port, options(nostack)) };
    v
}

/// Reads COM1's line status once (the bench's port-I/O exit).
pub fn line_status() -> u8 {
    inb(COM1_LSR)
}

/// Reads a line typed on COM1, polling LSR (this guest has no interrupt
/// handling); returns its length in `buf` and the LSR polls it took.
pub fn read_line(buf: &mut [u8]) -> (usize, u64) {
    let (mut len, mut polls) = (0, 0);
    loop {
        polls += 1;
        if inb(COM1_LSR) & LSR_DATA_READY == 0 {
            core::hint::spin_loop();
            continue;
        }
        match inb(COM1_DATA) {
            b'\n' | b'\r' => return (len, polls),
            byte if len < buf.len() => {
                buf[len] = byte;
                len += 1;
            }
            _ => {}
        }
    }
}

/// Stops in a way the hypervisor reports as a failure: with no IDT, UD2
/// escalates to a triple fault, a SHUTDOWN exit.
pub fn crash() -> ! {
    loop {
        // SAFETY: raising #UD on purpose.
        unsafe { core::arch::asm!("ud2") };
    }
}
