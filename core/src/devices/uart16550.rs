//! An NS16550A UART as QEMU's `virt` machines and the PC's COM1 expose it:
//! eight byte-wide registers, register shift 0.
//!
//! Register behaviour follows the TI/National PC16550D datasheet; where the
//! datasheet leaves room (or describes timing this model does not have),
//! QEMU's `hw/char/serial.c` is the reference, so that a guest behaves the
//! same as on bare QEMU. The choices:
//!
//! - Accesses must be 1 byte wide: the registers are 8-bit and Linux, U-Boot
//!   and ArceOS all use byte accesses with `reg-shift = 0`. Anything wider
//!   is refused with [`DeviceError::BadWidth`] rather than guessed at.
//!   Offsets 8 and up are refused with [`DeviceError::BadOffset`].
//! - Transmission is instantaneous: a THR write hands the byte to the host
//!   (or, in loopback, to the receiver) at once, so LSR always reports
//!   THRE and TEMT, and the TX FIFO is never occupied.
//! - There is no modem. Outside loopback the modem inputs read as CTS, DSR
//!   and DCD asserted, RI not (QEMU's reset value of MSR, 0xB0), and they
//!   never change. In loopback they follow MCR: RTS -> CTS, DTR -> DSR,
//!   OUT1 -> RI, OUT2 -> DCD, and changes set the MSR delta bits.
//! - There are no line errors besides overrun: PE, FE, BI and LSR bit 7
//!   read 0. Host input never overruns (`push_input` refuses when the
//!   receiver is full, like QEMU's `can_receive`); only loopback can.
//! - Writes to LSR and MSR are ignored (the datasheet reserves them for
//!   factory testing; QEMU ignores them too).

extern crate alloc;

use alloc::vec::Vec;

use super::ring::Ring;
use super::{Device, DeviceError, Width};

/// Size of the register block (8 registers, one byte apart).
pub const UART16550_SIZE: u64 = 8;

/// Register offsets (datasheet table II).
pub mod reg {
    /// Receiver buffer (read) / transmitter holding (write); DLL when DLAB.
    pub const RBR_THR: u64 = 0;
    /// Interrupt enable; DLM when DLAB.
    pub const IER: u64 = 1;
    /// Interrupt identification (read) / FIFO control (write).
    pub const IIR_FCR: u64 = 2;
    /// Line control.
    pub const LCR: u64 = 3;
    /// Modem control.
    pub const MCR: u64 = 4;
    /// Line status.
    pub const LSR: u64 = 5;
    /// Modem status.
    pub const MSR: u64 = 6;
    /// Scratch.
    pub const SCR: u64 = 7;
}

/// IER bits.
pub mod ier {
    /// ERBFI: received data available (and character timeout).
    pub const RX_DATA: u8 = 1 << 0;
    /// ETBEI: transmitter holding register empty.
    pub const THR_EMPTY: u8 = 1 << 1;
    /// ELSI: receiver line status.
    pub const LINE_STATUS: u8 = 1 << 2;
    /// EDSSI: modem status.
    pub const MODEM_STATUS: u8 = 1 << 3;
}

/// IIR values (bits 3:0) and bits.
pub mod iir {
    /// No interrupt pending (bit 0 set).
    pub const NONE: u8 = 0x01;
    /// Receiver line status: highest priority.
    pub const LINE_STATUS: u8 = 0x06;
    /// Received data available (trigger level reached).
    pub const RX_DATA: u8 = 0x04;
    /// Character timeout: data below the trigger level (FIFO mode only).
    pub const RX_TIMEOUT: u8 = 0x0C;
    /// Transmitter holding register empty.
    pub const THR_EMPTY: u8 = 0x02;
    /// Modem status: lowest priority.
    pub const MODEM_STATUS: u8 = 0x00;
    /// Bits 7:6, both set while the FIFOs are enabled.
    pub const FIFOS_ENABLED: u8 = 0xC0;
}

