//! What gkernel knows of the machine the hypervisor gives it, one folder
//! per architecture: where pflash is, an address the hypervisor does not
//! declare, how to check the timer interrupt, the UART's input, the
//! console-write call, and how to ask for power-off.

#[cfg(target_arch = "riscv64")]
mod riscv64;
#[cfg(target_arch = "riscv64")]
pub use riscv64::*;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "aarch64")]
pub use aarch64::*;

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use x86_64::*;

/// Replaces ArceOS's own power-off, which it reaches only by panicking, so
/// that a guest panic is reported to the hypervisor as a failure.
#[unsafe(no_mangle)]
#[allow(non_snake_case)]
extern "Rust" fn __wrap___PowerIf_system_off() -> ! {
    power_off(false)
}
