//! The build step shared by `build`, `run` and `test`: build the guest and
//! the hypervisor (one after the other), flatten them, and write the disk
//! (the guest, its settings, and a Linux guest's initramfs and command
//! line) and pflash images. Nothing is rewritten when nothing changed.

use crate::arch::{ArchSpec, KernelImage};
use crate::build::{CargoOutput, build_app};
use crate::disk::{DiskFiles, write_fat_disk};
use crate::fsio::write_if_different;
use crate::guest_image::{guest_flat, hypervisor_flat};
use crate::guests::debian::{self, DebianGuest};
use crate::guests::tutorial::{self, TutorialApp};
use crate::paths::ArchPaths;
use crate::pflash::write_pflash;
use anyhow::{Result, ensure};
use guestaspace_core::scenario::Scenario;
use guestaspace_core::vmconfig::{self, VmConfig};
use std::path::PathBuf;

/// Where the guest kernel is on the disk.
pub const GUEST_DISK_PATH: &str = "/sbin/gkernel";
/// Where a Linux guest's initramfs is on the disk, if it has one.
pub const INITRD_DISK_PATH: &str = "/boot/initrd";
/// Where a Linux guest's kernel command line is on the disk (UTF-8, no
/// trailing newline), if it has one.
pub const CMDLINE_DISK_PATH: &str = "/boot/cmdline";

/// What the disk holds for a Linux guest beside its kernel; each file is
/// absent when there is none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootFiles {
    /// The initramfs, as a file to copy.
    pub initrd: Option<PathBuf>,
    /// The kernel command line (an empty one writes no file).
    pub cmdline: Option<String>,
}

/// Which guest goes on the disk.
#[derive(Clone, Debug)]
pub enum GuestSource {
    /// gkernel, built from this workspace.
    Bundled,
    /// A user's image: ELF or flat binary.
    File(PathBuf),
    /// A crates.io ArceOS tutorial application, built unmodified.
    Tutorial(TutorialApp),
    /// A file from a Debian package, unmodified (U-Boot).
    Debian(DebianGuest),
}

pub struct PrepareOptions {
    pub guest: GuestSource,
    pub scenario: Scenario,
    pub cargo: CargoOutput,
    /// The VM's settings, written to the disk as `/etc/vm.conf` unless
    /// they are all defaults.
    pub vm: VmConfig,
    /// A Linux guest's initramfs and command line.
    pub boot: BootFiles,
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
            build_guest(spec, paths, options.scenario, options.cargo, &mut cargo_log)?
        }
        GuestSource::File(path) => guest_flat(path, spec)?,
        GuestSource::Tutorial(app) => guest_flat(&tutorial::build(*app, spec)?, spec)?,
        GuestSource::Debian(guest) => guest_flat(&debian::fetch(*guest)?, spec)?,
    };
    cargo_log += &build_app(
        spec,
        paths,
        &spec.hypervisor,
        &paths.hv_target,
        &[],
        options.cargo,
    )?;
    if let KernelImage::Flat { load_addr } = spec.kernel {
        let hv = hypervisor_flat(&paths.hv_elf, spec, load_addr)?;
        write_if_different(&paths.hv_flat, &hv)?;
    }
    let mut files = guest_disk(&guest, &options.vm);
    add_boot_files(&mut files, &options.boot)?;
    write_fat_disk(&paths.disk, &files)?;
    if spec.pflash_size > 0 {
        write_pflash(&paths.pflash, options.scenario, spec.pflash_size)?;
    }
    Ok(Prepared { guest, cargo_log })
}

/// Builds the bundled guest and returns its flat image. Where the scenario
/// is built into the guest, each scenario has its own build directory.
pub fn build_guest(
    spec: &ArchSpec,
    paths: &ArchPaths,
    scenario: Scenario,
    cargo: CargoOutput,
    cargo_log: &mut String,
) -> Result<Vec<u8>> {
    let (target, elf, flat_path) = if spec.scenario_in_image {
        paths.scenario_guest(spec, scenario)
    } else {
        (
            paths.guest_target.clone(),
            paths.guest_elf.clone(),
            paths.guest_flat.clone(),
        )
    };
    let env: &[(&str, &str)] = if spec.scenario_in_image {
        &[(SCENARIO_VARIABLE, scenario.name())]
    } else {
        &[]
    };
    *cargo_log += &build_app(spec, paths, &spec.guest, &target, env, cargo)?;
    let flat = guest_flat(&elf, spec)?;
    write_if_different(&flat_path, &flat)?;
    Ok(flat)
}

/// The build-time variable gkernel reads its scenario from where the
/// machine's pflash cannot carry it (x86_64).
pub const SCENARIO_VARIABLE: &str = "GKERNEL_SCENARIO";

/// The files of a disk whose `/sbin/gkernel` is `guest`, with
/// `/etc/vm.conf` holding `vm` unless every setting is the default.
pub fn guest_disk(guest: &[u8], vm: &VmConfig) -> DiskFiles {
    let mut files = DiskFiles::from([(GUEST_DISK_PATH.to_string(), guest.to_vec())]);
    if *vm != VmConfig::DEFAULT {
        files.insert(vmconfig::PATH.to_string(), vm.to_string().into_bytes());
    }
    files
}

/// Adds `boot`'s initramfs and command line to the disk's `files`.
pub fn add_boot_files(files: &mut DiskFiles, boot: &BootFiles) -> Result<()> {
    if let Some(path) = &boot.initrd {
        let initrd = crate::fsio::read(path)?;
        ensure!(!initrd.is_empty(), "the initrd {} is empty", path.display());
        files.insert(INITRD_DISK_PATH.to_string(), initrd);
    }
    if let Some(cmdline) = boot.cmdline.as_deref().filter(|c| !c.is_empty()) {
        files.insert(CMDLINE_DISK_PATH.to_string(), cmdline.as_bytes().to_vec());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initrd_and_command_line_go_under_boot_only_when_given() {
        let dir = crate::fsio::testdir::fresh("boot-files");
        let initrd = dir.join("initrd.cpio");
        std::fs::write(&initrd, b"070701...").unwrap();
        let mut files = guest_disk(b"kernel", &VmConfig::DEFAULT);
        add_boot_files(&mut files, &BootFiles::default()).unwrap();
        assert_eq!(files.keys().collect::<Vec<_>>(), ["/sbin/gkernel"]);
        let boot = BootFiles {
            initrd: Some(initrd.clone()),
            cmdline: Some("console=ttyAMA0 panic=-1".into()),
        };
        add_boot_files(&mut files, &boot).unwrap();
        assert_eq!(files["/boot/initrd"], b"070701...");
        assert_eq!(files["/boot/cmdline"], b"console=ttyAMA0 panic=-1");

        let mut files = DiskFiles::new();
        let empty_cmdline = BootFiles {
            cmdline: Some(String::new()),
            ..BootFiles::default()
        };
        add_boot_files(&mut files, &empty_cmdline).unwrap();
        assert!(files.is_empty(), "an empty command line writes no file");
        std::fs::write(&initrd, b"").unwrap();
        let empty_initrd = BootFiles {
            initrd: Some(initrd),
            ..BootFiles::default()
        };
        let err = add_boot_files(&mut files, &empty_initrd).unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");
    }
}
