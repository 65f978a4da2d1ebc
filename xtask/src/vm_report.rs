//! Reading the hypervisor's output: lines expected in order, and the
//! counter lines it prints at shutdown:
//!
//! ```text
//! VM exits: 31 total, nested page fault 27, hypercall 3, timer 1, unexpected 0
//! Guest memory mapped: 3 blocks of 2 MiB + 55 pages of 4 KiB (6364 KiB), uart 1 page, pflash 1 page, ram 3 blocks + 53 pages (6356 KiB of 16 MiB)
//! ```

use anyhow::{Context, Result, anyhow, bail, ensure};
use guestaspace_core::{BLOCK_SIZE, PAGE_SIZE};

/// Checks that each of `needles` is part of a line of `text`, each on a
/// later line than the one before.
pub fn check_in_order(text: &str, needles: &[&str]) -> Result<()> {
    let mut lines = text.lines().enumerate();
    let mut last: Option<(usize, &str)> = None;
    for needle in needles {
        match lines.find(|(_, line)| line.contains(needle)) {
            Some((n, _)) => last = Some((n, needle)),
            None => match last {
                Some((n, previous)) => bail!(
                    "no line with `{needle}` after `{previous}` (line {})",
                    n + 1
                ),
                None => bail!("no line with `{needle}`"),
            },
        }
    }
    Ok(())
}

/// The `VM exits:` line.
#[derive(Debug, PartialEq, Eq)]
pub struct ExitCounts {
    pub total: u64,
    /// Count per exit kind, in the printed order.
    pub kinds: Vec<(String, u64)>,
}

impl ExitCounts {
    /// The count of the exit kind `name`.
    pub fn get(&self, name: &str) -> Result<u64> {
        self.kinds
            .iter()
            .find(|(k, _)| k == name)
            .map(|&(_, n)| n)
            .with_context(|| format!("no `{name}` exit count"))
    }
}

pub fn parse_exits(text: &str) -> Result<ExitCounts> {
    let rest = line_after(text, "VM exits: ")?;
    let mut parts = rest.split(", ");
    let total = parts
        .next()
        .and_then(|p| p.strip_suffix(" total"))
        .context("no total in `VM exits:`")?;
    let mut kinds = Vec::new();
    for part in parts {
        let (name, count) = part
            .rsplit_once(' ')
            .with_context(|| format!("bad exit count `{part}`"))?;
        kinds.push((name.to_string(), number(count)?));
    }
    Ok(ExitCounts {
        total: number(total)?,
        kinds,
    })
}

/// The `Interrupts injected: timer T, external E; exceptions injected: X`
/// line: (T, E).
pub fn parse_injections(text: &str) -> Result<(u64, u64)> {
    let rest = line_after(text, "Interrupts injected: ")?;
    let (interrupts, _) = rest
        .split_once("; exceptions injected: ")
        .with_context(|| format!("no exception count in `{rest}`"))?;
    match interrupts.split(", ").collect::<Vec<_>>().as_slice() {
        [timer, external] => Ok((
            number(timer.strip_prefix("timer ").context("no timer count")?)?,
            number(
                external
                    .strip_prefix("external ")
                    .context("no external count")?,
            )?,
        )),
        _ => bail!("bad `Interrupts injected:` line `{rest}`"),
    }
}

/// The `exceptions injected: X` part of the `Interrupts injected:` line.
pub fn parse_exceptions(text: &str) -> Result<u64> {
    let rest = line_after(text, "Interrupts injected: ")?;
    let (_, count) = rest
        .split_once("; exceptions injected: ")
        .with_context(|| format!("no exception count in `{rest}`"))?;
    number(count)
}

/// The prefix of the memory line.
pub const MAPPED_PREFIX: &str = "Guest memory mapped: ";

/// One region's part of the `Guest memory mapped:` line: `pflash 1 page`,
/// or for RAM `ram 3 blocks + 53 pages (6356 KiB of 16 MiB)`.
#[derive(Debug, PartialEq, Eq)]
pub struct RegionMapped {
    pub name: String,
    /// 2 MiB blocks mapped.
    pub blocks: u64,
    /// 4 KiB pages mapped.
    pub pages: u64,
    /// The region's size in MiB, printed for RAM (`of 16 MiB`).
    pub size_mib: Option<u64>,
}

impl RegionMapped {
    /// Bytes mapped in the region, blocks and pages together.
    pub fn bytes(&self) -> u64 {
        self.blocks * BLOCK_SIZE + self.pages * PAGE_SIZE
    }
}

/// The `Guest memory mapped:` line.
#[derive(Debug, PartialEq, Eq)]
pub struct MappedMemory {
    /// 2 MiB blocks mapped in all regions.
    pub blocks: u64,
    /// 4 KiB pages mapped in all regions.
    pub pages: u64,
    pub regions: Vec<RegionMapped>,
}

