//! Decoding the x86 instruction whose access to an emulated device trapped
//! (an SVM nested page fault), as far as kernels use instructions on device
//! registers: `MOV` between a register and memory (`88`, `89`, `8A`, `8B`),
//! `MOV` of an immediate to memory (`C6 /0`, `C7 /0`), `MOV` between the
//! accumulator and an absolute address (`A0`..`A3`), `MOVZX` (`0F B6`,
//! `0F B7`), and `AND`, `OR`, `XOR` with a memory destination (`08`, `09`,
//! `20`, `21`, `30`, `31`, and `80`, `81`, `83` with `/1`, `/4`, `/6`):
//! compilers fold a volatile read, a bit operation and a volatile write of
//! the same register into one of these (ArceOS's `set_enable` masks an
//! I/O APIC entry with `andl $0xfffeffff,(%rcx)`). Such an instruction is
//! a read of the device, then a write of the result; it sets the
//! arithmetic flags as the logical instructions do ([`logic_flags`]).
//!
//! Encodings from the AMD APM vol. 3 chapter 1 "Instruction Encoding" and
//! the instruction pages of `MOV` and `MOVZX` (the Intel SDM vol. 2 agrees):
//! legacy prefixes, then in 64-bit mode an optional REX (`40`..`4F`, W R X
//! B), the opcode, ModRM, an optional SIB, a displacement (8 or 32 bits,
//! or RIP-relative 32 with ModRM mod 00 r/m 101 in 64-bit mode) and an
//! immediate.
//!
//! The fault already gives the guest-physical address, so the addressing
//! bytes are decoded only for their length; which register or immediate
//! moves, how wide, in which direction and the instruction's length are
//! what come out ([`MmioInsn`]). Accepted prefixes: operand size (`66`),
//! the segment overrides (they change the linear address, which the fault
//! already resolved), address size (`67`) in 64-bit mode (same ModRM
//! layout, 32-bit registers) and REX. Anything else (another opcode, `LOCK`
//! or `REP`, a register operand, a 16-bit code segment) is a typed
//! [`DecodeError`]; the VM then stops naming it.
//!
//! Register semantics of a load (APM vol. 1, 3.1.2 "64-Bit-Mode Registers"):
//! an 8- or 16-bit destination keeps the rest of its register, a 32-bit one
//! zero-extends into all 64 bits. Without a REX prefix the 8-bit registers
//! 4-7 are AH, CH, DH and BH; with any REX they are SPL, BPL, SIL, DIL.

use crate::devices::Width;
use core::fmt;

/// The code segment's default size, from CS.L and CS.D (and EFER.LMA).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeSize {
    /// 64-bit mode (long mode, CS.L = 1).
    Bits64,
    /// 32-bit protected or compatibility mode (CS.D = 1).
    Bits32,
    /// 16-bit code (real mode, or CS.D = 0): not decoded.
    Bits16,
}

/// A register an access moves to or from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Register {
    /// General register 0-15 in encoding order: RAX, RCX, RDX, RBX, RSP,
    /// RBP, RSI, RDI, R8..R15 (its low bytes for narrow accesses).
    Gpr(u8),
    /// Bits 15:8 of RAX, RCX, RDX or RBX (AH, CH, DH, BH: 0-3).
    HighByte(u8),
}

impl Register {
    /// The general register holding it (0-15).
    pub const fn gpr(self) -> u8 {
        match self {
            Register::Gpr(n) | Register::HighByte(n) => n,
        }
    }
}

/// A bitwise operation a read-modify-write applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogicOp {
    /// `AND`.
    And,
    /// `OR`.
    Or,
    /// `XOR`.
    Xor,
}

impl LogicOp {
    /// `a op b`.
    pub const fn apply(self, a: u64, b: u64) -> u64 {
        match self {
            LogicOp::And => a & b,
            LogicOp::Or => a | b,
            LogicOp::Xor => a ^ b,
        }
    }
}

/// The source operand of a read-modify-write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// A register's low bytes.
    Reg(Register),
    /// An immediate (sign-extended to 64 bits where the instruction
    /// sign-extends it).
    Imm(u64),
}

/// What the instruction moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioOp {
    /// A load into `dst`, which is `dst_size` wide (wider than the access
    /// for `MOVZX`, which zero-extends).
    Load {
        /// The destination.
        dst: Register,
        /// The destination's operand size.
        dst_size: Width,
    },
    /// A store of a register's low bytes.
    StoreReg(Register),
    /// A store of an immediate (sign-extended to 64 bits where the
    /// instruction sign-extends it).
    StoreImm(u64),
    /// A read of the device, `op` with `src`, and a write of the result.
    Modify {
        /// The operation.
        op: LogicOp,
        /// The other operand.
        src: Operand,
    },
}

