//! AMD SVM: the VMCB as typed structures, and decoding a #VMEXIT into an
//! [`Exit`].
//!
//! Layout and exit codes are from the AMD64 Architecture Programmer's
//! Manual, Volume 2, Appendix B ("Layout of VMCB") and Appendix C ("SVM
//! Intercept Exit Codes"); the tests pin every field used here to its
//! offset in those tables.

use crate::addr::GuestPhysAddr;
use crate::arch::smccc;
use crate::arch::x86_64::ioio::PortAccess;
use crate::exit::{Access, Exit, PortIo, Request, ShutdownReason, Unexpected};

bitflags::bitflags! {
    /// VMCB offset 0x00C: the first vector of instruction intercepts.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct InterceptMisc1: u32 {
        /// Physical INTR.
        const INTR = 1 << 0;
        /// Physical NMI.
        const NMI = 1 << 1;
        /// Physical SMI.
        const SMI = 1 << 2;
        /// INIT.
        const INIT = 1 << 3;
        /// CPUID.
        const CPUID = 1 << 18;
        /// INVD.
        const INVD = 1 << 22;
        /// HLT.
        const HLT = 1 << 24;
        /// INVLPGA: a guest with EFER.SVME set could otherwise flush other
        /// ASIDs' TLB entries, the host's included.
        const INVLPGA = 1 << 26;
        /// IN/OUT, filtered by the I/O permission map.
        const IOIO_PROT = 1 << 27;
        /// RDMSR/WRMSR, filtered by the MSR permission map.
        const MSR_PROT = 1 << 28;
        /// Shutdown (a triple fault).
        const SHUTDOWN = 1 << 31;
    }

    /// VMCB offset 0x010: the second vector of instruction intercepts.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct InterceptMisc2: u32 {
        /// Must be set: the APM makes VMRUN fail with VMEXIT_INVALID if not.
        const VMRUN = 1 << 0;
        /// VMMCALL: the guest's hypercall.
        const VMMCALL = 1 << 1;
        /// VMLOAD.
        const VMLOAD = 1 << 2;
        /// VMSAVE.
        const VMSAVE = 1 << 3;
        /// STGI.
        const STGI = 1 << 4;
        /// CLGI.
        const CLGI = 1 << 5;
        /// SKINIT.
        const SKINIT = 1 << 6;
        /// XSETBV.
        const XSETBV = 1 << 13;
    }
}

/// VMCB offset 0x060, virtual interrupt control (APM vol. 2, Table B-1
/// and 15.21.4 "Injecting Virtual (INTR) Interrupts").
pub mod int_control {
    /// V_IRQ, bit 8: a virtual interrupt is pending. The CPU clears it in
    /// the VMCB at #VMEXIT once the guest has taken the interrupt.
    pub const V_IRQ: u64 = 1 << 8;
    /// V_INTR_PRIO, bits 19:16: the pending interrupt's priority.
    pub const V_INTR_PRIO_SHIFT: u32 = 16;
    /// V_IGN_TPR, bit 20: deliver regardless of V_TPR (the emulated local
    /// APIC does the priority arithmetic itself).
    pub const V_IGN_TPR: u64 = 1 << 20;
    /// V_INTR_MASKING, bit 24: the guest's RFLAGS.IF masks only virtual
    /// interrupts; physical ones still exit to the host.
    pub const V_INTR_MASKING: u64 = 1 << 24;
    /// V_INTR_VECTOR, bits 39:32: the vector delivered.
    pub const V_INTR_VECTOR_SHIFT: u32 = 32;

    /// The bits that make `vector` a pending virtual interrupt.
    pub const fn virtual_interrupt(vector: u8) -> u64 {
        V_IRQ
            | V_IGN_TPR
            | ((vector >> 4) as u64) << V_INTR_PRIO_SHIFT
            | (vector as u64) << V_INTR_VECTOR_SHIFT
    }
}

/// VMCB offset 0x090 bit 0: NP_ENABLE, nested paging on (APM vol. 2,
/// Table B-1).
pub const NP_ENABLE: u64 = 1 << 0;
/// TLB_CONTROL value 3: flush this guest's (ASID's) TLB entries on VMRUN
/// (APM vol. 2, Table B-1, offset 0x05C); needs FlushByASID (CPUID
/// 8000_000Ah EDX bit 6).
pub const TLB_FLUSH_GUEST: u8 = 3;
/// TLB_CONTROL value 1: flush the whole TLB on VMRUN, every ASID's; the
/// fallback without FlushByASID.
pub const TLB_FLUSH_ALL: u8 = 1;
/// EXITINTINFO / EVENTINJ bit 31 (V): an event was being delivered at the
/// exit, and must be delivered again (APM vol. 2, 15.7.2 "Intercepts
/// During IDT Interrupt Delivery").
pub const EVENT_VALID: u64 = 1 << 31;

