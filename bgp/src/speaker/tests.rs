//! The speaker end to end over loopback TCP, without root: a speaker with no FIB listens on 127.0.0.1,
//! and the test plays the peer with the sans-IO [`Peer`] FSM on a plain socket.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;
use crate::session::{Action, DownReason, Peer, SessionConfig};
use crate::wire::{code, AsPath, Nlri, Origin, PathAttributes, Prefix, Update};

/// The test's side of a session: a [`Peer`] FSM on one TCP stream.
struct TestPeer {
    peer: Peer,
    stream: TcpStream,
    updates: Vec<Update>,
    eor: bool,
    down: Option<DownReason>,
}

impl TestPeer {
    async fn connect(to: SocketAddr, asn: u32, speaker_as: u32) -> TestPeer {
        let stream = TcpStream::connect(to).await.unwrap();
        TestPeer::on(stream, Ipv4Addr::new(192, 0, 2, 2), asn, speaker_as).await
    }

    /// A peer connecting from `from` (a loopback address), with router id `id`.
    async fn connect_from(from: Ipv4Addr, id: Ipv4Addr, to: SocketAddr, asn: u32) -> TestPeer {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(IpAddr::V4(from), 0)).unwrap();
        let stream = socket.connect(to).await.unwrap();
        TestPeer::on(stream, id, asn, asn).await
    }

    async fn on(stream: TcpStream, id: Ipv4Addr, asn: u32, speaker_as: u32) -> TestPeer {
        let mut sc = SessionConfig::new(asn, id, speaker_as);
        sc.hold_time = 9;
        sc.families = vec![crate::wire::AfiSafi::IPV4_UNICAST];
        let mut peer = Peer::new(sc);
        let now = Instant::now();
        let start = peer.start(now);
        assert!(start.iter().any(|a| a.action == Action::Connect));
        let mut me = TestPeer {
            peer,
            stream,
            updates: Vec::new(),
            eor: false,
            down: None,
        };
        let actions = me.peer.connected(1, now);
        me.run_actions(actions).await;
        me
    }

    async fn run_actions(&mut self, actions: Vec<crate::session::PeerAction>) {
        for a in actions {
            match a.action {
                Action::Send(m) => {
                    for bytes in super::peers::encode(m, &self.peer.tx_codec(1)) {
                        self.stream.write_all(&bytes).await.unwrap();
                    }
                }
                Action::Deliver(u) => self.updates.push(u),
                Action::EndOfRib(_) => self.eor = true,
                Action::SessionDown(d) => self.down = Some(d.reason),
                _ => {}
            }
        }
    }

    /// Reads and handles messages until `done` holds (or 10 s pass).
    async fn until(&mut self, done: impl Fn(&TestPeer) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = vec![0u8; 65536];
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out");
            let n =
                match tokio::time::timeout(Duration::from_millis(200), self.stream.read(&mut buf))
                    .await
                {
                    Ok(Ok(0)) | Ok(Err(_)) => {
                        let a = self.peer.closed(1, Instant::now());
                        self.run_actions(a).await;
                        continue;
                    }
                    Ok(Ok(n)) => n,
                    Err(_) => continue,
                };
            let a = self.peer.receive(1, &buf[..n], Instant::now());
            self.run_actions(a).await;
        }
    }

    async fn send(&mut self, u: Update) {
        let a = self.peer.send_update(u, Instant::now()).unwrap();
        self.run_actions(a).await;
    }

    fn announced(&self) -> Vec<Prefix> {
        let mut v: Vec<Prefix> = self
            .updates
            .iter()
            .flat_map(|u| u.nlri.iter().map(|n| n.prefix))
            .collect();
        v.sort();
        v
    }
}

/// A speaker of AS 65001 with no FIB, listening on a free port of 127.0.0.1.
async fn loopback_speaker() -> Speaker {
    Speaker::start(SpeakerConfig {
        asn: 65001,
        router_id: Ipv4Addr::new(192, 0, 2, 1),
        listen: vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)],
        fib: None,
        ..SpeakerConfig::default()
    })
    .await
    .unwrap()
}

