//! The daemon's settings: a TOML file (`calico-bgp run --config FILE.toml`) merged with command-line
//! flags, which override it. Pure.
//!
//! Role: parse the file into [`ConfigFile`] (unknown keys are errors), then [`resolve`] it together with
//! the flags ([`Overrides`]) into the speaker's [`SpeakerConfig`], its peers and announced routes, the
//! control socket and the metrics address. On SIGHUP the daemon resolves again and applies the peers and
//! routes through the speaker's declarative `set_peers` / `set_local_routes`; [`restart_only_changes`]
//! names the settings that only a restart applies.
//! Inputs: the file's text, the flags. Outputs: [`DaemonSettings`] or an error naming the bad part.
//!
//! The file has the flags' settings with underscores (`asn`, `router_id`, `cluster_id`, `listen`, `fib`, `fib_table`,
//! `fib_protocol`, `fib_scan`, `ecmp`, `graceful_restart`, `control`, `metrics`), `[[peer]]` tables (`address`,
//! `asn`, `passive`, `password`, `rr_client`, `hold`, `keepalive`, `multihop`, `gr`, `local`,
//! `description`, `next_hop_self`, `ttl_security`, `add_path`, `other_next_hop`, `port`, `max_prefix`, `max_prefix_action`; times in seconds; and per peer
//! `[[peer.import]]` / `[[peer.export]]` rules, see [`RuleEntry`]) and `[[announce]]` tables (`prefix`, `next_hop`, `communities`,
//! `large_communities`). Flags win over the file; a `--peer` (or `--announce`) replaces the file's
//! peer with the same address (route with the same prefix) and adds the others.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::spec::{add_path_mode, parse_asn, parse_community, parse_large};
use super::{FibSettings, LargeCommunity, LocalRoute, PeerSettings, SpeakerConfig, BGP_PORT};
use crate::rib::{Match, MaxPrefix, MaxPrefixAction, Modify, Policy, PrefixRange, Rule};

/// The default control socket.
pub const DEFAULT_CONTROL: &str = "/run/calico-bgp.sock";

/// An AS number as written in the file: a number or an asdot string.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum AsNumber {
    /// `65001`.
    Plain(u32),
    /// `"64086.59905"` or `"65001"`.
    Text(String),
}

impl AsNumber {
    fn value(&self) -> Result<u32, String> {
        match self {
            AsNumber::Plain(0) => Err("AS 0 is not a valid AS".into()),
            AsNumber::Plain(n) => Ok(*n),
            AsNumber::Text(t) => parse_asn(t),
        }
    }
}

/// A `[[peer]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerEntry {
    pub address: IpAddr,
    pub asn: AsNumber,
    #[serde(default)]
    pub passive: bool,
    pub password: Option<String>,
    #[serde(default)]
    pub rr_client: bool,
    /// Seconds (default 90).
    pub hold: Option<u64>,
    /// Seconds.
    pub keepalive: Option<u64>,
    pub multihop: Option<u8>,
    /// Seconds.
    pub gr: Option<u64>,
    pub local: Option<IpAddr>,
    #[serde(default)]
    pub description: String,
    /// Our own address as the next hop of the routes sent to it.
    #[serde(default)]
    pub next_hop_self: bool,
    /// GTSM (RFC 5082): TTL 255 both ways, checked on arrival.
    #[serde(default)]
    pub ttl_security: bool,
    /// ADD-PATH (RFC 7911): `"receive"`, `"send"` or `"both"`.
    pub add_path: Option<String>,
    /// The port to connect to (default 179).
    pub port: Option<u16>,
    /// The next hop for routes of the other family than the session's (default: an address of that
    /// family on the session's interface).
    pub other_next_hop: Option<IpAddr>,
    /// The most routes accepted from it; see `max_prefix_action`.
    pub max_prefix: Option<usize>,
    /// `"teardown"` (the default: Cease / Maximum Number of Prefixes Reached, then a restart after a
    /// growing delay) or `"warn"` (a log line, the routes are kept).
    pub max_prefix_action: Option<String>,
    /// Rules for the routes it sends us, the first that matches decides; none matching: accept.
    #[serde(default)]
    pub import: Vec<RuleEntry>,
    /// Rules for the routes we send it, the same way.
    #[serde(default)]
    pub export: Vec<RuleEntry>,
}

