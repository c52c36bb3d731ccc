//! Unit tests of the core: the negative space (forged, replayed, malformed, conflicting,
//! unknown) and recovery, on a synchronous in-memory network.

use std::collections::VecDeque;
use std::sync::Arc;

use dualchain_crypto::sign::SigningKeypair;
use rand::SeedableRng;

use super::*;
use crate::message::{
    verify_messages, Available, BatchReply, CertError, CheckpointVote, Disseminate, Header, Holding, StateReply,
    StateVote,
};

struct Net {
    replicas: Vec<Replica>,
    keys: Vec<SigningKeypair>,
    queue: VecDeque<(ReplicaId, ReplicaId, Message)>,
    delivered: Vec<Vec<Delivered>>,
    persisted: Vec<Vec<LogWrite>>,
    now: u64,
}

fn config(id: ReplicaId) -> Config {
    let mut c = Config::new(4, id);
    c.checkpoint_interval = 4;
    c.watermark_span = 16;
    c.window_len = 4;
    c.batch_len_max = 2;
    c.batch_delay_ms = 0;
    c
}

impl Net {
    fn new() -> Self {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let keys: Vec<_> = (0..4).map(|_| SigningKeypair::generate(&mut rng)).collect();
        let publics: Vec<_> = keys.iter().map(|k| k.public()).collect();
        let replicas =
            (0..4).map(|i| Replica::new(config(i as ReplicaId), keys[i].clone(), publics.clone()).unwrap()).collect();
        Self { replicas, keys, queue: VecDeque::new(), delivered: vec![vec![]; 4], persisted: vec![vec![]; 4], now: 0 }
    }

    fn absorb(&mut self, from: ReplicaId, out: Output) {
        self.persisted[from as usize].push(out.persist);
        self.delivered[from as usize].extend(out.deliver);
        for (t, m) in out.send {
            match t {
                Target::All => {
                    for to in 0..4 {
                        if to != from {
                            self.queue.push_back((from, to, (*m).clone()));
                        }
                    }
                }
                Target::One(to) => self.queue.push_back((from, to, (*m).clone())),
            }
        }
    }

    fn run(&mut self) {
        self.run_without(None);
    }

    /// Delivers what is queued; what goes to or comes from `cut` is lost.
    fn run_without(&mut self, cut: Option<ReplicaId>) {
        while let Some((from, to, m)) = self.queue.pop_front() {
            if cut.is_some_and(|c| c == from || c == to) {
                continue;
            }
            assert!(verify_messages(std::slice::from_ref(&m), self.replicas[0].public_keys())[0]);
            let out = self.replicas[to as usize].receive(self.now, m);
            self.absorb(to, out);
        }
    }

    fn submit(&mut self, at: ReplicaId, client: u64, id: u64) {
        let out = self.replicas[at as usize].submit(self.now, Request { client, id, payload: vec![1; 16] }).unwrap();
        self.absorb(at, out);
        self.run();
    }

    fn dropped(&self, r: usize, reason: &str) -> u64 {
        self.replicas[r].stats().dropped.get(reason).copied().unwrap_or(0)
    }
}

fn vote(key: &SigningKeypair, from: ReplicaId, phase: Phase, seq: u64, digest: Digest) -> Signed<Vote> {
    Signed::sign(key, from, Vote { phase, view: 0, seq, digest })
}

#[test]
fn requests_commit_everywhere_in_order() {
    let mut net = Net::new();
    for i in 0..10 {
        net.submit((i % 4) as ReplicaId, 7, i);
    }
    for r in 0..4 {
        let seqs: Vec<u64> = net.delivered[r].iter().map(|d| d.entry.seq).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
        let requests: usize = net.delivered[r].iter().map(|d| d.fresh.len()).sum();
        assert_eq!(requests, 10);
        assert_eq!(net.replicas[r].history(), net.replicas[0].history());
    }
    // Checkpoints every 4 became stable and truncated the log.
    assert!(net.replicas[1].stable_seq() >= 4);
}

#[test]
fn duplicate_requests_are_refused_and_executed_once() {
    let mut net = Net::new();
    net.submit(0, 1, 1);
    let again = net.replicas[0].submit(0, Request { client: 1, id: 1, payload: vec![1; 16] });
    assert_eq!(again.unwrap_err(), Rejected::Duplicate);
    let big = net.replicas[0].submit(0, Request { client: 1, id: 2, payload: vec![0; REQUEST_PAYLOAD_LEN_MAX + 1] });
    assert_eq!(big.unwrap_err(), Rejected::TooLarge);
}

#[test]
fn replayed_votes_are_dropped_and_counted() {
    let mut net = Net::new();
    net.submit(0, 1, 1);
    // Replay replica 1's commit for sequence 1 to replica 2 after it executed: harmless.
    let digest = net.delivered[2][0].entry.batch.digest();
    let v = vote(&net.keys[1], 1, Phase::Commit, 1, digest);
    let out = net.replicas[2].receive(0, Message::Vote(v.clone()));
    assert!(out.deliver.is_empty() && out.send.is_empty());
    // A vote for a sequence number not yet executed, sent twice, is counted once.
    let v2 = vote(&net.keys[1], 1, Phase::Prepare, 2, [9; 32]);
    net.replicas[2].receive(0, Message::Vote(v2.clone()));
    net.replicas[2].receive(0, Message::Vote(v2));
    assert_eq!(net.dropped(2, "duplicate"), 1);
}