fn prefix(s: &str) -> Prefix {
    let (a, l) = s.split_once('/').unwrap();
    Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speaker_peers_announces_learns_withdraws_and_deconfigures() {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let speaker = loopback_speaker().await;
    let addr = speaker.local_addrs()[0];
    assert_ne!(addr.port(), 0);

    // Bad input changes nothing.
    let bad = PeerSettings {
        address: loopback,
        asn: 0,
        ..PeerSettings::default()
    };
    assert!(matches!(
        speaker.set_peers(vec![bad]).await,
        Err(Error::Invalid(_))
    ));
    assert!(speaker.status().await.is_empty());

    let settings = PeerSettings {
        address: loopback,
        asn: 65002,
        passive: true,
        hold_time: Duration::from_secs(9),
        description: "test".into(),
        ..PeerSettings::default()
    };
    speaker.set_peers(vec![settings.clone()]).await.unwrap();
    speaker
        .set_local_routes(vec![LocalRoute {
            prefix: "10.65.1.0/24".parse().unwrap(),
            next_hop: None,
            communities: vec![(65001 << 16) | 7],
        }])
        .await
        .unwrap();

    let mut p = TestPeer::connect(addr, 65002, 65001).await;
    p.until(|p| p.eor).await;
    assert_eq!(p.announced(), vec![prefix("10.65.1.0/24")]);
    let a = &p.updates[0].attributes;
    assert_eq!(a.origin, Some(Origin::Igp));
    assert_eq!(a.as_path, Some(AsPath::sequence(vec![65001])));
    assert_eq!(a.next_hop, Some(Ipv4Addr::LOCALHOST), "next-hop-self");
    assert_eq!(a.communities, vec![(65001 << 16) | 7]);

    // The peer's route lands in the RIB as best.
    p.send(Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(vec![65002])),
            next_hop: Some(Ipv4Addr::new(127, 0, 0, 1)),
            ..PathAttributes::default()
        },
        nlri: vec![Nlri::new(prefix("10.65.2.0/24"))],
        ..Update::default()
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let routes = speaker.routes().await;
        if let Some(r) = routes
            .iter()
            .find(|r| r.prefix.to_string() == "10.65.2.0/24")
        {
            assert!(r.paths[0].best && r.paths[0].peer == Some(loopback));
            assert_eq!(r.paths[0].as_path, vec![65002]);
            break;
        }
        assert!(Instant::now() < deadline, "{routes:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let st = speaker.status().await;
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].state, "Established");
    assert_eq!(
        (
            st[0].routes_received,
            st[0].routes_accepted,
            st[0].routes_advertised
        ),
        (1, 1, 1)
    );

    // The metrics say the same over HTTP.
    let (task, maddr) = metrics::serve(speaker.clone(), SocketAddr::new(loopback, 0))
        .await
        .unwrap();
    let mut m = TcpStream::connect(maddr).await.unwrap();
    m.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    m.read_to_string(&mut text).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    for line in [
        "calico_bgp_sessions{state=\"Established\"} 1",
        "calico_bgp_routes_accepted{peer=\"127.0.0.1\"} 1",
        "calico_bgp_routes_advertised{peer=\"127.0.0.1\"} 1",
        "calico_bgp_updates_received_total{peer=\"127.0.0.1\"} 1",
        // The route and End-of-RIB.
        "calico_bgp_updates_sent_total{peer=\"127.0.0.1\"} 2",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in {text}"
        );
    }
    assert!(!text.contains("calico_bgp_fib"), "no FIB here");
    task.abort();

    // The same set again touches nothing; an empty local set withdraws.
    speaker.set_peers(vec![settings.clone()]).await.unwrap();
    speaker.set_local_routes(Vec::new()).await.unwrap();
    p.until(|p| {
        p.updates.iter().any(|u| {
            u.withdrawn
                .iter()
                .any(|n| n.prefix == prefix("10.65.1.0/24"))
        })
    })
    .await;
    assert!(p.down.is_none());

    // A changed setting (not policy alone) restarts the session with Cease / Administrative Reset.
    let changed = PeerSettings {
        hold_time: Duration::from_secs(12),
        ..settings
    };
    speaker.set_peers(vec![changed]).await.unwrap();
    p.until(|p| p.down.is_some()).await;
    match &p.down {
        Some(DownReason::NotificationReceived(n)) => {
            assert_eq!(
                (n.code, n.subcode),
                (code::CEASE, code::cease::ADMINISTRATIVE_RESET)
            );
            assert_eq!(n.shutdown_communication(), Some("configuration changed"));
        }
        other => panic!("{other:?}"),
    }
    let mut p = TestPeer::connect(addr, 65002, 65001).await;
    p.until(|p| p.eor).await;

    // De-configuring the peer sends Cease / Peer De-configured.
    speaker.set_peers(Vec::new()).await.unwrap();
    p.until(|p| p.down.is_some()).await;
    match &p.down {
        Some(DownReason::NotificationReceived(n)) => {
            assert_eq!(
                (n.code, n.subcode),
                (code::CEASE, code::cease::PEER_DECONFIGURED)
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(speaker.routes().await.is_empty());

    // Connections from unknown addresses are refused.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
    assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "{n:?}");
    speaker.shutdown(false).await;
}

/// A reflector passes a client's route to its other clients with ORIGINATOR_ID set to the client and
/// its configured cluster id (not its router id) in CLUSTER_LIST (RFC 4456).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reflector_stamps_its_configured_cluster_id() {
    let cluster = Ipv4Addr::new(10, 255, 0, 1);
    let speaker = Speaker::start(SpeakerConfig {
        asn: 65001,
        router_id: Ipv4Addr::new(192, 0, 2, 1),
        cluster_id: Some(cluster),
        listen: vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)],
        fib: None,
        ..SpeakerConfig::default()
    })
    .await
    .unwrap();
    let addr = speaker.local_addrs()[0];
    let (a, b) = (Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3));
    let client = |ip: Ipv4Addr| PeerSettings {
        address: IpAddr::V4(ip),
        asn: 65001,
        passive: true,
        rr_client: true,
        hold_time: Duration::from_secs(9),
        ..PeerSettings::default()
    };
    speaker.set_peers(vec![client(a), client(b)]).await.unwrap();

    let mut pa = TestPeer::connect_from(a, Ipv4Addr::new(192, 0, 2, 2), addr, 65001).await;
    let mut pb = TestPeer::connect_from(b, Ipv4Addr::new(192, 0, 2, 3), addr, 65001).await;
    pa.until(|p| p.eor).await;
    pb.until(|p| p.eor).await;
    pa.send(Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            next_hop: Some(a),
            local_pref: Some(100),
            ..PathAttributes::default()
        },
        nlri: vec![Nlri::new(prefix("10.65.9.0/26"))],
        ..Update::default()
    })
    .await;
    pb.until(|p| p.announced().contains(&prefix("10.65.9.0/26")))
        .await;
    let got = pb
        .updates
        .iter()
        .find(|u| u.nlri.iter().any(|n| n.prefix == prefix("10.65.9.0/26")))
        .unwrap();
    assert_eq!(got.attributes.cluster_list, vec![cluster]);
    assert_eq!(
        got.attributes.originator_id,
        Some(Ipv4Addr::new(192, 0, 2, 2))
    );
    assert_eq!(
        got.attributes.next_hop,
        Some(a),
        "a reflector keeps the next hop"
    );
    speaker.shutdown(false).await;
}

