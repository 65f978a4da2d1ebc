//! The aarch64 vCPU: guest registers, entry through `switch.S`, and the
//! guest's EL1 state reached through the VHE `*_EL12` aliases.

use super::registers::{hcr_guest, hcr_host};
use super::timer::{Due, Timers};
use axplat_aarch64_qemu_virt_el2::gic::{
    HYP_TIMER_INTID, KICK_SGI, VIRT_TIMER_INTID, send_kick, set_ppi_enabled, take_irq,
};
use core::arch::asm;
use core::mem::offset_of;
use core::sync::atomic::{AtomicU64, Ordering};
use guestaspace_core::addr::{GuestPhysAddr, GuestVirtAddr, HostPhysAddr};
use guestaspace_core::arch::aarch64::a64_ldst::{self, Writeback};
use guestaspace_core::arch::aarch64::dabt::{self, DataAbortError, DataAbortInsn};
use guestaspace_core::arch::aarch64::debug_regs::DebugRegs;
use guestaspace_core::arch::aarch64::esr::ec;
use guestaspace_core::arch::aarch64::esr::{Trap, decode};
use guestaspace_core::arch::aarch64::sysreg;
use guestaspace_core::arch::aarch64::vtimer::asserts_interrupt;
use guestaspace_core::arch::smccc;
use guestaspace_core::exit::{Exit, ExitKind, Handled, Reply, Unexpected};
use guestaspace_core::guest_memory::GuestMemory;
use guestaspace_core::machine::CpuWiring;
use guestaspace_core::vcpu::{Io, IoError, RemoteWork, Unemulated, Vcpu, access_bus};
use guestaspace_core::vm::Devices;

/// VMID of our one guest.
const VMID: u64 = 1;
/// Guest PSTATE at entry: EL1h, D, A, I, F masked.
const SPSR_EL1H_MASKED: u64 = 0x3c5;
/// SCTLR_EL1 with only its RES1 bits: MMU and caches off.
const SCTLR_EL1_RES1: u64 = 0x30d0_0800;

/// What the world switch saves and restores; offsets go to the assembly.
#[repr(C)]
#[derive(Default)]
pub struct ArmVcpuState {
    /// Guest x0..x30.
    guest: [u64; 31],
    /// Host x19..x30 while the guest runs.
    host: [u64; 12],
    host_vbar: u64,
    /// The host's TPIDR_EL1 (its per-CPU base) while the guest runs.
    host_tpidr: u64,
    /// The guest's TPIDR_EL1 while the host runs.
    guest_tpidr: u64,
}

core::arch::global_asm!(
    include_str!("switch.S"),
    GUEST = const offset_of!(ArmVcpuState, guest),
    HOST = const offset_of!(ArmVcpuState, host),
    HOST_VBAR = const offset_of!(ArmVcpuState, host_vbar),
    HOST_TPIDR = const offset_of!(ArmVcpuState, host_tpidr),
    GUEST_TPIDR = const offset_of!(ArmVcpuState, guest_tpidr),
    unexpected = sym el2_unexpected,
);

