//! The riscv64 vCPU: guest registers, entry through the world switch in
//! `switch.S`, the guest's timer, software and external interrupts, the
//! SBI calls a hart serves itself, and its emulated device accesses.

use super::hardware;
use super::hardware::{HGATP_MODE_SV39X4, hfence_gvma_all};
use super::mmio;
use super::timer::{Due, Timers};
use core::mem::offset_of;
use guestaspace_core::addr::{GuestPhysAddr, GuestVirtAddr, HostPhysAddr};
use guestaspace_core::arch::riscv64::hart::{self, HartControls};
use guestaspace_core::arch::riscv64::insn::MmioOp;
use guestaspace_core::arch::riscv64::sbi;
use guestaspace_core::arch::riscv64::trap::{Trap, decode};
use guestaspace_core::devices::MmioAccess;
use guestaspace_core::exit::{Access, Exit, ExitKind, Fence, Handled, Reply, Request};
use guestaspace_core::guest_memory::GuestMemory;
use guestaspace_core::machine::CpuWiring;
use guestaspace_core::vcpu::{Io, IoError, RemoteWork, Unemulated, Vcpu, access_bus};
use guestaspace_core::vm::Devices;
use riscv::register::{scause, sstatus, stval};
use riscv_h::register::{hgatp, hstatus, htval, hvip};

/// VMID of our one guest (all its harts share it).
const VMID: usize = 1;
/// Register numbers in [`VcpuState::guest`].
const A0: usize = 10;
const A1: usize = 11;
const A7: usize = 17;

/// What the world switch saves and restores; offsets are passed to the
/// assembly as constants.
#[repr(C)]
#[derive(Default)]
pub struct VcpuState {
    /// Guest x0..x31 (the x0 slot is unused).
    guest: [u64; 32],
    /// Host ra, sp, gp, tp, s0..s11 while the guest runs.
    host: [u64; 16],
    guest_pc: u64,
    host_stvec: u64,
    host_sscratch: u64,
}

core::arch::global_asm!(
    include_str!("switch.S"),
    GUEST = const offset_of!(VcpuState, guest),
    HOST = const offset_of!(VcpuState, host),
    GUEST_PC = const offset_of!(VcpuState, guest_pc),
    HOST_STVEC = const offset_of!(VcpuState, host_stvec),
    HOST_SSCRATCH = const offset_of!(VcpuState, host_sscratch),
);

unsafe extern "C" {
    fn _guestaspace_vm_enter(state: *mut VcpuState);
}

pub struct RiscvVcpu {
    state: VcpuState,
    /// The guest's timer and the hypervisor's tick on the one S-mode timer.
    timers: Timers,
    /// `htinst` of the last exit.
    htinst: u64,
    /// The PLIC context that is this hart's external interrupt line.
    irq_context: usize,
    /// The guest's hart id (the vCPU's index; also the host hart it runs on).
    hart: usize,
    /// That line's level as last given to the guest (`hvip.VSEIP`).
    external: bool,
    /// The guest's privilege when it last left: VS (true) or VU (false),
    /// from sstatus.SPP at the exit. The next entry returns it there: a
    /// guest interrupted in user mode (a host tick while Linux runs
    /// `/init`, say) must resume in user mode.
    guest_supervisor: bool,
}

impl RiscvVcpu {
    /// Hart `hart` of the guest, on the calling host hart, about to start
    /// at `entry` with `a1` = `dtb` (vCPU 0), or off until started (the
    /// others: [`Vcpu::start`] sets where).
    pub fn new(
        hart: usize,
        entry: GuestPhysAddr,
        dtb: GuestPhysAddr,
        stage2_root: HostPhysAddr,
        wiring: CpuWiring,
    ) -> Self {
        let mut state = VcpuState {
            // The guest starts with its MMU off: the entry GPA is its PC.
            guest_pc: entry.as_u64(),
            ..Default::default()
        };
        // The SBI boot protocol: a0 = hart id, a1 = the device tree.
        state.guest[A0] = hart as u64;
        state.guest[A1] = dtb.as_u64();
        let mut g = hgatp::Hgatp::from_bits(0);
        g.set_mode(hgatp::HgatpValues::Sv39x4);
        g.set_vmid(VMID);
        g.set_ppn((stage2_root.as_u64() >> 12) as usize);
        debug_assert_eq!(g.bits() >> 60, HGATP_MODE_SV39X4);
        // SAFETY: the root is a zeroed-or-filled 16 KiB-aligned Sv39x4 table
        // owned by the guest's address space, which outlives the vCPU.
        unsafe { g.write() };
        hfence_gvma_all();
        // Hypervisor loads/stores (HLVX.HU fetching a trapped instruction)
        // act with VS-mode privilege (SPVP); SPV and SPP are set on every
        // entry (`run`). Interrupts stay off in HS-mode; with V=1 an
        // enabled HS interrupt (only the timer, see `timer.rs`) still traps
        // to us.
        let mut hs = hstatus::read();
        hs.set_spvp(true);
        // SAFETY: SPVP only takes effect on HLV/HSV; SIE off keeps the
        // host's own interrupts off in HS-mode.
        unsafe {
            hs.write();
            sstatus::clear_sie();
        }
        Self {
            state,
            timers: Timers::new(),
            htinst: 0,
            irq_context: wiring.irq_context,
            hart,
            external: false,
            // The guest kernel starts in VS-mode.
            guest_supervisor: true,
        }
    }

