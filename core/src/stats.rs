//! Counters the hypervisor prints at shutdown: VM exits by reason, and the
//! guest memory mapped by region, in 2 MiB blocks and 4 KiB pages.

use crate::exit::ExitKind;
use crate::layout::{GuestLayout, RegionKind};
use crate::{BLOCK_SIZE, PAGE_SIZE};

/// Most regions a layout may have for per-region page counts.
const MAX_REGIONS: usize = 8;

/// VM exits by class and guest memory mapped by region, for the report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    exits: [u64; ExitKind::ALL.len()],
    /// Interrupts injected into the guest: timer, external.
    injected: [u64; 2],
    /// Exceptions injected into the guest for accesses the hypervisor
    /// refused as the hardware would (x86 `#GP` for an unknown MSR).
    exceptions: u64,
    /// 4 KiB pages mapped per region, in the layout's region order.
    pages: [u64; MAX_REGIONS],
    /// 2 MiB blocks mapped per region, in the same order.
    blocks: [u64; MAX_REGIONS],
}

impl Stats {
    /// Adds every counter of `other` to this one's (a VM's total from its
    /// vCPUs' counters and its memory's).
    pub fn absorb(&mut self, other: &Stats) {
        let pairs = self.exits.iter_mut().zip(other.exits);
        let pairs = pairs.chain(self.injected.iter_mut().zip(other.injected));
        let pairs = pairs.chain(self.pages.iter_mut().zip(other.pages));
        let pairs = pairs.chain(self.blocks.iter_mut().zip(other.blocks));
        for (mine, theirs) in pairs {
            *mine += theirs;
        }
        self.exceptions += other.exceptions;
    }

    /// Records an exception injected into the guest.
    pub fn count_exception_injection(&mut self) {
        self.exceptions += 1;
    }

    /// Exceptions injected into the guest so far.
    pub fn exceptions_injected(&self) -> u64 {
        self.exceptions
    }

    /// Records a timer interrupt injected into the guest.
    pub fn count_timer_injection(&mut self) {
        self.injected[0] += 1;
    }

    /// Records an external interrupt raised for the guest (its line going
    /// from low to high).
    pub fn count_external_injection(&mut self) {
        self.injected[1] += 1;
    }

    /// Records `n` external interrupts raised for the guest.
    pub fn count_external_injections(&mut self, n: u64) {
        self.injected[1] += n;
    }

    /// Timer and external interrupts injected so far.
    pub fn injections(&self) -> (u64, u64) {
        (self.injected[0], self.injected[1])
    }

    /// Records one exit of class `kind`.
    pub fn count_exit(&mut self, kind: ExitKind) {
        self.exits[kind as usize] += 1;
    }

    /// Exits of class `kind` so far.
    pub fn exits(&self, kind: ExitKind) -> u64 {
        self.exits[kind as usize]
    }

    /// Exits of every class so far.
    pub fn total_exits(&self) -> u64 {
        self.exits.iter().sum()
    }

    /// Records a 4 KiB page mapped in region number `region` of the layout.
    pub fn count_page(&mut self, region: usize) {
        self.pages[region] += 1;
    }

    /// Records a 2 MiB block mapped in region number `region`.
    pub fn count_block(&mut self, region: usize) {
        self.blocks[region] += 1;
    }

    /// 4 KiB pages mapped in region number `region` so far.
    pub fn pages(&self, region: usize) -> u64 {
        self.pages[region]
    }

    /// 2 MiB blocks mapped in region number `region` so far.
    pub fn blocks(&self, region: usize) -> u64 {
        self.blocks[region]
    }

    /// 4 KiB pages mapped in every region so far.
    pub fn total_pages(&self) -> u64 {
        self.pages.iter().sum()
    }

    /// 2 MiB blocks mapped in every region so far.
    pub fn total_blocks(&self) -> u64 {
        self.blocks.iter().sum()
    }

    /// Bytes of guest memory mapped in region number `region`, blocks and
    /// pages together.
    pub fn mapped_bytes(&self, region: usize) -> u64 {
        self.blocks[region] * BLOCK_SIZE + self.pages[region] * PAGE_SIZE
    }

    /// A printable report against `layout`.
    pub fn report<'a>(&'a self, layout: &'a GuestLayout<'a>) -> Report<'a> {
        Report {
            stats: self,
            layout,
        }
    }
}

/// The shutdown report: exits, interrupts, then memory, one line each.
///
/// The memory line gives the totals, then each region: a RAM region (or
/// any region holding blocks) as `ram B blocks + P pages (K KiB of M MiB)`,
/// any other as its page count, `pflash 1 page`.
pub struct Report<'a> {
    stats: &'a Stats,
    layout: &'a GuestLayout<'a>,
}

