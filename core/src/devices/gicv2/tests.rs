extern crate alloc;

use alloc::boxed::Box;

use super::*;
use crate::addr::GuestPhysAddr;
use crate::devices::{Bus, MmioAccess};

fn d(off: u64) -> u64 {
    GICD_OFFSET + off
}
fn c(off: u64) -> u64 {
    GICC_OFFSET + off
}
fn rd(g: &mut Gicv2, off: u64) -> u32 {
    g.read(off, Width::Word).unwrap() as u32
}
fn wr(g: &mut Gicv2, off: u64, v: u32) {
    g.write(off, Width::Word, u64::from(v)).unwrap();
}
fn rd8(g: &mut Gicv2, off: u64) -> u8 {
    g.read(off, Width::Byte).unwrap() as u8
}
fn wr8(g: &mut Gicv2, off: u64, v: u8) {
    g.write(off, Width::Byte, u64::from(v)).unwrap();
}
/// The word of the bit-per-INTID register at `base` holding `id`, and its bit.
fn bit(base: u64, id: u32) -> (u64, u32) {
    (d(base + 4 * u64::from(id / 32)), 1 << (id % 32))
}
fn test_bit(g: &mut Gicv2, base: u64, id: u32) -> bool {
    let (off, mask) = bit(base, id);
    rd(g, off) & mask != 0
}
fn poke_bit(g: &mut Gicv2, base: u64, id: u32) {
    let (off, mask) = bit(base, id);
    wr(g, off, mask);
}
fn pending(g: &mut Gicv2, id: u32) -> bool {
    test_bit(g, gicd::ISPENDR, id)
}
fn active(g: &mut Gicv2, id: u32) -> bool {
    test_bit(g, gicd::ISACTIVER, id)
}
fn set_priority(g: &mut Gicv2, id: u32, p: u8) {
    wr8(g, d(gicd::IPRIORITYR + u64::from(id)), p);
}
fn iar(g: &mut Gicv2) -> u32 {
    rd(g, c(gicc::IAR))
}
fn eoi(g: &mut Gicv2, v: u32) {
    wr(g, c(gicc::EOIR), v);
}
fn rpr(g: &mut Gicv2) -> u32 {
    rd(g, c(gicc::RPR))
}
fn out(g: &Gicv2) -> bool {
    g.irq_output(IRQ_CONTEXT)
}

/// Distributor and CPU interface on (group 0), nothing masked by PMR.
fn ready() -> Gicv2 {
    let mut g = Gicv2::new();
    wr(&mut g, d(gicd::CTLR), ctlr::ENABLE_GRP0);
    wr(&mut g, c(gicc::CTLR), ctlr::ENABLE_GRP0);
    wr(&mut g, c(gicc::PMR), 0xff);
    g
}

/// `ready()` with `ids` enabled at priority `p`.
fn ready_with(ids: &[u32], p: u8) -> Gicv2 {
    let mut g = ready();
    for &id in ids {
        poke_bit(&mut g, gicd::ISENABLER, id);
        set_priority(&mut g, id, p);
    }
    g
}

fn make_edge(g: &mut Gicv2, id: u32) {
    let off = d(gicd::ICFGR + 4 * u64::from(id / 16));
    let v = rd(g, off) | 2 << (2 * (id % 16));
    wr(g, off, v);
}

#[test]
fn identification() {
    let mut g = Gicv2::new();
    let typer = rd(&mut g, d(gicd::TYPER));
    assert_eq!(typer, 2);
    assert_eq!((typer & 0x1f) + 1, NUM_INTIDS / 32, "ITLinesNumber");
    assert_eq!((typer >> 5) & 7, 0, "CPUNumber: one CPU interface");
    assert_eq!(typer & (1 << 10), 0, "no Security Extensions");
    assert_eq!(rd(&mut g, d(gicd::IIDR)), 0x0200_143b);
    assert_eq!(rd(&mut g, c(gicc::IIDR)), 0x0202_143b);
    let pidr2 = rd(&mut g, d(gicd::ICPIDR2));
    assert_eq!(pidr2, 0x2b);
    assert_eq!((pidr2 >> 4) & 0xf, 2, "architecture version 2");
    let cidr: alloc::vec::Vec<u32> = (0..4).map(|i| rd(&mut g, d(0xff0 + 4 * i))).collect();
    assert_eq!(cidr, [0x0d, 0xf0, 0x05, 0xb1]);
    assert_eq!(rd(&mut g, d(gicd::ICPIDR4)), 0x04);
}

#[test]
fn refused_accesses() {
    let mut g = Gicv2::new();
    for (off, width) in [
        (d(gicd::CTLR), Width::Byte),
        (d(gicd::ISENABLER), Width::Byte),
        (d(gicd::ICFGR + 8), Width::Byte),
        (d(gicd::IPRIORITYR), Width::Half),
        (d(gicd::ITARGETSR + 4), Width::Double),
        (d(gicd::IPRIORITYR + 1), Width::Word),
        (d(gicd::SGIR), Width::Byte),
        (c(gicc::IAR), Width::Byte),
        (c(gicc::PMR + 2), Width::Half),
    ] {
        assert_eq!(
            g.read(off, width),
            Err(DeviceError::BadWidth { offset: off, width }),
            "{off:#x}"
        );
    }
    for off in [
        d(0x00c),
        d(0x040),
        d(0xd00),
        d(0xd04),
        d(0xf04),
        d(0xf30),
        d(0xfcc),
        d(0x1000),
        d(0x8000),
        c(0x2c),
        c(0xcc),
        c(0x100),
        c(0x1004),
        c(0x2000),
        GIC_SIZE - 4,
    ] {
        assert_eq!(
            g.read(off, Width::Word),
            Err(DeviceError::BadOffset { offset: off }),
            "{off:#x}"
        );
    }
    for off in [
        d(gicd::TYPER),
        d(gicd::IIDR),
        d(gicd::ICPIDR2),
        c(gicc::IAR),
        c(gicc::RPR),
        c(gicc::HPPIR),
        c(gicc::AIAR),
        c(gicc::IIDR),
    ] {
        assert_eq!(
            g.write(off, Width::Word, 0),
            Err(DeviceError::ReadOnly { offset: off }),
            "{off:#x}"
        );
    }
    // Write-only registers read as zero.
    for off in [d(gicd::SGIR), c(gicc::EOIR), c(gicc::AEOIR), c(gicc::DIR)] {
        assert_eq!(rd(&mut g, off), 0, "{off:#x}");
    }
}

