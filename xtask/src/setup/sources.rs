//! The machine's apt sources, read the way `.ci/run` read them: whether
//! bookworm-backports is already there, and the mirror URI of the
//! machine's own bookworm entry (deb822 `debian.sources` first, then the
//! one-line `sources.list`), which the backports entry reuses. No mirror
//! is named here but the fallback for a machine without such an entry.

use std::path::Path;

/// The suite QEMU 10 comes from on Debian 12.
pub const BACKPORTS_SUITE: &str = "bookworm-backports";
/// Debian 12's own suite, whose entry's mirror the backports entry reuses.
pub const BASE_SUITE: &str = "bookworm";
/// Where the backports entry is written.
pub const BACKPORTS_FILE: &str = "/etc/apt/sources.list.d/backports.sources";
/// The deb822 file of Debian's own entries.
pub const DEBIAN_SOURCES: &str = "/etc/apt/sources.list.d/debian.sources";
/// The one-line sources file.
pub const SOURCES_LIST: &str = "/etc/apt/sources.list";
/// Where more sources files are (`*.list`, `*.sources`).
pub const SOURCES_DIR: &str = "/etc/apt/sources.list.d";
/// The mirror used when the machine has no bookworm entry to copy.
pub const FALLBACK_MIRROR: &str = "http://deb.debian.org/debian";

/// The first URI of the first deb822 paragraph of `text` whose `Suites`
/// has `suite` (and that is not `Enabled: no`).
pub fn deb822_uri(text: &str, suite: &str) -> Option<String> {
    paragraphs(text).into_iter().find_map(|fields| {
        let field = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let enabled = field("enabled").is_none_or(|v| !v.eq_ignore_ascii_case("no"));
        let has_suite = field("suites").is_some_and(|s| s.split_whitespace().any(|w| w == suite));
        let deb = field("types").is_none_or(|t| t.split_whitespace().any(|w| w == "deb"));
        if !(enabled && has_suite && deb) {
            return None;
        }
        field("uris")?.split_whitespace().next().map(str::to_string)
    })
}

/// The paragraphs of a deb822 file, each as its fields (names in lower
/// case, continuation lines joined, comments left out).
fn paragraphs(text: &str) -> Vec<Vec<(String, String)>> {
    let mut all = vec![Vec::new()];
    for line in text.lines() {
        let fields: &mut Vec<(String, String)> = all.last_mut().expect("one paragraph at least");
        if line.trim().is_empty() {
            if !fields.is_empty() {
                all.push(Vec::new());
            }
        } else if line.starts_with('#') {
            // A comment.
        } else if line.starts_with([' ', '\t']) {
            // A continuation of the field above.
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    all
}

/// The URI of the first `deb [options] URI suite components...` line of
/// `text` (one-line format) whose suite is `suite`.
pub fn one_line_uri(text: &str, suite: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("");
        let rest = line.trim().strip_prefix("deb")?;
        if !rest.starts_with([' ', '\t']) {
            return None; // deb-src, or not an entry
        }
        let mut rest = rest.trim_start();
        if let Some(options) = rest.strip_prefix('[') {
            rest = options.split_once(']')?.1;
        }
        let mut words = rest.split_whitespace();
        let uri = words.next()?;
        (words.next()? == suite).then(|| uri.to_string())
    })
}

/// Whether a sources file's `text` has an entry (not a comment) for
/// `suite`, in either format.
pub fn mentions_suite(text: &str, suite: &str) -> bool {
    text.lines().any(|line| {
        let line = line.split('#').next().unwrap_or("");
        line.split(|c: char| c.is_whitespace() || c == ':')
            .any(|word| word == suite)
    })
}

