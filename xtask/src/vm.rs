//! Running one VM in QEMU: spawn it, copy its output live to ours while
//! keeping a copy (with when each piece came), kill it after a timeout,
//! and report how it ended.
//!
//! QEMU's exit status is the verdict: 0 means the guest asked to power off
//! and the hypervisor stopped it cleanly; anything else is a failure.

use crate::arch::{ArchSpec, VmFiles};
use anyhow::{Context, Result, bail};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// What to boot and how.
pub struct RunSpec<'a> {
    pub spec: &'static ArchSpec,
    pub files: VmFiles<'a>,
    pub timeout: Duration,
    /// Copy QEMU's output to ours as it comes.
    pub echo: bool,
    /// Print the QEMU command line first.
    pub show_command: bool,
    /// Appended to the architecture's QEMU arguments (e.g. `-icount`).
    pub extra_args: &'a [&'a str],
    /// What QEMU's standard input (the guest's serial input) gets.
    pub input: Input<'a>,
}

/// The guest's serial input, which QEMU reads from its standard input.
#[derive(Clone, Copy, Debug, Default)]
pub enum Input<'a> {
    /// None: standard input is closed.
    #[default]
    Null,
    /// Ours: the user types to the guest (`cargo xtask run`).
    Inherit,
    /// Typed by a script: each step waits until its text has appeared in
    /// the output (after the previous step's), then types its bytes.
    Script(&'a [InputStep<'a>]),
}

/// One step of an input script.
#[derive(Clone, Copy, Debug)]
pub struct InputStep<'a> {
    /// Output to wait for.
    pub after: &'a str,
    /// Bytes typed once it has appeared.
    pub send: &'a [u8],
}

/// How the QEMU process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmEnd {
    Exited(i32),
    /// Ended by a signal it was not sent by us.
    Killed(String),
    /// Still running at the timeout, so we killed it.
    TimedOut,
}

pub struct RunOutput {
    /// Everything QEMU printed (stdout and stderr, as they came).
    pub text: String,
    /// When each piece of `text` arrived: the time since QEMU started,
    /// and the length of the output with that piece (in bytes, which are
    /// `text`'s own while the output is UTF-8).
    pub arrivals: Vec<(Duration, usize)>,
    pub end: VmEnd,
    /// From spawning QEMU to its end.
    pub wall: Duration,
    pub timeout: Duration,
}

impl RunOutput {
    /// The time from QEMU's start until `needle` had first been printed
    /// in full, if it was.
    pub fn time_to(&self, needle: &str) -> Option<Duration> {
        let end = self.text.find(needle)? + needle.len();
        self.arrivals
            .iter()
            .find(|&&(_, len)| len >= end)
            .map(|&(at, _)| at)
    }

    /// `Ok` if the VM succeeded, else the error `run` reports.
    pub fn check(&self) -> Result<()> {
        match &self.end {
            VmEnd::Exited(0) => Ok(()),
            VmEnd::Exited(code) => bail!("QEMU exited with status {code}: the VM failed"),
            VmEnd::Killed(how) => bail!("QEMU was {how}: the VM failed"),
            VmEnd::TimedOut => bail!("QEMU timed out after {} s", self.timeout.as_secs_f64()),
        }
    }
}

/// Boots `run` and waits for QEMU to end or time out.
pub fn run_vm(run: &RunSpec) -> Result<RunOutput> {
    let qemu = &run.spec.qemu;
    let mut args = (qemu.args)(&run.files);
    args.extend(run.extra_args.iter().map(OsString::from));
    let watch = Watch {
        timeout: run.timeout,
        echo: run.echo,
        show_command: run.show_command,
        input: run.input,
    };
    run_command(qemu.binary, &args, &watch)
}

/// How a command is run and watched, whatever its command line.
#[derive(Clone, Copy, Debug)]
pub struct Watch<'a> {
    pub timeout: Duration,
    /// Copy its output to ours as it comes.
    pub echo: bool,
    /// Print the command line first.
    pub show_command: bool,
    pub input: Input<'a>,
}

/// What the command printed so far, and when each piece arrived.
#[derive(Default)]
struct Capture {
    bytes: Vec<u8>,
    /// For each piece read: the time since the start, and the length of
    /// `bytes` with it.
    arrivals: Vec<(Duration, usize)>,
}