impl MappedMemory {
    /// Bytes mapped in all regions.
    pub fn bytes(&self) -> u64 {
        self.blocks * BLOCK_SIZE + self.pages * PAGE_SIZE
    }

    pub fn region(&self, name: &str) -> Result<&RegionMapped> {
        self.regions
            .iter()
            .find(|r| r.name == name)
            .with_context(|| format!("no `{name}` in `Guest memory mapped:`"))
    }
}

pub fn parse_mapped(text: &str) -> Result<MappedMemory> {
    let rest = line_after(text, MAPPED_PREFIX)?;
    let mut parts = rest.split(", ");
    let totals: Vec<&str> = parts
        .next()
        .context("no totals in `Guest memory mapped:`")?
        .split_whitespace()
        .collect();
    let (blocks, pages, kib) = match totals.as_slice() {
        [
            b,
            "block" | "blocks",
            "of",
            "2",
            "MiB",
            "+",
            p,
            "page" | "pages",
            "of",
            "4",
            "KiB",
            kib,
            "KiB)",
        ] => {
            let kib = kib
                .strip_prefix('(')
                .context("no `(` before the KiB total")?;
            (number(b)?, number(p)?, number(kib)?)
        }
        _ => bail!("bad totals in `Guest memory mapped: {rest}`"),
    };
    ensure!(
        kib * 1024 == blocks * BLOCK_SIZE + pages * PAGE_SIZE,
        "{blocks} blocks and {pages} pages are not {kib} KiB"
    );
    let regions = parts.map(parse_region).collect::<Result<_>>()?;
    Ok(MappedMemory {
        blocks,
        pages,
        regions,
    })
}

/// `pflash 1 page`, `ram 3 blocks + 53 pages (6356 KiB of 16 MiB)`.
fn parse_region(part: &str) -> Result<RegionMapped> {
    let bad = || anyhow!("bad region `{part}` in `Guest memory mapped:`");
    let words: Vec<&str> = part.split_whitespace().collect();
    let (name, mut rest) = words.split_first().ok_or_else(bad)?;
    let mut region = RegionMapped {
        name: name.to_string(),
        blocks: 0,
        pages: 0,
        size_mib: None,
    };
    // Counts joined by `+`: `3 blocks + 53 pages`, or just `1 page`.
    loop {
        rest = match rest {
            [n, "block" | "blocks", tail @ ..] => {
                region.blocks = number(n)?;
                tail
            }
            [n, "page" | "pages", tail @ ..] => {
                region.pages = number(n)?;
                tail
            }
            _ => return Err(bad()),
        };
        match rest {
            ["+", tail @ ..] => rest = tail,
            _ => break,
        }
    }
    match rest {
        [] => {}
        [kib, "KiB", "of", mib, "MiB)"] => {
            let kib = number(kib.strip_prefix('(').ok_or_else(bad)?)?;
            ensure!(
                kib * 1024 == region.bytes(),
                "region `{part}`: its blocks and pages are not {kib} KiB"
            );
            region.size_mib = Some(number(mib)?);
        }
        _ => return Err(bad()),
    }
    Ok(region)
}

/// The bench guest's line:
/// `bench: K hypercalls in T ticks; P fresh pages in T2 ticks; counter F Hz`.
#[derive(Debug, PartialEq, Eq)]
pub struct BenchLine {
    pub hypercalls: u64,
    pub hypercall_ticks: u64,
    pub pages: u64,
    pub page_ticks: u64,
    /// The guest counter's frequency; 0 when the guest does not know it.
    pub counter_hz: u64,
}

pub fn parse_bench(text: &str) -> Result<BenchLine> {
    let rest = line_after(text, "bench: ")?;
    let words: Vec<&str> = rest
        .split(|c: char| c.is_whitespace() || c == ';')
        .filter(|w| !w.is_empty())
        .collect();
    match words.as_slice() {
        [
            k,
            "hypercalls",
            "in",
            t,
            "ticks",
            p,
            "fresh",
            "pages",
            "in",
            t2,
            "ticks",
            "counter",
            f,
            "Hz",
        ] => Ok(BenchLine {
            hypercalls: number(k)?,
            hypercall_ticks: number(t)?,
            pages: number(p)?,
            page_ticks: number(t2)?,
            counter_hz: number(f)?,
        }),
        _ => bail!("bad bench line `{rest}`"),
    }
}

