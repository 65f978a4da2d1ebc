//! `cargo xtask test`: the end-to-end cases, each a real QEMU run (or a real
//! rebuild) with assertions on what happened. Prints `PASS name (1.23 s)`
//! or `FAIL name: reason` per case and `N passed, M failed` at the end.

mod cases;

use crate::arch::{Arch, ArchSpec, VmFiles};
use crate::build::CargoOutput;
use crate::disk::write_fat_disk;
use crate::paths::ArchPaths;
use crate::pflash::write_pflash;
use crate::prepare::{GuestSource, PrepareOptions, Prepared, build_guest, guest_disk, prepare};
use crate::qemu::check_qemu;
use crate::vm::{Input, RunOutput, RunSpec, run_vm};
use anyhow::{Result, bail};
use guestaspace_core::scenario::Scenario;
use guestaspace_core::vmconfig::VmConfig;
use std::path::Path;
use std::time::{Duration, Instant};

/// Timeout of the cases that expect the VM to end by itself.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// One end-to-end case.
pub struct Case {
    pub name: &'static str,
    pub run: fn(&Ctx) -> Result<()>,
}

/// What the cases of one architecture share: the build, done once.
pub struct Ctx {
    pub spec: &'static ArchSpec,
    pub paths: ArchPaths,
    pub prepared: Prepared,
    pub verbose: bool,
}

impl Ctx {
    /// Boots the hypervisor with `disk` and a pflash asking for `scenario`.
    pub fn boot(&self, disk: &Path, scenario: Scenario, timeout: Duration) -> Result<RunOutput> {
        self.boot_with_args(disk, scenario, timeout, &[])
    }

    /// [`Ctx::boot`] with `extra_args` appended to QEMU's command line.
    pub fn boot_with_args(
        &self,
        disk: &Path,
        scenario: Scenario,
        timeout: Duration,
        extra_args: &[&str],
    ) -> Result<RunOutput> {
        self.boot_with_input(disk, scenario, timeout, extra_args, Input::Null)
    }

    /// [`Ctx::boot_with_args`] with `input` typed on the guest's serial line.
    pub fn boot_with_input(
        &self,
        disk: &Path,
        scenario: Scenario,
        timeout: Duration,
        extra_args: &[&str],
        input: Input,
    ) -> Result<RunOutput> {
        if self.spec.scenario_in_image && scenario != Scenario::Normal {
            bail!(
                "on {} the scenario is built into the guest: use boot_scenario",
                self.spec.arch
            );
        }
        let pflash = self
            .paths
            .e2e
            .join(format!("pflash-{}.img", scenario.name()));
        if self.spec.pflash_size > 0 {
            write_pflash(&pflash, scenario, self.spec.pflash_size)?;
        }
        let smp = self.paths.host_cpus.to_string();
        let mut args: Vec<&str> = extra_args.to_vec();
        if self.paths.host_cpus > 1 {
            args.extend(["-smp", &smp]);
        }
        let run = RunSpec {
            spec: self.spec,
            files: VmFiles {
                kernel: self.paths.kernel(self.spec),
                disk,
                pflash: &pflash,
            },
            timeout,
            echo: self.verbose,
            show_command: self.verbose,
            extra_args: &args,
            input,
        };
        run_vm(&run)
    }

    /// This context with the hypervisor built for `cpus` host CPUs (one
    /// per vCPU; built here unless it is up to date), whose boots run
    /// QEMU with `-smp cpus`.
    pub fn with_host_cpus(&self, cpus: usize) -> Result<Ctx> {
        let cargo = if self.verbose {
            CargoOutput::Live
        } else {
            CargoOutput::Captured
        };
        let paths = crate::prepare::hypervisor_for_cpus(self.spec, &self.paths, cpus, cargo)?;
        Ok(Ctx {
            spec: self.spec,
            paths,
            prepared: Prepared {
                guest: self.prepared.guest.clone(),
                cargo_log: String::new(),
            },
            verbose: self.verbose,
        })
    }

    /// Boots the bundled guest playing `scenario`, with the default timeout.
    pub fn boot_scenario(&self, scenario: Scenario) -> Result<RunOutput> {
        self.boot_scenario_within(scenario, DEFAULT_TIMEOUT)
    }

    /// Boots the bundled guest playing `scenario`. Where the scenario is
    /// built into the guest, that guest is built and put on a disk of its
    /// own first.
    pub fn boot_scenario_within(&self, scenario: Scenario, timeout: Duration) -> Result<RunOutput> {
        self.boot_scenario_with(scenario, &VmConfig::DEFAULT, timeout)
    }

