//! The MMIO bus: devices registered per guest-physical range, one optional
//! interrupt controller, and the wiring of device interrupt lines to it.
//!
//! Like bao's `emul_access` handlers, each device owns an address range and
//! sees offsets inside it; the bus holds no architecture-specific code. The
//! interrupt wiring is level-based and polled: after every access and every
//! console input the bus copies each device's [`Device::irq_level`] into the
//! controller's [`Device::set_irq_source`], so a model only has to say what
//! its line is, never when it changed (a controller that acts on edges
//! finds them itself). A bus without a controller can hand its lines to
//! another bus's ([`Bus::wired_lines`]).
//!
//! For an SMP guest the bus also knows which vCPU is accessing
//! ([`Bus::set_cpu`]) and tells the controller, whose per-CPU registers
//! (a GIC's banked ones) and per-CPU inputs depend on it.

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use super::{Device, DeviceError, Direction, InterruptMessage, MmioAccess, Width};
use crate::addr::GuestPhysAddr;

/// A handle to a device added to a [`Bus`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeviceId(usize);

impl DeviceId {
    /// The registration index (0 for the first device added).
    pub const fn index(self) -> usize {
        self.0
    }
}

/// Why the bus refused a registration or an access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusError {
    /// `add` with a zero size, or a range that wraps past the top of the
    /// address space.
    BadRange {
        /// Requested base.
        base: GuestPhysAddr,
        /// Requested size.
        size: u64,
    },
    /// `add` with a range overlapping the one of `existing`.
    Overlap {
        /// Requested base.
        base: GuestPhysAddr,
        /// Requested size.
        size: u64,
        /// Name of the device already there.
        existing: &'static str,
    },
    /// A `DeviceId` that this bus did not hand out.
    UnknownId(DeviceId),
    /// No device covers this address.
    NoDevice {
        /// The address accessed.
        addr: GuestPhysAddr,
    },
    /// The access starts inside a device's range but ends past it.
    Straddle {
        /// The device whose range the access starts in.
        device: &'static str,
        /// The address accessed.
        addr: GuestPhysAddr,
        /// Its width.
        width: Width,
    },
    /// The device refused the access.
    Device {
        /// The device's name.
        device: &'static str,
        /// The address accessed.
        addr: GuestPhysAddr,
        /// What the device said.
        error: DeviceError,
    },
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BusError::BadRange { base, size } => {
                write!(
                    f,
                    "empty or wrapping device range {size:#x} bytes at {base}"
                )
            }
            BusError::Overlap {
                base,
                size,
                existing,
            } => write!(
                f,
                "device range {size:#x} bytes at {base} overlaps {existing}"
            ),
            BusError::UnknownId(id) => write!(f, "no device with id {}", id.0),
            BusError::NoDevice { addr } => write!(f, "no emulated device at {addr}"),
            BusError::Straddle {
                device,
                addr,
                width,
            } => write!(f, "{width} access at {addr} runs past the end of {device}"),
            BusError::Device {
                device,
                addr,
                error,
            } => write!(f, "{device} at {addr}: {error}"),
        }
    }
}

struct Slot {
    base: GuestPhysAddr,
    size: u64,
    device: Box<dyn Device>,
    irq: Option<u32>,
    accesses: u64,
    /// Its interrupt line's level as last copied to the controller.
    level: bool,
}

impl Slot {
    fn contains(&self, addr: GuestPhysAddr) -> bool {
        addr >= self.base && addr.offset_from(self.base) < self.size
    }
}

/// Devices by guest-physical range, plus the interrupt wiring between them.
#[derive(Default)]
pub struct Bus {
    slots: Vec<Slot>,
    irq_chip: Option<usize>,
    /// The vCPU making the accesses, as last told to [`Bus::set_cpu`].
    cpu: usize,
    /// See [`Bus::irq_epoch`].
    irq_epoch: u64,
}

impl Bus {
    /// An empty bus.
    pub const fn new() -> Self {
        Self {
            slots: Vec::new(),
            irq_chip: None,
            cpu: 0,
            irq_epoch: 0,
        }
    }