/// A peer that keeps its session but stops reading must not make the speaker buffer without bound: past
/// the writer's limit the session ends with Cease / Out of Resources.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_cut_off_not_buffered_for() {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let speaker = loopback_speaker().await;
    let addr = speaker.local_addrs()[0];
    let settings = PeerSettings {
        address: loopback,
        asn: 65002,
        passive: true,
        hold_time: Duration::from_secs(90),
        ..PeerSettings::default()
    };
    speaker.set_peers(vec![settings]).await.unwrap();
    // A small receive window, so the kernel holds little of what the speaker sends.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let mut p = TestPeer::on(stream, Ipv4Addr::new(192, 0, 2, 2), 65002, 65001).await;
    p.until(|p| p.eor).await;

    // The peer reads no more; the speaker announces 100,000 routes (about 500 KB of UPDATEs).
    let routes: Vec<LocalRoute> = (0..100_000u32)
        .map(|i| LocalRoute {
            prefix: ipnet::IpNet::new(IpAddr::V4(Ipv4Addr::from(0x0a40_0000 + i)), 32).unwrap(),
            next_hop: None,
            communities: Vec::new(),
        })
        .collect();
    speaker.set_local_routes(routes).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = speaker.status().await;
        let why = status[0].last_error.clone().unwrap_or_default();
        if status[0].state != "Established" && why.contains("Out of Resources") {
            break;
        }
        assert!(Instant::now() < deadline, "still {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    speaker.shutdown(false).await;
}
