//! The daemon's compact command-line specs for peers and announced routes. Pure.
//!
//! Role: parse `--peer <IP>,as=<ASN>[,passive][,password=<S>][,rr-client][,hold=<S>][,multihop=<N>]
//! [,gr=<S>][,local=<IP>][,description=<TEXT>][,next-hop-self][,ttl-security][,add-path=receive|send|both]
//! [,other-next-hop=<IP>][,port=<N>][,max-prefix=<N>]
//! [,max-prefix-action=teardown|warn]` into [`PeerSettings`] and
//! `--announce <CIDR>[,next-hop=<IP>][,community=<A:B>]…[,large-community=<A:B:C>]…` into a
//! [`LocalRoute`] with its large communities.
//! Inputs: the spec text. Outputs: the settings, or an error naming the bad part.

use std::time::Duration;

use super::config::max_prefix_action;
use super::{LargeCommunity, LocalRoute, PeerSettings};
use crate::rib::{MaxPrefix, MaxPrefixAction};

/// Parses a `--peer` spec.
pub fn parse_peer(spec: &str) -> Result<PeerSettings, String> {
    let mut parts = spec.split(',');
    let addr = parts.next().unwrap_or_default().trim();
    let mut p = PeerSettings {
        address: addr
            .parse()
            .map_err(|_| format!("peer {spec:?}: {addr:?} is not an IP address"))?,
        ..PeerSettings::default()
    };
    let mut asn = None;
    let mut action_given = None;
    for part in parts {
        let (key, value) = match part.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v)),
            None => (part.trim(), None),
        };
        let need = || value.ok_or_else(|| format!("peer {spec:?}: {key} needs a value"));
        let num = |v: &str| -> Result<u64, String> {
            v.trim()
                .parse()
                .map_err(|_| format!("peer {spec:?}: {key}={v} is not a number"))
        };
        match key {
            "as" => asn = Some(parse_asn(need()?).map_err(|e| format!("peer {spec:?}: {e}"))?),
            "passive" => p.passive = true,
            "rr-client" => p.rr_client = true,
            "password" => p.password = Some(need()?.to_string()),
            "hold" => p.hold_time = Duration::from_secs(num(need()?)?),
            "keepalive" => p.keepalive = Some(Duration::from_secs(num(need()?)?)),
            "multihop" => {
                let n = num(need()?)?;
                p.multihop = Some(
                    u8::try_from(n).map_err(|_| format!("peer {spec:?}: multihop {n} > 255"))?,
                );
            }
            "gr" => p.graceful_restart = Some(Duration::from_secs(num(need()?)?)),
            "local" => {
                let v = need()?;
                p.local_address = Some(
                    v.parse()
                        .map_err(|_| format!("peer {spec:?}: local={v} is not an IP address"))?,
                );
            }
            "description" => p.description = need()?.to_string(),
            "next-hop-self" => p.next_hop_self = true,
            "ttl-security" => p.ttl_security = true,
            "port" => {
                let n = num(need()?)?;
                p.port = u16::try_from(n)
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("peer {spec:?}: port {n} is not a TCP port"))?;
            }
            "other-next-hop" => {
                let v = need()?;
                p.other_next_hop = Some(v.trim().parse().map_err(|_| {
                    format!("peer {spec:?}: other-next-hop={v} is not an IP address")
                })?);
            }
            "add-path" => {
                (p.add_path_receive, p.add_path_send) =
                    add_path_mode(need()?.trim()).map_err(|e| format!("peer {spec:?}: {e}"))?;
            }
            "max-prefix" => {
                let limit = usize::try_from(num(need()?)?).unwrap_or(usize::MAX);
                p.policy.max_prefix = Some(MaxPrefix {
                    limit,
                    action: MaxPrefixAction::TearDown,
                });
            }
            "max-prefix-action" => {
                let action = max_prefix_action(Some(need()?.trim()))
                    .map_err(|e| format!("peer {spec:?}: {e}"))?;
                action_given = Some(action);
            }
            other => return Err(format!("peer {spec:?}: unknown option {other:?}")),
        }
    }
    p.asn = asn.ok_or_else(|| format!("peer {spec:?}: as=<ASN> is required"))?;
    if let Some(action) = action_given {
        let m = p
            .policy
            .max_prefix
            .as_mut()
            .ok_or_else(|| format!("peer {spec:?}: max-prefix-action needs max-prefix=<N>"))?;
        m.action = action;
    }
    Ok(p)
}

