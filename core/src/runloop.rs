//! The run loop: enter the guest, decode why it left, act, repeat.
//!
//! This is the whole policy of the hypervisor and it knows nothing of the
//! architecture: a [`Vcpu`] runs the guest and says why it stopped, the
//! [`AddressSpace`] holds the stage-2 tables, the [`GuestLayout`] says what
//! each guest-physical address is. The loop ends when the guest asks to
//! power off (`Ok`) or on anything it cannot handle (`Err`, with a
//! diagnostic naming the address, the access and the guest PC).

extern crate alloc;

use crate::addr::{GuestPhysAddr, GuestVirtAddr};
use crate::devices::{Bus, BusError, InterruptMessage, MmioAccess};
use crate::exit::ExitKind;
use crate::exit::{
    Access, Exit, Fence, PortIo, RebootKind, Reply, Request, ShutdownReason, Unexpected,
    immediate_reply,
};
use crate::fault;
use crate::guest_memory::GuestMemory;
use crate::layout::{GuestLayout, Region, RegionKind};
use crate::stage2::{AddressSpace, Format, Host, MapError};
use crate::stats::Stats;
use alloc::collections::VecDeque;

/// One virtual CPU, as the run loop drives it.
pub trait Vcpu {
    /// Enters the guest and returns when it exits.
    fn run(&mut self) -> Exit;
    /// The guest program counter (for diagnostics).
    fn pc(&self) -> GuestVirtAddr;
    /// Returns `reply` to the guest's pending hypercall and steps past it.
    fn finish_hypercall(&mut self, reply: Reply);
    /// Arms the guest timer for `deadline` (`u64::MAX` disarms) and
    /// withdraws a timer interrupt already delivered.
    fn set_timer(&mut self, deadline: u64);
    /// Delivers the guest's timer interrupt.
    fn deliver_timer(&mut self);
    /// Decodes the guest instruction whose access to the emulated device
    /// at `gpa` trapped into a typed access (with the value for a store).
    /// `mem` is guest memory, for a vCPU that must fetch the instruction
    /// itself through the guest's page tables (x86). The default refuses: a
    /// vCPU without device emulation.
    fn decode_mmio(
        &mut self,
        _gpa: GuestPhysAddr,
        _access: Access,
        _mem: &dyn GuestMemory,
    ) -> Result<MmioAccess, Unemulated> {
        Err(Unemulated {
            insn: 0,
            why: "this vCPU does not emulate device accesses",
        })
    }
    /// Completes the access [`Vcpu::decode_mmio`] decoded: `value` goes to
    /// the destination register of a load; the guest steps past it. For an
    /// instruction that reads and then writes the device (x86's `AND`,
    /// `OR`, `XOR` to memory), the read's completion computes the write,
    /// which [`Vcpu::next_mmio`] then hands out, and the guest steps past
    /// the instruction when that write completes.
    fn finish_mmio(&mut self, _value: u64) {}
    /// The next access of the instruction being emulated, if it makes one
    /// more (the write of a read-modify-write), after [`Vcpu::finish_mmio`].
    /// The default has none.
    fn next_mmio(&mut self) -> Option<MmioAccess> {
        None
    }
    /// Completes an [`Exit::PortIo`]: `value` (an `IN`'s result, 0 for an
    /// `OUT`) goes to the guest's accumulator; the guest steps past it.
    fn finish_pio(&mut self, _value: u64) {}
    /// Drives the guest's external interrupt line (the interrupt
    /// controller's output for this vCPU).
    fn set_external_irq(&mut self, _level: bool) {}
    /// Hands an interrupt message from the interrupt controller (the x86
    /// I/O APIC) to the vCPU's own controller (its local APIC); true if it
    /// accepted the vector. The default has no such controller.
    fn deliver_message(&mut self, _message: InterruptMessage) -> bool {
        false
    }
    /// A level-triggered vector the guest ended since the last call (the
    /// local APIC's EOI broadcast), for the interrupt controller. The
    /// default has none.
    fn take_level_eoi(&mut self) -> Option<u8> {
        None
    }
    /// The levels of the guest timers' interrupt outputs, for a vCPU whose
    /// timer interrupts reach the guest through the emulated interrupt
    /// controller ([`Devices::timer_irqs`], same order); `None` for a timer
    /// the vCPU does not have or delivers itself ([`Vcpu::deliver_timer`]).
    fn timer_irq_levels(&mut self) -> [Option<bool>; GUEST_TIMERS] {
        [None; GUEST_TIMERS]
    }
    /// Makes the guest's supervisor software interrupt pending (an
    /// inter-processor interrupt the guest sent its own hart); it stays
    /// pending until the guest clears it. The default does nothing: a
    /// vCPU whose calling convention has no IPI call.
    fn raise_software_interrupt(&mut self) {}
    /// Withdraws the guest's pending supervisor software interrupt;
    /// answers whether one was pending. The default has none.
    fn clear_software_interrupt(&mut self) -> bool {
        false
    }
    /// Runs `fence` on this vCPU's hart for the guest before it next runs.
    /// The default does nothing: a vCPU whose calling convention has no
    /// fence call.
    fn local_fence(&mut self, _fence: Fence) {}
}

/// A guest instruction that touched an emulated device but cannot be
/// emulated (an atomic operation on a device register, say).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unemulated {
    /// The instruction's bits, as far as they are known.
    pub insn: u64,
    /// What is wrong with it.
    pub why: &'static str,
}

/// The most guest timers whose interrupts go through the emulated
/// interrupt controller (aarch64 has two: EL1 physical and virtual).
pub const GUEST_TIMERS: usize = 2;

/// The VM's emulated devices and how their interrupts reach the vCPU.
pub struct Devices {
    /// Device models by guest-physical range.
    pub bus: Bus,
    /// Device models by x86 I/O port range: a second bus whose addresses
    /// are port numbers. It has no interrupt controller of its own: the
    /// lines of its wired devices go to `bus`'s (COM1's IRQ 4 to I/O APIC
    /// pin 4).
    pub ports: Bus,
    /// The interrupt controller output that is this vCPU's external
    /// interrupt line (the PLIC's S-mode context of hart 0, ...).
    pub irq_context: usize,
    /// The interrupt-controller inputs the guest's timers are wired to,
    /// where their interrupts go through the controller (aarch64: the EL1
    /// physical timer on PPI 30, the virtual timer on PPI 27).
    pub timer_irqs: [Option<u32>; GUEST_TIMERS],
    /// The level last given to the vCPU.
    line: bool,
    /// Console input read from the host that no device has taken yet.
    pending_input: VecDeque<u8>,
}

impl Devices {
    /// `bus`, with `irq_context` as the vCPU's external interrupt line.
    pub fn new(bus: Bus, irq_context: usize) -> Self {
        Devices {
            bus,
            ports: Bus::new(),
            irq_context,
            timer_irqs: [None; GUEST_TIMERS],
            line: false,
            pending_input: VecDeque::new(),
        }
    }
}

/// What the run loop enforces or chooses beyond the guest's own behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Stop the guest after this many host ticks (`None`: never).
    pub watchdog_ticks: Option<u64>,
    /// Map guest RAM with 2 MiB blocks where they fit (see
    /// [`crate::fault`]); off, every RAM fault maps one 4 KiB page.
    pub ram_blocks: bool,
}

impl Default for Limits {
    /// No watchdog; RAM in blocks, as `/etc/vm.conf` has it by default.
    fn default() -> Self {
        Limits {
            watchdog_ticks: None,
            ram_blocks: true,
        }
    }
}

/// Where guest console output goes.
pub trait Console {
    /// Prints `bytes` for the user.
    fn write(&mut self, bytes: &[u8]);
    /// Reads bytes the user typed, without waiting; returns how many.
    fn read(&mut self, _buf: &mut [u8]) -> usize {
        0
    }
}

