//! Decoding the syndrome of a Data Abort taken to EL2 on emulated device
//! memory, for trap-and-emulate.
//!
//! Unlike riscv64, no instruction has to be fetched: for the common case
//! the hardware describes the access in ESR_EL2's ISS (DDI 0487 D23.2,
//! ESR_EL2, "ISS encoding for an exception from a Data Abort"). With ISV
//! set, bits 23:14 give the access size (SAS), whether a load
//! sign-extends (SSE), the register (SRT, 31 meaning XZR/WZR), whether it
//! is an X or a W register (SF) and whether it has acquire/release
//! semantics (AR); WnR says load or store. The manual sets ISV only for
//! stage-2 aborts on loads and stores of a single general-purpose register
//! without writeback, exclusives excepted; for everything else (load/store
//! pair, pre/post-index writeback, exclusives, SIMD and floating-point
//! registers...) ISV is 0 and [`decode`] refuses with
//! [`DataAbortError::NoSyndrome`]: the caller stops the VM with ESR_EL2,
//! FAR_EL2 and the PC rather than decode A64 itself.
//!
//! Three other cases are refused before ISV is looked at, because a valid
//! syndrome would not make them emulatable: a synchronous External abort
//! (EA), a fault on the guest's own stage-1 table walk (S1PTW) and a cache
//! maintenance or address translation instruction (CM), which the manual
//! reports with WnR set although it writes nothing.
//!
//! The fault status code (DFSC) is not checked here: whether the abort is
//! a stage-2 miss on a device region is the caller's business (it found
//! the region from HPFAR_EL2 first, see [`super::esr`]).

use core::fmt;

use super::esr::{ec, field};
use crate::addr::GuestPhysAddr;
use crate::devices::{MmioAccess, Width};

/// ESR_EL2 bits of a Data Abort (DDI 0487 D23.2, ESR_EL2, "ISS encoding
/// for an exception from a Data Abort"), plus IL next to the ISS.
pub mod iss {
    /// IL, bit 25: instruction length, 1 for a 32-bit instruction (every
    /// A64 instruction), 0 for a 16-bit T32 one.
    pub const IL: u64 = 1 << 25;
    /// ISV, bit 24: bits 23:14 hold a valid instruction syndrome.
    pub const ISV: u64 = 1 << 24;
    /// SAS, bits 23:22: shift of the access size (byte, halfword, word,
    /// doubleword).
    pub const SAS_SHIFT: u32 = 22;
    /// SAS, bits 23:22: mask after shifting.
    pub const SAS_MASK: u64 = 0b11;
    /// SSE, bit 21: the load sign-extends the data item.
    pub const SSE: u64 = 1 << 21;
    /// SRT, bits 20:16: shift of the transfer register number.
    pub const SRT_SHIFT: u32 = 16;
    /// SRT, bits 20:16: mask after shifting.
    pub const SRT_MASK: u64 = 0x1f;
    /// SF, bit 15: the register is 64 bits wide (X), else 32 (W).
    pub const SF: u64 = 1 << 15;
    /// AR, bit 14: the instruction has acquire/release semantics.
    pub const AR: u64 = 1 << 14;
    /// FnV, bit 10: FAR is not valid (meaningful for a synchronous
    /// External abort only).
    pub const FNV: u64 = 1 << 10;
    /// EA, bit 9: External abort type.
    pub const EA: u64 = 1 << 9;
    /// CM, bit 8: the abort came from a cache maintenance or address
    /// translation instruction.
    pub const CM: u64 = 1 << 8;
    /// S1PTW, bit 7: the stage-2 fault was on a stage-1 table walk.
    pub const S1PTW: u64 = 1 << 7;
    /// WnR, bit 6: the access was a write.
    pub const WNR: u64 = 1 << 6;
}

/// SAS values: the access size.
pub mod sas {
    /// Byte.
    pub const BYTE: u64 = 0b00;
    /// Halfword.
    pub const HALF: u64 = 0b01;
    /// Word.
    pub const WORD: u64 = 0b10;
    /// Doubleword.
    pub const DOUBLE: u64 = 0b11;
}

/// The SRT value that names the zero register (XZR or WZR) rather than a
/// general-purpose register.
pub const ZR: u8 = 31;

