//! Guests and their parts from Debian's own packages, unmodified: U-Boot
//! built for QEMU's riscv64 `virt` in S-mode (`u-boot-qemu`, file
//! `usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin`), and for Linux on
//! aarch64 the arm64 kernel and `busybox-static` (see `guests/linux.rs`).
//!
//! A package is fetched with the distribution's own tool (`apt-get
//! download`, from whatever sources the machine's apt is configured with:
//! no URL here) into `target/debian/<package>/`, unpacked with `dpkg-deb
//! -x`, and cached: once unpacked, its version is recorded beside it and a
//! second run fetches nothing. A package of another architecture
//! (`name:arm64`) needs that architecture added to the machine's dpkg
//! (`cargo xtask setup` does it). A download shows its bytes on a
//! spinner on a terminal, and ends with one line naming what it fetched.

use crate::paths::target_base;
use crate::progress::{self, Task};
use anyhow::{Context, Result, bail, ensure};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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

/// A package unpacked in the cache.
#[derive(Clone, Debug)]
pub struct Unpacked {
    /// The package as asked for (`name` or `name:arch`).
    pub package: String,
    /// Its version, as the `.deb` says.
    pub version: String,
    /// Where its files are.
    pub root: PathBuf,
}

/// The file recording an unpacked package's version, written last.
const VERSION_FILE: &str = "version";

/// The guest image of `guest`, fetching and unpacking its package first if
/// it is not cached yet.
pub fn fetch(guest: DebianGuest) -> Result<PathBuf> {
    let image = package_dir(guest.package)?.join("root").join(guest.file);
    if image.is_file() {
        return Ok(image);
    }
    let image = unpack(guest.package)?.root.join(guest.file);
    ensure!(image.is_file(), "{} has no {}", guest.package, guest.file);
    Ok(image)
}

/// The package `package` (`name` or `name:arch`), unpacked, fetching it
/// first if it is not cached yet.
pub fn unpack(package: &str) -> Result<Unpacked> {
    check_architecture(package)?;
    let dir = package_dir(package)?;
    let root = dir.join("root");
    let version_file = dir.join(VERSION_FILE);
    if let Ok(version) = std::fs::read_to_string(&version_file) {
        return Ok(Unpacked {
            package: package.to_string(),
            version: version.trim().to_string(),
            root,
        });
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let deb = download(package, &dir)?;
    let version = deb_field(&deb, "Version")?;
    // A half-unpacked tree from an interrupted run goes first.
    if root.exists() {
        std::fs::remove_dir_all(&root)
            .with_context(|| format!("cannot remove {}", root.display()))?;
    }
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&root)
        .stdin(Stdio::null())
        .status()
        .context("cannot run dpkg-deb to unpack the guest's package")?;
    ensure!(
        status.success(),
        "dpkg-deb -x {} failed ({status})",
        deb.display()
    );
    crate::fsio::write_if_different(&version_file, version.as_bytes())?;
    Ok(Unpacked {
        package: package.to_string(),
        version,
        root,
    })
}

/// The package a metapackage (such as `linux-image-arm64:arm64`) stands
/// for: its first dependency, as `apt-cache depends` names it for the
/// version apt would install (`linux-image-6.1.0-N-arm64:arm64`).
pub fn resolve(metapackage: &str) -> Result<String> {
    check_architecture(metapackage)?;
    let out = Command::new("apt-cache")
        .args(["depends", metapackage])
        .stdin(Stdio::null())
        .output()
        .context("cannot run apt-cache (Debian's package tool)")?;
    if !out.status.success() {
        bail!(
            "apt-cache depends {metapackage} failed (is `apt-get update` done?):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    first_dependency(&String::from_utf8_lossy(&out.stdout))
        .with_context(|| format!("apt-cache names no dependency of {metapackage}"))
}

/// The first plain `Depends:` of `apt-cache depends` output (not an
/// alternative `|Depends:`, not a virtual `<package>`).
fn first_dependency(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| line.trim_start().strip_prefix("Depends: "))
        .map(str::trim)
        .find(|name| !name.starts_with('<'))
        .map(str::to_string)
}

/// `target/debian/<name>` (`<name>_<arch>` for a `name:arch` package).
fn package_dir(package: &str) -> Result<PathBuf> {
    Ok(target_base(&crate::paths::repo_root())?
        .join("debian")
        .join(package.replace(':', "_")))
}

/// Fetches `package` into `dir` with `apt-get download`; returns its `.deb`.
fn download(package: &str, dir: &Path) -> Result<PathBuf> {
    let name = package.split(':').next().unwrap_or(package);
    let prefix = format!("{name}_");
    let debs = || -> Result<Vec<PathBuf>> {
        Ok(std::fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|e| e == "deb")
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&prefix))
            })
            .collect())
    };
    // One left by an interrupted run may be of another version.
    for stale in debs()? {
        std::fs::remove_file(&stale)
            .with_context(|| format!("cannot remove {}", stale.display()))?;
    }
    let mut cmd = Command::new("apt-get");
    cmd.current_dir(dir)
        .args(["download", package])
        .stdin(Stdio::null());
    let task = Task::start(&format!("apt-get download {package}"));
    let size = download_size(package);
    if let Some(size) = size {
        task.set_total_bytes(size);
    }
    // apt-get writes the .deb where it will stay: its size so far is how
    // far the download is.
    let done = AtomicBool::new(false);
    let (status, output) = std::thread::scope(|scope| {
        if task.is_live() {
            scope.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    task.set_bytes(bytes_of(debs().unwrap_or_default()));
                    std::thread::sleep(Duration::from_millis(150));
                }
            });
        }
        let result = progress::run_captured(cmd, &task);
        done.store(true, Ordering::Relaxed);
        result
    })
    .context("cannot run apt-get (Debian's package tool) to fetch the guest")?;
    if !status.success() {
        task.clear();
        bail!(
            "apt-get download {package} failed (is apt configured, and `apt-get update` done? \
             `cargo xtask setup` does both):\n{output}"
        );
    }
    let deb = debs()?
        .into_iter()
        .next()
        .with_context(|| format!("apt-get left no {name} .deb in {}", dir.display()))?;
    let took = task.elapsed().as_secs_f64();
    let bytes = bytes_of(vec![deb.clone()]);
    task.finish(&format!(
        "fetched {} ({:.1} MB) with apt-get download in {took:.1} s",
        deb.file_name().unwrap_or_default().to_string_lossy(),
        bytes as f64 / 1e6
    ));
    Ok(deb)
}

