//! Seven replicas, two faulty (f = 2).

use dualchain_consensus::sim::{Behaviour, Scripted};

use crate::{byzantine, run, scripted};

#[test]
fn normal_case() {
    let r = run(7, 21, byzantine(&[]));
    assert_eq!(r.view_changes, 0);
}

#[test]
fn two_leaders_crash_in_a_row() {
    let mut faults = scripted(vec![(300, Scripted::Crash(0)), (300, Scripted::Crash(1))]);
    faults.keep_down = vec![0, 1];
    let r = run(7, 22, faults);
    assert!(r.view_changes > 0);
}

#[test]
fn equivocating_leader_and_conflicting_voter() {
    let r = run(7, 23, byzantine(&[(0, Behaviour::Equivocate), (4, Behaviour::Conflicting)]));
    assert!(r.view_changes > 0);
}

#[test]
fn partition_and_heal() {
    let r = run(7, 24, scripted(vec![(500, Scripted::Partition(vec![0, 1, 2])), (2500, Scripted::Heal)]));
    assert!(r.messages_dropped_by_network > 0);
}

#[test]
fn replica_restarts_from_its_log_beside_two_silent() {
    let mut faults = byzantine(&[(5, Behaviour::Silent), (6, Behaviour::Silent)]);
    faults.script = vec![(700, Scripted::Crash(2)), (1500, Scripted::Restart(2))];
    let r = run(7, 25, faults);
    assert_eq!(r.restarts, 1);
}

#[test]
fn lagging_replica_catches_up_by_state_transfer() {
    let mut faults = byzantine(&[(6, Behaviour::Conflicting)]);
    faults.script = vec![(100, Scripted::Partition(vec![3])), (3600, Scripted::Heal)];
    let r = run(7, 26, faults);
    assert!(r.state_entries > 0, "{r:?}");
}
