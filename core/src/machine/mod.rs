//! Board descriptions: one value per machine a guest can be given, stating
//! once where its RAM is, which devices it has (kind, range, interrupt
//! line) and which devices of the host the hypervisor keeps for itself.
//!
//! Everything else about a machine is derived from its [`Board`]: the
//! guest's address map ([`Board::layout`]), the emulated device set on its
//! buses ([`Board::devices`], with the `alloc` feature), the device tree
//! (the architecture's `dtb` module finds devices here by kind) and the
//! host-device refusal list ([`Board::host_devices`]).

pub mod aarch64_virt;
pub mod riscv64_virt;
pub mod x86_q35;

#[cfg(feature = "alloc")]
extern crate alloc;

use crate::PAGE_SIZE;
use crate::addr::{GuestPhysAddr, HostPhysAddr};
use crate::layout::{HostDevice, LayoutError, Perms, Region, RegionKind};

pub use aarch64_virt::AARCH64_VIRT;
pub use riscv64_virt::RISCV64_VIRT;
pub use x86_q35::X86_Q35;

/// Guest RAM unless the VM's config says otherwise: 128 MiB, what the
/// ArceOS platform configurations of all three machines declare.
pub const DEFAULT_RAM_SIZE: u64 = 128 << 20;

/// What a device of the board is, which says how it is backed and which
/// model emulates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// The RISC-V platform-level interrupt controller (emulated).
    Plic,
    /// An NS16550A UART (emulated).
    Uart16550,
    /// The Arm PL011 UART (emulated).
    Pl011,
    /// The Arm GICv2 distributor and CPU interface (emulated).
    Gicv2,
    /// The x86 I/O APIC (emulated).
    IoApic,
    /// One of the PC's two 8259 interrupt controllers (emulated, kept
    /// masked), named for the report.
    Pic8259(&'static str),
    /// A read-only flash chip passed through from the host's same range.
    PassthroughFlash {
        /// Where the chip is on the host.
        hpa: HostPhysAddr,
    },
    /// A read-only flash page emulated by the hypervisor: `content` at the
    /// start of a fresh page, the rest zero.
    EmulatedFlash {
        /// The page's first bytes.
        content: &'static [u8],
    },
}

impl DeviceKind {
    /// Whether this device is the board's interrupt controller, to which
    /// the other devices' lines are wired.
    pub const fn is_irq_chip(self) -> bool {
        matches!(
            self,
            DeviceKind::Plic | DeviceKind::Gicv2 | DeviceKind::IoApic
        )
    }

    /// Whether a model on the hypervisor's bus emulates it (every access
    /// traps), as opposed to a flash mapped into the guest.
    pub const fn is_trapped(self) -> bool {
        !matches!(
            self,
            DeviceKind::PassthroughFlash { .. } | DeviceKind::EmulatedFlash { .. }
        )
    }
}

/// Which address space a device sits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    /// Guest-physical memory.
    Mmio,
    /// x86's 64 KiB I/O port space.
    Port,
}

/// One device of a board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceSpec {
    /// Its region's name in diagnostics and the report (`"uart"`).
    pub name: &'static str,
    /// What it is.
    pub kind: DeviceKind,
    /// Memory or port space.
    pub space: Space,
    /// Its first address (or port).
    pub base: u64,
    /// The size of its register range, as its device-tree `reg` states it
    /// (the stage-2 region around it is rounded out to whole pages).
    pub size: u64,
    /// The interrupt-controller input its line is wired to, if any.
    pub irq: Option<u32>,
}

impl DeviceSpec {
    /// Its first guest-physical address.
    pub const fn gpa(&self) -> GuestPhysAddr {
        GuestPhysAddr::new(self.base)
    }

