//! `cargo xtask`: builds arceos-guestaspace and its guest, makes the disk
//! and pflash images, boots them in QEMU and runs the end-to-end tests.

#![allow(dead_code)] // the commands that use the image builders come next

mod disk;
mod flatten;
mod fsio;
mod pflash;

fn main() {}
