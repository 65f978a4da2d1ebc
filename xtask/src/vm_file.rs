//! VM config files on the host: `cargo xtask run --vm FILE` and the ones
//! shipped in `configs/vms/` (which `--linux` and `--tutorial` take their
//! defaults from). Each is read with the parser the hypervisor reads
//! `/etc/vm.toml` with (`guestaspace_core::vmconfig`), so a mistake is
//! refused here, before anything is built or QEMU runs, naming the file,
//! the line and the key. The file's `kernel` and `initrd` are host paths,
//! relative to its directory, and must exist; on the disk they become
//! `/sbin/gkernel` and `/boot/initrd` (`prepare::guest_disk`).

use anyhow::{Context, Result, anyhow, ensure};
use guestaspace_core::vmconfig::{self, KeyLines, VmConfig};
use std::path::{Path, PathBuf};

/// Where the shipped configs are, in the repository.
pub const SHIPPED_DIR: &str = "configs/vms";

/// A VM config read from the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostVm {
    /// The settings. `kernel` and `initrd` are as the file writes them;
    /// [`HostVm::kernel`] and [`HostVm::initrd`] are the files they name.
    pub config: VmConfig,
    /// The keys the file set, with their lines.
    pub set: KeyLines,
    /// The guest image the file names (`None`: the bundled gkernel).
    pub kernel: Option<PathBuf>,
    /// The initrd the file names.
    pub initrd: Option<PathBuf>,
}

impl HostVm {
    /// No file: every default, the bundled gkernel.
    pub fn empty() -> HostVm {
        HostVm {
            config: VmConfig::DEFAULT,
            set: KeyLines::default(),
            kernel: None,
            initrd: None,
        }
    }

    /// `self` with every key `top` set taken from `top`: a `--vm` file over
    /// the shipped defaults of `--linux` or `--tutorial`.
    pub fn overlaid_with(self, top: HostVm) -> HostVm {
        let set = |key| top.set.line(key).is_some();
        let (base, mut merged) = (self.config, top.config.clone());
        if !set("name") {
            merged.name = base.name;
        }
        if !set("cmdline") {
            merged.cmdline = base.cmdline;
        }
        if !set("mem") {
            merged.mem = base.mem;
        }
        if !set("cpus") {
            merged.cpus = base.cpus;
        }
        if !set("watchdog") {
            merged.watchdog_secs = base.watchdog_secs;
        }
        if !set("blocks") {
            merged.blocks = base.blocks;
        }
        if !set("strict") {
            merged.strict = base.strict;
        }
        let (mut kernel, mut initrd) = (top.kernel, top.initrd);
        if !set("kernel") {
            (merged.kernel, kernel) = (base.kernel, self.kernel);
        }
        if !set("initrd") {
            (merged.initrd, initrd) = (base.initrd, self.initrd);
        }
        HostVm {
            config: merged,
            // Only what the top file set is known line by line.
            set: top.set,
            kernel,
            initrd,
        }
    }
}

/// Reads and checks the VM config at `path`: its TOML, its keys and
/// values, and that the kernel and initrd it names exist.
pub fn load(path: &Path) -> Result<HostVm> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the VM config {}", path.display()))?;
    let shown = path.display().to_string();
    let (config, set) = vmconfig::parse_with_lines(&text)
        .map_err(|e| anyhow!("VM config {}", e.in_file(&shown)))?;
    let dir = path.parent().unwrap_or(Path::new(""));
    let resolve = |key: &str, value: &Option<String>| -> Result<Option<PathBuf>> {
        let Some(value) = value else {
            return Ok(None);
        };
        let file = dir.join(value);
        let line = set
            .line(key)
            .map_or(String::new(), |n| format!(" line {n}"));
        ensure!(
            file.is_file(),
            "VM config {shown}{line}: {key} `{value}`: {} is not a file",
            file.display()
        );
        Ok(Some(file))
    };
    let kernel = resolve("kernel", &config.kernel)?;
    let initrd = resolve("initrd", &config.initrd)?;
    Ok(HostVm {
        config,
        set,
        kernel,
        initrd,
    })
}

/// The shipped config `configs/vms/NAME.toml`.
pub fn shipped(name: &str) -> Result<HostVm> {
    load(&shipped_path(name))
}

