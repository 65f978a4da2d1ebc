//! AMD SVM: the VMCB, the guest's boot structures, IOIO exit decoding, the
//! Multiboot (v1) loader structures, the CPUID and MSR policies, and the
//! guest page walk and instruction decoding a device access needs.

pub mod boot;
pub mod cpuid;
pub mod ioio;
pub mod mmio_insn;
pub mod msr;
pub mod multiboot;
pub mod paging;
pub mod vmcb;
