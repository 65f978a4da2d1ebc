//! `cargo xtask bench`: the figures of the edit-run loop, the VM-exit path
//! and guest memory, each measured side by side in one run, per
//! architecture:
//!
//! 1. edit-run loop: wall time of `cargo xtask run` with nothing changed
//!    and after touching one hypervisor source file, next to QEMU alone on
//!    the same artifacts;
//! 2. floor: QEMU time of the smallest ArceOS kernel for the same machine;
//! 3. VM exits: the bench guest's own counter over K null hypercalls and P
//!    first touches of fresh pages, normally and under `-icount shift=0`,
//!    where the counts are deterministic;
//! 4. guest memory: bytes mapped (2 MiB blocks and 4 KiB pages) by the
//!    end of a normal run;
//! 5. devices and guest boot (where the guest has emulated devices): the
//!    bench guest's emulated MMIO reads, UART accesses per character
//!    printed, and the unmodified `arceos-helloworld` booted bare and as
//!    the guest, with the hypervisor's own clock split;
//! 6. Linux (where it runs as a guest: Debian's arm64 kernel on aarch64,
//!    one built from Debian's source on riscv64), booted to its `/init` on
//!    bare QEMU and as the guest, with the stage-2 faults and mappings;
//! 7. with `--cold`, a cold build of the architecture.

mod guest_boot;
mod linux_boot;
mod measure;
mod report;
mod smp;

use crate::arch::ICOUNT;
use crate::arch::{App, Arch, ArchSpec, KernelImage, VmFiles};
use crate::build::{CargoOutput, build_app, cargo_binary};
use crate::fsio::write_if_different;
use crate::guest_image::hypervisor_flat;
use crate::paths::ArchPaths;
use crate::prepare::{GuestSource, PrepareOptions, build_guest, guest_disk, prepare};
use crate::qemu::check_qemu;
use crate::vm::{RunOutput, RunSpec, run_vm};
use crate::vm_report::{
    parse_bench, parse_bench_mmio, parse_clock, parse_exits, parse_mapped, parse_timer_latency,
};
use anyhow::{Context, Result, bail};
use guestaspace_core::scenario::Scenario;
use guestaspace_core::vmconfig::VmConfig;
use measure::{Summary, time_command};
use report::{ArchFigures, DeviceFigures, ExitFigures};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

pub struct BenchOptions {
    pub arches: Vec<Arch>,
    pub runs: usize,
    pub json: Option<PathBuf>,
    pub cold: bool,
}

/// Generous: a run under `-icount` is slower than a normal one.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// The hypervisor file the edit-run figure touches.
const TOUCHED: &str = "hypervisor/src/main.rs";