/// Where the shipped config `NAME` is.
pub fn shipped_path(name: &str) -> PathBuf {
    crate::paths::repo_root()
        .join(SHIPPED_DIR)
        .join(format!("{name}.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsio::testdir;

    #[test]
    fn every_shipped_config_parses() {
        let dir = crate::paths::repo_root().join(SHIPPED_DIR);
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            assert_eq!(
                path.extension().and_then(|e| e.to_str()),
                Some("toml"),
                "{} is not a .toml file",
                path.display()
            );
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.starts_with('#'),
                "{} does not start with a comment saying what it is",
                path.display()
            );
            let vm = load(&path).unwrap_or_else(|e| panic!("{e:#}"));
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            assert_eq!(
                vm.config.name.as_deref(),
                Some(name.as_str()),
                "{} names another VM",
                path.display()
            );
            names.push(name);
        }
        names.sort();
        assert_eq!(
            names,
            [
                "fairsched",
                "gkernel",
                "helloworld",
                "linux-aarch64",
                "linux-riscv64"
            ]
        );
    }

    #[test]
    fn paths_are_relative_to_the_file_and_must_exist() {
        let dir = testdir::fresh("vm-file-paths");
        std::fs::create_dir_all(dir.join("vms").join("boot")).unwrap();
        std::fs::write(dir.join("Image"), b"kernel").unwrap();
        std::fs::write(dir.join("vms").join("boot").join("initrd"), b"cpio").unwrap();
        let file = dir.join("vms").join("linux.toml");
        std::fs::write(
            &file,
            "name = \"linux\"\nkernel = \"../Image\"\ninitrd = \"boot/initrd\"\nmem = \"256M\"\n",
        )
        .unwrap();
        let vm = load(&file).unwrap();
        assert_eq!(vm.kernel, Some(dir.join("vms").join("../Image")));
        assert_eq!(vm.initrd, Some(dir.join("vms").join("boot/initrd")));
        assert_eq!(vm.config.mem, Some(256 << 20));
        assert_eq!(vm.set.line("initrd"), Some(3));

        // An absolute path stays as it is.
        let absolute = dir.join("Image");
        std::fs::write(
            &file,
            format!("kernel = {:?}\n", absolute.to_str().unwrap()),
        )
        .unwrap();
        assert_eq!(load(&file).unwrap().kernel, Some(absolute));

        std::fs::write(&file, "# a VM\n\ninitrd = \"boot/missing\"\n").unwrap();
        let err = load(&file).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "VM config {} line 3: initrd `boot/missing`: {} is not a file",
                file.display(),
                dir.join("vms").join("boot/missing").display()
            )
        );
        std::fs::write(&file, "kernel = \"boot\"\n").unwrap();
        let err = load(&file).unwrap_err().to_string();
        assert!(err.contains("line 1: kernel `boot`: "), "{err}");
    }

    #[test]
    fn mistakes_name_the_file_the_line_and_the_key() {
        let dir = testdir::fresh("vm-file-errors");
        let file = dir.join("bad.toml");
        std::fs::write(&file, "name = \"x\"\nmemory = \"1M\"\n").unwrap();
        let err = load(&file).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "VM config {} line 2: unknown key `memory`",
                file.display()
            )),
            "{err}"
        );
        std::fs::write(&file, "cpus = 9\n").unwrap();
        let err = load(&file).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "VM config {} line 1: `cpus = 9`: expected from 1 to 8 vCPUs",
                file.display()
            )
        );
        let missing = dir.join("none.toml");
        let err = format!("{:#}", load(&missing).unwrap_err());
        assert!(
            err.starts_with(&format!(
                "cannot read the VM config {}: ",
                missing.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn a_file_over_defaults_replaces_only_the_keys_it_sets() {
        let dir = testdir::fresh("vm-file-overlay");
        std::fs::write(dir.join("my-initrd"), b"cpio").unwrap();
        let base = dir.join("base.toml");
        std::fs::write(
            &base,
            "name = \"linux\"\ncmdline = \"console=ttyS0\"\nmem = \"256M\"\n",
        )
        .unwrap();
        let top = dir.join("top.toml");
        std::fs::write(
            &top,
            "mem = \"512M\"\ninitrd = \"my-initrd\"\nblocks = false\n",
        )
        .unwrap();
        let merged = load(&base).unwrap().overlaid_with(load(&top).unwrap());
        assert_eq!(merged.config.name.as_deref(), Some("linux"));
        assert_eq!(merged.config.cmdline.as_deref(), Some("console=ttyS0"));
        assert_eq!(merged.config.mem, Some(512 << 20));
        assert!(!merged.config.blocks);
        assert_eq!(merged.initrd, Some(dir.join("my-initrd")));
        assert_eq!(merged.kernel, None);
        assert_eq!(
            HostVm::empty().overlaid_with(HostVm::empty()),
            HostVm::empty()
        );
    }
}
