//! The CPU interface frame (GICC): one [`CpuInterface`] per CPU, all at
//! the same offsets; an access reaches the accessing CPU's.

use super::{APR_WORDS, DeviceError, GICC_IIDR_VALUE, Gicv2, Width, check_width, ctlr};

/// CPU interface register offsets, from the start of the GICC frame.
pub mod gicc {
    /// Control (see [`crate::devices::gicv2::ctlr`] for the bits).
    pub const CTLR: u64 = 0x00;
    /// Priority mask: interrupts at this priority value or above are masked.
    pub const PMR: u64 = 0x04;
    /// Binary point of group 0 (and group 1 with CBPR).
    pub const BPR: u64 = 0x08;
    /// Interrupt acknowledge (read-only, with side effects).
    pub const IAR: u64 = 0x0c;
    /// End of interrupt (write-only).
    pub const EOIR: u64 = 0x10;
    /// Running priority (read-only).
    pub const RPR: u64 = 0x14;
    /// Highest-priority pending interrupt (read-only).
    pub const HPPIR: u64 = 0x18;
    /// Aliased binary point: group 1's.
    pub const ABPR: u64 = 0x1c;
    /// Aliased interrupt acknowledge: group 1 only.
    pub const AIAR: u64 = 0x20;
    /// Aliased end of interrupt: group 1 only.
    pub const AEOIR: u64 = 0x24;
    /// Aliased highest-priority pending interrupt: group 1 only.
    pub const AHPPIR: u64 = 0x28;
    /// Active priorities, 4 words (bit `n` = group priority `2n` active).
    pub const APR: u64 = 0xd0;
    /// Non-secure active priorities, 4 words (RAZ/WI).
    pub const NSAPR: u64 = 0xe0;
    /// CPU interface identification (read-only).
    pub const IIDR: u64 = 0xfc;
    /// Deactivate interrupt (write-only; used when EOImode is set).
    pub const DIR: u64 = 0x1000;
}

/// The registers of one CPU interface (the acknowledge and end-of-interrupt
/// logic they drive is in the parent module).
#[derive(Clone, Copy, Debug)]
pub(super) struct CpuInterface {
    /// GICC_CTLR.
    pub(super) ctlr: u32,
    /// GICC_PMR.
    pub(super) pmr: u8,
    /// GICC_BPR.
    pub(super) bpr: u8,
    /// GICC_ABPR.
    pub(super) abpr: u8,
    /// GICC_APR0..3: bit `n` = an active group priority `2n`.
    pub(super) apr: [u32; APR_WORDS],
}

impl CpuInterface {
    /// Reset: disabled, everything masked (GICC_PMR 0), idle.
    pub(super) const RESET: Self = CpuInterface {
        ctlr: 0,
        pmr: 0,
        bpr: 0,
        abpr: 1,
        apr: [0; APR_WORDS],
    };
}

/// The GICC_CTLR bits kept: all of the layout without the Security
/// Extensions except FIQEn (no FIQ line).
const CTLR_MASK: u32 = ctlr::ENABLE_GRP0
    | ctlr::ENABLE_GRP1
    | ctlr::ACK_CTL
    | ctlr::CBPR
    | (0xf << 5) // bypass disables: kept, no effect
    | ctlr::EOI_MODE;

impl Gicv2 {
    /// A read of the accessing CPU's interface at `offset`.
    pub(super) fn cpu_read(&mut self, offset: u64, width: Width) -> Result<u32, DeviceError> {
        check_width(offset, width, false)?;
        let cpu = self.current;
        let iface = &self.cpus[cpu].iface;
        Ok(match offset {
            gicc::CTLR => iface.ctlr,
            gicc::PMR => u32::from(iface.pmr),
            gicc::BPR => u32::from(iface.bpr),
            gicc::IAR => self.acknowledge(cpu, false),
            gicc::RPR => self.running_priority(cpu).min(0xff),
            gicc::HPPIR => self.highest_pending(cpu, false),
            gicc::ABPR => u32::from(iface.abpr),
            gicc::AIAR => self.acknowledge(cpu, true),
            gicc::AHPPIR => self.highest_pending(cpu, true),
            o if (gicc::APR..gicc::NSAPR).contains(&o) => iface.apr[((o - gicc::APR) / 4) as usize],
            o if (gicc::NSAPR..gicc::NSAPR + 0x10).contains(&o) => 0,
            gicc::IIDR => GICC_IIDR_VALUE,
            gicc::EOIR | gicc::AEOIR | gicc::DIR => 0,
            _ => return Err(DeviceError::BadOffset { offset }),
        })
    }

    /// A write of `value` to the accessing CPU's interface at `offset`.
    pub(super) fn cpu_write(
        &mut self,
        offset: u64,
        width: Width,
        value: u32,
    ) -> Result<(), DeviceError> {
        check_width(offset, width, false)?;
        let cpu = self.current;
        let iface = &mut self.cpus[cpu].iface;
        match offset {
            gicc::CTLR => iface.ctlr = value & CTLR_MASK,
            gicc::PMR => iface.pmr = value as u8,
            gicc::BPR => iface.bpr = (value & 7) as u8,
            // The minimum binary point of group 1 is 1.
            gicc::ABPR => iface.abpr = (value & 7).max(1) as u8,
            gicc::EOIR => self.end_of_interrupt(cpu, value, false),
            gicc::AEOIR => self.end_of_interrupt(cpu, value, true),
            gicc::DIR => self.deactivate(cpu, value),
            o if (gicc::APR..gicc::NSAPR).contains(&o) => {
                iface.apr[((o - gicc::APR) / 4) as usize] = value;
            }
            o if (gicc::NSAPR..gicc::NSAPR + 0x10).contains(&o) => {}
            gicc::IAR | gicc::RPR | gicc::HPPIR | gicc::AIAR | gicc::AHPPIR | gicc::IIDR => {
                return Err(DeviceError::ReadOnly { offset });
            }
            _ => return Err(DeviceError::BadOffset { offset }),
        }
        Ok(())
    }
}
