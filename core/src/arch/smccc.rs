//! The hypercall ABI of the aarch64 and x86_64 guests: Arm SMCCC function
//! identifiers (PSCI for power, plus a few vendor hypervisor calls of ours
//! for the console), decoded into a [`Request`] and answered in one
//! register. On aarch64 the call is `HVC #0` with the function in `x0` and
//! arguments in `x1..x3`; on x86_64 it is `VMMCALL` with the function in
//! `RAX` and arguments in `RDI`, `RSI`, `RDX`. The result goes back in
//! `x0`/`RAX`.
//!
//! Function numbers are from Arm DEN0028 (SMC Calling Convention, §2.5
//! "Function Identifiers", Table 2-1, and §6 for the owner ranges) and
//! DEN0022 (PSCI, §5 "PSCI Functions"; return codes in §5.2).
//!
//! PSCI 1.1 as implemented (DEN0022 §5.1), decoded without knowing the
//! VM: CPUs are named by index and the run loop refuses those the VM does
//! not have.
//!
//! * `CPU_ON`, `AFFINITY_INFO` at affinity level 0, `CPU_SUSPEND` and
//!   `CPU_OFF` go to the run loop ([`Request::CpuStart`],
//!   [`Request::CpuStatus`], [`Request::CpuSuspend`], [`Request::CpuStop`]).
//!   vCPU `i` has MPIDR affinity Aff0 = `i`, Aff3..Aff1 = 0
//!   ([`cpu_index`]).
//! * `PSCI_VERSION` (1.1), `PSCI_FEATURES`, `MIGRATE_INFO_TYPE` (no
//!   Trusted OS) are answered from constants; `SYSTEM_OFF` and
//!   `SYSTEM_RESET` end the run.
//! * `MIGRATE`, `MIGRATE_INFO_UP_CPU` and every optional function of PSCI
//!   1.0/1.1 (`CPU_FREEZE`, `SYSTEM_SUSPEND`, `SYSTEM_RESET2`, ...) answer
//!   NOT_SUPPORTED.
//!
//! An SMC32 call passes its arguments in `W1..W3` (DEN0028, "SMC32/HVC32
//! argument passing"): the upper halves of `x1..x3` are not part of it
//! and are ignored, as Arm's firmware and KVM do (on x86_64, those of
//! `RDI`, `RSI`, `RDX` likewise).

use crate::addr::GuestPhysAddr;
use crate::exit::{CpuPower, RebootKind, Reply, Request, ShutdownReason, Suspend};

/// SMCCC_VERSION (DEN0028 §7): the calling convention's version.
pub const SMCCC_VERSION: u64 = 0x8000_0000;
/// PSCI_VERSION (DEN0022 §5.1.1).
pub const PSCI_VERSION: u64 = 0x8400_0000;
/// CPU_SUSPEND, SMC32 (DEN0022 §5.1.2): suspend the calling CPU.
pub const PSCI_CPU_SUSPEND: u64 = 0x8400_0001;
/// CPU_SUSPEND, SMC64.
pub const PSCI_CPU_SUSPEND_64: u64 = 0xC400_0001;
/// CPU_OFF (DEN0022 §5.1.3).
pub const PSCI_CPU_OFF: u64 = 0x8400_0002;
/// CPU_ON, SMC32 (DEN0022 §5.1.4): start another CPU.
pub const PSCI_CPU_ON: u64 = 0x8400_0003;
/// CPU_ON, SMC64.
pub const PSCI_CPU_ON_64: u64 = 0xC400_0003;
/// AFFINITY_INFO, SMC32 (DEN0022 §5.1.5): is a CPU on?
pub const PSCI_AFFINITY_INFO: u64 = 0x8400_0004;
/// AFFINITY_INFO, SMC64.
pub const PSCI_AFFINITY_INFO_64: u64 = 0xC400_0004;
/// MIGRATE_INFO_TYPE (DEN0022 §5.1.7): does a Trusted OS need migrating?
pub const PSCI_MIGRATE_INFO_TYPE: u64 = 0x8400_0006;
/// MIGRATE_INFO_UP_CPU, SMC32 (DEN0022 §5.1.8): where a uniprocessor
/// Trusted OS runs. Not implemented: there is none.
pub const PSCI_MIGRATE_INFO_UP_CPU: u64 = 0x8400_0007;
/// MIGRATE_INFO_UP_CPU, SMC64.
pub const PSCI_MIGRATE_INFO_UP_CPU_64: u64 = 0xC400_0007;
/// SYSTEM_OFF (DEN0022 §5.1.9): power the system off.
pub const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
/// SYSTEM_RESET (DEN0022 §5.1.10).
pub const PSCI_SYSTEM_RESET: u64 = 0x8400_0009;
/// PSCI_FEATURES (DEN0022 §5.1.14): is a function implemented?
pub const PSCI_FEATURES: u64 = 0x8400_000A;
/// SMCCC_ARCH_FEATURES (DEN0028 §7.2): is an Arm architecture call
/// (SMCCC_VERSION, a firmware workaround) implemented?
pub const SMCCC_ARCH_FEATURES: u64 = 0x8000_0001;

