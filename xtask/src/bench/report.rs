//! The bench figures of one architecture, as a table for people and as
//! JSON for tools. Ratios compare figures measured side by side in the
//! same run.

use super::guest_boot::GuestBoot;
use super::linux_boot::LinuxBoot;
use super::measure::Summary;
use super::smp::{LINUX_CPUS, SmpFigures};
use crate::arch::Arch;
use serde_json::{Value, json};
use std::fmt::Write;
use std::time::Duration;

/// What the bench guest measured, with the exits the hypervisor counted.
pub struct ExitFigures {
    pub hypercalls: u64,
    pub pages: u64,
    pub hypercall_ticks: u64,
    pub page_ticks: u64,
    pub counter_hz: u64,
    pub hypercall_exits: u64,
    pub fault_exits: u64,
    /// The guest's emulated-MMIO reads and their ticks, where it has a
    /// device to read.
    pub mmio: Option<(u64, u64)>,
    pub mmio_exits: u64,
    /// Guest counter ticks from its timer's deadline to its handler, where
    /// the guest measures it.
    pub timer_latency_ticks: Option<u64>,
}

impl ExitFigures {
    /// Guest counter ticks per null hypercall.
    pub fn ticks_per_hypercall(&self) -> f64 {
        self.hypercall_ticks as f64 / self.hypercalls.max(1) as f64
    }

    /// Guest counter ticks per fresh-page fault.
    pub fn ticks_per_fault(&self) -> f64 {
        self.page_ticks as f64 / self.pages.max(1) as f64
    }

    fn ns(&self, ticks: f64) -> f64 {
        if self.counter_hz == 0 {
            f64::NAN
        } else {
            ticks * 1e9 / self.counter_hz as f64
        }
    }

    pub fn ns_per_hypercall(&self) -> f64 {
        self.ns(self.ticks_per_hypercall())
    }

    pub fn ns_per_fault(&self) -> f64 {
        self.ns(self.ticks_per_fault())
    }

    /// Guest counter ticks per emulated MMIO read, if measured.
    pub fn ticks_per_mmio(&self) -> Option<f64> {
        self.mmio
            .map(|(reads, ticks)| ticks as f64 / reads.max(1) as f64)
    }

    pub fn ns_per_mmio(&self) -> Option<f64> {
        self.ticks_per_mmio().map(|t| self.ns(t))
    }

    /// Nanoseconds from the guest timer's deadline to its handler.
    pub fn ns_timer_latency(&self) -> Option<f64> {
        self.timer_latency_ticks.map(|t| self.ns(t as f64))
    }
}

/// Device and guest-boot figures, where the guest has emulated devices.
pub struct DeviceFigures {
    /// Emulated-UART accesses per character the guest printed.
    pub uart_per_char: f64,
    pub helloworld: GuestBoot,
}

