//! The cluster's data model, with validation at the boundary.
//!
//! Role: the serde types for everything the master stores (hosts, workload endpoints, profiles and their
//! rules, IP pools, BGP configuration, Felix's cluster config) with JSON shapes that match the 2015 original's etcd values, and the
//! checks a write must pass before it is stored.
//!
//! Inputs: JSON documents (from the API or the datastore) and values built by code (the CLI, the proxy).
//! Outputs: typed values, their JSON, and a [`ValidationError`] that names the offending field and says what
//! to do about it. Validation never changes a value: a rejected write changes nothing.
//!
//! Cross-object checks (an endpoint's IPs lie in an enabled pool and are free, a profile in use cannot be
//! removed) need the whole state and live with their owners: IPAM ([`crate::ipam`]) and the datastore.

mod asn;
mod bgp;
mod config;
mod endpoint;
mod error;
mod host;
mod mac;
mod names;
mod pool;
mod ports;
mod profile;
mod rule;

pub use asn::AsNumber;
pub use bgp::{BgpConfig, BgpPeer, BgpTimers, DEFAULT_AS};
pub use config::{
    effective, known_key, validate_config, validate_config_key, KnownKey, KNOWN_KEYS, MAX_KEY_LEN,
    MAX_VALUE_LEN,
};
pub use endpoint::{Endpoint, EndpointState, ORCHESTRATOR_DOCKER};
pub use error::ValidationError;
pub use host::{Host, RouteReflector};
pub use mac::MacAddr;
pub use names::{
    interface_name_for, is_reserved_word, validate_hostname, validate_interface_name,
    validate_name, RESERVED_WORDS,
};
pub use pool::IpPool;
pub use ports::{format_ports, parse_ports, PortRange};
pub use profile::{Profile, Rules};
pub use rule::{Action, IpVersion, Protocol, Rule};
