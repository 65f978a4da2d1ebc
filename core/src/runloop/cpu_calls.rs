//! What the vCPUs of a VM do to each other: the firmware calls that start,
//! stop, query and suspend CPUs (SBI HSM, PSCI), inter-processor
//! interrupts and remote fences (SBI IPI and RFENCE), the work other vCPUs
//! posted for this one, and the kicks that make a vCPU notice.
//!
//! Each vCPU runs on its own host CPU. Work for another vCPU is posted in
//! its mailbox ([`crate::vm::Cpus`]) and the vCPU is kicked out of the
//! guest ([`Vcpu::kick`], a host IPI); it carries the work out on its own
//! host CPU, where its registers are, before it enters the guest again. A
//! remote fence returns to its caller only once every target has run it.

use super::{End, Next};
use crate::addr::GuestPhysAddr;
use crate::exit::{CpuPower, CpuSet, Fence, Reply, Request, Suspend};
use crate::layout::RegionKind;
use crate::stage2::{Format, Host};
use crate::vcpu::{RemoteWork, Vcpu};
use crate::vm::{Console, Devices, StartError, VcpuSlot, Vm, Work};

use super::Answer;

/// Waits, out of the guest, until this off vCPU is started (`true`, the
/// vCPU reset to its entry) or the VM ends (`false`).
pub(super) fn wait_for_start<V: Vcpu, F: Format, H: Host, C: Console>(
    slot: &mut VcpuSlot<V>,
    vm: &Vm<F, H, C>,
) -> bool {
    let me = slot.index;
    loop {
        let (work, seen) = vm.cpus.take_work(me);
        // An off vCPU has no interrupt to take and nothing cached to
        // fence: it starts with a clean slate.
        vm.cpus.confirm(me, seen);
        if work.has(Work::STOP) {
            return false;
        }
        if work.has(Work::START)
            && let Some((entry, arg)) = vm.cpus.take_start(me)
        {
            slot.vcpu.start(entry, arg);
            // An IPI sent while it was starting is pending when it runs.
            slot.vcpu.remote_work(RemoteWork {
                software_interrupt: work.has(Work::SOFTWARE_INTERRUPT),
                fence_i: true,
                flush_tlb: true,
            });
            return true;
        }
        V::idle();
    }
}

/// Carries out the work posted for this (on) vCPU; `Some` when the VM
/// ended.
pub(super) fn do_work<V: Vcpu, F: Format, H: Host, C: Console>(
    slot: &mut VcpuSlot<V>,
    vm: &Vm<F, H, C>,
) -> Option<Next> {
    let me = slot.index;
    let (work, seen) = vm.cpus.take_work(me);
    if work.has(Work::STOP) {
        return Some(Next::End(End::Stopped));
    }
    let remote = RemoteWork {
        software_interrupt: work.has(Work::SOFTWARE_INTERRUPT),
        fence_i: work.has(Work::FENCE_I),
        flush_tlb: work.has(Work::FLUSH_TLB),
    };
    if remote != RemoteWork::default() {
        slot.vcpu.remote_work(remote);
    }
    vm.cpus.confirm(me, seen);
    if work.has(Work::SYNC_INTERRUPTS) {
        let mut devices = vm.devices.lock();
        devices.select_cpu(me);
        let raised = slot.vcpu.sync_interrupts(&mut devices);
        slot.stats.count_external_injections(raised);
        kick_changed::<V, F, H, C>(me, vm, &mut devices);
    }
    None
}

/// Kicks every other vCPU whose interrupt-controller output changed.
pub(super) fn kick_changed<V: Vcpu, F: Format, H: Host, C: Console>(
    me: usize,
    vm: &Vm<F, H, C>,
    devices: &mut Devices,
) {
    for cpu in devices.lines_changed(me).iter() {
        vm.cpus.post(cpu, Work::SYNC_INTERRUPTS);
        V::kick(cpu);
    }
}

/// Whether `entry` is somewhere a started CPU can begin: guest RAM.
fn runnable<F: Format, H: Host, C: Console>(vm: &Vm<F, H, C>, entry: GuestPhysAddr) -> bool {
    vm.memory
        .lock()
        .layout()
        .region_of(entry)
        .is_some_and(|r| r.kind == RegionKind::Ram)
}

/// The vCPU index a request names, if the VM has it.
fn cpu_index<F: Format, H: Host, C: Console>(vm: &Vm<F, H, C>, cpu: u64) -> Option<usize> {
    usize::try_from(cpu).ok().filter(|&c| c < vm.cpus.count())
}