/// The MPIDR affinity of vCPU 0, the boot CPU (Aff3..Aff0 all 0). vCPU
/// `i` has this with Aff0 = `i` ([`cpu_index`]).
pub const BOOT_CPU_AFFINITY: u64 = 0;
/// MPIDR bits that are affinity fields (Aff3 at 39:32, Aff2..Aff0 at
/// 23:0), the part of a target CPU argument PSCI reads (DEN0022 §5.1.4).
const AFFINITY_MASK: u64 = 0xff_00ff_ffff;
/// The Aff0 field of an MPIDR (bits 7:0).
const AFF0: u64 = 0xff;
/// A CPU index that names no vCPU, for an MPIDR outside the convention:
/// the run loop refuses it (INVALID_PARAMETERS).
pub const NO_CPU: u64 = u64::MAX;
/// MIGRATE_INFO_TYPE's answer 2: "Trusted OS is either not present or does
/// not require migration" (DEN0022 §5.1.7): there is no Trusted OS.
const NO_TRUSTED_OS: u64 = 2;
/// Bit 30 of a function identifier: the SMC64/HVC64 calling convention
/// (DEN0028 §2.5, Table 2-1); clear for SMC32/HVC32.
const SMC64: u64 = 1 << 30;
/// CPU_SUSPEND's power_state in the original format (DEN0022 §5.1.2),
/// the one PSCI_FEATURES reports: StateType, bit 16: 0 standby or
/// retention, 1 powerdown. StateID (15:0) and PowerLevel (25:24) only
/// tell how deep to go, which the hypervisor chooses; bits 31:26 and
/// 23:17 are reserved and must be zero.
const POWER_STATE_POWERDOWN: u32 = 1 << 16;
/// The reserved bits of an original-format power_state.
const POWER_STATE_RESERVED: u32 = 0xFC00_0000 | 0x00FE_0000;

/// Vendor-specific hypervisor service calls (owner 6, fast, SMC64; DEN0028
/// §6, Table 6-1): a call that does nothing.
pub const GA_NULL: u64 = 0xC600_0000;
/// Print the byte in argument 0.
pub const GA_CONSOLE_PUTC: u64 = 0xC600_0001;
/// Print argument 1 bytes of guest RAM at guest-physical argument 0.
pub const GA_CONSOLE_WRITE: u64 = 0xC600_0002;
/// Power off because the guest failed (a kernel panic), with a reason code
/// in argument 0: PSCI's SYSTEM_OFF carries no reason, SBI's SRST does.
pub const GA_SYSTEM_FAILURE: u64 = 0xC600_0003;

/// Function identifiers are 32 bits (DEN0028 §2.5); a value with bits set
/// above bit 31 is not a valid identifier.
pub const FUNCTION_ID_BITS: u32 = 32;

/// SMCCC version 1.1, PSCI version 1.1 (major << 16 | minor).
pub const VERSION_1_1: u64 = 0x1_0001;

/// SUCCESS (DEN0022 §5.2; SMCCC uses the same 0).
pub const SUCCESS: i64 = 0;
/// NOT_SUPPORTED (DEN0022 §5.2, DEN0028 §7).
pub const NOT_SUPPORTED: i64 = -1;
/// INVALID_PARAMETERS (DEN0022 §5.2).
pub const INVALID_PARAMETERS: i64 = -2;
/// PSCI's ALREADY_ON (DEN0022 §5.2).
pub const ALREADY_ON: i64 = -4;
/// PSCI's INVALID_ADDRESS (DEN0022 §5.2).
pub const INVALID_ADDRESS: i64 = -9;

