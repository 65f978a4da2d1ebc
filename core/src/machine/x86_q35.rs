//! QEMU q35 (x86_64 with SVM), as the guest sees it: 128 MiB of RAM from
//! GPA 0 with the boot structures of `arch::x86_64::boot` below 1 MiB and
//! the image at 1 MiB, the I/O APIC emulated at 0xFEC0_0000, an emulated
//! flash page holding `pfld` at 0xFFC0_0000, and on the port bus COM1 (a
//! 16550 at 0x3F8, its line on I/O APIC pin 4) and the two legacy PICs
//! (kept masked). The local APIC is the vCPU's own (x2APIC MSRs).

use super::{Board, CpuWiring, DeviceKind, DeviceSpec, Space, host_device};
use crate::addr::GuestPhysAddr;
use crate::arch::x86_64::boot::IMAGE;
use crate::devices::ioapic::{IOAPIC_BASE, IOAPIC_SIZE};
use crate::devices::pic8259::{MASTER_BASE, PIC_PORTS, SLAVE_BASE};
use crate::devices::uart16550::UART16550_SIZE;
use crate::scenario::PFLASH_MAGIC;

/// COM1's ISA interrupt, I/O APIC pin 4 (ISA IRQs map one to one onto
/// the first 16 pins when no ACPI override says otherwise).
pub const COM1_IRQ: u32 = 4;

/// The board.
pub const X86_Q35: Board = Board {
    name: "x86_64-qemu-q35",
    ram_base: GuestPhysAddr::new(0),
    entry: GuestPhysAddr::new(IMAGE),
    devices: &[
        DeviceSpec {
            name: "ioapic",
            kind: DeviceKind::IoApic,
            space: Space::Mmio,
            base: IOAPIC_BASE,
            size: IOAPIC_SIZE,
            irq: None,
        },
        DeviceSpec {
            name: "pflash",
            kind: DeviceKind::EmulatedFlash {
                content: &PFLASH_MAGIC,
            },
            space: Space::Mmio,
            base: 0xffc0_0000,
            size: 0x1000,
            irq: None,
        },
        DeviceSpec {
            name: "com1",
            kind: DeviceKind::Uart16550,
            space: Space::Port,
            base: 0x3f8,
            size: UART16550_SIZE,
            irq: Some(COM1_IRQ),
        },
        DeviceSpec {
            name: "pic-master",
            kind: DeviceKind::Pic8259("pic-master"),
            space: Space::Port,
            base: MASTER_BASE as u64,
            size: PIC_PORTS,
            irq: None,
        },
        DeviceSpec {
            name: "pic-slave",
            kind: DeviceKind::Pic8259("pic-slave"),
            space: Space::Port,
            base: SLAVE_BASE as u64,
            size: PIC_PORTS,
            irq: None,
        },
    ],
    cpu: CpuWiring {
        irq_context: 0,
        timer_irqs: &[],
    },
    // The I/O APIC reaches the vCPUs by message, not by a per-vCPU output.
    cpu_context_stride: 0,
    host_devices: &[
        host_device("I/O APIC", 0xfec0_0000, 0x1000),
        host_device("local APIC", 0xfee0_0000, 0x1000),
    ],
};
