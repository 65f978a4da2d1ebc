//! The receive ring the interrupt-driven serial readers share (aarch64's
//! PL011, x86_64's COM1): the UART's interrupt handler is the one producer,
//! [`RxRing::read_line`] the one consumer. It also counts the handler's
//! interrupts, which the echo scenario reports.
#![cfg_attr(target_arch = "riscv64", allow(dead_code))] // riscv64 reads its own way

use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// Bytes received and not yet read, and the receive interrupts taken.
pub struct RxRing {
    bytes: [AtomicU8; 64],
    /// Bytes written into / read from `bytes` since boot.
    written: AtomicUsize,
    read: AtomicUsize,
    interrupts: AtomicUsize,
}

/// The console's ring.
pub static RX: RxRing = RxRing {
    bytes: [const { AtomicU8::new(0) }; 64],
    written: AtomicUsize::new(0),
    read: AtomicUsize::new(0),
    interrupts: AtomicUsize::new(0),
};

impl RxRing {
    /// The handler took an interrupt.
    pub fn count_interrupt(&self) {
        self.interrupts.fetch_add(1, Ordering::Relaxed);
    }

    /// Receive interrupts taken since boot.
    pub fn interrupts(&self) -> usize {
        self.interrupts.load(Ordering::Relaxed)
    }

    /// Called by the handler (the producer): keeps `byte`, or drops it
    /// when the ring is full.
    pub fn push(&self, byte: u8) {
        let at = self.written.load(Ordering::Relaxed);
        if at - self.read.load(Ordering::Acquire) < self.bytes.len() {
            self.bytes[at % self.bytes.len()].store(byte, Ordering::Relaxed);
            self.written.store(at + 1, Ordering::Release);
        }
    }

    /// Reads bytes until a line end, sleeping for interrupts while the ring
    /// is empty; returns the line's length in `buf` (bytes beyond it are
    /// dropped).
    pub fn read_line(&self, buf: &mut [u8]) -> usize {
        let mut len = 0;
        loop {
            while self.read.load(Ordering::Relaxed) == self.written.load(Ordering::Acquire) {
                axhal::asm::wait_for_irqs();
            }
            while self.read.load(Ordering::Relaxed) != self.written.load(Ordering::Acquire) {
                let at = self.read.load(Ordering::Relaxed);
                let byte = self.bytes[at % self.bytes.len()].load(Ordering::Relaxed);
                self.read.store(at + 1, Ordering::Release);
                if byte == b'\n' || byte == b'\r' {
                    return len;
                }
                if len < buf.len() {
                    buf[len] = byte;
                    len += 1;
                }
            }
        }
    }
}