/// RFLAGS bits the logical instructions write.
pub mod flags {
    /// Carry.
    pub const CF: u64 = 1 << 0;
    /// Parity (of the low byte).
    pub const PF: u64 = 1 << 2;
    /// Auxiliary carry (undefined after a logical instruction).
    pub const AF: u64 = 1 << 4;
    /// Zero.
    pub const ZF: u64 = 1 << 6;
    /// Sign.
    pub const SF: u64 = 1 << 7;
    /// Overflow.
    pub const OF: u64 = 1 << 11;
}

/// RFLAGS after `AND`, `OR` or `XOR` produced `result` (`width` wide):
/// CF and OF cleared, SF, ZF and PF from the result, AF (undefined)
/// cleared, every other bit of `rflags` kept.
pub const fn logic_flags(rflags: u64, result: u64, width: Width) -> u64 {
    use flags::*;
    let result = result & width.mask();
    let mut f = rflags & !(CF | PF | AF | ZF | SF | OF);
    if result == 0 {
        f |= ZF;
    }
    if result >> (8 * width.bytes() - 1) & 1 != 0 {
        f |= SF;
    }
    if (result as u8).count_ones() & 1 == 0 {
        f |= PF;
    }
    f
}

/// One decoded device access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioInsn {
    /// The instruction's length in bytes: the guest resumes this far on.
    pub len: u8,
    /// How many bytes are accessed.
    pub width: Width,
    /// Load or store, and of what.
    pub op: MmioOp,
}

impl MmioInsn {
    /// Whether this is a load.
    pub const fn is_load(&self) -> bool {
        matches!(self.op, MmioOp::Load { .. })
    }

    /// The value a store writes (its low `width` bytes), from the guest's
    /// general registers in encoding order; `None` for a load or a
    /// read-modify-write.
    pub fn store_value(&self, gprs: &[u64; 16]) -> Option<u64> {
        let v = match self.op {
            MmioOp::Load { .. } | MmioOp::Modify { .. } => return None,
            MmioOp::StoreReg(r) => read(r, gprs),
            MmioOp::StoreImm(imm) => imm,
        };
        Some(v & self.width.mask())
    }

    /// A read-modify-write's value to write back, given the `value` read
    /// from the device; `None` for anything else.
    pub fn modified(&self, value: u64, gprs: &[u64; 16]) -> Option<u64> {
        let MmioOp::Modify { op, src } = self.op else {
            return None;
        };
        let src = match src {
            Operand::Reg(r) => read(r, gprs),
            Operand::Imm(imm) => imm,
        };
        Some(op.apply(value, src) & self.width.mask())
    }

    /// A load's destination and the register's new value, given its old
    /// value and the `value` read (zero-extended from the access width);
    /// `None` for a store.
    pub fn load_result(&self, old: u64, value: u64) -> Option<(Register, u64)> {
        let MmioOp::Load { dst, dst_size } = self.op else {
            return None;
        };
        let value = value & self.width.mask();
        let new = match (dst, dst_size) {
            (Register::HighByte(_), _) => (old & !0xff00) | ((value & 0xff) << 8),
            (_, Width::Byte | Width::Half) => (old & !dst_size.mask()) | value,
            (_, Width::Word | Width::Double) => value,
        };
        Some((dst, new))
    }
}

/// The value of register `r` (AH..BH shifted down).
fn read(r: Register, gprs: &[u64; 16]) -> u64 {
    match r {
        Register::Gpr(n) => gprs[usize::from(n)],
        Register::HighByte(n) => gprs[usize::from(n)] >> 8,
    }
}

/// Why the instruction cannot be emulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes ran out before the instruction did (`have` bytes were
    /// fetched).
    Truncated {
        /// How many bytes there were.
        have: usize,
    },
    /// More than 15 bytes, which no instruction may be.
    TooLong,
    /// A prefix this decoder does not accept (`LOCK`, `REP`, ...).
    Prefix(u8),
    /// An opcode other than the moves above (`0F xx` as `0x0Fxx`).
    Opcode(u16),
    /// A `C6`/`C7` with a ModRM reg field other than 0 (not `MOV`), or an
    /// `80`/`81`/`83` other than `/1` (`OR`), `/4` (`AND`), `/6` (`XOR`).
    OpcodeExtension {
        /// The opcode.
        opcode: u16,
        /// The ModRM reg field.
        reg: u8,
    },
    /// The operand is a register, so the instruction accesses no memory.
    RegisterOperand(u16),
    /// The code segment is 16-bit.
    Code16,
}

