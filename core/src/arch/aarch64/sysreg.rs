//! Decoding a trapped `MSR`/`MRS` (ESR_EL2.EC 0x18) into the system
//! register it names, the general-purpose register it moves, and its
//! direction (Arm ARM DDI 0487, D23.2 "ESR_EL2", "ISS encoding for an
//! exception from MSR, MRS, or System instruction execution in AArch64
//! state").

use core::fmt;

/// ISS field positions of a trapped MSR/MRS (DDI 0487 D23.2).
pub mod iss {
    /// Op0, bits 21:20.
    pub const OP0_SHIFT: u32 = 20;
    /// Op2, bits 19:17.
    pub const OP2_SHIFT: u32 = 17;
    /// Op1, bits 16:14.
    pub const OP1_SHIFT: u32 = 14;
    /// CRn, bits 13:10.
    pub const CRN_SHIFT: u32 = 10;
    /// Rt, bits 9:5: the general-purpose register moved.
    pub const RT_SHIFT: u32 = 5;
    /// CRm, bits 4:1.
    pub const CRM_SHIFT: u32 = 1;
    /// Direction, bit 0: 1 for a read (MRS), 0 for a write (MSR).
    pub const READ: u64 = 1;
}

/// A system register by its encoding `S<op0>_<op1>_C<crn>_C<crm>_<op2>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysReg {
    /// Op0 (2 bits).
    pub op0: u8,
    /// Op1 (3 bits).
    pub op1: u8,
    /// CRn (4 bits).
    pub crn: u8,
    /// CRm (4 bits).
    pub crm: u8,
    /// Op2 (3 bits).
    pub op2: u8,
}

impl SysReg {
    /// The register `S<op0>_<op1>_C<crn>_C<crm>_<op2>`.
    pub const fn new(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> Self {
        Self {
            op0,
            op1,
            crn,
            crm,
            op2,
        }
    }
}

impl fmt::Display for SysReg {
    /// The assembler's generic name, `S3_3_C14_C2_1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "S{}_{}_C{}_C{}_{}",
            self.op0, self.op1, self.crn, self.crm, self.op2
        )
    }
}

/// The EL1 physical timer's registers (DDI 0487 D23.9, "Generic Timer
/// registers"), as an EL1 guest names them.
pub mod timer {
    use super::SysReg;
    /// CNTP_TVAL_EL0: the timer value, a signed 32-bit countdown.
    pub const CNTP_TVAL_EL0: SysReg = SysReg::new(3, 3, 14, 2, 0);
    /// CNTP_CTL_EL0: ENABLE, IMASK, ISTATUS.
    pub const CNTP_CTL_EL0: SysReg = SysReg::new(3, 3, 14, 2, 1);
    /// CNTP_CVAL_EL0: the compare value.
    pub const CNTP_CVAL_EL0: SysReg = SysReg::new(3, 3, 14, 2, 2);
    /// CNTPCT_EL0: the physical count.
    pub const CNTPCT_EL0: SysReg = SysReg::new(3, 3, 14, 0, 1);
}

/// One trapped MSR or MRS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysRegAccess {
    /// The system register.
    pub reg: SysReg,
    /// The general-purpose register: its number, 31 meaning XZR.
    pub rt: u8,
    /// MRS (true) or MSR (false).
    pub read: bool,
}

/// `bits` bits of `esr` from bit `shift` up.
const fn field(esr: u64, shift: u32, bits: u32) -> u8 {
    ((esr >> shift) & ((1 << bits) - 1)) as u8
}

/// Decodes the ISS of an exception with EC 0x18.
pub const fn decode(esr: u64) -> SysRegAccess {
    SysRegAccess {
        reg: SysReg::new(
            field(esr, iss::OP0_SHIFT, 2),
            field(esr, iss::OP1_SHIFT, 3),
            field(esr, iss::CRN_SHIFT, 4),
            field(esr, iss::CRM_SHIFT, 4),
            field(esr, iss::OP2_SHIFT, 3),
        ),
        rt: field(esr, iss::RT_SHIFT, 5),
        read: esr & iss::READ != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ESR_EL2 for a trapped MSR/MRS of `reg` with `rt`.
    fn esr(reg: SysReg, rt: u64, read: bool) -> u64 {
        0x18 << 26
            | 1 << 25
            | (reg.op0 as u64) << 20
            | (reg.op2 as u64) << 17
            | (reg.op1 as u64) << 14
            | (reg.crn as u64) << 10
            | rt << 5
            | (reg.crm as u64) << 1
            | read as u64
    }

    #[test]
    fn timer_accesses_decode_to_their_registers() {
        // `msr cntp_tval_el0, x3`
        let a = decode(esr(timer::CNTP_TVAL_EL0, 3, false));
        assert_eq!(
            a,
            SysRegAccess {
                reg: timer::CNTP_TVAL_EL0,
                rt: 3,
                read: false
            }
        );
        // `mrs x30, cntp_ctl_el0`
        let a = decode(esr(timer::CNTP_CTL_EL0, 30, true));
        assert_eq!((a.reg, a.rt, a.read), (timer::CNTP_CTL_EL0, 30, true));
        // `msr cntp_cval_el0, xzr`
        let a = decode(esr(timer::CNTP_CVAL_EL0, 31, false));
        assert_eq!((a.reg, a.rt), (timer::CNTP_CVAL_EL0, 31));
    }

    #[test]
    fn real_syndromes_decode() {
        // What QEMU reported for the bare guest's `mrs x8, cntpct_el0` while
        // CNTHCTL_EL2 still had the EL1 counter trapped.
        let a = decode(0x6232_f901);
        assert_eq!(a.reg, timer::CNTPCT_EL0);
        assert_eq!((a.rt, a.read), (8, true));
        // `msr cntp_ctl_el0, x0`: EC 0x18, IL, op0 3, op2 1, op1 3, CRn 14,
        // Rt 0, CRm 2, write.
        let a = decode(0x6232_f804);
        assert_eq!(a.reg, timer::CNTP_CTL_EL0);
        assert_eq!((a.rt, a.read), (0, false));
        assert_eq!(a.reg.to_string(), "S3_3_C14_C2_1");
    }
}
