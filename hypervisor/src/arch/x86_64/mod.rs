//! x86_64 with AMD SVM: the guest runs in long mode under VMRUN, its
//! guest-physical memory translated by nested page tables (`nCR3`); every
//! intercepted event comes back as a #VMEXIT with a code in the VMCB.

mod host_timer;
mod power;
mod svm;
mod vcpu;

use super::{Arch, BootPlan, Outcome};
use crate::boot_inputs::BootInputs;
use crate::error::HvError;
use alloc::vec;
use core::sync::atomic::{AtomicBool, Ordering};
use guestaspace_core::addr::{GuestPhysAddr, HostPhysAddr};
use guestaspace_core::arch::setup::HwSetupError;
use guestaspace_core::arch::x86_64::{boot, multiboot};
use guestaspace_core::image::ImageError;
use guestaspace_core::layout::GuestLayout;
use guestaspace_core::machine::{self, Board, CpuWiring};
use guestaspace_core::stage2::Npt;

pub struct X86_64;

/// Set when a nested mapping changed; the next VMRUN flushes the guest's
/// TLB entries (TLB_CONTROL) and clears it.
static FLUSH_GUEST_TLB: AtomicBool = AtomicBool::new(false);

impl Arch for X86_64 {
    type Format = Npt;
    type Vcpu = vcpu::SvmVcpu;
    const DESCRIPTION: &'static str =
        "x86_64 AMD SVM, guest in long mode behind nested page tables";
    const BOARD: Board = machine::X86_Q35;

    fn init_hardware() -> Result<(), HwSetupError> {
        svm::enable()?;
        host_timer::calibrate();
        Ok(())
    }

    type Start = boot::Start;

    /// A Multiboot kernel goes where its header says, with the Multiboot
    /// information structure at `boot::MULTIBOOT_INFO`; any other image at
    /// the layout's entry, with the long-mode boot structures.
    fn boot_plan(
        image: &[u8],
        layout: &GuestLayout,
        inputs: BootInputs,
    ) -> Result<BootPlan<boot::Start>, HvError> {
        if inputs.initrd.is_some() {
            return Err(HvError::Boot(
                "an initrd is not passed to an x86_64 guest yet (no Multiboot modules)".into(),
            ));
        }
        let image_error = |error| HvError::Image {
            path: inputs.kernel,
            error,
        };
        let ram = layout.ram().ok_or(image_error(ImageError::NoRam {
            entry: layout.entry,
        }))?;
        let start = boot::start_for(image, ram).map_err(image_error)?;
        Ok(match start {
            boot::Start::LongMode => BootPlan {
                load: layout.entry,
                bytes: 0..image.len(),
                entry: layout.entry,
                extra: boot::pages()
                    .map(|(gpa, words)| (gpa, words.iter().flat_map(|w| w.to_le_bytes()).collect()))
                    .collect(),
                start,
            },
            boot::Start::Multiboot(plan) => {
                let info_at = GuestPhysAddr::new(boot::MULTIBOOT_INFO);
                let mut info = vec![0u8; 4096];
                let used = multiboot::write_info(
                    &mut info,
                    info_at,
                    &[(ram.gpa, ram.size)],
                    inputs.cmdline.as_deref().unwrap_or(""),
                    "arceos-guestaspace",
                )
                .expect("a page holds the information structure");
                info.truncate(used);
                let first = plan.file_offset as usize;
                BootPlan {
                    load: plan.load,
                    bytes: first..first + plan.file_size as usize,
                    entry: plan.entry,
                    extra: vec![(info_at, info)],
                    start,
                }
            }
        })
    }

    fn new_vcpu(
        plan: &BootPlan<boot::Start>,
        stage2_root: HostPhysAddr,
        _wiring: CpuWiring,
    ) -> vcpu::SvmVcpu {
        vcpu::SvmVcpu::new(plan.entry, plan.start, stage2_root)
    }

    /// Never made: [`Arch::check_smp`] keeps x86_64 VMs at one vCPU (the
    /// application processors' INIT-SIPI start-up is not built yet). Made
    /// anyway it would be a vCPU that starts in long mode, off until
    /// started.
    fn new_secondary_vcpu(
        _index: usize,
        stage2_root: HostPhysAddr,
        _wiring: CpuWiring,
    ) -> vcpu::SvmVcpu {
        vcpu::SvmVcpu::new(GuestPhysAddr::new(0), boot::Start::LongMode, stage2_root)
    }

    fn init_cpu() -> Result<(), HwSetupError> {
        svm::enable()
    }

    /// One vCPU: the local APICs' IPIs and INIT-SIPI are not emulated yet.
    fn check_smp(cpus: usize) -> Result<(), HvError> {
        if cpus > 1 {
            return Err(HvError::Boot(alloc::format!(
                "the VM has {cpus} vCPUs: SMP guests run on riscv64 and aarch64; an x86_64 VM has one vCPU for now"
            )));
        }
        Ok(())
    }

    fn invalidate_guest_page(_gpa: GuestPhysAddr) {
        // SVM has no per-page nested-TLB flush without INVLPGB; flushing
        // the guest's ASID on the next VMRUN covers every change.
        FLUSH_GUEST_TLB.store(true, Ordering::Relaxed);
    }

    const HOST_TICK_NS: u64 = host_timer::HOST_TICK_NS;

    fn power_off(outcome: Outcome) -> ! {
        power::power_off(outcome)
    }
}
