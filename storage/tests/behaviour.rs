//! One behavioural suite, run against the RocksDB engine and the memory engine.

mod common;

use std::sync::Arc;

use common::*;
use dualchain_crypto::cbsre::{ReKeyToken, RecordSelection, TokenScope};
use dualchain_crypto::reencrypt::CpuBackend;
use dualchain_storage::consensus::{ConsensusStore, LogWrite, Split};
use dualchain_storage::cpc::{CpcStore, Erased, Swept};
use dualchain_storage::engine::{Cf, KvEngine, WriteBatch};
use dualchain_storage::ledger::{Chain, LedgerStore};
use dualchain_storage::memory::MemoryEngine;
use dualchain_storage::rocks::{RocksConfig, RocksEngine};
use dualchain_storage::StorageError;

fn engine_suite(e: Arc<dyn KvEngine>) {
    let mut wb = WriteBatch::new();
    for i in 0u8..10 {
        wb.put(Cf::State, vec![b'k', i], vec![i; 3]);
    }
    wb.put(Cf::TxIndex, b"k\x05".to_vec(), b"other family".to_vec());
    e.write(wb).unwrap();
    assert_eq!(e.get(Cf::State, b"k\x03").unwrap(), Some(vec![3; 3]));
    assert_eq!(e.get(Cf::TxIndex, b"k\x05").unwrap(), Some(b"other family".to_vec()));
    assert_eq!(e.get(Cf::Meta, b"k\x03").unwrap(), None);
    let rows = e.scan(Cf::State, b"k\x02", Some(b"k\x06"), 100).unwrap();
    assert_eq!(rows.iter().map(|(k, _)| k[1]).collect::<Vec<_>>(), vec![2, 3, 4, 5]);
    assert_eq!(e.scan(Cf::State, b"k\x00", None, 3).unwrap().len(), 3);
    let mut wb = WriteBatch::new();
    wb.delete(Cf::State, b"k\x00".to_vec());
    wb.delete_range(Cf::State, b"k\x05".to_vec(), b"k\x08".to_vec());
    wb.put(Cf::State, b"k\x06".to_vec(), b"after range".to_vec());
    e.write(wb).unwrap();
    let keys: Vec<u8> = e.scan(Cf::State, b"", None, 100).unwrap().iter().map(|(k, _)| k[1]).collect();
    // Operations apply in order: the put after the range delete survives.
    assert_eq!(keys, vec![1, 2, 3, 4, 6, 8, 9]);
}

fn ledger_suite(e: Arc<dyn KvEngine>) {
    let store = LedgerStore::open(e.clone()).unwrap();
    check_ledger(&store, 0);
    for k in 0..20 {
        store.apply(&next_batch(&store, k, 5)).unwrap();
    }
    check_ledger(&store, 20);
    // Replays, gaps and forks are refused and change nothing.
    let mut replay = next_batch(&store, 19, 5);
    assert!(matches!(store.apply(&replay), Err(StorageError::Conflict(_))));
    replay.seq = 20;
    if let Some(b) = replay.data_block.as_mut() {
        b.prev_hash = [9; 32];
    }
    assert!(matches!(store.apply(&replay), Err(StorageError::Conflict(_))));
    let mut forged = next_batch(&store, 20, 1);
    forged.data_block.as_mut().unwrap().body.push(0);
    assert!(matches!(store.apply(&forged), Err(StorageError::Invalid(_))));
    check_ledger(&store, 20);
    // Cross-links point at the other chain's block.
    let a = store.block(Chain::Access, 7).unwrap().unwrap();
    assert_eq!(a.cross_link.hash, store.block(Chain::Data, 7).unwrap().unwrap().hash);
    assert_eq!(store.state_prefix(b"acct/", 100).unwrap().len(), 7);

    // Reopening sees the same state.
    let reopened = LedgerStore::open(e).unwrap();
    check_ledger(&reopened, 20);
}

