//! Powering off QEMU `virt` with an exit status. Success uses the
//! platform's own power-off (PSCI SYSTEM_OFF over SMC: QEMU exits 0);
//! failure uses Arm semihosting's SYS_EXIT with a non-zero code, which
//! QEMU (started with `-semihosting`) turns into its exit status.

use crate::arch::{Outcome, platform_power_off};

/// Semihosting operation SYS_EXIT and the "application exit" reason.
const SYS_EXIT: u64 = 0x18;
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x2_0026;
/// QEMU's exit status for a failed run.
const FAILURE_STATUS: u64 = 1;

pub fn power_off(outcome: Outcome) -> ! {
    match outcome {
        Outcome::Success => platform_power_off(),
        Outcome::Failure => {
            let block = [ADP_STOPPED_APPLICATION_EXIT, FAILURE_STATUS];
            // SAFETY: the semihosting call reads the two-word block and
            // ends QEMU; without -semihosting it is an undefined
            // instruction, and the loop below hangs rather than report
            // success.
            unsafe {
                core::arch::asm!("hlt #0xf000", in("x0") SYS_EXIT, in("x1") block.as_ptr(), options(nostack))
            };
            loop {
                core::hint::spin_loop();
            }
        }
    }
}
