//! Guests that xtask builds or fetches from outside this workspace.

pub mod debian;
pub mod initramfs;
pub mod linux;
pub mod tutorial;
