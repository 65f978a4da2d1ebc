//! Guests that xtask builds or fetches from outside this workspace.

pub mod debian;
pub mod initramfs;
pub mod kbuild;
pub mod linux;
pub mod linux_riscv64;
pub mod tutorial;
