//! The MSRs the guest sees: what the hypervisor does on an intercepted
//! RDMSR or WRMSR (VMEXIT_MSR; the permission map intercepts every MSR but
//! the ones the VMCB holds, [`VmcbMsr::ALL`]). The guest's ECX selects the
//! MSR and EDX:EAX carries the value; EXITINFO1 is 0 for RDMSR, 1 for
//! WRMSR; after the access the guest's RIP moves to nRIP, and after an
//! [`InjectGp`] it stays on the instruction.
//!
//! [`MsrKind::decode`] names what an MSR number is to this hypervisor, and
//! [`GuestMsrs::read`]/[`GuestMsrs::write`] perform the access against the
//! state it lives in ([`MsrEnv`]: the VMCB, the local APIC model, the
//! clocks). An access the policy does not accept returns [`InjectGp`]: the
//! caller injects #GP(0) into the guest (and counts it) instead of stopping
//! the VM. That is what hardware does for an MSR it does not implement, and
//! guests probe optional MSRs exactly that way (Linux's `rdmsr_safe`).
//!
//! # Which MSRs
//!
//! ArceOS on `axplat-x86-pc` (0.3.1-pre.5, with `axcpu` 0.3.1, `percpu`
//! 0.2 and `x2apic` 0.5.1) touches:
//!
//! * IA32_EFER: `multiboot.S` writes LME | NXE in 32-bit code before
//!   enabling paging; `axcpu`'s syscall setup (`uspace`) sets SCE by
//!   read-modify-write.
//! * STAR, LSTAR, SFMASK, KERNEL_GS_BASE (syscall setup and context
//!   switches with `uspace`), FS_BASE (the thread pointer), GS_BASE
//!   (`percpu`'s per-CPU base).
//! * IA32_APIC_BASE: the `x2apic` crate reads it and sets EXTD by
//!   read-modify-write to enter x2APIC mode.
//! * The x2APIC registers `0x802..=0x83F`: SVR, the LVT timer, error,
//!   LINT0 and LINT1 entries, the timer divide and initial count, EOI and
//!   SELF_IPI. The TSC itself it reads with RDTSC, not RDMSR.
//!
//! Linux x86_64 on an AMD processor with the CPUID of [`super::cpuid`]
//! additionally reads or writes at boot: SYSENTER_CS/ESP/EIP and CSTAR
//! (syscall setup, 32-bit compatibility), IA32_PAT (PAT setup), MTRRcap
//! and MTRRdefType (MTRR state), IA32_TSC_DEADLINE (its clockevent, since
//! CPUID offers TSC-deadline), the patch level at `0x8B`, HWCR (it checks
//! TscFreqSel), DE_CFG (it makes LFENCE serializing) and DEBUGCTL. It
//! probes the legacy performance counters, LS_CFG and similar with
//! `rdmsr_safe` and takes a #GP as "not there". Everything CPUID hides
//! (machine check, SPEC_CTRL, TSC_ADJUST, TSC_AUX, APERF/MPERF, XSS,
//! SME/SEV) it does not touch.
//!
//! # Where each MSR lives
//!
//! * In the VMCB state-save area ([`VmcbMsr`]): STAR, LSTAR, CSTAR,
//!   SFMASK, KERNEL_GS_BASE, FS/GS base and the SYSENTER MSRs. The
//!   hypervisor's VMLOAD/VMSAVE around VMRUN make these fields the guest's
//!   live values, so it can leave these MSRs out of the permission map
//!   ([`VmcbMsr::ALL`]); when one is intercepted anyway, the access lands
//!   in the same field here. Writes of a non-canonical address to the
//!   address-holding ones fault, as WRMSR does; CPUID hides 5-level paging,
//!   so canonical means 48-bit.
//! * EFER in the VMCB, with one difference (APM Vol. 2, 15.5.1 "Basic
//!   Operation": VMRUN refuses a guest EFER with SVME clear): the guest's
//!   view has SVME (bit 12) clear and the VMCB copy has it set
//!   ([`efer_for_vmcb`], [`guest_view`]). Since CPUID hides SVM, the guest
//!   setting SVME is a reserved-bit write and faults. Writable: SCE, LME,
//!   NXE and FFXSR; LMA is the processor's and a write keeps its current
//!   value; changing LME while CR0.PG is set faults (APM Vol. 2, 14.6
//!   "Enabling and Activating Long Mode"). Every other bit is reserved.
//! * IA32_PAT (`0x277`) is the VMCB's G_PAT, the guest PAT nested paging
//!   uses; each of the eight entries must be a valid memory type (UC 0,
//!   WC 1, WT 4, WP 5, WB 6, UC- 7; APM Vol. 2, 7.8 "Page-Attribute Table
//!   Mechanism").
//! * IA32_TSC (`0x10`): the guest TSC is the host TSC plus the VMCB's
//!   TSC_OFFSET; a write sets the offset so that the guest reads the
//!   written value now.
//! * IA32_APIC_BASE (`0x1B`) and the x2APIC range and IA32_TSC_DEADLINE
//!   belong to the local APIC model ([`crate::devices::lapic`]). APIC_BASE
//!   reads `0xFEE0_0000 | BSP | EN | EXTD` per the model's mode. A write
//!   follows the state machine of Intel SDM Vol. 3A 10.12.5 "x2APIC State
//!   Transitions" (the x2APIC section of AMD APM Vol. 2 chapter 16 has the
//!   same rules): EN = 0 with EXTD = 1 is
//!   the invalid state, and x2APIC → xAPIC and disabled → x2APIC are
//!   illegal transitions; all three fault. Reserved bits (7:0, 9, 63:52)
//!   fault, and so does moving the base: the page is on the device bus at
//!   its reset address (Linux and ArceOS never move it). BSP is read-only
//!   here (always set: the only vCPU is the bootstrap processor).
//! * Kept here in [`GuestMsrs`]: MTRRdefType (`0x2FF`). MTRRcap (`0xFE`)
//!   reads 0 (no variable or fixed ranges, no write-combining type): under
//!   nested paging the guest's MTRRs do not take part in the memory type
//!   (APM Vol. 2, 15.25 "Nested Paging": the type combines the host MTRRs,
//!   the nested page tables and the guest PAT), so the model
//!   only has to look like firmware that enabled MTRRs with a write-back
//!   default, which lets Linux set up PAT normally. A default-type write
//!   needs a valid type (UC, WC, WT, WP, WB) and E; FE and the other bits
//!   are reserved with no fixed ranges.
//! * Constants: the patch level / BIOS_SIGN_ID (`0x8B`) reads 0; HWCR
//!   (`0xC001_0015`) reads TscFreqSel (bit 24: the TSC counts at the P0
//!   frequency); DE_CFG (`0xC001_1029`) reads LFENCE-serializing (bit 1);
//!   MISC_ENABLE (`0x1A0`, Intel's, read by Intel-minded code) reads fast
//!   strings enabled, BTS and PEBS unavailable, MONITOR/MWAIT off (bit 18
//!   clear, as CPUID says). Writes to these are ignored. VM_CR
//!   (`0xC001_0114`) reads SVMDIS | LOCK ("SVM disabled by firmware",
//!   agreeing with CPUID) and writes fault. DEBUGCTL (`0x1D9`) reads 0 and
//!   accepts only 0: no last-branch records or branch single-step.
//! * Anything else ([`MsrKind::Unknown`]) faults.
//!
//! When the hypervisor starts using VMCB clean bits, writes here clear the
//! ones covering what they change (TSC offset: I, bit 0; G_PAT: NP, bit 4;
//! EFER: CRx, bit 5; APM Vol. 2, 15.15 "VMCB State Caching"), so it may.

