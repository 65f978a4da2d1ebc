//! The x86 I/O APIC at 0xFEC0_0000: 24 interrupt input pins, each routed by
//! a redirection-table entry to a vector at the local APICs.
//!
//! Register semantics from the Intel 82093AA I/O APIC datasheet (section 3,
//! "Register Description"), with the one addition of the I/O (x)APIC that
//! the ICH9 of QEMU's q35 has: the EOI register.
//!
//! # Registers
//!
//! Two registers are in memory: IOREGSEL at +0x00 (bits 7:0 select an
//! internal register; a byte or dword access, as the datasheet allows) and
//! IOWIN at +0x10 (the selected register, dword accesses only). Version
//! 0x20 adds the EOI register at +0x40 (write-only, dword): writing a
//! vector clears the remote IRR of every level-triggered entry with that
//! vector, as an EOI broadcast from a local APIC does. Any other offset or
//! width stops the VM ([`DeviceError`]).
//!
//! Internal registers through IOWIN:
//!
//! * 0x00 ID: bits 27:24, read/write; a write also loads the arbitration
//!   ID (the datasheet: "same data is loaded into both").
//! * 0x01 VERSION: read-only [`VERSION`] = 0x0017_0020, maximum
//!   redirection entry 23 (24 pins) and version 0x20. Version 0x20 rather
//!   than the 82093AA's own 0x11, because 0x20 is what the I/O APIC of the
//!   q35 machine reports on bare QEMU (its `ioapic` device defaults to
//!   0x20), so a guest sees the same chip with or without the hypervisor,
//!   and 0x20 is the version that has the EOI register, which Linux uses
//!   when the version says it exists.
//! * 0x02 ARBITRATION: read-only, bits 27:24, the ID last written.
//! * 0x10..0x3F: the 24 redirection entries, low dword at `0x10 + 2n`,
//!   high at `0x11 + 2n`: vector (7:0), delivery mode (10:8), destination
//!   mode (11), delivery status (12, read-only, always idle: a message
//!   reaches the one local APIC at once), polarity (13, 1 = active low),
//!   remote IRR (14, read-only), trigger mode (15, 1 = level), mask (16),
//!   destination (63:56). Everything else is reserved and reads 0. After
//!   reset every entry is masked and the rest is 0.
//!
//! Other register numbers read 0 and ignore writes, as QEMU's I/O APIC
//! does. ArceOS relies on it: `axplat-x86-pc` passes an IRQ's *vector* to
//! the `x2apic` crate's `enable_irq`, which takes a *pin*, so registering a
//! handler for vector 0x24 reads and writes register 0x58, which does not
//! exist.
//!
//! # Pins
//!
//! [`Device::set_irq_source`] gives a pin's electrical level (the model's
//! lines are active-high, as the PC's ISA interrupts are); an entry's
//! polarity says which level asserts it. Per the datasheet:
//!
//! * Edge-triggered: the transition to asserted sends the entry's message,
//!   unless the entry is masked; an edge on a masked pin is lost ("not
//!   delivered or held pending"). Unmasking a pin that is asserted sends
//!   nothing.
//! * Level-triggered: while the pin is asserted, unmasked and its remote
//!   IRR clear, the message is sent and remote IRR set; the EOI for its
//!   vector (a local APIC's broadcast, [`Device::end_of_interrupt`], or the
//!   EOI register) clears remote IRR, and a pin still asserted sends again.
//!   Unmasking, or making an entry level-triggered, while the pin is
//!   asserted sends it too.
//!
//! Remote IRR is meaningless for edge-triggered entries ("undefined" in
//! the datasheet); the model clears it when an entry becomes
//! edge-triggered, which is how an OS ends a level interrupt on an I/O APIC
//! without an EOI register (Linux masks the entry and toggles its trigger
//! mode to edge and back).
//!
//! Messages wait in the model, at most one per pin (a second edge before
//! the first is taken merges with it, as in the local APIC's IRR), until
//! [`Device::take_message`] hands them out, lowest pin first.

use super::irq_message::{DeliveryMode, InterruptMessage};
use super::{Device, DeviceError, Width};

