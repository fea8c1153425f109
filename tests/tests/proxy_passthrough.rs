//! The Docker proxy's pass-through against a real dockerd: the docker CLI gives the same output and exit
//! code through the proxy as direct, for plain calls, streams (logs -f, events, cp and export of 100 MB,
//! build), stdin piped through upgraded connections (run -i, exec -i, attach), a pty (run -t, and exec -it
//! with typed input and an exit code), info, and stop/start/kill/rm compared with their errors; a BuildKit
//! session's HTTP/2 both ways; and a Docker-style 502 when the daemon is unreachable.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use calico_lab::cmd::{Cmd, Output};
use calico_lab::docker::IMAGE;
use calico_lab::Lab;
use calico_proxy::passthrough::Upstream;
use calico_proxy::server::Proxy;

const LABEL: &str = "calico-lab=proxy";

/// The proxy, served by its own runtime on a thread, until dropped.
struct RunningProxy {
    addr: SocketAddr,
    /// The proxy's upstream side (a clone: it counts the connections to the daemon).
    upstream: Upstream,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningProxy {
    fn start(socket: &str) -> Result<RunningProxy> {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let upstream = Upstream::new(PathBuf::from(socket), None);
        let counted = upstream.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a tokio runtime");
            rt.block_on(async move {
                let proxy = Proxy::bind("127.0.0.1:0".parse().expect("an address"), upstream)
                    .await
                    .expect("the proxy binds");
                let _ = addr_tx.send(proxy.local_addr().expect("its address"));
                proxy
                    .serve(async {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .context("the proxy did not start")?;
        Ok(RunningProxy {
            addr,
            upstream: counted,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn docker(host: &str, args: &[&str]) -> Cmd {
    let mut argv = vec!["docker", "-H", host];
    argv.extend_from_slice(args);
    Cmd::new(argv).timeout(Duration::from_secs(120))
}

/// Runs `args` direct and through the proxy; both must exit alike and print the same.
fn same(proxy: &str, args: &[&str], stdin: Option<&str>) -> Result<Output> {
    let run = |host: &str| {
        let cmd = docker(host, args);
        match stdin {
            Some(s) => cmd.stdin(s).output(),
            None => cmd.output(),
        }
    };
    let direct = run("unix:///var/run/docker.sock")?;
    let proxied = run(proxy)?;
    ensure!(
        direct.status.code() == proxied.status.code() && direct.stdout == proxied.stdout,
        "docker {args:?} differs through the proxy:\ndirect  {:?} {:?} {:?}\nproxied {:?} {:?} {:?}",
        direct.status.code(),
        direct.stdout,
        direct.stderr,
        proxied.status.code(),
        proxied.stdout,
        proxied.stderr
    );
    Ok(proxied)
}

#[test]
fn the_docker_cli_works_through_the_proxy_as_direct() -> Result<()> {
    assert!(
        rustix::process::geteuid().is_root(),
        "needs root: run the README's test command"
    );
    Lab::builder("proxy").hosts(1).run(|lab| {
        lab.docker()?;
        let proxy = RunningProxy::start("/var/run/docker.sock")?;
        let p = format!("tcp://{}", proxy.addr);
        let p = p.as_str();

        same(
            p,
            &[
                "version",
                "--format",
                "{{.Server.Version}} {{.Server.APIVersion}}",
            ],
            None,
        )?;
        same(
            p,
            &["images", "--format", "{{.Repository}}:{{.Tag}}", IMAGE],
            None,
        )?;
        let out = same(
            p,
            &["run", "--rm", "--label", LABEL, IMAGE, "echo", "hello"],
            None,
        )?;
        ensure!(out.stdout == "hello\n", "{out:?}");
        let out = same(
            p,
            &["run", "--rm", "--label", LABEL, IMAGE, "sh", "-c", "exit 3"],
            None,
        )?;
        ensure!(out.status.code() == Some(3));
        // stdin through an upgraded connection: EOF must reach the container (half-close).
        let out = same(
            p,
            &["run", "-i", "--rm", "--label", LABEL, IMAGE, "cat"],
            Some("piped\ndata\n"),
        )?;
        ensure!(out.stdout == "piped\ndata\n", "{out:?}");

        // A long-running container, made through the proxy.
        let id = docker(
            p,
            &[
                "run",
                "-d",
                "--label",
                LABEL,
                "--name",
                "lab-proxy-c1",
                IMAGE,
                "sleep",
                "1d",
            ],
        )
        .stdout()?;
        same(
            p,
            &[
                "ps",
                "--filter",
                "label=calico-lab=proxy",
                "--format",
                "{{.Names}} {{.State}}",
            ],
            None,
        )?;
        same(
            p,
            &[
                "inspect",
                "--format",
                "{{.Config.Cmd}} {{.State.Running}}",
                &id,
            ],
            None,
        )?;
        let out = same(p, &["exec", &id, "sh", "-c", "echo $((40+2))"], None)?;
        ensure!(out.stdout == "42\n");
        let out = same(p, &["exec", "-i", &id, "cat"], Some("to exec\n"))?;
        ensure!(out.stdout == "to exec\n");
        same(
            p,
            &["info", "--format", "{{.ServerVersion}} {{.Driver}} {{.OSType}} {{.NCPU}}"],
            None,
        )?;

        // exec -it under a pty, with typed input and an exit code, alike both ways.
        for host in ["unix:///var/run/docker.sock", p] {
            let line = format!("docker -H {host} exec -it {id} sh -c 'tty; read x; echo got $x; exit 7'");
            let out = Cmd::new(["script", "-qec", line.as_str(), "/dev/null"])
                .stdin("typed\n")
                .timeout(Duration::from_secs(60))
                .output()?;
            ensure!(
                out.status.code() == Some(7)
                    && out.stdout.contains("/dev/pts/")
                    && out.stdout.contains("got typed"),
                "exec -it through {host}: {out:?}"
            );
        }

        // stop, start, kill and rm: one container made each way, the same commands on each; the
        // outputs and exit codes match (with the names swapped), errors included.
        let made = |host: &str, name: &str| {
            docker(
                host,
                &["run", "-d", "--label", LABEL, "--name", name, IMAGE, "sleep", "1d"],
            )
            .stdout()
        };
        let x = made("unix:///var/run/docker.sock", "lab-proxy-x")?;
        let y = made(p, "lab-proxy-y")?;
        for step in [
            &["stop", "-t", "1"][..],
            &["start"],
            &["kill"],
            &["kill"],
            &["rm"],
            &["rm"],
        ] {
            let run = |host: &str, name: &str| {
                let mut args = step.to_vec();
                args.push(name);
                docker(host, &args).output()
            };
            let direct = run("unix:///var/run/docker.sock", "lab-proxy-x")?;
            let proxied = run(p, "lab-proxy-y")?;
            let norm = |s: &str, name: &str, id: &str| s.replace(name, "NAME").replace(id, "ID");
            ensure!(
                direct.status.code() == proxied.status.code()
                    && norm(&direct.stdout, "lab-proxy-x", &x)
                        == norm(&proxied.stdout, "lab-proxy-y", &y)
                    && norm(&direct.stderr, "lab-proxy-x", &x)
                        == norm(&proxied.stderr, "lab-proxy-y", &y),
                "docker {step:?} differs through the proxy:\ndirect  {direct:?}\nproxied {proxied:?}"
            );
        }

        // 100 MB each way through docker cp, checksums compared inside the container.
        docker(
            p,
            &[
                "exec",
                &id,
                "dd",
                "if=/dev/urandom",
                "of=/big",
                "bs=1048576",
                "count=100",
            ],
        )
        .run()?;
        let sum = docker(p, &["exec", &id, "md5sum", "/big"]).stdout()?;
        let local = std::env::temp_dir().join(format!("calico-proxy-big-{}", std::process::id()));
        let local_s = local.display().to_string();
        docker(p, &["cp", &format!("{id}:/big"), &local_s]).run()?;
        docker(p, &["cp", &local_s, &format!("{id}:/big2")]).run()?;
        std::fs::remove_file(&local)?;
        let sum2 = docker(p, &["exec", &id, "md5sum", "/big2"]).stdout()?;
        ensure!(
            sum.split_whitespace().next() == sum2.split_whitespace().next(),
            "{sum} vs {sum2}"
        );
        let exported = docker(p, &["export", &id]).output()?;
        let direct = docker("unix:///var/run/docker.sock", &["export", &id]).output()?;
        ensure!(
            exported.success()
                && exported.stdout.len() == direct.stdout.len()
                && !direct.stdout.is_empty()
        );

        // logs -f follows until the container ends.
        let talker = docker(
            p,
            &[
                "run",
                "-d",
                "--label",
                LABEL,
                IMAGE,
                "sh",
                "-c",
                "for i in 1 2 3; do echo line$i; sleep 0.3; done",
            ],
        )
        .stdout()?;
        let logs = docker(p, &["logs", "-f", &talker])
            .timeout(Duration::from_secs(30))
            .stdout()?;
        ensure!(logs == "line1\nline2\nline3", "{logs:?}");
        same(p, &["logs", &talker], None)?;

        // attach: the container's output streams back over the upgraded connection, which ends with
        // the container. (With piped stdin, dockerd ends an attach at stdin's EOF, racing the output:
        // stdin through upgrades is covered by run -i and exec -i above.)
        let speaker = docker(
            p,
            &[
                "run",
                "-d",
                "--label",
                LABEL,
                IMAGE,
                "sh",
                "-c",
                "sleep 1; echo from the container; sleep 0.5",
            ],
        )
        .stdout()?;
        let out = docker(p, &["attach", "--no-stdin", &speaker])
            .timeout(Duration::from_secs(30))
            .run()?;
        ensure!(out.stdout == "from the container\n", "{out:?}");

        // A pty: run -t under script(1).
        let line =
            format!("docker -H {p} run -t --rm --label {LABEL} {IMAGE} sh -c 'tty; echo ok'");
        let out = Cmd::new(["script", "-qec", line.as_str(), "/dev/null"])
            .timeout(Duration::from_secs(60))
            .stdout()?;
        ensure!(out.contains("/dev/pts/") && out.contains("ok"), "{out:?}");

        // events over a past window (a stream the daemon ends at --until).
        same(
            p,
            &[
                "events",
                "--since",
                "5m",
                "--until",
                "0s",
                "--filter",
                "label=calico-lab=proxy",
                "--filter",
                "event=start",
                "--format",
                "{{.Actor.ID}}",
            ],
            None,
        )?;

        // build (the classic builder: no buildx here), then run what was built.
        let dockerfile = format!(
            "FROM {IMAGE}\nLABEL calico-lab=proxy\nCMD [\"echo\", \"built through the proxy\"]\n"
        );
        let built = Cmd::new([
            "env",
            "DOCKER_BUILDKIT=0",
            "docker",
            "-H",
            p,
            "build",
            "-q",
            "-t",
            "calico-lab/proxytest:latest",
            "-",
        ])
        .stdin(dockerfile)
        .timeout(Duration::from_secs(120))
        .run();
        let ran = docker(
            p,
            &[
                "run",
                "--rm",
                "--label",
                LABEL,
                "calico-lab/proxytest:latest",
            ],
        )
        .stdout();
        let _ = docker(p, &["rmi", "-f", "calico-lab/proxytest:latest"]).output();
        built?;
        ensure!(ran? == "built through the proxy");
        Ok(())
    })
}

/// The HTTP/2 client preface dockerd sends first on a BuildKit session (it is the gRPC client there).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Opens a BuildKit session (`id`: unique among open ones) on `stream` as the CLI's builder does (`POST /session`, `Upgrade: h2c`), sends
/// our HTTP/2 server preface (an empty SETTINGS frame) and reads until dockerd acknowledges it. Returns the
/// answer's head and the (type, flags) of every frame dockerd sent after its preface, up to that ACK.
fn buildkit_session(stream: &mut (impl Read + Write), id: &str) -> Result<(String, Vec<(u8, u8)>)> {
    stream.write_all(
        format!(
            "POST /v1.41/session HTTP/1.1\r\nHost: docker\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\
             X-Docker-Expose-Session-Uuid: {id}\r\nX-Docker-Expose-Session-Name: calico-lab\r\n\
             X-Docker-Expose-Session-Sharedkey: calico-lab\r\nContent-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    )?;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream
            .read(&mut chunk)
            .context("reading the session's answer")?;
        ensure!(
            n > 0,
            "the connection ended in the answer: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&got[..head_end]).into_owned();
    ensure!(head.starts_with("HTTP/1.1 101"), "not upgraded: {head}");
    // Our server preface: SETTINGS, no parameters.
    stream.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])?;
    let mut frames = Vec::new();
    let mut at = head_end + H2_PREFACE.len();
    loop {
        // Whole frames: a 9-byte header (length, type, flags, stream) and its payload.
        while got.len() >= at + 9 {
            let len = usize::from(got[at]) << 16
                | usize::from(got[at + 1]) << 8
                | usize::from(got[at + 2]);
            let (kind, flags) = (got[at + 3], got[at + 4]);
            if got.len() < at + 9 + len {
                break;
            }
            frames.push((kind, flags));
            at += 9 + len;
            if (kind, flags & 1) == (4, 1) {
                ensure!(
                    got[head_end..].starts_with(H2_PREFACE),
                    "no HTTP/2 preface after the upgrade: {:?}",
                    &got[head_end..]
                );
                return Ok((head, frames));
            }
        }
        let n = stream
            .read(&mut chunk)
            .context("reading dockerd's HTTP/2 frames")?;
        ensure!(
            n > 0,
            "the session ended before dockerd acknowledged our settings: {frames:?}"
        );
        got.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn a_buildkit_session_carries_http2_both_ways_as_direct() -> Result<()> {
    assert!(
        rustix::process::geteuid().is_root(),
        "needs root: run the README's test command"
    );
    // No buildx here (Debian 12's CLI refuses DOCKER_BUILDKIT=1 without it), so the session is opened by
    // hand, as the CLI's builder opens it: dockerd's HTTP/2 must reach us through the upgraded connection
    // and ours must reach it (it acknowledges our SETTINGS).
    Lab::builder("proxyh2c").hosts(1).run(|lab| {
        lab.docker()?;
        let proxy = RunningProxy::start("/var/run/docker.sock")?;
        let timeout = Some(Duration::from_secs(10));
        let mut direct = std::os::unix::net::UnixStream::connect("/var/run/docker.sock")?;
        direct.set_read_timeout(timeout)?;
        let (direct_head, direct_frames) = buildkit_session(&mut direct, "calico-lab-direct")?;
        let mut proxied = TcpStream::connect(proxy.addr)?;
        proxied.set_read_timeout(timeout)?;
        let (head, frames) =
            buildkit_session(&mut proxied, "calico-lab-proxied").context("through the proxy")?;
        let upgrade = |h: &str| {
            h.lines()
                .any(|l| l.to_ascii_lowercase().replace(' ', "") == "upgrade:h2c")
        };
        ensure!(
            upgrade(&head) && upgrade(&direct_head),
            "{head} / {direct_head}"
        );
        ensure!(
            frames == direct_frames,
            "frames through the proxy {frames:?}, direct {direct_frames:?}"
        );
        Ok(())
    })
}

#[test]
fn an_unreachable_daemon_gets_a_docker_style_502() -> Result<()> {
    let proxy = RunningProxy::start("/nonexistent/docker.sock")?;
    let mut conn = TcpStream::connect(proxy.addr)?;
    conn.write_all(b"GET /v1.41/_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)?;
    ensure!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    ensure!(
        answer.contains("application/json")
            && answer.contains(
                r#"{"message":"cannot reach the Docker daemon at /nonexistent/docker.sock"#
            ),
        "{answer}"
    );
    // The proxy keeps serving: a second request on a new connection gets the same clear answer.
    let mut again = TcpStream::connect(proxy.addr)?;
    again.write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")?;
    let mut second = String::new();
    again.read_to_string(&mut second)?;
    ensure!(second.starts_with("HTTP/1.1 502"), "{second}");
    Ok(())
}

/// Open TCP connections to or from `port` (neither listening nor in TIME_WAIT, which holds no socket):
/// once every client is gone, the proxy must hold none on its port.
fn connections_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/self/net/tcp").unwrap_or_default()
        + &std::fs::read_to_string("/proc/self/net/tcp6").unwrap_or_default();
    let port_of = |field: &str| {
        field
            .rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            f.len() > 3
                && (port_of(f[1]) == Some(port) || port_of(f[2]) == Some(port))
                && f[3] != "0A"
                && f[3] != "06"
        })
        .count()
}

fn http_get(addr: SocketAddr, path: &str) -> Result<String> {
    let mut conn = TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(Duration::from_secs(20)))?;
    conn.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)?;
    Ok(answer)
}

#[test]
fn many_clients_at_once_and_clients_that_vanish() -> Result<()> {
    assert!(
        rustix::process::geteuid().is_root(),
        "needs root: run the README's test command"
    );
    Lab::builder("proxyload").hosts(1).run(|lab| {
        lab.docker()?;
        let proxy = RunningProxy::start("/var/run/docker.sock")?;
        let addr = proxy.addr;
        // Settle: one request opens whatever the runtime keeps open.
        ensure!(http_get(addr, "/_ping")?.contains("OK"));

        // 100 clients at once, each a whole request and answer (each client connection has an
        // upstream one of its own while it lasts).
        let clients: Vec<_> = (0..100)
            .map(|_| std::thread::spawn(move || http_get(addr, "/v1.41/version")))
            .collect();
        for c in clients {
            let answer = c
                .join()
                .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
            ensure!(
                answer.starts_with("HTTP/1.1 200") && answer.contains("ApiVersion"),
                "{answer}"
            );
        }

        // Clients that vanish mid-stream: a followed log and an event stream, dropped unread.
        let label = format!("calico-lab={}", lab.name());
        let id = docker(
            &format!("tcp://{addr}"),
            &[
                "run",
                "-d",
                // Its own lab's label: the CLI test beside it counts the starts labelled `LABEL`, and
                // each lab removes the containers labelled with its name.
                "--label",
                &label,
                IMAGE,
                "sh",
                "-c",
                "while true; do echo tick; sleep 0.1; done",
            ],
        )
        .stdout()?;
        for path in [
            format!("/v1.41/containers/{id}/logs?follow=1&stdout=1"),
            "/v1.41/events".to_string(),
        ] {
            let mut conn = TcpStream::connect(addr)?;
            conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: docker\r\n\r\n").as_bytes())?;
            let mut first = [0u8; 64];
            let _ = conn.read(&mut first)?;
            ensure!(
                proxy.upstream.live_connections() >= 1,
                "the stream's connection to the daemon is counted"
            );
            drop(conn);
        }
        // A slow client: the request trickles in a byte at a time.
        let mut slow = TcpStream::connect(addr)?;
        for b in b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n" {
            slow.write_all(&[*b])?;
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut answer = String::new();
        slow.read_to_string(&mut answer)?;
        ensure!(answer.contains("OK"), "{answer}");
        ensure!(
            connections_on(addr.port()) > 0,
            "the check sees a connection still open"
        );
        drop(slow);

        // Nothing leaks: the proxy's client connections are all closed again, and of the 100-odd
        // connections to the daemon (the followed log's and the event stream's among them) only
        // those parked for reuse remain, at most 16.
        calico_lab::wait::wait_until(
            Duration::from_secs(10),
            "the proxy's connections to close",
            || Ok(connections_on(addr.port()) == 0 && proxy.upstream.live_connections() <= 16),
        )?;
        ensure!(
            http_get(addr, "/_ping")?.contains("OK"),
            "the proxy still serves"
        );
        Ok(())
    })
}
