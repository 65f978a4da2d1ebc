//! Stage-2 (guest-physical → host-physical) page tables.
//!
//! One radix-tree walker, [`AddressSpace`], serves every architecture; a
//! [`Format`] says how many levels there are, how big the root is and how a
//! descriptor is encoded. The host side ([`Host`]) hands out frames,
//! translates host-physical addresses to pointers and flushes the TLB.
//!
//! Written here rather than taken from `page_table_multiarch` because that
//! crate builds first-stage tables with a one-page root; stage-2 formats
//! need a concatenated root (Sv39x4's 16 KiB root, Arm's concatenated
//! level-1 tables) and stage-2 permission encodings.
//!
//! Guest memory is mapped with 4 KiB pages and, for RAM, 2 MiB blocks: a
//! leaf one level up, which every format here has.
//!
//! The walker lives in `walker`, one file per descriptor format (`sv39x4`,
//! `vmsav8`, `npt`), the unit tests' heap-backed host in `test_host` and
//! the block checks every format's tests run in `block_checks`.

#[cfg(test)]
mod block_checks;
mod npt;
mod sv39x4;
mod vmsav8;
mod walker;

#[cfg(test)]
pub(crate) mod test_host;

pub use npt::{Npt, X86Pte};
pub use sv39x4::{RiscvPte, Sv39x4};
pub use vmsav8::{ArmS2, ArmStage2};
pub use walker::{AddressSpace, BLOCK_LEVEL, BLOCK_PAGES, Format, Host, MapError};
