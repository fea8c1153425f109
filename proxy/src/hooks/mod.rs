//! The hooks on the few Docker API calls that concern Calico. Pure decisions live here; the proxy's
//! forwarding path calls them and carries out what they decide.

pub mod create;
pub mod inspect;
pub mod list;
pub mod rawjson;
pub mod workload;
pub mod wrapper;
