//! Building a Linux kernel and a static `/init` from a kernel source
//! tarball, with the kernel's own build system and nothing else: `make
//! tinyconfig`, the config fragment merged with
//! `scripts/kconfig/merge_config.sh`, `make olddefconfig`, a check that
//! every option of the fragment is in the final `.config`, then `make
//! Image`. The `/init` is compiled against the kernel's own nolibc
//! (`tools/include/nolibc`, whose `headers` target makes it a sysroot) and
//! the UAPI headers `make headers` writes into the build directory, so no
//! C library is needed.
//!
//! The build directory is separate from the source (`O=`), and every
//! input that kbuild would otherwise take from the machine is pinned
//! (`KBUILD_BUILD_USER`, `_HOST`, `_TIMESTAMP`, `_VERSION`, the locale),
//! so the same source, fragment and compiler give the same `Image`.
//! Each step's output goes to a log file; a failing step's error quotes
//! the end of its log. While a step runs, its progress (the step, the
//! objects compiled so far and the last line of its log) is shown on the
//! build's spinner (`progress.rs`; on a terminal only).

use crate::progress::{self, Task};
use anyhow::{Context, Result, bail, ensure};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How the kernel is built: one architecture, one cross compiler.
#[derive(Clone, Copy, Debug)]
pub struct Toolchain {
    /// The kernel's `ARCH` (`riscv`).
    pub arch: &'static str,
    /// The kernel's `CROSS_COMPILE` prefix (`riscv64-linux-gnu-`).
    pub cross_compile: &'static str,
    /// The `make` target of the boot image (`Image`).
    pub image_target: &'static str,
    /// Where that target leaves the image, under the build directory.
    pub image_path: &'static str,
    /// Parallel jobs of the kernel build.
    pub jobs: u32,
}

/// The values kbuild bakes into the banner (`Linux version ... (USER@HOST)
/// #VERSION TIMESTAMP`) instead of the machine's.
pub const PINNED_ENV: [(&str, &str); 5] = [
    ("KBUILD_BUILD_USER", "guestaspace"),
    ("KBUILD_BUILD_HOST", "xtask"),
    ("KBUILD_BUILD_TIMESTAMP", "Thu Jan  1 00:00:00 UTC 1970"),
    ("KBUILD_BUILD_VERSION", "1"),
    ("LC_ALL", "C"),
];

/// A kernel tree being built: its source, its build directory, where
/// the logs go, and the spinner that shows how far it is.
pub struct Tree<'a> {
    pub toolchain: &'a Toolchain,
    pub source: PathBuf,
    pub build: PathBuf,
    pub logs: PathBuf,
    pub progress: &'a Task,
}

/// Unpacks `tarball` (`.tar.xz`) into `dir`, counting its files on
/// `progress`; returns the one directory it holds.
pub fn unpack(tarball: &Path, dir: &Path, progress: &Task) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tar = Command::new("tar");
    tar.arg("-C")
        .arg(dir)
        .arg("-xvf")
        .arg(tarball)
        .stdin(Stdio::null());
    let (mut files, mut errors) = (0u64, String::new());
    let status = progress::run_lines(tar, |line| {
        // `tar -v` names each file it writes; anything else is a message.
        if line.starts_with("tar: ") {
            errors.push_str(line);
        } else {
            files += 1;
            if files % 256 == 0 {
                progress.set_detail(format!("unpacking the source: {files} files"));
            }
        }
    })
    .context("cannot run tar to unpack the kernel source")?;
    ensure!(
        status.success(),
        "tar -xf {} failed ({status}){}",
        tarball.display(),
        if errors.is_empty() {
            String::new()
        } else {
            format!(":\n{}", errors.trim_end())
        }
    );
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    ensure!(
        dirs.len() == 1,
        "{} unpacked into {} directories, expected one",
        tarball.display(),
        dirs.len()
    );
    Ok(dirs.remove(0))
}

