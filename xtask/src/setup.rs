//! Setting up the machine: what `cargo xtask run`, `test` and `bench`
//! need beside the Rust toolchain, checked before each of them and
//! installed with apt-get where it is missing (`cargo xtask setup` does
//! all of it at once):
//!
//! - QEMU >= 10.0 for each architecture the command boots (on Debian 12
//!   from bookworm-backports, which is added to the apt sources if it is
//!   not there, reusing the mirror of the machine's own bookworm entry;
//!   the distribution's own QEMU is the fallback),
//! - for the riscv64 Linux guest, the packages it is built from and with
//!   ([`linux_riscv64::PACKAGES`]),
//! - for the aarch64 Linux guest (Debian's arm64 kernel and busybox,
//!   fetched with `apt-get download`), arm64 among dpkg's architectures
//!   and apt's package lists of them; for `--uboot`, the list of
//!   `u-boot-qemu`.
//!
//! Each command is printed before it runs, through `sudo` unless xtask
//! runs as root. With `--no-install` nothing is installed: the missing
//! things and the exact commands are printed and the command fails. A
//! machine without apt-get is told what to install by hand.
//!
//! `QEMU_MIN_MAJOR=N` in the environment raises the QEMU version asked
//! for here (not below 10), to exercise the install path on a machine
//! that already has QEMU 10.

mod sources;

use crate::arch::{Arch, QEMU_MIN_VERSION};
use crate::cli::Command;
use crate::guests::{linux, linux_riscv64};
use crate::progress::{self, Task};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::fmt;
use std::io::IsTerminal;
use std::process::{Command as Process, Stdio};

#[derive(Args, Debug)]
pub struct SetupArgs {
    /// Set up only for this architecture (default: every one).
    #[arg(long, value_enum)]
    pub arch: Option<Arch>,
    /// Print what is missing and the commands that would install it;
    /// run none of them.
    #[arg(long)]
    pub dry_run: bool,
}

/// What a command needs from the machine beside the Rust toolchain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// The QEMU system emulators of these architectures.
    pub qemu: Vec<Arch>,
    /// The riscv64 Linux guest's build.
    pub kernel_build: bool,
    /// Debian's arm64 kernel and busybox-static through `apt-get
    /// download` (the aarch64 Linux guest).
    pub arm64_packages: bool,
    /// Debian's u-boot-qemu through `apt-get download` (`--uboot`).
    pub uboot: bool,
}

impl Needs {
    /// What booting `arch` needs: its QEMU, and for a Linux guest what
    /// that guest is made from.
    fn boot(arch: Arch, linux: bool) -> Needs {
        Needs {
            qemu: vec![arch],
            kernel_build: linux && arch == Arch::Riscv64,
            arm64_packages: linux && arch == Arch::Aarch64,
            uboot: false,
        }
    }

    /// What every end-to-end case of `arch` needs (and `cargo xtask
    /// setup` installs).
    fn all_of(arch: Arch) -> Needs {
        Needs {
            uboot: arch == Arch::Riscv64,
            ..Needs::boot(arch, linux::supports(arch))
        }
    }

    /// Both `self` and `other`.
    fn and(mut self, other: Needs) -> Needs {
        for arch in other.qemu {
            if !self.qemu.contains(&arch) {
                self.qemu.push(arch);
            }
        }
        self.kernel_build |= other.kernel_build;
        self.arm64_packages |= other.arm64_packages;
        self.uboot |= other.uboot;
        self
    }

    /// What `command` needs before it starts.
    pub fn of(command: &Command) -> Needs {
        let arches = |arch: Option<Arch>| arch.map_or_else(Arch::implemented, |a| vec![a]);
        match command {
            Command::Build(_) | Command::Lint => Needs::default(),
            Command::Run(a) => Needs {
                uboot: a.uboot,
                ..Needs::boot(a.arch.arch, a.linux)
            },
            Command::Test(a) => Needs::everything(a.arch),
            // The bench boots the Linux guest of each arch that has one.
            Command::Bench(a) => arches(a.arch)
                .into_iter()
                .map(|arch| Needs::boot(arch, linux::supports(arch)))
                .fold(Needs::default(), Needs::and),
            Command::Setup(a) => Needs::everything(a.arch),
        }
    }

    /// What every end-to-end case of `arch` (or of every arch) needs.
    pub fn everything(arch: Option<Arch>) -> Needs {
        arch.map_or_else(Arch::implemented, |a| vec![a])
            .into_iter()
            .map(Needs::all_of)
            .fold(Needs::default(), Needs::and)
    }

    fn is_empty(&self) -> bool {
        *self == Needs::default()
    }
}

/// The QEMU binary and Debian package of `arch`.
fn qemu_of(arch: Arch) -> (&'static str, &'static str) {
    let spec = &arch.spec().expect("every arch has a spec").qemu;
    (spec.binary, spec.debian_package)
}

/// The packages whose lists `apt-get download` needs, as `apt-cache show`
/// must find them.
const ARM64_LISTED: [&str; 2] = [linux::KERNEL_METAPACKAGE, linux::BUSYBOX_PACKAGE];
const UBOOT_LISTED: &str = crate::guests::debian::UBOOT_RISCV64_SMODE.package;
/// The foreign architecture of the aarch64 Linux guest's packages.
const ARM64: &str = "arm64";

