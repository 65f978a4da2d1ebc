//! Debian's arm64 Linux booted to its `/init`: the same unmodified kernel
//! and busybox initramfs on bare QEMU, with the command line a user would
//! type,
//!
//! ```text
//! qemu-system-aarch64 -machine virt -cpu cortex-a72 -m 256M -nographic \
//!     -no-reboot -kernel Image -initrd initrd -append console=ttyAMA0
//! ```
//!
//! and as the hypervisor's guest (256 MiB of guest RAM, the same command
//! line from `/boot/cmdline`). Each run is timed from QEMU's start until
//! `/init` has printed its userspace line, and must end cleanly. The
//! hosted machine's CPU is `-cpu max` (the hypervisor needs EL2 with VHE,
//! which the Cortex-A72 lacks), and QEMU emulates that CPU's extra
//! features (pointer authentication, SVE) at a cost, so the bare kernel is
//! timed on both: on `cortex-a72` (the reference the issue measured) and
//! on `-cpu max`, the CPU the guest actually runs on. The hosted runs also
//! give the stage-2 faults and the blocks and pages mapped during a boot.

use super::measure::{Summary, time_command};
use crate::arch::{ArchSpec, VmFiles};
use crate::guest_image::guest_flat;
use crate::guests::initramfs::USERSPACE_LINE;
use crate::guests::linux;
use crate::paths::ArchPaths;
use crate::prepare::{BootFiles, add_boot_files, guest_disk};
use crate::vm::{Input, RunOutput, Watch, run_command};
use crate::vm_report::{parse_exits, parse_mapped};
use anyhow::{Context, Result};
use guestaspace_core::vmconfig::VmConfig;
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

/// The kernel command line of both runs.
const CMDLINE: &str = "console=ttyAMA0";

/// Boot figures of the Debian kernel, bare and hosted.
pub struct LinuxBoot {
    /// The kernel package and its version.
    pub kernel: String,
    /// QEMU start to the userspace line, with the kernel booted directly
    /// on a Cortex-A72.
    pub bare: Summary,
    /// The same on `-cpu max`, the CPU the hosted guest runs on.
    pub bare_max: Summary,
    /// Nested page faults, 2 MiB blocks and 4 KiB pages of guest RAM
    /// mapped during the last hosted boot.
    pub faults: u64,
    pub blocks: u64,
    pub pages: u64,
    /// The same, with the kernel as the hypervisor's guest.
    pub hosted: Summary,
}

/// Times Debian's kernel bare and hosted, `runs` times each. `files` are
/// the hypervisor's artifacts for `spec`.
pub fn measure(
    spec: &'static ArchSpec,
    paths: &ArchPaths,
    files: &VmFiles,
    runs: usize,
) -> Result<LinuxBoot> {
    let guest = linux::prepare(spec.arch)?;
    let time_bare = |cpu| {
        let args = bare_args(cpu, &guest.kernel, &guest.initrd);
        time_command(runs, || {
            let watch = Watch {
                timeout: super::RUN_TIMEOUT,
                echo: false,
                show_command: false,
                input: Input::Null,
            };
            let out = run_command(spec.qemu.binary, &args, &watch)?;
            out.check()
                .with_context(|| format!("bare QEMU output:\n{}", out.text))?;
            to_userspace(&out)
        })
        .map(Summary::of)
    };
    let bare = time_bare("cortex-a72")?;
    let bare_max = time_bare("max")?;

    let vm = VmConfig {
        mem: Some(linux::DEFAULT_MEM),
        ..VmConfig::DEFAULT
    };
    let mut disk_files = guest_disk(&guest_flat(&guest.kernel, spec)?, &vm);
    let boot = BootFiles {
        initrd: Some(guest.initrd.clone()),
        cmdline: Some(CMDLINE.to_string()),
    };
    add_boot_files(&mut disk_files, &boot)?;
    let disk = paths.e2e.join("disk-bench-debian-linux.img");
    crate::disk::write_fat_disk(&disk, &disk_files)?;
    let hosted_files = VmFiles {
        disk: &disk,
        ..*files
    };
    let mut last = None;
    let hosted = Summary::of(time_command(runs, || {
        let out = super::boot(spec, &hosted_files, &[])?;
        let time = to_userspace(&out)?;
        last = Some(out);
        Ok(time)
    })?);
    let last = last.context("no hosted run")?;
    let faults = parse_exits(&last.text)?.get("nested page fault")?;
    let ram = parse_mapped(&last.text)?;
    let ram = ram.region("ram")?;
    Ok(LinuxBoot {
        kernel: format!(
            "{} {}",
            guest.kernel_package.package, guest.kernel_package.version
        ),
        bare,
        bare_max,
        hosted,
        faults,
        blocks: ram.blocks,
        pages: ram.pages,
    })
}

/// QEMU's arguments for `kernel` and `initrd` booted directly on `cpu`.
fn bare_args(cpu: &str, kernel: &Path, initrd: &Path) -> Vec<OsString> {
    let mem = format!("{}M", linux::DEFAULT_MEM >> 20);
    let mut args: Vec<OsString> = ["-machine", "virt", "-cpu", cpu, "-m", &mem]
        .map(OsString::from)
        .to_vec();
    args.extend(["-nographic", "-no-reboot", "-kernel"].map(OsString::from));
    args.push(kernel.into());
    args.push("-initrd".into());
    args.push(initrd.into());
    args.push("-append".into());
    args.push(CMDLINE.into());
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
        let args = bare_args("cortex-a72", Path::new("/k/Image"), Path::new("/k/initrd"));
        let line = crate::vm::shell_line("qemu-system-aarch64", &args);
        assert_eq!(
            line,
            "qemu-system-aarch64 -machine virt -cpu cortex-a72 -m 256M -nographic -no-reboot \
             -kernel /k/Image -initrd /k/initrd -append console=ttyAMA0"
        );
    }
}
