//! Where a Linux-style boot puts the kernel and its companions in guest
//! RAM: the device tree blob (DTB) and, when there is one, the initrd.
//!
//! Both architectures that boot Linux with a device tree use the same
//! plan, so it lives here:
//!
//! - The kernel is loaded low, `text_offset` bytes above a 2 MiB-aligned
//!   base the architecture picks (arm64 and riscv64 both end up 2 MiB
//!   above the start of RAM). Its *footprint* (the image with its BSS and
//!   the early page tables it builds after it: the header's `image_size`)
//!   must lie in RAM ([`place_kernel`]) and is off limits to the rest.
//! - The DTB goes to the top of RAM, at the highest [`DTB_ALIGN`] (2 MiB)
//!   boundary that leaves room for it, where QEMU `virt` puts its own
//!   (far from the kernel and at an address U-Boot's relocation copes
//!   with). In a RAM too small for that, at the highest [`DTB_MIN_ALIGN`]
//!   (8-byte) boundary, the least both the Devicetree Specification (its
//!   chapter on the DTB format) and arm64's `booting.rst` ("The device
//!   tree blob (dtb) must be placed on an 8-byte boundary") allow.
//!   [`dtb_slot`] is that rule.
//! - The initrd goes just below the DTB, at a page boundary, and its last
//!   page is not shared with the DTB or the kernel: Linux reserves the
//!   initrd rounded out to whole pages (`reserve_initrd_mem` in
//!   `init/initramfs.c`, used by riscv64, and `arm64_memblock_init`), and
//!   the generic path drops an initrd whose pages overlap memory already
//!   reserved ("overlaps in-use memory region - disabling initrd").
//! - Neither may reach into the kernel's footprint or past the end of RAM;
//!   [`PlacementError`] says which does not fit and how much room there
//!   was.
//!
//! Where the initrd goes does not depend on the DTB's exact length as long
//! as it fits the same slot, and a tree's length does not depend on the
//! initrd's address (its `linux,initrd-*` properties are fixed-size). So
//! the caller can measure a tree built with any initrd address, place,
//! then build it again with the real one.
//!
//! Both kernels start with a 64-byte header of little-endian fields
//! ([`image_header`], [`HeaderFields`]) that says `text_offset` and
//! `image_size` at the same offsets. Each architecture's own module reads
//! the rest and checks its own rules: arm64's 2 MiB limit on the DTB and
//! its 32 GiB window for the initrd in
//! [`crate::arch::aarch64::linux_image`], riscv64's fixed load address in
//! [`crate::arch::riscv64::linux_image`].

use crate::PAGE_SIZE;
use crate::addr::GuestPhysAddr;
use crate::layout::Region;

/// The preferred alignment of the DTB's guest-physical address.
pub const DTB_ALIGN: u64 = 2 << 20;

/// The length of the header at the start of a Linux arm64 or riscv64
/// `Image`.
pub const IMAGE_HEADER_LEN: usize = 64;

/// A kernel image's header, read as little-endian fields at byte offsets
/// (no transmute, so it reads the same on any host).
#[derive(Clone, Copy, Debug)]
pub struct HeaderFields<'a>(&'a [u8; IMAGE_HEADER_LEN]);

/// The header's bytes at the start of `image`, if it has that many.
pub fn image_header(image: &[u8]) -> Option<&[u8; IMAGE_HEADER_LEN]> {
    image.get(..IMAGE_HEADER_LEN)?.try_into().ok()
}

impl<'a> HeaderFields<'a> {
    /// The header whose bytes are `bytes`.
    pub const fn new(bytes: &'a [u8; IMAGE_HEADER_LEN]) -> Self {
        HeaderFields(bytes)
    }

    fn at<const N: usize>(&self, offset: usize) -> [u8; N] {
        core::array::from_fn(|i| self.0[offset + i])
    }

    /// The little-endian `u32` at `offset`.
    pub fn u32_at(&self, offset: usize) -> u32 {
        u32::from_le_bytes(self.at(offset))
    }