/// What `QEMU_MIN_MAJOR` asks for, if it raises the minimum.
fn qemu_min() -> (u32, u32) {
    let raised = std::env::var("QEMU_MIN_MAJOR")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok());
    match raised {
        Some(major) if (major, 0) > QEMU_MIN_VERSION => (major, 0),
        _ => QEMU_MIN_VERSION,
    }
}

/// What one QEMU binary is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    Missing,
    Version(u32, u32, u32),
    /// It runs, but its `--version` says no version we can read.
    Unreadable,
}

/// What the machine has of what is needed.
#[derive(Clone, Debug)]
pub struct Machine {
    /// apt-get is there (a Debian or Ubuntu machine).
    pub apt: bool,
    /// xtask runs as root (else commands go through sudo).
    pub root: bool,
    /// sudo is there.
    pub sudo: bool,
    /// Each needed QEMU.
    pub qemu: Vec<(Arch, Found)>,
    /// The QEMU packages installed at all (installed together with the
    /// needed ones, so that they stay at one version).
    pub qemu_packages_installed: Vec<&'static str>,
    /// Packages of the kernel build that are not installed.
    pub missing_packages: Vec<&'static str>,
    /// arm64 is dpkg's own architecture or a foreign one.
    pub arm64: bool,
    /// Packages apt has no list entry for.
    pub unlisted: Vec<&'static str>,
    /// bookworm-backports is in the apt sources.
    pub backports: bool,
    /// This is Debian 12 (bookworm), where QEMU 10 is in backports.
    pub bookworm: bool,
    /// The mirror of the machine's own bookworm entry.
    pub mirror: String,
}

/// Something missing, as the user is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    Qemu {
        binary: &'static str,
        package: &'static str,
        found: Found,
        min: (u32, u32),
    },
    Packages(Vec<&'static str>),
    Architecture(&'static str),
    Lists(Vec<&'static str>),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Qemu {
                binary,
                found,
                min: (major, minor),
                ..
            } => match found {
                Found::Missing => write!(f, "{binary} not found (need QEMU >= {major}.{minor})"),
                Found::Version(a, b, c) => {
                    write!(f, "{binary} is {a}.{b}.{c}, need >= {major}.{minor}")
                }
                Found::Unreadable => write!(
                    f,
                    "{binary} does not say its version (need QEMU >= {major}.{minor})"
                ),
            },
            Problem::Packages(packages) => write!(
                f,
                "{} not installed (the riscv64 Linux guest is built from and with them)",
                packages.join(", ")
            ),
            Problem::Architecture(arch) => write!(
                f,
                "dpkg lacks the {arch} architecture (Debian's {arch} kernel and busybox are fetched \
                 with apt-get download)"
            ),
            Problem::Lists(packages) => write!(
                f,
                "apt's package lists have no {} (apt-get download needs them)",
                packages.join(", ")
            ),
        }
    }
}

impl Problem {
    /// What to install by hand where there is no apt-get.
    fn by_hand(&self) -> String {
        match self {
            Problem::Qemu {
                binary,
                package,
                min: (major, minor),
                ..
            } => format!("QEMU >= {major}.{minor} providing {binary} (Debian's {package})"),
            Problem::Packages(packages) => format!(
                "what the riscv64 Linux guest is built with: Debian's {} (its kernel source is \
                 /usr/src/linux-source-6.1.tar.xz)",
                packages.join(", ")
            ),
            Problem::Architecture(_) | Problem::Lists(_) => "Debian's apt, with arm64 among \
                 dpkg's architectures: the aarch64 Linux guest and the U-Boot guest are Debian's \
                 own packages, fetched with apt-get download"
                .to_string(),
        }
    }
}

/// One thing to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `dpkg --add-architecture ARCH`.
    AddArchitecture(&'static str),
    /// The bookworm-backports entry written to [`sources::BACKPORTS_FILE`].
    AddBackports { mirror: String },
    /// `apt-get update`.
    Update,
    /// `apt-get install`, from `release` if given (falling back to the
    /// default release if that fails).
    Install {
        packages: Vec<&'static str>,
        release: Option<&'static str>,
    },
}

/// What is missing and what installs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub problems: Vec<Problem>,
    pub steps: Vec<Step>,
}

