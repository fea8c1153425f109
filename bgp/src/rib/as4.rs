//! AS4_PATH and AS4_AGGREGATOR (RFC 6793 §4.2) for sessions with speakers lacking 4-octet AS support.
//!
//! Role: rebuild the true AS path of routes received from a 2-byte ("OLD") speaker, and produce the AS_PATH
//! with AS_TRANS plus the AS4_* attributes for routes sent to one. Pure.
//! Inputs: path attributes as received from, or about to be sent to, a 2-byte speaker.
//! Outputs: the attributes rewritten in place.

use crate::wire::{AsPath, AsSegment, PathAttributes, SegmentType, AS_TRANS};

fn is_confed(s: &AsSegment) -> bool {
    matches!(s.kind, SegmentType::ConfedSequence | SegmentType::ConfedSet)
}

/// RFC 6793 §4.2.3: merge AS4_AGGREGATOR and AS4_PATH received from a 2-byte speaker into AGGREGATOR and
/// AS_PATH, and drop the AS4_* attributes.
pub fn merge_from_two_byte(a: &mut PathAttributes) {
    let as4_path = a.as4_path.take();
    let as4_agg = a.as4_aggregator.take();
    if let Some(agg) = a.aggregator {
        if agg.asn != u32::from(AS_TRANS) {
            // The aggregating speaker was an OLD one: AS4_AGGREGATOR and AS4_PATH are ignored.
            return;
        }
        if let Some(real) = as4_agg {
            a.aggregator = Some(real);
        }
    }
    let (Some(as4), Some(path)) = (as4_path, a.as_path.as_mut()) else {
        return;
    };
    let n = path.route_length();
    let m = as4.route_length();
    if n < m {
        return; // AS4_PATH ignored: AS_PATH is the path information.
    }
    let mut remaining = n - m;
    let mut merged = Vec::new();
    for seg in &path.segments {
        if is_confed(seg) {
            merged.push(seg.clone());
            continue;
        }
        if remaining == 0 {
            break;
        }
        match seg.kind {
            SegmentType::Set => {
                merged.push(seg.clone());
                remaining -= 1;
            }
            _ => {
                let take = remaining.min(seg.asns.len());
                merged.push(AsSegment {
                    kind: seg.kind,
                    asns: seg.asns[..take].to_vec(),
                });
                remaining -= take;
            }
        }
    }
    for seg in as4.segments.into_iter().filter(|s| !is_confed(s)) {
        // Adjacent AS_SEQUENCEs are one sequence (the encoder splits runs longer than 255).
        match merged.last_mut() {
            Some(last)
                if last.kind == SegmentType::Sequence && seg.kind == SegmentType::Sequence =>
            {
                last.asns.extend(seg.asns);
            }
            _ => merged.push(seg),
        }
    }
    *path = AsPath { segments: merged };
}

fn mappable(asn: u32) -> bool {
    asn <= u32::from(u16::MAX)
}

/// RFC 6793 §4.2.2: rewrite attributes for a 2-byte speaker: AS numbers that need 4 bytes become AS_TRANS in
/// AS_PATH and AGGREGATOR, the true values travel in AS4_PATH (without confederation segments) and
/// AS4_AGGREGATOR, each sent only when needed.
pub fn prepare_for_two_byte(a: &mut PathAttributes) {
    a.as4_path = None;
    a.as4_aggregator = None;
    if let Some(path) = a.as_path.as_mut() {
        if !path
            .segments
            .iter()
            .all(|s| s.asns.iter().all(|&x| mappable(x)))
        {
            let as4 = AsPath {
                segments: path
                    .segments
                    .iter()
                    .filter(|s| !is_confed(s))
                    .cloned()
                    .collect(),
            };
            for s in &mut path.segments {
                for x in &mut s.asns {
                    if !mappable(*x) {
                        *x = u32::from(AS_TRANS);
                    }
                }
            }
            a.as4_path = Some(as4);
        }
    }
    if let Some(agg) = a.aggregator.as_mut() {
        if !mappable(agg.asn) {
            a.as4_aggregator = Some(*agg);
            agg.asn = u32::from(AS_TRANS);
        }
    }
}

