//! Guests nobody here wrote: the ArceOS tutorial applications published on
//! crates.io (`arceos-helloworld`, `arceos-fairsched`), built unmodified at
//! pinned versions.
//!
//! cargo downloads the published source into its registry cache (a
//! throwaway manifest that depends on the pinned version, then `cargo
//! fetch`); the source is copied out of the cache as it is, the
//! application's own `configs/<arch>.toml` is installed as its
//! `.axconfig.toml` (what the application's own xtask does), and it is
//! built with its own `Cargo.lock` (`--locked`) into a target directory of
//! its own. Nothing of the source is changed. A second build with nothing
//! changed is a no-op for cargo.

use crate::arch::ArchSpec;
use crate::paths::target_base;
use crate::progress::{self, Task};
use anyhow::{Context, Result, bail, ensure};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One crates.io application at a pinned version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TutorialApp {
    /// The crate's name on crates.io (also its binary's name).
    pub name: &'static str,
    /// The exact version built.
    pub version: &'static str,
    /// Cargo features its own build command turns on.
    pub features: &'static [&'static str],
}

impl TutorialApp {
    /// The name without `arceos-` (`--tutorial NAME`, and its shipped VM
    /// config `configs/vms/NAME.toml`).
    pub fn short_name(&self) -> &'static str {
        self.name.strip_prefix("arceos-").unwrap_or(self.name)
    }
}

/// `arceos-helloworld`: prints a line and powers off.
pub const HELLOWORLD: TutorialApp = TutorialApp {
    name: "arceos-helloworld",
    version: "0.4.11",
    features: &[],
};

/// `arceos-fairsched`: two threads that only finish if the timer preempts
/// them.
pub const FAIRSCHED: TutorialApp = TutorialApp {
    name: "arceos-fairsched",
    version: "0.4.6",
    // Its own xtask builds with `--features axstd` (default features are
    // empty, for `cargo publish` on the host).
    features: &["axstd"],
};

/// Every pinned application (fetched together).
pub const ALL: [TutorialApp; 2] = [HELLOWORLD, FAIRSCHED];

impl TutorialApp {
    /// `name-version`, the registry's directory name.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }
}

/// Builds `app` for `spec` (fetching it first if needed) and returns the
/// path of its ELF.
pub fn build(app: TutorialApp, spec: &ArchSpec) -> Result<PathBuf> {
    let base = target_base(&crate::paths::repo_root())?.join("tutorial");
    let source = registry_source(app, &base)?;
    let work = base.join(format!("{}-{}", app.dir_name(), spec.arch));
    let copy = work.join("src");
    copy_tree(&source, &copy)?;
    let arch_config = copy.join("configs").join(format!("{}.toml", spec.arch));
    ensure!(
        arch_config.is_file(),
        "{} has no configs/{}.toml",
        app.dir_name(),
        spec.arch
    );
    let config = copy.join(".axconfig.toml");
    crate::fsio::write_if_different(&config, &crate::fsio::read(&arch_config)?)?;
    let target_dir = work.join("target");
    let mut cmd = Command::new("cargo");
    cmd.args(["build", "--release", "--locked", "--target", spec.triple]);
    if !app.features.is_empty() {
        cmd.arg("--features").arg(app.features.join(","));
    }
    cmd.current_dir(&copy)
        .arg("--target-dir")
        .arg(&target_dir)
        .env("AX_CONFIG_PATH", &config)
        // The application's own rust-toolchain.toml picks the toolchain;
        // do not let this xtask's cargo and rustc leak into its build.
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO_TARGET_DIR")
        .stdin(Stdio::null());
    // Its output is kept for a failure; a terminal shows a spinner.
    let task = Task::start(&format!("building {} for {}", app.dir_name(), spec.arch));
    let (status, output) = progress::run_captured(cmd, &task)
        .with_context(|| format!("cannot run cargo to build {}", app.dir_name()))?;
    task.clear();
    if !status.success() {
        bail!(
            "building {} for {} failed:\n{output}",
            app.dir_name(),
            spec.arch,
        );
    }
    let elf = target_dir.join(spec.triple).join("release").join(app.name);
    ensure!(
        elf.is_file(),
        "the build of {} made no {}",
        app.dir_name(),
        elf.display()
    );
    Ok(elf)
}

/// The unpacked registry source of `app`, downloaded by cargo if it is not
/// in the cache yet.
fn registry_source(app: TutorialApp, base: &Path) -> Result<PathBuf> {
    if let Some(dir) = find_in_registry(app)? {
        return Ok(dir);
    }
    let fetch = base.join("fetch");
    std::fs::create_dir_all(fetch.join("src"))
        .with_context(|| format!("cannot create {}", fetch.display()))?;
    let mut manifest = String::from(
        "# Written by cargo xtask: makes cargo download the pinned tutorial\n\
         # applications into its registry cache. Never built.\n\
         [package]\nname = \"tutorial-fetch\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
         [workspace]\n[dependencies]\n",
    );
    for a in ALL {
        manifest += &format!("{} = \"={}\"\n", a.name, a.version);
    }
    crate::fsio::write_if_different(&fetch.join("Cargo.toml"), manifest.as_bytes())?;
    crate::fsio::write_if_different(&fetch.join("src/lib.rs"), b"")?;
    let out = Command::new("cargo")
        .current_dir(&fetch)
        .arg("fetch")
        .stdin(Stdio::null())
        .output()
        .context("cannot run cargo fetch")?;
    if !out.status.success() {
        bail!(
            "cargo could not fetch {} from crates.io:\n{}",
            app.dir_name(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    find_in_registry(app)?.with_context(|| {
        format!(
            "cargo fetched {} but its source is not in the registry cache",
            app.dir_name()
        )
    })
}

/// `$CARGO_HOME/registry/src/<index>/<name>-<version>`, if unpacked.
fn find_in_registry(app: TutorialApp) -> Result<Option<PathBuf>> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let src = home.join("registry").join("src");
    let Ok(indexes) = std::fs::read_dir(&src) else {
        return Ok(None);
    };
    for index in indexes.flatten() {
        let dir = index.path().join(app.dir_name());
        // `.cargo-ok` is written once cargo has unpacked the whole crate.
        if dir.join(".cargo-ok").is_file() && dir.join("Cargo.toml").is_file() {
            return Ok(Some(dir));
        }
    }
    Ok(None)
}

/// Copies the tree at `from` to `to`, rewriting only files whose content
/// differs (so cargo's fingerprints stay valid on a second build).
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry?;
        let path = entry.path();
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&path, &dest)?;
        } else {
            crate::fsio::write_if_different(&dest, &crate::fsio::read(&path)?)?;
        }
    }
    Ok(())
}
