//! The end-to-end cases of Linux as the guest: Debian's own arm64 kernel
//! (aarch64: `debian-linux`, `debian-linux-init-fails`) and the kernel
//! built from Debian's `linux-source-6.1` (riscv64: `linux`,
//! `linux-init-fails`). The kernel boots through to the initramfs's
//! `/init` and powers off cleanly, and an `/init` that fails makes the
//! kernel panic and the run fail. Both architectures run the same checks,
//! plus a line of their own `/init` shows: `uname -a` naming aarch64, or
//! the `isa` line of `/proc/cpuinfo`.

use super::{Ctx, expect_vm_failure, with_output};
use crate::arch::Arch;
use crate::disk::write_fat_disk;
use crate::guest_image::guest_flat;
use crate::guests::initramfs::{INIT_FAILS_LINE, INIT_FAILS_WORD, USERSPACE_LINE};
use crate::guests::linux;
use crate::prepare::{guest_disk, read_initrd};
use crate::vm::RunOutput;
use crate::vm_report::check_in_order;
use anyhow::{Result, ensure};
use guestaspace_core::scenario::Scenario;
use std::time::Duration;

/// Generous: the kernel boots in a few seconds under TCG, more as a guest.
const LINUX_TIMEOUT: Duration = Duration::from_secs(linux::DEFAULT_TIMEOUT_SECS);

/// Boots the architecture's Linux guest with its initramfs, with the
/// settings `cargo xtask run --linux` gives it (the shipped
/// `configs/vms/linux-ARCH.toml`) and `extra` words after its command
/// line, from a disk named after `name`.
fn boot_linux(ctx: &Ctx, name: &str, extra: &str) -> Result<RunOutput> {
    boot_linux_on(ctx, name, extra, 1)
}

/// [`boot_linux`] with `cpus` vCPUs (`ctx` built for as many host CPUs).
fn boot_linux_on(ctx: &Ctx, name: &str, extra: &str, cpus: u32) -> Result<RunOutput> {
    let guest = linux::prepare(ctx.spec.arch)?;
    let mut vm = linux::shipped_config(ctx.spec.arch)?.config;
    vm.cpus = cpus;
    let cmdline = format!("{} {extra}", vm.cmdline.unwrap_or_default());
    vm.cmdline = Some(cmdline.trim().to_string()).filter(|c| !c.is_empty());
    let files = guest_disk(
        &guest_flat(&guest.kernel, ctx.spec)?,
        &vm,
        Some(read_initrd(&guest.initrd)?),
    );
    let disk = ctx.paths.e2e.join(format!("disk-{name}.img"));
    write_fat_disk(&disk, &files)?;
    ctx.boot(&disk, Scenario::Normal, LINUX_TIMEOUT)
}

/// A console line without the kernel's `[    0.000000] ` time stamp.
fn without_timestamp(line: &str) -> &str {
    let line = line.trim_end();
    match line
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("] "))
    {
        Some((stamp, text)) if stamp.trim().parse::<f64>().is_ok() => text,
        _ => line,
    }
}

/// The kernel prints its banner and runs `/init` from the initramfs,
/// which prints the userspace line and its own lines and powers off (PSCI
/// `SYSTEM_OFF`, SBI SRST), which the hypervisor ends cleanly with status
/// 0.
pub(super) fn linux_boots(ctx: &Ctx) -> Result<()> {
    let out = boot_linux(ctx, "linux", "")?;
    out.check().map_err(|e| with_output(&out, e))?;
    check_in_order(
        &out.text,
        &[
            "Entering VM run loop...",
            "Linux version 6.1",
            "Run /init as init process",
            USERSPACE_LINE,
            "Shutdown vm normally!",
            "Hypervisor ok!",
        ],
    )
    .map_err(|e| with_output(&out, e))?;
    let lines: Vec<&str> = out.text.lines().map(without_timestamp).collect();
    for (wanted, what) in own_lines(ctx.spec.arch) {
        ensure!(
            lines.iter().any(|l| wanted(l)),
            with_output(&out, format!("no {what}"))
        );
    }
    Ok(())
}

