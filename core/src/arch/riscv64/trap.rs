//! Decoding a trap taken from a RISC-V VS-mode guest into an [`Exit`].
//!
//! The vCPU hands over `scause`, `stval`, `htval` and the guest's `a0..a7`;
//! this module says what happened. Section numbers are those of the RISC-V
//! Privileged Architecture, version 1.12 (20211203): `scause` in §4.1.9
//! (Table 4.2), the H extension's cause codes in §8.6.1 "Trap Cause Codes"
//! (Table 8.6) and `htval` in §8.2.8.

use super::sbi;
use crate::addr::GuestPhysAddr;
use crate::exit::{Access, Exit, ExitKind, Handled, Unexpected};

/// `scause` exception codes an H-extension hypervisor sees from a guest
/// (Privileged v1.12 §8.6.1, Table 8.6).
pub mod cause {
    /// Instruction address misaligned.
    pub const INSTRUCTION_MISALIGNED: u64 = 0;
    /// Instruction access fault (PMP or a bus error).
    pub const INSTRUCTION_ACCESS_FAULT: u64 = 1;
    /// Illegal instruction.
    pub const ILLEGAL_INSTRUCTION: u64 = 2;
    /// `ebreak` or a trigger.
    pub const BREAKPOINT: u64 = 3;
    /// Load access fault.
    pub const LOAD_ACCESS_FAULT: u64 = 5;
    /// Store/AMO access fault.
    pub const STORE_ACCESS_FAULT: u64 = 7;
    /// `ecall` from U-mode or VU-mode.
    pub const ECALL_FROM_U: u64 = 8;
    /// `ecall` from VS-mode: an SBI call from the guest kernel.
    pub const ECALL_FROM_VS: u64 = 10;
    /// Instruction page fault (first stage).
    pub const INSTRUCTION_PAGE_FAULT: u64 = 12;
    /// Load page fault (first stage).
    pub const LOAD_PAGE_FAULT: u64 = 13;
    /// Store/AMO page fault (first stage).
    pub const STORE_PAGE_FAULT: u64 = 15;
    /// Instruction guest-page fault (G-stage).
    pub const INSTRUCTION_GUEST_PAGE_FAULT: u64 = 20;
    /// Load guest-page fault (G-stage).
    pub const LOAD_GUEST_PAGE_FAULT: u64 = 21;
    /// Virtual instruction: a VS/VU-mode instruction the H extension traps.
    pub const VIRTUAL_INSTRUCTION: u64 = 22;
    /// Store/AMO guest-page fault (G-stage).
    pub const STORE_GUEST_PAGE_FAULT: u64 = 23;
    /// Interrupt code of the supervisor software interrupt (§4.1.9,
    /// Table 4.2; with [`INTERRUPT`] set).
    pub const SUPERVISOR_SOFTWARE_INTERRUPT: u64 = 1;
    /// Interrupt code of the supervisor timer interrupt (§4.1.9, Table 4.2;
    /// with [`INTERRUPT`] set).
    pub const SUPERVISOR_TIMER_INTERRUPT: u64 = 5;
    /// Interrupt code of the supervisor external interrupt (§4.1.9,
    /// Table 4.2; with [`INTERRUPT`] set).
    pub const SUPERVISOR_EXTERNAL_INTERRUPT: u64 = 9;
    /// The Interrupt bit of `scause`, its MSB on RV64 (§4.1.9).
    pub const INTERRUPT: u64 = 1 << 63;
}

/// `htval` holds the faulting guest-physical address shifted right by this
/// many bits (Privileged v1.12 §8.2.8).
pub const HTVAL_SHIFT: u32 = 2;
/// The low bits of the faulting guest-physical address that `htval` drops;
/// they are the same as those of the guest-virtual address in `stval`
/// (§8.2.8).
pub const HTVAL_DROPPED_BITS: u64 = (1 << HTVAL_SHIFT) - 1;

