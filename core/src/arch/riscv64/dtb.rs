//! The flattened device tree (DTB) a riscv64 guest reads to learn the
//! machine the hypervisor gives it: its harts ([`DtbConfig::cpus`], 1 to
//! 8), its RAM, the PLIC, the 16550 UART and (where the layout has it) the
//! pflash bank.
//!
//! Written for the guests the project boots on QEMU `virt` (Debian's U-Boot
//! `qemu-riscv64_smode`, a Linux kernel): the tree has the shape of the one
//! QEMU `virt` generates, without the devices the guest does not get (CLINT,
//! virtio-mmio, PCIe, RTC, fw-cfg, the test/syscon device). Timer, IPIs and
//! reset are SBI calls, so no node is needed for them.
//!
//! Node and property names follow the Devicetree Specification v0.4 and the
//! Linux bindings `riscv/cpus.yaml`, `riscv/extensions.yaml`,
//! `interrupt-controller/sifive,plic-1.0.0.yaml` and `serial/8250.yaml`.
//! Every address and size comes from the [`GuestLayout`] regions named
//! `plic`, `uart`, `pflash` and `ram`. The nodes every architecture's tree
//! shares (`/memory`, `/flash`, `/aliases`, `/chosen`) and the reasons
//! they are as they are live in [`crate::dtb`].
//!
//! Choices worth knowing:
//!
//! - `mmu-type` is [`MMU_TYPE`], `riscv,sv39`. The binding calls it the
//!   largest translation mode the hart supports; the VS-stage (`vsatp`)
//!   supports whatever the host CPU does (Sv57 on QEMU's default `rv64`),
//!   but this tree is built without probing the host, and Sv39 is the mode
//!   every RV64 hart with the H extension must have (the H extension
//!   requires at least Sv39). Reporting less than the hart has is harmless
//!   (recent Linux caps its paging mode at `mmu-type`; older kernels probe
//!   `satp` themselves, which under us probes the real `vsatp`), and three
//!   VS levels keep the two-stage walk short. 512 GiB of guest-virtual
//!   space is plenty.
//! - `riscv,isa` is the caller's ([`DtbConfig::isa`]); [`guest_isa`]
//!   derives one from the host's, and [`QEMU_VIRT_GUEST_ISA`] is that
//!   derivation for QEMU 10.0 `virt`'s default CPU. The tree also carries
//!   the same set as `riscv,isa-base` and `riscv,isa-extensions`, the
//!   properties current bindings prefer.
//! - The pflash region, passed through read-only, is an `mtd-rom`, never
//!   probed with CFI commands (see [`crate::dtb`]).
//! - Harts: `cpu@<i>` with `reg = <i>` (the hart id) for every vCPU, all
//!   with the same properties, each with its own `riscv,cpu-intc` child.
//!   The PLIC's `interrupts-extended` lists, per hart in hart order, its
//!   M-mode and S-mode external interrupts: the PLIC's contexts `2*i` and
//!   `2*i + 1`, as QEMU `virt` lists them and as the PLIC model numbers
//!   them ([`plic::s_mode_context`]). QEMU's `/cpus/cpu-map` and the
//!   `phandle` on each `cpu@<i>` it needs are left out: nothing here
//!   states a topology, and Linux treats CPUs without one as one cluster
//!   of single-thread cores anyway. The CLINT is not in the tree (see
//!   above), so no other node lists per-hart interrupts.
#![cfg(feature = "alloc")]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use vm_fdt::FdtWriter;

use crate::addr::GuestPhysAddr;
use crate::devices::plic;
use crate::dtb::{TreeError, check_cpus, check_initrd, device, nodes, ram};
use crate::layout::GuestLayout;
use crate::machine::{Board, DeviceKind};

/// Timebase of QEMU `virt`: its `time` CSR counts at 10 MHz.
pub const QEMU_VIRT_TIMEBASE_HZ: u64 = 10_000_000;

/// The `riscv,isa` QEMU 10.0 `virt` reports for its default `rv64` CPU
/// (read from `-machine virt,dumpdtb=`): the host the hypervisor runs on.
pub const QEMU_VIRT_HOST_ISA: &str = "rv64imafdch_zic64b_zicbom_zicbop_zicboz_ziccamoa_ziccif_zicclsm_ziccrse_zicntr_zicsr_zifencei_zihintntl_zihintpause_zihpm_zmmul_za64rs_zaamo_zalrsc_zawrs_zfa_zca_zcd_zba_zbb_zbc_zbs_shcounterenw_shgatpa_shtvala_shvsatpa_shvstvala_shvstvecd_ssccptr_sscounterenw_sstc_sstvala_sstvecd_ssu64xl_svadu_svvptc";

/// What a VS-mode guest of this hypervisor has on QEMU `virt`'s default
/// CPU: [`guest_isa`] of [`QEMU_VIRT_HOST_ISA`].
pub const QEMU_VIRT_GUEST_ISA: &str = "rv64imafdc_zicntr_zicsr_zifencei_zihintntl_zihintpause_zmmul_zaamo_zalrsc_zfa_zca_zcd_zba_zbb_zbc_zbs";

/// The translation mode reported in `mmu-type` (see the module docs).
pub const MMU_TYPE: &str = "riscv,sv39";

/// The root node's `compatible`: QEMU `virt`'s, since the guest sees the
/// same devices at the same addresses.
pub const COMPATIBLE: &str = "riscv-virtio";

