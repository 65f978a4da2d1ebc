//! The run loop with several vCPUs on real threads, one per vCPU, as the
//! hypervisor runs them on host CPUs: starting a CPU through the firmware
//! interface, IPIs both ways for many rounds with none lost, a remote
//! fence that returns only once its target ran it, the CPU calls' error
//! answers, and the VM's end reaching every vCPU.

use super::*;
use crate::addr::GuestVirtAddr;
use crate::exit::{CpuPower, CpuSet, Fence, Handled, Suspend};
use crate::guest_memory::GuestMemory;
use crate::machine::{DEFAULT_RAM_SIZE, RISCV64_VIRT};
use crate::stage2::AddressSpace;
use crate::stage2::Sv39x4;
use crate::stage2::test_host::ArenaHost;
use crate::vcpu::RemoteWork;
use crate::vm::{Limits, Vm};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::vec::Vec;

/// One step of a vCPU's script.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// Leave the guest with this exit.
    Exit(Exit),
    /// Keep leaving with quiet exits until this many software interrupts
    /// have arrived (the guest waiting for an IPI).
    AwaitIpis(u64),
    /// Keep leaving with quiet exits until the VM ends.
    Spin,
    /// Make this call until it is answered with success.
    Retry(Request),
}

/// What one vCPU saw, readable from the other threads.
#[derive(Default)]
struct Seen {
    ipis: AtomicU64,
    fences: AtomicU64,
}

/// A vCPU that follows a script and records what reached it.
struct Scripted {
    steps: std::collections::VecDeque<Step>,
    seen: Arc<Seen>,
    replies: Vec<Reply>,
    started: Option<(GuestPhysAddr, u64)>,
    /// What another vCPU's fence counter read when this vCPU's fence
    /// call was answered.
    on_reply: Option<(Arc<Seen>, Vec<u64>)>,
    /// A [`Step::Retry`] call was made.
    retried: bool,
}

const QUIET: Exit = Exit::Handled(Handled::quiet(ExitKind::Kick, false));

impl Scripted {
    fn new(steps: &[Step]) -> Self {
        Scripted {
            steps: steps.iter().copied().collect(),
            seen: Arc::default(),
            replies: Vec::new(),
            started: None,
            on_reply: None,
            retried: false,
        }
    }
}

