//! The Multiboot boot protocol, specification version 0.6.96 (the original
//! "Multiboot 1", not Multiboot2): finding and checking the kernel's
//! Multiboot header, planning where its bytes go, and writing the Multiboot
//! information structure the kernel reads at entry.
//!
//! ArceOS's x86 PC platform (`axplat-x86-pc`) is a Multiboot kernel: its
//! `multiboot.S` carries a header with flags `0x0001_0002` (memory
//! information required, address fields valid) and its entry code takes
//! the magic from EAX and the information structure's address from EBX;
//! `mem.rs` then walks the memory map with the `multiboot` crate and takes
//! every [`MemoryType::Available`] range as RAM (it reserves the low 1 MiB
//! itself). That consumer needs flag bit 6 and the memory map; this module
//! always provides those, plus `mem_lower`/`mem_upper`, the command line and
//! the boot loader's name.
//!
//! # The header (spec 3.1 "OS image format")
//!
//! [`find_header`] scans the first [`SEARCH_LIMIT`] (8192) bytes of the
//! image at 32-bit aligned offsets for [`HEADER_MAGIC`] followed by `flags`
//! and a `checksum` that makes the three add up to zero modulo 2^32 (3.1.2
//! "The magic fields of Multiboot header"). The whole header, including the
//! fields its flags enable, must lie inside those 8192 bytes.
//!
//! Flag bits 0-15 are requirements: a loader that cannot meet one must
//! refuse the image. This loader accepts:
//!
//! - bit 0, page-aligned boot modules: trivially met, there are no modules;
//! - bit 1, memory information: always provided (`mem_*` and the memory
//!   map);
//! - bit 2, video mode information: accepted *without being honoured*. The
//!   header's graphics fields are only a preference (3.1.4 "The graphics
//!   fields of Multiboot header": the boot loader may choose a different
//!   mode), and the guest has no display, so the information structure
//!   reports no VBE or framebuffer information (its flags 11 and 12 stay
//!   clear, which a kernel must check before using those fields). Refusing
//!   a kernel for asking about a screen it never gets would only make it
//!   unbootable. The preference is kept in [`MultibootHeader::video`].
//!
//! Any other requirement bit is refused ([`HeaderError::UnsupportedRequirements`]).
//! Bits 16-31 are optional features and are ignored, except bit 16.
//!
//! # Loading (3.1.3 "The address fields of Multiboot header")
//!
//! With flag bit 16 the header's address fields say where the image goes,
//! whatever its file format (an ELF file too: GRUB and QEMU both prefer the
//! address fields when the bit is set). The image is then a flat byte
//! range: loading starts at file offset `header offset - (header_addr -
//! load_addr)`, copies `load_end_addr - load_addr` bytes (or up to the end
//! of the file when `load_end_addr` is 0) to `load_addr`, zeroes up to
//! `bss_end_addr` (no bss when 0) and enters at `entry_addr`. See
//! [`MultibootHeader::load_plan`]. Without bit 16 the image must be an ELF
//! file and its program headers say where the segments go;
//! [`MultibootHeader::load_method`] says which case applies.
//!
//! # The information structure (3.3 "Boot information format")
//!
//! [`write_info`] lays out, from a guest-physical `base`:
//!
//! | offset | what |
//! |---|---|
//! | 0 | [`BootInfo`], [`INFO_SIZE`] (120) bytes: the spec's 116 plus 4 zero bytes |
//! | 120 | the memory map, one 24-byte [`MmapEntry`] per range |
//! | then | the command line, NUL-terminated |
//! | then | the boot loader name, NUL-terminated |
//!
//! Flags 0 (`mem_lower`/`mem_upper`), 2 (`cmdline`), 6 (`mmap_*`) and 9
//! (`boot_loader_name`) are set; everything else is zero. `base` must be
//! 8-aligned: the `multiboot` crate reads the structure as a Rust struct of
//! alignment 8. All addresses in the structure are 32-bit, so it must end
//! below 4 GiB. A kernel may overwrite it once done with it; placing it in
//! the low 1 MiB keeps it out of the way of `axplat-x86-pc`, which does not
//! allocate there.
//!
//! The layout is written field by field in little-endian order from typed
//! structures ([`BootInfo::to_bytes`], [`MmapEntry::to_bytes`]), without
//! `unsafe`. The `multiboot` crate (0.8) was considered for writing: it has
//! setters meant for boot loaders (`Multiboot::from_ref`,
//! `set_memory_bounds`, `set_command_line`, `set_memory_regions`...), so it
//! is not read-only, but its `MultibootInfo` keeps its fields private and
//! has no serialisation, so getting its bytes into a guest buffer means
//! transmuting a struct that contains padding (reading padding bytes is
//! undefined behaviour), and its `MemoryManagement` contract hands out
//! `&'static` slices for strings it allocates. Hand-writing the 120 bytes is
//! less code than that glue and keeps this crate free of `unsafe` here and
//! of a proc-macro dependency (`paste`). The crate is used as a
//! dev-dependency instead: the tests read the written bytes back with it,
//! the way `axplat-x86-pc` does.
//!
//! # Machine state at entry (3.2 "Machine state")
//!
//! For the caller that starts the vCPU: EAX = [`BOOTLOADER_MAGIC`], EBX =
//! the information structure's physical address; CS a 32-bit read/execute
//! code segment and DS, ES, FS, GS, SS 32-bit read/write data segments, all
//! with base 0 and limit 0xFFFF_FFFF; A20 enabled; CR0.PE set and CR0.PG
//! clear; EFLAGS.VM and EFLAGS.IF clear. ESP, GDTR and IDTR are undefined:
//! the kernel sets up its own.

use core::fmt;

use crate::addr::GuestPhysAddr;

/// The magic value that starts a Multiboot header in the kernel image.
pub const HEADER_MAGIC: u32 = 0x1BAD_B002;
/// The value in EAX when a Multiboot loader enters the kernel.
pub const BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
/// The header must lie entirely within this many bytes from the image start.
pub const SEARCH_LIMIT: usize = 8192;
/// The header's alignment in the image (32 bits).
pub const HEADER_ALIGN: usize = 4;

/// Byte offsets of the header fields (spec 3.1.1 "The layout of Multiboot
/// header").
pub mod header_offset {
    /// `magic`, always present.
    pub const MAGIC: usize = 0;
    /// `flags`, always present.
    pub const FLAGS: usize = 4;
    /// `checksum`, always present.
    pub const CHECKSUM: usize = 8;
    /// `header_addr`, if flags bit 16.
    pub const HEADER_ADDR: usize = 12;
    /// `load_addr`, if flags bit 16.
    pub const LOAD_ADDR: usize = 16;
    /// `load_end_addr`, if flags bit 16.
    pub const LOAD_END_ADDR: usize = 20;
    /// `bss_end_addr`, if flags bit 16.
    pub const BSS_END_ADDR: usize = 24;
    /// `entry_addr`, if flags bit 16.
    pub const ENTRY_ADDR: usize = 28;
    /// `mode_type`, if flags bit 2.
    pub const MODE_TYPE: usize = 32;
    /// `width`, if flags bit 2.
    pub const WIDTH: usize = 36;
    /// `height`, if flags bit 2.
    pub const HEIGHT: usize = 40;
    /// `depth`, if flags bit 2.
    pub const DEPTH: usize = 44;
    /// Size of the header with only the magic fields.
    pub const MAGIC_END: usize = 12;
    /// Size of the header with the address fields.
    pub const ADDRESS_END: usize = 32;
    /// Size of the header with the graphics fields.
    pub const VIDEO_END: usize = 48;
}

bitflags::bitflags! {
    /// The header's `flags` (spec 3.1.2). Bits 0-15 are requirements, 16-31
    /// optional features; undefined bits are kept as read.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct HeaderFlags: u32 {
        /// Bit 0: boot modules must be 4 KiB-aligned.
        const PAGE_ALIGN = 1 << 0;
        /// Bit 1: `mem_*` fields (and the memory map if any) must be provided.
        const MEMORY_INFO = 1 << 1;
        /// Bit 2: video mode information must be provided; the header's
        /// graphics fields are valid.
        const VIDEO_MODE = 1 << 2;
        /// Bit 16: the header's address fields are valid and say where to load.
        const ADDRESS = 1 << 16;
        const _ = !0;
    }
}

