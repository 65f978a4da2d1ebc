//! Guests from Debian's own packages, unmodified: U-Boot built for QEMU's
//! riscv64 `virt` in S-mode (`u-boot-qemu`, file
//! `usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin`).
//!
//! The package is fetched with the distribution's own tool (`apt-get
//! download`, from whatever sources the machine's apt is configured with:
//! no URL here) into `target/debian/`, unpacked with `dpkg-deb -x`, and
//! cached: a second run finds the unpacked file and fetches nothing.

use crate::paths::target_base;
use anyhow::{Context, Result, bail, ensure};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// One file of one Debian package.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DebianGuest {
    /// The binary package.
    pub package: &'static str,
    /// The guest image inside it.
    pub file: &'static str,
}

/// Debian's U-Boot for QEMU `virt`, the S-mode payload that expects `a0`
/// = hart id and `a1` = a device tree, as OpenSBI (or a hypervisor) hands
/// over.
pub const UBOOT_RISCV64_SMODE: DebianGuest = DebianGuest {
    package: "u-boot-qemu",
    file: "usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin",
};

/// The guest image of `guest`, fetching and unpacking its package first if
/// it is not cached yet.
pub fn fetch(guest: DebianGuest) -> Result<PathBuf> {
    let dir = target_base(&crate::paths::repo_root())?
        .join("debian")
        .join(guest.package);
    let unpacked = dir.join("root");
    let image = unpacked.join(guest.file);
    if image.is_file() {
        return Ok(image);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let out = Command::new("apt-get")
        .current_dir(&dir)
        .args(["download", guest.package])
        .stdin(Stdio::null())
        .output()
        .context("cannot run apt-get (Debian's package tool) to fetch the guest")?;
    if !out.status.success() {
        bail!(
            "apt-get download {} failed (is apt configured, and `apt-get update` done?):\n{}",
            guest.package,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let deb = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "deb")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{}_", guest.package)))
        })
        .with_context(|| {
            format!(
                "apt-get left no {} .deb in {}",
                guest.package,
                dir.display()
            )
        })?;
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&unpacked)
        .status()
        .context("cannot run dpkg-deb to unpack the guest's package")?;
    ensure!(
        status.success(),
        "dpkg-deb -x {} failed ({status})",
        deb.display()
    );
    ensure!(image.is_file(), "{} has no {}", deb.display(), guest.file);
    Ok(image)
}
