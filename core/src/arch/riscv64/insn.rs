//! Decoding the load or store that faulted on emulated MMIO, for
//! trap-and-emulate on a guest-page fault.
//!
//! Two sources of instruction bits:
//!
//! - `htinst`, written by the hart on the trap. For a load or store it
//!   holds a *transformed* instruction (privileged specification, H
//!   extension, "Transformed Instruction or Pseudoinstruction for mtinst or
//!   htinst"): the 32-bit form of the instruction with its immediate offset
//!   and rs1 fields replaced (the rs1 field carries the "address offset" of
//!   a misaligned access; both are ignored here), bit 0 set, and bit 1 set
//!   for a 32-bit original or clear for a 16-bit compressed original, so
//!   the length to skip is known. Pseudoinstructions (bits 1:0 = 00) mark
//!   the implicit VS-stage page-table accesses, which are never MMIO to
//!   emulate; 0 means "no information", and the caller fetches the
//!   instruction from guest memory itself (`HLVX.HU`). See
//!   [`decode_transformed`].
//! - The raw instruction fetched at the guest's `sepc`: a 32-bit
//!   instruction, or a compressed one in the low 16 bits. See
//!   [`decode_raw`].
//!
//! Only the integer loads and stores of RV64I and their compressed forms
//! are accepted; AMOs, LR/SC and floating-point loads/stores are refused
//! with a [`DecodeError`] that names them: their semantics on a device
//! (atomicity, FP registers) are not something the emulation provides.

use core::fmt;

use crate::devices::Width;

/// Major opcodes (bits 6:0) of 32-bit instructions (Unprivileged ISA,
/// "RV32/64G Instruction Set Listings", opcode map).
pub mod opcode {
    /// Integer loads: LB LH LW LBU LHU (RV32I "Load and Store
    /// Instructions"), LD LWU (RV64I "Load and Store Instructions").
    pub const LOAD: u32 = 0b000_0011;
    /// Floating-point loads FLW FLD (F/D extensions).
    pub const LOAD_FP: u32 = 0b000_0111;
    /// Integer stores SB SH SW (RV32I), SD (RV64I).
    pub const STORE: u32 = 0b010_0011;
    /// Floating-point stores FSW FSD.
    pub const STORE_FP: u32 = 0b010_0111;
    /// Atomics: LR, SC and the AMOs ("A" extension).
    pub const AMO: u32 = 0b010_1111;
}

/// `funct3` (bits 14:12) of the LOAD opcode: the width and signedness.
pub mod load_funct3 {
    /// LB: byte, sign-extended.
    pub const LB: u32 = 0b000;
    /// LH: halfword, sign-extended.
    pub const LH: u32 = 0b001;
    /// LW: word, sign-extended (RV64I).
    pub const LW: u32 = 0b010;
    /// LD: doubleword (RV64I).
    pub const LD: u32 = 0b011;
    /// LBU: byte, zero-extended.
    pub const LBU: u32 = 0b100;
    /// LHU: halfword, zero-extended.
    pub const LHU: u32 = 0b101;
    /// LWU: word, zero-extended (RV64I).
    pub const LWU: u32 = 0b110;
}

/// `funct3` of the STORE opcode: the width.
pub mod store_funct3 {
    /// SB: byte.
    pub const SB: u32 = 0b000;
    /// SH: halfword.
    pub const SH: u32 = 0b001;
    /// SW: word.
    pub const SW: u32 = 0b010;
    /// SD: doubleword (RV64I).
    pub const SD: u32 = 0b011;
}

/// Compressed instructions ("C" extension): quadrant (bits 1:0) and
/// `funct3` (bits 15:13) of the loads and stores, RV64C encodings.
pub mod compressed {
    /// Quadrant 0: register-based loads/stores, CL and CS formats.
    pub const QUADRANT_0: u16 = 0b00;
    /// Quadrant 2: stack-pointer-based loads/stores, CI and CSS formats.
    pub const QUADRANT_2: u16 = 0b10;
    /// C.FLD (Q0) / C.FLDSP (Q2).
    pub const FLD: u16 = 0b001;
    /// C.LW (Q0) / C.LWSP (Q2).
    pub const LW: u16 = 0b010;
    /// C.LD (Q0) / C.LDSP (Q2) on RV64 (C.FLW on RV32).
    pub const LD: u16 = 0b011;
    /// Reserved in Q0 (Zcb's byte/halfword forms live here).
    pub const Q0_RESERVED: u16 = 0b100;
    /// C.FSD (Q0) / C.FSDSP (Q2).
    pub const FSD: u16 = 0b101;
    /// C.SW (Q0) / C.SWSP (Q2).
    pub const SW: u16 = 0b110;
    /// C.SD (Q0) / C.SDSP (Q2) on RV64 (C.FSW on RV32).
    pub const SD: u16 = 0b111;
    /// The 3-bit register fields rd'/rs1'/rs2' name x8..x15.
    pub const REG_PRIME_BASE: u8 = 8;
}

