//! Checking the peer's OPEN against our configuration, and what the two OPENs negotiate.
//!
//! Role: the session-level OPEN checks of RFC 4271 §6.2 that need configuration (the decoder already
//! rejects a bad version, hold time 1–2, identifier 0 and AS 0; they are checked again here because an owner
//! may feed decoded messages directly): expected peer AS with 4-octet AS / AS_TRANS (RFC 6793), identifier
//! (RFC 6286: non-zero, and for iBGP not ours), hold time, required capabilities (RFC 5492 §5); then the
//! negotiated hold and keepalive times, codecs (4-octet AS, ADD-PATH, extended messages) and families.
//! Inputs: the [`SessionConfig`], our OPEN and the peer's.
//! Outputs: [`Negotiated`], or the NOTIFICATION to send (2/2, 2/3, 2/6, 2/7).

use std::time::Duration;

use crate::wire::{
    code, AfiSafi, Capability, Codec, GracefulRestart, Notification, Open, AS_TRANS,
};

use super::SessionConfig;

/// What an OPEN exchange settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The OPEN we sent.
    pub local_open: Open,
    /// The OPEN the peer sent (all its capabilities, unknown ones included).
    pub peer_open: Open,
    /// The peer's AS (from the 4-octet AS capability when present).
    pub peer_as: u32,
    /// The codec for what we receive.
    pub rx: Codec,
    /// The codec for what we send.
    pub tx: Codec,
    /// The negotiated hold time in seconds: the smaller of the two; 0 means no hold timer and no keepalives.
    pub hold_time: u16,
    /// The keepalive interval in seconds: a third of the hold time, or the configured keepalive when
    /// that is shorter; 0 when the hold time is 0.
    pub keepalive: u16,
    /// The families both sides advertised (IPv4 unicast when the peer advertised no multiprotocol capability).
    pub families: Vec<AfiSafi>,
    /// Both sides support route refresh (RFC 2918).
    pub route_refresh: bool,
    /// Both sides support enhanced route refresh (RFC 7313).
    pub enhanced_route_refresh: bool,
    /// The peer's graceful restart capability, if it advertised one (RFC 4724).
    pub peer_graceful_restart: Option<GracefulRestart>,
}

impl Negotiated {
    /// The hold time as a duration, `None` when 0.
    pub fn hold(&self) -> Option<Duration> {
        (self.hold_time > 0).then(|| Duration::from_secs(u64::from(self.hold_time)))
    }

    /// The keepalive interval as a duration, `None` when the hold time is 0.
    pub fn keepalive_interval(&self) -> Option<Duration> {
        (self.hold_time > 0).then(|| Duration::from_secs(u64::from(self.keepalive.max(1))))
    }

    /// Whether both sides set the graceful restart N bit (RFC 8538).
    pub fn graceful_notification(&self) -> bool {
        let local = self
            .local_open
            .capabilities
            .iter()
            .any(|c| matches!(c, Capability::GracefulRestart(g) if g.notification));
        local
            && self
                .peer_graceful_restart
                .as_ref()
                .is_some_and(|g| g.notification)
    }
}

fn open_error(subcode: u8) -> Notification {
    Notification::new(code::OPEN_MESSAGE, subcode, Vec::new())
}

/// Check the peer's OPEN and negotiate.
pub fn check_open(
    config: &SessionConfig,
    local: &Open,
    peer: &Open,
) -> Result<Negotiated, Notification> {
    let peer_as = peer.asn();
    let four_octet_cap = peer
        .capabilities
        .iter()
        .any(|c| matches!(c, Capability::FourOctetAs(_)));
    // RFC 6793 §9: a speaker whose AS needs 4 octets puts AS_TRANS in My AS. RFC 7607: AS 0 is an error.
    let my_as_consistent =
        !four_octet_cap || peer_as <= u32::from(u16::MAX) || peer.my_as == AS_TRANS;
    if peer_as != config.remote_as || peer.my_as == 0 || peer_as == 0 || !my_as_consistent {
        return Err(Notification::bad_peer_as());
    }
    if peer.bgp_id.is_unspecified() || (config.is_ibgp() && peer.bgp_id == config.local_id) {
        return Err(open_error(code::open::BAD_BGP_IDENTIFIER));
    }
    if peer.hold_time == 1 || peer.hold_time == 2 {
        return Err(open_error(code::open::UNACCEPTABLE_HOLD_TIME));
    }
    let missing: Vec<Capability> = local
        .capabilities
        .iter()
        .filter(|c| config.required_capabilities.contains(&c.code()))
        .filter(|c| !peer.capabilities.iter().any(|p| p.code() == c.code()))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(Notification::unsupported_capability(&missing));
    }

    let hold_time = local.hold_time.min(peer.hold_time);
    let (rx, tx) = Codec::negotiate(local, peer);
    let mp = |o: &Open| -> Vec<AfiSafi> {
        let v: Vec<AfiSafi> = o
            .capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::Multiprotocol(f) => Some(*f),
                _ => None,
            })
            .collect();
        // RFC 4760 §8: without the capability, only IPv4 unicast is carried.
        if v.is_empty() {
            vec![AfiSafi::IPV4_UNICAST]
        } else {
            v
        }
    };
    let theirs = mp(peer);
    let mut families: Vec<AfiSafi> = mp(local)
        .into_iter()
        .filter(|f| theirs.contains(f))
        .collect();
    families.sort();
    families.dedup();
    let both = |want: &dyn Fn(&Capability) -> bool| {
        local.capabilities.iter().any(want) && peer.capabilities.iter().any(want)
    };
    let route_refresh = both(&|c| matches!(c, Capability::RouteRefresh));
    let enhanced_route_refresh = both(&|c| matches!(c, Capability::EnhancedRouteRefresh));
    let peer_graceful_restart = peer.capabilities.iter().find_map(|c| match c {
        Capability::GracefulRestart(g) => Some(g.clone()),
        _ => None,
    });
    Ok(Negotiated {
        local_open: local.clone(),
        peer_open: peer.clone(),
        peer_as,
        rx,
        tx,
        hold_time,
        keepalive: match config.keepalive {
            Some(k) => k.max(1).min(hold_time / 3),
            None => hold_time / 3,
        },
        families,
        route_refresh,
        enhanced_route_refresh,
        peer_graceful_restart,
    })
}