#[test]
fn registers_read_back() {
    let mut g = Gicv2::new();
    wr(&mut g, d(gicd::CTLR), 0xffff_ffff);
    assert_eq!(rd(&mut g, d(gicd::CTLR)), 3);

    // Priorities: all 8 bits, as words or bytes; RAZ/WI past INTID 95.
    let prio = d(gicd::IPRIORITYR + 40);
    wr(&mut g, prio, 0x1234_5678);
    assert_eq!(rd(&mut g, prio), 0x1234_5678);
    assert_eq!(rd8(&mut g, prio + 1), 0x56);
    wr8(&mut g, prio + 2, 0xff);
    assert_eq!(rd(&mut g, prio), 0x12ff_5678);
    for off in [d(gicd::IPRIORITYR + 96), d(0x7fc)] {
        wr(&mut g, off, 0xffff_ffff);
        assert_eq!(rd(&mut g, off), 0, "{off:#x}");
    }

    // Targets: SGIs and PPIs read CPU 0 and ignore writes; SPIs keep bit 0.
    for off in [d(gicd::ITARGETSR), d(gicd::ITARGETSR + 28)] {
        wr(&mut g, off, 0xffff_ffff);
        assert_eq!(rd(&mut g, off), 0x0101_0101, "{off:#x}");
    }
    let spi = d(gicd::ITARGETSR + 32);
    assert_eq!(rd(&mut g, spi), 0x0101_0101, "SPIs target CPU 0 at reset");
    wr(&mut g, spi, 0x0302_ff00);
    assert_eq!(rd(&mut g, spi), 0x0100_0100);
    wr8(&mut g, spi + 1, 0x01);
    assert_eq!(rd8(&mut g, spi + 1), 0x01);
    assert_eq!(rd(&mut g, d(gicd::ITARGETSR + 96)), 0);

    // Trigger configuration: SGIs edge and PPIs level, both fixed; SPIs
    // keep Int_config[1] only.
    for (n, want) in [(0, 0xaaaa_aaaa), (1, 0)] {
        let off = d(gicd::ICFGR + 4 * n);
        wr(&mut g, off, !want);
        assert_eq!(rd(&mut g, off), want, "ICFGR{n}");
    }
    wr(&mut g, d(gicd::ICFGR + 8), 0xffff_ffff);
    assert_eq!(rd(&mut g, d(gicd::ICFGR + 8)), 0xaaaa_aaaa);
    wr(&mut g, d(gicd::ICFGR + 0x18), 0xffff_ffff);
    assert_eq!(rd(&mut g, d(gicd::ICFGR + 0x18)), 0, "INTIDs 96.. RAZ");

    // Groups are storage; NSACR is RAZ/WI.
    wr(&mut g, d(gicd::IGROUPR + 4), 0xdead_beef);
    assert_eq!(rd(&mut g, d(gicd::IGROUPR + 4)), 0xdead_beef);
    wr(&mut g, d(gicd::IGROUPR + 12), 0xffff_ffff);
    assert_eq!(rd(&mut g, d(gicd::IGROUPR + 12)), 0);
    wr(&mut g, d(gicd::NSACR), 0xffff_ffff);
    assert_eq!(rd(&mut g, d(gicd::NSACR)), 0);

    // CPU interface.
    wr(&mut g, c(gicc::CTLR), 0xffff_ffff);
    assert_eq!(rd(&mut g, c(gicc::CTLR)), 0x3f7, "all but FIQEn");
    wr(&mut g, c(gicc::PMR), 0x1ab);
    assert_eq!(rd(&mut g, c(gicc::PMR)), 0xab, "8 priority bits");
    assert_eq!(rd(&mut g, c(gicc::BPR)), 0);
    assert_eq!(rd(&mut g, c(gicc::ABPR)), 1);
    wr(&mut g, c(gicc::BPR), 0xff);
    assert_eq!(rd(&mut g, c(gicc::BPR)), 7);
    wr(&mut g, c(gicc::ABPR), 0);
    assert_eq!(rd(&mut g, c(gicc::ABPR)), 1, "minimum group-1 binary point");
    wr(&mut g, c(gicc::NSAPR), 0xffff_ffff);
    assert_eq!(rd(&mut g, c(gicc::NSAPR)), 0);
    assert_eq!(rpr(&mut g), 0xff, "idle");
    assert_eq!(rd(&mut g, c(gicc::HPPIR)), SPURIOUS);
    // Active priorities are storage that sets the running priority.
    wr(&mut g, c(gicc::APR + 4), 1 << 3);
    assert_eq!(rd(&mut g, c(gicc::APR + 4)), 1 << 3);
    assert_eq!(rpr(&mut g), (32 + 3) * 2);
}

#[test]
fn enable_and_disable() {
    let mut g = ready();
    assert_eq!(
        rd(&mut g, d(gicd::ISENABLER)),
        0xffff,
        "SGIs enabled at reset"
    );
    assert_eq!(rd(&mut g, d(gicd::ISENABLER + 4)), 0);
    set_priority(&mut g, 40, 0x80);
    g.set_irq_source(40, true);
    assert!(pending(&mut g, 40));
    assert!(!out(&g), "pending but disabled");
    poke_bit(&mut g, gicd::ISENABLER, 40);
    assert!(test_bit(&mut g, gicd::ISENABLER, 40));
    assert!(test_bit(&mut g, gicd::ICENABLER, 40));
    assert!(out(&g));
    poke_bit(&mut g, gicd::ICENABLER, 40);
    assert!(!test_bit(&mut g, gicd::ISENABLER, 40));
    assert!(!out(&g));
    assert!(pending(&mut g, 40), "disabling keeps the pending state");
    assert_eq!(iar(&mut g), SPURIOUS);
    // SGI enables are programmable.
    wr(&mut g, d(gicd::ICENABLER), 0xffff_ffff);
    assert_eq!(rd(&mut g, d(gicd::ISENABLER)), 0);
    // Words past INTID 95 are RAZ/WI.
    wr(&mut g, d(gicd::ISENABLER + 12), 0xffff_ffff);
    assert_eq!(rd(&mut g, d(gicd::ISENABLER + 12)), 0);
}

#[test]
fn pmr_masks_priorities() {
    let mut g = ready_with(&[40], 0x80);
    wr(&mut g, c(gicc::PMR), 0);
    g.set_irq_source(40, true);
    assert!(!out(&g), "PMR 0 masks everything");
    assert_eq!(rd(&mut g, c(gicc::HPPIR)), SPURIOUS);
    wr(&mut g, c(gicc::PMR), 0x80);
    assert!(!out(&g), "the priority must be below the mask");
    assert_eq!(iar(&mut g), SPURIOUS);
    assert!(!active(&mut g, 40));
    wr(&mut g, c(gicc::PMR), 0x81);
    assert!(out(&g));
    assert_eq!(rd(&mut g, c(gicc::HPPIR)), 40);
    assert_eq!(iar(&mut g), 40);
}

#[test]
fn level_interrupt_state_machine() {
    let mut g = ready_with(&[40], 0x80);
    // A line that drops before the acknowledge withdraws the request.
    g.set_irq_source(40, true);
    assert!(out(&g));
    g.set_irq_source(40, false);
    assert!(!out(&g));
    assert!(!pending(&mut g, 40));

    g.set_irq_source(40, true);
    assert_eq!(iar(&mut g), 40);
    // Still high: active and pending, and not signalled while active.
    assert!(active(&mut g, 40));
    assert!(pending(&mut g, 40));
    assert!(!out(&g));
    assert_eq!(rd(&mut g, c(gicc::HPPIR)), SPURIOUS);
    assert_eq!(rpr(&mut g), 0x80);
    // Clear-pending cannot withdraw a high level line.
    poke_bit(&mut g, gicd::ICPENDR, 40);
    assert!(pending(&mut g, 40));
    // EOI with the line still high: pending again at once.
    eoi(&mut g, 40);
    assert!(!active(&mut g, 40));
    assert_eq!(rpr(&mut g), 0xff);
    assert!(out(&g));
    assert_eq!(iar(&mut g), 40);
    // The handler quiets the device: EOI leaves it idle.
    g.set_irq_source(40, false);
    assert!(!pending(&mut g, 40));
    assert!(active(&mut g, 40));
    eoi(&mut g, 40);
    assert!(!active(&mut g, 40));
    assert!(!out(&g));
    assert_eq!(iar(&mut g), SPURIOUS);
    // Set-pending latches a level interrupt until acknowledged.
    poke_bit(&mut g, gicd::ISPENDR, 40);
    assert!(out(&g));
    assert_eq!(iar(&mut g), 40);
    assert!(!pending(&mut g, 40));
    eoi(&mut g, 40);
    assert!(!out(&g));
}

