//! Finding QEMU: the system emulator of an architecture must be installed
//! and recent enough, or the user is told which Debian package to install.
//! (`setup.rs` installs it before `run`, `test` and `bench`; this check
//! stays as the last word before QEMU is started.)

use crate::arch::QemuSpec;
use anyhow::{Result, bail};
use std::process::{Command, Stdio};

/// Checks that `qemu.binary` runs and is at least `qemu.min_version`.
pub fn check_qemu(qemu: &QemuSpec) -> Result<()> {
    let (major, minor) = qemu.min_version;
    let output = Command::new(qemu.binary)
        .arg("--version")
        .stdin(Stdio::null())
        .output();
    let text = match output {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        _ => bail!(
            "{} not found (need QEMU >= {major}.{minor}). {}",
            qemu.binary,
            install_hint(qemu)
        ),
    };
    check_version_text(qemu, &text)
}

/// How to get a recent enough QEMU. Debian 12's own is 7.2; 10.x comes
/// from its backports suite.
fn install_hint(qemu: &QemuSpec) -> String {
    let (major, minor) = qemu.min_version;
    format!(
        "Install it with: sudo apt-get install -t bookworm-backports {} \
         (Debian 12, with bookworm-backports in the apt sources; `cargo xtask setup` adds it \
         and installs QEMU), \
         or your distribution's QEMU >= {major}.{minor}",
        qemu.debian_package
    )
}

/// Judges the output of `qemu.binary --version` against `qemu.min_version`.
fn check_version_text(qemu: &QemuSpec, text: &str) -> Result<()> {
    let (major, minor) = qemu.min_version;
    let install = install_hint(qemu);
    match parse_version(text) {
        Some(found) if (found.0, found.1) >= (major, minor) => Ok(()),
        Some(found) => bail!(
            "{} is too old: found {}.{}.{}, need >= {major}.{minor}. {install}",
            qemu.binary,
            found.0,
            found.1,
            found.2
        ),
        None => bail!(
            "cannot tell the version of {} from {:?}. {install}",
            qemu.binary,
            text.trim()
        ),
    }
}

/// The `X.Y.Z` of `QEMU emulator version X.Y.Z (...)`.
pub fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let rest = &text[text.find("version ")? + "version ".len()..];
    let word = rest.split_whitespace().next()?;
    let mut numbers = word.split('.').map(|n| n.parse::<u32>().ok());
    let major = numbers.next()??;
    let minor = numbers.next().flatten().unwrap_or(0);
    let patch = numbers.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_the_banner() {
        let debian = "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\nCopyright (c) 2003-2025";
        assert_eq!(parse_version(debian), Some((10, 0, 2)));
        assert_eq!(
            parse_version("QEMU emulator version 7.2.15"),
            Some((7, 2, 15))
        );
        assert_eq!(parse_version("QEMU emulator version 8.1"), Some((8, 1, 0)));
        assert_eq!(parse_version("something else"), None);
    }

    #[test]
    fn a_missing_binary_names_the_package_to_install() {
        let spec = QemuSpec {
            binary: "qemu-system-does-not-exist",
            debian_package: "qemu-system-misc",
            min_version: (7, 2),
            args: |_| Vec::new(),
            without_virtualization: &[],
        };
        let err = check_qemu(&spec).unwrap_err().to_string();
        assert!(
            err.starts_with("qemu-system-does-not-exist not found"),
            "{err}"
        );
        assert!(
            err.contains("sudo apt-get install -t bookworm-backports qemu-system-misc"),
            "{err}"
        );
    }

    #[test]
    fn a_qemu_older_than_the_minimum_is_refused_with_the_install_command() {
        let spec = QemuSpec {
            binary: "qemu-system-riscv64",
            debian_package: "qemu-system-misc",
            min_version: crate::arch::QEMU_MIN_VERSION,
            args: |_| Vec::new(),
            without_virtualization: &[],
        };
        let debian12 = "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n";
        let err = check_version_text(&spec, debian12).unwrap_err().to_string();
        assert!(
            err.starts_with("qemu-system-riscv64 is too old: found 7.2.22, need >= 10.0."),
            "{err}"
        );
        assert!(
            err.contains("sudo apt-get install -t bookworm-backports qemu-system-misc"),
            "{err}"
        );
        assert!(check_version_text(&spec, "QEMU emulator version 10.0.2 (Debian)").is_ok());
        let garbled = check_version_text(&spec, "no idea")
            .unwrap_err()
            .to_string();
        assert!(
            garbled.starts_with("cannot tell the version of qemu-system-riscv64"),
            "{garbled}"
        );
    }
}