use super::vmcb::{Vmcb, VmcbSave};
use crate::devices::lapic::{self, ApicMode, Lapic, X2ApicFault};

/// The guest gets #GP(0): the MSR does not exist or refuses the access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InjectGp;

impl From<X2ApicFault> for InjectGp {
    fn from(_: X2ApicFault) -> Self {
        InjectGp
    }
}

/// MSR numbers.
pub mod index {
    /// IA32_TIME_STAMP_COUNTER.
    pub const TSC: u32 = 0x10;
    /// IA32_APIC_BASE.
    pub const APIC_BASE: u32 = 0x1b;
    /// AMD PATCH_LEVEL / Intel IA32_BIOS_SIGN_ID (microcode revision).
    pub const PATCH_LEVEL: u32 = 0x8b;
    /// IA32_MTRRCAP.
    pub const MTRR_CAP: u32 = 0xfe;
    /// IA32_SYSENTER_CS.
    pub const SYSENTER_CS: u32 = 0x174;
    /// IA32_SYSENTER_ESP.
    pub const SYSENTER_ESP: u32 = 0x175;
    /// IA32_SYSENTER_EIP.
    pub const SYSENTER_EIP: u32 = 0x176;
    /// IA32_MISC_ENABLE (Intel).
    pub const MISC_ENABLE: u32 = 0x1a0;
    /// IA32_DEBUGCTL.
    pub const DEBUGCTL: u32 = 0x1d9;
    /// IA32_PAT.
    pub const PAT: u32 = 0x277;
    /// IA32_MTRR_DEF_TYPE.
    pub const MTRR_DEF_TYPE: u32 = 0x2ff;
    /// IA32_TSC_DEADLINE.
    pub const TSC_DEADLINE: u32 = 0x6e0;
    /// EFER.
    pub const EFER: u32 = 0xc000_0080;
    /// STAR (SYSCALL CS/SS selectors).
    pub const STAR: u32 = 0xc000_0081;
    /// LSTAR (64-bit SYSCALL entry).
    pub const LSTAR: u32 = 0xc000_0082;
    /// CSTAR (compatibility-mode SYSCALL entry).
    pub const CSTAR: u32 = 0xc000_0083;
    /// SFMASK (SYSCALL RFLAGS mask).
    pub const SFMASK: u32 = 0xc000_0084;
    /// FS.base.
    pub const FS_BASE: u32 = 0xc000_0100;
    /// GS.base.
    pub const GS_BASE: u32 = 0xc000_0101;
    /// KernelGSbase (SWAPGS).
    pub const KERNEL_GS_BASE: u32 = 0xc000_0102;
    /// HWCR (AMD hardware configuration).
    pub const HWCR: u32 = 0xc001_0015;
    /// VM_CR (AMD SVM configuration).
    pub const VM_CR: u32 = 0xc001_0114;
    /// DE_CFG (AMD decode configuration).
    pub const DE_CFG: u32 = 0xc001_1029;
}

/// EFER bits (APM Vol. 2, 3.1.7 "Extended Feature Enable Register").
pub mod efer {
    /// System-call extensions (SYSCALL/SYSRET).
    pub const SCE: u64 = 1 << 0;
    /// Long mode enable.
    pub const LME: u64 = 1 << 8;
    /// Long mode active (set by the processor).
    pub const LMA: u64 = 1 << 10;
    /// No-execute enable.
    pub const NXE: u64 = 1 << 11;
    /// Secure virtual machine enable.
    pub const SVME: u64 = 1 << 12;
    /// Fast FXSAVE/FXRSTOR.
    pub const FFXSR: u64 = 1 << 14;
    /// The bits a guest write may change.
    pub const GUEST_WRITABLE: u64 = SCE | LME | NXE | FFXSR;
}

