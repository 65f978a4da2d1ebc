# World switch between the hypervisor (HS-mode) and the guest (VS-mode).
#
# _guestaspace_vm_enter
#   in:  a0 = pointer to VcpuState (see vcpu.rs)
#   out: returns to the caller once the guest traps back to HS-mode.
#   Loads sepc and guest x1..x31 from VcpuState and enters the guest with
#   sret; the caller has set hstatus.SPV = 1, sstatus.SPP = 1 and cleared
#   sstatus.SIE. Saves the host's callee-saved registers (ra, sp, gp, tp,
#   s0-s11), stvec and sscratch, and points stvec at _guestaspace_vm_exit
#   and sscratch at VcpuState for the way back.
#
# _guestaspace_vm_exit (the trap vector while the guest runs)
#   Stores guest x1..x31 and sepc into VcpuState, restores the host's
#   stvec, sscratch and callee-saved registers, and returns from
#   _guestaspace_vm_enter. scause, stval and htval are left for the caller.

.section .text.guestaspace_switch, "ax"
.global _guestaspace_vm_enter
.balign 4
_guestaspace_vm_enter:
    sd      ra,  {HOST} + 0 * 8(a0)
    sd      sp,  {HOST} + 1 * 8(a0)
    sd      gp,  {HOST} + 2 * 8(a0)
    sd      tp,  {HOST} + 3 * 8(a0)
    sd      s0,  {HOST} + 4 * 8(a0)
    sd      s1,  {HOST} + 5 * 8(a0)
    sd      s2,  {HOST} + 6 * 8(a0)
    sd      s3,  {HOST} + 7 * 8(a0)
    sd      s4,  {HOST} + 8 * 8(a0)
    sd      s5,  {HOST} + 9 * 8(a0)
    sd      s6,  {HOST} + 10 * 8(a0)
    sd      s7,  {HOST} + 11 * 8(a0)
    sd      s8,  {HOST} + 12 * 8(a0)
    sd      s9,  {HOST} + 13 * 8(a0)
    sd      s10, {HOST} + 14 * 8(a0)
    sd      s11, {HOST} + 15 * 8(a0)
    csrr    t0, stvec
    sd      t0, {HOST_STVEC}(a0)
    csrr    t0, sscratch
    sd      t0, {HOST_SSCRATCH}(a0)
    la      t0, _guestaspace_vm_exit
    csrw    stvec, t0
    csrw    sscratch, a0
    ld      t0, {GUEST_PC}(a0)
    csrw    sepc, t0

    ld      x1,  {GUEST} + 1 * 8(a0)
    ld      x2,  {GUEST} + 2 * 8(a0)
    ld      x3,  {GUEST} + 3 * 8(a0)
    ld      x4,  {GUEST} + 4 * 8(a0)
    ld      x5,  {GUEST} + 5 * 8(a0)
    ld      x6,  {GUEST} + 6 * 8(a0)
    ld      x7,  {GUEST} + 7 * 8(a0)
    ld      x8,  {GUEST} + 8 * 8(a0)
    ld      x9,  {GUEST} + 9 * 8(a0)
    ld      x11, {GUEST} + 11 * 8(a0)
    ld      x12, {GUEST} + 12 * 8(a0)
    ld      x13, {GUEST} + 13 * 8(a0)
    ld      x14, {GUEST} + 14 * 8(a0)
    ld      x15, {GUEST} + 15 * 8(a0)
    ld      x16, {GUEST} + 16 * 8(a0)
    ld      x17, {GUEST} + 17 * 8(a0)
    ld      x18, {GUEST} + 18 * 8(a0)
    ld      x19, {GUEST} + 19 * 8(a0)
    ld      x20, {GUEST} + 20 * 8(a0)
    ld      x21, {GUEST} + 21 * 8(a0)
    ld      x22, {GUEST} + 22 * 8(a0)
    ld      x23, {GUEST} + 23 * 8(a0)
    ld      x24, {GUEST} + 24 * 8(a0)
    ld      x25, {GUEST} + 25 * 8(a0)
    ld      x26, {GUEST} + 26 * 8(a0)
    ld      x27, {GUEST} + 27 * 8(a0)
    ld      x28, {GUEST} + 28 * 8(a0)
    ld      x29, {GUEST} + 29 * 8(a0)
    ld      x30, {GUEST} + 30 * 8(a0)
    ld      x31, {GUEST} + 31 * 8(a0)
    ld      x10, {GUEST} + 10 * 8(a0)
    sret