/// The VMCB control area (offsets 0x000..0x400).
#[repr(C)]
pub struct VmcbControl {
    /// 0x000: intercepts of CR reads (bits 0-15) and writes (bits 16-31).
    pub intercept_cr: u32,
    /// 0x004: intercepts of DR reads (bits 0-15) and writes (bits 16-31).
    pub intercept_dr: u32,
    /// 0x008: one intercept bit per exception vector.
    pub intercept_exceptions: u32,
    /// 0x00C: the first instruction-intercept vector ([`InterceptMisc1`]).
    pub intercept_misc1: u32,
    /// 0x010: the second instruction-intercept vector ([`InterceptMisc2`]).
    pub intercept_misc2: u32,
    /// 0x014: the third instruction-intercept vector (unused here).
    pub intercept_misc3: u32,
    _reserved_018: [u8; 0x24],
    /// 0x03C: PAUSE filter threshold.
    pub pause_filter_threshold: u16,
    /// 0x03E: PAUSE filter count.
    pub pause_filter_count: u16,
    /// 0x040: host-physical address of the I/O permission map.
    pub iopm_base_pa: u64,
    /// 0x048: host-physical address of the MSR permission map.
    pub msrpm_base_pa: u64,
    /// 0x050: added to the TSC the guest reads.
    pub tsc_offset: u64,
    /// 0x058: the guest's address-space id (never 0, the host's).
    pub guest_asid: u32,
    /// 0x05C: TLB_CONTROL, what VMRUN flushes (see [`TLB_FLUSH_GUEST`]).
    pub tlb_control: u8,
    _reserved_05d: [u8; 3],
    /// 0x060: virtual interrupt control (V_TPR, V_IRQ, V_INTR_MASKING...).
    pub int_control: u64,
    /// 0x068: interrupt shadow state.
    pub int_state: u64,
    /// 0x070: EXITCODE, why the guest exited ([`exit_code`]).
    pub exit_code: u64,
    /// 0x078: EXITINFO1, exit-specific detail (NPF: the fault's error code).
    pub exit_info1: u64,
    /// 0x080: EXITINFO2, exit-specific detail (NPF: the guest-physical address).
    pub exit_info2: u64,
    /// 0x088: EXITINTINFO, an event that was being delivered at the exit.
    pub exit_int_info: u64,
    /// 0x090: nested paging and related enables ([`NP_ENABLE`]).
    pub np_control: u64,
    /// 0x098: AVIC APIC base address.
    pub avic_apic_bar: u64,
    /// 0x0A0: guest-physical address of the GHCB (SEV-ES).
    pub ghcb_pa: u64,
    /// 0x0A8: EVENTINJ, an event to inject on the next VMRUN.
    pub event_inj: u64,
    /// 0x0B0: nCR3, host-physical address of the nested page table root.
    pub ncr3: u64,
    /// 0x0B8: LBR virtualization enable.
    pub lbr_virtualization: u64,
    /// 0x0C0: VMCB clean bits (0: reload everything).
    pub clean_bits: u32,
    _reserved_0c4: u32,
    /// 0x0C8: nRIP, the address after the intercepted instruction.
    pub next_rip: u64,
    /// 0x0D0: number of instruction bytes fetched for a #NPF or #PF.
    pub insn_len: u8,
    /// 0x0D1: the fetched instruction bytes.
    pub insn_bytes: [u8; 15],
    _reserved_0e0: [u8; 0x400 - 0xe0],
}

/// A segment register in the state-save area.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// The selector.
    pub selector: u16,
    /// Descriptor bits 40..47 in 0..7 and 52..55 in 8..11.
    pub attrib: u16,
    /// The segment limit, in bytes.
    pub limit: u32,
    /// The segment base.
    pub base: u64,
}

