//! Progress of the long steps (the riscv64 kernel build, Debian package
//! fetches, apt installs, captured cargo builds): on a terminal, a spinner
//! line on stderr with the elapsed time and what the step is doing right
//! now (the last line of its output, a count, or bytes of a download);
//! anywhere else (CI, a pipe, a file, `TERM` unset or `dumb`), only plain
//! one-line messages, with no escape codes and nothing redrawn.
//!
//! The choice is indicatif's: [`ProgressDrawTarget::stderr`] is hidden
//! unless stderr is an attended terminal, and a [`Task`] whose bar is
//! hidden prints its messages itself as plain lines.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

/// One long step being watched.
pub struct Task {
    /// The spinner, where stderr is a terminal; `None` prints plain lines.
    bar: Option<ProgressBar>,
    start: Instant,
    out: Sink,
}

/// Where a plain-mode task writes its lines.
#[derive(Clone)]
enum Sink {
    Stderr,
    #[cfg(test)]
    Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>),
}

impl Sink {
    fn line(&self, text: &str) {
        match self {
            Sink::Stderr => eprintln!("{text}"),
            #[cfg(test)]
            Sink::Buffer(buffer) => {
                let mut b = buffer.lock().unwrap();
                b.extend_from_slice(text.as_bytes());
                b.push(b'\n');
            }
        }
    }
}

/// How often a spinner turns while nothing else redraws it.
const TICK: Duration = Duration::from_millis(120);

/// The spinner's line: what, how long, and what is going on now (cut to
/// the terminal's width).
const SPINNER_TEMPLATE: &str = "{spinner} {prefix} [{elapsed}] {wide_msg}";
/// The line of a step with a known size (a download).
const BYTES_TEMPLATE: &str =
    "{spinner} {prefix} [{elapsed}] {bar:24} {bytes}/{total_bytes} {wide_msg}";

impl Task {
    /// Starts the step `what` (such as `building the riscv64 guest
    /// kernel`): a spinner on a terminal; elsewhere nothing is printed
    /// until [`Task::finish`]. `what` is also the spinner's label.
    pub fn start(what: &str) -> Task {
        Task::with_target(what, ProgressDrawTarget::stderr(), Sink::Stderr)
    }

    /// A task drawn to `target`, printing plain lines to `out` if the
    /// target is hidden.
    fn with_target(what: &str, target: ProgressDrawTarget, out: Sink) -> Task {
        let bar = (!target.is_hidden()).then(|| {
            let bar = ProgressBar::with_draw_target(None, target);
            bar.set_style(style(SPINNER_TEMPLATE));
            bar.set_prefix(what.to_string());
            bar.enable_steady_tick(TICK);
            bar
        });
        Task {
            bar,
            start: Instant::now(),
            out,
        }
    }

    /// Whether this task draws a spinner (stderr is a terminal).
    pub fn is_live(&self) -> bool {
        self.bar.is_some()
    }

    /// Shows what the step is doing now (a terminal only: plain output
    /// does not report every change).
    pub fn set_detail(&self, detail: impl Into<String>) {
        if let Some(bar) = &self.bar {
            bar.set_message(one_line(&detail.into()));
        }
    }

    /// Turns the spinner into a bar of `total` bytes (a download).
    pub fn set_total_bytes(&self, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_style(style(BYTES_TEMPLATE).progress_chars("=> "));
            bar.set_length(total);
        }
    }

    /// How many bytes of [`Task::set_total_bytes`] are there so far.
    pub fn set_bytes(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    /// Time since the task started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Ends the task: the spinner goes away and `line` stays (in both
    /// modes).
    pub fn finish(self, line: &str) {
        let out = self.out.clone();
        self.clear();
        out.line(line);
    }

    /// Ends the task leaving nothing on the screen.
    pub fn clear(self) {
        // Drop clears the spinner.
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).expect("a valid progress template")
}

/// `text` as one line of plain characters: control characters (a
/// child's escape codes, carriage returns, tabs) become spaces, so they
/// cannot move the cursor under the spinner.
pub fn one_line(text: &str) -> String {
    text.trim_end()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// Runs `cmd` with its stdout and stderr together in one pipe, calling
/// `line` with each line (including its newline, lossily UTF-8) as it
/// comes; returns how `cmd` exited. Its stdin is left as `cmd` says.
pub fn run_lines(mut cmd: Command, mut line: impl FnMut(&str)) -> std::io::Result<ExitStatus> {
    let (reader, writer) = std::io::pipe()?;
    cmd.stdout(writer.try_clone()?).stderr(writer);
    let mut child = cmd.spawn()?;
    // Our copies of the write end go with `cmd`, so that the reader sees
    // the end of the output when the child (and whatever it started) is
    // done.
    drop(cmd);
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => line(&String::from_utf8_lossy(&buf)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        }
    }
    child.wait()
}

/// [`run_lines`], keeping the whole output, and showing its last line on
/// `task`'s spinner.
pub fn run_captured(cmd: Command, task: &Task) -> std::io::Result<(ExitStatus, String)> {
    let mut log = String::new();
    let status = run_lines(cmd, |line| {
        log.push_str(line);
        let shown = one_line(line);
        if !shown.is_empty() {
            task.set_detail(shown);
        }
    })?;
    Ok((status, log))
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn plain_task(what: &str) -> (Task, Arc<Mutex<Vec<u8>>>) {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let task = Task::with_target(
            what,
            ProgressDrawTarget::hidden(),
            Sink::Buffer(buffer.clone()),
        );
        (task, buffer)
    }

    fn text(buffer: &Arc<Mutex<Vec<u8>>>) -> String {
        String::from_utf8(buffer.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn off_a_terminal_a_task_prints_only_its_plain_lines() {
        let (task, buffer) = plain_task("building the riscv64 guest kernel");
        assert!(!task.is_live());
        task.set_detail("image: 12 objects compiled, CC init/main.o");
        task.set_total_bytes(1000);
        task.set_bytes(500);
        task.finish("built in 80 s");
        let out = text(&buffer);
        assert_eq!(out, "built in 80 s\n");
        assert!(!out.contains('\x1b') && !out.contains('\r'), "{out:?}");
    }

    #[test]
    fn a_cleared_task_leaves_nothing() {
        let (task, buffer) = plain_task("building gkernel for riscv64");
        task.set_detail("Compiling axhal v0.2.2");
        task.clear();
        assert_eq!(text(&buffer), "");
    }

    #[test]
    fn the_stderr_target_is_hidden_off_a_terminal() {
        // The test harness's stderr may or may not be a terminal; indicatif
        // must agree with the standard library on which it is.
        use std::io::IsTerminal;
        let task = Task::start("probe");
        let attended =
            std::io::stderr().is_terminal() && std::env::var("TERM").is_ok_and(|t| t != "dumb");
        assert_eq!(task.is_live(), attended);
        task.clear();
    }

    #[test]
    fn details_are_one_line_of_plain_characters() {
        assert_eq!(one_line("  CC      init/main.o\n"), "CC      init/main.o");
        assert_eq!(one_line("a\x1b[2Kb\r\n"), "a [2Kb");
        assert_eq!(one_line("tab\there"), "tab here");
    }

    #[test]
    fn a_child_s_stdout_and_stderr_come_as_lines() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo one; echo two >&2; printf three; exit 3"]);
        let (task, _) = plain_task("sh");
        let (status, log) = run_captured(cmd, &task).unwrap();
        assert_eq!(status.code(), Some(3));
        assert_eq!(log, "one\ntwo\nthree");
        assert_eq!(tail(&log, 2), "two\nthree");
        assert_eq!(tail("x", 30), "x");
    }
}
