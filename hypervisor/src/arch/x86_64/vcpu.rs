//! The SVM vCPU: a VMCB set up to start the guest in long mode on the
//! boot structures of `boot`, the intercepts, and the exit decoding; its
//! device accesses are in `mmio`.

mod mmio;

use super::FLUSH_GUEST_TLB;
use super::{host_timer, svm};
use crate::host_memory::alloc_host_pages;
use axhal::time::{monotonic_time_nanos, nanos_to_ticks};
use core::mem::offset_of;
use core::sync::atomic::Ordering;
use guestaspace_core::addr::{GuestPhysAddr, GuestVirtAddr, HostPhysAddr};
use guestaspace_core::arch::smccc;
use guestaspace_core::arch::x86_64::cpuid::{CpuidPolicy, CpuidResult};
use guestaspace_core::arch::x86_64::ioio::PortAccess;
use guestaspace_core::arch::x86_64::msr::{GuestMsrs, InjectGp, MsrEnv};
use guestaspace_core::arch::x86_64::vmcb::{
    self, CallRegs, InterceptMisc1, InterceptMisc2, Segment, Vmcb, int_control,
};
use guestaspace_core::arch::x86_64::{boot, multiboot};
use guestaspace_core::devices::MmioAccess;
use guestaspace_core::devices::lapic::{IpiOutcome, Lapic};
use guestaspace_core::exit::{Exit, ExitKind, Handled, Reply};
use guestaspace_core::guest_memory::GuestMemory;
use guestaspace_core::vcpu::{Io, IoError, RemoteWork, Vcpu, access_bus};
use guestaspace_core::vm::Devices;

/// ASID of our one guest (0 is the host's).
const ASID: u32 = 1;
/// Length of the VMMCALL instruction (0F 01 D9).
const VMMCALL_LEN: u64 = 3;
/// Length of CPUID (0F A2).
const CPUID_LEN: u64 = 2;
/// Length of RDMSR (0F 32) and WRMSR (0F 30).
const MSR_INSN_LEN: u64 = 2;
/// Exception vector of #GP.
const VECTOR_GP: u32 = 13;
/// #UD, invalid opcode: what an SVM instruction raises on a CPU without
/// SVM enabled, as the guest's appears.
const VECTOR_UD: u32 = 6;
/// The I/O permission map is 12 KiB, the MSR permission map 8 KiB; all
/// bits set intercepts every port and MSR.
const IOPM_PAGES: usize = 3;
const MSRPM_PAGES: usize = 2;
/// MSRs held in the VMCB state-save area (APM vol. 2, Table B-2): FS_BASE,
/// GS_BASE, KERNEL_GS_BASE, STAR, LSTAR, CSTAR, SFMASK, SYSENTER_CS/ESP/EIP.
const GUEST_OWNED_MSRS: [u32; 10] = [
    0xc000_0100,
    0xc000_0101,
    0xc000_0102,
    0xc000_0081,
    0xc000_0082,
    0xc000_0083,
    0xc000_0084,
    0x174,
    0x175,
    0x176,
];
/// Exception vectors of #DB and #AC.
const VECTOR_DB: u32 = 1;
const VECTOR_AC: u32 = 17;
/// EVENTINJ type 3, exception (APM vol. 2, 15.20).
const EVENT_EXCEPTION: u64 = 3 << 8;
/// EVENTINJ bit 11: an error code is pushed (#AC and #GP have one).
const EVENT_ERROR_CODE: u64 = 1 << 11;
/// Exception vector of #MC: a machine check is never the guest's to see.
const VECTOR_MC: u32 = 18;

/// Guest general registers the VMCB does not hold.
#[repr(C)]
#[derive(Default)]
pub struct GuestGprs {
    rbx: u64,
    rcx: u64,
    rdx: u64,
    rsi: u64,
    rdi: u64,
    rbp: u64,
    r8_r15: [u64; 8],
}

core::arch::global_asm!(
    include_str!("vmrun.S"),
    RBX = const offset_of!(GuestGprs, rbx),
    RCX = const offset_of!(GuestGprs, rcx),
    RDX = const offset_of!(GuestGprs, rdx),
    RSI = const offset_of!(GuestGprs, rsi),
    RDI = const offset_of!(GuestGprs, rdi),
    RBP = const offset_of!(GuestGprs, rbp),
    R8 = const offset_of!(GuestGprs, r8_r15),
);

