//! The BGP session: the RFC 4271 §8 finite state machine, sans-IO.
//!
//! Role: drive one peering from configuration to Established and back, with the timers, the OPEN checks and
//! capability negotiation, error handling (RFC 4271 §6, RFC 6608, RFC 7606 outcomes from the codec), connection
//! collision resolution (RFC 4271 §6.8) and the graceful restart / route refresh hooks the RIB needs.
//! Nothing here owns a socket, a task or a clock.
//!
//! Inputs: [`Event`]s (manual start/stop, TCP connection events, decoded messages), raw bytes from the TCP
//! stream (split anywhere), and `now` as a [`std::time::Instant`] (tests advance a virtual one).
//! Outputs: [`Action`]s for the owner to carry out (connect, close, send a message, report to the RIB) and the
//! next deadline to wake up at ([`Session::poll_timeout`]).
//!
//! Layout: [`Session`] (fsm.rs) is the FSM of one peer over one TCP connection at a time; [`Peer`] (peer.rs)
//! owns up to two sessions (ours and an incoming one) and resolves collisions between them; [`SessionConfig`]
//! (config.rs) builds our OPEN; [`negotiate`] (negotiate.rs) checks the peer's OPEN and negotiates;
//! [`backoff`] computes the jittered exponential connect-retry delays.

pub mod backoff;
pub mod config;
pub mod fsm;
pub mod negotiate;
pub mod peer;

#[cfg(test)]
mod tests;

use std::time::Duration;

use crate::wire::{
    AfiSafi, Decoded, GracefulRestartFamily, Message, Nlri, Notification, RefreshSubtype, Update,
};

pub use config::SessionConfig;
pub use fsm::Session;
pub use negotiate::{check_open, Negotiated};
pub use peer::{collision_notification, resolve_collision, ConnId, Direction, Peer, PeerAction};

/// Finite State Machine Error subcodes (RFC 6608 §3).
pub mod fsm_subcode {
    /// Receive Unexpected Message in OpenSent State.
    pub const OPEN_SENT: u8 = 1;
    /// Receive Unexpected Message in OpenConfirm State.
    pub const OPEN_CONFIRM: u8 = 2;
    /// Receive Unexpected Message in Established State.
    pub const ESTABLISHED: u8 = 3;
}

/// The FSM states of RFC 4271 §8.2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not running, or waiting for the automatic restart after an error.
    Idle,
    /// Our TCP connection attempt is in progress.
    Connect,
    /// Waiting for the peer to connect (and, unless passive, for the connect-retry timer).
    Active,
    /// Connected, our OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for the peer's KEEPALIVE.
    OpenConfirm,
    /// Up: UPDATEs flow.
    Established,
}

impl State {
    /// Whether the FSM has a TCP connection in this state.
    pub fn has_connection(self) -> bool {
        matches!(
            self,
            State::OpenSent | State::OpenConfirm | State::Established
        )
    }
}

/// An input event (RFC 4271 §8.1, the subset this FSM distinguishes).
#[derive(Debug, Clone, PartialEq, Eq)]
// Decoded UPDATEs dominate: boxing them would add an allocation per message.
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// Start the session (Event 1, or Event 4/5 when the configuration is passive).
    ManualStart,
    /// Stop the session (Event 2); in a connected state a Cease / Administrative Shutdown carrying this
    /// shutdown communication (RFC 9003, truncated to 255 bytes) is sent first.
    ManualStop {
        /// The shutdown communication, may be empty.
        communication: String,
    },
    /// Our outgoing TCP connection completed (Event 16, TcpCRAcked).
    TcpConnectionAcknowledged,
    /// We accepted the peer's incoming TCP connection (Event 17, TcpConnectionConfirmed).
    TcpConnectionConfirmed,
    /// The TCP connection failed or was closed by the peer, or our attempt failed (Event 18).
    TcpConnectionFails,
    /// A message decoded by the owner (the byte path is [`Session::receive_bytes`]).
    Received(Decoded),
}