    /// The little-endian `u64` at `offset`.
    pub fn u64_at(&self, offset: usize) -> u64 {
        u64::from_le_bytes(self.at(offset))
    }
}

/// The least alignment the Devicetree Specification allows for a blob in
/// memory.
pub const DTB_MIN_ALIGN: u64 = 8;

/// A half-open guest-physical range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpaRange {
    /// Its first byte.
    pub start: GuestPhysAddr,
    /// One past its last byte.
    pub end: GuestPhysAddr,
}

impl GpaRange {
    /// The `len` bytes from `start`, or `None` if they would wrap around
    /// the address space.
    pub const fn new(start: GuestPhysAddr, len: u64) -> Option<Self> {
        match start.checked_add(len) {
            Some(end) => Some(GpaRange { start, end }),
            None => None,
        }
    }

    /// The guest RAM (or any other) region as a range.
    pub const fn of(region: &Region) -> Self {
        GpaRange {
            start: region.gpa,
            end: region.end(),
        }
    }

    /// Its size in bytes (0 for a range whose end is not past its start).
    pub fn len(&self) -> u64 {
        self.end.as_u64().saturating_sub(self.start.as_u64())
    }

    /// Whether it holds no byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `inner` lies entirely inside it.
    pub fn contains(&self, inner: &GpaRange) -> bool {
        self.start <= inner.start && inner.start <= inner.end && inner.end <= self.end
    }
}

impl core::fmt::Display for GpaRange {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:#x}..{:#x}", self.start, self.end)
    }
}

/// Where the DTB and the initrd go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootBlobs {
    /// The initrd's range, if there is one.
    pub initrd: Option<GpaRange>,
    /// The DTB's range; its start is the address handed to the kernel
    /// (`x0` on arm64, `a1` on riscv64).
    pub dtb: GpaRange,
}

/// Where the kernel goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelPlacement {
    /// The 2 MiB-aligned base the image is `text_offset` bytes above.
    pub base: GuestPhysAddr,
    /// Where the image's first byte goes, and where the vCPU starts.
    pub load: GuestPhysAddr,
    /// What the kernel may use from `load` on: `image_size` bytes (the
    /// file's length for a kernel that does not say).
    pub footprint: GpaRange,
}

/// Where the kernel, the DTB and the initrd go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinuxBootPlan {
    /// The kernel.
    pub kernel: KernelPlacement,
    /// The DTB (its start goes in `x0` on arm64, `a1` on riscv64) and the
    /// initrd.
    pub blobs: BootBlobs,
}

/// Why the kernel's footprint cannot be placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FootprintError {
    /// The file is longer than the footprint its header claims.
    FileLargerThanImage {
        /// The file's length.
        file_len: u64,
        /// The header's `image_size`.
        image_size: u64,
    },
    /// The footprint does not fit in guest RAM from where it is loaded.
    DoesNotFit {
        /// Where the image would be loaded.
        load: GuestPhysAddr,
        /// The footprint in bytes.
        footprint: u64,
        /// The end of guest RAM.
        ram_end: GuestPhysAddr,
    },
}

impl core::fmt::Display for FootprintError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            FootprintError::FileLargerThanImage {
                file_len,
                image_size,
            } => write!(
                f,
                "the kernel file is {file_len} bytes, more than the {image_size} bytes its header's image_size claims"
            ),
            FootprintError::DoesNotFit {
                load,
                footprint,
                ram_end,
            } => write!(
                f,
                "the kernel needs {footprint} bytes from {load:#x}, but guest RAM ends at {ram_end:#x}"
            ),
        }
    }
}