unsafe extern "C" {
    fn _guestaspace_svm_run(gprs: *mut GuestGprs, vmcb_pa: u64, host_vmcb_pa: u64);
}

pub struct SvmVcpu {
    vmcb: &'static mut Vmcb,
    vmcb_pa: HostPhysAddr,
    host_vmcb_pa: HostPhysAddr,
    gprs: GuestGprs,
    /// What the guest's CPUID reports.
    cpuid: CpuidPolicy,
    /// The MSRs neither the VMCB nor the local APIC holds.
    msrs: GuestMsrs,
    /// The guest's local APIC (x2APIC through MSRs).
    lapic: Lapic,
    /// The vector handed to the CPU as a virtual interrupt (V_IRQ), not
    /// yet taken by the guest.
    offered: Option<u8>,
    /// The host timer's deadline now, and the next host tick (ns).
    armed: u64,
    next_tick: u64,
}

fn pages(n: usize) -> (*mut u8, HostPhysAddr) {
    alloc_host_pages(n).expect("no host memory for the VMCB and permission maps")
}

impl SvmVcpu {
    pub fn new(entry: GuestPhysAddr, start: boot::Start, stage2_root: HostPhysAddr) -> Self {
        let (vmcb_ptr, vmcb_pa) = pages(1);
        let (_, host_vmcb_pa) = pages(1);
        let (iopm, iopm_pa) = pages(IOPM_PAGES);
        let (msrpm, msrpm_pa) = pages(MSRPM_PAGES);
        // SAFETY: the maps were just allocated with these sizes.
        unsafe {
            iopm.write_bytes(0xff, IOPM_PAGES * 4096);
            msrpm.write_bytes(0xff, MSRPM_PAGES * 4096);
        }
        // The MSRs VMRUN and #VMEXIT switch through the VMCB are the
        // guest's own: its accesses need no exit.
        for msr in GUEST_OWNED_MSRS {
            let (byte, bit) = vmcb::msrpm_position(msr).expect("a mapped MSR");
            // SAFETY: `byte` is inside the 8 KiB map; read and write bits.
            unsafe { *msrpm.add(byte) &= !(0b11 << bit) };
        }
        // SAFETY: a zeroed, page-aligned page of ours, used only as this VMCB.
        let vmcb = unsafe { &mut *vmcb_ptr.cast::<Vmcb>() };

        let c = &mut vmcb.control;
        // #AC and #DB are intercepted only to be delivered back: a guest
        // can otherwise make their delivery fault again forever inside the
        // CPU, and the host would never run (CVE-2015-5307, CVE-2015-8104).
        c.intercept_exceptions = 1 << VECTOR_MC | 1 << VECTOR_DB | 1 << VECTOR_AC;
        c.intercept_misc1 = (InterceptMisc1::INTR
            | InterceptMisc1::NMI
            | InterceptMisc1::SMI
            | InterceptMisc1::INIT
            | InterceptMisc1::CPUID
            | InterceptMisc1::INVD
            | InterceptMisc1::INVLPGA
            | InterceptMisc1::IOIO_PROT
            | InterceptMisc1::MSR_PROT
            | InterceptMisc1::SHUTDOWN)
            .bits();
        c.intercept_misc2 = (InterceptMisc2::VMRUN
            | InterceptMisc2::VMMCALL
            | InterceptMisc2::VMLOAD
            | InterceptMisc2::VMSAVE
            | InterceptMisc2::STGI
            | InterceptMisc2::CLGI
            | InterceptMisc2::SKINIT
            | InterceptMisc2::XSETBV)
            .bits();
        c.iopm_base_pa = iopm_pa.as_u64();
        c.msrpm_base_pa = msrpm_pa.as_u64();
        c.guest_asid = ASID;
        c.tlb_control = svm::tlb_flush();
        c.np_control = vmcb::NP_ENABLE;
        // The guest's IF masks only the virtual interrupts we inject; a
        // physical one (the host timer) always exits. HLT is not
        // intercepted: the guest sleeps until one or the other arrives.
        c.int_control = int_control::V_INTR_MASKING;
        c.ncr3 = stage2_root.as_u64();

        let s = &mut vmcb.save;
        s.cs = Segment::code64(boot::CODE_SELECTOR);
        let data = Segment::data(boot::DATA_SELECTOR);
        (s.ds, s.es, s.ss, s.fs, s.gs) = (data, data, data, data, data);
        s.gdtr = Segment::table(boot::GDT, boot::GDT_LIMIT);
        // No IDT: an exception the guest does not expect ends in a triple
        // fault, which the SHUTDOWN intercept turns into a diagnostic.
        s.idtr = Segment::table(0, 0);
        s.ldtr = Segment::ldt();
        s.tr = Segment::tss(0);
        s.cpl = 0;
        s.efer = boot::EFER;
        s.cr0 = boot::CR0;
        s.cr3 = boot::PML4;
        s.cr4 = boot::CR4;
        s.rflags = 1 << 1; // the always-one bit; IF clear
        // Paging is on, but the boot tables map guest RAM one to one.
        s.rip = entry.as_u64();
        s.rsp = boot::STACK_TOP;
        s.dr6 = 0xffff_0ff0;
        s.dr7 = 0x400;
        s.g_pat = 0x0007_0406_0007_0406; // the power-on PAT
        let mut gprs = GuestGprs::default();
        if let boot::Start::Multiboot(_) = start {
            // The Multiboot machine state (spec 3.2): 32-bit protected mode,
            // paging off, flat 4 GiB code and data segments, interrupts
            // off, EAX = the boot loader magic, EBX = the information
            // structure. GDTR and IDTR are the kernel's to load. EFER keeps
            // SVME, which VMRUN requires of the guest's EFER.
            s.cs = Segment::code32(boot::CODE_SELECTOR);
            s.efer = boot::EFER_SVME;
            s.cr0 = boot::CR0_PROTECTED;
            s.cr3 = 0;
            s.cr4 = 0;
            s.gdtr = Segment::table(0, 0);
            s.rsp = 0;
            s.rax = u64::from(multiboot::BOOTLOADER_MAGIC);
            gprs.rbx = boot::MULTIBOOT_INFO;
        }
        // The guest's TSC runs at the host's; tell it the rate (CPUID 16h)
        // the way the host's own platform code learned it.
        let tsc_hz = nanos_to_ticks(1_000_000_000);
        Self {
            vmcb,
            vmcb_pa,
            host_vmcb_pa,
            gprs,
            cpuid: CpuidPolicy {
                tsc_mhz: (tsc_hz / 1_000_000) as u16,
            },
            msrs: GuestMsrs::new(),
            lapic: Lapic::new(tsc_hz),
            offered: None,
            armed: 0,
            next_tick: monotonic_time_nanos() + host_timer::HOST_TICK_NS,
        }
    }

