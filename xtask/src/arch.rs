//! The architecture table: everything xtask needs to know to build and boot
//! one architecture (target triple, ArceOS configurations, guest layout,
//! QEMU binary and machine arguments).
//!
//! Adding an architecture means writing one [`ArchSpec`] (see
//! `arch/riscv64.rs`) and returning it from [`Arch::spec`].

pub(crate) mod aarch64;
pub(crate) mod riscv64;
pub(crate) mod x86_64;

use anyhow::Result;
use clap::ValueEnum;
use guestaspace_core::layout::{GuestLayout, Layout};
use guestaspace_core::machine::{Board, DEFAULT_RAM_SIZE};
use std::ffi::OsString;
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    #[value(name = "riscv64")]
    Riscv64,
    #[value(name = "aarch64")]
    Aarch64,
    #[value(name = "x86_64")]
    X86_64,
}

impl Arch {
    pub const ALL: [Arch; 3] = [Arch::Riscv64, Arch::Aarch64, Arch::X86_64];

    pub const fn name(self) -> &'static str {
        match self {
            Arch::Riscv64 => "riscv64",
            Arch::Aarch64 => "aarch64",
            Arch::X86_64 => "x86_64",
        }
    }

    /// How to build and boot this architecture, or an error if xtask does
    /// not support it yet.
    pub fn spec(self) -> Result<&'static ArchSpec> {
        match self {
            Arch::Riscv64 => Ok(&riscv64::SPEC),
            Arch::X86_64 => Ok(&x86_64::SPEC),
            Arch::Aarch64 => Ok(&aarch64::SPEC),
        }
    }

    /// The architectures [`Arch::spec`] knows.
    pub fn implemented() -> Vec<Arch> {
        Self::ALL.into_iter().filter(|a| a.spec().is_ok()).collect()
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One application to build: a workspace package, the binary it makes,
/// and the ArceOS configuration file (under `configs/`) it is built with,
/// if it is an ArceOS application.
pub struct App {
    pub package: &'static str,
    pub binary: &'static str,
    pub config: Option<&'static str>,
}

/// How QEMU takes the hypervisor.
pub enum KernelImage {
    /// A flat binary loaded at `load_addr` (the ELF is flattened).
    Flat { load_addr: u64 },
    /// The ELF itself (x86's multiboot loader reads it).
    Elf,
}

/// The files a VM boots from.
pub struct VmFiles<'a> {
    /// The hypervisor, as a flat binary.
    pub kernel: &'a Path,
    /// The disk holding `/sbin/gkernel`.
    pub disk: &'a Path,
    /// The pflash image the guest reads.
    pub pflash: &'a Path,
}

/// The QEMU side of an architecture.
pub struct QemuSpec {
    pub binary: &'static str,
    /// The Debian package that provides `binary`.
    pub debian_package: &'static str,
    /// Oldest QEMU version known to work, as (major, minor); every arch
    /// uses [`QEMU_MIN_VERSION`].
    pub min_version: (u32, u32),
    /// Everything after the binary name on the command line.
    pub args: fn(&VmFiles) -> Vec<OsString>,
    /// Arguments that, appended last, take the virtualization extension
    /// away from the CPU (QEMU lets a later option win).
    pub without_virtualization: &'static [&'static str],
}

/// Each architecture's guest layout at the default RAM size, made once.
static LAYOUTS: [OnceLock<Layout>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];

impl ArchSpec {
    /// The guest-physical map the hypervisor gives the guest at the
    /// default RAM size: the board's.
    pub fn layout(&self) -> GuestLayout<'static> {
        LAYOUTS[self.arch as usize]
            .get_or_init(|| {
                self.board
                    .layout(DEFAULT_RAM_SIZE)
                    .expect("the default RAM size fits every board")
            })
            .as_ref()
    }
}

pub struct ArchSpec {
    pub arch: Arch,
    pub triple: &'static str,
    pub guest: App,
    pub hypervisor: App,
    /// The machine the hypervisor gives the guest.
    pub board: &'static Board,
    pub kernel: KernelImage,
    /// Size of the pflash image QEMU gets, or 0 where the guest's pflash
    /// is emulated by the hypervisor and QEMU gets none.
    pub pflash_size: usize,
    /// ArceOS links its kernels without `AT()`, so the "physical" addresses
    /// in their ELF files are the higher-half virtual ones. An ELF address
    /// at or above this offset (the `phys-virt-offset` of the ArceOS
    /// configurations) stands for the physical address `addr - offset`.
    pub phys_virt_offset: u64,
    pub qemu: QemuSpec,
    /// The scenario reaches the guest through its build (the
    /// `GKERNEL_SCENARIO` variable) rather than through the pflash image,
    /// which this machine's hypervisor emulates with fixed content.
    pub scenario_in_image: bool,
    /// What a good run prints, in this order.
    pub boot_lines: &'static [&'static str],
    /// The undeclared address the wild-access scenario touches, as printed.
    pub wild_gpa: &'static str,
    /// What the hypervisor says when the guest crashes on purpose.
    pub crash_text: &'static str,
    /// What the hypervisor says on a CPU without the extension.
    pub no_virtualization_text: &'static str,
    /// The emulated console UART's name in the `Device accesses:` report,
    /// where the guest's console is an emulated device.
    pub console_device: Option<&'static str>,
    /// The line the guest prints after its console-write call from outside
    /// guest RAM was refused with its convention's bad-address error.
    pub bad_console_reply: &'static str,
    /// The bundled guest's exits by reason, exactly, under [`ICOUNT`]
    /// (the instruction count drives the clock, so a run is repeatable to
    /// the exit). A change to the guest or the exit path changes them: the
    /// `exact-exits` case then prints the new counts to put here.
    pub icount_exits: &'static [(&'static str, u64)],
}

