//! One hardware timer, two users: the guest's timer (the deadline it sets
//! through SBI TIME) and the hypervisor's own periodic tick, which takes
//! control back from a guest that never exits by itself (to feed console
//! input to the emulated UART and to enforce the watchdog).
//!
//! The S-mode timer (SBI `set_timer`, carried out by the firmware) is armed
//! for the earlier of the two. When it fires, the trap says which one is
//! due; the guest's interrupt is then injected through `hvip.VSTIP`.

use axhal::time::{current_ticks, nanos_to_ticks};
use riscv::register::sie;

/// Period of the hypervisor's own tick: 10 ms.
pub const HOST_TICK_NS: u64 = 10_000_000;

/// What a timer interrupt meant.
pub enum Due {
    /// The guest's deadline has passed: inject its timer interrupt.
    Guest,
    /// Only the hypervisor's tick.
    HostTick,
}

/// The two deadlines and what the hardware is armed for.
pub struct Timers {
    guest_deadline: u64,
    next_tick: u64,
    armed: u64,
    period: u64,
}

impl Timers {
    /// Guest timer disarmed; the first host tick one period from now. The
    /// S-mode timer interrupt is enabled once: the hypervisor takes it only
    /// as a trap out of the guest (sstatus.SIE stays 0 in HS-mode), and it
    /// is never masked again, since one of the two deadlines is always armed.
    pub fn new() -> Self {
        // SAFETY: see above; nothing in HS-mode takes the interrupt.
        unsafe { sie::set_stimer() };
        let period = nanos_to_ticks(HOST_TICK_NS);
        Timers {
            guest_deadline: u64::MAX,
            next_tick: current_ticks() + period,
            armed: 0,
            period,
        }
    }

    /// The guest asks for its timer at `deadline` (`u64::MAX` disarms).
    pub fn set_guest(&mut self, deadline: u64) {
        self.guest_deadline = deadline;
    }

    /// Arms the hardware for the earlier deadline, if that changed. Called
    /// before every guest entry, so it costs an SBI call only when needed.
    pub fn arm(&mut self) {
        let deadline = self.guest_deadline.min(self.next_tick);
        if deadline != self.armed {
            let _ = sbi_rt::set_timer(deadline);
            self.armed = deadline;
        }
    }

    /// The timer fired: says who it was for, and moves that deadline on.
    pub fn fired(&mut self) -> Due {
        let now = current_ticks();
        if now >= self.guest_deadline {
            self.guest_deadline = u64::MAX;
            return Due::Guest;
        }
        self.next_tick = now + self.period;
        Due::HostTick
    }
}
