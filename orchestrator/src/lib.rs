//! The ringmaster orchestrator: the daemon, its Git and forge sides, and the CLI commands.

pub mod api;
pub mod daemon;
pub mod forge;
pub mod gitops;
pub mod secret;
pub mod text;
