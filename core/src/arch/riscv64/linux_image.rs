//! The RISC-V Linux `Image`: reading its 64-byte header and planning where
//! the kernel, its device tree and its initrd go in guest RAM
//! (`Documentation/riscv/boot-image-header.rst`, moved to
//! `Documentation/arch/riscv/boot-image-header.rst` in later kernels).
//!
//! # The header
//!
//! | offset | field | |
//! |---|---|---|
//! | 0 | `code0`, `code1` | a jump to the kernel's entry (an EFI-stub kernel's `code0` starts with `MZ`) |
//! | 8 | `text_offset` | where the image goes above the start of RAM (0x20_0000 for an RV64 S-mode kernel) |
//! | 16 | `image_size` | the kernel's footprint from its first byte, BSS included |
//! | 24 | `flags` | bit 0: big-endian |
//! | 32 | `version` | major in bits 16-31, minor in bits 0-15 (0.2 since Linux 5.5) |
//! | 36, 40 | `res1`, `res2` | reserved |
//! | 48 | `magic` | "RISCV\0\0\0", deprecated since version 0.2 |
//! | 56 | `magic2` | "RSC\x05", at arm64's `magic` offset |
//! | 60 | `res3` | offset of the PE/COFF header (EFI stub) |
//!
//! [`RawHeader::read`] decodes each field little-endian at its offset
//! ([`crate::boot_layout::HeaderFields`], shared with arm64).
//! [`ImageHeader::parse`] checks it:
//!
//! - Fewer than 64 bytes, or neither magic, is not a Linux `Image`
//!   ([`HeaderError::TooShort`], [`HeaderError::BadMagic`]). Either magic
//!   is enough: `magic2` is the one the document says to use from version
//!   0.2 on, `magic` the one older kernels carry alone.
//! - A big-endian kernel (flags bit 0) is refused
//!   ([`HeaderError::BigEndian`]): the hypervisor's device models take the
//!   guest's MMIO data as little-endian.
//! - `image_size` 0 is refused ([`HeaderError::NoImageSize`]): "Image size
//!   is mandatory for boot loader to load kernel image. Booting will fail
//!   otherwise."
//!
//! # The plan
//!
//! The hypervisor loads every riscv64 guest at one address, the layout's
//! entry (0x8020_0000, where OpenSBI jumps to an S-mode payload on QEMU
//! `virt`). A Linux kernel expects to be `text_offset` above a 2 MiB-aligned
//! base ([`KERNEL_ALIGN`], the PMD size the RV64 kernel maps itself with);
//! [`ImageHeader::place`] takes RAM's start rounded up to that alignment as
//! the base and checks that base plus `text_offset` is that load address,
//! failing with [`PlanError::LoadAddress`] otherwise rather than booting a
//! kernel where it does not expect to run. Its whole footprint must lie in
//! RAM ([`crate::boot_layout::place_kernel`]).
//!
//! [`ImageHeader::plan_boot`] adds the DTB and the initrd with
//! [`crate::boot_layout::place_initrd_and_dtb`], as on arm64: the DTB at the
//! top of RAM, the initrd page-aligned below it. The kernel is then entered
//! at its first byte in S-mode (VS-mode here), `a0` = the hart id, `a1` =
//! the DTB's address.

use core::fmt;
use core::mem::{offset_of, size_of};

use crate::addr::GuestPhysAddr;
use crate::boot_layout::{
    FootprintError, HeaderFields, IMAGE_HEADER_LEN, KernelPlacement, LinuxBootPlan, PlacementError,
    image_header, place_initrd_and_dtb, place_kernel,
};
use crate::layout::Region;

/// The header's size in bytes.
pub const HEADER_LEN: usize = IMAGE_HEADER_LEN;

/// The header's deprecated `magic`: "RISCV\0\0\0" read as a little-endian
/// `u64`.
pub const MAGIC: u64 = 0x56_4353_4952;

/// The header's `magic2`: "RSC\x05" read as a little-endian `u32`.
pub const MAGIC2: u32 = 0x0543_5352;

/// The alignment of the base the image is placed `text_offset` above: an
/// RV64 kernel maps itself with 2 MiB pages.
pub const KERNEL_ALIGN: u64 = 2 << 20;