/// One `[[peer.import]]` or `[[peer.export]]` rule: what it matches (every list given must match; an
/// empty rule matches every route) and what it does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleEntry {
    /// Prefix ranges, `"10.65.0.0/16 le 32"` (`ge N`, `le N`; without either, that length only).
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// The route carries one of these communities, `"A:B"`.
    #[serde(default)]
    pub communities: Vec<String>,
    /// The route carries one of these large communities, `"A:B:C"`.
    #[serde(default)]
    pub large_communities: Vec<String>,
    /// `"accept"` (the default) or `"reject"`.
    pub action: Option<String>,
    /// On accept: set LOCAL_PREF (it reaches iBGP peers only).
    pub set_local_pref: Option<u32>,
    /// On accept: add these communities.
    #[serde(default)]
    pub add_communities: Vec<String>,
    /// On accept: remove these communities.
    #[serde(default)]
    pub remove_communities: Vec<String>,
    /// On accept: add these large communities.
    #[serde(default)]
    pub add_large_communities: Vec<String>,
    /// On accept: remove these large communities.
    #[serde(default)]
    pub remove_large_communities: Vec<String>,
    /// On accept: the next hop becomes our address (export) or the peer's (import).
    #[serde(default)]
    pub next_hop_self: bool,
}

impl RuleEntry {
    /// The rule, or what is wrong with it.
    pub fn rule(&self) -> Result<Rule, String> {
        let list = |items: &[String], parse: fn(&str) -> Result<u32, String>| {
            items
                .iter()
                .map(|c| parse(c))
                .collect::<Result<Vec<_>, _>>()
        };
        let large = |items: &[String]| {
            items
                .iter()
                .map(|c| parse_large(c))
                .collect::<Result<Vec<_>, _>>()
        };
        let matches = Match {
            prefixes: self
                .prefixes
                .iter()
                .map(|p| p.parse::<PrefixRange>().map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?,
            communities: list(&self.communities, parse_community)?,
            large_communities: large(&self.large_communities)?,
        };
        let mut modify = Vec::new();
        modify.extend(self.set_local_pref.map(Modify::SetLocalPref));
        modify.extend(
            list(&self.add_communities, parse_community)?
                .into_iter()
                .map(Modify::AddCommunity),
        );
        modify.extend(
            list(&self.remove_communities, parse_community)?
                .into_iter()
                .map(Modify::RemoveCommunity),
        );
        modify.extend(
            large(&self.add_large_communities)?
                .into_iter()
                .map(Modify::AddLargeCommunity),
        );
        modify.extend(
            large(&self.remove_large_communities)?
                .into_iter()
                .map(Modify::RemoveLargeCommunity),
        );
        if self.next_hop_self {
            modify.push(Modify::NextHopSelf);
        }
        match self.action.as_deref() {
            None | Some("accept") => Ok(Rule::accept(matches, modify)),
            Some("reject") if modify.is_empty() => Ok(Rule::reject(matches)),
            Some("reject") => Err("a reject rule cannot also change the route".into()),
            Some(other) => Err(format!(
                "action {other:?}: expected \"accept\" or \"reject\""
            )),
        }
    }
}

/// The max-prefix action named `action` (`None`: tear down).
pub fn max_prefix_action(action: Option<&str>) -> Result<MaxPrefixAction, String> {
    match action {
        None | Some("teardown") => Ok(MaxPrefixAction::TearDown),
        Some("warn") => Ok(MaxPrefixAction::Warn),
        Some(other) => Err(format!(
            "max-prefix action {other:?}: expected \"teardown\" or \"warn\""
        )),
    }
}

/// An `[[announce]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnounceEntry {
    pub prefix: ipnet::IpNet,
    pub next_hop: Option<IpAddr>,
    /// `"A:B"` each.
    #[serde(default)]
    pub communities: Vec<String>,
    /// `"A:B:C"` each.
    #[serde(default)]
    pub large_communities: Vec<String>,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub asn: Option<AsNumber>,
    pub router_id: Option<Ipv4Addr>,
    pub cluster_id: Option<Ipv4Addr>,
    #[serde(default)]
    pub listen: Vec<SocketAddr>,
    pub fib: Option<bool>,
    pub fib_table: Option<u32>,
    pub fib_protocol: Option<u8>,
    /// Seconds between reads of our kernel routes (0: never).
    pub fib_scan: Option<u64>,
    pub ecmp: Option<usize>,
    /// Seconds.
    pub graceful_restart: Option<u64>,
    pub control: Option<PathBuf>,
    pub metrics: Option<SocketAddr>,
    #[serde(default)]
    pub peer: Vec<PeerEntry>,
    #[serde(default)]
    pub announce: Vec<AnnounceEntry>,
}