/// The I/O APIC's guest-physical base on the PC.
pub const IOAPIC_BASE: u64 = 0xfec0_0000;
/// The size of its register window (a page).
pub const IOAPIC_SIZE: u64 = 0x1000;
/// Interrupt input pins (redirection entries).
pub const PINS: usize = 24;
/// The VERSION register: maximum redirection entry and version 0x20.
pub const VERSION: u32 = ((PINS as u32 - 1) << 16) | 0x20;

/// Offsets in the memory window.
pub mod reg {
    /// I/O register select.
    pub const IOREGSEL: u64 = 0x00;
    /// I/O window: the selected register.
    pub const IOWIN: u64 = 0x10;
    /// EOI (version 0x20): a vector whose level entries end.
    pub const EOI: u64 = 0x40;
}

/// Internal register numbers (through IOREGSEL).
pub mod index {
    /// I/O APIC ID.
    pub const ID: u8 = 0x00;
    /// Version.
    pub const VERSION: u8 = 0x01;
    /// Arbitration ID.
    pub const ARBITRATION: u8 = 0x02;
    /// The first redirection entry's low dword; entry `n` is at
    /// `REDIRECTION + 2n` (low) and `+ 1` (high).
    pub const REDIRECTION: u8 = 0x10;
}

/// Redirection-entry bits.
pub mod rte {
    /// The vector.
    pub const VECTOR: u64 = 0xff;
    /// Delivery mode, bits 10:8.
    pub const DELIVERY_MODE: u64 = 0x700;
    /// Logical destination mode.
    pub const LOGICAL: u64 = 1 << 11;
    /// Delivery status (read-only).
    pub const DELIVERY_STATUS: u64 = 1 << 12;
    /// Input polarity: active low.
    pub const ACTIVE_LOW: u64 = 1 << 13;
    /// Remote IRR (read-only): a level interrupt is in service.
    pub const REMOTE_IRR: u64 = 1 << 14;
    /// Trigger mode: level.
    pub const LEVEL: u64 = 1 << 15;
    /// Masked.
    pub const MASKED: u64 = 1 << 16;
    /// The destination field, bits 63:56.
    pub const DESTINATION: u64 = 0xff << 56;
    /// The bits software can write.
    pub const WRITABLE: u64 =
        VECTOR | DELIVERY_MODE | LOGICAL | ACTIVE_LOW | LEVEL | MASKED | DESTINATION;
}

/// The I/O APIC model.
#[derive(Clone, Debug)]
pub struct IoApic {
    /// The 4-bit ID (also the arbitration ID).
    id: u8,
    /// IOREGSEL.
    select: u8,
    entries: [u64; PINS],
    /// Each pin's electrical level (bit n = pin n high).
    lines: u32,
    /// Messages sent and not yet taken, by pin.
    outbox: [Option<InterruptMessage>; PINS],
}

impl Default for IoApic {
    fn default() -> Self {
        Self::new()
    }
}

impl IoApic {
    /// An I/O APIC after reset: ID 0, every entry masked, every pin low.
    pub const fn new() -> Self {
        IoApic {
            id: 0,
            select: 0,
            entries: [rte::MASKED; PINS],
            lines: 0,
            outbox: [None; PINS],
        }
    }

    /// Redirection entry `pin` as the guest reads it.
    pub fn entry(&self, pin: usize) -> u64 {
        self.entries[pin]
    }

    /// Whether `pin`'s entry counts it as asserted now.
    fn asserted(&self, pin: usize) -> bool {
        let high = self.lines & (1 << pin) != 0;
        high != (self.entries[pin] & rte::ACTIVE_LOW != 0)
    }

    /// Queues `pin`'s message, built from its entry now.
    fn send(&mut self, pin: usize) {
        let e = self.entries[pin];
        self.outbox[pin] = Some(InterruptMessage {
            vector: (e & rte::VECTOR) as u8,
            delivery: DeliveryMode::from_bits((e >> 8) as u8),
            logical: e & rte::LOGICAL != 0,
            destination: (e >> 56) as u8,
            level: e & rte::LEVEL != 0,
        });
    }

