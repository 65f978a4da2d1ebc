//! An Arm GICv2 ("ARM Generic Interrupt Controller Architecture
//! Specification, version 2.0", ARM IHI 0048B) for a guest with 1 to 8
//! CPUs, laid out as on QEMU's `virt` machine.
//!
//! # One device, two frames
//!
//! | offset | frame |
//! |---|---|
//! | `0x0_0000..0x0_1000` | distributor (GICD, at 0x0800_0000 on `virt`), registers in [`gicd`] |
//! | `0x1_0000..0x1_2000` | CPU interface (GICC, at 0x0801_0000), registers in [`gicc`] |
//!
//! The two frames share all the interrupt state (an acknowledge in the
//! CPU interface changes what the distributor's pending and active
//! registers show) and the bus gives each device one range, so one
//! [`Gicv2`] covers both: [`GIC_SIZE`] bytes from the distributor base,
//! with the frames at [`GICD_OFFSET`] and [`GICC_OFFSET`]. Everything else
//! in the range is refused with [`DeviceError::BadOffset`].
//!
//! # Why both halves are emulated
//!
//! The guest's distributor and CPU interface are both trap-and-emulate: the
//! hypervisor maps neither, every access exits, and it drives the guest's
//! virtual IRQ line (HCR_EL2.VI) from [`Device::irq_output`] with the
//! vCPU's index as the context ([`IRQ_CONTEXT`] for CPU 0). This works
//! whatever GIC the host has and however it is configured (the host keeps
//! its own GIC to itself), and the whole model is plain state that
//! unit-tests on the host. Its price is two exits per
//! interrupt taken by the guest: the GICC_IAR read and the GICC_EOIR
//! write. Handing the CPU interface to the hardware (GICV mapped in place
//! of GICC, pending interrupts put in the GICH list registers) removes
//! those exits and is a later optimisation.
//!
//! # Interrupts
//!
//! [`Device::set_irq_source`] takes the INTID itself: PPIs 16..=31 (the
//! timers: [`VTIMER_PPI`] 27, [`PTIMER_PPI`] 30) and SPIs 32.. (the PL011
//! of `virt` is SPI 1, INTID 33). SGIs 0..=15 only come from the guest's
//! GICD_SGIR and GICD_SPENDSGIR writes; sources outside 16..[`NUM_INTIDS`]
//! are ignored. A PPI is the selected CPU's (see [CPUs](#cpus)); an SPI
//! is shared. The model has [`NUM_SPIS`] = 64 SPIs, a small QEMU
//! configuration: GICD_TYPER reads ITLinesNumber 2 (96 INTIDs), CPUNumber
//! `n - 1` for `n` CPU interfaces, SecurityExtn 0.
//!
//! Lines are levels (the bus polls them). Each INTID has a pending latch
//! next to its line; it reads as pending when the latch is set or, when
//! level-sensitive, while its line is high:
//!
//! - SPIs follow GICD_ICFGR: level-sensitive at reset; edge-triggered
//!   (Int_config\[1\] = 1), a rising line sets the latch and the line
//!   level no longer counts. Int_config\[0\] (reserved in GICv2) is RAZ/WI.
//! - PPIs are level-sensitive and fixed (GICD_ICFGR1 reads 0, writes are
//!   ignored): their sources, the timers, are level outputs.
//! - SGIs are edge-triggered (GICD_ICFGR0 reads 0xAAAA_AAAA, writes are
//!   ignored); their pending state is one bit per source CPU, as
//!   GICD_SPENDSGIR shows it. A GICD_SGIR write records the writing CPU as
//!   the source; GICD_SPENDSGIR may set any of the 8 source bits. GICC_IAR
//!   hands out the lowest source first and returns it in bits \[12:10\];
//!   GICC_EOIR and GICC_DIR must carry the same source while the SGI is
//!   active (a write naming another is ignored: UNPREDICTABLE in the
//!   specification).
//!
//! GICD_ISPENDR/ICPENDR set and clear the latch (SGI bits are WI there: use
//! GICD_SPENDSGIR/CPENDSGIR), so a clear-pending cannot withdraw a level
//! line that is still high. Acknowledging (GICC_IAR) makes the interrupt
//! active and clears the latch (one source of an SGI); if it is still
//! pending (a high level line, a new edge, another SGI source) it is
//! active and pending, and an active interrupt is not signalled again until
//! it is deactivated. Deactivation is the GICC_EOIR write when
//! GICC_CTLR.EOImode (bit 9) is 0, else the GICC_DIR write; GICC_EOIR
//! always drops the running priority. Pending state is kept while the
//! distributor, the CPU interface or the interrupt is disabled.
//!
//! # Security view and groups
//!
//! The guest sees a GICv2 without the Security Extensions, as QEMU's `virt`
//! presents it to an EL1 guest unless started with `secure=on`: GICD_CTLR
//! has EnableGrp0 (bit 0) and EnableGrp1 (bit 1); GICC_CTLR has that
//! configuration's single layout (EnableGrp0, EnableGrp1, AckCtl, FIQEn,
//! CBPR, the four bypass-disable bits kept without effect, EOImode at bit
//! 9). GICD_IGROUPR is storage (GICv2 always has groups), 0 at reset, so
//! every interrupt is group 0 and bit 0 of each CTLR is its enable:
//! drivers written for the one-bit view ("bit 0 = Enable", Linux) and
//! drivers that set both bits (ArceOS) both work. An interrupt is
//! forwarded only when its group is enabled in both CTLRs.
//! A group-1 interrupt is acknowledged through GICC_IAR only with
//! GICC_CTLR.AckCtl set (else GICC_IAR and GICC_HPPIR read 1022), and
//! through the aliases GICC_AIAR/AEOIR/AHPPIR, which see group 1 only.
//! There is no FIQ line: GICC_CTLR.FIQEn is RAZ/WI and both groups signal
//! the IRQ line. GICD_NSACR and GICC_NSAPR are RAZ/WI.
//!
//! # Priorities
//!
//! All 8 priority bits are implemented, as on QEMU `virt` (QEMU's
//! `num-priority-bits` defaults to 8): GICD_IPRIORITYR and GICC_PMR read
//! back exactly what was written. An interrupt is signalled when its
//! priority is below (numerically) GICC_PMR and its group priority below
//! the running priority (GICC_RPR, 0xFF when idle). Group priority uses
//! GICC_BPR (minimum 0: bits \[7:1\]) for group 0 and for group 1 when
//! GICC_CTLR.CBPR is set, else GICC_ABPR (minimum 1: bits \[7:1\]). That
//! gives 128 preemption levels, tracked in GICC_APR0..3: bit `n` of the
//! 128 is set while an interrupt with group priority `2n` is active and
//! not yet priority-dropped. A GICC_EOIR write clears the lowest set bit
//! (the specification requires EOIs in reverse order of acknowledges) and
//! is ignored when none is set or the INTID is not implemented.
//!
//! # CPUs
//!
//! [`Gicv2::with_cpus`] builds a GIC with `n` CPU interfaces, 1 to
//! [`MAX_CPUS`] ([`Gicv2::new`]: one). Every vCPU reaches the same two
//! frames; which one is accessing is what [`Device::select_cpu`] last said
//! (CPU 0 at first), and the bus says it before the vCPU's accesses. The
//! state of INTIDs 0..=31 is banked, one copy per CPU, as IHI 0048B
//! requires: GICD_IGROUPR0, ISENABLER0/ICENABLER0, ISPENDR0/ICPENDR0,
//! ISACTIVER0/ICACTIVER0, IPRIORITYR0..7, CPENDSGIR/SPENDSGIR (the SGIs
//! pending on that CPU, by source) and each PPI's line (a
//! [`Device::set_irq_source`] of a PPI drives the selected CPU's: the
//! timer of the vCPU that syncs its lines). The whole GICC frame is per
//! CPU. GICD_CTLR, the SPIs' state and the trigger configuration are
//! shared.
//!
//! # Targets
//!
//! GICD_ITARGETSR0..7 (SGIs and PPIs) read, in each byte, the reading
//! CPU's bit (0x01 on CPU 0, 0x02 on CPU 1...) and ignore writes. An SPI's
//! byte keeps the bits of the CPU interfaces that exist (the others are
//! RAZ/WI) and is 0x01, CPU 0, at reset (the specification leaves the
//! reset value open), so a guest that never programs targets still gets
//! its SPIs on its boot CPU; an SPI whose byte is 0 targets no CPU and is
//! never signalled. An SPI with several targets is 1-of-N, modelled simply
//! (as the specification allows): it is pending on every targeted CPU
//! interface, and the first to acknowledge it makes it active, so the
//! others no longer see it.
//!
//! GICD_SGIR pends its SGI on the CPUs its TargetListFilter names: 0, the
//! CPU target list; 1, every CPU but the writer; 2, the writer only; 3,
//! reserved, nobody. Target bits of CPUs the GIC does not have are
//! ignored. SGI enables are programmable and set at reset (as QEMU resets
//! them); PPI and SPI enables are clear.
//!
//! # Identification
//!
//! The model identifies as an Arm GIC-400: GICD_IIDR = 0x0200_143B
//! (product 2, revision 1, implementer 0x43B = Arm), GICC_IIDR =
//! 0x0202_143B (product 0x20, architecture 2), and the GIC-400 peripheral
//! and component ID registers at 0xFD0..0xFFC, ICPIDR2 = 0x2B with
//! ArchRev (bits \[7:4\]) = 2.
//!
//! # Accesses
//!
//! Registers take aligned 4-byte accesses; GICD_IPRIORITYR,
//! GICD_ITARGETSR, GICD_CPENDSGIR and GICD_SPENDSGIR also take single
//! bytes, as the specification requires. Anything else is
//! [`DeviceError::BadWidth`]. The registers of INTIDs beyond the 96
//! implemented are RAZ/WI; reserved and implementation-defined offsets
//! (GICD_PPISR/SPISR among them) are [`DeviceError::BadOffset`]; writes to
//! read-only registers are [`DeviceError::ReadOnly`], except for the
//! read-only parts of registers that are otherwise writable (ITARGETSR0..7,
//! ICFGR0..1, SGI bits), which are ignored, because drivers write them
//! wholesale. Reading a write-only register (GICD_SGIR, GICC_EOIR,
//! GICC_AEOIR, GICC_DIR) returns 0.
//!
//! # What the guests use
//!
//! - ArceOS (`axplat-aarch64-peripherals` over `arm-gic-driver` 0.15):
//!   GICD_CTLR (read-modify-write, both enable bits), GICD_TYPER,
//!   ICENABLER/ICPENDR/ICACTIVER (all ones) and IGROUPR (zero) words,
//!   ITARGETSR bytes for INTIDs 8..=23 (within the read-only SGI/PPI part),
//!   ICFGR words of 0 (ICFGR0 included), then per interrupt ISENABLER and
//!   an ICFGR read-modify-write making SPIs edge-triggered; GICC_CTLR = 1
//!   and an EOImode read-modify-write, GICC_PMR = 0xFF, IPRIORITYR bytes
//!   0..=31 = 0xA0; per interrupt GICC_IAR, GICC_EOIR and GICC_DIR when
//!   EOImode is set; GICD_SGIR for IPIs. The older `arm_gicv2` 0.1 crate
//!   needs a subset: TYPER, ICENABLER, ICPENDR, ICFGR (SPIs edge),
//!   ITARGETSR only with more than one CPU, GICD_CTLR = 1, GICC_CTLR = 1,
//!   GICC_PMR = 0xFF, GICC_IAR and GICC_EOIR.
//! - Linux (`drivers/irqchip/irq-gic.c`): GICD_TYPER; `gic_dist_init`:
//!   GICD_CTLR 0 then 1, ITARGETSR0..7 word reads to learn its CPU mask,
//!   SPI ITARGETSR, ICFGR, IPRIORITYR, ICACTIVER and ICENABLER words;
//!   `gic_cpu_init`: ICACTIVER0, ICENABLER0 (PPIs), ISENABLER0 (SGIs),
//!   IPRIORITYR0..7 words, GICC_PMR = 0xF0, a GICC_CTLR read-modify-write
//!   keeping the bypass bits and setting bit 0 (split EOImode only when
//!   the kernel booted at EL2, which a guest does not); `gic_handle_irq`: GICC_IAR until it
//!   reads 1020 or more, GICC_EOIR (and GICC_DIR in split mode);
//!   `gic_set_type`: ICFGR read-modify-write checked by reading back;
//!   IPIs through GICD_SGIR, affinity through ITARGETSR (a word
//!   read-modify-write in older kernels, a byte write in newer ones), and
//!   ISPENDR/ICPENDR/ISACTIVER/ICACTIVER for the irqchip state calls.

