//! Felix's firewall at scale against the tools' floor, both measured in this run, each in a fresh lab
//! host (network namespace).
//!
//! Ours: the `inet calico` table (per-endpoint state in sets and maps, one chain per profile) loaded with
//! `nft -f`, endpoints added through netlink element batches, a rule change as one script. The floor:
//! Felix 1.x's layout (two chains per endpoint with its profile's rules copied in, tags as ipsets) loaded
//! with `ipset restore` + `iptables-restore --noflush`, and one endpoint added the same way. Routes and
//! interfaces are left out on both sides: this measures the firewall alone, until the kernel holds it.
//!
//! Run (root, ipset and iptables installed): `cargo run --release -p calico-bench --bin felix-scale --
//! --endpoints 1000 --endpoints 10000`.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::Result;
use calico_felix::changes::Change;
use calico_felix::firewall::Firewall;
use calico_felix::model::{
    Action, DesiredState, Endpoint, Mac, Port, Profile, Protocol, Rule, TagMembers,
};
use calico_lab::{Host, Lab};
use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    /// Endpoint counts to measure (repeatable).
    #[arg(long, default_values_t = [1000usize])]
    endpoints: Vec<usize>,
    /// Endpoints added one at a time after the cold start (for the median and p99).
    #[arg(long, default_value_t = 50)]
    adds: usize,
}

const RULES: usize = 10;

fn ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 65, (i / 250) as u8, (i % 250 + 1) as u8)
}

fn iface(i: usize) -> String {
    format!("cali{i:011x}")
}

fn mac(i: usize) -> Mac {
    Mac([2, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8, 1])
}

/// Profiles `n/100` (at least 1), tags `n/50`; endpoint `i` is in profile `i % profiles` and tag
/// `i % tags`; each profile has 10 inbound rules over tags and ports and one outbound allow.
struct Shape {
    profiles: usize,
    tags: usize,
}

impl Shape {
    fn new(n: usize) -> Shape {
        Shape {
            profiles: (n / 100).max(1),
            tags: (n / 50).max(1),
        }
    }

    fn rule(&self, profile: usize, r: usize) -> Rule {
        Rule {
            action: Some(Action::Allow),
            protocol: Some(Protocol::Tcp),
            src_tag: Some(format!("tag{}", (profile * RULES + r) % self.tags)),
            dst_ports: vec![Port::One(80 + r as u16), Port::Range(2048, 4000)],
            ..Rule::default()
        }
    }

    fn endpoint(&self, i: usize) -> Endpoint {
        Endpoint {
            iface: iface(i),
            mac: mac(i),
            ipv4: vec![ip(i)],
            ipv6: vec![],
            profiles: vec![format!("prof{}", i % self.profiles)],
        }
    }

