//! Disk images, built in Rust with `fatfs`: the FAT32 disk the hypervisor
//! reads the VM's config `/etc/vm.toml`, `/sbin/gkernel` (and a Linux
//! guest's `/boot/initrd`) from, and a disk with no file system at all for the
//! tests. Files that do not fit are refused before anything is written,
//! naming their sizes.
//!
//! A FAT image is only rebuilt when the files it should hold differ from
//! what the existing image holds (read back through `fatfs`), so an
//! unchanged guest costs one small read, not a 64 MiB write. Timestamps in
//! the image are fixed, so the same files always give the same bytes.

use crate::fsio;
use anyhow::{Context, Result, bail};
use fatfs::{
    Date, DateTime, FatType, FileSystem, FormatVolumeOptions, FsOptions, Time, TimeProvider,
};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

/// Size of every FAT disk image: 2 GiB, written as a sparse file (only the
/// file system's structures and the files take space on the host). The
/// size is what lets the clusters be large (see [`CLUSTER_SIZE`]).
pub const DISK_SIZE: u64 = 2 << 30;

/// FAT32 cluster size. The hypervisor reads a file one cluster per disk
/// request (and one more for the FAT entry leading to the next), so a
/// 33 MB Linux kernel in 512-byte clusters took 7.6 s to read under TCG.
/// 16 KiB clusters cut the requests 32-fold; FAT32 needs at least 65525
/// clusters, which 2 GiB of 16 KiB clusters (131072) leaves room for.
pub const CLUSTER_SIZE: u32 = 16 << 10;

/// Size of the disk without a file system (a test input: written in full).
pub const NON_FAT_DISK_SIZE: u64 = 64 << 20;

/// What a FAT image holds: absolute paths (`/sbin/gkernel`) to contents.
pub type DiskFiles = BTreeMap<String, Vec<u8>>;

/// Makes `image` a FAT32 disk holding exactly `files` (their parent
/// directories are created). Returns whether the image was (re)written.
pub fn write_fat_disk(image: &Path, files: &DiskFiles) -> Result<bool> {
    if holds_exactly(image, files) {
        return Ok(false);
    }
    fsio::create_parent(image)?;
    let tmp = fsio::temp_path(image);
    format_fat32(&tmp, files)
        .with_context(|| format!("cannot build the FAT32 image {}", tmp.display()))?;
    fsio::replace(&tmp, image)?;
    Ok(true)
}

/// Every file in the FAT image at `image`, by absolute path.
pub fn read_fat_files(image: &Path) -> Result<DiskFiles> {
    let disk = File::open(image).with_context(|| format!("cannot open {}", image.display()))?;
    let fs = FileSystem::new(disk, FsOptions::new())
        .with_context(|| format!("{} holds no FAT file system", image.display()))?;
    let mut files = DiskFiles::new();
    collect_files(&fs.root_dir(), "", &mut files)
        .with_context(|| format!("cannot read {}", image.display()))?;
    Ok(files)
}

/// Makes `image` a disk of [`NON_FAT_DISK_SIZE`] bytes that holds no file system:
/// a repeated line of text, so no sector looks like a boot sector.
pub fn write_non_fat_disk(image: &Path) -> Result<bool> {
    let line = b"This disk holds no file system, on purpose.\n";
    let mut bytes = line.repeat(NON_FAT_DISK_SIZE as usize / line.len() + 1);
    bytes.truncate(NON_FAT_DISK_SIZE as usize);
    fsio::write_if_different(image, &bytes)
}

fn holds_exactly(image: &Path, files: &DiskFiles) -> bool {
    let right_size = std::fs::metadata(image).is_ok_and(|m| m.len() == DISK_SIZE);
    right_size && read_fat_files(image).is_ok_and(|found| &found == files)
}

fn format_fat32(path: &Path, files: &DiskFiles) -> Result<()> {
    let mut disk = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    disk.set_len(DISK_SIZE)?;
    let options = FormatVolumeOptions::new()
        .fat_type(FatType::Fat32)
        .bytes_per_cluster(CLUSTER_SIZE)
        .volume_id(0x6775_6573)
        .volume_label(*b"GUESTASPACE");
    fatfs::format_volume(&mut disk, options).context("cannot format")?;
    let fs = FileSystem::new(disk, FsOptions::new().time_provider(&FIXED_TIME))?;
    let stats = fs.stats()?;
    check_room(
        u64::from(stats.cluster_size()),
        u64::from(stats.free_clusters()),
        files,
    )?;
    for (path, bytes) in files {
        add_file(&fs, path, bytes).with_context(|| format!("cannot add {path}"))?;
    }
    fs.unmount()?;
    Ok(())
}

