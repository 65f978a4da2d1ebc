//! What every guest device tree (DTB) of this hypervisor shares, whatever
//! the architecture: finding the devices in the [`GuestLayout`], the
//! reasons a tree cannot be written ([`TreeError`]), the nodes that look
//! the same on every machine (in `nodes`), and where the blob goes in
//! guest RAM ([`dtb_address`]).
//!
//! The architecture's own module writes the rest of its tree with these:
//! [`crate::arch::riscv64::dtb`] and [`crate::arch::aarch64::dtb`]. Both
//! follow the shape of the tree QEMU's `virt` machine generates for that
//! architecture, with only the devices the hypervisor gives the guest.
//!
//! The shared nodes:
//!
//! - `/memory@<ram>`: `device_type = "memory"` and `reg` from the layout's
//!   `ram` region (Devicetree Specification v0.4 §3.4), with the root's
//!   two address and two size cells every tree here has.
//! - `/flash@<pflash>`, when the layout has a `pflash` region. A read-only
//!   pass-through (the shipped layouts) is described as `mtd-rom`, a plain
//!   memory-mapped ROM read without commands (Linux binding
//!   `mtd/mtd-physmap.yaml`), not as `cfi-flash`: U-Boot's and Linux's CFI
//!   drivers probe a `cfi-flash` chip by writing a query command, and a
//!   guest store to a read-only region is a forbidden access that stops
//!   the VM. U-Boot has no driver for `mtd-rom` and leaves it alone. Only a
//!   writable region is `cfi-flash`. Both carry `bank-width = 4`
//!   ([`FLASH_BANK_WIDTH`]), as QEMU's flash on both machines has.
//! - `/aliases/serial0` and `/chosen/stdout-path`, both naming the
//!   console's node; `/chosen/bootargs` and the 64-bit
//!   `/chosen/linux,initrd-start` and `linux,initrd-end` (one past the
//!   last byte) when the caller has a command line or an initrd (the
//!   `/chosen` schema of dt-schema, `chosen.yaml`).
//!
//! Nothing is reserved (no `/memreserve/`, no `/reserved-memory`): the
//! hypervisor is the guest's firmware and no part of it lives in guest
//! RAM. Linux reserves the blob and the initrd itself.
#![cfg(feature = "alloc")]

pub(crate) mod nodes;
#[cfg(test)]
pub(crate) mod reader;

use crate::addr::GuestPhysAddr;
use crate::boot_layout::{GpaRange, dtb_slot};
use crate::layout::{GuestLayout, Region};
use crate::machine::{Board, DeviceKind};

/// The flash `bank-width`: QEMU `virt`'s pflash is 32-bit-wide banks, on
/// riscv64 and aarch64 alike.
pub const FLASH_BANK_WIDTH: u32 = 4;

/// Why no tree can be written, for a reason every architecture shares.
#[derive(Debug, PartialEq, Eq)]
pub enum TreeError {
    /// The tree cannot describe this many CPUs: 1 to
    /// [`CpuSet::MAX_CPUS`](crate::exit::CpuSet::MAX_CPUS) (the GICv2's
    /// eight CPU interfaces, the PLIC model's eight harts).
    BadCpuCount {
        /// The count asked for.
        cpus: usize,
    },
    /// The machine has no such device (or no RAM).
    MissingRegion {
        /// What is missing (`"ram"`, `"uart"`...).
        name: &'static str,
    },
    /// A region is smaller than the registers of the device it holds.
    RegionTooSmall {
        /// The region's name.
        name: &'static str,
        /// Its size in bytes.
        size: u64,
        /// The bytes the device's registers need.
        need: u64,
    },
    /// The initrd does not lie inside guest RAM.
    InitrdNotInRam {
        /// Its first byte.
        start: GuestPhysAddr,
        /// Its size in bytes.
        size: u64,
    },
    /// The blob is larger than guest RAM.
    TooLarge {
        /// The blob's size in bytes.
        len: u64,
        /// Guest RAM's size in bytes.
        ram: u64,
    },
    /// The writer refused something (a string with a NUL byte...).
    Writer(vm_fdt::Error),
}

impl From<vm_fdt::Error> for TreeError {
    fn from(e: vm_fdt::Error) -> Self {
        TreeError::Writer(e)
    }
}

