# Does this hart have the H extension? S-mode cannot read misa, so read
# hstatus and see whether it traps.
#
# _guestaspace_probe_h
#   in:  nothing. Must be called with interrupts off or on; they are back
#        as they were on return.
#   out: a0 = 1 if `csrr hstatus` executed, 0 if it raised an
#        illegal-instruction trap.
#   Clobbers t0-t2. Points stvec at a local label for the one instruction
#   and puts stvec and sstatus (whose SIE/SPIE/SPP a trap changes) back;
#   sepc, scause and stval are left as the trap set them.

.section .text.guestaspace_probe, "ax"
.global _guestaspace_probe_h
.balign 4
_guestaspace_probe_h:
    csrr    t0, stvec
    csrr    t1, sstatus
    la      t2, 1f
    csrw    stvec, t2
    li      a0, 0
    csrr    t2, hstatus         # traps to 1: without the H extension
    li      a0, 1
.balign 4
1:
    csrw    stvec, t0
    csrw    sstatus, t1
    ret