use super::{Device, DeviceError, Width};
use cpu_interface::CpuInterface;

mod cpu_interface;
mod distributor;
#[cfg(test)]
mod tests;

pub use cpu_interface::gicc;
pub use distributor::gicd;

/// Guest-physical address of the distributor, the start of the device's
/// range, on QEMU `virt`.
pub const VIRT_BASE: u64 = 0x0800_0000;
/// Offset of the distributor (GICD) frame in the device's range.
pub const GICD_OFFSET: u64 = 0;
/// Bytes of the distributor's registers, all the model decodes in its
/// frame: GICD_CTLR at 0x000 to the last component ID register at 0xFFC
/// (the distributor register map of IHI 0048B).
pub const GICD_SIZE: u64 = 0x1000;
/// Offset of the CPU interface (GICC) frame in the device's range.
pub const GICC_OFFSET: u64 = 0x1_0000;
/// Bytes of the CPU interface's registers, all the model decodes in its
/// frame: GICC_CTLR at 0x0000 to GICC_DIR at 0x1000 (the CPU interface
/// register map of IHI 0048B).
pub const GICC_SIZE: u64 = 0x2000;
/// Size of the device's range: both 64 KiB frames.
pub const GIC_SIZE: u64 = 0x2_0000;

/// First PPI INTID (SGIs are 0..=15).
pub const PPI_BASE: u32 = 16;
/// First SPI INTID.
pub const SPI_BASE: u32 = 32;
/// Number of SPIs implemented.
pub const NUM_SPIS: u32 = 64;
/// Number of INTIDs implemented: SGIs, PPIs and SPIs.
pub const NUM_INTIDS: u32 = SPI_BASE + NUM_SPIS;
/// PPI of the EL1 virtual timer.
pub const VTIMER_PPI: u32 = 27;
/// PPI of the EL1 (non-secure) physical timer.
pub const PTIMER_PPI: u32 = 30;
/// The INTID GICC_IAR returns when there is nothing to acknowledge.
pub const SPURIOUS: u32 = 1023;
/// The INTID GICC_IAR returns when the best interrupt is group 1 and
/// GICC_CTLR.AckCtl is clear.
pub const SPURIOUS_GROUP1: u32 = 1022;
/// The [`Device::irq_output`] context of CPU interface 0's IRQ line; CPU
/// interface `n`'s is `n`.
pub const IRQ_CONTEXT: usize = 0;
/// The most CPU interfaces a GICv2 has.
pub const MAX_CPUS: usize = 8;

