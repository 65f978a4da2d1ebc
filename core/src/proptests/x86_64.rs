//! x86_64: the MMIO instruction decoder on any byte string in each code
//! size, the IOIO EXITINFO1 decoder and the #VMEXIT decoder, on arbitrary
//! values.

use proptest::prelude::*;

use super::cases;
use crate::arch::x86_64::ioio::{IoioExit, PortAccess};
use crate::arch::x86_64::mmio_insn::{self, CodeSize, MmioOp, Operand, Register};
use crate::arch::x86_64::paging::MAX_INSN_LEN;
use crate::arch::x86_64::vmcb::{self, CallRegs};
use crate::devices::Width;
use crate::exit::{Exit, Request};

fn code_size() -> impl Strategy<Value = CodeSize> {
    prop_oneof![
        Just(CodeSize::Bits64),
        Just(CodeSize::Bits32),
        Just(CodeSize::Bits16)
    ]
}

/// Register numbers: RAX..R15, or AH..BH as 0..3.
fn check_register(r: Register) {
    match r {
        Register::Gpr(n) => assert!(n < 16, "{r:?}"),
        Register::HighByte(n) => assert!(n < 4, "{r:?}"),
    }
}

/// Bytes biased towards what the decoder looks at: prefixes, REX, the
/// opcodes it accepts and ModRM/SIB bytes of every mode.
fn insn_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        any::<u8>(),
        prop::sample::select(vec![
            0x66u8, 0x67, 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0xf0, 0xf2, 0xf3, 0x40, 0x44, 0x48,
            0x4c, 0x4f, 0x0f, 0xb6, 0xb7, 0x88, 0x89, 0x8a, 0x8b, 0xa0, 0xa1, 0xa2, 0xa3, 0xc6,
            0xc7, 0x08, 0x09, 0x20, 0x21, 0x30, 0x31, 0x80, 0x81, 0x83, 0x04, 0x05, 0x44, 0x84,
            0x25, 0x0d, 0xe0, 0xf0, 0x30,
        ]),
    ]
}

proptest! {
    #![proptest_config(cases(3000))]

    /// Any byte string up to 15 bytes (and a little past) in any code
    /// size: a decoded instruction is no longer than the bytes given nor
    /// than 15, names registers RAX..R15 (or AH..BH), and stores or
    /// modifies only within its width.
    #[test]
    fn any_bytes_decode_within_bounds(
        bytes in prop::collection::vec(insn_byte(), 0..=MAX_INSN_LEN + 2),
        code in code_size(),
        gprs in any::<[u64; 16]>(),
        old in any::<u64>(),
        value in any::<u64>(),
    ) {
        let Ok(i) = mmio_insn::decode(&bytes, code) else { return Ok(()) };
        prop_assert!(code != CodeSize::Bits16);
        prop_assert!(usize::from(i.len) <= bytes.len(), "{:?}", i);
        prop_assert!(usize::from(i.len) <= MAX_INSN_LEN, "{:?}", i);
        prop_assert!(i.len >= 2, "{:?}", i);
        match i.op {
            MmioOp::Load { dst, dst_size } => {
                check_register(dst);
                prop_assert!(dst_size >= i.width);
            }
            MmioOp::StoreReg(r) => check_register(r),
            MmioOp::StoreImm(imm) => prop_assert_eq!(imm & !i.width.mask(), 0),
            MmioOp::Modify { src, .. } => match src {
                Operand::Reg(r) => check_register(r),
                Operand::Imm(imm) => prop_assert_eq!(imm & !i.width.mask(), 0),
            },
        }
        // The register helpers read and write only what exists.
        if let Some(v) = i.store_value(&gprs) {
            prop_assert_eq!(v & !i.width.mask(), 0);
        }
        if let Some(v) = i.modified(value, &gprs) {
            prop_assert_eq!(v & !i.width.mask(), 0);
        }
        if let Some((r, new)) = i.load_result(old, value) {
            check_register(r);
            if let MmioOp::Load { dst_size: Width::Byte | Width::Half, .. } = i.op {
                // A byte or word load keeps the register's upper bits.
                prop_assert_eq!(new >> 16, old >> 16);
            }
        }
        // Decoding only the instruction's own bytes gives the same.
        prop_assert_eq!(mmio_insn::decode(&bytes[..usize::from(i.len)], code), Ok(i));
    }

    /// Any EXITINFO1: a valid one names a 1-, 2- or 4-byte access, and
    /// encoding it back gives the value with the reserved bits cleared
    /// (decoding that gives the same access).
    #[test]
    fn any_ioio_exitinfo_decodes_and_round_trips(info1 in any::<u64>(), info2 in any::<u64>()) {
        if let Ok(e) = IoioExit::decode(info1, info2) {
            let a = e.access;
            prop_assert!(matches!(a.width, Width::Byte | Width::Half | Width::Word));
            prop_assert_eq!(e.next_rip, info2);
            prop_assert_eq!(u64::from(a.port), (info1 >> 16) & 0xffff);
            prop_assert_eq!(PortAccess::decode(a.encode()), Ok(a));
            let reserved = !0xffff_1fff_u64 | 0x2;
            prop_assert_eq!(a.encode(), info1 & !reserved);
            prop_assert_eq!(a.out_value(u64::MAX) & !a.width.mask(), 0);
        }
    }

    /// EXITINFO1 values with the reserved bits clear: most are valid.
    #[test]
    fn plausible_ioio_exitinfo_round_trips(info1 in any::<u64>()) {
        let info1 = info1 & 0xffff_1ffd;
        if let Ok(a) = PortAccess::decode(info1) {
            prop_assert_eq!(a.encode(), info1);
        }
    }

    /// Any exit code, EXITINFO1/2 and call registers: decoding never
    /// panics; a port-I/O exit is a plain IN/OUT of a valid width; user
    /// mode cannot make a hypercall beyond a refusal.
    #[test]
    fn any_vmexit_decodes(
        code in prop_oneof![0u64..0x500, Just(u64::MAX), any::<u64>()],
        info1 in any::<u64>(), info2 in any::<u64>(),
        cpl in 0u8..4, rax in any::<u64>(), rdi in any::<u64>(), rsi in any::<u64>(),
        rdx in any::<u64>(),
    ) {
        let regs = CallRegs { cpl, rax, rdi, rsi, rdx };
        match vmcb::decode(code, info1, info2, &regs) {
            Exit::PortIo(p) => {
                prop_assert_eq!(code, vmcb::exit_code::IOIO);
                prop_assert!(matches!(p.width, Width::Byte | Width::Half | Width::Word));
                if let Some(v) = p.write {
                    prop_assert_eq!(v & !p.width.mask(), 0);
                }
            }
            Exit::Hypercall(r) if cpl != 0 && code == vmcb::exit_code::VMMCALL => {
                let refused = matches!(r, Request::Refused { .. });
                prop_assert!(refused);
            }
            _ => {}
        }
        let _ = vmcb::exit_name(code);
        let _ = vmcb::is_svm_instruction(code);
    }

    /// Any MSR number: its permission-map position lies in the 8 KiB map.
    #[test]
    fn any_msr_has_a_position_within_the_map(msr in any::<u32>()) {
        if let Some((byte, bit)) = vmcb::msrpm_position(msr) {
            prop_assert!(byte < 0x1800 && bit < 8 && bit % 2 == 0);
        }
    }
}
