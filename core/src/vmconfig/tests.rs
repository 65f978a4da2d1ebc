use super::*;
use alloc::string::ToString;

fn error(text: &str) -> ConfigError {
    match parse(text) {
        Ok(config) => panic!("{text:?} parsed as {config:?}"),
        Err(e) => e,
    }
}

fn at(line: usize, kind: ErrorKind) -> ConfigError {
    ConfigError {
        line: Some(line),
        kind,
    }
}

fn bad(key: &'static str, value: &str, problem: Problem) -> ErrorKind {
    ErrorKind::BadValue {
        key,
        value: value.to_string(),
        problem,
    }
}

#[test]
fn an_empty_file_is_every_default() {
    assert_eq!(parse(""), Ok(VmConfig::DEFAULT));
    assert_eq!(parse("# nothing\n\n   \n"), Ok(VmConfig::DEFAULT));
    assert_eq!(VmConfig::DEFAULT.kernel_path(), "/sbin/gkernel");
    assert_eq!(VmConfig::default(), VmConfig::DEFAULT);
}

#[test]
fn every_key_is_read() {
    let text = r#"
# a Linux guest
name = "linux-1"
kernel = "/boot/Image"
initrd = '/boot/initrd'
cmdline = "console=ttyS0 earlycon=sbi panic=-1"
mem = "256M"   # guest RAM
cpus = 1
watchdog = 20
blocks = false
strict = false
"#;
    let config = parse(text).unwrap();
    assert_eq!(
        config,
        VmConfig {
            name: Some("linux-1".into()),
            kernel: Some("/boot/Image".into()),
            initrd: Some("/boot/initrd".into()),
            cmdline: Some("console=ttyS0 earlycon=sbi panic=-1".into()),
            mem: Some(256 << 20),
            cpus: 1,
            watchdog_secs: Some(20),
            blocks: false,
            strict: false,
        }
    );
    assert_eq!(config.kernel_path(), "/boot/Image");
    let (_, lines) = parse_with_lines(text).unwrap();
    assert_eq!(lines.line("name"), Some(3));
    assert_eq!(lines.line("kernel"), Some(4));
    assert_eq!(lines.line("initrd"), Some(5));
    assert_eq!(lines.line("strict"), Some(11));
    assert_eq!(lines.line("disk"), None);
    assert_eq!(lines.line("no-such-key"), None);
    assert!(parse("blocks = true").unwrap().blocks);
}

#[test]
fn mem_is_bytes_or_a_size_with_a_unit() {
    let mem = |text: &str| parse(text).map(|c| c.mem.unwrap());
    assert_eq!(mem("mem = 134217728"), Ok(128 << 20));
    assert_eq!(mem("mem = 0x8000000"), Ok(128 << 20));
    assert_eq!(mem("mem = 1_048_576"), Ok(1 << 20));
    assert_eq!(mem("mem = \"64K\""), Ok(64 << 10));
    assert_eq!(mem("mem = \"256m\""), Ok(256 << 20));
    assert_eq!(mem("mem = \"1G\""), Ok(1 << 30));
    assert_eq!(mem("mem = \"8192\""), Ok(8192));
    assert_eq!(
        error("\nmem = 4097"),
        at(
            2,
            bad(
                "mem",
                "4097",
                Problem::Expected("a whole number of 4 KiB pages, not 0")
            )
        )
    );
    assert!(matches!(
        error("mem = 0").kind,
        ErrorKind::BadValue { key: "mem", .. }
    ));
    assert!(matches!(
        error("mem = -4096").kind,
        ErrorKind::BadValue { key: "mem", .. }
    ));
    assert_eq!(
        error("mem = \"lots\"").to_string(),
        "line 1: `mem = \"lots\"`: expected a size such as \"128M\" (bytes, or K, M, G)"
    );
    assert!(matches!(
        error("mem = \"1T\"").kind,
        ErrorKind::BadValue { key: "mem", .. }
    ));
    assert!(matches!(
        error("mem = \"99999999999999999999G\"").kind,
        ErrorKind::BadValue { key: "mem", .. }
    ));
    assert_eq!(
        error("mem = 1.5").kind,
        ErrorKind::WrongType {
            key: "mem",
            expected: "an integer of bytes or a string such as \"128M\"",
            found: "float",
        }
    );
}

#[test]
fn sizes_take_suffixes() {
    assert_eq!(parse_size("4096"), Some(4096));
    assert_eq!(parse_size("64K"), Some(64 << 10));
    assert_eq!(parse_size("256m"), Some(256 << 20));
    assert_eq!(parse_size("2G"), Some(2 << 30));
    assert_eq!(parse_size("G"), None);
    assert_eq!(parse_size("+4K"), None);
    assert_eq!(parse_size(" 4K"), None);
    assert_eq!(parse_size("12Q"), None);
    assert_eq!(parse_size("99999999999999999999G"), None);
}

