//! The README's `cargo xtask run` transcript, checked against a real run so
//! that it cannot drift from what the program prints.
//!
//! The transcript is the first fenced block after the line holding
//! [`MARKER`]. In it, a line of the form `<...>` stands for output the
//! README only describes (the guest's banner) and is skipped; `…` (one
//! character, U+2026, so that the program's own `...` stays literal) stands
//! for one figure that changes with every build (an image's size, a heap
//! address). Every other line must be, in order, a whole line
//! of the run's output.

use anyhow::{Context, Result, bail};

/// The README line that announces the checked transcript.
pub const MARKER: &str = "<!-- transcript: checked by the readme-transcript case -->";

/// The transcript lines of `readme` (the README's text).
pub fn transcript(readme: &str) -> Result<Vec<&str>> {
    let mut lines = readme.lines();
    lines
        .find(|l| l.trim() == MARKER)
        .with_context(|| format!("README.md has no `{MARKER}` line"))?;
    lines
        .find(|l| l.starts_with("```"))
        .context("no fenced block after the transcript marker")?;
    let mut block = Vec::new();
    for line in lines {
        if line.starts_with("```") {
            return Ok(block);
        }
        if !(line.starts_with('<') && line.ends_with('>')) {
            block.push(line);
        }
    }
    bail!("the transcript's fenced block is not closed")
}

/// Stands for one figure in a transcript line.
const FIGURE: char = '…';

/// Whether output line `got` is transcript line `want`, each `…` in
/// `want` matching one figure: a non-empty run of ASCII letters and digits
/// (`4096`, `0x80560000`).
fn line_matches(want: &str, got: &str) -> bool {
    let mut pieces = want.split(FIGURE);
    let Some(mut rest) = got.strip_prefix(pieces.next().unwrap_or("")) else {
        return false;
    };
    for piece in pieces {
        let figure = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        match rest[figure..].strip_prefix(piece) {
            Some(after) if figure > 0 => rest = after,
            _ => return false,
        }
    }
    rest.is_empty()
}

/// Checks that every transcript line is a line of `output`, in order.
pub fn check(transcript: &[&str], output: &str) -> Result<()> {
    let mut lines = output.lines().map(|l| l.trim_end_matches('\r'));
    let mut previous: Option<&str> = None;
    for want in transcript {
        if !lines.any(|got| line_matches(want, got)) {
            match previous {
                Some(p) => {
                    bail!("README transcript line `{want}` is not in the run's output after `{p}`")
                }
                None => bail!("README transcript line `{want}` is not in the run's output"),
            }
        }
        previous = Some(want);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const README: &str = "intro\n\
        <!-- transcript: checked by the readme-transcript case -->\n\
        \n\
        ```\n\
        Loaded … bytes at 0x80200000 (… pages)\n\
        <the guest's banner>\n\
        VM exits: 3 total\n\
        ```\n\
        after\n";

    #[test]
    fn the_block_after_the_marker_is_the_transcript() {
        assert_eq!(
            transcript(README).unwrap(),
            [
                "Loaded … bytes at 0x80200000 (… pages)",
                "VM exits: 3 total"
            ]
        );
        assert!(transcript("no marker").is_err());
    }

    #[test]
    fn figures_match_only_where_the_readme_has_dots() {
        let want = "Loaded … bytes at 0x80200000 (… pages)";
        assert!(line_matches(
            want,
            "Loaded 123 bytes at 0x80200000 (7 pages)"
        ));
        assert!(!line_matches(
            want,
            "Loaded 123 bytes at 0x80200000 (7 pages) and more"
        ));
        assert!(!line_matches(want, "Loaded  bytes at 0x80200000 (7 pages)"));
        assert!(!line_matches(
            want,
            "Loaded 1 2 bytes at 0x80200000 (7 pages)"
        ));
        assert!(!line_matches(
            want,
            "Loaded 123 bytes at 0x80300000 (7 pages)"
        ));
        assert!(line_matches("root at …", "root at 0x80560000"));
        assert!(!line_matches("root at …", "root at "));
        assert!(line_matches(
            "Entering VM run loop...",
            "Entering VM run loop..."
        ));
        assert!(!line_matches(
            "Entering VM run loop...",
            "Entering VM run loop"
        ));
    }

    #[test]
    fn every_line_must_appear_in_order() {
        let lines = transcript(README).unwrap();
        let good =
            "noise\r\nLoaded 5 bytes at 0x80200000 (1 pages)\r\nbanner\r\nVM exits: 3 total\r\n";
        assert!(check(&lines, good).is_ok());
        let drifted = "Loaded 5 bytes at 0x80200000 (1 pages)\nVM exits: 4 total\n";
        assert_eq!(
            check(&lines, drifted).unwrap_err().to_string(),
            "README transcript line `VM exits: 3 total` is not in the run's output after `Loaded … bytes at 0x80200000 (… pages)`"
        );
        let reordered = "VM exits: 3 total\nLoaded 5 bytes at 0x80200000 (1 pages)\n";
        assert!(check(&lines, reordered).is_err());
    }
}
