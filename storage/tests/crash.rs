//! Crash consistency over many seeded cut points: a `Faulty` engine failing or tearing a
//! write in the middle of a ledger apply or a re-encryption job leaves the whole batch or
//! none of it, the store reopens cleanly and carries on; and a real process writing to
//! RocksDB is killed (SIGKILL) mid-stream and its database reopens consistent.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use blstrs::{G1Affine, Scalar};
use common::*;
use dualchain_crypto::cbsre::Capsule;
use dualchain_crypto::reencrypt::{CpuBackend, ReencryptBackend};
use dualchain_storage::cpc::CpcStore;
use dualchain_storage::engine::{Cf, KvEngine};
use dualchain_storage::ledger::LedgerStore;
use dualchain_storage::memory::MemoryEngine;
use dualchain_storage::rocks::{RocksConfig, RocksEngine};
use dualchain_storage::wrappers::{Fault, Faulty};
use dualchain_storage::StorageError;
use rand::Rng;

const SEEDS: u64 = 200;

#[test]
fn ledger_apply_is_all_or_nothing_at_every_seeded_cut_point() {
    for seed in 0..SEEDS {
        let mut r = rng(seed);
        let batches = 6u64;
        let tear = seed % 2 == 1;
        // Torn engines need three writes per batch (intent, batch, clear); atomic ones one.
        let writes_per_batch = if tear { 3 } else { 1 };
        let write = r.gen_range(0..batches * writes_per_batch);
        let fault = if tear { Fault::TearAt { write, keep: r.gen_range(0..12) } } else { Fault::FailAt { write } };
        let disk = Arc::new(MemoryEngine::new());
        let faulty = Arc::new(Faulty::new(disk.clone(), Some(fault)));
        let store = LedgerStore::open(faulty.clone()).unwrap();
        let mut attempted = 0;
        for k in 0..batches {
            attempted = k;
            if store.apply(&next_batch(&store, k, 3)).is_err() {
                break;
            }
        }
        // The failed instance refuses further writes.
        assert!(
            matches!(
                store.apply(&next_batch(&store, attempted, 3)),
                Err(StorageError::Poisoned(_)) | Err(StorageError::Conflict(_))
            ),
            "seed {seed}"
        );
        // Restart on the surviving disk: either the interrupted batch fully or not at all.
        let reopened = LedgerStore::open(disk.clone()).unwrap();
        let applied = reopened.applied_seq().unwrap().map_or(0, |s| s + 1);
        assert!(
            applied == attempted || applied == attempted + 1,
            "seed {seed}: {applied} applied, batch {attempted} interrupted"
        );
        check_ledger(&reopened, applied);
        // And it carries on.
        for k in applied..applied + 2 {
            reopened.apply(&next_batch(&reopened, k, 3)).unwrap();
        }
        check_ledger(&reopened, applied + 2);
    }
}

/// Counts the capsules a backend re-encrypts.
struct Counting(AtomicUsize);
impl ReencryptBackend for Counting {
    fn name(&self) -> &'static str {
        "counting-cpu"
    }
    fn verify_capsules(&self, c: &[Capsule], seed: [u8; 32]) -> Result<(), Vec<usize>> {
        CpuBackend.verify_capsules(c, seed)
    }
    fn reencrypt(&self, rk: &Scalar, c: &[Capsule]) -> Vec<(G1Affine, G1Affine)> {
        self.0.fetch_add(c.len(), Ordering::SeqCst);
        CpuBackend.reencrypt(rk, c)
    }
}