    /// Registers `device` for `size` bytes at `base`; `irq` is the
    /// interrupt-controller input its line is wired to, if any.
    pub fn add(
        &mut self,
        base: GuestPhysAddr,
        size: u64,
        device: Box<dyn Device>,
        irq: Option<u32>,
    ) -> Result<DeviceId, BusError> {
        let end = match base.checked_add(size) {
            Some(end) if size != 0 => end,
            _ => return Err(BusError::BadRange { base, size }),
        };
        // Half-open ranges [base, end) and [s.base, s.base + s.size) overlap
        // iff each starts before the other ends.
        if let Some(s) = self
            .slots
            .iter()
            .find(|s| base < s.base + s.size && s.base < end)
        {
            return Err(BusError::Overlap {
                base,
                size,
                existing: s.device.name(),
            });
        }
        self.slots.push(Slot {
            base,
            size,
            device,
            irq,
            accesses: 0,
            level: false,
        });
        let id = DeviceId(self.slots.len() - 1);
        self.sync_irqs();
        Ok(id)
    }

    /// Makes device `id` the interrupt controller that every other device's
    /// line (added with `irq: Some(n)`) is wired to.
    pub fn set_irq_chip(&mut self, id: DeviceId) -> Result<(), BusError> {
        if id.0 >= self.slots.len() {
            return Err(BusError::UnknownId(id));
        }
        self.irq_chip = Some(id.0);
        self.slots[id.0].device.select_cpu(self.cpu);
        self.sync_irqs();
        Ok(())
    }

    /// The accesses and [`Bus::set_irq_line`] calls that follow are made by
    /// vCPU `cpu` (0 until told otherwise): tells the interrupt controller,
    /// the only device with per-CPU registers ([`Device::select_cpu`]).
    /// Calling it again with the same CPU costs one comparison.
    pub fn set_cpu(&mut self, cpu: usize) {
        if cpu == self.cpu {
            return;
        }
        self.cpu = cpu;
        if let Some(chip) = self.irq_chip {
            self.slots[chip].device.select_cpu(cpu);
        }
    }

    /// The vCPU last given to [`Bus::set_cpu`].
    pub const fn cpu(&self) -> usize {
        self.cpu
    }

    /// Whether some device covers `addr`.
    pub fn contains(&self, addr: GuestPhysAddr) -> bool {
        self.lookup(addr).is_some()
    }

    /// The device covering `addr`.
    pub fn lookup(&self, addr: GuestPhysAddr) -> Option<DeviceId> {
        self.slots
            .iter()
            .position(|s| s.contains(addr))
            .map(DeviceId)
    }

    /// Performs one guest access. A read returns the value zero-extended
    /// from its width; a write returns 0. Interrupt lines are synced after
    /// it, whether or not the device accepted it.
    pub fn access(&mut self, a: &MmioAccess) -> Result<u64, BusError> {
        let index = self
            .slots
            .iter()
            .position(|s| s.contains(a.addr))
            .ok_or(BusError::NoDevice { addr: a.addr })?;
        let slot = &mut self.slots[index];
        let offset = a.addr.offset_from(slot.base);
        if a.width.bytes() > slot.size - offset {
            return Err(BusError::Straddle {
                device: slot.device.name(),
                addr: a.addr,
                width: a.width,
            });
        }
        slot.accesses += 1;
        if Some(index) == self.irq_chip {
            self.irq_epoch += 1;
        }
        let result = match a.dir {
            Direction::Read => slot
                .device
                .read(offset, a.width)
                .map(|v| v & a.width.mask()),
            Direction::Write(v) => slot
                .device
                .write(offset, a.width, v & a.width.mask())
                .map(|()| 0),
        };
        let result = result.map_err(|error| BusError::Device {
            device: slot.device.name(),
            addr: a.addr,
            error,
        });
        self.sync_irqs();
        result
    }