    fn state(&self, n: usize) -> DesiredState {
        let mut s = DesiredState::default();
        for p in 0..self.profiles {
            s.profiles.insert(
                format!("prof{p}"),
                Profile {
                    inbound: (0..RULES).map(|r| self.rule(p, r)).collect(),
                    outbound: vec![Rule {
                        action: Some(Action::Allow),
                        ..Rule::default()
                    }],
                },
            );
        }
        for i in 0..n {
            s.endpoints.insert(format!("ep{i}"), self.endpoint(i));
            s.tags
                .entry(format!("tag{}", i % self.tags))
                .or_insert_with(TagMembers::default)
                .ipv4
                .insert(ip(i));
        }
        s
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Figures {
    cold: Duration,
    add_median: Duration,
    add_p99: Duration,
    rule_change: Option<Duration>,
}

fn ours(host: &Host, shape: &Shape, n: usize, adds: usize) -> Result<Figures> {
    let mut fw = Firewall::in_named_netns(&host.ns)?;
    let state = shape.state(n);
    let t = Instant::now();
    fw.apply(&state)?;
    let cold = t.elapsed();
    let mut times = Vec::new();
    for k in 0..adds {
        let i = n + k;
        let changes = [
            Change::Endpoint(format!("ep{i}"), Some(shape.endpoint(i))),
            Change::TagMember(format!("tag{}", i % shape.tags), ip(i).into(), true),
        ];
        let t = Instant::now();
        fw.apply_changes(&changes)?;
        times.push(t.elapsed());
    }
    times.sort();
    // A rule change in profile 0 (used by n/profiles endpoints).
    let mut changed = state.profiles.get("prof0").cloned().unwrap_or_default();
    if let Some(rule) = changed.inbound.first_mut() {
        rule.dst_ports = vec![Port::One(22)];
    }
    let t = Instant::now();
    fw.apply_changes(&[Change::Profile("prof0".into(), Some(changed))])?;
    let rule_change = Some(t.elapsed());
    Ok(Figures {
        cold,
        add_median: percentile(&times, 0.5),
        add_p99: percentile(&times, 0.99),
        rule_change,
    })
}

/// Felix 1.x's per-endpoint chains for endpoint `i` (to and from), as iptables-restore lines.
fn floor_endpoint(
    shape: &Shape,
    i: usize,
    chains: &mut String,
    rules: &mut String,
    ipset: &mut String,
) {
    let (ifc, p) = (iface(i), i % shape.profiles);
    let _ = writeln!(chains, ":felix-to-{i} - [0:0]\n:felix-from-{i} - [0:0]");
    let _ = writeln!(rules, "-A felix-TO-ENDPOINT -o {ifc} -g felix-to-{i}");
    let _ = writeln!(rules, "-A felix-FROM-ENDPOINT -i {ifc} -g felix-from-{i}");
    let _ = writeln!(
        rules,
        "-A felix-to-{i} -m conntrack --ctstate INVALID -j DROP"
    );
    let _ = writeln!(
        rules,
        "-A felix-to-{i} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
    );
    for r in 0..RULES {
        let tag = (p * RULES + r) % shape.tags;
        let _ = writeln!(
            rules,
            "-A felix-to-{i} -p tcp -m set --match-set felix-v4-tag{tag} src -m multiport --dports {},2048:4000 -j RETURN",
            80 + r
        );
    }
    let _ = writeln!(rules, "-A felix-to-{i} -j DROP");
    let m = mac(i);
    let _ = writeln!(
        rules,
        "-A felix-from-{i} -s {}/32 -m mac --mac-source {m} -j RETURN\n-A felix-from-{i} -j DROP",
        ip(i)
    );
    let _ = writeln!(ipset, "add felix-v4-tag{} {} -exist", i % shape.tags, ip(i));
}

fn restore(host: &Host, tool: &[&str], input: String) -> Result<Duration> {
    let t = Instant::now();
    host.cmd(tool)
        .stdin(input)
        .timeout(Duration::from_secs(600))
        .run()?;
    Ok(t.elapsed())
}

fn floor(host: &Host, shape: &Shape, n: usize, adds: usize) -> Result<Figures> {
    let mut ipset = String::new();
    for t in 0..shape.tags {
        let _ = writeln!(ipset, "create felix-v4-tag{t} hash:ip family inet -exist");
    }
    let (mut chains, mut rules) = (String::new(), String::new());
    let _ = writeln!(
        chains,
        ":felix-TO-ENDPOINT - [0:0]\n:felix-FROM-ENDPOINT - [0:0]"
    );
    let _ = writeln!(
        rules,
        "-A FORWARD -i cali+ -j felix-FROM-ENDPOINT\n-A FORWARD -o cali+ -j felix-TO-ENDPOINT"
    );
    for i in 0..n {
        floor_endpoint(shape, i, &mut chains, &mut rules, &mut ipset);
    }
    let t = Instant::now();
    restore(host, &["ipset", "restore"], ipset)?;
    restore(
        host,
        &["iptables-restore", "--noflush"],
        format!("*filter\n{chains}{rules}COMMIT\n"),
    )?;
    let cold = t.elapsed();
    let mut times = Vec::new();
    for k in 0..adds {
        let (mut c, mut r, mut s) = (String::new(), String::new(), String::new());
        floor_endpoint(shape, n + k, &mut c, &mut r, &mut s);
        let t = Instant::now();
        restore(host, &["ipset", "restore"], s)?;
        restore(
            host,
            &["iptables-restore", "--noflush"],
            format!("*filter\n{c}{r}COMMIT\n"),
        )?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(Figures {
        cold,
        add_median: percentile(&times, 0.5),
        add_p99: percentile(&times, 0.99),
        rule_change: None,
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    println!("| endpoints | tags | cold: ours / floor (ratio) | add one, median: ours / floor | add one, p99: ours / floor (ratio) | rule change: ours |");
    println!("|---|---|---|---|---|---|");
    for &n in &args.endpoints {
        let shape = Shape::new(n);
        let lab = Lab::builder("benchfelix").hosts(2).build()?;
        let a = ours(lab.host(1), &shape, n, args.adds)?;
        let b = floor(lab.host(2), &shape, n, args.adds)?;
        println!(
            "| {n} | {} | {:.0} ms / {:.0} ms ({:.3}×) | {:.1} ms / {:.1} ms | {:.1} ms / {:.1} ms ({:.3}×) | {:.1} ms |",
            shape.tags,
            ms(a.cold),
            ms(b.cold),
            a.cold.as_secs_f64() / b.cold.as_secs_f64(),
            ms(a.add_median),
            ms(b.add_median),
            ms(a.add_p99),
            ms(b.add_p99),
            a.add_p99.as_secs_f64() / b.add_p99.as_secs_f64(),
            a.rule_change.map(ms).unwrap_or_default(),
        );
        drop(lab);
    }
    Ok(())
}
