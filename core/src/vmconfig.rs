//! The VM's settings, read from a small text file on the boot disk
//! (`/etc/vm.conf`, written by `cargo xtask run`): the guest's RAM size,
//! the guest-independent watchdog, and whether RAM is mapped in 2 MiB
//! blocks.
//!
//! The format is one `key = value` per line; `#` starts a comment, blank
//! lines are ignored. Every line must be understood: an unknown key, a bad
//! value or a duplicate is an error naming the line, so a typo never turns
//! into a silent default.
//!
//! ```text
//! mem = 128M       # guest RAM: bytes, or with a K, M or G suffix
//! watchdog = 30    # seconds of guest run time before the VM is stopped
//! blocks = off     # map RAM one 4 KiB page per fault (default: on)
//! ```

use core::fmt;

/// Where the hypervisor looks for the settings on the disk.
pub const PATH: &str = "/etc/vm.conf";

/// The settings of one VM. A missing file means all defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmConfig {
    /// Guest RAM in bytes (`None`: the layout's default).
    pub mem: Option<u64>,
    /// Seconds the guest may run before the hypervisor stops it
    /// (`None`: no watchdog).
    pub watchdog_secs: Option<u64>,
    /// Map guest RAM with 2 MiB blocks where a whole block fits (`on`, the
    /// default); `off` maps one 4 KiB page per fault, to watch every one.
    pub blocks: bool,
}

impl VmConfig {
    /// No file: every setting at its default.
    pub const DEFAULT: VmConfig = VmConfig {
        mem: None,
        watchdog_secs: None,
        blocks: true,
    };
}

/// The file's text for these settings (what `cargo xtask run` writes):
/// one line per setting that is not the default, sizes in the largest unit
/// that divides them, so that [`parse`] reads back the same settings.
impl fmt::Display for VmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("# VM settings, written by cargo xtask\n")?;
        if let Some(bytes) = self.mem {
            let (n, unit) = [(30, "G"), (20, "M"), (10, "K")]
                .into_iter()
                .find(|&(shift, _)| bytes != 0 && bytes % (1 << shift) == 0)
                .map_or((bytes, ""), |(shift, unit)| (bytes >> shift, unit));
            writeln!(f, "mem = {n}{unit}")?;
        }
        if let Some(secs) = self.watchdog_secs {
            writeln!(f, "watchdog = {secs}")?;
        }
        if !self.blocks {
            writeln!(f, "blocks = off")?;
        }
        Ok(())
    }
}

/// Why the settings cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError<'a> {
    /// A line that is not `key = value`.
    Syntax {
        /// 1-based line number.
        line: usize,
    },
    /// A key this hypervisor does not know.
    UnknownKey {
        /// 1-based line number.
        line: usize,
        /// The key as written.
        key: &'a str,
    },
    /// A key given twice.
    Duplicate {
        /// 1-based line number of the second occurrence.
        line: usize,
        /// The key as written.
        key: &'a str,
    },
    /// A value that does not parse or is out of range for its key.
    BadValue {
        /// 1-based line number.
        line: usize,
        /// The key.
        key: &'a str,
        /// The value as written.
        value: &'a str,
        /// What the key expects.
        expected: &'static str,
    },
}

impl fmt::Display for ConfigError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ConfigError::Syntax { line } => write!(f, "{PATH} line {line}: expected `key = value`"),
            ConfigError::UnknownKey { line, key } => {
                write!(f, "{PATH} line {line}: unknown setting `{key}`")
            }
            ConfigError::Duplicate { line, key } => {
                write!(f, "{PATH} line {line}: `{key}` is set twice")
            }
            ConfigError::BadValue {
                line,
                key,
                value,
                expected,
            } => {
                write!(
                    f,
                    "{PATH} line {line}: `{key} = {value}`: expected {expected}"
                )
            }
        }
    }
}

