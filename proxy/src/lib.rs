//! The Docker API proxy that listens on port 2375.
//!
//! Role: pass every Docker API request through to the daemon's unix socket, streaming bodies and raw
//! upgraded connections (attach, exec, BuildKit) untouched, and hook the few calls that concern Calico:
//! container create (reserve the `CALICO_IP` addresses, switch the container to network mode `none`),
//! start (wire the veth, addresses and routes, register the endpoint), inspect (show the Calico IP), and
//! die/destroy (clean up). It knows nothing of BGP or the firewall.
//!
//! Inputs: Docker API requests from clients and Docker's event stream. Outputs: the daemon's answers,
//! wired container interfaces, and endpoint registrations with the master.

pub mod create;
pub mod hooks;
pub mod passthrough;
pub mod remove;
pub mod server;
