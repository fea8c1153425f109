//! Shared fixtures for the RFC 7606 tests of the attribute decoder (test builds only).
//!
//! Role: build UPDATE bodies around a few attributes and spell out the expected outcomes.
//! Inputs: attribute bytes. Outputs: UPDATE bodies and [`UpdateOutcome`] values to compare with.

use super::decode::{AttributeIssue, Problem};
use crate::wire::notification::Notification;
use crate::wire::prefix::{Nlri, Prefix};
use crate::wire::update::{TreatAsWithdraw, Update, UpdateOutcome};
use crate::wire::Codec;

pub(crate) const ORIGIN_IGP: [u8; 4] = [0x40, 0x01, 0x01, 0x00];
pub(crate) const AS_PATH_65001: [u8; 7] = [0x40, 0x02, 0x04, 0x02, 0x01, 0xfd, 0xe9]; // 2-byte AS_SEQUENCE 65001
pub(crate) const NEXT_HOP: [u8; 7] = [0x40, 0x03, 0x04, 0xc0, 0x00, 0x02, 0x01]; // 192.0.2.1
pub(crate) const WITHDRAWN: [u8; 4] = [0x18, 0xc6, 0x33, 0x64]; // 198.51.100.0/24
pub(crate) const NLRI: [u8; 4] = [0x18, 0xcb, 0x00, 0x71]; // 203.0.113.0/24

pub(crate) fn n(s: &str, len: u8) -> Nlri {
    Nlri::new(Prefix::new(s.parse().unwrap(), len).unwrap())
}

/// An UPDATE body: withdrawn 198.51.100.0/24, the given attributes, NLRI 203.0.113.0/24.
pub(crate) fn body(attrs: &[&[u8]]) -> Vec<u8> {
    let a: Vec<u8> = attrs.concat();
    let mut b = vec![0x00, 0x04];
    b.extend_from_slice(&WITHDRAWN);
    b.extend_from_slice(&u16::try_from(a.len()).unwrap().to_be_bytes());
    b.extend_from_slice(&a);
    b.extend_from_slice(&NLRI);
    b
}

/// Decode `body(attrs)` with the default codec, stripped (see [`strip`]).
pub(crate) fn decode(attrs: &[&[u8]]) -> UpdateOutcome {
    strip(Update::decode_body(&body(attrs), &Codec::default()))
}

/// The outcome with the attribute bytes of its issues removed, so tests can spell issues by type and
/// problem (the bytes are checked separately).
pub(crate) fn strip(outcome: UpdateOutcome) -> UpdateOutcome {
    let clear = |v: Vec<AttributeIssue>| {
        v.into_iter()
            .map(|i| AttributeIssue::new(i.type_code, i.problem))
            .collect()
    };
    match outcome {
        UpdateOutcome::AttributeDiscard { update, discarded } => UpdateOutcome::AttributeDiscard {
            update,
            discarded: clear(discarded),
        },
        UpdateOutcome::TreatAsWithdraw(t) => UpdateOutcome::TreatAsWithdraw(TreatAsWithdraw {
            withdrawn: t.withdrawn,
            reasons: clear(t.reasons),
        }),
        other => other,
    }
}

/// The outcome when one attribute is broken: both prefixes withdrawn for the given reason.
pub(crate) fn withdraw(type_code: u8, problem: Problem) -> UpdateOutcome {
    UpdateOutcome::TreatAsWithdraw(TreatAsWithdraw {
        withdrawn: vec![n("198.51.100.0", 24), n("203.0.113.0", 24)],
        reasons: vec![AttributeIssue::new(type_code, problem)],
    })
}

pub(crate) fn reset(subcode: u8, data: &[u8]) -> UpdateOutcome {
    UpdateOutcome::SessionReset(Notification::new(3, subcode, data.to_vec()))
}

pub(crate) fn discarded(outcome: UpdateOutcome) -> (Update, Vec<AttributeIssue>) {
    match outcome {
        UpdateOutcome::AttributeDiscard { update, discarded } => (update, discarded),
        other => panic!("expected attribute discard, got {other:?}"),
    }
}
