//! The RFC 4271 §8 finite state machine of one peer over one TCP connection at a time.
//!
//! Role: the transitions of Idle, Connect, Active, OpenSent, OpenConfirm and Established, with the
//! ConnectRetry (jittered exponential backoff), Hold, Keepalive and automatic-restart (IdleHold) timers.
//! Inputs: [`Event`]s, bytes of the TCP stream ([`Session::receive_bytes`], split anywhere), timer expiries
//! ([`Session::handle_timeout`]) and `now`.
//! Outputs: [`Action`]s, and the next deadline ([`Session::poll_timeout`]).
//!
//! Deviations from the RFC table, on purpose: DelayOpen is not implemented; a connection failure in Connect
//! and OpenSent goes to Active with the ConnectRetry timer running (never initiating when passive); every
//! other error goes to Idle and, unless the session was stopped, the session restarts automatically after
//! the backoff delay; messages in Idle, Connect and Active (there is no connection) are ignored. A second
//! connection to the same peer is the business of [`super::Peer`]: a `Session` ignores connection events
//! while it already has one, and an incoming connection in Connect is taken without abandoning our attempt
//! in progress (the `Peer` abandons it).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::wire::{
    code, decode_message, AfiSafi, Codec, DecodeError, Decoded, Message, Notification, Open,
    RefreshSubtype, RouteRefresh, Update,
};

use super::{
    backoff, check_open, fsm_subcode, refresh_action, Action, DownReason, Event, Negotiated,
    PeerRestart, SessionConfig, SessionDown, State, Timer,
};

/// The codec before the OPEN exchange: 2-octet AS, no ADD-PATH, 4096-byte messages.
static PLAIN: Codec = Codec {
    four_byte_as: false,
    extended_message: false,
    add_path: Vec::new(),
};

/// A request that needs an Established session was made in another state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the session is {state:?}, not Established")]
pub struct NotEstablished {
    /// The state the session was in.
    pub state: State,
}

/// The FSM of one peering.
#[derive(Debug, Clone)]
pub struct Session {
    config: SessionConfig,
    local_open: Open,
    state: State,
    /// Between ManualStart and ManualStop: the session restarts by itself after errors.
    enabled: bool,
    /// Consecutive failures, for the backoff; reset on Established and on manual start/stop.
    failures: u32,
    connect_retry: Option<Instant>,
    hold: Option<Instant>,
    keepalive: Option<Instant>,
    idle_hold: Option<Instant>,
    negotiated: Option<Negotiated>,
    /// Bytes received and not yet decoded (at most one partial message).
    rx_buf: Vec<u8>,
    last_down: Option<DownReason>,
}

