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

use crate::addr::GuestPhysAddr;
use crate::exit::{CpuPower, RebootKind, Reply, Request, ShutdownReason};

/// SMCCC_VERSION (DEN0028 §7): the calling convention's version.
pub const SMCCC_VERSION: u64 = 0x8000_0000;
/// PSCI_VERSION (DEN0022 §5.1.1).
pub const PSCI_VERSION: u64 = 0x8400_0000;
/// CPU_OFF (DEN0022 §5.1.3).
pub const PSCI_CPU_OFF: u64 = 0x8400_0002;
/// CPU_ON, SMC32 and SMC64 (DEN0022 §5.1.4): start another CPU.
pub const PSCI_CPU_ON: u64 = 0x8400_0003;
/// CPU_ON, SMC64.
pub const PSCI_CPU_ON_64: u64 = 0xC400_0003;
/// AFFINITY_INFO, SMC32 (DEN0022 §5.1.5): is a CPU on?
pub const PSCI_AFFINITY_INFO: u64 = 0x8400_0004;
/// AFFINITY_INFO, SMC64.
pub const PSCI_AFFINITY_INFO_64: u64 = 0xC400_0004;
/// MIGRATE_INFO_TYPE (DEN0022 §5.1.7): does a Trusted OS need migrating?
pub const PSCI_MIGRATE_INFO_TYPE: u64 = 0x8400_0006;
/// SYSTEM_OFF (DEN0022 §5.1.9): power the system off.
pub const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
/// SYSTEM_RESET (DEN0022 §5.1.10).
pub const PSCI_SYSTEM_RESET: u64 = 0x8400_0009;
/// PSCI_FEATURES (DEN0022 §5.1.14): is a function implemented?
pub const PSCI_FEATURES: u64 = 0x8400_000A;
/// SMCCC_ARCH_FEATURES (DEN0028 §7.2): is an Arm architecture call
/// (SMCCC_VERSION, a firmware workaround) implemented?
pub const SMCCC_ARCH_FEATURES: u64 = 0x8000_0001;

/// The MPIDR affinity of the guest's one CPU (Aff3..Aff0 all 0), the only
/// target CPU_ON and AFFINITY_INFO accept.
pub const BOOT_CPU_AFFINITY: u64 = 0;
/// MPIDR bits that are affinity fields (Aff3 at 39:32, Aff2..Aff0 at
/// 23:0), the part of a target CPU argument PSCI reads (DEN0022 §5.1.4).
const AFFINITY_MASK: u64 = 0xff_00ff_ffff;
/// AFFINITY_INFO's answer for a CPU that is on (DEN0022 §5.1.5).
const AFFINITY_ON: u64 = 0;
/// MIGRATE_INFO_TYPE's answer 2: "Trusted OS is either not present or does
/// not require migration" (DEN0022 §5.1.7): there is no Trusted OS.
const NO_TRUSTED_OS: u64 = 2;

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

/// The functions the guest may call (what PSCI_FEATURES reports).
const IMPLEMENTED: &[u64] = &[
    SMCCC_VERSION,
    SMCCC_ARCH_FEATURES,
    PSCI_VERSION,
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

/// Decodes a call of `function` with `args`.
pub fn decode(function: u64, args: [u64; 3]) -> Request {
    // SMC32 calls pass the function id in the low 32 bits only.
    let function = if function >> FUNCTION_ID_BITS == 0 {
        function
    } else {
        u64::MAX
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
        // One CPU, and it is running: starting it again is ALREADY_ON,
        // any other target does not exist (INVALID_PARAMETERS).
        PSCI_CPU_ON | PSCI_CPU_ON_64 if args[0] & AFFINITY_MASK == BOOT_CPU_AFFINITY => {
            Request::AlreadyAvailable {
                id: function,
                function: 0,
            }
        }
        PSCI_CPU_ON | PSCI_CPU_ON_64 => Request::Invalid {
            id: function,
            function: 0,
        },
        // Affinity level 0 of the one CPU is on; higher levels and other
        // CPUs are not described to the guest.
        PSCI_AFFINITY_INFO | PSCI_AFFINITY_INFO_64
            if args[0] & AFFINITY_MASK == BOOT_CPU_AFFINITY && args[1] == 0 =>
        {
            Request::Answer(AFFINITY_ON)
        }
        PSCI_AFFINITY_INFO | PSCI_AFFINITY_INFO_64 => Request::Invalid {
            id: function,
            function: 0,
        },
        PSCI_MIGRATE_INFO_TYPE => Request::Answer(NO_TRUSTED_OS),
        PSCI_SYSTEM_OFF => Request::Shutdown(ShutdownReason::Normal),
        // A reboot ends the run with its own message, as SBI SRST's does:
        // this hypervisor runs its one guest once.
        PSCI_SYSTEM_RESET => Request::Shutdown(ShutdownReason::Reboot {
            kind: RebootKind::Cold,
            reason: 0,
        }),
        // The calling CPU powers down (DEN0022 §5.1.3; on success the call
        // does not return). With one CPU no other can turn it on again,
        // which the run loop reports: it is not a power-off.
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
        assert_eq!(
            decode(PSCI_FEATURES, [PSCI_SYSTEM_OFF, 0, 0]),
            Request::Answer(0)
        );
        assert_eq!(
            decode(PSCI_FEATURES, [0x8400_0001, 0, 0]),
            Request::Answer(-1i64 as u64),
            "CPU_SUSPEND is not offered"
        );
        assert_eq!(
            decode(PSCI_FEATURES, [PSCI_CPU_ON, 0, 0]),
            Request::Answer(0)
        );
    }

    #[test]
    fn the_one_cpu_is_on_and_no_other_exists() {
        let reply = |f, args| immediate_reply(&decode(f, args));
        for on in [PSCI_CPU_ON, PSCI_CPU_ON_64] {
            assert_eq!(
                reply(on, [0, 0x4020_0000, 0]),
                Some(Reply::AlreadyAvailable)
            );
            // MPIDR bit 31 (RES1) is not an affinity field.
            assert_eq!(reply(on, [1 << 31, 0, 0]), Some(Reply::AlreadyAvailable));
            assert_eq!(reply(on, [1, 0x4020_0000, 0]), Some(Reply::InvalidParam));
            assert_eq!(reply(on, [1 << 32, 0, 0]), Some(Reply::InvalidParam));
        }
        for info in [PSCI_AFFINITY_INFO, PSCI_AFFINITY_INFO_64] {
            assert_eq!(reply(info, [0, 0, 0]), Some(Reply::Value(0)));
            assert_eq!(reply(info, [0x100, 0, 0]), Some(Reply::InvalidParam));
            assert_eq!(reply(info, [0, 1, 0]), Some(Reply::InvalidParam));
        }
        assert_eq!(reply(PSCI_MIGRATE_INFO_TYPE, [0; 3]), Some(Reply::Value(2)));
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
        for f in [0x8400_0001, 0x8400_0012, 0x8200_0000, 0x1_8400_0008] {
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
        assert_eq!(encode(Reply::AlreadyAvailable), -4i64 as u64);
    }
}
