//! x86_64: walking arbitrary guest page tables, held in a small fake guest
//! memory, and fetching instruction bytes through them never panics nor
//! runs away, in every paging mode.

use proptest::prelude::*;

use super::cases;
use crate::addr::GuestPhysAddr;
use crate::arch::x86_64::paging::{
    self, CR0_PG, CR4_LA57, CR4_PAE, CR4_PSE, EFER_LMA, MAX_INSN_LEN, PagingRegs,
};
use crate::guest_memory::GuestMemory;

/// Pages of fake guest memory, from GPA 0.
const PAGES: usize = 4;
const SIZE: usize = PAGES * 4096;

/// Guest memory of [`PAGES`] pages from GPA 0, every 8-byte slot holding
/// one of a few entries: tables that point into it, at themselves, past
/// it, with any flags.
struct FakeMemory(Vec<u8>);

impl FakeMemory {
    fn new(entries: &[u64], salt: u64) -> Self {
        let mut bytes = vec![0u8; SIZE];
        for (i, slot) in bytes.chunks_exact_mut(8).enumerate() {
            let pick = (i as u64).wrapping_mul(0x9e37_79b9).wrapping_add(salt) >> 7;
            let e = entries[(pick % entries.len() as u64) as usize];
            slot.copy_from_slice(&e.to_le_bytes());
        }
        FakeMemory(bytes)
    }
}

impl GuestMemory for FakeMemory {
    fn read(&self, gpa: GuestPhysAddr, buf: &mut [u8]) -> usize {
        let Ok(at) = usize::try_from(gpa.as_u64()) else {
            return 0;
        };
        if at >= SIZE {
            return 0;
        }
        let n = buf.len().min(SIZE - at);
        buf[..n].copy_from_slice(&self.0[at..at + n]);
        n
    }
}

/// Memory that is everywhere: every read gives `entry` repeated, so a walk
/// finds a present table at every level and would go on for ever if it did
/// not count its levels.
struct Everywhere(u64);

impl GuestMemory for Everywhere {
    fn read(&self, gpa: GuestPhysAddr, buf: &mut [u8]) -> usize {
        let bytes = self.0.to_le_bytes();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = bytes[(gpa.as_u64() as usize).wrapping_add(i) % 8];
        }
        buf.len()
    }
}

/// A paging-structure entry: mostly pointing into the fake memory (page
/// 0..PAGES, a little past), with random low flags and sometimes random
/// high bits.
fn entry() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => (0u64..PAGES as u64 + 2, any::<u16>()).prop_map(|(page, flags)| {
            page << 12 | u64::from(flags & 0xfff)
        }),
        1 => any::<u64>(),
    ]
}

fn regs() -> impl Strategy<Value = PagingRegs> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![0u64..SIZE as u64 + 0x2000, any::<u64>()],
        any::<u64>(),
    )
        .prop_map(|(pg, pae, pse, la57, lma, cr3, noise)| PagingRegs {
            cr0: if pg { CR0_PG } else { 0 } | (noise & 0xffff),
            cr3,
            cr4: (if pae { CR4_PAE } else { 0 })
                | (if pse { CR4_PSE } else { 0 })
                | (if la57 { CR4_LA57 } else { 0 }),
            efer: if lma { EFER_LMA } else { 0 },
        })
}

fn linear() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..0x4000_0000,
        any::<u64>(),
        // Canonical high-half addresses, and the last bytes before a page
        // or the 4 GiB boundary (fetches that cross).
        (0u64..0x1000).prop_map(|o| 0xffff_ffff_ffff_f000 | o),
        (0u64..16).prop_map(|o| 0xffff_fff0 + o),
        (0u64..16, 0u64..8).prop_map(|(o, p)| p << 12 | (0xff0 + o)),
    ]
}

proptest! {
    #![proptest_config(cases(400))]

    /// Arbitrary tables in a small memory: the walk ends, a translation
    /// without paging is the address itself (cut to 32 bits outside long
    /// mode), and a fetch gets at most 15 bytes, at least one on success.
    #[test]
    fn arbitrary_tables_walk_and_fetch(
        entries in prop::collection::vec(entry(), 1..12),
        salt in any::<u64>(),
        regs in regs(),
        linear in linear(),
    ) {
        let mem = FakeMemory::new(&entries, salt);
        let t = paging::translate(&mem, &regs, linear);
        if regs.cr0 & CR0_PG == 0 {
            let want = if regs.long_mode() { linear } else { linear & 0xffff_ffff };
            prop_assert_eq!(t.map(GuestPhysAddr::as_u64), Ok(want));
        } else if let Ok(gpa) = t {
            prop_assert!(gpa.as_u64() < 1 << 52);
        }
        let mut buf = [0u8; MAX_INSN_LEN];
        if let Ok(n) = paging::fetch(&mem, &regs, linear, &mut buf) {
            prop_assert!((1..=MAX_INSN_LEN).contains(&n));
        }
    }

    /// Memory that reads as the same entry everywhere: every walk ends.
    #[test]
    fn self_referencing_tables_end(e in entry(), regs in regs(), linear in linear()) {
        let mem = Everywhere(e | 1);
        let _ = paging::translate(&mem, &regs, linear);
        let mut buf = [0u8; MAX_INSN_LEN];
        if let Ok(n) = paging::fetch(&mem, &regs, linear, &mut buf) {
            prop_assert!((1..=MAX_INSN_LEN).contains(&n));
        }
    }
}
