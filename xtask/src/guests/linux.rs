//! Linux as the guest (`cargo xtask run --linux`). On aarch64, Debian's
//! own arm64 kernel: the one the package `linux-image-arm64` stands for
//! (an uncompressed arm64 `Image`, `boot/vmlinuz-*`), unmodified, and an
//! initramfs built here around Debian's `busybox-static`
//! (`guests/initramfs.rs`). On riscv64, a kernel built here from Debian's
//! `linux-source-6.1` (`guests/linux_riscv64.rs`).
//!
//! The hypervisor reads them from the disk: the kernel as every guest's
//! `/sbin/gkernel`, the initramfs as `/boot/initrd`, both named by
//! `/etc/vm.toml`. The guest's RAM and command line are the shipped VM
//! configs' (`configs/vms/linux-riscv64.toml`, `linux-aarch64.toml`:
//! [`shipped_config`]). Not on x86_64 yet.

use super::debian::{self, Unpacked};
use super::initramfs;
use crate::arch::Arch;
use crate::paths::target_base;
use crate::vm_file::{self, HostVm};
use anyhow::{Context, Result, bail, ensure};
use std::path::PathBuf;

/// The metapackage of Debian's current arm64 kernel.
pub const KERNEL_METAPACKAGE: &str = "linux-image-arm64:arm64";
/// Debian's statically linked busybox for arm64.
pub const BUSYBOX_PACKAGE: &str = "busybox-static:arm64";
/// Where busybox is in its package.
const BUSYBOX_FILE: &str = "bin/busybox";

/// The run's timeout unless `--timeout` says otherwise: Debian's arm64
/// kernel boots in about 10 s under TCG.
pub const DEFAULT_TIMEOUT_SECS: u64 = 120;

/// The kernel and initramfs of one Linux guest.
#[derive(Clone, Debug)]
pub struct LinuxGuest {
    /// The kernel `Image`.
    pub kernel: PathBuf,
    /// The initramfs (`newc` cpio).
    pub initrd: PathBuf,
    /// The kernel, for reports: its package and version.
    pub kernel_name: String,
    /// One line naming what is booted, with the versions.
    pub description: String,
}

impl LinuxGuest {
    /// One line naming what is booted, with the resolved versions.
    pub fn describe(&self) -> &str {
        &self.description
    }
}

/// Whether Linux runs as the guest on `arch` (aarch64 and riscv64).
pub fn supports(arch: Arch) -> bool {
    matches!(arch, Arch::Aarch64 | Arch::Riscv64)
}

/// Fails on an arch without Linux guests (x86_64), naming what is
/// missing.
pub fn check_supported(arch: Arch) -> Result<()> {
    if !supports(arch) {
        bail!(
            "Linux guests run on aarch64 and riscv64 only so far: the x86_64 hypervisor has no \
             Linux boot protocol yet (bzImage setup header, boot_params with the initrd and \
             command line, an e820 map) and no I/O APIC for COM1's interrupt"
        );
    }
    Ok(())
}

/// The settings `--linux` boots `arch`'s Linux guest with: the shipped
/// `configs/vms/linux-ARCH.toml` (its RAM and command line).
pub fn shipped_config(arch: Arch) -> Result<HostVm> {
    check_supported(arch)?;
    vm_file::shipped(&format!("linux-{}", arch.name()))
}

/// The Linux guest of `arch`: fetches Debian's arm64 kernel and busybox
/// and writes the initramfs (aarch64), or builds the kernel and initramfs
/// (riscv64); both are cached after the first time. Fails on x86_64,
/// naming what is missing.
pub fn prepare(arch: Arch) -> Result<LinuxGuest> {
    check_supported(arch)?;
    match arch {
        Arch::Aarch64 => debian_arm64(),
        Arch::Riscv64 => super::linux_riscv64::prepare(),
        Arch::X86_64 => unreachable!("checked above"),
    }
}

