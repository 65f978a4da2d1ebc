//! What a real kernel is given besides its image: the initial RAM disk
//! (`/boot/initrd`) and the kernel command line (`/boot/cmdline`), both
//! optional files on the boot disk that `cargo xtask run --initrd FILE
//! --cmdline TEXT` writes.

use crate::error::HvError;
use alloc::string::String;
use alloc::vec::Vec;

/// Where the initial RAM disk is found on the disk.
pub const INITRD_PATH: &str = "/boot/initrd";
/// Where the kernel command line is found on the disk.
pub const CMDLINE_PATH: &str = "/boot/cmdline";

/// The initrd and command line, each absent when its file is.
pub struct BootInputs {
    /// The kernel command line.
    pub cmdline: Option<String>,
    /// The initial RAM disk's bytes.
    pub initrd: Option<Vec<u8>>,
}

impl BootInputs {
    /// Reads both files; a command line that is not UTF-8 text, or that
    /// holds a NUL byte (it ends up in a C string), is refused.
    pub fn read() -> Result<Self, HvError> {
        let cmdline = match crate::disk::read_if_present(CMDLINE_PATH)? {
            None => None,
            Some(bytes) => {
                let bad = |reason: &str| HvError::Disk {
                    path: CMDLINE_PATH,
                    reason: reason.into(),
                };
                let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8 text"))?;
                if text.contains('\0') {
                    return Err(bad("the command line holds a NUL byte"));
                }
                Some(text)
            }
        };
        let initrd = crate::disk::read_if_present(INITRD_PATH)?;
        Ok(Self { cmdline, initrd })
    }
}
