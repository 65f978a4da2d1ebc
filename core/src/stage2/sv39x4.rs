//! RISC-V Sv39x4, the G-stage format `hgatp` selects with MODE = 8: three
//! levels below a 16 KiB root, with the RISC-V page-table-entry bits; 4 KiB
//! pages and 2 MiB megapages.

use super::Format;
use super::walker::leaf_size;
use crate::addr::HostPhysAddr;
use crate::layout::Perms;

/// RISC-V Sv39x4: three levels, a 16 KiB root indexed by GPA[40:30].
pub struct Sv39x4;

bitflags::bitflags! {
    /// RISC-V page-table-entry bits (privileged spec §12.4, reused by the
    /// G-stage).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct RiscvPte: u64 {
        /// Valid.
        const V = 1 << 0;
        /// Readable.
        const R = 1 << 1;
        /// Writable.
        const W = 1 << 2;
        /// Executable.
        const X = 1 << 3;
        /// G-stage leaves must have U set: every guest access is checked
        /// as a user-mode access.
        const U = 1 << 4;
        /// Global (not used by the G-stage).
        const G = 1 << 5;
        /// Accessed (set up front: no A/D faults).
        const A = 1 << 6;
        /// Dirty (set up front: no A/D faults).
        const D = 1 << 7;
        /// First RSW bit (reserved for software): the frame is owned.
        const OWNED = 1 << 8;
    }
}

impl Format for Sv39x4 {
    const NAME: &'static str = "Sv39x4";
    const LEVELS: usize = 3;
    const ROOT_PAGES: usize = 4;
    const GPA_BITS: u32 = 41;

    fn table(hpa: HostPhysAddr) -> u64 {
        ((hpa.as_u64() >> 12) << 10) | RiscvPte::V.bits()
    }

    /// Any level may hold a leaf (privileged spec §12.4, reused for the
    /// G-stage by §21.5.1): one at level 1 is a 2 MiB megapage with the
    /// same bits as a 4 KiB page. Its `PPN[0]` must be zero, or the walk
    /// stops with a fault as a misaligned superpage (§12.3.2), hence the
    /// 2 MiB-aligned `hpa`.
    fn leaf(level: usize, hpa: HostPhysAddr, perms: Perms, _device: bool, owned: bool) -> u64 {
        debug_assert_eq!(hpa.as_u64() % leaf_size(level), 0);
        let mut f = RiscvPte::V | RiscvPte::U | RiscvPte::A | RiscvPte::D;
        f.set(RiscvPte::R, perms.contains(Perms::READ));
        f.set(RiscvPte::W, perms.contains(Perms::WRITE));
        f.set(RiscvPte::X, perms.contains(Perms::EXECUTE));
        f.set(RiscvPte::OWNED, owned);
        ((hpa.as_u64() >> 12) << 10) | f.bits()
    }

    fn is_valid(desc: u64) -> bool {
        desc & RiscvPte::V.bits() != 0
    }

    fn is_table(desc: u64, _level: usize) -> bool {
        desc & (RiscvPte::R | RiscvPte::W | RiscvPte::X).bits() == 0
    }

    fn address(desc: u64) -> HostPhysAddr {
        HostPhysAddr::new(((desc >> 10) & ((1 << 44) - 1)) << 12)
    }

    fn is_owned(desc: u64) -> bool {
        desc & RiscvPte::OWNED.bits() != 0
    }

    fn perms(desc: u64) -> Perms {
        let f = RiscvPte::from_bits_truncate(desc);
        let mut p = Perms::empty();
        p.set(Perms::READ, f.contains(RiscvPte::R));
        p.set(Perms::WRITE, f.contains(RiscvPte::W));
        p.set(Perms::EXECUTE, f.contains(RiscvPte::X));
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Backing;
    use crate::stage2::block_checks::block_round_trip;
    use crate::stage2::test_host::{ArenaHost, gpa, hpa};
    use crate::stage2::{AddressSpace, Host, MapError};

    type Space = AddressSpace<Sv39x4, ArenaHost>;

    fn root_entry(s: &Space, index: usize) -> u64 {
        // SAFETY: `index` is within the root table, which lives in the
        // test arena for as long as `s`.
        unsafe { s.slot(s.root(), index).read() }
    }

    #[test]
    fn root_is_16k_and_16k_aligned() {
        let mut host = ArenaHost::new(64);
        host.alloc_frames(1); // misalign the bump pointer on purpose
        let mut s = Space::new(host).unwrap();
        let root = s.root();
        assert_eq!(root.as_u64() % 0x4000, 0);
        assert!(s.host().live.contains(&(root, 4)));
    }

    #[test]
    fn sv39x4_descriptor_encoding() {
        let leaf = Sv39x4::leaf(0, hpa(0x8765_4000), Perms::RWX, false, true);
        assert_eq!(leaf & 0x3ff, 0b1_1101_1111, "V R W X U A D OWNED, no G");
        assert_eq!(leaf >> 10, 0x87654);
        assert_eq!(Sv39x4::address(leaf), hpa(0x8765_4000));
        assert_eq!(Sv39x4::perms(leaf), Perms::RWX);
        let ro = Sv39x4::leaf(0, hpa(0x2200_0000), Perms::READ, true, false);
        assert_eq!(ro & 0xff, 0b1101_0011, "V R U A D");
        assert!(!Sv39x4::is_owned(ro));
        let table = Sv39x4::table(hpa(0x8000_3000));
        assert_eq!(table, (0x80003 << 10) | 1);
        assert!(Sv39x4::is_table(table, 1));
        assert!(!Sv39x4::is_table(leaf, 1));
    }

    #[test]
    fn the_root_is_indexed_by_eleven_bits() {
        let mut s = Space::new(ArenaHost::new(64)).unwrap();
        s.map_backed(gpa(0x8000_0000), Backing::FreshRam, Perms::RW)
            .unwrap();
        assert!(
            Sv39x4::is_valid(root_entry(&s, 2)),
            "GPA 2 GiB uses root entry 2"
        );
        let high = (1u64 << 41) - 0x1000; // last page of the 2 TiB space
        s.map_backed(gpa(high), Backing::FreshRam, Perms::RW)
            .unwrap();
        assert!(
            Sv39x4::is_valid(root_entry(&s, 2047)),
            "top page uses the last entry of the 4th root page"
        );
        assert!(s.translate(gpa(high)).is_some());
        assert_eq!(
            s.map_backed(gpa(1 << 41), Backing::FreshRam, Perms::RW),
            Err(MapError::OutOfRange { gpa: gpa(1 << 41) })
        );
        assert_eq!(s.translate(gpa(1 << 41)), None);
    }

    #[test]
    fn megapages_are_leaves_at_level_1() {
        let page = Sv39x4::leaf(0, hpa(0x8060_0000), Perms::RWX, false, true);
        let block = Sv39x4::leaf(1, hpa(0x8060_0000), Perms::RWX, false, true);
        assert_eq!(block, page, "a megapage has a page's bits");
        assert_eq!((block >> 10) & 0x1ff, 0, "PPN[0] is zero: aligned");
        assert!(!Sv39x4::is_table(block, 1));
        assert_eq!(Sv39x4::address(block), hpa(0x8060_0000));
        block_round_trip::<Sv39x4>(0x8020_0000, Perms::RWX);
        block_round_trip::<Sv39x4>(0x87e0_0000, Perms::READ);
    }
}
