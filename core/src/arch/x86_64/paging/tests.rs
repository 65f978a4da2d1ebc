//! The guest page walk against hand-built tables in a sparse stand-in for
//! guest memory.

use super::*;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// Guest memory as a set of 4 KiB pages; absent pages are unreadable.
#[derive(Default)]
struct Pages(RefCell<BTreeMap<u64, Box<[u8; 4096]>>>);

impl Pages {
    fn poke(&self, gpa: u64, bytes: &[u8]) {
        let mut pages = self.0.borrow_mut();
        for (i, b) in bytes.iter().enumerate() {
            let a = gpa + i as u64;
            let page = pages
                .entry(a & !0xfff)
                .or_insert_with(|| Box::new([0; 4096]));
            page[(a & 0xfff) as usize] = *b;
        }
    }
    fn poke64(&self, gpa: u64, v: u64) {
        self.poke(gpa, &v.to_le_bytes());
    }
    fn poke32(&self, gpa: u64, v: u32) {
        self.poke(gpa, &v.to_le_bytes());
    }
}

impl GuestMemory for Pages {
    fn read(&self, gpa: GuestPhysAddr, buf: &mut [u8]) -> usize {
        let pages = self.0.borrow();
        for (i, b) in buf.iter_mut().enumerate() {
            let a = gpa.as_u64() + i as u64;
            match pages.get(&(a & !0xfff)) {
                Some(page) => *b = page[(a & 0xfff) as usize],
                None => return i,
            }
        }
        buf.len()
    }
}

const PRESENT_RW: u64 = 0b11;

fn long(cr3: u64) -> PagingRegs {
    PagingRegs {
        cr0: CR0_PG | 1,
        cr3,
        cr4: CR4_PAE,
        efer: EFER_LMA | (1 << 8),
    }
}

fn gpa(a: u64) -> GuestPhysAddr {
    GuestPhysAddr::new(a)
}

/// ArceOS's linear map: 0xffff_8000_0000_0000 + physical.
const HIGH: u64 = 0xffff_8000_0000_0000;

/// PML4 at 0x1000 -> PDPT 0x2000 -> PD 0x3000 -> PT 0x4000, mapping
/// `HIGH + 0x20_0000 + n * 0x1000` to `0x50_0000 + n * 0x1000`, with a 2 MiB
/// page at `HIGH + 0x40_0000` -> 0x80_0000 and a 1 GiB page at
/// `HIGH + 0x4000_0000` -> 0xc000_0000.
fn four_levels() -> Pages {
    let m = Pages::default();
    let pml4_index = (HIGH >> 39) & 0x1ff;
    m.poke64(0x1000 + pml4_index * 8, 0x2000 | PRESENT_RW);
    m.poke64(0x2000, 0x3000 | PRESENT_RW);
    m.poke64(0x2008, 0xc000_0000 | PS | PRESENT_RW);
    m.poke64(0x3000 + 8, 0x4000 | PRESENT_RW);
    m.poke64(0x3000 + 16, 0x80_0000 | PS | PRESENT_RW);
    for n in 0..4 {
        m.poke64(0x4000 + n * 8, (0x50_0000 + n * 0x1000) | PRESENT_RW);
    }
    // The high bits of an entry that are not address (NX, protection key)
    // never reach the address.
    m.poke64(0x4000 + 4 * 8, (1 << 63) | 0x77_7000 | PRESENT_RW);
    m
}

#[test]
fn long_mode_walks_four_levels_with_every_page_size() {
    let m = four_levels();
    let r = long(0x1000 | 0x18);
    let t = |linear| translate(&m, &r, linear);
    assert_eq!(t(HIGH + 0x20_0123), Ok(gpa(0x50_0123)));
    assert_eq!(t(HIGH + 0x20_3ffc), Ok(gpa(0x50_3ffc)));
    assert_eq!(t(HIGH + 0x20_4010), Ok(gpa(0x77_7010)));
    assert_eq!(t(HIGH + 0x41_2345), Ok(gpa(0x81_2345)), "2 MiB page");
    assert_eq!(t(HIGH + 0x7654_3210), Ok(gpa(0xf654_3210)), "1 GiB page");
}