#[test]
fn conflicting_and_misaddressed_pre_prepares_are_dropped() {
    let mut net = Net::new();
    let batch = Arc::new(Batch::new(vec![Request { client: 5, id: 1, payload: vec![2] }]));
    let other = Arc::new(Batch::new(vec![Request { client: 5, id: 2, payload: vec![3] }]));
    let h = |b: &Batch| Header { view: 0, seq: 1, digest: b.digest() };
    let pp = Signed::sign(&net.keys[0], 0, h(&batch));
    let out = net.replicas[1].receive(0, Message::PrePrepare(pp, batch.clone()));
    assert_eq!(out.send.len(), 1, "the backup prepares");
    // The primary equivocates: a second batch for the same sequence number and view.
    let pp2 = Signed::sign(&net.keys[0], 0, h(&other));
    let out = net.replicas[1].receive(0, Message::PrePrepare(pp2, other.clone()));
    assert!(out.send.is_empty());
    assert_eq!(net.dropped(1, "conflicting pre-prepare"), 1);
    // A backup cannot propose.
    let pp3 = Signed::sign(&net.keys[2], 2, h(&other));
    net.replicas[1].receive(0, Message::PrePrepare(pp3, other.clone()));
    assert_eq!(net.dropped(1, "pre-prepare not from the primary"), 1);
    // A batch that is not the one signed for.
    let pp4 = Signed::sign(&net.keys[0], 0, Header { view: 0, seq: 2, digest: batch.digest() });
    net.replicas[1].receive(0, Message::PrePrepare(pp4, other));
    assert_eq!(net.dropped(1, "batch does not match its digest"), 1);
    // Outside the watermarks.
    let far = Signed::sign(&net.keys[0], 0, Header { view: 0, seq: 1000, digest: batch.digest() });
    net.replicas[1].receive(0, Message::PrePrepare(far, batch));
    assert_eq!(net.dropped(1, "pre-prepare outside the watermarks"), 1);
}

#[test]
fn unknown_senders_and_forged_signatures_never_reach_the_core() {
    let net = Net::new();
    let keys = net.replicas[0].public_keys().to_vec();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(99);
    let stranger = SigningKeypair::generate(&mut rng);
    // Signed by someone who is not replica 1.
    let forged = Message::Vote(vote(&stranger, 1, Phase::Prepare, 1, [1; 32]));
    // From an id outside the consortium.
    let unknown = Message::Vote(vote(&stranger, 9, Phase::Prepare, 1, [1; 32]));
    // Tampered after signing.
    let mut tampered = vote(&net.keys[1], 1, Phase::Prepare, 1, [1; 32]);
    tampered.body.seq = 2;
    let good = Message::Vote(vote(&net.keys[1], 1, Phase::Prepare, 1, [1; 32]));
    let verdicts = verify_messages(&[forged, unknown, Message::Vote(tampered), good], &keys);
    assert_eq!(verdicts, vec![false, false, false, true]);
}

#[test]
fn malformed_frames_are_refused() {
    let net = Net::new();
    let m = Message::Vote(vote(&net.keys[1], 1, Phase::Commit, 3, [4; 32]));
    let bytes = m.to_bytes();
    assert_eq!(Message::from_bytes(&bytes).unwrap(), m);
    assert!(Message::from_bytes(&[]).is_err());
    assert!(Message::from_bytes(&[200]).is_err(), "unknown kind");
    assert!(Message::from_bytes(&bytes[..bytes.len() - 1]).is_err(), "truncated");
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(Message::from_bytes(&trailing).is_err(), "trailing bytes");
    let mut bad_phase = bytes.clone();
    bad_phase[2] = 7;
    assert!(Message::from_bytes(&bad_phase).is_err(), "unknown phase");
    // A list count far above its bound is refused before anything is allocated.
    let mut huge = vec![4u8, 1];
    huge.extend_from_slice(&[0xff; 64]);
    assert!(Message::from_bytes(&huge).is_err());
    // Every kind round-trips.
    let batch = Arc::new(Batch::new(vec![Request { client: 1, id: 2, payload: vec![3; 5] }]));
    let k = &net.keys[0];
    let kinds = vec![
        Message::Forward(Signed::sign(k, 0, Forward { requests: batch.requests().to_vec() })),
        Message::PrePrepare(Signed::sign(k, 0, Header { view: 0, seq: 1, digest: batch.digest() }), batch.clone()),
        Message::Checkpoint(Signed::sign(k, 0, CheckpointVote { seq: 4, digest: [1; 32] })),
        Message::FetchBatch(Signed::sign(k, 0, FetchBatch { digest: [2; 32] })),
        Message::BatchReply(Signed::sign(k, 0, BatchReply { batch: batch.clone() })),
        Message::FetchState(Signed::sign(k, 0, crate::message::FetchState { from_seq: 5 })),
        Message::StateReply(Signed::sign(k, 0, StateReply { entries: vec![], checkpoint: Default::default() })),
        Message::StateRoot(Signed::sign(k, 0, crate::message::StateVote { seq: 4, root: [3; 32] })),
    ];
    for m in kinds {
        let b = m.to_bytes();
        let back = Message::from_bytes(&b).unwrap();
        assert_eq!(back, m);
        assert!(verify_messages(&[back], net.replicas[0].public_keys())[0]);
    }
}