#[test]
fn edge_interrupt_state_machine() {
    let mut g = ready_with(&[50, 51], 0x80);
    make_edge(&mut g, 50);
    assert_eq!(rd(&mut g, d(gicd::ICFGR + 12)), 2 << 4);
    g.set_irq_source(50, true);
    assert!(pending(&mut g, 50));
    // The level no longer counts: dropping it keeps the latched edge.
    g.set_irq_source(50, false);
    assert!(pending(&mut g, 50));
    g.set_irq_source(50, true);
    assert_eq!(iar(&mut g), 50);
    assert!(
        !pending(&mut g, 50),
        "acknowledged although the line is high"
    );
    // A new edge while active: active and pending, signalled after EOI.
    g.set_irq_source(50, false);
    g.set_irq_source(50, true);
    assert!(pending(&mut g, 50) && active(&mut g, 50));
    assert!(!out(&g));
    eoi(&mut g, 50);
    assert!(out(&g));
    assert_eq!(iar(&mut g), 50);
    eoi(&mut g, 50);
    // The line stays high, but with no new edge nothing is pending.
    assert!(!out(&g));
    assert_eq!(iar(&mut g), SPURIOUS);
    // Clear-pending withdraws a latched edge.
    g.set_irq_source(50, false);
    g.set_irq_source(50, true);
    poke_bit(&mut g, gicd::ICPENDR, 50);
    assert!(!pending(&mut g, 50));

    // A level SPI whose high line is reconfigured as edge stops pending:
    // no edge was seen as an edge.
    g.set_irq_source(51, true);
    assert!(pending(&mut g, 51));
    make_edge(&mut g, 51);
    assert!(!pending(&mut g, 51));
    assert!(!out(&g));
}

#[test]
fn preemption_and_running_priority() {
    let mut g = ready_with(&[40, 41, 42], 0);
    set_priority(&mut g, 40, 0x80);
    set_priority(&mut g, 41, 0x40);
    set_priority(&mut g, 42, 0xa0);
    g.set_irq_source(40, true);
    assert_eq!(iar(&mut g), 40);
    g.set_irq_source(40, false);
    assert_eq!(rpr(&mut g), 0x80);
    assert_eq!(rd(&mut g, c(gicc::APR + 8)), 1, "level 0x80 / 2 = 64");
    // A higher priority preempts.
    g.set_irq_source(41, true);
    assert!(out(&g));
    assert_eq!(iar(&mut g), 41);
    g.set_irq_source(41, false);
    assert_eq!(rpr(&mut g), 0x40);
    // A lower one waits, though HPPIR shows it.
    g.set_irq_source(42, true);
    assert!(!out(&g));
    assert_eq!(rd(&mut g, c(gicc::HPPIR)), 42);
    assert_eq!(iar(&mut g), SPURIOUS);
    assert!(!active(&mut g, 42));
    // EOIs unwind in order.
    eoi(&mut g, 41);
    assert_eq!(rpr(&mut g), 0x80);
    assert!(!out(&g));
    eoi(&mut g, 40);
    assert_eq!(rpr(&mut g), 0xff);
    assert_eq!(rd(&mut g, c(gicc::APR + 8)), 0);
    assert!(out(&g));
    assert_eq!(iar(&mut g), 42);
}

#[test]
fn binary_point_sets_group_priority() {
    let mut g = ready_with(&[40, 41, 42], 0);
    // BPR 3: group priority is bits [7:4].
    wr(&mut g, c(gicc::BPR), 3);
    set_priority(&mut g, 40, 0x48);
    set_priority(&mut g, 41, 0x44);
    set_priority(&mut g, 42, 0x30);
    g.set_irq_source(40, true);
    assert_eq!(iar(&mut g), 40);
    assert_eq!(rpr(&mut g), 0x40);
    assert_eq!(rd(&mut g, c(gicc::APR + 4)), 1, "level 0x40 / 2 = 32");
    // Same group priority: no preemption, however the sub-priority compares.
    g.set_irq_source(41, true);
    assert!(!out(&g));
    assert_eq!(iar(&mut g), SPURIOUS);
    g.set_irq_source(42, true);
    assert!(out(&g));
    assert_eq!(iar(&mut g), 42);
    assert_eq!(rpr(&mut g), 0x30);
}

#[test]
fn sgis_carry_their_source_cpu() {
    let mut g = ready();
    // Self-SGI (filter 2): the source, CPU 0, is in IAR bits [12:10].
    wr(&mut g, d(gicd::SGIR), 2 << 24 | 5);
    assert!(pending(&mut g, 5));
    assert_eq!(rd8(&mut g, d(gicd::SPENDSGIR + 5)), 0x01);
    assert!(out(&g));
    let v = iar(&mut g);
    assert_eq!((v & 0x3ff, v >> 10), (5, 0));
    assert!(active(&mut g, 5) && !pending(&mut g, 5));
    eoi(&mut g, v);
    assert!(!active(&mut g, 5));
    // Filter 0 reaches CPU 0 only through bit 0 of the target list;
    // "all but self" and the reserved filter reach nobody.
    for (value, lands) in [
        (1 << 16 | 6, true),
        (2 << 16 | 7, false),
        (1 << 24 | 0xff << 16 | 8, false),
        (3 << 24 | 9, false),
    ] {
        wr(&mut g, d(gicd::SGIR), value);
        let sgi = value & 0xf;
        assert_eq!(pending(&mut g, sgi), lands, "{value:#x}");
    }
    wr(&mut g, d(gicd::CPENDSGIR + 4), 0xffff_ffff);
    assert!(!pending(&mut g, 6));
    // SGI bits of ISPENDR are WI.
    wr(&mut g, d(gicd::ISPENDR), 0xffff);
    assert_eq!(rd(&mut g, d(gicd::ISPENDR)), 0);

    // Pending from sources 1 and 3 (as another CPU's SGIR would leave
    // it): the lowest source first, the other stays pending.
    wr8(&mut g, d(gicd::SPENDSGIR + 3), 0x0a);
    assert_eq!(rd(&mut g, d(gicd::SPENDSGIR)), 0x0a00_0000);
    assert_eq!(rd(&mut g, c(gicc::HPPIR)), 3 | 1 << 10);
    assert_eq!(iar(&mut g), 3 | 1 << 10);
    assert!(active(&mut g, 3) && pending(&mut g, 3));
    assert_eq!(rd8(&mut g, d(gicd::SPENDSGIR + 3)), 0x08);
    assert!(!out(&g), "active and pending waits");
    eoi(&mut g, 3 | 1 << 10);
    assert_eq!(iar(&mut g), 3 | 3 << 10);
    eoi(&mut g, 3 | 3 << 10);
    assert_eq!(iar(&mut g), SPURIOUS);
    // Clear-pending by source.
    wr8(&mut g, d(gicd::SPENDSGIR + 2), 0x81);
    wr8(&mut g, d(gicd::CPENDSGIR + 2), 0x01);
    assert_eq!(rd8(&mut g, d(gicd::CPENDSGIR + 2)), 0x80);
    // A disabled SGI stays pending but is not signalled.
    poke_bit(&mut g, gicd::ICENABLER, 2);
    assert!(pending(&mut g, 2));
    assert!(!out(&g));
}

