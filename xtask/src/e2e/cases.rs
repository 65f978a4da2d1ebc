//! The end-to-end cases: a normal boot with its counters checked, each way
//! a run must fail (and that it does fail), and a no-op rebuild. Linux's
//! cases are in `cases/linux.rs`.

mod linux;
mod smp;

use super::{Case, Ctx, DEFAULT_TIMEOUT};
use crate::arch::Arch;
use crate::build::CargoOutput;
use crate::disk::{DiskFiles, write_fat_disk, write_non_fat_disk};
use crate::guests::tutorial::{self, TutorialApp};
use crate::prepare::{GuestSource, PrepareOptions, guest_disk, prepare};
use crate::vm::{Input, InputStep, RunOutput, VmEnd};
use crate::vm_report::{
    check_in_order, parse_exceptions, parse_exits, parse_injections, parse_mapped,
};
use anyhow::{Context, Result, anyhow, bail, ensure};
use guestaspace_core::PAGE_SIZE;
use guestaspace_core::scenario::Scenario;
use guestaspace_core::vmconfig::{self, VmConfig};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// The cases of `arch`, in the order they run.
pub fn for_arch(arch: Arch) -> Vec<Case> {
    let mut cases = common_cases();
    if arch == Arch::Riscv64 {
        cases.extend([
            Case {
                name: "readme-transcript",
                run: readme_transcript,
            },
            Case {
                name: "bad-vm-file",
                run: bad_vm_file,
            },
            Case {
                name: "dlab-wild-access",
                run: dlab_wild_access,
            },
            Case {
                name: "uboot",
                run: uboot,
            },
            Case {
                name: "linux",
                run: linux::linux_boots,
            },
            Case {
                name: "linux-init-fails",
                run: linux::linux_init_fails,
            },
            Case {
                name: "linux-smp",
                run: linux::linux_smp,
            },
        ]);
    }
    if arch == Arch::Aarch64 {
        cases.extend([
            Case {
                name: "smc",
                run: smc,
            },
            Case {
                name: "debian-linux",
                run: linux::linux_boots,
            },
            Case {
                name: "debian-linux-init-fails",
                run: linux::linux_init_fails,
            },
            Case {
                name: "debian-linux-smp",
                run: linux::linux_smp,
            },
        ]);
    }
    if arch == Arch::X86_64 {
        cases.extend([
            Case {
                name: "tutorial-helloworld",
                run: tutorial_helloworld,
            },
            Case {
                name: "tutorial-fairsched",
                run: tutorial_fairsched,
            },
            Case {
                name: "watchdog",
                run: watchdog,
            },
            Case {
                name: "unknown-msr",
                run: unknown_msr,
            },
            Case {
                name: "svm-instruction",
                run: svm_instruction,
            },
            Case {
                name: "user-vmmcall",
                run: user_vmmcall,
            },
            Case {
                name: "com1-input",
                run: com1_input,
            },
            Case {
                name: "acpi-sleep",
                run: acpi_sleep,
            },
        ]);
    }
    if matches!(arch, Arch::Riscv64 | Arch::X86_64) {
        cases.push(Case {
            name: "initrd-without-linux",
            run: initrd_without_linux,
        });
    }
    if matches!(arch, Arch::Riscv64 | Arch::Aarch64) {
        cases.extend([
            Case {
                name: "smp",
                run: smp::smp,
            },
            Case {
                name: "smp-fault",
                run: smp::smp_fault,
            },
            Case {
                name: "cpus-beyond-host",
                run: smp::cpus_beyond_host,
            },
            Case {
                name: "cpu-stop",
                run: cpu_stop,
            },
            Case {
                name: "pflash-write",
                run: pflash_write,
            },
            Case {
                name: "uart-input",
                run: uart_input,
            },
            Case {
                name: "tutorial-helloworld",
                run: tutorial_helloworld,
            },
            Case {
                name: "tutorial-fairsched",
                run: tutorial_fairsched,
            },
            Case {
                name: "watchdog",
                run: watchdog,
            },
        ]);
    }
    cases
}

/// The cases every architecture runs.
fn common_cases() -> Vec<Case> {
    vec![
        Case {
            name: "boot",
            run: boot,
        },
        Case {
            name: "exact-exits",
            run: exact_exits,
        },
        Case {
            name: "linked-at-entry",
            run: linked_at_entry,
        },
        Case {
            name: "wild-access",
            run: wild_access,
        },
        Case {
            name: "crash",
            run: crash,
        },
        Case {
            name: "timeout",
            run: timeout,
        },
        Case {
            name: "no-virtualization",
            run: no_virtualization,
        },
        Case {
            name: "missing-gkernel",
            run: missing_gkernel,
        },
        Case {
            name: "oversized-gkernel",
            run: oversized_gkernel,
        },
        Case {
            name: "bad-disk",
            run: bad_disk,
        },
        Case {
            name: "bad-vm-config",
            run: bad_vm_config,
        },
        Case {
            name: "vm-config-missing-kernel",
            run: vm_config_missing_kernel,
        },
        Case {
            name: "vm-file",
            run: vm_file,
        },
        Case {
            name: "bad-console-pointer",
            run: bad_console_pointer,
        },
        Case {
            name: "guest-mem",
            run: guest_mem,
        },
        Case {
            name: "blocks-off",
            run: blocks_off,
        },
        Case {
            name: "mem-beyond-host",
            run: mem_beyond_host,
        },
        Case {
            name: "incremental",
            run: incremental,
        },
    ]
}

/// Writing to read-only pflash stops the VM with the region named.
fn pflash_write(ctx: &Ctx) -> Result<()> {
    let out = ctx.boot_scenario(Scenario::PflashWrite)?;
    expect_vm_failure(&out)?;
    let pflash = ctx
        .spec
        .layout()
        .regions
        .iter()
        .find(|r| r.name == "pflash")
        .context("the layout has no pflash")?;
    expect_line_starting(
        &out,
        &format!(
            "error: VM stopped: guest write at guest-physical address {:#x} is not allowed in region `pflash` (guest PC 0x",
            pflash.gpa
        ),
    )
}

