//! The SBI the hypervisor implements for a RISC-V guest: decoding an
//! `ecall` from VS-mode into a [`Request`], and encoding the [`Reply`] back
//! into `a0`/`a1`.
//!
//! Implemented: Base (versions, probe, machine ids), legacy console,
//! timer and shutdown, DBCN (debug console), TIME and SRST (shutdown only),
//! plus one firmware-specific extension of ours with a null call used to
//! measure the exit round trip. Everything else answers
//! `SBI_ERR_NOT_SUPPORTED`; nothing is forwarded to the real firmware.
//! Constants come from `sbi-spec`; chapters are those of the RISC-V SBI
//! specification v2.0: "Binary Encoding" (§3), "Base Extension" (§4),
//! "Legacy Extensions" (§5), "Timer Extension" (§6), "System Reset
//! Extension" (§10), "Debug Console Extension" (§12) and "Firmware Specific
//! Extension Space" (§19).

use crate::addr::GuestPhysAddr;
use crate::exit::{Reply, Request, ShutdownReason};
use sbi_spec::{base, binary, dbcn, legacy, srst, time};

/// SBI specification version we implement (2.0: DBCN and SRST exist).
pub const SPEC_VERSION: u64 = 2 << 24;
/// Our implementation id. Not in the SBI registry: chosen by this project
/// ("GA"), distinct from every registered id.
pub const IMPL_ID: u64 = 0x4741;
/// Implementation version: this crate's major/minor.
pub const IMPL_VERSION: u64 = 0x0001_0000;
/// Our firmware-specific extension (SBI v2.0 §19 reserves
/// 0x0A00_0000..=0x0AFF_FFFF for the firmware, which to a guest is us).
pub const EID_GUESTASPACE: u64 = 0x0A00_4741;
/// Function of [`EID_GUESTASPACE`] that does nothing and returns 0.
pub const FID_NULL: u64 = 0;

/// Extension ids below this are the legacy extensions (SBI v2.0 §5, EIDs
/// 0x00-0x0F), which return one value in `a0` instead of `(error, value)`.
pub const LEGACY_EID_END: u64 = 0x10;

/// Extensions `probe_extension` reports as available.
const AVAILABLE: &[u64] = &[
    legacy::LEGACY_SET_TIMER as u64,
    legacy::LEGACY_CONSOLE_PUTCHAR as u64,
    legacy::LEGACY_CONSOLE_GETCHAR as u64,
    legacy::LEGACY_SHUTDOWN as u64,
    base::EID_BASE as u64,
    time::EID_TIME as u64,
    srst::EID_SRST as u64,
    dbcn::EID_DBCN as u64,
    EID_GUESTASPACE,
];

/// Whether the guest can use extension `eid`.
pub fn is_available(eid: u64) -> bool {
    AVAILABLE.contains(&eid)
}

/// Decodes an SBI call: `eid` from `a7`, `fid` from `a6`, `args` from
/// `a0..a5`.
pub fn decode(eid: u64, fid: u64, args: [u64; 6]) -> Request {
    let unsupported = Request::Unsupported {
        id: eid,
        function: fid,
    };
    match eid as usize {
        legacy::LEGACY_SET_TIMER => Request::SetTimer { deadline: args[0] },
        legacy::LEGACY_CONSOLE_PUTCHAR => Request::ConsolePutByte(args[0] as u8),
        // Legacy getchar answers -1: no input is ever pending.
        legacy::LEGACY_CONSOLE_GETCHAR => Request::Answer(u64::MAX),
        legacy::LEGACY_SHUTDOWN => Request::Shutdown(ShutdownReason::Normal),
        base::EID_BASE => match fid as usize {
            base::GET_SBI_SPEC_VERSION => Request::Answer(SPEC_VERSION),
            base::GET_SBI_IMPL_ID => Request::Answer(IMPL_ID),
            base::GET_SBI_IMPL_VERSION => Request::Answer(IMPL_VERSION),
            base::PROBE_EXTENSION => Request::Answer(is_available(args[0]) as u64),
            // The guest sees no particular machine.
            base::GET_MVENDORID | base::GET_MARCHID | base::GET_MIMPID => Request::Answer(0),
            _ => unsupported,
        },
        time::EID_TIME => match fid as usize {
            time::SET_TIMER => Request::SetTimer { deadline: args[0] },
            _ => unsupported,
        },
        srst::EID_SRST => match fid as usize {
            srst::SYSTEM_RESET => match args[0] as u32 {
                srst::RESET_TYPE_SHUTDOWN => Request::Shutdown(match args[1] as u32 {
                    srst::RESET_REASON_NO_REASON => ShutdownReason::Normal,
                    other => ShutdownReason::Failure(other as u64),
                }),
                // A one-shot VM cannot reboot.
                srst::RESET_TYPE_COLD_REBOOT | srst::RESET_TYPE_WARM_REBOOT => Request::Refused {
                    id: eid,
                    function: fid,
                },
                _ => Request::Invalid {
                    id: eid,
                    function: fid,
                },
            },
            _ => unsupported,
        },
        dbcn::EID_DBCN => match fid as usize {
            // On RV64 the high half of the address (argument 2) must be
            // zero (SBI v2.0 §12.1).
            dbcn::CONSOLE_WRITE if args[2] == 0 => Request::ConsoleWrite {
                gpa: GuestPhysAddr::new(args[1]),
                len: args[0],
            },
            dbcn::CONSOLE_WRITE => Request::Invalid {
                id: eid,
                function: fid,
            },
            dbcn::CONSOLE_READ => Request::ConsoleRead,
            dbcn::CONSOLE_WRITE_BYTE => Request::ConsolePutByte(args[0] as u8),
            _ => unsupported,
        },
        _ if eid == EID_GUESTASPACE && fid == FID_NULL => Request::Null,
        _ => unsupported,
    }
}

