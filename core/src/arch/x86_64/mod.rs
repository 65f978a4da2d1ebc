//! AMD SVM: the VMCB, the guest's boot structures, IOIO exit decoding, the
//! Multiboot (v1) loader structures and the CPUID policy.

pub mod boot;
pub mod cpuid;
pub mod ioio;
pub mod multiboot;
pub mod vmcb;
