//! The x86 guest's accesses to emulated devices (nested page faults in a
//! device region), in one call: the instruction is fetched at the guest's
//! RIP through its own page tables, or taken from the VMCB where the CPU
//! has decode assists and copied it there, decoded by
//! `core::arch::x86_64::mmio_insn`, performed on the bus, and completed:
//! a load's value goes into its register, a read-modify-write's result goes
//! back to the device as a second access (and sets the flags), and RIP
//! moves past the instruction.

use super::SvmVcpu;
use guestaspace_core::addr::GuestPhysAddr;
use guestaspace_core::arch::x86_64::mmio_insn::{self, CodeSize, MmioOp, logic_flags};
use guestaspace_core::arch::x86_64::paging::{self, MAX_INSN_LEN, PagingRegs};
use guestaspace_core::devices::{Bus, MmioAccess};
use guestaspace_core::exit::Access;
use guestaspace_core::guest_memory::GuestMemory;
use guestaspace_core::vcpu::{IoError, Unemulated, access_bus};

/// NPF EXITINFO1 bit 33 (APM vol. 2, 15.25.6 "Nested versus Guest Page
/// Faults, Fault Ordering"): the fault was on the guest's own page-table
/// walk, not on the access the instruction makes.
const NPF_GUEST_TABLE: u64 = 1 << 33;
/// Segment attribute bits (descriptor bits 53 and 54 at 9 and 10): CS.L
/// (64-bit code) and CS.D (32-bit default operand size).
const CS_L: u16 = 1 << 9;
const CS_D: u16 = 1 << 10;
/// CR0.PE: protected mode.
const CR0_PE: u64 = 1 << 0;

/// The first (up to) eight instruction bytes in reading order, for a
/// diagnostic: `89 07` reads as 0x8907.
fn bytes_for_report(bytes: &[u8]) -> u64 {
    bytes.iter().take(8).fold(0, |v, &b| v << 8 | u64::from(b))
}

impl SvmVcpu {
    /// The general registers in encoding order (RAX, RCX, RDX, RBX, RSP,
    /// RBP, RSI, RDI, R8..R15).
    fn gpr_array(&self) -> [u64; 16] {
        let g = &self.gprs;
        let s = &self.vmcb.save;
        let mut all = [
            s.rax, g.rcx, g.rdx, g.rbx, s.rsp, g.rbp, g.rsi, g.rdi, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        all[8..].copy_from_slice(&g.r8_r15);
        all
    }

    fn set_gpr(&mut self, n: u8, value: u64) {
        let g = &mut self.gprs;
        match n {
            0 => self.vmcb.save.rax = value,
            1 => g.rcx = value,
            2 => g.rdx = value,
            3 => g.rbx = value,
            4 => self.vmcb.save.rsp = value,
            5 => g.rbp = value,
            6 => g.rsi = value,
            7 => g.rdi = value,
            n => g.r8_r15[usize::from(n - 8)] = value,
        }
    }

    /// The code segment's size: 64-bit in long mode with CS.L, else by
    /// CS.D (real mode is 16-bit).
    fn code_size(&self) -> CodeSize {
        let s = &self.vmcb.save;
        let paging = self.paging_regs();
        if paging.long_mode() && s.cs.attrib & CS_L != 0 {
            CodeSize::Bits64
        } else if s.cr0 & CR0_PE != 0 && s.cs.attrib & CS_D != 0 {
            CodeSize::Bits32
        } else {
            CodeSize::Bits16
        }
    }

    fn paging_regs(&self) -> PagingRegs {
        let s = &self.vmcb.save;
        PagingRegs {
            cr0: s.cr0,
            cr3: s.cr3,
            cr4: s.cr4,
            efer: s.efer,
        }
    }

    /// The instruction's bytes: the CPU's copy (decode assists), or
    /// fetched at CS:RIP through the guest's page tables.
    fn instruction_bytes(
        &self,
        mem: &dyn GuestMemory,
        code: CodeSize,
    ) -> Result<([u8; MAX_INSN_LEN], usize), Unemulated> {
        let c = &self.vmcb.control;
        let mut bytes = [0u8; MAX_INSN_LEN];
        if c.insn_len != 0 {
            let n = usize::from(c.insn_len).min(MAX_INSN_LEN);
            bytes[..n].copy_from_slice(&c.insn_bytes[..n]);
            return Ok((bytes, n));
        }
        let s = &self.vmcb.save;
        let linear = match code {
            CodeSize::Bits64 => s.rip,
            _ => s.cs.base.wrapping_add(s.rip) & 0xffff_ffff,
        };
        let n = paging::fetch(mem, &self.paging_regs(), linear, &mut bytes).map_err(|e| {
            Unemulated {
                insn: linear,
                why: e.why(),
            }
        })?;
        Ok((bytes, n))
    }

    /// The device access at `gpa` (a fault of kind `access`), decoded,
    /// performed on `bus` and completed. Kept out of line: its decoder's
    /// stack frame would otherwise be paid by every port access.
    #[inline(never)]
    pub(super) fn emulate_device_access(
        &mut self,
        gpa: GuestPhysAddr,
        access: Access,
        bus: &mut Bus,
        mem: &dyn GuestMemory,
    ) -> Result<(), IoError> {
        if self.vmcb.control.exit_info1 & NPF_GUEST_TABLE != 0 {
            return Err(IoError::Unemulated(Unemulated {
                insn: self.vmcb.control.exit_info1,
                why: "the guest's page-table walk reached the device (a page table there?)",
            }));
        }
        let code = self.code_size();
        let (bytes, n) = self.instruction_bytes(mem, code)?;
        let insn = mmio_insn::decode(&bytes[..n], code).map_err(|e| Unemulated {
            insn: bytes_for_report(&bytes[..n]),
            why: e.why(),
        })?;
        let first = match (insn.op, access) {
            (MmioOp::Load { .. }, Access::Read) | (MmioOp::Modify { .. }, _) => {
                MmioAccess::read(gpa, insn.width)
            }
            (MmioOp::StoreReg(_) | MmioOp::StoreImm(_), Access::Write) => {
                let value = insn.store_value(&self.gpr_array()).unwrap_or(0);
                MmioAccess::write(gpa, insn.width, value)
            }
            _ => {
                return Err(IoError::Unemulated(Unemulated {
                    insn: bytes_for_report(&bytes[..n]),
                    why: "the instruction's direction does not match the fault's",
                }));
            }
        };
        let value = access_bus(bus, first)?;
        if let Some(new) = insn.modified(value, &self.gpr_array()) {
            // A read-modify-write: the result goes back to the device, and
            // sets the flags.
            let s = &mut self.vmcb.save;
            s.rflags = logic_flags(s.rflags, new, insn.width);
            access_bus(bus, MmioAccess::write(gpa, insn.width, new))?;
        } else if let MmioOp::Load { dst, .. } = insn.op {
            let old = self.gpr_array()[usize::from(dst.gpr())];
            if let Some((dst, new)) = insn.load_result(old, value) {
                self.set_gpr(dst.gpr(), new);
            }
        }
        // RIP past the instruction (wrapping at 4 GiB outside 64-bit code).
        let next = self.vmcb.save.rip.wrapping_add(u64::from(insn.len));
        self.vmcb.save.rip = match code {
            CodeSize::Bits64 => next,
            _ => next & 0xffff_ffff,
        };
        Ok(())
    }
}
