//! A stage-2 [`Host`] made of ordinary heap memory, for the unit tests of
//! the table code and the run loop: frames come from one arena whose
//! "host-physical" addresses start at [`BASE`].

use super::{BLOCK_PAGES, Host};
use crate::PAGE_SIZE;
use crate::addr::{GuestPhysAddr, HostPhysAddr};
use std::vec::Vec;

#[repr(C, align(4096))]
#[derive(Clone, Copy)]
struct Page([u8; 4096]);

/// Frames live in one fixed arena; "host-physical" addresses start at
/// `BASE`. Tracks every allocation so tests can check nothing leaks.
pub struct ArenaHost {
    arena: Vec<Page>,
    base_ptr: *mut u8,
    next: usize,
    pub live: Vec<(HostPhysAddr, usize)>,
    pub freed: usize,
    pub invalidated: Vec<GuestPhysAddr>,
    /// Frames handed to `publish_frame`, in order.
    pub published: Vec<HostPhysAddr>,
    /// Make `alloc_block` answer `None`, as a host without a free 2 MiB
    /// run would.
    pub refuse_blocks: bool,
}

// SAFETY: `base_ptr` points into the host's own `arena`, which moves with
// it; nothing else holds the pointer. The VM that owns an arena keeps it
// behind its memory lock when its vCPUs run on several threads.
unsafe impl Send for ArenaHost {}

pub const BASE: HostPhysAddr = HostPhysAddr::new(0x1_0000_0000);

/// Shorthand for a guest-physical address in tests.
pub const fn gpa(addr: u64) -> GuestPhysAddr {
    GuestPhysAddr::new(addr)
}

/// Shorthand for a host-physical address in tests.
pub const fn hpa(addr: u64) -> HostPhysAddr {
    HostPhysAddr::new(addr)
}

impl ArenaHost {
    pub fn new(pages: usize) -> Self {
        let mut arena = vec![Page([0xAA; 4096]); pages];
        let base_ptr = arena.as_mut_ptr().cast();
        Self {
            arena,
            base_ptr,
            next: 0,
            live: Vec::new(),
            freed: 0,
            invalidated: Vec::new(),
            published: Vec::new(),
            refuse_blocks: false,
        }
    }
}

unsafe impl Host for ArenaHost {
    fn alloc_frames(&mut self, pages: usize) -> Option<HostPhysAddr> {
        let start = self.next.next_multiple_of(pages);
        if start + pages > self.arena.len() {
            return None;
        }
        self.next = start + pages;
        let hpa = BASE + (start as u64) * PAGE_SIZE;
        self.live.push((hpa, pages));
        Some(hpa)
    }
    fn alloc_block(&mut self) -> Option<HostPhysAddr> {
        if self.refuse_blocks {
            return None;
        }
        // Aligned in the arena, and BASE is 4 GiB aligned.
        self.alloc_frames(BLOCK_PAGES)
    }
    fn free_frames(&mut self, hpa: HostPhysAddr, pages: usize) {
        let i = self
            .live
            .iter()
            .position(|&l| l == (hpa, pages))
            .expect("freeing a frame not allocated");
        self.live.swap_remove(i);
        self.freed += pages;
    }
    fn frame_ptr(&self, hpa: HostPhysAddr) -> *mut u8 {
        assert!(
            hpa >= BASE && hpa < BASE + (self.arena.len() as u64) * PAGE_SIZE,
            "not an arena address"
        );
        self.base_ptr.wrapping_add((hpa - BASE) as usize)
    }
    fn is_ram(&self, hpa: HostPhysAddr) -> bool {
        hpa >= BASE && hpa < BASE + (self.arena.len() as u64) * PAGE_SIZE
    }
    fn invalidate(&mut self, gpa: GuestPhysAddr) {
        self.invalidated.push(gpa);
    }
    fn publish_frame(&mut self, hpa: HostPhysAddr) {
        self.published.push(hpa);
    }
}