/// `htinst` pseudoinstructions for implicit VS-stage page-table accesses
/// (privileged specification, H extension, table "Special pseudoinstruction
/// values for guest-page faults").
pub mod pseudo {
    /// 32-bit read for VS-stage address translation.
    pub const READ32: u64 = 0x0000_2000;
    /// 32-bit write for VS-stage address translation (A/D bit update).
    pub const WRITE32: u64 = 0x0000_2020;
    /// 64-bit read for VS-stage address translation.
    pub const READ64: u64 = 0x0000_3000;
    /// 64-bit write for VS-stage address translation (A/D bit update).
    pub const WRITE64: u64 = 0x0000_3020;
}

/// What the faulting instruction does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioOp {
    /// A load into `rd`, sign-extended if `signed` (LB LH LW; LD is marked
    /// signed too, which changes nothing at 64 bits).
    Load {
        /// Destination register number; x0 means the value is discarded.
        rd: u8,
        /// Sign- (true) or zero-extend the loaded value to 64 bits.
        signed: bool,
    },
    /// A store of the low bytes of `rs2` (x0 reads as zero).
    Store {
        /// Source register number.
        rs2: u8,
    },
}

/// A decoded MMIO load or store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioInsn {
    /// Load or store, and the register involved.
    pub op: MmioOp,
    /// Access width.
    pub width: Width,
    /// Instruction length in bytes (2 or 4): how far to advance `sepc`.
    pub len: u8,
}

impl MmioInsn {
    /// The register a load writes, or `None` for a store or a load into x0
    /// (whose value is discarded; the access itself still happens).
    pub const fn dest(&self) -> Option<u8> {
        match self.op {
            MmioOp::Load { rd, .. } if rd != 0 => Some(rd),
            _ => None,
        }
    }

    /// Whether this is a store.
    pub const fn is_store(&self) -> bool {
        matches!(self.op, MmioOp::Store { .. })
    }

    /// The register value a load leaves, from the device's `raw` value
    /// (extended per the instruction; stores return `raw` masked).
    pub const fn load_value(&self, raw: u64) -> u64 {
        match self.op {
            MmioOp::Load { signed, .. } => load_value(raw, self.width, signed),
            MmioOp::Store { .. } => raw & self.width.mask(),
        }
    }
}

/// Extends the low `width` bytes of `raw` to 64 bits: sign-extension for
/// LB/LH/LW, zero-extension for LBU/LHU/LWU. Bits above `width` are ignored.
pub const fn load_value(raw: u64, width: Width, signed: bool) -> u64 {
    let bits = 8 * width.bytes() as u32;
    if bits == 64 {
        raw
    } else if signed {
        let shift = 64 - bits;
        (((raw << shift) as i64) >> shift) as u64
    } else {
        raw & width.mask()
    }
}

