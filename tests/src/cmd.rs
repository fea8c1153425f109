//! Running the host's tools (`ip`, `docker`, `nsenter`, …) with captured output and a deadline.
//!
//! Input: an argv. Output: the exit status, stdout and stderr, or an error that quotes the command and
//! what it printed, so a failing lab step says exactly what went wrong.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The default deadline of a lab command; a tool that hangs longer is killed and reported.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A command to run: argv, optional stdin bytes and a deadline.
#[derive(Debug, Clone)]
pub struct Cmd {
    argv: Vec<String>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
}

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// True when the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

impl Cmd {
    /// A command from its program and arguments.
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Cmd {
            argv: argv.into_iter().map(Into::into).collect(),
            stdin: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Feeds `bytes` to the command's standard input.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Kills the command if it runs longer than `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The command line as one string, for messages.
    pub fn display(&self) -> String {
        self.argv.join(" ")
    }

    /// Runs the command and returns what it printed, whatever its exit status.
    pub fn output(&self) -> Result<Output> {
        let (program, args) = self.argv.split_first().context("empty command")?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start `{}`", self.display()))?;
        if let (Some(bytes), Some(mut pipe)) = (self.stdin.clone(), child.stdin.take()) {
            // A writer thread, so a command that prints before reading all its input cannot deadlock us.
            thread::spawn(move || {
                use std::io::Write;
                let _ = pipe.write_all(&bytes);
            });
        }
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let status = wait_deadline(&mut child, self.timeout)
            .with_context(|| format!("`{}`", self.display()))?;
        Ok(Output {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        })
    }

    /// Runs the command; an exit status other than 0 is an error quoting its stderr.
    pub fn run(&self) -> Result<Output> {
        let out = self.output()?;
        if !out.success() {
            bail!(
                "`{}` failed ({}): {}{}",
                self.display(),
                out.status,
                out.stderr.trim(),
                if out.stderr.trim().is_empty() {
                    out.stdout.trim()
                } else {
                    ""
                }
            );
        }
        Ok(out)
    }

    /// Runs the command and returns its trimmed stdout.
    pub fn stdout(&self) -> Result<String> {
        Ok(self.run()?.stdout.trim().to_string())
    }

    /// Runs the command and tells whether it succeeded; failing to start it at all is still an error.
    pub fn succeeds(&self) -> Result<bool> {
        Ok(self.output()?.success())
    }
}

/// Shorthand for `Cmd::new(argv).run()`.
pub fn run<I, S>(argv: I) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    Cmd::new(argv).run()
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}

/// Waits for `child` until `timeout`; past it the child is killed and that is an error.
pub fn wait_deadline(child: &mut Child, timeout: Duration) -> Result<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            child
                .kill()
                .context("killing a command past its deadline")?;
            child.wait()?;
            bail!("timed out after {timeout:?}");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_status() {
        let out = Cmd::new(["sh", "-c", "echo out; echo err >&2; exit 3"])
            .output()
            .unwrap();
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn failure_quotes_the_command_and_stderr() {
        let err = Cmd::new(["sh", "-c", "echo nope >&2; exit 1"])
            .run()
            .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("sh -c") && text.contains("nope"), "{text}");
    }

    #[test]
    fn stdin_is_fed() {
        let out = Cmd::new(["cat"]).stdin("hello").stdout().unwrap();
        assert_eq!(out, "hello");
    }

    #[test]
    fn a_command_past_its_deadline_is_killed() {
        let start = Instant::now();
        let err = Cmd::new(["sleep", "10"])
            .timeout(Duration::from_millis(200))
            .output()
            .unwrap_err();
        assert!(format!("{err:#}").contains("timed out"), "{err:#}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_missing_program_is_an_error_not_a_failure() {
        assert!(Cmd::new(["/nonexistent/tool"]).succeeds().is_err());
    }
}
