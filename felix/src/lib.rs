//! Felix, the dataplane agent.
//!
//! Role: turn "these endpoints and profiles live on this host" into the kernel's state and keep it
//! converged: a /32 (/128) route, proxy-ARP/NDP settings and a static neighbour per endpoint interface;
//! firewall policy for every endpoint (anti-spoofing, profile rules shared per profile, tag sets); and
//! masquerade for nat-outgoing pools. It knows nothing of BGP or Docker.
//!
//! Inputs: the host's desired state (endpoints, compiled profiles, tag memberships, pools) and what the
//! kernel holds. Outputs: batched netlink and firewall transactions, per-endpoint status and metrics.
//!
//! The planner (desired vs observed → operations) and the rule renderer are pure; I/O lives at the edges.

pub mod agent;
pub mod changes;
pub mod conntrack;
pub mod error;
pub mod firewall;
pub mod flows;
pub mod ipip;
pub mod model;
pub mod nft;
pub mod plan;
pub mod routes;
mod sys;

pub use error::Error;
