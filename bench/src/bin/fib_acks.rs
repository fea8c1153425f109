//! What the kernel's acknowledgements cost when routes are written: 100,000 /32s installed and deleted
//! in a lab host, 256 requests per `sendmsg`, each request acknowledged (the usual way) or only the last
//! one of each send (what `Socket::transact_each` does: failures are reported either way), through a
//! gateway or through a nexthop object. Medians of `ROUNDS` (first argument, default 5).
//!
//! ```sh
//! sudo target/release/fib-acks 9
//! ```
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use calico_bench::bgp_lab::{netns, route};
use calico_bgp::netlink::nexthop;
use calico_bgp::netlink::route::{del_prefix_route, set_gateway_route, GatewayRoute};
use calico_bgp::netlink::socket::Socket;
use calico_bgp::netlink::{parse_replies, Reply};
use calico_lab::Lab;
use rustix::net::{RecvFlags, SendFlags};

#[derive(Clone, Copy, Debug)]
struct Mode {
    /// Routes name a nexthop object instead of carrying the gateway.
    nh: bool,
    /// Every request asks for an acknowledgement, all awaited.
    each: bool,
}

fn run(
    sock: &mut Socket,
    mode: Mode,
    gw: IpAddr,
    nh_id: u32,
    n: u32,
    delete: bool,
) -> Result<Duration> {
    let all: Vec<u32> = (0..n).collect();
    let mut rbuf = vec![0u8; 256 * 1024];
    let t = Instant::now();
    for chunk in all.chunks(256) {
        let mut buf = Vec::with_capacity(chunk.len() * 64);
        let mut seqs = Vec::new();
        for i in chunk {
            let seq = sock.next_seq();
            let dst = IpAddr::V4(route(*i));
            let m = if delete {
                del_prefix_route(dst, 32, 254, 99, seq)
            } else if mode.nh {
                nexthop::set_route(dst, 32, 254, 99, nh_id, seq)
            } else {
                set_gateway_route(
                    &GatewayRoute {
                        dst,
                        prefix_len: 32,
                        gateways: vec![gw],
                        table: 254,
                        protocol: 99,
                    },
                    seq,
                )
            };
            buf.extend(m);
            seqs.push(seq);
        }
        if mode.each {
            rustix::net::send(sock.as_fd(), &buf, SendFlags::empty())?;
            let mut left = seqs.len();
            while left > 0 {
                let (got, _) = rustix::net::recv(sock.as_fd(), &mut rbuf[..], RecvFlags::empty())?;
                for r in parse_replies(&rbuf[..got]) {
                    match r {
                        Reply::Ack { .. } => left -= 1,
                        Reply::Error { seq, errno } => {
                            bail!("request {seq} refused: errno {errno}")
                        }
                        Reply::Other { .. } => {}
                    }
                }
            }
        } else {
            let failed = sock.transact_each(&buf, &seqs)?;
            ensure!(failed.is_empty(), "refused {failed:?}");
        }
    }
    Ok(t.elapsed())
}

/// Rounds when no argument says otherwise.
const ROUNDS: usize = 5;

fn main() -> Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(ROUNDS);
    Lab::builder("fibacks").hosts(2).run(|lab| {
        let (h1, h2) = (lab.host(1), lab.host(2));
        let gw = IpAddr::V4(h2.ip);
        let out = h1.cmd(&["cat", "/sys/class/net/eth0/ifindex"]).output()?;
        let oif: u32 = out.stdout.trim().parse()?;
        let modes = [
            Mode {
                nh: false,
                each: true,
            },
            Mode {
                nh: false,
                each: false,
            },
            Mode {
                nh: true,
                each: true,
            },
            Mode {
                nh: true,
                each: false,
            },
        ];
        let mut res: Vec<(Vec<f64>, Vec<f64>)> = vec![(vec![], vec![]); modes.len()];
        let mut setup = Socket::open_in(&netns(h1), None)?;
        let seq = setup.next_seq();
        setup.transact(&nexthop::new_gateway(777, gw, oif, 99, seq), &[seq], "nh")?;
        for _ in 0..rounds {
            for (m, mode) in modes.iter().enumerate() {
                let mut s = Socket::open_in(&netns(h1), None)?;
                let i = run(&mut s, *mode, gw, 777, 100_000, false)?;
                let d = run(&mut s, *mode, gw, 777, 100_000, true)?;
                res[m].0.push(i.as_secs_f64());
                res[m].1.push(d.as_secs_f64());
            }
        }
        for (m, mode) in modes.iter().enumerate() {
            let med = |v: &mut Vec<f64>| {
                v.sort_by(|a, b| a.partial_cmp(b).unwrap());
                v[v.len() / 2]
            };
            let (mut i, mut d) = res[m].clone();
            let how = if mode.nh { "nexthop object" } else { "gateway" };
            let acks = if mode.each {
                "every request acked"
            } else {
                "last request acked"
            };
            println!(
                "{how:>14}, {acks}: install {:.3} s, delete {:.3} s",
                med(&mut i),
                med(&mut d)
            );
        }
        Ok(())
    })
}
