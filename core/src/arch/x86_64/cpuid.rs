//! The CPUID the guest sees: what the hypervisor answers when it intercepts
//! the guest's CPUID (VMEXIT_CPUID), given what the same leaf returns on
//! the host.
//!
//! Bit positions are from the AMD64 Architecture Programmer's Manual,
//! Volume 3, Appendix E "Obtaining Processor Information Via the CPUID
//! Instruction": E.3 "Standard Feature Functions" (leaves `0h`-`Dh`, and
//! `4000_0000h`-`4000_FFFFh`, "Reserved for Hypervisor Use") and E.4
//! "Extended Feature Functions" (leaves `8000_0000h` and up). Leaves the
//! APM marks reserved but software still probes (`Bh` topology is shared
//! with Intel, `16h` is Intel's) follow the Intel SDM Vol. 2A, "CPUID—CPU
//! Identification". SVM only exists on AMD (and Hygon) processors, so the
//! host is always one of those.
//!
//! # Policy: an allowlist
//!
//! Only leaves and bits this module names reach the guest; everything else
//! reads as zero. A feature bit is passed through when the guest can use
//! the feature without help from the hypervisor (an unprivileged
//! instruction, a CR4 bit the guest sets in its own VMCB copy, a page-table
//! format that nested paging supports). It is hidden when using it needs
//! an MSR, instruction or state switch this hypervisor does not emulate,
//! so that a guest that trusts CPUID never meets a #GP or a #UD it could
//! not have expected. A new feature of a future host is therefore hidden
//! until someone looks at it. Per leaf:
//!
//! * `0h`: the host's vendor string; the highest standard leaf is
//!   [`MAX_STANDARD_LEAF`] (`16h`), so that leaf `16h` can carry the TSC
//!   frequency ([`CpuidPolicy::tsc_mhz`]). The leaves between the host's
//!   highest and `16h` read zero ("not enumerated").
//! * `1h` (E.3, "Function 1h—Processor and Processor Feature
//!   Identifiers"): family/model/stepping pass through. `EBX[31:24]`, the
//!   initial APIC ID, is 0 (the one vCPU; it matches the emulated local
//!   APIC's ID), `EBX[23:16]`, LogicalProcessorCount, is 1, and `EDX[28]` HTT
//!   is clear (one thread, one core; with HTT clear the count field is
//!   defined to be ignored, 1 is what a careless reader should see). ECX
//!   sets bit 31 (reserved for the hypervisor: "a hypervisor is present")
//!   and always sets x2APIC (21) and TSC-deadline (24): both are features
//!   of the emulated local APIC ([`crate::devices::lapic`]), not of the
//!   host. (`axplat-x86-pc` takes its CPU id from the initial APIC ID and
//!   chooses x2APIC mode from bit 21.) It clears MONITOR (3; MONITOR/MWAIT would stop the vCPU without
//!   an exit), VMX (5) and the Intel-only monitoring bits, and XSAVE (26),
//!   OSXSAVE (27) and everything that needs XSAVE-managed state (AVX 28,
//!   FMA 12, F16C 29): the hypervisor does not switch XCR0 around VMRUN
//!   and intercepts XSETBV without emulating it yet. EDX hides MCE (7) and
//!   MCA (14) (the machine-check MSRs are not emulated) and the Intel-only
//!   bits (PSN, DS, ACPI, SS, TM, PBE).
//! * OSXSAVE (leaf `1h` `ECX[27]`) and OSPKE (leaf `7h` `ECX[4]`) are not
//!   features but mirrors of the *current* CR4.OSXSAVE and CR4.PKE. The
//!   host value a hypervisor's own CPUID returns mirrors the host's CR4,
//!   which says nothing about the guest, so it is never passed through, in
//!   either direction. With XSAVE and PKU hidden the right guest value is
//!   always 0; if XSAVE is ever exposed, the bit must be computed from the
//!   guest's CR4 (VMCB CR4 bit 18) at the exit, not taken from the host.
//! * `5h` (MONITOR/MWAIT) and `Ah` (Intel performance monitoring; reserved
//!   on AMD): zero.
//! * `6h` (E.3, "Function 6h—Power Management Related Features"): only
//!   `EAX[2]` ARAT, "the APIC timer always runs": the emulated timer keeps
//!   counting whatever the vCPU does, so a guest need not fall back to a
//!   broadcast timer in idle. The effective-frequency interface (APERF and
//!   MPERF MSRs) is hidden.
//! * `7h` subleaf 0 (E.3, "Function 7h—Structured Extended Feature
//!   Identifiers"): EAX (the highest subleaf) is 0; the instruction and
//!   paging features that run natively pass; AVX2/AVX-512 (XSAVE state),
//!   PKU/OSPKE, CET, RDPID (it reads TSC_AUX, which the hypervisor does not
//!   switch), the speculation-control bits (which promise the SPEC_CTRL,
//!   PRED_CMD and ARCH_CAPABILITIES MSRs) and LA57 are hidden. Without
//!   5-level paging every linear address is 48-bit canonical, which is what
//!   the MSR policy checks FS/GS base and LSTAR writes against.
//! * `Bh` (E.3, "Function Bh—Extended Topology Enumeration"): synthesized
//!   for one thread on one core: subleaf 0 is the SMT level (type 1) and
//!   subleaf 1 the core level (type 2), each with an x2APIC-ID shift of 0
//!   and one logical processor; subleaf 2 and up are invalid levels (type
//!   0, only `ECX[7:0]` echoes the subleaf). EDX, the x2APIC ID, is 0.
//! * `4h` (Intel's deterministic cache parameters; AMD: "Functions 2h–4h—
//!   Reserved") reads zero, which to an Intel-style reader is "no cache
//!   levels described" and so claims no sibling cores either. AMD's own
//!   cache and core topology leaves `8000_001Dh`/`8000_001Eh` are hidden
//!   together with their enable bit TopologyExtensions.
//! * `Dh` (XSAVE state) is zero with XSAVE hidden.
//! * `16h` (Intel, "Processor Frequency Information"): zero unless the
//!   policy has a TSC frequency; then EAX (base) and EBX (maximum) are that
//!   frequency in MHz and ECX (bus/reference) is the emulated local APIC's
//!   1000 MHz bus clock. ArceOS's `axplat-x86-pc` takes its TSC frequency
//!   from here (`raw-cpuid`'s `processor_base_frequency`) and otherwise
//!   assumes a configured 4 GHz.
//! * `4000_0000h` (E.3, "Functions 4000_0000h–4000_FFFFh—Reserved for
//!   Hypervisor Use", and the usual hypervisor convention): EAX is the
//!   highest hypervisor leaf, [`MAX_HYPERVISOR_LEAF`], and EBX, ECX, EDX
//!   spell the 12-byte signature [`HYPERVISOR_SIGNATURE`], `"GuestAspace "`
//!   (the project name padded with one space to 12 bytes, 4 bytes per
//!   register in EBX, ECX, EDX order, each little-endian). `4000_0001h` is
//!   the (empty) feature leaf: no paravirtual interfaces. Every other leaf
//!   of the range is zero.
//! * `8000_0000h`: the host's vendor string; the highest extended leaf is
//!   the host's, capped at [`MAX_EXTENDED_LEAF`].
//! * `8000_0001h` (E.4, "Function 8000_0001h—Extended Processor and
//!   Processor Feature Identifiers"): SVM (`ECX[2]`) is cleared, as are the
//!   bits that promise MSRs or state this hypervisor lacks (OSVW, IBS, LWP,
//!   WDT, SKINIT, the extended performance counters, ExtApicSpace,
//!   TopologyExtensions, CmpLegacy) and the XOP/FMA4/TBM instruction sets
//!   (they use the XSAVE-managed YMM state). EDX keeps the long-mode,
//!   NX, 1-GiB-page and SYSCALL bits ArceOS and Linux rely on and hides
//!   RDTSCP (TSC_AUX again) and MCE/MCA.
//! * `8000_0002h`-`8000_0006h`: the brand string and cache descriptions
//!   pass unchanged.
//! * `8000_0007h` (E.4, "Function 8000_0007h—Processor Power Management
//!   and RAS Capabilities"): only `EDX[8]` TscInvariant (the guest TSC is
//!   the host TSC plus a fixed offset, invariant exactly when the host's
//!   is).
//! * `8000_0008h` (E.4, "Function 8000_0008h—Processor Capacity Parameters
//!   and Extended Feature Identification"): the physical and linear address
//!   sizes pass; GuestPhysAddrSize (`EAX[23:16]`, for a hypervisor using
//!   nested paging) is 0; EBX keeps CLZERO, RstrFpErrPtrs, WBNOINVD and
//!   EferLmsleUnsupported; ECX is 0 (NC = 0: one core; ApicIdSize = 0);
//!   EDX is 0 (no INVLPGB, no RDPRU).
//! * `8000_000Ah` (E.4, "Function 8000_000Ah—SVM Features"): zero; with
//!   SVM hidden there are no SVM features.
//! * `8000_0019h` (1-GiB TLB) passes, and of `8000_001Ah` the three
//!   performance-optimization hints (FP128, MOVU, FP256 in EAX);
//!   `8000_001Fh` (SME/SEV) and every other extended leaf is zero.
//! * `8000_0021h` ("Extended Feature Identification 2"): only
//!   NoNestedDataBp (0), LfenceAlwaysSerializing (2) and
//!   NullSelectClearsBase (6), which describe how instructions behave;
//!   AutomaticIBRS and UpperAddressIgnore would add EFER bits the MSR
//!   policy ([`super::msr`]) refuses.

