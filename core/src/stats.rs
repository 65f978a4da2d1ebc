//! Counters the hypervisor prints at shutdown: VM exits by reason and guest
//! pages mapped by region.

use crate::PAGE_SIZE;
use crate::exit::ExitKind;
use crate::layout::{GuestLayout, RegionKind};

/// Most regions a layout may have for per-region page counts.
const MAX_REGIONS: usize = 8;

/// VM exits by class and guest pages mapped by region, for the report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    exits: [u64; ExitKind::ALL.len()],
    /// Interrupts injected into the guest: timer, external.
    injected: [u64; 2],
    /// Pages mapped per region, in the layout's region order.
    pages: [u64; MAX_REGIONS],
}

impl Stats {
    /// Records a timer interrupt injected into the guest.
    pub fn count_timer_injection(&mut self) {
        self.injected[0] += 1;
    }

    /// Records an external interrupt raised for the guest (its line going
    /// from low to high).
    pub fn count_external_injection(&mut self) {
        self.injected[1] += 1;
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

    /// Records a page mapped in region number `region` of the layout.
    pub fn count_page(&mut self, region: usize) {
        self.pages[region] += 1;
    }

    /// Pages mapped in region number `region` so far.
    pub fn pages(&self, region: usize) -> u64 {
        self.pages[region]
    }

    /// Pages mapped in every region so far.
    pub fn total_pages(&self) -> u64 {
        self.pages.iter().sum()
    }

    /// A printable report against `layout`.
    pub fn report<'a>(&'a self, layout: &'a GuestLayout<'a>) -> Report<'a> {
        Report {
            stats: self,
            layout,
        }
    }
}

/// The shutdown report: two lines, exits then pages.
pub struct Report<'a> {
    stats: &'a Stats,
    layout: &'a GuestLayout<'a>,
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
            "\nInterrupts injected: timer {}, external {}",
            s.injected[0], s.injected[1]
        )?;
        let total = s.total_pages();
        write!(
            f,
            "\nGuest pages mapped: {} ({} KiB)",
            total,
            total * PAGE_SIZE / 1024
        )?;
        for (i, r) in self.layout.regions.iter().enumerate() {
            write!(f, ", {} {}", r.name, s.pages(i))?;
            if r.kind == RegionKind::Ram {
                write!(
                    f,
                    " of {} ({} KiB of {} MiB)",
                    r.size / PAGE_SIZE,
                    s.pages(i) * 4,
                    r.size >> 20
                )?;
            }
        }
        Ok(())
    }
}

/// Checks at compile time that every shipped layout fits the counters.
const _: () = assert!(crate::layout::machines::RISCV64_VIRT.regions.len() <= MAX_REGIONS);
const _: () = assert!(crate::layout::machines::X86_64_Q35.regions.len() <= MAX_REGIONS);
const _: () = assert!(crate::layout::machines::AARCH64_VIRT.regions.len() <= MAX_REGIONS);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::machines::RISCV64_VIRT;

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
        let text = s.report(&RISCV64_VIRT).to_string();
        assert_eq!(
            text,
            "VM exits: 4 total, nested page fault 3, hypercall 1, timer 0, mmio 0, host tick 0, sysreg 0, pio 0, reflected 0, unexpected 0\n\
             Interrupts injected: timer 0, external 0\n\
             Guest pages mapped: 4 (16 KiB), plic 0, uart 1, pflash 1, ram 2 of 32768 (8 KiB of 128 MiB)"
        );
    }
}
