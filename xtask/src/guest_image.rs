//! Turns the files QEMU and the hypervisor load into flat binaries: the
//! guest (ELF, checked to be linked at the guest entry point, or a flat
//! binary used as it is) and the hypervisor (ELF, linked where QEMU loads
//! `-kernel`).

use crate::arch::ArchSpec;
use crate::flatten::{flatten_elf, is_elf};
use crate::fsio;
use anyhow::{Context, Result, anyhow, bail};
use guestaspace_core::addr::GuestPhysAddr;
use guestaspace_core::arch::x86_64::multiboot;
use guestaspace_core::image::check_link_address;
use std::path::Path;

/// The flat guest image of the file at `path`.
pub fn guest_flat(path: &Path, spec: &ArchSpec) -> Result<Vec<u8>> {
    let data = fsio::read(path)?;
    guest_flat_from_bytes(&data, spec).with_context(|| format!("guest image {}", path.display()))
}

fn guest_flat_from_bytes(data: &[u8], spec: &ArchSpec) -> Result<Vec<u8>> {
    if !is_elf(data) {
        if data.is_empty() {
            bail!("the file is empty");
        }
        return Ok(data.to_vec());
    }
    let flat = flatten_elf(data)?;
    // A Multiboot kernel says in its header where it goes; the hypervisor
    // honours that (and checks it against guest RAM). The header's
    // `load_end_addr` may reach past the ELF's file contents (into memory
    // the ELF only zero-fills), so the flat image is padded with zeros to it.
    if let Ok(header) = multiboot::find_header(&flat.bytes) {
        let mut bytes = flat.bytes;
        if let Some(a) = header.addresses
            && a.load_end_addr > a.load_addr
        {
            let start = header.offset as u64 - u64::from(a.header_addr - a.load_addr);
            let end = start + u64::from(a.load_end_addr - a.load_addr);
            if end > bytes.len() as u64 {
                bytes.resize(end as usize, 0);
            }
        }
        return Ok(bytes);
    }
    let load = spec.physical(flat.load_addr);
    check_link_address(GuestPhysAddr::new(load), &spec.layout()).map_err(|e| {
        if load == flat.load_addr {
            anyhow!("{e}")
        } else {
            anyhow!(
                "{e} (its ELF address {:#x} is in the kernel's higher half)",
                flat.load_addr
            )
        }
    })?;
    Ok(flat.bytes)
}

/// The flat hypervisor image of the ELF at `path`, which must be linked to
/// load at `load_addr`, where QEMU puts `-kernel`.
pub fn hypervisor_flat(path: &Path, spec: &ArchSpec, load_addr: u64) -> Result<Vec<u8>> {
    let data = fsio::read(path)?;
    let flat =
        flatten_elf(&data).with_context(|| format!("hypervisor image {}", path.display()))?;
    let load = spec.physical(flat.load_addr);
    if load != load_addr {
        bail!(
            "the hypervisor {} is linked to load at {load:#x} but QEMU loads it at {load_addr:#x}",
            path.display(),
        );
    }
    Ok(flat.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;
    use crate::flatten::test_elf::{build, load};

    fn riscv64() -> &'static ArchSpec {
        Arch::Riscv64.spec().unwrap()
    }

    #[test]
    fn a_guest_linked_at_the_entry_point_is_flattened() {
        let elf = build(&[load(0x8020_0000, b"code"), load(0x8020_0008, b"data")]);
        assert_eq!(
            guest_flat_from_bytes(&elf, riscv64()).unwrap(),
            b"code\0\0\0\0data"
        );
    }

    #[test]
    fn a_guest_linked_in_the_higher_half_is_loaded_at_its_physical_address() {
        let elf = build(&[load(0xffff_ffc0_8020_0000, b"code")]);
        assert_eq!(guest_flat_from_bytes(&elf, riscv64()).unwrap(), b"code");
        let elf = build(&[load(0xffff_ffc0_8000_0000, b"code")]);
        let err = guest_flat_from_bytes(&elf, riscv64())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("linked to load at 0x80000000 but this hypervisor loads it at 0x80200000"),
            "{err}"
        );
        assert!(err.contains("0xffffffc080000000"), "{err}");
    }

    #[test]
    fn a_wrongly_linked_guest_is_refused_with_both_addresses() {
        let elf = build(&[load(0x8000_0000, b"code")]);
        let err = guest_flat_from_bytes(&elf, riscv64())
            .unwrap_err()
            .to_string();
        assert!(err.contains("linked to load at 0x80000000"), "{err}");
        assert!(err.contains("loads it at 0x80200000"), "{err}");
    }

    #[test]
    fn a_flat_guest_is_used_as_is_but_not_an_empty_one() {
        assert_eq!(
            guest_flat_from_bytes(&[0x97, 0x02, 0, 0], riscv64()).unwrap(),
            [0x97, 0x02, 0, 0]
        );
        assert!(guest_flat_from_bytes(&[], riscv64()).is_err());
    }

    #[test]
    fn the_hypervisor_must_be_linked_where_qemu_loads_it() {
        let dir = crate::fsio::testdir::fresh("hv");
        let path = dir.join("hv");
        std::fs::write(&path, build(&[load(0x8020_0000, b"hv")])).unwrap();
        assert_eq!(
            hypervisor_flat(&path, riscv64(), 0x8020_0000).unwrap(),
            b"hv"
        );
        std::fs::write(&path, build(&[load(0xffff_ffc0_8000_0000, b"hv")])).unwrap();
        let err = hypervisor_flat(&path, riscv64(), 0x8020_0000)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("linked to load at 0x80000000 but QEMU loads it at 0x80200000"),
            "{err}"
        );
    }
}
