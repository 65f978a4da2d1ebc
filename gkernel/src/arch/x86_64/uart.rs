//! COM1 on the PC (a 16550 at ports 0x3F8..0x3FF), read by polling its
//! line status register: the hypervisor emulates no I/O APIC yet, so COM1's
//! interrupt reaches nobody.

/// COM1's data (RBR/THR), line control and line status ports.
const DATA: u16 = 0x3f8;
const LCR: u16 = 0x3fb;
const LSR: u16 = 0x3fd;
/// LSR bit 0: a byte is waiting.
const LSR_DATA_READY: u8 = 1 << 0;

fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: a port read of the (emulated) UART.
    unsafe { core::arch::asm!("in al, dx", out("al") v, in("dx") port, options(nostack)) };
    v
}

/// Reads the line status register once: one port-I/O exit (the bench's
/// device read).
pub fn line_status() -> u8 {
    inb(LSR)
}

/// What the second number [`read_line`] returns counts.
pub const COUNTED: &str = "status reads, COM1 polled";

/// Reads bytes until a line end; returns the line's length in `buf` and
/// how many status reads it took.
pub fn read_line(buf: &mut [u8]) -> (usize, usize) {
    let (mut len, mut polls) = (0, 0);
    loop {
        polls += 1;
        if inb(LSR) & LSR_DATA_READY == 0 {
            core::hint::spin_loop();
            continue;
        }
        match inb(DATA) {
            b'\n' | b'\r' => return (len, polls),
            byte if len < buf.len() => {
                buf[len] = byte;
                len += 1;
            }
            _ => {}
        }
    }
}

/// Sets the divisor-latch access bit (LCR bit 7): this kernel's console
/// output goes nowhere from now on.
pub fn set_dlab() {
    // SAFETY: a port write to the (emulated) UART's line control.
    unsafe { core::arch::asm!("out dx, al", in("dx") LCR, in("al") 0x80u8, options(nostack)) };
}
