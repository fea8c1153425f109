//! State transitions and timers: start (active and passive) to Established, connection failures and the
//! backoff, hold and keepalive timers (including hold time 0), manual stop and automatic restart.

use std::time::Instant;

use super::*;
use crate::session::backoff;
use crate::session::{DownReason, Timer};

#[test]
fn active_start_connect_opensent_openconfirm_established() {
    let t0 = Instant::now();
    let mut s = Session::new(config());
    assert_eq!(s.state(), State::Idle);
    assert_eq!(s.poll_timeout(), None);

    assert_eq!(s.handle(Event::ManualStart, t0), vec![Action::Connect]);
    assert_eq!(s.state(), State::Connect);
    let retry = s.timer(Timer::ConnectRetry).expect("connect retry running");
    assert_eq!(retry, t0 + backoff::delay(secs(5), secs(120), 0, 7));
    assert!(retry > t0 + secs(3) && retry <= t0 + secs(5));

    let t1 = t0 + secs(1);
    let a = s.handle(Event::TcpConnectionAcknowledged, t1);
    assert_eq!(a, vec![Action::Send(Message::Open(config().local_open()))]);
    assert_eq!(s.state(), State::OpenSent);
    assert_eq!(s.timer(Timer::ConnectRetry), None);
    assert_eq!(s.timer(Timer::Hold), Some(t1 + secs(240)));

    let t2 = t1 + secs(1);
    let a = s.handle(msg(Message::Open(peer_open())), t2);
    assert_eq!(a, vec![Action::Send(Message::Keepalive)]);
    assert_eq!(s.state(), State::OpenConfirm);
    assert_eq!(s.timer(Timer::Hold), Some(t2 + secs(90)));
    assert_eq!(s.timer(Timer::Keepalive), Some(t2 + secs(30)));
    assert_eq!(s.remote_id(), Some(Ipv4Addr::new(10, 0, 0, 2)));

    let t3 = t2 + secs(1);
    let a = s.handle(msg(Message::Keepalive), t3);
    let [Action::SessionEstablished(n)] = a.as_slice() else {
        panic!("expected SessionEstablished, got {a:?}");
    };
    assert_eq!(s.state(), State::Established);
    assert_eq!((n.hold_time, n.keepalive, n.peer_as), (90, 30, 65002));
    assert_eq!(n.peer_open, peer_open());
    assert!(n.rx.four_byte_as && n.tx.four_byte_as);
    assert!(n.route_refresh && n.enhanced_route_refresh);
    assert_eq!(n.families, vec![crate::wire::AfiSafi::IPV4_UNICAST]);
    assert_eq!(s.timer(Timer::Hold), Some(t3 + secs(90)));
    assert_eq!(s.tx_codec(), n.tx);
}

#[test]
fn passive_waits_never_connects_then_establishes() {
    let t0 = Instant::now();
    let mut c = config();
    c.passive = true;
    let mut s = Session::new(c);
    assert_eq!(s.handle(Event::ManualStart, t0), vec![]);
    assert_eq!(s.state(), State::Active);
    assert_eq!(
        s.poll_timeout(),
        None,
        "a passive session has no connect-retry timer"
    );
    assert_eq!(s.handle_timeout(t0 + secs(3600)), vec![]);
    assert_eq!(s.state(), State::Active);

    let t1 = t0 + secs(3600);
    let a = s.handle(Event::TcpConnectionConfirmed, t1);
    assert_eq!(a, vec![Action::Send(Message::Open(s.local_open().clone()))]);
    assert_eq!(s.state(), State::OpenSent);
    s.handle(msg(Message::Open(peer_open())), t1);
    assert_eq!(s.state(), State::OpenConfirm);
    let a = s.handle(msg(Message::Keepalive), t1);
    assert!(matches!(a.as_slice(), [Action::SessionEstablished(_)]));
    assert_eq!(s.state(), State::Established);

    // Losing the connection later: back to Idle, then automatically to Active, still never connecting.
    let a = s.handle(Event::TcpConnectionFails, t1 + secs(1));
    assert!(
        matches!(
            a.as_slice(),
            [Action::CloseConnection, Action::SessionDown(_)]
        ),
        "{a:?}"
    );
    assert_eq!(s.state(), State::Idle);
    let restart = s
        .timer(Timer::IdleHold)
        .expect("automatic restart scheduled");
    assert_eq!(s.handle_timeout(restart), vec![]);
    assert_eq!(s.state(), State::Active);
}

