//! The x86 guest's own address translation, done by the hypervisor: turn a
//! linear address (the guest's RIP, CS base included) into a
//! guest-physical one by walking the guest's page tables, and fetch the
//! instruction bytes there.
//!
//! Needed because an SVM nested page fault on an emulated device gives the
//! faulting guest-physical address but not the instruction: CPUs with
//! decode assists copy up to 15 instruction bytes into the VMCB, QEMU's
//! TCG does not.
//!
//! Paging structures from the AMD APM vol. 2 chapter 5 "Page Translation
//! and Protection" (the Intel SDM vol. 3A chapter 4 "Paging" agrees):
//!
//! * CR0.PG = 0: no paging, the linear address is the physical one
//!   (32 bits wide outside long mode).
//! * EFER.LMA = 1: long mode, four levels (PML4, PDPT, PD, PT) of 8-byte
//!   entries, or five (PML5 first) with CR4.LA57; PS in a PDPT entry maps
//!   1 GiB, in a PD entry 2 MiB. Linear addresses must be canonical.
//! * CR4.PAE = 1 outside long mode: PAE, four PDPT entries at CR3 bits
//!   31:5, then PD (PS: 2 MiB) and PT, 8-byte entries.
//! * Otherwise 32-bit paging: PD at CR3 bits 31:12 and PT of 4-byte
//!   entries; PS in a PD entry with CR4.PSE maps 4 MiB (PSE-36: entry bits
//!   20:13 are physical-address bits 39:32).
//!
//! The walk checks presence and the PS bit where it is reserved (PML4 and
//! PML5 entries), nothing else: the guest CPU has just executed the
//! instruction through these very entries, so its permissions held. The
//! accessed and dirty bits are left alone. Physical addresses are masked to
//! 52 bits, the architectural maximum.

use crate::addr::GuestPhysAddr;
use crate::guest_memory::GuestMemory;
use core::fmt;

/// CR0.PG: paging enabled.
pub const CR0_PG: u64 = 1 << 31;
/// CR4.PSE: 4 MiB pages in 32-bit paging.
pub const CR4_PSE: u64 = 1 << 4;
/// CR4.PAE: physical-address extension.
pub const CR4_PAE: u64 = 1 << 5;
/// CR4.LA57: five-level paging.
pub const CR4_LA57: u64 = 1 << 12;
/// EFER.LMA: long mode active.
pub const EFER_LMA: u64 = 1 << 10;
/// The longest x86 instruction, in bytes.
pub const MAX_INSN_LEN: usize = 15;

/// Entry bit 0: present.
const P: u64 = 1 << 0;
/// Entry bit 7: page size (a leaf above the PT level).
const PS: u64 = 1 << 7;
/// Physical-address bits 51:12 of an 8-byte entry.
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// The guest registers that decide how it translates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PagingRegs {
    /// CR0.
    pub cr0: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// EFER.
    pub efer: u64,
}

impl PagingRegs {
    /// Whether the guest is in long mode (EFER.LMA).
    pub const fn long_mode(&self) -> bool {
        self.efer & EFER_LMA != 0
    }
}

/// Why a linear address has no guest-physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// A long-mode address whose upper bits are not a sign extension.
    NonCanonical {
        /// The linear address.
        linear: u64,
    },
    /// An entry on the way is not present. `level` counts from the leaf
    /// table: 1 PT, 2 PD, 3 PDPT, 4 PML4, 5 PML5.
    NotPresent {
        /// The linear address.
        linear: u64,
        /// The table whose entry is not present.
        level: u8,
    },
    /// An entry sets a bit that is reserved at its level (PS in a PML4 or
    /// PML5 entry).
    Reserved {
        /// The linear address.
        linear: u64,
        /// The table of the bad entry.
        level: u8,
    },
    /// A paging-structure entry (or the first instruction byte) lies where
    /// the guest has no readable memory.
    Unreadable {
        /// The guest-physical address that could not be read.
        gpa: GuestPhysAddr,
    },
}

impl WalkError {
    /// A fixed description, for diagnostics that carry the address
    /// separately.
    pub const fn why(&self) -> &'static str {
        match self {
            WalkError::NonCanonical { .. } => "the guest's RIP is not a canonical address",
            WalkError::NotPresent { .. } => "the guest's page tables do not map its RIP",
            WalkError::Reserved { .. } => {
                "the guest's page tables set a reserved bit on the way to its RIP"
            }
            WalkError::Unreadable { .. } => {
                "the guest's page tables or instruction lie outside guest memory"
            }
        }
    }
}

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WalkError::NonCanonical { linear } => {
                write!(f, "linear address {linear:#x} is not canonical")
            }
            WalkError::NotPresent { linear, level } => write!(
                f,
                "linear address {linear:#x} is not mapped (level-{level} entry not present)"
            ),
            WalkError::Reserved { linear, level } => write!(
                f,
                "linear address {linear:#x}: level-{level} entry sets a reserved bit"
            ),
            WalkError::Unreadable { gpa } => {
                write!(f, "nothing readable in guest memory at {gpa}")
            }
        }
    }
}

/// Translates `linear` the way the guest's CPU does.
pub fn translate(
    mem: &dyn GuestMemory,
    regs: &PagingRegs,
    linear: u64,
) -> Result<GuestPhysAddr, WalkError> {
    if regs.cr0 & CR0_PG == 0 {
        let width_mask = if regs.long_mode() {
            u64::MAX
        } else {
            0xffff_ffff
        };
        return Ok(GuestPhysAddr::new(linear & width_mask));
    }
    if regs.long_mode() {
        let levels = if regs.cr4 & CR4_LA57 != 0 { 5 } else { 4 };
        walk_long(mem, regs.cr3, levels, linear)
    } else if regs.cr4 & CR4_PAE != 0 {
        walk_pae(mem, regs.cr3, linear & 0xffff_ffff)
    } else {
        walk_32(mem, regs, linear & 0xffff_ffff)
    }
}

