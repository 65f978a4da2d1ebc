//! Powering off QEMU `virt` with an exit status, through its SiFive test
//! device ("sifive,test0" at 0x10_0000): writing `0x5555` exits QEMU with
//! status 0, writing `code << 16 | 0x3333` exits with status `code`.
//!
//! SBI SRST cannot do this: OpenSBI powers `virt` off with the pass value
//! whatever reset reason it is given.

use crate::arch::Outcome;
use axhal::mem::{PhysAddr, phys_to_virt};

const TEST_DEVICE: usize = 0x10_0000;
const FINISHER_PASS: u32 = 0x5555;
const FINISHER_FAIL: u32 = 0x3333;
/// QEMU's exit status for a failed run.
const FAILURE_STATUS: u32 = 1;

pub fn power_off(outcome: Outcome) -> ! {
    let value = match outcome {
        Outcome::Success => FINISHER_PASS,
        Outcome::Failure => FAILURE_STATUS << 16 | FINISHER_FAIL,
    };
    let reg = phys_to_virt(PhysAddr::from(TEST_DEVICE)).as_mut_ptr().cast::<u32>();
    // SAFETY: the test device is in the hypervisor's MMIO ranges
    // (configs/riscv64-hypervisor.toml), so it is mapped at this address.
    unsafe { reg.write_volatile(value) };
    loop {
        core::hint::spin_loop();
    }
}
