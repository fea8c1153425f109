//! Fuzz target: the BGP message decoder on arbitrary bytes.
//!
//! Role: feed the input, as a stream of messages, to `decode_message` under several codec contexts (2- and
//! 4-byte AS, ADD-PATH for IPv4/IPv6 unicast, extended messages). It must never panic; and every message it
//! accepts must re-encode and decode back to the same value.
//! Inputs: bytes from libFuzzer. Outputs: none (a panic is a finding).

#![no_main]

use bytes::BytesMut;
use calico_bgp::wire::{decode_message, encode_message, AfiSafi, Codec, Decoded, Message};
use libfuzzer_sys::fuzz_target;

fn codecs() -> [Codec; 4] {
    let both = vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST];
    [
        Codec::default(),
        Codec {
            four_byte_as: true,
            ..Codec::default()
        },
        Codec {
            four_byte_as: true,
            extended_message: true,
            add_path: both.clone(),
        },
        Codec {
            four_byte_as: false,
            extended_message: false,
            add_path: both,
        },
    ]
}

/// Re-encode an accepted message and check it decodes to the same value.
fn check_round_trip(msg: &Message, codec: &Codec) {
    let mut out = BytesMut::new();
    // A value can fail to encode only by growing past the limits, which decoded values do not.
    if encode_message(msg, codec, &mut out).is_err() {
        return;
    }
    match decode_message(&out, codec) {
        Ok((Decoded::Message(back), used)) => {
            assert_eq!(&back, msg, "re-decoded message differs");
            assert_eq!(used, out.len());
        }
        other => panic!("re-encoded message did not decode cleanly: {other:?} from {msg:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    for codec in codecs() {
        let mut rest = data;
        while let Ok((decoded, used)) = decode_message(rest, &codec) {
            match decoded {
                Decoded::Message(msg) => check_round_trip(&msg, &codec),
                Decoded::AttributeDiscard { update, .. } => {
                    check_round_trip(&Message::Update(update), &codec)
                }
                Decoded::TreatAsWithdraw(_) => {}
            }
            match rest.get(used..) {
                Some(r) if used > 0 => rest = r,
                _ => break,
            }
        }
    }
});
