// Link settings shared by the two ArceOS applications (hypervisor and
// gkernel), `include!`d by their build scripts:
// - the linker script `axhal`'s build script writes for the configured
//   platform into `<target-dir>/<triple>/<profile>/`;
// - with `wrap_power_off`, `--wrap=__PowerIf_system_off`: ArceOS powers off
//   by itself only when it panics, so the hypervisor and gkernel replace
//   that entry point with one that reports failure (see their
//   `__wrap___PowerIf_system_off`).

fn link_arceos_app(wrap_power_off: bool) {
    let target = std::env::var("TARGET").unwrap();
    if !target.contains("-none") {
        return;
    }
    let platform = match std::env::var("CARGO_CFG_TARGET_ARCH").unwrap().as_str() {
        "riscv64" => "riscv64-qemu-virt",
        "aarch64" => "aarch64-qemu-virt",
        "x86_64" => "x86-pc",
        other => panic!("unsupported architecture {other}"),
    };
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let profile_dir = out.ancestors().nth(3).unwrap();
    println!("cargo:rustc-link-arg=-T{}", profile_dir.join(format!("linker_{platform}.lds")).display());
    println!("cargo:rustc-link-arg=-no-pie");
    println!("cargo:rustc-link-arg=-znostart-stop-gc");
    if wrap_power_off {
        println!("cargo:rustc-link-arg=--wrap=__PowerIf_system_off");
    }
}
