//! Linux as the riscv64 guest (`cargo xtask run --arch riscv64 --linux`):
//! an unpatched kernel built here from Debian bookworm's `linux-source-6.1`
//! with Debian's `gcc-riscv64-linux-gnu` (bookworm has no riscv64 kernel
//! package), configured as `make tinyconfig` plus `xtask/linux/riscv64.config`,
//! and an initramfs holding only `/init`, built from `xtask/linux/init.c`
//! against the kernel's nolibc (`guests/kbuild.rs` does the building).
//!
//! Nothing is installed here: the packages must be there (`cargo xtask
//! setup`, `setup.rs`, installs them before `run --linux`, `test` and
//! `bench`), and a missing one is named with the command that installs
//! it. The result is cached outside the clone, in
//! `$XDG_CACHE_HOME/arceos-guestaspace/linux-riscv64/<key>/` (or under
//! `~/.cache`), where `<key>` hashes everything the build depends on: the
//! fragment, the `/init` source, the versions of `linux-source-6.1` and of
//! the compiler, and this recipe's own version. A second run, from this
//! clone or another, finds the kernel there and builds nothing. The cache
//! entry is written in a scratch directory and renamed into place whole,
//! so an interrupted build leaves no half entry behind.

use super::initramfs;
use super::kbuild::{self, Toolchain, Tree};
use super::linux::LinuxGuest;
use crate::progress::Task;
use anyhow::{Context, Result, bail, ensure};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The config fragment merged on top of `tinyconfig`.
pub const FRAGMENT: &str = include_str!("../../linux/riscv64.config");
/// The source of `/init`.
pub const INIT_SOURCE: &str = include_str!("../../linux/init.c");

/// The package holding the kernel source tarball, and the tarball.
pub const SOURCE_PACKAGE: &str = "linux-source-6.1";
const SOURCE_TARBALL: &str = "/usr/src/linux-source-6.1.tar.xz";
/// The cross compiler's package.
pub const COMPILER_PACKAGE: &str = "gcc-riscv64-linux-gnu";

/// Every package the build needs (`setup.rs` installs this list).
pub const PACKAGES: [&str; 8] = [
    SOURCE_PACKAGE,
    COMPILER_PACKAGE,
    "bc",
    "flex",
    "bison",
    "libssl-dev",
    "make",
    "xz-utils",
];

/// Bumped whenever the steps of the build change what they make, so that
/// an old cache entry is not taken for a new one.
const RECIPE_VERSION: &str = "1";

/// How the kernel is built.
const TOOLCHAIN: Toolchain = Toolchain {
    arch: "riscv",
    cross_compile: "riscv64-linux-gnu-",
    image_target: "Image",
    image_path: "arch/riscv/boot/Image",
    jobs: 2,
};

/// The files of one cache entry.
const KERNEL_FILE: &str = "Image";
const INITRD_FILE: &str = "initramfs.cpio";
const CONFIG_FILE: &str = "config";
/// Written last: an entry without it is not one.
const STAMP_FILE: &str = "built-from";

/// The kernel and initramfs, built or found in the cache.
pub fn prepare() -> Result<LinuxGuest> {
    let versions = check_packages()?;
    let key = cache_key(&versions);
    let entry = cache_root()?.join(&key);
    let built_from = format!(
        "{SOURCE_PACKAGE} {}, {COMPILER_PACKAGE} {}",
        versions.source, versions.compiler
    );
    let how = if entry.join(STAMP_FILE).is_file() {
        format!("reused the cached kernel in {}", entry.display())
    } else {
        eprintln!(
            "building the riscv64 guest kernel from {built_from} (about two minutes on two \
             cores; cached in {} afterwards)",
            entry.display()
        );
        let start = Instant::now();
        let progress = Task::start("riscv64 kernel");
        build_entry(&entry, &built_from, &progress)?;
        progress.clear();
        format!(
            "built in {:.0} s, cached in {}",
            start.elapsed().as_secs_f64(),
            entry.display()
        )
    };
    Ok(LinuxGuest {
        kernel: entry.join(KERNEL_FILE),
        initrd: entry.join(INITRD_FILE),
        kernel_name: format!("Linux 6.1 built from {SOURCE_PACKAGE} {}", versions.source),
        description: format!(
            "Linux guest: Image built from {built_from} (tinyconfig + xtask/linux/riscv64.config), \
             initramfs with a nolibc /init; {how}"
        ),
    })
}

