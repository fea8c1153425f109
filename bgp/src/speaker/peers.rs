//! Carrying out a peer's session actions and spreading RIB changes.
//!
//! Role: for each [`PeerAction`] of a peer's FSM: dial, close, encode and queue a message (cutting UPDATEs
//! into messages filled up to the negotiated size), and on session up/down, UPDATEs, End-of-RIB and route
//! refresh, call the RIB; then spread the RIB's [`Changes`]: UPDATEs to every peer concerned and route
//! changes to the FIB task. A new session's initial export goes in steps ([`Core::export_steps`]), its
//! End-of-RIB markers after the last.
//! Inputs: actions from [`crate::session::Peer`], [`Changes`] from [`crate::rib::Rib`].
//! Outputs: bytes to connections, FIB operations, peer status updates.

use std::net::IpAddr;
use std::time::{Instant, SystemTime};

use bytes::BytesMut;

use super::core::{Core, FAMILIES};
use crate::rib::{Changes, MaxPrefixAction, PeerSession, RibEvent};
use crate::session::{Action, DownReason, Negotiated, PeerAction, SessionDown};
use crate::wire::{
    code, encode_message, AfiSafi, Codec, Message, Notification, RefreshSubtype, Update,
};

/// An IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4 peer) as IPv4.
/// An address of the other family on the interface that holds `local` (read from the kernel), for the
/// next hop of that family's routes; `None` when there is none or the kernel cannot be asked.
fn other_family_address(local: IpAddr) -> Option<IpAddr> {
    use calico_netlink::link::{dump_addresses, parse_address, RTM_NEWADDR};
    let read = || -> Result<Vec<_>, calico_netlink::Error> {
        let mut sock = calico_netlink::socket::Socket::open(None)?;
        let seq = sock.next_seq();
        let mut all = Vec::new();
        sock.dump_each(&dump_addresses(seq), RTM_NEWADDR, |b| {
            all.extend(parse_address(b));
        })?;
        Ok(all)
    };
    match read() {
        Ok(all) => pick_other_family(&all, local),
        Err(e) => {
            tracing::debug!(error = %e, "cannot read our addresses");
            None
        }
    }
}

/// The first usable address of the other family than `local` on `local`'s interface: not link-local
/// and not loopback (a next hop must be reachable from the peer). Pure.
fn pick_other_family(all: &[calico_netlink::link::Address], local: IpAddr) -> Option<IpAddr> {
    let ifindex = all.iter().find(|a| a.ip == local)?.ifindex;
    all.iter()
        .filter(|a| a.ifindex == ifindex && a.ip.is_ipv4() != local.is_ipv4())
        .map(|a| a.ip)
        .find(|ip| match ip {
            IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local(),
            IpAddr::V6(v6) => !v6.is_loopback() && !v6.is_unicast_link_local(),
        })
}

pub(super) fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The wire bytes of `msg`, as several messages when an UPDATE is too long for one
/// ([`Update::into_fitting`]).
pub(super) fn encode(msg: Message, codec: &Codec) -> Vec<Vec<u8>> {
    let msgs = match msg {
        Message::Update(u) => match u.into_fitting(codec) {
            Ok(parts) => parts.into_iter().map(Message::Update).collect(),
            Err(e) => {
                tracing::error!(error = %e, "an UPDATE too long to send, even with one prefix");
                return Vec::new();
            }
        },
        other => vec![other],
    };
    let mut out = Vec::with_capacity(msgs.len());
    let mut buf = BytesMut::new();
    for m in &msgs {
        match encode_message(m, codec, &mut buf) {
            Ok(()) => out.push(buf.split().to_vec()),
            Err(e) => tracing::error!(error = %e, "cannot encode a message"),
        }
    }
    out
}

/// The prefixes exported per step of a session's initial export: small enough that the first UPDATEs leave
/// within a millisecond or so and inputs are not held up, large enough to fill UPDATEs and keep the per-step
/// overhead negligible.
const EXPORT_STEP: usize = 2048;

fn describe(reason: &DownReason) -> String {
    match reason {
        DownReason::ManualStop => "stopped".into(),
        DownReason::HoldTimerExpired => "hold timer expired".into(),
        DownReason::NotificationReceived(n) => {
            let (c, s) = n.describe();
            match n.shutdown_communication() {
                Some(text) if !text.is_empty() => format!("received {c} / {s}: {text}"),
                _ => format!("received {c} / {s}"),
            }
        }
        DownReason::NotificationSent(n) => {
            let (c, s) = n.describe();
            format!("sent {c} / {s}")
        }
        DownReason::ConnectionLost => "connection lost".into(),
        DownReason::CollisionResolved => "connection collision".into(),
    }
}

