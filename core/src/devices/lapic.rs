//! The local APIC of the one x86 vCPU: its registers through the x2APIC
//! MSRs (`0x800 + (offset >> 4)`) and the xAPIC page (the [`Device`]
//! trait), its timer, and the interrupt state the hypervisor injects from.
//!
//! Semantics from the Intel SDM Vol. 3A, chapter "Advanced Programmable
//! Interrupt Controller (APIC)" (sections 10.x; editions from 2023 number
//! the chapter 11), which AMD's APM Vol. 2 chapter 16 "Advanced
//! Programmable Interrupt Controller (APIC)" matches for everything here.
//!
//! # Registers
//!
//! Offsets are the xAPIC ones ([`reg`]); x2APIC MSR `0x800 + n` is offset
//! `n << 4` ([`x2apic_offset`]). ID reads 0 ([`APIC_ID`]; in xAPIC mode in
//! bits 31:24) and ignores writes. VERSION is [`VERSION`]: 0x14 (an
//! integrated APIC, 10.4.8 "Local APIC Version Register"), max LVT entry 5
//! (six entries: timer, thermal, performance, LINT0, LINT1, error; no
//! CMCI, whose register at `0x2F0` does not exist), and no EOI-broadcast
//! suppression (bit 24 clear, so SVR bit 12 is not writable). LDR is
//! writable (bits 31:24) in xAPIC mode and read-only in x2APIC mode, where
//! it is derived from the ID (10.12.10.2 "Deriving Logical x2APIC ID from
//! the Local x2APIC ID"): 1 for ID 0. DFR and the read-only APR/RRD exist
//! only in xAPIC mode; SELF_IPI only in x2APIC mode.
//!
//! x2APIC access rules (10.12.1.2 "x2APIC Register Address Space"): every
//! x2APIC MSR access outside x2APIC mode, to an offset with no register,
//! a read of EOI or SELF_IPI, a write to a read-only register, a write
//! with bits 63:32 set (except ICR, the one 64-bit register) and a
//! non-zero write to EOI or ESR is answered with [`X2ApicFault`], which
//! the caller turns into #GP. Reserved bits inside the low 32 are dropped.
//! The xAPIC page accepts only aligned 4-byte accesses; writes to
//! read-only registers are ignored. While the APIC is disabled or in
//! x2APIC mode the page is not decoded: reads give 0 and writes are
//! dropped.
//!
//! # Interrupt state
//!
//! IRR, ISR and TMR are 256-bit sets. An I/O APIC message
//! ([`Lapic::accept_message`], the path of COM1's interrupt), a self-IPI
//! and an unmasked LVT entry accept a vector
//! into IRR (10.8.4 "Interrupt Acceptance for Fixed Interrupts"); vectors
//! 0-15 are illegal and set the ESR instead. PPR follows 10.8.3.1 "Task and
//! Processor Priorities": TPR if its class (bits 7:4) is at least that of
//! the highest in-service vector, else that vector's class.
//! [`Lapic::pending_vector`] is the highest IRR vector whose class is above
//! PPR's; the hypervisor injects it through the VMCB's EVENTINJ and calls
//! [`Lapic::acknowledge`], which moves it from IRR to ISR (what the
//! processor's INTA cycle does). If the injection does not complete
//! (EXITINTINFO valid after the exit), the hypervisor re-injects that event
//! as it is: the APIC already counts it in service. An EOI clears the
//! highest ISR bit (10.8.5 "Signaling Interrupt Servicing Completion"); if
//! that vector was accepted level-triggered, [`Lapic::take_level_eoi`]
//! hands it to the I/O APIC model for its remote-IRR.
//!
//! Software disable (SVR bit 8 clear, the reset state; 10.4.7.2 "Local
//! APIC State After It Has Been Software Disabled") sets every LVT mask bit
//! and makes the mask bits impossible to clear; interrupts already in
//! IRR/ISR are held and new ones are still accepted, but none is delivered
//! until software enables the APIC again. ArceOS (through the `x2apic`
//! crate) unmasks its timer once before and once after setting SVR bit 8,
//! so it sees this rule and works with it.
//!
//! Hardware disable (IA32_APIC_BASE.EN clear, [`ApicMode::Disabled`];
//! 10.4.3 "Enabling or Disabling the Local APIC") drops every register to
//! its reset value and accepts nothing. The transitions themselves are the
//! MSR policy's (`arch::x86_64::msr`), which validates them and
//! calls [`Lapic::set_mode`].
//!
//! # IPIs
//!
//! With one vCPU the only CPU an IPI can reach is this one (10.6.1
//! "Interrupt Command Register (ICR)", 10.6.2 "Determining IPI
//! Destination"). An IPI targets it through the "self" or "all including
//! self" shorthand, or with no shorthand through a physical destination
//! equal to its ID, a logical destination matching its LDR (flat or
//! cluster model in xAPIC mode, per the DFR; cluster/bit in x2APIC mode),
//! or the broadcast destination (0xFF, x2APIC 0xFFFF_FFFF). A fixed IPI
//! that targets it is accepted like any interrupt; "all excluding self"
//! and destinations of other CPUs reach nobody. Lowest-priority IPIs set
//! ESR "redirectable IPI" and are not processed (10.12.9 "ICR Operation in
//! x2APIC Mode" describes this for x2APIC "same as legacy xAPIC"), and
//! NMI, SMI, INIT and start-up IPIs to this CPU are refused: the model
//! does not deliver them. Every IPI is recorded with its outcome for
//! [`Lapic::take_last_ipi`], so the hypervisor can log a refused one (or
//! turn a self-NMI into an injected NMI). SELF_IPI (10.12.11 "SELF IPI
//! Register") is a fixed self-IPI.
//!
//! # Time and the timer
//!
//! Time is an input: every MSR access takes `now_ns`, the hypervisor's
//! monotonic clock in nanoseconds, and [`Lapic::tick`] moves the model to
//! a new `now_ns` (MMIO accesses through [`Device`] use the time of the
//! latest tick or access; time never goes backwards). The timer's bus
//! clock is [`BUS_HZ`], 1 GHz, so one count is one nanosecond at
//! divide-by-1: `axplat-x86-pc` programs divide-by-1 and assumes exactly
//! this rate (`LAPIC_TICKS_PER_SEC = 1_000_000_000` in its `time.rs`),
//! and the same number is what CPUID leaf `16h` reports as the bus clock.
//!
//! Timer modes (10.5.4 "APIC Timer", 10.5.4.1 "TSC-Deadline Mode"):
//!
//! * One-shot: writing a non-zero initial count starts a countdown of
//!   `count * divisor` ns; at zero the LVT timer vector is accepted (unless
//!   masked, when the interrupt is lost) and the counter stays at 0. A
//!   zero initial count stops the timer.
//! * Periodic: the same, but at zero the count reloads from the initial
//!   count. If the hypervisor looks only after several periods have gone
//!   by, they collapse into one interrupt (IRR holds one bit per vector
//!   anyway) and the next expiry stays on the original grid.
//! * TSC-deadline: the initial count is ignored and the current count reads
//!   0; writing IA32_TSC_DEADLINE (MSR `0x6E0`, [`Lapic::write_tsc_deadline`])
//!   arms the timer for the moment the guest TSC reaches the value, 0
//!   disarms it, and firing clears it. Outside this mode the MSR reads 0
//!   and ignores writes. The TSC value is converted to the nanosecond clock
//!   once, at the write, from the guest TSC at that moment and the TSC
//!   frequency given to [`Lapic::new`] (rounding up, so the interrupt never
//!   comes before the TSC reaches the deadline).
//!
//! A write to the LVT timer that moves into or out of TSC-deadline mode
//! disarms the timer (and zeroes the initial count and the deadline);
//! switching between one-shot and periodic keeps the countdown running.
//! Changing the divide configuration mid-count keeps the current count
//! and counts the rest at the new rate. The current count is the time left
//! divided by the divisor, rounded up.
//!
//! [`Lapic::next_deadline`] is when the hypervisor has to look again (arm
//! its own timer or bound its HLT wait); it is `None` while the timer is
//! masked: a masked expiry changes nothing anyone can see before the next
//! access, which catches up on it.

use super::{DeliveryMode, Device, DeviceError, InterruptMessage, Width};

/// Guest-physical base of the xAPIC register page (IA32_APIC_BASE's reset
/// address).
pub const XAPIC_BASE: u64 = 0xfee0_0000;
/// Size of the xAPIC register page.
pub const XAPIC_SIZE: u64 = 0x1000;
/// The first x2APIC MSR (register offset 0).
pub const X2APIC_MSR_FIRST: u32 = 0x800;
/// The last MSR of the x2APIC range.
pub const X2APIC_MSR_LAST: u32 = 0x8ff;
/// The timer's bus clock in Hz: one count per nanosecond at divide-by-1.
pub const BUS_HZ: u64 = 1_000_000_000;
/// The APIC ID of the one vCPU (and its initial APIC ID in CPUID).
pub const APIC_ID: u32 = 0;
/// VERSION bits 7:0: an integrated APIC.
pub const VERSION_INTEGRATED: u32 = 0x14;
/// VERSION bits 23:16: the number of LVT entries minus one.
pub const MAX_LVT_ENTRY: u32 = 5;
/// The VERSION register.
pub const VERSION: u32 = VERSION_INTEGRATED | (MAX_LVT_ENTRY << 16);

