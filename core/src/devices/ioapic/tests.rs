//! The I/O APIC through its memory window, as a guest programs it.

use super::*;

const COM1_PIN: u32 = 4;
const VECTOR: u64 = 0x24;

fn sel(a: &mut IoApic, index: u8) {
    a.write(reg::IOREGSEL, Width::Word, u64::from(index))
        .unwrap();
}

fn get(a: &mut IoApic, index: u8) -> u32 {
    sel(a, index);
    a.read(reg::IOWIN, Width::Word).unwrap() as u32
}

fn set(a: &mut IoApic, index: u8, value: u32) {
    sel(a, index);
    a.write(reg::IOWIN, Width::Word, u64::from(value)).unwrap();
}

fn lo(pin: u32) -> u8 {
    index::REDIRECTION + 2 * pin as u8
}

/// Programs `pin` with the low dword `low` and destination 0.
fn program(a: &mut IoApic, pin: u32, low: u64) {
    set(a, lo(pin) + 1, 0);
    set(a, lo(pin), low as u32);
}

fn fixed(vector: u8, level: bool) -> InterruptMessage {
    InterruptMessage {
        vector,
        delivery: DeliveryMode::Fixed,
        logical: false,
        destination: 0,
        level,
    }
}

#[test]
fn registers_after_reset() {
    let mut a = IoApic::new();
    assert_eq!(get(&mut a, index::ID), 0);
    assert_eq!(get(&mut a, index::VERSION), 0x0017_0020);
    assert_eq!(get(&mut a, index::ARBITRATION), 0);
    for pin in 0..PINS as u32 {
        assert_eq!(get(&mut a, lo(pin)), 1 << 16, "pin {pin} masked");
        assert_eq!(get(&mut a, lo(pin) + 1), 0);
    }
    assert_eq!(a.take_message(), None);
    assert_eq!(a.name(), "ioapic");
}

#[test]
fn ioregsel_takes_byte_and_dword_accesses_and_keeps_eight_bits() {
    let mut a = IoApic::new();
    a.write(reg::IOREGSEL, Width::Word, 0xdead_be01).unwrap();
    assert_eq!(a.read(reg::IOREGSEL, Width::Word), Ok(0x01));
    assert_eq!(a.read(reg::IOWIN, Width::Word), Ok(u64::from(VERSION)));
    a.write(reg::IOREGSEL, Width::Byte, 0x10).unwrap();
    assert_eq!(a.read(reg::IOREGSEL, Width::Byte), Ok(0x10));
    assert_eq!(a.read(reg::IOWIN, Width::Word), Ok(1 << 16));
}

#[test]
fn the_id_is_four_bits_and_loads_the_arbitration_id() {
    let mut a = IoApic::new();
    set(&mut a, index::ID, 0xffff_ffff);
    assert_eq!(get(&mut a, index::ID), 0x0f00_0000);
    assert_eq!(get(&mut a, index::ARBITRATION), 0x0f00_0000);
    // VERSION and ARBITRATION are read-only.
    set(&mut a, index::VERSION, 0);
    set(&mut a, index::ARBITRATION, 0x0300_0000);
    assert_eq!(get(&mut a, index::VERSION), VERSION);
    assert_eq!(get(&mut a, index::ARBITRATION), 0x0f00_0000);
}

#[test]
fn redirection_entries_keep_only_their_writable_bits() {
    let mut a = IoApic::new();
    set(&mut a, lo(23), 0xffff_ffff);
    set(&mut a, lo(23) + 1, 0xffff_ffff);
    // Delivery status (12), remote IRR (14) and bits 31:17 stay 0; only
    // the destination of the high dword is kept.
    assert_eq!(get(&mut a, lo(23)), 0x0001_afff);
    assert_eq!(get(&mut a, lo(23) + 1), 0xff00_0000);
    assert_eq!(a.entry(23), 0xff00_0000_0001_afff);
    // The neighbours are untouched.
    assert_eq!(a.entry(22), rte::MASKED);
}

