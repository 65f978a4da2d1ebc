//! RISC-V with the H extension: trap decoding, the SBI, the guest's device
//! tree and the Linux `Image` header.

pub mod dtb;
pub mod hart;
pub mod insn;
pub mod linux_image;
pub mod sbi;
pub mod trap;
