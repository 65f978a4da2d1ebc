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

mod bench;
mod interrupts;
mod platform;
mod uart_input;

use axhal::mem::{PhysAddr, phys_to_virt};
use guestaspace_core::scenario::{
    BENCH_HYPERCALLS_OFFSET, BENCH_PAGES_OFFSET, SCENARIO_OFFSET, Scenario,
};

#[unsafe(no_mangle)]
fn main() {
    println!(
        "Reading PFlash at physical address {:#X}...",
        platform::PFLASH
    );
    let base = phys_to_virt(PhysAddr::from(platform::PFLASH));
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

    let waited = platform::timer_round_trip();
    println!(
        "Guest timer interrupt arrived after {waited} ticks (armed for {})",
        platform::TIMER_DELAY
    );

    match Scenario::from_code(word(SCENARIO_OFFSET)) {
        Scenario::Normal => {}
        Scenario::WildAccess => {
            println!("Scenario wild-access: reading {:#X}", platform::UNDECLARED);
            let p = phys_to_virt(PhysAddr::from(platform::UNDECLARED))
                .as_ptr()
                .cast::<u32>();
            // SAFETY: mapped in this kernel's MMIO ranges on purpose; the
            // hypervisor is expected to stop the VM on this read.
            let v = unsafe { p.read_volatile() };
            println!("Read {v:#x} from an undeclared address: the hypervisor let it through!");
        }
        Scenario::Bench => bench::run(word(BENCH_HYPERCALLS_OFFSET), word(BENCH_PAGES_OFFSET)),
        Scenario::PflashWrite => {
            println!(
                "Scenario pflash-write: writing to pflash at {:#X}",
                platform::PFLASH
            );
            // SAFETY: mapped as above; the hypervisor is expected to stop
            // the VM on this write, since pflash is read-only.
            unsafe { base.as_mut_ptr().cast::<u32>().write_volatile(0) };
            println!("Wrote to pflash: the hypervisor let it through!");
        }
        Scenario::BadConsolePointer => {
            let (error, value) = platform::console_write_raw(platform::UNDECLARED as u64, 16);
            println!(
                "Console write from {:#X} answered error {error}, value {value}",
                platform::UNDECLARED
            );
        }
        Scenario::Echo => {
            println!("Type a line:");
            let mut line = [0u8; 64];
            let (len, interrupts) = uart_input::read_line(&mut line);
            let text = core::str::from_utf8(&line[..len]).unwrap_or("(not UTF-8)");
            println!("Echo: {text} ({interrupts} receive interrupts)");
        }
        Scenario::DlabWildAccess => {
            println!(
                "Scenario dlab-wild-access: DLAB on, then reading {:#X}",
                platform::UNDECLARED_HIGH
            );
            uart_input::set_dlab();
            let p = phys_to_virt(PhysAddr::from(platform::UNDECLARED_HIGH))
                .as_ptr()
                .cast::<u32>();
            // SAFETY: mapped in this kernel's MMIO ranges on purpose; the
            // hypervisor is expected to stop the VM on this read.
            let v = unsafe { p.read_volatile() };
            println!("Read {v:#x} from an undeclared address: the hypervisor let it through!");
        }

        Scenario::Crash => panic!("scenario crash: the guest kernel panics on purpose"),
        // An aarch64 scenario: this guest cannot play it, and says so by
        // failing the run.
        Scenario::Smc => panic!("scenario smc is an aarch64 scenario"),
        Scenario::NeverShutdown => {
            println!("Scenario never-shutdown: spinning forever");
            loop {
                core::hint::spin_loop();
            }
        }
    }
    platform::power_off(true)
}