/// A test of one console line, and what it looks for.
type LineCheck = (fn(&str) -> bool, &'static str);

/// The lines of `arch`'s Linux guest beyond those every one prints.
fn own_lines(arch: Arch) -> [LineCheck; 2] {
    match arch {
        Arch::Aarch64 => [
            (is_debian_banner, "`Linux version 6.1` banner naming Debian"),
            (is_uname_line, "`uname -a` line (`Linux ... aarch64 ...`)"),
        ],
        _ => [
            (is_banner, "`Linux version 6.1` banner"),
            (
                is_isa_line,
                "`isa` line of /proc/cpuinfo (`guestaspace: isa : rv64imafdc...`)",
            ),
        ],
    }
}

/// The kernel's banner: `Linux version 6.1...`.
fn is_banner(line: &str) -> bool {
    line.starts_with("Linux version 6.1")
}

/// The banner of Debian's own build.
fn is_debian_banner(line: &str) -> bool {
    is_banner(line) && line.contains("Debian")
}

/// What busybox's `uname -a` prints on arm64: `Linux (none) 6.1.0-N-arm64
/// #1 SMP Debian ... aarch64 GNU/Linux`.
fn is_uname_line(line: &str) -> bool {
    line.starts_with("Linux ") && line.split_whitespace().any(|word| word == "aarch64")
}

/// The `isa` line of `/proc/cpuinfo` as the riscv64 `/init` prints it:
/// `guestaspace: isa\t\t: rv64imafdc_zihintpause`, the guest's ISA with
/// the base and the F, D and C extensions the device tree gives it.
fn is_isa_line(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("guestaspace: isa") else {
        return false;
    };
    let isa = rest.trim_start().trim_start_matches(':').trim();
    isa.starts_with("rv64i") && isa.split('_').next().is_some_and(|b| b.contains("fdc"))
}

/// With `guestaspace.init_fails` on the command line `/init` exits 1: the
/// kernel panics, `panic=-1` reboots at once (PSCI `SYSTEM_RESET`, SBI
/// SRST reboot), and the run ends with a failure status rather than at the
/// timeout.
pub(super) fn linux_init_fails(ctx: &Ctx) -> Result<()> {
    let out = boot_linux(ctx, "linux-init-fails", INIT_FAILS_WORD)?;
    expect_vm_failure(&out)?;
    check_in_order(
        &out.text,
        &[
            "Run /init as init process",
            INIT_FAILS_LINE,
            "Kernel panic - not syncing: Attempted to kill init!",
        ],
    )
    .map_err(|e| with_output(&out, e))?;
    ensure!(
        !out.text.contains(USERSPACE_LINE),
        with_output(&out, "/init went on after it was told to fail")
    );
    Ok(())
}

/// How many vCPUs the SMP case gives Linux.
const SMP_CPUS: usize = 4;

/// Linux with 4 vCPUs, each on a host CPU of its own (QEMU `-smp 4`): the
/// kernel starts the secondary CPUs through the firmware interface (SBI
/// HSM, PSCI `CPU_ON`) and brings all 4 up; `/init` counts them, runs a
/// process pinned to each that reports the CPU it ran on, and shows the
/// IPIs each CPU took; the run ends cleanly and the report names every
/// vCPU with exits of its own.
pub(super) fn linux_smp(ctx: &Ctx) -> Result<()> {
    let smp = ctx.with_host_cpus(SMP_CPUS)?;
    let out = boot_linux_on(&smp, "linux-smp", "", SMP_CPUS as u32)?;
    out.check().map_err(|e| with_output(&out, e))?;
    let pinned: Vec<String> = (0..SMP_CPUS)
        .map(|cpu| format!("guestaspace: a process pinned to CPU {cpu} runs on CPU {cpu}"))
        .collect();
    let mut wanted = vec![
        "vCPUs: 4, each on its own host CPU",
        "smp: Brought up 1 node, 4 CPUs",
        USERSPACE_LINE,
        "guestaspace: nproc 4",
    ];
    wanted.extend(pinned.iter().map(String::as_str));
    wanted.extend(["Shutdown vm normally!", "Hypervisor ok!"]);
    check_in_order(&out.text, &wanted).map_err(|e| with_output(&out, e))?;
    let ipis = function_call_ipis(&out.text)
        .ok_or_else(|| with_output(&out, "no `IPI1: ... Function call interrupts` line"))?;
    ensure!(
        ipis.len() == SMP_CPUS && ipis[1..].iter().any(|&n| n > 0),
        with_output(
            &out,
            format!("function-call IPIs per CPU {ipis:?}: expected 4 CPUs, the secondaries' taken")
        )
    );
    for cpu in 0..SMP_CPUS {
        let exits = vcpu_exits(&out.text, cpu);
        ensure!(
            exits.is_some_and(|n| n > 0),
            with_output(
                &out,
                format!("the report gives vCPU {cpu} no exits of its own")
            )
        );
    }
    Ok(())
}

/// The per-CPU counts of `/proc/interrupts`'s function-call IPI line
/// (`IPI1:  18  5  12  15  Function call interrupts`).
fn function_call_ipis(text: &str) -> Option<Vec<u64>> {
    let line = text
        .lines()
        .map(without_timestamp)
        .find(|l| l.trim_start().starts_with("IPI1:") && l.contains("Function call"))?;
    Some(
        line.trim_start()
            .trim_start_matches("IPI1:")
            .split_whitespace()
            .map_while(|w| w.parse().ok())
            .collect(),
    )
}

/// The exits the report gives vCPU `cpu` (`vCPU 1: 244 exits (...)`).
fn vcpu_exits(text: &str, cpu: usize) -> Option<u64> {
    let prefix = format!("vCPU {cpu}: ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ipi_and_vcpu_lines_are_read() {
        let text = "[    1.0] x\nIPI0:  0  8  3  1  Rescheduling interrupts\n\
                    IPI1:        18          5         12         15  Function call interrupts\n\
                    vCPU 0: 7343 exits (3798 hypercalls, 27 kicks), ended on\n";
        assert_eq!(function_call_ipis(text), Some(vec![18, 5, 12, 15]));
        assert_eq!(vcpu_exits(text, 0), Some(7343));
        assert_eq!(vcpu_exits(text, 1), None);
        assert_eq!(function_call_ipis("IPI0: 1 Rescheduling"), None);
    }

    #[test]
    fn console_lines_are_read_without_the_kernel_time_stamp() {
        let banner = "[    0.000000] Linux version 6.1.0-56-arm64 (debian-kernel@lists.debian.org) \
                      #1 SMP Debian 6.1.192-2 (2026-11-16)\r";
        assert!(without_timestamp(banner).starts_with("Linux version 6.1"));
        assert_eq!(without_timestamp("[ok] fine"), "[ok] fine");
        assert_eq!(without_timestamp("plain\r"), "plain");
    }

    #[test]
    fn the_isa_line_names_a_64_bit_isa_with_float_and_compressed() {
        assert!(is_isa_line("guestaspace: isa\t\t: rv64imafdc_zihintpause"));
        assert!(is_isa_line("guestaspace: isa : rv64imafdc"));
        assert!(!is_isa_line("guestaspace: isa\t\t: rv64imac"));
        assert!(!is_isa_line("guestaspace: no line starts with isa"));
        assert!(!is_isa_line("isa\t\t: rv64imafdc"));
    }

    #[test]
    fn the_banner_names_the_kernel_and_its_builder() {
        let ours = "Linux version 6.1.192 (guestaspace@xtask) (riscv64-linux-gnu-gcc (Debian \
                    12.2.0-13) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 Thu Jan  1 \
                    00:00:00 UTC 1970";
        assert!(is_banner(ours));
        let debian = "Linux version 6.1.0-56-arm64 (debian-kernel@lists.debian.org) \
                      #1 SMP Debian 6.1.192-2 (2026-11-16)";
        assert!(is_debian_banner(debian));
        assert!(!is_banner("Linux version 5.10.0"));
    }

    #[test]
    fn the_uname_line_is_linux_on_aarch64() {
        assert!(is_uname_line(
            "Linux (none) 6.1.0-56-arm64 #1 SMP Debian 6.1.192-2 (2026-11-16) aarch64 GNU/Linux"
        ));
        assert!(!is_uname_line("Linux version 6.1.0-56-arm64 (aarch64)"));
        assert!(!is_uname_line("guestaspace: userspace is up"));
    }
}
