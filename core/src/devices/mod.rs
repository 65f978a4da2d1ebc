//! Emulated devices: one typed MMIO access record, a [`Device`] trait and
//! the models behind it.
//!
//! Each architecture decodes its trap (riscv64 `htinst` or the fetched
//! instruction, aarch64 ESR ISS, x86 exit information) into an
//! [`MmioAccess`]; the [`bus::Bus`] finds the device whose guest-physical
//! range holds the address and calls [`Device::read`] or [`Device::write`]
//! with the offset inside that range. The arch then writes a load's value
//! back into the guest register. Interrupt lines go from devices to the one
//! interrupt-controller model on the bus ([`Device::set_irq_source`]) and
//! from there to the vCPU: as a line ([`Device::irq_output`]), or, for the
//! x86 I/O APIC, as interrupt messages for the local APIC
//! ([`Device::take_message`], [`irq_message`]).
//!
//! Models: [`uart16550`] (the console of QEMU `virt` and the PC COM1),
//! [`pl011`] (the Arm PrimeCell UART, the console of QEMU's aarch64 `virt`),
//! [`plic`] (the RISC-V platform-level interrupt controller of QEMU `virt`),
//! [`gicv2`] (the Arm GICv2 distributor and CPU interface of QEMU `virt`),
//! [`pic8259`] (the PC's legacy interrupt controllers, accepted and kept
//! masked), [`lapic`] (the x86 local APIC, x2APIC and xAPIC, with its
//! timer) and [`ioapic`] (the x86 I/O APIC).

use core::fmt;

use crate::addr::GuestPhysAddr;

#[cfg(feature = "alloc")]
pub mod bus;
pub mod gicv2;
pub mod ioapic;
pub mod irq_message;
pub mod lapic;
pub mod pic8259;
#[cfg(feature = "alloc")]
pub mod pl011;
pub mod plic;
pub mod ring;
#[cfg(feature = "alloc")]
pub mod uart16550;

#[cfg(feature = "alloc")]
pub use bus::{Bus, BusError, DeviceId};
pub use irq_message::{DeliveryMode, InterruptMessage};

/// The size of one MMIO access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Width {
    /// 1 byte.
    Byte,
    /// 2 bytes.
    Half,
    /// 4 bytes.
    Word,
    /// 8 bytes.
    Double,
}

impl Width {
    /// The number of bytes accessed.
    pub const fn bytes(self) -> u64 {
        match self {
            Width::Byte => 1,
            Width::Half => 2,
            Width::Word => 4,
            Width::Double => 8,
        }
    }

    /// A mask with the low `8 * bytes()` bits set.
    pub const fn mask(self) -> u64 {
        match self {
            Width::Double => u64::MAX,
            w => (1u64 << (8 * w.bytes())) - 1,
        }
    }

    /// The width of an access of `bytes` bytes, or `None` unless it is 1, 2,
    /// 4 or 8.
    pub const fn from_bytes(bytes: u64) -> Option<Self> {
        match bytes {
            1 => Some(Width::Byte),
            2 => Some(Width::Half),
            4 => Some(Width::Word),
            8 => Some(Width::Double),
            _ => None,
        }
    }
}

impl fmt::Display for Width {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-byte", self.bytes())
    }
}

/// Whether an access reads or writes, and the value written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// A load: the device supplies the value.
    Read,
    /// A store of this value (only its low `width` bytes matter).
    Write(u64),
}

/// One guest access to emulated device memory, as decoded from a trap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioAccess {
    /// The guest-physical address accessed.
    pub addr: GuestPhysAddr,
    /// How many bytes.
    pub width: Width,
    /// Load, or store with its value.
    pub dir: Direction,
}

impl MmioAccess {
    /// A load of `width` bytes at `addr`.
    pub const fn read(addr: GuestPhysAddr, width: Width) -> Self {
        Self {
            addr,
            width,
            dir: Direction::Read,
        }
    }

    /// A store of the low `width` bytes of `value` at `addr`.
    pub const fn write(addr: GuestPhysAddr, width: Width, value: u64) -> Self {
        Self {
            addr,
            width,
            dir: Direction::Write(value),
        }
    }
}

impl fmt::Display for MmioAccess {
    /// `4-byte read at GPA 0xc201004` / `1-byte write of 0x41 at GPA 0x10000000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.dir {
            Direction::Read => write!(f, "{} read at {}", self.width, self.addr),
            Direction::Write(v) => write!(f, "{} write of {v:#x} at {}", self.width, self.addr),
        }
    }
}

