//! State roots: a replica whose application state is damaged finds out at the next
//! checkpoint, names it, and nobody else is disturbed; correct replicas agree on roots
//! also with a Byzantine replica reporting random ones.

use dualchain_consensus::sim::{Behaviour, Scripted};

use super::{byzantine, run, scripted};

#[test]
fn a_damaged_replica_finds_its_divergence_at_the_next_checkpoint() {
    // Replica 2's application state is damaged a little into the run.
    let r = run(4, 31, scripted(vec![(1500, Scripted::CorruptState(2))]));
    let &[(2, damaged_at)] = r.corrupted.as_slice() else { panic!("one damage at replica 2: {r:?}") };
    let interval = 8; // SimConfig's checkpoint interval
    let next_checkpoint = damaged_at.div_ceil(interval) * interval;
    assert_eq!(r.state_divergences, vec![(2, next_checkpoint)], "only replica 2, at the first checkpoint after");
    assert!(r.state_agreed >= interval, "the others went on agreeing: {r:?}");
}

#[test]
fn correct_replicas_agree_on_roots_whatever_a_byzantine_one_reports() {
    let r = run(4, 32, byzantine(&[(3, Behaviour::Conflicting)]));
    assert!(r.state_divergences.is_empty(), "{r:?}");
    assert!(r.state_agreed >= 8, "{r:?}");
}