/// GICD_TYPER of a one-CPU GIC: ITLinesNumber = 96 / 32 - 1, CPUNumber 0,
/// SecurityExtn 0 (with `n` CPUs, CPUNumber, bits \[7:5\], is `n - 1`).
pub const GICD_TYPER_VALUE: u32 = NUM_INTIDS / 32 - 1;
/// GICD_IIDR: an Arm GIC-400 (product 0x02, revision 1, implementer 0x43B).
pub const GICD_IIDR_VALUE: u32 = 0x0200_143b;
/// GICC_IIDR: an Arm GIC-400 CPU interface (product 0x020, GICv2, revision 1).
pub const GICC_IIDR_VALUE: u32 = 0x0202_143b;

/// Bits of GICD_CTLR and GICC_CTLR.
pub mod ctlr {
    /// Forward / signal group 0 interrupts.
    pub const ENABLE_GRP0: u32 = 1 << 0;
    /// Forward / signal group 1 interrupts.
    pub const ENABLE_GRP1: u32 = 1 << 1;
    /// GICC_CTLR: GICC_IAR may acknowledge group 1 interrupts.
    pub const ACK_CTL: u32 = 1 << 2;
    /// GICC_CTLR: group 0 as FIQ (not implemented: RAZ/WI).
    pub const FIQ_EN: u32 = 1 << 3;
    /// GICC_CTLR: GICC_BPR also sets group 1's binary point.
    pub const CBPR: u32 = 1 << 4;
    /// GICC_CTLR: split priority drop (GICC_EOIR) and deactivation (GICC_DIR).
    pub const EOI_MODE: u32 = 1 << 9;
}

