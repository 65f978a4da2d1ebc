//! The guest's physical address map, and the policy that decides what a
//! faulting guest-physical address is.
//!
//! A [`GuestLayout`] lists every region the hypervisor declares for the
//! guest. A nested page fault inside a region is served by mapping one page
//! as [`Region::backing_for`] says, or for RAM a whole 2 MiB block where
//! one fits ([`crate::fault`]); a fault outside every region is a wild
//! access and stops the VM. Pass-through regions are checked against the
//! host's RAM so the host never hands its own memory to the guest.

#[cfg(feature = "alloc")]
extern crate alloc;

use crate::PAGE_SIZE;
use crate::addr::{GuestPhysAddr, HostPhysAddr};
use crate::exit::Access;

bitflags::bitflags! {
    /// What the guest may do with a region.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Perms: u8 {
        /// Loads.
        const READ = 1 << 0;
        /// Stores.
        const WRITE = 1 << 1;
        /// Instruction fetches.
        const EXECUTE = 1 << 2;
        /// Loads and stores.
        const RW = Self::READ.bits() | Self::WRITE.bits();
        /// Everything.
        const RWX = Self::RW.bits() | Self::EXECUTE.bits();
    }
}

impl Perms {
    /// Whether this permission set allows `access`.
    pub fn allows(self, access: Access) -> bool {
        self.contains(match access {
            Access::Read => Perms::READ,
            Access::Write => Perms::WRITE,
            Access::Execute => Perms::EXECUTE,
        })
    }
}

impl core::fmt::Display for Perms {
    /// `rwx` style, `-` for what is not allowed.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (flag, c) in [
            (Perms::READ, 'r'),
            (Perms::WRITE, 'w'),
            (Perms::EXECUTE, 'x'),
        ] {
            core::fmt::Write::write_char(f, if self.contains(flag) { c } else { '-' })?;
        }
        Ok(())
    }
}

/// How the pages of a region are backed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// Guest RAM: fresh, zeroed host memory allocated on the first fault
    /// (or at load time for the image), a 2 MiB block at a time where one
    /// fits, else a 4 KiB page.
    Ram,
    /// A real device the guest may use directly: GPA `gpa + off` maps to
    /// host-physical `hpa + off`.
    Passthrough {
        /// Where the region's first page is on the host.
        hpa: HostPhysAddr,
    },
    /// A device the hypervisor emulates with one read-only page holding
    /// `content` at its start (the rest zero), repeated over the region.
    Emulated {
        /// The bytes at the start of every page.
        content: &'static [u8],
    },
    /// A device model on the hypervisor's bus: never mapped, so every
    /// access traps and is emulated (trap-and-emulate MMIO).
    Device,
}

impl core::fmt::Display for RegionKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RegionKind::Ram => f.write_str("RAM, zeroed on first touch"),
            RegionKind::Passthrough { hpa } => write!(f, "device, passed through to {hpa:#x}"),
            RegionKind::Emulated { content } => write!(
                f,
                "emulated, a page starting with \"{}\"",
                content.escape_ascii()
            ),
            RegionKind::Device => f.write_str("emulated device, every access trapped"),
        }
    }
}

/// One declared guest-physical region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// Name used in diagnostics and the report.
    pub name: &'static str,
    /// The region's first address.
    pub gpa: GuestPhysAddr,
    /// Size in bytes (a multiple of the page size).
    pub size: u64,
    /// What the guest may do there.
    pub perms: Perms,
    /// How its pages are backed.
    pub kind: RegionKind,
}

/// What a single guest page is backed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// A fresh zeroed host frame.
    FreshRam,
    /// This host-physical page (device memory).
    Device {
        /// The host page.
        hpa: HostPhysAddr,
    },
    /// A fresh host frame initialised with `content`, mapped read-only.
    Content(&'static [u8]),
}

impl Region {
    /// A RAM region named `ram` of `size` bytes at `gpa`, readable,
    /// writable and executable: the guest RAM every layout has.
    pub const fn ram(gpa: GuestPhysAddr, size: u64) -> Self {
        Region {
            name: "ram",
            gpa,
            size,
            perms: Perms::RWX,
            kind: RegionKind::Ram,
        }
    }

