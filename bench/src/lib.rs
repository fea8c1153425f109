//! Shared pieces of the benchmark binaries (each binary's module docs say what it measures).

pub mod bgp_lab;