impl Segment {
    /// 64-bit code: present, DPL 0, execute/read accessed, L=1, G=1.
    pub const fn code64(selector: u16) -> Self {
        Segment {
            selector,
            attrib: 0xa9b,
            limit: 0xffff_ffff,
            base: 0,
        }
    }
    /// 32-bit code: present, DPL 0, execute/read accessed, D/B=1, G=1
    /// (the flat code segment a Multiboot kernel starts in).
    pub const fn code32(selector: u16) -> Self {
        Segment {
            selector,
            attrib: 0xc9b,
            limit: 0xffff_ffff,
            base: 0,
        }
    }
    /// Data: present, DPL 0, read/write accessed, D/B=1, G=1.
    pub const fn data(selector: u16) -> Self {
        Segment {
            selector,
            attrib: 0xc93,
            limit: 0xffff_ffff,
            base: 0,
        }
    }
    /// A busy 64-bit TSS (VMRUN requires a valid TR).
    pub const fn tss(selector: u16) -> Self {
        Segment {
            selector,
            attrib: 0x8b,
            limit: 0x67,
            base: 0,
        }
    }
    /// An empty but valid LDT.
    pub const fn ldt() -> Self {
        Segment {
            selector: 0,
            attrib: 0x82,
            limit: 0xffff,
            base: 0,
        }
    }
    /// A descriptor table register (GDTR/IDTR): only base and limit count.
    pub const fn table(base: u64, limit: u32) -> Self {
        Segment {
            selector: 0,
            attrib: 0,
            limit,
            base,
        }
    }
}

/// The VMCB state-save area (offsets 0x400..0x1000).
#[repr(C)]
pub struct VmcbSave {
    /// 0x400: ES.
    pub es: Segment,
    /// 0x410: CS.
    pub cs: Segment,
    /// 0x420: SS.
    pub ss: Segment,
    /// 0x430: DS.
    pub ds: Segment,
    /// 0x440: FS.
    pub fs: Segment,
    /// 0x450: GS.
    pub gs: Segment,
    /// 0x460: GDTR (base and limit only).
    pub gdtr: Segment,
    /// 0x470: LDTR.
    pub ldtr: Segment,
    /// 0x480: IDTR (base and limit only).
    pub idtr: Segment,
    /// 0x490: TR.
    pub tr: Segment,
    _reserved_4a0: [u8; 0x2b],
    /// 0x4CB: current privilege level.
    pub cpl: u8,
    _reserved_4cc: u32,
    /// 0x4D0: EFER.
    pub efer: u64,
    _reserved_4d8: [u8; 0x70],
    /// 0x548: CR4.
    pub cr4: u64,
    /// 0x550: CR3.
    pub cr3: u64,
    /// 0x558: CR0.
    pub cr0: u64,
    /// 0x560: DR7.
    pub dr7: u64,
    /// 0x568: DR6.
    pub dr6: u64,
    /// 0x570: RFLAGS.
    pub rflags: u64,
    /// 0x578: RIP.
    pub rip: u64,
    _reserved_580: [u8; 0x58],
    /// 0x5D8: RSP.
    pub rsp: u64,
    /// 0x5E0: S_CET.
    pub s_cet: u64,
    /// 0x5E8: SSP.
    pub ssp: u64,
    /// 0x5F0: ISST_ADDR.
    pub isst_addr: u64,
    /// 0x5F8: RAX.
    pub rax: u64,
    /// 0x600: STAR.
    pub star: u64,
    /// 0x608: LSTAR.
    pub lstar: u64,
    /// 0x610: CSTAR.
    pub cstar: u64,
    /// 0x618: SFMASK.
    pub sfmask: u64,
    /// 0x620: KernelGsBase.
    pub kernel_gs_base: u64,
    /// 0x628: SYSENTER_CS.
    pub sysenter_cs: u64,
    /// 0x630: SYSENTER_ESP.
    pub sysenter_esp: u64,
    /// 0x638: SYSENTER_EIP.
    pub sysenter_eip: u64,
    /// 0x640: CR2.
    pub cr2: u64,
    _reserved_648: [u8; 0x20],
    /// 0x668: the guest PAT (used with nested paging).
    pub g_pat: u64,
    _rest: [u8; 0x1000 - 0x670],
}

/// One VMCB: a 4 KiB-aligned page.
#[repr(C, align(4096))]
pub struct Vmcb {
    /// The control area (Table B-1).
    pub control: VmcbControl,
    /// The state-save area (Table B-2).
    pub save: VmcbSave,
}

const _: () = assert!(core::mem::size_of::<Vmcb>() == 4096);