/// Parses the file's text.
///
/// A file may announce a hundred thousand routes, one `[[announce]]` table each; parsed as one document
/// its tokens and tree take some thirty times the file's size (270 MB for an 8.9 MB file). So the
/// `[[announce]]` tables are parsed one at a time and the rest as one document, when the file's lines
/// say plainly where each table begins and ends ([`split_announces`]). Any doubt, and any error (so that
/// it is reported with its line in the whole file), falls back to parsing the file whole.
pub fn parse(text: &str) -> Result<ConfigFile, String> {
    let whole = || toml::from_str(text).map_err(|e| e.to_string());
    let Some((rest, tables)) = split_announces(text) else {
        return whole();
    };
    let Ok(mut file) = toml::from_str::<ConfigFile>(&rest) else {
        return whole();
    };
    file.announce.reserve_exact(tables.len());
    for table in tables {
        match toml::from_str::<AnnounceEntry>(table) {
            Ok(entry) => file.announce.push(entry),
            Err(_) => return whole(),
        }
    }
    Ok(file)
}

/// Splits a file into its `[[announce]]` tables' bodies (in order) and the rest of it (every other line,
/// in order), or `None` when its lines leave any doubt of where a table begins or ends: a multi-line
/// string (`"""` or `'''`, whose lines may look like headers), or a line starting with `[` that is not a
/// plain header (`[name]`, `[[name]]`, dotted names of letters, digits, `_` and `-`, and an optional
/// comment after it), such as a nested array continued over lines, a table inside `[[announce]]`, or an
/// `announce` key outside the tables (the whole parse says whether it clashes with them).
fn split_announces(text: &str) -> Option<(String, Vec<&str>)> {
    if text.contains("\"\"\"") || text.contains("'''") {
        return None;
    }
    let mut rest = String::new();
    let mut tables = Vec::new();
    // The byte offset where the current announce table's body began, if in one.
    let mut body: Option<usize> = None;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let start = at;
        at += line.len();
        let code = line.trim_start();
        if !code.starts_with('[') {
            if body.is_none() {
                if code.trim_start_matches(['"', '\'']).starts_with("announce") {
                    // `announce = [...]` or `announce.x = ...`: a key, and tables may follow.
                    return None;
                }
                rest.push_str(line);
            }
            continue;
        }
        let name = header_name(line)?;
        if let Some(b) = body.take() {
            tables.push(&text[b..start]);
        }
        if name == "[[announce]]" {
            body = Some(at);
        } else if name.trim_start_matches('[').starts_with("announce") {
            // `[announce]`, `[announce.x]`, `[[announce.x]]`: the whole parse says what they are.
            return None;
        } else {
            rest.push_str(line);
        }
    }
    if let Some(b) = body {
        tables.push(&text[b..]);
    }
    Some((rest, tables))
}

/// A plain table header line's header (`[a.b]` or `[[a]]`, spaces removed), or `None`.
fn header_name(line: &str) -> Option<String> {
    let code = line.split('#').next().unwrap_or_default().trim();
    let (open, close) = if code.starts_with("[[") {
        ("[[", "]]")
    } else {
        ("[", "]")
    };
    let inner = code.strip_prefix(open)?.strip_suffix(close)?;
    let parts: Vec<&str> = inner.split('.').map(str::trim).collect();
    let plain = |p: &&str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if !parts.iter().all(plain) {
        return None;
    }
    Some(format!("{open}{}{close}", parts.join(".")))
}

/// What the command line gave (`None` / empty: not given).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub asn: Option<u32>,
    pub router_id: Option<Ipv4Addr>,
    pub cluster_id: Option<Ipv4Addr>,
    pub listen: Vec<SocketAddr>,
    pub fib: Option<bool>,
    pub fib_table: Option<u32>,
    pub fib_protocol: Option<u8>,
    pub fib_scan: Option<u64>,
    pub ecmp: Option<usize>,
    pub graceful_restart: Option<u64>,
    pub control: Option<PathBuf>,
    pub metrics: Option<SocketAddr>,
    pub peers: Vec<PeerSettings>,
    pub announce: Vec<(LocalRoute, Vec<LargeCommunity>)>,
}