    /// The stage-2 region of a memory-space device: its range rounded out
    /// to whole pages; trapped devices are never mapped, flash is mapped
    /// read-only.
    pub const fn region(&self) -> Region {
        let start = self.base & !(PAGE_SIZE - 1);
        let end = (self.base + self.size).next_multiple_of(PAGE_SIZE);
        let (perms, kind) = match self.kind {
            DeviceKind::PassthroughFlash { hpa } => (Perms::READ, RegionKind::Passthrough { hpa }),
            DeviceKind::EmulatedFlash { content } => {
                (Perms::READ, RegionKind::Emulated { content })
            }
            _ => (Perms::RW, RegionKind::Device),
        };
        Region {
            name: self.name,
            gpa: GuestPhysAddr::new(start),
            size: end - start,
            perms,
            kind,
        }
    }
}

/// How a vCPU is wired to the board's interrupt controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuWiring {
    /// The controller output that is the vCPU's external interrupt line
    /// (the PLIC's S-mode context of its hart, the GIC's CPU interface).
    pub irq_context: usize,
    /// The controller inputs the vCPU's own timers drive, where their
    /// interrupts go through the controller (aarch64: the EL1 physical
    /// timer, then the virtual timer). Empty where the vCPU delivers its
    /// timer interrupt itself.
    pub timer_irqs: &'static [u32],
}

/// One machine as the guest sees it.
#[derive(Clone, Copy, Debug)]
pub struct Board {
    /// The machine's name (`"riscv64-qemu-virt"`).
    pub name: &'static str,
    /// Where guest RAM starts.
    pub ram_base: GuestPhysAddr,
    /// Where a guest image without its own placement is loaded and started.
    pub entry: GuestPhysAddr,
    /// Every device, in any order.
    pub devices: &'static [DeviceSpec],
    /// How vCPU 0 is wired to the interrupt controller; any vCPU's wiring
    /// is [`Board::cpu_wiring`].
    pub cpu: CpuWiring,
    /// How far apart two consecutive vCPUs' `irq_context`s are: vCPU `n`'s
    /// is vCPU 0's plus `n` times this. 0 where every vCPU shares vCPU 0's
    /// wiring.
    pub cpu_context_stride: usize,
    /// The host devices the hypervisor drives itself: no pass-through
    /// range may reach them.
    pub host_devices: &'static [HostDevice],
}

impl Board {
    /// How vCPU `cpu` is wired to the interrupt controller: vCPU 0's
    /// wiring with its `irq_context` moved `cpu` strides on (riscv64: the
    /// S-mode PLIC context of hart `cpu`, 2*cpu+1; aarch64: GIC CPU
    /// interface `cpu`; x86: vCPU 0's). The timer inputs are the same for
    /// every vCPU (aarch64's are PPIs, private to each CPU interface).
    pub const fn cpu_wiring(&self, cpu: usize) -> CpuWiring {
        CpuWiring {
            irq_context: self.cpu.irq_context + self.cpu_context_stride * cpu,
            timer_irqs: self.cpu.timer_irqs,
        }
    }

    /// The first device of `kind` (compared by variant), if the board has
    /// one.
    pub fn find(&self, kind: fn(&DeviceKind) -> bool) -> Option<&DeviceSpec> {
        self.devices.iter().find(|d| kind(&d.kind))
    }

    /// The guest's RAM region with `size` bytes.
    pub const fn ram(&self, size: u64) -> Region {
        Region::ram(self.ram_base, size)
    }

    /// The guest's address map with `ram_size` bytes of RAM: every
    /// memory-space device's region and RAM, in address order.
    #[cfg(feature = "alloc")]
    pub fn layout(&self, ram_size: u64) -> Result<crate::layout::Layout, LayoutError> {
        if ram_size == 0 || !ram_size.is_multiple_of(PAGE_SIZE) {
            return Err(LayoutError::BadRamSize { size: ram_size });
        }
        let mut regions: alloc::vec::Vec<Region> = self
            .devices
            .iter()
            .filter(|d| d.space == Space::Mmio)
            .map(DeviceSpec::region)
            .chain([self.ram(ram_size)])
            .collect();
        regions.sort_by_key(|r| r.gpa);
        Ok(crate::layout::Layout::new(regions, self.entry))
    }
}

