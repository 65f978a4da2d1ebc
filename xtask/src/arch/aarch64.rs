//! aarch64 on QEMU `virt` with `virtualization=on` and `-cpu max`: the
//! hypervisor runs at EL2 (VHE) on this repository's platform crate, the
//! disk is a virtio-blk PCI device, the guest's pflash is pflash1, and Arm
//! semihosting (`-semihosting`) lets the hypervisor end QEMU with a failure
//! status. The guest is gkernel, an ArceOS kernel on the stock
//! `axplat-aarch64-qemu-virt` at EL1, whose scenario comes from pflash.

use super::{
    App, Arch, ArchSpec, HOST_RAM, KernelImage, QEMU_MIN_VERSION, QemuSpec, VmFiles,
    hypervisor_app, pflash1_args, qemu_words, virtio_disk_args,
};
use guestaspace_core::machine::AARCH64_VIRT;
use std::ffi::OsString;

pub const SPEC: ArchSpec = ArchSpec {
    arch: Arch::Aarch64,
    triple: "aarch64-unknown-none-softfloat",
    guest: App {
        package: "gkernel",
        binary: "gkernel",
        config: Some("aarch64-guest.toml"),
    },
    hypervisor: hypervisor_app("aarch64-hypervisor.toml"),
    board: &AARCH64_VIRT,
    kernel: KernelImage::Flat {
        load_addr: 0x4020_0000,
    },
    pflash_size: 64 << 20,
    phys_virt_offset: 0xffff_0000_0000_0000,
    qemu: QemuSpec {
        binary: "qemu-system-aarch64",
        debian_package: "qemu-system-arm",
        min_version: QEMU_MIN_VERSION,
        args: qemu_args,
        without_virtualization: &["-machine", "virtualization=off"],
    },
    scenario_in_image: false,
    boot_lines: &[
        "CurrentEL = 2",
        "Entering VM run loop...",
        "arch = aarch64",
        "platform = aarch64-qemu-virt",
        "smp = 1",
        "pflash line cleaned and invalidated with DC CIVAC",
        "Reading PFlash at physical address 0x4000000...",
        "Try to access pflash dev region [0xFFFF000004000000], got 0x646C6670",
        "Got pflash magic: pfld",
        "Guest timer interrupt arrived after ",
        "Shutdown vm normally!",
        "VM exits: ",
        "Guest memory mapped: ",
        "Hypervisor ok!",
    ],
    wild_gpa: "0xa000000",
    crash_text: "the guest asked to power off because it failed",
    no_virtualization_text: "the hypervisor is not running at EL2",
    console_device: Some("pl011"),
    bad_console_reply: "Console write from 0x30000000 answered -9",
    icount_exits: &[
        ("nested page fault", 88),
        ("hypercall", 1),
        ("timer", 3),
        ("mmio", 1928),
        ("host tick", 0),
        ("kick", 0),
        ("wfi", 1),
        ("sysreg", 5),
        ("pio", 0),
        ("reflected", 0),
        ("unexpected", 0),
    ],
};

fn qemu_args(files: &VmFiles) -> Vec<OsString> {
    let mut args = qemu_words(&[
        "-machine",
        "virt,virtualization=on",
        "-cpu",
        "max",
        "-m",
        HOST_RAM,
        "-nographic",
        "-no-reboot",
        "-semihosting",
        "-kernel",
    ]);
    args.push(files.kernel.into());
    args.extend(virtio_disk_args(files.disk));
    args.extend(pflash1_args(files.pflash));
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_keeps_el2_and_attaches_semihosting_disk_and_pflash1() {
        let line = crate::arch::test_command_line(qemu_args);
        assert!(line.starts_with("-machine virt,virtualization=on -cpu max -m 512M"));
        assert!(line.contains("-semihosting -kernel /t/kernel"));
        assert!(
            line.ends_with("-drive if=pflash,unit=1,format=raw,readonly=on,file=/t/pflash.img")
        );
    }
}