/// For a 4-octet speaker: AS4_PATH and AS4_AGGREGATOR are never sent (RFC 6793 §4.1).
pub fn prepare_for_four_byte(a: &mut PathAttributes) {
    a.as4_path = None;
    a.as4_aggregator = None;
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::wire::Aggregator;

    const T: u32 = AS_TRANS as u32;

    #[test]
    fn two_byte_round_trip() {
        let mut a = PathAttributes {
            as_path: Some(AsPath::sequence(vec![65001, 4_200_000_001, 65002])),
            aggregator: Some(Aggregator {
                asn: 4_200_000_002,
                address: Ipv4Addr::new(192, 0, 2, 1),
            }),
            ..PathAttributes::default()
        };
        let orig = a.clone();
        prepare_for_two_byte(&mut a);
        assert_eq!(a.as_path, Some(AsPath::sequence(vec![65001, T, 65002])));
        assert_eq!(a.as4_path, orig.as_path);
        assert_eq!(a.aggregator.map(|g| g.asn), Some(T));
        assert_eq!(a.as4_aggregator, orig.aggregator);
        merge_from_two_byte(&mut a);
        assert_eq!(a, orig);
    }

    #[test]
    fn mappable_paths_get_no_as4_attributes() {
        let mut a = PathAttributes {
            as_path: Some(AsPath::sequence(vec![65001, 65002])),
            as4_path: Some(AsPath::sequence(vec![1])),
            ..PathAttributes::default()
        };
        prepare_for_two_byte(&mut a);
        assert_eq!(a.as4_path, None);
        assert_eq!(a.as_path, Some(AsPath::sequence(vec![65001, 65002])));
    }

    #[test]
    fn merge_keeps_leading_ases_added_by_old_speakers() {
        // An OLD speaker (65010) prepended itself after the path left the NEW part of the Internet.
        let mut a = PathAttributes {
            as_path: Some(AsPath::sequence(vec![65010, 65001, T, T])),
            as4_path: Some(AsPath::sequence(vec![65001, 4_200_000_001, 4_200_000_002])),
            ..PathAttributes::default()
        };
        merge_from_two_byte(&mut a);
        assert_eq!(
            a.as_path,
            Some(AsPath::sequence(vec![
                65010,
                65001,
                4_200_000_001,
                4_200_000_002
            ]))
        );
        assert_eq!(a.as4_path, None);
        // AS4_PATH longer than AS_PATH: ignored.
        let mut b = PathAttributes {
            as_path: Some(AsPath::sequence(vec![T])),
            as4_path: Some(AsPath::sequence(vec![4_200_000_001, 4_200_000_002])),
            ..PathAttributes::default()
        };
        merge_from_two_byte(&mut b);
        assert_eq!(b.as_path, Some(AsPath::sequence(vec![T])));
        // An AGGREGATOR from an OLD speaker (not AS_TRANS): both AS4 attributes ignored.
        let agg = Aggregator {
            asn: 65005,
            address: Ipv4Addr::new(192, 0, 2, 5),
        };
        let mut c = PathAttributes {
            as_path: Some(AsPath::sequence(vec![T])),
            aggregator: Some(agg),
            as4_path: Some(AsPath::sequence(vec![4_200_000_001])),
            as4_aggregator: Some(Aggregator {
                asn: 4_200_000_009,
                address: agg.address,
            }),
            ..PathAttributes::default()
        };
        merge_from_two_byte(&mut c);
        assert_eq!(c.as_path, Some(AsPath::sequence(vec![T])));
        assert_eq!(c.aggregator, Some(agg));
        assert_eq!((c.as4_path, c.as4_aggregator), (None, None));
    }
}
