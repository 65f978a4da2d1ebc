//! One VM's description: a TOML file (`/etc/vm.toml` on the boot disk,
//! written by `cargo xtask run`; `cargo xtask run --vm FILE` reads one from
//! the host), parsed here for both.
//!
//! ```toml
//! name = "linux"                    # the VM's name
//! kernel = "/sbin/gkernel"          # the guest image (default /sbin/gkernel)
//! initrd = "/boot/initrd"           # initramfs (default: none)
//! cmdline = "console=ttyS0"         # kernel command line, one line (default: none)
//! mem = "256M"                      # guest RAM: bytes, or "64K", "128M", "1G"
//! cpus = 1                          # vCPUs, 1..=8
//! watchdog = 20                     # seconds of guest run before it is stopped
//! blocks = false                    # map RAM a 4 KiB page per fault (default true)
//! strict = false                    # (`true` is not supported yet)
//! # disk = "disk.img"               # virtio-blk backing image (not supported yet)
//! ```
//!
//! Every key is optional; a key this hypervisor does not know, a value of
//! the wrong type or out of range, a duplicate or a TOML syntax error is an
//! error naming the line, so a typo never turns into a silent default. The
//! TOML itself is read by the `toml` crate's parser ([`toml::de::DeTable`],
//! which keeps every key's and value's position in the text); this module
//! checks what the keys mean. [`VmConfig`]'s `Display` writes the file back,
//! so what xtask writes is what the hypervisor reads.

extern crate alloc;

use alloc::borrow::ToOwned;
use alloc::string::String;
use core::fmt;
use core::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};
use toml_writer::TomlWrite as _;

/// Where the hypervisor looks for the VM's config on the disk.
pub const PATH: &str = "/etc/vm.toml";

/// The guest image's path on the disk unless the config names one.
pub const DEFAULT_KERNEL: &str = "/sbin/gkernel";

/// The most vCPUs a config may ask for.
pub const MAX_CPUS: u32 = 8;

/// Every key, in the order [`VmConfig`]'s `Display` writes them.
pub const KEYS: [&str; 10] = [
    "name", "kernel", "initrd", "cmdline", "mem", "cpus", "watchdog", "blocks", "strict", "disk",
];

/// The longest VM name.
pub const MAX_NAME_LEN: usize = 32;

/// One VM's settings. [`VmConfig::DEFAULT`] is what an empty (or absent)
/// file means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmConfig {
    /// The VM's name (the console prefix once several VMs run).
    pub name: Option<String>,
    /// The guest image's path (`None`: [`DEFAULT_KERNEL`] on the disk; in a
    /// config read from the host, the bundled gkernel).
    pub kernel: Option<String>,
    /// The initial RAM disk's path, if the guest gets one.
    pub initrd: Option<String>,
    /// The kernel command line, if the guest gets one: one line, no NUL.
    pub cmdline: Option<String>,
    /// Guest RAM in bytes, whole 4 KiB pages (`None`: the layout's
    /// default).
    pub mem: Option<u64>,
    /// vCPUs (1 until SMP lands).
    pub cpus: u32,
    /// Seconds the guest may run before the hypervisor stops it
    /// (`None`: no watchdog).
    pub watchdog_secs: Option<u64>,
    /// Map guest RAM with 2 MiB blocks where a whole block fits (`true`,
    /// the default); `false` maps one 4 KiB page per fault.
    pub blocks: bool,
    /// Stop the VM on an access no device answers (not supported yet, so
    /// always `false`).
    pub strict: bool,
}

impl VmConfig {
    /// An empty file: every setting at its default.
    pub const DEFAULT: VmConfig = VmConfig {
        name: None,
        kernel: None,
        initrd: None,
        cmdline: None,
        mem: None,
        cpus: 1,
        watchdog_secs: None,
        blocks: true,
        strict: false,
    };

    /// The guest image's path: the config's, or [`DEFAULT_KERNEL`].
    pub fn kernel_path(&self) -> &str {
        self.kernel.as_deref().unwrap_or(DEFAULT_KERNEL)
    }

