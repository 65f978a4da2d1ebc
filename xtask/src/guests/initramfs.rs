//! The initramfs a Linux guest boots into, as a `newc` archive
//! (`cpio.rs`): on aarch64, Debian's statically linked busybox and an
//! `/init` script that shows userspace is up and powers the machine off
//! ([`build`]); on riscv64, a static `/init` program alone
//! (`xtask/linux/init.c`, [`with_init`]) that does the same and prints the
//! `isa` line of `/proc/cpuinfo`. Both print the same lines.
//!
//! `/init` mounts proc and sys, prints [`USERSPACE_LINE`], `uname -a` and
//! the first lines of `/proc/interrupts`, and powers off (`poweroff -f`:
//! PSCI `SYSTEM_OFF`). If the kernel command line holds the word
//! [`INIT_FAILS_WORD`], it prints [`INIT_FAILS_LINE`] and exits 1 instead,
//! so that the kernel panics ("Attempted to kill init!"): the failure path
//! of a real guest.

use crate::cpio::Archive;
use anyhow::Result;

/// What `/init` prints once it runs.
pub const USERSPACE_LINE: &str = "guestaspace: userspace is up";
/// The kernel command-line word that makes `/init` fail.
pub const INIT_FAILS_WORD: &str = "guestaspace.init_fails";
/// What `/init` prints before it fails on purpose.
pub const INIT_FAILS_LINE: &str = "guestaspace: guestaspace.init_fails is set, /init exits 1";

/// Where busybox is, and the applets `/init` runs by name (links to it).
const BUSYBOX: &str = "bin/busybox";
const APPLETS: [&str; 9] = [
    "sh", "mount", "uname", "head", "poweroff", "nproc", "taskset", "cut", "grep",
];

/// The script run as `/init` (by busybox's shell, through its `#!` line).
pub fn init_script() -> String {
    format!(
        r#"#!/bin/busybox sh
# /init of the initramfs written by cargo xtask (guestaspace).
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
read -r cmdline < /proc/cmdline
for word in $cmdline; do
    if [ "$word" = {INIT_FAILS_WORD} ]; then
        echo "{INIT_FAILS_LINE}"
        exit 1
    fi
done
echo "{USERSPACE_LINE}"
uname -a
cpus=$(nproc)
echo "guestaspace: nproc $cpus"
cpu=0
while [ $cpu -lt $cpus ]; do
    # Field 39 of /proc/self/stat: the CPU the reading process (cut,
    # pinned by taskset) last ran on.
    on=$(taskset -c $cpu cut -d ' ' -f 39 /proc/self/stat)
    echo "guestaspace: a process pinned to CPU $cpu runs on CPU $on"
    cpu=$((cpu + 1))
done
head -n 4 /proc/interrupts
grep IPI /proc/interrupts
poweroff -f
"#
    )
}

/// The initramfs around the static busybox binary `busybox`.
pub fn build(busybox: &[u8]) -> Result<Vec<u8>> {
    let mut archive = Archive::new();
    archive.dir("bin", 0o755)?;
    archive.file(BUSYBOX, 0o755, busybox)?;
    for applet in APPLETS {
        archive.symlink(&format!("bin/{applet}"), "busybox")?;
    }
    archive.dir("dev", 0o755)?;
    // The kernel opens /dev/console for init's standard streams: without
    // it, init runs with no output at all.
    archive.char_device("dev/console", 0o600, 5, 1)?;
    archive.dir("proc", 0o555)?;
    archive.dir("sys", 0o555)?;
    archive.file("init", 0o755, init_script().as_bytes())?;
    Ok(archive.finish())
}

/// The initramfs whose `/init` is the static executable `init`: the
/// console device and an empty `/proc` beside it.
pub fn with_init(init: &[u8]) -> Result<Vec<u8>> {
    let mut archive = Archive::new();
    archive.dir("dev", 0o755)?;
    archive.char_device("dev/console", 0o600, 5, 1)?;
    archive.dir("proc", 0o555)?;
    archive.file("init", 0o755, init)?;
    Ok(archive.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio::test_reader::read_archive;

    #[test]
    fn the_initramfs_has_busybox_its_links_the_console_and_init() {
        let entries = read_archive(&build(b"\x7fELF busybox").unwrap());
        let summary: Vec<(&str, u32, &[u8])> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.mode, e.data.as_slice()))
            .collect();
        let script = init_script();
        assert_eq!(
            summary,
            [
                ("bin", 0o040_755, &b""[..]),
                ("bin/busybox", 0o100_755, b"\x7fELF busybox"),
                ("bin/sh", 0o120_777, b"busybox"),
                ("bin/mount", 0o120_777, b"busybox"),
                ("bin/uname", 0o120_777, b"busybox"),
                ("bin/head", 0o120_777, b"busybox"),
                ("bin/poweroff", 0o120_777, b"busybox"),
                ("bin/nproc", 0o120_777, b"busybox"),
                ("bin/taskset", 0o120_777, b"busybox"),
                ("bin/cut", 0o120_777, b"busybox"),
                ("bin/grep", 0o120_777, b"busybox"),
                ("dev", 0o040_755, b""),
                ("dev/console", 0o020_600, b""),
                ("proc", 0o040_555, b""),
                ("sys", 0o040_555, b""),
                ("init", 0o100_755, script.as_bytes()),
            ]
        );
        assert_eq!(entries[12].rdev, (5, 1), "/dev/console is c 5 1");
    }

    #[test]
    fn a_static_init_needs_only_the_console_and_proc() {
        let entries = read_archive(&with_init(b"\x7fELF init").unwrap());
        let summary: Vec<(&str, u32)> = entries.iter().map(|e| (e.name.as_str(), e.mode)).collect();
        assert_eq!(
            summary,
            [
                ("dev", 0o040_755),
                ("dev/console", 0o020_600),
                ("proc", 0o040_555),
                ("init", 0o100_755),
            ]
        );
        assert_eq!(entries[1].rdev, (5, 1));
        assert_eq!(entries[3].data, b"\x7fELF init");
    }

    #[test]
    fn the_c_init_prints_the_lines_the_cases_look_for() {
        let source = super::super::linux_riscv64::INIT_SOURCE;
        for line in [USERSPACE_LINE, INIT_FAILS_LINE] {
            assert!(source.contains(&format!("\"{line}\\n\"")), "{line}");
        }
        assert!(source.contains(&format!("\"{INIT_FAILS_WORD}\"")));
        // It fails before it says userspace is up.
        let fails = source.find(INIT_FAILS_LINE).unwrap();
        assert!(fails < source.find(USERSPACE_LINE).unwrap());
    }

    #[test]
    fn init_runs_under_busybox_and_fails_only_when_asked() {
        let script = init_script();
        assert!(script.starts_with("#!/bin/busybox sh\n"));
        assert!(script.contains(&format!("echo \"{USERSPACE_LINE}\"")));
        assert!(script.contains(&format!("\"$word\" = {INIT_FAILS_WORD} ]")));
        assert!(script.ends_with("poweroff -f\n"));
        // The failure exits before the userspace line.
        let fails = script.find("exit 1").unwrap();
        assert!(fails < script.find(USERSPACE_LINE).unwrap());
    }
}