/// The functions the guest may call (what PSCI_FEATURES reports; DEN0022
/// §5.1.14). Its answer for each is 0 (SUCCESS), which for CPU_SUSPEND is
/// the feature flags: bit 1 clear, the original power_state format; bit 0
/// clear, platform-coordinated mode only (no OS-initiated mode).
const IMPLEMENTED: &[u64] = &[
    SMCCC_VERSION,
    SMCCC_ARCH_FEATURES,
    PSCI_VERSION,
    PSCI_CPU_SUSPEND,
    PSCI_CPU_SUSPEND_64,
    PSCI_CPU_OFF,
    PSCI_CPU_ON,
    PSCI_CPU_ON_64,
    PSCI_AFFINITY_INFO,
    PSCI_AFFINITY_INFO_64,
    PSCI_MIGRATE_INFO_TYPE,
    PSCI_SYSTEM_OFF,
    PSCI_SYSTEM_RESET,
    PSCI_FEATURES,
    GA_NULL,
    GA_CONSOLE_PUTC,
    GA_CONSOLE_WRITE,
    GA_SYSTEM_FAILURE,
];

/// The vCPU a PSCI target CPU argument names (an MPIDR's affinity fields,
/// DEN0022 §5.1.4): vCPU `i` has Aff0 = `i` and Aff3..Aff1 as in
/// [`BOOT_CPU_AFFINITY`]; bits that are no affinity field (bit 31, RES1 in
/// MPIDR_EL1, say) are ignored. Any other affinity is [`NO_CPU`]. An Aff0
/// of [`crate::exit::CpuSet::MAX_CPUS`] or more passes through: the run
/// loop refuses it too.
pub const fn cpu_index(target: u64) -> u64 {
    let affinity = target & AFFINITY_MASK;
    if affinity & !AFF0 == BOOT_CPU_AFFINITY {
        affinity & AFF0
    } else {
        NO_CPU
    }
}

/// Decodes a call of `function` with `args`.
pub fn decode(function: u64, args: [u64; 3]) -> Request {
    // SMC32 calls pass the function id in the low 32 bits only.
    let function = if function >> FUNCTION_ID_BITS == 0 {
        function
    } else {
        u64::MAX
    };
    // ... and their arguments in W registers (see the module
    // documentation).
    let args = if function & SMC64 == 0 {
        args.map(|a| a & 0xffff_ffff)
    } else {
        args
    };
    let invalid = Request::Invalid {
        id: function,
        function: 0,
    };
    match function {
        SMCCC_VERSION | PSCI_VERSION => Request::Answer(VERSION_1_1),
        PSCI_FEATURES => Request::Answer(if IMPLEMENTED.contains(&args[0]) {
            SUCCESS
        } else {
            NOT_SUPPORTED
        } as u64),
        // Only the calls of this convention itself; none of the firmware
        // workarounds (ARCH_WORKAROUND_1..3) exists here, and
        // NOT_SUPPORTED is the answer the spec gives for those.
        SMCCC_ARCH_FEATURES => {
            Request::Answer(if [SMCCC_VERSION, SMCCC_ARCH_FEATURES].contains(&args[0]) {
                SUCCESS
            } else {
                NOT_SUPPORTED
            } as u64)
        }
        // CPU_ON(target_cpu, entry_point_address, context_id) (DEN0022
        // §5.1.4): the target starts at the entry point with x0 =
        // context_id. The run loop answers INVALID_PARAMETERS for a
        // target the VM does not have, ALREADY_ON for one that runs.
        PSCI_CPU_ON | PSCI_CPU_ON_64 => Request::CpuStart {
            cpu: cpu_index(args[0]),
            entry: GuestPhysAddr::new(args[1]),
            arg: args[2],
        },
        // AFFINITY_INFO(target_affinity, lowest_affinity_level) (DEN0022
        // §5.1.5): from PSCI 1.0 levels above 0 (clusters and up) are
        // optional; we support none, and answer another level
        // INVALID_PARAMETERS, as Arm's reference firmware (TF-A) does.
        // lowest_affinity_level is 32 bits.
        PSCI_AFFINITY_INFO | PSCI_AFFINITY_INFO_64 => match args[1] as u32 {
            0 => Request::CpuStatus {
                cpu: cpu_index(args[0]),
            },
            _ => invalid,
        },
        // CPU_SUSPEND(power_state, entry_point_address, context_id)
        // (DEN0022 §5.1.2); power_state is 32 bits, in the original
        // format.
        PSCI_CPU_SUSPEND | PSCI_CPU_SUSPEND_64 => {
            let power_state = args[0] as u32;
            if power_state & POWER_STATE_RESERVED != 0 {
                invalid
            } else if power_state & POWER_STATE_POWERDOWN == 0 {
                // Standby or retention: the call returns once woken.
                Request::CpuSuspend(Suspend::Retentive)
            } else {
                // Powerdown: once woken the CPU starts at the entry point
                // with x0 = context_id, as after CPU_ON.
                Request::CpuSuspend(Suspend::NonRetentive {
                    entry: GuestPhysAddr::new(args[1]),
                    arg: args[2],
                })
            }
        }
        PSCI_MIGRATE_INFO_TYPE => Request::Answer(NO_TRUSTED_OS),
        PSCI_SYSTEM_OFF => Request::Shutdown(ShutdownReason::Normal),
        // A reboot ends the run with its own message, as SBI SRST's does:
        // this hypervisor runs its one guest once.
        PSCI_SYSTEM_RESET => Request::Shutdown(ShutdownReason::Reboot {
            kind: RebootKind::Cold,
            reason: 0,
        }),
        // Only needed when MIGRATE_INFO_TYPE answers 0 or 1 (DEN0022
        // §5.1.8); ours answers 2.
        PSCI_MIGRATE_INFO_UP_CPU | PSCI_MIGRATE_INFO_UP_CPU_64 => Request::Unsupported {
            id: function,
            function: 0,
        },
        // The calling CPU powers down (DEN0022 §5.1.3; on success the call
        // does not return).
        PSCI_CPU_OFF => Request::CpuStop,
        GA_NULL => Request::Null,
        GA_CONSOLE_PUTC => Request::ConsolePutByte(args[0] as u8),
        GA_CONSOLE_WRITE => Request::ConsoleWrite {
            gpa: GuestPhysAddr::new(args[0]),
            len: args[1],
        },
        GA_SYSTEM_FAILURE => Request::Shutdown(ShutdownReason::Failure(args[0])),
        other => Request::Unsupported {
            id: other,
            function: 0,
        },
    }
}

