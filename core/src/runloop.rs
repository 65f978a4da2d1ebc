//! The run loop: enter the guest, decode why it left, act, repeat.
//!
//! This is the whole exit policy of the hypervisor and it knows nothing of
//! the architecture: a [`Vcpu`] runs the guest and says why it stopped;
//! the VM's [`Memory`] says what each guest-physical address is and maps
//! it; its [`Devices`] are what an emulated access reaches. The loop ends
//! when the guest asks to power off (`Ok`) or on anything it cannot handle
//! (`Err`, a [`VmError`] naming the address, the access and the guest PC).

use crate::addr::GuestPhysAddr;
use crate::exit::{
    Access, Exit, ExitKind, Injected, Reply, Request, ShutdownReason, immediate_reply,
};
use crate::fault;
use crate::layout::RegionKind;
use crate::stage2::{Format, Host};
use crate::stats::Stats;
use crate::vcpu::{Io, IoError, Vcpu};
use crate::vm::{Console, Devices, Limits, Memory, ReadInto, VcpuSlot, VmError};
use crate::vm::{console_read, console_write};

/// What of its VM a running vCPU uses: everything but the other vCPUs.
pub(crate) struct Shared<'a, F: Format, H: Host, C: Console> {
    pub memory: &'a mut Memory<F, H>,
    pub devices: &'a mut Devices,
    pub console: &'a mut C,
    pub limits: &'a Limits,
}

/// Runs `slot`'s vCPU until the guest powers off or fails.
pub(crate) fn run<V: Vcpu, F: Format, H: Host, C: Console>(
    slot: &mut VcpuSlot<V>,
    vm: &mut Shared<'_, F, H, C>,
) -> Result<(), VmError> {
    let VcpuSlot { vcpu, stats } = slot;
    loop {
        match vcpu.run() {
            Exit::NestedPageFault { gpa, access } => {
                nested_page_fault(vcpu, stats, vm, gpa, access)?
            }
            Exit::Hypercall(req) => {
                stats.count_exit(ExitKind::Hypercall);
                match hypercall(vcpu, vm, req)? {
                    Some(reply) => vcpu.finish_hypercall(reply),
                    None => return Ok(()),
                }
            }
            Exit::PortIo(io) => {
                stats.count_exit(ExitKind::PortIo);
                emulate(vcpu, vm, Io::Port(io))?;
                service_devices(vcpu, stats, vm);
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
                vm.devices.feed_input(vm.console);
                service_devices(vcpu, stats, vm);
            }
            Exit::Handled(handled) => {
                stats.count_exit(handled.kind);
                match handled.injected {
                    Some(Injected::Timer) => stats.count_timer_injection(),
                    Some(Injected::Exception) => stats.count_exception_injection(),
                    None => {}
                }
                if handled.resync {
                    service_devices(vcpu, stats, vm);
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
    vcpu: &mut V,
    stats: &mut Stats,
    vm: &mut Shared<'_, F, H, C>,
    gpa: GuestPhysAddr,
    access: Access,
) -> Result<(), VmError> {
    let pc = vcpu.pc();
    let Memory {
        layout,
        space,
        stats: mapped,
    } = &mut *vm.memory;
    let found = layout
        .regions()
        .iter()
        .enumerate()
        .find(|(_, r)| r.contains(gpa));
    let device = found.is_some_and(|(_, r)| r.kind == RegionKind::Device);
    stats.count_exit(if device {
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
        emulate(vcpu, vm, Io::Mmio { gpa, access })?;
        service_devices(vcpu, stats, vm);
        Ok(())
    } else {
        // Mapped here from the region just found rather than through
        // `Memory::map_fault` (which looks it up by index): the call costs
        // 16-30 instructions per fault (riscv64, aarch64) under -icount.
        fault::map_fault(space, mapped, found, gpa, vm.limits.ram_blocks)
            .map_err(|error| VmError::MapFailed { gpa, error, pc })
    }
}

/// The reply to a hypercall; `None` when the guest powered off cleanly.
fn hypercall<V: Vcpu, F: Format, H: Host, C: Console>(
    vcpu: &mut V,
    vm: &mut Shared<'_, F, H, C>,
    req: Request,
) -> Result<Option<Reply>, VmError> {
    let pc = vcpu.pc();
    Ok(Some(match req {
        Request::Shutdown(ShutdownReason::Normal) => return Ok(None),
        Request::Shutdown(ShutdownReason::Failure(reason)) => {
            return Err(VmError::GuestFailure { reason, pc });
        }
        Request::Shutdown(ShutdownReason::Reboot { kind, reason }) => {
            return Err(VmError::RebootRequested { kind, reason, pc });
        }
        // One vCPU: when it stops, no CPU is left to start it again.
        Request::CpuStop => return Err(VmError::AllCpusStopped { pc }),
        Request::Sleep { sleep_type } => return Err(VmError::SleepRequested { sleep_type, pc }),
        Request::ConsolePutByte(b) => {
            vm.console.write(&[b]);
            Reply::Value(0)
        }
        Request::ConsoleWrite { gpa, len } => console_write(vm.memory, vm.console, gpa, len),
        Request::ConsoleGetByte => {
            let mut byte = [0];
            if vm.devices.take_input(vm.console, &mut byte) == 1 {
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
            console_read(vm.memory, vm.devices, vm.console, into)?
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

/// After device activity: the devices' output goes to the console, their
/// lines to the controller, and the vCPU syncs its interrupts with it.
fn service_devices<V: Vcpu, F: Format, H: Host, C: Console>(
    vcpu: &mut V,
    stats: &mut Stats,
    vm: &mut Shared<'_, F, H, C>,
) {
    vm.devices.service(vm.console);
    let raised = vcpu.sync_interrupts(vm.devices);
    stats.count_external_injections(raised);
}

/// Has the vCPU complete the device access `io` against the VM's devices;
/// the VM stops if it cannot.
fn emulate<V: Vcpu, F: Format, H: Host, C: Console>(
    vcpu: &mut V,
    vm: &mut Shared<'_, F, H, C>,
    io: Io,
) -> Result<(), VmError> {
    let result = vcpu.emulate_io(io, vm.devices, &vm.memory.space);
    result.map_err(|e| {
        let pc = vcpu.pc();
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
    })
}

#[cfg(test)]
mod tests;
