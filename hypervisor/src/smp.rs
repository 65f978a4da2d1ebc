//! The host side of SMP guests: each vCPU runs on a host CPU of its own,
//! as an ArceOS task pinned there. vCPU 0 runs on the boot CPU in the
//! main task; vCPU `i` on host CPU `i`, where it is made (its registers
//! are that CPU's) after the CPU's own hypervisor set-up. The run ends
//! when every vCPU's has: the first one to end the VM tells the others
//! (`guestaspace_core::vm::Cpus::end`), which leave their guest at once.

use crate::arch::{Arch, Current};
use crate::error::HvError;
use crate::vm_setup::{Built, GuestVm};
use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;
use axtask::{AxCpuMask, TaskInner};
use guestaspace_core::addr::HostPhysAddr;
use guestaspace_core::vm::VcpuSlot;

/// Stack of a vCPU's host task.
const VCPU_STACK_SIZE: usize = 256 * 1024;

/// The host CPUs the hypervisor was built for (QEMU's `-smp`).
pub const HOST_CPUS: usize = axconfig::plat::CPU_NUM;

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

/// Runs every vCPU of `built` until the VM ends; answers the VM.
pub fn run(built: Built) -> Arc<GuestVm> {
    let Built {
        vm,
        mut vcpu0,
        stage2_root,
    } = built;
    let vm = Arc::new(vm);
    axtask::set_current_affinity(AxCpuMask::one_shot(0));
    let tasks: Vec<_> = (1..vm.cpus.count())
        .map(|cpu| {
            let vm = vm.clone();
            let task = TaskInner::new(
                move || run_secondary(&vm, cpu, stage2_root),
                format!("vcpu{cpu}"),
                VCPU_STACK_SIZE,
            );
            task.set_cpumask(AxCpuMask::one_shot(cpu));
            axtask::spawn_task(task)
        })
        .collect();
    let _ = vm.run_vcpu(&mut vcpu0);
    for task in tasks {
        task.join();
    }
    vm
}

/// vCPU `cpu`'s task, on host CPU `cpu`.
fn run_secondary(vm: &GuestVm, cpu: usize, stage2_root: HostPhysAddr) {
    if let Err(e) = Current::init_cpu() {
        // The boot CPU passed the same set-up; a secondary that does not
        // is reported, and the VM goes on without this vCPU.
        println!("vCPU {cpu}: host CPU {cpu} cannot run a guest: {e}");
        return;
    }
    let wiring = Current::BOARD.cpu_wiring(cpu);
    let mut slot = VcpuSlot::new(cpu, Current::new_secondary_vcpu(cpu, stage2_root, wiring));
    let _ = vm.run_vcpu(&mut slot);
}
