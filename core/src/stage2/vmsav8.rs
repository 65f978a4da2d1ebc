//! The Arm VMSAv8-64 stage-2 format ([`ArmStage2`]): 4 KiB granule, a
//! 39-bit IPA space walked from level 1, the table `VTTBR_EL2` points at;
//! 4 KiB pages at level 3 and 2 MiB blocks at level 2.

use super::Format;
use super::walker::leaf_size;
use crate::addr::HostPhysAddr;
use crate::layout::Perms;

/// Arm VMSAv8-64 stage-2 translation, 4 KiB granule, 39-bit IPA: three
/// levels (1, 2, 3) from a one-page root; `VTCR_EL2` must say T0SZ = 25,
/// SL0 = 1 (start at level 1), TG0 = 4 KiB.
pub struct ArmStage2;

bitflags::bitflags! {
    /// Stage-2 descriptor bits (Arm ARM D8.3, "VMSAv8-64 translation table
    /// format descriptors", stage 2 attributes).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct ArmS2: u64 {
        /// Valid descriptor.
        const VALID = 1 << 0;
        /// Table (levels 1-2) or page (level 3) descriptor; clear in a
        /// block descriptor (bits[1:0] = 0b01), which at level 2 with the
        /// 4 KiB granule maps 2 MiB, output address bits [47:21] (Arm ARM
        /// D8.3, block descriptors).
        const TABLE_OR_PAGE = 1 << 1;
        /// MemAttr[3:0] = 0b1111: Normal, inner and outer write-back.
        const NORMAL_WB = 0b1111 << 2;
        /// MemAttr[3:0] = 0b0001: Device-nGnRE.
        const DEVICE_NGNRE = 0b0001 << 2;
        /// S2AP[0]: readable.
        const S2AP_R = 1 << 6;
        /// S2AP[1]: writable.
        const S2AP_W = 1 << 7;
        /// SH = 0b11: inner shareable.
        const INNER_SHAREABLE = 0b11 << 8;
        /// Access flag (set, so no access-flag faults).
        const AF = 1 << 10;
        /// XN[1] = 1 (XN = 0b10): not executable at EL1 or EL0.
        const XN = 1 << 54;
        /// A bit reserved for software: the frame is owned.
        const OWNED = 1 << 55;
    }
}

const ARM_ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;

impl Format for ArmStage2 {
    const NAME: &'static str = "VMSAv8-64 stage-2 (4 KiB, 39-bit IPA)";
    const LEVELS: usize = 3;
    const ROOT_PAGES: usize = 1;
    const GPA_BITS: u32 = 39;

    fn table(hpa: HostPhysAddr) -> u64 {
        (hpa.as_u64() & ARM_ADDR_MASK) | (ArmS2::VALID | ArmS2::TABLE_OR_PAGE).bits()
    }

    /// A page descriptor at level 3 (the walker's level 0), a block
    /// descriptor at level 2 (the walker's level 1); both carry the same
    /// stage-2 attributes in the same bits (Arm ARM D8.3).
    fn leaf(level: usize, hpa: HostPhysAddr, perms: Perms, device: bool, owned: bool) -> u64 {
        debug_assert_eq!(hpa.as_u64() % leaf_size(level), 0);
        let mut f = ArmS2::VALID | ArmS2::AF;
        f.set(ArmS2::TABLE_OR_PAGE, level == 0);
        f |= if device {
            ArmS2::DEVICE_NGNRE
        } else {
            ArmS2::NORMAL_WB | ArmS2::INNER_SHAREABLE
        };
        f.set(ArmS2::S2AP_R, perms.contains(Perms::READ));
        f.set(ArmS2::S2AP_W, perms.contains(Perms::WRITE));
        f.set(ArmS2::XN, !perms.contains(Perms::EXECUTE));
        f.set(ArmS2::OWNED, owned);
        (hpa.as_u64() & ARM_ADDR_MASK) | f.bits()
    }

    fn is_valid(desc: u64) -> bool {
        desc & ArmS2::VALID.bits() != 0
    }

    fn is_table(desc: u64, _level: usize) -> bool {
        desc & ArmS2::TABLE_OR_PAGE.bits() != 0
    }

    fn address(desc: u64) -> HostPhysAddr {
        HostPhysAddr::new(desc & ARM_ADDR_MASK)
    }

    fn is_owned(desc: u64) -> bool {
        desc & ArmS2::OWNED.bits() != 0
    }

    fn perms(desc: u64) -> Perms {
        let f = ArmS2::from_bits_retain(desc);
        let mut p = Perms::empty();
        p.set(Perms::READ, f.contains(ArmS2::S2AP_R));
        p.set(Perms::WRITE, f.contains(ArmS2::S2AP_W));
        p.set(Perms::EXECUTE, !f.contains(ArmS2::XN));
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
    fn arm_stage2_descriptor_encoding_and_walk() {
        let ram = ArmStage2::leaf(0, hpa(0x4123_4000), Perms::RWX, false, true);
        assert_eq!(
            ram,
            0x4123_4000 | 0b11 | 0b1111 << 2 | 0b11 << 6 | 0b11 << 8 | 1 << 10 | 1 << 55
        );
        assert_eq!(ArmStage2::perms(ram), Perms::RWX);
        let flash = ArmStage2::leaf(0, hpa(0x0400_0000), Perms::READ, true, false);
        assert_eq!(
            flash,
            0x0400_0000 | 0b11 | 0b0001 << 2 | 1 << 6 | 1 << 10 | 1 << 54,
            "device, read-only, XN"
        );
        assert_eq!(ArmStage2::perms(flash), Perms::READ);
        assert_eq!(ArmStage2::table(hpa(0x4000_5000)), 0x4000_5003);
        let mut s = AddressSpace::<ArmStage2, _>::new(ArenaHost::new(64)).unwrap();
        s.map_backed(gpa(0x4020_0000), Backing::FreshRam, Perms::RWX)
            .unwrap();
        assert_eq!(
            s.host().live.len(),
            4,
            "root (level 1), level 2, level 3, the page"
        );
        assert_eq!(
            s.map_backed(gpa(1 << 39), Backing::FreshRam, Perms::RW),
            Err(MapError::OutOfRange { gpa: gpa(1 << 39) })
        );
        assert!(s.into_host().live.is_empty());
    }

    #[test]
    fn blocks_are_level_2_block_descriptors() {
        let block = ArmStage2::leaf(1, hpa(0x4060_0000), Perms::RW, false, true);
        assert_eq!(
            block,
            0x4060_0000 | 0b01 | 0b1111 << 2 | 0b11 << 6 | 0b11 << 8 | 1 << 10 | 1 << 54 | 1 << 55,
            "block (bits[1:0] = 0b01), normal memory, RW, XN, owned"
        );
        assert!(!ArmStage2::is_table(block, 1));
        assert_eq!(ArmStage2::perms(block), Perms::RW);
        assert_eq!(ArmStage2::address(block), hpa(0x4060_0000));
        block_round_trip::<ArmStage2>(0x4020_0000, Perms::RWX);
        block_round_trip::<ArmStage2>(0x4060_0000, Perms::RW);
    }
}