    /// A level-triggered pin that is asserted, unmasked and not in service
    /// sends its message and goes in service.
    fn service_level(&mut self, pin: usize) {
        let e = self.entries[pin];
        if e & rte::LEVEL != 0 && e & (rte::MASKED | rte::REMOTE_IRR) == 0 && self.asserted(pin) {
            self.entries[pin] |= rte::REMOTE_IRR;
            self.send(pin);
        }
    }

    /// The EOI for `vector`, from a local APIC or the EOI register.
    fn eoi(&mut self, vector: u8) {
        for pin in 0..PINS {
            let e = self.entries[pin];
            if e & rte::REMOTE_IRR != 0 && (e & rte::VECTOR) as u8 == vector {
                self.entries[pin] &= !rte::REMOTE_IRR;
                self.service_level(pin);
            }
        }
    }

    /// The internal register `index`, or 0 where none is.
    fn read_register(&self, index: u8) -> u32 {
        match index {
            index::ID | index::ARBITRATION => u32::from(self.id) << 24,
            index::VERSION => VERSION,
            0x10..=0x3f => {
                let e = self.entries[usize::from((index - index::REDIRECTION) / 2)];
                if index & 1 == 0 {
                    e as u32
                } else {
                    (e >> 32) as u32
                }
            }
            _ => 0,
        }
    }

    fn write_register(&mut self, index: u8, value: u32) {
        match index {
            index::ID => self.id = ((value >> 24) & 0xf) as u8,
            0x10..=0x3f => {
                let pin = usize::from((index - index::REDIRECTION) / 2);
                let old = self.entries[pin];
                let (mask, new) = if index & 1 == 0 {
                    (rte::WRITABLE & 0xffff_ffff, u64::from(value))
                } else {
                    (rte::WRITABLE & !0xffff_ffff, u64::from(value) << 32)
                };
                let mut e = (old & !mask) | (new & mask);
                if e & rte::LEVEL == 0 {
                    e &= !rte::REMOTE_IRR;
                }
                self.entries[pin] = e;
                self.service_level(pin);
            }
            // VERSION and ARBITRATION are read-only; the rest does not exist.
            _ => {}
        }
    }
}

impl Device for IoApic {
    fn name(&self) -> &'static str {
        "ioapic"
    }

    fn read(&mut self, offset: u64, width: Width) -> Result<u64, DeviceError> {
        match (offset, width) {
            (reg::IOREGSEL, Width::Byte | Width::Word) => Ok(u64::from(self.select)),
            (reg::IOWIN, Width::Word) => Ok(u64::from(self.read_register(self.select))),
            // EOI is write-only.
            (reg::EOI, Width::Word) => Ok(0),
            (reg::IOREGSEL | reg::IOWIN | reg::EOI, _) => {
                Err(DeviceError::BadWidth { offset, width })
            }
            _ => Err(DeviceError::BadOffset { offset }),
        }
    }

    fn write(&mut self, offset: u64, width: Width, value: u64) -> Result<(), DeviceError> {
        match (offset, width) {
            (reg::IOREGSEL, Width::Byte | Width::Word) => self.select = value as u8,
            (reg::IOWIN, Width::Word) => self.write_register(self.select, value as u32),
            (reg::EOI, Width::Word) => self.eoi(value as u8),
            (reg::IOREGSEL | reg::IOWIN | reg::EOI, _) => {
                return Err(DeviceError::BadWidth { offset, width });
            }
            _ => return Err(DeviceError::BadOffset { offset }),
        }
        Ok(())
    }

    /// Pin `source` is now electrically `level`; pins past 23 do not exist.
    fn set_irq_source(&mut self, source: u32, level: bool) {
        let pin = source as usize;
        if pin >= PINS {
            return;
        }
        let was = self.asserted(pin);
        if level {
            self.lines |= 1 << pin;
        } else {
            self.lines &= !(1 << pin);
        }
        let e = self.entries[pin];
        if e & rte::LEVEL != 0 {
            self.service_level(pin);
        } else if !was && self.asserted(pin) && e & rte::MASKED == 0 {
            self.send(pin);
        }
    }

    fn take_message(&mut self) -> Option<InterruptMessage> {
        self.outbox.iter_mut().find_map(Option::take)
    }

    fn end_of_interrupt(&mut self, vector: u8) {
        self.eoi(vector);
    }
}

#[cfg(test)]
mod tests;
