//! The boot disk: the one place that reaches the mounted FAT32 file system
//! and turns its errors into [`HvError`]s naming the file.

use crate::error::HvError;
use alloc::format;
use alloc::vec::Vec;
use axerrno::AxError;
use axfs::FsContext;

/// The mounted root file system; `path` is the file wanted, for the message.
pub fn root_fs(path: &'static str) -> Result<&'static FsContext, HvError> {
    axfs::ROOT_FS_CONTEXT.get().ok_or(HvError::Disk {
        path,
        reason: "no file system is mounted".into(),
    })
}

/// The error reading `path` failed with.
pub fn error(path: &'static str, e: AxError) -> HvError {
    HvError::Disk {
        path,
        reason: format!("{e:?}"),
    }
}

/// The contents of `path`, or `None` if the disk has no such file. Any
/// other error (an unreadable disk, say) is an error, not an absence.
pub fn read_if_present(path: &'static str) -> Result<Option<Vec<u8>>, HvError> {
    match root_fs(path)?.read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(AxError::NotFound) => Ok(None),
        Err(e) => Err(error(path, e)),
    }
}
