//! # integration — test support
//!
//! Generated fleets for scale tests and benchmarks; [`github`], a fake GitHub REST API on
//! loopback backed by real git repositories (DESIGN §8, §10); [`kube`], a fake Kubernetes API
//! server (nodes, workloads, pods, versions, discovery) for the real kube client. The rest of the
//! fleet simulator (clusters converging to the GitOps branch, metrics) arrives with the daemon.

pub mod fleetgen;
pub mod github;
pub mod kube;
pub mod sim;
