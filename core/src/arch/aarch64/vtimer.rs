//! The guest's EL1 physical timer, emulated: the hypervisor traps the
//! guest's `CNTP_CTL/CVAL/TVAL_EL0` accesses (CNTHCTL_EL2.EL1PTEN = 0) and
//! keeps the timer here, so that it knows the guest's deadline and can arm
//! its own EL2 timer for it, and so that the timer's interrupt reaches the
//! guest through the emulated GIC as PPI 30.
//!
//! Semantics from the Arm ARM (DDI 0487), D11.2 "The AArch64 view of the
//! Generic Timer" and D23.9 "CNTP_CTL_EL0", "CNTP_CVAL_EL0",
//! "CNTP_TVAL_EL0": the timer condition is met when `count - CVAL >= 0`
//! (count = CNTPCT_EL0, unsigned 64-bit compare); ISTATUS reads the
//! condition while ENABLE is set; the interrupt is asserted while ENABLE is
//! set, IMASK is clear and the condition is met (a level, not an edge).
//! Writing TVAL sets `CVAL = count + sign_extend(TVAL)`; reading it gives
//! the low 32 bits of `CVAL - count`.

use super::sysreg::{SysReg, timer};

/// CNTP_CTL_EL0 bits (DDI 0487 D23.9).
pub mod ctl {
    /// ENABLE, bit 0: the timer runs.
    pub const ENABLE: u64 = 1 << 0;
    /// IMASK, bit 1: the interrupt is masked.
    pub const IMASK: u64 = 1 << 1;
    /// ISTATUS, bit 2 (read-only): the timer condition is met.
    pub const ISTATUS: u64 = 1 << 2;
}

/// The interrupt ID of the EL1 physical timer on QEMU `virt` (PPI 14,
/// INTID 30, as the device tree's `arm,armv8-timer` node lists it).
pub const EL1_PHYS_TIMER_INTID: u32 = 30;

/// The interrupt ID of the EL1 virtual timer on QEMU `virt` (PPI 11,
/// INTID 27). That timer is not emulated: the guest owns the hardware one
/// (its CNTV_* accesses do not trap; CNTVOFF_EL2 offsets its count), and
/// the hypervisor forwards its interrupt to the emulated GIC.
pub const EL1_VIRT_TIMER_INTID: u32 = 27;

/// Whether a timer whose CNTx_CTL_EL0 reads `ctl` asserts its interrupt:
/// ENABLE set, IMASK clear, ISTATUS set (DDI 0487 D11.2.4 "Timers").
pub const fn asserts_interrupt(ctl: u64) -> bool {
    ctl & (ctl::ENABLE | ctl::IMASK | ctl::ISTATUS) == ctl::ENABLE | ctl::ISTATUS
}

/// The guest's EL1 physical timer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysTimer {
    /// ENABLE and IMASK as the guest wrote them.
    ctl: u64,
    /// The compare value.
    cval: u64,
}

/// A timer register this model does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotATimerRegister(pub SysReg);

impl PhysTimer {
    /// A reset timer: disabled, compare value 0.
    pub const fn new() -> Self {
        Self { ctl: 0, cval: 0 }
    }

    /// Whether the timer condition is met at `count`.
    const fn condition(&self, count: u64) -> bool {
        count >= self.cval
    }

    /// A guest read of `reg` at physical count `count`.
    pub fn read(&self, reg: SysReg, count: u64) -> Result<u64, NotATimerRegister> {
        Ok(match reg {
            timer::CNTP_CTL_EL0 => {
                let status = if self.ctl & ctl::ENABLE != 0 && self.condition(count) {
                    ctl::ISTATUS
                } else {
                    0
                };
                self.ctl | status
            }
            timer::CNTP_CVAL_EL0 => self.cval,
            timer::CNTP_TVAL_EL0 => self.cval.wrapping_sub(count) & 0xffff_ffff,
            other => return Err(NotATimerRegister(other)),
        })
    }

    /// A guest write of `value` to `reg` at physical count `count`.
    pub fn write(&mut self, reg: SysReg, value: u64, count: u64) -> Result<(), NotATimerRegister> {
        match reg {
            timer::CNTP_CTL_EL0 => self.ctl = value & (ctl::ENABLE | ctl::IMASK),
            timer::CNTP_CVAL_EL0 => self.cval = value,
            timer::CNTP_TVAL_EL0 => {
                self.cval = count.wrapping_add(value as u32 as i32 as i64 as u64);
            }
            other => return Err(NotATimerRegister(other)),
        }
        Ok(())
    }

