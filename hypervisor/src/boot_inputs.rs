//! What a real kernel is given besides its image: the initial RAM disk,
//! the kernel command line and its CPU count, as the VM's config names them (`initrd`, a
//! file on the boot disk, and `cmdline`; `cargo xtask run --initrd FILE
//! --cmdline TEXT` writes both).

use crate::error::HvError;
use crate::vm_config::DiskVm;
use alloc::string::String;
use alloc::vec::Vec;

/// The initrd and command line, each absent unless the config names it.
pub struct BootInputs {
    /// Where the kernel image was read from, for messages.
    pub kernel: &'static str,
    /// The kernel command line (one line, no NUL: the config is checked).
    pub cmdline: Option<String>,
    /// The initial RAM disk's bytes.
    pub initrd: Option<Vec<u8>>,
    /// How many vCPUs the guest is told about (its device tree's CPUs).
    #[cfg_attr(target_arch = "x86_64", allow(dead_code))]
    pub cpus: usize,
}

impl BootInputs {
    /// Reads the initrd the config names.
    pub fn read(vm: &DiskVm) -> Result<Self, HvError> {
        let initrd = match vm.initrd {
            None => None,
            Some(path) => {
                let fs = crate::disk::root_fs(path)?;
                let bytes =
                    crate::disk::read_whole(fs, path).map_err(|e| crate::disk::error(path, e))?;
                Some(bytes)
            }
        };
        Ok(Self {
            kernel: vm.kernel,
            cmdline: vm.config.cmdline.clone(),
            initrd,
            cpus: vm.config.cpus as usize,
        })
    }
}
