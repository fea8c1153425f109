//! BGP convergence into the kernel: our `calico-bgp run --fib` against BIRD 2 with a kernel protocol,
//! and both against a raw-netlink floor, all measured in this run on the same routes and topology.
//!
//! Topology (lab hosts are network namespaces on one bridge, 10.250.x.0/24; removed on exit, also on
//! failure): h1 runs our daemon (`--ecmp 4`, every sender a passive peer), h2 runs BIRD as the
//! receiver (kernel protocol `merge paths on limit 4`), h3–h6 run BIRD senders, each with a disabled
//! static protocol of `--routes` blackhole /32s in 10.96.0.0/12 and a disabled eBGP session to each
//! receiver. Only one receiver's sessions are up at a time.
//!
//! One trial: enable the sender→receiver session(s) and wait until Established; then `birdc enable s4`
//! on the sender(s). The clock starts when the receiver's `eth0` has received more than 300 bytes
//! beyond its count before the enable (i.e. when the first UPDATE reaches the receiver's link; read
//! from `/proc/PID/net/dev` every 100 µs) and stops when `/proc/PID/net/fib_triestat` in the
//! receiver's namespace shows every route (read every 20 ms, every `--poll-ms` = 2 ms once within 10%
//! of the goal; the time is taken after the read).
//! With four senders (ECMP) it stops at the start of the first netlink route dump that finds every
//! route with four next hops. Withdraw: `birdc disable s4`, same clock, until the kernel holds none.
//! The floor: one netlink socket in h1 installing (then deleting) the same routes through h3, 64
//! requests per `sendmsg`, each batch's acknowledgements awaited, timed from the first send to the
//! last acknowledgement. Peak RSS is each receiver's VmHWM; the RSS while holding the routes
//! (anonymous and file-backed: mostly the program's own code) is read 0.5 s after each install.
//!
//! Run (root, bird2 installed, `cargo build --release -p calico-bgp` first):
//! `cargo run --release -p calico-bench --bin bgp-converge -- [--routes 100000] [--runs 5] [--ecmp-runs 3]`

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use calico_bench::bgp_lab::{
    bgp_bin, bird_header, bird_static, birdc, hwm_kib, netns, preflight, proc_text, route,
    start_bird, Series,
};
use calico_bgp::netlink::route::{
    del_prefix_route, dump_routes, parse_route, route_gateways, set_gateway_route, GatewayRoute,
    RTM_NEWROUTE,
};
use calico_bgp::netlink::socket::Socket;
use calico_lab::procs::Daemon;
use calico_lab::wait::wait_until;
use calico_lab::{Host, Lab};
use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    /// Routes each sender announces.
    #[arg(long, default_value_t = 100_000)]
    routes: u32,
    /// Single-peer trials per receiver (install + withdraw), plus the floor each time.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Four-peer ECMP trials per receiver (0: skip).
    #[arg(long, default_value_t = 3)]
    ecmp_runs: usize,
    /// Requests per `sendmsg` of the raw-netlink floor.
    #[arg(long, default_value_t = 64)]
    floor_batch: usize,
    /// Milliseconds between reads of the receiver's route count once within 10% of the goal (ten
    /// times that before).
    #[arg(long, default_value_t = 2)]
    poll_ms: u64,
    /// RUST_LOG for our daemon.
    #[arg(long, default_value = "info")]
    ours_log: String,
    /// Copy our daemon's log here at the end.
    #[arg(long)]
    save_log: Option<PathBuf>,
    /// The `calico-bgp` binary (default: beside this one).
    #[arg(long, env = "CALICO_BGP_BIN")]
    bgp_bin: Option<PathBuf>,
}

const RECEIVER_AS: u32 = 65001;
const SENDER_AS: u32 = 65002;
const SENDERS: usize = 4;
/// The protocol number of the floor's routes.
const FLOOR_PROTOCOL: u8 = 99;
/// Received bytes beyond the baseline that mean "the first UPDATE is on the link" (a keepalive frame is
/// 85 bytes, an ARP frame 42).
const RX_START: u64 = 300;

/// A BIRD sender: the static routes and one disabled session to each receiver.
struct Sender {
    sock: PathBuf,
    _daemon: Daemon,
}