const NS_PER_SEC: u128 = 1_000_000_000;

/// Register offsets in the xAPIC page (x2APIC: MSR `0x800 + (offset >> 4)`).
pub mod reg {
    /// Local APIC ID.
    pub const ID: u64 = 0x020;
    /// Version.
    pub const VERSION: u64 = 0x030;
    /// Task priority.
    pub const TPR: u64 = 0x080;
    /// Arbitration priority (xAPIC only, read-only).
    pub const APR: u64 = 0x090;
    /// Processor priority (read-only).
    pub const PPR: u64 = 0x0a0;
    /// End of interrupt (write-only).
    pub const EOI: u64 = 0x0b0;
    /// Remote read (xAPIC only, read-only).
    pub const RRD: u64 = 0x0c0;
    /// Logical destination.
    pub const LDR: u64 = 0x0d0;
    /// Destination format (xAPIC only).
    pub const DFR: u64 = 0x0e0;
    /// Spurious-interrupt vector.
    pub const SVR: u64 = 0x0f0;
    /// In-service register, 8 words of 32 vectors.
    pub const ISR: u64 = 0x100;
    /// Trigger-mode register, 8 words.
    pub const TMR: u64 = 0x180;
    /// Interrupt-request register, 8 words.
    pub const IRR: u64 = 0x200;
    /// Error status.
    pub const ESR: u64 = 0x280;
    /// Interrupt command, low half (x2APIC: the whole 64-bit register).
    pub const ICR: u64 = 0x300;
    /// Interrupt command, high half (xAPIC only).
    pub const ICR_HIGH: u64 = 0x310;
    /// LVT timer; the other LVT entries follow every 0x10.
    pub const LVT_TIMER: u64 = 0x320;
    /// LVT thermal sensor.
    pub const LVT_THERMAL: u64 = 0x330;
    /// LVT performance-monitoring counters.
    pub const LVT_PERF: u64 = 0x340;
    /// LVT LINT0.
    pub const LVT_LINT0: u64 = 0x350;
    /// LVT LINT1.
    pub const LVT_LINT1: u64 = 0x360;
    /// LVT error.
    pub const LVT_ERROR: u64 = 0x370;
    /// Timer initial count.
    pub const TIMER_ICR: u64 = 0x380;
    /// Timer current count (read-only).
    pub const TIMER_CCR: u64 = 0x390;
    /// Timer divide configuration.
    pub const TIMER_DCR: u64 = 0x3e0;
    /// SELF IPI (x2APIC only, write-only).
    pub const SELF_IPI: u64 = 0x3f0;
}

/// LVT entry bits (10.5.1 "Local Vector Table").
pub mod lvt {
    /// The vector.
    pub const VECTOR: u32 = 0xff;
    /// Delivery mode (not in the timer and error entries).
    pub const DELIVERY_MODE: u32 = 0x700;
    /// Delivery status (read-only; always idle here).
    pub const DELIVERY_STATUS: u32 = 1 << 12;
    /// Input pin polarity (LINT0/1).
    pub const POLARITY: u32 = 1 << 13;
    /// Remote IRR (LINT0/1, read-only).
    pub const REMOTE_IRR: u32 = 1 << 14;
    /// Level trigger (LINT0/1).
    pub const LEVEL: u32 = 1 << 15;
    /// Masked.
    pub const MASKED: u32 = 1 << 16;
    /// Timer mode, bits 18:17 (timer entry only).
    pub const TIMER_MODE: u32 = 3 << 17;
    /// Timer mode value: one-shot.
    pub const ONE_SHOT: u32 = 0;
    /// Timer mode value: periodic.
    pub const PERIODIC: u32 = 1 << 17;
    /// Timer mode value: TSC-deadline.
    pub const TSC_DEADLINE: u32 = 2 << 17;
}

/// Spurious-interrupt vector register bits (10.9 "Spurious Interrupt").
pub mod svr {
    /// The spurious vector.
    pub const VECTOR: u32 = 0xff;
    /// APIC software enable.
    pub const ENABLE: u32 = 1 << 8;
    /// Focus processor checking disabled.
    pub const FOCUS_DISABLE: u32 = 1 << 9;
    /// The reset value: vector 0xFF, software-disabled.
    pub const RESET: u32 = 0xff;
}

/// Interrupt command register fields (10.6.1).
pub mod icr {
    /// The vector.
    pub const VECTOR: u64 = 0xff;
    /// Delivery mode, bits 10:8.
    pub const DELIVERY_MODE: u64 = 0x700;
    /// Delivery mode: fixed.
    pub const FIXED: u64 = 0 << 8;
    /// Delivery mode: lowest priority.
    pub const LOWEST_PRIORITY: u64 = 1 << 8;
    /// Delivery mode: SMI.
    pub const SMI: u64 = 2 << 8;
    /// Delivery mode: NMI.
    pub const NMI: u64 = 4 << 8;
    /// Delivery mode: INIT.
    pub const INIT: u64 = 5 << 8;
    /// Delivery mode: start-up.
    pub const STARTUP: u64 = 6 << 8;
    /// Logical (rather than physical) destination.
    pub const LOGICAL: u64 = 1 << 11;
    /// Level: assert.
    pub const ASSERT: u64 = 1 << 14;
    /// Trigger mode: level.
    pub const LEVEL: u64 = 1 << 15;
    /// Destination shorthand, bits 19:18.
    pub const SHORTHAND: u64 = 3 << 18;
    /// Shorthand: self.
    pub const SELF: u64 = 1 << 18;
    /// Shorthand: all including self.
    pub const ALL: u64 = 2 << 18;
    /// Shorthand: all excluding self.
    pub const OTHERS: u64 = 3 << 18;
    /// The writable bits of the low half.
    pub const LOW_WRITABLE: u64 = VECTOR | DELIVERY_MODE | LOGICAL | ASSERT | LEVEL | SHORTHAND;
    /// The xAPIC destination field, bits 63:56.
    pub const XAPIC_DEST: u64 = 0xff << 56;
    /// The x2APIC destination field, bits 63:32.
    pub const X2APIC_DEST: u64 = 0xffff_ffff << 32;
}

/// Error status register bits (10.5.3 "Error Handling").
pub mod esr {
    /// An IPI used lowest-priority delivery, which is not supported.
    pub const REDIRECTABLE_IPI: u32 = 1 << 4;
    /// An IPI was sent with a vector 0-15.
    pub const SEND_ILLEGAL_VECTOR: u32 = 1 << 5;
    /// An interrupt with a vector 0-15 was received (or raised by an LVT).
    pub const RECEIVED_ILLEGAL_VECTOR: u32 = 1 << 6;
}

/// The writable bits of the timer divide configuration (bits 0, 1, 3).
pub const DCR_WRITABLE: u32 = 0b1011;

/// The IA32_APIC_BASE mode of the APIC (10.12.5 "x2APIC State Transitions").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApicMode {
    /// EN = 0: hardware-disabled.
    Disabled,
    /// EN = 1, EXTD = 0: registers in the xAPIC page.
    XApic,
    /// EN = 1, EXTD = 1: registers in MSRs 0x800-0x8FF.
    X2Apic,
}

/// The local APIC timer's mode, LVT timer bits 18:17.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerMode {
    /// 00: count down once.
    OneShot,
    /// 01: count down and reload.
    Periodic,
    /// 10: fire when the TSC reaches IA32_TSC_DEADLINE.
    TscDeadline,
}

impl TimerMode {
    /// The mode an LVT timer value selects; the reserved 11 counts as
    /// one-shot.
    pub const fn of_lvt(lvt_timer: u32) -> Self {
        match lvt_timer & lvt::TIMER_MODE {
            lvt::PERIODIC => TimerMode::Periodic,
            lvt::TSC_DEADLINE => TimerMode::TscDeadline,
            _ => TimerMode::OneShot,
        }
    }
}

/// The LVT entries, in register order (offset `0x320 + 0x10 * index`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LvtEntry {
    /// The APIC timer.
    Timer,
    /// The thermal sensor.
    Thermal,
    /// The performance-monitoring counters.
    Perf,
    /// Local interrupt pin 0.
    Lint0,
    /// Local interrupt pin 1.
    Lint1,
    /// APIC internal errors.
    Error,
}

impl LvtEntry {
    /// Every entry, in register order.
    pub const ALL: [LvtEntry; 6] = [
        LvtEntry::Timer,
        LvtEntry::Thermal,
        LvtEntry::Perf,
        LvtEntry::Lint0,
        LvtEntry::Lint1,
        LvtEntry::Error,
    ];

    /// The bits of this entry software can write.
    pub const fn writable(self) -> u32 {
        match self {
            LvtEntry::Timer => lvt::VECTOR | lvt::MASKED | lvt::TIMER_MODE,
            LvtEntry::Thermal | LvtEntry::Perf => lvt::VECTOR | lvt::DELIVERY_MODE | lvt::MASKED,
            LvtEntry::Lint0 | LvtEntry::Lint1 => {
                lvt::VECTOR | lvt::DELIVERY_MODE | lvt::POLARITY | lvt::LEVEL | lvt::MASKED
            }
            LvtEntry::Error => lvt::VECTOR | lvt::MASKED,
        }
    }
}