impl Session {
    /// A session in Idle; nothing happens until [`Event::ManualStart`].
    pub fn new(config: SessionConfig) -> Self {
        Session {
            local_open: config.local_open(),
            config,
            state: State::Idle,
            enabled: false,
            failures: 0,
            connect_retry: None,
            hold: None,
            keepalive: None,
            idle_hold: None,
            negotiated: None,
            rx_buf: Vec::new(),
            last_down: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The OPEN we send.
    pub fn local_open(&self) -> &Open {
        &self.local_open
    }

    /// Whether the session is started (it restarts by itself after errors).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// What the OPEN exchange negotiated, from OpenConfirm on.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// The peer's BGP identifier, once its OPEN was accepted.
    pub fn remote_id(&self) -> Option<Ipv4Addr> {
        self.negotiated.as_ref().map(|n| n.peer_open.bgp_id)
    }

    /// Why the last connection ended (NOTIFICATIONs received keep their code, subcode and communication).
    pub fn last_down(&self) -> Option<&DownReason> {
        self.last_down.as_ref()
    }

    /// The codec to encode the messages of [`Action::Send`] with.
    pub fn tx_codec(&self) -> Codec {
        self.negotiated
            .as_ref()
            .map(|n| n.tx.clone())
            .unwrap_or_default()
    }

    /// The codec received bytes are decoded with.
    pub fn rx_codec(&self) -> Codec {
        self.negotiated
            .as_ref()
            .map(|n| n.rx.clone())
            .unwrap_or_default()
    }

    /// The deadline of one timer, if running.
    pub fn timer(&self, timer: Timer) -> Option<Instant> {
        match timer {
            Timer::ConnectRetry => self.connect_retry,
            Timer::Hold => self.hold,
            Timer::Keepalive => self.keepalive,
            Timer::IdleHold => self.idle_hold,
        }
    }

    /// The earliest deadline: call [`Session::handle_timeout`] then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.connect_retry,
            self.hold,
            self.keepalive,
            self.idle_hold,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Handle every timer that expired at `now`, earliest first, each at most once.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let mut due: Vec<(Instant, Timer)> = [
            Timer::IdleHold,
            Timer::ConnectRetry,
            Timer::Hold,
            Timer::Keepalive,
        ]
        .into_iter()
        .filter_map(|t| self.timer(t).filter(|d| *d <= now).map(|d| (d, t)))
        .collect();
        due.sort_by_key(|(d, _)| *d);
        for (deadline, timer) in due {
            // An earlier expiry may have stopped or moved this timer.
            if self.timer(timer) == Some(deadline) {
                self.expire(timer, now, &mut out);
            }
        }
        out
    }

    /// Handle one event.
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::ManualStart => {
                if self.state == State::Idle && !self.enabled {
                    self.failures = 0;
                    self.start(now, &mut out);
                }
            }
            Event::ManualStop { communication } => self.manual_stop(&communication, &mut out),
            Event::TcpConnectionAcknowledged | Event::TcpConnectionConfirmed => match self.state {
                State::Connect | State::Active => self.send_open(now, &mut out),
                // RFC 4271 §8.2.2: Idle refuses connections.
                State::Idle => out.push(Action::CloseConnection),
                State::OpenSent | State::OpenConfirm | State::Established => {}
            },
            Event::TcpConnectionFails => self.connection_failed(now, &mut out),
            Event::Received(decoded) => self.received(decoded, now, &mut out),
        }
        out
    }

    /// Feed bytes of the TCP stream, split anywhere; every whole message is handled in order, each decoded
    /// with the codec in force when it arrives. Bytes are ignored when there is no connection.
    pub fn receive_bytes(&mut self, data: &[u8], now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.state.has_connection() {
            return out;
        }
        self.rx_buf.extend_from_slice(data);
        let mut used = 0;
        while self.state.has_connection() {
            let Some(rest) = self.rx_buf.get(used..) else {
                break;
            };
            let codec = self.negotiated.as_ref().map_or(&PLAIN, |n| &n.rx);
            match decode_message(rest, codec) {
                Ok((decoded, len)) => {
                    used += len;
                    self.received(decoded, now, &mut out);
                }
                Err(DecodeError::Incomplete { .. }) => break,
                Err(DecodeError::SessionReset(n)) => {
                    self.go_down(
                        DownReason::NotificationSent(n.clone()),
                        Some(n),
                        State::Idle,
                        now,
                        &mut out,
                    );
                }
            }
        }
        if self.state.has_connection() {
            self.rx_buf.drain(..used.min(self.rx_buf.len()));
        } else {
            self.rx_buf.clear();
        }
        out
    }

    /// Send an UPDATE (Established only); restarts the keepalive timer (RFC 4271 §10).
    pub fn send_update(
        &mut self,
        update: Update,
        now: Instant,
    ) -> Result<Vec<Action>, NotEstablished> {
        self.established()?;
        self.restart_keepalive(now);
        Ok(vec![Action::Send(Message::Update(update))])
    }

    /// Ends the session with `notification` (e.g. Cease / Maximum Number of Prefixes Reached, RFC
    /// 4486). With `restart` it starts again after the idle-hold delay, which grows with each failure;
    /// without, it stays down as after a manual stop (the peer's connections refused) until
    /// [`Event::ManualStart`]. The peer's routes are not kept as stale (we never offer graceful restart
    /// on notifications, RFC 8538). Nothing happens without a connection.
    pub fn tear_down(
        &mut self,
        notification: Notification,
        restart: bool,
        now: Instant,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state.has_connection() {
            self.enabled &= restart;
            self.go_down(
                DownReason::NotificationSent(notification.clone()),
                Some(notification),
                State::Idle,
                now,
                &mut out,
            );
        }
        out
    }

    /// Sends a ROUTE-REFRESH of a family: `Normal` asks the peer to re-send it (RFC 2918), `Begin` and
    /// `End` bracket our own re-sending (RFC 7313 §4). Nothing is sent when the peer does not support that
    /// kind or the family was not negotiated.
    pub fn send_route_refresh(
        &mut self,
        afi_safi: AfiSafi,
        subtype: RefreshSubtype,
    ) -> Result<Vec<Action>, NotEstablished> {
        let n = self.established()?;
        let supported = match subtype {
            RefreshSubtype::Normal => n.route_refresh,
            RefreshSubtype::Begin | RefreshSubtype::End => n.enhanced_route_refresh,
            RefreshSubtype::Unknown(_) => false,
        };
        if !supported || !n.families.contains(&afi_safi) {
            return Ok(Vec::new());
        }
        Ok(vec![Action::Send(Message::RouteRefresh(RouteRefresh {
            afi_safi,
            subtype,
        }))])
    }

    /// Start on a connection the peer opened, whatever the configured mode (used by [`super::Peer`] for a
    /// second, incoming connection): sends our OPEN and goes to OpenSent.
    pub fn accept_inbound(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Idle {
            self.enabled = true;
            self.idle_hold = None;
            self.send_open(now, &mut out);
        }
        out
    }

    /// Close this connection because it lost a collision (RFC 4271 §6.8): Cease / Connection Collision
    /// Resolution, then Idle without an automatic restart (the other connection carries on).
    pub fn close_for_collision(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state.has_connection() {
            let n = super::collision_notification();
            self.go_down(
                DownReason::CollisionResolved,
                Some(n),
                State::Idle,
                now,
                &mut out,
            );
        }
        self.stop_all();
        out
    }

    fn established(&self) -> Result<&Negotiated, NotEstablished> {
        match (&self.negotiated, self.state) {
            (Some(n), State::Established) => Ok(n),
            _ => Err(NotEstablished { state: self.state }),
        }
    }

    fn delay(&self) -> Duration {
        backoff::delay(
            self.config.connect_retry,
            self.config.connect_retry_max,
            self.failures,
            self.config.jitter_seed,
        )
    }

    fn start(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.enabled = true;
        self.idle_hold = None;
        if self.config.passive {
            self.state = State::Active;
        } else {
            self.state = State::Connect;
            self.connect_retry = Some(now + self.delay());
            out.push(Action::Connect);
        }
    }

    fn stop_all(&mut self) {
        self.enabled = false;
        self.failures = 0;
        self.state = State::Idle;
        self.connect_retry = None;
        self.hold = None;
        self.keepalive = None;
        self.idle_hold = None;
        self.negotiated = None;
        self.rx_buf.clear();
    }

    fn manual_stop(&mut self, communication: &str, out: &mut Vec<Action>) {
        match self.state {
            State::Idle => {}
            State::Connect => out.push(Action::CloseConnection),
            State::Active => {}
            State::OpenSent | State::OpenConfirm | State::Established => {
                let n = shutdown_notification(communication);
                out.push(Action::Send(Message::Notification(n)));
                out.push(Action::CloseConnection);
                self.last_down = Some(DownReason::ManualStop);
                if self.state == State::Established {
                    out.push(Action::SessionDown(Box::new(SessionDown {
                        reason: DownReason::ManualStop,
                        graceful: None,
                    })));
                }
            }
        }
        self.stop_all();
    }

    fn send_open(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.connect_retry = None;
        self.rx_buf.clear();
        self.negotiated = None;
        self.hold = Some(now + self.config.open_hold_time);
        self.state = State::OpenSent;
        out.push(Action::Send(Message::Open(self.local_open.clone())));
    }

    fn connection_failed(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.state {
            State::Idle | State::Active => {}
            State::Connect | State::OpenSent => {
                if self.state == State::OpenSent {
                    out.push(Action::CloseConnection);
                    self.last_down = Some(DownReason::ConnectionLost);
                }
                self.failures = self.failures.saturating_add(1);
                self.hold = None;
                self.rx_buf.clear();
                self.state = State::Active;
                self.connect_retry = (!self.config.passive).then(|| now + self.delay());
            }
            State::OpenConfirm | State::Established => {
                self.go_down(DownReason::ConnectionLost, None, State::Idle, now, out);
            }
        }
    }

    fn expire(&mut self, timer: Timer, now: Instant, out: &mut Vec<Action>) {
        match timer {
            Timer::IdleHold => {
                self.idle_hold = None;
                if self.state == State::Idle && self.enabled {
                    self.start(now, out);
                }
            }
            Timer::ConnectRetry => {
                self.connect_retry = None;
                match self.state {
                    State::Connect => {
                        // The attempt took too long: abandon it and try again, later next time.
                        out.push(Action::CloseConnection);
                        self.failures = self.failures.saturating_add(1);
                        self.start(now, out);
                    }
                    State::Active if !self.config.passive => self.start(now, out),
                    _ => {}
                }
            }
            Timer::Hold => {
                self.hold = None;
                if self.state.has_connection() {
                    let n =
                        Notification::new(code::HOLD_TIMER_EXPIRED, code::UNSPECIFIC, Vec::new());
                    self.go_down(DownReason::HoldTimerExpired, Some(n), State::Idle, now, out);
                }
            }
            Timer::Keepalive => {
                self.keepalive = None;
                if matches!(self.state, State::OpenConfirm | State::Established) {
                    out.push(Action::Send(Message::Keepalive));
                    self.restart_keepalive(now);
                }
            }
        }
    }

    fn restart_keepalive(&mut self, now: Instant) {
        self.keepalive = self
            .negotiated
            .as_ref()
            .and_then(Negotiated::keepalive_interval)
            .map(|k| now + k);
    }

    fn restart_hold(&mut self, now: Instant) {
        self.hold = self
            .negotiated
            .as_ref()
            .and_then(Negotiated::hold)
            .map(|h| now + h);
    }

    /// Leave the connected states: send `notification` if any, close, report the loss of an Established
    /// session, and schedule the automatic restart unless stopped.
    fn go_down(
        &mut self,
        reason: DownReason,
        notification: Option<Notification>,
        next: State,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        if let Some(n) = notification {
            out.push(Action::Send(Message::Notification(n)));
        }
        out.push(Action::CloseConnection);
        if self.state == State::Established {
            let graceful = self.negotiated.as_ref().and_then(|n| graceful(n, &reason));
            out.push(Action::SessionDown(Box::new(SessionDown {
                reason: reason.clone(),
                graceful,
            })));
        }
        self.last_down = Some(reason);
        self.hold = None;
        self.keepalive = None;
        self.connect_retry = None;
        self.negotiated = None;
        self.rx_buf.clear();
        self.failures = self.failures.saturating_add(1);
        self.state = next;
        if self.enabled {
            self.idle_hold = Some(now + self.delay());
        }
    }

    fn fsm_error(&mut self, now: Instant, out: &mut Vec<Action>) {
        let subcode = match self.state {
            State::OpenSent => fsm_subcode::OPEN_SENT,
            State::OpenConfirm => fsm_subcode::OPEN_CONFIRM,
            _ => fsm_subcode::ESTABLISHED,
        };
        let n = Notification::new(code::FSM, subcode, Vec::new());
        self.go_down(
            DownReason::NotificationSent(n.clone()),
            Some(n),
            State::Idle,
            now,
            out,
        );
    }

    fn received(&mut self, decoded: Decoded, now: Instant, out: &mut Vec<Action>) {
        if !self.state.has_connection() {
            return;
        }
        if let Decoded::Message(Message::Notification(n)) = decoded {
            self.go_down(
                DownReason::NotificationReceived(n),
                None,
                State::Idle,
                now,
                out,
            );
            return;
        }
        match self.state {
            State::OpenSent => match decoded {
                Decoded::Message(Message::Open(open)) => self.open_received(open, now, out),
                _ => self.fsm_error(now, out),
            },
            State::OpenConfirm => match decoded {
                Decoded::Message(Message::Keepalive) => {
                    self.state = State::Established;
                    self.failures = 0;
                    self.restart_hold(now);
                    if let Some(n) = &self.negotiated {
                        out.push(Action::SessionEstablished(Box::new(n.clone())));
                    }
                }
                _ => self.fsm_error(now, out),
            },
            State::Established => {
                self.restart_hold(now);
                self.established_message(decoded, now, out);
            }
            State::Idle | State::Connect | State::Active => {}
        }
    }

    fn open_received(&mut self, open: Open, now: Instant, out: &mut Vec<Action>) {
        match check_open(&self.config, &self.local_open, &open) {
            Ok(n) => {
                self.negotiated = Some(n);
                self.state = State::OpenConfirm;
                out.push(Action::Send(Message::Keepalive));
                self.restart_hold(now);
                self.restart_keepalive(now);
            }
            Err(n) => self.go_down(
                DownReason::NotificationSent(n.clone()),
                Some(n),
                State::Idle,
                now,
                out,
            ),
        }
    }

    fn established_message(&mut self, decoded: Decoded, now: Instant, out: &mut Vec<Action>) {
        match decoded {
            Decoded::Message(Message::Keepalive) => {}
            Decoded::Message(Message::Update(u)) => match u.end_of_rib_family() {
                Some(f) => out.push(Action::EndOfRib(f)),
                None => out.push(Action::Deliver(u)),
            },
            // What is left of an UPDATE that carried attributes is never an End-of-RIB marker.
            Decoded::AttributeDiscard { update, .. } => out.push(Action::Deliver(update)),
            Decoded::TreatAsWithdraw(t) => {
                if !t.withdrawn.is_empty() {
                    out.push(Action::Withdraw(t.withdrawn));
                }
            }
            Decoded::Message(Message::RouteRefresh(rr)) => {
                let Some(n) = &self.negotiated else { return };
                let allowed = match rr.subtype {
                    RefreshSubtype::Normal => n.route_refresh,
                    _ => n.enhanced_route_refresh,
                };
                // RFC 2918 §4: a family not negotiated is ignored.
                if allowed && n.families.contains(&rr.afi_safi) {
                    out.extend(refresh_action(rr.afi_safi, rr.subtype));
                }
            }
            Decoded::Message(Message::Open(_)) => self.fsm_error(now, out),
            // Handled before the per-state dispatch.
            Decoded::Message(Message::Notification(_)) => {}
        }
    }
}

