//! The Docker API proxy that listens on port 2375.
//!
//! Role: pass every Docker API request through to the daemon's unix socket, streaming bodies and raw
//! upgraded connections (attach, exec, BuildKit) untouched, and hook the few calls that concern Calico:
//! container create (reserve the `CALICO_IP` addresses, switch the container to network mode `none`,
//! record what start needs as labels, put the init wrapper in front of the command), start (wire the
//! veth, addresses and routes, register the endpoint), inspect (show the Calico IP and the real
//! command), list (the real command in `docker ps`), and remove (delete the endpoint, release the
//! addresses). Docker's event stream and a
//! reconcile at start catch what bypassed the proxy (die, destroy, starts straight at dockerd). It knows
//! nothing of BGP or the firewall.
//!
//! Inputs: Docker API requests from clients and Docker's event stream. Outputs: the daemon's answers,
//! wired container interfaces, and endpoint registrations with the master.
//!
//! For calico-node: build a [`context::Calico`], wrap it in a [`passthrough::Upstream`], then
//! [`server::Proxy::bind`] + [`server::Proxy::serve`] and, beside it, [`events::run_background`].
//! [`manual`] is what `calicoctl container` runs.

pub mod container;
pub mod context;
pub mod create;
pub mod docker;
pub mod error;
pub mod events;
pub mod hooks;
pub mod init;
pub mod manual;
pub mod passthrough;
pub mod remove;
pub mod retry;
pub mod server;
pub mod start;
mod sys;
pub mod tunnel;
pub mod wire;

pub use error::Error;
