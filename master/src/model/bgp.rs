//! Cluster-wide BGP configuration, BGP peers and session timers.
//!
//! Role: [`BgpConfig`] (default AS 64511, node-to-node mesh on by default, global peers, global timers),
//! [`BgpPeer`] (`{"ip","as_num"}` as the original's `peer_v4/<ip>` values, plus optional per-peer timers,
//! route-reflector-client flag and TCP MD5 password) and [`BgpTimers`] (hold time, keepalive, graceful-restart time, each
//! optional so that a peer overrides only what it sets; tests use short ones).
//!
//! Inputs: API writes. Outputs: validated values and [`BgpTimers::resolve`], the timers a session uses.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{AsNumber, ValidationError};

/// The AS every node uses unless configured otherwise, as in the original.
pub const DEFAULT_AS: u32 = AsNumber::DEFAULT.get();

/// Default hold time (seconds), as BIRD's.
pub const DEFAULT_HOLD_TIME: u16 = 90;
/// Default graceful-restart time (seconds), as BIRD's.
pub const DEFAULT_GRACEFUL_RESTART_TIME: u16 = 120;

/// BGP session timers in seconds; absent means "inherit" (peer → global → default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BgpTimers {
    /// Hold time: 0 (no keepalives) or 3–65535 (RFC 4271).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<u16>,
    /// Keepalive interval: 1–65535 and below the hold time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive: Option<u16>,
    /// Graceful-restart time: 0–4095 (a 12-bit field of the capability, RFC 4724).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_restart_time: Option<u16>,
}

/// The timers a session actually uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedTimers {
    /// Hold time, seconds.
    pub hold_time: u16,
    /// Keepalive, seconds (0 when the hold time is 0).
    pub keepalive: u16,
    /// Graceful-restart time, seconds.
    pub graceful_restart_time: u16,
}

impl BgpTimers {
    /// Check each value and that keepalive is below the hold time when both are set.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(h) = self.hold_time {
            if (1..3).contains(&h) {
                return Err(ValidationError::new(
                    "hold_time",
                    format!("{h} s is too short; BGP allows 0 (no hold timer) or 3–65535 seconds"),
                ));
            }
        }
        if let Some(k) = self.keepalive {
            if k == 0 {
                return Err(ValidationError::new(
                    "keepalive",
                    "must be at least 1 second",
                ));
            }
            if let Some(h) = self.hold_time.filter(|h| *h != 0) {
                if k >= h {
                    return Err(ValidationError::new(
                        "keepalive",
                        format!(
                            "{k} s must be below the hold time ({h} s); a third of it is usual"
                        ),
                    ));
                }
            }
        }
        if let Some(g) = self.graceful_restart_time {
            if g > 4095 {
                return Err(ValidationError::new(
                    "graceful_restart_time",
                    format!("{g} s is above 4095, the most BGP can carry"),
                ));
            }
        }
        Ok(())
    }

    /// Fill the unset values of `self` from `fallback`.
    #[must_use]
    pub fn or(self, fallback: BgpTimers) -> BgpTimers {
        BgpTimers {
            hold_time: self.hold_time.or(fallback.hold_time),
            keepalive: self.keepalive.or(fallback.keepalive),
            graceful_restart_time: self
                .graceful_restart_time
                .or(fallback.graceful_restart_time),
        }
    }

    /// The timers for a session with a peer: the peer's own values, then the global ones, then the
    /// defaults (hold 90 s, keepalive a third of the hold time, graceful restart 120 s). A keepalive
    /// that ends up not below the hold time (e.g. a global 30 s with a peer's 9 s hold) becomes a third
    /// of the hold time.
    pub fn resolve(peer: BgpTimers, global: BgpTimers) -> ResolvedTimers {
        let t = peer.or(global);
        let hold_time = t.hold_time.unwrap_or(DEFAULT_HOLD_TIME);
        let keepalive = match (hold_time, t.keepalive) {
            (0, _) => 0,
            (h, Some(k)) if k < h => k,
            (h, _) => (h / 3).max(1),
        };
        ResolvedTimers {
            hold_time,
            keepalive,
            graceful_restart_time: t
                .graceful_restart_time
                .unwrap_or(DEFAULT_GRACEFUL_RESTART_TIME),
        }
    }
}

/// A BGP peer (global or per node).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BgpPeer {
    /// The peer's address.
    pub ip: IpAddr,
    /// The peer's AS.
    pub as_num: AsNumber,
    /// Per-peer timer overrides.
    #[serde(flatten)]
    pub timers: BgpTimers,
    /// This node reflects routes to the peer (it is our route-reflector client).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rr_client: bool,
    /// The TCP MD5 signature key of the session (RFC 2385). Stored and sent to the nodes, never shown
    /// by the API (listings say `"md5": true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl BgpPeer {
    /// A peer with default timers.
    pub fn new(ip: IpAddr, as_num: AsNumber) -> Self {
        BgpPeer {
            ip,
            as_num,
            timers: BgpTimers::default(),
            rr_client: false,
            password: None,
        }
    }

    /// Check the address is a usable unicast one and the timers.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let ip = self.ip;
        if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::from([255, 255, 255, 255]) {
            return Err(ValidationError::new(
                "ip",
                format!("{ip} is not a unicast address; give the peer's own address"),
            ));
        }
        if let Some(p) = &self.password {
            // The kernel's TCP_MD5SIG_MAXKEYLEN; printable so it can be typed on the switch too.
            if p.is_empty() || p.len() > 80 || !p.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
            {
                return Err(ValidationError::new(
                    "password",
                    format!(
                        "the MD5 password of peer {ip} must be 1–80 printable ASCII characters"
                    ),
                ));
            }
        }
        self.timers
            .validate()
            .map_err(|e| e.within(format!("peer {ip}")))
    }
}