/// The console-write call asked to print from outside guest RAM answers
/// the bad-address error of its convention (SBI DBCN: -5,
/// SBI_ERR_INVALID_ADDRESS; the SMCCC vendor call over HVC or VMMCALL:
/// -9, PSCI's INVALID_ADDRESS) and prints nothing; the guest goes on and
/// shuts down cleanly.
fn bad_console_pointer(ctx: &Ctx) -> Result<()> {
    let out = ctx.boot_scenario(Scenario::BadConsolePointer)?;
    out.check().map_err(|e| with_output(&out, e))?;
    expect_line_starting(&out, ctx.spec.bad_console_reply)
}

/// SMCCC over SMC is not offered (the guest contract says HVC): a guest's
/// SMC stops the VM with the exception named, status != 0.
fn smc(ctx: &Ctx) -> Result<()> {
    let out = ctx.boot_scenario(Scenario::Smc)?;
    expect_vm_failure(&out)?;
    expect_line_starting(
        &out,
        "error: VM stopped: unexpected VM exit: SMC (the guest must use HVC)",
    )
}

/// Stopping the guest's only CPU through its firmware (SBI HSM
/// `hart_stop`, PSCI `CPU_OFF`) is not a power-off: the VM stops as failed,
/// naming why, and the call never returns to the guest.
fn cpu_stop(ctx: &Ctx) -> Result<()> {
    let out = ctx.boot_scenario(Scenario::CpuStop)?;
    expect_vm_failure(&out)?;
    check_in_order(
        &out.text,
        &[
            "Scenario cpu-stop: ",
            "error: VM stopped: the guest stopped its last running CPU without powering off",
        ],
    )
    .map_err(|e| with_output(&out, e))?;
    ensure!(
        !out.text.contains("hart_stop returned") && !out.text.contains("CPU_OFF returned"),
        "the CPU stop returned to the guest"
    );
    Ok(())
}

/// `SLP_EN` with a sleep type other than soft-off is not a power-off: the
/// VM stops as failed, naming the sleep type; the write never returns.
fn acpi_sleep(ctx: &Ctx) -> Result<()> {
    let out = ctx.boot_scenario(Scenario::AcpiSleep)?;
    expect_vm_failure(&out)?;
    check_in_order(
        &out.text,
        &[
            "Scenario acpi-sleep: SLP_EN with SLP_TYP 1 to port 0x604",
            "error: VM stopped: the guest asked for ACPI sleep type 1 (PM1a SLP_TYP)",
        ],
    )
    .map_err(|e| with_output(&out, e))?;
    ensure!(
        !out.text.contains("The sleep request returned"),
        "the sleep request returned to the guest"
    );
    Ok(())
}

/// Boots `scenario`, in which the guest prints `announce`, then does one
/// thing the hypervisor must answer with an exception injected into the
/// guest (`exception`, as ArceOS names it in its report): the guest's own
/// handler reports it and powers off as failed, the line the scenario
/// prints if the instruction did not fault never appears, and the report
/// counts exactly one injected exception. Returns the run's output.
fn expect_injected_exception(
    ctx: &Ctx,
    scenario: Scenario,
    announce: &str,
    exception: &str,
) -> Result<RunOutput> {
    let out = ctx.boot_scenario(scenario)?;
    expect_vm_failure(&out)?;
    check_in_order(
        &out.text,
        &[
            announce,
            exception,
            "the guest asked to power off because it failed",
        ],
    )
    .map_err(|e| with_output(&out, e))?;
    ensure!(
        !out.text.contains("instead of faulting"),
        "{announce}: the instruction did not fault"
    );
    let injected = parse_exceptions(&out.text).map_err(|e| with_output(&out, e))?;
    ensure!(
        injected == 1,
        "expected 1 injected exception, the report says {injected}"
    );
    Ok(out)
}

/// An `RDMSR` of a register the MSR policy does not know gets `#GP(0)`
/// injected, as on a CPU without that register, instead of stopping the
/// VM: ArceOS's own handler reports the unhandled `#GP` and the guest
/// powers off as failed; the report counts the injected exception.
fn unknown_msr(ctx: &Ctx) -> Result<()> {
    expect_injected_exception(
        ctx,
        Scenario::UnknownMsr,
        "Scenario unknown-msr: RDMSR 0x40000042",
        "#GP",
    )
    .map(drop)
}

/// `INVLPGA` in the guest gets `#UD`, as on a CPU that shows no SVM:
/// intercepted (it could flush other address spaces' TLB entries), not
/// executed, and not a VM stop either; it is counted as a reflected exit.
fn svm_instruction(ctx: &Ctx) -> Result<()> {
    let out = expect_injected_exception(
        ctx,
        Scenario::SvmInstruction,
        "Scenario svm-instruction: INVLPGA",
        "#UD",
    )?;
    let exits = parse_exits(&out.text).map_err(|e| with_output(&out, e))?;
    let reflected = exits.get("reflected")?;
    ensure!(
        reflected == 1,
        "expected 1 reflected exit, the report says {reflected}"
    );
    Ok(())
}

