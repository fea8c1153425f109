//! Property tests: random sequences of events, bytes and clock jumps against one [`Session`] and against a
//! [`Peer`], checking invariants after every step rather than exact outputs.
//!
//! Invariants: nothing panics; SessionEstablished and SessionDown alternate and match the Established state;
//! every connected state has a hold timer unless the negotiated hold time is 0; Connect has a connect-retry
//! timer; a started session in Idle has its automatic restart scheduled; the peer never has its extra
//! connection once Established, and never names the same connection twice.

use std::time::Instant;

use proptest::prelude::*;

use super::*;
use crate::session::{Peer, Timer};
use crate::wire::{AfiSafi, RefreshSubtype, RouteRefresh, Update};

#[derive(Debug, Clone)]
enum Op {
    Start,
    Stop,
    Ack,
    Confirm,
    Fails,
    GoodOpen(u16),
    BadOpen,
    Keepalive,
    EndOfRib,
    Notify,
    Refresh,
    Bytes(Vec<u8>),
    Wait(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Start),
        Just(Op::Stop),
        Just(Op::Ack),
        Just(Op::Confirm),
        Just(Op::Fails),
        prop_oneof![Just(0u16), Just(3), Just(9), Just(90)].prop_map(Op::GoodOpen),
        Just(Op::BadOpen),
        Just(Op::Keepalive),
        Just(Op::EndOfRib),
        Just(Op::Notify),
        Just(Op::Refresh),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Op::Bytes),
        (0u16..400).prop_map(Op::Wait),
    ]
}

fn message_bytes(op: &Op) -> Option<Vec<u8>> {
    let m = match op {
        Op::GoodOpen(hold) => {
            let mut o = peer_open();
            o.hold_time = *hold;
            Message::Open(o)
        }
        Op::BadOpen => {
            let mut o = peer_open();
            o.capabilities.clear();
            o.my_as = 1;
            Message::Open(o)
        }
        Op::Keepalive => Message::Keepalive,
        Op::EndOfRib => Message::Update(Update::end_of_rib(AfiSafi::IPV4_UNICAST)),
        Op::Notify => Message::Notification(Notification::new(6, 3, vec![])),
        Op::Refresh => Message::RouteRefresh(RouteRefresh {
            afi_safi: AfiSafi::IPV4_UNICAST,
            subtype: RefreshSubtype::Normal,
        }),
        Op::Bytes(b) => return Some(b.clone()),
        _ => return None,
    };
    Some(wire(&m))
}

/// Tracks the Established/Down pairing of a stream of actions.
fn check_reports(up: &mut bool, actions: &[Action]) -> Result<(), TestCaseError> {
    for a in actions {
        match a {
            Action::SessionEstablished(_) => {
                prop_assert!(!*up, "established twice");
                *up = true;
            }
            Action::SessionDown(_) => {
                prop_assert!(*up, "down without established");
                *up = false;
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_session(s: &Session, up: bool) -> Result<(), TestCaseError> {
    prop_assert_eq!(s.state() == State::Established, up);
    let hold_zero = s.negotiated().is_some_and(|n| n.hold_time == 0);
    if s.state().has_connection() && !hold_zero {
        prop_assert!(
            s.timer(Timer::Hold).is_some(),
            "{:?} without hold timer",
            s.state()
        );
    }
    if !s.state().has_connection() {
        prop_assert!(s.timer(Timer::Hold).is_none() && s.timer(Timer::Keepalive).is_none());
    }
    if s.state() == State::Connect {
        prop_assert!(s.timer(Timer::ConnectRetry).is_some());
    }
    if s.state() == State::Idle && s.is_enabled() {
        prop_assert!(s.timer(Timer::IdleHold).is_some());
    }
    if s.state() == State::Idle && !s.is_enabled() {
        prop_assert_eq!(s.poll_timeout(), None);
    }
    Ok(())
}

proptest! {
    #[test]
    fn session_invariants_hold_under_random_inputs(
        ops in proptest::collection::vec(op(), 1..60),
        passive in any::<bool>(),
    ) {
        let mut c = config();
        c.passive = passive;
        let mut s = Session::new(c);
        let mut now = Instant::now();
        let mut up = false;
        for op in &ops {
            let actions = match op {
                Op::Start => s.handle(Event::ManualStart, now),
                Op::Stop => s.handle(Event::ManualStop { communication: "x".into() }, now),
                Op::Ack => s.handle(Event::TcpConnectionAcknowledged, now),
                Op::Confirm => s.handle(Event::TcpConnectionConfirmed, now),
                Op::Fails => s.handle(Event::TcpConnectionFails, now),
                Op::Wait(secs_) => {
                    now += secs(u64::from(*secs_));
                    s.handle_timeout(now)
                }
                other => match message_bytes(other) {
                    Some(b) => s.receive_bytes(&b, now),
                    None => Vec::new(),
                },
            };
            check_reports(&mut up, &actions)?;
            if passive {
                prop_assert!(!actions.contains(&Action::Connect), "a passive session connected");
            }
            check_session(&s, up)?;
        }
    }

    #[test]
    fn peer_invariants_hold_under_random_connections(
        ops in proptest::collection::vec((op(), 0u64..4), 1..60),
    ) {
        let mut p = Peer::new(config());
        let mut now = Instant::now();
        let mut up = false;
        for (op, conn) in &ops {
            let actions = match op {
                Op::Start => p.start(now),
                Op::Stop => p.stop("x", now),
                Op::Ack => p.connected(*conn, now),
                Op::Confirm => p.incoming(*conn, now),
                Op::Fails => p.closed(*conn, now),
                Op::Wait(secs_) => {
                    now += secs(u64::from(*secs_));
                    p.handle_timeout(now)
                }
                other => match message_bytes(other) {
                    Some(b) => p.receive(*conn, &b, now),
                    None => Vec::new(),
                },
            };
            let reports: Vec<Action> = actions.iter().map(|a| a.action.clone()).collect();
            check_reports(&mut up, &reports)?;
            check_session(p.session(), up)?;
            if let Some((extra, s)) = p.extra() {
                prop_assert!(p.state() != State::Established, "extra connection kept while Established");
                prop_assert!(s.state().has_connection());
                prop_assert_ne!(Some(extra), p.connection().map(|c| c.0));
            }
        }
    }
}
