//! Errors and what Established delivers: OPEN errors with their NOTIFICATION bytes, NOTIFICATIONs received,
//! malformed and RFC 7606 UPDATEs, unexpected messages per state (RFC 6608), route refresh, End-of-RIB and
//! the graceful restart report.

use std::time::Instant;

use super::*;
use crate::session::{DownReason, PeerRestart, SessionDown, Timer};
use crate::wire::{
    AfiSafi, AsPath, GracefulRestart, GracefulRestartFamily, Nlri, Origin, PathAttributes, Prefix,
    RefreshSubtype, RouteRefresh, Update, AS_TRANS,
};

fn header(len: u8, kind: u8) -> Vec<u8> {
    [vec![0xff; 16], vec![0, len, kind]].concat()
}

/// Feed `open` in OpenSent and return the NOTIFICATION bytes sent, checking the session went down.
fn open_rejected(config: SessionConfig, open: Open) -> Vec<u8> {
    let t0 = Instant::now();
    let mut s = open_sent(config, t0);
    let a = s.receive_bytes(&wire(&Message::Open(open)), t0);
    assert_eq!(s.state(), State::Idle, "{a:?}");
    assert_eq!(a.last(), Some(&Action::CloseConnection));
    let n = notification(&a).expect("a NOTIFICATION");
    assert_eq!(
        s.last_down(),
        Some(&DownReason::NotificationSent(n.clone()))
    );
    assert!(s.timer(Timer::IdleHold).is_some());
    wire(&Message::Notification(n))
}

#[test]
fn open_errors_send_their_notifications() {
    // Wrong AS: 2/2.
    let mut open = peer_open();
    open.my_as = 65003;
    open.capabilities = vec![Capability::FourOctetAs(65003)];
    assert_eq!(
        open_rejected(config(), open),
        [header(21, 3), vec![2, 2]].concat()
    );
    // AS_TRANS without the 4-octet capability is AS 23456, not the one configured.
    let mut four = config();
    four.remote_as = 4_200_000_001;
    let bare = Open::new(4_200_000_001, 90, Ipv4Addr::new(10, 0, 0, 2), vec![]);
    assert_eq!(bare.my_as, AS_TRANS);
    assert_eq!(
        open_rejected(four.clone(), bare),
        [header(21, 3), vec![2, 2]].concat()
    );
    // A 4-byte AS in the capability with something else than AS_TRANS in My AS: 2/2.
    let mut odd = Open::new(
        4_200_000_001,
        90,
        Ipv4Addr::new(10, 0, 0, 2),
        vec![Capability::FourOctetAs(4_200_000_001)],
    );
    odd.my_as = 65002;
    assert_eq!(
        open_rejected(four.clone(), odd),
        [header(21, 3), vec![2, 2]].concat()
    );
    // Bad identifier: 0 (the decoder catches it), and ours on an iBGP session: 2/3.
    let mut open = peer_open();
    open.bgp_id = Ipv4Addr::UNSPECIFIED;
    assert_eq!(
        open_rejected(config(), open),
        [header(21, 3), vec![2, 3]].concat()
    );
    let mut ibgp = config();
    ibgp.remote_as = 65001;
    let same_id = Open::new(65001, 90, Ipv4Addr::new(10, 0, 0, 1), vec![]);
    assert_eq!(
        open_rejected(ibgp, same_id.clone()),
        [header(21, 3), vec![2, 3]].concat()
    );
    // Hold time 1 or 2: 2/6.
    for hold in [1, 2] {
        let mut open = peer_open();
        open.hold_time = hold;
        assert_eq!(
            open_rejected(config(), open),
            [header(21, 3), vec![2, 6]].concat()
        );
    }
    // Unsupported version (decoder): 2/1 with the version we support.
    let t0 = Instant::now();
    let mut s = open_sent(config(), t0);
    let mut bytes = wire(&Message::Open(peer_open()));
    bytes[19] = 3;
    let a = s.receive_bytes(&bytes, t0);
    assert_eq!(notification(&a), Some(Notification::new(2, 1, vec![0, 4])));
    // A required capability the peer lacks: 2/7 listing it.
    let mut strict = config();
    strict.required_capabilities = vec![crate::wire::capability::cap_code::ROUTE_REFRESH];
    let plain = Open::new(65002, 90, Ipv4Addr::new(10, 0, 0, 2), vec![]);
    assert_eq!(
        open_rejected(strict.clone(), plain),
        [header(23, 3), vec![2, 7, 2, 0]].concat()
    );

    // Accepted: a 4-byte AS done right, an eBGP peer with our identifier, unknown capabilities.
    let good = Open::new(
        4_200_000_001,
        90,
        Ipv4Addr::new(10, 0, 0, 2),
        vec![Capability::FourOctetAs(4_200_000_001)],
    );
    let s = established(four, good, t0);
    assert_eq!(s.negotiated().map(|n| n.peer_as), Some(4_200_000_001));
    let mut ebgp_same_id = peer_open();
    ebgp_same_id.bgp_id = Ipv4Addr::new(10, 0, 0, 1);
    ebgp_same_id.capabilities.push(Capability::Unknown {
        code: 71,
        value: vec![],
    });
    established(strict, ebgp_same_id, t0);
}

