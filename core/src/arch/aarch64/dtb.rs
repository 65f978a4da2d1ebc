//! The flattened device tree (DTB) an aarch64 guest reads to learn the
//! machine the hypervisor gives it: its CPUs ([`DtbConfig::cpus`], 1 to
//! 8), its RAM, PSCI over HVC, the generic timer, the GICv2, the PL011 and
//! (where the layout has it) the pflash bank.
//!
//! Written for an unmodified arm64 Linux (Debian's 6.1 `Image`, entered at
//! EL1 with the blob's address in `x0`): the tree has the shape of the one
//! QEMU 10 `virt` generates (`-machine virt,dumpdtb=` with `-cpu
//! cortex-a72`), every device node under the root, without the devices the
//! guest does not get (GICv2m, PL031 RTC, PL061 GPIO, fw-cfg,
//! virtio-mmio, PCIe, the platform bus, the PMU) and without QEMU's
//! per-boot `rng-seed` and `kaslr-seed`. Every address and size comes from
//! the [`GuestLayout`] regions named `ram`, `gic`, `uart` and `pflash`.
//! The nodes every architecture's tree shares (`/memory`, `/flash`,
//! `/aliases`, `/chosen`) are [`crate::dtb`]'s.
//!
//! Node and property names follow the Devicetree Specification v0.4 and
//! the Linux bindings `arm/cpus.yaml`, `arm/psci.yaml`,
//! `timer/arm,arch_timer.yaml`, `interrupt-controller/arm,gic.yaml`,
//! `serial/pl011.yaml` and `clock/fixed-clock.yaml`.
//!
//! Choices worth knowing:
//!
//! - The root's `compatible` is QEMU's `linux,dummy-virt` (the guest sees
//!   the same devices at the same addresses); `model` names this
//!   hypervisor ([`MODEL`]).
//! - `cpu@<i>`, one per vCPU, is `arm,armv8`, the binding's name for a
//!   generic Armv8 CPU (QEMU names the model it emulates, but the guest
//!   runs on whatever CPU the host has), with `reg` `<i>`: its MPIDR
//!   affinity (Aff0 = i; QEMU `virt` puts eight CPUs in a cluster), one
//!   cell as Aff3 is 0. `enable-method = "psci"` is there even for one
//!   CPU: `booting.rst` says the blob "must contain an 'enable-method'
//!   property for each cpu node" (QEMU adds it only with more than one).
//!   QEMU's `/cpus/cpu-map` and the `phandle` on each CPU it needs are
//!   left out: nothing here states a topology.
//! - `/psci` is `arm,psci-1.0` and `arm,psci-0.2` with `method = "hvc"`:
//!   the hypervisor answers PSCI_VERSION with 1.1 (see
//!   [`crate::arch::smccc`]). QEMU's extra `arm,psci` and its PSCI 0.1
//!   function IDs (`cpu_on`, ...) are left out: Linux takes the node as
//!   PSCI 1.0 (its first compatible) and starts the secondary CPUs with
//!   the standard CPU_ON function ID; the 0.1 IDs only serve a node probed
//!   as `arm,psci`, which this one cannot be.
//! - `/timer` is `arm,armv8-timer` with the four PPIs in the binding's
//!   order (secure physical 13, non-secure physical 14, virtual 11,
//!   hypervisor 10: INTIDs 29, 30, 27, 26) and `always-on`, as QEMU gives
//!   them. Each is level-high (type 4) with the GICv2 CPU mask in bits
//!   15:8 of the flags cell naming every CPU, `(1 << cpus) - 1`
//!   ([`timer_irq_flags`]; 0x104 for one CPU, 0xf04 for four), QEMU's
//!   value.
//!   Level matches the GIC model, whose PPIs are fixed level-sensitive
//!   (Linux sets the type in GICD_ICFGR and warns when it does not read
//!   back). No
//!   `clock-frequency`: Linux reads `CNTFRQ_EL0`.
//! - The GIC is `intc@<gic>`, `arm,cortex-a15-gic` (a GICv2; what QEMU
//!   says), with three interrupt cells (type, number, flags) and
//!   `#address-cells` 0 (no children; `dtc` warns about an interrupt
//!   provider without it). Its `reg` is the two frames the model decodes,
//!   not QEMU's two 64 KiB ranges: the distributor's [`gicv2::GICD_SIZE`]
//!   (4 KiB) at the region's start and the CPU interface's
//!   [`gicv2::GICC_SIZE`] (8 KiB, as it reaches GICC_DIR at 0x1000) at
//!   +0x1_0000. These are the frames' architected sizes, as GIC-400 trees
//!   commonly give them; the model refuses an access to the rest of either
//!   64 KiB, so the tree does not promise it. Linux at EL1 only maps the
//!   ranges (the GICC size matters to its split-EOI check, which needs
//!   EL2).
//! - The PL011 is `pl011@<uart>` as QEMU names it, `arm,pl011` and
//!   `arm,primecell` (Linux's AMBA bus matches it by the PrimeCell ID
//!   registers the model answers), `reg` of [`pl011::PL011_SIZE`], SPI
//!   [`UART_SPI`] level-high, and two clocks, `uartclk` and `apb_pclk`,
//!   both the fixed 24 MHz `/apb-pclk` QEMU has. The model has no baud
//!   rate, so the clock only keeps the drivers' divisor sums sensible.
//! - The root's `interrupt-parent` is the GIC, so no device repeats it.
#![cfg(feature = "alloc")]

