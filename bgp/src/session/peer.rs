//! One peer with up to two TCP connections, and connection collision resolution (RFC 4271 §6.8).
//!
//! Role: own the main [`Session`] (which connects, retries and restarts) and, while it is busy with a
//! connection, one extra session on a connection the peer opened; as soon as the peer's BGP identifier is
//! known on either, keep the connection initiated by the speaker with the higher identifier (RFC 6286 §2.3:
//! the higher AS when the identifiers are equal) and close the other with Cease / Connection Collision
//! Resolution (6/7). A connection arriving while Established is refused with 6/7 at once.
//! Inputs: the owner's connection ids with TCP events and bytes, manual start/stop, `now`.
//! Outputs: [`PeerAction`]s: an [`Action`] and the connection it applies to (`None` for [`Action::Connect`]
//! and for abandoning the connection attempt in progress with [`Action::CloseConnection`]).

use std::net::Ipv4Addr;
use std::time::Instant;

use crate::wire::{code, Codec, Message, Notification, Update};

use super::fsm::NotEstablished;
use super::{Action, Event, Session, SessionConfig, State};

/// The owner's name for a TCP connection.
pub type ConnId = u64;

/// Who opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// We did.
    Outbound,
    /// The peer did.
    Inbound,
}

/// An action and the connection it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAction {
    /// The connection; `None` for `Connect` and for abandoning the attempt in progress.
    pub conn: Option<ConnId>,
    /// What to do.
    pub action: Action,
}

/// Which connection survives a collision: the one initiated by the speaker with the higher BGP identifier
/// (RFC 4271 §6.8, compared as 4-octet unsigned integers), or with the higher AS when the identifiers are
/// equal (RFC 6286 §2.3, eBGP only).
pub fn resolve_collision(
    local_id: Ipv4Addr,
    remote_id: Ipv4Addr,
    local_as: u32,
    remote_as: u32,
) -> Direction {
    let (l, r) = (u32::from(local_id), u32::from(remote_id));
    if l > r || (l == r && local_as > remote_as) {
        Direction::Outbound
    } else {
        Direction::Inbound
    }
}

/// Cease / Connection Collision Resolution (RFC 4486 §4), sent on the connection that loses.
pub fn collision_notification() -> Notification {
    Notification::new(code::CEASE, code::cease::CONNECTION_COLLISION, Vec::new())
}

/// One peer: the main session and, during a collision, the session of the peer's extra connection.
#[derive(Debug, Clone)]
pub struct Peer {
    main: Session,
    main_conn: Option<(ConnId, Direction)>,
    extra: Option<(ConnId, Session)>,
}

impl Peer {
    /// A peer in Idle.
    pub fn new(config: SessionConfig) -> Self {
        Peer {
            main: Session::new(config),
            main_conn: None,
            extra: None,
        }
    }

    /// The main session (the one that is or becomes Established).
    pub fn session(&self) -> &Session {
        &self.main
    }

    /// The main session's connection and who opened it.
    pub fn connection(&self) -> Option<(ConnId, Direction)> {
        self.main_conn
    }

    /// The extra incoming connection and its session, while a collision is pending.
    pub fn extra(&self) -> Option<(ConnId, &Session)> {
        self.extra.as_ref().map(|(c, s)| (*c, s))
    }

    /// The codec to encode the messages sent on `conn` with (the default one for an unknown connection).
    pub fn tx_codec(&self, conn: ConnId) -> Codec {
        match &self.extra {
            Some((c, s)) if *c == conn => s.tx_codec(),
            _ if self.main_conn.map(|c| c.0) == Some(conn) => self.main.tx_codec(),
            _ => Codec::default(),
        }
    }

    /// The main session's state.
    pub fn state(&self) -> State {
        self.main.state()
    }

    /// Start (connect, or wait for the peer when passive).
    pub fn start(&mut self, now: Instant) -> Vec<PeerAction> {
        self.on_main(Event::ManualStart, now)
    }