/// Why a device refused an access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceError {
    /// The register at `offset` does not support accesses of this width.
    BadWidth {
        /// Offset inside the device's range.
        offset: u64,
        /// The refused width.
        width: Width,
    },
    /// No register at `offset`.
    BadOffset {
        /// Offset inside the device's range.
        offset: u64,
    },
    /// The register at `offset` cannot be written.
    ReadOnly {
        /// Offset inside the device's range.
        offset: u64,
    },
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DeviceError::BadWidth { offset, width } => {
                write!(f, "{width} access not supported at offset {offset:#x}")
            }
            DeviceError::BadOffset { offset } => write!(f, "no register at offset {offset:#x}"),
            DeviceError::ReadOnly { offset } => {
                write!(f, "register at offset {offset:#x} is read-only")
            }
        }
    }
}

/// An emulated device behind a guest-physical range.
///
/// Offsets are relative to the start of the range the device was added at.
/// Every method except `name`, `read` and `write` has a default for devices
/// without that feature.
pub trait Device: Send {
    /// A short name for diagnostics and the exit report (`"uart16550"`).
    fn name(&self) -> &'static str;

    /// A load of `width` bytes at `offset`; the value in the low bytes.
    fn read(&mut self, offset: u64, width: Width) -> Result<u64, DeviceError>;

    /// A store of the low `width` bytes of `value` at `offset`.
    fn write(&mut self, offset: u64, width: Width, value: u64) -> Result<(), DeviceError>;

    /// The level of the device's interrupt output line (true = asserted).
    fn irq_level(&self) -> bool {
        false
    }

    /// Offers one byte of host console input; false if the device is not a
    /// console or cannot take it now (the host keeps it for later).
    fn push_input(&mut self, _byte: u8) -> bool {
        false
    }

    /// Hands the bytes the guest transmitted since the last call to `out`.
    fn take_output(&mut self, _out: &mut dyn FnMut(&[u8])) {}

    /// Interrupt controllers with per-CPU (banked) state: the accesses
    /// that follow, and the [`Device::set_irq_source`] calls for a source
    /// private to one CPU (an Arm PPI, the timer of the vCPU that syncs its
    /// lines), are made by vCPU `cpu`, until the next call. Before any call
    /// it is CPU 0. [`Device::irq_output`] is not affected: its context
    /// names the CPU. The bus only calls it on its interrupt controller
    /// ([`Bus::set_cpu`]).
    fn select_cpu(&mut self, _cpu: usize) {}

    /// Interrupt controllers: input line `source` is now at `level`.
    fn set_irq_source(&mut self, _source: u32, _level: bool) {}

    /// Interrupt controllers: whether the output to `context` (a hart and
    /// privilege mode, a CPU interface...) is asserted.
    fn irq_output(&self, _context: usize) -> bool {
        false
    }

    /// Interrupt controllers that send messages instead of driving a line
    /// (the x86 I/O APIC): the next message for the local APICs, once.
    fn take_message(&mut self) -> Option<InterruptMessage> {
        None
    }

    /// Interrupt controllers that send messages: a CPU ended a
    /// level-triggered interrupt with `vector` (the local APIC's EOI
    /// broadcast).
    fn end_of_interrupt(&mut self, _vector: u8) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths() {
        for (n, w) in [
            (1, Width::Byte),
            (2, Width::Half),
            (4, Width::Word),
            (8, Width::Double),
        ] {
            assert_eq!(Width::from_bytes(n), Some(w));
            assert_eq!(w.bytes(), n);
        }
        assert_eq!(Width::from_bytes(3), None);
        assert_eq!(Width::from_bytes(0), None);
        assert_eq!(Width::Byte.mask(), 0xff);
        assert_eq!(Width::Half.mask(), 0xffff);
        assert_eq!(Width::Word.mask(), 0xffff_ffff);
        assert_eq!(Width::Double.mask(), u64::MAX);
    }

    #[test]
    fn display() {
        let a = MmioAccess::write(GuestPhysAddr::new(0x1000_0000), Width::Byte, 0x41);
        assert_eq!(a.to_string(), "1-byte write of 0x41 at GPA 0x10000000");
        let a = MmioAccess::read(GuestPhysAddr::new(0xc20_1004), Width::Word);
        assert_eq!(a.to_string(), "4-byte read at GPA 0xc201004");
        assert_eq!(
            DeviceError::BadWidth {
                offset: 5,
                width: Width::Word
            }
            .to_string(),
            "4-byte access not supported at offset 0x5"
        );
    }
}