#[test]
fn spurious_when_nothing_can_be_taken() {
    let mut g = ready_with(&[40], 0x80);
    assert_eq!(iar(&mut g), SPURIOUS);
    // EOI of the spurious INTID, or with nothing active, is ignored.
    eoi(&mut g, SPURIOUS);
    poke_bit(&mut g, gicd::ISACTIVER, 40);
    eoi(&mut g, 40);
    assert!(active(&mut g, 40), "no priority to drop: ignored");
    poke_bit(&mut g, gicd::ICACTIVER, 40);
    g.set_irq_source(40, true);
    // Distributor off.
    wr(&mut g, d(gicd::CTLR), 0);
    assert!(!out(&g));
    assert_eq!(iar(&mut g), SPURIOUS);
    // CPU interface off.
    wr(&mut g, d(gicd::CTLR), 1);
    wr(&mut g, c(gicc::CTLR), 0);
    assert!(!out(&g));
    assert_eq!(iar(&mut g), SPURIOUS);
    assert!(pending(&mut g, 40) && !active(&mut g, 40));
    // Targeting no CPU.
    wr(&mut g, c(gicc::CTLR), 1);
    assert!(out(&g));
    wr8(&mut g, d(gicd::ITARGETSR + 40), 0);
    assert!(!out(&g));
    assert_eq!(iar(&mut g), SPURIOUS);
    wr8(&mut g, d(gicd::ITARGETSR + 40), 1);
    assert_eq!(iar(&mut g), 40);
}

#[test]
fn split_priority_drop_and_deactivation() {
    let mut g = ready_with(&[40], 0x80);
    // DIR does nothing in EOImode 0.
    g.set_irq_source(40, true);
    assert_eq!(iar(&mut g), 40);
    wr(&mut g, c(gicc::DIR), 40);
    assert!(active(&mut g, 40));
    eoi(&mut g, 40);
    assert!(!active(&mut g, 40));

    wr(&mut g, c(gicc::CTLR), ctlr::ENABLE_GRP0 | ctlr::EOI_MODE);
    assert_eq!(iar(&mut g), 40);
    eoi(&mut g, 40);
    // Priority dropped, still active: the high line waits for DIR.
    assert_eq!(rpr(&mut g), 0xff);
    assert!(active(&mut g, 40));
    assert!(!out(&g));
    wr(&mut g, c(gicc::DIR), 40);
    assert!(!active(&mut g, 40));
    assert!(out(&g));
}

#[test]
fn group1_and_the_aliased_registers() {
    let mut g = ready_with(&[40, 41], 0x80);
    poke_bit(&mut g, gicd::IGROUPR, 40);
    g.set_irq_source(40, true);
    // Group 1 needs EnableGrp1 in both control registers.
    assert!(!out(&g));
    wr(&mut g, d(gicd::CTLR), 3);
    assert!(!out(&g));
    wr(&mut g, c(gicc::CTLR), 3);
    assert!(out(&g));
    // Without AckCtl, IAR does not acknowledge group 1.
    assert_eq!(rd(&mut g, c(gicc::HPPIR)), SPURIOUS_GROUP1);
    assert_eq!(iar(&mut g), SPURIOUS_GROUP1);
    assert!(!active(&mut g, 40));
    assert_eq!(rd(&mut g, c(gicc::AHPPIR)), 40);
    assert_eq!(rd(&mut g, c(gicc::AIAR)), 40);
    assert!(active(&mut g, 40));
    // AEOIR ignores group 0 INTIDs.
    wr(&mut g, c(gicc::AEOIR), 41);
    assert_eq!(rpr(&mut g), 0x80);
    wr(&mut g, c(gicc::AEOIR), 40);
    assert_eq!(rpr(&mut g), 0xff);
    assert!(!active(&mut g, 40));
    // With AckCtl, IAR takes it; group 1 uses ABPR for its group priority.
    wr(&mut g, c(gicc::CTLR), 3 | ctlr::ACK_CTL);
    wr(&mut g, c(gicc::ABPR), 4);
    set_priority(&mut g, 40, 0x5c);
    assert_eq!(iar(&mut g), 40);
    assert_eq!(rpr(&mut g), 0x50);
    eoi(&mut g, 40);
    // CBPR: GICC_BPR for both groups.
    wr(&mut g, c(gicc::CTLR), 3 | ctlr::ACK_CTL | ctlr::CBPR);
    assert_eq!(iar(&mut g), 40);
    assert_eq!(rpr(&mut g), 0x5c);
    eoi(&mut g, 40);
    // AIAR sees group 1 only.
    g.set_irq_source(40, false);
    g.set_irq_source(41, true);
    assert_eq!(rd(&mut g, c(gicc::AHPPIR)), SPURIOUS);
    assert_eq!(rd(&mut g, c(gicc::AIAR)), SPURIOUS);
    assert_eq!(iar(&mut g), 41);
}

#[test]
fn timer_ppis() {
    let mut g = ready_with(&[VTIMER_PPI, PTIMER_PPI], 0xa0);
    g.set_irq_source(PTIMER_PPI, true);
    g.set_irq_source(VTIMER_PPI, true);
    assert_eq!(rd(&mut g, d(gicd::ISPENDR)), 1 << 27 | 1 << 30);
    assert_eq!(rd(&mut g, d(gicd::ICFGR + 4)), 0, "PPIs level-sensitive");
    // Equal priorities: the lower INTID first.
    assert_eq!(iar(&mut g), VTIMER_PPI);
    // The handler reprograms the timer: its line drops.
    g.set_irq_source(VTIMER_PPI, false);
    eoi(&mut g, VTIMER_PPI);
    assert_eq!(iar(&mut g), PTIMER_PPI);
    eoi(&mut g, PTIMER_PPI);
    // Still high: pending again, and masked by disabling it.
    assert!(out(&g));
    poke_bit(&mut g, gicd::ICENABLER, PTIMER_PPI);
    assert!(!out(&g));
    g.set_irq_source(PTIMER_PPI, false);
    assert_eq!(rd(&mut g, d(gicd::ISPENDR)), 0);
    // SGIs and INTIDs past the last SPI have no line.
    for source in [0, 5, 15, NUM_INTIDS, 1023] {
        g.set_irq_source(source, true);
    }
    for w in 0..3 {
        assert_eq!(rd(&mut g, d(gicd::ISPENDR + 4 * w)), 0);
    }
}

#[test]
fn linux_style_setup() {
    let mut g = Gicv2::new();
    let irqs = (rd(&mut g, d(gicd::TYPER)) & 0x1f) + 1;
    assert_eq!(irqs * 32, 96);
    // gic_dist_init
    wr(&mut g, d(gicd::CTLR), 0);
    let mut mask = 0;
    for i in (0..32).step_by(4) {
        let m = rd(&mut g, d(gicd::ITARGETSR + i));
        let m = m | m >> 16;
        let m = m | m >> 8;
        if m != 0 {
            mask = m & 0xff;
            break;
        }
    }
    assert_eq!(mask, 0x01, "the CPU mask Linux learns");
    for id in (32..96).step_by(4) {
        wr(&mut g, d(gicd::ITARGETSR + id), 0x0101_0101);
        wr(&mut g, d(gicd::IPRIORITYR + id), 0xa0a0_a0a0);
    }
    for id in (32..96).step_by(16) {
        wr(&mut g, d(gicd::ICFGR + id / 4), 0);
    }
    for id in (32..96).step_by(32) {
        wr(&mut g, d(gicd::ICACTIVER + id / 8), 0xffff_ffff);
        wr(&mut g, d(gicd::ICENABLER + id / 8), 0xffff_ffff);
    }
    wr(&mut g, d(gicd::CTLR), 1);
    // gic_cpu_init
    wr(&mut g, d(gicd::ICACTIVER), 0xffff_ffff);
    wr(&mut g, d(gicd::ICENABLER), 0xffff_0000);
    wr(&mut g, d(gicd::ISENABLER), 0x0000_ffff);
    for id in (0..32).step_by(4) {
        wr(&mut g, d(gicd::IPRIORITYR + id), 0xa0a0_a0a0);
    }
    wr(&mut g, c(gicc::PMR), 0xf0);
    let bypass = rd(&mut g, c(gicc::CTLR)) & 0x1e0;
    wr(&mut g, c(gicc::CTLR), bypass | 1);
    // gic_set_type(IRQ_TYPE_LEVEL_HIGH) on an SPI: unchanged, no write.
    assert_eq!(rd(&mut g, d(gicd::ICFGR + 8)) & 2 << 2, 0);

    // The virtual timer: unmask, fire, handle (the IAR loop), quiet.
    poke_bit(&mut g, gicd::ISENABLER, VTIMER_PPI);
    g.set_irq_source(VTIMER_PPI, true);
    assert!(out(&g));
    let stat = iar(&mut g);
    assert_eq!(stat, VTIMER_PPI);
    g.set_irq_source(VTIMER_PPI, false);
    eoi(&mut g, stat);
    assert!(iar(&mut g) >= 1020);
    // A self-IPI through the learnt mask.
    wr(&mut g, d(gicd::SGIR), mask << 16 | 1);
    assert!(out(&g));
    let stat = iar(&mut g);
    assert_eq!(stat, 1);
    eoi(&mut g, stat);
    assert!(!out(&g));
}

