//! Boot: the Linux arm64 image header, a boot stack, EL2 host setup (VHE),
//! an identity + linear boot page table, the MMU, and the jump to ArceOS.

use crate::config::plat::{BOOT_STACK_SIZE, PHYS_VIRT_OFFSET};
use aarch64_cpu::registers::{CNTHCTL_EL2, CNTVOFF_EL2, CurrentEL, HCR_EL2, Readable, Writeable};
use axplat::mem::{Aligned4K, pa};
use page_table_entry::{GenericPTE, MappingFlags, aarch64::A64PTE};

#[unsafe(link_section = ".bss.stack")]
static mut BOOT_STACK: [u8; BOOT_STACK_SIZE] = [0; BOOT_STACK_SIZE];

#[unsafe(link_section = ".data")]
static mut BOOT_PT_L0: Aligned4K<[A64PTE; 512]> = Aligned4K::new([A64PTE::empty(); 512]);

#[unsafe(link_section = ".data")]
static mut BOOT_PT_L1: Aligned4K<[A64PTE; 512]> = Aligned4K::new([A64PTE::empty(); 512]);

/// Maps the first 2 GiB with 1 GiB blocks: devices below 1 GiB, RAM above.
/// Reached both at its physical address (TTBR0, while the PC is still
/// physical) and through the linear map (TTBR1).
unsafe fn init_boot_page_table() {
    // SAFETY: runs once on the boot CPU before anything else reads the tables.
    unsafe {
        BOOT_PT_L0[0] = A64PTE::new_table(pa!(&raw mut BOOT_PT_L1 as usize));
        BOOT_PT_L1[0] = A64PTE::new_page(
            pa!(0),
            MappingFlags::READ | MappingFlags::WRITE | MappingFlags::DEVICE,
            true,
        );
        BOOT_PT_L1[1] = A64PTE::new_page(
            pa!(0x4000_0000),
            MappingFlags::READ | MappingFlags::WRITE | MappingFlags::EXECUTE,
            true,
        );
    }
}

/// Makes EL2 the host: VHE (E2H) with TGE, so EL1 register names reach EL2
/// and EL0 would trap here; AArch64 below; pointer authentication not
/// trapped; the physical counter open to EL1 guests, their physical timer
/// trapped. If QEMU was started without `virtualization=on` the CPU is at
/// EL1 and this does nothing; the hypervisor then reports that it has no
/// EL2.
unsafe extern "C" fn init_el2_host() {
    if CurrentEL.read(CurrentEL::EL) != 2 {
        return;
    }
    HCR_EL2.write(
        HCR_EL2::E2H::EnableOsAtEl2
            + HCR_EL2::TGE::EnableTrapGeneralExceptionsToEl2
            + HCR_EL2::RW::EL1IsAarch64
            + HCR_EL2::APK::DisableTrapPointerAuthKeyRegsToEl2
            + HCR_EL2::API::DisableTrapPointerAuthInstToEl2,
    );
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    // aarch64-cpu describes CNTHCTL_EL2 with E2H = 0, where EL1PCTEN and
    // EL1PCEN are bits 0 and 1; with E2H = 1 (VHE, set above) those bits
    // mean EL0 access and the EL1 controls move to bits 10 and 11. A guest
    // at EL1 reads the physical counter freely; its physical timer traps,
    // because the hypervisor emulates it.
    CNTHCTL_EL2.set(CNTHCTL_EL2.get() & !CNTHCTL_E2H_EL1PTEN | CNTHCTL_E2H_EL1PCTEN);
    CNTVOFF_EL2.set(0);
}