/// The versions the build depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versions {
    pub source: String,
    pub compiler: String,
}

/// Checks every package of [`PACKAGES`] is installed; returns the versions
/// of the source and the compiler.
fn check_packages() -> Result<Versions> {
    let mut missing = Vec::new();
    let mut version = |package: &str| -> Result<Option<String>> {
        let v = installed_version(package)?;
        if v.is_none() {
            missing.push(package.to_string());
        }
        Ok(v)
    };
    let source = version(SOURCE_PACKAGE)?;
    let compiler = version(COMPILER_PACKAGE)?;
    for package in &PACKAGES[2..] {
        version(package)?;
    }
    ensure!(
        missing.is_empty(),
        "building the riscv64 Linux guest needs {} (not installed); install {} with \
         `apt-get install {}` (as root; `cargo xtask setup` does it)",
        missing.join(", "),
        if missing.len() == 1 { "it" } else { "them" },
        PACKAGES.join(" ")
    );
    ensure!(
        Path::new(SOURCE_TARBALL).is_file(),
        "{SOURCE_PACKAGE} is installed, but {SOURCE_TARBALL} is not there"
    );
    match (source, compiler) {
        (Some(source), Some(compiler)) => Ok(Versions { source, compiler }),
        _ => unreachable!("a missing package was reported above"),
    }
}

/// The installed version of `package`, or `None` if it is not installed.
fn installed_version(package: &str) -> Result<Option<String>> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${db:Status-Abbrev}${Version}", package])
        .stdin(Stdio::null())
        .output()
        .context("cannot run dpkg-query (Debian's package tool)")?;
    Ok(parse_status(&String::from_utf8_lossy(&out.stdout)))
}

/// The version in `dpkg-query -f '${db:Status-Abbrev}${Version}'` output,
/// if the status says installed (`ii `).
fn parse_status(text: &str) -> Option<String> {
    let version = text.strip_prefix("ii ")?.trim();
    (!version.is_empty()).then(|| version.to_string())
}

/// The cache key: a hash of everything the build depends on.
fn cache_key(versions: &Versions) -> String {
    let t = &TOOLCHAIN;
    let recipe = format!(
        "{RECIPE_VERSION} {} {} {} {:?}",
        t.arch,
        t.cross_compile,
        t.image_target,
        kbuild::PINNED_ENV
    );
    let parts: [&[u8]; 5] = [
        recipe.as_bytes(),
        FRAGMENT.as_bytes(),
        INIT_SOURCE.as_bytes(),
        versions.source.as_bytes(),
        versions.compiler.as_bytes(),
    ];
    format!("{:016x}", fnv1a(&parts))
}