/// Runs `program args...` (a QEMU with any command line) and waits for it
/// to end or time out.
pub fn run_command(program: &str, args: &[OsString], watch: &Watch) -> Result<RunOutput> {
    if watch.show_command {
        eprintln!("{}", shell_line(program, args));
    }
    let start = Instant::now();
    let stdin = match watch.input {
        Input::Null => Stdio::null(),
        Input::Inherit => Stdio::inherit(),
        Input::Script(_) => Stdio::piped(),
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    let captured = Arc::new(Mutex::new(Capture::default()));
    let readers = [
        child
            .stdout
            .take()
            .map(|out| tee(out, Sink::Stdout, watch.echo, start, &captured)),
        child
            .stderr
            .take()
            .map(|err| tee(err, Sink::Stderr, watch.echo, start, &captured)),
    ];
    let done = Arc::new(AtomicBool::new(false));
    let typist = match (watch.input, child.stdin.take()) {
        (Input::Script(steps), Some(stdin)) => Some(type_script(
            steps
                .iter()
                .map(|s| (s.after.to_string(), s.send.to_vec()))
                .collect(),
            stdin,
            &captured,
            &done,
        )),
        _ => None,
    };
    let end = wait_until(&mut child, start + watch.timeout)?;
    let wall = start.elapsed();
    done.store(true, Ordering::Relaxed);
    if let Some(typist) = typist {
        let _ = typist.join();
    }
    for reader in readers.into_iter().flatten() {
        let _ = reader.join();
    }
    let capture = std::mem::take(&mut *captured.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(RunOutput {
        text: String::from_utf8_lossy(&capture.bytes).into_owned(),
        arrivals: capture.arrivals,
        end,
        wall,
        timeout: watch.timeout,
    })
}

/// Waits for `child` to exit, killing it at `deadline`.
fn wait_until(child: &mut Child, deadline: Instant) -> Result<VmEnd> {
    loop {
        if let Some(status) = child.try_wait().context("cannot wait for QEMU")? {
            return Ok(match status.code() {
                Some(code) => VmEnd::Exited(code),
                None => VmEnd::Killed(status.to_string()),
            });
        }
        let now = Instant::now();
        if now >= deadline {
            child.kill().context("cannot kill QEMU")?;
            child.wait().context("cannot wait for QEMU")?;
            return Ok(VmEnd::TimedOut);
        }
        thread::sleep((deadline - now).min(Duration::from_millis(5)));
    }
}

/// Types `steps` into `stdin` as their texts appear in `captured`; keeps
/// `stdin` open (QEMU may take its end as the end of the serial line)
/// until `done`.
fn type_script(
    steps: Vec<(String, Vec<u8>)>,
    mut stdin: ChildStdin,
    captured: &Arc<Mutex<Capture>>,
    done: &Arc<AtomicBool>,
) -> JoinHandle<()> {
    let captured = Arc::clone(captured);
    let done = Arc::clone(done);
    thread::spawn(move || {
        let mut from = 0;
        let mut steps = steps.into_iter();
        let mut step = steps.next();
        while !done.load(Ordering::Relaxed) {
            if let Some((after, send)) = &step {
                let seen = {
                    let capture = captured.lock().unwrap_or_else(|e| e.into_inner());
                    find(&capture.bytes[from..], after.as_bytes()).map(|at| from + at + after.len())
                };
                if let Some(end) = seen {
                    from = end;
                    if stdin.write_all(send).and_then(|()| stdin.flush()).is_err() {
                        return;
                    }
                    step = steps.next();
                    continue;
                }
            }
            thread::sleep(Duration::from_millis(5));
        }
    })
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len().max(1)).position(|w| w == needle)
}

#[derive(Clone, Copy)]
enum Sink {
    Stdout,
    Stderr,
}

/// Copies everything from `from` into `captured`, noting when each piece
/// arrived (since `start`), and to our `sink` too if `echo`, chunk by
/// chunk as it arrives.
fn tee(
    mut from: impl Read + Send + 'static,
    sink: Sink,
    echo: bool,
    start: Instant,
    captured: &Arc<Mutex<Capture>>,
) -> JoinHandle<()> {
    let captured = Arc::clone(captured);
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            let at = start.elapsed();
            if echo {
                // Our own output going away must not stop the capture.
                let _ = match sink {
                    Sink::Stdout => write_flush(&mut std::io::stdout().lock(), &buf[..n]),
                    Sink::Stderr => write_flush(&mut std::io::stderr().lock(), &buf[..n]),
                };
            }
            let mut capture = captured.lock().unwrap_or_else(|e| e.into_inner());
            capture.bytes.extend_from_slice(&buf[..n]);
            let len = capture.bytes.len();
            capture.arrivals.push((at, len));
        }
    })
}

fn write_flush(to: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    to.write_all(bytes)?;
    to.flush()
}

