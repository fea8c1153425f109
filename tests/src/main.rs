//! `calico-lab`: the lab from the command line.
//!
//! `up`/`down` build and remove a lab that outlives the command (the README's main job and its
//! companion); `check-clean` is the test suite's final check that no lab left anything behind;
//! `stop-dockerd` ends the dockerd a lab started; `probe tcp` and `serve tcp` are the TCP client and echo
//! server that reachability checks run inside namespaces (`probe sweep` checks many addresses at once); `hold` builds a lab and waits to be killed (the
//! crash test's victim).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use calico_lab::{cleanup, docker, Lab};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "calico-lab",
    version,
    about = "The Calico multi-host lab on one machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a lab in slot 0 (10.250.0.0/24 and fd00:250::/64) and leave it running.
    Up {
        /// The lab's name (its namespaces are lab-<NAME>-…).
        #[arg(default_value = "demo")]
        name: String,
        /// Hosts on the fabric (subnet A).
        #[arg(long, default_value_t = 2)]
        hosts: usize,
        /// Hosts in subnet B, behind a ToR.
        #[arg(long, default_value_t = 0)]
        tor_hosts: usize,
    },
    /// Remove a lab and everything in it (namespaces, processes, containers, links).
    Down {
        #[arg(default_value = "demo")]
        name: String,
    },
    /// Remove every lab except the ones named (leftovers of an interrupted test run).
    Clean {
        /// Labs to keep (e.g. a running demo).
        #[arg(long)]
        except: Vec<String>,
    },
    /// Fail if any lab left namespaces, links, containers or processes behind.
    CheckClean {
        /// Labs to ignore (e.g. a running demo).
        #[arg(long)]
        except: Vec<String>,
    },
    /// Stop the dockerd the lab started, if it did and no lab container remains.
    StopDockerd,
    /// Make sure dockerd runs and the lab image exists.
    Image,
    /// Build a lab with a daemon on h1 and wait to be killed (for the crash test).
    Hold { name: String },
    /// Open a TCP connection: exit 0 if it connects, 1 if refused, 2 otherwise.
    Probe {
        #[command(subcommand)]
        kind: Probe,
    },
    /// Serve TCP: echo every connection's bytes back.
    Serve {
        #[command(subcommand)]
        kind: Serve,
    },
}

#[derive(Debug, Subcommand)]
enum Probe {
    Tcp {
        addr: SocketAddr,
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
    },
    /// Open a TCP connection to port PORT of many addresses at once (a closed port answers with a
    /// reset, which counts as reached): exit 0 only if every --reach address answered and no --deny
    /// address did; prints the addresses that broke the expectation.
    Sweep {
        /// Addresses that must answer (comma-separated).
        #[arg(long, value_delimiter = ',')]
        reach: Vec<IpAddr>,
        /// Addresses that must not answer (comma-separated).
        #[arg(long, value_delimiter = ',')]
        deny: Vec<IpAddr>,
        #[arg(long, default_value_t = 9)]
        port: u16,
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
    },
    /// Hold one connection to an echo server for SECONDS, exchanging a line every 100 ms; exit 0 only
    /// if every exchange came back whole and in time (a flow that must survive a dataplane change).
    Stream {
        addr: SocketAddr,
        #[arg(long)]
        seconds: u64,
    },
}

#[derive(Debug, Subcommand)]
enum Serve {
    Tcp { addr: SocketAddr },
}

/// True when `addr` answers a TCP connection attempt within `timeout` (accepts it or resets it).
fn answers(addr: SocketAddr, timeout: Duration) -> bool {
    match TcpStream::connect_timeout(&addr, timeout) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
    }
}