extern crate alloc;

use alloc::vec::Vec;
use vm_fdt::FdtWriter;

use crate::addr::GuestPhysAddr;
use crate::devices::{gicv2, pl011};
use crate::dtb::{TreeError, check_cpus, check_initrd, device, device_of_size, nodes, ram};
use crate::layout::GuestLayout;
use crate::machine::{Board, DeviceKind};

/// Why no tree can be written: only the reasons every tree shares.
pub type DtbError = TreeError;

/// The root node's `compatible`: QEMU `virt`'s.
pub const COMPATIBLE: &str = "linux,dummy-virt";

/// The root node's `model`, naming the hypervisor's machine.
pub const MODEL: &str = "arceos-guestaspace,dummy-virt";

/// The PL011's interrupt as QEMU `virt` wires it: SPI 1 (INTID 33).
pub const UART_SPI: u32 = 1;

/// The frequency of the fixed `apb-pclk` clock: QEMU `virt`'s 24 MHz.
pub const APB_PCLK_HZ: u32 = 24_000_000;

/// The timer's PPIs in the binding's order: secure physical, non-secure
/// physical, virtual, hypervisor (PPI numbers; the INTID is 16 more).
pub const TIMER_PPIS: [u32; 4] = [13, 14, 11, 10];

/// The flags cell of each timer PPI on a one-CPU machine: level-high,
/// routed to CPU 0.
pub const TIMER_IRQ_FLAGS: u32 = timer_irq_flags(1);

/// The flags cell of each timer PPI with `cpus` CPUs: level-high, wired to
/// every CPU (GIC_CPU_MASK_SIMPLE(cpus) in bits 15:8, as QEMU and the
/// Linux `arm,gic` binding have it). `cpus` is 1 to 8.
pub const fn timer_irq_flags(cpus: usize) -> u32 {
    // Eight bits: a GICv2 has at most eight CPU interfaces.
    let mask = if cpus >= 8 { 0xff } else { (1u32 << cpus) - 1 };
    (mask << GIC_CPU_MASK_SHIFT) | IRQ_TYPE_LEVEL_HIGH
}

/// The phandles the tree defines.
pub mod phandle {
    /// The GIC, the root's `interrupt-parent`.
    pub const GIC: u32 = 1;
    /// The fixed 24 MHz clock of the PL011.
    pub const APB_PCLK: u32 = 2;
}