impl Core {
    /// Carries out a peer's actions in order.
    pub(super) fn apply(&mut self, addr: IpAddr, actions: Vec<PeerAction>, now: Instant) {
        for pa in actions {
            self.apply_one(addr, pa, now);
        }
    }

    fn apply_one(&mut self, addr: IpAddr, pa: PeerAction, now: Instant) {
        match pa.action {
            Action::Connect => self.start_connect(addr),
            Action::CloseConnection => {
                let Some(e) = self.peers.get_mut(&addr) else {
                    return;
                };
                match pa.conn {
                    Some(c) => {
                        if let Some(h) = e.conns.remove(&c) {
                            h.close();
                        }
                    }
                    None => {
                        if let Some((_, t)) = e.connecting.take() {
                            t.abort();
                        }
                    }
                }
            }
            Action::Send(msg) => {
                let Some(e) = self.peers.get(&addr) else {
                    return;
                };
                let Some(conn) = pa.conn else { return };
                let Some(h) = e.conns.get(&conn) else { return };
                if let Message::Notification(n) = &msg {
                    let (c, s) = n.describe();
                    tracing::info!(peer = %addr, "sending NOTIFICATION {c} / {s}");
                }
                let is_update = matches!(msg, Message::Update(_));
                let parts = encode(msg, &e.peer.tx_codec(conn));
                let sent = parts.len() as u64;
                for bytes in parts {
                    h.send(bytes);
                }
                let backlog = h.queued();
                if is_update {
                    if let Some(e) = self.peers.get_mut(&addr) {
                        e.updates_out += sent;
                    }
                }
                if backlog > super::conn::MAX_QUEUED {
                    self.not_reading(addr, backlog, now);
                }
            }
            Action::SessionEstablished(n) => self.established(addr, &n, now),
            Action::SessionDown(d) => self.down(addr, &d, now),
            Action::Deliver(u) => {
                self.count_update_in(addr);
                if let Ok(ch) = self.rib.update(addr, &u) {
                    self.dispatch(ch, now);
                }
            }
            Action::Withdraw(nlri) => {
                self.count_update_in(addr);
                if let Ok(ch) = self.rib.withdraw(addr, &nlri) {
                    self.dispatch(ch, now);
                }
            }
            Action::EndOfRib(f) => {
                self.count_update_in(addr);
                tracing::debug!(peer = %addr, family = %f, "End-of-RIB received");
                if let Some(e) = self.peers.get_mut(&addr) {
                    e.eor.insert(f);
                    if e.families.iter().all(|f| e.eor.contains(f)) {
                        e.gr_deadline = None;
                    }
                }
                if let Ok(ch) = self.rib.end_of_rib(addr, f) {
                    self.dispatch(ch, now);
                }
                self.check_startup();
            }
            Action::RouteRefreshRequested { afi_safi } => {
                // During the initial export everything is being sent anyway, and its own End-of-RIB
                // comes when it is complete. Otherwise the re-send goes between Begin- and
                // End-of-Route-Refresh with a peer that does enhanced route refresh (RFC 7313 §4), and
                // is followed by End-of-RIB with one that does not.
                let exporting = self.rib.exporting(addr);
                let enhanced = !exporting && self.enhanced_refresh(addr);
                if enhanced {
                    self.send_refresh(addr, afi_safi, RefreshSubtype::Begin, now);
                }
                if let Ok(ch) = self.rib.route_refresh(addr, afi_safi) {
                    self.dispatch(ch, now);
                }
                if enhanced {
                    self.send_refresh(addr, afi_safi, RefreshSubtype::End, now);
                } else if !exporting {
                    self.send_update(addr, Update::end_of_rib(afi_safi), now);
                }
            }
            Action::RouteRefreshMarker { afi_safi, begin } => {
                if let Ok(ch) = self.rib.refresh_marker(addr, afi_safi, begin) {
                    self.dispatch(ch, now);
                }
            }
        }
    }

    /// Whether the session with `addr` does enhanced route refresh (RFC 7313).
    fn enhanced_refresh(&self, addr: IpAddr) -> bool {
        self.peers
            .get(&addr)
            .and_then(|e| e.peer.session().negotiated())
            .is_some_and(|n| n.enhanced_route_refresh)
    }

    /// Sends a ROUTE-REFRESH of `subtype` to `addr` (a request, or a marker around our re-send).
    pub(super) fn send_refresh(
        &mut self,
        addr: IpAddr,
        afi_safi: AfiSafi,
        subtype: RefreshSubtype,
        now: Instant,
    ) {
        let Some(e) = self.peers.get_mut(&addr) else {
            return;
        };
        if let Ok(actions) = e.peer.send_route_refresh(afi_safi, subtype) {
            self.apply(addr, actions, now);
        }
    }