#[test]
fn long_mode_reports_the_level_that_is_missing() {
    let m = four_levels();
    let r = long(0x1000);
    let t = |linear| translate(&m, &r, linear);
    assert_eq!(
        t(0x1000),
        Err(WalkError::NotPresent {
            linear: 0x1000,
            level: 4
        })
    );
    let a = HIGH + 0x8000_0000;
    assert_eq!(
        t(a),
        Err(WalkError::NotPresent {
            linear: a,
            level: 3
        })
    );
    let a = HIGH + 0x60_0000;
    assert_eq!(
        t(a),
        Err(WalkError::NotPresent {
            linear: a,
            level: 2
        })
    );
    let a = HIGH + 0x20_5000;
    assert_eq!(
        t(a),
        Err(WalkError::NotPresent {
            linear: a,
            level: 1
        })
    );
    let a = 0x0000_8000_0000_0000;
    assert_eq!(t(a), Err(WalkError::NonCanonical { linear: a }));
    assert_eq!(
        t(a).unwrap_err().to_string(),
        "linear address 0x800000000000 is not canonical"
    );
}

#[test]
fn a_large_page_bit_in_the_pml4_is_reserved() {
    let m = Pages::default();
    m.poke64(0x1000, PS | PRESENT_RW);
    assert_eq!(
        translate(&m, &long(0x1000), 0x1234),
        Err(WalkError::Reserved {
            linear: 0x1234,
            level: 4
        })
    );
}

#[test]
fn a_table_outside_guest_memory_is_unreadable() {
    let m = Pages::default();
    m.poke64(0x1000, 0x9000 | PRESENT_RW);
    let err = translate(&m, &long(0x1000), 0x1234).unwrap_err();
    assert_eq!(err, WalkError::Unreadable { gpa: gpa(0x9000) });
    assert_eq!(
        err.to_string(),
        "nothing readable in guest memory at GPA 0x9000"
    );
}

#[test]
fn five_levels_with_la57() {
    let m = Pages::default();
    let linear = 0x0001_0000_0000_5678u64;
    m.poke64(0x1000 + ((linear >> 48) & 0x1ff) * 8, 0x2000 | PRESENT_RW);
    m.poke64(0x2000, 0x3000 | PRESENT_RW);
    m.poke64(0x3000, 0x4000 | PRESENT_RW);
    m.poke64(0x4000, 0x5000 | PRESENT_RW);
    m.poke64(0x5000 + 5 * 8, 0xabc_d000 | PRESENT_RW);
    let mut r = long(0x1000);
    r.cr4 |= CR4_LA57;
    assert_eq!(translate(&m, &r, linear), Ok(gpa(0xabc_d678)));
    // Canonical under five levels, not under four.
    assert_eq!(
        translate(&m, &long(0x1000), linear),
        Err(WalkError::NonCanonical { linear })
    );
}

#[test]
fn without_paging_linear_is_physical() {
    let m = Pages::default();
    let protected = PagingRegs {
        cr0: 1,
        ..PagingRegs::default()
    };
    assert_eq!(
        translate(&m, &protected, 0x1_0010_0000),
        Ok(gpa(0x10_0000)),
        "32 bits wide outside long mode"
    );
}

#[test]
fn pae_walks_three_levels() {
    let m = Pages::default();
    // CR3 points at a 32-byte aligned PDPT inside a page.
    m.poke64(0x1020 + 3 * 8, 0x2000 | 1);
    m.poke64(0x2000 + 0x1f6 * 8, 0x3000 | PRESENT_RW);
    m.poke64(0x2000 + 0x1f7 * 8, 0x20_0000 | PS | PRESENT_RW);
    m.poke64(0x3000 + 0x1ff * 8, 0xfec0_0000 | PRESENT_RW);
    let r = PagingRegs {
        cr0: CR0_PG | 1,
        cr3: 0x1020,
        cr4: CR4_PAE,
        efer: 0,
    };
    assert_eq!(translate(&m, &r, 0xfedf_f010), Ok(gpa(0xfec0_0010)));
    assert_eq!(translate(&m, &r, 0xfee1_2345), Ok(gpa(0x21_2345)));
    assert_eq!(
        translate(&m, &r, 0x1000),
        Err(WalkError::NotPresent {
            linear: 0x1000,
            level: 3
        })
    );
}

