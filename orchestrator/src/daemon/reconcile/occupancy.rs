//! The ring-occupancy rule (DESIGN §5): one rollout per ring at a time, in release order;
//! a revert holds the rings it has started.

use super::*;

/// Every unfinished rollout's ring phases, as the ring-occupancy rule reads them. Read once
/// (phases only, not whole ring runs) and kept while the store's generation stays the same:
/// any write through the store — a transition of this pass, a command from the API — makes
/// the next question read it again, so an idle pass reads it once.
#[derive(Debug)]
pub(super) struct Occupancy {
    pub(super) generation: u64,
    rollouts: Vec<Occupant>,
}

#[derive(Debug)]
pub(super) struct Occupant {
    pub(super) name: String,
    pub(super) order: u32,
    pub(super) revert: bool,
    pub(super) phases: Vec<state::RingPhase>,
}

impl Occupancy {
    pub(super) fn read(store: &Store) -> Result<Occupancy, DaemonError> {
        // The generation first: a write racing this read makes the cache stale, never wrong.
        let generation = store.generation();
        let mut rollouts = Vec::new();
        for r in store.rollouts()? {
            if r.state.is_finished() {
                continue;
            }
            rollouts.push(Occupant {
                phases: store.ring_phases(&r.name)?,
                revert: r.revert_of.is_some(),
                order: r.order,
                name: r.name,
            });
        }
        Ok(Occupancy {
            generation,
            rollouts,
        })
    }

    /// The release order of an unfinished rollout.
    pub(super) fn order(&self, rollout: &str) -> Option<u32> {
        self.rollouts
            .iter()
            .find(|o| o.name == rollout)
            .map(|o| o.order)
    }

    /// The phase of an unfinished rollout's run of `ring`. By name: rings may have been
    /// added, removed or reordered in the ring file since the run was created.
    pub(super) fn phase(&self, rollout: &str, ring: &str) -> Option<Phase> {
        self.rollouts
            .iter()
            .find(|o| o.name == rollout)?
            .phases
            .iter()
            .find(|p| p.ring == ring)
            .map(|p| p.phase)
    }

    /// `ring` is free for rollout `name` (release order `order`): the ring before it in the
    /// ring file (`previous`, none for the first) passed, no revert in progress holds the ring,
    /// and every earlier unfinished rollout passed it (never two rollouts on one ring; releases
    /// run in file order).
    pub(super) fn is_free(
        &self,
        name: &str,
        order: u32,
        previous: Option<&str>,
        ring: &str,
    ) -> bool {
        if let Some(previous) = previous
            && self.phase(name, previous) != Some(Phase::Passed)
        {
            return false;
        }
        self.rollouts.iter().filter(|o| o.name != name).all(|o| {
            if o.revert {
                // A revert in progress holds every ring it has started and not finished.
                return !o
                    .phases
                    .iter()
                    .any(|p| p.ring == ring && p.phase.occupies_ring());
            }
            o.order >= order
                || o.phases
                    .iter()
                    .find(|p| p.ring == ring)
                    .is_none_or(|p| p.phase == Phase::Passed)
        })
    }
}

impl<F: Forge, P: ClusterProbe, C: Clock> Daemon<'_, F, P, C> {
    /// The ring phases of every unfinished rollout, as of the store's current generation.
    pub(super) fn occupancy(&self) -> Result<std::sync::Arc<Occupancy>, DaemonError> {
        if let Some(o) = self.occupancy.borrow().as_ref()
            && o.generation == self.store.generation()
        {
            return Ok(o.clone());
        }
        let fresh = std::sync::Arc::new(Occupancy::read(self.store)?);
        *self.occupancy.borrow_mut() = Some(fresh.clone());
        Ok(fresh)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn occupant(name: &str, order: u32, revert: bool, phases: &[Phase]) -> Occupant {
        let rings = ["sandbox", "canary", "prod"];
        Occupant {
            name: name.to_owned(),
            order,
            revert,
            phases: phases
                .iter()
                .enumerate()
                .map(|(i, p)| state::RingPhase {
                    ring: rings[i].to_owned(),
                    index: i as u32,
                    phase: *p,
                })
                .collect(),
        }
    }

    #[test]
    fn a_ring_is_free_in_release_order_and_never_while_held() {
        use Phase::*;
        let occupancy = Occupancy {
            generation: 0,
            rollouts: vec![
                occupant("a", 0, false, &[Passed, Soaking, Pending]),
                occupant("b", 1, false, &[Passed, Pending, Pending]),
                occupant("c", 2, false, &[Pending, Pending, Pending]),
            ],
        };
        // `a` may move on only once its own previous ring passed.
        assert!(!occupancy.is_free("a", 0, Some("canary"), "prod"));
        // `b`'s sandbox passed but `a` still soaks in canary.
        assert!(!occupancy.is_free("b", 1, Some("sandbox"), "canary"));
        // `c` may take sandbox: every earlier rollout passed it.
        assert!(occupancy.is_free("c", 2, None, "sandbox"));
        // Not before an earlier rollout that has not passed it.
        let behind = Occupancy {
            generation: 0,
            rollouts: vec![
                occupant("a", 0, false, &[PrOpen, Pending, Pending]),
                occupant("b", 1, false, &[Pending, Pending, Pending]),
            ],
        };
        assert!(!behind.is_free("b", 1, None, "sandbox"));
        assert!(behind.is_free("a", 0, None, "sandbox"));
        // A revert holds the rings it started, whatever its order.
        let reverting = Occupancy {
            generation: 0,
            rollouts: vec![
                occupant("c", 2, false, &[Pending, Pending, Pending]),
                occupant("a-revert", 3, true, &[Converging, Pending, Pending]),
            ],
        };
        assert!(!reverting.is_free("c", 2, None, "sandbox"));
        assert_eq!(reverting.phase("a-revert", "sandbox"), Some(Converging));
        assert_eq!(reverting.order("c"), Some(2));
        // A ring removed from the ring file mid-rollout (canary): prod follows sandbox now, and
        // the rollout that passed sandbox and canary may take prod.
        let edited = Occupancy {
            generation: 0,
            rollouts: vec![occupant("a", 0, false, &[Passed, Passed, Pending])],
        };
        assert_eq!(edited.phase("a", "prod"), Some(Pending));
        assert!(edited.is_free("a", 0, Some("sandbox"), "prod"));
        assert_eq!(reverting.order("gone"), None);
    }
}
