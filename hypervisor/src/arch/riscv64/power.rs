//! Powering off QEMU `virt` with an exit status. Success uses the
//! platform's own power-off (SBI SRST, which OpenSBI carries out by writing
//! the pass value to the SiFive test device: QEMU exits 0). Failure writes
//! `code << 16 | 0x3333` to that device ("sifive,test0" at 0x10_0000)
//! itself, and QEMU exits with status `code`: SRST cannot carry it, OpenSBI
//! writes the pass value whatever reset reason it is given.

use crate::arch::{Outcome, platform_power_off};
use axhal::mem::{PhysAddr, phys_to_virt};

const TEST_DEVICE: usize = 0x10_0000;
const FINISHER_FAIL: u32 = 0x3333;
/// QEMU's exit status for a failed run.
const FAILURE_STATUS: u32 = 1;

pub fn power_off(outcome: Outcome) -> ! {
    if outcome == Outcome::Success {
        platform_power_off();
    }
    let value = FAILURE_STATUS << 16 | FINISHER_FAIL;
    let reg = phys_to_virt(PhysAddr::from(TEST_DEVICE))
        .as_mut_ptr()
        .cast::<u32>();
    // SAFETY: the test device is in the hypervisor's MMIO ranges
    // (configs/riscv64-hypervisor.toml), so it is mapped at this address.
    unsafe { reg.write_volatile(value) };
    loop {
        core::hint::spin_loop();
    }
}