impl Tree<'_> {
    /// `make -C source O=build ARCH=.. CROSS_COMPILE=.. args`, pinned.
    fn make(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("make");
        cmd.arg("-C")
            .arg(&self.source)
            .arg(format!("O={}", self.build.display()));
        self.pin(&mut cmd);
        cmd.args(args);
        cmd
    }

    /// The environment every step runs with.
    fn pin(&self, cmd: &mut Command) {
        let t = self.toolchain;
        cmd.env("ARCH", t.arch)
            .env("CROSS_COMPILE", t.cross_compile)
            .envs(PINNED_ENV)
            // A make that runs us (or cargo's jobserver) must not leak in.
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS")
            .env_remove("MAKELEVEL")
            .env_remove("KCONFIG_CONFIG")
            .stdin(Stdio::null());
    }

    /// Runs `cmd` with its output in the log `name`, showing how far it
    /// is on the spinner; fails quoting the log's end.
    fn run(&self, name: &str, cmd: Command) -> Result<()> {
        std::fs::create_dir_all(&self.logs)
            .with_context(|| format!("cannot create {}", self.logs.display()))?;
        let log = self.logs.join(format!("{name}.log"));
        let mut out =
            File::create(&log).with_context(|| format!("cannot write {}", log.display()))?;
        let program = cmd.get_program().to_string_lossy().into_owned();
        self.progress.set_detail(format!("{name}: started"));
        let mut counter = StepCounter::default();
        let mut write_error = None;
        let status = progress::run_lines(cmd, |line| {
            if write_error.is_none()
                && let Err(e) = out.write_all(line.as_bytes())
            {
                write_error = Some(e);
            }
            if let Some(detail) = counter.line(name, line) {
                self.progress.set_detail(detail);
            }
        })
        .with_context(|| format!("cannot run {program} ({name})"))?;
        if let Some(e) = write_error {
            return Err(e).with_context(|| format!("cannot write {}", log.display()));
        }
        drop(out);
        if !status.success() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            bail!(
                "the kernel build's step `{name}` failed ({status}); the end of {}:\n{}",
                log.display(),
                tail(&text, 30)
            );
        }
        Ok(())
    }

    /// `tinyconfig`, then `fragment` merged on top, then `olddefconfig`;
    /// fails naming every option of the fragment the final `.config` lost.
    pub fn configure(&self, fragment: &Path) -> Result<()> {
        self.run("tinyconfig", self.make(&["tinyconfig"]))?;
        let config = self.build.join(".config");
        let mut merge = Command::new(self.source.join("scripts/kconfig/merge_config.sh"));
        merge
            .current_dir(&self.source)
            .arg("-m")
            .arg("-O")
            .arg(&self.build)
            .arg(&config)
            .arg(fragment);
        self.pin(&mut merge);
        self.run("merge_config", merge)?;
        self.run("olddefconfig", self.make(&["olddefconfig"]))?;
        let wanted = crate::fsio::read(fragment)?;
        let got = crate::fsio::read(&config)?;
        let lost = lost_options(
            &String::from_utf8_lossy(&wanted),
            &String::from_utf8_lossy(&got),
        );
        ensure!(
            lost.is_empty(),
            "the kernel's .config ({}) lost options of {}: Kconfig changed them (a missing \
             dependency?):\n  {}",
            config.display(),
            fragment.display(),
            lost.join("\n  ")
        );
        Ok(())
    }

    /// Builds the boot image and the UAPI headers; returns the image's path.
    pub fn build_image(&self) -> Result<PathBuf> {
        let t = self.toolchain;
        let jobs = format!("-j{}", t.jobs);
        // A kernel build is long: let whatever else runs go first.
        let mut cmd = Command::new("nice");
        cmd.args(["-n", "10"]);
        cmd.arg("make")
            .arg("-C")
            .arg(&self.source)
            .arg(format!("O={}", self.build.display()));
        self.pin(&mut cmd);
        cmd.args([jobs.as_str(), t.image_target, "headers"]);
        self.run("image", cmd)?;
        let image = self.build.join(t.image_path);
        ensure!(
            image.is_file(),
            "the kernel build made no {}",
            image.display()
        );
        Ok(image)
    }

    /// Compiles the C program `source` into a static, stripped executable
    /// `out` against nolibc and the kernel's UAPI headers (after
    /// [`Tree::build_image`], which writes them).
    pub fn build_init(&self, source: &Path, out: &Path) -> Result<()> {
        let nolibc = self.build.join("nolibc");
        std::fs::create_dir_all(&nolibc)
            .with_context(|| format!("cannot create {}", nolibc.display()))?;
        let mut headers = Command::new("make");
        headers
            .arg("-C")
            .arg(self.source.join("tools/include/nolibc"))
            .arg(format!("OUTPUT={}/", nolibc.display()))
            .arg("headers");
        self.pin(&mut headers);
        self.run("nolibc", headers)?;
        let cc = format!("{}gcc", self.toolchain.cross_compile);
        let unstripped = out.with_extension("unstripped");
        let mut compile = Command::new(&cc);
        compile.args(init_cflags(
            &nolibc.join("sysroot/include"),
            &self.build.join("usr/include"),
        ));
        compile.arg("-o").arg(&unstripped).arg(source).arg("-lgcc");
        self.pin(&mut compile);
        self.run("init", compile)?;
        let mut strip = Command::new(format!("{}strip", self.toolchain.cross_compile));
        strip.arg("-o").arg(out).arg(&unstripped);
        self.pin(&mut strip);
        self.run("strip", strip)
    }
}

