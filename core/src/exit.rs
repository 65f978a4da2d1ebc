//! What a VM exit means, independent of the architecture that produced it.
//!
//! Each architecture's vCPU decodes its own trap registers (`scause`,
//! `ESR_EL2`, the VMCB exit code) into an [`Exit`]; the run loop only ever
//! sees this type.

use crate::PAGE_SIZE;
use crate::addr::{GuestPhysAddr, GuestVirtAddr};

/// The kind of access that faulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A data load.
    Read,
    /// A data store (or an atomic).
    Write,
    /// An instruction fetch.
    Execute,
}

impl core::fmt::Display for Access {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Execute => "execute",
        })
    }
}

/// Why the guest stopped running and the hypervisor got control.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Stage-2 translation has no (or no sufficient) mapping for `gpa`.
    NestedPageFault {
        /// The faulting guest-physical address.
        gpa: GuestPhysAddr,
        /// What the guest tried to do there.
        access: Access,
    },
    /// The guest asked the hypervisor for a service (SBI ecall, HVC,
    /// VMMCALL), already decoded by the architecture's calling convention.
    Hypercall(Request),
    /// The hypervisor's own periodic timer fired while the guest ran: a
    /// chance to feed console input and check the watchdog.
    HostTick,
    /// A port-I/O instruction (x86 `IN`/`OUT`), decoded: the vCPU completes
    /// it against the VM's port bus ([`crate::vcpu::Vcpu::emulate_io`]).
    PortIo(PortIo),
    /// An exit the vCPU dealt with itself (its timer expired, a trapped
    /// system register, a hart-local hypercall, a fault injected back into
    /// the guest): the run loop only counts it, and brings the vCPU's
    /// interrupt lines to the controller if it says they may have changed.
    Handled(Handled),
    /// Anything else: the VM stops with this diagnostic.
    Unexpected(Unexpected),
}

/// What the vCPU did about an exit it handled itself ([`Exit::Handled`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handled {
    /// The class it is counted in.
    pub kind: ExitKind,
    /// What it injected into the guest, if anything.
    pub injected: Option<Injected>,
    /// Whether the vCPU's interrupt lines into the VM's controller (its
    /// timers wired there) may have changed: the loop then syncs them.
    pub resync: bool,
}

impl Handled {
    /// The guest's own timer expired and its interrupt was delivered
    /// (`resync` where it goes through the interrupt controller).
    pub const fn timer(resync: bool) -> Self {
        Handled {
            kind: ExitKind::Timer,
            injected: Some(Injected::Timer),
            resync,
        }
    }

    /// An exit of class `kind` with nothing injected.
    pub const fn quiet(kind: ExitKind, resync: bool) -> Self {
        Handled {
            kind,
            injected: None,
            resync,
        }
    }

    /// An access or instruction refused as the hardware the guest sees
    /// would, by injecting an exception (x86: `#GP(0)` for an MSR the
    /// policy does not know, `#UD` for an SVM instruction).
    pub const fn fault(kind: ExitKind) -> Self {
        Handled {
            kind,
            injected: Some(Injected::Exception),
            resync: false,
        }
    }
}

/// What a vCPU injected into its guest while handling an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Injected {
    /// The guest's timer interrupt.
    Timer,
    /// An exception.
    Exception,
}

/// One port-I/O access: x86's separate 64 KiB I/O address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortIo {
    /// The port.
    pub port: u16,
    /// 1, 2 or 4 bytes.
    pub width: crate::devices::Width,
    /// `Some(value)` for `OUT`, `None` for `IN`.
    pub write: Option<u64>,
}

impl core::fmt::Display for PortIo {
    /// `1-byte OUT of 0x41 to port 0x3f8` / `4-byte IN from port 0xcf8`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.write {
            Some(v) => write!(f, "{} OUT of {v:#x} to port {:#x}", self.width, self.port),
            None => write!(f, "{} IN from port {:#x}", self.width, self.port),
        }
    }
}

