//! The decoder against encodings GNU `as` 2.40 produced (the comment on
//! each line is the source it assembled).

use super::*;
use CodeSize::{Bits16, Bits32, Bits64};
use Register::{Gpr, HighByte};

const RAX: u8 = 0;
const RCX: u8 = 1;
const RDX: u8 = 2;
const RBX: u8 = 3;
const RSI: u8 = 6;
const RDI: u8 = 7;

fn load(len: u8, width: Width, dst: Register, dst_size: Width) -> MmioInsn {
    MmioInsn {
        len,
        width,
        op: MmioOp::Load { dst, dst_size },
    }
}

fn store(len: u8, width: Width, src: Register) -> MmioInsn {
    MmioInsn {
        len,
        width,
        op: MmioOp::StoreReg(src),
    }
}

fn store_imm(len: u8, width: Width, imm: u64) -> MmioInsn {
    MmioInsn {
        len,
        width,
        op: MmioOp::StoreImm(imm),
    }
}

/// Decodes with trailing bytes after the instruction, as a fetch of 15
/// bytes has them.
fn d(bytes: &[u8], code: CodeSize) -> Result<MmioInsn, DecodeError> {
    let mut padded = bytes.to_vec();
    padded.resize(15, 0x90);
    decode(&padded, code)
}

#[test]
fn register_moves_in_64_bit_code() {
    use Width::*;
    let cases: &[(&[u8], MmioInsn)] = &[
        // mov %eax,(%rdi)
        (&[0x89, 0x07], store(2, Word, Gpr(RAX))),
        // mov (%rdi),%eax
        (&[0x8b, 0x07], load(2, Word, Gpr(RAX), Word)),
        // mov %ecx,0x10(%rax)
        (&[0x89, 0x48, 0x10], store(3, Word, Gpr(RCX))),
        // mov 0x10(%rax),%ecx
        (&[0x8b, 0x48, 0x10], load(3, Word, Gpr(RCX), Word)),
        // mov %al,(%rdx)
        (&[0x88, 0x02], store(2, Byte, Gpr(RAX))),
        // mov (%rdx),%ah
        (&[0x8a, 0x22], load(2, Byte, HighByte(0), Byte)),
        // mov %ah,0x3f8(%rbx)
        (
            &[0x88, 0xa3, 0xf8, 0x03, 0x00, 0x00],
            store(6, Byte, HighByte(0)),
        ),
        // mov (%rax),%bh
        (&[0x8a, 0x38], load(2, Byte, HighByte(3), Byte)),
        // mov %sil,(%rdi): any REX makes register 6 SIL, not DH
        (&[0x40, 0x88, 0x37], store(3, Byte, Gpr(RSI))),
        // mov %dil,(%rax)
        (&[0x40, 0x88, 0x38], store(3, Byte, Gpr(RDI))),
        // mov %r8b,(%rax)
        (&[0x44, 0x88, 0x00], store(3, Byte, Gpr(8))),
        // mov (%r8),%r9d
        (&[0x45, 0x8b, 0x08], load(3, Word, Gpr(9), Word)),
        // mov %r15,0x12345678(%r12,%r13,8)
        (
            &[0x4f, 0x89, 0xbc, 0xec, 0x78, 0x56, 0x34, 0x12],
            store(8, Double, Gpr(15)),
        ),
        // mov %rax,(%rdi)
        (&[0x48, 0x89, 0x07], store(3, Double, Gpr(RAX))),
        // mov %ax,(%rbx)
        (&[0x66, 0x89, 0x03], store(3, Half, Gpr(RAX))),
        // mov (%rsp),%eax: SIB, no displacement
        (&[0x8b, 0x04, 0x24], load(3, Word, Gpr(RAX), Word)),
        // mov 8(%rbp),%eax
        (&[0x8b, 0x45, 0x08], load(3, Word, Gpr(RAX), Word)),
        // mov 0(%r13),%eax: r/m 101 with mod 01 is not RIP-relative
        (&[0x41, 0x8b, 0x45, 0x00], load(4, Word, Gpr(RAX), Word)),
        // mov 0(,%rcx,4),%eax: SIB base 101 with mod 00 has a disp32
        (
            &[0x8b, 0x04, 0x8d, 0x00, 0x00, 0x00, 0x00],
            load(7, Word, Gpr(RAX), Word),
        ),
        // mov 0x100(%rip),%edx
        (
            &[0x8b, 0x15, 0x00, 0x01, 0x00, 0x00],
            load(6, Word, Gpr(RDX), Word),
        ),
        // mov %gs:(%rax),%eax
        (&[0x65, 0x8b, 0x00], load(3, Word, Gpr(RAX), Word)),
        // es mov (%rax),%bl
        (&[0x26, 0x8a, 0x18], load(3, Byte, Gpr(RBX), Byte)),
        // mov (%eax),%eax (address size 32 in 64-bit code)
        (&[0x67, 0x8b, 0x00], load(3, Word, Gpr(RAX), Word)),
    ];
    for (bytes, want) in cases {
        assert_eq!(d(bytes, Bits64), Ok(*want), "{bytes:02x?}");
    }
}