#[test]
fn state_transfer_refuses_entries_without_a_valid_certificate() {
    let mut net = Net::new();
    for i in 0..4 {
        net.submit(0, 1, i);
    }
    let entry = net.delivered[1][0].entry.clone();
    let mut fresh = Replica::new(config(3), net.keys[3].clone(), net.replicas[0].public_keys().to_vec()).unwrap();
    // Too few commits.
    let mut weak = entry.clone();
    weak.certificate.truncate(2);
    // A certificate for another batch.
    let mut swapped = entry.clone();
    swapped.batch = Arc::new(Batch::new(vec![Request { client: 66, id: 6, payload: vec![6] }]));
    // A duplicated signer.
    let mut repeated = entry.clone();
    repeated.certificate[1] = repeated.certificate[0].clone();
    for bad in [weak, swapped, repeated] {
        let reply = net.replicas[1].state_reply(vec![bad]);
        let out = fresh.receive(0, reply);
        assert!(out.deliver.is_empty());
        assert_eq!(fresh.last_executed(), 0);
    }
    assert_eq!(fresh.stats().dropped["bad commit certificate"], 3);
    // The genuine entries apply.
    let good: Vec<_> = net.delivered[1].iter().map(|d| d.entry.clone()).collect();
    let out = fresh.receive(0, net.replicas[1].state_reply(good.clone()));
    assert_eq!(out.deliver.len(), good.len());
    assert_eq!(fresh.history(), net.replicas[1].history());
}

#[test]
fn a_forged_new_view_is_refused() {
    let mut net = Net::new();
    net.submit(0, 1, 1);
    // Replicas 1, 2, 3 suspect replica 0 and move to view 1.
    let mut vcs = Vec::new();
    for r in 1..4usize {
        net.replicas[r].start_view_change(1);
        vcs.push(net.replicas[r].own_view_change.clone().unwrap());
    }
    vcs.truncate(3);
    let primary_key = &net.keys[1];
    // O claims a batch at sequence 2 that nobody prepared.
    let bogus = Signed::sign(primary_key, 1, Header { view: 1, seq: 2, digest: [7; 32] });
    let nv = Signed::sign(primary_key, 1, NewView { view: 1, view_changes: vcs.clone(), pre_prepares: vec![bogus] });
    net.replicas[2].receive(0, Message::NewView(nv));
    assert!(net.replicas[2].in_view_change(), "the forged new view did not start view 1");
    assert_eq!(net.dropped(2, "invalid new view"), 1);
    // Too few view changes.
    let nv = Signed::sign(primary_key, 1, NewView { view: 1, view_changes: vcs[..2].to_vec(), pre_prepares: vec![] });
    net.replicas[3].receive(0, Message::NewView(nv));
    assert_eq!(net.dropped(3, "invalid new view"), 1);
    // Not from the new view's primary.
    let nv = Signed::sign(&net.keys[2], 2, NewView { view: 1, view_changes: vcs, pre_prepares: vec![] });
    net.replicas[3].receive(0, Message::NewView(nv));
    assert_eq!(net.dropped(3, "new view not from the view's primary"), 1);
    assert!(net.replicas[3].in_view_change());
    // The genuine new view from replica 1 is accepted.
    let vcs3: Vec<_> = (1..4usize).map(|r| net.replicas[r].own_view_change.clone().unwrap()).collect();
    for vc in vcs3 {
        if vc.from != 1 {
            let out = net.replicas[1].receive(0, Message::ViewChange(vc));
            net.absorb(1, out);
        }
    }
    net.run();
    assert!(!net.replicas[3].in_view_change());
    assert_eq!(net.replicas[3].view(), 1);
}

#[test]
fn a_restarted_backup_keeps_the_pre_prepare_it_accepted() {
    let mut net = Net::new();
    let batch = Arc::new(Batch::new(vec![Request { client: 5, id: 1, payload: vec![2] }]));
    let pp = Signed::sign(&net.keys[0], 0, Header { view: 0, seq: 1, digest: batch.digest() });
    let batch_digest = batch.digest();
    let out = net.replicas[1].receive(0, Message::PrePrepare(pp, batch));
    assert_eq!(out.persist.records.len(), 2, "the pre-prepare and the replica's prepare are persisted before sending");
    assert_eq!(out.persist.batches.len(), 1, "the batch is stored once, beside the records");
    let store =
        dualchain_storage::consensus::ConsensusStore::open(Arc::new(dualchain_storage::memory::MemoryEngine::new()))
            .unwrap();
    store.write(&out.persist).unwrap();
    let rec = Recovered::read(&store, 16).unwrap();
    assert_eq!(rec.records.len(), 2);
    assert_eq!(rec.stored_batches, vec![((1, batch_digest), false)]);
    let publics = net.replicas[0].public_keys().to_vec();
    let (mut restarted, _) = Replica::recover(config(1), net.keys[1].clone(), publics, rec, 10).unwrap();
    let other = Arc::new(Batch::new(vec![Request { client: 5, id: 2, payload: vec![3] }]));
    let pp2 = Signed::sign(&net.keys[0], 0, Header { view: 0, seq: 1, digest: other.digest() });
    let out = restarted.receive(10, Message::PrePrepare(pp2, other));
    assert!(out.send.is_empty(), "no prepare for a second batch at the same sequence number");
    assert_eq!(restarted.stats().dropped["conflicting pre-prepare"], 1);
    // Corrupt stored data is an error, not a panic.
    let bad = Recovered { stable: Some(vec![1, 2, 3]), ..Recovered::default() };
    let publics = net.replicas[0].public_keys().to_vec();
    assert!(Replica::recover(config(1), net.keys[1].clone(), publics, bad, 0).is_err());
}

