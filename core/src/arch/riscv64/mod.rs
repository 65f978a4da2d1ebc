//! RISC-V with the H extension: trap decoding and the SBI.

pub mod dtb;
pub mod insn;
pub mod sbi;
pub mod trap;
