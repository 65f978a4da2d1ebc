//! Links the hypervisor with the linker script that `axhal`'s build script
//! writes for the configured platform (`<target-dir>/<triple>/<profile>/`).
fn main() {
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
}
