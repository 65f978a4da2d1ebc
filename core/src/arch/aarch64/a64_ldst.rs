//! Decoding an A64 load/store instruction word, for the device accesses
//! whose Data Abort carries no syndrome (ESR_EL2.ISV = 0). The architecture
//! gives a syndrome only for single-register accesses without writeback,
//! so a guest that writes a device with, say, `strb w10, [x9], #1` (as the
//! GICv2 driver ArceOS uses does for its target registers) must be decoded
//! from the instruction itself, fetched at the guest's PC.
//!
//! Encodings from the Arm ARM (DDI 0487), C4.1.94 "Loads and Stores",
//! classes "Load/store register (immediate post-indexed)", "(immediate
//! pre-indexed)", "(unsigned immediate)", "(unscaled immediate)" and
//! "(register offset)": `size` bits 31:30, `V` bit 26 (SIMD&FP), `opc`
//! bits 23:22, `Rn` bits 9:5 (31 = SP), `Rt` bits 4:0 (31 = XZR/WZR).
//! Pairs, exclusives, atomics and SIMD&FP registers are refused: no device
//! driver this project boots uses them on device memory.

use super::dabt::{DataAbortInsn, ZR};
use crate::devices::Width;
use core::fmt;

/// Field masks and values of the load/store register classes.
pub mod enc {
    /// Bits 29:27 = 0b111, bit 26 (V) = 0, bits 25:24 = 0b00, bit 21 = 0:
    /// the unscaled, post-, pre-indexed and unprivileged classes, told
    /// apart by bits 11:10.
    pub const IMM9_MASK: u32 = 0x3f20_0000;
    /// The value under [`IMM9_MASK`].
    pub const IMM9_VALUE: u32 = 0x3800_0000;
    /// Bits 25:24 = 0b01: the unsigned-immediate class.
    pub const UIMM12_MASK: u32 = 0x3f00_0000;
    /// The value under [`UIMM12_MASK`].
    pub const UIMM12_VALUE: u32 = 0x3900_0000;
    /// Bit 21 = 1 and bits 11:10 = 0b10: the register-offset class.
    pub const REG_MASK: u32 = 0x3f20_0c00;
    /// The value under [`REG_MASK`].
    pub const REG_VALUE: u32 = 0x3820_0800;
}

/// How an instruction updates its base register after the access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Writeback {
    /// The base register (x0..x30; SP is refused).
    pub rn: u8,
    /// Added to it (the signed imm9).
    pub offset: i64,
}

/// A decoded load or store: what [`DataAbortInsn`] says for syndrome-carrying
/// aborts, and the base-register update the syndrome cannot express.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct A64Access {
    /// Width, register, direction, extension.
    pub insn: DataAbortInsn,
    /// Pre- or post-indexed writeback, if any.
    pub writeback: Option<Writeback>,
}

/// Why an instruction is not an emulatable device load or store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum A64Error {
    /// Not a single-register integer load or store (a pair, an exclusive,
    /// an atomic, a SIMD&FP register, or not a memory access at all).
    Unsupported(u32),
    /// A load/store with writeback of the stack pointer.
    StackPointerWriteback(u32),
    /// A reserved or prefetch encoding of `opc` for its size.
    Reserved(u32),
}

impl fmt::Display for A64Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            A64Error::Unsupported(w) => write!(
                f,
                "instruction {w:#010x} is not a single-register integer load or store"
            ),
            A64Error::StackPointerWriteback(w) => {
                write!(f, "instruction {w:#010x} writes back SP on a device access")
            }
            A64Error::Reserved(w) => write!(f, "reserved load/store encoding {w:#010x}"),
        }
    }
}

impl A64Error {
    /// A short fixed description (for diagnostics without formatting).
    pub const fn why(&self) -> &'static str {
        match self {
            A64Error::Unsupported(_) => {
                "no valid syndrome, and the instruction is not a single-register integer load or store"
            }
            A64Error::StackPointerWriteback(_) => {
                "no valid syndrome, and the instruction writes back SP"
            }
            A64Error::Reserved(_) => "no valid syndrome, and a reserved load/store encoding",
        }
    }
}