/// Everything the daemon runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSettings {
    pub speaker: SpeakerConfig,
    pub peers: Vec<PeerSettings>,
    pub announce: Vec<(LocalRoute, Vec<LargeCommunity>)>,
    pub control: PathBuf,
    pub metrics: Option<SocketAddr>,
}

impl PeerEntry {
    /// The speaker's settings for this peer.
    pub fn settings(&self) -> Result<PeerSettings, String> {
        let what = |e: String| format!("peer {}: {e}", self.address);
        let (add_path_receive, add_path_send) = match &self.add_path {
            Some(mode) => add_path_mode(mode).map_err(what)?,
            None => (false, false),
        };
        Ok(PeerSettings {
            address: self.address,
            asn: self.asn.value().map_err(what)?,
            passive: self.passive,
            password: self.password.clone(),
            rr_client: self.rr_client,
            hold_time: Duration::from_secs(self.hold.unwrap_or(90)),
            keepalive: self.keepalive.map(Duration::from_secs),
            multihop: self.multihop,
            graceful_restart: self.gr.map(Duration::from_secs),
            local_address: self.local,
            description: self.description.clone(),
            family: None,
            next_hop_self: self.next_hop_self,
            policy: self.policy().map_err(what)?,
            ttl_security: self.ttl_security,
            other_next_hop: self.other_next_hop,
            port: match self.port {
                Some(0) => return Err(what("port 0 is not a TCP port".into())),
                Some(p) => p,
                None => BGP_PORT,
            },
            add_path_receive,
            add_path_send,
        })
    }

    fn policy(&self) -> Result<Policy, String> {
        let rules = |list: &[RuleEntry], what: &str| {
            list.iter()
                .enumerate()
                .map(|(i, r)| r.rule().map_err(|e| format!("{what} rule {}: {e}", i + 1)))
                .collect::<Result<Vec<_>, _>>()
        };
        let action = max_prefix_action(self.max_prefix_action.as_deref())?;
        if self.max_prefix.is_none() && self.max_prefix_action.is_some() {
            return Err("max_prefix_action needs max_prefix".into());
        }
        Ok(Policy {
            import: rules(&self.import, "import")?,
            export: rules(&self.export, "export")?,
            max_prefix: self.max_prefix.map(|limit| MaxPrefix { limit, action }),
        })
    }
}

impl AnnounceEntry {
    /// The route with its large communities.
    pub fn route(&self) -> Result<(LocalRoute, Vec<LargeCommunity>), String> {
        let what = |e: String| format!("announce {}: {e}", self.prefix);
        if let Some(nh) = self.next_hop {
            if nh.is_ipv4() != self.prefix.addr().is_ipv4() {
                return Err(what(format!("next hop {nh} of another family")));
            }
        }
        let communities = self
            .communities
            .iter()
            .map(|c| parse_community(c))
            .collect::<Result<_, _>>()
            .map_err(what)?;
        let large = self
            .large_communities
            .iter()
            .map(|c| parse_large(c))
            .collect::<Result<_, _>>()
            .map_err(what)?;
        Ok((
            LocalRoute {
                prefix: self.prefix.trunc(),
                next_hop: self.next_hop,
                communities,
            },
            large,
        ))
    }
}