    /// Our addresses towards `addr` while connected: the main connection's (an IPv4-mapped one as
    /// IPv4), then the next hop for the other family (read from the kernel unless configured).
    fn local_addresses(&self, addr: IpAddr) -> Vec<IpAddr> {
        let Some(e) = self.peers.get(&addr) else {
            return Vec::new();
        };
        let local = e
            .peer
            .connection()
            .and_then(|(conn, _)| e.conns.get(&conn))
            .map(|h| unmapped(h.local.ip()));
        let Some(local) = local else {
            return Vec::new();
        };
        let other = e
            .settings
            .other_next_hop
            .or_else(|| other_family_address(local));
        std::iter::once(local).chain(other).collect()
    }

    fn count_update_in(&mut self, addr: IpAddr) {
        if let Some(e) = self.peers.get_mut(&addr) {
            e.updates_in += 1;
        }
    }

    fn established(&mut self, addr: IpAddr, n: &Negotiated, now: Instant) {
        let Some(e) = self.peers.get_mut(&addr) else {
            return;
        };
        e.since = SystemTime::now();
        e.last_error = None;
        e.families = n
            .families
            .iter()
            .copied()
            .filter(|f| FAMILIES.contains(f))
            .collect();
        e.eor.clear();
        let local = self.local_addresses(addr);
        tracing::info!(peer = %addr, ?local, families = ?n.families, "session established");
        let Some(e) = self.peers.get_mut(&addr) else {
            return;
        };
        e.local.clone_from(&local);
        if let Ok(ch) = self.rib.reconfigure_peer(e.settings.rib_config(&local)) {
            self.dispatch(ch, now);
        }
        // The export follows in steps (`export_steps`), then the End-of-RIB markers.
        match self
            .rib
            .peer_up_in_steps(addr, PeerSession::from_negotiated(n))
        {
            Ok(ch) => self.dispatch(ch, now),
            Err(err) => tracing::error!(peer = %addr, error = %err, "RIB refused the session"),
        }
    }

    /// One step of every session's initial export in progress, with the End-of-RIB markers (RFC 4724 §2) of
    /// the sessions whose export is complete. Whether any export remains in progress.
    pub(super) fn export_steps(&mut self, now: Instant) -> bool {
        let mut more = false;
        let addrs: Vec<IpAddr> = self
            .peers
            .keys()
            .copied()
            .filter(|a| self.rib.exporting(*a))
            .collect();
        for addr in addrs {
            let Some((ch, done)) = self.rib.export_step(addr, EXPORT_STEP) else {
                continue;
            };
            self.dispatch(ch, now);
            if !done {
                more = true;
                continue;
            }
            let families = self
                .peers
                .get(&addr)
                .map(|e| e.families.clone())
                .unwrap_or_default();
            for f in families {
                self.send_update(addr, Update::end_of_rib(f), now);
            }
        }
        more
    }

    fn down(&mut self, addr: IpAddr, d: &SessionDown, now: Instant) {
        let Some(e) = self.peers.get_mut(&addr) else {
            return;
        };
        let why = describe(&d.reason);
        tracing::info!(peer = %addr, reason = %why, graceful = d.graceful.is_some(), "session down");
        e.since = SystemTime::now();
        e.last_error = Some(why);
        e.families.clear();
        e.local.clear();
        e.eor.clear();
        let graceful: Option<Vec<_>> = d
            .graceful
            .as_ref()
            .map(|g| g.families.iter().map(|f| f.afi_safi).collect());
        if let Some(g) = &d.graceful {
            e.gr_deadline = Some(now + g.restart_time);
        }
        if let Ok(ch) = self.rib.peer_down(addr, graceful.as_deref()) {
            self.dispatch(ch, now);
        }
    }

    /// Sends one UPDATE on a peer's Established session.
    pub(super) fn send_update(&mut self, addr: IpAddr, update: Update, now: Instant) {
        let Some(e) = self.peers.get_mut(&addr) else {
            return;
        };
        if let Ok(actions) = e.peer.send_update(update, now) {
            self.apply(addr, actions, now);
        }
    }

    /// Spreads RIB changes: UPDATEs to peers, routes to the kernel.
    pub(super) fn dispatch(&mut self, ch: Changes, now: Instant) {
        if let Some(fib) = &mut self.fib {
            if !ch.fib.is_empty() {
                fib.changes(&ch.fib);
            }
        }
        for (addr, updates) in ch.peers {
            for u in updates.into_updates() {
                self.send_update(addr, u, now);
            }
        }
        for ev in ch.events {
            match ev {
                RibEvent::MaxPrefixExceeded {
                    peer,
                    limit,
                    count,
                    action,
                } => self.max_prefix_exceeded(peer, limit, count, action, now),
            }
        }
    }

