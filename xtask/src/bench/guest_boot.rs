//! Guest boot overhead: the same unmodified crates.io kernel
//! (`arceos-helloworld`) booted by QEMU directly and as the hypervisor's
//! guest, side by side, plus the hypervisor's own clock split of the
//! hosted run. Measured where the unmodified kernel runs as a guest (all
//! three architectures).

use super::measure::{Summary, time_command};
use crate::arch::{ArchSpec, VmFiles};
use crate::guest_image::guest_flat;
use crate::guests::tutorial;
use crate::paths::ArchPaths;
use crate::prepare::guest_disk;
use crate::vm_report::parse_clock;
use anyhow::{Result, ensure};
use guestaspace_core::vmconfig::VmConfig;

/// Boot figures of one kernel, bare and hosted.
pub struct GuestBoot {
    /// The kernel, `name-version`.
    pub kernel: String,
    /// QEMU wall time with the kernel booted directly.
    pub bare: Summary,
    /// QEMU wall time with the kernel as the hypervisor's guest.
    pub hosted: Summary,
    /// The hypervisor's clock in the last hosted run: machine start to
    /// guest entry, and guest entry to shutdown, in microseconds.
    pub clock_us: (u64, u64),
}

/// Times the unmodified helloworld bare and hosted, `runs` times each;
/// returns the figures and the last hosted run's output. `files` are the
/// hypervisor's artifacts for `spec`.
pub fn measure(
    spec: &'static ArchSpec,
    paths: &ArchPaths,
    files: &VmFiles,
    runs: usize,
) -> Result<(GuestBoot, String)> {
    let app = tutorial::HELLOWORLD;
    let flat = guest_flat(&tutorial::build(app, spec)?, spec)?;
    let kernel_path = paths.e2e.join(format!("{}.bin", app.dir_name()));
    crate::fsio::write_if_different(&kernel_path, &flat)?;
    let disk = paths.e2e.join(format!("disk-{}.img", app.dir_name()));
    crate::disk::write_fat_disk(&disk, &guest_disk(&flat, &VmConfig::DEFAULT, None))?;

    // Bare: QEMU loads the flat kernel where the hypervisor loads its
    // guest too, on the same machine without the virtualization extension
    // (on aarch64 that also puts QEMU's PSCI on the HVC conduit the
    // kernel's configuration names).
    let bare_files = VmFiles {
        kernel: &kernel_path,
        ..*files
    };
    let bare = Summary::of(time_command(runs, || {
        let out = super::boot(spec, &bare_files, spec.qemu.without_virtualization)?;
        ensure!(
            out.text.contains("Hello, world!"),
            "the bare kernel did not greet:\n{}",
            out.text
        );
        Ok(out.wall)
    })?);

    let hosted_files = VmFiles {
        disk: &disk,
        ..*files
    };
    let mut clock_us = (0, 0);
    let mut last = String::new();
    let hosted = Summary::of(time_command(runs, || {
        let out = super::boot(spec, &hosted_files, &[])?;
        ensure!(
            out.text.contains("Hello, world!"),
            "the hosted kernel did not greet:\n{}",
            out.text
        );
        clock_us = parse_clock(&out.text)?;
        last = out.text;
        Ok(out.wall)
    })?);
    Ok((
        GuestBoot {
            kernel: app.dir_name(),
            bare,
            hosted,
            clock_us,
        },
        last,
    ))
}

/// Emulated-UART accesses per character the guest printed, from a run's
/// output: the `uart` count of `Device accesses:` over the characters
/// after the hypervisor's `Entering VM run loop...` line and before its
/// `Shutdown vm normally!` line (all of them the guest's), carriage
/// returns not counted (consoles add their own).
pub fn uart_accesses_per_char(text: &str, uart: &str) -> Option<f64> {
    let start = text.find("Entering VM run loop...")?;
    let start = start + text[start..].find('\n')? + 1;
    let end = start + text[start..].find("Shutdown vm normally!")?;
    let chars = text[start..end].bytes().filter(|&b| b != b'\r').count();
    let accesses: u64 = text
        .lines()
        .rev()
        .find_map(|l| l.trim_end().strip_prefix("Device accesses: "))?
        .split(", ")
        .find_map(|part| part.strip_prefix(uart)?.strip_prefix(' '))?
        .parse()
        .ok()?;
    Some(accesses as f64 / chars.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uart_accesses_are_counted_per_printed_character() {
        let text = "hv\r\nEntering VM run loop...\r\nabc\r\nde\r\nShutdown vm normally!\r\n\
            Device accesses: plic 0, uart16550 14\r\n";
        // "abc\nde\n" is 7 characters without the carriage returns.
        assert_eq!(uart_accesses_per_char(text, "uart16550"), Some(2.0));
        assert_eq!(uart_accesses_per_char("no run", "uart16550"), None);
        assert_eq!(
            uart_accesses_per_char(
                "Entering VM run loop...\nx\nShutdown vm normally!\nDevice accesses: none\n",
                "uart16550"
            ),
            None
        );
    }
}
