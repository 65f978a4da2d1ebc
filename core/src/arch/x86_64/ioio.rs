//! Decoding the SVM IOIO intercept: an `IN`, `OUT`, `INS` or `OUTS` the
//! guest executed on a port whose bit is set in the I/O permission map.
//!
//! On `#VMEXIT(IOIO)` (exit code
//! [`exit_code::IOIO`](super::vmcb::exit_code::IOIO), 0x7B) the
//! processor describes the instruction in EXITINFO1 (AMD64 Architecture
//! Programmer's Manual, Volume 2, 15.10.2 "IN and OUT Behavior", figure
//! "EXITINFO1 for IOIO Intercept"):
//!
//! | bits | field | meaning |
//! |---|---|---|
//! | 0 | TYPE | 1 = IN (port to register or memory), 0 = OUT |
//! | 1 | — | reserved |
//! | 2 | STR | a string instruction, INS or OUTS |
//! | 3 | REP | with a REP prefix |
//! | 4 / 5 / 6 | SZ8 / SZ16 / SZ32 | operand size, one-hot |
//! | 7 / 8 / 9 | A16 / A32 / A64 | address size, one-hot |
//! | 12:10 | SEG | effective segment of a string instruction (ES=0 … GS=5) |
//! | 15:13 | — | reserved |
//! | 31:16 | PORT | the port number |
//!
//! EXITINFO2 holds the rIP of the *next* instruction: the hypervisor sets
//! the guest RIP to it after emulating the access (same as the VMCB's nRIP
//! field), so no instruction length has to be decoded. [`IoioExit`] keeps
//! both.
//!
//! Choices:
//!
//! - A size or address-size field that is not exactly one-hot is refused
//!   with an [`IoioError`]: the processor always sets exactly one bit of
//!   each, so anything else is a corrupted VMCB or a decoding bug upstream.
//!   SEG values 6 and 7 name no segment register and are refused too. The
//!   reserved bits (1, 15:13, 63:32) are ignored, as reserved fields are.
//! - SEG is filled by processors with the DecodeAssists feature; without it
//!   the field reads 0, which decodes as ES. Only string instructions use a
//!   segment, and OUTS is the only one whose segment can be overridden
//!   (INS always writes through ES).
//! - String forms are decoded, not emulated: they move data between the
//!   port and guest *memory* at a segment:rSI/rDI address, RCX times with
//!   REP. A caller that emulates only the register forms checks
//!   [`PortAccess::is_simple`] and refuses the others.
//! - The value moves through AL, AX or EAX. [`PortAccess::out_value`] takes
//!   the low bytes of RAX for OUT; [`PortAccess::merge_in`] puts an IN
//!   result into RAX following the general-purpose register rule of the
//!   AMD64 architecture (APM Vol. 1, 3.1.2 "Zero-Extension of 32-Bit
//!   Results"; Intel SDM Vol. 1, 3.4.1.1 "General-Purpose Registers in
//!   64-Bit Mode"): an 8- or 16-bit result leaves the upper bits of the
//!   register unchanged, a 32-bit result is zero-extended to 64 bits.
//!   Outside 64-bit mode the upper half of RAX is undefined and not
//!   accessible to the guest (APM Vol. 1, "GPR High 32 Bits Across Mode
//!   Switches"), so zero-extending there is harmless.

use core::fmt;

use crate::devices::Width;

/// EXITINFO1 bit positions and masks of the IOIO intercept (APM Vol. 2,
/// 15.10.2, figure "EXITINFO1 for IOIO Intercept").
pub mod info1 {
    /// TYPE: set for IN/INS, clear for OUT/OUTS.
    pub const TYPE_IN: u64 = 1 << 0;
    /// STR: a string instruction (INS/OUTS).
    pub const STR: u64 = 1 << 2;
    /// REP: a REP prefix was present.
    pub const REP: u64 = 1 << 3;
    /// SZ8: 8-bit operand.
    pub const SZ8: u64 = 1 << 4;
    /// SZ16: 16-bit operand.
    pub const SZ16: u64 = 1 << 5;
    /// SZ32: 32-bit operand.
    pub const SZ32: u64 = 1 << 6;
    /// All three operand-size bits.
    pub const SIZE_MASK: u64 = SZ8 | SZ16 | SZ32;
    /// A16: 16-bit address size.
    pub const A16: u64 = 1 << 7;
    /// A32: 32-bit address size.
    pub const A32: u64 = 1 << 8;
    /// A64: 64-bit address size.
    pub const A64: u64 = 1 << 9;
    /// All three address-size bits.
    pub const ADDR_MASK: u64 = A16 | A32 | A64;
    /// Shift of the 3-bit SEG field.
    pub const SEG_SHIFT: u32 = 10;
    /// Mask of the SEG field after shifting.
    pub const SEG_MASK: u64 = 0b111;
    /// Shift of the 16-bit PORT field.
    pub const PORT_SHIFT: u32 = 16;
}

