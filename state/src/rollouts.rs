//! The daemon's records (DESIGN §5): rollouts, ring runs, gate samples and the event journal.
//!
//! - A [`Rollout`] is one release travelling through the rings; its [`RingRun`]s (one per ring)
//!   carry the state machine. A ring run is only ever replaced through [`Store::transition`],
//!   a sled transaction that checks the stored `revision` (compare-and-swap: one writer wins),
//!   writes the rollout too when given, and appends the transition's journal [`Event`]s —
//!   all or nothing, flushed before the call returns, so the daemon acts only on what is on disk.
//! - Samples are append-only per (rollout, ring, step).
//! - The journal is append-only per rollout, keyed by sled's monotonic id generator.

use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

pub use crate::records::*;
use crate::{Store, StoreError, decode};

const ROLLOUTS: &str = "rollouts";
const RING_RUNS: &str = "ring_runs";
const SAMPLES: &str = "samples";
/// Per ring step: how many samples it has, by outcome (kept with the samples, in their writes).
const SAMPLE_COUNTS: &str = "sample_counts";
const JOURNAL: &str = "journal";
const GLOBAL: &str = "global";
const FREEZE_KEY: &[u8] = b"freeze";

fn run_key(rollout: &str, ring: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(rollout.len() + ring.len() + 1);
    k.extend_from_slice(rollout.as_bytes());
    k.push(0);
    k.extend_from_slice(ring.as_bytes());
    k
}

fn prefix(rollout: &str) -> Vec<u8> {
    let mut k = rollout.as_bytes().to_vec();
    k.push(0);
    k
}

fn sample_prefix(rollout: &str, ring: &str, step: u32) -> Vec<u8> {
    let mut k = run_key(rollout, ring);
    k.push(0);
    k.extend_from_slice(&step.to_be_bytes());
    k
}

/// Why a transition was not written.
#[derive(Debug)]
enum Abort {
    /// The stored revision is not the expected one.
    Stale,
}

impl Store {
    /// Schema 1 → 2: a blocked ring run without a cause was blocked by preflight or planning
    /// (the only blocks schema 1 knew); its reason becomes the finding. The new fields of
    /// other records read as their defaults.
    pub(crate) fn migrate_v1_to_v2(&self) -> Result<(), StoreError> {
        let runs = self.tree(RING_RUNS)?;
        for item in runs.iter() {
            let (key, value) = item.map_err(|e| self.err(e))?;
            let mut run: RingRun = decode(&self.path, &key, &value)?;
            if run.phase == Phase::Blocked && run.block.is_none() {
                run.block = Some(BlockCause::Preflight {
                    findings: run.reason.iter().cloned().collect(),
                });
                runs.insert(key, self.encode(&run)?)
                    .map_err(|e| self.err(e))?;
            }
        }
        Ok(())
    }

    fn tx_err(&self, e: TransactionError<()>) -> StoreError {
        match e {
            TransactionError::Storage(e) => self.err(e),
            TransactionError::Abort(()) => StoreError::Sled {
                path: self.path.clone(),
                message: "transaction aborted".to_owned(),
            },
        }
    }