    /// Stop every connection with Cease / Administrative Shutdown and this communication.
    pub fn stop(&mut self, communication: &str, now: Instant) -> Vec<PeerAction> {
        let mut out = Vec::new();
        if let Some((conn, mut s)) = self.extra.take() {
            let ev = Event::ManualStop {
                communication: communication.to_owned(),
            };
            out.extend(tag(Some(conn), s.handle(ev, now)));
        }
        let ev = Event::ManualStop {
            communication: communication.to_owned(),
        };
        out.extend(self.on_main(ev, now));
        out
    }

    /// Our connection attempt succeeded as `conn`.
    pub fn connected(&mut self, conn: ConnId, now: Instant) -> Vec<PeerAction> {
        if self.knows(conn) {
            return Vec::new(); // The owner reused a live id: leave that connection alone.
        }
        if self.main.state() != State::Connect {
            // An attempt abandoned meanwhile.
            return vec![PeerAction {
                conn: Some(conn),
                action: Action::CloseConnection,
            }];
        }
        self.main_conn = Some((conn, Direction::Outbound));
        self.on_main(Event::TcpConnectionAcknowledged, now)
    }

    /// Our connection attempt failed.
    pub fn connect_failed(&mut self, now: Instant) -> Vec<PeerAction> {
        if self.main.state() != State::Connect {
            return Vec::new();
        }
        self.on_main(Event::TcpConnectionFails, now)
    }

    /// The peer opened `conn` to us.
    pub fn incoming(&mut self, conn: ConnId, now: Instant) -> Vec<PeerAction> {
        if self.knows(conn) {
            return Vec::new(); // The owner reused a live id: leave that connection alone.
        }
        let reject = |subcode: Option<u8>| {
            let mut v = Vec::new();
            if let Some(s) = subcode {
                let n = Notification::new(code::CEASE, s, Vec::new());
                v.push(PeerAction {
                    conn: Some(conn),
                    action: Action::Send(Message::Notification(n)),
                });
            }
            v.push(PeerAction {
                conn: Some(conn),
                action: Action::CloseConnection,
            });
            v
        };
        match self.main.state() {
            // RFC 4271 §8.2.2: Idle refuses connections.
            State::Idle => reject(None),
            State::Connect | State::Active => {
                let mut out = Vec::new();
                if self.main.state() == State::Connect {
                    // Use the peer's connection and abandon our attempt.
                    out.push(PeerAction {
                        conn: None,
                        action: Action::CloseConnection,
                    });
                }
                self.main_conn = Some((conn, Direction::Inbound));
                out.extend(self.on_main(Event::TcpConnectionConfirmed, now));
                out
            }
            // RFC 4271 §6.8: a collision with an Established connection closes the new one.
            State::Established => reject(Some(code::cease::CONNECTION_COLLISION)),
            State::OpenSent | State::OpenConfirm if self.extra.is_some() => {
                reject(Some(code::cease::CONNECTION_REJECTED))
            }
            State::OpenSent | State::OpenConfirm => {
                let mut s = Session::new(self.main.config().clone());
                let actions = s.accept_inbound(now);
                self.extra = Some((conn, s));
                let mut out = tag(Some(conn), actions);
                self.settle(now, &mut out);
                out
            }
        }
    }

    /// `conn` failed or the peer closed it.
    pub fn closed(&mut self, conn: ConnId, now: Instant) -> Vec<PeerAction> {
        self.on_conn(conn, now, |s, now| s.handle(Event::TcpConnectionFails, now))
    }

    /// Bytes arrived on `conn`.
    pub fn receive(&mut self, conn: ConnId, data: &[u8], now: Instant) -> Vec<PeerAction> {
        self.on_conn(conn, now, |s, now| s.receive_bytes(data, now))
    }

