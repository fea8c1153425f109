//! The Calico control plane.
//!
//! Role: the cluster's data model (hosts, endpoints, profiles, pools, BGP configuration) with validation at
//! the boundary; the datastores (an embedded one-file store by default, etcd for clusters); IPAM with
//! per-host blocks; the ACL manager that compiles profiles and tag memberships into per-node deltas; the
//! HTTP/JSON API that `calicoctl` talks to; the node sync stream; and the client library for all of these.
//! It knows nothing of the dataplane.
//!
//! Inputs: API requests from `calicoctl`, nodes and the Docker proxy. Outputs: stored state, API answers,
//! and per-node snapshots and deltas on the sync stream.

pub mod acl;
pub mod api;
pub mod client;
pub mod ipam;
pub mod model;
pub mod rules;
pub mod store;
pub mod sync;