fn consensus_suite(e: Arc<dyn KvEngine>) {
    let store = ConsensusStore::open(e.clone()).unwrap();
    assert_eq!(store.view().unwrap(), 0);
    assert!(store.stable_checkpoint().unwrap().is_none());
    let mut w = LogWrite { view: Some(3), ..Default::default() };
    let digest = |s: u64, view: u8| {
        let mut d = [view; 32];
        d[..8].copy_from_slice(&s.to_be_bytes());
        d
    };
    for s in 1..=30u64 {
        // Each batch once; the pre-prepare record and the committed entry refer to it.
        w.batches.push((s, digest(s, 0), format!("batch {s}").into_bytes()));
        let around = |head: &str, tail: &str| Split {
            head: head.as_bytes().to_vec(),
            batch: Some(digest(s, 0)),
            tail: tail.as_bytes().to_vec(),
        };
        w.records.push((s, around("pre-prepare [", "]")));
        w.records.push((s, format!("commit {s}").into_bytes().into()));
        w.committed.push((s, around("entry [", "] certificate")));
    }
    // A batch proposed at 5 in a view that never committed it.
    w.batches.push((5, digest(5, 1), b"another batch 5".to_vec()));
    // (A record's identity is its head: a real pre-prepare's head holds the digest.)
    w.records.push((5, Split { head: b"pre-prepare v1 [".to_vec(), batch: Some(digest(5, 1)), tail: b"]".to_vec() }));
    // The same record twice is kept once.
    w.records.push((7, b"commit 7".to_vec().into()));
    store.write(&w).unwrap();
    assert_eq!(store.view().unwrap(), 3);
    let records = store.records(0).unwrap();
    assert_eq!(records.len(), 61);
    assert!(records.contains(&(9, b"pre-prepare [batch 9]".to_vec())), "records are read back whole");
    assert!(records.contains(&(5, b"pre-prepare v1 [another batch 5]".to_vec())));
    assert_eq!(store.committed_batch(9).unwrap(), Some(digest(9, 0)));
    assert_eq!(store.last_committed().unwrap(), Some(30));
    // Stable without a proof is refused and changes nothing.
    let no_proof = LogWrite { stable: Some(20), ..Default::default() };
    assert!(matches!(store.write(&no_proof), Err(StorageError::NotFound(_))));
    assert_eq!(store.records(0).unwrap().len(), 61);
    store.write(&LogWrite { checkpoint: Some((10, b"cp10".to_vec())), ..Default::default() }).unwrap();
    // The stable checkpoint sweeps the batch the archive does not refer to.
    store
        .write(&LogWrite {
            checkpoint: Some((20, b"cp20".to_vec())),
            stable: Some(20),
            sweep: vec![(5, digest(5, 1))],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(store.stable_checkpoint().unwrap(), Some((20, b"cp20".to_vec())));
    assert!(store.batch(5, &digest(5, 1)).unwrap().is_none());
    assert_eq!(store.batch(5, &digest(5, 0)).unwrap().unwrap(), b"batch 5");
    assert_eq!(store.batch_digests(4, 7).unwrap(), vec![(4, digest(4, 0)), (5, digest(5, 0)), (6, digest(6, 0))]);
    let left = store.records(0).unwrap();
    assert_eq!(left.len(), 20);
    assert!(left.iter().all(|(s, _)| *s > 20));
    assert!(store.checkpoint(10).unwrap().is_none());
    // Going back to an older stable checkpoint is refused.
    let older = LogWrite { checkpoint: Some((15, b"cp15".to_vec())), stable: Some(15), ..Default::default() };
    assert!(matches!(store.write(&older), Err(StorageError::Conflict(_))));
    // The committed archive is never truncated.
    assert_eq!(store.committed(3).unwrap().unwrap(), b"entry [batch 3] certificate");
    let range = store.committed_range(5, 9, 100).unwrap();
    assert_eq!(range.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![5, 6, 7, 8]);
    assert_eq!(store.committed_range(0, 100, 4).unwrap().len(), 4);
    // An entry whose batch is missing is reported as corruption, never returned short.
    store
        .write(&LogWrite {
            committed: vec![(31, Split { head: b"entry [".to_vec(), batch: Some(digest(31, 0)), tail: vec![] })],
            ..Default::default()
        })
        .unwrap();
    assert!(matches!(store.committed(31), Err(StorageError::Corrupt { .. })));
    let reopened = ConsensusStore::open(e).unwrap();
    assert_eq!(reopened.view().unwrap(), 3);
    assert_eq!(reopened.records(25).unwrap().len(), 12);
}

/// A consensus log written before batches were stored once (records with their batches
/// inline, no format marker) is refused by name, not misread.
#[test]
fn a_consensus_log_in_the_older_format_is_refused() {
    let e: Arc<dyn KvEngine> = arc(MemoryEngine::new());
    let mut wb = WriteBatch::new();
    wb.put(Cf::ConsensusLog, [&b"c"[..], &1u64.to_be_bytes()].concat(), dualchain_storage::record::seal(b"entry"));
    e.write(wb).unwrap();
    match ConsensusStore::open(e) {
        Err(StorageError::Invalid(why)) => assert!(why.contains("older dualchain"), "{why}"),
        other => panic!("an older log must be refused, got {:?}", other.map(|_| ())),
    }
    // A fresh store gets the marker and opens again.
    let fresh: Arc<dyn KvEngine> = arc(MemoryEngine::new());
    ConsensusStore::open(fresh.clone()).unwrap();
    ConsensusStore::open(fresh).unwrap();
}

fn cpc_suite(e: Arc<dyn KvEngine>) {
    let d = dataset(40, 1500, NOW + 3600);
    let cpc = CpcStore::open(e).unwrap();
    let manifest = cpc.ingest(&d.owner.public(), &d.records).unwrap();
    assert_eq!(manifest.entries.len(), 40);
    assert!(matches!(cpc.ingest(&d.owner.public(), &d.records), Err(StorageError::Conflict(_))));
    for i in [0u64, 17, 39] {
        assert_eq!(cpc.record(&manifest.dataset, i).unwrap(), d.records[i as usize]);
    }
    cpc.put_grant(d.grant_id, d.token.clone(), &d.owner.public(), NOW).unwrap();
    let receipt = cpc.reencrypt(&d.grant_id, &CpuBackend, &d.owner.public(), NOW, 16, &mut rng(1)).unwrap();
    assert_eq!(receipt.records, 40);
    // Running again returns the same receipt without redoing work.
    assert_eq!(cpc.reencrypt(&d.grant_id, &CpuBackend, &d.owner.public(), NOW + 5, 16, &mut rng(2)).unwrap(), receipt);
    let results = cpc.results(&d.grant_id, &d.owner.public(), NOW).unwrap();
    for (re, pt) in results.iter().zip(&d.plaintexts) {
        assert_eq!(&re.decrypt(&d.requester_dsk, &d.owner.public()).unwrap(), pt);
    }

    // A grant whose token selects records (those satisfying its demand): only those are
    // re-encrypted and served, in runs and alone, across chunks.
    let token = |grant_id: [u8; 32], picked: &[u64]| {
        ReKeyToken::issue(
            &mut rng(3),
            &d.owner,
            &d.owner_dsk,
            &d.requester_dsk.public(),
            TokenScope {
                owner: "hospital-a",
                requester: "research-1",
                dataset: manifest.dataset,
                grant_id,
                expiry: NOW + 3600,
                records: RecordSelection::of(picked.iter().copied()),
            },
        )
        .unwrap()
    };
    let picked = [2u64, 3, 4, 17, 39];
    cpc.put_grant([8; 32], token([8; 32], &picked), &d.owner.public(), NOW).unwrap();
    let receipt = cpc.reencrypt(&[8; 32], &CpuBackend, &d.owner.public(), NOW, 2, &mut rng(4)).unwrap();
    assert_eq!(receipt.records, 5);
    let results = cpc.results(&[8; 32], &d.owner.public(), NOW).unwrap();
    assert_eq!(results.len(), 5);
    for (re, i) in results.iter().zip(picked) {
        assert_eq!(re.original.header.record_index, i);
        assert_eq!(re.decrypt(&d.requester_dsk, &d.owner.public()).unwrap(), d.plaintexts[i as usize]);
    }
    // A selection beyond the dataset is refused when the grant is stored.
    let beyond = cpc.put_grant([10; 32], token([10; 32], &[1, 40]), &d.owner.public(), NOW);
    assert!(matches!(beyond, Err(StorageError::Grant(ref m)) if m.contains("selects record 40")), "{beyond:?}");

    // Retention: the sweep deletes what ended grants leave (their re-encrypted records,
    // job and token) and nothing of the grants still running.
    cpc.put_grant([11; 32], token([11; 32], &[1, 2]), &d.owner.public(), NOW).unwrap();
    cpc.reencrypt(&[11; 32], &CpuBackend, &d.owner.public(), NOW, 16, &mut rng(5)).unwrap();
    assert_eq!(cpc.sweep(NOW).unwrap(), Swept::default(), "nothing has ended yet");
    cpc.revoke_grant(&[8; 32]).unwrap();
    assert_eq!(cpc.sweep(NOW).unwrap(), Swept { grants: 1, results: 5 }, "the revoked grant");
    assert!(cpc.grant(&[8; 32]).unwrap().is_none(), "its token is gone");
    assert_eq!(cpc.swept(&[8; 32]).unwrap(), Some(NOW));
    let gone = cpc.results(&[8; 32], &d.owner.public(), NOW);
    assert!(matches!(gone, Err(StorageError::Grant(ref m)) if m.contains("retention")), "{gone:?}");
    let again = cpc.put_grant([8; 32], token([8; 32], &picked), &d.owner.public(), NOW);
    assert!(matches!(again, Err(StorageError::Conflict(_))), "a swept grant is not stored again: {again:?}");
    assert!(cpc.receipt(&[8; 32]).unwrap().is_some(), "the receipt (counts, digest) stays for audit");
    assert_eq!(cpc.results(&[11; 32], &d.owner.public(), NOW).unwrap().len(), 2, "a running grant keeps its records");
    // At expiry the other two grants end (the first, of 40 records, and the one of 2).
    assert_eq!(cpc.sweep(NOW + 3600).unwrap(), Swept { grants: 2, results: 42 });
    for g in [d.grant_id, [11; 32]] {
        assert_eq!(cpc.swept(&g).unwrap(), Some(NOW + 3600));
        assert!(cpc.grant(&g).unwrap().is_none());
    }
    assert_eq!(cpc.sweep(NOW + 7200).unwrap(), Swept::default(), "a second sweep finds nothing");
    // The records themselves stay: they belong to the dataset, not to a grant.
    assert_eq!(cpc.record(&manifest.dataset, 17).unwrap(), d.records[17]);

    // Erasure: the owner erased the dataset on chain; its records, capsules and the grants
    // on it go, and it cannot come back.
    cpc.put_grant([12; 32], token([12; 32], &[5, 6, 7]), &d.owner.public(), NOW).unwrap();
    cpc.reencrypt(&[12; 32], &CpuBackend, &d.owner.public(), NOW, 16, &mut rng(6)).unwrap();
    assert_eq!(cpc.erase_dataset(&manifest.dataset, NOW).unwrap(), Erased { records: 40, grants: 1 });
    assert_eq!(cpc.erased(&manifest.dataset).unwrap(), Some(NOW));
    assert!(cpc.manifest(&manifest.dataset).unwrap().is_none());
    assert!(cpc.record(&manifest.dataset, 17).is_err());
    assert!(cpc.grant(&[12; 32]).unwrap().is_none() && cpc.results(&[12; 32], &d.owner.public(), NOW).is_err());
    let back = cpc.ingest(&d.owner.public(), &d.records);
    assert!(matches!(back, Err(StorageError::Conflict(ref m)) if m.contains("erased")), "{back:?}");
    assert_eq!(cpc.erase_dataset(&manifest.dataset, NOW + 1).unwrap(), Erased::default(), "erasing twice");
    assert_eq!(cpc.sweep(NOW + 7200).unwrap(), Swept::default());
}

#[test]
fn memory_engine_passes_the_suite() {
    engine_suite(arc(MemoryEngine::new()));
    ledger_suite(arc(MemoryEngine::new()));
    cpc_suite(arc(MemoryEngine::new()));
    consensus_suite(arc(MemoryEngine::new()));
}

#[test]
fn rocksdb_engine_passes_the_suite() {
    let dir = std::env::temp_dir().join(format!("dualchain-rocks-suite-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (i, suite) in
        [engine_suite as fn(Arc<dyn KvEngine>), ledger_suite, cpc_suite, consensus_suite].into_iter().enumerate()
    {
        let path = dir.join(format!("db{i}"));
        suite(arc(RocksEngine::open(&path, &RocksConfig::default()).unwrap()));
    }
    // Data survives closing and reopening the database.
    let path = dir.join("db1");
    let store = LedgerStore::open(arc(RocksEngine::open(&path, &RocksConfig::default()).unwrap())).unwrap();
    check_ledger(&store, 20);
    std::fs::remove_dir_all(&dir).unwrap();
}
