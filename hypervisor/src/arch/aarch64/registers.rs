//! EL2 configuration for running a guest: the stage-2 translation control,
//! the HCR_EL2 values for host and guest, and stage-2 TLB maintenance.

use aarch64_cpu::registers::{CurrentEL, HCR_EL2, Readable, VTCR_EL2, Writeable};
use core::arch::asm;
use guestaspace_core::addr::GuestPhysAddr;
use guestaspace_core::arch::setup::HwSetupError;

/// HCR_EL2.VI, bit 7: a virtual IRQ is pending for EL1 (Arm ARM DDI 0487,
/// D23.2 "HCR_EL2"; aarch64-cpu 10 does not name the field).
const HCR_EL2_VI: u64 = 1 << 7;
/// HCR_EL2.TWI, bit 13: the guest's WFI traps to EL2 (same section), where
/// the vCPU waits on its host CPU for what can wake it.
const HCR_EL2_TWI: u64 = 1 << 13;

/// HCR_EL2 while the guest runs: stage-2 on, AArch64 EL1, physical
/// interrupts and SErrors routed to EL2, SMC trapped, implementation-defined
/// and auxiliary control registers trapped (TIDCP, TACR), and VHE kept
/// (E2H). Pointer authentication is the guest's: its instructions and key
/// registers do not trap (APK, API set). Under VHE the host would sign
/// with the same EL1 key registers, but the host never signs (it is not
/// built with branch protection), so the keys are the guest's alone; a
/// kernel built with pointer authentication (Debian's arm64 kernel signs
/// every return address) would otherwise trap on each function entry.
/// `virq` asserts the guest's virtual IRQ line (HCR_EL2.VI): the emulated
/// GIC's CPU interface has an interrupt for it.
pub fn hcr_guest(virq: bool) -> u64 {
    let vi = if virq { HCR_EL2_VI } else { 0 };
    vi | HCR_EL2_TWI
        | (HCR_EL2::VM::Enable
            + HCR_EL2::SWIO::SET
            + HCR_EL2::FMO::EnableVirtualFIQ
            + HCR_EL2::IMO::EnableVirtualIRQ
            + HCR_EL2::AMO::SET
            + HCR_EL2::TSC::EnableTrapEl1SmcToEl2
            + HCR_EL2::TIDCP::SET
            + HCR_EL2::TACR::SET
            + HCR_EL2::RW::EL1IsAarch64
            + HCR_EL2::E2H::EnableOsAtEl2
            + HCR_EL2::APK::DisableTrapPointerAuthKeyRegsToEl2
            + HCR_EL2::API::DisableTrapPointerAuthInstToEl2)
            .value
}

/// HCR_EL2 while the host runs: VHE with TGE, as the platform set it up.
pub fn hcr_host() -> u64 {
    (HCR_EL2::RW::EL1IsAarch64
        + HCR_EL2::E2H::EnableOsAtEl2
        + HCR_EL2::TGE::EnableTrapGeneralExceptionsToEl2
        + HCR_EL2::APK::DisableTrapPointerAuthKeyRegsToEl2
        + HCR_EL2::API::DisableTrapPointerAuthInstToEl2)
        .value
}

/// MDCR_EL2 bits that keep the host's PMU and debug state from the guest
/// (Arm ARM DDI 0487, D23.2 "MDCR_EL2"): TPMCR (bit 5) and TPM (bit 6)
/// trap its PMU accesses, TDA (bit 9), TDOSA (bit 10) and TDRA (bit 11)
/// its debug-register accesses. aarch64-cpu 10 has no MDCR_EL2.
const MDCR_EL2_GUEST_TRAPS: u64 = 1 << 5 | 1 << 6 | 1 << 9 | 1 << 10 | 1 << 11;

/// CPTR_EL2 in its HCR_EL2.E2H = 1 layout (the CPACR_EL1 one; DDI 0487
/// D23.2 "CPTR_EL2"): ZEN (bits 17:16), FPEN (21:20) and SMEN (25:24) at
/// 0b11 trap nothing, so the guest uses FP/SIMD, SVE and SME as the CPU
/// has them (its own CPACR_EL1 still decides for its EL0). The host is
/// built soft-float and never touches those registers, so the world
/// switch need not save them: the guest is their only user.
const CPTR_EL2_NO_FP_TRAPS: u64 = 0b11 << 16 | 0b11 << 20 | 0b11 << 24;

