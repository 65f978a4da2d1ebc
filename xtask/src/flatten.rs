//! ELF to flat binary: the bytes of the loadable segments laid out by
//! physical address, gaps zero-filled, from the lowest segment to the last
//! file-backed byte (`.bss` beyond it is the loader's business).

use anyhow::{Context, Result, bail};
use object::elf::PT_LOAD;
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, FileKind, elf};

/// Images larger than this are surely a mislinked ELF (segments far apart).
const MAX_FLAT_SIZE: u64 = 256 << 20;

/// A flat image and the physical address its first byte belongs at.
#[derive(Debug, PartialEq, Eq)]
pub struct FlatImage {
    pub load_addr: u64,
    pub bytes: Vec<u8>,
}

/// Whether `data` starts like an ELF file.
pub fn is_elf(data: &[u8]) -> bool {
    data.starts_with(b"\x7fELF")
}

/// Flattens an ELF64 file's `PT_LOAD` segments that have file contents.
pub fn flatten_elf(data: &[u8]) -> Result<FlatImage> {
    match FileKind::parse(data).context("not a readable ELF file")? {
        FileKind::Elf64 => {}
        FileKind::Elf32 => bail!("32-bit ELF files are not supported"),
        other => bail!("not an ELF file ({other:?})"),
    }
    let header = elf::FileHeader64::<Endianness>::parse(data).context("bad ELF header")?;
    let endian = header.endian().context("bad ELF byte order")?;
    let mut segments = Vec::new();
    for ph in header
        .program_headers(endian, data)
        .context("bad ELF program headers")?
    {
        if ph.p_type(endian) != PT_LOAD || ph.p_filesz(endian) == 0 {
            continue;
        }
        let bytes = ph
            .data(endian, data)
            .ok()
            .context("an ELF segment lies outside the file")?;
        segments.push((ph.p_paddr(endian), bytes));
    }
    lay_out(&mut segments)
}

/// The entry point (`e_entry`) of an ELF64 file.
pub fn elf_entry(data: &[u8]) -> Result<u64> {
    let header = elf::FileHeader64::<Endianness>::parse(data).context("bad ELF header")?;
    let endian = header.endian().context("bad ELF byte order")?;
    Ok(header.e_entry(endian))
}

/// Places `(paddr, bytes)` segments into one zero-filled buffer.
fn lay_out(segments: &mut [(u64, &[u8])]) -> Result<FlatImage> {
    segments.sort_by_key(|&(addr, _)| addr);
    let Some(&(load_addr, _)) = segments.first() else {
        bail!("the ELF file has no loadable segment with contents");
    };
    let mut end = load_addr;
    for &(addr, bytes) in segments.iter() {
        if addr < end {
            bail!("ELF segments overlap at physical address {addr:#x}");
        }
        end = addr
            .checked_add(bytes.len() as u64)
            .context("an ELF segment ends beyond the address space")?;
    }
    let size = end - load_addr;
    if size > MAX_FLAT_SIZE {
        bail!(
            "the loadable segments span {size:#x} bytes from {load_addr:#x}; is the ELF linked at one place?"
        );
    }
    let mut flat = vec![0u8; size as usize];
    for &(addr, bytes) in segments.iter() {
        let at = (addr - load_addr) as usize;
        flat[at..at + bytes.len()].copy_from_slice(bytes);
    }
    Ok(FlatImage {
        load_addr,
        bytes: flat,
    })
}

#[cfg(test)]
pub mod test_elf {
    //! Hand-made little-endian ELF64 files for the tests.