#[test]
fn connect_failure_goes_active_and_retries_with_growing_capped_backoff() {
    let mut now = Instant::now();
    let mut s = Session::new(config());
    s.handle(Event::ManualStart, now);
    let mut waits = Vec::new();
    for attempt in 1..=10u32 {
        assert_eq!(s.state(), State::Connect);
        assert_eq!(s.handle(Event::TcpConnectionFails, now), vec![]);
        assert_eq!(s.state(), State::Active);
        let retry = s.timer(Timer::ConnectRetry).expect("retry scheduled");
        assert_eq!(retry - now, backoff::delay(secs(5), secs(120), attempt, 7));
        waits.push(retry - now);
        // Nothing happens before the deadline.
        assert_eq!(s.handle_timeout(retry - secs(1)), vec![]);
        now = retry;
        assert_eq!(s.handle_timeout(now), vec![Action::Connect]);
    }
    for w in waits[..4].windows(2) {
        assert!(w[1] > w[0], "backoff grows: {waits:?}");
    }
    assert!(waits.iter().all(|w| *w <= secs(120)), "capped: {waits:?}");
    assert!(
        waits[6..].iter().all(|w| *w >= secs(90)),
        "at the cap: {waits:?}"
    );
    // Established resets the backoff.
    s.handle(Event::TcpConnectionAcknowledged, now);
    s.handle(msg(Message::Open(peer_open())), now);
    s.handle(msg(Message::Keepalive), now);
    s.handle(Event::TcpConnectionFails, now);
    assert_eq!(
        s.timer(Timer::IdleHold),
        Some(now + backoff::delay(secs(5), secs(120), 1, 7))
    );
}

#[test]
fn connect_retry_expiry_in_connect_abandons_the_attempt() {
    let t0 = Instant::now();
    let mut s = Session::new(config());
    s.handle(Event::ManualStart, t0);
    let first = s.timer(Timer::ConnectRetry).expect("running");
    let a = s.handle_timeout(first);
    assert_eq!(a, vec![Action::CloseConnection, Action::Connect]);
    assert_eq!(s.state(), State::Connect);
    let second = s.timer(Timer::ConnectRetry).expect("restarted");
    assert!(second - first > first - t0, "the next wait is longer");
}

#[test]
fn opensent_connection_failure_goes_active() {
    let t0 = Instant::now();
    let mut s = open_sent(config(), t0);
    let a = s.handle(Event::TcpConnectionFails, t0 + secs(1));
    assert_eq!(a, vec![Action::CloseConnection]);
    assert_eq!(s.state(), State::Active);
    assert_eq!(s.timer(Timer::Hold), None);
    assert!(s.timer(Timer::ConnectRetry).is_some());
    assert_eq!(s.last_down(), Some(&DownReason::ConnectionLost));
    // An incoming connection is taken while Active.
    let a = s.handle(Event::TcpConnectionConfirmed, t0 + secs(2));
    assert!(matches!(a.as_slice(), [Action::Send(Message::Open(_))]));
    assert_eq!(s.state(), State::OpenSent);
}

#[test]
fn hold_timer_expiry_in_opensent_sends_4_0_and_restarts_later() {
    let t0 = Instant::now();
    let mut s = open_sent(config(), t0);
    assert_eq!(s.handle_timeout(t0 + secs(239)), vec![]);
    let a = s.handle_timeout(t0 + secs(240));
    assert_eq!(notification(&a), Some(Notification::new(4, 0, vec![])));
    assert_eq!(a.last(), Some(&Action::CloseConnection));
    assert_eq!(
        wire(&sent(&a)[0]),
        [vec![0xff; 16], vec![0x00, 21, 3, 4, 0]].concat()
    );
    assert_eq!(s.state(), State::Idle);
    assert_eq!(s.last_down(), Some(&DownReason::HoldTimerExpired));
    let restart = s.timer(Timer::IdleHold).expect("automatic restart");
    assert_eq!(s.handle_timeout(restart), vec![Action::Connect]);
    assert_eq!(s.state(), State::Connect);
}

#[test]
fn hold_timer_expiry_in_openconfirm_and_established() {
    let t0 = Instant::now();
    let mut s = open_sent(config(), t0);
    s.handle(msg(Message::Open(peer_open())), t0);
    let a = s.handle_timeout(t0 + secs(90));
    // The keepalive due at 30 fires first (a late wake-up), then the hold timer.
    assert_eq!(sent(&a)[0], Message::Keepalive);
    assert_eq!(notification(&a), Some(Notification::new(4, 0, vec![])));
    assert_eq!(s.state(), State::Idle);

    let mut s = established(config(), peer_open(), t0);
    assert_eq!(
        s.handle_timeout(t0 + secs(30)),
        vec![Action::Send(Message::Keepalive)]
    );
    assert_eq!(
        s.handle_timeout(t0 + secs(60)),
        vec![Action::Send(Message::Keepalive)]
    );
    let a = s.handle_timeout(t0 + secs(90));
    assert_eq!(
        a,
        vec![
            Action::Send(Message::Notification(Notification::new(4, 0, vec![]))),
            Action::CloseConnection,
            Action::SessionDown(Box::new(crate::session::SessionDown {
                reason: DownReason::HoldTimerExpired,
                graceful: None,
            })),
        ]
    );
    assert_eq!(s.state(), State::Idle);
    assert_eq!(s.timer(Timer::Keepalive), None);
}

