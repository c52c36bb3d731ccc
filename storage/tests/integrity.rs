//! Corruption is detected and named; grants are refused when expired, revoked or issued
//! for another grant.

mod common;

use std::sync::Arc;

use common::*;
use dualchain_crypto::reencrypt::CpuBackend;
use dualchain_storage::cpc::CpcStore;
use dualchain_storage::engine::{Cf, KvEngine, WriteBatch};
use dualchain_storage::ledger::{Chain, LedgerStore};
use dualchain_storage::memory::MemoryEngine;
use dualchain_storage::StorageError;

/// Flips one byte of the stored value at (cf, key).
fn flip(e: &MemoryEngine, cf: Cf, key: &[u8], at: usize) {
    let mut v = e.get(cf, key).unwrap().unwrap();
    let i = at.min(v.len() - 1);
    v[i] ^= 0x10;
    let mut wb = WriteBatch::new();
    wb.put(cf, key.to_vec(), v);
    e.write(wb).unwrap();
}

fn corrupt_cf<T: std::fmt::Debug>(r: Result<T, StorageError>) -> (&'static str, String) {
    match r {
        Err(StorageError::Corrupt { cf, key, .. }) => (cf, key),
        other => panic!("expected corruption to be reported, got {other:?}"),
    }
}

#[test]
fn flipped_bytes_in_blocks_blob_chunks_and_capsules_are_named() {
    let disk = Arc::new(MemoryEngine::new());
    let ledger = LedgerStore::open(disk.clone()).unwrap();
    for k in 0..3 {
        ledger.apply(&next_batch(&ledger, k, 2)).unwrap();
    }
    let mut key = vec![b'h'];
    key.extend_from_slice(&1u64.to_be_bytes());
    for at in [0, 3, 40, 1000] {
        let d2 = Arc::new(MemoryEngine::new());
        let l2 = LedgerStore::open(d2.clone()).unwrap();
        for k in 0..3 {
            l2.apply(&next_batch(&l2, k, 2)).unwrap();
        }
        flip(&d2, Cf::BlocksData, &key, at);
        let (cf, k) = corrupt_cf(l2.block(Chain::Data, 1));
        assert_eq!(cf, "blocks/data");
        assert_eq!(k, "680000000000000001");
        // Other blocks still read.
        assert!(l2.block(Chain::Data, 2).unwrap().is_some());
    }

    let d = dataset(3, 600 * 1024, NOW + 3600); // records of 600 KiB: three chunks each
    let disk = Arc::new(MemoryEngine::new());
    let cpc = CpcStore::open(disk.clone()).unwrap();
    let m = cpc.ingest(&d.owner.public(), &d.records).unwrap();
    let mut chunk_key = m.dataset.0.to_vec();
    chunk_key.extend_from_slice(&1u64.to_be_bytes());
    chunk_key.extend_from_slice(&2u32.to_be_bytes());
    flip(&disk, Cf::CpcBlobs, &chunk_key, 5000);
    let (cf, k) = corrupt_cf(cpc.record(&m.dataset, 1));
    assert_eq!(cf, "cpc/blobs");
    assert!(k.ends_with("000000000000000100000002"), "{k}");
    assert_eq!(cpc.record(&m.dataset, 0).unwrap(), d.records[0]);

    let mut capsule_key = m.dataset.0.to_vec();
    capsule_key.extend_from_slice(&2u64.to_be_bytes());
    flip(&disk, Cf::CpcCapsules, &capsule_key, 60);
    cpc.put_grant(d.grant_id, d.token.clone(), &d.owner.public(), NOW).unwrap();
    let (cf, k) = corrupt_cf(cpc.reencrypt(&d.grant_id, &CpuBackend, &d.owner.public(), NOW, 16, &mut rng(1)));
    assert_eq!(cf, "cpc/capsules");
    assert!(k.ends_with("0000000000000002"), "{k}");
}

#[test]
fn grants_are_refused_when_expired_revoked_or_for_another_grant() {
    let d = dataset(5, 100, NOW + 100);
    let cpc = CpcStore::open(arc(MemoryEngine::new())).unwrap();
    cpc.ingest(&d.owner.public(), &d.records).unwrap();
    let vk = d.owner.public();

    // An already expired token.
    assert!(cpc.put_grant(d.grant_id, d.token.clone(), &vk, NOW + 100).is_err());
    // A token for another grant id.
    assert!(matches!(cpc.put_grant([1; 32], d.token.clone(), &vk, NOW), Err(StorageError::Grant(_))));

    cpc.put_grant(d.grant_id, d.token.clone(), &vk, NOW).unwrap();
    // Expired by the time the CPC re-encrypts.
    assert!(matches!(
        cpc.reencrypt(&d.grant_id, &CpuBackend, &vk, NOW + 100, 4, &mut rng(1)),
        Err(StorageError::Grant(_))
    ));
    cpc.reencrypt(&d.grant_id, &CpuBackend, &vk, NOW + 1, 4, &mut rng(1)).unwrap();
    assert_eq!(cpc.results(&d.grant_id, &vk, NOW + 1).unwrap().len(), 5);
    assert!(matches!(cpc.results(&d.grant_id, &vk, NOW + 100), Err(StorageError::Grant(_))));
    // Revoked: no more results.
    cpc.revoke_grant(&d.grant_id).unwrap();
    match cpc.results(&d.grant_id, &vk, NOW + 1) {
        Err(StorageError::Grant(msg)) => assert!(msg.contains("revoked"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(cpc.results(&[3; 32], &vk, NOW), Err(StorageError::Grant(_))));
}

#[test]
fn ingest_refuses_foreign_or_forged_records() {
    let d = dataset(4, 100, NOW + 100);
    let cpc = CpcStore::open(arc(MemoryEngine::new())).unwrap();
    let mut forged = d.records.clone();
    forged[2].ciphertext[0] ^= 1;
    assert!(cpc.ingest(&d.owner.public(), &forged).is_err());
    let mut shuffled = d.records.clone();
    shuffled.swap(0, 1);
    assert!(matches!(cpc.ingest(&d.owner.public(), &shuffled), Err(StorageError::Invalid(_))));
    assert!(cpc.ingest(&d.owner.public(), &[]).is_err());
    // Nothing became visible.
    assert!(cpc.manifest(&d.records[0].header.dataset).unwrap().is_none());
}

#[test]
fn poisoned_engines_refuse_writes_with_a_clear_error() {
    use dualchain_storage::wrappers::{Fault, Faulty};
    let faulty = Faulty::new(Arc::new(MemoryEngine::new()), Some(Fault::FailAt { write: 0 }));
    assert!(matches!(faulty.write(WriteBatch::new()), Err(StorageError::Io(_))));
    match faulty.write(WriteBatch::new()) {
        Err(e @ StorageError::Poisoned(_)) => assert!(e.to_string().contains("reopen")),
        other => panic!("{other:?}"),
    }
}
