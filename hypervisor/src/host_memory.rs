//! Host frames for guest memory and stage-2 tables, from ArceOS's page
//! allocator, reached through the kernel's linear mapping: single pages,
//! aligned runs for table roots, and 2 MiB blocks for guest RAM.

use crate::arch::Arch;
use alloc::vec::Vec;
use axalloc::{UsageKind, global_allocator};
use axhal::mem::{PhysAddr, VirtAddr, phys_to_virt, virt_to_phys};
use core::marker::PhantomData;
use guestaspace_core::PAGE_SIZE;
use guestaspace_core::addr::{GuestPhysAddr, HostPhysAddr};
use guestaspace_core::stage2::{BLOCK_PAGES, Host};

/// The host's RAM, as `(start, size)` ranges, for the layout check that no
/// pass-through region exposes it.
pub fn host_ram_ranges() -> Vec<(HostPhysAddr, u64)> {
    axhal::mem::phys_ram_ranges()
        .iter()
        .map(|&(start, size)| (HostPhysAddr::new(start as u64), size as u64))
        .collect()
}

/// Bytes of host memory the page allocator can still hand out: the most
/// guest RAM the host can back.
pub fn free_bytes() -> u64 {
    (global_allocator().available_pages() as u64) * PAGE_SIZE
}

/// Zeroed host pages for the hypervisor's own use (VMCBs, permission
/// maps), never freed: they live as long as the VM. Returns the kernel
/// pointer and the host-physical address.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // only SVM needs such pages so far
pub fn alloc_host_pages(pages: usize) -> Option<(*mut u8, HostPhysAddr)> {
    let va = global_allocator()
        .alloc_pages(pages, PAGE_SIZE as usize, UsageKind::Global)
        .ok()?;
    let ptr = va as *mut u8;
    // SAFETY: the allocator just handed us these `pages` pages.
    unsafe { ptr.write_bytes(0, pages * PAGE_SIZE as usize) };
    Some((ptr, host_phys(va)))
}

/// The host-physical address of kernel virtual address `va` (linear map).
fn host_phys(va: usize) -> HostPhysAddr {
    HostPhysAddr::new(virt_to_phys(VirtAddr::from(va)).as_usize() as u64)
}

pub struct HostMemory<A: Arch> {
    /// Set once the allocator had no free 2 MiB run: guest memory is only
    /// freed when the VM ends, so it will not have one later either, and
    /// asking again would rescan the bitmap on every fault.
    out_of_blocks: bool,
    _arch: PhantomData<A>,
}

impl<A: Arch> HostMemory<A> {
    pub fn new() -> Self {
        Self {
            out_of_blocks: false,
            _arch: PhantomData,
        }
    }
}

// SAFETY: frames come from the global page allocator, which hands each out
// once, and `frame_ptr` goes through the kernel's linear mapping of all RAM.
unsafe impl<A: Arch> Host for HostMemory<A> {
    fn alloc_frames(&mut self, pages: usize) -> Option<HostPhysAddr> {
        debug_assert!(pages.is_power_of_two());
        let va = global_allocator()
            .alloc_pages(pages, pages * PAGE_SIZE as usize, UsageKind::VirtMem)
            .ok()?;
        Some(host_phys(va))
    }

    /// A 2 MiB run aligned to 2 MiB. The bitmap allocator aligns the
    /// kernel virtual address (its base is 1 GiB aligned); the linear
    /// map's offset is a multiple of 1 GiB on every architecture here, so
    /// the host-physical address is aligned too.
    fn alloc_block(&mut self) -> Option<HostPhysAddr> {
        if self.out_of_blocks {
            return None;
        }
        let bytes = BLOCK_PAGES * PAGE_SIZE as usize;
        match global_allocator().alloc_pages(BLOCK_PAGES, bytes, UsageKind::VirtMem) {
            Ok(va) => Some(host_phys(va)),
            Err(_) => {
                self.out_of_blocks = true;
                None
            }
        }
    }

    fn free_frames(&mut self, hpa: HostPhysAddr, pages: usize) {
        let va = phys_to_virt(PhysAddr::from(hpa.as_u64() as usize));
        global_allocator().dealloc_pages(va.as_usize(), pages, UsageKind::VirtMem);
    }

    fn frame_ptr(&self, hpa: HostPhysAddr) -> *mut u8 {
        phys_to_virt(PhysAddr::from(hpa.as_u64() as usize)).as_mut_ptr()
    }

    fn is_ram(&self, hpa: HostPhysAddr) -> bool {
        let hpa = hpa.as_u64() as usize;
        axhal::mem::phys_ram_ranges()
            .iter()
            .any(|&(start, size)| hpa >= start && hpa - start < size)
    }

    fn invalidate(&mut self, gpa: GuestPhysAddr) {
        A::invalidate_guest_page(gpa);
    }

    fn publish_frame(&mut self, hpa: HostPhysAddr) {
        A::publish_guest_frame(self.frame_ptr(hpa));
    }
}
