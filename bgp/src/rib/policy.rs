//! Per-peer policy: import and export rules, and the max-prefix limit.
//!
//! Role: decide whether a route passes and how its attributes change.
//! Inputs: a prefix, its attributes, and the rules: each [`Rule`] has a [`Match`] (prefix ranges such as
//! `10.65.0.0/16 le 32`, standard and large communities; every non-empty list must match) and, when it
//! matches, modifications ([`Modify`]) and a [`Verdict`]. The first matching rule decides; with no match the
//! route is accepted unchanged (the default: no policy = accept everything).
//! Outputs: the index of the matching rule ([`first_match`], so callers can cache per rule) and the modified
//! attributes or a rejection ([`apply`]).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::RouteAttrs;
use crate::wire::{LargeCommunity, NextHop, Prefix};

/// A prefix with a range of lengths: `10.65.0.0/16` (exactly /16), `… le 32` (/16 to /32), `… ge 24`
/// (/24 to the maximum), `… ge 24 le 28`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrefixRange {
    /// The covering prefix.
    pub prefix: Prefix,
    /// Minimum length (default: the prefix's own).
    pub ge: Option<u8>,
    /// Maximum length (default: the prefix's own, or the address size when `ge` is given).
    pub le: Option<u8>,
}

impl PrefixRange {
    /// Whether `p` lies in the range.
    pub fn matches(&self, p: &Prefix) -> bool {
        let max = if p.afi_safi() == crate::wire::AfiSafi::IPV4_UNICAST {
            32
        } else {
            128
        };
        let lo = self.ge.unwrap_or(self.prefix.len());
        let hi = self.le.unwrap_or(if self.ge.is_some() {
            max
        } else {
            self.prefix.len()
        });
        p.afi_safi() == self.prefix.afi_safi()
            && p.len() >= self.prefix.len()
            && (lo..=hi).contains(&p.len())
            && Prefix::new(p.addr(), self.prefix.len()) == Some(self.prefix)
    }
}

/// A malformed prefix range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad prefix range {0:?}: expected ADDR/LEN [ge N] [le N]")]
pub struct BadPrefixRange(pub String);

impl FromStr for PrefixRange {
    type Err = BadPrefixRange;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadPrefixRange(s.to_string());
        let mut words = s.split_whitespace();
        let (addr, len) = words
            .next()
            .and_then(|p| p.split_once('/'))
            .ok_or_else(bad)?;
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let prefix = Prefix::new(addr, len.parse().map_err(|_| bad())?).ok_or_else(bad)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let (mut ge, mut le) = (None, None);
        while let Some(w) = words.next() {
            let n: u8 = words.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
            if n > max || n < prefix.len() {
                return Err(bad());
            }
            match w {
                "ge" if ge.is_none() => ge = Some(n),
                "le" if le.is_none() => le = Some(n),
                _ => return Err(bad()),
            }
        }
        if matches!((ge, le), (Some(g), Some(l)) if g > l) {
            return Err(bad());
        }
        Ok(PrefixRange { prefix, ge, le })
    }
}

impl fmt::Display for PrefixRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.prefix)?;
        if let Some(g) = self.ge {
            write!(f, " ge {g}")?;
        }
        if let Some(l) = self.le {
            write!(f, " le {l}")?;
        }
        Ok(())
    }
}

/// What a rule matches; an empty list matches everything, a non-empty one needs one of its entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    /// Prefix ranges.
    pub prefixes: Vec<PrefixRange>,
    /// Standard communities (the route carries one of them).
    pub communities: Vec<u32>,
    /// Large communities (the route carries one of them).
    pub large_communities: Vec<LargeCommunity>,
}

impl Match {
    /// Whether the route matches.
    pub fn matches(&self, prefix: &Prefix, ra: &RouteAttrs) -> bool {
        let a = &ra.attrs;
        (self.prefixes.is_empty() || self.prefixes.iter().any(|r| r.matches(prefix)))
            && (self.communities.is_empty()
                || self.communities.iter().any(|c| a.communities.contains(c)))
            && (self.large_communities.is_empty()
                || self
                    .large_communities
                    .iter()
                    .any(|c| a.large_communities.contains(c)))
    }
}

/// An attribute change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Modify {
    /// Set LOCAL_PREF (on export it only reaches iBGP peers: eBGP export strips it).
    SetLocalPref(u32),
    /// Add a standard community.
    AddCommunity(u32),
    /// Remove a standard community.
    RemoveCommunity(u32),
    /// Add a large community.
    AddLargeCommunity(LargeCommunity),
    /// Remove a large community.
    RemoveLargeCommunity(LargeCommunity),
    /// Next hop = our address towards the peer on export; the peer's address on import.
    NextHopSelf,
}

