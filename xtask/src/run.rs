//! The `build` and `run` commands: the build step, then (for `run`) one VM
//! whose output the user watches, judged by QEMU's exit status.

use crate::arch::{Arch, VmFiles};
use crate::build::CargoOutput;
use crate::paths::ArchPaths;
use crate::prepare::{GuestSource, PrepareOptions, prepare};
use crate::qemu::check_qemu;
use crate::vm::{RunSpec, run_vm};
use anyhow::Result;
use guestaspace_core::scenario::Scenario;
use guestaspace_core::vmconfig::VmConfig;
use std::time::Duration;

pub struct RunOptions {
    pub arch: Arch,
    pub guest: GuestSource,
    pub scenario: Scenario,
    pub timeout: Duration,
    pub verbose: bool,
    /// The VM's settings for `/etc/vm.toml` (its kernel and initrd are
    /// `guest` and `initrd`).
    pub vm: VmConfig,
    /// The guest's initramfs, a host file for the disk.
    pub initrd: Option<std::path::PathBuf>,
}

/// `cargo xtask build`: everything `run` needs, without running it.
pub fn build_only(arch: Arch) -> Result<()> {
    let spec = arch.spec()?;
    let paths = ArchPaths::for_spec(spec)?;
    let options = PrepareOptions {
        guest: GuestSource::Bundled,
        scenario: Scenario::Normal,
        cargo: CargoOutput::Live,
        vm: VmConfig::DEFAULT,
        initrd: None,
    };
    prepare(spec, &paths, &options)?;
    Ok(())
}

/// `cargo xtask run`.
pub fn run(options: &RunOptions) -> Result<()> {
    let spec = options.arch.spec()?;
    check_qemu(&spec.qemu)?;
    let cpus = options.vm.cpus as usize;
    let paths = ArchPaths::for_spec(spec)?.with_host_cpus(spec, cpus);
    let smp = cpus.to_string();
    let smp_args: &[&str] = if cpus > 1 { &["-smp", &smp] } else { &[] };
    let prepare_options = PrepareOptions {
        guest: options.guest.clone(),
        scenario: options.scenario,
        cargo: CargoOutput::Live,
        vm: options.vm.clone(),
        initrd: options.initrd.clone(),
    };
    prepare(spec, &paths, &prepare_options)?;
    let run = RunSpec {
        spec,
        files: VmFiles {
            kernel: paths.kernel(spec),
            disk: &paths.disk,
            pflash: &paths.pflash,
        },
        timeout: options.timeout,
        echo: true,
        show_command: options.verbose,
        extra_args: smp_args,
        // The user types to the guest's serial console.
        input: crate::vm::Input::Inherit,
    };
    let output = run_vm(&run)?;
    output.check()
}

/// Writes the device tree the hypervisor generates for a riscv64 guest with
/// `mem` bytes of RAM (the default size if `None`) to `path`: the same
/// function, from the same layout, as in the hypervisor.
pub fn write_dtb(arch: Arch, mem: Option<u64>, path: &std::path::Path) -> Result<()> {
    use guestaspace_core::arch::riscv64::dtb;
    use guestaspace_core::machine::DEFAULT_RAM_SIZE;
    anyhow::ensure!(
        arch == Arch::Riscv64,
        "only the riscv64 guest gets a device tree so far"
    );
    let board = arch.spec()?.board;
    let layout = board
        .layout(mem.unwrap_or(DEFAULT_RAM_SIZE))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let blob = dtb::riscv64_dtb(board, &layout.as_ref(), &dtb::DtbConfig::QEMU_VIRT)
        .map_err(|e| anyhow::anyhow!("the device tree: {e}"))?;
    std::fs::write(path, &blob)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    eprintln!(
        "device tree ({} bytes) written to {}",
        blob.len(),
        path.display()
    );
    Ok(())
}