/// What the model did with an IPI or an interrupt message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpiOutcome {
    /// Accepted into this CPU's IRR.
    Delivered,
    /// Addressed to no existing CPU (other CPUs only, or nobody).
    NoTarget,
    /// Addressed to this CPU but not delivered (lowest-priority, NMI, SMI,
    /// INIT, start-up, or an illegal vector).
    Refused,
}

/// One IPI the guest sent: the ICR value and what became of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipi {
    /// The ICR as written (x2APIC layout: destination in bits 63:32; xAPIC
    /// layout: in bits 63:56).
    pub icr: u64,
    /// What the model did.
    pub outcome: IpiOutcome,
}

/// An x2APIC MSR access the architecture answers with #GP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct X2ApicFault;

/// The register offset of x2APIC MSR `msr`, or `None` outside
/// `0x800..=0x8FF`.
pub const fn x2apic_offset(msr: u32) -> Option<u16> {
    if msr >= X2APIC_MSR_FIRST && msr <= X2APIC_MSR_LAST {
        Some(((msr - X2APIC_MSR_FIRST) << 4) as u16)
    } else {
        None
    }
}

/// A set of the 256 vectors (bit `v % 32` of word `v / 32`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Vectors([u32; 8]);

impl Vectors {
    const EMPTY: Self = Self([0; 8]);

    fn contains(&self, v: u8) -> bool {
        self.0[usize::from(v / 32)] & (1 << (v % 32)) != 0
    }

    fn insert(&mut self, v: u8) {
        self.0[usize::from(v / 32)] |= 1 << (v % 32);
    }

    fn remove(&mut self, v: u8) {
        self.0[usize::from(v / 32)] &= !(1 << (v % 32));
    }

    fn highest(&self) -> Option<u8> {
        (0..8)
            .rev()
            .find(|&w| self.0[w] != 0)
            .map(|w| (w * 32 + 31 - self.0[w].leading_zeros() as usize) as u8)
    }

    /// The lowest vector in the set: eight word tests, not 256 bit tests
    /// (the run loop asks after every device exit).
    fn lowest(&self) -> Option<u8> {
        (0..8)
            .find(|&w| self.0[w] != 0)
            .map(|w| (w * 32 + self.0[w].trailing_zeros() as usize) as u8)
    }
}

/// A decoded register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reg {
    Id,
    Version,
    Tpr,
    Apr,
    Ppr,
    Eoi,
    Rrd,
    Ldr,
    Dfr,
    Svr,
    Isr(usize),
    Tmr(usize),
    Irr(usize),
    Esr,
    Icr,
    IcrHigh,
    Lvt(LvtEntry),
    TimerInitial,
    TimerCurrent,
    TimerDivide,
    SelfIpi,
}

impl Reg {
    fn decode(offset: u64) -> Option<Reg> {
        if !offset.is_multiple_of(16) {
            return None;
        }
        let word = |base: u64| ((offset - base) / 16) as usize;
        Some(match offset {
            reg::ID => Reg::Id,
            reg::VERSION => Reg::Version,
            reg::TPR => Reg::Tpr,
            reg::APR => Reg::Apr,
            reg::PPR => Reg::Ppr,
            reg::EOI => Reg::Eoi,
            reg::RRD => Reg::Rrd,
            reg::LDR => Reg::Ldr,
            reg::DFR => Reg::Dfr,
            reg::SVR => Reg::Svr,
            0x100..=0x170 => Reg::Isr(word(reg::ISR)),
            0x180..=0x1f0 => Reg::Tmr(word(reg::TMR)),
            0x200..=0x270 => Reg::Irr(word(reg::IRR)),
            reg::ESR => Reg::Esr,
            reg::ICR => Reg::Icr,
            reg::ICR_HIGH => Reg::IcrHigh,
            reg::LVT_TIMER..=reg::LVT_ERROR => Reg::Lvt(LvtEntry::ALL[word(reg::LVT_TIMER)]),
            reg::TIMER_ICR => Reg::TimerInitial,
            reg::TIMER_CCR => Reg::TimerCurrent,
            reg::TIMER_DCR => Reg::TimerDivide,
            reg::SELF_IPI => Reg::SelfIpi,
            _ => return None,
        })
    }
}

/// The local APIC model.
#[derive(Clone, Debug)]
pub struct Lapic {
    mode: ApicMode,
    /// The guest TSC's frequency, for TSC-deadline conversions.
    tsc_hz: u64,
    /// The latest time seen, ns.
    now: u64,
    tpr: u32,
    /// xAPIC logical destination (bits 31:24).
    ldr: u32,
    dfr: u32,
    svr: u32,
    isr: Vectors,
    tmr: Vectors,
    irr: Vectors,
    /// Errors visible in the ESR (latched by the last ESR write).
    esr: u32,
    /// Errors found since the last ESR write.
    esr_pending: u32,
    icr: u64,
    lvt: [u32; 6],
    timer_initial: u32,
    dcr: u32,
    /// One-shot/periodic: when the count reaches zero, while counting.
    expiry: Option<u64>,
    /// TSC-deadline: IA32_TSC_DEADLINE (0 = disarmed).
    tsc_deadline: u64,
    /// TSC-deadline: the time `tsc_deadline` falls due, ns.
    deadline_ns: u64,
    /// Level-triggered vectors whose EOI the I/O APIC has not yet seen.
    level_eois: Vectors,
    last_ipi: Option<Ipi>,
}

impl Lapic {
    /// An APIC after reset: xAPIC mode, software-disabled, every LVT
    /// masked, at time 0. `tsc_hz` is the guest TSC's frequency (used only
    /// by TSC-deadline mode; 0 is taken as 1).
    pub const fn new(tsc_hz: u64) -> Self {
        Self {
            mode: ApicMode::XApic,
            tsc_hz: if tsc_hz == 0 { 1 } else { tsc_hz },
            now: 0,
            tpr: 0,
            ldr: 0,
            dfr: u32::MAX,
            svr: svr::RESET,
            isr: Vectors::EMPTY,
            tmr: Vectors::EMPTY,
            irr: Vectors::EMPTY,
            esr: 0,
            esr_pending: 0,
            icr: 0,
            lvt: [lvt::MASKED; 6],
            timer_initial: 0,
            dcr: 0,
            expiry: None,
            tsc_deadline: 0,
            deadline_ns: 0,
            level_eois: Vectors::EMPTY,
            last_ipi: None,
        }
    }

    /// Every register to its reset value; mode, clock and TSC rate stay.
    fn reset_registers(&mut self) {
        *self = Self {
            mode: self.mode,
            tsc_hz: self.tsc_hz,
            now: self.now,
            ..Self::new(self.tsc_hz)
        };
    }

    /// The IA32_APIC_BASE mode.
    pub const fn mode(&self) -> ApicMode {
        self.mode
    }

    /// Switches to `mode` at `now_ns`, without checking the transition (the
    /// MSR policy does). Disabling resets every register.
    pub fn set_mode(&mut self, mode: ApicMode, now_ns: u64) {
        self.advance(now_ns);
        if mode == ApicMode::Disabled {
            self.reset_registers();
        }
        self.mode = mode;
    }

    /// Whether SVR bit 8 (APIC software enable) is set.
    pub const fn software_enabled(&self) -> bool {
        self.svr & svr::ENABLE != 0
    }

    /// The task priority (TPR bits 7:0).
    pub const fn tpr(&self) -> u8 {
        self.tpr as u8
    }

    /// Sets the task priority, e.g. from the guest's CR8 (`cr8 << 4`).
    pub fn set_tpr(&mut self, tpr: u8) {
        self.tpr = u32::from(tpr);
    }

    /// The processor priority (10.8.3.1).
    pub fn ppr(&self) -> u8 {
        let isrv = self.isr.highest().map_or(0, u32::from);
        let ppr = if self.tpr & 0xf0 >= isrv & 0xf0 {
            self.tpr
        } else {
            isrv & 0xf0
        };
        ppr as u8
    }

    /// The timer's current mode.
    pub const fn timer_mode(&self) -> TimerMode {
        TimerMode::of_lvt(self.lvt[LvtEntry::Timer as usize])
    }

    /// The raw value of an LVT entry.
    pub const fn lvt(&self, entry: LvtEntry) -> u32 {
        self.lvt[entry as usize]
    }

    /// The timer's divisor (1..=128) from the divide configuration.
    pub const fn timer_divisor(&self) -> u64 {
        let code = ((self.dcr >> 1) & 0b100) | (self.dcr & 0b11);
        1 << ((code + 1) & 7)
    }

    /// Moves the clock to `now_ns` and accepts the timer's vector if it
    /// expired on the way.
    pub fn tick(&mut self, now_ns: u64) {
        self.advance(now_ns);
    }

    fn advance(&mut self, now_ns: u64) {
        let now = now_ns.max(self.now);
        self.now = now;
        match self.timer_mode() {
            TimerMode::TscDeadline => {
                if self.tsc_deadline != 0 && self.deadline_ns <= now {
                    self.tsc_deadline = 0;
                    self.fire(LvtEntry::Timer);
                }
            }
            mode => {
                let Some(at) = self.expiry.filter(|&at| at <= now) else {
                    return;
                };
                self.fire(LvtEntry::Timer);
                self.expiry = if mode == TimerMode::Periodic && self.timer_initial != 0 {
                    let period = u64::from(self.timer_initial) * self.timer_divisor();
                    let missed = (now - at) / period;
                    Some(at.saturating_add((missed + 1).saturating_mul(period)))
                } else {
                    None
                };
            }
        }
    }

