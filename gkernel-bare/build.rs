//! Links gkernel-bare at the address the hypervisor loads it
//! (`linker-<arch>.ld`); xtask checks the ELF's load address against the
//! guest layout before flattening it.
fn main() {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap();
    if !std::env::var("TARGET").unwrap().contains("-none") {
        return;
    }
    let script = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .join(format!("linker-{arch}.ld"));
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rustc-link-arg=-T{}", script.display());
    println!("cargo:rustc-link-arg=-no-pie");
}