impl Sender {
    fn start(lab: &Lab, host: &Host, ours: &Host, bird: &Host, routes: u32) -> Result<Sender> {
        let me = host.ip;
        let mut conf = bird_header(me);
        conf.push_str(&bird_static("s4", routes, true));
        for (name, peer) in [("to_ours", ours.ip), ("to_bird", bird.ip)] {
            conf.push_str(&format!(
                "protocol bgp {name} {{\n  local {me} as {SENDER_AS};\n  neighbor {peer} as {RECEIVER_AS};\n  \
                 disabled;\n  hold time 240; keepalive time 80; connect retry time 1; connect delay time 1;\n  \
                 error wait time 1, 3;\n  ipv4 {{ import none; export all; }};\n}}\n"
            ));
        }
        let (daemon, sock) = start_bird(lab, host, &format!("sender-{}", host.name), &conf)?;
        Ok(Sender {
            sock,
            _daemon: daemon,
        })
    }

    fn birdc(&self, command: &str) -> Result<String> {
        let out = birdc(&self.sock, command)?;
        if out.contains("syntax error") || out.contains("No protocols match") {
            bail!("birdc {command}: {out}");
        }
        Ok(out)
    }

    fn established(&self, proto: &str) -> Result<bool> {
        let out = self.birdc(&format!("show protocols {proto}"))?;
        Ok(out
            .lines()
            .any(|l| l.starts_with(proto) && l.contains("Established")))
    }
}

/// A receiver: its daemon (whose /proc entries show its namespace) and the senders' protocol name for it.
struct Receiver {
    label: &'static str,
    proto: &'static str,
    daemon: Daemon,
    /// (RssAnon, RssFile) in KiB while holding the last single-peer trial's routes.
    holding: std::sync::Mutex<(u64, u64)>,
}

impl Receiver {
    fn proc(&self, what: &str) -> Result<String> {
        proc_text(self.daemon.pid(), what)
    }

    /// IPv4 prefixes in the namespace's main trie.
    fn fib_count(&self) -> Result<u64> {
        let text = self.proc("net/fib_triestat")?;
        let main = text.split("Main:").nth(1).unwrap_or_default();
        main.lines()
            .find_map(|l| l.trim().strip_prefix("Prefixes:"))
            .map(|n| n.trim().parse().context("prefix count"))
            .unwrap_or(Ok(0))
    }

    fn rx_bytes(&self) -> Result<u64> {
        let text = self.proc("net/dev")?;
        let line = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("eth0:"))
            .context("no eth0 in /proc/PID/net/dev")?;
        line.split_whitespace()
            .next()
            .context("rx bytes")?
            .parse()
            .context("rx bytes")
    }

    /// Peak resident set size in KiB.
    fn hwm_kib(&self) -> Result<u64> {
        hwm_kib(self.daemon.pid())
    }

    /// Its (RssAnon, RssFile) now, in KiB.
    fn rss_parts(&self) -> Result<(u64, u64)> {
        let status = self.proc("status")?;
        let field = |f: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(f)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .with_context(|| format!("{f} of {}", self.label))
        };
        Ok((field("RssAnon")?, field("RssFile")?))
    }
}

/// Routes of 10.96.0.0/12 with at least `paths` next hops, by a netlink dump.
fn multipath_count(socket: &mut Socket, paths: usize) -> Result<usize> {
    let seq = socket.next_seq();
    let bodies = socket.dump(&dump_routes(false, seq), RTM_NEWROUTE)?;
    Ok(bodies
        .iter()
        .filter(|b| {
            parse_route(b).is_some_and(|r| {
                r.prefix_len == 32
                    && matches!(r.dst, std::net::IpAddr::V4(a) if a.octets()[0] == 10 && a.octets()[1] & 0xf0 == 96)
            }) && route_gateways(b).len() >= paths
        })
        .count())
}

