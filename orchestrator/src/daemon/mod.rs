//! The daemon (DESIGN §5): a reconcile loop that takes each release through the rings.
//!
//! [`Daemon::pass`] is one reconcile pass: fetch the GitOps base branch, (re)load the
//! configuration when it changed, start a rollout for every new release (file order), then
//! advance every ring run of every unfinished rollout by idempotent steps until it has to wait.
//! Every transition is written to the store (a revision-checked transaction with its journal
//! entries, flushed) before the daemon relies on it; every side effect is idempotent (branch
//! names and PR markers identify PRs, comments carry keys), so a crash anywhere costs a repeated
//! step, never a duplicate PR or a skipped ring.

pub mod clock;
pub mod control;
pub mod live;
pub mod probe;
mod reconcile;
pub mod status;

pub use reconcile::{
    Daemon, DaemonError, DaemonOptions, HALTED_LABEL, PassReport, evidence_of, halt_comment,
    ring_state, targets_of,
};

/// Who the journal names for what the daemon does by itself.
pub const ACTOR: &str = "ringmaster";
