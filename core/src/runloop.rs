//! The run loop: enter the guest, decode why it left, act, repeat.
//!
//! This is the whole policy of the hypervisor and it knows nothing of the
//! architecture: a [`Vcpu`] runs the guest and says why it stopped, the
//! [`AddressSpace`] holds the stage-2 tables, the [`GuestLayout`] says what
//! each guest-physical address is. The loop ends when the guest asks to
//! power off (`Ok`) or on anything it cannot handle (`Err`, with a
//! diagnostic naming the address, the access and the guest PC).

use crate::addr::{GuestPhysAddr, GuestVirtAddr};
use crate::exit::{Access, Exit, Reply, Request, ShutdownReason, Unexpected, immediate_reply};
use crate::layout::GuestLayout;
use crate::stage2::{AddressSpace, Format, Host, MapError};
use crate::stats::Stats;

/// One virtual CPU, as the run loop drives it.
pub trait Vcpu {
    /// Enters the guest and returns when it exits.
    fn run(&mut self) -> Exit;
    /// The guest program counter (for diagnostics).
    fn pc(&self) -> GuestVirtAddr;
    /// Returns `reply` to the guest's pending hypercall and steps past it.
    fn finish_hypercall(&mut self, reply: Reply);
    /// Arms the guest timer for `deadline` (`u64::MAX` disarms) and
    /// withdraws a timer interrupt already delivered.
    fn set_timer(&mut self, deadline: u64);
    /// Delivers the guest's timer interrupt.
    fn deliver_timer(&mut self);
}

/// Where guest console output goes.
pub trait Console {
    fn write(&mut self, bytes: &[u8]);
}

/// Why the VM was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmError {
    /// The guest touched an address outside every declared region.
    WildAccess {
        gpa: GuestPhysAddr,
        access: Access,
        pc: GuestVirtAddr,
    },
    /// The guest accessed a declared region in a way it does not allow.
    Forbidden {
        gpa: GuestPhysAddr,
        access: Access,
        region: &'static str,
        pc: GuestVirtAddr,
    },
    /// Mapping the page failed.
    MapFailed {
        gpa: GuestPhysAddr,
        error: MapError,
        pc: GuestVirtAddr,
    },
    /// An exit the hypervisor does not handle.
    Unexpected { exit: Unexpected, pc: GuestVirtAddr },
    /// The guest asked to power off because it failed.
    GuestFailure { reason: u64, pc: GuestVirtAddr },
}

impl core::fmt::Display for VmError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            VmError::WildAccess { gpa, access, pc } => write!(
                f,
                "guest {access} at guest-physical address {gpa:#x}, which is outside every region the hypervisor declared (guest PC {pc:#x})"
            ),
            VmError::Forbidden {
                gpa,
                access,
                region,
                pc,
            } => write!(
                f,
                "guest {access} at guest-physical address {gpa:#x} is not allowed in region `{region}` (guest PC {pc:#x})"
            ),
            VmError::MapFailed { gpa, error, pc } => {
                write!(
                    f,
                    "cannot map guest-physical address {gpa:#x}: {error} (guest PC {pc:#x})"
                )
            }
            VmError::Unexpected { exit, pc } => write!(
                f,
                "unexpected VM exit: {} (code {:#x}, info {:#x} {:#x}) at guest PC {pc:#x}",
                exit.what, exit.code, exit.info[0], exit.info[1]
            ),
            VmError::GuestFailure { reason, pc } => {
                write!(
                    f,
                    "the guest asked to power off because it failed (reason {reason}) at guest PC {pc:#x}"
                )
            }
        }
    }
}

/// Serves nested page faults: maps the page as the layout says.
pub fn handle_page_fault<F: Format, H: Host>(
    space: &mut AddressSpace<F, H>,
    layout: &GuestLayout,
    stats: &mut Stats,
    gpa: GuestPhysAddr,
    access: Access,
    pc: GuestVirtAddr,
) -> Result<(), VmError> {
    let (index, region) = layout
        .regions
        .iter()
        .enumerate()
        .find(|(_, r)| r.contains(gpa))
        .ok_or(VmError::WildAccess { gpa, access, pc })?;
    if !region.perms.allows(access) {
        return Err(VmError::Forbidden {
            gpa,
            access,
            region: region.name,
            pc,
        });
    }
    space
        .map_backed(gpa.page_base(), region.backing_for(gpa), region.perms)
        .map_err(|error| VmError::MapFailed { gpa, error, pc })?;
    stats.count_page(index);
    Ok(())
}

