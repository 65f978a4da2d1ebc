//! Why a VM stops: every ending other than a clean power-off, with what
//! the diagnostic names (the address, the access, the guest PC).

use crate::addr::{GuestPhysAddr, GuestVirtAddr};
use crate::devices::{BusError, MmioAccess};
use crate::exit::{Access, PortIo, RebootKind, Unexpected};
use crate::stage2::MapError;
use crate::vcpu::Unemulated;

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
    /// The guest stopped its last running CPU (SBI HSM `hart_stop`, PSCI
    /// `CPU_OFF`) without powering off: nothing can ever run it again.
    AllCpusStopped {
        /// The guest PC at the call.
        pc: GuestVirtAddr,
    },
    /// The guest asked for an ACPI sleeping state this hypervisor does not
    /// emulate (any `SLP_TYP` but soft-off).
    SleepRequested {
        /// The `SLP_TYP` written.
        sleep_type: u8,
        /// The guest PC at the write.
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
            VmError::AllCpusStopped { pc } => write!(
                f,
                "the guest stopped its last running CPU without powering off (guest PC {pc:#x}): nothing can run it again"
            ),
            VmError::SleepRequested { sleep_type, pc } => write!(
                f,
                "the guest asked for ACPI sleep type {sleep_type} (PM1a SLP_TYP) at guest PC {pc:#x}; only SLP_TYP 0, soft-off, ends the VM, and no sleeping state is emulated"
            ),
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
