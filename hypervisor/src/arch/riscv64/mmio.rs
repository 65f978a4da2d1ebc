//! Which guest instruction trapped on an emulated device, and how to finish
//! it: the decoding itself is `guestaspace_core::arch::riscv64::insn`
//! (host-tested); this file only reads what the hardware offers.
//!
//! The instruction comes from `htinst` when the hardware provides a
//! transformed instruction there. When `htinst` is 0 the hypervisor reads
//! the instruction at the guest PC itself with `HLVX.HU`, which translates
//! through the guest's own VS-stage page tables as a guest instruction
//! fetch would (hstatus.SPVP = 1 makes it act with VS-mode privilege).

use core::arch::asm;
use guestaspace_core::arch::riscv64::insn::{
    DecodeError, MmioInsn, decode_raw, decode_transformed,
};
use guestaspace_core::vcpu::Unemulated;

/// `htinst` after a guest-page fault (Privileged spec, H extension, "Hypervisor
/// Trap Instruction Register").
pub fn read_htinst() -> u64 {
    let value: u64;
    // SAFETY: reading a CSR of the H extension, present once probed.
    unsafe { asm!("csrr {}, 0x64a", out(reg) value) };
    value
}

/// Reads the 16-bit parcel at guest virtual address `gva` as an
/// instruction fetch of the guest would.
fn hlvx_hu(gva: u64) -> u16 {
    let value: u64;
    // SAFETY: the guest just executed the instruction at this address, so
    // its VS-stage and G-stage translations exist; the load only reads.
    unsafe {
        asm!(
            ".option push",
            ".option arch, +h",
            "hlvx.hu {0}, ({1})",
            ".option pop",
            out(reg) value,
            in(reg) gva,
        )
    };
    value as u16
}

/// The instruction at guest PC `pc`: one parcel, or two for a 32-bit one.
fn fetch(pc: u64) -> u32 {
    let low = u32::from(hlvx_hu(pc));
    if low & 0b11 != 0b11 {
        return low;
    }
    low | u32::from(hlvx_hu(pc + 2)) << 16
}

/// Decodes the load or store at `pc` that trapped with `htinst`.
pub fn decode(htinst: u64, pc: u64) -> Result<MmioInsn, Unemulated> {
    match decode_transformed(htinst) {
        Ok(Some(insn)) => Ok(insn),
        Ok(None) => {
            let raw = fetch(pc);
            decode_raw(raw).map_err(|e| unemulated(u64::from(raw), &e))
        }
        Err(e) => Err(unemulated(htinst, &e)),
    }
}

fn unemulated(insn: u64, error: &DecodeError) -> Unemulated {
    let why = match error {
        DecodeError::Atomic(_) => "an atomic memory operation (AMO, LR or SC) on a device",
        DecodeError::FloatingPoint(_) => "a floating-point load or store on a device",
        DecodeError::Pseudoinstruction(_) => {
            "an implicit page-table access of the guest's own translation"
        }
        DecodeError::UnknownHtinst(_) => "htinst holds a value this hypervisor does not know",
        DecodeError::Reserved(_) => "a reserved load/store encoding",
        DecodeError::NotLoadStore(_) => "not a load or store instruction",
    };
    Unemulated { insn, why }
}
