//! The generic stage-2 walker: the [`Format`] and [`Host`] traits, the
//! [`AddressSpace`] that builds, walks and tears down a table tree of 4 KiB
//! pages and 2 MiB blocks, and [`MapError`]. Nothing here knows a
//! descriptor encoding.

use crate::addr::{GuestPhysAddr, HostPhysAddr};
use crate::layout::{Backing, Perms};
use crate::{BLOCK_SIZE, PAGE_SIZE};

/// Entries in one 4 KiB table of 64-bit descriptors.
const ENTRIES_PER_PAGE: usize = 512;

/// The level whose leaves are 2 MiB blocks ([`BLOCK_SIZE`]): the one above
/// the 4 KiB pages, in every format here (4 KiB tables of 512 entries).
pub const BLOCK_LEVEL: usize = 1;

/// 4 KiB frames in one 2 MiB block: what [`Host::alloc_block`] hands out
/// and `free_frames` takes back for a block.
pub const BLOCK_PAGES: usize = (BLOCK_SIZE / PAGE_SIZE) as usize;

/// Bytes one leaf at `level` maps: 4 KiB at level 0, 2 MiB at level 1.
pub(super) const fn leaf_size(level: usize) -> u64 {
    PAGE_SIZE << (9 * level)
}

/// A stage-2 descriptor format.
pub trait Format {
    /// Name used in diagnostics ("Sv39x4", ...).
    const NAME: &'static str;
    /// Number of levels; level `LEVELS - 1` is the root, level 0 maps 4 KiB.
    const LEVELS: usize;
    /// Size of the root table in 4 KiB pages (it must also be aligned to
    /// this many pages).
    const ROOT_PAGES: usize;
    /// Width of the guest-physical address space the format translates.
    const GPA_BITS: u32;

    /// Descriptor pointing at a next-level table at `hpa`.
    fn table(hpa: HostPhysAddr) -> u64;
    /// Descriptor mapping guest memory from a slot at `level`: one 4 KiB
    /// page at level 0, one 2 MiB block at [`BLOCK_LEVEL`]; `hpa` is
    /// aligned to that size. `device` asks for device (uncached,
    /// unspeculated) memory where the format has that notion; `owned`
    /// marks frames the address space must free.
    fn leaf(level: usize, hpa: HostPhysAddr, perms: Perms, device: bool, owned: bool) -> u64;
    /// Whether a descriptor is valid.
    fn is_valid(desc: u64) -> bool;
    /// Whether a valid descriptor at `level` (> 0) points at a table
    /// rather than mapping a block.
    fn is_table(desc: u64, level: usize) -> bool;
    /// The host-physical address a valid descriptor points at: a table, a
    /// page, or the start of a block.
    fn address(desc: u64) -> HostPhysAddr;
    /// Whether a leaf was created with `owned`.
    fn is_owned(desc: u64) -> bool;
    /// Permissions of a leaf (page or block).
    fn perms(desc: u64) -> Perms;
}

/// What the stage-2 code needs from the host kernel.
///
/// # Safety
/// `frame_ptr` must return a pointer valid for reads and writes of the whole
/// frame for every frame returned by `alloc_frames` or `alloc_block` and not
/// yet freed, given its address or that of any 4 KiB page inside it; frames
/// must not be in use by anything else while allocated.
pub unsafe trait Host {
    /// Allocates `pages` contiguous 4 KiB frames aligned to `pages` pages;
    /// returns the host-physical address of the first.
    fn alloc_frames(&mut self, pages: usize) -> Option<HostPhysAddr>;
    /// Allocates one 2 MiB frame for a block of guest RAM: [`BLOCK_PAGES`]
    /// physically contiguous pages, aligned to 2 MiB. `None` when the host
    /// has no such run to spare; that is no error, the fault is then served
    /// with a 4 KiB page. The address space zeroes the block before the
    /// guest sees it, and gives it back with `free_frames(hpa, BLOCK_PAGES)`.
    fn alloc_block(&mut self) -> Option<HostPhysAddr>;
    /// Returns frames obtained from `alloc_frames` or `alloc_block`.
    fn free_frames(&mut self, hpa: HostPhysAddr, pages: usize);
    /// The host pointer through which host-physical `hpa` is reached.
    fn frame_ptr(&self, hpa: HostPhysAddr) -> *mut u8;
    /// Whether `hpa` lies in the host's own RAM, which `frame_ptr` reaches:
    /// every frame the address space allocated does. A pass-through
    /// mapping's device memory does not, and the host never reads or
    /// writes it for the guest (it may not even be mapped for the host).
    fn is_ram(&self, hpa: HostPhysAddr) -> bool;
    /// Drops cached stage-2 translations for the page or block at `gpa`.
    fn invalidate(&mut self, gpa: GuestPhysAddr);
    /// Makes what the host wrote into the 4 KiB guest frame `hpa` (zeroes,
    /// an image) visible to a guest that may run with its caches off: on
    /// aarch64, clean the frame to the point of coherency and invalidate
    /// the instruction cache. Nothing to do where caches are coherent. A
    /// block is published one 4 KiB page at a time.
    fn publish_frame(&mut self, _hpa: HostPhysAddr) {}
}

