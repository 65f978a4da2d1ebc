//! Turning SVM on: check CPUID for SVM and nested paging, check firmware
//! did not lock SVM off, set EFER.SVME and give the CPU its host save area.

use crate::host_memory::alloc_host_pages;
use core::sync::atomic::{AtomicBool, Ordering};
use guestaspace_core::arch::setup::HwSetupError;
use guestaspace_core::arch::x86_64::vmcb;
use raw_cpuid::CpuId;
use x86_64::registers::model_specific::{Efer, EferFlags, Msr};

/// VM_CR: bit 4 (SVMDIS) set means SVM is disabled.
const MSR_VM_CR: u32 = 0xc001_0114;
const VM_CR_SVMDIS: u64 = 1 << 4;
/// Host-physical address of the page where VMRUN saves host state.
const MSR_VM_HSAVE_PA: u32 = 0xc001_0117;

/// Whether the CPU saves nRIP on intercepts (CPUID 8000_000Ah EDX bit 3).
static NEXT_RIP: AtomicBool = AtomicBool::new(false);
/// Whether TLB_CONTROL may flush one ASID (EDX bit 6).
static FLUSH_BY_ASID: AtomicBool = AtomicBool::new(false);

/// Whether the VMCB's nRIP holds the next instruction after an intercept.
pub fn has_next_rip() -> bool {
    NEXT_RIP.load(Ordering::Relaxed)
}

/// The TLB_CONTROL value that drops the guest's stale translations: its
/// ASID only where the CPU can, else everything.
pub fn tlb_flush() -> u8 {
    if FLUSH_BY_ASID.load(Ordering::Relaxed) {
        vmcb::TLB_FLUSH_GUEST
    } else {
        vmcb::TLB_FLUSH_ALL
    }
}

pub fn enable() -> Result<(), HwSetupError> {
    let cpuid = CpuId::new();
    let svm = cpuid
        .get_extended_processor_and_feature_identifiers()
        .is_some_and(|f| f.has_svm());
    if !svm {
        return Err(HwSetupError::NoSvm);
    }
    let info = cpuid.get_svm_info();
    if !info.as_ref().is_some_and(|s| s.has_nested_paging()) {
        return Err(HwSetupError::NoNestedPaging);
    }
    NEXT_RIP.store(
        info.as_ref().is_some_and(|s| s.has_nrip()),
        Ordering::Relaxed,
    );
    FLUSH_BY_ASID.store(
        info.as_ref().is_some_and(|s| s.has_flush_by_asid()),
        Ordering::Relaxed,
    );
    // SAFETY: VM_CR exists on every CPU with SVM.
    if unsafe { Msr::new(MSR_VM_CR).read() } & VM_CR_SVMDIS != 0 {
        return Err(HwSetupError::SvmDisabledByFirmware);
    }
    let (_, hsave) = alloc_host_pages(1).ok_or(HwSetupError::NoHostSaveArea)?;
    // SAFETY: SVM exists; EFER.SVME only enables the SVM instructions, and
    // the host save area is a page of ours that nothing else uses.
    unsafe {
        Efer::update(|f| f.insert(EferFlags::SECURE_VIRTUAL_MACHINE_ENABLE));
        Msr::new(MSR_VM_HSAVE_PA).write(hsave.as_u64());
    }
    Ok(())
}
