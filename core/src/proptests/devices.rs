//! Device models: random sequences of guest reads and writes at random
//! offsets with random widths and values, interleaved with console input,
//! interrupt-line changes, the controllers' other inputs and changes of
//! the accessing vCPU, against each model on its own (the GIC with one CPU
//! and with eight) and against each board's buses (for four vCPUs). Nothing panics; a
//! model's read returns a value within its width; a refused access is an
//! `Err`.

use proptest::prelude::*;

use super::{cases, width};
use crate::addr::GuestPhysAddr;
use crate::devices::gicv2::{GIC_SIZE, Gicv2};
use crate::devices::ioapic::{IOAPIC_SIZE, IoApic};
use crate::devices::lapic::{ApicMode, Lapic, XAPIC_SIZE};
use crate::devices::pic8259::Pic8259;
use crate::devices::pl011::{PL011_SIZE, Pl011};
use crate::devices::plic::{PLIC_SIZE, Plic};
use crate::devices::uart16550::{UART16550_SIZE, Uart16550};
use crate::devices::{DeliveryMode, Device, InterruptMessage, MmioAccess, Width};
use crate::machine::{AARCH64_VIRT, Board, RISCV64_VIRT, Space, X86_Q35};
use crate::vm::Devices;

/// One thing that happens to a device.
#[derive(Clone, Debug)]
enum Op {
    /// A guest load (`offset` is reduced into the device's hot spots or
    /// range by [`offset_in`]).
    Read(u64, Width),
    /// A guest store.
    Write(u64, Width, u64),
    /// A byte of host console input.
    Input(u8),
    /// An interrupt-controller input changes level.
    Line(u32, bool),
    /// The controller's next message, if it sends messages.
    TakeMessage,
    /// A CPU ends a level-triggered interrupt.
    Eoi(u8),
    /// The host drains transmitted bytes.
    Drain,
    /// The accesses that follow are this vCPU's (one the controller may
    /// not have included).
    SelectCpu(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<u64>(), width()).prop_map(|(o, w)| Op::Read(o, w)),
        6 => (any::<u64>(), width(), value()).prop_map(|(o, w, v)| Op::Write(o, w, v)),
        1 => any::<u8>().prop_map(Op::Input),
        2 => (prop_oneof![0u32..40, 0u32..1100, any::<u32>()], any::<bool>())
            .prop_map(|(s, l)| Op::Line(s, l)),
        1 => Just(Op::TakeMessage),
        1 => any::<u8>().prop_map(Op::Eoi),
        1 => Just(Op::Drain),
        1 => (0usize..10).prop_map(Op::SelectCpu),
    ]
}

/// Values: anything, or small ones and all-ones, which enable things.
fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => any::<u64>(),
        3 => 0u64..16,
        1 => 0u64..0x200,
        1 => Just(u64::MAX),
        1 => Just(0xffff_ffff),
        1 => Just(1u64 << 8),
    ]
}

/// An offset from `raw`: anywhere in `0..size + 16` (just past the end
/// included), or near one of `hot`, the register blocks, mostly right at
/// their start, with a bias to aligned offsets.
fn offset_in(raw: u64, size: u64, hot: &[u64]) -> u64 {
    let pick = raw >> 48;
    let low = raw & 0xffff;
    let base = hot[(pick as usize >> 2) % hot.len()];
    let at = match pick & 3 {
        0 => low.wrapping_mul(0x9e37_79b9_7f4a_7c15 >> 16) % (size + 16),
        1 => base + low % 0x400,
        _ => base + 4 * (low % 4),
    };
    if pick & 0x300 != 0 { at & !3 } else { at }
}

/// Every model, fresh, with its range size and register blocks.
fn models() -> Vec<(Box<dyn Device>, u64, &'static [u64])> {
    vec![
        (Box::new(Uart16550::new()), UART16550_SIZE, &[0]),
        (Box::new(Pl011::new()), PL011_SIZE, &[0, 0xc00, 0xfc0]),
        (
            Box::new(Plic::new()),
            PLIC_SIZE,
            &[
                0, 0x1000, 0x2000, 0x2080, 0x1f_fc00, 0x20_0000, 0x20_1000, 0x5f_fc00,
            ],
        ),
        (
            Box::new(Gicv2::new()),
            GIC_SIZE,
            &[0, 0x400, 0x800, 0xc00, 0xf00, 0xfc0, 0x1_0000, 0x1_1000],
        ),
        (
            Box::new(Gicv2::with_cpus(8)),
            GIC_SIZE,
            &[0, 0x400, 0x800, 0xc00, 0xf00, 0xfc0, 0x1_0000, 0x1_1000],
        ),
        (Box::new(IoApic::new()), IOAPIC_SIZE, &[0, 0xc00]),
        (
            Box::new(Lapic::new(1_000_000_000)),
            XAPIC_SIZE,
            &[0, 0x100, 0x200, 0x300, 0x380],
        ),
        (Box::new(Pic8259::new("pic-master")), 2, &[0]),
    ]
}

