//! AMD SVM: the VMCB, the guest's boot structures, IOIO exit decoding, the
//! Multiboot (v1) loader structures, and the CPUID and MSR policies.

pub mod boot;
pub mod cpuid;
pub mod ioio;
pub mod msr;
pub mod multiboot;
pub mod vmcb;
