//! BGP as a sender: our `calico-bgp run` against BIRD 2, each announcing the same `--routes` local /32s
//! (default 100,000, in 10.96.0.0/12) over eBGP to a minimal counting receiver in this process.
//!
//! Topology (lab hosts are network namespaces on one bridge, 10.250.x.0/24; removed on exit, also on
//! failure): h1 runs our daemon, h2 runs BIRD, h3 is the receiver. Each trial starts a fresh sender
//! process, so each run's CPU and peak RSS are its own; the two alternate (even runs ours first, odd
//! runs BIRD first):
//! - ours: `calico-bgp run --no-fib` with the routes as `[[announce]]` tables of a `--config` TOML file
//!   and the receiver as a passive peer (`hold=240`); loaded when its control socket answers `status`
//!   (the daemon serves it only after the speaker has taken the routes);
//! - BIRD: a static protocol with the routes as blackhole /32s (enabled at start) and a `passive on`
//!   eBGP protocol (`export all`, hold 240); loaded when `show route count` shows every route.
//!
//! Both therefore hold every route before any session exists, and both wait for the receiver to
//! connect. The receiver (a thread in h3's namespace, std TCP) connects to the sender's port 179 and
//! sends its OPEN (AS 65001, hold 240, capabilities multiprotocol IPv4 unicast and 4-octet AS, encoded
//! with `calico_bgp::wire`); on the sender's OPEN it sends a KEEPALIVE, and on the sender's KEEPALIVE
//! the session is Established: **the clock starts there**. From then on it answers every KEEPALIVE and
//! counts the IPv4 prefixes of each UPDATE by its framing only (withdrawn length and prefixes,
//! attribute length — each attribute's type checked to be no MP_REACH/MP_UNREACH — then the NLRI's
//! prefix lengths); **the clock stops when the last of the routes has been counted** (each /32 marked
//! in a bitmap, so a repeat would not count twice; repeats and withdrawals are reported per run and
//! were 0 for both senders). Then it sends a Cease and closes, and the sender is stopped. So the time
//! covers the sender's whole initial export: building and sending every UPDATE (plus the receiver's
//! reading them, well under 1 ms per 100 UPDATEs).
//!
//! Columns per run: `all` (the time above), `first` (Established to the first UPDATE), `99%` (to the
//! 99,000th route of 100,000); the sender's CPU time (utime + stime of `/proc/PID/stat`, all threads,
//! 10 ms ticks) between the clock's start and stop (`CPU`) and since it started (`CPUall`, loading
//! included); its VmHWM once loaded (`HWMld`) and at the end (`HWM`), its VmRSS at the end (`RSS`);
//! `load` (spawn until it holds the routes, polled every 50 ms); UPDATEs and their MB; repeated (`rep`)
//! and withdrawn (`wd`) prefixes. BIRD 2.0.12 here sends all but its last, partial UPDATE within
//! ~70 ms and the last one about 3 s later (its main loop's poll timeout, i.e. a missed wakeup), so
//! `99%` shows the throughput comparison that `all` hides.
//!
//! `--perf FILE` also records our daemon with `perf record --call-graph dwarf -F 10000` during each
//! of its sessions (into `FILE.<run>`; `perf` attaches after loading, 2 s before the receiver
//! connects).
//!
//! Run (root, bird2 installed, `cargo build --release -p calico-bgp` first):
//! `cargo run --release -p calico-bench --bin bgp-send -- [--routes 100000] [--runs 5]`

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bytes::BytesMut;
use calico_bench::bgp_lab::{
    bgp_bin, bird_header, bird_static, birdc, cpu_time, hwm_kib, netns, preflight, route,
    route_index, rss_kib, start_bird_with, Series,
};
use calico_bgp::wire::{
    encode_message, AfiSafi, Capability, Codec, Message, Notification, Open, HEADER_LEN,
    MAX_MESSAGE_LEN,
};
use calico_lab::cmd::Cmd;
use calico_lab::procs::Daemon;
use calico_lab::wait::wait_until;
use calico_lab::{Host, Lab};
use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    /// Routes each sender announces.
    #[arg(long, default_value_t = 100_000)]
    routes: u32,
    /// Trials per sender (alternating).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// RUST_LOG for our daemon.
    #[arg(long, default_value = "info")]
    ours_log: String,
    /// Copy our daemon's log of the last run here at the end.
    #[arg(long)]
    save_log: Option<PathBuf>,
    /// Record our daemon with `perf record --call-graph dwarf` during each session, into FILE.<run>.
    #[arg(long, value_name = "FILE")]
    perf: Option<PathBuf>,
    /// The `calico-bgp` binary (default: beside this one).
    #[arg(long, env = "CALICO_BGP_BIN")]
    bgp_bin: Option<PathBuf>,
}

