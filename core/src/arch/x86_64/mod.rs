//! AMD SVM: the VMCB, the guest's boot structures, IOIO exit decoding and
//! the Multiboot (v1) loader structures.

pub mod boot;
pub mod ioio;
pub mod multiboot;
pub mod vmcb;
