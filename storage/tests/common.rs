//! Fixtures shared by the storage tests.
#![allow(dead_code)]

use std::sync::Arc;

use dualchain_crypto::cbsre::{
    signcrypt, DatasetId, DelegatingSecretKey, ReKeyToken, RecordHeader, Signcrypted, TokenScope,
};
use dualchain_crypto::sign::SigningKeypair;
use dualchain_storage::ledger::{BlockRef, Chain, CommittedBatch, LedgerStore, StoredBlock, TxLocation};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

pub const NOW: u64 = 1_790_000_000;

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// The committed batch number `k` on top of the store's current tips: two blocks, `txs`
/// transactions, state keys `acct/<k % 7>` updated and `seq` = k.
pub fn next_batch(store: &LedgerStore, k: u64, txs: usize) -> CommittedBatch {
    let tip_d = store.tip(Chain::Data).unwrap();
    let tip_a = store.tip(Chain::Access).unwrap();
    let (hd, pd) = tip_d.map(|t| (t.height + 1, t.hash)).unwrap_or((0, [0; 32]));
    let (ha, pa) = tip_a.map(|t| (t.height + 1, t.hash)).unwrap_or((0, [0; 32]));
    let body: Vec<u8> = (0..txs).flat_map(|i| format!("tx-{k}-{i};").into_bytes()).collect();
    let data =
        StoredBlock::new(hd, pd, tip_a.unwrap_or_default(), format!("data header {k}").into_bytes(), body.clone());
    let access = StoredBlock::new(
        ha,
        pa,
        BlockRef { height: data.height, hash: data.hash },
        format!("access header {k}").into_bytes(),
        body,
    );
    let txs = (0..txs)
        .map(|i| {
            let mut h = [0u8; 32];
            h[..8].copy_from_slice(&k.to_be_bytes());
            h[8..12].copy_from_slice(&(i as u32).to_be_bytes());
            (
                h,
                TxLocation {
                    chain: if i % 2 == 0 { Chain::Data } else { Chain::Access },
                    height: hd,
                    position: i as u32,
                },
            )
        })
        .collect();
    let state = vec![
        (format!("acct/{}", k % 7).into_bytes(), Some(k.to_be_bytes().to_vec())),
        (b"last".to_vec(), Some(k.to_be_bytes().to_vec())),
        (format!("tmp/{}", k.wrapping_sub(1)).into_bytes(), None),
        (format!("tmp/{k}").into_bytes(), Some(vec![1; 10])),
    ];
    CommittedBatch {
        seq: k,
        batch: None,
        data_block: Some(data),
        access_block: Some(access),
        txs,
        state,
        state_root: None,
    }
}

/// Checks the ledger invariants after `applied` batches: contiguous linked chains of
/// `applied` blocks each, the tx index and state of every applied batch, nothing beyond.
pub fn check_ledger(store: &LedgerStore, applied: u64) {
    if applied == 0 {
        assert!(store.tip(Chain::Data).unwrap().is_none());
        assert!(store.applied_seq().unwrap().is_none());
        assert!(store.state(b"last").unwrap().is_none());
        return;
    }
    let last = applied - 1;
    assert_eq!(store.applied_seq().unwrap(), Some(last));
    for chain in [Chain::Data, Chain::Access] {
        let tip = store.tip(chain).unwrap().unwrap();
        assert_eq!(tip.height, last);
        let mut prev = [0u8; 32];
        for h in 0..=last {
            let b = store.block(chain, h).unwrap().unwrap();
            assert_eq!(b.prev_hash, prev);
            assert_eq!(store.block_by_hash(chain, &b.hash).unwrap().unwrap(), b);
            prev = b.hash;
        }
        assert!(store.block(chain, applied).unwrap().is_none());
    }
    assert_eq!(store.state(b"last").unwrap().unwrap(), last.to_be_bytes());
    assert_eq!(store.state(format!("tmp/{last}").as_bytes()).unwrap().unwrap(), vec![1; 10]);
    if last > 0 {
        assert!(store.state(format!("tmp/{}", last - 1).as_bytes()).unwrap().is_none());
    }
    let mut h = [0u8; 32];
    h[..8].copy_from_slice(&last.to_be_bytes());
    assert!(store.tx(&h).unwrap().is_some());
    h[..8].copy_from_slice(&applied.to_be_bytes());
    assert!(store.tx(&h).unwrap().is_none());
}

/// An owner, a requester, `n` signcrypted records and a token.
pub struct Dataset {
    pub owner: SigningKeypair,
    pub owner_dsk: DelegatingSecretKey,
    pub requester_dsk: DelegatingSecretKey,
    pub records: Vec<Signcrypted>,
    pub plaintexts: Vec<Vec<u8>>,
    pub token: ReKeyToken,
    pub grant_id: [u8; 32],
}

pub fn dataset(n: usize, record_len: usize, expiry: u64) -> Dataset {
    let mut r = rng(9);
    let owner = SigningKeypair::generate(&mut r);
    let owner_dsk = DelegatingSecretKey::generate(&mut r);
    let requester_dsk = DelegatingSecretKey::generate(&mut r);
    let dataset = DatasetId::derive("hospital-a", "ward-7");
    let plaintexts: Vec<Vec<u8>> =
        (0..n).map(|i| format!("{i:08}").repeat(record_len / 8 + 1).into_bytes()[..record_len].to_vec()).collect();
    let records = plaintexts
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let h = RecordHeader {
                owner: "hospital-a".into(),
                dataset,
                record_index: i as u64,
                created_at: NOW,
                content_type: "fhir-r4:observation".into(),
            };
            signcrypt(&mut r, &owner, &owner_dsk.public(), h, m).unwrap()
        })
        .collect();
    let grant_id = [7u8; 32];
    let token = ReKeyToken::issue(
        &mut r,
        &owner,
        &owner_dsk,
        &requester_dsk.public(),
        TokenScope { owner: "hospital-a", requester: "research-1", dataset, grant_id, expiry, records: None },
    )
    .unwrap();
    Dataset { owner, owner_dsk, requester_dsk, records, plaintexts, token, grant_id }
}

pub fn arc<E: dualchain_storage::KvEngine + 'static>(e: E) -> Arc<dyn dualchain_storage::KvEngine> {
    Arc::new(e)
}
