//! Package transactions that outlive the agent: a wrapper that records its own outcome in files.
//!
//! A transaction (apt-get install, dpkg --configure, rpm -U, dnf install) may upgrade the
//! agent itself, and the package's maintainer scripts may restart the agent's service. So the
//! executor never runs it as its own child: it starts it through [`super::Systemd::run_transient`]
//! (a transient systemd unit on a real machine) inside a small `/bin/sh` wrapper that writes,
//! into a run folder the executor chose, its own pid (`pid`), everything the commands printed
//! (`output`) and, when they are done, their exit code (`exit-code`). Both files appear by
//! rename, so a reader sees them whole or not at all. Whoever runs the agent next (the same
//! process or a restarted one) reads the folder to wait for the transaction or to learn how it
//! ended; nothing is kept in memory.
//!
//! Every command keeps the process module's rules though it cannot use [`crate::process`] to
//! wait: the environment is exactly the one given, stdin is `/dev/null`, and coreutils' `timeout`
//! kills each command's whole process group at its hard limit (then `KILL` 30 s later).

use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a started run may take to write its pid before it counts as never started.
pub const START_GRACE: Duration = Duration::from_secs(10);

/// How much of a run's output the executor keeps for reports.
const OUTPUT_TAIL_BYTES: u64 = 2000;

/// How often a run folder is looked at while waiting.
const POLL: Duration = Duration::from_millis(100);

/// A package transaction: one or more commands run in order, stopping at the first failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransientCommand {
    steps: Vec<Vec<String>>,
    env: Vec<(String, String)>,
    timeout: Duration,
}

/// The wrapped transaction as a transient runner starts it: a program, its arguments and its
/// whole environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedCommand {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The hard limit of each step; a runner may enforce it too (systemd's `RuntimeMaxSec`).
    pub timeout: Duration,
}

impl TransientCommand {
    /// A transaction with this environment (nothing else is inherited) and per-command limit.
    pub fn new(env: Vec<(String, String)>, timeout: Duration) -> Self {
        TransientCommand { steps: Vec::new(), env, timeout }
    }

    /// Adds one command (program and arguments), run after the ones before it succeeded.
    pub fn then(mut self, argv: Vec<String>) -> Self {
        if !argv.is_empty() {
            self.steps.push(argv);
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// How many commands it runs.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The commands as shown in reports.
    pub fn display(&self) -> String {
        let shown: Vec<String> = self.steps.iter().map(|argv| argv.join(" ")).collect();
        shown.join(" && ")
    }

    /// `/bin/sh -c SCRIPT`: records the pid, runs each step under `timeout`, records the code.
    pub fn wrapped(&self, run_dir: &Path) -> WrappedCommand {
        let dir = run_dir.display().to_string();
        let file = |name: &str| quote(&format!("{dir}/{name}"));
        let seconds = self.timeout.as_secs().max(1);
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|argv| {
                let words: Vec<String> = argv.iter().map(|word| quote(word)).collect();
                format!("timeout --kill-after=30 {seconds} {}", words.join(" "))
            })
            .collect();
        let script = format!(
            "echo $$ > {pid_partial} && mv {pid_partial} {pid}\n\
             {{ {steps}; }} > {output} 2>&1 < /dev/null\n\
             code=$?\n\
             echo $code > {code_partial} && mv {code_partial} {code}\n",
            pid_partial = file("pid.partial"),
            pid = file("pid"),
            steps = if steps.is_empty() { "true".to_owned() } else { steps.join(" && ") },
            output = file("output"),
            code_partial = file("exit-code.partial"),
            code = file("exit-code"),
        );
        WrappedCommand {
            argv: vec!["/bin/sh".into(), "-c".into(), script],
            env: self.env.clone(),
            timeout: self.timeout,
        }
    }
}

/// Single quotes for `sh`, with `'` written as `'\''`.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// What a run folder says about its run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// No folder: the run was never asked for.
    NotStarted,
    /// The folder exists, the wrapper has not written its pid (yet).
    Starting,
    Running {
        pid: u32,
    },
    /// The wrapper wrote the exit code; `output` is the tail of what the commands printed.
    Exited {
        code: i32,
        output: String,
    },
    /// The wrapper's process is gone without an exit code: it was killed.
    Vanished {
        output: String,
    },
}