/// A `VMMCALL` asking PSCI `SYSTEM_OFF` from guest user mode (CPL 3) is
/// refused, as KVM refuses it: RAX comes back NOT_SUPPORTED (-1) and the
/// VM goes on. The user code's `UD2` then traps back to the guest kernel,
/// which prints the trap (vector 6, CS 0x23) and RAX, and powers off
/// through its own path later, with status 0.
fn user_vmmcall(ctx: &Ctx) -> Result<()> {
    let out = ctx.boot_scenario(Scenario::UserVmmcall)?;
    out.check().map_err(|e| with_output(&out, e))?;
    check_in_order(
        &out.text,
        &[
            "Scenario user-vmmcall: PSCI SYSTEM_OFF by VMMCALL from CPL 3",
            "CPL 3 trap: vector 6 at ",
            "Shutdown vm normally!",
        ],
    )
    .map_err(|e| with_output(&out, e))?;
    let trap = out
        .text
        .lines()
        .find(|l| l.contains("CPL 3 trap: vector 6 at "))
        .unwrap_or_default();
    ensure!(
        trap.contains("(CS 0x23), RAX = 0xffffffffffffffff after the VMMCALL"),
        "the CPL 3 VMMCALL was not refused with -1: `{trap}`"
    );
    Ok(())
}

/// A line typed on QEMU's serial input reaches the guest through the
/// emulated UART's receive interrupt and the PLIC (riscv64) or GIC
/// (aarch64), and comes back.
fn uart_input(ctx: &Ctx) -> Result<()> {
    let steps = [InputStep {
        after: "Type a line:",
        send: b"hello hypervisor\r",
    }];
    let out = ctx.boot_with_input(
        &ctx.paths.disk,
        Scenario::Echo,
        DEFAULT_TIMEOUT,
        &[],
        Input::Script(&steps),
    )?;
    out.check().map_err(|e| with_output(&out, e))?;
    echoed_through_interrupts(&out).map(|_| ())
}

/// Checks that the guest echoed `hello hypervisor` after taking at least
/// one receive interrupt, and that the hypervisor injected at least as many
/// external interrupts as the guest took; answers how many it took.
fn echoed_through_interrupts(out: &RunOutput) -> Result<u64> {
    let echo = out
        .text
        .lines()
        .find_map(|l| l.strip_prefix("Echo: hello hypervisor ("))
        .ok_or_else(|| with_output(out, "the guest did not echo the typed line"))?;
    let interrupts: u64 = echo
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .context("no interrupt count in the echo line")?;
    ensure!(
        echo.trim_end().ends_with(" receive interrupts)"),
        with_output(out, "the echo line does not count receive interrupts")
    );
    ensure!(
        interrupts >= 1,
        "the line arrived without a receive interrupt"
    );
    let injected = parse_injections(&out.text)?;
    ensure!(
        injected.1 >= interrupts,
        "the guest took {interrupts} receive interrupts but the hypervisor injected {} external ones",
        injected.1
    );
    Ok(interrupts)
}

/// A line typed on QEMU's serial input reaches the x86_64 guest through
/// COM1's receive interrupt (ISA IRQ 4 on pin 4 of the emulated I/O APIC,
/// which the guest programs through emulated MMIO, to the emulated local
/// APIC and into the guest as a virtual interrupt) and comes back.
fn com1_input(ctx: &Ctx) -> Result<()> {
    let steps = [InputStep {
        after: "Type a line:",
        send: b"hello hypervisor\r",
    }];
    let (disk, pflash) = ctx.scenario_disk(Scenario::Echo, &VmConfig::DEFAULT)?;
    let out = ctx.boot_with_input(&disk, pflash, DEFAULT_TIMEOUT, &[], Input::Script(&steps))?;
    out.check().map_err(|e| with_output(&out, e))?;
    echoed_through_interrupts(&out)?;
    ensure!(
        device_accesses(&out.text, "ioapic")? > 0,
        with_output(&out, "the guest did not program the I/O APIC")
    );
    ensure!(
        device_accesses(&out.text, "uart16550")? > 16,
        with_output(&out, "the line did not come through COM1's registers")
    );
    Ok(())
}

/// Debian's U-Boot (`u-boot-qemu`, the S-mode payload for QEMU virt),
/// unmodified, finds the machine in the device tree the hypervisor made:
/// it reaches its prompt, runs commands typed on the serial line (its
/// version; the device tree's memory node, which must show the `--mem`
/// size: 96 MiB here), and powers off through SBI SRST with status 0.
fn uboot(ctx: &Ctx) -> Result<()> {
    let image = crate::guests::debian::fetch(crate::guests::debian::UBOOT_RISCV64_SMODE)?;
    let guest = crate::guest_image::guest_flat(&image, ctx.spec)?;
    let vm = VmConfig {
        mem: Some(96 << 20),
        ..VmConfig::DEFAULT
    };
    let disk = ctx.paths.e2e.join("disk-uboot.img");
    write_fat_disk(&disk, &guest_disk(&guest, &vm, None))?;
    let steps = [
        InputStep {
            after: "Hit any key to stop autoboot",
            send: b" ",
        },
        InputStep {
            after: "=> ",
            send: b"version\r",
        },
        InputStep {
            after: "=> ",
            send: b"fdt addr $fdtcontroladdr; fdt print /memory\r",
        },
        InputStep {
            after: "=> ",
            send: b"poweroff\r",
        },
    ];
    let out = ctx.boot_with_input(
        &disk,
        Scenario::Normal,
        Duration::from_secs(60),
        &[],
        Input::Script(&steps),
    )?;
    out.check().map_err(|e| with_output(&out, e))?;
    check_in_order(
        &out.text,
        &[
            "Entering VM run loop...",
            "U-Boot 2023.01",
            "DRAM:  96 MiB",
            "=> version",
            "U-Boot 2023.01",
            "fdt print /memory",
            "memory@80000000 {",
            "device_type = \"memory\";",
            "reg = <0x00000000 0x80000000 0x00000000 0x06000000>;",
            "=> poweroff",
            "Shutdown vm normally!",
            "Hypervisor ok!",
        ],
    )
    .map_err(|e| with_output(&out, e))
}

