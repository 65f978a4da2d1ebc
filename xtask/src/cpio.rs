//! A writer for `newc` cpio archives, the format Linux unpacks as its
//! initramfs (the kernel's `Documentation/driver-api/early-userspace/
//! buffer-format.rst`).
//!
//! Each entry is a 110-byte header of ASCII text (the magic `070701`, then
//! thirteen 8-digit hexadecimal fields), the entry's name with its NUL,
//! zeros up to a multiple of 4 bytes, the entry's data, and zeros up to a
//! multiple of 4 again. The entry named `TRAILER!!!` ends the archive.
//!
//! The archive is reproducible: every time stamp is 0, owners are root,
//! and inode numbers count up from 1 in the order entries are added. The
//! kernel creates entries in archive order and does not create missing
//! parent directories, so an entry whose parent was not added first is
//! refused here rather than silently missing in the guest.
//!
//! Written here rather than taken from crates.io: the one newc writer
//! there (`cpio` 0.4.1) can write device nodes, but leaves inode numbers,
//! entry kinds and link counts to the caller, and its entry writer ends a
//! short write without an error, leaving a misaligned archive; the format
//! itself is this one screen.

use anyhow::{Result, bail, ensure};
use std::collections::BTreeSet;

/// The magic of a `newc` header (no checksum).
pub const MAGIC: &[u8; 6] = b"070701";
/// The name of the entry that ends an archive.
pub const TRAILER: &str = "TRAILER!!!";

/// The file-type bits of `mode` for each kind of entry.
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// A `newc` archive being built in memory.
#[derive(Debug, Default)]
pub struct Archive {
    bytes: Vec<u8>,
    /// The inode number of the last entry.
    last_ino: u32,
    /// Every name added (for the duplicate and parent checks).
    names: BTreeSet<String>,
}

/// The header fields an entry sets; the others are fixed.
struct Header {
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
}

impl Archive {
    pub fn new() -> Archive {
        Archive::default()
    }

    /// A directory with permissions `perm` (e.g. `0o755`).
    pub fn dir(&mut self, name: &str, perm: u32) -> Result<()> {
        self.entry(name, S_IFDIR, perm, 2, (0, 0), b"")
    }