const RECEIVER_AS: u32 = 65001;
const SENDER_AS: u32 = 65002;
const HOLD: u16 = 240;
/// How long one session may take to deliver every route.
const SESSION_LIMIT: Duration = Duration::from_secs(180);

/// BGP message types.
const OPEN: u8 = 1;
const UPDATE: u8 = 2;
const NOTIFICATION: u8 = 3;
const KEEPALIVE: u8 = 4;
/// Path attribute types that would carry IPv4 prefixes outside the classic fields.
const MP_REACH: u8 = 14;
const MP_UNREACH: u8 = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ours,
    Bird,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Ours => "calico-bgp",
            Kind::Bird => "BIRD",
        }
    }
}

/// What the receiver saw in one session.
#[derive(Debug, Default)]
struct Session {
    /// From Established to the last route counted.
    time: Duration,
    /// From Established to the first UPDATE.
    first: Duration,
    /// From Established until 99% of the routes were counted.
    most: Duration,
    /// The sender's CPU time over the same span.
    cpu: Duration,
    updates: u64,
    /// UPDATE bytes, headers included.
    bytes: u64,
    /// Prefixes in NLRI fields, repeats included.
    announced: u64,
    /// Prefixes in withdrawn-routes fields.
    withdrawn: u64,
}

/// One trial's numbers.
struct Trial {
    session: Session,
    /// The sender's CPU time since it started.
    cpu_total: Duration,
    hwm_kib: u64,
    /// VmHWM once loaded, before the session.
    loaded_kib: u64,
    /// VmRSS right after the session.
    rss_kib: u64,
    load: Duration,
}

/// The fixed inputs of every trial.
struct Setup<'a> {
    lab: &'a Lab,
    args: &'a Args,
    bin: &'a Path,
    ours_routes: PathBuf,
    bird_conf: PathBuf,
    receiver: &'a Host,
}

fn ours_routes_toml(routes: u32) -> String {
    let mut text = String::with_capacity(routes as usize * 40);
    for i in 0..routes {
        text.push_str(&format!("[[announce]]\nprefix = \"{}/32\"\n", route(i)));
    }
    text
}

fn bird_sender_conf(me: &Host, receiver: &Host, routes: u32) -> String {
    let mut conf = bird_header(me.ip);
    conf.push_str(&bird_static("s4", routes, false));
    conf.push_str(&format!(
        "protocol bgp to_recv {{\n  local {} as {SENDER_AS};\n  neighbor {} as {RECEIVER_AS};\n  \
         passive on;\n  hold time {HOLD}; keepalive time 80;\n  ipv4 {{ import none; export all; }};\n}}\n",
        me.ip, receiver.ip
    ));
    conf
}

