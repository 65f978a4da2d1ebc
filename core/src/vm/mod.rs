//! A VM: one value that owns everything of one guest. Its memory (address
//! map, stage-2 tables), its devices, its console, its settings, and its
//! vCPUs, each with its own exit counters. Built from a
//! [`crate::machine::Board`] and the VM's config; the run loop
//! ([`crate::runloop`]) runs one vCPU of it ([`Vm::run_vcpu`]).

extern crate alloc;

mod console;
mod devices;
mod error;
mod memory;

pub use console::Console;
pub(crate) use console::{ReadInto, read as console_read, write as console_write};
pub use devices::Devices;
pub use error::VmError;
pub use memory::Memory;

use alloc::string::String;
use alloc::vec::Vec;

use crate::stage2::{Format, Host};
use crate::stats::Stats;
use crate::vcpu::Vcpu;

/// What the run loop enforces or chooses beyond the guest's own behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Stop the guest after this many host ticks (`None`: never).
    pub watchdog_ticks: Option<u64>,
    /// Map guest RAM with 2 MiB blocks where they fit (see
    /// [`crate::fault`]); off, every RAM fault maps one 4 KiB page.
    pub ram_blocks: bool,
}

impl Default for Limits {
    /// No watchdog; RAM in blocks, as a VM config has it by default.
    fn default() -> Self {
        Limits {
            watchdog_ticks: None,
            ram_blocks: true,
        }
    }
}

/// One vCPU of a VM with its own counters.
pub struct VcpuSlot<V> {
    /// The vCPU.
    pub vcpu: V,
    /// Its exits and the interrupts and exceptions injected into it.
    pub stats: Stats,
}

/// One guest.
pub struct Vm<F: Format, H: Host, C: Console, V: Vcpu> {
    /// The VM's name (its config's `name`).
    pub name: String,
    /// What the run loop enforces.
    pub limits: Limits,
    /// Guest memory.
    pub memory: Memory<F, H>,
    /// The emulated devices.
    pub devices: Devices,
    /// Where its console goes.
    pub console: C,
    /// Its vCPUs, vCPU 0 first.
    pub vcpus: Vec<VcpuSlot<V>>,
}

impl<F: Format, H: Host, C: Console, V: Vcpu> Vm<F, H, C, V> {
    /// A VM with no vCPUs yet ([`Vm::add_vcpu`]).
    pub fn new(
        name: String,
        limits: Limits,
        memory: Memory<F, H>,
        devices: Devices,
        console: C,
    ) -> Self {
        Vm {
            name,
            limits,
            memory,
            devices,
            console,
            vcpus: Vec::new(),
        }
    }

    /// Adds `vcpu` as the next vCPU; answers its index.
    pub fn add_vcpu(&mut self, vcpu: V) -> usize {
        self.vcpus.push(VcpuSlot {
            vcpu,
            stats: Stats::default(),
        });
        self.vcpus.len() - 1
    }

    /// Runs vCPU `index` until the guest powers off (`Ok`) or the VM must
    /// stop (`Err`, with the diagnostic).
    ///
    /// # Panics
    /// If there is no vCPU `index`.
    pub fn run_vcpu(&mut self, index: usize) -> Result<(), VmError> {
        let Vm {
            limits,
            memory,
            devices,
            console,
            vcpus,
            ..
        } = self;
        let mut vm = crate::runloop::Shared {
            memory,
            devices,
            console,
            limits,
        };
        crate::runloop::run(&mut vcpus[index], &mut vm)
    }

    /// The VM's counters: every vCPU's exits and injections, and the
    /// memory it mapped.
    pub fn stats(&self) -> Stats {
        let mut total = self.memory.stats.clone();
        for slot in &self.vcpus {
            total.absorb(&slot.stats);
        }
        total
    }
}
