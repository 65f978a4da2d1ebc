//! Powering off QEMU q35 with an exit status. Success uses ArceOS's own
//! power-off (ACPI, QEMU exits 0); failure writes to the `isa-debug-exit`
//! device at port 0xf4, which `cargo xtask` attaches, and QEMU exits with
//! `(value << 1) | 1`, i.e. 1.

use crate::arch::{Outcome, platform_power_off};
use x86_64::instructions::port::Port;

const DEBUG_EXIT_PORT: u16 = 0xf4;

pub fn power_off(outcome: Outcome) -> ! {
    match outcome {
        Outcome::Success => platform_power_off(),
        Outcome::Failure => {
            // SAFETY: port 0xf4 is the debug-exit device or nothing.
            unsafe { Port::<u32>::new(DEBUG_EXIT_PORT).write(0) };
            // Without the device, hang rather than report success.
            loop {
                x86_64::instructions::interrupts::disable();
                x86_64::instructions::hlt();
            }
        }
    }
}
