//! The proxy's create hook against a real dockerd and a real master: a Calico container is created with
//! network mode `none`, the node's label and its address reserved against its id; bad values, addresses
//! in use or outside every pool, published ports and an unreachable master are refused with a clear
//! message, and leave no container and no reservation behind; `docker rm` frees the address at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use calico_lab::cmd::Cmd;
use calico_lab::docker::IMAGE;
use calico_lab::Lab;
use calico_master::api::{bind, serve, Api};
use calico_master::client::{BlockingClient, Client, ClientError};
use calico_master::store::{EmbeddedOptions, EmbeddedStore};
use calico_proxy::passthrough::{Calico, Upstream};
use calico_proxy::server::Proxy;
use serde_json::json;

const LABEL: &str = "calico-lab=proxycreate";

/// A master (in-memory store) and a Calico-mode proxy, served on a runtime of their own until dropped.
struct Node {
    master: SocketAddr,
    proxy: SocketAddr,
    stop_master: Option<tokio::sync::oneshot::Sender<()>>,
    stop_proxy: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Node {
    /// A node for lab host `host` (its addresses as gateways, its namespace for host-side interfaces).
    fn start(host: &calico_lab::Host) -> Result<Node> {
        let (gw4, gw6) = (host.ip, host.ip6);
        let host_netns = PathBuf::from(format!("/run/netns/{}", host.ns));
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_master, master_rx) = tokio::sync::oneshot::channel::<()>();
        let (stop_proxy, proxy_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async move {
                let store = EmbeddedStore::in_memory(EmbeddedOptions::default()).expect("a store");
                let api = Arc::new(Api::new(Arc::new(store), None));
                let listeners = bind(&["127.0.0.1:0".parse().expect("addr")])
                    .await
                    .expect("bind");
                let master = listeners[0].local_addr().expect("addr");
                let master_task = tokio::spawn(serve(listeners, api, async {
                    let _ = master_rx.await;
                }));
                let client = Client::new(&[format!("http://{master}")], None).expect("a client");
                let upstream = Upstream::new(
                    PathBuf::from("/var/run/docker.sock"),
                    Some(Arc::new(
                        Calico::new("h1", client)
                            .with_gateways(Some(gw4), Some(gw6))
                            .with_host_netns(Some(host_netns)),
                    )),
                );
                let proxy = Proxy::bind("127.0.0.1:0".parse().expect("addr"), upstream)
                    .await
                    .expect("bind");
                let _ = tx.send((master, proxy.local_addr().expect("addr")));
                tokio::join!(
                    proxy.serve(async {
                        let _ = proxy_rx.await;
                    }),
                    async {
                        let _ = master_task.await;
                    }
                );
            });
        });
        let (master, proxy) = rx
            .recv_timeout(Duration::from_secs(10))
            .context("the node did not start")?;
        Ok(Node {
            master,
            proxy,
            stop_master: Some(stop_master),
            stop_proxy: Some(stop_proxy),
            thread: Some(thread),
        })
    }

    fn client(&self) -> Result<BlockingClient> {
        Ok(BlockingClient::new(Client::new(
            &[format!("http://{}", self.master)],
            None,
        )?)?)
    }

    fn stop_master(&mut self) {
        if let Some(s) = self.stop_master.take() {
            let _ = s.send(());
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop_master();
        if let Some(s) = self.stop_proxy.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn docker(proxy: SocketAddr, args: &[&str]) -> Cmd {
    let host = format!("tcp://{proxy}");
    let mut argv = vec!["docker", "-H", host.as_str()];
    argv.extend_from_slice(args);
    Cmd::new(argv).timeout(Duration::from_secs(60))
}

/// `POST /containers/create` with `env`, raw: the status code and the body of the answer.
fn raw_create(proxy: SocketAddr, env: &[&str]) -> Result<(u16, serde_json::Value)> {
    use std::io::{Read, Write};
    let body =
        json!({"Image": IMAGE, "Env": env, "Labels": {"calico-lab": "proxycreate"}}).to_string();
    let mut s = std::net::TcpStream::connect(proxy)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no status in {answer:?}"))?;
    let json = answer
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b.trim()).ok())
        .unwrap_or_default();
    Ok((status, json))
}

fn containers() -> Result<usize> {
    Ok(
        Cmd::new(["docker", "ps", "-aq", "--filter", &format!("label={LABEL}")])
            .stdout()?
            .lines()
            .count(),
    )
}

