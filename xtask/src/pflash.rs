//! The pflash image the guest reads: the magic `pfld`, the test scenario
//! code, and erased flash (0xFF) up to the size the machine requires
//! (`ArchSpec::pflash_size`: QEMU `virt` wants exactly 32 MiB for pflash1
//! on riscv64, 64 MiB on aarch64).

use crate::fsio;
use anyhow::Result;
use guestaspace_core::scenario::{
    BENCH_HYPERCALLS, BENCH_HYPERCALLS_OFFSET, BENCH_PAGES, BENCH_PAGES_OFFSET, PFLASH_MAGIC,
    SCENARIO_OFFSET, Scenario,
};
use std::path::Path;

/// The bytes of a `size`-byte pflash image asking for `scenario`.
pub fn pflash_bytes(scenario: Scenario, size: usize) -> Vec<u8> {
    let mut image = vec![0xffu8; size];
    image[..PFLASH_MAGIC.len()].copy_from_slice(&PFLASH_MAGIC);
    let mut put =
        |offset: usize, word: u32| image[offset..offset + 4].copy_from_slice(&word.to_le_bytes());
    put(SCENARIO_OFFSET, scenario as u32);
    if scenario == Scenario::Bench {
        put(BENCH_HYPERCALLS_OFFSET, BENCH_HYPERCALLS);
        put(BENCH_PAGES_OFFSET, BENCH_PAGES);
    }
    image
}

/// Writes the pflash image for `scenario` to `path` unless it is already
/// there. Returns whether the file was written.
pub fn write_pflash(path: &Path, scenario: Scenario, size: usize) -> Result<bool> {
    fsio::write_if_different(path, &pflash_bytes(scenario, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PFLASH_SIZE: usize = 32 << 20;

    #[test]
    fn layout_is_magic_scenario_then_erased_flash() {
        for (scenario, code) in [
            (Scenario::Normal, 0u32),
            (Scenario::WildAccess, 1),
            (Scenario::NeverShutdown, 2),
        ] {
            let image = pflash_bytes(scenario, PFLASH_SIZE);
            assert_eq!(image.len(), 32 * 1024 * 1024);
            assert_eq!(&image[0..4], b"pfld");
            assert_eq!(u32::from_le_bytes(image[4..8].try_into().unwrap()), code);
            assert!(image[8..].iter().all(|&b| b == 0xff));
        }
    }

    #[test]
    fn the_file_is_rewritten_only_when_the_scenario_changes() {
        let dir = crate::fsio::testdir::fresh("pflash");
        let path = dir.join("pflash.img");
        assert!(write_pflash(&path, Scenario::Normal, PFLASH_SIZE).unwrap());
        assert!(!write_pflash(&path, Scenario::Normal, PFLASH_SIZE).unwrap());
        assert!(write_pflash(&path, Scenario::WildAccess, PFLASH_SIZE).unwrap());
        let image = std::fs::read(&path).unwrap();
        assert_eq!(image.len(), PFLASH_SIZE);
        assert_eq!(&image[..8], b"pfld\x01\0\0\0");
    }
}
