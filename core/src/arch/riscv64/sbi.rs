//! The SBI the hypervisor implements for a RISC-V guest: decoding an
//! `ecall` from VS-mode into a [`Request`], and encoding the [`Reply`] back
//! into `a0`/`a1`. Decoding is a pure function of the registers: it knows
//! no VM, so hart ids are passed on as vCPU indices (hart id `i` is vCPU
//! `i`) and the run loop refuses those the VM does not have.
//!
//! Chapters are those of the RISC-V SBI specification v2.0; constants come
//! from `sbi-spec`. Implemented, each answering as its chapter says:
//!
//! * Base (§4): spec version 2.0, our implementation id and version,
//!   `probe_extension` (1 for every extension below), machine ids 0.
//! * Legacy (§5, EIDs 0x00-0x08): timer, console put/get, IPIs, remote
//!   fences, shutdown. The legacy hart mask is a pointer to a bit vector in
//!   guest-virtual memory; it is not read, and every legacy IPI and fence
//!   targets the calling hart alone ([`Request::SelfIpi`],
//!   [`Request::LocalFence`]). A guest with several harts that uses them
//!   to reach another hart is not served: the legacy extensions are
//!   deprecated (§5), and guests use IPI and RFENCE below when
//!   `probe_extension` reports them, as it does.
//! * TIME (§6).
//! * IPI (§7) and RFENCE (§8): the hart mask (§3.1, [`hart_mask`]) is
//!   decoded into a [`CpuSet`]: [`Request::SendIpi`] and
//!   [`Request::RemoteFence`]. A mask naming no hart succeeds and does
//!   nothing; one naming a hart id of 64 or more is INVALID_PARAM. The
//!   calling hart serves a set that is itself alone
//!   ([`super::hart::is_local`]); any other set is the run loop's. The
//!   HFENCE functions are only for harts with the hypervisor extension,
//!   which the guest's harts do not have: they answer NOT_SUPPORTED.
//! * HSM (§9): `hart_start`, `hart_stop`, `hart_get_status` and the two
//!   default `hart_suspend` types, for the run loop
//!   ([`Request::CpuStart`], [`Request::CpuStop`], [`Request::CpuStatus`],
//!   [`Request::CpuSuspend`]).
//! * SRST (§10): shutdown, and reboots reported to the run loop (which
//!   ends the run: there is no second boot).
//! * DBCN (§12): console write, read and write-byte.
//! * Our firmware-specific extension (§19) with a null call, used to
//!   measure the exit round trip.
//!
//! Everything else answers `SBI_ERR_NOT_SUPPORTED`; nothing is forwarded to
//! the real firmware.

use crate::addr::{GuestPhysAddr, GuestVirtAddr};
use crate::exit::{
    CpuPower, CpuSet, Fence, RebootKind, Reply, Request, ShutdownReason, Suspend, VirtRange,
};
use sbi_spec::{base, binary, dbcn, hsm, legacy, rfnc, spi, srst, time};

/// SBI specification version we implement: 2.0 (major in bits 30..24,
/// minor in bits 23..0).
pub const SPEC_VERSION: u64 = 2 << 24;

/// Our implementation id (`sbi_get_impl_id`). The SBI registry hands out
/// ids in sequence from 0 (BBL) and v2.0 lists 0 to 11; it sets no range
/// aside for experiments. 0x4741 ("GA") is not registered and lies far
/// beyond the ids handed out so far, so no guest mistakes us for a
/// registered implementation and applies its quirks.
pub const IMPL_ID: u64 = 0x4741;

/// Parses a decimal version component at compile time.
const fn version_part(s: &str) -> u64 {
    let bytes = s.as_bytes();
    let mut value = 0;
    let mut i = 0;
    while i < bytes.len() {
        assert!(bytes[i].is_ascii_digit(), "a version part is decimal");
        value = value * 10 + (bytes[i] - b'0') as u64;
        i += 1;
    }
    value
}

/// Our implementation version (`sbi_get_impl_version`, whose encoding the
/// spec leaves to the implementation): this crate's version, major in bits
/// 63..32, minor in bits 31..16, patch in bits 15..0 (0.1.0 is 0x1_0000).
pub const IMPL_VERSION: u64 = {
    let minor = version_part(env!("CARGO_PKG_VERSION_MINOR"));
    let patch = version_part(env!("CARGO_PKG_VERSION_PATCH"));
    assert!(minor <= 0xffff && patch <= 0xffff);
    (version_part(env!("CARGO_PKG_VERSION_MAJOR")) << 32) | (minor << 16) | patch
};

/// Our firmware-specific extension (SBI v2.0 §19 reserves
/// 0x0A00_0000..=0x0AFF_FFFF for the firmware, which to a guest is us).
pub const EID_GUESTASPACE: u64 = 0x0A00_4741;
/// Function of [`EID_GUESTASPACE`] that does nothing and returns 0.
pub const FID_NULL: u64 = 0;

/// Extension ids below this are the legacy extensions (SBI v2.0 §5, EIDs
/// 0x00-0x0F), which return one value in `a0` instead of `(error, value)`.
pub const LEGACY_EID_END: u64 = 0x10;