/// The trap registers the vCPU read on exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trap {
    /// Supervisor cause register (§4.1.9).
    pub scause: u64,
    /// Supervisor trap value: the faulting guest-virtual address (§4.1.10).
    pub stval: u64,
    /// Hypervisor trap value: the faulting guest-physical address >> 2
    /// (§8.2.8).
    pub htval: u64,
}

/// The guest-physical address of a guest-page fault: `htval` holds it
/// shifted right by two, and the low two bits come from `stval`.
pub const fn guest_fault_address(htval: u64, stval: u64) -> GuestPhysAddr {
    GuestPhysAddr::new((htval << HTVAL_SHIFT) | (stval & HTVAL_DROPPED_BITS))
}

/// Decodes a trap; `a` holds the guest's `a0..a7` (needed for SBI calls).
/// The hart's supervisor timer interrupt comes back as [`Exit::HostTick`]:
/// the one S-mode timer carries both the host's tick and the guest's
/// deadline, and only the vCPU knows which was due. Its supervisor
/// software interrupt is another hart's kick (an SBI IPI), a
/// [`ExitKind::Kick`] the vCPU withdraws (`sip.SSIP`) and the run loop
/// counts.
pub fn decode(trap: &Trap, a: &[u64; 8]) -> Exit {
    let code = trap.scause & !cause::INTERRUPT;
    if trap.scause & cause::INTERRUPT != 0 {
        return match code {
            cause::SUPERVISOR_TIMER_INTERRUPT => Exit::HostTick,
            cause::SUPERVISOR_SOFTWARE_INTERRUPT => {
                Exit::Handled(Handled::quiet(ExitKind::Kick, false))
            }
            _ => unexpected(trap),
        };
    }
    let fault = |access| Exit::NestedPageFault {
        gpa: guest_fault_address(trap.htval, trap.stval),
        access,
    };
    match code {
        cause::INSTRUCTION_GUEST_PAGE_FAULT => fault(Access::Execute),
        cause::LOAD_GUEST_PAGE_FAULT => fault(Access::Read),
        cause::STORE_GUEST_PAGE_FAULT => fault(Access::Write),
        cause::ECALL_FROM_VS => Exit::Hypercall(sbi::decode(
            a[7],
            a[6],
            [a[0], a[1], a[2], a[3], a[4], a[5]],
        )),
        _ => unexpected(trap),
    }
}

fn unexpected(trap: &Trap) -> Exit {
    Exit::Unexpected(Unexpected {
        what: cause_name(trap.scause),
        code: trap.scause,
        info: [trap.stval, trap.htval],
    })
}

