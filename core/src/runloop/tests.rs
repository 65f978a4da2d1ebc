//! The run loop's tests: a scripted vCPU replays exits against a real VM
//! (the riscv64 or x86 board's devices and layout, stage-2 tables in a
//! host arena) and records what the loop asked of it.

use super::*;
use crate::addr::GuestVirtAddr;
use crate::devices::uart16550::Uart16550;
use crate::devices::{InterruptMessage, MmioAccess, Width};
use crate::exit::{Fence, Handled, PortIo, RebootKind, Unexpected};
use crate::guest_memory::GuestMemory;
use crate::layout::Perms;
use crate::machine::{Board, DEFAULT_RAM_SIZE, RISCV64_VIRT, X86_Q35};
use crate::stage2::test_host::{ArenaHost, gpa, hpa};
use crate::stage2::{AddressSpace, MapError, Npt, Sv39x4};
use crate::stats::Stats;
use crate::vcpu::{Unemulated, access_bus};
use crate::vm::{Limits, Vm};
use std::boxed::Box;
use std::collections::VecDeque;
use std::vec::Vec;

/// A vCPU that replays a script of exits and records what it was told.
#[derive(Default)]
struct Scripted {
    exits: VecDeque<Exit>,
    replies: Vec<Reply>,
    pc: GuestVirtAddr,
    /// The accesses `emulate_io` makes for device faults, in order.
    mmio: VecDeque<MmioAccess>,
    /// Values the device accesses returned.
    loads: Vec<u64>,
    /// Levels of the external interrupt line, as they changed.
    lines: Vec<bool>,
    line: bool,
    /// The controller input the vCPU's timer drives, if wired.
    timer_source: Option<u32>,
    /// The timer's level after each exit, in order (kept once empty).
    timer_levels: VecDeque<bool>,
    timer_level: bool,
    /// Interrupt messages delivered.
    messages: Vec<InterruptMessage>,
    /// Level-triggered vectors delivered and not yet ended; a sysreg exit
    /// stands for the guest's EOI of all of them.
    in_service: Vec<u8>,
    /// Level-triggered vectors ended, for the next sync.
    ended: VecDeque<u8>,
    /// A read-modify-write: the device read's value with these bits set is
    /// written back by the same instruction.
    modify_or: Option<u64>,
}

impl Scripted {
    fn new(exits: &[Exit]) -> Self {
        Self {
            exits: exits.iter().copied().collect(),
            pc: GuestVirtAddr::new(0x8020_0000),
            ..Default::default()
        }
    }
}

impl Vcpu for Scripted {
    fn run(&mut self) -> Exit {
        self.pc += 4;
        let exit = self
            .exits
            .pop_front()
            .expect("the script ran out: the loop did not stop");
        if exit == SYSREG {
            self.ended.extend(self.in_service.drain(..));
        }
        if let Some(level) = self.timer_levels.pop_front() {
            self.timer_level = level;
        }
        exit
    }
    fn pc(&self) -> GuestVirtAddr {
        self.pc
    }
    fn finish_hypercall(&mut self, reply: Reply) {
        self.replies.push(reply);
    }
    fn emulate_io(
        &mut self,
        io: Io,
        devices: &mut Devices,
        _: &dyn GuestMemory,
    ) -> Result<(), IoError> {
        if let Some(source) = self.timer_source {
            devices.set_irq_line(source, self.timer_level);
        }
        let access = match io {
            Io::Port(p) => {
                let addr = GuestPhysAddr::new(u64::from(p.port));
                let access = match p.write {
                    Some(v) => MmioAccess::write(addr, p.width, v),
                    None => MmioAccess::read(addr, p.width),
                };
                let value = access_bus(&mut devices.ports, access)?;
                self.loads.push(value);
                return Ok(());
            }
            Io::Mmio { .. } => self.mmio.pop_front().ok_or(Unemulated {
                insn: 0x1000_202f,
                why: "an atomic memory operation",
            })?,
        };
        let value = access_bus(&mut devices.bus, access)?;
        self.loads.push(value);
        if let Some(bits) = self.modify_or.take() {
            let write = MmioAccess::write(access.addr, Width::Word, value | bits);
            self.loads.push(access_bus(&mut devices.bus, write)?);
        }
        Ok(())
    }
    fn start(&mut self, entry: GuestPhysAddr, _arg: u64) {
        self.pc = GuestVirtAddr::new(entry.as_u64());
    }
    fn remote_work(&mut self, _work: crate::vcpu::RemoteWork) {}
    fn kick(_cpu: usize) {}
    fn idle() {
        std::thread::yield_now();
    }
    fn sync_interrupts(&mut self, devices: &mut Devices) -> u64 {
        let mut raised = 0;
        while let Some(vector) = self.ended.pop_front() {
            devices.end_of_interrupt(vector);
        }
        if let Some(source) = self.timer_source {
            devices.set_irq_line(source, self.timer_level);
        }
        while let Some(message) = devices.take_message() {
            self.messages.push(message);
            if message.level {
                self.in_service.push(message.vector);
            }
            raised += 1;
        }
        let level = devices.external_irq(RISCV64_VIRT.cpu_wiring(0).irq_context);
        if level != self.line {
            self.line = level;
            self.lines.push(level);
            raised += u64::from(level);
        }
        raised
    }
}

