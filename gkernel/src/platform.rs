//! What gkernel knows of the machine the hypervisor gives it, per
//! architecture: where pflash is, an address the hypervisor does not
//! declare, and how to ask for power-off.

#[cfg(target_arch = "riscv64")]
mod imp {
    /// QEMU virt pflash1.
    pub const PFLASH: usize = 0x2200_0000;
    /// PCI ECAM on the real machine; not part of the guest's layout.
    pub const UNDECLARED: usize = 0x3000_0000;

    /// SBI SRST shutdown; `clean == false` gives the reason "system failure".
    pub fn power_off(clean: bool) -> ! {
        if clean {
            sbi_rt::system_reset(sbi_rt::Shutdown, sbi_rt::NoReason);
        } else {
            sbi_rt::system_reset(sbi_rt::Shutdown, sbi_rt::SystemFailure);
        }
        loop {
            core::hint::spin_loop();
        }
    }
}

pub use imp::*;

/// Replaces ArceOS's own power-off, which it reaches only by panicking, so
/// that a guest panic is reported to the hypervisor as a failure.
#[unsafe(no_mangle)]
#[allow(non_snake_case)]
extern "Rust" fn __wrap___PowerIf_system_off() -> ! {
    power_off(false)
}