/// The four registers CPUID returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuidResult {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
}

impl CpuidResult {
    /// All four registers zero: "leaf not supported".
    pub const ZERO: Self = Self::new(0, 0, 0, 0);

    /// A result from its four registers.
    pub const fn new(eax: u32, ebx: u32, ecx: u32, edx: u32) -> Self {
        Self { eax, ebx, ecx, edx }
    }
}

/// Leaf numbers (the EAX input).
pub mod leaf {
    /// Highest standard leaf and vendor string.
    pub const VENDOR: u32 = 0x0;
    /// Family/model/stepping, APIC ID, feature bits.
    pub const FEATURES: u32 = 0x1;
    /// Intel deterministic cache parameters (reserved on AMD).
    pub const CACHE_PARAMS: u32 = 0x4;
    /// MONITOR/MWAIT parameters.
    pub const MONITOR: u32 = 0x5;
    /// Power management (ARAT).
    pub const POWER: u32 = 0x6;
    /// Structured extended features (subleaf 0).
    pub const EXT_FEATURES: u32 = 0x7;
    /// Intel architectural performance monitoring (reserved on AMD).
    pub const PERF_MON: u32 = 0xa;
    /// Extended topology enumeration.
    pub const TOPOLOGY: u32 = 0xb;
    /// XSAVE state enumeration.
    pub const XSAVE: u32 = 0xd;
    /// Processor frequency information (Intel).
    pub const FREQUENCY: u32 = 0x16;
    /// Hypervisor: highest hypervisor leaf and signature.
    pub const HV_SIGNATURE: u32 = 0x4000_0000;
    /// Hypervisor: paravirtual feature bits (none).
    pub const HV_FEATURES: u32 = 0x4000_0001;
    /// The last leaf of the hypervisor range this policy owns.
    pub const HV_LAST: u32 = 0x4000_00ff;
    /// Highest extended leaf and vendor string.
    pub const EXT_MAX: u32 = 0x8000_0000;
    /// Extended feature bits (SVM, long mode, NX...).
    pub const EXT_PROC_FEATURES: u32 = 0x8000_0001;
    /// First of the three brand-string leaves.
    pub const BRAND_FIRST: u32 = 0x8000_0002;
    /// Last of the three brand-string leaves.
    pub const BRAND_LAST: u32 = 0x8000_0004;
    /// L1 cache and TLB information.
    pub const L1_CACHE: u32 = 0x8000_0005;
    /// L2/L3 cache and L2 TLB information.
    pub const L2_L3_CACHE: u32 = 0x8000_0006;
    /// Power management and RAS (invariant TSC).
    pub const POWER_RAS: u32 = 0x8000_0007;
    /// Address sizes, core count, more feature bits.
    pub const CAPACITY: u32 = 0x8000_0008;
    /// SVM revision and features.
    pub const SVM: u32 = 0x8000_000a;
    /// TLB characteristics for 1-GiB pages.
    pub const TLB_1G: u32 = 0x8000_0019;
    /// Performance-optimization identifiers.
    pub const PERF_OPT: u32 = 0x8000_001a;
    /// Cache topology (with TopologyExtensions).
    pub const CACHE_TOPOLOGY: u32 = 0x8000_001d;
    /// Core/node topology (with TopologyExtensions).
    pub const PROC_TOPOLOGY: u32 = 0x8000_001e;
    /// Encrypted memory (SME/SEV).
    pub const ENCRYPTED_MEM: u32 = 0x8000_001f;
    /// Extended feature identification 2.
    pub const EXT_FEATURES2: u32 = 0x8000_0021;
}

