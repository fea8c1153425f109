//! Byte streams: a real exchange (BIRD 2's OPEN and UPDATE, captured) split at every offset still
//! establishes and delivers the same; two peers talking through an in-memory pipe on virtual time collide,
//! resolve, establish and keep each other alive.

use std::collections::VecDeque;
use std::time::Instant;

use super::*;
use crate::session::{ConnId, Direction, Peer, PeerAction};
use crate::wire::{AddPathFamily, AfiSafi, Prefix};

/// BIRD 2.0.12's OPEN (from `wire/captured.rs`): AS 4200000001 via AS_TRANS, hold 90, id 192.0.2.1,
/// multiprotocol IPv4+IPv6, route refresh, extended message, graceful restart, ADD-PATH IPv4, enhanced route
/// refresh and the unknown long-lived graceful restart capability.
const BIRD_OPEN: [u8; 75] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x00, 0x4b, 0x01, 0x04, 0x5b, 0xa0, 0x00, 0x5a, 0xc0, 0x00, 0x02, 0x01, 0x2e, 0x02, 0x2c, 0x01,
    0x04, 0x00, 0x01, 0x00, 0x01, 0x01, 0x04, 0x00, 0x02, 0x00, 0x01, 0x02, 0x00, 0x06, 0x00, 0x40,
    0x0a, 0x00, 0x78, 0x00, 0x01, 0x01, 0x00, 0x00, 0x02, 0x01, 0x00, 0x41, 0x04, 0xfa, 0x56, 0xea,
    0x01, 0x45, 0x04, 0x00, 0x01, 0x01, 0x03, 0x46, 0x00, 0x47, 0x00,
];

/// BIRD's IPv4 UPDATE with ADD-PATH path id 2 for 203.0.113.0/24 (only decodable with ADD-PATH negotiated).
const BIRD_UPDATE_V4: [u8; 73] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x00, 0x49, 0x02, 0x00, 0x00, 0x00, 0x2a, 0x40, 0x01, 0x01, 0x00, 0x40, 0x02, 0x06, 0x02, 0x01,
    0xfa, 0x56, 0xea, 0x01, 0x40, 0x03, 0x04, 0xc0, 0x00, 0x02, 0x01, 0xc0, 0x08, 0x04, 0xfd, 0xe9,
    0x00, 0x64, 0xc0, 0x20, 0x0c, 0xfa, 0x56, 0xea, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x00, 0x00, 0x02, 0x18, 0xcb, 0x00, 0x71,
];

/// Our side of the captured session: AS 65002 with ADD-PATH on IPv4 and extended messages.
fn capture_config() -> SessionConfig {
    let mut c = SessionConfig::new(65002, Ipv4Addr::new(192, 0, 2, 2), 4_200_000_001);
    c.families = vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST];
    c.extended_message = true;
    c.add_path = vec![AddPathFamily {
        afi_safi: AfiSafi::IPV4_UNICAST,
        receive: true,
        send: true,
    }];
    c
}

fn run_split(stream: &[u8], cuts: &[usize], t0: Instant) -> (Session, Vec<Action>) {
    let mut s = open_sent(capture_config(), t0);
    let mut actions = Vec::new();
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
        actions.extend(s.receive_bytes(&stream[from..cut], t0));
        from = cut;
    }
    (s, actions)
}

#[test]
fn a_real_exchange_split_at_every_offset_establishes() {
    let t0 = Instant::now();
    let keepalive = wire(&Message::Keepalive);
    let stream = [
        BIRD_OPEN.as_slice(),
        &keepalive,
        &BIRD_UPDATE_V4,
        &keepalive,
    ]
    .concat();
    let (s, whole) = run_split(&stream, &[], t0);
    assert_eq!(s.state(), State::Established);
    let n = s.negotiated().expect("negotiated");
    assert_eq!(n.peer_as, 4_200_000_001);
    assert_eq!(n.rx.add_path, vec![AfiSafi::IPV4_UNICAST]);
    assert!(n.rx.extended_message && n.rx.four_byte_as);
    assert_eq!(
        n.families,
        vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]
    );
    assert_eq!(
        n.peer_graceful_restart.as_ref().map(|g| g.restart_time),
        Some(120)
    );
    let [Action::Send(Message::Keepalive), Action::SessionEstablished(_), Action::Deliver(u)] =
        whole.as_slice()
    else {
        panic!("unexpected actions: {whole:?}");
    };
    let route = &u.nlri[0];
    assert_eq!(route.path_id, Some(2));
    assert_eq!(
        route.prefix,
        Prefix::new("203.0.113.0".parse().expect("ip"), 24).expect("len")
    );

    for cut in 0..=stream.len() {
        let (s, actions) = run_split(&stream, &[cut], t0);
        assert_eq!(s.state(), State::Established, "cut at {cut}");
        assert_eq!(actions, whole, "cut at {cut}");
    }
    for a in (0..stream.len()).step_by(7) {
        for b in (a..stream.len()).step_by(11) {
            assert_eq!(run_split(&stream, &[a, b], t0).1, whole, "cuts at {a}, {b}");
        }
    }
    let bytewise: Vec<usize> = (1..stream.len()).collect();
    assert_eq!(run_split(&stream, &bytewise, t0).1, whole);
}

