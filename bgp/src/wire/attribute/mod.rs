//! Path attributes (RFC 4271 §4.3, §5) and their RFC 7606 error handling.
//!
//! Role: the attribute value types ([`types`]), AS paths ([`as_path`]), the multiprotocol attributes
//! ([`mp`]), the list decoder that applies RFC 7606 ([`decode`], per attribute in `value`) and the list
//! encoder ([`encode`]).
//! Inputs: the Path Attributes field of an UPDATE and the session's [`crate::wire::Codec`].
//! Outputs: an owned, hashable [`PathAttributes`] (for the RIB to intern) plus MP_REACH/MP_UNREACH, and the
//! problems found; or bytes.

pub mod as_path;
pub mod decode;
pub mod encode;
pub mod mp;
#[cfg(test)]
mod test_util;
pub mod types;
mod value;

pub use decode::{decode_attributes, AttributeIssue, DecodedAttributes, Problem};
pub use encode::encode_attributes;
pub use mp::{MpReach, MpUnreach, NextHop};
pub use types::{
    community, flags, type_code, Aggregator, AsPath, AsSegment, LargeCommunity, Origin,
    PathAttributes, RawAttribute, SegmentType,
};