/// The highest standard leaf the guest sees (leaf 0 EAX).
pub const MAX_STANDARD_LEAF: u32 = leaf::FREQUENCY;
/// The highest hypervisor leaf (leaf `4000_0000h` EAX).
pub const MAX_HYPERVISOR_LEAF: u32 = leaf::HV_FEATURES;
/// The cap on the highest extended leaf (leaf `8000_0000h` EAX).
pub const MAX_EXTENDED_LEAF: u32 = leaf::EXT_FEATURES2;
/// The hypervisor signature of leaf `4000_0000h`, in EBX, ECX, EDX order.
pub const HYPERVISOR_SIGNATURE: &[u8; 12] = b"GuestAspace ";
/// The bus (reference) frequency leaf `16h` reports: the emulated local
/// APIC timer's 1 GHz clock.
pub const BUS_MHZ: u32 = 1000;

/// Leaf `1h` ECX bits.
pub mod f1_ecx {
    /// SSE3.
    pub const SSE3: u32 = 1 << 0;
    /// PCLMULQDQ.
    pub const PCLMULQDQ: u32 = 1 << 1;
    /// MONITOR/MWAIT.
    pub const MONITOR: u32 = 1 << 3;
    /// Intel VMX.
    pub const VMX: u32 = 1 << 5;
    /// SSSE3.
    pub const SSSE3: u32 = 1 << 9;
    /// FMA (VEX-encoded, needs YMM state).
    pub const FMA: u32 = 1 << 12;
    /// CMPXCHG16B.
    pub const CMPXCHG16B: u32 = 1 << 13;
    /// Process-context identifiers (CR4.PCIDE).
    pub const PCID: u32 = 1 << 17;
    /// SSE4.1.
    pub const SSE41: u32 = 1 << 19;
    /// SSE4.2.
    pub const SSE42: u32 = 1 << 20;
    /// x2APIC.
    pub const X2APIC: u32 = 1 << 21;
    /// MOVBE.
    pub const MOVBE: u32 = 1 << 22;
    /// POPCNT.
    pub const POPCNT: u32 = 1 << 23;
    /// Local APIC timer TSC-deadline mode.
    pub const TSC_DEADLINE: u32 = 1 << 24;
    /// AES-NI.
    pub const AES: u32 = 1 << 25;
    /// XSAVE/XRSTOR/XSETBV/XGETBV.
    pub const XSAVE: u32 = 1 << 26;
    /// Mirror of CR4.OSXSAVE.
    pub const OSXSAVE: u32 = 1 << 27;
    /// AVX.
    pub const AVX: u32 = 1 << 28;
    /// F16C.
    pub const F16C: u32 = 1 << 29;
    /// RDRAND.
    pub const RDRAND: u32 = 1 << 30;
    /// Reserved for the hypervisor: set when running under one.
    pub const HYPERVISOR: u32 = 1 << 31;
}

/// Leaf `1h` EDX bits (most also appear in leaf `8000_0001h` EDX).
pub mod f1_edx {
    /// x87 FPU.
    pub const FPU: u32 = 1 << 0;
    /// Virtual-8086 mode enhancements.
    pub const VME: u32 = 1 << 1;
    /// Debugging extensions.
    pub const DE: u32 = 1 << 2;
    /// Page-size extensions.
    pub const PSE: u32 = 1 << 3;
    /// Time-stamp counter.
    pub const TSC: u32 = 1 << 4;
    /// RDMSR/WRMSR.
    pub const MSR: u32 = 1 << 5;
    /// Physical-address extensions.
    pub const PAE: u32 = 1 << 6;
    /// Machine-check exception.
    pub const MCE: u32 = 1 << 7;
    /// CMPXCHG8B.
    pub const CX8: u32 = 1 << 8;
    /// On-chip local APIC.
    pub const APIC: u32 = 1 << 9;
    /// SYSENTER/SYSEXIT.
    pub const SEP: u32 = 1 << 11;
    /// Memory-type range registers.
    pub const MTRR: u32 = 1 << 12;
    /// Global pages.
    pub const PGE: u32 = 1 << 13;
    /// Machine-check architecture.
    pub const MCA: u32 = 1 << 14;
    /// CMOVcc.
    pub const CMOV: u32 = 1 << 15;
    /// Page-attribute table.
    pub const PAT: u32 = 1 << 16;
    /// 36-bit page-size extensions.
    pub const PSE36: u32 = 1 << 17;
    /// CLFLUSH.
    pub const CLFSH: u32 = 1 << 19;
    /// MMX.
    pub const MMX: u32 = 1 << 23;
    /// FXSAVE/FXRSTOR.
    pub const FXSR: u32 = 1 << 24;
    /// SSE.
    pub const SSE: u32 = 1 << 25;
    /// SSE2.
    pub const SSE2: u32 = 1 << 26;
    /// More than one logical processor per package.
    pub const HTT: u32 = 1 << 28;
}

