//! aarch64: the Data Abort syndrome decoder, the A64 load/store decoder,
//! the trap decoder, the trapped-system-register decoder (and the models it
//! feeds) and SMCCC/PSCI, on arbitrary register values.

use proptest::prelude::*;

use super::cases;
use crate::addr::GuestPhysAddr;
use crate::arch::aarch64::a64_ldst;
use crate::arch::aarch64::dabt::{self, DataAbortInsn, ZR};
use crate::arch::aarch64::debug_regs::DebugRegs;
use crate::arch::aarch64::esr::{self, ec};
use crate::arch::aarch64::sysreg;
use crate::arch::aarch64::vtimer::PhysTimer;
use crate::arch::smccc;
use crate::devices::Width;
use crate::exit::{CpuPower, Exit, Reply, Request, Suspend, immediate_reply};

/// What a decoded access must satisfy: x0..x30 or the zero register, a
/// length of 4 (A64) or 2 (T32), sixty-four-bit for a doubleword, a
/// load's value within its register, and no guest register read out of
/// `x0..x30`.
fn check(i: &DataAbortInsn) {
    assert!(i.reg <= ZR, "{i:?}");
    assert!(matches!(i.len, 2 | 4), "{i:?}");
    assert!(i.width != Width::Double || i.sixty_four, "{i:?}");
    assert!(!(i.write && i.sign_extend), "{i:?}");
    assert!(i.dest().is_none_or(|r| r < ZR), "{i:?}");
    let x = core::array::from_fn(|n| 0x0101_0101_0101_0101 * (n as u64 + 1));
    let stored = i.store_value(&x);
    assert_eq!(stored & !i.width.mask(), 0, "{i:?}");
    let loaded = i.load_value(u64::MAX);
    if !i.sixty_four && !i.write {
        assert_eq!(loaded >> 32, 0, "{i:?}");
    }
    if !i.sign_extend {
        assert_eq!(loaded & !i.width.mask(), 0, "{i:?}");
    }
}

