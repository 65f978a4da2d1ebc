//! The guest's console output (SBI console calls and the like) goes to the
//! host console.

use guestaspace_core::runloop::Console;

pub struct HostConsole;

impl Console for HostConsole {
    fn write(&mut self, bytes: &[u8]) {
        axhal::console::write_bytes(bytes);
    }
}