    /// When the timer next needs the hypervisor's attention (an unmasked
    /// timer's expiry, ns), or `None`.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.mode == ApicMode::Disabled || self.lvt(LvtEntry::Timer) & lvt::MASKED != 0 {
            return None;
        }
        match self.timer_mode() {
            TimerMode::TscDeadline => (self.tsc_deadline != 0).then_some(self.deadline_ns),
            _ => self.expiry,
        }
    }

    /// The vector to inject now: the highest requested vector whose
    /// priority class is above PPR's, if the APIC is enabled.
    pub fn pending_vector(&self) -> Option<u8> {
        if self.mode == ApicMode::Disabled || !self.software_enabled() {
            return None;
        }
        let v = self.irr.highest()?;
        (v & 0xf0 > self.ppr() & 0xf0).then_some(v)
    }

    /// The guest took `vector` (injected from [`Self::pending_vector`]):
    /// moves it from IRR to ISR. False (and nothing changes) if it was not
    /// requested.
    pub fn acknowledge(&mut self, vector: u8) -> bool {
        if !self.irr.contains(vector) {
            return false;
        }
        self.irr.remove(vector);
        self.isr.insert(vector);
        true
    }

    /// An edge-triggered fixed interrupt arrives (I/O APIC, MSI); false if
    /// the APIC does not accept it (disabled, or an illegal vector).
    pub fn raise(&mut self, vector: u8) -> bool {
        self.accept(vector, false)
    }

    /// A level-triggered fixed interrupt arrives: like [`Self::raise`], and
    /// its EOI will be reported by [`Self::take_level_eoi`].
    pub fn raise_level(&mut self, vector: u8) -> bool {
        self.accept(vector, true)
    }

    /// A level-triggered vector the guest has ended since the last call,
    /// for the I/O APIC (lowest first).
    pub fn take_level_eoi(&mut self) -> Option<u8> {
        let v = self.level_eois.lowest()?;
        self.level_eois.remove(v);
        Some(v)
    }

    /// The last IPI the guest sent and its outcome, once.
    pub fn take_last_ipi(&mut self) -> Option<Ipi> {
        self.last_ipi.take()
    }

    /// IA32_TSC_DEADLINE as the guest reads it: the armed deadline, 0 when
    /// disarmed or outside TSC-deadline mode.
    pub fn tsc_deadline(&self) -> u64 {
        match self.timer_mode() {
            TimerMode::TscDeadline => self.tsc_deadline,
            _ => 0,
        }
    }

    /// A guest write of IA32_TSC_DEADLINE at `now_ns`, when the guest TSC
    /// reads `guest_tsc`; ignored outside TSC-deadline mode.
    pub fn write_tsc_deadline(&mut self, value: u64, now_ns: u64, guest_tsc: u64) {
        self.advance(now_ns);
        if self.timer_mode() != TimerMode::TscDeadline {
            return;
        }
        self.tsc_deadline = value;
        if value == 0 {
            return;
        }
        let ticks = u128::from(value.saturating_sub(guest_tsc));
        let ns = (ticks * NS_PER_SEC).div_ceil(u128::from(self.tsc_hz));
        self.deadline_ns = self
            .now
            .saturating_add(u64::try_from(ns).unwrap_or(u64::MAX));
        self.advance(self.now);
    }

    /// A guest RDMSR of x2APIC register `offset` at `now_ns`.
    pub fn read_x2apic(&mut self, offset: u16, now_ns: u64) -> Result<u64, X2ApicFault> {
        if self.mode != ApicMode::X2Apic {
            return Err(X2ApicFault);
        }
        self.advance(now_ns);
        match Reg::decode(offset.into()).ok_or(X2ApicFault)? {
            Reg::Apr | Reg::Rrd | Reg::Dfr | Reg::IcrHigh | Reg::Eoi | Reg::SelfIpi => {
                Err(X2ApicFault)
            }
            Reg::Icr => Ok(self.icr),
            r => Ok(u64::from(self.read32(r))),
        }
    }

    /// A guest WRMSR of `value` to x2APIC register `offset` at `now_ns`.
    pub fn write_x2apic(
        &mut self,
        offset: u16,
        value: u64,
        now_ns: u64,
    ) -> Result<(), X2ApicFault> {
        if self.mode != ApicMode::X2Apic {
            return Err(X2ApicFault);
        }
        self.advance(now_ns);
        let r = Reg::decode(offset.into()).ok_or(X2ApicFault)?;
        if r != Reg::Icr && value >> 32 != 0 {
            return Err(X2ApicFault);
        }
        let v = value as u32;
        match r {
            Reg::Eoi | Reg::Esr if v != 0 => return Err(X2ApicFault),
            Reg::Icr => {
                self.icr = value & (icr::X2APIC_DEST | icr::LOW_WRITABLE);
                self.send_ipi(self.icr);
            }
            Reg::SelfIpi => self.send_ipi((u64::from(v) & icr::VECTOR) | icr::SELF),
            Reg::Tpr
            | Reg::Eoi
            | Reg::Esr
            | Reg::Svr
            | Reg::Lvt(_)
            | Reg::TimerInitial
            | Reg::TimerDivide => self.write32(r, v),
            _ => return Err(X2ApicFault),
        }
        Ok(())
    }

    /// A register's value (everything but the x2APIC ICR).
    fn read32(&self, r: Reg) -> u32 {
        let x2 = self.mode == ApicMode::X2Apic;
        match r {
            Reg::Id if x2 => APIC_ID,
            Reg::Id => APIC_ID << 24,
            Reg::Version => VERSION,
            Reg::Tpr => self.tpr,
            Reg::Apr => self.apr(),
            Reg::Ppr => u32::from(self.ppr()),
            Reg::Eoi | Reg::Rrd | Reg::SelfIpi => 0,
            // 10.12.10.2: cluster ID[19:4] in bits 31:16, 1 << ID[3:0].
            Reg::Ldr if x2 => ((APIC_ID >> 4) << 16) | (1 << (APIC_ID & 0xf)),
            Reg::Ldr => self.ldr,
            Reg::Dfr => self.dfr,
            Reg::Svr => self.svr,
            Reg::Isr(w) => self.isr.0[w],
            Reg::Tmr(w) => self.tmr.0[w],
            Reg::Irr(w) => self.irr.0[w],
            Reg::Esr => self.esr,
            Reg::Icr => self.icr as u32,
            Reg::IcrHigh => (self.icr >> 32) as u32,
            Reg::Lvt(e) => self.lvt(e),
            Reg::TimerInitial => self.timer_initial,
            Reg::TimerCurrent => self.current_count(),
            Reg::TimerDivide => self.dcr,
        }
    }

    /// A write to a writable register both interfaces share.
    fn write32(&mut self, r: Reg, v: u32) {
        match r {
            Reg::Tpr => self.tpr = v & 0xff,
            Reg::Eoi => self.eoi(),
            Reg::Esr => {
                self.esr = self.esr_pending;
                self.esr_pending = 0;
            }
            Reg::Svr => {
                self.svr = v & (svr::VECTOR | svr::ENABLE | svr::FOCUS_DISABLE);
                if !self.software_enabled() {
                    for l in &mut self.lvt {
                        *l |= lvt::MASKED;
                    }
                }
            }
            Reg::Lvt(e) => self.write_lvt(e, v),
            Reg::TimerInitial => self.write_initial_count(v),
            Reg::TimerDivide => self.write_divide(v),
            _ => {}
        }
    }

    /// APR (xAPIC): the highest of TPR, the in-service class and the
    /// requested class.
    fn apr(&self) -> u32 {
        let isrv = self.isr.highest().map_or(0, u32::from) & 0xf0;
        let irrv = self.irr.highest().map_or(0, u32::from) & 0xf0;
        if self.tpr & 0xf0 >= isrv.max(irrv) {
            self.tpr
        } else {
            isrv.max(irrv)
        }
    }

    fn write_lvt(&mut self, e: LvtEntry, v: u32) {
        let old_mode = self.timer_mode();
        let mut v = v & e.writable();
        if !self.software_enabled() {
            v |= lvt::MASKED;
        }
        self.lvt[e as usize] = v;
        if e == LvtEntry::Timer {
            let deadline_now = self.timer_mode() == TimerMode::TscDeadline;
            if deadline_now != (old_mode == TimerMode::TscDeadline) {
                self.expiry = None;
                self.timer_initial = 0;
                self.tsc_deadline = 0;
            }
        }
    }

    fn write_initial_count(&mut self, v: u32) {
        if self.timer_mode() == TimerMode::TscDeadline {
            return;
        }
        self.timer_initial = v;
        self.expiry =
            (v != 0).then(|| self.now.saturating_add(u64::from(v) * self.timer_divisor()));
    }

    fn write_divide(&mut self, v: u32) {
        let left = self.current_count();
        self.dcr = v & DCR_WRITABLE;
        if self.expiry.is_some() {
            self.expiry = Some(
                self.now
                    .saturating_add(u64::from(left) * self.timer_divisor()),
            );
        }
    }

    /// The current count: time left over the divisor, rounded up.
    fn current_count(&self) -> u32 {
        if self.timer_mode() == TimerMode::TscDeadline {
            return 0;
        }
        self.expiry.map_or(0, |at| {
            let left = at.saturating_sub(self.now).div_ceil(self.timer_divisor());
            u32::try_from(left).unwrap_or(u32::MAX)
        })
    }

    fn eoi(&mut self) {
        if let Some(v) = self.isr.highest() {
            self.isr.remove(v);
            if self.tmr.contains(v) {
                self.level_eois.insert(v);
            }
        }
    }

    fn accept(&mut self, vector: u8, level: bool) -> bool {
        if self.mode == ApicMode::Disabled {
            return false;
        }
        if vector < 16 {
            self.error(esr::RECEIVED_ILLEGAL_VECTOR);
            return false;
        }
        self.irr.insert(vector);
        if level {
            self.tmr.insert(vector);
        } else {
            self.tmr.remove(vector);
        }
        true
    }

    /// An LVT source signals: its vector is accepted unless masked. Only
    /// fixed delivery is modelled (NMI, SMI, INIT, ExtINT entries drop it).
    fn fire(&mut self, e: LvtEntry) {
        let v = self.lvt(e);
        if v & lvt::MASKED != 0 || v & lvt::DELIVERY_MODE != 0 {
            return;
        }
        self.accept((v & lvt::VECTOR) as u8, false);
    }

    /// Logs `bits` for the next ESR write and signals the LVT error entry.
    fn error(&mut self, bits: u32) {
        self.esr_pending |= bits;
        let v = self.lvt(LvtEntry::Error);
        if v & lvt::MASKED == 0 && v & lvt::VECTOR >= 16 {
            self.irr.insert((v & lvt::VECTOR) as u8);
        }
    }

    /// Whether a no-shorthand IPI's destination names this CPU.
    fn is_destination(&self, icr: u64) -> bool {
        let logical = icr & icr::LOGICAL != 0;
        match self.mode {
            ApicMode::X2Apic => self.x2apic_destination((icr >> 32) as u32, logical, u32::MAX),
            ApicMode::XApic => self.xapic_destination((icr >> 56) as u8, logical),
            ApicMode::Disabled => false,
        }
    }

    /// Whether x2APIC destination `dest` (physical or logical) names this
    /// CPU, `broadcast` addressing every CPU.
    fn x2apic_destination(&self, dest: u32, logical: bool, broadcast: u32) -> bool {
        let ldr = self.read32(Reg::Ldr);
        dest == broadcast
            || if logical {
                dest >> 16 == ldr >> 16 && dest & ldr & 0xffff != 0
            } else {
                dest == APIC_ID
            }
    }

    /// Whether xAPIC destination `dest` names this CPU: its ID (physical),
    /// its LDR in the flat or cluster model of the DFR (logical), or 0xFF.
    fn xapic_destination(&self, dest: u8, logical: bool) -> bool {
        let (dest, id) = (u32::from(dest), self.ldr >> 24);
        dest == 0xff
            || if !logical {
                dest == APIC_ID
            } else if self.dfr >> 28 == 0xf {
                dest & id != 0
            } else {
                dest >> 4 == id >> 4 && dest & id & 0xf != 0
            }
    }

    /// An interrupt message from the I/O APIC arrives. It is for this CPU
    /// if its destination names it as an IPI's would (in x2APIC mode the
    /// 8-bit destination is compared with the x2APIC ID, or the logical
    /// ID's cluster 0, and 0xFF is the broadcast); fixed and
    /// lowest-priority messages (with one CPU, the lowest-priority CPU is
    /// this one) are accepted like [`Self::raise`] or [`Self::raise_level`]
    /// as the trigger mode says. SMI, NMI, INIT and ExtINT messages are
    /// refused: the model does not deliver them.
    pub fn accept_message(&mut self, m: &InterruptMessage) -> IpiOutcome {
        let dest = u32::from(m.destination);
        let to_self = match self.mode {
            ApicMode::X2Apic => self.x2apic_destination(dest, m.logical, 0xff),
            ApicMode::XApic => self.xapic_destination(m.destination, m.logical),
            ApicMode::Disabled => false,
        };
        match m.delivery {
            _ if !to_self => IpiOutcome::NoTarget,
            DeliveryMode::Fixed | DeliveryMode::LowestPriority => {
                if self.accept(m.vector, m.level) {
                    IpiOutcome::Delivered
                } else {
                    IpiOutcome::Refused
                }
            }
            _ => IpiOutcome::Refused,
        }
    }

    fn send_ipi(&mut self, icr: u64) {
        let to_self = match icr & icr::SHORTHAND {
            icr::SELF | icr::ALL => true,
            icr::OTHERS => false,
            _ => self.is_destination(icr),
        };
        let vector = (icr & icr::VECTOR) as u8;
        let outcome = match icr & icr::DELIVERY_MODE {
            _ if !to_self => IpiOutcome::NoTarget,
            icr::FIXED if vector < 16 => {
                self.error(esr::SEND_ILLEGAL_VECTOR);
                IpiOutcome::Refused
            }
            icr::FIXED => {
                self.accept(vector, false);
                IpiOutcome::Delivered
            }
            icr::LOWEST_PRIORITY => {
                self.error(esr::REDIRECTABLE_IPI);
                IpiOutcome::Refused
            }
            _ => IpiOutcome::Refused,
        };
        self.last_ipi = Some(Ipi { icr, outcome });
    }
}

