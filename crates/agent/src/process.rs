//! Runs the package manager's programs (apt-get, apt-cache, dpkg, rpm, dnf) as child processes.
//!
//! Every call goes through [`Invocation::run`], which keeps these rules: the environment is
//! exactly the one given (nothing is inherited from the agent), standard input is closed so no
//! prompt can wait for an answer, the child runs in its own process group and the whole group is
//! killed when the hard timeout passes, stdout and stderr are drained on their own threads so a
//! chatty child never blocks on a full pipe, and the exit status is always checked: only 0 and
//! the codes the caller declared are success. Errors name the program, its arguments and the
//! tail of its stderr.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// The search path package-manager programs get unless the caller gives another.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long a child may take unless the caller says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// How long, after the group was killed, we still wait for the child and its pipes.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// stderr kept in memory: past this, the oldest half is dropped (the tail is what errors show).
const STDERR_KEEP: usize = 1024 * 1024;

/// How much of stderr an error message quotes.
const STDERR_TAIL_LINES: usize = 12;
const STDERR_TAIL_BYTES: usize = 2000;

/// One program to run: its arguments, its whole environment, its timeout and accepted exit codes.
#[derive(Debug, Clone)]
pub struct Invocation {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    current_dir: Option<PathBuf>,
    timeout: Duration,
    accepted_codes: Vec<i32>,
}

/// What a child left behind when it exited with an accepted code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The exit code: 0 or one of the codes the invocation accepted.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Why a child did not run to an accepted exit.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot start `{command}`: {source}")]
    Spawn { command: String, source: io::Error },
    #[error("`{command}` ran longer than {}s and was killed{}", timeout.as_secs(), stderr_suffix(stderr_tail))]
    TimedOut { command: String, timeout: Duration, stderr_tail: String },
    #[error("`{command}` exited with code {code}{}", stderr_suffix(stderr_tail))]
    Failed { command: String, code: i32, stderr_tail: String },
    #[error("`{command}` was killed by signal {signal}{}", stderr_suffix(stderr_tail))]
    Killed { command: String, signal: i32, stderr_tail: String },
    #[error("cannot read the output of `{command}`: {source}")]
    Read { command: String, source: io::Error },
    #[error("`{command}` wrote output that is not UTF-8")]
    NotUtf8 { command: String },
}

impl ProcessError {
    /// The tail of the child's stderr, when the child ran at all.
    pub fn stderr_tail(&self) -> Option<&str> {
        match self {
            ProcessError::TimedOut { stderr_tail, .. }
            | ProcessError::Failed { stderr_tail, .. }
            | ProcessError::Killed { stderr_tail, .. } => Some(stderr_tail),
            _ => None,
        }
    }
}

fn stderr_suffix(tail: &str) -> String {
    if tail.is_empty() { String::new() } else { format!(": {tail}") }
}

impl Invocation {
    /// A program with no arguments, an empty environment and the default timeout.
    pub fn new(program: impl Into<OsString>) -> Self {
        Invocation {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            current_dir: None,
            timeout: DEFAULT_TIMEOUT,
            accepted_codes: Vec::new(),
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds several arguments.
    pub fn args<I, A>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets one environment variable; the child sees only the variables set this way.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        let key = key.into();
        self.env.retain(|(existing, _)| *existing != key);
        self.env.push((key, value.into()));
        self
    }

    /// The child's working directory; without it the child starts in `/`.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// The hard limit after which the child and its process group are killed.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Declares a non-zero exit code that means success (dnf check-update's 100).
    pub fn accept_exit_code(mut self, code: i32) -> Self {
        self.accepted_codes.push(code);
        self
    }

    /// The command as shown in messages: the program and its arguments, quoted where needed.
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|part| quote(part))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs the child to its end or its timeout and checks how it exited.
    ///
    /// The child has finished when it has exited and both its pipes are closed; a background
    /// process of its own group still holding a pipe at the deadline is killed with it, and the
    /// run is then a timeout.
    pub fn run(&self) -> Result<Output, ProcessError> {
        let command = self.display();
        let started = Instant::now();
        let mut child = self
            .spawn()
            .map_err(|source| ProcessError::Spawn { command: command.clone(), source })?;

        // Drain both pipes and wait for the exit, each on its own thread.
        let group = rustix::process::Pid::from_child(&child);
        let stdout = spawn_reader(child.stdout.take(), usize::MAX);
        let stderr = spawn_reader(child.stderr.take(), STDERR_KEEP);
        let exited = spawn_waiter(child);

        // Everything (exit and both pipes closed) must happen before the deadline.
        let deadline = started + self.timeout;
        let finished = wait_all(&exited, &stdout, &stderr, deadline);
        let stderr_tail = || tail(&String::from_utf8_lossy(&stderr.snapshot()));
        let status = match finished {
            Finished::All(status) => status,
            Finished::Error(source) => return Err(ProcessError::Read { command, source }),
            Finished::TimedOut => {
                // The child may have been reaped by now; then the group is gone or empty.
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                let _ = wait_all(&exited, &stdout, &stderr, Instant::now() + KILL_GRACE);
                return Err(ProcessError::TimedOut {
                    command,
                    timeout: self.timeout,
                    stderr_tail: stderr_tail(),
                });
            }
        };

        // The exit status decides; the output is only handed back on an accepted code.
        self.check(status, &command, stderr_tail)?;
        let code = status.code().unwrap_or_default();
        let stdout = String::from_utf8(stdout.snapshot())
            .map_err(|_| ProcessError::NotUtf8 { command: command.clone() })?;
        let stderr = String::from_utf8_lossy(&stderr.snapshot()).into_owned();
        Ok(Output { code, stdout, stderr })
    }

