//! The SBI calls a hart answers for itself: its timer (SBI TIME, legacy
//! `set_timer`), the software interrupt it sends itself or withdraws (an
//! IPI whose hart mask names only the caller, legacy `send_ipi` and
//! `clear_ipi`), and fences run on it (an RFENCE whose hart mask names
//! only the caller, the legacy remote fences). They touch only the calling
//! hart's state, so the riscv64 vCPU serves them without the run loop
//! ([`crate::exit::Exit::Handled`]); what it does to the hardware is
//! behind [`HartControls`].
//!
//! The legacy IPI and fences ([`Request::SelfIpi`],
//! [`Request::LocalFence`]) always target the caller: their hart mask is
//! not read (see [`super::sbi`]). An IPI or fence naming any other hart,
//! alone or with the caller, is the run loop's.

use crate::exit::{CpuSet, Fence, Reply, Request};

/// What a hart-local call does to the calling hart.
pub trait HartControls {
    /// Arms the guest's timer for `deadline` (`u64::MAX` disarms) and
    /// withdraws a timer interrupt already pending, as SBI TIME says.
    fn set_timer(&mut self, deadline: u64);
    /// Makes the guest's supervisor software interrupt pending.
    fn raise_software_interrupt(&mut self);
    /// Withdraws it; answers whether it was pending.
    fn clear_software_interrupt(&mut self) -> bool;
    /// Runs `fence` for the guest on this hart before it runs again.
    fn fence(&mut self, fence: Fence);
}

/// Whether `set` is exactly vCPU `me`.
#[inline]
const fn only(set: CpuSet, me: usize) -> bool {
    me < 64 && set.0 == 1 << me
}

/// Whether `req`, made by the hart of vCPU `me`, is a call the hart serves
/// itself ([`serve`]): the cheap test a vCPU makes on every hypercall
/// before serving one.
#[inline]
pub const fn is_local(req: &Request, me: usize) -> bool {
    match *req {
        Request::SetTimer { .. }
        | Request::SelfIpi
        | Request::ClearIpi
        | Request::LocalFence(_) => true,
        Request::SendIpi(set) | Request::RemoteFence { cpus: set, .. } => only(set, me),
        _ => false,
    }
}