/// FCR bits.
pub mod fcr {
    /// Enable both FIFOs; other bits only take effect with it set.
    pub const ENABLE: u8 = 1 << 0;
    /// Clear the receive FIFO (self-clearing).
    pub const RX_RESET: u8 = 1 << 1;
    /// Clear the transmit FIFO (self-clearing).
    pub const TX_RESET: u8 = 1 << 2;
    /// DMA mode select (stored, no effect).
    pub const DMA_MODE: u8 = 1 << 3;
    /// Receiver trigger level field (bits 7:6: 1, 4, 8, 14 bytes).
    pub const TRIGGER: u8 = 0xC0;
}

/// LCR bits.
pub mod lcr {
    /// Divisor latch access: offsets 0 and 1 become DLL and DLM.
    pub const DLAB: u8 = 1 << 7;
}

/// MCR bits.
pub mod mcr {
    /// Data terminal ready.
    pub const DTR: u8 = 1 << 0;
    /// Request to send.
    pub const RTS: u8 = 1 << 1;
    /// User output 1.
    pub const OUT1: u8 = 1 << 2;
    /// User output 2 (gates the IRQ on a PC; see [`super::Uart16550`]).
    pub const OUT2: u8 = 1 << 3;
    /// Local loopback.
    pub const LOOP: u8 = 1 << 4;
}

/// LSR bits.
pub mod lsr {
    /// Data ready: the receiver holds at least one byte.
    pub const DR: u8 = 1 << 0;
    /// Overrun error: a byte was lost (cleared by reading LSR).
    pub const OE: u8 = 1 << 1;
    /// Transmitter holding register (or TX FIFO) empty.
    pub const THRE: u8 = 1 << 5;
    /// Transmitter empty: THR and shift register both empty.
    pub const TEMT: u8 = 1 << 6;
}

/// MSR bits.
pub mod msr {
    /// Delta CTS.
    pub const DCTS: u8 = 1 << 0;
    /// Delta DSR.
    pub const DDSR: u8 = 1 << 1;
    /// Trailing edge of RI (it went from 1 to 0).
    pub const TERI: u8 = 1 << 2;
    /// Delta DCD.
    pub const DDCD: u8 = 1 << 3;
    /// Clear to send.
    pub const CTS: u8 = 1 << 4;
    /// Data set ready.
    pub const DSR: u8 = 1 << 5;
    /// Ring indicator.
    pub const RI: u8 = 1 << 6;
    /// Data carrier detect.
    pub const DCD: u8 = 1 << 7;
}

/// Depth of the receive FIFO.
pub const FIFO_DEPTH: usize = 16;

/// The receiver: a 16-byte ring, used with capacity 1 (the plain holding
/// register) while the FIFOs are disabled.
type RxFifo = Ring<u8, FIFO_DEPTH>;

/// The NS16550A model.
///
/// Its interrupt line ([`Device::irq_level`]) is asserted whenever an
/// enabled interrupt is pending (IIR bit 0 clear). MCR.OUT2 does not gate
/// it: on a PC, OUT2 drives a buffer between the UART and the 8259, but
/// QEMU's serial model raises its IRQ regardless of OUT2 on every machine,
/// and the guests we run are tested against QEMU. Linux sets OUT2 anyway on
/// x86; ArceOS and U-Boot poll and leave IER at 0, so the line stays low.
#[derive(Clone, Debug)]
pub struct Uart16550 {
    rx: RxFifo,
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    dll: u8,
    dlm: u8,
    /// The FCR bits that stick: ENABLE, DMA_MODE, TRIGGER.
    fcr: u8,
    overrun: bool,
    /// The THRE interrupt condition, cleared by reading it from IIR.
    thr_pending: bool,
    /// MSR bits 3:0.
    msr_delta: u8,
    tx: Vec<u8>,
}

impl Default for Uart16550 {
    fn default() -> Self {
        Self::new()
    }
}

impl Uart16550 {
    /// A UART in its reset state: FIFOs off, every interrupt disabled, 8N1
    /// bits cleared (LCR 0), divisor 0 (the datasheet leaves the latch
    /// undefined at reset; QEMU clears it).
    pub const fn new() -> Self {
        Self {
            rx: RxFifo::new(0),
            ier: 0,
            lcr: 0,
            mcr: 0,
            scr: 0,
            dll: 0,
            dlm: 0,
            fcr: 0,
            overrun: false,
            thr_pending: false,
            msr_delta: 0,
            tx: Vec::new(),
        }
    }

