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
//! and as the hypervisor's guest (the RAM of `configs/vms/linux-ARCH.toml`,
//! 256 MiB, and the same command line, from `/etc/vm.toml`). Each run is timed from QEMU's start until
//! `/init` has printed its userspace line, and must end cleanly; the last
//! hosted run also gives the stage-2 faults and the blocks and pages of
//! RAM mapped during the boot, and the hypervisor's clock (its own boot,
//! then the guest's run).
//!
//! The hosted aarch64 machine's CPU is `-cpu max` (the hypervisor needs
//! EL2 with VHE, which the Cortex-A72 lacks), and QEMU emulates that CPU's
//! extra features (pointer authentication, SVE) at a cost, so there the
//! bare kernel is timed on both: on `cortex-a72` (the reference the issue
//! measured) and on `-cpu max`, the CPU the guest actually runs on. On
//! riscv64 both machines have QEMU's default CPU and OpenSBI; bare, the
//! kernel has Sstc and its own timer compare register, as our guest it
//! has SBI TIME calls.

use super::measure::{Summary, time_command};
use crate::arch::{Arch, ArchSpec, VmFiles};
use crate::guest_image::guest_flat;
use crate::guests::initramfs::USERSPACE_LINE;
use crate::guests::linux::{self, LinuxGuest};
use crate::paths::ArchPaths;
use crate::prepare::{guest_disk, read_initrd};
use crate::vm::{Input, RunOutput, Watch, run_command};
use crate::vm_report::{parse_clock, parse_exits, parse_mapped};
use anyhow::{Context, Result};
use guestaspace_core::vmconfig::VmConfig;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One bare machine: its `-cpu` (`None`: QEMU's default) and what the
/// table calls it.
type BareCpu = (Option<&'static str>, &'static str);

/// The bare machines `arch`'s kernel is timed on: the reference first,
/// then (aarch64) the CPU the guest runs on.
fn bare_cpus(arch: Arch) -> &'static [BareCpu] {
    match arch {
        Arch::Riscv64 => &[(None, "rv64, OpenSBI, 256M")],
        _ => &[
            (Some("cortex-a72"), "cortex-a72, 256M"),
            (Some("max"), "-cpu max, the guest's CPU, 256M"),
        ],
    }
}

/// The kernel command line of every run: the console alone.
fn cmdline(arch: Arch) -> &'static str {
    match arch {
        Arch::Riscv64 => "console=ttyS0",
        _ => "console=ttyAMA0",
    }
}

/// Boot figures of the Linux guest, bare and hosted.
pub struct LinuxBoot {
    /// The kernel: its package and version.
    pub kernel: String,
    /// The reference bare machine, for the table.
    pub machine: &'static str,
    /// QEMU start to the userspace line, with the kernel booted directly
    /// on the reference machine.
    pub bare: Summary,
    /// The same on `-cpu max`, the CPU the hosted guest runs on, where
    /// that is another CPU (aarch64).
    pub bare_max: Option<Summary>,
    /// The same, with the kernel as the hypervisor's guest.
    pub hosted: Summary,
    /// Nested page faults, 2 MiB blocks and 4 KiB pages of guest RAM
    /// mapped during the last hosted boot.
    pub faults: u64,
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
    let (guest, mem) = guest_and_mem(spec)?;
    let time_bare = |cpu| {
        let args = bare_args(spec.arch, cpu, mem, &guest.kernel, &guest.initrd);
        time_bare_runs(spec, &args, runs)
    };
    let cpus = bare_cpus(spec.arch);
    let bare = time_bare(cpus[0].0)?;
    let bare_max = cpus.get(1).map(|&(cpu, _)| time_bare(cpu)).transpose()?;

    let disk = hosted_disk(spec, paths, &guest, mem, 1)?;
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
    let mapped = parse_mapped(&last.text)?;
    let ram = mapped.region("ram")?;
    Ok(LinuxBoot {
        kernel: guest.kernel_name,
        machine: cpus[0].1,
        bare,
        bare_max,
        hosted,
        faults,
        blocks: ram.blocks,
        pages: ram.pages,
        clock_us: parse_clock(&last.text)?,
    })
}

/// `--linux`'s kernel and initramfs, and the RAM its shipped config gives.
fn guest_and_mem(spec: &ArchSpec) -> Result<(LinuxGuest, u64)> {
    let guest = linux::prepare(spec.arch)?;
    let mem = linux::shipped_config(spec.arch)?
        .config
        .mem
        .context("the shipped Linux config gives no mem")?;
    Ok((guest, mem))
}

/// The disk of the hosted Linux runs with `cpus` vCPUs: `guest`, `mem`
/// bytes of RAM, the command line of every run.
fn hosted_disk(
    spec: &ArchSpec,
    paths: &ArchPaths,
    guest: &LinuxGuest,
    mem: u64,
    cpus: usize,
) -> Result<PathBuf> {
    let vm = VmConfig {
        mem: Some(mem),
        cmdline: Some(cmdline(spec.arch).to_string()),
        cpus: cpus as u32,
        ..VmConfig::DEFAULT
    };
    let files = guest_disk(
        &guest_flat(&guest.kernel, spec)?,
        &vm,
        Some(read_initrd(&guest.initrd)?),
    );
    let name = match cpus {
        1 => "disk-bench-linux.img".to_string(),
        n => format!("disk-bench-linux-smp{n}.img"),
    };
    let disk = paths.e2e.join(name);
    crate::disk::write_fat_disk(&disk, &files)?;
    Ok(disk)
}

