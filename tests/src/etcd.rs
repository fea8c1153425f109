//! A real etcd (Debian's `etcd-server`) for tests that run the master on etcd.
//!
//! It runs in the root namespace with its own data directory in the lab's directory, listening for
//! clients on the management address (so nodes in host namespaces reach it) and on loopback, on free
//! ports. It stops with its handle or with the lab.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::lab::Lab;
use crate::place::Place;
use crate::procs::Daemon;
use crate::wait::wait_until;

/// A running etcd.
#[derive(Debug)]
pub struct Etcd {
    pub daemon: Daemon,
    /// `http://<management address>:<port>`: what nodes and masters in the lab use.
    pub url: String,
    /// `http://127.0.0.1:<port>`: the same server from the root namespace.
    pub local_url: String,
    /// How it was started (a restart runs the same member on the same ports and data).
    argv: Vec<String>,
    lab_dir: std::path::PathBuf,
    client: u16,
    starts: usize,
}

impl Etcd {
    pub(crate) fn start(lab: &Lab) -> Result<Etcd> {
        let client = free_port()?;
        let peer = free_port()?;
        let mgmt = lab.mgmt_ip();
        let data = lab.dir().join("etcd-data");
        let name = format!("lab-{}", lab.name());
        let url = format!("http://{mgmt}:{client}");
        let local_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let argv = [
            "etcd".to_string(),
            "--name".into(),
            name.clone(),
            "--data-dir".into(),
            data.display().to_string(),
            "--listen-client-urls".into(),
            format!("{url},{local_url}"),
            "--advertise-client-urls".into(),
            url.clone(),
            "--listen-peer-urls".into(),
            peer_url.clone(),
            "--initial-advertise-peer-urls".into(),
            peer_url.clone(),
            "--initial-cluster".into(),
            format!("{name}={peer_url}"),
        ];
        let daemon = lab.spawn("etcd", &Place::Root, &argv)?;
        let mut etcd = Etcd {
            daemon,
            url,
            local_url,
            argv: argv.to_vec(),
            lab_dir: lab.dir().to_path_buf(),
            client,
            starts: 1,
        };
        etcd.wait_healthy()?;
        Ok(etcd)
    }

    fn wait_healthy(&mut self) -> Result<()> {
        let addr: SocketAddr = ([127, 0, 0, 1], self.client).into();
        let daemon = &mut self.daemon;
        wait_until(Duration::from_secs(30), "etcd to report healthy", || {
            if !daemon.running() {
                anyhow::bail!("etcd exited: {}", daemon.log_text());
            }
            Ok(healthy(addr).unwrap_or(false))
        })
    }

    /// Stops it (SIGTERM), as an operator would; [`Etcd::restart`] brings the same member back.
    pub fn stop(&mut self) {
        self.daemon.stop(Duration::from_secs(10));
    }

    /// (Re)starts the same member, on the same ports with the same data, and waits until it is healthy.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.starts += 1;
        let name = format!("etcd-{}", self.starts);
        self.daemon = Daemon::spawn(&self.lab_dir, &name, &Place::Root, &self.argv)?;
        self.wait_healthy()
    }
}

/// True when etcd at `addr` answers `GET /health` with `"health":"true"`.
pub fn healthy(addr: SocketAddr) -> Result<bool> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    conn.write_all(b"GET /health HTTP/1.0\r\nHost: etcd\r\n\r\n")?;
    let mut body = String::new();
    conn.read_to_string(&mut body).context("reading /health")?;
    Ok(body.contains("\"health\":\"true\""))
}

/// A TCP port that is free on this machine right now.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