/// The compiler flags of `/init`: small, static, no C library but nolibc
/// (its sysroot first, then the kernel's UAPI headers), no build id or
/// unwind tables that would only make it bigger.
pub fn init_cflags(nolibc_include: &Path, uapi_include: &Path) -> Vec<String> {
    let mut flags: Vec<String> = [
        "-Os",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-static",
        "-nostdlib",
        "-fno-asynchronous-unwind-tables",
        "-fno-ident",
        "-Wl,--build-id=none",
    ]
    .map(String::from)
    .into();
    flags.push(format!("-I{}", nolibc_include.display()));
    flags.push(format!("-I{}", uapi_include.display()));
    flags
}

/// The options of a config `fragment` that `config` does not hold as the
/// fragment says: each `CONFIG_X=value` line and each `# CONFIG_X is not
/// set` line (the last one of a symbol wins, as in `merge_config.sh`),
/// in the fragment's order. An option that is not set may also be absent
/// from `config` altogether (its dependencies are off).
pub fn lost_options(fragment: &str, config: &str) -> Vec<String> {
    let mut wanted: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
    for (n, line) in fragment.lines().map(str::trim_end).enumerate() {
        if let Some(symbol) = config_symbol(line) {
            wanted.insert(symbol, (n, line));
        }
    }
    let got: BTreeMap<&str, &str> = config
        .lines()
        .map(str::trim_end)
        .filter_map(|line| config_symbol(line).map(|s| (s, line)))
        .collect();
    let mut lost: Vec<(usize, String)> = wanted
        .into_iter()
        .filter(|&(symbol, (_, line))| {
            let unset = line.starts_with('#');
            match got.get(symbol) {
                Some(&have) => have != line,
                None => !unset,
            }
        })
        .map(|(symbol, (n, line))| {
            let have = got.get(symbol).copied().unwrap_or("absent");
            (n, format!("{line}   (the .config has: {have})"))
        })
        .collect();
    lost.sort();
    lost.into_iter().map(|(_, text)| text).collect()
}

/// The symbol a `.config` line sets (`CONFIG_X=...`) or unsets (`#
/// CONFIG_X is not set`); `None` for any other line.
fn config_symbol(line: &str) -> Option<&str> {
    let symbol = match line.strip_prefix("# ") {
        Some(rest) => rest.strip_suffix(" is not set")?,
        None => line.split_once('=')?.0,
    };
    let valid = symbol.starts_with("CONFIG_")
        && symbol
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    valid.then_some(symbol)
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    progress::tail(text, lines)
}

/// What a step has done so far, from its output: kbuild prints one
/// `  CC      path/file.o` (or `AS`, `LD`, `AR`, ...) line per file it
/// makes.
#[derive(Default)]
struct StepCounter {
    /// Files compiled or assembled (`CC`, `AS`, `HOSTCC`).
    compiled: u64,
}

