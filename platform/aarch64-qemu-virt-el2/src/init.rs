//! Platform initialisation: trap vectors, the PL011 console, PSCI over
//! SMC and the generic timer. No interrupt controller: the hypervisor runs
//! without host interrupts.

use crate::config::devices::UART_PADDR;
use axplat::init::InitIf;
use axplat::mem::{pa, phys_to_virt};

struct InitIfImpl;

#[impl_plat_interface]
impl InitIf for InitIfImpl {
    fn init_early(_cpu_id: usize, _dtb: usize) {
        axcpu::init::init_trap();
        axplat_aarch64_peripherals::pl011::init_early(phys_to_virt(pa!(UART_PADDR)));
        axplat_aarch64_peripherals::psci::init("smc");
        axplat_aarch64_peripherals::generic_timer::init_early();
    }

    fn init_early_secondary(_cpu_id: usize) {
        axcpu::init::init_trap();
    }

    fn init_later(_cpu_id: usize, _dtb: usize) {}

    /// The hypervisor sets up each CPU's GIC interface itself
    /// ([`crate::gic::init_secondary`]).
    fn init_later_secondary(_cpu_id: usize) {}
}
