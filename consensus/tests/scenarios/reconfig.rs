//! Validator set changes ([`dualchain_consensus::membership`]) under load: a validator
//! joins and catches up by state transfer, another is removed, and consensus carries on,
//! also with a Byzantine primary, a crash and a partition during the change, and over
//! swarm-randomised faults. The simulator checks safety, liveness at every correct
//! validator of the final set (in the final epoch) and identical ledgers.

use dualchain_consensus::sim::{run_swarm_reconfig, Behaviour, Faults, Scripted, Sim, SimConfig, SimReport};
use dualchain_consensus::ReplicaId;

fn with_changes(seed: u64, faults: Faults, changes: Vec<(u64, Vec<ReplicaId>)>) -> SimReport {
    let mut cfg = SimConfig::new(4, seed);
    cfg.joiners = 1;
    cfg.changes = changes;
    cfg.faults = faults;
    cfg.requests_per_client = 60;
    cfg.fault_phase_ms = 5_000;
    Sim::new(cfg).run().unwrap_or_else(|e| panic!("{e}"))
}

/// Every replica that executed a change scheduled it for the same checkpoint.
fn scheduled_alike(r: &SimReport, epochs: u64) {
    for epoch in 1..=epochs {
        let at: std::collections::BTreeSet<u64> =
            r.reconfigurations.iter().filter(|(_, e, _)| *e == epoch).map(|(_, _, at)| *at).collect();
        assert_eq!(at.len(), 1, "epoch {epoch} scheduled at {at:?}: {:?}", r.reconfigurations);
    }
}

#[test]
fn a_validator_joins_and_another_leaves_under_load() {
    let r = with_changes(31, Faults::none(), vec![(800, vec![0, 1, 2, 3, 4]), (2_000, vec![1, 2, 3, 4])]);
    scheduled_alike(&r, 2);
    for i in 1..=4 {
        assert_eq!(r.epochs[i], Some((2, true)), "replica {i}: {:?}", r.epochs);
    }
    // The removed validator took part up to the change and votes no more.
    assert_eq!(r.epochs[0], Some((2, false)), "{:?}", r.epochs);
    // The joiner caught up by state transfer.
    assert!(r.state_entries > 0, "{r:?}");
}

#[test]
fn reconfiguration_survives_a_byzantine_primary_a_crash_and_a_partition() {
    let script = vec![
        (1_000, Scripted::Crash(2)),
        (1_800, Scripted::Restart(2)),
        (2_200, Scripted::Partition(vec![1])),
        (3_000, Scripted::Heal),
        // The joiner restarts after joining: its validator sets come back from its log.
        (3_400, Scripted::Crash(4)),
        (3_900, Scripted::Restart(4)),
    ];
    let faults = Faults { byzantine: vec![(0, Behaviour::Equivocate)], script, ..Faults::none() };
    let r = with_changes(32, faults, vec![(600, vec![0, 1, 2, 3, 4]), (2_500, vec![1, 2, 3, 4])]);
    scheduled_alike(&r, 2);
    for i in 1..=4 {
        assert_eq!(r.epochs[i], Some((2, true)), "replica {i}: {:?}", r.epochs);
    }
    assert!(r.view_changes > 0, "the equivocating primary is replaced: {r:?}");
    assert!(r.restarts >= 2);
}

#[test]
fn a_set_without_the_faulty_primary_takes_over_from_it() {
    // The silent primary of view 0 is removed by the others; the joiner takes its place.
    let faults = Faults { byzantine: vec![(0, Behaviour::Silent)], ..Faults::none() };
    let r = with_changes(33, faults, vec![(500, vec![0, 1, 2, 3, 4]), (1_500, vec![1, 2, 3, 4])]);
    scheduled_alike(&r, 2);
    for i in 1..=4 {
        assert_eq!(r.epochs[i], Some((2, true)), "replica {i}: {:?}", r.epochs);
    }
}

#[test]
fn swarm_reconfiguration_24_seeds() {
    let count = std::env::var("SIM_SEEDS_RECONFIG").ok().and_then(|s| s.parse().ok()).unwrap_or(24u64);
    let failures: Vec<String> = (0..count).filter_map(|seed| run_swarm_reconfig(30_000 + seed).err()).collect();
    assert!(failures.is_empty(), "{} of {count} seeds failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn swarm_reconfiguration_many_seeds_slow() {
    let failures: Vec<String> = (0..400).filter_map(|seed| run_swarm_reconfig(3_000_000 + seed).err()).collect();
    assert!(failures.is_empty(), "{} seeds failed:\n{}", failures.len(), failures.join("\n"));
}
