//! # policies — when and whether
//!
//! Pure rules over the [`rings`] model: version rules (semver, one Kubernetes minor per step,
//! skew), windows and freezes (cron across DST), and the plan with its forecast. No I/O, no
//! clock: every function takes the instant it reasons about.

pub mod plan;
pub mod soak;
pub mod versions;
pub mod window;