/// Runs `trigger` and times from the first UPDATE on the receiver's link until its kernel holds
/// `target` prefixes (and, with `ecmp`, until `ecmp.1` routes have `ecmp.2` next hops).
fn measure(
    r: &Receiver,
    target: u64,
    span: u64,
    mut ecmp: Option<(Socket, usize, usize)>,
    poll: Duration,
    trigger: impl FnOnce() -> Result<()>,
) -> Result<Duration> {
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::scope(|scope| {
        let watcher = scope.spawn(move || -> Result<Duration> {
            let base = r.rx_bytes()?;
            let _ = ready_tx.send(());
            let limit = Instant::now() + Duration::from_secs(30);
            let t0 = loop {
                if r.rx_bytes()? > base + RX_START {
                    break Instant::now();
                }
                ensure!(Instant::now() < limit, "{}: no UPDATE arrived", r.label);
                std::thread::sleep(Duration::from_micros(100));
            };
            let limit = t0 + Duration::from_secs(180);
            let (mut bytes, mut last_byte) = (r.rx_bytes()?, t0);
            loop {
                let now_bytes = r.rx_bytes()?;
                if now_bytes != bytes {
                    (bytes, last_byte) = (now_bytes, Instant::now());
                }
                let last = r.fib_count()?;
                if last == target {
                    break;
                }
                ensure!(
                    Instant::now() < limit,
                    "{}: the kernel holds {last} prefixes, not {target}",
                    r.label
                );
                // Reading the count walks the kernel's trie (~2.4 ms at 100k): seldom while far off.
                let far = last.abs_diff(target) > span / 10;
                std::thread::sleep(if far { poll * 10 } else { poll });
            }
            let mut t1 = Instant::now();
            if let Some((socket, routes, paths)) = ecmp.as_mut() {
                loop {
                    let start = Instant::now();
                    let n = multipath_count(socket, *paths)?;
                    if n >= *routes {
                        t1 = start;
                        break;
                    }
                    ensure!(
                        Instant::now() < limit,
                        "{}: {n} routes with {paths} paths",
                        r.label
                    );
                    std::thread::sleep(poll);
                }
            }
            if std::env::var_os("BENCH_LAST_BYTE").is_some() {
                eprintln!(
                    "{}: the link's last bytes at {:.3} s, done at {:.3} s",
                    r.label,
                    (last_byte - t0).as_secs_f64(),
                    (t1 - t0).as_secs_f64()
                );
            }
            Ok(t1 - t0)
        });
        ready_rx
            .recv()
            .map_err(|_| anyhow::anyhow!("the watcher ended early"))?;
        trigger()?;
        watcher
            .join()
            .map_err(|_| anyhow::anyhow!("the watcher panicked"))?
    })
}

fn on_all(senders: &[Sender], command: &str) -> Result<()> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = senders
            .iter()
            .map(|s| scope.spawn(move || s.birdc(command)))
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("birdc thread panicked"))??;
        }
        Ok(())
    })
}