/// Leaf `6h` EAX bits.
pub mod f6_eax {
    /// The APIC timer always runs (not stopped in deep C-states).
    pub const ARAT: u32 = 1 << 2;
}

/// Leaf `7h` subleaf 0 EBX bits.
pub mod f7_ebx {
    /// RD/WR FS/GS BASE instructions (CR4.FSGSBASE).
    pub const FSGSBASE: u32 = 1 << 0;
    /// IA32_TSC_ADJUST MSR.
    pub const TSC_ADJUST: u32 = 1 << 1;
    /// BMI1.
    pub const BMI1: u32 = 1 << 3;
    /// AVX2.
    pub const AVX2: u32 = 1 << 5;
    /// Supervisor-mode execution prevention.
    pub const SMEP: u32 = 1 << 7;
    /// BMI2.
    pub const BMI2: u32 = 1 << 8;
    /// Enhanced REP MOVSB/STOSB.
    pub const ERMS: u32 = 1 << 9;
    /// INVPCID.
    pub const INVPCID: u32 = 1 << 10;
    /// AVX-512 foundation.
    pub const AVX512F: u32 = 1 << 16;
    /// RDSEED.
    pub const RDSEED: u32 = 1 << 18;
    /// ADCX/ADOX.
    pub const ADX: u32 = 1 << 19;
    /// Supervisor-mode access prevention.
    pub const SMAP: u32 = 1 << 20;
    /// CLFLUSHOPT.
    pub const CLFLUSHOPT: u32 = 1 << 23;
    /// CLWB.
    pub const CLWB: u32 = 1 << 24;
    /// SHA extensions.
    pub const SHA: u32 = 1 << 29;
}

/// Leaf `7h` subleaf 0 ECX bits.
pub mod f7_ecx {
    /// User-mode instruction prevention (CR4.UMIP).
    pub const UMIP: u32 = 1 << 2;
    /// Protection keys for user pages.
    pub const PKU: u32 = 1 << 3;
    /// Mirror of CR4.PKE.
    pub const OSPKE: u32 = 1 << 4;
    /// Shadow stacks (CET).
    pub const CET_SS: u32 = 1 << 7;
    /// Galois-field instructions (the legacy-SSE encodings).
    pub const GFNI: u32 = 1 << 8;
    /// VEX/EVEX AES.
    pub const VAES: u32 = 1 << 9;
    /// VEX/EVEX carry-less multiply.
    pub const VPCLMULQDQ: u32 = 1 << 10;
    /// 5-level paging (CR4.LA57).
    pub const LA57: u32 = 1 << 16;
    /// RDPID (reads TSC_AUX).
    pub const RDPID: u32 = 1 << 22;
    /// MOVDIRI.
    pub const MOVDIRI: u32 = 1 << 27;
    /// MOVDIR64B.
    pub const MOVDIR64B: u32 = 1 << 28;
}

/// Leaf `7h` subleaf 0 EDX bits.
pub mod f7_edx {
    /// Fast short REP MOVSB.
    pub const FSRM: u32 = 1 << 4;
    /// IBRS/IBPB: the SPEC_CTRL and PRED_CMD MSRs.
    pub const SPEC_CTRL: u32 = 1 << 26;
    /// IA32_ARCH_CAPABILITIES MSR.
    pub const ARCH_CAPABILITIES: u32 = 1 << 29;
}

/// Leaf `8000_0001h` ECX bits.
pub mod f81_ecx {
    /// LAHF/SAHF in 64-bit mode.
    pub const LAHF_SAHF: u32 = 1 << 0;
    /// Core multi-processing legacy mode.
    pub const CMP_LEGACY: u32 = 1 << 1;
    /// Secure virtual machine (SVM).
    pub const SVM: u32 = 1 << 2;
    /// Extended APIC register space.
    pub const EXT_APIC_SPACE: u32 = 1 << 3;
    /// LOCK MOV CR0 means MOV CR8.
    pub const ALT_MOV_CR8: u32 = 1 << 4;
    /// LZCNT.
    pub const ABM: u32 = 1 << 5;
    /// SSE4A.
    pub const SSE4A: u32 = 1 << 6;
    /// Misaligned SSE mode.
    pub const MISALIGN_SSE: u32 = 1 << 7;
    /// PREFETCH/PREFETCHW.
    pub const PREFETCHW: u32 = 1 << 8;
    /// OS-visible workaround MSRs.
    pub const OSVW: u32 = 1 << 9;
    /// XOP instructions.
    pub const XOP: u32 = 1 << 11;
    /// FMA4 instructions.
    pub const FMA4: u32 = 1 << 16;
    /// TopologyExtensions: leaves `8000_001Dh`/`8000_001Eh`.
    pub const TOPOLOGY_EXT: u32 = 1 << 22;
    /// MONITORX/MWAITX.
    pub const MONITORX: u32 = 1 << 29;
}

