//! Link settings of the hypervisor (see build-support/arceos_link.rs).
include!("../build-support/arceos_link.rs");

fn main() {
    link_arceos_app(true);
}