/// Fails, naming the sizes, if `files` cannot all fit in `free` clusters
/// of `cluster` bytes (each file takes whole clusters; directories take a
/// cluster or so each, which the margin of one cluster per file covers).
fn check_room(cluster: u64, free: u64, files: &DiskFiles) -> Result<()> {
    let needed: u64 = files
        .values()
        .map(|bytes| (bytes.len() as u64).div_ceil(cluster) + 1)
        .sum();
    if needed > free {
        let mib = |clusters: u64| (clusters * cluster) as f64 / f64::from(1 << 20);
        let mut list: Vec<String> = files
            .iter()
            .map(|(path, bytes)| {
                format!("{path} {:.1} MiB", bytes.len() as f64 / f64::from(1 << 20))
            })
            .collect();
        list.sort();
        bail!(
            "the disk's files need {:.1} MiB but its FAT32 file system has {:.1} MiB free \
             (the disk is {} MiB): {}",
            mib(needed),
            mib(free),
            DISK_SIZE >> 20,
            list.join(", ")
        );
    }
    Ok(())
}

fn add_file(fs: &FileSystem<File>, path: &str, bytes: &[u8]) -> Result<()> {
    let Some(relative) = path.strip_prefix('/') else {
        bail!("disk paths must be absolute");
    };
    let (dirs, name) = relative.rsplit_once('/').unwrap_or(("", relative));
    let mut dir = fs.root_dir();
    for part in dirs.split('/').filter(|p| !p.is_empty()) {
        dir = match dir.open_dir(part) {
            Ok(existing) => existing,
            Err(_) => dir.create_dir(part)?,
        };
    }
    let mut file = dir.create_file(name)?;
    file.truncate()?;
    file.write_all(bytes)?;
    file.flush()?;
    Ok(())
}

fn collect_files(dir: &fatfs::Dir<File>, prefix: &str, out: &mut DiskFiles) -> Result<()> {
    for entry in dir.iter() {
        let entry = entry?;
        let name = entry.file_name();
        if name == "." || name == ".." {
            continue;
        }
        let path = format!("{prefix}/{name}");
        if entry.is_dir() {
            collect_files(&entry.to_dir(), &path, out)?;
        } else {
            let mut bytes = Vec::with_capacity(entry.len() as usize);
            entry.to_file().read_to_end(&mut bytes)?;
            out.insert(path, bytes);
        }
    }
    Ok(())
}

/// File times written into images: fixed, so images are reproducible.
#[derive(Debug)]
struct FixedTime;

static FIXED_TIME: FixedTime = FixedTime;

impl TimeProvider for FixedTime {
    fn get_current_date(&self) -> Date {
        Date {
            year: 2024,
            month: 1,
            day: 1,
        }
    }