// The bit registers are whole words of INTIDs.
const _: () = assert!(NUM_INTIDS.is_multiple_of(32));
const WORDS: usize = (NUM_INTIDS / 32) as usize;
const NUM: usize = NUM_INTIDS as usize;
/// Mask of an INTID in GICC_IAR, EOIR, DIR...
const INTID_MASK: u32 = 0x3ff;
/// Internal running priority when nothing is active (GICC_RPR reads 0xFF).
const IDLE_PRIORITY: u32 = 0x100;
/// Words of GICC_APRn: 128 preemption levels, one bit each.
const APR_WORDS: usize = 4;

/// A set of INTIDs as bit words (bit `id % 32` of word `id / 32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bits([u32; WORDS]);

impl Bits {
    const EMPTY: Self = Bits([0; WORDS]);

    fn get(&self, id: u32) -> bool {
        self.0[(id / 32) as usize] & (1 << (id % 32)) != 0
    }

    fn set(&mut self, id: u32, on: bool) {
        set_bit(&mut self.0[(id / 32) as usize], id % 32, on);
    }
}

/// Sets or clears bit `bit` of `word`.
fn set_bit(word: &mut u32, bit: u32, on: bool) {
    if on {
        *word |= 1 << bit;
    } else {
        *word &= !(1 << bit);
    }
}