/// A guest that sets its UART's DLAB no longer reaches THR, but the
/// hypervisor's own console is not the guest's: its diagnostic still shows.
fn dlab_wild_access(ctx: &Ctx) -> Result<()> {
    let out = ctx.boot_scenario(Scenario::DlabWildAccess)?;
    expect_vm_failure(&out)?;
    expect_line_starting(
        &out,
        "error: VM stopped: guest read at guest-physical address 0x40000000, which is outside every region the hypervisor declared (guest PC 0x",
    )
}

/// The bundled guest at `/sbin/gkernel` on a disk whose `/etc/vm.toml`
/// is `config`.
fn disk_with_config(ctx: &Ctx, name: &str, config: &str) -> Result<std::path::PathBuf> {
    let disk = ctx.paths.e2e.join(format!("{name}.img"));
    let files = DiskFiles::from([
        (
            crate::prepare::GUEST_DISK_PATH.to_string(),
            ctx.prepared.guest.clone(),
        ),
        (vmconfig::PATH.to_string(), config.as_bytes().to_vec()),
    ]);
    write_fat_disk(&disk, &files)?;
    Ok(disk)
}

/// A guest that never powers off is stopped by the hypervisor's own
/// watchdog (`watchdog = 1` in `/etc/vm.toml`), long before QEMU's timeout.
fn watchdog(ctx: &Ctx) -> Result<()> {
    let vm = VmConfig {
        watchdog_secs: Some(1),
        ..VmConfig::DEFAULT
    };
    let out = ctx.boot_scenario_with(Scenario::NeverShutdown, &vm, DEFAULT_TIMEOUT)?;
    expect_vm_failure(&out)?;
    expect_line_starting(
        &out,
        "error: VM stopped: watchdog: the guest ran for 100 host ticks without powering off (guest PC 0x",
    )
}

/// A VM config with a mistake stops the hypervisor before the guest runs,
/// naming the file, the line and the key.
fn bad_vm_config(ctx: &Ctx) -> Result<()> {
    let disk = disk_with_config(ctx, "bad-vm-config", "# settings\nmemory = \"1M\"\n")?;
    let out = ctx.boot(&disk, Scenario::Normal, DEFAULT_TIMEOUT)?;
    expect_vm_failure(&out)?;
    expect_line_starting(
        &out,
        "error: VM config /etc/vm.toml line 2: unknown key `memory`",
    )?;
    ensure!(
        !out.text.contains("Entering VM run loop"),
        with_output(&out, "the guest ran despite the bad config")
    );
    Ok(())
}

/// A VM config naming a kernel that is not on the disk is refused before
/// the guest runs, naming the key and the path (the disk does have
/// `/sbin/gkernel`: the config's kernel is the one used, not the default).
fn vm_config_missing_kernel(ctx: &Ctx) -> Result<()> {
    let config = "name = \"gone\"\nkernel = \"/sbin/elsewhere\"\n";
    let disk = disk_with_config(ctx, "vm-config-missing-kernel", config)?;
    let out = ctx.boot(&disk, Scenario::Normal, DEFAULT_TIMEOUT)?;
    expect_vm_failure(&out)?;
    expect_line_starting(
        &out,
        "error: VM config /etc/vm.toml line 2: kernel `/sbin/elsewhere` is not on the disk",
    )?;
    ensure!(
        !out.text.contains("Entering VM run loop"),
        with_output(&out, "the guest ran without the config's kernel")
    );
    Ok(())
}

/// `cargo xtask run --vm configs/vms/gkernel.toml`: the command line is
/// parsed and turned into the run's options as `run` does, the build step
/// writes the disk (one of its own, not the one the other cases boot),
/// and the VM boots with the file's settings: its `/etc/vm.toml` names
/// the VM and the kernel, and the guest runs in the file's 64 MiB under
/// its 30 s watchdog.
fn vm_file(ctx: &Ctx) -> Result<()> {
    let file = crate::vm_file::shipped_path("gkernel");
    let args = [
        "run",
        "--arch",
        ctx.spec.arch.name(),
        "--vm",
        file.to_str().context("a UTF-8 path")?,
    ];
    let options = crate::cli::run_options_for(&args)?;
    ensure!(
        matches!(options.guest, GuestSource::Bundled),
        "gkernel.toml names no kernel, yet the guest is {:?}",
        options.guest
    );
    let mut paths = ctx.paths.clone();
    paths.disk = ctx.paths.e2e.join("disk-vm-file.img");
    let prepare_options = PrepareOptions {
        guest: options.guest,
        scenario: options.scenario,
        cargo: CargoOutput::Captured,
        vm: options.vm,
        initrd: options.initrd,
    };
    prepare(ctx.spec, &paths, &prepare_options)?;
    let on_disk = crate::disk::read_fat_files(&paths.disk)?;
    let config = on_disk
        .get(vmconfig::PATH)
        .context("the disk has no /etc/vm.toml")?;
    let config = vmconfig::parse(std::str::from_utf8(config)?)
        .map_err(|e| anyhow!("the disk's config: {e}"))?;
    ensure!(
        config
            == VmConfig {
                name: Some("gkernel".into()),
                kernel: Some("/sbin/gkernel".into()),
                mem: Some(64 << 20),
                watchdog_secs: Some(30),
                ..VmConfig::DEFAULT
            },
        "the disk's config is {config:?}"
    );
    let out = ctx.boot(&paths.disk, Scenario::Normal, DEFAULT_TIMEOUT)?;
    out.check().map_err(|e| with_output(&out, e))?;
    check_in_order(
        &out.text,
        &[
            "Loaded ",
            "Watchdog: the guest is stopped after 30 s",
            "Entering VM run loop...",
            "Got pflash magic: pfld",
            "Shutdown vm normally!",
            "of 64 MiB)",
            "Hypervisor ok!",
        ],
    )
    .map_err(|e| with_output(&out, e))?;
    ensure!(
        out.text
            .lines()
            .any(|l| l.starts_with("Loaded ") && l.contains(" bytes from /sbin/gkernel at GPA ")),
        with_output(&out, "no `Loaded ... bytes from /sbin/gkernel` line")
    );
    Ok(())
}

