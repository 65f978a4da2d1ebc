//! The RISC-V platform-level interrupt controller of QEMU's `virt` machine
//! (SiFive PLIC, as in the "RISC-V Platform-Level Interrupt Controller
//! Specification" 1.0.0), for a guest with 1 to [`MAX_HARTS`] harts.
//!
//! Layout (offsets from the base, 0x0c00_0000 on `virt`):
//!
//! | offset | register |
//! |---|---|
//! | `0x0 + 4*id` | priority of source `id` (3 bits: levels 0..=7, 0 = never) |
//! | `0x1000 + 4*w` | pending bits of sources `32*w..32*w+31` (read-only) |
//! | `0x2000 + 0x80*ctx + 4*w` | enable bits of context `ctx` |
//! | `0x20_0000 + 0x1000*ctx` | priority threshold of context `ctx` |
//! | `0x20_0004 + 0x1000*ctx` | claim (read) / complete (write) of context `ctx` |
//!
//! Each hart has two contexts, numbered as QEMU `virt` does (its PLIC
//! `hart-config` is `MS` per hart): context `2*h` is hart `h`'s M-mode
//! ([`m_mode_context`]) and `2*h + 1` its S-mode ([`s_mode_context`]). The
//! guest runs in (V)S-mode and drives the S contexts; the M contexts are
//! kept so firmware-style accesses work, but their outputs go nowhere.
//! Every context has its own enable bits, threshold and claim/complete
//! register; pending and in-service bits are shared, so a claim through
//! one context takes the source away from all the others.
//!
//! The enable words and context registers of contexts beyond the harts
//! the model was built with ([`Plic::with_harts`]) read as 0 and ignore
//! writes, as in QEMU, whose PLIC answers an access it does not decode
//! with 0 (and logs it) rather than a bus error. Every other offset
//! without a register is refused. Only 4-byte accesses are accepted
//! (QEMU's `min/max_access_size` = 4).
//!
//! Gateway semantics, level-triggered: while a source's line is high and
//! the source is not claimed-and-not-completed, its pending bit is set; a
//! claim clears it and marks the source in service; completion ends
//! service and, if the line is still high, the source is pending again.
//! When a line drops before the claim the pending bit is withdrawn, as in
//! QEMU (its `sifive_plic_irq_request` writes the level into the pending
//! bit); otherwise a guest that polled its UART empty would still take a
//! (harmless but spurious) interrupt.

use super::{Device, DeviceError, Width};

/// Number of interrupt source ids; id 0 is reserved ("no interrupt"),
/// 1..=95 are usable.
pub const NUM_SOURCES: u32 = 96;
/// The most harts one PLIC serves: a VM's most vCPUs.
pub const MAX_HARTS: usize = crate::exit::CpuSet::MAX_CPUS as usize;
/// Contexts per hart: its M-mode and its S-mode.
pub const CONTEXTS_PER_HART: usize = 2;
/// The most contexts one PLIC has.
pub const MAX_CONTEXTS: usize = CONTEXTS_PER_HART * MAX_HARTS;
/// The context of hart 0's (S-mode) external interrupt, the guest's on a
/// one-hart machine.
pub const S_MODE_CONTEXT: usize = s_mode_context(0);

/// The context of hart `hart`'s M-mode external interrupt.
pub const fn m_mode_context(hart: usize) -> usize {
    CONTEXTS_PER_HART * hart
}

/// The context of hart `hart`'s S-mode external interrupt, the one the
/// guest running on that hart drives.
pub const fn s_mode_context(hart: usize) -> usize {
    CONTEXTS_PER_HART * hart + 1
}
/// Size of the register region.
pub const PLIC_SIZE: u64 = 0x60_0000;
/// Highest priority (and threshold) level: priorities are 3 bits.
pub const MAX_PRIORITY: u32 = 7;

