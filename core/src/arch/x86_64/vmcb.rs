//! AMD SVM: the VMCB as typed structures, and decoding a #VMEXIT into an
//! [`Exit`].
//!
//! Layout and exit codes are from the AMD64 Architecture Programmer's
//! Manual, Volume 2, Appendix B ("Layout of VMCB") and Appendix C ("SVM
//! Intercept Exit Codes"); the tests pin every field used here to its
//! offset in those tables.

use crate::addr::GuestPhysAddr;
use crate::arch::smccc;
use crate::exit::{Access, Exit, Unexpected};

bitflags::bitflags! {
    /// VMCB offset 0x00C: the first vector of instruction intercepts.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct InterceptMisc1: u32 {
        const INTR = 1 << 0;
        const NMI = 1 << 1;
        const SMI = 1 << 2;
        const INIT = 1 << 3;
        const CPUID = 1 << 18;
        const INVD = 1 << 22;
        const HLT = 1 << 24;
        const IOIO_PROT = 1 << 27;
        const MSR_PROT = 1 << 28;
        const SHUTDOWN = 1 << 31;
    }

    /// VMCB offset 0x010: the second vector of instruction intercepts.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct InterceptMisc2: u32 {
        /// Must be set: the APM makes VMRUN fail with VMEXIT_INVALID if not.
        const VMRUN = 1 << 0;
        const VMMCALL = 1 << 1;
        const VMLOAD = 1 << 2;
        const VMSAVE = 1 << 3;
        const STGI = 1 << 4;
        const CLGI = 1 << 5;
        const SKINIT = 1 << 6;
        const XSETBV = 1 << 13;
    }
}

/// VMCB offset 0x090 bit 0.
pub const NP_ENABLE: u64 = 1 << 0;
/// TLB_CONTROL value: flush this guest's (ASID's) TLB entries on VMRUN.
pub const TLB_FLUSH_GUEST: u8 = 3;

/// The VMCB control area (offsets 0x000..0x400).
#[repr(C)]
pub struct VmcbControl {
    pub intercept_cr: u32,
    pub intercept_dr: u32,
    pub intercept_exceptions: u32,
    pub intercept_misc1: u32,
    pub intercept_misc2: u32,
    pub intercept_misc3: u32,
    _reserved_018: [u8; 0x24],
    pub pause_filter_threshold: u16,
    pub pause_filter_count: u16,
    pub iopm_base_pa: u64,
    pub msrpm_base_pa: u64,
    pub tsc_offset: u64,
    pub guest_asid: u32,
    pub tlb_control: u8,
    _reserved_05d: [u8; 3],
    pub int_control: u64,
    pub int_state: u64,
    pub exit_code: u64,
    pub exit_info1: u64,
    pub exit_info2: u64,
    pub exit_int_info: u64,
    pub np_control: u64,
    pub avic_apic_bar: u64,
    pub ghcb_pa: u64,
    pub event_inj: u64,
    pub ncr3: u64,
    pub lbr_virtualization: u64,
    pub clean_bits: u32,
    _reserved_0c4: u32,
    pub next_rip: u64,
    pub insn_len: u8,
    pub insn_bytes: [u8; 15],
    _reserved_0e0: [u8; 0x400 - 0xe0],
}

/// A segment register in the state-save area.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    pub selector: u16,
    /// Descriptor bits 40..47 in 0..7 and 52..55 in 8..11.
    pub attrib: u16,
    pub limit: u32,
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
    pub es: Segment,
    pub cs: Segment,
    pub ss: Segment,
    pub ds: Segment,
    pub fs: Segment,
    pub gs: Segment,
    pub gdtr: Segment,
    pub ldtr: Segment,
    pub idtr: Segment,
    pub tr: Segment,
    _reserved_4a0: [u8; 0x2b],
    pub cpl: u8,
    _reserved_4cc: u32,
    pub efer: u64,
    _reserved_4d8: [u8; 0x70],
    pub cr4: u64,
    pub cr3: u64,
    pub cr0: u64,
    pub dr7: u64,
    pub dr6: u64,
    pub rflags: u64,
    pub rip: u64,
    _reserved_580: [u8; 0x58],
    pub rsp: u64,
    pub s_cet: u64,
    pub ssp: u64,
    pub isst_addr: u64,
    pub rax: u64,
    pub star: u64,
    pub lstar: u64,
    pub cstar: u64,
    pub sfmask: u64,
    pub kernel_gs_base: u64,
    pub sysenter_cs: u64,
    pub sysenter_esp: u64,
    pub sysenter_eip: u64,
    pub cr2: u64,
    _reserved_648: [u8; 0x20],
    pub g_pat: u64,
    _rest: [u8; 0x1000 - 0x670],
}

/// One VMCB: a 4 KiB-aligned page.
#[repr(C, align(4096))]
pub struct Vmcb {
    pub control: VmcbControl,
    pub save: VmcbSave,
}

const _: () = assert!(core::mem::size_of::<Vmcb>() == 4096);

/// SVM exit codes (APM vol. 2, appendix C) this hypervisor names.
pub mod exit_code {
    pub const EXCEPTION_BASE: u64 = 0x40;
    pub const INTR: u64 = 0x60;
    pub const NMI: u64 = 0x61;
    pub const CPUID: u64 = 0x72;
    pub const HLT: u64 = 0x78;
    pub const IOIO: u64 = 0x7b;
    pub const MSR: u64 = 0x7c;
    pub const SHUTDOWN: u64 = 0x7f;
    pub const VMRUN: u64 = 0x80;
    pub const VMMCALL: u64 = 0x81;
    pub const NPF: u64 = 0x400;
    pub const INVALID: u64 = u64::MAX;
}

/// A readable name for an exit code.
pub fn exit_name(code: u64) -> &'static str {
    use exit_code::*;
    match code {
        0x00..=0x0f => "CR read",
        0x10..=0x1f => "CR write",
        0x20..=0x3f => "DR access",
        0x40..=0x5f => "exception",
        INTR => "physical interrupt (INTR)",
        NMI => "NMI",
        CPUID => "CPUID",
        HLT => "HLT (the guest halted)",
        IOIO => "I/O port access",
        MSR => "MSR access",
        SHUTDOWN => "shutdown (triple fault in the guest)",
        VMRUN => "VMRUN in the guest",
        VMMCALL => "VMMCALL",
        NPF => "nested page fault",
        INVALID => "VMEXIT_INVALID (the VMCB state was refused)",
        _ => "unknown exit",
    }
}

/// The guest registers a hypercall reads: RAX, RDI, RSI, RDX.
#[derive(Clone, Copy, Debug, Default)]
pub struct CallRegs {
    pub rax: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
}

/// NPF EXITINFO1 bits.
const NPF_WRITE: u64 = 1 << 1;
const NPF_FETCH: u64 = 1 << 4;

/// Decodes a #VMEXIT from its code, EXITINFO1/2 and the call registers.
pub fn decode(code: u64, info1: u64, info2: u64, regs: &CallRegs) -> Exit {
    match code {
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
            (0x7b, "I/O port access"),
            (0x4e, "exception"),
            (u64::MAX, "VMEXIT_INVALID (the VMCB state was refused)"),
        ] {
            let Exit::Unexpected(u) = decode(code, 0x11, 0x22, &r) else {
                panic!("{code:#x}")
            };
            assert_eq!((u.what, u.code, u.info), (name, code, [0x11, 0x22]));
        }
    }
}
