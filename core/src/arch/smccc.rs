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
use crate::exit::{RebootKind, Reply, Request, ShutdownReason};

/// SMCCC_VERSION (DEN0028 §7): the calling convention's version.
pub const SMCCC_VERSION: u64 = 0x8000_0000;
/// PSCI_VERSION (DEN0022 §5.1.1).
pub const PSCI_VERSION: u64 = 0x8400_0000;
/// CPU_OFF (DEN0022 §5.1.3).
pub const PSCI_CPU_OFF: u64 = 0x8400_0002;
/// SYSTEM_OFF (DEN0022 §5.1.9): power the system off.
pub const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
/// SYSTEM_RESET (DEN0022 §5.1.10).
pub const PSCI_SYSTEM_RESET: u64 = 0x8400_0009;
/// PSCI_FEATURES (DEN0022 §5.1.14): is a function implemented?
pub const PSCI_FEATURES: u64 = 0x8400_000A;

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
    PSCI_VERSION,
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
        PSCI_SYSTEM_OFF => Request::Shutdown(ShutdownReason::Normal),
        // A reboot ends the run with its own message, as SBI SRST's does:
        // this hypervisor runs its one guest once.
        PSCI_SYSTEM_RESET => Request::Shutdown(ShutdownReason::Reboot {
            kind: RebootKind::Cold,
            reason: 0,
        }),
        PSCI_CPU_OFF => Request::Refused {
            id: function,
            function: 0,
        },
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
            decode(PSCI_FEATURES, [0x8400_0003, 0, 0]),
            Request::Answer(-1i64 as u64),
            "CPU_ON is not offered"
        );
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
        for f in [
            PSCI_CPU_OFF,
            0x8400_0003,
            0xC400_0003,
            0x8200_0000,
            0x1_8400_0008,
        ] {
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