/// A device whose interrupt line is the last value written to it.
struct Line(bool);

impl Device for Line {
    fn name(&self) -> &'static str {
        "line"
    }
    fn read(&mut self, _: u64, _: Width) -> Result<u64, DeviceError> {
        Ok(u64::from(self.0))
    }
    fn write(&mut self, _: u64, _: Width, value: u64) -> Result<(), DeviceError> {
        self.0 = value != 0;
        Ok(())
    }
    fn irq_level(&self) -> bool {
        self.0
    }
}

struct Rig {
    bus: Bus,
}

const LINE: u64 = 0x0900_0000;

impl Rig {
    fn new() -> Self {
        let mut bus = Bus::new();
        let gic = bus
            .add(
                GuestPhysAddr::new(VIRT_BASE),
                GIC_SIZE,
                Box::new(Gicv2::new()),
                None,
            )
            .unwrap();
        bus.set_irq_chip(gic).unwrap();
        // The PL011's place on `virt`: SPI 1.
        bus.add(
            GuestPhysAddr::new(LINE),
            0x1000,
            Box::new(Line(false)),
            Some(33),
        )
        .unwrap();
        Rig { bus }
    }
    fn access(&mut self, addr: u64, width: Width, value: Option<u32>) -> u32 {
        let addr = GuestPhysAddr::new(addr);
        let a = match value {
            Some(v) => MmioAccess::write(addr, width, u64::from(v)),
            None => MmioAccess::read(addr, width),
        };
        self.bus.access(&a).unwrap() as u32
    }
    fn gicd_r(&mut self, off: u64) -> u32 {
        self.access(VIRT_BASE + off, Width::Word, None)
    }
    fn gicd_w(&mut self, off: u64, v: u32) {
        self.access(VIRT_BASE + off, Width::Word, Some(v));
    }
    fn gicd_w8(&mut self, off: u64, v: u8) {
        self.access(VIRT_BASE + off, Width::Byte, Some(u32::from(v)));
    }
    fn gicc_r(&mut self, off: u64) -> u32 {
        self.access(VIRT_BASE + GICC_OFFSET + off, Width::Word, None)
    }
    fn gicc_w(&mut self, off: u64, v: u32) {
        self.access(VIRT_BASE + GICC_OFFSET + off, Width::Word, Some(v));
    }
    fn line(&mut self, high: bool) {
        self.access(LINE, Width::Word, Some(u32::from(high)));
    }
    fn irq(&self) -> bool {
        self.bus.external_irq(IRQ_CONTEXT)
    }
}

/// The ArceOS sequence (`arm-gic-driver` 0.15 under
/// `axplat-aarch64-peripherals`), then the PL011's SPI through the bus.
#[test]
fn spi33_through_the_bus() {
    let mut rig = Rig::new();
    // Gic::init
    let v = rig.gicd_r(gicd::CTLR) & !3;
    rig.gicd_w(gicd::CTLR, v);
    let lines = ((rig.gicd_r(gicd::TYPER) & 0x1f) + 1) * 32;
    for w in 0..u64::from(lines / 32) {
        for base in [gicd::ICENABLER, gicd::ICPENDR, gicd::ICACTIVER] {
            rig.gicd_w(base + 4 * w, 0xffff_ffff);
        }
        rig.gicd_w(gicd::IGROUPR + 4 * w, 0);
    }
    for i in 8..24 {
        rig.gicd_w8(gicd::ITARGETSR + i, 0x01);
    }
    for w in 0..u64::from(lines / 16) {
        rig.gicd_w(gicd::ICFGR + 4 * w, 0);
    }
    let v = rig.gicd_r(gicd::CTLR) | 3;
    rig.gicd_w(gicd::CTLR, v);
    // init_current_cpu, set_eoi_mode_ns(false)
    rig.gicc_w(gicc::CTLR, 0);
    rig.gicc_w(gicc::PMR, 0xff);
    rig.gicc_w(gicc::CTLR, 1);
    for id in 0..32 {
        rig.gicd_w8(gicd::IPRIORITYR + id, 0xa0);
    }
    let v = rig.gicc_r(gicc::CTLR) & !ctlr::EOI_MODE;
    rig.gicc_w(gicc::CTLR, v);
    // set_enable(33): enable, then edge-triggered.
    rig.gicd_w(gicd::ISENABLER + 4, 1 << 1);
    let v = rig.gicd_r(gicd::ICFGR + 8) | 1 << 3;
    rig.gicd_w(gicd::ICFGR + 8, v);
    assert!(!rig.irq());

    // The UART raises its line: the vCPU's IRQ follows.
    rig.line(true);
    assert!(rig.irq());
    // handle_irq: acknowledge, the driver drains the UART, EOI.
    assert_eq!(rig.gicc_r(gicc::IAR), 33);
    assert!(!rig.irq());
    rig.line(false);
    if rig.gicc_r(gicc::CTLR) & ctlr::EOI_MODE != 0 {
        rig.gicc_w(gicc::DIR, 33);
    }
    rig.gicc_w(gicc::EOIR, 33);
    assert!(!rig.irq());
    assert_eq!(rig.gicd_r(gicd::ISACTIVER + 4), 0);
    // Next byte: a new edge.
    rig.line(true);
    assert!(rig.irq());
    assert_eq!(rig.gicd_r(gicd::ISPENDR + 4), 1 << 1);
    // Disabled at the distributor: the vCPU line drops, the edge is kept.
    rig.gicd_w(gicd::ICENABLER + 4, 1 << 1);
    assert!(!rig.irq());
    rig.line(false);
    rig.gicd_w(gicd::ISENABLER + 4, 1 << 1);
    assert!(rig.irq());
    assert_eq!(rig.gicc_r(gicc::IAR), 33);
    rig.gicc_w(gicc::EOIR, 33);
    assert!(!rig.irq());
    // The bus reports refused accesses with the device offset.
    let a = MmioAccess::read(
        GuestPhysAddr::new(VIRT_BASE + GICC_OFFSET + 0x30),
        Width::Word,
    );
    assert_eq!(
        rig.bus.access(&a),
        Err(crate::devices::BusError::Device {
            device: "gicv2",
            addr: GuestPhysAddr::new(VIRT_BASE + GICC_OFFSET + 0x30),
            error: DeviceError::BadOffset {
                offset: GICC_OFFSET + 0x30
            },
        })
    );
}

// SMP: several CPU interfaces, banked SGIs and PPIs, SPI targets, SGIR.

/// `g` with CPU `cpu` selected: the accesses that follow are its.
fn on(g: &mut Gicv2, cpu: usize) -> &mut Gicv2 {
    g.select_cpu(cpu);
    g
}