    /// The divisor latch (DLM:DLL).
    pub const fn divisor(&self) -> u16 {
        u16::from_le_bytes([self.dll, self.dlm])
    }

    fn dlab(&self) -> bool {
        self.lcr & lcr::DLAB != 0
    }

    fn loopback(&self) -> bool {
        self.mcr & mcr::LOOP != 0
    }

    fn fifo_enabled(&self) -> bool {
        self.fcr & fcr::ENABLE != 0
    }

    fn rx_capacity(&self) -> usize {
        if self.fifo_enabled() { FIFO_DEPTH } else { 1 }
    }

    fn rx_trigger(&self) -> usize {
        match self.fcr & fcr::TRIGGER {
            0x00 => 1,
            0x40 => 4,
            0x80 => 8,
            _ => 14,
        }
    }

    /// The line status register; only DR, OE, THRE and TEMT can be set.
    fn lsr(&self) -> u8 {
        let mut v = lsr::THRE | lsr::TEMT;
        if !self.rx.is_empty() {
            v |= lsr::DR;
        }
        if self.overrun {
            v |= lsr::OE;
        }
        v
    }

    /// MSR bits 7:4: the modem inputs.
    fn modem_inputs(&self) -> u8 {
        if !self.loopback() {
            return msr::CTS | msr::DSR | msr::DCD;
        }
        let m = self.mcr;
        let mut v = 0;
        for (out, input) in [
            (mcr::RTS, msr::CTS),
            (mcr::DTR, msr::DSR),
            (mcr::OUT1, msr::RI),
            (mcr::OUT2, msr::DCD),
        ] {
            if m & out != 0 {
                v |= input;
            }
        }
        v
    }

    /// The interrupt identification (IIR bits 3:0), by datasheet priority:
    /// line status > received data / character timeout > THR empty > modem
    /// status.
    fn interrupt_id(&self) -> u8 {
        if self.ier & ier::LINE_STATUS != 0 && self.overrun {
            iir::LINE_STATUS
        } else if self.ier & ier::RX_DATA != 0 && !self.rx.is_empty() {
            // Below the trigger level real hardware raises a character
            // timeout after four character times without FIFO activity.
            // This model has no clock, so that time has always passed:
            // data below the trigger level reports the timeout at once.
            if self.fifo_enabled() && self.rx.len() < self.rx_trigger() {
                iir::RX_TIMEOUT
            } else {
                iir::RX_DATA
            }
        } else if self.ier & ier::THR_EMPTY != 0 && self.thr_pending {
            iir::THR_EMPTY
        } else if self.ier & ier::MODEM_STATUS != 0 && self.msr_delta != 0 {
            iir::MODEM_STATUS
        } else {
            iir::NONE
        }
    }

    fn iir(&self) -> u8 {
        let fifo = if self.fifo_enabled() {
            iir::FIFOS_ENABLED
        } else {
            0
        };
        fifo | self.interrupt_id()
    }

    /// A byte arriving at the receiver (from the host, or looped back).
    /// When the receiver is full the byte is an overrun: in FIFO mode it is
    /// lost and the FIFO kept; without FIFOs it replaces the unread byte
    /// (datasheet: "thereby destroying the previous character").
    fn receive(&mut self, byte: u8) {
        if self.rx.len() < self.rx_capacity() {
            self.rx.push(byte);
            return;
        }
        self.overrun = true;
        if !self.fifo_enabled() {
            self.rx.clear();
            self.rx.push(byte);
        }
    }

    fn transmit(&mut self, byte: u8) {
        if self.loopback() {
            self.receive(byte);
        } else {
            self.tx.push(byte);
        }
        // The byte left the THR at once; "THRE interrupt is cleared by
        // writing THR" and set again as soon as the THR empties, which is
        // now (QEMU: thr_ipending = 0 on the write, 1 after serial_xmit).
        self.thr_pending = true;
    }