/// Extensions `probe_extension` reports as available: every legacy
/// extension (0x00-0x08) and every extension of v0.2 and later that
/// `decode` implements.
const AVAILABLE: &[u64] = &[
    legacy::LEGACY_SET_TIMER as u64,
    legacy::LEGACY_CONSOLE_PUTCHAR as u64,
    legacy::LEGACY_CONSOLE_GETCHAR as u64,
    legacy::LEGACY_CLEAR_IPI as u64,
    legacy::LEGACY_SEND_IPI as u64,
    legacy::LEGACY_REMOTE_FENCE_I as u64,
    legacy::LEGACY_REMOTE_SFENCE_VMA as u64,
    legacy::LEGACY_REMOTE_SFENCE_VMA_ASID as u64,
    legacy::LEGACY_SHUTDOWN as u64,
    base::EID_BASE as u64,
    time::EID_TIME as u64,
    spi::EID_SPI as u64,
    rfnc::EID_RFNC as u64,
    hsm::EID_HSM as u64,
    srst::EID_SRST as u64,
    dbcn::EID_DBCN as u64,
    EID_GUESTASPACE,
];

/// Whether the guest can use extension `eid`.
pub fn is_available(eid: u64) -> bool {
    AVAILABLE.contains(&eid)
}

/// What a hart mask naming every hart (`hart_mask_base` = -1) decodes
/// to: every vCPU a VM can have ([`CpuSet::MAX_CPUS`]). The run loop
/// intersects it with the VM's vCPUs.
pub const ALL_HARTS: CpuSet = CpuSet((1 << CpuSet::MAX_CPUS) - 1);

/// The harts an SBI hart mask names, as vCPU indices (SBI v2.0 §3.1: bit
/// `i` of `mask` names hart `base + i`; `base` = -1 names every hart
/// available, `mask` ignored): [`ALL_HARTS`] for every hart, an empty set
/// for a zero mask, and `None` when a hart id of 64 or more is named
/// (`base + i` overflows or is at least 64), which no [`CpuSet`] holds
/// and no VM has.
///
/// Hart ids below 64 that the VM lacks stay in the set, for the run loop
/// to refuse (INVALID_PARAM, §7.1, §8). One set is ambiguous: an explicit
/// mask naming exactly harts 0..=7 is [`ALL_HARTS`], so in a VM of fewer
/// harts it reaches those the VM has rather than being refused.
pub fn hart_mask(mask: u64, base: u64) -> Option<CpuSet> {
    if base == u64::MAX {
        return Some(ALL_HARTS);
    }
    if mask == 0 {
        return Some(CpuSet(0));
    }
    // The highest hart named is `base + top`; it must be below 64, which
    // also keeps the shift below 64.
    let top = 63 - u64::from(mask.leading_zeros());
    (base <= 63 - top).then(|| CpuSet(mask << base))
}

/// The address range of a remote SFENCE.VMA (SBI v2.0 §5.7, §8): the
/// whole address space (`None`) when `start` and `size` are both 0 or
/// `size` is 2^XLEN-1, else `[start, start + size)`, which must not wrap.
fn fence_range(start: u64, size: u64) -> Result<Option<VirtRange>, BadRange> {
    if (start == 0 && size == 0) || size == u64::MAX {
        Ok(None)
    } else if start.checked_add(size).is_none() {
        Err(BadRange)
    } else {
        Ok(Some(VirtRange {
            start: GuestVirtAddr::new(start),
            size,
        }))
    }
}

/// A fence range that wraps around the address space.
struct BadRange;

