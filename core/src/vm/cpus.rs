//! What the vCPUs of one VM know of each other: each one's power state
//! (on, off, starting, suspended), the start request another vCPU left
//! for it, and the work other vCPUs posted for it (a software interrupt,
//! fences, "your interrupt line may have changed", "the VM has ended").
//!
//! Every vCPU runs on its own host CPU, so everything here is shared
//! between host CPUs: atomics, and a lock only where a value is bigger
//! than a word and rarely touched (a start request). A vCPU reads its own
//! work word once per exit; that is the whole cost of SMP on the exit
//! path. Posting work also kicks the target ([`crate::vcpu::Vcpu::kick`])
//! out of the guest or out of its wait, so nothing posted waits for the
//! target's next host tick.

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use spin::Mutex;

use crate::addr::GuestPhysAddr;
use crate::exit::{CpuPower, CpuSet};
use crate::stats::Stats;
use crate::vm::VmError;

/// Work posted for a vCPU, as bits of its work word.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Work(pub u32);

impl Work {
    /// The VM has ended: leave the guest and stop.
    pub const STOP: Work = Work(1);
    /// Make the guest's supervisor software interrupt pending (riscv64
    /// SBI IPI).
    pub const SOFTWARE_INTERRUPT: Work = Work(1 << 1);
    /// The interrupt controller's output to this vCPU may have changed:
    /// sync with it.
    pub const SYNC_INTERRUPTS: Work = Work(1 << 2);
    /// Synchronise instruction fetches with earlier stores (`fence.i`).
    pub const FENCE_I: Work = Work(1 << 3);
    /// Drop every cached guest-virtual translation of the guest (a remote
    /// `sfence.vma` of any range or ASID is run as this whole fence).
    pub const FLUSH_TLB: Work = Work(1 << 4);
    /// The start request ([`Cpus::start`]) is waiting.
    pub const START: Work = Work(1 << 5);

    /// Whether every bit of `other` is set here.
    pub const fn has(self, other: Work) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for Work {
    type Output = Work;
    fn bitor(self, rhs: Work) -> Work {
        Work(self.0 | rhs.0)
    }
}

const OFF: u8 = 0;
const ON: u8 = 1;
const ON_PENDING: u8 = 2;

/// One vCPU as the others see it.
struct CpuControl {
    /// [`OFF`], [`ON`] or [`ON_PENDING`].
    power: AtomicU8,
    /// Work posted for it ([`Work`] bits), taken all at once.
    work: AtomicU32,
    /// How many requests that must be confirmed (fences) were posted.
    requested: AtomicU64,
    /// The `requested` count the vCPU had seen when it last took its work:
    /// every request up to it has been carried out.
    done: AtomicU64,
    /// Where and with what argument it starts ([`Cpus::start`]).
    start: Mutex<Option<(GuestPhysAddr, u64)>>,
    /// Its exit counters, handed over when its run ends.
    stats: Mutex<Stats>,
}

impl CpuControl {
    fn new(power: u8) -> Self {
        CpuControl {
            power: AtomicU8::new(power),
            work: AtomicU32::new(0),
            requested: AtomicU64::new(0),
            done: AtomicU64::new(0),
            start: Mutex::new(None),
            stats: Mutex::new(Stats::default()),
        }
    }
}

/// How the VM ended: which vCPU ended it, and how.
pub type Ending = (usize, Result<(), VmError>);

/// The vCPUs of a VM, as they coordinate.
pub struct Cpus {
    cpus: Vec<CpuControl>,
    /// How the VM ended, once it has (the first ending wins).
    ended: Mutex<Option<Ending>>,
}

/// Why [`Cpus::start`] did not start a vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartError {
    /// There is no such vCPU.
    NoSuchCpu,
    /// It is on, or already starting.
    AlreadyOn,
}

impl Cpus {
    /// `count` vCPUs (at least 1): vCPU 0 is on, the others are off and
    /// wait to be started, as firmware leaves secondary CPUs.
    pub fn new(count: usize) -> Self {
        Cpus {
            cpus: (0..count.max(1))
                .map(|i| CpuControl::new(if i == 0 { ON } else { OFF }))
                .collect(),
            ended: Mutex::new(None),
        }
    }

    /// How many vCPUs the VM has.
    pub fn count(&self) -> usize {
        self.cpus.len()
    }

    /// Every vCPU of the VM.
    pub fn all(&self) -> CpuSet {
        CpuSet(if self.cpus.len() >= 64 {
            u64::MAX
        } else {
            (1 << self.cpus.len()) - 1
        })
    }

