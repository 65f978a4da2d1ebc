//! The floor: the smallest ArceOS kernel for a machine model. It prints one
//! line and returns, and ArceOS powers the machine off. `cargo xtask bench`
//! boots it in the same QEMU machine as the hypervisor, to tell QEMU's and
//! ArceOS's own start-up time apart from the hypervisor's.
#![no_std]
#![no_main]

#[macro_use]
extern crate axstd;

#[cfg(target_arch = "aarch64")]
extern crate axplat_aarch64_qemu_virt_el2;

#[unsafe(no_mangle)]
fn main() {
    println!("floor: hello from a bare ArceOS kernel");
}