/// Where `switch.S` sends an exception it has no business taking (one at
/// EL2 itself while the guest's vectors are installed, or an AArch32 one):
/// names it and fails the run through the panic path.
extern "C" fn el2_unexpected(vector: u64) -> ! {
    // Put the host's HCR_EL2, vectors and per-CPU base back first, so that
    // the panic path runs in the host's regime rather than with the
    // guest's stage-2 settings, our exit vectors and the guest's
    // TPIDR_EL1 still installed.
    let cpu: u64;
    // SAFETY: reading MPIDR_EL1 has no side effects.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) cpu) };
    let tpidr = HOST_TPIDRS[(cpu & 0xff) as usize % HOST_TPIDRS.len()].load(Ordering::Relaxed);
    // SAFETY: the values are the host's own (HOST_VBAR and this CPU's
    // HOST_TPIDRS entry were saved when its vCPU was made, before the
    // guest's vectors ever went in).
    unsafe {
        asm!(
            "msr hcr_el2, {hcr}",
            "msr vbar_el2, {vbar}",
            "msr tpidr_el1, {tpidr}",
            "isb",
            hcr = in(reg) hcr_host(),
            vbar = in(reg) HOST_VBAR.load(Ordering::Relaxed),
            tpidr = in(reg) tpidr,
        )
    };
    const KINDS: [&str; 4] = ["synchronous", "IRQ", "FIQ", "SError"];
    const FROM: [&str; 4] = [
        "EL2 with SP_EL0",
        "EL2 with SP_EL2",
        "EL1 AArch64",
        "EL1 AArch32",
    ];
    let (esr, elr, far): (u64, u64, u64);
    // SAFETY: reads of EL2 syndrome registers, no side effects.
    unsafe {
        asm!("mrs {}, esr_el2", "mrs {}, elr_el2", "mrs {}, far_el2", out(reg) esr, out(reg) elr, out(reg) far)
    };
    let (from, kind) = (
        FROM[(vector / 4 % 4) as usize],
        KINDS[(vector % 4) as usize],
    );
    panic!(
        "unexpected {kind} exception from {from} in the world switch: ESR_EL2 = {esr:#x}, ELR_EL2 = {elr:#x}, FAR_EL2 = {far:#x}"
    );
}

/// Each host CPU's TPIDR_EL1 (its per-CPU base), by MPIDR Aff0, for
/// [`el2_unexpected`] to put back.
static HOST_TPIDRS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

/// The guest's CNTVOFF_EL2, shared by all its vCPUs (0: none made yet).
static VM_CNTVOFF: AtomicU64 = AtomicU64::new(0);

/// The host's VBAR_EL2, for [`el2_unexpected`] to put back.
static HOST_VBAR: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" {
    fn _guestaspace_el1_enter(state: *mut ArmVcpuState) -> u64;
}

pub struct ArmVcpu {
    state: ArmVcpuState,
    pc: u64,
    pstate: u64,
    vttbr: u64,
    /// ESR_EL2 of the last exit, for decoding a device access.
    esr: u64,
    /// How this CPU is wired to the emulated GIC: its CPU interface, and
    /// the PPIs of its EL1 physical and virtual timers.
    wiring: CpuWiring,
    /// The guest's virtual IRQ line (HCR_EL2.VI), driven by the emulated
    /// GIC's CPU interface.
    virq: bool,
    /// The guest's timer and the host tick, on the EL2 physical timer.
    timers: Timers,
    /// The guest's virtual timer interrupt was taken and handed to the
    /// emulated GIC: its line is high there, and the physical PPI stays
    /// disabled until the guest's timer stops asserting it (else the
    /// level-triggered PPI would end every guest entry at once).
    vtimer_held: bool,
    /// The levels last driven on the timers' PPIs in the emulated GIC
    /// (which keeps each line's level: the same level again changes
    /// nothing there, so it is not sent again).
    timer_lines: [bool; 2],
    /// The guest's trapped debug and PMU registers.
    debug: DebugRegs,
}