    fn spawn(&self) -> io::Result<Child> {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .current_dir(self.current_dir.as_deref().unwrap_or(Path::new("/")))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        command.spawn()
    }

    fn check(
        &self,
        status: ExitStatus,
        command: &str,
        stderr_tail: impl Fn() -> String,
    ) -> Result<(), ProcessError> {
        match (status.code(), status.signal()) {
            (Some(0), _) => Ok(()),
            (Some(code), _) if self.accepted_codes.contains(&code) => Ok(()),
            (Some(code), _) => Err(ProcessError::Failed {
                command: command.to_owned(),
                code,
                stderr_tail: stderr_tail(),
            }),
            (None, signal) => Err(ProcessError::Killed {
                command: command.to_owned(),
                signal: signal.unwrap_or_default(),
                stderr_tail: stderr_tail(),
            }),
        }
    }
}

/// A pipe being drained on its own thread into a buffer the caller can read at any time.
struct Reader {
    buffer: Arc<Mutex<Vec<u8>>>,
    done: Receiver<io::Result<()>>,
}

impl Reader {
    fn snapshot(&self) -> Vec<u8> {
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

trait Pipe: Read + Send + 'static {}
impl Pipe for ChildStdout {}
impl Pipe for ChildStderr {}

fn spawn_reader(pipe: Option<impl Pipe>, keep: usize) -> Reader {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let (sender, done) = mpsc::channel();
    let shared = Arc::clone(&buffer);
    thread::spawn(move || {
        let result = match pipe {
            Some(pipe) => drain(pipe, &shared, keep),
            None => Ok(()),
        };
        let _ = sender.send(result);
    });
    Reader { buffer, done }
}

fn drain(mut pipe: impl Read, buffer: &Mutex<Vec<u8>>, keep: usize) -> io::Result<()> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let read = match pipe.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        let mut buffer = buffer.lock().unwrap_or_else(PoisonError::into_inner);
        buffer.extend_from_slice(&chunk[..read]);
        if buffer.len() > keep {
            let drop_to = buffer.len() - keep / 2;
            buffer.drain(..drop_to);
        }
    }
}

fn spawn_waiter(mut child: Child) -> Receiver<io::Result<ExitStatus>> {
    let (sender, exited) = mpsc::channel();
    thread::spawn(move || {
        let _ = sender.send(child.wait());
    });
    exited
}

enum Finished {
    All(ExitStatus),
    Error(io::Error),
    TimedOut,
}

/// Waits until the child has exited and both pipes are closed, or until `deadline`.
fn wait_all(
    exited: &Receiver<io::Result<ExitStatus>>,
    stdout: &Reader,
    stderr: &Reader,
    deadline: Instant,
) -> Finished {
    let remaining = || deadline.saturating_duration_since(Instant::now());
    let status = match exited.recv_timeout(remaining()) {
        Ok(Ok(status)) => status,
        Ok(Err(error)) => return Finished::Error(error),
        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
            return Finished::TimedOut;
        }
    };
    for reader in [stdout, stderr] {
        match reader.done.recv_timeout(remaining()) {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Finished::Error(error),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                return Finished::TimedOut;
            }
        }
    }
    Finished::All(status)
}

/// The last lines of stderr, trimmed, at most a couple of thousand bytes.
fn tail(stderr: &str) -> String {
    let lines: Vec<&str> =
        stderr.lines().map(str::trim_end).filter(|line| !line.is_empty()).collect();
    let start = lines.len().saturating_sub(STDERR_TAIL_LINES);
    let joined = lines[start..].join(" | ");
    if joined.len() <= STDERR_TAIL_BYTES {
        return joined;
    }
    let mut cut = joined.len() - STDERR_TAIL_BYTES;
    while !joined.is_char_boundary(cut) {
        cut += 1;
    }
    format!("...{}", &joined[cut..])
}