#[test]
fn immediate_stores() {
    use Width::*;
    let cases: &[(&[u8], MmioInsn)] = &[
        // movl $0x18,(%rax): how x2apic's IoApic selects a register
        (&[0xc7, 0x00, 0x18, 0, 0, 0], store_imm(6, Word, 0x18)),
        // movq $-2,(%rax): imm32 sign-extended to 64 bits
        (
            &[0x48, 0xc7, 0x00, 0xfe, 0xff, 0xff, 0xff],
            store_imm(7, Double, 0xffff_ffff_ffff_fffe),
        ),
        // movw $0x1234,(%rax)
        (&[0x66, 0xc7, 0x00, 0x34, 0x12], store_imm(5, Half, 0x1234)),
        // movw $0xffff,0x40(%rax)
        (
            &[0x66, 0xc7, 0x40, 0x40, 0xff, 0xff],
            store_imm(6, Half, 0xffff),
        ),
        // movb $0x41,0x10(%rip): the immediate follows the displacement
        (&[0xc6, 0x05, 0x10, 0, 0, 0, 0x41], store_imm(7, Byte, 0x41)),
        // movb $1,(%rax)
        (&[0xc6, 0x00, 0x01], store_imm(3, Byte, 1)),
        // movl $0xfec00000,0x12345678(%rax,%rbx,2)
        (
            &[
                0xc7, 0x84, 0x58, 0x78, 0x56, 0x34, 0x12, 0x00, 0x00, 0xc0, 0xfe,
            ],
            store_imm(11, Word, 0xfec0_0000),
        ),
        // movl $0,-8(%rbp,%rax,4)
        (&[0xc7, 0x44, 0x85, 0xf8, 0, 0, 0, 0], store_imm(8, Word, 0)),
    ];
    for (bytes, want) in cases {
        assert_eq!(d(bytes, Bits64), Ok(*want), "{bytes:02x?}");
    }
}

#[test]
fn movzx_zero_extends_into_the_operand_size() {
    use Width::*;
    // movzbl (%rdi),%eax
    assert_eq!(
        d(&[0x0f, 0xb6, 0x07], Bits64),
        Ok(load(3, Byte, Gpr(RAX), Word))
    );
    // movzwl 4(%rdi),%r10d
    assert_eq!(
        d(&[0x44, 0x0f, 0xb7, 0x57, 0x04], Bits64),
        Ok(load(5, Half, Gpr(10), Word))
    );
    // movzbq (%rdi),%rax
    assert_eq!(
        d(&[0x48, 0x0f, 0xb6, 0x07], Bits64),
        Ok(load(4, Byte, Gpr(RAX), Double))
    );
    // movzbw (%rdi),%ax
    assert_eq!(
        d(&[0x66, 0x0f, 0xb6, 0x07], Bits64),
        Ok(load(4, Byte, Gpr(RAX), Half))
    );
}

#[test]
fn accumulator_moves_to_absolute_addresses() {
    use Width::*;
    // movabs 0xfec00010,%eax: a 64-bit address in 64-bit code
    assert_eq!(
        d(&[0xa1, 0x10, 0x00, 0xc0, 0xfe, 0, 0, 0, 0], Bits64),
        Ok(load(9, Word, Gpr(RAX), Word))
    );
    // movabs %al,0xfec00000
    assert_eq!(
        d(&[0xa2, 0x00, 0x00, 0xc0, 0xfe, 0, 0, 0, 0], Bits64),
        Ok(store(9, Byte, Gpr(RAX)))
    );
    // addr32 mov 0xfec00010,%eax
    assert_eq!(
        d(&[0x67, 0xa1, 0x10, 0x00, 0xc0, 0xfe], Bits64),
        Ok(load(6, Word, Gpr(RAX), Word))
    );
}