    /// vCPU `cpu`'s power state.
    pub fn power(&self, cpu: usize) -> CpuPower {
        match self.cpus[cpu].power.load(Ordering::Acquire) {
            OFF => CpuPower::Off,
            ON_PENDING => CpuPower::OnPending,
            _ => CpuPower::On,
        }
    }

    /// Posts `work` for vCPU `cpu`; the caller then kicks it.
    pub fn post(&self, cpu: usize, work: Work) {
        self.cpus[cpu].work.fetch_or(work.0, Ordering::SeqCst);
    }

    /// Whether work is waiting for `cpu`: one load, made after every exit.
    #[inline]
    pub fn has_work(&self, cpu: usize) -> bool {
        self.cpus[cpu].work.load(Ordering::Relaxed) != 0
    }

    /// Takes the work posted for `cpu` (its own call); the requests
    /// counted up to now are confirmed once the caller has carried it out
    /// and calls [`Cpus::confirm`] with the returned count.
    pub fn take_work(&self, cpu: usize) -> (Work, u64) {
        let c = &self.cpus[cpu];
        let seen = c.requested.load(Ordering::SeqCst);
        (Work(c.work.swap(0, Ordering::SeqCst)), seen)
    }

    /// `cpu` carried out every request counted up to `seen`.
    pub fn confirm(&self, cpu: usize, seen: u64) {
        self.cpus[cpu].done.fetch_max(seen, Ordering::SeqCst);
    }