/// Places a kernel of `file_len` bytes `text_offset` bytes above `base`
/// (`None` when working the base out overflowed): its footprint is
/// `image_size` bytes (the file's length where the header does not say,
/// and never less than the file), all of it inside `ram`.
pub fn place_kernel(
    ram: &Region,
    base: Option<GuestPhysAddr>,
    text_offset: u64,
    file_len: u64,
    image_size: Option<u64>,
) -> Result<KernelPlacement, FootprintError> {
    let footprint = match image_size {
        Some(image_size) if file_len > image_size => {
            return Err(FootprintError::FileLargerThanImage {
                file_len,
                image_size,
            });
        }
        Some(image_size) => image_size,
        None => file_len,
    };
    let load = base.and_then(|b| b.checked_add(text_offset));
    let range = load.and_then(|l| GpaRange::new(l, footprint));
    match (base, range) {
        (Some(base), Some(range)) if base >= ram.gpa && range.end <= ram.end() => {
            Ok(KernelPlacement {
                base,
                load: range.start,
                footprint: range,
            })
        }
        _ => Err(FootprintError::DoesNotFit {
            load: load.unwrap_or(GuestPhysAddr::new(u64::MAX)),
            footprint,
            ram_end: ram.end(),
        }),
    }
}

/// Why the DTB or the initrd cannot be placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlacementError {
    /// The kernel's footprint does not lie inside guest RAM.
    KernelOutsideRam {
        /// The footprint.
        kernel: GpaRange,
        /// Guest RAM.
        ram: GpaRange,
    },
    /// The DTB does not fit between the kernel's footprint and the end of
    /// RAM.
    DtbDoesNotFit {
        /// The blob's size in bytes.
        len: u64,
        /// The bytes from the first page after the kernel to the end of
        /// RAM.
        room: u64,
    },
    /// The initrd does not fit between the kernel's footprint and the DTB.
    InitrdDoesNotFit {
        /// The initrd's size in bytes.
        len: u64,
        /// The whole pages between the kernel and the DTB, in bytes.
        room: u64,
    },
}

impl core::fmt::Display for PlacementError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PlacementError::KernelOutsideRam { kernel, ram } => write!(
                f,
                "the kernel's footprint {kernel} is not inside guest RAM {ram}"
            ),
            PlacementError::DtbDoesNotFit { len, room } => write!(
                f,
                "the device tree ({len} bytes) does not fit in the {room} bytes of guest RAM above the kernel"
            ),
            PlacementError::InitrdDoesNotFit { len, room } => write!(
                f,
                "the initrd ({len} bytes) does not fit in the {room} bytes of guest RAM between the kernel and the device tree"
            ),
        }
    }
}

const fn align_down(a: u64, align: u64) -> u64 {
    a & !(align - 1)
}

/// The highest address in `room` where a blob of `len` bytes fits: a
/// [`DTB_ALIGN`] boundary if one is low enough, else a [`DTB_MIN_ALIGN`]
/// one; `None` if it does not fit at all.
pub fn dtb_slot(room: GpaRange, len: u64) -> Option<GuestPhysAddr> {
    let highest = room.end.as_u64().checked_sub(len)?;
    [DTB_ALIGN, DTB_MIN_ALIGN]
        .into_iter()
        .map(|align| align_down(highest, align))
        .find(|&a| a >= room.start.as_u64())
        .map(GuestPhysAddr::new)
}

