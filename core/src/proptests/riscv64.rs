//! riscv64: the MMIO instruction decoder (`htinst` and raw encodings), the
//! trap decoder and the SBI decoder/encoder, on arbitrary register values.

use proptest::prelude::*;

use super::cases;
use crate::arch::riscv64::insn::{self, MmioInsn, MmioOp};
use crate::arch::riscv64::{sbi, trap};
use crate::devices::Width;
use crate::exit::{Exit, Reply, immediate_reply};

/// What any decoded load or store must satisfy: a register x0..x31, an
/// access width RV64I has, and the length of a 32- or 16-bit instruction.
fn check(i: &MmioInsn) {
    let reg = match i.op {
        MmioOp::Load { rd, .. } => rd,
        MmioOp::Store { rs2 } => rs2,
    };
    assert!(reg < 32, "{i:?}");
    assert!(matches!(i.len, 2 | 4), "{i:?}");
    assert!(i.dest().is_none_or(|r| r != 0 && r < 32), "{i:?}");
    // The extended value of a load never has bits a W/H/B item cannot
    // produce when zero-extended.
    if let MmioOp::Load { signed: false, .. } = i.op {
        assert_eq!(i.load_value(u64::MAX) & !i.width.mask(), 0, "{i:?}");
    }
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        any::<u64>().prop_map(Reply::Value),
        Just(Reply::NotSupported),
        Just(Reply::InvalidParam),
        Just(Reply::InvalidAddress),
        Just(Reply::AlreadyAvailable),
    ]
}

proptest! {
    #![proptest_config(cases(2000))]

    /// Any `htinst`: a transformed load/store keeps bit 1's length (4 if
    /// set, 2 if clear); nothing with bit 0 clear decodes.
    #[test]
    fn any_htinst_decodes_within_bounds(htinst in any::<u64>()) {
        if let Ok(Some(i)) = insn::decode_transformed(htinst) {
            check(&i);
            prop_assert_eq!(htinst & 1, 1);
            prop_assert!(htinst >> 32 == 0);
            prop_assert_eq!(i.len, if htinst & 2 != 0 { 4 } else { 2 });
        }
    }

    /// Small `htinst` values too, where the pseudoinstructions live.
    #[test]
    fn small_htinst_decodes_within_bounds(htinst in 0u64..0x1_0000) {
        if let Ok(Some(i)) = insn::decode_transformed(htinst) {
            check(&i);
        }
    }

    /// Any raw instruction word: 32-bit encodings are 4 bytes, compressed
    /// ones 2, and a compressed one ignores the upper half-word.
    #[test]
    fn any_raw_instruction_decodes_within_bounds(word in any::<u32>()) {
        let d = insn::decode_raw(word);
        if let Ok(i) = d {
            check(&i);
            prop_assert_eq!(i.len, if word & 3 == 3 { 4 } else { 2 });
        }
        if word & 3 != 3 {
            prop_assert_eq!(
                d.map_err(|_| ()),
                insn::decode_raw(word & 0xffff).map_err(|_| ())
            );
        }
    }

    /// A compressed load/store names x8..x15 (quadrant 0) or, sp-based
    /// (quadrant 2), only words and doublewords.
    #[test]
    fn compressed_forms_name_what_they_can(half in any::<u16>()) {
        // Bits 1:0 = 11 would be the low half of a 32-bit instruction.
        let half = if half & 3 == 3 { half & !1 } else { half };
        if let Ok(i) = insn::decode_raw(u32::from(half)) {
            prop_assert!(matches!(i.width, Width::Word | Width::Double));
            if half & 3 == 0 {
                let reg = match i.op {
                    MmioOp::Load { rd, .. } => rd,
                    MmioOp::Store { rs2 } => rs2,
                };
                prop_assert!((8..16).contains(&reg), "{i:?}");
            }
        }
    }

    /// Any trap registers and `a0..a7`: decoding never panics, and a
    /// guest-page fault's address is `htval << 2 | stval & 3`.
    #[test]
    fn any_trap_decodes(scause in any::<u64>(), stval in any::<u64>(), htval in any::<u64>(),
                        a in any::<[u64; 8]>()) {
        let t = trap::Trap { scause, stval, htval };
        if let Exit::NestedPageFault { gpa, .. } = trap::decode(&t, &a) {
            prop_assert_eq!(gpa.as_u64(), htval << 2 | stval & 3);
        }
        let _ = trap::cause_name(scause);
    }

    /// Trap causes as the hardware gives them (small codes, with or
    /// without the interrupt bit), with any SBI registers.
    #[test]
    fn real_trap_causes_decode(code in 0u64..64, interrupt in any::<bool>(),
                               a in any::<[u64; 8]>()) {
        let scause = code | if interrupt { trap::cause::INTERRUPT } else { 0 };
        let t = trap::Trap { scause, stval: a[0], htval: a[1] };
        let _ = trap::decode(&t, &a);
    }

    /// Any SBI call, with extension ids near the ones implemented (where
    /// the interesting branches are) or anywhere; its reply encodes.
    #[test]
    fn any_sbi_call_decodes_and_its_reply_encodes(
        eid in prop_oneof![
            0u64..0x20,
            Just(0x10u64), Just(0x5449_4D45), Just(0x73_5049), Just(0x5246_4E43),
            Just(0x48_534D), Just(0x5352_5354), Just(0x4442_434E), Just(sbi::EID_GUESTASPACE),
            any::<u64>(),
        ],
        fid in prop_oneof![0u64..16, any::<u64>()],
        args in any::<[u64; 6]>(),
        small in any::<[u8; 6]>(),
        use_small in any::<bool>(),
    ) {
        // Small arguments reach the hart-mask, reason and type branches.
        let args = if use_small { small.map(u64::from) } else { args };
        let req = sbi::decode(eid, fid, args);
        if let Some(r) = immediate_reply(&req) {
            let ret = sbi::encode(eid, r);
            prop_assert_eq!(ret.a1.is_none(), eid < sbi::LEGACY_EID_END);
        }
    }

    /// Any reply to any extension encodes: legacy calls return one value.
    #[test]
    fn any_sbi_reply_encodes(eid in any::<u64>(), r in reply()) {
        let ret = sbi::encode(eid, r);
        if eid >= sbi::LEGACY_EID_END {
            prop_assert_eq!(ret.a1, Some(match r { Reply::Value(v) => v, _ => 0 }));
            prop_assert_eq!(ret.a0 == 0, matches!(r, Reply::Value(_)));
        } else {
            prop_assert!(ret.a1.is_none());
        }
    }
}
