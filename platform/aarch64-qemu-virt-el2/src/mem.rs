//! Physical memory: the RAM and MMIO ranges of the configuration, and the
//! linear map at `PHYS_VIRT_OFFSET`.

use crate::config::devices::MMIO_RANGES;
use crate::config::plat::{
    KERNEL_ASPACE_BASE, KERNEL_ASPACE_SIZE, PHYS_MEMORY_BASE, PHYS_MEMORY_SIZE, PHYS_VIRT_OFFSET,
};
use axplat::mem::{MemIf, PhysAddr, RawRange, VirtAddr, pa, va};

struct MemIfImpl;

#[impl_plat_interface]
impl MemIf for MemIfImpl {
    fn phys_ram_ranges() -> &'static [RawRange] {
        &[(PHYS_MEMORY_BASE, PHYS_MEMORY_SIZE)]
    }

    fn reserved_phys_ram_ranges() -> &'static [RawRange] {
        &[]
    }

    fn mmio_ranges() -> &'static [RawRange] {
        &MMIO_RANGES
    }

    fn phys_to_virt(paddr: PhysAddr) -> VirtAddr {
        va!(paddr.as_usize() + PHYS_VIRT_OFFSET)
    }

    fn virt_to_phys(vaddr: VirtAddr) -> PhysAddr {
        pa!(vaddr.as_usize() - PHYS_VIRT_OFFSET)
    }

    fn kernel_aspace() -> (VirtAddr, usize) {
        (va!(KERNEL_ASPACE_BASE), KERNEL_ASPACE_SIZE)
    }
}