/// The bit-per-INTID state, banked for INTIDs 0..=31: indexes of
/// [`Gicv2::shared`] (SPIs) and of each CPU's [`Cpu::bits`] (its SGIs and
/// PPIs).
#[derive(Clone, Copy, Debug)]
enum Field {
    /// GICD_IGROUPR: set = group 1.
    Group,
    /// GICD_ISENABLER.
    Enabled,
    /// Pending latch of PPIs and SPIs (edges, GICD_ISPENDR).
    Latch,
    /// GICD_ISACTIVER.
    Active,
    /// The input line of each PPI and SPI.
    Line,
}
const FIELDS: usize = 5;

/// What one CPU has of its own: the distributor state of its SGIs and PPIs
/// (banked: each CPU sees its own at the same offsets) and its CPU
/// interface.
#[derive(Clone, Copy, Debug)]
struct Cpu {
    /// Word 0 (INTIDs 0..=31) of each bit-per-INTID state, by [`Field`].
    bits: [u32; FIELDS],
    /// GICD_IPRIORITYR0..7.
    priority: [u8; 32],
    /// Pending SGIs: bit `src` of byte `sgi` = pending from source CPU `src`.
    sgi_sources: [u8; 16],
    /// The source CPU each SGI was acknowledged from (meaningful while it
    /// is active): GICC_EOIR and GICC_DIR must name it.
    sgi_active_source: [u8; 16],
    /// GICC_*.
    iface: CpuInterface,
}

impl Cpu {
    /// Reset: SGIs enabled, everything else clear.
    const RESET: Self = Cpu {
        bits: {
            let mut b = [0; FIELDS];
            b[Field::Enabled as usize] = 0xffff;
            b
        },
        priority: [0; 32],
        sgi_sources: [0; 16],
        sgi_active_source: [0; 16],
        iface: CpuInterface::RESET,
    };
}

/// The GICv2 model: the distributor and 1 to [`MAX_CPUS`] CPU interfaces.
#[derive(Clone, Debug)]
pub struct Gicv2 {
    /// CPU interfaces implemented (GICD_TYPER.CPUNumber + 1).
    num_cpus: usize,
    /// The CPU making the accesses ([`Device::select_cpu`]).
    current: usize,
    /// GICD_CTLR.
    dist_ctlr: u32,
    /// Words 1.. (SPIs) of each bit-per-INTID state, by [`Field`]; word 0
    /// is banked in [`Cpu::bits`].
    shared: [Bits; FIELDS],
    /// Edge-triggered SPIs (GICD_ICFGR Int_config\[1\]).
    edge: Bits,
    /// GICD_IPRIORITYR of SPIs (entries below 32 unused: banked).
    priority: [u8; NUM],
    /// GICD_ITARGETSR of SPIs (entries below 32 unused).
    target: [u8; NUM],
    /// Per-CPU state; entries from `num_cpus` on unused.
    cpus: [Cpu; MAX_CPUS],
}

impl Default for Gicv2 {
    fn default() -> Self {
        Self::new()
    }
}

impl Gicv2 {
    /// A GIC with one CPU interface in its reset state (see
    /// [`Gicv2::with_cpus`]).
    pub const fn new() -> Self {
        Self::with_cpus(1)
    }

    /// A GIC with `cpus` CPU interfaces (0..`cpus`) in its reset state:
    /// everything disabled and idle, SGIs enabled, priorities and GICC_PMR
    /// 0, SPIs level-sensitive, group 0, targeting CPU 0; accesses are CPU
    /// 0's until [`Device::select_cpu`] says otherwise.
    ///
    /// # Panics
    ///
    /// If `cpus` is not in 1..=[`MAX_CPUS`] (a VM's config allows no other).
    pub const fn with_cpus(cpus: usize) -> Self {
        assert!(cpus >= 1 && cpus <= MAX_CPUS, "a GICv2 has 1 to 8 CPUs");
        Self {
            num_cpus: cpus,
            current: 0,
            dist_ctlr: 0,
            shared: [Bits::EMPTY; FIELDS],
            edge: Bits::EMPTY,
            priority: [0; NUM],
            target: [1; NUM],
            cpus: [Cpu::RESET; MAX_CPUS],
        }
    }

    /// How many CPU interfaces the GIC has.
    pub const fn cpus(&self) -> usize {
        self.num_cpus
    }

