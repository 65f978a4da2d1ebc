//! The node writers every guest tree shares: the root's common
//! properties, `/memory`, `/flash`, `/aliases` and `/chosen` (see the
//! [parent module](super) for what each says and why).

extern crate alloc;

use alloc::format;
use alloc::string::String;
use vm_fdt::{FdtWriter, FdtWriterNode};

use super::{FLASH_BANK_WIDTH, TreeError};
use crate::addr::GuestPhysAddr;
use crate::layout::{Perms, Region};

/// A node name with the unit address of `region`: `name@<hex gpa>`.
pub(crate) fn unit_name(name: &str, region: &Region) -> String {
    format!("{name}@{:x}", region.gpa.as_u64())
}

/// Opens the root node with two address and two size cells (every `reg`
/// below it is a pair of 64-bit numbers), `compatible` and `model`. The
/// caller adds what its machine has there, then closes it with
/// [`FdtWriter::end_node`].
pub(crate) fn begin_root(
    fdt: &mut FdtWriter,
    compatible: &str,
    model: &str,
) -> Result<FdtWriterNode, TreeError> {
    let root = fdt.begin_node("")?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_string("compatible", compatible)?;
    fdt.property_string("model", model)?;
    Ok(root)
}

/// A `reg` of one range: the region's start and `size` bytes.
pub(crate) fn reg(fdt: &mut FdtWriter, start: GuestPhysAddr, size: u64) -> Result<(), TreeError> {
    Ok(fdt.property_array_u64("reg", &[start.as_u64(), size])?)
}

/// `/memory@<ram>`: all of guest RAM.
pub(crate) fn memory(fdt: &mut FdtWriter, ram: &Region) -> Result<(), TreeError> {
    let node = fdt.begin_node(&unit_name("memory", ram))?;
    fdt.property_string("device_type", "memory")?;
    reg(fdt, ram.gpa, ram.size)?;
    Ok(fdt.end_node(node)?)
}

/// `/flash@<pflash>`: `mtd-rom` when read-only, `cfi-flash` when the
/// guest may write it.
pub(crate) fn flash(fdt: &mut FdtWriter, flash: &Region) -> Result<(), TreeError> {
    let node = fdt.begin_node(&unit_name("flash", flash))?;
    let compatible = if flash.perms.contains(Perms::WRITE) {
        "cfi-flash"
    } else {
        "mtd-rom"
    };
    fdt.property_string("compatible", compatible)?;
    reg(fdt, flash.gpa, flash.size)?;
    fdt.property_u32("bank-width", FLASH_BANK_WIDTH)?;
    Ok(fdt.end_node(node)?)
}

/// `/aliases` with `serial0`, then `/chosen` with `stdout-path`, both the
/// full path of the console's node, and `bootargs` and the initrd's
/// range when given (checked by the caller with [`super::check_initrd`]).
pub(crate) fn aliases_and_chosen(
    fdt: &mut FdtWriter,
    console: &str,
    bootargs: Option<&str>,
    initrd: Option<(GuestPhysAddr, u64)>,
) -> Result<(), TreeError> {
    let aliases = fdt.begin_node("aliases")?;
    fdt.property_string("serial0", console)?;
    fdt.end_node(aliases)?;

    let chosen = fdt.begin_node("chosen")?;
    fdt.property_string("stdout-path", console)?;
    if let Some(bootargs) = bootargs {
        fdt.property_string("bootargs", bootargs)?;
    }
    if let Some((start, size)) = initrd {
        // 64-bit values; `initrd-end` is one past the last byte.
        fdt.property_u64("linux,initrd-start", start.as_u64())?;
        fdt.property_u64("linux,initrd-end", start.as_u64() + size)?;
    }
    Ok(fdt.end_node(chosen)?)
}