    /// Delivers the intercepted exception `vector` back to the guest (with
    /// `error_code` where it has one); the guest's RIP is already where
    /// the exception happened.
    fn reflect(&mut self, vector: u32, error_code: Option<u32>) -> Exit {
        self.inject_exception(vector, error_code);
        Exit::Handled(Handled::quiet(ExitKind::Reflected, false))
    }

    /// Queues exception `vector` (with `error_code` where it has one) for
    /// the next entry, through EVENTINJ (APM vol. 2, 15.20 "Event
    /// Injection"); the guest's RIP is where the exception happened.
    fn inject_exception(&mut self, vector: u32, error_code: Option<u32>) {
        let code = error_code.map_or(0, |e| u64::from(e) << 32 | EVENT_ERROR_CODE);
        self.vmcb.control.event_inj =
            u64::from(vector) | EVENT_EXCEPTION | vmcb::EVENT_VALID | code;
    }

    /// Moves the guest past the intercepted instruction: to nRIP where the
    /// CPU saves it (NRIPS), else by the instruction's usual length (which
    /// a prefix would make wrong).
    fn step_past(&mut self, len: u64) {
        self.vmcb.save.rip = if svm::has_next_rip() {
            self.vmcb.control.next_rip
        } else {
            self.vmcb.save.rip + len
        };
    }

    /// Offers the local APIC's highest pending vector to the guest as a
    /// virtual interrupt, which the CPU delivers when the guest's IF allows.
    fn offer_interrupt(&mut self) {
        if self.offered.is_none()
            && let Some(vector) = self.lapic.pending_vector()
        {
            self.vmcb.control.int_control =
                int_control::V_INTR_MASKING | int_control::virtual_interrupt(vector);
            self.offered = Some(vector);
        }
    }