    /// The bits of the implemented CPU interfaces, as in a target list.
    fn cpu_mask(&self) -> u8 {
        ((1u16 << self.num_cpus) - 1) as u8
    }

    /// Word `w` of `field` as CPU `cpu` sees it (word 0 is banked).
    fn word(&self, cpu: usize, field: Field, w: usize) -> u32 {
        match w {
            0 => self.cpus[cpu].bits[field as usize],
            _ => self.shared[field as usize].0[w],
        }
    }

    /// Word `w` of `field` as CPU `cpu` sees it, to change it.
    fn word_mut(&mut self, cpu: usize, field: Field, w: usize) -> &mut u32 {
        match w {
            0 => &mut self.cpus[cpu].bits[field as usize],
            _ => &mut self.shared[field as usize].0[w],
        }
    }

    /// Bit `id` of `field` as CPU `cpu` sees it.
    fn get(&self, cpu: usize, field: Field, id: u32) -> bool {
        self.word(cpu, field, (id / 32) as usize) & (1 << (id % 32)) != 0
    }

    /// Sets or clears bit `id` of `field` as CPU `cpu` sees it.
    fn set(&mut self, cpu: usize, field: Field, id: u32, on: bool) {
        set_bit(self.word_mut(cpu, field, (id / 32) as usize), id % 32, on);
    }

    /// The priority of `id` as CPU `cpu` sees it (INTIDs 0..=31 banked).
    fn priority_of(&self, cpu: usize, id: u32) -> u8 {
        match id {
            0..SPI_BASE => self.cpus[cpu].priority[id as usize],
            _ => self.priority.get(id as usize).copied().unwrap_or(0),
        }
    }

    /// The priority byte of `id` as CPU `cpu` sees it, if implemented.
    fn priority_mut(&mut self, cpu: usize, id: u32) -> Option<&mut u8> {
        match id {
            0..SPI_BASE => Some(&mut self.cpus[cpu].priority[id as usize]),
            _ => self.priority.get_mut(id as usize),
        }
    }

    /// Whether `id` is edge-triggered: SGIs always, PPIs never, SPIs as
    /// configured.
    fn is_edge(&self, id: u32) -> bool {
        match id {
            0..PPI_BASE => true,
            PPI_BASE..SPI_BASE => false,
            _ => self.edge.get(id),
        }
    }

    /// Whether `id` is pending on CPU `cpu` (whether or not it is also
    /// active); an SPI's pending state is the same for every CPU.
    fn is_pending(&self, cpu: usize, id: u32) -> bool {
        if id < PPI_BASE {
            self.cpus[cpu].sgi_sources[id as usize] != 0
        } else {
            self.get(cpu, Field::Latch, id) || (!self.is_edge(id) && self.get(cpu, Field::Line, id))
        }
    }

    fn group_of(&self, cpu: usize, id: u32) -> u32 {
        u32::from(self.get(cpu, Field::Group, id))
    }

    /// Whether `group` is enabled in both the distributor and CPU `cpu`'s
    /// interface.
    fn group_enabled(&self, cpu: usize, group: u32) -> bool {
        let bit = ctlr::ENABLE_GRP0 << group;
        self.dist_ctlr & bit != 0 && self.cpus[cpu].iface.ctlr & bit != 0
    }

    /// The interrupt CPU `cpu`'s interface would present, whatever its
    /// running priority: pending, not active, enabled, of an enabled group,
    /// targeting that CPU (SGIs and PPIs are its own), with a priority
    /// below its GICC_PMR; the highest priority wins, then the lowest
    /// INTID.
    fn best(&self, cpu: usize) -> Option<u32> {
        let pmr = self.cpus[cpu].iface.pmr;
        let mut best: Option<(u32, u8)> = None;
        // Word by word, only the INTIDs pending, enabled and not active on
        // this CPU are looked at (usually none): this runs after every
        // device access, for each CPU's line.
        for w in 0..WORDS {
            let mut candidates = self.pending_word(cpu, w)
                & self.word(cpu, Field::Enabled, w)
                & !self.word(cpu, Field::Active, w);
            while candidates != 0 {
                let id = w as u32 * 32 + candidates.trailing_zeros();
                candidates &= candidates - 1;
                let p = self.priority_of(cpu, id);
                if p < pmr
                    && best.is_none_or(|(_, bp)| p < bp)
                    && self.group_enabled(cpu, self.group_of(cpu, id))
                    && (id < SPI_BASE || self.target[id as usize] & (1 << cpu) != 0)
                {
                    best = Some((id, p));
                }
            }
        }
        best.map(|(id, _)| id)
    }

