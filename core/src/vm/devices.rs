//! The VM's emulated devices: the MMIO bus with its interrupt controller,
//! x86's port bus, and the console input no device has taken yet. Built
//! from the board description and the VM's vCPU count
//! ([`Devices::for_board_with_cpus`]); per VM, shared by its vCPUs, which
//! say which of them is accessing ([`Devices::select_cpu`]).

extern crate alloc;

use alloc::boxed::Box;
use alloc::collections::VecDeque;

use crate::addr::GuestPhysAddr;
use crate::devices::gicv2::Gicv2;
use crate::devices::ioapic::IoApic;
use crate::devices::pic8259::Pic8259;
use crate::devices::pl011::Pl011;
use crate::devices::plic::Plic;
use crate::devices::uart16550::Uart16550;
use crate::devices::{Bus, BusError, Device, InterruptMessage};
use crate::exit::CpuSet;
use crate::machine::{Board, DeviceKind, Space};
use crate::vm::Console;

/// The VM's device models and how their interrupts are routed.
pub struct Devices {
    /// Device models by guest-physical range, with the interrupt
    /// controller.
    pub bus: Bus,
    /// Device models by x86 I/O port range: a second bus whose addresses
    /// are port numbers. It has no interrupt controller of its own: the
    /// lines of its wired devices go to `bus`'s (COM1's IRQ 4 to I/O APIC
    /// pin 4).
    pub ports: Bus,
    /// Console input read from the host that no device has taken yet.
    pub(crate) pending_input: VecDeque<u8>,
    /// Each vCPU's controller output, for kicks ([`Devices::lines_changed`]).
    pub(crate) cpu_lines: CpuLines,
}

/// A fresh model of `kind` for a VM with `cpus` vCPUs (an interrupt
/// controller has per-CPU parts); `None` for a device the guest reaches by
/// a mapping (flash), not through the bus.
fn model(kind: DeviceKind, cpus: usize) -> Option<Box<dyn Device>> {
    Some(match kind {
        DeviceKind::Plic => Box::new(Plic::with_harts(cpus)),
        DeviceKind::Uart16550 => Box::new(Uart16550::new()),
        DeviceKind::Pl011 => Box::new(Pl011::new()),
        DeviceKind::Gicv2 => Box::new(Gicv2::with_cpus(cpus)),
        DeviceKind::IoApic => Box::new(IoApic::new()),
        DeviceKind::Pic8259(name) => Box::new(Pic8259::new(name)),
        DeviceKind::PassthroughFlash { .. } | DeviceKind::EmulatedFlash { .. } => return None,
    })
}

impl Devices {
    /// Empty buses.
    pub fn new() -> Self {
        Devices {
            bus: Bus::new(),
            ports: Bus::new(),
            pending_input: VecDeque::new(),
            cpu_lines: CpuLines::default(),
        }
    }

    /// Every emulated device of `board` on its bus, at its range, with
    /// its interrupt line wired to the board's interrupt controller, for
    /// one vCPU.
    pub fn for_board(board: &Board) -> Result<Self, BusError> {
        Self::for_board_with_cpus(board, 1)
    }

    /// [`Devices::for_board`] for a VM with `cpus` vCPUs, 1..=8: the
    /// interrupt controller gets a part per vCPU (a GIC's CPU interfaces),
    /// and each vCPU's controller context is the one the board wires it
    /// to ([`Devices::lines_changed`]).
    ///
    /// # Panics
    ///
    /// On a board with a GIC, if `cpus` is not in 1..=8.
    pub fn for_board_with_cpus(board: &Board, cpus: usize) -> Result<Self, BusError> {
        let mut devices = Devices::new();
        for spec in board.devices {
            let Some(device) = model(spec.kind, cpus) else {
                continue;
            };
            let bus = match spec.space {
                Space::Mmio => &mut devices.bus,
                Space::Port => &mut devices.ports,
            };
            let id = bus.add(GuestPhysAddr::new(spec.base), spec.size, device, spec.irq)?;
            if spec.kind.is_irq_chip() {
                bus.set_irq_chip(id)?;
            }
        }
        let contexts = (0..cpus).map(|cpu| board.cpu_wiring(cpu).irq_context);
        devices.cpu_lines = CpuLines {
            contexts: contexts.collect(),
            seen: alloc::vec![false; cpus],
            epoch: u64::MAX,
        };
        Ok(devices)
    }