    /// Copies every wired device's interrupt line into the controller.
    /// `access` and `push_console_input` already do this; call it after
    /// changing a device some other way.
    pub fn sync_irqs(&mut self) {
        let Some(chip) = self.irq_chip else { return };
        for i in 0..self.slots.len() {
            if i == chip {
                continue;
            }
            if let Some(source) = self.slots[i].irq {
                let level = self.slots[i].device.irq_level();
                if level != self.slots[i].level {
                    self.slots[i].level = level;
                    self.irq_epoch += 1;
                }
                self.slots[chip].device.set_irq_source(source, level);
            }
        }
    }

    /// A count that moves whenever the controller's outputs may have
    /// changed: an access to the controller, a wired line that changed
    /// level, a line driven from outside. Equal counts: the outputs are
    /// as they were (what the run loop checks before asking each CPU's).
    pub fn irq_epoch(&self) -> u64 {
        self.irq_epoch
    }

    /// Offers a byte of host console input to the devices in registration
    /// order; true if one took it (false: keep it and retry later).
    pub fn push_console_input(&mut self, byte: u8) -> bool {
        let taken = self.slots.iter_mut().any(|s| s.device.push_input(byte));
        if taken {
            self.sync_irqs();
        }
        taken
    }

    /// Hands every device's transmitted bytes to `out`, device by device.
    pub fn drain_console_output(&mut self, mut out: impl FnMut(&[u8])) {
        for s in &mut self.slots {
            s.device.take_output(&mut out);
        }
    }

    /// Drives controller input `source` from outside the bus (a timer the
    /// vCPU emulates); nothing happens without a controller.
    pub fn set_irq_line(&mut self, source: u32, level: bool) {
        self.irq_epoch += 1;
        if let Some(chip) = self.irq_chip {
            self.slots[chip].device.set_irq_source(source, level);
        }
    }