/// Merges the flags over the file (if any) and fills in the defaults.
pub fn resolve(flags: &Overrides, file: Option<&ConfigFile>) -> Result<DaemonSettings, String> {
    let empty = ConfigFile::default();
    let file = file.unwrap_or(&empty);
    let asn = match (flags.asn, &file.asn) {
        (Some(a), _) => a,
        (None, Some(a)) => a.value().map_err(|e| format!("asn: {e}"))?,
        (None, None) => return Err("the AS is missing: --asn or asn in the file".into()),
    };
    let router_id = flags
        .router_id
        .or(file.router_id)
        .ok_or("the router id is missing: --router-id or router_id in the file")?;
    let listen = if !flags.listen.is_empty() {
        flags.listen.clone()
    } else if !file.listen.is_empty() {
        file.listen.clone()
    } else {
        vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), BGP_PORT),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), BGP_PORT),
        ]
    };
    let mut peers: Vec<PeerSettings> = file
        .peer
        .iter()
        .map(PeerEntry::settings)
        .collect::<Result<_, _>>()?;
    for p in &flags.peers {
        match peers.iter_mut().find(|q| q.address == p.address) {
            Some(q) => *q = p.clone(),
            None => peers.push(p.clone()),
        }
    }
    let mut announce: Vec<(LocalRoute, Vec<LargeCommunity>)> = file
        .announce
        .iter()
        .map(AnnounceEntry::route)
        .collect::<Result<_, _>>()?;
    for a in &flags.announce {
        match announce.iter_mut().find(|b| b.0.prefix == a.0.prefix) {
            Some(b) => *b = a.clone(),
            None => announce.push(a.clone()),
        }
    }
    let fib = flags.fib.or(file.fib).unwrap_or(true).then(|| FibSettings {
        table: flags
            .fib_table
            .or(file.fib_table)
            .unwrap_or(crate::fib::DEFAULT_TABLE),
        protocol: flags
            .fib_protocol
            .or(file.fib_protocol)
            .unwrap_or(crate::fib::DEFAULT_PROTOCOL),
        scan: Some(
            flags
                .fib_scan
                .or(file.fib_scan)
                .unwrap_or(super::DEFAULT_FIB_SCAN),
        )
        .filter(|s| *s > 0)
        .map(Duration::from_secs),
    });
    let graceful_restart = flags
        .graceful_restart
        .or(file.graceful_restart)
        .map(Duration::from_secs)
        .or_else(|| peers.iter().filter_map(|p| p.graceful_restart).max());
    Ok(DaemonSettings {
        speaker: SpeakerConfig {
            asn,
            router_id,
            cluster_id: flags.cluster_id.or(file.cluster_id),
            listen,
            fib,
            ecmp: flags.ecmp.or(file.ecmp).unwrap_or(1).max(1),
            graceful_restart,
        },
        peers,
        announce,
        control: flags
            .control
            .clone()
            .or_else(|| file.control.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL)),
        metrics: flags.metrics.or(file.metrics),
    })
}