impl HeaderFlags {
    /// The requirement bits (0-15).
    pub const REQUIREMENTS: u32 = 0xffff;
    /// The requirement bits this loader meets (or knowingly accepts, bit 2).
    pub const SUPPORTED_REQUIREMENTS: HeaderFlags = HeaderFlags::PAGE_ALIGN
        .union(HeaderFlags::MEMORY_INFO)
        .union(HeaderFlags::VIDEO_MODE);

    /// Requirement bits set here that this loader cannot meet.
    pub const fn unsupported(self) -> u32 {
        self.bits() & Self::REQUIREMENTS & !Self::SUPPORTED_REQUIREMENTS.bits()
    }
}

/// The header's address fields (flags bit 16), all guest-physical.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressFields {
    /// Where the header's first byte (the magic) is to be loaded.
    pub header_addr: u32,
    /// Where the first loaded byte goes (`<= header_addr`).
    pub load_addr: u32,
    /// End of the loaded bytes; 0 = up to the end of the file.
    pub load_end_addr: u32,
    /// End of the bss, zeroed by the loader; 0 = no bss.
    pub bss_end_addr: u32,
    /// Where the loader jumps.
    pub entry_addr: u32,
}

/// The header's preferred graphics mode (flags bit 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoMode {
    /// 0 = linear graphics, 1 = EGA text.
    pub mode_type: u32,
    /// Columns (pixels or characters); 0 = no preference.
    pub width: u32,
    /// Lines (pixels or characters); 0 = no preference.
    pub height: u32,
    /// Bits per pixel in graphics mode; 0 = no preference.
    pub depth: u32,
}

/// A checked Multiboot header found in an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MultibootHeader {
    /// File offset of the header's magic.
    pub offset: usize,
    /// The header's flags.
    pub flags: HeaderFlags,
    /// The address fields, when flags bit 16 is set.
    pub addresses: Option<AddressFields>,
    /// The preferred video mode, when flags bit 2 is set (not honoured).
    pub video: Option<VideoMode>,
}

/// Why an image has no usable Multiboot header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// No magic at an aligned offset within the first 8192 bytes.
    NotFound,
    /// A magic at `offset` whose checksum does not make the sum zero.
    BadChecksum {
        /// File offset of the magic.
        offset: usize,
        /// `magic + flags + checksum`, modulo 2^32.
        sum: u32,
    },
    /// A header with a valid checksum, but not 32-bit aligned.
    Misaligned {
        /// File offset of the magic.
        offset: usize,
    },
    /// The fields the flags enable run past the first 8192 bytes or the file.
    Truncated {
        /// File offset of the magic.
        offset: usize,
        /// Bytes the header needs from `offset`.
        needs: usize,
    },
    /// Requirement bits (0-15) this loader cannot meet.
    UnsupportedRequirements {
        /// File offset of the magic.
        offset: usize,
        /// The refused bits.
        bits: u32,
    },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HeaderError::NotFound => write!(
                f,
                "no Multiboot header (magic {HEADER_MAGIC:#x}) in the first {SEARCH_LIMIT} bytes"
            ),
            HeaderError::BadChecksum { offset, sum } => write!(
                f,
                "Multiboot header at offset {offset:#x}: magic + flags + checksum is {sum:#x}, not 0"
            ),
            HeaderError::Misaligned { offset } => write!(
                f,
                "Multiboot header at offset {offset:#x} is not 4-byte aligned"
            ),
            HeaderError::Truncated { offset, needs } => write!(
                f,
                "Multiboot header at offset {offset:#x} needs {needs} bytes, past the first {SEARCH_LIMIT} bytes or the end of the image"
            ),
            HeaderError::UnsupportedRequirements { offset, bits } => write!(
                f,
                "Multiboot header at offset {offset:#x} requires flags {bits:#x}, which this loader cannot provide"
            ),
        }
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

/// `(flags, checksum)` when `window[at..]` starts with the magic, or None.
fn magic_at(window: &[u8], at: usize) -> Option<(u32, u32)> {
    (at + header_offset::MAGIC_END <= window.len() && read_u32(window, at) == HEADER_MAGIC)
        .then(|| (read_u32(window, at + 4), read_u32(window, at + 8)))
}

fn checksum_sum(flags: u32, checksum: u32) -> u32 {
    HEADER_MAGIC.wrapping_add(flags).wrapping_add(checksum)
}

/// Finds and checks the Multiboot header in the first 8192 bytes of `image`.
///
/// The first aligned magic with a valid checksum is the header; a magic
/// with a bad checksum is skipped (it may be data), and reported only if no
/// valid header follows. A valid header at an unaligned offset is reported
/// as [`HeaderError::Misaligned`] rather than not found, to say why.
pub fn find_header(image: &[u8]) -> Result<MultibootHeader, HeaderError> {
    let window = &image[..image.len().min(SEARCH_LIMIT)];
    let mut bad_checksum = None;
    for at in (0..window.len()).step_by(HEADER_ALIGN) {
        let Some((flags, checksum)) = magic_at(window, at) else {
            continue;
        };
        let sum = checksum_sum(flags, checksum);
        if sum == 0 {
            return parse_at(window, at, HeaderFlags::from_bits_retain(flags));
        }
        bad_checksum.get_or_insert(HeaderError::BadChecksum { offset: at, sum });
    }
    if let Some(e) = bad_checksum {
        return Err(e);
    }
    let misaligned = (0..window.len())
        .filter(|at| at % HEADER_ALIGN != 0)
        .find(|&at| magic_at(window, at).is_some_and(|(f, c)| checksum_sum(f, c) == 0));
    Err(match misaligned {
        Some(offset) => HeaderError::Misaligned { offset },
        None => HeaderError::NotFound,
    })
}

/// Parses the header whose magic and checksum at `at` are valid.
fn parse_at(window: &[u8], at: usize, flags: HeaderFlags) -> Result<MultibootHeader, HeaderError> {
    use header_offset::*;
    let unsupported = flags.unsupported();
    if unsupported != 0 {
        return Err(HeaderError::UnsupportedRequirements {
            offset: at,
            bits: unsupported,
        });
    }
    let needs = if flags.contains(HeaderFlags::VIDEO_MODE) {
        VIDEO_END
    } else if flags.contains(HeaderFlags::ADDRESS) {
        ADDRESS_END
    } else {
        MAGIC_END
    };
    if at + needs > window.len() {
        return Err(HeaderError::Truncated { offset: at, needs });
    }
    let field = |off| read_u32(window, at + off);
    Ok(MultibootHeader {
        offset: at,
        flags,
        addresses: flags.contains(HeaderFlags::ADDRESS).then(|| AddressFields {
            header_addr: field(HEADER_ADDR),
            load_addr: field(LOAD_ADDR),
            load_end_addr: field(LOAD_END_ADDR),
            bss_end_addr: field(BSS_END_ADDR),
            entry_addr: field(ENTRY_ADDR),
        }),
        video: flags.contains(HeaderFlags::VIDEO_MODE).then(|| VideoMode {
            mode_type: field(MODE_TYPE),
            width: field(WIDTH),
            height: field(HEIGHT),
            depth: field(DEPTH),
        }),
    })
}

/// Where the bytes of an image with address fields go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadPlan {
    /// File offset of the first byte to copy.
    pub file_offset: u64,
    /// Number of bytes to copy from the file.
    pub file_size: u64,
    /// Guest-physical address of the first copied byte (`load_addr`).
    pub load: GuestPhysAddr,
    /// Bytes to zero right after the copied ones (up to `bss_end_addr`).
    pub bss_size: u64,
    /// Guest-physical entry point (`entry_addr`).
    pub entry: GuestPhysAddr,
}

impl LoadPlan {
    /// The first byte after the copied bytes (the start of the bss).
    pub fn load_end(&self) -> GuestPhysAddr {
        self.load + self.file_size
    }

    /// The first byte after everything the image occupies, bss included.
    pub fn end(&self) -> GuestPhysAddr {
        self.load_end() + self.bss_size
    }
}

/// How an image with a valid header is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadMethod {
    /// By the header's address fields (flags bit 16).
    AddressFields(LoadPlan),
    /// By the ELF file's program headers (bit 16 clear, an ELF image).
    Elf,
}