impl Vcpu for Scripted {
    fn run(&mut self) -> Exit {
        std::thread::yield_now();
        match self.steps.front().copied() {
            Some(Step::Exit(exit)) => {
                self.steps.pop_front();
                exit
            }
            Some(Step::AwaitIpis(n)) => {
                if self.seen.ipis.load(Ordering::SeqCst) >= n {
                    self.steps.pop_front();
                }
                QUIET
            }
            Some(Step::Spin) => QUIET,
            Some(Step::Retry(req)) => {
                if self.retried && self.replies.last() == Some(&Reply::Value(0)) {
                    self.steps.pop_front();
                    self.retried = false;
                    return self.run();
                }
                self.retried = true;
                Exit::Hypercall(req)
            }
            None => panic!("the script ran out: the loop did not stop"),
        }
    }
    fn pc(&self) -> GuestVirtAddr {
        GuestVirtAddr::new(0x8020_0000)
    }
    fn finish_hypercall(&mut self, reply: Reply) {
        self.replies.push(reply);
        if let Some((other, reads)) = &mut self.on_reply {
            reads.push(other.fences.load(Ordering::SeqCst));
        }
    }
    fn emulate_io(&mut self, _: Io, _: &mut Devices, _: &dyn GuestMemory) -> Result<(), IoError> {
        Ok(())
    }
    fn sync_interrupts(&mut self, _: &mut Devices) -> u64 {
        0
    }
    fn start(&mut self, entry: GuestPhysAddr, arg: u64) {
        self.started = Some((entry, arg));
    }
    fn remote_work(&mut self, work: RemoteWork) {
        if work.software_interrupt {
            self.seen.ipis.fetch_add(1, Ordering::SeqCst);
        }
        if work.fence_i {
            self.seen.fences.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn kick(_cpu: usize) {}
    fn idle() {
        std::thread::yield_now();
    }
}

/// A console that prints nowhere.
struct Null;
impl Console for Null {
    fn write(&mut self, _: &[u8]) {}
    fn read(&mut self, _: &mut [u8]) -> usize {
        0
    }
}

type TestVm = Vm<Sv39x4, ArenaHost, Null>;

fn vm(cpus: usize) -> TestVm {
    let layout = RISCV64_VIRT.layout(DEFAULT_RAM_SIZE).unwrap();
    let memory = Memory::new(layout, AddressSpace::new(ArenaHost::new(64)).unwrap());
    let devices = Devices::for_board_with_cpus(&RISCV64_VIRT, cpus).unwrap();
    Vm::new("smp".into(), Limits::default(), memory, devices, Null, cpus)
}

const ENTRY: GuestPhysAddr = GuestPhysAddr::new(0x8040_0000);

fn call(req: Request) -> Step {
    Step::Exit(Exit::Hypercall(req))
}

/// Runs each script as vCPU `i` on a thread of its own until the VM ends;
/// answers the vCPUs as they ended.
fn run_all(vm: &TestVm, cpus: Vec<Scripted>) -> Vec<Scripted> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = cpus
            .into_iter()
            .enumerate()
            .map(|(i, cpu)| {
                scope.spawn(move || {
                    let mut slot = VcpuSlot::new(i, cpu);
                    let _ = vm.run_vcpu(&mut slot);
                    slot.vcpu
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

const SHUTDOWN: Step = Step::Exit(Exit::Hypercall(Request::Shutdown(ShutdownReason::Normal)));

#[test]
fn a_started_cpu_and_many_ipis_both_ways_none_lost() {
    const ROUNDS: u64 = 300;
    let vm = vm(2);
    let mut boot = vec![call(Request::CpuStart {
        cpu: 1,
        entry: ENTRY,
        arg: 7,
    })];
    let mut second = Vec::new();
    for round in 1..=ROUNDS {
        boot.push(call(Request::SendIpi(CpuSet::one(1))));
        boot.push(Step::AwaitIpis(round));
        second.push(Step::AwaitIpis(round));
        second.push(call(Request::SendIpi(CpuSet::one(0))));
    }
    boot.push(SHUTDOWN);
    second.push(Step::Spin);
    let ended = run_all(&vm, vec![Scripted::new(&boot), Scripted::new(&second)]);
    assert_eq!(vm.ending(), Some((0, Ok(()))));
    assert_eq!(ended[0].seen.ipis.load(Ordering::SeqCst), ROUNDS);
    assert_eq!(ended[1].seen.ipis.load(Ordering::SeqCst), ROUNDS);
    assert_eq!(ended[1].started, Some((ENTRY, 7)), "started where asked");
    assert_eq!(ended[0].replies[0], Reply::Value(0));
    assert!(ended[0].replies.iter().all(|r| *r == Reply::Value(0)));
    assert_eq!(vm.cpus.stats(1).exits(ExitKind::Hypercall), ROUNDS);
}

#[test]
fn a_remote_fence_returns_after_its_target_ran_it() {
    let vm = vm(2);
    let boot = [
        call(Request::CpuStart {
            cpu: 1,
            entry: ENTRY,
            arg: 0,
        }),
        // Wait until vCPU 1 runs (it sends an IPI once it does).
        Step::AwaitIpis(1),
        call(Request::RemoteFence {
            cpus: CpuSet::one(1),
            fence: Fence::Instruction,
        }),
        call(Request::RemoteFence {
            cpus: CpuSet(0b11),
            fence: Fence::Instruction,
        }),
        SHUTDOWN,
    ];
    let second = [call(Request::SendIpi(CpuSet::one(0))), Step::Spin];
    let mut first = Scripted::new(&boot);
    let target = Scripted::new(&second);
    first.on_reply = Some((target.seen.clone(), Vec::new()));
    let ended = run_all(&vm, vec![first, target]);
    let reads = &ended[0].on_reply.as_ref().unwrap().1;
    // The replies: the start, then each fence with the target's count
    // (its first fence is the one every vCPU runs when it starts).
    assert_eq!(reads[1], 2, "vCPU 1 ran the first fence before it returned");
    assert_eq!(reads[2], 3, "and the second");
    assert_eq!(
        ended[0].seen.fences.load(Ordering::SeqCst),
        1,
        "the caller ran its own"
    );
}

#[test]
fn cpu_calls_answer_the_specs_errors() {
    let vm = vm(2);
    let outside = GuestPhysAddr::new(0x1000_0000); // the UART, not RAM
    let boot = [
        call(Request::CpuStatus { cpu: 1 }),
        call(Request::CpuStart {
            cpu: 2,
            entry: ENTRY,
            arg: 0,
        }),
        call(Request::CpuStart {
            cpu: u64::MAX,
            entry: ENTRY,
            arg: 0,
        }),
        call(Request::CpuStart {
            cpu: 1,
            entry: outside,
            arg: 0,
        }),
        call(Request::CpuStart {
            cpu: 0,
            entry: ENTRY,
            arg: 0,
        }),
        call(Request::SendIpi(CpuSet(0b100))),
        call(Request::RemoteFence {
            cpus: CpuSet(0b1000),
            fence: Fence::Instruction,
        }),
        call(Request::CpuStatus { cpu: 0 }),
        call(Request::CpuStatus { cpu: 5 }),
        call(Request::CpuSuspend(Suspend::Retentive)),
        SHUTDOWN,
    ];
    let ended = run_all(
        &vm,
        vec![Scripted::new(&boot), Scripted::new(&[Step::Spin])],
    );
    assert_eq!(
        ended[0].replies,
        [
            Reply::CpuState(CpuPower::Off),
            Reply::InvalidParam,
            Reply::InvalidParam,
            Reply::InvalidAddress,
            Reply::AlreadyAvailable,
            Reply::InvalidParam,
            Reply::InvalidParam,
            Reply::CpuState(CpuPower::On),
            Reply::InvalidParam,
            Reply::Value(0),
        ]
    );
    assert_eq!(vm.cpus.power(1), CpuPower::Off, "never started");
}

#[test]
fn a_secondary_cpus_failure_ends_the_vm_naming_it() {
    let vm = vm(2);
    let boot = [
        call(Request::CpuStart {
            cpu: 1,
            entry: ENTRY,
            arg: 0,
        }),
        Step::Spin,
    ];
    let bad = Exit::Unexpected(crate::exit::Unexpected {
        what: "a test fault",
        code: 1,
        info: [0, 0],
    });
    let second = [Step::Exit(bad)];
    run_all(&vm, vec![Scripted::new(&boot), Scripted::new(&second)]);
    assert!(matches!(
        vm.ending(),
        Some((1, Err(VmError::Unexpected { .. })))
    ));
}

#[test]
fn stopping_every_cpu_ends_the_vm_and_a_stopped_cpu_can_start_again() {
    let vm = vm(2);
    let boot = [
        call(Request::CpuStart {
            cpu: 1,
            entry: ENTRY,
            arg: 1,
        }),
        Step::AwaitIpis(1),
        // Once vCPU 1 has stopped itself, start it again; then stop this
        // one.
        Step::Retry(Request::CpuStart {
            cpu: 1,
            entry: ENTRY,
            arg: 2,
        }),
        call(Request::CpuStop),
    ];
    let second = [
        call(Request::SendIpi(CpuSet::one(0))),
        call(Request::CpuStop),
        // Started again: the last CPU stops, and the VM with it.
        call(Request::CpuStop),
    ];
    let ended = run_all(&vm, vec![Scripted::new(&boot), Scripted::new(&second)]);
    // Whichever of the two stops last ends the VM.
    assert!(
        matches!(vm.ending(), Some((_, Err(VmError::AllCpusStopped { .. })))),
        "{:?}",
        vm.ending()
    );
    assert_eq!(ended[1].started, Some((ENTRY, 2)));
}
