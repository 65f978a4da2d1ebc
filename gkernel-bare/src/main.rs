//! gkernel-bare: the guest on the architecture whose guest is still a small
//! bare-metal program rather than an ArceOS kernel (x86_64).
//!
//! It does what the ArceOS gkernel does, with hypercalls for the console
//! and for power: prints who it is, reads the first word of the pflash
//! device (a nested page fault the hypervisor serves), prints the magic,
//! and asks to be powered off. The test scenario comes from the build
//! (`GKERNEL_SCENARIO`), because this machine's pflash is emulated by the
//! hypervisor and only ever holds the magic.
#![no_std]
#![no_main]

mod arch;
mod console;

use guestaspace_core::scenario::Scenario;

/// The scenario this image was built for.
fn scenario() -> Scenario {
    option_env!("GKERNEL_SCENARIO")
        .and_then(Scenario::from_name)
        .unwrap_or(Scenario::Normal)
}

/// Called by the architecture's entry code with a stack.
pub fn main() -> ! {
    println!();
    println!("gkernel-bare: a bare-metal guest of arceos-guestaspace");
    println!("arch = {}", arch::ARCH);
    println!("platform = {}", arch::PLATFORM);
    println!("smp = 1");
    arch::report_cpu();
    println!();
    println!("Reading PFlash at physical address {:#X}...", arch::PFLASH);
    // SAFETY: the boot page tables identity-map the pflash address.
    let magic = unsafe { (arch::PFLASH as *const u32).read_volatile() };
    println!(
        "Try to access pflash dev region [{:#X}], got {:#X}",
        arch::PFLASH,
        magic
    );
    match core::str::from_utf8(&magic.to_le_bytes()) {
        Ok(text) => println!("Got pflash magic: {text}"),
        Err(_) => println!("Got pflash magic: (not text) {:02x?}", magic.to_le_bytes()),
    }
    match scenario() {
        Scenario::Normal => {}
        Scenario::WildAccess => {
            println!("Scenario wild-access: reading {:#X}", arch::UNDECLARED);
            // SAFETY: identity mapped; the hypervisor is expected to stop the VM.
            let v = unsafe { (arch::UNDECLARED as *const u32).read_volatile() };
            println!("Read {v:#x} from an undeclared address: the hypervisor let it through!");
        }
        Scenario::NeverShutdown => {
            println!("Scenario never-shutdown: spinning forever");
            loop {
                core::hint::spin_loop();
            }
        }
        Scenario::Bench => bench(),
        Scenario::PflashWrite => {
            println!(
                "Scenario pflash-write: writing to pflash at {:#X}",
                arch::PFLASH
            );
            // SAFETY: identity mapped; pflash is read-only for the guest, so
            // the hypervisor is expected to stop the VM on this write.
            unsafe { (arch::PFLASH as *mut u32).write_volatile(0) };
            println!("Wrote to pflash: the hypervisor let it through!");
        }
        Scenario::BadConsolePointer => {
            let reply = arch::console_write_raw(arch::OUTSIDE_RAM, 16) as i64;
            println!(
                "Console write from {:#X} answered {reply}",
                arch::OUTSIDE_RAM
            );
        }
        // Scenarios of the riscv64 ArceOS guest and its emulated devices,
        // or of another architecture: this guest cannot play them, and
        // says so by failing the run.
        Scenario::Echo => {
            println!("Type a line:");
            let mut line = [0u8; 64];
            let (len, polls) = arch::read_line(&mut line);
            let text = core::str::from_utf8(&line[..len]).unwrap_or("(not UTF-8)");
            println!("Echo: {text} (read by polling COM1, {polls} status reads)");
        }
        other @ (Scenario::DlabWildAccess | Scenario::Smc) => {
            println!(
                "Scenario {}: not built into this guest; crashing on purpose",
                other.name()
            );
            arch::crash()
        }
        Scenario::Crash => {
            println!("Scenario crash: an undefined instruction with no exception vectors");
            arch::crash()
        }
    }
    arch::power_off()
}

/// Times null hypercalls and first touches of fresh RAM pages with the
/// guest's own counter; the counts come from the build too.
fn bench() {
    const CALLS: u32 = guestaspace_core::scenario::BENCH_HYPERCALLS;
    const PAGES: u64 = guestaspace_core::scenario::BENCH_PAGES as u64;
    /// Fresh RAM, 8 MiB into guest RAM, far above the image and the stack.
    const FRESH: u64 = arch::RAM_BASE + 0x80_0000;
    let start = arch::counter();
    for _ in 0..CALLS {
        arch::null_hypercall();
    }
    let call_ticks = arch::counter() - start;
    let start = arch::counter();
    for _ in 0..CALLS {
        core::hint::black_box(arch::line_status());
    }
    let pio_ticks = arch::counter() - start;
    println!("bench-mmio: {CALLS} device reads in {pio_ticks} ticks");
    let start = arch::counter();
    for i in 0..PAGES {
        // SAFETY: guest RAM, identity mapped, used by nothing else.
        unsafe { ((FRESH + i * 4096) as *mut u8).write_volatile(1) };
    }
    let page_ticks = arch::counter() - start;
    println!(
        "bench: {CALLS} hypercalls in {call_ticks} ticks; {PAGES} fresh pages in {page_ticks} ticks; counter {} Hz",
        arch::counter_hz()
    );
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("gkernel-bare panicked: {info}");
    arch::crash()
}
