//! The host side of SMP guests: each vCPU runs on a host CPU of its own,
//! as an ArceOS task pinned there. vCPU 0 runs on the boot CPU in the
//! main task; vCPU `i` on host CPU `i`, where it is made (its registers
//! are that CPU's) after the CPU's own hypervisor set-up. The run ends
//! when every vCPU's has: the first one to end the VM tells the others
//! (`guestaspace_core::vm::Cpus::end`), which leave their guest at once.
//!
//! The secondary CPUs' tasks start first thing ([`park`]) and wait for the
//! VM in a halt (`Vcpu::idle`, woken by a kick): an ArceOS CPU with no
//! task of its own spins in its idle loop, which on QEMU takes the host
//! threads the boot CPU needs to load the guest.

use crate::arch::{Arch, Current};
use crate::error::HvError;
use crate::vm_setup::{Built, GuestVm};
use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;
use axtask::{AxCpuMask, AxTaskRef, TaskInner};
use guestaspace_core::addr::HostPhysAddr;
use guestaspace_core::vcpu::Vcpu;
use guestaspace_core::vm::VcpuSlot;
use spin::Once;

/// Stack of a vCPU's host task.
const VCPU_STACK_SIZE: usize = 256 * 1024;

/// The host CPUs the hypervisor was built for (QEMU's `-smp`).
pub const HOST_CPUS: usize = axconfig::plat::CPU_NUM;

/// What the parked secondary CPUs wait for: the VM to run and the root of
/// its stage-2 tables, or `None` when there is no VM (it failed to build).
static VM: Once<Option<(Arc<GuestVm>, HostPhysAddr)>> = Once::new();

/// The secondary CPUs' tasks, parked until [`run`] or [`release`].
pub struct Parked {
    tasks: Vec<AxTaskRef>,
}

/// Moves the calling (main) task to host CPU 0, where vCPU 0 runs: vCPU
/// `i` runs on host CPU `i`, whichever CPU the firmware booted (OpenSBI
/// picks its boot hart by lottery). Call first, before any per-CPU
/// set-up.
pub fn pin_to_cpu0() {
    axtask::set_current_affinity(AxCpuMask::one_shot(0));
}

/// Starts a task on every host CPU but 0: it sets the CPU up for guests
/// and waits for the VM.
pub fn park() -> Parked {
    // None in a one-CPU build.
    let tasks = (0..HOST_CPUS)
        .skip(1)
        .map(|cpu| {
            let task = TaskInner::new(
                move || secondary(cpu),
                format!("vcpu{cpu}"),
                VCPU_STACK_SIZE,
            );
            task.set_cpumask(AxCpuMask::one_shot(cpu));
            axtask::spawn_task(task)
        })
        .collect();
    Parked { tasks }
}

/// Refuses a VM with more vCPUs than there are host CPUs to pin them to.
pub fn check_cpus(cpus: usize) -> Result<(), HvError> {
    if cpus > HOST_CPUS {
        return Err(HvError::Boot(format!(
            "the VM has {cpus} vCPUs and the hypervisor runs on {HOST_CPUS} host CPUs: \
             each vCPU needs its own (run QEMU with -smp {cpus}; `cargo xtask` does)"
        )));
    }
    Current::check_smp(cpus)
}

/// Sends the parked CPUs home: there is no VM.
pub fn release(parked: Parked) {
    VM.call_once(|| None);
    kick_all();
    for task in parked.tasks {
        task.join();
    }
}

/// Runs every vCPU of `built` until the VM ends; answers the VM.
pub fn run(parked: Parked, built: Built) -> Arc<GuestVm> {
    let Built {
        vm,
        mut vcpu0,
        stage2_root,
    } = built;
    let vm = Arc::new(vm);
    VM.call_once(|| Some((vm.clone(), stage2_root)));
    kick_all();
    let _ = vm.run_vcpu(&mut vcpu0);
    for task in parked.tasks {
        task.join();
    }
    vm
}

/// Wakes every parked CPU.
fn kick_all() {
    for cpu in (0..HOST_CPUS).skip(1) {
        <Current as Arch>::Vcpu::kick(cpu);
    }
}

/// The task of secondary host CPU `cpu`: its set-up, the wait for the
/// VM, then vCPU `cpu`'s run if the VM has that many.
fn secondary(cpu: usize) {
    let setup = Current::init_cpu();
    let vm = loop {
        if let Some(vm) = VM.get() {
            break vm;
        }
        <Current as Arch>::Vcpu::idle();
    };
    let Some((vm, stage2_root)) = vm else {
        return;
    };
    if cpu >= vm.cpus.count() {
        return;
    }
    if let Err(e) = setup {
        // The boot CPU passed the same set-up; a secondary that does not
        // is reported, and the VM goes on without this vCPU (a start of it
        // is never answered).
        println!("vCPU {cpu}: host CPU {cpu} cannot run a guest: {e}");
        return;
    }
    let wiring = Current::BOARD.cpu_wiring(cpu);
    let vcpu = Current::new_secondary_vcpu(cpu, *stage2_root, wiring);
    let mut slot = VcpuSlot::new(cpu, vcpu);
    let _ = vm.run_vcpu(&mut slot);
}
