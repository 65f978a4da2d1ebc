//! x86_64 on QEMU q35 with an EPYC CPU (TCG emulates SVM and nested
//! paging): QEMU's multiboot loader boots the hypervisor ELF, the disk is a
//! virtio-blk PCI device, and the `isa-debug-exit` device lets the
//! hypervisor end QEMU with a failure status. The guest is gkernel, an
//! ArceOS kernel on the stock `axplat-x86-pc`, entered through its
//! Multiboot header; its pflash is emulated by the hypervisor (a page with
//! the magic only), so the test scenario is built into the guest.

use super::{
    App, Arch, ArchSpec, HOST_RAM, KernelImage, QEMU_MIN_VERSION, QemuSpec, VmFiles,
    hypervisor_app, qemu_words, virtio_disk_args,
};
use guestaspace_core::machine::X86_Q35;
use std::ffi::OsString;

pub const SPEC: ArchSpec = ArchSpec {
    arch: Arch::X86_64,
    triple: "x86_64-unknown-none",
    guest: App {
        package: "gkernel",
        binary: "gkernel",
        config: Some("x86_64-guest.toml"),
    },
    hypervisor: hypervisor_app("x86_64-hypervisor.toml"),
    board: &X86_Q35,
    kernel: KernelImage::Elf,
    pflash_size: 0,
    phys_virt_offset: 0xffff_8000_0000_0000,
    qemu: QemuSpec {
        binary: "qemu-system-x86_64",
        debian_package: "qemu-system-x86",
        min_version: QEMU_MIN_VERSION,
        args: qemu_args,
        without_virtualization: &["-cpu", "EPYC,svm=off"],
    },
    scenario_in_image: true,
    boot_lines: &[
        "Entering VM run loop...",
        "arch = x86_64",
        "platform = x86-pc",
        "smp = 1",
        "CPUID: hypervisor bit set, vendor \"GuestAspace \", SVM not offered",
        "Reading PFlash at physical address 0xFFC00000...",
        "Try to access pflash dev region [0xFFFF8000FFC00000], got 0x646C6670",
        "Got pflash magic: pfld",
        "Guest timer interrupt arrived after ",
        "Shutdown vm normally!",
        "VM exits: ",
        "Guest memory mapped: ",
        "Hypervisor ok!",
    ],
    wild_gpa: "0xfed00000",
    crash_text: "the guest asked to power off because it failed",
    no_virtualization_text: "the CPU has no AMD SVM",
    console_device: Some("uart16550"),
    bad_console_reply: "Console write from 0x30000000 answered -9",
    icount_exits: &[
        ("nested page fault", 86),
        ("hypercall", 1),
        ("timer", 1),
        ("mmio", 0),
        ("host tick", 0),
        ("kick", 0),
        ("wfi", 0),
        ("sysreg", 44),
        ("pio", 1888),
        ("reflected", 0),
        ("unexpected", 0),
    ],
};

fn qemu_args(files: &VmFiles) -> Vec<OsString> {
    let mut args = qemu_words(&[
        "-machine",
        "q35",
        "-cpu",
        "EPYC",
        "-m",
        HOST_RAM,
        "-nographic",
        "-no-reboot",
        "-kernel",
    ]);
    args.push(files.kernel.into());
    args.extend(virtio_disk_args(files.disk));
    // Writing v to port 0xf4 ends QEMU with status (v << 1) | 1.
    args.extend(qemu_words(&[
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
    ]));
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_boots_the_elf_on_an_svm_cpu_with_the_exit_device() {
        let line = crate::arch::test_command_line(qemu_args);
        assert!(line.starts_with(
            "-machine q35 -cpu EPYC -m 512M -nographic -no-reboot -kernel /t/kernel "
        ));
        assert!(line.contains("-device virtio-blk-pci,drive=disk0"));
        assert!(line.ends_with("-device isa-debug-exit,iobase=0xf4,iosize=0x04"));
        assert!(
            !line.contains("pflash"),
            "x86's pflash is emulated by the hypervisor"
        );
    }

    #[test]
    fn the_guest_is_linked_below_the_higher_half() {
        let entry = SPEC.layout().entry.as_u64();
        assert!(SPEC.physical(entry) == entry);
        assert_eq!(SPEC.physical(0xffff_8000_0020_0000), 0x20_0000);
    }
}
