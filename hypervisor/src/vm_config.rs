//! Reads the VM's config (`/etc/vm.toml` on the disk, see
//! `guestaspace_core::vmconfig`); a disk without the file gets defaults.
//! A kernel or initrd the config names must be a file on the disk.

use crate::error::HvError;
use alloc::format;
use alloc::string::String;
use guestaspace_core::vmconfig::{self, VmConfig};

/// The VM as the disk describes it.
pub struct DiskVm {
    /// The settings.
    pub config: VmConfig,
    /// Where the guest image is on the disk (the config's `kernel`, or
    /// `/sbin/gkernel`).
    pub kernel: &'static str,
    /// Where the initrd is on the disk, if the config names one.
    pub initrd: Option<&'static str>,
}

/// The config on the disk, or the defaults if the file is absent.
pub fn read() -> Result<DiskVm, HvError> {
    let path = vmconfig::PATH;
    let Some(bytes) = crate::disk::read_if_present(path)? else {
        return Ok(DiskVm {
            config: VmConfig::DEFAULT,
            kernel: vmconfig::DEFAULT_KERNEL,
            initrd: None,
        });
    };
    let text = String::from_utf8(bytes)
        .map_err(|_| HvError::Config(format!("{path}: the file is not UTF-8 text")))?;
    let (config, lines) = vmconfig::parse_with_lines(&text)
        .map_err(|e| HvError::Config(format!("{}", e.in_file(path))))?;
    // The paths live as long as the VM, i.e. until power-off, and the
    // disk's messages name them.
    let leak = |path: &Option<String>| path.clone().map(|p| &*String::leak(p));
    let (kernel, initrd) = (leak(&config.kernel), leak(&config.initrd));
    for (key, file) in [("kernel", kernel), ("initrd", initrd)] {
        if let Some(file) = file
            && !crate::disk::exists(file)?
        {
            let line = lines
                .line(key)
                .map_or(String::new(), |n| format!(" line {n}"));
            return Err(HvError::Config(format!(
                "{path}{line}: {key} `{file}` is not on the disk"
            )));
        }
    }
    Ok(DiskVm {
        kernel: kernel.unwrap_or(vmconfig::DEFAULT_KERNEL),
        initrd,
        config,
    })
}
