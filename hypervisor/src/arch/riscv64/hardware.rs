//! The H-extension registers that do not belong to one vCPU: which guest
//! traps and interrupts go straight to VS-mode, the guest's view of the
//! counters, and G-stage TLB maintenance.

use core::arch::asm;
use guestaspace_core::addr::GuestPhysAddr;
use guestaspace_core::arch::setup::HwSetupError;
use riscv_h::register::{
    hcounteren, hedeleg, henvcfg, hgatp, hideleg, htimedelta, hvip, vsatp, vstimecmp,
};

/// `hgatp.MODE` value for Sv39x4.
pub const HGATP_MODE_SV39X4: usize = 8;

core::arch::global_asm!(include_str!("probe.S"));

unsafe extern "C" {
    fn _guestaspace_probe_h() -> usize;
}

/// Whether the hart implements the H extension. Reading misa needs M-mode
/// and the SBI has no call for it, so `probe.S` tries an H register.
fn has_h_extension() -> bool {
    // SAFETY: the probe restores stvec and sstatus and touches nothing else
    // of the host's; a trap it takes lands on its own label.
    unsafe { _guestaspace_probe_h() == 1 }
}

pub fn init() -> Result<(), HwSetupError> {
    if !has_h_extension() {
        return Err(HwSetupError::NoHExtension);
    }
    // Synchronous exceptions the guest handles itself: its own page faults,
    // breakpoints, misaligned accesses, illegal instructions and ecalls
    // from its user mode. Guest-page faults, ecalls from VS-mode and
    // virtual-instruction traps stay with us.
    let mut deleg = hedeleg::Hedeleg::from_bits(0);
    deleg.set_ex0(true); // instruction address misaligned
    deleg.set_ex2(true); // illegal instruction
    deleg.set_ex3(true); // breakpoint
    deleg.set_ex4(true); // load address misaligned
    deleg.set_ex6(true); // store address misaligned
    deleg.set_ex8(true); // ecall from VU-mode
    deleg.set_ex12(true); // instruction page fault
    deleg.set_ex13(true); // load page fault
    deleg.set_ex15(true); // store page fault
    let mut ideleg = hideleg::Hideleg::from_bits(0);
    ideleg.set_sip(true);
    ideleg.set_tip(true);
    ideleg.set_eip(true);
    // The guest may read time, cycle and instret directly.
    let mut counters = hcounteren::Hcounteren::from_bits(0);
    counters.set_cy(true);
    counters.set_tm(true);
    counters.set_ir(true);
    // SAFETY: these registers only affect execution with V=1, and no guest
    // runs yet.
    unsafe {
        deleg.write();
        ideleg.write();
        counters.write();
        htimedelta::write(0);
        disarm_sstc_guest_timer();
        hvip::Hvip::from_bits(0).write();
        vsatp::Vsatp::from_bits(0).write();
        // Another hart's kick (an SBI IPI: sip.SSIP) wakes this one from
        // `wfi` and ends its guest's time slice; it is never taken in
        // HS-mode, where sstatus.SIE stays off.
        riscv::register::sie::set_ssoft();
    }
    // An implementation without Sv39x4 ignores the mode write.
    let mut probe = hgatp::Hgatp::from_bits(0);
    probe.set_mode(hgatp::HgatpValues::Sv39x4);
    // SAFETY: as above; hgatp is cleared again right after the probe.
    let supported = unsafe {
        probe.write();
        let ok = hgatp::read().bits() >> 60 == HGATP_MODE_SV39X4;
        hgatp::Hgatp::from_bits(0).write();
        ok
    };
    if supported {
        Ok(())
    } else {
        Err(HwSetupError::NoSv39x4)
    }
}

/// The guest's timer is the SBI TIME call, delivered through hvip.VSTIP.
/// Where the CPU has Sstc, its own guest timer (`vstimecmp`) would raise
/// VSTIP by itself: QEMU arms it when `htimedelta` is written, and with
/// `vstimecmp` at its reset value 0 it fires at once. So it is parked at the
/// end of time, and the guest is denied direct access (henvcfg.STCE = 0).
/// henvcfg.STCE is writable only when Sstc is present and enabled, which is
/// how its presence is detected.
///
/// # Safety
/// Must run before any guest does, after `htimedelta` is set.
unsafe fn disarm_sstc_guest_timer() {
    let mut envcfg = henvcfg::read();
    envcfg.set_stce(true);
    // SAFETY: STCE only affects VS-mode, which is not running.
    unsafe { envcfg.write() };
    if henvcfg::read().stce() {
        // SAFETY: Sstc is present, so vstimecmp exists.
        unsafe { vstimecmp::write(usize::MAX) };
    }
    envcfg.set_stce(false);
    // SAFETY: as above.
    unsafe { envcfg.write() };
}

/// Invalidates G-stage translations of the guest page at `gpa`, for all
/// VMIDs. `hfence.gvma` takes the guest-physical address shifted right by 2.
pub fn hfence_gvma_page(gpa: GuestPhysAddr) {
    // SAFETY: a TLB fence has no effect on memory or registers.
    unsafe {
        asm!(".option push", ".option arch, +h", "hfence.gvma {0}, zero", ".option pop", in(reg) gpa.as_u64() >> 2)
    };
}

/// Invalidates every G-stage translation.
pub fn hfence_gvma_all() {
    // SAFETY: as above.
    unsafe {
        asm!(
            ".option push",
            ".option arch, +h",
            "hfence.gvma zero, zero",
            ".option pop"
        )
    };
}

/// `hfence.vvma` for the guest whose VMID is in `hgatp`: drops its
/// VS-stage translations of `va` (all addresses if `None`) in address
/// space `asid` (all, global ones included, if `None`). An ASID goes in a
/// register even when it is 0: `zero` would mean every ASID.
pub fn hfence_vvma(va: Option<u64>, asid: Option<u16>) {
    // SAFETY: a TLB fence has no effect on memory or registers.
    unsafe {
        match (va, asid) {
            (None, None) => asm!(
                ".option push",
                ".option arch, +h",
                "hfence.vvma zero, zero",
                ".option pop"
            ),
            (Some(v), None) => {
                asm!(".option push", ".option arch, +h", "hfence.vvma {0}, zero", ".option pop", in(reg) v)
            }
            (None, Some(a)) => {
                asm!(".option push", ".option arch, +h", "hfence.vvma zero, {0}", ".option pop", in(reg) u64::from(a))
            }
            (Some(v), Some(a)) => {
                asm!(".option push", ".option arch, +h", "hfence.vvma {0}, {1}", ".option pop", in(reg) v, in(reg) u64::from(a))
            }
        }
    }
}
