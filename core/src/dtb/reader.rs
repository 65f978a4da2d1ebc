//! Test helpers that read a written blob back with `fdt-parser` (the
//! reader axhal uses), so each architecture's tests check every node and
//! property by path.

use crate::layout::{GuestLayout, Region};
use fdt_parser::{Fdt, Node};

/// Every node of a parsed tree with its full path, in tree order.
pub(crate) struct Tree<'a> {
    /// The parsed blob.
    pub(crate) fdt: Fdt<'a>,
    nodes: Vec<(String, Node<'a>)>,
}

impl<'a> Tree<'a> {
    pub(crate) fn parse(blob: &'a [u8]) -> Self {
        let fdt = Fdt::from_bytes(blob).expect("a valid header");
        let mut parents: Vec<String> = Vec::new();
        let nodes = fdt
            .all_nodes()
            .map(|n| {
                parents.truncate(n.level - 1);
                let path = match parents.last() {
                    None => String::from("/"),
                    Some(p) if p == "/" => format!("/{}", n.name()),
                    Some(p) => format!("{p}/{}", n.name()),
                };
                parents.push(path.clone());
                (path, n)
            })
            .collect();
        Tree { fdt, nodes }
    }

    pub(crate) fn paths(&self) -> Vec<&str> {
        self.nodes.iter().map(|(p, _)| p.as_str()).collect()
    }

    pub(crate) fn node(&self, path: &str) -> &Node<'a> {
        let found = self.nodes.iter().find(|(p, _)| p == path);
        &found.unwrap_or_else(|| panic!("no node {path}")).1
    }
}

/// The names of a node's properties, sorted.
fn names(n: &Node<'_>) -> Vec<String> {
    let mut names: Vec<String> = n.propertys().map(|p| p.name.to_string()).collect();
    names.sort();
    names
}

/// Checks that a node has exactly these properties, in any order.
pub(crate) fn expect_names(n: &Node<'_>, expected: &[&str]) {
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(names(n), expected, "properties of {}", n.name());
}

fn raw<'a>(n: &Node<'a>, name: &str) -> &'a [u8] {
    n.find_property(name)
        .unwrap_or_else(|| panic!("{} has no {name}", n.name()))
        .raw_value()
}

/// A string list. The reader hands out values padded to 4 bytes, so
/// trailing NULs are padding but the first.
pub(crate) fn strs<'a>(n: &Node<'a>, name: &str) -> Vec<&'a str> {
    let bytes = raw(n, name);
    assert_eq!(bytes.last(), Some(&0), "{name} is NUL-terminated");
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    core::str::from_utf8(&bytes[..end])
        .unwrap()
        .split('\0')
        .collect()
}

/// A property holding one string.
pub(crate) fn string<'a>(n: &Node<'a>, name: &str) -> &'a str {
    let list = strs(n, name);
    assert_eq!(list.len(), 1, "{name} is one string");
    list[0]
}

/// A property of 32-bit cells.
pub(crate) fn u32s(n: &Node<'_>, name: &str) -> Vec<u32> {
    let bytes = raw(n, name);
    assert_eq!(bytes.len() % 4, 0, "{name} is whole cells");
    bytes
        .chunks(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect()
}

/// A property of 64-bit numbers, two cells each.
pub(crate) fn u64s(n: &Node<'_>, name: &str) -> Vec<u64> {
    let cells = u32s(n, name);
    assert_eq!(cells.len() % 2, 0, "{name} is pairs of cells");
    cells
        .chunks(2)
        .map(|c| (u64::from(c[0]) << 32) | u64::from(c[1]))
        .collect()
}

/// Whether a property is present and empty (a flag like
/// `interrupt-controller`).
pub(crate) fn is_empty(n: &Node<'_>, name: &str) -> bool {
    raw(n, name).is_empty()
}

/// Checks that `serial0` and `/chosen/stdout-path` both name the console
/// node at `path` (whose own name is its last component), and that the
/// tree has no command line.
pub(crate) fn expect_console_and_no_bootargs(tree: &Tree<'_>, path: &str) {
    let aliases = tree.node("/aliases");
    expect_names(aliases, &["serial0"]);
    assert_eq!(string(aliases, "serial0"), path);

    let chosen = tree.node("/chosen");
    expect_names(chosen, &["stdout-path"]);
    assert_eq!(string(chosen, "stdout-path"), path);
    let stdout = tree.fdt.chosen().unwrap().stdout().unwrap();
    assert_eq!(Some(stdout.node.name()), path.rsplit('/').next());
    assert_eq!(tree.fdt.chosen().unwrap().bootargs(), None);
}

/// `base`'s regions without the one called `name`.
pub(crate) fn regions_without(base: &GuestLayout<'_>, name: &str) -> Vec<Region> {
    base.regions
        .iter()
        .copied()
        .filter(|r| r.name != name)
        .collect()
}

/// `base` with `regions` instead of its own.
pub(crate) fn with_regions<'a>(base: &GuestLayout<'_>, regions: &'a [Region]) -> GuestLayout<'a> {
    GuestLayout {
        regions,
        entry: base.entry,
    }
}