/// First cell of a GIC interrupt specifier: a shared peripheral interrupt.
const GIC_SPI: u32 = 0;
/// First cell of a GIC interrupt specifier: a private peripheral
/// interrupt.
const GIC_PPI: u32 = 1;
/// Third cell: level-sensitive, active high.
const IRQ_TYPE_LEVEL_HIGH: u32 = 4;
/// Third cell, bits 8-15 (GICv2 PPIs only): the CPUs the PPI is wired
/// to, bit `8 + i` for CPU interface `i`.
const GIC_CPU_MASK_SHIFT: u32 = 8;

/// What the tree says beyond the layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtbConfig<'a> {
    /// The kernel command line (`/chosen/bootargs`), if any.
    pub bootargs: Option<&'a str>,
    /// Where an initrd was loaded and its size in bytes, if any.
    pub initrd: Option<(GuestPhysAddr, u64)>,
    /// How many CPUs the tree describes (`cpu@0` to `cpu@<cpus-1>`), 1 to
    /// 8.
    pub cpus: usize,
}

impl DtbConfig<'static> {
    /// No command line, no initrd, one CPU.
    pub const QEMU_VIRT: Self = DtbConfig {
        bootargs: None,
        initrd: None,
        cpus: 1,
    };
}

impl Default for DtbConfig<'_> {
    /// [`DtbConfig::QEMU_VIRT`].
    fn default() -> Self {
        DtbConfig::QEMU_VIRT
    }
}

