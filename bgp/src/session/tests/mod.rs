//! Tests of the session FSM and the peer on virtual time.
//!
//! Role: exercise every transition, timer, error and collision case with `Instant`s advanced by hand (no
//! sleeping), and two peers talking through an in-memory pipe. Inputs: scripted events and bytes.
//! Outputs: test results only. This file holds the shared helpers.

mod errors;
mod peer;
mod pipe;
mod random;
mod transitions;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::wire::{encode_message, Capability, Codec, Decoded, Message, Notification, Open};

use super::{Action, Event, Session, SessionConfig, State};

/// Our identity in the tests: AS 65001, 10.0.0.1, peering with AS 65002.
pub(super) fn config() -> SessionConfig {
    let mut c = SessionConfig::new(65001, Ipv4Addr::new(10, 0, 0, 1), 65002);
    c.jitter_seed = 7;
    c
}

/// The peer's OPEN: AS 65002, id 10.0.0.2, hold 90, with the 4-octet AS and route refresh capabilities.
pub(super) fn peer_open() -> Open {
    Open::new(
        65002,
        90,
        Ipv4Addr::new(10, 0, 0, 2),
        vec![
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
            Capability::FourOctetAs(65002),
        ],
    )
}

pub(super) fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Encode with the default codec.
pub(super) fn wire(msg: &Message) -> Vec<u8> {
    wire_with(msg, &Codec::default())
}

pub(super) fn wire_with(msg: &Message, codec: &Codec) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_message(msg, codec, &mut out).expect("test messages encode");
    out.to_vec()
}

/// The messages of the `Send` actions.
pub(super) fn sent(actions: &[Action]) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

/// The NOTIFICATION sent, if any.
pub(super) fn notification(actions: &[Action]) -> Option<Notification> {
    sent(actions).into_iter().find_map(|m| match m {
        Message::Notification(n) => Some(n),
        _ => None,
    })
}

pub(super) fn msg(m: Message) -> Event {
    Event::Received(Decoded::Message(m))
}

/// A session driven to OpenSent on an outgoing connection at `t0`.
pub(super) fn open_sent(config: SessionConfig, t0: Instant) -> Session {
    let mut s = Session::new(config);
    s.handle(Event::ManualStart, t0);
    s.handle(Event::TcpConnectionAcknowledged, t0);
    assert_eq!(s.state(), State::OpenSent);
    s
}

/// A session driven to Established with `open` from the peer, everything at `t0`.
pub(super) fn established(config: SessionConfig, open: Open, t0: Instant) -> Session {
    let mut s = open_sent(config, t0);
    s.handle(msg(Message::Open(open)), t0);
    assert_eq!(s.state(), State::OpenConfirm);
    let a = s.handle(msg(Message::Keepalive), t0);
    assert!(
        matches!(a.as_slice(), [Action::SessionEstablished(_)]),
        "{a:?}"
    );
    s
}
