//! The guest's self-hosted debug and PMU registers, trapped and held here.
//!
//! The hypervisor traps them (MDCR_EL2.TDA, TDOSA, TDRA, TPM, TPMCR) so that
//! a guest cannot arm a breakpoint or a counter that fires at EL2. A kernel
//! still writes them at boot (Linux's `__cpu_setup` writes MDSCR_EL1 and
//! PMUSERENR_EL0, its debug-monitor code unlocks the OS lock through
//! OSLAR_EL1, and its hw_breakpoint code clears every breakpoint and
//! watchpoint), so each access is given the register's architected
//! behaviour as storage: what the guest writes it reads back (Arm ARM DDI
//! 0487, D23.3 "Debug registers"). What is not modelled is the effect:
//! breakpoints, watchpoints and software step never fire in the guest.
//!
//! The PMU is offered to nobody: its registers read as zero and ignore
//! writes, so PMCR_EL0.N (bits 15:11) reads 0, "no event counters"
//! (DDI 0487 D23.5 "PMCR_EL0"); the device tree has no `arm,armv8-pmuv3`
//! node, so Linux does not look for counters.

use super::sysreg::SysReg;

/// Breakpoint and watchpoint register pairs held: the most DDI 0487 allows
/// (16 each, DBGBVR<n>_EL1 with n = CRm).
const PAIRS: usize = 16;

/// OSLSR_EL1.OSLM\[1\] (bit 3): the OS lock is implemented (D23.3
/// "OSLSR_EL1"), with OSLM\[0\] (bit 0) clear.
const OSLSR_OSLM_IMPLEMENTED: u64 = 1 << 3;
/// OSLSR_EL1.OSLK (bit 1): the OS lock is locked.
const OSLSR_OSLK: u64 = 1 << 1;
/// OSLAR_EL1.OSLK (bit 0): lock (1) or unlock (0).
const OSLAR_OSLK: u64 = 1 << 0;
/// DBGAUTHSTATUS_EL1: Non-secure invasive (NSID, bits 1:0) and
/// non-invasive (NSNID, bits 3:2) debug implemented but disabled (0b10
/// each, D23.3 "DBGAUTHSTATUS_EL1"), which is the truth for the guest:
/// its breakpoints never fire.
const DBGAUTHSTATUS: u64 = 0b1010;

/// Debug registers by encoding (DDI 0487 D23.3), op0 = 2 unless noted.
mod reg {
    use super::SysReg;
    /// MDSCR_EL1, S2_0_C0_C2_2.
    pub const MDSCR_EL1: SysReg = SysReg::new(2, 0, 0, 2, 2);
    /// MDCCINT_EL1, S2_0_C0_C2_0.
    pub const MDCCINT_EL1: SysReg = SysReg::new(2, 0, 0, 2, 0);
    /// OSDTRRX_EL1, S2_0_C0_C0_2.
    pub const OSDTRRX_EL1: SysReg = SysReg::new(2, 0, 0, 0, 2);
    /// OSDTRTX_EL1, S2_0_C0_C3_2.
    pub const OSDTRTX_EL1: SysReg = SysReg::new(2, 0, 0, 3, 2);
    /// OSECCR_EL1, S2_0_C0_C6_2.
    pub const OSECCR_EL1: SysReg = SysReg::new(2, 0, 0, 6, 2);
    /// MDRAR_EL1, S2_0_C1_C0_0 (read-only).
    pub const MDRAR_EL1: SysReg = SysReg::new(2, 0, 1, 0, 0);
    /// OSLAR_EL1, S2_0_C1_C0_4 (write-only).
    pub const OSLAR_EL1: SysReg = SysReg::new(2, 0, 1, 0, 4);
    /// OSLSR_EL1, S2_0_C1_C1_4 (read-only).
    pub const OSLSR_EL1: SysReg = SysReg::new(2, 0, 1, 1, 4);
    /// OSDLR_EL1, S2_0_C1_C3_4.
    pub const OSDLR_EL1: SysReg = SysReg::new(2, 0, 1, 3, 4);
    /// DBGPRCR_EL1, S2_0_C1_C4_4.
    pub const DBGPRCR_EL1: SysReg = SysReg::new(2, 0, 1, 4, 4);
    /// DBGCLAIMSET_EL1, S2_0_C7_C8_6.
    pub const DBGCLAIMSET_EL1: SysReg = SysReg::new(2, 0, 7, 8, 6);
    /// DBGCLAIMCLR_EL1, S2_0_C7_C9_6.
    pub const DBGCLAIMCLR_EL1: SysReg = SysReg::new(2, 0, 7, 9, 6);
    /// DBGAUTHSTATUS_EL1, S2_0_C7_C14_6 (read-only).
    pub const DBGAUTHSTATUS_EL1: SysReg = SysReg::new(2, 0, 7, 14, 6);
}