/// Why a Multiboot image cannot be loaded: its header, or its plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MultibootError {
    /// The header is present but unusable.
    Header(HeaderError),
    /// The header's address fields are inconsistent.
    Plan(PlanError),
}

impl fmt::Display for MultibootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MultibootError::Header(e) => write!(f, "{e}"),
            MultibootError::Plan(e) => write!(f, "{e}"),
        }
    }
}

/// Why the header's address fields do not describe a loadable image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// Flags bit 16 is clear: there are no address fields.
    NoAddressFields,
    /// Bit 16 is clear and the image is not ELF: nothing says where to load.
    NoLoadInformation,
    /// `load_addr` is above `header_addr`.
    LoadAfterHeader {
        /// `load_addr`.
        load_addr: u32,
        /// `header_addr`.
        header_addr: u32,
    },
    /// Loading would start before the beginning of the file.
    StartsBeforeFile {
        /// File offset of the header.
        header_offset: usize,
        /// `header_addr - load_addr`.
        distance: u32,
    },
    /// `load_end_addr` is nonzero and below `load_addr`.
    LoadEndBeforeLoad {
        /// `load_addr`.
        load_addr: u32,
        /// `load_end_addr`.
        load_end_addr: u32,
    },
    /// The bytes to load run past the end of the file.
    BeyondFile {
        /// File offset where loading starts.
        file_offset: u64,
        /// Bytes to load.
        size: u64,
        /// The file's length.
        file_len: u64,
    },
    /// `bss_end_addr` is nonzero and below the end of the loaded bytes.
    BssBeforeLoadEnd {
        /// End of the loaded bytes.
        load_end: u64,
        /// `bss_end_addr`.
        bss_end_addr: u32,
    },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PlanError::NoAddressFields => {
                f.write_str("the Multiboot header has no address fields (flags bit 16 clear)")
            }
            PlanError::NoLoadInformation => f.write_str(
                "the Multiboot header has no address fields and the image is not ELF: nothing says where to load it",
            ),
            PlanError::LoadAfterHeader {
                load_addr,
                header_addr,
            } => write!(
                f,
                "Multiboot load_addr {load_addr:#x} is above header_addr {header_addr:#x}"
            ),
            PlanError::StartsBeforeFile {
                header_offset,
                distance,
            } => write!(
                f,
                "Multiboot load would start {distance:#x} bytes before the header at file offset {header_offset:#x}, before the file"
            ),
            PlanError::LoadEndBeforeLoad {
                load_addr,
                load_end_addr,
            } => write!(
                f,
                "Multiboot load_end_addr {load_end_addr:#x} is below load_addr {load_addr:#x}"
            ),
            PlanError::BeyondFile {
                file_offset,
                size,
                file_len,
            } => write!(
                f,
                "Multiboot load of {size} bytes from file offset {file_offset:#x} runs past the {file_len}-byte image"
            ),
            PlanError::BssBeforeLoadEnd {
                load_end,
                bss_end_addr,
            } => write!(
                f,
                "Multiboot bss_end_addr {bss_end_addr:#x} is below the end of the loaded bytes {load_end:#x}"
            ),
        }
    }
}

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

impl MultibootHeader {
    /// Whether the loader must use the ELF program headers (bit 16 clear).
    pub const fn uses_elf_headers(&self) -> bool {
        self.addresses.is_none()
    }

    /// The load plan from the address fields, for an image of `file_len`
    /// bytes (spec 3.1.3).
    pub fn load_plan(&self, file_len: u64) -> Result<LoadPlan, PlanError> {
        let a = self.addresses.ok_or(PlanError::NoAddressFields)?;
        if a.load_addr > a.header_addr {
            return Err(PlanError::LoadAfterHeader {
                load_addr: a.load_addr,
                header_addr: a.header_addr,
            });
        }
        let distance = a.header_addr - a.load_addr;
        let file_offset = (self.offset as u64).checked_sub(distance as u64).ok_or(
            PlanError::StartsBeforeFile {
                header_offset: self.offset,
                distance,
            },
        )?;
        let file_size = if a.load_end_addr == 0 {
            file_len.saturating_sub(file_offset)
        } else {
            (a.load_end_addr.checked_sub(a.load_addr)).ok_or(PlanError::LoadEndBeforeLoad {
                load_addr: a.load_addr,
                load_end_addr: a.load_end_addr,
            })? as u64
        };
        if file_offset + file_size > file_len {
            return Err(PlanError::BeyondFile {
                file_offset,
                size: file_size,
                file_len,
            });
        }
        let load_end = a.load_addr as u64 + file_size;
        let bss_size = match a.bss_end_addr {
            0 => 0,
            end => (end as u64)
                .checked_sub(load_end)
                .ok_or(PlanError::BssBeforeLoadEnd {
                    load_end,
                    bss_end_addr: end,
                })?,
        };
        Ok(LoadPlan {
            file_offset,
            file_size,
            load: GuestPhysAddr::new(a.load_addr as u64),
            bss_size,
            entry: GuestPhysAddr::new(a.entry_addr as u64),
        })
    }

    /// How to load the image whose first bytes are `head` and whose length
    /// is `file_len`: by the address fields if present, else as ELF.
    pub fn load_method(&self, head: &[u8], file_len: u64) -> Result<LoadMethod, PlanError> {
        if self.addresses.is_some() {
            self.load_plan(file_len).map(LoadMethod::AddressFields)
        } else if head.starts_with(ELF_MAGIC) {
            Ok(LoadMethod::Elf)
        } else {
            Err(PlanError::NoLoadInformation)
        }
    }
}

bitflags::bitflags! {
    /// The information structure's `flags`: which fields are valid (spec 3.3).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct InfoFlags: u32 {
        /// Bit 0: `mem_lower` and `mem_upper`.
        const MEMORY = 1 << 0;
        /// Bit 1: `boot_device`.
        const BOOT_DEVICE = 1 << 1;
        /// Bit 2: `cmdline`.
        const CMDLINE = 1 << 2;
        /// Bit 3: `mods_count` and `mods_addr`.
        const MODS = 1 << 3;
        /// Bit 4: `syms` holds an a.out symbol table.
        const AOUT_SYMS = 1 << 4;
        /// Bit 5: `syms` holds ELF section headers.
        const ELF_SHDR = 1 << 5;
        /// Bit 6: `mmap_length` and `mmap_addr`.
        const MMAP = 1 << 6;
        /// Bit 7: `drives_length` and `drives_addr`.
        const DRIVES = 1 << 7;
        /// Bit 8: `config_table`.
        const CONFIG_TABLE = 1 << 8;
        /// Bit 9: `boot_loader_name`.
        const BOOT_LOADER_NAME = 1 << 9;
        /// Bit 10: `apm_table`.
        const APM_TABLE = 1 << 10;
        /// Bit 11: the `vbe_*` fields.
        const VBE = 1 << 11;
        /// Bit 12: the `framebuffer_*` fields.
        const FRAMEBUFFER = 1 << 12;
    }
}

/// Bytes this module reserves for [`BootInfo`]: the spec's 116, padded to
/// a multiple of 8 (the `multiboot` crate reads 120).
pub const INFO_SIZE: usize = 120;

