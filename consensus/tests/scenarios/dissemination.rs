//! Dissemination apart from ordering: parts withheld from some replicas, lost on the way,
//! or named by a primary although nobody holds them.

use dualchain_consensus::sim::{Behaviour, Faults, Sim, SimConfig, SimReport};
use dualchain_consensus::ReplicaId;

use crate::{byzantine, run};

fn run_with(n: usize, seed: u64, homes: Option<Vec<ReplicaId>>, faults: Faults) -> SimReport {
    let mut cfg = SimConfig::new(n, seed);
    cfg.homes = homes;
    cfg.faults = faults;
    cfg.requests_per_client = 40;
    Sim::new(cfg).run().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn parts_withheld_from_some_replicas_are_fetched_from_the_other_holders() {
    // Every client's home is replica 3, which sends each part only to a quorum less its
    // own vote and answers no fetch: the replica left out fetches every part of every
    // proposal from the holders that voted, skipping the withholder.
    let r = run_with(4, 41, Some(vec![3]), byzantine(&[(3, Behaviour::Withhold)]));
    assert!(r.parts_fetched > 0, "{r:?}");
}

#[test]
fn two_withholders_of_seven() {
    let faults = byzantine(&[(5, Behaviour::Withhold), (6, Behaviour::Withhold)]);
    let r = run_with(7, 42, Some(vec![5, 6]), faults);
    assert!(r.parts_fetched > 0, "{r:?}");
}

#[test]
fn lost_parts_are_fetched_when_a_proposal_names_them() {
    let faults = Faults { loss: 0.1, ..Faults::none() };
    let r = run_with(4, 43, None, faults);
    assert!(r.parts_fetched > 0, "{r:?}");
}

#[test]
fn a_primary_that_names_a_part_nobody_holds_is_reported_and_replaced() {
    let r = run(4, 44, byzantine(&[(0, Behaviour::Phantom)]));
    assert!(r.view_changes > 0, "{r:?}");
    assert!(
        r.peer_faults.iter().any(|(_, peer, why)| *peer == 0 && why.contains("holding vote")),
        "{:?}",
        r.peer_faults
    );
}

#[test]
fn the_design_before_dissemination_still_holds() {
    // Config::dissemination off: backups forward to the primary, which carries batches
    // whole (the benchmark's baseline). A few swarm seeds at n = 4 and 7.
    for (n, from) in [(4, 50_000), (7, 51_000)] {
        for seed in from..from + 12 {
            let mut cfg = dualchain_consensus::sim::swarm_config(n, seed);
            cfg.dissemination = false;
            let r = Sim::new(cfg).run().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(r.parts_fetched, 0);
        }
    }
}
