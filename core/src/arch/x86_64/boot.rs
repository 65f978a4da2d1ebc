//! The x86_64 guest's boot structures: what the loader puts in guest RAM so
//! the guest can start directly in 64-bit long mode at the image's entry.
//!
//! Declared layout (guest-physical, all inside guest RAM, below the image):
//!
//! | GPA | what |
//! |---|---|
//! | `0x1000` | GDT: null, 64-bit code (selector 0x08), data (0x10) |
//! | `0x2000` | PML4 |
//! | `0x3000` | PDPT |
//! | `0x4000..0x8000` | four page directories: 0..4 GiB identity, 2 MiB pages |
//! | `..0x10_0000` | the stack, growing down from 1 MiB (faulted in on use) |
//! | `0x10_0000` | the image, entered at its first byte |
//!
//! The identity map covers the emulated pflash at 0xFFC0_0000 as well as
//! RAM; which guest-physical pages really exist is the hypervisor's
//! business (stage-2), not the guest page tables'.

use crate::addr::GuestPhysAddr;
use crate::arch::x86_64::multiboot::{self, HeaderError, LoadPlan, MultibootError};
use crate::image::ImageError;
use crate::layout::Region;

/// GPA of the GDT.
pub const GDT: u64 = 0x1000;
/// GPA of the PML4, the guest's CR3.
pub const PML4: u64 = 0x2000;
/// GPA of the page-directory-pointer table.
pub const PDPT: u64 = 0x3000;
/// GPA of the first page directory.
pub const PD: u64 = 0x4000;
/// Number of page directories (each maps 1 GiB).
pub const PD_COUNT: u64 = 4;
/// The guest's initial RSP (the stack grows down from here).
pub const STACK_TOP: u64 = 0x10_0000;
/// GPA where the image is loaded and entered.
pub const IMAGE: u64 = 0x10_0000;

/// Selector of the 64-bit code descriptor.
pub const CODE_SELECTOR: u16 = 0x08;
/// Selector of the data descriptor.
pub const DATA_SELECTOR: u16 = 0x10;
/// GDT limit (three 8-byte descriptors, minus one).
pub const GDT_LIMIT: u32 = 3 * 8 - 1;

/// Long-mode CR0 the guest starts with: PE, ET, NE, WP, PG.
pub const CR0: u64 = 1 << 0 | 1 << 4 | 1 << 5 | 1 << 16 | 1 << 31; // PE ET NE WP PG
/// CR4 the guest starts with: PAE.
pub const CR4: u64 = 1 << 5;
/// EFER: LME, LMA, NXE, and SVME, which the VMRUN consistency checks want
/// set in the guest EFER.
pub const EFER: u64 = 1 << 8 | 1 << 10 | 1 << 11 | 1 << 12;

const P: u64 = 1 << 0;
const RW: u64 = 1 << 1;
const PS: u64 = 1 << 7;

/// Every boot page and its contents, as 512 little-endian u64 words.
pub fn pages() -> impl Iterator<Item = (GuestPhysAddr, [u64; 512])> {
    let gdt = {
        let mut t = [0u64; 512];
        t[1] = 0x00af_9b00_0000_ffff; // code: P, DPL 0, exec/read, L, G
        t[2] = 0x00cf_9300_0000_ffff; // data: P, DPL 0, read/write, D/B, G
        (GDT, t)
    };
    let pml4 = {
        let mut t = [0u64; 512];
        t[0] = PDPT | P | RW;
        (PML4, t)
    };
    let pdpt = {
        let mut t = [0u64; 512];
        for i in 0..PD_COUNT {
            t[i as usize] = (PD + i * 0x1000) | P | RW;
        }
        (PDPT, t)
    };
    let pds = (0..PD_COUNT).map(|i| {
        let mut t = [0u64; 512];
        for (j, e) in t.iter_mut().enumerate() {
            *e = ((i << 30) + ((j as u64) << 21)) | P | RW | PS;
        }
        (PD + i * 0x1000, t)
    });
    [gdt, pml4, pdpt]
        .into_iter()
        .chain(pds)
        .map(|(gpa, words)| (GuestPhysAddr::new(gpa), words))
}

/// EFER for a Multiboot start: only SVME (bit 12), which VMRUN requires;
/// the guest turns on long mode itself.
pub const EFER_SVME: u64 = 1 << 12;
/// CR0 for a Multiboot start: PE (bit 0) and ET (bit 4), paging off.
pub const CR0_PROTECTED: u64 = 1 << 0 | 1 << 4;

/// Where the loader puts the Multiboot information structure: low RAM,
/// below the 1 MiB that `axplat-x86-pc` (and Linux) keep for themselves,
/// clear of the long-mode boot structures above.
pub const MULTIBOOT_INFO: u64 = 0x9000;

/// How an x86_64 guest image starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// No Multiboot header: the image is placed at [`IMAGE`] and entered
    /// in long mode on the boot structures above.
    LongMode,
    /// A Multiboot (v1) kernel: loaded where its header says, entered in
    /// 32-bit protected mode with paging off, EAX = `0x2BADB002`, EBX = the
    /// information structure at [`MULTIBOOT_INFO`].
    Multiboot(LoadPlan),
}

