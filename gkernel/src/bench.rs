//! The bench scenario: time `hypercalls` null hypercalls, as many reads of
//! the emulated UART's line status register (each an MMIO exit), and the
//! first touch of `pages` fresh guest pages (each a nested page fault),
//! with the guest's own counter, and print the figures for `cargo xtask
//! bench`.

use crate::arch;
use axhal::time::{current_ticks, ticks_to_nanos};

pub fn run(hypercalls: u32, pages: u32) {
    let start = current_ticks();
    for _ in 0..hypercalls {
        arch::null_hypercall();
    }
    let call_ticks = current_ticks() - start;

    let start = current_ticks();
    for _ in 0..hypercalls {
        core::hint::black_box(crate::arch::uart::line_status());
    }
    let mmio_ticks = current_ticks() - start;

    // Pages straight from the page allocator have not been touched by this
    // kernel, so they are not mapped in stage-2 yet.
    let region = axalloc::global_allocator()
        .alloc_pages(pages as usize, 4096, axalloc::UsageKind::Global)
        .expect("bench: not enough guest RAM for the fresh pages");
    let start = current_ticks();
    for i in 0..pages as usize {
        // SAFETY: the region was just allocated for us and spans `pages` pages.
        unsafe { ((region + i * 4096) as *mut u8).write_volatile(1) };
    }
    let page_ticks = current_ticks() - start;
    axalloc::global_allocator().dealloc_pages(region, pages as usize, axalloc::UsageKind::Global);

    // The counter's frequency, from the platform's tick conversion.
    let hz = 1_000_000_000u128 * 1_000_000 / ticks_to_nanos(1_000_000).max(1) as u128;
    println!("bench-mmio: {hypercalls} device reads in {mmio_ticks} ticks");
    println!(
        "bench: {hypercalls} hypercalls in {call_ticks} ticks; {pages} fresh pages in {page_ticks} ticks; counter {hz} Hz"
    );
}