/// Register offsets.
pub mod reg {
    /// Source priorities, 4 bytes per source id.
    pub const PRIORITY: u64 = 0x0;
    /// Pending bits, one 32-bit word per 32 sources.
    pub const PENDING: u64 = 0x1000;
    /// Enable bits of context 0.
    pub const ENABLE: u64 = 0x2000;
    /// Distance between two contexts' enable bits.
    pub const ENABLE_STRIDE: u64 = 0x80;
    /// Threshold of context 0.
    pub const CONTEXT: u64 = 0x20_0000;
    /// Distance between two contexts' threshold registers.
    pub const CONTEXT_STRIDE: u64 = 0x1000;
    /// Claim/complete, relative to the threshold register.
    pub const CLAIM: u64 = 4;
}

const WORDS: usize = NUM_SOURCES.div_ceil(32) as usize;

/// A set of source ids as bit words (bit `id % 32` of word `id / 32`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Bits([u32; WORDS]);

impl Bits {
    fn get(&self, id: u32) -> bool {
        self.0[(id / 32) as usize] & (1 << (id % 32)) != 0
    }

    fn set(&mut self, id: u32, on: bool) {
        let w = &mut self.0[(id / 32) as usize];
        if on {
            *w |= 1 << (id % 32);
        } else {
            *w &= !(1 << (id % 32));
        }
    }
}

/// The PLIC model.
#[derive(Clone, Debug)]
pub struct Plic {
    priority: [u32; NUM_SOURCES as usize],
    /// The level of each source's input line.
    line: Bits,
    pending: Bits,
    /// Claimed and not yet completed.
    in_service: Bits,
    /// How many contexts exist: two per hart. Entries past it in
    /// `enable` and `threshold` stay 0.
    contexts: usize,
    enable: [Bits; MAX_CONTEXTS],
    threshold: [u32; MAX_CONTEXTS],
}

impl Default for Plic {
    fn default() -> Self {
        Self::new()
    }
}

impl Plic {
    /// A PLIC for one hart in its reset state: every priority, threshold
    /// and enable 0.
    pub const fn new() -> Self {
        Self::with_harts(1)
    }

    /// A PLIC for `harts` harts (contexts `0..2 * harts`) in its reset
    /// state.
    ///
    /// # Panics
    ///
    /// If `harts` is not in `1..=MAX_HARTS` (a VM's vCPU count is checked
    /// against the same bound when its config is read).
    pub const fn with_harts(harts: usize) -> Self {
        assert!(harts >= 1 && harts <= MAX_HARTS, "1 to MAX_HARTS harts");
        Self {
            priority: [0; NUM_SOURCES as usize],
            line: Bits([0; WORDS]),
            pending: Bits([0; WORDS]),
            in_service: Bits([0; WORDS]),
            contexts: CONTEXTS_PER_HART * harts,
            enable: [Bits([0; WORDS]); MAX_CONTEXTS],
            threshold: [0; MAX_CONTEXTS],
        }
    }

    /// How many harts the PLIC serves.
    pub const fn harts(&self) -> usize {
        self.contexts / CONTEXTS_PER_HART
    }

    /// The source `claim` would return for `ctx` (0 if none): the pending,
    /// enabled source with the highest priority above the threshold, the
    /// lowest id among equals.
    fn best(&self, ctx: usize) -> u32 {
        let mut best = 0;
        let mut best_priority = self.threshold[ctx];
        for id in 1..NUM_SOURCES {
            let p = self.priority[id as usize];
            // Strictly greater: an equal priority later in the scan (a
            // higher id) does not displace the current choice.
            if p > best_priority && self.pending.get(id) && self.enable[ctx].get(id) {
                best = id;
                best_priority = p;
            }
        }
        best
    }

    fn claim(&mut self, ctx: usize) -> u32 {
        let id = self.best(ctx);
        if id != 0 {
            self.pending.set(id, false);
            self.in_service.set(id, true);
        }
        id
    }

    /// Ends service of `id`. The specification ignores completions of ids
    /// not enabled for the context; this model also ignores ids that are
    /// not in service (nothing to end).
    fn complete(&mut self, ctx: usize, id: u32) {
        if id == 0 || id >= NUM_SOURCES || !self.enable[ctx].get(id) || !self.in_service.get(id) {
            return;
        }
        self.in_service.set(id, false);
        if self.line.get(id) {
            self.pending.set(id, true);
        }
    }