/// `n` and `noun`, with an `s` unless `n` is 1.
fn counted(f: &mut core::fmt::Formatter<'_>, n: u64, noun: &str) -> core::fmt::Result {
    write!(f, "{n} {noun}{}", if n == 1 { "" } else { "s" })
}

impl core::fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = self.stats;
        write!(f, "VM exits: {} total", s.total_exits())?;
        for kind in ExitKind::ALL {
            write!(f, ", {} {}", kind.name(), s.exits(kind))?;
        }
        write!(
            f,
            "\nInterrupts injected: timer {}, external {}; exceptions injected: {}",
            s.injected[0], s.injected[1], s.exceptions
        )?;
        let (blocks, pages) = (s.total_blocks(), s.total_pages());
        f.write_str("\nGuest memory mapped: ")?;
        counted(f, blocks, "block")?;
        f.write_str(" of 2 MiB + ")?;
        counted(f, pages, "page")?;
        let kib = (blocks * BLOCK_SIZE + pages * PAGE_SIZE) / 1024;
        write!(f, " of 4 KiB ({kib} KiB)")?;
        for (i, r) in self.layout.regions.iter().enumerate() {
            write!(f, ", {} ", r.name)?;
            if r.kind == RegionKind::Ram || s.blocks(i) > 0 {
                counted(f, s.blocks(i), "block")?;
                f.write_str(" + ")?;
            }
            counted(f, s.pages(i), "page")?;
            if r.kind == RegionKind::Ram {
                write!(
                    f,
                    " ({} KiB of {} MiB)",
                    s.mapped_bytes(i) / 1024,
                    r.size >> 20
                )?;
            }
        }
        Ok(())
    }
}

/// The most regions a layout may have for per-region counts (the boards
/// are checked against it in [`crate::machine`]).
pub const MAX_LAYOUT_REGIONS: usize = MAX_REGIONS;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::{DEFAULT_RAM_SIZE, RISCV64_VIRT};

    fn riscv() -> crate::layout::Layout {
        RISCV64_VIRT.layout(DEFAULT_RAM_SIZE).unwrap()
    }

    #[test]
    fn report_lists_every_reason_and_region() {
        let mut s = Stats::default();
        for _ in 0..3 {
            s.count_exit(ExitKind::NestedPageFault);
        }
        s.count_exit(ExitKind::Hypercall);
        s.count_page(1);
        s.count_page(2);
        s.count_page(3);
        s.count_page(3);
        let text = s.report(&riscv().as_ref()).to_string();
        assert_eq!(
            text,
            "VM exits: 4 total, nested page fault 3, hypercall 1, timer 0, mmio 0, host tick 0, kick 0, wfi 0, sysreg 0, pio 0, reflected 0, unexpected 0\n\
             Interrupts injected: timer 0, external 0; exceptions injected: 0\n\
             Guest memory mapped: 0 blocks of 2 MiB + 4 pages of 4 KiB (16 KiB), plic 0 pages, uart 1 page, pflash 1 page, ram 0 blocks + 2 pages (8 KiB of 128 MiB)"
        );
    }

    #[test]
    fn blocks_and_pages_are_reported_apart_and_together() {
        let mut s = Stats::default();
        for _ in 0..12 {
            s.count_block(3);
        }
        for _ in 0..345 {
            s.count_page(3);
        }
        s.count_page(2);
        assert_eq!((s.total_blocks(), s.total_pages()), (12, 346));
        assert_eq!(s.mapped_bytes(3), 12 * (2 << 20) + 345 * 4096);
        let text = s.report(&riscv().as_ref()).to_string();
        let line = text.lines().last().unwrap();
        assert_eq!(
            line,
            "Guest memory mapped: 12 blocks of 2 MiB + 346 pages of 4 KiB (25960 KiB), plic 0 pages, uart 0 pages, pflash 1 page, ram 12 blocks + 345 pages (25956 KiB of 128 MiB)"
        );
        let mut one = Stats::default();
        one.count_block(3);
        let text = one.report(&riscv().as_ref()).to_string();
        assert!(
            text.ends_with(
                "Guest memory mapped: 1 block of 2 MiB + 0 pages of 4 KiB (2048 KiB), plic 0 pages, uart 0 pages, pflash 0 pages, ram 1 block + 0 pages (2048 KiB of 128 MiB)"
            ),
            "{text}"
        );
        let mut both = one.clone();
        both.absorb(&s);
        assert_eq!(both.total_blocks(), 13, "absorb adds every counter");
        assert_eq!(both.pages(2), 1);
        // A block outside RAM (no policy maps one) would still show.
        one.count_block(2);
        assert!(
            one.report(&riscv().as_ref())
                .to_string()
                .contains(", pflash 1 block + 0 pages, ")
        );
    }
}
