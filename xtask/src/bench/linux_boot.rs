//! Linux booted to its `/init` (`--linux`'s kernel and initramfs): the
//! same kernel and initramfs on bare QEMU, with the command line a user
//! would type,
//!
//! ```text
//! qemu-system-aarch64 -machine virt -cpu cortex-a72 -m 256M -nographic \
//!     -no-reboot -kernel Image -initrd initrd -append console=ttyAMA0
//! qemu-system-riscv64 -machine virt -m 256M -nographic -no-reboot \
//!     -bios default -kernel Image -initrd initrd -append console=ttyS0
//! ```
//!
//! and as the hypervisor's guest (256 MiB of guest RAM, the same command
//! line from `/boot/cmdline`). Each run is timed from QEMU's start until
//! `/init` has printed its userspace line, and must end cleanly; the last
//! hosted run also gives the hypervisor's count of nested page faults, of
//! what it mapped, and its clock (its own boot, then the guest's run). The hosted aarch64 machine's CPU is `-cpu max` (the
//! hypervisor needs EL2 with VHE, which the Cortex-A72 lacks), so the
//! ratio also holds that difference. On riscv64 both machines have QEMU's
//! default CPU and OpenSBI; bare, the kernel has Sstc and its own timer
//! compare register, as our guest it has SBI TIME calls.

use super::measure::{Summary, time_command};
use crate::arch::{Arch, ArchSpec, VmFiles};
use crate::guest_image::guest_flat;
use crate::guests::initramfs::USERSPACE_LINE;
use crate::guests::linux;
use crate::paths::ArchPaths;
use crate::prepare::{BootFiles, add_boot_files, guest_disk};
use crate::vm::{Input, RunOutput, Watch, run_command};
use crate::vm_report::{parse_clock, parse_exits, parse_mapped};
use anyhow::{Context, Result};
use guestaspace_core::vmconfig::VmConfig;
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

/// How `arch`'s kernel boots on bare QEMU: the machine's arguments before
/// `-kernel`, what the table calls that machine, and the kernel command
/// line of both runs (the console alone).
fn bare_machine(arch: Arch) -> (&'static [&'static str], &'static str, &'static str) {
    match arch {
        Arch::Riscv64 => (
            &[
                "-machine",
                "virt",
                "-m",
                "256M",
                "-nographic",
                "-no-reboot",
                "-bios",
                "default",
            ],
            "rv64, OpenSBI, 256M",
            "console=ttyS0",
        ),
        _ => (
            &[
                "-machine",
                "virt",
                "-cpu",
                "cortex-a72",
                "-m",
                "256M",
                "-nographic",
                "-no-reboot",
            ],
            "cortex-a72, 256M",
            "console=ttyAMA0",
        ),
    }
}

/// Boot figures of the Linux guest, bare and hosted.
pub struct LinuxBoot {
    /// The kernel: its package and version.
    pub kernel: String,
    /// The bare machine, for the table.
    pub machine: &'static str,
    /// QEMU start to the userspace line, with the kernel booted directly.
    pub bare: Summary,
    /// The same, with the kernel as the hypervisor's guest.
    pub hosted: Summary,
    /// Nested page faults of the last hosted run.
    pub faults: u64,
    /// Guest memory it mapped: 2 MiB blocks and 4 KiB pages.
    pub blocks: u64,
    pub pages: u64,
    /// Its hypervisor clock: machine start to guest entry, guest run
    /// (microseconds).
    pub clock_us: (u64, u64),
}