/// Starts a sender in `host` and waits until it holds every route; returns it with its load time.
fn start_sender(s: &Setup, kind: Kind, host: &Host, run: usize) -> Result<(Daemon, Duration)> {
    let n = s.args.routes;
    let t = Instant::now();
    match kind {
        Kind::Ours => {
            let control = s.lab.dir().join(format!("ours-{run}.sock"));
            let argv = [
                "env".to_string(),
                format!("RUST_LOG={}", s.args.ours_log),
                s.bin.display().to_string(),
                "run".into(),
                "--asn".into(),
                SENDER_AS.to_string(),
                "--router-id".into(),
                host.ip.to_string(),
                "--listen".into(),
                format!("{}:179", host.ip),
                "--no-fib".into(),
                "--control".into(),
                control.display().to_string(),
                "--peer".into(),
                format!("{},as={RECEIVER_AS},passive,hold={HOLD}", s.receiver.ip),
                "--config".into(),
                s.ours_routes.display().to_string(),
            ];
            let mut daemon = s.lab.spawn(&format!("ours-{run}"), &host.place(), &argv)?;
            let status = [
                s.bin.display().to_string(),
                "status".into(),
                "--control".into(),
                control.display().to_string(),
            ];
            wait_until(Duration::from_secs(120), "our sender's routes", || {
                ensure!(daemon.running(), "calico-bgp exited");
                Cmd::new(status.clone())
                    .timeout(Duration::from_secs(10))
                    .succeeds()
            })?;
            Ok((daemon, t.elapsed()))
        }
        Kind::Bird => {
            let name = format!("bird-{run}");
            let (daemon, sock) = start_bird_with(s.lab, host, &name, &s.bird_conf)?;
            let want = format!("{n} of {n} routes");
            wait_until(Duration::from_secs(120), "BIRD's static routes", || {
                Ok(birdc(&sock, "show route count")?.contains(&want))
            })?;
            Ok((daemon, t.elapsed()))
        }
    }
}

/// Writes one message built by `wire`.
fn send(stream: &mut TcpStream, msg: &Message) -> Result<()> {
    let mut out = BytesMut::with_capacity(64);
    encode_message(msg, &Codec::default(), &mut out).context("encoding")?;
    stream.write_all(&out).context("sending")
}

/// Counts the prefixes of a withdrawn-routes or NLRI field, marking the /32s among the routes in `seen`.
fn count_prefixes(mut field: &[u8], seen: &mut [u64], n: u32, distinct: &mut u32) -> Result<u64> {
    let mut count = 0;
    while let Some((&len, rest)) = field.split_first() {
        ensure!(len <= 32, "prefix length {len}");
        let bytes = usize::from(len).div_ceil(8);
        ensure!(rest.len() >= bytes, "truncated prefix");
        if len == 32 {
            let addr = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
            if let Some(i) = route_index(addr, n) {
                let (word, bit) = ((i / 64) as usize, 1u64 << (i % 64));
                if seen[word] & bit == 0 {
                    seen[word] |= bit;
                    *distinct += 1;
                }
            }
        }
        field = &rest[bytes..];
        count += 1;
    }
    Ok(count)
}

/// The withdrawn-routes and NLRI fields of an UPDATE body, after checking that no attribute carries
/// multiprotocol NLRI.
fn update_fields(body: &[u8]) -> Result<(&[u8], &[u8])> {
    let be16 = |b: &[u8], at: usize| -> Result<usize> {
        let s = b.get(at..at + 2).context("truncated UPDATE")?;
        Ok(usize::from(u16::from_be_bytes([s[0], s[1]])))
    };
    let wlen = be16(body, 0)?;
    let withdrawn = body.get(2..2 + wlen).context("withdrawn length")?;
    let alen = be16(body, 2 + wlen)?;
    let mut attrs = body
        .get(4 + wlen..4 + wlen + alen)
        .context("attributes length")?;
    let nlri = &body[4 + wlen + alen..];
    while !attrs.is_empty() {
        let (flags, kind) = (attrs[0], *attrs.get(1).context("truncated attribute")?);
        let (hdr, len) = if flags & 0x10 != 0 {
            (4, be16(attrs, 2)?)
        } else {
            (
                3,
                usize::from(*attrs.get(2).context("truncated attribute")?),
            )
        };
        ensure!(
            kind != MP_REACH && kind != MP_UNREACH,
            "the sender used multiprotocol NLRI (attribute {kind})"
        );
        attrs = attrs.get(hdr + len..).context("attribute length")?;
    }
    Ok((withdrawn, nlri))
}