/// Runs the guest until it powers off or fails.
pub fn run<V: Vcpu, F: Format, H: Host, C: Console>(
    vcpu: &mut V,
    space: &mut AddressSpace<F, H>,
    layout: &GuestLayout,
    console: &mut C,
    stats: &mut Stats,
) -> Result<(), VmError> {
    loop {
        let exit = vcpu.run();
        stats.count_exit(exit.kind());
        match exit {
            Exit::NestedPageFault { gpa, access } => {
                handle_page_fault(space, layout, stats, gpa, access, vcpu.pc())?;
            }
            Exit::Hypercall(req) => {
                let reply = match req {
                    Request::Shutdown(ShutdownReason::Normal) => return Ok(()),
                    Request::Shutdown(ShutdownReason::Failure(reason)) => {
                        return Err(VmError::GuestFailure {
                            reason,
                            pc: vcpu.pc(),
                        });
                    }
                    Request::ConsolePutByte(b) => {
                        console.write(&[b]);
                        Reply::Value(0)
                    }
                    Request::ConsoleWrite { gpa, len } => {
                        console_write(space, layout, console, gpa, len)
                    }
                    Request::ConsoleRead => Reply::Value(0),
                    Request::SetTimer { deadline } => {
                        vcpu.set_timer(deadline);
                        Reply::Value(0)
                    }
                    Request::Null => Reply::Value(0),
                    other => {
                        immediate_reply(&other).expect("every other request has an immediate reply")
                    }
                };
                vcpu.finish_hypercall(reply);
            }
            Exit::TimerExpired => vcpu.deliver_timer(),
            Exit::Unexpected(exit) => {
                return Err(VmError::Unexpected {
                    exit,
                    pc: vcpu.pc(),
                });
            }
        }
    }
}