    fn get_current_date_time(&self) -> DateTime {
        DateTime {
            date: self.get_current_date(),
            time: Time {
                hour: 0,
                min: 0,
                sec: 0,
                millis: 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn files(entries: &[(&str, &[u8])]) -> DiskFiles {
        entries
            .iter()
            .map(|(p, b)| (p.to_string(), b.to_vec()))
            .collect()
    }

    #[test]
    fn gkernel_is_found_under_sbin_with_its_bytes() {
        let dir = fsio::testdir::fresh("disk");
        let image = dir.join("disk.img");
        let gkernel: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let wanted = files(&[("/sbin/gkernel", &gkernel)]);
        let start = Instant::now();
        assert!(write_fat_disk(&image, &wanted).unwrap());
        eprintln!(
            "FAT32 image with a 300 KB file built in {:?}",
            start.elapsed()
        );
        assert_eq!(std::fs::metadata(&image).unwrap().len(), DISK_SIZE);

        let fs = FileSystem::new(File::open(&image).unwrap(), FsOptions::new()).unwrap();
        assert_eq!(fs.fat_type(), FatType::Fat32);
        let sbin = fs.root_dir().open_dir("sbin").unwrap();
        let mut found = Vec::new();
        sbin.open_file("gkernel")
            .unwrap()
            .read_to_end(&mut found)
            .unwrap();
        assert_eq!(found, gkernel);
        drop(sbin);
        drop(fs);
        assert_eq!(read_fat_files(&image).unwrap(), wanted);
    }

    #[test]
    fn the_same_files_do_not_rewrite_the_image_but_new_files_do() {
        let dir = fsio::testdir::fresh("disk-again");
        let image = dir.join("disk.img");
        let wanted = files(&[("/sbin/gkernel", b"v1")]);
        assert!(write_fat_disk(&image, &wanted).unwrap());
        let mtime = std::fs::metadata(&image).unwrap().modified().unwrap();
        let start = Instant::now();
        assert!(!write_fat_disk(&image, &wanted).unwrap());
        eprintln!("unchanged FAT32 image checked in {:?}", start.elapsed());
        assert_eq!(
            std::fs::metadata(&image).unwrap().modified().unwrap(),
            mtime
        );
        let changed = files(&[("/sbin/gkernel", b"v2")]);
        assert!(write_fat_disk(&image, &changed).unwrap());
        assert_eq!(read_fat_files(&image).unwrap(), changed);
    }

    #[test]
    fn a_disk_without_gkernel_has_no_sbin_gkernel() {
        let dir = fsio::testdir::fresh("no-gkernel");
        let image = dir.join("disk.img");
        let wanted = files(&[("/README.txt", b"no guest here\n")]);
        write_fat_disk(&image, &wanted).unwrap();
        let found = read_fat_files(&image).unwrap();
        assert_eq!(found, wanted);
        assert!(!found.contains_key("/sbin/gkernel"));
        let fs = FileSystem::new(File::open(&image).unwrap(), FsOptions::new()).unwrap();
        assert!(fs.root_dir().open_file("sbin/gkernel").is_err());
    }

    #[test]
    fn identical_files_give_identical_images() {
        let dir = fsio::testdir::fresh("repro");
        let wanted = files(&[("/sbin/gkernel", b"same")]);
        write_fat_disk(&dir.join("a.img"), &wanted).unwrap();
        write_fat_disk(&dir.join("b.img"), &wanted).unwrap();
        // Everything a fresh file system writes (boot sector, FATs, the
        // first clusters) lies in its first 64 MiB; the rest of the sparse
        // 2 GiB is never written. Comparing that prefix and the lengths
        // keeps the test from reading 4 GiB of zeros.
        let prefix = |name: &str| {
            let file = File::open(dir.join(name)).unwrap();
            assert_eq!(file.metadata().unwrap().len(), DISK_SIZE);
            let mut bytes = Vec::new();
            file.take(64 << 20).read_to_end(&mut bytes).unwrap();
            bytes
        };
        assert!(prefix("a.img") == prefix("b.img"));
    }

    #[test]
    fn a_large_file_fits_and_reads_back() {
        let dir = fsio::testdir::fresh("big");
        let image = dir.join("disk.img");
        let big = vec![0x13u8; 15 << 20];
        let start = Instant::now();
        write_fat_disk(&image, &files(&[("/sbin/gkernel", &big)])).unwrap();
        eprintln!(
            "FAT32 image with a 15 MiB file built in {:?}",
            start.elapsed()
        );
        assert_eq!(read_fat_files(&image).unwrap()["/sbin/gkernel"], big);
    }

    #[test]
    fn a_debian_kernel_and_its_initramfs_fit() {
        // Debian bookworm's arm64 Image is about 33 MB, the busybox
        // initramfs about 2 MB.
        let dir = fsio::testdir::fresh("linux");
        let image = dir.join("disk.img");
        let wanted = files(&[
            ("/sbin/gkernel", &vec![0x4au8; 33 << 20]),
            ("/boot/initrd", &vec![0x07u8; 2 << 20]),
            ("/boot/cmdline", b"console=ttyAMA0"),
        ]);
        let start = Instant::now();
        write_fat_disk(&image, &wanted).unwrap();
        eprintln!(
            "FAT32 image with 35 MiB of files built in {:?}",
            start.elapsed()
        );
        assert_eq!(read_fat_files(&image).unwrap(), wanted);
    }

    #[test]
    fn files_larger_than_the_disk_are_refused_by_size() {
        // The size check, on a disk with 64 MiB free (checked before any
        // file is written, so no real disk that size is needed).
        let big = vec![0u8; 40 << 20];
        let wanted = files(&[("/sbin/gkernel", &big), ("/boot/initrd", &big)]);
        let cluster = u64::from(CLUSTER_SIZE);
        let err = check_room(cluster, (64 << 20) / cluster, &wanted).unwrap_err();
        let err = format!("{err:#}");
        assert!(
            err.contains("need 80.0 MiB but its FAT32 file system has"),
            "{err}"
        );
        assert!(
            err.contains("/boot/initrd 40.0 MiB, /sbin/gkernel 40.0 MiB"),
            "{err}"
        );
    }

    #[test]
    fn the_non_fat_disk_is_full_size_and_not_a_file_system() {
        let dir = fsio::testdir::fresh("garbage");
        let image = dir.join("disk.img");
        assert!(write_non_fat_disk(&image).unwrap());
        assert_eq!(std::fs::metadata(&image).unwrap().len(), NON_FAT_DISK_SIZE);
        assert!(read_fat_files(&image).is_err());
        let first_sector = &std::fs::read(&image).unwrap()[..512];
        assert_ne!(&first_sector[510..], &[0x55, 0xaa]);
    }
}