    /// Word `w` of what is pending on CPU `cpu`, as [`Gicv2::is_pending`]
    /// says bit by bit: an SGI from any source; a PPI or SPI latched, or
    /// level-triggered with its line high.
    fn pending_word(&self, cpu: usize, w: usize) -> u32 {
        let latch = self.word(cpu, Field::Latch, w);
        let line = self.word(cpu, Field::Line, w);
        if w > 0 {
            return latch | (line & !self.edge.0[w]);
        }
        // Word 0: SGIs (0..16) by source; PPIs (16..32) level-triggered.
        let sgis = self.cpus[cpu]
            .sgi_sources
            .iter()
            .enumerate()
            .fold(0u32, |acc, (sgi, &sources)| {
                acc | (u32::from(sources != 0) << sgi)
            });
        sgis | ((latch | line) & 0xffff_0000)
    }

    /// The group priority of `id` on CPU `cpu`: its priority with the bits
    /// below the binary point of its group cleared.
    fn group_priority(&self, cpu: usize, id: u32) -> u32 {
        let iface = &self.cpus[cpu].iface;
        let shift = if self.get(cpu, Field::Group, id) && iface.ctlr & ctlr::CBPR == 0 {
            u32::from(iface.abpr)
        } else {
            u32::from(iface.bpr) + 1
        };
        u32::from(self.priority_of(cpu, id)) & (0xff << shift)
    }

    /// The priority of CPU `cpu`'s highest active preemption level, or
    /// `IDLE_PRIORITY`.
    fn running_priority(&self, cpu: usize) -> u32 {
        self.cpus[cpu]
            .iface
            .apr
            .iter()
            .enumerate()
            .find(|(_, w)| **w != 0)
            .map_or(IDLE_PRIORITY, |(i, w)| {
                (32 * i as u32 + w.trailing_zeros()) << 1
            })
    }

    /// What CPU `cpu`'s GICC_HPPIR (`alias`: GICC_AHPPIR) reads.
    fn highest_pending(&self, cpu: usize, alias: bool) -> u32 {
        let Some(id) = self.best(cpu) else {
            return SPURIOUS;
        };
        match (alias, self.get(cpu, Field::Group, id)) {
            (true, false) => SPURIOUS,
            (false, true) if self.cpus[cpu].iface.ctlr & ctlr::ACK_CTL == 0 => SPURIOUS_GROUP1,
            _ if id < PPI_BASE => id | self.lowest_source(cpu, id) << 10,
            _ => id,
        }
    }

    fn lowest_source(&self, cpu: usize, sgi: u32) -> u32 {
        self.cpus[cpu].sgi_sources[sgi as usize].trailing_zeros()
    }

    /// A GICC_IAR (`alias`: GICC_AIAR) read by CPU `cpu`: acknowledges the
    /// best interrupt if it may preempt, and returns its INTID and, for an
    /// SGI, its source CPU in bits \[12:10\]. An SPI targeting several CPUs
    /// goes to the first that acknowledges it: it is then active, so the
    /// others no longer see it.
    fn acknowledge(&mut self, cpu: usize, alias: bool) -> u32 {
        let value = self.highest_pending(cpu, alias);
        let id = value & INTID_MASK;
        if id >= NUM_INTIDS {
            // 1022 or 1023: nothing acknowledged.
            return value;
        }
        if self.group_priority(cpu, id) >= self.running_priority(cpu) {
            // Pending, but cannot preempt what is active.
            return SPURIOUS;
        }
        if id < PPI_BASE {
            let source = (value >> 10) as u8;
            self.cpus[cpu].sgi_sources[id as usize] &= !(1 << source);
            self.cpus[cpu].sgi_active_source[id as usize] = source;
        } else {
            self.set(cpu, Field::Latch, id, false);
        }
        self.set(cpu, Field::Active, id, true);
        let level = self.group_priority(cpu, id) >> 1;
        self.cpus[cpu].iface.apr[(level / 32) as usize] |= 1 << (level % 32);
        value
    }

    /// Whether a GICC_EOIR, GICC_AEOIR or GICC_DIR write of `value` by CPU
    /// `cpu` names an implemented INTID and, for an active SGI, the source
    /// it was acknowledged from (anything else is UNPREDICTABLE in the
    /// specification; the model ignores it).
    fn completes(&self, cpu: usize, value: u32) -> bool {
        let id = value & INTID_MASK;
        id < NUM_INTIDS
            && (id >= PPI_BASE
                || !self.get(cpu, Field::Active, id)
                || u32::from(self.cpus[cpu].sgi_active_source[id as usize]) == value >> 10 & 7)
    }