/// Why an instruction is not an emulatable MMIO load or store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// LR, SC or an AMO (opcode 0x2F): no atomic accesses to devices.
    Atomic(u32),
    /// A floating-point load or store (FLW FSW FLD FSD, C.FLD C.FSD
    /// C.FLDSP C.FSDSP).
    FloatingPoint(u32),
    /// An `htinst` pseudoinstruction: an implicit VS-stage page-table
    /// access faulted, i.e. the guest's page tables are not in RAM.
    Pseudoinstruction(u64),
    /// An `htinst` value that is neither a transformed instruction nor a
    /// known pseudoinstruction.
    UnknownHtinst(u64),
    /// A reserved encoding in the load/store space (LOAD funct3 7, STORE
    /// funct3 4..7, C.LWSP/C.LDSP with rd = x0, compressed Q0 funct3 100).
    Reserved(u32),
    /// Some other instruction.
    NotLoadStore(u32),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::Atomic(b) => write!(f, "atomic (LR/SC/AMO) instruction {b:#010x} on MMIO"),
            DecodeError::FloatingPoint(b) => {
                write!(f, "floating-point load/store {b:#010x} on MMIO")
            }
            DecodeError::Pseudoinstruction(b) => write!(
                f,
                "htinst pseudoinstruction {b:#x}: implicit VS-stage page-table access"
            ),
            DecodeError::UnknownHtinst(b) => write!(f, "unrecognized htinst value {b:#x}"),
            DecodeError::Reserved(b) => write!(f, "reserved load/store encoding {b:#010x}"),
            DecodeError::NotLoadStore(b) => {
                write!(f, "instruction {b:#010x} is not a load or store")
            }
        }
    }
}

/// Decodes `htinst` after a guest-page fault. `Ok(None)` means the hart
/// gave no information (`htinst` = 0): fetch the instruction at `sepc` and
/// use [`decode_raw`].
pub fn decode_transformed(htinst: u64) -> Result<Option<MmioInsn>, DecodeError> {
    if htinst == 0 {
        return Ok(None);
    }
    if htinst & 1 == 0 {
        return Err(match htinst {
            pseudo::READ32 | pseudo::WRITE32 | pseudo::READ64 | pseudo::WRITE64 => {
                DecodeError::Pseudoinstruction(htinst)
            }
            _ => DecodeError::UnknownHtinst(htinst),
        });
    }
    let Ok(bits) = u32::try_from(htinst) else {
        return Err(DecodeError::UnknownHtinst(htinst));
    };
    // Bit 1 tells the original length; with it forced to 1 the value is an
    // ordinary 32-bit encoding.
    let len = if bits & 2 != 0 { 4 } else { 2 };
    decode_32(bits | 0b11, len).map(Some)
}

/// Decodes an instruction fetched from guest memory: 32 bits if bits 1:0
/// are 11, otherwise a compressed instruction in the low 16 bits (the
/// upper 16 are then ignored; they belong to the next instruction).
pub fn decode_raw(insn: u32) -> Result<MmioInsn, DecodeError> {
    if insn & 0b11 == 0b11 {
        decode_32(insn, 4)
    } else {
        decode_16(insn as u16)
    }
}

fn field(bits: u32, lo: u32, len: u32) -> u32 {
    (bits >> lo) & ((1 << len) - 1)
}

/// A 32-bit load or store (I-type and S-type formats).
fn decode_32(bits: u32, len: u8) -> Result<MmioInsn, DecodeError> {
    let funct3 = field(bits, 12, 3);
    let rd = field(bits, 7, 5) as u8;
    let rs2 = field(bits, 20, 5) as u8;
    let load = |width, signed| {
        Ok(MmioInsn {
            op: MmioOp::Load { rd, signed },
            width,
            len,
        })
    };
    let store = |width| {
        Ok(MmioInsn {
            op: MmioOp::Store { rs2 },
            width,
            len,
        })
    };
    match bits & 0x7f {
        opcode::LOAD => match funct3 {
            load_funct3::LB => load(Width::Byte, true),
            load_funct3::LH => load(Width::Half, true),
            load_funct3::LW => load(Width::Word, true),
            load_funct3::LD => load(Width::Double, true),
            load_funct3::LBU => load(Width::Byte, false),
            load_funct3::LHU => load(Width::Half, false),
            load_funct3::LWU => load(Width::Word, false),
            _ => Err(DecodeError::Reserved(bits)),
        },
        opcode::STORE => match funct3 {
            store_funct3::SB => store(Width::Byte),
            store_funct3::SH => store(Width::Half),
            store_funct3::SW => store(Width::Word),
            store_funct3::SD => store(Width::Double),
            _ => Err(DecodeError::Reserved(bits)),
        },
        opcode::AMO => Err(DecodeError::Atomic(bits)),
        opcode::LOAD_FP | opcode::STORE_FP => Err(DecodeError::FloatingPoint(bits)),
        _ => Err(DecodeError::NotLoadStore(bits)),
    }
}

