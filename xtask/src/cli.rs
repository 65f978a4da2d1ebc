//! The command line: `cargo xtask build|run|test|bench [--arch ARCH]` and the
//! options of each command, and the dispatch to the command's module.

use crate::arch::Arch;
use crate::guests::linux;
use crate::guests::tutorial::{self, TutorialApp};
use crate::prepare::{BootFiles, GuestSource};
use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use guestaspace_core::scenario::Scenario;
use guestaspace_core::vmconfig::VmConfig;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "cargo xtask",
    about = "Build, run and test arceos-guestaspace under QEMU"
)]
pub struct Cli {
    /// Print the exact QEMU command line before running it.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Install nothing: where QEMU or a package is missing, print the
    /// commands that install it and fail.
    #[arg(long, global = true)]
    pub no_install: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build the guest and the hypervisor and write the disk and pflash images.
    Build(ArchArg),
    /// Build everything and boot the hypervisor and its guest in QEMU.
    Run(RunArgs),
    /// Run the end-to-end QEMU test cases.
    Test(TestArgs),
    /// Measure the edit-run loop, the VM-exit path and guest memory.
    Bench(BenchArgs),
    /// Check formatting and run clippy (-D warnings) on every crate and target.
    Lint,
    /// Install what run, test and bench need (QEMU >= 10, the riscv64 Linux
    /// guest's build packages, Debian's arm64 packages) with apt-get.
    Setup(crate::setup::SetupArgs),
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Bench only this architecture (default: every implemented one).
    #[arg(long, value_enum)]
    pub arch: Option<Arch>,
    /// Repetitions of each timed figure (min/median/max are reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub runs: u64,
    /// Also write the figures to this file as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also time a cold build of each architecture (slow).
    #[arg(long)]
    pub cold: bool,
}

/// `--timeout` unless given (and not `--linux`).
const DEFAULT_TIMEOUT_SECS: u64 = 30;

#[derive(Args, Debug)]
pub struct ArchArg {
    /// Target architecture.
    #[arg(long, value_enum, default_value_t = Arch::Riscv64)]
    pub arch: Arch,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub arch: ArchArg,
    /// Boot this guest image (ELF or flat binary) instead of building gkernel.
    #[arg(long, value_name = "PATH", conflicts_with = "tutorial")]
    pub guest: Option<PathBuf>,
    /// Boot an unmodified ArceOS tutorial app from crates.io as the guest
    /// (arceos-helloworld 0.4.11, arceos-fairsched 0.4.6).
    #[arg(long, value_name = "APP", value_parser = tutorial_parser())]
    pub tutorial: Option<TutorialApp>,
    /// Boot Debian's U-Boot for QEMU virt in S-mode (package u-boot-qemu,
    /// fetched with apt-get) as the guest (riscv64).
    #[arg(long, conflicts_with_all = ["guest", "tutorial"])]
    pub uboot: bool,
    /// Boot Linux to userspace: on aarch64 Debian's own arm64 kernel (of
    /// linux-image-arm64, fetched with apt-get) with a busybox initramfs
    /// built here; on riscv64 a kernel built here (cached) from Debian's
    /// linux-source-6.1 with a nolibc /init. Unless given: --mem 256M,
    /// --timeout 120 and --cmdline "console=ttyAMA0
    /// earlycon=pl011,0x9000000 panic=-1" (aarch64) or "console=ttyS0
    /// earlycon=sbi panic=-1" (riscv64); --initrd replaces the built
    /// initramfs.
    #[arg(long, conflicts_with_all = ["guest", "tutorial", "uboot"])]
    pub linux: bool,
    /// Put FILE on the disk as /boot/initrd, the initramfs the hypervisor
    /// hands a Linux guest.
    #[arg(long, value_name = "FILE")]
    pub initrd: Option<PathBuf>,
    /// Put TEXT on the disk as /boot/cmdline, a Linux guest's kernel
    /// command line (an empty one writes no file).
    #[arg(long, value_name = "TEXT", value_parser = cmdline_parser)]
    pub cmdline: Option<String>,
    /// Kill QEMU and fail after this many seconds (default 30; 120 with
    /// --linux).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
    /// Ask the guest to misbehave in a chosen way (a test hook).
    #[arg(long, default_value = "normal", value_parser = scenario_parser())]
    pub scenario: Scenario,
    /// Guest RAM (e.g. 64M, 1G; default 128M), still mapped on first
    /// touch. Written to the disk's /etc/vm.conf.
    #[arg(long, value_name = "SIZE", value_parser = mem_parser)]
    pub mem: Option<u64>,
    /// Map guest RAM one 4 KiB page per nested page fault instead of in
    /// 2 MiB blocks where they fit, to watch every fault. Written to the
    /// disk's /etc/vm.conf as `blocks = off`.
    #[arg(long)]
    pub no_blocks: bool,
    /// Also write the device tree the riscv64 guest gets (for this --mem)
    /// to FILE, to inspect with `dtc -I dtb FILE`.
    #[arg(long, value_name = "FILE")]
    pub dtb_out: Option<PathBuf>,
    /// Have the hypervisor itself stop the guest after this many seconds,
    /// naming its PC (riscv64). Written to the disk's /etc/vm.conf.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub guest_timeout: Option<u64>,
}

/// Parses `--mem` the way the hypervisor reads `mem =` in /etc/vm.conf.
fn mem_parser(text: &str) -> Result<u64, String> {
    match guestaspace_core::vmconfig::parse_size(text) {
        Some(bytes) if bytes > 0 && bytes.is_multiple_of(guestaspace_core::PAGE_SIZE) => Ok(bytes),
        Some(_) => Err("not a whole number of 4 KiB pages".into()),
        None => Err("expected a size such as 128M (bytes, or K, M, G)".into()),
    }
}