/// `cargo xtask run --vm FILE` with an unknown key in FILE: xtask itself
/// refuses it before building anything or starting QEMU, naming the
/// file, the line and the key, and exits with a failure status.
fn bad_vm_file(ctx: &Ctx) -> Result<()> {
    let file = ctx.paths.e2e.join("bad-vm-file.toml");
    crate::fsio::write_if_different(
        &file,
        b"# a VM config with a typo\nname = \"typo\"\n\nmemory = \"64M\"\n",
    )?;
    let xtask = std::env::current_exe().context("cannot find the running xtask")?;
    let args = [
        "run",
        "--arch",
        ctx.spec.arch.name(),
        "--timeout",
        "5",
        "--vm",
    ]
    .map(std::ffi::OsString::from)
    .into_iter()
    .chain([file.clone().into_os_string()])
    .collect::<Vec<_>>();
    let watch = crate::vm::Watch {
        timeout: Duration::from_secs(60),
        echo: ctx.verbose,
        show_command: ctx.verbose,
        input: Input::Null,
    };
    let out = crate::vm::run_command(xtask.to_str().context("a UTF-8 path")?, &args, &watch)?;
    ensure!(
        matches!(out.end, VmEnd::Exited(code) if code != 0),
        with_output(
            &out,
            format!("xtask ended {:?}, not with a failure status", out.end)
        )
    );
    expect_line_starting(
        &out,
        &format!(
            "error: VM config {} line 4: unknown key `memory`",
            file.display()
        ),
    )?;
    ensure!(
        !out.text.contains("arceos-guestaspace:") && !out.text.contains("Compiling"),
        with_output(
            &out,
            "xtask built or booted something before refusing the file"
        )
    );
    Ok(())
}

/// An initrd beside a kernel that cannot take one (riscv64's gkernel is
/// not a Linux `Image`; x86_64 passes no initrd yet) is refused before the
/// guest runs, with a message naming it, and the run fails. (aarch64's
/// gkernel carries an arm64 `Image` header, as ArceOS kernels do, so it
/// is booted by that protocol and may be given an initrd.)
fn initrd_without_linux(ctx: &Ctx) -> Result<()> {
    let disk = ctx.paths.e2e.join("initrd-without-linux.img");
    let files = guest_disk(
        &ctx.prepared.guest,
        &VmConfig::DEFAULT,
        Some(b"070701 not used".to_vec()),
    );
    write_fat_disk(&disk, &files)?;
    let out = ctx.boot(&disk, Scenario::Normal, DEFAULT_TIMEOUT)?;
    expect_vm_failure(&out)?;
    let line = out
        .text
        .lines()
        .find(|l| l.starts_with("error: guest boot: "))
        .ok_or_else(|| with_output(&out, "no `error: guest boot:` line"))?;
    ensure!(
        line.contains("initrd"),
        with_output(
            &out,
            format!("the refusal does not name the initrd: `{line}`")
        )
    );
    ensure!(
        !out.text.contains("Entering VM run loop"),
        with_output(&out, "the guest ran despite the refused initrd")
    );
    Ok(())
}

/// `--mem 8M`: the guest boots in 8 MiB and the report counts what it
/// mapped against that size.
fn guest_mem(ctx: &Ctx) -> Result<()> {
    let vm = VmConfig {
        mem: Some(8 << 20),
        ..VmConfig::DEFAULT
    };
    let out = ctx.boot_scenario_with(Scenario::Normal, &vm, DEFAULT_TIMEOUT)?;
    out.check().map_err(|e| with_output(&out, e))?;
    let mapped = parse_mapped(&out.text)?;
    let ram = mapped.region("ram")?;
    ensure!(
        ram.size_mib == Some(8),
        with_output(
            &out,
            format!("guest RAM of {:?} MiB, expected 8", ram.size_mib)
        )
    );
    expect_text(&out, "of 8 MiB)")
}

/// `blocks = off`: every RAM fault maps one 4 KiB page, for a learner who
/// wants to watch each one; the guest runs as well, and the report shows
/// pages only.
fn blocks_off(ctx: &Ctx) -> Result<()> {
    let vm = VmConfig {
        blocks: false,
        ..VmConfig::DEFAULT
    };
    let out = ctx.boot_scenario_with(Scenario::Normal, &vm, DEFAULT_TIMEOUT)?;
    out.check().map_err(|e| with_output(&out, e))?;
    check_counters(&out.text, ctx).map_err(|e| with_output(&out, e))?;
    let mapped = parse_mapped(&out.text)?;
    ensure!(
        mapped.blocks == 0,
        with_output(
            &out,
            format!("{} blocks mapped with blocks = off", mapped.blocks)
        )
    );
    expect_text(&out, "Guest memory mapped: 0 blocks of 2 MiB + ")
}

/// More guest RAM than the host has free is refused before the guest runs.
fn mem_beyond_host(ctx: &Ctx) -> Result<()> {
    let vm = VmConfig {
        mem: Some(1 << 30),
        ..VmConfig::DEFAULT
    };
    let out = ctx.boot_scenario_with(Scenario::Normal, &vm, DEFAULT_TIMEOUT)?;
    expect_vm_failure(&out)?;
    expect_line_starting(
        &out,
        "error: guest layout: guest RAM of 1024 MiB is more than the ",
    )?;
    ensure!(
        !out.text.contains("Entering VM run loop"),
        with_output(&out, "the guest ran with RAM the host cannot back")
    );
    Ok(())
}

