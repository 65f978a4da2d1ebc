//! Reading a line from the serial console the way a driver does on QEMU
//! `virt`: the 16550's receive interrupt (IER.ERBFI), routed as source 10
//! through the PLIC's S-mode context of hart 0 (context 1), claimed and
//! completed per interrupt. Under the hypervisor both devices are
//! emulated, and the interrupt arrives as `hvip.VSEIP`.

use super::interrupts::{self, Source};
use axhal::mem::{PhysAddr, phys_to_virt};

/// QEMU virt's 16550 and its PLIC source.
const UART: usize = 0x1000_0000;
const UART_IRQ: usize = 10;
/// 16550 registers (byte offsets, reg-shift 0).
const RBR: usize = 0;
const IER: usize = 1;
const LSR: usize = 5;
const IER_ERBFI: u8 = 1 << 0;
const LSR_DR: u8 = 1 << 0;
/// PLIC registers (SiFive PLIC 1.0.0 layout) for context 1.
const PLIC: usize = 0x0c00_0000;
const CONTEXT: usize = 1;
const PRIORITY: usize = 0;
const ENABLE: usize = 0x2000 + 0x80 * CONTEXT;
const THRESHOLD: usize = 0x20_0000 + 0x1000 * CONTEXT;
const CLAIM: usize = THRESHOLD + 4;

fn reg8(addr: usize) -> *mut u8 {
    phys_to_virt(PhysAddr::from(addr)).as_mut_ptr()
}

fn reg32(addr: usize) -> *mut u32 {
    phys_to_virt(PhysAddr::from(addr)).as_mut_ptr().cast()
}

/// Reads the line status register once: one emulated device access (the
/// bench's MMIO exit).
pub fn line_status() -> u8 {
    // SAFETY: the UART is in this kernel's MMIO ranges; reading LSR has no
    // side effect besides clearing error bits, which no one here uses.
    unsafe { reg8(UART + LSR).read_volatile() }
}

/// What the second number [`read_line`] returns counts.
pub const COUNTED: &str = "receive interrupts";

/// Reads bytes until a line end, one receive interrupt at a time; returns
/// the line's length in `buf` and how many interrupts it took.
pub fn read_line(buf: &mut [u8]) -> (usize, usize) {
    // SAFETY: the UART and the PLIC are in this kernel's MMIO ranges
    // (configs/riscv64-guest.toml), mapped at these addresses.
    unsafe {
        reg32(PLIC + PRIORITY + 4 * UART_IRQ).write_volatile(1);
        reg32(PLIC + ENABLE).write_volatile(1 << UART_IRQ);
        reg32(PLIC + THRESHOLD).write_volatile(0);
        reg8(UART + IER).write_volatile(IER_ERBFI);
    }
    let (mut len, mut interrupts) = (0, 0);
    'line: loop {
        let cause = interrupts::wait_for(Source::External);
        assert_eq!(
            cause,
            interrupts::EXTERNAL,
            "expected an external interrupt"
        );
        interrupts += 1;
        // SAFETY: as above.
        let source = unsafe { reg32(PLIC + CLAIM).read_volatile() };
        let mut done = false;
        // SAFETY: as above.
        while unsafe { reg8(UART + LSR).read_volatile() } & LSR_DR != 0 {
            let byte = unsafe { reg8(UART + RBR).read_volatile() };
            if byte == b'\n' || byte == b'\r' {
                done = true;
            } else if len < buf.len() {
                buf[len] = byte;
                len += 1;
            }
        }
        // SAFETY: completing the claimed source, as the PLIC expects.
        unsafe { reg32(PLIC + CLAIM).write_volatile(source) };
        if source != UART_IRQ as u32 {
            panic!("the PLIC claimed source {source}, expected the UART's {UART_IRQ}");
        }
        if done {
            break 'line;
        }
    }
    // SAFETY: as above: receive interrupts off again.
    unsafe { reg8(UART + IER).write_volatile(0) };
    (len, interrupts)
}

/// Sets the divisor-latch access bit (LCR bit 7): from now on offsets 0
/// and 1 are the baud divisor, and this kernel's own console output goes
/// nowhere.
pub fn set_dlab() {
    const LCR: usize = 3;
    // SAFETY: as above.
    unsafe { reg8(UART + LCR).write_volatile(0x80) };
}