/// IA32_APIC_BASE bits.
pub mod apic_base {
    /// The processor is the bootstrap processor.
    pub const BSP: u64 = 1 << 8;
    /// x2APIC mode (with EN).
    pub const EXTD: u64 = 1 << 10;
    /// APIC global enable.
    pub const EN: u64 = 1 << 11;
    /// The base address, bits 51:12.
    pub const BASE: u64 = 0x000f_ffff_ffff_f000;
    /// Reserved: bits 7:0, 9 and 63:52.
    pub const RESERVED: u64 = !(BSP | EXTD | EN | BASE);
}

/// CR0.PG.
const CR0_PG: u64 = 1 << 31;

/// The power-on IA32_PAT: WB, WT, UC-, UC, twice.
pub const PAT_RESET: u64 = 0x0007_0406_0007_0406;
/// MTRRcap as the guest reads it: no variable or fixed ranges, no WC.
pub const MTRR_CAP_VALUE: u64 = 0;
/// MTRRdefType E (MTRRs enabled).
pub const MTRR_ENABLE: u64 = 1 << 11;
/// Memory type write-back.
pub const MEMTYPE_WB: u64 = 6;
/// MTRRdefType as firmware leaves it: enabled, default write-back.
pub const MTRR_DEF_TYPE_RESET: u64 = MTRR_ENABLE | MEMTYPE_WB;
/// MISC_ENABLE: fast strings (0), BTS unavailable (11), PEBS unavailable
/// (12).
pub const MISC_ENABLE_VALUE: u64 = 1 | (1 << 11) | (1 << 12);
/// HWCR: TscFreqSel (bit 24).
pub const HWCR_VALUE: u64 = 1 << 24;
/// DE_CFG: LFENCE is dispatch-serializing (bit 1).
pub const DE_CFG_VALUE: u64 = 1 << 1;
/// VM_CR: LOCK (bit 3) and SVMDIS (bit 4).
pub const VM_CR_VALUE: u64 = (1 << 3) | (1 << 4);

/// VMCB clean bits (APM Vol. 2, 15.15 "VMCB State Caching") the writes
/// here invalidate.
pub mod clean {
    /// I: intercepts and the TSC offset.
    pub const INTERCEPTS: u32 = 1 << 0;
    /// NP: nested paging (nCR3, G_PAT).
    pub const NP: u32 = 1 << 4;
    /// CRx: CR0, CR3, CR4, EFER.
    pub const CRX: u32 = 1 << 5;
}

/// An MSR kept in the VMCB state-save area (loaded by VMLOAD).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmcbMsr {
    /// STAR.
    Star,
    /// LSTAR.
    Lstar,
    /// CSTAR.
    Cstar,
    /// SFMASK.
    Sfmask,
    /// FS.base.
    FsBase,
    /// GS.base.
    GsBase,
    /// KernelGSbase.
    KernelGsBase,
    /// SYSENTER_CS.
    SysenterCs,
    /// SYSENTER_ESP.
    SysenterEsp,
    /// SYSENTER_EIP.
    SysenterEip,
}

impl VmcbMsr {
    /// Every MSR the VMCB holds: the ones a hypervisor can leave to the
    /// guest in the MSR permission map.
    pub const ALL: [VmcbMsr; 10] = [
        VmcbMsr::Star,
        VmcbMsr::Lstar,
        VmcbMsr::Cstar,
        VmcbMsr::Sfmask,
        VmcbMsr::FsBase,
        VmcbMsr::GsBase,
        VmcbMsr::KernelGsBase,
        VmcbMsr::SysenterCs,
        VmcbMsr::SysenterEsp,
        VmcbMsr::SysenterEip,
    ];

    /// The MSR number.
    pub const fn index(self) -> u32 {
        match self {
            VmcbMsr::Star => index::STAR,
            VmcbMsr::Lstar => index::LSTAR,
            VmcbMsr::Cstar => index::CSTAR,
            VmcbMsr::Sfmask => index::SFMASK,
            VmcbMsr::FsBase => index::FS_BASE,
            VmcbMsr::GsBase => index::GS_BASE,
            VmcbMsr::KernelGsBase => index::KERNEL_GS_BASE,
            VmcbMsr::SysenterCs => index::SYSENTER_CS,
            VmcbMsr::SysenterEsp => index::SYSENTER_ESP,
            VmcbMsr::SysenterEip => index::SYSENTER_EIP,
        }
    }

    /// The field holding this MSR.
    fn slot(self, save: &mut VmcbSave) -> &mut u64 {
        match self {
            VmcbMsr::Star => &mut save.star,
            VmcbMsr::Lstar => &mut save.lstar,
            VmcbMsr::Cstar => &mut save.cstar,
            VmcbMsr::Sfmask => &mut save.sfmask,
            VmcbMsr::FsBase => &mut save.fs.base,
            VmcbMsr::GsBase => &mut save.gs.base,
            VmcbMsr::KernelGsBase => &mut save.kernel_gs_base,
            VmcbMsr::SysenterCs => &mut save.sysenter_cs,
            VmcbMsr::SysenterEsp => &mut save.sysenter_esp,
            VmcbMsr::SysenterEip => &mut save.sysenter_eip,
        }
    }

    /// Whether the MSR holds a linear address (which must be canonical).
    pub const fn holds_address(self) -> bool {
        !matches!(self, VmcbMsr::Star | VmcbMsr::Sfmask | VmcbMsr::SysenterCs)
    }

    /// The value a guest write leaves, or #GP for a non-canonical address.
    pub const fn check(self, value: u64) -> Result<u64, InjectGp> {
        if self.holds_address() && !is_canonical(value) {
            return Err(InjectGp);
        }
        Ok(value)
    }
}

/// Whether `addr` is a canonical 48-bit linear address (bits 63:47 equal).
pub const fn is_canonical(addr: u64) -> bool {
    ((addr as i64) << 16 >> 16) as u64 == addr
}

