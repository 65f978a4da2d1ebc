//! The run loop: enter the guest, decode why it left, act, repeat.
//!
//! This is the whole exit policy of the hypervisor and it knows nothing of
//! the architecture: a [`Vcpu`] runs the guest and says why it stopped;
//! the VM's [`Memory`] says what each guest-physical address is and maps
//! it; its [`Devices`] are what an emulated access reaches. Each vCPU of
//! the VM runs this loop on its own host CPU; what they do to each other
//! (start a CPU, interrupt it, fence it) is in [`cpu_calls`]. A vCPU's run
//! ends when the guest asks to power off, when it meets anything it cannot
//! handle (`Err`, a [`VmError`] naming the address, the access and the
//! guest PC), or when another vCPU ended the VM.

mod cpu_calls;

use crate::addr::GuestPhysAddr;
use crate::exit::{
    Access, Exit, ExitKind, Injected, Reply, Request, ShutdownReason, immediate_reply,
};
use crate::fault;
use crate::layout::RegionKind;
use crate::stage2::{Format, Host, MapError};
use crate::vcpu::{Io, IoError, Vcpu};
use crate::vm::{Console, Devices, Memory, ReadInto, VcpuSlot, Vm, VmError};
use crate::vm::{console_read, console_write};

/// How a vCPU's run ended without an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// Its guest asked to power the VM off.
    PoweredOff,
    /// Another vCPU ended the VM.
    Stopped,
}

/// What the loop does after an exit, when it does not simply go on.
enum Next {
    /// The vCPU stopped itself (CPU_OFF): wait until started again.
    Off,
    /// The run ends.
    End(End),
}

/// Runs `slot`'s vCPU while the VM lives: waits while it is off, runs the
/// guest while it is on.
pub(crate) fn run<V: Vcpu, F: Format, H: Host, C: Console>(
    slot: &mut VcpuSlot<V>,
    vm: &Vm<F, H, C>,
) -> Result<End, VmError> {
    loop {
        if vm.cpus.power(slot.index) != crate::exit::CpuPower::On
            && !cpu_calls::wait_for_start(slot, vm)
        {
            return Ok(End::Stopped);
        }
        match run_on(slot, vm)? {
            Next::Off => continue,
            Next::End(end) => return Ok(end),
        }
    }
}

/// Runs the guest on an on vCPU until it stops itself or the run ends.
fn run_on<V: Vcpu, F: Format, H: Host, C: Console>(
    slot: &mut VcpuSlot<V>,
    vm: &Vm<F, H, C>,
) -> Result<Next, VmError> {
    let me = slot.index;
    loop {
        if vm.cpus.has_work(me)
            && let Some(next) = cpu_calls::do_work(slot, vm)
        {
            return Ok(next);
        }
        let VcpuSlot { vcpu, stats, .. } = &mut *slot;
        match vcpu.run() {
            Exit::NestedPageFault { gpa, access } => {
                nested_page_fault(slot, vm, gpa, access)?;
            }
            Exit::Hypercall(req) => {
                stats.count_exit(ExitKind::Hypercall);
                match hypercall(slot, vm, req)? {
                    Answer::Reply(reply) => slot.vcpu.finish_hypercall(reply),
                    Answer::Restarted => {}
                    Answer::Next(next) => return Ok(next),
                }
            }
            Exit::PortIo(io) => {
                stats.count_exit(ExitKind::PortIo);
                emulate(slot, vm, Io::Port(io))?;
            }
            Exit::HostTick => {
                stats.count_exit(ExitKind::HostTick);
                if let Some(ticks) = vm.limits.watchdog_ticks
                    && stats.exits(ExitKind::HostTick) >= ticks
                {
                    return Err(VmError::Watchdog {
                        ticks,
                        pc: vcpu.pc(),
                    });
                }
                // One vCPU brings host console input to the devices (whose
                // lines reach the others' through the controller); the
                // others' ticks only take back control of their host CPU.
                if slot.index == 0 {
                    let mut devices = vm.devices.lock();
                    devices.feed_input(&mut *vm.console.lock());
                    service_devices(slot, vm, &mut devices);
                }
            }
            Exit::Handled(handled) => {
                stats.count_exit(handled.kind);
                match handled.injected {
                    Some(Injected::Timer) => stats.count_timer_injection(),
                    Some(Injected::Exception) => stats.count_exception_injection(),
                    None => {}
                }
                if handled.resync {
                    service_devices(slot, vm, &mut vm.devices.lock());
                }
            }
            Exit::Unexpected(exit) => {
                stats.count_exit(ExitKind::Unexpected);
                return Err(VmError::Unexpected {
                    exit,
                    pc: vcpu.pc(),
                });
            }
        }
    }
}