    fn trap(&self) -> Trap {
        Trap {
            scause: scause::read().bits() as u64,
            stval: stval::read() as u64,
            htval: htval::read() as u64,
        }
    }

    /// The one S-mode timer fired: the guest's deadline (its interrupt is
    /// raised) or the host tick.
    fn timer_interrupt(&mut self) -> Exit {
        match self.timers.fired() {
            Due::Guest => {
                // SAFETY: raising VSTIP hands the interrupt to the guest;
                // it stays pending until the guest sets a new deadline.
                unsafe { hvip::set_vstip() };
                Exit::Handled(Handled::timer(false))
            }
            Due::HostTick => Exit::HostTick,
        }
    }

    /// A hypercall the hart serves itself (its timer, its own software
    /// interrupt, a fence on it), answered here.
    #[cold]
    fn serve_locally(&mut self, req: Request) -> Exit {
        match hart::serve(&req, self.hart, self) {
            Some(reply) => {
                self.finish_hypercall(reply);
                Exit::Handled(Handled::quiet(ExitKind::Hypercall, false))
            }
            None => Exit::Hypercall(req),
        }
    }

    fn args(&self) -> [u64; 8] {
        self.state.guest[A0..=A7]
            .try_into()
            .expect("eight argument registers")
    }
}

impl Vcpu for RiscvVcpu {
    fn run(&mut self) -> Exit {
        self.timers.arm();
        // How `sret` enters the guest, set on every entry: V=1 (SPV) and
        // the guest's own privilege when it left (SPP: VS-mode or VU-mode).
        // The trap out of the guest recorded that privilege in SPP; a trap
        // the host took since (it runs with interrupts off, but a page
        // fault in its own code would do) may have changed it, so it is
        // kept in `guest_supervisor` and written back here.
        let mut hs = hstatus::read();
        hs.set_spv(true);
        let spp = if self.guest_supervisor {
            sstatus::SPP::Supervisor
        } else {
            sstatus::SPP::User
        };
        // SAFETY: SPV and SPP only take effect on the sret below; hgatp was
        // set up in `new`, and the state holds the guest's registers.
        unsafe {
            hs.write();
            sstatus::set_spp(spp);
            _guestaspace_vm_enter(&mut self.state);
        }
        self.guest_supervisor = sstatus::read().spp() == sstatus::SPP::Supervisor;
        self.htinst = mmio::read_htinst();
        let trap = self.trap();
        // A trap from the guest leaves SPV = 1. SPV = 0 means the host
        // trapped inside the world switch itself (interrupts are off and it
        // touches only mapped memory, so that is a hypervisor bug): stop
        // rather than take the host's registers for the guest's.
        if !hstatus::read().spv() {
            panic!(
                "trap from the hypervisor inside the world switch: scause = {:#x}, stval = {:#x}, sepc = {:#x}",
                trap.scause, trap.stval, self.state.guest_pc
            );
        }
        // Written so that the common exit is decoded straight into the
        // return value: the hot path copies no `Exit`.
        match decode(&trap, &self.args()) {
            Exit::HostTick => self.timer_interrupt(),
            kick @ Exit::Handled(Handled {
                kind: ExitKind::Kick,
                ..
            }) => {
                clear_kick();
                kick
            }
            Exit::Hypercall(req) if hart::is_local(&req, self.hart) => self.serve_locally(req),
            exit => exit,
        }
    }

    fn pc(&self) -> GuestVirtAddr {
        GuestVirtAddr::new(self.state.guest_pc)
    }

    fn finish_hypercall(&mut self, reply: Reply) {
        let ret = sbi::encode(self.state.guest[A7], reply);
        self.state.guest[A0] = ret.a0;
        if let Some(a1) = ret.a1 {
            self.state.guest[A1] = a1;
        }
        self.state.guest_pc += 4; // `ecall` has no compressed form
    }