/// The Multiboot information structure (spec 3.3 "Boot information
/// format"), every field at its spec offset; see [`BootInfo::to_bytes`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BootInfo {
    /// 0: which fields are valid ([`InfoFlags`]).
    pub flags: u32,
    /// 4: KiB of memory from address 0 (at most 640), flags bit 0.
    pub mem_lower: u32,
    /// 8: KiB of memory from 1 MiB up to the first hole, flags bit 0.
    pub mem_upper: u32,
    /// 12: BIOS disk the image was loaded from, flags bit 1.
    pub boot_device: u32,
    /// 16: physical address of the NUL-terminated command line, flags bit 2.
    pub cmdline: u32,
    /// 20: number of boot modules, flags bit 3.
    pub mods_count: u32,
    /// 24: physical address of the module list, flags bit 3.
    pub mods_addr: u32,
    /// 28..44: a.out symbol table or ELF section headers, flags bit 4 or 5.
    pub syms: [u32; 4],
    /// 44: bytes in the memory map, flags bit 6.
    pub mmap_length: u32,
    /// 48: physical address of the memory map's first `size` field, flags bit 6.
    pub mmap_addr: u32,
    /// 52: bytes in the drive list, flags bit 7.
    pub drives_length: u32,
    /// 56: physical address of the drive list, flags bit 7.
    pub drives_addr: u32,
    /// 60: physical address of the BIOS configuration table, flags bit 8.
    pub config_table: u32,
    /// 64: physical address of the NUL-terminated loader name, flags bit 9.
    pub boot_loader_name: u32,
    /// 68: physical address of the APM table, flags bit 10.
    pub apm_table: u32,
    /// 72: VBE control information, flags bit 11.
    pub vbe_control_info: u32,
    /// 76: VBE mode information, flags bit 11.
    pub vbe_mode_info: u32,
    /// 80: VBE mode number, flags bit 11.
    pub vbe_mode: u16,
    /// 82: VBE protected-mode interface segment, flags bit 11.
    pub vbe_interface_seg: u16,
    /// 84: VBE protected-mode interface offset, flags bit 11.
    pub vbe_interface_off: u16,
    /// 86: VBE protected-mode interface length, flags bit 11.
    pub vbe_interface_len: u16,
    /// 88: physical address of the framebuffer, flags bit 12.
    pub framebuffer_addr: u64,
    /// 96: framebuffer bytes per line, flags bit 12.
    pub framebuffer_pitch: u32,
    /// 100: framebuffer width, flags bit 12.
    pub framebuffer_width: u32,
    /// 104: framebuffer height, flags bit 12.
    pub framebuffer_height: u32,
    /// 108: framebuffer bits per pixel, flags bit 12.
    pub framebuffer_bpp: u8,
    /// 109: framebuffer type (indexed, RGB, EGA text), flags bit 12.
    pub framebuffer_type: u8,
    /// 110..116: palette or RGB field description, flags bit 12.
    pub color_info: [u8; 6],
    /// 116..120: zero, so that the struct has no implicit padding.
    pub reserved: [u8; 4],
}

const _: () = assert!(core::mem::size_of::<BootInfo>() == INFO_SIZE);

/// Sequential little-endian writer over a fixed buffer.
struct Le<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Le<'_> {
    fn bytes(&mut self, b: &[u8]) {
        self.buf[self.at..self.at + b.len()].copy_from_slice(b);
        self.at += b.len();
    }
    fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
}

/// Sequential little-endian reader over a fixed buffer.
struct LeRead<'a> {
    buf: &'a [u8],
    at: usize,
}

impl LeRead<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        out.copy_from_slice(&self.buf[self.at..self.at + N]);
        self.at += N;
        out
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
}

impl BootInfo {
    /// The structure as the guest sees it: each field little-endian at the
    /// offset its doc comment gives.
    pub fn to_bytes(&self) -> [u8; INFO_SIZE] {
        let mut out = [0; INFO_SIZE];
        let mut w = Le {
            buf: &mut out,
            at: 0,
        };
        for v in [
            self.flags,
            self.mem_lower,
            self.mem_upper,
            self.boot_device,
            self.cmdline,
            self.mods_count,
            self.mods_addr,
        ] {
            w.u32(v);
        }
        for v in self.syms {
            w.u32(v);
        }
        for v in [
            self.mmap_length,
            self.mmap_addr,
            self.drives_length,
            self.drives_addr,
            self.config_table,
            self.boot_loader_name,
            self.apm_table,
            self.vbe_control_info,
            self.vbe_mode_info,
        ] {
            w.u32(v);
        }
        for v in [
            self.vbe_mode,
            self.vbe_interface_seg,
            self.vbe_interface_off,
            self.vbe_interface_len,
        ] {
            w.u16(v);
        }
        w.u64(self.framebuffer_addr);
        w.u32(self.framebuffer_pitch);
        w.u32(self.framebuffer_width);
        w.u32(self.framebuffer_height);
        w.bytes(&[self.framebuffer_bpp, self.framebuffer_type]);
        w.bytes(&self.color_info);
        w.bytes(&self.reserved);
        debug_assert_eq!(w.at, INFO_SIZE);
        out
    }

    /// Reads the structure back from its byte form (the inverse of
    /// [`BootInfo::to_bytes`]); `None` if `bytes` is shorter than 120.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < INFO_SIZE {
            return None;
        }
        let mut r = LeRead { buf: bytes, at: 0 };
        Some(BootInfo {
            flags: r.u32(),
            mem_lower: r.u32(),
            mem_upper: r.u32(),
            boot_device: r.u32(),
            cmdline: r.u32(),
            mods_count: r.u32(),
            mods_addr: r.u32(),
            syms: [r.u32(), r.u32(), r.u32(), r.u32()],
            mmap_length: r.u32(),
            mmap_addr: r.u32(),
            drives_length: r.u32(),
            drives_addr: r.u32(),
            config_table: r.u32(),
            boot_loader_name: r.u32(),
            apm_table: r.u32(),
            vbe_control_info: r.u32(),
            vbe_mode_info: r.u32(),
            vbe_mode: r.u16(),
            vbe_interface_seg: r.u16(),
            vbe_interface_off: r.u16(),
            vbe_interface_len: r.u16(),
            framebuffer_addr: r.u64(),
            framebuffer_pitch: r.u32(),
            framebuffer_width: r.u32(),
            framebuffer_height: r.u32(),
            framebuffer_bpp: r.take::<1>()[0],
            framebuffer_type: r.take::<1>()[0],
            color_info: r.take(),
            reserved: r.take(),
        })
    }

    /// The valid-field flags as a typed set.
    pub const fn info_flags(&self) -> InfoFlags {
        InfoFlags::from_bits_retain(self.flags)
    }
}

/// The `type` of a memory-map range (spec 3.3, `mmap_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MemoryType {
    /// 1: available RAM.
    Available = 1,
    /// 2 (and any other unlisted value): reserved.
    Reserved = 2,
    /// 3: usable memory holding ACPI information.
    AcpiReclaimable = 3,
    /// 4: reserved memory to preserve on hibernation.
    Nvs = 4,
    /// 5: memory occupied by defective RAM modules.
    Defective = 5,
}

impl MemoryType {
    /// The type with spec number `n`; unlisted numbers mean reserved.
    pub const fn from_number(n: u32) -> Self {
        match n {
            1 => MemoryType::Available,
            3 => MemoryType::AcpiReclaimable,
            4 => MemoryType::Nvs,
            5 => MemoryType::Defective,
            _ => MemoryType::Reserved,
        }
    }
}

/// Bytes one [`MmapEntry`] takes in the memory map (size field included).
pub const MMAP_ENTRY_SIZE: usize = 24;
/// The value of an entry's `size` field: the entry without the field itself.
pub const MMAP_ENTRY_SIZE_FIELD: u32 = (MMAP_ENTRY_SIZE - 4) as u32;

/// One memory-map range. In the guest, at the entry's start:
///
/// | offset | type | field |
/// |---|---|---|
/// | 0 | u32 | `size` = 20, the entry's size *excluding* this field |
/// | 4 | u64 | `base_addr` |
/// | 12 | u64 | `length` |
/// | 20 | u32 | `type` |
///
/// (The spec draws this with `size` at offset -4, `mmap_addr` pointing at
/// it; readers advance by `size + 4`.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmapEntry {
    /// First guest-physical address of the range.
    pub base: GuestPhysAddr,
    /// Length in bytes.
    pub length: u64,
    /// What the range is.
    pub kind: MemoryType,
}

impl MmapEntry {
    /// The entry as the guest sees it (layout in the type's doc).
    pub fn to_bytes(&self) -> [u8; MMAP_ENTRY_SIZE] {
        let mut out = [0; MMAP_ENTRY_SIZE];
        let mut w = Le {
            buf: &mut out,
            at: 0,
        };
        w.u32(MMAP_ENTRY_SIZE_FIELD);
        w.u64(self.base.as_u64());
        w.u64(self.length);
        w.u32(self.kind as u32);
        out
    }

    /// Reads one entry back; `None` if `bytes` is short.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < MMAP_ENTRY_SIZE {
            return None;
        }
        let mut r = LeRead { buf: bytes, at: 4 };
        Some(MmapEntry {
            base: GuestPhysAddr::new(r.u64()),
            length: r.u64(),
            kind: MemoryType::from_number(r.u32()),
        })
    }
}

