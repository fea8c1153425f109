//! The node glue: calico-node's pieces (Felix, the BGP speaker, the Docker proxy) driven by the master's
//! sync stream. The only module where felix, bgp and proxy meet.
//!
//! Pure parts: [`desired`] (node state → Felix's desired state and changes) and [`bgp`] (node state →
//! the speaker's peers and announcements). Edges: [`daemon`] (the tasks), [`blackhole`] (the blocks'
//! blackhole routes), [`check`] (the system checks).

pub mod bgp;
pub mod blackhole;
pub mod check;
pub mod daemon;
pub mod desired;
pub mod time;
