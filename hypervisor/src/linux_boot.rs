//! The part of booting a guest with a device tree that arm64 and riscv64
//! share: a Linux `Image` (its header parsed) is placed by the
//! architecture's rules, with the device tree naming the initrd's address
//! in `/chosen`; any other image is placed whole at the layout's entry with
//! the tree at the top of RAM, and may not come with an initrd.
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
use guestaspace_core::layout::{GuestLayout, Region};

/// A kernel image as read: its bytes, where it was read from, and the kind
/// of Linux `Image` it would be ("arm64", "RISC-V").
#[derive(Clone, Copy)]
pub struct KernelFile<'a> {
    /// "arm64" or "RISC-V", for messages.
    pub kind: &'static str,
    /// Its path on the disk, for messages.
    pub path: &'a str,
    /// The image.
    pub image: &'a [u8],
}

/// A kernel to boot: the file and its Linux `Image` header, if it has one.
pub struct Kernel<'a, H> {
    /// The image.
    pub file: KernelFile<'a>,
    /// Its Linux `Image` header, if it is one.
    pub header: Option<H>,
}

/// The boot plan of `kernel` on `layout`: a Linux `Image` (it has a
/// header) as [`plan`] makes it, `place` putting the kernel, tree and
/// initrd in RAM; any other image whole at the layout's entry and the tree
/// at the top of RAM, an initrd being refused. `tree` builds the device
/// tree naming an initrd's address and length.
pub fn boot_plan<H, P, T>(
    kernel: Kernel<'_, H>,
    layout: &GuestLayout,
    initrd: Option<Vec<u8>>,
    place: P,
    tree: T,
) -> Result<BootPlan<GuestPhysAddr>, HvError>
where
    P: FnOnce(&H, &Region, Option<u64>, u64) -> Result<LinuxBootPlan, String>,
    T: Fn(Option<(GuestPhysAddr, u64)>) -> Result<Vec<u8>, HvError>,
{
    let Kernel { file, header } = kernel;
    let Some(header) = header else {
        if initrd.is_some() {
            return Err(HvError::Boot(format!(
                "an initrd is given, but the kernel is not a Linux {} Image",
                file.kind
            )));
        }
        return crate::arch::whole_image_with_tree(file.image, layout, tree(None)?);
    };
    let ram = layout
        .ram()
        .ok_or_else(|| HvError::Boot("the layout has no RAM".into()))?;
    plan(
        file,
        ram,
        initrd,
        |initrd_len, dtb_len| place(&header, ram, initrd_len, dtb_len),
        tree,
    )
}

/// The boot plan of the Linux kernel `kernel` (its header already read),
/// with `initrd` if there is one: `plan` places the kernel,
/// the tree and the initrd from their lengths (`initrd_len`, `dtb_len`),
/// `tree` builds the device tree naming the initrd's address and length.
/// The vCPU starts at the kernel's first byte with the tree's address.
fn plan<P, T>(
    file: KernelFile<'_>,
    ram: &Region,
    initrd: Option<Vec<u8>>,
    plan: P,
    tree: T,
) -> Result<BootPlan<GuestPhysAddr>, HvError>
where
    P: FnOnce(Option<u64>, u64) -> Result<LinuxBootPlan, String>,
    T: Fn(Option<(GuestPhysAddr, u64)>) -> Result<Vec<u8>, HvError>,
{
    let KernelFile { kind, path, image } = file;
    let initrd_len = initrd.as_ref().map(|i| i.len() as u64);
    let measured = tree(initrd_len.map(|len| (ram.gpa, len)))?.len() as u64;
    let placed = plan(initrd_len, measured).map_err(|e| HvError::Boot(format!("{path} ({e})")))?;
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