/// SVM exit codes this hypervisor names (APM vol. 2, Appendix C, Table C-1
/// "SVM Intercept Codes").
pub mod exit_code {
    /// VMEXIT_CR0_READ: the first of the CR read codes (0x00-0x0F).
    pub const CR_READ_FIRST: u64 = 0x00;
    /// VMEXIT_CR15_READ: the last CR read code.
    pub const CR_READ_LAST: u64 = 0x0f;
    /// VMEXIT_CR0_WRITE: the first of the CR write codes (0x10-0x1F).
    pub const CR_WRITE_FIRST: u64 = 0x10;
    /// VMEXIT_CR15_WRITE: the last CR write code.
    pub const CR_WRITE_LAST: u64 = 0x1f;
    /// VMEXIT_DR0_READ: the first of the DR read and write codes (0x20-0x3F).
    pub const DR_FIRST: u64 = 0x20;
    /// VMEXIT_DR15_WRITE: the last DR code.
    pub const DR_LAST: u64 = 0x3f;
    /// VMEXIT_EXCP0: exception vector N exits with code 0x40 + N.
    pub const EXCEPTION_BASE: u64 = 0x40;
    /// VMEXIT_EXCP31: the last exception code.
    pub const EXCEPTION_LAST: u64 = 0x5f;
    /// VMEXIT_INTR: a physical interrupt.
    pub const INTR: u64 = 0x60;
    /// VMEXIT_NMI.
    pub const NMI: u64 = 0x61;
    /// VMEXIT_CPUID.
    pub const CPUID: u64 = 0x72;
    /// VMEXIT_HLT.
    pub const HLT: u64 = 0x78;
    /// VMEXIT_IOIO: an intercepted IN/OUT.
    pub const IOIO: u64 = 0x7b;
    /// VMEXIT_MSR: an intercepted RDMSR/WRMSR.
    pub const MSR: u64 = 0x7c;
    /// VMEXIT_SHUTDOWN: the guest triple-faulted.
    pub const SHUTDOWN: u64 = 0x7f;
    /// VMEXIT_VMRUN.
    pub const VMRUN: u64 = 0x80;
    /// VMEXIT_VMMCALL: the guest's hypercall.
    pub const VMMCALL: u64 = 0x81;
    /// VMEXIT_INVLPGA.
    pub const INVLPGA: u64 = 0x7a;
    /// VMEXIT_VMLOAD.
    pub const VMLOAD: u64 = 0x82;
    /// VMEXIT_VMSAVE.
    pub const VMSAVE: u64 = 0x83;
    /// VMEXIT_STGI.
    pub const STGI: u64 = 0x84;
    /// VMEXIT_CLGI.
    pub const CLGI: u64 = 0x85;
    /// VMEXIT_SKINIT.
    pub const SKINIT: u64 = 0x86;
    /// VMEXIT_NPF: a nested page fault.
    pub const NPF: u64 = 0x400;
    /// VMEXIT_INVALID (-1): VMRUN refused the VMCB's guest state.
    pub const INVALID: u64 = u64::MAX;
}

/// Whether `code` is the exit of an SVM instruction (VMRUN, VMLOAD,
/// VMSAVE, STGI, CLGI, SKINIT, INVLPGA). The guest's CPU shows no SVM
/// (CPUID hides it, EFER.SVME reads 0), and on such a CPU each of them
/// raises #UD (AMD APM vol. 3, the instructions' exception tables: "#UD if
/// EFER.SVME = 0"), so that is what the guest gets. VMMCALL is not one of
/// them: it is the hypercall.
pub const fn is_svm_instruction(code: u64) -> bool {
    use exit_code::*;
    matches!(
        code,
        VMRUN | VMLOAD | VMSAVE | STGI | CLGI | SKINIT | INVLPGA
    )
}

/// A readable name for an exit code.
pub fn exit_name(code: u64) -> &'static str {
    use exit_code::*;
    match code {
        CR_READ_FIRST..=CR_READ_LAST => "CR read",
        CR_WRITE_FIRST..=CR_WRITE_LAST => "CR write",
        DR_FIRST..=DR_LAST => "DR access",
        EXCEPTION_BASE..=EXCEPTION_LAST => "exception",
        INTR => "physical interrupt (INTR)",
        NMI => "NMI",
        CPUID => "CPUID",
        HLT => "HLT (the guest halted)",
        IOIO => "I/O port access",
        MSR => "MSR access",
        SHUTDOWN => "shutdown (triple fault in the guest)",
        VMRUN => "VMRUN in the guest",
        INVLPGA => "INVLPGA in the guest",
        VMLOAD | VMSAVE | STGI | CLGI | SKINIT => "SVM instruction in the guest",
        VMMCALL => "VMMCALL",
        NPF => "nested page fault",
        INVALID => "VMEXIT_INVALID (the VMCB state was refused)",
        _ => "unknown exit",
    }
}