/// The 8-byte entry `index` of the table at `table`.
fn entry64(mem: &dyn GuestMemory, table: u64, index: u64) -> Result<u64, WalkError> {
    let gpa = GuestPhysAddr::new(table + index * 8);
    mem.read_u64(gpa).ok_or(WalkError::Unreadable { gpa })
}

/// The entry's address field with the low `offset_bits` of `linear`.
fn leaf(entry: u64, offset_bits: u32, linear: u64) -> GuestPhysAddr {
    let offset_mask = (1u64 << offset_bits) - 1;
    GuestPhysAddr::new((entry & ADDR_MASK & !offset_mask) | (linear & offset_mask))
}

fn walk_long(
    mem: &dyn GuestMemory,
    cr3: u64,
    levels: u8,
    linear: u64,
) -> Result<GuestPhysAddr, WalkError> {
    let bits = 12 + 9 * u32::from(levels);
    let sign = (linear as i64) >> (bits - 1);
    if sign != 0 && sign != -1 {
        return Err(WalkError::NonCanonical { linear });
    }
    let mut table = cr3 & ADDR_MASK;
    for level in (1..=levels).rev() {
        let shift = 12 + 9 * u32::from(level - 1);
        let entry = entry64(mem, table, (linear >> shift) & 0x1ff)?;
        if entry & P == 0 {
            return Err(WalkError::NotPresent { linear, level });
        }
        if level > 1 && entry & PS != 0 {
            if level > 3 {
                return Err(WalkError::Reserved { linear, level });
            }
            return Ok(leaf(entry, shift, linear));
        }
        if level == 1 {
            return Ok(leaf(entry, 12, linear));
        }
        table = entry & ADDR_MASK;
    }
    // Not guest-reachable: `levels` is 4 or 5 (set above from CR4.LA57,
    // whatever the guest wrote), and the loop returns at level 1 on every
    // path; no table content can make it run past it.
    unreachable!("the loop returns at level 1")
}

fn walk_pae(mem: &dyn GuestMemory, cr3: u64, linear: u64) -> Result<GuestPhysAddr, WalkError> {
    let pdpte = entry64(mem, cr3 & 0xffff_ffe0, linear >> 30)?;
    if pdpte & P == 0 {
        return Err(WalkError::NotPresent { linear, level: 3 });
    }
    let pde = entry64(mem, pdpte & ADDR_MASK, (linear >> 21) & 0x1ff)?;
    if pde & P == 0 {
        return Err(WalkError::NotPresent { linear, level: 2 });
    }
    if pde & PS != 0 {
        return Ok(leaf(pde, 21, linear));
    }
    let pte = entry64(mem, pde & ADDR_MASK, (linear >> 12) & 0x1ff)?;
    if pte & P == 0 {
        return Err(WalkError::NotPresent { linear, level: 1 });
    }
    Ok(leaf(pte, 12, linear))
}

fn walk_32(
    mem: &dyn GuestMemory,
    regs: &PagingRegs,
    linear: u64,
) -> Result<GuestPhysAddr, WalkError> {
    let entry32 = |table: u64, index: u64| {
        let gpa = GuestPhysAddr::new(table + index * 4);
        mem.read_u32(gpa)
            .map(u64::from)
            .ok_or(WalkError::Unreadable { gpa })
    };
    let pde = entry32(regs.cr3 & 0xffff_f000, linear >> 22)?;
    if pde & P == 0 {
        return Err(WalkError::NotPresent { linear, level: 2 });
    }
    if pde & PS != 0 && regs.cr4 & CR4_PSE != 0 {
        let high = ((pde >> 13) & 0xff) << 32;
        return Ok(GuestPhysAddr::new(
            high | (pde & 0xffc0_0000) | (linear & 0x3f_ffff),
        ));
    }
    let pte = entry32(pde & 0xffff_f000, (linear >> 12) & 0x3ff)?;
    if pte & P == 0 {
        return Err(WalkError::NotPresent { linear, level: 1 });
    }
    Ok(GuestPhysAddr::new((pte & 0xffff_f000) | (linear & 0xfff)))
}

/// Fetches up to [`MAX_INSN_LEN`] instruction bytes at `linear` into
/// `buf`, page by page; returns how many it got. The first byte must
/// translate and be readable; a later page that does not (or memory that cannot be
/// read) only ends the fetch early, since a short instruction may not need
/// it. Outside long mode the address wraps at 4 GiB.
pub fn fetch(
    mem: &dyn GuestMemory,
    regs: &PagingRegs,
    linear: u64,
    buf: &mut [u8; MAX_INSN_LEN],
) -> Result<usize, WalkError> {
    let wrap = |a: u64| {
        if regs.long_mode() { a } else { a & 0xffff_ffff }
    };
    let mut done = 0;
    while done < buf.len() {
        let at = wrap(linear.wrapping_add(done as u64));
        let gpa = match translate(mem, regs, at) {
            Ok(gpa) => gpa,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        let in_page = (crate::PAGE_SIZE - (at & (crate::PAGE_SIZE - 1))) as usize;
        let want = in_page.min(buf.len() - done);
        let got = mem.read(gpa, &mut buf[done..done + want]);
        if got == 0 && done == 0 {
            return Err(WalkError::Unreadable { gpa });
        }
        done += got;
        if got < want {
            break;
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests;