/// Whether the instruction reads from or writes to the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortDir {
    /// IN or INS: the device supplies a value.
    In,
    /// OUT or OUTS: the guest supplies a value.
    Out,
}

/// The address size of the instruction (used by the string forms for
/// rSI/rDI/rCX).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddrSize {
    /// 16-bit: SI, DI, CX.
    Bits16,
    /// 32-bit: ESI, EDI, ECX.
    Bits32,
    /// 64-bit: RSI, RDI, RCX.
    Bits64,
}

/// A segment register, in the x86 encoding the SEG field uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SegReg {
    /// ES (0).
    Es = 0,
    /// CS (1).
    Cs = 1,
    /// SS (2).
    Ss = 2,
    /// DS (3).
    Ds = 3,
    /// FS (4).
    Fs = 4,
    /// GS (5).
    Gs = 5,
}

impl SegReg {
    /// The register with x86 segment number `n`, or `None` for 6 and 7.
    pub const fn from_number(n: u64) -> Option<Self> {
        Some(match n {
            0 => SegReg::Es,
            1 => SegReg::Cs,
            2 => SegReg::Ss,
            3 => SegReg::Ds,
            4 => SegReg::Fs,
            5 => SegReg::Gs,
            _ => return None,
        })
    }
}

/// Why an EXITINFO1 value is not a valid IOIO description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoioError {
    /// None of SZ8/SZ16/SZ32 is set.
    NoSize(u64),
    /// More than one of SZ8/SZ16/SZ32 is set.
    SeveralSizes(u64),
    /// None of A16/A32/A64 is set on a string (INS/OUTS) access, which
    /// needs it to walk memory.
    NoAddrSize(u64),
    /// More than one of A16/A32/A64 is set.
    SeveralAddrSizes(u64),
    /// SEG is 6 or 7, which name no segment register.
    BadSegment(u64),
}

impl fmt::Display for IoioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IoioError::NoSize(v) => write!(f, "IOIO EXITINFO1 {v:#x} has no operand-size bit"),
            IoioError::SeveralSizes(v) => {
                write!(f, "IOIO EXITINFO1 {v:#x} has several operand-size bits")
            }
            IoioError::NoAddrSize(v) => {
                write!(f, "IOIO EXITINFO1 {v:#x} has no address-size bit")
            }
            IoioError::SeveralAddrSizes(v) => {
                write!(f, "IOIO EXITINFO1 {v:#x} has several address-size bits")
            }
            IoioError::BadSegment(v) => write!(
                f,
                "IOIO EXITINFO1 {v:#x} names segment {}, which does not exist",
                v >> info1::SEG_SHIFT & info1::SEG_MASK
            ),
        }
    }
}

/// One intercepted port access, decoded from EXITINFO1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortAccess {
    /// The port number.
    pub port: u16,
    /// Operand size: [`Width::Byte`], [`Width::Half`] or [`Width::Word`].
    pub width: Width,
    /// IN or OUT.
    pub dir: PortDir,
    /// INS/OUTS rather than IN/OUT.
    pub string: bool,
    /// A REP prefix was present.
    pub rep: bool,
    /// The instruction's address size; `None` when the CPU left A16/A32/A64
    /// clear, which QEMU's SVM does for plain IN/OUT (they touch no memory).
    pub addr_size: Option<AddrSize>,
    /// The effective segment (meaningful for string forms on processors
    /// with DecodeAssists; ES otherwise).
    pub segment: SegReg,
}

/// The one bit of `mask` set in `value`: `Ok(Some(bit))`, `Ok(None)` when
/// none is, `Err(())` when several are.
fn one_hot(value: u64, mask: u64) -> Result<Option<u64>, ()> {
    match (value & mask).count_ones() {
        0 => Ok(None),
        1 => Ok(Some(value & mask)),
        _ => Err(()),
    }
}

