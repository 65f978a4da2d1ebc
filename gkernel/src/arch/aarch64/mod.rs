//! aarch64 (QEMU `virt` as the hypervisor declares it): pflash1, the EL1
//! physical timer's interrupt through ArceOS's own GIC handling (this
//! kernel is built with ArceOS's `irq` feature on aarch64), the SMCCC
//! vendor calls over HVC, and PSCI power-off.

pub mod smp;
pub mod uart;

use core::sync::atomic::{AtomicU64, Ordering};
use guestaspace_core::arch::smccc;

/// QEMU virt pflash1.
pub const PFLASH: usize = 0x0400_0000;
/// The first virtio-mmio transport on the real machine; not part of the
/// guest's layout.
pub const UNDECLARED: usize = 0x0a00_0000;
/// Nothing to report: the x86_64 guest's CPUID check.
pub fn report_cpu() {}

/// A guest-physical address outside guest RAM (and every other region).
pub const OUTSIDE_RAM: usize = 0x3000_0000;

/// Cleans and invalidates pflash's first cache line by address before any
/// load touches it: the first access to the page is a cache-maintenance
/// instruction, whose stage-2 fault (ESR CM = 1, WnR = 1) the hypervisor
/// must serve as the read it is, not refuse as a write to read-only flash.
pub fn touch_pflash_by_cache_maintenance() {
    use axhal::mem::{PhysAddr, phys_to_virt};
    let va = phys_to_virt(PhysAddr::from(PFLASH)).as_usize();
    // SAFETY: cache maintenance by address changes no memory contents; the
    // page is in this kernel's MMIO ranges, so mapped at `va`.
    unsafe { core::arch::asm!("dc civac, {}", in(reg) va, options(nostack)) };
    println!("pflash line cleaned and invalidated with DC CIVAC");
}

/// Ticks of the timer the guest arms in [`timer_round_trip`]: 1 ms at the
/// counter's frequency (CNTFRQ_EL0; 1 GHz for QEMU 10's `-cpu max`).
pub fn timer_delay() -> u64 {
    let hz: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) hz) };
    hz / 1000
}

/// The EL1 physical timer's interrupt (PPI 14).
const TIMER_INTID: usize = 30;

/// Timer interrupts taken since boot, counted by an IRQ hook.
static TIMER_IRQS: AtomicU64 = AtomicU64::new(0);

/// The one IRQ hook ArceOS keeps: timer interrupts, and the `smp`
/// scenario's replies.
fn count_timer_irq(intid: usize) {
    if intid == TIMER_INTID {
        TIMER_IRQS.fetch_add(1, Ordering::Relaxed);
    }
    smp::count_reply(intid);
}

/// The physical count.
fn count() -> u64 {
    let v: u64;
    // SAFETY: reading CNTPCT_EL0 has no side effects (and does not trap).
    unsafe { core::arch::asm!("isb", "mrs {}, cntpct_el0", out(reg) v) };
    v
}

/// Arms the EL1 physical timer [`timer_delay`] ticks ahead (a TVAL write,
/// which the hypervisor traps and emulates) and sleeps until its
/// interrupt has come through the GIC and ArceOS's IRQ path; returns the
/// ticks that passed. ArceOS's own timer handler then takes the timer
/// back for its periodic tick.
pub fn timer_round_trip() -> u64 {
    static HOOKED: AtomicU64 = AtomicU64::new(0);
    if HOOKED.swap(1, Ordering::Relaxed) == 0 {
        assert!(axhal::irq::register_irq_hook(count_timer_irq));
    }
    let before = TIMER_IRQS.load(Ordering::Relaxed);
    let start = count();
    // SAFETY: programs this kernel's own timer.
    unsafe { core::arch::asm!("msr cntp_tval_el0, {}", "isb", in(reg) timer_delay()) };
    while TIMER_IRQS.load(Ordering::Relaxed) == before {
        axhal::asm::wait_for_irqs();
    }
    count() - start
}

/// One SMCCC call over HVC: function `f`, arguments `a`, `b`; returns x0.
fn hvc(f: u64, a: u64, b: u64) -> u64 {
    let ret;
    // SAFETY: HVC exits to the hypervisor, which only writes x0.
    unsafe {
        core::arch::asm!("hvc #0", inlateout("x0") f => ret, in("x1") a, in("x2") b, options(nostack))
    };
    ret
}

/// Asks the vendor console-write call to print `len` bytes at
/// guest-physical `addr`; the answer as the report line gives it.
pub fn console_write_answer(addr: u64, len: u64) -> alloc::string::String {
    alloc::format!("{}", hvc(smccc::GA_CONSOLE_WRITE, addr, len) as i64)
}

/// The hypervisor's null call, which only exits and comes back.
#[inline(always)]
pub fn null_hypercall() {
    hvc(smccc::GA_NULL, 0, 0);
}

/// A 16550 scenario: the PL011 has no DLAB; this guest fails the run.
pub fn dlab_wild_access() {
    panic!("scenario dlab-wild-access is a 16550 (riscv64) scenario");
}

pub fn unknown_msr_scenario() {
    panic!("scenario unknown-msr is an x86_64 scenario");
}

pub fn svm_instruction_scenario() {
    panic!("scenario svm-instruction is an x86_64 scenario");
}

pub fn user_vmmcall_scenario() {
    panic!("scenario user-vmmcall is an x86_64 scenario");
}

/// PSCI `SYSTEM_OFF` made with SMC: the hypervisor offers SMCCC over HVC
/// only and must stop the VM naming the SMC.
pub fn smc_scenario() {
    println!("Scenario smc: PSCI SYSTEM_OFF through SMC");
    // SAFETY: with HCR_EL2.TSC set, SMC traps to the hypervisor.
    unsafe {
        core::arch::asm!("smc #0", inlateout("x0") smccc::PSCI_SYSTEM_OFF => _, options(nostack))
    };
    println!("The SMC returned: the hypervisor let it through!");
}

pub fn acpi_sleep_scenario() {
    panic!("scenario acpi-sleep is an x86_64 scenario");
}

/// PSCI `CPU_OFF` of the only CPU: the hypervisor must end the VM as
/// failed (no CPU is left), not report a clean power-off.
pub fn cpu_stop_scenario() {
    println!("Scenario cpu-stop: PSCI CPU_OFF of the only CPU");
    let ret = hvc(smccc::PSCI_CPU_OFF, 0, 0);
    println!("CPU_OFF returned {}", ret as i64);
}

/// PSCI `SYSTEM_OFF`; `clean == false` uses the vendor failure call, since
/// PSCI carries no reason.
pub fn power_off(clean: bool) -> ! {
    if clean {
        hvc(smccc::PSCI_SYSTEM_OFF, 0, 0);
    } else {
        hvc(smccc::GA_SYSTEM_FAILURE, 1, 0);
    }
    loop {
        core::hint::spin_loop();
    }
}