    /// Where in the region `offset` falls: `(register, index)`.
    fn decode(&self, offset: u64) -> Option<Register> {
        let end_priority = reg::PRIORITY + 4 * u64::from(NUM_SOURCES);
        let end_pending = reg::PENDING + 4 * WORDS as u64;
        let end_enable = reg::ENABLE + reg::ENABLE_STRIDE * self.contexts as u64;
        let end_context = reg::CONTEXT + reg::CONTEXT_STRIDE * self.contexts as u64;
        Some(match offset {
            o if o < end_priority => Register::Priority((o / 4) as u32),
            o if (reg::PENDING..end_pending).contains(&o) => {
                Register::Pending(((o - reg::PENDING) / 4) as usize)
            }
            // The enable words and context registers of contexts this PLIC
            // does not have: the rest of both areas.
            o if (end_enable..reg::CONTEXT).contains(&o)
                || (end_context..PLIC_SIZE).contains(&o) =>
            {
                Register::Absent
            }
            o if (reg::ENABLE..end_enable).contains(&o) => {
                let ctx = ((o - reg::ENABLE) / reg::ENABLE_STRIDE) as usize;
                let word = ((o - reg::ENABLE) % reg::ENABLE_STRIDE / 4) as usize;
                if word >= WORDS {
                    return None;
                }
                Register::Enable(ctx, word)
            }
            o if (reg::CONTEXT..end_context).contains(&o) => {
                let ctx = ((o - reg::CONTEXT) / reg::CONTEXT_STRIDE) as usize;
                match (o - reg::CONTEXT) % reg::CONTEXT_STRIDE {
                    0 => Register::Threshold(ctx),
                    reg::CLAIM => Register::Claim(ctx),
                    _ => return None,
                }
            }
            _ => return None,
        })
    }
}

/// A decoded register.
enum Register {
    Priority(u32),
    Pending(usize),
    Enable(usize, usize),
    Threshold(usize),
    Claim(usize),
    /// A register of a context that does not exist: reads 0, writes are
    /// ignored.
    Absent,
}

impl Device for Plic {
    fn name(&self) -> &'static str {
        "plic"
    }

    fn read(&mut self, offset: u64, width: Width) -> Result<u64, DeviceError> {
        if width != Width::Word || !offset.is_multiple_of(4) {
            return Err(DeviceError::BadWidth { offset, width });
        }
        let v = match self
            .decode(offset)
            .ok_or(DeviceError::BadOffset { offset })?
        {
            Register::Priority(id) => self.priority[id as usize],
            Register::Pending(w) => self.pending.0[w],
            Register::Enable(ctx, w) => self.enable[ctx].0[w],
            Register::Threshold(ctx) => self.threshold[ctx],
            Register::Claim(ctx) => self.claim(ctx),
            Register::Absent => 0,
        };
        Ok(u64::from(v))
    }

    fn write(&mut self, offset: u64, width: Width, value: u64) -> Result<(), DeviceError> {
        if width != Width::Word || !offset.is_multiple_of(4) {
            return Err(DeviceError::BadWidth { offset, width });
        }
        let v = value as u32;
        match self
            .decode(offset)
            .ok_or(DeviceError::BadOffset { offset })?
        {
            // Source 0 does not exist: its priority stays 0.
            Register::Priority(0) => {}
            // WARL: only the 3 implemented bits are kept (QEMU: value % 8).
            Register::Priority(id) => self.priority[id as usize] = v & MAX_PRIORITY,
            Register::Pending(_) => return Err(DeviceError::ReadOnly { offset }),
            // Bit 0 (source 0) is hardwired to 0.
            Register::Enable(ctx, 0) => self.enable[ctx].0[0] = v & !1,
            Register::Enable(ctx, w) => self.enable[ctx].0[w] = v,
            Register::Threshold(ctx) => self.threshold[ctx] = v & MAX_PRIORITY,
            Register::Claim(ctx) => self.complete(ctx, v),
            Register::Absent => {}
        }
        Ok(())
    }

    /// The PLIC itself has no input line into another controller.
    fn irq_level(&self) -> bool {
        false
    }

    fn set_irq_source(&mut self, source: u32, level: bool) {
        if source == 0 || source >= NUM_SOURCES {
            return;
        }
        self.line.set(source, level);
        if !level {
            self.pending.set(source, false);
        } else if !self.in_service.get(source) {
            self.pending.set(source, true);
        }
    }

    fn irq_output(&self, context: usize) -> bool {
        context < self.contexts && self.best(context) != 0
    }
}