/// What is missing of `needs` on `machine`, and the steps that install
/// it, in order: the architecture and the backports entry first, then
/// one `apt-get update`, then the installs.
pub fn plan(needs: &Needs, machine: &Machine, min: (u32, u32)) -> Plan {
    let mut problems = Vec::new();
    let mut qemu_packages: Vec<&'static str> = Vec::new();
    for (arch, found) in &machine.qemu {
        if !needs.qemu.contains(arch) {
            continue;
        }
        let good = matches!(*found, Found::Version(a, b, _) if (a, b) >= min);
        if !good {
            let (binary, package) = qemu_of(*arch);
            problems.push(Problem::Qemu {
                binary,
                package,
                found: found.clone(),
                min,
            });
            if !qemu_packages.contains(&package) {
                qemu_packages.push(package);
            }
        }
    }
    if !qemu_packages.is_empty() {
        for package in &machine.qemu_packages_installed {
            if !qemu_packages.contains(package) {
                qemu_packages.push(package);
            }
        }
    }
    let missing: Vec<&'static str> = if needs.kernel_build {
        machine.missing_packages.clone()
    } else {
        Vec::new()
    };
    if !missing.is_empty() {
        problems.push(Problem::Packages(missing.clone()));
    }
    let add_arm64 = needs.arm64_packages && !machine.arm64;
    if add_arm64 {
        problems.push(Problem::Architecture(ARM64));
    }
    let unlisted: Vec<&'static str> = machine
        .unlisted
        .iter()
        .copied()
        .filter(|p| {
            (needs.arm64_packages && ARM64_LISTED.contains(p))
                || (needs.uboot && *p == UBOOT_LISTED)
        })
        .collect();
    if !unlisted.is_empty() {
        problems.push(Problem::Lists(unlisted));
    }
    let mut steps = Vec::new();
    if problems.is_empty() {
        return Plan { problems, steps };
    }
    if add_arm64 {
        steps.push(Step::AddArchitecture(ARM64));
    }
    let backports = !qemu_packages.is_empty() && machine.bookworm;
    if backports && !machine.backports {
        steps.push(Step::AddBackports {
            mirror: machine.mirror.clone(),
        });
    }
    steps.push(Step::Update);
    if !missing.is_empty() {
        steps.push(Step::Install {
            packages: missing,
            release: None,
        });
    }
    if !qemu_packages.is_empty() {
        steps.push(Step::Install {
            packages: qemu_packages,
            release: backports.then_some(sources::BACKPORTS_SUITE),
        });
    }
    Plan { problems, steps }
}

/// One command line of a step, as run and as shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandLine {
    /// Through sudo (not root).
    pub sudo: bool,
    /// Environment assignments.
    pub env: Vec<(&'static str, &'static str)>,
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// What goes to its stdin (else nothing).
    pub input: Option<String>,
}

impl CommandLine {
    /// The command as a shell would take it.
    pub fn shown(&self) -> String {
        let mut words: Vec<String> = Vec::new();
        if self.sudo {
            words.push("sudo".into());
        }
        words.extend(self.env.iter().map(|(k, v)| format!("{k}={v}")));
        words.extend(self.argv.iter().map(|w| shell_word(w)));
        let command = words.join(" ");
        match &self.input {
            Some(text) => format!("printf '{}' | {command}", printf_text(text)),
            None => command,
        }
    }

    fn process(&self) -> Process {
        let mut cmd = if self.sudo {
            let mut cmd = Process::new("sudo");
            cmd.args(self.env.iter().map(|(k, v)| format!("{k}={v}")));
            cmd.args(&self.argv);
            cmd
        } else {
            let mut cmd = Process::new(&self.argv[0]);
            cmd.args(&self.argv[1..]).envs(self.env.iter().copied());
            cmd
        };
        cmd.stdin(Stdio::null());
        cmd
    }
}

/// `word` quoted for a shell if it needs it.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=+,@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `text` as the format of a single-quoted printf: newlines as `\n`.
fn printf_text(text: &str) -> String {
    text.replace('\\', r"\\")
        .replace('%', "%%")
        .replace('\'', r"'\''")
        .replace('\n', r"\n")
}

/// The command lines of `step`.
pub fn command_lines(step: &Step, root: bool) -> Vec<CommandLine> {
    let line = |argv: Vec<String>| CommandLine {
        sudo: !root,
        env: Vec::new(),
        argv,
        input: None,
    };
    let words = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    match step {
        Step::AddArchitecture(arch) => vec![line(words(&["dpkg", "--add-architecture", arch]))],
        Step::AddBackports { mirror } => vec![CommandLine {
            input: Some(sources::backports_entry(mirror)),
            ..line(words(&["tee", sources::BACKPORTS_FILE]))
        }],
        Step::Update => vec![line(words(&["apt-get", "update"]))],
        Step::Install { packages, release } => {
            let mut argv = words(&["apt-get", "install", "-y", "--no-install-recommends"]);
            if let Some(release) = release {
                argv.extend(words(&["-t", release]));
            }
            argv.extend(words(packages));
            vec![CommandLine {
                env: vec![("DEBIAN_FRONTEND", "noninteractive")],
                ..line(argv)
            }]
        }
    }
}

/// Makes sure the machine has what `command` needs: nothing happens if it
/// has it all; otherwise it is installed, or with `no_install` the
/// missing things and the commands are named and this fails.
pub fn ensure_for(command: &Command, no_install: bool) -> Result<()> {
    let needs = Needs::of(command);
    // `cargo xtask setup` does it itself (it may be a dry run).
    if needs.is_empty() || matches!(command, Command::Setup(_)) {
        return Ok(());
    }
    ensure(&needs, no_install, false).map(drop)
}