/// The host console: what was printed, and what the user typed.
#[derive(Default)]
struct Captured {
    out: Vec<u8>,
    input: Vec<u8>,
}
impl Console for Captured {
    fn write(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }
    fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = self.input.len().min(buf.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input.drain(..n);
        n
    }
}

/// A VM under test, with the counters of every run so far.
struct TestVm<F: Format> {
    vm: Vm<F, ArenaHost, Captured>,
    /// The vCPU's exits over every run.
    exits: Stats,
    /// Those and the memory's counters.
    stats: Stats,
}

/// A VM of `board` with its default RAM over an arena of `frames` pages.
fn vm_of<F: Format>(board: &Board, frames: usize) -> TestVm<F> {
    let layout = board.layout(DEFAULT_RAM_SIZE).unwrap();
    let memory = Memory::new(layout, AddressSpace::new(ArenaHost::new(frames)).unwrap());
    let devices = Devices::for_board(board).unwrap();
    TestVm {
        vm: Vm::new(
            "test".into(),
            Limits::default(),
            memory,
            devices,
            Captured::default(),
            1,
        ),
        exits: Stats::default(),
        stats: Stats::default(),
    }
}

/// The riscv64 machine: the PLIC, and the UART on source 10.
fn vm() -> TestVm<Sv39x4> {
    vm_of(&RISCV64_VIRT, 64)
}

/// Runs `cpu` as the VM's vCPU 0 until the loop ends; `cpu` gets back
/// what it recorded.
fn go<F: Format>(t: &mut TestVm<F>, cpu: &mut Scripted) -> Result<(), VmError> {
    // Each run starts with vCPU 0 on and no ending recorded.
    t.vm.cpus = crate::vm::Cpus::new(1);
    let mut slot = VcpuSlot::new(0, core::mem::take(cpu));
    let result = t.vm.run_vcpu(&mut slot);
    *cpu = slot.vcpu;
    t.exits.absorb(&t.vm.cpus.stats(0));
    t.stats = t.vm.memory.lock().stats.clone();
    t.stats.absorb(&t.exits);
    result
}

const SHUTDOWN: Exit = Exit::Hypercall(Request::Shutdown(ShutdownReason::Normal));
/// A trapped system register the vCPU emulated (a timer reprogrammed, or
/// an EOI), after which it syncs its interrupts.
const SYSREG: Exit = Exit::Handled(Handled::quiet(ExitKind::SysReg, true));
/// The vCPU's timer expired, its interrupt going through the controller.
const TIMER: Exit = Exit::Handled(Handled::timer(true));

fn npf(addr: u64, access: Access) -> Exit {
    Exit::NestedPageFault {
        gpa: gpa(addr),
        access,
    }
}

const PC: GuestVirtAddr = GuestVirtAddr::new(0x8020_0004);
#[test]
fn faults_in_declared_regions_are_mapped_and_counted() {
    let mut vm = vm();
    let mut cpu = Scripted::new(&[
        npf(0x8020_1008, Access::Write),
        npf(0x2200_0000, Access::Read),
        SHUTDOWN,
    ]);
    assert_eq!(go(&mut vm, &mut cpu), Ok(()));
    assert!(
        vm.vm
            .memory
            .lock()
            .space
            .translate(gpa(0x8020_1000))
            .is_some()
    );
    assert_eq!(
        vm.vm.memory.lock().space.translate(gpa(0x2200_0000)),
        Some((hpa(0x2200_0000), Perms::READ))
    );
    assert_eq!(vm.stats.exits(ExitKind::NestedPageFault), 2);
    assert_eq!(vm.stats.exits(ExitKind::Hypercall), 1);
    assert_eq!(
        (vm.stats.pages(2), vm.stats.pages(3)),
        (1, 1),
        "one pflash page, one RAM page"
    );
}

#[test]
fn device_accesses_are_emulated_never_mapped() {
    let mut vm = vm();
    let mut cpu = Scripted::new(&[
        npf(0x1000_0000, Access::Write),
        npf(0x1000_0005, Access::Read),
        SHUTDOWN,
    ]);
    cpu.mmio.push_back(MmioAccess::write(
        gpa(0x1000_0000),
        Width::Byte,
        u64::from(b'A'),
    ));
    cpu.mmio
        .push_back(MmioAccess::read(gpa(0x1000_0005), Width::Byte));
    assert_eq!(go(&mut vm, &mut cpu), Ok(()));
    assert_eq!(
        vm.vm.console.lock().out,
        b"A",
        "THR goes to the host console"
    );
    assert_eq!(
        cpu.loads,
        [0, 0x60],
        "the write completes, then LSR reads THRE|TEMT"
    );
    assert_eq!(
        vm.vm.memory.lock().space.translate(gpa(0x1000_0000)),
        None,
        "the UART page is never mapped"
    );
    assert_eq!(vm.stats.exits(ExitKind::Mmio), 2);
    assert_eq!(vm.stats.exits(ExitKind::NestedPageFault), 0);
}