#[test]
fn invalid_configurations_are_refused() {
    let keys: Vec<_> = {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        (0..4).map(|_| SigningKeypair::generate(&mut rng)).collect()
    };
    let publics: Vec<_> = keys.iter().map(|k| k.public()).collect();
    let mut c = config(0);
    c.n = 3;
    assert!(c.validate().is_err());
    let mut c = config(0);
    c.watermark_span = 6;
    assert!(c.validate().is_err());
    let mut c = config(0);
    c.window_len = 0;
    assert!(c.validate().is_err());
    // The key must be the listed one.
    assert!(Replica::new(config(0), keys[1].clone(), publics.clone()).is_err());
    assert!(Replica::new(config(0), keys[0].clone(), publics[..3].to_vec()).is_err());
}

#[test]
fn batch_times_are_checked_and_the_ledger_clock_is_agreed() {
    let mut net = Net::new();
    for r in &mut net.replicas {
        r.observe_wall_clock(1_000_000);
    }
    net.submit(0, 1, 1);
    for r in 0..4 {
        assert_eq!(net.delivered[r][0].time_ms, 1_000_000);
        assert_eq!(net.replicas[r].ledger_time_ms(), 1_000_000);
    }
    // A primary stamping a time an hour ahead of the backups' clocks is refused.
    let far = Arc::new(Batch::with_time(1_000_000 + 3_600_000, vec![Request { client: 9, id: 9, payload: vec![1] }]));
    let pp = Signed::sign(&net.keys[0], 0, Header { view: 0, seq: 2, digest: far.digest() });
    let out = net.replicas[1].receive(0, Message::PrePrepare(pp, far));
    assert!(out.send.is_empty());
    assert_eq!(net.dropped(1, "batch time too far from this replica's clock"), 1);
    // Clocks that step back (within the skew bound) never move the ledger time back.
    for r in &mut net.replicas {
        r.observe_wall_clock(999_000);
    }
    net.submit(0, 1, 2);
    for r in 0..4 {
        assert_eq!(net.delivered[r].last().unwrap().time_ms, 1_000_000);
    }
    // The time is part of the batch digest, so a commit certificate binds it.
    let a = Batch::with_time(5, vec![]);
    let b = Batch::with_time(6, vec![]);
    assert_ne!(a.digest(), b.digest());
    assert_eq!(Batch::decode(a.encoded()).unwrap().time_ms(), 5);
}

#[test]
fn a_replica_that_sent_an_invalid_view_change_is_not_checked_again_in_that_view() {
    let mut net = Net::new();
    // Replica 3 claims a batch prepared in view 0 whose pre-prepare is not the primary's.
    let forged = Signed::sign(&net.keys[3], 3, Header { view: 0, seq: 1, digest: [9; 32] });
    let invalid = Signed::sign(
        &net.keys[3],
        3,
        ViewChange {
            view: 1,
            checkpoint: CheckpointProof::default(),
            prepared: vec![crate::message::Prepared { pre_prepare: forged, prepares: vec![] }],
        },
    );
    net.replicas[2].receive(0, Message::ViewChange(invalid.clone()));
    assert_eq!(net.dropped(2, "invalid view change"), 1);
    for _ in 0..5 {
        net.replicas[2].receive(0, Message::ViewChange(invalid.clone()));
    }
    assert_eq!(net.dropped(2, "invalid view change"), 1, "checked once");
    assert_eq!(net.dropped(2, "view change from a replica refused in that view"), 5);
    // Replica 3's own valid view change for view 1 is not heard either; others' are.
    net.replicas[3].start_view_change(1);
    let valid3 = net.replicas[3].own_view_change.clone().unwrap();
    net.replicas[2].receive(0, Message::ViewChange(valid3));
    assert_eq!(net.dropped(2, "view change from a replica refused in that view"), 6);
    net.replicas[1].start_view_change(1);
    let valid1 = net.replicas[1].own_view_change.clone().unwrap();
    net.replicas[2].receive(0, Message::ViewChange(valid1));
    assert_eq!(net.replicas[2].view_changes[&1].len(), 1, "replica 1's view change is kept");
    // In view 2, replica 3 is heard again.
    net.replicas[3].start_view_change(2);
    let next = net.replicas[3].own_view_change.clone().unwrap();
    net.replicas[2].receive(0, Message::ViewChange(next));
    assert!(net.replicas[2].view_changes[&2].contains_key(&3));
}