/// The guest registers a hypercall reads: RAX, RDI, RSI, RDX, and the
/// privilege level it was made from.
#[derive(Clone, Copy, Debug, Default)]
pub struct CallRegs {
    /// The guest's CPL (VMCB state-save offset 0x4CB).
    pub cpl: u8,
    /// The function identifier.
    pub rax: u64,
    /// Argument 0.
    pub rdi: u64,
    /// Argument 1.
    pub rsi: u64,
    /// Argument 2.
    pub rdx: u64,
}

/// NPF EXITINFO1 bit 1 (RW): the access was a write (APM vol. 2, §15.25.6
/// "Nested versus Guest Page Faults, Fault Ordering", which reuses the #PF
/// error code of §8.4.2).
pub const NPF_WRITE: u64 = 1 << 1;
/// NPF EXITINFO1 bit 4 (ID): the access was an instruction fetch (APM
/// vol. 2, §15.25.6).
pub const NPF_FETCH: u64 = 1 << 4;

/// Where MSR `msr`'s read-intercept bit is in the MSR permission map: the
/// byte offset and the bit in it; the write-intercept bit is the next bit.
/// `None` for an MSR the map does not cover (always intercepted). APM
/// vol. 2, 15.11 "MSR Intercepts": 2 bits per MSR, MSRs 0..0x1FFF at byte
/// 0, 0xC000_0000..0xC000_1FFF at byte 0x800, 0xC001_0000..0xC001_1FFF
/// at byte 0x1000.
pub const fn msrpm_position(msr: u32) -> Option<(usize, u8)> {
    let base = match msr & !0x1fff {
        0 => 0,
        0xc000_0000 => 0x800,
        0xc001_0000 => 0x1000,
        _ => return None,
    };
    let bit = (msr & 0x1fff) as usize * 2;
    Some((base + bit / 8, (bit % 8) as u8))
}

/// The ACPI PM1a control port of QEMU's q35 (ICH9 LPC, PMBASE 0x600 + 4),
/// where ArceOS and Linux write SLP_EN to power off.
pub const PM1A_CONTROL_PORT: u16 = 0x604;
/// PM1a_CNT.SLP_EN, bit 13 (ACPI 6.5, 4.8.3.2.1 "PM1 Control Registers"):
/// enter the sleep state SLP_TYP names; on QEMU, power off.
pub const PM1A_SLP_EN: u64 = 1 << 13;

/// PM1a_CNT.SLP_TYP, bits 12:10: the sleeping state `SLP_EN` enters.
pub const fn pm1a_sleep_type(value: u64) -> u8 {
    ((value >> 10) & 0b111) as u8
}

/// A port-I/O exit in neutral terms: the ACPI sleep request is the guest's
/// power-off; string forms (INS/OUTS) are not emulated; anything else is
/// an [`Exit::PortIo`] for the port bus.
fn decode_ioio(info1: u64, info2: u64, rax: u64) -> Exit {
    let access = match PortAccess::decode(info1) {
        Ok(a) if a.is_simple() => a,
        _ => {
            return Exit::Unexpected(Unexpected {
                what: "string or malformed port I/O (INS/OUTS are not emulated)",
                code: exit_code::IOIO,
                info: [info1, info2],
            });
        }
    };
    let write = (!access.is_in()).then(|| access.out_value(rax));
    if access.port == PM1A_CONTROL_PORT
        && let Some(value) = write
        && value & PM1A_SLP_EN != 0
    {
        // SLP_TYP 0 is soft-off (S5) on QEMU's q35, as its DSDT's `_S5`
        // says; any other sleeping state is one this hypervisor does not
        // emulate (QEMU itself suspends for 1).
        return Exit::Hypercall(match pm1a_sleep_type(value) {
            0 => Request::Shutdown(ShutdownReason::Normal),
            sleep_type => Request::Sleep { sleep_type },
        });
    }
    Exit::PortIo(PortIo {
        port: access.port,
        width: access.width,
        write,
    })
}

