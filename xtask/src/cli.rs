//! The command line: `cargo xtask build|run|test|bench [--arch ARCH]` and the
//! options of each command, and the dispatch to the command's module.

use crate::arch::Arch;
use crate::guests::linux;
use crate::guests::tutorial::{self, TutorialApp};
use crate::prepare::GuestSource;
use crate::vm_file::{self, HostVm};
use anyhow::{Result, bail};
use clap::{ArgAction, Args, Parser, Subcommand};
use guestaspace_core::scenario::Scenario;
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
#[command(
    after_help = "Each option that sets a VM config key (--guest: kernel, --initrd, \
--cmdline, --mem, --cpus, --no-blocks: blocks, --guest-timeout: watchdog; --tutorial, --uboot \
and --linux: kernel) overrides that key of the --vm file. --linux and --tutorial take their \
defaults from configs/vms/ (linux-ARCH.toml, helloworld.toml, fairsched.toml), under the --vm \
file's keys."
)]
pub struct RunArgs {
    #[command(flatten)]
    pub arch: ArchArg,
    /// Boot the VM this TOML config file describes (the keys of
    /// configs/vms/*.toml; its kernel and initrd paths are relative to the
    /// file's directory; no kernel means the bundled gkernel). The options
    /// below override its keys. Once per run for now.
    #[arg(long, value_name = "FILE", action = ArgAction::Append)]
    pub vm: Vec<PathBuf>,
    /// Boot this guest image (ELF or flat binary) instead of building
    /// gkernel (the config's `kernel`).
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
    /// linux-source-6.1 with a nolibc /init. Its memory and command line
    /// come from configs/vms/linux-ARCH.toml unless given; --timeout is 120
    /// unless given; --initrd replaces the built initramfs.
    #[arg(long, conflicts_with_all = ["guest", "tutorial", "uboot"])]
    pub linux: bool,
    /// The initramfs the hypervisor hands a Linux guest (the config's
    /// `initrd`; on the disk as /boot/initrd).
    #[arg(long, value_name = "FILE")]
    pub initrd: Option<PathBuf>,
    /// A Linux guest's kernel command line (the config's `cmdline`; an
    /// empty one means none).
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
    /// touch (the config's `mem`).
    #[arg(long, value_name = "SIZE", value_parser = mem_parser)]
    pub mem: Option<u64>,
    /// vCPUs, 1 to 8 (the config's `cpus`); each runs on a host CPU of its
    /// own (QEMU's `-smp`). riscv64 and aarch64.
    #[arg(long, value_name = "N")]
    pub cpus: Option<u32>,
    /// Map guest RAM one 4 KiB page per nested page fault instead of in
    /// 2 MiB blocks where they fit, to watch every fault (the config's
    /// `blocks = false`).
    #[arg(long)]
    pub no_blocks: bool,
    /// Also write the device tree the riscv64 guest gets (for this --mem)
    /// to FILE, to inspect with `dtc -I dtb FILE`.
    #[arg(long, value_name = "FILE")]
    pub dtb_out: Option<PathBuf>,
    /// Have the hypervisor itself stop the guest after this many seconds
    /// of its run, naming its PC (the config's `watchdog`).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub guest_timeout: Option<u64>,
}

/// Parses `--mem` the way the hypervisor reads `mem` in /etc/vm.toml.
fn mem_parser(text: &str) -> Result<u64, String> {
    match guestaspace_core::vmconfig::parse_size(text) {
        Some(bytes) if bytes > 0 && bytes.is_multiple_of(guestaspace_core::PAGE_SIZE) => Ok(bytes),
        Some(_) => Err("not a whole number of 4 KiB pages".into()),
        None => Err("expected a size such as 128M (bytes, or K, M, G)".into()),
    }
}

/// Parses `--cmdline`: one line of text without NUL, as the config's
/// `cmdline` must be.
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
    /// Run only the case of this name (repeatable; default: every case),
    /// e.g. `--case linux-smp`.
    #[arg(long = "case", value_name = "NAME")]
    pub cases: Vec<String>,
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
            .find(|a| a.short_name() == name)
            .expect("a listed name")
    })
}