#[test]
fn an_access_that_cannot_be_emulated_stops_the_vm() {
    let mut vm1 = vm();
    let mut cpu = Scripted::new(&[npf(0x1000_0000, Access::Write)]);
    let err = go(&mut vm1, &mut cpu).unwrap_err();
    assert!(matches!(err, VmError::Unemulated { .. }), "{err:?}");
    assert!(err.to_string().contains("0x10000000"), "{err}");
    let mut vm2 = vm();
    let mut cpu = Scripted::new(&[npf(0x1000_0000, Access::Write)]);
    cpu.mmio
        .push_back(MmioAccess::write(gpa(0x1000_0000), Width::Word, 1));
    let err = go(&mut vm2, &mut cpu).unwrap_err();
    assert!(
        matches!(err, VmError::DeviceFault { .. }),
        "a 16550 has byte registers: {err}"
    );
    let mut vm3 = vm();
    let mut cpu = Scripted::new(&[npf(0x1000_0000, Access::Execute)]);
    assert!(matches!(
        go(&mut vm3, &mut cpu),
        Err(VmError::Forbidden { region: "uart", .. })
    ));
}

#[test]
fn typed_input_raises_the_guest_external_interrupt() {
    let mut vm = vm();
    vm.vm.console.lock().input = b"hi".to_vec();
    let mut cpu = Scripted::new(&[
        // The guest enables PLIC source 10 for context 1 and the
        // UART's receive interrupt.
        npf(0x0c00_0028, Access::Write),
        npf(0x0c00_2080, Access::Write),
        npf(0x1000_0001, Access::Write),
        Exit::HostTick,
        npf(0x1000_0000, Access::Read),
        // FIFOs are off: one holding register, so `i` waits in the
        // hypervisor until the next tick.
        Exit::HostTick,
        npf(0x1000_0000, Access::Read),
        SHUTDOWN,
    ]);
    for a in [
        MmioAccess::write(gpa(0x0c00_0028), Width::Word, 1),
        MmioAccess::write(gpa(0x0c00_2080), Width::Word, 1 << 10),
        MmioAccess::write(gpa(0x1000_0001), Width::Byte, 1),
        MmioAccess::read(gpa(0x1000_0000), Width::Byte),
        MmioAccess::read(gpa(0x1000_0000), Width::Byte),
    ] {
        cpu.mmio.push_back(a);
    }
    assert_eq!(go(&mut vm, &mut cpu), Ok(()));
    assert_eq!(
        cpu.lines,
        [true, false, true, false],
        "raised by each byte, lowered once it is read"
    );
    assert_eq!(&cpu.loads[3..], [u64::from(b'h'), u64::from(b'i')]);
    assert_eq!(vm.stats.injections(), (0, 2));
}

#[test]
fn a_timer_wired_to_the_controller_follows_the_vcpu_level() {
    let mut vm = vm();
    // The PLIC stands in for the controller: source 5 enabled for the
    // vCPU's context, the guest's timer wired to it.
    let mut cpu = Scripted::new(&[
        npf(0x0c00_0014, Access::Write),
        npf(0x0c00_2080, Access::Write),
        // The guest programs its timer (trapped), it expires, the guest
        // programs it again.
        SYSREG,
        TIMER,
        SYSREG,
        SHUTDOWN,
    ]);
    cpu.mmio
        .push_back(MmioAccess::write(gpa(0x0c00_0014), Width::Word, 1));
    cpu.mmio
        .push_back(MmioAccess::write(gpa(0x0c00_2080), Width::Word, 1 << 5));
    cpu.timer_source = Some(5);
    // The timer's level after each exit.
    cpu.timer_levels
        .extend([false, false, false, true, false, false]);
    assert_eq!(go(&mut vm, &mut cpu), Ok(()));
    assert_eq!(
        cpu.lines,
        [true, false],
        "raised on expiry, lowered on reprogramming"
    );
    assert_eq!(vm.stats.exits(ExitKind::SysReg), 2);
    assert_eq!(vm.stats.injections(), (1, 1));
}

