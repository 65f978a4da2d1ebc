//! The part of booting a Linux `Image` that arm64 and riscv64 share: given
//! where the architecture's rules put the kernel, build the device tree
//! with the initrd's address in `/chosen`, and hand both to the loader.
//!
//! The tree's length does not depend on the initrd's address (its
//! `linux,initrd-start/end` are fixed-size), so it is built once with any
//! address inside RAM to measure it, the plan is made with that length,
//! and it is built again with the real address.
#![cfg_attr(target_arch = "x86_64", allow(dead_code))] // x86_64 boots no Linux yet

use crate::arch::BootPlan;
use crate::error::HvError;
use alloc::string::String;
use alloc::vec::Vec;
use alloc::{format, vec};
use guestaspace_core::addr::GuestPhysAddr;
use guestaspace_core::boot_layout::LinuxBootPlan;
use guestaspace_core::layout::Region;

/// The boot plan of a Linux kernel `image` named `kind` ("arm64",
/// "RISC-V"), with `initrd` if there is one: `plan` places the kernel,
/// the tree and the initrd from their lengths (`initrd_len`, `dtb_len`),
/// `tree` builds the device tree naming the initrd's address and length.
/// The vCPU starts at the kernel's first byte with the tree's address.
pub fn plan<P, T>(
    kind: &str,
    image: &[u8],
    ram: &Region,
    initrd: Option<Vec<u8>>,
    plan: P,
    tree: T,
) -> Result<BootPlan<GuestPhysAddr>, HvError>
where
    P: FnOnce(Option<u64>, u64) -> Result<LinuxBootPlan, String>,
    T: Fn(Option<(GuestPhysAddr, u64)>) -> Result<Vec<u8>, HvError>,
{
    let initrd_len = initrd.as_ref().map(|i| i.len() as u64);
    let measured = tree(initrd_len.map(|len| (ram.gpa, len)))?.len() as u64;
    let placed = plan(initrd_len, measured)
        .map_err(|e| HvError::Boot(format!("{} ({e})", crate::GUEST_PATH)))?;
    let initrd_at = placed.blobs.initrd.map(|r| r.start);
    let blob = tree(initrd_at.zip(initrd_len))?;
    let dtb_at = placed.blobs.dtb.start;
    let mut extra = vec![(dtb_at, blob)];
    if let (Some(at), Some(initrd)) = (initrd_at, initrd) {
        extra.push((at, initrd));
    }
    println!(
        "Linux {kind} Image: kernel at {:#x} (footprint {}), device tree at {:#x}{}",
        placed.kernel.load,
        placed.kernel.footprint,
        dtb_at,
        match placed.blobs.initrd {
            Some(r) => format!(", initrd at {r}"),
            None => String::new(),
        }
    );
    Ok(BootPlan {
        load: placed.kernel.load,
        bytes: 0..image.len(),
        entry: placed.kernel.load,
        extra,
        start: dtb_at,
    })
}
