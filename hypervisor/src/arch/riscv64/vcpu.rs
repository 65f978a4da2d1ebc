//! The riscv64 vCPU: guest registers, entry through the world switch in
//! `switch.S`, and the guest's virtual timer.

use super::hardware::{HGATP_MODE_SV39X4, hfence_gvma_all};
use core::mem::offset_of;
use guestaspace_core::addr::{GuestPhysAddr, GuestVirtAddr, HostPhysAddr};
use guestaspace_core::arch::riscv64::sbi;
use guestaspace_core::arch::riscv64::trap::{Trap, decode};
use guestaspace_core::exit::{Exit, Reply};
use guestaspace_core::runloop::Vcpu;
use riscv::register::{scause, sie, sstatus, stval};
use riscv_h::register::{hgatp, hstatus, htval, hvip};

/// VMID of our one guest.
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
}

impl RiscvVcpu {
    pub fn new(entry: GuestPhysAddr, stage2_root: HostPhysAddr) -> Self {
        let mut state = VcpuState {
            // The guest starts with its MMU off: the entry GPA is its PC.
            guest_pc: entry.as_u64(),
            ..Default::default()
        };
        // The SBI boot protocol: a0 = hart id, a1 = device tree (none).
        state.guest[A0] = 0;
        state.guest[A1] = 0;
        let mut g = hgatp::Hgatp::from_bits(0);
        g.set_mode(hgatp::HgatpValues::Sv39x4);
        g.set_vmid(VMID);
        g.set_ppn((stage2_root.as_u64() >> 12) as usize);
        debug_assert_eq!(g.bits() >> 60, HGATP_MODE_SV39X4);
        // SAFETY: the root is a zeroed-or-filled 16 KiB-aligned Sv39x4 table
        // owned by the guest's address space, which outlives the vCPU.
        unsafe { g.write() };
        hfence_gvma_all();
        // How `sret` enters the guest: V=1 (SPV), VS-mode (SPP), and
        // hypervisor loads/stores acting as VS-mode (SPVP). Every trap from
        // the guest sets these same bits again (and any trap the host takes
        // in S-mode leaves SPP = 1 too), so they are written once, here,
        // not on each entry. Interrupts stay off in HS-mode; with V=1 an
        // enabled HS interrupt (only the timer, see `set_timer`) still
        // traps to us.
        let mut hs = hstatus::read();
        hs.set_spv(true);
        hs.set_spvp(true);
        // SAFETY: SPV/SPVP/SPP only take effect on sret and HLV/HSV.
        unsafe {
            hs.write();
            sstatus::set_spp(sstatus::SPP::Supervisor);
            sstatus::clear_sie();
        }
        Self { state }
    }

    fn trap(&self) -> Trap {
        Trap {
            scause: scause::read().bits() as u64,
            stval: stval::read() as u64,
            htval: htval::read() as u64,
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
        // SAFETY: hgatp, hstatus and sstatus were set up in `new`, and the
        // state holds the guest's registers.
        unsafe { _guestaspace_vm_enter(&mut self.state) };
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
        decode(&trap, &self.args())
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

    fn set_timer(&mut self, deadline: u64) {
        // SAFETY: the host does not use the timer itself; the guest's
        // deadline becomes the host's, and its pending bit is withdrawn.
        unsafe {
            hvip::clear_vstip();
            if deadline == u64::MAX {
                sie::clear_stimer();
            } else {
                sie::set_stimer();
            }
        }
        let _ = sbi_rt::set_timer(deadline);
    }

    fn deliver_timer(&mut self) {
        // SAFETY: raising VSTIP hands the interrupt to the guest; STIE is
        // cleared so the still-pending host timer does not trap again until
        // the guest arms a new deadline.
        unsafe {
            hvip::set_vstip();
            sie::clear_stimer();
        }
    }
}