/// The riscv64 bench guest's line `bench-mmio: N device reads in T ticks`:
/// `(N, T)`, or `None` for a guest without emulated devices.
pub fn parse_bench_mmio(text: &str) -> Result<Option<(u64, u64)>> {
    let Ok(rest) = line_after(text, "bench-mmio: ") else {
        return Ok(None);
    };
    match rest.split_whitespace().collect::<Vec<_>>().as_slice() {
        [n, "device", "reads", "in", t, "ticks"] => Ok(Some((number(n)?, number(t)?))),
        _ => bail!("bad bench-mmio line `{rest}`"),
    }
}

/// The gkernel line `Guest timer interrupt arrived after N ticks (armed
/// for M)`: the ticks past the deadline, `N - M` (how long the injected
/// interrupt took to reach the guest's handler), or `None` if the guest
/// printed no such line.
pub fn parse_timer_latency(text: &str) -> Result<Option<u64>> {
    let Ok(rest) = line_after(text, "Guest timer interrupt arrived after ") else {
        return Ok(None);
    };
    match rest.split_whitespace().collect::<Vec<_>>().as_slice() {
        [n, "ticks", "(armed", "for", m] => {
            let (n, m) = (number(n)?, number(m.trim_end_matches(')'))?);
            Ok(Some(n.saturating_sub(m)))
        }
        _ => bail!("bad timer line `{rest}`"),
    }
}

/// `Hypervisor clock: machine start to guest entry A us, guest run B us`:
/// `(A, B)` in microseconds.
pub fn parse_clock(text: &str) -> Result<(u64, u64)> {
    let rest = line_after(text, "Hypervisor clock: ")?;
    match rest.split_whitespace().collect::<Vec<_>>().as_slice() {
        [
            "machine",
            "start",
            "to",
            "guest",
            "entry",
            a,
            "us,",
            "guest",
            "run",
            b,
            "us",
        ] => Ok((number(a)?, number(b)?)),
        _ => bail!("bad hypervisor clock line `{rest}`"),
    }
}

/// The rest of the last line that starts with `prefix`, after it. Only the
/// hypervisor's own final report counts: it starts its lines with the
/// prefix, and it prints after the guest has stopped, so a guest printing
/// look-alike counters earlier (or mid-line) cannot stand in for it.
fn line_after<'a>(text: &'a str, prefix: &str) -> Result<&'a str> {
    text.lines()
        .rev()
        .find_map(|line| line.strip_prefix(prefix).map(str::trim_end))
        .with_context(|| format!("no line starting with `{}`", prefix.trim_end()))
}