fn sweep(reach: &[IpAddr], deny: &[IpAddr], port: u16, timeout: Duration) -> Result<ExitCode> {
    if let Some(ip) = reach
        .iter()
        .chain(deny)
        .find(|ip| !calico_lab::lab::in_lab_ranges(**ip))
    {
        anyhow::bail!("{ip} is outside the lab's ranges: the sweep sends traffic only there");
    }
    let probe = |ips: &[IpAddr], want: bool| -> Vec<IpAddr> {
        std::thread::scope(|s| {
            let handles: Vec<_> = ips
                .iter()
                .map(|ip| {
                    let addr = SocketAddr::new(*ip, port);
                    s.spawn(move || (answers(addr, timeout) != want).then_some(addr.ip()))
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().ok().flatten())
                .collect()
        })
    };
    let (unreached, answered) = (probe(reach, true), probe(deny, false));
    let list = |v: &[IpAddr]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    println!(
        "reached {}/{}; denied {}/{}",
        reach.len() - unreached.len(),
        reach.len(),
        deny.len() - answered.len(),
        deny.len()
    );
    if !unreached.is_empty() {
        println!("unreached: {}", list(&unreached));
    }
    if !answered.is_empty() {
        println!("answered though denied: {}", list(&answered));
    }
    Ok(if unreached.is_empty() && answered.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn stream(addr: SocketAddr, seconds: u64) -> Result<ExitCode> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    println!("connected {addr}");
    std::io::stdout().flush()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    let mut n = 0u64;
    while std::time::Instant::now() < deadline {
        let line = format!("line {n}\n");
        conn.write_all(line.as_bytes())?;
        let mut back = vec![0u8; line.len()];
        conn.read_exact(&mut back)?;
        if back != line.as_bytes() {
            anyhow::bail!(
                "exchange {n} came back as {:?}",
                String::from_utf8_lossy(&back)
            );
        }
        n += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("held {addr} for {seconds} s: {n} exchanges");
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("calico-lab: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Up {
            name,
            hosts,
            tor_hosts,
        } => {
            let mut builder = Lab::builder(&name).slot(0).hosts(hosts);
            if tor_hosts > 0 {
                builder = builder.hosts_behind_tor(tor_hosts);
            }
            let lab = builder.build()?;
            println!(
                "lab {name} is up: management address {} / {}",
                lab.mgmt_ip(),
                lab.mgmt_ip6()
            );
            for h in lab.hosts() {
                println!(
                    "  {:<4} namespace {:<16} {:<14} {}",
                    h.name, h.ns, h.ip, h.ip6
                );
            }
            if let Some(first) = lab.hosts().first() {
                println!(
                    "try:  ip netns exec {} ping -c1 {}",
                    first.ns,
                    lab.mgmt_ip()
                );
            }
            println!("down: calico-lab down {name}");
            lab.keep();
        }
        Command::Down { name } => {
            let removed = cleanup::teardown(&name)?;
            println!("lab {name}: removed {} item(s)", removed.len());
            for item in removed {
                println!("  {item}");
            }
        }
        Command::Clean { except } => {
            let mut names = cleanup::lab_names()?;
            names.retain(|n| !except.contains(n));
            for name in names {
                let removed = cleanup::teardown(&name)?;
                println!("lab {name}: removed {} item(s)", removed.len());
            }
        }
        Command::CheckClean { except } => {
            let except: Vec<&str> = except.iter().map(String::as_str).collect();
            let left = cleanup::leftovers(&except)?;
            if !left.is_empty() {
                eprintln!("the lab left {} item(s) behind:", left.len());
                for item in &left {
                    eprintln!("  {item}");
                }
                return Ok(ExitCode::FAILURE);
            }
            println!("lab check: nothing left behind");
        }
        Command::StopDockerd => println!("{}", docker::stop_dockerd_if_ours()?),
        Command::Image => {
            docker::ensure_dockerd()?;
            docker::ensure_image()?;
            println!("{} is ready", docker::IMAGE);
        }
        Command::Hold { name } => {
            let lab = Lab::builder(&name).hosts(2).build()?;
            let daemon = lab.spawn("sleeper", &lab.host(1).place(), &["sleep", "600"])?;
            println!("ready {} {}", lab.host(1).ns, daemon.pid());
            std::io::stdout().flush()?;
            std::thread::sleep(Duration::from_secs(600));
            drop(daemon);
            drop(lab);
        }
        Command::Probe {
            kind: Probe::Tcp { addr, timeout_ms },
        } => {
            return Ok(
                match TcpStream::connect_timeout(&addr, Duration::from_millis(timeout_ms)) {
                    Ok(_) => {
                        println!("connected {addr}");
                        ExitCode::SUCCESS
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                        println!("refused {addr}");
                        ExitCode::from(1)
                    }
                    Err(err) => {
                        println!("failed {addr}: {err}");
                        ExitCode::from(2)
                    }
                },
            )
        }
        Command::Probe {
            kind: Probe::Stream { addr, seconds },
        } => return stream(addr, seconds),
        Command::Probe {
            kind:
                Probe::Sweep {
                    reach,
                    deny,
                    port,
                    timeout_ms,
                },
        } => return sweep(&reach, &deny, port, Duration::from_millis(timeout_ms)),
        Command::Serve {
            kind: Serve::Tcp { addr },
        } => {
            let listener = TcpListener::bind(addr)?;
            println!("listening {}", listener.local_addr()?);
            std::io::stdout().flush()?;
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = conn.read(&mut buf) {
                        if n == 0 || conn.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
