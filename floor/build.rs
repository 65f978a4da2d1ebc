//! Link settings of the floor kernel (see build-support/arceos_link.rs);
//! it powers off the platform's own way, so no wrap.
include!("../build-support/arceos_link.rs");

fn main() {
    link_arceos_app(false);
}