    /// The count at which the interrupt will assert, or `u64::MAX` if it
    /// cannot (disabled or masked).
    pub const fn deadline(&self) -> u64 {
        if self.ctl & (ctl::ENABLE | ctl::IMASK) == ctl::ENABLE {
            self.cval
        } else {
            u64::MAX
        }
    }

    /// The level of the timer's interrupt output at `count`.
    pub const fn irq_level(&self, count: u64) -> bool {
        self.ctl & (ctl::ENABLE | ctl::IMASK) == ctl::ENABLE && self.condition(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timer_asserts_only_enabled_unmasked_and_met() {
        assert!(asserts_interrupt(ctl::ENABLE | ctl::ISTATUS));
        assert!(!asserts_interrupt(ctl::ENABLE | ctl::ISTATUS | ctl::IMASK));
        assert!(!asserts_interrupt(ctl::ENABLE));
        assert!(!asserts_interrupt(ctl::ISTATUS));
    }

    #[test]
    fn a_reset_timer_never_fires() {
        let t = PhysTimer::new();
        assert_eq!(t.deadline(), u64::MAX);
        assert!(!t.irq_level(u64::MAX));
        assert_eq!(t.read(timer::CNTP_CTL_EL0, 100), Ok(0));
    }

    #[test]
    fn tval_counts_down_from_the_write() {
        let mut t = PhysTimer::new();
        // ArceOS: `CNTP_TVAL_EL0 = interval`, then `CNTP_CTL_EL0 = ENABLE`.
        t.write(timer::CNTP_TVAL_EL0, 62_500, 1_000_000).unwrap();
        t.write(timer::CNTP_CTL_EL0, ctl::ENABLE, 1_000_010)
            .unwrap();
        assert_eq!(t.read(timer::CNTP_CVAL_EL0, 0), Ok(1_062_500));
        assert_eq!(t.deadline(), 1_062_500);
        assert_eq!(t.read(timer::CNTP_TVAL_EL0, 1_062_000), Ok(500));
        assert!(!t.irq_level(1_062_499));
        assert!(t.irq_level(1_062_500));
        assert_eq!(
            t.read(timer::CNTP_CTL_EL0, 1_062_500),
            Ok(ctl::ENABLE | ctl::ISTATUS)
        );
        // Past the deadline TVAL reads negative (as 32 bits).
        assert_eq!(t.read(timer::CNTP_TVAL_EL0, 1_062_501), Ok(0xffff_ffff));
        // A zero TVAL (ArceOS's "now") fires at once.
        t.write(timer::CNTP_TVAL_EL0, 0, 2_000_000).unwrap();
        assert!(t.irq_level(2_000_000));
        // A negative TVAL sets a compare value in the past.
        t.write(timer::CNTP_TVAL_EL0, 0xffff_fff0, 2_000_000)
            .unwrap();
        assert_eq!(t.deadline(), 2_000_000 - 16);
    }

    #[test]
    fn imask_and_enable_gate_the_interrupt_but_not_istatus() {
        let mut t = PhysTimer::new();
        t.write(timer::CNTP_CVAL_EL0, 50, 0).unwrap();
        t.write(timer::CNTP_CTL_EL0, ctl::ENABLE | ctl::IMASK, 0)
            .unwrap();
        assert!(!t.irq_level(60));
        assert_eq!(t.deadline(), u64::MAX);
        assert_eq!(
            t.read(timer::CNTP_CTL_EL0, 60),
            Ok(ctl::ENABLE | ctl::IMASK | ctl::ISTATUS)
        );
        // ISTATUS is read-only: writing it changes nothing.
        t.write(timer::CNTP_CTL_EL0, ctl::ISTATUS, 0).unwrap();
        assert_eq!(t.read(timer::CNTP_CTL_EL0, 60), Ok(0));
        assert!(!t.irq_level(60));
    }

    #[test]
    fn other_registers_are_not_the_timer() {
        let mut t = PhysTimer::new();
        assert_eq!(
            t.read(timer::CNTPCT_EL0, 0),
            Err(NotATimerRegister(timer::CNTPCT_EL0))
        );
        assert!(t.write(SysReg::new(3, 0, 1, 0, 0), 0, 0).is_err());
    }
}