/// A load or store described by a valid Data Abort syndrome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataAbortInsn {
    /// Access size (SAS).
    pub width: Width,
    /// The transfer register (SRT): x0..x30, or [`ZR`].
    pub reg: u8,
    /// A load sign-extends the item (SSE); false for stores.
    pub sign_extend: bool,
    /// The register is an X register (SF); false for a W register.
    pub sixty_four: bool,
    /// A store (WnR).
    pub write: bool,
    /// Load-acquire or store-release (AR); needs nothing more here, a
    /// trapped access is complete before the guest resumes.
    pub acquire_release: bool,
    /// Instruction length in bytes (4, or 2 for a T32 instruction): how
    /// far to advance the PC.
    pub len: u8,
}

impl DataAbortInsn {
    /// The register a load writes, or `None` for a store or a load into
    /// XZR/WZR (whose value is discarded; the access itself still happens).
    pub const fn dest(&self) -> Option<u8> {
        if self.write || self.reg == ZR {
            None
        } else {
            Some(self.reg)
        }
    }

    /// The value a store writes, from the guest's `x0..x30`: the low
    /// `width` bytes of the transfer register, 0 for XZR/WZR.
    pub const fn store_value(&self, x: &[u64; 31]) -> u64 {
        if self.reg == ZR {
            0
        } else {
            x[self.reg as usize] & self.width.mask()
        }
    }

    /// The value a load leaves in the X register, from the device's `raw`
    /// value: the item (low `width` bytes) sign-extended to the register
    /// size if SSE, else zero-extended; a W register is then zero-extended
    /// into X, as every write to a W register is. For a store, `raw`
    /// masked to the width.
    pub const fn load_value(&self, raw: u64) -> u64 {
        let item = raw & self.width.mask();
        if self.write {
            return item;
        }
        let bits = 8 * self.width.bytes() as u32;
        let extended = if self.sign_extend && bits < 64 {
            let shift = 64 - bits;
            (((raw << shift) as i64) >> shift) as u64
        } else {
            item
        };
        if self.sixty_four {
            extended
        } else {
            extended & 0xffff_ffff
        }
    }

    /// The device access at `addr` (the faulting IPA), with the store value
    /// taken from the guest's `x0..x30`.
    pub const fn access(&self, addr: GuestPhysAddr, x: &[u64; 31]) -> MmioAccess {
        if self.write {
            MmioAccess::write(addr, self.width, self.store_value(x))
        } else {
            MmioAccess::read(addr, self.width)
        }
    }
}

/// Why a Data Abort cannot be emulated as a device load or store. Each
/// variant carries the whole ESR_EL2 value for the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataAbortError {
    /// The exception class is not a Data Abort from a lower Exception
    /// level (EC 0x24).
    NotDataAbort {
        /// ESR_EL2.
        esr: u64,
    },
    /// EA: a synchronous External abort; the access itself failed.
    ExternalAbort {
        /// ESR_EL2.
        esr: u64,
    },
    /// S1PTW: the guest's stage-1 translation table walk reached device
    /// memory, i.e. its page tables are not in RAM.
    StageOneWalk {
        /// ESR_EL2.
        esr: u64,
    },
    /// CM: a cache maintenance or address translation instruction on
    /// device memory. It must not be emulated as the write WnR reports;
    /// the caller may skip it (there is nothing to maintain in an emulated
    /// device) or stop.
    CacheMaintenance {
        /// ESR_EL2.
        esr: u64,
    },
    /// ISV is 0: no instruction syndrome, so the access cannot be
    /// emulated without decoding the instruction. The caller stops the VM
    /// with ESR_EL2, FAR_EL2 and the PC.
    NoSyndrome {
        /// ESR_EL2.
        esr: u64,
    },
}

impl DataAbortError {
    /// The ESR_EL2 value of the abort.
    pub const fn esr(&self) -> u64 {
        match *self {
            DataAbortError::NotDataAbort { esr }
            | DataAbortError::ExternalAbort { esr }
            | DataAbortError::StageOneWalk { esr }
            | DataAbortError::CacheMaintenance { esr }
            | DataAbortError::NoSyndrome { esr } => esr,
        }
    }

    /// What is wrong, in a sentence fit for the VM's failure report.
    pub const fn why(&self) -> &'static str {
        match self {
            DataAbortError::NotDataAbort { .. } => {
                "not a data abort from a lower exception level (EC is not 0x24)"
            }
            DataAbortError::ExternalAbort { .. } => {
                "synchronous external abort (EA): the access itself failed"
            }
            DataAbortError::StageOneWalk { .. } => {
                "the guest's stage-1 page-table walk touched device memory (S1PTW)"
            }
            DataAbortError::CacheMaintenance { .. } => {
                "cache maintenance or address translation instruction on device memory (CM), not a write"
            }
            DataAbortError::NoSyndrome { .. } => {
                "no valid instruction syndrome (ISV=0): the instruction cannot be emulated without decoding it"
            }
        }
    }
}

