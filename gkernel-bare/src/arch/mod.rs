//! The machine-specific half of gkernel-bare: entry, the hypercall
//! instruction, counter, crash; and the SMCCC calls made through it, which
//! are the same on every machine.

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use x86_64::*;

use guestaspace_core::arch::smccc;

pub fn console_write(bytes: &[u8]) {
    console_write_raw(bytes.as_ptr() as u64, bytes.len() as u64);
}

/// The console-write call for `len` bytes at guest-physical `gpa`, which
/// need not be guest RAM; returns what the hypervisor answered.
pub fn console_write_raw(gpa: u64, len: u64) -> u64 {
    hypercall(smccc::GA_CONSOLE_WRITE, gpa, len)
}

/// A guest-physical address outside guest RAM (and every other region)
/// (RAM is at 0 and at most 512 MiB).
pub const OUTSIDE_RAM: u64 = 0x3000_0000;

pub fn null_hypercall() {
    hypercall(smccc::GA_NULL, 0, 0);
}

/// PSCI SYSTEM_OFF; if the hypervisor returns, crash so the run fails.
pub fn power_off() -> ! {
    hypercall(smccc::PSCI_SYSTEM_OFF, 0, 0);
    crash()
}