/// `cargo xtask setup`.
pub fn setup(args: &SetupArgs, no_install: bool) -> Result<()> {
    let needs = Needs::everything(args.arch);
    let (machine, ready) = ensure(&needs, no_install, args.dry_run)?;
    if !ready {
        return Ok(()); // a dry run told what is missing
    }
    for line in summary(&needs, &machine) {
        eprintln!("{line}");
    }
    Ok(())
}

/// Checks `needs` and installs what is missing (or, with `no_install` or
/// `dry_run`, only tells); returns the machine as it is at the end, and
/// whether it has everything (not so after a dry run that found
/// something missing).
fn ensure(needs: &Needs, no_install: bool, dry_run: bool) -> Result<(Machine, bool)> {
    let min = qemu_min();
    let machine = probe(needs);
    let plan = plan(needs, &machine, min);
    if plan.problems.is_empty() {
        return Ok((machine, true));
    }
    let problems: String = plan.problems.iter().map(|p| format!("\n  - {p}")).collect();
    if !machine.apt {
        let mut by_hand: Vec<String> = Vec::new();
        for line in plan.problems.iter().map(Problem::by_hand) {
            if !by_hand.contains(&line) {
                by_hand.push(line);
            }
        }
        let by_hand: String = by_hand.iter().map(|l| format!("\n  - {l}")).collect();
        bail!(
            "this machine is missing:{problems}\nand it has no apt-get to install it with. \
             Install by hand:{by_hand}\nthen run this again"
        );
    }
    let commands: String = plan
        .steps
        .iter()
        .flat_map(|s| command_lines(s, machine.root))
        .map(|c| format!("\n  {}", c.shown()))
        .collect();
    if dry_run {
        let fallback = plan.steps.iter().any(|s| {
            matches!(
                s,
                Step::Install {
                    release: Some(_),
                    ..
                }
            )
        });
        eprintln!(
            "missing:{problems}\nwould run:{commands}\n(dry run: nothing was run{})",
            if fallback {
                "; if the install from bookworm-backports fails, the same install without -t \
                 follows"
            } else {
                ""
            }
        );
        return Ok((machine, false));
    }
    if no_install {
        bail!(
            "missing:{problems}\n--no-install: nothing was installed. To install it, run:\
             {commands}\nor run `cargo xtask setup` (or this command without --no-install)"
        );
    }
    if !machine.root && !machine.sudo {
        bail!(
            "missing:{problems}\nxtask is not root and there is no sudo: run as root:{}",
            plan.steps
                .iter()
                .flat_map(|s| command_lines(s, true))
                .map(|c| format!("\n  {}", c.shown()))
                .collect::<String>()
        );
    }
    eprintln!("setup: installing what is missing:{problems}");
    if !machine.root && std::io::stdin().is_terminal() {
        // Any password prompt comes now, not under a spinner.
        run_plain(&["sudo", "-v"])?;
    }
    for step in &plan.steps {
        run_step(step, machine.root, &mut run_line)?;
    }
    let after = probe(needs);
    let left = self::plan(needs, &after, min).problems;
    if !left.is_empty() {
        let left: String = left.iter().map(|p| format!("\n  - {p}")).collect();
        let raised = if min == QEMU_MIN_VERSION {
            String::new()
        } else {
            format!(
                "\n(QEMU_MIN_MAJOR={} in the environment asks for QEMU {}.{})",
                min.0, min.0, min.1
            )
        };
        bail!("still missing after installing:{left}{raised}");
    }
    eprintln!("setup: done");
    Ok((after, true))
}

/// Runs `argv` with the terminal (for sudo's prompt), printing it first.
fn run_plain(argv: &[&str]) -> Result<()> {
    eprintln!("$ {}", argv.join(" "));
    let status = Process::new(argv[0])
        .args(&argv[1..])
        .status()
        .with_context(|| format!("cannot run {}", argv[0]))?;
    if !status.success() {
        bail!("`{}` failed ({status})", argv.join(" "));
    }
    Ok(())
}

/// Runs the command lines of `step` with `run`; falls back to the
/// default release where an install from another one fails.
fn run_step(
    step: &Step,
    root: bool,
    run: &mut dyn FnMut(&CommandLine) -> Result<()>,
) -> Result<()> {
    for line in command_lines(step, root) {
        if let Err(e) = run(&line) {
            let Step::Install {
                packages,
                release: Some(release),
            } = step
            else {
                return Err(e);
            };
            eprintln!(
                "{e:#}\nsetup: installing from {release} failed; falling back to the default \
                 release"
            );
            let fallback = Step::Install {
                packages: packages.clone(),
                release: None,
            };
            return run_step(&fallback, root, run);
        }
    }
    Ok(())
}