/// ADD-PATH `receive`, `send` or `both`, as (receive, send).
pub fn add_path_mode(s: &str) -> Result<(bool, bool), String> {
    match s {
        "receive" => Ok((true, false)),
        "send" => Ok((false, true)),
        "both" => Ok((true, true)),
        other => Err(format!(
            "add-path {other:?}: expected \"receive\", \"send\" or \"both\""
        )),
    }
}

/// An AS number: plain (`4200000001`) or asdot (`64086.59905`).
pub fn parse_asn(s: &str) -> Result<u32, String> {
    let s = s.trim();
    let n = match s.split_once('.') {
        Some((hi, lo)) => {
            let hi: u16 = hi.parse().map_err(|_| format!("bad AS {s:?}"))?;
            let lo: u16 = lo.parse().map_err(|_| format!("bad AS {s:?}"))?;
            (u32::from(hi) << 16) | u32::from(lo)
        }
        None => s.parse().map_err(|_| format!("bad AS {s:?}"))?,
    };
    if n == 0 {
        return Err("AS 0 is not a valid AS".into());
    }
    Ok(n)
}

/// A standard community `A:B`.
pub fn parse_community(s: &str) -> Result<u32, String> {
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| format!("community {s:?} is not A:B"))?;
    let a: u16 = a
        .trim()
        .parse()
        .map_err(|_| format!("community {s:?}: bad A"))?;
    let b: u16 = b
        .trim()
        .parse()
        .map_err(|_| format!("community {s:?}: bad B"))?;
    Ok((u32::from(a) << 16) | u32::from(b))
}

/// A large community `A:B:C`.
pub fn parse_large(s: &str) -> Result<LargeCommunity, String> {
    let v: Vec<&str> = s.split(':').collect();
    let n = |x: &str| -> Result<u32, String> {
        x.trim()
            .parse()
            .map_err(|_| format!("large community {s:?} is not A:B:C"))
    };
    match v.as_slice() {
        [a, b, c] => Ok(LargeCommunity {
            global_admin: n(a)?,
            local1: n(b)?,
            local2: n(c)?,
        }),
        _ => Err(format!("large community {s:?} is not A:B:C")),
    }
}