/// A trapped access this module does not hold (or a write to a read-only
/// register, or a read of a write-only one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotADebugRegister(pub SysReg);

/// The guest's debug registers as last written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebugRegs {
    mdscr: u64,
    mdccint: u64,
    osdtrrx: u64,
    osdtrtx: u64,
    oseccr: u64,
    os_locked: bool,
    osdlr: u64,
    dbgprcr: u64,
    claim: u64,
    /// DBGBVR, DBGBCR, DBGWVR, DBGWCR, by pair number.
    pairs: [[u64; 4]; PAIRS],
}

impl Default for DebugRegs {
    fn default() -> Self {
        Self::new()
    }
}

/// Which of a breakpoint/watchpoint pair's registers `reg` is (op2 4..7 =
/// BVR, BCR, WVR, WCR) and its pair number (CRm).
fn pair_register(reg: SysReg) -> Option<(usize, usize)> {
    (reg.op0 == 2 && reg.op1 == 0 && reg.crn == 0 && (4..=7).contains(&reg.op2))
        .then(|| (usize::from(reg.crm), usize::from(reg.op2 - 4)))
}

/// Whether `reg` is a PMU register (DDI 0487 D23.5): op0 3 with CRn 9
/// (PMCR_EL0 ... PMINTEN*_EL1) or op1 3 with CRn 14 and CRm 8..15
/// (PMEVCNTR<n>_EL0, PMEVTYPER<n>_EL0, PMCCFILTR_EL0).
fn is_pmu_register(reg: SysReg) -> bool {
    reg.op0 == 3
        && ((reg.crn == 9 && (reg.op1 == 3 || reg.op1 == 0) && reg.crm >= 12)
            || (reg.op1 == 3 && reg.crn == 14 && reg.crm >= 8))
}

impl DebugRegs {
    /// The registers after a cold reset: all zero, the OS lock locked
    /// (OSLSR_EL1.OSLK resets to 1, D23.3 "OSLSR_EL1").
    pub const fn new() -> Self {
        Self {
            mdscr: 0,
            mdccint: 0,
            osdtrrx: 0,
            osdtrtx: 0,
            oseccr: 0,
            os_locked: true,
            osdlr: 0,
            dbgprcr: 0,
            claim: 0,
            pairs: [[0; 4]; PAIRS],
        }
    }

    /// Whether `reg` is one of the registers this module answers.
    pub fn holds(reg: SysReg) -> bool {
        is_pmu_register(reg)
            || pair_register(reg).is_some()
            || [
                reg::MDSCR_EL1,
                reg::MDCCINT_EL1,
                reg::OSDTRRX_EL1,
                reg::OSDTRTX_EL1,
                reg::OSECCR_EL1,
                reg::MDRAR_EL1,
                reg::OSLAR_EL1,
                reg::OSLSR_EL1,
                reg::OSDLR_EL1,
                reg::DBGPRCR_EL1,
                reg::DBGCLAIMSET_EL1,
                reg::DBGCLAIMCLR_EL1,
                reg::DBGAUTHSTATUS_EL1,
            ]
            .contains(&reg)
    }

    /// A guest `MRS` of `reg`.
    pub fn read(&self, reg: SysReg) -> Result<u64, NotADebugRegister> {
        if is_pmu_register(reg) {
            return Ok(0);
        }
        if let Some((n, which)) = pair_register(reg) {
            return Ok(self.pairs[n][which]);
        }
        Ok(match reg {
            reg::MDSCR_EL1 => self.mdscr,
            reg::MDCCINT_EL1 => self.mdccint,
            reg::OSDTRRX_EL1 => self.osdtrrx,
            reg::OSDTRTX_EL1 => self.osdtrtx,
            reg::OSECCR_EL1 => self.oseccr,
            // No memory-mapped debug ROM: MDRAR_EL1.Valid (bits 1:0) = 0.
            reg::MDRAR_EL1 => 0,
            reg::OSLSR_EL1 => OSLSR_OSLM_IMPLEMENTED | if self.os_locked { OSLSR_OSLK } else { 0 },
            reg::OSDLR_EL1 => self.osdlr,
            reg::DBGPRCR_EL1 => self.dbgprcr,
            reg::DBGCLAIMSET_EL1 | reg::DBGCLAIMCLR_EL1 => self.claim,
            reg::DBGAUTHSTATUS_EL1 => DBGAUTHSTATUS,
            other => return Err(NotADebugRegister(other)),
        })
    }