/// VMPIDR_EL2 (the MPIDR_EL1 the guest reads) of vCPU `index`: bit 31
/// RES1, Aff0 = the index, the other affinity fields 0, as PSCI and the
/// device tree name the CPUs.
pub const fn guest_mpidr(index: usize) -> u64 {
    1 << 31 | (index as u64 & 0xff)
}

/// Checks the boot CPU is at EL2 with VHE and sets it up.
pub fn init() -> Result<(), HwSetupError> {
    if CurrentEL.read(CurrentEL::EL) != 2 {
        return Err(HwSetupError::NotAtEl2);
    }
    println!("CurrentEL = 2");
    init_cpu()
}

/// Sets up the calling CPU's EL2 registers for running a guest.
pub fn init_cpu() -> Result<(), HwSetupError> {
    if CurrentEL.read(CurrentEL::EL) != 2 {
        return Err(HwSetupError::NotAtEl2);
    }
    if !HCR_EL2.is_set(HCR_EL2::E2H) {
        return Err(HwSetupError::NoVhe);
    }
    // Stage 2: 4 KiB granule, 39-bit IPA (T0SZ = 25) starting at level 1
    // (SL0 = 1), write-back inner-shareable walks, 40-bit output.
    VTCR_EL2.write(
        VTCR_EL2::T0SZ.val(25)
            + VTCR_EL2::SL0::Granule4KBLevel1
            + VTCR_EL2::IRGN0::NormalWBRAWA
            + VTCR_EL2::ORGN0::NormalWBRAWA
            + VTCR_EL2::SH0::Inner
            + VTCR_EL2::TG0::Granule4KB
            + VTCR_EL2::PS::PA_40B_1TB,
    );
    // SAFETY: the traps only affect EL1/EL0, i.e. the guest; the host's
    // own (EL2) accesses are unaffected. HPMN (bits 4:0) keeps its value.
    unsafe {
        asm!(
            "mrs {tmp}, mdcr_el2",
            "orr {tmp}, {tmp}, {traps}",
            "msr mdcr_el2, {tmp}",
            "isb",
            tmp = out(reg) _,
            traps = in(reg) MDCR_EL2_GUEST_TRAPS,
        )
    };
    // SAFETY: CPTR_EL2 only widens what EL2/EL1/EL0 may execute (see
    // CPTR_EL2_NO_FP_TRAPS); the identification registers the guest reads
    // (VPIDR_EL2 = the real MIDR_EL1, VMPIDR_EL2) only affect EL1.
    unsafe {
        asm!(
            "mrs {tmp}, cptr_el2",
            "orr {tmp}, {tmp}, {fp}",
            "msr cptr_el2, {tmp}",
            "mrs {tmp}, midr_el1",
            "msr vpidr_el2, {tmp}",
            "msr vmpidr_el2, {mpidr}",
            "isb",
            tmp = out(reg) _,
            fp = in(reg) CPTR_EL2_NO_FP_TRAPS,
            mpidr = in(reg) guest_mpidr(0),
        )
    };
    Ok(())
}

/// Cleans the page at kernel address `frame` to the point of coherency and
/// invalidates the instruction cache, so that a guest reading it with its
/// MMU and caches off (or fetching instructions from it) sees what the host
/// wrote through its cacheable mapping.
pub fn clean_to_poc(frame: *const u8) {
    // CTR_EL0.DminLine, bits 19:16: log2 of the smallest data cache line
    // in 4-byte words (DDI 0487 D23.2 "CTR_EL0").
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effects.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr) };
    let line = 4usize << ((ctr >> 16) & 0xf);
    let start = frame as usize;
    for addr in (start..start + guestaspace_core::PAGE_SIZE as usize).step_by(line) {
        // SAFETY: cleaning a cache line changes no memory contents.
        unsafe { asm!("dc cvac, {}", in(reg) addr) };
    }
    // SAFETY: barriers and I-cache invalidation change no memory contents.
    unsafe { asm!("dsb ish", "ic ialluis", "dsb ish", "isb") };
}

/// Drops stage-2 TLB entries for the page at `ipa`, then every combined
/// stage-1+2 entry of the current VMID (VTTBR_EL2), which may hold it.
/// (VMALLE1IS would not do: with TGE set it targets the host's regime.)
pub fn invalidate_ipa(ipa: GuestPhysAddr) {
    // SAFETY: TLB maintenance and barriers have no memory effects.
    unsafe {
        asm!(
            "dsb ishst",
            "tlbi ipas2e1is, {0}",
            "dsb ish",
            "tlbi vmalls12e1is",
            "dsb ish",
            "isb",
            in(reg) ipa.as_u64() >> 12,
        )
    };
}