impl PortAccess {
    /// Decodes the IOIO intercept's EXITINFO1.
    pub fn decode(exit_info1: u64) -> Result<Self, IoioError> {
        use info1::*;
        let v = exit_info1;
        let width = match one_hot(v, SIZE_MASK) {
            Ok(Some(SZ8)) => Width::Byte,
            Ok(Some(SZ16)) => Width::Half,
            Ok(Some(_)) => Width::Word,
            Ok(None) => return Err(IoioError::NoSize(v)),
            Err(()) => return Err(IoioError::SeveralSizes(v)),
        };
        let addr_size = match one_hot(v, ADDR_MASK) {
            Ok(Some(A16)) => Some(AddrSize::Bits16),
            Ok(Some(A32)) => Some(AddrSize::Bits32),
            Ok(Some(_)) => Some(AddrSize::Bits64),
            Ok(None) if v & STR != 0 => return Err(IoioError::NoAddrSize(v)),
            Ok(None) => None,
            Err(()) => return Err(IoioError::SeveralAddrSizes(v)),
        };
        let segment =
            SegReg::from_number(v >> SEG_SHIFT & SEG_MASK).ok_or(IoioError::BadSegment(v))?;
        Ok(PortAccess {
            port: (v >> PORT_SHIFT) as u16,
            width,
            dir: if v & TYPE_IN != 0 {
                PortDir::In
            } else {
                PortDir::Out
            },
            string: v & STR != 0,
            rep: v & REP != 0,
            addr_size,
            segment,
        })
    }

    /// Encodes the access back into EXITINFO1 form (reserved bits zero).
    pub fn encode(&self) -> u64 {
        use info1::*;
        let size = match self.width {
            Width::Byte => SZ8,
            Width::Half => SZ16,
            _ => SZ32,
        };
        let addr = match self.addr_size {
            Some(AddrSize::Bits16) => A16,
            Some(AddrSize::Bits32) => A32,
            Some(AddrSize::Bits64) => A64,
            None => 0,
        };
        (self.port as u64) << PORT_SHIFT
            | (self.segment as u64) << SEG_SHIFT
            | addr
            | size
            | if self.rep { REP } else { 0 }
            | if self.string { STR } else { 0 }
            | if self.dir == PortDir::In { TYPE_IN } else { 0 }
    }

    /// Whether this is a plain IN or OUT through AL/AX/EAX, which the
    /// register helpers below fully describe (a REP prefix on those is
    /// ignored by the processor). INS/OUTS touch guest memory instead.
    pub const fn is_simple(&self) -> bool {
        !self.string
    }

    /// Whether the device supplies the value (IN/INS).
    pub fn is_in(&self) -> bool {
        self.dir == PortDir::In
    }

    /// The value an OUT writes: the low `width` bytes of `rax` (AL, AX or
    /// EAX).
    pub const fn out_value(&self, rax: u64) -> u64 {
        rax & self.width.mask()
    }

    /// RAX after an IN of `value`: AL and AX replace their bytes and keep
    /// bits 8..63 / 16..63; EAX replaces the register, zero-extended.
    /// Bits of `value` above the access width are ignored.
    pub const fn merge_in(&self, rax: u64, value: u64) -> u64 {
        merge_in(self.width, rax, value)
    }
}

/// RAX after a `width`-sized register write of `value` (see
/// [`PortAccess::merge_in`]); an 8-byte width replaces all of RAX.
pub const fn merge_in(width: Width, rax: u64, value: u64) -> u64 {
    let mask = width.mask();
    match width {
        Width::Byte | Width::Half => (rax & !mask) | (value & mask),
        Width::Word | Width::Double => value & mask,
    }
}

impl fmt::Display for PortAccess {
    /// `1-byte OUT to port 0x3f8`, `4-byte REP INS from port 0x1f0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rep = if self.rep && self.string { "REP " } else { "" };
        let (op, prep) = match (self.dir, self.string) {
            (PortDir::In, false) => ("IN", "from"),
            (PortDir::In, true) => ("INS", "from"),
            (PortDir::Out, false) => ("OUT", "to"),
            (PortDir::Out, true) => ("OUTS", "to"),
        };
        write!(f, "{} {rep}{op} {prep} port {:#x}", self.width, self.port)
    }
}