#[cfg(test)]
mod tests {
    extern crate alloc;

    use alloc::boxed::Box;

    use super::*;
    use crate::addr::GuestPhysAddr;
    use crate::devices::uart16550::{self, Uart16550};
    use crate::devices::{Bus, BusError, MmioAccess};

    const BASE: u64 = 0x0c00_0000;
    const UART: u64 = 0x1000_0000;
    const S: usize = S_MODE_CONTEXT;

    fn enable_off(ctx: usize, id: u32) -> u64 {
        reg::ENABLE + reg::ENABLE_STRIDE * ctx as u64 + 4 * u64::from(id / 32)
    }
    fn threshold_off(ctx: usize) -> u64 {
        reg::CONTEXT + reg::CONTEXT_STRIDE * ctx as u64
    }
    fn claim_off(ctx: usize) -> u64 {
        threshold_off(ctx) + reg::CLAIM
    }

    struct Rig {
        bus: Bus,
    }

    impl Rig {
        fn new() -> Self {
            let mut bus = Bus::new();
            let plic = bus
                .add(
                    GuestPhysAddr::new(BASE),
                    PLIC_SIZE,
                    Box::new(Plic::new()),
                    None,
                )
                .unwrap();
            bus.set_irq_chip(plic).unwrap();
            let uart = Box::new(Uart16550::new());
            bus.add(GuestPhysAddr::new(UART), 0x100, uart, Some(10))
                .unwrap();
            Rig { bus }
        }
        fn r(&mut self, off: u64) -> u32 {
            self.bus
                .access(&MmioAccess::read(
                    GuestPhysAddr::new(BASE + off),
                    Width::Word,
                ))
                .unwrap() as u32
        }
        fn w(&mut self, off: u64, v: u32) {
            self.bus
                .access(&MmioAccess::write(
                    GuestPhysAddr::new(BASE + off),
                    Width::Word,
                    u64::from(v),
                ))
                .unwrap();
        }
        fn uart_r(&mut self, off: u64) -> u8 {
            self.bus
                .access(&MmioAccess::read(
                    GuestPhysAddr::new(UART + off),
                    Width::Byte,
                ))
                .unwrap() as u8
        }
        fn uart_w(&mut self, off: u64, v: u8) {
            self.bus
                .access(&MmioAccess::write(
                    GuestPhysAddr::new(UART + off),
                    Width::Byte,
                    u64::from(v),
                ))
                .unwrap();
        }
    }

    /// A bare PLIC with sources driven directly.
    fn plic() -> Plic {
        Plic::new()
    }

    fn rd(p: &mut Plic, off: u64) -> u32 {
        p.read(off, Width::Word).unwrap() as u32
    }
    fn wr(p: &mut Plic, off: u64, v: u32) {
        p.write(off, Width::Word, u64::from(v)).unwrap();
    }

    #[test]
    fn registers_read_back() {
        let mut p = plic();
        wr(&mut p, 4 * 5, 0xffff_fff3);
        assert_eq!(rd(&mut p, 4 * 5), 3);
        wr(&mut p, 0, 7);
        assert_eq!(rd(&mut p, 0), 0, "source 0 has no priority");
        wr(&mut p, enable_off(S, 0), 0xffff_ffff);
        assert_eq!(rd(&mut p, enable_off(S, 0)), 0xffff_fffe);
        wr(&mut p, enable_off(S, 64), 0x8000_0001);
        assert_eq!(rd(&mut p, enable_off(S, 64)), 0x8000_0001);
        assert_eq!(rd(&mut p, enable_off(0, 64)), 0);
        wr(&mut p, threshold_off(S), 9);
        assert_eq!(rd(&mut p, threshold_off(S)), 1);
        assert_eq!(rd(&mut p, threshold_off(0)), 0);
    }