/// Prints `len` bytes of guest RAM at `gpa`; answers how many were printed.
/// Only guest RAM may be named, and only the part the guest has touched
/// (an untouched page cannot hold anything the guest wrote).
fn console_write<F: Format, H: Host, C: Console>(
    space: &AddressSpace<F, H>,
    layout: &GuestLayout,
    console: &mut C,
    gpa: GuestPhysAddr,
    len: u64,
) -> Reply {
    let Some(ram) = layout.ram() else {
        return Reply::InvalidAddress;
    };
    let Some(end) = gpa.checked_add(len) else {
        return Reply::InvalidParam;
    };
    if !ram.contains(gpa) || end > ram.end() {
        return Reply::InvalidAddress;
    }
    let mut buf = [0u8; 128];
    let mut done = 0u64;
    while done < len {
        let n = ((len - done) as usize).min(buf.len());
        let got = space.read(gpa + done, &mut buf[..n]);
        console.write(&buf[..got]);
        done += got as u64;
        if got < n {
            break;
        }
    }
    Reply::Value(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::ExitKind;
    use crate::layout::Perms;
    use crate::layout::machines::RISCV64_VIRT;
    use crate::stage2::Sv39x4;
    use crate::stage2::test_host::{ArenaHost, gpa, hpa};
    use std::collections::VecDeque;
    use std::vec::Vec;

    /// A vCPU that replays a script of exits and records what it was told.
    #[derive(Default)]
    struct Scripted {
        exits: VecDeque<Exit>,
        replies: Vec<Reply>,
        timers: Vec<u64>,
        delivered: usize,
        pc: GuestVirtAddr,
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
            self.exits
                .pop_front()
                .expect("the script ran out: the loop did not stop")
        }
        fn pc(&self) -> GuestVirtAddr {
            self.pc
        }
        fn finish_hypercall(&mut self, reply: Reply) {
            self.replies.push(reply);
        }
        fn set_timer(&mut self, deadline: u64) {
            self.timers.push(deadline);
        }
        fn deliver_timer(&mut self) {
            self.delivered += 1;
        }
    }

    #[derive(Default)]
    struct Captured(Vec<u8>);
    impl Console for Captured {
        fn write(&mut self, bytes: &[u8]) {
            self.0.extend_from_slice(bytes);
        }
    }

    struct Vm {
        space: AddressSpace<Sv39x4, ArenaHost>,
        console: Captured,
        stats: Stats,
    }

    fn vm() -> Vm {
        Vm {
            space: AddressSpace::new(ArenaHost::new(64)).unwrap(),
            console: Captured::default(),
            stats: Stats::default(),
        }
    }

    fn go(vm: &mut Vm, cpu: &mut Scripted) -> Result<(), VmError> {
        run(
            cpu,
            &mut vm.space,
            &RISCV64_VIRT,
            &mut vm.console,
            &mut vm.stats,
        )
    }

    const SHUTDOWN: Exit = Exit::Hypercall(Request::Shutdown(ShutdownReason::Normal));

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
            npf(0x1000_0005, Access::Write),
            SHUTDOWN,
        ]);
        assert_eq!(go(&mut vm, &mut cpu), Ok(()));
        assert!(vm.space.translate(gpa(0x8020_1000)).is_some());
        assert_eq!(
            vm.space.translate(gpa(0x2200_0000)),
            Some((hpa(0x2200_0000), Perms::READ))
        );
        assert_eq!(
            vm.space.translate(gpa(0x1000_0000)),
            Some((hpa(0x1000_0000), Perms::RW))
        );
        assert_eq!(vm.stats.exits(ExitKind::NestedPageFault), 3);
        assert_eq!(vm.stats.exits(ExitKind::Hypercall), 1);
        assert_eq!(
            (vm.stats.pages(0), vm.stats.pages(1), vm.stats.pages(2)),
            (1, 1, 1)
        );
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
            vm.space.mapped_pages(),
            0,
            "nothing was mapped for the wild access"
        );
    }

    #[test]
    fn host_ram_beyond_guest_ram_is_never_mapped() {
        // 0x8100_0000 is host RAM on the real machine but not the guest's.
        let mut vm = vm();
        let mut cpu = Scripted::new(&[npf(0x8100_0000, Access::Read)]);
        assert!(matches!(
            go(&mut vm, &mut cpu),
            Err(VmError::WildAccess { gpa: at, .. }) if at == gpa(0x8100_0000)
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
            Exit::Hypercall(Request::ConsoleRead),
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
                Reply::Value(0)
            ]
        );
        assert_eq!(vm.console.0, b"h");
        assert_eq!(vm.stats.exits(ExitKind::Hypercall), 8);
    }

    #[test]
    fn console_write_reads_guest_ram() {
        let mut vm = vm();
        vm.space
            .map_backed(
                gpa(0x8020_0000),
                crate::layout::Backing::FreshRam,
                Perms::RWX,
            )
            .unwrap();
        vm.space.write(gpa(0x8020_0ff0), b"hello from the guest");
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
        assert_eq!(vm.console.0, b"hellohello from the g");
    }

    #[test]
    fn timer_is_armed_and_delivered() {
        let mut vm = vm();
        let mut cpu = Scripted::new(&[
            Exit::Hypercall(Request::SetTimer { deadline: 1000 }),
            Exit::TimerExpired,
            Exit::Hypercall(Request::SetTimer { deadline: u64::MAX }),
            SHUTDOWN,
        ]);
        assert_eq!(go(&mut vm, &mut cpu), Ok(()));
        assert_eq!(cpu.timers, [1000, u64::MAX]);
        assert_eq!(cpu.delivered, 1);
        assert_eq!(vm.stats.exits(ExitKind::Timer), 1);
    }

    #[test]
    fn guest_failure_and_unexpected_exits_fail_the_run() {
        let mut vm1 = vm();
        let mut cpu = Scripted::new(&[Exit::Hypercall(Request::Shutdown(
            ShutdownReason::Failure(1),
        ))]);
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
}