/// The settings that differ between `old` and `new` and that only a restart applies (a reload changes
/// peers and announced routes only).
pub fn restart_only_changes(old: &DaemonSettings, new: &DaemonSettings) -> Vec<&'static str> {
    let (a, b) = (&old.speaker, &new.speaker);
    let mut v = Vec::new();
    if a.asn != b.asn {
        v.push("asn");
    }
    if a.router_id != b.router_id {
        v.push("router_id");
    }
    if a.cluster_id != b.cluster_id {
        v.push("cluster_id");
    }
    if a.listen != b.listen {
        v.push("listen");
    }
    if a.fib != b.fib {
        v.push("fib");
    }
    if a.ecmp != b.ecmp {
        v.push("ecmp");
    }
    if a.graceful_restart != b.graceful_restart {
        v.push("graceful_restart");
    }
    if old.control != new.control {
        v.push("control");
    }
    if old.metrics != new.metrics {
        v.push("metrics");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speaker::spec::{parse_announce, parse_peer};

    const FILE: &str = r#"
asn = "1.10"
router_id = "10.250.0.11"
cluster_id = "10.250.0.1"
listen = ["10.250.0.11:179"]
fib_table = 100
fib_scan = 5
ecmp = 4
metrics = "127.0.0.1:9179"

[[peer]]
address = "10.250.0.12"
asn = 65002
passive = true
password = "s3cret"
hold = 9
keepalive = 2
multihop = 2
gr = 30
description = "tor"

[[peer]]
address = "fd00:250::13"
asn = 4200000001
rr_client = true
local = "fd00:250::11"

[[announce]]
prefix = "10.65.1.7/24"
next_hop = "10.250.0.11"
communities = ["65001:7"]
large_communities = ["4200000001:1:2"]
"#;

    #[test]
    fn the_file_alone() {
        let s = resolve(&Overrides::default(), Some(&parse(FILE).unwrap())).unwrap();
        assert_eq!(s.speaker.asn, 65546);
        assert_eq!(s.speaker.router_id.to_string(), "10.250.0.11");
        assert_eq!(s.speaker.cluster_id, Some("10.250.0.1".parse().unwrap()));
        assert_eq!(s.speaker.listen.len(), 1);
        assert_eq!(
            s.speaker.fib,
            Some(FibSettings {
                table: 100,
                protocol: 186,
                scan: Some(Duration::from_secs(5)),
            })
        );
        assert_eq!(s.speaker.ecmp, 4);
        // The longest gr= of the peers.
        assert_eq!(s.speaker.graceful_restart, Some(Duration::from_secs(30)));
        assert_eq!(s.control, PathBuf::from(DEFAULT_CONTROL));
        assert_eq!(s.metrics.unwrap().to_string(), "127.0.0.1:9179");
        let want = parse_peer(
            "10.250.0.12,as=65002,passive,password=s3cret,hold=9,keepalive=2,multihop=2,gr=30,description=tor",
        )
        .unwrap();
        assert_eq!(s.peers[0], want);
        assert_eq!(
            s.peers[1],
            parse_peer("fd00:250::13,as=4200000001,rr-client,local=fd00:250::11").unwrap()
        );
        let (r, large) = &s.announce[0];
        assert_eq!(r.prefix.to_string(), "10.65.1.0/24");
        assert_eq!(r.communities, vec![(65001 << 16) | 7]);
        assert_eq!(large.len(), 1);
    }

    #[test]
    fn flags_override_the_file() {
        let file = parse(FILE).unwrap();
        let flags = Overrides {
            asn: Some(65001),
            fib: Some(false),
            ecmp: Some(2),
            control: Some("/tmp/x.sock".into()),
            peers: vec![
                parse_peer("10.250.0.12,as=65003").unwrap(),
                parse_peer("10.250.0.14,as=65004").unwrap(),
            ],
            announce: vec![parse_announce("10.65.1.0/24").unwrap()],
            ..Overrides::default()
        };
        let s = resolve(&flags, Some(&file)).unwrap();
        assert_eq!((s.speaker.asn, s.speaker.ecmp), (65001, 2));
        assert_eq!(s.speaker.fib, None);
        assert_eq!(s.control, PathBuf::from("/tmp/x.sock"));
        let addrs: Vec<String> = s.peers.iter().map(|p| p.address.to_string()).collect();
        assert_eq!(addrs, ["10.250.0.12", "fd00:250::13", "10.250.0.14"]);
        assert_eq!(s.peers[0].asn, 65003);
        assert!(!s.peers[0].passive, "the flag's peer replaces the file's");
        assert_eq!(s.announce.len(), 1);
        assert_eq!(s.announce[0].0.next_hop, None);
        // No file: the defaults.
        let bare = Overrides {
            asn: Some(65001),
            router_id: Some("10.250.0.11".parse().unwrap()),
            ..Overrides::default()
        };
        let s = resolve(&bare, None).unwrap();
        assert_eq!(s.speaker.listen.len(), 2);
        assert_eq!(s.speaker.fib, Some(FibSettings::default()));
        assert_eq!(s.speaker.fib.unwrap().scan, Some(Duration::from_secs(30)));
        assert_eq!((s.speaker.ecmp, s.speaker.graceful_restart), (1, None));
        // A scan interval of 0 turns the kernel check off.
        let off = Overrides {
            fib_scan: Some(0),
            ..bare
        };
        assert_eq!(resolve(&off, None).unwrap().speaker.fib.unwrap().scan, None);
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        for (text, says) in [
            ("asn = 1\nrouter_id = \"x\"", "router_id"),
            ("asn = 1\nrouter_ids = \"10.0.0.1\"", "router_ids"),
            ("[[peer]]\naddress = \"10.0.0.1\"", "asn"),
            (
                "[[peer]]\naddress = \"10.0.0.1\"\nasn = 1\nbogus = 2",
                "bogus",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
        let no_asn = parse("router_id = \"10.0.0.1\"").unwrap();
        assert!(resolve(&Overrides::default(), Some(&no_asn))
            .unwrap_err()
            .contains("AS is missing"));
        let zero =
            parse("asn = 1\nrouter_id = \"10.0.0.1\"\n[[peer]]\naddress = \"10.0.0.2\"\nasn = 0")
                .unwrap();
        assert!(resolve(&Overrides::default(), Some(&zero)).is_err());
        let fam = parse("asn = 1\nrouter_id = \"10.0.0.1\"\n[[announce]]\nprefix = \"10.65.0.0/24\"\nnext_hop = \"fd00::1\"").unwrap();
        assert!(resolve(&Overrides::default(), Some(&fam))
            .unwrap_err()
            .contains("another family"));
        let comm = parse("asn = 1\nrouter_id = \"10.0.0.1\"\n[[announce]]\nprefix = \"10.65.0.0/24\"\ncommunities = [\"70000:1\"]").unwrap();
        assert!(resolve(&Overrides::default(), Some(&comm)).is_err());
        // Policy mistakes name the peer, the rule and the value.
        for (rule, says) in [
            ("prefixes = [\"10.0.0.0/8 le 40\"]", "10.0.0.0/8 le 40"),
            ("communities = [\"1:2:3\"]", "1:2:3"),
            ("action = \"drop\"", "drop"),
            (
                "action = \"reject\"\nset_local_pref = 5",
                "cannot also change",
            ),
            ("add_large_communities = [\"1:2\"]", "1:2"),
        ] {
            let text = format!(
                "asn = 1\nrouter_id = \"10.0.0.1\"\n[[peer]]\naddress = \"10.0.0.2\"\nasn = 2\n\
                 [[peer.export]]\nprefixes = [\"10.0.0.0/8\"]\n[[peer.export]]\n{rule}"
            );
            let e = resolve(&Overrides::default(), Some(&parse(&text).unwrap())).unwrap_err();
            assert!(
                e.contains("peer 10.0.0.2") && e.contains("export rule 2") && e.contains(says),
                "{rule}: {e}"
            );
        }
        let action_alone = parse("asn = 1\nrouter_id = \"10.0.0.1\"\n[[peer]]\naddress = \"10.0.0.2\"\nasn = 2\nmax_prefix_action = \"warn\"").unwrap();
        assert!(resolve(&Overrides::default(), Some(&action_alone))
            .unwrap_err()
            .contains("needs max_prefix"));
    }

    #[test]
    fn per_peer_policy_from_the_file() {
        let text = r#"
asn = 65001
router_id = "10.0.0.1"

[[peer]]
address = "10.0.0.2"
asn = 65002
next_hop_self = true
add_path = "send"
max_prefix = 1000
max_prefix_action = "warn"

[[peer.import]]
prefixes = ["10.96.0.0/12 le 32"]
communities = ["65002:666"]
action = "reject"

[[peer.import]]
prefixes = ["10.96.0.0/12 ge 24 le 32", "fd00::/8 le 128"]
set_local_pref = 200
add_communities = ["65001:1"]

[[peer.export]]
large_communities = ["65001:0:1"]
remove_large_communities = ["65001:0:1"]
add_large_communities = ["65001:0:2"]
remove_communities = ["65001:1"]
next_hop_self = true
"#;
        let s = resolve(&Overrides::default(), Some(&parse(text).unwrap())).unwrap();
        let p = &s.peers[0];
        assert!(p.next_hop_self && p.add_path_send && !p.add_path_receive);
        assert_eq!(
            p.policy.max_prefix,
            Some(MaxPrefix {
                limit: 1000,
                action: MaxPrefixAction::Warn
            })
        );
        let range = |s: &str| s.parse::<PrefixRange>().unwrap();
        let large = |s: &str| parse_large(s).unwrap();
        assert_eq!(
            p.policy.import,
            [
                Rule::reject(Match {
                    prefixes: vec![range("10.96.0.0/12 le 32")],
                    communities: vec![(65002 << 16) | 666],
                    large_communities: vec![],
                }),
                Rule::accept(
                    Match {
                        prefixes: vec![range("10.96.0.0/12 ge 24 le 32"), range("fd00::/8 le 128")],
                        ..Match::default()
                    },
                    vec![
                        Modify::SetLocalPref(200),
                        Modify::AddCommunity((65001 << 16) | 1)
                    ],
                ),
            ]
        );
        assert_eq!(
            p.policy.export,
            [Rule::accept(
                Match {
                    large_communities: vec![large("65001:0:1")],
                    ..Match::default()
                },
                vec![
                    Modify::RemoveCommunity((65001 << 16) | 1),
                    Modify::AddLargeCommunity(large("65001:0:2")),
                    Modify::RemoveLargeCommunity(large("65001:0:1")),
                    Modify::NextHopSelf,
                ],
            )]
        );
        // No policy written: accept everything, no limit.
        let bare =
            parse("asn = 1\nrouter_id = \"10.0.0.1\"\n[[peer]]\naddress = \"10.0.0.2\"\nasn = 2")
                .unwrap();
        let s = resolve(&Overrides::default(), Some(&bare)).unwrap();
        assert_eq!(s.peers[0].policy, Policy::default());
        assert!(!s.peers[0].next_hop_self);
    }

    #[test]
    fn restart_only_settings_are_named() {
        let file = parse(FILE).unwrap();
        let a = resolve(&Overrides::default(), Some(&file)).unwrap();
        let mut changed = file.clone();
        changed.ecmp = Some(1);
        changed.peer.pop();
        let b = resolve(&Overrides::default(), Some(&changed)).unwrap();
        assert_eq!(restart_only_changes(&a, &b), vec!["ecmp"]);
        assert!(restart_only_changes(&a, &a).is_empty());
    }

    /// The whole-document parse, as `parse` was before it split files.
    fn whole(text: &str) -> Result<ConfigFile, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn announce_tables_are_parsed_one_at_a_time_when_the_lines_are_plain() {
        let text = "asn = 65001 # ours\r\nrouter_id = \"10.0.0.1\"\n\n[[announce]] # first\nprefix = \
\"10.1.0.0/24\"\ncommunities = [\n  \"65001:1\",\n]\n\n[[peer]]\naddress = \"10.0.0.2\"\nasn = 65002\n\
[[ peer.import ]]\naction = \"accept\"\n[[announce]]\nprefix = \"10.2.0.0/24\"\nnext_hop = \"10.0.0.9\"\n";
        let (rest, tables) = split_announces(text).expect("plain lines");
        assert_eq!(tables.len(), 2);
        assert!(!rest.contains("10.1.0.0") && rest.contains("[[ peer.import ]]"));
        let file = parse(text).unwrap();
        assert_eq!(Ok(&file), whole(text).as_ref());
        assert_eq!(file.announce.len(), 2);
        assert_eq!(file.peer.len(), 1);
    }

    #[test]
    fn doubtful_lines_are_left_to_the_whole_parse() {
        for text in [
            "asn = 1\nx = \"\"\"\n[[announce]]\n\"\"\"\n",
            "asn = 1\nx = \'\'\'\n[[announce]]\n\'\'\'\n",
            "listen = [\n[\"a\"]\n]\n",
            "[\"announce\"]\nprefix = \"10.0.0.0/8\"\n",
            "[[announce]]\nprefix = \"10.0.0.0/8\"\n[announce.x]\n",
            "[announce]\nprefix = \"10.0.0.0/8\"\n",
        ] {
            assert!(split_announces(text).is_none(), "{text}");
            assert_eq!(parse(text), whole(text), "{text}");
        }
    }

    #[test]
    fn errors_in_a_table_name_its_line_in_the_whole_file() {
        let text =
            "asn = 65001\n[[announce]]\nprefix = \"10.0.0.0/8\"\n[[announce]]\nprefix = \"nope\"\n";
        let e = parse(text).unwrap_err();
        assert_eq!(Err(e.clone()), whole(text));
        assert!(e.contains("line 5"), "{e}");
        // An inline `announce` array beside tables is the whole parse's error too.
        let text =
            "announce = [{ prefix = \"10.0.0.0/8\" }]\n[[announce]]\nprefix = \"10.1.0.0/16\"\n";
        assert!(parse(text).is_err());
        assert_eq!(parse(text), whole(text));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5000))]
        /// Files made of lines that are headers, keys, array pieces and comments, plain and tricky alike:
        /// parsing them split always gives what parsing them whole gives (the value or the error).
        #[test]
        fn a_split_parse_is_the_whole_parse(lines in proptest::collection::vec(0usize..23, 0..40)) {
            const LINES: [&str; 23] = [
                "[[announce]]",
                "[[announce]] # t",
                "prefix = \"10.0.0.0/8\"",
                "prefix = \"10.1.0.0/16\"",
                "next_hop = \"10.0.0.1\"",
                "communities = [",
                "\"65001:1\",",
                "]",
                "[1]",
                "[[1]]",
                "[[peer]]",
                "address = \"10.0.0.2\"",
                "asn = 65002",
                "[[peer.import]]",
                "action = \"accept\"",
                "asn = 65001",
                "router_id = \"10.0.0.1\"",
                "# [[announce]]",
                "[announce]",
                "announce = []",
                "\"announce\".prefix = \"10.0.0.0/8\"",
                "x = \"\"\"",
                "",
            ];
            let text: String = lines.iter().map(|&i| format!("{}\n", LINES[i])).collect();
            proptest::prop_assert_eq!(parse(&text), whole(&text));
        }
    }
}
