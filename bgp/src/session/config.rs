//! The configuration of one peering and the OPEN it makes us send.
//!
//! Role: hold what the FSM needs to know about us and the peer (ASNs, identifier, hold time, capabilities to
//! advertise, timers, passive mode, the jitter seed) and build our OPEN from it.
//! Inputs: values set by the owner (defaults follow RFC 4271 §10 and common practice).
//! Outputs: [`SessionConfig::local_open`], the OPEN we send on every connection.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::wire::{AddPathFamily, AfiSafi, Capability, GracefulRestart, Open};

/// The configuration of one peering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Our AS number (4-byte; AS_TRANS goes in My AS when it does not fit 2 bytes).
    pub local_as: u32,
    /// Our BGP identifier.
    pub local_id: Ipv4Addr,
    /// The AS the peer must announce (a mismatch is Bad Peer AS, 2/2).
    pub remote_as: u32,
    /// The hold time we propose, in seconds (0 for none, else at least 3).
    pub hold_time: u16,
    /// The longest keepalive interval we want, in seconds (at least 1); the interval used is the
    /// smaller of this and a third of the negotiated hold time. `None`: a third of the hold time.
    pub keepalive: Option<u16>,
    /// The hold timer in OpenSent, waiting for the peer's OPEN (RFC 4271 §8: "a large value", 4 minutes).
    pub open_hold_time: Duration,
    /// The first connect-retry / automatic-restart delay; it doubles on every consecutive failure.
    pub connect_retry: Duration,
    /// The upper bound of the connect-retry / automatic-restart delay.
    pub connect_retry_max: Duration,
    /// Seed of the deterministic jitter applied to those delays (RFC 4271 §10: 75–100% of the value).
    pub jitter_seed: u64,
    /// Wait for the peer to connect; never initiate a connection.
    pub passive: bool,
    /// The families we advertise with the multiprotocol capability (RFC 4760).
    pub families: Vec<AfiSafi>,
    /// Advertise route refresh and enhanced route refresh (RFC 2918, RFC 7313).
    pub route_refresh: bool,
    /// Advertise extended messages (RFC 8654).
    pub extended_message: bool,
    /// ADD-PATH modes we advertise per family (RFC 7911); empty for none.
    pub add_path: Vec<AddPathFamily>,
    /// The graceful restart capability we advertise (RFC 4724: restart time, R bit, per-family F bits).
    pub graceful_restart: Option<GracefulRestart>,
    /// Capability codes the peer must advertise too, else OPEN Message Error / Unsupported Capability (2/7).
    /// Empty by default: whatever the peer offers is accepted.
    pub required_capabilities: Vec<u8>,
}

impl SessionConfig {
    /// A configuration with the defaults: hold time 90 s, OpenSent hold 240 s, connect retry from 5 s up to
    /// 120 s, active, IPv4 unicast, route refresh on, no extended messages, ADD-PATH or graceful restart.
    pub fn new(local_as: u32, local_id: Ipv4Addr, remote_as: u32) -> Self {
        SessionConfig {
            local_as,
            local_id,
            remote_as,
            hold_time: 90,
            keepalive: None,
            open_hold_time: Duration::from_secs(240),
            connect_retry: Duration::from_secs(5),
            connect_retry_max: Duration::from_secs(120),
            jitter_seed: u64::from(u32::from(local_id)) ^ (u64::from(remote_as) << 32),
            passive: false,
            families: vec![AfiSafi::IPV4_UNICAST],
            route_refresh: true,
            extended_message: false,
            add_path: Vec::new(),
            graceful_restart: None,
            required_capabilities: Vec::new(),
        }
    }

    /// Whether the peering is internal (iBGP).
    pub fn is_ibgp(&self) -> bool {
        self.local_as == self.remote_as
    }

    /// The OPEN we send: our AS (AS_TRANS in My AS when it needs 4 bytes), hold time, identifier and the
    /// capabilities configured, always with the 4-octet AS capability (RFC 6793).
    pub fn local_open(&self) -> Open {
        let mut caps: Vec<Capability> = self
            .families
            .iter()
            .map(|f| Capability::Multiprotocol(*f))
            .collect();
        if self.route_refresh {
            caps.push(Capability::RouteRefresh);
            caps.push(Capability::EnhancedRouteRefresh);
        }
        if self.extended_message {
            caps.push(Capability::ExtendedMessage);
        }
        if let Some(gr) = &self.graceful_restart {
            caps.push(Capability::GracefulRestart(gr.clone()));
        }
        caps.push(Capability::FourOctetAs(self.local_as));
        if !self.add_path.is_empty() {
            caps.push(Capability::AddPath(self.add_path.clone()));
        }
        Open::new(self.local_as, self.hold_time, self.local_id, caps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{GracefulRestartFamily, AS_TRANS};

    #[test]
    fn local_open_carries_the_configured_capabilities() {
        let mut c = SessionConfig::new(4_200_000_001, Ipv4Addr::new(192, 0, 2, 1), 65002);
        assert!(!c.is_ibgp());
        let plain = c.local_open();
        assert_eq!(plain.my_as, AS_TRANS);
        assert_eq!(plain.asn(), 4_200_000_001);
        assert_eq!(plain.hold_time, 90);
        assert_eq!(
            plain.capabilities,
            vec![
                Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
                Capability::RouteRefresh,
                Capability::EnhancedRouteRefresh,
                Capability::FourOctetAs(4_200_000_001),
            ]
        );
        let gr = GracefulRestart {
            restarting: true,
            notification: false,
            restart_time: 120,
            families: vec![GracefulRestartFamily {
                afi_safi: AfiSafi::IPV4_UNICAST,
                forwarding_preserved: true,
            }],
        };
        c.graceful_restart = Some(gr.clone());
        c.extended_message = true;
        c.route_refresh = false;
        c.add_path = vec![AddPathFamily {
            afi_safi: AfiSafi::IPV4_UNICAST,
            receive: true,
            send: false,
        }];
        let open = c.local_open();
        assert_eq!(
            open.capabilities,
            vec![
                Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
                Capability::ExtendedMessage,
                Capability::GracefulRestart(gr),
                Capability::FourOctetAs(4_200_000_001),
                Capability::AddPath(c.add_path.clone()),
            ]
        );
    }
}
