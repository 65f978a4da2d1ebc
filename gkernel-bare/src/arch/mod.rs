//! The machine-specific half of gkernel-bare: entry, the hypercall
//! instruction, counter, crash; and the SMCCC calls made through it, which
//! are the same on every machine.

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use x86_64::*;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "aarch64")]
pub use aarch64::*;

use guestaspace_core::arch::smccc;

pub fn console_write(bytes: &[u8]) {
    hypercall(
        smccc::GA_CONSOLE_WRITE,
        bytes.as_ptr() as u64,
        bytes.len() as u64,
    );
}

pub fn null_hypercall() {
    hypercall(smccc::GA_NULL, 0, 0);
}

/// PSCI SYSTEM_OFF; if the hypervisor returns, crash so the run fails.
pub fn power_off() -> ! {
    hypercall(smccc::PSCI_SYSTEM_OFF, 0, 0);
    crash()
}
