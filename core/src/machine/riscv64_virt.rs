//! QEMU `virt` for riscv64, as the guest sees it: 128 MiB of RAM at
//! 0x8000_0000 with the image at 0x8020_0000 (where OpenSBI puts an S-mode
//! kernel), the PLIC and the NS16550A UART emulated at QEMU's addresses,
//! and pflash1 passed through read-only from the real machine.

use super::{Board, CpuWiring, DeviceKind, DeviceSpec, Space, host_device};
use crate::addr::{GuestPhysAddr, HostPhysAddr};
use crate::devices::plic::{CONTEXTS_PER_HART, PLIC_SIZE, S_MODE_CONTEXT};

/// The UART's PLIC source on QEMU `virt`.
pub const UART_IRQ: u32 = 10;

/// The board.
pub const RISCV64_VIRT: Board = Board {
    name: "riscv64-qemu-virt",
    ram_base: GuestPhysAddr::new(0x8000_0000),
    entry: GuestPhysAddr::new(0x8020_0000),
    devices: &[
        DeviceSpec {
            name: "plic",
            kind: DeviceKind::Plic,
            space: Space::Mmio,
            base: 0x0c00_0000,
            size: PLIC_SIZE,
            irq: None,
        },
        DeviceSpec {
            name: "uart",
            kind: DeviceKind::Uart16550,
            space: Space::Mmio,
            base: 0x1000_0000,
            // QEMU's tree gives the 16550 0x100 bytes; its eight byte
            // registers are at the start.
            size: 0x100,
            irq: Some(UART_IRQ),
        },
        DeviceSpec {
            name: "pflash",
            kind: DeviceKind::PassthroughFlash {
                hpa: HostPhysAddr::new(0x2200_0000),
            },
            space: Space::Mmio,
            base: 0x2200_0000,
            size: 0x200_0000,
            irq: None,
        },
    ],
    cpu: CpuWiring {
        irq_context: S_MODE_CONTEXT,
        timer_irqs: &[],
    },
    // Hart n's S-mode context is 2*n + 1: an M and an S context per hart.
    cpu_context_stride: CONTEXTS_PER_HART,
    host_devices: &[
        host_device("power-off device (sifive,test)", 0x0010_0000, 0x1000),
        host_device("interrupt controller (PLIC)", 0x0c00_0000, 0x60_0000),
        host_device("console UART", 0x1000_0000, 0x1000),
    ],
};