#[test]
fn registers_that_do_not_exist_read_zero_and_ignore_writes() {
    let mut a = IoApic::new();
    // What ArceOS's register(0x24) does: x2apic's enable_irq(0x24)
    // reads and rewrites register 0x10 + 2 * 0x24.
    let bogus = lo(VECTOR as u32);
    assert_eq!(bogus, 0x58);
    assert_eq!(get(&mut a, bogus), 0);
    set(&mut a, bogus, 0);
    for index in [0x03, 0x0f, 0x40, 0xff] {
        set(&mut a, index, 0xffff_ffff);
        assert_eq!(get(&mut a, index), 0, "register {index:#x}");
    }
    assert!((0..PINS).all(|p| a.entry(p) == rte::MASKED));
}

#[test]
fn the_window_refuses_other_offsets_and_widths() {
    let mut a = IoApic::new();
    assert_eq!(
        a.read(reg::IOWIN, Width::Byte),
        Err(DeviceError::BadWidth {
            offset: 0x10,
            width: Width::Byte
        })
    );
    assert_eq!(
        a.write(reg::IOREGSEL, Width::Double, 0),
        Err(DeviceError::BadWidth {
            offset: 0,
            width: Width::Double
        })
    );
    assert_eq!(
        a.write(reg::EOI, Width::Half, 0),
        Err(DeviceError::BadWidth {
            offset: 0x40,
            width: Width::Half
        })
    );
    for offset in [0x04, 0x20, 0x30, 0x50, 0xffc] {
        assert_eq!(
            a.read(offset, Width::Word),
            Err(DeviceError::BadOffset { offset })
        );
        assert_eq!(
            a.write(offset, Width::Word, 0),
            Err(DeviceError::BadOffset { offset })
        );
    }
    // EOI is write-only: it reads 0.
    assert_eq!(a.read(reg::EOI, Width::Word), Ok(0));
}

#[test]
fn an_edge_is_sent_once_and_lost_while_masked() {
    let mut a = IoApic::new();
    program(&mut a, COM1_PIN, VECTOR | rte::MASKED);
    a.set_irq_source(COM1_PIN, true);
    assert_eq!(a.take_message(), None, "masked: the edge is lost");
    // Unmasking while the pin is high is no edge.
    program(&mut a, COM1_PIN, VECTOR);
    assert_eq!(a.take_message(), None);
    a.set_irq_source(COM1_PIN, true);
    assert_eq!(a.take_message(), None, "no change, no edge");
    a.set_irq_source(COM1_PIN, false);
    assert_eq!(
        a.take_message(),
        None,
        "the falling edge of an active-high pin"
    );
    a.set_irq_source(COM1_PIN, true);
    assert_eq!(a.take_message(), Some(fixed(0x24, false)));
    assert_eq!(a.take_message(), None);
    // Edge-triggered entries never set remote IRR.
    assert_eq!(a.entry(COM1_PIN as usize) & rte::REMOTE_IRR, 0);
}

#[test]
fn edges_before_the_message_is_taken_merge() {
    let mut a = IoApic::new();
    program(&mut a, COM1_PIN, VECTOR);
    for _ in 0..3 {
        a.set_irq_source(COM1_PIN, true);
        a.set_irq_source(COM1_PIN, false);
    }
    assert_eq!(a.take_message(), Some(fixed(0x24, false)));
    assert_eq!(a.take_message(), None);
}

#[test]
fn a_level_pin_waits_for_the_eoi_and_comes_again_while_asserted() {
    let mut a = IoApic::new();
    program(&mut a, COM1_PIN, VECTOR | rte::LEVEL);
    a.set_irq_source(COM1_PIN, true);
    assert_eq!(a.take_message(), Some(fixed(0x24, true)));
    assert_ne!(a.entry(COM1_PIN as usize) & rte::REMOTE_IRR, 0);
    assert_eq!(get(&mut a, lo(COM1_PIN)) & (1 << 14), 1 << 14);
    // In service: staying (or going) high sends nothing.
    a.set_irq_source(COM1_PIN, false);
    a.set_irq_source(COM1_PIN, true);
    assert_eq!(a.take_message(), None);
    // An EOI for another vector changes nothing.
    a.end_of_interrupt(0x25);
    assert_eq!(a.take_message(), None);
    // The EOI for 0x24 with the pin still high: sent again.
    a.end_of_interrupt(0x24);
    assert_eq!(a.take_message(), Some(fixed(0x24, true)));
    // The device is serviced (pin low) before the EOI: it stays quiet.
    a.set_irq_source(COM1_PIN, false);
    a.end_of_interrupt(0x24);
    assert_eq!(a.take_message(), None);
    assert_eq!(a.entry(COM1_PIN as usize) & rte::REMOTE_IRR, 0);
}