/// Why the information structure could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InfoError {
    /// The buffer is smaller than the structure with its map and strings.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes in the buffer.
        available: usize,
    },
    /// `base` is not 8-aligned.
    Misaligned {
        /// The refused base.
        base: GuestPhysAddr,
    },
    /// The structure would not end below 4 GiB (its addresses are 32-bit).
    AboveFourGiB {
        /// Where it would end.
        end: u64,
    },
    /// The command line or loader name contains a NUL byte.
    NulInString,
}

impl fmt::Display for InfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            InfoError::BufferTooSmall { needed, available } => write!(
                f,
                "the Multiboot information needs {needed} bytes, the buffer has {available}"
            ),
            InfoError::Misaligned { base } => {
                write!(
                    f,
                    "the Multiboot information at {base} is not 8-byte aligned"
                )
            }
            InfoError::AboveFourGiB { end } => write!(
                f,
                "the Multiboot information would end at {end:#x}, above 4 GiB"
            ),
            InfoError::NulInString => {
                f.write_str("the Multiboot command line or loader name contains a NUL byte")
            }
        }
    }
}

/// Required alignment of the information structure's base.
pub const INFO_ALIGN: u64 = 8;
/// `mem_lower` never exceeds this many KiB (spec 3.3).
pub const MEM_LOWER_MAX_KIB: u32 = 640;
/// Where upper memory starts: 1 MiB.
pub const UPPER_MEMORY_START: u64 = 0x10_0000;

/// The end of the run of `Available` ranges that covers `start` without a
/// hole, or `start` itself when no range covers it.
fn contiguous_end(map: impl Iterator<Item = MmapEntry> + Clone, start: u64) -> u64 {
    let mut end = start;
    // Each pass extends `end` by one range; at most one pass per range.
    loop {
        let next = map
            .clone()
            .filter(|e| e.kind == MemoryType::Available)
            .filter_map(|e| {
                let (lo, hi) = (e.base.as_u64(), e.base.as_u64().saturating_add(e.length));
                (lo <= end && end < hi).then_some(hi)
            })
            .max();
        match next {
            Some(hi) => end = hi,
            None => return end,
        }
    }
}

/// `(mem_lower, mem_upper)` in KiB for a memory map: lower is the RAM
/// contiguous from 0, capped at 640; upper is the RAM contiguous from
/// 1 MiB up to the first hole (saturating at `u32::MAX`).
pub fn memory_bounds(map: impl Iterator<Item = MmapEntry> + Clone) -> (u32, u32) {
    let lower = (contiguous_end(map.clone(), 0) / 1024).min(MEM_LOWER_MAX_KIB as u64) as u32;
    let upper_bytes = contiguous_end(map, UPPER_MEMORY_START) - UPPER_MEMORY_START;
    let upper = (upper_bytes / 1024).min(u32::MAX as u64) as u32;
    (lower, upper)
}

/// Bytes [`write_info`] uses for `entries` memory ranges and these strings.
pub const fn info_size(entries: usize, cmdline: &str, loader_name: &str) -> usize {
    INFO_SIZE + entries * MMAP_ENTRY_SIZE + cmdline.len() + 1 + loader_name.len() + 1
}

/// Writes the Multiboot information structure into `buf`, which the guest
/// will see at `base`, with every `ram` range (start, length) as available
/// memory. Returns the bytes used (see the module doc for the layout).
pub fn write_info(
    buf: &mut [u8],
    base: GuestPhysAddr,
    ram: &[(GuestPhysAddr, u64)],
    cmdline: &str,
    loader_name: &str,
) -> Result<usize, InfoError> {
    let map = ram.iter().map(|&(base, length)| MmapEntry {
        base,
        length,
        kind: MemoryType::Available,
    });
    write_map(buf, base, map, cmdline, loader_name)
}

/// [`write_info`] with an explicit memory map, for callers that also report
/// reserved ranges. Only `Available` ranges count for `mem_lower`/`mem_upper`.
pub fn write_info_with_map(
    buf: &mut [u8],
    base: GuestPhysAddr,
    map: &[MmapEntry],
    cmdline: &str,
    loader_name: &str,
) -> Result<usize, InfoError> {
    write_map(buf, base, map.iter().copied(), cmdline, loader_name)
}

