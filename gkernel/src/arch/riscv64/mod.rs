//! riscv64 (QEMU `virt` as the hypervisor declares it): pflash1, the SBI
//! timer checked through this kernel's own trap vector, SBI DBCN, the
//! hypervisor's null SBI call, and SBI SRST power-off.

pub mod interrupts;
pub mod smp;
pub mod uart;

/// QEMU virt pflash1.
pub const PFLASH: usize = 0x2200_0000;
/// PCI ECAM on the real machine; not part of the guest's layout.
pub const UNDECLARED: usize = 0x3000_0000;
/// PCI MMIO on the real machine; not part of the guest's layout either.
pub const UNDECLARED_HIGH: usize = 0x4000_0000;

/// Ticks of the timer the guest arms in [`timer_round_trip`] (1 ms at
/// QEMU virt's 10 MHz).
const TIMER_DELAY: u64 = 10_000;

/// [`TIMER_DELAY`], as every architecture answers it.
pub fn timer_delay() -> u64 {
    TIMER_DELAY
}

/// Arms the SBI timer `TIMER_DELAY` ticks ahead and sleeps until the
/// timer interrupt the hypervisor injects arrives through this kernel's
/// trap vector; returns the ticks that passed.
pub fn timer_round_trip() -> u64 {
    use self::interrupts::{self, Source};
    use riscv::register::time;
    let start = time::read64();
    let _ = sbi_rt::set_timer(start + TIMER_DELAY);
    let cause = interrupts::wait_for(Source::Timer);
    let waited = time::read64() - start;
    let _ = sbi_rt::set_timer(u64::MAX);
    assert_eq!(
        cause,
        interrupts::TIMER,
        "expected the timer interrupt, got scause {cause:#x}"
    );
    waited
}

/// Nothing to do: the aarch64 guest's cache-maintenance check.
pub fn touch_pflash_by_cache_maintenance() {}

/// Nothing to report: the x86_64 guest's CPUID check.
pub fn report_cpu() {}

/// A guest-physical address outside guest RAM (and every other region).
pub const OUTSIDE_RAM: usize = 0x3000_0000;

/// Asks SBI DBCN to print `len` bytes at guest-physical `addr`; the
/// answer as the report line gives it.
pub fn console_write_answer(addr: u64, len: u64) -> alloc::string::String {
    let (error, value) = console_write_raw(addr, len);
    alloc::format!("error {error}, value {value}")
}

/// Sets the UART's DLAB, then reads an undeclared address: the
/// hypervisor's diagnostic must still reach its console.
pub fn dlab_wild_access() {
    println!("Scenario dlab-wild-access: DLAB on, then reading {UNDECLARED_HIGH:#X}");
    uart::set_dlab();
    crate::read_undeclared(UNDECLARED_HIGH);
}

/// An aarch64 scenario: this guest cannot play it and fails the run.
pub fn unknown_msr_scenario() {
    panic!("scenario unknown-msr is an x86_64 scenario");
}

pub fn svm_instruction_scenario() {
    panic!("scenario svm-instruction is an x86_64 scenario");
}

pub fn user_vmmcall_scenario() {
    panic!("scenario user-vmmcall is an x86_64 scenario");
}

pub fn smc_scenario() {
    panic!("scenario smc is an aarch64 scenario");
}

pub fn acpi_sleep_scenario() {
    panic!("scenario acpi-sleep is an x86_64 scenario");
}

/// SBI HSM `hart_stop` of the only hart: the hypervisor must end the VM as
/// failed (no hart is left), not report a clean power-off.
pub fn cpu_stop_scenario() {
    println!("Scenario cpu-stop: SBI HSM hart_stop of the only hart");
    let error: i64;
    // SAFETY: an SBI call; on success it does not return.
    unsafe {
        core::arch::asm!("ecall", in("a7") 0x48_534D_u64, in("a6") 1,
            lateout("a0") error, lateout("a1") _, options(nostack));
    }
    println!("hart_stop returned {error}");
}

/// SBI DBCN `console_write` of `len` bytes at guest-physical `addr`,
/// as raw numbers: (error, value).
fn console_write_raw(addr: u64, len: u64) -> (i64, u64) {
    let (error, value): (i64, u64);
    // SAFETY: an SBI call; it clobbers a0/a1 and nothing else.
    unsafe {
        core::arch::asm!("ecall", in("a7") 0x4442_434E_u64, in("a6") 0,
            inlateout("a0") len => error, inlateout("a1") addr => value, in("a2") 0,
            options(nostack));
    }
    (error, value)
}

/// One call of the hypervisor's null SBI function (our firmware
/// extension, function 0), which only exits and comes back.
#[inline(always)]
pub fn null_hypercall() {
    use guestaspace_core::arch::riscv64::sbi::{EID_GUESTASPACE, FID_NULL};
    // SAFETY: an SBI call; it clobbers a0/a1 and nothing else.
    unsafe {
        core::arch::asm!("ecall", in("a7") EID_GUESTASPACE, in("a6") FID_NULL,
            lateout("a0") _, lateout("a1") _, options(nostack));
    }
}

/// SBI SRST shutdown; `clean == false` gives the reason "system failure".
pub fn power_off(clean: bool) -> ! {
    if clean {
        sbi_rt::system_reset(sbi_rt::Shutdown, sbi_rt::NoReason);
    } else {
        sbi_rt::system_reset(sbi_rt::Shutdown, sbi_rt::SystemFailure);
    }
    loop {
        core::hint::spin_loop();
    }
}