    fn write_ier(&mut self, value: u8) {
        let old = self.ier;
        self.ier = value & 0x0f;
        // Enabling ETBEI with the THR empty makes the THRE interrupt
        // pending, even if an IIR read had cleared it before (QEMU does
        // this on the rising edge of ETBEI, as Windows and Linux expect);
        // disabling it drops the condition.
        if (old ^ self.ier) & ier::THR_EMPTY != 0 {
            self.thr_pending = self.ier & ier::THR_EMPTY != 0;
        }
    }

    fn write_fcr(&mut self, value: u8) {
        let enable = value & fcr::ENABLE != 0;
        if enable != self.fifo_enabled() {
            // Switching the FIFOs on or off clears them.
            self.rx.clear();
        }
        if !enable {
            // "FCR0 must be a 1 when other FCR bits are written to or they
            // will not be programmed."
            self.fcr = 0;
            return;
        }
        if value & fcr::RX_RESET != 0 {
            self.rx.clear();
        }
        if value & fcr::TX_RESET != 0 {
            // The (always empty) transmitter is reset: THR empty again.
            self.thr_pending = true;
        }
        self.fcr = value & (fcr::ENABLE | fcr::DMA_MODE | fcr::TRIGGER);
    }

    fn write_mcr(&mut self, value: u8) {
        let before = self.modem_inputs();
        self.mcr = value & 0x1f;
        let after = self.modem_inputs();
        let changed = before ^ after;
        for (input, delta) in [
            (msr::CTS, msr::DCTS),
            (msr::DSR, msr::DDSR),
            (msr::DCD, msr::DDCD),
        ] {
            if changed & input != 0 {
                self.msr_delta |= delta;
            }
        }
        if before & msr::RI != 0 && after & msr::RI == 0 {
            self.msr_delta |= msr::TERI;
        }
    }
}

