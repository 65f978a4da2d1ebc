//! QEMU `virt` for aarch64 (with EL2), as the guest sees it: 128 MiB of
//! RAM at IPA 0x4000_0000 with the image at 0x4020_0000, the GICv2
//! (distributor and CPU interface) and the PL011 emulated at QEMU's
//! addresses, and pflash1 passed through read-only at 0x0400_0000. The
//! guest's EL1 physical timer is wired to PPI 30, its virtual timer to
//! PPI 27.

use super::{Board, CpuWiring, DeviceKind, DeviceSpec, Space, host_device};
use crate::addr::{GuestPhysAddr, HostPhysAddr};
use crate::arch::aarch64::vtimer::{EL1_PHYS_TIMER_INTID, EL1_VIRT_TIMER_INTID};
use crate::devices::gicv2::{GIC_SIZE, IRQ_CONTEXT, SPI_BASE};
use crate::devices::pl011::PL011_SIZE;

/// The PL011's interrupt: SPI 1 (INTID 33).
pub const UART_INTID: u32 = SPI_BASE + 1;

/// The board.
pub const AARCH64_VIRT: Board = Board {
    name: "aarch64-qemu-virt",
    ram_base: GuestPhysAddr::new(0x4000_0000),
    entry: GuestPhysAddr::new(0x4020_0000),
    devices: &[
        DeviceSpec {
            name: "pflash",
            kind: DeviceKind::PassthroughFlash {
                hpa: HostPhysAddr::new(0x0400_0000),
            },
            space: Space::Mmio,
            base: 0x0400_0000,
            size: 0x400_0000,
            irq: None,
        },
        DeviceSpec {
            name: "gic",
            kind: DeviceKind::Gicv2,
            space: Space::Mmio,
            base: 0x0800_0000,
            size: GIC_SIZE,
            irq: None,
        },
        DeviceSpec {
            name: "uart",
            kind: DeviceKind::Pl011,
            space: Space::Mmio,
            base: 0x0900_0000,
            size: PL011_SIZE,
            irq: Some(UART_INTID),
        },
    ],
    cpu: CpuWiring {
        irq_context: IRQ_CONTEXT,
        timer_irqs: &[EL1_PHYS_TIMER_INTID, EL1_VIRT_TIMER_INTID],
    },
    // One GIC CPU interface per vCPU, numbered as the vCPUs.
    cpu_context_stride: 1,
    host_devices: &[
        host_device("interrupt controller (GICv2)", 0x0800_0000, 0x2_0000),
        host_device("console UART (PL011)", 0x0900_0000, 0x1000),
    ],
};