    /// A guest `MSR` of `value` to `reg`.
    pub fn write(&mut self, reg: SysReg, value: u64) -> Result<(), NotADebugRegister> {
        if is_pmu_register(reg) {
            return Ok(());
        }
        if let Some((n, which)) = pair_register(reg) {
            self.pairs[n][which] = value;
            return Ok(());
        }
        match reg {
            reg::MDSCR_EL1 => self.mdscr = value,
            reg::MDCCINT_EL1 => self.mdccint = value,
            reg::OSDTRRX_EL1 => self.osdtrrx = value,
            reg::OSDTRTX_EL1 => self.osdtrtx = value,
            reg::OSECCR_EL1 => self.oseccr = value,
            reg::OSLAR_EL1 => self.os_locked = value & OSLAR_OSLK != 0,
            // OSDLR_EL1.DLK, bit 0, the only writable bit.
            reg::OSDLR_EL1 => self.osdlr = value & 1,
            reg::DBGPRCR_EL1 => self.dbgprcr = value,
            // Eight claim tag bits (D23.3 "DBGCLAIMSET_EL1").
            reg::DBGCLAIMSET_EL1 => self.claim |= value & 0xff,
            reg::DBGCLAIMCLR_EL1 => self.claim &= !(value & 0xff),
            other => return Err(NotADebugRegister(other)),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_guest_writes_it_reads_back() {
        let mut d = DebugRegs::new();
        d.write(reg::MDSCR_EL1, 1 << 12).unwrap();
        assert_eq!(d.read(reg::MDSCR_EL1), Ok(1 << 12));
        // DBGBCR3_EL1 and DBGWVR15_EL1.
        let bcr3 = SysReg::new(2, 0, 0, 3, 5);
        let wvr15 = SysReg::new(2, 0, 0, 15, 6);
        d.write(bcr3, 0x1e7).unwrap();
        d.write(wvr15, 0xffff_0000_1234_0000).unwrap();
        assert_eq!(d.read(bcr3), Ok(0x1e7));
        assert_eq!(d.read(wvr15), Ok(0xffff_0000_1234_0000));
        assert_eq!(d.read(SysReg::new(2, 0, 0, 3, 4)), Ok(0), "DBGBVR3");
    }

    #[test]
    fn the_os_lock_starts_locked_and_oslar_unlocks_it() {
        let mut d = DebugRegs::new();
        assert_eq!(d.read(reg::OSLSR_EL1), Ok(0b1010));
        d.write(reg::OSLAR_EL1, 0).unwrap();
        assert_eq!(d.read(reg::OSLSR_EL1), Ok(0b1000));
        assert_eq!(
            d.read(reg::OSLAR_EL1),
            Err(NotADebugRegister(reg::OSLAR_EL1)),
            "OSLAR_EL1 is write-only"
        );
        assert_eq!(
            d.write(reg::OSLSR_EL1, 0),
            Err(NotADebugRegister(reg::OSLSR_EL1)),
            "OSLSR_EL1 is read-only"
        );
    }

    #[test]
    fn claim_tags_set_and_clear() {
        let mut d = DebugRegs::new();
        d.write(reg::DBGCLAIMSET_EL1, 0x1_0005).unwrap();
        d.write(reg::DBGCLAIMCLR_EL1, 0x4).unwrap();
        assert_eq!(d.read(reg::DBGCLAIMCLR_EL1), Ok(1));
    }

    #[test]
    fn the_pmu_reads_zero_and_ignores_writes() {
        let mut d = DebugRegs::new();
        let pmcr = SysReg::new(3, 3, 9, 12, 0);
        let pmuserenr = SysReg::new(3, 3, 9, 14, 0);
        let pmintenset = SysReg::new(3, 0, 9, 14, 1);
        let pmevtyper5 = SysReg::new(3, 3, 14, 12, 5);
        let pmccfiltr = SysReg::new(3, 3, 14, 15, 7);
        for r in [pmcr, pmuserenr, pmintenset, pmevtyper5, pmccfiltr] {
            assert!(DebugRegs::holds(r), "{r}");
            d.write(r, u64::MAX).unwrap();
            assert_eq!(d.read(r), Ok(0), "{r}");
        }
    }

    #[test]
    fn other_registers_are_not_held() {
        let d = DebugRegs::new();
        // CNTP_CTL_EL0, SCTLR_EL1, MIDR_EL1.
        for r in [
            SysReg::new(3, 3, 14, 2, 1),
            SysReg::new(3, 0, 1, 0, 0),
            SysReg::new(3, 0, 0, 0, 0),
        ] {
            assert!(!DebugRegs::holds(r), "{r}");
            assert_eq!(d.read(r), Err(NotADebugRegister(r)));
        }
    }
}