/// Why a stage-2 change failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The host has no frame left.
    OutOfMemory,
    /// The page is already mapped (a permission fault, not a missing page).
    AlreadyMapped {
        /// The page's first address.
        gpa: GuestPhysAddr,
    },
    /// The address is beyond what the format translates.
    OutOfRange {
        /// The address asked for.
        gpa: GuestPhysAddr,
    },
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MapError::OutOfMemory => f.write_str("the host is out of memory for guest pages"),
            MapError::AlreadyMapped { gpa } => write!(f, "guest page {gpa:#x} is already mapped"),
            MapError::OutOfRange { gpa } => write!(
                f,
                "guest address {gpa:#x} is beyond the stage-2 address space"
            ),
        }
    }
}

/// A guest's stage-2 address space: a table tree plus the frames it owns.
pub struct AddressSpace<F: Format, H: Host> {
    root: HostPhysAddr,
    host: H,
    mapped_pages: usize,
    mapped_blocks: usize,
    _format: core::marker::PhantomData<F>,
}

impl<F: Format, H: Host> AddressSpace<F, H> {
    /// Creates an empty address space with a zeroed root table.
    pub fn new(mut host: H) -> Result<Self, MapError> {
        let root = alloc_zeroed(&mut host, F::ROOT_PAGES)?;
        Ok(Self {
            root,
            host,
            mapped_pages: 0,
            mapped_blocks: 0,
            _format: core::marker::PhantomData,
        })
    }

    /// Host-physical address of the root table (for `hgatp`/`VTTBR`/`nCR3`).
    pub fn root(&self) -> HostPhysAddr {
        self.root
    }

    /// Number of 4 KiB guest pages currently mapped.
    pub fn mapped_pages(&self) -> usize {
        self.mapped_pages
    }

    /// Number of 2 MiB guest blocks currently mapped.
    pub fn mapped_blocks(&self) -> usize {
        self.mapped_blocks
    }

    /// The host this address space takes its frames from.
    pub fn host(&mut self) -> &mut H {
        &mut self.host
    }

    fn index(gpa: GuestPhysAddr, level: usize) -> usize {
        let entries = if level == F::LEVELS - 1 {
            ENTRIES_PER_PAGE * F::ROOT_PAGES
        } else {
            ENTRIES_PER_PAGE
        };
        ((gpa.as_u64() >> (12 + 9 * level)) as usize) & (entries - 1)
    }

    fn check_range(gpa: GuestPhysAddr) -> Result<(), MapError> {
        if F::GPA_BITS < 64 && gpa.as_u64() >> F::GPA_BITS != 0 {
            Err(MapError::OutOfRange { gpa })
        } else {
            Ok(())
        }
    }

    /// Pointer to entry `index` of the table at `table`.
    pub(super) fn slot(&self, table: HostPhysAddr, index: usize) -> *mut u64 {
        // `table` is a live table frame, `index` is within it (the root
        // spans ROOT_PAGES contiguous frames).
        self.host.frame_ptr(table).cast::<u64>().wrapping_add(index)
    }

