//! Reads the VM's settings (`/etc/vm.conf` on the disk, see
//! `guestaspace_core::vmconfig`); a disk without the file gets defaults.

use crate::error::HvError;
use alloc::format;
use alloc::string::String;
use guestaspace_core::vmconfig::{self, VmConfig};

/// The settings on the disk, or the defaults if the file is absent.
pub fn read() -> Result<VmConfig, HvError> {
    let Some(bytes) = crate::disk::read_if_present(vmconfig::PATH)? else {
        return Ok(VmConfig::DEFAULT);
    };
    let text = String::from_utf8(bytes)
        .map_err(|_| HvError::Config("the file is not UTF-8 text".into()))?;
    vmconfig::parse(&text).map_err(|e| HvError::Config(format!("{e}")))
}