/// The timers of the FSM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// ConnectRetryTimer (jittered exponential backoff).
    ConnectRetry,
    /// HoldTimer.
    Hold,
    /// KeepaliveTimer.
    Keepalive,
    /// The automatic restart after an error (IdleHoldTimer, RFC 4271 §8.1.1), with the same backoff.
    IdleHold,
}

/// What the owner must do, or report, after an input.
#[derive(Debug, Clone, PartialEq, Eq)]
// UPDATE dominates the traffic: boxing it would add an allocation per UPDATE.
#[allow(clippy::large_enum_variant)]
pub enum Action {
    /// Initiate a TCP connection to the peer; report [`Event::TcpConnectionAcknowledged`] or
    /// [`Event::TcpConnectionFails`].
    Connect,
    /// Close the TCP connection (after sending what was queued before), or abandon the attempt in progress.
    CloseConnection,
    /// Send this message on the connection, encoded with [`Session::tx_codec`].
    Send(Message),
    /// The session reached Established.
    SessionEstablished(Box<Negotiated>),
    /// An Established session went down. Every `SessionEstablished` is followed by exactly one of these.
    SessionDown(Box<SessionDown>),
    /// An UPDATE received in Established, for the RIB (also the remainder of an RFC 7606 attribute discard).
    Deliver(Update),
    /// Routes to withdraw: an UPDATE received with an RFC 7606 treat-as-withdraw error.
    Withdraw(Vec<Nlri>),
    /// The peer sent the End-of-RIB marker of this family (RFC 4724 §2).
    EndOfRib(AfiSafi),
    /// The peer asked us to re-send our routes of this family (RFC 2918).
    RouteRefreshRequested {
        /// The family.
        afi_safi: AfiSafi,
    },
    /// The peer begins (BoRR) or ends (EoRR) re-sending a family (RFC 7313 §4): at the end, routes of the
    /// family not re-sent since the beginning are stale.
    RouteRefreshMarker {
        /// The family.
        afi_safi: AfiSafi,
        /// Beginning (true) or end (false) of the refresh.
        begin: bool,
    },
}

/// Why an Established session went down, and whether the peer's routes are to be kept (graceful restart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDown {
    /// Why.
    pub reason: DownReason,
    /// Set when the peer advertised graceful restart and the loss qualifies (RFC 4724 §4.2: the TCP session
    /// ended without a NOTIFICATION; RFC 8538: or with one other than Hard Reset when both sides set the N bit).
    pub graceful: Option<PeerRestart>,
}

/// The peer's graceful restart promise, for the RIB to keep its routes stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRestart {
    /// How long to wait for the peer to come back (its advertised restart time).
    pub restart_time: Duration,
    /// The families the peer preserves, with their Forwarding State bits.
    pub families: Vec<GracefulRestartFamily>,
}

/// Why a session left a connected state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// Stopped by the owner; we sent Cease / Administrative Shutdown.
    ManualStop,
    /// The hold timer expired; we sent Hold Timer Expired (4/0).
    HoldTimerExpired,
    /// The peer sent this NOTIFICATION (its shutdown communication: [`Notification::shutdown_communication`]).
    NotificationReceived(Notification),
    /// We sent this NOTIFICATION: a malformed message, an unacceptable OPEN or an FSM error.
    NotificationSent(Notification),
    /// The TCP connection failed or was closed without a NOTIFICATION.
    ConnectionLost,
    /// This connection lost a collision with another one to the same peer; we sent Cease 6/7.
    CollisionResolved,
}

/// The action a ROUTE-REFRESH of this subtype reports, if any.
pub(crate) fn refresh_action(afi_safi: AfiSafi, subtype: RefreshSubtype) -> Option<Action> {
    match subtype {
        RefreshSubtype::Normal => Some(Action::RouteRefreshRequested { afi_safi }),
        RefreshSubtype::Begin => Some(Action::RouteRefreshMarker {
            afi_safi,
            begin: true,
        }),
        RefreshSubtype::End => Some(Action::RouteRefreshMarker {
            afi_safi,
            begin: false,
        }),
        // RFC 7313 §5: a message with an unknown subtype is ignored.
        RefreshSubtype::Unknown(_) => None,
    }
}
