//! Guests that xtask builds or fetches from outside this workspace.

pub mod tutorial;
