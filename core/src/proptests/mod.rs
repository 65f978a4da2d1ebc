//! Property tests: no guest input panics the hypervisor.
//!
//! Every decoder a guest can feed (trap registers, instruction words and
//! bytes, hypercall registers, its own page tables) and every device model
//! it can reach gets arbitrary input here, and the tests check that nothing
//! panics and that what comes out stays within what the input can name:
//! register numbers within the architecture's register file, widths and
//! lengths the instruction can have, read values within their width.
//!
//! One file per job; the case counts are set so the whole host suite stays
//! fast on a small machine ([`cases`]). A failing case prints its input;
//! each bug found this way also has a plain unit test next to the code it
//! fixed, named for what it checks.

mod aarch64;
mod devices;
mod paging;
mod riscv64;
mod vmconfig;
mod x86_64;

use proptest::prelude::*;

use crate::devices::Width;

/// The configuration of a property with `n` cases and no persisted
/// failures (the crate has no `proptest-regressions` directories: a found
/// bug becomes a named unit test instead).
pub(crate) fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any access width.
pub(crate) fn width() -> impl Strategy<Value = Width> {
    prop_oneof![
        Just(Width::Byte),
        Just(Width::Half),
        Just(Width::Word),
        Just(Width::Double),
    ]
}
