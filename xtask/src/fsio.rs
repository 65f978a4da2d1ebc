//! File helpers that keep the edit-run loop fast: a file is only rewritten
//! when its content changes, so its mtime stays put otherwise.

use anyhow::{Context, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` unless the file already holds exactly them.
/// Returns whether the file was written. The write goes to a temporary file
/// renamed over `path`, so a reader never sees half a file.
pub fn write_if_different(path: &Path, bytes: &[u8]) -> Result<bool> {
    if same_content(path, bytes) {
        return Ok(false);
    }
    let tmp = temp_path(path);
    create_parent(path)?;
    fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    replace(&tmp, path)?;
    Ok(true)
}

/// Whether `path` exists and holds exactly `bytes`.
fn same_content(path: &Path, bytes: &[u8]) -> bool {
    match fs::metadata(path) {
        Ok(m) if m.len() == bytes.len() as u64 => fs::read(path).is_ok_and(|old| old == bytes),
        _ => false,
    }
}

/// A sibling of `path` to build a new version in.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Renames `tmp` over `path`.
pub fn replace(tmp: &Path, path: &Path) -> Result<()> {
    fs::rename(tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

/// Creates the directory `path` will live in.
pub fn create_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
    }
    Ok(())
}

/// Reads a whole file, naming it on error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

#[cfg(test)]
pub mod testdir {
    //! Scratch directories for unit tests, removed when dropped.
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};

    pub struct TestDir(PathBuf);

    impl std::ops::Deref for TestDir {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// An empty directory unique to this test process and `name`.
    pub fn fresh(name: &str) -> TestDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("xtask-test-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cannot create a test directory");
        TestDir(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_content_is_not_rewritten() {
        let dir = testdir::fresh("fsio");
        let path = dir.join("sub").join("f.bin");
        assert!(write_if_different(&path, b"one").unwrap());
        let before = fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!write_if_different(&path, b"one").unwrap());
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), before);
        assert!(write_if_different(&path, b"two!").unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"two!");
        assert!(!temp_path(&path).exists());
    }
}
