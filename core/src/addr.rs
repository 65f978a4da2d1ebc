//! Address newtypes: a guest-physical address, a host-physical address and
//! a guest-virtual address are different things, and the type system keeps
//! them apart (`new_vcpu(entry, root)` cannot be called with its arguments
//! swapped). Conversions are explicit: `GuestPhysAddr::new(x)`, `.as_u64()`.

use core::fmt;
use core::ops::{Add, AddAssign, Sub};

macro_rules! address_type {
    ($(#[$doc:meta])* $name:ident, $short:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(transparent)]
        pub struct $name(u64);

        impl $name {
            /// The address `addr`.
            pub const fn new(addr: u64) -> Self {
                Self(addr)
            }

            /// The address as a plain number.
            pub const fn as_u64(self) -> u64 {
                self.0
            }

            /// The start of the 4 KiB page holding this address.
            pub const fn page_base(self) -> Self {
                Self(crate::page_base(self.0))
            }

            /// The offset of this address inside its 4 KiB page.
            pub const fn page_offset(self) -> u64 {
                self.0 & (crate::PAGE_SIZE - 1)
            }

            /// This address plus `offset`, or `None` on overflow.
            pub const fn checked_add(self, offset: u64) -> Option<Self> {
                match self.0.checked_add(offset) {
                    Some(a) => Some(Self(a)),
                    None => None,
                }
            }

            /// The address rounded down to a multiple of `align`, a power
            /// of two (the start of the 2 MiB block holding it, say).
            pub const fn align_down(self, align: u64) -> Self {
                debug_assert!(align.is_power_of_two());
                Self(self.0 & !(align - 1))
            }

            /// Whether the address is the start of a 4 KiB page.
            pub const fn is_page_aligned(self) -> bool {
                self.page_offset() == 0
            }

            /// The distance from `base` up to this address (`self >= base`).
            pub const fn offset_from(self, base: Self) -> u64 {
                self.0 - base.0
            }
        }

        impl Add<u64> for $name {
            type Output = Self;
            fn add(self, offset: u64) -> Self {
                Self(self.0 + offset)
            }
        }

        impl AddAssign<u64> for $name {
            fn add_assign(&mut self, offset: u64) {
                self.0 += offset;
            }
        }

        impl Sub<u64> for $name {
            type Output = Self;
            fn sub(self, offset: u64) -> Self {
                Self(self.0 - offset)
            }
        }

        /// The distance between two addresses of the same space.
        impl Sub for $name {
            type Output = u64;
            fn sub(self, base: Self) -> u64 {
                self.0 - base.0
            }
        }

        impl fmt::LowerHex for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }

        impl fmt::UpperHex for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::UpperHex::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            /// `GPA 0x80200000` style.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($short, " {:#x}"), self.0)
            }
        }
    };
}

address_type!(
    /// An address in the guest's physical address space (an IPA on Arm).
    GuestPhysAddr,
    "GPA"
);
address_type!(
    /// An address in the host's physical address space.
    HostPhysAddr,
    "HPA"
);
address_type!(
    /// An address in the guest's virtual address space (the guest PC, `stval`).
    GuestVirtAddr,
    "GVA"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_and_pages() {
        let a = GuestPhysAddr::new(0x8020_1234);
        assert_eq!(a.page_base(), GuestPhysAddr::new(0x8020_1000));
        assert_eq!(a.page_offset(), 0x234);
        assert_eq!((a + 0x10).as_u64(), 0x8020_1244);
        assert_eq!(a.offset_from(GuestPhysAddr::new(0x8000_0000)), 0x20_1234);
        assert_eq!(GuestPhysAddr::new(u64::MAX).checked_add(1), None);
        assert_eq!(a - GuestPhysAddr::new(0x8020_0000), 0x1234);
        assert!(a.page_base().is_page_aligned() && !a.is_page_aligned());
        assert_eq!(a.align_down(2 << 20), GuestPhysAddr::new(0x8020_0000));
        assert_eq!(a.align_down(0x1000), a.page_base());
        let mut b = a;
        b += 0x1000;
        assert_eq!(b, GuestPhysAddr::new(0x8020_2234));
    }

    #[test]
    fn formatting_names_the_space() {
        assert_eq!(
            GuestPhysAddr::new(0x2200_0000).to_string(),
            "GPA 0x22000000"
        );
        assert_eq!(HostPhysAddr::new(0x1000).to_string(), "HPA 0x1000");
        assert_eq!(format!("{:#x}", GuestVirtAddr::new(0xff)), "0xff");
    }
}
