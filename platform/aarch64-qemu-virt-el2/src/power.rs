//! Power: PSCI SYSTEM_OFF (over SMC, see `init`), which ends QEMU with
//! status 0.

use axplat::power::PowerIf;

struct PowerImpl;

#[impl_plat_interface]
impl PowerIf for PowerImpl {
    /// Starts CPU `cpu_id` (its MPIDR Aff0 on QEMU `virt`) at
    /// `_start_secondary` with its stack top in `x0` (PSCI CPU_ON's
    /// context id).
    fn cpu_boot(cpu_id: usize, stack_top_paddr: usize) {
        use axplat::mem::{va, virt_to_phys};
        let entry = virt_to_phys(va!(crate::boot::_start_secondary as *const () as usize));
        axplat_aarch64_peripherals::psci::cpu_on(cpu_id, entry.as_usize(), stack_top_paddr);
    }

    fn system_off() -> ! {
        axplat_aarch64_peripherals::psci::system_off()
    }
}