/// Boots an unmodified crates.io tutorial app as the guest, with the
/// settings `--tutorial` gives it (its shipped `configs/vms/NAME.toml`).
fn boot_tutorial(ctx: &Ctx, app: TutorialApp) -> Result<RunOutput> {
    let elf = tutorial::build(app, ctx.spec)?;
    let guest = crate::guest_image::guest_flat(&elf, ctx.spec)?;
    let vm = crate::vm_file::shipped(app.short_name())?.config;
    let out = ctx.boot_image(app.name, &guest, &vm, Duration::from_secs(120))?;
    out.check().map_err(|e| with_output(&out, e))?;
    Ok(out)
}

/// The unmodified helloworld greets through the emulated console UART
/// (the 16550 on riscv64, the PL011 on aarch64, COM1's 16550 through port
/// I/O on x86_64, entered by Multiboot) and powers off.
fn tutorial_helloworld(ctx: &Ctx) -> Result<()> {
    let out = boot_tutorial(ctx, tutorial::HELLOWORLD)?;
    check_in_order(
        &out.text,
        &[
            "Entering VM run loop...",
            "Hello, world!",
            "Shutdown vm normally!",
            "Hypervisor ok!",
        ],
    )
    .map_err(|e| with_output(&out, e))?;
    let uart = ctx
        .spec
        .console_device
        .context("this architecture's guest has no emulated console")?;
    let accesses = device_accesses(&out.text, uart)?;
    ensure!(
        accesses > 0,
        with_output(
            &out,
            format!("the greeting did not go through the emulated {uart}")
        )
    );
    Ok(())
}

/// The count of `device` in the hypervisor's `Device accesses:` line.
fn device_accesses(text: &str, device: &str) -> Result<u64> {
    let line = text
        .lines()
        .rev()
        .find_map(|l| l.trim_end().strip_prefix("Device accesses: "))
        .context("no `Device accesses:` line")?;
    line.split(", ")
        .find_map(|part| part.strip_prefix(device)?.strip_prefix(' '))
        .with_context(|| format!("no `{device}` in `Device accesses: {line}`"))?
        .parse()
        .with_context(|| format!("bad `{device}` count in `Device accesses: {line}`"))
}

/// Two threads that finish only if the timer preempts them: every worker
/// line, both `ok!` lines, and timer interrupts injected.
fn tutorial_fairsched(ctx: &Ctx) -> Result<()> {
    let out = boot_tutorial(ctx, tutorial::FAIRSCHED)?;
    for i in 0..=256 {
        for worker in ["worker1", "worker2"] {
            let line = format!("{worker} [{i}]");
            ensure!(
                out.text.lines().any(|l| l.trim_end() == line),
                with_output(&out, format!("no line `{line}`"))
            );
        }
    }
    check_in_order(
        &out.text,
        &[
            "Multi-task(Preemptible) is starting",
            "Multi-task(Preemptible) ok!",
            "Hypervisor ok!",
        ],
    )
    .map_err(|e| with_output(&out, e))?;
    for line in ["worker1 ok!", "worker2 ok!"] {
        expect_text(&out, line)?;
    }
    let exits = parse_exits(&out.text)?;
    ensure!(exits.get("timer")? > 0, "no timer exit");
    let (timer, external) = parse_injections(&out.text)?;
    ensure!(timer > 0, "no timer interrupt injected");
    if ctx.spec.arch == Arch::Aarch64 {
        // The timer is emulated (its register accesses trap) and its PPI
        // reaches the guest through the emulated GIC's IRQ line.
        ensure!(exits.get("sysreg")? > 0, "no trapped timer register access");
        ensure!(external > 0, "the GIC never raised the guest's IRQ line");
        ensure!(
            device_accesses(&out.text, "gicv2")? > 0,
            "the guest never touched its GIC"
        );
    }
    Ok(())
}

fn boot(ctx: &Ctx) -> Result<()> {
    let out = ctx.boot_scenario(Scenario::Normal)?;
    out.check().map_err(|e| with_output(&out, e))?;
    check_in_order(&out.text, ctx.spec.boot_lines).map_err(|e| with_output(&out, e))?;
    check_counters(&out.text, ctx).map_err(|e| with_output(&out, e))
}

/// Under `-icount` the bundled guest's run is repeatable to the exit: every
/// reason's count is exactly the one recorded for the architecture.
fn exact_exits(ctx: &Ctx) -> Result<()> {
    let out = ctx.boot_with_args(
        &ctx.paths.disk,
        Scenario::Normal,
        DEFAULT_TIMEOUT,
        crate::arch::ICOUNT,
    )?;
    out.check().map_err(|e| with_output(&out, e))?;
    let exits = parse_exits(&out.text)?;
    let got: Vec<(&str, u64)> = exits.kinds.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    ensure!(
        got == ctx.spec.icount_exits,
        with_output(
            &out,
            format!(
                "exits under -icount were {got:?}, expected exactly {:?}",
                ctx.spec.icount_exits
            )
        )
    );
    Ok(())
}

/// The README's `cargo xtask run` transcript is what a run prints, line
/// for line and figure for figure (under `-icount`, as the README says).
fn readme_transcript(ctx: &Ctx) -> Result<()> {
    let path = ctx.paths.repo.join("README.md");
    let readme = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let lines = crate::readme_transcript::transcript(&readme)?;
    let out = ctx.boot_with_args(
        &ctx.paths.disk,
        Scenario::Normal,
        DEFAULT_TIMEOUT,
        crate::arch::ICOUNT,
    )?;
    out.check().map_err(|e| with_output(&out, e))?;
    crate::readme_transcript::check(&lines, &out.text).map_err(|e| with_output(&out, e))
}

