//! Decoding an exception taken from an EL1 guest to EL2 into an [`Exit`].
//!
//! The vCPU hands over `ESR_EL2`, `FAR_EL2`, `HPFAR_EL2` and the guest's
//! `x0..x3`. Field positions are from the Arm Architecture Reference Manual
//! for A-profile (DDI 0487), chapter D23 "AArch64 System Register
//! Descriptions": D23.2 "ESR_EL2" (its EC table, and "ISS encoding for an
//! exception from a Data Abort" / "... an Instruction Abort") and
//! "HPFAR_EL2" for the faulting IPA.

use crate::addr::GuestPhysAddr;
use crate::arch::smccc;
use crate::exit::{Access, Exit, Unexpected};

/// ESR_EL2.EC values this hypervisor names (DDI 0487 D23.2, ESR_EL2,
/// "EC, bits [31:26]").
pub mod ec {
    /// Unknown reason (an undefined instruction, among others).
    pub const UNKNOWN: u64 = 0x00;
    /// A trapped WFI or WFE.
    pub const WFX: u64 = 0x01;
    /// HVC from AArch64 state: a hypercall.
    pub const HVC64: u64 = 0x16;
    /// SMC from AArch64 state, trapped by HCR_EL2.TSC.
    pub const SMC64: u64 = 0x17;
    /// A trapped MSR, MRS or system instruction.
    pub const SYSREG: u64 = 0x18;
    /// Instruction Abort from a lower Exception level.
    pub const INSTRUCTION_ABORT_LOWER: u64 = 0x20;
    /// Data Abort from a lower Exception level.
    pub const DATA_ABORT_LOWER: u64 = 0x24;
    /// SError exception.
    pub const SERROR: u64 = 0x2f;
}

/// ESR_EL2 field positions (DDI 0487 D23.2, ESR_EL2).
pub mod field {
    /// EC, bits [31:26]: the shift of the exception class.
    pub const EC_SHIFT: u32 = 26;
    /// EC, bits [31:26]: the width mask after shifting.
    pub const EC_MASK: u64 = 0x3f;
    /// ISS bits [5:0] of an abort: DFSC (data) or IFSC (instruction), the
    /// fault status code.
    pub const FSC_MASK: u64 = 0x3f;
    /// Fault status code bits [5:2], the fault type without the level.
    pub const FSC_TYPE_MASK: u64 = 0x3c;
    /// FSC type 0b0001xx: translation fault at level xx.
    pub const FSC_TRANSLATION: u64 = 0x04;
    /// FSC type 0b0010xx: access flag fault at level xx.
    pub const FSC_ACCESS_FLAG: u64 = 0x08;
    /// FSC type 0b0011xx: permission fault at level xx.
    pub const FSC_PERMISSION: u64 = 0x0c;
    /// ISS bit 6 of a Data Abort: WnR, set when the access was a write.
    pub const WNR: u64 = 1 << 6;
    /// ISS bit 7 of an abort: S1PTW, set when the stage-2 fault was taken
    /// on a stage-1 translation table walk.
    pub const S1PTW: u64 = 1 << 7;
    /// ISS bit 8 of a Data Abort: CM, set when the abort came from a cache
    /// maintenance or address translation instruction (WnR then reads 1).
    pub const CM: u64 = 1 << 8;
}

/// HPFAR_EL2.FIPA, bits [43:4], holds IPA bits [51:12] (DDI 0487 D23.2,
/// HPFAR_EL2; without FEAT_LPA the top bits read as zero).
pub const HPFAR_FIPA_SHIFT: u32 = 4;
/// Width of HPFAR_EL2.FIPA (bits [43:4]).
pub const HPFAR_FIPA_BITS: u32 = 40;
/// FAR_EL2 bits [11:0]: the offset inside the 4 KiB page HPFAR_EL2 names.
pub const FAR_PAGE_OFFSET_MASK: u64 = 0xfff;
/// The page shift an HPFAR_EL2.FIPA value is scaled by.
const PAGE_SHIFT: u32 = 12;

/// The trap registers the vCPU read on exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trap {
    /// Exception Syndrome Register (EL2).
    pub esr: u64,
    /// Fault Address Register (EL2): the faulting virtual address.
    pub far: u64,
    /// Hypervisor IPA Fault Address Register: the faulting IPA's page.
    pub hpfar: u64,
}

impl Trap {
    /// The exception class, ESR_EL2.EC.
    pub const fn class(&self) -> u64 {
        (self.esr >> field::EC_SHIFT) & field::EC_MASK
    }

    /// Whether the abort is a stage-2 fault the hypervisor may serve by
    /// mapping a page: a translation or access-flag fault (DFSC/IFSC
    /// 0b0001xx / 0b0010xx). That includes a fault on the guest's own
    /// stage-1 table walk (S1PTW): its page tables may live in RAM it has
    /// not touched through a data access yet.
    pub const fn is_stage2_miss(&self) -> bool {
        let kind = self.esr & field::FSC_MASK & field::FSC_TYPE_MASK;
        kind == field::FSC_TRANSLATION || kind == field::FSC_ACCESS_FLAG
    }

