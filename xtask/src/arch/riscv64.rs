//! riscv64 on QEMU `virt`: the hypervisor runs in HS-mode behind OpenSBI,
//! the disk is a virtio-blk PCI device and the guest's pflash is pflash1.

use super::{
    App, Arch, ArchSpec, HOST_RAM, KernelImage, QEMU_MIN_VERSION, QemuSpec, VmFiles,
    hypervisor_app, pflash1_args, qemu_words, virtio_disk_args,
};
use guestaspace_core::machine::RISCV64_VIRT;
use std::ffi::OsString;

pub const SPEC: ArchSpec = ArchSpec {
    arch: Arch::Riscv64,
    triple: "riscv64gc-unknown-none-elf",
    guest: App {
        package: "gkernel",
        binary: "gkernel",
        config: Some("riscv64-guest.toml"),
    },
    hypervisor: hypervisor_app("riscv64-hypervisor.toml"),
    board: &RISCV64_VIRT,
    kernel: KernelImage::Flat {
        load_addr: 0x8020_0000,
    },
    pflash_size: 32 << 20,
    phys_virt_offset: 0xffff_ffc0_0000_0000,
    qemu: QemuSpec {
        binary: "qemu-system-riscv64",
        debian_package: "qemu-system-misc",
        min_version: QEMU_MIN_VERSION,
        args: qemu_args,
        without_virtualization: &["-cpu", "rv64,h=false"],
    },
    scenario_in_image: false,
    boot_lines: &[
        "Entering VM run loop...",
        "arch = riscv64",
        "platform = riscv64-qemu-virt",
        "smp = 1",
        "Reading PFlash at physical address 0x22000000...",
        "Try to access pflash dev region [0xFFFFFFC022000000], got 0x646C6670",
        "Got pflash magic: pfld",
        "Guest timer interrupt arrived after ",
        "Shutdown vm normally!",
        "VM exits: ",
        "Guest memory mapped: ",
        "Hypervisor ok!",
    ],
    wild_gpa: "0x30000000",
    crash_text: "the guest asked to power off because it failed",
    no_virtualization_text: "the CPU has no H extension",
    console_device: Some("uart16550"),
    bad_console_reply: "Console write from 0x30000000 answered error -5, value 0",
    icount_exits: &[
        ("nested page fault", 86),
        ("hypercall", 3),
        ("timer", 1),
        ("mmio", 1729),
        ("host tick", 0),
        ("kick", 0),
        ("wfi", 0),
        ("sysreg", 0),
        ("pio", 0),
        ("reflected", 0),
        ("unexpected", 0),
    ],
};

fn qemu_args(files: &VmFiles) -> Vec<OsString> {
    let mut args = qemu_words(&[
        "-machine",
        "virt",
        "-m",
        HOST_RAM,
        "-bios",
        "default",
        "-nographic",
        "-no-reboot",
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
    fn the_offset_is_the_one_both_arceos_configurations_use() {
        let repo = crate::paths::repo_root();
        for app in [&SPEC.guest, &SPEC.hypervisor] {
            let file = app.config.unwrap();
            let config = std::fs::read_to_string(repo.join("configs").join(file)).unwrap();
            let line = config
                .lines()
                .find(|l| l.starts_with("phys-virt-offset"))
                .unwrap();
            let value = line.split('"').nth(1).unwrap().replace('_', "");
            let value = u64::from_str_radix(value.trim_start_matches("0x"), 16).unwrap();
            assert_eq!(value, SPEC.phys_virt_offset, "{file}");
        }
    }

    #[test]
    fn command_line_boots_the_flat_hypervisor_with_disk_and_pflash1() {
        let line = crate::arch::test_command_line(qemu_args);
        assert!(line.starts_with(
            "-machine virt -m 512M -bios default -nographic -no-reboot -kernel /t/kernel "
        ));
        assert!(line.contains(
            "-drive if=none,file=/t/disk.img,format=raw,id=disk0 -device virtio-blk-pci,drive=disk0"
        ));
        assert!(
            line.ends_with("-drive if=pflash,unit=1,format=raw,readonly=on,file=/t/pflash.img")
        );
    }
}