#[test]
fn cpus_beyond_one_wait_for_smp() {
    assert_eq!(parse("cpus = 1").unwrap().cpus, 1);
    for n in 2..=8 {
        let text = alloc::format!("cpus = {n}");
        assert_eq!(parse(&text).unwrap().cpus, n);
    }
    for text in ["cpus = 0", "cpus = 9", "cpus = 4294967297", "cpus = -1"] {
        let e = error(text);
        assert!(
            matches!(
                e.kind,
                ErrorKind::BadValue {
                    key: "cpus",
                    problem: Problem::Expected(_),
                    ..
                }
            ),
            "{text}: {e}"
        );
    }
    assert_eq!(
        error("cpus = 0").to_string(),
        "line 1: `cpus = 0`: expected from 1 to 8 vCPUs"
    );
    assert_eq!(
        error("cpus = \"2\"").kind,
        ErrorKind::WrongType {
            key: "cpus",
            expected: "an integer",
            found: "string"
        }
    );
}

#[test]
fn watchdog_is_whole_seconds_from_one() {
    assert_eq!(parse("watchdog = 1").unwrap().watchdog_secs, Some(1));
    assert_eq!(
        error("watchdog = 0").to_string(),
        "line 1: `watchdog = 0`: expected a whole number of seconds >= 1"
    );
    assert!(matches!(
        error("watchdog = 99999999999").kind,
        ErrorKind::BadValue {
            key: "watchdog",
            ..
        }
    ));
    assert_eq!(
        error("watchdog = 1.5").kind,
        ErrorKind::WrongType {
            key: "watchdog",
            expected: "an integer (seconds)",
            found: "float"
        }
    );
}

#[test]
fn strict_and_disk_are_refused_for_now() {
    assert!(!parse("strict = false").unwrap().strict);
    assert_eq!(
        error("strict = true").to_string(),
        "line 1: `strict = true`: strict mode is not supported yet"
    );
    assert_eq!(
        error("name = \"a\"\ndisk = \"disk.img\"").to_string(),
        "line 2: `disk = \"disk.img\"`: virtio-blk is not supported yet"
    );
    assert_eq!(
        error("disk = 1").kind,
        ErrorKind::WrongType {
            key: "disk",
            expected: "a string",
            found: "integer"
        }
    );
    assert_eq!(
        error("strict = \"yes\"").kind,
        ErrorKind::WrongType {
            key: "strict",
            expected: "true or false",
            found: "string"
        }
    );
}

#[test]
fn strings_are_checked() {
    assert_eq!(
        error("name = \"has space\"").kind,
        bad(
            "name",
            "\"has space\"",
            Problem::Expected("1 to 32 ASCII letters, digits, `-`, `_` or `.`")
        )
    );
    assert!(error("name = \"\"").key() == Some("name"));
    assert!(error(&alloc::format!("name = \"{}\"", "a".repeat(33))).key() == Some("name"));
    assert_eq!(
        parse("name = \"vm_2.a-b\"").unwrap().name.unwrap(),
        "vm_2.a-b"
    );
    assert_eq!(
        error("kernel = \"\"").kind,
        bad(
            "kernel",
            "\"\"",
            Problem::Expected("a file's path (one line, not empty)")
        )
    );
    assert_eq!(error("initrd = \"a\\nb\"").key(), Some("initrd"));
    assert_eq!(
        error("cmdline = \"quiet\\u0000\"").to_string(),
        "line 1: `cmdline = \"quiet\\u0000\"`: expected one line of text, without NUL"
    );
    assert_eq!(error("cmdline = \"a\\rb\"").key(), Some("cmdline"));
    assert_eq!(
        error("cmdline = \"\"").to_string(),
        "line 1: `cmdline = \"\"`: expected a command line (leave the key out for none)"
    );
    // A multi-line string is named by its first line.
    assert_eq!(
        error("\n\ncmdline = \"\"\"\none\ntwo\"\"\"").to_string(),
        "line 3: `cmdline = \"\"\"`: expected one line of text, without NUL"
    );
    assert_eq!(
        error("kernel = 7").to_string(),
        "line 1: `kernel` takes a string, not integer"
    );
    assert_eq!(
        error("blocks = \"off\"").to_string(),
        "line 1: `blocks` takes true or false, not string"
    );
}

#[test]
fn unknown_keys_and_tables_are_refused_on_their_line() {
    assert_eq!(
        error("# settings\nmemory = \"1M\"\n"),
        at(2, ErrorKind::UnknownKey("memory".into()))
    );
    assert_eq!(
        error("# settings\nmemory = \"1M\"\n").to_string(),
        "line 2: unknown key `memory` (the keys are name, kernel, initrd, cmdline, mem, cpus, \
         watchdog, blocks, strict, disk)"
    );
    assert_eq!(
        error("mem = \"1M\"\n\n[vm]\nmem = \"2M\""),
        at(3, ErrorKind::UnknownKey("vm".into()))
    );
    assert_eq!(
        error("mem.size = 1"),
        at(
            1,
            ErrorKind::WrongType {
                key: "mem",
                expected: "an integer of bytes or a string such as \"128M\"",
                found: "table"
            }
        )
    );
    // A quoted key is the key; it is named as written.
    assert_eq!(parse("\"mem\" = \"4M\"").unwrap().mem, Some(4 << 20));
    assert_eq!(
        error("'Mem' = 1"),
        at(1, ErrorKind::UnknownKey("'Mem'".into()))
    );
}

