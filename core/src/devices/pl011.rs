//! An Arm PrimeCell UART (PL011) as QEMU's `virt` machine exposes it: a
//! 4 KiB register block at 0x0900_0000.
//!
//! Register behaviour follows the ARM PrimeCell UART (PL011) Technical
//! Reference Manual (DDI 0183), chapter 3 "Programmers Model"; where the
//! manual describes timing this model does not have, QEMU's
//! `hw/char/pl011.c` is the reference, so that a guest behaves the same as
//! on bare QEMU. The choices:
//!
//! - Transmission is instantaneous: a DR write hands the byte to the host
//!   (and, in loopback, to the receiver) at once. FR therefore always
//!   reports TXFE, never TXFF or BUSY, whatever the FIFO mode.
//! - The UARTEN, TXE and RXE bits of CR are stored but gate nothing: QEMU
//!   sends and receives with them clear (it only logs), and bare-metal
//!   guests that write DR without enabling the UART work there.
//! - Receive FIFO: 16 entries of 12 bits (a character and its error bits
//!   FE, PE, BE, OE in DR bits 8..11) with LCR_H.FEN set, a one-entry
//!   holding register without. Changing FEN empties it (as QEMU does). Host
//!   input never overruns: [`Device::push_input`] refuses a byte while the
//!   receiver is full (the host keeps it), and in loopback, where the
//!   receive input is disconnected. Only loopback can overrun: the new
//!   character is lost, the FIFO kept (TRM: only the shift register is
//!   overwritten), RSR.OE and the OE interrupt are set at once, and the
//!   next character that enters the FIFO carries DR.OE.
//! - Host input has no line errors: FE and PE never appear. BE appears
//!   only in loopback, when LCR_H.BRK is set: a break character (data 0,
//!   BE) enters the receiver and raises the BE interrupt.
//! - Interrupts (RIS, masked by IMSC into MIS and the one line,
//!   [`Device::irq_level`]):
//!   - RX follows the TRM: set when a character arrives and the FIFO holds
//!     at least the IFLS trigger level (1/8, 1/4, 1/2, 3/4 or 7/8 of 16
//!     entries; a full holding register without FIFOs), cleared when a
//!     read leaves it below, or by ICR. An IFLS write re-evaluates it.
//!     QEMU instead raises RX at one character whatever IFLS says; a guest
//!     that enables FIFOs with a trigger above one character and only RXIM
//!     sees no interrupt for a lone byte here, as on hardware.
//!   - RT, the receive timeout, fires on real hardware after 32 bit
//!     periods without new data while the FIFO holds some. This model has
//!     no clock, so that time has always passed: every character arriving
//!     sets RT, and it stays set while the FIFO is non-empty, until the
//!     guest clears it through ICR (it comes back with the next arrival).
//!     Emptying the FIFO clears it.
//!   - TX: the TRM's transmit interrupt is based on a transition through
//!     the trigger level, not the level itself: it is not set at reset or
//!     when the UART is enabled, only when written data leaves the FIFO.
//!     Here every DR write drains at once, so every DR write sets TX; only
//!     ICR clears it (QEMU does the same).
//!   - The modem interrupts (RI, CTS, DCD, DSR) are set when the
//!     corresponding input changes (TRM); the inputs only move in loopback.
//!   - OE and BE as above; FE and PE never.
//! - There is no modem. Outside loopback the modem inputs in FR read as
//!   inactive (QEMU's FR). In loopback (CR.LBE) they follow CR as QEMU
//!   wires them: RTS -> CTS, DTR -> DSR, Out1 -> DCD, Out2 -> RI. A
//!   looped-back character also goes to the host: the TRM does not say the
//!   transmit pin goes idle, and QEMU sends it.
//! - Accesses of 1, 2 or 4 bytes are taken at the start of every register
//!   (4-byte-aligned offsets). No register is wider than 16 bits, and
//!   drivers differ: ArceOS's `arm_pl011` uses 32-bit accesses, Linux's
//!   amba-pl011 drives the Arm PL011 with 16-bit `readw`/`writew` (32-bit
//!   only for the variants it marks `UPIO_MEM32`), bare-metal consoles
//!   often `strb` to DR. QEMU takes all of them, widening a narrow access
//!   to 4 bytes; so does this model: a narrow read returns the low bytes of
//!   the register (a DR read still pops a character), a narrow write sets
//!   the register's upper bits to zero. 8-byte accesses, and accesses that
//!   do not start at a register's first byte, are refused with
//!   [`DeviceError::BadWidth`].
//! - Offsets without a register (the reserved gaps, the test registers at
//!   0x080..0x08C) are refused with [`DeviceError::BadOffset`], as the
//!   other models of this project do; QEMU logs and reads 0. So is a read
//!   of the write-only ICR: no readable register is there.
//! - Writes to the read-only registers (FR, RIS, MIS, the ID registers)
//!   are refused with [`DeviceError::ReadOnly`], like the PLIC's pending
//!   bits. The TRM marks them read-only and no driver we know writes them,
//!   so such a write is a guest bug worth stopping at with its PC; QEMU
//!   drops them silently.
//! - Registers keep only their implemented bits (IBRD 16, FBRD 6, LCR_H 8,
//!   IFLS 6, IMSC 11, DMACR 3, ILPR 8; CR without its reserved bits 6:3).
//!   The baud divisors and line format are stored and have no effect; DMA
//!   is not modelled.

extern crate alloc;

use alloc::vec::Vec;

use super::ring::Ring;
use super::{Device, DeviceError, Width};

/// Where QEMU's `virt` machine maps the UART.
pub const QEMU_VIRT_BASE: u64 = 0x0900_0000;
/// Size of the register block.
pub const PL011_SIZE: u64 = 0x1000;
/// Depth of the receive FIFO (and of the transmit FIFO, always empty here).
pub const FIFO_DEPTH: usize = 16;