pub struct ArchFigures {
    pub arch: Arch,
    pub no_change: Summary,
    pub touched: Summary,
    pub qemu_alone: Summary,
    pub floor: Summary,
    pub exits: ExitFigures,
    pub exits_icount: ExitFigures,
    /// Every byte mapped for the guest, in blocks and pages: RAM and
    /// device pages.
    pub mapped_bytes: u64,
    /// The RAM among them.
    pub ram_mapped_bytes: u64,
    pub ram_bytes: u64,
    /// The hypervisor's clock in the normal run: machine start to guest
    /// entry, guest run (microseconds).
    pub clock_us: (u64, u64),
    pub devices: Option<DeviceFigures>,
    /// Linux booted to `/init`, where it runs as a guest.
    pub linux: Option<LinuxBoot>,
    /// SMP figures, where the guest has several vCPUs (riscv64, aarch64).
    pub smp: Option<SmpFigures>,
    pub cold_build: Option<Duration>,
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

fn secs(s: &Summary) -> String {
    format!(
        "{:>7.3} {:>7.3} {:>7.3}",
        s.min.as_secs_f64(),
        s.median.as_secs_f64(),
        s.max.as_secs_f64()
    )
}

/// The human-readable table of one architecture.
pub fn table(f: &ArchFigures, runs: usize) -> String {
    let mut t = String::new();
    let e = &f.exits;
    let i = &f.exits_icount;
    let _ = writeln!(
        t,
        "== {} ({runs} run{}) ==",
        f.arch,
        if runs == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        t,
        "{:<46} {:>7} {:>7} {:>7}",
        "edit-run loop (seconds)", "min", "median", "max"
    );
    let _ = writeln!(
        t,
        "{:<46} {}",
        "  cargo xtask run, nothing changed",
        secs(&f.no_change)
    );
    let _ = writeln!(
        t,
        "{:<46} {}",
        "  cargo xtask run, one hypervisor file touched",
        secs(&f.touched)
    );
    let _ = writeln!(
        t,
        "{:<46} {}",
        "  QEMU alone, same artifacts",
        secs(&f.qemu_alone)
    );
    let _ = writeln!(
        t,
        "{:<46} {:>7.2}x",
        "  nothing changed / QEMU alone (medians)",
        ratio(f.no_change.median, f.qemu_alone.median)
    );
    let _ = writeln!(t, "floor");
    let _ = writeln!(
        t,
        "{:<46} {}",
        "  QEMU, minimal ArceOS kernel, same machine",
        secs(&f.floor)
    );
    let _ = writeln!(
        t,
        "{:<46} {:>7.2}x",
        "  our QEMU time / floor (medians)",
        ratio(f.qemu_alone.median, f.floor.median)
    );
    let _ = writeln!(
        t,
        "VM exits ({} null hypercalls, {} fresh pages)",
        e.hypercalls, e.pages
    );
    let _ = writeln!(
        t,
        "{:<46} {:>9.0} ns ({:.1} ticks at {} Hz)",
        "  per hypercall exit",
        e.ns_per_hypercall(),
        e.ticks_per_hypercall(),
        e.counter_hz
    );
    let _ = writeln!(
        t,
        "{:<46} {:>9.0} ns ({:.1} ticks)",
        "  per nested-page-fault exit",
        e.ns_per_fault(),
        e.ticks_per_fault()
    );
    let _ = writeln!(
        t,
        "{:<46} {:>9.2} ticks ({:.0} ns = instructions)",
        "  -icount shift=0: ticks per hypercall exit",
        i.ticks_per_hypercall(),
        i.ns_per_hypercall()
    );
    let _ = writeln!(
        t,
        "{:<46} {:>9.2} ticks ({:.0} ns = instructions)",
        "  -icount shift=0: ticks per NPF exit",
        i.ticks_per_fault(),
        i.ns_per_fault()
    );
    if let (Some(ns), Some(ticks), Some(ins)) =
        (e.ns_per_mmio(), e.ticks_per_mmio(), i.ns_per_mmio())
    {
        let _ = writeln!(
            t,
            "{:<46} {:>9.0} ns ({:.1} ticks; {:.0} instructions under -icount)",
            "  per emulated MMIO read (UART LSR)", ns, ticks, ins
        );
    }
    if let (Some(ns), Some(ins)) = (e.ns_timer_latency(), i.ns_timer_latency()) {
        let _ = writeln!(
            t,
            "{:<46} {:>9.0} ns ({:.0} instructions under -icount)",
            "  timer deadline to guest handler (injection)", ns, ins
        );
    }
    let _ = writeln!(
        t,
        "{:<46} hypercall {}, nested page fault {}, mmio {}",
        "  exits counted by the hypervisor", e.hypercall_exits, e.fault_exits, e.mmio_exits
    );
    let _ = writeln!(
        t,
        "{:<46} {:.1} ms to guest entry, guest run {:.1} ms",
        "  hypervisor clock, normal run",
        f.clock_us.0 as f64 / 1e3,
        f.clock_us.1 as f64 / 1e3
    );
    if let Some(d) = &f.devices {
        let h = &d.helloworld;
        let _ = writeln!(t, "devices and guest boot");
        let _ = writeln!(
            t,
            "{:<46} {:.2}",
            "  UART accesses per character printed", d.uart_per_char
        );
        let _ = writeln!(
            t,
            "{:<46} {}",
            format!("  {} on bare QEMU", h.kernel),
            secs(&h.bare)
        );
        let _ = writeln!(
            t,
            "{:<46} {}",
            "  same kernel as our guest",
            secs(&h.hosted)
        );
        let _ = writeln!(
            t,
            "{:<46} {:>7.2}x",
            "  guest / bare (medians)",
            ratio(h.hosted.median, h.bare.median)
        );
        let _ = writeln!(
            t,
            "{:<46} {:.1} ms to guest entry, guest run {:.1} ms",
            "  hypervisor clock, last hosted run",
            h.clock_us.0 as f64 / 1e3,
            h.clock_us.1 as f64 / 1e3
        );
        let _ = writeln!(
            t,
            "{:<46} {:>7.2}x",
            "  guest run / bare QEMU wall (median)",
            h.clock_us.1 as f64 / 1e6 / h.bare.median.as_secs_f64().max(1e-9)
        );
    }
    if let Some(l) = &f.linux {
        let _ = writeln!(t, "Linux, QEMU start to /init's line ({})", l.kernel);
        let _ = writeln!(
            t,
            "{:<46} {}",
            format!("  bare QEMU ({})", l.machine),
            secs(&l.bare)
        );
        if let Some(bare_max) = &l.bare_max {
            let _ = writeln!(
                t,
                "{:<46} {}",
                "  bare QEMU (-cpu max, the guest's CPU, 256M)",
                secs(bare_max)
            );
        }
        let _ = writeln!(t, "{:<46} {}", "  as our guest", secs(&l.hosted));
        let _ = writeln!(
            t,
            "{:<46} {:>7.2}x",
            format!("  guest / bare {} (medians)", l.machine),
            ratio(l.hosted.median, l.bare.median)
        );
        if let Some(bare_max) = &l.bare_max {
            let _ = writeln!(
                t,
                "{:<46} {:>7.2}x",
                "  guest / bare -cpu max (medians)",
                ratio(l.hosted.median, bare_max.median)
            );
        }
        let _ = writeln!(
            t,
            "{:<46} {} faults; RAM {} blocks of 2 MiB + {} pages of 4 KiB",
            "  stage 2 during the boot", l.faults, l.blocks, l.pages
        );
        let _ = writeln!(
            t,
            "{:<46} {:.1} ms to guest entry, guest run {:.1} ms",
            "  hypervisor clock, last hosted run",
            l.clock_us.0 as f64 / 1e3,
            l.clock_us.1 as f64 / 1e3
        );
    }
    if let Some(smp) = &f.smp {
        let _ = writeln!(t, "SMP (vCPUs each on a host CPU of its own)");
        let _ = writeln!(
            t,
            "{:<46} {:>7.1} {:>7.1} {:>7.1} us",
            "  IPI round trip, 2 vCPUs (guest's counter)",
            smp.ipi.min.as_secs_f64() * 1e6,
            smp.ipi.median.as_secs_f64() * 1e6,
            smp.ipi.max.as_secs_f64() * 1e6
        );
        let _ = writeln!(
            t,
            "{:<46} {} instructions",
            "  IPI round trip under -icount", smp.ipi_icount
        );
        if let Some((bare, hosted)) = &smp.linux {
            let _ = writeln!(
                t,
                "{:<46} {}",
                format!("  Linux to /init, bare QEMU -smp {LINUX_CPUS}"),
                secs(bare)
            );
            let _ = writeln!(
                t,
                "{:<46} {}",
                format!("  Linux to /init, as our guest, {LINUX_CPUS} vCPUs"),
                secs(hosted)
            );
            let _ = writeln!(
                t,
                "{:<46} {:>7.2}x",
                "  guest / bare (medians)",
                ratio(hosted.median, bare.median)
            );
        }
    }
    let _ = writeln!(t, "guest memory");
    let _ = writeln!(
        t,
        "{:<46} {} KiB of {} KiB ({:.2} %)",
        "  RAM mapped by the end of a normal run",
        f.ram_mapped_bytes / 1024,
        f.ram_bytes / 1024,
        100.0 * f.ram_mapped_bytes as f64 / f.ram_bytes.max(1) as f64
    );
    let _ = writeln!(
        t,
        "{:<46} {} KiB",
        "  all memory mapped (RAM and devices)",
        f.mapped_bytes / 1024
    );
    let _ = writeln!(t, "build");
    match f.cold_build {
        Some(d) => {
            let _ = writeln!(
                t,
                "{:<46} {:>7.1} s",
                "  cold build (empty target dir)",
                d.as_secs_f64()
            );
        }
        None => {
            let _ = writeln!(t, "  cold build: not measured (pass --cold)");
        }
    }
    t
}

fn summary_json(s: &Summary) -> Value {
    json!({ "min": s.min.as_secs_f64(), "median": s.median.as_secs_f64(), "max": s.max.as_secs_f64() })
}

fn exits_json(e: &ExitFigures) -> Value {
    json!({
        "hypercalls": e.hypercalls,
        "pages": e.pages,
        "counter_hz": e.counter_hz,
        "ticks_per_hypercall": e.ticks_per_hypercall(),
        "ticks_per_fault": e.ticks_per_fault(),
        "ns_per_hypercall": e.ns_per_hypercall(),
        "ns_per_fault": e.ns_per_fault(),
        "hypercall_exits": e.hypercall_exits,
        "fault_exits": e.fault_exits,
        "ns_per_mmio": e.ns_per_mmio(),
        "ns_timer_latency": e.ns_timer_latency(),
        "mmio_exits": e.mmio_exits,
    })
}

/// All figures as JSON (NaN, where a rate is unknown, becomes null).
pub fn json(all: &[ArchFigures], runs: usize) -> Value {
    let arches: Vec<Value> = all
        .iter()
        .map(|f| {
            json!({
                "arch": f.arch.name(),
                "edit_run_seconds": {
                    "no_change": summary_json(&f.no_change),
                    "hypervisor_touched": summary_json(&f.touched),
                    "qemu_alone": summary_json(&f.qemu_alone),
                    "no_change_over_qemu": ratio(f.no_change.median, f.qemu_alone.median),
                },
                "floor_seconds": summary_json(&f.floor),
                "ours_over_floor": ratio(f.qemu_alone.median, f.floor.median),
                "exits": exits_json(&f.exits),
                "exits_icount_shift0": exits_json(&f.exits_icount),
                "guest_memory": {
                    "mapped_bytes": f.mapped_bytes,
                    "ram_mapped_bytes": f.ram_mapped_bytes,
                    "ram_bytes": f.ram_bytes
                },
                "hypervisor_clock_us": { "to_guest_entry": f.clock_us.0, "guest_run": f.clock_us.1 },
                "devices": f.devices.as_ref().map(|d| json!({
                    "uart_accesses_per_char": d.uart_per_char,
                    "helloworld": {
                        "kernel": d.helloworld.kernel,
                        "bare_seconds": summary_json(&d.helloworld.bare),
                        "hosted_seconds": summary_json(&d.helloworld.hosted),
                        "hosted_over_bare": ratio(d.helloworld.hosted.median, d.helloworld.bare.median),
                        "hypervisor_clock_us": {
                            "to_guest_entry": d.helloworld.clock_us.0,
                            "guest_run": d.helloworld.clock_us.1
                        }
                    }
                })),
                "linux_to_init": f.linux.as_ref().map(|l| json!({
                    "kernel": l.kernel,
                    "bare_machine": l.machine,
                    "bare_seconds": summary_json(&l.bare),
                    "hosted_seconds": summary_json(&l.hosted),
                    "bare_cpu_max_seconds": l.bare_max.as_ref().map(summary_json),
                    "hosted_over_bare": ratio(l.hosted.median, l.bare.median),
                    "hosted_over_bare_cpu_max": l.bare_max.as_ref().map(|m| ratio(l.hosted.median, m.median)),
                    "nested_page_faults": l.faults,
                    "ram_blocks_2m": l.blocks,
                    "ram_pages_4k": l.pages,
                    "hypervisor_clock_us": { "to_guest_entry": l.clock_us.0, "guest_run": l.clock_us.1 },
                })),
                "smp": f.smp.as_ref().map(|smp| json!({
                    "ipi_round_trip_seconds": summary_json(&smp.ipi),
                    "ipi_round_trip_icount_instructions": smp.ipi_icount,
                    "linux_to_init_cpus": LINUX_CPUS,
                    "linux_to_init": smp.linux.as_ref().map(|(bare, hosted)| json!({
                        "bare_seconds": summary_json(bare),
                        "hosted_seconds": summary_json(hosted),
                        "hosted_over_bare": ratio(hosted.median, bare.median),
                    })),
                })),
                "cold_build_seconds": f.cold_build.map(|d| d.as_secs_f64()),
            })
        })
        .collect();
    json!({ "runs": runs, "arches": arches })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> ArchFigures {
        let s = |ms| Summary {
            min: Duration::from_millis(ms),
            median: Duration::from_millis(ms),
            max: Duration::from_millis(ms),
        };
        let e = ExitFigures {
            hypercalls: 10_000,
            pages: 1000,
            hypercall_ticks: 26_300,
            page_ticks: 22_470,
            counter_hz: 10_000_000,
            hypercall_exits: 10_003,
            fault_exits: 1027,
            mmio: Some((10_000, 50_000)),
            mmio_exits: 10_500,
            timer_latency_ticks: Some(6),
        };
        let i = ExitFigures { counter_hz: 0, ..e };
        ArchFigures {
            arch: Arch::Riscv64,
            no_change: s(500),
            touched: s(4000),
            qemu_alone: s(300),
            floor: s(150),
            exits: e,
            exits_icount: i,
            mapped_bytes: 220 << 10,
            ram_mapped_bytes: 212 << 10,
            ram_bytes: 16 << 20,
            clock_us: (80_000, 20_000),
            devices: Some(DeviceFigures {
                uart_per_char: 1.02,
                helloworld: GuestBoot {
                    kernel: "arceos-helloworld-0.4.11".into(),
                    bare: s(100),
                    hosted: s(250),
                    clock_us: (150_000, 40_000),
                },
            }),
            linux: Some(LinuxBoot {
                kernel: "linux-image-6.1.0-56-arm64:arm64 6.1.192-2".into(),
                machine: "cortex-a72, 256M",
                bare: s(1000),
                bare_max: Some(s(1500)),
                hosted: s(3000),
                faults: 700,
                blocks: 12,
                pages: 9000,
                clock_us: (230_000, 250_000),
            }),
            smp: Some(SmpFigures {
                ipi: s(2),
                ipi_icount: 4321,
                linux: Some((s(1000), s(3500))),
            }),
            cold_build: None,
        }
    }

    #[test]
    fn per_exit_figures_divide_ticks_by_count_and_rate() {
        let f = figures();
        assert!((f.exits.ticks_per_hypercall() - 2.63).abs() < 1e-9);
        assert!((f.exits.ns_per_hypercall() - 263.0).abs() < 1e-6);
        assert!((f.exits.ns_per_fault() - 2247.0).abs() < 1e-6);
        assert!(
            f.exits_icount.ns_per_fault().is_nan(),
            "unknown rate gives no ns"
        );
    }

    #[test]
    fn table_and_json_carry_the_ratios() {
        let f = figures();
        let t = table(&f, 3);
        assert!(t.contains("1.67x"), "{t}");
        assert!(t.contains("2.00x"), "{t}");
        assert!(t.contains("212 KiB of 16384 KiB (1.29 %)"), "{t}");
        assert!(t.contains("(RAM and devices)          220 KiB"), "{t}");
        assert!(t.contains("500 ns (5.0 ticks"), "{t}");
        assert!(t.contains("2.50x"), "guest / bare: {t}");
        assert!(t.contains("0.40x"), "guest run / bare wall: {t}");
        assert!(
            t.contains("QEMU start to /init's line (linux-image-6.1.0-56-arm64:arm64 6.1.192-2)"),
            "{t}"
        );
        assert!(t.contains("3.00x"), "Linux guest / bare: {t}");
        assert!(
            t.contains("700 faults; RAM 12 blocks of 2 MiB + 9000 pages of 4 KiB"),
            "{t}"
        );
        assert!(t.contains("guest / bare cortex-a72, 256M (medians)"), "{t}");
        assert!(t.contains("guest / bare -cpu max (medians)"), "{t}");
        let j = json(&[f], 3);
        assert_eq!(j["runs"], 3);
        assert_eq!(j["arches"][0]["arch"], "riscv64");
        assert_eq!(j["arches"][0]["ours_over_floor"], 2.0);
        assert_eq!(
            j["arches"][0]["exits_icount_shift0"]["ns_per_hypercall"],
            Value::Null
        );
        assert_eq!(j["arches"][0]["cold_build_seconds"], Value::Null);
        assert_eq!(j["arches"][0]["linux_to_init"]["hosted_over_bare"], 3.0);
        assert_eq!(j["arches"][0]["linux_to_init"]["nested_page_faults"], 700);
        assert_eq!(
            j["arches"][0]["linux_to_init"]["hosted_over_bare_cpu_max"],
            2.0
        );
        assert_eq!(
            j["arches"][0]["guest_memory"]["ram_mapped_bytes"],
            212 << 10
        );
        assert!(
            t.lines()
                .any(|l| l.contains("IPI round trip under -icount")
                    && l.ends_with(" 4321 instructions")),
            "{t}"
        );
        assert!(t.contains("2000.0  2000.0  2000.0 us"), "{t}");
        assert!(t.contains("3.50x"), "Linux SMP guest / bare: {t}");
        assert_eq!(
            j["arches"][0]["smp"]["linux_to_init"]["hosted_over_bare"],
            3.5
        );
        assert_eq!(
            j["arches"][0]["smp"]["ipi_round_trip_icount_instructions"],
            4321
        );
    }
}
