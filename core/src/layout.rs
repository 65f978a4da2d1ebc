//! The guest's physical address map, and the policy that decides what a
//! faulting guest-physical address is.
//!
//! A [`GuestLayout`] lists every region the hypervisor declares for the
//! guest. A nested page fault inside a region is served by mapping one page
//! as [`Region::backing_for`] says; a fault outside every region is a wild
//! access and stops the VM. Pass-through regions are checked against the
//! host's RAM so the host never hands its own memory to the guest.

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
    /// Guest RAM: each page is a fresh, zeroed host frame allocated on the
    /// first fault (or at load time for the image).
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
            RegionKind::Ram => f.write_str("RAM, a zeroed page on first touch"),
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
            LayoutError::EntryNotInRam { entry } => {
                write!(f, "guest entry point {entry:#x} is not in guest RAM")
            }
        }
    }
}

/// The guest-physical address map of one VM.
#[derive(Clone, Copy, Debug)]
pub struct GuestLayout {
    /// Every region, in the order the report lists them.
    pub regions: &'static [Region],
    /// Where the guest image is placed and where the vCPU starts.
    pub entry: GuestPhysAddr,
}

impl GuestLayout {
    /// The region containing `gpa`, if the guest owns that address.
    pub fn region_of(&self, gpa: GuestPhysAddr) -> Option<&Region> {
        self.regions.iter().find(|r| r.contains(gpa))
    }

    /// The RAM region the image is loaded into.
    pub fn ram(&self) -> Option<&Region> {
        self.region_of(self.entry)
            .filter(|r| r.kind == RegionKind::Ram)
    }

