//! SMP figures, riscv64 and aarch64: the IPI round trip between two vCPUs
//! as the bundled guest's `smp` scenario times it (100 rounds, by the
//! guest's own counter; under `-icount shift=0` that counter gives
//! instructions), and Linux to its `/init` with 4 vCPUs against bare QEMU
//! with `-smp 4`. Each SMP VM runs on a hypervisor built for as many host
//! CPUs as it has vCPUs.

use super::measure::{Summary, time_command};
use crate::arch::{ArchSpec, VmFiles};
use crate::build::CargoOutput;
use crate::paths::ArchPaths;
use crate::prepare::{build_guest, guest_disk, hypervisor_for_cpus};
use anyhow::{Context, Result};
use guestaspace_core::scenario::Scenario;
use guestaspace_core::vmconfig::VmConfig;
use std::time::Duration;

/// What the SMP bench measured.
pub struct SmpFigures {
    /// The IPI round trip by the guest's counter, over the runs.
    pub ipi: Summary,
    /// The same under `-icount shift=0`: instructions (all vCPUs').
    pub ipi_icount: u64,
    /// Linux to `/init` with 4 vCPUs: bare QEMU `-smp 4`, and hosted.
    pub linux: Option<(Summary, Summary)>,
}

/// The vCPUs of the IPI figures.
const IPI_CPUS: usize = 2;
/// The vCPUs of the Linux figures.
pub const LINUX_CPUS: usize = 4;

/// The mean round trip the guest printed (`IPI round trip: N ns ...`).
fn round_trip_ns(text: &str) -> Result<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("IPI round trip: "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("the guest printed no IPI round trip:\n{text}"))
}

/// Measures `spec`'s SMP figures, `runs` times each.
pub fn measure(spec: &'static ArchSpec, paths: &ArchPaths, runs: usize) -> Result<SmpFigures> {
    let smp = hypervisor_for_cpus(spec, paths, IPI_CPUS, CargoOutput::Captured)?;
    let mut log = String::new();
    let guest = build_guest(
        spec,
        paths,
        Scenario::Normal,
        CargoOutput::Captured,
        &mut log,
    )?;
    let vm = VmConfig {
        cpus: IPI_CPUS as u32,
        ..VmConfig::DEFAULT
    };
    let disk = paths.e2e.join("disk-bench-smp.img");
    crate::disk::write_fat_disk(&disk, &guest_disk(&guest, &vm, None))?;
    let pflash = paths.e2e.join("pflash-smp.img");
    crate::pflash::write_pflash(&pflash, Scenario::Smp, spec.pflash_size)?;
    let files = VmFiles {
        kernel: smp.kernel(spec),
        disk: &disk,
        pflash: &pflash,
    };
    let cpus = IPI_CPUS.to_string();
    let smp_args = ["-smp", cpus.as_str()];
    let ipi = Summary::of(time_command(runs, || {
        let out = super::boot(spec, &files, &smp_args)?;
        Ok(Duration::from_nanos(round_trip_ns(&out.text)?))
    })?);
    let mut icount_args = smp_args.to_vec();
    icount_args.extend_from_slice(crate::arch::ICOUNT);
    let ipi_icount = round_trip_ns(&super::boot(spec, &files, &icount_args)?.text)?;
    let linux = if crate::guests::linux::supports(spec.arch) {
        Some(super::linux_boot::measure_smp(
            spec, paths, runs, LINUX_CPUS,
        )?)
    } else {
        None
    };
    Ok(SmpFigures {
        ipi,
        ipi_icount,
        linux,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_round_trip_line_is_read() {
        let text =
            "100 IPIs to CPU 1 and 100 back, none lost\nIPI round trip: 12345 ns (mean of 100)\n";
        assert_eq!(round_trip_ns(text).unwrap(), 12345);
        assert!(round_trip_ns("nothing").is_err());
    }
}