#[test]
fn keepalives_every_third_of_hold_and_received_messages_reset_hold() {
    let t0 = Instant::now();
    let mut s = established(config(), peer_open(), t0);
    let mut sent_at = Vec::new();
    let mut now = t0;
    // The peer sends a KEEPALIVE every 60 s; run 10 virtual minutes.
    let mut next_peer = t0 + secs(60);
    while now < t0 + secs(600) {
        let deadline = s.poll_timeout().expect("timers run").min(next_peer);
        now = deadline;
        if now == next_peer {
            assert!(s.handle(msg(Message::Keepalive), now).is_empty());
            assert_eq!(s.timer(Timer::Hold), Some(now + secs(90)));
            next_peer += secs(60);
        }
        for a in s.handle_timeout(now) {
            assert_eq!(a, Action::Send(Message::Keepalive));
            sent_at.push(now - t0);
        }
    }
    assert_eq!(s.state(), State::Established);
    let expected: Vec<_> = (1..=20).map(|k| secs(30 * k)).collect();
    assert_eq!(sent_at, expected);

    // Sending an UPDATE restarts the keepalive timer.
    let a = s
        .send_update(crate::wire::Update::default(), now + secs(10))
        .expect("established");
    assert!(matches!(a.as_slice(), [Action::Send(Message::Update(_))]));
    assert_eq!(s.timer(Timer::Keepalive), Some(now + secs(40)));
}

#[test]
fn a_configured_keepalive_applies_only_when_shorter_than_a_third_of_the_hold_time() {
    let t0 = Instant::now();
    let mut c = config();
    c.keepalive = Some(5);
    let s = established(c.clone(), peer_open(), t0);
    let n = s.negotiated().expect("negotiated");
    assert_eq!((n.hold_time, n.keepalive), (90, 5));
    assert_eq!(s.timer(Timer::Keepalive), Some(t0 + secs(5)));
    // Longer than hold / 3: hold / 3 wins.
    c.keepalive = Some(60);
    let mut open = peer_open();
    open.hold_time = 30;
    let s = established(c.clone(), open, t0);
    assert_eq!(s.negotiated().expect("negotiated").keepalive, 10);
    // Hold time 0: still no keepalives.
    let mut open = peer_open();
    open.hold_time = 0;
    let s = established(c, open, t0);
    assert_eq!(s.timer(Timer::Keepalive), None);
}

#[test]
fn negotiated_hold_is_the_smaller_and_hold_zero_means_no_timers() {
    let t0 = Instant::now();
    let mut open = peer_open();
    open.hold_time = 30;
    let s = established(config(), open, t0);
    let n = s.negotiated().expect("negotiated");
    assert_eq!((n.hold_time, n.keepalive), (30, 10));
    assert_eq!(s.timer(Timer::Keepalive), Some(t0 + secs(10)));
    assert_eq!(s.timer(Timer::Hold), Some(t0 + secs(30)));

    // The peer proposes 0: no keepalives, no hold timer, but the OPEN is still answered by a KEEPALIVE.
    let mut open = peer_open();
    open.hold_time = 0;
    let mut s = open_sent(config(), t0);
    let a = s.handle(msg(Message::Open(open)), t0);
    assert_eq!(a, vec![Action::Send(Message::Keepalive)]);
    assert_eq!(s.poll_timeout(), None);
    s.handle(msg(Message::Keepalive), t0);
    assert_eq!(s.state(), State::Established);
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.handle_timeout(t0 + secs(86_400)), vec![]);
    assert_eq!(s.state(), State::Established);

    // We propose 0: the same.
    let mut c = config();
    c.hold_time = 0;
    let s = established(c, peer_open(), t0);
    assert_eq!(s.negotiated().map(|n| n.hold_time), Some(0));
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn manual_stop_sends_cease_6_2_with_the_shutdown_communication() {
    let t0 = Instant::now();
    let mut s = established(config(), peer_open(), t0);
    let a = s.handle(
        Event::ManualStop {
            communication: "maintenance".into(),
        },
        t0,
    );
    let n = notification(&a).expect("a NOTIFICATION");
    assert_eq!((n.code, n.subcode), (6, 2));
    assert_eq!(n.shutdown_communication(), Some("maintenance"));
    let mut expected = vec![0xff; 16];
    expected.extend_from_slice(&[0, 33, 3, 6, 2, 11]);
    expected.extend_from_slice(b"maintenance");
    assert_eq!(wire(&sent(&a)[0]), expected);
    assert!(matches!(
        a.as_slice(),
        [Action::Send(_), Action::CloseConnection, Action::SessionDown(d)]
            if d.reason == DownReason::ManualStop && d.graceful.is_none()
    ));
    assert_eq!(s.state(), State::Idle);
    assert_eq!(
        s.poll_timeout(),
        None,
        "no automatic restart after a manual stop"
    );
    assert!(!s.is_enabled());

    // A communication longer than 255 bytes is cut at a character boundary.
    let mut s = open_sent(config(), t0);
    let long = "é".repeat(200);
    let a = s.handle(
        Event::ManualStop {
            communication: long,
        },
        t0,
    );
    let n = notification(&a).expect("a NOTIFICATION");
    assert_eq!(n.shutdown_communication(), Some("é".repeat(127).as_str()));

    // In Connect the attempt is abandoned; in Active there is nothing to close.
    let mut s = Session::new(config());
    s.handle(Event::ManualStart, t0);
    let stop = || Event::ManualStop {
        communication: String::new(),
    };
    assert_eq!(s.handle(stop(), t0), vec![Action::CloseConnection]);
    assert_eq!((s.state(), s.poll_timeout()), (State::Idle, None));
    s.handle(Event::ManualStart, t0);
    s.handle(Event::TcpConnectionFails, t0);
    assert_eq!(s.state(), State::Active);
    assert_eq!(s.handle(stop(), t0), vec![]);
    assert_eq!((s.state(), s.poll_timeout()), (State::Idle, None));
}

