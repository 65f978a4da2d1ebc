//! One Intel 8259A programmable interrupt controller (the PC has two, at
//! ports 0x20/0x21 and 0xA0/0xA1), modelled only as far as a guest that
//! uses the local APIC instead needs it: the initialization sequence and
//! the interrupt mask are accepted and read back, and no interrupt is ever
//! raised (nothing is wired to its inputs). ArceOS masks both PICs by
//! writing 0xFF to their data ports; Linux runs the full ICW1..ICW4
//! sequence first.
//!
//! Register semantics from the Intel 8259A datasheet ("Programming the
//! 8259A"): a command-port write with bit 4 set is ICW1 and starts
//! initialization (ICW2 follows on the data port, then ICW3 unless ICW1
//! says single mode, then ICW4 if ICW1 asks for it); outside
//! initialization a data-port write is OCW1 (the mask), a command-port
//! write with bit 3 set is OCW3 (which register a command-port read
//! returns: IRR or ISR), otherwise OCW2 (end of interrupt, rotation),
//! which with no interrupt in service changes nothing. Reads of the data
//! port return the mask; IRR and ISR are always 0.

use super::{Device, DeviceError, Width};

/// Size of the port range: command (offset 0) and data (offset 1).
pub const PIC_PORTS: u64 = 2;
/// The first PIC's ports.
pub const MASTER_BASE: u16 = 0x20;
/// The second PIC's ports.
pub const SLAVE_BASE: u16 = 0xa0;

/// ICW1 bits (on the command port, with bit 4 set).
pub mod icw1 {
    /// Bit 4: this command-port write is ICW1.
    pub const INIT: u8 = 1 << 4;
    /// Bit 1 (SNGL): single PIC, no ICW3.
    pub const SINGLE: u8 = 1 << 1;
    /// Bit 0 (IC4): ICW4 follows.
    pub const IC4: u8 = 1 << 0;
}

/// OCW3 bits (on the command port, bit 4 clear and bit 3 set).
pub mod ocw3 {
    /// Bit 3: this command-port write is OCW3.
    pub const SELECT: u8 = 1 << 3;
    /// Bit 1 (RR): the read-register bit RIS is valid.
    pub const READ_REGISTER: u8 = 1 << 1;
    /// Bit 0 (RIS): read ISR (1) or IRR (0) on the next command-port read.
    pub const READ_ISR: u8 = 1 << 0;
}

/// Where the initialization sequence stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Init {
    /// Initialized (or never): data writes are OCW1.
    Ready,
    /// ICW2 is next; `icw3` and `icw4` say what follows it.
    Icw2 { icw3: bool, icw4: bool },
    /// ICW3 is next.
    Icw3 { icw4: bool },
    /// ICW4 is next.
    Icw4,
}

/// One 8259A.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pic8259 {
    name: &'static str,
    init: Init,
    /// The interrupt mask register (OCW1).
    mask: u8,
    /// The vector base from ICW2.
    vector_base: u8,
}

impl Pic8259 {
    /// A PIC named `name` (`"pic-master"`), all inputs masked.
    pub const fn new(name: &'static str) -> Self {
        Pic8259 {
            name,
            init: Init::Ready,
            mask: 0xff,
            vector_base: 0,
        }
    }

    /// The interrupt mask register.
    pub const fn mask(&self) -> u8 {
        self.mask
    }

    /// The vector base ICW2 set.
    pub const fn vector_base(&self) -> u8 {
        self.vector_base
    }
}

impl Device for Pic8259 {
    fn name(&self) -> &'static str {
        self.name
    }

    fn read(&mut self, offset: u64, width: Width) -> Result<u64, DeviceError> {
        if width != Width::Byte {
            return Err(DeviceError::BadWidth { offset, width });
        }
        match offset {
            // IRR or ISR, as OCW3 selected: nothing is ever requested.
            0 => Ok(0),
            1 => Ok(u64::from(self.mask)),
            _ => Err(DeviceError::BadOffset { offset }),
        }
    }

    fn write(&mut self, offset: u64, width: Width, value: u64) -> Result<(), DeviceError> {
        if width != Width::Byte {
            return Err(DeviceError::BadWidth { offset, width });
        }
        let v = value as u8;
        match (offset, self.init) {
            (0, _) if v & icw1::INIT != 0 => {
                self.mask = 0;
                self.init = Init::Icw2 {
                    icw3: v & icw1::SINGLE == 0,
                    icw4: v & icw1::IC4 != 0,
                };
            }
            // OCW2 or OCW3: with nothing in service or requested, neither
            // changes anything the guest can observe.
            (0, _) => {}
            (1, Init::Icw2 { icw3, icw4 }) => {
                self.vector_base = v & 0xf8;
                self.init = match (icw3, icw4) {
                    (true, _) => Init::Icw3 { icw4 },
                    (false, true) => Init::Icw4,
                    (false, false) => Init::Ready,
                };
            }
            (1, Init::Icw3 { icw4 }) => {
                self.init = if icw4 { Init::Icw4 } else { Init::Ready };
            }
            (1, Init::Icw4) => self.init = Init::Ready,
            (1, Init::Ready) => self.mask = v,
            _ => return Err(DeviceError::BadOffset { offset }),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(p: &mut Pic8259, offset: u64, v: u8) {
        p.write(offset, Width::Byte, u64::from(v)).unwrap();
    }

    #[test]
    fn arceos_masks_everything() {
        let mut p = Pic8259::new("pic-master");
        out(&mut p, 1, 0xff);
        assert_eq!(p.read(1, Width::Byte), Ok(0xff));
        assert_eq!(p.read(0, Width::Byte), Ok(0));
        assert!(!p.irq_level());
    }

    #[test]
    fn linux_style_initialization_then_mask() {
        let mut p = Pic8259::new("pic-master");
        out(&mut p, 0, 0x11); // ICW1: init, cascade, ICW4 follows
        out(&mut p, 1, 0x30); // ICW2: vectors 0x30..0x37
        out(&mut p, 1, 0x04); // ICW3: slave on IR2
        out(&mut p, 1, 0x01); // ICW4: 8086 mode
        assert_eq!(p.vector_base(), 0x30);
        assert_eq!(p.read(1, Width::Byte), Ok(0), "ICW1 clears the mask");
        out(&mut p, 1, 0xfb); // OCW1: all but the cascade masked
        assert_eq!(p.mask(), 0xfb);
        out(
            &mut p,
            0,
            ocw3::SELECT | ocw3::READ_REGISTER | ocw3::READ_ISR,
        );
        assert_eq!(p.read(0, Width::Byte), Ok(0));
        out(&mut p, 0, 0x20); // OCW2: non-specific EOI
        assert_eq!(p.mask(), 0xfb);
    }

    #[test]
    fn single_mode_without_icw4_is_done_after_icw2() {
        let mut p = Pic8259::new("pic-slave");
        out(&mut p, 0, icw1::INIT | icw1::SINGLE);
        out(&mut p, 1, 0x28);
        out(&mut p, 1, 0xaa); // OCW1 now
        assert_eq!(p.mask(), 0xaa);
    }

    #[test]
    fn only_byte_accesses_at_two_ports() {
        let mut p = Pic8259::new("pic-master");
        assert_eq!(
            p.read(1, Width::Half),
            Err(DeviceError::BadWidth {
                offset: 1,
                width: Width::Half
            })
        );
        assert_eq!(
            p.write(2, Width::Byte, 0),
            Err(DeviceError::BadOffset { offset: 2 })
        );
    }
}