impl fmt::Display for DataAbortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (ESR_EL2 {:#x})", self.why(), self.esr())
    }
}

/// Decodes ESR_EL2 of a Data Abort from EL1/EL0 into the load or store to
/// emulate.
pub const fn decode(esr: u64) -> Result<DataAbortInsn, DataAbortError> {
    if (esr >> field::EC_SHIFT) & field::EC_MASK != ec::DATA_ABORT_LOWER {
        return Err(DataAbortError::NotDataAbort { esr });
    }
    if esr & iss::EA != 0 {
        return Err(DataAbortError::ExternalAbort { esr });
    }
    if esr & iss::S1PTW != 0 {
        return Err(DataAbortError::StageOneWalk { esr });
    }
    if esr & iss::CM != 0 {
        return Err(DataAbortError::CacheMaintenance { esr });
    }
    if esr & iss::ISV == 0 {
        return Err(DataAbortError::NoSyndrome { esr });
    }
    let sas = (esr >> iss::SAS_SHIFT) & iss::SAS_MASK;
    let width = match sas {
        sas::BYTE => Width::Byte,
        sas::HALF => Width::Half,
        sas::WORD => Width::Word,
        _ => Width::Double,
    };
    let write = esr & iss::WNR != 0;
    Ok(DataAbortInsn {
        width,
        reg: ((esr >> iss::SRT_SHIFT) & iss::SRT_MASK) as u8,
        sign_extend: !write && esr & iss::SSE != 0,
        // A doubleword transfer is always to an X register; the manual
        // never reports it with SF clear, and if it did, the 64-bit item
        // must not be cut to 32 bits.
        sixty_four: esr & iss::SF != 0 || sas == sas::DOUBLE,
        write,
        acquire_release: esr & iss::AR != 0,
        len: if esr & iss::IL != 0 { 4 } else { 2 },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DFSC of a translation fault at level 3, what an unmapped device page
    /// in the stage-2 tables gives.
    const TRANSLATION_L3: u64 = 0x07;

    /// ESR_EL2 for a Data Abort from a lower EL with this ISS, IL set.
    fn esr(iss: u64) -> u64 {
        ec::DATA_ABORT_LOWER << 26 | iss::IL | iss
    }

    /// What the hardware reports for a stage-2 translation fault on an A64
    /// instruction, modelled independently from the A64 encoding tables
    /// ("Load/store register (unsigned immediate)": size[31:30] 111 V=0 01
    /// opc[23:22] imm12 Rn Rt; "Load/store ordered": size[31:30] 001000 1
    /// L 0 Rs 1 Rt2 Rn Rt) and the ISS field descriptions.
    fn hardware_syndrome(insn: u32) -> u64 {
        let size = u64::from(insn >> 30);
        let rt = u64::from(insn & 0x1f);
        let (write, sse, sf, ar) = if (insn >> 24) & 0x3f == 0b11_1001 {
            match (insn >> 22) & 3 {
                0b00 => (true, false, size == 3, false),
                0b01 => (false, false, size == 3, false),
                0b10 => (false, true, true, false),
                _ => (false, true, false, false),
            }
        } else if (insn >> 24) & 0x3f == 0b00_1000
            && insn & (1 << 23) != 0
            && insn & (1 << 21) == 0
            && insn & (1 << 15) != 0
        {
            (insn & (1 << 22) == 0, false, size == 3, true)
        } else {
            panic!("{insn:#010x} is not in the modelled classes")
        };
        let bit = |b: bool, v: u64| if b { v } else { 0 };
        esr(iss::ISV
            | size << 22
            | bit(sse, iss::SSE)
            | rt << 16
            | bit(sf, iss::SF)
            | bit(ar, iss::AR)
            | bit(write, iss::WNR)
            | TRANSLATION_L3)
    }

    fn insn(
        width: Width,
        reg: u8,
        sign_extend: bool,
        sixty_four: bool,
        write: bool,
    ) -> DataAbortInsn {
        DataAbortInsn {
            width,
            reg,
            sign_extend,
            sixty_four,
            write,
            acquire_release: false,
            len: 4,
        }
    }

    use Width::{Byte, Double, Half, Word};

    /// (instruction, llvm-mc encoding, ESR_EL2 computed by hand, decode)
    fn cases() -> [(&'static str, u32, u64, DataAbortInsn); 14] {
        let acq_rel = |i: DataAbortInsn| DataAbortInsn {
            acquire_release: true,
            ..i
        };
        [
            (
                "ldr w1, [x0]",
                0xb940_0001,
                0x9381_0007,
                insn(Word, 1, false, false, false),
            ),
            (
                "strb w2, [x3]",
                0x3900_0062,
                0x9302_0047,
                insn(Byte, 2, false, false, true),
            ),
            (
                "ldrsb x4, [x5, #1]",
                0x3980_04a4,
                0x9324_8007,
                insn(Byte, 4, true, true, false),
            ),
            (
                "ldrsh w5, [x6, #2]",
                0x79c0_04c5,
                0x9365_0007,
                insn(Half, 5, true, false, false),
            ),
            (
                "str xzr, [x7, #8]",
                0xf900_04ff,
                0x93df_8047,
                insn(Double, ZR, false, true, true),
            ),
            (
                "ldr x8, [x9]",
                0xf940_0128,
                0x93c8_8007,
                insn(Double, 8, false, true, false),
            ),
            (
                "ldrh w12, [x13]",
                0x7940_01ac,
                0x934c_0007,
                insn(Half, 12, false, false, false),
            ),
            (
                "strh w14, [x15]",
                0x7900_01ee,
                0x934e_0047,
                insn(Half, 14, false, false, true),
            ),
            (
                "ldrsw x16, [x17]",
                0xb980_0230,
                0x93b0_8007,
                insn(Word, 16, true, true, false),
            ),
            (
                "ldrsb w18, [x19]",
                0x39c0_0272,
                0x9332_0007,
                insn(Byte, 18, true, false, false),
            ),
            (
                "ldrsh x20, [x21]",
                0x7980_02b4,
                0x9374_8007,
                insn(Half, 20, true, true, false),
            ),
            (
                "ldr wzr, [x0]",
                0xb940_001f,
                0x939f_0007,
                insn(Word, ZR, false, false, false),
            ),
            (
                "ldar w1, [x0]",
                0x88df_fc01,
                0x9381_4007,
                acq_rel(insn(Word, 1, false, false, false)),
            ),
            (
                "stlr x2, [x3]",
                0xc89f_fc62,
                0x93c2_c047,
                acq_rel(insn(Double, 2, false, true, true)),
            ),
        ]
    }

    #[test]
    fn single_register_loads_and_stores() {
        for (asm, encoding, hand, want) in cases() {
            assert_eq!(hardware_syndrome(encoding), hand, "syndrome of {asm}");
            assert_eq!(decode(hand), Ok(want), "{asm}");
        }
    }

    #[test]
    fn destination_register() {
        let d = |asm: &str| {
            let (_, _, e, _) = cases().into_iter().find(|c| c.0 == asm).unwrap();
            decode(e).unwrap().dest()
        };
        assert_eq!(d("ldr w1, [x0]"), Some(1));
        assert_eq!(d("ldrsh x20, [x21]"), Some(20));
        // A load into WZR is performed and its value dropped.
        assert_eq!(d("ldr wzr, [x0]"), None);
        // Stores write no register.
        assert_eq!(d("strb w2, [x3]"), None);
        assert_eq!(d("str xzr, [x7, #8]"), None);
    }

    #[test]
    fn load_values_are_extended_per_sse_and_sf() {
        let value = |e: u64, raw: u64| decode(e).unwrap().load_value(raw);
        // ldr w1: zero-extended, the bits above 32 cleared.
        assert_eq!(value(0x9381_0007, 0xdead_beef_8000_0001), 0x8000_0001);
        // ldrsb x4: sign-extended to 64 bits.
        assert_eq!(value(0x9324_8007, 0x80), 0xffff_ffff_ffff_ff80);
        assert_eq!(value(0x9324_8007, 0x7f), 0x7f);
        assert_eq!(value(0x9324_8007, 0x1234_5680), 0xffff_ffff_ffff_ff80);
        // ldrsh w5: sign-extended to 32 bits, then zero-extended into X.
        assert_eq!(value(0x9365_0007, 0x8001), 0x0000_0000_ffff_8001);
        assert_eq!(value(0x9365_0007, 0x7001), 0x7001);
        // ldrsb w18.
        assert_eq!(value(0x9332_0007, 0xf0), 0xffff_fff0);
        // ldrsh x20.
        assert_eq!(value(0x9374_8007, 0x8000), 0xffff_ffff_ffff_8000);
        // ldrsw x16.
        assert_eq!(value(0x93b0_8007, 0x8000_0000), 0xffff_ffff_8000_0000);
        // ldrh w12, ldr x8: zero-extension, full width.
        assert_eq!(value(0x934c_0007, 0xffff_ffff), 0xffff);
        assert_eq!(value(0x93c8_8007, u64::MAX - 1), u64::MAX - 1);
        // A store gives back the masked value.
        assert_eq!(value(0x9302_0047, 0x1ff), 0xff);
    }

    #[test]
    fn store_values_come_from_the_register() {
        let mut x = [0u64; 31];
        for (i, r) in x.iter_mut().enumerate() {
            *r = 0x0102_0304_0506_0700 | i as u64;
        }
        let store = |e: u64| decode(e).unwrap().store_value(&x);
        // strb w2: the low byte of x2.
        assert_eq!(store(0x9302_0047), 0x02);
        // strh w14.
        assert_eq!(store(0x934e_0047), 0x070e);
        // stlr x2: all of x2.
        assert_eq!(store(0x93c2_c047), 0x0102_0304_0506_0702);
        // str xzr: zero, not x31 (there is none).
        assert_eq!(store(0x93df_8047), 0);
        let ipa = GuestPhysAddr::new(0x0900_0000);
        assert_eq!(
            decode(0x9302_0047).unwrap().access(ipa, &x),
            MmioAccess::write(ipa, Byte, 0x02)
        );
        assert_eq!(
            decode(0x9381_0007).unwrap().access(ipa, &x),
            MmioAccess::read(ipa, Word)
        );
    }

    #[test]
    fn no_syndrome_is_refused() {
        // str w3, [x2, #4]! (writeback) and ldp x0, x1, [x2] (pair): the
        // hardware gives ISV=0, only WnR and the DFSC.
        for e in [esr(iss::WNR | TRANSLATION_L3), esr(TRANSLATION_L3)] {
            assert_eq!(decode(e), Err(DataAbortError::NoSyndrome { esr: e }));
        }
        let err = decode(0x9200_0007).unwrap_err();
        assert_eq!(err.esr(), 0x9200_0007);
        assert_eq!(
            err.to_string(),
            "no valid instruction syndrome (ISV=0): the instruction cannot be emulated \
             without decoding it (ESR_EL2 0x92000007)"
        );
    }

    #[test]
    fn cache_maintenance_walks_and_external_aborts_are_refused() {
        // dc civac, x0 on a device page: CM and WnR, no syndrome.
        let dc = esr(iss::CM | iss::WNR | TRANSLATION_L3);
        assert_eq!(dc, 0x9200_0147);
        assert_eq!(
            decode(dc),
            Err(DataAbortError::CacheMaintenance { esr: dc })
        );
        // CM wins even over a valid syndrome: it is never a write.
        let e = hardware_syndrome(0x3900_0062) | iss::CM;
        assert_eq!(decode(e), Err(DataAbortError::CacheMaintenance { esr: e }));
        // A stage-1 walk that reached device memory.
        let walk = esr(iss::S1PTW | TRANSLATION_L3);
        assert_eq!(
            decode(walk),
            Err(DataAbortError::StageOneWalk { esr: walk })
        );
        // Synchronous External abort (DFSC 0b010000), FAR valid or not.
        for e in [esr(iss::EA | 0x10), esr(iss::EA | iss::FNV | 0x10)] {
            assert_eq!(decode(e), Err(DataAbortError::ExternalAbort { esr: e }));
        }
        assert!(
            DataAbortError::CacheMaintenance { esr: dc }
                .to_string()
                .ends_with("(CM), not a write (ESR_EL2 0x92000147)")
        );
    }

    #[test]
    fn other_exception_classes_are_refused() {
        // HVC, and an Instruction Abort with bits that would look valid.
        for e in [0x5a00_0000, 0x8200_0007 | iss::ISV] {
            assert_eq!(decode(e), Err(DataAbortError::NotDataAbort { esr: e }));
        }
        assert_eq!(
            DataAbortError::NotDataAbort { esr: 0x5a00_0000 }.why(),
            "not a data abort from a lower exception level (EC is not 0x24)"
        );
    }

    #[test]
    fn instruction_length() {
        let a32 = decode(0x9381_0007).unwrap();
        assert_eq!(a32.len, 4);
        // IL clear: a 16-bit T32 instruction (AArch32 only).
        let t16 = decode(0x9381_0007 & !iss::IL).unwrap();
        assert_eq!(t16.len, 2);
    }
}
