//! Everything that can stop the hypervisor before or while the guest runs,
//! each with a message that names what and where.

use alloc::string::String;
use core::fmt;
use guestaspace_core::arch::setup::HwSetupError;
use guestaspace_core::image::ImageError;
use guestaspace_core::layout::LayoutError;
use guestaspace_core::stage2::MapError;
use guestaspace_core::vm::VmError;

pub enum HvError {
    /// The CPU lacks (or refuses) the virtualization feature.
    Hardware(HwSetupError),
    Layout(LayoutError),
    Map(MapError),
    /// A file (the guest kernel, its initrd, the VM config) could not be
    /// read: path and the file system's word.
    Disk {
        path: &'static str,
        reason: String,
    },
    Image {
        path: &'static str,
        error: ImageError,
    },
    Vm {
        /// What stopped it.
        error: VmError,
        /// The vCPU it happened on, named when the VM has more than one.
        cpu: Option<usize>,
    },
    /// `/etc/vm.toml` is not usable: the file, the line and what is wrong.
    Config(String),
    /// The guest's device tree could not be built or placed.
    #[cfg_attr(not(target_arch = "riscv64"), allow(dead_code))]
    // only riscv64 makes one so far
    DeviceTree(String),
    /// The kernel, initrd and command line cannot be set up as the guest's
    /// boot protocol wants them.
    Boot(String),
}

impl fmt::Display for HvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HvError::Hardware(what) => write!(f, "virtualization hardware: {what}"),
            HvError::Layout(e) => write!(f, "guest layout: {e}"),
            HvError::Map(e) => write!(f, "guest memory: {e}"),
            HvError::Disk { path, reason } => {
                write!(f, "cannot read {path} from the disk: {reason}")
            }
            HvError::Image { path, error } => write!(f, "{path}: {error}"),
            HvError::Vm { error, cpu: None } => write!(f, "VM stopped: {error}"),
            HvError::Vm {
                error,
                cpu: Some(cpu),
            } => write!(f, "VM stopped on vCPU {cpu}: {error}"),
            HvError::Config(e) => write!(f, "VM config {e}"),
            HvError::DeviceTree(e) => write!(f, "guest device tree: {e}"),
            HvError::Boot(e) => write!(f, "guest boot: {e}"),
        }
    }
}
