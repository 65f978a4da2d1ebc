//! ArceOS platform for QEMU `virt` (aarch64) that keeps the kernel at EL2.
//!
//! The stock `axplat-aarch64-qemu-virt` drops from EL2 to EL1 at boot, so a
//! hypervisor built on it has no EL2. This crate boots the same way but
//! stays at EL2 and turns on VHE (`HCR_EL2.E2H = 1`, `TGE = 1`,
//! FEAT_VHE, present with `-cpu max`). Under VHE, the EL1 register names
//! that ArceOS and `axcpu` use (TTBR0/1, TCR, SCTLR, VBAR, ESR, ELR, SPSR,
//! the physical timer...) reach the EL2 registers, and the EL2&0
//! translation regime has the same two-range layout as EL1&0, so the
//! kernel runs unmodified at EL2; the guest's EL1 state is then reached
//! through the `*_EL12` aliases.
//!
//! Chosen over `axcpu`'s `arm-el2` feature because that feature (in this
//! release) changes which registers `axcpu` itself uses across its trap
//! and MMU code, which then also needs the matching axhal/percpu builds;
//! VHE needs no change anywhere but this boot path.
//!
//! Devices come from `axplat-aarch64-peripherals` (PL011, generic timer,
//! PSCI, and the GIC driver behind [`gic`]). PSCI goes over SMC: with EL2 present, QEMU's built-in PSCI is on
//! the SMC conduit.
#![no_std]

#[macro_use]
extern crate axplat;

mod boot;
pub mod gic;
mod init;
mod mem;
mod power;

pub mod config {
    //! Platform configuration, read from `AX_CONFIG_PATH` (the
    //! hypervisor's `configs/aarch64-hypervisor.toml`).
    axconfig_macros::include_configs!(
        path_env = "AX_CONFIG_PATH",
        fallback = "../../configs/aarch64-hypervisor.toml"
    );
    assert_str_eq!(
        PACKAGE,
        env!("CARGO_PKG_NAME"),
        "`package` in the ArceOS configuration must name this platform crate"
    );
}

axplat_aarch64_peripherals::console_if_impl!(ConsoleIfImpl);
axplat_aarch64_peripherals::time_if_impl!(TimeIfImpl);