    fn encode<T: Serialize>(&self, value: &T) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(value).map_err(|e| StoreError::Sled {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }

    /// Create a rollout and its pending ring runs, with a `started` journal entry, unless a
    /// rollout of that name exists. `Ok(false)` when it did.
    pub fn create_rollout(
        &self,
        rollout: &Rollout,
        runs: &[RingRun],
        event: &Event,
    ) -> Result<bool, StoreError> {
        let (rollouts, ring_runs, journal) = (
            self.tree(ROLLOUTS)?,
            self.tree(RING_RUNS)?,
            self.tree(JOURNAL)?,
        );
        let value = self.encode(rollout)?;
        let run_values: Vec<(Vec<u8>, Vec<u8>)> = runs
            .iter()
            .map(|r| Ok((run_key(&r.rollout, &r.ring), self.encode(r)?)))
            .collect::<Result<_, StoreError>>()?;
        let ev = self.encode(event)?;
        let result = (&rollouts, &ring_runs, &journal).transaction(|(ro, rr, j)| {
            if ro.get(rollout.name.as_bytes())?.is_some() {
                return Ok(false);
            }
            ro.insert(rollout.name.as_bytes(), value.clone())?;
            for (k, v) in &run_values {
                rr.insert(k.clone(), v.clone())?;
            }
            let id = j.generate_id()?;
            let mut k = prefix(&event.rollout);
            k.extend_from_slice(&id.to_be_bytes());
            j.insert(k, ev.clone())?;
            Ok(true)
        });
        let created = result.map_err(|e: TransactionError<()>| self.tx_err(e))?;
        self.bump();
        self.flush()?;
        Ok(created)
    }

    /// Replace `run` (whose `revision` must still be the stored one) with `new` (its revision
    /// is set to `run.revision + 1`), optionally replace the rollout record, and append
    /// `events` — one transaction, flushed. `Ok(None)` when the stored revision moved (another
    /// writer won): re-read and decide again. Returns the ring run as stored.
    pub fn transition(
        &self,
        run: &RingRun,
        mut new: RingRun,
        rollout: Option<&Rollout>,
        events: &[Event],
    ) -> Result<Option<RingRun>, StoreError> {
        new.revision = run.revision + 1;
        let key = run_key(&run.rollout, &run.ring);
        let value = self.encode(&new)?;
        let rollout_value = rollout
            .map(|r| Ok::<_, StoreError>((r.name.clone(), self.encode(r)?)))
            .transpose()?;
        let event_values: Vec<(String, Vec<u8>)> = events
            .iter()
            .map(|e| Ok((e.rollout.clone(), self.encode(e)?)))
            .collect::<Result<_, StoreError>>()?;
        let (rollouts, ring_runs, journal) = (
            self.tree(ROLLOUTS)?,
            self.tree(RING_RUNS)?,
            self.tree(JOURNAL)?,
        );
        let expected = run.revision;
        let result = (&rollouts, &ring_runs, &journal).transaction(|(ro, rr, j)| {
            let current = rr.get(&key)?;
            let stored_revision = current
                .as_ref()
                .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
                .and_then(|v| v.get("revision").and_then(serde_json::Value::as_u64));
            if stored_revision != Some(expected) {
                return Err(ConflictableTransactionError::Abort(Abort::Stale));
            }
            rr.insert(key.clone(), value.clone())?;
            if let Some((name, v)) = &rollout_value {
                ro.insert(name.as_bytes(), v.clone())?;
            }
            for (rollout, v) in &event_values {
                let id = j.generate_id()?;
                let mut k = prefix(rollout);
                k.extend_from_slice(&id.to_be_bytes());
                j.insert(k, v.clone())?;
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                self.bump();
                self.flush()?;
                Ok(Some(new))
            }
            Err(TransactionError::Abort(Abort::Stale)) => Ok(None),
            Err(TransactionError::Storage(e)) => Err(self.err(e)),
        }
    }

    /// Replace a rollout record and append events (rollout-level changes: pause, abort,
    /// completion), flushed.
    pub fn put_rollout(&self, rollout: &Rollout, events: &[Event]) -> Result<(), StoreError> {
        let value = self.encode(rollout)?;
        let event_values: Vec<Vec<u8>> = events
            .iter()
            .map(|e| self.encode(e))
            .collect::<Result<_, _>>()?;
        let (rollouts, journal) = (self.tree(ROLLOUTS)?, self.tree(JOURNAL)?);
        (&rollouts, &journal)
            .transaction(|(ro, j)| {
                ro.insert(rollout.name.as_bytes(), value.clone())?;
                for v in &event_values {
                    let id = j.generate_id()?;
                    let mut k = prefix(&rollout.name);
                    k.extend_from_slice(&id.to_be_bytes());
                    j.insert(k, v.clone())?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e: TransactionError<()>| self.tx_err(e))?;
        self.bump();
        self.flush()
    }

    /// Append journal entries on their own (commands, notes), flushed.
    pub fn append_events(&self, events: &[Event]) -> Result<(), StoreError> {
        let journal = self.tree(JOURNAL)?;
        for e in events {
            let id = self.db.generate_id().map_err(|e| self.err(e))?;
            let mut k = prefix(&e.rollout);
            k.extend_from_slice(&id.to_be_bytes());
            journal
                .insert(k, self.encode(e)?)
                .map_err(|e| self.err(e))?;
        }
        self.flush()
    }

    /// A rollout by name.
    pub fn rollout(&self, name: &str) -> Result<Option<Rollout>, StoreError> {
        match self
            .tree(ROLLOUTS)?
            .get(name.as_bytes())
            .map_err(|e| self.err(e))?
        {
            Some(v) => decode(&self.path, name.as_bytes(), &v).map(Some),
            None => Ok(None),
        }
    }

    /// Every rollout, in release order (then name).
    pub fn rollouts(&self) -> Result<Vec<Rollout>, StoreError> {
        let mut out: Vec<Rollout> = Vec::new();
        for item in self.tree(ROLLOUTS)?.iter() {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push(decode(&self.path, &k, &v)?);
        }
        out.sort_by(|a, b| a.order.cmp(&b.order).then_with(|| a.name.cmp(&b.name)));
        Ok(out)
    }

    /// The ring runs of a rollout, in ring order.
    pub fn ring_runs(&self, rollout: &str) -> Result<Vec<RingRun>, StoreError> {
        let mut out: Vec<RingRun> = Vec::new();
        for item in self.tree(RING_RUNS)?.scan_prefix(prefix(rollout)) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push(decode(&self.path, &k, &v)?);
        }
        out.sort_by_key(|r| r.index);
        Ok(out)
    }

    /// The phase of each ring run of a rollout, in ring order — the rest of each record is
    /// skipped, not decoded (the per-pass ring-occupancy check reads every rollout's).
    pub fn ring_phases(&self, rollout: &str) -> Result<Vec<RingPhase>, StoreError> {
        let mut out: Vec<RingPhase> = Vec::new();
        for item in self.tree(RING_RUNS)?.scan_prefix(prefix(rollout)) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push(decode(&self.path, &k, &v)?);
        }
        out.sort_by_key(|r| r.index);
        Ok(out)
    }

    /// One ring run.
    pub fn ring_run(&self, rollout: &str, ring: &str) -> Result<Option<RingRun>, StoreError> {
        let key = run_key(rollout, ring);
        match self.tree(RING_RUNS)?.get(&key).map_err(|e| self.err(e))? {
            Some(v) => decode(&self.path, &key, &v).map(Some),
            None => Ok(None),
        }
    }

    /// Add a ring run that did not exist (a ring added to the ring file mid-rollout).
    pub fn insert_ring_run(&self, run: &RingRun) -> Result<bool, StoreError> {
        let key = run_key(&run.rollout, &run.ring);
        let ok = self
            .tree(RING_RUNS)?
            .compare_and_swap(key, None as Option<&[u8]>, Some(self.encode(run)?))
            .map_err(|e| self.err(e))?
            .is_ok();
        self.bump();
        self.flush()?;
        Ok(ok)
    }

    /// Append gate samples of a ring step and count them in the step's counts — one
    /// transaction, flushed.
    pub fn add_samples(
        &self,
        rollout: &str,
        ring: &str,
        step: u32,
        samples: &[SampleRecord],
    ) -> Result<(), StoreError> {
        let (tree, counts_tree) = (self.tree(SAMPLES)?, self.tree(SAMPLE_COUNTS)?);
        let base = sample_prefix(rollout, ring, step);
        // A step stored before counts were kept is counted once, from its samples.
        let mut counts = match counts_tree.get(&base).map_err(|e| self.err(e))? {
            Some(v) => decode::<SampleCounts>(&self.path, &base, &v)?,
            None => self.count_by_scanning(&base)?,
        };
        let mut values = Vec::with_capacity(samples.len());
        for s in samples {
            counts.add(s.outcome);
            values.push(self.encode(s)?);
        }
        let counts_value = self.encode(&counts)?;
        (&tree, &counts_tree)
            .transaction(|(t, c)| {
                for v in &values {
                    let id = t.generate_id()?;
                    let mut k = base.clone();
                    k.extend_from_slice(&id.to_be_bytes());
                    t.insert(k, v.clone())?;
                }
                c.insert(base.clone(), counts_value.clone())?;
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e: TransactionError<()>| self.tx_err(e))?;
        self.flush()
    }

    /// The samples of a ring step, oldest first.
    pub fn samples(
        &self,
        rollout: &str,
        ring: &str,
        step: u32,
    ) -> Result<Vec<SampleRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .tree(SAMPLES)?
            .scan_prefix(sample_prefix(rollout, ring, step))
        {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push(decode(&self.path, &k, &v)?);
        }
        Ok(out)
    }

    /// The samples of a ring step stored after the one with id `after` (all of them with
    /// `None`), oldest first, with their ids: a reader that keeps a running tally passes the
    /// last id it saw and decodes only what is new.
    pub fn samples_after(
        &self,
        rollout: &str,
        ring: &str,
        step: u32,
        after: Option<u64>,
    ) -> Result<Vec<(u64, SampleRecord)>, StoreError> {
        let base = sample_prefix(rollout, ring, step);
        let mut from = base.clone();
        if let Some(id) = after {
            match id.checked_add(1) {
                Some(next) => from.extend_from_slice(&next.to_be_bytes()),
                None => return Ok(Vec::new()),
            }
        }
        let mut out = Vec::new();
        for item in self.tree(SAMPLES)?.range(from..) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let Some(id) = k
                .strip_prefix(base.as_slice())
                .and_then(|rest| <[u8; 8]>::try_from(rest).ok())
            else {
                break; // past this step's samples
            };
            out.push((u64::from_be_bytes(id), decode(&self.path, &k, &v)?));
        }
        Ok(out)
    }

    /// How many samples a ring step has, by outcome: one record, kept with the samples
    /// (`status` and every `/metrics` scrape read this; a soak can hold tens of thousands).
    pub fn sample_counts(
        &self,
        rollout: &str,
        ring: &str,
        step: u32,
    ) -> Result<SampleCounts, StoreError> {
        let base = sample_prefix(rollout, ring, step);
        match self
            .tree(SAMPLE_COUNTS)?
            .get(&base)
            .map_err(|e| self.err(e))?
        {
            Some(v) => decode(&self.path, &base, &v),
            None => self.count_by_scanning(&base),
        }
    }

    /// Count a step's samples by reading them (the outcome only).
    fn count_by_scanning(&self, base: &[u8]) -> Result<SampleCounts, StoreError> {
        #[derive(Deserialize)]
        struct OutcomeOnly {
            outcome: SampleOutcome,
        }
        let mut counts = SampleCounts::default();
        for item in self.tree(SAMPLES)?.scan_prefix(base) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let o: OutcomeOnly = decode(&self.path, &k, &v)?;
            counts.add(o.outcome);
        }
        Ok(counts)
    }