#[test]
fn notification_received_goes_down_and_keeps_the_communication() {
    let t0 = Instant::now();
    let bye = Notification::shutdown(2, "bye").expect("short");
    let mut s = established(config(), peer_open(), t0);
    let a = s.receive_bytes(&wire(&Message::Notification(bye.clone())), t0);
    assert_eq!(
        a,
        vec![
            Action::CloseConnection,
            Action::SessionDown(Box::new(SessionDown {
                reason: DownReason::NotificationReceived(bye.clone()),
                graceful: None,
            })),
        ]
    );
    let Some(DownReason::NotificationReceived(n)) = s.last_down() else {
        panic!("{:?}", s.last_down());
    };
    assert_eq!(
        (n.code, n.subcode, n.shutdown_communication()),
        (6, 2, Some("bye"))
    );
    assert_eq!(s.state(), State::Idle);

    // In OpenSent and OpenConfirm: down without a report to the RIB.
    let mut s = open_sent(config(), t0);
    let a = s.handle(msg(Message::Notification(bye.clone())), t0);
    assert_eq!(a, vec![Action::CloseConnection]);
    assert_eq!(s.state(), State::Idle);
    let mut s = open_sent(config(), t0);
    s.handle(msg(Message::Open(peer_open())), t0);
    assert_eq!(
        s.handle(msg(Message::Notification(bye)), t0),
        vec![Action::CloseConnection]
    );
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn malformed_update_resets_with_the_decoders_notification() {
    let t0 = Instant::now();
    let mut s = established(config(), peer_open(), t0);
    // An unrecognized well-known attribute (type 99): 3/2 with the attribute as data.
    let body = [0x00, 0x00, 0x00, 0x03, 0x40, 0x63, 0x00];
    let bytes = [header(26, 2), body.to_vec()].concat();
    let a = s.receive_bytes(&bytes, t0);
    let n = Notification::new(3, 2, vec![0x40, 0x63, 0x00]);
    assert_eq!(
        a,
        vec![
            Action::Send(Message::Notification(n.clone())),
            Action::CloseConnection,
            Action::SessionDown(Box::new(SessionDown {
                reason: DownReason::NotificationSent(n),
                graceful: None,
            })),
        ]
    );
    assert_eq!(s.state(), State::Idle);
    // A bad marker: 1/1; the rest of the buffer is dropped.
    let mut s = established(config(), peer_open(), t0);
    let mut bytes = wire(&Message::Keepalive);
    bytes[0] = 0;
    bytes.extend(wire(&Message::Keepalive));
    let a = s.receive_bytes(&bytes, t0);
    assert_eq!(notification(&a), Some(Notification::new(1, 1, vec![])));
    assert_eq!(s.receive_bytes(&wire(&Message::Keepalive), t0), vec![]);
}

fn route_update(prefix: &str, len: u8) -> Update {
    Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(vec![65002])),
            next_hop: Some(Ipv4Addr::new(10, 0, 0, 2)),
            ..PathAttributes::default()
        },
        nlri: vec![Nlri::new(
            Prefix::new(prefix.parse().expect("ip"), len).expect("len"),
        )],
        ..Update::default()
    }
}

