//! Four replicas, one faulty (f = 1).

use dualchain_consensus::sim::{Behaviour, Faults, Scripted};

use crate::{byzantine, run, scripted};

#[test]
fn leader_crash_is_followed_by_a_view_change() {
    let mut faults = scripted(vec![(300, Scripted::Crash(0))]);
    faults.keep_down = vec![0];
    let r = run(4, 11, faults);
    assert!(r.view_changes > 0);
}

#[test]
fn equivocating_leader_cannot_split_the_replicas() {
    let r = run(4, 12, byzantine(&[(0, Behaviour::Equivocate)]));
    assert!(r.view_changes > 0, "{r:?}");
}

#[test]
fn silent_leader_is_replaced() {
    let r = run(4, 13, byzantine(&[(0, Behaviour::Silent)]));
    assert!(r.view_changes > 0);
}

#[test]
fn conflicting_voter_changes_nothing() {
    run(4, 14, byzantine(&[(2, Behaviour::Conflicting)]));
}

#[test]
fn restart_and_state_transfer_beside_a_byzantine_replica() {
    let mut faults = byzantine(&[(1, Behaviour::Conflicting)]);
    faults.script = vec![(500, Scripted::Crash(3)), (2500, Scripted::Restart(3))];
    let r = run(4, 15, faults);
    assert_eq!(r.restarts, 1);
}

#[test]
fn partition_with_a_silent_replica() {
    let mut faults = byzantine(&[(3, Behaviour::Silent)]);
    faults.script = vec![(400, Scripted::Partition(vec![0])), (2000, Scripted::Heal)];
    let _ = Faults::none();
    run(4, 16, faults);
}
