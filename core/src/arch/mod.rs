//! Per-architecture decoders: each folder turns one architecture's trap
//! registers and calling conventions into the neutral types of
//! [`crate::exit`]. Plain Rust with no `cfg`: all of it tests on the host.

pub mod aarch64;
pub mod riscv64;
pub mod setup;
pub mod smccc;
pub mod x86_64;