    /// The slot at `level` for `gpa`, creating the tables above it if
    /// `create`. A leaf on the way (a block over `gpa`) is `AlreadyMapped`.
    fn slot_at(
        &mut self,
        gpa: GuestPhysAddr,
        level: usize,
        create: bool,
    ) -> Result<Option<*mut u64>, MapError> {
        Self::check_range(gpa)?;
        let mut table = self.root;
        for above in (level + 1..F::LEVELS).rev() {
            let slot = self.slot(table, Self::index(gpa, above));
            // SAFETY: `slot` points into a table frame this address space owns.
            let desc = unsafe { slot.read_volatile() };
            table = if F::is_valid(desc) {
                if !F::is_table(desc, above) {
                    return Err(MapError::AlreadyMapped {
                        gpa: gpa.page_base(),
                    });
                }
                F::address(desc)
            } else if create {
                let next = alloc_zeroed(&mut self.host, 1)?;
                // SAFETY: as above; the new table is zeroed before it is linked.
                unsafe { slot.write_volatile(F::table(next)) };
                next
            } else {
                return Ok(None);
            };
        }
        Ok(Some(self.slot(table, Self::index(gpa, level))))
    }

    /// The leaf mapping `gpa`: its slot, its level and the descriptor.
    fn leaf_of(&self, gpa: GuestPhysAddr) -> Option<(*mut u64, usize, u64)> {
        Self::check_range(gpa).ok()?;
        let mut table = self.root;
        for level in (0..F::LEVELS).rev() {
            let slot = self.slot(table, Self::index(gpa, level));
            // SAFETY: `table` is a table frame this address space owns.
            let desc = unsafe { slot.read_volatile() };
            if !F::is_valid(desc) {
                return None;
            }
            if level == 0 || !F::is_table(desc, level) {
                return Some((slot, level, desc));
            }
            table = F::address(desc);
        }
        None
    }

    /// Fills the empty `slot` at `level` with a leaf for guest `gpa` (the
    /// start of the page or block) at host `hpa`, and counts it. Frames
    /// the host wrote (`owned` ones) are published first, page by page.
    fn install(
        &mut self,
        slot: *mut u64,
        level: usize,
        (gpa, hpa): (GuestPhysAddr, HostPhysAddr),
        perms: Perms,
        device: bool,
        owned: bool,
    ) {
        if owned {
            let mut page = hpa;
            while page < hpa + leaf_size(level) {
                self.host.publish_frame(page);
                page += PAGE_SIZE;
            }
        }
        // SAFETY: `slot` points into a table frame this address space owns.
        unsafe { slot.write_volatile(F::leaf(level, hpa, perms, device, owned)) };
        if level == 0 {
            self.mapped_pages += 1;
        } else {
            self.mapped_blocks += 1;
        }
        self.host.invalidate(gpa);
    }

    /// Maps the page containing `gpa` to host page `hpa`.
    pub fn map_page(
        &mut self,
        gpa: GuestPhysAddr,
        hpa: HostPhysAddr,
        perms: Perms,
        device: bool,
        owned: bool,
    ) -> Result<(), MapError> {
        // Cannot fail: with `create` set, `slot_at` allocates every missing
        // table or returns the allocation error through `?`.
        let slot = self.slot_at(gpa, 0, true)?.expect("created");
        // SAFETY: `slot` points into a table frame this address space owns.
        if F::is_valid(unsafe { slot.read_volatile() }) {
            return Err(MapError::AlreadyMapped {
                gpa: gpa.page_base(),
            });
        }
        let at = (gpa.page_base(), hpa.page_base());
        self.install(slot, 0, at, perms, device, owned);
        Ok(())
    }

    /// Backs the page containing `gpa` as `backing` says; returns the
    /// host-physical page now behind it.
    pub fn map_backed(
        &mut self,
        gpa: GuestPhysAddr,
        backing: Backing,
        perms: Perms,
    ) -> Result<HostPhysAddr, MapError> {
        let (hpa, device, owned) = match backing {
            Backing::FreshRam => (alloc_zeroed(&mut self.host, 1)?, false, true),
            Backing::Device { hpa } => (hpa, true, false),
            Backing::Content(content) => {
                let hpa = alloc_zeroed(&mut self.host, 1)?;
                let len = content.len().min(PAGE_SIZE as usize);
                // SAFETY: the frame was just allocated for us and is PAGE_SIZE long.
                unsafe {
                    core::ptr::copy_nonoverlapping(content.as_ptr(), self.host.frame_ptr(hpa), len)
                };
                (hpa, false, true)
            }
        };
        match self.map_page(gpa, hpa, perms, device, owned) {
            Ok(()) => Ok(hpa),
            Err(e) => {
                if owned {
                    self.host.free_frames(hpa, 1);
                }
                Err(e)
            }
        }
    }