/// Times the Linux guest bare and hosted, `runs` times each. `files` are
/// the hypervisor's artifacts for `spec`.
pub fn measure(
    spec: &'static ArchSpec,
    paths: &ArchPaths,
    files: &VmFiles,
    runs: usize,
) -> Result<LinuxBoot> {
    let guest = linux::prepare(spec.arch)?;
    let (_, machine, cmdline) = bare_machine(spec.arch);
    let bare_args = bare_args(spec.arch, &guest.kernel, &guest.initrd);
    let bare = Summary::of(time_command(runs, || {
        let watch = Watch {
            timeout: super::RUN_TIMEOUT,
            echo: false,
            show_command: false,
            input: Input::Null,
        };
        let out = run_command(spec.qemu.binary, &bare_args, &watch)?;
        out.check()
            .with_context(|| format!("bare QEMU output:\n{}", out.text))?;
        to_userspace(&out)
    })?);

    let vm = VmConfig {
        mem: Some(linux::DEFAULT_MEM),
        ..VmConfig::DEFAULT
    };
    let mut disk_files = guest_disk(&guest_flat(&guest.kernel, spec)?, &vm);
    let boot = BootFiles {
        initrd: Some(guest.initrd.clone()),
        cmdline: Some(cmdline.to_string()),
    };
    add_boot_files(&mut disk_files, &boot)?;
    let disk = paths.e2e.join("disk-bench-linux.img");
    crate::disk::write_fat_disk(&disk, &disk_files)?;
    let hosted_files = VmFiles {
        disk: &disk,
        ..*files
    };
    let mut last = None;
    let hosted = Summary::of(time_command(runs, || {
        let out = super::boot(spec, &hosted_files, &[])?;
        let took = to_userspace(&out)?;
        last = Some(out);
        Ok(took)
    })?);
    let last = last.context("no hosted run")?;
    let mapped = parse_mapped(&last.text)?;
    Ok(LinuxBoot {
        kernel: guest.kernel_name,
        machine,
        bare,
        hosted,
        faults: parse_exits(&last.text)?.get("nested page fault")?,
        blocks: mapped.blocks,
        pages: mapped.pages,
        clock_us: parse_clock(&last.text)?,
    })
}

/// QEMU's arguments for `arch`'s `kernel` and `initrd` booted directly.
fn bare_args(arch: Arch, kernel: &Path, initrd: &Path) -> Vec<OsString> {
    let (machine, _, cmdline) = bare_machine(arch);
    let mut args: Vec<OsString> = machine.iter().map(OsString::from).collect();
    args.push("-kernel".into());
    args.push(kernel.into());
    args.push("-initrd".into());
    args.push(initrd.into());
    args.push("-append".into());
    args.push(cmdline.into());
    args
}

/// When the run's `/init` printed its userspace line.
fn to_userspace(out: &RunOutput) -> Result<Duration> {
    out.time_to(USERSPACE_LINE).with_context(|| {
        format!(
            "/init never printed `{USERSPACE_LINE}`; QEMU output:\n{}",
            out.text
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bare_command_line_is_what_a_user_types() {
        let (kernel, initrd) = (Path::new("/k/Image"), Path::new("/k/initrd"));
        let args = bare_args(Arch::Aarch64, kernel, initrd);
        let line = crate::vm::shell_line("qemu-system-aarch64", &args);
        assert_eq!(
            line,
            "qemu-system-aarch64 -machine virt -cpu cortex-a72 -m 256M -nographic -no-reboot \
             -kernel /k/Image -initrd /k/initrd -append console=ttyAMA0"
        );
        let args = bare_args(Arch::Riscv64, kernel, initrd);
        let line = crate::vm::shell_line("qemu-system-riscv64", &args);
        assert_eq!(
            line,
            "qemu-system-riscv64 -machine virt -m 256M -nographic -no-reboot -bios default \
             -kernel /k/Image -initrd /k/initrd -append console=ttyS0"
        );
    }

    #[test]
    fn the_bare_machine_has_the_guests_ram() {
        for arch in [Arch::Aarch64, Arch::Riscv64] {
            let (machine, ..) = bare_machine(arch);
            let mem = format!("{}M", linux::DEFAULT_MEM >> 20);
            assert!(
                machine.windows(2).any(|w| w == ["-m", mem.as_str()]),
                "{arch}"
            );
        }
    }
}