    /// The earliest deadline of either session.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let extra = self.extra.as_ref().and_then(|(_, s)| s.poll_timeout());
        [self.main.poll_timeout(), extra]
            .into_iter()
            .flatten()
            .min()
    }

    /// Handle the timers that expired at `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<PeerAction> {
        let mut out = Vec::new();
        if let Some((conn, s)) = &mut self.extra {
            out.extend(tag(Some(*conn), s.handle_timeout(now)));
        }
        let conn = self.main_conn.map(|c| c.0);
        out.extend(tag(conn, self.main.handle_timeout(now)));
        self.settle(now, &mut out);
        out
    }

    /// End the main session with `notification` ([`Session::tear_down`]).
    pub fn tear_down(
        &mut self,
        notification: Notification,
        restart: bool,
        now: Instant,
    ) -> Vec<PeerAction> {
        let conn = self.main_conn.map(|c| c.0);
        let mut out = tag(conn, self.main.tear_down(notification, restart, now));
        self.settle(now, &mut out);
        out
    }

    /// Send a ROUTE-REFRESH on the Established session ([`Session::send_route_refresh`]).
    pub fn send_route_refresh(
        &mut self,
        afi_safi: crate::wire::AfiSafi,
        subtype: crate::wire::RefreshSubtype,
    ) -> Result<Vec<PeerAction>, NotEstablished> {
        let actions = self.main.send_route_refresh(afi_safi, subtype)?;
        Ok(tag(self.main_conn.map(|c| c.0), actions))
    }

    /// Send an UPDATE on the Established session.
    pub fn send_update(
        &mut self,
        update: Update,
        now: Instant,
    ) -> Result<Vec<PeerAction>, NotEstablished> {
        let actions = self.main.send_update(update, now)?;
        Ok(tag(self.main_conn.map(|c| c.0), actions))
    }

    fn knows(&self, conn: ConnId) -> bool {
        self.main_conn.map(|c| c.0) == Some(conn)
            || self.extra.as_ref().is_some_and(|e| e.0 == conn)
    }

    fn on_main(&mut self, event: Event, now: Instant) -> Vec<PeerAction> {
        let conn = self.main_conn.map(|c| c.0);
        let mut out = tag(conn, self.main.handle(event, now));
        self.settle(now, &mut out);
        out
    }

    fn on_conn(
        &mut self,
        conn: ConnId,
        now: Instant,
        f: impl FnOnce(&mut Session, Instant) -> Vec<Action>,
    ) -> Vec<PeerAction> {
        let mut out = Vec::new();
        if self.main_conn.map(|c| c.0) == Some(conn) {
            out = tag(Some(conn), f(&mut self.main, now));
        } else if let Some((c, s)) = &mut self.extra {
            if *c == conn {
                out = tag(Some(conn), f(s, now));
            }
        }
        self.settle(now, &mut out);
        out
    }

    /// Bring the two connections back to a consistent picture after any input.
    fn settle(&mut self, now: Instant, out: &mut Vec<PeerAction>) {
        if !self.main.state().has_connection() {
            self.main_conn = None;
        }
        if self
            .extra
            .as_ref()
            .is_some_and(|(_, s)| !s.state().has_connection())
        {
            self.extra = None;
        }
        let Some((extra_conn, extra)) = &mut self.extra else {
            return;
        };
        let extra_conn = *extra_conn;
        let Some((main_conn, main_dir)) = self.main_conn else {
            // The main session lost its connection: the extra one carries on as the main one.
            if self.main.state() == State::Connect {
                out.push(PeerAction {
                    conn: None,
                    action: Action::CloseConnection,
                });
            }
            self.promote();
            return;
        };
        let Some(remote_id) = self.main.remote_id().or(extra.remote_id()) else {
            return; // Neither OPEN has arrived: not known yet whether this is a collision to resolve.
        };
        let config = self.main.config();
        let extra_loses = if self.main.state() == State::Established {
            true
        } else if extra.state() == State::Established {
            false
        } else if main_dir == Direction::Inbound {
            true // Two connections opened by the peer: keep the older one.
        } else {
            resolve_collision(
                config.local_id,
                remote_id,
                config.local_as,
                config.remote_as,
            ) == Direction::Outbound
        };
        if extra_loses {
            out.extend(tag(Some(extra_conn), extra.close_for_collision(now)));
            self.extra = None;
        } else {
            out.extend(tag(Some(main_conn), self.main.close_for_collision(now)));
            self.promote();
        }
    }

    fn promote(&mut self) {
        if let Some((conn, s)) = self.extra.take() {
            self.main = s;
            self.main_conn = Some((conn, Direction::Inbound));
        }
    }
}

fn tag(conn: Option<ConnId>, actions: Vec<Action>) -> Vec<PeerAction> {
    actions
        .into_iter()
        .map(|action| PeerAction {
            conn: if action == Action::Connect {
                None
            } else {
                conn
            },
            action,
        })
        .collect()
}
