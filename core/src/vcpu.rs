//! The virtual CPU as the run loop drives it: one small trait that every
//! architecture implements in full, and the types its device emulation
//! speaks.
//!
//! Exits go one way. [`Vcpu::run`] returns an [`Exit`] that carries what
//! the loop needs; a device access is completed by the vCPU against the
//! VM's devices in one call ([`Vcpu::emulate_io`]: decode, every bus access
//! the instruction makes, the write-back, the step past it), so no decoded
//! state waits inside the vCPU between two calls. What only one
//! architecture has (riscv64's SBI timer, software interrupts and local
//! fences, aarch64's trapped timer and debug registers, x86's CPUID, MSRs
//! and local APIC) stays on the architecture's side, and is reported as an
//! [`Exit::Handled`].

use crate::addr::{GuestPhysAddr, GuestVirtAddr};
use crate::devices::{BusError, MmioAccess};
use crate::exit::{Access, Exit, PortIo, Reply};
use crate::guest_memory::GuestMemory;
use crate::vm::Devices;

/// One virtual CPU.
pub trait Vcpu {
    /// Enters the guest and returns when it exits.
    fn run(&mut self) -> Exit;

    /// The guest program counter (for diagnostics).
    fn pc(&self) -> GuestVirtAddr;

    /// Returns `reply` to the guest's pending hypercall and steps past it.
    fn finish_hypercall(&mut self, reply: Reply);

    /// Completes the device access of the exit [`Vcpu::run`] just
    /// returned, against `devices`: decodes the instruction where the
    /// access needs it (through `mem`, guest memory, where the vCPU must
    /// fetch it), performs each access it makes on the bus, writes a load's
    /// value to its register and steps the guest past the instruction.
    fn emulate_io(
        &mut self,
        io: Io,
        devices: &mut Devices,
        mem: &dyn GuestMemory,
    ) -> Result<(), IoError>;

    /// Exchanges interrupt state with the VM's interrupt controller in
    /// `devices`: drives the controller inputs the vCPU's own timers are
    /// wired to, hands back the interrupts it ended, and takes the
    /// controller's output for it (a line, or messages). Answers how many
    /// external interrupts it newly received.
    fn sync_interrupts(&mut self, devices: &mut Devices) -> u64;

    /// Resets the vCPU to the state a CPU started by the firmware
    /// interface has (SBI HSM `hart_start`, PSCI `CPU_ON`): its MMU off,
    /// interrupts masked, the PC at `entry` and `arg` in the argument
    /// register the interface names (riscv64: `a1`, with the hart id in
    /// `a0`; aarch64: `x0`).
    fn start(&mut self, entry: GuestPhysAddr, arg: u64);

    /// Carries out work another vCPU posted for this one, on its own host
    /// CPU: a software interrupt (riscv64's `hvip.VSSIP`), an instruction
    /// fence, a flush of the guest's cached translations.
    fn remote_work(&mut self, work: RemoteWork);

    /// Makes vCPU `cpu` (each vCPU runs on its own host CPU) leave the
    /// guest promptly, or return from [`Vcpu::idle`]: a host IPI.
    fn kick(cpu: usize)
    where
        Self: Sized;

    /// Waits on this host CPU, out of the guest, until kicked (or for a
    /// while: a spurious return is harmless), for an off vCPU.
    fn idle()
    where
        Self: Sized;
}

/// What another vCPU asked of a vCPU ([`Vcpu::remote_work`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RemoteWork {
    /// Make the guest's supervisor software interrupt pending.
    pub software_interrupt: bool,
    /// Run `fence.i` (or the architecture's instruction barrier).
    pub fence_i: bool,
    /// Drop every cached guest-virtual translation of this guest.
    pub flush_tlb: bool,
}

/// The device access an exit reported, for [`Vcpu::emulate_io`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Io {
    /// A nested page fault in an emulated device's region.
    Mmio {
        /// The faulting guest-physical address.
        gpa: GuestPhysAddr,
        /// What the guest tried to do there.
        access: Access,
    },
    /// A port-I/O instruction (x86).
    Port(PortIo),
}

impl Io {
    /// The memory access, for a vCPU of a machine without I/O ports: a
    /// port access there is refused as not emulated.
    #[inline]
    pub fn mmio(self) -> Result<(GuestPhysAddr, Access), IoError> {
        match self {
            Io::Mmio { gpa, access } => Ok((gpa, access)),
            Io::Port(_) => Err(IoError::Unemulated(Unemulated {
                insn: 0,
                why: "port I/O on a machine without an I/O port space",
            })),
        }
    }
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

/// Why a device access could not be completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoError {
    /// The instruction cannot be emulated.
    Unemulated(Unemulated),
    /// The device (or the bus) refused this access (for port I/O, its
    /// address is the port).
    Refused {
        /// The access as decoded.
        access: MmioAccess,
        /// The bus's or the device's reason.
        error: BusError,
    },
}

/// Performs `access` on `bus`: the value read (0 for a write), or why the
/// device refused it, for [`Vcpu::emulate_io`].
#[inline]
pub fn access_bus(bus: &mut crate::devices::Bus, access: MmioAccess) -> Result<u64, IoError> {
    bus.access(&access)
        .map_err(|error| IoError::Refused { access, error })
}

impl From<Unemulated> for IoError {
    fn from(u: Unemulated) -> Self {
        IoError::Unemulated(u)
    }
}