impl core::fmt::Display for TreeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TreeError::BadCpuCount { cpus } => write!(
                f,
                "a device tree for {cpus} CPUs: 1 to {} are supported",
                crate::exit::CpuSet::MAX_CPUS
            ),
            TreeError::MissingRegion { name } => {
                write!(f, "the machine has no {name} for the device tree")
            }
            TreeError::RegionTooSmall { name, size, need } => write!(
                f,
                "the guest layout's `{name}` region ({size:#x} bytes) is smaller than the {need:#x} bytes of its device's registers"
            ),
            TreeError::InitrdNotInRam { start, size } => write!(
                f,
                "initrd at {start:#x} ({size:#x} bytes) is not inside guest RAM"
            ),
            TreeError::TooLarge { len, ram } => write!(
                f,
                "device tree of {len} bytes does not fit in {ram:#x} bytes of guest RAM"
            ),
            TreeError::Writer(e) => write!(f, "device tree writer: {e}"),
        }
    }
}

/// The board's device that `is` picks, with exactly the range the board
/// states for it, if the VM's `layout` declares it (its region there says
/// how the guest may access it); `what` names it in the error.
pub fn device(
    board: &Board,
    layout: &GuestLayout<'_>,
    what: &'static str,
    is: fn(&DeviceKind) -> bool,
) -> Result<Region, TreeError> {
    let missing = || TreeError::MissingRegion { name: what };
    let spec = board.find(is).ok_or_else(missing)?;
    let declared = layout.region_of(spec.gpa()).ok_or_else(missing)?;
    Ok(Region {
        gpa: spec.gpa(),
        size: spec.size.min(declared.end() - spec.gpa()),
        ..*declared
    })
}

/// [`device`], if its range holds at least `need` bytes.
pub fn device_of_size(
    board: &Board,
    layout: &GuestLayout<'_>,
    what: &'static str,
    is: fn(&DeviceKind) -> bool,
    need: u64,
) -> Result<Region, TreeError> {
    let r = device(board, layout, what, is)?;
    if r.size < need {
        return Err(TreeError::RegionTooSmall {
            name: what,
            size: r.size,
            need,
        });
    }
    Ok(r)
}

/// Checks that a tree can describe `cpus` CPUs (see
/// [`TreeError::BadCpuCount`]).
pub fn check_cpus(cpus: usize) -> Result<(), TreeError> {
    if (1..=crate::exit::CpuSet::MAX_CPUS as usize).contains(&cpus) {
        Ok(())
    } else {
        Err(TreeError::BadCpuCount { cpus })
    }
}

/// The layout's RAM.
pub fn ram<'l>(layout: &GuestLayout<'l>) -> Result<&'l Region, TreeError> {
    layout.ram().ok_or(TreeError::MissingRegion { name: "ram" })
}

/// Checks that an initrd of `size` bytes at `start` lies inside `ram` (an
/// initrd filling RAM to its last byte is fine).
pub fn check_initrd(ram: &Region, initrd: Option<(GuestPhysAddr, u64)>) -> Result<(), TreeError> {
    let Some((start, size)) = initrd else {
        return Ok(());
    };
    match GpaRange::new(start, size) {
        Some(r) if GpaRange::of(ram).contains(&r) => Ok(()),
        _ => Err(TreeError::InitrdNotInRam { start, size }),
    }
}

/// Where the hypervisor should copy a blob of `blob_len` bytes when no
/// initrd shares RAM's top with it: [`dtb_slot`] over the whole of the
/// layout's `ram` region, the highest 2 MiB boundary that leaves room
/// (QEMU `virt`'s choice: far from an image loaded low, and an address
/// U-Boot's relocation copes with, since it copies the blob away before
/// moving itself to the top of RAM), else the highest 8-byte boundary.
/// The caller checks it does not overlap the image; to place an initrd as
/// well, use [`crate::boot_layout::place_initrd_and_dtb`].
pub fn dtb_address(layout: &GuestLayout<'_>, blob_len: u64) -> Result<GuestPhysAddr, TreeError> {
    let ram = ram(layout)?;
    dtb_slot(GpaRange::of(ram), blob_len).ok_or(TreeError::TooLarge {
        len: blob_len,
        ram: ram.size,
    })
}
