//! How a nested page fault on mapped guest memory is served: which mapping
//! goes in, a 2 MiB block or a 4 KiB page, and counting it. (Faults on
//! emulated devices are never mapped; the run loop emulates them.)
//!
//! A fault in RAM maps the whole 2 MiB-aligned block around it when the
//! block lies inside the region, nothing in it is mapped yet (pages the
//! loader placed keep their block in pages) and the host has a block to
//! give; the guest then takes one exit per 2 MiB instead of one per 4 KiB.
//! Otherwise, and always in pass-through and emulated regions or with
//! blocks turned off (`blocks = false` in `/etc/vm.toml`), the fault maps the
//! 4 KiB page holding it, backed as the region says.

use crate::BLOCK_SIZE;
use crate::addr::GuestPhysAddr;
use crate::layout::{Region, RegionKind};
use crate::stage2::{AddressSpace, Format, Host, MapError};
use crate::stats::Stats;

/// The start of the 2 MiB block holding `gpa`, if the whole block lies
/// inside `region`.
pub fn block_within(region: &Region, gpa: GuestPhysAddr) -> Option<GuestPhysAddr> {
    let base = gpa.align_down(BLOCK_SIZE);
    let end = base.checked_add(BLOCK_SIZE)?;
    (base >= region.gpa && end <= region.end()).then_some(base)
}

