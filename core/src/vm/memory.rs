//! The VM's guest-physical memory: its address map, its stage-2 tables,
//! and the count of what has been mapped. A nested page fault in a region
//! that is not an emulated device is served here
//! ([`Memory::map_fault`]).

use crate::addr::{GuestPhysAddr, GuestVirtAddr};
use crate::fault;
use crate::layout::{GuestLayout, Layout, Region};
use crate::stage2::{AddressSpace, Format, Host};
use crate::stats::Stats;
use crate::vm::VmError;

/// The guest's memory.
pub struct Memory<F: Format, H: Host> {
    /// What each guest-physical address is.
    pub layout: Layout,
    /// The stage-2 tables.
    pub space: AddressSpace<F, H>,
    /// Blocks and pages mapped per region (its exit counters stay zero:
    /// exits are counted per vCPU).
    pub stats: Stats,
}

impl<F: Format, H: Host> Memory<F, H> {
    /// `layout` over the empty tables `space`.
    pub fn new(layout: Layout, space: AddressSpace<F, H>) -> Self {
        Memory {
            layout,
            space,
            stats: Stats::default(),
        }
    }

    /// The borrowed layout.
    pub fn layout(&self) -> GuestLayout<'_> {
        self.layout.as_ref()
    }

    /// Serves a fault at `gpa` in region number `index`: maps the block or
    /// page [`fault::map_fault`] chooses (blocks only if `blocks`), and
    /// counts it.
    pub(crate) fn map_fault(
        &mut self,
        index: usize,
        gpa: GuestPhysAddr,
        pc: GuestVirtAddr,
        blocks: bool,
    ) -> Result<(), VmError> {
        let Memory {
            layout,
            space,
            stats,
        } = self;
        let region = &layout.regions()[index];
        fault::map_fault(space, stats, (index, region), gpa, blocks)
            .map_err(|error| VmError::MapFailed { gpa, error, pc })
    }

    /// The RAM region and its index in the layout, if the layout has RAM.
    pub(crate) fn ram(&self) -> Option<(usize, Region)> {
        let ram = *self.layout().ram()?;
        let index = self.layout.regions().iter().position(|r| *r == ram)?;
        Some((index, ram))
    }
}