/// A compressed load or store: CL/CS (quadrant 0, rd'/rs2' in bits 4:2)
/// and CI/CSS (quadrant 2, sp-based, rd in bits 11:7 or rs2 in bits 6:2).
fn decode_16(insn: u16) -> Result<MmioInsn, DecodeError> {
    use compressed::*;
    let bits = u32::from(insn);
    let funct3 = insn >> 13;
    let reg_prime = REG_PRIME_BASE + field(bits, 2, 3) as u8;
    let rd_full = field(bits, 7, 5) as u8;
    let rs2_full = field(bits, 2, 5) as u8;
    let op = match (insn & 0b11, funct3) {
        (QUADRANT_0, LW) => (
            MmioOp::Load {
                rd: reg_prime,
                signed: true,
            },
            Width::Word,
        ),
        (QUADRANT_0, LD) => (
            MmioOp::Load {
                rd: reg_prime,
                signed: true,
            },
            Width::Double,
        ),
        (QUADRANT_0, SW) => (MmioOp::Store { rs2: reg_prime }, Width::Word),
        (QUADRANT_0, SD) => (MmioOp::Store { rs2: reg_prime }, Width::Double),
        (QUADRANT_0, FLD | FSD) | (QUADRANT_2, FLD | FSD) => {
            return Err(DecodeError::FloatingPoint(bits));
        }
        (QUADRANT_0, Q0_RESERVED) => return Err(DecodeError::Reserved(bits)),
        // C.LWSP and C.LDSP with rd = x0 are reserved encodings.
        (QUADRANT_2, LW | LD) if rd_full == 0 => return Err(DecodeError::Reserved(bits)),
        (QUADRANT_2, LW) => (
            MmioOp::Load {
                rd: rd_full,
                signed: true,
            },
            Width::Word,
        ),
        (QUADRANT_2, LD) => (
            MmioOp::Load {
                rd: rd_full,
                signed: true,
            },
            Width::Double,
        ),
        (QUADRANT_2, SW) => (MmioOp::Store { rs2: rs2_full }, Width::Word),
        (QUADRANT_2, SD) => (MmioOp::Store { rs2: rs2_full }, Width::Double),
        _ => return Err(DecodeError::NotLoadStore(bits)),
    };
    Ok(MmioInsn {
        op: op.0,
        width: op.1,
        len: 2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Hand assemblers, from the format diagrams of the Unprivileged ISA.

    /// I-type: imm[11:0] | rs1 | funct3 | rd | opcode.
    fn i_type(imm: i32, rs1: u32, funct3: u32, rd: u32, opcode: u32) -> u32 {
        ((imm as u32 & 0xfff) << 20) | (rs1 << 15) | (funct3 << 12) | (rd << 7) | opcode
    }

    /// S-type: imm[11:5] | rs2 | rs1 | funct3 | imm[4:0] | opcode.
    fn s_type(imm: i32, rs2: u32, rs1: u32, funct3: u32, opcode: u32) -> u32 {
        let imm = imm as u32 & 0xfff;
        ((imm >> 5) << 25)
            | (rs2 << 20)
            | (rs1 << 15)
            | (funct3 << 12)
            | ((imm & 0x1f) << 7)
            | opcode
    }

    fn bit(v: u32, n: u32) -> u32 {
        (v >> n) & 1
    }

    /// CL/CS word: funct3 | uimm[5:3] | rs1' | uimm[2] uimm[6] | rd'/rs2' | 00.
    fn c_word(funct3: u32, reg: u32, rs1: u32, uimm: u32) -> u32 {
        (funct3 << 13)
            | (((uimm >> 3) & 7) << 10)
            | ((rs1 - 8) << 7)
            | (bit(uimm, 2) << 6)
            | (bit(uimm, 6) << 5)
            | ((reg - 8) << 2)
    }

    /// CL/CS doubleword: funct3 | uimm[5:3] | rs1' | uimm[7:6] | rd'/rs2' | 00.
    fn c_double(funct3: u32, reg: u32, rs1: u32, uimm: u32) -> u32 {
        (funct3 << 13)
            | (((uimm >> 3) & 7) << 10)
            | ((rs1 - 8) << 7)
            | (((uimm >> 6) & 3) << 5)
            | ((reg - 8) << 2)
    }

    /// C.LWSP (CI): 010 | uimm[5] | rd | uimm[4:2|7:6] | 10.
    fn c_lwsp(rd: u32, uimm: u32) -> u32 {
        (0b010 << 13)
            | (bit(uimm, 5) << 12)
            | (rd << 7)
            | (((uimm >> 2) & 7) << 4)
            | (((uimm >> 6) & 3) << 2)
            | 0b10
    }

    /// C.LDSP (CI): 011 | uimm[5] | rd | uimm[4:3|8:6] | 10.
    fn c_ldsp(rd: u32, uimm: u32) -> u32 {
        (0b011 << 13)
            | (bit(uimm, 5) << 12)
            | (rd << 7)
            | (((uimm >> 3) & 3) << 5)
            | (((uimm >> 6) & 7) << 2)
            | 0b10
    }

    /// C.SWSP (CSS): 110 | uimm[5:2|7:6] | rs2 | 10.
    fn c_swsp(rs2: u32, uimm: u32) -> u32 {
        (0b110 << 13) | (((uimm >> 2) & 0xf) << 9) | (((uimm >> 6) & 3) << 7) | (rs2 << 2) | 0b10
    }

    /// C.SDSP (CSS): 111 | uimm[5:3|8:6] | rs2 | 10.
    fn c_sdsp(rs2: u32, uimm: u32) -> u32 {
        (0b111 << 13) | (((uimm >> 3) & 7) << 10) | (((uimm >> 6) & 7) << 7) | (rs2 << 2) | 0b10
    }

    fn load(rd: u8, signed: bool, width: Width, len: u8) -> MmioInsn {
        MmioInsn {
            op: MmioOp::Load { rd, signed },
            width,
            len,
        }
    }

    fn store(rs2: u8, width: Width, len: u8) -> MmioInsn {
        MmioInsn {
            op: MmioOp::Store { rs2 },
            width,
            len,
        }
    }

    use Width::{Byte, Double, Half, Word};
    use opcode::{LOAD, STORE};

    /// (llvm-mc encoding, hand-assembled encoding, expected decode)
    fn full_forms() -> [(u32, u32, MmioInsn); 12] {
        [
            // lb a0, -1(a1)
            (
                0xfff5_8503,
                i_type(-1, 11, 0, 10, LOAD),
                load(10, true, Byte, 4),
            ),
            // lh t0, 2(sp)
            (
                0x0021_1283,
                i_type(2, 2, 1, 5, LOAD),
                load(5, true, Half, 4),
            ),
            // lw s1, 8(a0)
            (
                0x0085_2483,
                i_type(8, 10, 2, 9, LOAD),
                load(9, true, Word, 4),
            ),
            // ld ra, -8(s0)
            (
                0xff84_3083,
                i_type(-8, 8, 3, 1, LOAD),
                load(1, true, Double, 4),
            ),
            // lbu a5, 0(a4)
            (
                0x0007_4783,
                i_type(0, 14, 4, 15, LOAD),
                load(15, false, Byte, 4),
            ),
            // lhu a5, 6(a4)
            (
                0x0067_5783,
                i_type(6, 14, 5, 15, LOAD),
                load(15, false, Half, 4),
            ),
            // lwu t6, 2047(t5)
            (
                0x7fff_6f83,
                i_type(2047, 30, 6, 31, LOAD),
                load(31, false, Word, 4),
            ),
            // sb a0, 1(a1)
            (0x00a5_80a3, s_type(1, 10, 11, 0, STORE), store(10, Byte, 4)),
            // sh t1, -2(a2)
            (0xfe66_1f23, s_type(-2, 6, 12, 1, STORE), store(6, Half, 4)),
            // sw s2, 4(gp)
            (0x0121_a223, s_type(4, 18, 3, 2, STORE), store(18, Word, 4)),
            // sd s11, -2048(sp)
            (
                0x81b1_3023,
                s_type(-2048, 27, 2, 3, STORE),
                store(27, Double, 4),
            ),
            // lw zero, 0(a0)
            (
                0x0005_2003,
                i_type(0, 10, 2, 0, LOAD),
                load(0, true, Word, 4),
            ),
        ]
    }

    fn compressed_forms() -> [(u32, u32, MmioInsn); 8] {
        [
            // c.lw a0, 4(a1)
            (0x41c8, c_word(0b010, 10, 11, 4), load(10, true, Word, 2)),
            // c.ld s1, 8(a5)
            (0x6784, c_double(0b011, 9, 15, 8), load(9, true, Double, 2)),
            // c.sw a3, 124(s0)
            (0xdc74, c_word(0b110, 13, 8, 124), store(13, Word, 2)),
            // c.sd a2, 248(s1)
            (0xfcf0, c_double(0b111, 12, 9, 248), store(12, Double, 2)),
            // c.lwsp ra, 252(sp)
            (0x50fe, c_lwsp(1, 252), load(1, true, Word, 2)),
            // c.ldsp t6, 504(sp)
            (0x7ffe, c_ldsp(31, 504), load(31, true, Double, 2)),
            // c.swsp s0, 0(sp)
            (0xc022, c_swsp(8, 0), store(8, Word, 2)),
            // c.sdsp a7, 8(sp)
            (0xe446, c_sdsp(17, 8), store(17, Double, 2)),
        ]
    }

    #[test]
    fn full_size_loads_and_stores() {
        for (llvm, hand, want) in full_forms() {
            assert_eq!(llvm, hand, "hand assembly of {want:?}");
            assert_eq!(decode_raw(llvm), Ok(want), "{llvm:#010x}");
        }
    }

    #[test]
    fn compressed_loads_and_stores() {
        for (llvm, hand, want) in compressed_forms() {
            assert_eq!(llvm, hand, "hand assembly of {want:?}");
            assert_eq!(decode_raw(llvm), Ok(want), "{llvm:#06x}");
            // The next instruction's half in the upper bits is ignored.
            assert_eq!(decode_raw(0xabcd_0000 | llvm), Ok(want));
        }
    }

    /// The transformed form of a decoded instruction, built independently
    /// from the spec: the 32-bit equivalent with rs1 and the offset zeroed,
    /// bit 1 cleared for a compressed original.
    fn transformed(want: &MmioInsn) -> u64 {
        let (f3, opc, regfield) = match want.op {
            MmioOp::Load { rd, signed } => {
                let f3 = match (want.width, signed) {
                    (Byte, true) => 0,
                    (Half, true) => 1,
                    (Word, true) => 2,
                    (Double, _) => 3,
                    (Byte, false) => 4,
                    (Half, false) => 5,
                    (Word, false) => 6,
                };
                (f3, LOAD, u32::from(rd) << 7)
            }
            MmioOp::Store { rs2 } => {
                let f3 = want.width.bytes().trailing_zeros();
                (f3, STORE, u32::from(rs2) << 20)
            }
        };
        let v = regfield | (f3 << 12) | opc;
        u64::from(if want.len == 2 { v & !2 } else { v })
    }

    #[test]
    fn transformed_htinst() {
        for (_, _, want) in full_forms().into_iter().chain(compressed_forms()) {
            let h = transformed(&want);
            assert_eq!(decode_transformed(h), Ok(Some(want)), "{h:#x}");
        }
        // c.lw a0, 4(a1) -> "lw a0, 0(x0)" with bit 1 clear.
        assert_eq!(
            decode_transformed(0x2501),
            Ok(Some(load(10, true, Word, 2)))
        );
        assert_eq!(
            decode_transformed(0x2503),
            Ok(Some(load(10, true, Word, 4)))
        );
        // A misaligned access's address offset in the rs1 field is ignored.
        assert_eq!(
            decode_transformed(0x2503 | (3 << 15)),
            Ok(Some(load(10, true, Word, 4)))
        );
        // No information: fetch needed.
        assert_eq!(decode_transformed(0), Ok(None));
    }

    #[test]
    fn pseudoinstructions_and_junk_htinst() {
        for p in [
            pseudo::READ32,
            pseudo::WRITE32,
            pseudo::READ64,
            pseudo::WRITE64,
        ] {
            assert_eq!(
                decode_transformed(p),
                Err(DecodeError::Pseudoinstruction(p))
            );
        }
        assert_eq!(
            decode_transformed(0x4000),
            Err(DecodeError::UnknownHtinst(0x4000))
        );
        assert_eq!(
            decode_transformed(1 << 40 | 0x2503),
            Err(DecodeError::UnknownHtinst(1 << 40 | 0x2503))
        );
        // A transformed AMO is still an AMO.
        assert_eq!(
            decode_transformed(0x00b0_252f),
            Err(DecodeError::Atomic(0x00b0_252f))
        );
    }

    #[test]
    fn atomics_and_floating_point_are_refused() {
        // amoadd.w, amoswap.d, lr.w, sc.d
        for bits in [0x00b6_252f, 0x08b6_352f, 0x1005_a52f, 0x18b6_352f] {
            assert_eq!(decode_raw(bits), Err(DecodeError::Atomic(bits)));
        }
        // flw, fsw, fld, fsd
        for bits in [0x0005_2507, 0x00a5_2027, 0x0005_3507, 0x00a5_3027] {
            assert_eq!(decode_raw(bits), Err(DecodeError::FloatingPoint(bits)));
        }
        // c.fld, c.fsd, c.fldsp, c.fsdsp
        for bits in [0x2588, 0xa588, 0x2442, 0xa822] {
            assert_eq!(decode_raw(bits), Err(DecodeError::FloatingPoint(bits)));
        }
        let e = decode_raw(0x00b6_252f).unwrap_err();
        assert_eq!(
            e.to_string(),
            "atomic (LR/SC/AMO) instruction 0x00b6252f on MMIO"
        );
    }

    #[test]
    fn other_instructions_are_refused() {
        // addi a0, a0, 1; c.addi a0, 1; c.addi4spn a0, sp, 16
        for bits in [0x0015_0513, 0x0505, 0x0808] {
            assert_eq!(decode_raw(bits), Err(DecodeError::NotLoadStore(bits)));
        }
        // LOAD funct3 7, STORE funct3 4, C.LWSP x0, C.LDSP x0, Q0 funct3 100.
        for bits in [
            i_type(0, 10, 7, 10, LOAD),
            s_type(0, 10, 11, 4, STORE),
            c_lwsp(0, 4),
            c_ldsp(0, 8),
            0x8000,
        ] {
            assert_eq!(
                decode_raw(bits),
                Err(DecodeError::Reserved(bits)),
                "{bits:#x}"
            );
        }
    }

    #[test]
    fn sign_and_zero_extension() {
        assert_eq!(load_value(0x80, Byte, true), 0xffff_ffff_ffff_ff80);
        assert_eq!(load_value(0x80, Byte, false), 0x80);
        assert_eq!(load_value(0x7f, Byte, true), 0x7f);
        assert_eq!(load_value(0x1234_8001, Half, true), 0xffff_ffff_ffff_8001);
        assert_eq!(load_value(0x1234_8001, Half, false), 0x8001);
        assert_eq!(
            load_value(0xdead_8000_0000, Word, true),
            0xffff_ffff_8000_0000
        );
        assert_eq!(load_value(0xdead_8000_0000, Word, false), 0x8000_0000);
        assert_eq!(load_value(0x7fff_ffff, Word, true), 0x7fff_ffff);
        assert_eq!(load_value(u64::MAX - 1, Double, false), u64::MAX - 1);
        assert_eq!(load_value(u64::MAX - 1, Double, true), u64::MAX - 1);
        // Through the decoded instructions: lb vs lbu.
        let lb = decode_raw(0xfff5_8503).unwrap();
        let lbu = decode_raw(0x0007_4783).unwrap();
        assert_eq!(lb.load_value(0xf0), 0xffff_ffff_ffff_fff0);
        assert_eq!(lbu.load_value(0xf0), 0xf0);
        let lwu = decode_raw(0x7fff_6f83).unwrap();
        assert_eq!(lwu.load_value(0xffff_ffff), 0xffff_ffff);
        let c_lw = decode_raw(0x41c8).unwrap();
        assert_eq!(c_lw.load_value(0xffff_ffff), u64::MAX);
    }

    #[test]
    fn x0_destination_is_discarded() {
        let lw_zero = decode_raw(0x0005_2003).unwrap();
        assert_eq!(lw_zero.dest(), None);
        assert!(!lw_zero.is_store());
        assert_eq!(decode_raw(0x0085_2483).unwrap().dest(), Some(9));
        let sw = decode_raw(0x0121_a223).unwrap();
        assert_eq!(sw.dest(), None);
        assert!(sw.is_store());
    }
}
