//! The architecture boundary: everything the neutral code needs from one
//! CPU architecture, behind the [`Arch`] trait. Exactly one implementation
//! is compiled in, chosen by the target, and exported as [`Current`].
//!
//! # Exit status
//! QEMU's exit status tells `cargo xtask` whether the run succeeded, so the
//! hypervisor powers the machine off through a device that carries a code
//! ([`Arch::power_off`]). ArceOS powers off by itself only on a panic (or if
//! `main` returned, which it never does), so the build wraps its power-off
//! entry point (`--wrap=__PowerIf_system_off`, see build.rs) and routes it
//! to `power_off(Outcome::Failure)`.

use crate::boot_inputs::BootInputs;
use crate::error::HvError;
use alloc::vec::Vec;
use core::ops::Range;
use guestaspace_core::addr::{GuestPhysAddr, HostPhysAddr};
use guestaspace_core::arch::setup::HwSetupError;
use guestaspace_core::layout::GuestLayout;
use guestaspace_core::machine::{Board, CpuWiring};
use guestaspace_core::stage2::Format;
use guestaspace_core::vcpu::Vcpu;

/// Where the guest image goes and how the vCPU starts it.
pub struct BootPlan<S> {
    /// Guest-physical address of the first placed byte.
    pub load: GuestPhysAddr,
    /// Which bytes of the image are placed there.
    pub bytes: Range<usize>,
    /// The vCPU's first instruction.
    pub entry: GuestPhysAddr,
    /// Other data the loader writes into guest RAM before the guest runs
    /// (boot page tables, a boot information structure).
    pub extra: Vec<(GuestPhysAddr, Vec<u8>)>,
    /// How the vCPU starts (read only where there is more than one way).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub start: S,
}

/// The plan of an S-mode or EL1 kernel that is not a Linux `Image` but
/// reads a device tree: the whole image at the layout's entry, started at
/// its first byte, the tree `blob` at the top of RAM, its address the
/// vCPU's start value (`a1`, `x0`).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))] // no device tree there
pub(crate) fn whole_image_with_tree(
    image: &[u8],
    layout: &GuestLayout,
    blob: Vec<u8>,
) -> Result<BootPlan<GuestPhysAddr>, HvError> {
    let at = guestaspace_core::dtb::dtb_address(layout, blob.len() as u64)
        .map_err(|e| HvError::DeviceTree(alloc::format!("{e}")))?;
    Ok(BootPlan {
        load: layout.entry,
        bytes: 0..image.len(),
        entry: layout.entry,
        extra: alloc::vec![(at, blob)],
        start: at,
    })
}

/// How the run ended, as QEMU's exit status will say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

pub trait Arch {
    /// The stage-2 descriptor format.
    type Format: Format;
    /// The virtual CPU.
    type Vcpu: Vcpu;
    /// One line printed at start: architecture and virtualization mode.
    const DESCRIPTION: &'static str;
    /// The machine the guest is given: its RAM, devices and interrupt
    /// wiring, and the host devices the hypervisor keeps.
    const BOARD: Board;

    /// Checks the virtualization extension is there and configures the
    /// hypervisor-level registers that do not depend on the VM.
    fn init_hardware() -> Result<(), HwSetupError>;
    /// How this architecture's vCPU starts (x86_64: long mode or
    /// Multiboot); `()` where there is one way.
    type Start;
    /// Where `image` goes in guest RAM, with the initrd and command line of
    /// `inputs`, and how the vCPU starts it.
    fn boot_plan(
        image: &[u8],
        layout: &GuestLayout,
        inputs: BootInputs,
    ) -> Result<BootPlan<Self::Start>, HvError>;
    /// A vCPU that starts as `plan` says, with stage-2 root `stage2_root`,
    /// wired to the interrupt controller as `wiring` says.
    fn new_vcpu(
        plan: &BootPlan<Self::Start>,
        stage2_root: HostPhysAddr,
        wiring: CpuWiring,
    ) -> Self::Vcpu;
    /// vCPU `index` (not 0), made on the host CPU that runs it: off, until
    /// the guest starts it ([`Vcpu::start`]).
    fn new_secondary_vcpu(index: usize, stage2_root: HostPhysAddr, wiring: CpuWiring)
    -> Self::Vcpu;
    /// The hypervisor-level set-up of a secondary host CPU (what
    /// [`Arch::init_hardware`] did on the boot CPU that is per CPU).
    fn init_cpu() -> Result<(), HwSetupError>;
    /// Refuses a VM of `cpus` vCPUs this architecture cannot run yet.
    fn check_smp(_cpus: usize) -> Result<(), HvError> {
        Ok(())
    }
    /// Drops cached stage-2 translations of the guest page at `gpa`.
    fn invalidate_guest_page(gpa: GuestPhysAddr);
    /// Makes the host's writes to the guest frame at kernel address `frame`
    /// (one page) visible to a guest whose caches may be off. Nothing to do
    /// where the caches are coherent with all accesses (riscv64, x86_64).
    fn publish_guest_frame(_frame: *const u8) {}
    /// Powers the machine off with an exit status that carries `outcome`.
    fn power_off(outcome: Outcome) -> !;
    /// Period of the hypervisor's own tick (its `HostTick` exits), in
    /// nanoseconds; 0 if this architecture has none yet.
    const HOST_TICK_NS: u64;
}

/// The replacement for ArceOS's platform power-off (see "Exit status").
#[unsafe(no_mangle)]
#[allow(non_snake_case)]
extern "Rust" fn __wrap___PowerIf_system_off() -> ! {
    Current::power_off(Outcome::Failure)
}

unsafe extern "Rust" {
    /// The platform's own power-off, reached past the wrap.
    fn __real___PowerIf_system_off() -> !;
}

/// Powers off the way the platform does (SBI, PSCI, ACPI), which QEMU
/// reports as exit status 0: the success path of every architecture.
fn platform_power_off() -> ! {
    // SAFETY: the platform's power-off may be called at any time.
    unsafe { __real___PowerIf_system_off() }
}

#[cfg(target_arch = "riscv64")]
mod riscv64;
#[cfg(target_arch = "riscv64")]
pub use riscv64::Riscv64 as Current;

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use x86_64::X86_64 as Current;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "aarch64")]
pub use aarch64::Aarch64 as Current;