    /// The accesses and interrupt lines that follow are vCPU `cpu`'s: the
    /// interrupt controller's per-CPU registers and sources (a GIC's
    /// banked SGIs and PPIs) are that vCPU's ([`Bus::set_cpu`]). Cheap
    /// when the CPU does not change.
    pub fn select_cpu(&mut self, cpu: usize) {
        self.bus.set_cpu(cpu);
    }

    /// Drives controller input `source` (a timer the vCPU emulates; a
    /// per-CPU source is the selected vCPU's, see
    /// [`Devices::select_cpu`]).
    pub fn set_irq_line(&mut self, source: u32, level: bool) {
        self.bus.set_irq_line(source, level);
    }

    /// Whether the controller's output to `context` is asserted.
    pub fn external_irq(&self, context: usize) -> bool {
        self.bus.external_irq(context)
    }

    /// The controller's next interrupt message for the local APICs.
    pub fn take_message(&mut self) -> Option<InterruptMessage> {
        self.bus.take_message()
    }

    /// A CPU ended level-triggered `vector` (the local APIC's EOI).
    pub fn end_of_interrupt(&mut self, vector: u8) {
        self.bus.end_of_interrupt(vector);
    }

    /// After device activity: prints what the devices transmitted and
    /// brings the port devices' lines to the controller.
    pub fn service<C: Console + ?Sized>(&mut self, console: &mut C) {
        self.service_to(|bytes| console.write(bytes));
    }

    /// [`Devices::service`] with the output going to `out`, called only
    /// when there is some (the run loop locks the shared console there,
    /// not on every device access).
    pub fn service_to(&mut self, mut out: impl FnMut(&[u8])) {
        self.bus.drain_console_output(&mut out);
        self.ports.drain_console_output(&mut out);
        for (source, level) in self.ports.wired_lines() {
            self.bus.set_irq_line(source, level);
        }
    }

    /// Moves host console input into the devices, as far as they take it.
    pub fn feed_input<C: Console + ?Sized>(&mut self, console: &mut C) {
        let mut buf = [0u8; 64];
        if self.pending_input.len() < buf.len() {
            let n = console.read(&mut buf);
            self.pending_input.extend(&buf[..n]);
        }
        while let Some(&byte) = self.pending_input.front() {
            if !self.bus.push_console_input(byte) && !self.ports.push_console_input(byte) {
                break;
            }
            self.pending_input.pop_front();
        }
    }

    /// Takes console input for an SBI read: first what the devices have
    /// not taken, then what the host has; returns how many bytes went into
    /// `buf`. Bytes a device model (a UART) already holds stay with it.
    pub fn take_input<C: Console + ?Sized>(&mut self, console: &mut C, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() {
            let Some(byte) = self.pending_input.pop_front() else {
                break;
            };
            buf[n] = byte;
            n += 1;
        }
        n + console.read(&mut buf[n..])
    }

    /// Gives back input taken with [`Devices::take_input`] that could not
    /// be delivered, to be taken first next time.
    pub fn unread_input(&mut self, bytes: &[u8]) {
        for &byte in bytes.iter().rev() {
            self.pending_input.push_front(byte);
        }
    }

    /// `(name, accesses)` of every device, the memory bus's first.
    pub fn access_counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.bus.access_counts().chain(self.ports.access_counts())
    }
}

/// Which controller output is each vCPU's, and the level each was last
/// known to see: for kicking the vCPUs whose line another vCPU's device
/// access changed.
#[derive(Default)]
pub(crate) struct CpuLines {
    /// vCPU `i`'s controller context.
    contexts: alloc::vec::Vec<usize>,
    /// The level of that context when vCPU `i` (or a kick for it) was last
    /// told.
    seen: alloc::vec::Vec<bool>,
    /// The bus's [`Bus::irq_epoch`] when the levels were last compared.
    epoch: u64,
}