/// An exit the hypervisor does not handle, described for the diagnostic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unexpected {
    /// Human-readable name of the exit cause.
    pub what: &'static str,
    /// The architecture's raw exit code (`scause`, ESR EC, SVM exit code).
    pub code: u64,
    /// Extra registers worth printing (`stval`/`htval`, EXITINFO1/2, ...).
    pub info: [u64; 2],
}

/// Why the guest asked to be shut down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownReason {
    /// An ordinary power-off request.
    Normal,
    /// The guest reported a failure (SBI SRST reason "system failure", ...);
    /// carries the raw reason code.
    Failure(u64),
    /// The guest asked to be restarted rather than powered off. The
    /// hypervisor runs its one guest once, so the run ends with an error
    /// saying so.
    Reboot {
        /// Which reboot.
        kind: RebootKind,
        /// The raw reason code the guest gave (0: none, 1: system failure
        /// in SBI SRST terms).
        reason: u64,
    },
}

/// The two reboots SBI SRST distinguishes (SBI v2.0 §10.1, reset types 1
/// and 2). To a VM both mean "start the guest again".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RebootKind {
    /// The whole system is power-cycled.
    Cold,
    /// The processors and part of the system are power-cycled.
    Warm,
}

impl core::fmt::Display for RebootKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            RebootKind::Cold => "cold",
            RebootKind::Warm => "warm",
        })
    }
}

/// A range of guest-virtual addresses, `[start, start + size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtRange {
    /// The first address.
    pub start: GuestVirtAddr,
    /// The length in bytes; `start + size` does not overflow.
    pub size: u64,
}

/// A fence the guest asked the hypervisor to run for it on its own hart
/// (an SBI remote fence naming the calling hart). Trapping to the
/// hypervisor and returning does neither by itself: the VS-stage TLB keeps
/// the guest's translations across the exit, and the instruction fetch
/// path is only synchronised with stores by an explicit `fence.i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fence {
    /// Order the guest's earlier stores before its later instruction
    /// fetches (RISC-V `fence.i`, run by the hypervisor on the same hart).
    Instruction,
    /// Drop cached guest-virtual translations of this guest (the guest's
    /// own page tables; on RISC-V an `hfence.vvma` under the guest's VMID).
    GuestTlb {
        /// Only translations of this address space (non-global ones);
        /// `None`: every address space, global mappings included.
        asid: Option<u16>,
        /// Only translations of addresses in this range; `None`: every
        /// address.
        range: Option<VirtRange>,
    },
}

impl Fence {
    /// Above this many pages a ranged TLB fence is run as a whole-space
    /// one: one full fence is cheaper than many single-page ones.
    pub const PAGE_LIMIT: u64 = 64;

    /// For a ranged [`Fence::GuestTlb`] covering at most
    /// [`Fence::PAGE_LIMIT`] pages: the address of each 4 KiB page to fence
    /// one by one (none for an empty range). `None`: fence the whole space
    /// (of the ASID, if one is given) at once; also for
    /// [`Fence::Instruction`], which has no addresses.
    pub fn pages(&self) -> Option<impl Iterator<Item = GuestVirtAddr>> {
        let Fence::GuestTlb {
            range: Some(range), ..
        } = *self
        else {
            return None;
        };
        let first = range.start.page_base().as_u64();
        let count = if range.size == 0 {
            0
        } else {
            // `start + size` does not overflow (a `VirtRange` invariant).
            (range.start.as_u64() + (range.size - 1) - first) / PAGE_SIZE + 1
        };
        (count <= Self::PAGE_LIMIT)
            .then(|| (0..count).map(move |i| GuestVirtAddr::new(first + i * PAGE_SIZE)))
    }
}