/// State-root votes: off-interval, far-ahead and repeated votes are dropped; a quorum that
/// disagrees with the own root raises one divergence event, a quorum that agrees moves the
/// agreed checkpoint.
#[test]
fn state_roots_agree_or_diverge_once() {
    let mut net = Net::new();
    let vote = |net: &Net, from: u8, seq: u64, root: u8| {
        Message::StateRoot(Signed::sign(&net.keys[from as usize], from, StateVote { seq, root: [root; 32] }))
    };
    let diverged = |o: &Output| o.events.iter().filter(|e| matches!(e, Event::StateDiverged(_))).count();
    let before = net.replicas[0].stats().dropped.values().sum::<u64>();
    let m = vote(&net, 1, 3, 9);
    let _ = net.replicas[0].receive(1, m);
    assert_eq!(net.replicas[0].stats().dropped.get("state root off the interval"), Some(&1));
    let m = vote(&net, 1, (ROOTS_KEPT + 1) * 4, 9);
    let _ = net.replicas[0].receive(1, m);
    assert_eq!(net.replicas[0].stats().dropped.get("state root far above the agreed one"), Some(&1));
    assert_eq!(net.replicas[0].stats().dropped.values().sum::<u64>(), before + 2);

    // Agreement at 4: own root 7, and two peers report 7.
    let out = net.replicas[0].attest(2, 4, [7; 32]);
    assert!(matches!(&out.send[..], [(Target::All, m)] if matches!(**m, Message::StateRoot(_))));
    for from in [1, 2] {
        let m = vote(&net, from, 4, 7);
        assert_eq!(diverged(&net.replicas[0].receive(3, m)), 0);
    }
    assert_eq!(net.replicas[0].agreed_root_seq(), 4);
    let m = vote(&net, 1, 4, 7);
    let _ = net.replicas[0].receive(3, m);
    assert_eq!(net.replicas[0].agreed_root_seq(), 4, "old news changes nothing");

    // At 8 the peers agree on 5 while this replica's state gives 6: one event, naming 8.
    let _ = net.replicas[0].attest(4, 8, [6; 32]);
    let mut events = 0;
    for from in [1, 2, 3] {
        let m = vote(&net, from, 8, 5);
        let out = net.replicas[0].receive(5, m);
        for e in &out.events {
            if let Event::StateDiverged(d) = e {
                assert_eq!((d.seq, d.own, d.quorum), (8, [6; 32], [5; 32]));
            }
        }
        events += diverged(&out);
    }
    assert_eq!(events, 1);
    assert_eq!(net.replicas[0].state_divergence(), Some(8));
    assert_eq!(net.replicas[0].agreed_root_seq(), 4);
    let m = vote(&net, 3, 8, 5);
    assert_eq!(diverged(&net.replicas[0].receive(6, m)), 0, "a repeated vote raises nothing");
}

/// Admission control: past `admission_len_max` pending requests (or its bytes), a replica
/// refuses its own clients' requests as busy; requests relayed by peers are still taken up
/// to `pending_len_max`.
#[test]
fn admission_control_refuses_own_clients_past_the_bound() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
    let keys: Vec<_> = (0..4).map(|_| SigningKeypair::generate(&mut rng)).collect();
    let publics: Vec<_> = keys.iter().map(|k| k.public()).collect();
    let mut cfg = config(1);
    cfg.admission_len_max = 3;
    let mut backup = Replica::new(cfg, keys[1].clone(), publics.clone()).unwrap();
    let req = |client: u64, id: u64| Request { client, id, payload: vec![7; 16] };
    for id in 0..2 {
        assert!(backup.submit(1, req(1, id)).is_ok());
    }
    // Below the bound a repeat is a duplicate; the key handed back is the request's own.
    assert!(matches!(backup.submit(1, req(1, 0)), Err(Rejected::Duplicate)));
    let (key, _) = backup.submit_keyed(1, req(1, 2)).unwrap();
    assert_eq!(key, req(1, 2).key());
    assert!(matches!(backup.submit(1, req(1, 3)), Err(Rejected::Busy)));
    // Past it, the bound is checked before the key, so a repeat is refused as busy too.
    assert!(matches!(backup.submit(1, req(1, 0)), Err(Rejected::Busy)));
    assert_eq!(backup.stats().refused_busy, 2);
    let part = Arc::new(Batch::new(vec![req(2, 0), req(2, 1)]));
    let relayed = Message::Disseminate(Signed::sign(&keys[2], 2, Disseminate { part }));
    let _ = backup.receive(2, relayed);
    assert_eq!(backup.pending_len(), 5, "relayed requests are not refused by admission control");

    // A byte bound refuses too: one more request than the bytes allow.
    let mut cfg = config(1);
    cfg.admission_bytes_max = 3 * req(1, 0).encoded_len();
    let mut backup = Replica::new(cfg, keys[1].clone(), publics).unwrap();
    for id in 0..3 {
        assert!(backup.submit(1, req(1, id)).is_ok());
    }
    assert!(matches!(backup.submit(1, req(1, 3)), Err(Rejected::Busy)));
}

/// Validly signed messages that no correct replica sends are reported against their signer
/// (the host throttles, then bans it); messages a correct replica may send out of date are
/// dropped without blame.
#[test]
fn messages_that_prove_their_signer_faulty_are_reported_against_it() {
    let mut net = Net::new();
    let blamed = |out: &Output| -> Vec<(ReplicaId, &'static str)> {
        out.events
            .iter()
            .filter_map(|e| match e {
                Event::PeerFault { peer, reason } => Some((*peer, *reason)),
                _ => None,
            })
            .collect()
    };
    let batch = Arc::new(Batch::new(vec![Request { client: 5, id: 1, payload: vec![2] }]));
    // A pre-prepare from a backup (replica 3) in the current view.
    let h = Signed::sign(&net.keys[3], 3, Header { view: 0, seq: 1, digest: batch.digest() });
    let out = net.replicas[2].receive(0, Message::PrePrepare(h, batch.clone()));
    assert_eq!(blamed(&out), vec![(3, "pre-prepare not from the primary")]);
    // The primary's pre-prepare whose batch is not the one it signed.
    let h = Signed::sign(&net.keys[0], 0, Header { view: 0, seq: 1, digest: [7; 32] });
    let out = net.replicas[2].receive(0, Message::PrePrepare(h, batch.clone()));
    assert_eq!(blamed(&out), vec![(0, "batch does not match its digest")]);
    // A prepare from the primary.
    let v = Signed::sign(&net.keys[0], 0, Vote { phase: Phase::Prepare, view: 0, seq: 1, digest: batch.digest() });
    let out = net.replicas[2].receive(0, Message::Vote(v));
    assert_eq!(blamed(&out), vec![(0, "prepare from the primary")]);
    // A late vote of an old view, or one outside the window: no blame.
    let v = Signed::sign(&net.keys[1], 1, Vote { phase: Phase::Prepare, view: 7, seq: 1, digest: batch.digest() });
    assert!(blamed(&net.replicas[2].receive(0, Message::Vote(v))).is_empty());
    let v = Signed::sign(&net.keys[1], 1, Vote { phase: Phase::Commit, view: 0, seq: 1 << 40, digest: [1; 32] });
    assert!(blamed(&net.replicas[2].receive(0, Message::Vote(v))).is_empty());
}