/// The root node's `model`, naming the hypervisor's machine.
pub const MODEL: &str = "arceos-guestaspace,riscv-virtio";

/// The PLIC source of the UART, as QEMU `virt` wires it and as the
/// hypervisor's device bus raises it.
pub const UART_PLIC_SOURCE: u32 = 10;

/// The UART's input clock: QEMU `virt`'s 3.6864 MHz, so guest drivers
/// compute the same divisors as on bare QEMU.
pub const UART_CLOCK_HZ: u32 = 3_686_400;

/// The phandles the tree defines.
pub mod phandle {
    /// Hart 0's local interrupt controller (`cpu@0/interrupt-controller`).
    pub const CPU0_INTC: u32 = 1;
    /// The PLIC.
    pub const PLIC: u32 = 2;

    /// Hart `hart`'s local interrupt controller: [`CPU0_INTC`] for hart 0,
    /// the numbers after the PLIC's for the others (so a one-hart tree is
    /// what it was before there were more).
    pub const fn cpu_intc(hart: usize) -> u32 {
        if hart == 0 {
            CPU0_INTC
        } else {
            PLIC + hart as u32
        }
    }
}

/// Interrupt number of the supervisor external interrupt at the hart's
/// local controller (its bit in `mip`/`sip`).
const IRQ_S_EXTERNAL: u32 = 9;
/// Interrupt number of the machine external interrupt.
const IRQ_M_EXTERNAL: u32 = 11;

/// Single-letter extensions a guest may be given when the host has them:
/// the base, M, A, F, D, Q, C and B. F/D/Q share the floating-point state
/// with the host's `sstatus.FS`; V is left out because its state is
/// neither enabled for the guest nor switched, and H because there is no
/// nested virtualization.
const GUEST_LETTERS: &str = "imafdqcb";

/// Multi-letter extensions a guest may be given when the host has them:
/// unprivileged instructions that execute in VS/VU-mode with no help from
/// the hypervisor, plus Zicntr, whose counters `hcounteren` opens (CY, TM,
/// IR). Left out on purpose:
///
/// - Zicbom, Zicboz: `henvcfg.CBIE/CBCFE/CBZE` are clear, so `cbo.*` raise a
///   virtual-instruction exception. Zicbop (hints only) goes with them.
/// - Zihpm: `hcounteren` does not open the HPM counters.
/// - Sstc: `henvcfg.STCE` is clear; the guest's timer is SBI TIME.
/// - Svadu, Svpbmt: `henvcfg.ADUE` and `PBMTE` are clear.
/// - Zawrs: `wrs.*` would idle the vCPU inside the guest, out of the
///   hypervisor's sight; nothing needs it.
/// - The H-extension properties (Sh*), and the profile names that only
///   state properties of the implementation (Ziccif, Za64rs, Ss*, ...):
///   nothing the guest needs, and omitting an extension is always safe.
const GUEST_EXTENSIONS: &[&str] = &[
    "zicntr",
    "zicsr",
    "zifencei",
    "zihintntl",
    "zihintpause",
    "zicond",
    "zimop",
    "zmmul",
    "zaamo",
    "zalrsc",
    "zacas",
    "zabha",
    "zfa",
    "zfh",
    "zfhmin",
    "zca",
    "zcb",
    "zcd",
    "zcmop",
    "zba",
    "zbb",
    "zbc",
    "zbs",
    "zbkb",
    "zbkc",
    "zbkx",
    "zkt",
];

/// What the tree says beyond the layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtbConfig<'a> {
    /// Frequency of the `time` CSR, in Hz (`timebase-frequency`).
    pub timebase_hz: u64,
    /// The hart's `riscv,isa`, e.g. [`QEMU_VIRT_GUEST_ISA`].
    pub isa: &'a str,
    /// The kernel command line (`/chosen/bootargs`), if any.
    pub bootargs: Option<&'a str>,
    /// Where an initrd was loaded and its size in bytes, if any.
    pub initrd: Option<(GuestPhysAddr, u64)>,
    /// How many harts the tree describes (`cpu@0` to `cpu@<cpus-1>`), 1
    /// to 8.
    pub cpus: usize,
}

impl DtbConfig<'static> {
    /// QEMU `virt`'s timebase and guest ISA, no command line, no initrd,
    /// one hart.
    pub const QEMU_VIRT: Self = DtbConfig {
        timebase_hz: QEMU_VIRT_TIMEBASE_HZ,
        isa: QEMU_VIRT_GUEST_ISA,
        bootargs: None,
        initrd: None,
        cpus: 1,
    };
}

/// Why no tree can be written.
#[derive(Debug, PartialEq, Eq)]
pub enum DtbError {
    /// The ISA string is not an `rv64i...` string as the binding wants it.
    BadIsa {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The timebase is zero or does not fit the 32-bit cell Linux reads.
    BadTimebase {
        /// The frequency asked for, in Hz.
        hz: u64,
    },
    /// A reason every architecture's tree shares (a missing region, an
    /// initrd outside RAM, a blob too large, the writer's refusal).
    Tree(TreeError),
}

impl From<TreeError> for DtbError {
    fn from(e: TreeError) -> Self {
        DtbError::Tree(e)
    }
}

impl From<vm_fdt::Error> for DtbError {
    fn from(e: vm_fdt::Error) -> Self {
        DtbError::Tree(e.into())
    }
}

impl core::fmt::Display for DtbError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DtbError::BadIsa { reason } => write!(f, "bad riscv,isa string: {reason}"),
            DtbError::BadTimebase { hz } => write!(
                f,
                "timebase of {hz} Hz is zero or too large for timebase-frequency"
            ),
            DtbError::Tree(e) => e.fmt(f),
        }
    }
}

