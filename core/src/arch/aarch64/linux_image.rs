//! The arm64 Linux `Image`: reading its 64-byte header and planning where
//! the kernel, its device tree and its initrd go in guest RAM, as the
//! kernel's boot protocol asks (`Documentation/arm64/booting.rst`, moved to
//! `Documentation/arch/arm64/booting.rst` in later kernels; section 4,
//! "Call the kernel image").
//!
//! # The header
//!
//! | offset | field | |
//! |---|---|---|
//! | 0 | `code0`, `code1` | two instructions branching to `stext` (an EFI-stub kernel's `code0` also starts with `MZ`) |
//! | 8 | `text_offset` | where the image goes past a 2 MiB boundary |
//! | 16 | `image_size` | the kernel's footprint from its first byte, BSS included |
//! | 24 | `flags` | bit 0 endianness, bits 1-2 page size, bit 3 placement |
//! | 32..56 | `res2`..`res4` | reserved |
//! | 56 | `magic` | `0x644d5241`, "ARM\x64" |
//! | 60 | `res5` | offset of the PE/COFF header (EFI stub) |
//!
//! [`RawHeader`] is that layout; [`RawHeader::read`] decodes each field
//! little-endian at its offset ("As of v3.17, all fields are little
//! endian unless stated otherwise"), with no transmute, so it reads the
//! same on any host. [`ImageHeader::parse`] checks it:
//!
//! - Fewer than 64 bytes, or a `magic` other than [`MAGIC`], is not an
//!   arm64 `Image` ([`HeaderError::TooShort`], [`HeaderError::BadMagic`]).
//!   A compressed `vmlinuz` (gzip, EFI zboot) fails here: the boot protocol
//!   leaves decompression to the boot loader, and this one does not do it.
//! - A big-endian kernel (flags bit 0) is refused
//!   ([`HeaderError::BigEndian`]): the hypervisor's device models take
//!   the guest's MMIO data as little-endian and do not look at
//!   `SCTLR_EL1.EE`.
//! - `image_size` 0 marks a kernel older than 3.17. The document says that
//!   then "text_offset can be assumed to be 0x80000" (its endianness was
//!   unspecified), so [`LEGACY_TEXT_OFFSET`] is used whatever the field
//!   holds, and the flags (introduced in 3.17) are not read. Such a kernel
//!   is accepted with [`ImageHeader::image_size`] `None`: its footprint is
//!   unknown ("effectively unbound"), so the plan takes its file as the
//!   least footprint and, as the document asks, keeps as much memory as
//!   possible free after it (the DTB and initrd go to the top of RAM
//!   anyway). Nothing can promise the BSS will not reach them; such kernels
//!   are from 2014 and not what this hypervisor targets.
//! - Reserved flag bits (4-63) are ignored, so a newer kernel that defines
//!   one still boots.
//!
//! # The plan
//!
//! [`ImageHeader::place`] puts the image "text_offset bytes from a 2MB
//! aligned base address anywhere in usable system RAM": the lowest such
//! base, guest RAM's start rounded up to [`KERNEL_ALIGN`]. That also meets
//! flags bit 3 = 0 ("2MB aligned base should be as close as possible to
//! the base of DRAM"), and kernels before 4.6, which cannot use memory
//! below the image. "At least image_size bytes from the start of the image
//! must be free for use by the kernel": the whole footprint must lie in
//! RAM, else [`FootprintError::DoesNotFit`] (the placement shared with
//! riscv64, [`crate::boot_layout::place_kernel`]).
//!
//! [`ImageHeader::plan_boot`] adds the DTB and the initrd with
//! [`crate::boot_layout::place_initrd_and_dtb`] (the DTB at the top of RAM
//! on an 8-byte, preferably 2 MiB, boundary; the initrd page-aligned below
//! it) and checks the two rules that are arm64's own:
//!
//! - "The device tree blob (dtb) must be placed on an 8-byte boundary and
//!   must not exceed 2 megabytes in size" ([`MAX_DTB_SIZE`],
//!   [`PlanError::DtbTooLarge`]).
//! - The initrd "must reside entirely within a 1 GB aligned physical
//!   memory window of up to 32 GB in size that fully covers the kernel
//!   Image as well" ([`PlanError::InitrdOutsideWindow`]). The kernel's
//!   whole footprint is what the window must cover here.
//!
//! The kernel is then entered at [`KernelPlacement::load`], its first byte
//! (`code0`), at EL1 with `x0` the DTB's address and `x1`..`x3` zero.