/// Leaf `8000_0001h` EDX bits (beyond the leaf `1h` EDX duplicates).
pub mod f81_edx {
    /// SYSCALL/SYSRET.
    pub const SYSCALL: u32 = 1 << 11;
    /// No-execute pages (EFER.NXE).
    pub const NX: u32 = 1 << 20;
    /// AMD MMX extensions.
    pub const MMX_EXT: u32 = 1 << 22;
    /// FXSAVE/FXRSTOR optimizations (EFER.FFXSR).
    pub const FFXSR: u32 = 1 << 25;
    /// 1-GiB pages.
    pub const PAGE_1G: u32 = 1 << 26;
    /// RDTSCP (reads TSC_AUX).
    pub const RDTSCP: u32 = 1 << 27;
    /// Long mode.
    pub const LM: u32 = 1 << 29;
    /// AMD 3DNow! extensions.
    pub const THREE_DNOW_EXT: u32 = 1 << 30;
    /// AMD 3DNow!.
    pub const THREE_DNOW: u32 = 1 << 31;
}

/// Leaf `8000_0007h` EDX bits.
pub mod f87_edx {
    /// The TSC runs at a constant rate in every P-, C- and S0 state.
    pub const TSC_INVARIANT: u32 = 1 << 8;
}

/// Leaf `8000_0008h` EBX bits.
pub mod f88_ebx {
    /// CLZERO.
    pub const CLZERO: u32 = 1 << 0;
    /// Instructions-retired counter MSR.
    pub const INST_RET_CNT_MSR: u32 = 1 << 1;
    /// FXSAVE/XSAVE always save the error pointers.
    pub const RSTR_FP_ERR_PTRS: u32 = 1 << 2;
    /// WBNOINVD.
    pub const WBNOINVD: u32 = 1 << 9;
    /// IBPB (PRED_CMD MSR).
    pub const IBPB: u32 = 1 << 12;
    /// EFER.LMSLE is not supported.
    pub const EFER_LMSLE_UNSUPPORTED: u32 = 1 << 20;
}

/// Leaf `8000_0021h` EAX bits.
pub mod f821_eax {
    /// Data breakpoints are not nested.
    pub const NO_NESTED_DATA_BP: u32 = 1 << 0;
    /// LFENCE is always dispatch serializing.
    pub const LFENCE_ALWAYS_SERIALIZING: u32 = 1 << 2;
    /// Loading a null selector clears the base and limit.
    pub const NULL_SELECT_CLEARS_BASE: u32 = 1 << 6;
    /// Automatic IBRS (EFER.AIBRSE).
    pub const AUTOMATIC_IBRS: u32 = 1 << 8;
}

/// Leaf `1h` ECX bits passed through from the host (x2APIC, TSC-deadline
/// and the hypervisor bit are set on top).
pub const F1_ECX_PASS: u32 = f1_ecx::SSE3
    | f1_ecx::PCLMULQDQ
    | f1_ecx::SSSE3
    | f1_ecx::CMPXCHG16B
    | f1_ecx::PCID
    | f1_ecx::SSE41
    | f1_ecx::SSE42
    | f1_ecx::MOVBE
    | f1_ecx::POPCNT
    | f1_ecx::AES
    | f1_ecx::RDRAND;
/// Leaf `1h` ECX bits the guest always sees set.
pub const F1_ECX_FORCE: u32 = f1_ecx::X2APIC | f1_ecx::TSC_DEADLINE | f1_ecx::HYPERVISOR;

/// Leaf `1h` EDX bits passed through from the host.
pub const F1_EDX_PASS: u32 = f1_edx::FPU
    | f1_edx::VME
    | f1_edx::DE
    | f1_edx::PSE
    | f1_edx::TSC
    | f1_edx::MSR
    | f1_edx::PAE
    | f1_edx::CX8
    | f1_edx::SEP
    | f1_edx::MTRR
    | f1_edx::PGE
    | f1_edx::CMOV
    | f1_edx::PAT
    | f1_edx::PSE36
    | f1_edx::CLFSH
    | f1_edx::MMX
    | f1_edx::FXSR
    | f1_edx::SSE
    | f1_edx::SSE2;
/// Leaf `1h` EDX bits the guest always sees set: the (emulated) APIC.
pub const F1_EDX_FORCE: u32 = f1_edx::APIC;

/// Leaf `7h` subleaf 0 EBX bits passed through.
pub const F7_EBX_PASS: u32 = f7_ebx::FSGSBASE
    | f7_ebx::BMI1
    | f7_ebx::SMEP
    | f7_ebx::BMI2
    | f7_ebx::ERMS
    | f7_ebx::INVPCID
    | f7_ebx::RDSEED
    | f7_ebx::ADX
    | f7_ebx::SMAP
    | f7_ebx::CLFLUSHOPT
    | f7_ebx::CLWB
    | f7_ebx::SHA;
/// Leaf `7h` subleaf 0 ECX bits passed through.
pub const F7_ECX_PASS: u32 = f7_ecx::UMIP | f7_ecx::GFNI | f7_ecx::MOVDIRI | f7_ecx::MOVDIR64B;
/// Leaf `7h` subleaf 0 EDX bits passed through.
pub const F7_EDX_PASS: u32 = f7_edx::FSRM;

/// Leaf `8000_0001h` ECX bits passed through.
pub const F81_ECX_PASS: u32 = f81_ecx::LAHF_SAHF
    | f81_ecx::ALT_MOV_CR8
    | f81_ecx::ABM
    | f81_ecx::SSE4A
    | f81_ecx::MISALIGN_SSE
    | f81_ecx::PREFETCHW;
/// Leaf `8000_0001h` EDX bits passed through: the leaf `1h` duplicates
/// (bits 0-17, 23, 24; AMD leaves HTT and the SSE bits out of this leaf)
/// and the AMD-only extensions named in [`f81_edx`], less RDTSCP.
pub const F81_EDX_PASS: u32 = (F1_EDX_PASS & 0x0183_ffff)
    | f81_edx::SYSCALL
    | f81_edx::NX
    | f81_edx::MMX_EXT
    | f81_edx::FFXSR
    | f81_edx::PAGE_1G
    | f81_edx::LM
    | f81_edx::THREE_DNOW_EXT
    | f81_edx::THREE_DNOW;