#[test]
fn a_replica_cut_off_during_a_view_change_catches_up_from_the_next_votes() {
    let mut net = Net::new();
    net.submit(1, 7, 1);
    // Replica 3 is cut off while the others move to view 1.
    for r in 0..3 {
        net.replicas[r].start_view_change(1);
        let out = net.replicas[r].take_output();
        net.absorb(r as ReplicaId, out);
    }
    net.run_without(Some(3));
    assert!((0..3).all(|r| net.replicas[r].view() == 1 && net.replicas[r].status == Status::Normal));
    assert_eq!(net.replicas[3].view(), 0);
    // Healed, it has no request waiting, so no timer of its own would move it: the votes of
    // view 1 from f + 1 replicas do, and the new primary's NEW-VIEW lets it in.
    net.submit(1, 7, 2);
    assert_eq!(net.replicas[3].view(), 1);
    assert_eq!(net.replicas[3].status, Status::Normal);
    // It votes again: with replica 2 now silent, 0, 1 and 3 still commit.
    net.queue.clear();
    let out = net.replicas[1].submit(net.now, Request { client: 7, id: 3, payload: vec![1; 16] }).unwrap();
    net.absorb(1, out);
    net.run_without(Some(2));
    // Replica 1 could commit only with replica 3's votes.
    let executed = |r: usize| net.delivered[r].iter().flat_map(|d| d.entry.batch.requests().iter().map(|q| q.id));
    assert!(executed(1).any(|id| id == 3), "request 3 was not committed without replica 2");
}

/// A new primary numbers its view's batches on from the NEW-VIEW's last pre-prepare, not
/// from where it got as primary of an earlier view: what it proposed there prepared nowhere,
/// and the numbers in between would stay a gap that no view fills, with execution waiting
/// on it for good (swarm seed 1000952 went through 290 views executing nothing).
#[test]
fn a_new_primary_numbers_from_the_new_view_not_from_its_earlier_term() {
    let mut net = Net::new();
    // As if replica 1 had got to sequence number 3 as primary of an earlier view (set here
    // directly), where nothing it proposed prepared anywhere.
    net.replicas[1].next_seq = 3;
    for r in 0..4 {
        net.replicas[r].start_view_change(1);
        let out = net.replicas[r].take_output();
        net.absorb(r as ReplicaId, out);
    }
    net.run();
    assert!((0..4).all(|r| net.replicas[r].view() == 1 && net.replicas[r].status == Status::Normal));
    assert_eq!(net.replicas[1].next_seq, 1, "the NEW-VIEW carried no pre-prepare");
    net.submit(2, 7, 1);
    for r in 0..4 {
        let seqs: Vec<u64> = net.delivered[r].iter().map(|d| d.entry.seq).collect();
        assert_eq!(seqs, [1], "replica {r}");
    }
}

#[test]
fn votes_of_a_higher_view_from_f_replicas_move_nobody() {
    let mut net = Net::new();
    // Replica 1 alone (it may be the faulty one) votes in view 5.
    for seq in 1..4 {
        let v = Signed::sign(&net.keys[1], 1, Vote { phase: Phase::Commit, view: 5, seq, digest: [seq as u8; 32] });
        let out = net.replicas[2].receive(0, Message::Vote(v));
        assert!(out.events.is_empty(), "{:?}", out.events);
    }
    assert_eq!(net.replicas[2].view(), 0);
    assert_eq!(net.replicas[2].status, Status::Normal);
    // A second replica in view 5: at least one correct replica is there.
    let v = Signed::sign(&net.keys[3], 3, Vote { phase: Phase::Prepare, view: 5, seq: 1, digest: [1; 32] });
    let out = net.replicas[2].receive(0, Message::Vote(v));
    assert!(out.events.contains(&Event::BehindView { view: 5, from: 0 }));
    assert_eq!(net.replicas[2].view(), 5);
}

/// A vote of replica 1 for nothing in particular: something heard from a peer.
fn chatter(net: &Net, seq: u64) -> Message {
    Message::Vote(Signed::sign(&net.keys[1], 1, Vote { phase: Phase::Commit, view: 0, seq, digest: [3; 32] }))
}

#[test]
fn a_primary_never_suspects_itself() {
    let mut net = Net::new();
    // Requests wait at the primary (0) and at a backup (2); both hear replica 1 talk, and
    // nothing is ever ordered.
    let _ = net.replicas[0].submit(0, Request { client: 7, id: 1, payload: vec![1; 16] }).unwrap();
    let _ = net.replicas[2].submit(0, Request { client: 8, id: 1, payload: vec![1; 16] }).unwrap();
    let later = 10 * config(0).view_change_timeout_ms;
    for now in (0..=later).step_by(100) {
        for r in [0, 2] {
            let m = chatter(&net, 1 + now / 100);
            let _ = net.replicas[r].receive(now, m);
            let _ = net.replicas[r].tick(now);
        }
    }
    assert_eq!((net.replicas[0].view(), net.replicas[0].status.clone()), (0, Status::Normal));
    assert!(net.replicas[2].view() >= 1, "the backup suspects the primary");
    // The primary's next deadline is not a progress timer that is always due.
    assert!(net.replicas[0].next_deadline_ms() > later);
}