impl ArmVcpu {
    /// vCPU `index`, on the calling host CPU, that starts at `entry` with
    /// `x0` = `x0` (the device tree's address, as the Linux arm64 boot
    /// protocol has it; `x1..x3` = 0). vCPUs other than 0 are off until
    /// started ([`Vcpu::start`] sets where).
    pub fn new(
        index: usize,
        entry: GuestPhysAddr,
        x0: u64,
        stage2_root: HostPhysAddr,
        wiring: CpuWiring,
    ) -> Self {
        // The host's vectors never change; `el2_unexpected` puts them back.
        let vbar: u64;
        // SAFETY: reading VBAR_EL2 has no side effects.
        unsafe { asm!("mrs {}, vbar_el2", out(reg) vbar) };
        HOST_VBAR.store(vbar, Ordering::Relaxed);
        let (tpidr, mpidr): (u64, u64);
        // SAFETY: reading TPIDR_EL1 and MPIDR_EL1 has no side effects.
        unsafe { asm!("mrs {}, tpidr_el1", "mrs {}, mpidr_el1", out(reg) tpidr, out(reg) mpidr) };
        HOST_TPIDRS[(mpidr & 0xff) as usize % HOST_TPIDRS.len()].store(tpidr, Ordering::Relaxed);
        // SAFETY: the guest's EL1 system registers are not used by the host
        // (under VHE it runs on the EL2 ones); set a clean EL1 with the MMU
        // off and no vectors, and a zero virtual-counter offset.
        unsafe {
            asm!(
                // SCTLR_EL12 and VBAR_EL12 by encoding: the assembler
                // knows them only with FEAT_VHE enabled for the whole crate.
                "msr S3_5_C1_C0_0, {sctlr}",
                "msr S3_5_C12_C0_0, xzr",
                "msr vmpidr_el2, {mpidr}",
                "isb",
                sctlr = in(reg) SCTLR_EL1_RES1,
                mpidr = in(reg) super::registers::guest_mpidr(index),
            )
        };
        // The guest's virtual count starts at zero when its first vCPU is
        // made, and reads the same on every vCPU.
        let now: u64;
        // SAFETY: reading the physical count has no side effects.
        unsafe { asm!("mrs {}, cntpct_el0", out(reg) now) };
        let offset = match VM_CNTVOFF.compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => now,
            Err(first) => first,
        };
        // SAFETY: CNTVOFF_EL2 only offsets the counter EL1 and EL0 read.
        unsafe { asm!("msr cntvoff_el2, {}", "isb", in(reg) offset) };
        let mut state = ArmVcpuState::default();
        state.guest[0] = x0;
        Self {
            state,
            // The guest starts with its MMU off: the entry IPA is its PC.
            pc: entry.as_u64(),
            pstate: SPSR_EL1H_MASKED,
            vttbr: VMID << 48 | stage2_root.as_u64(),
            esr: 0,
            wiring,
            virq: false,
            timers: Timers::new(),
            vtimer_held: false,
            timer_lines: [false; 2],
            debug: DebugRegs::new(),
        }
    }
}

impl ArmVcpu {
    /// The A64 instruction word at the guest's PC: its stage-1 translation
    /// (the guest's own tables, `AT S1E1R`) gives the IPA, which is read
    /// through our own stage-2 tables (`mem`), so that only guest RAM the
    /// host owns is ever read: never a host address the guest's tables
    /// chose, never a pass-through device page. `None` if the translation
    /// fails or the page is not such RAM. PAR_EL1, which the guest shares
    /// with the host under VHE, is given back as the guest left it.
    fn fetch_insn(&self, mem: &dyn GuestMemory) -> Option<u32> {
        let par: u64;
        // SAFETY: interrupts are masked at EL2; for the one translation the
        // guest's HCR_EL2 (stage-2 on, TGE off) is put back, so that the AT
        // instruction walks the guest's EL1&0 stage 1 (its table reads go
        // through our stage 2), then the host's is restored. Only PAR_EL1
        // is written, and it is restored to the guest's value.
        unsafe {
            asm!(
                "mrs {saved}, par_el1",
                "msr hcr_el2, {guest}",
                "isb",
                "at s1e1r, {va}",
                "isb",
                "mrs {par}, par_el1",
                "msr par_el1, {saved}",
                "msr hcr_el2, {host}",
                "isb",
                guest = in(reg) hcr_guest(false),
                host = in(reg) hcr_host(),
                va = in(reg) self.pc,
                par = out(reg) par,
                saved = out(reg) _,
            )
        };
        // PAR_EL1.F, bit 0: the translation failed (DDI 0487 D23.2 PAR_EL1).
        if par & 1 != 0 {
            return None;
        }
        // PAR_EL1.PA, bits 51:12 (here the IPA), and the page offset.
        let ipa = (par & 0x000f_ffff_ffff_f000) | (self.pc & 0xfff);
        mem.read_u32(GuestPhysAddr::new(ipa))
    }

