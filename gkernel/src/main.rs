//! gkernel: the guest the hypervisor boots.
//!
//! A real ArceOS kernel (the banner and `arch`/`platform`/`smp` lines come
//! from ArceOS itself) that reads the first word of the pflash device
//! through its own page tables. The hypervisor has not mapped that page in
//! stage-2, so the read exits to it as a nested page fault; once mapped,
//! the read completes and returns the magic `pfld`. Then the guest asks to
//! be powered off. A word after the magic can ask for a misbehaving run
//! (see `guestaspace_core::scenario`), for the hypervisor's tests.
#![no_std]
#![no_main]

#[macro_use]
extern crate axstd;
extern crate alloc;

mod arch;
mod bench;
mod rx_ring;
#[cfg(not(target_arch = "x86_64"))]
mod smp;
// An x86_64 VM has one vCPU: its `smp` only refuses the scenarios.
#[cfg(target_arch = "x86_64")]
use arch::smp;

use axhal::mem::{PhysAddr, phys_to_virt};
use guestaspace_core::scenario::{
    BENCH_HYPERCALLS_OFFSET, BENCH_PAGES_OFFSET, SCENARIO_OFFSET, Scenario,
};

#[unsafe(no_mangle)]
fn main() {
    arch::report_cpu();
    arch::touch_pflash_by_cache_maintenance();
    println!("Reading PFlash at physical address {:#X}...", arch::PFLASH);
    let base = phys_to_virt(PhysAddr::from(arch::PFLASH));
    let word = |offset: usize| {
        // SAFETY: the first pflash page is in this kernel's MMIO ranges, so
        // it is mapped at `base`; the device is readable as 32-bit words.
        unsafe { base.as_ptr().add(offset).cast::<u32>().read_volatile() }
    };
    let magic = word(0);
    println!(
        "Try to access pflash dev region [{:#X}], got {:#X}",
        base.as_usize(),
        magic
    );
    match core::str::from_utf8(&magic.to_le_bytes()) {
        Ok(text) => println!("Got pflash magic: {text}"),
        Err(_) => println!("Got pflash magic: (not text) {:02x?}", magic.to_le_bytes()),
    }

    let waited = arch::timer_round_trip();
    println!(
        "Guest timer interrupt arrived after {waited} ticks (armed for {})",
        arch::timer_delay()
    );

    // The scenario comes from pflash, or, where the machine's pflash is an
    // emulated page holding only the magic (x86_64), from the build.
    let built_in = option_env!("GKERNEL_SCENARIO").and_then(Scenario::from_name);
    match built_in.unwrap_or_else(|| Scenario::from_code(word(SCENARIO_OFFSET))) {
        Scenario::Normal => {}
        Scenario::WildAccess => {
            println!("Scenario wild-access: reading {:#X}", arch::UNDECLARED);
            read_undeclared(arch::UNDECLARED);
        }
        Scenario::Bench if built_in.is_some() => bench::run(
            guestaspace_core::scenario::BENCH_HYPERCALLS,
            guestaspace_core::scenario::BENCH_PAGES,
        ),
        Scenario::Bench => bench::run(word(BENCH_HYPERCALLS_OFFSET), word(BENCH_PAGES_OFFSET)),
        Scenario::PflashWrite => {
            println!(
                "Scenario pflash-write: writing to pflash at {:#X}",
                arch::PFLASH
            );
            // SAFETY: mapped as above; the hypervisor is expected to stop
            // the VM on this write, since pflash is read-only.
            unsafe { base.as_mut_ptr().cast::<u32>().write_volatile(0) };
            println!("Wrote to pflash: the hypervisor let it through!");
        }
        Scenario::BadConsolePointer => {
            let answer = arch::console_write_answer(arch::OUTSIDE_RAM as u64, 16);
            println!(
                "Console write from {:#X} answered {answer}",
                arch::OUTSIDE_RAM
            );
        }
        Scenario::Echo => {
            println!("Type a line:");
            let mut line = [0u8; 64];
            let (len, interrupts) = arch::uart::read_line(&mut line);
            let text = core::str::from_utf8(&line[..len]).unwrap_or("(not UTF-8)");
            println!("Echo: {text} ({interrupts} {})", arch::uart::COUNTED);
        }
        Scenario::DlabWildAccess => arch::dlab_wild_access(),
        Scenario::Crash => panic!("scenario crash: the guest kernel panics on purpose"),
        Scenario::Smc => arch::smc_scenario(),
        Scenario::UnknownMsr => arch::unknown_msr_scenario(),
        Scenario::SvmInstruction => arch::svm_instruction_scenario(),
        Scenario::UserVmmcall => arch::user_vmmcall_scenario(),
        Scenario::CpuStop => arch::cpu_stop_scenario(),
        Scenario::AcpiSleep => arch::acpi_sleep_scenario(),
        Scenario::Smp => smp::scenario(false),
        Scenario::SmpFault => smp::scenario(true),
        Scenario::NeverShutdown => {
            println!("Scenario never-shutdown: spinning forever");
            loop {
                core::hint::spin_loop();
            }
        }
    }
    arch::power_off(true)
}

/// Reads the word at `addr`, an address this kernel maps (its MMIO ranges)
/// but the hypervisor never declared: the hypervisor must stop the VM.
fn read_undeclared(addr: usize) {
    let p = phys_to_virt(PhysAddr::from(addr)).as_ptr().cast::<u32>();
    // SAFETY: mapped in this kernel's MMIO ranges on purpose; the
    // hypervisor is expected to stop the VM on this read.
    let v = unsafe { p.read_volatile() };
    println!("Read {v:#x} from an undeclared address: the hypervisor let it through!");
}
