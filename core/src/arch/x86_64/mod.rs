//! AMD SVM: the VMCB and the guest's boot structures.

pub mod boot;
pub mod vmcb;
