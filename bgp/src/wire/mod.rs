//! The BGP-4 wire codec: messages, capabilities, path attributes and NLRI, with RFC 7606 error handling.
//!
//! Role: turn bytes from a peer into [`Message`]s (or into the RFC 7606 outcome / NOTIFICATION the session
//! must act on) and messages into bytes. Pure code: no sockets, no tasks; decoding is built with `nom` on byte
//! slices, encoding with `bytes`.
//! Inputs: a byte stream (decoded one message at a time with [`decode_message`]) and the [`Codec`] context
//! negotiated in the OPEN exchange (4-octet AS, ADD-PATH per family, extended messages).
//! Outputs: [`Decoded`] values, [`DecodeError::SessionReset`] carrying the exact NOTIFICATION of RFC 4271 §6
//! and RFC 7606, or encoded bytes from [`encode_message`].
//!
//! Nothing here panics or allocates beyond what the input's own length bounds, whatever the input.

pub mod attribute;
pub mod capability;
pub mod error;
pub mod header;
pub mod notification;
pub mod open;
pub mod prefix;
pub mod route_refresh;
pub mod update;

#[cfg(test)]
mod captured;
#[cfg(test)]
mod proptests;

use bytes::BytesMut;

pub use attribute::{
    community, Aggregator, AsPath, AsSegment, AttributeIssue, LargeCommunity, MpReach, MpUnreach,
    NextHop, Origin, PathAttributes, Problem, RawAttribute, SegmentType,
};
pub use capability::{AddPathFamily, Capability, GracefulRestart, GracefulRestartFamily};
pub use error::{code, DecodeError, EncodeError};
pub use header::{MessageType, HEADER_LEN, MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN};
pub use notification::Notification;
pub use open::{Open, AS_TRANS};
pub use prefix::{AfiSafi, Nlri, Prefix};
pub use route_refresh::{RefreshSubtype, RouteRefresh};
pub use update::{TreatAsWithdraw, Update, UpdateOutcome};

/// The per-direction context a session negotiates and the codec needs.
///
/// A session keeps two: one for what it receives and one for what it sends. `add_path` lists the families
/// whose NLRI carry a path identifier in that direction (RFC 7911 §4: we receive them where we announced
/// "receive" and the peer "send", and the other way round).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Codec {
    /// Both sides announced the 4-octet AS capability (RFC 6793): AS_PATH and AGGREGATOR use 4-byte ASNs.
    pub four_byte_as: bool,
    /// Both sides announced extended messages (RFC 8654): messages up to 65535 bytes.
    pub extended_message: bool,
    /// Families whose NLRI carry ADD-PATH path identifiers in this direction.
    pub add_path: Vec<AfiSafi>,
}

impl Codec {
    /// Whether NLRI of `family` carry a path identifier.
    pub fn add_path(&self, family: AfiSafi) -> bool {
        self.add_path.contains(&family)
    }