/// A nested page fault: an emulated device's access is emulated (and
/// counted as a device access), anything else in a declared region is
/// mapped; an address outside every region, or an access its region does
/// not allow, stops the VM.
fn nested_page_fault<V: Vcpu, F: Format, H: Host, C: Console>(
    slot: &mut VcpuSlot<V>,
    vm: &Vm<F, H, C>,
    gpa: GuestPhysAddr,
    access: Access,
) -> Result<(), VmError> {
    let pc = slot.vcpu.pc();
    let mut memory = vm.memory.lock();
    let Memory {
        layout,
        space,
        stats: mapped,
    } = &mut *memory;
    let found = layout
        .regions()
        .iter()
        .enumerate()
        .find(|(_, r)| r.contains(gpa));
    let device = found.is_some_and(|(_, r)| r.kind == RegionKind::Device);
    slot.stats.count_exit(if device {
        ExitKind::Mmio
    } else {
        ExitKind::NestedPageFault
    });
    let found = found.ok_or(VmError::WildAccess { gpa, access, pc })?;
    if !found.1.perms.allows(access) {
        return Err(VmError::Forbidden {
            gpa,
            access,
            region: found.1.name,
            pc,
        });
    }
    if device {
        drop(memory);
        return emulate(slot, vm, Io::Mmio { gpa, access });
    }
    // Mapped here from the region just found rather than through
    // `Memory::map_fault` (which looks it up by index): the call costs
    // 16-30 instructions per fault (riscv64, aarch64) under -icount.
    match fault::map_fault(space, mapped, found, gpa, vm.limits.ram_blocks) {
        Ok(()) => Ok(()),
        // Another vCPU mapped it between this one's fault and the lock:
        // the access succeeds when the guest retries it.
        Err(MapError::AlreadyMapped { .. }) if vm.cpus.count() > 1 => Ok(()),
        Err(error) => Err(VmError::MapFailed { gpa, error, pc }),
    }
}

/// What the loop does with a hypercall.
enum Answer {
    /// Return this to the guest and step past the call.
    Reply(Reply),
    /// The vCPU was reset to a new entry (a non-retentive suspend): no
    /// reply.
    Restarted,
    /// Stop this vCPU, or end its run.
    Next(Next),
}

/// The answer to a hypercall.
fn hypercall<V: Vcpu, F: Format, H: Host, C: Console>(
    slot: &mut VcpuSlot<V>,
    vm: &Vm<F, H, C>,
    req: Request,
) -> Result<Answer, VmError> {
    let pc = slot.vcpu.pc();
    Ok(Answer::Reply(match req {
        Request::Shutdown(ShutdownReason::Normal) => {
            return Ok(Answer::Next(Next::End(End::PoweredOff)));
        }
        Request::Shutdown(ShutdownReason::Failure(reason)) => {
            return Err(VmError::GuestFailure { reason, pc });
        }
        Request::Shutdown(ShutdownReason::Reboot { kind, reason }) => {
            return Err(VmError::RebootRequested { kind, reason, pc });
        }
        Request::CpuStop => {
            // When the last CPU stops, none is left to start another.
            if vm.cpus.stop(slot.index) {
                return Err(VmError::AllCpusStopped { pc });
            }
            return Ok(Answer::Next(Next::Off));
        }
        Request::CpuStart { .. }
        | Request::CpuStatus { .. }
        | Request::CpuSuspend(_)
        | Request::SendIpi(_)
        | Request::RemoteFence { .. } => return Ok(cpu_calls::serve(slot, vm, req)),
        Request::Sleep { sleep_type } => return Err(VmError::SleepRequested { sleep_type, pc }),
        Request::ConsolePutByte(b) => {
            vm.console.lock().write(&[b]);
            Reply::Value(0)
        }
        Request::ConsoleWrite { gpa, len } => {
            console_write(&vm.memory.lock(), &mut *vm.console.lock(), gpa, len)
        }
        Request::ConsoleGetByte => {
            let mut byte = [0];
            let mut devices = vm.devices.lock();
            if devices.take_input(&mut *vm.console.lock(), &mut byte) == 1 {
                Reply::Value(u64::from(byte[0]))
            } else {
                Reply::Value(u64::MAX)
            }
        }
        Request::ConsoleRead { gpa, len } => {
            let into = ReadInto {
                gpa,
                len,
                pc,
                blocks: vm.limits.ram_blocks,
            };
            let mut devices = vm.devices.lock();
            let mut memory = vm.memory.lock();
            console_read(&mut memory, &mut devices, &mut *vm.console.lock(), into)?
        }
        Request::Null => Reply::Value(0),
        // A hart's own timer, software interrupt and fences are its vCPU's
        // business ([`Exit::Handled`]); one that reaches the loop came from
        // a vCPU without them.
        Request::SetTimer { .. }
        | Request::SelfIpi
        | Request::ClearIpi
        | Request::LocalFence(_) => Reply::NotSupported,
        other => immediate_reply(&other).unwrap_or(Reply::NotSupported),
    }))
}