    /// Checks alignment, overlap, the entry point, and that no pass-through
    /// region reaches into any of `host_ram` (`(start, size)` ranges).
    pub fn validate(&self, host_ram: &[(HostPhysAddr, u64)]) -> Result<(), LayoutError> {
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
                if let Some(&(start, _)) = host_ram
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

/// The layouts of the machines this project boots, as SPEC.md gives them.
pub mod machines {
    use super::*;

    /// QEMU `virt` (riscv64): 16 MiB of RAM at 0x8000_0000 with the image
    /// at 0x8020_0000 (where OpenSBI would put an S-mode kernel), the
    /// 16550 UART and pflash1 passed through from the real machine.
    pub const RISCV64_VIRT: GuestLayout = GuestLayout {
        regions: &[
            Region {
                name: "plic",
                gpa: GuestPhysAddr::new(0x0c00_0000),
                size: 0x60_0000,
                perms: Perms::RW,
                kind: RegionKind::Device,
            },
            Region {
                name: "uart",
                gpa: GuestPhysAddr::new(0x1000_0000),
                size: 0x1000,
                perms: Perms::RW,
                kind: RegionKind::Device,
            },
            Region {
                name: "pflash",
                gpa: GuestPhysAddr::new(0x2200_0000),
                size: 0x200_0000,
                perms: Perms::READ,
                kind: RegionKind::Passthrough {
                    hpa: HostPhysAddr::new(0x2200_0000),
                },
            },
            Region {
                name: "ram",
                gpa: GuestPhysAddr::new(0x8000_0000),
                size: 0x100_0000,
                perms: Perms::RWX,
                kind: RegionKind::Ram,
            },
        ],
        entry: GuestPhysAddr::new(0x8020_0000),
    };

    /// QEMU `virt` (aarch64, EL2): 16 MiB of RAM at IPA 0x4000_0000 with
    /// the image at 0x4020_0000, and pflash1 passed through at 0x0400_0000.
    /// The console is a hypercall (HVC), so the PL011 is not given away.
    pub const AARCH64_VIRT: GuestLayout = GuestLayout {
        regions: &[
            Region {
                name: "pflash",
                gpa: GuestPhysAddr::new(0x0400_0000),
                size: 0x400_0000,
                perms: Perms::READ,
                kind: RegionKind::Passthrough {
                    hpa: HostPhysAddr::new(0x0400_0000),
                },
            },
            Region {
                name: "ram",
                gpa: GuestPhysAddr::new(0x4000_0000),
                size: 0x100_0000,
                perms: Perms::RWX,
                kind: RegionKind::Ram,
            },
        ],
        entry: GuestPhysAddr::new(0x4020_0000),
    };

    /// QEMU q35 (x86_64, SVM): 16 MiB of RAM from GPA 0, the boot
    /// structures of `x86_boot` below 1 MiB, the image at 1 MiB, and an
    /// emulated pflash page holding `pfld` at 0xFFC0_0000. The console is a
    /// hypercall, so no device is passed through.
    pub const X86_64_Q35: GuestLayout = GuestLayout {
        regions: &[
            Region {
                name: "ram",
                gpa: GuestPhysAddr::new(0),
                size: 0x100_0000,
                perms: Perms::RWX,
                kind: RegionKind::Ram,
            },
            Region {
                name: "pflash",
                gpa: GuestPhysAddr::new(0xffc0_0000),
                size: 0x1000,
                perms: Perms::READ,
                kind: RegionKind::Emulated {
                    content: &crate::scenario::PFLASH_MAGIC,
                },
            },
        ],
        entry: GuestPhysAddr::new(crate::arch::x86_64::boot::IMAGE),
    };
}

#[cfg(test)]
mod tests {
    use super::machines::RISCV64_VIRT;
    use super::*;

    const HOST_RAM: &[(HostPhysAddr, u64)] = &[(hpa(0x8000_0000), 0x800_0000)];

    const fn gpa(a: u64) -> GuestPhysAddr {
        GuestPhysAddr::new(a)
    }

    const fn hpa(a: u64) -> HostPhysAddr {
        HostPhysAddr::new(a)
    }

    #[test]
    fn riscv64_layout_is_valid_and_matches_spec() {
        assert_eq!(RISCV64_VIRT.validate(HOST_RAM), Ok(()));
        assert_eq!(RISCV64_VIRT.entry, gpa(0x8020_0000));
        assert_eq!(
            RISCV64_VIRT.region_of(gpa(0x2200_0000)).unwrap().name,
            "pflash"
        );
        assert_eq!(RISCV64_VIRT.ram().unwrap().size, 16 << 20);
    }

    #[test]
    fn aarch64_layout_is_valid_and_matches_spec() {
        use super::machines::AARCH64_VIRT;
        assert_eq!(
            AARCH64_VIRT.validate(&[(hpa(0x4000_0000), 0x800_0000)]),
            Ok(())
        );
        assert_eq!(
            AARCH64_VIRT
                .region_of(gpa(0x0400_0000))
                .unwrap()
                .backing_for(gpa(0x0400_0010)),
            Backing::Device {
                hpa: hpa(0x0400_0000)
            }
        );
        assert!(
            AARCH64_VIRT.region_of(gpa(0x0900_0000)).is_none(),
            "the PL011 stays the host's"
        );
        assert!(
            AARCH64_VIRT.region_of(gpa(0x4100_0000)).is_none(),
            "host RAM beyond the guest's"
        );
    }

    #[test]
    fn x86_64_layout_is_valid_and_matches_spec() {
        use super::machines::X86_64_Q35;
        assert_eq!(X86_64_Q35.validate(&[(hpa(0), 0x800_0000)]), Ok(()));
        let pflash = X86_64_Q35.region_of(gpa(0xffc0_0000)).unwrap();
        assert_eq!(
            pflash.backing_for(gpa(0xffc0_0000)),
            Backing::Content(b"pfld")
        );
        assert!(
            X86_64_Q35.region_of(gpa(0xfec0_0000)).is_none(),
            "the IO APIC is not the guest's"
        );
        assert_eq!(X86_64_Q35.ram().unwrap().gpa, gpa(0));
    }

    #[test]
    fn faults_resolve_to_their_region_or_nothing() {
        let l = RISCV64_VIRT;
        assert_eq!(l.region_of(gpa(0x8000_0000)).unwrap().name, "ram");
        assert_eq!(l.region_of(gpa(0x80ff_ffff)).unwrap().name, "ram");
        assert!(
            l.region_of(gpa(0x8100_0000)).is_none(),
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
        let pflash = RISCV64_VIRT.region_of(gpa(0x2200_0000)).unwrap();
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
        let ram = RISCV64_VIRT.ram().unwrap();
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
        const BAD: GuestLayout = GuestLayout {
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
            BAD.validate(HOST_RAM),
            Err(LayoutError::ExposesHostRam {
                region: "sneaky",
                hpa: hpa(0x87ff_f000)
            })
        );
        // The same layout is fine on a host whose RAM is elsewhere.
        assert_eq!(BAD.validate(&[(hpa(0x4000_0000), 0x1000_0000)]), Ok(()));
    }

    #[test]
    fn overlap_alignment_and_entry_are_checked() {
        const OVERLAP: GuestLayout = GuestLayout {
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
            OVERLAP.validate(&[]),
            Err(LayoutError::Overlap {
                first: "a",
                second: "b"
            })
        );
        const UNALIGNED: GuestLayout = GuestLayout {
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
            UNALIGNED.validate(&[]),
            Err(LayoutError::Unaligned { region: "a" })
        );
        const NO_ENTRY: GuestLayout = GuestLayout {
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
            NO_ENTRY.validate(&[]),
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
}