    /// The maximum message length in force.
    pub fn max_message_len(&self) -> usize {
        if self.extended_message {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }

    /// The (receive, send) codecs that follow from our OPEN and the peer's.
    pub fn negotiate(local: &Open, remote: &Open) -> (Codec, Codec) {
        let has = |o: &Open, f: &dyn Fn(&Capability) -> bool| o.capabilities.iter().any(f);
        let four = has(local, &|c| matches!(c, Capability::FourOctetAs(_)))
            && has(remote, &|c| matches!(c, Capability::FourOctetAs(_)));
        let ext = has(local, &|c| matches!(c, Capability::ExtendedMessage))
            && has(remote, &|c| matches!(c, Capability::ExtendedMessage));
        let add_path = |o: &Open| -> Vec<AddPathFamily> {
            o.capabilities
                .iter()
                .filter_map(|c| match c {
                    Capability::AddPath(f) => Some(f.iter().copied()),
                    _ => None,
                })
                .flatten()
                .collect()
        };
        let (ours, theirs) = (add_path(local), add_path(remote));
        let families =
            |we: fn(&AddPathFamily) -> bool, they: fn(&AddPathFamily) -> bool| -> Vec<AfiSafi> {
                let mut v: Vec<AfiSafi> = ours
                    .iter()
                    .filter(|a| we(a) && theirs.iter().any(|b| b.afi_safi == a.afi_safi && they(b)))
                    .map(|a| a.afi_safi)
                    .collect();
                v.sort();
                v.dedup();
                v
            };
        let rx = Codec {
            four_byte_as: four,
            extended_message: ext,
            add_path: families(|a| a.receive, |b| b.send),
        };
        let tx = Codec {
            four_byte_as: four,
            extended_message: ext,
            add_path: families(|a| a.send, |b| b.receive),
        };
        (rx, tx)
    }
}

/// A BGP message.
#[derive(Debug, Clone, PartialEq, Eq)]
// UPDATE dominates the traffic: boxing it would add an allocation per UPDATE to spare the rare others.
#[allow(clippy::large_enum_variant)]
pub enum Message {
    /// OPEN.
    Open(Open),
    /// UPDATE.
    Update(Update),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH.
    RouteRefresh(RouteRefresh),
}

/// A decoded message, with the RFC 7606 outcomes of an UPDATE that is not simply well-formed.
#[derive(Debug, Clone, PartialEq, Eq)]
// UPDATE dominates the traffic: boxing it would add an allocation per UPDATE to spare the rare others.
#[allow(clippy::large_enum_variant)]
pub enum Decoded {
    /// A well-formed message.
    Message(Message),
    /// An UPDATE usable without some attributes (RFC 7606 "attribute discard").
    AttributeDiscard {
        /// The UPDATE without them.
        update: Update,
        /// What was discarded and why.
        discarded: Vec<AttributeIssue>,
    },
    /// An UPDATE whose routes must all be withdrawn (RFC 7606 "treat-as-withdraw").
    TreatAsWithdraw(TreatAsWithdraw),
}

/// Decode the message at the start of `input`; returns it and the number of bytes it took.
///
/// [`DecodeError::Incomplete`] asks for more bytes; [`DecodeError::SessionReset`] carries the NOTIFICATION
/// to send before closing the session.
pub fn decode_message(input: &[u8], codec: &Codec) -> Result<(Decoded, usize), DecodeError> {
    let h = header::decode_header(input, codec.max_message_len())?;
    let Some(body) = input.get(HEADER_LEN..h.length) else {
        return Err(DecodeError::Incomplete {
            needed: h.length.saturating_sub(input.len()),
        });
    };
    let decoded = match h.kind {
        MessageType::Open => Decoded::Message(Message::Open(Open::decode_body(body)?)),
        MessageType::Update => match Update::decode_body(body, codec) {
            UpdateOutcome::Parsed(u) => Decoded::Message(Message::Update(u)),
            UpdateOutcome::AttributeDiscard { update, discarded } => {
                Decoded::AttributeDiscard { update, discarded }
            }
            UpdateOutcome::TreatAsWithdraw(t) => Decoded::TreatAsWithdraw(t),
            UpdateOutcome::SessionReset(n) => return Err(DecodeError::SessionReset(n)),
        },
        MessageType::Notification => {
            Decoded::Message(Message::Notification(Notification::decode_body(body)?))
        }
        MessageType::Keepalive => Decoded::Message(Message::Keepalive),
        MessageType::RouteRefresh => {
            Decoded::Message(Message::RouteRefresh(RouteRefresh::decode_body(body)?))
        }
    };
    Ok((decoded, h.length))
}

/// Append one encoded message to `out`. On error nothing is appended.
pub fn encode_message(msg: &Message, codec: &Codec, out: &mut BytesMut) -> Result<(), EncodeError> {
    let (kind, max) = match msg {
        // RFC 8654 §3: OPEN and KEEPALIVE never exceed 4096 bytes.
        Message::Open(_) => (MessageType::Open, MAX_MESSAGE_LEN),
        Message::Update(_) => (MessageType::Update, codec.max_message_len()),
        Message::Notification(_) => (MessageType::Notification, codec.max_message_len()),
        Message::Keepalive => (MessageType::Keepalive, MAX_MESSAGE_LEN),
        Message::RouteRefresh(_) => (MessageType::RouteRefresh, codec.max_message_len()),
    };
    let start = header::encode_header(kind, out);
    let body = match msg {
        Message::Open(o) => o.encode_body(out),
        Message::Update(u) => u.encode_body(codec, out),
        Message::Notification(n) => {
            n.encode_body(out);
            Ok(())
        }
        Message::Keepalive => Ok(()),
        Message::RouteRefresh(r) => {
            r.encode_body(out);
            Ok(())
        }
    };
    if let Err(e) = body {
        out.truncate(start);
        return Err(e);
    }
    header::finish_message(out, start, max)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn framed(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![0xff; 16];
        m.extend_from_slice(
            &u16::try_from(HEADER_LEN + body.len())
                .unwrap()
                .to_be_bytes(),
        );
        m.push(kind);
        m.extend_from_slice(body);
        m
    }

    fn round_trip(bytes: &[u8], codec: &Codec, want: Message) {
        assert_eq!(
            decode_message(bytes, codec),
            Ok((Decoded::Message(want.clone()), bytes.len()))
        );
        let mut out = BytesMut::new();
        encode_message(&want, codec, &mut out).unwrap();
        assert_eq!(&out[..], bytes);
    }

    #[test]
    fn keepalive_message() {
        let bytes = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, // marker
            0x00, 0x13, // length 19
            0x04, // KEEPALIVE
        ];
        round_trip(&bytes, &Codec::default(), Message::Keepalive);
    }