/// Decides how `image` starts: by its Multiboot header if it has one (which
/// must then be usable and place the image, its bss and its entry inside
/// `ram`), else in long mode.
pub fn start_for(image: &[u8], ram: &Region) -> Result<Start, ImageError> {
    let header = match multiboot::find_header(image) {
        Ok(h) => h,
        Err(HeaderError::NotFound) => return Ok(Start::LongMode),
        Err(e) => return Err(ImageError::Multiboot(MultibootError::Header(e))),
    };
    let plan = header
        .load_plan(image.len() as u64)
        .map_err(|e| ImageError::Multiboot(MultibootError::Plan(e)))?;
    let inside = |a: GuestPhysAddr| a >= ram.gpa && a <= ram.end();
    if !inside(plan.load) || !inside(plan.end()) || !ram.contains(plan.entry) {
        return Err(ImageError::MultibootOutsideRam {
            load: plan.load,
            end: plan.end(),
            entry: plan.entry,
        });
    }
    Ok(Start::Multiboot(plan))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::{X86_Q35, test_layout};

    fn pc() -> crate::layout::GuestLayout<'static> {
        test_layout(&X86_Q35)
    }

    /// Walks the boot page tables like the MMU (2 MiB pages).
    fn translate(va: u64) -> Option<u64> {
        let tables: std::collections::HashMap<u64, [u64; 512]> =
            pages().map(|(gpa, t)| (gpa.as_u64(), t)).collect();
        let pml4e = tables[&PML4][(va >> 39 & 511) as usize];
        let pdpte = tables.get(&(pml4e & !0xfff))?[(va >> 30 & 511) as usize];
        let pde = tables.get(&(pdpte & !0xfff))?[(va >> 21 & 511) as usize];
        (pde & P != 0 && pde & PS != 0)
            .then_some((pde & !0x1f_ffff & !(1 << 63)) | (va & 0x1f_ffff))
    }

    #[test]
    fn page_tables_identity_map_ram_and_pflash() {
        assert_eq!(translate(IMAGE), Some(IMAGE));
        assert_eq!(translate(STACK_TOP - 8), Some(STACK_TOP - 8));
        assert_eq!(translate(0xffc0_0000), Some(0xffc0_0000));
        assert_eq!(translate(0x3000_0123), Some(0x3000_0123));
        assert_eq!(translate(0x1_0000_0000), None, "nothing above 4 GiB");
    }

    #[test]
    fn boot_structures_sit_in_guest_ram_below_the_image() {
        let ram = pc().ram().unwrap();
        for (gpa, _) in pages() {
            assert!(
                ram.contains(gpa) && gpa.as_u64() + 0x1000 <= IMAGE,
                "{gpa:#x}"
            );
        }
        assert_eq!(pc().entry.as_u64(), IMAGE);
        const { assert!(STACK_TOP <= IMAGE && STACK_TOP > PD + PD_COUNT * 0x1000) };
        assert_eq!(pages().count(), 7);
    }

    #[test]
    fn gdt_descriptors_are_long_mode_code_and_data() {
        let (_, gdt) = pages().next().unwrap();
        assert_eq!(gdt[0], 0);
        let code = gdt[(CODE_SELECTOR / 8) as usize];
        assert_eq!(code >> 40 & 0xff, 0x9b, "present ring-0 code");
        assert_eq!(code >> 53 & 1, 1, "L bit");
        assert_eq!(gdt[(DATA_SELECTOR / 8) as usize] >> 40 & 0xff, 0x93);
    }

    #[test]
    fn control_registers_enable_long_mode_paging() {
        assert_eq!(CR0 & 0x8000_0001, 0x8000_0001);
        assert_eq!(CR4 & 0x20, 0x20);
        assert_eq!(EFER & 0x1d00, 0x1d00);
    }

    /// A flat image whose Multiboot header (at offset 0) says: load the
    /// file at `load`, enter at `entry`.
    fn multiboot_image(load: u32, entry: u32, size: usize) -> std::vec::Vec<u8> {
        let magic = multiboot::HEADER_MAGIC;
        let flags: u32 = 1 << 16;
        let words = [
            magic,
            flags,
            0u32.wrapping_sub(magic).wrapping_sub(flags),
            load, // header_addr: the header is the first byte
            load, // load_addr
            0,    // load_end_addr: the whole file
            0,    // bss_end_addr: no bss
            entry,
        ];
        let mut image: std::vec::Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        image.resize(size, 0x90);
        image
    }

    #[test]
    fn a_multiboot_header_decides_where_the_image_goes() {
        let ram = pc().ram().unwrap();
        let image = multiboot_image(0x20_0000, 0x20_000c, 0x3000);
        let Ok(Start::Multiboot(plan)) = start_for(&image, ram) else {
            panic!("not a multiboot start")
        };
        assert_eq!(plan.load, GuestPhysAddr::new(0x20_0000));
        assert_eq!(plan.entry, GuestPhysAddr::new(0x20_000c));
        assert_eq!((plan.file_offset, plan.file_size), (0, 0x3000));
        // No header: long mode as before.
        assert_eq!(start_for(&[0x90; 64], ram), Ok(Start::LongMode));
        // A header placing the kernel past guest RAM is refused by name.
        let far = multiboot_image(0x1000_0000, 0x1000_0000, 0x1000);
        assert_eq!(
            start_for(&far, ram).unwrap_err().to_string(),
            "the Multiboot header asks to load 0x10000000..0x10001000 and enter at 0x10000000, which is not all guest RAM"
        );
        // A broken checksum is not silently a long-mode image.
        let mut bad = image.clone();
        bad[8] ^= 1;
        assert!(matches!(
            start_for(&bad, ram),
            Err(ImageError::Multiboot(MultibootError::Header(
                HeaderError::BadChecksum { .. }
            )))
        ));
    }
}