/// Decodes an SBI call: `eid` from `a7`, `fid` from `a6`, `args` from
/// `a0..a5`.
pub fn decode(eid: u64, fid: u64, args: [u64; 6]) -> Request {
    let unsupported = Request::Unsupported {
        id: eid,
        function: fid,
    };
    let refused = Request::Refused {
        id: eid,
        function: fid,
    };
    let invalid = Request::Invalid {
        id: eid,
        function: fid,
    };
    // The TLB fence of a remote SFENCE.VMA over `start..+size`,
    // restricted to `asid` if given; INVALID_ADDRESS for a range that
    // wraps.
    let tlb_fence = |start: u64, size: u64, asid: Option<u64>| match fence_range(start, size) {
        Ok(range) => Ok(Fence::GuestTlb {
            // ASIDs are at most 16 bits on RV64 (ASIDMAX); the bits
            // above are reserved and must be passed as zero.
            asid: asid.map(|asid| asid as u16),
            range,
        }),
        Err(BadRange) => Err(Request::BadAddress {
            id: eid,
            function: fid,
        }),
    };
    // A legacy fence: on the calling hart (see the module documentation).
    let legacy_fence = |fence: Result<Fence, Request>| match fence {
        Ok(fence) => Request::LocalFence(fence),
        Err(bad) => bad,
    };
    match eid as usize {
        legacy::LEGACY_SET_TIMER => Request::SetTimer { deadline: args[0] },
        legacy::LEGACY_CONSOLE_PUTCHAR => Request::ConsolePutByte(args[0] as u8),
        legacy::LEGACY_CONSOLE_GETCHAR => Request::ConsoleGetByte,
        legacy::LEGACY_CLEAR_IPI => Request::ClearIpi,
        // The legacy hart mask (argument 0) points into guest memory and
        // is not read: legacy IPIs and fences target the calling hart (see
        // the module documentation).
        legacy::LEGACY_SEND_IPI => Request::SelfIpi,
        legacy::LEGACY_REMOTE_FENCE_I => Request::LocalFence(Fence::Instruction),
        legacy::LEGACY_REMOTE_SFENCE_VMA => legacy_fence(tlb_fence(args[1], args[2], None)),
        legacy::LEGACY_REMOTE_SFENCE_VMA_ASID => {
            legacy_fence(tlb_fence(args[1], args[2], Some(args[3])))
        }
        legacy::LEGACY_SHUTDOWN => Request::Shutdown(ShutdownReason::Normal),
        base::EID_BASE => match fid as usize {
            base::GET_SBI_SPEC_VERSION => Request::Answer(SPEC_VERSION),
            base::GET_SBI_IMPL_ID => Request::Answer(IMPL_ID),
            base::GET_SBI_IMPL_VERSION => Request::Answer(IMPL_VERSION),
            base::PROBE_EXTENSION => Request::Answer(is_available(args[0]) as u64),
            // 0 is always a legal value of these CSRs (SBI v2.0 §4.5-4.7):
            // the guest sees no particular machine, and none of the host's
            // errata workarounds apply to it.
            base::GET_MVENDORID | base::GET_MARCHID | base::GET_MIMPID => Request::Answer(0),
            _ => unsupported,
        },
        time::EID_TIME => match fid as usize {
            time::SET_TIMER => Request::SetTimer { deadline: args[0] },
            _ => unsupported,
        },
        // sbi_send_ipi(hart_mask, hart_mask_base) (§7.1).
        spi::EID_SPI => match fid as usize {
            spi::SEND_IPI => match hart_mask(args[0], args[1]) {
                // Nobody to interrupt.
                Some(CpuSet(0)) => Request::Answer(0),
                Some(set) => Request::SendIpi(set),
                None => invalid,
            },
            _ => unsupported,
        },
        // Every function takes (hart_mask, hart_mask_base, ...) (§8).
        rfnc::EID_RFNC => {
            let on = |fence: Result<Fence, Request>| match (fence, hart_mask(args[0], args[1])) {
                (Err(bad), _) => bad,
                (Ok(_), None) => invalid,
                (Ok(_), Some(CpuSet(0))) => Request::Answer(0),
                (Ok(fence), Some(cpus)) => Request::RemoteFence { cpus, fence },
            };
            match fid as usize {
                rfnc::REMOTE_FENCE_I => on(Ok(Fence::Instruction)),
                rfnc::REMOTE_SFENCE_VMA => on(tlb_fence(args[2], args[3], None)),
                rfnc::REMOTE_SFENCE_VMA_ASID => on(tlb_fence(args[2], args[3], Some(args[4]))),
                // Only valid for harts with the hypervisor extension; the
                // guest's harts have none.
                rfnc::REMOTE_HFENCE_GVMA_VMID
                | rfnc::REMOTE_HFENCE_GVMA
                | rfnc::REMOTE_HFENCE_VVMA_ASID
                | rfnc::REMOTE_HFENCE_VVMA => refused,
                _ => unsupported,
            }
        }
        hsm::EID_HSM => match fid as usize {
            // sbi_hart_start(hartid, start_addr, opaque) (§9.1): the hart
            // starts at start_addr, MMU off, with a0 = hartid and
            // a1 = opaque. Any hart id is passed on: the run loop answers
            // INVALID_PARAM for one the VM does not have.
            hsm::HART_START => Request::CpuStart {
                cpu: args[0],
                entry: GuestPhysAddr::new(args[1]),
                arg: args[2],
            },
            // sbi_hart_stop() (§9.2): the calling hart stops.
            hsm::HART_STOP => Request::CpuStop,
            // sbi_hart_get_status(hartid) (§9.3), answered with
            // [`Reply::CpuState`].
            hsm::HART_GET_STATUS => Request::CpuStatus { cpu: args[0] },
            // sbi_hart_suspend(suspend_type, resume_addr, opaque) (§9.4);
            // suspend_type has 32 bits.
            hsm::HART_SUSPEND => match args[0] as u32 {
                // Default retentive suspend: the call returns once the
                // hart is woken.
                hsm::suspend_type::RETENTIVE => Request::CpuSuspend(Suspend::Retentive),
                // Default non-retentive suspend: once woken the hart
                // starts at resume_addr, as a started hart would, with
                // a1 = opaque.
                hsm::suspend_type::NON_RETENTIVE => Request::CpuSuspend(Suspend::NonRetentive {
                    entry: GuestPhysAddr::new(args[1]),
                    arg: args[2],
                }),
                // Reserved (0x0000_0001..=0x0FFF_FFFF,
                // 0x8000_0001..=0x8FFF_FFFF) or platform-specific
                // (0x1000_0000..=0x7FFF_FFFF, 0x9000_0000..=0xFFFF_FFFF),
                // of which we define none: INVALID_PARAM (§9.4, Table
                // "HSM Hart Suspend Types").
                _ => invalid,
            },
            _ => unsupported,
        },
        srst::EID_SRST => match fid as usize {
            srst::SYSTEM_RESET => {
                // Both parameters are 32 bits wide.
                let reason = match args[1] as u32 {
                    srst::RESET_REASON_NO_REASON => srst::RESET_REASON_NO_REASON,
                    srst::RESET_REASON_SYSTEM_FAILURE => srst::RESET_REASON_SYSTEM_FAILURE,
                    // Reserved, SBI-implementation-specific or
                    // vendor-specific: we implement none of them.
                    _ => return invalid,
                };
                let reboot = |kind| {
                    Request::Shutdown(ShutdownReason::Reboot {
                        kind,
                        reason: u64::from(reason),
                    })
                };
                match args[0] as u32 {
                    srst::RESET_TYPE_SHUTDOWN if reason == srst::RESET_REASON_NO_REASON => {
                        Request::Shutdown(ShutdownReason::Normal)
                    }
                    srst::RESET_TYPE_SHUTDOWN => {
                        Request::Shutdown(ShutdownReason::Failure(u64::from(reason)))
                    }
                    srst::RESET_TYPE_COLD_REBOOT => reboot(RebootKind::Cold),
                    srst::RESET_TYPE_WARM_REBOOT => reboot(RebootKind::Warm),
                    // Reserved, or vendor-specific and not implemented.
                    _ => invalid,
                }
            }
            _ => unsupported,
        },
        dbcn::EID_DBCN => match fid as usize {
            // On RV64 the high half of the address (argument 2) must be
            // zero (SBI v2.0 §12.1, §12.2).
            dbcn::CONSOLE_WRITE | dbcn::CONSOLE_READ if args[2] != 0 => invalid,
            dbcn::CONSOLE_WRITE => Request::ConsoleWrite {
                gpa: GuestPhysAddr::new(args[1]),
                len: args[0],
            },
            dbcn::CONSOLE_READ => Request::ConsoleRead {
                gpa: GuestPhysAddr::new(args[1]),
                len: args[0],
            },
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
/// (EID < [`LEGACY_EID_END`]) return a single value in `a0`: the value on
/// success, else the (negative) error code; the others return
/// `(error, value)` in `(a0, a1)`.
pub fn encode(eid: u64, reply: Reply) -> SbiReturn {
    let (error, value) = match reply {
        Reply::Value(v) => (binary::RET_SUCCESS as u64, v),
        Reply::NotSupported => (binary::RET_ERR_NOT_SUPPORTED as u64, 0),
        Reply::InvalidParam => (binary::RET_ERR_INVALID_PARAM as u64, 0),
        Reply::InvalidAddress => (binary::RET_ERR_INVALID_ADDRESS as u64, 0),
        Reply::AlreadyAvailable => (binary::RET_ERR_ALREADY_AVAILABLE as u64, 0),
        // HSM hart states (SBI v2.0 §9, Table "HSM Hart States"):
        // STARTED 0, STOPPED 1, START_PENDING 2, SUSPENDED 4.
        Reply::CpuState(state) => (
            binary::RET_SUCCESS as u64,
            match state {
                CpuPower::On => hsm::hart_state::STARTED,
                CpuPower::Off => hsm::hart_state::STOPPED,
                CpuPower::OnPending => hsm::hart_state::START_PENDING,
                CpuPower::Suspended => hsm::hart_state::SUSPENDED,
            } as u64,
        ),
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
    // Extension ids spelled out as in the spec, to check sbi-spec's.
    const EID_BASE: u64 = 0x10;
    const EID_TIME: u64 = 0x5449_4D45;
    const EID_SPI: u64 = 0x73_5049;
    const EID_RFNC: u64 = 0x5246_4E43;
    const EID_HSM: u64 = 0x48_534D;
    const EID_SRST: u64 = 0x5352_5354;
    const EID_DBCN: u64 = 0x4442_434E;
    /// -1 as the guest reads it from a register.
    const ALL_HARTS_BASE: u64 = u64::MAX;

    const SUCCESS: u64 = 0;
    const NOT_SUPPORTED: u64 = -2i64 as u64;
    const INVALID_PARAM: u64 = -3i64 as u64;
    const INVALID_ADDRESS: u64 = -5i64 as u64;
    const ALREADY_AVAILABLE: u64 = -6i64 as u64;

    fn args(a: &[u64]) -> [u64; 6] {
        let mut all = [0; 6];
        all[..a.len()].copy_from_slice(a);
        all
    }

    /// What the guest finds in `a0`/`a1` after a call that needs nothing
    /// from the run loop.
    fn call(eid: u64, fid: u64, a: &[u64]) -> SbiReturn {
        let req = decode(eid, fid, args(a));
        let reply = immediate_reply(&req)
            .unwrap_or_else(|| panic!("{eid:#x}/{fid}: {req:?} needs the run loop"));
        encode(eid, reply)
    }

    /// `(error, value)` of a call to a non-legacy extension.
    fn ret(error: u64, value: u64) -> SbiReturn {
        SbiReturn {
            a0: error,
            a1: Some(value),
        }
    }

    /// `a0` of a call to a legacy extension.
    fn legacy_ret(a0: u64) -> SbiReturn {
        SbiReturn { a0, a1: None }
    }

    fn whole(asid: Option<u16>) -> Request {
        Request::LocalFence(Fence::GuestTlb { asid, range: None })
    }

    fn ranged(start: u64, size: u64, asid: Option<u16>) -> Request {
        Request::LocalFence(Fence::GuestTlb {
            asid,
            range: Some(VirtRange {
                start: GuestVirtAddr::new(start),
                size,
            }),
        })
    }

    #[test]
    fn extension_ids_match_the_spec_strings() {
        assert_eq!(base::EID_BASE as u64, EID_BASE);
        assert_eq!(time::EID_TIME as u64, EID_TIME);
        assert_eq!(spi::EID_SPI as u64, EID_SPI);
        assert_eq!(rfnc::EID_RFNC as u64, EID_RFNC);
        assert_eq!(hsm::EID_HSM as u64, EID_HSM);
        assert_eq!(srst::EID_SRST as u64, EID_SRST);
        assert_eq!(dbcn::EID_DBCN as u64, EID_DBCN);
    }

    #[test]
    fn base_versions_and_ids() {
        assert_eq!(call(EID_BASE, 0, &[]), ret(SUCCESS, 0x0200_0000), "2.0");
        assert_eq!(call(EID_BASE, 1, &[]), ret(SUCCESS, 0x4741));
        let mut parts = env!("CARGO_PKG_VERSION")
            .split(['.', '-'])
            .map(|p| p.parse::<u64>().unwrap());
        let (major, minor, patch) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        assert_eq!(
            call(EID_BASE, 2, &[]),
            ret(SUCCESS, major << 32 | minor << 16 | patch)
        );
        for fid in 4..=6 {
            assert_eq!(
                call(EID_BASE, fid, &[]),
                ret(SUCCESS, 0),
                "machine id {fid}"
            );
        }
        assert_eq!(call(EID_BASE, 7, &[]), ret(NOT_SUPPORTED, 0));
    }

    #[test]
    fn probe_reports_exactly_what_is_implemented() {
        for eid in (0..=8).chain([
            EID_BASE,
            EID_TIME,
            EID_SPI,
            EID_RFNC,
            EID_HSM,
            EID_SRST,
            EID_DBCN,
            EID_GUESTASPACE,
        ]) {
            assert_eq!(call(EID_BASE, 3, &[eid]), ret(SUCCESS, 1), "{eid:#x}");
        }
        for eid in [
            0x09,        // reserved legacy
            0x0F,        // reserved legacy
            0x50_4D55,   // PMU
            0x5355_5350, // SUSP
            0x4350_5043, // CPPC
            0x4E41_434C, // NACL
            0x0053_5441, // STA
            0x0A00_0000, // someone else's firmware extension
            u64::MAX,
        ] {
            assert_eq!(call(EID_BASE, 3, &[eid]), ret(SUCCESS, 0), "{eid:#x}");
        }
    }

    #[test]
    fn legacy_timer_console_and_shutdown() {
        assert_eq!(
            decode(0, 0, args(&[123_456])),
            Request::SetTimer { deadline: 123_456 }
        );
        assert_eq!(
            decode(0, 0, args(&[u64::MAX])),
            Request::SetTimer { deadline: u64::MAX }
        );
        assert_eq!(
            decode(1, 0, args(&[0x141])),
            Request::ConsolePutByte(b'A'),
            "the low byte of `ch`"
        );
        assert_eq!(decode(2, 0, NO_ARGS), Request::ConsoleGetByte);
        assert_eq!(
            decode(8, 0, NO_ARGS),
            Request::Shutdown(ShutdownReason::Normal)
        );
        // The function id in a6 is ignored.
        assert_eq!(decode(2, 7, NO_ARGS), Request::ConsoleGetByte);
        // What the guest gets back, from the run loop's replies: only a0.
        assert_eq!(encode(0, Reply::Value(0)), legacy_ret(0));
        assert_eq!(encode(1, Reply::Value(0)), legacy_ret(0));
        assert_eq!(encode(2, Reply::Value(b'x'.into())), legacy_ret(0x78));
        assert_eq!(
            encode(2, Reply::Value(u64::MAX)),
            legacy_ret(u64::MAX),
            "-1: no input"
        );
    }

    #[test]
    fn legacy_ipis_and_fences_target_the_calling_hart() {
        // The mask pointer (a0) is not dereferenced: NULL or not, the one
        // hart is the target.
        for mask_ptr in [0, 0x8020_3000] {
            let a = |rest: &[u64]| {
                let mut v = vec![mask_ptr];
                v.extend_from_slice(rest);
                args(&v)
            };
            assert_eq!(decode(3, 0, a(&[])), Request::ClearIpi);
            assert_eq!(decode(4, 0, a(&[])), Request::SelfIpi);
            assert_eq!(
                decode(5, 0, a(&[])),
                Request::LocalFence(Fence::Instruction)
            );
            assert_eq!(decode(6, 0, a(&[0, 0])), whole(None));
            assert_eq!(decode(6, 0, a(&[0x4000, u64::MAX])), whole(None));
            assert_eq!(
                decode(6, 0, a(&[0x4000, 0x2000])),
                ranged(0x4000, 0x2000, None)
            );
            assert_eq!(decode(7, 0, a(&[0, 0, 9])), whole(Some(9)));
            assert_eq!(
                decode(7, 0, a(&[0x4000, 0x1000, 0x1_0009])),
                ranged(0x4000, 0x1000, Some(9)),
                "ASIDs have 16 bits"
            );
        }
        assert_eq!(
            call(6, 0, &[0, u64::MAX - 0xfff, 0x2000]),
            legacy_ret(INVALID_ADDRESS),
            "a range that wraps"
        );
        assert_eq!(
            encode(3, Reply::Value(1)),
            legacy_ret(1),
            "an IPI was pending"
        );
        assert_eq!(encode(4, Reply::Value(0)), legacy_ret(0));
    }

    #[test]
    fn reserved_legacy_extensions_are_not_supported() {
        for eid in 9..LEGACY_EID_END {
            assert_eq!(call(eid, 0, &[]), legacy_ret(NOT_SUPPORTED), "{eid:#x}");
        }
    }

    #[test]
    fn timer_extension() {
        assert_eq!(
            decode(EID_TIME, 0, args(&[123_456])),
            Request::SetTimer { deadline: 123_456 }
        );
        assert_eq!(encode(EID_TIME, Reply::Value(0)), ret(SUCCESS, 0));
        assert_eq!(call(EID_TIME, 1, &[]), ret(NOT_SUPPORTED, 0));
    }

    #[test]
    fn hart_masks_name_harts_from_the_base() {
        let set = |mask, base| hart_mask(mask, base).map(|s| s.0);
        assert_eq!(set(1, 0), Some(1), "hart 0");
        assert_eq!(set(0b1010, 0), Some(0b1010), "harts 1 and 3");
        assert_eq!(set(0b11, 2), Some(0b1100), "harts 2 and 3");
        assert_eq!(set(1, 7), Some(0x80), "hart 7");
        assert_eq!(
            set(1, 8),
            Some(0x100),
            "hart 8: no VM has it, the run loop refuses it"
        );
        assert_eq!(set(1 << 63, 0), Some(1 << 63), "hart 63");
        assert_eq!(set(1, 63), Some(1 << 63), "hart 63");
        assert_eq!(set(0, 0), Some(0), "names no hart");
        assert_eq!(set(0, 5), Some(0), "names no hart");
        assert_eq!(set(0, u64::MAX - 1), Some(0), "names no hart");
    }

    #[test]
    fn a_base_of_minus_one_names_every_hart() {
        assert_eq!(ALL_HARTS, CpuSet(0xff));
        for mask in [0, 1, 0b1010, u64::MAX] {
            assert_eq!(
                hart_mask(mask, ALL_HARTS_BASE),
                Some(ALL_HARTS),
                "mask ignored"
            );
        }
    }

    #[test]
    fn hart_ids_of_64_and_above_are_invalid() {
        assert_eq!(hart_mask(1, 64), None, "hart 64");
        assert_eq!(hart_mask(0b10, 63), None, "hart 64");
        assert_eq!(hart_mask(1 << 63, 1), None, "hart 64");
        assert_eq!(hart_mask(u64::MAX, 1), None, "harts 1..=64");
        assert_eq!(hart_mask(1, u64::MAX - 1), None, "hart 2^64-2");
        assert_eq!(hart_mask(1 << 63, u64::MAX - 1), None, "base + bit wraps");
    }

    #[test]
    fn ipi_extension() {
        let ipi = |mask, base| decode(EID_SPI, 0, args(&[mask, base]));
        assert_eq!(ipi(1, 0), Request::SendIpi(CpuSet::one(0)));
        assert_eq!(ipi(1, 3), Request::SendIpi(CpuSet::one(3)));
        assert_eq!(ipi(0b1011, 0), Request::SendIpi(CpuSet(0b1011)));
        assert_eq!(ipi(0, ALL_HARTS_BASE), Request::SendIpi(ALL_HARTS));
        assert_eq!(
            ipi(1, 9),
            Request::SendIpi(CpuSet::one(9)),
            "the loop's to refuse"
        );
        assert_eq!(encode(EID_SPI, Reply::Value(0)), ret(SUCCESS, 0));
        assert_eq!(
            call(EID_SPI, 0, &[0, 0]),
            ret(SUCCESS, 0),
            "nobody to interrupt"
        );
        assert_eq!(call(EID_SPI, 0, &[1, 64]), ret(INVALID_PARAM, 0));
        assert_eq!(call(EID_SPI, 0, &[0b11, 63]), ret(INVALID_PARAM, 0));
        assert_eq!(call(EID_SPI, 1, &[1, 0]), ret(NOT_SUPPORTED, 0));
    }

    fn remote(cpus: u64, fence: Fence) -> Request {
        Request::RemoteFence {
            cpus: CpuSet(cpus),
            fence,
        }
    }

    #[test]
    fn rfence_extension() {
        let all = Fence::GuestTlb {
            asid: None,
            range: None,
        };
        // remote_fence_i
        assert_eq!(
            decode(EID_RFNC, 0, args(&[1, 0])),
            remote(1, Fence::Instruction)
        );
        assert_eq!(
            decode(EID_RFNC, 0, args(&[0b101, 1])),
            remote(0b1010, Fence::Instruction)
        );
        assert_eq!(
            decode(EID_RFNC, 0, args(&[0, ALL_HARTS_BASE])),
            remote(0xff, Fence::Instruction)
        );
        assert_eq!(call(EID_RFNC, 0, &[0, 0]), ret(SUCCESS, 0));
        assert_eq!(call(EID_RFNC, 0, &[1, 64]), ret(INVALID_PARAM, 0));
        // remote_sfence_vma
        assert_eq!(decode(EID_RFNC, 1, args(&[1, 0, 0, 0])), remote(1, all));
        assert_eq!(
            decode(EID_RFNC, 1, args(&[0, ALL_HARTS_BASE, 0x1000, u64::MAX])),
            remote(0xff, all)
        );
        assert_eq!(
            decode(EID_RFNC, 1, args(&[0b110, 0, 0x8020_0000, 0x3000])),
            remote(
                0b110,
                Fence::GuestTlb {
                    asid: None,
                    range: Some(VirtRange {
                        start: GuestVirtAddr::new(0x8020_0000),
                        size: 0x3000
                    })
                }
            )
        );
        assert_eq!(
            call(EID_RFNC, 1, &[1, 0, u64::MAX, 2]),
            ret(INVALID_ADDRESS, 0)
        );
        assert_eq!(
            call(EID_RFNC, 1, &[1, 64, u64::MAX, 2]),
            ret(INVALID_ADDRESS, 0),
            "the range is checked first"
        );
        assert_eq!(
            call(EID_RFNC, 1, &[1 << 63, 1, 0, 0]),
            ret(INVALID_PARAM, 0)
        );
        assert_eq!(call(EID_RFNC, 1, &[0, 0, 0, 0]), ret(SUCCESS, 0));
        // remote_sfence_vma_asid
        assert_eq!(
            decode(EID_RFNC, 2, args(&[1, 2, 0, 0, 7])),
            remote(
                0b100,
                Fence::GuestTlb {
                    asid: Some(7),
                    range: None
                }
            )
        );
        assert_eq!(
            decode(EID_RFNC, 2, args(&[1, 0, 0x4000, 0x1000, 0x1_0000])),
            remote(
                1,
                Fence::GuestTlb {
                    asid: Some(0),
                    range: Some(VirtRange {
                        start: GuestVirtAddr::new(0x4000),
                        size: 0x1000
                    })
                }
            ),
            "ASIDs have 16 bits; ASID 0 is an ASID like the others"
        );
        assert_eq!(
            call(EID_RFNC, 2, &[1, 0, 1 << 63, 1 << 63, 7]),
            ret(INVALID_ADDRESS, 0)
        );
        assert_eq!(call(EID_RFNC, 2, &[1, 70, 0, 0, 7]), ret(INVALID_PARAM, 0));
        // The HFENCE functions need a hart with the H extension.
        for fid in 3..=6 {
            assert_eq!(
                call(EID_RFNC, fid, &[1, 0, 0, 0, 0]),
                ret(NOT_SUPPORTED, 0),
                "fid {fid}"
            );
        }
        assert_eq!(call(EID_RFNC, 7, &[1, 0]), ret(NOT_SUPPORTED, 0));
        assert_eq!(encode(EID_RFNC, Reply::Value(0)), ret(SUCCESS, 0));
    }

    #[test]
    fn hart_state_management() {
        assert_eq!(
            decode(EID_HSM, 0, args(&[1, 0x8020_0000, 0x8220_0000])),
            Request::CpuStart {
                cpu: 1,
                entry: GuestPhysAddr::new(0x8020_0000),
                arg: 0x8220_0000
            }
        );
        assert_eq!(
            decode(EID_HSM, 0, args(&[u64::MAX, 0x8020_0000, 0])),
            Request::CpuStart {
                cpu: u64::MAX,
                entry: GuestPhysAddr::new(0x8020_0000),
                arg: 0
            },
            "any hart id: the run loop refuses those the VM lacks"
        );
        assert_eq!(
            decode(EID_HSM, 1, NO_ARGS),
            Request::CpuStop,
            "the calling hart stops: not a power-off"
        );
        assert_eq!(
            decode(EID_HSM, 2, args(&[3])),
            Request::CpuStatus { cpu: 3 }
        );
        assert_eq!(
            decode(EID_HSM, 2, args(&[1 << 40])),
            Request::CpuStatus { cpu: 1 << 40 }
        );
        assert_eq!(call(EID_HSM, 4, &[]), ret(NOT_SUPPORTED, 0));
        // What the run loop answers, as the guest finds it.
        for (state, value) in [
            (CpuPower::On, 0),
            (CpuPower::Off, 1),
            (CpuPower::OnPending, 2),
            (CpuPower::Suspended, 4),
        ] {
            assert_eq!(
                encode(EID_HSM, Reply::CpuState(state)),
                ret(SUCCESS, value),
                "{state:?}"
            );
        }
        assert_eq!(
            encode(EID_HSM, Reply::AlreadyAvailable),
            ret(ALREADY_AVAILABLE, 0),
            "starting a started hart"
        );
    }

    #[test]
    fn hart_suspend() {
        assert_eq!(
            decode(EID_HSM, 3, args(&[0, 0x8020_0000, 5])),
            Request::CpuSuspend(Suspend::Retentive),
            "resume_addr and opaque unused"
        );
        assert_eq!(
            decode(EID_HSM, 3, args(&[0xdead_0000_0000_0000, 0, 0])),
            Request::CpuSuspend(Suspend::Retentive),
            "suspend_type has 32 bits"
        );
        assert_eq!(
            decode(EID_HSM, 3, args(&[0x8000_0000, 0x8020_0000, 5])),
            Request::CpuSuspend(Suspend::NonRetentive {
                entry: GuestPhysAddr::new(0x8020_0000),
                arg: 5
            }),
        );
        // Reserved, then platform-specific retentive types.
        for ty in [1, 0x0FFF_FFFF, 0x1000_0000, 0x7FFF_FFFF] {
            assert_eq!(
                call(EID_HSM, 3, &[ty, 0, 0]),
                ret(INVALID_PARAM, 0),
                "{ty:#x}"
            );
        }
        // Reserved, then platform-specific non-retentive types.
        for ty in [0x8000_0001, 0x8FFF_FFFF, 0x9000_0000, 0xFFFF_FFFF] {
            assert_eq!(
                call(EID_HSM, 3, &[ty, 0x8020_0000, 0]),
                ret(INVALID_PARAM, 0),
                "{ty:#x}"
            );
        }
    }

    #[test]
    fn system_reset() {
        let reset = |ty, reason| decode(EID_SRST, 0, args(&[ty, reason]));
        assert_eq!(reset(0, 0), Request::Shutdown(ShutdownReason::Normal));
        assert_eq!(reset(0, 1), Request::Shutdown(ShutdownReason::Failure(1)));
        assert_eq!(
            reset(1, 0),
            Request::Shutdown(ShutdownReason::Reboot {
                kind: RebootKind::Cold,
                reason: 0
            })
        );
        assert_eq!(
            reset(2, 1),
            Request::Shutdown(ShutdownReason::Reboot {
                kind: RebootKind::Warm,
                reason: 1
            })
        );
        assert_eq!(
            reset(1 << 32, 1 << 32),
            Request::Shutdown(ShutdownReason::Normal),
            "both parameters have 32 bits"
        );
        // Reserved or vendor-specific types and reasons.
        for (ty, reason) in [
            (3, 0),
            (0xEFFF_FFFF, 0),
            (0xF000_0000, 0),
            (0, 2),
            (1, 0xDFFF_FFFF),
            (0, 0xE000_0000),
            (2, 0xF000_0000),
        ] {
            assert_eq!(
                call(EID_SRST, 0, &[ty, reason]),
                ret(INVALID_PARAM, 0),
                "type {ty:#x} reason {reason:#x}"
            );
        }
        assert_eq!(call(EID_SRST, 1, &[]), ret(NOT_SUPPORTED, 0));
    }

    #[test]
    fn debug_console() {
        assert_eq!(
            decode(EID_DBCN, 0, args(&[12, 0x8020_1000, 0])),
            Request::ConsoleWrite {
                gpa: GuestPhysAddr::new(0x8020_1000),
                len: 12
            }
        );
        assert_eq!(
            decode(EID_DBCN, 1, args(&[4, 0x8020_2000, 0])),
            Request::ConsoleRead {
                gpa: GuestPhysAddr::new(0x8020_2000),
                len: 4
            }
        );
        assert_eq!(
            decode(EID_DBCN, 2, args(&[0x10a])),
            Request::ConsolePutByte(0x0a)
        );
        assert_eq!(
            call(EID_DBCN, 0, &[12, 0, 1]),
            ret(INVALID_PARAM, 0),
            "high half"
        );
        assert_eq!(
            call(EID_DBCN, 1, &[12, 0, 1]),
            ret(INVALID_PARAM, 0),
            "high half"
        );
        assert_eq!(call(EID_DBCN, 3, &[]), ret(NOT_SUPPORTED, 0));
        assert_eq!(encode(EID_DBCN, Reply::Value(12)), ret(SUCCESS, 12));
    }

    #[test]
    fn unknown_calls_are_not_supported_and_never_forwarded() {
        for (eid, fid) in [
            (0x50_4D55, 0),   // PMU
            (0x5355_5350, 0), // SUSP
            (0x0053_5441, 0), // STA
            (0x0A00_4741, 1), // ours, unknown function
            (0x0A00_0000, 0), // another firmware's
            (0x0900_0000, 0), // vendor space
            (0xFFFF_FFFF, 0),
        ] {
            let req = decode(eid, fid, NO_ARGS);
            assert_eq!(
                req,
                Request::Unsupported {
                    id: eid,
                    function: fid
                }
            );
            assert_eq!(call(eid, fid, &[]), ret(NOT_SUPPORTED, 0));
        }
        assert_eq!(decode(EID_GUESTASPACE, FID_NULL, NO_ARGS), Request::Null);
    }

    #[test]
    fn reply_encoding() {
        assert_eq!(encode(EID_BASE, Reply::Value(5)), ret(SUCCESS, 5));
        assert_eq!(encode(EID_SRST, Reply::NotSupported), ret(NOT_SUPPORTED, 0));
        assert_eq!(encode(EID_DBCN, Reply::InvalidParam), ret(INVALID_PARAM, 0));
        assert_eq!(
            encode(EID_DBCN, Reply::InvalidAddress),
            ret(INVALID_ADDRESS, 0)
        );
        assert_eq!(
            encode(EID_HSM, Reply::AlreadyAvailable),
            ret(ALREADY_AVAILABLE, 0)
        );
        assert_eq!(encode(2, Reply::Value(u64::MAX)), legacy_ret(u64::MAX));
        assert_eq!(encode(1, Reply::Value(0)), legacy_ret(0));
        assert_eq!(encode(5, Reply::NotSupported), legacy_ret(NOT_SUPPORTED));
        assert_eq!(
            encode(6, Reply::InvalidAddress),
            legacy_ret(INVALID_ADDRESS)
        );
    }
}