/// Serves `req`, made by the hart of vCPU `me`, on that `hart` if it is a
/// hart-local call ([`is_local`]): the reply for the guest; `None` for any
/// other request (the run loop's).
pub fn serve(req: &Request, me: usize, hart: &mut impl HartControls) -> Option<Reply> {
    match *req {
        Request::SetTimer { deadline } => hart.set_timer(deadline),
        Request::SelfIpi => hart.raise_software_interrupt(),
        Request::SendIpi(set) if only(set, me) => hart.raise_software_interrupt(),
        Request::ClearIpi => {
            return Some(Reply::Value(u64::from(hart.clear_software_interrupt())));
        }
        Request::LocalFence(fence) => hart.fence(fence),
        Request::RemoteFence { cpus, fence } if only(cpus, me) => hart.fence(fence),
        _ => return None,
    }
    Some(Reply::Value(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::GuestVirtAddr;
    use crate::arch::riscv64::sbi::{self, SbiReturn};
    use crate::exit::VirtRange;
    use std::vec::Vec;

    /// A hart that records what it was told.
    #[derive(Default)]
    struct Recorded {
        timers: Vec<u64>,
        pending: bool,
        ipis: usize,
        fences: Vec<Fence>,
    }

    impl HartControls for Recorded {
        fn set_timer(&mut self, deadline: u64) {
            self.timers.push(deadline);
        }
        fn raise_software_interrupt(&mut self) {
            self.pending = true;
            self.ipis += 1;
        }
        fn clear_software_interrupt(&mut self) -> bool {
            core::mem::take(&mut self.pending)
        }
        fn fence(&mut self, fence: Fence) {
            self.fences.push(fence);
        }
    }

    fn legacy(a0: u64) -> SbiReturn {
        SbiReturn { a0, a1: None }
    }

    fn ok(a0: u64) -> SbiReturn {
        SbiReturn { a0, a1: Some(0) }
    }

    /// Hart-local SBI calls from decoding to the registers the guest finds:
    /// the decoder, [`serve`] and the encoder together, on the hart of
    /// vCPU 2.
    #[test]
    fn hart_local_calls_round_trip() {
        const SPI: u64 = 0x73_5049;
        const RFNC: u64 = 0x5246_4E43;
        const TIME: u64 = 0x5449_4D45;
        const ME: usize = 2;
        let calls: &[(u64, u64, [u64; 6], SbiReturn)] = &[
            // legacy set_timer, clear_ipi, send_ipi, clear_ipi,
            // remote_fence_i
            (0, 0, [500, 0, 0, 0, 0, 0], legacy(0)),
            (3, 0, [0; 6], legacy(0)),
            (4, 0, [0; 6], legacy(0)),
            (3, 0, [0; 6], legacy(1)),
            (5, 0, [0; 6], legacy(0)),
            // SBI TIME, an IPI to hart 2 (mask 1 from base 2, then mask
            // 0b100 from base 0)
            (TIME, 0, [900, 0, 0, 0, 0, 0], ok(0)),
            (SPI, 0, [1, 2, 0, 0, 0, 0], ok(0)),
            (SPI, 0, [0b100, 0, 0, 0, 0, 0], ok(0)),
            // RFENCE on hart 2: sfence.vma of one page for ASID 5
            (RFNC, 2, [0b100, 0, 0x4000, 0x1000, 5, 0], ok(0)),
        ];
        let mut hart = Recorded::default();
        for &(eid, fid, args, want) in calls {
            let req = sbi::decode(eid, fid, args);
            assert!(is_local(&req, ME), "{req:?}");
            let reply = serve(&req, ME, &mut hart).expect("a hart-local call");
            assert_eq!(sbi::encode(eid, reply), want, "eid {eid:#x} fid {fid}");
        }
        assert_eq!(hart.timers, [500, 900]);
        assert_eq!(hart.ipis, 3);
        assert!(hart.pending, "the last IPI is still pending");
        assert_eq!(
            hart.fences,
            [
                Fence::Instruction,
                Fence::GuestTlb {
                    asid: Some(5),
                    range: Some(VirtRange {
                        start: GuestVirtAddr::new(0x4000),
                        size: 0x1000
                    })
                }
            ]
        );
    }

    #[test]
    fn ipis_and_fences_for_other_harts_are_the_run_loops() {
        let mut hart = Recorded::default();
        let fence = Fence::Instruction;
        for (set, me) in [
            (CpuSet::one(1), 0),
            (CpuSet::one(0), 1),
            (CpuSet(0b11), 0),
            (CpuSet(0b11), 1),
            (sbi::ALL_HARTS, 0),
            (CpuSet(0), 0),
            (CpuSet(1 << 63), 64),
            (CpuSet(1), usize::MAX),
        ] {
            for req in [
                Request::SendIpi(set),
                Request::RemoteFence { cpus: set, fence },
            ] {
                assert!(!is_local(&req, me), "{req:?} from {me}");
                assert_eq!(serve(&req, me, &mut hart), None, "{req:?} from {me}");
            }
        }
        assert_eq!(hart.ipis, 0);
        assert!(hart.fences.is_empty());
        // The set that is the caller alone is the hart's.
        for me in [0, 7, 63] {
            assert!(is_local(&Request::SendIpi(CpuSet::one(me)), me));
            assert!(is_local(
                &Request::RemoteFence {
                    cpus: CpuSet::one(me),
                    fence
                },
                me
            ));
        }
    }

    #[test]
    fn other_calls_are_the_run_loops() {
        let mut hart = Recorded::default();
        for req in [
            Request::Null,
            Request::ConsolePutByte(b'x'),
            Request::Invalid { id: 1, function: 2 },
            Request::CpuStatus { cpu: 0 },
            Request::CpuStop,
        ] {
            assert!(!is_local(&req, 0));
            assert_eq!(serve(&req, 0, &mut hart), None, "{req:?}");
        }
        // The legacy calls target the caller, whichever it is.
        for me in [0, 5] {
            assert!(is_local(&Request::SelfIpi, me));
            assert!(is_local(&Request::LocalFence(Fence::Instruction), me));
        }
        assert!(hart.timers.is_empty() && hart.fences.is_empty());
    }
}