/// FNV-1a (64-bit) over `parts`, each preceded by its length so that
/// moving bytes from one part to the next changes the hash. Not a
/// cryptographic hash: it only tells cache entries apart.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut hash = OFFSET;
    for part in parts {
        for &b in (part.len() as u64).to_le_bytes().iter().chain(*part) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

/// `$XDG_CACHE_HOME/arceos-guestaspace/linux-riscv64`, or the same under
/// `$HOME/.cache`.
fn cache_root() -> Result<PathBuf> {
    let xdg = std::env::var_os("XDG_CACHE_HOME").filter(|d| Path::new(d).is_absolute());
    let base = match (xdg, std::env::var_os("HOME")) {
        (Some(dir), _) => PathBuf::from(dir),
        (None, Some(home)) if !home.is_empty() => PathBuf::from(home).join(".cache"),
        _ => bail!("neither XDG_CACHE_HOME nor HOME is set: nowhere to cache the kernel"),
    };
    Ok(base.join("arceos-guestaspace").join("linux-riscv64"))
}

/// Builds the kernel and initramfs into a scratch directory beside
/// `entry` and renames it to `entry` once complete.
fn build_entry(entry: &Path, built_from: &str, progress: &Task) -> Result<()> {
    let scratch = entry.with_extension(format!("building-{}", std::process::id()));
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)
            .with_context(|| format!("cannot remove {}", scratch.display()))?;
    }
    let result = build_into(&scratch, built_from, progress).and_then(|()| {
        // Another run may have finished the same entry first; either is
        // the same build.
        if entry.join(STAMP_FILE).is_file() {
            return Ok(());
        }
        if entry.exists() {
            std::fs::remove_dir_all(entry)
                .with_context(|| format!("cannot remove the half entry {}", entry.display()))?;
        }
        crate::fsio::replace(&scratch.join("entry"), entry)
    });
    // The source and build trees (about 1.7 GB) go whatever happened,
    // unless the build failed: then its logs are worth keeping.
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    result
}

/// Unpacks the source into `scratch`, builds, and leaves the cache entry's
/// files in `scratch/entry`.
fn build_into(scratch: &Path, built_from: &str, progress: &Task) -> Result<()> {
    let source = kbuild::unpack(Path::new(SOURCE_TARBALL), &scratch.join("src"), progress)?;
    let tree = Tree {
        toolchain: &TOOLCHAIN,
        source,
        build: scratch.join("build"),
        logs: scratch.join("logs"),
        progress,
    };
    let inputs = scratch.join("inputs");
    std::fs::create_dir_all(&inputs)
        .with_context(|| format!("cannot create {}", inputs.display()))?;
    let fragment = inputs.join("riscv64.config");
    let init_c = inputs.join("init.c");
    std::fs::write(&fragment, FRAGMENT)?;
    std::fs::write(&init_c, INIT_SOURCE)?;

    tree.configure(&fragment)?;
    let image = tree.build_image()?;
    let init = scratch.join("init");
    tree.build_init(&init_c, &init)?;

    let out = scratch.join("entry");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    std::fs::copy(&image, out.join(KERNEL_FILE))
        .with_context(|| format!("cannot copy {}", image.display()))?;
    std::fs::copy(tree.build.join(".config"), out.join(CONFIG_FILE))
        .context("cannot copy the kernel's .config")?;
    let initrd = initramfs::with_init(&crate::fsio::read(&init)?)?;
    std::fs::write(out.join(INITRD_FILE), initrd)?;
    std::fs::write(out.join(STAMP_FILE), format!("{built_from}\n"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_installed_package_has_a_version() {
        assert_eq!(parse_status("ii 6.1.192-2"), Some("6.1.192-2".into()));
        assert_eq!(parse_status("un "), None);
        assert_eq!(parse_status("rc 6.1.192-2"), None);
        assert_eq!(parse_status(""), None);
    }

    #[test]
    fn the_key_changes_with_every_input() {
        let v = Versions {
            source: "6.1.192-2".into(),
            compiler: "4:12.2.0-5".into(),
        };
        let key = cache_key(&v);
        assert_eq!(key.len(), 16);
        assert_eq!(key, cache_key(&v.clone()), "the same inputs, the same key");
        let newer = Versions {
            source: "6.1.193-1".into(),
            ..v.clone()
        };
        assert_ne!(cache_key(&newer), key);
        assert_ne!(fnv1a(&[b"ab", b"c"]), fnv1a(&[b"a", b"bc"]));
        // The reference value of FNV-1a 64 for "a" (no length prefix).
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        h ^= u64::from(b'a');
        h = h.wrapping_mul(0x0100_0000_01b3);
        assert_eq!(h, 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn the_cache_lives_under_xdg_or_home() {
        let root = cache_root().unwrap();
        assert!(
            root.ends_with("arceos-guestaspace/linux-riscv64"),
            "{root:?}"
        );
    }
}
