//! Reads the guest kernel from the FAT32 disk and places it in guest RAM.

use crate::error::HvError;
use alloc::vec::Vec;
use guestaspace_core::PAGE_SIZE;
use guestaspace_core::addr::GuestPhysAddr;
use guestaspace_core::image::check_flat;
use guestaspace_core::layout::{Backing, GuestLayout};
use guestaspace_core::stage2::{Format, Host};
use guestaspace_core::vm::Memory;

/// Reads `path` after checking, from its size alone, that it will fit.
pub fn read(path: &'static str, layout: &GuestLayout) -> Result<Vec<u8>, HvError> {
    let fs = crate::disk::root_fs(path)?;
    let disk_err = |e| crate::disk::error(path, e);
    let meta = fs.metadata(path).map_err(disk_err)?;
    // Check the size before reading, so a huge file is refused without
    // reading it; the first bytes are checked again once read.
    check_flat(&[], meta.size, layout).map_err(|error| HvError::Image { path, error })?;
    let bytes = crate::disk::read_whole(fs, path).map_err(disk_err)?;
    check_flat(&bytes, bytes.len() as u64, layout)
        .map_err(|error| HvError::Image { path, error })?;
    Ok(bytes)
}

/// Maps fresh RAM for `[gpa, gpa + data.len())` and copies `data` there
/// (the image, or a boot structure); the pages are counted like
/// faulted-in ones.
pub fn place<F: Format, H: Host>(
    memory: &mut Memory<F, H>,
    gpa: GuestPhysAddr,
    data: &[u8],
) -> Result<(), HvError> {
    let ram_index = memory
        .layout()
        .regions
        .iter()
        .position(|r| r.contains(gpa))
        .expect("validated layout");
    let perms = memory.layout().regions[ram_index].perms;
    let mut page = gpa;
    while page < gpa + data.len() as u64 {
        memory
            .space
            .map_backed(page, Backing::FreshRam, perms)
            .map_err(HvError::Map)?;
        memory.stats.count_page(ram_index);
        page += PAGE_SIZE;
    }
    let written = memory.space.write(gpa, data);
    assert_eq!(written, data.len(), "every page was just mapped");
    Ok(())
}