/// A hypercall, in architecture-neutral terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// A query answered from constants (SBI base extension, PSCI version).
    Answer(u64),
    /// Print one byte on the console.
    ConsolePutByte(u8),
    /// Print `len` bytes found at guest-physical address `gpa`.
    ConsoleWrite {
        /// Where the bytes are.
        gpa: GuestPhysAddr,
        /// How many bytes.
        len: u64,
    },
    /// Read one byte of console input: the byte, or `u64::MAX` (-1) when
    /// none is waiting.
    ConsoleGetByte,
    /// Read up to `len` bytes of console input into guest-physical address
    /// `gpa`, without waiting; answers how many were read.
    ConsoleRead {
        /// Where the bytes go.
        gpa: GuestPhysAddr,
        /// At most this many.
        len: u64,
    },
    /// Arm the guest's timer for the absolute time `deadline` (in ticks of
    /// the platform timer); `u64::MAX` disarms it.
    SetTimer {
        /// The absolute deadline, in platform timer ticks.
        deadline: u64,
    },
    /// Power the VM off.
    Shutdown(ShutdownReason),
    /// Stop the calling CPU (SBI HSM `hart_stop`, PSCI `CPU_OFF`): it runs
    /// no more until another CPU starts it again.
    CpuStop,
    /// Start stopped vCPU `cpu` (SBI HSM `hart_start`, PSCI `CPU_ON`) at
    /// guest-physical `entry` with `arg` in its first argument register
    /// (SBI: `a1`, the hart id in `a0`; PSCI: `x0`, the context id).
    CpuStart {
        /// The vCPU's index, as decoded from the hart id or MPIDR; an id
        /// that names no possible vCPU decodes to [`CpuSet::MAX_CPUS`] or
        /// above, which the run loop refuses as an invalid parameter.
        cpu: u64,
        /// Where it starts, its MMU off.
        entry: GuestPhysAddr,
        /// Its opaque argument.
        arg: u64,
    },
    /// The power state of vCPU `cpu` (SBI HSM `hart_get_status`, PSCI
    /// `AFFINITY_INFO` at affinity level 0); answered with
    /// [`Reply::CpuState`].
    CpuStatus {
        /// The vCPU's index, decoded as for [`Request::CpuStart`].
        cpu: u64,
    },
    /// Suspend the calling vCPU until an interrupt is pending for it (SBI
    /// HSM `hart_suspend`, PSCI `CPU_SUSPEND`).
    CpuSuspend(Suspend),
    /// Make the supervisor software interrupt pending on every vCPU of
    /// the set (SBI IPI extension; the caller may be one of them).
    SendIpi(CpuSet),
    /// Run `fence` on every vCPU of the set before the call returns (SBI
    /// RFENCE naming harts other than, or besides, the caller).
    RemoteFence {
        /// Where.
        cpus: CpuSet,
        /// What.
        fence: Fence,
    },
    /// Put the machine into an ACPI sleeping state other than soft-off
    /// (x86 PM1a `SLP_EN` with this `SLP_TYP`, not 0): this hypervisor
    /// emulates none, so the VM stops with a failure.
    Sleep {
        /// The `SLP_TYP` field written (1..=7).
        sleep_type: u8,
    },
    /// Make the guest's supervisor software interrupt pending: an
    /// inter-processor interrupt the guest sent to its own hart.
    SelfIpi,
    /// Withdraw a pending supervisor software interrupt; answers 1 if one
    /// was pending, else 0.
    ClearIpi,
    /// Run this fence on the guest's hart.
    LocalFence(Fence),
    /// A call that does nothing, for measuring the exit round trip.
    Null,
    /// A call the hypervisor does not implement; the guest gets the
    /// calling convention's NOT_SUPPORTED.
    Unsupported {
        /// The extension or function identifier.
        id: u64,
        /// The function within the extension (0 where there is none).
        function: u64,
    },
    /// A call the hypervisor knows but that cannot be honoured for this VM
    /// (a reboot, say); the guest gets NOT_SUPPORTED.
    Refused {
        /// The extension or function identifier.
        id: u64,
        /// The function within the extension (0 where there is none).
        function: u64,
    },
    /// A known call with arguments that are not valid; the guest gets
    /// INVALID_PARAM.
    Invalid {
        /// The extension or function identifier.
        id: u64,
        /// The function within the extension (0 where there is none).
        function: u64,
    },
    /// A known call with an address (or address range) argument that is
    /// not valid; the guest gets INVALID_ADDRESS.
    BadAddress {
        /// The extension or function identifier.
        id: u64,
        /// The function within the extension (0 where there is none).
        function: u64,
    },
    /// A request to bring up something that is already up (starting a
    /// running hart); the guest gets ALREADY_AVAILABLE.
    AlreadyAvailable {
        /// The extension or function identifier.
        id: u64,
        /// The function within the extension (0 where there is none).
        function: u64,
    },
}