#[derive(PartialEq, Eq)]
enum State {
    OpenSent,
    OpenConfirm,
    Established,
}

/// One session from h3 to `sender`, until `n` routes are counted. `Ok(None)`: the sender closed the
/// connection before its OPEN (not listening yet), try again.
fn session(stream: &mut TcpStream, me: Ipv4Addr, n: u32, pid: u32) -> Result<Option<Session>> {
    let open = Open::new(
        RECEIVER_AS,
        HOLD,
        me,
        vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::FourOctetAs(RECEIVER_AS),
        ],
    );
    send(stream, &Message::Open(open))?;
    let mut state = State::OpenSent;
    let mut seen = vec![0u64; (n as usize).div_ceil(64)];
    let mut distinct = 0u32;
    let n99 = (u64::from(n) * 99).div_ceil(100) as u32;
    let mut out = Session::default();
    let (mut t0, mut cpu0) = (Instant::now(), Duration::ZERO);
    let mut buf = vec![0u8; 1 << 20];
    let (mut start, mut end) = (0usize, 0usize);
    let limit = Instant::now() + SESSION_LIMIT;
    loop {
        // Every complete message in the buffer.
        while end - start >= HEADER_LEN {
            let m = &buf[start..end];
            let len = usize::from(u16::from_be_bytes([m[16], m[17]]));
            ensure!(
                (HEADER_LEN..=MAX_MESSAGE_LEN).contains(&len),
                "message length {len}"
            );
            if m.len() < len {
                break;
            }
            let (kind, body) = (m[18], &m[HEADER_LEN..len]);
            match kind {
                OPEN => {
                    ensure!(state == State::OpenSent, "a second OPEN");
                    let theirs = Open::decode_body(body).map_err(|e| anyhow::anyhow!("{e:?}"))?;
                    ensure!(
                        theirs.asn() == SENDER_AS,
                        "the sender's AS is {}",
                        theirs.asn()
                    );
                    send(stream, &Message::Keepalive)?;
                    state = State::OpenConfirm;
                }
                KEEPALIVE if state == State::OpenConfirm => {
                    t0 = Instant::now();
                    cpu0 = cpu_time(pid)?;
                    state = State::Established;
                }
                KEEPALIVE => send(stream, &Message::Keepalive)?,
                UPDATE => {
                    ensure!(state == State::Established, "an UPDATE before Established");
                    let (withdrawn, nlri) = update_fields(body)?;
                    if out.updates == 0 {
                        out.first = t0.elapsed();
                    }
                    out.updates += 1;
                    out.bytes += len as u64;
                    out.withdrawn += count_prefixes(withdrawn, &mut seen, 0, &mut distinct)?;
                    out.announced += count_prefixes(nlri, &mut seen, n, &mut distinct)?;
                    if distinct >= n99 && out.most.is_zero() {
                        out.most = t0.elapsed();
                    }
                    if distinct == n {
                        out.time = t0.elapsed();
                        out.cpu = cpu_time(pid)?.saturating_sub(cpu0);
                        let cease = Notification::new(6, 2, Vec::new());
                        let _ = send(stream, &Message::Notification(cease));
                        let _ = stream.shutdown(std::net::Shutdown::Both);
                        return Ok(Some(out));
                    }
                }
                NOTIFICATION => bail!(
                    "the sender sent NOTIFICATION {}/{}",
                    body.first().copied().unwrap_or(0),
                    body.get(1).copied().unwrap_or(0)
                ),
                _ => {}
            }
            start += len;
        }
        if start > buf.len() / 2 {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        ensure!(
            Instant::now() < limit,
            "{distinct} of {n} routes after {SESSION_LIMIT:?}"
        );
        match stream.read(&mut buf[end..]) {
            Ok(0) if state == State::OpenSent => return Ok(None),
            Ok(0) => bail!("the sender closed the session after {distinct} of {n} routes"),
            Ok(k) => end += k,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) if state == State::OpenSent => return Ok(None),
            Err(e) => return Err(e).context("reading"),
        }
    }
}