    /// The latest sample of each (gate, cluster) of a ring step, read newest first. With
    /// `wanted`, only those pairs, and the scan stops once each has been found (a pair that is
    /// never found — a gate not sampled yet — reads back to the first sample); with `None`,
    /// every pair, reading back to the first sample. Sorted by gate, then cluster.
    pub fn latest_samples(
        &self,
        rollout: &str,
        ring: &str,
        step: u32,
        wanted: Option<&[(String, String)]>,
    ) -> Result<Vec<SampleRecord>, StoreError> {
        #[derive(Deserialize)]
        struct Pair {
            gate: String,
            cluster: String,
        }
        let mut latest: std::collections::BTreeMap<(String, String), SampleRecord> =
            std::collections::BTreeMap::new();
        for item in self
            .tree(SAMPLES)?
            .scan_prefix(sample_prefix(rollout, ring, step))
            .rev()
        {
            if wanted.is_some_and(|w| latest.len() >= w.len()) {
                break;
            }
            let (k, v) = item.map_err(|e| self.err(e))?;
            let p: Pair = decode(&self.path, &k, &v)?;
            let key = (p.gate, p.cluster);
            if wanted.is_some_and(|w| !w.contains(&key)) {
                continue;
            }
            if let std::collections::btree_map::Entry::Vacant(e) = latest.entry(key) {
                e.insert(decode(&self.path, &k, &v)?);
            }
        }
        Ok(latest.into_values().collect())
    }