/// `program args...` as one line a shell would run as is.
pub fn shell_line(program: &str, args: &[OsString]) -> String {
    let mut line = program.to_string();
    for arg in args {
        let arg = arg.to_string_lossy();
        line.push(' ');
        if !arg.is_empty()
            && arg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./,=:@+".contains(c))
        {
            line.push_str(&arg);
        } else {
            line.push('\'');
            line.push_str(&arg.replace('\'', r"'\''"));
            line.push('\'');
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_is_the_exit_status() {
        let out = |end| RunOutput {
            text: String::new(),
            arrivals: Vec::new(),
            end,
            wall: Duration::ZERO,
            timeout: Duration::from_secs(5),
        };
        assert!(out(VmEnd::Exited(0)).check().is_ok());
        let err = out(VmEnd::Exited(1)).check().unwrap_err().to_string();
        assert_eq!(err, "QEMU exited with status 1: the VM failed");
        let err = out(VmEnd::TimedOut).check().unwrap_err().to_string();
        assert_eq!(err, "QEMU timed out after 5 s");
    }

    /// An architecture whose "QEMU" is `sh -c KERNEL`, so a test picks what
    /// the VM does through the kernel path.
    static FAKE: ArchSpec = ArchSpec {
        qemu: crate::arch::QemuSpec {
            binary: "sh",
            debian_package: "dash",
            min_version: (0, 0),
            args: |files| vec!["-c".into(), files.kernel.into()],
            without_virtualization: &[],
        },
        ..crate::arch::riscv64::SPEC
    };

    fn fake_run(script: &str, timeout: Duration) -> RunOutput {
        let none = std::path::Path::new("");
        let files = VmFiles {
            kernel: std::path::Path::new(script),
            disk: none,
            pflash: none,
        };
        let run = RunSpec {
            spec: &FAKE,
            files,
            timeout,
            echo: false,
            show_command: false,
            extra_args: &[],
            input: Input::Null,
        };
        run_vm(&run).unwrap()
    }

    #[test]
    fn a_script_types_after_the_text_it_waits_for() {
        let steps = [
            InputStep {
                after: "name?",
                send: b"guest\n",
            },
            InputStep {
                after: "again?",
                send: b"twice\n",
            },
        ];
        let none = std::path::Path::new("");
        let run = RunSpec {
            spec: &FAKE,
            files: VmFiles {
                kernel: std::path::Path::new(
                    "echo name?; read a; echo \"hello $a\"; echo again?; read b; echo \"bye $b\"",
                ),
                disk: none,
                pflash: none,
            },
            timeout: Duration::from_secs(10),
            echo: false,
            show_command: false,
            extra_args: &[],
            input: Input::Script(&steps),
        };
        let out = run_vm(&run).unwrap();
        assert_eq!(out.end, VmEnd::Exited(0));
        assert_eq!(out.text, "name?\nhello guest\nagain?\nbye twice\n");
    }

    #[test]
    fn output_of_both_streams_is_captured_with_the_exit_status() {
        let out = fake_run(
            "echo booting; echo oops >&2; sleep 0.1; echo done; exit 3",
            Duration::from_secs(10),
        );
        assert_eq!(out.end, VmEnd::Exited(3));
        assert!(
            out.text.contains("booting\n")
                && out.text.contains("oops\n")
                && out.text.contains("done\n")
        );
        assert!(out.wall >= Duration::from_millis(100));
        assert_eq!(
            fake_run("exit 0", Duration::from_secs(10)).end,
            VmEnd::Exited(0)
        );
    }

    #[test]
    fn the_time_to_a_line_is_when_its_last_byte_arrived() {
        let out = fake_run(
            "echo booting; sleep 0.3; echo 'userspace is up'; echo after",
            Duration::from_secs(10),
        );
        let up = out.time_to("userspace is up").unwrap();
        assert!(up >= Duration::from_millis(300) && up <= out.wall, "{up:?}");
        assert!(out.time_to("booting").unwrap() < up);
        assert_eq!(out.time_to("never printed"), None);
        let ms = Duration::from_millis;
        let pieces = RunOutput {
            text: "abcdef".into(),
            arrivals: vec![(ms(1), 2), (ms(5), 4), (ms(9), 6)],
            end: VmEnd::Exited(0),
            wall: ms(10),
            timeout: ms(100),
        };
        assert_eq!(
            pieces.time_to("bc"),
            Some(ms(5)),
            "c came in the second piece"
        );
        assert_eq!(pieces.time_to("ab"), Some(ms(1)));
        assert_eq!(pieces.time_to("f"), Some(ms(9)));
    }

    #[test]
    fn a_vm_still_running_at_the_timeout_is_killed() {
        let out = fake_run("echo spinning; exec sleep 30", Duration::from_millis(300));
        assert_eq!(out.end, VmEnd::TimedOut);
        assert!(
            out.wall >= Duration::from_millis(300) && out.wall < Duration::from_secs(5),
            "{:?}",
            out.wall
        );
        assert_eq!(out.text, "spinning\n");
    }

    #[test]
    fn command_lines_are_quoted_only_where_needed() {
        let args: Vec<OsString> = ["-m", "128M", "file=/a b/c", "it's"]
            .into_iter()
            .map(OsString::from)
            .collect();
        assert_eq!(
            shell_line("qemu", &args),
            r"qemu -m 128M 'file=/a b/c' 'it'\''s'"
        );
    }
}
