//! The build step shared by `build`, `run` and `test`: build the guest and
//! the hypervisor (one after the other), flatten them, and write the disk
//! and pflash images. Nothing is rewritten when nothing changed.

use crate::arch::ArchSpec;
use crate::build::{CargoOutput, build_app};
use crate::disk::{DiskFiles, write_fat_disk};
use crate::fsio::write_if_different;
use crate::guest_image::{guest_flat, hypervisor_flat};
use crate::paths::ArchPaths;
use crate::pflash::write_pflash;
use anyhow::Result;
use guestaspace_core::scenario::Scenario;
use std::path::PathBuf;

/// Where the guest kernel is on the disk.
pub const GUEST_DISK_PATH: &str = "/sbin/gkernel";

/// Which guest goes on the disk.
#[derive(Clone, Debug)]
pub enum GuestSource {
    /// gkernel, built from this workspace.
    Bundled,
    /// A user's image: ELF or flat binary.
    File(PathBuf),
}

pub struct PrepareOptions {
    pub guest: GuestSource,
    pub scenario: Scenario,
    pub cargo: CargoOutput,
}

/// What the build step produced.
pub struct Prepared {
    /// The flat guest binary that is `/sbin/gkernel` on the disk.
    pub guest: Vec<u8>,
    /// What cargo printed, if captured.
    pub cargo_log: String,
}

/// Runs the build step for `spec`; the outputs are at `paths`.
pub fn prepare(spec: &ArchSpec, paths: &ArchPaths, options: &PrepareOptions) -> Result<Prepared> {
    let mut cargo_log = String::new();
    let guest = match &options.guest {
        GuestSource::Bundled => {
            cargo_log += &build_app(spec, paths, &spec.guest, &paths.guest_target, options.cargo)?;
            let flat = guest_flat(&paths.guest_elf, spec)?;
            write_if_different(&paths.guest_flat, &flat)?;
            flat
        }
        GuestSource::File(path) => guest_flat(path, spec)?,
    };
    cargo_log += &build_app(
        spec,
        paths,
        &spec.hypervisor,
        &paths.hv_target,
        options.cargo,
    )?;
    let hv = hypervisor_flat(&paths.hv_elf, spec)?;
    write_if_different(&paths.hv_flat, &hv)?;
    write_fat_disk(&paths.disk, &guest_disk(&guest))?;
    write_pflash(&paths.pflash, options.scenario)?;
    Ok(Prepared { guest, cargo_log })
}

/// The files of a disk whose `/sbin/gkernel` is `guest`.
pub fn guest_disk(guest: &[u8]) -> DiskFiles {
    DiskFiles::from([(GUEST_DISK_PATH.to_string(), guest.to_vec())])
}