impl DecodeError {
    /// A fixed description, for diagnostics that carry the bytes
    /// separately.
    pub const fn why(&self) -> &'static str {
        match self {
            DecodeError::Truncated { .. } => {
                "the instruction runs past the bytes that could be fetched"
            }
            DecodeError::TooLong => "longer than 15 bytes",
            DecodeError::Prefix(_) => {
                "a prefix other than 66, 67, a segment override or REX (LOCK or REP?)"
            }
            DecodeError::Opcode(_) => {
                "not a MOV, MOVZX, or AND/OR/XOR to memory (88, 89, 8A, 8B, A0-A3, C6, C7, 0F B6, 0F B7, 08, 09, 20, 21, 30, 31, 80, 81, 83)"
            }
            DecodeError::OpcodeExtension { .. } => {
                "C6/C7 with a ModRM reg field other than 0, or 80/81/83 other than OR, AND, XOR"
            }
            DecodeError::RegisterOperand(_) => "a register operand, not memory",
            DecodeError::Code16 => "16-bit code is not decoded",
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::Truncated { have } => {
                write!(f, "instruction truncated after {have} bytes")
            }
            DecodeError::TooLong => f.write_str("instruction longer than 15 bytes"),
            DecodeError::Prefix(p) => write!(f, "prefix {p:#04x} not emulated on a device"),
            DecodeError::Opcode(op) => write!(f, "opcode {op:#x} not emulated on a device"),
            DecodeError::OpcodeExtension { opcode, reg } => {
                write!(f, "opcode {opcode:#x} /{reg} not emulated on a device")
            }
            DecodeError::RegisterOperand(op) => {
                write!(
                    f,
                    "opcode {op:#x} with a register operand accesses no memory"
                )
            }
            DecodeError::Code16 => f.write_str("16-bit code is not decoded"),
        }
    }
}

/// A cursor over the fetched bytes.
struct Bytes<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Bytes<'_> {
    fn next(&mut self) -> Result<u8, DecodeError> {
        if self.at >= super::paging::MAX_INSN_LEN {
            return Err(DecodeError::TooLong);
        }
        let b = *self.bytes.get(self.at).ok_or(DecodeError::Truncated {
            have: self.bytes.len(),
        })?;
        self.at += 1;
        Ok(b)
    }

    /// A little-endian immediate of `n` bytes.
    fn le(&mut self, n: usize) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for i in 0..n {
            v |= u64::from(self.next()?) << (8 * i);
        }
        Ok(v)
    }

    fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.le(n).map(|_| ())
    }
}

/// REX bits.
const REX_W: u8 = 1 << 3;
const REX_R: u8 = 1 << 2;