/// `n` CPUs, the distributor and every CPU interface on (group 0), nothing
/// masked by PMR; CPU 0 selected.
fn ready_smp(n: usize) -> Gicv2 {
    let mut g = Gicv2::with_cpus(n);
    wr(&mut g, d(gicd::CTLR), ctlr::ENABLE_GRP0);
    for cpu in 0..n {
        wr(on(&mut g, cpu), c(gicc::CTLR), ctlr::ENABLE_GRP0);
        wr(&mut g, c(gicc::PMR), 0xff);
    }
    g.select_cpu(0);
    g
}

/// The CPUs (as a bit mask) whose IRQ line is up.
fn lines_up(g: &Gicv2) -> u32 {
    (0..MAX_CPUS)
        .filter(|&cpu| g.irq_output(cpu))
        .fold(0, |m, cpu| m | 1 << cpu)
}

#[test]
fn typer_counts_the_cpu_interfaces() {
    for n in 1..=MAX_CPUS {
        let mut g = Gicv2::with_cpus(n);
        assert_eq!(g.cpus(), n);
        let typer = rd(&mut g, d(gicd::TYPER));
        assert_eq!((typer >> 5) & 7, n as u32 - 1, "CPUNumber of {n}");
        assert_eq!(typer & 0x1f, 2, "ITLinesNumber");
    }
    assert_eq!(Gicv2::new().cpus(), 1);
}

#[test]
#[should_panic(expected = "1 to 8 CPUs")]
fn no_gic_without_a_cpu() {
    let _ = Gicv2::with_cpus(0);
}

#[test]
#[should_panic(expected = "1 to 8 CPUs")]
fn no_gic_with_nine_cpus() {
    let _ = Gicv2::with_cpus(9);
}

#[test]
fn select_cpu_ignores_absent_cpus() {
    let mut g = Gicv2::with_cpus(2);
    assert_eq!(rd8(&mut g, d(gicd::ITARGETSR)), 0x01, "CPU 0 at first");
    assert_eq!(rd8(on(&mut g, 1), d(gicd::ITARGETSR)), 0x02);
    assert_eq!(rd8(on(&mut g, 2), d(gicd::ITARGETSR)), 0x02, "still CPU 1");
    assert!(!g.irq_output(2) && !g.irq_output(8));
}

#[test]
fn sgi_and_ppi_enables_priorities_and_state_are_banked() {
    let mut g = Gicv2::with_cpus(3);
    // CPU 0 enables its virtual timer PPI and sets its priority.
    poke_bit(on(&mut g, 0), gicd::ISENABLER, VTIMER_PPI);
    set_priority(&mut g, VTIMER_PPI, 0x40);
    wr(&mut g, d(gicd::ICENABLER), 0x0000_0001);
    assert_eq!(rd(&mut g, d(gicd::ISENABLER)), 0x0800_fffe);
    // CPU 1 sees its own reset state, and has its own copy to program.
    assert_eq!(rd(on(&mut g, 1), d(gicd::ISENABLER)), 0xffff);
    assert_eq!(rd8(&mut g, d(gicd::IPRIORITYR + 27)), 0);
    set_priority(&mut g, VTIMER_PPI, 0x80);
    wr(&mut g, d(gicd::IPRIORITYR), 0x1122_3344);
    poke_bit(&mut g, gicd::IGROUPR, 3);
    poke_bit(&mut g, gicd::ISACTIVER, 4);
    assert_eq!(rd8(on(&mut g, 0), d(gicd::IPRIORITYR + 27)), 0x40);
    assert_eq!(rd(&mut g, d(gicd::IPRIORITYR)), 0);
    assert_eq!(rd(&mut g, d(gicd::IGROUPR)), 0);
    assert_eq!(rd(&mut g, d(gicd::ISACTIVER)), 0);
    assert_eq!(rd(on(&mut g, 1), d(gicd::IPRIORITYR)), 0x1122_3344);
    assert_eq!(rd(&mut g, d(gicd::IGROUPR)), 1 << 3);
    assert_eq!(rd(&mut g, d(gicd::ICACTIVER)), 1 << 4);
    assert_eq!(rd(on(&mut g, 2), d(gicd::ISENABLER)), 0xffff);
    // SPIs are shared: enabled, prioritised and activated once for all.
    poke_bit(on(&mut g, 2), gicd::ISENABLER, 40);
    set_priority(&mut g, 40, 0x60);
    poke_bit(&mut g, gicd::ISACTIVER, 41);
    for cpu in 0..3 {
        let g = on(&mut g, cpu);
        assert!(test_bit(g, gicd::ISENABLER, 40), "CPU {cpu}");
        assert_eq!(rd8(g, d(gicd::IPRIORITYR + 40)), 0x60, "CPU {cpu}");
        assert!(active(g, 41), "CPU {cpu}");
    }
}

#[test]
fn each_cpu_has_its_own_cpu_interface() {
    let mut g = Gicv2::with_cpus(2);
    wr(&mut g, d(gicd::CTLR), ctlr::ENABLE_GRP0);
    // CPU 1's interface on, CPU 0's left off.
    wr(
        on(&mut g, 1),
        c(gicc::CTLR),
        ctlr::ENABLE_GRP0 | ctlr::EOI_MODE,
    );
    wr(&mut g, c(gicc::PMR), 0xf0);
    wr(&mut g, c(gicc::BPR), 3);
    assert_eq!(rd(on(&mut g, 0), c(gicc::CTLR)), 0);
    assert_eq!(rd(&mut g, c(gicc::PMR)), 0);
    assert_eq!(rd(&mut g, c(gicc::BPR)), 0);
    // The same SPI to both: only the enabled interface signals it.
    poke_bit(&mut g, gicd::ISENABLER, 40);
    set_priority(&mut g, 40, 0x80);
    wr8(&mut g, d(gicd::ITARGETSR + 40), 0x03);
    g.set_irq_source(40, true);
    assert_eq!(lines_up(&g), 0b10);
    assert_eq!(iar(&mut g), SPURIOUS, "CPU 0's interface is off");
    assert_eq!(iar(on(&mut g, 1)), 40);
    // Running priorities are per CPU.
    assert_eq!(rpr(&mut g), 0x80);
    assert_eq!(rpr(on(&mut g, 0)), 0xff);
    assert_eq!(rd(&mut g, c(gicc::APR + 8)), 0);
    // CPU 1 is in EOImode 1: EOIR only drops its priority.
    eoi(on(&mut g, 1), 40);
    assert_eq!(rpr(&mut g), 0xff);
    assert!(active(&mut g, 40));
    wr(&mut g, c(gicc::DIR), 40);
    assert!(!active(&mut g, 40));
}

#[test]
fn itargetsr_reads_the_accessing_cpu() {
    let mut g = Gicv2::with_cpus(4);
    for cpu in 0..4 {
        let g = on(&mut g, cpu);
        let own = 0x0101_0101 << cpu;
        for off in (0..32).step_by(4) {
            // Read-only: writes are ignored, not refused.
            wr(g, d(gicd::ITARGETSR + off), 0xffff_ffff);
            assert_eq!(rd(g, d(gicd::ITARGETSR + off)), own, "CPU {cpu} {off}");
        }
        wr8(g, d(gicd::ITARGETSR + 27), 0);
        assert_eq!(rd8(g, d(gicd::ITARGETSR + 27)), 1 << cpu);
        // What Linux's gic_get_cpumask learns.
        assert_eq!(rd(g, d(gicd::ITARGETSR)) & 0xff, 1 << cpu);
    }
    // SPI bytes: the bits of the 4 interfaces, the same for every CPU.
    let spi = d(gicd::ITARGETSR + 32);
    assert_eq!(rd(on(&mut g, 3), spi), 0x0101_0101, "CPU 0 at reset");
    wr(&mut g, spi, 0xff0f_0402);
    assert_eq!(rd(on(&mut g, 1), spi), 0x0f0f_0402);
    wr8(&mut g, spi + 3, 0x18);
    assert_eq!(rd8(on(&mut g, 0), spi + 3), 0x08);
}