    #[test]
    fn notification_message_with_shutdown_communication() {
        let bytes = framed(
            3,
            &[
                0x06, // Cease
                0x02, // Administrative Shutdown
                0x04, b'b', b'y', b'e', b'!', // length 4, "bye!"
            ],
        );
        assert_eq!(bytes.len(), 26);
        let n = Notification::shutdown(code::cease::ADMINISTRATIVE_SHUTDOWN, "bye!").unwrap();
        round_trip(&bytes, &Codec::default(), Message::Notification(n));
    }

    #[test]
    fn route_refresh_message() {
        let bytes = framed(
            5,
            &[
                0x00, 0x01, // AFI IPv4
                0x02, // subtype: End of Route Refresh
                0x01, // SAFI unicast
            ],
        );
        let rr = RouteRefresh {
            afi_safi: AfiSafi::IPV4_UNICAST,
            subtype: RefreshSubtype::End,
        };
        round_trip(&bytes, &Codec::default(), Message::RouteRefresh(rr));
    }

    #[test]
    fn open_and_update_messages() {
        let open_body = [
            0x04, 0xfd, 0xe9, 0x00, 0x5a, 0x0a, 0x00, 0x00,
            0x01, // version 4, AS 65001, hold 90, id 10.0.0.1
            0x06, 0x02, 0x04, 0x41, 0x02, 0x00,
            0x00, // capabilities: 4-octet AS cut short (length 2)
        ];
        let bytes = framed(1, &open_body);
        assert_eq!(
            decode_message(&bytes, &Codec::default()),
            Err(DecodeError::SessionReset(Notification::new(2, 0, vec![])))
        );
        let open = Open::new(
            65001,
            90,
            Ipv4Addr::new(10, 0, 0, 1),
            vec![Capability::FourOctetAs(65001)],
        );
        let mut out = BytesMut::new();
        encode_message(&Message::Open(open.clone()), &Codec::default(), &mut out).unwrap();
        assert_eq!(
            decode_message(&out, &Codec::default()),
            Ok((Decoded::Message(Message::Open(open)), 37))
        );

        let update = Update::end_of_rib(AfiSafi::IPV4_UNICAST);
        let bytes = framed(2, &[0, 0, 0, 0]);
        round_trip(&bytes, &Codec::default(), Message::Update(update));
    }

