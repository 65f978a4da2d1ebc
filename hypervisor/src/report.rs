//! What the hypervisor prints when the VM has stopped: the exit and memory
//! counters, the device accesses, and its own clock.

use crate::vm_setup::GuestVm;
use guestaspace_core::exit::{CpuPower, ExitKind};

/// The report of `vm`, whose guest ran from `entered_ns` to `ended_ns` on
/// the hypervisor's clock.
pub fn print(vm: &GuestVm, entered_ns: u64, ended_ns: u64) {
    println!("{}", vm.stats().report(&vm.memory.lock().layout()));
    if vm.cpus.count() > 1 {
        for cpu in 0..vm.cpus.count() {
            let stats = vm.cpus.stats(cpu);
            println!(
                "vCPU {cpu}: {} exits ({} hypercalls, {} kicks), ended {}",
                stats.total_exits(),
                stats.exits(ExitKind::Hypercall),
                stats.exits(ExitKind::Kick),
                match vm.cpus.power(cpu) {
                    CpuPower::Off => "off",
                    CpuPower::OnPending => "starting",
                    CpuPower::On | CpuPower::Suspended => "on",
                }
            );
        }
    }
    print!("Device accesses:");
    let mut any = false;
    let devices = vm.devices.lock();
    for (name, count) in devices.access_counts() {
        print!("{} {name} {count}", if any { "," } else { "" });
        any = true;
    }
    println!("{}", if any { "" } else { " none" });
    // The counter starts with the machine, so the first figure covers the
    // firmware and the hypervisor's own boot.
    println!(
        "Hypervisor clock: machine start to guest entry {} us, guest run {} us",
        entered_ns / 1000,
        (ended_ns - entered_ns) / 1000
    );
}