#[test]
fn an_spi_reaches_its_targets_only() {
    let mut g = ready_smp(4);
    poke_bit(&mut g, gicd::ISENABLER, 40);
    set_priority(&mut g, 40, 0x80);
    wr8(&mut g, d(gicd::ITARGETSR + 40), 0x04);
    g.set_irq_source(40, true);
    assert_eq!(lines_up(&g), 0b0100);
    for cpu in [0, 1, 3] {
        assert_eq!(rd(on(&mut g, cpu), c(gicc::HPPIR)), SPURIOUS, "CPU {cpu}");
        assert_eq!(iar(&mut g), SPURIOUS, "CPU {cpu}");
    }
    assert!(!active(&mut g, 40));
    // Retargeted while pending: it follows.
    wr8(&mut g, d(gicd::ITARGETSR + 40), 0x08);
    assert_eq!(lines_up(&g), 0b1000);
    assert_eq!(iar(on(&mut g, 2)), SPURIOUS);
    assert_eq!(iar(on(&mut g, 3)), 40);
    assert_eq!(lines_up(&g), 0);
    eoi(&mut g, 40);
    assert!(!active(&mut g, 40));
}

#[test]
fn a_one_of_n_spi_goes_to_the_first_to_acknowledge() {
    let mut g = ready_smp(3);
    poke_bit(&mut g, gicd::ISENABLER, 50);
    set_priority(&mut g, 50, 0x80);
    make_edge(&mut g, 50);
    wr8(&mut g, d(gicd::ITARGETSR + 50), 0x07);
    g.set_irq_source(50, true);
    assert_eq!(lines_up(&g), 0b111);
    assert_eq!(rd(on(&mut g, 0), c(gicc::HPPIR)), 50);
    // CPU 1 takes it: active, no longer offered to the others.
    assert_eq!(iar(on(&mut g, 1)), 50);
    assert_eq!(lines_up(&g), 0);
    for cpu in [0, 2] {
        assert_eq!(rd(on(&mut g, cpu), c(gicc::HPPIR)), SPURIOUS, "CPU {cpu}");
        assert_eq!(iar(&mut g), SPURIOUS, "CPU {cpu}");
        assert_eq!(rpr(&mut g), 0xff, "CPU {cpu}");
    }
    // A new edge while active waits for CPU 1's EOI, then goes to all.
    g.set_irq_source(50, false);
    g.set_irq_source(50, true);
    assert_eq!(lines_up(&g), 0);
    eoi(on(&mut g, 1), 50);
    assert_eq!(lines_up(&g), 0b111);
    assert_eq!(iar(on(&mut g, 2)), 50);
    assert_eq!(lines_up(&g), 0);
}

#[test]
fn sgir_target_filters_and_the_source_in_iar() {
    let mut g = ready_smp(4);
    // Filter 0 from CPU 1: the listed CPUs 0, 2 and 3.
    wr(on(&mut g, 1), d(gicd::SGIR), 0b1101 << 16 | 5);
    assert_eq!(lines_up(&g), 0b1101);
    for (cpu, sources) in [(0, 0x02), (1, 0), (2, 0x02), (3, 0x02)] {
        let g = on(&mut g, cpu);
        assert_eq!(rd8(g, d(gicd::SPENDSGIR + 5)), sources, "CPU {cpu}");
        assert_eq!(pending(g, 5), sources != 0, "CPU {cpu}");
    }
    // The source is in IAR bits [12:10], and EOIR must name it again.
    let v = iar(on(&mut g, 2));
    assert_eq!(v, 5 | 1 << 10);
    assert!(active(&mut g, 5));
    eoi(&mut g, 5 | 3 << 10);
    assert!(active(&mut g, 5), "another source: ignored");
    assert_eq!(rpr(&mut g), 0);
    eoi(&mut g, v);
    assert!(!active(&mut g, 5));
    assert_eq!(rpr(&mut g), 0xff);
    assert!(pending(on(&mut g, 0), 5), "CPU 0's copy is untouched");
    wr8(&mut g, d(gicd::CPENDSGIR + 5), 0xff);
    wr8(on(&mut g, 3), d(gicd::CPENDSGIR + 5), 0xff);
    assert_eq!(lines_up(&g), 0);

    // Filter 1 from CPU 3: everyone else, target list ignored.
    wr(on(&mut g, 3), d(gicd::SGIR), 1 << 24 | 0x08 << 16 | 6);
    assert_eq!(lines_up(&g), 0b0111);
    for cpu in 0..3 {
        assert_eq!(iar(on(&mut g, cpu)), 6 | 3 << 10, "CPU {cpu}");
        eoi(&mut g, 6 | 3 << 10);
    }
    assert_eq!(iar(on(&mut g, 3)), SPURIOUS);

    // Filter 2 from CPU 2: itself only.
    wr(on(&mut g, 2), d(gicd::SGIR), 2 << 24 | 0x0f << 16 | 7);
    assert_eq!(lines_up(&g), 0b0100);
    assert_eq!(iar(&mut g), 7 | 2 << 10);
    eoi(&mut g, 7 | 2 << 10);

    // Filter 3 is reserved, and list bits of absent CPUs are ignored.
    wr(on(&mut g, 0), d(gicd::SGIR), 3 << 24 | 0x0f << 16 | 8);
    wr(&mut g, d(gicd::SGIR), 0xf0 << 16 | 9);
    assert_eq!(lines_up(&g), 0);
    for cpu in 0..4 {
        assert_eq!(rd(on(&mut g, cpu), d(gicd::SPENDSGIR + 8)), 0, "CPU {cpu}");
    }
}

#[test]
fn sgis_from_several_sources_are_taken_one_by_one() {
    let mut g = ready_smp(3);
    wr(on(&mut g, 2), d(gicd::SGIR), 0b10 << 16 | 4);
    wr(on(&mut g, 0), d(gicd::SGIR), 0b10 << 16 | 4);
    let g = on(&mut g, 1);
    assert_eq!(rd8(g, d(gicd::SPENDSGIR + 4)), 0b101);
    // The lowest source first; the other waits for the EOI.
    assert_eq!(iar(g), 4);
    assert!(!g.irq_output(1));
    eoi(g, 4);
    assert_eq!(iar(g), 4 | 2 << 10);
    eoi(g, 4 | 2 << 10);
    assert_eq!(iar(g), SPURIOUS);
}

#[test]
fn spendsgir_and_cpendsgir_are_the_accessing_cpus() {
    let mut g = ready_smp(2);
    // CPU 1 pends SGI 3 from sources 0 and 2 on itself.
    wr8(on(&mut g, 1), d(gicd::SPENDSGIR + 3), 0x05);
    assert_eq!(rd(&mut g, d(gicd::SPENDSGIR)), 0x0500_0000);
    assert_eq!(rd(&mut g, d(gicd::CPENDSGIR)), 0x0500_0000);
    assert!(pending(&mut g, 3));
    assert_eq!(lines_up(&g), 0b10);
    // CPU 0 sees none of it and cannot clear it.
    assert_eq!(rd(on(&mut g, 0), d(gicd::SPENDSGIR)), 0);
    assert!(!pending(&mut g, 3));
    wr(&mut g, d(gicd::CPENDSGIR), 0xffff_ffff);
    assert_eq!(rd(on(&mut g, 1), d(gicd::SPENDSGIR)), 0x0500_0000);
    // CPU 1 clears source 0: source 2 is what it acknowledges.
    wr8(&mut g, d(gicd::CPENDSGIR + 3), 0x01);
    assert_eq!(rd8(&mut g, d(gicd::SPENDSGIR + 3)), 0x04);
    assert_eq!(iar(&mut g), 3 | 2 << 10);
    assert_eq!(rd8(&mut g, d(gicd::SPENDSGIR + 3)), 0);
    eoi(&mut g, 3 | 2 << 10);
    assert_eq!(lines_up(&g), 0);
    // CPU 0's SPENDSGIR reaches CPU 0 only.
    wr8(on(&mut g, 0), d(gicd::SPENDSGIR + 1), 0x02);
    assert_eq!(lines_up(&g), 0b01);
    assert_eq!(iar(&mut g), 1 | 1 << 10);
}