/// The total size of `files`.
fn bytes_of(files: Vec<PathBuf>) -> u64 {
    files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

/// The size of the `.deb` apt would download for `package`, if its
/// lists say.
fn download_size(package: &str) -> Option<u64> {
    let out = Command::new("apt-cache")
        .args(["show", "--no-all-versions", package])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status.success().then_some(())?;
    control_size(&String::from_utf8_lossy(&out.stdout))
}

/// The first `Size:` field of `apt-cache show` output.
fn control_size(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("Size:"))
        .and_then(|v| v.trim().parse().ok())
}

/// One field of a `.deb`'s control file.
fn deb_field(deb: &Path, field: &str) -> Result<String> {
    let out = Command::new("dpkg-deb")
        .arg("-f")
        .arg(deb)
        .arg(field)
        .stdin(Stdio::null())
        .output()
        .context("cannot run dpkg-deb")?;
    ensure!(
        out.status.success(),
        "dpkg-deb -f {} {field} failed:\n{}",
        deb.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// For a `name:arch` package, checks that the machine's dpkg knows `arch`
/// (its own, or one added with `dpkg --add-architecture`), without which
/// apt has no package lists for it.
fn check_architecture(package: &str) -> Result<()> {
    let Some((_, arch)) = package.split_once(':') else {
        return Ok(());
    };
    let dpkg = |arg: &str| -> Result<String> {
        let out = Command::new("dpkg")
            .arg(arg)
            .stdin(Stdio::null())
            .output()
            .context("cannot run dpkg (Debian's package tool)")?;
        ensure!(out.status.success(), "dpkg {arg} failed");
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let native = dpkg("--print-architecture")?;
    let foreign = dpkg("--print-foreign-architectures")?;
    ensure!(
        knows_architecture(&native, &foreign, arch),
        "{package} is a package of the {arch} architecture, which this machine's dpkg does not \
         have: run `dpkg --add-architecture {arch} && apt-get update` (as root; `cargo xtask \
         setup` does it), then try again"
    );
    Ok(())
}

/// Whether `arch` is the native architecture or one of the foreign ones,
/// as `dpkg --print-architecture` and `--print-foreign-architectures`
/// print them.
pub(crate) fn knows_architecture(native: &str, foreign: &str, arch: &str) -> bool {
    native.trim() == arch || foreign.lines().any(|line| line.trim() == arch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metapackage_stands_for_its_first_real_dependency() {
        let text = "linux-image-arm64:arm64\n  Depends: linux-image-6.1.0-56-arm64:arm64\n";
        assert_eq!(
            first_dependency(text).as_deref(),
            Some("linux-image-6.1.0-56-arm64:arm64")
        );
        let text = "meta\n |Depends: <virtual>\n  Depends: <virtual>\n  Depends: real\n";
        assert_eq!(first_dependency(text).as_deref(), Some("real"));
        assert_eq!(first_dependency("meta\n  Recommends: other\n"), None);
    }

    #[test]
    fn the_download_size_is_the_size_field() {
        let text = "Package: u-boot-qemu\nVersion: 2023.01+dfsg-2+deb12u1\nInstalled-Size: 6174\n\
                    Size: 1234567\nSHA256: 00\n";
        assert_eq!(control_size(text), Some(1_234_567));
        assert_eq!(control_size("Package: x\n"), None);
    }

    #[test]
    fn a_foreign_architecture_must_be_added_to_dpkg() {
        assert!(knows_architecture("amd64\n", "arm64\ni386\n", "arm64"));
        assert!(knows_architecture("arm64\n", "", "arm64"));
        assert!(!knows_architecture("amd64\n", "i386\n", "arm64"));
        assert!(!knows_architecture("amd64\n", "", "arm64"));
    }

    #[test]
    fn packages_of_another_architecture_have_their_own_directory() {
        let dir = package_dir("busybox-static:arm64").unwrap();
        assert!(dir.ends_with("debian/busybox-static_arm64"), "{dir:?}");
        assert!(
            package_dir("u-boot-qemu")
                .unwrap()
                .ends_with("debian/u-boot-qemu")
        );
    }
}