use core::fmt;
use core::mem::{offset_of, size_of};

use crate::addr::GuestPhysAddr;
use crate::boot_layout::{
    FootprintError, GpaRange, HeaderFields, IMAGE_HEADER_LEN, PlacementError, image_header,
    place_initrd_and_dtb, place_kernel,
};
pub use crate::boot_layout::{KernelPlacement, LinuxBootPlan};
use crate::layout::Region;

/// The header's size in bytes.
pub const HEADER_LEN: usize = IMAGE_HEADER_LEN;

/// The header's `magic`: "ARM\x64" read as a little-endian `u32`.
pub const MAGIC: u32 = 0x644d_5241;

/// The `text_offset` of a kernel older than 3.17 (whose `image_size` is 0).
pub const LEGACY_TEXT_OFFSET: u64 = 0x8_0000;

/// The alignment of the base address the image is placed `text_offset`
/// bytes above (Linux's `MIN_KIMG_ALIGN`).
pub const KERNEL_ALIGN: u64 = 2 << 20;

/// RAM kept below the kernel's base: what QEMU's `-kernel` keeps (see
/// [`ImageHeader::place`]).
pub const LOW_RESERVE: u64 = 2 << 20;

/// The largest DTB an arm64 kernel accepts (Linux's `MAX_FDT_SIZE`).
pub const MAX_DTB_SIZE: u64 = 2 << 20;

/// The alignment of the window the initrd and the kernel must share.
pub const INITRD_WINDOW_ALIGN: u64 = 1 << 30;

/// The largest size of the window the initrd and the kernel must share.
pub const INITRD_WINDOW_SIZE: u64 = 32 << 30;

/// The header exactly as `booting.rst` lays it out, fields in the
/// kernel's order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawHeader {
    /// Executable code.
    pub code0: u32,
    /// Executable code.
    pub code1: u32,
    /// Image load offset.
    pub text_offset: u64,
    /// Effective image size.
    pub image_size: u64,
    /// Kernel flags.
    pub flags: u64,
    /// Reserved.
    pub res2: u64,
    /// Reserved.
    pub res3: u64,
    /// Reserved.
    pub res4: u64,
    /// Magic number, [`MAGIC`].
    pub magic: u32,
    /// Reserved (the PE/COFF header's offset).
    pub res5: u32,
}

const _: () = assert!(size_of::<RawHeader>() == HEADER_LEN);
const _: () = assert!(offset_of!(RawHeader, magic) == 56);

impl RawHeader {
    /// Decodes the first [`HEADER_LEN`] bytes of an `Image`, every field
    /// little-endian at its offset in the `repr(C)` layout.
    pub fn read(bytes: &[u8; HEADER_LEN]) -> Self {
        let fields = HeaderFields::new(bytes);
        let u32_at = |offset| fields.u32_at(offset);
        let u64_at = |offset| fields.u64_at(offset);
        RawHeader {
            code0: u32_at(offset_of!(RawHeader, code0)),
            code1: u32_at(offset_of!(RawHeader, code1)),
            text_offset: u64_at(offset_of!(RawHeader, text_offset)),
            image_size: u64_at(offset_of!(RawHeader, image_size)),
            flags: u64_at(offset_of!(RawHeader, flags)),
            res2: u64_at(offset_of!(RawHeader, res2)),
            res3: u64_at(offset_of!(RawHeader, res3)),
            res4: u64_at(offset_of!(RawHeader, res4)),
            magic: u32_at(offset_of!(RawHeader, magic)),
            res5: u32_at(offset_of!(RawHeader, res5)),
        }
    }
}

/// The kernel's page size, flags bits 1-2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSize {
    /// 0: not said (and every kernel before 3.17).
    Unspecified,
    /// 1: 4 KiB.
    K4,
    /// 2: 16 KiB.
    K16,
    /// 3: 64 KiB.
    K64,
}

impl PageSize {
    /// The size in bytes, if the kernel said.
    pub const fn bytes(self) -> Option<u64> {
        match self {
            PageSize::Unspecified => None,
            PageSize::K4 => Some(4 << 10),
            PageSize::K16 => Some(16 << 10),
            PageSize::K64 => Some(64 << 10),
        }
    }
}