    /// A regular file holding `data`, with permissions `perm`.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> Result<()> {
        self.entry(name, S_IFREG, perm, 1, (0, 0), data)
    }

    /// A symbolic link to `target` (its data, without a NUL).
    pub fn symlink(&mut self, name: &str, target: &str) -> Result<()> {
        ensure!(
            !target.is_empty() && !target.contains('\0'),
            "symlink {name}: bad target {target:?}"
        );
        self.entry(name, S_IFLNK, 0o777, 1, (0, 0), target.as_bytes())
    }

    /// A character device node `major:minor` with permissions `perm`.
    pub fn char_device(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> Result<()> {
        self.entry(name, S_IFCHR, perm, 1, (major, minor), b"")
    }

    /// The archive, ended by its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        let header = Header {
            mode: 0,
            nlink: 1,
            rdev: (0, 0),
        };
        self.write_entry(0, &header, TRAILER, b"");
        self.bytes
    }

    fn entry(
        &mut self,
        name: &str,
        kind: u32,
        perm: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> Result<()> {
        let name = checked_name(name)?;
        ensure!(
            perm & !0o7777 == 0,
            "{name}: permissions {perm:#o} have bits beyond 0o7777"
        );
        ensure!(
            u32::try_from(data.len()).is_ok(),
            "{name}: {} bytes do not fit a newc entry (at most 4 GiB - 1)",
            data.len()
        );
        if let Some((parent, _)) = name.rsplit_once('/') {
            ensure!(
                self.names.contains(parent),
                "{name}: its directory {parent} must be added first (the kernel does not create it)"
            );
        }
        ensure!(
            self.names.insert(name.to_string()),
            "{name} is in the archive twice"
        );
        self.last_ino += 1;
        let header = Header {
            mode: kind | perm,
            nlink,
            rdev,
        };
        self.write_entry(self.last_ino, &header, &name, data);
        Ok(())
    }

    fn write_entry(&mut self, ino: u32, header: &Header, name: &str, data: &[u8]) {
        let name_size = name.len() as u32 + 1;
        let fields = [
            ino,
            header.mode,
            0, // uid
            0, // gid
            header.nlink,
            0, // mtime
            data.len() as u32,
            0, // devmajor: the device holding the file
            0, // devminor
            header.rdev.0,
            header.rdev.1,
            name_size,
            0, // check: only the 070702 format sums the data
        ];
        self.bytes.extend_from_slice(MAGIC);
        for field in fields {
            self.bytes
                .extend_from_slice(format!("{field:08X}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    /// Zeros up to the next multiple of 4 bytes.
    fn pad(&mut self) {
        let len = self.bytes.len().next_multiple_of(4);
        self.bytes.resize(len, 0);
    }
}

/// `name` without a leading `/`, if it is a usable path in the archive.
fn checked_name(name: &str) -> Result<String> {
    let relative = name.strip_prefix('/').unwrap_or(name);
    if relative.is_empty()
        || relative.contains('\0')
        || relative == TRAILER
        || relative
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
    {
        bail!("{name:?} is not a usable name in a cpio archive");
    }
    Ok(relative.to_string())
}

#[cfg(test)]
pub mod test_reader {
    //! A reader of newc archives for the tests, written from the format's
    //! description rather than from the writer above.

    const HEADER_LEN: usize = 110;

    /// One entry as read back.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Entry {
        pub ino: u32,
        pub mode: u32,
        pub uid: u32,
        pub gid: u32,
        pub nlink: u32,
        pub mtime: u32,
        pub rdev: (u32, u32),
        pub name: String,
        pub data: Vec<u8>,
    }

    /// Reads every entry of a newc archive up to and without its trailer,
    /// checking the magic, the NUL after each name, that the padding is
    /// zeros and that nothing follows the trailer.
    pub fn read_archive(bytes: &[u8]) -> Vec<Entry> {
        let mut at = 0;
        let mut entries = Vec::new();
        loop {
            assert_eq!(at % 4, 0, "an entry starts at {at}, not 4-aligned");
            let header = &bytes[at..at + HEADER_LEN];
            assert_eq!(&header[..6], b"070701", "magic at {at}");
            let field = |i: usize| {
                let text = std::str::from_utf8(&header[6 + 8 * i..14 + 8 * i]).unwrap();
                u32::from_str_radix(text, 16).unwrap()
            };
            let (size, name_size) = (field(6) as usize, field(11) as usize);
            assert_eq!(field(7), 0, "devmajor");
            assert_eq!(field(8), 0, "devminor");
            assert_eq!(field(12), 0, "check");
            let name_at = at + HEADER_LEN;
            assert_eq!(bytes[name_at + name_size - 1], 0, "the name ends in NUL");
            let name = std::str::from_utf8(&bytes[name_at..name_at + name_size - 1])
                .unwrap()
                .to_string();
            let data_at = (name_at + name_size).next_multiple_of(4);
            assert!(bytes[name_at + name_size..data_at].iter().all(|&b| b == 0));
            let end = data_at + size;
            let next = end.next_multiple_of(4);
            assert!(bytes[end..next].iter().all(|&b| b == 0));
            if name == "TRAILER!!!" {
                assert_eq!(next, bytes.len(), "bytes after the trailer");
                return entries;
            }
            entries.push(Entry {
                ino: field(0),
                mode: field(1),
                uid: field(2),
                gid: field(3),
                nlink: field(4),
                mtime: field(5),
                rdev: (field(9), field(10)),
                name,
                data: bytes[data_at..end].to_vec(),
            });
            at = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_reader::{Entry, read_archive};
    use super::*;

    fn entry(ino: u32, mode: u32, nlink: u32, name: &str, data: &[u8]) -> Entry {
        Entry {
            ino,
            mode,
            uid: 0,
            gid: 0,
            nlink,
            mtime: 0,
            rdev: (0, 0),
            name: name.into(),
            data: data.to_vec(),
        }
    }

    #[test]
    fn every_kind_of_entry_reads_back_with_its_fields() {
        let mut a = Archive::new();
        a.dir("/dev", 0o755).unwrap();
        a.char_device("/dev/console", 0o600, 5, 1).unwrap();
        a.dir("bin", 0o755).unwrap();
        a.file("bin/busybox", 0o755, b"\x7fELF...").unwrap();
        a.symlink("bin/sh", "busybox").unwrap();
        a.file("init", 0o755, b"#!/bin/busybox sh\n").unwrap();
        let entries = read_archive(&a.finish());
        let console = Entry {
            rdev: (5, 1),
            ..entry(2, 0o020_600, 1, "dev/console", b"")
        };
        assert_eq!(
            entries,
            [
                entry(1, 0o040_755, 2, "dev", b""),
                console,
                entry(3, 0o040_755, 2, "bin", b""),
                entry(4, 0o100_755, 1, "bin/busybox", b"\x7fELF..."),
                entry(5, 0o120_777, 1, "bin/sh", b"busybox"),
                entry(6, 0o100_755, 1, "init", b"#!/bin/busybox sh\n"),
            ]
        );
    }

    #[test]
    fn the_header_is_the_documented_layout() {
        let mut a = Archive::new();
        a.dir("bin", 0o755).unwrap();
        let bytes = a.finish();
        let expected = concat!(
            "070701", "00000001", "000041ED", "00000000", "00000000", "00000002", "00000000",
            "00000000", "00000000", "00000000", "00000000", "00000000", "00000004", "00000000",
            "bin\0",
        );
        assert_eq!(&bytes[..114], expected.as_bytes());
        // 110 + 4 is 114: two zeros to 116, where the trailer starts.
        assert_eq!(&bytes[114..116], b"\0\0");
        assert_eq!(&bytes[116..122], MAGIC);
        assert!(bytes[116 + 110..].starts_with(b"TRAILER!!!\0"));
    }

    #[test]
    fn names_and_data_of_every_length_stay_aligned() {
        let mut a = Archive::new();
        let mut expected = Vec::new();
        for n in 1..=9u32 {
            let name = "f".repeat(n as usize);
            let data: Vec<u8> = (0..n as u8 - 1).map(|i| i.wrapping_mul(37) | 1).collect();
            a.file(&name, 0o644, &data).unwrap();
            expected.push(entry(n, 0o100_644, 1, &name, &data));
        }
        let bytes = a.finish();
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(read_archive(&bytes), expected);
    }

    #[test]
    fn the_same_entries_give_the_same_bytes() {
        let build = || {
            let mut a = Archive::new();
            a.dir("proc", 0o555).unwrap();
            a.file("init", 0o755, b"x").unwrap();
            a.finish()
        };
        assert_eq!(build(), build());
        let empty = Archive::new().finish();
        assert!(read_archive(&empty).is_empty());
    }

    #[test]
    fn mistakes_the_kernel_would_hide_are_refused() {
        let mut a = Archive::new();
        let err = a.file("bin/busybox", 0o755, b"").unwrap_err().to_string();
        assert!(
            err.contains("its directory bin must be added first"),
            "{err}"
        );
        a.dir("bin", 0o755).unwrap();
        assert!(a.dir("/bin", 0o755).is_err(), "a duplicate");
        for bad in ["", "/", "a//b", "bin/../init", "./init", "a\0b", TRAILER] {
            assert!(a.file(bad, 0o644, b"").is_err(), "{bad:?}");
        }
        assert!(a.file("init", 0o100_755, b"").is_err(), "type bits in perm");
        assert!(a.symlink("bin/sh", "").is_err());
        // Nothing refused was written.
        assert_eq!(read_archive(&a.finish()).len(), 1);
    }
}