/// Leaf `8000_0001h` EDX bits the guest always sees set: the APIC, as in
/// leaf `1h`.
pub const F81_EDX_FORCE: u32 = f1_edx::APIC;

/// Leaf `8000_0008h` EBX bits passed through.
pub const F88_EBX_PASS: u32 = f88_ebx::CLZERO
    | f88_ebx::RSTR_FP_ERR_PTRS
    | f88_ebx::WBNOINVD
    | f88_ebx::EFER_LMSLE_UNSUPPORTED;
/// Leaf `8000_0021h` EAX bits passed through.
pub const F821_EAX_PASS: u32 = f821_eax::NO_NESTED_DATA_BP
    | f821_eax::LFENCE_ALWAYS_SERIALIZING
    | f821_eax::NULL_SELECT_CLEARS_BASE;

/// Leaf `Bh` `ECX[15:8]` level types.
pub mod level_type {
    /// Invalid: no such level (ends the enumeration).
    pub const INVALID: u32 = 0;
    /// SMT (threads of a core).
    pub const SMT: u32 = 1;
    /// Core (cores of a package).
    pub const CORE: u32 = 2;
}

/// The settings of the CPUID policy that depend on the machine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuidPolicy {
    /// The guest's TSC frequency in MHz, reported in leaf `16h`; 0 leaves
    /// that leaf zero ("not enumerated").
    pub tsc_mhz: u16,
}

impl CpuidPolicy {
    /// The policy without a TSC frequency.
    pub const fn new() -> Self {
        Self { tsc_mhz: 0 }
    }

    /// The policy reporting a TSC of `tsc_mhz` MHz in leaf `16h`.
    pub const fn with_tsc_mhz(tsc_mhz: u16) -> Self {
        Self { tsc_mhz }
    }

    /// What the guest's CPUID with `leaf` (EAX) and `subleaf` (ECX) returns,
    /// given what the host returned for the same input.
    pub fn apply(&self, leaf: u32, subleaf: u32, host: CpuidResult) -> CpuidResult {
        let h = host;
        match leaf {
            leaf::VENDOR => CpuidResult::new(MAX_STANDARD_LEAF, h.ebx, h.ecx, h.edx),
            leaf::FEATURES => CpuidResult::new(
                h.eax,
                // Brand index and CLFLUSH line size pass; one logical
                // processor, initial APIC ID 0.
                (h.ebx & 0xffff) | (1 << 16),
                (h.ecx & F1_ECX_PASS) | F1_ECX_FORCE,
                (h.edx & F1_EDX_PASS) | F1_EDX_FORCE,
            ),
            leaf::POWER => CpuidResult::new(f6_eax::ARAT, 0, 0, 0),
            leaf::EXT_FEATURES if subleaf == 0 => CpuidResult::new(
                0,
                h.ebx & F7_EBX_PASS,
                h.ecx & F7_ECX_PASS,
                h.edx & F7_EDX_PASS,
            ),
            leaf::TOPOLOGY => topology(subleaf),
            leaf::FREQUENCY if self.tsc_mhz != 0 => {
                let mhz = u32::from(self.tsc_mhz);
                CpuidResult::new(mhz, mhz, BUS_MHZ, 0)
            }
            leaf::HV_SIGNATURE => {
                let s = HYPERVISOR_SIGNATURE;
                let word = |i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
                CpuidResult::new(MAX_HYPERVISOR_LEAF, word(0), word(4), word(8))
            }
            leaf::EXT_MAX => CpuidResult::new(h.eax.min(MAX_EXTENDED_LEAF), h.ebx, h.ecx, h.edx),
            leaf::EXT_PROC_FEATURES => CpuidResult::new(
                h.eax,
                h.ebx,
                h.ecx & F81_ECX_PASS,
                (h.edx & F81_EDX_PASS) | F81_EDX_FORCE,
            ),
            leaf::BRAND_FIRST..=leaf::L2_L3_CACHE | leaf::TLB_1G => h,
            leaf::POWER_RAS => CpuidResult::new(0, 0, 0, h.edx & f87_edx::TSC_INVARIANT),
            leaf::CAPACITY => CpuidResult::new(h.eax & 0xffff, h.ebx & F88_EBX_PASS, 0, 0),
            leaf::PERF_OPT => CpuidResult::new(h.eax & 0x7, 0, 0, 0),
            leaf::EXT_FEATURES2 => CpuidResult::new(h.eax & F821_EAX_PASS, 0, 0, 0),
            // Everything else, among them leaves 2-5, 0xA, 0xD, the rest of
            // the hypervisor range, 0x8000_000A (SVM), 0x8000_001D/1E
            // (topology extensions) and 0x8000_001F (SME/SEV).
            _ => CpuidResult::ZERO,
        }
    }
}

/// Leaf `Bh` for one thread on one core.
const fn topology(subleaf: u32) -> CpuidResult {
    let level = subleaf & 0xff;
    match subleaf {
        0 => CpuidResult::new(0, 1, level | (level_type::SMT << 8), 0),
        1 => CpuidResult::new(0, 1, level | (level_type::CORE << 8), 0),
        _ => CpuidResult::new(0, 0, level | (level_type::INVALID << 8), 0),
    }
}