impl Default for Lapic {
    /// A reset APIC with a 1 GHz TSC.
    fn default() -> Self {
        Self::new(1_000_000_000)
    }
}

impl Device for Lapic {
    fn name(&self) -> &'static str {
        "lapic"
    }

    fn read(&mut self, offset: u64, width: Width) -> Result<u64, DeviceError> {
        if width != Width::Word || !offset.is_multiple_of(4) {
            return Err(DeviceError::BadWidth { offset, width });
        }
        if self.mode != ApicMode::XApic {
            return Ok(0);
        }
        match Reg::decode(offset) {
            None | Some(Reg::SelfIpi) => Err(DeviceError::BadOffset { offset }),
            Some(r) => Ok(u64::from(self.read32(r))),
        }
    }

    fn write(&mut self, offset: u64, width: Width, value: u64) -> Result<(), DeviceError> {
        if width != Width::Word || !offset.is_multiple_of(4) {
            return Err(DeviceError::BadWidth { offset, width });
        }
        if self.mode != ApicMode::XApic {
            return Ok(());
        }
        let v = value as u32;
        match Reg::decode(offset) {
            None | Some(Reg::SelfIpi) => return Err(DeviceError::BadOffset { offset }),
            Some(Reg::Ldr) => self.ldr = v & 0xff00_0000,
            Some(Reg::Dfr) => self.dfr = v | 0x0fff_ffff,
            Some(Reg::Icr) => {
                self.icr = (self.icr & icr::XAPIC_DEST) | (u64::from(v) & icr::LOW_WRITABLE);
                self.send_ipi(self.icr);
            }
            Some(Reg::IcrHigh) => {
                self.icr = (self.icr & 0xffff_ffff) | ((u64::from(v) << 32) & icr::XAPIC_DEST);
            }
            Some(r) => self.write32(r, v),
        }
        Ok(())
    }

    /// The vCPU's interrupt line: a vector is ready to inject.
    fn irq_output(&self, _context: usize) -> bool {
        self.pending_vector().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_sets_find_their_lowest_and_highest() {
        let mut v = Vectors::EMPTY;
        assert_eq!((v.lowest(), v.highest()), (None, None));
        for x in [0xf0, 0x34, 0x21, 0x3f] {
            v.insert(x);
        }
        assert_eq!((v.lowest(), v.highest()), (Some(0x21), Some(0xf0)));
        v.remove(0x21);
        assert_eq!(v.lowest(), Some(0x34));
    }

    const TIMER_VECTOR: u8 = 0xf0;
    const SPURIOUS: u32 = 0xf1;
    const ERROR_VECTOR: u32 = 0xf2;

    fn msr(offset: u64) -> u16 {
        offset as u16
    }

    /// An APIC in x2APIC mode, software-enabled as ArceOS leaves it.
    fn x2apic() -> Lapic {
        let mut a = Lapic::new(2_000_000_000);
        a.set_mode(ApicMode::X2Apic, 0);
        a.write_x2apic(msr(reg::SVR), u64::from(svr::ENABLE | SPURIOUS), 0)
            .unwrap();
        a
    }

    fn lvt_timer(a: &mut Lapic, value: u32, now: u64) {
        a.write_x2apic(msr(reg::LVT_TIMER), value.into(), now)
            .unwrap();
    }

    fn initial(a: &mut Lapic, count: u32, now: u64) {
        a.write_x2apic(msr(reg::TIMER_ICR), count.into(), now)
            .unwrap();
    }

    fn eoi(a: &mut Lapic) {
        a.write_x2apic(msr(reg::EOI), 0, a.now).unwrap();
    }

    fn take(a: &mut Lapic) -> Option<u8> {
        let v = a.pending_vector()?;
        assert!(a.acknowledge(v));
        Some(v)
    }

    #[test]
    fn msr_numbers_map_to_xapic_offsets() {
        assert_eq!(x2apic_offset(0x802), Some(0x20));
        assert_eq!(x2apic_offset(0x80b), Some(0xb0));
        assert_eq!(x2apic_offset(0x830), Some(0x300));
        assert_eq!(x2apic_offset(0x83f), Some(0x3f0));
        assert_eq!(x2apic_offset(0x8ff), Some(0xff0));
        assert_eq!(x2apic_offset(0x7ff), None);
        assert_eq!(x2apic_offset(0x900), None);
    }

    #[test]
    fn reset_state() {
        let mut a = Lapic::default();
        assert_eq!(a.mode(), ApicMode::XApic);
        assert!(!a.software_enabled());
        assert_eq!(a.read(reg::SVR, Width::Word), Ok(0xff));
        assert_eq!(a.read(reg::VERSION, Width::Word), Ok(0x0005_0014));
        assert_eq!(a.read(reg::DFR, Width::Word), Ok(0xffff_ffff));
        for e in LvtEntry::ALL {
            assert_eq!(a.lvt(e), lvt::MASKED, "{e:?}");
        }
        assert_eq!(a.pending_vector(), None);
        assert_eq!(a.next_deadline(), None);
    }

    #[test]
    fn enable_via_svr_gates_delivery() {
        let mut a = Lapic::new(1);
        a.set_mode(ApicMode::X2Apic, 0);
        // Accepted while software-disabled, but held.
        assert!(a.raise(0x40));
        assert_eq!(a.pending_vector(), None);
        a.write_x2apic(msr(reg::SVR), u64::from(svr::ENABLE | SPURIOUS), 0)
            .unwrap();
        assert_eq!(a.read_x2apic(msr(reg::SVR), 0), Ok(0x1f1));
        assert_eq!(a.pending_vector(), Some(0x40));
        // Disabling again holds it once more and masks every LVT.
        a.write_x2apic(msr(reg::LVT_ERROR), ERROR_VECTOR.into(), 0)
            .unwrap();
        a.write_x2apic(msr(reg::SVR), u64::from(SPURIOUS), 0)
            .unwrap();
        assert_eq!(a.pending_vector(), None);
        assert_eq!(a.lvt(LvtEntry::Error), lvt::MASKED | ERROR_VECTOR);
    }

    #[test]
    fn lvt_masks_stick_while_software_disabled() {
        // The x2apic crate's `enable()`: unmask the timer, then set SVR.8.
        let mut a = Lapic::new(1);
        a.set_mode(ApicMode::X2Apic, 0);
        lvt_timer(&mut a, lvt::PERIODIC | u32::from(TIMER_VECTOR), 0);
        assert_ne!(a.lvt(LvtEntry::Timer) & lvt::MASKED, 0);
        a.write_x2apic(msr(reg::SVR), u64::from(svr::ENABLE | SPURIOUS), 0)
            .unwrap();
        // `time::init_primary` then unmasks it for real.
        lvt_timer(&mut a, u32::from(TIMER_VECTOR), 0);
        assert_eq!(a.lvt(LvtEntry::Timer), u32::from(TIMER_VECTOR));
    }

    #[test]
    fn one_shot_fires_once_at_the_right_time() {
        let mut a = x2apic();
        lvt_timer(&mut a, u32::from(TIMER_VECTOR), 0);
        // Divide by 1 (0b1011): one count per ns.
        a.write_x2apic(msr(reg::TIMER_DCR), 0xb, 0).unwrap();
        initial(&mut a, 1_000_000, 5_000);
        assert_eq!(a.next_deadline(), Some(1_005_000));
        assert_eq!(a.read_x2apic(msr(reg::TIMER_CCR), 5_000), Ok(1_000_000));
        assert_eq!(a.read_x2apic(msr(reg::TIMER_CCR), 505_000), Ok(500_000));
        a.tick(1_004_999);
        assert_eq!(a.pending_vector(), None);
        a.tick(1_005_000);
        assert_eq!(take(&mut a), Some(TIMER_VECTOR));
        assert_eq!(a.next_deadline(), None);
        assert_eq!(a.read_x2apic(msr(reg::TIMER_CCR), 1_005_000), Ok(0));
        eoi(&mut a);
        a.tick(10_000_000);
        assert_eq!(a.pending_vector(), None, "one-shot: once");
    }

    #[test]
    fn divider_scales_the_count() {
        let mut a = x2apic();
        lvt_timer(&mut a, u32::from(TIMER_VECTOR), 0);
        // 0b0011: divide by 16.
        a.write_x2apic(msr(reg::TIMER_DCR), 0b0011, 0).unwrap();
        assert_eq!(a.timer_divisor(), 16);
        initial(&mut a, 100, 0);
        assert_eq!(a.next_deadline(), Some(1600));
        // 8 ns into a 16 ns count: not yet decremented.
        assert_eq!(a.read_x2apic(msr(reg::TIMER_CCR), 8), Ok(100));
        assert_eq!(a.read_x2apic(msr(reg::TIMER_CCR), 16), Ok(99));
        // Switching to divide-by-2 keeps the 99 left, at the new rate.
        a.write_x2apic(msr(reg::TIMER_DCR), 0, 16).unwrap();
        assert_eq!(a.next_deadline(), Some(16 + 99 * 2));
        for (dcr, div) in [(0b1000, 32), (0b1001, 64), (0b1010, 128), (0b1011, 1)] {
            a.write_x2apic(msr(reg::TIMER_DCR), dcr, 16).unwrap();
            assert_eq!(a.timer_divisor(), div);
        }
    }

    #[test]
    fn periodic_rearms() {
        let mut a = x2apic();
        a.write_x2apic(msr(reg::TIMER_DCR), 0xb, 0).unwrap();
        lvt_timer(&mut a, lvt::PERIODIC | u32::from(TIMER_VECTOR), 0);
        initial(&mut a, 1000, 0);
        for k in 1..=3u64 {
            assert_eq!(a.next_deadline(), Some(k * 1000));
            a.tick(k * 1000);
            assert_eq!(take(&mut a), Some(TIMER_VECTOR), "period {k}");
            eoi(&mut a);
        }
        assert_eq!(a.read_x2apic(msr(reg::TIMER_CCR), 3250), Ok(750));
        // Several periods unseen collapse into one interrupt on the grid.
        a.tick(7_500);
        assert_eq!(take(&mut a), Some(TIMER_VECTOR));
        assert_eq!(a.pending_vector(), None);
        assert_eq!(a.next_deadline(), Some(8000));
        // A zero initial count stops it.
        initial(&mut a, 0, 7_600);
        assert_eq!(a.next_deadline(), None);
        assert_eq!(a.read_x2apic(msr(reg::TIMER_CCR), 7_600), Ok(0));
    }

    #[test]
    fn periodic_to_one_shot_keeps_counting() {
        // The x2apic crate arms a periodic 10_000_000 count in `enable()`,
        // and ArceOS switches to one-shot afterwards.
        let mut a = x2apic();
        a.write_x2apic(msr(reg::TIMER_DCR), 0xb, 0).unwrap();
        lvt_timer(&mut a, lvt::PERIODIC | u32::from(TIMER_VECTOR), 0);
        initial(&mut a, 10_000_000, 0);
        lvt_timer(&mut a, u32::from(TIMER_VECTOR), 1_000);
        assert_eq!(a.next_deadline(), Some(10_000_000));
        a.tick(10_000_000);
        assert_eq!(take(&mut a), Some(TIMER_VECTOR));
        assert_eq!(a.next_deadline(), None);
    }

    #[test]
    fn masked_lvt_does_not_raise() {
        let mut a = x2apic();
        a.write_x2apic(msr(reg::TIMER_DCR), 0xb, 0).unwrap();
        lvt_timer(&mut a, lvt::MASKED | u32::from(TIMER_VECTOR), 0);
        initial(&mut a, 100, 0);
        assert_eq!(a.next_deadline(), None, "nothing to wake up for");
        a.tick(100);
        assert_eq!(a.pending_vector(), None);
        // Unmasking after the expiry does not bring the interrupt back.
        lvt_timer(&mut a, u32::from(TIMER_VECTOR), 200);
        a.tick(300);
        assert_eq!(a.pending_vector(), None);
        assert_eq!(a.read_x2apic(msr(reg::TIMER_CCR), 300), Ok(0));
    }

    #[test]
    fn tsc_deadline_fires_when_the_tsc_gets_there() {
        // A 2 GHz TSC: two ticks per ns.
        let mut a = x2apic();
        lvt_timer(&mut a, lvt::TSC_DEADLINE | u32::from(TIMER_VECTOR), 0);
        assert_eq!(a.timer_mode(), TimerMode::TscDeadline);
        // The initial count is ignored, the current count reads 0.
        initial(&mut a, 500, 0);
        assert_eq!(a.read_x2apic(msr(reg::TIMER_ICR), 0), Ok(0));
        assert_eq!(a.next_deadline(), None);
        // At 1000 ns the guest TSC reads 7_000; deadline 9_001 is 2_001
        // ticks away: 1000.5 ns, rounded up.
        a.write_tsc_deadline(9_001, 1_000, 7_000);
        assert_eq!(a.tsc_deadline(), 9_001);
        assert_eq!(a.next_deadline(), Some(2_001));
        a.tick(2_000);
        assert_eq!(a.pending_vector(), None);
        a.tick(2_001);
        assert_eq!(take(&mut a), Some(TIMER_VECTOR));
        assert_eq!(a.tsc_deadline(), 0, "firing clears the MSR");
        assert_eq!(a.next_deadline(), None);
        eoi(&mut a);
        // A deadline already past fires at once; 0 disarms.
        a.write_tsc_deadline(1, 3_000, 20_000);
        assert_eq!(take(&mut a), Some(TIMER_VECTOR));
        eoi(&mut a);
        a.write_tsc_deadline(1_000_000, 3_000, 20_000);
        a.write_tsc_deadline(0, 3_000, 20_000);
        a.tick(u64::MAX / 2);
        assert_eq!(a.pending_vector(), None);
    }

    #[test]
    fn tsc_deadline_only_in_its_mode_and_mode_changes_disarm() {
        let mut a = x2apic();
        lvt_timer(&mut a, u32::from(TIMER_VECTOR), 0);
        a.write_tsc_deadline(10, 0, 0);
        assert_eq!(a.tsc_deadline(), 0, "ignored in one-shot mode");
        // One-shot counting, then into TSC-deadline: disarmed.
        initial(&mut a, 100, 0);
        lvt_timer(&mut a, lvt::TSC_DEADLINE | u32::from(TIMER_VECTOR), 10);
        assert_eq!(a.next_deadline(), None);
        // Armed deadline, then back to one-shot: disarmed, MSR reads 0.
        a.write_tsc_deadline(1_000_000, 10, 0);
        assert!(a.next_deadline().is_some());
        lvt_timer(&mut a, u32::from(TIMER_VECTOR), 20);
        assert_eq!(a.next_deadline(), None);
        assert_eq!(a.tsc_deadline(), 0);
        a.tick(u64::MAX / 2);
        assert_eq!(a.pending_vector(), None);
    }

    #[test]
    fn eoi_clears_the_highest_in_service_and_reveals_the_next() {
        let mut a = x2apic();
        a.raise(0x31);
        assert_eq!(take(&mut a), Some(0x31));
        // A higher class preempts the one in service.
        a.raise(0x52);
        assert_eq!(take(&mut a), Some(0x52));
        // Same class as one in service: blocked until its EOI.
        a.raise(0x55);
        assert_eq!(a.pending_vector(), None);
        assert_eq!(a.read_x2apic(msr(reg::PPR), 0), Ok(0x50));
        assert_eq!(
            a.read_x2apic(msr(reg::ISR + 0x20), 0),
            Ok(1 << (0x52 - 0x40)),
            "ISR word 2 holds vectors 0x40-0x5f"
        );
        eoi(&mut a);
        assert_eq!(take(&mut a), Some(0x55));
        eoi(&mut a);
        // Back to the first one: ISR still holds 0x31.
        assert_eq!(a.read_x2apic(msr(reg::PPR), 0), Ok(0x30));
        eoi(&mut a);
        assert_eq!(a.read_x2apic(msr(reg::PPR), 0), Ok(0));
        assert_eq!(a.read_x2apic(msr(reg::ISR + 0x10), 0), Ok(0));
        // EOI with nothing in service is harmless.
        eoi(&mut a);
    }

    #[test]
    fn ppr_and_tpr_masking() {
        let mut a = x2apic();
        a.write_x2apic(msr(reg::TPR), 0x45, 0).unwrap();
        assert_eq!(a.read_x2apic(msr(reg::PPR), 0), Ok(0x45));
        a.raise(0x4f);
        assert_eq!(a.pending_vector(), None, "class 4 is not above TPR class 4");
        a.raise(0x50);
        assert_eq!(take(&mut a), Some(0x50));
        // In service 0x50 beats TPR 0x45: PPR is the class, low bits 0.
        assert_eq!(a.read_x2apic(msr(reg::PPR), 0), Ok(0x50));
        eoi(&mut a);
        a.set_tpr(0x30);
        assert_eq!(a.tpr(), 0x30);
        assert_eq!(take(&mut a), Some(0x4f));
        assert_eq!(a.read_x2apic(msr(reg::TPR), 0), Ok(0x30));
    }

    #[test]
    fn self_ipi_and_icr() {
        let mut a = x2apic();
        // ArceOS `send_ipi_self`: the SELF IPI MSR.
        a.write_x2apic(msr(reg::SELF_IPI), 0xf3, 0).unwrap();
        assert_eq!(take(&mut a), Some(0xf3));
        eoi(&mut a);
        // ICR, fixed, physical destination = own ID.
        a.write_x2apic(msr(reg::ICR), 0x0000_0000_0000_4061, 0)
            .unwrap();
        assert_eq!(
            a.take_last_ipi(),
            Some(Ipi {
                icr: 0x4061,
                outcome: IpiOutcome::Delivered
            })
        );
        assert_eq!(take(&mut a), Some(0x61));
        eoi(&mut a);
        assert_eq!(a.read_x2apic(msr(reg::ICR), 0), Ok(0x4061));
        // The self shorthand, and broadcast.
        a.write_x2apic(msr(reg::ICR), icr::SELF | 0x62, 0).unwrap();
        assert_eq!(take(&mut a), Some(0x62));
        eoi(&mut a);
        a.write_x2apic(msr(reg::ICR), 0xffff_ffff_0000_0063, 0)
            .unwrap();
        assert_eq!(take(&mut a), Some(0x63));
        eoi(&mut a);
        // Logical: cluster 0, bit 0 is this CPU; bit 1 is nobody.
        a.write_x2apic(msr(reg::ICR), 0x0000_0001_0000_0864, 0)
            .unwrap();
        assert_eq!(take(&mut a), Some(0x64));
        eoi(&mut a);
        a.write_x2apic(msr(reg::ICR), 0x0000_0002_0000_0865, 0)
            .unwrap();
        assert_eq!(a.take_last_ipi().unwrap().outcome, IpiOutcome::NoTarget);
        // Other CPUs only: nobody.
        a.write_x2apic(msr(reg::ICR), icr::OTHERS | 0x66, 0)
            .unwrap();
        assert_eq!(a.take_last_ipi().unwrap().outcome, IpiOutcome::NoTarget);
        a.write_x2apic(msr(reg::ICR), 0x0000_0001_0000_0067, 0)
            .unwrap();
        assert_eq!(a.take_last_ipi().unwrap().outcome, IpiOutcome::NoTarget);
        assert_eq!(a.pending_vector(), None);
    }

    #[test]
    fn non_fixed_ipis_to_self_are_refused_and_recorded() {
        let mut a = x2apic();
        for mode in [icr::NMI, icr::INIT, icr::STARTUP, icr::SMI] {
            a.write_x2apic(msr(reg::ICR), icr::SELF | mode | 0x20, 0)
                .unwrap();
            assert_eq!(
                a.take_last_ipi(),
                Some(Ipi {
                    icr: icr::SELF | mode | 0x20,
                    outcome: IpiOutcome::Refused
                })
            );
        }
        a.write_x2apic(msr(reg::ICR), icr::SELF | icr::LOWEST_PRIORITY | 0x70, 0)
            .unwrap();
        assert_eq!(a.take_last_ipi().unwrap().outcome, IpiOutcome::Refused);
        assert_eq!(a.pending_vector(), None);
        a.write_x2apic(msr(reg::ESR), 0, 0).unwrap();
        assert_eq!(
            a.read_x2apic(msr(reg::ESR), 0),
            Ok(u64::from(esr::REDIRECTABLE_IPI))
        );
        assert_eq!(a.take_last_ipi(), None);
    }

    #[test]
    fn illegal_vectors_set_the_esr_and_signal_the_error_lvt() {
        let mut a = x2apic();
        a.write_x2apic(msr(reg::LVT_ERROR), ERROR_VECTOR.into(), 0)
            .unwrap();
        a.write_x2apic(msr(reg::SELF_IPI), 0x05, 0).unwrap();
        assert!(!a.raise(0x0f));
        // The errors appear in the ESR only after a write to it.
        assert_eq!(a.read_x2apic(msr(reg::ESR), 0), Ok(0));
        a.write_x2apic(msr(reg::ESR), 0, 0).unwrap();
        assert_eq!(
            a.read_x2apic(msr(reg::ESR), 0),
            Ok(u64::from(
                esr::SEND_ILLEGAL_VECTOR | esr::RECEIVED_ILLEGAL_VECTOR
            ))
        );
        assert_eq!(take(&mut a), Some(ERROR_VECTOR as u8));
        a.write_x2apic(msr(reg::ESR), 0, 0).unwrap();
        assert_eq!(a.read_x2apic(msr(reg::ESR), 0), Ok(0));
    }

    #[test]
    fn x2apic_access_rules() {
        let mut a = x2apic();
        assert_eq!(a.read_x2apic(msr(reg::ID), 0), Ok(0));
        assert_eq!(a.read_x2apic(msr(reg::VERSION), 0), Ok(0x0005_0014));
        assert_eq!(a.read_x2apic(msr(reg::LDR), 0), Ok(1));
        // Read-only registers, write-only registers, absent registers.
        for r in [
            reg::ID,
            reg::VERSION,
            reg::PPR,
            reg::LDR,
            reg::ISR,
            reg::IRR,
            reg::TIMER_CCR,
        ] {
            assert_eq!(a.write_x2apic(msr(r), 0, 0), Err(X2ApicFault), "{r:#x}");
        }
        for r in [
            reg::EOI,
            reg::SELF_IPI,
            reg::DFR,
            reg::APR,
            reg::ICR_HIGH,
            0x2f0,
            0x400,
        ] {
            assert_eq!(a.read_x2apic(msr(r), 0), Err(X2ApicFault), "{r:#x}");
        }
        // Non-zero EOI and ESR writes, and bits 63:32 outside the ICR.
        assert_eq!(a.write_x2apic(msr(reg::EOI), 1, 0), Err(X2ApicFault));
        assert_eq!(a.write_x2apic(msr(reg::ESR), 1, 0), Err(X2ApicFault));
        assert_eq!(a.write_x2apic(msr(reg::TPR), 1 << 32, 0), Err(X2ApicFault));
        // Outside x2APIC mode every x2APIC MSR faults.
        let mut x = Lapic::new(1);
        assert_eq!(x.read_x2apic(msr(reg::ID), 0), Err(X2ApicFault));
        assert_eq!(x.write_x2apic(msr(reg::TPR), 0, 0), Err(X2ApicFault));
    }

    #[test]
    fn xapic_page() {
        let mut a = Lapic::new(1);
        assert_eq!(a.read(reg::ID, Width::Word), Ok(0));
        assert_eq!(
            a.read(reg::SVR, Width::Byte),
            Err(DeviceError::BadWidth {
                offset: reg::SVR,
                width: Width::Byte
            })
        );
        assert_eq!(
            a.read(0x3f0, Width::Word),
            Err(DeviceError::BadOffset { offset: 0x3f0 })
        );
        assert_eq!(
            a.read(0x24, Width::Word),
            Err(DeviceError::BadOffset { offset: 0x24 })
        );
        a.write(reg::SVR, Width::Word, u64::from(svr::ENABLE | SPURIOUS))
            .unwrap();
        // Flat logical destination 0x01, then a logical fixed IPI to it
        // through ICR high then low.
        a.write(reg::LDR, Width::Word, 0x0100_0000).unwrap();
        a.write(reg::ICR_HIGH, Width::Word, 0x0100_0000).unwrap();
        a.write(reg::ICR, Width::Word, 0x0000_4841).unwrap();
        assert!(a.irq_output(0));
        assert_eq!(a.read(reg::IRR + 0x20, Width::Word), Ok(1 << 1));
        assert_eq!(take(&mut a), Some(0x41));
        a.write(reg::EOI, Width::Word, 0).unwrap();
        // Cluster model: cluster 0, member bit 0.
        a.write(reg::DFR, Width::Word, 0x0fff_ffff).unwrap();
        assert_eq!(a.read(reg::DFR, Width::Word), Ok(0x0fff_ffff));
        a.write(reg::ICR_HIGH, Width::Word, 0x1100_0000).unwrap();
        a.write(reg::ICR, Width::Word, 0x0000_4842).unwrap();
        assert_eq!(a.take_last_ipi().unwrap().outcome, IpiOutcome::NoTarget);
        // Timer through MMIO, using the time of the last tick.
        a.write(reg::LVT_TIMER, Width::Word, u64::from(TIMER_VECTOR))
            .unwrap();
        a.write(reg::TIMER_DCR, Width::Word, 0xb).unwrap();
        a.tick(1_000);
        a.write(reg::TIMER_ICR, Width::Word, 50).unwrap();
        a.tick(1_020);
        assert_eq!(a.read(reg::TIMER_CCR, Width::Word), Ok(30));
        a.tick(1_050);
        assert_eq!(take(&mut a), Some(TIMER_VECTOR));
        // In x2APIC mode the page is not decoded.
        a.set_mode(ApicMode::X2Apic, 1_050);
        assert_eq!(a.read(reg::VERSION, Width::Word), Ok(0));
        a.write(reg::TPR, Width::Word, 0xff).unwrap();
        assert_eq!(a.tpr(), 0);
    }

    #[test]
    fn disabling_resets_and_refuses_interrupts() {
        let mut a = x2apic();
        a.raise(0x80);
        a.write_x2apic(msr(reg::TPR), 0x20, 0).unwrap();
        a.set_mode(ApicMode::Disabled, 0);
        assert!(!a.raise(0x81));
        assert_eq!(a.pending_vector(), None);
        a.set_mode(ApicMode::XApic, 0);
        assert_eq!(a.read(reg::TPR, Width::Word), Ok(0));
        assert_eq!(a.read(reg::IRR + 0x40, Width::Word), Ok(0));
        assert_eq!(a.read(reg::SVR, Width::Word), Ok(0xff));
    }

    #[test]
    fn level_triggered_eoi_is_reported_once() {
        let mut a = x2apic();
        assert!(a.raise_level(0x34));
        assert_eq!(take(&mut a), Some(0x34));
        assert_eq!(
            a.read_x2apic(msr(reg::TMR + 0x10), 0),
            Ok(1 << (0x34 - 0x20))
        );
        assert_eq!(a.take_level_eoi(), None);
        eoi(&mut a);
        assert_eq!(a.take_level_eoi(), Some(0x34));
        assert_eq!(a.take_level_eoi(), None);
        // An edge-triggered one is not reported.
        a.raise(0x35);
        take(&mut a);
        eoi(&mut a);
        assert_eq!(a.take_level_eoi(), None);
    }

    #[test]
    fn acknowledge_needs_a_request_and_time_does_not_go_back() {
        let mut a = x2apic();
        assert!(!a.acknowledge(0x40));
        assert_eq!(a.ppr(), 0);
        lvt_timer(&mut a, u32::from(TIMER_VECTOR), 0);
        a.write_x2apic(msr(reg::TIMER_DCR), 0xb, 0).unwrap();
        initial(&mut a, 100, 1_000);
        // An older timestamp counts as "now".
        assert_eq!(a.read_x2apic(msr(reg::TIMER_CCR), 10), Ok(100));
        a.tick(500);
        assert_eq!(a.next_deadline(), Some(1_100));
    }

    #[test]
    fn io_apic_messages_are_accepted_when_addressed_here() {
        let msg = |vector, delivery, logical, destination, level| InterruptMessage {
            vector,
            delivery,
            logical,
            destination,
            level,
        };
        let fixed = DeliveryMode::Fixed;
        let mut a = x2apic();
        // Physical APIC 0 (what ArceOS leaves in the entry), broadcast,
        // and lowest priority: all this CPU.
        for (m, v) in [
            (msg(0x24, fixed, false, 0, false), 0x24),
            (msg(0x25, fixed, false, 0xff, false), 0x25),
            (
                msg(0x26, DeliveryMode::LowestPriority, false, 0, false),
                0x26,
            ),
            // x2APIC logical ID of APIC 0: cluster 0, bit 0.
            (msg(0x27, fixed, true, 0x01, false), 0x27),
        ] {
            assert_eq!(a.accept_message(&m), IpiOutcome::Delivered, "{m:?}");
            assert_eq!(take(&mut a), Some(v));
            eoi(&mut a);
        }
        // Another CPU, physically or logically.
        assert_eq!(
            a.accept_message(&msg(0x28, fixed, false, 1, false)),
            IpiOutcome::NoTarget
        );
        assert_eq!(
            a.accept_message(&msg(0x28, fixed, true, 0x02, false)),
            IpiOutcome::NoTarget
        );
        // Modes the model does not deliver, and an illegal vector.
        for mode in [DeliveryMode::Nmi, DeliveryMode::ExtInt, DeliveryMode::Init] {
            assert_eq!(
                a.accept_message(&msg(0x29, mode, false, 0, false)),
                IpiOutcome::Refused
            );
        }
        assert_eq!(
            a.accept_message(&msg(0x05, fixed, false, 0, false)),
            IpiOutcome::Refused
        );
        assert_eq!(a.pending_vector(), None);
        // A level-triggered one reports its EOI for the I/O APIC.
        assert_eq!(
            a.accept_message(&msg(0x30, fixed, false, 0, true)),
            IpiOutcome::Delivered
        );
        assert_eq!(take(&mut a), Some(0x30));
        eoi(&mut a);
        assert_eq!(a.take_level_eoi(), Some(0x30));
        // xAPIC mode: physical ID 0, or the flat logical ID in the LDR.
        let mut x = Lapic::default();
        x.write(reg::SVR, Width::Word, u64::from(svr::ENABLE | SPURIOUS))
            .unwrap();
        x.write(reg::LDR, Width::Word, 0x0400_0000).unwrap();
        assert_eq!(
            x.accept_message(&msg(0x31, fixed, true, 0x04, false)),
            IpiOutcome::Delivered
        );
        assert_eq!(
            x.accept_message(&msg(0x32, fixed, true, 0x08, false)),
            IpiOutcome::NoTarget
        );
        assert_eq!(
            x.accept_message(&msg(0x33, fixed, false, 0, false)),
            IpiOutcome::Delivered
        );
        // Hardware-disabled: nobody is there.
        x.set_mode(ApicMode::Disabled, 0);
        assert_eq!(
            x.accept_message(&msg(0x34, fixed, false, 0, false)),
            IpiOutcome::NoTarget
        );
    }
}