/// Debian's arm64 kernel and the busybox initramfs.
fn debian_arm64() -> Result<LinuxGuest> {
    let kernel_package = debian::unpack(&debian::resolve(KERNEL_METAPACKAGE)?)?;
    let kernel = find_kernel(&kernel_package)?;
    check_arm64_image(&crate::fsio::read(&kernel)?).with_context(|| {
        format!(
            "{} is not what QEMU and Linux call an Image",
            kernel.display()
        )
    })?;
    let busybox_package = debian::unpack(BUSYBOX_PACKAGE)?;
    let busybox = crate::fsio::read(&busybox_package.root.join(BUSYBOX_FILE))?;
    let initrd = target_base(&crate::paths::repo_root())?
        .join("debian")
        .join("initramfs-arm64.cpio");
    // Rewritten only when its content changes (a new busybox, a new /init).
    crate::fsio::write_if_different(&initrd, &initramfs::build(&busybox)?)?;
    let file = kernel
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    Ok(LinuxGuest {
        description: format!(
            "Debian Linux guest: {file} from {} {} (for {KERNEL_METAPACKAGE}), initramfs with {} {}",
            kernel_package.package,
            kernel_package.version,
            busybox_package.package,
            busybox_package.version,
        ),
        kernel_name: format!("{} {}", kernel_package.package, kernel_package.version),
        kernel,
        initrd,
    })
}

/// The package's `boot/vmlinuz-*`.
fn find_kernel(package: &Unpacked) -> Result<PathBuf> {
    let boot = package.root.join("boot");
    let mut kernels: Vec<PathBuf> = std::fs::read_dir(&boot)
        .with_context(|| format!("{} has no boot/", package.package))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .collect();
    ensure!(
        kernels.len() == 1,
        "{} has {} boot/vmlinuz-* files, expected one",
        package.package,
        kernels.len()
    );
    Ok(kernels.remove(0))
}

/// Checks the header of an arm64 Linux `Image` (the kernel's
/// `Documentation/arch/arm64/booting.rst`): the magic `ARM\x64` at byte 56.
/// A compressed kernel (gzip, or an EFI zboot image) has none.
pub fn check_arm64_image(bytes: &[u8]) -> Result<()> {
    const MAGIC_AT: usize = 56;
    const MAGIC: &[u8; 4] = b"ARM\x64";
    ensure!(
        bytes.get(MAGIC_AT..MAGIC_AT + 4) == Some(MAGIC),
        "no arm64 Image magic `ARM\\x64` at byte {MAGIC_AT} (a compressed kernel?)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_arm64_image_has_its_magic_at_byte_56() {
        let mut image = vec![0u8; 64];
        image[56..60].copy_from_slice(b"ARM\x64");
        assert!(check_arm64_image(&image).is_ok());
        let gzip = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0];
        assert!(check_arm64_image(&gzip).is_err());
        image[59] = 0x65;
        assert!(check_arm64_image(&image).is_err());
    }

    #[test]
    fn x86_64_is_refused_naming_what_is_missing() {
        assert!(!supports(Arch::X86_64));
        assert!(supports(Arch::Riscv64) && supports(Arch::Aarch64));
        let err = prepare(Arch::X86_64).unwrap_err().to_string();
        assert!(
            err.contains("aarch64 and riscv64 only") && err.contains("boot protocol"),
            "{err}"
        );
    }

    /// Fetches the real packages with apt and builds the initramfs (slow
    /// the first time, and needs the machine's apt to have arm64):
    /// `cargo test -p xtask -- --ignored debian_linux`.
    #[test]
    #[ignore]
    fn debian_linux_is_fetched_and_its_initramfs_built() {
        let guest = prepare(Arch::Aarch64).unwrap();
        eprintln!("{}", guest.describe());
        eprintln!(
            "kernel {}\ninitrd {}",
            guest.kernel.display(),
            guest.initrd.display()
        );
        assert!(guest.kernel_name.starts_with("linux-image-6."));
        let entries =
            crate::cpio::test_reader::read_archive(&crate::fsio::read(&guest.initrd).unwrap());
        let busybox = entries.iter().find(|e| e.name == "bin/busybox").unwrap();
        assert!(busybox.data.starts_with(b"\x7fELF"));
    }
}
