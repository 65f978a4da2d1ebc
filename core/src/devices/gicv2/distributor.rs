//! The distributor frame (GICD): decoding and the register semantics.
//!
//! The registers of INTIDs 0..=31 (word 0 of the bit registers,
//! IPRIORITYR0..7, ITARGETSR0..7, CPENDSGIR/SPENDSGIR) are banked: an access
//! reaches the copy of the CPU last selected
//! ([`crate::devices::Device::select_cpu`]).

use super::{
    DeviceError, Field, GICD_IIDR_VALUE, GICD_TYPER_VALUE, Gicv2, NUM_INTIDS, PPI_BASE, SPI_BASE,
    WORDS, Width, check_width, ctlr,
};

/// Distributor register offsets, from the start of the GICD frame.
pub mod gicd {
    /// Control: EnableGrp0 (bit 0), EnableGrp1 (bit 1).
    pub const CTLR: u64 = 0x000;
    /// Interrupt controller type (read-only).
    pub const TYPER: u64 = 0x004;
    /// Implementer identification (read-only).
    pub const IIDR: u64 = 0x008;
    /// Group bits, one word per 32 INTIDs.
    pub const IGROUPR: u64 = 0x080;
    /// Set-enable bits.
    pub const ISENABLER: u64 = 0x100;
    /// Clear-enable bits.
    pub const ICENABLER: u64 = 0x180;
    /// Set-pending bits.
    pub const ISPENDR: u64 = 0x200;
    /// Clear-pending bits.
    pub const ICPENDR: u64 = 0x280;
    /// Set-active bits.
    pub const ISACTIVER: u64 = 0x300;
    /// Clear-active bits.
    pub const ICACTIVER: u64 = 0x380;
    /// Priorities, one byte per INTID.
    pub const IPRIORITYR: u64 = 0x400;
    /// CPU targets, one byte per INTID.
    pub const ITARGETSR: u64 = 0x800;
    /// Trigger configuration, two bits per INTID.
    pub const ICFGR: u64 = 0xc00;
    /// Non-secure access control (RAZ/WI without the Security Extensions).
    pub const NSACR: u64 = 0xe00;
    /// Software-generated interrupt (write-only).
    pub const SGIR: u64 = 0xf00;
    /// SGI clear-pending, one byte of source CPUs per SGI.
    pub const CPENDSGIR: u64 = 0xf10;
    /// SGI set-pending, one byte of source CPUs per SGI.
    pub const SPENDSGIR: u64 = 0xf20;
    /// First identification register (ICPIDR4); they run to 0xFFC.
    pub const ICPIDR4: u64 = 0xfd0;
    /// Peripheral ID2: the architecture version in bits \[7:4\].
    pub const ICPIDR2: u64 = 0xfe8;
}

/// ICPIDR4..7, ICPIDR0..3, ICCIDR0..3 of a GIC-400, from 0xFD0.
const ID_REGS: [u32; 12] = [
    0x04, 0x00, 0x00, 0x00, 0x90, 0xb4, 0x2b, 0x00, 0x0d, 0xf0, 0x05, 0xb1,
];

/// GICD_ICFGR0: every SGI edge-triggered (Int_config = 0b10).
const ICFGR_SGIS: u32 = 0xaaaa_aaaa;

/// The bit-per-INTID registers.
#[derive(Clone, Copy)]
enum BitReg {
    Group,
    SetEnable,
    ClearEnable,
    SetPending,
    ClearPending,
    SetActive,
    ClearActive,
}

/// A decoded distributor register.
enum Reg {
    Ctlr,
    Typer,
    Iidr,
    /// A bit-per-INTID register and its word index.
    Bits(BitReg, usize),
    /// GICD_IPRIORITYR, by byte offset (= INTID).
    Priority(u32),
    /// GICD_ITARGETSR, by byte offset (= INTID).
    Target(u32),
    /// GICD_ICFGR word index.
    Config(u32),
    Nsacr,
    Sgir,
    /// GICD_CPENDSGIR (`set` false) or GICD_SPENDSGIR, by byte (= SGI).
    SgiPending {
        set: bool,
        sgi: usize,
    },
    /// Identification register index from ICPIDR4.
    Id(usize),
}