/// Check a list of peers: each valid, no address twice.
pub(crate) fn validate_peers(field: &str, peers: &[BgpPeer]) -> Result<(), ValidationError> {
    for (i, p) in peers.iter().enumerate() {
        p.validate().map_err(|e| e.within(field.to_owned()))?;
        if peers[..i].iter().any(|q| q.ip == p.ip) {
            return Err(ValidationError::new(
                field,
                format!(
                    "peer {} is listed twice; remove it first to change its AS",
                    p.ip
                ),
            ));
        }
    }
    Ok(())
}

/// Cluster-wide BGP settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpConfig {
    /// The AS of nodes that do not set their own.
    #[serde(default = "default_as")]
    pub as_num: AsNumber,
    /// Every node peers with every other (iBGP full mesh).
    #[serde(default = "yes")]
    pub node_mesh: bool,
    /// Peers of every node.
    #[serde(default)]
    pub global_peers: Vec<BgpPeer>,
    /// Timers of every session unless a peer overrides them.
    #[serde(default)]
    pub timers: BgpTimers,
}

fn default_as() -> AsNumber {
    AsNumber::DEFAULT
}

fn yes() -> bool {
    true
}

impl Default for BgpConfig {
    fn default() -> Self {
        BgpConfig {
            as_num: default_as(),
            node_mesh: true,
            global_peers: Vec::new(),
            timers: BgpTimers::default(),
        }
    }
}

impl BgpConfig {
    /// Check peers and timers.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_peers("global_peers", &self.global_peers)?;
        self.timers.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn asn(n: u32) -> AsNumber {
        AsNumber::new(n).unwrap()
    }

    #[test]
    fn defaults_match_original() {
        let c: BgpConfig = serde_json::from_value(json!({})).unwrap();
        assert_eq!(c, BgpConfig::default());
        assert_eq!(c.as_num.get(), 64511);
        assert!(c.node_mesh);
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"as_num": 64511, "node_mesh": true, "global_peers": [], "timers": {}})
        );
    }

    #[test]
    fn peer_json_shape() {
        let p = BgpPeer::new("172.17.8.102".parse().unwrap(), asn(64513));
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"ip": "172.17.8.102", "as_num": 64513})
        );
        let p2: BgpPeer =
            serde_json::from_value(json!({"ip": "172.17.8.102", "as_num": "64513"})).unwrap();
        assert_eq!(p2, p);
        let mut p3 = p.clone();
        p3.timers.hold_time = Some(9);
        p3.rr_client = true;
        assert_eq!(
            serde_json::to_value(&p3).unwrap(),
            json!({"ip": "172.17.8.102", "as_num": 64513, "hold_time": 9, "rr_client": true})
        );
    }

    #[test]
    fn timer_validation() {
        let t = |h, k, g| BgpTimers {
            hold_time: h,
            keepalive: k,
            graceful_restart_time: g,
        };
        assert_eq!(t(Some(9), Some(3), Some(10)).validate(), Ok(()));
        assert_eq!(t(Some(0), Some(3), None).validate(), Ok(()));
        assert_eq!(
            t(Some(2), None, None).validate().unwrap_err().field,
            "hold_time"
        );
        assert_eq!(
            t(None, Some(0), None).validate().unwrap_err().field,
            "keepalive"
        );
        assert_eq!(
            t(Some(9), Some(9), None).validate().unwrap_err().field,
            "keepalive"
        );
        assert_eq!(
            t(None, None, Some(4096)).validate().unwrap_err().field,
            "graceful_restart_time"
        );
    }

    #[test]
    fn timer_resolution() {
        let global = BgpTimers {
            hold_time: Some(90),
            keepalive: Some(30),
            graceful_restart_time: None,
        };
        let peer = BgpTimers {
            hold_time: Some(9),
            ..Default::default()
        };
        let r = BgpTimers::resolve(peer, global);
        assert_eq!(
            (r.hold_time, r.keepalive, r.graceful_restart_time),
            (9, 3, 120)
        );
        let r = BgpTimers::resolve(BgpTimers::default(), BgpTimers::default());
        assert_eq!((r.hold_time, r.keepalive), (90, 30));
        let r = BgpTimers::resolve(
            BgpTimers {
                hold_time: Some(0),
                ..Default::default()
            },
            global,
        );
        assert_eq!(r.keepalive, 0);
        let r = BgpTimers::resolve(
            BgpTimers {
                keepalive: Some(1),
                ..Default::default()
            },
            global,
        );
        assert_eq!((r.hold_time, r.keepalive), (90, 1));
    }

    #[test]
    fn config_validation() {
        let mut c = BgpConfig::default();
        c.global_peers
            .push(BgpPeer::new("10.0.0.1".parse().unwrap(), asn(65000)));
        assert_eq!(c.validate(), Ok(()));
        c.global_peers
            .push(BgpPeer::new("10.0.0.1".parse().unwrap(), asn(65001)));
        assert!(c.validate().unwrap_err().reason.contains("twice"));
        c.global_peers.pop();
        c.global_peers
            .push(BgpPeer::new("0.0.0.0".parse().unwrap(), asn(65001)));
        assert_eq!(c.validate().unwrap_err().field, "ip");
        c.global_peers.pop();
        c.global_peers[0].timers.keepalive = Some(0);
        let e = c.validate().unwrap_err();
        assert_eq!(e.field, "keepalive");
        assert_eq!(e.context.as_deref(), Some("global_peers, peer 10.0.0.1"));
    }
}