#[test]
fn port_io_goes_to_the_port_bus_and_unknown_ports_stop_the_vm() {
    let mut vm = vm();
    vm.vm
        .devices
        .lock()
        .ports
        .add(gpa(0x3f8), 8, Box::new(Uart16550::new()), None)
        .unwrap();
    let out = |port, v| {
        Exit::PortIo(PortIo {
            port,
            width: Width::Byte,
            write: Some(v),
        })
    };
    let mut cpu = Scripted::new(&[
        out(0x3f8, u64::from(b'P')),
        Exit::PortIo(PortIo {
            port: 0x3fd,
            width: Width::Byte,
            write: None,
        }),
        out(0x3f8, u64::from(b'!')),
        SHUTDOWN,
    ]);
    assert_eq!(go(&mut vm, &mut cpu), Ok(()));
    assert_eq!(vm.vm.console.lock().out, b"P!");
    // LSR: transmitter empty, holding register empty (0x60).
    assert_eq!(cpu.loads, [0, 0x60, 0]);
    assert_eq!(vm.stats.exits(ExitKind::PortIo), 3);

    let mut bare = self::vm();
    let mut cpu = Scripted::new(&[out(0x80, 0x12)]);
    let err = go(&mut bare, &mut cpu).unwrap_err();
    assert!(matches!(err, VmError::PortFault { io, .. } if io.port == 0x80));
    assert!(
        err.to_string().starts_with(
            "guest 1-byte OUT of 0x12 to port 0x80: no device at that port (guest PC 0x"
        ),
        "{err}"
    );
}

/// The PC's interrupt path: COM1 on the port bus, its IRQ 4 wired to
/// pin 4 of the I/O APIC on the MMIO bus, whose messages go to the
/// vCPU's local APIC.
fn pc() -> TestVm<Npt> {
    vm_of(&X86_Q35, 4)
}

fn port(port: u16, write: Option<u64>) -> Exit {
    Exit::PortIo(PortIo {
        port,
        width: Width::Byte,
        write,
    })
}

/// The guest's writes of redirection entry 4 (low dword `low`).
fn program_pin4(cpu: &mut Scripted, low: u64) -> [Exit; 2] {
    cpu.mmio
        .push_back(MmioAccess::write(gpa(0xfec0_0000), Width::Word, 0x18));
    cpu.mmio
        .push_back(MmioAccess::write(gpa(0xfec0_0010), Width::Word, low));
    [
        npf(0xfec0_0000, Access::Write),
        npf(0xfec0_0010, Access::Write),
    ]
}

#[test]
fn com1_input_reaches_the_vcpu_as_io_apic_messages() {
    let mut vm = pc();
    vm.vm.console.lock().input = b"hi".to_vec();
    let mut cpu = Scripted::new(&[]);
    let mut exits = program_pin4(&mut cpu, 0x24).to_vec();
    exits.extend([
        // IER: received data available.
        port(0x3f9, Some(1)),
        Exit::HostTick,
        port(0x3f8, None),
        // No FIFO: `i` comes on the next tick, a new edge.
        Exit::HostTick,
        port(0x3f8, None),
        SHUTDOWN,
    ]);
    cpu.exits = exits.into();
    assert_eq!(go(&mut vm, &mut cpu), Ok(()));
    let edge = InterruptMessage {
        vector: 0x24,
        delivery: crate::devices::DeliveryMode::Fixed,
        logical: false,
        destination: 0,
        level: false,
    };
    assert_eq!(cpu.messages, [edge, edge]);
    assert_eq!(&cpu.loads[3..], [u64::from(b'h'), u64::from(b'i')]);
    assert_eq!(vm.stats.injections(), (0, 2));
    assert!(cpu.lines.is_empty(), "no external line on this machine");
}

#[test]
fn a_level_triggered_com1_comes_again_until_it_is_serviced() {
    let mut vm = pc();
    vm.vm.console.lock().input = b"h".to_vec();
    let mut cpu = Scripted::new(&[]);
    let mut exits = program_pin4(&mut cpu, 0x24 | 1 << 15).to_vec();
    exits.extend([
        port(0x3f9, Some(1)),
        Exit::HostTick,
        // The guest ends the interrupt without reading the byte: the
        // line is still up, so it comes again.
        SYSREG,
        port(0x3f8, None),
        // Read, then ended: quiet.
        SYSREG,
        SHUTDOWN,
    ]);
    cpu.exits = exits.into();
    assert_eq!(go(&mut vm, &mut cpu), Ok(()));
    assert_eq!(
        cpu.messages
            .iter()
            .map(|m| (m.vector, m.level))
            .collect::<Vec<_>>(),
        [(0x24, true), (0x24, true)]
    );
    assert_eq!(vm.stats.injections(), (0, 2));
}

