//! # integration — test support
//!
//! Generated fleets for scale tests and benchmarks. The fake GitHub and Kubernetes API servers
//! and the fleet simulator (DESIGN §10) arrive with the issues that need them.

pub mod fleetgen;
