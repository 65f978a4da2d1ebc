//! Armv8-A at EL2: exception syndrome decoding.

pub mod esr;