#[test]
fn thirty_two_bit_code() {
    use Width::*;
    let cases: &[(&[u8], MmioInsn)] = &[
        // mov %eax,0xfec00010
        (&[0xa3, 0x10, 0x00, 0xc0, 0xfe], store(5, Word, Gpr(RAX))),
        // mov 0xfec00010,%eax
        (
            &[0xa1, 0x10, 0x00, 0xc0, 0xfe],
            load(5, Word, Gpr(RAX), Word),
        ),
        // mov %ecx,0x10(%ebx)
        (&[0x89, 0x4b, 0x10], store(3, Word, Gpr(RCX))),
        // movl $0x18,(%eax)
        (&[0xc7, 0x00, 0x18, 0, 0, 0], store_imm(6, Word, 0x18)),
        // movb $0x41,(%esi,%edi,2)
        (&[0xc6, 0x04, 0x7e, 0x41], store_imm(4, Byte, 0x41)),
        // mov 0x0,%al
        (&[0xa0, 0, 0, 0, 0], load(5, Byte, Gpr(RAX), Byte)),
        // movzbl 5(%edx),%eax
        (&[0x0f, 0xb6, 0x42, 0x05], load(4, Byte, Gpr(RAX), Word)),
        // mov 0xfec00010,%edx: mod 00 r/m 101 is an absolute disp32 here
        (
            &[0x8b, 0x15, 0x10, 0x00, 0xc0, 0xfe],
            load(6, Word, Gpr(RDX), Word),
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(d(bytes, Bits32), Ok(*want), "{bytes:02x?}");
    }
    // inc %eax: 40 is no REX outside 64-bit mode
    assert_eq!(
        d(&[0x40, 0x88, 0x37], Bits32),
        Err(DecodeError::Opcode(0x40))
    );
    // mov (%si),%eax: 16-bit addressing is not decoded
    assert_eq!(
        d(&[0x67, 0x8b, 0x04], Bits32),
        Err(DecodeError::Prefix(0x67))
    );
}

#[test]
fn what_is_not_a_plain_move_is_refused_by_name() {
    // lock incl (%rax)
    assert_eq!(
        d(&[0xf0, 0xff, 0x00], Bits64),
        Err(DecodeError::Prefix(0xf0))
    );
    // rep movsb
    assert_eq!(d(&[0xf3, 0xa4], Bits64), Err(DecodeError::Prefix(0xf3)));
    // add %eax,(%rdi)
    let add = d(&[0x01, 0x07], Bits64).unwrap_err();
    assert_eq!(add, DecodeError::Opcode(0x01));
    assert_eq!(add.to_string(), "opcode 0x1 not emulated on a device");
    // movsbl (%rdi),%eax
    assert_eq!(
        d(&[0x0f, 0xbe, 0x07], Bits64),
        Err(DecodeError::Opcode(0x0fbe))
    );
    // mov %eax,%ebx
    assert_eq!(
        d(&[0x89, 0xc3], Bits64),
        Err(DecodeError::RegisterOperand(0x89))
    );
    // xbegin-like C7 /7
    assert_eq!(
        d(&[0xc7, 0xf8, 0, 0, 0, 0], Bits64),
        Err(DecodeError::RegisterOperand(0xc7))
    );
    assert_eq!(
        d(&[0xc7, 0x38, 0, 0, 0, 0], Bits64),
        Err(DecodeError::OpcodeExtension {
            opcode: 0xc7,
            reg: 7
        })
    );
    assert_eq!(d(&[0x8b, 0x07], Bits16), Err(DecodeError::Code16));
}

#[test]
fn prefixes_and_rex_follow_the_ordering_rules() {
    use Width::*;
    // A REX before a legacy prefix is ignored: 48 66 89 07 is mov %ax,(%rdi).
    assert_eq!(
        d(&[0x48, 0x66, 0x89, 0x07], Bits64),
        Ok(store(4, Half, Gpr(RAX)))
    );
    // Of two REX prefixes the last counts: 48 41 89 07 is mov %eax,(%r15).
    assert_eq!(
        d(&[0x48, 0x41, 0x89, 0x07], Bits64),
        Ok(store(4, Word, Gpr(RAX)))
    );
    // REX.W wins over 66.
    assert_eq!(
        d(&[0x66, 0x48, 0x89, 0x07], Bits64),
        Ok(store(4, Double, Gpr(RAX)))
    );
}

#[test]
fn lengths_are_bounded() {
    // Only two of the six bytes of movl $0x18,(%rax) were fetched.
    assert_eq!(
        decode(&[0xc7, 0x00], Bits64),
        Err(DecodeError::Truncated { have: 2 })
    );
    assert_eq!(decode(&[], Bits64), Err(DecodeError::Truncated { have: 0 }));
    // Fourteen segment prefixes and then an instruction: too long.
    let mut long = vec![0x3e; 14];
    long.extend([0x8b, 0x07]);
    assert_eq!(decode(&long, Bits64), Err(DecodeError::TooLong));
    // Thirteen and a two-byte MOV make exactly 15.
    assert_eq!(decode(&long[1..], Bits64).map(|i| i.len), Ok(15));
}

#[test]
fn store_values_come_from_the_right_register_bytes() {
    let mut gprs = [0u64; 16];
    gprs[0] = 0x1111_2222_3333_4455;
    gprs[6] = 0xabcd;
    gprs[15] = 0x8877_6655_4433_2211;
    let v = |bytes: &[u8]| d(bytes, Bits64).unwrap().store_value(&gprs);
    assert_eq!(v(&[0x89, 0x07]), Some(0x3333_4455));
    assert_eq!(v(&[0x88, 0x02]), Some(0x55));
    // mov %ah,0x3f8(%rbx)
    assert_eq!(v(&[0x88, 0xa3, 0xf8, 0x03, 0, 0]), Some(0x44));
    assert_eq!(v(&[0x40, 0x88, 0x37]), Some(0xcd));
    assert_eq!(
        v(&[0x4f, 0x89, 0xbc, 0xec, 0x78, 0x56, 0x34, 0x12]),
        Some(0x8877_6655_4433_2211)
    );
    assert_eq!(v(&[0x66, 0xc7, 0x00, 0x34, 0x12]), Some(0x1234));
    assert_eq!(v(&[0x8b, 0x07]), None);
}

#[test]
fn loads_merge_into_the_register_as_x86_does() {
    let old = 0xffff_ffff_ffff_ffff;
    let r = |bytes: &[u8], value| {
        d(bytes, Bits64)
            .unwrap()
            .load_result(old, value)
            .map(|(_, v)| v)
    };
    // 32-bit: zero-extends into all 64 bits.
    assert_eq!(r(&[0x8b, 0x07], 0x1234_5678), Some(0x1234_5678));
    // 8-bit AL and AH keep the rest of RAX.
    assert_eq!(r(&[0x8a, 0x02], 0x12), Some(0xffff_ffff_ffff_ff12));
    assert_eq!(r(&[0x8a, 0x22], 0x12), Some(0xffff_ffff_ffff_12ff));
    // 16-bit keeps bits 63:16.
    assert_eq!(r(&[0x66, 0x8b, 0x07], 0xbeef), Some(0xffff_ffff_ffff_beef));
    // 64-bit.
    assert_eq!(r(&[0x48, 0x8b, 0x07], 0x1_0000_0000), Some(0x1_0000_0000));
    // movzbl: a byte zero-extended to 32 bits, then to 64.
    assert_eq!(r(&[0x0f, 0xb6, 0x07], 0x80), Some(0x80));
    // movzbw: zero-extended to 16 bits; bits 63:16 stay.
    assert_eq!(
        r(&[0x66, 0x0f, 0xb6, 0x07], 0x80),
        Some(0xffff_ffff_ffff_0080)
    );
    // The value is cut to the access width first.
    assert_eq!(r(&[0x0f, 0xb6, 0x07], 0x1ff), Some(0xff));
    // Destination registers.
    let dst = |bytes: &[u8]| d(bytes, Bits64).unwrap().load_result(0, 0).unwrap().0;
    assert_eq!(dst(&[0x45, 0x8b, 0x08]), Gpr(9));
    assert_eq!(dst(&[0x8a, 0x38]), HighByte(3));
    assert_eq!(HighByte(3).gpr(), RBX);
    assert_eq!(d(&[0x89, 0x07], Bits64).unwrap().load_result(0, 0), None);
}

fn modify(len: u8, width: Width, op: LogicOp, src: Operand) -> MmioInsn {
    MmioInsn {
        len,
        width,
        op: MmioOp::Modify { op, src },
    }
}

#[test]
fn and_or_xor_to_memory_read_modify_write() {
    use LogicOp::{And, Or, Xor};
    use Operand::{Imm, Reg};
    use Width::*;
    let cases: &[(&[u8], MmioInsn)] = &[
        // andl $0xfffeffff,(%rcx): ArceOS unmasking an I/O APIC entry
        (
            &[0x81, 0x21, 0xff, 0xff, 0xfe, 0xff],
            modify(6, Word, And, Imm(0xfffe_ffff)),
        ),
        // orl $0x10000,(%rcx): and masking it
        (
            &[0x81, 0x09, 0x00, 0x00, 0x01, 0x00],
            modify(6, Word, Or, Imm(0x1_0000)),
        ),
        // andl $0xfffffffe,0x10(%rax): imm8 sign-extended
        (
            &[0x83, 0x60, 0x10, 0xfe],
            modify(4, Word, And, Imm(0xffff_fffe)),
        ),
        // orb $0x80,(%rdx)
        (&[0x80, 0x0a, 0x80], modify(3, Byte, Or, Imm(0x80))),
        // xorw $0x1234,(%rbx)
        (
            &[0x66, 0x81, 0x33, 0x34, 0x12],
            modify(5, Half, Xor, Imm(0x1234)),
        ),
        // or %eax,(%rdi)
        (&[0x09, 0x07], modify(2, Word, Or, Reg(Gpr(RAX)))),
        // and %r9,(%rax)
        (&[0x4c, 0x21, 0x08], modify(3, Double, And, Reg(Gpr(9)))),
        // xor %ah,(%rsi)
        (&[0x30, 0x26], modify(2, Byte, Xor, Reg(HighByte(0)))),
        // orq $0x100,(%rax): imm32 sign-extended to 64 bits
        (
            &[0x48, 0x81, 0x08, 0x00, 0x01, 0x00, 0x00],
            modify(7, Double, Or, Imm(0x100)),
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(d(bytes, Bits64), Ok(*want), "{bytes:02x?}");
    }
    // addl $1,(%rax) is arithmetic, not a logical operation.
    assert_eq!(
        d(&[0x83, 0x00, 0x01], Bits64),
        Err(DecodeError::OpcodeExtension {
            opcode: 0x83,
            reg: 0
        })
    );
    // or %eax,%edi touches no memory.
    assert_eq!(
        d(&[0x09, 0xc7], Bits64),
        Err(DecodeError::RegisterOperand(0x09))
    );
}

#[test]
fn read_modify_write_values_and_flags() {
    let mut gprs = [0u64; 16];
    gprs[0] = 0xff00;
    let m = |bytes: &[u8], value| d(bytes, Bits64).unwrap().modified(value, &gprs);
    // Unmasking an entry that reads 0x1_0024.
    assert_eq!(
        m(&[0x81, 0x21, 0xff, 0xff, 0xfe, 0xff], 0x1_0024),
        Some(0x24)
    );
    assert_eq!(m(&[0x81, 0x09, 0, 0, 1, 0], 0x24), Some(0x1_0024));
    // xor %ah,(%rsi) with AH = 0xff.
    assert_eq!(m(&[0x30, 0x26], 0x0f), Some(0xf0));
    assert_eq!(m(&[0x89, 0x07], 0), None, "a store is not a modify");
    assert_eq!(d(&[0x09, 0x07], Bits64).unwrap().store_value(&gprs), None);

    use flags::*;
    let keep = 1 << 1 | 1 << 9; // the always-one bit and IF
    let all = CF | PF | AF | ZF | SF | OF | keep;
    assert_eq!(logic_flags(all, 0, Width::Word), keep | ZF | PF);
    assert_eq!(logic_flags(all, 0x8000_0000, Width::Word), keep | SF | PF);
    assert_eq!(logic_flags(keep, 0x80, Width::Byte), keep | SF);
    // Parity counts the low byte only; the result is cut to the width.
    assert_eq!(logic_flags(keep, 0x1_0003, Width::Half), keep | PF);
    assert_eq!(logic_flags(keep, 0x1_0000, Width::Half), keep | ZF | PF);
}