pub fn bench(options: &BenchOptions) -> Result<()> {
    let mut all = Vec::new();
    for &arch in &options.arches {
        let spec = arch.spec()?;
        eprintln!("== bench {arch} ==");
        let figures = bench_arch(spec, options).with_context(|| format!("bench of {arch}"))?;
        println!("{}", report::table(&figures, options.runs));
        all.push(figures);
    }
    if let Some(path) = &options.json {
        let json = report::json(&all, options.runs);
        std::fs::write(path, serde_json::to_string_pretty(&json)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("figures written to {}", path.display());
    }
    Ok(())
}

fn bench_arch(spec: &'static ArchSpec, options: &BenchOptions) -> Result<ArchFigures> {
    check_qemu(&spec.qemu)?;
    let paths = ArchPaths::for_spec(spec)?;
    let normal = PrepareOptions {
        guest: GuestSource::Bundled,
        scenario: Scenario::Normal,
        cargo: CargoOutput::Captured,
        vm: VmConfig::DEFAULT,
        initrd: None,
    };
    prepare(spec, &paths, &normal)?;
    let files = VmFiles {
        kernel: paths.kernel(spec),
        disk: &paths.disk,
        pflash: &paths.pflash,
    };
    let runs = options.runs.max(1);

    // 1. The edit-run loop, and QEMU alone on the same artifacts.
    let xtask_run = || cargo_xtask_run(&paths.repo, spec.arch);
    xtask_run()?; // settle: the measured runs then find everything built
    let no_change = Summary::of(time_command(runs, xtask_run)?);
    let mut last = None;
    let qemu_alone = Summary::of(time_command(runs, || {
        let out = boot(spec, &files, &[])?;
        let wall = out.wall;
        last = Some(out);
        Ok(wall)
    })?);
    let normal_run = last.context("no run")?;
    let touched_file = paths.repo.join(TOUCHED);
    let touched = Summary::of(time_command(runs, || {
        touch(&touched_file)?;
        cargo_xtask_run(&paths.repo, spec.arch)
    })?);

    // 2. The floor kernel on the same machine.
    let floor_kernel = build_floor(spec, &paths)?;
    let floor_files = VmFiles {
        kernel: &floor_kernel,
        ..files
    };
    let floor = Summary::of(time_command(runs, || {
        Ok(boot(spec, &floor_files, &[])?.wall)
    })?);

    // 3. The exit path, as the bench guest times it.
    let bench_disk = bench_disk(spec, &paths)?;
    let bench_files = VmFiles {
        disk: &bench_disk,
        pflash: &paths.e2e.join("pflash-bench.img"),
        ..files
    };
    if spec.pflash_size > 0 {
        crate::pflash::write_pflash(bench_files.pflash, Scenario::Bench, spec.pflash_size)?;
    }
    let exits = exit_figures(spec, &bench_files, &[], measure::host_tsc_hz)?;
    let exits_icount = exit_figures(spec, &bench_files, ICOUNT, || ICOUNT_TSC_HZ)?;

    // 4. Guest memory, from the normal run.
    let mapped = parse_mapped(&normal_run.text)?;
    let ram_mapped_bytes = mapped.region("ram")?.bytes();
    let ram_bytes = spec.layout().ram().map_or(0, |r| r.size);

    // 5. Devices and guest boot, where the guest has emulated devices.
    let clock_us = parse_clock(&normal_run.text)?;
    let devices = if let Some(uart) = spec.console_device {
        let (helloworld, hosted_text) = guest_boot::measure(spec, &paths, &files, runs)?;
        Some(DeviceFigures {
            uart_per_char: guest_boot::uart_accesses_per_char(&hosted_text, uart)
                .context("no UART figures in the hosted helloworld run")?,
            helloworld,
        })
    } else {
        None
    };

    // 6. Linux to its /init, bare and as the guest.
    let linux = if crate::guests::linux::supports(spec.arch) {
        Some(linux_boot::measure(spec, &paths, &files, runs).context("Linux booted to /init")?)
    } else {
        None
    };

    // 7. SMP: the IPI round trip, and Linux with 4 vCPUs.
    let smp = if crate::guests::linux::supports(spec.arch) {
        Some(smp::measure(spec, &paths, runs).context("SMP figures")?)
    } else {
        None
    };

    // 8. A cold build.
    let cold_build = if options.cold {
        Some(cold_build(&paths.repo, spec.arch)?)
    } else {
        None
    };

    Ok(ArchFigures {
        arch: spec.arch,
        no_change,
        touched,
        qemu_alone,
        floor,
        exits,
        exits_icount,
        mapped_bytes: mapped.bytes(),
        ram_mapped_bytes,
        ram_bytes,
        clock_us,
        devices,
        linux,
        smp,
        cold_build,
    })
}

/// Times one `cargo xtask run --arch A`, as a user types it.
fn cargo_xtask_run(repo: &Path, arch: Arch) -> Result<Duration> {
    let start = std::time::Instant::now();
    let out = Command::new(cargo_binary())
        .current_dir(repo)
        .args(["xtask", "run", "--arch", arch.name()])
        .output()
        .context("cannot run cargo xtask")?;
    let took = start.elapsed();
    if !out.status.success() {
        bail!(
            "`cargo xtask run --arch {arch}` failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(took)
}

/// Boots `files` quietly and insists on a clean end.
pub(crate) fn boot(
    spec: &'static ArchSpec,
    files: &VmFiles,
    extra_args: &[&str],
) -> Result<RunOutput> {
    let run = RunSpec {
        spec,
        files: VmFiles { ..*files },
        timeout: RUN_TIMEOUT,
        echo: false,
        show_command: false,
        extra_args,
        input: crate::vm::Input::Null,
    };
    let out = run_vm(&run)?;
    out.check()
        .with_context(|| format!("QEMU output:\n{}", out.text))?;
    Ok(out)
}

/// Marks a source file as edited, as a user saving it would.
fn touch(path: &Path) -> Result<()> {
    std::fs::File::options()
        .append(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now()))
        .with_context(|| format!("cannot touch {}", path.display()))
}

/// The floor kernel of `spec`: built with the hypervisor's configuration
/// (same machine).
pub fn floor_app(spec: &ArchSpec) -> App {
    App {
        package: "floor",
        binary: "floor",
        config: spec.hypervisor.config,
    }
}

/// The floor kernel's own target directory, beside the hypervisor's.
pub fn floor_target(spec: &ArchSpec, paths: &ArchPaths) -> PathBuf {
    paths
        .hv_target
        .with_file_name(format!("floor-{}", spec.arch))
}

/// Builds the floor kernel into its own target directory; returns what
/// QEMU boots.
fn build_floor(spec: &'static ArchSpec, paths: &ArchPaths) -> Result<PathBuf> {
    let target = floor_target(spec, paths);
    build_app(
        spec,
        paths,
        &floor_app(spec),
        &target,
        &[],
        CargoOutput::Captured,
    )?;
    let elf = target.join(spec.triple).join("release").join("floor");
    match spec.kernel {
        KernelImage::Elf => Ok(elf),
        KernelImage::Flat { load_addr } => {
            let flat = target.join("floor.bin");
            write_if_different(&flat, &hypervisor_flat(&elf, spec, load_addr)?)?;
            Ok(flat)
        }
    }
}

/// The disk holding the bench guest. RAM is mapped a 4 KiB page per fault
/// there (`blocks = off`): the bench times the fault path per fresh page,
/// which 2 MiB blocks would fold into one fault per 512 pages.
fn bench_disk(spec: &'static ArchSpec, paths: &ArchPaths) -> Result<PathBuf> {
    let mut log = String::new();
    let guest = build_guest(
        spec,
        paths,
        Scenario::Bench,
        CargoOutput::Captured,
        &mut log,
    )?;
    let disk = paths.e2e.join("disk-bench.img");
    let vm = VmConfig {
        blocks: false,
        ..VmConfig::DEFAULT
    };
    crate::disk::write_fat_disk(&disk, &guest_disk(&guest, &vm, None))?;
    Ok(disk)
}

/// Under `-icount`, QEMU's x86 TSC reads the virtual clock, in nanoseconds
/// (and with `shift=0` one instruction is one nanosecond).
const ICOUNT_TSC_HZ: u64 = 1_000_000_000;

/// Runs the bench guest and reads its figures. `tsc_hz` gives the counter
/// rate where the guest cannot know it (the x86 TSC).
fn exit_figures(
    spec: &'static ArchSpec,
    files: &VmFiles,
    extra_args: &[&str],
    tsc_hz: fn() -> u64,
) -> Result<ExitFigures> {
    let out = boot(spec, files, extra_args)?;
    let line = parse_bench(&out.text)?;
    let exits = parse_exits(&out.text)?;
    Ok(ExitFigures {
        hypercalls: line.hypercalls,
        pages: line.pages,
        hypercall_ticks: line.hypercall_ticks,
        page_ticks: line.page_ticks,
        // The x86 guest's counter is the TSC, whose rate it can only
        // assume (ArceOS's 4 GHz); the real rate comes from `tsc_hz`: the
        // host's TSC, or one tick per instruction under -icount.
        counter_hz: if line.counter_hz != 0 && spec.arch != Arch::X86_64 {
            line.counter_hz
        } else {
            tsc_hz()
        },
        hypercall_exits: exits.get("hypercall")?,
        fault_exits: exits.get("nested page fault")?,
        mmio: parse_bench_mmio(&out.text)?,
        mmio_exits: exits.get("mmio")?,
        timer_latency_ticks: parse_timer_latency(&out.text)?,
    })
}

/// Times `cargo xtask build` from an empty target directory.
fn cold_build(repo: &Path, arch: Arch) -> Result<Duration> {
    let dir =
        std::env::temp_dir().join(format!("guestaspace-cold-{}-{}", arch, std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let start = std::time::Instant::now();
    let status = Command::new(cargo_binary())
        .current_dir(repo)
        .env("CARGO_TARGET_DIR", &dir)
        .args(["xtask", "build", "--arch", arch.name()])
        .status()
        .context("cannot run cargo xtask build")?;
    let took = start.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    if !status.success() {
        bail!("cold build of {arch} failed ({status})");
    }
    Ok(took)
}