#[test]
fn thirty_two_bit_paging_with_and_without_pse() {
    let m = Pages::default();
    m.poke32(0x1000 + 0x3fb * 4, 0x2000 | 3);
    m.poke32(0x2000 + 0x200 * 4, 0xfec0_0000 | 3);
    // A 4 MiB page with PSE-36 bits 20:13 = 0x12 (physical bits 39:32).
    m.poke32(0x1000 + 0x300 * 4, 0x0040_0000 | (0x12 << 13) | 0x83);
    let mut r = PagingRegs {
        cr0: CR0_PG | 1,
        cr3: 0x1000,
        cr4: CR4_PSE,
        efer: 0,
    };
    assert_eq!(translate(&m, &r, 0xfee0_0010), Ok(gpa(0xfec0_0010)));
    assert_eq!(translate(&m, &r, 0xc012_3456), Ok(gpa(0x12_0052_3456)));
    // Without CR4.PSE the PS bit is ignored: the entry points at a table
    // (bits 31:12, the PSE-36 bits included).
    r.cr4 = 0;
    m.poke32(0x0042_4000 + 0x123 * 4, 0x7000 | 3);
    assert_eq!(translate(&m, &r, 0xc012_3456), Ok(gpa(0x7456)));
}

#[test]
fn fetch_crosses_pages_that_are_not_contiguous() {
    let m = four_levels();
    let r = long(0x1000);
    // Linear pages 0x20_1000 and 0x20_2000 map to 0x50_1000, 0x50_2000;
    // make the second one point somewhere else entirely.
    m.poke64(0x4000 + 2 * 8, 0x66_6000 | PRESENT_RW);
    m.poke(0x50_1ffd, &[0x48, 0xc7, 0x00]);
    m.poke(0x66_6000, &[0xfe, 0xff, 0xff, 0xff, 0x90]);
    let mut buf = [0u8; MAX_INSN_LEN];
    assert_eq!(fetch(&m, &r, HIGH + 0x20_1ffd, &mut buf), Ok(15));
    assert_eq!(&buf[..8], &[0x48, 0xc7, 0x00, 0xfe, 0xff, 0xff, 0xff, 0x90]);
}

#[test]
fn fetch_stops_early_at_a_missing_second_page_but_not_at_the_first() {
    let m = four_levels();
    let r = long(0x1000);
    m.poke(0x50_3ffe, &[0x8b, 0x07]);
    let mut buf = [0u8; MAX_INSN_LEN];
    assert_eq!(fetch(&m, &r, HIGH + 0x20_3ffe, &mut buf), Ok(2));
    assert_eq!(&buf[..2], &[0x8b, 0x07]);
    let a = HIGH + 0x20_5000;
    assert_eq!(
        fetch(&m, &r, a, &mut buf),
        Err(WalkError::NotPresent {
            linear: a,
            level: 1
        })
    );
    // Translated, but no memory behind it.
    let a = HIGH + 0x20_4000;
    assert_eq!(
        fetch(&m, &r, a, &mut buf),
        Err(WalkError::Unreadable {
            gpa: gpa(0x77_7000)
        })
    );
}

#[test]
fn fetch_wraps_at_four_gib_outside_long_mode() {
    let m = Pages::default();
    m.poke(0xffff_fffe, &[0x8b, 0x07]);
    m.poke(0, &[0x90; 13]);
    let r = PagingRegs {
        cr0: 1,
        ..PagingRegs::default()
    };
    let mut buf = [0u8; MAX_INSN_LEN];
    assert_eq!(fetch(&m, &r, 0xffff_fffe, &mut buf), Ok(15));
    assert_eq!(&buf[..3], &[0x8b, 0x07, 0x90]);
}