/// The whole IOIO exit: the access and where the guest resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoioExit {
    /// The decoded access (EXITINFO1).
    pub access: PortAccess,
    /// The guest rIP of the instruction after the IN/OUT (EXITINFO2).
    pub next_rip: u64,
}

impl IoioExit {
    /// Decodes EXITINFO1 and EXITINFO2 of `#VMEXIT(IOIO)`.
    pub fn decode(exit_info1: u64, exit_info2: u64) -> Result<Self, IoioError> {
        Ok(IoioExit {
            access: PortAccess::decode(exit_info1)?,
            next_rip: exit_info2,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::info1::*;
    use super::*;

    /// EXITINFO1 for `out dx, al` with DX = 0x3F8 in 64-bit mode.
    const OUT_DX_AL: u64 = 0x3f8 << 16 | A64 | SZ8;
    /// EXITINFO1 for `in eax, dx` with DX = 0xCFC in 64-bit mode.
    const IN_EAX_DX: u64 = 0xcfc << 16 | A64 | SZ32 | TYPE_IN;
    /// EXITINFO1 for `rep outsb` to port 0x3F8 in 32-bit code, DS:ESI.
    const REP_OUTSB: u64 = 0x3f8 << 16 | 3 << 10 | A32 | SZ8 | REP | STR;

    #[test]
    fn field_positions_match_the_figure() {
        assert_eq!(TYPE_IN, 0x1);
        assert_eq!(STR, 0x4);
        assert_eq!(REP, 0x8);
        assert_eq!(SIZE_MASK, 0x70);
        assert_eq!(ADDR_MASK, 0x380);
        assert_eq!(SEG_MASK << SEG_SHIFT, 0x1c00);
        assert_eq!(0xffffu64 << PORT_SHIFT, 0xffff_0000);
    }

    #[test]
    fn out_dx_al() {
        let a = PortAccess::decode(OUT_DX_AL).unwrap();
        assert_eq!(
            a,
            PortAccess {
                port: 0x3f8,
                width: Width::Byte,
                dir: PortDir::Out,
                string: false,
                rep: false,
                addr_size: Some(AddrSize::Bits64),
                segment: SegReg::Es,
            }
        );
        assert!(a.is_simple() && !a.is_in());
        assert_eq!(a.out_value(0xdead_beef_cafe_f041), 0x41);
        assert_eq!(a.to_string(), "1-byte OUT to port 0x3f8");
        assert_eq!(a.encode(), OUT_DX_AL);
    }

    #[test]
    fn in_eax_dx() {
        let a = PortAccess::decode(IN_EAX_DX).unwrap();
        assert_eq!((a.port, a.width, a.dir), (0xcfc, Width::Word, PortDir::In));
        assert!(a.is_simple() && a.is_in() && !a.rep);
        assert_eq!(a.merge_in(u64::MAX, 0x1234_5678), 0x1234_5678);
        assert_eq!(a.to_string(), "4-byte IN from port 0xcfc");
        assert_eq!(a.encode(), IN_EAX_DX);
    }

    #[test]
    fn rep_outsb_is_decoded_but_not_simple() {
        let a = PortAccess::decode(REP_OUTSB).unwrap();
        assert_eq!(
            a,
            PortAccess {
                port: 0x3f8,
                width: Width::Byte,
                dir: PortDir::Out,
                string: true,
                rep: true,
                addr_size: Some(AddrSize::Bits32),
                segment: SegReg::Ds,
            }
        );
        assert!(!a.is_simple());
        assert_eq!(a.to_string(), "1-byte REP OUTS to port 0x3f8");
        assert_eq!(a.encode(), REP_OUTSB);
    }

    #[test]
    fn rep_on_plain_in_is_still_simple() {
        let a = PortAccess::decode(0x60 << 16 | A16 | SZ16 | REP | TYPE_IN).unwrap();
        assert!(a.rep && a.is_simple());
        assert_eq!(a.addr_size, Some(AddrSize::Bits16));
        assert_eq!(a.to_string(), "2-byte IN from port 0x60");
    }

    #[test]
    fn every_port_and_segment_round_trips() {
        for port in [0u16, 1, 0x80, 0x3f8, 0xcf8, 0xfffe, 0xffff] {
            for seg in 0..6 {
                let v = (port as u64) << 16 | seg << 10 | A64 | SZ16 | TYPE_IN | STR;
                let a = PortAccess::decode(v).unwrap();
                assert_eq!(a.port, port);
                assert_eq!(a.segment as u64, seg);
                assert_eq!(a.encode(), v);
            }
        }
    }

    #[test]
    fn reserved_bits_are_ignored() {
        let noisy = OUT_DX_AL | 1 << 1 | 0b111 << 13 | 0xffff_ffff << 32;
        assert_eq!(PortAccess::decode(noisy), PortAccess::decode(OUT_DX_AL));
    }

    #[test]
    fn malformed_sizes_are_refused() {
        let no_size = 0x3f8 << 16 | A64;
        assert_eq!(PortAccess::decode(no_size), Err(IoioError::NoSize(no_size)));
        for sizes in [SZ8 | SZ16, SZ8 | SZ32, SZ16 | SZ32, SIZE_MASK] {
            let v = 0x3f8 << 16 | A64 | sizes;
            assert_eq!(PortAccess::decode(v), Err(IoioError::SeveralSizes(v)));
        }
        // Plain OUT with no address-size bit, as QEMU reports it (seen
        // from ArceOS's COM1 driver: EXITINFO1 0x3f90010).
        let plain = PortAccess::decode(0x3f9_0010).unwrap();
        assert_eq!(
            (plain.port, plain.addr_size, plain.is_in()),
            (0x3f9, None, false)
        );
        let no_addr = 0x3f8 << 16 | SZ8 | STR;
        assert_eq!(
            PortAccess::decode(no_addr),
            Err(IoioError::NoAddrSize(no_addr))
        );
        let two_addr = 0x3f8 << 16 | SZ8 | A16 | A64;
        assert_eq!(
            PortAccess::decode(two_addr),
            Err(IoioError::SeveralAddrSizes(two_addr))
        );
        for seg in [6u64, 7] {
            let v = OUT_DX_AL | seg << 10;
            assert_eq!(PortAccess::decode(v), Err(IoioError::BadSegment(v)));
        }
        assert_eq!(
            IoioError::BadSegment(OUT_DX_AL | 7 << 10).to_string(),
            "IOIO EXITINFO1 0x3f81e10 names segment 7, which does not exist"
        );
        assert!(IoioError::NoSize(0).to_string().contains("operand-size"));
    }

    #[test]
    fn merge_in_for_every_width() {
        let rax = 0x1122_3344_5566_7788;
        // IN AL: bits 8..63 kept.
        assert_eq!(merge_in(Width::Byte, rax, 0xab), 0x1122_3344_5566_77ab);
        // IN AX: bits 16..63 kept.
        assert_eq!(merge_in(Width::Half, rax, 0xabcd), 0x1122_3344_5566_abcd);
        // IN EAX: zero-extended, the upper half cleared.
        assert_eq!(merge_in(Width::Word, rax, 0xabcd_ef01), 0xabcd_ef01);
        // A full-register write for completeness.
        assert_eq!(merge_in(Width::Double, rax, 7), 7);
        // Device bits above the width never leak into RAX.
        assert_eq!(merge_in(Width::Byte, 0, 0xffff_ff12), 0x12);
        assert_eq!(merge_in(Width::Half, 0, 0xffff_1234), 0x1234);
        assert_eq!(merge_in(Width::Word, 0, u64::MAX), 0xffff_ffff);
        // The method agrees with the function.
        let a = PortAccess::decode(0x71 << 16 | A32 | SZ16 | TYPE_IN).unwrap();
        assert_eq!(a.merge_in(rax, 0xabcd), merge_in(Width::Half, rax, 0xabcd));
    }

    #[test]
    fn out_value_masks_to_width() {
        let rax = 0x1122_3344_5566_7788;
        for (size, want) in [(SZ8, 0x88), (SZ16, 0x7788), (SZ32, 0x5566_7788)] {
            let a = PortAccess::decode(0x80 << 16 | A64 | size).unwrap();
            assert_eq!(a.out_value(rax), want);
        }
    }

    #[test]
    fn the_exit_carries_the_next_rip() {
        let e = IoioExit::decode(OUT_DX_AL, 0x10_0042).unwrap();
        assert_eq!(e.next_rip, 0x10_0042);
        assert_eq!(e.access.port, 0x3f8);
        assert_eq!(IoioExit::decode(0, 0x10_0042), Err(IoioError::NoSize(0)));
    }
}