/// Two peers, an in-memory network, and a virtual clock.
struct Net {
    now: Instant,
    peers: [Peer; 2],
    events: VecDeque<NetEvent>,
    next_conn: ConnId,
    /// Every action, with the time and the peer index.
    log: Vec<(Instant, usize, PeerAction)>,
}

enum NetEvent {
    /// `peers[from]`'s connection attempt `conn` completes.
    Connected { from: usize, conn: ConnId },
    /// `peers[to]` accepts `conn`.
    Incoming { to: usize, conn: ConnId },
    /// Bytes for `peers[to]` on `conn`.
    Data {
        to: usize,
        conn: ConnId,
        bytes: Vec<u8>,
    },
    /// The other end closed `conn`.
    Closed { to: usize, conn: ConnId },
}

impl Net {
    fn new(a: SessionConfig, b: SessionConfig) -> Self {
        Net {
            now: Instant::now(),
            peers: [Peer::new(a), Peer::new(b)],
            events: VecDeque::new(),
            next_conn: 1,
            log: Vec::new(),
        }
    }

    fn apply(&mut self, from: usize, actions: Vec<PeerAction>) {
        let to = 1 - from;
        for pa in actions {
            self.log.push((self.now, from, pa.clone()));
            match (pa.conn, pa.action) {
                (_, Action::Connect) => {
                    let conn = self.next_conn;
                    self.next_conn += 1;
                    self.events.push_back(NetEvent::Connected { from, conn });
                }
                (Some(conn), Action::Send(m)) => {
                    let codec = self.peers[from].tx_codec(conn);
                    let bytes = wire_with(&m, &codec);
                    self.events.push_back(NetEvent::Data { to, conn, bytes });
                }
                (Some(conn), Action::CloseConnection) => {
                    self.events.push_back(NetEvent::Closed { to, conn });
                }
                _ => {}
            }
        }
    }

    /// Run until `until`, handling events at once and timers when nothing else is pending.
    fn run(&mut self, until: Instant) {
        loop {
            while let Some(ev) = self.events.pop_front() {
                let now = self.now;
                match ev {
                    NetEvent::Connected { from, conn } => {
                        // The peer learns of the connection after we do.
                        self.events
                            .push_back(NetEvent::Incoming { to: 1 - from, conn });
                        let a = self.peers[from].connected(conn, now);
                        self.apply(from, a);
                    }
                    NetEvent::Incoming { to, conn } => {
                        let a = self.peers[to].incoming(conn, now);
                        self.apply(to, a);
                    }
                    NetEvent::Data { to, conn, bytes } => {
                        // Deliver in two pieces to exercise reassembly.
                        let mid = bytes.len() / 2;
                        let a = self.peers[to].receive(conn, &bytes[..mid], now);
                        self.apply(to, a);
                        let a = self.peers[to].receive(conn, &bytes[mid..], now);
                        self.apply(to, a);
                    }
                    NetEvent::Closed { to, conn } => {
                        let a = self.peers[to].closed(conn, now);
                        self.apply(to, a);
                    }
                }
            }
            let next = self.peers.iter().filter_map(Peer::poll_timeout).min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    for i in 0..2 {
                        let a = self.peers[i].handle_timeout(self.now);
                        self.apply(i, a);
                    }
                }
                _ => break,
            }
        }
        self.now = until;
    }

    fn count(&self, peer: usize, f: impl Fn(&PeerAction) -> bool) -> usize {
        self.log
            .iter()
            .filter(|(_, p, a)| *p == peer && f(a))
            .count()
    }
}

