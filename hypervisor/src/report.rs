//! What the hypervisor prints when the VM has stopped: the exit and memory
//! counters, the device accesses, and its own clock.

use crate::vm_setup::GuestVm;

/// The report of `vm`, whose guest ran from `entered_ns` to `ended_ns` on
/// the hypervisor's clock.
pub fn print(vm: &GuestVm, entered_ns: u64, ended_ns: u64) {
    println!("{}", vm.stats().report(&vm.memory.layout()));
    print!("Device accesses:");
    let mut any = false;
    for (name, count) in vm.devices.access_counts() {
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