/// UARTPeriphID0..3 then UARTPCellID0..3, the bytes at 0xFE0..0xFFC (TRM,
/// "Peripheral Identification Registers" and "PrimeCell Identification
/// Registers"): part number 0x011, designer 0x41 (Arm), revision
/// 1, configuration 0; and the PrimeCell identification 0xB105F00D.
pub const ID: [u8; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

/// Register offsets (TRM, "UART register summary").
pub mod reg {
    /// UARTDR: data (read pops the receiver, write transmits).
    pub const DR: u64 = 0x000;
    /// UARTRSR (read) / UARTECR (write): receive status / error clear.
    pub const RSR_ECR: u64 = 0x004;
    /// UARTFR: flags (read-only).
    pub const FR: u64 = 0x018;
    /// UARTILPR: IrDA low-power counter.
    pub const ILPR: u64 = 0x020;
    /// UARTIBRD: integer baud rate divisor.
    pub const IBRD: u64 = 0x024;
    /// UARTFBRD: fractional baud rate divisor.
    pub const FBRD: u64 = 0x028;
    /// UARTLCR_H: line control.
    pub const LCR_H: u64 = 0x02C;
    /// UARTCR: control.
    pub const CR: u64 = 0x030;
    /// UARTIFLS: interrupt FIFO level select.
    pub const IFLS: u64 = 0x034;
    /// UARTIMSC: interrupt mask set/clear (1 = enabled).
    pub const IMSC: u64 = 0x038;
    /// UARTRIS: raw interrupt status (read-only).
    pub const RIS: u64 = 0x03C;
    /// UARTMIS: masked interrupt status (read-only).
    pub const MIS: u64 = 0x040;
    /// UARTICR: interrupt clear (write-only, 1 clears).
    pub const ICR: u64 = 0x044;
    /// UARTDMACR: DMA control.
    pub const DMACR: u64 = 0x048;
    /// UARTPeriphID0, the first of four peripheral ID registers.
    pub const PERIPH_ID0: u64 = 0xFE0;
    /// UARTPCellID0, the first of four PrimeCell ID registers.
    pub const PCELL_ID0: u64 = 0xFF0;
    /// UARTPCellID3, the last ID register.
    pub const PCELL_ID3: u64 = 0xFFC;
}

/// DR bits on read: the character and its receive errors (TRM, UARTDR).
pub mod dr {
    /// The character.
    pub const DATA: u32 = 0xff;
    /// Framing error.
    pub const FE: u32 = 1 << 8;
    /// Parity error.
    pub const PE: u32 = 1 << 9;
    /// Break error.
    pub const BE: u32 = 1 << 10;
    /// Overrun error.
    pub const OE: u32 = 1 << 11;
}

/// RSR bits (TRM, UARTRSR/UARTECR); any write to ECR clears them all.
pub mod rsr {
    /// Framing error of the last character read.
    pub const FE: u32 = 1 << 0;
    /// Parity error of the last character read.
    pub const PE: u32 = 1 << 1;
    /// Break error of the last character read.
    pub const BE: u32 = 1 << 2;
    /// Overrun: set as soon as it happens.
    pub const OE: u32 = 1 << 3;
}

/// FR bits (TRM, UARTFR).
pub mod fr {
    /// Clear to send (modem input).
    pub const CTS: u32 = 1 << 0;
    /// Data set ready (modem input).
    pub const DSR: u32 = 1 << 1;
    /// Data carrier detect (modem input).
    pub const DCD: u32 = 1 << 2;
    /// Busy transmitting (never, here).
    pub const BUSY: u32 = 1 << 3;
    /// Receive FIFO (or holding register) empty.
    pub const RXFE: u32 = 1 << 4;
    /// Transmit FIFO (or holding register) full (never, here).
    pub const TXFF: u32 = 1 << 5;
    /// Receive FIFO (or holding register) full.
    pub const RXFF: u32 = 1 << 6;
    /// Transmit FIFO (or holding register) empty (always, here).
    pub const TXFE: u32 = 1 << 7;
    /// Ring indicator (modem input).
    pub const RI: u32 = 1 << 8;
}

/// LCR_H bits (TRM, UARTLCR_H).
pub mod lcr_h {
    /// Send break.
    pub const BRK: u32 = 1 << 0;
    /// Parity enable.
    pub const PEN: u32 = 1 << 1;
    /// Even parity select.
    pub const EPS: u32 = 1 << 2;
    /// Two stop bits.
    pub const STP2: u32 = 1 << 3;
    /// FIFO enable: 16-entry FIFOs instead of 1-entry holding registers.
    pub const FEN: u32 = 1 << 4;
    /// Word length field (bits 6:5: 5, 6, 7 or 8 bits).
    pub const WLEN: u32 = 0b11 << 5;
    /// Stick parity select.
    pub const SPS: u32 = 1 << 7;
}

/// CR bits (TRM, UARTCR).
pub mod cr {
    /// UART enable.
    pub const UARTEN: u32 = 1 << 0;
    /// SIR (IrDA) enable.
    pub const SIREN: u32 = 1 << 1;
    /// SIR low-power mode.
    pub const SIRLP: u32 = 1 << 2;
    /// Loopback enable.
    pub const LBE: u32 = 1 << 7;
    /// Transmit enable.
    pub const TXE: u32 = 1 << 8;
    /// Receive enable.
    pub const RXE: u32 = 1 << 9;
    /// Data transmit ready (modem output).
    pub const DTR: u32 = 1 << 10;
    /// Request to send (modem output).
    pub const RTS: u32 = 1 << 11;
    /// Out1 (modem output).
    pub const OUT1: u32 = 1 << 12;
    /// Out2 (modem output).
    pub const OUT2: u32 = 1 << 13;
    /// RTS hardware flow control enable.
    pub const RTSEN: u32 = 1 << 14;
    /// CTS hardware flow control enable.
    pub const CTSEN: u32 = 1 << 15;
    /// Value at reset: TXE and RXE set, UARTEN clear.
    pub const RESET: u32 = TXE | RXE;
    /// The implemented bits (bits 6:3 are reserved).
    pub const MASK: u32 = 0xff87;
}

/// IFLS fields (TRM, UARTIFLS).
pub mod ifls {
    /// TXIFLSEL, bits 2:0: transmit trigger level.
    pub const TXIFLSEL: u32 = 0b111;
    /// RXIFLSEL, bits 5:3: receive trigger level.
    pub const RXIFLSEL: u32 = 0b111 << 3;
    /// Shift of RXIFLSEL.
    pub const RX_SHIFT: u32 = 3;
    /// Value at reset: both FIFOs at 1/2.
    pub const RESET: u32 = 0x12;
}

/// Interrupt bits of IMSC, RIS, MIS and ICR (TRM, UARTIMSC to UARTICR).
pub mod int {
    /// nUARTRI modem interrupt.
    pub const RI: u32 = 1 << 0;
    /// nUARTCTS modem interrupt.
    pub const CTS: u32 = 1 << 1;
    /// nUARTDCD modem interrupt.
    pub const DCD: u32 = 1 << 2;
    /// nUARTDSR modem interrupt.
    pub const DSR: u32 = 1 << 3;
    /// Receive (FIFO at or above the trigger level).
    pub const RX: u32 = 1 << 4;
    /// Transmit (FIFO drained through the trigger level).
    pub const TX: u32 = 1 << 5;
    /// Receive timeout.
    pub const RT: u32 = 1 << 6;
    /// Framing error.
    pub const FE: u32 = 1 << 7;
    /// Parity error.
    pub const PE: u32 = 1 << 8;
    /// Break error.
    pub const BE: u32 = 1 << 9;
    /// Overrun error.
    pub const OE: u32 = 1 << 10;
    /// Every interrupt bit.
    pub const ALL: u32 = 0x7ff;
}

/// DMACR bits (TRM, UARTDMACR; stored, DMA is not modelled).
pub mod dmacr {
    /// Receive DMA enable.
    pub const RXDMAE: u32 = 1 << 0;
    /// Transmit DMA enable.
    pub const TXDMAE: u32 = 1 << 1;
    /// DMA on error.
    pub const DMAONERR: u32 = 1 << 2;
}

/// The receiver: 16 entries of 12 bits, used with capacity 1 (the holding
/// register) while LCR_H.FEN is clear.
type RxFifo = Ring<u16, FIFO_DEPTH>;

/// The PL011 model.
#[derive(Clone, Debug)]
pub struct Pl011 {
    rx: RxFifo,
    /// The next character entering the FIFO carries DR.OE.
    overrun_pending: bool,
    rsr: u32,
    ilpr: u32,
    ibrd: u32,
    fbrd: u32,
    lcr_h: u32,
    cr: u32,
    ifls: u32,
    imsc: u32,
    ris: u32,
    dmacr: u32,
    tx: Vec<u8>,
}

impl Default for Pl011 {
    fn default() -> Self {
        Self::new()
    }
}

impl Pl011 {
    /// A UART in its reset state (TRM register summary): FIFOs off, every
    /// interrupt masked and clear, CR = TXE | RXE, IFLS at 1/2 and 1/2.
    pub const fn new() -> Self {
        Self {
            rx: RxFifo::new(0),
            overrun_pending: false,
            rsr: 0,
            ilpr: 0,
            ibrd: 0,
            fbrd: 0,
            lcr_h: 0,
            cr: cr::RESET,
            ifls: ifls::RESET,
            imsc: 0,
            ris: 0,
            dmacr: 0,
            tx: Vec::new(),
        }
    }

    /// The baud rate divisor as programmed: (IBRD, FBRD).
    pub const fn baud_divisor(&self) -> (u16, u8) {
        (self.ibrd as u16, self.fbrd as u8)
    }

    fn fifo_enabled(&self) -> bool {
        self.lcr_h & lcr_h::FEN != 0
    }

    fn loopback(&self) -> bool {
        self.cr & cr::LBE != 0
    }

    fn rx_capacity(&self) -> usize {
        if self.fifo_enabled() { FIFO_DEPTH } else { 1 }
    }

    /// Entries at which RX is raised: a full holding register without
    /// FIFOs, else RXIFLSEL's fraction of 16. The reserved selections
    /// 0b101..0b111 act as 7/8, the highest defined level.
    fn rx_trigger(&self) -> usize {
        if !self.fifo_enabled() {
            return 1;
        }
        match (self.ifls & ifls::RXIFLSEL) >> ifls::RX_SHIFT {
            0 => 2,
            1 => 4,
            2 => 8,
            3 => 12,
            _ => 14,
        }
    }

    /// The modem inputs as FR bits: inactive, except in loopback.
    fn modem_inputs(&self) -> u32 {
        if !self.loopback() {
            return 0;
        }
        [
            (cr::RTS, fr::CTS),
            (cr::DTR, fr::DSR),
            (cr::OUT1, fr::DCD),
            (cr::OUT2, fr::RI),
        ]
        .iter()
        .filter(|(out, _)| self.cr & out != 0)
        .fold(0, |v, (_, input)| v | input)
    }

    fn flags(&self) -> u32 {
        let mut v = fr::TXFE | self.modem_inputs();
        if self.rx.is_empty() {
            v |= fr::RXFE;
        }
        if self.rx.len() == self.rx_capacity() {
            v |= fr::RXFF;
        }
        v
    }

    /// RX at a FIFO level change: set at or above the trigger level,
    /// cleared below it.
    fn update_rx_level(&mut self) {
        if self.rx.len() >= self.rx_trigger() {
            self.ris |= int::RX;
        } else {
            self.ris &= !int::RX;
        }
    }

    /// A character (with its error bits) arriving at the receiver.
    fn receive(&mut self, entry: u16) {
        if self.rx.len() >= self.rx_capacity() {
            self.rsr |= rsr::OE;
            self.ris |= int::OE;
            self.overrun_pending = true;
            return;
        }
        let mut entry = entry;
        if core::mem::take(&mut self.overrun_pending) {
            entry |= dr::OE as u16;
        }
        self.rx.push(entry);
        if u32::from(entry) & dr::BE != 0 {
            self.ris |= int::BE;
        }
        // The timeout has always elapsed in an untimed model.
        self.ris |= int::RT;
        if self.rx.len() >= self.rx_trigger() {
            self.ris |= int::RX;
        }
    }

    fn read_dr(&mut self) -> u32 {
        // An empty receiver reads 0 and leaves RSR alone.
        let Some(entry) = self.rx.pop() else { return 0 };
        let entry = u32::from(entry);
        self.rsr = (self.rsr & rsr::OE) | ((entry >> 8) & (rsr::FE | rsr::PE | rsr::BE));
        self.update_rx_level();
        if self.rx.is_empty() {
            self.ris &= !int::RT;
        }
        entry
    }

    fn transmit(&mut self, byte: u8) {
        self.tx.push(byte);
        if self.loopback() {
            self.receive(u16::from(byte));
        }
        // The byte left the FIFO at once, passing the TX trigger level.
        self.ris |= int::TX;
    }

    fn write_lcr_h(&mut self, value: u32) {
        let old = self.lcr_h;
        let value = value & 0xff;
        if (old ^ value) & lcr_h::FEN != 0 {
            self.rx.clear();
            self.overrun_pending = false;
            self.ris &= !(int::RX | int::RT);
        }
        self.lcr_h = value;
        if self.loopback() && old & lcr_h::BRK == 0 && value & lcr_h::BRK != 0 {
            self.receive(dr::BE as u16);
        }
    }

    fn write_cr(&mut self, value: u32) {
        let before = self.modem_inputs();
        self.cr = value & cr::MASK;
        let changed = before ^ self.modem_inputs();
        for (input, bit) in [
            (fr::RI, int::RI),
            (fr::CTS, int::CTS),
            (fr::DCD, int::DCD),
            (fr::DSR, int::DSR),
        ] {
            if changed & input != 0 {
                self.ris |= bit;
            }
        }
    }

    /// The register an access of `width` at `offset` reaches.
    fn register(offset: u64, width: Width) -> Result<u64, DeviceError> {
        let base = offset & !3;
        let known = matches!(
            base,
            reg::DR
                | reg::RSR_ECR
                | reg::FR
                | reg::ILPR
                | reg::IBRD
                | reg::FBRD
                | reg::LCR_H
                | reg::CR
                | reg::IFLS
                | reg::IMSC
                | reg::RIS
                | reg::MIS
                | reg::ICR
                | reg::DMACR
                | reg::PERIPH_ID0..=reg::PCELL_ID3
        );
        if !known {
            return Err(DeviceError::BadOffset { offset });
        }
        if offset == base && width != Width::Double {
            Ok(base)
        } else {
            Err(DeviceError::BadWidth { offset, width })
        }
    }
}

impl Device for Pl011 {
    fn name(&self) -> &'static str {
        "pl011"
    }

    fn read(&mut self, offset: u64, width: Width) -> Result<u64, DeviceError> {
        let v = match Self::register(offset, width)? {
            reg::DR => self.read_dr(),
            reg::RSR_ECR => self.rsr,
            reg::FR => self.flags(),
            reg::ILPR => self.ilpr,
            reg::IBRD => self.ibrd,
            reg::FBRD => self.fbrd,
            reg::LCR_H => self.lcr_h,
            reg::CR => self.cr,
            reg::IFLS => self.ifls,
            reg::IMSC => self.imsc,
            reg::RIS => self.ris,
            reg::MIS => self.ris & self.imsc,
            reg::DMACR => self.dmacr,
            id @ reg::PERIPH_ID0..=reg::PCELL_ID3 => {
                u32::from(ID[((id - reg::PERIPH_ID0) / 4) as usize])
            }
            // ICR is write-only.
            _ => return Err(DeviceError::BadOffset { offset }),
        };
        Ok(u64::from(v) & width.mask())
    }

    fn write(&mut self, offset: u64, width: Width, value: u64) -> Result<(), DeviceError> {
        let v = (value & width.mask()) as u32;
        match Self::register(offset, width)? {
            reg::DR => self.transmit(v as u8),
            reg::RSR_ECR => self.rsr = 0,
            reg::ILPR => self.ilpr = v & 0xff,
            reg::IBRD => self.ibrd = v & 0xffff,
            reg::FBRD => self.fbrd = v & 0x3f,
            reg::LCR_H => self.write_lcr_h(v),
            reg::CR => self.write_cr(v),
            reg::IFLS => {
                self.ifls = v & (ifls::TXIFLSEL | ifls::RXIFLSEL);
                self.update_rx_level();
            }
            reg::IMSC => self.imsc = v & int::ALL,
            reg::ICR => self.ris &= !(v & int::ALL),
            reg::DMACR => self.dmacr = v & (dmacr::RXDMAE | dmacr::TXDMAE | dmacr::DMAONERR),
            // FR, RIS, MIS and the ID registers.
            _ => return Err(DeviceError::ReadOnly { offset }),
        }
        Ok(())
    }

    fn irq_level(&self) -> bool {
        self.ris & self.imsc != 0
    }

    /// Host input is refused while the receiver is full (the host keeps the
    /// byte) and in loopback, where the receive input is disconnected.
    fn push_input(&mut self, byte: u8) -> bool {
        if self.loopback() || self.rx.len() >= self.rx_capacity() {
            return false;
        }
        self.receive(u16::from(byte));
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

    const BASE: u64 = QEMU_VIRT_BASE;

    /// The UART on a bus at its `virt` address, accessed with 4-byte loads
    /// and stores as drivers do.
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
                    PL011_SIZE,
                    Box::new(Pl011::new()),
                    None,
                )
                .unwrap();
            Rig { bus, id }
        }
        fn access(&mut self, a: MmioAccess) -> Result<u64, BusError> {
            self.bus.access(&a)
        }
        fn r(&mut self, off: u64) -> u32 {
            self.access(MmioAccess::read(
                GuestPhysAddr::new(BASE + off),
                Width::Word,
            ))
            .unwrap() as u32
        }
        fn w(&mut self, off: u64, v: u32) {
            self.access(MmioAccess::write(
                GuestPhysAddr::new(BASE + off),
                Width::Word,
                u64::from(v),
            ))
            .unwrap();
        }
        fn input(&mut self, bytes: &[u8]) {
            for &b in bytes {
                assert!(self.bus.push_console_input(b), "input {b:#x} refused");
            }
        }
        fn output(&mut self) -> Vec<u8> {
            let mut v = Vec::new();
            self.bus.drain_console_output(|b| v.extend_from_slice(b));
            v
        }
        fn irq(&self) -> bool {
            self.bus.device(self.id).unwrap().irq_level()
        }
        fn ris(&mut self) -> u32 {
            self.r(reg::RIS)
        }
    }

    #[test]
    fn reset_values() {
        let mut u = Rig::new();
        assert_eq!(u.r(reg::FR), fr::TXFE | fr::RXFE);
        assert_eq!(u.r(reg::FR), 0x90);
        assert_eq!(u.r(reg::CR), 0x300);
        assert_eq!(u.r(reg::IFLS), 0x12);
        for off in [
            reg::RSR_ECR,
            reg::ILPR,
            reg::IBRD,
            reg::FBRD,
            reg::LCR_H,
            reg::IMSC,
            reg::RIS,
            reg::MIS,
            reg::DMACR,
        ] {
            assert_eq!(u.r(off), 0, "offset {off:#x}");
        }
        // Reading an empty receiver gives 0 and changes nothing.
        assert_eq!(u.r(reg::DR), 0);
        assert_eq!(u.r(reg::FR), 0x90);
        assert!(!u.irq());
        assert!(u.output().is_empty());
    }

    #[test]
    fn id_registers() {
        let mut u = Rig::new();
        let id: Vec<u32> = (0..8).map(|i| u.r(reg::PERIPH_ID0 + 4 * i)).collect();
        assert_eq!(id, [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1]);
        // What an AMBA bus driver assembles: part 0x011, designer 0x41,
        // revision 1; the PrimeCell ID 0xB105F00D.
        let periph = id[..4].iter().rev().fold(0, |v, b| v << 8 | b);
        let cell = id[4..].iter().rev().fold(0, |v, b| v << 8 | b);
        assert_eq!(periph & 0xfff, 0x011);
        assert_eq!((periph >> 12) & 0xff, 0x41);
        assert_eq!((periph >> 20) & 0xf, 1);
        assert_eq!(cell, 0xb105_f00d);
    }

    #[test]
    fn transmitted_bytes_reach_the_host() {
        let mut u = Rig::new();
        u.w(reg::CR, cr::UARTEN | cr::TXE | cr::RXE);
        for &b in b"ok\n" {
            assert_eq!(u.r(reg::FR) & (fr::TXFF | fr::BUSY), 0);
            u.w(reg::DR, u32::from(b) | 0xf00);
        }
        assert_eq!(u.output(), b"ok\n");
        assert!(u.output().is_empty());
        // Nothing was received.
        assert_ne!(u.r(reg::FR) & fr::RXFE, 0);
        // UARTEN and TXE gate nothing (QEMU sends with them clear).
        u.w(reg::CR, 0);
        u.w(reg::DR, u32::from(b'!'));
        assert_eq!(u.output(), b"!");
    }

    #[test]
    fn tx_interrupt_is_set_by_writes_and_cleared_by_icr() {
        let mut u = Rig::new();
        u.w(reg::IMSC, int::TX);
        // Not at reset, nor when the UART is enabled: only data leaving
        // the FIFO sets it.
        u.w(reg::CR, cr::UARTEN | cr::TXE);
        assert!(!u.irq());
        u.w(reg::DR, u32::from(b'x'));
        assert_eq!(u.ris(), int::TX);
        assert_eq!(u.r(reg::MIS), int::TX);
        assert!(u.irq());
        u.w(reg::ICR, int::TX);
        assert_eq!(u.ris(), 0);
        assert!(!u.irq());
        // Masked, it is still raw-pending but does not drive the line.
        u.w(reg::IMSC, 0);
        u.w(reg::DR, u32::from(b'y'));
        assert_eq!(u.ris(), int::TX);
        assert_eq!(u.r(reg::MIS), 0);
        assert!(!u.irq());
    }

    #[test]
    fn flags_without_fifos() {
        let mut u = Rig::new();
        u.input(b"a");
        // One entry: the holding register is both non-empty and full.
        assert_eq!(u.r(reg::FR), fr::TXFE | fr::RXFF);
        assert!(!u.bus.push_console_input(b'b'));
        assert_eq!(u.r(reg::DR), u32::from(b'a'));
        assert_eq!(u.r(reg::FR), fr::TXFE | fr::RXFE);
        u.input(b"b");
        assert_eq!(u.r(reg::DR), u32::from(b'b'));
    }

    #[test]
    fn flags_with_fifos() {
        let mut u = Rig::new();
        u.w(reg::LCR_H, lcr_h::FEN | lcr_h::WLEN);
        assert_eq!(u.r(reg::LCR_H), 0x70);
        u.input(b"A");
        assert_eq!(u.r(reg::FR), fr::TXFE);
        for i in 1..16u8 {
            u.input(&[b'A' + i]);
        }
        assert_eq!(u.r(reg::FR), fr::TXFE | fr::RXFF);
        assert!(!u.bus.push_console_input(b'!'));
        for i in 0..16u8 {
            assert_eq!(u.r(reg::FR) & fr::RXFE, 0);
            assert_eq!(u.r(reg::DR), u32::from(b'A' + i));
            assert_eq!(u.r(reg::FR) & fr::RXFF, 0);
        }
        assert_eq!(u.r(reg::FR), fr::TXFE | fr::RXFE);
        // No overrun: the refused byte stayed with the host.
        assert_eq!(u.r(reg::RSR_ECR), 0);
    }

    #[test]
    fn changing_fen_empties_the_receiver() {
        let mut u = Rig::new();
        u.w(reg::LCR_H, lcr_h::FEN);
        u.input(b"abc");
        // Rewriting LCR_H with FEN unchanged keeps the data.
        u.w(reg::LCR_H, lcr_h::FEN | lcr_h::WLEN);
        assert_eq!(u.r(reg::DR), u32::from(b'a'));
        u.w(reg::LCR_H, lcr_h::WLEN);
        assert_eq!(u.r(reg::FR), fr::TXFE | fr::RXFE);
        assert_eq!(u.ris(), 0);
        u.input(b"d");
        u.w(reg::LCR_H, lcr_h::FEN);
        assert_eq!(u.r(reg::FR), fr::TXFE | fr::RXFE);
    }

    #[test]
    fn rx_interrupt_without_fifos() {
        let mut u = Rig::new();
        // ArceOS's arm_pl011 set-up: clear all, IFLS 0, RXIM, enable.
        u.w(reg::ICR, int::ALL);
        u.w(reg::IFLS, 0);
        u.w(reg::IMSC, int::RX);
        u.w(reg::CR, cr::UARTEN | cr::TXE | cr::RXE);
        assert!(!u.irq());
        u.input(b"k");
        assert!(u.irq());
        assert_eq!(u.r(reg::MIS), int::RX);
        assert_eq!(u.ris(), int::RX | int::RT);
        assert_eq!(u.r(reg::DR), u32::from(b'k'));
        assert!(!u.irq());
        assert_eq!(u.ris(), 0);
    }

    #[test]
    fn rx_interrupt_follows_the_trigger_level() {
        let mut u = Rig::new();
        u.w(reg::LCR_H, lcr_h::FEN);
        u.w(reg::IFLS, 1 << ifls::RX_SHIFT); // RX at 1/4: 4 entries
        u.w(reg::IMSC, int::RX);
        u.input(b"123");
        assert!(!u.irq());
        assert_eq!(u.ris(), int::RT);
        u.input(b"4");
        assert!(u.irq());
        u.input(b"5");
        assert!(u.irq());
        // Reading down to 4 keeps it; below 4 clears it.
        u.r(reg::DR);
        assert!(u.irq());
        u.r(reg::DR);
        assert!(!u.irq());
        assert_eq!(u.ris(), int::RT);
        // Lowering the trigger to 1/8 (2 entries) reaches it at once.
        u.w(reg::IFLS, 0);
        assert!(u.irq());
        // ICR clears it until the next arrival at or above the level.
        u.w(reg::ICR, int::RX);
        assert!(!u.irq());
        u.input(b"6");
        assert!(u.irq());
        // Raising the trigger to 7/8 withdraws it.
        u.w(reg::IFLS, 4 << ifls::RX_SHIFT);
        assert!(!u.irq());
        // The reserved selections act as 7/8 (14 entries).
        u.w(reg::IFLS, 7 << ifls::RX_SHIFT);
        u.input(b"789abcdef");
        assert!(!u.irq());
        u.input(b"h");
        assert!(u.irq());
        assert_eq!(u.r(reg::IFLS), 0x38);
    }

    #[test]
    fn receive_timeout_is_asserted_while_data_waits() {
        let mut u = Rig::new();
        u.w(reg::LCR_H, lcr_h::FEN); // RX trigger at 1/2: 8 entries
        // Linux's amba-pl011 unmasks RX and RT.
        u.w(reg::IMSC, int::RX | int::RT);
        u.input(b"ab");
        assert_eq!(u.r(reg::MIS), int::RT);
        assert!(u.irq());
        u.r(reg::DR);
        assert_eq!(u.r(reg::MIS), int::RT);
        // Cleared by ICR until another character arrives.
        u.w(reg::ICR, int::RT);
        assert!(!u.irq());
        u.input(b"c");
        assert_eq!(u.r(reg::MIS), int::RT);
        // Emptying the FIFO clears it.
        u.r(reg::DR);
        u.r(reg::DR);
        assert_eq!(u.ris(), 0);
        assert!(!u.irq());
    }

    #[test]
    fn icr_clears_only_the_bits_written() {
        let mut u = Rig::new();
        u.w(reg::IMSC, int::ALL);
        u.w(reg::DR, u32::from(b'.')); // TX
        u.input(b"x"); // RX and RT
        assert_eq!(u.ris(), int::TX | int::RX | int::RT);
        u.w(reg::ICR, int::TX | int::OE);
        assert_eq!(u.ris(), int::RX | int::RT);
        assert!(u.irq());
        u.w(reg::ICR, 0);
        assert_eq!(u.ris(), int::RX | int::RT);
        // Bits above the 11 interrupts are ignored.
        u.w(reg::ICR, !int::ALL);
        assert_eq!(u.ris(), int::RX | int::RT);
        u.w(reg::ICR, int::ALL);
        assert_eq!(u.ris(), 0);
        assert!(!u.irq());
        // The character is still there.
        assert_eq!(u.r(reg::DR), u32::from(b'x'));
    }

    #[test]
    fn loopback() {
        let mut u = Rig::new();
        u.w(reg::CR, cr::UARTEN | cr::TXE | cr::RXE | cr::LBE);
        u.w(reg::DR, u32::from(b'Z'));
        // The character is received, and still sent (as QEMU does).
        assert_eq!(u.r(reg::FR) & fr::RXFE, 0);
        assert_eq!(u.r(reg::DR), u32::from(b'Z'));
        assert_eq!(u.output(), b"Z");
        // Host input is disconnected in loopback.
        assert!(!u.bus.push_console_input(b'h'));
        u.w(reg::CR, cr::UARTEN | cr::TXE | cr::RXE);
        assert!(u.bus.push_console_input(b'h'));
        assert_eq!(u.r(reg::DR), u32::from(b'h'));
        // Out of loopback a transmitted byte is not received.
        u.w(reg::DR, u32::from(b'q'));
        assert_ne!(u.r(reg::FR) & fr::RXFE, 0);
    }

    #[test]
    fn loopback_modem_lines_and_interrupts() {
        let mut u = Rig::new();
        u.w(reg::IMSC, int::RI | int::CTS | int::DCD | int::DSR);
        // Outside loopback the modem outputs go nowhere.
        u.w(reg::CR, cr::RTS | cr::DTR | cr::OUT1 | cr::OUT2);
        assert_eq!(u.r(reg::FR) & (fr::CTS | fr::DSR | fr::DCD | fr::RI), 0);
        assert!(!u.irq());
        // Entering loopback connects them: four inputs change.
        u.w(reg::CR, cr::LBE | cr::RTS | cr::DTR | cr::OUT1 | cr::OUT2);
        assert_eq!(
            u.r(reg::FR),
            fr::TXFE | fr::RXFE | fr::CTS | fr::DSR | fr::DCD | fr::RI
        );
        assert_eq!(u.ris(), int::RI | int::CTS | int::DCD | int::DSR);
        u.w(reg::ICR, int::ALL);
        assert!(!u.irq());
        // Dropping RTS changes CTS only.
        u.w(reg::CR, cr::LBE | cr::DTR | cr::OUT1 | cr::OUT2);
        assert_eq!(u.ris(), int::CTS);
        assert_eq!(u.r(reg::FR) & fr::CTS, 0);
        assert!(u.irq());
        u.w(reg::ICR, int::CTS);
        // Out2 drives RI, Out1 DCD, DTR DSR.
        u.w(reg::CR, cr::LBE | cr::OUT1);
        assert_eq!(u.ris(), int::RI | int::DSR);
        assert_eq!(
            u.r(reg::FR) & (fr::CTS | fr::DSR | fr::DCD | fr::RI),
            fr::DCD
        );
    }

    #[test]
    fn loopback_break_and_overrun_set_the_error_bits() {
        let mut u = Rig::new();
        u.w(reg::IMSC, int::BE | int::OE);
        u.w(reg::CR, cr::LBE | cr::TXE | cr::RXE | cr::UARTEN);
        // A break: data 0 with BE, the BE interrupt, RSR.BE after the read.
        u.w(reg::LCR_H, lcr_h::BRK);
        assert_eq!(u.ris() & (int::BE | int::OE), int::BE);
        assert!(u.irq());
        assert_eq!(u.r(reg::RSR_ECR), 0);
        assert_eq!(u.r(reg::DR), dr::BE);
        assert_eq!(u.r(reg::RSR_ECR), rsr::BE);
        // Holding BRK does not send another; only a new rising edge does.
        u.w(reg::LCR_H, lcr_h::BRK | lcr_h::WLEN);
        assert_ne!(u.r(reg::FR) & fr::RXFE, 0);
        u.w(reg::LCR_H, 0);
        u.w(reg::ICR, int::ALL);
        // The next clean character clears RSR's BE.
        u.w(reg::DR, u32::from(b'1'));
        assert_eq!(u.r(reg::DR), u32::from(b'1'));
        assert_eq!(u.r(reg::RSR_ECR), 0);
        // Overrun of the holding register: the new character is lost, the
        // old one kept, OE raised at once.
        u.w(reg::DR, u32::from(b'2'));
        u.w(reg::DR, u32::from(b'3'));
        assert_eq!(u.ris() & (int::BE | int::OE), int::OE);
        assert_eq!(u.r(reg::RSR_ECR), rsr::OE);
        assert_eq!(u.r(reg::DR), u32::from(b'2'));
        // The next character to enter carries DR.OE.
        u.w(reg::DR, u32::from(b'4'));
        assert_eq!(u.r(reg::DR), dr::OE | u32::from(b'4'));
        u.w(reg::DR, u32::from(b'5'));
        assert_eq!(u.r(reg::DR), u32::from(b'5'));
        // RSR.OE stays until a write to ECR.
        assert_eq!(u.r(reg::RSR_ECR), rsr::OE);
        u.w(reg::RSR_ECR, 0);
        assert_eq!(u.r(reg::RSR_ECR), 0);
        assert!(u.irq());
        u.w(reg::ICR, int::OE);
        assert!(!u.irq());
        assert_eq!(u.output(), b"12345");
    }

    #[test]
    fn registers_keep_their_implemented_bits() {
        let mut u = Rig::new();
        // (register, value written, value read back); BRK and LBE are
        // left out so that no break or loopback gets in the way.
        for (off, written, kept) in [
            (reg::ILPR, u32::MAX, 0xff),
            (reg::IBRD, u32::MAX, 0xffff),
            (reg::FBRD, u32::MAX, 0x3f),
            (reg::LCR_H, !lcr_h::BRK, 0xfe),
            (reg::CR, !cr::LBE, 0xff07),
            (reg::IFLS, u32::MAX, 0x3f),
            (reg::IMSC, u32::MAX, 0x7ff),
            (reg::DMACR, u32::MAX, 0x7),
        ] {
            u.w(off, written);
            assert_eq!(u.r(off), kept, "offset {off:#x}");
            u.w(off, 0);
            assert_eq!(u.r(off), 0, "offset {off:#x}");
        }
        // The divisor for 115200 baud from QEMU's 24 MHz clock.
        let mut uart = Pl011::new();
        uart.write(reg::IBRD, Width::Word, 13).unwrap();
        uart.write(reg::FBRD, Width::Word, 1).unwrap();
        assert_eq!(uart.baud_divisor(), (13, 1));
    }

    #[test]
    fn narrow_accesses_at_register_starts() {
        let mut u = Rig::new();
        let at = |off| GuestPhysAddr::new(BASE + off);
        let r = |u: &mut Rig, off, width| u.access(MmioAccess::read(at(off), width)).unwrap();
        let w = |u: &mut Rig, off, width, v| {
            u.access(MmioAccess::write(at(off), width, v)).unwrap();
        };
        // strb / strh to DR send the low byte.
        w(&mut u, reg::DR, Width::Byte, u64::from(b'b'));
        w(&mut u, reg::DR, Width::Half, 0x0168);
        assert_eq!(u.output(), b"bh");
        // Linux's amba-pl011 uses 16-bit accesses throughout.
        assert_eq!(r(&mut u, reg::FR, Width::Half), 0x90);
        w(&mut u, reg::CR, Width::Half, 0x0301);
        assert_eq!(u.r(reg::CR), cr::UARTEN | cr::TXE | cr::RXE);
        w(&mut u, reg::IMSC, Width::Half, u64::from(int::RX | int::RT));
        assert_eq!(r(&mut u, reg::IMSC, Width::Half), 0x50);
        assert_eq!(r(&mut u, reg::PERIPH_ID0, Width::Byte), 0x11);
        assert_eq!(r(&mut u, reg::PCELL_ID3, Width::Byte), 0xb1);
        // A narrow read gives the low bytes; a narrow write zeroes the rest.
        u.w(reg::IBRD, 0x1234);
        assert_eq!(r(&mut u, reg::IBRD, Width::Byte), 0x34);
        w(&mut u, reg::IBRD, Width::Byte, 0x56);
        assert_eq!(u.r(reg::IBRD), 0x56);
        // ldrb / ldrh of DR pop a character each.
        u.w(reg::CR, cr::LBE | cr::TXE | cr::RXE);
        u.w(reg::LCR_H, lcr_h::FEN);
        u.w(reg::DR, u32::from(b'c'));
        u.w(reg::LCR_H, lcr_h::FEN | lcr_h::BRK);
        assert_eq!(r(&mut u, reg::DR, Width::Byte), u64::from(b'c'));
        assert_eq!(r(&mut u, reg::DR, Width::Half), u64::from(dr::BE));
        assert_ne!(u.r(reg::FR) & fr::RXFE, 0);
        // Accesses that start inside a register, and 8-byte accesses, are
        // refused.
        for (off, width) in [
            (1, Width::Byte),
            (2, Width::Half),
            (2, Width::Word),
            (reg::FR + 1, Width::Byte),
            (reg::FR + 2, Width::Half),
            (reg::FR + 1, Width::Word),
            (reg::DR, Width::Double),
            (reg::IBRD, Width::Double),
            (reg::PCELL_ID0 + 8, Width::Double),
        ] {
            for a in [
                MmioAccess::read(at(off), width),
                MmioAccess::write(at(off), width, 0x41),
            ] {
                assert_eq!(
                    u.access(a),
                    Err(BusError::Device {
                        device: "pl011",
                        addr: at(off),
                        error: DeviceError::BadWidth { offset: off, width }
                    }),
                    "{a}"
                );
            }
        }
        // The refused DR writes sent nothing.
        assert_eq!(u.output(), b"c");
    }

    #[test]
    fn unknown_offsets_and_read_only_registers_are_refused() {
        let mut u = Rig::new();
        let at = |off| GuestPhysAddr::new(BASE + off);
        for off in [0x008, 0x00c, 0x014, 0x01c, 0x04c, 0x080, 0x08c, 0xfdc] {
            for a in [
                MmioAccess::read(at(off), Width::Word),
                MmioAccess::write(at(off), Width::Word, 0),
            ] {
                assert!(
                    matches!(
                        u.access(a),
                        Err(BusError::Device {
                            error: DeviceError::BadOffset { offset },
                            ..
                        }) if offset == off
                    ),
                    "{a}"
                );
            }
        }
        // ICR is write-only.
        let e = u
            .access(MmioAccess::read(at(reg::ICR), Width::Word))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "pl011 at GPA 0x9000044: no register at offset 0x44"
        );
        let ro = [reg::FR, reg::RIS, reg::MIS, reg::PERIPH_ID0, reg::PCELL_ID3];
        for off in ro {
            assert_eq!(
                u.access(MmioAccess::write(at(off), Width::Word, 0xffff)),
                Err(BusError::Device {
                    device: "pl011",
                    addr: at(off),
                    error: DeviceError::ReadOnly { offset: off }
                })
            );
        }
        // Nothing changed.
        assert_eq!(u.r(reg::FR), 0x90);
        assert_eq!(u.ris(), 0);
        assert_eq!(u.r(reg::PERIPH_ID0), 0x11);
        // The bus refuses what runs past the block.
        assert!(matches!(
            u.access(MmioAccess::read(at(0xffc), Width::Double)),
            Err(BusError::Straddle { .. })
        ));
    }

    #[test]
    fn used_directly() {
        let mut uart = Pl011::default();
        assert_eq!(uart.name(), "pl011");
        assert_eq!(uart.read(reg::FR, Width::Word), Ok(0x90));
        assert!(uart.push_input(b'z'));
        assert!(!uart.push_input(b'y'));
        uart.write(reg::IMSC, Width::Word, u64::from(int::RX))
            .unwrap();
        assert!(uart.irq_level());
        // A Byte read of DR returns the low byte only.
        assert_eq!(uart.read(reg::DR, Width::Byte), Ok(u64::from(b'z')));
        assert!(!uart.irq_level());
        // Bits of the value above the width are ignored.
        uart.write(reg::DR, Width::Byte, 0x1234_5641).unwrap();
        let mut got = Vec::new();
        uart.take_output(&mut |b| got.extend_from_slice(b));
        assert_eq!(got, b"A");
        assert_eq!(
            uart.write(reg::DR, Width::Double, 0),
            Err(DeviceError::BadWidth {
                offset: 0,
                width: Width::Double
            })
        );
        assert_eq!(
            uart.read(PL011_SIZE, Width::Word),
            Err(DeviceError::BadOffset { offset: PL011_SIZE })
        );
    }

    #[test]
    fn interrupt_line_reaches_the_bus_controller() {
        /// An interrupt controller that records its inputs.
        struct Lines(Vec<bool>);
        impl Device for Lines {
            fn name(&self) -> &'static str {
                "lines"
            }
            fn read(&mut self, _: u64, _: Width) -> Result<u64, DeviceError> {
                Ok(0)
            }
            fn write(&mut self, offset: u64, _: Width, _: u64) -> Result<(), DeviceError> {
                Err(DeviceError::BadOffset { offset })
            }
            fn set_irq_source(&mut self, source: u32, level: bool) {
                self.0[source as usize] = level;
            }
            fn irq_output(&self, _: usize) -> bool {
                self.0[33]
            }
        }
        let mut bus = Bus::new();
        // QEMU virt wires the UART to SPI 1, GIC INTID 33.
        bus.add(
            GuestPhysAddr::new(BASE),
            PL011_SIZE,
            Box::new(Pl011::new()),
            Some(33),
        )
        .unwrap();
        let gic = bus
            .add(
                GuestPhysAddr::new(0x0800_0000),
                0x1000,
                Box::new(Lines(vec![false; 64])),
                None,
            )
            .unwrap();
        bus.set_irq_chip(gic).unwrap();
        let w = |bus: &mut Bus, off: u64, v: u64| {
            bus.access(&MmioAccess::write(
                GuestPhysAddr::new(BASE + off),
                Width::Word,
                v,
            ))
            .unwrap()
        };
        w(&mut bus, reg::IMSC, u64::from(int::RX | int::RT));
        assert!(!bus.external_irq(0));
        assert!(bus.push_console_input(b'i'));
        assert!(bus.external_irq(0));
        bus.access(&MmioAccess::read(GuestPhysAddr::new(BASE), Width::Word))
            .unwrap();
        assert!(!bus.external_irq(0));
    }
}