impl Reg {
    /// Decodes the register holding `offset` (any byte of it).
    fn decode(offset: u64) -> Option<Reg> {
        let word = offset & !3;
        Some(match word {
            gicd::CTLR => Reg::Ctlr,
            gicd::TYPER => Reg::Typer,
            gicd::IIDR => Reg::Iidr,
            gicd::IGROUPR..gicd::IPRIORITYR => {
                let kind = match (word - gicd::IGROUPR) / 0x80 {
                    0 => BitReg::Group,
                    1 => BitReg::SetEnable,
                    2 => BitReg::ClearEnable,
                    3 => BitReg::SetPending,
                    4 => BitReg::ClearPending,
                    5 => BitReg::SetActive,
                    _ => BitReg::ClearActive,
                };
                Reg::Bits(kind, (word % 0x80 / 4) as usize)
            }
            gicd::IPRIORITYR..gicd::ITARGETSR => Reg::Priority((offset - gicd::IPRIORITYR) as u32),
            gicd::ITARGETSR..gicd::ICFGR => Reg::Target((offset - gicd::ITARGETSR) as u32),
            gicd::ICFGR..0xd00 => Reg::Config(((word - gicd::ICFGR) / 4) as u32),
            gicd::NSACR..gicd::SGIR => Reg::Nsacr,
            gicd::SGIR => Reg::Sgir,
            gicd::CPENDSGIR..gicd::SPENDSGIR => Reg::SgiPending {
                set: false,
                sgi: (offset - gicd::CPENDSGIR) as usize,
            },
            gicd::SPENDSGIR..0xf30 => Reg::SgiPending {
                set: true,
                sgi: (offset - gicd::SPENDSGIR) as usize,
            },
            gicd::ICPIDR4..0x1000 => Reg::Id(((word - gicd::ICPIDR4) / 4) as usize),
            _ => return None,
        })
    }

    /// Whether the register also takes single-byte accesses.
    fn byte_accessible(&self) -> bool {
        matches!(
            self,
            Reg::Priority(_) | Reg::Target(_) | Reg::SgiPending { .. }
        )
    }
}

/// Reads `width` bytes from byte `first` on, one `byte(i)` each.
fn gather(width: Width, first: u32, byte: impl Fn(u32) -> u8) -> u32 {
    (0..width.bytes() as u32).fold(0, |v, i| v | u32::from(byte(first + i)) << (8 * i))
}

/// Writes the low `width` bytes of `value` from byte `first` on.
fn scatter(width: Width, first: u32, value: u32, mut byte: impl FnMut(u32, u8)) {
    for i in 0..width.bytes() as u32 {
        byte(first + i, (value >> (8 * i)) as u8);
    }
}

impl Gicv2 {
    /// A read of the distributor frame at `offset`.
    pub(super) fn dist_read(&mut self, offset: u64, width: Width) -> Result<u32, DeviceError> {
        let reg = Reg::decode(offset).ok_or(DeviceError::BadOffset { offset })?;
        check_width(offset, width, reg.byte_accessible())?;
        let cpu = self.current;
        Ok(match reg {
            Reg::Ctlr => self.dist_ctlr,
            // CPUNumber, bits [7:5]: the CPU interfaces but one.
            Reg::Typer => GICD_TYPER_VALUE | ((self.num_cpus as u32 - 1) << 5),
            Reg::Iidr => GICD_IIDR_VALUE,
            Reg::Bits(_, w) if w >= WORDS => 0,
            Reg::Bits(BitReg::Group, w) => self.word(cpu, Field::Group, w),
            Reg::Bits(BitReg::SetEnable | BitReg::ClearEnable, w) => {
                self.word(cpu, Field::Enabled, w)
            }
            Reg::Bits(BitReg::SetPending | BitReg::ClearPending, w) => (0..32)
                .filter(|i| self.is_pending(cpu, 32 * w as u32 + i))
                .fold(0, |v, i| v | 1 << i),
            Reg::Bits(BitReg::SetActive | BitReg::ClearActive, w) => {
                self.word(cpu, Field::Active, w)
            }
            Reg::Priority(first) => gather(width, first, |id| self.priority_of(cpu, id)),
            // SGIs and PPIs: each byte names the reading CPU.
            Reg::Target(first) => gather(width, first, |id| match id {
                0..SPI_BASE => 1 << cpu,
                _ => self.target.get(id as usize).copied().unwrap_or(0),
            }),
            Reg::Config(0) => ICFGR_SGIS,
            Reg::Config(n) => (0..16)
                .filter(|i| {
                    let id = 16 * n + i;
                    (SPI_BASE..NUM_INTIDS).contains(&id) && self.edge.get(id)
                })
                .fold(0, |v, i| v | 2 << (2 * i)),
            Reg::Nsacr | Reg::Sgir => 0,
            Reg::SgiPending { sgi, .. } => gather(width, sgi as u32, |s| {
                self.cpus[cpu].sgi_sources[s as usize]
            }),
            Reg::Id(i) => ID_REGS[i],
        })
    }