#[test]
fn a_read_modify_write_makes_both_accesses_in_one_exit() {
    let mut vm = pc();
    let mut cpu = Scripted::new(&[]);
    // Pin 4 programmed unmasked, in a run of its own.
    let program = program_pin4(&mut cpu, 0x24);
    cpu.exits = program.into_iter().chain([SHUTDOWN]).collect();
    assert_eq!(go(&mut vm, &mut cpu), Ok(()));
    // Then masked with one `orl $0x10000` to IOWIN (a read, then a
    // write of the result) and read back.
    cpu.exits = [
        npf(0xfec0_0010, Access::Write),
        npf(0xfec0_0010, Access::Read),
        SHUTDOWN,
    ]
    .into();
    let iowin = MmioAccess::read(gpa(0xfec0_0010), Width::Word);
    cpu.mmio.extend([iowin, iowin]);
    cpu.loads.clear();
    cpu.modify_or = Some(1 << 16);
    assert_eq!(go(&mut vm, &mut cpu), Ok(()));
    assert_eq!(cpu.loads, [0x24, 0, 0x1_0024], "read, write, read back");
    assert_eq!(vm.stats.exits(ExitKind::Mmio), 2 + 2);
    assert_eq!(
        vm.vm.devices.lock().bus.access_counts().collect::<Vec<_>>(),
        [("ioapic", 2 + 3)]
    );
}

#[test]
fn a_masked_pin_keeps_com1_quiet() {
    let mut vm = pc();
    vm.vm.console.lock().input = b"h".to_vec();
    let mut cpu = Scripted::new(&[]);
    let mut exits = program_pin4(&mut cpu, 0x24 | 1 << 16).to_vec();
    exits.extend([port(0x3f9, Some(1)), Exit::HostTick, SHUTDOWN]);
    cpu.exits = exits.into();
    assert_eq!(go(&mut vm, &mut cpu), Ok(()));
    assert!(cpu.messages.is_empty());
    assert_eq!(vm.stats.injections(), (0, 0));
}

#[test]
fn the_watchdog_stops_a_guest_that_runs_too_long() {
    let mut vm = vm();
    let mut cpu = Scripted::new(&[Exit::HostTick, Exit::HostTick, Exit::HostTick]);
    vm.vm.limits = Limits {
        watchdog_ticks: Some(2),
        ..Limits::default()
    };
    let err = go(&mut vm, &mut cpu).unwrap_err();
    assert!(matches!(err, VmError::Watchdog { ticks: 2, .. }), "{err:?}");
}

