// World switch between the hypervisor (EL2, VHE) and the guest (EL1).
//
// _guestaspace_el1_enter
//   in:  x0 = pointer to ArmVcpuState (see vcpu.rs)
//   out: x0 = how the guest left: 0 synchronous exception, 1 IRQ, 2 FIQ,
//        3 SError; guest x0..x30 stored back into ArmVcpuState.
//   The caller has set ELR_EL2 (guest PC), SPSR_EL2 (guest PSTATE),
//   VTTBR_EL2 and the guest HCR_EL2, with interrupts masked. Swaps
//   TPIDR_EL1 (the host's per-CPU base, which VHE does not redirect to
//   TPIDR_EL2, and the guest's own thread register) for the guest's, and
//   back on the way out. Saves the
//   host's callee-saved registers (x19-x30) in ArmVcpuState and the
//   state pointer on the host stack, installs _guestaspace_el2_vectors in
//   VBAR_EL2 for the way back (the host's is saved and restored), loads the
//   guest registers and ERETs. SP_EL2 is the same on the way back.
//
// _guestaspace_el2_vectors
//   The exception vectors while the guest runs. Exceptions from the guest
//   (the "lower EL, AArch64" group) save guest x0/x1 on the stack, put the
//   kind in x1 and join _guestaspace_el2_exit. Exceptions from EL2 itself
//   should not happen in the window (interrupts are masked, the code
//   touches only mapped memory), nor AArch32 ones (HCR_EL2.RW = 1); if one
//   does, x0 = the vector's index (0..15) and it branches to {unexpected},
//   which names it and fails the run instead of hanging.

.macro GUEST_EXIT kind
    .balign 0x80
    stp     x0, x1, [sp, #-16]!
    mov     x1, #\kind
    b       _guestaspace_el2_exit
.endm

.macro UNEXPECTED index
    .balign 0x80
    mov     x0, #\index
    b       {unexpected}
.endm

.section .text.guestaspace_switch, "ax"
.global _guestaspace_el1_enter
_guestaspace_el1_enter:
    stp     x19, x20, [x0, #{HOST} + 0 * 16]
    stp     x21, x22, [x0, #{HOST} + 1 * 16]
    stp     x23, x24, [x0, #{HOST} + 2 * 16]
    stp     x25, x26, [x0, #{HOST} + 3 * 16]
    stp     x27, x28, [x0, #{HOST} + 4 * 16]
    stp     x29, x30, [x0, #{HOST} + 5 * 16]
    mrs     x9, tpidr_el1
    str     x9, [x0, #{HOST_TPIDR}]
    ldr     x9, [x0, #{GUEST_TPIDR}]
    msr     tpidr_el1, x9
    mrs     x9, vbar_el2
    str     x9, [x0, #{HOST_VBAR}]
    adrp    x9, _guestaspace_el2_vectors
    add     x9, x9, :lo12:_guestaspace_el2_vectors
    msr     vbar_el2, x9
    isb
    str     x0, [sp, #-16]!

    ldp     x2, x3, [x0, #{GUEST} + 2 * 8]
    ldp     x4, x5, [x0, #{GUEST} + 4 * 8]
    ldp     x6, x7, [x0, #{GUEST} + 6 * 8]
    ldp     x8, x9, [x0, #{GUEST} + 8 * 8]
    ldp     x10, x11, [x0, #{GUEST} + 10 * 8]
    ldp     x12, x13, [x0, #{GUEST} + 12 * 8]
    ldp     x14, x15, [x0, #{GUEST} + 14 * 8]
    ldp     x16, x17, [x0, #{GUEST} + 16 * 8]
    ldp     x18, x19, [x0, #{GUEST} + 18 * 8]
    ldp     x20, x21, [x0, #{GUEST} + 20 * 8]
    ldp     x22, x23, [x0, #{GUEST} + 22 * 8]
    ldp     x24, x25, [x0, #{GUEST} + 24 * 8]
    ldp     x26, x27, [x0, #{GUEST} + 26 * 8]
    ldp     x28, x29, [x0, #{GUEST} + 28 * 8]
    ldr     x30, [x0, #{GUEST} + 30 * 8]
    ldp     x0, x1, [x0, #{GUEST} + 0 * 8]
    eret

_guestaspace_el2_exit:
    ldr     x0, [sp, #16]
    stp     x2, x3, [x0, #{GUEST} + 2 * 8]
    stp     x4, x5, [x0, #{GUEST} + 4 * 8]
    stp     x6, x7, [x0, #{GUEST} + 6 * 8]
    stp     x8, x9, [x0, #{GUEST} + 8 * 8]
    stp     x10, x11, [x0, #{GUEST} + 10 * 8]
    stp     x12, x13, [x0, #{GUEST} + 12 * 8]
    stp     x14, x15, [x0, #{GUEST} + 14 * 8]
    stp     x16, x17, [x0, #{GUEST} + 16 * 8]
    stp     x18, x19, [x0, #{GUEST} + 18 * 8]
    stp     x20, x21, [x0, #{GUEST} + 20 * 8]
    stp     x22, x23, [x0, #{GUEST} + 22 * 8]
    stp     x24, x25, [x0, #{GUEST} + 24 * 8]
    stp     x26, x27, [x0, #{GUEST} + 26 * 8]
    stp     x28, x29, [x0, #{GUEST} + 28 * 8]
    str     x30, [x0, #{GUEST} + 30 * 8]
    mov     x9, x1
    ldp     x2, x3, [sp], #16
    stp     x2, x3, [x0, #{GUEST} + 0 * 8]
    add     sp, sp, #16
    mrs     x10, tpidr_el1
    str     x10, [x0, #{GUEST_TPIDR}]
    ldr     x10, [x0, #{HOST_TPIDR}]
    msr     tpidr_el1, x10
    ldr     x10, [x0, #{HOST_VBAR}]
    msr     vbar_el2, x10
    isb
    ldp     x19, x20, [x0, #{HOST} + 0 * 16]
    ldp     x21, x22, [x0, #{HOST} + 1 * 16]
    ldp     x23, x24, [x0, #{HOST} + 2 * 16]
    ldp     x25, x26, [x0, #{HOST} + 3 * 16]
    ldp     x27, x28, [x0, #{HOST} + 4 * 16]
    ldp     x29, x30, [x0, #{HOST} + 5 * 16]
    mov     x0, x9
    ret

.balign 0x800
.global _guestaspace_el2_vectors
_guestaspace_el2_vectors:
    // Current EL with SP_EL0, then with SP_ELx: sync, IRQ, FIQ, SError.
    UNEXPECTED 0
    UNEXPECTED 1
    UNEXPECTED 2
    UNEXPECTED 3
    UNEXPECTED 4
    UNEXPECTED 5
    UNEXPECTED 6
    UNEXPECTED 7
    // Lower EL, AArch64: the guest.
    GUEST_EXIT 0
    GUEST_EXIT 1
    GUEST_EXIT 2
    GUEST_EXIT 3
    // Lower EL, AArch32: not possible (HCR_EL2.RW = 1).
    UNEXPECTED 12
    UNEXPECTED 13
    UNEXPECTED 14
    UNEXPECTED 15
