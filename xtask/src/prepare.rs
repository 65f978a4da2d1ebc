//! The build step shared by `build`, `run` and `test`: build the guest and
//! the hypervisor (one after the other), flatten them, and write the disk
//! (the guest, a Linux guest's initramfs, and the VM's config naming them)
//! and pflash images. Nothing is rewritten when nothing changed.

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
use std::path::{Path, PathBuf};

/// Where xtask puts the guest kernel on the disk (the hypervisor's default
/// too).
pub const GUEST_DISK_PATH: &str = vmconfig::DEFAULT_KERNEL;
/// Where xtask puts a guest's initramfs on the disk, if it has one.
pub const INITRD_DISK_PATH: &str = "/boot/initrd";

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
    /// The VM's settings, written to the disk as `/etc/vm.toml` (with
    /// the disk's paths of the kernel and initrd).
    pub vm: VmConfig,
    /// The guest's initramfs, a host file to put on the disk.
    pub initrd: Option<PathBuf>,
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
    cargo_log += &build_hypervisor(spec, paths, options.cargo)?;
    let initrd = options.initrd.as_deref().map(read_initrd).transpose()?;
    write_fat_disk(&paths.disk, &guest_disk(&guest, &options.vm, initrd))?;
    if spec.pflash_size > 0 {
        write_pflash(&paths.pflash, options.scenario, spec.pflash_size)?;
    }
    Ok(Prepared { guest, cargo_log })
}

/// Builds the hypervisor for `paths` (its host CPU count among them) and
/// writes its flat image where the machine loads one; returns what cargo
/// printed, if captured.
pub fn build_hypervisor(spec: &ArchSpec, paths: &ArchPaths, cargo: CargoOutput) -> Result<String> {
    let log = build_app(spec, paths, &spec.hypervisor, &paths.hv_target, &[], cargo)?;
    if let KernelImage::Flat { load_addr } = spec.kernel {
        let hv = hypervisor_flat(&paths.hv_elf, spec, load_addr)?;
        write_if_different(&paths.hv_flat, &hv)?;
    }
    Ok(log)
}

/// The paths of a hypervisor for `cpus` host CPUs, built (unless up to
/// date) as [`build_hypervisor`] does.
pub fn hypervisor_for_cpus(
    spec: &ArchSpec,
    paths: &ArchPaths,
    cpus: usize,
    cargo: CargoOutput,
) -> Result<ArchPaths> {
    let paths = paths.clone().with_host_cpus(spec, cpus);
    build_hypervisor(spec, &paths, cargo)?;
    Ok(paths)
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

/// The files of a VM's disk: the kernel `guest` at `/sbin/gkernel`, the
/// `initrd` (if any) at `/boot/initrd`, and `/etc/vm.toml`: `vm` naming
/// those two (whatever host paths `vm` had for them).
pub fn guest_disk(guest: &[u8], vm: &VmConfig, initrd: Option<Vec<u8>>) -> DiskFiles {
    let config = VmConfig {
        kernel: Some(GUEST_DISK_PATH.to_string()),
        initrd: initrd.as_ref().map(|_| INITRD_DISK_PATH.to_string()),
        ..vm.clone()
    };
    let mut files = DiskFiles::from([
        (GUEST_DISK_PATH.to_string(), guest.to_vec()),
        (vmconfig::PATH.to_string(), config.to_string().into_bytes()),
    ]);
    if let Some(initrd) = initrd {
        files.insert(INITRD_DISK_PATH.to_string(), initrd);
    }
    files
}

/// The initramfs at `path`, which must not be empty.
pub fn read_initrd(path: &Path) -> Result<Vec<u8>> {
    let initrd = crate::fsio::read(path)?;
    ensure!(!initrd.is_empty(), "the initrd {} is empty", path.display());
    Ok(initrd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disk_holds_the_kernel_the_initrd_and_the_config_naming_them() {
        let files = guest_disk(b"kernel", &VmConfig::DEFAULT, None);
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            ["/etc/vm.toml", "/sbin/gkernel"]
        );
        assert_eq!(files["/sbin/gkernel"], b"kernel");
        let config = vmconfig::parse(std::str::from_utf8(&files["/etc/vm.toml"]).unwrap());
        assert_eq!(
            config,
            Ok(VmConfig {
                kernel: Some("/sbin/gkernel".into()),
                ..VmConfig::DEFAULT
            })
        );

        // Host paths in the settings become the disk's.
        let vm = VmConfig {
            name: Some("linux".into()),
            kernel: Some("../linux/Image".into()),
            initrd: Some("initrd.cpio".into()),
            cmdline: Some("console=ttyAMA0 panic=-1".into()),
            mem: Some(256 << 20),
            watchdog_secs: Some(20),
            blocks: false,
            ..VmConfig::DEFAULT
        };
        let files = guest_disk(b"Image", &vm, Some(b"070701...".to_vec()));
        assert_eq!(files["/boot/initrd"], b"070701...");
        let text = std::str::from_utf8(&files["/etc/vm.toml"]).unwrap();
        assert_eq!(
            text,
            "# The VM's config, written by cargo xtask\n\
             name = \"linux\"\n\
             kernel = \"/sbin/gkernel\"\n\
             initrd = \"/boot/initrd\"\n\
             cmdline = \"console=ttyAMA0 panic=-1\"\n\
             mem = \"256M\"\n\
             watchdog = 20\n\
             blocks = false\n"
        );
        assert_eq!(
            vmconfig::parse(text),
            Ok(VmConfig {
                kernel: Some("/sbin/gkernel".into()),
                initrd: Some("/boot/initrd".into()),
                ..vm
            })
        );
    }

    #[test]
    fn an_empty_initrd_is_refused() {
        let dir = crate::fsio::testdir::fresh("initrd-files");
        let initrd = dir.join("initrd.cpio");
        std::fs::write(&initrd, b"070701...").unwrap();
        assert_eq!(read_initrd(&initrd).unwrap(), b"070701...");
        std::fs::write(&initrd, b"").unwrap();
        let err = read_initrd(&initrd).unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");
    }
}