/// Boots the kernel bare with QEMU arguments `args` `runs` times, each
/// timed to `/init`'s line and required to end cleanly.
fn time_bare_runs(spec: &ArchSpec, args: &[OsString], runs: usize) -> Result<Summary> {
    let watch = Watch {
        timeout: super::RUN_TIMEOUT,
        echo: false,
        show_command: false,
        input: Input::Null,
    };
    time_command(runs, || {
        let out = run_command(spec.qemu.binary, args, &watch)?;
        out.check()
            .with_context(|| format!("bare QEMU output:\n{}", out.text))?;
        to_userspace(&out)
    })
    .map(Summary::of)
}

/// QEMU's arguments for `arch`'s `kernel` and `initrd` booted directly,
/// on `cpu` (QEMU's default if `None`), with `mem` bytes of RAM.
fn bare_args(
    arch: Arch,
    cpu: Option<&str>,
    mem: u64,
    kernel: &Path,
    initrd: &Path,
) -> Vec<OsString> {
    let mem = format!("{}M", mem >> 20);
    let mut args: Vec<OsString> = vec!["-machine".into(), "virt".into()];
    if let Some(cpu) = cpu {
        args.extend(["-cpu", cpu].map(OsString::from));
    }
    args.extend(["-m", &mem, "-nographic", "-no-reboot"].map(OsString::from));
    if arch == Arch::Riscv64 {
        // OpenSBI, as under the hypervisor.
        args.extend(["-bios", "default"].map(OsString::from));
    }
    args.push("-kernel".into());
    args.push(kernel.into());
    args.push("-initrd".into());
    args.push(initrd.into());
    args.push("-append".into());
    args.push(cmdline(arch).into());
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

/// Linux to its `/init` with `cpus` CPUs: bare QEMU with `-smp cpus` (on
/// the guest's CPU), and as the guest with `cpus` vCPUs on a hypervisor
/// built for as many host CPUs; `runs` times each.
pub fn measure_smp(
    spec: &'static ArchSpec,
    paths: &ArchPaths,
    runs: usize,
    cpus: usize,
) -> Result<(Summary, Summary)> {
    let (guest, mem) = guest_and_mem(spec)?;
    let smp = cpus.to_string();
    let cpu = bare_cpus(spec.arch).last().and_then(|&(cpu, _)| cpu);
    let mut args = bare_args(spec.arch, cpu, mem, &guest.kernel, &guest.initrd);
    args.extend(["-smp", &smp].map(OsString::from));
    let bare = time_bare_runs(spec, &args, runs)?;
    let smp_paths = crate::prepare::hypervisor_for_cpus(
        spec,
        paths,
        cpus,
        crate::build::CargoOutput::Captured,
    )?;
    let disk = hosted_disk(spec, paths, &guest, mem, cpus)?;
    let files = VmFiles {
        kernel: smp_paths.kernel(spec),
        disk: &disk,
        pflash: &paths.pflash,
    };
    let hosted = Summary::of(time_command(runs, || {
        to_userspace(&super::boot(spec, &files, &["-smp", &smp])?)
    })?);
    Ok((bare, hosted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bare_command_line_is_what_a_user_types() {
        let (kernel, initrd) = (Path::new("/k/Image"), Path::new("/k/initrd"));
        let args = bare_args(Arch::Aarch64, Some("cortex-a72"), 256 << 20, kernel, initrd);
        let line = crate::vm::shell_line("qemu-system-aarch64", &args);
        assert_eq!(
            line,
            "qemu-system-aarch64 -machine virt -cpu cortex-a72 -m 256M -nographic -no-reboot \
             -kernel /k/Image -initrd /k/initrd -append console=ttyAMA0"
        );
        let args = bare_args(Arch::Riscv64, None, 256 << 20, kernel, initrd);
        let line = crate::vm::shell_line("qemu-system-riscv64", &args);
        assert_eq!(
            line,
            "qemu-system-riscv64 -machine virt -m 256M -nographic -no-reboot -bios default \
             -kernel /k/Image -initrd /k/initrd -append console=ttyS0"
        );
    }

    #[test]
    fn aarch64_is_also_timed_bare_on_the_guests_cpu() {
        let cpus = |arch| -> Vec<Option<&str>> { bare_cpus(arch).iter().map(|c| c.0).collect() };
        assert_eq!(cpus(Arch::Aarch64), [Some("cortex-a72"), Some("max")]);
        // The riscv64 hypervisor's machine has QEMU's default CPU too.
        assert_eq!(cpus(Arch::Riscv64), [None]);
    }
}