/// An ISA string cut into its parts: `rv64` + single letters (starting
/// with `i`) + `_`-separated multi-letter extensions.
struct Isa<'a> {
    letters: &'a str,
    multi: Vec<&'a str>,
}

impl<'a> Isa<'a> {
    fn parse(isa: &'a str) -> Result<Self, DtbError> {
        let bad = |reason| Err(DtbError::BadIsa { reason });
        let Some(rest) = isa.strip_prefix("rv64") else {
            return bad("it does not start with rv64");
        };
        let mut parts = rest.split('_');
        let letters = parts.next().unwrap_or_default();
        if !letters.starts_with('i') {
            return bad("the base is not i (g is not expanded)");
        }
        if !letters.bytes().all(|b| b.is_ascii_lowercase()) {
            return bad("the single-letter extensions are not all lowercase letters");
        }
        if letters.contains(['z', 's', 'x']) {
            return bad("a multi-letter extension does not follow an underscore");
        }
        let multi: Vec<&str> = parts.collect();
        for ext in &multi {
            let well_formed = ext.len() >= 2
                && ext.starts_with(['z', 's', 'x', 'h'])
                && ext
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            if !well_formed {
                return bad("a multi-letter extension is not [zsxh][a-z0-9]+");
            }
        }
        Ok(Isa { letters, multi })
    }

    /// The extensions one by one, as `riscv,isa-extensions` lists them.
    fn extensions(&self) -> Vec<String> {
        self.letters
            .chars()
            .map(String::from)
            .chain(self.multi.iter().map(|&e| String::from(e)))
            .collect()
    }
}

/// The `riscv,isa` of a VS-mode guest on a host whose own hart reports
/// `host_isa`: the host's extensions that the guest can use under this
/// hypervisor (see `GUEST_LETTERS` and `GUEST_EXTENSIONS` in the source),
/// in the host's order.
pub fn guest_isa(host_isa: &str) -> Result<String, DtbError> {
    let host = Isa::parse(host_isa)?;
    let mut isa = String::from("rv64");
    isa.extend(host.letters.chars().filter(|&c| GUEST_LETTERS.contains(c)));
    for ext in host.multi.iter().filter(|e| GUEST_EXTENSIONS.contains(e)) {
        isa.push('_');
        isa.push_str(ext);
    }
    Ok(isa)
}

/// The device tree of a riscv64 guest with `config.cpus` harts and
/// `layout`'s regions: RAM from `ram`, the PLIC from `plic`, the UART from
/// `uart` (all three required), and a flash node if the layout has
/// `pflash`.
pub fn riscv64_dtb(
    board: &Board,
    layout: &GuestLayout<'_>,
    config: &DtbConfig<'_>,
) -> Result<Vec<u8>, DtbError> {
    let ram = ram(layout)?;
    let plic = &device(board, layout, "plic", |k| *k == DeviceKind::Plic)?;
    let uart = &device(board, layout, "uart", |k| *k == DeviceKind::Uart16550)?;
    let pflash = device(board, layout, "pflash", |k| {
        matches!(k, DeviceKind::PassthroughFlash { .. })
    })
    .ok();

    let isa = Isa::parse(config.isa)?;
    let timebase = u32::try_from(config.timebase_hz)
        .ok()
        .filter(|&hz| hz != 0)
        .ok_or(DtbError::BadTimebase {
            hz: config.timebase_hz,
        })?;
    check_initrd(ram, config.initrd)?;
    check_cpus(config.cpus)?;

    let mut fdt = FdtWriter::new()?;
    let root = nodes::begin_root(&mut fdt, COMPATIBLE, MODEL)?;

    // The harts: cells 1/0, as `reg` is a hart id.
    let cpus = fdt.begin_node("cpus")?;
    fdt.property_u32("#address-cells", 1)?;
    fdt.property_u32("#size-cells", 0)?;
    fdt.property_u32("timebase-frequency", timebase)?;
    for hart in 0..config.cpus {
        let cpu = fdt.begin_node(&alloc::format!("cpu@{hart:x}"))?;
        fdt.property_string("device_type", "cpu")?;
        fdt.property_u32("reg", hart as u32)?;
        fdt.property_string("status", "okay")?;
        fdt.property_string("compatible", "riscv")?;
        fdt.property_string("riscv,isa", config.isa)?;
        fdt.property_string("riscv,isa-base", "rv64i")?;
        fdt.property_string_list("riscv,isa-extensions", isa.extensions())?;
        fdt.property_string("mmu-type", MMU_TYPE)?;
        let intc = fdt.begin_node("interrupt-controller")?;
        fdt.property_u32("#interrupt-cells", 1)?;
        fdt.property_null("interrupt-controller")?;
        fdt.property_string("compatible", "riscv,cpu-intc")?;
        fdt.property_phandle(phandle::cpu_intc(hart))?;
        fdt.end_node(intc)?;
        fdt.end_node(cpu)?;
    }
    fdt.end_node(cpus)?;

    nodes::memory(&mut fdt, ram)?;
    if let Some(flash) = pflash {
        nodes::flash(&mut fdt, &flash)?;
    }

    // The devices, on a bus that maps its addresses one to one.
    let serial = nodes::unit_name("serial", uart);
    let soc = fdt.begin_node("soc")?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_string("compatible", "simple-bus")?;
    fdt.property_null("ranges")?;

    let node = fdt.begin_node(&nodes::unit_name("plic", plic))?;
    fdt.property_string_list(
        "compatible",
        ["sifive,plic-1.0.0", "riscv,plic0"]
            .map(String::from)
            .into(),
    )?;
    nodes::reg(&mut fdt, plic.gpa, plic.size)?;
    // One pair per PLIC context, in context order: 2*i is hart i's M-mode
    // (machine external interrupt), 2*i + 1 its S-mode, which the guest
    // drives.
    let contexts: Vec<u32> = (0..config.cpus)
        .flat_map(|hart| {
            let intc = phandle::cpu_intc(hart);
            [intc, IRQ_M_EXTERNAL, intc, IRQ_S_EXTERNAL]
        })
        .collect();
    fdt.property_array_u32("interrupts-extended", &contexts)?;
    // Sources 1..=ndev: id 0 means "no interrupt".
    fdt.property_u32("riscv,ndev", plic::NUM_SOURCES - 1)?;
    fdt.property_u32("#interrupt-cells", 1)?;
    fdt.property_u32("#address-cells", 0)?;
    fdt.property_null("interrupt-controller")?;
    fdt.property_phandle(phandle::PLIC)?;
    fdt.end_node(node)?;

    let node = fdt.begin_node(&serial)?;
    fdt.property_string("compatible", "ns16550a")?;
    nodes::reg(&mut fdt, uart.gpa, uart.size)?;
    fdt.property_u32("clock-frequency", UART_CLOCK_HZ)?;
    fdt.property_u32("interrupts", UART_PLIC_SOURCE)?;
    fdt.property_u32("interrupt-parent", phandle::PLIC)?;
    fdt.end_node(node)?;
    fdt.end_node(soc)?;

    nodes::aliases_and_chosen(
        &mut fdt,
        &alloc::format!("/soc/{serial}"),
        config.bootargs,
        config.initrd,
    )?;

    fdt.end_node(root)?;
    Ok(fdt.finish()?)
}