/// The receiver: connects from h3's namespace to `sender` (retrying until it answers with an OPEN)
/// and runs one session.
fn receive(receiver: &Host, sender: Ipv4Addr, n: u32, pid: u32) -> Result<Session> {
    let ns = netns(receiver);
    let me = receiver.ip;
    std::thread::spawn(move || -> Result<Session> {
        let file = std::fs::File::open(&ns).with_context(|| format!("opening {}", ns.display()))?;
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&file),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .context("entering the receiver's namespace")?;
        let addr = SocketAddr::from((sender, 179));
        let limit = Instant::now() + Duration::from_secs(30);
        loop {
            ensure!(Instant::now() < limit, "{addr} never opened a session");
            let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(Duration::from_secs(1)))?;
            if let Some(done) = session(&mut stream, me, n, pid)? {
                return Ok(done);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the receiver panicked"))?
}

fn trial(s: &Setup, kind: Kind, host: &Host, run: usize) -> Result<Trial> {
    let (mut daemon, load) = start_sender(s, kind, host, run)?;
    let pid = daemon.pid();
    let loaded_kib = hwm_kib(pid)?;
    let mut perf = match (&s.args.perf, kind) {
        (Some(file), Kind::Ours) => {
            let argv = [
                "perf".to_string(),
                "record".into(),
                "-F".into(),
                "10000".into(),
                "--call-graph".into(),
                "dwarf".into(),
                "-o".into(),
                format!("{}.{run}", file.display()),
                "-p".into(),
                pid.to_string(),
            ];
            let p = s
                .lab
                .spawn(&format!("perf-{run}"), &calico_lab::Place::Root, &argv)?;
            std::thread::sleep(Duration::from_secs(2));
            Some(p)
        }
        _ => None,
    };
    let session = receive(s.receiver, host.ip, s.args.routes, pid)
        .with_context(|| format!("{} run {run}", kind.label()))?;
    let cpu_total = cpu_time(pid)?;
    let hwm_kib = hwm_kib(pid)?;
    let rss_kib = rss_kib(pid)?;
    if let Some(p) = perf.as_mut() {
        p.stop(Duration::from_secs(30));
    }
    if kind == Kind::Ours {
        if let Some(path) = &s.args.save_log {
            std::fs::write(path, daemon.log_text())?;
        }
    }
    daemon.stop(Duration::from_secs(5));
    Ok(Trial {
        session,
        cpu_total,
        hwm_kib,
        loaded_kib,
        rss_kib,
        load,
    })
}

fn median(v: &[u64]) -> f64 {
    let mut v: Vec<f64> = v.iter().map(|x| *x as f64).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    preflight()?;
    ensure!(
        args.routes > 0 && args.routes <= 1 << 20,
        "--routes must be 1..=1048576 (10.96.0.0/12)"
    );
    if args.perf.is_some() {
        ensure!(
            Cmd::new(["sh", "-c", "command -v perf"]).succeeds()?,
            "perf is missing"
        );
    }
    let bin = bgp_bin(args.bgp_bin.as_deref())?;
    Lab::builder("bgpsend")
        .hosts(3)
        .run(|lab| bench(lab, &args, &bin))
}

fn bench(lab: &Lab, args: &Args, bin: &Path) -> Result<()> {
    let (h1, h2, h3) = (lab.host(1), lab.host(2), lab.host(3));
    let n = args.routes;
    let setup = Setup {
        lab,
        args,
        bin,
        ours_routes: lab.dir().join("ours-routes.toml"),
        bird_conf: lab.dir().join("bird-sender.conf"),
        receiver: h3,
    };
    std::fs::write(&setup.ours_routes, ours_routes_toml(n))?;
    std::fs::write(&setup.bird_conf, bird_sender_conf(h2, h3, n))?;

    println!(
        "{n} local /32s from one sender to a counting receiver; {} runs each, alternating",
        args.runs
    );
    println!(
        "{:>3}  {:<10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>6} {:>4} {:>4}",
        "run",
        "sender",
        "all s",
        "first s",
        "99% s",
        "CPU s",
        "CPUall s",
        "HWMld MB",
        "HWM MB",
        "RSS MB",
        "load s",
        "UPDATEs",
        "MB",
        "rep",
        "wd"
    );
    let mut ours = Totals::default();
    let mut bird = Totals::default();
    for run in 0..args.runs {
        let order = if run % 2 == 0 {
            [(Kind::Ours, h1), (Kind::Bird, h2)]
        } else {
            [(Kind::Bird, h2), (Kind::Ours, h1)]
        };
        for (kind, host) in order {
            let t = trial(&setup, kind, host, run)?;
            let s = &t.session;
            let sec = |d: Duration| d.as_secs_f64();
            let mb = |kib: u64| kib as f64 / 1024.0;
            println!(
                "{run:>3}  {:<10} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.1} {:>8.1} {:>8.1} {:>7.2} {:>7} {:>6.2} {:>4} {:>4}",
                kind.label(),
                sec(s.time),
                sec(s.first),
                sec(s.most),
                sec(s.cpu),
                sec(t.cpu_total),
                mb(t.loaded_kib),
                mb(t.hwm_kib),
                mb(t.rss_kib),
                sec(t.load),
                s.updates,
                s.bytes as f64 / 1e6,
                s.announced - u64::from(n),
                s.withdrawn
            );
            let tot = match kind {
                Kind::Ours => &mut ours,
                Kind::Bird => &mut bird,
            };
            tot.time.0.push(s.time);
            tot.first.0.push(s.first);
            tot.most.0.push(s.most);
            tot.cpu.0.push(s.cpu);
            tot.load.0.push(t.load);
            tot.loaded.push(t.loaded_kib);
            tot.hwm.push(t.hwm_kib);
            tot.rss.push(t.rss_kib);
        }
    }

    let ratio = |a: &Series, b: &Series| a.median() / b.median();
    println!();
    println!("median (range) over {} runs each:", args.runs);
    println!(
        "time to the last of {n} routes: ours {}  BIRD {}  ours/BIRD {:.2}x (goal <= 0.5)",
        ours.time.show(),
        bird.time.show(),
        ratio(&ours.time, &bird.time)
    );
    println!(
        "time to 99% of the routes:      ours {}  BIRD {}  ours/BIRD {:.2}x",
        ours.most.show(),
        bird.most.show(),
        ratio(&ours.most, &bird.most)
    );
    println!(
        "time to the first UPDATE:       ours {}  BIRD {}",
        ours.first.show(),
        bird.first.show()
    );
    println!(
        "sender CPU in the session:      ours {}  BIRD {}  ours/BIRD {:.2}x",
        ours.cpu.show(),
        bird.cpu.show(),
        ratio(&ours.cpu, &bird.cpu)
    );
    println!(
        "sender load time:               ours {}  BIRD {}",
        ours.load.show(),
        bird.load.show()
    );
    let mb = |v: &[u64]| median(v) / 1024.0;
    println!(
        "sender peak RSS (VmHWM) at the end: ours {:.1} MB  BIRD {:.1} MB  ours/BIRD {:.2}x  \
         (once loaded: ours {:.1} MB  BIRD {:.1} MB; VmRSS at the end: ours {:.1} MB  BIRD {:.1} MB)",
        mb(&ours.hwm),
        mb(&bird.hwm),
        median(&ours.hwm) / median(&bird.hwm),
        mb(&ours.loaded),
        mb(&bird.loaded),
        mb(&ours.rss),
        mb(&bird.rss)
    );
    Ok(())
}

/// One sender's numbers over the runs.
#[derive(Default)]
struct Totals {
    time: Series,
    first: Series,
    most: Series,
    cpu: Series,
    load: Series,
    loaded: Vec<u64>,
    hwm: Vec<u64>,
    rss: Vec<u64>,
}