    /// A trapped MSR/MRS: the guest's EL1 physical timer is emulated
    /// (CNTHCTL_EL2.EL1PTEN = 0), its debug and PMU registers are held
    /// (MDCR_EL2 traps); any other register stops the VM.
    fn emulate_sysreg(&mut self, esr: u64, far: u64) -> Exit {
        let access = sysreg::decode(esr);
        let rt = usize::from(access.rt);
        let debug = DebugRegs::holds(access.reg);
        let result = if access.read {
            let value = if debug {
                self.debug.read(access.reg).map_err(|_| ())
            } else {
                self.timers.read(access.reg).map_err(|_| ())
            };
            value.map(|value| {
                if rt != 31 {
                    self.state.guest[rt] = value;
                }
            })
        } else {
            let value = if rt == 31 { 0 } else { self.state.guest[rt] };
            if debug {
                self.debug.write(access.reg, value).map_err(|_| ())
            } else {
                self.timers.write(access.reg, value).map_err(|_| ())
            }
        };
        match result {
            Ok(()) => {
                // ELR_EL2 points at the MSR/MRS itself.
                self.pc += 4;
                // A timer register may have moved the timer's line.
                Exit::Handled(Handled::quiet(ExitKind::SysReg, true))
            }
            Err(_) => Exit::Unexpected(Unexpected {
                what: "trapped system register access",
                code: esr,
                info: [far, 0],
            }),
        }
    }

    /// A trapped WFI (HCR_EL2.TWI; WFE is not trapped): unless the guest's
    /// virtual IRQ line is up already, the vCPU waits on its host CPU, in a
    /// WFI at EL2 with interrupts masked, until a physical interrupt is
    /// pending (its EL2 timer, armed for its emulated timer's deadline and
    /// the host tick; its virtual timer's PPI; another vCPU's kick). The
    /// interrupt then ends its next entry, as any other exit.
    fn wait_for_interrupt(&mut self) -> Exit {
        // ELR_EL2 points at the WFI.
        self.pc += 4;
        if !self.virq {
            // SAFETY: WFI only waits; the host's interrupts stay masked.
            unsafe { asm!("wfi") };
        }
        Exit::Handled(Handled::quiet(ExitKind::Wfi, false))
    }

    /// After an exit: if the guest's virtual timer interrupt is held, lets
    /// the physical PPI through again once the timer no longer asserts it
    /// (the guest masked, disabled or re-armed it).
    fn release_virtual_timer(&mut self) {
        if !self.vtimer_held {
            return;
        }
        let ctl: u64;
        // SAFETY: reading the guest's CNTV_CTL_EL0 through its VHE alias
        // CNTV_CTL_EL02 (by encoding, S3_5_C14_C3_1) has no side effects.
        unsafe { asm!("mrs {}, S3_5_C14_C3_1", out(reg) ctl) };
        if !asserts_interrupt(ctl) {
            self.vtimer_held = false;
            set_ppi_enabled(VIRT_TIMER_INTID, true);
        }
    }
}