/// Where the hypervisor should copy a blob of `blob_len` bytes, the address
/// it then passes in `a1`: [`crate::dtb::dtb_address`], the top of guest
/// RAM at a 2 MiB boundary where QEMU `virt` puts its own (an 8-byte one in
/// a RAM too small for that). The caller checks it does not overlap the
/// image or an initrd it loaded high.
pub fn dtb_address(layout: &GuestLayout<'_>, blob_len: u64) -> Result<GuestPhysAddr, DtbError> {
    Ok(crate::dtb::dtb_address(layout, blob_len)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtb::reader::{
        self, Tree, expect_console_and_no_bootargs, expect_names, is_empty, string, strs, u32s,
        u64s,
    };
    use crate::machine::{self, test_layout};

    /// The board; `RISCV64_VIRT` in the tests is its default layout.
    const BOARD: Board = machine::RISCV64_VIRT;
    #[allow(non_upper_case_globals)]
    static RISCV64_VIRT: std::sync::LazyLock<GuestLayout<'static>> =
        std::sync::LazyLock::new(|| test_layout(&BOARD));
    use crate::layout::{Perms, Region, RegionKind};
    use alloc::string::ToString;

    const fn gpa(a: u64) -> GuestPhysAddr {
        GuestPhysAddr::new(a)
    }

    /// `RISCV64_VIRT` with RAM resized, or with a region taken out.
    fn regions_with_ram(size: u64) -> Vec<Region> {
        BOARD.layout(size).unwrap().regions().to_vec()
    }

    fn regions_without(name: &str) -> Vec<Region> {
        reader::regions_without(&RISCV64_VIRT, name)
    }

    fn layout(regions: &[Region]) -> GuestLayout<'_> {
        reader::with_regions(&RISCV64_VIRT, regions)
    }

    #[test]
    fn the_qemu_virt_tree_describes_every_device() {
        let blob = riscv64_dtb(&BOARD, &RISCV64_VIRT, &DtbConfig::QEMU_VIRT).unwrap();
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
                "/cpus/cpu@0/interrupt-controller",
                "/memory@80000000",
                "/flash@22000000",
                "/soc",
                "/soc/plic@c000000",
                "/soc/serial@10000000",
                "/aliases",
                "/chosen",
            ]
        );

        let root = tree.node("/");
        expect_names(
            root,
            &["#address-cells", "#size-cells", "compatible", "model"],
        );
        assert_eq!(u32s(root, "#address-cells"), [2]);
        assert_eq!(u32s(root, "#size-cells"), [2]);
        assert_eq!(string(root, "compatible"), "riscv-virtio");
        assert_eq!(string(root, "model"), MODEL);

        let cpus = tree.node("/cpus");
        expect_names(
            cpus,
            &["#address-cells", "#size-cells", "timebase-frequency"],
        );
        assert_eq!(u32s(cpus, "#address-cells"), [1]);
        assert_eq!(u32s(cpus, "#size-cells"), [0]);
        assert_eq!(u32s(cpus, "timebase-frequency"), [10_000_000]);

        let cpu = tree.node("/cpus/cpu@0");
        expect_names(
            cpu,
            &[
                "device_type",
                "reg",
                "status",
                "compatible",
                "riscv,isa",
                "riscv,isa-base",
                "riscv,isa-extensions",
                "mmu-type",
            ],
        );
        assert_eq!(string(cpu, "device_type"), "cpu");
        assert_eq!(u32s(cpu, "reg"), [0]);
        assert_eq!(string(cpu, "status"), "okay");
        assert_eq!(string(cpu, "compatible"), "riscv");
        assert_eq!(string(cpu, "riscv,isa"), QEMU_VIRT_GUEST_ISA);
        assert_eq!(string(cpu, "riscv,isa-base"), "rv64i");
        assert_eq!(
            strs(cpu, "riscv,isa-extensions"),
            [
                "i",
                "m",
                "a",
                "f",
                "d",
                "c",
                "zicntr",
                "zicsr",
                "zifencei",
                "zihintntl",
                "zihintpause",
                "zmmul",
                "zaamo",
                "zalrsc",
                "zfa",
                "zca",
                "zcd",
                "zba",
                "zbb",
                "zbc",
                "zbs",
            ]
        );
        assert_eq!(string(cpu, "mmu-type"), "riscv,sv39");

        let intc = tree.node("/cpus/cpu@0/interrupt-controller");
        expect_names(
            intc,
            &[
                "#interrupt-cells",
                "interrupt-controller",
                "compatible",
                "phandle",
            ],
        );
        assert_eq!(u32s(intc, "#interrupt-cells"), [1]);
        assert!(is_empty(intc, "interrupt-controller"));
        assert_eq!(string(intc, "compatible"), "riscv,cpu-intc");
        assert_eq!(u32s(intc, "phandle"), [phandle::CPU0_INTC]);

        let memory = tree.node("/memory@80000000");
        expect_names(memory, &["device_type", "reg"]);
        assert_eq!(string(memory, "device_type"), "memory");
        assert_eq!(u64s(memory, "reg"), [0x8000_0000, 128 << 20]);
        // The reader's own view, through the root's cells.
        let reg: Vec<_> = memory.reg().unwrap().collect();
        assert_eq!(reg.len(), 1);
        assert_eq!(reg[0].address, 0x8000_0000);
        assert_eq!(reg[0].size, Some(128 << 20));
        let regions: Vec<_> = tree.fdt.memory().flat_map(|m| m.regions()).collect();
        assert_eq!(regions.len(), 1);
        assert_eq!(regions[0].address as usize, 0x8000_0000);
        assert_eq!(regions[0].size, 128 << 20);

        // Read-only pass-through: a ROM, never probed with CFI commands.
        let flash = tree.node("/flash@22000000");
        expect_names(flash, &["compatible", "reg", "bank-width"]);
        assert_eq!(string(flash, "compatible"), "mtd-rom");
        assert_eq!(u64s(flash, "reg"), [0x2200_0000, 32 << 20]);
        assert_eq!(u32s(flash, "bank-width"), [4]);

        let soc = tree.node("/soc");
        expect_names(
            soc,
            &["#address-cells", "#size-cells", "compatible", "ranges"],
        );
        assert_eq!(u32s(soc, "#address-cells"), [2]);
        assert_eq!(u32s(soc, "#size-cells"), [2]);
        assert_eq!(string(soc, "compatible"), "simple-bus");
        assert!(is_empty(soc, "ranges"), "an identity mapping");

        let plic = tree.node("/soc/plic@c000000");
        expect_names(
            plic,
            &[
                "compatible",
                "reg",
                "interrupts-extended",
                "riscv,ndev",
                "#interrupt-cells",
                "#address-cells",
                "interrupt-controller",
                "phandle",
            ],
        );
        assert_eq!(
            strs(plic, "compatible"),
            ["sifive,plic-1.0.0", "riscv,plic0"]
        );
        assert_eq!(u64s(plic, "reg"), [0x0c00_0000, 0x60_0000]);
        let reg: Vec<_> = plic.reg().unwrap().collect();
        assert_eq!(
            (reg[0].address, reg[0].size),
            (0x0c00_0000, Some(0x60_0000))
        );
        assert_eq!(
            u32s(plic, "interrupts-extended"),
            [phandle::CPU0_INTC, 11, phandle::CPU0_INTC, 9],
            "context 0: M external, context 1: S external"
        );
        assert_eq!(u32s(plic, "riscv,ndev"), [95]);
        assert_eq!(u32s(plic, "#interrupt-cells"), [1]);
        assert_eq!(u32s(plic, "#address-cells"), [0]);
        assert!(is_empty(plic, "interrupt-controller"));
        assert_eq!(u32s(plic, "phandle"), [phandle::PLIC]);
        // Both contexts lead to the hart's local controller.
        let target = tree
            .fdt
            .get_node_by_phandle(phandle::CPU0_INTC.into())
            .unwrap();
        assert_eq!(target.name(), "interrupt-controller");
        assert_eq!(target.compatibles().collect::<Vec<_>>(), ["riscv,cpu-intc"]);

        let serial = tree.node("/soc/serial@10000000");
        expect_names(
            serial,
            &[
                "compatible",
                "reg",
                "clock-frequency",
                "interrupts",
                "interrupt-parent",
            ],
        );
        assert_eq!(string(serial, "compatible"), "ns16550a");
        assert_eq!(u64s(serial, "reg"), [0x1000_0000, 0x100]);
        assert_eq!(u32s(serial, "clock-frequency"), [3_686_400]);
        assert_eq!(u32s(serial, "interrupts"), [10]);
        assert_eq!(u32s(serial, "interrupt-parent"), [phandle::PLIC]);
        let parent = tree.fdt.get_node_by_phandle(phandle::PLIC.into()).unwrap();
        assert_eq!(parent.name(), "plic@c000000");
        let irqs: Vec<Vec<u32>> = serial
            .interrupts()
            .unwrap()
            .map(|cells| cells.collect())
            .collect();
        assert_eq!(irqs, [[10]], "one cell per interrupt, as the PLIC says");

        expect_console_and_no_bootargs(&tree, "/soc/serial@10000000");
    }

    #[test]
    fn four_harts_each_with_its_own_intc_and_plic_contexts() {
        let config = DtbConfig {
            cpus: 4,
            ..DtbConfig::QEMU_VIRT
        };
        let blob = riscv64_dtb(&BOARD, &RISCV64_VIRT, &config).unwrap();
        let tree = Tree::parse(&blob);
        let cpu_paths: Vec<&str> = tree
            .paths()
            .into_iter()
            .filter(|p| p.starts_with("/cpus/"))
            .collect();
        assert_eq!(
            cpu_paths,
            [
                "/cpus/cpu@0",
                "/cpus/cpu@0/interrupt-controller",
                "/cpus/cpu@1",
                "/cpus/cpu@1/interrupt-controller",
                "/cpus/cpu@2",
                "/cpus/cpu@2/interrupt-controller",
                "/cpus/cpu@3",
                "/cpus/cpu@3/interrupt-controller",
            ]
        );
        // Every hart alike but for `reg` and its controller's phandle.
        let cpu0 = tree.node("/cpus/cpu@0");
        let mut phandles = Vec::new();
        for hart in 0..4 {
            let cpu = tree.node(&alloc::format!("/cpus/cpu@{hart}"));
            assert_eq!(u32s(cpu, "reg"), [hart as u32]);
            for name in [
                "device_type",
                "status",
                "compatible",
                "riscv,isa",
                "riscv,isa-base",
                "riscv,isa-extensions",
                "mmu-type",
            ] {
                assert_eq!(strs(cpu, name), strs(cpu0, name), "cpu@{hart} {name}");
            }
            let intc = tree.node(&alloc::format!("/cpus/cpu@{hart}/interrupt-controller"));
            assert_eq!(string(intc, "compatible"), "riscv,cpu-intc");
            assert_eq!(u32s(intc, "phandle"), [phandle::cpu_intc(hart)]);
            phandles.push(phandle::cpu_intc(hart));
        }
        assert_eq!(phandles, [1, 3, 4, 5], "hart 0's and the PLIC's stay");
        assert_eq!(u32s(tree.node("/soc/plic@c000000"), "phandle"), [2]);

        // Two contexts per hart, M then S, in hart order: 4 cells each.
        let cells = u32s(tree.node("/soc/plic@c000000"), "interrupts-extended");
        assert_eq!(cells.len(), 4 * 4);
        for (hart, pair) in cells.chunks(4).enumerate() {
            let intc = phandle::cpu_intc(hart);
            assert_eq!(pair, [intc, 11, intc, 9], "hart {hart}");
            // Context 2*hart + 1 is the S-mode one the model gives vCPU hart.
            assert_eq!(
                cells[2 * plic::s_mode_context(hart)..][..2],
                [intc, IRQ_S_EXTERNAL]
            );
            assert_eq!(
                cells[2 * plic::m_mode_context(hart)..][..2],
                [intc, IRQ_M_EXTERNAL]
            );
        }
        // Every phandle resolves to a hart's controller.
        for &ph in &phandles {
            let node = tree.fdt.get_node_by_phandle(ph.into()).unwrap();
            assert_eq!(node.name(), "interrupt-controller");
        }

        // Only the harts grew: the rest of the tree is the one-hart one's.
        let one = riscv64_dtb(&BOARD, &RISCV64_VIRT, &DtbConfig::QEMU_VIRT).unwrap();
        let one = Tree::parse(&one);
        let rest = |t: &Tree<'_>| -> Vec<String> {
            t.paths()
                .into_iter()
                .filter(|p| !p.starts_with("/cpus/"))
                .map(String::from)
                .collect()
        };
        assert_eq!(rest(&tree), rest(&one));
    }

    #[test]
    fn eight_harts_fit_and_nine_do_not() {
        let eight = DtbConfig {
            cpus: 8,
            ..DtbConfig::QEMU_VIRT
        };
        let blob = riscv64_dtb(&BOARD, &RISCV64_VIRT, &eight).unwrap();
        assert!(blob.len() < 8192, "{} bytes", blob.len());
        let tree = Tree::parse(&blob);
        assert_eq!(u32s(tree.node("/cpus/cpu@7"), "reg"), [7]);
        assert_eq!(
            u32s(tree.node("/soc/plic@c000000"), "interrupts-extended").len(),
            8 * 4
        );
        for cpus in [0, 9] {
            let config = DtbConfig {
                cpus,
                ..DtbConfig::QEMU_VIRT
            };
            let err = riscv64_dtb(&BOARD, &RISCV64_VIRT, &config).unwrap_err();
            assert_eq!(err, DtbError::Tree(TreeError::BadCpuCount { cpus }));
            assert_eq!(
                err.to_string(),
                alloc::format!("a device tree for {cpus} CPUs: 1 to 8 are supported")
            );
        }
    }

    #[test]
    fn a_resized_ram_changes_the_memory_node_only() {
        let base = riscv64_dtb(&BOARD, &RISCV64_VIRT, &DtbConfig::QEMU_VIRT).unwrap();
        for size in [64 << 20, 1 << 30] {
            let regions = regions_with_ram(size);
            let blob = riscv64_dtb(&BOARD, &layout(&regions), &DtbConfig::QEMU_VIRT).unwrap();
            let tree = Tree::parse(&blob);
            assert_eq!(
                u64s(tree.node("/memory@80000000"), "reg"),
                [0x8000_0000, size]
            );
            // The same bytes but for the size cells of `reg`.
            assert_eq!(blob.len(), base.len());
            let differing = blob.iter().zip(&base).filter(|(a, b)| a != b).count();
            assert!((1..=8).contains(&differing), "{differing} bytes differ");
        }
    }

    #[test]
    fn bootargs_and_initrd_land_in_chosen() {
        let config = DtbConfig {
            bootargs: Some("console=ttyS0 earlycon root=/dev/vda2"),
            initrd: Some((gpa(0x8400_0000), 0x12_3456)),
            ..DtbConfig::QEMU_VIRT
        };
        let blob = riscv64_dtb(&BOARD, &RISCV64_VIRT, &config).unwrap();
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
            string(chosen, "bootargs"),
            "console=ttyS0 earlycon root=/dev/vda2"
        );
        assert_eq!(
            tree.fdt.chosen().unwrap().bootargs(),
            Some("console=ttyS0 earlycon root=/dev/vda2")
        );
        assert_eq!(u64s(chosen, "linux,initrd-start"), [0x8400_0000]);
        assert_eq!(
            u64s(chosen, "linux,initrd-end"),
            [0x8412_3456],
            "one past the last byte"
        );

        // Each on its own.
        let only_args = DtbConfig {
            bootargs: Some("quiet"),
            ..DtbConfig::QEMU_VIRT
        };
        let blob = riscv64_dtb(&BOARD, &RISCV64_VIRT, &only_args).unwrap();
        let tree = Tree::parse(&blob);
        expect_names(tree.node("/chosen"), &["stdout-path", "bootargs"]);
        let only_initrd = DtbConfig {
            initrd: Some((gpa(0x8700_0000), 0x10_0000)),
            ..DtbConfig::QEMU_VIRT
        };
        let blob = riscv64_dtb(&BOARD, &RISCV64_VIRT, &only_initrd).unwrap();
        let tree = Tree::parse(&blob);
        let chosen = tree.node("/chosen");
        expect_names(
            chosen,
            &["stdout-path", "linux,initrd-start", "linux,initrd-end"],
        );
        assert_eq!(u64s(chosen, "linux,initrd-end"), [0x8710_0000]);
    }

    #[test]
    fn a_layout_missing_a_required_region_is_refused() {
        for name in ["uart", "plic", "ram"] {
            let regions = regions_without(name);
            let err = riscv64_dtb(&BOARD, &layout(&regions), &DtbConfig::QEMU_VIRT).unwrap_err();
            assert_eq!(err, DtbError::Tree(TreeError::MissingRegion { name }));
        }
        let regions = regions_without("uart");
        assert_eq!(
            riscv64_dtb(&BOARD, &layout(&regions), &DtbConfig::QEMU_VIRT)
                .unwrap_err()
                .to_string(),
            "the machine has no uart for the device tree"
        );
    }

    #[test]
    fn the_flash_node_follows_the_pflash_region() {
        let regions = regions_without("pflash");
        let blob = riscv64_dtb(&BOARD, &layout(&regions), &DtbConfig::QEMU_VIRT).unwrap();
        let tree = Tree::parse(&blob);
        assert!(!tree.paths().iter().any(|p| p.starts_with("/flash")));

        // A writable bank is a real CFI chip the guest may program.
        let regions: Vec<Region> = RISCV64_VIRT
            .regions
            .iter()
            .map(|r| {
                if r.name == "pflash" {
                    Region {
                        perms: Perms::RW,
                        ..*r
                    }
                } else {
                    *r
                }
            })
            .collect();
        let blob = riscv64_dtb(&BOARD, &layout(&regions), &DtbConfig::QEMU_VIRT).unwrap();
        let tree = Tree::parse(&blob);
        let flash = tree.node("/flash@22000000");
        assert_eq!(string(flash, "compatible"), "cfi-flash");
        assert_eq!(u32s(flash, "bank-width"), [4]);
    }

    #[test]
    fn addresses_come_from_the_board_and_ram_from_the_layout() {
        let devices: Vec<_> = BOARD
            .devices
            .iter()
            .map(|d| match d.kind {
                DeviceKind::Uart16550 => machine::DeviceSpec {
                    base: 0x1000_2000,
                    ..*d
                },
                _ => *d,
            })
            .collect();
        let board = Board {
            devices: devices.leak(),
            ram_base: gpa(0x9000_0000),
            entry: gpa(0x9020_0000),
            ..BOARD
        };
        let moved = board.layout(0x400_0000).unwrap();
        let blob = riscv64_dtb(&board, &moved.as_ref(), &DtbConfig::QEMU_VIRT).unwrap();
        let tree = Tree::parse(&blob);
        assert_eq!(
            u64s(tree.node("/memory@90000000"), "reg"),
            [0x9000_0000, 0x400_0000]
        );
        assert_eq!(
            u64s(tree.node("/soc/serial@10002000"), "reg"),
            [0x1000_2000, 0x100]
        );
        assert_eq!(
            string(tree.node("/chosen"), "stdout-path"),
            "/soc/serial@10002000"
        );
        assert_eq!(
            string(tree.node("/aliases"), "serial0"),
            "/soc/serial@10002000"
        );
    }

    #[test]
    fn the_guest_isa_keeps_what_vs_mode_can_use() {
        assert_eq!(guest_isa(QEMU_VIRT_HOST_ISA).unwrap(), QEMU_VIRT_GUEST_ISA);
        let guest = Isa::parse(QEMU_VIRT_GUEST_ISA).unwrap();
        assert_eq!(guest.letters, "imafdc", "no H for the guest");
        for gone in ["sstc", "svadu", "zicbom", "zicboz", "zihpm", "zawrs"] {
            assert!(!guest.multi.contains(&gone), "{gone} is not the guest's");
        }
        assert_eq!(
            guest_isa("rv64imafdcvh_zicsr_zve64d_zvfh_svpbmt").unwrap(),
            "rv64imafdc_zicsr"
        );
        assert_eq!(guest_isa("rv64imac").unwrap(), "rv64imac");
    }

    #[test]
    fn bad_configurations_are_typed_errors() {
        for isa in [
            "rv32imac",
            "rv64gc",
            "RV64IMAC",
            "rv64imac_",
            "rv64imac_v",
            "rv64imac_Zicsr",
            "rv64imac_a_zicsr",
            "rv64imaczicsr",
        ] {
            let config = DtbConfig {
                isa,
                ..DtbConfig::QEMU_VIRT
            };
            assert!(
                matches!(
                    riscv64_dtb(&BOARD, &RISCV64_VIRT, &config),
                    Err(DtbError::BadIsa { .. })
                ),
                "{isa} is refused"
            );
            assert!(matches!(guest_isa(isa), Err(DtbError::BadIsa { .. })));
        }
        for hz in [0, 1 << 32] {
            let config = DtbConfig {
                timebase_hz: hz,
                ..DtbConfig::QEMU_VIRT
            };
            assert_eq!(
                riscv64_dtb(&BOARD, &RISCV64_VIRT, &config),
                Err(DtbError::BadTimebase { hz })
            );
        }
        for (start, size) in [
            (gpa(0x7fff_f000), 0x2000),
            (gpa(0x87ff_f000), 0x2000),
            (gpa(0x8000_0000), u64::MAX),
        ] {
            let config = DtbConfig {
                initrd: Some((start, size)),
                ..DtbConfig::QEMU_VIRT
            };
            assert_eq!(
                riscv64_dtb(&BOARD, &RISCV64_VIRT, &config),
                Err(DtbError::Tree(TreeError::InitrdNotInRam { start, size }))
            );
        }
        let nul = DtbConfig {
            bootargs: Some("a\0b"),
            ..DtbConfig::QEMU_VIRT
        };
        assert_eq!(
            riscv64_dtb(&BOARD, &RISCV64_VIRT, &nul),
            Err(DtbError::Tree(TreeError::Writer(
                vm_fdt::Error::InvalidString
            )))
        );
        // An initrd filling RAM to its last byte is fine.
        let full = DtbConfig {
            initrd: Some((gpa(0x8000_0000), 128 << 20)),
            ..DtbConfig::QEMU_VIRT
        };
        assert!(riscv64_dtb(&BOARD, &RISCV64_VIRT, &full).is_ok());
    }

    #[test]
    fn the_blob_goes_to_the_top_of_ram_at_a_2_mib_boundary() {
        let len = riscv64_dtb(&BOARD, &RISCV64_VIRT, &DtbConfig::QEMU_VIRT)
            .unwrap()
            .len() as u64;
        assert_eq!(dtb_address(&RISCV64_VIRT, len), Ok(gpa(0x87e0_0000)));
        assert_eq!(dtb_address(&RISCV64_VIRT, 2 << 20), Ok(gpa(0x87e0_0000)));
        assert_eq!(
            dtb_address(&RISCV64_VIRT, (2 << 20) + 1),
            Ok(gpa(0x87c0_0000))
        );
        let regions = regions_with_ram(64 << 20);
        assert_eq!(dtb_address(&layout(&regions), len), Ok(gpa(0x83e0_0000)));

        // A RAM with no 2 MiB boundary low enough: 8-byte alignment.
        let tiny = [Region {
            name: "ram",
            gpa: gpa(0x8010_0000),
            size: 0x10_0000,
            perms: Perms::RWX,
            kind: RegionKind::Ram,
        }];
        let tiny = GuestLayout {
            regions: &tiny,
            entry: gpa(0x8010_0000),
        };
        assert_eq!(dtb_address(&tiny, 0x123), Ok(gpa(0x801f_fed8)));
        assert_eq!(dtb_address(&tiny, 0x10_0000), Ok(gpa(0x8010_0000)));
        assert_eq!(
            dtb_address(&tiny, 0x10_0001),
            Err(DtbError::Tree(TreeError::TooLarge {
                len: 0x10_0001,
                ram: 0x10_0000
            }))
        );
        let regions = regions_without("ram");
        assert_eq!(
            dtb_address(&layout(&regions), len),
            Err(DtbError::Tree(TreeError::MissingRegion { name: "ram" }))
        );
    }
}
