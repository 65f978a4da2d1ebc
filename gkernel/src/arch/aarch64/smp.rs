//! The aarch64 side of the `smp` scenarios (`crate::smp`): PSCI over HVC,
//! SGIs through the GIC, and the program CPU 1 runs.

use core::sync::atomic::{AtomicU64, Ordering};
use guestaspace_core::arch::smccc;

/// The firmware interface, for the scenario's first line.
pub const FIRMWARE: &str = "PSCI CPU_ON";

/// The SGI CPU 1 sends back.
const REPLY_SGI: usize = 2;

core::arch::global_asm!(
    // gkernel_secondary_entry: CPU 1's program (PSCI CPU_ON).
    //   in:  x0 = the mailbox's physical address (CPU_ON's context id;
    //        `crate::smp::Mailbox`: started, arg, ipis, fault, u64 each);
    //        EL1h, MMU and caches off, D, A, I and F masked.
    //   Writes started = MPIDR Aff0 + 1 and arg = x0, enables its GIC CPU
    //   interface (GICC at 0x0801_0000) and SGI 1 (GICD at 0x0800_0000),
    //   then for each SGI 1 (WFI, then GICC_IAR; EOIR) counts it in ipis
    //   and sends SGI 2 to CPU 0 (GICD_SGIR); with fault set, it reads
    //   0x0a00_0000, which the hypervisor never declared. Never returns.
    ".section .text",
    ".global gkernel_secondary_entry",
    "gkernel_secondary_entry:",
    "    mrs  x1, mpidr_el1",
    "    and  x1, x1, #0xff",
    "    add  x1, x1, #1",
    "    str  x1, [x0]",
    "    str  x0, [x0, #8]",
    "    movz x2, #0x0801, lsl #16",
    "    mov  w3, #0xff",
    "    str  w3, [x2, #4]",
    "    mov  w3, #1",
    "    str  w3, [x2]",
    "    movz x4, #0x0800, lsl #16",
    "    mov  w3, #2",
    "    str  w3, [x4, #0x100]",
    "1:  wfi",
    "    ldr  w5, [x2, #0xc]",
    "    and  w6, w5, #0x3ff",
    "    cmp  w6, #1",
    "    b.ne 1b",
    "    str  w5, [x2, #0x10]",
    "    ldr  x6, [x0, #24]",
    "    cbnz x6, 2f",
    "    ldr  x6, [x0, #16]",
    "    add  x6, x6, #1",
    "    str  x6, [x0, #16]",
    "    dsb  sy",
    "    movz w3, #0x2",
    "    movk w3, #0x1, lsl #16",
    "    str  w3, [x4, #0xf00]",
    "    b    1b",
    "2:  movz x8, #0x0a00, lsl #16",
    "    ldr  x9, [x8]",
    "3:  b    3b",
);

unsafe extern "C" {
    fn gkernel_secondary_entry();
}

/// The program's (kernel) address.
pub fn secondary_entry() -> usize {
    gkernel_secondary_entry as *const () as usize
}

/// SGI 2s taken on this CPU, counted by an IRQ hook.
static REPLIES: AtomicU64 = AtomicU64::new(0);
/// Replies already taken by [`take_ipi`].
static TAKEN: AtomicU64 = AtomicU64::new(0);

/// Counts a reply SGI (called from the kernel's IRQ hook).
pub fn count_reply(intid: usize) {
    if intid == REPLY_SGI {
        REPLIES.fetch_add(1, Ordering::SeqCst);
    }
}

/// Enables CPU 1's reply SGI; the kernel's IRQ hook (registered by the
/// timer check) counts it.
pub fn prepare() {
    axhal::irq::set_enable(REPLY_SGI, true);
}

/// One SMCCC call over HVC with three arguments; x0 as a signed number.
fn hvc3(f: u64, a: u64, b: u64, c: u64) -> isize {
    let ret: u64;
    // SAFETY: HVC exits to the hypervisor, which only writes x0.
    unsafe {
        core::arch::asm!("hvc #0", inlateout("x0") f => ret, in("x1") a, in("x2") b, in("x3") c, options(nostack))
    };
    ret as isize
}

/// PSCI `CPU_ON` (SMC64): 0, or the PSCI error.
pub fn start_cpu(cpu: usize, entry: usize, context: usize) -> isize {
    hvc3(
        smccc::PSCI_CPU_ON_64,
        cpu as u64,
        entry as u64,
        context as u64,
    )
}

/// PSCI `AFFINITY_INFO` at level 0 (0 on, 1 off, 2 on pending).
pub fn cpu_state(cpu: usize) -> isize {
    hvc3(smccc::PSCI_AFFINITY_INFO_64, cpu as u64, 0, 0)
}

/// Waits for an interrupt (this kernel takes IRQs: the reply SGI's hook
/// runs before this returns).
pub fn wait_for_interrupt() {
    axhal::asm::wait_for_irqs();
}

/// SGI 1 to `cpu` (GICD_SGIR through ArceOS's GIC mapping).
pub fn send_ipi(cpu: usize) {
    use axhal::mem::{PhysAddr, phys_to_virt};
    let sgir = phys_to_virt(PhysAddr::from(0x0800_0f00))
        .as_mut_ptr()
        .cast::<u32>();
    // SAFETY: the distributor is in this kernel's MMIO ranges; a write of
    // GICD_SGIR only raises the SGI.
    unsafe { sgir.write_volatile((1 << (16 + cpu)) | 1) };
}

/// Whether a reply SGI arrived since the last one taken.
pub fn take_ipi() -> bool {
    let taken = TAKEN.load(Ordering::SeqCst);
    if REPLIES.load(Ordering::SeqCst) > taken {
        TAKEN.store(taken + 1, Ordering::SeqCst);
        return true;
    }
    false
}

/// Drops the mailbox line from this CPU's caches, so the next load sees
/// what CPU 1 wrote with its MMU (and caches) off.
pub fn before_read(addr: usize) {
    // SAFETY: cleaning and invalidating a line this kernel maps changes no
    // memory contents.
    unsafe { core::arch::asm!("dc civac, {}", "dsb sy", in(reg) addr, options(nostack)) };
}

/// Writes the mailbox line back to memory, for CPU 1 to read.
pub fn clean(addr: usize) {
    before_read(addr);
}

/// No SBI-style remote fences: Arm's TLB and cache maintenance broadcast
/// in hardware.
pub fn remote_fences() {}

/// The virtual count.
pub fn now() -> u64 {
    let v: u64;
    // SAFETY: reading CNTVCT_EL0 has no side effects.
    unsafe { core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) v) };
    v
}

/// Its frequency (CNTFRQ_EL0).
pub fn counter_hz() -> u64 {
    let hz: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) hz) };
    hz
}