/// Accept or reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Accept (after the modifications).
    Accept,
    /// Reject.
    Reject,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// When it applies.
    pub matches: Match,
    /// Changes applied on accept, in order.
    pub modify: Vec<Modify>,
    /// The verdict.
    pub verdict: Verdict,
}

impl Rule {
    /// Accept what `matches` matches, with these changes.
    pub fn accept(matches: Match, modify: Vec<Modify>) -> Self {
        Rule {
            matches,
            modify,
            verdict: Verdict::Accept,
        }
    }

    /// Reject what `matches` matches.
    pub fn reject(matches: Match) -> Self {
        Rule {
            matches,
            modify: Vec::new(),
            verdict: Verdict::Reject,
        }
    }
}

/// What to do when a peer exceeds its prefix limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaxPrefixAction {
    /// Report and keep going.
    Warn,
    /// Report; the owner tears the session down (RFC 4486 Cease subcode 1).
    TearDown,
}

/// A limit on the routes accepted from a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MaxPrefix {
    /// The number of accepted routes above which the action triggers.
    pub limit: usize,
    /// The action.
    pub action: MaxPrefixAction,
}

/// A peer's policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Rules applied to routes received from the peer.
    pub import: Vec<Rule>,
    /// Rules applied to routes sent to the peer.
    pub export: Vec<Rule>,
    /// The max-prefix limit.
    pub max_prefix: Option<MaxPrefix>,
}

/// The index of the first rule matching the route, if any.
pub fn first_match(rules: &[Rule], prefix: &Prefix, ra: &RouteAttrs) -> Option<usize> {
    rules.iter().position(|r| r.matches.matches(prefix, ra))
}

/// The route after rule `rule` (`None`: no rule matched, accept unchanged); `None` when rejected.
/// `self_next_hop` is the address [`Modify::NextHopSelf`] sets (left unchanged when `None`).
pub fn apply(
    rules: &[Rule],
    rule: Option<usize>,
    ra: &RouteAttrs,
    self_next_hop: Option<NextHop>,
) -> Option<RouteAttrs> {
    let Some(rule) = rule.and_then(|i| rules.get(i)) else {
        return Some(ra.clone());
    };
    if rule.verdict == Verdict::Reject {
        return None;
    }
    let mut out = ra.clone();
    let a = &mut out.attrs;
    for m in &rule.modify {
        match *m {
            Modify::SetLocalPref(lp) => a.local_pref = Some(lp),
            Modify::AddCommunity(c) => {
                if !a.communities.contains(&c) {
                    a.communities.push(c);
                }
            }
            Modify::RemoveCommunity(c) => a.communities.retain(|x| *x != c),
            Modify::AddLargeCommunity(c) => {
                if !a.large_communities.contains(&c) {
                    a.large_communities.push(c);
                }
            }
            Modify::RemoveLargeCommunity(c) => a.large_communities.retain(|x| *x != c),
            Modify::NextHopSelf => {
                if self_next_hop.is_some() {
                    out.next_hop = self_next_hop;
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        let (a, l) = s.split_once('/').unwrap();
        Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap()
    }

    #[test]
    fn prefix_ranges() {
        let r: PrefixRange = "10.65.0.0/16 le 32".parse().unwrap();
        assert!(r.matches(&p("10.65.0.0/16")));
        assert!(r.matches(&p("10.65.3.4/32")));
        assert!(!r.matches(&p("10.66.0.0/16")));
        assert!(!r.matches(&p("10.0.0.0/8")));
        let exact: PrefixRange = "10.65.0.0/16".parse().unwrap();
        assert!(exact.matches(&p("10.65.0.0/16")));
        assert!(!exact.matches(&p("10.65.1.0/24")));
        let ge: PrefixRange = "10.0.0.0/8 ge 24".parse().unwrap();
        assert!(!ge.matches(&p("10.1.0.0/16")));
        assert!(ge.matches(&p("10.1.2.0/24")));
        assert!(ge.matches(&p("10.1.2.3/32")));
        let both: PrefixRange = "10.0.0.0/8 ge 24 le 28".parse().unwrap();
        assert!(both.matches(&p("10.1.2.16/28")));
        assert!(!both.matches(&p("10.1.2.3/32")));
        assert_eq!(both.to_string(), "10.0.0.0/8 ge 24 le 28");
        let v6: PrefixRange = "2001:db8::/32 le 128".parse().unwrap();
        assert!(v6.matches(&p("2001:db8::1/128")));
        assert!(!v6.matches(&p("10.0.0.0/8")));
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0.0/8 le 7",
            "10.0.0.0/8 ge 24 le 20",
            "x/8",
            "10.0.0.0/8 lt 9",
        ] {
            assert!(bad.parse::<PrefixRange>().is_err(), "{bad}");
        }
    }
}