/// The value the guest finds in `x0`/`RAX` after the call.
pub fn encode(reply: Reply) -> u64 {
    match reply {
        Reply::Value(v) => v,
        Reply::NotSupported => NOT_SUPPORTED as u64,
        Reply::InvalidParam => INVALID_PARAMETERS as u64,
        Reply::InvalidAddress => INVALID_ADDRESS as u64,
        Reply::AlreadyAvailable => ALREADY_ON as u64,
        // AFFINITY_INFO (DEN0022 §5.1.5): ON 0, OFF 1, ON_PENDING 2; a
        // suspended CPU is on.
        Reply::CpuState(CpuPower::On | CpuPower::Suspended) => 0,
        Reply::CpuState(CpuPower::Off) => 1,
        Reply::CpuState(CpuPower::OnPending) => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::immediate_reply;

    #[test]
    fn psci_system_off_is_a_clean_shutdown() {
        assert_eq!(
            decode(0x8400_0008, [0; 3]),
            Request::Shutdown(ShutdownReason::Normal)
        );
    }

    #[test]
    fn versions_and_features() {
        assert_eq!(decode(PSCI_VERSION, [0; 3]), Request::Answer(0x1_0001));
        assert_eq!(decode(SMCCC_VERSION, [0; 3]), Request::Answer(0x1_0001));
        let features = |f| decode(PSCI_FEATURES, [f, 0, 0]);
        // Every PSCI function implemented; for CPU_SUSPEND the 0 means the
        // original power_state format, platform-coordinated mode.
        for f in [
            PSCI_VERSION,
            PSCI_CPU_SUSPEND,
            PSCI_CPU_SUSPEND_64,
            PSCI_CPU_OFF,
            PSCI_CPU_ON,
            PSCI_CPU_ON_64,
            PSCI_AFFINITY_INFO,
            PSCI_AFFINITY_INFO_64,
            PSCI_MIGRATE_INFO_TYPE,
            PSCI_SYSTEM_OFF,
            PSCI_SYSTEM_RESET,
            PSCI_FEATURES,
        ] {
            assert_eq!(features(f), Request::Answer(0), "{f:#x}");
        }
        // MIGRATE, MIGRATE_INFO_UP_CPU, SYSTEM_RESET2, CPU_FREEZE,
        // SYSTEM_SUSPEND.
        for f in [
            0x8400_0005,
            0xC400_0005,
            PSCI_MIGRATE_INFO_UP_CPU,
            PSCI_MIGRATE_INFO_UP_CPU_64,
            0x8400_0012,
            0x8400_000B,
            0xC400_000E,
        ] {
            assert_eq!(features(f), Request::Answer(-1i64 as u64), "{f:#x}");
        }
    }

    #[test]
    fn cpu_on_names_a_vcpu_by_aff0() {
        for on in [PSCI_CPU_ON, PSCI_CPU_ON_64] {
            let start = |target| decode(on, [target, 0x4020_0000, 0x77]);
            let to = |cpu| Request::CpuStart {
                cpu,
                entry: GuestPhysAddr::new(0x4020_0000),
                arg: 0x77,
            };
            assert_eq!(start(BOOT_CPU_AFFINITY), to(0));
            assert_eq!(start(3), to(3));
            assert_eq!(start(7), to(7));
            assert_eq!(start(0xff), to(0xff), "the loop refuses Aff0 >= 8");
            // MPIDR bit 31 (RES1) is not an affinity field.
            assert_eq!(start(1 << 31 | 2), to(2));
            // Aff1 or Aff2 set: no vCPU has it.
            assert_eq!(start(0x100), to(NO_CPU));
            assert_eq!(start(0x101), to(NO_CPU));
            assert_eq!(start(0x1_0000), to(NO_CPU));
        }
        // Aff3 is only in an SMC64 call's target.
        assert_eq!(
            decode(PSCI_CPU_ON_64, [1 << 32 | 1, 0x4020_0000, 0]),
            Request::CpuStart {
                cpu: NO_CPU,
                entry: GuestPhysAddr::new(0x4020_0000),
                arg: 0
            }
        );
    }

    #[test]
    fn smc32_calls_ignore_the_upper_halves_of_their_arguments() {
        assert_eq!(
            decode(
                PSCI_CPU_ON,
                [1 << 32 | 1, 0xdead_0000_4020_0000, 0x1_0000_0005]
            ),
            Request::CpuStart {
                cpu: 1,
                entry: GuestPhysAddr::new(0x4020_0000),
                arg: 5
            }
        );
        assert_eq!(
            decode(PSCI_CPU_ON_64, [1, 0x1_4020_0000, 0x1_0000_0005]),
            Request::CpuStart {
                cpu: 1,
                entry: GuestPhysAddr::new(0x1_4020_0000),
                arg: 0x1_0000_0005
            }
        );
        assert_eq!(
            decode(PSCI_AFFINITY_INFO, [1 << 32 | 2, 1 << 32, 0]),
            Request::CpuStatus { cpu: 2 }
        );
    }

    #[test]
    fn affinity_info_answers_for_one_cpu_at_level_0() {
        for info in [PSCI_AFFINITY_INFO, PSCI_AFFINITY_INFO_64] {
            assert_eq!(decode(info, [0, 0, 0]), Request::CpuStatus { cpu: 0 });
            assert_eq!(decode(info, [5, 0, 0]), Request::CpuStatus { cpu: 5 });
            assert_eq!(
                decode(info, [0x100, 0, 0]),
                Request::CpuStatus { cpu: NO_CPU },
                "Aff1 set"
            );
            // Levels 1..=3 (clusters and up) are not supported.
            for level in [1, 2, 3, 0xffff_ffff] {
                assert_eq!(
                    immediate_reply(&decode(info, [0, level, 0])),
                    Some(Reply::InvalidParam),
                    "level {level}"
                );
            }
        }
        // What the run loop answers, as the guest finds it: ON 0, OFF 1,
        // ON_PENDING 2 (DEN0022 §5.1.5); a suspended CPU is on.
        assert_eq!(encode(Reply::CpuState(CpuPower::On)), 0);
        assert_eq!(encode(Reply::CpuState(CpuPower::Off)), 1);
        assert_eq!(encode(Reply::CpuState(CpuPower::OnPending)), 2);
        assert_eq!(encode(Reply::CpuState(CpuPower::Suspended)), 0);
    }

    #[test]
    fn cpu_suspend_by_state_type() {
        for suspend in [PSCI_CPU_SUSPEND, PSCI_CPU_SUSPEND_64] {
            let call = |power_state| decode(suspend, [power_state, 0x4020_0000, 9]);
            let powerdown = Request::CpuSuspend(Suspend::NonRetentive {
                entry: GuestPhysAddr::new(0x4020_0000),
                arg: 9,
            });
            assert_eq!(call(0), Request::CpuSuspend(Suspend::Retentive), "standby");
            assert_eq!(call(1 << 16), powerdown);
            // StateID and PowerLevel are ours to interpret: ignored.
            assert_eq!(call(0x0300_ffff), Request::CpuSuspend(Suspend::Retentive));
            assert_eq!(call(0x0301_0001), powerdown);
            // power_state has 32 bits.
            assert_eq!(
                call(1 << 32 | 1 << 16),
                powerdown,
                "power_state has 32 bits"
            );
            // Reserved bits (31:26, 23:17), in either state type.
            for reserved in [1 << 17, 1 << 23, 1 << 26, 1 << 31, 1 << 17 | 1 << 16] {
                assert_eq!(
                    immediate_reply(&call(reserved)),
                    Some(Reply::InvalidParam),
                    "{reserved:#x}"
                );
            }
        }
    }

    #[test]
    fn no_trusted_os_to_migrate() {
        assert_eq!(decode(PSCI_MIGRATE_INFO_TYPE, [0; 3]), Request::Answer(2));
        for f in [PSCI_MIGRATE_INFO_UP_CPU, PSCI_MIGRATE_INFO_UP_CPU_64] {
            assert_eq!(
                immediate_reply(&decode(f, [0; 3])),
                Some(Reply::NotSupported),
                "{f:#x}"
            );
        }
    }

    #[test]
    fn arch_features_offers_no_firmware_workaround() {
        let features = |f| decode(SMCCC_ARCH_FEATURES, [f, 0, 0]);
        assert_eq!(features(SMCCC_VERSION), Request::Answer(0));
        assert_eq!(features(SMCCC_ARCH_FEATURES), Request::Answer(0));
        // ARCH_WORKAROUND_1, _2, _3 and ARCH_SOC_ID (DEN0028 §7.4-7.6).
        for w in [0x8000_8000, 0x8000_7FFF, 0x8000_3FFF, 0x8000_0002] {
            assert_eq!(features(w), Request::Answer(-1i64 as u64), "{w:#x}");
        }
    }

    #[test]
    fn console_and_null_calls() {
        assert_eq!(
            decode(GA_CONSOLE_PUTC, [b'z' as u64, 0, 0]),
            Request::ConsolePutByte(b'z')
        );
        assert_eq!(
            decode(GA_CONSOLE_WRITE, [0x4000_1000, 12, 0]),
            Request::ConsoleWrite {
                gpa: GuestPhysAddr::new(0x4000_1000),
                len: 12
            }
        );
        assert_eq!(decode(GA_NULL, [0; 3]), Request::Null);
        assert_eq!(
            decode(GA_SYSTEM_FAILURE, [7, 0, 0]),
            Request::Shutdown(ShutdownReason::Failure(7))
        );
        assert_eq!(
            decode(PSCI_FEATURES, [GA_SYSTEM_FAILURE, 0, 0]),
            Request::Answer(0)
        );
    }

    #[test]
    fn reboot_ends_the_run_and_unknown_calls_answer_not_supported() {
        assert_eq!(
            decode(PSCI_SYSTEM_RESET, [0; 3]),
            Request::Shutdown(ShutdownReason::Reboot {
                kind: RebootKind::Cold,
                reason: 0
            })
        );
        assert_eq!(decode(PSCI_CPU_OFF, [0; 3]), Request::CpuStop);
        // MIGRATE, SYSTEM_RESET2, a SiP call, SYSTEM_OFF with bits above
        // the 32 of a function id.
        for f in [0x8400_0005, 0x8400_0012, 0x8200_0000, 0x1_8400_0008] {
            let req = decode(f, [0; 3]);
            assert_eq!(immediate_reply(&req), Some(Reply::NotSupported), "{f:#x}");
            assert!(!matches!(req, Request::Shutdown(_)));
        }
    }

    #[test]
    fn replies_are_smccc_codes() {
        assert_eq!(encode(Reply::Value(0x1_0001)), 0x1_0001);
        assert_eq!(encode(Reply::NotSupported), u64::MAX);
        assert_eq!(encode(Reply::InvalidParam), -2i64 as u64);
        assert_eq!(encode(Reply::InvalidAddress), -9i64 as u64);
        assert_eq!(encode(Reply::AlreadyAvailable), -4i64 as u64, "ALREADY_ON");
    }
}
