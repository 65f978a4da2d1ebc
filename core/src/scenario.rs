//! What the guest's pflash tells it, beyond the magic: a test scenario.
//!
//! The pflash image `cargo xtask` writes starts with the magic `pfld` and a
//! little-endian u32 scenario code, so the end-to-end tests can ask the same
//! gkernel to misbehave in a chosen way without rebuilding it.

/// The first four bytes of the pflash image.
pub const PFLASH_MAGIC: [u8; 4] = *b"pfld";
/// The magic read as a little-endian u32, as the guest prints it.
pub const PFLASH_MAGIC_U32: u32 = u32::from_le_bytes(PFLASH_MAGIC);
/// Byte offset of the scenario code in the pflash image.
pub const SCENARIO_OFFSET: usize = 4;

/// How the guest behaves after its pflash read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Scenario {
    /// Read pflash, print the magic, shut down.
    Normal = 0,
    /// After the pflash read, touch a guest-physical address the
    /// hypervisor never declared.
    WildAccess = 1,
    /// After the pflash read, spin forever without shutting down.
    NeverShutdown = 2,
    /// Time null hypercalls and fresh-page faults, then shut down (for
    /// `cargo xtask bench`); the counts follow the scenario code.
    Bench = 3,
    /// After the pflash read, crash the guest CPU (a triple fault on
    /// x86_64, a kernel panic on the ArceOS guest).
    Crash = 4,
    /// After the pflash read, write to pflash, which is read-only.
    PflashWrite = 5,
    /// Ask the console-write hypercall to print from an address outside
    /// guest RAM; the guest prints the error it gets back and shuts down.
    BadConsolePointer = 6,
    /// Read a line typed on the serial console through the emulated UART's
    /// receive interrupt, echo it, and shut down.
    Echo = 7,
    /// Set the UART's divisor-latch bit (DLAB), then touch an undeclared
    /// address: the hypervisor's diagnostic must still reach its console.
    DlabWildAccess = 8,
    /// Make a PSCI `SYSTEM_OFF` call with `SMC` instead of `HVC` (aarch64):
    /// the hypervisor offers SMCCC over HVC only, so it stops the VM
    /// naming the SMC.
    Smc = 9,
    /// Read an MSR the hypervisor's policy does not know (x86_64): the
    /// guest gets `#GP(0)` as from a CPU without it, and ArceOS panics on
    /// the unhandled exception.
    UnknownMsr = 10,
    /// Execute `INVLPGA` (x86_64): the guest's CPU shows no SVM, so it
    /// gets `#UD`, and ArceOS panics on the unhandled exception.
    SvmInstruction = 11,
    /// Make a `VMMCALL` (PSCI `SYSTEM_OFF`) from CPL 3 (x86_64): the
    /// hypervisor refuses it (RAX = -1) and the VM goes on; the user
    /// code's `UD2` brings the kernel back, which prints RAX.
    UserVmmcall = 12,
    /// Stop the guest's only CPU through its firmware interface (riscv64:
    /// SBI HSM `hart_stop`; aarch64: PSCI `CPU_OFF`): no CPU is left to run
    /// it, so the VM stops as failed, not as powered off.
    CpuStop = 13,
    /// Write `SLP_EN` with sleep type 1 (S3 on QEMU's q35) to the PM1a
    /// control port (x86_64): a sleeping state the hypervisor does not
    /// emulate, so the VM stops as failed, not as powered off.
    AcpiSleep = 14,
    /// With 2 vCPUs (riscv64, aarch64): start CPU 1 through the firmware
    /// interface (after the calls the spec refuses: an entry outside RAM,
    /// a CPU that does not exist, one that is on), exchange IPIs with it
    /// for many rounds, ask for remote fences, and power off.
    Smp = 15,
    /// [`Scenario::Smp`] up to the first IPI, which tells CPU 1 to read an
    /// undeclared address: the VM stops naming vCPU 1.
    SmpFault = 16,
}

/// Byte offset of the bench's hypercall count (u32 LE) in the pflash image.
pub const BENCH_HYPERCALLS_OFFSET: usize = 8;
/// Byte offset of the bench's fresh-page count (u32 LE) in the pflash image.
pub const BENCH_PAGES_OFFSET: usize = 12;
/// The counts the bench asks for: null hypercalls, and fresh pages touched.
/// (gkernel reads them from pflash, or uses these values where its scenario
/// is built in.)
pub const BENCH_HYPERCALLS: u32 = 10_000;
/// Fresh pages the bench touches.
pub const BENCH_PAGES: u32 = 1000;

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 17] = [
        Scenario::Normal,
        Scenario::WildAccess,
        Scenario::NeverShutdown,
        Scenario::Bench,
        Scenario::Crash,
        Scenario::PflashWrite,
        Scenario::BadConsolePointer,
        Scenario::Echo,
        Scenario::DlabWildAccess,
        Scenario::Smc,
        Scenario::UnknownMsr,
        Scenario::SvmInstruction,
        Scenario::UserVmmcall,
        Scenario::CpuStop,
        Scenario::AcpiSleep,
        Scenario::Smp,
        Scenario::SmpFault,
    ];

    /// The scenario for a code; unknown codes (an erased flash reads
    /// 0xffff_ffff) mean a normal run.
    pub fn from_code(code: u32) -> Scenario {
        Self::ALL
            .into_iter()
            .find(|s| *s as u32 == code)
            .unwrap_or(Scenario::Normal)
    }

    /// The scenario called `name`.
    pub fn from_name(name: &str) -> Option<Scenario> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The scenario's command-line name.
    pub const fn name(self) -> &'static str {
        match self {
            Scenario::Normal => "normal",
            Scenario::WildAccess => "wild-access",
            Scenario::NeverShutdown => "never-shutdown",
            Scenario::Bench => "bench",
            Scenario::Crash => "crash",
            Scenario::PflashWrite => "pflash-write",
            Scenario::BadConsolePointer => "bad-console-pointer",
            Scenario::Echo => "echo",
            Scenario::DlabWildAccess => "dlab-wild-access",
            Scenario::Smc => "smc",
            Scenario::UnknownMsr => "unknown-msr",
            Scenario::SvmInstruction => "svm-instruction",
            Scenario::UserVmmcall => "user-vmmcall",
            Scenario::CpuStop => "cpu-stop",
            Scenario::AcpiSleep => "acpi-sleep",
            Scenario::Smp => "smp",
            Scenario::SmpFault => "smp-fault",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_reads_as_the_spec_value() {
        assert_eq!(PFLASH_MAGIC_U32, 0x646c_6670);
    }

    #[test]
    fn codes_round_trip_and_unknown_is_normal() {
        for s in Scenario::ALL {
            assert_eq!(Scenario::from_code(s as u32), s);
        }
        assert_eq!(Scenario::from_code(0xffff_ffff), Scenario::Normal);
        assert_eq!(Scenario::from_code(1).name(), "wild-access");
        for s in Scenario::ALL {
            assert_eq!(Scenario::from_name(s.name()), Some(s));
        }
        assert_eq!(Scenario::from_name("nonsense"), None);
    }
}