/// After device activity (the devices locked by the caller): the devices'
/// output goes to the console, their lines to the controller, this vCPU
/// syncs its interrupts with it, and the other vCPUs whose controller
/// output changed are kicked to sync theirs.
fn service_devices<V: Vcpu, F: Format, H: Host, C: Console>(
    slot: &mut VcpuSlot<V>,
    vm: &Vm<F, H, C>,
    devices: &mut Devices,
) {
    devices.select_cpu(slot.index);
    devices.service_to(|bytes| vm.console.lock().write(bytes));
    let raised = slot.vcpu.sync_interrupts(devices);
    slot.stats.count_external_injections(raised);
    if vm.cpus.count() > 1 {
        cpu_calls::kick_changed::<V, F, H, C>(slot.index, vm, devices);
    }
}

/// Has the vCPU complete the device access `io` against the VM's devices,
/// then services them; the VM stops if the access cannot be completed.
fn emulate<V: Vcpu, F: Format, H: Host, C: Console>(
    slot: &mut VcpuSlot<V>,
    vm: &Vm<F, H, C>,
    io: Io,
) -> Result<(), VmError> {
    let mut devices = vm.devices.lock();
    devices.select_cpu(slot.index);
    // Guest memory is locked only if the vCPU reads it (an instruction
    // without a syndrome): most device accesses need only the devices.
    let memory = LockedMemory(&vm.memory);
    let result = slot.vcpu.emulate_io(io, &mut devices, &memory);
    result.map_err(|e| {
        let pc = slot.vcpu.pc();
        match (e, io) {
            (IoError::Refused { access, error }, Io::Mmio { .. }) => {
                VmError::DeviceFault { access, error, pc }
            }
            (IoError::Refused { error, .. }, Io::Port(io)) => VmError::PortFault { io, error, pc },
            (IoError::Unemulated(what), Io::Mmio { gpa, .. }) => {
                VmError::Unemulated { gpa, what, pc }
            }
            (IoError::Unemulated(what), Io::Port(io)) => VmError::Unemulated {
                gpa: GuestPhysAddr::new(u64::from(io.port)),
                what,
                pc,
            },
        }
    })?;
    service_devices(slot, vm, &mut devices);
    Ok(())
}

/// The VM's memory as a device emulation reads it: locked for each read,
/// under the devices' lock (the lock order is devices, memory, console).
struct LockedMemory<'a, F: Format, H: Host>(&'a spin::Mutex<Memory<F, H>>);

impl<F: Format, H: Host> crate::guest_memory::GuestMemory for LockedMemory<'_, F, H> {
    fn read(&self, gpa: GuestPhysAddr, buf: &mut [u8]) -> usize {
        crate::guest_memory::GuestMemory::read(&self.0.lock().space, gpa, buf)
    }
}

#[cfg(test)]
mod smp_tests;
#[cfg(test)]
mod tests;