impl Devices {
    /// After vCPU `me` acted on the devices and synced its own line: the
    /// other vCPUs whose controller output changed since they were last
    /// told (to be kicked, so that they sync). With one vCPU, none.
    pub fn lines_changed(&mut self, me: usize) -> CpuSet {
        let mut changed = CpuSet::default();
        // Nothing reached the controller since the last comparison: its
        // outputs are what they were.
        let epoch = self.bus.irq_epoch();
        if epoch == self.cpu_lines.epoch {
            return changed;
        }
        self.cpu_lines.epoch = epoch;
        let CpuLines { contexts, seen, .. } = &mut self.cpu_lines;
        for (cpu, (&context, seen)) in contexts.iter().zip(seen.iter_mut()).enumerate() {
            let level = self.bus.external_irq(context);
            if *seen != level {
                *seen = level;
                if cpu != me {
                    changed.0 |= 1 << cpu;
                }
            }
        }
        changed
    }
}

impl Default for Devices {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::gicv2::VIRT_BASE;
    use crate::devices::{MmioAccess, Width};
    use crate::machine::{AARCH64_VIRT, RISCV64_VIRT, X86_Q35};
    use std::vec::Vec;

    fn names(bus: &Bus) -> Vec<&'static str> {
        bus.access_counts().map(|(n, _)| n).collect()
    }

    #[test]
    fn each_board_gets_its_models_at_its_ranges() {
        let rv = Devices::for_board(&RISCV64_VIRT).unwrap();
        assert_eq!(names(&rv.bus), ["plic", "uart16550"]);
        assert!(rv.bus.contains(GuestPhysAddr::new(0x1000_00ff)));
        assert!(
            !rv.bus.contains(GuestPhysAddr::new(0x1000_0100)),
            "the UART's range is the 0x100 bytes the board states"
        );
        assert!(rv.ports.access_counts().next().is_none());
        let arm = Devices::for_board(&AARCH64_VIRT).unwrap();
        assert_eq!(names(&arm.bus), ["gicv2", "pl011"]);
        let pc = Devices::for_board(&X86_Q35).unwrap();
        assert_eq!(names(&pc.bus), ["ioapic"]);
        assert_eq!(names(&pc.ports), ["uart16550", "pic-master", "pic-slave"]);
        assert!(pc.ports.contains(GuestPhysAddr::new(0x3ff)));
    }

    /// GICD_TYPER.CPUNumber of the board's GIC.
    fn gic_cpus(devices: &mut Devices) -> u64 {
        let typer = GuestPhysAddr::new(VIRT_BASE + 4);
        let a = MmioAccess::read(typer, Width::Word);
        (devices.bus.access(&a).unwrap() >> 5 & 7) + 1
    }

    #[test]
    fn the_gic_gets_a_cpu_interface_per_vcpu() {
        assert_eq!(gic_cpus(&mut Devices::for_board(&AARCH64_VIRT).unwrap()), 1);
        let mut arm = Devices::for_board_with_cpus(&AARCH64_VIRT, 4).unwrap();
        assert_eq!(gic_cpus(&mut arm), 4);
        // Selecting vCPU 2: the banked GICD_ITARGETSR0 names it.
        arm.select_cpu(2);
        assert_eq!(arm.bus.cpu(), 2);
        let itargetsr0 = GuestPhysAddr::new(VIRT_BASE + 0x800);
        let a = MmioAccess::read(itargetsr0, Width::Word);
        assert_eq!(arm.bus.access(&a), Ok(0x0404_0404));
        // Other boards take the count without a GIC.
        let rv = Devices::for_board_with_cpus(&RISCV64_VIRT, 8).unwrap();
        assert_eq!(names(&rv.bus), ["plic", "uart16550"]);
    }
}
