//! The end-to-end cases of Debian's own arm64 Linux as the guest (aarch64):
//! the unmodified kernel boots through to the initramfs's `/init` and
//! powers off cleanly, and an `/init` that fails makes the kernel panic
//! and the run fail.

use super::{Ctx, expect_vm_failure, with_output};
use crate::disk::write_fat_disk;
use crate::guest_image::guest_flat;
use crate::guests::initramfs::{INIT_FAILS_LINE, INIT_FAILS_WORD, USERSPACE_LINE};
use crate::guests::linux;
use crate::prepare::{BootFiles, add_boot_files, guest_disk};
use crate::vm::RunOutput;
use crate::vm_report::check_in_order;
use anyhow::{Result, ensure};
use guestaspace_core::scenario::Scenario;
use guestaspace_core::vmconfig::VmConfig;
use std::time::Duration;

/// Generous: the kernel boots in a few seconds under TCG, more as a guest.
const LINUX_TIMEOUT: Duration = Duration::from_secs(linux::DEFAULT_TIMEOUT_SECS);

/// Boots Debian's kernel with the busybox initramfs and `cmdline`, in the
/// RAM `cargo xtask run --linux` gives it, from a disk named after `name`.
fn boot_debian_linux(ctx: &Ctx, name: &str, cmdline: &str) -> Result<RunOutput> {
    let guest = linux::prepare(ctx.spec.arch)?;
    let vm = VmConfig {
        mem: Some(linux::DEFAULT_MEM),
        ..VmConfig::DEFAULT
    };
    let mut files = guest_disk(&guest_flat(&guest.kernel, ctx.spec)?, &vm);
    let boot = BootFiles {
        initrd: Some(guest.initrd),
        cmdline: Some(cmdline.to_string()),
    };
    add_boot_files(&mut files, &boot)?;
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

/// Debian's kernel prints its banner, runs `/init` from the initramfs,
/// whose busybox prints the userspace line and `uname -a` and powers off:
/// PSCI `SYSTEM_OFF`, which the hypervisor ends cleanly with status 0.
pub(super) fn debian_linux(ctx: &Ctx) -> Result<()> {
    let out = boot_debian_linux(ctx, "debian-linux", linux::DEFAULT_CMDLINE)?;
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
    ensure!(
        lines
            .iter()
            .any(|l| l.starts_with("Linux version 6.1") && l.contains("Debian")),
        with_output(&out, "no `Linux version 6.1` banner naming Debian")
    );
    ensure!(
        lines.iter().any(|l| is_uname_line(l)),
        with_output(&out, "no `uname -a` line (`Linux ... aarch64 ...`)")
    );
    Ok(())
}

/// What busybox's `uname -a` prints on arm64: `Linux (none) 6.1.0-N-arm64
/// #1 SMP Debian ... aarch64 GNU/Linux`.
fn is_uname_line(line: &str) -> bool {
    line.starts_with("Linux ") && line.split_whitespace().any(|word| word == "aarch64")
}

/// With `guestaspace.init_fails` on the command line `/init` exits 1: the
/// kernel panics, `panic=-1` reboots at once, and the run ends with a
/// failure status rather than at the timeout.
pub(super) fn debian_linux_init_fails(ctx: &Ctx) -> Result<()> {
    let cmdline = format!("{} {INIT_FAILS_WORD}", linux::DEFAULT_CMDLINE);
    let out = boot_debian_linux(ctx, "debian-linux-init-fails", &cmdline)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_lines_are_read_without_the_kernel_time_stamp() {
        let banner = "[    0.000000] Linux version 6.1.0-56-arm64 (debian-kernel@lists.debian.org) \
                      #1 SMP Debian 6.1.192-2 (2026-11-16)\r";
        assert!(without_timestamp(banner).starts_with("Linux version 6.1"));
        assert_eq!(without_timestamp("[ok] fine"), "[ok] fine");
        assert_eq!(without_timestamp("plain\r"), "plain");
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