/// Decodes a #VMEXIT from its code, EXITINFO1/2 and the call registers.
pub fn decode(code: u64, info1: u64, info2: u64, regs: &CallRegs) -> Exit {
    match code {
        exit_code::IOIO => decode_ioio(info1, info2, regs.rax),
        exit_code::NPF => Exit::NestedPageFault {
            gpa: GuestPhysAddr::new(info2),
            access: if info1 & NPF_FETCH != 0 {
                Access::Execute
            } else if info1 & NPF_WRITE != 0 {
                Access::Write
            } else {
                Access::Read
            },
        },
        // Only the guest's kernel may call the hypervisor: from user mode
        // (CPL > 0) the call is refused, as KVM refuses it, and answers
        // NOT_SUPPORTED instead of powering off or printing kernel memory.
        exit_code::VMMCALL if regs.cpl != 0 => Exit::Hypercall(Request::Refused {
            id: regs.rax,
            function: 0,
        }),
        exit_code::VMMCALL => {
            Exit::Hypercall(smccc::decode(regs.rax, [regs.rdi, regs.rsi, regs.rdx]))
        }
        _ => Exit::Unexpected(Unexpected {
            what: exit_name(code),
            code,
            info: [info1, info2],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{Request, ShutdownReason};
    use core::mem::offset_of;

    #[test]
    fn svm_instructions_are_told_from_the_hypercall() {
        for code in [0x7a, 0x80, 0x82, 0x83, 0x84, 0x85, 0x86] {
            assert!(is_svm_instruction(code), "{code:#x}");
        }
        for code in [exit_code::VMMCALL, exit_code::CPUID, exit_code::NPF, 0x87] {
            assert!(!is_svm_instruction(code), "{code:#x}");
        }
        assert_eq!(exit_name(0x7a), "INVLPGA in the guest");
        assert_eq!(exit_name(0x85), "SVM instruction in the guest");
    }

    #[test]
    fn control_area_offsets_match_apm_table_b1() {
        assert_eq!(offset_of!(VmcbControl, intercept_cr), 0x000);
        assert_eq!(offset_of!(VmcbControl, intercept_dr), 0x004);
        assert_eq!(offset_of!(VmcbControl, intercept_exceptions), 0x008);
        assert_eq!(offset_of!(VmcbControl, intercept_misc1), 0x00c);
        assert_eq!(offset_of!(VmcbControl, intercept_misc2), 0x010);
        assert_eq!(offset_of!(VmcbControl, pause_filter_threshold), 0x03c);
        assert_eq!(offset_of!(VmcbControl, pause_filter_count), 0x03e);
        assert_eq!(offset_of!(VmcbControl, iopm_base_pa), 0x040);
        assert_eq!(offset_of!(VmcbControl, msrpm_base_pa), 0x048);
        assert_eq!(offset_of!(VmcbControl, tsc_offset), 0x050);
        assert_eq!(offset_of!(VmcbControl, guest_asid), 0x058);
        assert_eq!(offset_of!(VmcbControl, tlb_control), 0x05c);
        assert_eq!(offset_of!(VmcbControl, int_control), 0x060);
        assert_eq!(offset_of!(VmcbControl, int_state), 0x068);
        assert_eq!(offset_of!(VmcbControl, exit_code), 0x070);
        assert_eq!(offset_of!(VmcbControl, exit_info1), 0x078);
        assert_eq!(offset_of!(VmcbControl, exit_info2), 0x080);
        assert_eq!(offset_of!(VmcbControl, exit_int_info), 0x088);
        assert_eq!(offset_of!(VmcbControl, np_control), 0x090);
        assert_eq!(offset_of!(VmcbControl, event_inj), 0x0a8);
        assert_eq!(offset_of!(VmcbControl, ncr3), 0x0b0);
        assert_eq!(offset_of!(VmcbControl, clean_bits), 0x0c0);
        assert_eq!(offset_of!(VmcbControl, next_rip), 0x0c8);
        assert_eq!(offset_of!(VmcbControl, insn_len), 0x0d0);
        assert_eq!(core::mem::size_of::<VmcbControl>(), 0x400);
    }

    #[test]
    fn state_save_offsets_match_apm_table_b2() {
        let at = |off: usize| 0x400 + off;
        assert_eq!(at(offset_of!(VmcbSave, es)), 0x400);
        assert_eq!(at(offset_of!(VmcbSave, cs)), 0x410);
        assert_eq!(at(offset_of!(VmcbSave, ss)), 0x420);
        assert_eq!(at(offset_of!(VmcbSave, ds)), 0x430);
        assert_eq!(at(offset_of!(VmcbSave, gdtr)), 0x460);
        assert_eq!(at(offset_of!(VmcbSave, ldtr)), 0x470);
        assert_eq!(at(offset_of!(VmcbSave, idtr)), 0x480);
        assert_eq!(at(offset_of!(VmcbSave, tr)), 0x490);
        assert_eq!(at(offset_of!(VmcbSave, cpl)), 0x4cb);
        assert_eq!(at(offset_of!(VmcbSave, efer)), 0x4d0);
        assert_eq!(at(offset_of!(VmcbSave, cr4)), 0x548);
        assert_eq!(at(offset_of!(VmcbSave, cr3)), 0x550);
        assert_eq!(at(offset_of!(VmcbSave, cr0)), 0x558);
        assert_eq!(at(offset_of!(VmcbSave, dr7)), 0x560);
        assert_eq!(at(offset_of!(VmcbSave, dr6)), 0x568);
        assert_eq!(at(offset_of!(VmcbSave, rflags)), 0x570);
        assert_eq!(at(offset_of!(VmcbSave, rip)), 0x578);
        assert_eq!(at(offset_of!(VmcbSave, rsp)), 0x5d8);
        assert_eq!(at(offset_of!(VmcbSave, rax)), 0x5f8);
        assert_eq!(at(offset_of!(VmcbSave, star)), 0x600);
        assert_eq!(at(offset_of!(VmcbSave, kernel_gs_base)), 0x620);
        assert_eq!(at(offset_of!(VmcbSave, sysenter_eip)), 0x638);
        assert_eq!(at(offset_of!(VmcbSave, cr2)), 0x640);
        assert_eq!(at(offset_of!(VmcbSave, g_pat)), 0x668);
        assert_eq!(offset_of!(Vmcb, save), 0x400);
        assert_eq!(core::mem::align_of::<Vmcb>(), 4096);
    }

    #[test]
    fn segment_attributes() {
        // Long-mode code: P=1 DPL=0 S=1 type=0xB, L=1, G=1.
        assert_eq!(Segment::code64(8).attrib, 0b1010_1001_1011);
        assert_eq!(Segment::data(16).attrib & 0xff, 0x93);
        assert_eq!(core::mem::size_of::<Segment>(), 16);
    }

    #[test]
    fn npf_decodes_gpa_from_exitinfo2_and_access_from_exitinfo1() {
        let r = CallRegs::default();
        assert_eq!(
            decode(0x400, 0x1_0000_0004, 0xffc0_0000, &r),
            Exit::NestedPageFault {
                gpa: GuestPhysAddr::new(0xffc0_0000),
                access: Access::Read
            }
        );
        assert_eq!(
            decode(0x400, 0x6, 0x20_1008, &r),
            Exit::NestedPageFault {
                gpa: GuestPhysAddr::new(0x20_1008),
                access: Access::Write
            }
        );
        assert_eq!(
            decode(0x400, 0x14, 0x10_0000, &r),
            Exit::NestedPageFault {
                gpa: GuestPhysAddr::new(0x10_0000),
                access: Access::Execute
            }
        );
    }

    #[test]
    fn vmmcall_is_an_smccc_call() {
        let off = CallRegs {
            rax: 0x8400_0008,
            ..Default::default()
        };
        assert_eq!(
            decode(0x81, 0, 0, &off),
            Exit::Hypercall(Request::Shutdown(ShutdownReason::Normal))
        );
        let putc = CallRegs {
            rax: smccc::GA_CONSOLE_PUTC,
            rdi: b'!' as u64,
            ..Default::default()
        };
        assert_eq!(
            decode(0x81, 0, 0, &putc),
            Exit::Hypercall(Request::ConsolePutByte(b'!'))
        );
    }

    #[test]
    fn everything_else_is_unexpected_and_named() {
        let r = CallRegs::default();
        for (code, name) in [
            (0x7f, "shutdown (triple fault in the guest)"),
            (0x78, "HLT (the guest halted)"),
            (0x4e, "exception"),
            (u64::MAX, "VMEXIT_INVALID (the VMCB state was refused)"),
        ] {
            let Exit::Unexpected(u) = decode(code, 0x11, 0x22, &r) else {
                panic!("{code:#x}")
            };
            assert_eq!((u.what, u.code, u.info), (name, code, [0x11, 0x22]));
        }
    }

    #[test]
    fn port_io_exits_decode_and_the_acpi_sleep_is_a_shutdown() {
        use crate::arch::x86_64::ioio::info1::*;
        use crate::devices::Width;
        let regs = |rax| CallRegs {
            rax,
            ..Default::default()
        };
        // `out dx, al` to COM1 with AL = 'A' (RAX's upper bits ignored).
        assert_eq!(
            decode(
                exit_code::IOIO,
                0x3f8 << 16 | A64 | SZ8,
                0x1_0000,
                &regs(0xff41)
            ),
            Exit::PortIo(PortIo {
                port: 0x3f8,
                width: Width::Byte,
                write: Some(0x41)
            })
        );
        // `in al, dx` from COM1's LSR.
        assert_eq!(
            decode(
                exit_code::IOIO,
                0x3fd << 16 | A64 | SZ8 | TYPE_IN,
                0,
                &regs(0)
            ),
            Exit::PortIo(PortIo {
                port: 0x3fd,
                width: Width::Byte,
                write: None
            })
        );
        // ArceOS's power-off: `out dx, ax` of 0x2000 to 0x604.
        assert_eq!(
            decode(exit_code::IOIO, 0x604 << 16 | A64 | SZ16, 0, &regs(0x2000)),
            Exit::Hypercall(Request::Shutdown(ShutdownReason::Normal))
        );
        // SLP_EN with another SLP_TYP is a sleeping state, not a power-off:
        // 0x2400 is S3 on QEMU (SLP_TYP 1), 0x3c00 SLP_TYP 7.
        for (value, sleep_type) in [(0x2400, 1), (0x2800, 2), (0x3c00, 7)] {
            assert_eq!(
                decode(exit_code::IOIO, 0x604 << 16 | A64 | SZ16, 0, &regs(value)),
                Exit::Hypercall(Request::Sleep { sleep_type }),
                "{value:#x}"
            );
        }
        // Without SLP_EN it is an ordinary port write (and no device).
        assert!(matches!(
            decode(exit_code::IOIO, 0x604 << 16 | A64 | SZ16, 0, &regs(0x0400)),
            Exit::PortIo(PortIo { port: 0x604, .. })
        ));
        // `rep outsb` is refused by name.
        let Exit::Unexpected(u) = decode(
            exit_code::IOIO,
            0x3f8 << 16 | A64 | SZ8 | STR | REP,
            0,
            &regs(0),
        ) else {
            panic!("outs")
        };
        assert_eq!(u.code, exit_code::IOIO);
        assert!(u.what.starts_with("string"));
    }

    #[test]
    fn msr_permission_map_positions() {
        // EFER (0xC000_0080): 0x800 + 0x80 * 2 / 8 = byte 0x820, bit 0.
        assert_eq!(msrpm_position(0xc000_0080), Some((0x820, 0)));
        // GS_BASE (0xC000_0101): bit 0x202 of the second range.
        assert_eq!(msrpm_position(0xc000_0101), Some((0x840, 2)));
        // SYSENTER_CS (0x174): byte 0x5d, bit 0.
        assert_eq!(msrpm_position(0x174), Some((0x5d, 0)));
        assert_eq!(msrpm_position(0xc001_0114), Some((0x1045, 0)));
        // x2APIC's 0x800 range is in the first block; 0x4000_0000 is not mapped.
        assert_eq!(msrpm_position(0x80b), Some((0x202, 6)));
        assert_eq!(msrpm_position(0x4000_0000), None);
    }

    #[test]
    fn a_virtual_interrupt_carries_its_vector_and_priority() {
        let v = int_control::virtual_interrupt(0xf0);
        assert_eq!(v & int_control::V_IRQ, int_control::V_IRQ);
        assert_eq!(v >> 32 & 0xff, 0xf0);
        assert_eq!(v >> 16 & 0xf, 0xf);
        assert_ne!(v & int_control::V_IGN_TPR, 0);
        assert_eq!(v & int_control::V_INTR_MASKING, 0);
    }

    #[test]
    fn a_hypercall_from_user_mode_is_refused() {
        let user = CallRegs {
            cpl: 3,
            rax: smccc::PSCI_SYSTEM_OFF,
            ..Default::default()
        };
        let exit = decode(exit_code::VMMCALL, 0, 0, &user);
        assert_eq!(
            exit,
            Exit::Hypercall(Request::Refused {
                id: smccc::PSCI_SYSTEM_OFF,
                function: 0
            })
        );
        let Exit::Hypercall(req) = exit else {
            unreachable!()
        };
        assert_eq!(
            crate::exit::immediate_reply(&req),
            Some(crate::exit::Reply::NotSupported)
        );
        let kernel = CallRegs { cpl: 0, ..user };
        assert_eq!(
            decode(exit_code::VMMCALL, 0, 0, &kernel),
            Exit::Hypercall(Request::Shutdown(ShutdownReason::Normal))
        );
    }
}
