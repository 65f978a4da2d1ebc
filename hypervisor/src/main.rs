//! arceos-guestaspace: a hypervisor that is an ArceOS application.
//!
//! It reads the VM's config (`/etc/vm.toml`) from the FAT32 disk, declares
//! the guest's physical address map, loads the guest kernel the config
//! names (`/sbin/gkernel` unless it names another) into guest RAM, and
//! runs the guest's vCPU in a loop, mapping guest memory (2 MiB blocks of
//! RAM where they fit, else 4 KiB pages) as nested page faults ask for it,
//! until the guest requests shutdown. Everything here is
//! architecture-neutral; the architecture lives behind [`arch::Arch`].
#![no_std]
#![no_main]

#[macro_use]
extern crate axstd;
extern crate alloc;

mod arch;
mod boot_inputs;
mod console;
mod disk;
mod error;
mod guest_image;
mod host_memory;
mod linux_boot;
mod vm_config;

use alloc::vec::Vec;
use arch::{Arch, Current, Outcome};
use error::HvError;
use guestaspace_core::layout::{GuestLayout, HostResources};
use guestaspace_core::runloop::{self, Limits};
use guestaspace_core::stage2::{AddressSpace, Format};
use guestaspace_core::stats::Stats;

#[unsafe(no_mangle)]
fn main() {
    match run() {
        Ok(()) => Current::power_off(Outcome::Success),
        Err(e) => {
            println!("error: {e}");
            Current::power_off(Outcome::Failure)
        }
    }
}

/// The guest's address map: the architecture's, with its RAM resized to
/// `mem` bytes if the settings ask, checked against the host (its RAM, the
/// devices it drives, and the memory it has free to back guest RAM).
fn guest_layout(mem: Option<u64>) -> Result<GuestLayout<'static>, HvError> {
    let mut layout = Current::LAYOUT;
    if let Some(size) = mem {
        // The layout lives as long as the VM, i.e. until power-off.
        layout.regions = Vec::leak(layout.with_ram_size(size).map_err(HvError::Layout)?);
    }
    let host_ram = host_memory::host_ram_ranges();
    let host = HostResources {
        ram: &host_ram,
        devices: Current::HOST_DEVICES,
    };
    layout.validate(&host).map_err(HvError::Layout)?;
    layout
        .check_ram_backable(host_memory::free_bytes())
        .map_err(HvError::Layout)?;
    Ok(layout)
}

fn run() -> Result<(), HvError> {
    println!("arceos-guestaspace: {}", Current::DESCRIPTION);
    Current::init_hardware().map_err(HvError::Hardware)?;

    let vm = vm_config::read()?;
    let config = &vm.config;
    let layout = guest_layout(config.mem)?;
    let mut space = AddressSpace::<<Current as Arch>::Format, _>::new(host_memory::HostMemory::<
        Current,
    >::new())
    .map_err(HvError::Map)?;
    println!(
        "Created guest address space: {} stage-2 table, root at {:#x}",
        <<Current as Arch>::Format as Format>::NAME,
        space.root()
    );
    for r in layout.regions {
        println!(
            "  {:<7} GPA {:#010x}..{:#010x} {} {}",
            r.name,
            r.gpa,
            r.end(),
            r.perms,
            r.kind
        );
    }

    let mut stats = Stats::default();
    let image = guest_image::read(vm.kernel, &layout)?;
    let inputs = boot_inputs::BootInputs::read(&vm)?;
    if let (Some(initrd), Some(path)) = (&inputs.initrd, vm.initrd) {
        println!("Initrd: {} bytes from {path}", initrd.len());
    }
    if let Some(cmdline) = &inputs.cmdline {
        println!("Kernel command line: {cmdline}");
    }
    let plan = Current::boot_plan(&image, &layout, inputs)?;
    for (gpa, data) in &plan.extra {
        guest_image::place(&mut space, &layout, *gpa, data, &mut stats)?;
    }
    guest_image::place(
        &mut space,
        &layout,
        plan.load,
        &image[plan.bytes.clone()],
        &mut stats,
    )?;
    println!(
        "Loaded {} bytes from {} at GPA {:#x} ({} pages mapped up front with the boot structures)",
        plan.bytes.len(),
        vm.kernel,
        plan.load,
        stats.total_pages()
    );
    drop(image);

    let limits = Limits {
        watchdog_ticks: match (config.watchdog_secs, Current::HOST_TICK_NS) {
            (Some(secs), tick) if tick > 0 => Some(secs * 1_000_000_000 / tick),
            _ => None,
        },
        ram_blocks: config.blocks,
    };
    if let Some(secs) = config.watchdog_secs {
        println!("Watchdog: the guest is stopped after {secs} s");
    }
    let mut devices = Current::devices();
    let mut vcpu = Current::new_vcpu(&plan, space.root());
    println!("Guest entry point {:#x}", plan.entry);
    println!("Entering VM run loop...");
    let entered_ns = axhal::time::monotonic_time_nanos();
    let result = runloop::run(
        &mut vcpu,
        &mut space,
        &layout,
        &mut devices,
        &mut console::HostConsole,
        &mut stats,
        &limits,
    );
    let ended_ns = axhal::time::monotonic_time_nanos();
    // Whatever the guest sent last reaches the console before the verdict.
    devices
        .bus
        .drain_console_output(axhal::console::write_bytes);
    devices
        .ports
        .drain_console_output(axhal::console::write_bytes);
    let report = |stats: &Stats| {
        println!("{}", stats.report(&layout));
        print!("Device accesses:");
        let mut any = false;
        for (name, count) in devices
            .bus
            .access_counts()
            .chain(devices.ports.access_counts())
        {
            print!("{} {name} {count}", if any { "," } else { "" });
            any = true;
        }
        println!("{}", if any { "" } else { " none" });
        // The counter starts with the machine, so the first figure covers
        // the firmware and the hypervisor's own boot.
        println!(
            "Hypervisor clock: machine start to guest entry {} us, guest run {} us",
            entered_ns / 1000,
            (ended_ns - entered_ns) / 1000
        );
    };
    match result {
        Ok(()) => {
            println!("Shutdown vm normally!");
            report(&stats);
            println!("Hypervisor ok!");
            Ok(())
        }
        Err(e) => {
            report(&stats);
            Err(HvError::Vm(e))
        }
    }
}