impl Vcpu for ArmVcpu {
    fn run(&mut self) -> Exit {
        self.timers.arm();
        let (kind, daif): (u64, u64);
        // SAFETY: with interrupts masked at EL2, program the guest's return
        // state, stage-2 and HCR, enter, and put the host's HCR and DAIF
        // back. The stage-2 root belongs to the guest's address space,
        // which outlives the vCPU.
        unsafe {
            asm!(
                "mrs {daif}, daif",
                "msr daifset, #0xf",
                "msr elr_el2, {pc}",
                "msr spsr_el2, {pstate}",
                "msr vttbr_el2, {vttbr}",
                "msr hcr_el2, {hcr}",
                "isb",
                daif = out(reg) daif,
                pc = in(reg) self.pc,
                pstate = in(reg) self.pstate,
                vttbr = in(reg) self.vttbr,
                hcr = in(reg) hcr_guest(self.virq),
            );
            kind = _guestaspace_el1_enter(&mut self.state);
            asm!(
                "msr hcr_el2, {hcr}",
                "isb",
                "mrs {pc}, elr_el2",
                "mrs {pstate}, spsr_el2",
                "msr daif, {daif}",
                hcr = in(reg) hcr_host(),
                pc = out(reg) self.pc,
                pstate = out(reg) self.pstate,
                daif = in(reg) daif,
            );
        }
        let (esr, far, hpfar): (u64, u64, u64);
        // SAFETY: reading the syndrome registers has no side effects.
        unsafe {
            asm!("mrs {0}, esr_el2", "mrs {1}, far_el2", "mrs {2}, hpfar_el2", out(reg) esr, out(reg) far, out(reg) hpfar)
        };
        self.esr = esr;
        self.release_virtual_timer();
        let trap = Trap { esr, far, hpfar };
        match kind {
            0 if trap.class() == ec::SYSREG => self.emulate_sysreg(esr, far),
            0 if trap.class() == ec::WFX => self.wait_for_interrupt(),
            0 => {
                let x = [
                    self.state.guest[0],
                    self.state.guest[1],
                    self.state.guest[2],
                    self.state.guest[3],
                ];
                decode(&trap, &x)
            }
            1 => match take_irq() {
                // The guest's timers reach it through the emulated GIC:
                // their lines go there on the loop's sync.
                Some(HYP_TIMER_INTID) => match self.timers.fired() {
                    Due::Guest => Exit::Handled(Handled::timer(true)),
                    Due::HostTick => Exit::HostTick,
                },
                // Another CPU's kick: posted work, or the VM ended.
                Some(KICK_SGI) => Exit::Handled(Handled::quiet(ExitKind::Kick, false)),
                Some(VIRT_TIMER_INTID) => {
                    set_ppi_enabled(VIRT_TIMER_INTID, false);
                    self.vtimer_held = true;
                    Exit::Handled(Handled::timer(true))
                }
                // Spurious: whatever it was is gone; the guest resumes.
                None => Exit::HostTick,
                Some(other) => Exit::Unexpected(Unexpected {
                    what: "physical IRQ the hypervisor did not enable",
                    code: u64::from(other),
                    info: [esr, far],
                }),
            },
            other => Exit::Unexpected(Unexpected {
                what: ["", "physical IRQ", "physical FIQ", "SError"][other.min(3) as usize],
                code: other,
                info: [esr, far],
            }),
        }
    }

    fn pc(&self) -> GuestVirtAddr {
        GuestVirtAddr::new(self.pc)
    }

    fn finish_hypercall(&mut self, reply: Reply) {
        // ELR_EL2 already points past the HVC.
        self.state.guest[0] = smccc::encode(reply);
    }

    /// The access comes from the data abort's syndrome (ESR_EL2.ISS), which
    /// names the register, the width and the direction. Without a syndrome
    /// (a load/store with writeback, say), the instruction is fetched at
    /// the guest's PC and decoded. The timers' lines are brought to the GIC
    /// first: one that dropped since the last exit (the guest re-armed its
    /// virtual timer, which does not trap) must be low before an
    /// end-of-interrupt write, or the EOI would re-pend it.
    fn emulate_io(
        &mut self,
        io: Io,
        devices: &mut Devices,
        mem: &dyn GuestMemory,
    ) -> Result<(), IoError> {
        let (gpa, _) = io.mmio()?;
        self.drive_timer_lines(devices);
        let (insn, writeback) = match dabt::decode(self.esr) {
            Ok(insn) => (insn, None),
            Err(DataAbortError::NoSyndrome { .. }) => {
                let word = self.fetch_insn(mem).ok_or(Unemulated {
                    insn: self.esr,
                    why: "no valid syndrome, and the instruction at the guest PC is not in guest RAM",
                })?;
                let a = a64_ldst::decode(word).map_err(|e| Unemulated {
                    insn: u64::from(word),
                    why: e.why(),
                })?;
                (a.insn, a.writeback)
            }
            Err(e) => {
                return Err(IoError::Unemulated(Unemulated {
                    insn: e.esr(),
                    why: e.why(),
                }));
            }
        };
        let value = access_bus(&mut devices.bus, insn.access(gpa, &self.state.guest))?;
        self.complete(insn, writeback, value);
        Ok(())
    }

    /// The timers' lines to the GIC, then the GIC's CPU interface output to
    /// the guest's virtual IRQ line.
    fn sync_interrupts(&mut self, devices: &mut Devices) -> u64 {
        self.drive_timer_lines(devices);
        let level = devices.external_irq(self.wiring.irq_context);
        if level == self.virq {
            return 0;
        }
        self.virq = level;
        u64::from(level)
    }