/// The deb822 entry of bookworm-backports from `mirror`, as `.ci/run`
/// wrote it.
pub fn backports_entry(mirror: &str) -> String {
    format!(
        "Types: deb\nURIs: {mirror}\nSuites: {BACKPORTS_SUITE}\nComponents: main\n\
         Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
}

/// The mirror of the machine's own bookworm entry, or the fallback.
pub fn machine_mirror() -> String {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    read(DEBIAN_SOURCES)
        .and_then(|t| deb822_uri(&t, BASE_SUITE))
        .or_else(|| read(SOURCES_LIST).and_then(|t| one_line_uri(&t, BASE_SUITE)))
        .unwrap_or_else(|| FALLBACK_MIRROR.to_string())
}

/// Whether the machine has a bookworm entry of its own (it is Debian 12,
/// or apt is pointed at it).
pub fn machine_has_base_suite() -> bool {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    read(DEBIAN_SOURCES).is_some_and(|t| deb822_uri(&t, BASE_SUITE).is_some())
        || read(SOURCES_LIST).is_some_and(|t| one_line_uri(&t, BASE_SUITE).is_some())
}

/// Whether any of the machine's sources files (`sources.list`, and the
/// `*.list` and `*.sources` files beside it) has a bookworm-backports
/// entry.
pub fn machine_has_backports() -> bool {
    let mut files = vec![Path::new(SOURCES_LIST).to_path_buf()];
    if let Ok(dir) = std::fs::read_dir(SOURCES_DIR) {
        files.extend(
            dir.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "list" || e == "sources")),
        );
    }
    files.iter().any(|file| {
        std::fs::read_to_string(file).is_ok_and(|t| mentions_suite(&t, BACKPORTS_SUITE))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian 12's container image, as this machine has it.
    const DEBIAN_SOURCES_TEXT: &str = "Types: deb\n\
        # http://snapshot.debian.org/archive/debian/20250520T000000Z\n\
        URIs: http://deb.debian.org/debian\n\
        Suites: bookworm bookworm-updates\n\
        Components: main\n\
        Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\
        \n\
        Types: deb\n\
        URIs: http://deb.debian.org/debian-security\n\
        Suites: bookworm-security\n\
        Components: main\n";

    #[test]
    fn the_deb822_entry_of_bookworm_gives_the_mirror() {
        assert_eq!(
            deb822_uri(DEBIAN_SOURCES_TEXT, "bookworm").as_deref(),
            Some("http://deb.debian.org/debian")
        );
        assert_eq!(
            deb822_uri(DEBIAN_SOURCES_TEXT, "bookworm-security").as_deref(),
            Some("http://deb.debian.org/debian-security")
        );
        // `bookworm-updates` is not `bookworm`.
        let updates_only = "Types: deb\nURIs: http://m.example/debian\nSuites: bookworm-updates\n";
        assert_eq!(deb822_uri(updates_only, "bookworm"), None);
        // The first of several URIs; a disabled or deb-src entry does not
        // count; field names are not case-sensitive.
        let text = "Types: deb\nURIs: http://off.example/d\nSuites: bookworm\nEnabled: no\n\n\
                    Types: deb-src\nURIs: http://src.example/d\nSuites: bookworm\n\n\
                    types: deb deb-src\nuris: http://a.example/d http://b.example/d\n\
                    suites: bookworm\ncomponents: main\n";
        assert_eq!(
            deb822_uri(text, "bookworm").as_deref(),
            Some("http://a.example/d")
        );
        // A URI on a continuation line.
        let text = "Types: deb\nURIs:\n http://c.example/d\nSuites: bookworm\n";
        assert_eq!(
            deb822_uri(text, "bookworm").as_deref(),
            Some("http://c.example/d")
        );
        assert_eq!(deb822_uri("", "bookworm"), None);
    }

    #[test]
    fn the_one_line_entry_of_bookworm_gives_the_mirror() {
        let text = "# deb http://commented.example/debian bookworm main\n\
                    deb-src http://src.example/debian bookworm main\n\
                    deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://m.example/debian bookworm main contrib\n\
                    deb http://other.example/debian bookworm-updates main\n";
        assert_eq!(
            one_line_uri(text, "bookworm").as_deref(),
            Some("http://m.example/debian")
        );
        let plain = "deb http://p.example/debian bookworm main # a comment\n";
        assert_eq!(
            one_line_uri(plain, "bookworm").as_deref(),
            Some("http://p.example/debian")
        );
        let spaced = "deb [ trusted=yes ] http://s.example/debian bookworm main\n";
        assert_eq!(
            one_line_uri(spaced, "bookworm").as_deref(),
            Some("http://s.example/debian")
        );
        assert_eq!(
            one_line_uri("debx http://x bookworm main", "bookworm"),
            None
        );
        assert_eq!(one_line_uri("deb http://x", "bookworm"), None);
    }

    #[test]
    fn backports_is_found_in_either_format_but_not_in_comments() {
        let deb822 = backports_entry("http://deb.debian.org/debian");
        assert!(mentions_suite(&deb822, BACKPORTS_SUITE));
        assert!(mentions_suite(
            "deb http://m/debian bookworm-backports main\n",
            BACKPORTS_SUITE
        ));
        assert!(!mentions_suite(
            "# deb http://m/debian bookworm-backports main\n",
            BACKPORTS_SUITE
        ));
        assert!(!mentions_suite(DEBIAN_SOURCES_TEXT, BACKPORTS_SUITE));
    }

    #[test]
    fn the_backports_entry_is_the_one_ci_wrote() {
        assert_eq!(
            backports_entry("http://m.example/debian"),
            "Types: deb\nURIs: http://m.example/debian\nSuites: bookworm-backports\n\
             Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        );
        // It reads back as a bookworm-backports entry from that mirror.
        assert_eq!(
            deb822_uri(&backports_entry("http://m.example/debian"), BACKPORTS_SUITE).as_deref(),
            Some("http://m.example/debian")
        );
    }
}
