//! # policies — when and whether
//!
//! Rules over the [`rings`] model: version rules (semver, one Kubernetes minor per step, skew),
//! windows and freezes (cron across DST), the plan with its forecast, and the soak verdict — all
//! pure: no I/O, no clock, every function takes the instant it reasons about. The one exception
//! is [`gates`], the gate evaluators (Kubernetes, Prometheus, HTTP, command), which do the
//! network and process I/O of a sample and return an outcome for the pure [`soak`] logic, and
//! [`probe`], the facade the daemon calls to evaluate gates, convergence and preflight checks
//! across a ring's clusters within the request budgets of DESIGN §13 ([`ratelimit`]).
//! [`removed_apis`] is the table of API versions each Kubernetes minor removed.

pub mod gates;
pub mod plan;
pub mod probe;
pub mod ratelimit;
pub mod removed_apis;
pub mod soak;
pub mod versions;
pub mod window;
