# World switch between the hypervisor and an SVM guest.
#
# _guestaspace_svm_run
#   in:  rdi = pointer to GuestGprs (see vcpu.rs): guest rbx, rcx, rdx, rsi,
#              rdi, rbp, r8-r15. Guest rax, rsp, rip and flags live in the VMCB.
#        rsi = host-physical address of the guest VMCB
#        rdx = host-physical address of the host-state VMCB
#   out: returns after the #VMEXIT, guest registers stored back in GuestGprs.
#   Preserves the SysV callee-saved registers (rbx, rbp, r12-r15); clobbers
#   the rest. Runs with GIF clear from CLGI to STGI, and with RFLAGS.IF set
#   across VMRUN: with V_INTR_MASKING the host's IF is what lets a physical
#   interrupt end the guest's run (#VMEXIT(INTR)); GIF = 0 keeps the host
#   from taking it before VMRUN or after #VMEXIT. IF is clear again before
#   STGI, so the caller decides when the host takes a pending interrupt.
#   VMSAVE/VMLOAD swap the
#   state VMRUN does not (FS, GS, TR, LDTR with hidden parts, KernelGsBase,
#   STAR/LSTAR/CSTAR/SFMASK, SYSENTER MSRs) between host and guest.

.section .text.guestaspace_svm, "ax"
.global _guestaspace_svm_run
_guestaspace_svm_run:
    push    rbp
    push    rbx
    push    r12
    push    r13
    push    r14
    push    r15
    push    rdx                         # [rsp + 16]: host-state VMCB
    push    rsi                         # [rsp + 8]:  guest VMCB
    push    rdi                         # [rsp]:      GuestGprs

    clgi
    mov     rax, rdx
    vmsave  rax
    mov     rax, rsi
    vmload  rax

    mov     rbx, [rdi + {RBX}]
    mov     rcx, [rdi + {RCX}]
    mov     rdx, [rdi + {RDX}]
    mov     rsi, [rdi + {RSI}]
    mov     rbp, [rdi + {RBP}]
    mov     r8,  [rdi + {R8}]
    mov     r9,  [rdi + {R8} + 1 * 8]
    mov     r10, [rdi + {R8} + 2 * 8]
    mov     r11, [rdi + {R8} + 3 * 8]
    mov     r12, [rdi + {R8} + 4 * 8]
    mov     r13, [rdi + {R8} + 5 * 8]
    mov     r14, [rdi + {R8} + 6 * 8]
    mov     r15, [rdi + {R8} + 7 * 8]
    mov     rdi, [rdi + {RDI}]

    sti                                 # GIF = 0: nothing is taken yet
    vmrun   rax                         # rax = guest VMCB; back here on #VMEXIT
                                        # with host rsp and rax restored
    xchg    rdi, [rsp]                  # rdi = GuestGprs, [rsp] = guest rdi
    mov     [rdi + {RBX}], rbx
    mov     [rdi + {RCX}], rcx
    mov     [rdi + {RDX}], rdx
    mov     [rdi + {RSI}], rsi
    mov     [rdi + {RBP}], rbp
    mov     [rdi + {R8}], r8
    mov     [rdi + {R8} + 1 * 8], r9
    mov     [rdi + {R8} + 2 * 8], r10
    mov     [rdi + {R8} + 3 * 8], r11
    mov     [rdi + {R8} + 4 * 8], r12
    mov     [rdi + {R8} + 5 * 8], r13
    mov     [rdi + {R8} + 6 * 8], r14
    mov     [rdi + {R8} + 7 * 8], r15
    pop     rax
    mov     [rdi + {RDI}], rax

    mov     rax, [rsp]                  # guest VMCB
    vmsave  rax
    mov     rax, [rsp + 8]              # host-state VMCB
    vmload  rax
    cli
    stgi

    add     rsp, 16
    pop     r15
    pop     r14
    pop     r13
    pop     r12
    pop     rbx
    pop     rbp
    ret