    /// One program header: type, physical address, file bytes, memory size.
    pub struct Seg<'a> {
        pub kind: u32,
        pub paddr: u64,
        pub data: &'a [u8],
        pub memsz: u64,
    }

    pub fn load(paddr: u64, data: &[u8]) -> Seg<'_> {
        Seg {
            kind: object::elf::PT_LOAD,
            paddr,
            data,
            memsz: data.len() as u64,
        }
    }

    /// An ELF64 executable for RISC-V whose segments are `segs`, each with
    /// a virtual address far from its physical one (as ArceOS links).
    pub fn build(segs: &[Seg]) -> Vec<u8> {
        const EHSIZE: usize = 64;
        const PHSIZE: usize = 56;
        let mut out = Vec::new();
        out.extend_from_slice(b"\x7fELF");
        out.extend_from_slice(&[2, 1, 1, 0]); // ELF64, little endian, version 1, SysV
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        out.extend_from_slice(&243u16.to_le_bytes()); // EM_RISCV
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&segs.first().map_or(0, |s| s.paddr).to_le_bytes()); // e_entry
        out.extend_from_slice(&(EHSIZE as u64).to_le_bytes()); // e_phoff
        out.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
        out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
        out.extend_from_slice(&(EHSIZE as u16).to_le_bytes());
        out.extend_from_slice(&(PHSIZE as u16).to_le_bytes());
        out.extend_from_slice(&(segs.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
        assert_eq!(out.len(), EHSIZE);
        let mut offset = EHSIZE + PHSIZE * segs.len();
        for s in segs {
            out.extend_from_slice(&s.kind.to_le_bytes());
            out.extend_from_slice(&7u32.to_le_bytes()); // RWX
            out.extend_from_slice(&(offset as u64).to_le_bytes());
            out.extend_from_slice(&s.paddr.wrapping_add(0xffff_ffc0_0000_0000).to_le_bytes()); // p_vaddr
            out.extend_from_slice(&s.paddr.to_le_bytes());
            out.extend_from_slice(&(s.data.len() as u64).to_le_bytes());
            out.extend_from_slice(&s.memsz.to_le_bytes());
            out.extend_from_slice(&0x1000u64.to_le_bytes());
            offset += s.data.len();
        }
        for s in segs {
            out.extend_from_slice(s.data);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::test_elf::{Seg, build, load};
    use super::*;

    #[test]
    fn two_segments_with_a_gap_are_laid_out_by_physical_address() {
        let elf = build(&[load(0x8020_0000, &[1, 2, 3, 4]), load(0x8020_1000, &[5, 6])]);
        let flat = flatten_elf(&elf).unwrap();
        assert_eq!(flat.load_addr, 0x8020_0000);
        assert_eq!(flat.bytes.len(), 0x1002);
        assert_eq!(&flat.bytes[..4], &[1, 2, 3, 4]);
        assert!(
            flat.bytes[4..0x1000].iter().all(|&b| b == 0),
            "the gap is zero-filled"
        );
        assert_eq!(&flat.bytes[0x1000..], &[5, 6]);
    }

    #[test]
    fn segment_order_in_the_file_does_not_matter_and_bss_is_not_included() {
        let bss = Seg {
            kind: PT_LOAD,
            paddr: 0x8030_0000,
            data: &[],
            memsz: 0x8000,
        };
        let note = Seg {
            kind: object::elf::PT_NOTE,
            paddr: 0x9000_0000,
            data: &[9; 16],
            memsz: 16,
        };
        let elf = build(&[
            load(0x8020_0010, &[7; 8]),
            bss,
            note,
            load(0x8020_0000, &[8; 4]),
        ]);
        let flat = flatten_elf(&elf).unwrap();
        assert_eq!(
            flat,
            FlatImage {
                load_addr: 0x8020_0000,
                bytes: [vec![8; 4], vec![0; 12], vec![7; 8]].concat()
            }
        );
    }

    #[test]
    fn files_without_contents_or_with_overlaps_are_refused() {
        let err = flatten_elf(&build(&[])).unwrap_err().to_string();
        assert!(err.contains("no loadable segment"), "{err}");
        let err = flatten_elf(&build(&[load(0x1000, &[1; 8]), load(0x1004, &[2; 8])]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("overlap at physical address 0x1004"), "{err}");
        let err =
            flatten_elf(&build(&[load(0x1000, &[1]), load(0x8000_0000_0000, &[2])])).unwrap_err();
        assert!(err.to_string().contains("span"), "{err}");
        assert!(flatten_elf(b"\x7fELF garbage").is_err());
        assert!(!is_elf(&[0x97, 0x02, 0, 0]));
    }
}