    /// A peer has not read what we sent for so long that more than [`super::conn::MAX_QUEUED`] bytes
    /// wait for it: its session ends with Cease / Out of Resources (RFC 4486) and starts again after
    /// the idle-hold delay, which grows with each failure.
    fn not_reading(&mut self, addr: IpAddr, backlog: usize, now: Instant) {
        let Some(e) = self.peers.get_mut(&addr) else {
            return;
        };
        tracing::warn!(peer = %addr, backlog, "the peer does not read what we send: ending the session (Cease 6/8)");
        let n = Notification::new(code::CEASE, code::cease::OUT_OF_RESOURCES, Vec::new());
        let actions = e.peer.tear_down(n, true, now);
        self.apply(addr, actions, now);
    }

    /// A peer sent more routes than its limit: say so, and with [`MaxPrefixAction::TearDown`] end its
    /// session with Cease / Maximum Number of Prefixes Reached (RFC 4486 §4: AFI, SAFI and the limit in
    /// its data, the family of the peer's address). The session stays down, as a router's does without
    /// a restart timer, until the peer's settings change (a reload) or the speaker restarts.
    fn max_prefix_exceeded(
        &mut self,
        addr: IpAddr,
        limit: usize,
        count: usize,
        action: MaxPrefixAction,
        now: Instant,
    ) {
        let Some(e) = self.peers.get_mut(&addr) else {
            return;
        };
        if action == MaxPrefixAction::Warn {
            tracing::warn!(peer = %addr, limit, count, "the peer sent more routes than its max-prefix limit");
            return;
        }
        tracing::warn!(
            peer = %addr, limit, count,
            "the peer sent more routes than its max-prefix limit: ending the session (Cease 6/1); \
             it stays down until its settings change (reload) or the speaker restarts"
        );
        let family = match addr {
            IpAddr::V4(_) => AfiSafi::IPV4_UNICAST,
            IpAddr::V6(_) => AfiSafi::IPV6_UNICAST,
        };
        let mut data = Vec::with_capacity(7);
        data.extend_from_slice(&family.afi.to_be_bytes());
        data.push(family.safi);
        data.extend_from_slice(&u32::try_from(limit).unwrap_or(u32::MAX).to_be_bytes());
        let n = Notification::new(code::CEASE, code::cease::MAX_PREFIXES, data);
        let actions = e.peer.tear_down(n, false, now);
        self.apply(addr, actions, now);
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_other_family_next_hop_comes_from_the_sessions_interface() {
        use calico_netlink::link::Address;
        let a = |ifindex, ip: &str| Address {
            ifindex,
            ip: ip.parse().unwrap(),
            prefix_len: 64,
        };
        let all = [
            a(1, "127.0.0.1"),
            a(1, "::1"),
            a(2, "10.250.0.11"),
            a(2, "fe80::1"),
            a(2, "fd00:250::11"),
            a(3, "fd00:99::1"),
        ];
        let local: IpAddr = "10.250.0.11".parse().unwrap();
        assert_eq!(
            pick_other_family(&all, local),
            Some("fd00:250::11".parse().unwrap()),
            "the same interface, not link-local"
        );
        assert_eq!(
            pick_other_family(&all, "fd00:250::11".parse().unwrap()),
            Some(local)
        );
        assert_eq!(pick_other_family(&all, "127.0.0.1".parse().unwrap()), None);
        assert_eq!(pick_other_family(&all, "10.9.9.9".parse().unwrap()), None);
    }
    use super::*;
    use crate::wire::{Nlri, PathAttributes, Prefix};

    #[test]
    fn long_updates_are_split_into_messages_that_fit() {
        let nlri: Vec<Nlri> = (0..3000u32)
            .map(|i| {
                Nlri::new(
                    Prefix::new(std::net::Ipv4Addr::from(0x0a41_0000 + i).into(), 32).unwrap(),
                )
            })
            .collect();
        let u = Update {
            attributes: PathAttributes {
                origin: Some(crate::wire::Origin::Igp),
                as_path: Some(crate::wire::AsPath::sequence(vec![65001])),
                next_hop: Some("10.250.0.11".parse().unwrap()),
                ..PathAttributes::default()
            },
            nlri: nlri.clone(),
            ..Update::default()
        };
        let codec = Codec {
            four_byte_as: true,
            ..Codec::default()
        };
        let parts = encode(Message::Update(u), &codec);
        assert!(parts.len() >= 4, "{}", parts.len());
        let mut seen = Vec::new();
        for p in &parts {
            assert!(p.len() <= 4096);
            let (d, _) = crate::wire::decode_message(p, &codec).unwrap();
            let crate::wire::Decoded::Message(Message::Update(u)) = d else {
                panic!("not an update")
            };
            seen.extend(u.nlri);
        }
        assert_eq!(seen, nlri);
        let w = Update {
            withdrawn: nlri.clone(),
            ..Update::default()
        };
        assert!(encode(Message::Update(w), &codec).len() >= 4);
    }
}
