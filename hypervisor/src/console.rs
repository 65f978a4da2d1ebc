//! The guest's console (SBI console calls, the emulated UART) is the host
//! console: output goes to it, and what the user types there is read for
//! the guest.

use guestaspace_core::vm::Console;

pub struct HostConsole;

impl Console for HostConsole {
    fn write(&mut self, bytes: &[u8]) {
        axhal::console::write_bytes(bytes);
    }

    fn read(&mut self, buf: &mut [u8]) -> usize {
        axhal::console::read_bytes(buf)
    }
}