    /// One past the region's last address.
    pub const fn end(&self) -> GuestPhysAddr {
        GuestPhysAddr::new(self.gpa.as_u64() + self.size)
    }

    /// Whether `gpa` lies in the region.
    pub const fn contains(&self, gpa: GuestPhysAddr) -> bool {
        gpa.as_u64() >= self.gpa.as_u64() && gpa.as_u64() < self.end().as_u64()
    }

    /// The backing of the page containing `gpa`, which must lie in `self`.
    pub fn backing_for(&self, gpa: GuestPhysAddr) -> Backing {
        debug_assert!(self.contains(gpa));
        match self.kind {
            RegionKind::Ram => Backing::FreshRam,
            RegionKind::Passthrough { hpa } => Backing::Device {
                hpa: hpa + crate::page_base(gpa - self.gpa),
            },
            RegionKind::Emulated { content } => Backing::Content(content),
            // Not guest-reachable: the fault path (`fault.rs`, the run loop)
            // hands device regions to the bus and never asks for a backing.
            RegionKind::Device => unreachable!("device regions are never mapped"),
        }
    }
}

/// Why a layout cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// A region's start or size is not page aligned, or it is empty.
    Unaligned {
        /// The region's name.
        region: &'static str,
    },
    /// Two regions overlap.
    Overlap {
        /// The earlier region's name.
        first: &'static str,
        /// The later region's name.
        second: &'static str,
    },
    /// A pass-through region would expose host RAM to the guest.
    ExposesHostRam {
        /// The region's name.
        region: &'static str,
        /// The first host RAM address it would expose.
        hpa: HostPhysAddr,
    },
    /// A pass-through region would give the guest a device the hypervisor
    /// itself drives (its console, its interrupt controller...).
    ExposesHostDevice {
        /// The region's name.
        region: &'static str,
        /// The host device's name.
        device: &'static str,
        /// The host device's first address.
        hpa: HostPhysAddr,
    },
    /// A RAM size that is zero or not a whole number of pages.
    BadRamSize {
        /// The requested size in bytes.
        size: u64,
    },
    /// A RAM size larger than the host memory that could back it.
    RamExceedsHost {
        /// The requested size in bytes.
        size: u64,
        /// The host memory still free, in bytes.
        free: u64,
    },
    /// The layout has no RAM region containing the entry point.
    EntryNotInRam {
        /// The layout's entry point.
        entry: GuestPhysAddr,
    },
}

impl core::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LayoutError::Unaligned { region } => {
                write!(f, "guest region `{region}` is empty or not page aligned")
            }
            LayoutError::Overlap { first, second } => {
                write!(f, "guest regions `{first}` and `{second}` overlap")
            }
            LayoutError::ExposesHostRam { region, hpa } => {
                write!(
                    f,
                    "guest region `{region}` would pass host RAM at {hpa:#x} through to the guest"
                )
            }
            LayoutError::ExposesHostDevice {
                region,
                device,
                hpa,
            } => write!(
                f,
                "guest region `{region}` would pass the hypervisor's own {device} at {hpa:#x} through to the guest"
            ),
            LayoutError::BadRamSize { size } => write!(
                f,
                "guest RAM of {size:#x} bytes is not a non-zero multiple of the {PAGE_SIZE}-byte page"
            ),
            LayoutError::RamExceedsHost { size, free } => write!(
                f,
                "guest RAM of {} MiB is more than the {} MiB of host memory free to back it",
                size >> 20,
                free >> 20
            ),
            LayoutError::EntryNotInRam { entry } => {
                write!(f, "guest entry point {entry:#x} is not in guest RAM")
            }
        }
    }
}

/// A device the hypervisor drives itself, at a host-physical range: no
/// pass-through region may reach it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostDevice {
    /// What it is, for the diagnostic (`"console UART"`).
    pub name: &'static str,
    /// Its first register.
    pub hpa: HostPhysAddr,
    /// The size of its register range.
    pub size: u64,
}