#[test]
fn a_wild_address_stops_the_vm_with_its_details() {
    let mut vm = vm();
    let mut cpu = Scripted::new(&[npf(0x3000_0000, Access::Read), SHUTDOWN]);
    let err = go(&mut vm, &mut cpu).unwrap_err();
    assert_eq!(
        err,
        VmError::WildAccess {
            gpa: gpa(0x3000_0000),
            access: Access::Read,
            pc: PC
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains("0x30000000") && msg.contains("read") && msg.contains("0x80200004"),
        "{msg}"
    );
    assert_eq!(
        vm.vm.memory.lock().space.mapped_pages(),
        0,
        "nothing was mapped for the wild access"
    );
}

#[test]
fn host_ram_beyond_guest_ram_is_never_mapped() {
    // 0x8800_0000 is host RAM on the real machine but not the guest's.
    let mut vm = vm();
    let mut cpu = Scripted::new(&[npf(0x8800_0000, Access::Read)]);
    assert!(matches!(
        go(&mut vm, &mut cpu),
        Err(VmError::WildAccess { gpa: at, .. }) if at == gpa(0x8800_0000)
    ));
}

#[test]
fn writes_to_read_only_pflash_are_refused() {
    let mut vm = vm();
    let mut cpu = Scripted::new(&[npf(0x2200_0000, Access::Write)]);
    assert_eq!(
        go(&mut vm, &mut cpu),
        Err(VmError::Forbidden {
            gpa: gpa(0x2200_0000),
            access: Access::Write,
            region: "pflash",
            pc: PC
        })
    );
}

#[test]
fn a_second_fault_on_a_mapped_page_is_an_error_not_a_loop() {
    let mut vm = vm();
    let mut cpu = Scripted::new(&[
        npf(0x8000_0000, Access::Read),
        npf(0x8000_0004, Access::Read),
    ]);
    assert!(matches!(
        go(&mut vm, &mut cpu),
        Err(VmError::MapFailed {
            error: MapError::AlreadyMapped { gpa: at },
            ..
        }) if at == gpa(0x8000_0000)
    ));
}

#[test]
fn hypercalls_are_answered() {
    let mut vm = vm();
    let mut cpu = Scripted::new(&[
        Exit::Hypercall(Request::ConsolePutByte(b'h')),
        Exit::Hypercall(Request::Answer(7)),
        Exit::Hypercall(Request::Unsupported {
            id: 0x48534D,
            function: 0,
        }),
        Exit::Hypercall(Request::Refused {
            id: 0x53525354,
            function: 0,
        }),
        Exit::Hypercall(Request::Invalid {
            id: 0x53525354,
            function: 0,
        }),
        Exit::Hypercall(Request::Null),
        Exit::Hypercall(Request::ConsoleGetByte),
        Exit::Hypercall(Request::BadAddress {
            id: 0x52464E43,
            function: 1,
        }),
        Exit::Hypercall(Request::AlreadyAvailable {
            id: 0x48534D,
            function: 0,
        }),
        SHUTDOWN,
    ]);
    assert_eq!(go(&mut vm, &mut cpu), Ok(()));
    assert_eq!(
        cpu.replies,
        [
            Reply::Value(0),
            Reply::Value(7),
            Reply::NotSupported,
            Reply::NotSupported,
            Reply::InvalidParam,
            Reply::Value(0),
            Reply::Value(u64::MAX),
            Reply::InvalidAddress,
            Reply::AlreadyAvailable,
        ]
    );
    assert_eq!(vm.vm.console.lock().out, b"h");
    assert_eq!(vm.stats.exits(ExitKind::Hypercall), 10);
}

#[test]
fn console_write_reads_guest_ram() {
    let mut vm = vm();
    vm.vm
        .memory
        .lock()
        .space
        .map_backed(
            gpa(0x8020_0000),
            crate::layout::Backing::FreshRam,
            Perms::RWX,
        )
        .unwrap();
    vm.vm
        .memory
        .lock()
        .space
        .write(gpa(0x8020_0ff0), b"hello from the guest");
    let mut cpu = Scripted::new(&[
        Exit::Hypercall(Request::ConsoleWrite {
            gpa: gpa(0x8020_0ff0),
            len: 5,
        }),
        // Crosses into the unmapped next page: stops at the boundary.
        Exit::Hypercall(Request::ConsoleWrite {
            gpa: gpa(0x8020_0ff0),
            len: 20,
        }),
        // Not guest RAM at all.
        Exit::Hypercall(Request::ConsoleWrite {
            gpa: gpa(0x2200_0000),
            len: 4,
        }),
        Exit::Hypercall(Request::ConsoleWrite {
            gpa: gpa(u64::MAX - 1),
            len: 4,
        }),
        SHUTDOWN,
    ]);
    assert_eq!(go(&mut vm, &mut cpu), Ok(()));
    assert_eq!(
        cpu.replies,
        [
            Reply::Value(5),
            Reply::Value(16),
            Reply::InvalidAddress,
            Reply::InvalidParam
        ]
    );
    assert_eq!(vm.vm.console.lock().out, b"hellohello from the g");
}

#[test]
fn timer_exits_the_vcpu_handled_are_counted_with_their_injection() {
    let mut vm = vm();
    let own_timer = Exit::Handled(Handled::timer(false));
    let mut cpu = Scripted::new(&[own_timer, own_timer, SHUTDOWN]);
    assert_eq!(go(&mut vm, &mut cpu), Ok(()));
    assert_eq!(vm.stats.exits(ExitKind::Timer), 2);
    assert_eq!(vm.stats.injections(), (2, 0));
    assert!(cpu.lines.is_empty(), "nothing to sync without resync");
}

#[test]
fn guest_failure_and_unexpected_exits_fail_the_run() {
    let mut vm1 = vm();
    let mut cpu = Scripted::new(&[Exit::Hypercall(Request::Shutdown(ShutdownReason::Failure(
        1,
    )))]);
    assert_eq!(
        go(&mut vm1, &mut cpu),
        Err(VmError::GuestFailure { reason: 1, pc: PC })
    );
    let mut vm2 = vm();
    let u = Unexpected {
        what: "virtual instruction",
        code: 22,
        info: [0x1050_0073, 0],
    };
    let mut cpu = Scripted::new(&[Exit::Unexpected(u)]);
    let err = go(&mut vm2, &mut cpu).unwrap_err();
    assert_eq!(err, VmError::Unexpected { exit: u, pc: PC });
    assert!(
        err.to_string().contains("virtual instruction (code 0x16"),
        "{err}"
    );
    assert_eq!(vm2.stats.exits(ExitKind::Unexpected), 1);
}

#[test]
fn stopping_the_last_cpu_or_sleeping_is_a_failure_not_a_power_off() {
    let mut vm = vm();
    let mut cpu = Scripted::new(&[Exit::Hypercall(Request::CpuStop), SHUTDOWN]);
    let err = go(&mut vm, &mut cpu).unwrap_err();
    assert_eq!(err, VmError::AllCpusStopped { pc: PC });
    assert!(
        err.to_string()
            .starts_with("the guest stopped its last running CPU without powering off"),
        "{err}"
    );
    assert!(cpu.replies.is_empty(), "the call does not return");
    let mut vm = pc();
    let sleep = Exit::Hypercall(Request::Sleep { sleep_type: 1 });
    let mut cpu = Scripted::new(&[sleep, SHUTDOWN]);
    let err = go(&mut vm, &mut cpu).unwrap_err();
    assert_eq!(
        err,
        VmError::SleepRequested {
            sleep_type: 1,
            pc: PC
        }
    );
    assert!(err.to_string().contains("ACPI sleep type 1"), "{err}");
}

#[test]
fn a_reboot_request_ends_the_run_with_its_own_error() {
    let mut vm = vm();
    let mut cpu = Scripted::new(&[Exit::Hypercall(Request::Shutdown(ShutdownReason::Reboot {
        kind: RebootKind::Cold,
        reason: 0,
    }))]);
    let err = go(&mut vm, &mut cpu).unwrap_err();
    assert_eq!(
        err,
        VmError::RebootRequested {
            kind: RebootKind::Cold,
            reason: 0,
            pc: PC
        }
    );
    assert_eq!(
        err.to_string(),
        "the guest asked for a cold reboot (reason 0) at guest PC 0x80200004; this hypervisor runs its one guest once and does not reboot it"
    );
    assert!(cpu.replies.is_empty(), "the call does not return");
    let warm = VmError::RebootRequested {
        kind: RebootKind::Warm,
        reason: 1,
        pc: PC,
    };
    assert!(
        warm.to_string().contains("warm reboot (reason 1)"),
        "{warm}"
    );
}

#[test]
fn hart_local_requests_that_reach_the_loop_are_not_supported() {
    // A vCPU serves its own timer, IPIs and fences (riscv64:
    // `arch::riscv64::hart`); the loop has none to give.
    let mut vm = vm();
    let mut cpu = Scripted::new(&[
        Exit::Hypercall(Request::SetTimer { deadline: 5 }),
        Exit::Hypercall(Request::SelfIpi),
        Exit::Hypercall(Request::ClearIpi),
        Exit::Hypercall(Request::LocalFence(Fence::Instruction)),
        SHUTDOWN,
    ]);
    assert_eq!(go(&mut vm, &mut cpu), Ok(()));
    assert_eq!(cpu.replies, [Reply::NotSupported; 4]);
    assert_eq!(vm.stats.exits(ExitKind::Hypercall), 5);
}

#[test]
fn handled_exits_count_their_class_and_injected_exceptions() {
    let mut vm = vm();
    let mut cpu = Scripted::new(&[
        Exit::Handled(Handled::fault(ExitKind::SysReg)),
        Exit::Handled(Handled::quiet(ExitKind::Reflected, false)),
        Exit::Handled(Handled::quiet(ExitKind::Hypercall, false)),
        SHUTDOWN,
    ]);
    assert_eq!(go(&mut vm, &mut cpu), Ok(()));
    let s = &vm.stats;
    assert_eq!(
        (
            s.exits(ExitKind::SysReg),
            s.exits(ExitKind::Reflected),
            s.exits(ExitKind::Hypercall)
        ),
        (1, 1, 2)
    );
    assert_eq!(s.exceptions_injected(), 1);
}

#[test]
fn console_getchar_takes_input_devices_left_then_the_hosts() {
    let mut vm = vm();
    vm.vm.devices.lock().pending_input.extend(b"ab");
    vm.vm.console.lock().input = b"c".to_vec();
    let get = Exit::Hypercall(Request::ConsoleGetByte);
    let mut cpu = Scripted::new(&[get, get, get, get, SHUTDOWN]);
    assert_eq!(go(&mut vm, &mut cpu), Ok(()));
    assert_eq!(
        cpu.replies,
        [
            Reply::Value(u64::from(b'a')),
            Reply::Value(u64::from(b'b')),
            Reply::Value(u64::from(b'c')),
            Reply::Value(u64::MAX)
        ]
    );
}

#[test]
fn console_read_fills_guest_ram() {
    let mut vm = vm();
    vm.vm.devices.lock().pending_input.push_back(b'>');
    vm.vm.console.lock().input = b"typed text".to_vec();
    let read = |addr, len| {
        Exit::Hypercall(Request::ConsoleRead {
            gpa: gpa(addr),
            len,
        })
    };
    let mut cpu = Scripted::new(&[
        // An untouched page across a page boundary: both are mapped.
        read(0x8030_0ffe, 4),
        read(0x8030_2000, 100),
        read(0x8030_2000, 100),
        read(0x8030_2000, 0),
        read(0x2200_0000, 4),
        read(u64::MAX - 1, 4),
        SHUTDOWN,
    ]);
    assert_eq!(go(&mut vm, &mut cpu), Ok(()));
    assert_eq!(
        cpu.replies,
        [
            Reply::Value(4),
            Reply::Value(7),
            Reply::Value(0),
            Reply::Value(0),
            Reply::InvalidAddress,
            Reply::InvalidParam
        ]
    );
    let mut got = [0u8; 4];
    assert_eq!(
        vm.vm.memory.lock().space.read(gpa(0x8030_0ffe), &mut got),
        4
    );
    assert_eq!(&got, b">typ");
    let mut got = [0u8; 7];
    assert_eq!(
        vm.vm.memory.lock().space.read(gpa(0x8030_2000), &mut got),
        7
    );
    assert_eq!(&got, b"ed text");
    assert_eq!(vm.stats.pages(3), 3, "three RAM pages mapped for the reads");
    assert_eq!(
        vm.vm.memory.lock().space.translate(gpa(0x8030_3000)),
        None,
        "no more than the bytes read"
    );
}

#[test]
fn ram_faults_map_blocks_unless_the_limits_turn_them_off() {
    let blocks_on = Limits::default();
    assert!(blocks_on.ram_blocks, "on by default, as in a VM config");
    let blocks_off = Limits {
        ram_blocks: false,
        ..blocks_on
    };
    // (RAM blocks, RAM pages, pflash pages): the fault and the read's
    // buffer each take a RAM block or page; pflash always a page.
    for (limits, counts) in [(blocks_on, (2, 0, 1)), (blocks_off, (0, 2, 1))] {
        let mut vm = vm();
        vm.vm.memory.lock().space =
            AddressSpace::new(ArenaHost::new(4 * crate::stage2::BLOCK_PAGES)).unwrap();
        vm.vm.console.lock().input = b"x".to_vec();
        let mut cpu = Scripted::new(&[
            npf(0x8040_1008, Access::Write),
            npf(0x2200_0000, Access::Read),
            Exit::Hypercall(Request::ConsoleRead {
                gpa: gpa(0x8060_0000),
                len: 1,
            }),
            SHUTDOWN,
        ]);
        vm.vm.limits = limits;
        let run = go(&mut vm, &mut cpu);
        assert_eq!(run, Ok(()));
        assert_eq!(cpu.replies, [Reply::Value(1)]);
        let s = &vm.stats;
        assert_eq!((s.blocks(3), s.pages(3), s.pages(2)), counts, "{limits:?}");
        assert_eq!(
            vm.vm
                .memory
                .lock()
                .space
                .translate(gpa(0x805f_f000))
                .is_some(),
            limits.ram_blocks,
            "the rest of the faulting block"
        );
    }
}

/// SBI calls from decoding to the registers the guest finds: the
/// riscv64 decoder, this loop and the SBI encoder together.
#[test]
fn sbi_calls_round_trip() {
    use crate::arch::riscv64::sbi::{self, SbiReturn};
    const SPI: u64 = 0x73_5049;
    const RFNC: u64 = 0x5246_4E43;
    const HSM: u64 = 0x48_534D;
    const SRST: u64 = 0x5352_5354;
    // (The hart-local calls, timer, IPI to itself and fences, are the
    // vCPU's: `arch::riscv64::hart` tests their round trip. IPIs and
    // fences to other harts and HSM are the loop's SMP requests, not
    // here.)
    let calls: &[(u64, u64, [u64; 6], SbiReturn)] = &[
        // legacy console_getchar (no input)
        (2, 0, [0; 6], legacy(u64::MAX)),
        // IPI to hart 64, which no VM has
        (SPI, 0, [1, 64, 0, 0, 0, 0], sbi(-3i64 as u64, 0)),
        // RFENCE: hfence.gvma is not the guest's
        (RFNC, 4, [1, 0, 0, 0, 0, 0], sbi(-2i64 as u64, 0)),
        // HSM: a reserved suspend type, an unknown function
        (HSM, 3, [1, 0, 0, 0, 0, 0], sbi(-3i64 as u64, 0)),
        (HSM, 4, [0; 6], sbi(-2i64 as u64, 0)),
    ];
    let mut exits: Vec<Exit> = calls
        .iter()
        .map(|&(eid, fid, args, _)| Exit::Hypercall(sbi::decode(eid, fid, args)))
        .collect();
    exits.push(Exit::Hypercall(sbi::decode(SRST, 0, [1, 0, 0, 0, 0, 0])));
    let mut vm = vm();
    let mut cpu = Scripted::new(&exits);
    let err = go(&mut vm, &mut cpu).unwrap_err();
    assert!(
        matches!(
            err,
            VmError::RebootRequested {
                kind: RebootKind::Cold,
                reason: 0,
                ..
            }
        ),
        "{err}"
    );
    let got: Vec<SbiReturn> = calls
        .iter()
        .zip(&cpu.replies)
        .map(|(&(eid, ..), &reply)| sbi::encode(eid, reply))
        .collect();
    let want: Vec<SbiReturn> = calls.iter().map(|c| c.3).collect();
    assert_eq!(got, want);

    fn legacy(a0: u64) -> SbiReturn {
        SbiReturn { a0, a1: None }
    }
    fn sbi(a0: u64, a1: u64) -> SbiReturn {
        SbiReturn { a0, a1: Some(a1) }
    }
}