/// The shutdown counters must add up and show memory built on demand.
fn check_counters(text: &str, ctx: &Ctx) -> Result<()> {
    let exits = parse_exits(text)?;
    let faults = exits.get("nested page fault")?;
    let hypercalls = exits.get("hypercall")?;
    exits.get("timer")?;
    let unexpected = exits.get("unexpected")?;
    ensure!(
        faults >= 2,
        "{faults} nested page faults, expected at least 2 (pflash and RAM)"
    );
    ensure!(
        hypercalls >= 1,
        "no hypercall exit, expected at least the shutdown call"
    );
    ensure!(unexpected == 0, "{unexpected} unexpected exits");
    let sum: u64 = exits.kinds.iter().map(|&(_, n)| n).sum();
    ensure!(
        exits.total == sum,
        "exit total {} is not the sum of its kinds",
        exits.total
    );

    let mapped = parse_mapped(text)?;
    let pflash = mapped.region("pflash")?;
    ensure!(
        (pflash.blocks, pflash.pages) == (0, 1),
        "pflash: {} blocks and {} pages mapped, expected 1 page",
        pflash.blocks,
        pflash.pages
    );
    let ram = mapped.region("ram")?;
    ensure!(ram.bytes() > 0, "no RAM mapped");
    let size_mib = ram.size_mib.context("the RAM figure has no region size")?;
    let declared = ctx.spec.layout().ram().map_or(0, |r| r.size);
    ensure!(
        size_mib == declared >> 20,
        "guest RAM has {size_mib} MiB, but the layout declares {}",
        declared >> 20
    );
    ensure!(
        ram.bytes() < declared,
        "all {size_mib} MiB of RAM mapped: memory is not built on demand"
    );
    let sums = mapped
        .regions
        .iter()
        .fold((0, 0), |(b, p), r| (b + r.blocks, p + r.pages));
    ensure!(
        sums == (mapped.blocks, mapped.pages),
        "the regions' blocks and pages {sums:?} do not add up to the totals"
    );
    Ok(())
}

/// The bundled guest is linked where the hypervisor loads it, and starts
/// at its first byte: the mistake that made an earlier x86_64 guest
/// triple-fault.
fn linked_at_entry(ctx: &Ctx) -> Result<()> {
    let elf = std::fs::read(&ctx.paths.guest_elf)
        .with_context(|| format!("cannot read {}", ctx.paths.guest_elf.display()))?;
    // A Multiboot kernel goes where its header says: that must be inside
    // guest RAM and name the ELF's own entry point.
    let flat = crate::guest_image::guest_flat(&ctx.paths.guest_elf, ctx.spec)?;
    if let Ok(header) = guestaspace_core::arch::x86_64::multiboot::find_header(&flat) {
        let plan = header
            .load_plan(flat.len() as u64)
            .map_err(|e| anyhow!("{e}"))?;
        let start = ctx.spec.physical(crate::flatten::elf_entry(&elf)?);
        ensure!(
            plan.entry.as_u64() == start,
            "the Multiboot header enters at {:#x}, the ELF at {start:#x}",
            plan.entry
        );
        let ram = ctx.spec.layout().ram().context("the layout has no RAM")?;
        ensure!(
            ram.contains(plan.load) && plan.end() <= ram.end(),
            "the Multiboot load range {:#x}..{:#x} is not guest RAM",
            plan.load,
            plan.end()
        );
        return Ok(());
    }
    let entry = ctx.spec.layout().entry.as_u64();
    let load = ctx
        .spec
        .physical(crate::flatten::flatten_elf(&elf)?.load_addr);
    let start = ctx.spec.physical(crate::flatten::elf_entry(&elf)?);
    ensure!(
        load == entry,
        "the guest's first segment is at {load:#x}, the hypervisor loads it at {entry:#x}"
    );
    ensure!(
        start == entry,
        "the guest's entry point is {start:#x}, the hypervisor starts it at {entry:#x}"
    );
    Ok(())
}

fn wild_access(ctx: &Ctx) -> Result<()> {
    let out = ctx.boot_scenario(Scenario::WildAccess)?;
    expect_vm_failure(&out)?;
    // The hypervisor's whole diagnostic, up to the guest PC (which moves
    // with every change to the guest), not the guest's own announcement.
    let diagnostic = format!(
        "error: VM stopped: guest read at guest-physical address {}, which is outside every region the hypervisor declared (guest PC 0x",
        ctx.spec.wild_gpa
    );
    expect_line_starting(&out, &diagnostic)
}

/// A guest that crashes its CPU (a triple fault on x86_64, a kernel panic
/// on the ArceOS guest) fails the run with the hypervisor's diagnostic.
fn crash(ctx: &Ctx) -> Result<()> {
    let out = ctx.boot_scenario(Scenario::Crash)?;
    expect_vm_failure(&out)?;
    expect_text(&out, ctx.spec.crash_text)?;
    Ok(())
}

fn timeout(ctx: &Ctx) -> Result<()> {
    let limit = Duration::from_secs(5);
    let out = ctx.boot_scenario_within(Scenario::NeverShutdown, limit)?;
    if out.end != VmEnd::TimedOut {
        return Err(with_output(
            &out,
            format!("QEMU ended ({:?}) instead of timing out", out.end),
        ));
    }
    ensure!(
        out.wall >= limit && out.wall < limit + Duration::from_secs(3),
        "killed after {:?}, not at {limit:?}",
        out.wall
    );
    let message = out.check().err().map(|e| e.to_string()).unwrap_or_default();
    ensure!(
        message.contains("timed out"),
        "the run error is {message:?}, which does not say `timed out`"
    );
    Ok(())
}

/// On a CPU without the virtualization extension the hypervisor says so
/// and fails, before it builds anything for the guest.
fn no_virtualization(ctx: &Ctx) -> Result<()> {
    let args = ctx.spec.qemu.without_virtualization;
    let out = ctx.boot_with_args(&ctx.paths.disk, Scenario::Normal, DEFAULT_TIMEOUT, args)?;
    expect_vm_failure(&out)?;
    expect_text(&out, ctx.spec.no_virtualization_text)?;
    ensure!(
        !out.text.contains("Entering VM run loop"),
        with_output(
            &out,
            "the run loop started without the virtualization extension"
        )
    );
    Ok(())
}

