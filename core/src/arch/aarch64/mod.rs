//! Armv8-A at EL2: exception syndrome decoding, the Data Abort syndrome of
//! a device access to emulate, trapped system register accesses, the
//! guest's emulated EL1 physical timer and its trapped debug and PMU
//! registers, and booting a Linux `Image` with its device tree.

pub mod a64_ldst;
pub mod dabt;
pub mod debug_regs;
pub mod dtb;
pub mod esr;
pub mod linux_image;
pub mod sysreg;
pub mod vtimer;