#[test]
fn reencryption_jobs_resume_without_redoing_chunks_or_exposing_partial_results() {
    let d = dataset(50, 200, NOW + 3600);
    let prepare = |disk: &Arc<MemoryEngine>| {
        let cpc = CpcStore::open(disk.clone()).unwrap();
        cpc.ingest(&d.owner.public(), &d.records).unwrap();
        cpc.put_grant(d.grant_id, d.token.clone(), &d.owner.public(), NOW).unwrap();
    };
    // Reference: a run without faults.
    let reference_disk = Arc::new(MemoryEngine::new());
    prepare(&reference_disk);
    let reference = CpcStore::open(reference_disk.clone()).unwrap();
    let receipt = reference.reencrypt(&d.grant_id, &CpuBackend, &d.owner.public(), NOW, 8, &mut rng(0)).unwrap();
    let expected = reference.results(&d.grant_id, &d.owner.public(), NOW).unwrap();

    let chunks = 50u64.div_ceil(8);
    for seed in 0..SEEDS {
        let mut r = rng(1000 + seed);
        let tear = seed % 2 == 1;
        let write = r.gen_range(0..chunks * if tear { 3 } else { 1 });
        let fault = if tear { Fault::TearAt { write, keep: r.gen_range(0..20) } } else { Fault::FailAt { write } };
        let disk = Arc::new(MemoryEngine::new());
        prepare(&disk);
        let faulty = CpcStore::open(Arc::new(Faulty::new(disk.clone(), Some(fault)))).unwrap();
        assert!(
            faulty.reencrypt(&d.grant_id, &CpuBackend, &d.owner.public(), NOW, 8, &mut rng(seed)).is_err(),
            "seed {seed}"
        );

        let cpc = CpcStore::open(disk.clone()).unwrap();
        let done_before = disk.scan(Cf::CpcResults, &d.grant_id, None, usize::MAX).unwrap().len();
        assert!(done_before % 8 == 0 || done_before == 50, "seed {seed}: a partial chunk of results survived");
        if cpc.receipt(&d.grant_id).unwrap().is_none() {
            assert!(
                matches!(cpc.results(&d.grant_id, &d.owner.public(), NOW), Err(StorageError::Grant(_))),
                "seed {seed}"
            );
        }
        let counting = Counting(AtomicUsize::new(0));
        let resumed = cpc.reencrypt(&d.grant_id, &counting, &d.owner.public(), NOW, 8, &mut rng(seed + 1)).unwrap();
        assert_eq!(resumed, receipt, "seed {seed}");
        assert_eq!(counting.0.load(Ordering::SeqCst) + done_before, 50, "seed {seed}: finished chunks were redone");
        assert_eq!(cpc.results(&d.grant_id, &d.owner.public(), NOW).unwrap(), expected, "seed {seed}");
    }
}

const CHILD_ENV: &str = "DUALCHAIN_STORAGE_CRASH_CHILD";

/// Not a test on its own: the writer process of `a_killed_rocksdb_writer_reopens_consistent`.
#[test]
fn crash_child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else { return };
    let store = LedgerStore::open(arc(RocksEngine::open(path.as_ref(), &RocksConfig::default()).unwrap())).unwrap();
    let start = store.applied_seq().unwrap().map_or(0, |s| s + 1);
    for k in start.. {
        store.apply(&next_batch(&store, k, 20)).unwrap();
        println!("applied {k}");
    }
}

#[test]
fn a_killed_rocksdb_writer_reopens_consistent() {
    let dir = std::env::temp_dir().join(format!("dualchain-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut acknowledged = 0u64;
    for round in 0..3u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child_writer", "--nocapture", "--test-threads", "1"])
            .env(CHILD_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Let it write for a while (a different number of batches each round), then kill it.
        let target = acknowledged + 5 + round * 7;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(k) = line.strip_prefix("applied ") {
                acknowledged = k.parse::<u64>().unwrap() + 1;
                if acknowledged >= target {
                    break;
                }
            }
        }
        assert!(acknowledged >= target, "round {round}: the writer stopped after {acknowledged} batches");
        child.kill().unwrap();
        child.wait().unwrap();
        let store = LedgerStore::open(arc(RocksEngine::open(&dir, &RocksConfig::default()).unwrap())).unwrap();
        let applied = store.applied_seq().unwrap().map_or(0, |s| s + 1);
        // Every acknowledged (synced) batch survived; at most the in-flight one more.
        assert!(applied >= acknowledged, "round {round}: {applied} < {acknowledged} acknowledged");
        check_ledger(&store, applied);
        acknowledged = applied;
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