/// Serves the SMP requests: [`Request::CpuStart`], [`Request::CpuStatus`],
/// [`Request::CpuSuspend`], [`Request::SendIpi`], [`Request::RemoteFence`].
pub(super) fn serve<V: Vcpu, F: Format, H: Host, C: Console>(
    slot: &mut VcpuSlot<V>,
    vm: &Vm<F, H, C>,
    req: Request,
) -> Answer {
    Answer::Reply(match req {
        Request::CpuStart { cpu, entry, arg } => {
            let Some(cpu) = cpu_index(vm, cpu) else {
                return Answer::Reply(Reply::InvalidParam);
            };
            if !runnable(vm, entry) {
                return Answer::Reply(Reply::InvalidAddress);
            }
            match vm.cpus.start(cpu, entry, arg) {
                Ok(()) => {
                    V::kick(cpu);
                    Reply::Value(0)
                }
                Err(StartError::AlreadyOn) => Reply::AlreadyAvailable,
                Err(StartError::NoSuchCpu) => Reply::InvalidParam,
            }
        }
        Request::CpuStatus { cpu } => match cpu_index(vm, cpu) {
            Some(cpu) => Reply::CpuState(vm.cpus.power(cpu)),
            None => Reply::InvalidParam,
        },
        // Suspended vCPUs wake at once, as a wait for interrupt may: the
        // guest checks for its wake-up reason itself.
        Request::CpuSuspend(Suspend::Retentive) => Reply::Value(0),
        Request::CpuSuspend(Suspend::NonRetentive { entry, arg }) => {
            if !runnable(vm, entry) {
                return Answer::Reply(Reply::InvalidAddress);
            }
            slot.vcpu.start(entry, arg);
            return Answer::Restarted;
        }
        Request::SendIpi(set) => match targets(vm, set) {
            Some(set) => {
                for cpu in set.iter() {
                    if cpu == slot.index {
                        slot.vcpu.remote_work(RemoteWork {
                            software_interrupt: true,
                            ..RemoteWork::default()
                        });
                    } else if vm.cpus.power(cpu) != CpuPower::Off {
                        // On, or starting: a starting vCPU finds it when
                        // it runs. An off one drops it, as a stopped hart
                        // has no interrupt state.
                        vm.cpus.post(cpu, Work::SOFTWARE_INTERRUPT);
                        V::kick(cpu);
                    }
                }
                Reply::Value(0)
            }
            None => Reply::InvalidParam,
        },
        Request::RemoteFence { cpus, fence } => match targets(vm, cpus) {
            Some(set) => return remote_fence(slot, vm, set, fence),
            None => Reply::InvalidParam,
        },
        _ => Reply::NotSupported,
    })
}

/// The vCPUs of `set` that the VM has; `None` if `set` names one it has
/// not (the caller answers INVALID_PARAM). The all-harts set of the
/// decoders ([`CpuSet::MAX_CPUS`] bits) names every vCPU of the VM.
fn targets<F: Format, H: Host, C: Console>(vm: &Vm<F, H, C>, set: CpuSet) -> Option<CpuSet> {
    let all = vm.cpus.all();
    if set.0 == (1 << CpuSet::MAX_CPUS) - 1 {
        return Some(all);
    }
    (set.0 & !all.0 == 0).then_some(set)
}

/// Runs `fence` on every vCPU of `set` that is on, this one included, and
/// returns once all have: the others carry it out on their host CPUs
/// (kicked out of the guest for it) while this one keeps serving its own
/// mailbox, so two vCPUs fencing each other do not wait for each other
/// forever. A ranged or per-ASID TLB fence is run on the others as a full
/// flush of the guest's translations: more than asked, never less.
fn remote_fence<V: Vcpu, F: Format, H: Host, C: Console>(
    slot: &mut VcpuSlot<V>,
    vm: &Vm<F, H, C>,
    set: CpuSet,
    fence: Fence,
) -> Answer {
    let me = slot.index;
    let work = match fence {
        Fence::Instruction => Work::FENCE_I,
        Fence::GuestTlb { .. } => Work::FLUSH_TLB,
    };
    let mut tickets = [0u64; CpuSet::MAX_CPUS as usize];
    let mut waiting = CpuSet::default();
    for cpu in set.iter() {
        if cpu == me || vm.cpus.power(cpu) != CpuPower::On {
            continue;
        }
        tickets[cpu] = vm.cpus.post_confirmed(cpu, work);
        waiting.0 |= 1 << cpu;
        V::kick(cpu);
    }
    if set.contains(me) {
        slot.vcpu.remote_work(RemoteWork {
            software_interrupt: false,
            fence_i: work == Work::FENCE_I,
            flush_tlb: work == Work::FLUSH_TLB,
        });
    }
    while waiting.0 != 0 {
        for cpu in waiting.iter() {
            if vm.cpus.is_done(cpu, tickets[cpu]) {
                waiting.0 &= !(1 << cpu);
            }
        }
        if vm.cpus.has_work(me)
            && let Some(next) = do_work(slot, vm)
        {
            return Answer::Next(next);
        }
        core::hint::spin_loop();
    }
    Answer::Reply(Reply::Value(0))
}
