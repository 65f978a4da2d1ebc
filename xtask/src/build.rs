//! Builds the ArceOS applications with cargo: each in its own target
//! directory with its own `AX_CONFIG_PATH`, so the guest's and the
//! hypervisor's configurations never invalidate each other's builds.
//! Cargo's output is either the user's to watch (its own progress) or
//! captured, and then a spinner on a terminal names what is built, for
//! how long, and the crate cargo is at.

use crate::arch::{App, ArchSpec};
use crate::paths::ArchPaths;
use crate::progress::{self, Task};
use anyhow::{Context, Result, bail};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where cargo's progress messages go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CargoOutput {
    /// Shown to the user as cargo prints them.
    Live,
    /// Kept and returned (for checks on what cargo did).
    Captured,
}

/// Builds `app` for `spec` into `target_dir`, with `env` set for the
/// build; returns what cargo printed on stderr if `output` is
/// [`CargoOutput::Captured`] (else nothing).
pub fn build_app(
    spec: &ArchSpec,
    paths: &ArchPaths,
    app: &App,
    target_dir: &Path,
    env: &[(&str, &str)],
    output: CargoOutput,
) -> Result<String> {
    let mut cmd = Command::new(cargo_binary());
    cmd.envs(arceos_env(spec, paths, app)?);
    cmd.current_dir(&paths.repo)
        .args([
            "build",
            "--package",
            app.package,
            "--release",
            "--target",
            spec.triple,
            "--target-dir",
        ])
        .arg(target_dir)
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    let (status, log) = match output {
        CargoOutput::Live => (cmd.status(), String::new()),
        CargoOutput::Captured => {
            let task = Task::start(&format!("building {} for {}", app.package, spec.arch));
            match progress::run_captured(cmd, &task) {
                Ok((status, log)) => (Ok(status), log),
                Err(e) => (Err(e), String::new()),
            }
        }
    };
    let status = status.context("cannot run cargo")?;
    if !status.success() {
        if output == CargoOutput::Captured {
            eprint!("{log}");
        }
        bail!(
            "building {} for {} failed ({status})",
            app.package,
            spec.arch
        );
    }
    Ok(log)
}

/// The environment an ArceOS application `app` is built (and linted) with
/// for `spec`: its configuration file, and what the ArceOS banner reports
/// (`target`, `build_mode`, `log_level`; AX_LOG is also the runtime log
/// filter, and "off" is what an unset one means). Empty for a crate that
/// is not an ArceOS application.
pub fn arceos_env(
    spec: &ArchSpec,
    paths: &ArchPaths,
    app: &App,
) -> Result<Vec<(&'static str, OsString)>> {
    let Some(file) = app.config else {
        return Ok(Vec::new());
    };
    let config = if app.package == spec.hypervisor.package {
        paths.hv_config(file)?
    } else {
        paths.config(file)
    };
    if !config.is_file() {
        bail!("the ArceOS configuration {} is missing", config.display());
    }
    Ok(vec![
        ("AX_CONFIG_PATH", config.into()),
        ("AX_TARGET", spec.triple.into()),
        ("AX_MODE", "release".into()),
        ("AX_LOG", "off".into()),
    ])
}

/// The cargo this xtask was started by, so the same toolchain builds
/// everything.
pub fn cargo_binary() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}
