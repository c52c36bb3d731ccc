//! A member's node submits to its own validator only: the four steps that locked a member
//! out of a real 4-process cluster (a crashed primary nobody else suspected, a replica left
//! alone in a view change, and the same after a restart) replayed in the simulator with
//! every client at one home replica.

use dualchain_consensus::sim::{Faults, Scripted, Sim, SimConfig, SimReport};
use dualchain_consensus::ReplicaId;

fn run_at_home(seed: u64, home: ReplicaId, script: Vec<(u64, Scripted)>, keep_down: Vec<ReplicaId>) -> SimReport {
    let mut cfg = SimConfig::new(4, seed);
    cfg.homes = Some(vec![home]);
    cfg.requests_per_client = 20;
    cfg.faults = Faults { script, keep_down, ..Faults::none() };
    Sim::new(cfg).run().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_request_at_one_backup_replaces_a_crashed_primary() {
    // Replica 0 (the primary of view 0) is down from the start; only replica 1 hears the
    // clients. It relays their requests, so 2 and 3 suspect the primary too.
    let r = run_at_home(21, 1, vec![(0, Scripted::Crash(0))], vec![0]);
    assert!(r.view_changes >= 3, "{r:?}");
    for i in 1..4 {
        let (view, changing, following) = r.final_state[i].unwrap();
        assert!(view >= 1 && !changing && !following, "replica {i}: {:?}", r.final_state);
    }
}

#[test]
fn the_old_primary_restarts_into_the_new_view() {
    let script = vec![(0, Scripted::Crash(0)), (2500, Scripted::Restart(0))];
    let r = run_at_home(22, 1, script, vec![]);
    assert_eq!(r.restarts, 1);
    let views: Vec<_> = r.final_state.iter().map(|s| s.unwrap()).collect();
    assert!(views.iter().all(|(v, changing, following)| *v == views[0].0 && !changing && !following), "{views:?}");
    assert!(views[0].0 >= 1);
}

#[test]
fn a_replica_alone_in_a_view_change_goes_back_to_the_quorums_view() {
    // Replica 1 is cut off while its clients submit: it suspects the primary alone. After
    // the heal the others are still in view 0 with a healthy primary.
    let script = vec![(100, Scripted::Partition(vec![1])), (2500, Scripted::Heal)];
    let r = run_at_home(23, 1, script, vec![]);
    assert_eq!(r.final_state[1], Some((0, false, true)), "replica 1 follows view 0: {:?}", r.final_state);
    for i in [0, 2, 3] {
        assert_eq!(r.final_state[i], Some((0, false, false)), "replica {i}: {:?}", r.final_state);
    }
}

#[test]
fn a_replica_cut_off_then_restarted_comes_back_voting() {
    // Cut off, it hears nobody, so it starts no view change of its own (a lone one would
    // leave it following); crashed and restarted after the heal, it votes in view 0 again.
    let script = vec![
        (100, Scripted::Partition(vec![1])),
        (2000, Scripted::Crash(1)),
        (2500, Scripted::Heal),
        (2800, Scripted::Restart(1)),
    ];
    let r = run_at_home(24, 1, script, vec![]);
    assert_eq!(r.restarts, 1);
    assert!(r.final_state.iter().all(|s| *s == Some((0, false, false))), "{:?}", r.final_state);
}

#[test]
fn a_follower_votes_again_once_the_consortium_reaches_the_view_it_left() {
    // Replica 1 is alone in a view change to 1, goes back and follows view 0; then the
    // primary crashes and the consortium changes to view 1, where replica 1 is primary.
    let script = vec![(100, Scripted::Partition(vec![1])), (1500, Scripted::Heal), (3000, Scripted::Crash(0))];
    let r = run_at_home(25, 1, script, vec![0]);
    for i in 1..4 {
        let (view, changing, following) = r.final_state[i].unwrap();
        assert!(view >= 1 && !changing && !following, "replica {i}: {:?}", r.final_state);
    }
}
