//! COM1 on the PC (a 16550 at ports 0x3F8..0x3FF), read through its
//! receive interrupt: ISA IRQ 4, which is I/O APIC pin 4, routed to vector
//! 0x24 and taken through ArceOS's own IRQ path. Under the hypervisor COM1
//! and the I/O APIC are emulated, and the vector arrives through the
//! emulated local APIC as a virtual interrupt (V_IRQ).
//!
//! ArceOS's PC platform (`axplat-x86-pc`) has no call that routes a pin to
//! a vector: it never programs the redirection table, its `set_enable(n)`
//! unmasks entry *n* (the `x2apic` crate's `enable_irq` takes a pin) and
//! its `register(vector, handler)` calls `set_enable(vector)`. So this
//! kernel writes entry 4 itself with the `x2apic` crate ArceOS uses
//! (vector 0x24, fixed, physical destination APIC 0, edge-triggered,
//! active high, masked), registers its handler for vector 0x24 with
//! `axhal::irq::register` (whose `set_enable(0x24)` reaches I/O APIC
//! register 0x58, which does not exist and ignores it), and unmasks pin 4
//! with `axhal::irq::set_enable(4, true)`.

use crate::rx_ring::RX;
use axhal::mem::{PhysAddr, phys_to_virt};
use x2apic::ioapic::{IoApic, IrqFlags, IrqMode, RedirectionTableEntry};

/// COM1's data (RBR/THR), interrupt enable, line control and line status
/// ports.
const DATA: u16 = 0x3f8;
const IER: u16 = 0x3f9;
const LCR: u16 = 0x3fb;
const LSR: u16 = 0x3fd;
/// LSR bit 0: a byte is waiting.
const LSR_DATA_READY: u8 = 1 << 0;
/// IER bit 0: interrupt on received data (and character timeout).
const IER_RX: u8 = 1 << 0;
/// The I/O APIC, COM1's pin on it, and the vector it is routed to (0x20
/// plus the ISA IRQ, the first vector after the exceptions).
const IO_APIC: usize = 0xfec0_0000;
const COM1_PIN: u8 = 4;
const COM1_VECTOR: u8 = 0x24;

fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: a port read of the (emulated) UART.
    unsafe { core::arch::asm!("in al, dx", out("al") v, in("dx") port, options(nostack)) };
    v
}

fn outb(port: u16, v: u8) {
    // SAFETY: a port write to the (emulated) UART's registers.
    unsafe { core::arch::asm!("out dx, al", in("dx") port, in("al") v, options(nostack)) };
}

/// Reads the line status register once: one port-I/O exit (the bench's
/// device read).
pub fn line_status() -> u8 {
    inb(LSR)
}

/// COM1's interrupt handler: counts the interrupt and drains.
fn on_receive() {
    RX.count_interrupt();
    drain();
}

/// Moves every byte COM1 holds into the ring (the pin is edge-triggered:
/// a byte left behind would raise no new edge), with interrupts off.
fn drain() {
    while inb(LSR) & LSR_DATA_READY != 0 {
        RX.push(inb(DATA));
    }
}

/// Routes I/O APIC pin 4 to [`COM1_VECTOR`], masked.
fn route_com1() {
    // SAFETY: the I/O APIC page is in this kernel's MMIO ranges, so it is
    // mapped at its linear-map address; nothing else programs it.
    let mut io_apic =
        unsafe { IoApic::new(phys_to_virt(PhysAddr::from(IO_APIC)).as_usize() as u64) };
    let mut entry = RedirectionTableEntry::default();
    entry.set_vector(COM1_VECTOR);
    entry.set_mode(IrqMode::Fixed);
    entry.set_flags(IrqFlags::MASKED);
    entry.set_dest(0);
    // SAFETY: as above; entry 4 is COM1's and no one else's.
    unsafe { io_apic.set_table_entry(COM1_PIN, entry) };
}

/// What the second number [`read_line`] returns counts.
pub const COUNTED: &str = "receive interrupts";

/// Reads bytes until a line end, sleeping between receive interrupts;
/// returns the line's length in `buf` and how many interrupts it took.
pub fn read_line(buf: &mut [u8]) -> (usize, usize) {
    let first = RX.interrupts();
    route_com1();
    assert!(axhal::irq::register(usize::from(COM1_VECTOR), on_receive));
    outb(IER, IER_RX);
    axhal::irq::set_enable(usize::from(COM1_PIN), true);
    // Bytes typed before the pin was unmasked raised their edge while it
    // was masked, and that edge is lost: take them now, as the handler
    // would (with interrupts off, the handler's own `RING` producer).
    axhal::asm::disable_irqs();
    drain();
    axhal::asm::enable_irqs();
    let len = RX.read_line(buf);
    axhal::irq::set_enable(usize::from(COM1_PIN), false);
    (len, RX.interrupts() - first)
}

/// Sets the divisor-latch access bit (LCR bit 7): this kernel's console
/// output goes nowhere from now on.
pub fn set_dlab() {
    outb(LCR, 0x80);
}