    /// A GICC_EOIR (`alias`: GICC_AEOIR, group 1 only) write by CPU `cpu`:
    /// drops its running priority and, unless EOImode is set, deactivates
    /// the INTID.
    fn end_of_interrupt(&mut self, cpu: usize, value: u32, alias: bool) {
        let id = value & INTID_MASK;
        if !self.completes(cpu, value) || (alias && !self.get(cpu, Field::Group, id)) {
            return;
        }
        let iface = &mut self.cpus[cpu].iface;
        let Some(word) = iface.apr.iter_mut().find(|w| **w != 0) else {
            return;
        };
        // Clear the lowest set bit: the highest active priority.
        *word &= *word - 1;
        if iface.ctlr & ctlr::EOI_MODE == 0 {
            self.set(cpu, Field::Active, id, false);
        }
    }

    /// A GICC_DIR write by CPU `cpu`: deactivates the INTID when EOImode is
    /// set (the specification leaves it unpredictable otherwise; it is
    /// ignored).
    fn deactivate(&mut self, cpu: usize, value: u32) {
        if self.completes(cpu, value) && self.cpus[cpu].iface.ctlr & ctlr::EOI_MODE != 0 {
            self.set(cpu, Field::Active, value & INTID_MASK, false);
        }
    }
}

/// Refuses anything but an aligned word, or also a byte when `bytes`.
fn check_width(offset: u64, width: Width, bytes: bool) -> Result<(), DeviceError> {
    match width {
        Width::Word if offset.is_multiple_of(4) => Ok(()),
        Width::Byte if bytes => Ok(()),
        _ => Err(DeviceError::BadWidth { offset, width }),
    }
}

impl Device for Gicv2 {
    fn name(&self) -> &'static str {
        "gicv2"
    }

    fn read(&mut self, offset: u64, width: Width) -> Result<u64, DeviceError> {
        let v = match offset {
            o if o < GICD_OFFSET + GICD_SIZE => self.dist_read(o - GICD_OFFSET, width),
            o if (GICC_OFFSET..GICC_OFFSET + GICC_SIZE).contains(&o) => {
                self.cpu_read(o - GICC_OFFSET, width)
            }
            _ => Err(DeviceError::BadOffset { offset }),
        };
        v.map(u64::from).map_err(|e| rebase(e, offset))
    }

    fn write(&mut self, offset: u64, width: Width, value: u64) -> Result<(), DeviceError> {
        let value = value as u32;
        match offset {
            o if o < GICD_OFFSET + GICD_SIZE => self.dist_write(o - GICD_OFFSET, width, value),
            o if (GICC_OFFSET..GICC_OFFSET + GICC_SIZE).contains(&o) => {
                self.cpu_write(o - GICC_OFFSET, width, value)
            }
            _ => Err(DeviceError::BadOffset { offset }),
        }
        .map_err(|e| rebase(e, offset))
    }

    /// The GIC feeds the vCPU, not another controller.
    fn irq_level(&self) -> bool {
        false
    }

    /// Accesses and PPI lines from now on are CPU `cpu`'s; a CPU the GIC
    /// does not have is ignored (the previous one stays selected).
    fn select_cpu(&mut self, cpu: usize) {
        if cpu < self.num_cpus {
            self.current = cpu;
        }
    }

    /// A PPI (16..=31) is the selected CPU's; an SPI is shared.
    fn set_irq_source(&mut self, source: u32, level: bool) {
        if !(PPI_BASE..NUM_INTIDS).contains(&source) {
            return;
        }
        let cpu = self.current;
        let rising = level && !self.get(cpu, Field::Line, source);
        self.set(cpu, Field::Line, source, level);
        if rising && self.is_edge(source) {
            self.set(cpu, Field::Latch, source, true);
        }
    }

    /// The IRQ line of CPU interface `context`.
    fn irq_output(&self, context: usize) -> bool {
        let cpu = context;
        cpu < self.num_cpus
            && self
                .best(cpu)
                .is_some_and(|id| self.group_priority(cpu, id) < self.running_priority(cpu))
    }
}

/// Reports an error at the device offset instead of the frame offset.
fn rebase(error: DeviceError, offset: u64) -> DeviceError {
    match error {
        DeviceError::BadWidth { width, .. } => DeviceError::BadWidth { offset, width },
        DeviceError::BadOffset { .. } => DeviceError::BadOffset { offset },
        DeviceError::ReadOnly { .. } => DeviceError::ReadOnly { offset },
    }
}