    /// Checks the settings as [`parse`] would have, for a config built in
    /// code (xtask's command-line options): `key` names the first bad one.
    pub fn check(&self) -> Result<(), (&'static str, Problem)> {
        let string = |key, value: &Option<String>, check: fn(&str) -> Result<(), Problem>| {
            value
                .as_deref()
                .map_or(Ok(()), check)
                .map_err(|problem| (key, problem))
        };
        string("name", &self.name, check_name)?;
        string("kernel", &self.kernel, check_path)?;
        string("initrd", &self.initrd, check_path)?;
        string("cmdline", &self.cmdline, check_cmdline)?;
        if let Some(bytes) = self.mem {
            check_mem(bytes).map_err(|p| ("mem", p))?;
        }
        check_cpus(u64::from(self.cpus)).map_err(|p| ("cpus", p))?;
        if let Some(secs) = self.watchdog_secs {
            check_watchdog(secs).map_err(|p| ("watchdog", p))?;
        }
        check_strict(self.strict).map_err(|p| ("strict", p))
    }
}

impl Default for VmConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The file's text for these settings (what `cargo xtask run` writes): a
/// comment, then one line per key that is not at its default, in the
/// order of [`KEYS`], so that [`parse`] reads back the same settings.
impl fmt::Display for VmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("# The VM's config, written by cargo xtask\n")?;
        let mut line = |key: &str, value: &dyn Fn(&mut fmt::Formatter<'_>) -> fmt::Result| {
            f.key(key)?;
            f.space()?;
            f.keyval_sep()?;
            f.space()?;
            value(f)?;
            f.newline()
        };
        for (key, text) in [
            ("name", &self.name),
            ("kernel", &self.kernel),
            ("initrd", &self.initrd),
            ("cmdline", &self.cmdline),
        ] {
            if let Some(text) = text {
                line(key, &|f| f.value(text.as_str()))?;
            }
        }
        if let Some(bytes) = self.mem {
            line("mem", &|f| match size_text(bytes) {
                Some((n, unit)) => write!(f, "\"{n}{unit}\""),
                None => f.value(bytes),
            })?;
        }
        if self.cpus != 1 {
            line("cpus", &|f| f.value(self.cpus))?;
        }
        if let Some(secs) = self.watchdog_secs {
            line("watchdog", &|f| f.value(secs))?;
        }
        if !self.blocks {
            line("blocks", &|f| f.value(false))?;
        }
        if self.strict {
            line("strict", &|f| f.value(true))?;
        }
        Ok(())
    }
}

/// `bytes` in the largest of G, M, K that divides it, if one does.
fn size_text(bytes: u64) -> Option<(u64, &'static str)> {
    [(30, "G"), (20, "M"), (10, "K")]
        .into_iter()
        .find(|&(shift, _)| bytes != 0 && bytes.is_multiple_of(1 << shift))
        .map(|(shift, unit)| (bytes >> shift, unit))
}

/// Why a value is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Out of range or malformed: what the key expects.
    Expected(&'static str),
    /// Well formed but not supported yet: why.
    NotSupported(&'static str),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Expected(expected) => write!(f, "expected {expected}"),
            Problem::NotSupported(why) => f.write_str(why),
        }
    }
}

/// What is wrong with a config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not TOML: the parser's words.
    Syntax(String),
    /// A key this hypervisor does not know (as written).
    UnknownKey(String),
    /// A key given twice (as written, at its second place).
    Duplicate(String),
    /// A value of the wrong TOML type.
    WrongType {
        /// The key.
        key: &'static str,
        /// The type the key takes.
        expected: &'static str,
        /// The type given.
        found: &'static str,
    },
    /// A value of the right type that the key does not take.
    BadValue {
        /// The key.
        key: &'static str,
        /// The value as written in the file.
        value: String,
        /// Why.
        problem: Problem,
    },
}

/// A config that cannot be used: what, and on which line (1-based; `None`
/// only where the TOML parser gives no position).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The line of the mistake.
    pub line: Option<usize>,
    /// The mistake.
    pub kind: ErrorKind,
}

impl ConfigError {
    /// The key the mistake is in, if it is in one.
    pub fn key(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::Syntax(_) => None,
            ErrorKind::UnknownKey(key) | ErrorKind::Duplicate(key) => Some(key),
            ErrorKind::WrongType { key, .. } | ErrorKind::BadValue { key, .. } => Some(key),
        }
    }

    /// The error as said of the file `file`: `FILE line N: what`.
    pub fn in_file<'a>(&'a self, file: &'a str) -> impl fmt::Display + 'a {
        InFile { error: self, file }
    }
}

struct InFile<'a> {
    error: &'a ConfigError,
    file: &'a str,
}