/// Decodes `word`, the A64 instruction that made a syndrome-less Data
/// Abort on device memory.
pub const fn decode(word: u32) -> Result<A64Access, A64Error> {
    let writeback = if word & enc::IMM9_MASK == enc::IMM9_VALUE {
        match (word >> 10) & 3 {
            // Post-indexed (0b01) and pre-indexed (0b11): imm9 is added to
            // the base either way; the address is in FAR_EL2.
            0b01 | 0b11 => {
                let rn = ((word >> 5) & 31) as u8;
                if rn == 31 {
                    return Err(A64Error::StackPointerWriteback(word));
                }
                let imm9 = ((word >> 12) & 0x1ff) as i64;
                let offset = (imm9 << 55) >> 55;
                Some(Writeback { rn, offset })
            }
            // Unscaled (LDUR/STUR): no writeback.
            0b00 => None,
            // Unprivileged (LDTR/STTR) is not a device access we emulate.
            _ => return Err(A64Error::Unsupported(word)),
        }
    } else if word & enc::UIMM12_MASK == enc::UIMM12_VALUE || word & enc::REG_MASK == enc::REG_VALUE
    {
        None
    } else {
        return Err(A64Error::Unsupported(word));
    };
    let width = match word >> 30 {
        0 => Width::Byte,
        1 => Width::Half,
        2 => Width::Word,
        _ => Width::Double,
    };
    let (write, sign_extend, sixty_four) = match ((word >> 22) & 3, word >> 30) {
        (0b00, size) => (true, false, size == 3),
        (0b01, size) => (false, false, size == 3),
        // LDRSB/LDRSH/LDRSW into an X register.
        (0b10, size) if size < 3 => (false, true, true),
        // LDRSB/LDRSH into a W register.
        (0b11, size) if size < 2 => (false, true, false),
        _ => return Err(A64Error::Reserved(word)),
    };
    let rt = (word & 31) as u8;
    Ok(A64Access {
        insn: DataAbortInsn {
            width,
            reg: if rt == 31 { ZR } else { rt },
            sign_extend,
            sixty_four,
            write,
            acquire_release: false,
            len: 4,
        },
        writeback,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(word: u32) -> A64Access {
        decode(word).unwrap_or_else(|e| panic!("{word:#x}: {e}"))
    }

    #[test]
    fn post_indexed_byte_store_of_the_gic_driver() {
        // `strb w10, [x9], #1` (arm-gic-driver's ITARGETSR loop, as
        // llvm-objdump shows it in the arceos-fairsched image).
        let a = ok(0x3800_152a);
        assert_eq!(a.insn.width, Width::Byte);
        assert_eq!((a.insn.reg, a.insn.write), (10, true));
        assert_eq!(a.writeback, Some(Writeback { rn: 9, offset: 1 }));
        // `strb w10, [x8], #1`, the same loop for another register.
        assert_eq!(
            ok(0x3800_150a).writeback,
            Some(Writeback { rn: 8, offset: 1 })
        );
    }

    #[test]
    fn pre_and_post_index_with_negative_offsets() {
        // `ldr w1, [x2, #-4]!`: size 10, opc 01, imm9 -4, pre (11).
        let word = 0xb800_0000 | 0x40_0000 | (0x1fc << 12) | 0xc00 | (2 << 5) | 1;
        let a = ok(word);
        assert_eq!(a.insn.width, Width::Word);
        assert!(!a.insn.write && !a.insn.sixty_four && !a.insn.sign_extend);
        assert_eq!(a.insn.reg, 1);
        assert_eq!(a.writeback, Some(Writeback { rn: 2, offset: -4 }));
        // `ldrsh x3, [x4], #-256`: size 01, opc 10, imm9 0x100, post.
        let word = 0x7800_0000 | 0x80_0000 | (0x100 << 12) | 0x400 | (4 << 5) | 3;
        let a = ok(word);
        assert_eq!(a.insn.width, Width::Half);
        assert!(a.insn.sign_extend && a.insn.sixty_four);
        assert_eq!(
            a.writeback,
            Some(Writeback {
                rn: 4,
                offset: -256
            })
        );
        assert_eq!(a.insn.load_value(0x8000), 0xffff_ffff_ffff_8000);
    }

    #[test]
    fn forms_without_writeback() {
        // `str x5, [x6, #8]` (unsigned offset).
        let a = ok(0xf900_04c5);
        assert_eq!(a.insn.width, Width::Double);
        assert!(a.insn.write && a.insn.sixty_four);
        assert_eq!((a.insn.reg, a.writeback), (5, None));
        // `ldrsb w7, [x8, x9]` (register offset): size 00, opc 11.
        let word = 0x3820_0800 | 0xc0_0000 | (9 << 16) | (3 << 13) | (8 << 5) | 7;
        let a = ok(word);
        assert!(a.insn.sign_extend && !a.insn.sixty_four);
        assert_eq!(a.insn.load_value(0x80), 0xffff_ff80);
        // `stur wzr, [x0, #-1]` (unscaled): XZR stays the zero register.
        let word = 0xb800_0000 | (0x1ff << 12) | 31;
        let a = ok(word);
        assert_eq!((a.insn.reg, a.writeback), (ZR, None));
        assert_eq!(a.insn.store_value(&[7; 31]), 0);
    }

    #[test]
    fn other_instructions_are_refused() {
        // `stp x0, x1, [x2]`
        assert_eq!(decode(0xa900_0440), Err(A64Error::Unsupported(0xa900_0440)));
        // `ldxr w0, [x1]`
        assert!(matches!(decode(0x885f_7c20), Err(A64Error::Unsupported(_))));
        // `str q0, [x1]` (SIMD&FP: V = 1)
        assert!(matches!(decode(0x3d80_0020), Err(A64Error::Unsupported(_))));
        // `strb w0, [sp], #1`: writeback of SP.
        assert_eq!(
            decode(0x3800_17e0),
            Err(A64Error::StackPointerWriteback(0x3800_17e0))
        );
        // `ldrsw` into W (size 10, opc 11) is reserved; `prfm` (size 11,
        // opc 10) is not a load.
        assert!(matches!(decode(0xb9c0_0000), Err(A64Error::Reserved(_))));
        assert!(matches!(decode(0xf980_0000), Err(A64Error::Reserved(_))));
        // `nop`
        assert!(matches!(decode(0xd503_201f), Err(A64Error::Unsupported(_))));
    }
}
