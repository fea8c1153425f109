//! Connection collisions (RFC 4271 §6.8) through [`Peer`]: the pure decision, both outcomes, a connection
//! arriving while Established or while connecting, a lost main connection, a third connection, stop.

use std::time::Instant;

use super::*;
use crate::session::{
    collision_notification, resolve_collision, ConnId, Direction, DownReason, Peer, PeerAction,
};

fn on(conn: ConnId, actions: &[PeerAction]) -> Vec<Action> {
    actions
        .iter()
        .filter(|p| p.conn == Some(conn))
        .map(|p| p.action.clone())
        .collect()
}

fn with_id(id: [u8; 4]) -> SessionConfig {
    let mut c = config();
    c.local_id = Ipv4Addr::from(id);
    c
}

/// A peer whose outgoing connection 1 is in OpenSent and with the peer's connection 2 accepted.
fn colliding(config: SessionConfig, t0: Instant) -> Peer {
    let mut p = Peer::new(config);
    assert_eq!(
        p.start(t0),
        vec![PeerAction {
            conn: None,
            action: Action::Connect
        }]
    );
    let a = p.connected(1, t0);
    assert!(matches!(
        on(1, &a).as_slice(),
        [Action::Send(Message::Open(_))]
    ));
    let a = p.incoming(2, t0);
    assert!(matches!(
        on(2, &a).as_slice(),
        [Action::Send(Message::Open(_))]
    ));
    assert_eq!(
        p.extra().map(|(c, s)| (c, s.state())),
        Some((2, State::OpenSent))
    );
    assert_eq!(p.connection(), Some((1, Direction::Outbound)));
    p
}

fn open_bytes() -> Vec<u8> {
    wire(&Message::Open(peer_open()))
}

#[test]
fn the_higher_identifier_keeps_its_connection() {
    let (low, high) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    assert_eq!(resolve_collision(high, low, 1, 2), Direction::Outbound);
    assert_eq!(resolve_collision(low, high, 1, 2), Direction::Inbound);
    // Compared as integers, not as text: 10.0.0.10 > 10.0.0.9.
    assert_eq!(
        resolve_collision(
            Ipv4Addr::new(10, 0, 0, 10),
            Ipv4Addr::new(10, 0, 0, 9),
            1,
            2
        ),
        Direction::Outbound
    );
    // Equal identifiers (eBGP, RFC 6286): the higher AS.
    assert_eq!(
        resolve_collision(low, low, 65002, 65001),
        Direction::Outbound
    );
    assert_eq!(
        resolve_collision(low, low, 65001, 65002),
        Direction::Inbound
    );
    let n = collision_notification();
    assert_eq!((n.code, n.subcode), (6, 7));
    assert_eq!(
        wire(&Message::Notification(n)),
        [vec![0xff; 16], vec![0, 21, 3, 6, 7]].concat()
    );
}

#[test]
fn collision_won_closes_the_peers_connection() {
    let t0 = Instant::now();
    // Our id 10.0.0.9 beats the peer's 10.0.0.2: our outgoing connection 1 survives.
    let mut p = colliding(with_id([10, 0, 0, 9]), t0);
    let a = p.receive(2, &open_bytes(), t0);
    let two = on(2, &a);
    assert_eq!(
        two.iter()
            .filter_map(|x| match x {
                Action::Send(Message::Notification(n)) => Some(n.clone()),
                _ => None,
            })
            .collect::<Vec<_>>(),
        vec![collision_notification()]
    );
    assert_eq!(two.last(), Some(&Action::CloseConnection));
    assert!(on(1, &a).is_empty(), "connection 1 untouched: {a:?}");
    assert!(p.extra().is_none());
    // Connection 1 goes on to Established; later bytes on 2 are ignored.
    assert_eq!(p.receive(2, &wire(&Message::Keepalive), t0), vec![]);
    let mut bytes = open_bytes();
    bytes.extend(wire(&Message::Keepalive));
    let a = p.receive(1, &bytes, t0);
    assert!(a
        .iter()
        .any(|x| matches!(x.action, Action::SessionEstablished(_)) && x.conn == Some(1)));
    assert_eq!(
        (p.state(), p.connection()),
        (State::Established, Some((1, Direction::Outbound)))
    );
}