/// Install and withdraw times of one trial with `senders`.
fn trial(
    r: &Receiver,
    senders: &[Sender],
    host: &Host,
    routes: u32,
    poll: Duration,
) -> Result<(Duration, Duration)> {
    on_all(senders, &format!("enable {}", r.proto))?;
    wait_until(
        Duration::from_secs(60),
        &format!("sessions to {}", r.label),
        || {
            for s in senders {
                if !s.established(r.proto)? {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )?;
    std::thread::sleep(Duration::from_millis(500));
    let base = r.fib_count()?;
    let ecmp = if senders.len() > 1 {
        Some((
            Socket::open_in(&netns(host), None)?,
            routes as usize,
            senders.len(),
        ))
    } else {
        None
    };
    let install = measure(
        r,
        base + u64::from(routes),
        u64::from(routes),
        ecmp,
        poll,
        || on_all(senders, "enable s4"),
    )?;
    std::thread::sleep(Duration::from_millis(500));
    if senders.len() == 1 {
        *r.holding.lock().unwrap() = r.rss_parts()?;
    }
    let withdraw = measure(r, base, u64::from(routes), None, poll, || {
        on_all(senders, "disable s4")
    })?;
    on_all(senders, &format!("disable {}", r.proto))?;
    std::thread::sleep(Duration::from_millis(300));
    Ok((install, withdraw))
}

/// The raw-netlink floor in `host`: install then delete `routes` /32s through `gw`.
fn floor(host: &Host, gw: Ipv4Addr, routes: u32, batch: usize) -> Result<(Duration, Duration)> {
    let mut socket = Socket::open_in(&netns(host), None)?;
    let all: Vec<u32> = (0..routes).collect();
    let mut run = |delete: bool| -> Result<Duration> {
        let t = Instant::now();
        for chunk in all.chunks(batch) {
            let mut buf = Vec::with_capacity(chunk.len() * 64);
            let mut seqs = Vec::with_capacity(chunk.len());
            for i in chunk {
                let seq = socket.next_seq();
                let dst = std::net::IpAddr::V4(route(*i));
                buf.extend(if delete {
                    del_prefix_route(dst, 32, 254, FLOOR_PROTOCOL, seq)
                } else {
                    set_gateway_route(
                        &GatewayRoute {
                            dst,
                            prefix_len: 32,
                            gateways: vec![gw.into()],
                            table: 254,
                            protocol: FLOOR_PROTOCOL,
                        },
                        seq,
                    )
                });
                seqs.push(seq);
            }
            let failed = socket.transact_each(&buf, &seqs)?;
            ensure!(failed.is_empty(), "the kernel refused {failed:?}");
        }
        Ok(t.elapsed())
    };
    let install = run(false)?;
    let delete = run(true)?;
    Ok((install, delete))
}

fn main() -> Result<()> {
    let args = Args::parse();
    preflight()?;
    let bin = bgp_bin(args.bgp_bin.as_deref())?;
    Lab::builder("bgpconv")
        .hosts(2 + SENDERS)
        .run(|lab| bench(lab, &args, &bin))
}

fn bench(lab: &Lab, args: &Args, bin: &Path) -> Result<()> {
    let (h1, h2) = (lab.host(1), lab.host(2));
    let poll = Duration::from_millis(args.poll_ms);
    let n = args.routes;
    let senders = (3..3 + SENDERS)
        .map(|i| Sender::start(lab, lab.host(i), h1, h2, n))
        .collect::<Result<Vec<_>>>()?;

    let mut argv: Vec<String> = [
        "env",
        &format!("RUST_LOG={}", args.ours_log),
        &bin.display().to_string(),
        "run",
        "--asn",
        &RECEIVER_AS.to_string(),
        "--router-id",
        &h1.ip.to_string(),
        "--listen",
        &format!("{}:179", h1.ip),
        "--fib",
        "--ecmp",
        "4",
        "--control",
        &lab.dir().join("ours.sock").display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for i in 3..3 + SENDERS {
        argv.push("--peer".into());
        argv.push(format!(
            "{},as={SENDER_AS},passive,hold=240",
            lab.host(i).ip
        ));
    }
    let ours = Receiver {
        label: "calico-bgp",
        proto: "to_ours",
        daemon: lab.spawn("ours", &h1.place(), &argv)?,
        holding: Default::default(),
    };
    let mut bird_conf = bird_header(h2.ip);
    bird_conf.push_str(
        "protocol kernel k4 { ipv4 { import none; export all; }; merge paths on limit 4; learn off; scan time 3600; }\n",
    );
    for i in 3..3 + SENDERS {
        bird_conf.push_str(&format!(
            "protocol bgp from{i} {{\n  local {} as {RECEIVER_AS};\n  neighbor {} as {SENDER_AS};\n  passive on;\n  \
             hold time 240; keepalive time 80; error wait time 1, 3;\n  ipv4 {{ import all; export none; }};\n}}\n",
            h2.ip,
            lab.host(i).ip
        ));
    }
    let (bird_daemon, _bird_sock) = start_bird(lab, h2, "receiver-bird", &bird_conf)?;
    let bird = Receiver {
        label: "BIRD",
        proto: "to_bird",
        daemon: bird_daemon,
        holding: Default::default(),
    };
    std::thread::sleep(Duration::from_millis(500));
    println!(
        "{n} /32s from one BIRD sender (and from four for ECMP); {} runs, poll {} ms",
        args.runs, args.poll_ms
    );
    println!("run  receiver     install    withdraw");

    let (mut oi, mut ow, mut bi, mut bw, mut fi, mut fd) = (
        Series::default(),
        Series::default(),
        Series::default(),
        Series::default(),
        Series::default(),
        Series::default(),
    );
    for run in 0..args.runs {
        let order: [(&Receiver, &Host); 2] = if run % 2 == 0 {
            [(&ours, h1), (&bird, h2)]
        } else {
            [(&bird, h2), (&ours, h1)]
        };
        for (r, host) in order {
            let (i, w) = trial(r, &senders[..1], host, n, poll)?;
            println!(
                "{run:>3}  {:<11} {:>8.3} s {:>8.3} s",
                r.label,
                i.as_secs_f64(),
                w.as_secs_f64()
            );
            if std::ptr::eq(r, &ours) {
                oi.0.push(i);
                ow.0.push(w);
            } else {
                bi.0.push(i);
                bw.0.push(w);
            }
        }
        let before = ours.fib_count()?;
        let (i, d) = floor(h1, lab.host(3).ip, n, args.floor_batch)?;
        ensure!(ours.fib_count()? == before, "the floor left routes behind");
        println!(
            "{run:>3}  {:<11} {:>8.3} s {:>8.3} s",
            "floor",
            i.as_secs_f64(),
            d.as_secs_f64()
        );
        fi.0.push(i);
        fd.0.push(d);
    }
    let single_rss = (ours.hwm_kib()?, bird.hwm_kib()?);

    let (mut eoi, mut eow, mut ebi, mut ebw) = (
        Series::default(),
        Series::default(),
        Series::default(),
        Series::default(),
    );
    for run in 0..args.ecmp_runs {
        for (r, host) in [(&ours, h1), (&bird, h2)] {
            let (i, w) = trial(r, &senders, host, n, poll)?;
            println!(
                "{run:>3}  {:<11} {:>8.3} s {:>8.3} s  (ECMP, {SENDERS} peers)",
                r.label,
                i.as_secs_f64(),
                w.as_secs_f64()
            );
            if std::ptr::eq(r, &ours) {
                eoi.0.push(i);
                eow.0.push(w);
            } else {
                ebi.0.push(i);
                ebw.0.push(w);
            }
        }
    }
    let ecmp_rss = (ours.hwm_kib()?, bird.hwm_kib()?);
    if let Some(path) = &args.save_log {
        std::fs::write(path, ours.daemon.log_text())?;
    }

    let ratio = |a: &Series, b: &Series| a.median() / b.median();
    println!();
    println!(
        "install, median (range):  ours {}  BIRD {}  floor {}",
        oi.show(),
        bi.show(),
        fi.show()
    );
    println!(
        "  ours/BIRD {:.2}x (goal <= 0.6)   ours/floor {:.2}x (goal <= 1.3)   BIRD/floor {:.2}x",
        ratio(&oi, &bi),
        ratio(&oi, &fi),
        ratio(&bi, &fi)
    );
    println!(
        "withdraw, median (range): ours {}  BIRD {}  floor {}",
        ow.show(),
        bw.show(),
        fd.show()
    );
    println!(
        "  ours/BIRD {:.2}x (goal <= 0.75)  ours/floor {:.2}x (goal <= 1.3)   BIRD/floor {:.2}x",
        ratio(&ow, &bw),
        ratio(&ow, &fd),
        ratio(&bw, &fd)
    );
    if args.ecmp_runs > 0 {
        println!(
            "ECMP ({SENDERS} peers) install: ours {}  BIRD {}  ours/BIRD {:.2}x",
            eoi.show(),
            ebi.show(),
            ratio(&eoi, &ebi)
        );
        println!(
            "ECMP ({SENDERS} peers) withdraw: ours {}  BIRD {}  ours/BIRD {:.2}x",
            eow.show(),
            ebw.show(),
            ratio(&eow, &ebw)
        );
    }
    println!(
        "peak RSS (VmHWM) after single-peer runs: ours {:.1} MB  BIRD {:.1} MB  ({:.2}x)",
        single_rss.0 as f64 / 1024.0,
        single_rss.1 as f64 / 1024.0,
        single_rss.0 as f64 / single_rss.1 as f64
    );
    let mb = |kib: u64| kib as f64 / 1024.0;
    let ((oa, of), (ba, bf)) = (*ours.holding.lock().unwrap(), *bird.holding.lock().unwrap());
    println!(
        "RSS holding the routes (last single-peer run): ours {:.1} MB anonymous + {:.1} MB file-backed  \
         BIRD {:.1} + {:.1} MB",
        mb(oa),
        mb(of),
        mb(ba),
        mb(bf)
    );
    if args.ecmp_runs > 0 {
        println!(
            "peak RSS (VmHWM) after ECMP runs:        ours {:.1} MB  BIRD {:.1} MB  ({:.2}x)",
            ecmp_rss.0 as f64 / 1024.0,
            ecmp_rss.1 as f64 / 1024.0,
            ecmp_rss.0 as f64 / ecmp_rss.1 as f64
        );
    }
    Ok(())
}