proptest! {
    #![proptest_config(cases(2000))]

    /// Any ESR_EL2 value: only EC 0x24 with ISV decodes, and what it
    /// decodes is within the syndrome's fields.
    #[test]
    fn any_esr_decodes_as_a_data_abort_within_bounds(esr in any::<u64>()) {
        if let Ok(i) = dabt::decode(esr) {
            check(&i);
            prop_assert_eq!((esr >> 26) & 0x3f, ec::DATA_ABORT_LOWER);
            prop_assert_eq!(u64::from(i.reg), (esr >> 16) & 0x1f);
        }
    }

    /// Data Abort syndromes (EC 0x24, ISV set) with any ISS bits.
    #[test]
    fn data_abort_syndromes_decode_within_bounds(iss in any::<u32>()) {
        let esr = ec::DATA_ABORT_LOWER << 26 | dabt::iss::ISV | u64::from(iss & 0x1ff_ffff);
        if let Ok(i) = dabt::decode(esr) {
            check(&i);
        }
    }

    /// Any A64 instruction word: a decoded load/store has a valid width,
    /// a register x0..x30 or XZR, and a writeback only of imm9 (-256..=255)
    /// to a base x0..x30 (SP is refused).
    #[test]
    fn any_a64_word_decodes_within_bounds(word in any::<u32>()) {
        if let Ok(a) = a64_ldst::decode(word) {
            check(&a.insn);
            prop_assert_eq!(a.insn.len, 4);
            prop_assert_eq!(u32::from(a.insn.reg), word & 31);
            prop_assert_eq!(a.insn.width.bytes(), 1 << (word >> 30));
            if let Some(wb) = a.writeback {
                prop_assert!(wb.rn < 31);
                prop_assert!((-256..=255).contains(&wb.offset), "{:?}", wb);
                let imm9 = i64::from((word >> 12) & 0x1ff);
                prop_assert_eq!(wb.offset & 0x1ff, imm9);
            }
        }
    }

    /// Words in the load/store register classes (bits 29:27 = 111, V = 0),
    /// where most of the decoder's branches are.
    #[test]
    fn load_store_class_words_decode_within_bounds(bits in any::<u32>()) {
        let word = (bits & !0x3c00_0000) | 0x3800_0000 | (bits & 0x0100_0000);
        if let Ok(a) = a64_ldst::decode(word) {
            check(&a.insn);
        }
    }

    /// Any trap registers and `x0..x3`: decoding never panics; a nested
    /// page fault's IPA is HPFAR.FIPA's page with FAR's offset.
    #[test]
    fn any_trap_decodes(esr_v in any::<u64>(), far in any::<u64>(), hpfar in any::<u64>(),
                        x in any::<[u64; 4]>()) {
        let t = esr::Trap { esr: esr_v, far, hpfar };
        if let Exit::NestedPageFault { gpa, .. } = esr::decode(&t, &x) {
            prop_assert_eq!(gpa.as_u64() & 0xfff, far & 0xfff);
            prop_assert!(gpa.as_u64() < 1 << 52);
        }
        let _ = esr::class_name(t.class());
    }

    /// Trapped MSR/MRS: any syndrome names fields within their encodings
    /// and a register x0..x30 or XZR; the timer and the debug registers
    /// take any access to what it names without panicking.
    #[test]
    fn any_sysreg_syndrome_decodes_and_the_models_take_it(
        esr_v in any::<u64>(), value in any::<u64>(), count in any::<u64>()
    ) {
        let a = sysreg::decode(esr_v);
        prop_assert!(a.rt <= 31);
        prop_assert!(a.reg.op0 < 4 && a.reg.op1 < 8 && a.reg.op2 < 8);
        prop_assert!(a.reg.crn < 16 && a.reg.crm < 16);
        let mut timer = PhysTimer::new();
        let mut debug = DebugRegs::new();
        if a.read {
            let _ = timer.read(a.reg, count);
            let _ = debug.read(a.reg);
        } else {
            let _ = timer.write(a.reg, value, count);
            let _ = debug.write(a.reg, value);
            // What was written reads back without panicking too.
            let _ = timer.read(a.reg, count);
            let _ = debug.read(a.reg);
        }
        let _ = timer.deadline();
        let _ = timer.irq_level(count);
    }

    /// Any SMCCC/PSCI call: decoding never panics and an immediate reply
    /// encodes.
    #[test]
    fn any_smccc_call_decodes(
        function in prop_oneof![
            0x8400_0000u64..0x8400_0020,
            0xc400_0000u64..0xc400_0020,
            0x8000_0000u64..0x8000_0004,
            0xc600_0000u64..0xc600_0010,
            0x8600_0000u64..0x8600_0010,
            any::<u64>(),
        ],
        args in any::<[u64; 3]>(),
        small in any::<[u8; 3]>(),
        use_small in any::<bool>(),
    ) {
        let args = if use_small { small.map(u64::from) } else { args };
        let req = smccc::decode(function, args);
        if let Some(r) = immediate_reply(&req) {
            let _ = smccc::encode(r);
        }
    }

    /// Any reply encodes; only success can be a non-negative value, and a
    /// CPU's state is AFFINITY_INFO's ON, OFF or ON_PENDING.
    #[test]
    fn any_smccc_reply_encodes(v in any::<u64>(), which in 0u8..9) {
        let r = match which {
            0 => Reply::Value(v),
            1 => Reply::NotSupported,
            2 => Reply::InvalidParam,
            3 => Reply::InvalidAddress,
            4 => Reply::AlreadyAvailable,
            5 => Reply::CpuState(CpuPower::On),
            6 => Reply::CpuState(CpuPower::Off),
            7 => Reply::CpuState(CpuPower::OnPending),
            _ => Reply::CpuState(CpuPower::Suspended),
        };
        let x0 = smccc::encode(r);
        match r {
            Reply::Value(_) => {}
            Reply::CpuState(_) => prop_assert!(x0 <= 2),
            _ => prop_assert!((x0 as i64) < 0),
        }
    }

    /// An SMC32 call reads only the low halves of its arguments (W1..W3).
    #[test]
    fn smc32_calls_ignore_upper_halves(
        function in prop_oneof![0x8400_0000u64..0x8400_0020, 0x8000_0000u64..0x8000_0004],
        args in any::<[u64; 3]>(),
    ) {
        prop_assert_eq!(
            smccc::decode(function, args),
            smccc::decode(function, args.map(|a| a & 0xffff_ffff))
        );
    }

    /// CPU_ON and AFFINITY_INFO name vCPU Aff0 when Aff3..Aff1 are 0, and
    /// no vCPU otherwise; AFFINITY_INFO answers only for level 0.
    #[test]
    fn cpu_power_calls_name_cpus_by_aff0(
        sixty_four in any::<bool>(),
        target in prop_oneof![0u64..0x200, any::<u64>().prop_map(|t| t & 0xff_80ff_ffff), any::<u64>()],
        args in any::<[u64; 2]>(),
        level in prop_oneof![Just(0u64), 0u64..4, any::<u64>()],
    ) {
        let (on, info) = if sixty_four {
            (smccc::PSCI_CPU_ON_64, smccc::PSCI_AFFINITY_INFO_64)
        } else {
            (smccc::PSCI_CPU_ON, smccc::PSCI_AFFINITY_INFO)
        };
        let w = |a: u64| if sixty_four { a } else { a & 0xffff_ffff };
        let affinity = w(target) & 0xff_00ff_ffff;
        let cpu = if affinity >> 8 == 0 { affinity } else { smccc::NO_CPU };
        prop_assert!(cpu < 0x100 || cpu == smccc::NO_CPU);
        prop_assert_eq!(smccc::cpu_index(w(target)), cpu);
        prop_assert_eq!(
            smccc::decode(on, [target, args[0], args[1]]),
            Request::CpuStart { cpu, entry: GuestPhysAddr::new(w(args[0])), arg: w(args[1]) }
        );
        let status = smccc::decode(info, [target, level, 0]);
        if level as u32 == 0 {
            prop_assert_eq!(status, Request::CpuStatus { cpu });
        } else {
            prop_assert_eq!(immediate_reply(&status), Some(Reply::InvalidParam));
        }
    }

    /// CPU_SUSPEND: an original-format power_state with a reserved bit set
    /// is invalid; otherwise StateType (bit 16) picks standby or powerdown.
    #[test]
    fn cpu_suspend_follows_the_state_type(
        sixty_four in any::<bool>(),
        power_state in prop_oneof![any::<u64>().prop_map(|p| p & 0x0301_ffff), any::<u64>()],
        args in any::<[u64; 2]>(),
    ) {
        let f = if sixty_four { smccc::PSCI_CPU_SUSPEND_64 } else { smccc::PSCI_CPU_SUSPEND };
        let w = |a: u64| if sixty_four { a } else { a & 0xffff_ffff };
        let req = smccc::decode(f, [power_state, args[0], args[1]]);
        let ps = power_state as u32;
        if ps & 0xFCFE_0000 != 0 {
            prop_assert_eq!(immediate_reply(&req), Some(Reply::InvalidParam));
        } else if ps & 1 << 16 == 0 {
            prop_assert_eq!(req, Request::CpuSuspend(Suspend::Retentive));
        } else {
            prop_assert_eq!(
                req,
                Request::CpuSuspend(Suspend::NonRetentive {
                    entry: GuestPhysAddr::new(w(args[0])),
                    arg: w(args[1]),
                })
            );
        }
    }
}