#[test]
fn a_key_set_twice_is_named_at_its_second_line() {
    assert_eq!(
        error("mem = \"1M\"\nwatchdog = 3\nmem = \"2M\""),
        at(3, ErrorKind::Duplicate("mem".into()))
    );
    assert_eq!(
        error("blocks = false\n\n  blocks = true").to_string(),
        "line 3: `blocks` is set twice"
    );
}

#[test]
fn toml_syntax_errors_name_their_line() {
    for (text, line) in [
        ("mem 128M", 1),
        ("name = \"a\"\nblocks = off", 2),
        ("\n\nmem =", 3),
        ("name = \"unterminated", 1),
        ("cmdline = 'a'\n= 3", 2),
    ] {
        let e = error(text);
        assert!(
            matches!(e.kind, ErrorKind::Syntax(_)),
            "{text:?}: {e:?} is not a syntax error"
        );
        assert_eq!(e.line, Some(line), "{text:?}: {e}");
        assert!(e.key().is_none());
    }
}

#[test]
fn errors_name_the_file() {
    assert_eq!(
        error("\nmemory = 1").in_file(PATH).to_string(),
        "/etc/vm.toml line 2: unknown key `memory` (the keys are name, kernel, initrd, cmdline, \
         mem, cpus, watchdog, blocks, strict, disk)"
    );
    let no_line = ConfigError {
        line: None,
        kind: ErrorKind::Syntax("it broke".into()),
    };
    assert_eq!(
        no_line.in_file("vm.toml").to_string(),
        "vm.toml: not valid TOML: it broke"
    );
    assert_eq!(no_line.to_string(), "not valid TOML: it broke");
}

#[test]
fn configs_built_in_code_are_checked_like_parsed_ones() {
    assert_eq!(VmConfig::DEFAULT.check(), Ok(()));
    let with = |f: fn(&mut VmConfig)| {
        let mut config = VmConfig::DEFAULT;
        f(&mut config);
        config.check()
    };
    assert_eq!(with(|c| c.cpus = 8), Ok(()));
    assert_eq!(with(|c| c.cpus = 9).unwrap_err().0, "cpus");
    assert_eq!(with(|c| c.cpus = 0).unwrap_err().0, "cpus");
    assert_eq!(with(|c| c.mem = Some(100)).unwrap_err().0, "mem");
    assert_eq!(
        with(|c| c.watchdog_secs = Some(0)).unwrap_err().0,
        "watchdog"
    );
    assert_eq!(with(|c| c.strict = true).unwrap_err().0, "strict");
    assert_eq!(
        with(|c| c.cmdline = Some("a\nb".into())).unwrap_err().0,
        "cmdline"
    );
    assert_eq!(
        with(|c| c.kernel = Some(String::new())).unwrap_err().0,
        "kernel"
    );
    assert_eq!(
        with(|c| c.initrd = Some("\0".into())).unwrap_err().0,
        "initrd"
    );
    assert_eq!(with(|c| c.name = Some("a b".into())).unwrap_err().0, "name");
}

#[test]
fn configs_written_read_back_the_same() {
    let full = VmConfig {
        name: Some("linux".into()),
        kernel: Some("/sbin/gkernel".into()),
        initrd: Some("/boot/initrd".into()),
        cmdline: Some(r#"console=ttyS0 say="it's \here" panic=-1 'x'"#.into()),
        mem: Some(256 << 20),
        cpus: 1,
        watchdog_secs: Some(30),
        blocks: false,
        strict: false,
    };
    for config in [
        VmConfig::DEFAULT,
        full.clone(),
        VmConfig {
            mem: Some(1 << 30),
            ..VmConfig::DEFAULT
        },
        VmConfig {
            mem: Some(4096 * 3),
            ..VmConfig::DEFAULT
        },
        VmConfig {
            kernel: Some("/a path/with ünïcödé and \"quotes\" and 'apostrophes'".into()),
            cmdline: Some("\u{7f}tab\there".into()),
            ..VmConfig::DEFAULT
        },
    ] {
        let text = config.to_string();
        assert_eq!(parse(&text), Ok(config), "{text}");
    }
    assert_eq!(
        full.to_string(),
        "# The VM's config, written by cargo xtask\n\
         name = \"linux\"\n\
         kernel = \"/sbin/gkernel\"\n\
         initrd = \"/boot/initrd\"\n\
         cmdline = '''console=ttyS0 say=\"it's \\here\" panic=-1 'x''''\n\
         mem = \"256M\"\n\
         watchdog = 30\n\
         blocks = false\n"
    );
    assert_eq!(
        VmConfig::DEFAULT.to_string(),
        "# The VM's config, written by cargo xtask\n",
        "defaults are not written"
    );
    // Keys refused today are still written as they are, for later.
    let later = VmConfig {
        cpus: 4,
        strict: true,
        ..VmConfig::DEFAULT
    };
    assert_eq!(
        later.to_string(),
        "# The VM's config, written by cargo xtask\ncpus = 4\nstrict = true\n"
    );
}