    /// Posts `work` that the poster waits for: answers the ticket that
    /// [`Cpus::is_done`] checks.
    pub fn post_confirmed(&self, cpu: usize, work: Work) -> u64 {
        let c = &self.cpus[cpu];
        // The work bits go first: a vCPU that has seen this request count
        // (taken before its swap of the work word) also takes the bits.
        c.work.fetch_or(work.0, Ordering::SeqCst);
        c.requested.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Whether `cpu` has carried out the request with `ticket`, or no
    /// longer runs (an off vCPU drops what it had cached; it flushes all
    /// when started).
    pub fn is_done(&self, cpu: usize, ticket: u64) -> bool {
        let c = &self.cpus[cpu];
        c.done.load(Ordering::SeqCst) >= ticket || c.power.load(Ordering::Acquire) == OFF
    }

    /// Asks off vCPU `cpu` to start at `entry` with `arg` (the caller then
    /// kicks it).
    pub fn start(&self, cpu: usize, entry: GuestPhysAddr, arg: u64) -> Result<(), StartError> {
        let c = self.cpus.get(cpu).ok_or(StartError::NoSuchCpu)?;
        c.power
            .compare_exchange(OFF, ON_PENDING, Ordering::AcqRel, Ordering::Acquire)
            .map_err(|_| StartError::AlreadyOn)?;
        *c.start.lock() = Some((entry, arg));
        c.work.fetch_or(Work::START.0, Ordering::SeqCst);
        Ok(())
    }

    /// vCPU `cpu`'s own call once it saw [`Work::START`]: where it starts;
    /// it is on from now.
    pub fn take_start(&self, cpu: usize) -> Option<(GuestPhysAddr, u64)> {
        let c = &self.cpus[cpu];
        let start = c.start.lock().take()?;
        c.power.store(ON, Ordering::Release);
        Some(start)
    }

    /// vCPU `cpu` stops itself; answers whether it was the last one on
    /// (no vCPU is on or starting any more).
    pub fn stop(&self, cpu: usize) -> bool {
        self.cpus[cpu].power.store(OFF, Ordering::Release);
        self.cpus
            .iter()
            .all(|c| c.power.load(Ordering::Acquire) == OFF)
    }

    /// Records how the VM ended (the first ending wins) and posts
    /// [`Work::STOP`] to every vCPU; answers the vCPUs to kick.
    pub fn end(&self, cpu: usize, result: Result<(), VmError>) -> CpuSet {
        let mut ended = self.ended.lock();
        if ended.is_none() {
            *ended = Some((cpu, result));
        }
        drop(ended);
        for i in 0..self.cpus.len() {
            self.post(i, Work::STOP);
        }
        self.all()
    }

    /// How the VM ended, if it has.
    pub fn ending(&self) -> Option<Ending> {
        *self.ended.lock()
    }

    /// Adds vCPU `cpu`'s counters (at the end of its run).
    pub fn add_stats(&self, cpu: usize, stats: &Stats) {
        self.cpus[cpu].stats.lock().absorb(stats);
    }

    /// vCPU `cpu`'s counters, as handed over.
    pub fn stats(&self, cpu: usize) -> Stats {
        self.cpus[cpu].stats.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secondaries_start_off_and_start_once() {
        let cpus = Cpus::new(3);
        assert_eq!(cpus.power(0), CpuPower::On);
        assert_eq!(cpus.power(2), CpuPower::Off);
        assert_eq!(cpus.all(), CpuSet(0b111));
        let entry = GuestPhysAddr::new(0x8020_0000);
        assert_eq!(cpus.start(2, entry, 7), Ok(()));
        assert_eq!(cpus.power(2), CpuPower::OnPending);
        assert_eq!(cpus.start(2, entry, 7), Err(StartError::AlreadyOn));
        assert_eq!(cpus.start(0, entry, 7), Err(StartError::AlreadyOn));
        assert_eq!(cpus.start(3, entry, 7), Err(StartError::NoSuchCpu));
        let (work, _) = cpus.take_work(2);
        assert!(work.has(Work::START));
        assert_eq!(cpus.take_start(2), Some((entry, 7)));
        assert_eq!(cpus.power(2), CpuPower::On);
        assert_eq!(cpus.take_start(2), None);
    }

    #[test]
    fn the_last_cpu_to_stop_says_so() {
        let cpus = Cpus::new(2);
        cpus.start(1, GuestPhysAddr::new(0x1000), 0).unwrap();
        assert!(!cpus.stop(0), "vCPU 1 is starting");
        assert!(cpus.stop(1));
    }

    #[test]
    fn a_confirmed_request_is_done_only_once_taken_and_confirmed() {
        let cpus = Cpus::new(2);
        cpus.start(1, GuestPhysAddr::new(0x1000), 0).unwrap();
        cpus.take_work(1);
        cpus.take_start(1);
        let ticket = cpus.post_confirmed(1, Work::FLUSH_TLB);
        assert!(!cpus.is_done(1, ticket));
        let (work, seen) = cpus.take_work(1);
        assert!(work.has(Work::FLUSH_TLB));
        assert!(!cpus.is_done(1, ticket), "taken, not yet carried out");
        cpus.confirm(1, seen);
        assert!(cpus.is_done(1, ticket));
        // An off vCPU has nothing to fence.
        let ticket = cpus.post_confirmed(1, Work::FENCE_I);
        cpus.stop(1);
        assert!(cpus.is_done(1, ticket));
    }

    #[test]
    fn the_first_ending_wins_and_everyone_is_told() {
        let cpus = Cpus::new(2);
        assert_eq!(
            cpus.end(
                1,
                Err(VmError::AllCpusStopped {
                    pc: crate::addr::GuestVirtAddr::new(0x40)
                })
            ),
            CpuSet(3)
        );
        cpus.end(0, Ok(()));
        assert!(matches!(cpus.ending(), Some((1, Err(_)))));
        assert!(cpus.take_work(0).0.has(Work::STOP));
        assert!(cpus.take_work(1).0.has(Work::STOP));
    }

    /// Many posters and one taker on real threads: every confirmed
    /// request is seen done only after the taker carried it out.
    #[test]
    fn confirmations_hold_across_threads() {
        use std::sync::Arc;
        use std::sync::atomic::AtomicBool;
        let cpus = Arc::new(Cpus::new(2));
        cpus.start(1, GuestPhysAddr::new(0x1000), 0).unwrap();
        let carried = Arc::new(AtomicU64::new(0));
        let quit = Arc::new(AtomicBool::new(false));
        let taker = {
            let (cpus, carried, quit) = (cpus.clone(), carried.clone(), quit.clone());
            std::thread::spawn(move || {
                while !quit.load(Ordering::SeqCst) {
                    let (work, seen) = cpus.take_work(1);
                    if work.has(Work::FLUSH_TLB) {
                        carried.fetch_add(1, Ordering::SeqCst);
                    }
                    cpus.confirm(1, seen);
                }
            })
        };
        for _ in 0..2000 {
            let before = carried.load(Ordering::SeqCst);
            let ticket = cpus.post_confirmed(1, Work::FLUSH_TLB);
            while !cpus.is_done(1, ticket) {
                std::hint::spin_loop();
            }
            assert!(carried.load(Ordering::SeqCst) > before);
        }
        quit.store(true, Ordering::SeqCst);
        taker.join().unwrap();
    }
}
