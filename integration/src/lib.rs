//! # integration — test support
//!
//! Generated fleets for scale tests and benchmarks, and [`github`]: a fake GitHub REST API on
//! loopback backed by real git repositories (DESIGN §8, §10). The fake Kubernetes API servers and
//! the rest of the fleet simulator arrive with the issues that need them.

pub mod fleetgen;
pub mod github;