.balign 4
_guestaspace_vm_exit:
    csrrw   a0, sscratch, a0
    sd      x1,  {GUEST} + 1 * 8(a0)
    sd      x2,  {GUEST} + 2 * 8(a0)
    sd      x3,  {GUEST} + 3 * 8(a0)
    sd      x4,  {GUEST} + 4 * 8(a0)
    sd      x5,  {GUEST} + 5 * 8(a0)
    sd      x6,  {GUEST} + 6 * 8(a0)
    sd      x7,  {GUEST} + 7 * 8(a0)
    sd      x8,  {GUEST} + 8 * 8(a0)
    sd      x9,  {GUEST} + 9 * 8(a0)
    sd      x11, {GUEST} + 11 * 8(a0)
    sd      x12, {GUEST} + 12 * 8(a0)
    sd      x13, {GUEST} + 13 * 8(a0)
    sd      x14, {GUEST} + 14 * 8(a0)
    sd      x15, {GUEST} + 15 * 8(a0)
    sd      x16, {GUEST} + 16 * 8(a0)
    sd      x17, {GUEST} + 17 * 8(a0)
    sd      x18, {GUEST} + 18 * 8(a0)
    sd      x19, {GUEST} + 19 * 8(a0)
    sd      x20, {GUEST} + 20 * 8(a0)
    sd      x21, {GUEST} + 21 * 8(a0)
    sd      x22, {GUEST} + 22 * 8(a0)
    sd      x23, {GUEST} + 23 * 8(a0)
    sd      x24, {GUEST} + 24 * 8(a0)
    sd      x25, {GUEST} + 25 * 8(a0)
    sd      x26, {GUEST} + 26 * 8(a0)
    sd      x27, {GUEST} + 27 * 8(a0)
    sd      x28, {GUEST} + 28 * 8(a0)
    sd      x29, {GUEST} + 29 * 8(a0)
    sd      x30, {GUEST} + 30 * 8(a0)
    sd      x31, {GUEST} + 31 * 8(a0)
    csrr    t0, sscratch
    sd      t0, {GUEST} + 10 * 8(a0)
    csrr    t0, sepc
    sd      t0, {GUEST_PC}(a0)

    ld      t0, {HOST_STVEC}(a0)
    csrw    stvec, t0
    ld      t0, {HOST_SSCRATCH}(a0)
    csrw    sscratch, t0
    ld      ra,  {HOST} + 0 * 8(a0)
    ld      sp,  {HOST} + 1 * 8(a0)
    ld      gp,  {HOST} + 2 * 8(a0)
    ld      tp,  {HOST} + 3 * 8(a0)
    ld      s0,  {HOST} + 4 * 8(a0)
    ld      s1,  {HOST} + 5 * 8(a0)
    ld      s2,  {HOST} + 6 * 8(a0)
    ld      s3,  {HOST} + 7 * 8(a0)
    ld      s4,  {HOST} + 8 * 8(a0)
    ld      s5,  {HOST} + 9 * 8(a0)
    ld      s6,  {HOST} + 10 * 8(a0)
    ld      s7,  {HOST} + 11 * 8(a0)
    ld      s8,  {HOST} + 12 * 8(a0)
    ld      s9,  {HOST} + 13 * 8(a0)
    ld      s10, {HOST} + 14 * 8(a0)
    ld      s11, {HOST} + 15 * 8(a0)
    ret