/// Reads a run folder.
pub fn state(run_dir: &Path) -> RunState {
    if !run_dir.is_dir() {
        return RunState::NotStarted;
    }
    let output = output_tail(&run_dir.join("output"));
    if let Ok(text) = fs::read_to_string(run_dir.join("exit-code")) {
        // A code that does not parse is a wrapper we did not write: count it as a failure.
        let code = text.trim().parse().unwrap_or(-1);
        return RunState::Exited { code, output };
    }
    let pid =
        fs::read_to_string(run_dir.join("pid")).ok().and_then(|text| text.trim().parse().ok());
    match pid {
        None => RunState::Starting,
        Some(pid) if wrapper_alive(pid, run_dir) => RunState::Running { pid },
        // It may have finished between the two reads.
        Some(_) => match fs::read_to_string(run_dir.join("exit-code")) {
            Ok(text) => RunState::Exited { code: text.trim().parse().unwrap_or(-1), output },
            Err(_) => RunState::Vanished { output },
        },
    }
}

/// Waits until the run has an outcome (`Exited` or `Vanished`), or `deadline` passes; a run
/// that stays `Starting` past [`START_GRACE`] is returned as `Starting`.
pub fn wait(run_dir: &Path, deadline: Instant) -> RunState {
    let started = Instant::now();
    loop {
        let now_state = state(run_dir);
        let settled = match &now_state {
            RunState::Exited { .. } | RunState::Vanished { .. } | RunState::NotStarted => true,
            RunState::Starting => started.elapsed() >= START_GRACE,
            RunState::Running { .. } => false,
        };
        if settled || Instant::now() >= deadline {
            return now_state;
        }
        super::pause(POLL);
    }
}

/// The wrapper with this pid is alive (not a zombie) and is the one for this folder.
fn wrapper_alive(pid: u32, run_dir: &Path) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let Ok(stat) = fs::read_to_string(proc_dir.join("stat")) else { return false };
    let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
    if matches!(state, None | Some('Z' | 'X')) {
        return false;
    }
    // A reused pid belongs to another program: the wrapper's command line names its folder.
    let Ok(cmdline) = fs::read(proc_dir.join("cmdline")) else { return false };
    let needle = run_dir.display().to_string();
    String::from_utf8_lossy(&cmdline).contains(&needle)
}

/// The last couple of thousand bytes of the output, as trimmed lines joined with ` | `.
pub fn output_tail(path: &Path) -> String {
    let read = || -> io::Result<String> {
        let mut file = fs::File::open(path)?;
        let length = file.metadata()?.len();
        file.seek(SeekFrom::Start(length.saturating_sub(OUTPUT_TAIL_BYTES)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    let text = read().unwrap_or_default();
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|line| !line.is_empty()).collect();
    lines.join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        vec![("PATH".into(), crate::process::DEFAULT_PATH.into())]
    }

    fn start(command: &TransientCommand, dir: &Path) {
        fs::create_dir_all(dir).unwrap();
        let wrapped = command.wrapped(dir);
        std::process::Command::new(&wrapped.argv[0])
            .args(&wrapped.argv[1..])
            .env_clear()
            .envs(wrapped.env.iter().map(|(k, v)| (k, v)))
            .spawn()
            .unwrap()
            .wait()
            .unwrap();
    }

    #[test]
    fn the_wrapper_records_output_and_the_first_failing_code() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("it's a run");
        let command = TransientCommand::new(env(), Duration::from_secs(20))
            .then(vec!["sh".into(), "-c".into(), "echo first; echo 'it'\\''s' >&2".into()])
            .then(vec!["sh".into(), "-c".into(), "exit 7".into()])
            .then(vec!["sh".into(), "-c".into(), "echo never".into()]);
        start(&command, &run);
        match state(&run) {
            RunState::Exited { code, output } => {
                assert_eq!(code, 7);
                assert_eq!(output, "first | it's");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_step_past_its_timeout_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("slow");
        let command = TransientCommand::new(env(), Duration::from_secs(1))
            .then(vec!["sleep".into(), "30".into()]);
        let started = Instant::now();
        start(&command, &run);
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(matches!(state(&run), RunState::Exited { code: 124, .. }), "{:?}", state(&run));
    }

    #[test]
    fn folders_without_a_live_wrapper_read_as_starting_or_vanished() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        assert_eq!(state(&run), RunState::NotStarted);
        fs::create_dir_all(&run).unwrap();
        assert_eq!(state(&run), RunState::Starting);
        // pid 1 is alive but is not this folder's wrapper.
        fs::write(run.join("pid"), "1\n").unwrap();
        fs::write(run.join("output"), "half done\n").unwrap();
        assert_eq!(state(&run), RunState::Vanished { output: "half done".into() });
    }
}