#[test]
fn an_isolated_backup_suspects_nobody_and_gives_the_links_and_the_primary_a_timeout_each() {
    let mut net = Net::new();
    let timeout = config(2).view_change_timeout_ms;
    let _ = net.replicas[2].submit(0, Request { client: 8, id: 1, payload: vec![1; 16] }).unwrap();
    // Cut off: nothing heard for ten timeouts, no view change (it could gather no quorum,
    // and a lone one would keep it from voting until the others reach that view).
    for now in (0..=10 * timeout).step_by(100) {
        let _ = net.replicas[2].tick(now);
    }
    assert_eq!((net.replicas[2].view(), net.replicas[2].status.clone()), (0, Status::Normal));
    // Healed at t: the links get a timeout to come back, the primary a timeout after
    // that, then it is suspected.
    let t = 10 * timeout + 50;
    let mut suspected_at = None;
    for now in (t..=t + 3 * timeout).step_by(50) {
        let m = chatter(&net, now);
        let _ = net.replicas[2].receive(now, m);
        let _ = net.replicas[2].tick(now);
        if suspected_at.is_none() && net.replicas[2].view() == 1 {
            suspected_at = Some(now);
        }
    }
    let at = suspected_at.expect("the backup suspects the primary once it hears the others");
    assert!(at >= t + 2 * timeout && at <= t + 2 * timeout + 100, "suspected at {at}, healed at {t}");
}

#[test]
fn a_batch_a_new_view_named_is_asked_for_again_until_it_comes() {
    let mut net = Net::new();
    let digest = [9; 32];
    net.replicas[3].awaiting_batch.insert(digest, vec![1]);
    let asks = |out: &Output| {
        out.send
            .iter()
            .filter(|(t, m)| *t == Target::All && matches!(&**m, Message::FetchBatch(f) if f.body.digest == digest))
            .count()
    };
    let retransmit = config(3).retransmit_ms;
    assert_eq!(asks(&net.replicas[3].tick(retransmit)), 1);
    assert_eq!(asks(&net.replicas[3].tick(2 * retransmit)), 1);
    net.replicas[3].awaiting_batch.clear();
    assert_eq!(asks(&net.replicas[3].tick(3 * retransmit)), 0);
}

#[test]
fn a_backup_that_missed_the_prepares_commits_on_a_commit_certificate() {
    let mut net = Net::new();
    let out = net.replicas[1].submit(net.now, Request { client: 7, id: 1, payload: vec![1; 16] }).unwrap();
    net.absorb(1, out);
    // Every prepare to replica 3 is lost (a peer cut off just as it sent one, the other
    // lost with a replaced connection): it never prepares, but the others commit.
    let mut lost = 0;
    while let Some((_, to, m)) = net.queue.pop_front() {
        if to == 3 && matches!(&m, Message::Vote(v) if v.body.phase == Phase::Prepare) {
            lost += 1;
            continue;
        }
        let out = net.replicas[to as usize].receive(net.now, m);
        net.absorb(to, out);
    }
    assert!(lost >= 2, "both backups' prepares to replica 3 were dropped");
    let executed = |r: usize| net.delivered[r].iter().flat_map(|d| d.entry.batch.requests().iter().map(|q| q.id));
    assert!((0..3).all(|r| executed(r).any(|id| id == 1)));
    assert!(executed(3).any(|id| id == 1), "2f + 1 commits of others are a commit certificate");
    assert!(net.replicas[3].slots.get(&1).is_none_or(|s| !s.sent_commit), "without sending a commit of its own");
}

#[test]
fn state_requests_go_first_to_a_peer_that_showed_it_is_ahead() {
    let mut net = Net::new();
    let fetch = config(3).state_fetch_ms;
    // Replica 1 shows it executed up to 9; replica 3 executed nothing and hears nobody
    // else (0 and 2 are cut off from it).
    let mut asked = Vec::new();
    for now in (0..=4 * fetch).step_by(100) {
        let m = chatter(&net, 9);
        let _ = net.replicas[3].receive(now, m);
        let out = net.replicas[3].tick(now);
        for (t, m) in &out.send {
            if let (Target::One(p), Message::FetchState(_)) = (t, &**m) {
                asked.push(*p);
            }
        }
    }
    assert!(asked.len() >= 3, "asked {asked:?}");
    assert!(asked.iter().all(|p| *p == 1), "every request goes to the peer that is ahead: {asked:?}");
}

// ---- dissemination ----------------------------------------------------------------------

#[test]
fn parts_joined_make_the_batch_of_their_requests() {
    let r = |c: u64, i: u64| Request { client: c, id: i, payload: vec![c as u8; 10 + i as usize] };
    let a = Batch::new(vec![r(1, 1), r(2, 2)]);
    let b = Batch::new(vec![r(3, 3)]);
    let joined = Batch::join(77, &[&a, &b]).unwrap();
    let flat = Batch::with_time(77, vec![r(1, 1), r(2, 2), r(3, 3)]);
    assert_eq!(joined.digest(), flat.digest());
    assert_eq!(joined.encoded(), flat.encoded());
    assert_eq!(joined.requests(), flat.requests());
    assert_eq!(Batch::decode(joined.encoded()).unwrap(), flat);
    assert!(a.is_part() && !flat.is_part() && !Batch::null().is_part());
}