/// Runs one command line with a spinner showing its last line of output;
/// fails quoting the end of its output.
fn run_line(line: &CommandLine) -> Result<()> {
    let shown = line.shown();
    eprintln!("$ {shown}");
    let label = line.argv[..2.min(line.argv.len())].join(" ");
    let task = Task::start(&label);
    let mut cmd = line.process();
    let result = match &line.input {
        None => progress::run_captured(cmd, &task),
        Some(text) => {
            // Only `tee` takes input: its stdout would repeat it.
            cmd.stdin(Stdio::piped()).stdout(Stdio::null());
            run_with_input(cmd, text).map(|status| (status, String::new()))
        }
    };
    let (status, log) = result.with_context(|| format!("cannot run {}", line.argv[0]))?;
    let took = task.elapsed().as_secs_f64();
    if !status.success() {
        task.clear();
        bail!(
            "`{shown}` failed ({status}); the end of its output:\n{}",
            progress::tail(&log, 30)
        );
    }
    task.finish(&format!("  ok ({took:.1} s)"));
    Ok(())
}

/// Runs `cmd` with `text` on its stdin.
fn run_with_input(mut cmd: Process, text: &str) -> std::io::Result<std::process::ExitStatus> {
    use std::io::Write;
    let mut child = cmd.spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes())?;
    }
    child.wait()
}

/// Looks at the machine for what `needs` asks.
fn probe(needs: &Needs) -> Machine {
    let apt = on_path("apt-get");
    let qemu = needs
        .qemu
        .iter()
        .map(|&arch| (arch, qemu_found(qemu_of(arch).0)))
        .collect();
    let all_qemu: Vec<&'static str> = Arch::ALL.iter().map(|&a| qemu_of(a).1).collect();
    let qemu_packages_installed = installed(&all_qemu);
    let missing_packages = if needs.kernel_build {
        let have = installed(&linux_riscv64::PACKAGES);
        linux_riscv64::PACKAGES
            .into_iter()
            .filter(|p| !have.contains(p))
            .collect()
    } else {
        Vec::new()
    };
    let mut listed: Vec<&'static str> = Vec::new();
    if needs.arm64_packages {
        listed.extend(ARM64_LISTED);
    }
    if needs.uboot {
        listed.push(UBOOT_LISTED);
    }
    let have = apt_lists(&listed);
    let unlisted = listed.into_iter().filter(|p| !have.contains(p)).collect();
    Machine {
        apt,
        root: is_root(),
        sudo: on_path("sudo"),
        qemu,
        qemu_packages_installed,
        missing_packages,
        arm64: !needs.arm64_packages || dpkg_knows(ARM64),
        unlisted,
        backports: sources::machine_has_backports(),
        bookworm: os_codename().as_deref() == Some(sources::BASE_SUITE)
            || sources::machine_has_base_suite(),
        mirror: sources::machine_mirror(),
    }
}

/// What `binary --version` says.
fn qemu_found(binary: &str) -> Found {
    let out = Process::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .output();
    match out {
        Err(_) => Found::Missing,
        Ok(out) if !out.status.success() => Found::Unreadable,
        Ok(out) => match crate::qemu::parse_version(&String::from_utf8_lossy(&out.stdout)) {
            Some((a, b, c)) => Found::Version(a, b, c),
            None => Found::Unreadable,
        },
    }
}

/// Which of `packages` dpkg has installed (none without dpkg).
fn installed(packages: &[&'static str]) -> Vec<&'static str> {
    let out = Process::new("dpkg-query")
        .arg("-W")
        .arg("-f")
        .arg("${Package}\t${db:Status-Abbrev}\n")
        .args(packages)
        .stdin(Stdio::null())
        .output();
    // dpkg-query fails when one package is unknown, but still lists the
    // others.
    let text = out.map_or_else(
        |_| String::new(),
        |o| String::from_utf8_lossy(&o.stdout).into_owned(),
    );
    let have = parse_installed(&text);
    packages
        .iter()
        .copied()
        .filter(|p| have.iter().any(|h| h == p))
        .collect()
}

/// The packages `dpkg-query -W -f '${Package}\t${db:Status-Abbrev}\n'`
/// lists as installed (`ii`).
pub fn parse_installed(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let (name, status) = line.split_once('\t')?;
            status.starts_with("ii").then(|| name.trim().to_string())
        })
        .collect()
}

/// Whether dpkg has `arch` (its own or a foreign one).
fn dpkg_knows(arch: &str) -> bool {
    let dpkg = |arg: &str| {
        Process::new("dpkg")
            .arg(arg)
            .stdin(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    match (
        dpkg("--print-architecture"),
        dpkg("--print-foreign-architectures"),
    ) {
        (Some(native), Some(foreign)) => {
            crate::guests::debian::knows_architecture(&native, &foreign, arch)
        }
        _ => false,
    }
}

/// Which of `packages` (`name` or `name:arch`) apt's package lists have:
/// one `apt-cache show` (each run reads all the lists, over a second on
/// a machine without apt's binary cache).
fn apt_lists(packages: &[&'static str]) -> Vec<&'static str> {
    if packages.is_empty() {
        return Vec::new();
    }
    let out = Process::new("apt-cache")
        .args(["show", "--no-all-versions"])
        .args(packages)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    let text = out.map_or_else(
        |_| String::new(),
        |o| String::from_utf8_lossy(&o.stdout).into_owned(),
    );
    let found = parse_shown(&text);
    packages
        .iter()
        .copied()
        .filter(|wanted| {
            let (name, arch) = match wanted.split_once(':') {
                Some((name, arch)) => (name, Some(arch)),
                None => (*wanted, None),
            };
            found
                .iter()
                .any(|(n, a)| n == name && arch.is_none_or(|arch| a == arch))
        })
        .collect()
}

/// The (package, architecture) of each record of `apt-cache show` output.
pub fn parse_shown(text: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut package = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("Package:") {
            package = Some(name.trim().to_string());
        } else if let Some(arch) = line.strip_prefix("Architecture:")
            && let Some(name) = package.take()
        {
            found.push((name, arch.trim().to_string()));
        }
    }
    found
}

/// Whether `program` is on `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            let file = dir.join(program);
            file.is_file()
        })
    })
}