    /// Whether the abort is a stage-2 permission fault: the page is mapped
    /// but not for this access (a write to read-only pflash). It goes to
    /// the run loop as a nested page fault too, which names the region and
    /// the refused access (or, were the access allowed, reports the page
    /// as already mapped) instead of a bare syndrome.
    pub const fn is_stage2_permission(&self) -> bool {
        self.esr & field::FSC_MASK & field::FSC_TYPE_MASK == field::FSC_PERMISSION
    }

    /// What the faulting access needs of the page: an instruction fetch;
    /// a write (WnR), unless the abort came from a cache-maintenance
    /// instruction (CM), which reports WnR = 1 but needs the page only
    /// present and readable; otherwise a read. A stage-1 walk that writes
    /// (hardware access-flag update) is a write.
    pub const fn access(&self) -> Access {
        if self.class() == ec::INSTRUCTION_ABORT_LOWER && self.esr & field::S1PTW == 0 {
            Access::Execute
        } else if self.esr & field::WNR != 0 && self.esr & field::CM == 0 {
            Access::Write
        } else {
            Access::Read
        }
    }
}

/// The faulting intermediate physical address: HPFAR_EL2.FIPA holds IPA
/// bits [51:12] in bits [43:4]; the page offset comes from FAR_EL2.
pub const fn fault_ipa(hpfar: u64, far: u64) -> GuestPhysAddr {
    let page = (hpfar >> HPFAR_FIPA_SHIFT) & ((1 << HPFAR_FIPA_BITS) - 1);
    GuestPhysAddr::new(page << PAGE_SHIFT | (far & FAR_PAGE_OFFSET_MASK))
}

/// Decodes a trap; `x` holds the guest's `x0..x3` (for HVC calls).
pub fn decode(trap: &Trap, x: &[u64; 4]) -> Exit {
    match trap.class() {
        ec::DATA_ABORT_LOWER | ec::INSTRUCTION_ABORT_LOWER
            if trap.is_stage2_miss() || trap.is_stage2_permission() =>
        {
            Exit::NestedPageFault {
                gpa: fault_ipa(trap.hpfar, trap.far),
                access: trap.access(),
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
        ec::INSTRUCTION_ABORT_LOWER => {
            "instruction abort (not a stage-2 translation or permission fault)"
        }
        ec::DATA_ABORT_LOWER => "data abort (not a stage-2 translation or permission fault)",
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
    fn permission_faults_reach_the_run_loop_as_what_they_tried() {
        // Permission fault (DFSC 0b001111): the page is mapped, the access
        // is not allowed; the run loop names the region and the write.
        let perm = Trap {
            esr: esr(0x24, 1 << 6 | 0x0f),
            far: 0x0400_0000,
            hpfar: 0x0400_0000 >> 8,
        };
        assert!(!perm.is_stage2_miss() && perm.is_stage2_permission());
        assert_eq!(
            decode(&perm, &[0; 4]),
            Exit::NestedPageFault {
                gpa: GuestPhysAddr::new(0x0400_0000),
                access: Access::Write
            }
        );
        // Other fault types (an alignment fault, DFSC 0b100001) are not.
        let align = Trap {
            esr: esr(0x24, 0x21),
            ..perm
        };
        assert!(
            matches!(decode(&align, &[0; 4]), Exit::Unexpected(Unexpected { code, .. }) if code == align.esr)
        );
    }

    #[test]
    fn walks_and_cache_maintenance_fault_in_pages_they_may_read() {
        // A stage-1 table walk (S1PTW) missing at stage 2: the guest's page
        // tables are in RAM it has not touched yet; a read.
        let walk = Trap {
            esr: esr(0x24, 1 << 7 | 0x07),
            far: 0x4080_0123,
            hpfar: 0x4080_0000 >> 8,
        };
        assert!(walk.is_stage2_miss());
        assert_eq!(
            decode(&walk, &[0; 4]),
            Exit::NestedPageFault {
                gpa: GuestPhysAddr::new(0x4080_0123),
                access: Access::Read
            }
        );
        // A walk for an instruction fetch is still a read of the table.
        let fetch_walk = Trap {
            esr: esr(0x20, 1 << 7 | 0x07),
            ..walk
        };
        assert_eq!(fetch_walk.access(), Access::Read);
        // `dc civac` on unmapped pflash: CM = 1 with WnR = 1 is not a write.
        let dc = Trap {
            esr: esr(0x24, 1 << 8 | 1 << 6 | 0x07),
            far: 0x0400_0040,
            hpfar: 0x0400_0000 >> 8,
        };
        assert_eq!(
            decode(&dc, &[0; 4]),
            Exit::NestedPageFault {
                gpa: GuestPhysAddr::new(0x0400_0040),
                access: Access::Read
            }
        );
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