    /// A write of `value` to the distributor frame at `offset`.
    pub(super) fn dist_write(
        &mut self,
        offset: u64,
        width: Width,
        value: u32,
    ) -> Result<(), DeviceError> {
        let reg = Reg::decode(offset).ok_or(DeviceError::BadOffset { offset })?;
        check_width(offset, width, reg.byte_accessible())?;
        let cpu = self.current;
        match reg {
            Reg::Ctlr => self.dist_ctlr = value & (ctlr::ENABLE_GRP0 | ctlr::ENABLE_GRP1),
            Reg::Typer | Reg::Iidr | Reg::Id(_) => return Err(DeviceError::ReadOnly { offset }),
            Reg::Bits(kind, w) if w < WORDS => self.write_bits(kind, w, value),
            Reg::Bits(..) | Reg::Nsacr => {}
            Reg::Priority(first) => scatter(width, first, value, |id, b| {
                if let Some(p) = self.priority_mut(cpu, id) {
                    *p = b;
                }
            }),
            Reg::Target(first) => {
                // SGI and PPI bytes are read-only; an SPI keeps the bits of
                // the CPU interfaces that exist.
                let mask = self.cpu_mask();
                scatter(width, first, value, |id, b| {
                    if (SPI_BASE..NUM_INTIDS).contains(&id) {
                        self.target[id as usize] = b & mask;
                    }
                });
            }
            Reg::Config(n) => {
                for i in 0..16 {
                    let id = 16 * n + i;
                    if (SPI_BASE..NUM_INTIDS).contains(&id) {
                        self.edge.set(id, value & 2 << (2 * i) != 0);
                    }
                }
            }
            Reg::Sgir => self.software_interrupt(value),
            Reg::SgiPending { set, sgi } => scatter(width, sgi as u32, value, |s, b| {
                let sources = &mut self.cpus[cpu].sgi_sources[s as usize];
                if set {
                    *sources |= b;
                } else {
                    *sources &= !b;
                }
            }),
        }
        Ok(())
    }

    /// A write to word `w` of a bit-per-INTID register.
    fn write_bits(&mut self, kind: BitReg, w: usize, value: u32) {
        // Pending bits of SGIs are only reached through GICD_SPENDSGIR and
        // GICD_CPENDSGIR.
        let not_sgis = if w == 0 {
            value & !((1 << PPI_BASE) - 1)
        } else {
            value
        };
        let cpu = self.current;
        match kind {
            BitReg::Group => *self.word_mut(cpu, Field::Group, w) = value,
            BitReg::SetEnable => *self.word_mut(cpu, Field::Enabled, w) |= value,
            BitReg::ClearEnable => *self.word_mut(cpu, Field::Enabled, w) &= !value,
            BitReg::SetPending => *self.word_mut(cpu, Field::Latch, w) |= not_sgis,
            BitReg::ClearPending => *self.word_mut(cpu, Field::Latch, w) &= !not_sgis,
            BitReg::SetActive => *self.word_mut(cpu, Field::Active, w) |= value,
            BitReg::ClearActive => *self.word_mut(cpu, Field::Active, w) &= !value,
        }
    }

    /// A GICD_SGIR write: pends SGI `value[3:0]`, from the accessing CPU,
    /// on the CPUs the target filter (`value[25:24]`) and list
    /// (`value[23:16]`) name; bits of CPUs the GIC does not have are
    /// ignored.
    fn software_interrupt(&mut self, value: u32) {
        let sgi = (value & 0xf) as usize;
        let source = self.current;
        let targets = self.cpu_mask()
            & match (value >> 24) & 3 {
                // The listed CPUs.
                0 => (value >> 16) as u8,
                // Every CPU but the sender.
                1 => !(1 << source),
                // The sender.
                2 => 1 << source,
                // Reserved.
                _ => 0,
            };
        for (t, cpu) in self.cpus.iter_mut().enumerate() {
            if targets & (1 << t) != 0 {
                cpu.sgi_sources[sgi] |= 1 << source;
            }
        }
    }
}
