//! AMD nested page tables (NPT): the x86-64 4-level long-mode format,
//! walked with guest-physical addresses from the root in `nCR3`; 4 KiB
//! pages and 2 MiB pages (PDEs with PS set).

use super::Format;
use super::walker::leaf_size;
use crate::addr::HostPhysAddr;
use crate::layout::Perms;

/// x86-64 nested page tables (AMD NPT): the ordinary 4-level long-mode
/// format, walked with guest-physical addresses; `nCR3` holds the root.
pub struct Npt;

bitflags::bitflags! {
    /// x86-64 page-table-entry bits (APM vol. 2, 5.4).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct X86Pte: u64 {
        /// Present.
        const PRESENT = 1 << 0;
        /// Writable.
        const WRITABLE = 1 << 1;
        /// Nested walks are user-mode walks: every level needs U set.
        const USER = 1 << 2;
        /// Page-level write-through.
        const WRITE_THROUGH = 1 << 3;
        /// Page-level cache disable (device pages).
        const NO_CACHE = 1 << 4;
        /// Accessed.
        const ACCESSED = 1 << 5;
        /// Dirty.
        const DIRTY = 1 << 6;
        /// Page size (PS): set in a page-directory entry, it maps a 2 MiB
        /// page (physical address bits 51:21) instead of pointing at a
        /// page table (APM vol. 2, 5.3.4 and 5.4.1). In a 4 KiB PTE this
        /// bit is PAT, which stays clear.
        const HUGE = 1 << 7;
        /// First bit the hardware ignores: the frame is owned.
        const OWNED = 1 << 9;
        /// No-execute.
        const NO_EXECUTE = 1 << 63;
    }
}

const X86_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

impl Format for Npt {
    const NAME: &'static str = "NPT 4-level";
    const LEVELS: usize = 4;
    const ROOT_PAGES: usize = 1;
    const GPA_BITS: u32 = 48;

    fn table(hpa: HostPhysAddr) -> u64 {
        (hpa.as_u64() & X86_ADDR_MASK) | (X86Pte::PRESENT | X86Pte::WRITABLE | X86Pte::USER).bits()
    }

    /// A PTE at level 0, a PDE with PS set at level 1; the other bits mean
    /// the same in both (APM vol. 2, 5.4.1). A 2 MiB PDE's PAT bit (12)
    /// stays clear, so `address` reads its base unchanged.
    fn leaf(level: usize, hpa: HostPhysAddr, perms: Perms, device: bool, owned: bool) -> u64 {
        debug_assert_eq!(hpa.as_u64() % leaf_size(level), 0);
        let mut f = X86Pte::PRESENT | X86Pte::USER | X86Pte::ACCESSED | X86Pte::DIRTY;
        f.set(X86Pte::HUGE, level > 0);
        f.set(X86Pte::WRITABLE, perms.contains(Perms::WRITE));
        f.set(X86Pte::NO_EXECUTE, !perms.contains(Perms::EXECUTE));
        f.set(X86Pte::NO_CACHE, device);
        f.set(X86Pte::OWNED, owned);
        (hpa.as_u64() & X86_ADDR_MASK) | f.bits()
    }

    fn is_valid(desc: u64) -> bool {
        desc & X86Pte::PRESENT.bits() != 0
    }

    fn is_table(desc: u64, _level: usize) -> bool {
        desc & X86Pte::HUGE.bits() == 0
    }

    fn address(desc: u64) -> HostPhysAddr {
        HostPhysAddr::new(desc & X86_ADDR_MASK)
    }

    fn is_owned(desc: u64) -> bool {
        desc & X86Pte::OWNED.bits() != 0
    }

    fn perms(desc: u64) -> Perms {
        let f = X86Pte::from_bits_retain(desc);
        let mut p = Perms::READ;
        p.set(Perms::WRITE, f.contains(X86Pte::WRITABLE));
        p.set(Perms::EXECUTE, !f.contains(X86Pte::NO_EXECUTE));
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Backing;
    use crate::stage2::block_checks::block_round_trip;
    use crate::stage2::test_host::{ArenaHost, gpa, hpa};
    use crate::stage2::{AddressSpace, MapError};

    #[test]
    fn npt_descriptor_encoding_and_walk() {
        let leaf = Npt::leaf(0, hpa(0x1234_5000), Perms::RW, false, true);
        assert_eq!(
            leaf,
            0x1234_5000 | 0b111 | 0x60 | 1 << 9 | 1 << 63,
            "P RW U A D OWNED NX"
        );
        assert_eq!(Npt::perms(leaf), Perms::RW);
        assert_eq!(
            Npt::perms(Npt::leaf(0, hpa(0x1000), Perms::RWX, false, false)),
            Perms::RWX
        );
        assert_eq!(
            Npt::leaf(0, hpa(0xfec0_0000), Perms::RW, true, false) & 0x10,
            0x10,
            "device pages are uncached"
        );
        assert_eq!(Npt::table(hpa(0x8000_3000)), 0x8000_3007);
        let mut s = AddressSpace::<Npt, _>::new(ArenaHost::new(64)).unwrap();
        s.map_backed(gpa(0xffc0_0000), Backing::Content(b"pfld"), Perms::READ)
            .unwrap();
        assert_eq!(s.translate(gpa(0xffc0_0000)).unwrap().1, Perms::READ);
        assert_eq!(s.host().live.len(), 5, "root, PDPT, PD, PT and the page");
        assert_eq!(
            s.map_backed(gpa(1 << 48), Backing::FreshRam, Perms::RW),
            Err(MapError::OutOfRange { gpa: gpa(1 << 48) })
        );
        assert!(s.into_host().live.is_empty());
    }

    #[test]
    fn two_mib_pages_are_pdes_with_ps() {
        let block = Npt::leaf(1, hpa(0x0060_0000), Perms::RWX, false, true);
        assert_eq!(
            block,
            0x0060_0000 | 0b111 | 0x60 | 0x80 | 1 << 9,
            "P RW U A D PS OWNED"
        );
        assert!(!Npt::is_table(block, 1));
        assert!(Npt::is_table(Npt::table(hpa(0x1000)), 1));
        assert_eq!(Npt::address(block), hpa(0x0060_0000));
        block_round_trip::<Npt>(0x0020_0000, Perms::RWX);
        block_round_trip::<Npt>(0x0060_0000, Perms::READ);
    }
}