fn write_map(
    buf: &mut [u8],
    base: GuestPhysAddr,
    map: impl ExactSizeIterator<Item = MmapEntry> + Clone,
    cmdline: &str,
    loader_name: &str,
) -> Result<usize, InfoError> {
    if !base.as_u64().is_multiple_of(INFO_ALIGN) {
        return Err(InfoError::Misaligned { base });
    }
    if cmdline.contains('\0') || loader_name.contains('\0') {
        return Err(InfoError::NulInString);
    }
    let needed = info_size(map.len(), cmdline, loader_name);
    if buf.len() < needed {
        return Err(InfoError::BufferTooSmall {
            needed,
            available: buf.len(),
        });
    }
    let end = base.as_u64() + needed as u64;
    if end > 1 << 32 {
        return Err(InfoError::AboveFourGiB { end });
    }
    // Every address below fits in 32 bits: the whole structure ends below 4 GiB.
    let gpa = |offset: usize| (base.as_u64() + offset as u64) as u32;

    let mmap_at = INFO_SIZE;
    let mmap_length = map.len() * MMAP_ENTRY_SIZE;
    let cmdline_at = mmap_at + mmap_length;
    let name_at = cmdline_at + cmdline.len() + 1;

    let (mem_lower, mem_upper) = memory_bounds(map.clone());
    let info = BootInfo {
        flags: (InfoFlags::MEMORY
            | InfoFlags::CMDLINE
            | InfoFlags::MMAP
            | InfoFlags::BOOT_LOADER_NAME)
            .bits(),
        mem_lower,
        mem_upper,
        cmdline: gpa(cmdline_at),
        mmap_length: mmap_length as u32,
        mmap_addr: gpa(mmap_at),
        boot_loader_name: gpa(name_at),
        ..BootInfo::default()
    };

    let mut w = Le { buf, at: 0 };
    w.bytes(&info.to_bytes());
    for entry in map {
        w.bytes(&entry.to_bytes());
    }
    for s in [cmdline, loader_name] {
        w.bytes(s.as_bytes());
        w.bytes(&[0]);
    }
    debug_assert_eq!(w.at, needed);
    Ok(needed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    const fn gpa(a: u64) -> GuestPhysAddr {
        GuestPhysAddr::new(a)
    }

    /// A header with `flags` and the right checksum, followed by `extra`
    /// words (address, then graphics fields).
    fn header(flags: u32, extra: &[u32]) -> Vec<u8> {
        let checksum = 0u32.wrapping_sub(HEADER_MAGIC).wrapping_sub(flags);
        [HEADER_MAGIC, flags, checksum]
            .iter()
            .chain(extra)
            .flat_map(|w| w.to_le_bytes())
            .collect()
    }

    /// An image of `len` filler bytes with `hdr` at `offset`.
    fn image(len: usize, offset: usize, hdr: &[u8]) -> Vec<u8> {
        let mut img = vec![0x90u8; len];
        img[offset..offset + hdr.len()].copy_from_slice(hdr);
        img
    }

    /// The address fields axplat-x86-pc's multiboot.S would have for a
    /// kernel linked at 0x20_0000 with its header 0x10 bytes in, 0x5000
    /// bytes of text and data, bss up to 0x20_8000 and entry at the start.
    const ARCEOS_LIKE: [u32; 5] = [0x20_0010, 0x20_0000, 0x20_5000, 0x20_8000, 0x20_0000];

    #[test]
    fn header_is_found_at_aligned_offsets_up_to_the_limit() {
        let hdr = header(0x0001_0002, &ARCEOS_LIKE);
        for offset in [0, 4, 0x10, 0x1000, SEARCH_LIMIT - hdr.len()] {
            let h = find_header(&image(0x6000, offset, &hdr)).unwrap();
            assert_eq!(h.offset, offset);
            assert_eq!(h.flags, HeaderFlags::MEMORY_INFO | HeaderFlags::ADDRESS);
            assert_eq!(
                h.addresses,
                Some(AddressFields {
                    header_addr: 0x20_0010,
                    load_addr: 0x20_0000,
                    load_end_addr: 0x20_5000,
                    bss_end_addr: 0x20_8000,
                    entry_addr: 0x20_0000,
                })
            );
            assert_eq!(h.video, None);
            assert!(!h.uses_elf_headers());
        }
    }

    #[test]
    fn the_minimal_header_fits_in_a_short_file() {
        let hdr = header(0, &[]);
        let h = find_header(&hdr).unwrap();
        assert_eq!((h.offset, h.addresses, h.video), (0, None, None));
        assert!(h.uses_elf_headers());
    }

    #[test]
    fn bad_checksum_is_reported_unless_a_good_header_follows() {
        let mut bad = header(0x0001_0002, &ARCEOS_LIKE);
        bad[8] ^= 1;
        assert_eq!(
            find_header(&image(0x100, 0x20, &bad)),
            Err(HeaderError::BadChecksum {
                offset: 0x20,
                sum: 1
            })
        );
        // A stray magic in data does not hide the real header after it.
        let mut img = image(0x200, 0x20, &bad);
        let good = header(0x0001_0002, &ARCEOS_LIKE);
        img[0x100..0x100 + good.len()].copy_from_slice(&good);
        assert_eq!(find_header(&img).unwrap().offset, 0x100);
    }

    #[test]
    fn unaligned_header_is_refused_and_named() {
        let hdr = header(0x0001_0002, &ARCEOS_LIKE);
        for offset in [1, 2, 3, 0x102] {
            assert_eq!(
                find_header(&image(0x200, offset, &hdr)),
                Err(HeaderError::Misaligned { offset })
            );
        }
    }

    #[test]
    fn header_beyond_8_kib_is_not_found_or_truncated() {
        let hdr = header(0x0001_0002, &ARCEOS_LIKE);
        // Entirely past the limit.
        assert_eq!(
            find_header(&image(0x4000, SEARCH_LIMIT, &hdr)),
            Err(HeaderError::NotFound)
        );
        // Magic fields straddle the limit.
        assert_eq!(
            find_header(&image(0x4000, SEARCH_LIMIT - 8, &hdr)),
            Err(HeaderError::NotFound)
        );
        // Magic fields inside, address fields past the limit.
        assert_eq!(
            find_header(&image(0x4000, SEARCH_LIMIT - 16, &hdr)),
            Err(HeaderError::Truncated {
                offset: SEARCH_LIMIT - 16,
                needs: 32
            })
        );
        // Address fields past the end of a short file.
        assert_eq!(
            find_header(&hdr[..20]),
            Err(HeaderError::Truncated {
                offset: 0,
                needs: 32
            })
        );
        assert_eq!(find_header(&[]), Err(HeaderError::NotFound));
        assert_eq!(find_header(&[0; 9000]), Err(HeaderError::NotFound));
    }

    #[test]
    fn requirement_flags() {
        // Bits 0, 1 and 2 are accepted; 2 carries the graphics fields.
        let h = find_header(&header(0b111, &[0, 0, 0, 0, 5, 1, 80, 25, 0])).unwrap();
        assert_eq!(
            h.video,
            Some(VideoMode {
                mode_type: 1,
                width: 80,
                height: 25,
                depth: 0
            })
        );
        assert_eq!(h.addresses, None);
        // With bit 2 the header must hold the graphics fields.
        assert_eq!(
            find_header(&header(0b100, &[0; 5])),
            Err(HeaderError::Truncated {
                offset: 0,
                needs: 48
            })
        );
        // Unknown requirement bits are refused, unknown optional bits ignored.
        for bits in [1 << 3, 1 << 15, 1 << 3 | 1 << 8] {
            assert_eq!(
                find_header(&header(bits | 0b11, &[])),
                Err(HeaderError::UnsupportedRequirements { offset: 0, bits })
            );
        }
        let h = find_header(&header(1 << 17 | 1 << 31 | 0b10, &[])).unwrap();
        assert_eq!(h.flags.bits(), 1 << 17 | 1 << 31 | 0b10);
    }

    #[test]
    fn address_fields_make_a_load_plan() {
        // A flat binary linked at 0x20_0000 whose header is 0x10 bytes in.
        let hdr = header(0x0001_0002, &ARCEOS_LIKE);
        let img = image(0x6000, 0x10, &hdr);
        let h = find_header(&img).unwrap();
        let plan = h.load_plan(img.len() as u64).unwrap();
        assert_eq!(
            plan,
            LoadPlan {
                file_offset: 0,
                file_size: 0x5000,
                load: gpa(0x20_0000),
                bss_size: 0x3000,
                entry: gpa(0x20_0000),
            }
        );
        assert_eq!(plan.load_end(), gpa(0x20_5000));
        assert_eq!(plan.end(), gpa(0x20_8000));
        assert_eq!(
            h.load_method(&img, img.len() as u64),
            Ok(LoadMethod::AddressFields(plan))
        );
    }

    #[test]
    fn load_starts_before_the_header_in_the_file() {
        // An ELF-wrapped kernel: the header sits 0x1010 bytes into the file,
        // 0x10 bytes after the start of the text (file offset 0x1000).
        let hdr = header(0x0001_0000, &[0x10_0010, 0x10_0000, 0, 0, 0x10_000c]);
        let mut img = image(0x3000, 0x1010, &hdr);
        img[..4].copy_from_slice(ELF_MAGIC);
        let h = find_header(&img).unwrap();
        let plan = h.load_plan(0x3000).unwrap();
        // load_end_addr 0: to the end of the file; bss_end_addr 0: no bss.
        assert_eq!(
            plan,
            LoadPlan {
                file_offset: 0x1000,
                file_size: 0x2000,
                load: gpa(0x10_0000),
                bss_size: 0,
                entry: gpa(0x10_000c),
            }
        );
        // Bit 16 wins over the ELF headers.
        assert_eq!(
            h.load_method(&img, 0x3000),
            Ok(LoadMethod::AddressFields(plan))
        );
    }

    #[test]
    fn without_address_fields_the_elf_headers_decide() {
        let hdr = header(0x2, &[]);
        let mut img = image(0x2000, 0x40, &hdr);
        let h = find_header(&img).unwrap();
        assert!(h.uses_elf_headers());
        assert_eq!(h.load_plan(0x2000), Err(PlanError::NoAddressFields));
        assert_eq!(
            h.load_method(&img, 0x2000),
            Err(PlanError::NoLoadInformation)
        );
        img[..4].copy_from_slice(ELF_MAGIC);
        assert_eq!(h.load_method(&img, 0x2000), Ok(LoadMethod::Elf));
    }

    #[test]
    fn inconsistent_address_fields_are_refused() {
        let plan = |offset: usize, fields: [u32; 5], len: usize| {
            let img = image(len.max(offset + 32), offset, &header(0x1_0000, &fields));
            find_header(&img).unwrap().load_plan(len as u64)
        };
        assert_eq!(
            plan(0, [0x1000, 0x2000, 0, 0, 0x2000], 0x100),
            Err(PlanError::LoadAfterHeader {
                load_addr: 0x2000,
                header_addr: 0x1000
            })
        );
        assert_eq!(
            plan(0x10, [0x1020, 0x1000, 0, 0, 0x1000], 0x100),
            Err(PlanError::StartsBeforeFile {
                header_offset: 0x10,
                distance: 0x20
            })
        );
        assert_eq!(
            plan(0, [0x1000, 0x1000, 0xfff, 0, 0x1000], 0x100),
            Err(PlanError::LoadEndBeforeLoad {
                load_addr: 0x1000,
                load_end_addr: 0xfff
            })
        );
        assert_eq!(
            plan(0, [0x1000, 0x1000, 0x1200, 0, 0x1000], 0x100),
            Err(PlanError::BeyondFile {
                file_offset: 0,
                size: 0x200,
                file_len: 0x100
            })
        );
        assert_eq!(
            plan(0, [0x1000, 0x1000, 0x1080, 0x1040, 0x1000], 0x100),
            Err(PlanError::BssBeforeLoadEnd {
                load_end: 0x1080,
                bss_end_addr: 0x1040
            })
        );
        // bss_end_addr equal to the load end: an empty bss.
        assert_eq!(
            plan(0, [0x1000, 0x1000, 0x1080, 0x1080, 0x1000], 0x100)
                .unwrap()
                .bss_size,
            0
        );
    }

    #[test]
    fn boot_info_fields_sit_at_the_spec_offsets() {
        assert_eq!(offset_of!(BootInfo, flags), 0);
        assert_eq!(offset_of!(BootInfo, mem_lower), 4);
        assert_eq!(offset_of!(BootInfo, mem_upper), 8);
        assert_eq!(offset_of!(BootInfo, boot_device), 12);
        assert_eq!(offset_of!(BootInfo, cmdline), 16);
        assert_eq!(offset_of!(BootInfo, mods_count), 20);
        assert_eq!(offset_of!(BootInfo, mods_addr), 24);
        assert_eq!(offset_of!(BootInfo, syms), 28);
        assert_eq!(offset_of!(BootInfo, mmap_length), 44);
        assert_eq!(offset_of!(BootInfo, mmap_addr), 48);
        assert_eq!(offset_of!(BootInfo, drives_length), 52);
        assert_eq!(offset_of!(BootInfo, drives_addr), 56);
        assert_eq!(offset_of!(BootInfo, config_table), 60);
        assert_eq!(offset_of!(BootInfo, boot_loader_name), 64);
        assert_eq!(offset_of!(BootInfo, apm_table), 68);
        assert_eq!(offset_of!(BootInfo, vbe_control_info), 72);
        assert_eq!(offset_of!(BootInfo, vbe_mode_info), 76);
        assert_eq!(offset_of!(BootInfo, vbe_mode), 80);
        assert_eq!(offset_of!(BootInfo, vbe_interface_seg), 82);
        assert_eq!(offset_of!(BootInfo, vbe_interface_off), 84);
        assert_eq!(offset_of!(BootInfo, vbe_interface_len), 86);
        assert_eq!(offset_of!(BootInfo, framebuffer_addr), 88);
        assert_eq!(offset_of!(BootInfo, framebuffer_pitch), 96);
        assert_eq!(offset_of!(BootInfo, framebuffer_width), 100);
        assert_eq!(offset_of!(BootInfo, framebuffer_height), 104);
        assert_eq!(offset_of!(BootInfo, framebuffer_bpp), 108);
        assert_eq!(offset_of!(BootInfo, framebuffer_type), 109);
        assert_eq!(offset_of!(BootInfo, color_info), 110);
        assert_eq!(offset_of!(BootInfo, reserved), 116);
    }

    #[test]
    fn to_bytes_matches_the_struct_layout() {
        // Distinct values everywhere, so a swapped field shows.
        let info = BootInfo {
            flags: 0x0101_0101,
            mem_lower: 0x0202_0202,
            mem_upper: 0x0303_0303,
            boot_device: 0x0404_0404,
            cmdline: 0x0505_0505,
            mods_count: 0x0606_0606,
            mods_addr: 0x0707_0707,
            syms: [0x0808_0808, 0x0909_0909, 0x0a0a_0a0a, 0x0b0b_0b0b],
            mmap_length: 0x0c0c_0c0c,
            mmap_addr: 0x0d0d_0d0d,
            drives_length: 0x0e0e_0e0e,
            drives_addr: 0x0f0f_0f0f,
            config_table: 0x1010_1010,
            boot_loader_name: 0x1111_1111,
            apm_table: 0x1212_1212,
            vbe_control_info: 0x1313_1313,
            vbe_mode_info: 0x1414_1414,
            vbe_mode: 0x1515,
            vbe_interface_seg: 0x1616,
            vbe_interface_off: 0x1717,
            vbe_interface_len: 0x1818,
            framebuffer_addr: 0x1919_1919_1919_1919,
            framebuffer_pitch: 0x1a1a_1a1a,
            framebuffer_width: 0x1b1b_1b1b,
            framebuffer_height: 0x1c1c_1c1c,
            framebuffer_bpp: 0x1d,
            framebuffer_type: 0x1e,
            color_info: [0x1f; 6],
            reserved: [0x20; 4],
        };
        let bytes = info.to_bytes();
        let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
        assert_eq!(u32_at(offset_of!(BootInfo, boot_loader_name)), 0x1111_1111);
        assert_eq!(u32_at(offset_of!(BootInfo, mmap_addr)), 0x0d0d_0d0d);
        assert_eq!(bytes[offset_of!(BootInfo, framebuffer_type)], 0x1e);
        assert_eq!(
            &bytes[offset_of!(BootInfo, vbe_interface_len)..][..2],
            &[0x18, 0x18]
        );
        // Every byte is the field number its offset belongs to.
        let ends = [
            4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60, 64, 68, 72, 76, 80, 82, 84,
            86, 88, 96, 100, 104, 108, 109, 110, 116, 120,
        ];
        let mut start = 0;
        for (i, end) in ends.into_iter().enumerate() {
            assert!(
                bytes[start..end].iter().all(|&b| b == i as u8 + 1),
                "field {} at {start}..{end}",
                i + 1
            );
            start = end;
        }
        assert_eq!(BootInfo::from_bytes(&bytes), Some(info));
        assert_eq!(BootInfo::from_bytes(&bytes[..119]), None);
    }

    #[test]
    fn mmap_entry_layout() {
        let e = MmapEntry {
            base: gpa(0x10_0000),
            length: 0x7f0_0000,
            kind: MemoryType::Available,
        };
        let b = e.to_bytes();
        assert_eq!(&b[0..4], &20u32.to_le_bytes());
        assert_eq!(&b[4..12], &0x10_0000u64.to_le_bytes());
        assert_eq!(&b[12..20], &0x7f0_0000u64.to_le_bytes());
        assert_eq!(&b[20..24], &1u32.to_le_bytes());
        assert_eq!(MmapEntry::from_bytes(&b), Some(e));
        let r = MmapEntry {
            kind: MemoryType::Reserved,
            ..e
        };
        assert_eq!(r.to_bytes()[20], 2);
        assert_eq!(MemoryType::from_number(9), MemoryType::Reserved);
        assert_eq!(MmapEntry::from_bytes(&b[..23]), None);
    }

    fn ram_map(ram: &[(u64, u64)]) -> impl Iterator<Item = MmapEntry> + Clone + '_ {
        ram.iter().map(|&(b, l)| MmapEntry {
            base: gpa(b),
            length: l,
            kind: MemoryType::Available,
        })
    }

    #[test]
    fn memory_bounds_follow_the_ram_ranges() {
        const MIB: u64 = 1 << 20;
        // One flat range from 0, like the q35 layout: 640 / 127 MiB.
        assert_eq!(memory_bounds(ram_map(&[(0, 128 * MIB)])), (640, 127 * 1024));
        // A PC-style hole between 640 KiB and 1 MiB.
        assert_eq!(
            memory_bounds(ram_map(&[(0, 640 << 10), (MIB, 63 * MIB)])),
            (640, 63 * 1024)
        );
        // Less low memory than 640 KiB is reported as it is.
        assert_eq!(
            memory_bounds(ram_map(&[(0, 512 << 10), (MIB, MIB)])),
            (512, 1024)
        );
        // Adjacent, unsorted pieces count as one run; a hole ends it.
        assert_eq!(
            memory_bounds(ram_map(&[(2 * MIB, 2 * MIB), (0, 2 * MIB), (8 * MIB, MIB)])),
            (640, 3 * 1024)
        );
        // Nothing at 0 or at 1 MiB.
        assert_eq!(memory_bounds(ram_map(&[(2 * MIB, MIB)])), (0, 0));
        assert_eq!(memory_bounds(ram_map(&[])), (0, 0));
        // Reserved ranges do not count.
        let map = [
            MmapEntry {
                base: gpa(0),
                length: 4 * MIB,
                kind: MemoryType::Reserved,
            },
            MmapEntry {
                base: gpa(MIB),
                length: MIB,
                kind: MemoryType::Available,
            },
        ];
        assert_eq!(memory_bounds(map.iter().copied()), (0, 1024));
        // Huge upper memory saturates.
        assert_eq!(memory_bounds(ram_map(&[(0, u64::MAX)])), (640, u32::MAX));
    }

    const BASE: GuestPhysAddr = gpa(0x9000);
    const RAM: [(GuestPhysAddr, u64); 2] = [(gpa(0), 0x9_f000), (gpa(0x10_0000), 0x7f0_0000)];

    fn written(cmdline: &str, name: &str) -> (Vec<u8>, usize) {
        let mut buf = vec![0xeeu8; 4096];
        let used = write_info(&mut buf, BASE, &RAM, cmdline, name).unwrap();
        (buf, used)
    }

    #[test]
    fn info_round_trips_through_explicit_offsets() {
        let (buf, used) = written("console=ttyS0", "arceos-guestaspace");
        assert_eq!(used, 120 + 2 * 24 + 14 + 19);
        assert_eq!(used, info_size(2, "console=ttyS0", "arceos-guestaspace"));
        assert!(
            buf[used..].iter().all(|&b| b == 0xee),
            "nothing past `used`"
        );
        let u32_at = |o: usize| u32::from_le_bytes(buf[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(buf[o..o + 8].try_into().unwrap());
        let at = |addr: u32| (addr as u64 - BASE.as_u64()) as usize;
        let cstr = |addr: u32| {
            let s = &buf[at(addr)..];
            core::str::from_utf8(&s[..s.iter().position(|&b| b == 0).unwrap()]).unwrap()
        };

        // flags: mem (0), cmdline (2), mmap (6), boot_loader_name (9).
        assert_eq!(u32_at(0), 1 << 0 | 1 << 2 | 1 << 6 | 1 << 9);
        assert_eq!(u32_at(4), 0x9_f000 / 1024, "mem_lower: 636 KiB");
        assert_eq!(u32_at(8), 0x7f0_0000 / 1024, "mem_upper");
        assert_eq!(cstr(u32_at(16)), "console=ttyS0");
        assert_eq!(cstr(u32_at(64)), "arceos-guestaspace");
        // The fields that are not provided are zero.
        for off in [12, 20, 24, 28, 32, 36, 40, 52, 56, 60, 68, 72, 76, 80, 84] {
            assert_eq!(u32_at(off), 0, "offset {off}");
        }
        assert!(buf[88..120].iter().all(|&b| b == 0));

        // The memory map: two 24-byte entries right after the structure.
        let (len, addr) = (u32_at(44), u32_at(48));
        assert_eq!((len, addr), (48, 0x9000 + 120));
        let mut entries = vec![];
        let mut p = at(addr);
        while p < at(addr) + len as usize {
            assert_eq!(u32_at(p), 20, "size excludes itself");
            entries.push((u64_at(p + 4), u64_at(p + 12), u32_at(p + 20)));
            p += u32_at(p) as usize + 4;
        }
        assert_eq!(entries, [(0, 0x9_f000, 1), (0x10_0000, 0x7f0_0000, 1)]);
        assert_eq!(
            BootInfo::from_bytes(&buf).unwrap().info_flags().bits(),
            u32_at(0)
        );
    }

    /// The consumer's view: `axplat-x86-pc` reads the structure with the
    /// `multiboot` crate, exactly like this.
    #[test]
    fn info_reads_back_with_the_multiboot_crate() {
        use multiboot::information::{MemoryManagement, MemoryType as Mt, Multiboot, PAddr};

        // Guest memory for the test: the written buffer, 8-aligned, at BASE.
        struct Guest(&'static [u8]);
        impl MemoryManagement for Guest {
            unsafe fn paddr_to_slice(&self, addr: PAddr, size: usize) -> Option<&'static [u8]> {
                let off = addr.checked_sub(BASE.as_u64())? as usize;
                self.0.get(off..off + size)
            }
            unsafe fn allocate(&mut self, _: usize) -> Option<(PAddr, &mut [u8])> {
                None
            }
            unsafe fn deallocate(&mut self, _: PAddr) {}
        }

        let words: &'static mut [u64] = Box::leak(vec![0u64; 512].into_boxed_slice());
        let (buf, used) = written("", "arceos-guestaspace");
        for (w, chunk) in words.iter_mut().zip(buf[..used].chunks(8)) {
            let mut b = [0; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            *w = u64::from_le_bytes(b);
        }
        // SAFETY: the u64 words are plain bytes, leaked so they live forever
        // and never written again.
        let bytes: &'static [u8] =
            unsafe { core::slice::from_raw_parts(words.as_ptr().cast(), words.len() * 8) };
        let mut guest = Guest(bytes);
        // SAFETY: BASE holds a structure written by `write_info`; the crate
        // only reads through it here.
        let mb = unsafe { Multiboot::from_ptr(BASE.as_u64(), &mut guest) }.unwrap();

        let regions: Vec<_> = mb
            .memory_regions()
            .unwrap()
            .map(|r| (r.base_address(), r.length(), r.memory_type()))
            .collect();
        assert_eq!(
            regions,
            [
                (0, 0x9_f000, Mt::Available),
                (0x10_0000, 0x7f0_0000, Mt::Available)
            ]
        );
        assert_eq!(mb.lower_memory_bound(), Some(636));
        assert_eq!(mb.upper_memory_bound(), Some(0x7f0_0000 / 1024));
        assert_eq!(mb.command_line(), Some(""));
        assert_eq!(mb.boot_loader_name(), Some("arceos-guestaspace"));
        assert!(mb.modules().is_none());
        assert!(mb.framebuffer_table().is_none());
    }

    #[test]
    fn info_with_reserved_ranges() {
        let map = [
            MmapEntry {
                base: gpa(0),
                length: 0x8_0000,
                kind: MemoryType::Available,
            },
            MmapEntry {
                base: gpa(0x8_0000),
                length: 0x8_0000,
                kind: MemoryType::Reserved,
            },
        ];
        let mut buf = [0u8; 512];
        let used = write_info_with_map(&mut buf, gpa(0x1_0000), &map, "x", "y").unwrap();
        assert_eq!(used, 120 + 48 + 2 + 2);
        let info = BootInfo::from_bytes(&buf).unwrap();
        assert_eq!((info.mem_lower, info.mem_upper), (512, 0));
        assert_eq!(MmapEntry::from_bytes(&buf[120 + 24..]), Some(map[1]));
    }

    #[test]
    fn info_errors() {
        let mut buf = [0u8; 4096];
        let needed = info_size(2, "cmd", "name");
        assert_eq!(
            write_info(&mut buf[..needed - 1], BASE, &RAM, "cmd", "name"),
            Err(InfoError::BufferTooSmall {
                needed,
                available: needed - 1
            })
        );
        assert_eq!(
            write_info(&mut buf[..needed], BASE, &RAM, "cmd", "name"),
            Ok(needed)
        );
        assert_eq!(
            write_info(&mut buf, gpa(0x9004), &RAM, "", ""),
            Err(InfoError::Misaligned { base: gpa(0x9004) })
        );
        let near_top = gpa((1 << 32) - 128);
        assert_eq!(
            write_info(&mut buf, near_top, &RAM, "", ""),
            Err(InfoError::AboveFourGiB {
                end: (1 << 32) - 128 + info_size(2, "", "") as u64
            })
        );
        // Ending exactly at 4 GiB is fine.
        assert_eq!(info_size(0, "abcdef", ""), 128);
        let top = gpa((1 << 32) - 128);
        assert_eq!(write_info(&mut buf, top, &[], "abcdef", ""), Ok(128));
        assert_eq!(
            write_info(&mut buf, BASE, &RAM, "a\0b", ""),
            Err(InfoError::NulInString)
        );
        assert_eq!(
            write_info(&mut buf, BASE, &RAM, "", "\0"),
            Err(InfoError::NulInString)
        );
        assert!(
            InfoError::BufferTooSmall {
                needed: 200,
                available: 100
            }
            .to_string()
            .contains("200 bytes")
        );
        assert!(
            InfoError::Misaligned { base: gpa(0x9004) }
                .to_string()
                .contains("GPA 0x9004")
        );
    }

    #[test]
    fn constants_and_messages() {
        assert_eq!(HEADER_MAGIC, 0x1badb002);
        assert_eq!(BOOTLOADER_MAGIC, 0x2badb002);
        assert_eq!(
            HeaderFlags::SUPPORTED_REQUIREMENTS.bits(),
            0b111,
            "page-align, memory info, video"
        );
        assert_eq!(InfoFlags::BOOT_LOADER_NAME.bits(), 0x200);
        assert_eq!(
            HeaderError::BadChecksum {
                offset: 0x20,
                sum: 1
            }
            .to_string(),
            "Multiboot header at offset 0x20: magic + flags + checksum is 0x1, not 0"
        );
        assert!(
            HeaderError::UnsupportedRequirements {
                offset: 0,
                bits: 0x8
            }
            .to_string()
            .contains("0x8")
        );
        assert!(
            PlanError::BeyondFile {
                file_offset: 0,
                size: 0x200,
                file_len: 0x100
            }
            .to_string()
            .contains("256-byte image")
        );
    }
}
