//! Where things live: the repository, the build output directories of each
//! architecture, and the images xtask writes.

use crate::arch::{ArchSpec, KernelImage};
use anyhow::{Context, Result};
use guestaspace_core::scenario::Scenario;
use std::path::{Path, PathBuf};

/// The repository root (the parent of `xtask/`).
pub fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// `$CARGO_TARGET_DIR` if set (relative to the current directory, as cargo
/// reads it), else `<repo>/target`.
pub fn target_base(repo: &Path) -> Result<PathBuf> {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                Ok(dir)
            } else {
                let cwd = std::env::current_dir().context("cannot read the current directory")?;
                Ok(cwd.join(dir))
            }
        }
        _ => Ok(repo.join("target")),
    }
}

/// Every path of one architecture's build.
#[derive(Clone, Debug)]
pub struct ArchPaths {
    pub repo: PathBuf,
    /// Cargo target directory of the guest (its own, because its ArceOS
    /// configuration differs from the hypervisor's).
    pub guest_target: PathBuf,
    pub hv_target: PathBuf,
    pub guest_elf: PathBuf,
    pub guest_flat: PathBuf,
    pub hv_elf: PathBuf,
    pub hv_flat: PathBuf,
    pub disk: PathBuf,
    pub pflash: PathBuf,
    /// Scratch directory of the end-to-end tests' own images.
    pub e2e: PathBuf,
    /// The host CPUs the hypervisor is built for (its ArceOS `cpu-num`,
    /// QEMU's `-smp`): one per vCPU.
    pub host_cpus: usize,
}

impl ArchPaths {
    pub fn new(repo: &Path, base: &Path, spec: &ArchSpec) -> ArchPaths {
        let arch = spec.arch.name();
        let guest_target = base.join(format!("guest-{arch}"));
        let hv_target = base.join(format!("hv-{arch}"));
        let release =
            |dir: &Path, package: &str| dir.join(spec.triple).join("release").join(package);
        ArchPaths {
            repo: repo.to_path_buf(),
            guest_elf: release(&guest_target, spec.guest.binary),
            guest_flat: guest_target.join(format!("{}.bin", spec.guest.binary)),
            hv_elf: release(&hv_target, spec.hypervisor.binary),
            hv_flat: hv_target.join(format!("{}.bin", spec.hypervisor.binary)),
            disk: base.join(format!("{arch}-disk.img")),
            pflash: base.join(format!("{arch}-pflash.img")),
            e2e: base.join(format!("e2e-{arch}")),
            guest_target,
            hv_target,
            host_cpus: 1,
        }
    }

    /// These paths for a hypervisor built for `cpus` host CPUs: each count
    /// has its own target directory (and ArceOS configuration,
    /// [`ArchPaths::hv_config`]), so switching between them rebuilds
    /// nothing.
    pub fn with_host_cpus(mut self, spec: &ArchSpec, cpus: usize) -> ArchPaths {
        if cpus <= 1 {
            return self;
        }
        let target = self
            .hv_target
            .with_file_name(format!("hv-{}-smp{cpus}", spec.arch.name()));
        self.hv_elf = target
            .join(spec.triple)
            .join("release")
            .join(spec.hypervisor.binary);
        self.hv_flat = target.join(format!("{}.bin", spec.hypervisor.binary));
        self.hv_target = target;
        self.host_cpus = cpus;
        self
    }

    /// The hypervisor's ArceOS configuration for [`ArchPaths::host_cpus`]
    /// CPUs: the repository's file with its `cpu-num` set, written into the
    /// build's own directory.
    pub fn hv_config(&self, file: &str) -> Result<PathBuf> {
        let base = self.config(file);
        if self.host_cpus <= 1 {
            return Ok(base);
        }
        let text = std::fs::read_to_string(&base)
            .with_context(|| format!("cannot read {}", base.display()))?;
        let mut found = false;
        let text: String = text
            .lines()
            .map(|line| {
                if line.trim_start().starts_with("cpu-num") {
                    found = true;
                    format!("cpu-num = {}", self.host_cpus)
                } else {
                    line.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        if !found {
            anyhow::bail!("{} has no `cpu-num` to set", base.display());
        }
        std::fs::create_dir_all(&self.hv_target)?;
        let out = self.hv_target.join("axconfig.toml");
        crate::fsio::write_if_different(&out, (text + "\n").as_bytes())?;
        Ok(out)
    }

    /// The paths of `spec` in this checkout.
    pub fn for_spec(spec: &ArchSpec) -> Result<ArchPaths> {
        let repo = repo_root();
        let base = target_base(&repo)?;
        Ok(ArchPaths::new(&repo, &base, spec))
    }

    pub fn config(&self, file: &str) -> PathBuf {
        self.repo.join("configs").join(file)
    }

    /// The file QEMU boots as `-kernel`.
    pub fn kernel(&self, spec: &ArchSpec) -> &Path {
        match spec.kernel {
            KernelImage::Flat { .. } => &self.hv_flat,
            KernelImage::Elf => &self.hv_elf,
        }
    }

    /// Target directory, ELF and flat image of the guest built for
    /// `scenario`, for architectures whose scenario is built into the guest
    /// (a directory of its own, so the normal build is never redone).
    pub fn scenario_guest(
        &self,
        spec: &ArchSpec,
        scenario: Scenario,
    ) -> (PathBuf, PathBuf, PathBuf) {
        if scenario == Scenario::Normal {
            return (
                self.guest_target.clone(),
                self.guest_elf.clone(),
                self.guest_flat.clone(),
            );
        }
        let mut dir = self.guest_target.clone().into_os_string();
        dir.push(format!("-{}", scenario.name()));
        let dir = PathBuf::from(dir);
        let elf = dir
            .join(spec.triple)
            .join("release")
            .join(spec.guest.binary);
        let flat = dir.join(format!("{}.bin", spec.guest.binary));
        (dir, elf, flat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_app_has_its_own_target_dir_and_the_documented_outputs() {
        let spec = crate::arch::Arch::Riscv64.spec().unwrap();
        let p = ArchPaths::new(Path::new("/r"), Path::new("/r/target"), spec);
        assert_eq!(
            p.guest_elf,
            Path::new("/r/target/guest-riscv64/riscv64gc-unknown-none-elf/release/gkernel")
        );
        assert_eq!(
            p.hv_elf,
            Path::new("/r/target/hv-riscv64/riscv64gc-unknown-none-elf/release/arceos-guestaspace")
        );
        assert_eq!(
            p.hv_flat,
            Path::new("/r/target/hv-riscv64/arceos-guestaspace.bin")
        );
        assert_eq!(p.disk, Path::new("/r/target/riscv64-disk.img"));
        assert_eq!(p.pflash, Path::new("/r/target/riscv64-pflash.img"));
        assert_eq!(
            p.config("riscv64-guest.toml"),
            Path::new("/r/configs/riscv64-guest.toml")
        );
    }

    #[test]
    fn repo_root_holds_the_workspace_manifest() {
        assert!(repo_root().join("xtask").join("Cargo.toml").is_file());
    }
}
