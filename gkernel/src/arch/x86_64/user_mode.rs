//! The user-vmmcall scenario: a `VMMCALL` made from CPL 3. The hypervisor
//! must refuse it (RAX = NOT_SUPPORTED, -1) rather than power the VM off,
//! as KVM refuses hypercalls from guest user mode.
//!
//! ArceOS runs no user programs here, so this file makes the least of a
//! user mode: it marks the page holding [`USER_ENTRY`]'s code and a stack
//! page user-accessible in ArceOS's own page tables and enters CPL 3
//! through ArceOS's own `enter_user`. The user code makes the call and then
//! executes `UD2`: the #UD brings the CPU back to the kernel, which prints
//! the trap and RAX, the hypervisor's answer, and goes on to power off.

use core::arch::{asm, global_asm};

/// The GDT selectors of axcpu's x86_64 GDT (entries 3 and 4, RPL 3).
const USER_DATA: u64 = 3 << 3 | 3;
const USER_CODE: u64 = 4 << 3 | 3;
/// Page-table entry bits (Intel SDM vol. 3, 4.5, Table 4-15 ff.).
const PRESENT: u64 = 1 << 0;
const USER: u64 = 1 << 2;
const HUGE: u64 = 1 << 7;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

global_asm!(
    // The user code: PSCI SYSTEM_OFF by VMMCALL from CPL 3, then UD2. Its
    // own 4 KiB page, so that only it becomes user-accessible.
    ".pushsection .text.user_vmmcall, \"ax\"",
    ".balign 4096",
    ".global gkernel_user_vmmcall",
    "gkernel_user_vmmcall:",
    "mov eax, 0x84000008",
    "vmmcall",
    "ud2",
    ".balign 4096",
    ".popsection",
);

unsafe extern "C" {
    /// The user code above (not called: entered by IRETQ).
    #[link_name = "gkernel_user_vmmcall"]
    static USER_ENTRY: u8;
}

/// The user stack: one page of its own.
#[repr(C, align(4096))]
struct Page([u8; 4096]);
static mut USER_STACK: Page = Page([0; 4096]);

/// Sets the U/S bit on every level of the page-table walk for `va`, so
/// CPL 3 may use that page (a 2 MiB or 1 GiB page gets it on its leaf).
fn make_user(va: u64) {
    let mut table: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) table) };
    for shift in [39, 30, 21, 12] {
        let index = (va >> shift & 0x1ff) as usize;
        let base = axhal::mem::phys_to_virt(((table & ADDR_MASK) as usize).into());
        let entry = base.as_mut_ptr().cast::<u64>().wrapping_add(index);
        // SAFETY: `entry` is in the live page table of this address
        // space, reached through the kernel's linear map; only the U/S
        // bit of an entry on `va`'s walk is added.
        let e = unsafe {
            let e = entry.read_volatile();
            entry.write_volatile(e | USER);
            e
        };
        assert!(e & PRESENT != 0, "{va:#x} is not mapped");
        if e & HUGE != 0 || shift == 12 {
            break;
        }
        table = e;
    }
    // SAFETY: flushes the TLB entry for `va`; no memory effect.
    unsafe { asm!("invlpg [{}]", in(reg) va) };
}

/// What ArceOS's `enter_user` (axcpu's x86_64 `trap.S`) takes: the user
/// registers in its TrapFrame layout (the order `POP_GENERAL_REGS` pops
/// them, then vector and error code, then the IRETQ frame), followed by the
/// slot where it keeps the kernel's stack pointer. A trap from CPL 3 saves
/// the user registers back here and returns from the `enter_user` call.
#[repr(C)]
#[derive(Default)]
struct UserEntry {
    /// RAX, RCX, RDX, RBX, RBP, RSI, RDI, R8..R15.
    gprs: [u64; 15],
    vector: u64,
    error_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
    /// `enter_user`'s own: the kernel stack pointer to come back to.
    kernel_rsp: u64,
}

unsafe extern "C" {
    /// axcpu's entry to user mode (a global symbol of ArceOS's trap code).
    fn enter_user(entry: *mut UserEntry);
}

/// Runs the user code at CPL 3 until its first trap; prints what the
/// trap left in the user registers.
pub fn user_vmmcall_scenario() {
    println!("Scenario user-vmmcall: PSCI SYSTEM_OFF by VMMCALL from CPL 3");
    let code = core::ptr::addr_of!(USER_ENTRY) as u64;
    let stack = core::ptr::addr_of_mut!(USER_STACK) as u64;
    make_user(code);
    make_user(stack);
    let mut user = UserEntry {
        rip: code,
        cs: USER_CODE,
        // Interrupts stay off at CPL 3 (IF clear; bit 1 is reserved, 1).
        rflags: 2,
        rsp: stack + 4096,
        ss: USER_DATA,
        ..UserEntry::default()
    };
    axhal::asm::disable_irqs();
    // SAFETY: `user` is laid out as `enter_user` wants it; the user code
    // and stack pages were just made user-accessible; `enter_user` saves
    // the callee-saved registers and returns here at the user code's
    // first trap, with GS swapped back and the caller-saved registers
    // clobbered as any call does.
    unsafe { enter_user(&mut user) };
    axhal::asm::enable_irqs();
    println!(
        "CPL 3 trap: vector {} at {:#x} (CS {:#x}), RAX = {:#x} after the VMMCALL",
        user.vector, user.rip, user.cs, user.gprs[0]
    );
}