/// Whether this process runs as root.
fn is_root() -> bool {
    Process::new("id")
        .arg("-u")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `VERSION_CODENAME` of `/etc/os-release`.
fn os_codename() -> Option<String> {
    codename(&std::fs::read_to_string("/etc/os-release").ok()?)
}

/// `VERSION_CODENAME` of an os-release file's `text`.
pub fn codename(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let value = line.trim().strip_prefix("VERSION_CODENAME=")?;
        let value = value.trim_matches(|c| c == '"' || c == '\'');
        (!value.is_empty()).then(|| value.to_string())
    })
}

/// What `cargo xtask setup` found, one line per kind.
fn summary(needs: &Needs, machine: &Machine) -> Vec<String> {
    let mut lines = Vec::new();
    let qemu: Vec<String> = machine
        .qemu
        .iter()
        .map(|(arch, found)| match found {
            Found::Version(a, b, c) => format!("{} {a}.{b}.{c}", qemu_of(*arch).0),
            other => format!("{} {other:?}", qemu_of(*arch).0),
        })
        .collect();
    if !qemu.is_empty() {
        lines.push(format!("setup: QEMU: {}", qemu.join(", ")));
    }
    if needs.kernel_build {
        lines.push(format!(
            "setup: the riscv64 Linux guest's build: {} installed",
            linux_riscv64::PACKAGES.join(", ")
        ));
    }
    let mut listed: Vec<&str> = Vec::new();
    if needs.arm64_packages {
        lines.push(format!("setup: dpkg has the {ARM64} architecture"));
        listed.extend(ARM64_LISTED);
    }
    if needs.uboot {
        listed.push(UBOOT_LISTED);
    }
    if !listed.is_empty() {
        lines.push(format!("setup: apt's lists have {}", listed.join(", ")));
    }
    lines.push("setup: everything is there".into());
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    /// A Debian 12 machine as root with everything `needs` asks for.
    fn complete(needs: &Needs) -> Machine {
        Machine {
            apt: true,
            root: true,
            sudo: false,
            qemu: needs
                .qemu
                .iter()
                .map(|&a| (a, Found::Version(10, 0, 2)))
                .collect(),
            qemu_packages_installed: vec!["qemu-system-misc", "qemu-system-arm", "qemu-system-x86"],
            missing_packages: Vec::new(),
            arm64: true,
            unlisted: Vec::new(),
            backports: true,
            bookworm: true,
            mirror: "http://m.example/debian".into(),
        }
    }

    fn needs_of(words: &[&str]) -> Needs {
        let cli = Cli::try_parse_from(["cargo xtask"].iter().chain(words)).unwrap();
        Needs::of(&cli.command)
    }

    #[test]
    fn each_command_needs_what_it_boots() {
        assert_eq!(needs_of(&["lint"]), Needs::default());
        assert_eq!(needs_of(&["build", "--arch", "x86_64"]), Needs::default());
        assert_eq!(
            needs_of(&["run"]),
            Needs {
                qemu: vec![Arch::Riscv64],
                ..Needs::default()
            }
        );
        assert_eq!(
            needs_of(&["run", "--linux"]),
            Needs {
                qemu: vec![Arch::Riscv64],
                kernel_build: true,
                ..Needs::default()
            }
        );
        assert_eq!(
            needs_of(&["run", "--arch", "aarch64", "--linux"]),
            Needs {
                qemu: vec![Arch::Aarch64],
                arm64_packages: true,
                ..Needs::default()
            }
        );
        assert!(needs_of(&["run", "--uboot"]).uboot);
        assert_eq!(
            needs_of(&["test", "--arch", "x86_64"]),
            Needs {
                qemu: vec![Arch::X86_64],
                ..Needs::default()
            }
        );
        let everything = Needs {
            qemu: Arch::ALL.to_vec(),
            kernel_build: true,
            arm64_packages: true,
            uboot: true,
        };
        assert_eq!(needs_of(&["test"]), everything);
        assert_eq!(needs_of(&["setup"]), everything);
        assert_eq!(
            needs_of(&["bench"]),
            Needs {
                uboot: false,
                ..everything
            }
        );
        assert!(needs_of(&["test", "--arch", "riscv64"]).uboot);
    }

    #[test]
    fn nothing_missing_means_nothing_to_run() {
        let needs = needs_of(&["setup"]);
        let plan = plan(&needs, &complete(&needs), QEMU_MIN_VERSION);
        assert_eq!(plan, Plan::default());
    }

    #[test]
    fn an_old_qemu_comes_from_backports_with_its_siblings() {
        let needs = needs_of(&["run"]);
        let mut machine = complete(&needs);
        machine.qemu = vec![(Arch::Riscv64, Found::Version(7, 2, 22))];
        machine.qemu_packages_installed = vec!["qemu-system-misc", "qemu-system-x86"];
        machine.backports = false;
        let plan = plan(&needs, &machine, (10, 0));
        assert_eq!(
            plan.problems[0].to_string(),
            "qemu-system-riscv64 is 7.2.22, need >= 10.0"
        );
        assert_eq!(
            plan.steps,
            [
                Step::AddBackports {
                    mirror: "http://m.example/debian".into()
                },
                Step::Update,
                Step::Install {
                    packages: vec!["qemu-system-misc", "qemu-system-x86"],
                    release: Some("bookworm-backports"),
                },
            ]
        );
        let shown: Vec<String> = plan
            .steps
            .iter()
            .flat_map(|s| command_lines(s, true))
            .map(|c| c.shown())
            .collect();
        assert_eq!(
            shown,
            [
                "printf 'Types: deb\\nURIs: http://m.example/debian\\nSuites: bookworm-backports\\n\
                 Components: main\\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\\n' \
                 | tee /etc/apt/sources.list.d/backports.sources",
                "apt-get update",
                "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
                 -t bookworm-backports qemu-system-misc qemu-system-x86",
            ]
        );
    }

    #[test]
    fn backports_is_not_added_twice_nor_off_debian_12() {
        let needs = needs_of(&["run", "--arch", "x86_64"]);
        let mut machine = complete(&needs);
        machine.qemu = vec![(Arch::X86_64, Found::Missing)];
        machine.qemu_packages_installed = Vec::new();
        let plan_with = plan(&needs, &machine, (10, 0));
        assert_eq!(
            plan_with.steps,
            [
                Step::Update,
                Step::Install {
                    packages: vec!["qemu-system-x86"],
                    release: Some("bookworm-backports"),
                },
            ],
            "already configured"
        );
        machine.bookworm = false;
        machine.backports = false;
        assert_eq!(
            plan(&needs, &machine, (10, 0)).steps,
            [
                Step::Update,
                Step::Install {
                    packages: vec!["qemu-system-x86"],
                    release: None,
                },
            ],
            "not Debian 12: the distribution's own QEMU"
        );
    }

    #[test]
    fn the_version_check_takes_the_minimum_asked_for() {
        let needs = needs_of(&["run"]);
        let machine = complete(&needs);
        assert!(plan(&needs, &machine, (10, 0)).problems.is_empty());
        let raised = plan(&needs, &machine, (11, 0));
        assert_eq!(
            raised.problems[0].to_string(),
            "qemu-system-riscv64 is 10.0.2, need >= 11.0"
        );
        let mut odd = machine.clone();
        odd.qemu = vec![(Arch::Riscv64, Found::Unreadable)];
        assert!(!plan(&needs, &odd, (10, 0)).problems.is_empty());
        odd.qemu = vec![(Arch::Riscv64, Found::Version(10, 1, 0))];
        assert!(plan(&needs, &odd, (10, 0)).problems.is_empty());
    }

    #[test]
    fn missing_kernel_packages_arch_and_lists_are_installed_in_order() {
        let needs = needs_of(&["test"]);
        let mut machine = complete(&needs);
        machine.missing_packages = vec!["linux-source-6.1", "bc"];
        machine.arm64 = false;
        machine.unlisted = vec![
            "linux-image-arm64:arm64",
            "busybox-static:arm64",
            "u-boot-qemu",
        ];
        let plan = plan(&needs, &machine, (10, 0));
        assert_eq!(plan.problems.len(), 3);
        assert_eq!(
            plan.steps,
            [
                Step::AddArchitecture("arm64"),
                Step::Update,
                Step::Install {
                    packages: vec!["linux-source-6.1", "bc"],
                    release: None,
                },
            ]
        );
        // Only the lists a command needs count.
        let run = needs_of(&["run", "--uboot"]);
        let plan = self::plan(&run, &machine, (10, 0));
        assert_eq!(
            plan.problems,
            [Problem::Lists(vec!["u-boot-qemu"])],
            "{plan:?}"
        );
        assert_eq!(plan.steps, [Step::Update]);
    }

    #[test]
    fn a_failed_backports_install_falls_back_to_the_default_release() {
        let step = Step::Install {
            packages: vec!["qemu-system-misc"],
            release: Some("bookworm-backports"),
        };
        let mut ran = Vec::new();
        run_step(&step, true, &mut |line| {
            ran.push(line.shown());
            if line.argv.iter().any(|a| a == "-t") {
                bail!("no such release");
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(
            ran,
            [
                "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -t \
                 bookworm-backports qemu-system-misc",
                "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
                 qemu-system-misc",
            ]
        );
        // Any other step's failure is the setup's failure.
        let err = run_step(&Step::Update, true, &mut |_| bail!("offline")).unwrap_err();
        assert_eq!(err.to_string(), "offline");
        let mut calls = 0;
        let err = run_step(&step, true, &mut |_| {
            calls += 1;
            bail!("broken")
        })
        .unwrap_err();
        assert_eq!((err.to_string().as_str(), calls), ("broken", 2));
    }

    #[test]
    fn not_root_goes_through_sudo_with_the_environment_as_arguments() {
        let step = Step::Install {
            packages: vec!["bc"],
            release: None,
        };
        let line = &command_lines(&step, false)[0];
        assert_eq!(
            line.shown(),
            "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends bc"
        );
        let cmd = line.process();
        assert_eq!(cmd.get_program(), "sudo");
        let args: Vec<_> = cmd.get_args().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(args[..2], ["DEBIAN_FRONTEND=noninteractive", "apt-get"]);
        let root = &command_lines(&step, true)[0].process();
        assert_eq!(root.get_program(), "apt-get");
        assert!(
            root.get_envs()
                .any(|(k, v)| k == "DEBIAN_FRONTEND" && v == Some("noninteractive".as_ref()))
        );
        assert_eq!(
            command_lines(&Step::AddArchitecture("arm64"), false)[0].shown(),
            "sudo dpkg --add-architecture arm64"
        );
    }

    #[test]
    fn shown_commands_are_quoted_for_a_shell() {
        assert_eq!(shell_word("qemu-system-misc"), "qemu-system-misc");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(printf_text("50%\n"), r"50%%\n");
    }

    #[test]
    fn installed_packages_are_the_ii_ones() {
        let text = "bc\tii \nflex\tun \nlibssl-dev\tii \nmake\trc \n";
        assert_eq!(parse_installed(text), ["bc", "libssl-dev"]);
        assert!(parse_installed("").is_empty());
    }

    #[test]
    fn listed_packages_are_the_records_apt_cache_shows() {
        let text = "Package: u-boot-qemu\nVersion: 2023.01\nArchitecture: all\nSize: 1\n\n\
                    Package: busybox-static\nSource: busybox\nArchitecture: arm64\n\n";
        assert_eq!(
            parse_shown(text),
            [
                ("u-boot-qemu".to_string(), "all".to_string()),
                ("busybox-static".to_string(), "arm64".to_string()),
            ]
        );
        assert!(parse_shown("").is_empty());
    }

    #[test]
    fn the_codename_is_read_from_os_release() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\n\
                      VERSION_CODENAME=bookworm\nID=debian\n";
        assert_eq!(codename(debian).as_deref(), Some("bookworm"));
        assert_eq!(
            codename("VERSION_CODENAME=\"noble\"\n").as_deref(),
            Some("noble")
        );
        assert_eq!(codename("ID=arch\n"), None);
    }

    #[test]
    fn without_apt_the_user_is_told_what_to_install() {
        let problem = Problem::Qemu {
            binary: "qemu-system-riscv64",
            package: "qemu-system-misc",
            found: Found::Missing,
            min: (10, 0),
        };
        assert_eq!(
            problem.by_hand(),
            "QEMU >= 10.0 providing qemu-system-riscv64 (Debian's qemu-system-misc)"
        );
        assert!(
            Problem::Packages(vec!["bc"])
                .by_hand()
                .contains("linux-source-6.1.tar.xz")
        );
    }

    #[test]
    fn ci_sets_up_through_xtask_before_its_steps() {
        let ci = include_str!("../../.ci/run");
        let setup = ci
            .find("cargo xtask setup")
            .expect(".ci/run runs cargo xtask setup");
        let lint = ci.find("cargo xtask lint").expect(".ci/run runs the lint");
        assert!(setup < lint);
        assert!(
            !ci.contains("linux-source-6.1"),
            "the kernel packages are setup.rs's"
        );
    }

    #[test]
    fn a_command_line_with_input_writes_it_to_the_program() {
        let file = std::env::temp_dir().join(format!("setup-tee-{}", std::process::id()));
        let line = CommandLine {
            sudo: false,
            env: Vec::new(),
            argv: vec!["tee".into(), file.display().to_string()],
            input: Some(sources::backports_entry("http://m.example/debian")),
        };
        run_line(&line).unwrap();
        let written = std::fs::read_to_string(&file).unwrap();
        assert_eq!(written, sources::backports_entry("http://m.example/debian"));
        std::fs::remove_file(&file).unwrap();
        let failing = CommandLine {
            sudo: false,
            env: vec![("LC_ALL", "C")],
            argv: vec![
                "sh".into(),
                "-c".into(),
                "echo first; echo last >&2; exit 4".into(),
            ],
            input: None,
        };
        let err = run_line(&failing).unwrap_err().to_string();
        assert!(
            err.ends_with("failed (exit status: 4); the end of its output:\nfirst\nlast"),
            "{err}"
        );
    }

    #[test]
    fn qemu_min_major_only_raises_the_minimum() {
        // Read at run time; the default is the arch table's.
        if std::env::var_os("QEMU_MIN_MAJOR").is_none() {
            assert_eq!(qemu_min(), QEMU_MIN_VERSION);
        }
    }
}
