//! `cargo xtask lint`: the tree holds its own standards. Runs `cargo fmt
//! --check`, clippy with `-D warnings` on the host crates, and clippy with
//! `-D warnings` on every bare-metal crate for each architecture, with the
//! same environment, target triple and target directory as the build
//! (`build.rs`, `prepare.rs`, the bench's floor kernel), so a warm build
//! makes a warm lint. Every step runs; the command fails if any did.

use crate::arch::{App, Arch, ArchSpec};
use crate::bench::{floor_app, floor_target};
use crate::build::{arceos_env, cargo_binary};
use crate::paths::ArchPaths;
use crate::prepare::SCENARIO_VARIABLE;
use anyhow::{Context, Result, bail};
use guestaspace_core::scenario::Scenario;
use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};

/// The platform crate the aarch64 hypervisor and floor link; a workspace
/// member that only ever builds for aarch64.
const AARCH64_PLATFORM: &str = "axplat-aarch64-qemu-virt-el2";

/// One cargo invocation of the lint.
struct Step {
    /// What the summary calls it.
    name: String,
    /// Arguments after `cargo`.
    args: Vec<OsString>,
    /// Extra environment variables.
    env: Vec<(OsString, OsString)>,
}

/// Runs every lint step; fails, after running them all, if any failed.
pub fn lint() -> Result<()> {
    let mut steps = vec![
        Step {
            name: "cargo fmt --all --check".into(),
            args: words(&["fmt", "--all", "--check"]),
            env: Vec::new(),
        },
        Step {
            name: "clippy (host: core, xtask)".into(),
            args: words(&["clippy", "--all-targets", "--", "-D", "warnings"]),
            env: Vec::new(),
        },
    ];
    for arch in Arch::implemented() {
        steps.extend(bare_metal_steps(arch.spec()?)?);
    }
    let mut failed = Vec::new();
    for step in &steps {
        eprintln!("==> {}", step.name);
        if !run(step)? {
            failed.push(step.name.as_str());
        }
    }
    if failed.is_empty() {
        eprintln!("==> lint: {} steps clean", steps.len());
        Ok(())
    } else {
        bail!("lint failed in: {}", failed.join("; "))
    }
}

/// Clippy for the hypervisor, the guest and the floor kernel of `spec`.
fn bare_metal_steps(spec: &'static ArchSpec) -> Result<Vec<Step>> {
    let paths = ArchPaths::for_spec(spec)?;
    let mut hypervisor = vec![spec.hypervisor.package];
    if spec.arch == Arch::Aarch64 {
        hypervisor.push(AARCH64_PLATFORM);
    }
    // The guest is built with the scenario variable where the scenario is
    // built in; the normal build's value keeps its build script's output.
    let guest_env: &[(&str, &str)] = if spec.scenario_in_image {
        &[(SCENARIO_VARIABLE, Scenario::Normal.name())]
    } else {
        &[]
    };
    // The floor kernel, as `cargo xtask bench` builds it.
    let floor = floor_app(spec);
    let floor_target = floor_target(spec, &paths);
    Ok(vec![
        clippy_step(
            spec,
            &paths,
            &spec.hypervisor,
            &hypervisor,
            &paths.hv_target,
            &[],
        )?,
        clippy_step(
            spec,
            &paths,
            &spec.guest,
            &[spec.guest.package],
            &paths.guest_target,
            guest_env,
        )?,
        clippy_step(spec, &paths, &floor, &[floor.package], &floor_target, &[])?,
    ])
}

/// `cargo clippy` for `packages` on the target of `spec`, with the
/// environment `build.rs` gives `app`.
fn clippy_step(
    spec: &ArchSpec,
    paths: &ArchPaths,
    app: &App,
    packages: &[&str],
    target_dir: &Path,
    extra_env: &[(&str, &str)],
) -> Result<Step> {
    let mut env: Vec<(OsString, OsString)> = arceos_env(spec, paths, app)?
        .into_iter()
        .map(|(k, v)| (k.into(), v))
        .collect();
    env.extend(extra_env.iter().map(|&(k, v)| (k.into(), v.into())));
    let mut args = words(&["clippy"]);
    for package in packages {
        args.extend(words(&["--package", package]));
    }
    args.extend(words(&[
        "--release",
        "--target",
        spec.triple,
        "--target-dir",
    ]));
    args.push(target_dir.into());
    args.extend(words(&["--", "-D", "warnings"]));
    Ok(Step {
        name: format!("clippy {} ({})", packages.join(", "), spec.arch),
        args,
        env,
    })
}

/// Runs one step from the repository root; whether it passed.
fn run(step: &Step) -> Result<bool> {
    let status = Command::new(cargo_binary())
        .current_dir(crate::paths::repo_root())
        .args(&step.args)
        .envs(step.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("cannot run cargo for {}", step.name))?;
    Ok(status.success())
}

fn words(words: &[&str]) -> Vec<OsString> {
    words.iter().map(OsString::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg_line(step: &Step) -> String {
        step.args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn bare_metal_steps_reuse_the_build_directories_and_environment() {
        let spec = Arch::X86_64.spec().unwrap();
        let paths = ArchPaths::for_spec(spec).unwrap();
        let steps = bare_metal_steps(spec).unwrap();
        assert_eq!(steps.len(), 3, "hypervisor, guest, floor");
        let hv = arg_line(&steps[0]);
        assert!(hv.starts_with("clippy --package arceos-guestaspace --release --target x86_64-unknown-none --target-dir "));
        assert!(hv.contains(&paths.hv_target.display().to_string()));
        assert!(hv.ends_with("-- -D warnings"));
        assert!(steps[0].env.iter().any(|(k, v)| k == "AX_CONFIG_PATH"
            && v.to_string_lossy().ends_with("x86_64-hypervisor.toml")));
        let guest = &steps[1];
        assert!(arg_line(guest).contains(&paths.guest_target.display().to_string()));
        assert!(
            guest
                .env
                .iter()
                .any(|(k, v)| k == SCENARIO_VARIABLE && v == "normal")
        );
        assert!(arg_line(&steps[2]).contains("floor-x86_64"));
    }

    #[test]
    fn the_aarch64_platform_crate_is_linted_with_its_hypervisor() {
        let steps = bare_metal_steps(Arch::Aarch64.spec().unwrap()).unwrap();
        assert!(arg_line(&steps[0]).contains(&format!("--package {AARCH64_PLATFORM}")));
    }
}
