//! # state — what happened
//!
//! The sled-backed store of rollouts, ring runs, PR links, gate samples and the event journal
//! (DESIGN §2, §5). It arrives with the daemon (issue 7); nothing uses it yet.
