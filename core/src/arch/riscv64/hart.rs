//! The SBI calls a hart answers for itself: its timer (SBI TIME, legacy
//! `set_timer`), the software interrupt it sends itself or withdraws
//! (IPI to its own hart, legacy `clear_ipi`), and fences run on it
//! (RFENCE naming it, legacy `remote_fence_i`). They touch only the
//! calling hart's state, so the riscv64 vCPU serves them without the run
//! loop ([`crate::exit::Exit::Handled`]); what it does to the hardware is
//! behind [`HartControls`].

use crate::exit::{Fence, Reply, Request};

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

/// Whether `req` is a call the hart serves itself ([`serve`]): the cheap
/// test a vCPU makes on every hypercall before serving one.
#[inline]
pub const fn is_local(req: &Request) -> bool {
    matches!(
        req,
        Request::SetTimer { .. } | Request::SelfIpi | Request::ClearIpi | Request::LocalFence(_)
    )
}

/// Serves `req` on `hart` if it is a hart-local call ([`is_local`]): the
/// reply for the guest; `None` for any other request (the run loop's).
pub fn serve(req: &Request, hart: &mut impl HartControls) -> Option<Reply> {
    match *req {
        Request::SetTimer { deadline } => hart.set_timer(deadline),
        Request::SelfIpi => hart.raise_software_interrupt(),
        Request::ClearIpi => {
            return Some(Reply::Value(u64::from(hart.clear_software_interrupt())));
        }
        Request::LocalFence(fence) => hart.fence(fence),
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
    /// the decoder, [`serve`] and the encoder together.
    #[test]
    fn hart_local_calls_round_trip() {
        const SPI: u64 = 0x73_5049;
        const RFNC: u64 = 0x5246_4E43;
        const TIME: u64 = 0x5449_4D45;
        let calls: &[(u64, u64, [u64; 6], SbiReturn)] = &[
            // legacy set_timer, clear_ipi, send_ipi, clear_ipi,
            // remote_fence_i
            (0, 0, [500, 0, 0, 0, 0, 0], legacy(0)),
            (3, 0, [0; 6], legacy(0)),
            (4, 0, [0; 6], legacy(0)),
            (3, 0, [0; 6], legacy(1)),
            (5, 0, [0; 6], legacy(0)),
            // SBI TIME, an IPI to hart 0
            (TIME, 0, [900, 0, 0, 0, 0, 0], ok(0)),
            (SPI, 0, [1, 0, 0, 0, 0, 0], ok(0)),
            // RFENCE: sfence.vma of one page for ASID 5
            (RFNC, 2, [1, 0, 0x4000, 0x1000, 5, 0], ok(0)),
        ];
        let mut hart = Recorded::default();
        for &(eid, fid, args, want) in calls {
            let req = sbi::decode(eid, fid, args);
            let reply = serve(&req, &mut hart).expect("a hart-local call");
            assert_eq!(sbi::encode(eid, reply), want, "eid {eid:#x} fid {fid}");
        }
        assert_eq!(hart.timers, [500, 900]);
        assert_eq!(hart.ipis, 2);
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
    fn other_calls_are_the_run_loops() {
        let mut hart = Recorded::default();
        for req in [
            Request::Null,
            Request::ConsolePutByte(b'x'),
            Request::Invalid { id: 1, function: 2 },
        ] {
            assert!(!is_local(&req));
            assert_eq!(serve(&req, &mut hart), None, "{req:?}");
        }
        assert!(is_local(&Request::SelfIpi));
        assert!(hart.timers.is_empty() && hart.fences.is_empty());
    }
}