/// Where the kernel may go, flags bit 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhysicalPlacement {
    /// 0: the 2 MiB base as close as possible to the start of RAM.
    NearRamStart,
    /// 1: the 2 MiB base anywhere in physical memory.
    Anywhere,
}

/// A checked header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    /// The fields as read.
    pub raw: RawHeader,
    /// The image's offset from its 2 MiB-aligned base: the field, or
    /// [`LEGACY_TEXT_OFFSET`] for a kernel older than 3.17.
    pub text_offset: u64,
    /// The kernel's footprint from its first byte, BSS included; `None`
    /// for a kernel older than 3.17, which does not say.
    pub image_size: Option<u64>,
    /// The kernel's page size.
    pub page_size: PageSize,
    /// Where it may be placed.
    pub placement: PhysicalPlacement,
}

/// Why bytes are not a bootable arm64 `Image`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer bytes than the header.
    TooShort {
        /// How many there are.
        len: usize,
    },
    /// The magic number is not [`MAGIC`].
    BadMagic {
        /// What is there instead, read little-endian.
        found: u32,
    },
    /// The kernel is big-endian (flags bit 0).
    BigEndian,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HeaderError::TooShort { len } => write!(
                f,
                "the kernel is {len} bytes, shorter than the {HEADER_LEN}-byte arm64 Image header"
            ),
            HeaderError::BadMagic { found } => write!(
                f,
                "the kernel has magic {found:#010x} at offset 56, not the arm64 Image's {MAGIC:#010x} (a compressed vmlinuz must be decompressed first)"
            ),
            HeaderError::BigEndian => {
                f.write_str("the kernel is big-endian; this hypervisor runs little-endian guests")
            }
        }
    }
}

/// Why a kernel with a valid header cannot be booted in this RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// The kernel's footprint does not fit in guest RAM above the second
    /// 2 MiB boundary, or the file is longer than the footprint.
    Kernel(FootprintError),
    /// The DTB is larger than an arm64 kernel accepts.
    DtbTooLarge {
        /// The blob's size in bytes.
        len: u64,
    },
    /// The DTB or the initrd does not fit above the kernel.
    Blobs(PlacementError),
    /// The initrd and the kernel do not fit one 1 GiB-aligned window of
    /// 32 GiB.
    InitrdOutsideWindow {
        /// The kernel's footprint.
        kernel: GpaRange,
        /// The initrd.
        initrd: GpaRange,
    },
}

impl From<FootprintError> for PlanError {
    fn from(e: FootprintError) -> Self {
        PlanError::Kernel(e)
    }
}

impl From<PlacementError> for PlanError {
    fn from(e: PlacementError) -> Self {
        PlanError::Blobs(e)
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PlanError::Kernel(e) => e.fmt(f),
            PlanError::DtbTooLarge { len } => write!(
                f,
                "the device tree is {len} bytes; an arm64 kernel takes at most {MAX_DTB_SIZE}"
            ),
            PlanError::Blobs(e) => e.fmt(f),
            PlanError::InitrdOutsideWindow { kernel, initrd } => write!(
                f,
                "the initrd at {initrd} and the kernel at {kernel} do not fit one 1 GiB-aligned 32 GiB window"
            ),
        }
    }
}

impl ImageHeader {
    /// Reads and checks the header at the start of `image` (its first
    /// [`HEADER_LEN`] bytes are enough).
    pub fn parse(image: &[u8]) -> Result<Self, HeaderError> {
        let bytes = image_header(image).ok_or(HeaderError::TooShort { len: image.len() })?;
        let raw = RawHeader::read(bytes);
        if raw.magic != MAGIC {
            return Err(HeaderError::BadMagic { found: raw.magic });
        }
        if raw.image_size == 0 {
            return Ok(ImageHeader {
                raw,
                text_offset: LEGACY_TEXT_OFFSET,
                image_size: None,
                page_size: PageSize::Unspecified,
                placement: PhysicalPlacement::NearRamStart,
            });
        }
        if raw.flags & 1 != 0 {
            return Err(HeaderError::BigEndian);
        }
        let page_size = match (raw.flags >> 1) & 3 {
            0 => PageSize::Unspecified,
            1 => PageSize::K4,
            2 => PageSize::K16,
            _ => PageSize::K64,
        };
        let placement = if raw.flags & (1 << 3) != 0 {
            PhysicalPlacement::Anywhere
        } else {
            PhysicalPlacement::NearRamStart
        };
        Ok(ImageHeader {
            raw,
            text_offset: raw.text_offset,
            image_size: Some(raw.image_size),
            page_size,
            placement,
        })
    }

