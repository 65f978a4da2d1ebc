//! The architecture-neutral half of arceos-guestaspace.
//!
//! Everything here is plain `no_std` Rust that also builds and unit-tests on
//! the host (`cargo test`): what a VM exit means ([`exit`]), the run loop
//! that dispatches exits ([`runloop`]), which guest-physical addresses the
//! guest owns and how each is backed ([`layout`]), the stage-2 page tables
//! ([`stage2`]), the per-architecture decoders of traps and calling
//! conventions ([`arch`]), guest-image checks ([`image`]), how a fault on
//! guest memory is served ([`fault`]), the device-tree nodes every
//! architecture's guest tree shares ([`dtb`]), where a Linux boot puts its
//! DTB and initrd ([`boot_layout`]), reading guest memory from outside
//! ([`guest_memory`]), the exit/page counters printed at shutdown
//! ([`stats`]) and the VM's TOML config file (`vmconfig`, feature
//! `vmconfig`).
//!
//! The hypervisor crate supplies the rest per architecture: a [`runloop::Vcpu`]
//! that enters the guest and returns an [`exit::Exit`], and a
//! [`stage2::Host`] that hands out host frames and flushes the TLB.
#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

pub mod addr;
pub mod arch;
pub mod boot_layout;
pub mod devices;
pub mod dtb;
pub mod exit;
pub mod fault;
pub mod guest_memory;
pub mod image;
pub mod layout;
#[cfg(feature = "alloc")]
pub mod machine;
#[cfg(feature = "alloc")]
pub mod runloop;
pub mod scenario;
pub mod stage2;
pub mod stats;
#[cfg(feature = "alloc")]
pub mod vcpu;
#[cfg(feature = "alloc")]
pub mod vm;
#[cfg(feature = "vmconfig")]
pub mod vmconfig;

// The property tests cover the device models (`alloc`) and the config
// file (`vmconfig`, which implies `alloc`).
#[cfg(all(test, feature = "vmconfig"))]
mod proptests;

/// Size of the pages the hypervisor maps for the guest.
pub const PAGE_SIZE: u64 = 4096;

/// Size of the stage-2 blocks guest RAM is mapped with where a whole,
/// aligned block fits its region: one descriptor a level above the 4 KiB
/// pages (512 of them) in all three stage-2 formats.
pub const BLOCK_SIZE: u64 = 2 << 20;

/// Rounds `addr` down to the start of its 4 KiB page.
pub const fn page_base(addr: u64) -> u64 {
    addr & !(PAGE_SIZE - 1)
}
