//! The platform constants come from the ArceOS configuration file that
//! `AX_CONFIG_PATH` names (read by `axconfig_macros` at compile time);
//! cargo must rebuild this crate when that file, or the variable, changes.

fn main() {
    println!("cargo:rerun-if-env-changed=AX_CONFIG_PATH");
    if let Some(path) = std::env::var_os("AX_CONFIG_PATH") {
        println!("cargo:rerun-if-changed={}", path.to_string_lossy());
    }
}
