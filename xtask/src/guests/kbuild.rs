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
//! the end of its log.

use anyhow::{Context, Result, bail, ensure};
use std::collections::BTreeMap;
use std::fs::File;
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

/// A kernel tree being built: its source, its build directory and where
/// the logs go.
pub struct Tree<'a> {
    pub toolchain: &'a Toolchain,
    pub source: PathBuf,
    pub build: PathBuf,
    pub logs: PathBuf,
}

/// Unpacks `tarball` (`.tar.xz`) into `dir`; returns the one directory it
/// holds.
pub fn unpack(tarball: &Path, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let status = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-xf")
        .arg(tarball)
        .stdin(Stdio::null())
        .status()
        .context("cannot run tar to unpack the kernel source")?;
    ensure!(
        status.success(),
        "tar -xf {} failed ({status})",
        tarball.display()
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

    /// Runs `cmd` with its output in the log `name`; fails quoting the
    /// log's end.
    fn run(&self, name: &str, mut cmd: Command) -> Result<()> {
        std::fs::create_dir_all(&self.logs)
            .with_context(|| format!("cannot create {}", self.logs.display()))?;
        let log = self.logs.join(format!("{name}.log"));
        let out = File::create(&log).with_context(|| format!("cannot write {}", log.display()))?;
        let err = out.try_clone()?;
        let program = cmd.get_program().to_string_lossy().into_owned();
        let status = cmd
            .stdout(out)
            .stderr(err)
            .status()
            .with_context(|| format!("cannot run {program} ({name})"))?;
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
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
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
    fn a_failing_step_quotes_the_end_of_its_log() {
        let text: String = (1..=40).map(|n| format!("line {n}\n")).collect();
        let end = tail(&text, 30);
        assert!(end.starts_with("line 11\n") && end.ends_with("line 40"));
        assert_eq!(tail("one\ntwo", 30), "one\ntwo");
    }
}
