//! The BGP speaker's FIB in a real kernel: tens of thousands of routes in batches, ECMP routes as
//! multipath routes, level-triggered repair, adoption of a previous run's routes, other owners' routes
//! left alone, and a table other than main.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use calico_bgp::fib::{Fib, Routes, DEFAULT_PROTOCOL, DEFAULT_TABLE};
use calico_lab::reach::assert_ping;
use calico_lab::Lab;

const ROUTES: u32 = 60_000;

fn v4(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 65, 0, 0)) + n))
}

#[test]
fn the_fib_programs_many_routes_and_stays_converged() -> Result<()> {
    assert!(
        rustix::process::geteuid().is_root(),
        "needs root: run the README's test command"
    );
    Lab::builder("bgpfib").hosts(3).run(|lab| {
        let (h1, h2, h3) = (lab.host(1), lab.host(2), lab.host(3));
        let netns = PathBuf::from("/run/netns").join(&h1.ns);
        let mut fib = Fib::new(Some(&netns), DEFAULT_TABLE, DEFAULT_PROTOCOL)?;
        let (g2, g3) = (IpAddr::V4(h2.ip), IpAddr::V4(h3.ip));

        // Many /32s through h2, and an ECMP /26 through h2 and h3.
        let mut want: Routes = (1..=ROUTES).map(|n| ((v4(n), 32), vec![g2])).collect();
        let mut both = vec![g2, g3];
        both.sort();
        want.insert((v4(0), 26), both.clone());
        want.insert(("fd00:65::".parse()?, 122), vec![IpAddr::V6(h2.ip6)]);
        let t = Instant::now();
        let report = fib.sync(&want)?;
        let took = t.elapsed();
        ensure!(
            report.failed.is_empty() && report.set == want.len(),
            "{:?}",
            report.failed.first()
        );
        eprintln!(
            "installed {} routes in {took:?} ({:.0} routes/s)",
            want.len(),
            want.len() as f64 / took.as_secs_f64()
        );
        ensure!(
            fib.read()? == want,
            "the kernel holds exactly what was asked"
        );
        let ecmp = h1
            .cmd(&["ip", "route", "show", &format!("{}/26", v4(0))])
            .stdout()?;
        ensure!(
            ecmp.contains(&format!("nexthop via {}", h2.ip))
                && ecmp.contains(&format!("nexthop via {}", h3.ip)),
            "{ecmp}"
        );
        // The host still reaches its neighbours with the table loaded.
        assert_ping(h1, IpAddr::V4(h2.ip), Duration::from_secs(5))?;

        // Another owner's route, and drift: one of ours deleted by hand, one changed by hand.
        h1.cmd(&[
            "ip",
            "route",
            "add",
            "10.65.255.254/32",
            "via",
            &h3.ip.to_string(),
            "proto",
            "static",
        ])
        .run()?;
        h1.cmd(&["ip", "route", "del", &format!("{}/32", v4(7))])
            .run()?;
        h1.cmd(&[
            "ip",
            "route",
            "replace",
            &format!("{}/32", v4(8)),
            "via",
            &h3.ip.to_string(),
            "proto",
            "186",
        ])
        .run()?;
        let repair = fib.sync(&want)?;
        ensure!(
            repair.set == 2 && repair.deleted == 0 && repair.failed.is_empty(),
            "{repair:?}"
        );

        // A new run (another Fib) adopts what is right and removes what is no longer wanted.
        drop(fib);
        let mut next = Fib::new(Some(&netns), DEFAULT_TABLE, DEFAULT_PROTOCOL)?;
        want.retain(|(ip, len), _| {
            !(*len == 32 && matches!(ip, IpAddr::V4(a) if u32::from(*a) % 2 == 0))
        });
        let t = Instant::now();
        let shrink = next.sync(&want)?;
        eprintln!("removed {} routes in {:?}", shrink.deleted, t.elapsed());
        ensure!(
            shrink.set == 0 && shrink.deleted == (ROUTES / 2) as usize,
            "{shrink:?}"
        );
        ensure!(next.read()? == want);
        let others = h1
            .cmd(&["ip", "route", "show", "10.65.255.254/32"])
            .stdout()?;
        ensure!(
            others.contains("proto static"),
            "another owner's route survives: {others:?}"
        );

        // A table other than main.
        let mut custom = Fib::new(Some(&netns), 1000, DEFAULT_PROTOCOL)?;
        let small: Routes = [((v4(100_000 % 65_536), 32), vec![g3])].into();
        ensure!(custom.sync(&small)?.failed.is_empty());
        let t1000 = h1.cmd(&["ip", "route", "show", "table", "1000"]).stdout()?;
        ensure!(
            t1000.contains(&h3.ip.to_string()) && t1000.contains("proto bgp"),
            "{t1000}"
        );
        ensure!(next.read()? == want, "table 1000 is not mistaken for main");
        Ok(())
    })
}

/// One write: a prefix and the gateways to route it through, or `None` to delete it.
type Change<'a> = ((IpAddr, u8), Option<&'a [IpAddr]>);

/// Writes go many to a `sendmsg` with only the last request of each asking for an acknowledgement
/// (successes cost no reply): a refusal anywhere in a batch must still come back, for that request
/// only, and every other request must land.
#[test]
fn a_refused_request_anywhere_in_a_batch_is_reported_alone() -> Result<()> {
    assert!(
        rustix::process::geteuid().is_root(),
        "needs root: run the README's test command"
    );
    const ESRCH: i32 = 3;
    Lab::builder("bgpfibno").hosts(2).run(|lab| {
        let (h1, h2) = (lab.host(1), lab.host(2));
        let netns = PathBuf::from("/run/netns").join(&h1.ns);
        let mut fib = Fib::new(Some(&netns), DEFAULT_TABLE, DEFAULT_PROTOCOL)?;
        let gw = [IpAddr::V4(h2.ip)];
        // 600 changes, three batches: deletions of routes that do not exist (refused) first in the
        // first batch, last in it, in the middle of the second and last of all; the rest installs.
        let refused = [0, 255, 300, 599];
        let changes: Vec<Change> = (0..600)
            .map(|i| {
                let route = if refused.contains(&i) {
                    None
                } else {
                    Some(&gw[..])
                };
                ((v4(i as u32), 32), route)
            })
            .collect();
        let failed = fib.write(&changes)?;
        let expected: Vec<(usize, i32)> = refused.iter().map(|&i| (i, ESRCH)).collect();
        ensure!(failed == expected, "refused: {failed:?}");
        let held = fib.read()?;
        ensure!(
            held.len() == 600 - refused.len()
                && (0..600u32)
                    .filter(|i| !refused.contains(&(*i as usize)))
                    .all(|i| held.get(&(v4(i), 32)).map(Vec::as_slice) == Some(&gw[..])),
            "the kernel holds {} of our routes, not the {} accepted",
            held.len(),
            600 - refused.len()
        );
        // All refused, nothing accepted: still one report per request, and no wait for replies
        // that never come.
        let none: Vec<Change> = (1000..1300).map(|i| ((v4(i), 32), None)).collect();
        let t = Instant::now();
        let failed = fib.write(&none)?;
        ensure!(
            failed.len() == 300 && failed.iter().all(|(_, e)| *e == ESRCH),
            "{} refusals: {:?}",
            failed.len(),
            failed.first()
        );
        ensure!(
            t.elapsed() < Duration::from_secs(2),
            "took {:?}",
            t.elapsed()
        );
        Ok(())
    })
}