/// CNTHCTL_EL2.EL1PCTEN with HCR_EL2.E2H = 1, bit 10: EL1 reads of the
/// physical counter (CNTPCT_EL0) do not trap (Arm ARM DDI 0487, D23.9
/// "CNTHCTL_EL2", layout "When FEAT_VHE is implemented and HCR_EL2.E2H == 1").
const CNTHCTL_E2H_EL1PCTEN: u64 = 1 << 10;
/// CNTHCTL_EL2.EL1PTEN with HCR_EL2.E2H = 1, bit 11: EL1 accesses to the
/// EL1 physical timer (CNTP_CTL/CVAL/TVAL_EL0) do not trap when set (same
/// section).
const CNTHCTL_E2H_EL1PTEN: u64 = 1 << 11;

#[unsafe(naked)]
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.boot")]
unsafe extern "C" fn _start() -> ! {
    const FLAG_LE: usize = 0b0;
    const FLAG_PAGE_SIZE_4K: usize = 0b10;
    const FLAG_ANY_MEM: usize = 0b1000;
    // The Linux arm64 image header, so QEMU's -kernel loads us as an Image.
    core::arch::naked_asm!("
        add     x13, x18, #0x16     // 'MZ' magic
        b       {entry}             // branch to the kernel start
        .quad   0                   // image load offset from start of RAM
        .quad   _ekernel - _start   // effective size of the kernel image
        .quad   {flags}             // kernel flags
        .quad   0                   // reserved
        .quad   0                   // reserved
        .quad   0                   // reserved
        .ascii  \"ARM\\x64\"        // magic
        .long   0                   // reserved (PE COFF offset)",
        flags = const FLAG_LE | FLAG_PAGE_SIZE_4K | FLAG_ANY_MEM,
        entry = sym _start_primary,
    )
}

/// In: x0 = device tree (from QEMU). Out: calls `axplat::call_main(cpu_id,
/// dtb)` on the linear map with the MMU on; never returns.
#[unsafe(naked)]
unsafe extern "C" fn _start_primary() -> ! {
    core::arch::naked_asm!("
        mrs     x19, mpidr_el1
        and     x19, x19, #0xffffff     // CPU id
        mov     x20, x0                 // device tree

        adrp    x8, {boot_stack}
        add     x8, x8, {boot_stack_size}
        mov     sp, x8

        bl      {init_el2_host}
        bl      {init_boot_page_table}
        adrp    x0, {boot_pt}
        bl      {init_mmu}

        mov     x8, {phys_virt_offset}  // the stack, on the linear map
        add     sp, sp, x8

        mov     x0, x19
        mov     x1, x20
        ldr     x8, ={entry}
        blr     x8
        b       .",
        init_el2_host = sym init_el2_host,
        init_mmu = sym axcpu::init::init_mmu,
        init_boot_page_table = sym init_boot_page_table,
        boot_pt = sym BOOT_PT_L0,
        boot_stack = sym BOOT_STACK,
        boot_stack_size = const BOOT_STACK_SIZE,
        phys_virt_offset = const PHYS_VIRT_OFFSET,
        entry = sym axplat::call_main,
    )
}

/// Where a secondary CPU starts (PSCI CPU_ON from `cpu_boot`), at EL2
/// with its MMU off. In: x0 = its stack top (physical). Out: calls
/// `axplat::call_secondary_main(cpu_id)` on the linear map with the MMU on
/// (the boot CPU's page table); never returns.
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn _start_secondary() -> ! {
    core::arch::naked_asm!("
        mrs     x19, mpidr_el1
        and     x19, x19, #0xffffff     // CPU id
        mov     sp, x0

        bl      {init_el2_host}
        adrp    x0, {boot_pt}
        bl      {init_mmu}

        mov     x8, {phys_virt_offset}  // the stack, on the linear map
        add     sp, sp, x8

        mov     x0, x19
        ldr     x8, ={entry}
        blr     x8
        b       .",
        init_el2_host = sym init_el2_host,
        init_mmu = sym axcpu::init::init_mmu,
        boot_pt = sym BOOT_PT_L0,
        phys_virt_offset = const PHYS_VIRT_OFFSET,
        entry = sym axplat::call_secondary_main,
    )
}