    #[test]
    fn refused_accesses() {
        let mut p = plic();
        assert_eq!(
            p.read(0x4, Width::Byte),
            Err(DeviceError::BadWidth {
                offset: 4,
                width: Width::Byte
            })
        );
        assert!(matches!(
            p.write(0x4, Width::Double, 1),
            Err(DeviceError::BadWidth { .. })
        ));
        assert_eq!(
            p.write(reg::PENDING, Width::Word, 1),
            Err(DeviceError::ReadOnly {
                offset: reg::PENDING
            })
        );
        for off in [
            reg::PRIORITY + 4 * u64::from(NUM_SOURCES),
            reg::PENDING + 12,
            enable_off(S, 96),
            threshold_off(S) + 8,
        ] {
            assert_eq!(
                p.read(off, Width::Word),
                Err(DeviceError::BadOffset { offset: off }),
                "{off:#x}"
            );
        }
    }

    #[test]
    fn contexts_beyond_the_harts_read_zero_and_ignore_writes() {
        for harts in [1, 2, MAX_HARTS] {
            let mut p = Plic::with_harts(harts);
            assert_eq!(p.harts(), harts);
            let first_absent = m_mode_context(harts);
            for off in [
                enable_off(first_absent, 1),
                enable_off(first_absent + 1, 95),
                // The last enable word before the context area.
                reg::CONTEXT - 4,
                threshold_off(first_absent),
                claim_off(first_absent + 1),
                threshold_off(first_absent) + 8,
                PLIC_SIZE - 4,
            ] {
                wr(&mut p, off, 0xffff_ffff);
                assert_eq!(rd(&mut p, off), 0, "{harts} harts, {off:#x}");
            }
            // The last existing context's registers are real.
            let last = s_mode_context(harts - 1);
            wr(&mut p, threshold_off(last), 3);
            assert_eq!(rd(&mut p, threshold_off(last)), 3);
            wr(&mut p, enable_off(last, 1), 1 << 1);
            assert_eq!(rd(&mut p, enable_off(last, 1)), 1 << 1);
            assert!(!p.irq_output(first_absent + 1));
        }
    }

    #[test]
    #[should_panic]
    fn nine_harts_are_refused() {
        let _ = Plic::with_harts(MAX_HARTS + 1);
    }

    #[test]
    fn context_numbers_follow_qemu_virt() {
        assert_eq!((m_mode_context(0), s_mode_context(0)), (0, 1));
        assert_eq!((m_mode_context(3), s_mode_context(3)), (6, 7));
        assert_eq!(S_MODE_CONTEXT, 1);
        assert_eq!(MAX_CONTEXTS, 16);
        // Hart 7's S context is the last one the region holds room for in
        // the enable area as well as the context area.
        assert!(reg::ENABLE + reg::ENABLE_STRIDE * MAX_CONTEXTS as u64 <= reg::CONTEXT);
        assert!(reg::CONTEXT + reg::CONTEXT_STRIDE * MAX_CONTEXTS as u64 <= PLIC_SIZE);
    }

    #[test]
    fn two_harts_an_interrupt_enabled_for_hart_1_reaches_only_it() {
        let mut p = Plic::with_harts(2);
        let s1 = s_mode_context(1);
        wr(&mut p, 4 * 10, 1);
        wr(&mut p, enable_off(s1, 10), 1 << 10);
        p.set_irq_source(10, true);
        for ctx in 0..MAX_CONTEXTS {
            assert_eq!(p.irq_output(ctx), ctx == s1, "context {ctx}");
        }
        // Hart 0's S context claims nothing: 10 is not enabled there.
        assert_eq!(rd(&mut p, claim_off(S)), 0);
        assert_eq!(rd(&mut p, reg::PENDING), 1 << 10);
        // Hart 1's threshold is its own.
        wr(&mut p, threshold_off(s1), 1);
        assert!(!p.irq_output(s1));
        assert_eq!(rd(&mut p, threshold_off(S)), 0);
        wr(&mut p, threshold_off(s1), 0);
        assert_eq!(rd(&mut p, claim_off(s1)), 10);
        assert!(!p.irq_output(s1));
        // Completion from hart 0, where 10 is not enabled, is ignored.
        wr(&mut p, claim_off(S), 10);
        assert_eq!(rd(&mut p, reg::PENDING), 0);
        wr(&mut p, claim_off(s1), 10);
        assert_eq!(rd(&mut p, reg::PENDING), 1 << 10, "still high");
        assert!(p.irq_output(s1));
    }