    #[test]
    fn update_outcomes_at_message_level() {
        // ORIGIN 5 with NLRI 10.0.0.0/8: treat-as-withdraw.
        let body = [
            0x00, 0x00, 0x00, 0x04, // no withdrawn routes, attributes length 4
            0x40, 0x01, 0x01, 0x05, // ORIGIN 5
            0x08, 0x0a, // 10.0.0.0/8
        ];
        let (d, len) = decode_message(&framed(2, &body), &Codec::default()).unwrap();
        assert_eq!(len, 29);
        let Decoded::TreatAsWithdraw(t) = d else {
            panic!("expected treat-as-withdraw, got {d:?}")
        };
        assert_eq!(t.withdrawn.len(), 1);
        // ATOMIC_AGGREGATE of length 1 without NLRI: attribute discard.
        let body = [0x00, 0x00, 0x00, 0x04, 0x40, 0x06, 0x01, 0x00];
        let (d, _) = decode_message(&framed(2, &body), &Codec::default()).unwrap();
        assert!(matches!(d, Decoded::AttributeDiscard { .. }));
        // Unrecognized well-known attribute: session reset 3/2.
        let body = [0x00, 0x00, 0x00, 0x03, 0x40, 0x63, 0x00];
        let err = decode_message(&framed(2, &body), &Codec::default()).unwrap_err();
        assert_eq!(
            err.notification(),
            Some(&Notification::new(3, 2, vec![0x40, 0x63, 0x00]))
        );
    }

    #[test]
    fn framing_a_stream() {
        let mut stream = framed(4, &[]);
        stream.extend_from_slice(&framed(5, &[0, 2, 0, 1]));
        let (first, used) = decode_message(&stream, &Codec::default()).unwrap();
        assert_eq!((first, used), (Decoded::Message(Message::Keepalive), 19));
        let (second, used2) = decode_message(&stream[used..], &Codec::default()).unwrap();
        assert!(matches!(second, Decoded::Message(Message::RouteRefresh(_))));
        assert_eq!(used + used2, stream.len());
        assert_eq!(
            decode_message(&stream[used..stream.len() - 1], &Codec::default()),
            Err(DecodeError::Incomplete { needed: 1 })
        );
    }

    #[test]
    fn extended_messages() {
        let big = Update {
            attributes: PathAttributes {
                unknown: vec![RawAttribute {
                    flags: 0xc0,
                    type_code: 99,
                    value: vec![7; 5000],
                }],
                ..PathAttributes::default()
            },
            ..Update::default()
        };
        let msg = Message::Update(big);
        let mut out = BytesMut::new();
        assert_eq!(
            encode_message(&msg, &Codec::default(), &mut out),
            Err(EncodeError::MessageTooLong {
                len: 5027,
                max: 4096
            })
        );
        assert!(out.is_empty());
        let ext = Codec {
            extended_message: true,
            ..Codec::default()
        };
        encode_message(&msg, &ext, &mut out).unwrap();
        assert_eq!(out.len(), 5027);
        assert_eq!(
            decode_message(&out, &ext),
            Ok((Decoded::Message(msg), 5027))
        );
        assert_eq!(
            decode_message(&out, &Codec::default()),
            Err(DecodeError::SessionReset(Notification::new(
                1,
                2,
                vec![0x13, 0xa3]
            )))
        );
    }

    #[test]
    fn negotiate_codecs() {
        let ap = |f, receive, send| AddPathFamily {
            afi_safi: f,
            receive,
            send,
        };
        let local = Open::new(
            65001,
            90,
            Ipv4Addr::new(10, 0, 0, 1),
            vec![
                Capability::FourOctetAs(65001),
                Capability::ExtendedMessage,
                Capability::AddPath(vec![
                    ap(AfiSafi::IPV4_UNICAST, true, true),
                    ap(AfiSafi::IPV6_UNICAST, true, false),
                ]),
            ],
        );
        let remote = Open::new(
            65002,
            90,
            Ipv4Addr::new(10, 0, 0, 2),
            vec![
                Capability::FourOctetAs(65002),
                Capability::AddPath(vec![
                    ap(AfiSafi::IPV4_UNICAST, true, false),
                    ap(AfiSafi::IPV6_UNICAST, true, true),
                ]),
            ],
        );
        let (rx, tx) = Codec::negotiate(&local, &remote);
        assert!(rx.four_byte_as && tx.four_byte_as);
        assert!(
            !rx.extended_message,
            "the peer did not announce extended messages"
        );
        assert_eq!(rx.add_path, vec![AfiSafi::IPV6_UNICAST]);
        assert_eq!(tx.add_path, vec![AfiSafi::IPV4_UNICAST]);
        assert_eq!(rx.max_message_len(), 4096);
    }
}
