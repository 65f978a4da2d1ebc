//! riscv64: the MMIO instruction decoder (`htinst` and raw encodings), the
//! trap decoder, the SBI decoder/encoder (hart masks, HSM) and the
//! hart-local calls, on arbitrary register values.

use proptest::prelude::*;

use super::cases;
use crate::addr::GuestPhysAddr;
use crate::arch::riscv64::hart::{self, HartControls};
use crate::arch::riscv64::insn::{self, MmioInsn, MmioOp};
use crate::arch::riscv64::{sbi, trap};
use crate::devices::Width;
use crate::exit::{CpuPower, CpuSet, Exit, Fence, Reply, Request, Suspend, immediate_reply};

/// SBI extension ids (SBI v2.0 §7, §8, §9).
const EID_SPI: u64 = 0x73_5049;
const EID_RFNC: u64 = 0x5246_4E43;
const EID_HSM: u64 = 0x48_534D;

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
        prop_oneof![
            Just(CpuPower::On),
            Just(CpuPower::Off),
            Just(CpuPower::OnPending),
            Just(CpuPower::Suspended),
        ]
        .prop_map(Reply::CpuState),
    ]
}

/// The set a hart mask names, bit by bit (SBI v2.0 §3.1): `None` if a
/// hart id `base + i` reaches 64.
fn named(mask: u64, base: u64) -> Option<CpuSet> {
    (0..64)
        .filter(|i| mask & (1 << i) != 0)
        .try_fold(0u64, |set, i| match base.checked_add(i) {
            Some(hart) if hart < 64 => Some(set | 1 << hart),
            _ => None,
        })
        .map(CpuSet)
}

/// Hart mask bases where the interesting branches are: small ones, near
/// 64, -1 (every hart) and anything.
fn mask_base() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..8, 56u64..72, Just(u64::MAX), any::<u64>()]
}

/// A hart that accepts every hart-local call.
struct Any;

impl HartControls for Any {
    fn set_timer(&mut self, _: u64) {}
    fn raise_software_interrupt(&mut self) {}
    fn clear_software_interrupt(&mut self) -> bool {
        false
    }
    fn fence(&mut self, _: Fence) {}
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

    /// Any reply to any extension encodes: legacy calls return one value;
    /// a hart state is a success with an HSM state (SBI v2.0 §9).
    #[test]
    fn any_sbi_reply_encodes(eid in any::<u64>(), r in reply()) {
        let ret = sbi::encode(eid, r);
        if eid >= sbi::LEGACY_EID_END {
            let value = ret.a1.expect("(error, value)");
            match r {
                Reply::Value(v) => prop_assert_eq!(value, v),
                Reply::CpuState(_) => prop_assert!(matches!(value, 0 | 1 | 2 | 4)),
                _ => prop_assert_eq!(value, 0),
            }
            prop_assert_eq!(ret.a0 == 0, matches!(r, Reply::Value(_) | Reply::CpuState(_)));
        } else {
            prop_assert!(ret.a1.is_none());
        }
    }

    /// Any hart mask names the harts `base + i` of its set bits, every
    /// hart (vCPUs 0..8) for base -1, and is invalid if one of them is 64
    /// or more.
    #[test]
    fn hart_masks_name_base_plus_bit(mask in any::<u64>(), small in 0u64..0x100,
                                     use_small in any::<bool>(), base in mask_base()) {
        let mask = if use_small { small } else { mask };
        let want = if base == u64::MAX { Some(sbi::ALL_HARTS) } else { named(mask, base) };
        prop_assert_eq!(sbi::hart_mask(mask, base), want);
    }

    /// IPI and RFENCE calls decode their hart mask into the set of the
    /// request: a mask naming no hart succeeds at once, one naming a hart
    /// of 64 or more is INVALID_PARAM (or, for a fence over a range that
    /// wraps, INVALID_ADDRESS).
    #[test]
    fn ipis_and_fences_go_to_the_harts_their_mask_names(
        mask in prop_oneof![0u64..0x100, any::<u64>()], base in mask_base(),
        fid in 0u64..3, range in any::<[u64; 3]>(),
    ) {
        let args = [mask, base, range[0], range[1], range[2], 0];
        let set = sbi::hart_mask(mask, base);
        match (sbi::decode(EID_SPI, 0, args), set) {
            (Request::SendIpi(s), Some(want)) => {
                prop_assert_eq!(s, want);
                prop_assert_ne!(s, CpuSet(0));
            }
            (Request::Answer(0), Some(CpuSet(0))) | (Request::Invalid { .. }, None) => {}
            (other, _) => prop_assert!(false, "IPI to {:?}: {:?}", set, other),
        }
        match (sbi::decode(EID_RFNC, fid, args), set) {
            (Request::RemoteFence { cpus, .. }, Some(want)) => {
                prop_assert_eq!(cpus, want);
                prop_assert_ne!(cpus, CpuSet(0));
            }
            (Request::Answer(0), Some(CpuSet(0)))
            | (Request::Invalid { .. }, None)
            | (Request::BadAddress { .. }, _) => {}
            (other, _) => prop_assert!(false, "fence {} on {:?}: {:?}", fid, set, other),
        }
    }

    /// HSM passes any hart id on for the run loop to check, and suspends
    /// only with the two default types (SBI v2.0 §9).
    #[test]
    fn hsm_passes_hart_ids_on(args in any::<[u64; 6]>(),
                              ty in prop_oneof![Just(0u64), Just(0x8000_0000), any::<u64>()]) {
        prop_assert_eq!(
            sbi::decode(EID_HSM, 0, args),
            Request::CpuStart {
                cpu: args[0],
                entry: GuestPhysAddr::new(args[1]),
                arg: args[2],
            }
        );
        prop_assert_eq!(sbi::decode(EID_HSM, 2, args), Request::CpuStatus { cpu: args[0] });
        let suspend = sbi::decode(EID_HSM, 3, [ty, args[1], args[2], 0, 0, 0]);
        match ty as u32 {
            0 => prop_assert_eq!(suspend, Request::CpuSuspend(Suspend::Retentive)),
            0x8000_0000 => prop_assert_eq!(
                suspend,
                Request::CpuSuspend(Suspend::NonRetentive {
                    entry: GuestPhysAddr::new(args[1]),
                    arg: args[2],
                })
            ),
            _ => {
                let invalid = matches!(suspend, Request::Invalid { .. });
                prop_assert!(invalid, "{:?}", suspend);
            }
        }
    }

    /// On any hart, a decoded SBI call is served there exactly when it is
    /// hart-local, and an IPI or fence is local only when its set is that
    /// hart alone.
    #[test]
    fn a_hart_serves_exactly_its_local_calls(
        eid in prop_oneof![
            0u64..9, Just(0x5449_4D45), Just(EID_SPI), Just(EID_RFNC), Just(EID_HSM),
        ],
        fid in 0u64..4, mask in 0u64..0x100, base in mask_base(),
        rest in any::<[u64; 4]>(), me in 0usize..8,
    ) {
        let req = sbi::decode(eid, fid, [mask, base, rest[0], rest[1], rest[2], rest[3]]);
        let local = hart::is_local(&req, me);
        prop_assert_eq!(hart::serve(&req, me, &mut Any).is_some(), local, "{:?}", req);
        if let Request::SendIpi(set) | Request::RemoteFence { cpus: set, .. } = req {
            prop_assert_eq!(local, set == CpuSet::one(me));
        }
    }
}