/// What an MSR number is to this hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsrKind {
    /// IA32_TSC: host TSC plus the VMCB's offset.
    Tsc,
    /// IA32_APIC_BASE: the local APIC's mode.
    ApicBase,
    /// The microcode patch level: reads 0.
    PatchLevel,
    /// MTRRcap: reads [`MTRR_CAP_VALUE`].
    MtrrCap,
    /// MISC_ENABLE: reads [`MISC_ENABLE_VALUE`].
    MiscEnable,
    /// DEBUGCTL: reads 0, accepts only 0.
    DebugCtl,
    /// IA32_PAT: the VMCB's G_PAT.
    Pat,
    /// MTRRdefType, kept in [`GuestMsrs`].
    MtrrDefType,
    /// IA32_TSC_DEADLINE: the local APIC timer.
    TscDeadline,
    /// An x2APIC register, by its xAPIC offset (`(msr - 0x800) << 4`).
    X2Apic(u16),
    /// EFER: the VMCB's, with SVME hidden.
    Efer,
    /// One of the MSRs in the VMCB state-save area.
    Vmcb(VmcbMsr),
    /// HWCR: reads [`HWCR_VALUE`].
    Hwcr,
    /// VM_CR: reads [`VM_CR_VALUE`], writes fault.
    VmCr,
    /// DE_CFG: reads [`DE_CFG_VALUE`].
    DeCfg,
    /// Not implemented: every access faults.
    Unknown,
}

impl MsrKind {
    /// The kind of MSR `msr` (the guest's ECX).
    pub const fn decode(msr: u32) -> Self {
        use index::*;
        match msr {
            TSC => MsrKind::Tsc,
            APIC_BASE => MsrKind::ApicBase,
            PATCH_LEVEL => MsrKind::PatchLevel,
            MTRR_CAP => MsrKind::MtrrCap,
            SYSENTER_CS => MsrKind::Vmcb(VmcbMsr::SysenterCs),
            SYSENTER_ESP => MsrKind::Vmcb(VmcbMsr::SysenterEsp),
            SYSENTER_EIP => MsrKind::Vmcb(VmcbMsr::SysenterEip),
            MISC_ENABLE => MsrKind::MiscEnable,
            DEBUGCTL => MsrKind::DebugCtl,
            PAT => MsrKind::Pat,
            MTRR_DEF_TYPE => MsrKind::MtrrDefType,
            TSC_DEADLINE => MsrKind::TscDeadline,
            EFER => MsrKind::Efer,
            STAR => MsrKind::Vmcb(VmcbMsr::Star),
            LSTAR => MsrKind::Vmcb(VmcbMsr::Lstar),
            CSTAR => MsrKind::Vmcb(VmcbMsr::Cstar),
            SFMASK => MsrKind::Vmcb(VmcbMsr::Sfmask),
            FS_BASE => MsrKind::Vmcb(VmcbMsr::FsBase),
            GS_BASE => MsrKind::Vmcb(VmcbMsr::GsBase),
            KERNEL_GS_BASE => MsrKind::Vmcb(VmcbMsr::KernelGsBase),
            HWCR => MsrKind::Hwcr,
            VM_CR => MsrKind::VmCr,
            DE_CFG => MsrKind::DeCfg,
            _ => match lapic::x2apic_offset(msr) {
                Some(offset) => MsrKind::X2Apic(offset),
                None => MsrKind::Unknown,
            },
        }
    }
}

/// The VMCB's EFER for a guest EFER: SVME set, as VMRUN requires.
pub const fn efer_for_vmcb(guest_efer: u64) -> u64 {
    guest_efer | efer::SVME
}

/// The guest's view of the VMCB's EFER: SVME clear.
pub const fn guest_view(vmcb_efer: u64) -> u64 {
    vmcb_efer & !efer::SVME
}

/// The guest EFER after a guest write of `value` over `old` (the guest
/// view) with `cr0` current, or #GP.
pub const fn efer_write(old: u64, value: u64, cr0: u64) -> Result<u64, InjectGp> {
    if value & !(efer::GUEST_WRITABLE | efer::LMA) != 0 {
        return Err(InjectGp);
    }
    if cr0 & CR0_PG != 0 && (old ^ value) & efer::LME != 0 {
        return Err(InjectGp);
    }
    Ok((value & efer::GUEST_WRITABLE) | (old & efer::LMA))
}

/// IA32_APIC_BASE as the guest reads it in `mode`.
pub const fn apic_base_value(mode: ApicMode) -> u64 {
    let bits = match mode {
        ApicMode::Disabled => 0,
        ApicMode::XApic => apic_base::EN,
        ApicMode::X2Apic => apic_base::EN | apic_base::EXTD,
    };
    lapic::XAPIC_BASE | apic_base::BSP | bits
}

/// The mode a guest write of `value` to IA32_APIC_BASE moves to from
/// `from`, or #GP (reserved bits, a moved base, the invalid state, or an
/// illegal transition).
pub const fn apic_base_write(from: ApicMode, value: u64) -> Result<ApicMode, InjectGp> {
    if value & apic_base::RESERVED != 0 || value & apic_base::BASE != lapic::XAPIC_BASE {
        return Err(InjectGp);
    }
    let to = match (value & apic_base::EN != 0, value & apic_base::EXTD != 0) {
        (false, false) => ApicMode::Disabled,
        (true, false) => ApicMode::XApic,
        (true, true) => ApicMode::X2Apic,
        (false, true) => return Err(InjectGp),
    };
    match (from, to) {
        (ApicMode::X2Apic, ApicMode::XApic) | (ApicMode::Disabled, ApicMode::X2Apic) => {
            Err(InjectGp)
        }
        _ => Ok(to),
    }
}