/// Parses an `--announce` spec.
pub fn parse_announce(spec: &str) -> Result<(LocalRoute, Vec<LargeCommunity>), String> {
    let mut parts = spec.split(',');
    let cidr = parts.next().unwrap_or_default().trim();
    let prefix: ipnet::IpNet = cidr
        .parse()
        .map_err(|_| format!("announce {spec:?}: {cidr:?} is not a CIDR"))?;
    let mut route = LocalRoute {
        prefix: prefix.trunc(),
        next_hop: None,
        communities: Vec::new(),
    };
    let mut large = Vec::new();
    for part in parts {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("announce {spec:?}: {part:?} is not key=value"))?;
        match key.trim() {
            "next-hop" => {
                let ip: std::net::IpAddr = value
                    .parse()
                    .map_err(|_| format!("announce {spec:?}: bad next hop {value:?}"))?;
                if ip.is_ipv4() != prefix.addr().is_ipv4() {
                    return Err(format!("announce {spec:?}: next hop of another family"));
                }
                route.next_hop = Some(ip);
            }
            "community" => route.communities.push(parse_community(value)?),
            "large-community" => large.push(parse_large(value)?),
            other => return Err(format!("announce {spec:?}: unknown option {other:?}")),
        }
    }
    Ok((route, large))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_specs() {
        let p = parse_peer("10.250.0.12,as=4200000001,passive,password=s3cret,rr-client,hold=9,multihop=3,gr=30,description=tor")
            .unwrap();
        assert_eq!(p.address.to_string(), "10.250.0.12");
        assert_eq!(p.asn, 4_200_000_001);
        assert!(p.passive && p.rr_client);
        assert_eq!(p.password.as_deref(), Some("s3cret"));
        assert_eq!(p.hold_time, Duration::from_secs(9));
        assert_eq!(p.multihop, Some(3));
        assert_eq!(p.graceful_restart, Some(Duration::from_secs(30)));
        assert_eq!(p.description, "tor");
        let plain = parse_peer("fd00:250::12,as=65002").unwrap();
        assert_eq!(plain.hold_time, Duration::from_secs(90));
        assert!(!plain.passive);
        for bad in [
            "x,as=1",
            "10.0.0.1",
            "10.0.0.1,as=0",
            "10.0.0.1,as=1,hold=x",
            "10.0.0.1,as=1,bogus",
            "10.0.0.1,as=1,max-prefix=x",
            "10.0.0.1,as=1,max-prefix-action=warn",
            "10.0.0.1,as=1,max-prefix=5,max-prefix-action=block",
        ] {
            assert!(parse_peer(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_asn("1.10").unwrap(), 65546);

        let limited = parse_peer("10.0.0.1,as=1,next-hop-self,max-prefix=500").unwrap();
        assert!(limited.next_hop_self && !limited.ttl_security);
        assert_eq!(limited.min_ttl(), None);
        let gtsm = parse_peer("10.0.0.1,as=1,ttl-security").unwrap();
        assert_eq!(
            gtsm.min_ttl(),
            Some(255),
            "a direct neighbour: not one hop lost"
        );
        let both = parse_peer("10.0.0.1,as=1,add-path=both").unwrap();
        assert!(both.add_path_receive && both.add_path_send);
        assert_eq!(parse_peer("10.0.0.1,as=1,port=1790").unwrap().port, 1790);
        assert_eq!(parse_peer("10.0.0.1,as=1").unwrap().port, 179);
        assert!(parse_peer("10.0.0.1,as=1,port=0").is_err());
        assert!(parse_peer("10.0.0.1,as=1,port=70000").is_err());
        let nh6 = parse_peer("10.0.0.1,as=1,other-next-hop=fd00::1").unwrap();
        assert_eq!(nh6.other_next_hop, Some("fd00::1".parse().unwrap()));
        assert!(parse_peer("10.0.0.1,as=1,other-next-hop=x").is_err());
        let rx = parse_peer("10.0.0.1,as=1,add-path=receive").unwrap();
        assert!(rx.add_path_receive && !rx.add_path_send);
        assert!(parse_peer("10.0.0.1,as=1,add-path=all").is_err());
        let far = parse_peer("10.0.0.1,as=1,ttl-security,multihop=3").unwrap();
        assert_eq!(
            far.min_ttl(),
            Some(253),
            "three hops away: two routers may lower it"
        );
        let max = limited.policy.max_prefix.unwrap();
        assert_eq!((max.limit, max.action), (500, MaxPrefixAction::TearDown));
        // The action may come before or after the limit.
        let warn = parse_peer("10.0.0.1,as=1,max-prefix-action=warn,max-prefix=5").unwrap();
        assert_eq!(
            warn.policy.max_prefix.unwrap().action,
            MaxPrefixAction::Warn
        );
    }

    #[test]
    fn announce_specs() {
        let (r, l) =
            parse_announce("10.65.1.7/24,next-hop=10.250.0.11,community=65001:7,community=65001:8,large-community=4200000001:1:2")
                .unwrap();
        assert_eq!(r.prefix.to_string(), "10.65.1.0/24");
        assert_eq!(r.next_hop.unwrap().to_string(), "10.250.0.11");
        assert_eq!(r.communities, vec![(65001 << 16) | 7, (65001 << 16) | 8]);
        assert_eq!(l.len(), 1);
        assert!(parse_announce("10.65.1.0/24,next-hop=fd00::1").is_err());
        assert!(parse_announce("10.65.1.0/24,community=70000:1").is_err());
        assert!(parse_announce("nonsense").is_err());
    }
}