/// Why the VM was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmError {
    /// The guest touched an address outside every declared region.
    WildAccess {
        /// The faulting address.
        gpa: GuestPhysAddr,
        /// What the guest tried to do.
        access: Access,
        /// The guest PC at the fault.
        pc: GuestVirtAddr,
    },
    /// The guest accessed a declared region in a way it does not allow.
    Forbidden {
        /// The faulting address.
        gpa: GuestPhysAddr,
        /// What the guest tried to do.
        access: Access,
        /// The region's name.
        region: &'static str,
        /// The guest PC at the fault.
        pc: GuestVirtAddr,
    },
    /// Mapping the page failed.
    MapFailed {
        /// The faulting address.
        gpa: GuestPhysAddr,
        /// Why the page could not be mapped.
        error: MapError,
        /// The guest PC at the fault.
        pc: GuestVirtAddr,
    },
    /// An exit the hypervisor does not handle.
    Unexpected {
        /// The decoded exit.
        exit: Unexpected,
        /// The guest PC at the exit.
        pc: GuestVirtAddr,
    },
    /// The guest asked to be rebooted; this hypervisor runs its one guest
    /// once and does not start it again.
    RebootRequested {
        /// Which reboot.
        kind: RebootKind,
        /// The reason code the guest gave.
        reason: u64,
        /// The guest PC at the request.
        pc: GuestVirtAddr,
    },
    /// The guest asked to power off because it failed.
    GuestFailure {
        /// The reason code the guest gave.
        reason: u64,
        /// The guest PC at the request.
        pc: GuestVirtAddr,
    },
    /// A device access the vCPU could not decode into a load or store.
    Unemulated {
        /// The device address.
        gpa: GuestPhysAddr,
        /// The instruction and why it cannot be emulated.
        what: Unemulated,
        /// The guest PC.
        pc: GuestVirtAddr,
    },
    /// A device model refused an access (a width or offset it lacks).
    DeviceFault {
        /// The access as decoded.
        access: MmioAccess,
        /// The bus's or the device's reason.
        error: BusError,
        /// The guest PC.
        pc: GuestVirtAddr,
    },
    /// A port-I/O access no port device takes, or one it refuses.
    PortFault {
        /// The access as decoded.
        io: PortIo,
        /// The bus's or the device's reason.
        error: BusError,
        /// The guest PC.
        pc: GuestVirtAddr,
    },
    /// The guest ran longer than the watchdog allows.
    Watchdog {
        /// The limit, in host ticks.
        ticks: u64,
        /// The guest PC when it fired.
        pc: GuestVirtAddr,
    },
}

impl core::fmt::Display for VmError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            VmError::WildAccess { gpa, access, pc } => write!(
                f,
                "guest {access} at guest-physical address {gpa:#x}, which is outside every region the hypervisor declared (guest PC {pc:#x})"
            ),
            VmError::Forbidden {
                gpa,
                access,
                region,
                pc,
            } => write!(
                f,
                "guest {access} at guest-physical address {gpa:#x} is not allowed in region `{region}` (guest PC {pc:#x})"
            ),
            VmError::MapFailed { gpa, error, pc } => {
                write!(
                    f,
                    "cannot map guest-physical address {gpa:#x}: {error} (guest PC {pc:#x})"
                )
            }
            VmError::Unexpected { exit, pc } => write!(
                f,
                "unexpected VM exit: {} (code {:#x}, info {:#x} {:#x}) at guest PC {pc:#x}",
                exit.what, exit.code, exit.info[0], exit.info[1]
            ),
            VmError::Unemulated { gpa, what, pc } => write!(
                f,
                "guest access to the emulated device at guest-physical address {gpa:#x} cannot be emulated: {} (instruction {:#x}, guest PC {pc:#x})",
                what.why, what.insn
            ),
            VmError::DeviceFault { access, error, pc } => {
                write!(
                    f,
                    "emulated device refused a {access}: {error} (guest PC {pc:#x})"
                )
            }
            VmError::PortFault { io, error, pc } => match error {
                BusError::NoDevice { .. } => {
                    write!(f, "guest {io}: no device at that port (guest PC {pc:#x})")
                }
                error => write!(f, "guest {io}: {error} (guest PC {pc:#x})"),
            },
            VmError::Watchdog { ticks, pc } => write!(
                f,
                "watchdog: the guest ran for {ticks} host ticks without powering off (guest PC {pc:#x})"
            ),
            VmError::RebootRequested { kind, reason, pc } => write!(
                f,
                "the guest asked for a {kind} reboot (reason {reason}) at guest PC {pc:#x}; this hypervisor runs its one guest once and does not reboot it"
            ),
            VmError::GuestFailure { reason, pc } => {
                write!(
                    f,
                    "the guest asked to power off because it failed (reason {reason}) at guest PC {pc:#x}"
                )
            }
        }
    }
}

/// `found`, the region (and its index in the layout) a fault at `gpa`
/// falls in, if there is one and it allows `access`; else why the VM stops.
fn allowed_region(
    found: Option<(usize, &Region)>,
    gpa: GuestPhysAddr,
    access: Access,
    pc: GuestVirtAddr,
) -> Result<(usize, &Region), VmError> {
    let (index, region) = found.ok_or(VmError::WildAccess { gpa, access, pc })?;
    if !region.perms.allows(access) {
        return Err(VmError::Forbidden {
            gpa,
            access,
            region: region.name,
            pc,
        });
    }
    Ok((index, region))
}

/// Serves a nested page fault in `region` (number `index` of the layout):
/// maps the block or page [`fault::map_fault`] chooses, and counts it.
fn map_fault<F: Format, H: Host>(
    space: &mut AddressSpace<F, H>,
    stats: &mut Stats,
    found: (usize, &Region),
    gpa: GuestPhysAddr,
    pc: GuestVirtAddr,
    blocks: bool,
) -> Result<(), VmError> {
    fault::map_fault(space, stats, found, gpa, blocks).map_err(|error| VmError::MapFailed {
        gpa,
        error,
        pc,
    })
}