    /// Where a kernel of `file_len` bytes with this header goes in `ram`:
    /// `text_offset` above the second 2 MiB boundary of RAM (the first
    /// one at or after RAM start plus [`LOW_RESERVE`]), its whole footprint
    /// inside RAM.
    ///
    /// The boot protocol allows any 2 MiB-aligned base; this one is where
    /// QEMU's `-kernel` puts a kernel with a small `text_offset` (it keeps
    /// the bottom 2 MiB for its boot stub), so a guest only ever tested
    /// there runs here too. ArceOS kernels are such guests: their header
    /// says `text_offset` 0, but they are linked to run 2 MiB above RAM
    /// start and fail anywhere else.
    pub fn place(&self, ram: &Region, file_len: u64) -> Result<KernelPlacement, PlanError> {
        let base = ram
            .gpa
            .as_u64()
            .checked_add(LOW_RESERVE)
            .and_then(|low| low.checked_next_multiple_of(KERNEL_ALIGN))
            .map(GuestPhysAddr::new);
        Ok(place_kernel(
            ram,
            base,
            self.text_offset,
            file_len,
            self.image_size,
        )?)
    }

    /// The whole plan: the kernel as [`ImageHeader::place`] puts it, a DTB
    /// of (at most) `dtb_len` bytes and an initrd of `initrd_len` bytes
    /// above it, with arm64's own rules checked (see the module docs).
    pub fn plan_boot(
        &self,
        ram: &Region,
        file_len: u64,
        initrd_len: Option<u64>,
        dtb_len: u64,
    ) -> Result<LinuxBootPlan, PlanError> {
        let kernel = self.place(ram, file_len)?;
        if dtb_len > MAX_DTB_SIZE {
            return Err(PlanError::DtbTooLarge { len: dtb_len });
        }
        let blobs = place_initrd_and_dtb(ram, kernel.footprint, initrd_len, dtb_len)?;
        if let Some(initrd) = blobs.initrd {
            let start = kernel.footprint.start.min(initrd.start).as_u64();
            let window = start & !(INITRD_WINDOW_ALIGN - 1);
            let end = kernel.footprint.end.max(initrd.end).as_u64();
            if end - window > INITRD_WINDOW_SIZE {
                return Err(PlanError::InitrdOutsideWindow {
                    kernel: kernel.footprint,
                    initrd,
                });
            }
        }
        Ok(LinuxBootPlan { kernel, blobs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::{AARCH64_VIRT, test_layout};

    fn arm() -> crate::layout::GuestLayout<'static> {
        test_layout(&AARCH64_VIRT)
    }

    const MIB: u64 = 1 << 20;

    /// The first 64 bytes of Debian bookworm's `vmlinuz-6.1.0-56-arm64`
    /// (package `linux-image-6.1.0-56-arm64` 6.1.192-2, an uncompressed
    /// `Image` of 32956352 bytes despite its name), copied once with
    /// `xxd`: an EFI-stub `MZ` in `code0`, `text_offset` 0,
    /// `image_size` 0x201_0000, flags 0xa (little-endian, 4 KiB pages,
    /// anywhere), PE/COFF header at 0x40.
    const DEBIAN_6_1: [u8; HEADER_LEN] = [
        0x4d, 0x5a, 0x40, 0xfa, 0x56, 0xa3, 0x59, 0x14, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, //
        0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x41, 0x52, 0x4d, 0x64, 0x40, 0x00, 0x00, 0x00, //
    ];
    const DEBIAN_FILE_LEN: u64 = 32_956_352;

    /// A header with these fields, the rest zero.
    fn synthetic(text_offset: u64, image_size: u64, flags: u64) -> [u8; HEADER_LEN] {
        let mut h = [0; HEADER_LEN];
        h[0..4].copy_from_slice(&0x1400_0010u32.to_le_bytes()); // b +0x40
        h[8..16].copy_from_slice(&text_offset.to_le_bytes());
        h[16..24].copy_from_slice(&image_size.to_le_bytes());
        h[24..32].copy_from_slice(&flags.to_le_bytes());
        h[56..60].copy_from_slice(b"ARM\x64");
        h
    }

    fn ram(start: u64, size: u64) -> Region {
        Region::ram(GuestPhysAddr::new(start), size)
    }

    fn gpa(a: u64) -> GuestPhysAddr {
        GuestPhysAddr::new(a)
    }

    fn range(start: u64, len: u64) -> GpaRange {
        GpaRange::new(gpa(start), len).unwrap()
    }

    #[test]
    fn debians_kernel_header_reads_as_its_file_says() {
        let h = ImageHeader::parse(&DEBIAN_6_1).unwrap();
        assert_eq!(
            h.raw,
            RawHeader {
                code0: 0xfa40_5a4d,
                code1: 0x1459_a356,
                text_offset: 0,
                image_size: 0x201_0000,
                flags: 0xa,
                res2: 0,
                res3: 0,
                res4: 0,
                magic: MAGIC,
                res5: 0x40,
            }
        );
        assert_eq!(&h.raw.code0.to_le_bytes()[..2], b"MZ");
        assert_eq!(h.text_offset, 0);
        assert_eq!(h.image_size, Some(0x201_0000));
        assert_eq!(h.page_size, PageSize::K4);
        assert_eq!(h.page_size.bytes(), Some(4096));
        assert_eq!(h.placement, PhysicalPlacement::Anywhere);

        // In the default 128 MiB at 0x4000_0000: 2 MiB above RAM's start,
        // DTB at the top 2 MiB boundary, a 4 MiB initrd just below.
        let ram = *arm().ram().unwrap();
        let plan = h
            .plan_boot(&ram, DEBIAN_FILE_LEN, Some(4 * MIB), 0x1000)
            .unwrap();
        assert_eq!(
            plan.kernel,
            KernelPlacement {
                base: gpa(0x4020_0000),
                load: gpa(0x4020_0000),
                footprint: range(0x4020_0000, 0x201_0000),
            }
        );
        assert_eq!(plan.blobs.dtb, range(0x47e0_0000, 0x1000));
        assert_eq!(plan.blobs.initrd, Some(range(0x47a0_0000, 4 * MIB)));
    }

    #[test]
    fn fields_and_flags_of_a_synthetic_header() {
        let h = ImageHeader::parse(&synthetic(0x8_0000, 0x123_4000, 0b0100)).unwrap();
        assert_eq!(h.raw.code0, 0x1400_0010);
        assert_eq!(h.text_offset, 0x8_0000);
        assert_eq!(h.image_size, Some(0x123_4000));
        assert_eq!(h.page_size, PageSize::K16);
        assert_eq!(h.placement, PhysicalPlacement::NearRamStart);
        for (flags, page) in [
            (0b000, PageSize::Unspecified),
            (0b010, PageSize::K4),
            (0b100, PageSize::K16),
            (0b110, PageSize::K64),
        ] {
            let h = ImageHeader::parse(&synthetic(0, 0x1000, flags)).unwrap();
            assert_eq!(h.page_size, page, "flags {flags:#b}");
        }
        assert_eq!(PageSize::K64.bytes(), Some(64 << 10));
        assert_eq!(PageSize::Unspecified.bytes(), None);
        // Reserved bits are ignored; the header's tail may follow.
        let mut image = synthetic(0, 0x1000, 0xf0 | 0b1010).to_vec();
        image.extend_from_slice(&[0xaa; 100]);
        let h = ImageHeader::parse(&image).unwrap();
        assert_eq!(
            (h.page_size, h.placement),
            (PageSize::K4, PhysicalPlacement::Anywhere)
        );
        // Every field lands where booting.rst puts it.
        let mut bytes = [0u8; HEADER_LEN];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8;
        }
        let raw = RawHeader::read(&bytes);
        assert_eq!(raw.code1, 0x0706_0504);
        assert_eq!(raw.flags, 0x1f1e_1d1c_1b1a_1918);
        assert_eq!(raw.res4, 0x3736_3534_3332_3130);
        assert_eq!(raw.res5, 0x3f3e_3d3c);
    }

    #[test]
    fn what_is_not_an_arm64_image_is_refused() {
        assert_eq!(
            ImageHeader::parse(&DEBIAN_6_1[..63]),
            Err(HeaderError::TooShort { len: 63 })
        );
        assert_eq!(
            ImageHeader::parse(&[]),
            Err(HeaderError::TooShort { len: 0 })
        );
        // A gzip-compressed vmlinuz, and the magic read big-endian.
        let mut gz = [0u8; HEADER_LEN];
        gz[..4].copy_from_slice(&[0x1f, 0x8b, 0x08, 0x00]);
        assert_eq!(
            ImageHeader::parse(&gz),
            Err(HeaderError::BadMagic { found: 0 })
        );
        let mut swapped = DEBIAN_6_1;
        swapped[56..60].copy_from_slice(b"dMRA");
        let err = ImageHeader::parse(&swapped).unwrap_err();
        assert_eq!(err, HeaderError::BadMagic { found: 0x4152_4d64 });
        assert_eq!(
            err.to_string(),
            "the kernel has magic 0x41524d64 at offset 56, not the arm64 Image's 0x644d5241 (a compressed vmlinuz must be decompressed first)"
        );
        assert_eq!(
            ImageHeader::parse(&synthetic(0, 0x1000, 0b1011)),
            Err(HeaderError::BigEndian)
        );
    }

    #[test]
    fn a_kernel_older_than_3_17_gets_the_assumed_offset() {
        // image_size 0: text_offset is 0x80000 whatever the field holds
        // (here big-endian), and the flags are not read.
        let legacy = synthetic(0x0000_0800_0000_0000, 0, 0b1);
        let h = ImageHeader::parse(&legacy).unwrap();
        assert_eq!(h.text_offset, LEGACY_TEXT_OFFSET);
        assert_eq!(h.image_size, None);
        assert_eq!(h.page_size, PageSize::Unspecified);
        assert_eq!(h.placement, PhysicalPlacement::NearRamStart);
        // Its file is the least footprint.
        let k = h.place(&ram(0x4000_0000, 64 * MIB), 0x80_0000).unwrap();
        assert_eq!(k.base, gpa(0x4020_0000));
        assert_eq!(k.load, gpa(0x4028_0000));
        assert_eq!(k.footprint, range(0x4028_0000, 0x80_0000));
    }

    #[test]
    fn the_base_is_the_first_2_mib_boundary_above_the_low_reserve() {
        let h = ImageHeader::parse(&synthetic(0x8_0000, 0x100_0000, 0b1010)).unwrap();
        for (start, base) in [
            (0x4000_0000, 0x4020_0000),
            (0x4000_1000, 0x4040_0000),
            (0x401f_f000, 0x4040_0000),
            (0x8020_0000, 0x8040_0000),
        ] {
            let k = h.place(&ram(start, 64 * MIB), 0x10_0000).unwrap();
            assert_eq!(k.base, gpa(base), "RAM at {start:#x}");
            assert_eq!(k.base.as_u64() % KERNEL_ALIGN, 0);
            assert_eq!(k.load, gpa(base + 0x8_0000));
            assert_eq!(k.footprint, range(base + 0x8_0000, 0x100_0000));
        }
    }

    #[test]
    fn the_whole_footprint_must_fit_in_ram() {
        let h = ImageHeader::parse(&DEBIAN_6_1).unwrap();
        // 0x201_0000 bytes above the 2 MiB reserve need a bit more than
        // 34 MiB.
        assert!(
            h.place(&ram(0x4000_0000, 2 * MIB + 0x201_0000), DEBIAN_FILE_LEN)
                .is_ok()
        );
        let err = h
            .place(&ram(0x4000_0000, 34 * MIB), DEBIAN_FILE_LEN)
            .unwrap_err();
        assert_eq!(
            err,
            PlanError::Kernel(FootprintError::DoesNotFit {
                load: gpa(0x4020_0000),
                footprint: 0x201_0000,
                ram_end: gpa(0x4220_0000)
            })
        );
        assert_eq!(
            err.to_string(),
            "the kernel needs 33619968 bytes from 0x40200000, but guest RAM ends at 0x42200000"
        );
        // Rounding RAM's start up to 2 MiB costs room.
        assert!(matches!(
            h.place(&ram(0x4000_1000, 2 * MIB + 0x201_0000), DEBIAN_FILE_LEN),
            Err(PlanError::Kernel(FootprintError::DoesNotFit { load, .. })) if load == gpa(0x4040_0000)
        ));
        // The BSS counts, not only the file.
        let bss = ImageHeader::parse(&synthetic(0, 4 * MIB, 0b1010)).unwrap();
        assert!(bss.place(&ram(0x4000_0000, 6 * MIB), MIB).is_ok());
        assert!(bss.place(&ram(0x4000_0000, 6 * MIB - 0x1000), MIB).is_err());
        // A file longer than its claimed footprint is inconsistent.
        assert_eq!(
            bss.place(&ram(0x4000_0000, 64 * MIB), 4 * MIB + 1),
            Err(PlanError::Kernel(FootprintError::FileLargerThanImage {
                file_len: 4 * MIB + 1,
                image_size: 4 * MIB
            }))
        );
        // Absurd offsets and sizes do not wrap around.
        let huge = ImageHeader::parse(&synthetic(u64::MAX - 0x1000, 0x10_0000, 0b1010)).unwrap();
        assert!(matches!(
            huge.place(&ram(0x4000_0000, 64 * MIB), 0x1000),
            Err(PlanError::Kernel(FootprintError::DoesNotFit { .. }))
        ));
        let huge = ImageHeader::parse(&synthetic(0, u64::MAX, 0b1010)).unwrap();
        assert!(matches!(
            huge.place(&ram(0x4000_0000, 64 * MIB), 0x1000),
            Err(PlanError::Kernel(FootprintError::DoesNotFit { .. }))
        ));
        let top = ImageHeader::parse(&synthetic(0, 0x1000, 0b1010)).unwrap();
        assert!(matches!(
            top.place(&ram(0xffff_ffff_fff0_0000, 0x8_0000), 0x1000),
            Err(PlanError::Kernel(FootprintError::DoesNotFit { .. }))
        ));
    }

    #[test]
    fn arm64_rules_for_the_dtb_and_the_initrd() {
        let h = ImageHeader::parse(&DEBIAN_6_1).unwrap();
        let ram128 = ram(0x4000_0000, 128 * MIB);
        assert!(h.plan_boot(&ram128, DEBIAN_FILE_LEN, None, 2 * MIB).is_ok());
        let err = h
            .plan_boot(&ram128, DEBIAN_FILE_LEN, None, 2 * MIB + 1)
            .unwrap_err();
        assert_eq!(err, PlanError::DtbTooLarge { len: 2 * MIB + 1 });
        assert_eq!(
            err.to_string(),
            "the device tree is 2097153 bytes; an arm64 kernel takes at most 2097152"
        );

        // The neutral placement's refusals come through.
        let err = h
            .plan_boot(&ram128, DEBIAN_FILE_LEN, Some(128 * MIB), 0x1000)
            .unwrap_err();
        assert!(matches!(
            err,
            PlanError::Blobs(PlacementError::InitrdDoesNotFit { .. })
        ));
        assert!(err.to_string().starts_with("the initrd (134217728 bytes)"));
        assert!(matches!(
            h.plan_boot(
                &ram(0x4000_0000, 2 * MIB + 0x201_0000),
                DEBIAN_FILE_LEN,
                None,
                8
            ),
            Err(PlanError::Blobs(PlacementError::DtbDoesNotFit { .. }))
        ));

        // 40 GiB of RAM from 0x4000_0000: the initrd at its top is more
        // than 32 GiB from the 1 GiB boundary below the kernel.
        let big = ram(0x4000_0000, 40 << 30);
        let err = h
            .plan_boot(&big, DEBIAN_FILE_LEN, Some(16 * MIB), 0x1000)
            .unwrap_err();
        let initrd = range(0xa_3fe0_0000 - 16 * MIB, 16 * MIB);
        assert_eq!(
            err,
            PlanError::InitrdOutsideWindow {
                kernel: range(0x4020_0000, 0x201_0000),
                initrd,
            }
        );
        assert_eq!(
            err.to_string(),
            "the initrd at 0xa3ee00000..0xa3fe00000 and the kernel at 0x40200000..0x42210000 do not fit one 1 GiB-aligned 32 GiB window"
        );
        // Without an initrd the window does not matter, and 32 GiB of RAM
        // from a 1 GiB boundary is exactly one window.
        assert!(h.plan_boot(&big, DEBIAN_FILE_LEN, None, 0x1000).is_ok());
        let window = ram(0x4000_0000, 32 << 30);
        assert!(
            h.plan_boot(&window, DEBIAN_FILE_LEN, Some(16 * MIB), 0x1000)
                .is_ok()
        );
    }
}