    /// Backs the whole 2 MiB block holding `gpa` with a fresh, zeroed host
    /// block mapped with `perms` (one leaf at [`BLOCK_LEVEL`]), if nothing
    /// in the block is mapped yet and the host has a block to give; returns
    /// the host block. `Ok(None)` when either is not so (the block's slot
    /// holds a table of pages, or a block, or the host refused): the caller
    /// then maps a 4 KiB page instead. The tables above the block are
    /// created either way, as that page needs them too.
    pub fn map_fresh_block(
        &mut self,
        gpa: GuestPhysAddr,
        perms: Perms,
    ) -> Result<Option<HostPhysAddr>, MapError> {
        let base = gpa.align_down(BLOCK_SIZE);
        // Cannot fail: as above, `create` makes the tables or
        // returns the error.
        let slot = self.slot_at(base, BLOCK_LEVEL, true)?.expect("created");
        // SAFETY: `slot` points into a table frame this address space owns.
        if F::is_valid(unsafe { slot.read_volatile() }) {
            return Ok(None);
        }
        let Some(hpa) = self.host.alloc_block() else {
            return Ok(None);
        };
        assert_eq!(
            hpa.align_down(BLOCK_SIZE),
            hpa,
            "the host gave a block that is not 2 MiB aligned"
        );
        // SAFETY: the host just gave us this block, BLOCK_PAGES pages long.
        unsafe { zero_pages(self.host.frame_ptr(hpa), BLOCK_PAGES) };
        self.install(slot, BLOCK_LEVEL, (base, hpa), perms, false, true);
        Ok(Some(hpa))
    }

    /// Removes the mapping that covers `gpa`: its 4 KiB page, or the whole
    /// 2 MiB block it lies in. Frees the frames if the address space owns
    /// them; returns the host-physical start of what was mapped and its
    /// size in bytes.
    pub fn unmap(&mut self, gpa: GuestPhysAddr) -> Option<(HostPhysAddr, u64)> {
        let (slot, level, desc) = self.leaf_of(gpa)?;
        // SAFETY: `slot` points into a table frame this address space owns.
        unsafe { slot.write_volatile(0) };
        if level == 0 {
            self.mapped_pages -= 1;
        } else {
            self.mapped_blocks -= 1;
        }
        let size = leaf_size(level);
        self.host.invalidate(gpa.align_down(size));
        let hpa = F::address(desc);
        if F::is_owned(desc) {
            self.host.free_frames(hpa, (size / PAGE_SIZE) as usize);
        }
        Some((hpa, size))
    }

    /// The host-physical address and permissions behind `gpa`, if mapped
    /// (by a page or a block).
    pub fn translate(&self, gpa: GuestPhysAddr) -> Option<(HostPhysAddr, Perms)> {
        let (_, level, desc) = self.leaf_of(gpa)?;
        let offset = gpa.as_u64() & (leaf_size(level) - 1);
        Some((F::address(desc) + offset, F::perms(desc)))
    }

    /// Copies `data` into guest memory at `gpa`; every page touched must be
    /// mapped. Returns the number of bytes copied before the first hole.
    pub fn write(&mut self, gpa: GuestPhysAddr, data: &[u8]) -> usize {
        let done = self.copy(gpa, data.len(), |host, off, len| {
            // SAFETY: `host` is a mapped guest frame, `len` stays within its page.
            unsafe { core::ptr::copy_nonoverlapping(data[off..].as_ptr(), host, len) }
        });
        let mut page = gpa.page_base();
        while page < gpa + done as u64 {
            if let Some((hpa, _)) = self.translate(page) {
                self.host.publish_frame(hpa);
            }
            page += PAGE_SIZE;
        }
        done
    }