/// QEMU options that make a run deterministic: the virtual clock advances
/// one nanosecond per guest instruction and never with host time, even
/// while the CPU sleeps.
pub const ICOUNT: &[&str] = &["-icount", "shift=0,sleep=off"];

impl ArchSpec {
    /// The physical address an ELF load address stands for.
    pub fn physical(&self, elf_addr: u64) -> u64 {
        if elf_addr >= self.phys_virt_offset {
            elf_addr - self.phys_virt_offset
        } else {
            elf_addr
        }
    }
}

/// The QEMU every architecture asks for. Debian 12's own 7.2 does not
/// work: its riscv64 `virt` makes OpenSBI jump into pflash1 instead of the
/// kernel; 10.x is what the project is tested with.
pub const QEMU_MIN_VERSION: (u32, u32) = (10, 0);

/// The hypervisor application, built with the ArceOS configuration
/// `config`.
pub const fn hypervisor_app(config: &'static str) -> App {
    App {
        package: "arceos-guestaspace",
        binary: "arceos-guestaspace",
        config: Some(config),
    }
}

/// The machine's RAM (QEMU `-m`), which the hypervisor's ArceOS
/// configurations declare as `phys-memory-size` (512 MiB): room for the
/// hypervisor and a guest's RAM (128 MiB unless `--mem` says otherwise).
pub const HOST_RAM: &str = "512M";

/// Command-line words as QEMU arguments.
pub fn qemu_words(words: &[&str]) -> Vec<OsString> {
    words.iter().map(OsString::from).collect()
}

/// The disk holding `/sbin/gkernel`, as a virtio-blk PCI device.
pub fn virtio_disk_args(disk: &Path) -> [OsString; 4] {
    [
        "-drive".into(),
        format!("if=none,file={},format=raw,id=disk0", drive_path(disk)).into(),
        "-device".into(),
        "virtio-blk-pci,drive=disk0".into(),
    ]
}

/// The pflash image as QEMU's read-only pflash1.
pub fn pflash1_args(pflash: &Path) -> [OsString; 2] {
    [
        "-drive".into(),
        format!(
            "if=pflash,unit=1,format=raw,readonly=on,file={}",
            drive_path(pflash)
        )
        .into(),
    ]
}

/// Formats `path` for a QEMU `-drive file=` option, where a comma must be
/// written twice.
pub fn drive_path(path: &Path) -> String {
    path.display().to_string().replace(',', ",,")
}

/// The command line `args` gives for a fixed set of files
/// (`/t/kernel`, `/t/disk.img`, `/t/pflash.img`), joined with spaces.
#[cfg(test)]
pub fn test_command_line(args: fn(&VmFiles) -> Vec<OsString>) -> String {
    let files = VmFiles {
        kernel: Path::new("/t/kernel"),
        disk: Path::new("/t/disk.img"),
        pflash: Path::new("/t/pflash.img"),
    };
    let words: Vec<String> = args(&files)
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_arch_is_implemented_by_its_own_spec() {
        assert_eq!(Arch::implemented(), Arch::ALL.to_vec());
        for arch in Arch::ALL {
            assert_eq!(arch.spec().unwrap().arch, arch);
        }
    }

    #[test]
    fn arch_names_are_the_cli_names() {
        for arch in Arch::ALL {
            let parsed = Arch::from_str(arch.name(), false).ok();
            assert_eq!(parsed, Some(arch));
        }
        assert!(Arch::from_str("mips", false).is_err());
    }

    #[test]
    fn higher_half_elf_addresses_stand_for_physical_ones() {
        let spec = Arch::Riscv64.spec().unwrap();
        assert_eq!(spec.physical(0xffff_ffc0_8020_0000), 0x8020_0000);
        assert_eq!(spec.physical(0x8020_0000), 0x8020_0000);
    }

    #[test]
    fn commas_in_drive_paths_are_doubled() {
        assert_eq!(
            drive_path(Path::new("/tmp/a,b/disk.img")),
            "/tmp/a,,b/disk.img"
        );
    }
}
