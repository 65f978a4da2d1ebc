//! The end-to-end cases of the bundled guest with 2 vCPUs (riscv64 and
//! aarch64), on a hypervisor built for 2 host CPUs: `smp` (CPU 1 started
//! through the firmware interface after the calls the spec refuses, 100
//! IPIs each way, remote fences) and `smp-fault` (CPU 1's wild access stops
//! the VM, naming vCPU 1).

use super::{Ctx, DEFAULT_TIMEOUT, expect_vm_failure, with_output};
use crate::arch::Arch;
use crate::vm::RunOutput;
use crate::vm_report::check_in_order;
use anyhow::Result;
use guestaspace_core::scenario::Scenario;
use guestaspace_core::vmconfig::VmConfig;

/// Boots gkernel playing `scenario` with 2 vCPUs on 2 host CPUs.
fn boot_two(ctx: &Ctx, scenario: Scenario) -> Result<RunOutput> {
    let smp = ctx.with_host_cpus(2)?;
    let vm = VmConfig {
        cpus: 2,
        ..VmConfig::DEFAULT
    };
    smp.boot_scenario_with(scenario, &vm, DEFAULT_TIMEOUT)
}

/// What the firmware answers each start of CPU 1's program, in the
/// scenario's order: an entry outside RAM, a CPU that does not exist,
/// CPU 1's state before, the start itself, CPU 1 again, CPU 0 (on), and
/// CPU 1's state after. SBI: INVALID_ADDRESS -5, INVALID_PARAM -3,
/// STOPPED 1, ALREADY_AVAILABLE -6, STARTED 0. PSCI: INVALID_ADDRESS -9,
/// INVALID_PARAMETERS -2, OFF 1, ALREADY_ON -4, ON 0.
fn answers(arch: Arch) -> [String; 7] {
    let (bad_address, no_cpu, already) = match arch {
        Arch::Riscv64 => (-5, -3, -6),
        _ => (-9, -2, -4),
    };
    [
        // gkernel's OUTSIDE_RAM on both machines.
        format!("start CPU 1 at 0x30000000 (outside RAM): {bad_address}"),
        format!("start CPU 5 (no such CPU): {no_cpu}"),
        "CPU 1's state before: 1".into(),
        "start CPU 1: 0".into(),
        format!("start CPU 1 again: {already}"),
        format!("start CPU 0 (this one): {already}"),
        "CPU 1's state after: 0".into(),
    ]
}

/// CPU 1 starts where and with what the start call said, answers 100 IPIs
/// with 100 of its own, the refused calls answer the spec's errors, the
/// remote fences (riscv64) answer success, and the VM powers off cleanly
/// with exits counted on both vCPUs.
pub(super) fn smp(ctx: &Ctx) -> Result<()> {
    let out = boot_two(ctx, Scenario::Smp)?;
    out.check().map_err(|e| with_output(&out, e))?;
    let answers = answers(ctx.spec.arch);
    let mut wanted: Vec<&str> = vec!["vCPUs: 2, each on its own host CPU", "Scenario smp: "];
    wanted.extend(answers[..6].iter().map(String::as_str));
    wanted.extend([
        "CPU 1 runs: it is CPU 1, its argument is the mailbox",
        answers[6].as_str(),
        "100 IPIs to CPU 1 and 100 back, none lost",
    ]);
    if ctx.spec.arch == Arch::Riscv64 {
        wanted.extend([
            "remote fence.i on CPU 1: 0",
            "remote sfence.vma on CPUs 0 and 1: 0",
        ]);
    }
    wanted.extend([
        "Shutdown vm normally!",
        "vCPU 0: ",
        "vCPU 1: ",
        "Hypervisor ok!",
    ]);
    check_in_order(&out.text, &wanted).map_err(|e| with_output(&out, e))?;
    Ok(())
}

/// CPU 1 reads an address the hypervisor never declared: the VM stops
/// with the wild-access diagnostic naming vCPU 1 and the address, and the
/// run fails.
pub(super) fn smp_fault(ctx: &Ctx) -> Result<()> {
    let out = boot_two(ctx, Scenario::SmpFault)?;
    expect_vm_failure(&out)?;
    let address = match ctx.spec.arch {
        Arch::Riscv64 => "0x30000000",
        _ => "0xa000000",
    };
    let diagnostic = format!(
        "error: VM stopped on vCPU 1: guest read at guest-physical address {address}, which is outside every region"
    );
    check_in_order(
        &out.text,
        &[
            "CPU 1 runs: it is CPU 1",
            "asking CPU 1 to read an undeclared address",
            &diagnostic,
        ],
    )
    .map_err(|e| with_output(&out, e))?;
    Ok(())
}

/// A VM config asking for 2 vCPUs, booted on the hypervisor built for one
/// host CPU (the default build, as if QEMU had no `-smp`): refused before
/// the guest runs, naming both counts, and the run fails.
pub(super) fn cpus_beyond_host(ctx: &Ctx) -> Result<()> {
    let vm = VmConfig {
        cpus: 2,
        ..VmConfig::DEFAULT
    };
    let out = ctx.boot_scenario_with(Scenario::Normal, &vm, DEFAULT_TIMEOUT)?;
    expect_vm_failure(&out)?;
    check_in_order(
        &out.text,
        &["error: guest boot: the VM has 2 vCPUs and the hypervisor runs on 1 host CPUs"],
    )
    .map_err(|e| with_output(&out, e))?;
    anyhow::ensure!(
        !out.text.contains("Entering VM run loop"),
        with_output(&out, "the guest ran")
    );
    Ok(())
}
