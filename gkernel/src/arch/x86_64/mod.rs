//! x86_64 (QEMU q35 as the hypervisor declares it, entered by Multiboot):
//! the emulated pflash page, the local APIC timer's interrupt through
//! ArceOS's own IRQ path (this kernel is built with ArceOS's `irq` feature
//! on x86_64), COM1 input through its interrupt and the I/O APIC, the
//! SMCCC vendor calls over VMMCALL, power-off through the ACPI port ArceOS
//! itself uses, and the scenarios that probe the x86 policies (an unknown
//! MSR, an SVM instruction, a VMMCALL from user mode).

pub mod uart;
mod user_mode;

pub use user_mode::user_vmmcall_scenario;

use core::sync::atomic::{AtomicU64, Ordering};
use guestaspace_core::arch::smccc;

/// The emulated pflash page.
pub const PFLASH: usize = 0xffc0_0000;
/// The HPET on the real machine; not part of the guest's layout.
pub const UNDECLARED: usize = 0xfed0_0000;
/// A guest-physical address outside guest RAM (and every other region).
pub const OUTSIDE_RAM: usize = 0x3000_0000;

/// ArceOS's APIC timer vector on this platform.
const TIMER_VECTOR: usize = 0xf0;

/// Timer interrupts taken since boot, counted by an IRQ hook.
static TIMER_IRQS: AtomicU64 = AtomicU64::new(0);

fn count_timer_irq(vector: usize) {
    if vector == TIMER_VECTOR {
        TIMER_IRQS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Ticks of the timer the guest arms in [`timer_round_trip`]: 1 ms of the
/// TSC at the rate the platform assumes.
pub fn timer_delay() -> u64 {
    axhal::time::nanos_to_ticks(1_000_000)
}

/// Arms ArceOS's one-shot timer (the emulated local APIC) 1 ms ahead and
/// sleeps until its interrupt has come through the IDT; returns the TSC
/// ticks that passed.
pub fn timer_round_trip() -> u64 {
    static HOOKED: AtomicU64 = AtomicU64::new(0);
    if HOOKED.swap(1, Ordering::Relaxed) == 0 {
        assert!(axhal::irq::register_irq_hook(count_timer_irq));
    }
    let before = TIMER_IRQS.load(Ordering::Relaxed);
    let start = axhal::time::current_ticks();
    axhal::time::set_oneshot_timer(axhal::time::monotonic_time_nanos() + 1_000_000);
    while TIMER_IRQS.load(Ordering::Relaxed) == before {
        axhal::asm::wait_for_irqs();
    }
    axhal::time::current_ticks() - start
}

/// One SMCCC call over VMMCALL: function `f`, arguments `a`, `b`; returns
/// RAX.
fn vmmcall(f: u64, a: u64, b: u64) -> u64 {
    let ret;
    // SAFETY: VMMCALL exits to the hypervisor, which only writes RAX and
    // advances RIP.
    unsafe {
        core::arch::asm!("vmmcall", inlateout("rax") f => ret, in("rdi") a, in("rsi") b, options(nostack))
    };
    ret
}

/// Asks the vendor console-write call to print `len` bytes at
/// guest-physical `addr`; the answer as the report line gives it.
pub fn console_write_answer(addr: u64, len: u64) -> alloc::string::String {
    alloc::format!("{}", vmmcall(smccc::GA_CONSOLE_WRITE, addr, len) as i64)
}

/// The hypervisor's null call, which only exits and comes back.
#[inline(always)]
pub fn null_hypercall() {
    vmmcall(smccc::GA_NULL, 0, 0);
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
    println!(
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

/// Nothing to do: the aarch64 guest's cache-maintenance check.
pub fn touch_pflash_by_cache_maintenance() {}

/// Sets COM1's DLAB, then reads an undeclared address: the hypervisor's
/// diagnostic must still reach its console.
pub fn dlab_wild_access() {
    println!("Scenario dlab-wild-access: DLAB on, then reading {UNDECLARED:#X}");
    uart::set_dlab();
    crate::read_undeclared(UNDECLARED);
}

/// An aarch64 scenario: this guest cannot play it and fails the run.
pub fn smc_scenario() {
    panic!("scenario smc is an aarch64 scenario");
}

pub fn cpu_stop_scenario() {
    panic!("scenario cpu-stop is a riscv64 and aarch64 scenario");
}

/// `SLP_EN` with `SLP_TYP` 1 (S3 on QEMU's q35) to the PM1a control port:
/// a sleeping state, which the hypervisor must not take for a power-off.
pub fn acpi_sleep_scenario() {
    println!("Scenario acpi-sleep: SLP_EN with SLP_TYP 1 to port 0x604");
    // SAFETY: the hypervisor intercepts the port; nothing else is changed.
    unsafe { core::arch::asm!("out dx, ax", in("dx") 0x604u16, in("ax") 0x2400u16) };
    println!("The sleep request returned");
}

/// An MSR no x86 CPU defines (in the range Intel and AMD leave to software,
/// 0x4000_0000..0x4000_00FF, which this hypervisor does not implement).
const UNKNOWN_MSR: u32 = 0x4000_0042;

/// `RDMSR` of [`UNKNOWN_MSR`]: the hypervisor must answer `#GP(0)` as a CPU
/// without that register would, not stop the VM; ArceOS then panics on the
/// unhandled exception, naming it.
pub fn unknown_msr_scenario() {
    println!("Scenario unknown-msr: RDMSR {UNKNOWN_MSR:#x}");
    let (lo, hi): (u32, u32);
    // SAFETY: RDMSR of a register that does not exist raises #GP, which
    // is the point; nothing is changed.
    unsafe {
        core::arch::asm!("rdmsr", in("ecx") UNKNOWN_MSR, out("eax") lo, out("edx") hi, options(nostack))
    };
    println!("RDMSR {UNKNOWN_MSR:#x} returned {hi:#x}:{lo:#x} instead of faulting");
}

/// `INVLPGA` (flush the TLB entry of RAX's address for the ASID in ECX):
/// an SVM instruction, which a CPU without SVM enabled answers with #UD.
/// The hypervisor intercepts it (it would flush other address spaces'
/// entries, the host's included) and must give the guest that #UD.
pub fn svm_instruction_scenario() {
    println!("Scenario svm-instruction: INVLPGA");
    // SAFETY: INVLPGA only drops TLB entries; here it must fault instead.
    // Its encoding, 0F 01 DF, is written out: the operands are implicit.
    unsafe {
        core::arch::asm!(".byte 0x0f, 0x01, 0xdf", in("rax") 0u64, in("ecx") 0u32, options(nostack))
    };
    println!("INVLPGA ran instead of faulting");
}

/// Power-off: SLP_EN to the ACPI PM1a control port (what ArceOS's own
/// platform does); `clean == false` uses the vendor failure call instead.
pub fn power_off(clean: bool) -> ! {
    if clean {
        // SAFETY: the hypervisor takes this write as the power-off request.
        unsafe { core::arch::asm!("out dx, ax", in("dx") 0x604u16, in("ax") 0x2000u16) };
    } else {
        vmmcall(smccc::GA_SYSTEM_FAILURE, 1, 0);
    }
    loop {
        core::hint::spin_loop();
    }
}

/// The `smp` scenarios are riscv64 and aarch64 ones: an x86_64 VM has one
/// vCPU.
pub mod smp {
    pub fn scenario(_fault: bool) {
        panic!("the smp scenarios are riscv64 and aarch64 scenarios");
    }
}
