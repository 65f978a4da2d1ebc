//! Reading the hypervisor's output: lines expected in order, and the two
//! counter lines it prints at shutdown:
//!
//! ```text
//! VM exits: 31 total, nested page fault 27, hypercall 3, timer 1, unexpected 0
//! Guest pages mapped: 55 (220 KiB), uart 1, pflash 1, ram 53 of 4096 (212 KiB of 16 MiB)
//! ```

use anyhow::{Context, Result, bail};

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

/// The `Interrupts injected: timer T, external E` line: (T, E).
pub fn parse_injections(text: &str) -> Result<(u64, u64)> {
    let rest = line_after(text, "Interrupts injected: ")?;
    match rest.split(", ").collect::<Vec<_>>().as_slice() {
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

/// One region's part of the `Guest pages mapped:` line.
#[derive(Debug, PartialEq, Eq)]
pub struct RegionPages {
    pub name: String,
    pub mapped: u64,
    /// Pages in the region, printed for RAM (`ram 53 of 4096`).
    pub of: Option<u64>,
}

/// The `Guest pages mapped:` line.
#[derive(Debug, PartialEq, Eq)]
pub struct PageCounts {
    pub total: u64,
    pub regions: Vec<RegionPages>,
}

impl PageCounts {
    pub fn region(&self, name: &str) -> Result<&RegionPages> {
        self.regions
            .iter()
            .find(|r| r.name == name)
            .with_context(|| format!("no `{name}` page count"))
    }
}

pub fn parse_pages(text: &str) -> Result<PageCounts> {
    let rest = line_after(text, "Guest pages mapped: ")?;
    let mut parts = rest.split(", ");
    let total = parts
        .next()
        .and_then(|p| p.split_whitespace().next())
        .context("no total in `Guest pages mapped:`")?;
    let mut regions = Vec::new();
    for part in parts {
        let words: Vec<&str> = part.split_whitespace().collect();
        let (name, mapped) = match words.as_slice() {
            [name, mapped, ..] => (name.to_string(), number(mapped)?),
            _ => bail!("bad page count `{part}`"),
        };
        let of = match words.get(2..4) {
            Some(["of", size]) => Some(number(size)?),
            _ => None,
        };
        regions.push(RegionPages { name, mapped, of });
    }
    Ok(PageCounts {
        total: number(total)?,
        regions,
    })
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
        Guest pages mapped: 55 (220 KiB), uart 1, pflash 1, ram 53 of 4096 (212 KiB of 16 MiB)\r\n\
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
    fn page_counts_are_read_by_region() {
        let pages = parse_pages(REPORT).unwrap();
        assert_eq!(pages.total, 55);
        assert_eq!(
            pages.region("uart").unwrap(),
            &RegionPages {
                name: "uart".into(),
                mapped: 1,
                of: None
            }
        );
        assert_eq!(pages.region("pflash").unwrap().mapped, 1);
        assert_eq!(
            pages.region("ram").unwrap(),
            &RegionPages {
                name: "ram".into(),
                mapped: 53,
                of: Some(4096)
            }
        );
    }

    #[test]
    fn injections_are_read() {
        let text = "Interrupts injected: timer 39, external 2\r\n";
        assert_eq!(parse_injections(text).unwrap(), (39, 2));
        assert!(parse_injections("Interrupts injected: timer x, external 2").is_err());
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
        assert!(parse_pages("Guest pages mapped: 3 (12 KiB), ram x of 4096").is_err());
    }

    #[test]
    fn order_is_checked_line_by_line() {
        assert!(
            check_in_order(
                REPORT,
                &[
                    "Shutdown vm",
                    "VM exits: ",
                    "Guest pages mapped: ",
                    "Hypervisor ok!"
                ]
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
