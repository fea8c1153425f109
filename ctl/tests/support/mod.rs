//! Harness for calicoctl's end-to-end tests: a real `calicoctl master run` child on a free loopback
//! port with a datastore in a temporary directory, and runs of the real calicoctl binary against it.
//! The child is killed in `Drop`, so a failing test never leaks it.

#![allow(dead_code)]

use std::{
    io::Write,
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

pub const BIN: &str = env!("CARGO_BIN_EXE_calicoctl");

/// The outcome of one calicoctl run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Assert success and return stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "expected success: {self:?}");
        &self.stdout
    }

    /// Assert exit code `code` and that stderr says `words`; return stderr.
    #[track_caller]
    pub fn fails(&self, code: i32, words: &str) -> String {
        assert_eq!(self.code, code, "expected exit {code}: {self:?}");
        assert!(
            self.stderr.contains(words),
            "stderr lacks {words:?}: {self:?}"
        );
        self.stderr.clone()
    }

    /// stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// A free loopback port (bound and released; a tiny race with other processes is accepted).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running master.
pub struct Master {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub url: String,
    pub datastore: PathBuf,
    pub token_file: Option<PathBuf>,
    log: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Master {
    /// Start a master with a fresh datastore, optionally requiring `token`.
    pub fn start(token: Option<&str>) -> Master {
        let dir = tempfile::tempdir().expect("tempdir");
        let token_file = token.map(|t| {
            let p = dir.path().join("token");
            std::fs::write(&p, format!("{t}\n")).expect("token file");
            p
        });
        let datastore = dir.path().join("state").join("master.db");
        let mut m = Master::spawn(&datastore, token_file.as_deref(), dir.path());
        m._dir = Some(dir);
        m
    }

    /// Start a master on an existing datastore (for restarts); `logdir` holds its log.
    pub fn spawn(datastore: &Path, token_file: Option<&Path>, logdir: &Path) -> Master {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let log = logdir.join(format!("master-{port}.log"));
        let logf = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(BIN);
        cmd.args([
            "master",
            "run",
            "--listen",
            &addr.to_string(),
            "--datastore",
        ])
        .arg(datastore)
        .env_remove("CALICO_MASTER")
        .env_remove("CALICO_TOKEN_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(logf);
        if let Some(t) = token_file {
            cmd.arg("--token-file").arg(t);
        }
        let child = cmd.spawn().expect("spawn calicoctl master run");
        let mut m = Master {
            child: Some(child),
            addr,
            url: format!("http://{addr}"),
            datastore: datastore.to_owned(),
            token_file: token_file.map(Path::to_owned),
            log,
            _dir: None,
        };
        m.wait_ready();
        m
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("master exited early ({status}): {}", self.log_text());
                }
            }
            assert!(
                Instant::now() < deadline,
                "master not ready: {}",
                self.log_text()
            );
            sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Run calicoctl with `args` against this master (via CALICO_MASTER).
    pub fn ctl(&self, args: &[&str]) -> Run {
        ctl_env(args, Some(&self.url), None)
    }

    /// Run calicoctl with `args`, feeding `stdin`.
    pub fn ctl_stdin(&self, args: &[&str], stdin: &str) -> Run {
        ctl_env(args, Some(&self.url), Some(stdin))
    }

    /// SIGTERM the master and wait for it; its exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("master ignored SIGTERM: {}", self.log_text());
            }
            sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Run calicoctl with `args`, `CALICO_MASTER=master` (if given) and optional stdin.
pub fn ctl_env(args: &[&str], master: Option<&str>, stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("CALICO_TOKEN_FILE")
        .env_remove("CALICO_MASTER")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(m) = master {
        cmd.env("CALICO_MASTER", m);
    }
    let mut child = cmd.spawn().expect("spawn calicoctl");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).expect("stdin");
    }
    let out = child.wait_with_output().expect("calicoctl output");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