/// Runs the guest until it powers off or fails.
pub fn run<V: Vcpu, F: Format, H: Host, C: Console>(
    vcpu: &mut V,
    space: &mut AddressSpace<F, H>,
    layout: &GuestLayout,
    devices: &mut Devices,
    console: &mut C,
    stats: &mut Stats,
    limits: &Limits,
) -> Result<(), VmError> {
    loop {
        let exit = vcpu.run();
        match exit {
            Exit::NestedPageFault { gpa, access } => {
                // A device region is never mapped: its faults are device
                // accesses. Everything else (a wild access too) is a fault.
                let found = layout
                    .regions
                    .iter()
                    .enumerate()
                    .find(|(_, r)| r.contains(gpa));
                let device = found.is_some_and(|(_, r)| r.kind == RegionKind::Device);
                stats.count_exit(if device {
                    ExitKind::Mmio
                } else {
                    ExitKind::NestedPageFault
                });
                let found = allowed_region(found, gpa, access, vcpu.pc())?;
                if device {
                    // A timer line that dropped since the last exit (the
                    // guest re-armed its virtual timer, which does not
                    // trap) must be low before the access is emulated: an
                    // end-of-interrupt write would re-pend a line still up.
                    update_timer_lines(vcpu, devices);
                    emulate_mmio(vcpu, devices, &*space, gpa, access)?;
                    service_devices(vcpu, devices, console, stats);
                } else {
                    map_fault(space, stats, found, gpa, vcpu.pc(), limits.ram_blocks)?;
                }
            }
            Exit::Hypercall(req) => {
                stats.count_exit(ExitKind::Hypercall);
                let reply = match req {
                    Request::Shutdown(ShutdownReason::Normal) => return Ok(()),
                    Request::Shutdown(ShutdownReason::Failure(reason)) => {
                        return Err(VmError::GuestFailure {
                            reason,
                            pc: vcpu.pc(),
                        });
                    }
                    Request::Shutdown(ShutdownReason::Reboot { kind, reason }) => {
                        return Err(VmError::RebootRequested {
                            kind,
                            reason,
                            pc: vcpu.pc(),
                        });
                    }
                    Request::ConsolePutByte(b) => {
                        console.write(&[b]);
                        Reply::Value(0)
                    }
                    Request::ConsoleWrite { gpa, len } => {
                        console_write(space, layout, console, gpa, len)
                    }
                    Request::ConsoleGetByte => {
                        let mut byte = [0];
                        if take_input(devices, console, &mut byte) == 1 {
                            Reply::Value(u64::from(byte[0]))
                        } else {
                            Reply::Value(u64::MAX)
                        }
                    }
                    Request::ConsoleRead { gpa, len } => {
                        let pc = vcpu.pc();
                        let blocks = limits.ram_blocks;
                        console_read(space, layout, devices, console, stats, gpa, len, pc, blocks)?
                    }
                    Request::SelfIpi => {
                        vcpu.raise_software_interrupt();
                        Reply::Value(0)
                    }
                    Request::ClearIpi => Reply::Value(u64::from(vcpu.clear_software_interrupt())),
                    Request::LocalFence(fence) => {
                        vcpu.local_fence(fence);
                        Reply::Value(0)
                    }
                    Request::SetTimer { deadline } => {
                        vcpu.set_timer(deadline);
                        Reply::Value(0)
                    }
                    Request::Null => Reply::Value(0),
                    other => {
                        immediate_reply(&other).expect("every other request has an immediate reply")
                    }
                };
                vcpu.finish_hypercall(reply);
            }
            Exit::TimerExpired => {
                stats.count_exit(ExitKind::Timer);
                stats.count_timer_injection();
                vcpu.deliver_timer();
                sync_timer_line(vcpu, devices, console, stats);
            }
            Exit::SysReg => {
                stats.count_exit(ExitKind::SysReg);
                sync_timer_line(vcpu, devices, console, stats);
            }
            Exit::InjectedFault { class } => {
                stats.count_exit(class);
                stats.count_exception_injection();
            }
            Exit::Reflected => stats.count_exit(ExitKind::Reflected),
            Exit::PortIo(io) => {
                stats.count_exit(ExitKind::PortIo);
                let addr = GuestPhysAddr::new(u64::from(io.port));
                let access = match io.write {
                    Some(v) => MmioAccess::write(addr, io.width, v),
                    None => MmioAccess::read(addr, io.width),
                };
                let value = devices
                    .ports
                    .access(&access)
                    .map_err(|error| VmError::PortFault {
                        io,
                        error,
                        pc: vcpu.pc(),
                    })?;
                vcpu.finish_pio(value);
                service_devices(vcpu, devices, console, stats);
            }
            Exit::HostTick => {
                stats.count_exit(ExitKind::HostTick);
                if let Some(ticks) = limits.watchdog_ticks
                    && stats.exits(ExitKind::HostTick) >= ticks
                {
                    return Err(VmError::Watchdog {
                        ticks,
                        pc: vcpu.pc(),
                    });
                }
                feed_input(devices, console);
                service_devices(vcpu, devices, console, stats);
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

/// Decodes the trapped access, performs it on the bus and completes it,
/// and any further access of the same instruction.
fn emulate_mmio<V: Vcpu>(
    vcpu: &mut V,
    devices: &mut Devices,
    mem: &dyn GuestMemory,
    gpa: GuestPhysAddr,
    access: Access,
) -> Result<(), VmError> {
    let decoded = vcpu
        .decode_mmio(gpa, access, mem)
        .map_err(|what| VmError::Unemulated {
            gpa,
            what,
            pc: vcpu.pc(),
        })?;
    let mut access = decoded;
    loop {
        let value = devices
            .bus
            .access(&access)
            .map_err(|error| VmError::DeviceFault {
                access,
                error,
                pc: vcpu.pc(),
            })?;
        vcpu.finish_mmio(value);
        match vcpu.next_mmio() {
            Some(next) => access = next,
            None => return Ok(()),
        }
    }
}

/// Moves host console input into the devices, as far as they take it.
fn feed_input<C: Console>(devices: &mut Devices, console: &mut C) {
    let mut buf = [0u8; 64];
    if devices.pending_input.len() < buf.len() {
        let n = console.read(&mut buf);
        devices.pending_input.extend(&buf[..n]);
    }
    while let Some(&byte) = devices.pending_input.front() {
        if !devices.bus.push_console_input(byte) && !devices.ports.push_console_input(byte) {
            break;
        }
        devices.pending_input.pop_front();
    }
}

/// Takes console input for an SBI read: first what the devices have not
/// taken, then what the host has; returns how many bytes went into `buf`.
/// Bytes a device model (a UART) already holds stay with it.
fn take_input<C: Console>(devices: &mut Devices, console: &mut C, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        let Some(byte) = devices.pending_input.pop_front() else {
            break;
        };
        buf[n] = byte;
        n += 1;
    }
    n + console.read(&mut buf[n..])
}

/// Copies the guest timers' interrupt levels into the interrupt
/// controller, where a timer is wired to one.
fn update_timer_lines<V: Vcpu>(vcpu: &mut V, devices: &mut Devices) {
    for (source, level) in devices.timer_irqs.into_iter().zip(vcpu.timer_irq_levels()) {
        if let (Some(source), Some(level)) = (source, level) {
            devices.bus.set_irq_line(source, level);
        }
    }
}

/// [`update_timer_lines`], then brings the vCPU's line to the controller's
/// output; nothing where no timer is wired to the controller (the vCPU
/// delivers its timer itself, and nothing else changed on this exit).
fn sync_timer_line<V: Vcpu, C: Console>(
    vcpu: &mut V,
    devices: &mut Devices,
    console: &mut C,
    stats: &mut Stats,
) {
    if devices.timer_irqs.iter().any(Option::is_some) {
        update_timer_lines(vcpu, devices);
        service_devices(vcpu, devices, console, stats);
    }
}

/// Prints what the devices transmitted and brings the interrupt state to
/// the vCPU: level-triggered interrupts it ended go back to the controller
/// (before any line is looked at, so that one still asserted comes again),
/// the port devices' lines go to the controller, its messages to the vCPU
/// (each one accepted counts as an external injection), and the vCPU's
/// external interrupt line follows the controller's output.
fn service_devices<V: Vcpu, C: Console>(
    vcpu: &mut V,
    devices: &mut Devices,
    console: &mut C,
    stats: &mut Stats,
) {
    devices
        .bus
        .drain_console_output(|bytes| console.write(bytes));
    devices
        .ports
        .drain_console_output(|bytes| console.write(bytes));
    while let Some(vector) = vcpu.take_level_eoi() {
        devices.bus.end_of_interrupt(vector);
    }
    for (source, level) in devices.ports.wired_lines() {
        devices.bus.set_irq_line(source, level);
    }
    while let Some(message) = devices.bus.take_message() {
        if vcpu.deliver_message(message) {
            stats.count_external_injection();
        }
    }
    let level = devices.bus.external_irq(devices.irq_context);
    if level != devices.line {
        if level {
            stats.count_external_injection();
        }
        devices.line = level;
        vcpu.set_external_irq(level);
    }
}

/// Prints `len` bytes of guest RAM at `gpa`; answers how many were printed.
/// Only guest RAM may be named, and only the part the guest has touched
/// (an untouched page cannot hold anything the guest wrote).
fn console_write<F: Format, H: Host, C: Console>(
    space: &AddressSpace<F, H>,
    layout: &GuestLayout,
    console: &mut C,
    gpa: GuestPhysAddr,
    len: u64,
) -> Reply {
    let Some(ram) = layout.ram() else {
        return Reply::InvalidAddress;
    };
    let Some(end) = gpa.checked_add(len) else {
        return Reply::InvalidParam;
    };
    if !ram.contains(gpa) || end > ram.end() {
        return Reply::InvalidAddress;
    }
    let mut buf = [0u8; 128];
    let mut done = 0u64;
    while done < len {
        let n = ((len - done) as usize).min(buf.len());
        let got = space.read(gpa + done, &mut buf[..n]);
        console.write(&buf[..got]);
        done += got as u64;
        if got < n {
            break;
        }
    }
    Reply::Value(done)
}

/// Reads console input into `len` bytes of guest RAM at `gpa`, without
/// waiting; answers how many bytes were read. The same addresses as for
/// [`console_write`] are accepted; pages of the buffer the guest has not
/// touched yet are mapped first, as its own first access would (with a
/// whole block if `blocks` is on and one fits).
#[allow(clippy::too_many_arguments)]
fn console_read<F: Format, H: Host, C: Console>(
    space: &mut AddressSpace<F, H>,
    layout: &GuestLayout,
    devices: &mut Devices,
    console: &mut C,
    stats: &mut Stats,
    gpa: GuestPhysAddr,
    len: u64,
    pc: GuestVirtAddr,
    blocks: bool,
) -> Result<Reply, VmError> {
    let Some(ram) = layout.ram() else {
        return Ok(Reply::InvalidAddress);
    };
    let Some(end) = gpa.checked_add(len) else {
        return Ok(Reply::InvalidParam);
    };
    if !ram.contains(gpa) || end > ram.end() {
        return Ok(Reply::InvalidAddress);
    }
    let mut buf = [0u8; 64];
    let want = len.min(buf.len() as u64) as usize;
    let got = take_input(devices, console, &mut buf[..want]);
    let index = layout
        .regions
        .iter()
        .position(|r| core::ptr::eq(r, ram))
        .expect("the RAM region is one of the layout's");
    let mut page = gpa.page_base();
    while page < gpa + got as u64 {
        if space.translate(page).is_none() {
            map_fault(space, stats, (index, ram), page, pc, blocks)?;
        }
        page += crate::PAGE_SIZE;
    }
    let written = space.write(gpa, &buf[..got]);
    // Nothing is lost should a page still be missing.
    for &byte in buf[written..got].iter().rev() {
        devices.pending_input.push_front(byte);
    }
    Ok(Reply::Value(written as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::Width;
    use crate::devices::plic::{PLIC_SIZE, Plic, S_MODE_CONTEXT};
    use crate::devices::uart16550::Uart16550;
    use crate::exit::ExitKind;
    use crate::layout::Perms;
    use crate::layout::machines::RISCV64_VIRT;
    use crate::stage2::Sv39x4;
    use crate::stage2::test_host::{ArenaHost, gpa, hpa};
    use std::boxed::Box;
    use std::collections::VecDeque;
    use std::vec::Vec;

    /// A vCPU that replays a script of exits and records what it was told.
    #[derive(Default)]
    struct Scripted {
        exits: VecDeque<Exit>,
        replies: Vec<Reply>,
        timers: Vec<u64>,
        delivered: usize,
        pc: GuestVirtAddr,
        /// What `decode_mmio` answers, in order.
        mmio: VecDeque<MmioAccess>,
        /// Values given to `finish_mmio`.
        loads: Vec<u64>,
        /// Levels given to `set_external_irq`.
        lines: Vec<bool>,
        /// What `timer_irq_level` answers, in order (`None` once empty).
        timer_levels: VecDeque<bool>,
        /// The guest's supervisor software interrupt.
        software_pending: bool,
        /// How many times it was raised.
        ipis: usize,
        /// Fences run for the guest.
        fences: Vec<Fence>,
        /// Interrupt messages delivered.
        messages: Vec<InterruptMessage>,
        /// Level-triggered vectors delivered and not yet ended; an
        /// `Exit::SysReg` stands for the guest's EOI of all of them.
        in_service: Vec<u8>,
        /// Level-triggered vectors ended, for `take_level_eoi`.
        ended: VecDeque<u8>,
        /// A read-modify-write in progress: after the read completes, the
        /// write of the read value with these bits set.
        modify_or: Option<u64>,
        /// That write, for `next_mmio`.
        follow_up: Option<MmioAccess>,
        /// The address of the last access decoded.
        last_gpa: Option<GuestPhysAddr>,
    }

    impl Scripted {
        fn new(exits: &[Exit]) -> Self {
            Self {
                exits: exits.iter().copied().collect(),
                pc: GuestVirtAddr::new(0x8020_0000),
                ..Default::default()
            }
        }
    }

    impl Vcpu for Scripted {
        fn run(&mut self) -> Exit {
            self.pc += 4;
            let exit = self
                .exits
                .pop_front()
                .expect("the script ran out: the loop did not stop");
            if exit == Exit::SysReg {
                self.ended.extend(self.in_service.drain(..));
            }
            exit
        }
        fn pc(&self) -> GuestVirtAddr {
            self.pc
        }
        fn finish_hypercall(&mut self, reply: Reply) {
            self.replies.push(reply);
        }
        fn set_timer(&mut self, deadline: u64) {
            self.timers.push(deadline);
        }
        fn deliver_timer(&mut self) {
            self.delivered += 1;
        }
        fn decode_mmio(
            &mut self,
            _: GuestPhysAddr,
            _: Access,
            _: &dyn GuestMemory,
        ) -> Result<MmioAccess, Unemulated> {
            let a = self.mmio.pop_front().ok_or(Unemulated {
                insn: 0x1000_202f,
                why: "an atomic memory operation",
            })?;
            self.last_gpa = Some(a.addr);
            Ok(a)
        }
        fn finish_mmio(&mut self, value: u64) {
            self.loads.push(value);
            if let (Some(bits), Some(gpa)) = (self.modify_or.take(), self.last_gpa) {
                self.follow_up = Some(MmioAccess::write(gpa, Width::Word, value | bits));
            }
        }
        fn next_mmio(&mut self) -> Option<MmioAccess> {
            self.follow_up.take()
        }
        fn finish_pio(&mut self, value: u64) {
            self.loads.push(value);
        }
        fn set_external_irq(&mut self, level: bool) {
            self.lines.push(level);
        }
        fn deliver_message(&mut self, message: InterruptMessage) -> bool {
            self.messages.push(message);
            if message.level {
                self.in_service.push(message.vector);
            }
            true
        }
        fn take_level_eoi(&mut self) -> Option<u8> {
            self.ended.pop_front()
        }
        fn timer_irq_levels(&mut self) -> [Option<bool>; GUEST_TIMERS] {
            [self.timer_levels.pop_front(), None]
        }
        fn raise_software_interrupt(&mut self) {
            self.software_pending = true;
            self.ipis += 1;
        }
        fn clear_software_interrupt(&mut self) -> bool {
            core::mem::take(&mut self.software_pending)
        }
        fn local_fence(&mut self, fence: Fence) {
            self.fences.push(fence);
        }
    }

    /// The host console: what was printed, and what the user typed.
    #[derive(Default)]
    struct Captured {
        out: Vec<u8>,
        input: Vec<u8>,
    }
    impl Console for Captured {
        fn write(&mut self, bytes: &[u8]) {
            self.out.extend_from_slice(bytes);
        }
        fn read(&mut self, buf: &mut [u8]) -> usize {
            let n = self.input.len().min(buf.len());
            buf[..n].copy_from_slice(&self.input[..n]);
            self.input.drain(..n);
            n
        }
    }

    struct Vm {
        space: AddressSpace<Sv39x4, ArenaHost>,
        devices: Devices,
        console: Captured,
        stats: Stats,
    }

    /// The riscv64 machine's devices: the PLIC, and the UART on source 10.
    fn vm() -> Vm {
        let mut bus = Bus::new();
        let plic = bus
            .add(gpa(0x0c00_0000), PLIC_SIZE, Box::new(Plic::new()), None)
            .unwrap();
        bus.set_irq_chip(plic).unwrap();
        bus.add(
            gpa(0x1000_0000),
            0x100,
            Box::new(Uart16550::new()),
            Some(10),
        )
        .unwrap();
        Vm {
            space: AddressSpace::new(ArenaHost::new(64)).unwrap(),
            devices: Devices::new(bus, S_MODE_CONTEXT),
            console: Captured::default(),
            stats: Stats::default(),
        }
    }

    fn go(vm: &mut Vm, cpu: &mut Scripted) -> Result<(), VmError> {
        run(
            cpu,
            &mut vm.space,
            &RISCV64_VIRT,
            &mut vm.devices,
            &mut vm.console,
            &mut vm.stats,
            &Limits::default(),
        )
    }

    const SHUTDOWN: Exit = Exit::Hypercall(Request::Shutdown(ShutdownReason::Normal));

    fn npf(addr: u64, access: Access) -> Exit {
        Exit::NestedPageFault {
            gpa: gpa(addr),
            access,
        }
    }

    const PC: GuestVirtAddr = GuestVirtAddr::new(0x8020_0004);

    #[test]
    fn faults_in_declared_regions_are_mapped_and_counted() {
        let mut vm = vm();
        let mut cpu = Scripted::new(&[
            npf(0x8020_1008, Access::Write),
            npf(0x2200_0000, Access::Read),
            SHUTDOWN,
        ]);
        assert_eq!(go(&mut vm, &mut cpu), Ok(()));
        assert!(vm.space.translate(gpa(0x8020_1000)).is_some());
        assert_eq!(
            vm.space.translate(gpa(0x2200_0000)),
            Some((hpa(0x2200_0000), Perms::READ))
        );
        assert_eq!(vm.stats.exits(ExitKind::NestedPageFault), 2);
        assert_eq!(vm.stats.exits(ExitKind::Hypercall), 1);
        assert_eq!(
            (vm.stats.pages(2), vm.stats.pages(3)),
            (1, 1),
            "one pflash page, one RAM page"
        );
    }

    #[test]
    fn device_accesses_are_emulated_never_mapped() {
        let mut vm = vm();
        let mut cpu = Scripted::new(&[
            npf(0x1000_0000, Access::Write),
            npf(0x1000_0005, Access::Read),
            SHUTDOWN,
        ]);
        cpu.mmio.push_back(MmioAccess::write(
            gpa(0x1000_0000),
            Width::Byte,
            u64::from(b'A'),
        ));
        cpu.mmio
            .push_back(MmioAccess::read(gpa(0x1000_0005), Width::Byte));
        assert_eq!(go(&mut vm, &mut cpu), Ok(()));
        assert_eq!(vm.console.out, b"A", "THR goes to the host console");
        assert_eq!(
            cpu.loads,
            [0, 0x60],
            "the write completes, then LSR reads THRE|TEMT"
        );
        assert_eq!(
            vm.space.translate(gpa(0x1000_0000)),
            None,
            "the UART page is never mapped"
        );
        assert_eq!(vm.stats.exits(ExitKind::Mmio), 2);
        assert_eq!(vm.stats.exits(ExitKind::NestedPageFault), 0);
    }

    #[test]
    fn an_access_that_cannot_be_emulated_stops_the_vm() {
        let mut vm1 = vm();
        let mut cpu = Scripted::new(&[npf(0x1000_0000, Access::Write)]);
        let err = go(&mut vm1, &mut cpu).unwrap_err();
        assert!(matches!(err, VmError::Unemulated { .. }), "{err:?}");
        assert!(err.to_string().contains("0x10000000"), "{err}");
        let mut vm2 = vm();
        let mut cpu = Scripted::new(&[npf(0x1000_0000, Access::Write)]);
        cpu.mmio
            .push_back(MmioAccess::write(gpa(0x1000_0000), Width::Word, 1));
        let err = go(&mut vm2, &mut cpu).unwrap_err();
        assert!(
            matches!(err, VmError::DeviceFault { .. }),
            "a 16550 has byte registers: {err}"
        );
        let mut vm3 = vm();
        let mut cpu = Scripted::new(&[npf(0x1000_0000, Access::Execute)]);
        assert!(matches!(
            go(&mut vm3, &mut cpu),
            Err(VmError::Forbidden { region: "uart", .. })
        ));
    }

    #[test]
    fn typed_input_raises_the_guest_external_interrupt() {
        let mut vm = vm();
        vm.console.input = b"hi".to_vec();
        let mut cpu = Scripted::new(&[
            // The guest enables PLIC source 10 for context 1 and the
            // UART's receive interrupt.
            npf(0x0c00_0028, Access::Write),
            npf(0x0c00_2080, Access::Write),
            npf(0x1000_0001, Access::Write),
            Exit::HostTick,
            npf(0x1000_0000, Access::Read),
            // FIFOs are off: one holding register, so `i` waits in the
            // hypervisor until the next tick.
            Exit::HostTick,
            npf(0x1000_0000, Access::Read),
            SHUTDOWN,
        ]);
        for a in [
            MmioAccess::write(gpa(0x0c00_0028), Width::Word, 1),
            MmioAccess::write(gpa(0x0c00_2080), Width::Word, 1 << 10),
            MmioAccess::write(gpa(0x1000_0001), Width::Byte, 1),
            MmioAccess::read(gpa(0x1000_0000), Width::Byte),
            MmioAccess::read(gpa(0x1000_0000), Width::Byte),
        ] {
            cpu.mmio.push_back(a);
        }
        assert_eq!(go(&mut vm, &mut cpu), Ok(()));
        assert_eq!(
            cpu.lines,
            [true, false, true, false],
            "raised by each byte, lowered once it is read"
        );
        assert_eq!(&cpu.loads[3..], [u64::from(b'h'), u64::from(b'i')]);
        assert_eq!(vm.stats.injections(), (0, 2));
    }

    #[test]
    fn a_timer_wired_to_the_controller_follows_the_vcpu_level() {
        let mut vm = vm();
        // The PLIC stands in for the controller: source 5 enabled for the
        // vCPU's context, the guest's timer wired to it.
        vm.devices.timer_irqs[0] = Some(5);
        let mut cpu = Scripted::new(&[
            npf(0x0c00_0014, Access::Write),
            npf(0x0c00_2080, Access::Write),
            // The guest programs its timer (trapped), it expires, the guest
            // programs it again.
            Exit::SysReg,
            Exit::TimerExpired,
            Exit::SysReg,
            SHUTDOWN,
        ]);
        cpu.mmio
            .push_back(MmioAccess::write(gpa(0x0c00_0014), Width::Word, 1));
        cpu.mmio
            .push_back(MmioAccess::write(gpa(0x0c00_2080), Width::Word, 1 << 5));
        // Sampled at both device accesses, then at each timer exit.
        cpu.timer_levels.extend([false, false, false, true, false]);
        assert_eq!(go(&mut vm, &mut cpu), Ok(()));
        assert_eq!(
            cpu.lines,
            [true, false],
            "raised on expiry, lowered on reprogramming"
        );
        assert_eq!(vm.stats.exits(ExitKind::SysReg), 2);
        assert_eq!(vm.stats.injections(), (1, 1));
    }

    #[test]
    fn port_io_goes_to_the_port_bus_and_unknown_ports_stop_the_vm() {
        let mut vm = vm();
        vm.devices
            .ports
            .add(gpa(0x3f8), 8, Box::new(Uart16550::new()), None)
            .unwrap();
        let out = |port, v| {
            Exit::PortIo(PortIo {
                port,
                width: Width::Byte,
                write: Some(v),
            })
        };
        let mut cpu = Scripted::new(&[
            out(0x3f8, u64::from(b'P')),
            Exit::PortIo(PortIo {
                port: 0x3fd,
                width: Width::Byte,
                write: None,
            }),
            out(0x3f8, u64::from(b'!')),
            SHUTDOWN,
        ]);
        assert_eq!(go(&mut vm, &mut cpu), Ok(()));
        assert_eq!(vm.console.out, b"P!");
        // LSR: transmitter empty, holding register empty (0x60).
        assert_eq!(cpu.loads, [0, 0x60, 0]);
        assert_eq!(vm.stats.exits(ExitKind::PortIo), 3);

        let mut bare = self::vm();
        let mut cpu = Scripted::new(&[out(0x80, 0x12)]);
        let err = go(&mut bare, &mut cpu).unwrap_err();
        assert!(matches!(err, VmError::PortFault { io, .. } if io.port == 0x80));
        assert!(
            err.to_string().starts_with(
                "guest 1-byte OUT of 0x12 to port 0x80: no device at that port (guest PC 0x"
            ),
            "{err}"
        );
    }

    /// The PC's interrupt path: COM1 on the port bus, its IRQ 4 wired to
    /// pin 4 of the I/O APIC on the MMIO bus, whose messages go to the
    /// vCPU's local APIC.
    fn pc() -> (
        Vm,
        crate::stage2::AddressSpace<crate::stage2::Npt, ArenaHost>,
    ) {
        use crate::devices::ioapic::{IOAPIC_BASE, IOAPIC_SIZE, IoApic};
        let mut bus = Bus::new();
        let chip = bus
            .add(gpa(IOAPIC_BASE), IOAPIC_SIZE, Box::new(IoApic::new()), None)
            .unwrap();
        bus.set_irq_chip(chip).unwrap();
        let mut devices = Devices::new(bus, 0);
        devices
            .ports
            .add(gpa(0x3f8), 8, Box::new(Uart16550::new()), Some(4))
            .unwrap();
        let vm = Vm {
            space: AddressSpace::new(ArenaHost::new(4)).unwrap(),
            devices,
            console: Captured::default(),
            stats: Stats::default(),
        };
        (vm, AddressSpace::new(ArenaHost::new(4)).unwrap())
    }

    fn go_pc(
        vm: &mut Vm,
        space: &mut crate::stage2::AddressSpace<crate::stage2::Npt, ArenaHost>,
        cpu: &mut Scripted,
    ) -> Result<(), VmError> {
        let layout = crate::layout::machines::X86_64_Q35;
        let limits = Limits::default();
        run(
            cpu,
            space,
            &layout,
            &mut vm.devices,
            &mut vm.console,
            &mut vm.stats,
            &limits,
        )
    }

    fn port(port: u16, write: Option<u64>) -> Exit {
        Exit::PortIo(PortIo {
            port,
            width: Width::Byte,
            write,
        })
    }

    /// The guest's writes of redirection entry 4 (low dword `low`).
    fn program_pin4(cpu: &mut Scripted, low: u64) -> [Exit; 2] {
        cpu.mmio
            .push_back(MmioAccess::write(gpa(0xfec0_0000), Width::Word, 0x18));
        cpu.mmio
            .push_back(MmioAccess::write(gpa(0xfec0_0010), Width::Word, low));
        [
            npf(0xfec0_0000, Access::Write),
            npf(0xfec0_0010, Access::Write),
        ]
    }

    #[test]
    fn com1_input_reaches_the_vcpu_as_io_apic_messages() {
        let (mut vm, mut space) = pc();
        vm.console.input = b"hi".to_vec();
        let mut cpu = Scripted::new(&[]);
        let mut exits = program_pin4(&mut cpu, 0x24).to_vec();
        exits.extend([
            // IER: received data available.
            port(0x3f9, Some(1)),
            Exit::HostTick,
            port(0x3f8, None),
            // No FIFO: `i` comes on the next tick, a new edge.
            Exit::HostTick,
            port(0x3f8, None),
            SHUTDOWN,
        ]);
        cpu.exits = exits.into();
        assert_eq!(go_pc(&mut vm, &mut space, &mut cpu), Ok(()));
        let edge = InterruptMessage {
            vector: 0x24,
            delivery: crate::devices::DeliveryMode::Fixed,
            logical: false,
            destination: 0,
            level: false,
        };
        assert_eq!(cpu.messages, [edge, edge]);
        assert_eq!(&cpu.loads[3..], [u64::from(b'h'), u64::from(b'i')]);
        assert_eq!(vm.stats.injections(), (0, 2));
        assert!(cpu.lines.is_empty(), "no external line on this machine");
    }

    #[test]
    fn a_level_triggered_com1_comes_again_until_it_is_serviced() {
        let (mut vm, mut space) = pc();
        vm.console.input = b"h".to_vec();
        let mut cpu = Scripted::new(&[]);
        let mut exits = program_pin4(&mut cpu, 0x24 | 1 << 15).to_vec();
        exits.extend([
            port(0x3f9, Some(1)),
            Exit::HostTick,
            // The guest ends the interrupt without reading the byte: the
            // line is still up, so it comes again.
            Exit::SysReg,
            port(0x3f8, None),
            // Read, then ended: quiet.
            Exit::SysReg,
            SHUTDOWN,
        ]);
        cpu.exits = exits.into();
        assert_eq!(go_pc(&mut vm, &mut space, &mut cpu), Ok(()));
        assert_eq!(
            cpu.messages
                .iter()
                .map(|m| (m.vector, m.level))
                .collect::<Vec<_>>(),
            [(0x24, true), (0x24, true)]
        );
        assert_eq!(vm.stats.injections(), (0, 2));
    }

    #[test]
    fn a_read_modify_write_makes_both_accesses_in_one_exit() {
        let (mut vm, mut space) = pc();
        let mut cpu = Scripted::new(&[]);
        // Pin 4 programmed unmasked, in a run of its own.
        let program = program_pin4(&mut cpu, 0x24);
        cpu.exits = program.into_iter().chain([SHUTDOWN]).collect();
        assert_eq!(go_pc(&mut vm, &mut space, &mut cpu), Ok(()));
        // Then masked with one `orl $0x10000` to IOWIN (a read, then a
        // write of the result) and read back.
        cpu.exits = [
            npf(0xfec0_0010, Access::Write),
            npf(0xfec0_0010, Access::Read),
            SHUTDOWN,
        ]
        .into();
        let iowin = MmioAccess::read(gpa(0xfec0_0010), Width::Word);
        cpu.mmio.extend([iowin, iowin]);
        cpu.loads.clear();
        cpu.modify_or = Some(1 << 16);
        assert_eq!(go_pc(&mut vm, &mut space, &mut cpu), Ok(()));
        assert_eq!(cpu.loads, [0x24, 0, 0x1_0024], "read, write, read back");
        assert_eq!(vm.stats.exits(ExitKind::Mmio), 2 + 2);
        assert_eq!(
            vm.devices.bus.access_counts().collect::<Vec<_>>(),
            [("ioapic", 2 + 3)]
        );
    }

    #[test]
    fn a_masked_pin_keeps_com1_quiet() {
        let (mut vm, mut space) = pc();
        vm.console.input = b"h".to_vec();
        let mut cpu = Scripted::new(&[]);
        let mut exits = program_pin4(&mut cpu, 0x24 | 1 << 16).to_vec();
        exits.extend([port(0x3f9, Some(1)), Exit::HostTick, SHUTDOWN]);
        cpu.exits = exits.into();
        assert_eq!(go_pc(&mut vm, &mut space, &mut cpu), Ok(()));
        assert!(cpu.messages.is_empty());
        assert_eq!(vm.stats.injections(), (0, 0));
    }

    #[test]
    fn the_watchdog_stops_a_guest_that_runs_too_long() {
        let mut vm = vm();
        let mut cpu = Scripted::new(&[Exit::HostTick, Exit::HostTick, Exit::HostTick]);
        let limits = Limits {
            watchdog_ticks: Some(2),
            ..Limits::default()
        };
        let err = run(
            &mut cpu,
            &mut vm.space,
            &RISCV64_VIRT,
            &mut vm.devices,
            &mut vm.console,
            &mut vm.stats,
            &limits,
        )
        .unwrap_err();
        assert!(matches!(err, VmError::Watchdog { ticks: 2, .. }), "{err:?}");
    }

    #[test]
    fn a_wild_address_stops_the_vm_with_its_details() {
        let mut vm = vm();
        let mut cpu = Scripted::new(&[npf(0x3000_0000, Access::Read), SHUTDOWN]);
        let err = go(&mut vm, &mut cpu).unwrap_err();
        assert_eq!(
            err,
            VmError::WildAccess {
                gpa: gpa(0x3000_0000),
                access: Access::Read,
                pc: PC
            }
        );
        let msg = err.to_string();
        assert!(
            msg.contains("0x30000000") && msg.contains("read") && msg.contains("0x80200004"),
            "{msg}"
        );
        assert_eq!(
            vm.space.mapped_pages(),
            0,
            "nothing was mapped for the wild access"
        );
    }

    #[test]
    fn host_ram_beyond_guest_ram_is_never_mapped() {
        // 0x8800_0000 is host RAM on the real machine but not the guest's.
        let mut vm = vm();
        let mut cpu = Scripted::new(&[npf(0x8800_0000, Access::Read)]);
        assert!(matches!(
            go(&mut vm, &mut cpu),
            Err(VmError::WildAccess { gpa: at, .. }) if at == gpa(0x8800_0000)
        ));
    }

    #[test]
    fn writes_to_read_only_pflash_are_refused() {
        let mut vm = vm();
        let mut cpu = Scripted::new(&[npf(0x2200_0000, Access::Write)]);
        assert_eq!(
            go(&mut vm, &mut cpu),
            Err(VmError::Forbidden {
                gpa: gpa(0x2200_0000),
                access: Access::Write,
                region: "pflash",
                pc: PC
            })
        );
    }

    #[test]
    fn a_second_fault_on_a_mapped_page_is_an_error_not_a_loop() {
        let mut vm = vm();
        let mut cpu = Scripted::new(&[
            npf(0x8000_0000, Access::Read),
            npf(0x8000_0004, Access::Read),
        ]);
        assert!(matches!(
            go(&mut vm, &mut cpu),
            Err(VmError::MapFailed {
                error: MapError::AlreadyMapped { gpa: at },
                ..
            }) if at == gpa(0x8000_0000)
        ));
    }

    #[test]
    fn hypercalls_are_answered() {
        let mut vm = vm();
        let mut cpu = Scripted::new(&[
            Exit::Hypercall(Request::ConsolePutByte(b'h')),
            Exit::Hypercall(Request::Answer(7)),
            Exit::Hypercall(Request::Unsupported {
                id: 0x48534D,
                function: 0,
            }),
            Exit::Hypercall(Request::Refused {
                id: 0x53525354,
                function: 0,
            }),
            Exit::Hypercall(Request::Invalid {
                id: 0x53525354,
                function: 0,
            }),
            Exit::Hypercall(Request::Null),
            Exit::Hypercall(Request::ConsoleGetByte),
            Exit::Hypercall(Request::BadAddress {
                id: 0x52464E43,
                function: 1,
            }),
            Exit::Hypercall(Request::AlreadyAvailable {
                id: 0x48534D,
                function: 0,
            }),
            SHUTDOWN,
        ]);
        assert_eq!(go(&mut vm, &mut cpu), Ok(()));
        assert_eq!(
            cpu.replies,
            [
                Reply::Value(0),
                Reply::Value(7),
                Reply::NotSupported,
                Reply::NotSupported,
                Reply::InvalidParam,
                Reply::Value(0),
                Reply::Value(u64::MAX),
                Reply::InvalidAddress,
                Reply::AlreadyAvailable,
            ]
        );
        assert_eq!(vm.console.out, b"h");
        assert_eq!(vm.stats.exits(ExitKind::Hypercall), 10);
    }

    #[test]
    fn console_write_reads_guest_ram() {
        let mut vm = vm();
        vm.space
            .map_backed(
                gpa(0x8020_0000),
                crate::layout::Backing::FreshRam,
                Perms::RWX,
            )
            .unwrap();
        vm.space.write(gpa(0x8020_0ff0), b"hello from the guest");
        let mut cpu = Scripted::new(&[
            Exit::Hypercall(Request::ConsoleWrite {
                gpa: gpa(0x8020_0ff0),
                len: 5,
            }),
            // Crosses into the unmapped next page: stops at the boundary.
            Exit::Hypercall(Request::ConsoleWrite {
                gpa: gpa(0x8020_0ff0),
                len: 20,
            }),
            // Not guest RAM at all.
            Exit::Hypercall(Request::ConsoleWrite {
                gpa: gpa(0x2200_0000),
                len: 4,
            }),
            Exit::Hypercall(Request::ConsoleWrite {
                gpa: gpa(u64::MAX - 1),
                len: 4,
            }),
            SHUTDOWN,
        ]);
        assert_eq!(go(&mut vm, &mut cpu), Ok(()));
        assert_eq!(
            cpu.replies,
            [
                Reply::Value(5),
                Reply::Value(16),
                Reply::InvalidAddress,
                Reply::InvalidParam
            ]
        );
        assert_eq!(vm.console.out, b"hellohello from the g");
    }

    #[test]
    fn timer_is_armed_and_delivered() {
        let mut vm = vm();
        let mut cpu = Scripted::new(&[
            Exit::Hypercall(Request::SetTimer { deadline: 1000 }),
            Exit::TimerExpired,
            Exit::Hypercall(Request::SetTimer { deadline: u64::MAX }),
            SHUTDOWN,
        ]);
        assert_eq!(go(&mut vm, &mut cpu), Ok(()));
        assert_eq!(cpu.timers, [1000, u64::MAX]);
        assert_eq!(cpu.delivered, 1);
        assert_eq!(vm.stats.exits(ExitKind::Timer), 1);
    }

    #[test]
    fn guest_failure_and_unexpected_exits_fail_the_run() {
        let mut vm1 = vm();
        let mut cpu = Scripted::new(&[Exit::Hypercall(Request::Shutdown(
            ShutdownReason::Failure(1),
        ))]);
        assert_eq!(
            go(&mut vm1, &mut cpu),
            Err(VmError::GuestFailure { reason: 1, pc: PC })
        );
        let mut vm2 = vm();
        let u = Unexpected {
            what: "virtual instruction",
            code: 22,
            info: [0x1050_0073, 0],
        };
        let mut cpu = Scripted::new(&[Exit::Unexpected(u)]);
        let err = go(&mut vm2, &mut cpu).unwrap_err();
        assert_eq!(err, VmError::Unexpected { exit: u, pc: PC });
        assert!(
            err.to_string().contains("virtual instruction (code 0x16"),
            "{err}"
        );
        assert_eq!(vm2.stats.exits(ExitKind::Unexpected), 1);
    }

    #[test]
    fn a_reboot_request_ends_the_run_with_its_own_error() {
        let mut vm = vm();
        let mut cpu =
            Scripted::new(&[Exit::Hypercall(Request::Shutdown(ShutdownReason::Reboot {
                kind: RebootKind::Cold,
                reason: 0,
            }))]);
        let err = go(&mut vm, &mut cpu).unwrap_err();
        assert_eq!(
            err,
            VmError::RebootRequested {
                kind: RebootKind::Cold,
                reason: 0,
                pc: PC
            }
        );
        assert_eq!(
            err.to_string(),
            "the guest asked for a cold reboot (reason 0) at guest PC 0x80200004; this hypervisor runs its one guest once and does not reboot it"
        );
        assert!(cpu.replies.is_empty(), "the call does not return");
        let warm = VmError::RebootRequested {
            kind: RebootKind::Warm,
            reason: 1,
            pc: PC,
        };
        assert!(
            warm.to_string().contains("warm reboot (reason 1)"),
            "{warm}"
        );
    }

    #[test]
    fn self_ipis_are_raised_and_cleared() {
        let mut vm = vm();
        let mut cpu = Scripted::new(&[
            Exit::Hypercall(Request::ClearIpi),
            Exit::Hypercall(Request::SelfIpi),
            Exit::Hypercall(Request::SelfIpi),
            Exit::Hypercall(Request::ClearIpi),
            Exit::Hypercall(Request::ClearIpi),
            SHUTDOWN,
        ]);
        assert_eq!(go(&mut vm, &mut cpu), Ok(()));
        assert_eq!(cpu.ipis, 2);
        assert_eq!(
            cpu.replies,
            [
                Reply::Value(0),
                Reply::Value(0),
                Reply::Value(0),
                Reply::Value(1),
                Reply::Value(0)
            ],
            "clear answers whether one was pending"
        );
    }

    #[test]
    fn fences_run_on_the_vcpu() {
        let mut vm = vm();
        let tlb = Fence::GuestTlb {
            asid: Some(3),
            range: None,
        };
        let mut cpu = Scripted::new(&[
            Exit::Hypercall(Request::LocalFence(Fence::Instruction)),
            Exit::Hypercall(Request::LocalFence(tlb)),
            SHUTDOWN,
        ]);
        assert_eq!(go(&mut vm, &mut cpu), Ok(()));
        assert_eq!(cpu.fences, [Fence::Instruction, tlb]);
        assert_eq!(cpu.replies, [Reply::Value(0), Reply::Value(0)]);
    }

    #[test]
    fn console_getchar_takes_input_devices_left_then_the_hosts() {
        let mut vm = vm();
        vm.devices.pending_input.extend(b"ab");
        vm.console.input = b"c".to_vec();
        let get = Exit::Hypercall(Request::ConsoleGetByte);
        let mut cpu = Scripted::new(&[get, get, get, get, SHUTDOWN]);
        assert_eq!(go(&mut vm, &mut cpu), Ok(()));
        assert_eq!(
            cpu.replies,
            [
                Reply::Value(u64::from(b'a')),
                Reply::Value(u64::from(b'b')),
                Reply::Value(u64::from(b'c')),
                Reply::Value(u64::MAX)
            ]
        );
    }

    #[test]
    fn console_read_fills_guest_ram() {
        let mut vm = vm();
        vm.devices.pending_input.push_back(b'>');
        vm.console.input = b"typed text".to_vec();
        let read = |addr, len| {
            Exit::Hypercall(Request::ConsoleRead {
                gpa: gpa(addr),
                len,
            })
        };
        let mut cpu = Scripted::new(&[
            // An untouched page across a page boundary: both are mapped.
            read(0x8030_0ffe, 4),
            read(0x8030_2000, 100),
            read(0x8030_2000, 100),
            read(0x8030_2000, 0),
            read(0x2200_0000, 4),
            read(u64::MAX - 1, 4),
            SHUTDOWN,
        ]);
        assert_eq!(go(&mut vm, &mut cpu), Ok(()));
        assert_eq!(
            cpu.replies,
            [
                Reply::Value(4),
                Reply::Value(7),
                Reply::Value(0),
                Reply::Value(0),
                Reply::InvalidAddress,
                Reply::InvalidParam
            ]
        );
        let mut got = [0u8; 4];
        assert_eq!(vm.space.read(gpa(0x8030_0ffe), &mut got), 4);
        assert_eq!(&got, b">typ");
        let mut got = [0u8; 7];
        assert_eq!(vm.space.read(gpa(0x8030_2000), &mut got), 7);
        assert_eq!(&got, b"ed text");
        assert_eq!(vm.stats.pages(3), 3, "three RAM pages mapped for the reads");
        assert_eq!(
            vm.space.translate(gpa(0x8030_3000)),
            None,
            "no more than the bytes read"
        );
    }

    #[test]
    fn ram_faults_map_blocks_unless_the_limits_turn_them_off() {
        let blocks_on = Limits::default();
        assert!(blocks_on.ram_blocks, "on by default, as in /etc/vm.conf");
        let blocks_off = Limits {
            ram_blocks: false,
            ..blocks_on
        };
        // (RAM blocks, RAM pages, pflash pages): the fault and the read's
        // buffer each take a RAM block or page; pflash always a page.
        for (limits, counts) in [(blocks_on, (2, 0, 1)), (blocks_off, (0, 2, 1))] {
            let mut vm = vm();
            vm.space = AddressSpace::new(ArenaHost::new(4 * crate::stage2::BLOCK_PAGES)).unwrap();
            vm.console.input = b"x".to_vec();
            let mut cpu = Scripted::new(&[
                npf(0x8040_1008, Access::Write),
                npf(0x2200_0000, Access::Read),
                Exit::Hypercall(Request::ConsoleRead {
                    gpa: gpa(0x8060_0000),
                    len: 1,
                }),
                SHUTDOWN,
            ]);
            let run = run(
                &mut cpu,
                &mut vm.space,
                &RISCV64_VIRT,
                &mut vm.devices,
                &mut vm.console,
                &mut vm.stats,
                &limits,
            );
            assert_eq!(run, Ok(()));
            assert_eq!(cpu.replies, [Reply::Value(1)]);
            let s = &vm.stats;
            assert_eq!((s.blocks(3), s.pages(3), s.pages(2)), counts, "{limits:?}");
            assert_eq!(
                vm.space.translate(gpa(0x805f_f000)).is_some(),
                limits.ram_blocks,
                "the rest of the faulting block"
            );
        }
    }

    /// SBI calls from decoding to the registers the guest finds: the
    /// riscv64 decoder, this loop and the SBI encoder together.
    #[test]
    fn sbi_calls_round_trip() {
        use crate::arch::riscv64::sbi::{self, SbiReturn};
        const SPI: u64 = 0x73_5049;
        const RFNC: u64 = 0x5246_4E43;
        const HSM: u64 = 0x48_534D;
        const SRST: u64 = 0x5352_5354;
        let calls: &[(u64, u64, [u64; 6], SbiReturn)] = &[
            // legacy set_timer, console_getchar (no input), clear_ipi,
            // send_ipi, clear_ipi, remote_fence_i
            (0, 0, [500, 0, 0, 0, 0, 0], legacy(0)),
            (2, 0, [0; 6], legacy(u64::MAX)),
            (3, 0, [0; 6], legacy(0)),
            (4, 0, [0; 6], legacy(0)),
            (3, 0, [0; 6], legacy(1)),
            (5, 0, [0; 6], legacy(0)),
            // IPI to hart 0, then to hart 1
            (SPI, 0, [1, 0, 0, 0, 0, 0], sbi(0, 0)),
            (SPI, 0, [2, 0, 0, 0, 0, 0], sbi(-3i64 as u64, 0)),
            // RFENCE: sfence.vma of one page for ASID 5; hfence.gvma
            (RFNC, 2, [1, 0, 0x4000, 0x1000, 5, 0], sbi(0, 0)),
            (RFNC, 4, [1, 0, 0, 0, 0, 0], sbi(-2i64 as u64, 0)),
            // HSM: start hart 0, status of hart 0, retentive suspend
            (HSM, 0, [0, 0x8020_0000, 0, 0, 0, 0], sbi(-6i64 as u64, 0)),
            (HSM, 2, [0; 6], sbi(0, 0)),
            (HSM, 3, [0; 6], sbi(0, 0)),
        ];
        let mut exits: Vec<Exit> = calls
            .iter()
            .map(|&(eid, fid, args, _)| Exit::Hypercall(sbi::decode(eid, fid, args)))
            .collect();
        exits.push(Exit::Hypercall(sbi::decode(SRST, 0, [1, 0, 0, 0, 0, 0])));
        let mut vm = vm();
        let mut cpu = Scripted::new(&exits);
        let err = go(&mut vm, &mut cpu).unwrap_err();
        assert!(
            matches!(
                err,
                VmError::RebootRequested {
                    kind: RebootKind::Cold,
                    reason: 0,
                    ..
                }
            ),
            "{err}"
        );
        let got: Vec<SbiReturn> = calls
            .iter()
            .zip(&cpu.replies)
            .map(|(&(eid, ..), &reply)| sbi::encode(eid, reply))
            .collect();
        let want: Vec<SbiReturn> = calls.iter().map(|c| c.3).collect();
        assert_eq!(got, want);
        assert_eq!(cpu.timers, [500]);
        assert_eq!(cpu.ipis, 2);
        assert_eq!(
            cpu.fences,
            [
                Fence::Instruction,
                Fence::GuestTlb {
                    asid: Some(5),
                    range: Some(crate::exit::VirtRange {
                        start: GuestVirtAddr::new(0x4000),
                        size: 0x1000
                    })
                }
            ]
        );

        fn legacy(a0: u64) -> SbiReturn {
            SbiReturn { a0, a1: None }
        }
        fn sbi(a0: u64, a1: u64) -> SbiReturn {
            SbiReturn { a0, a1: Some(a1) }
        }
    }
}
