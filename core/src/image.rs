//! Checks on the guest image before it is placed in guest memory.
//!
//! The hypervisor loads a flat binary (`cargo xtask` turns an ELF into one)
//! at the layout's entry point, in guest RAM. An image that is empty, is
//! still an ELF file, or does not fit between the entry point and the end
//! of guest RAM is refused with a message naming the numbers.

use crate::addr::GuestPhysAddr;
use crate::layout::GuestLayout;

/// Why an image cannot be loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// The file has no bytes.
    Empty,
    /// An ELF file was given where a flat binary is expected.
    Elf,
    /// The image does not fit in guest RAM from the load address on.
    TooLarge {
        /// The image's size in bytes.
        size: u64,
        /// Bytes of guest RAM from the load address on.
        room: u64,
        /// Where the image would be loaded.
        load: GuestPhysAddr,
        /// The end of guest RAM.
        ram_end: GuestPhysAddr,
    },
    /// The layout has no RAM at the entry point.
    NoRam {
        /// The layout's entry point.
        entry: GuestPhysAddr,
    },
    /// A Multiboot header that cannot be honoured (bad checksum, unknown
    /// requirements, inconsistent address fields).
    Multiboot(crate::arch::x86_64::multiboot::MultibootError),
    /// A Multiboot image whose load range or entry lies outside guest RAM.
    MultibootOutsideRam {
        /// The first byte the header asks to load at.
        load: GuestPhysAddr,
        /// One past the last byte it occupies, bss included.
        end: GuestPhysAddr,
        /// The entry point it names.
        entry: GuestPhysAddr,
    },
    /// An ELF's loadable segments do not start at the load address, so the
    /// flat image would run at the wrong place.
    LinkedElsewhere {
        /// The lowest address the ELF loads at.
        linked: GuestPhysAddr,
        /// Where the hypervisor loads the image.
        load: GuestPhysAddr,
    },
}

impl core::fmt::Display for ImageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            ImageError::Empty => f.write_str("the guest image is empty"),
            ImageError::Elf => {
                f.write_str("the guest image is an ELF file; the hypervisor loads flat binaries")
            }
            ImageError::TooLarge {
                size,
                room,
                load,
                ram_end,
            } => write!(
                f,
                "the guest image is {size} bytes but guest RAM from {load:#x} to {ram_end:#x} holds only {room} bytes"
            ),
            ImageError::NoRam { entry } => write!(f, "no guest RAM at the entry point {entry:#x}"),
            ImageError::Multiboot(e) => write!(f, "the Multiboot header cannot be honoured: {e}"),
            ImageError::MultibootOutsideRam { load, end, entry } => write!(
                f,
                "the Multiboot header asks to load {load:#x}..{end:#x} and enter at {entry:#x}, which is not all guest RAM"
            ),
            ImageError::LinkedElsewhere { linked, load } => {
                write!(
                    f,
                    "the guest is linked to load at {linked:#x} but this hypervisor loads it at {load:#x}"
                )
            }
        }
    }
}

/// Where and how big a checked image is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Where the first byte goes.
    pub load: GuestPhysAddr,
    /// The image's size in bytes.
    pub size: u64,
}

impl Placement {
    /// Number of 4 KiB pages the image covers.
    pub fn pages(&self) -> u64 {
        self.size.div_ceil(crate::PAGE_SIZE)
    }
}

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

/// Checks a flat image of `size` bytes whose first bytes are `head`.
pub fn check_flat(head: &[u8], size: u64, layout: &GuestLayout) -> Result<Placement, ImageError> {
    if size == 0 {
        return Err(ImageError::Empty);
    }
    if head.starts_with(ELF_MAGIC) {
        return Err(ImageError::Elf);
    }
    let ram = layout.ram().ok_or(ImageError::NoRam {
        entry: layout.entry,
    })?;
    let room = ram.end() - layout.entry;
    if size > room {
        return Err(ImageError::TooLarge {
            size,
            room,
            load: layout.entry,
            ram_end: ram.end(),
        });
    }
    Ok(Placement {
        load: layout.entry,
        size,
    })
}

/// Checks that an ELF whose lowest loadable segment starts at physical
/// address `lowest_load` can be flattened and loaded at the layout's entry.
pub fn check_link_address(
    lowest_load: GuestPhysAddr,
    layout: &GuestLayout,
) -> Result<(), ImageError> {
    if lowest_load == layout.entry {
        Ok(())
    } else {
        Err(ImageError::LinkedElsewhere {
            linked: lowest_load,
            load: layout.entry,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::{RISCV64_VIRT, test_layout};

    fn rv() -> crate::layout::GuestLayout<'static> {
        test_layout(&RISCV64_VIRT)
    }

    const fn gpa(a: u64) -> GuestPhysAddr {
        GuestPhysAddr::new(a)
    }

    #[test]
    fn a_flat_image_that_fits_is_placed_at_the_entry() {
        let p = check_flat(&[0x97, 0x02, 0, 0], 300_000, &rv()).unwrap();
        assert_eq!(
            p,
            Placement {
                load: gpa(0x8020_0000),
                size: 300_000
            }
        );
        assert_eq!(p.pages(), 74);
    }

    #[test]
    fn the_last_byte_of_ram_is_the_limit() {
        let room = 0x8800_0000 - 0x8020_0000;
        assert!(check_flat(b"ok", room, &rv()).is_ok());
        assert_eq!(
            check_flat(b"ok", room + 1, &rv()),
            Err(ImageError::TooLarge {
                size: room + 1,
                room,
                load: gpa(0x8020_0000),
                ram_end: gpa(0x8800_0000)
            })
        );
    }

    #[test]
    fn empty_and_elf_images_are_refused() {
        assert_eq!(check_flat(&[], 0, &rv()), Err(ImageError::Empty));
        assert_eq!(
            check_flat(b"\x7fELF\x02\x01", 4096, &rv()),
            Err(ImageError::Elf)
        );
    }

    #[test]
    fn link_address_must_be_the_load_address() {
        assert_eq!(check_link_address(gpa(0x8020_0000), &rv()), Ok(()));
        assert_eq!(
            check_link_address(gpa(0xffff_ffff_8000_0000), &rv()),
            Err(ImageError::LinkedElsewhere {
                linked: gpa(0xffff_ffff_8000_0000),
                load: gpa(0x8020_0000)
            })
        );
    }

    #[test]
    fn messages_name_the_numbers() {
        let msg = ImageError::TooLarge {
            size: 20,
            room: 10,
            load: gpa(0x10),
            ram_end: gpa(0x1a),
        }
        .to_string();
        assert!(
            msg.contains("20 bytes") && msg.contains("0x10") && msg.contains("0x1a"),
            "{msg}"
        );
    }
}
