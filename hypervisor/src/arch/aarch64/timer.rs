//! One hardware timer, two users: the guest's EL1 physical timer (emulated
//! in `guestaspace_core::arch::aarch64::vtimer`, its register accesses
//! trapped) and the hypervisor's own periodic tick, which takes control
//! back from a guest that never exits by itself (console input, watchdog).
//!
//! The EL2 physical timer (CNTHP; under VHE the hypervisor reaches it by the
//! `CNTP_*_EL0` names) is armed for the earlier of the two. Its interrupt,
//! PPI 26, ends the guest's slice as a physical-IRQ exit; the guest's own
//! timer interrupt then goes to it through the emulated GIC as PPI 30.

use aarch64_cpu::registers::{CNTP_CTL_EL0, CNTP_CVAL_EL0, Writeable};
use axhal::time::{current_ticks, nanos_to_ticks};
use guestaspace_core::arch::aarch64::sysreg::SysReg;
use guestaspace_core::arch::aarch64::vtimer::{NotATimerRegister, PhysTimer};

/// Period of the hypervisor's own tick: 10 ms.
pub const HOST_TICK_NS: u64 = 10_000_000;

/// What the timer interrupt meant.
pub enum Due {
    /// The guest's timer condition is met: its interrupt line goes up.
    Guest,
    /// Only the hypervisor's tick.
    HostTick,
}

/// The guest's timer, the host tick, and what the hardware is armed for.
pub struct Timers {
    guest: PhysTimer,
    /// The guest's interrupt for its current deadline was delivered: do
    /// not arm for it again until the guest reprograms its timer.
    delivered: bool,
    next_tick: u64,
    armed: u64,
    period: u64,
}

impl Timers {
    /// Guest timer reset; the first host tick one period from now.
    pub fn new() -> Self {
        let period = nanos_to_ticks(HOST_TICK_NS);
        Timers {
            guest: PhysTimer::new(),
            delivered: false,
            next_tick: current_ticks() + period,
            armed: 0,
            period,
        }
    }

    /// A trapped MRS of the guest's timer register `reg`.
    pub fn read(&self, reg: SysReg) -> Result<u64, NotATimerRegister> {
        self.guest.read(reg, current_ticks())
    }

    /// A trapped MSR of `value` to the guest's timer register `reg`.
    pub fn write(&mut self, reg: SysReg, value: u64) -> Result<(), NotATimerRegister> {
        self.guest.write(reg, value, current_ticks())?;
        self.delivered = false;
        Ok(())
    }

    /// The guest timer's interrupt output now.
    pub fn guest_level(&self) -> bool {
        self.guest.irq_level(current_ticks())
    }

    /// Arms the EL2 timer for the earlier deadline, if that changed. Called
    /// before every guest entry.
    pub fn arm(&mut self) {
        let guest = if self.delivered {
            u64::MAX
        } else {
            self.guest.deadline()
        };
        let deadline = guest.min(self.next_tick);
        if deadline != self.armed {
            CNTP_CVAL_EL0.set(deadline);
            CNTP_CTL_EL0.write(CNTP_CTL_EL0::ENABLE::SET);
            self.armed = deadline;
        }
    }

    /// The EL2 timer fired: says who it was for, and moves that deadline on.
    pub fn fired(&mut self) -> Due {
        if !self.delivered && self.guest_level() {
            self.delivered = true;
            return Due::Guest;
        }
        self.next_tick = current_ticks() + self.period;
        Due::HostTick
    }
}
