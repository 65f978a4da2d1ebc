//! `cargo xtask`: builds arceos-guestaspace and its guest, makes the disk
//! and pflash images, boots them in QEMU and runs the end-to-end tests.
//!
//! Every failure ends here: it is printed once as `error: ...` and the
//! process exits with status 1.

mod arch;
mod bench;
mod build;
mod cli;
mod cpio;
mod disk;
mod e2e;
mod flatten;
mod fsio;
mod guest_image;
mod guests;
mod lint;
mod paths;
mod pflash;
mod prepare;
mod progress;
mod qemu;
mod readme_transcript;
mod run;
mod setup;
mod vm;
mod vm_file;
mod vm_report;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
