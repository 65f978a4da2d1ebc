//! arceos-guestaspace: a hypervisor that is an ArceOS application.
//!
//! It builds the guest's VM from this architecture's board and the VM's
//! config on the FAT32 disk, `/etc/vm.toml` ([`vm_setup`]: address map,
//! the kernel the config names loaded into guest RAM, devices, vCPU), runs its vCPU in the run loop of
//! `guestaspace_core`, mapping guest memory (2 MiB blocks of RAM where they
//! fit, else 4 KiB pages) as nested page faults ask for it, until the
//! guest requests shutdown, and reports ([`report`]). Everything here is
//! architecture-neutral; the architecture lives behind [`arch::Arch`].
#![no_std]
#![no_main]

#[macro_use]
extern crate axstd;
extern crate alloc;

mod arch;
mod boot_inputs;
mod console;
mod disk;
mod error;
mod guest_image;
mod host_memory;
mod linux_boot;
mod report;
mod smp;
mod vm_config;
mod vm_setup;

use arch::{Arch, Current, Outcome};
use error::HvError;

#[unsafe(no_mangle)]
fn main() {
    match run() {
        Ok(()) => Current::power_off(Outcome::Success),
        Err(e) => {
            println!("error: {e}");
            Current::power_off(Outcome::Failure)
        }
    }
}

fn run() -> Result<(), HvError> {
    println!("arceos-guestaspace: {}", Current::DESCRIPTION);
    smp::pin_to_cpu0();
    Current::init_hardware().map_err(HvError::Hardware)?;
    let parked = smp::park();
    let built = match vm_setup::build() {
        Ok(built) => built,
        Err(e) => {
            smp::release(parked);
            return Err(e);
        }
    };
    println!("Entering VM run loop...");
    let entered_ns = axhal::time::monotonic_time_nanos();
    let vm = smp::run(parked, built);
    let ended_ns = axhal::time::monotonic_time_nanos();
    // Whatever the guest sent last reaches the console before the verdict.
    vm.devices.lock().service(&mut *vm.console.lock());
    let (cpu, result) = vm
        .ending()
        .expect("every vCPU's run ends with the VM's ending");
    if result.is_ok() {
        println!("Shutdown vm normally!");
    }
    report::print(&vm, entered_ns, ended_ns);
    result.map_err(|error| HvError::Vm {
        error,
        cpu: (vm.cpus.count() > 1).then_some(cpu),
    })?;
    println!("Hypervisor ok!");
    Ok(())
}
