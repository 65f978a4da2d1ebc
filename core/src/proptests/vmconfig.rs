//! The VM config file: parsing arbitrary text, and arbitrary values of
//! the known keys, never panics.

use proptest::prelude::*;

use super::cases;
use crate::vmconfig::{self, parse_size};

/// Lines made of the file's own vocabulary: keys, tables, sizes, strings,
/// numbers, and junk.
fn line() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "name", "kernel", "initrd", "cmdline", "mem", "cpus", "watchdog", "blocks", "strict",
        "disk", "memory", "[vm]", "[disk]", "[[x]]", "a.b", "\"k\"",
    ]);
    let value = prop_oneof![
        Just(String::from("\"\"")),
        "\"[a-z/ .0-9]{0,12}\"",
        "[0-9]{1,22}",
        "[0-9]{1,6}(K|M|G|T|KiB|MiB|GiB|k|m|g|B|)",
        "\"[0-9]{1,21} ?(K|M|G|T|KiB|MiB|GiB|B|)\"",
        "-?[0-9]{1,5}",
        Just(String::from("true")),
        Just(String::from("[1, 2]")),
        Just(String::from("{ a = 1 }")),
        Just(String::from("0x10")),
        Just(String::from("1e400")),
        "\\PC{0,10}",
    ];
    prop_oneof![
        4 => (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
        1 => "\\PC{0,30}",
    ]
}

proptest! {
    #![proptest_config(cases(400))]

    /// Arbitrary text: parse returns a config or an error naming a line.
    #[test]
    fn any_text_parses_or_errs(text in "\\PC{0,200}") {
        let _ = vmconfig::parse(&text);
        let _ = vmconfig::parse_with_lines(&text);
    }

    /// Files of plausible lines: parsing, checking and reporting never
    /// panic.
    #[test]
    fn plausible_files_parse_or_err(lines in prop::collection::vec(line(), 0..12)) {
        let text = lines.join("\n");
        match vmconfig::parse_with_lines(&text) {
            Ok((config, _lines)) => {
                let _ = config.kernel_path();
                // What parse accepts, check accepts: they apply one set of
                // rules.
                prop_assert_eq!(config.check(), Ok(()));
            }
            Err(e) => {
                let _ = e.key();
                let _ = e.in_file("vm.toml").to_string();
            }
        }
    }

    /// Any size string: a size is returned or refused.
    #[test]
    fn any_size_parses_or_not(text in prop_oneof![
        "\\PC{0,24}",
        "[0-9]{1,25} ?(K|M|G|T|KiB|MiB|GiB|TiB|k|m|g|B|)",
    ]) {
        let _ = parse_size(&text);
    }
}