fn number(text: &str) -> Result<u64> {
    text.parse()
        .with_context(|| format!("`{text}` is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Shutdown vm normally!\r\n\
        VM exits: 31 total, nested page fault 27, hypercall 3, timer 1, unexpected 0\r\n\
        Guest memory mapped: 3 blocks of 2 MiB + 55 pages of 4 KiB (6364 KiB), uart 1 page, pflash 1 page, ram 3 blocks + 53 pages (6356 KiB of 16 MiB)\r\n\
        Hypervisor ok!\r\n";

    #[test]
    fn the_bench_line_is_read_whole() {
        let text = "x\nbench: 10000 hypercalls in 26300 ticks; 1000 fresh pages in 22468 ticks; counter 10000000 Hz\r\n";
        let b = parse_bench(text).unwrap();
        assert_eq!(
            b,
            BenchLine {
                hypercalls: 10000,
                hypercall_ticks: 26300,
                pages: 1000,
                page_ticks: 22468,
                counter_hz: 10_000_000
            }
        );
        assert!(parse_bench("bench: 5 hypercalls in many ticks").is_err());
        assert!(parse_bench("no bench here").is_err());
    }

    #[test]
    fn exit_counts_are_read_by_kind() {
        let exits = parse_exits(REPORT).unwrap();
        assert_eq!(exits.total, 31);
        assert_eq!(exits.get("nested page fault").unwrap(), 27);
        assert_eq!(exits.get("hypercall").unwrap(), 3);
        assert_eq!(exits.get("timer").unwrap(), 1);
        assert_eq!(exits.get("unexpected").unwrap(), 0);
        assert!(exits.get("nonsense").is_err());
    }

    #[test]
    fn mapped_memory_is_read_by_region() {
        let mapped = parse_mapped(REPORT).unwrap();
        assert_eq!((mapped.blocks, mapped.pages), (3, 55));
        assert_eq!(
            mapped.region("uart").unwrap(),
            &RegionMapped {
                name: "uart".into(),
                blocks: 0,
                pages: 1,
                size_mib: None
            }
        );
        assert_eq!(mapped.region("pflash").unwrap().pages, 1);
        let ram = mapped.region("ram").unwrap();
        assert_eq!(
            ram,
            &RegionMapped {
                name: "ram".into(),
                blocks: 3,
                pages: 53,
                size_mib: Some(16)
            }
        );
        assert_eq!(ram.bytes(), 6356 << 10);
        assert!(mapped.region("gic").is_err());
    }

    #[test]
    fn the_line_the_hypervisor_prints_reads_back() {
        use guestaspace_core::machine::{DEFAULT_RAM_SIZE, RISCV64_VIRT};
        use guestaspace_core::stats::Stats;
        let mut stats = Stats::default();
        stats.count_page(2);
        stats.count_block(3);
        for _ in 0..40 {
            stats.count_page(3);
        }
        let layout = RISCV64_VIRT.layout(DEFAULT_RAM_SIZE).unwrap();
        let text = stats.report(&layout.as_ref()).to_string();
        let mapped = parse_mapped(&text).unwrap();
        assert_eq!((mapped.blocks, mapped.pages), (1, 41));
        let names: Vec<&str> = mapped.regions.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["plic", "uart", "pflash", "ram"]);
        assert_eq!(mapped.region("pflash").unwrap().pages, 1);
        let ram = mapped.region("ram").unwrap();
        assert_eq!((ram.blocks, ram.pages, ram.size_mib), (1, 40, Some(128)));
    }

    #[test]
    fn injections_are_read() {
        let text = "Interrupts injected: timer 39, external 2; exceptions injected: 1\r\n";
        assert_eq!(parse_injections(text).unwrap(), (39, 2));
        assert_eq!(parse_exceptions(text).unwrap(), 1);
        let bad = "Interrupts injected: timer x, external 2; exceptions injected: 0";
        assert!(parse_injections(bad).is_err());
        let old = "Interrupts injected: timer 1, external 2";
        assert!(parse_injections(old).is_err() && parse_exceptions(old).is_err());
    }

    #[test]
    fn only_the_last_report_at_a_line_start_counts() {
        let faked = format!(
            "guest says: VM exits: 1 total, nested page fault 1, hypercall 0, timer 0, unexpected 0\n\
             VM exits: 2 total, nested page fault 2, hypercall 0, timer 0, unexpected 0\n{REPORT}"
        );
        assert_eq!(parse_exits(&faked).unwrap().total, 31);
        assert!(parse_exits("  VM exits: 3 total, hypercall 3").is_err());
    }

    #[test]
    fn missing_or_broken_lines_are_errors() {
        assert!(parse_exits("nothing here").is_err());
        assert!(parse_exits("VM exits: many total, hypercall 1").is_err());
        let good = "Guest memory mapped: 1 block of 2 MiB + 1 page of 4 KiB (2052 KiB)";
        assert!(parse_mapped(good).is_ok());
        for bad in [
            "Guest memory mapped: 1 block of 2 MiB + 1 page of 4 KiB (2048 KiB)",
            "Guest memory mapped: 3 (12 KiB), ram 3",
            "Guest memory mapped: 0 blocks of 2 MiB + 1 page of 4 KiB (4 KiB), ram x pages",
            "Guest memory mapped: 0 blocks of 2 MiB + 1 page of 4 KiB (4 KiB), ram 1 page (8 KiB of 1 MiB)",
            "Guest memory mapped: 0 blocks of 2 MiB + 1 page of 4 KiB (4 KiB), ram 1 page +",
            "Guest pages mapped: 3 (12 KiB), ram 3 of 4096",
        ] {
            assert!(parse_mapped(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn order_is_checked_line_by_line() {
        assert!(
            check_in_order(
                REPORT,
                &["Shutdown vm", "VM exits: ", MAPPED_PREFIX, "Hypervisor ok!"]
            )
            .is_ok()
        );
        let err = check_in_order(REPORT, &["Hypervisor ok!", "VM exits: "])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no line with `VM exits: ` after `Hypervisor ok!`"),
            "{err}"
        );
        // Two needles on one line do not count as in order.
        assert!(check_in_order("a b\n", &["a", "b"]).is_err());
    }

    #[test]
    fn the_mmio_bench_and_the_clock_lines_are_read() {
        let text = "bench-mmio: 500 device reads in 1234 ticks\n\
            Hypervisor clock: machine start to guest entry 81234 us, guest run 5678 us\n";
        assert_eq!(parse_bench_mmio(text).unwrap(), Some((500, 1234)));
        assert_eq!(parse_bench_mmio("nothing").unwrap(), None);
        assert!(parse_bench_mmio("bench-mmio: x device reads in 1 ticks").is_err());
        assert_eq!(parse_clock(text).unwrap(), (81234, 5678));
        let timer = "Guest timer interrupt arrived after 10006 ticks (armed for 10000)\r\n";
        assert_eq!(parse_timer_latency(timer).unwrap(), Some(6));
        assert_eq!(parse_timer_latency("nothing").unwrap(), None);
        assert!(parse_clock("Hypervisor clock: soon").is_err());
    }
}