    /// After an exit: if the CPU delivered the offered vector (V_IRQ is
    /// clear again), the local APIC moves it from IRR to ISR.
    fn note_delivery(&mut self) {
        if let Some(vector) = self.offered
            && self.vmcb.control.int_control & int_control::V_IRQ == 0
        {
            self.lapic.acknowledge(vector);
            self.offered = None;
        }
    }

    /// Arms the host timer for the earlier of the guest's APIC-timer
    /// deadline and the next host tick, if that changed.
    fn arm_host_timer(&mut self) {
        let deadline = self
            .lapic
            .next_deadline()
            .unwrap_or(u64::MAX)
            .min(self.next_tick);
        if deadline != self.armed {
            host_timer::arm(deadline);
            self.armed = deadline;
        }
    }

    /// An INTR exit: the host takes its interrupt, then the guest's APIC
    /// timer is brought up to date. Its expiry is a timer exit (the vector
    /// is then pending in the APIC and offered on entry); anything else is
    /// the host tick.
    fn host_interrupt(&mut self) -> Exit {
        host_timer::take_pending();
        self.armed = 0;
        let now = monotonic_time_nanos();
        let due = self.lapic.next_deadline().is_some_and(|d| now >= d);
        self.lapic.tick(now);
        if due {
            // The vector is pending in the local APIC, offered on entry.
            return Exit::Handled(Handled::timer(false));
        }
        if now >= self.next_tick {
            self.next_tick = now + host_timer::HOST_TICK_NS;
        }
        Exit::HostTick
    }

    /// CPUID, answered by the policy from the host's values; the guest
    /// steps past the 2-byte instruction.
    fn emulate_cpuid(&mut self) -> Exit {
        let (leaf, subleaf) = (self.vmcb.save.rax as u32, self.gprs.rcx as u32);
        // SAFETY: CPUID is available on every x86_64 CPU.
        let host = unsafe { core::arch::x86_64::__cpuid_count(leaf, subleaf) };
        let r = self.cpuid.apply(
            leaf,
            subleaf,
            CpuidResult::new(host.eax, host.ebx, host.ecx, host.edx),
        );
        self.vmcb.save.rax = u64::from(r.eax);
        self.gprs.rbx = u64::from(r.ebx);
        self.gprs.rcx = u64::from(r.ecx);
        self.gprs.rdx = u64::from(r.edx);
        self.step_past(CPUID_LEN);
        Exit::Handled(Handled::quiet(ExitKind::SysReg, false))
    }

    /// RDMSR/WRMSR through the MSR policy (ECX the MSR, EDX:EAX the value);
    /// one it refuses injects #GP into the guest, which does not step past.
    fn emulate_msr(&mut self, write: bool) -> Exit {
        let msr = self.gprs.rcx as u32;
        let mut env = MsrEnv {
            vmcb: &mut *self.vmcb,
            lapic: &mut self.lapic,
            // SAFETY: RDTSC has no side effects.
            host_tsc: unsafe { core::arch::x86_64::_rdtsc() },
            now_ns: monotonic_time_nanos(),
        };
        let result = if write {
            let value = self.gprs.rdx << 32 | (env.vmcb.save.rax & 0xffff_ffff);
            self.msrs.write(msr, value, &mut env)
        } else {
            self.msrs.read(msr, &mut env).map(|value| {
                env.vmcb.save.rax = value & 0xffff_ffff;
                self.gprs.rdx = value >> 32;
            })
        };
        match result {
            Ok(()) => {
                self.step_past(MSR_INSN_LEN);
                Exit::Handled(Handled::quiet(ExitKind::SysReg, false))
            }
            Err(InjectGp) => {
                self.inject_exception(VECTOR_GP, Some(0));
                Exit::Handled(Handled::fault(ExitKind::SysReg))
            }
        }
    }
}

