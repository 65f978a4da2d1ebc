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
    match read_whole(root_fs(path)?, path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(AxError::NotFound) => Ok(None),
        Err(e) => Err(error(path, e)),
    }
}

/// Whether the disk has `path`. Any error but its absence is an error.
pub fn exists(path: &'static str) -> Result<bool, HvError> {
    match root_fs(path)?.metadata(path) {
        Ok(_) => Ok(true),
        Err(AxError::NotFound) => Ok(false),
        Err(e) => Err(error(path, e)),
    }
}

/// Reads all of `path` with one read into a buffer of the file's size.
///
/// Not `FsContext::read`: that grows its buffer as it goes (copying what
/// it read each time) and reads in pieces, and each piece starts with a
/// seek from the file's start, which on FAT walks the cluster chain again.
/// One read into a buffer of the file's size walks it once and copies
/// nothing twice; for the 33 MB Linux kernel it was about a quarter faster
/// (noisy figures: 0.45-0.52 s against 0.58-0.79 s).
pub fn read_whole(fs: &FsContext, path: &str) -> Result<Vec<u8>, AxError> {
    let file = axfs::File::open(fs, path)?;
    let size = fs.metadata(path)?.size as usize;
    let mut bytes = alloc::vec![0u8; size];
    let mut done = 0;
    while done < size {
        match file.read(&mut bytes[done..])? {
            0 => break,
            n => done += n,
        }
    }
    bytes.truncate(done);
    Ok(bytes)
}