/// Parses the file's text.
pub fn parse(text: &str) -> Result<VmConfig, ConfigError<'_>> {
    let mut config = VmConfig::DEFAULT;
    // `blocks` has a default value rather than an `Option`.
    let mut seen_blocks = false;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let (key, value) = content
            .split_once('=')
            .ok_or(ConfigError::Syntax { line })?;
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() || value.is_empty() {
            return Err(ConfigError::Syntax { line });
        }
        match key {
            "mem" => {
                if config.mem.is_some() {
                    return Err(ConfigError::Duplicate { line, key });
                }
                let bytes = parse_size(value).ok_or(ConfigError::BadValue {
                    line,
                    key,
                    value,
                    expected: "a size such as 128M (bytes, or K, M, G)",
                })?;
                config.mem = Some(bytes);
            }
            "watchdog" => {
                if config.watchdog_secs.is_some() {
                    return Err(ConfigError::Duplicate { line, key });
                }
                let secs =
                    value
                        .parse::<u64>()
                        .ok()
                        .filter(|&s| s > 0)
                        .ok_or(ConfigError::BadValue {
                            line,
                            key,
                            value,
                            expected: "a whole number of seconds > 0",
                        })?;
                config.watchdog_secs = Some(secs);
            }
            "blocks" => {
                if seen_blocks {
                    return Err(ConfigError::Duplicate { line, key });
                }
                seen_blocks = true;
                config.blocks = match value {
                    "on" => true,
                    "off" => false,
                    _ => {
                        return Err(ConfigError::BadValue {
                            line,
                            key,
                            value,
                            expected: "on or off",
                        });
                    }
                };
            }
            _ => return Err(ConfigError::UnknownKey { line, key }),
        }
    }
    Ok(config)
}

/// `128M`, `64K`, `1G` or a plain byte count.
pub fn parse_size(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 10),
        b'M' | b'm' => (&text[..text.len() - 1], 20),
        b'G' | b'g' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_read_with_comments_and_blank_lines() {
        let text = "# written by cargo xtask\n\nmem = 128M   # guest RAM\nwatchdog=30\n";
        assert_eq!(
            parse(text),
            Ok(VmConfig {
                mem: Some(128 << 20),
                watchdog_secs: Some(30),
                blocks: true,
            })
        );
        assert_eq!(
            parse("blocks = off # every fault a page"),
            Ok(VmConfig {
                blocks: false,
                ..VmConfig::DEFAULT
            })
        );
        assert_eq!(parse("blocks=on"), Ok(VmConfig::DEFAULT));
        assert_eq!(parse(""), Ok(VmConfig::DEFAULT));
    }

    #[test]
    fn sizes_take_suffixes() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size("256m"), Some(256 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("G"), None);
        assert_eq!(parse_size("12Q"), None);
        assert_eq!(parse_size("99999999999999999999G"), None);
    }

    #[test]
    fn every_mistake_names_its_line() {
        assert_eq!(parse("mem 128M"), Err(ConfigError::Syntax { line: 1 }));
        assert_eq!(
            parse("\nmemory = 1M"),
            Err(ConfigError::UnknownKey {
                line: 2,
                key: "memory"
            })
        );
        assert_eq!(
            parse("mem = 1M\nmem = 2M"),
            Err(ConfigError::Duplicate {
                line: 2,
                key: "mem"
            })
        );
        let err = parse("watchdog = 0").unwrap_err();
        assert!(matches!(
            err,
            ConfigError::BadValue {
                line: 1,
                key: "watchdog",
                ..
            }
        ));
        assert_eq!(
            parse("mem = lots").unwrap_err().to_string(),
            "/etc/vm.conf line 1: `mem = lots`: expected a size such as 128M (bytes, or K, M, G)"
        );
        assert_eq!(parse("mem =").unwrap_err(), ConfigError::Syntax { line: 1 });
        assert_eq!(
            parse("mem = 1M\nblocks = yes").unwrap_err().to_string(),
            "/etc/vm.conf line 2: `blocks = yes`: expected on or off"
        );
        assert_eq!(
            parse("blocks = off\n\nblocks = on"),
            Err(ConfigError::Duplicate {
                line: 3,
                key: "blocks"
            })
        );
        assert!(matches!(
            parse("blocks = OFF"),
            Err(ConfigError::BadValue { line: 1, .. })
        ));
    }

    #[test]
    fn settings_written_read_back_the_same() {
        for config in [
            VmConfig::DEFAULT,
            VmConfig {
                mem: Some(128 << 20),
                watchdog_secs: Some(30),
                blocks: true,
            },
            VmConfig {
                mem: Some(1 << 30),
                watchdog_secs: None,
                blocks: false,
            },
            VmConfig {
                mem: Some(4096 + 512),
                watchdog_secs: None,
                blocks: true,
            },
            VmConfig {
                blocks: false,
                ..VmConfig::DEFAULT
            },
        ] {
            let text = config.to_string();
            assert_eq!(parse(&text), Ok(config), "{text}");
        }
        let text = VmConfig {
            mem: Some(96 << 20),
            watchdog_secs: Some(5),
            blocks: false,
        }
        .to_string();
        assert_eq!(
            text,
            "# VM settings, written by cargo xtask\nmem = 96M\nwatchdog = 5\nblocks = off\n"
        );
        assert_eq!(
            VmConfig::DEFAULT.to_string(),
            "# VM settings, written by cargo xtask\n",
            "blocks on is the default and not written"
        );
    }
}
