//! Reading guest-physical memory from outside the guest: what a vCPU needs
//! when the hardware gives it no copy of the trapping instruction (x86
//! under QEMU TCG has no decode assists) and it must walk the guest's own
//! page tables and fetch the bytes itself.
//!
//! The stage-2 [`AddressSpace`] is the implementation the hypervisor uses:
//! it reads whatever the guest has mapped (RAM it touched, emulated or
//! passed-through pages) and stops at the first page that is not mapped.
//! Tests use any stand-in.

use crate::addr::GuestPhysAddr;
use crate::stage2::{AddressSpace, Format, Host};

/// Read access to guest-physical memory.
pub trait GuestMemory {
    /// Copies guest memory at `gpa` into `buf`; returns how many bytes were
    /// copied before the first page the guest has no memory in.
    fn read(&self, gpa: GuestPhysAddr, buf: &mut [u8]) -> usize;

    /// The little-endian `u64` at `gpa`, if all eight bytes are readable.
    fn read_u64(&self, gpa: GuestPhysAddr) -> Option<u64> {
        let mut b = [0u8; 8];
        (self.read(gpa, &mut b) == b.len()).then(|| u64::from_le_bytes(b))
    }

    /// The little-endian `u32` at `gpa`, if all four bytes are readable.
    fn read_u32(&self, gpa: GuestPhysAddr) -> Option<u32> {
        let mut b = [0u8; 4];
        (self.read(gpa, &mut b) == b.len()).then(|| u32::from_le_bytes(b))
    }
}

impl<F: Format, H: Host> GuestMemory for AddressSpace<F, H> {
    fn read(&self, gpa: GuestPhysAddr, buf: &mut [u8]) -> usize {
        AddressSpace::read(self, gpa, buf)
    }
}

/// No guest memory at all: every read comes back empty (for vCPUs and
/// tests that never look).
pub struct NoMemory;

impl GuestMemory for NoMemory {
    fn read(&self, _gpa: GuestPhysAddr, _buf: &mut [u8]) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{Backing, Perms};
    use crate::stage2::Npt;
    use crate::stage2::test_host::{ArenaHost, gpa};

    #[test]
    fn the_address_space_reads_what_is_mapped_and_stops_at_a_hole() {
        let mut space = AddressSpace::<Npt, _>::new(ArenaHost::new(16)).unwrap();
        space
            .map_backed(gpa(0x1000), Backing::FreshRam, Perms::RWX)
            .unwrap();
        space.write(gpa(0x1ff8), &0x1122_3344_5566_7788u64.to_le_bytes());
        let mem: &dyn GuestMemory = &space;
        assert_eq!(mem.read_u64(gpa(0x1ff8)), Some(0x1122_3344_5566_7788));
        assert_eq!(mem.read_u32(gpa(0x1ffc)), Some(0x1122_3344));
        assert_eq!(
            mem.read_u64(gpa(0x1ffc)),
            None,
            "runs into an unmapped page"
        );
        assert_eq!(mem.read_u64(gpa(0x3000)), None);
        assert_eq!(NoMemory.read_u64(gpa(0x1ff8)), None);
    }
}
