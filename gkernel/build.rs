//! Link settings of the guest kernel (see build-support/arceos_link.rs).
include!("../build-support/arceos_link.rs");

fn main() {
    link_arceos_app(true);
}