/// Cease / Administrative Shutdown with the communication truncated to 255 bytes at a character boundary.
fn shutdown_notification(communication: &str) -> Notification {
    let mut end = communication.len().min(255);
    while !communication.is_char_boundary(end) {
        end -= 1;
    }
    let text = communication.get(..end).unwrap_or("");
    Notification::shutdown(code::cease::ADMINISTRATIVE_SHUTDOWN, text).unwrap_or_else(|_| {
        Notification::new(code::CEASE, code::cease::ADMINISTRATIVE_SHUTDOWN, vec![0])
    })
}

/// Whether the loss of this Established session keeps the peer's routes (RFC 4724 §4.2, RFC 8538 §3).
fn graceful(n: &Negotiated, reason: &DownReason) -> Option<PeerRestart> {
    let gr = n.peer_graceful_restart.as_ref()?;
    let not_hard_reset =
        |x: &Notification| !(x.code == code::CEASE && x.subcode == code::cease::HARD_RESET);
    let qualifies = match reason {
        DownReason::ConnectionLost => true,
        DownReason::HoldTimerExpired => n.graceful_notification(),
        DownReason::NotificationReceived(x) | DownReason::NotificationSent(x) => {
            n.graceful_notification() && not_hard_reset(x)
        }
        DownReason::ManualStop | DownReason::CollisionResolved => false,
    };
    qualifies.then(|| PeerRestart {
        restart_time: Duration::from_secs(u64::from(gr.restart_time)),
        families: gr.families.clone(),
    })
}
