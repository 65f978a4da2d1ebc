//! Power: PSCI SYSTEM_OFF (over SMC, see `init`), which ends QEMU with
//! status 0.

use axplat::power::PowerIf;

struct PowerImpl;

#[impl_plat_interface]
impl PowerIf for PowerImpl {
    fn system_off() -> ! {
        axplat_aarch64_peripherals::psci::system_off()
    }
}