    /// The access is decoded from `htinst` (or the instruction read at
    /// the guest PC), performed on the bus, and a load's value written to
    /// its register; the guest steps past the instruction.
    fn emulate_io(
        &mut self,
        io: Io,
        devices: &mut Devices,
        _: &dyn GuestMemory,
    ) -> Result<(), IoError> {
        let (gpa, access) = io.mmio()?;
        let insn = mmio::decode(self.htinst, self.state.guest_pc)?;
        let bus_access = match (insn.op, access) {
            (MmioOp::Load { .. }, Access::Read) => MmioAccess::read(gpa, insn.width),
            (MmioOp::Store { rs2 }, Access::Write) => {
                let value = if rs2 == 0 {
                    0
                } else {
                    self.state.guest[usize::from(rs2)]
                };
                MmioAccess::write(gpa, insn.width, value & insn.width.mask())
            }
            _ => {
                return Err(IoError::Unemulated(Unemulated {
                    insn: self.htinst,
                    why: "the instruction does not match the fault (a load that faulted as a store?)",
                }));
            }
        };
        let value = access_bus(&mut devices.bus, bus_access)?;
        if let Some(rd) = insn.dest() {
            self.state.guest[usize::from(rd)] = insn.load_value(value);
        }
        self.state.guest_pc += u64::from(insn.len);
        Ok(())
    }

    /// The PLIC's output for this hart's S-mode context is its
    /// `hvip.VSEIP`.
    fn sync_interrupts(&mut self, devices: &mut Devices) -> u64 {
        let level = devices.external_irq(self.irq_context);
        if level == self.external {
            return 0;
        }
        self.external = level;
        // SAFETY: VSEIP is the guest's external interrupt line; it only
        // affects VS-mode.
        unsafe {
            if level {
                hvip::set_vseip();
            } else {
                hvip::clear_vseip();
            }
        }
        u64::from(level)
    }

    /// SBI HSM's start state: `a0` = hart id, `a1` = `arg`, the PC at
    /// `entry` in VS-mode with `vsatp` = 0 (no translation) and
    /// `vsstatus.SIE` = 0; no timer armed, no interrupt pending.
    fn start(&mut self, entry: GuestPhysAddr, arg: u64) {
        self.state.guest = [0; 32];
        self.state.guest[A0] = self.hart as u64;
        self.state.guest[A1] = arg;
        self.state.guest_pc = entry.as_u64();
        self.guest_supervisor = true;
        self.timers.set_guest(u64::MAX);
        // SAFETY: these are the guest's own VS-level registers, reset as
        // the SBI says a started hart finds them.
        unsafe {
            riscv_h::register::vsatp::Vsatp::from_bits(0).write();
            let mut vs = riscv_h::register::vsstatus::read();
            vs.set_sie(false);
            vs.write();
            hvip::clear_vstip();
            hvip::clear_vssip();
        }
    }

    fn remote_work(&mut self, work: RemoteWork) {
        if work.software_interrupt {
            self.raise_software_interrupt();
        }
        if work.fence_i {
            self.fence(Fence::Instruction);
        }
        if work.flush_tlb {
            hardware::hfence_vvma(None, None);
        }
    }

    /// An SBI IPI to the host hart that runs vCPU `cpu` (vCPU `i` runs on
    /// host hart `i`).
    fn kick(cpu: usize) {
        let _ = sbi_rt::send_ipi(sbi_rt::HartMask::from_mask_base(1, cpu));
    }

    /// `wfi` until a kick (or the host timer) arrives; the kick is then
    /// taken back.
    fn idle() {
        // SAFETY: `wfi` only waits; interrupts stay off in HS-mode.
        unsafe { core::arch::asm!("wfi") };
        clear_kick();
    }
}

/// Withdraws a kick (the supervisor software interrupt the SBI raised).
fn clear_kick() {
    // SAFETY: sip.SSIP is the host's own software interrupt; clearing it
    // drops only the kick already acted on.
    unsafe { riscv::register::sip::clear_ssoft() };
}

/// The SBI calls the hart serves for itself, on its own CSRs.
impl HartControls for RiscvVcpu {
    fn set_timer(&mut self, deadline: u64) {
        // SAFETY: withdrawing the guest's pending timer interrupt, as the
        // SBI TIME call requires; the new deadline is armed on entry.
        unsafe { hvip::clear_vstip() };
        self.timers.set_guest(deadline);
    }

    fn raise_software_interrupt(&mut self) {
        // SAFETY: VSSIP is the guest's supervisor software interrupt; the
        // guest clears it itself through sip.SSIP (VSSI is delegated).
        unsafe { hvip::set_vssip() };
    }

    fn clear_software_interrupt(&mut self) -> bool {
        let was = hvip::read().vssip();
        // SAFETY: as above.
        unsafe { hvip::clear_vssip() };
        was
    }

    /// `fence.i`, or `hfence.vvma` under the guest's VMID (in hgatp) page
    /// by page or whole, run here before the guest re-enters.
    fn fence(&mut self, fence: Fence) {
        match fence {
            Fence::Instruction => {
                // SAFETY: an instruction-fetch fence has no other effect.
                unsafe { core::arch::asm!("fence.i") }
            }
            Fence::GuestTlb { asid, .. } => match fence.pages() {
                Some(pages) => {
                    for va in pages {
                        hardware::hfence_vvma(Some(va.as_u64()), asid);
                    }
                }
                None => hardware::hfence_vvma(None, asid),
            },
        }
    }
}