    /// The level of every wired device's interrupt line with the controller
    /// input it is wired to, the controller's own excluded: how a second bus
    /// without a controller (the x86 port bus) feeds its lines to another
    /// bus's controller ([`Bus::set_irq_line`]).
    pub fn wired_lines(&self) -> impl Iterator<Item = (u32, bool)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|&(i, _)| Some(i) != self.irq_chip)
            .filter_map(|(_, s)| s.irq.map(|source| (source, s.device.irq_level())))
    }

    /// The controller's next interrupt message (see
    /// [`Device::take_message`]), if it has a controller and one is waiting.
    pub fn take_message(&mut self) -> Option<InterruptMessage> {
        let chip = self.irq_chip?;
        self.slots[chip].device.take_message()
    }

    /// Tells the controller a CPU ended level-triggered `vector` (see
    /// [`Device::end_of_interrupt`]); nothing happens without one.
    pub fn end_of_interrupt(&mut self, vector: u8) {
        if let Some(chip) = self.irq_chip {
            self.slots[chip].device.end_of_interrupt(vector);
        }
    }

    /// Whether the interrupt controller's output to `context` is asserted
    /// (false without a controller).
    pub fn external_irq(&self, context: usize) -> bool {
        self.irq_chip
            .is_some_and(|chip| self.slots[chip].device.irq_output(context))
    }

    /// How many accesses were routed to device `id` (0 for an unknown id).
    pub fn accesses(&self, id: DeviceId) -> u64 {
        self.slots.get(id.0).map_or(0, |s| s.accesses)
    }

    /// `(name, accesses)` for every device, in registration order.
    pub fn access_counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.slots.iter().map(|s| (s.device.name(), s.accesses))
    }

    /// The device `id`.
    pub fn device(&self, id: DeviceId) -> Option<&dyn Device> {
        self.slots.get(id.0).map(|s| &*s.device)
    }

    /// The device `id`, mutably (call [`Bus::sync_irqs`] after changing it).
    pub fn device_mut(&mut self, id: DeviceId) -> Option<&mut (dyn Device + 'static)> {
        self.slots.get_mut(id.0).map(|s| &mut *s.device)
    }

    /// The guest-physical range `(base, size)` of device `id`.
    pub fn range(&self, id: DeviceId) -> Option<(GuestPhysAddr, u64)> {
        self.slots.get(id.0).map(|s| (s.base, s.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 16-byte register file with a settable interrupt line.
    struct Regs {
        mem: [u8; 16],
        line: bool,
        out: Vec<u8>,
    }

    impl Regs {
        fn boxed() -> Box<Self> {
            Box::new(Regs {
                mem: [0; 16],
                line: false,
                out: Vec::new(),
            })
        }
    }

    impl Device for Regs {
        fn name(&self) -> &'static str {
            "regs"
        }
        fn read(&mut self, offset: u64, width: Width) -> Result<u64, DeviceError> {
            let mut v = 0u64;
            for i in (0..width.bytes()).rev() {
                v = (v << 8) | u64::from(self.mem[(offset + i) as usize]);
            }
            // Garbage above the width must be masked off by the bus.
            Ok(v | (0xdead_0000_0000_0000 & !width.mask()))
        }
        fn write(&mut self, offset: u64, width: Width, value: u64) -> Result<(), DeviceError> {
            if offset == 15 {
                return Err(DeviceError::ReadOnly { offset });
            }
            for i in 0..width.bytes() {
                self.mem[(offset + i) as usize] = (value >> (8 * i)) as u8;
            }
            // Offset 0 drives the interrupt line, offset 1 transmits.
            self.line = self.mem[0] != 0;
            if offset == 1 {
                self.out.push(value as u8);
            }
            Ok(())
        }
        fn irq_level(&self) -> bool {
            self.line
        }
        fn take_output(&mut self, out: &mut dyn FnMut(&[u8])) {
            out(&self.out);
            self.out.clear();
        }
    }

    /// An interrupt controller that ORs its inputs into context 0.
    #[derive(Default)]
    struct OrChip {
        lines: [bool; 32],
    }

    impl Device for OrChip {
        fn name(&self) -> &'static str {
            "orchip"
        }
        fn read(&mut self, _: u64, _: Width) -> Result<u64, DeviceError> {
            Ok(0)
        }
        fn write(&mut self, offset: u64, _: Width, _: u64) -> Result<(), DeviceError> {
            Err(DeviceError::BadOffset { offset })
        }
        fn set_irq_source(&mut self, source: u32, level: bool) {
            self.lines[source as usize] = level;
        }
        fn irq_output(&self, context: usize) -> bool {
            context == 0 && self.lines.iter().any(|&l| l)
        }
    }

    /// An interrupt controller that reads back the CPU it was last told
    /// (offset 0) and how many times it was told (offset 4).
    #[derive(Default)]
    struct CpuChip {
        cpu: usize,
        selects: u64,
    }

    impl Device for CpuChip {
        fn name(&self) -> &'static str {
            "cpuchip"
        }
        fn read(&mut self, offset: u64, _: Width) -> Result<u64, DeviceError> {
            Ok(if offset == 0 {
                self.cpu as u64
            } else {
                self.selects
            })
        }
        fn write(&mut self, offset: u64, _: Width, _: u64) -> Result<(), DeviceError> {
            Err(DeviceError::ReadOnly { offset })
        }
        fn select_cpu(&mut self, cpu: usize) {
            self.cpu = cpu;
            self.selects += 1;
        }
    }

    fn gpa(a: u64) -> GuestPhysAddr {
        GuestPhysAddr::new(a)
    }

    #[test]
    fn the_chip_is_told_which_cpu_accesses() {
        let mut bus = Bus::new();
        let chip = bus
            .add(gpa(0x3000), 16, Box::<CpuChip>::default(), None)
            .unwrap();
        let read = |bus: &mut Bus, offset: u64| {
            bus.access(&MmioAccess::read(gpa(0x3000 + offset), Width::Word))
                .unwrap()
        };
        // Not the controller yet: only remembered.
        bus.set_cpu(2);
        assert_eq!(bus.cpu(), 2);
        assert_eq!(read(&mut bus, 4), 0);
        // Becoming the controller, it learns the current CPU.
        bus.set_irq_chip(chip).unwrap();
        assert_eq!((read(&mut bus, 0), read(&mut bus, 4)), (2, 1));
        bus.set_cpu(3);
        assert_eq!((read(&mut bus, 0), read(&mut bus, 4)), (3, 2));
        // The same CPU again: not passed on.
        bus.set_cpu(3);
        assert_eq!(read(&mut bus, 4), 2);
        bus.set_cpu(0);
        assert_eq!((read(&mut bus, 0), read(&mut bus, 4)), (0, 3));
    }

    #[test]
    fn ranges_are_checked() {
        let mut bus = Bus::new();
        let a = bus.add(gpa(0x1000), 0x100, Regs::boxed(), None).unwrap();
        assert_eq!(a.index(), 0);
        assert_eq!(
            bus.add(gpa(0x2000), 0, Regs::boxed(), None),
            Err(BusError::BadRange {
                base: gpa(0x2000),
                size: 0
            })
        );
        assert!(matches!(
            bus.add(gpa(u64::MAX - 1), 4, Regs::boxed(), None),
            Err(BusError::BadRange { .. })
        ));
        for (base, size) in [(0x10ff, 1), (0xf00, 0x101), (0x1080, 0x10), (0x0, 0x10000)] {
            assert_eq!(
                bus.add(gpa(base), size, Regs::boxed(), None),
                Err(BusError::Overlap {
                    base: gpa(base),
                    size,
                    existing: "regs"
                }),
                "{base:#x}+{size:#x}"
            );
        }
        // Adjacent on both sides is fine.
        bus.add(gpa(0xf00), 0x100, Regs::boxed(), None).unwrap();
        let c = bus.add(gpa(0x1100), 0x10, Regs::boxed(), None).unwrap();
        assert_eq!(bus.range(c), Some((gpa(0x1100), 0x10)));
        assert!(bus.contains(gpa(0x10ff)));
        assert!(!bus.contains(gpa(0x1110)));
        assert_eq!(bus.lookup(gpa(0x1105)), Some(c));
        assert_eq!(
            bus.set_irq_chip(DeviceId(7)),
            Err(BusError::UnknownId(DeviceId(7)))
        );
    }

    #[test]
    fn accesses_are_routed_and_masked() {
        let mut bus = Bus::new();
        let a = bus.add(gpa(0x1000), 16, Regs::boxed(), None).unwrap();
        let b = bus.add(gpa(0x2000), 16, Regs::boxed(), None).unwrap();
        let w = |addr, width, v| MmioAccess::write(gpa(addr), width, v);
        let r = |addr, width| MmioAccess::read(gpa(addr), width);
        assert_eq!(
            bus.access(&w(0x1004, Width::Word, 0x1122_3344_5566_7788)),
            Ok(0)
        );
        assert_eq!(bus.access(&r(0x1004, Width::Double)), Ok(0x5566_7788));
        assert_eq!(bus.access(&r(0x1005, Width::Half)), Ok(0x6677));
        assert_eq!(bus.access(&r(0x1004, Width::Byte)), Ok(0x88));
        assert_eq!(bus.access(&r(0x2004, Width::Word)), Ok(0));
        assert_eq!(
            bus.access(&r(0x3000, Width::Byte)),
            Err(BusError::NoDevice { addr: gpa(0x3000) })
        );
        assert_eq!(
            bus.access(&r(0x100c, Width::Double)),
            Err(BusError::Straddle {
                device: "regs",
                addr: gpa(0x100c),
                width: Width::Double
            })
        );
        let e = bus.access(&w(0x200f, Width::Byte, 1)).unwrap_err();
        assert_eq!(
            e,
            BusError::Device {
                device: "regs",
                addr: gpa(0x200f),
                error: DeviceError::ReadOnly { offset: 15 }
            }
        );
        assert_eq!(
            e.to_string(),
            "regs at GPA 0x200f: register at offset 0xf is read-only"
        );
        assert_eq!(bus.accesses(a), 4);
        assert_eq!(bus.accesses(b), 2);
        assert_eq!(
            bus.access_counts().collect::<Vec<_>>(),
            [("regs", 4), ("regs", 2)]
        );
    }

    #[test]
    fn lines_reach_the_chip() {
        let mut bus = Bus::new();
        bus.add(gpa(0x1000), 16, Regs::boxed(), Some(3)).unwrap();
        bus.add(gpa(0x2000), 16, Regs::boxed(), None).unwrap();
        let chip = bus
            .add(gpa(0x3000), 16, Box::<OrChip>::default(), None)
            .unwrap();
        assert!(!bus.external_irq(0));
        bus.set_irq_chip(chip).unwrap();
        // An unwired device's line goes nowhere.
        bus.access(&MmioAccess::write(gpa(0x2000), Width::Byte, 1))
            .unwrap();
        assert!(!bus.external_irq(0));
        bus.access(&MmioAccess::write(gpa(0x1000), Width::Byte, 1))
            .unwrap();
        assert!(bus.external_irq(0));
        assert!(!bus.external_irq(1));
        bus.access(&MmioAccess::write(gpa(0x1000), Width::Byte, 0))
            .unwrap();
        assert!(!bus.external_irq(0));
    }

    #[test]
    fn a_bus_without_a_chip_feeds_its_lines_to_another_buses_chip() {
        use crate::devices::ioapic::{IOAPIC_BASE, IOAPIC_SIZE, IoApic};
        // The port bus: a device on input 4 and an unwired one.
        let mut ports = Bus::new();
        ports.add(gpa(0x3f8), 16, Regs::boxed(), Some(4)).unwrap();
        ports.add(gpa(0x2f8), 16, Regs::boxed(), None).unwrap();
        // The MMIO bus: the I/O APIC as its controller.
        let mut mmio = Bus::new();
        assert_eq!(mmio.take_message(), None, "no controller yet");
        mmio.end_of_interrupt(0x24);
        let chip = mmio
            .add(gpa(IOAPIC_BASE), IOAPIC_SIZE, Box::new(IoApic::new()), None)
            .unwrap();
        mmio.set_irq_chip(chip).unwrap();
        let io = |bus: &mut Bus, offset: u64, v: u64| {
            bus.access(&MmioAccess::write(
                gpa(IOAPIC_BASE + offset),
                Width::Word,
                v,
            ))
            .unwrap()
        };
        // Pin 4: vector 0x24, level-triggered, unmasked.
        io(&mut mmio, 0x00, 0x18);
        io(&mut mmio, 0x10, 0x24 | 1 << 15);
        assert_eq!(ports.wired_lines().collect::<Vec<_>>(), [(4, false)]);
        ports
            .access(&MmioAccess::write(gpa(0x3f8), Width::Byte, 1))
            .unwrap();
        for (source, level) in ports.wired_lines() {
            mmio.set_irq_line(source, level);
        }
        let m = mmio.take_message().expect("pin 4 went up");
        assert_eq!((m.vector, m.level), (0x24, true));
        assert_eq!(mmio.take_message(), None);
        // Still up after the EOI: level-triggered, so it comes again.
        mmio.end_of_interrupt(0x24);
        assert_eq!(mmio.take_message().map(|m| m.vector), Some(0x24));
    }

    #[test]
    fn console_output_is_drained() {
        let mut bus = Bus::new();
        bus.add(gpa(0x1000), 16, Regs::boxed(), None).unwrap();
        for c in b"hi" {
            bus.access(&MmioAccess::write(gpa(0x1001), Width::Byte, u64::from(*c)))
                .unwrap();
        }
        let mut got = Vec::new();
        bus.drain_console_output(|b| got.extend_from_slice(b));
        assert_eq!(got, b"hi");
        got.clear();
        bus.drain_console_output(|b| got.extend_from_slice(b));
        assert!(got.is_empty());
        // Not a console.
        assert!(!bus.push_console_input(b'x'));
    }
}
