//! Codec errors and the NOTIFICATION error codes.
//!
//! Role: the one `thiserror` enum per direction of the codec. [`DecodeError`] is what framing and decoding a
//! message can fail with: either more bytes are needed, or the session must be reset with the NOTIFICATION it
//! carries (RFC 4271 §6). [`EncodeError`] is what building a message can fail with (a field that does not fit).
//! The RFC 7606 outcomes that do not reset the session (treat-as-withdraw, attribute discard) are not errors:
//! they are data, see [`crate::wire::UpdateOutcome`].
//!
//! Inputs: none (types only). Outputs: error values and the code/subcode constants used by every decoder.

use super::notification::Notification;

/// Why decoding a message failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The buffer does not hold a whole message yet; read at least `needed` more bytes.
    #[error("incomplete message: {needed} more bytes needed")]
    Incomplete {
        /// How many more bytes are needed at least.
        needed: usize,
    },
    /// The message is in error: send this NOTIFICATION and close the session (RFC 4271 §6).
    #[error("session reset: {0}")]
    SessionReset(Notification),
}

impl DecodeError {
    /// The NOTIFICATION to send, if this error resets the session.
    pub fn notification(&self) -> Option<&Notification> {
        match self {
            DecodeError::SessionReset(n) => Some(n),
            DecodeError::Incomplete { .. } => None,
        }
    }
}

impl From<Notification> for DecodeError {
    fn from(n: Notification) -> Self {
        DecodeError::SessionReset(n)
    }
}

/// Why encoding a message failed (the value does not fit the wire format).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The whole message would exceed the maximum message length.
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    MessageTooLong {
        /// The length the message would have.
        len: usize,
        /// The maximum allowed in this context.
        max: usize,
    },
    /// A capability value longer than 255 bytes.
    #[error("capability {code} value of {len} bytes exceeds 255")]
    CapabilityTooLong {
        /// The capability code.
        code: u8,
        /// The value length.
        len: usize,
    },
    /// The optional parameters exceed 65535 bytes even in the RFC 9072 extended form.
    #[error("optional parameters of {len} bytes exceed 65535")]
    OptionalParametersTooLong {
        /// Their length.
        len: usize,
    },
    /// A path attribute value longer than 65535 bytes.
    #[error("path attribute {type_code} value of {len} bytes exceeds 65535")]
    AttributeTooLong {
        /// The attribute type code.
        type_code: u8,
        /// The value length.
        len: usize,
    },
    /// A shutdown communication longer than 255 bytes (RFC 9003 §2).
    #[error("shutdown communication of {len} bytes exceeds 255")]
    ShutdownMessageTooLong {
        /// Its UTF-8 length.
        len: usize,
    },
    /// The prefix length exceeds the address length.
    #[error("prefix length {len} exceeds {max}")]
    PrefixTooLong {
        /// The given length.
        len: u8,
        /// 32 or 128.
        max: u8,
    },
    /// An NLRI of another address family than the MP attribute or field it is placed in.
    #[error("prefix of the wrong address family for this field")]
    WrongFamily,
    /// Withdrawn routes or path attributes longer than their 2-byte length field can hold.
    #[error("{what} of {len} bytes exceed 65535")]
    FieldTooLong {
        /// Which field.
        what: &'static str,
        /// Its length.
        len: usize,
    },
}

/// NOTIFICATION error codes (RFC 4271 §4.5, RFC 7313 §5) and their subcodes.
pub mod code {
    /// Message Header Error.
    pub const MESSAGE_HEADER: u8 = 1;
    /// OPEN Message Error.
    pub const OPEN_MESSAGE: u8 = 2;
    /// UPDATE Message Error.
    pub const UPDATE_MESSAGE: u8 = 3;
    /// Hold Timer Expired.
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    /// Finite State Machine Error.
    pub const FSM: u8 = 5;
    /// Cease.
    pub const CEASE: u8 = 6;
    /// ROUTE-REFRESH Message Error (RFC 7313 §5).
    pub const ROUTE_REFRESH: u8 = 7;

    /// Unspecific subcode, used where no specific one is defined (RFC 4271 §4.5).
    pub const UNSPECIFIC: u8 = 0;

    /// Message Header Error subcodes (RFC 4271 §6.1).
    pub mod header {
        /// Connection Not Synchronized (bad marker).
        pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
        /// Bad Message Length.
        pub const BAD_MESSAGE_LENGTH: u8 = 2;
        /// Bad Message Type.
        pub const BAD_MESSAGE_TYPE: u8 = 3;
    }

    /// OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492 §5).
    pub mod open {
        /// Unsupported Version Number.
        pub const UNSUPPORTED_VERSION: u8 = 1;
        /// Bad Peer AS.
        pub const BAD_PEER_AS: u8 = 2;
        /// Bad BGP Identifier.
        pub const BAD_BGP_IDENTIFIER: u8 = 3;
        /// Unsupported Optional Parameter.
        pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
        /// Unacceptable Hold Time.
        pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
        /// Unsupported Capability (RFC 5492 §5).
        pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    }

    /// UPDATE Message Error subcodes (RFC 4271 §6.3).
    pub mod update {
        /// Malformed Attribute List.
        pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
        /// Unrecognized Well-known Attribute.
        pub const UNRECOGNIZED_WELL_KNOWN: u8 = 2;
        /// Missing Well-known Attribute.
        pub const MISSING_WELL_KNOWN: u8 = 3;
        /// Attribute Flags Error.
        pub const ATTRIBUTE_FLAGS: u8 = 4;
        /// Attribute Length Error.
        pub const ATTRIBUTE_LENGTH: u8 = 5;
        /// Invalid ORIGIN Attribute.
        pub const INVALID_ORIGIN: u8 = 6;
        /// Invalid NEXT_HOP Attribute.
        pub const INVALID_NEXT_HOP: u8 = 8;
        /// Optional Attribute Error.
        pub const OPTIONAL_ATTRIBUTE: u8 = 9;
        /// Invalid Network Field.
        pub const INVALID_NETWORK_FIELD: u8 = 10;
        /// Malformed AS_PATH.
        pub const MALFORMED_AS_PATH: u8 = 11;
    }

    /// Cease subcodes (RFC 4486, RFC 9003).
    pub mod cease {
        /// Maximum Number of Prefixes Reached.
        pub const MAX_PREFIXES: u8 = 1;
        /// Administrative Shutdown (carries a shutdown communication, RFC 9003).
        pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
        /// Peer De-configured.
        pub const PEER_DECONFIGURED: u8 = 3;
        /// Administrative Reset (carries a shutdown communication, RFC 9003).
        pub const ADMINISTRATIVE_RESET: u8 = 4;
        /// Connection Rejected.
        pub const CONNECTION_REJECTED: u8 = 5;
        /// Other Configuration Change.
        pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
        /// Connection Collision Resolution.
        pub const CONNECTION_COLLISION: u8 = 7;
        /// Out of Resources.
        pub const OUT_OF_RESOURCES: u8 = 8;
        /// Hard Reset (RFC 8538).
        pub const HARD_RESET: u8 = 9;
    }

    /// ROUTE-REFRESH Message Error subcodes (RFC 7313 §5).
    pub mod route_refresh {
        /// Invalid Message Length.
        pub const INVALID_MESSAGE_LENGTH: u8 = 1;
    }
}