// Every board's memory map fits the per-region counters of the report.
const _: () = assert!(RISCV64_VIRT.devices.len() < crate::stats::MAX_LAYOUT_REGIONS);
const _: () = assert!(AARCH64_VIRT.devices.len() < crate::stats::MAX_LAYOUT_REGIONS);
const _: () = assert!(X86_Q35.devices.len() < crate::stats::MAX_LAYOUT_REGIONS);

/// A [`HostDevice`] entry for a board's host-device list.
pub(crate) const fn host_device(name: &'static str, hpa: u64, size: u64) -> HostDevice {
    HostDevice {
        name,
        hpa: HostPhysAddr::new(hpa),
        size,
    }
}

/// `board`'s layout at the default RAM size, for the rest of the crate's
/// tests (leaked: it lives as long as the test).
#[cfg(test)]
pub(crate) fn test_layout(board: &Board) -> crate::layout::GuestLayout<'static> {
    let layout = board
        .layout(DEFAULT_RAM_SIZE)
        .expect("the default size fits");
    std::boxed::Box::leak(std::boxed::Box::new(layout)).as_ref()
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use crate::layout::HostResources;

    #[test]
    fn every_board_gives_a_valid_layout_at_the_default_ram_size() {
        for board in [RISCV64_VIRT, AARCH64_VIRT, X86_Q35] {
            let layout = test_layout(&board);
            let host = HostResources {
                ram: &[],
                devices: board.host_devices,
            };
            assert_eq!(layout.validate(&host), Ok(()), "{}", board.name);
            let ram = layout.ram().expect("RAM holds the entry");
            assert_eq!((ram.gpa, ram.size), (board.ram_base, DEFAULT_RAM_SIZE));
            assert!(
                layout.regions.windows(2).all(|w| w[0].gpa < w[1].gpa),
                "{}: regions in address order",
                board.name
            );
        }
    }

    #[test]
    fn a_device_region_is_its_range_rounded_out_to_pages() {
        let uart = RISCV64_VIRT.find(|k| *k == DeviceKind::Uart16550).unwrap();
        assert_eq!(uart.size, 0x100, "the range the device tree states");
        let r = uart.region();
        assert_eq!((r.gpa.as_u64(), r.size), (0x1000_0000, 0x1000));
        assert_eq!(r.kind, RegionKind::Device);
        assert_eq!(r.perms, Perms::RW);
    }

    #[test]
    fn each_board_has_one_interrupt_controller() {
        for board in [RISCV64_VIRT, AARCH64_VIRT, X86_Q35] {
            let chips = board
                .devices
                .iter()
                .filter(|d| d.kind.is_irq_chip())
                .count();
            assert_eq!(chips, 1, "{}", board.name);
        }
    }

    #[test]
    fn each_vcpu_has_its_own_interrupt_context() {
        use crate::devices::plic::s_mode_context;
        for cpu in 0..crate::exit::CpuSet::MAX_CPUS as usize {
            let rv = RISCV64_VIRT.cpu_wiring(cpu);
            assert_eq!(rv.irq_context, 2 * cpu + 1);
            assert_eq!(rv.irq_context, s_mode_context(cpu));
            assert!(rv.timer_irqs.is_empty());
            let arm = AARCH64_VIRT.cpu_wiring(cpu);
            assert_eq!(arm.irq_context, cpu, "GIC CPU interface {cpu}");
            assert_eq!(arm.timer_irqs, AARCH64_VIRT.cpu.timer_irqs);
            assert_eq!(X86_Q35.cpu_wiring(cpu), X86_Q35.cpu);
        }
        for board in [RISCV64_VIRT, AARCH64_VIRT, X86_Q35] {
            assert_eq!(board.cpu_wiring(0), board.cpu, "{}", board.name);
        }
    }

    #[test]
    fn port_devices_are_not_in_the_memory_map() {
        let layout = X86_Q35.layout(DEFAULT_RAM_SIZE).unwrap();
        let names: alloc::vec::Vec<_> = layout.regions().iter().map(|r| r.name).collect();
        assert_eq!(names, ["ram", "ioapic", "pflash"]);
    }
}