#[test]
fn idle_refuses_connections_and_ignores_stray_inputs() {
    let t0 = Instant::now();
    let mut s = Session::new(config());
    assert_eq!(
        s.handle(Event::TcpConnectionConfirmed, t0),
        vec![Action::CloseConnection]
    );
    assert_eq!(s.handle(msg(Message::Keepalive), t0), vec![]);
    assert_eq!(s.receive_bytes(&wire(&Message::Keepalive), t0), vec![]);
    assert_eq!(s.handle(Event::TcpConnectionFails, t0), vec![]);
    assert_eq!(s.state(), State::Idle);
    assert!(s.send_update(crate::wire::Update::default(), t0).is_err());
    // A second start while running changes nothing.
    s.handle(Event::ManualStart, t0);
    assert_eq!(s.handle(Event::ManualStart, t0), vec![]);
    assert_eq!(s.state(), State::Connect);
}

#[test]
fn repeated_errors_back_off_the_automatic_restart() {
    let mut now = Instant::now();
    let mut s = Session::new(config());
    s.handle(Event::ManualStart, now);
    let mut bad = peer_open();
    bad.my_as = 65099;
    bad.capabilities.clear();
    let mut waits = Vec::new();
    for _ in 0..8 {
        assert_eq!(s.state(), State::Connect);
        s.handle(Event::TcpConnectionAcknowledged, now);
        let a = s.handle(msg(Message::Open(bad.clone())), now);
        assert_eq!(notification(&a), Some(Notification::new(2, 2, vec![])));
        let restart = s.timer(Timer::IdleHold).expect("scheduled");
        waits.push(restart - now);
        now = restart;
        assert_eq!(s.handle_timeout(now), vec![Action::Connect]);
    }
    for w in waits[..4].windows(2) {
        assert!(w[1] > w[0], "{waits:?}");
    }
    assert!(waits.iter().all(|w| *w <= secs(120)));
}

#[test]
fn a_tear_down_sends_its_notification_drops_the_routes_and_stays_down() {
    let t0 = Instant::now();
    let mut s = established(config(), peer_open(), t0);
    let cease = Notification::new(6, 1, vec![0, 1, 1, 0, 0, 0, 100]);
    let a = s.tear_down(cease.clone(), false, t0);
    assert_eq!(notification(&a), Some(cease.clone()));
    assert!(matches!(
        a.as_slice(),
        [Action::Send(_), Action::CloseConnection, Action::SessionDown(d)]
            if d.reason == DownReason::NotificationSent(cease.clone()) && d.graceful.is_none()
    ));
    assert_eq!(s.state(), State::Idle);
    assert!(!s.is_enabled());
    assert_eq!(s.poll_timeout(), None, "it stays down until started again");

    // Without a connection there is nothing to tear down.
    let mut idle = Session::new(config());
    assert!(idle.tear_down(cease.clone(), false, t0).is_empty());

    // With a restart: it comes back after the idle-hold delay.
    let mut s = established(config(), peer_open(), t0);
    let a = s.tear_down(cease, true, t0);
    assert!(matches!(a.last(), Some(Action::SessionDown(_))));
    assert!(s.is_enabled());
    let again = s.poll_timeout().expect("an automatic restart is scheduled");
    assert!(again > t0, "after the idle-hold delay, not at once");
}