impl fmt::Display for InFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.error.line {
            write!(f, " line {line}")?;
        }
        write!(f, ": {}", self.error.kind)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Syntax(message) => write!(f, "not valid TOML: {message}"),
            ErrorKind::UnknownKey(key) => {
                write!(f, "unknown key `{key}` (the keys are ")?;
                for (i, known) in KEYS.iter().enumerate() {
                    write!(f, "{}{known}", if i > 0 { ", " } else { "" })?;
                }
                f.write_str(")")
            }
            ErrorKind::Duplicate(key) => write!(f, "`{key}` is set twice"),
            ErrorKind::WrongType {
                key,
                expected,
                found,
            } => write!(f, "`{key}` takes {expected}, not {found}"),
            ErrorKind::BadValue {
                key,
                value,
                problem,
            } => write!(f, "`{key} = {value}`: {problem}"),
        }
    }
}

/// The 1-based line of byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The lines each key of a parsed config was set on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyLines([Option<usize>; KEYS.len()]);

impl KeyLines {
    /// The line `key` was set on, if it was set.
    pub fn line(&self, key: &str) -> Option<usize> {
        KEYS.iter().position(|k| *k == key).and_then(|i| self.0[i])
    }
}

/// Parses a config file's text.
pub fn parse(text: &str) -> Result<VmConfig, ConfigError> {
    parse_with_lines(text).map(|(config, _)| config)
}

/// Parses a config file's text, with the line each key was set on (for
/// later messages about a key's value, such as a missing file).
pub fn parse_with_lines(text: &str) -> Result<(VmConfig, KeyLines), ConfigError> {
    let table = DeTable::parse(text).map_err(|e| syntax_error(text, &e))?;
    let mut config = VmConfig::DEFAULT;
    let mut lines = KeyLines::default();
    for (key, value) in table.get_ref() {
        let key_line = line_of(text, key.span().start);
        let Some(index) = KEYS.iter().position(|k| *k == key.get_ref().as_ref()) else {
            return Err(ConfigError {
                line: Some(key_line),
                kind: ErrorKind::UnknownKey(text[key.span()].to_owned()),
            });
        };
        let key = KEYS[index];
        lines.0[index] = Some(key_line);
        let setting = Setting {
            text,
            key,
            line: key_line,
            value,
        };
        match key {
            "name" => config.name = Some(setting.string(check_name)?),
            "kernel" => config.kernel = Some(setting.string(check_path)?),
            "initrd" => config.initrd = Some(setting.string(check_path)?),
            "cmdline" => config.cmdline = Some(setting.string(check_cmdline)?),
            "mem" => config.mem = Some(setting.size()?),
            "cpus" => {
                let cpus = setting.integer("an integer", check_cpus)?;
                // Cannot fail: `check_cpus` accepted it, so it is 1..=8.
                config.cpus = u32::try_from(cpus).expect("checked range");
            }
            "watchdog" => {
                config.watchdog_secs =
                    Some(setting.integer("an integer (seconds)", check_watchdog)?)
            }
            "blocks" => config.blocks = setting.boolean(|_| Ok(()))?,
            "strict" => config.strict = setting.boolean(check_strict)?,
            "disk" => {
                setting
                    .string(|_| Err(Problem::NotSupported("virtio-blk is not supported yet")))?;
            }
            // Not reachable from the file: a key outside KEYS was refused
            // above as UnknownKey, and every key of KEYS has its arm here.
            _ => unreachable!("every key of KEYS is matched"),
        }
    }
    Ok((config, lines))
}

/// The TOML parser's error, with its line. The parser refuses a key set
/// twice itself (TOML forbids it), pointing at the second one; that is
/// told apart by its message so that it names the key.
fn syntax_error(text: &str, error: &toml::de::Error) -> ConfigError {
    let line = error.span().map(|span| line_of(text, span.start));
    let kind = match error.span() {
        Some(span) if error.message() == "duplicate key" => {
            ErrorKind::Duplicate(text[span].trim().to_owned())
        }
        _ => ErrorKind::Syntax(error.message().to_owned()),
    };
    ConfigError { line, kind }
}

/// One `key = value` of the file, being checked.
struct Setting<'a, 'i> {
    text: &'a str,
    key: &'static str,
    line: usize,
    value: &'a Spanned<DeValue<'i>>,
}

impl Setting<'_, '_> {
    fn error(&self, kind: ErrorKind) -> ConfigError {
        ConfigError {
            line: Some(self.line),
            kind,
        }
    }

    fn wrong_type(&self, expected: &'static str) -> ConfigError {
        self.error(ErrorKind::WrongType {
            key: self.key,
            expected,
            found: self.value.get_ref().type_str(),
        })
    }

