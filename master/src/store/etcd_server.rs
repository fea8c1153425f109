//! A real etcd server for tests: Debian's `etcd` (3.4) on free loopback ports with a temporary data
//! directory, killed (SIGKILL) and reaped when the guard is dropped, so nothing outlives a test.
//!
//! Inputs: the `etcd` binary (`CALICO_TEST_ETCD` names another path); for [`EtcdServer::start_tls`],
//! `openssl` to make a throwaway CA, server and client certificate. Outputs: a running server
//! ([`EtcdServer::endpoint`]), stores connected to it, and kill / restart on the same data directory
//! for crash and reconnect tests. A missing binary fails the test saying what to install.

use std::{
    fs::File,
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use super::{EtcdOptions, EtcdStore, EtcdTls};

/// A running etcd; killed on drop.
pub(crate) struct EtcdServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    /// With TLS: the client's files (CA, client certificate and key); the server's are beside them.
    tls: Option<EtcdTls>,
}

fn free_port() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding a free loopback port");
    let port = l.local_addr().expect("local address").port();
    (l, port)
}

fn binary() -> PathBuf {
    std::env::var_os("CALICO_TEST_ETCD").map_or_else(|| PathBuf::from("etcd"), PathBuf::from)
}

impl EtcdServer {
    /// Start a fresh single-member etcd and wait until it answers.
    pub(crate) fn start() -> Self {
        Self::start_with(false)
    }

    /// Start one that serves clients over TLS only and requires a client certificate
    /// ([`EtcdServer::client_tls`] has the files that pass).
    pub(crate) fn start_tls() -> Self {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for etcd");
        let tls = tls.then(|| make_certs(dir.path()));
        let (l1, client_port) = free_port();
        let (l2, peer_port) = free_port();
        drop((l1, l2));
        let mut s = EtcdServer {
            child: None,
            dir,
            client_port,
            peer_port,
            tls,
        };
        s.spawn();
        s
    }

    /// The client URL.
    pub(crate) fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// The client's TLS files, for a server started with [`EtcdServer::start_tls`].
    pub(crate) fn client_tls(&self) -> Option<&EtcdTls> {
        self.tls.as_ref()
    }

    fn options(&self) -> EtcdOptions {
        let mut o = EtcdOptions::new([self.endpoint()]);
        o.tls = self.tls.clone();
        o
    }

    /// A new store client of this server.
    pub(crate) fn store(&self) -> EtcdStore {
        EtcdStore::connect(self.options()).expect("connecting to test etcd")
    }

    /// SIGKILL the server and reap it (no clean shutdown: the data directory is as a crash left it).
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freeze the server (SIGSTOP to its PID): connections stay open but nothing answers, as with a
    /// hung etcd or a cut network. [`EtcdServer::resume`] thaws it.
    pub(crate) fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaw a server frozen by [`EtcdServer::pause`] (SIGCONT).
    pub(crate) fn resume(&self) {
        self.signal("-CONT");
    }

    /// Send `signal` to this server's process (by its PID, with kill(1)).
    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("etcd is running").id();
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill {signal} {pid}: {status}");
    }

    /// Start the server again on the same data directory and ports.
    pub(crate) fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn spawn(&mut self) {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("etcd log file");
        let err = log.try_clone().expect("etcd log file");
        let mut cmd = Command::new(binary());
        if self.tls.is_some() {
            let d = self.dir.path();
            cmd.arg(format!("--cert-file={}", d.join("server.pem").display()))
                .arg(format!("--key-file={}", d.join("server.key").display()))
                .arg(format!("--trusted-ca-file={}", d.join("ca.pem").display()))
                .arg("--client-cert-auth");
        }
        let child = cmd
            .arg("--name=test")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=test={peer}"))
            .arg("--initial-cluster-state=new")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => panic!(
                "cannot run etcd ({}): {e}; install etcd-server (apt-get install etcd-server) or set CALICO_TEST_ETCD",
                binary().display()
            ),
        };
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("etcd exited at start ({status}):\n{}", self.log_tail());
                }
            }
            if TcpStream::connect(("127.0.0.1", self.client_port)).is_ok()
                && EtcdStore::connect(self.options()).is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not answer within 30 s:\n{}",
                self.log_tail()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Run openssl; panic with its output if it fails.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}): install openssl"));
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A CA (ca.pem), a server certificate for 127.0.0.1 (server.pem/key) and a client certificate
/// (client.pem/key), all P-256, valid for a day; returns the client's files.
fn make_certs(dir: &std::path::Path) -> EtcdTls {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=calico-test-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    for (name, usage) in [
        ("server", "serverAuth,clientAuth"),
        ("client", "clientAuth"),
    ] {
        let ext = format!("{name}.ext");
        std::fs::write(
            dir.join(&ext),
            format!(
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
                 extendedKeyUsage={usage}\nsubjectAltName=IP:127.0.0.1\n"
            ),
        )
        .expect("extension file");
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let subj = format!("/CN={name}");
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "1",
                "-extfile",
                &ext,
            ],
        );
    }
    EtcdTls {
        ca: Some(dir.join("ca.pem")),
        cert: Some(dir.join("client.pem")),
        key: Some(dir.join("client.key")),
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        // SIGKILL also ends a server frozen by `pause`.
        self.kill();
    }
}