    /// Copies guest memory at `gpa` into `buf`; returns the number of bytes
    /// copied before the first unmapped page.
    pub fn read(&self, gpa: GuestPhysAddr, buf: &mut [u8]) -> usize {
        let len = buf.len();
        let dst = buf.as_mut_ptr();
        self.copy(gpa, len, |host, off, n| {
            // SAFETY: `host` is a mapped guest frame, `n` stays within its page
            // and `off + n <= buf.len()`.
            unsafe { core::ptr::copy_nonoverlapping(host, dst.add(off), n) }
        })
    }

    /// Calls `f(host pointer, offset, length)` for each piece of
    /// `[gpa, gpa + len)` that stays inside one 4 KiB page (of a page
    /// mapping or of a block), up to the first page that is unmapped or not
    /// host RAM (a pass-through device).
    fn copy(
        &self,
        gpa: GuestPhysAddr,
        len: usize,
        mut f: impl FnMut(*mut u8, usize, usize),
    ) -> usize {
        let mut done = 0;
        while done < len {
            let at = gpa + done as u64;
            let Some((hpa, _)) = self.translate(at) else {
                break;
            };
            // A pass-through device page is the guest's to touch, not the
            // host's: reading it could fault in the host.
            if !self.host.is_ram(hpa.page_base()) {
                break;
            }
            let n = (PAGE_SIZE - at.page_offset()).min((len - done) as u64) as usize;
            f(
                self.host
                    .frame_ptr(hpa.page_base())
                    .wrapping_add(hpa.page_offset() as usize),
                done,
                n,
            );
            done += n;
        }
        done
    }

    fn free_tree(&mut self, table: HostPhysAddr, level: usize, entries: usize) {
        for i in 0..entries {
            // SAFETY: `table` is a table frame this address space owns.
            let desc = unsafe { self.slot(table, i).read_volatile() };
            if !F::is_valid(desc) {
                continue;
            }
            if level > 0 && F::is_table(desc, level) {
                self.free_tree(F::address(desc), level - 1, ENTRIES_PER_PAGE);
                self.host.free_frames(F::address(desc), 1);
            } else if F::is_owned(desc) {
                let pages = (leaf_size(level) / PAGE_SIZE) as usize;
                self.host.free_frames(F::address(desc), pages);
            }
        }
    }
}

impl<F: Format, H: Host> AddressSpace<F, H> {
    fn teardown(&mut self) {
        self.free_tree(self.root, F::LEVELS - 1, ENTRIES_PER_PAGE * F::ROOT_PAGES);
        self.host.free_frames(self.root, F::ROOT_PAGES);
    }

    /// Frees every table and owned frame and gives the host back.
    pub fn into_host(self) -> H {
        let mut this = core::mem::ManuallyDrop::new(self);
        this.teardown();
        // SAFETY: `this` is never used or dropped again after the host is
        // moved out of it.
        unsafe { core::ptr::read(&this.host) }
    }
}

