//! Reading a line from the serial console the way a driver does on QEMU
//! `virt`: the PL011's receive and receive-timeout interrupts (UARTIMSC
//! RXIM, RTIM), SPI 1 (INTID 33) on the GIC, taken through ArceOS's own
//! IRQ path (`axhal::irq::register`). Under the hypervisor the PL011 and
//! the GIC are emulated, and the interrupt arrives as HCR_EL2.VI.

use axhal::mem::{PhysAddr, phys_to_virt};
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

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

/// Bytes the interrupt handler took from the UART, for `read_line`.
static RING: [AtomicU8; 64] = [const { AtomicU8::new(0) }; 64];
/// Bytes written into / read from `RING` (single producer, the handler;
/// single consumer, `read_line`).
static WRITTEN: AtomicUsize = AtomicUsize::new(0);
static READ: AtomicUsize = AtomicUsize::new(0);
/// Receive interrupts taken.
static INTERRUPTS: AtomicUsize = AtomicUsize::new(0);

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

/// The PL011's interrupt handler: drains the receive FIFO into `RING`.
fn on_receive() {
    INTERRUPTS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: as in `line_status`; reading DR pops the receive FIFO.
    while unsafe { reg(FR).read_volatile() } & FR_RXFE == 0 {
        let byte = unsafe { reg(DR).read_volatile() } as u8;
        let at = WRITTEN.load(Ordering::Relaxed);
        if at - READ.load(Ordering::Acquire) < RING.len() {
            RING[at % RING.len()].store(byte, Ordering::Relaxed);
            WRITTEN.store(at + 1, Ordering::Release);
        }
    }
}

/// What the second number [`read_line`] returns counts.
pub const COUNTED: &str = "receive interrupts";

/// Reads bytes until a line end, sleeping between receive interrupts;
/// returns the line's length in `buf` and how many interrupts it took.
pub fn read_line(buf: &mut [u8]) -> (usize, usize) {
    let first = INTERRUPTS.load(Ordering::Relaxed);
    assert!(axhal::irq::register(UART_INTID, on_receive));
    // SAFETY: as in `line_status`.
    unsafe { reg(IMSC).write_volatile(IMSC_RX) };
    let mut len = 0;
    'line: loop {
        while READ.load(Ordering::Relaxed) == WRITTEN.load(Ordering::Acquire) {
            axhal::asm::wait_for_irqs();
        }
        while READ.load(Ordering::Relaxed) != WRITTEN.load(Ordering::Acquire) {
            let at = READ.load(Ordering::Relaxed);
            let byte = RING[at % RING.len()].load(Ordering::Relaxed);
            READ.store(at + 1, Ordering::Release);
            if byte == b'\n' || byte == b'\r' {
                break 'line;
            }
            if len < buf.len() {
                buf[len] = byte;
                len += 1;
            }
        }
    }
    // SAFETY: as above: receive interrupts off again.
    unsafe { reg(IMSC).write_volatile(0) };
    (len, INTERRUPTS.load(Ordering::Relaxed) - first)
}