    /// [`Ctx::boot_scenario_within`] with the VM settings `vm` on the
    /// guest's disk.
    pub fn boot_scenario_with(
        &self,
        scenario: Scenario,
        vm: &VmConfig,
        timeout: Duration,
    ) -> Result<RunOutput> {
        if *vm == VmConfig::DEFAULT
            && (!self.spec.scenario_in_image || scenario == Scenario::Normal)
        {
            return self.boot(&self.paths.disk, scenario, timeout);
        }
        let (disk, pflash_scenario) = self.scenario_disk(scenario, vm)?;
        self.boot(&disk, pflash_scenario, timeout)
    }

    /// A disk whose guest plays `scenario` with settings `vm`, and the
    /// scenario the pflash image must then carry (the scenario itself where
    /// it travels in pflash, `Normal` where it is built into the guest).
    pub fn scenario_disk(
        &self,
        scenario: Scenario,
        vm: &VmConfig,
    ) -> Result<(std::path::PathBuf, Scenario)> {
        let (guest, pflash_scenario) = if self.spec.scenario_in_image {
            let mut log = String::new();
            let guest = build_guest(
                self.spec,
                &self.paths,
                scenario,
                CargoOutput::Captured,
                &mut log,
            )?;
            (guest, Scenario::Normal)
        } else {
            (self.prepared.guest.clone(), scenario)
        };
        let disk = self
            .paths
            .e2e
            .join(format!("disk-{}-settings.img", scenario.name()));
        write_fat_disk(&disk, &guest_disk(&guest, vm, None))?;
        Ok((disk, pflash_scenario))
    }

    /// Boots the flat guest image `guest` with settings `vm` from a disk
    /// of its own, named after `name`, with a normal pflash.
    pub fn boot_image(
        &self,
        name: &str,
        guest: &[u8],
        vm: &VmConfig,
        timeout: Duration,
    ) -> Result<RunOutput> {
        let disk = self.paths.e2e.join(format!("disk-{name}.img"));
        write_fat_disk(&disk, &guest_disk(guest, vm, None))?;
        self.boot(&disk, Scenario::Normal, timeout)
    }
}

/// Runs every case of `arch`, or of every implemented architecture.
pub fn run_all(arch: Option<Arch>, only: &[String], verbose: bool) -> Result<()> {
    let arches = match arch {
        Some(arch) => vec![arch],
        None => Arch::implemented(),
    };
    let specs = arches
        .into_iter()
        .map(Arch::spec)
        .collect::<Result<Vec<_>>>()?;
    let mut tally = Tally::default();
    for spec in specs {
        let cases: Vec<Case> = cases::for_arch(spec.arch)
            .into_iter()
            .filter(|c| only.is_empty() || only.iter().any(|name| name == c.name))
            .collect();
        if cases.is_empty() {
            continue;
        }
        println!("== {} ==", spec.arch);
        run_arch(spec, cases, verbose, &mut tally);
    }
    if tally.passed + tally.failed == 0 {
        bail!("no end-to-end case is named {}", only.join(" or "));
    }
    println!("{} passed, {} failed", tally.passed, tally.failed);
    if tally.failed > 0 {
        bail!("{} end-to-end test case(s) failed", tally.failed);
    }
    Ok(())
}

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
}

fn run_arch(spec: &'static ArchSpec, cases: Vec<Case>, verbose: bool, tally: &mut Tally) {
    let ctx = match setup(spec, verbose) {
        Ok(ctx) => ctx,
        Err(e) => {
            for case in cases {
                println!("FAIL {}: setup failed: {e:#}", case.name);
                tally.failed += 1;
            }
            return;
        }
    };
    for case in cases {
        let start = Instant::now();
        match (case.run)(&ctx) {
            Ok(()) => {
                println!(
                    "PASS {} ({:.2} s)",
                    case.name,
                    start.elapsed().as_secs_f64()
                );
                tally.passed += 1;
            }
            Err(e) => {
                println!("FAIL {}: {e:#}", case.name);
                tally.failed += 1;
            }
        }
    }
}

/// Checks QEMU and builds everything once for the cases.
fn setup(spec: &'static ArchSpec, verbose: bool) -> Result<Ctx> {
    check_qemu(&spec.qemu)?;
    let paths = ArchPaths::for_spec(spec)?;
    let options = PrepareOptions {
        guest: GuestSource::Bundled,
        scenario: Scenario::Normal,
        cargo: CargoOutput::Live,
        vm: VmConfig::DEFAULT,
        initrd: None,
    };
    let prepared = prepare(spec, &paths, &options)?;
    Ok(Ctx {
        spec,
        paths,
        prepared,
        verbose,
    })
}
