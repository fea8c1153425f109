//! Processes the lab starts (daemons in hosts or the root namespace) and how they are found and ended.
//!
//! Each daemon's stdout and stderr go to a log file in the lab's directory, and its PID with its kernel
//! start time goes to a pid file there, so that a later run can end exactly the processes a crashed run
//! left (a recycled PID has another start time and is left alone). Only processes the lab started are
//! ever signalled.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rustix::process::{kill_process, Pid, Signal};

use crate::place::Place;

/// A process the lab started and will stop.
#[derive(Debug)]
pub struct Daemon {
    pub name: String,
    pub log: PathBuf,
    pid_file: PathBuf,
    child: Child,
}

impl Daemon {
    /// Starts `argv` in `place`, logging to `<dir>/logs/<name>.log` and recording it in `<dir>/pids/`.
    pub fn spawn<S: AsRef<str>>(
        dir: &Path,
        name: &str,
        place: &Place,
        argv: &[S],
    ) -> Result<Daemon> {
        let logs = dir.join("logs");
        let pids = dir.join("pids");
        fs::create_dir_all(&logs)?;
        fs::create_dir_all(&pids)?;
        let log = logs.join(format!("{name}.log"));
        let out = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let full = place.wrap(argv);
        let display = full.join(" ");
        let child = std::process::Command::new(&full[0])
            .args(&full[1..])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {name}: `{display}`"))?;
        let pid = child.id();
        let pid_file = pids.join(format!("{name}.pid"));
        fs::write(
            &pid_file,
            format!("{pid} {}\n", start_time(pid).unwrap_or(0)),
        )?;
        Ok(Daemon {
            name: name.to_string(),
            log,
            pid_file,
            child,
        })
    }

    /// The daemon's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process runs (a zombie counts as ended).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// What the daemon has logged so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Ends the daemon: SIGTERM, then SIGKILL after `grace`; always reaps it and removes its pid file.
    pub fn stop(&mut self, grace: Duration) {
        if self.running() {
            if let Some(pid) = Pid::from_raw(self.child.id() as i32) {
                let _ = kill_process(pid, Signal::TERM);
            }
            let deadline = Instant::now() + grace;
            while self.running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if self.running() {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.pid_file);
    }

    /// Ends the daemon at once with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.pid_file);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// The kernel's start time of `pid` (field 22 of /proc/PID/stat), which tells a process from a later one
/// that reused its PID.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

fn parse_start_time(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// True when `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Sends SIGKILL to `pid` and waits (up to 10 s) until it is gone or a zombie.
pub fn kill_and_wait(pid: u32) {
    if let Some(p) = Pid::from_raw(pid as i32) {
        let _ = kill_process(p, Signal::KILL);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reads a "PID START-TIME" record (a pid file or the dockerd marker).
pub fn read_record(path: &Path) -> Option<(u32, u64)> {
    let text = fs::read_to_string(path).ok()?;
    let mut f = text.split_whitespace();
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

/// True when the recorded process still runs and is the one recorded (not a reuse of its PID).
pub fn record_alive((pid, started): (u32, u64)) -> bool {
    alive(pid) && start_time(pid) == Some(started)
}

/// Ends the processes recorded in `dir/pids/*.pid` that still are the processes recorded there.
pub fn kill_recorded(dir: &Path) -> Vec<u32> {
    let mut killed = Vec::new();
    let Ok(entries) = fs::read_dir(dir.join("pids")) else {
        return killed;
    };
    for entry in entries.flatten() {
        if let Some(record) = read_record(&entry.path()).filter(|r| record_alive(*r)) {
            kill_and_wait(record.0);
            killed.push(record.0);
        }
        let _ = fs::remove_file(entry.path());
    }
    killed
}

/// The PIDs of the processes recorded in `dir/pids/` that are still alive as recorded.
pub fn recorded_alive(dir: &Path) -> Vec<u32> {
    let Ok(entries) = fs::read_dir(dir.join("pids")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| read_record(&e.path()))
        .filter(|r| record_alive(*r))
        .map(|(pid, _)| pid)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_survives_odd_command_names() {
        let stat =
            "1234 (a) b (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1 2 3";
        assert_eq!(parse_start_time(stat), Some(987654));
        assert_eq!(parse_start_time("garbage"), None);
    }

    #[test]
    fn own_process_is_alive_with_a_start_time() {
        let me = std::process::id();
        assert!(alive(me));
        assert!(start_time(me).is_some());
        assert!(!alive(u32::MAX - 1));
    }

    #[test]
    fn a_daemon_logs_stops_and_leaves_no_pid_file() {
        let dir = tempfile_dir();
        let mut d = Daemon::spawn(
            &dir,
            "echoer",
            &Place::Root,
            &["sh", "-c", "echo started; exec sleep 30"],
        )
        .unwrap();
        let pid = d.pid();
        crate::wait::wait_until(Duration::from_secs(5), "the log line", || {
            Ok(d.log_text().contains("started"))
        })
        .unwrap();
        assert_eq!(recorded_alive(&dir), vec![pid]);
        d.stop(Duration::from_secs(2));
        assert!(!alive(pid));
        assert!(recorded_alive(&dir).is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn recorded_processes_of_a_crashed_run_are_ended() {
        let dir = tempfile_dir();
        let d = Daemon::spawn(&dir, "orphan", &Place::Root, &["sleep", "30"]).unwrap();
        let pid = d.pid();
        // Simulate a crash: the handle is forgotten, the pid file stays behind.
        std::mem::forget(d);
        assert_eq!(kill_recorded(&dir), vec![pid]);
        assert!(!alive(pid));
        fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "calico-lab-procs-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}