/// What the guest's CPUID with `leaf` and `subleaf` returns under the
/// default policy (no TSC frequency in leaf `16h`), given the host's result.
pub fn guest_cpuid(leaf: u32, subleaf: u32, host: CpuidResult) -> CpuidResult {
    CpuidPolicy::new().apply(leaf, subleaf, host)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every bit set: whatever the policy lets through shows.
    const ALL: CpuidResult = CpuidResult::new(!0, !0, !0, !0);

    /// Leaf 1 of an AMD Zen 3 host (family 19h) as the hypervisor's own
    /// CPUID reports it: APIC ID 5, 16 logical processors, HTT, SVM host
    /// with OSXSAVE set in the host CR4.
    const ZEN3_LEAF1: CpuidResult =
        CpuidResult::new(0x00a2_0f10, 0x0510_0800, 0x7ef8_320b, 0x178b_fbff);

    #[test]
    fn leaf0_raises_the_standard_range_to_the_frequency_leaf_and_keeps_the_vendor() {
        // "AuthenticAMD" is EBX "Auth", EDX "enti", ECX "cAMD".
        let host = CpuidResult::new(0x10, 0x6874_7541, 0x444d_4163, 0x6974_6e65);
        let r = guest_cpuid(0, 0, host);
        assert_eq!(r, CpuidResult { eax: 0x16, ..host });
    }

    #[test]
    fn leaf1_announces_the_hypervisor_and_the_emulated_apic() {
        let r = guest_cpuid(1, 0, ZEN3_LEAF1);
        assert_ne!(r.ecx & f1_ecx::HYPERVISOR, 0);
        assert_ne!(r.ecx & f1_ecx::X2APIC, 0);
        assert_ne!(r.ecx & f1_ecx::TSC_DEADLINE, 0, "the LAPIC model has it");
        assert_ne!(r.edx & f1_edx::APIC, 0);
        // Set even if the host lacks them: the APIC is emulated.
        let bare = guest_cpuid(1, 0, CpuidResult::ZERO);
        assert_eq!(bare.ecx, F1_ECX_FORCE);
        assert_eq!(bare.edx, f1_edx::APIC);
    }

    #[test]
    fn leaf1_hides_vmx_mwait_xsave_and_machine_check() {
        let r = guest_cpuid(1, 0, ALL);
        for hidden in [
            f1_ecx::VMX,
            f1_ecx::MONITOR,
            f1_ecx::XSAVE,
            f1_ecx::OSXSAVE,
            f1_ecx::AVX,
            f1_ecx::FMA,
            f1_ecx::F16C,
        ] {
            assert_eq!(r.ecx & hidden, 0, "{hidden:#x}");
        }
        for hidden in [f1_edx::MCE, f1_edx::MCA, f1_edx::HTT] {
            assert_eq!(r.edx & hidden, 0, "{hidden:#x}");
        }
        // What ArceOS's boot path and its fp-simd build need stays.
        let zen = guest_cpuid(1, 0, ZEN3_LEAF1);
        for kept in [
            f1_edx::PAE,
            f1_edx::PGE,
            f1_edx::FXSR,
            f1_edx::SSE2,
            f1_edx::MSR,
        ] {
            assert_ne!(zen.edx & kept, 0, "{kept:#x}");
        }
        // The host's CR4.OSXSAVE does not leak into the guest.
        assert_ne!(ZEN3_LEAF1.ecx & f1_ecx::OSXSAVE, 0);
        assert_eq!(zen.ecx & f1_ecx::OSXSAVE, 0);
    }

    #[test]
    fn leaf1_reports_one_logical_processor_with_apic_id_0() {
        let r = guest_cpuid(1, 0, ZEN3_LEAF1);
        assert_eq!(r.eax, ZEN3_LEAF1.eax, "family/model/stepping pass");
        assert_eq!(r.ebx >> 24, 0, "initial APIC ID");
        assert_eq!((r.ebx >> 16) & 0xff, 1, "logical processors");
        assert_eq!(r.ebx & 0xffff, 0x0800, "CLFLUSH size 8 qwords");
    }

    #[test]
    fn svm_is_hidden_and_its_feature_leaf_is_empty() {
        let r = guest_cpuid(leaf::EXT_PROC_FEATURES, 0, ALL);
        assert_eq!(r.ecx & f81_ecx::SVM, 0);
        assert_eq!(r.ecx & f81_ecx::TOPOLOGY_EXT, 0);
        assert_eq!(r.ecx & f81_ecx::CMP_LEGACY, 0);
        assert_eq!(r.edx & f81_edx::RDTSCP, 0);
        assert_eq!(r.edx & f1_edx::MCE, 0);
        assert_ne!(
            guest_cpuid(leaf::EXT_PROC_FEATURES, 0, CpuidResult::ZERO).edx & f1_edx::APIC,
            0
        );
        for kept in [f81_edx::LM, f81_edx::NX, f81_edx::PAGE_1G, f81_edx::SYSCALL] {
            assert_ne!(r.edx & kept, 0, "{kept:#x}");
        }
        assert_eq!(guest_cpuid(leaf::SVM, 0, ALL), CpuidResult::ZERO);
    }

    #[test]
    fn hypervisor_leaf_carries_the_signature() {
        let r = guest_cpuid(leaf::HV_SIGNATURE, 0, CpuidResult::ZERO);
        assert_eq!(r.eax, 0x4000_0001);
        let mut bytes = [0u8; 12];
        bytes[0..4].copy_from_slice(&r.ebx.to_le_bytes());
        bytes[4..8].copy_from_slice(&r.ecx.to_le_bytes());
        bytes[8..12].copy_from_slice(&r.edx.to_le_bytes());
        assert_eq!(&bytes, b"GuestAspace ");
        assert_eq!(r.ebx, 0x7365_7547, "\"Gues\" little-endian");
    }

    #[test]
    fn other_hypervisor_leaves_are_zero_whatever_the_host_says() {
        for l in [
            0x4000_0001,
            0x4000_0002,
            0x4000_0010,
            0x4000_00ff,
            0x4000_0100,
        ] {
            assert_eq!(guest_cpuid(l, 0, ALL), CpuidResult::ZERO, "{l:#x}");
        }
    }

    #[test]
    fn perf_monitoring_monitor_xsave_and_cache_params_are_zero() {
        for l in [
            leaf::PERF_MON,
            leaf::MONITOR,
            leaf::XSAVE,
            leaf::CACHE_PARAMS,
            2,
            3,
        ] {
            for sub in [0, 1] {
                assert_eq!(guest_cpuid(l, sub, ALL), CpuidResult::ZERO, "{l:#x}.{sub}");
            }
        }
        for l in [
            leaf::CACHE_TOPOLOGY,
            leaf::PROC_TOPOLOGY,
            leaf::ENCRYPTED_MEM,
            0x8000_0026,
        ] {
            assert_eq!(guest_cpuid(l, 0, ALL), CpuidResult::ZERO, "{l:#x}");
        }
    }

    #[test]
    fn topology_is_one_thread_on_one_core() {
        // Subleaf 0: SMT level, shift 0, one thread, x2APIC ID 0.
        assert_eq!(guest_cpuid(0xb, 0, ALL), CpuidResult::new(0, 1, 0x100, 0));
        // Subleaf 1: core level, shift 0, one logical processor.
        assert_eq!(guest_cpuid(0xb, 1, ALL), CpuidResult::new(0, 1, 0x201, 0));
        // Subleaf 2 and up: invalid level, subleaf echoed in `ECX[7:0]`.
        assert_eq!(guest_cpuid(0xb, 2, ALL), CpuidResult::new(0, 0, 2, 0));
        assert_eq!(guest_cpuid(0xb, 7, ALL), CpuidResult::new(0, 0, 7, 0));
        // One core: NC = 0 in 8000_0008h ECX.
        assert_eq!(guest_cpuid(leaf::CAPACITY, 0, ALL).ecx, 0);
    }

    #[test]
    fn leaf7_passes_native_features_only() {
        let r = guest_cpuid(7, 0, ALL);
        assert_eq!(r.eax, 0, "subleaf 0 is the last");
        assert_eq!(r.ebx, F7_EBX_PASS);
        assert_eq!(
            r.ebx & (f7_ebx::AVX2 | f7_ebx::AVX512F | f7_ebx::TSC_ADJUST),
            0
        );
        assert_eq!(
            r.ecx & (f7_ecx::PKU | f7_ecx::OSPKE | f7_ecx::RDPID | f7_ecx::LA57),
            0
        );
        assert_eq!(r.edx & (f7_edx::SPEC_CTRL | f7_edx::ARCH_CAPABILITIES), 0);
        assert_ne!(r.ebx & f7_ebx::SMEP, 0);
        assert_eq!(guest_cpuid(7, 1, ALL), CpuidResult::ZERO);
    }

    #[test]
    fn power_leaves_report_arat_and_invariant_tsc_only() {
        assert_eq!(
            guest_cpuid(6, 0, ALL),
            CpuidResult::new(f6_eax::ARAT, 0, 0, 0)
        );
        assert_eq!(
            guest_cpuid(6, 0, CpuidResult::ZERO).eax,
            f6_eax::ARAT,
            "the emulated timer always runs"
        );
        let r = guest_cpuid(leaf::POWER_RAS, 0, ALL);
        assert_eq!(r, CpuidResult::new(0, 0, 0, f87_edx::TSC_INVARIANT));
        assert_eq!(guest_cpuid(leaf::POWER_RAS, 0, CpuidResult::ZERO).edx, 0);
    }

    #[test]
    fn extended_range_is_capped_and_address_sizes_pass() {
        let host = CpuidResult::new(0x8000_0028, 1, 2, 3);
        assert_eq!(
            guest_cpuid(leaf::EXT_MAX, 0, host),
            CpuidResult::new(0x8000_0021, 1, 2, 3)
        );
        let low = CpuidResult::new(0x8000_001f, 1, 2, 3);
        assert_eq!(guest_cpuid(leaf::EXT_MAX, 0, low).eax, 0x8000_001f);
        // 48-bit physical, 48-bit linear, GuestPhysAddrSize dropped.
        let r = guest_cpuid(leaf::CAPACITY, 0, CpuidResult::new(0x0030_3030, !0, !0, !0));
        assert_eq!(r.eax, 0x3030);
        assert_eq!(r.ebx, F88_EBX_PASS);
        assert_eq!(r.ebx & (f88_ebx::IBPB | f88_ebx::INST_RET_CNT_MSR), 0);
        assert_eq!(r.edx, 0);
        let r = guest_cpuid(leaf::EXT_FEATURES2, 0, ALL);
        assert_eq!(r.eax, F821_EAX_PASS);
        assert_eq!(r.eax & f821_eax::AUTOMATIC_IBRS, 0);
    }

    #[test]
    fn brand_and_cache_leaves_pass_unchanged() {
        let host = CpuidResult::new(0x2044_4d41, 0x657a_7952, 0x2037_206e, 0x3030_3835);
        for l in [
            leaf::BRAND_FIRST,
            0x8000_0003,
            leaf::BRAND_LAST,
            leaf::L1_CACHE,
            leaf::L2_L3_CACHE,
            leaf::TLB_1G,
        ] {
            assert_eq!(guest_cpuid(l, 0, host), host, "{l:#x}");
        }
    }

    #[test]
    fn frequency_leaf_only_with_a_tsc_frequency() {
        assert_eq!(guest_cpuid(leaf::FREQUENCY, 0, ALL), CpuidResult::ZERO);
        let p = CpuidPolicy::with_tsc_mhz(2994);
        assert_eq!(
            p.apply(leaf::FREQUENCY, 0, CpuidResult::ZERO),
            CpuidResult::new(2994, 2994, 1000, 0)
        );
        // The policy changes nothing else.
        assert_eq!(p.apply(1, 0, ZEN3_LEAF1), guest_cpuid(1, 0, ZEN3_LEAF1));
        // Leaves between the host's maximum and 0x16 read zero.
        assert_eq!(p.apply(0x11, 0, ALL), CpuidResult::ZERO);
    }
}