/// Whether every entry of a PAT value is a valid memory type.
pub const fn pat_valid(pat: u64) -> bool {
    let mut i = 0;
    while i < 8 {
        let t = (pat >> (8 * i)) & 0xff;
        if !matches!(t, 0 | 1 | 4 | 5 | 6 | 7) {
            return false;
        }
        i += 1;
    }
    true
}

/// Whether a guest MTRRdefType value is acceptable: a valid MTRR type in
/// bits 7:0, E, and nothing else.
pub const fn mtrr_def_type_valid(value: u64) -> bool {
    value & !(MTRR_ENABLE | 0xff) == 0 && matches!(value & 0xff, 0 | 1 | 4 | 5 | 6)
}

/// What an MSR access reaches besides [`GuestMsrs`].
pub struct MsrEnv<'a> {
    /// The guest's VMCB: EFER, G_PAT, the VMLOAD MSRs, TSC_OFFSET, CR0.
    pub vmcb: &'a mut Vmcb,
    /// The local APIC: APIC_BASE mode, x2APIC registers, TSC deadline.
    pub lapic: &'a mut Lapic,
    /// The host TSC at the exit.
    pub host_tsc: u64,
    /// The hypervisor's clock at the exit, ns (the local APIC's time base).
    pub now_ns: u64,
}

impl MsrEnv<'_> {
    /// The guest TSC now: host TSC plus TSC_OFFSET.
    pub fn guest_tsc(&self) -> u64 {
        self.host_tsc.wrapping_add(self.vmcb.control.tsc_offset)
    }
}

/// The MSR state the VMCB and the local APIC do not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestMsrs {
    mtrr_def_type: u64,
}

impl Default for GuestMsrs {
    fn default() -> Self {
        Self::new()
    }
}

impl GuestMsrs {
    /// The state as firmware hands it over: MTRRs enabled, default WB.
    pub const fn new() -> Self {
        Self {
            mtrr_def_type: MTRR_DEF_TYPE_RESET,
        }
    }

    /// A guest RDMSR of `msr`.
    pub fn read(&self, msr: u32, env: &mut MsrEnv<'_>) -> Result<u64, InjectGp> {
        Ok(match MsrKind::decode(msr) {
            MsrKind::Tsc => env.guest_tsc(),
            MsrKind::ApicBase => apic_base_value(env.lapic.mode()),
            MsrKind::PatchLevel | MsrKind::DebugCtl => 0,
            MsrKind::MtrrCap => MTRR_CAP_VALUE,
            MsrKind::MiscEnable => MISC_ENABLE_VALUE,
            MsrKind::Pat => env.vmcb.save.g_pat,
            MsrKind::MtrrDefType => self.mtrr_def_type,
            MsrKind::TscDeadline => {
                env.lapic.tick(env.now_ns);
                env.lapic.tsc_deadline()
            }
            MsrKind::X2Apic(offset) => env.lapic.read_x2apic(offset, env.now_ns)?,
            MsrKind::Efer => guest_view(env.vmcb.save.efer),
            MsrKind::Vmcb(m) => *m.slot(&mut env.vmcb.save),
            MsrKind::Hwcr => HWCR_VALUE,
            MsrKind::VmCr => VM_CR_VALUE,
            MsrKind::DeCfg => DE_CFG_VALUE,
            MsrKind::Unknown => return Err(InjectGp),
        })
    }