/// Parses `--cmdline`: one line of text, since the disk's file is the
/// whole command line with no trailing newline.
fn cmdline_parser(text: &str) -> Result<String, String> {
    if text.contains(['\n', '\r', '\0']) {
        return Err("a kernel command line is one line, without NUL".into());
    }
    Ok(text.to_string())
}

#[derive(Args, Debug)]
pub struct TestArgs {
    /// Test only this architecture (default: every implemented one).
    #[arg(long, value_enum)]
    pub arch: Option<Arch>,
}

/// Parses a scenario by the names `guestaspace_core::scenario` gives them.
fn scenario_parser() -> impl clap::builder::TypedValueParser<Value = Scenario> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Scenario::ALL.map(Scenario::name))
        .map(|name: String| Scenario::from_name(&name).expect("a listed name"))
}

/// Parses a tutorial app by its crate name, with or without `arceos-`.
fn tutorial_parser() -> impl clap::builder::TypedValueParser<Value = TutorialApp> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["helloworld", "fairsched"]).map(|name: String| {
        *tutorial::ALL
            .iter()
            .find(|a| a.name.strip_prefix("arceos-") == Some(name.as_str()))
            .expect("a listed name")
    })
}

/// Runs the command `cli` asks for.
pub fn dispatch(cli: Cli) -> Result<()> {
    crate::setup::ensure_for(&cli.command, cli.no_install)?;
    match cli.command {
        Command::Build(a) => crate::run::build_only(a.arch),
        Command::Run(a) => {
            if let Some(path) = &a.dtb_out {
                crate::run::write_dtb(a.arch.arch, a.mem, path)?;
            }
            crate::run::run(&run_options(a, cli.verbose)?)
        }
        Command::Test(a) => crate::e2e::run_all(a.arch, cli.verbose),
        Command::Lint => crate::lint::lint(),
        Command::Setup(a) => crate::setup::setup(&a, cli.no_install),
        Command::Bench(a) => crate::bench::bench(&crate::bench::BenchOptions {
            arches: a.arch.map_or_else(Arch::implemented, |arch| vec![arch]),
            runs: a.runs as usize,
            json: a.json,
            cold: a.cold,
        }),
    }
}

/// The run `a` asks for. `--linux` fetches Debian's kernel and builds the
/// initramfs first, and fills in its defaults where `a` leaves them out.
fn run_options(a: RunArgs, verbose: bool) -> Result<crate::run::RunOptions> {
    let mut boot = BootFiles {
        initrd: a.initrd,
        cmdline: a.cmdline,
    };
    let (mut mem, mut timeout) = (a.mem, a.timeout);
    let guest = match (a.guest, a.tutorial, a.uboot, a.linux) {
        (Some(path), ..) => GuestSource::File(path),
        (None, Some(app), ..) => GuestSource::Tutorial(app),
        (None, None, true, _) => GuestSource::Debian(crate::guests::debian::UBOOT_RISCV64_SMODE),
        (None, None, false, true) => {
            let linux = linux::prepare(a.arch.arch)?;
            eprintln!("{}", linux.describe());
            boot.initrd.get_or_insert(linux.initrd);
            boot.cmdline
                .get_or_insert_with(|| linux.cmdline.to_string());
            mem.get_or_insert(linux::DEFAULT_MEM);
            timeout.get_or_insert(linux::DEFAULT_TIMEOUT_SECS);
            GuestSource::File(linux.kernel)
        }
        (None, None, false, false) => GuestSource::Bundled,
    };
    Ok(crate::run::RunOptions {
        arch: a.arch.arch,
        guest,
        scenario: a.scenario,
        timeout: Duration::from_secs(timeout.unwrap_or(DEFAULT_TIMEOUT_SECS)),
        verbose,
        vm: VmConfig {
            mem,
            watchdog_secs: a.guest_timeout,
            blocks: !a.no_blocks,
        },
        boot,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(words: &[&str]) -> Result<RunArgs, clap::Error> {
        let cli = Cli::try_parse_from(["cargo xtask", "run"].iter().chain(words))?;
        match cli.command {
            Command::Run(a) => Ok(a),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn initrd_and_cmdline_go_to_the_disk_on_every_arch() {
        let a = run_args(&[
            "--arch",
            "x86_64",
            "--initrd",
            "i.cpio",
            "--cmdline",
            "quiet",
        ])
        .unwrap();
        let options = run_options(a, false).unwrap();
        assert_eq!(
            options.boot,
            BootFiles {
                initrd: Some("i.cpio".into()),
                cmdline: Some("quiet".into()),
            }
        );
        assert_eq!(options.timeout, Duration::from_secs(30));
        assert!(matches!(options.guest, GuestSource::Bundled));
        assert!(run_args(&["--cmdline", "two\nlines"]).is_err());
    }

    #[test]
    fn linux_is_its_own_guest_and_not_on_x86_64() {
        assert!(run_args(&["--linux", "--uboot"]).is_err());
        assert!(run_args(&["--linux", "--guest", "k"]).is_err());
        let a = run_args(&["--linux", "--arch", "x86_64"]).unwrap();
        let Err(err) = run_options(a, false) else {
            panic!("--linux ran on x86_64");
        };
        let err = err.to_string();
        assert!(err.contains("aarch64 and riscv64 only"), "{err}");
    }
}