impl Device for Uart16550 {
    fn name(&self) -> &'static str {
        "uart16550"
    }

    fn read(&mut self, offset: u64, width: Width) -> Result<u64, DeviceError> {
        if offset >= UART16550_SIZE {
            return Err(DeviceError::BadOffset { offset });
        }
        if width != Width::Byte {
            return Err(DeviceError::BadWidth { offset, width });
        }
        let v = match offset {
            reg::RBR_THR if self.dlab() => self.dll,
            // Reading an empty receiver returns 0 (QEMU) and leaves LSR alone.
            reg::RBR_THR => self.rx.pop().unwrap_or(0),
            reg::IER if self.dlab() => self.dlm,
            reg::IER => self.ier,
            reg::IIR_FCR => {
                let v = self.iir();
                // Reading IIR while it reports THRE clears that interrupt.
                if v & 0x0f == iir::THR_EMPTY {
                    self.thr_pending = false;
                }
                v
            }
            reg::LCR => self.lcr,
            reg::MCR => self.mcr,
            reg::LSR => {
                let v = self.lsr();
                self.overrun = false;
                v
            }
            reg::MSR => {
                let v = self.modem_inputs() | self.msr_delta;
                self.msr_delta = 0;
                v
            }
            _ => self.scr,
        };
        Ok(u64::from(v))
    }

    fn write(&mut self, offset: u64, width: Width, value: u64) -> Result<(), DeviceError> {
        if offset >= UART16550_SIZE {
            return Err(DeviceError::BadOffset { offset });
        }
        if width != Width::Byte {
            return Err(DeviceError::BadWidth { offset, width });
        }
        let v = value as u8;
        match offset {
            reg::RBR_THR if self.dlab() => self.dll = v,
            reg::RBR_THR => self.transmit(v),
            reg::IER if self.dlab() => self.dlm = v,
            reg::IER => self.write_ier(v),
            // FCR is not behind DLAB.
            reg::IIR_FCR => self.write_fcr(v),
            reg::LCR => self.lcr = v,
            reg::MCR => self.write_mcr(v),
            reg::LSR | reg::MSR => {}
            _ => self.scr = v,
        }
        Ok(())
    }

    fn irq_level(&self) -> bool {
        self.interrupt_id() != iir::NONE
    }

    /// Host input is refused while the receiver is full (the host keeps the
    /// byte) and in loopback, where the serial input is disconnected.
    fn push_input(&mut self, byte: u8) -> bool {
        if self.loopback() || self.rx.len() >= self.rx_capacity() {
            return false;
        }
        self.rx.push(byte);
        true
    }

    fn take_output(&mut self, out: &mut dyn FnMut(&[u8])) {
        if !self.tx.is_empty() {
            out(&self.tx);
            self.tx.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::boxed::Box;

    use super::*;
    use crate::addr::GuestPhysAddr;
    use crate::devices::{Bus, BusError, DeviceId, MmioAccess};

    const BASE: u64 = 0x1000_0000;

    struct Rig {
        bus: Bus,
        id: DeviceId,
    }

    impl Rig {
        fn new() -> Self {
            let mut bus = Bus::new();
            let id = bus
                .add(
                    GuestPhysAddr::new(BASE),
                    0x100,
                    Box::new(Uart16550::new()),
                    None,
                )
                .unwrap();
            Rig { bus, id }
        }
        fn r(&mut self, off: u64) -> u8 {
            self.bus
                .access(&MmioAccess::read(
                    GuestPhysAddr::new(BASE + off),
                    Width::Byte,
                ))
                .unwrap() as u8
        }
        fn w(&mut self, off: u64, v: u8) {
            self.bus
                .access(&MmioAccess::write(
                    GuestPhysAddr::new(BASE + off),
                    Width::Byte,
                    u64::from(v),
                ))
                .unwrap();
        }
        fn output(&mut self) -> Vec<u8> {
            let mut v = Vec::new();
            self.bus.drain_console_output(|b| v.extend_from_slice(b));
            v
        }
        fn irq(&self) -> bool {
            self.bus.device(self.id).unwrap().irq_level()
        }
    }

    #[test]
    fn reset_state() {
        let mut u = Rig::new();
        assert_eq!(u.r(reg::IER), 0);
        assert_eq!(u.r(reg::IIR_FCR), iir::NONE);
        assert_eq!(u.r(reg::LCR), 0);
        assert_eq!(u.r(reg::MCR), 0);
        assert_eq!(u.r(reg::LSR), lsr::THRE | lsr::TEMT);
        assert_eq!(u.r(reg::MSR), 0xB0);
        assert!(!u.irq());
    }

    #[test]
    fn dlab_switches_to_the_divisor_latch() {
        let mut u = Rig::new();
        u.w(reg::IER, 0x05);
        u.w(reg::LCR, lcr::DLAB | 0x03);
        assert_eq!(u.r(reg::LCR), 0x83);
        u.w(0, 0x01);
        u.w(1, 0x02);
        assert_eq!(u.r(0), 0x01);
        assert_eq!(u.r(1), 0x02);
        // Divisor writes went nowhere else: no output, IER untouched.
        u.w(reg::LCR, 0x03);
        assert!(u.output().is_empty());
        assert_eq!(u.r(reg::IER), 0x05);
        u.w(reg::LCR, lcr::DLAB);
        assert_eq!(u.r(0), 0x01);
        assert_eq!(u.r(1), 0x02);
        let mut uart = Uart16550::new();
        uart.write(reg::LCR, Width::Byte, 0x80).unwrap();
        uart.write(0, Width::Byte, 0x0c).unwrap();
        assert_eq!(uart.divisor(), 12);
    }

    #[test]
    fn scratch_lcr_and_ier_read_back() {
        let mut u = Rig::new();
        u.w(reg::SCR, 0x5a);
        assert_eq!(u.r(reg::SCR), 0x5a);
        u.w(reg::LCR, 0x1b);
        assert_eq!(u.r(reg::LCR), 0x1b);
        // IER has four bits (Linux's autoconfig checks this).
        u.w(reg::IER, 0xff);
        assert_eq!(u.r(reg::IER), 0x0f);
        u.w(reg::MCR, 0xff);
        assert_eq!(u.r(reg::MCR), 0x1f);
        // LSR and MSR writes are ignored.
        u.w(reg::LSR, 0);
        u.w(reg::MCR, 0);
        assert_eq!(u.r(reg::LSR), 0x60);
    }

    #[test]
    fn transmitted_bytes_are_collected() {
        let mut u = Rig::new();
        for &b in b"ok\n" {
            assert_ne!(u.r(reg::LSR) & lsr::THRE, 0);
            u.w(reg::RBR_THR, b);
        }
        assert_eq!(u.output(), b"ok\n");
        assert!(u.output().is_empty());
        // Nothing was received.
        assert_eq!(u.r(reg::LSR) & lsr::DR, 0);
    }

    #[test]
    fn loopback() {
        let mut u = Rig::new();
        u.w(reg::MCR, mcr::LOOP | mcr::OUT2 | mcr::RTS);
        // Linux's 8250 autoconfig loopback check: MSR & 0xf0 == 0x90.
        assert_eq!(u.r(reg::MSR) & 0xf0, msr::DCD | msr::CTS);
        u.w(reg::MCR, mcr::LOOP | mcr::DTR | mcr::OUT1);
        assert_eq!(u.r(reg::MSR) & 0xf0, msr::DSR | msr::RI);
        u.w(reg::RBR_THR, b'Z');
        assert!(u.output().is_empty());
        assert_eq!(u.r(reg::LSR) & lsr::DR, lsr::DR);
        assert_eq!(u.r(reg::RBR_THR), b'Z');
        assert_eq!(u.r(reg::LSR) & lsr::DR, 0);
        // Host input is disconnected in loopback.
        assert!(!u.bus.push_console_input(b'h'));
        u.w(reg::MCR, 0);
        assert!(u.bus.push_console_input(b'h'));
        assert_eq!(u.r(reg::RBR_THR), b'h');
    }

    #[test]
    fn loopback_modem_deltas_and_interrupt() {
        let mut u = Rig::new();
        u.w(
            reg::MCR,
            mcr::LOOP | mcr::RTS | mcr::DTR | mcr::OUT1 | mcr::OUT2,
        );
        u.r(reg::MSR); // clear the deltas from entering loopback
        assert_eq!(u.r(reg::MSR), 0xf0);
        u.w(reg::IER, ier::MODEM_STATUS);
        assert!(!u.irq());
        // Drop RTS and OUT1: CTS changes, RI has a trailing edge.
        u.w(reg::MCR, mcr::LOOP | mcr::DTR | mcr::OUT2);
        assert!(u.irq());
        assert_eq!(u.r(reg::IIR_FCR), iir::MODEM_STATUS);
        assert_eq!(u.r(reg::MSR), msr::DSR | msr::DCD | msr::DCTS | msr::TERI);
        assert!(!u.irq());
        assert_eq!(u.r(reg::IIR_FCR), iir::NONE);
    }

    #[test]
    fn rx_fifo_and_data_ready() {
        let mut u = Rig::new();
        // Without FIFOs the receiver holds one byte.
        assert!(u.bus.push_console_input(b'a'));
        assert!(!u.bus.push_console_input(b'b'));
        assert_eq!(u.r(reg::LSR) & lsr::DR, lsr::DR);
        assert_eq!(u.r(reg::RBR_THR), b'a');
        assert_eq!(u.r(reg::LSR) & lsr::DR, 0);
        // An empty receiver reads 0.
        assert_eq!(u.r(reg::RBR_THR), 0);
        // With FIFOs: sixteen bytes, in order.
        u.w(reg::IIR_FCR, fcr::ENABLE);
        assert_eq!(u.r(reg::IIR_FCR), 0xC0 | iir::NONE);
        for i in 0..16u8 {
            assert!(u.bus.push_console_input(b'A' + i));
        }
        assert!(!u.bus.push_console_input(b'!'));
        for i in 0..16u8 {
            assert_eq!(u.r(reg::LSR) & (lsr::DR | lsr::OE), lsr::DR);
            assert_eq!(u.r(reg::RBR_THR), b'A' + i);
        }
        assert_eq!(u.r(reg::LSR), lsr::THRE | lsr::TEMT);
    }

    #[test]
    fn overrun() {
        let mut u = Rig::new();
        u.w(reg::MCR, mcr::LOOP);
        // Holding-register mode: the new byte replaces the unread one.
        u.w(reg::RBR_THR, b'1');
        u.w(reg::RBR_THR, b'2');
        assert_eq!(u.r(reg::LSR), lsr::DR | lsr::OE | lsr::THRE | lsr::TEMT);
        // Reading LSR cleared OE.
        assert_eq!(u.r(reg::LSR) & lsr::OE, 0);
        assert_eq!(u.r(reg::RBR_THR), b'2');
        // FIFO mode: the seventeenth byte is lost, the FIFO kept.
        u.w(reg::IIR_FCR, fcr::ENABLE);
        for i in 0..17u8 {
            u.w(reg::RBR_THR, i);
        }
        assert_eq!(u.r(reg::LSR) & lsr::OE, lsr::OE);
        for i in 0..16u8 {
            assert_eq!(u.r(reg::RBR_THR), i);
        }
        assert_eq!(u.r(reg::LSR) & (lsr::DR | lsr::OE), 0);
    }

    #[test]
    fn interrupt_priorities() {
        let mut u = Rig::new();
        u.w(reg::IER, 0x0f);
        // Enabling ETBEI with the THR empty raises THRE at once.
        assert_eq!(u.r(reg::IIR_FCR), iir::THR_EMPTY);
        // ...and reading IIR cleared it.
        assert_eq!(u.r(reg::IIR_FCR), iir::NONE);
        u.w(reg::MCR, mcr::LOOP); // modem inputs change: modem status
        assert_eq!(u.r(reg::IIR_FCR), iir::MODEM_STATUS);
        u.w(reg::RBR_THR, b'x'); // THRE again, and a byte received
        assert_eq!(u.r(reg::IIR_FCR), iir::RX_DATA);
        u.w(reg::RBR_THR, b'y'); // overrun
        assert_eq!(u.r(reg::IIR_FCR), iir::LINE_STATUS);
        // Reading LSR clears the line status interrupt; RX data is next.
        u.r(reg::LSR);
        assert_eq!(u.r(reg::IIR_FCR), iir::RX_DATA);
        u.r(reg::RBR_THR);
        // THRE still pending: reading RX data did not clear it.
        assert_eq!(u.r(reg::IIR_FCR), iir::THR_EMPTY);
        assert_eq!(u.r(reg::IIR_FCR), iir::MODEM_STATUS);
        u.r(reg::MSR);
        assert_eq!(u.r(reg::IIR_FCR), iir::NONE);
        assert!(!u.irq());
    }

    #[test]
    fn thre_clears_on_iir_read_and_rearms_on_thr_write() {
        let mut u = Rig::new();
        u.w(reg::IER, ier::THR_EMPTY);
        assert!(u.irq());
        assert_eq!(u.r(reg::IIR_FCR), iir::THR_EMPTY);
        assert!(!u.irq());
        u.w(reg::RBR_THR, b'.');
        assert!(u.irq());
        // Reading LSR does not clear it; IIR does.
        u.r(reg::LSR);
        assert!(u.irq());
        assert_eq!(u.r(reg::IIR_FCR), iir::THR_EMPTY);
        assert!(!u.irq());
        // Toggling ETBEI re-raises it (Linux's serial8250_start_tx does).
        u.w(reg::IER, 0);
        assert!(!u.irq());
        u.w(reg::IER, ier::THR_EMPTY);
        assert!(u.irq());
        // Rewriting IER with ETBEI unchanged does not.
        u.r(reg::IIR_FCR);
        u.w(reg::IER, ier::THR_EMPTY);
        assert!(!u.irq());
        assert_eq!(u.output(), b".");
    }

    #[test]
    fn ier_gates_the_line() {
        let mut u = Rig::new();
        assert!(u.bus.push_console_input(b'k'));
        assert!(!u.irq());
        assert_eq!(u.r(reg::IIR_FCR), iir::NONE);
        u.w(reg::IER, ier::RX_DATA);
        assert!(u.irq());
        assert_eq!(u.r(reg::IIR_FCR), iir::RX_DATA);
        u.w(reg::IER, 0);
        assert!(!u.irq());
        u.w(reg::IER, ier::RX_DATA);
        assert_eq!(u.r(reg::RBR_THR), b'k');
        assert!(!u.irq());
        // OUT2 does not gate the line (QEMU behaviour).
        u.w(reg::MCR, mcr::OUT2);
        assert!(u.bus.push_console_input(b'k'));
        assert!(u.irq());
        u.w(reg::MCR, 0);
        assert!(u.irq());
    }

    #[test]
    fn trigger_level_and_timeout() {
        let mut u = Rig::new();
        u.w(reg::IER, ier::RX_DATA);
        u.w(reg::IIR_FCR, fcr::ENABLE | 0x40); // trigger at 4 bytes
        u.bus.push_console_input(b'1');
        assert_eq!(u.r(reg::IIR_FCR), 0xC0 | iir::RX_TIMEOUT);
        for &b in b"234" {
            u.bus.push_console_input(b);
        }
        assert_eq!(u.r(reg::IIR_FCR), 0xC0 | iir::RX_DATA);
        u.r(reg::RBR_THR);
        assert_eq!(u.r(reg::IIR_FCR), 0xC0 | iir::RX_TIMEOUT);
        assert!(u.irq());
    }

    #[test]
    fn fcr_resets_and_enable() {
        let mut u = Rig::new();
        u.w(reg::IIR_FCR, fcr::ENABLE | 0xC0);
        for &b in b"abc" {
            u.bus.push_console_input(b);
        }
        // RX reset empties the FIFO and keeps FIFOs enabled.
        u.w(reg::IIR_FCR, fcr::ENABLE | fcr::RX_RESET);
        assert_eq!(u.r(reg::LSR) & lsr::DR, 0);
        assert_eq!(u.r(reg::IIR_FCR) & 0xC0, 0xC0);
        // TX reset: THR empty, THRE interrupt pending if enabled.
        u.w(reg::IER, ier::THR_EMPTY);
        u.r(reg::IIR_FCR);
        u.w(reg::IIR_FCR, fcr::ENABLE | fcr::TX_RESET);
        assert_eq!(u.r(reg::IIR_FCR), 0xC0 | iir::THR_EMPTY);
        // Disabling the FIFOs flushes them; reset bits without ENABLE are
        // not programmed.
        u.bus.push_console_input(b'd');
        u.w(reg::IIR_FCR, 0);
        assert_eq!(u.r(reg::LSR) & lsr::DR, 0);
        assert_eq!(u.r(reg::IIR_FCR) & 0xC0, 0);
        u.bus.push_console_input(b'e');
        u.w(reg::IIR_FCR, fcr::RX_RESET);
        assert_eq!(u.r(reg::RBR_THR), b'e');
        // Enabling them flushes too.
        u.bus.push_console_input(b'f');
        u.w(reg::IIR_FCR, fcr::ENABLE);
        assert_eq!(u.r(reg::LSR) & lsr::DR, 0);
    }

    #[test]
    fn only_byte_accesses() {
        let mut u = Rig::new();
        for width in [Width::Half, Width::Word] {
            let a = MmioAccess::read(GuestPhysAddr::new(BASE + 4), width);
            assert_eq!(
                u.bus.access(&a),
                Err(BusError::Device {
                    device: "uart16550",
                    addr: GuestPhysAddr::new(BASE + 4),
                    error: DeviceError::BadWidth { offset: 4, width }
                })
            );
        }
        let a = MmioAccess::write(GuestPhysAddr::new(BASE), Width::Word, 0x41);
        assert!(u.bus.access(&a).is_err());
        assert!(u.output().is_empty());
        let a = MmioAccess::read(GuestPhysAddr::new(BASE + 8), Width::Byte);
        assert!(matches!(
            u.bus.access(&a),
            Err(BusError::Device {
                error: DeviceError::BadOffset { offset: 8 },
                ..
            })
        ));
    }
}