    /// A guest WRMSR of `value` to `msr`.
    pub fn write(&mut self, msr: u32, value: u64, env: &mut MsrEnv<'_>) -> Result<(), InjectGp> {
        match MsrKind::decode(msr) {
            MsrKind::Tsc => {
                env.vmcb.control.tsc_offset = value.wrapping_sub(env.host_tsc);
                env.vmcb.control.clean_bits &= !clean::INTERCEPTS;
            }
            MsrKind::ApicBase => {
                let mode = apic_base_write(env.lapic.mode(), value)?;
                if mode != env.lapic.mode() {
                    env.lapic.set_mode(mode, env.now_ns);
                }
            }
            MsrKind::PatchLevel | MsrKind::MiscEnable | MsrKind::Hwcr | MsrKind::DeCfg => {}
            MsrKind::DebugCtl if value == 0 => {}
            MsrKind::Pat if pat_valid(value) => {
                env.vmcb.save.g_pat = value;
                env.vmcb.control.clean_bits &= !clean::NP;
            }
            MsrKind::MtrrDefType if mtrr_def_type_valid(value) => self.mtrr_def_type = value,
            MsrKind::TscDeadline => {
                let tsc = env.guest_tsc();
                env.lapic.write_tsc_deadline(value, env.now_ns, tsc);
            }
            MsrKind::X2Apic(offset) => env.lapic.write_x2apic(offset, value, env.now_ns)?,
            MsrKind::Efer => {
                let s = &mut env.vmcb.save;
                s.efer = efer_for_vmcb(efer_write(guest_view(s.efer), value, s.cr0)?);
                env.vmcb.control.clean_bits &= !clean::CRX;
            }
            MsrKind::Vmcb(m) => *m.slot(&mut env.vmcb.save) = m.check(value)?,
            MsrKind::DebugCtl
            | MsrKind::Pat
            | MsrKind::MtrrDefType
            | MsrKind::MtrrCap
            | MsrKind::VmCr
            | MsrKind::Unknown => return Err(InjectGp),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::boot;
    use super::*;
    use crate::devices::lapic::reg;

    /// A zeroed VMCB with the boot EFER and long-mode CR0 the hypervisor
    /// starts guests with.
    fn vmcb() -> Box<Vmcb> {
        // SAFETY: `Vmcb` is plain integers; all-zero is a valid value.
        let mut v: Box<Vmcb> = unsafe { Box::new(core::mem::zeroed()) };
        v.save.efer = boot::EFER;
        v.save.cr0 = boot::CR0;
        v.save.g_pat = PAT_RESET;
        v.control.clean_bits = !0;
        v
    }

    struct Rig {
        msrs: GuestMsrs,
        vmcb: Box<Vmcb>,
        lapic: Lapic,
        host_tsc: u64,
        now_ns: u64,
    }

    impl Rig {
        fn new() -> Self {
            Self {
                msrs: GuestMsrs::new(),
                vmcb: vmcb(),
                lapic: Lapic::new(1_000_000_000),
                host_tsc: 1_000_000,
                now_ns: 0,
            }
        }

        fn env(&mut self) -> (&mut GuestMsrs, MsrEnv<'_>) {
            (
                &mut self.msrs,
                MsrEnv {
                    vmcb: &mut self.vmcb,
                    lapic: &mut self.lapic,
                    host_tsc: self.host_tsc,
                    now_ns: self.now_ns,
                },
            )
        }

        fn rd(&mut self, msr: u32) -> Result<u64, InjectGp> {
            let (m, mut e) = self.env();
            m.read(msr, &mut e)
        }

        fn wr(&mut self, msr: u32, value: u64) -> Result<(), InjectGp> {
            let (m, mut e) = self.env();
            m.write(msr, value, &mut e)
        }
    }

    #[test]
    fn decode_names_the_msrs() {
        assert_eq!(MsrKind::decode(0xc000_0080), MsrKind::Efer);
        assert_eq!(MsrKind::decode(0x1b), MsrKind::ApicBase);
        assert_eq!(MsrKind::decode(0x277), MsrKind::Pat);
        assert_eq!(MsrKind::decode(0x10), MsrKind::Tsc);
        assert_eq!(MsrKind::decode(0x6e0), MsrKind::TscDeadline);
        assert_eq!(MsrKind::decode(0x1a0), MsrKind::MiscEnable);
        assert_eq!(MsrKind::decode(0x80b), MsrKind::X2Apic(0xb0));
        assert_eq!(MsrKind::decode(0x83f), MsrKind::X2Apic(0x3f0));
        assert_eq!(MsrKind::decode(0x8ff), MsrKind::X2Apic(0xff0));
        assert_eq!(
            MsrKind::decode(0xc000_0102),
            MsrKind::Vmcb(VmcbMsr::KernelGsBase)
        );
        assert_eq!(MsrKind::decode(0x175), MsrKind::Vmcb(VmcbMsr::SysenterEsp));
        for unknown in [0x48, 0x3a, 0xc000_0103, 0xc001_0117, 0x900, 0x7ff] {
            assert_eq!(MsrKind::decode(unknown), MsrKind::Unknown, "{unknown:#x}");
        }
    }

    #[test]
    fn efer_hides_svme_round_trip() {
        let mut r = Rig::new();
        // The VMCB copy has SVME; the guest never sees it.
        assert_ne!(r.vmcb.save.efer & efer::SVME, 0);
        let seen = r.rd(index::EFER).unwrap();
        assert_eq!(seen, efer::LME | efer::LMA | efer::NXE);
        // axcpu's `Efer::update(|e| *e |= SCE)`: read-modify-write.
        r.wr(index::EFER, seen | efer::SCE).unwrap();
        assert_eq!(r.rd(index::EFER), Ok(seen | efer::SCE));
        assert_eq!(r.vmcb.save.efer, seen | efer::SCE | efer::SVME);
        assert_eq!(r.vmcb.control.clean_bits & clean::CRX, 0);
        // The helpers are inverses on the guest's bits.
        for e in [0, efer::LME, efer::SCE | efer::NXE | efer::LMA] {
            assert_eq!(guest_view(efer_for_vmcb(e)), e);
            assert_ne!(efer_for_vmcb(e) & efer::SVME, 0);
        }
    }

    #[test]
    fn efer_refuses_svme_reserved_bits_and_lme_changes_under_paging() {
        let mut r = Rig::new();
        let before = r.vmcb.save.efer;
        let seen = r.rd(index::EFER).unwrap();
        assert_eq!(r.wr(index::EFER, seen | efer::SVME), Err(InjectGp));
        assert_eq!(r.wr(index::EFER, seen | (1 << 13)), Err(InjectGp));
        assert_eq!(r.wr(index::EFER, seen | (1 << 21)), Err(InjectGp));
        // CR0.PG is set: LME may not change.
        assert_eq!(r.wr(index::EFER, seen & !efer::LME), Err(InjectGp));
        assert_eq!(r.vmcb.save.efer, before);
        // LMA is the processor's: a write can neither set nor clear it.
        assert_eq!(
            efer_write(efer::LME | efer::LMA, efer::LME, 1 << 31),
            Ok(efer::LME | efer::LMA)
        );
        assert_eq!(efer_write(0, efer::LMA, 0), Ok(0));
        // ArceOS's multiboot.S: LME | NXE with paging still off.
        assert_eq!(
            efer_write(0, efer::LME | efer::NXE, 0x11),
            Ok(efer::LME | efer::NXE)
        );
    }

    #[test]
    fn efer_from_a_multiboot_start() {
        // The Multiboot start: protected mode, paging off, EFER = SVME.
        let mut r = Rig::new();
        r.vmcb.save.efer = boot::EFER_SVME;
        r.vmcb.save.cr0 = boot::CR0_PROTECTED;
        assert_eq!(r.rd(index::EFER), Ok(0));
        // `multiboot.S`: `wrmsr` of LME | NXE before setting CR0.PG.
        r.wr(index::EFER, efer::LME | efer::NXE).unwrap();
        assert_eq!(r.vmcb.save.efer, efer::LME | efer::NXE | efer::SVME);
    }

    #[test]
    fn vmcb_msr_numbers_decode_back() {
        for m in VmcbMsr::ALL {
            assert_eq!(MsrKind::decode(m.index()), MsrKind::Vmcb(m));
        }
    }

    #[test]
    fn apic_base_reads_the_lapic_mode() {
        let mut r = Rig::new();
        assert_eq!(r.rd(index::APIC_BASE), Ok(0xfee0_0900));
        // The x2apic crate's `set_base_bit(EXTD, true)`.
        r.wr(index::APIC_BASE, 0xfee0_0900 | apic_base::EXTD)
            .unwrap();
        assert_eq!(r.lapic.mode(), ApicMode::X2Apic);
        assert_eq!(r.rd(index::APIC_BASE), Ok(0xfee0_0d00));
        // Writing the same value again is no transition.
        r.wr(index::APIC_BASE, 0xfee0_0d00).unwrap();
        assert_eq!(r.lapic.mode(), ApicMode::X2Apic);
    }

    #[test]
    fn apic_base_transitions() {
        use ApicMode::*;
        let v = |mode| apic_base_value(mode);
        // Legal: the SDM's state diagram.
        for (from, to) in [
            (XApic, X2Apic),
            (XApic, Disabled),
            (X2Apic, Disabled),
            (Disabled, XApic),
            (XApic, XApic),
            (X2Apic, X2Apic),
            (Disabled, Disabled),
        ] {
            assert_eq!(apic_base_write(from, v(to)), Ok(to), "{from:?} -> {to:?}");
        }
        // Illegal: x2APIC -> xAPIC, disabled -> x2APIC, and the invalid state.
        assert_eq!(apic_base_write(X2Apic, v(XApic)), Err(InjectGp));
        assert_eq!(apic_base_write(Disabled, v(X2Apic)), Err(InjectGp));
        for from in [Disabled, XApic, X2Apic] {
            assert_eq!(
                apic_base_write(from, lapic::XAPIC_BASE | apic_base::EXTD),
                Err(InjectGp)
            );
        }
        // Reserved bits and a moved base.
        assert_eq!(apic_base_write(XApic, v(XApic) | 1), Err(InjectGp));
        assert_eq!(apic_base_write(XApic, v(XApic) | (1 << 9)), Err(InjectGp));
        assert_eq!(apic_base_write(XApic, v(XApic) | (1 << 52)), Err(InjectGp));
        assert_eq!(apic_base_write(XApic, 0xfed0_0800), Err(InjectGp));
        // BSP is read-only: writing it clear is accepted and changes nothing.
        assert_eq!(apic_base_write(XApic, 0xfee0_0800), Ok(XApic));
    }

    #[test]
    fn apic_base_leaving_x2apic_goes_through_disabled() {
        let mut r = Rig::new();
        r.wr(index::APIC_BASE, 0xfee0_0d00).unwrap();
        r.wr(lapic::X2APIC_MSR_FIRST + 0x8, 0x20).unwrap();
        assert_eq!(r.wr(index::APIC_BASE, 0xfee0_0900), Err(InjectGp));
        assert_eq!(r.lapic.mode(), ApicMode::X2Apic);
        r.wr(index::APIC_BASE, 0xfee0_0100).unwrap();
        assert_eq!(r.rd(index::APIC_BASE), Ok(0xfee0_0100));
        // Disabled: the x2APIC MSRs fault, and the state is gone.
        assert_eq!(r.rd(0x808), Err(InjectGp));
        r.wr(index::APIC_BASE, 0xfee0_0900).unwrap();
        assert_eq!(r.lapic.tpr(), 0);
    }

    #[test]
    fn x2apic_msrs_reach_the_lapic() {
        let mut r = Rig::new();
        // xAPIC mode: the MSRs are not there.
        assert_eq!(r.rd(0x803), Err(InjectGp));
        r.wr(index::APIC_BASE, 0xfee0_0d00).unwrap();
        assert_eq!(r.rd(0x803), Ok(u64::from(lapic::VERSION)));
        r.wr(0x80f, 0x1f1).unwrap();
        r.wr(0x83f, 0x50).unwrap();
        assert_eq!(r.lapic.pending_vector(), Some(0x50));
        // Architecture faults come back as #GP.
        assert_eq!(r.wr(0x802, 1), Err(InjectGp));
        assert_eq!(r.rd(0x80b), Err(InjectGp));
        assert_eq!(
            MsrKind::decode(lapic::X2APIC_MSR_FIRST + (reg::TIMER_CCR >> 4) as u32),
            MsrKind::X2Apic(reg::TIMER_CCR as u16)
        );
    }

    #[test]
    fn tsc_reads_with_the_offset_and_writes_move_it() {
        let mut r = Rig::new();
        r.vmcb.control.tsc_offset = 500u64.wrapping_neg();
        assert_eq!(r.rd(index::TSC), Ok(1_000_000 - 500));
        r.wr(index::TSC, 42).unwrap();
        assert_eq!(r.rd(index::TSC), Ok(42));
        assert_eq!(r.vmcb.control.tsc_offset, 42u64.wrapping_sub(1_000_000));
        assert_eq!(r.vmcb.control.clean_bits & clean::INTERCEPTS, 0);
        r.host_tsc += 1000;
        assert_eq!(r.rd(index::TSC), Ok(1042));
    }

    #[test]
    fn tsc_deadline_uses_the_guest_tsc() {
        let mut r = Rig::new();
        r.wr(index::APIC_BASE, 0xfee0_0d00).unwrap();
        r.wr(0x80f, 0x1f1).unwrap();
        r.wr(0x832, 0x400f0).unwrap(); // TSC-deadline mode, vector 0xf0
        r.vmcb.control.tsc_offset = 1000;
        r.now_ns = 10;
        // Guest TSC is 1_001_000 and runs at 1 GHz: 5_000 ticks = 5_000 ns.
        r.wr(index::TSC_DEADLINE, 1_006_000).unwrap();
        assert_eq!(r.rd(index::TSC_DEADLINE), Ok(1_006_000));
        assert_eq!(r.lapic.next_deadline(), Some(5_010));
        r.now_ns = 5_010;
        assert_eq!(r.rd(index::TSC_DEADLINE), Ok(0), "fired and cleared");
        assert_eq!(r.lapic.pending_vector(), Some(0xf0));
    }

    #[test]
    fn pat_is_validated_and_kept_in_g_pat() {
        let mut r = Rig::new();
        assert_eq!(r.rd(index::PAT), Ok(PAT_RESET));
        // Linux's PAT: WB, WC, UC-, UC, WB, WP, UC-, WT.
        let linux = 0x0407_0506_0007_0106;
        r.wr(index::PAT, linux).unwrap();
        assert_eq!(r.vmcb.save.g_pat, linux);
        assert_eq!(r.vmcb.control.clean_bits & clean::NP, 0);
        for bad in [2u64, 3, 8, 0x16] {
            assert_eq!(
                r.wr(index::PAT, linux | (bad << 24)),
                Err(InjectGp),
                "{bad}"
            );
        }
        assert_eq!(r.rd(index::PAT), Ok(linux));
    }

    #[test]
    fn vmcb_msrs_are_the_state_save_fields() {
        let mut r = Rig::new();
        r.wr(index::LSTAR, 0xffff_8000_0020_1000).unwrap();
        r.wr(index::STAR, 0x0023_0010_0000_0000).unwrap();
        r.wr(index::FS_BASE, 0x7fff_ffff_f000).unwrap();
        r.wr(index::GS_BASE, 0xffff_8000_0100_0000).unwrap();
        r.wr(index::KERNEL_GS_BASE, 0).unwrap();
        r.wr(index::SFMASK, 0x4_7700).unwrap();
        assert_eq!(r.vmcb.save.lstar, 0xffff_8000_0020_1000);
        assert_eq!(r.vmcb.save.fs.base, 0x7fff_ffff_f000);
        assert_eq!(r.vmcb.save.gs.base, 0xffff_8000_0100_0000);
        assert_eq!(r.rd(index::STAR), Ok(0x0023_0010_0000_0000));
        assert_eq!(r.rd(index::SFMASK), Ok(0x4_7700));
        // Non-canonical addresses fault; STAR/SFMASK are not addresses.
        for msr in [
            index::LSTAR,
            index::FS_BASE,
            index::GS_BASE,
            index::KERNEL_GS_BASE,
        ] {
            assert_eq!(r.wr(msr, 0x0000_8000_0000_0000), Err(InjectGp), "{msr:#x}");
        }
        r.wr(index::STAR, 0x8000_0000_0000_0000).unwrap();
        assert_eq!(r.rd(index::FS_BASE), Ok(0x7fff_ffff_f000));
        assert!(is_canonical(0xffff_8000_0000_0000));
        assert!(!is_canonical(0xfff0_0000_0000_0000));
    }

    #[test]
    fn mtrrs_look_like_enabled_firmware_defaults() {
        let mut r = Rig::new();
        assert_eq!(r.rd(index::MTRR_CAP), Ok(0));
        assert_eq!(r.rd(index::MTRR_DEF_TYPE), Ok(0x806));
        // Linux disables MTRRs around its update and writes the value back.
        r.wr(index::MTRR_DEF_TYPE, 0x006).unwrap();
        r.wr(index::MTRR_DEF_TYPE, 0x806).unwrap();
        assert_eq!(r.rd(index::MTRR_DEF_TYPE), Ok(0x806));
        for bad in [0x807, 0x802, 0xc06, 0x1_0806] {
            assert_eq!(r.wr(index::MTRR_DEF_TYPE, bad), Err(InjectGp), "{bad:#x}");
        }
        assert_eq!(r.wr(index::MTRR_CAP, 0), Err(InjectGp));
        // No variable-range MTRRs exist.
        assert_eq!(r.rd(0x200), Err(InjectGp));
    }

    #[test]
    fn constant_msrs() {
        let mut r = Rig::new();
        assert_eq!(r.rd(index::MISC_ENABLE), Ok(MISC_ENABLE_VALUE));
        assert_eq!(MISC_ENABLE_VALUE & (1 << 18), 0, "MONITOR/MWAIT off");
        r.wr(index::MISC_ENABLE, 0).unwrap();
        assert_eq!(r.rd(index::MISC_ENABLE), Ok(MISC_ENABLE_VALUE));
        assert_eq!(r.rd(index::HWCR), Ok(1 << 24));
        assert_eq!(r.rd(index::DE_CFG), Ok(1 << 1));
        r.wr(index::DE_CFG, 1 << 1).unwrap();
        assert_eq!(r.rd(index::PATCH_LEVEL), Ok(0));
        r.wr(index::PATCH_LEVEL, 0).unwrap();
        assert_eq!(r.rd(index::VM_CR), Ok(0x18));
        assert_eq!(r.wr(index::VM_CR, 0), Err(InjectGp));
        assert_eq!(r.rd(index::DEBUGCTL), Ok(0));
        r.wr(index::DEBUGCTL, 0).unwrap();
        assert_eq!(r.wr(index::DEBUGCTL, 1), Err(InjectGp));
    }

    #[test]
    fn unknown_msrs_inject_gp_and_change_nothing() {
        let mut r = Rig::new();
        let efer = r.vmcb.save.efer;
        for msr in [
            0x48,
            0x49,
            0x3b,
            0xc000_0103,
            0xc001_0000,
            0xc001_0117,
            0xdead_beef,
        ] {
            assert_eq!(r.rd(msr), Err(InjectGp), "{msr:#x}");
            assert_eq!(r.wr(msr, 0), Err(InjectGp), "{msr:#x}");
        }
        assert_eq!(r.vmcb.save.efer, efer);
        assert_eq!(r.vmcb.control.clean_bits, !0);
    }
}