/// What of the host a layout must stay clear of.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostResources<'a> {
    /// The host's RAM, as `(start, size)` ranges.
    pub ram: &'a [(HostPhysAddr, u64)],
    /// The devices the hypervisor drives itself.
    pub devices: &'a [HostDevice],
}

/// The guest-physical address map of one VM.
#[derive(Clone, Copy, Debug)]
pub struct GuestLayout<'a> {
    /// Every region, in the order the report lists them.
    pub regions: &'a [Region],
    /// Where the guest image is placed and where the vCPU starts.
    pub entry: GuestPhysAddr,
}

impl<'a> GuestLayout<'a> {
    /// The region containing `gpa`, if the guest owns that address.
    pub fn region_of(&self, gpa: GuestPhysAddr) -> Option<&'a Region> {
        self.regions.iter().find(|r| r.contains(gpa))
    }

    /// The RAM region the image is loaded into.
    pub fn ram(&self) -> Option<&'a Region> {
        self.region_of(self.entry)
            .filter(|r| r.kind == RegionKind::Ram)
    }

    /// Checks that the RAM region fits in `free` bytes of host memory, so
    /// the guest can touch every page it was promised.
    pub fn check_ram_backable(&self, free: u64) -> Result<(), LayoutError> {
        match self.ram() {
            Some(r) if r.size > free => Err(LayoutError::RamExceedsHost { size: r.size, free }),
            Some(_) => Ok(()),
            None => Err(LayoutError::EntryNotInRam { entry: self.entry }),
        }
    }

    /// Checks alignment, overlap, the entry point, and that no pass-through
    /// region reaches into the host's RAM or into a device the host drives.
    pub fn validate(&self, host: &HostResources<'_>) -> Result<(), LayoutError> {
        for (i, r) in self.regions.iter().enumerate() {
            if r.size == 0 || !r.gpa.is_page_aligned() || r.size % PAGE_SIZE != 0 {
                return Err(LayoutError::Unaligned { region: r.name });
            }
            if let Some(other) = self.regions[..i]
                .iter()
                .find(|o| o.gpa < r.end() && r.gpa < o.end())
            {
                return Err(LayoutError::Overlap {
                    first: other.name,
                    second: r.name,
                });
            }
            if let RegionKind::Passthrough { hpa } = r.kind {
                if !hpa.is_page_aligned() {
                    return Err(LayoutError::Unaligned { region: r.name });
                }
                if let Some(d) = host
                    .devices
                    .iter()
                    .find(|d| hpa < d.hpa + d.size && d.hpa < hpa + r.size)
                {
                    return Err(LayoutError::ExposesHostDevice {
                        region: r.name,
                        device: d.name,
                        hpa: d.hpa,
                    });
                }
                if let Some(&(start, _)) = host
                    .ram
                    .iter()
                    .find(|&&(start, size)| hpa < start + size && start < hpa + r.size)
                {
                    return Err(LayoutError::ExposesHostRam {
                        region: r.name,
                        hpa: hpa.max(start),
                    });
                }
            }
        }
        if self.ram().is_none() {
            return Err(LayoutError::EntryNotInRam { entry: self.entry });
        }
        Ok(())
    }
}

/// A guest-physical address map that owns its regions: what a
/// [`crate::machine::Board`] derives for one VM (its RAM at the VM's
/// size). [`Layout::as_ref`] lends it as a [`GuestLayout`].
#[cfg(feature = "alloc")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    regions: alloc::vec::Vec<Region>,
    entry: GuestPhysAddr,
}

#[cfg(feature = "alloc")]
impl Layout {
    /// `regions`, with the image placed and started at `entry`.
    pub fn new(regions: alloc::vec::Vec<Region>, entry: GuestPhysAddr) -> Self {
        Layout { regions, entry }
    }

