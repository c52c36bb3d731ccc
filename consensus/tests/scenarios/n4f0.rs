//! Four replicas, none faulty: the network and crashes are the only trouble.

use dualchain_consensus::sim::{Faults, Scripted};

use crate::{run, scripted};

#[test]
fn normal_case_commits_without_view_changes() {
    let r = run(4, 1, Faults::none());
    assert_eq!(r.view_changes, 0);
    assert_eq!(r.state_entries, 0);
}

#[test]
fn lossy_reordering_network_still_commits() {
    let r = run(4, 2, Faults { loss: 0.1, duplicate: 0.05, delay_ms_max: 60, ..Faults::none() });
    assert!(r.messages_dropped_by_network > 0);
}

#[test]
fn partition_and_heal() {
    // {0, 1} | {2, 3}: no quorum on either side until the partition heals.
    let r = run(4, 3, scripted(vec![(500, Scripted::Partition(vec![0, 1])), (2500, Scripted::Heal)]));
    assert!(r.messages_dropped_by_network > 0);
}

#[test]
fn replica_restarts_from_its_log() {
    let r = run(4, 4, scripted(vec![(800, Scripted::Crash(2)), (2200, Scripted::Restart(2))]));
    assert_eq!(r.restarts, 1);
}

#[test]
fn lagging_replica_catches_up_by_state_transfer() {
    // Replica 3 is cut off for most of the run while the others commit well past its
    // watermarks; it catches up from committed entries with their certificates.
    let r = run(4, 5, scripted(vec![(100, Scripted::Partition(vec![3])), (3600, Scripted::Heal)]));
    assert!(r.state_entries > 0, "{r:?}");
}