#[test]
fn calico_containers_are_reserved_and_rewritten_and_bad_ones_leave_nothing() -> Result<()> {
    assert!(
        rustix::process::geteuid().is_root(),
        "needs root: run the README's test command"
    );
    Lab::builder("proxycreate").hosts(1).run(|lab| {
        lab.docker()?;
        let mut node = Node::start(lab.host(1))?;
        let master = node.client()?;
        master.post("/v1/pools", &json!({"cidr": "10.65.0.0/16"}))?;
        let p = node.proxy;

        // A Calico container.
        let id = docker(
            p,
            &[
                "run",
                "-d",
                "--label",
                LABEL,
                "-e",
                "CALICO_IP=10.65.0.2",
                "-e",
                "CALICO_PROFILE=web",
                IMAGE,
                "sleep",
                "1d",
            ],
        )
        .stdout()?;
        let mode = Cmd::new([
            "docker",
            "inspect",
            "--format",
            "{{.HostConfig.NetworkMode}} {{index .Config.Labels \"org.projectcalico.node\"}}",
            id.as_str(),
        ])
        .stdout()?;
        ensure!(mode == "none h1", "{mode}");
        let holder = master.get("/v1/ipam/ips/10.65.0.2")?;
        ensure!(
            holder.to_string().contains(&id),
            "the reservation is recorded against the container: {holder}"
        );
        master
            .get("/v1/profiles/web")
            .context("the missing profile was created")?;

        // Refusals: nothing created, nothing reserved.
        let before = containers()?;
        for (env, expect) in [
            ("CALICO_IP=10.65.0.2", "10.65.0.2"),
            ("CALICO_IP=garbage", "`garbage`"),
            ("CALICO_IP=10.99.0.1", "10.99.0.1"),
        ] {
            let out = docker(
                p,
                &[
                    "run", "-d", "--label", LABEL, "-e", env, IMAGE, "sleep", "1d",
                ],
            )
            .output()?;
            ensure!(
                !out.success() && out.stderr.contains(expect),
                "{env}: {out:?}"
            );
        }
        let out = docker(
            p,
            &[
                "run",
                "-d",
                "--label",
                LABEL,
                "-e",
                "CALICO_IP=10.65.0.50",
                "-e",
                "CALICO_PROFILE=add",
                IMAGE,
                "sleep",
                "1d",
            ],
        )
        .output()?;
        ensure!(
            !out.success() && out.stderr.contains("CALICO_PROFILE"),
            "{out:?}"
        );
        let out = docker(
            p,
            &[
                "run",
                "-d",
                "--label",
                LABEL,
                "-p",
                "8080:80",
                "-e",
                "CALICO_IP=10.65.0.51",
                IMAGE,
                "sleep",
                "1d",
            ],
        )
        .output()?;
        ensure!(
            !out.success() && out.stderr.contains("rule add inbound"),
            "{out:?}"
        );
        // Bad input is a client error with a Docker-style message naming the variable and value.
        for env in [
            "CALICO_IP=garbage",
            "CALICO_IP=10.99.0.1",
            "CALICO_IP=10.65.0.2",
        ] {
            let (status, answer) = raw_create(p, &[env])?;
            let value = env.trim_start_matches("CALICO_IP=");
            ensure!(
                status == 400
                    && answer["message"]
                        .as_str()
                        .is_some_and(|m| m.contains(value)),
                "{env}: {status} {answer}"
            );
        }
        ensure!(containers()? == before, "no container was created");
        // Nothing reserved: neither the address outside the pools nor the free ones the refused
        // profile and published port asked for.
        for ip in ["10.99.0.1", "10.65.0.50", "10.65.0.51"] {
            match master.get(&format!("/v1/ipam/ips/{ip}")) {
                Err(ClientError::Api { status, .. }) if (400..500).contains(&status) => {}
                other => anyhow::bail!("{ip} must hold no reservation: {other:?}"),
            }
        }

        // Automatic assignment, and a container that is not Calico's passes untouched.
        docker(
            p,
            &[
                "run",
                "-d",
                "--label",
                LABEL,
                "-e",
                "CALICO_IP=auto",
                IMAGE,
                "sleep",
                "1d",
            ],
        )
        .run()?;
        let plain = docker(p, &["create", "--label", LABEL, IMAGE, "true"]).stdout()?;
        let plain_mode = Cmd::new([
            "docker",
            "inspect",
            "--format",
            "{{.HostConfig.NetworkMode}}",
            plain.as_str(),
        ])
        .stdout()?;
        ensure!(plain_mode != "none", "{plain_mode}");

        // docker rm through the proxy frees the address before it returns: it can be used again at once.
        docker(p, &["rm", "-f", &id[..12]]).run()?;
        let again = docker(
            p,
            &[
                "run",
                "-d",
                "--label",
                LABEL,
                "-e",
                "CALICO_IP=10.65.0.2",
                IMAGE,
                "sleep",
                "1d",
            ],
        )
        .stdout()?;
        let holder = master.get("/v1/ipam/ips/10.65.0.2")?;
        ensure!(
            holder.to_string().contains(&again),
            "reused by the new container: {holder}"
        );

        // The master gone: a clear 503, and no container.
        node.stop_master();
        let before = containers()?;
        let out = docker(
            p,
            &[
                "run",
                "-d",
                "--label",
                LABEL,
                "-e",
                "CALICO_IP=auto",
                IMAGE,
                "sleep",
                "1d",
            ],
        )
        .output()?;
        ensure!(
            !out.success() && out.stderr.contains("Calico master"),
            "{out:?}"
        );
        let (status, answer) = raw_create(p, &["CALICO_IP=auto"])?;
        ensure!(
            status == 503
                && answer["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("Calico master")),
            "{status} {answer}"
        );
        ensure!(containers()? == before);
        Ok(())
    })
}