/// The device tree of an aarch64 guest with `config.cpus` CPUs and
/// `layout`'s regions: RAM from `ram`, the GIC from `gic`, the PL011 from
/// `uart` (all three required), and a flash node if the layout has
/// `pflash`.
pub fn aarch64_dtb(
    board: &Board,
    layout: &GuestLayout<'_>,
    config: &DtbConfig<'_>,
) -> Result<Vec<u8>, DtbError> {
    let ram = ram(layout)?;
    let gic_size = gicv2::GICC_OFFSET + gicv2::GICC_SIZE;
    let gic = &device_of_size(board, layout, "gic", |k| *k == DeviceKind::Gicv2, gic_size)?;
    let uart_size = pl011::PL011_SIZE;
    let uart = &device_of_size(
        board,
        layout,
        "uart",
        |k| *k == DeviceKind::Pl011,
        uart_size,
    )?;
    let pflash = device(board, layout, "pflash", |k| {
        matches!(k, DeviceKind::PassthroughFlash { .. })
    })
    .ok();
    check_initrd(ram, config.initrd)?;
    check_cpus(config.cpus)?;

    let mut fdt = FdtWriter::new()?;
    let root = nodes::begin_root(&mut fdt, COMPATIBLE, MODEL)?;
    fdt.property_u32("interrupt-parent", phandle::GIC)?;

    // The CPUs: cells 1/0, as `reg` is an MPIDR affinity.
    let cpus = fdt.begin_node("cpus")?;
    fdt.property_u32("#address-cells", 1)?;
    fdt.property_u32("#size-cells", 0)?;
    for cpu in 0..config.cpus {
        let node = fdt.begin_node(&alloc::format!("cpu@{cpu:x}"))?;
        fdt.property_string("device_type", "cpu")?;
        fdt.property_string("compatible", "arm,armv8")?;
        // MPIDR Aff0 = cpu: at most 8 CPUs, all in cluster 0.
        fdt.property_u32("reg", cpu as u32)?;
        fdt.property_string("enable-method", "psci")?;
        fdt.end_node(node)?;
    }
    fdt.end_node(cpus)?;

    nodes::memory(&mut fdt, ram)?;

    let psci = fdt.begin_node("psci")?;
    fdt.property_string_list(
        "compatible",
        ["arm,psci-1.0", "arm,psci-0.2"].map(Into::into).into(),
    )?;
    fdt.property_string("method", "hvc")?;
    fdt.end_node(psci)?;

    let timer = fdt.begin_node("timer")?;
    fdt.property_string("compatible", "arm,armv8-timer")?;
    let flags = timer_irq_flags(config.cpus);
    let irqs: Vec<u32> = TIMER_PPIS
        .iter()
        .flat_map(|&ppi| [GIC_PPI, ppi, flags])
        .collect();
    fdt.property_array_u32("interrupts", &irqs)?;
    fdt.property_null("always-on")?;
    fdt.end_node(timer)?;

    let intc = fdt.begin_node(&nodes::unit_name("intc", gic))?;
    fdt.property_string("compatible", "arm,cortex-a15-gic")?;
    fdt.property_u32("#interrupt-cells", 3)?;
    // No child nodes, and interrupt specifiers carry no unit address.
    fdt.property_u32("#address-cells", 0)?;
    fdt.property_null("interrupt-controller")?;
    fdt.property_array_u64(
        "reg",
        &[
            gic.gpa.as_u64() + gicv2::GICD_OFFSET,
            gicv2::GICD_SIZE,
            gic.gpa.as_u64() + gicv2::GICC_OFFSET,
            gicv2::GICC_SIZE,
        ],
    )?;
    fdt.property_phandle(phandle::GIC)?;
    fdt.end_node(intc)?;

    let clock = fdt.begin_node("apb-pclk")?;
    fdt.property_string("compatible", "fixed-clock")?;
    fdt.property_u32("#clock-cells", 0)?;
    fdt.property_u32("clock-frequency", APB_PCLK_HZ)?;
    fdt.property_string("clock-output-names", "clk24mhz")?;
    fdt.property_phandle(phandle::APB_PCLK)?;
    fdt.end_node(clock)?;

    let serial = nodes::unit_name("pl011", uart);
    let node = fdt.begin_node(&serial)?;
    fdt.property_string_list(
        "compatible",
        ["arm,pl011", "arm,primecell"].map(Into::into).into(),
    )?;
    nodes::reg(&mut fdt, uart.gpa, pl011::PL011_SIZE)?;
    fdt.property_array_u32("interrupts", &[GIC_SPI, UART_SPI, IRQ_TYPE_LEVEL_HIGH])?;
    fdt.property_array_u32("clocks", &[phandle::APB_PCLK, phandle::APB_PCLK])?;
    fdt.property_string_list(
        "clock-names",
        ["uartclk", "apb_pclk"].map(Into::into).into(),
    )?;
    fdt.end_node(node)?;

    if let Some(flash) = pflash {
        nodes::flash(&mut fdt, &flash)?;
    }

    nodes::aliases_and_chosen(
        &mut fdt,
        &alloc::format!("/{serial}"),
        config.bootargs,
        config.initrd,
    )?;

    fdt.end_node(root)?;
    Ok(fdt.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtb::reader::{
        self, Tree, expect_console_and_no_bootargs, expect_names, is_empty, string, strs, u32s,
        u64s,
    };
    use crate::machine::{self, test_layout};

    /// The board; `AARCH64_VIRT` in the tests is its default layout.
    const BOARD: Board = machine::AARCH64_VIRT;
    #[allow(non_upper_case_globals)]
    static AARCH64_VIRT: std::sync::LazyLock<GuestLayout<'static>> =
        std::sync::LazyLock::new(|| test_layout(&BOARD));
    use crate::layout::{Perms, Region};
    use alloc::string::ToString;

    const fn gpa(a: u64) -> GuestPhysAddr {
        GuestPhysAddr::new(a)
    }

    fn regions_without(name: &str) -> Vec<Region> {
        reader::regions_without(&AARCH64_VIRT, name)
    }

    fn layout(regions: &[Region]) -> GuestLayout<'_> {
        reader::with_regions(&AARCH64_VIRT, regions)
    }

    fn default_tree() -> Vec<u8> {
        aarch64_dtb(&BOARD, &AARCH64_VIRT, &DtbConfig::default()).unwrap()
    }

    #[test]
    fn the_qemu_virt_tree_describes_every_device() {
        let blob = default_tree();
        assert!(blob.len() < 4096, "a small blob: {} bytes", blob.len());
        let tree = Tree::parse(&blob);
        assert_eq!(tree.fdt.version(), 17);
        assert_eq!(tree.fdt.boot_cpuid_phys(), 0);
        assert_eq!(tree.fdt.total_size(), blob.len());
        assert_eq!(tree.fdt.memory_reservation_block().count(), 0);
        assert_eq!(
            tree.paths(),
            [
                "/",
                "/cpus",
                "/cpus/cpu@0",
                "/memory@40000000",
                "/psci",
                "/timer",
                "/intc@8000000",
                "/apb-pclk",
                "/pl011@9000000",
                "/flash@4000000",
                "/aliases",
                "/chosen",
            ]
        );

        let root = tree.node("/");
        expect_names(
            root,
            &[
                "#address-cells",
                "#size-cells",
                "compatible",
                "model",
                "interrupt-parent",
            ],
        );
        assert_eq!(u32s(root, "#address-cells"), [2]);
        assert_eq!(u32s(root, "#size-cells"), [2]);
        assert_eq!(string(root, "compatible"), "linux,dummy-virt");
        assert_eq!(string(root, "model"), MODEL);
        assert_eq!(u32s(root, "interrupt-parent"), [phandle::GIC]);

        let cpus = tree.node("/cpus");
        expect_names(cpus, &["#address-cells", "#size-cells"]);
        assert_eq!(u32s(cpus, "#address-cells"), [1]);
        assert_eq!(u32s(cpus, "#size-cells"), [0]);
        let cpu = tree.node("/cpus/cpu@0");
        expect_names(cpu, &["device_type", "compatible", "reg", "enable-method"]);
        assert_eq!(string(cpu, "device_type"), "cpu");
        assert_eq!(string(cpu, "compatible"), "arm,armv8");
        assert_eq!(u32s(cpu, "reg"), [0]);
        assert_eq!(string(cpu, "enable-method"), "psci");

        let memory = tree.node("/memory@40000000");
        expect_names(memory, &["device_type", "reg"]);
        assert_eq!(string(memory, "device_type"), "memory");
        assert_eq!(u64s(memory, "reg"), [0x4000_0000, 128 << 20]);
        let regions: Vec<_> = tree.fdt.memory().flat_map(|m| m.regions()).collect();
        assert_eq!(regions.len(), 1);
        assert_eq!(regions[0].address as usize, 0x4000_0000);
        assert_eq!(regions[0].size, 128 << 20);

        let psci = tree.node("/psci");
        expect_names(psci, &["compatible", "method"]);
        assert_eq!(strs(psci, "compatible"), ["arm,psci-1.0", "arm,psci-0.2"]);
        assert_eq!(string(psci, "method"), "hvc");

        let timer = tree.node("/timer");
        expect_names(timer, &["compatible", "interrupts", "always-on"]);
        assert_eq!(string(timer, "compatible"), "arm,armv8-timer");
        assert_eq!(
            u32s(timer, "interrupts"),
            [1, 13, 0x104, 1, 14, 0x104, 1, 11, 0x104, 1, 10, 0x104],
            "QEMU virt's cells for one CPU"
        );
        assert!(is_empty(timer, "always-on"));
        // The virtual and non-secure physical timers are the PPIs the
        // hypervisor raises.
        assert_eq!(gicv2::PPI_BASE + TIMER_PPIS[2], gicv2::VTIMER_PPI);
        assert_eq!(gicv2::PPI_BASE + TIMER_PPIS[1], gicv2::PTIMER_PPI);

        let intc = tree.node("/intc@8000000");
        expect_names(
            intc,
            &[
                "compatible",
                "#interrupt-cells",
                "#address-cells",
                "interrupt-controller",
                "reg",
                "phandle",
            ],
        );
        assert_eq!(string(intc, "compatible"), "arm,cortex-a15-gic");
        assert_eq!(u32s(intc, "#interrupt-cells"), [3]);
        assert_eq!(u32s(intc, "#address-cells"), [0]);
        assert!(is_empty(intc, "interrupt-controller"));
        assert_eq!(
            u64s(intc, "reg"),
            [0x0800_0000, 0x1000, 0x0801_0000, 0x2000],
            "GICD and GICC, as the model decodes them"
        );
        assert_eq!(u32s(intc, "phandle"), [phandle::GIC]);
        let reg: Vec<_> = intc.reg().unwrap().map(|r| (r.address, r.size)).collect();
        assert_eq!(
            reg,
            [(0x0800_0000, Some(0x1000)), (0x0801_0000, Some(0x2000))]
        );
        let parent = tree.fdt.get_node_by_phandle(phandle::GIC.into()).unwrap();
        assert_eq!(parent.name(), "intc@8000000");

        let clock = tree.node("/apb-pclk");
        expect_names(
            clock,
            &[
                "compatible",
                "#clock-cells",
                "clock-frequency",
                "clock-output-names",
                "phandle",
            ],
        );
        assert_eq!(string(clock, "compatible"), "fixed-clock");
        assert_eq!(u32s(clock, "#clock-cells"), [0]);
        assert_eq!(u32s(clock, "clock-frequency"), [24_000_000]);
        assert_eq!(string(clock, "clock-output-names"), "clk24mhz");
        assert_eq!(u32s(clock, "phandle"), [phandle::APB_PCLK]);

        let serial = tree.node("/pl011@9000000");
        expect_names(
            serial,
            &["compatible", "reg", "interrupts", "clocks", "clock-names"],
        );
        assert_eq!(strs(serial, "compatible"), ["arm,pl011", "arm,primecell"]);
        assert_eq!(u64s(serial, "reg"), [0x0900_0000, 0x1000]);
        assert_eq!(u32s(serial, "interrupts"), [0, 1, 4], "SPI 1, level-high");
        assert_eq!(gicv2::SPI_BASE + UART_SPI, 33);
        assert_eq!(
            u32s(serial, "clocks"),
            [phandle::APB_PCLK, phandle::APB_PCLK]
        );
        assert_eq!(strs(serial, "clock-names"), ["uartclk", "apb_pclk"]);
        // Three cells per interrupt, as the root's interrupt parent says.
        let irqs: Vec<Vec<u32>> = serial
            .interrupts()
            .unwrap()
            .map(|cells| cells.collect())
            .collect();
        assert_eq!(irqs, [[0, 1, 4]]);

        // Read-only pass-through: a ROM, never probed with CFI commands.
        let flash = tree.node("/flash@4000000");
        expect_names(flash, &["compatible", "reg", "bank-width"]);
        assert_eq!(string(flash, "compatible"), "mtd-rom");
        assert_eq!(u64s(flash, "reg"), [0x0400_0000, 0x400_0000]);
        assert_eq!(u32s(flash, "bank-width"), [4]);

        expect_console_and_no_bootargs(&tree, "/pl011@9000000");
    }

    #[test]
    fn bootargs_and_initrd_land_in_chosen() {
        let config = DtbConfig {
            bootargs: Some("console=ttyAMA0 earlycon rdinit=/init"),
            initrd: Some((gpa(0x47a0_0000), 0x40_1234)),
            ..DtbConfig::QEMU_VIRT
        };
        let blob = aarch64_dtb(&BOARD, &AARCH64_VIRT, &config).unwrap();
        let tree = Tree::parse(&blob);
        let chosen = tree.node("/chosen");
        expect_names(
            chosen,
            &[
                "stdout-path",
                "bootargs",
                "linux,initrd-start",
                "linux,initrd-end",
            ],
        );
        assert_eq!(
            tree.fdt.chosen().unwrap().bootargs(),
            Some("console=ttyAMA0 earlycon rdinit=/init")
        );
        assert_eq!(u64s(chosen, "linux,initrd-start"), [0x47a0_0000]);
        assert_eq!(u64s(chosen, "linux,initrd-end"), [0x47e0_1234]);

        // The blob's length does not depend on where the initrd is, so a
        // tree measured before placing is as long as the final one.
        let elsewhere = DtbConfig {
            initrd: Some((gpa(0x4400_0000), 0x40_1234)),
            ..config
        };
        assert_eq!(
            aarch64_dtb(&BOARD, &AARCH64_VIRT, &elsewhere)
                .unwrap()
                .len(),
            blob.len()
        );
    }

    #[test]
    fn four_cpus_with_psci_and_the_timer_wired_to_all() {
        let config = DtbConfig {
            cpus: 4,
            ..DtbConfig::QEMU_VIRT
        };
        let blob = aarch64_dtb(&BOARD, &AARCH64_VIRT, &config).unwrap();
        let tree = Tree::parse(&blob);
        let cpu_paths: Vec<&str> = tree
            .paths()
            .into_iter()
            .filter(|p| p.starts_with("/cpus/"))
            .collect();
        assert_eq!(
            cpu_paths,
            ["/cpus/cpu@0", "/cpus/cpu@1", "/cpus/cpu@2", "/cpus/cpu@3"]
        );
        for cpu in 0..4 {
            let node = tree.node(&alloc::format!("/cpus/cpu@{cpu}"));
            expect_names(node, &["device_type", "compatible", "reg", "enable-method"]);
            assert_eq!(string(node, "device_type"), "cpu");
            assert_eq!(string(node, "compatible"), "arm,armv8");
            assert_eq!(u32s(node, "reg"), [cpu], "MPIDR affinity");
            assert_eq!(string(node, "enable-method"), "psci");
        }
        // The fdt crate's own view of the CPUs.
        let ids: Vec<usize> = tree
            .fdt
            .find_nodes("/cpus/cpu")
            .map(|n| n.reg().unwrap().next().unwrap().address as usize)
            .collect();
        assert_eq!(ids, [0, 1, 2, 3]);

        // GIC_CPU_MASK_SIMPLE(4) = 0xf in bits 15:8, level-high.
        let timer = u32s(tree.node("/timer"), "interrupts");
        assert_eq!(
            timer,
            [1, 13, 0xf04, 1, 14, 0xf04, 1, 11, 0xf04, 1, 10, 0xf04]
        );
        for spec in timer.chunks(3) {
            assert_eq!((spec[2] >> 8) & 0xff, 0b1111);
        }
        // PSCI as for one CPU: CPU_ON is the standard 0.2 function.
        let psci = tree.node("/psci");
        expect_names(psci, &["compatible", "method"]);
        assert_eq!(strs(psci, "compatible"), ["arm,psci-1.0", "arm,psci-0.2"]);
        // The SPI of the UART has no CPU mask.
        assert_eq!(u32s(tree.node("/pl011@9000000"), "interrupts"), [0, 1, 4]);
    }

    #[test]
    fn the_timer_mask_names_every_cpu_and_the_count_is_checked() {
        assert_eq!(TIMER_IRQ_FLAGS, 0x104);
        assert_eq!(timer_irq_flags(2), 0x304);
        assert_eq!(timer_irq_flags(8), 0xff04);
        let eight = DtbConfig {
            cpus: 8,
            ..DtbConfig::QEMU_VIRT
        };
        let blob = aarch64_dtb(&BOARD, &AARCH64_VIRT, &eight).unwrap();
        let tree = Tree::parse(&blob);
        assert_eq!(u32s(tree.node("/cpus/cpu@7"), "reg"), [7]);
        assert_eq!(u32s(tree.node("/timer"), "interrupts")[2], 0xff04);
        for cpus in [0, 9] {
            let config = DtbConfig {
                cpus,
                ..DtbConfig::QEMU_VIRT
            };
            assert_eq!(
                aarch64_dtb(&BOARD, &AARCH64_VIRT, &config),
                Err(TreeError::BadCpuCount { cpus })
            );
        }
    }

    #[test]
    fn the_memory_node_follows_mem() {
        for size in [64 << 20, 1 << 30] {
            let regions = BOARD.layout(size).unwrap().regions().to_vec();
            let blob = aarch64_dtb(&BOARD, &layout(&regions), &DtbConfig::default()).unwrap();
            let tree = Tree::parse(&blob);
            assert_eq!(
                u64s(tree.node("/memory@40000000"), "reg"),
                [0x4000_0000, size]
            );
        }
    }

    #[test]
    fn addresses_come_from_the_board() {
        let devices: Vec<_> = BOARD
            .devices
            .iter()
            .map(|d| match d.kind {
                DeviceKind::Gicv2 => machine::DeviceSpec {
                    base: 0x2f00_0000,
                    ..*d
                },
                DeviceKind::Pl011 => machine::DeviceSpec {
                    base: 0x1c09_0000,
                    ..*d
                },
                _ => *d,
            })
            .collect();
        let board = Board {
            devices: devices.leak(),
            ..BOARD
        };
        let moved = board.layout(machine::DEFAULT_RAM_SIZE).unwrap();
        // A writable bank is a real CFI chip the guest may program.
        let regions: Vec<Region> = moved
            .regions()
            .iter()
            .map(|r| match r.name {
                "pflash" => Region {
                    perms: Perms::RW,
                    ..*r
                },
                _ => *r,
            })
            .collect();
        let blob = aarch64_dtb(&board, &layout(&regions), &DtbConfig::default()).unwrap();
        let tree = Tree::parse(&blob);
        assert_eq!(
            u64s(tree.node("/intc@2f000000"), "reg"),
            [0x2f00_0000, 0x1000, 0x2f01_0000, 0x2000]
        );
        assert_eq!(
            u64s(tree.node("/pl011@1c090000"), "reg"),
            [0x1c09_0000, 0x1000]
        );
        assert_eq!(
            string(tree.node("/chosen"), "stdout-path"),
            "/pl011@1c090000"
        );
        // A writable bank is a real CFI chip the guest may program.
        assert_eq!(
            string(tree.node("/flash@4000000"), "compatible"),
            "cfi-flash"
        );

        let regions = regions_without("pflash");
        let blob = aarch64_dtb(&BOARD, &layout(&regions), &DtbConfig::default()).unwrap();
        assert!(
            !Tree::parse(&blob)
                .paths()
                .iter()
                .any(|p| p.starts_with("/flash"))
        );
    }

    #[test]
    fn bad_layouts_and_configurations_are_typed_errors() {
        for name in ["ram", "gic", "uart"] {
            let regions = regions_without(name);
            assert_eq!(
                aarch64_dtb(&BOARD, &layout(&regions), &DtbConfig::default()),
                Err(TreeError::MissingRegion { name })
            );
        }
        // A GIC region without room for the CPU interface's frame.
        let regions: Vec<Region> = AARCH64_VIRT
            .regions
            .iter()
            .map(|r| match r.name {
                "gic" => Region {
                    size: 0x1_0000,
                    ..*r
                },
                _ => *r,
            })
            .collect();
        let err = aarch64_dtb(&BOARD, &layout(&regions), &DtbConfig::default()).unwrap_err();
        assert_eq!(
            err,
            TreeError::RegionTooSmall {
                name: "gic",
                size: 0x1_0000,
                need: 0x1_2000
            }
        );
        assert_eq!(
            err.to_string(),
            "the guest layout's `gic` region (0x10000 bytes) is smaller than the 0x12000 bytes of its device's registers"
        );
        for (start, size) in [
            (gpa(0x3fff_f000), 0x2000),
            (gpa(0x47ff_f000), 0x2000),
            (gpa(0x4000_0000), u64::MAX),
        ] {
            let config = DtbConfig {
                initrd: Some((start, size)),
                ..DtbConfig::default()
            };
            assert_eq!(
                aarch64_dtb(&BOARD, &AARCH64_VIRT, &config),
                Err(TreeError::InitrdNotInRam { start, size })
            );
        }
        let nul = DtbConfig {
            bootargs: Some("a\0b"),
            ..DtbConfig::default()
        };
        assert_eq!(
            aarch64_dtb(&BOARD, &AARCH64_VIRT, &nul),
            Err(TreeError::Writer(vm_fdt::Error::InvalidString))
        );
    }

    #[test]
    fn the_blob_fits_the_kernels_plan() {
        use crate::arch::aarch64::linux_image::MAX_DTB_SIZE;
        let len = default_tree().len() as u64;
        assert!(len <= MAX_DTB_SIZE);
        assert_eq!(
            crate::dtb::dtb_address(&AARCH64_VIRT, len),
            Ok(gpa(0x47e0_0000))
        );
    }
}