    #[test]
    fn two_harts_a_claim_on_one_context_removes_it_from_the_other() {
        let mut p = Plic::with_harts(2);
        let s1 = s_mode_context(1);
        wr(&mut p, 4 * 10, 1);
        for ctx in [S, s1] {
            wr(&mut p, enable_off(ctx, 10), 1 << 10);
        }
        p.set_irq_source(10, true);
        assert!(p.irq_output(S) && p.irq_output(s1), "both are offered it");
        assert_eq!(rd(&mut p, claim_off(s1)), 10);
        assert!(!p.irq_output(S) && !p.irq_output(s1));
        assert_eq!(rd(&mut p, claim_off(S)), 0, "hart 0 lost the race");
        // Either context may complete it (it is enabled in both); then both
        // are offered it again while the line stays high.
        wr(&mut p, claim_off(S), 10);
        assert!(p.irq_output(S) && p.irq_output(s1));
        assert_eq!(rd(&mut p, claim_off(S)), 10);
        assert!(!p.irq_output(s1));
    }

    #[test]
    fn claim_picks_the_highest_priority_above_threshold() {
        let mut p = plic();
        for (id, prio) in [(3, 2), (4, 5), (40, 5), (70, 1)] {
            wr(&mut p, 4 * id, prio);
            p.set_irq_source(id as u32, true);
        }
        assert_eq!(rd(&mut p, reg::PENDING), (1 << 3) | (1 << 4));
        assert_eq!(rd(&mut p, reg::PENDING + 4), 1 << (40 - 32));
        assert_eq!(rd(&mut p, reg::PENDING + 8), 1 << (70 - 64));
        // Nothing enabled for context 1 yet.
        assert!(!p.irq_output(S));
        assert_eq!(rd(&mut p, claim_off(S)), 0);
        wr(&mut p, enable_off(S, 0), (1 << 3) | (1 << 4));
        wr(&mut p, enable_off(S, 40), 1 << 8);
        wr(&mut p, enable_off(S, 70), 1 << 6);
        assert!(p.irq_output(S));
        // Context 0 has no enables: its output stays low.
        assert!(!p.irq_output(0));
        assert!(!p.irq_output(2));
        // 4 and 40 tie at 5: the lower id wins. Claiming clears pending.
        assert_eq!(rd(&mut p, claim_off(S)), 4);
        assert_eq!(rd(&mut p, reg::PENDING) & (1 << 4), 0);
        assert_eq!(rd(&mut p, claim_off(S)), 40);
        // Threshold 2: source 3 (priority 2) no longer qualifies.
        wr(&mut p, threshold_off(S), 2);
        assert!(!p.irq_output(S));
        assert_eq!(rd(&mut p, claim_off(S)), 0);
        wr(&mut p, threshold_off(S), 1);
        assert!(p.irq_output(S));
        assert_eq!(rd(&mut p, claim_off(S)), 3);
        // Source 70 has priority 1, not above threshold 1.
        assert_eq!(rd(&mut p, claim_off(S)), 0);
        wr(&mut p, threshold_off(S), 0);
        assert_eq!(rd(&mut p, claim_off(S)), 70);
        assert_eq!(rd(&mut p, claim_off(S)), 0);
        assert!(!p.irq_output(S));
    }

    #[test]
    fn priority_zero_never_interrupts() {
        let mut p = plic();
        wr(&mut p, enable_off(S, 0), 1 << 9);
        p.set_irq_source(9, true);
        assert_eq!(rd(&mut p, reg::PENDING), 1 << 9);
        assert!(!p.irq_output(S));
        assert_eq!(rd(&mut p, claim_off(S)), 0);
        wr(&mut p, 4 * 9, 1);
        assert!(p.irq_output(S));
    }