impl Vcpu for SvmVcpu {
    fn run(&mut self) -> Exit {
        self.offer_interrupt();
        self.arm_host_timer();
        if FLUSH_GUEST_TLB.swap(false, Ordering::Relaxed) {
            self.vmcb.control.tlb_control = svm::tlb_flush();
        }
        // SAFETY: the VMCB and host-state VMCB are ours and set up; the
        // nested tables at nCR3 only map what the address space allows.
        unsafe {
            _guestaspace_svm_run(
                &mut self.gprs,
                self.vmcb_pa.as_u64(),
                self.host_vmcb_pa.as_u64(),
            )
        };
        self.vmcb.control.tlb_control = 0;
        // An event cut short by this exit (a fault while delivering it) is
        // delivered again on the next entry, not lost.
        if self.vmcb.control.exit_int_info & vmcb::EVENT_VALID != 0 {
            self.vmcb.control.event_inj = self.vmcb.control.exit_int_info;
        }
        self.note_delivery();
        match self.vmcb.control.exit_code {
            vmcb::exit_code::INTR => return self.host_interrupt(),
            code if code == vmcb::exit_code::EXCEPTION_BASE + u64::from(VECTOR_DB) => {
                return self.reflect(VECTOR_DB, None);
            }
            code if code == vmcb::exit_code::EXCEPTION_BASE + u64::from(VECTOR_AC) => {
                return self.reflect(VECTOR_AC, Some(0));
            }
            code if vmcb::is_svm_instruction(code) => {
                self.inject_exception(VECTOR_UD, None);
                return Exit::Handled(Handled::fault(ExitKind::Reflected));
            }
            vmcb::exit_code::CPUID => return self.emulate_cpuid(),
            vmcb::exit_code::MSR => return self.emulate_msr(self.vmcb.control.exit_info1 == 1),
            _ => {}
        }
        let c = &self.vmcb.control;
        let regs = CallRegs {
            cpl: self.vmcb.save.cpl,
            rax: self.vmcb.save.rax,
            rdi: self.gprs.rdi,
            rsi: self.gprs.rsi,
            rdx: self.gprs.rdx,
        };
        vmcb::decode(c.exit_code, c.exit_info1, c.exit_info2, &regs)
    }

    fn pc(&self) -> GuestVirtAddr {
        GuestVirtAddr::new(self.vmcb.save.rip)
    }

    fn finish_hypercall(&mut self, reply: Reply) {
        self.vmcb.save.rax = smccc::encode(reply);
        self.step_past(VMMCALL_LEN);
    }

    /// A device access by nested page fault: the instruction is decoded
    /// and completed in `mmio`; a port access is performed on the port
    /// bus, an IN's value going to AL/AX/EAX as wide as the access (EAX
    /// zero-extends into RAX), and the guest resumes at the next
    /// instruction, which the IOIO exit names (EXITINFO2).
    fn emulate_io(
        &mut self,
        io: Io,
        devices: &mut Devices,
        mem: &dyn GuestMemory,
    ) -> Result<(), IoError> {
        let port = match io {
            Io::Mmio { gpa, access } => {
                return self.emulate_device_access(gpa, access, &mut devices.bus, mem);
            }
            Io::Port(port) => port,
        };
        let addr = guestaspace_core::addr::GuestPhysAddr::new(u64::from(port.port));
        let access = match port.write {
            Some(v) => MmioAccess::write(addr, port.width, v),
            None => MmioAccess::read(addr, port.width),
        };
        let value = access_bus(&mut devices.ports, access)?;
        if let Ok(decoded) = PortAccess::decode(self.vmcb.control.exit_info1)
            && decoded.is_in()
        {
            self.vmcb.save.rax = decoded.merge_in(self.vmcb.save.rax, value);
        }
        self.vmcb.save.rip = self.vmcb.control.exit_info2;
        Ok(())
    }

    /// Level-triggered vectors the guest ended go back to the I/O APIC
    /// (which sends one still asserted again); its messages go to the
    /// local APIC, which accepts those addressed here. Their vectors are
    /// offered on the next entry.
    fn sync_interrupts(&mut self, devices: &mut Devices) -> u64 {
        while let Some(vector) = self.lapic.take_level_eoi() {
            devices.end_of_interrupt(vector);
        }
        let mut accepted = 0;
        while let Some(message) = devices.take_message() {
            if self.lapic.accept_message(&message) == IpiOutcome::Delivered {
                accepted += 1;
            }
        }
        accepted
    }

    /// An x86 VM has one vCPU for now (`check_smp`), which no firmware
    /// call starts; were one started, it would resume at `entry`.
    fn start(&mut self, entry: GuestPhysAddr, _arg: u64) {
        self.vmcb.save.rip = entry.as_u64();
    }

    /// Nothing is ever posted to an x86 vCPU: it has no SBI-style calls.
    fn remote_work(&mut self, _work: RemoteWork) {}

    /// With one vCPU there is never another to kick.
    fn kick(_cpu: usize) {}

    fn idle() {
        core::hint::spin_loop();
    }
}