#[test]
fn a_ppi_is_the_cpu_that_raised_it() {
    let mut g = ready_smp(2);
    for cpu in 0..2 {
        poke_bit(on(&mut g, cpu), gicd::ISENABLER, VTIMER_PPI);
        set_priority(&mut g, VTIMER_PPI, 0xa0);
    }
    // CPU 1's timer fires.
    on(&mut g, 1).set_irq_source(VTIMER_PPI, true);
    assert_eq!(lines_up(&g), 0b10);
    assert!(pending(&mut g, VTIMER_PPI));
    assert!(!pending(on(&mut g, 0), VTIMER_PPI));
    assert_eq!(iar(&mut g), SPURIOUS);
    // CPU 0's timer line is its own: lowering it leaves CPU 1's high.
    g.set_irq_source(VTIMER_PPI, false);
    assert_eq!(lines_up(&g), 0b10);
    // ISPENDR0 latches a PPI on the writer only.
    poke_bit(&mut g, gicd::ISPENDR, PTIMER_PPI);
    poke_bit(&mut g, gicd::ISENABLER, PTIMER_PPI);
    assert!(!test_bit(on(&mut g, 1), gicd::ISPENDR, PTIMER_PPI));
    assert_eq!(lines_up(&g), 0b11);
    assert_eq!(iar(on(&mut g, 0)), PTIMER_PPI);
    // CPU 1 takes its timer; CPU 0's active PPI is not CPU 1's.
    assert_eq!(iar(on(&mut g, 1)), VTIMER_PPI);
    assert!(!active(&mut g, PTIMER_PPI));
    g.set_irq_source(VTIMER_PPI, false);
    eoi(&mut g, VTIMER_PPI);
    assert!(!pending(&mut g, VTIMER_PPI) && !active(&mut g, VTIMER_PPI));
    assert!(active(on(&mut g, 0), PTIMER_PPI));
}

/// Two vCPUs on the bus: the bus says which one accesses, each timer
/// reaches its own CPU, and an IPI goes from one to the other.
#[test]
fn smp_through_the_bus() {
    let mut bus = Bus::new();
    let gic = bus
        .add(
            GuestPhysAddr::new(VIRT_BASE),
            GIC_SIZE,
            Box::new(Gicv2::with_cpus(2)),
            None,
        )
        .unwrap();
    bus.set_irq_chip(gic).unwrap();
    let access = |bus: &mut Bus, off: u64, value: Option<u32>| {
        let addr = GuestPhysAddr::new(VIRT_BASE + off);
        let a = match value {
            Some(v) => MmioAccess::write(addr, Width::Word, u64::from(v)),
            None => MmioAccess::read(addr, Width::Word),
        };
        bus.access(&a).unwrap() as u32
    };
    access(&mut bus, d(gicd::CTLR), Some(1));
    for cpu in 0..2 {
        bus.set_cpu(cpu);
        access(&mut bus, c(gicc::CTLR), Some(1));
        access(&mut bus, c(gicc::PMR), Some(0xff));
        access(&mut bus, d(gicd::ISENABLER), Some(1 << VTIMER_PPI | 0xffff));
        assert_eq!(access(&mut bus, d(gicd::ITARGETSR), None) & 0xff, 1 << cpu);
    }
    // vCPU 1's timer, synced while vCPU 1 runs.
    bus.set_irq_line(VTIMER_PPI, true);
    assert!(bus.external_irq(1) && !bus.external_irq(0));
    bus.set_cpu(0);
    bus.set_irq_line(VTIMER_PPI, false);
    assert!(bus.external_irq(1), "vCPU 0's timer line is another");
    // An IPI from vCPU 0 to vCPU 1 (filter 0, list 0b10, SGI 1).
    access(&mut bus, d(gicd::SGIR), Some(0b10 << 16 | 1));
    assert!(!bus.external_irq(0));
    bus.set_cpu(1);
    assert_eq!(access(&mut bus, c(gicc::IAR), None), 1);
    access(&mut bus, c(gicc::EOIR), Some(1));
    assert_eq!(access(&mut bus, c(gicc::IAR), None), VTIMER_PPI);
}

/// `best` the slow way: every INTID in turn, as the architecture states
/// the conditions.
fn naive_best(g: &Gicv2, cpu: usize) -> Option<u32> {
    let pmr = g.cpus[cpu].iface.pmr;
    let mut best: Option<(u32, u8)> = None;
    for id in 0..NUM_INTIDS {
        let p = g.priority_of(cpu, id);
        if p < pmr
            && best.is_none_or(|(_, bp)| p < bp)
            && g.get(cpu, Field::Enabled, id)
            && !g.get(cpu, Field::Active, id)
            && g.is_pending(cpu, id)
            && g.group_enabled(cpu, g.group_of(cpu, id))
            && (id < SPI_BASE || g.target[id as usize] & (1 << cpu) != 0)
        {
            best = Some((id, p));
        }
    }
    best.map(|(id, _)| id)
}

/// The word-by-word search gives what the bit-by-bit one does, over a long
/// run of pseudo-random register writes and line changes from 4 CPUs.
#[test]
fn the_fast_search_agrees_with_the_bit_by_bit_one() {
    let mut g = Gicv2::with_cpus(4);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for cpu in 0..4 {
        g.select_cpu(cpu);
        wr(&mut g, c(0x0), 1);
        wr(&mut g, c(0x4), 0xf0);
    }
    wr(&mut g, d(0x0), 1);
    let mut found = 0;
    for _ in 0..3000 {
        let r = next();
        g.select_cpu((r % 4) as usize);
        let id = ((r >> 8) % u64::from(NUM_INTIDS)) as u32;
        let value = (r >> 32) as u32;
        match (r >> 4) % 8 {
            0 => wr(&mut g, d(0x100 + 4 * u64::from(id / 32)), value),
            1 => wr(&mut g, d(0x180 + 4 * u64::from(id / 32)), value),
            2 => wr(&mut g, d(0x200 + 4 * u64::from(id / 32)), value),
            3 => wr(
                &mut g,
                d(0x300 + 4 * u64::from(id / 32)),
                value & 0x0f0f_0f0f,
            ),
            4 => wr8(&mut g, d(0x400 + u64::from(id)), value as u8),
            5 => wr(&mut g, d(0xf00), value & 0x03ff_000f),
            6 => g.set_irq_source(id, value & 1 != 0),
            _ => {
                if id >= SPI_BASE {
                    wr8(&mut g, d(0x800 + u64::from(id)), value as u8);
                }
            }
        }
        for cpu in 0..4 {
            let best = g.best(cpu);
            assert_eq!(best, naive_best(&g, cpu), "CPU {cpu}");
            found += usize::from(best.is_some());
        }
    }
    assert!(found > 1000, "the run must present interrupts: {found}");
}
