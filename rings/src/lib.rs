//! # rings — what goes where
//!
//! The model of a ringmaster setup: daemon settings, the ring set, releases and the fleet
//! registry. Loading reads files (the registry through git2 from the GitOps repository's base
//! branch) and validates in two phases: raw serde structs that deny unknown fields, then a
//! validated [`model::Config`]. Every problem is collected with its file, line and column.
//!
//! This crate does no network I/O.

pub mod diag;
pub mod duration;
pub mod glob;
pub mod ids;
pub mod load;
pub mod model;
pub mod raw;
pub mod schedule;
pub mod version;
mod yaml;
pub mod yamlpath;

pub use diag::{Diagnostic, Diagnostics, Pos, Severity};
pub use ids::{ClusterId, Component, GateName, ReleaseName, RingName};
pub use load::{Loaded, load};
pub use model::Config;
pub use version::{Version, VersionRange};
