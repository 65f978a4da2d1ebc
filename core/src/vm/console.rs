//! The VM's console: where its output goes and its input comes from
//! ([`Console`]), and the console hypercalls (SBI DBCN, our HVC/VMMCALL
//! calls), which read or write guest RAM.

use crate::PAGE_SIZE;
use crate::addr::{GuestPhysAddr, GuestVirtAddr};
use crate::exit::Reply;
use crate::stage2::{Format, Host};
use crate::vm::{Devices, Memory, VmError};

/// Where guest console output goes.
pub trait Console {
    /// Prints `bytes` for the user.
    fn write(&mut self, bytes: &[u8]);
    /// Reads bytes the user typed, without waiting; returns how many.
    fn read(&mut self, _buf: &mut [u8]) -> usize {
        0
    }
}

/// The RAM region's index in the layout if `[gpa, gpa + len)` lies in
/// guest RAM, else the reply refusing the range.
fn ram_range<F: Format, H: Host>(
    memory: &Memory<F, H>,
    gpa: GuestPhysAddr,
    len: u64,
) -> Result<usize, Reply> {
    let Some((index, ram)) = memory.ram() else {
        return Err(Reply::InvalidAddress);
    };
    let Some(end) = gpa.checked_add(len) else {
        return Err(Reply::InvalidParam);
    };
    if !ram.contains(gpa) || end > ram.end() {
        return Err(Reply::InvalidAddress);
    }
    Ok(index)
}

/// Prints `len` bytes of guest RAM at `gpa`; answers how many were printed.
/// Only guest RAM may be named, and only the part the guest has touched
/// (an untouched page cannot hold anything the guest wrote).
pub(crate) fn write<F: Format, H: Host>(
    memory: &Memory<F, H>,
    console: &mut dyn Console,
    gpa: GuestPhysAddr,
    len: u64,
) -> Reply {
    if let Err(reply) = ram_range(memory, gpa, len) {
        return reply;
    }
    let mut buf = [0u8; 128];
    let mut done = 0u64;
    while done < len {
        let n = ((len - done) as usize).min(buf.len());
        let got = memory.space.read(gpa + done, &mut buf[..n]);
        console.write(&buf[..got]);
        done += got as u64;
        if got < n {
            break;
        }
    }
    Reply::Value(done)
}

/// Where a console read puts its bytes: `len` bytes of guest RAM at `gpa`.
pub(crate) struct ReadInto {
    /// The buffer's first byte.
    pub gpa: GuestPhysAddr,
    /// Its size.
    pub len: u64,
    /// The guest PC, for a diagnostic.
    pub pc: GuestVirtAddr,
    /// Whether RAM is mapped in blocks.
    pub blocks: bool,
}

/// Reads console input into guest RAM as `into` says, without waiting;
/// answers how many bytes were read. The same addresses as for [`write`]
/// are accepted; pages of the buffer the guest has not touched yet are
/// mapped first, as its own first access would (with a whole block if
/// blocks are on and one fits).
pub(crate) fn read<F: Format, H: Host>(
    memory: &mut Memory<F, H>,
    devices: &mut Devices,
    console: &mut dyn Console,
    into: ReadInto,
) -> Result<Reply, VmError> {
    let ReadInto {
        gpa,
        len,
        pc,
        blocks,
    } = into;
    let index = match ram_range(memory, gpa, len) {
        Ok(index) => index,
        Err(reply) => return Ok(reply),
    };
    let mut buf = [0u8; 64];
    let want = len.min(buf.len() as u64) as usize;
    let got = devices.take_input(console, &mut buf[..want]);
    let mut page = gpa.page_base();
    while page < gpa + got as u64 {
        if memory.space.translate(page).is_none() {
            memory.map_fault(index, page, pc, blocks)?;
        }
        page += PAGE_SIZE;
    }
    let written = memory.space.write(gpa, &buf[..got]);
    // Nothing is lost should a page still be missing.
    devices.unread_input(&buf[written..got]);
    Ok(Reply::Value(written as u64))
}