/// Decodes `bytes` (the instruction and possibly more) in a `code` segment.
pub fn decode(bytes: &[u8], code: CodeSize) -> Result<MmioInsn, DecodeError> {
    if code == CodeSize::Bits16 {
        return Err(DecodeError::Code16);
    }
    let long = code == CodeSize::Bits64;
    let mut b = Bytes { bytes, at: 0 };
    let (mut opsize16, mut addr32_in_64) = (false, false);
    let mut rex = 0u8;
    let mut byte = b.next()?;
    loop {
        match byte {
            0x66 => opsize16 = true,
            0x67 if long => addr32_in_64 = true,
            0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 => {}
            0x40..=0x4f if long => {
                // A REX counts only right before the opcode.
                let next = b.next()?;
                if !matches!(next, 0x26 | 0x2e | 0x36 | 0x3e | 0x40..=0x4f | 0x64..=0x67) {
                    rex = byte;
                    byte = next;
                    break;
                }
                byte = next;
                continue;
            }
            0xf0 | 0xf2 | 0xf3 | 0x67 => return Err(DecodeError::Prefix(byte)),
            _ => break,
        }
        byte = b.next()?;
    }
    let opsize = if rex & REX_W != 0 {
        Width::Double
    } else if opsize16 {
        Width::Half
    } else {
        Width::Word
    };
    let reg_of = |modrm: u8, width: Width| {
        let n = ((modrm >> 3) & 7) | if rex & REX_R != 0 { 8 } else { 0 };
        if width == Width::Byte && rex == 0 && (4..8).contains(&n) {
            Register::HighByte(n - 4)
        } else {
            Register::Gpr(n)
        }
    };
    let opcode = if byte == 0x0f {
        0x0f00 | u16::from(b.next()?)
    } else {
        u16::from(byte)
    };
    let (width, op) = match opcode {
        0xa0..=0xa3 => {
            // MOV between the accumulator and an absolute address: the
            // address is as wide as the address size.
            let width = if opcode & 1 == 0 { Width::Byte } else { opsize };
            b.skip(if long && !addr32_in_64 { 8 } else { 4 })?;
            let acc = Register::Gpr(0);
            let op = if opcode < 0xa2 {
                MmioOp::Load {
                    dst: acc,
                    dst_size: width,
                }
            } else {
                MmioOp::StoreReg(acc)
            };
            return Ok(MmioInsn {
                len: b.at as u8,
                width,
                op,
            });
        }
        0x08 | 0x09 | 0x20 | 0x21 | 0x30 | 0x31 | 0x80 | 0x81 | 0x83 => {
            let modrm = b.next()?;
            skip_address(&mut b, modrm, opcode)?;
            let width = if opcode & 1 == 0 { Width::Byte } else { opsize };
            let (op, src) = if opcode < 0x80 {
                let op = match opcode & 0xf0 {
                    0x00 => LogicOp::Or,
                    0x20 => LogicOp::And,
                    _ => LogicOp::Xor,
                };
                (op, Operand::Reg(reg_of(modrm, width)))
            } else {
                let reg = (modrm >> 3) & 7;
                let op = match reg {
                    1 => LogicOp::Or,
                    4 => LogicOp::And,
                    6 => LogicOp::Xor,
                    _ => return Err(DecodeError::OpcodeExtension { opcode, reg }),
                };
                let imm = match (opcode, width) {
                    (0x80, _) => b.le(1)?,
                    (0x83, _) => b.le(1)? as u8 as i8 as i64 as u64,
                    (_, Width::Half) => b.le(2)?,
                    _ => b.le(4)? as u32 as i32 as i64 as u64,
                };
                (op, Operand::Imm(imm & width.mask()))
            };
            (width, MmioOp::Modify { op, src })
        }
        0x88 | 0x89 | 0x8a | 0x8b | 0xc6 | 0xc7 | 0x0fb6 | 0x0fb7 => {
            let modrm = b.next()?;
            skip_address(&mut b, modrm, opcode)?;
            let width = match opcode {
                0x88 | 0x8a | 0xc6 | 0x0fb6 => Width::Byte,
                0x0fb7 => Width::Half,
                _ => opsize,
            };
            let op = match opcode {
                0x88 | 0x89 => MmioOp::StoreReg(reg_of(modrm, width)),
                0x8a | 0x8b => MmioOp::Load {
                    dst: reg_of(modrm, width),
                    dst_size: width,
                },
                0x0fb6 | 0x0fb7 => MmioOp::Load {
                    dst: reg_of(modrm, opsize),
                    dst_size: opsize,
                },
                _ => {
                    let reg = (modrm >> 3) & 7;
                    if reg != 0 {
                        return Err(DecodeError::OpcodeExtension { opcode, reg });
                    }
                    let imm = match width {
                        Width::Byte => b.le(1)?,
                        Width::Half => b.le(2)?,
                        // imm32, sign-extended to 64 bits under REX.W.
                        _ => b.le(4)? as u32 as i32 as i64 as u64,
                    };
                    MmioOp::StoreImm(imm & width.mask())
                }
            };
            (width, op)
        }
        other => return Err(DecodeError::Opcode(other)),
    };
    Ok(MmioInsn {
        len: b.at as u8,
        width,
        op,
    })
}

/// Steps over the memory operand's SIB and displacement after `modrm`
/// (32- and 64-bit addressing share the layout).
fn skip_address(b: &mut Bytes<'_>, modrm: u8, opcode: u16) -> Result<(), DecodeError> {
    let (mode, rm) = (modrm >> 6, modrm & 7);
    if mode == 3 {
        return Err(DecodeError::RegisterOperand(opcode));
    }
    let mut disp = match mode {
        1 => 1,
        2 => 4,
        _ => 0,
    };
    if rm == 4 {
        let sib = b.next()?;
        if mode == 0 && sib & 7 == 5 {
            disp = 4;
        }
    } else if mode == 0 && rm == 5 {
        // RIP-relative in 64-bit mode, an absolute disp32 otherwise.
        disp = 4;
    }
    b.skip(disp)
}

#[cfg(test)]
mod tests;