#[test]
fn a_backup_refuses_a_forged_certificate_and_fetches_a_part_it_lacks_before_it_prepares() {
    let mut net = Net::new();
    let out = net.replicas[1].submit(0, Request { client: 5, id: 0, payload: vec![1; 16] }).unwrap();
    net.absorb(1, out);
    // Replica 3 never receives the part, and the primary's proposal is held back from it.
    let mut proposals = Vec::new();
    while let Some((_, to, m)) = net.queue.pop_front() {
        if to == 3 && matches!(m, Message::Disseminate(_)) {
            continue;
        }
        if to == 3 && matches!(m, Message::Propose(..)) {
            proposals.push(m);
            continue;
        }
        let out = net.replicas[to as usize].receive(net.now, m);
        net.absorb(to, out);
    }
    assert_eq!(net.delivered[0].len(), 1, "a quorum without replica 3 commits");
    assert!(net.delivered[3].is_empty());
    let [Message::Propose(header, refs)] = &proposals[..] else { panic!("one proposal for replica 3: {proposals:?}") };

    // The same proposal under a certificate whose votes carry each other's signatures.
    let mut forged = (**refs).clone();
    let sig = forged.parts[0].votes[0].sig;
    for v in &mut forged.parts[0].votes {
        v.sig = sig;
    }
    let out = net.replicas[3].receive(net.now, Message::Propose(header.clone(), Arc::new(forged)));
    assert!(out.events.iter().any(|e| matches!(e, Event::PeerFault { peer: 0, .. })), "{:?}", out.events);
    assert!(out.send.is_empty(), "nothing fetched or voted for a forged certificate");

    // The genuine proposal: replica 3 asks a holder for the part, then prepares and commits.
    let out = net.replicas[3].receive(net.now, Message::Propose(header.clone(), refs.clone()));
    let holders: Vec<ReplicaId> = refs.parts[0].holders().collect();
    assert!(
        out.send.iter().any(|(t, m)| matches!(m.as_ref(), Message::FetchBatch(_))
            && matches!(t, Target::One(h) if holders.contains(h) && *h != 3)),
        "{:?}",
        out.send
    );
    net.absorb(3, out);
    net.run();
    assert_eq!(net.delivered[3].len(), 1);
    assert_eq!(net.delivered[3][0].entry.batch.digest(), net.delivered[0][0].entry.batch.digest());
    assert_eq!(net.delivered[3][0].entry.batch.requests().len(), 1);
}

#[test]
fn availability_certificates_are_checked() {
    let net = Net::new();
    let keys = net.replicas[0].public_keys().to_vec();
    let part = Batch::new(vec![Request { client: 1, id: 1, payload: vec![2; 4] }]);
    let vote = |i: usize| Signed::sign(&net.keys[i], i as u8, Holding { digest: part.digest() });
    let good = Available { digest: part.digest(), votes: (0..3).map(vote).collect() };
    assert_eq!(good.check(3, |_| true, &keys), Ok(()));
    assert_eq!(good.check(4, |_| true, &keys), Err(CertError::Short));
    assert_eq!(good.check(3, |r| r != 2, &keys), Err(CertError::Short));
    let twice = Available { votes: vec![vote(0), vote(0), vote(1)], ..good.clone() };
    assert!(matches!(twice.check(3, |_| true, &keys), Err(CertError::Forged(_))));
    let other = Available { digest: [1; 32], ..good.clone() };
    assert!(matches!(other.check(3, |_| true, &keys), Err(CertError::Forged(_))));
}

#[test]
fn a_certified_part_waits_for_the_primary_and_only_its_certificate_is_sent_again() {
    let mut net = Net::new();
    let retransmit = net.replicas[1].cfg.retransmit_ms;
    assert!(3 * retransmit < net.replicas[1].cfg.view_change_timeout_ms, "the test stays within one view");
    let out = net.replicas[1].submit(0, Request { client: 5, id: 0, payload: vec![1; 16] }).unwrap();
    net.absorb(1, out);
    // The part is certified, but its certificate never reaches the primary.
    while let Some((_, to, m)) = net.queue.pop_front() {
        if to == 0 && matches!(m, Message::Available(_)) {
            continue;
        }
        let out = net.replicas[to as usize].receive(net.now, m);
        net.absorb(to, out);
    }
    assert!(net.delivered[0].is_empty(), "nothing ordered without the certificate");
    // Two retransmission periods: no new part of the same request (past saturation that
    // would disseminate the backlog again each period), the certificate again to the
    // primary alone.
    for round in 1..=2 {
        net.now += retransmit;
        let out = net.replicas[1].tick(net.now);
        let parts = out.send.iter().filter(|(_, m)| matches!(m.as_ref(), Message::Disseminate(_))).count();
        assert_eq!(parts, 0, "round {round}: a request its certified part carries is not cut again");
        let certs: Vec<&Target> =
            out.send.iter().filter(|(_, m)| matches!(m.as_ref(), Message::Available(_))).map(|(t, _)| t).collect();
        assert!(matches!(certs[..], [Target::One(0)]), "round {round}: {certs:?}");
        if round == 1 {
            continue; // lost as well
        }
        net.absorb(1, out);
        net.run();
    }
    for r in 0..4 {
        assert_eq!(net.delivered[r].len(), 1, "replica {r} executed the request once");
    }
}