    /// Every region, in address order.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// The borrowed view every user of a layout takes.
    pub fn as_ref(&self) -> GuestLayout<'_> {
        GuestLayout {
            regions: &self.regions,
            entry: self.entry,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::{self, AARCH64_VIRT, Board, DEFAULT_RAM_SIZE, RISCV64_VIRT, X86_Q35};

    /// `board`'s layout with `size` bytes of RAM.
    fn sized(board: &Board, size: u64) -> Layout {
        board.layout(size).unwrap()
    }

    fn riscv() -> Layout {
        sized(&RISCV64_VIRT, DEFAULT_RAM_SIZE)
    }

    const HOST_RAM: &[(HostPhysAddr, u64)] = &[(hpa(0x8000_0000), 0x800_0000)];
    const HOST: HostResources<'static> = HostResources {
        ram: HOST_RAM,
        devices: &[],
    };

    fn ram_only(ram: &[(HostPhysAddr, u64)]) -> HostResources<'_> {
        HostResources { ram, devices: &[] }
    }

    const fn gpa(a: u64) -> GuestPhysAddr {
        GuestPhysAddr::new(a)
    }

    const fn hpa(a: u64) -> HostPhysAddr {
        HostPhysAddr::new(a)
    }

    #[test]
    fn riscv64_layout_is_valid_and_matches_spec() {
        let l = riscv();
        let l = l.as_ref();
        assert_eq!(l.validate(&HOST), Ok(()));
        assert_eq!(l.entry, gpa(0x8020_0000));
        assert_eq!(l.region_of(gpa(0x2200_0000)).unwrap().name, "pflash");
        assert_eq!(l.ram().unwrap().size, 128 << 20);
    }

    #[test]
    fn aarch64_layout_is_valid_and_matches_spec() {
        let layout = sized(&AARCH64_VIRT, DEFAULT_RAM_SIZE);
        let arm = layout.as_ref();
        assert_eq!(
            arm.validate(&ram_only(&[(hpa(0x4000_0000), 0x800_0000)])),
            Ok(())
        );
        assert_eq!(
            arm.region_of(gpa(0x0400_0000))
                .unwrap()
                .backing_for(gpa(0x0400_0010)),
            Backing::Device {
                hpa: hpa(0x0400_0000)
            }
        );
        assert_eq!(
            arm.region_of(gpa(0x0900_0000)).unwrap().kind,
            RegionKind::Device,
            "the PL011 is emulated"
        );
        assert!(
            arm.region_of(gpa(0x0a00_0000)).is_none(),
            "virtio-mmio is not the guest's"
        );
        assert!(
            arm.region_of(gpa(0x4800_0000)).is_none(),
            "host RAM beyond the guest's"
        );
    }

    #[test]
    fn x86_64_layout_is_valid_and_matches_spec() {
        let layout = sized(&X86_Q35, DEFAULT_RAM_SIZE);
        let pc = layout.as_ref();
        assert_eq!(pc.validate(&ram_only(&[(hpa(0), 0x800_0000)])), Ok(()));
        let pflash = pc.region_of(gpa(0xffc0_0000)).unwrap();
        assert_eq!(
            pflash.backing_for(gpa(0xffc0_0000)),
            Backing::Content(b"pfld")
        );
        let ioapic = pc.region_of(gpa(0xfec0_0010)).unwrap();
        assert_eq!(
            (ioapic.name, ioapic.gpa, ioapic.size, ioapic.kind),
            ("ioapic", gpa(0xfec0_0000), 0x1000, RegionKind::Device),
            "the I/O APIC is emulated, never the host's"
        );
        assert!(
            pc.region_of(gpa(0xfed0_0000)).is_none(),
            "the HPET is not the guest's"
        );
        assert_eq!(pc.ram().unwrap().gpa, gpa(0));
    }

    #[test]
    fn faults_resolve_to_their_region_or_nothing() {
        let l = riscv();
        let l = l.as_ref();
        assert_eq!(l.region_of(gpa(0x8000_0000)).unwrap().name, "ram");
        assert_eq!(l.region_of(gpa(0x87ff_ffff)).unwrap().name, "ram");
        assert!(
            l.region_of(gpa(0x8800_0000)).is_none(),
            "one past guest RAM is not the guest's"
        );
        assert!(l.region_of(gpa(0x7fff_ffff)).is_none());
        assert!(
            l.region_of(gpa(0x3000_0000)).is_none(),
            "PCI ECAM is not declared"
        );
        assert!(l.region_of(gpa(0)).is_none());
        assert!(l.region_of(gpa(u64::MAX)).is_none());
    }

    #[test]
    fn passthrough_backing_keeps_the_page_offset() {
        let l = riscv();
        let pflash = l.as_ref().region_of(gpa(0x2200_0000)).unwrap();
        assert_eq!(
            pflash.backing_for(gpa(0x2200_0000)),
            Backing::Device {
                hpa: hpa(0x2200_0000)
            }
        );
        assert_eq!(
            pflash.backing_for(gpa(0x2200_1abc)),
            Backing::Device {
                hpa: hpa(0x2200_1000)
            }
        );
        let ram = l.as_ref().ram().unwrap();
        assert_eq!(ram.backing_for(gpa(0x8012_3456)), Backing::FreshRam);
    }

    #[test]
    fn emulated_backing_carries_its_content() {
        let r = Region {
            name: "pflash",
            gpa: gpa(0xffc0_0000),
            size: 0x1000,
            perms: Perms::READ,
            kind: RegionKind::Emulated { content: b"pfld" },
        };
        assert_eq!(r.backing_for(gpa(0xffc0_0000)), Backing::Content(b"pfld"));
    }

    #[test]
    fn pass_through_of_host_ram_is_refused() {
        const BAD: GuestLayout<'static> = GuestLayout {
            regions: &[
                Region {
                    name: "ram",
                    gpa: gpa(0x8000_0000),
                    size: 0x1000,
                    perms: Perms::RWX,
                    kind: RegionKind::Ram,
                },
                Region {
                    name: "sneaky",
                    gpa: gpa(0x1000_0000),
                    size: 0x2000,
                    perms: Perms::RW,
                    kind: RegionKind::Passthrough {
                        hpa: hpa(0x87ff_f000),
                    },
                },
            ],
            entry: gpa(0x8000_0000),
        };
        assert_eq!(
            BAD.validate(&HOST),
            Err(LayoutError::ExposesHostRam {
                region: "sneaky",
                hpa: hpa(0x87ff_f000)
            })
        );
        // The same layout is fine on a host whose RAM is elsewhere.
        assert_eq!(
            BAD.validate(&ram_only(&[(hpa(0x4000_0000), 0x1000_0000)])),
            Ok(())
        );
    }

    #[test]
    fn overlap_alignment_and_entry_are_checked() {
        const OVERLAP: GuestLayout<'static> = GuestLayout {
            regions: &[
                Region {
                    name: "a",
                    gpa: gpa(0x1000),
                    size: 0x2000,
                    perms: Perms::RW,
                    kind: RegionKind::Ram,
                },
                Region {
                    name: "b",
                    gpa: gpa(0x2000),
                    size: 0x1000,
                    perms: Perms::RW,
                    kind: RegionKind::Ram,
                },
            ],
            entry: gpa(0x1000),
        };
        assert_eq!(
            OVERLAP.validate(&HostResources::default()),
            Err(LayoutError::Overlap {
                first: "a",
                second: "b"
            })
        );
        const UNALIGNED: GuestLayout<'static> = GuestLayout {
            regions: &[Region {
                name: "a",
                gpa: gpa(0x1800),
                size: 0x1000,
                perms: Perms::RW,
                kind: RegionKind::Ram,
            }],
            entry: gpa(0x1800),
        };
        assert_eq!(
            UNALIGNED.validate(&HostResources::default()),
            Err(LayoutError::Unaligned { region: "a" })
        );
        const NO_ENTRY: GuestLayout<'static> = GuestLayout {
            regions: &[Region {
                name: "a",
                gpa: gpa(0x1000),
                size: 0x1000,
                perms: Perms::RW,
                kind: RegionKind::Ram,
            }],
            entry: gpa(0x9000),
        };
        assert_eq!(
            NO_ENTRY.validate(&HostResources::default()),
            Err(LayoutError::EntryNotInRam { entry: gpa(0x9000) })
        );
    }

    #[test]
    fn regions_print_readably() {
        assert_eq!(Perms::RWX.to_string(), "rwx");
        assert_eq!(Perms::READ.to_string(), "r--");
        assert_eq!(
            RegionKind::Passthrough {
                hpa: hpa(0x2200_0000)
            }
            .to_string(),
            "device, passed through to 0x22000000"
        );
        assert_eq!(
            RegionKind::Emulated { content: b"pf\x01" }.to_string(),
            "emulated, a page starting with \"pf\\x01\""
        );
    }

    #[test]
    fn permissions_gate_accesses() {
        assert!(Perms::READ.allows(Access::Read));
        assert!(!Perms::READ.allows(Access::Write));
        assert!(!Perms::RW.allows(Access::Execute));
        assert!(Perms::RWX.allows(Access::Execute));
    }

    #[test]
    fn pass_through_of_a_host_driven_device_is_refused() {
        const UART: HostDevice = HostDevice {
            name: "console UART",
            hpa: hpa(0x1000_0000),
            size: 0x1000,
        };
        const LEAKY: GuestLayout<'static> = GuestLayout {
            regions: &[
                Region {
                    name: "ram",
                    gpa: gpa(0x8000_0000),
                    size: 0x1000,
                    perms: Perms::RWX,
                    kind: RegionKind::Ram,
                },
                Region {
                    name: "uart",
                    gpa: gpa(0x1000_0000),
                    size: 0x1000,
                    perms: Perms::RW,
                    kind: RegionKind::Passthrough {
                        hpa: hpa(0x1000_0000),
                    },
                },
            ],
            entry: gpa(0x8000_0000),
        };
        let host = HostResources {
            ram: HOST_RAM,
            devices: &[UART],
        };
        let err = LEAKY.validate(&host).unwrap_err();
        assert_eq!(
            err,
            LayoutError::ExposesHostDevice {
                region: "uart",
                device: "console UART",
                hpa: hpa(0x1000_0000)
            }
        );
        assert_eq!(
            err.to_string(),
            "guest region `uart` would pass the hypervisor's own console UART at 0x10000000 through to the guest"
        );
        // The shipped layouts emulate the devices the host drives.
        assert_eq!(riscv().as_ref().validate(&host), Ok(()));
    }

    #[test]
    fn ram_is_resized_and_checked_against_the_host() {
        let small = sized(&RISCV64_VIRT, 64 << 20);
        let small = small.as_ref();
        assert_eq!(small.validate(&HOST), Ok(()));
        assert_eq!(small.ram().unwrap().size, 64 << 20);
        assert!(small.region_of(gpa(0x8400_0000)).is_none());
        assert_eq!(small.regions.len(), riscv().regions().len());
        assert_eq!(small.check_ram_backable(64 << 20), Ok(()));
        assert_eq!(
            small.check_ram_backable(63 << 20).unwrap_err().to_string(),
            "guest RAM of 64 MiB is more than the 63 MiB of host memory free to back it"
        );
        assert_eq!(
            RISCV64_VIRT.layout(0x1234).unwrap_err(),
            LayoutError::BadRamSize { size: 0x1234 }
        );
        assert_eq!(
            RISCV64_VIRT.layout(0),
            Err(LayoutError::BadRamSize { size: 0 })
        );
        // x86_64: RAM from 0 grown into the I/O APIC page is an overlap.
        let huge = sized(&X86_Q35, 0x1_0000_0000);
        assert_eq!(
            huge.as_ref().validate(&HostResources::default()),
            Err(LayoutError::Overlap {
                first: "ram",
                second: "ioapic"
            })
        );
        let _ = machine::DEFAULT_RAM_SIZE;
    }
}
