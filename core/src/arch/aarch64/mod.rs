//! Armv8-A at EL2: exception syndrome decoding, and the Data Abort
//! syndrome of a device access to emulate.

pub mod dabt;
pub mod esr;