    /// Forget the samples of a ring step (resume re-runs the gates from zero), flushed.
    pub fn clear_samples(&self, rollout: &str, ring: &str, step: u32) -> Result<(), StoreError> {
        self.tree(SAMPLE_COUNTS)?
            .remove(sample_prefix(rollout, ring, step))
            .map_err(|e| self.err(e))?;
        let tree = self.tree(SAMPLES)?;
        let mut batch = sled::Batch::default();
        for item in tree.scan_prefix(sample_prefix(rollout, ring, step)).keys() {
            batch.remove(item.map_err(|e| self.err(e))?);
        }
        tree.apply_batch(batch).map_err(|e| self.err(e))?;
        self.flush()
    }

    /// The journal of a rollout, oldest first.
    pub fn journal(&self, rollout: &str) -> Result<Vec<Event>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree(JOURNAL)?.scan_prefix(prefix(rollout)) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push(decode(&self.path, &k, &v)?);
        }
        Ok(out)
    }

    /// The journal of a rollout from entry `skip` on (the entries before are not decoded), and
    /// the journal's length.
    pub fn journal_from(
        &self,
        rollout: &str,
        skip: usize,
    ) -> Result<(Vec<Event>, usize), StoreError> {
        let mut out = Vec::new();
        let mut n = 0;
        for item in self.tree(JOURNAL)?.scan_prefix(prefix(rollout)) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            if n >= skip {
                out.push(decode(&self.path, &k, &v)?);
            }
            n += 1;
        }
        Ok((out, n))
    }

    /// The global freeze, if one is set.
    pub fn global_freeze(&self) -> Result<Option<GlobalFreeze>, StoreError> {
        match self
            .tree(GLOBAL)?
            .get(FREEZE_KEY)
            .map_err(|e| self.err(e))?
        {
            Some(v) => decode(&self.path, FREEZE_KEY, &v).map(Some),
            None => Ok(None),
        }
    }

    /// Set (`Some`) or lift (`None`) the global freeze, flushed.
    pub fn set_global_freeze(&self, freeze: Option<&GlobalFreeze>) -> Result<(), StoreError> {
        let tree = self.tree(GLOBAL)?;
        match freeze {
            Some(f) => {
                tree.insert(FREEZE_KEY, self.encode(f)?)
                    .map_err(|e| self.err(e))?;
            }
            None => {
                tree.remove(FREEZE_KEY).map_err(|e| self.err(e))?;
            }
        }
        self.bump();
        self.flush()
    }

    /// Whether the store holds no rollout at all (a fresh or lost store: rebuild from the forge).
    pub fn has_rollouts(&self) -> Result<bool, StoreError> {
        Ok(!self.tree(ROLLOUTS)?.is_empty())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