/// A set of a VM's vCPUs by index: bit `i` is vCPU `i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CpuSet(pub u64);

impl CpuSet {
    /// The most vCPUs one VM has (and so the most a set names).
    pub const MAX_CPUS: u64 = 8;

    /// Only vCPU `cpu`.
    pub const fn one(cpu: usize) -> Self {
        CpuSet(1 << cpu)
    }

    /// Whether vCPU `cpu` is in the set.
    pub const fn contains(self, cpu: usize) -> bool {
        cpu < 64 && self.0 & (1 << cpu) != 0
    }

    /// The vCPUs in the set, lowest first.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..64).filter(move |&i| self.0 & (1u64 << i) != 0)
    }
}

/// How a suspended vCPU comes back ([`Request::CpuSuspend`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suspend {
    /// Its state is kept: the call returns (success) once it is woken,
    /// like a wait for interrupt.
    Retentive,
    /// Its state is lost: once woken it starts at `entry` with `arg`, as
    /// a started CPU would ([`Request::CpuStart`]).
    NonRetentive {
        /// Where it resumes.
        entry: GuestPhysAddr,
        /// Its opaque argument.
        arg: u64,
    },
}

/// A vCPU's power state, as [`Request::CpuStatus`] answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuPower {
    /// Running guest code (or waiting for an interrupt).
    On,
    /// Stopped: it runs only once started.
    Off,
    /// Asked to start, not yet running.
    OnPending,
    /// Suspended until an interrupt ([`Request::CpuSuspend`]).
    Suspended,
}

/// The reply to a request that needs nothing from the hypervisor's state,
/// or `None` when the run loop must act on it.
pub fn immediate_reply(req: &Request) -> Option<Reply> {
    match *req {
        Request::Answer(v) => Some(Reply::Value(v)),
        Request::Unsupported { .. } | Request::Refused { .. } => Some(Reply::NotSupported),
        Request::Invalid { .. } => Some(Reply::InvalidParam),
        Request::BadAddress { .. } => Some(Reply::InvalidAddress),
        Request::AlreadyAvailable { .. } => Some(Reply::AlreadyAvailable),
        _ => None,
    }
}

/// The result of a hypercall, encoded back by the architecture's ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Success, with this value.
    Value(u64),
    /// The call is not implemented (or refused).
    NotSupported,
    /// An argument is not valid.
    InvalidParam,
    /// An address argument is not valid guest memory.
    InvalidAddress,
    /// What the call would bring up is already up.
    AlreadyAvailable,
    /// A vCPU's power state ([`Request::CpuStatus`]).
    CpuState(CpuPower),
}

/// Exit classes counted in the shutdown report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// Stage-2 page faults.
    NestedPageFault = 0,
    /// Hypercalls.
    Hypercall = 1,
    /// Guest timer expiries.
    Timer = 2,
    /// A load or store emulated on a device model.
    Mmio = 3,
    /// The hypervisor's own tick.
    HostTick = 4,
    /// Trapped system-register accesses the vCPU emulated.
    SysReg = 5,
    /// Port-I/O instructions emulated on the port bus.
    PortIo = 6,
    /// Guest exceptions intercepted and delivered back to the guest.
    Reflected = 7,
    /// Exits that stop the VM.
    Unexpected = 8,
    /// Another vCPU (or the hypervisor) kicked this one out of the guest:
    /// work was posted for it, or the VM ended.
    Kick = 9,
    /// The guest waited for an interrupt (a trapped WFI), which the vCPU
    /// waited for on its host CPU.
    Wfi = 10,
}

