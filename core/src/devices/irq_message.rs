//! An interrupt message: what an x86 I/O APIC sends a local APIC instead of
//! driving a wire (Intel SDM vol. 3A, 10.1 "Local and I/O APIC Overview";
//! the 82093AA datasheet, 3.2.4 "I/O Redirection Table Registers").
//!
//! Interrupt controllers that work this way hand messages out through
//! [`super::Device::take_message`]; the run loop gives each to the vCPU
//! (`runloop::Vcpu::deliver_message`), whose local APIC decides whether it
//! is a destination and accepts the vector. A level-triggered message is
//! ended by the local APIC's EOI broadcast, which comes back to the
//! controller through [`super::Device::end_of_interrupt`].

/// Delivery mode, redirection-entry bits 10:8 (the same encoding as the
/// local APIC's ICR and LVT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryMode {
    /// 000: the vector to every destination.
    Fixed,
    /// 001: the vector to the destination with the lowest priority.
    LowestPriority,
    /// 010: a system-management interrupt.
    Smi,
    /// 100: a non-maskable interrupt.
    Nmi,
    /// 101: INIT.
    Init,
    /// 111: the vector comes from an external 8259A (INTA cycle).
    ExtInt,
    /// 011 or 110: reserved.
    Reserved(u8),
}

impl DeliveryMode {
    /// The mode the three-bit field `bits` encodes.
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 7 {
            0 => DeliveryMode::Fixed,
            1 => DeliveryMode::LowestPriority,
            2 => DeliveryMode::Smi,
            4 => DeliveryMode::Nmi,
            5 => DeliveryMode::Init,
            7 => DeliveryMode::ExtInt,
            other => DeliveryMode::Reserved(other),
        }
    }
}

/// One interrupt message to the local APICs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptMessage {
    /// The vector.
    pub vector: u8,
    /// How it is delivered.
    pub delivery: DeliveryMode,
    /// Logical (true) or physical destination mode.
    pub logical: bool,
    /// The destination: an APIC ID (physical) or a set of logical IDs;
    /// 0xFF addresses every APIC.
    pub destination: u8,
    /// Level-triggered: the local APIC reports its EOI back.
    pub level: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_modes_decode_from_three_bits() {
        let modes: Vec<DeliveryMode> = (0..8).map(DeliveryMode::from_bits).collect();
        assert_eq!(
            modes,
            [
                DeliveryMode::Fixed,
                DeliveryMode::LowestPriority,
                DeliveryMode::Smi,
                DeliveryMode::Reserved(3),
                DeliveryMode::Nmi,
                DeliveryMode::Init,
                DeliveryMode::Reserved(6),
                DeliveryMode::ExtInt,
            ]
        );
        assert_eq!(DeliveryMode::from_bits(8), DeliveryMode::Fixed);
    }
}
