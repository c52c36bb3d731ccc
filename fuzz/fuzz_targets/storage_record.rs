//! Every record the stores read from disk: a store is populated by the ledger, consensus
//! and CPC stores' own writers (`dualchain_fuzz::storage`), one record (picked by the first
//! byte among every key ever written, redo intents included) is replaced by the rest of
//! the input — sealed in a valid envelope when the second byte is odd, raw otherwise — and
//! then every reader of every store runs, as a node does when it opens its data directory:
//! recovery of pending intents, tips, blocks, the transaction index, state, the consensus
//! log, checkpoints and archive (decoded as the replica decodes them), CPC manifests,
//! records, grants, receipts and results. Never panics; with the record's own bytes put
//! back, every read succeeds.
#![no_main]

use std::sync::Arc;

use dualchain_consensus::message::{CheckpointProof, Message};
use dualchain_consensus::replica::{parse_archive, Recovered};
use dualchain_crypto::cbsre::DatasetId;
use dualchain_fuzz::storage::{populated, GRANT};
use dualchain_fuzz::{crypto_world, NOW};
use dualchain_ledger::block::{decode_kept_batch, Block};
use dualchain_ledger::LedgerError;
use dualchain_storage::consensus::ConsensusStore;
use dualchain_storage::cpc::CpcStore;
use dualchain_storage::ledger::{Chain, LedgerStore};
use dualchain_storage::memory::MemoryEngine;
use dualchain_storage::record::seal;
use dualchain_storage::{KvEngine, WriteBatch};
use libfuzzer_sys::fuzz_target;

/// Runs every reader; `Err` names the first that failed.
fn read_everything(engine: Arc<dyn KvEngine>) -> Result<(), String> {
    let p = populated();
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
    let ledger = LedgerStore::open(engine.clone()).map_err(|e| fail("open ledger", &e))?;
    let mut first_err: Option<String> = None;
    let mut note = |r: Result<(), String>| {
        if let (Err(e), None) = (r, &first_err) {
            first_err = Some(e);
        }
    };
    for chain in [Chain::Data, Chain::Access] {
        note(ledger.tip(chain).map(drop).map_err(|e| fail("tip", &e)));
        for height in 0..2 {
            note(match ledger.block(chain, height) {
                Ok(Some(b)) => {
                    let kept = |seq, digest: &_| {
                        let raw = ledger.batch(seq)?.ok_or_else(|| LedgerError::Corrupt("no kept batch".into()))?;
                        decode_kept_batch(seq, digest, &raw)
                    };
                    Block::open(&b, kept).map(drop).map_err(|e| fail("open block", &e))
                }
                Ok(None) => Ok(()),
                Err(e) => Err(fail("block", &e)),
            });
        }
    }
    for (chain, hash) in &p.block_hashes {
        note(ledger.block_by_hash(*chain, hash).map(drop).map_err(|e| fail("block by hash", &e)));
    }
    for h in &p.tx_hashes {
        note(ledger.tx(h).map(drop).map_err(|e| fail("tx index", &e)));
    }
    note(ledger.applied_seq().map(drop).map_err(|e| fail("applied seq", &e)));
    note(ledger.state_root().map(drop).map_err(|e| fail("state root", &e)));
    note(ledger.state(b"registry").map(drop).map_err(|e| fail("state", &e)));
    note(ledger.state_prefix(b"member/", 16).map(drop).map_err(|e| fail("state prefix", &e)));

    let consensus = ConsensusStore::open(engine.clone()).map_err(|e| fail("open consensus", &e))?;
    note(consensus.view().map(drop).map_err(|e| fail("view", &e)));
    note(consensus.last_committed().map(drop).map_err(|e| fail("last committed", &e)));
    note(consensus.checkpoint(1).map(drop).map_err(|e| fail("checkpoint", &e)));
    note(consensus.committed_range(0, 8, 8).map(drop).map_err(|e| fail("committed range", &e)));
    match Recovered::read(&consensus, 8) {
        Ok(r) => {
            if let Some(proof) = &r.stable {
                note(CheckpointProof::from_bytes(proof).map(drop).map_err(|e| fail("stable proof", &e)));
            }
            for (_, rec) in &r.records {
                note(Message::from_bytes(rec).map(drop).map_err(|e| fail("log record", &e)));
            }
            for a in &r.recent {
                note(parse_archive(a).map(drop).map_err(|e| fail("archive", &e)));
            }
        }
        Err(e) => note(Err(fail("recover", &e))),
    }

    let cpc = CpcStore::open(engine).map_err(|e| fail("open CPC", &e))?;
    let w = crypto_world();
    let dataset = DatasetId::derive("hospital-a", "icu");
    note(cpc.manifest(&dataset).map(drop).map_err(|e| fail("manifest", &e)));
    for i in 0..2 {
        note(cpc.record(&dataset, i).map(drop).map_err(|e| fail("CPC record", &e)));
    }
    note(cpc.grant(&GRANT).map(drop).map_err(|e| fail("grant", &e)));
    note(cpc.receipt(&GRANT).map(drop).map_err(|e| fail("receipt", &e)));
    note(cpc.results(&GRANT, &w.owner.signer.public(), NOW).map(drop).map_err(|e| fail("results", &e)));
    first_err.map_or(Ok(()), Err)
}

fuzz_target!(|data: &[u8]| {
    let [which, how, payload @ ..] = data else { return };
    let p = populated();
    let (cf, key, original) = &p.records[usize::from(*which) % p.records.len()];
    let value = if how & 1 == 1 { seal(payload) } else { payload.to_vec() };
    let pristine = original.as_deref() == Some(value.as_slice());
    let engine = MemoryEngine::new();
    let mut batch = WriteBatch::new();
    for (c, k, v) in &p.contents {
        batch.put(*c, k.clone(), v.clone());
    }
    batch.put(*cf, key.clone(), value);
    engine.write(batch).expect("memory write");
    let result = read_everything(Arc::new(engine));
    if pristine {
        if let Err(e) = result {
            panic!("an unmodified store fails to read: {e}");
        }
    }
});
