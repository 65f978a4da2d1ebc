//! Why the virtualization hardware cannot be used: the errors of each
//! architecture's hardware setup, with the messages the hypervisor prints
//! (the end-to-end tests match them word for word).

use core::fmt;

/// The CPU lacks, or refuses, what the hypervisor needs to run a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HwSetupError {
    /// riscv64: the hart has no H extension (reading `hstatus` traps).
    NoHExtension,
    /// riscv64: `hgatp.MODE` does not accept Sv39x4.
    NoSv39x4,
    /// aarch64: the hypervisor was entered below EL2.
    NotAtEl2,
    /// aarch64: the platform left `HCR_EL2.E2H` clear (no VHE).
    NoVhe,
    /// x86_64: CPUID reports no SVM.
    NoSvm,
    /// x86_64: SVM without nested paging.
    NoNestedPaging,
    /// x86_64: firmware set `VM_CR.SVMDIS`.
    SvmDisabledByFirmware,
    /// x86_64: no page left for the host save area (`VM_HSAVE_PA`).
    NoHostSaveArea,
}

impl fmt::Display for HwSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HwSetupError::NoHExtension => {
                "the CPU has no H extension (hstatus is not readable from HS-mode); run QEMU with a CPU that has h=true"
            }
            HwSetupError::NoSv39x4 => "hgatp does not support Sv39x4 G-stage translation",
            HwSetupError::NotAtEl2 => {
                "the hypervisor is not running at EL2 (QEMU needs -machine virt,virtualization=on)"
            }
            HwSetupError::NoVhe => "the platform did not enable VHE (HCR_EL2.E2H = 0)",
            HwSetupError::NoSvm => {
                "the CPU has no AMD SVM (CPUID 8000_0001h ECX[2]); run QEMU with -cpu EPYC"
            }
            HwSetupError::NoNestedPaging => {
                "the CPU has SVM but no nested paging (CPUID 8000_000Ah EDX[0])"
            }
            HwSetupError::SvmDisabledByFirmware => "SVM is disabled by firmware (VM_CR.SVMDIS)",
            HwSetupError::NoHostSaveArea => "no memory for the host save area",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_missing_feature_and_the_fix() {
        assert_eq!(
            HwSetupError::NoHExtension.to_string(),
            "the CPU has no H extension (hstatus is not readable from HS-mode); run QEMU with a CPU that has h=true"
        );
        assert_eq!(
            HwSetupError::NotAtEl2.to_string(),
            "the hypervisor is not running at EL2 (QEMU needs -machine virt,virtualization=on)"
        );
        assert_eq!(
            HwSetupError::NoSvm.to_string(),
            "the CPU has no AMD SVM (CPUID 8000_0001h ECX[2]); run QEMU with -cpu EPYC"
        );
    }
}