impl ExitKind {
    /// Every class, in report order.
    pub const ALL: [ExitKind; 11] = [
        ExitKind::NestedPageFault,
        ExitKind::Hypercall,
        ExitKind::Timer,
        ExitKind::Mmio,
        ExitKind::HostTick,
        ExitKind::Kick,
        ExitKind::Wfi,
        ExitKind::SysReg,
        ExitKind::PortIo,
        ExitKind::Reflected,
        ExitKind::Unexpected,
    ];

    /// The class's name in the shutdown report.
    pub const fn name(self) -> &'static str {
        match self {
            ExitKind::NestedPageFault => "nested page fault",
            ExitKind::Hypercall => "hypercall",
            ExitKind::Timer => "timer",
            ExitKind::Mmio => "mmio",
            ExitKind::HostTick => "host tick",
            ExitKind::Kick => "kick",
            ExitKind::Wfi => "wfi",
            ExitKind::SysReg => "sysreg",
            ExitKind::PortIo => "pio",
            ExitKind::Reflected => "reflected",
            ExitKind::Unexpected => "unexpected",
        }
    }
}

impl Exit {
    /// The class this exit is counted in.
    pub const fn kind(&self) -> ExitKind {
        match self {
            Exit::NestedPageFault { .. } => ExitKind::NestedPageFault,
            Exit::Hypercall(_) => ExitKind::Hypercall,
            Exit::HostTick => ExitKind::HostTick,
            Exit::Handled(h) => h.kind,
            Exit::PortIo(_) => ExitKind::PortIo,
            Exit::Unexpected(_) => ExitKind::Unexpected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn tlb(start: u64, size: u64) -> Fence {
        Fence::GuestTlb {
            asid: None,
            range: Some(VirtRange {
                start: GuestVirtAddr::new(start),
                size,
            }),
        }
    }

    fn pages(fence: Fence) -> Option<Vec<u64>> {
        fence
            .pages()
            .map(|p| p.map(GuestVirtAddr::as_u64).collect())
    }

    #[test]
    fn ranged_tlb_fences_go_page_by_page() {
        assert_eq!(pages(tlb(0x4000, 0x1000)), Some(vec![0x4000]));
        assert_eq!(pages(tlb(0x4ff8, 0x10)), Some(vec![0x4000, 0x5000]));
        assert_eq!(pages(tlb(0x4008, 1)), Some(vec![0x4000]));
        assert_eq!(pages(tlb(0x4000, 0)), Some(vec![]), "an empty range");
        assert_eq!(
            pages(tlb(u64::MAX - 0xfff, 0xfff)),
            Some(vec![u64::MAX - 0xfff]),
            "the last page"
        );
        let limit = Fence::PAGE_LIMIT * PAGE_SIZE;
        assert_eq!(pages(tlb(0x10_0000, limit)).map(|p| p.len()), Some(64));
        assert_eq!(pages(tlb(0x10_0001, limit)), None, "65 pages: all at once");
    }

    #[test]
    fn whole_space_fences_have_no_pages() {
        assert_eq!(pages(Fence::Instruction), None);
        assert_eq!(
            pages(Fence::GuestTlb {
                asid: Some(1),
                range: None
            }),
            None
        );
    }

    #[test]
    fn reply_for_requests_that_need_no_state() {
        let (id, function) = (1, 2);
        assert_eq!(
            immediate_reply(&Request::BadAddress { id, function }),
            Some(Reply::InvalidAddress)
        );
        assert_eq!(
            immediate_reply(&Request::AlreadyAvailable { id, function }),
            Some(Reply::AlreadyAvailable)
        );
        for needs_the_loop in [
            Request::SelfIpi,
            Request::ClearIpi,
            Request::ConsoleGetByte,
            Request::LocalFence(Fence::Instruction),
        ] {
            assert_eq!(immediate_reply(&needs_the_loop), None);
        }
    }

    #[test]
    fn reboot_kinds_print() {
        assert_eq!(RebootKind::Cold.to_string(), "cold");
        assert_eq!(RebootKind::Warm.to_string(), "warm");
    }
}
