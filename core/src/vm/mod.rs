//! A VM: one value that owns everything of one guest that its vCPUs
//! share. Its memory (address map, stage-2 tables), its devices, its
//! console, its settings, and what its vCPUs know of each other. Built
//! from a [`crate::machine::Board`] and the VM's config; each vCPU runs
//! in the run loop ([`crate::runloop`]) on its own host CPU
//! ([`Vm::run_vcpu`]).

extern crate alloc;

mod console;
mod cpus;
mod devices;
mod error;
mod memory;

pub use console::Console;
pub(crate) use console::{ReadInto, read as console_read, write as console_write};
pub use cpus::{Cpus, Ending, StartError, Work};
pub use devices::Devices;
pub use error::VmError;
pub use memory::Memory;

use alloc::string::String;

use spin::Mutex;

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

/// One vCPU of a VM with its own counters, owned by the host CPU that
/// runs it.
pub struct VcpuSlot<V> {
    /// Its index in the VM (its hart id, its MPIDR's Aff0).
    pub index: usize,
    /// The vCPU.
    pub vcpu: V,
    /// Its exits and the interrupts and exceptions injected into it.
    pub stats: Stats,
}

impl<V> VcpuSlot<V> {
    /// vCPU `index` of its VM.
    pub fn new(index: usize, vcpu: V) -> Self {
        VcpuSlot {
            index,
            vcpu,
            stats: Stats::default(),
        }
    }
}

/// One guest. Its vCPUs run on host CPUs of their own, each with its
/// [`VcpuSlot`], and share the VM: its memory, devices and console each
/// behind a lock (taken on a nested page fault, a device access, a console
/// call; never on a hypercall the vCPU answers alone), the vCPUs' power
/// states and mailboxes without one ([`Cpus`]).
pub struct Vm<F: Format, H: Host, C: Console> {
    /// The VM's name (its config's `name`).
    pub name: String,
    /// What the run loop enforces.
    pub limits: Limits,
    /// Guest memory. Lock order: devices, then memory, then console.
    pub memory: Mutex<Memory<F, H>>,
    /// The emulated devices.
    pub devices: Mutex<Devices>,
    /// Where its console goes.
    pub console: Mutex<C>,
    /// Its vCPUs' power states, posted work and counters.
    pub cpus: Cpus,
}

impl<F: Format, H: Host, C: Console> Vm<F, H, C> {
    /// A VM of `cpus` vCPUs (vCPU 0 on, the others off until started).
    pub fn new(
        name: String,
        limits: Limits,
        memory: Memory<F, H>,
        devices: Devices,
        console: C,
        cpus: usize,
    ) -> Self {
        Vm {
            name,
            limits,
            memory: Mutex::new(memory),
            devices: Mutex::new(devices),
            console: Mutex::new(console),
            cpus: Cpus::new(cpus),
        }
    }

    /// Runs `slot`'s vCPU, on the calling host CPU, until the VM ends:
    /// the guest powers off (`Ok`), this vCPU meets something it cannot
    /// handle (`Err`, with the diagnostic), or another vCPU ended the VM
    /// (`Ok`; [`Vm::ending`] says how). The vCPU's counters are added to
    /// the VM's.
    pub fn run_vcpu<V: Vcpu>(&self, slot: &mut VcpuSlot<V>) -> Result<(), VmError> {
        let result = crate::runloop::run(slot, self);
        let me = slot.index;
        let mine = match result {
            Ok(crate::runloop::End::PoweredOff) => Some(Ok(())),
            Ok(crate::runloop::End::Stopped) => None,
            Err(e) => Some(Err(e)),
        };
        if let Some(result) = mine {
            for cpu in self.cpus.end(me, result).iter() {
                if cpu != me {
                    V::kick(cpu);
                }
            }
        }
        self.cpus.add_stats(me, &core::mem::take(&mut slot.stats));
        match self.cpus.ending() {
            Some((cpu, result)) if cpu == me => result,
            _ => Ok(()),
        }
    }

    /// How the VM ended, once it has: the vCPU that ended it, and how.
    pub fn ending(&self) -> Option<cpus::Ending> {
        self.cpus.ending()
    }

    /// The VM's counters: every vCPU's exits and injections (as handed
    /// over at the end of its run), and the memory it mapped.
    pub fn stats(&self) -> Stats {
        let mut total = self.memory.lock().stats.clone();
        for cpu in 0..self.cpus.count() {
            total.absorb(&self.cpus.stats(cpu));
        }
        total
    }
}