/// Places a DTB of `dtb_len` bytes and, when `initrd_len` is given, an
/// initrd of that many bytes in `ram`, above the kernel's `footprint`
/// (see the module docs for the rules). `dtb_len` may be an upper bound of
/// the blob's length.
pub fn place_initrd_and_dtb(
    ram: &Region,
    footprint: GpaRange,
    initrd_len: Option<u64>,
    dtb_len: u64,
) -> Result<BootBlobs, PlacementError> {
    let ram = GpaRange::of(ram);
    if !ram.contains(&footprint) {
        return Err(PlacementError::KernelOutsideRam {
            kernel: footprint,
            ram,
        });
    }
    // The first page the kernel does not touch (`ram.end` is a page
    // boundary in a valid layout, so this stays inside RAM).
    let floor = footprint
        .end
        .as_u64()
        .next_multiple_of(PAGE_SIZE)
        .min(ram.end.as_u64());
    let above = GpaRange {
        start: GuestPhysAddr::new(floor),
        end: ram.end,
    };
    let dtb = dtb_slot(above, dtb_len)
        .and_then(|start| GpaRange::new(start, dtb_len))
        .ok_or(PlacementError::DtbDoesNotFit {
            len: dtb_len,
            room: above.len(),
        })?;
    let initrd = match initrd_len {
        None => None,
        Some(len) => {
            let ceiling = align_down(dtb.start.as_u64(), PAGE_SIZE);
            let start = ceiling
                .checked_sub(len)
                .map(|s| align_down(s, PAGE_SIZE))
                .filter(|&s| s >= floor)
                .ok_or(PlacementError::InitrdDoesNotFit {
                    len,
                    room: ceiling.saturating_sub(floor),
                })?;
            GpaRange::new(GuestPhysAddr::new(start), len)
        }
    };
    Ok(BootBlobs { initrd, dtb })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    const fn gpa(a: u64) -> GuestPhysAddr {
        GuestPhysAddr::new(a)
    }

    fn range(start: u64, len: u64) -> GpaRange {
        GpaRange::new(gpa(start), len).unwrap()
    }

    fn ram(start: u64, size: u64) -> Region {
        Region::ram(GuestPhysAddr::new(start), size)
    }

    /// The aarch64 default: 128 MiB at 0x4000_0000, a 32 MiB kernel at
    /// its start (Debian's 6.1 `Image` has an `image_size` of 0x201_0000).
    const RAM_START: u64 = 0x4000_0000;
    const KERNEL_SIZE: u64 = 0x201_0000;

    #[test]
    fn the_dtb_tops_ram_and_the_initrd_sits_below_it() {
        let ram = ram(RAM_START, 128 * MIB);
        let kernel = range(RAM_START, KERNEL_SIZE);
        let blobs = place_initrd_and_dtb(&ram, kernel, Some(0x12_3456), 0x1000).unwrap();
        assert_eq!(blobs.dtb, range(0x47e0_0000, 0x1000));
        assert_eq!(
            blobs.initrd,
            Some(range(0x47e0_0000 - 0x12_4000, 0x12_3456)),
            "page-aligned, its last page ending where the DTB starts"
        );

        // Without an initrd the DTB is where it was.
        let alone = place_initrd_and_dtb(&ram, kernel, None, 0x1000).unwrap();
        assert_eq!(alone.dtb, blobs.dtb);
        assert_eq!(alone.initrd, None);

        // The initrd's place depends on the DTB's slot, not its length.
        let bigger = place_initrd_and_dtb(&ram, kernel, Some(0x12_3456), 0x1_0000).unwrap();
        assert_eq!(bigger.initrd, blobs.initrd);
        // A whole-page initrd ends exactly at the DTB.
        let whole = place_initrd_and_dtb(&ram, kernel, Some(4 * MIB), 0x1000).unwrap();
        assert_eq!(whole.initrd, Some(range(0x47a0_0000, 4 * MIB)));
    }

    #[test]
    fn every_slot_is_2_mib_aligned_when_it_can_be() {
        let ram = ram(RAM_START, 128 * MIB);
        let kernel = range(RAM_START, KERNEL_SIZE);
        for len in [1, 0x123, 0x1000, 2 * MIB] {
            let dtb = place_initrd_and_dtb(&ram, kernel, None, len).unwrap().dtb;
            assert_eq!(dtb.start, gpa(0x47e0_0000), "a {len}-byte blob");
            assert_eq!(dtb.start.as_u64() % DTB_ALIGN, 0);
        }
        let dtb = place_initrd_and_dtb(&ram, kernel, None, 2 * MIB + 1)
            .unwrap()
            .dtb;
        assert_eq!(dtb.start, gpa(0x47c0_0000));
        assert_eq!(dtb.end, gpa(0x47e0_0001));
    }

    #[test]
    fn a_crowded_ram_falls_back_to_8_byte_alignment() {
        // 3 MiB of RAM, the kernel taking the first 2 MiB and a bit: no
        // 2 MiB boundary is left above it.
        let ram = ram(RAM_START, 3 * MIB);
        let kernel = range(RAM_START, 2 * MIB + 0x10);
        let blobs = place_initrd_and_dtb(&ram, kernel, Some(0x8_0000), 0x123).unwrap();
        assert_eq!(blobs.dtb.start, gpa(0x402f_fed8));
        assert_eq!(blobs.dtb.start.as_u64() % DTB_MIN_ALIGN, 0);
        assert_eq!(blobs.dtb.end, gpa(0x402f_fffb));
        // Below the DTB's page, a page boundary.
        assert_eq!(blobs.initrd, Some(range(0x4027_f000, 0x8_0000)));
        // The largest initrd that fits: from the page after the kernel to
        // the DTB's page.
        let room = 0x402f_f000 - 0x4020_1000;
        assert!(place_initrd_and_dtb(&ram, kernel, Some(room), 0x123).is_ok());
        assert_eq!(
            place_initrd_and_dtb(&ram, kernel, Some(room + 1), 0x123),
            Err(PlacementError::InitrdDoesNotFit {
                len: room + 1,
                room
            })
        );
    }

    #[test]
    fn blobs_never_overlap_the_kernel_or_leave_ram() {
        let ram = ram(RAM_START, 64 * MIB);
        let kernel = range(RAM_START, 60 * MIB + 0x800);
        // 4 MiB minus the kernel's last partial page above it.
        let room = 4 * MIB - 0x1000;
        assert_eq!(
            place_initrd_and_dtb(&ram, kernel, None, room + 1),
            Err(PlacementError::DtbDoesNotFit {
                len: room + 1,
                room
            })
        );
        let blobs = place_initrd_and_dtb(&ram, kernel, None, room).unwrap();
        assert_eq!(blobs.dtb, range(0x43c0_1000, room), "all of it");

        // A DTB at 0x43e0_0000 leaves 0x1ff000 bytes of whole pages.
        let initrd_room = 0x43e0_0000 - 0x43c0_1000;
        let err = place_initrd_and_dtb(&ram, kernel, Some(8 * MIB), 0x1000).unwrap_err();
        assert_eq!(
            err,
            PlacementError::InitrdDoesNotFit {
                len: 8 * MIB,
                room: initrd_room
            }
        );
        assert_eq!(
            err.to_string(),
            "the initrd (8388608 bytes) does not fit in the 2093056 bytes of guest RAM between the kernel and the device tree"
        );
        let fits = place_initrd_and_dtb(&ram, kernel, Some(initrd_room), 0x1000).unwrap();
        assert_eq!(fits.initrd, Some(range(0x43c0_1000, initrd_room)));
        for blobs in [fits, blobs] {
            for r in blobs.initrd.iter().chain([&blobs.dtb]) {
                assert!(r.start >= kernel.end && GpaRange::of(&ram).contains(r));
            }
        }

        // A kernel filling RAM leaves nothing; one outside RAM is refused.
        let full = range(RAM_START, 64 * MIB);
        assert_eq!(
            place_initrd_and_dtb(&ram, full, None, 8),
            Err(PlacementError::DtbDoesNotFit { len: 8, room: 0 })
        );
        for kernel in [
            range(RAM_START - 0x1000, 0x2000),
            range(RAM_START, 64 * MIB + 1),
        ] {
            assert_eq!(
                place_initrd_and_dtb(&ram, kernel, None, 8),
                Err(PlacementError::KernelOutsideRam {
                    kernel,
                    ram: range(RAM_START, 64 * MIB)
                })
            );
        }
        assert_eq!(
            PlacementError::KernelOutsideRam {
                kernel: range(RAM_START, 64 * MIB + 1),
                ram: range(RAM_START, 64 * MIB)
            }
            .to_string(),
            "the kernel's footprint 0x40000000..0x44000001 is not inside guest RAM 0x40000000..0x44000000"
        );
    }

    #[test]
    fn an_initrd_too_large_for_ram_is_refused_not_wrapped() {
        let ram = ram(RAM_START, 128 * MIB);
        let kernel = range(RAM_START, KERNEL_SIZE);
        let err = place_initrd_and_dtb(&ram, kernel, Some(u64::MAX), 0x1000).unwrap_err();
        assert!(matches!(
            err,
            PlacementError::InitrdDoesNotFit { len: u64::MAX, .. }
        ));
        assert_eq!(
            place_initrd_and_dtb(&ram, kernel, None, u64::MAX),
            Err(PlacementError::DtbDoesNotFit {
                len: u64::MAX,
                room: 128 * MIB - KERNEL_SIZE
            })
        );
    }

    #[test]
    fn the_kernel_footprint_lies_in_ram_from_its_load_address() {
        let ram = ram(RAM_START, 64 * MIB);
        let k = place_kernel(&ram, Some(gpa(RAM_START)), 2 * MIB, MIB, Some(3 * MIB)).unwrap();
        assert_eq!(
            k,
            KernelPlacement {
                base: gpa(RAM_START),
                load: gpa(RAM_START + 2 * MIB),
                footprint: range(RAM_START + 2 * MIB, 3 * MIB),
            }
        );
        // No image_size: the file is the footprint.
        let k = place_kernel(&ram, Some(gpa(RAM_START)), 0, MIB, None).unwrap();
        assert_eq!(k.footprint, range(RAM_START, MIB));
        // A base below RAM, an end past it, an overflow: no fit.
        let below = place_kernel(&ram, Some(gpa(RAM_START - 2 * MIB)), 2 * MIB, MIB, None);
        assert_eq!(
            below,
            Err(FootprintError::DoesNotFit {
                load: gpa(RAM_START),
                footprint: MIB,
                ram_end: gpa(RAM_START + 64 * MIB)
            })
        );
        assert!(place_kernel(&ram, Some(gpa(RAM_START)), 63 * MIB, MIB + 1, None).is_err());
        let overflow = place_kernel(&ram, None, 0, MIB, None).unwrap_err();
        assert!(
            matches!(overflow, FootprintError::DoesNotFit { load, .. } if load == gpa(u64::MAX))
        );
        assert_eq!(
            place_kernel(&ram, Some(gpa(RAM_START)), 0, MIB + 1, Some(MIB)),
            Err(FootprintError::FileLargerThanImage {
                file_len: MIB + 1,
                image_size: MIB
            })
        );
    }

    #[test]
    fn header_fields_are_little_endian_at_their_offsets() {
        let mut image = [0u8; 70];
        for (i, b) in image.iter_mut().enumerate() {
            *b = i as u8;
        }
        let fields = HeaderFields::new(image_header(&image).unwrap());
        assert_eq!(fields.u32_at(4), 0x0706_0504);
        assert_eq!(fields.u64_at(56), 0x3f3e_3d3c_3b3a_3938);
        assert_eq!(image_header(&image[..63]), None);
    }

    #[test]
    fn the_slot_rule_alone() {
        let all = range(0x8010_0000, 0x10_0000);
        assert_eq!(dtb_slot(all, 0x123), Some(gpa(0x801f_fed8)));
        assert_eq!(dtb_slot(all, 0x10_0000), Some(gpa(0x8010_0000)));
        assert_eq!(dtb_slot(all, 0x10_0001), None);
        assert_eq!(
            dtb_slot(range(0x8000_0000, 128 * MIB), 0x800),
            Some(gpa(0x87e0_0000))
        );
        assert_eq!(GpaRange::new(gpa(u64::MAX), 2), None);
        assert!(range(0x1000, 0).is_empty());
        assert_eq!(range(0x1000, 0x2000).len(), 0x2000);
    }
}
