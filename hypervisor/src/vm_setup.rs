//! Builds the guest's [`Vm`] from the board of this architecture and the
//! VM's config on the disk: the address map (RAM at the config's size,
//! checked against the host), the stage-2 tables, the guest image and its
//! boot structures placed in RAM, the emulated devices, and vCPU 0.

use crate::arch::{Arch, Current};
use crate::boot_inputs::BootInputs;
use crate::console::HostConsole;
use crate::error::HvError;
use crate::guest_image;
use crate::host_memory::{self, HostMemory};
use crate::vm_config;
use alloc::string::String;
use guestaspace_core::layout::{HostResources, Layout};
use guestaspace_core::machine::DEFAULT_RAM_SIZE;
use guestaspace_core::stage2::{AddressSpace, Format};
use guestaspace_core::vm::{Devices, Limits, Memory, VcpuSlot, Vm};

/// The VM type of this architecture.
pub type GuestVm = Vm<<Current as Arch>::Format, HostMemory<Current>, HostConsole>;

/// A vCPU of this architecture with its counters.
pub type GuestVcpu = VcpuSlot<<Current as Arch>::Vcpu>;

/// A built VM: the shared part, and vCPU 0, ready at the guest's entry.
/// The other vCPUs are made on their own host CPUs ([`crate::smp`]).
pub struct Built {
    /// The VM.
    pub vm: GuestVm,
    /// Its vCPU 0, made on this host CPU.
    pub vcpu0: GuestVcpu,
    /// The root of its stage-2 tables, for the other vCPUs.
    pub stage2_root: guestaspace_core::addr::HostPhysAddr,
}

/// The guest's address map: the board's, with `mem` bytes of RAM (the
/// default unless the config says), checked against the host (its RAM, the
/// devices it drives, and the memory it has free to back guest RAM).
fn guest_layout(mem: Option<u64>) -> Result<Layout, HvError> {
    let board = Current::BOARD;
    let layout = board
        .layout(mem.unwrap_or(DEFAULT_RAM_SIZE))
        .map_err(HvError::Layout)?;
    let host_ram = host_memory::host_ram_ranges();
    let host = HostResources {
        ram: &host_ram,
        devices: board.host_devices,
    };
    layout.as_ref().validate(&host).map_err(HvError::Layout)?;
    layout
        .as_ref()
        .check_ram_backable(host_memory::free_bytes())
        .map_err(HvError::Layout)?;
    Ok(layout)
}

/// The VM, ready to run: everything the disk describes, loaded.
pub fn build() -> Result<Built, HvError> {
    let disk_vm = vm_config::read()?;
    let config = &disk_vm.config;
    let layout = guest_layout(config.mem)?;
    let space = AddressSpace::<<Current as Arch>::Format, _>::new(HostMemory::<Current>::new())
        .map_err(HvError::Map)?;
    println!(
        "Created guest address space: {} stage-2 table, root at {:#x}",
        <<Current as Arch>::Format as Format>::NAME,
        space.root()
    );
    for r in layout.regions() {
        println!(
            "  {:<7} GPA {:#010x}..{:#010x} {} {}",
            r.name,
            r.gpa,
            r.end(),
            r.perms,
            r.kind
        );
    }
    let mut memory = Memory::new(layout, space);

    let image = guest_image::read(disk_vm.kernel, &memory.layout())?;
    let inputs = BootInputs::read(&disk_vm)?;
    if let (Some(initrd), Some(path)) = (&inputs.initrd, disk_vm.initrd) {
        println!("Initrd: {} bytes from {path}", initrd.len());
    }
    if let Some(cmdline) = &inputs.cmdline {
        println!("Kernel command line: {cmdline}");
    }
    let plan = Current::boot_plan(&image, &memory.layout(), inputs)?;
    for (gpa, data) in &plan.extra {
        guest_image::place(&mut memory, *gpa, data)?;
    }
    guest_image::place(&mut memory, plan.load, &image[plan.bytes.clone()])?;
    println!(
        "Loaded {} bytes from {} at GPA {:#x} ({} pages mapped up front with the boot structures)",
        plan.bytes.len(),
        disk_vm.kernel,
        plan.load,
        memory.stats.total_pages()
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
    let cpus = config.cpus as usize;
    crate::smp::check_cpus(cpus)?;
    let board = Current::BOARD;
    let devices = Devices::for_board_with_cpus(&board, cpus)
        .map_err(|e| HvError::Boot(alloc::format!("the board's devices: {e}")))?;
    let stage2_root = memory.space.root();
    let vcpu = Current::new_vcpu(&plan, stage2_root, board.cpu_wiring(0));
    println!("Guest entry point {:#x}", plan.entry);
    if cpus > 1 {
        println!("vCPUs: {cpus}, each on its own host CPU");
    }
    let name = config.name.clone().unwrap_or_else(|| String::from("guest"));
    Ok(Built {
        vm: Vm::new(name, limits, memory, devices, HostConsole, cpus),
        vcpu0: VcpuSlot::new(0, vcpu),
        stage2_root,
    })
}