impl<F: Format, H: Host> Drop for AddressSpace<F, H> {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn alloc_zeroed<H: Host>(host: &mut H, pages: usize) -> Result<HostPhysAddr, MapError> {
    let hpa = host.alloc_frames(pages).ok_or(MapError::OutOfMemory)?;
    // SAFETY: the frames were just allocated and span `pages` pages.
    unsafe { zero_pages(host.frame_ptr(hpa), pages) };
    Ok(hpa)
}

/// Zeroes `pages` whole pages at `ptr`, eight 64-bit stores per turn.
///
/// Every nested page fault on RAM pays for this, and it was most of the
/// fault's cost: the library `memset` stores one word per loop turn
/// (measured with `cargo xtask bench` under `-icount shift=0`, see the
/// README). The stores are volatile so the compiler cannot turn the loop
/// back into a `memset` call.
///
/// # Safety
/// `ptr` must be 8-byte aligned and valid for writes of `pages` pages.
unsafe fn zero_pages(ptr: *mut u8, pages: usize) {
    let words = ptr.cast::<u64>();
    let count = pages * PAGE_SIZE as usize / 8;
    let mut i = 0;
    while i < count {
        for j in 0..8 {
            // SAFETY: `i + j < count` (count is a multiple of 8), within the
            // caller's pages.
            unsafe { words.add(i + j).write_volatile(0) };
        }
        i += 8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Perms;
    use crate::stage2::Sv39x4;
    use crate::stage2::test_host::{ArenaHost, BASE, gpa, hpa};

    type Space = AddressSpace<Sv39x4, ArenaHost>;

    #[test]
    fn map_then_translate_and_read_back() {
        let mut s = Space::new(ArenaHost::new(64)).unwrap();
        let frame = s
            .map_backed(gpa(0x8020_0123), Backing::FreshRam, Perms::RWX)
            .unwrap();
        assert_eq!(s.translate(gpa(0x8020_0000)), Some((frame, Perms::RWX)));
        assert_eq!(
            s.translate(gpa(0x8020_0abc)),
            Some((frame + 0xabc, Perms::RWX))
        );
        assert_eq!(s.translate(gpa(0x8020_1000)), None);
        assert_eq!(s.mapped_pages(), 1);
        assert_eq!(s.host.invalidated, vec![gpa(0x8020_0000)]);
        // A fresh RAM page is zeroed even though the arena was filled with 0xAA.
        let mut buf = [0xffu8; 16];
        assert_eq!(
            s.read(gpa(0x8020_0ff8), &mut buf),
            8,
            "stops at the unmapped next page"
        );
        assert_eq!(&buf[..8], &[0; 8]);
        assert_eq!(s.write(gpa(0x8020_0ffc), b"pfld"), 4);
        let mut back = [0u8; 4];
        s.read(gpa(0x8020_0ffc), &mut back);
        assert_eq!(&back, b"pfld");
    }

    #[test]
    fn host_written_frames_are_published_before_the_guest_sees_them() {
        let mut s = Space::new(ArenaHost::new(64)).unwrap();
        let a = s
            .map_backed(gpa(0x8020_0000), Backing::FreshRam, Perms::RWX)
            .unwrap();
        let b = s
            .map_backed(gpa(0x8020_1000), Backing::FreshRam, Perms::RWX)
            .unwrap();
        // A device page is the device's, not host-written memory.
        s.map_backed(
            gpa(0x2200_0000),
            Backing::Device {
                hpa: hpa(0x2200_0000),
            },
            Perms::READ,
        )
        .unwrap();
        assert_eq!(s.host.published, vec![a, b], "zeroed frames, at map time");
        // An image copied across both pages publishes both again.
        assert_eq!(s.write(gpa(0x8020_0ffe), b"abcd"), 4);
        assert_eq!(s.host.published, vec![a, b, a, b]);
    }

    #[test]
    fn the_host_never_reads_or_writes_a_pass_through_device_page() {
        // Before, a read of guest memory the guest had mapped to device
        // memory (pflash) went through the host's pointer to that device
        // page, which the host need not map: a guest could make the host
        // fault. Now such a page ends a read or write like an unmapped one.
        let mut s = Space::new(ArenaHost::new(64)).unwrap();
        s.map_backed(gpa(0x2200_0000), Backing::FreshRam, Perms::RWX)
            .unwrap();
        s.map_backed(
            gpa(0x2200_1000),
            Backing::Device {
                hpa: hpa(0x2200_0000),
            },
            Perms::READ,
        )
        .unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(s.read(gpa(0x2200_1000), &mut buf), 0);
        assert_eq!(s.read(gpa(0x2200_0ffc), &mut buf), 4, "stops at the device");
        assert_eq!(s.write(gpa(0x2200_1000), b"x"), 0);
        assert!(s.translate(gpa(0x2200_1000)).is_some(), "still mapped");
    }

    #[test]
    fn writes_and_reads_cross_page_boundaries() {
        let mut s = Space::new(ArenaHost::new(64)).unwrap();
        s.map_backed(gpa(0x8000_0000), Backing::FreshRam, Perms::RWX)
            .unwrap();
        s.map_backed(gpa(0x8000_1000), Backing::FreshRam, Perms::RWX)
            .unwrap();
        let data: Vec<u8> = (0..100u8).collect();
        assert_eq!(s.write(gpa(0x8000_0fd0), &data), 100);
        let mut back = vec![0u8; 100];
        assert_eq!(s.read(gpa(0x8000_0fd0), &mut back), 100);
        assert_eq!(back, data);
    }

    #[test]
    fn double_map_is_reported_not_overwritten() {
        let mut s = Space::new(ArenaHost::new(64)).unwrap();
        let first = s
            .map_backed(gpa(0x8000_0000), Backing::FreshRam, Perms::RW)
            .unwrap();
        assert_eq!(
            s.map_backed(gpa(0x8000_0800), Backing::FreshRam, Perms::RW),
            Err(MapError::AlreadyMapped {
                gpa: gpa(0x8000_0000)
            })
        );
        assert_eq!(s.translate(gpa(0x8000_0000)).unwrap().0, first);
        // The frame allocated for the failed attempt was given back.
        assert_eq!(s.host.freed, 1);
    }

    #[test]
    fn device_pages_map_the_given_address_and_are_not_freed() {
        let mut s = Space::new(ArenaHost::new(64)).unwrap();
        let frame = s
            .map_backed(
                gpa(0x2200_0000),
                Backing::Device {
                    hpa: hpa(0x2200_0000),
                },
                Perms::READ,
            )
            .unwrap();
        assert_eq!(frame, hpa(0x2200_0000));
        assert_eq!(
            s.translate(gpa(0x2200_0004)),
            Some((hpa(0x2200_0004), Perms::READ))
        );
        let freed = s.host.freed;
        assert_eq!(
            s.unmap(gpa(0x2200_0000)),
            Some((hpa(0x2200_0000), PAGE_SIZE))
        );
        assert_eq!(
            s.host.freed, freed,
            "device memory is not the host's to free"
        );
        assert_eq!(s.translate(gpa(0x2200_0000)), None);
        assert_eq!(s.mapped_pages(), 0);
    }

    #[test]
    fn emulated_content_lands_at_the_start_of_the_page() {
        let mut s = Space::new(ArenaHost::new(64)).unwrap();
        s.map_backed(gpa(0xffc0_0000), Backing::Content(b"pfld"), Perms::READ)
            .unwrap();
        let mut buf = [0u8; 8];
        s.read(gpa(0xffc0_0000), &mut buf);
        assert_eq!(&buf, b"pfld\0\0\0\0");
        assert_eq!(
            u32::from_le_bytes(buf[..4].try_into().unwrap()),
            0x646c_6670
        );
    }

    #[test]
    fn a_block_needs_an_empty_slot_and_a_host_block() {
        let mut s = Space::new(ArenaHost::new(4 * BLOCK_PAGES)).unwrap();
        s.host.refuse_blocks = true;
        assert_eq!(s.map_fresh_block(gpa(0x8020_0000), Perms::RWX), Ok(None));
        assert_eq!(s.mapped_blocks(), 0);
        s.host.refuse_blocks = false;
        s.map_backed(gpa(0x8040_1000), Backing::FreshRam, Perms::RWX)
            .unwrap();
        let live = s.host.live.len();
        assert_eq!(
            s.map_fresh_block(gpa(0x8040_0000), Perms::RWX),
            Ok(None),
            "a page of that block is mapped"
        );
        assert_eq!(s.host.live.len(), live, "and the host was not asked");
        let block = s.map_fresh_block(gpa(0x8020_0000), Perms::RWX).unwrap();
        assert!(block.is_some(), "the refused block, now given");
        assert_eq!((s.mapped_blocks(), s.mapped_pages()), (1, 1));
        assert_eq!(
            s.map_fresh_block(gpa(1 << 41), Perms::RWX),
            Err(MapError::OutOfRange { gpa: gpa(1 << 41) })
        );
        assert_eq!(s.unmap(gpa(0x8041_0000)), None);
    }

    #[test]
    fn tearing_down_frees_every_frame() {
        let mut s = Space::new(ArenaHost::new(64)).unwrap();
        for page in [0x8000_0000u64, 0x8000_1000, 0x8040_0000, 0x1_0000_0000] {
            s.map_backed(gpa(page), Backing::FreshRam, Perms::RWX)
                .unwrap();
        }
        let device = Backing::Device {
            hpa: hpa(0x1000_0000),
        };
        s.map_backed(gpa(0x1000_0000), device, Perms::RW).unwrap();
        s.map_backed(gpa(0xffc0_0000), Backing::Content(b"pfld"), Perms::READ)
            .unwrap();
        s.unmap(gpa(0x8000_1000));
        assert!(s.host.live.len() > 5);
        let host = s.into_host();
        assert!(host.live.is_empty(), "leaked frames: {:x?}", host.live);
        assert!(host.live.iter().all(|&(hpa, _)| hpa >= BASE));
    }
}
