//! What every stage-2 format must do with a 2 MiB block, written once and
//! run by each format's tests: a fresh block maps with one leaf, reads as
//! zeroes, translates at any offset with its permissions, copies across
//! its 4 KiB sub-pages into one contiguous host block, refuses a second
//! mapping and is unmapped and freed as a whole.

use super::test_host::{ArenaHost, gpa};
use super::{AddressSpace, BLOCK_PAGES, Format, Host, MapError};
use crate::layout::{Backing, Perms};
use crate::{BLOCK_SIZE, PAGE_SIZE};

/// Enough arena for the tables and the block mapped twice (the arena's
/// bump pointer never reuses a frame, and skips ahead to 2 MiB alignment).
const ARENA_PAGES: usize = 4 * BLOCK_PAGES;

/// Runs the checks on format `F` with the block at guest-physical `base`
/// (2 MiB aligned), mapped with `perms` (which must allow reads, the only
/// permission all three formats always keep).
pub fn block_round_trip<F: Format>(base: u64, perms: Perms) {
    let mut s = AddressSpace::<F, _>::new(ArenaHost::new(ARENA_PAGES)).unwrap();
    let hpa = s
        .map_fresh_block(gpa(base + 0x12_3456), perms)
        .unwrap()
        .expect("the arena has a block to give");
    assert_eq!(hpa.as_u64() % BLOCK_SIZE, 0, "{}: aligned block", F::NAME);
    assert_eq!((s.mapped_blocks(), s.mapped_pages()), (1, 0));
    assert_eq!(
        s.host().live.len(),
        F::LEVELS,
        "{}: the tables down to the block's level, and the block",
        F::NAME
    );
    assert_eq!(s.host().invalidated, [gpa(base)], "the block, once");
    let published = &s.host().published;
    assert_eq!(published.len(), BLOCK_PAGES, "every zeroed page published");
    assert!(
        published
            .iter()
            .zip(0..)
            .all(|(&p, i)| p == hpa + i * PAGE_SIZE)
    );

    // Translation: any offset, the block's permissions, nothing beyond it.
    assert_eq!(s.translate(gpa(base)), Some((hpa, perms)));
    let last = BLOCK_SIZE - 8;
    assert_eq!(s.translate(gpa(base + last)), Some((hpa + last, perms)));
    assert_eq!(s.translate(gpa(base + BLOCK_SIZE)), None);
    assert_eq!(s.translate(gpa(base - 1)), None);

    // Fresh memory reads as zeroes although the arena was filled with 0xAA,
    // including across a sub-page boundary.
    let mut buf = [0xffu8; 16];
    assert_eq!(s.read(gpa(base + 0x7ff8), &mut buf), 16);
    assert_eq!(buf, [0; 16]);

    // Writes cross sub-pages and land contiguously in the host block.
    let data: Vec<u8> = (0..100u8).collect();
    let at = 0x1_0fd0;
    assert_eq!(s.write(gpa(base + at), &data), 100);
    let mut back = vec![0u8; 100];
    assert_eq!(s.read(gpa(base + at), &mut back), 100);
    assert_eq!(back, data);
    let frame = s.host().frame_ptr(hpa);
    // SAFETY: the block is BLOCK_SIZE bytes of the arena, `at + 100` is
    // inside it.
    let host_view = unsafe { core::slice::from_raw_parts(frame.add(at as usize), 100) };
    assert_eq!(host_view, &data[..]);
    assert_eq!(
        s.host().published[BLOCK_PAGES..],
        [hpa + 0x1_0000, hpa + 0x1_1000],
        "the two sub-pages written are published again"
    );

    // Mapped is mapped: no second block, no page inside it.
    assert_eq!(s.map_fresh_block(gpa(base), perms), Ok(None));
    assert_eq!(
        s.map_backed(gpa(base + 0x5000), Backing::FreshRam, perms),
        Err(MapError::AlreadyMapped {
            gpa: gpa(base + 0x5000)
        })
    );

    // Unmapping any address inside removes and frees the whole block.
    let freed = s.host().freed;
    assert_eq!(s.unmap(gpa(base + 0x3000)), Some((hpa, BLOCK_SIZE)));
    assert_eq!(s.host().freed - freed, BLOCK_PAGES);
    assert_eq!(s.host().invalidated.last(), Some(&gpa(base)));
    assert_eq!((s.mapped_blocks(), s.translate(gpa(base))), (0, None));
    assert_eq!(s.unmap(gpa(base)), None);

    // Mapped again, it is freed with the address space.
    s.map_fresh_block(gpa(base), perms).unwrap().unwrap();
    let host = s.into_host();
    assert!(host.live.is_empty(), "leaked frames: {:x?}", host.live);
}