/// A readable name for an `scause` value.
pub fn cause_name(scause: u64) -> &'static str {
    use cause::*;
    if scause & INTERRUPT != 0 {
        return match scause & !INTERRUPT {
            SUPERVISOR_SOFTWARE_INTERRUPT => "supervisor software interrupt",
            SUPERVISOR_TIMER_INTERRUPT => "supervisor timer interrupt",
            SUPERVISOR_EXTERNAL_INTERRUPT => "supervisor external interrupt",
            _ => "interrupt",
        };
    }
    match scause {
        INSTRUCTION_MISALIGNED => "instruction address misaligned",
        INSTRUCTION_ACCESS_FAULT => "instruction access fault",
        ILLEGAL_INSTRUCTION => "illegal instruction",
        BREAKPOINT => "breakpoint",
        LOAD_ACCESS_FAULT => "load access fault",
        STORE_ACCESS_FAULT => "store/AMO access fault",
        ECALL_FROM_U => "ecall from U/VU-mode",
        ECALL_FROM_VS => "ecall from VS-mode",
        INSTRUCTION_PAGE_FAULT => "instruction page fault",
        LOAD_PAGE_FAULT => "load page fault",
        STORE_PAGE_FAULT => "store/AMO page fault",
        INSTRUCTION_GUEST_PAGE_FAULT => "instruction guest-page fault",
        LOAD_GUEST_PAGE_FAULT => "load guest-page fault",
        VIRTUAL_INSTRUCTION => "virtual instruction",
        STORE_GUEST_PAGE_FAULT => "store/AMO guest-page fault",
        _ => "unknown exception",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{Request, ShutdownReason};

    fn trap(scause: u64, stval: u64, htval: u64) -> Trap {
        Trap {
            scause,
            stval,
            htval,
        }
    }

    #[test]
    fn fault_address_combines_htval_and_stval() {
        let at = |htval, stval| guest_fault_address(htval, stval).as_u64();
        assert_eq!(at(0x2200_0000 >> 2, 0xffff_ffc0_2200_0000), 0x2200_0000);
        assert_eq!(at(0x8020_1234 >> 2, 0xffff_ffc0_8020_1236), 0x8020_1236);
        assert_eq!(at(0x8020_1234 >> 2, 0x1), 0x8020_1235);
        // Above 4 GiB: htval carries GPA bits up to 41 without loss.
        assert_eq!(at(0x1_ffff_f000u64 >> 2, 0), 0x1_ffff_f000);
    }

    #[test]
    fn guest_page_faults_carry_access_type() {
        let a = [0; 8];
        assert_eq!(
            decode(&trap(21, 0xffff_ffc0_2200_0000, 0x2200_0000 >> 2), &a),
            Exit::NestedPageFault {
                gpa: GuestPhysAddr::new(0x2200_0000),
                access: Access::Read
            }
        );
        assert_eq!(
            decode(&trap(23, 0x8000_0008, 0x8000_0008 >> 2), &a),
            Exit::NestedPageFault {
                gpa: GuestPhysAddr::new(0x8000_0008),
                access: Access::Write
            }
        );
        assert_eq!(
            decode(&trap(20, 0x8020_0000, 0x8020_0000 >> 2), &a),
            Exit::NestedPageFault {
                gpa: GuestPhysAddr::new(0x8020_0000),
                access: Access::Execute
            }
        );
    }

    #[test]
    fn ecall_from_vs_is_an_sbi_call() {
        // a7 = SRST, a6 = 0, a0 = shutdown, a1 = no reason
        let a = [0, 0, 0, 0, 0, 0, 0, 0x5352_5354];
        assert_eq!(
            decode(&trap(10, 0, 0), &a),
            Exit::Hypercall(Request::Shutdown(ShutdownReason::Normal))
        );
        let putchar = [b'x' as u64, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(
            decode(&trap(10, 0, 0), &putchar),
            Exit::Hypercall(Request::ConsolePutByte(b'x'))
        );
    }

    #[test]
    fn timer_interrupt_and_unexpected_causes() {
        let a = [0; 8];
        assert_eq!(
            decode(&trap(cause::INTERRUPT | 5, 0, 0), &a),
            Exit::HostTick
        );
        assert_eq!(
            decode(&trap(cause::INTERRUPT | 1, 0, 0), &a),
            Exit::Handled(Handled::quiet(ExitKind::Kick, false)),
            "another hart's kick"
        );
        let Exit::Unexpected(u) = decode(&trap(22, 0x1234_5678, 0), &a) else {
            panic!("virtual instruction")
        };
        assert_eq!(u.what, "virtual instruction");
        assert_eq!(u.code, 22);
        assert_eq!(u.info, [0x1234_5678, 0]);
        let Exit::Unexpected(u) = decode(&trap(cause::INTERRUPT | 9, 0, 0), &a) else {
            panic!("external")
        };
        assert_eq!(u.what, "supervisor external interrupt");
        assert!(matches!(
            decode(&trap(2, 0, 0), &a),
            Exit::Unexpected(Unexpected {
                what: "illegal instruction",
                ..
            })
        ));
        assert!(
            matches!(decode(&trap(8, 0, 0), &a), Exit::Unexpected(_)),
            "ecall from VU is not ours"
        );
    }
}