#[test]
fn established_delivers_updates_withdrawals_and_end_of_rib() {
    let t0 = Instant::now();
    let mut s = established(config(), peer_open(), t0);
    let t1 = t0 + secs(20);
    let u = route_update("198.51.100.0", 24);
    let a = s.receive_bytes(&wire_with(&Message::Update(u.clone()), &s.rx_codec()), t1);
    assert_eq!(a, vec![Action::Deliver(u)]);
    assert_eq!(
        s.timer(Timer::Hold),
        Some(t1 + secs(90)),
        "any message resets the hold timer"
    );

    // RFC 7606 treat-as-withdraw (ORIGIN 5 with 10.0.0.0/8): a withdrawal, the session stays up.
    let body = [0, 0, 0, 4, 0x40, 0x01, 0x01, 0x05, 0x08, 0x0a];
    let a = s.receive_bytes(&[header(29, 2), body.to_vec()].concat(), t1);
    let ten = Nlri::new(Prefix::new("10.0.0.0".parse().expect("ip"), 8).expect("len"));
    assert_eq!(a, vec![Action::Withdraw(vec![ten])]);
    // RFC 7606 attribute discard (an ATOMIC_AGGREGATE of length 1 added): delivered without it.
    let u = route_update("203.0.113.0", 24);
    let mut bytes = wire_with(&Message::Update(u.clone()), &s.rx_codec());
    let attr_len = usize::from(u16::from_be_bytes([bytes[21], bytes[22]]));
    bytes.splice(23 + attr_len..23 + attr_len, [0x40, 0x06, 0x01, 0x00]);
    bytes[17] += 4;
    bytes[22] += 4;
    let a = s.receive_bytes(&bytes, t1);
    assert_eq!(a, vec![Action::Deliver(u)]);

    // End-of-RIB markers.
    for family in [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST] {
        let a = s.handle(msg(Message::Update(Update::end_of_rib(family))), t1);
        assert_eq!(a, vec![Action::EndOfRib(family)]);
    }
    assert_eq!(s.state(), State::Established);
}