/// `a0` and, for non-legacy extensions, `a1` after the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SbiReturn {
    /// The error code, or the value of a legacy call.
    pub a0: u64,
    /// The value, for every extension but the legacy ones.
    pub a1: Option<u64>,
}

/// Encodes `reply` for a call to extension `eid`. Legacy extensions
/// (EID < [`LEGACY_EID_END`]) return a single value in `a0`; the others return
/// `(error, value)` in `(a0, a1)`.
pub fn encode(eid: u64, reply: Reply) -> SbiReturn {
    let (error, value) = match reply {
        Reply::Value(v) => (binary::RET_SUCCESS as u64, v),
        Reply::NotSupported => (binary::RET_ERR_NOT_SUPPORTED as u64, 0),
        Reply::InvalidParam => (binary::RET_ERR_INVALID_PARAM as u64, 0),
        Reply::InvalidAddress => (binary::RET_ERR_INVALID_ADDRESS as u64, 0),
    };
    if eid < LEGACY_EID_END {
        SbiReturn {
            a0: if error == 0 { value } else { error },
            a1: None,
        }
    } else {
        SbiReturn {
            a0: error,
            a1: Some(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::immediate_reply;

    const NO_ARGS: [u64; 6] = [0; 6];
    const EID_SRST: u64 = 0x5352_5354;
    const EID_DBCN: u64 = 0x4442_434E;
    const EID_TIME: u64 = 0x5449_4D45;

    fn args(a0: u64, a1: u64, a2: u64) -> [u64; 6] {
        [a0, a1, a2, 0, 0, 0]
    }

    #[test]
    fn extension_ids_match_the_spec_strings() {
        assert_eq!(srst::EID_SRST as u64, EID_SRST);
        assert_eq!(dbcn::EID_DBCN as u64, EID_DBCN);
        assert_eq!(time::EID_TIME as u64, EID_TIME);
    }

    #[test]
    fn base_extension_answers() {
        assert_eq!(decode(0x10, 0, NO_ARGS), Request::Answer(0x0200_0000));
        assert_eq!(decode(0x10, 1, NO_ARGS), Request::Answer(IMPL_ID));
        assert_eq!(decode(0x10, 2, NO_ARGS), Request::Answer(IMPL_VERSION));
        assert_eq!(decode(0x10, 3, args(EID_SRST, 0, 0)), Request::Answer(1));
        assert_eq!(decode(0x10, 3, args(EID_DBCN, 0, 0)), Request::Answer(1));
        assert_eq!(
            decode(0x10, 3, args(0x48534D, 0, 0)),
            Request::Answer(0),
            "HSM is not offered"
        );
        assert_eq!(
            decode(0x10, 3, args(0x735049, 0, 0)),
            Request::Answer(0),
            "IPI is not offered"
        );
        assert_eq!(decode(0x10, 4, NO_ARGS), Request::Answer(0));
        assert_eq!(
            decode(0x10, 7, NO_ARGS),
            Request::Unsupported {
                id: 0x10,
                function: 7
            }
        );
    }

    #[test]
    fn console_calls() {
        assert_eq!(
            decode(1, 0, args(b'A' as u64, 0, 0)),
            Request::ConsolePutByte(b'A')
        );
        assert_eq!(
            decode(EID_DBCN, 2, args(0x10a, 0, 0)),
            Request::ConsolePutByte(0x0a)
        );
        assert_eq!(
            decode(EID_DBCN, 0, args(12, 0x8020_1000, 0)),
            Request::ConsoleWrite {
                gpa: GuestPhysAddr::new(0x8020_1000),
                len: 12
            }
        );
        assert_eq!(
            immediate_reply(&decode(EID_DBCN, 0, args(12, 0, 1))),
            Some(Reply::InvalidParam)
        );
        assert_eq!(
            decode(EID_DBCN, 1, args(4, 0x8000_0000, 0)),
            Request::ConsoleRead
        );
        assert_eq!(decode(2, 0, NO_ARGS), Request::Answer(u64::MAX));
    }

    #[test]
    fn timer_calls() {
        assert_eq!(
            decode(EID_TIME, 0, args(123_456, 0, 0)),
            Request::SetTimer { deadline: 123_456 }
        );
        assert_eq!(
            decode(0, 0, args(u64::MAX, 0, 0)),
            Request::SetTimer { deadline: u64::MAX }
        );
        assert_eq!(
            decode(EID_TIME, 1, NO_ARGS),
            Request::Unsupported {
                id: EID_TIME,
                function: 1
            }
        );
    }

    #[test]
    fn system_reset() {
        assert_eq!(
            decode(EID_SRST, 0, args(0, 0, 0)),
            Request::Shutdown(ShutdownReason::Normal)
        );
        assert_eq!(
            decode(EID_SRST, 0, args(0, 1, 0)),
            Request::Shutdown(ShutdownReason::Failure(1))
        );
        assert_eq!(
            decode(EID_SRST, 0, args(1, 0, 0)),
            Request::Refused {
                id: EID_SRST,
                function: 0
            }
        );
        assert_eq!(
            immediate_reply(&decode(EID_SRST, 0, args(2, 0, 0))),
            Some(Reply::NotSupported)
        );
        assert_eq!(
            immediate_reply(&decode(EID_SRST, 0, args(7, 0, 0))),
            Some(Reply::InvalidParam)
        );
        assert_eq!(
            decode(8, 0, NO_ARGS),
            Request::Shutdown(ShutdownReason::Normal),
            "legacy shutdown"
        );
    }

    #[test]
    fn unknown_calls_are_not_supported_and_never_forwarded() {
        for (eid, fid) in [
            (0x48534D, 0),
            (0x735049, 0),
            (0x52464E43, 0),
            (0x0A00_4741, 1),
            (0x0900_0000, 0),
            (5, 0),
        ] {
            let req = decode(eid, fid, NO_ARGS);
            assert_eq!(
                req,
                Request::Unsupported {
                    id: eid,
                    function: fid
                }
            );
            assert_eq!(immediate_reply(&req), Some(Reply::NotSupported));
        }
        assert_eq!(decode(EID_GUESTASPACE, FID_NULL, NO_ARGS), Request::Null);
    }

    #[test]
    fn reply_encoding() {
        assert_eq!(
            encode(0x10, Reply::Value(5)),
            SbiReturn { a0: 0, a1: Some(5) }
        );
        assert_eq!(
            encode(EID_SRST, Reply::NotSupported),
            SbiReturn {
                a0: -2i64 as u64,
                a1: Some(0)
            }
        );
        assert_eq!(
            encode(EID_DBCN, Reply::InvalidParam),
            SbiReturn {
                a0: -3i64 as u64,
                a1: Some(0)
            }
        );
        assert_eq!(
            encode(EID_DBCN, Reply::InvalidAddress),
            SbiReturn {
                a0: -5i64 as u64,
                a1: Some(0)
            }
        );
        assert_eq!(
            encode(2, Reply::Value(u64::MAX)),
            SbiReturn {
                a0: u64::MAX,
                a1: None
            },
            "legacy: a0 only"
        );
        assert_eq!(encode(1, Reply::Value(0)), SbiReturn { a0: 0, a1: None });
        assert_eq!(
            encode(5, Reply::NotSupported),
            SbiReturn {
                a0: -2i64 as u64,
                a1: None
            }
        );
    }
}