/// The header exactly as `boot-image-header.rst` lays it out.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawHeader {
    /// Executable code.
    pub code0: u32,
    /// Executable code.
    pub code1: u32,
    /// Image load offset from the start of RAM.
    pub text_offset: u64,
    /// Effective image size.
    pub image_size: u64,
    /// Kernel flags.
    pub flags: u64,
    /// Version of the header.
    pub version: u32,
    /// Reserved.
    pub res1: u32,
    /// Reserved.
    pub res2: u64,
    /// Magic number, [`MAGIC`] (deprecated).
    pub magic: u64,
    /// Magic number 2, [`MAGIC2`].
    pub magic2: u32,
    /// Reserved (the PE/COFF header's offset).
    pub res3: u32,
}

const _: () = assert!(size_of::<RawHeader>() == HEADER_LEN);
const _: () = assert!(offset_of!(RawHeader, magic) == 48);
const _: () = assert!(offset_of!(RawHeader, magic2) == 56);

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
            version: u32_at(offset_of!(RawHeader, version)),
            res1: u32_at(offset_of!(RawHeader, res1)),
            res2: u64_at(offset_of!(RawHeader, res2)),
            magic: u64_at(offset_of!(RawHeader, magic)),
            magic2: u32_at(offset_of!(RawHeader, magic2)),
            res3: u32_at(offset_of!(RawHeader, res3)),
        }
    }
}

/// A checked header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    /// The fields as read.
    pub raw: RawHeader,
}

/// Why bytes are not a bootable RISC-V Linux `Image`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer bytes than the header.
    TooShort {
        /// How many there are.
        len: usize,
    },
    /// Neither magic number is there.
    BadMagic {
        /// What is at `magic`'s offset, read little-endian.
        magic: u64,
        /// What is at `magic2`'s offset, read little-endian.
        magic2: u32,
    },
    /// The kernel is big-endian (flags bit 0).
    BigEndian,
    /// `image_size` is 0, which the boot protocol does not allow.
    NoImageSize,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HeaderError::TooShort { len } => write!(
                f,
                "the kernel is {len} bytes, shorter than the {HEADER_LEN}-byte RISC-V Image header"
            ),
            HeaderError::BadMagic { magic, magic2 } => write!(
                f,
                "the kernel has {magic:#x} at offset 48 and {magic2:#010x} at offset 56, not the RISC-V Image's magic {MAGIC:#x} or {MAGIC2:#010x}"
            ),
            HeaderError::BigEndian => {
                f.write_str("the kernel is big-endian; this hypervisor runs little-endian guests")
            }
            HeaderError::NoImageSize => {
                f.write_str("the RISC-V Image header's image_size is 0, which it must not be")
            }
        }
    }
}

/// Why a kernel with a valid header cannot be booted in this RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// The kernel wants to be somewhere else than where the hypervisor
    /// loads it.
    LoadAddress {
        /// Where the hypervisor loads the image.
        load: GuestPhysAddr,
        /// RAM's 2 MiB-aligned base.
        base: GuestPhysAddr,
        /// The header's `text_offset`.
        text_offset: u64,
    },
    /// The kernel's footprint does not fit in guest RAM, or the file is
    /// longer than the footprint.
    Kernel(FootprintError),
    /// The DTB or the initrd does not fit above the kernel.
    Blobs(PlacementError),
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
            PlanError::LoadAddress {
                load,
                base,
                text_offset,
            } => write!(
                f,
                "the kernel asks to run {text_offset:#x} above RAM's 2 MiB-aligned base {base:#x}, but riscv64 guests are loaded at {load:#x}"
            ),
            PlanError::Kernel(e) => e.fmt(f),
            PlanError::Blobs(e) => e.fmt(f),
        }
    }
}

impl ImageHeader {
    /// Reads and checks the header at the start of `image` (its first
    /// [`HEADER_LEN`] bytes are enough).
    pub fn parse(image: &[u8]) -> Result<Self, HeaderError> {
        let bytes = image_header(image).ok_or(HeaderError::TooShort { len: image.len() })?;
        let raw = RawHeader::read(bytes);
        if raw.magic2 != MAGIC2 && raw.magic != MAGIC {
            return Err(HeaderError::BadMagic {
                magic: raw.magic,
                magic2: raw.magic2,
            });
        }
        if raw.flags & 1 != 0 {
            return Err(HeaderError::BigEndian);
        }
        if raw.image_size == 0 {
            return Err(HeaderError::NoImageSize);
        }
        Ok(ImageHeader { raw })
    }