fn missing_gkernel(ctx: &Ctx) -> Result<()> {
    let disk = ctx.paths.e2e.join("missing-gkernel.img");
    let files = DiskFiles::from([(
        "/README.txt".to_string(),
        b"This disk has no /sbin/gkernel.\n".to_vec(),
    )]);
    write_fat_disk(&disk, &files)?;
    let out = ctx.boot(&disk, Scenario::Normal, super::DEFAULT_TIMEOUT)?;
    expect_vm_failure(&out)?;
    expect_text(&out, "/sbin/gkernel")
}

fn oversized_gkernel(ctx: &Ctx) -> Result<()> {
    // 4 MiB of guest RAM, and a gkernel one page larger than what it holds
    // from the entry point on.
    let vm = VmConfig {
        mem: Some(4 << 20),
        ..VmConfig::DEFAULT
    };
    let layout = ctx.spec.layout();
    let ram = layout.ram().context("the layout has no RAM")?;
    let room = ram.gpa.as_u64() + (4 << 20) - layout.entry.as_u64();
    let disk = ctx.paths.e2e.join("oversized-gkernel.img");
    let mut files = guest_disk(&vec![0x13u8; (room + PAGE_SIZE) as usize], &vm, None);
    files.insert(
        "/README.txt".to_string(),
        b"gkernel is one page larger than 4 MiB of guest RAM holds.\n".to_vec(),
    );
    write_fat_disk(&disk, &files)?;
    let out = ctx.boot(&disk, Scenario::Normal, super::DEFAULT_TIMEOUT)?;
    expect_vm_failure(&out)?;
    expect_text(&out, "holds only")
}

fn bad_disk(ctx: &Ctx) -> Result<()> {
    let disk = ctx.paths.e2e.join("not-a-file-system.img");
    write_non_fat_disk(&disk)?;
    let out = ctx.boot(&disk, Scenario::Normal, super::DEFAULT_TIMEOUT)?;
    expect_vm_failure(&out)
}

/// A second build step with nothing changed compiles nothing, rewrites
/// nothing and is quick.
fn incremental(ctx: &Ctx) -> Result<()> {
    let p = &ctx.paths;
    let mut outputs = vec![
        p.guest_elf.as_path(),
        p.hv_elf.as_path(),
        p.guest_flat.as_path(),
        p.kernel(ctx.spec),
        p.disk.as_path(),
    ];
    if ctx.spec.pflash_size > 0 {
        outputs.push(p.pflash.as_path());
    }
    let before = outputs
        .iter()
        .map(|f| mtime(f))
        .collect::<Result<Vec<_>>>()?;
    let options = PrepareOptions {
        guest: GuestSource::Bundled,
        scenario: Scenario::Normal,
        cargo: CargoOutput::Captured,
        vm: VmConfig::DEFAULT,
        initrd: None,
    };
    let start = Instant::now();
    let prepared = prepare(ctx.spec, p, &options)?;
    let took = start.elapsed();
    if let Some(line) = prepared
        .cargo_log
        .lines()
        .find(|l| l.trim_start().starts_with("Compiling"))
    {
        bail!(
            "cargo compiled something on a no-op rebuild: {}",
            line.trim()
        );
    }
    for (file, old) in outputs.iter().zip(before) {
        ensure!(
            mtime(file)? == old,
            "{} was rewritten on a no-op rebuild",
            file.display()
        );
    }
    ensure!(
        prepared.guest == ctx.prepared.guest,
        "the rebuilt guest differs from the first build"
    );
    ensure!(
        took < Duration::from_millis(1500),
        "the no-op rebuild took {:.2} s (limit 1.5 s)",
        took.as_secs_f64()
    );
    Ok(())
}

fn mtime(path: &Path) -> Result<SystemTime> {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .with_context(|| format!("cannot stat {}", path.display()))
}

/// The VM must have failed by itself: QEMU exited with a non-zero status
/// (not a timeout, which would hide a hang).
/// QEMU exited with a failure status, and the hypervisor did not claim
/// success on the way.
fn expect_vm_failure(out: &RunOutput) -> Result<()> {
    match out.end {
        VmEnd::Exited(code) if code != 0 => {}
        ref end => {
            return Err(with_output(
                out,
                format!("expected QEMU to exit with a failure status, but it ended {end:?}"),
            ));
        }
    }
    ensure!(
        !out.text.contains("Hypervisor ok!"),
        with_output(out, "`Hypervisor ok!` printed on a failed run")
    );
    Ok(())
}

/// Some line of the output starts with `prefix` (the hypervisor's own
/// diagnostics start their lines; a guest's text quoting one does not).
fn expect_line_starting(out: &RunOutput, prefix: &str) -> Result<()> {
    ensure!(
        out.text.lines().any(|line| line.starts_with(prefix)),
        with_output(out, format!("no line starts with `{prefix}`"))
    );
    Ok(())
}

fn expect_text(out: &RunOutput, needle: &str) -> Result<()> {
    ensure!(
        out.text.contains(needle),
        with_output(out, format!("the output does not contain `{needle}`"))
    );
    Ok(())
}

/// `reason`, followed by the last lines QEMU printed.
fn with_output(out: &RunOutput, reason: impl std::fmt::Display) -> anyhow::Error {
    const TAIL: usize = 15;
    let lines: Vec<&str> = out.text.lines().collect();
    let tail = lines[lines.len().saturating_sub(TAIL)..]
        .iter()
        .map(|l| format!("\n    | {}", l.trim_end()));
    anyhow!(
        "{reason}; last lines of QEMU output:{}",
        tail.collect::<String>()
    )
}