fn b_config() -> SessionConfig {
    let mut c = SessionConfig::new(65002, Ipv4Addr::new(10, 0, 0, 2), 65001);
    c.jitter_seed = 11;
    c
}

#[test]
fn two_active_peers_collide_establish_once_and_keep_alive() {
    let mut net = Net::new(config(), b_config());
    let t0 = net.now;
    let a = net.peers[0].start(t0);
    net.apply(0, a);
    let b = net.peers[1].start(t0);
    net.apply(1, b);
    net.run(t0 + secs(300));

    // Both connections were opened; B (10.0.0.2, the higher id) keeps the one it initiated: connection 2.
    for i in 0..2 {
        assert_eq!(net.peers[i].state(), State::Established, "peer {i}");
        assert_eq!(net.peers[i].connection().map(|c| c.0), Some(2), "peer {i}");
        let collisions = net.count(i, |a| {
            a.conn == Some(1)
                && a.action
                    == Action::Send(Message::Notification(
                        crate::session::collision_notification(),
                    ))
        });
        assert_eq!(collisions, 1, "peer {i} closed connection 1 with 6/7 once");
        assert_eq!(
            net.count(i, |a| matches!(a.action, Action::SessionEstablished(_))),
            1,
            "peer {i}"
        );
        assert_eq!(
            net.count(i, |a| matches!(a.action, Action::SessionDown(_))),
            0
        );
        // One KEEPALIVE answering the OPEN, then one every 30 s for 300 s.
        let keepalives = net.count(i, |a| {
            a.conn == Some(2) && a.action == Action::Send(Message::Keepalive)
        });
        assert_eq!(keepalives, 11, "peer {i}");
        assert_eq!(net.count(i, |a| a.action == Action::Connect), 1, "peer {i}");
    }
    assert_eq!(net.peers[0].connection(), Some((2, Direction::Inbound)));
    assert_eq!(net.peers[1].connection(), Some((2, Direction::Outbound)));

    // An UPDATE from A reaches B's RIB; a stop on A takes B down with the communication.
    let now = net.now;
    let u = crate::wire::Update::end_of_rib(AfiSafi::IPV4_UNICAST);
    let a = net.peers[0].send_update(u, now).expect("established");
    net.apply(0, a);
    let a = net.peers[0].stop("bye", now);
    net.apply(0, a);
    net.run(now + secs(1));
    assert_eq!(
        net.count(1, |a| a.action == Action::EndOfRib(AfiSafi::IPV4_UNICAST)),
        1
    );
    let down = net.log.iter().find_map(|(_, p, a)| match &a.action {
        Action::SessionDown(d) if *p == 1 => Some(d.clone()),
        _ => None,
    });
    let Some(d) = down else {
        panic!("B saw no SessionDown")
    };
    let crate::session::DownReason::NotificationReceived(n) = &d.reason else {
        panic!("{d:?}")
    };
    assert_eq!(n.shutdown_communication(), Some("bye"));
    assert_eq!(net.peers[0].state(), State::Idle);
    assert_eq!(
        net.peers[1].state(),
        State::Idle,
        "B waits for its automatic restart"
    );
}

#[test]
fn active_and_passive_peers_establish_and_survive_an_hour() {
    let mut passive = b_config();
    passive.passive = true;
    passive.hold_time = 9;
    let mut net = Net::new(config(), passive);
    let t0 = net.now;
    let a = net.peers[1].start(t0);
    net.apply(1, a);
    let a = net.peers[0].start(t0);
    net.apply(0, a);
    net.run(t0 + secs(3600));
    for i in 0..2 {
        assert_eq!(net.peers[i].state(), State::Established, "peer {i}");
        assert_eq!(
            net.count(i, |a| matches!(a.action, Action::SessionDown(_))),
            0
        );
        let n = net.peers[i].session().negotiated().expect("negotiated");
        assert_eq!((n.hold_time, n.keepalive), (9, 3));
        // 1 answering the OPEN + 1200 periodic ones.
        let keepalives = net.count(i, |a| a.action == Action::Send(Message::Keepalive));
        assert_eq!(keepalives, 1201, "peer {i}");
    }
    assert_eq!(
        net.count(1, |a| a.action == Action::Connect),
        0,
        "the passive peer never connects"
    );
}