    /// PSCI CPU_ON's start state: EL1h with D, A, I and F masked, the MMU
    /// and caches off (SCTLR_EL1 at its RES1 bits), no vectors, `x0` =
    /// `arg` (the context id) and the other registers 0, the PC at
    /// `entry`; its timers stopped.
    fn start(&mut self, entry: GuestPhysAddr, arg: u64) {
        self.state.guest = [0; 31];
        self.state.guest[0] = arg;
        self.pc = entry.as_u64();
        self.pstate = SPSR_EL1H_MASKED;
        self.timers = Timers::new();
        self.timer_lines = [false; 2];
        self.virq = false;
        if self.vtimer_held {
            self.vtimer_held = false;
            set_ppi_enabled(VIRT_TIMER_INTID, true);
        }
        // SAFETY: the guest's own EL1 registers, through their VHE
        // aliases by encoding (SCTLR_EL12, VBAR_EL12, CNTV_CTL_EL02).
        unsafe {
            asm!(
                "msr S3_5_C1_C0_0, {sctlr}",
                "msr S3_5_C12_C0_0, xzr",
                "msr S3_5_C14_C3_1, xzr",
                "isb",
                sctlr = in(reg) SCTLR_EL1_RES1,
            )
        };
    }

    /// Only fences: aarch64 software interrupts are SGIs, which go through
    /// the emulated GIC (a sync, not a posted interrupt).
    fn remote_work(&mut self, work: RemoteWork) {
        if work.fence_i {
            // SAFETY: invalidating the instruction caches has no other
            // effect.
            unsafe { asm!("ic iallu", "dsb nsh", "isb") };
        }
        if work.flush_tlb {
            // SAFETY: with the guest's HCR_EL2 (TGE off) for the one
            // instruction, TLBI VMALLE1 drops the stage-1 entries of the
            // guest's VMID (in VTTBR_EL2, still the guest's) on this CPU;
            // the host's HCR_EL2 is put back.
            unsafe {
                asm!(
                    "msr hcr_el2, {guest}",
                    "isb",
                    "tlbi vmalle1",
                    "dsb nsh",
                    "msr hcr_el2, {host}",
                    "isb",
                    guest = in(reg) hcr_guest(false),
                    host = in(reg) hcr_host(),
                )
            };
        }
    }

    /// The kick SGI to host CPU `cpu` (vCPU `i` runs on host CPU `i`).
    fn kick(cpu: usize) {
        send_kick(cpu);
    }

    /// WFI until a physical interrupt is pending (a kick's SGI; it wakes
    /// the CPU with interrupts masked), then takes every pending one: an
    /// off vCPU's timers are reset when it starts ([`Vcpu::start`]), so
    /// nothing taken here is missed.
    fn idle() {
        // SAFETY: WFI only waits.
        unsafe { asm!("wfi") };
        while take_irq().is_some() {}
    }
}

impl ArmVcpu {
    /// The emulated EL1 physical timer's and the virtual timer's levels on
    /// the PPIs they are wired to.
    fn drive_timer_lines(&mut self, devices: &mut Devices) {
        let levels = [self.timers.guest_level(), self.vtimer_held];
        if levels == self.timer_lines {
            return;
        }
        self.timer_lines = levels;
        for (&ppi, level) in self.wiring.timer_irqs.iter().zip(levels) {
            devices.set_irq_line(ppi, level);
        }
    }

    /// Finishes a device access: a load's `value` into its register, the
    /// base register's writeback, the PC past the instruction.
    fn complete(&mut self, insn: DataAbortInsn, writeback: Option<Writeback>, value: u64) {
        if let Some(reg) = insn.dest() {
            self.state.guest[reg as usize] = insn.load_value(value);
        }
        if let Some(Writeback { rn, offset }) = writeback {
            let base = &mut self.state.guest[rn as usize];
            *base = base.wrapping_add_signed(offset);
        }
        self.pc += u64::from(insn.len);
    }
}
