//! Reading a line from the serial console the way a driver does on QEMU
//! `virt`: the PL011's receive and receive-timeout interrupts (UARTIMSC
//! RXIM, RTIM), SPI 1 (INTID 33) on the GIC, taken through ArceOS's own
//! IRQ path (`axhal::irq::register`). Under the hypervisor the PL011 and
//! the GIC are emulated, and the interrupt arrives as HCR_EL2.VI.

use crate::rx_ring::RX;
use axhal::mem::{PhysAddr, phys_to_virt};

/// QEMU virt's PL011 and its interrupt.
const UART: usize = 0x0900_0000;
const UART_INTID: usize = 33;
/// PL011 registers (ARM DDI 0183): data, flags, interrupt mask.
const DR: usize = 0x000;
const FR: usize = 0x018;
const IMSC: usize = 0x038;
/// FR.RXFE: the receive FIFO is empty.
const FR_RXFE: u32 = 1 << 4;
/// IMSC.RXIM and IMSC.RTIM: receive and receive-timeout interrupts.
const IMSC_RX: u32 = 1 << 4 | 1 << 6;

fn reg(offset: usize) -> *mut u32 {
    phys_to_virt(PhysAddr::from(UART + offset))
        .as_mut_ptr()
        .cast()
}

/// Reads the flag register once: one emulated device access (the bench's
/// MMIO exit).
pub fn line_status() -> u8 {
    // SAFETY: the PL011 is in this kernel's MMIO ranges; reading FR has no
    // side effects.
    unsafe { reg(FR).read_volatile() as u8 }
}

/// The PL011's interrupt handler: drains the receive FIFO into the ring.
fn on_receive() {
    RX.count_interrupt();
    // SAFETY: as in `line_status`; reading DR pops the receive FIFO.
    while unsafe { reg(FR).read_volatile() } & FR_RXFE == 0 {
        RX.push(unsafe { reg(DR).read_volatile() } as u8);
    }
}

/// What the second number [`read_line`] returns counts.
pub const COUNTED: &str = "receive interrupts";

/// Reads bytes until a line end, sleeping between receive interrupts;
/// returns the line's length in `buf` and how many interrupts it took.
pub fn read_line(buf: &mut [u8]) -> (usize, usize) {
    let first = RX.interrupts();
    assert!(axhal::irq::register(UART_INTID, on_receive));
    // SAFETY: as in `line_status`.
    unsafe { reg(IMSC).write_volatile(IMSC_RX) };
    let len = RX.read_line(buf);
    // SAFETY: as above: receive interrupts off again.
    unsafe { reg(IMSC).write_volatile(0) };
    (len, RX.interrupts() - first)
}