/// Maps guest memory for a fault at `gpa` in `region` (number `index` of
/// the layout) and counts what was mapped: the 2 MiB block around `gpa`
/// for RAM when `blocks` is on and the block can be had, else the 4 KiB
/// page holding `gpa`.
pub fn map_fault<F: Format, H: Host>(
    space: &mut AddressSpace<F, H>,
    stats: &mut Stats,
    (index, region): (usize, &Region),
    gpa: GuestPhysAddr,
    blocks: bool,
) -> Result<(), MapError> {
    if blocks
        && region.kind == RegionKind::Ram
        && let Some(base) = block_within(region, gpa)
        && space.map_fresh_block(base, region.perms)?.is_some()
    {
        stats.count_block(index);
        return Ok(());
    }
    space.map_backed(gpa.page_base(), region.backing_for(gpa), region.perms)?;
    stats.count_page(index);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PAGE_SIZE;
    use crate::addr::HostPhysAddr;
    use crate::layout::{Backing, Perms};
    use crate::stage2::test_host::{ArenaHost, gpa, hpa};
    use crate::stage2::{BLOCK_PAGES, Sv39x4};

    type Space = AddressSpace<Sv39x4, ArenaHost>;

    /// Room for the tables, a few pages and two blocks.
    fn space() -> Space {
        AddressSpace::new(ArenaHost::new(4 * BLOCK_PAGES)).unwrap()
    }

    const fn ram(start: u64, size: u64) -> Region {
        Region::ram(GuestPhysAddr::new(start), size)
    }

    const RAM: Region = ram(0x8000_0000, 128 << 20);

    #[test]
    fn only_whole_blocks_inside_the_region_qualify() {
        let odd = ram(0x8010_0000, 0x50_0000); // 1 MiB in, 5 MiB long
        assert_eq!(block_within(&odd, gpa(0x8010_0000)), None, "starts before");
        assert_eq!(block_within(&odd, gpa(0x8023_4567)), Some(gpa(0x8020_0000)));
        assert_eq!(
            block_within(&odd, gpa(0x805f_ffff)),
            Some(gpa(0x8040_0000)),
            "ends exactly at the region's end"
        );
        assert_eq!(
            block_within(&ram(0x8000_0000, 0x10_0000), gpa(0x8000_0000)),
            None
        );
        let top = ram(u64::MAX - 0xf_ffff - 0x20_0000, 0x20_0000);
        assert_eq!(block_within(&top, gpa(u64::MAX - 0xf_ffff)), None);
    }

    #[test]
    fn a_ram_fault_maps_its_whole_block_once() {
        let mut s = space();
        let mut stats = Stats::default();
        map_fault(&mut s, &mut stats, (3, &RAM), gpa(0x8040_1234), true).unwrap();
        assert_eq!((stats.blocks(3), stats.pages(3)), (1, 0));
        assert_eq!((s.mapped_blocks(), s.mapped_pages()), (1, 0));
        let (first, perms) = s.translate(gpa(0x8040_0000)).unwrap();
        assert_eq!(perms, Perms::RWX);
        assert_eq!(
            s.translate(gpa(0x805f_f000)),
            Some((first + 0x1f_f000, Perms::RWX)),
            "the last page of the block is there without a fault"
        );
        assert_eq!(s.translate(gpa(0x8060_0000)), None);
        // A second fault inside it is a permission fault, not a new block.
        assert_eq!(
            map_fault(&mut s, &mut stats, (3, &RAM), gpa(0x8050_0000), true),
            Err(MapError::AlreadyMapped {
                gpa: gpa(0x8050_0000)
            })
        );
        assert_eq!((stats.blocks(3), stats.pages(3)), (1, 0));
    }

    #[test]
    fn with_blocks_off_ram_faults_map_pages() {
        let mut s = space();
        let mut stats = Stats::default();
        map_fault(&mut s, &mut stats, (3, &RAM), gpa(0x8040_1234), false).unwrap();
        assert_eq!((stats.blocks(3), stats.pages(3)), (0, 1));
        assert_eq!((s.mapped_blocks(), s.mapped_pages()), (0, 1));
        assert_eq!(s.translate(gpa(0x8040_2000)), None);
    }

    #[test]
    fn a_host_without_a_block_gets_a_page_fault_served() {
        let mut s = space();
        s.host().refuse_blocks = true;
        let mut stats = Stats::default();
        map_fault(&mut s, &mut stats, (3, &RAM), gpa(0x8040_1234), true).unwrap();
        assert_eq!((stats.blocks(3), stats.pages(3)), (0, 1));
        assert!(s.translate(gpa(0x8040_1000)).is_some());
        assert_eq!(s.translate(gpa(0x8040_2000)), None);
        // Once the host has blocks again, the next block is one.
        s.host().refuse_blocks = false;
        map_fault(&mut s, &mut stats, (3, &RAM), gpa(0x8060_0000), true).unwrap();
        assert_eq!((stats.blocks(3), stats.pages(3)), (1, 1));
    }

    #[test]
    fn a_block_partly_outside_the_region_is_mapped_in_pages() {
        let odd = ram(0x8010_0000, 0x30_0000); // 1 MiB in, 3 MiB long
        let mut s = space();
        let mut stats = Stats::default();
        map_fault(&mut s, &mut stats, (0, &odd), gpa(0x8018_0000), true).unwrap();
        assert_eq!((stats.blocks(0), stats.pages(0)), (0, 1));
        assert_eq!(s.translate(gpa(0x8010_0000)), None);
        // The next block lies wholly inside.
        map_fault(&mut s, &mut stats, (0, &odd), gpa(0x8020_0000), true).unwrap();
        assert_eq!((stats.blocks(0), stats.pages(0)), (1, 1));
    }

    #[test]
    fn a_block_with_a_page_already_mapped_stays_in_pages() {
        let mut s = space();
        let mut stats = Stats::default();
        // The loader placed one page of the image up front.
        s.map_backed(gpa(0x8020_0000), Backing::FreshRam, Perms::RWX)
            .unwrap();
        map_fault(&mut s, &mut stats, (3, &RAM), gpa(0x803f_f000), true).unwrap();
        assert_eq!((stats.blocks(3), stats.pages(3)), (0, 1));
        assert_eq!(s.mapped_pages(), 2);
        assert_eq!(s.translate(gpa(0x8030_0000)), None, "no block under it");
        // Unmapping the pages does not turn the block back into one: its
        // table stays.
        s.unmap(gpa(0x8020_0000));
        s.unmap(gpa(0x803f_f000));
        map_fault(&mut s, &mut stats, (3, &RAM), gpa(0x8030_0000), true).unwrap();
        assert_eq!((stats.blocks(3), stats.pages(3)), (0, 2));
    }

    #[test]
    fn other_regions_keep_mapping_pages() {
        let pflash = Region {
            name: "pflash",
            gpa: GuestPhysAddr::new(0x2200_0000),
            size: 0x200_0000,
            perms: Perms::READ,
            kind: RegionKind::Passthrough {
                hpa: HostPhysAddr::new(0x2200_0000),
            },
        };
        let emulated = Region {
            name: "rom",
            gpa: GuestPhysAddr::new(0x4000_0000),
            size: 0x40_0000,
            perms: Perms::READ,
            kind: RegionKind::Emulated { content: b"pfld" },
        };
        let mut s = space();
        let mut stats = Stats::default();
        map_fault(&mut s, &mut stats, (0, &pflash), gpa(0x2240_0010), true).unwrap();
        map_fault(&mut s, &mut stats, (1, &emulated), gpa(0x4020_0000), true).unwrap();
        assert_eq!(
            s.translate(gpa(0x2240_0010)),
            Some((hpa(0x2240_0010), Perms::READ))
        );
        assert_eq!(s.translate(gpa(0x2240_1000)), None);
        assert_eq!(s.translate(gpa(0x4020_1000)), None);
        assert_eq!(
            (stats.pages(0), stats.pages(1), stats.total_blocks()),
            (1, 1, 0)
        );
        assert_eq!(s.mapped_blocks(), 0);
    }

    #[test]
    fn blocks_and_pages_are_counted_per_region() {
        let mut s = space();
        let mut stats = Stats::default();
        s.map_backed(gpa(0x8020_0000), Backing::FreshRam, Perms::RWX)
            .unwrap();
        stats.count_page(3);
        for at in [0x8020_1000, 0x8040_0000, 0x8020_2000, 0x8060_0008] {
            map_fault(&mut s, &mut stats, (3, &RAM), gpa(at), true).unwrap();
        }
        assert_eq!((stats.blocks(3), stats.pages(3)), (2, 3));
        assert_eq!((s.mapped_blocks(), s.mapped_pages()), (2, 3));
        assert_eq!(
            stats.mapped_bytes(3),
            2 * BLOCK_SIZE + 3 * PAGE_SIZE,
            "what the region's report figure is made of"
        );
    }
}