#[test]
fn collision_lost_closes_our_connection_and_keeps_the_peers() {
    let t0 = Instant::now();
    // Our id 10.0.0.1 loses to the peer's 10.0.0.2: its connection 2 survives; the OPEN arrives on ours
    // first, so the decision is made there.
    let mut p = colliding(config(), t0);
    let a = p.receive(1, &open_bytes(), t0);
    let one = on(1, &a);
    assert!(
        one.contains(&Action::Send(Message::Notification(
            collision_notification()
        ))),
        "{a:?}"
    );
    assert_eq!(one.last(), Some(&Action::CloseConnection));
    assert!(on(2, &a).is_empty());
    assert_eq!(p.connection(), Some((2, Direction::Inbound)));
    assert_eq!(p.state(), State::OpenSent);
    assert!(p.extra().is_none());
    assert_eq!(
        p.session().last_down(),
        None,
        "the promoted session is a fresh one"
    );
    let mut bytes = open_bytes();
    bytes.extend(wire(&Message::Keepalive));
    let a = p.receive(2, &bytes, t0);
    assert!(a
        .iter()
        .any(|x| matches!(x.action, Action::SessionEstablished(_)) && x.conn == Some(2)));
    assert_eq!(p.state(), State::Established);
    // The closed connection's failure report changes nothing.
    assert_eq!(p.closed(1, t0), vec![]);
    assert_eq!(p.state(), State::Established);
}

#[test]
fn a_connection_while_established_is_refused_with_6_7() {
    let t0 = Instant::now();
    let mut p = colliding(with_id([10, 0, 0, 9]), t0);
    let mut bytes = open_bytes();
    bytes.extend(wire(&Message::Keepalive));
    p.receive(1, &bytes, t0);
    assert_eq!(p.state(), State::Established);
    let a = p.incoming(3, t0);
    assert_eq!(
        on(3, &a),
        vec![
            Action::Send(Message::Notification(collision_notification())),
            Action::CloseConnection
        ]
    );
    assert_eq!(a.len(), 2);
    assert_eq!(p.state(), State::Established);
}

#[test]
fn a_third_connection_is_rejected_and_idle_refuses() {
    let t0 = Instant::now();
    let mut p = colliding(config(), t0);
    let a = p.incoming(3, t0);
    assert_eq!(
        on(3, &a),
        vec![
            Action::Send(Message::Notification(Notification::new(6, 5, vec![]))),
            Action::CloseConnection
        ]
    );
    let mut idle = Peer::new(config());
    assert_eq!(
        idle.incoming(4, t0),
        vec![PeerAction {
            conn: Some(4),
            action: Action::CloseConnection
        }]
    );
}

#[test]
fn an_incoming_connection_while_connecting_replaces_the_attempt() {
    let t0 = Instant::now();
    let mut p = Peer::new(config());
    p.start(t0);
    let a = p.incoming(5, t0);
    assert_eq!(
        a[0],
        PeerAction {
            conn: None,
            action: Action::CloseConnection
        }
    );
    assert!(matches!(
        on(5, &a).as_slice(),
        [Action::Send(Message::Open(_))]
    ));
    assert_eq!(p.connection(), Some((5, Direction::Inbound)));
    // The abandoned attempt completing late is closed.
    assert_eq!(
        p.connected(6, t0),
        vec![PeerAction {
            conn: Some(6),
            action: Action::CloseConnection
        }]
    );
    // A passive peer takes the connection in Active.
    let mut c = config();
    c.passive = true;
    let mut p = Peer::new(c);
    assert_eq!(p.start(t0), vec![]);
    let a = p.incoming(7, t0);
    assert!(matches!(
        on(7, &a).as_slice(),
        [Action::Send(Message::Open(_))]
    ));
    assert_eq!(a.len(), 1);
}

#[test]
fn losing_the_main_connection_promotes_the_extra_one() {
    let t0 = Instant::now();
    let mut p = colliding(config(), t0);
    let a = p.closed(1, t0);
    assert_eq!(on(1, &a), vec![Action::CloseConnection]);
    assert_eq!(p.connection(), Some((2, Direction::Inbound)));
    assert_eq!(p.state(), State::OpenSent);
    // Failures of the attempt while connecting go to Active with a retry.
    let mut q = Peer::new(config());
    q.start(t0);
    assert_eq!(q.connect_failed(t0), vec![]);
    assert_eq!(q.state(), State::Active);
    let retry = q.poll_timeout().expect("retry");
    assert_eq!(
        q.handle_timeout(retry),
        vec![PeerAction {
            conn: None,
            action: Action::Connect
        }]
    );
}

#[test]
fn stop_closes_both_connections_with_the_communication() {
    let t0 = Instant::now();
    let mut p = colliding(config(), t0);
    let a = p.stop("bye", t0);
    for conn in [1, 2] {
        let acts = on(conn, &a);
        let Some(Action::Send(Message::Notification(n))) = acts.first() else {
            panic!("{a:?}");
        };
        assert_eq!(n.shutdown_communication(), Some("bye"));
        assert_eq!(acts.last(), Some(&Action::CloseConnection));
    }
    assert_eq!(p.state(), State::Idle);
    assert!(p.extra().is_none());
    assert_eq!(p.poll_timeout(), None);
    assert_eq!(p.session().last_down(), Some(&DownReason::ManualStop));
}