    fn bad_value(&self, problem: Problem) -> ConfigError {
        self.error(ErrorKind::BadValue {
            key: self.key,
            value: self.written(self.value.span()),
            problem,
        })
    }

    /// The value as written (its first line, if it spans several).
    fn written(&self, span: Range<usize>) -> String {
        let text = self.text.get(span).unwrap_or("");
        text.lines().next().unwrap_or("").to_owned()
    }

    fn string(&self, check: fn(&str) -> Result<(), Problem>) -> Result<String, ConfigError> {
        let text = self
            .value
            .get_ref()
            .as_str()
            .ok_or_else(|| self.wrong_type("a string"))?;
        check(text).map_err(|problem| self.bad_value(problem))?;
        Ok(text.to_owned())
    }

    fn integer(
        &self,
        expected: &'static str,
        check: fn(u64) -> Result<(), Problem>,
    ) -> Result<u64, ConfigError> {
        let integer = self
            .value
            .get_ref()
            .as_integer()
            .ok_or_else(|| self.wrong_type(expected))?;
        let n = u64::from_str_radix(integer.as_str(), integer.radix())
            .map_err(|_| self.bad_value(Problem::Expected("a whole number from 0 to 2^64 - 1")))?;
        check(n).map_err(|problem| self.bad_value(problem))?;
        Ok(n)
    }

    fn boolean(&self, check: fn(bool) -> Result<(), Problem>) -> Result<bool, ConfigError> {
        let b = self
            .value
            .get_ref()
            .as_bool()
            .ok_or_else(|| self.wrong_type("true or false"))?;
        check(b).map_err(|problem| self.bad_value(problem))?;
        Ok(b)
    }

    /// `mem`: an integer of bytes, or a string such as "128M".
    fn size(&self) -> Result<u64, ConfigError> {
        const EXPECTED: &str = "a size such as \"128M\" (bytes, or K, M, G)";
        let bytes = match self.value.get_ref() {
            DeValue::String(text) => {
                parse_size(text).ok_or_else(|| self.bad_value(Problem::Expected(EXPECTED)))?
            }
            DeValue::Integer(_) => self.integer(EXPECTED, |_| Ok(()))?,
            _ => return Err(self.wrong_type("an integer of bytes or a string such as \"128M\"")),
        };
        check_mem(bytes).map_err(|problem| self.bad_value(problem))?;
        Ok(bytes)
    }
}

fn check_name(name: &str) -> Result<(), Problem> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    ok.then_some(()).ok_or(Problem::Expected(
        "1 to 32 ASCII letters, digits, `-`, `_` or `.`",
    ))
}

fn check_path(path: &str) -> Result<(), Problem> {
    let ok = !path.is_empty() && !path.chars().any(char::is_control);
    ok.then_some(())
        .ok_or(Problem::Expected("a file's path (one line, not empty)"))
}

fn check_cmdline(cmdline: &str) -> Result<(), Problem> {
    if cmdline.is_empty() {
        return Err(Problem::Expected(
            "a command line (leave the key out for none)",
        ));
    }
    if cmdline.contains(['\n', '\r', '\0']) {
        return Err(Problem::Expected("one line of text, without NUL"));
    }
    Ok(())
}

fn check_mem(bytes: u64) -> Result<(), Problem> {
    if bytes == 0 || !bytes.is_multiple_of(crate::PAGE_SIZE) {
        return Err(Problem::Expected("a whole number of 4 KiB pages, not 0"));
    }
    Ok(())
}

fn check_cpus(cpus: u64) -> Result<(), Problem> {
    match cpus {
        1..=8 => Ok(()),
        _ => Err(Problem::Expected("from 1 to 8 vCPUs")),
    }
}

fn check_watchdog(secs: u64) -> Result<(), Problem> {
    if secs == 0 {
        return Err(Problem::Expected("a whole number of seconds >= 1"));
    }
    // The hypervisor turns it into nanoseconds.
    if secs > u64::MAX / 1_000_000_000 {
        return Err(Problem::Expected("at most 18446744073 seconds"));
    }
    Ok(())
}

fn check_strict(strict: bool) -> Result<(), Problem> {
    if strict {
        return Err(Problem::NotSupported("strict mode is not supported yet"));
    }
    Ok(())
}

/// `128M`, `64K`, `1G` (or lower-case) or a plain byte count.
pub fn parse_size(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 10),
        b'M' | b'm' => (&text[..text.len() - 1], 20),
        b'G' | b'g' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests;