/// Runs `ops` against `d`, checking each read's value against its width.
fn drive(d: &mut dyn Device, size: u64, hot: &[u64], ops: &[Op]) {
    for op in ops {
        match *op {
            Op::Read(raw, w) => {
                let offset = offset_in(raw, size, hot);
                if let Ok(v) = d.read(offset, w) {
                    assert_eq!(
                        v & !w.mask(),
                        0,
                        "{}: {w} read at {offset:#x}: {v:#x}",
                        d.name()
                    );
                }
            }
            Op::Write(raw, w, v) => {
                // The bus hands a device only the low `width` bytes.
                let _ = d.write(offset_in(raw, size, hot), w, v & w.mask());
            }
            Op::Input(b) => {
                let _ = d.push_input(b);
            }
            Op::Line(source, level) => d.set_irq_source(source, level),
            Op::TakeMessage => {
                if let Some(m) = d.take_message() {
                    check_message(&m);
                }
            }
            Op::Eoi(v) => d.end_of_interrupt(v),
            Op::Drain => d.take_output(&mut |_| {}),
            Op::SelectCpu(cpu) => d.select_cpu(cpu),
        }
        let _ = d.irq_level();
        for context in 0..10 {
            let _ = d.irq_output(context);
        }
    }
}

fn check_message(m: &InterruptMessage) {
    let _ = (m.vector, m.destination, m.delivery, m.logical, m.level);
}

/// The board's buses, and each device's range with its space.
fn board_ranges(board: &Board) -> Vec<(Space, u64, u64)> {
    board
        .devices
        .iter()
        .map(|d| (d.space, d.base, d.size))
        .collect()
}

/// Runs `ops` against a board's devices, each access at a device of the
/// board picked by the op (an offset just past the end included).
fn drive_board(board: &Board, ops: &[(usize, Op)]) {
    let mut devices =
        Devices::for_board_with_cpus(board, 4).expect("the board's devices fit its buses");
    let ranges = board_ranges(board);
    for (pick, op) in ops {
        let (space, base, size) = ranges[pick % ranges.len()];
        let bus = match space {
            Space::Mmio => &mut devices.bus,
            Space::Port => &mut devices.ports,
        };
        let at = |raw: u64| GuestPhysAddr::new(base + offset_in(raw, size, &[0]));
        match *op {
            Op::Read(raw, w) => {
                if let Ok(v) = bus.access(&MmioAccess::read(at(raw), w)) {
                    assert_eq!(v & !w.mask(), 0);
                }
            }
            Op::Write(raw, w, v) => {
                let _ = bus.access(&MmioAccess::write(at(raw), w, v));
            }
            Op::Input(b) => {
                let _ = bus.push_console_input(b);
            }
            Op::Line(source, level) => devices.set_irq_line(source, level),
            Op::TakeMessage => {
                if let Some(m) = devices.take_message() {
                    check_message(&m);
                }
            }
            Op::Eoi(v) => devices.end_of_interrupt(v),
            Op::Drain => {
                devices.bus.drain_console_output(|_| {});
                devices.ports.drain_console_output(|_| {});
            }
            Op::SelectCpu(cpu) => devices.select_cpu(cpu),
        }
        let lines: Vec<_> = devices.ports.wired_lines().collect();
        for (source, level) in lines {
            devices.set_irq_line(source, level);
        }
        for context in 0..10 {
            let _ = devices.external_irq(context);
        }
    }
}

proptest! {
    #![proptest_config(cases(150))]

    /// Each model on its own, from reset.
    #[test]
    fn each_model_survives_any_access_sequence(
        ops in prop::collection::vec(op(), 1..200),
    ) {
        for (mut d, size, hot) in models() {
            drive(&mut *d, size, hot, &ops);
        }
    }

    /// The local APIC in each of its modes, with time moving on, the
    /// x2APIC MSRs, and messages from the I/O APIC.
    #[test]
    fn lapic_survives_any_sequence_in_any_mode(
        ops in prop::collection::vec(op(), 1..60),
        steps in prop::collection::vec(
            (0u8..3, any::<u16>(), value(), 0u64..5_000_000, any::<[u8; 4]>()), 1..40),
    ) {
        let mut l = Lapic::new(1_000_000_000);
        let mut now = 0u64;
        for (mode, x2_offset, v, dt, m) in steps {
            now += dt;
            let mode = [ApicMode::XApic, ApicMode::X2Apic, ApicMode::Disabled][usize::from(mode)];
            if mode != l.mode() && m[0] % 4 == 0 {
                l.set_mode(mode, now);
            }
            let _ = l.read_x2apic(x2_offset & 0x3ff, now);
            let _ = l.write_x2apic(x2_offset & 0x3ff, v, now);
            l.tick(now);
            let _ = l.next_deadline();
            if let Some(vector) = l.pending_vector() {
                let _ = l.acknowledge(vector);
            }
            let _ = l.raise(m[1]);
            let _ = l.take_level_eoi();
            let _ = l.take_last_ipi();
            l.write_tsc_deadline(v, now, now);
            let _ = l.accept_message(&InterruptMessage {
                vector: m[2],
                delivery: DeliveryMode::from_bits(m[3]),
                logical: m[3] & 0x80 != 0,
                destination: m[1],
                level: m[3] & 0x40 != 0,
            });
            drive(&mut l, XAPIC_SIZE, &[0, 0x300, 0x380], &ops[..ops.len().min(4)]);
        }
    }

    /// Each board's devices on their buses, with the interrupt wiring.
    #[test]
    fn each_board_survives_any_access_sequence(
        ops in prop::collection::vec((any::<usize>(), op()), 1..120),
    ) {
        for board in [&RISCV64_VIRT, &AARCH64_VIRT, &X86_Q35] {
            drive_board(board, &ops);
        }
    }
}