#[test]
fn the_eoi_register_ends_level_interrupts_too() {
    let mut a = IoApic::new();
    program(&mut a, 9, 0x39 | rte::LEVEL);
    a.set_irq_source(9, true);
    assert_eq!(a.take_message().map(|m| m.vector), Some(0x39));
    a.write(reg::EOI, Width::Word, 0x39).unwrap();
    assert_eq!(a.take_message().map(|m| m.vector), Some(0x39));
}

#[test]
fn unmasking_or_switching_to_level_sends_an_asserted_level_pin() {
    let mut a = IoApic::new();
    a.set_irq_source(COM1_PIN, true);
    program(&mut a, COM1_PIN, VECTOR | rte::LEVEL | rte::MASKED);
    assert_eq!(a.take_message(), None, "masked");
    program(&mut a, COM1_PIN, VECTOR | rte::LEVEL);
    assert_eq!(a.take_message(), Some(fixed(0x24, true)));
    // Level to edge clears remote IRR (how an OS without the EOI register
    // ends a level interrupt); back to level with the pin high: sent.
    program(&mut a, COM1_PIN, VECTOR | rte::MASKED);
    assert_eq!(a.entry(COM1_PIN as usize) & rte::REMOTE_IRR, 0);
    program(&mut a, COM1_PIN, VECTOR | rte::LEVEL);
    assert_eq!(a.take_message(), Some(fixed(0x24, true)));
}

#[test]
fn polarity_decides_which_level_asserts() {
    let mut a = IoApic::new();
    // Edge, active low: the falling edge sends.
    program(&mut a, 1, 0x31 | rte::ACTIVE_LOW);
    a.set_irq_source(1, true);
    assert_eq!(a.take_message(), None);
    a.set_irq_source(1, false);
    assert_eq!(a.take_message().map(|m| m.vector), Some(0x31));
    // Level, active low: a low pin is asserted as soon as it is unmasked.
    program(&mut a, 2, 0x32 | rte::ACTIVE_LOW | rte::LEVEL);
    assert_eq!(a.take_message().map(|m| m.vector), Some(0x32));
}

#[test]
fn messages_carry_the_entry_and_come_lowest_pin_first() {
    let mut a = IoApic::new();
    // Pin 7: lowest priority, logical destination 0x03; pin 5: fixed to
    // APIC 0xff.
    set(&mut a, lo(7) + 1, 0x0300_0000);
    set(&mut a, lo(7), 0x41 | 1 << 8 | 1 << 11);
    set(&mut a, lo(5) + 1, 0xff00_0000);
    set(&mut a, lo(5), 0x40);
    a.set_irq_source(7, true);
    a.set_irq_source(5, true);
    assert_eq!(
        a.take_message(),
        Some(InterruptMessage {
            vector: 0x40,
            delivery: DeliveryMode::Fixed,
            logical: false,
            destination: 0xff,
            level: false
        })
    );
    assert_eq!(
        a.take_message(),
        Some(InterruptMessage {
            vector: 0x41,
            delivery: DeliveryMode::LowestPriority,
            logical: true,
            destination: 0x03,
            level: false
        })
    );
    assert_eq!(a.take_message(), None);
}

#[test]
fn pins_past_the_last_do_not_exist() {
    let mut a = IoApic::new();
    for pin in 0..PINS as u32 {
        program(&mut a, pin, 0x20 + u64::from(pin));
    }
    a.set_irq_source(24, true);
    a.set_irq_source(u32::MAX, true);
    assert_eq!(a.take_message(), None);
    a.set_irq_source(23, true);
    assert_eq!(a.take_message().map(|m| m.vector), Some(0x37));
}
