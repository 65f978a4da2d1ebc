//! Decoding an exception taken from an EL1 guest to EL2 into an [`Exit`].
//!
//! The vCPU hands over `ESR_EL2`, `FAR_EL2`, `HPFAR_EL2` and the guest's
//! `x0..x3`. Exception classes and syndrome fields are from the Arm ARM
//! (D23.2 "ESR_EL2"; HPFAR_EL2 for the faulting IPA).

use crate::addr::GuestPhysAddr;
use crate::arch::smccc;
use crate::exit::{Access, Exit, Unexpected};

/// ESR_EL2.EC values this hypervisor names.
pub mod ec {
    pub const UNKNOWN: u64 = 0x00;
    pub const WFX: u64 = 0x01;
    pub const HVC64: u64 = 0x16;
    pub const SMC64: u64 = 0x17;
    pub const SYSREG: u64 = 0x18;
    pub const INSTRUCTION_ABORT_LOWER: u64 = 0x20;
    pub const DATA_ABORT_LOWER: u64 = 0x24;
    pub const SERROR: u64 = 0x2f;
}

/// The trap registers the vCPU read on exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trap {
    pub esr: u64,
    pub far: u64,
    pub hpfar: u64,
}

impl Trap {
    pub const fn class(&self) -> u64 {
        (self.esr >> 26) & 0x3f
    }

    /// Whether the abort is a stage-2 fault the hypervisor may serve by
    /// mapping a page: a translation or access-flag fault (DFSC/IFSC
    /// 0b0001xx / 0b0010xx), not taken on a stage-1 table walk.
    pub const fn is_stage2_miss(&self) -> bool {
        let fsc = self.esr & 0x3f;
        (fsc & 0x3c == 0x04 || fsc & 0x3c == 0x08) && self.esr & (1 << 7) == 0
    }
}

/// The faulting intermediate physical address: HPFAR_EL2.FIPA holds IPA
/// bits [51:12] in bits [43:4]; the page offset comes from FAR_EL2.
pub const fn fault_ipa(hpfar: u64, far: u64) -> GuestPhysAddr {
    GuestPhysAddr::new(((hpfar >> 4) & ((1 << 40) - 1)) << 12 | (far & 0xfff))
}

/// Decodes a trap; `x` holds the guest's `x0..x3` (for HVC calls).
pub fn decode(trap: &Trap, x: &[u64; 4]) -> Exit {
    match trap.class() {
        ec::DATA_ABORT_LOWER | ec::INSTRUCTION_ABORT_LOWER if trap.is_stage2_miss() => {
            let access = if trap.class() == ec::INSTRUCTION_ABORT_LOWER {
                Access::Execute
            } else if trap.esr & (1 << 6) != 0 {
                Access::Write
            } else {
                Access::Read
            };
            Exit::NestedPageFault {
                gpa: fault_ipa(trap.hpfar, trap.far),
                access,
            }
        }
        ec::HVC64 => Exit::Hypercall(smccc::decode(x[0], [x[1], x[2], x[3]])),
        class => Exit::Unexpected(Unexpected {
            what: class_name(class),
            code: trap.esr,
            info: [trap.far, trap.hpfar],
        }),
    }
}

/// A readable name for an exception class.
pub fn class_name(class: u64) -> &'static str {
    match class {
        ec::UNKNOWN => "unknown reason",
        ec::WFX => "WFI/WFE",
        ec::HVC64 => "HVC",
        ec::SMC64 => "SMC (the guest must use HVC)",
        ec::SYSREG => "trapped system register access",
        ec::INSTRUCTION_ABORT_LOWER => "instruction abort (stage-2 permission or walk fault)",
        ec::DATA_ABORT_LOWER => "data abort (stage-2 permission or walk fault)",
        ec::SERROR => "SError",
        _ => "unhandled exception class",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{Request, ShutdownReason};

    fn esr(class: u64, iss: u64) -> u64 {
        class << 26 | 1 << 25 | iss
    }

    #[test]
    fn fault_ipa_joins_hpfar_and_far() {
        let at = |hpfar, far| fault_ipa(hpfar, far).as_u64();
        assert_eq!(at(0x0400_0000 >> 8, 0x0400_0000), 0x0400_0000);
        assert_eq!(at(0x4020_1000 >> 8, 0xffff_0000_4020_1abc), 0x4020_1abc);
        assert_eq!(at(0x12_3456_7000 >> 8, 0x5), 0x12_3456_7005);
    }

    #[test]
    fn stage2_translation_faults_are_nested_page_faults() {
        // Data abort, translation fault level 3 (DFSC 0b000111), read.
        let t = Trap {
            esr: esr(0x24, 0x07),
            far: 0x0400_0000,
            hpfar: 0x0400_0000 >> 8,
        };
        assert_eq!(
            decode(&t, &[0; 4]),
            Exit::NestedPageFault {
                gpa: GuestPhysAddr::new(0x0400_0000),
                access: Access::Read
            }
        );
        // Same, write (WnR).
        let t = Trap {
            esr: esr(0x24, 1 << 6 | 0x06),
            far: 0x4000_0010,
            hpfar: 0x4000_0000 >> 8,
        };
        assert_eq!(
            decode(&t, &[0; 4]),
            Exit::NestedPageFault {
                gpa: GuestPhysAddr::new(0x4000_0010),
                access: Access::Write
            }
        );
        // Instruction abort, translation fault level 2.
        let t = Trap {
            esr: esr(0x20, 0x06),
            far: 0x4020_0000,
            hpfar: 0x4020_0000 >> 8,
        };
        assert_eq!(
            decode(&t, &[0; 4]),
            Exit::NestedPageFault {
                gpa: GuestPhysAddr::new(0x4020_0000),
                access: Access::Execute
            }
        );
    }

    #[test]
    fn permission_and_walk_faults_are_not_served_by_mapping() {
        // Permission fault (DFSC 0b001111): the page is mapped, the access is not allowed.
        let perm = Trap {
            esr: esr(0x24, 1 << 6 | 0x0f),
            far: 0x0400_0000,
            hpfar: 0x0400_0000 >> 8,
        };
        assert!(
            matches!(decode(&perm, &[0; 4]), Exit::Unexpected(Unexpected { code, .. }) if code == perm.esr)
        );
        // Translation fault on a stage-1 walk (S1PTW).
        let walk = Trap {
            esr: esr(0x24, 1 << 7 | 0x07),
            ..perm
        };
        assert!(!walk.is_stage2_miss());
    }

    #[test]
    fn hvc_is_an_smccc_call() {
        let t = Trap {
            esr: esr(0x16, 0),
            ..Default::default()
        };
        assert_eq!(
            decode(&t, &[0x8400_0008, 0, 0, 0]),
            Exit::Hypercall(Request::Shutdown(ShutdownReason::Normal))
        );
        assert_eq!(
            decode(&t, &[smccc::GA_CONSOLE_PUTC, b'a' as u64, 0, 0]),
            Exit::Hypercall(Request::ConsolePutByte(b'a'))
        );
    }

    #[test]
    fn other_classes_are_unexpected_and_named() {
        let t = Trap {
            esr: esr(0x17, 0),
            far: 1,
            hpfar: 2,
        };
        let Exit::Unexpected(u) = decode(&t, &[0; 4]) else {
            panic!("smc")
        };
        assert_eq!((u.what, u.info), ("SMC (the guest must use HVC)", [1, 2]));
        assert_eq!(class_name(0x01), "WFI/WFE");
    }
}