    /// The header's version as (major, minor).
    pub const fn version(&self) -> (u16, u16) {
        ((self.raw.version >> 16) as u16, self.raw.version as u16)
    }

    /// Where a kernel of `file_len` bytes with this header goes in `ram`
    /// when the hypervisor loads it at `load`: `load` must be
    /// `text_offset` above RAM's 2 MiB-aligned base, and the whole
    /// footprint must lie in RAM.
    pub fn place(
        &self,
        ram: &Region,
        load: GuestPhysAddr,
        file_len: u64,
    ) -> Result<KernelPlacement, PlanError> {
        let base = ram
            .gpa
            .as_u64()
            .checked_next_multiple_of(KERNEL_ALIGN)
            .map(GuestPhysAddr::new);
        let text_offset = self.raw.text_offset;
        match base {
            Some(base) if base.checked_add(text_offset) == Some(load) => {}
            _ => {
                return Err(PlanError::LoadAddress {
                    load,
                    base: base.unwrap_or(GuestPhysAddr::new(u64::MAX)),
                    text_offset,
                });
            }
        }
        Ok(place_kernel(
            ram,
            base,
            text_offset,
            file_len,
            Some(self.raw.image_size),
        )?)
    }

    /// The whole plan: the kernel as [`ImageHeader::place`] puts it, a DTB
    /// of (at most) `dtb_len` bytes and an initrd of `initrd_len` bytes
    /// above it.
    pub fn plan_boot(
        &self,
        ram: &Region,
        load: GuestPhysAddr,
        file_len: u64,
        initrd_len: Option<u64>,
        dtb_len: u64,
    ) -> Result<LinuxBootPlan, PlanError> {
        let kernel = self.place(ram, load, file_len)?;
        let blobs = place_initrd_and_dtb(ram, kernel.footprint, initrd_len, dtb_len)?;
        Ok(LinuxBootPlan { kernel, blobs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot_layout::GpaRange;
    use crate::machine::RISCV64_VIRT;

    const MIB: u64 = 1 << 20;

    /// The first 64 bytes of the `Image` `cargo xtask run --arch riscv64
    /// --linux` builds from Debian bookworm's `linux-source-6.1` (6.1.192,
    /// 1633568 bytes), copied once with `xxd`: a compressed jump, then
    /// `text_offset` 0x20_0000, `image_size` 0x1c_4b90 (more than the file:
    /// the BSS), flags 0, version 0.2, both magics, no PE/COFF header.
    const LINUX_6_1: [u8; HEADER_LEN] = [
        0xd1, 0xa0, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, //
        0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x90, 0x4b, 0x1c, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x52, 0x49, 0x53, 0x43, 0x56, 0x00, 0x00, 0x00, //
        0x52, 0x53, 0x43, 0x05, 0x00, 0x00, 0x00, 0x00, //
    ];
    const LINUX_FILE_LEN: u64 = 1_633_568;
    const ENTRY: GuestPhysAddr = RISCV64_VIRT.entry;

    /// A header with these fields and magics, the rest zero.
    fn synthetic(text_offset: u64, image_size: u64, flags: u64) -> [u8; HEADER_LEN] {
        let mut h = [0; HEADER_LEN];
        h[8..16].copy_from_slice(&text_offset.to_le_bytes());
        h[16..24].copy_from_slice(&image_size.to_le_bytes());
        h[24..32].copy_from_slice(&flags.to_le_bytes());
        h[32..36].copy_from_slice(&2u32.to_le_bytes());
        h[48..56].copy_from_slice(b"RISCV\0\0\0");
        h[56..60].copy_from_slice(b"RSC\x05");
        h
    }

    fn ram(start: u64, size: u64) -> Region {
        Region::ram(GuestPhysAddr::new(start), size)
    }

    const fn gpa(a: u64) -> GuestPhysAddr {
        GuestPhysAddr::new(a)
    }

    fn range(start: u64, len: u64) -> GpaRange {
        GpaRange::new(gpa(start), len).unwrap()
    }

    #[test]
    fn the_built_kernels_header_reads_as_its_file_says() {
        let h = ImageHeader::parse(&LINUX_6_1).unwrap();
        assert_eq!(
            h.raw,
            RawHeader {
                code0: 0x0000_a0d1,
                code1: 0x0001_0000,
                text_offset: 0x20_0000,
                image_size: 0x1c_4b90,
                flags: 0,
                version: 2,
                res1: 0,
                res2: 0,
                magic: MAGIC,
                magic2: MAGIC2,
                res3: 0,
            }
        );
        assert_eq!(&h.raw.magic.to_le_bytes(), b"RISCV\0\0\0");
        assert_eq!(&h.raw.magic2.to_le_bytes(), b"RSC\x05");
        assert_eq!(h.version(), (0, 2));

        // In 256 MiB at 0x8000_0000: the kernel where the layout loads
        // every guest, its BSS counted, the DTB at the top 2 MiB boundary
        // and the initrd just below.
        let ram = ram(0x8000_0000, 256 * MIB);
        let plan = h
            .plan_boot(&ram, ENTRY, LINUX_FILE_LEN, Some(0x1234), 0x800)
            .unwrap();
        assert_eq!(
            plan.kernel,
            KernelPlacement {
                base: gpa(0x8000_0000),
                load: gpa(0x8020_0000),
                footprint: range(0x8020_0000, 0x1c_4b90),
            }
        );
        assert_eq!(plan.blobs.dtb, range(0x8fe0_0000, 0x800));
        assert_eq!(plan.blobs.initrd, Some(range(0x8fdf_e000, 0x1234)));
    }

    #[test]
    fn every_field_lands_where_the_document_puts_it() {
        let mut bytes = [0u8; HEADER_LEN];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8;
        }
        let raw = RawHeader::read(&bytes);
        assert_eq!(raw.code1, 0x0706_0504);
        assert_eq!(raw.text_offset, 0x0f0e_0d0c_0b0a_0908);
        assert_eq!(raw.image_size, 0x1716_1514_1312_1110);
        assert_eq!(raw.flags, 0x1f1e_1d1c_1b1a_1918);
        assert_eq!(raw.version, 0x2322_2120);
        assert_eq!(raw.res1, 0x2726_2524);
        assert_eq!(raw.res2, 0x2f2e_2d2c_2b2a_2928);
        assert_eq!(raw.magic, 0x3736_3534_3332_3130);
        assert_eq!(raw.magic2, 0x3b3a_3938);
        assert_eq!(raw.res3, 0x3f3e_3d3c);
    }

    #[test]
    fn either_magic_marks_a_linux_image() {
        let mut only_new = synthetic(0x20_0000, MIB, 0);
        only_new[48..56].fill(0);
        assert!(ImageHeader::parse(&only_new).is_ok());
        let mut only_old = synthetic(0x20_0000, MIB, 0);
        only_old[56..60].fill(0);
        assert!(ImageHeader::parse(&only_old).is_ok());
        // A longer file parses from its first 64 bytes.
        let mut image = LINUX_6_1.to_vec();
        image.extend_from_slice(&[0x13; 100]);
        assert!(ImageHeader::parse(&image).is_ok());
    }

    #[test]
    fn what_is_not_a_bootable_linux_image_is_refused() {
        assert_eq!(
            ImageHeader::parse(&LINUX_6_1[..63]),
            Err(HeaderError::TooShort { len: 63 })
        );
        // An ArceOS kernel or U-Boot: code from the first byte on.
        let code = [0x13u8; HEADER_LEN];
        let err = ImageHeader::parse(&code).unwrap_err();
        assert_eq!(
            err,
            HeaderError::BadMagic {
                magic: 0x1313_1313_1313_1313,
                magic2: 0x1313_1313
            }
        );
        assert_eq!(
            err.to_string(),
            "the kernel has 0x1313131313131313 at offset 48 and 0x13131313 at offset 56, not the RISC-V Image's magic 0x5643534952 or 0x05435352"
        );
        // arm64's magic at magic2's offset is not RISC-V's.
        let mut arm64 = [0u8; HEADER_LEN];
        arm64[56..60].copy_from_slice(b"ARM\x64");
        assert!(matches!(
            ImageHeader::parse(&arm64),
            Err(HeaderError::BadMagic { .. })
        ));
        assert_eq!(
            ImageHeader::parse(&synthetic(0x20_0000, MIB, 1)),
            Err(HeaderError::BigEndian)
        );
        // Reserved flag bits are not the endianness.
        assert!(ImageHeader::parse(&synthetic(0x20_0000, MIB, 0xfe)).is_ok());
        let err = ImageHeader::parse(&synthetic(0x20_0000, 0, 0)).unwrap_err();
        assert_eq!(err, HeaderError::NoImageSize);
        assert_eq!(
            err.to_string(),
            "the RISC-V Image header's image_size is 0, which it must not be"
        );
    }

    #[test]
    fn the_kernel_must_want_the_address_it_is_loaded_at() {
        let ram128 = ram(0x8000_0000, 128 * MIB);
        // An M-mode kernel (text_offset 0) or an RV32 one (4 MiB) is not
        // moved to suit it: the run fails, naming the numbers.
        for text_offset in [0, 0x40_0000] {
            let h = ImageHeader::parse(&synthetic(text_offset, MIB, 0)).unwrap();
            let err = h.place(&ram128, ENTRY, MIB).unwrap_err();
            assert_eq!(
                err,
                PlanError::LoadAddress {
                    load: ENTRY,
                    base: gpa(0x8000_0000),
                    text_offset
                }
            );
        }
        let h = ImageHeader::parse(&synthetic(0, MIB, 0)).unwrap();
        assert_eq!(
            h.place(&ram128, ENTRY, MIB).unwrap_err().to_string(),
            "the kernel asks to run 0x0 above RAM's 2 MiB-aligned base 0x80000000, but riscv64 guests are loaded at 0x80200000"
        );
        // RAM starting off a 2 MiB boundary moves the base up.
        let h = ImageHeader::parse(&synthetic(0x20_0000, MIB, 0)).unwrap();
        let odd = ram(0x8010_0000, 128 * MIB);
        assert_eq!(
            h.place(&odd, ENTRY, MIB),
            Err(PlanError::LoadAddress {
                load: ENTRY,
                base: gpa(0x8020_0000),
                text_offset: 0x20_0000
            })
        );
        assert_eq!(
            h.place(&odd, gpa(0x8040_0000), MIB).unwrap().base,
            gpa(0x8020_0000)
        );
        // Absurd offsets do not wrap around.
        let huge = ImageHeader::parse(&synthetic(u64::MAX, MIB, 0)).unwrap();
        assert!(matches!(
            huge.place(&ram128, ENTRY, MIB),
            Err(PlanError::LoadAddress { .. })
        ));
    }

    #[test]
    fn the_footprint_and_the_blobs_must_fit() {
        let h = ImageHeader::parse(&LINUX_6_1).unwrap();
        // 2 MiB below the kernel, then its whole footprint.
        let exact = ram(0x8000_0000, 2 * MIB + 0x1c_5000);
        assert!(h.place(&exact, ENTRY, LINUX_FILE_LEN).is_ok());
        let err = h
            .place(
                &ram(0x8000_0000, 2 * MIB + 0x1c_4000),
                ENTRY,
                LINUX_FILE_LEN,
            )
            .unwrap_err();
        assert_eq!(
            err,
            PlanError::Kernel(FootprintError::DoesNotFit {
                load: ENTRY,
                footprint: 0x1c_4b90,
                ram_end: gpa(0x803c_4000)
            })
        );
        assert_eq!(
            err.to_string(),
            "the kernel needs 1854352 bytes from 0x80200000, but guest RAM ends at 0x803c4000"
        );
        // A file longer than the footprint its header claims.
        assert_eq!(
            h.place(&ram(0x8000_0000, 128 * MIB), ENTRY, 0x1c_4b91),
            Err(PlanError::Kernel(FootprintError::FileLargerThanImage {
                file_len: 0x1c_4b91,
                image_size: 0x1c_4b90
            }))
        );
        // The blobs go above the BSS, not just above the file.
        let tight = ram(0x8000_0000, 4 * MIB);
        let plan = h
            .plan_boot(&tight, ENTRY, LINUX_FILE_LEN, Some(0x1000), 0x800)
            .unwrap();
        assert_eq!(plan.blobs.dtb, range(0x803f_f800, 0x800));
        assert_eq!(plan.blobs.initrd, Some(range(0x803f_e000, 0x1000)));
        let room = 0x803f_f000 - 0x803c_5000;
        let err = h
            .plan_boot(&tight, ENTRY, LINUX_FILE_LEN, Some(room + 1), 0x800)
            .unwrap_err();
        assert_eq!(
            err,
            PlanError::Blobs(PlacementError::InitrdDoesNotFit {
                len: room + 1,
                room
            })
        );
        assert!(err.to_string().starts_with("the initrd ("));
    }
}