/// Runs the command `cli` asks for.
pub fn dispatch(cli: Cli) -> Result<()> {
    crate::setup::ensure_for(&cli.command, cli.no_install)?;
    match cli.command {
        Command::Build(a) => crate::run::build_only(a.arch),
        Command::Run(a) => {
            let dtb_out = a.dtb_out.clone();
            let options = run_options(a, cli.verbose)?;
            if let Some(path) = &dtb_out {
                crate::run::write_dtb(options.arch, options.vm.mem, path)?;
            }
            crate::run::run(&options)
        }
        Command::Test(a) => crate::e2e::run_all(a.arch, &a.cases, cli.verbose),
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

/// The run `cargo xtask WORDS...` asks for (`run` and its options), made
/// as [`dispatch`] makes it; the end-to-end case of `--vm` uses it.
pub fn run_options_for(words: &[&str]) -> Result<crate::run::RunOptions> {
    let cli = Cli::try_parse_from(std::iter::once("cargo xtask").chain(words.iter().copied()))?;
    match cli.command {
        Command::Run(a) => run_options(a, cli.verbose),
        other => bail!("not a run: {other:?}"),
    }
}

/// The run `a` asks for: the `--vm` file (over the shipped defaults of
/// `--linux` or `--tutorial`), with the options over its keys. Every
/// config is read and checked before anything is built; `--linux` then
/// fetches or builds its kernel and initramfs.
fn run_options(a: RunArgs, verbose: bool) -> Result<crate::run::RunOptions> {
    let arch = a.arch.arch;
    if a.vm.len() > 1 {
        bail!(
            "--vm is given {} times: one VM per run for now (booting several at once comes later)",
            a.vm.len()
        );
    }
    let base = if a.linux {
        linux::shipped_config(arch)?
    } else if let Some(app) = a.tutorial {
        vm_file::shipped(app.short_name())?
    } else {
        HostVm::empty()
    };
    let host = match a.vm.first() {
        Some(file) => base.overlaid_with(vm_file::load(file)?),
        None => base,
    };
    let mut vm = host.config;
    vm.kernel = None;
    vm.initrd = None;
    if let Some(cmdline) = a.cmdline {
        vm.cmdline = Some(cmdline).filter(|c| !c.is_empty());
    }
    if let Some(mem) = a.mem {
        vm.mem = Some(mem);
    }
    if let Some(cpus) = a.cpus {
        vm.cpus = cpus;
    }
    if a.no_blocks {
        vm.blocks = false;
    }
    if let Some(secs) = a.guest_timeout {
        vm.watchdog_secs = Some(secs);
    }
    // What the options set is checked as the file's keys are.
    if let Err((key, problem)) = vm.check() {
        let option = match key {
            "cpus" => format!("--cpus {}", vm.cpus),
            "watchdog" => format!("--guest-timeout {}", vm.watchdog_secs.unwrap_or(0)),
            other => format!("the VM config's `{other}`"),
        };
        bail!("{option}: {problem}");
    }
    if vm.cpus > 1 && arch == Arch::X86_64 {
        bail!(
            "--cpus {}: SMP guests run on riscv64 and aarch64; an x86_64 VM has one vCPU for now",
            vm.cpus
        );
    }
    let mut initrd = a.initrd.or(host.initrd);
    let mut timeout = a.timeout;
    let guest = match (a.guest, a.tutorial, a.uboot, a.linux) {
        (Some(path), ..) => GuestSource::File(path),
        (None, Some(app), ..) => GuestSource::Tutorial(app),
        (None, None, true, _) => GuestSource::Debian(crate::guests::debian::UBOOT_RISCV64_SMODE),
        (None, None, false, true) => {
            let linux = linux::prepare(arch)?;
            eprintln!("{}", linux.describe());
            initrd.get_or_insert(linux.initrd);
            timeout.get_or_insert(linux::DEFAULT_TIMEOUT_SECS);
            GuestSource::File(linux.kernel)
        }
        (None, None, false, false) => host.kernel.map_or(GuestSource::Bundled, GuestSource::File),
    };
    Ok(crate::run::RunOptions {
        arch,
        guest,
        scenario: a.scenario,
        timeout: Duration::from_secs(timeout.unwrap_or(DEFAULT_TIMEOUT_SECS)),
        verbose,
        vm,
        initrd,
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

    use crate::fsio::testdir;
    use crate::prepare::guest_disk;
    use guestaspace_core::vmconfig::VmConfig;

    fn options(words: &[&str]) -> Result<crate::run::RunOptions> {
        run_options(run_args(words)?, false)
    }

    fn error(words: &[&str]) -> String {
        match options(words) {
            Ok(o) => panic!("{words:?} gave {:?}", o.vm),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn initrd_and_cmdline_go_to_the_disk_on_every_arch() {
        let o = options(&[
            "--arch",
            "x86_64",
            "--initrd",
            "i.cpio",
            "--cmdline",
            "quiet",
        ])
        .unwrap();
        assert_eq!(o.initrd, Some("i.cpio".into()));
        assert_eq!(o.vm.cmdline.as_deref(), Some("quiet"));
        assert_eq!(o.timeout, Duration::from_secs(30));
        assert!(matches!(o.guest, GuestSource::Bundled));
        assert!(run_args(&["--cmdline", "two\nlines"]).is_err());
        assert_eq!(options(&["--cmdline", ""]).unwrap().vm.cmdline, None);
    }

    #[test]
    fn the_options_make_the_config_a_file_would() {
        let o = options(&[
            "--mem",
            "64M",
            "--guest-timeout",
            "20",
            "--no-blocks",
            "--cmdline",
            "console=ttyS0",
            "--cpus",
            "1",
        ])
        .unwrap();
        let expected = VmConfig {
            cmdline: Some("console=ttyS0".into()),
            mem: Some(64 << 20),
            watchdog_secs: Some(20),
            blocks: false,
            ..VmConfig::DEFAULT
        };
        assert_eq!(o.vm, expected);
        let dir = testdir::fresh("cli-vm-same");
        let file = dir.join("vm.toml");
        std::fs::write(
            &file,
            "mem = \"64M\"\nwatchdog = 20\nblocks = false\ncmdline = \"console=ttyS0\"\n",
        )
        .unwrap();
        let from_file = options(&["--vm", file.to_str().unwrap()]).unwrap();
        assert_eq!(from_file.vm, o.vm);
        assert_eq!(
            guest_disk(b"k", &from_file.vm, None),
            guest_disk(b"k", &o.vm, None),
            "the same /etc/vm.toml"
        );
        assert_eq!(options(&[]).unwrap().vm, VmConfig::DEFAULT);
    }

    #[test]
    fn options_override_the_keys_of_a_vm_file() {
        let dir = testdir::fresh("cli-vm-override");
        std::fs::write(dir.join("Image"), b"kernel").unwrap();
        std::fs::write(dir.join("initrd"), b"cpio").unwrap();
        let file = dir.join("linux.toml");
        std::fs::write(
            &file,
            "name = \"mine\"\nkernel = \"Image\"\ninitrd = \"initrd\"\n\
             cmdline = \"console=ttyS0\"\nmem = \"64M\"\nwatchdog = 5\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let o = options(&["--vm", path]).unwrap();
        assert!(matches!(&o.guest, GuestSource::File(k) if *k == dir.join("Image")));
        assert_eq!(o.initrd, Some(dir.join("initrd")));
        assert_eq!(
            o.vm,
            VmConfig {
                name: Some("mine".into()),
                cmdline: Some("console=ttyS0".into()),
                mem: Some(64 << 20),
                watchdog_secs: Some(5),
                ..VmConfig::DEFAULT
            },
            "the kernel and initrd are host files, not settings, until the disk names them"
        );
        let o = options(&[
            "--vm",
            path,
            "--guest",
            "other",
            "--initrd",
            "i2",
            "--mem",
            "32M",
            "--cmdline",
            "",
            "--guest-timeout",
            "9",
            "--no-blocks",
        ])
        .unwrap();
        assert!(matches!(&o.guest, GuestSource::File(k) if k.as_os_str() == "other"));
        assert_eq!(o.initrd, Some("i2".into()));
        assert_eq!(o.vm.mem, Some(32 << 20));
        assert_eq!(o.vm.cmdline, None);
        assert_eq!(o.vm.watchdog_secs, Some(9));
        assert!(!o.vm.blocks);
        assert_eq!(o.vm.name.as_deref(), Some("mine"));
        let o = options(&["--vm", path, "--tutorial", "helloworld"]).unwrap();
        assert!(matches!(o.guest, GuestSource::Tutorial(_)));
        assert_eq!(o.vm.name.as_deref(), Some("mine"), "the file's name wins");
    }

    #[test]
    fn a_bad_vm_file_is_refused_naming_file_line_and_key() {
        let dir = testdir::fresh("cli-vm-bad");
        let file = dir.join("bad.toml");
        std::fs::write(&file, "name = \"x\"\nmemory = \"1M\"\n").unwrap();
        let err = error(&["--vm", file.to_str().unwrap()]);
        assert!(
            err.starts_with(&format!(
                "VM config {} line 2: unknown key `memory`",
                file.display()
            )),
            "{err}"
        );
        let missing = dir.join("missing.toml");
        let err = error(&["--vm", missing.to_str().unwrap()]);
        assert!(err.contains(&missing.display().to_string()), "{err}");
        std::fs::write(&file, "kernel = \"no-such-kernel\"\n").unwrap();
        let err = error(&["--vm", file.to_str().unwrap()]);
        assert!(err.contains("line 1: kernel `no-such-kernel`: "), "{err}");
    }

    #[test]
    fn one_vm_per_run_for_now() {
        let dir = testdir::fresh("cli-vm-twice");
        let file = dir.join("a.toml");
        std::fs::write(&file, "").unwrap();
        let path = file.to_str().unwrap();
        assert_eq!(
            error(&["--vm", path, "--vm", path]),
            "--vm is given 2 times: one VM per run for now (booting several at once comes later)"
        );
    }

    #[test]
    fn cpus_from_one_to_eight_and_strict_is_no_option_yet() {
        assert_eq!(options(&["--cpus", "1"]).unwrap().vm.cpus, 1);
        assert_eq!(options(&["--cpus", "4"]).unwrap().vm.cpus, 4);
        assert_eq!(
            error(&["--cpus", "0"]),
            "--cpus 0: expected from 1 to 8 vCPUs"
        );
        assert_eq!(
            error(&["--cpus", "9"]),
            "--cpus 9: expected from 1 to 8 vCPUs"
        );
        assert!(run_args(&["--cpus", "-1"]).is_err());
        assert!(run_args(&["--strict"]).is_err());
        assert_eq!(
            error(&["--arch", "x86_64", "--cpus", "2"]),
            "--cpus 2: SMP guests run on riscv64 and aarch64; an x86_64 VM has one vCPU for now"
        );
        assert_eq!(
            options(&["--arch", "x86_64", "--cpus", "1"])
                .unwrap()
                .vm
                .cpus,
            1
        );
    }

    #[test]
    fn tutorials_and_linux_take_their_defaults_from_the_shipped_configs() {
        let o = options(&["--tutorial", "fairsched"]).unwrap();
        assert_eq!(o.vm.name.as_deref(), Some("fairsched"));
        assert!(matches!(o.guest, GuestSource::Tutorial(app) if app.name == "arceos-fairsched"));
        // What --linux starts from (its own run fetches or builds the
        // kernel, which a unit test does not).
        for (arch, console) in [
            (Arch::Riscv64, "console=ttyS0 earlycon=sbi panic=-1"),
            (
                Arch::Aarch64,
                "console=ttyAMA0 earlycon=pl011,0x9000000 panic=-1",
            ),
        ] {
            let vm = linux::shipped_config(arch).unwrap().config;
            assert_eq!(vm.mem, Some(256 << 20));
            assert_eq!(vm.cmdline.as_deref(), Some(console));
        }
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