fn quote(part: &OsStr) -> String {
    let text = part.to_string_lossy();
    let plain = !text.is_empty()
        && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_=./:,+@%".contains(c));
    if plain { text.into_owned() } else { format!("'{}'", text.replace('\'', r"'\''")) }
}

impl fmt::Display for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Invocation {
        Invocation::new("/bin/sh").arg("-c").arg(script).env("PATH", DEFAULT_PATH)
    }

    #[test]
    fn output_and_exit_code_are_returned() {
        let output = sh("echo out; echo err >&2").run().unwrap();
        assert_eq!(output, Output { code: 0, stdout: "out\n".into(), stderr: "err\n".into() });
    }

    #[test]
    fn the_environment_is_exactly_the_one_given() {
        let output = Invocation::new("/usr/bin/env")
            .env("LANG", "C.UTF-8")
            .env("APT_CONFIG", "/nonexistent/apt.conf")
            .env("LANG", "C")
            .run()
            .unwrap();
        let mut lines: Vec<&str> = output.stdout.lines().collect();
        lines.sort_unstable();
        assert_eq!(lines, ["APT_CONFIG=/nonexistent/apt.conf", "LANG=C"]);
    }

    #[test]
    fn stdin_is_closed() {
        // `cat` on a closed stdin reads end-of-file at once instead of waiting for input.
        let output = Invocation::new("/bin/cat").timeout(Duration::from_secs(10)).run().unwrap();
        assert_eq!(output.stdout, "");
    }

    #[test]
    fn a_failure_names_the_command_the_code_and_the_stderr_tail() {
        let error =
            sh("for i in $(seq 1 40); do echo line $i >&2; done; exit 3").run().unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, ProcessError::Failed { code: 3, .. }), "{message}");
        assert!(message.starts_with("`/bin/sh -c 'for i in"), "{message}");
        assert!(message.contains("line 40"), "{message}");
        assert!(!message.contains("line 28 "), "only the tail is quoted: {message}");
    }

    #[test]
    fn declared_exit_codes_are_success_and_others_are_not() {
        let output = sh("echo updates; exit 100").accept_exit_code(100).run().unwrap();
        assert_eq!((output.code, output.stdout.as_str()), (100, "updates\n"));
        let error = sh("exit 1").accept_exit_code(100).run().unwrap_err();
        assert!(matches!(error, ProcessError::Failed { code: 1, .. }), "{error}");
    }

    #[test]
    fn a_child_past_its_timeout_is_killed_with_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("grandchild-survived");
        // The grandchild would write the marker after 2 s unless its process group is killed.
        let script = format!("(sleep 2; touch {}) & echo started >&2; sleep 60", marker.display());
        let started = Instant::now();
        let error = sh(&script).timeout(Duration::from_millis(500)).run().unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
        assert!(matches!(error, ProcessError::TimedOut { .. }), "{error}");
        assert_eq!(error.stderr_tail(), Some("started"));

        // Wait past the grandchild's 2 s by running a child that outlives it.
        sh("sleep 3").run().unwrap();
        assert!(!marker.exists(), "the grandchild outlived the timeout");
    }

    #[test]
    fn a_chatty_child_does_not_block_on_a_full_stderr_pipe() {
        // Several megabytes on stderr before anything on stdout: a blocked pipe would time out.
        let script = "i=0; while [ $i -lt 3000 ]; do \
                      printf '%01000d\\n' $i >&2; i=$((i+1)); done; echo done";
        let output = sh(script).timeout(Duration::from_secs(60)).run().unwrap();
        assert_eq!(output.stdout, "done\n");
        assert!(output.stderr.len() <= STDERR_KEEP);
        assert!(output.stderr.ends_with(&format!("{:01000}\n", 2999)));
    }

    #[test]
    fn a_missing_program_is_a_spawn_error_naming_it() {
        let error = Invocation::new("/nonexistent/apt-get").arg("-s").run().unwrap_err();
        assert!(matches!(error, ProcessError::Spawn { .. }));
        assert!(error.to_string().starts_with("cannot start `/nonexistent/apt-get -s`"), "{error}");
    }

    #[test]
    fn a_child_killed_by_a_signal_is_an_error() {
        let error = sh("kill -TERM $$").run().unwrap_err();
        assert!(matches!(error, ProcessError::Killed { signal: 15, .. }), "{error}");
    }

    #[test]
    fn arguments_with_spaces_are_quoted_in_messages() {
        let invocation = Invocation::new("apt-get").args(["-o", "Dir::Etc::Parts=/a b/", "it's"]);
        assert_eq!(invocation.display(), r"apt-get -o 'Dir::Etc::Parts=/a b/' 'it'\''s'");
    }
}