#[test]
fn unexpected_messages_are_fsm_errors_with_rfc6608_subcodes() {
    let t0 = Instant::now();
    let rr = Message::RouteRefresh(RouteRefresh {
        afi_safi: AfiSafi::IPV4_UNICAST,
        subtype: RefreshSubtype::Normal,
    });
    let update = Message::Update(Update::default());
    for m in [Message::Keepalive, update.clone(), rr.clone()] {
        let mut s = open_sent(config(), t0);
        let a = s.handle(msg(m), t0);
        assert_eq!(notification(&a), Some(Notification::new(5, 1, vec![])));
        assert_eq!(wire(&sent(&a)[0]), [header(21, 3), vec![5, 1]].concat());
        assert_eq!(s.state(), State::Idle);
    }
    for m in [Message::Open(peer_open()), update, rr] {
        let mut s = open_sent(config(), t0);
        s.handle(msg(Message::Open(peer_open())), t0);
        let a = s.handle(msg(m), t0);
        assert_eq!(notification(&a), Some(Notification::new(5, 2, vec![])));
        assert_eq!(s.state(), State::Idle);
    }
    // A treat-as-withdraw UPDATE is still an UPDATE.
    let mut s = open_sent(config(), t0);
    let body = [0, 0, 0, 4, 0x40, 0x01, 0x01, 0x05, 0x08, 0x0a];
    let a = s.receive_bytes(&[header(29, 2), body.to_vec()].concat(), t0);
    assert_eq!(notification(&a), Some(Notification::new(5, 1, vec![])));

    let mut s = established(config(), peer_open(), t0);
    let a = s.handle(msg(Message::Open(peer_open())), t0);
    assert_eq!(notification(&a), Some(Notification::new(5, 3, vec![])));
    assert!(matches!(a.last(), Some(Action::SessionDown(_))));
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn route_refresh_requests_and_markers() {
    let t0 = Instant::now();
    let rr = |afi_safi, subtype| msg(Message::RouteRefresh(RouteRefresh { afi_safi, subtype }));
    let mut s = established(config(), peer_open(), t0);
    assert_eq!(
        s.handle(rr(AfiSafi::IPV4_UNICAST, RefreshSubtype::Normal), t0),
        vec![Action::RouteRefreshRequested {
            afi_safi: AfiSafi::IPV4_UNICAST
        }]
    );
    assert_eq!(
        s.handle(rr(AfiSafi::IPV4_UNICAST, RefreshSubtype::Begin), t0),
        vec![Action::RouteRefreshMarker {
            afi_safi: AfiSafi::IPV4_UNICAST,
            begin: true
        }]
    );
    assert_eq!(
        s.handle(rr(AfiSafi::IPV4_UNICAST, RefreshSubtype::End), t0),
        vec![Action::RouteRefreshMarker {
            afi_safi: AfiSafi::IPV4_UNICAST,
            begin: false
        }]
    );
    // Unknown subtypes and families not negotiated are ignored.
    assert_eq!(
        s.handle(rr(AfiSafi::IPV4_UNICAST, RefreshSubtype::Unknown(9)), t0),
        vec![]
    );
    assert_eq!(
        s.handle(rr(AfiSafi::IPV6_UNICAST, RefreshSubtype::Normal), t0),
        vec![]
    );
    assert_eq!(s.state(), State::Established);
    // Our own request.
    let a = s
        .send_route_refresh(AfiSafi::IPV4_UNICAST, RefreshSubtype::Normal)
        .expect("established");
    assert_eq!(sent(&a), vec![wire_msg_rr()]);
    // Our markers around a re-send (the peer does enhanced route refresh).
    for subtype in [RefreshSubtype::Begin, RefreshSubtype::End] {
        let a = s
            .send_route_refresh(AfiSafi::IPV4_UNICAST, subtype)
            .expect("established");
        assert_eq!(
            sent(&a),
            vec![Message::RouteRefresh(RouteRefresh {
                afi_safi: AfiSafi::IPV4_UNICAST,
                subtype
            })]
        );
    }

    // A peer that did not advertise route refresh: its requests are ignored, ours not sent.
    let plain = Open::new(65002, 90, Ipv4Addr::new(10, 0, 0, 2), vec![]);
    let mut s = established(config(), plain, t0);
    assert_eq!(
        s.handle(rr(AfiSafi::IPV4_UNICAST, RefreshSubtype::Normal), t0),
        vec![]
    );
    for subtype in [
        RefreshSubtype::Normal,
        RefreshSubtype::Begin,
        RefreshSubtype::End,
    ] {
        assert_eq!(
            s.send_route_refresh(AfiSafi::IPV4_UNICAST, subtype),
            Ok(vec![])
        );
    }
}

fn wire_msg_rr() -> Message {
    Message::RouteRefresh(RouteRefresh {
        afi_safi: AfiSafi::IPV4_UNICAST,
        subtype: RefreshSubtype::Normal,
    })
}

fn gr(restart_time: u16, notification: bool) -> GracefulRestart {
    GracefulRestart {
        restarting: false,
        notification,
        restart_time,
        families: vec![GracefulRestartFamily {
            afi_safi: AfiSafi::IPV4_UNICAST,
            forwarding_preserved: true,
        }],
    }
}

fn down_of(a: &[Action]) -> SessionDown {
    a.iter()
        .find_map(|x| match x {
            Action::SessionDown(d) => Some((**d).clone()),
            _ => None,
        })
        .expect("a SessionDown")
}

#[test]
fn graceful_restart_report_on_session_loss() {
    let t0 = Instant::now();
    let mut ours = config();
    ours.graceful_restart = Some(gr(90, false));
    assert!(ours
        .local_open()
        .capabilities
        .contains(&Capability::GracefulRestart(gr(90, false))));
    let with_gr = |n| {
        let mut o = peer_open();
        o.capabilities.push(Capability::GracefulRestart(gr(120, n)));
        o
    };
    let expected = Some(PeerRestart {
        restart_time: secs(120),
        families: gr(120, false).families,
    });

    // TCP loss with a GR peer: graceful.
    let mut s = established(ours.clone(), with_gr(false), t0);
    let d = down_of(&s.handle(Event::TcpConnectionFails, t0));
    assert_eq!(
        (d.reason, d.graceful),
        (DownReason::ConnectionLost, expected.clone())
    );
    // Hold timer expiry without the N bits: not graceful (a NOTIFICATION was sent).
    let mut s = established(ours.clone(), with_gr(false), t0);
    let d = down_of(&s.handle_timeout(t0 + secs(90)));
    assert_eq!(d.graceful, None);
    // A peer without GR: never graceful.
    let mut s = established(ours.clone(), peer_open(), t0);
    assert_eq!(
        down_of(&s.handle(Event::TcpConnectionFails, t0)).graceful,
        None
    );

    // RFC 8538: with the N bit on both sides, a NOTIFICATION other than Hard Reset keeps the routes.
    let mut n_ours = config();
    n_ours.graceful_restart = Some(gr(90, true));
    let mut s = established(n_ours.clone(), with_gr(true), t0);
    let d = down_of(&s.handle_timeout(t0 + secs(90)));
    assert_eq!(
        (d.reason, d.graceful),
        (DownReason::HoldTimerExpired, expected.clone())
    );
    let mut s = established(n_ours.clone(), with_gr(true), t0);
    let cease = Notification::new(6, 4, vec![0]);
    let d = down_of(&s.handle(msg(Message::Notification(cease)), t0));
    assert_eq!(d.graceful, expected);
    let mut s = established(n_ours.clone(), with_gr(true), t0);
    let hard = Notification::new(6, 9, vec![]);
    let d = down_of(&s.handle(msg(Message::Notification(hard)), t0));
    assert_eq!(d.graceful, None);
    // Our manual stop is never graceful.
    let mut s = established(n_ours, with_gr(true), t0);
    let stop = Event::ManualStop {
        communication: String::new(),
    };
    assert_eq!(down_of(&s.handle(stop, t0)).graceful, None);
}
