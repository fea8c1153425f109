//! A general BGP-4 speaker library.
//!
//! Role: the wire codec (RFC 4271 messages with the capabilities and attributes Calico's peers use), the
//! session FSM, the RIBs and best-path selection, per-peer policy and the kernel FIB sync. It knows nothing
//! of Calico, Docker or the datastore: callers hand it peers and locally originated routes through its API
//! and read sessions and routes back.
//!
//! Inputs: bytes from peers' TCP sessions, configuration and local routes from the API, `now` for timers.
//! Outputs: bytes to peers, route operations for the kernel FIB, status for `calico-bgp status`.
//!
//! The decoder and the FSM are sans-IO; sockets, netlink and timers live at the edges.

pub mod fib;
pub mod rib;
pub mod session;
pub mod speaker;
pub mod wire;

/// The netlink codec the FIB uses, for tools and benchmarks that talk to the kernel the same way.
pub use calico_netlink as netlink;