impl StepCounter {
    /// Counts `line` of step `name`; returns what the spinner says now.
    fn line(&mut self, name: &str, line: &str) -> Option<String> {
        let shown = progress::one_line(line);
        if shown.is_empty() {
            return None;
        }
        let word = shown.split_whitespace().next().unwrap_or("");
        if matches!(word, "CC" | "AS" | "HOSTCC") {
            self.compiled += 1;
        }
        Some(if self.compiled > 0 {
            format!("{name}: {} files compiled; {shown}", self.compiled)
        } else {
            format!("{name}: {shown}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_set_and_unset_lines() {
        assert_eq!(config_symbol("CONFIG_MMU=y"), Some("CONFIG_MMU"));
        assert_eq!(
            config_symbol("CONFIG_SERIAL_8250_NR_UARTS=1"),
            Some("CONFIG_SERIAL_8250_NR_UARTS")
        );
        assert_eq!(config_symbol("# CONFIG_SMP is not set"), Some("CONFIG_SMP"));
        assert_eq!(config_symbol("# The kernel is entered directly"), None);
        assert_eq!(config_symbol("# console=ttyS0 on that UART."), None);
        assert_eq!(config_symbol(""), None);
        assert_eq!(config_symbol("NOT_CONFIG=y"), None);
    }

    #[test]
    fn every_lost_option_is_named_with_what_the_config_has() {
        let fragment = "# a comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=1\n\
                        # CONFIG_D is not set\nCONFIG_E=y\nCONFIG_C=2\n";
        let config = "CONFIG_A=y\nCONFIG_B=y\nCONFIG_C=2\n# CONFIG_E is not set\n";
        assert_eq!(
            lost_options(fragment, config),
            [
                "# CONFIG_B is not set   (the .config has: CONFIG_B=y)",
                "CONFIG_E=y   (the .config has: # CONFIG_E is not set)",
            ],
            "C's last value holds; D may be absent when unset"
        );
        assert_eq!(
            lost_options("CONFIG_F=y\n", ""),
            ["CONFIG_F=y   (the .config has: absent)"]
        );
        assert!(lost_options(fragment, "CONFIG_A=y\nCONFIG_C=2\nCONFIG_E=y\n").is_empty());
    }

    #[test]
    fn the_repository_fragment_sets_what_its_comments_promise() {
        let fragment = include_str!("../../linux/riscv64.config");
        let options: Vec<&str> = fragment.lines().filter_map(config_symbol).collect();
        for symbol in [
            "CONFIG_MMU",
            "CONFIG_RISCV_SBI",
            "CONFIG_SERIAL_EARLYCON_RISCV_SBI",
            "CONFIG_BLK_DEV_INITRD",
            "CONFIG_SMP",
        ] {
            assert!(options.contains(&symbol), "{symbol}");
        }
        // Every option has a comment above it (or shares the one of the
        // option before it).
        let lines: Vec<&str> = fragment.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            if config_symbol(line).is_some() {
                let above = lines[n - 1];
                assert!(
                    above.starts_with("# ") || config_symbol(above).is_some(),
                    "line {}: {line} has no reason above it",
                    n + 1
                );
            }
        }
        // The fragment checks clean against itself.
        assert!(lost_options(fragment, fragment).is_empty());
    }

    #[test]
    fn init_is_built_static_without_a_c_library() {
        let flags = init_cflags(
            Path::new("/b/nolibc/sysroot/include"),
            Path::new("/b/usr/include"),
        );
        assert!(flags.iter().any(|f| f == "-nostdlib"));
        assert!(flags.iter().any(|f| f == "-static"));
        let nolibc = flags
            .iter()
            .position(|f| f == "-I/b/nolibc/sysroot/include");
        let uapi = flags.iter().position(|f| f == "-I/b/usr/include");
        assert!(nolibc.unwrap() < uapi.unwrap(), "nolibc's headers first");
    }

    #[test]
    fn the_spinner_counts_the_files_kbuild_compiles() {
        let mut counter = StepCounter::default();
        assert_eq!(
            counter
                .line("image", "make[1]: Entering directory '/b'\n")
                .as_deref(),
            Some("image: make[1]: Entering directory '/b'")
        );
        assert_eq!(counter.line("image", "\n"), None);
        assert_eq!(
            counter
                .line("image", "  HOSTCC  scripts/basic/fixdep\n")
                .as_deref(),
            Some("image: 1 files compiled; HOSTCC  scripts/basic/fixdep")
        );
        counter.line("image", "  CC      init/main.o\n");
        counter.line("image", "  AS      arch/riscv/kernel/head.o\n");
        assert_eq!(
            counter.line("image", "  LD      vmlinux\n").as_deref(),
            Some("image: 3 files compiled; LD      vmlinux")
        );
    }

    #[test]
    fn a_step_s_output_goes_to_its_log_and_a_failure_quotes_it() {
        let dir = std::env::temp_dir().join(format!("kbuild-test-{}", std::process::id()));
        let task = Task::start("test");
        let tree = Tree {
            toolchain: &Toolchain {
                arch: "riscv",
                cross_compile: "riscv64-linux-gnu-",
                image_target: "Image",
                image_path: "arch/riscv/boot/Image",
                jobs: 1,
            },
            source: dir.clone(),
            build: dir.clone(),
            logs: dir.join("logs"),
            progress: &task,
        };
        let mut good = Command::new("sh");
        good.args(["-c", "echo '  CC      a.o'; echo warning >&2"]);
        tree.run("good", good).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("logs/good.log")).unwrap(),
            "  CC      a.o\nwarning\n"
        );
        let mut bad = Command::new("sh");
        bad.args(["-c", "for n in $(seq 1 40); do echo line $n; done; exit 2"]);
        let err = tree.run("bad", bad).unwrap_err().to_string();
        assert!(
            err.starts_with("the kernel build's step `bad` failed (exit status: 2); the end of "),
            "{err}"
        );
        assert!(err.contains(":\nline 11\n"), "{err}");
        assert!(
            !err.contains("line 10\n") && err.ends_with("line 40"),
            "{err}"
        );
        task.clear();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failing_step_quotes_the_end_of_its_log() {
        let text: String = (1..=40).map(|n| format!("line {n}\n")).collect();
        let end = tail(&text, 30);
        assert!(end.starts_with("line 11\n") && end.ends_with("line 40"));
        assert_eq!(tail("one\ntwo", 30), "one\ntwo");
    }
}