    #[test]
    fn level_source_waits_for_completion() {
        let mut p = plic();
        wr(&mut p, 4 * 7, 1);
        wr(&mut p, enable_off(S, 7), 1 << 7);
        p.set_irq_source(7, true);
        assert_eq!(rd(&mut p, claim_off(S)), 7);
        // Still high, but in service: not pending, output low.
        p.set_irq_source(7, true);
        assert_eq!(rd(&mut p, reg::PENDING), 0);
        assert!(!p.irq_output(S));
        assert_eq!(rd(&mut p, claim_off(S)), 0);
        // Completing an id that is not in service changes nothing.
        wr(&mut p, claim_off(S), 8);
        wr(&mut p, claim_off(S), 0);
        wr(&mut p, claim_off(S), 1000);
        assert!(!p.irq_output(S));
        // Completing from a context where 7 is not enabled is ignored.
        wr(&mut p, claim_off(0), 7);
        assert!(!p.irq_output(S));
        // Completion with the line still high: pending again.
        wr(&mut p, claim_off(S), 7);
        assert_eq!(rd(&mut p, reg::PENDING), 1 << 7);
        assert!(p.irq_output(S));
        assert_eq!(rd(&mut p, claim_off(S)), 7);
        // Line dropped during service: completion leaves it idle.
        p.set_irq_source(7, false);
        wr(&mut p, claim_off(S), 7);
        assert_eq!(rd(&mut p, reg::PENDING), 0);
        assert!(!p.irq_output(S));
        // A second completion of the same id is ignored.
        p.set_irq_source(7, true);
        assert_eq!(rd(&mut p, reg::PENDING), 1 << 7);
        wr(&mut p, claim_off(S), 7);
        assert_eq!(rd(&mut p, reg::PENDING), 1 << 7);
        // A line that drops before the claim withdraws the request.
        p.set_irq_source(7, false);
        assert!(!p.irq_output(S));
        assert_eq!(rd(&mut p, claim_off(S)), 0);
    }

    #[test]
    fn out_of_range_sources_are_ignored() {
        let mut p = plic();
        p.set_irq_source(0, true);
        p.set_irq_source(NUM_SOURCES, true);
        assert_eq!(rd(&mut p, reg::PENDING), 0);
        assert_eq!(rd(&mut p, reg::PENDING + 8), 0);
    }

    #[test]
    fn uart_rx_interrupt_through_the_bus() {
        let mut rig = Rig::new();
        rig.w(4 * 10, 1);
        rig.w(enable_off(S, 10), 1 << 10);
        rig.w(threshold_off(S), 0);
        // A byte arrives but ERBFI is off: no interrupt.
        assert!(rig.bus.push_console_input(b'x'));
        assert!(!rig.bus.external_irq(S));
        // The guest enables RX interrupts: the line rises at once.
        rig.uart_w(uart16550::reg::IER, uart16550::ier::RX_DATA);
        assert!(rig.bus.external_irq(S));
        assert!(!rig.bus.external_irq(0));
        // The handler: claim, drain the UART, complete.
        assert_eq!(rig.r(claim_off(S)), 10);
        assert!(!rig.bus.external_irq(S));
        assert_eq!(rig.uart_r(uart16550::reg::IIR_FCR), uart16550::iir::RX_DATA);
        assert_eq!(rig.uart_r(uart16550::reg::RBR_THR), b'x');
        rig.w(claim_off(S), 10);
        assert!(!rig.bus.external_irq(S));
        assert_eq!(rig.r(reg::PENDING), 0);
        // Next byte while not in service: the output follows the line and
        // drops when the byte is read without a claim (polling).
        assert!(rig.bus.push_console_input(b'y'));
        assert!(rig.bus.external_irq(S));
        assert_eq!(rig.uart_r(uart16550::reg::RBR_THR), b'y');
        assert!(!rig.bus.external_irq(S));
        // Context-1 threshold masks it.
        rig.w(threshold_off(S), 1);
        assert!(rig.bus.push_console_input(b'z'));
        assert!(!rig.bus.external_irq(S));
        rig.w(threshold_off(S), 0);
        assert!(rig.bus.external_irq(S));
    }

    #[test]
    fn bus_refuses_narrow_plic_accesses() {
        let mut rig = Rig::new();
        let a = MmioAccess::read(GuestPhysAddr::new(BASE + claim_off(S)), Width::Byte);
        assert!(matches!(
            rig.bus.access(&a),
            Err(BusError::Device {
                device: "plic",
                error: DeviceError::BadWidth { .. },
                ..
            })
        ));
    }
}
