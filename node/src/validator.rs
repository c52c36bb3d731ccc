//! A validator: a consensus engine and a ledger, wired so that every committed batch is
//! applied to the ledger exactly once, in order, also across restarts.
//!
//! A validator's ledger lives in the same RocksDB as its consensus log. The engine
//! persists a batch to its log (and its never-truncated archive) before delivering it;
//! the ledger applies delivered batches on its own thread. After a crash the ledger may be
//! behind the log: at start, and whenever a delivery skips ahead, it applies the missing
//! batches from the archive first. Applying is idempotent by sequence number, so nothing
//! is lost or applied twice.
//!
//! After each checkpoint's batch the digest of the ledger's fingerprint (state root and
//! both chain tips, [`dualchain_ledger::Fingerprint::digest`]) goes to the engine, which
//! compares it with the other validators' ([`dualchain_consensus::replica::Divergence`]).
//! A validator whose digest departs from a quorum's stops applying: its ledger stays at the
//! last batch before the checkpoint that showed the difference, its consensus log keeps
//! archiving what the consortium commits, `dualchain_consensus_state_diverged_seq` names
//! the checkpoint and the log says which heights the ledger holds. Its members' requests
//! fail until an operator replaces the ledger (from a healthy validator's copy) and
//! restarts it, when the archive brings it up to date.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};
use dualchain_consensus::engine::{Attester, Engine, Refused};
use dualchain_consensus::replica::parse_archive;
use dualchain_consensus::replica::Divergence;
use dualchain_consensus::{CommittedEntry, Delivered, Request};
use dualchain_ledger::{Applied, Committed, Ledger, LedgerError, Presigned, ToApply};
use dualchain_storage::consensus::ConsensusStore;
use dualchain_storage::KvEngine;
use tokio::sync::{broadcast, mpsc, watch, RwLock};

/// How many applied batches a slow subscriber may lag before it misses events.
const EVENTS_CAPACITY: usize = 4096;
/// Archive entries read per step of a catch-up.
const CATCH_UP_CHUNK: usize = 256;

/// The check a validator runs on requests its peers forward, before they enter ordering
/// (issue: signed consensus requests). Each must carry a transaction that decodes, under
/// its sender's client id ([`dualchain_ledger::tx::client_id`]) with its nonce as the
/// request number, signed by the sender: under the key of its certificate for a
/// registration (checked without state), under the key the ledger holds otherwise. The
/// signatures of a forward are verified in one batch. A sender this ledger does not know
/// yet is admitted (its ledger may be ahead; execution decides), and so is nothing else,
/// but for a validator set change ([`dualchain_consensus::membership`]): it must decode,
/// and its approvals are checked where it executes, against the validator sets there.
pub struct MemberRequests {
    pub ledger: Arc<Ledger>,
}

impl dualchain_consensus::engine::RequestCheck for MemberRequests {
    fn check(&self, requests: &[Request]) -> Vec<Result<(), Refused>> {
        use dualchain_consensus::membership::{Reconfiguration, RECONFIGURE_CLIENT};
        use dualchain_crypto::cert::Certificate;
        use dualchain_crypto::sign::{verify_batch, PublicKey, SignedItem};
        use dualchain_crypto::Codec;
        use dualchain_ledger::tx::{client_id, pseudonym_key, SignedTx, TxKind};

        let mut verdicts = vec![Ok(()); requests.len()];
        // (index, transaction, key, the refusal when a key that needs no state does not
        // verify: a registration's certificate key or a pseudonym's one-time key)
        let mut signed: Vec<(usize, SignedTx, PublicKey, Option<&'static str>)> = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            if r.client == RECONFIGURE_CLIENT {
                if Reconfiguration::from_bytes(&r.payload).is_err() {
                    verdicts[i] = Err(Refused::Forged("not a validator set change"));
                }
                continue;
            }
            let stx = match SignedTx::from_bytes(&r.payload) {
                Ok(stx) => stx,
                Err(_) => {
                    verdicts[i] = Err(Refused::Forged("not a transaction"));
                    continue;
                }
            };
            if client_id(&stx.tx.sender) != r.client {
                verdicts[i] = Err(Refused::Forged("client is not the sender's"));
                continue;
            }
            if stx.tx.nonce != r.id {
                verdicts[i] = Err(Refused::Forged("request number is not the transaction's nonce"));
                continue;
            }
            let (key, stateless) = if let Some(key) = pseudonym_key(&stx.tx.sender) {
                // A pseudonym names its one-time key.
                match key {
                    Ok(key) => (key, Some("a pseudonym's transaction not signed by its one-time key")),
                    Err(_) => {
                        verdicts[i] = Err(Refused::Forged("a pseudonym that names no key"));
                        continue;
                    }
                }
            } else if let TxKind::RegisterMember { certificate } = &stx.tx.kind {
                match Certificate::from_bytes(certificate) {
                    Ok(c) if c.fields.subject == stx.tx.sender => {
                        (c.fields.signing_key, Some("a registration not signed by its certificate's key"))
                    }
                    _ => {
                        verdicts[i] = Err(Refused::Forged("a registration without its sender's certificate"));
                        continue;
                    }
                }
            } else {
                match self
                    .ledger
                    .member(&stx.tx.sender)
                    .ok()
                    .flatten()
                    .and_then(|m| self.ledger.member_key(&m.signing_key))
                {
                    Some(key) => (key, None),
                    None => continue,
                }
            };
            signed.push((i, stx, key, stateless));
        }
        let domain = self.ledger.tx_domain();
        let items: Vec<SignedItem<'_>> = signed
            .iter()
            .map(|(_, stx, key, _)| SignedItem { key, use_: domain.as_str(), msg: &stx.body, sig: &stx.signature })
            .collect();
        if verify_batch(&items).is_err() {
            for (i, stx, key, stateless) in &signed {
                if !stx.verify(key, domain) {
                    verdicts[*i] = Err(match stateless {
                        Some(why) => Refused::Forged(why),
                        None => Refused::Invalid("not signed by the sender's key"),
                    });
                }
            }
        }
        verdicts
    }
}

/// One validator: consensus engine + ledger.
pub struct Validator {
    pub id: usize,
    pub ledger: Arc<Ledger>,
    engine: RwLock<Option<Engine>>,
    applied: watch::Receiver<u64>,
    events: broadcast::Sender<Arc<Applied>>,
    applier: Mutex<Option<std::thread::JoinHandle<Result<(), LedgerError>>>>,
    /// Time the applier spent applying batches (decoding, batch proof verification,
    /// contracts, the store write, and the signature checks not made ahead), in
    /// nanoseconds. The checks made ahead run beside it and are not counted.
    pub apply_ns: Arc<AtomicU64>,
    divergence: watch::Receiver<Option<Divergence>>,
}

impl Validator {
    /// A validator from an engine already started on `store` and its ledger.
    pub fn launch(
        id: usize,
        store: Arc<dyn KvEngine>,
        ledger: Arc<Ledger>,
        engine: Engine,
        delivered: mpsc::Receiver<Delivered>,
    ) -> Result<Arc<Self>> {
        let (applied_tx, applied) = watch::channel(ledger.applied_seq()?.unwrap_or(0));
        let (events, _) = broadcast::channel(EVENTS_CAPACITY);
        let apply_ns = Arc::new(AtomicU64::new(0));
        let divergence = engine.divergence();
        let applier = {
            let ledger = ledger.clone();
            let sink = Sink {
                applied: applied_tx,
                events: events.clone(),
                apply_ns: apply_ns.clone(),
                attester: engine.attester(),
                divergence: divergence.clone(),
            };
            // The pipelined apply: a thread checks the signatures of the batches ahead
            // ([`Ledger::presign`]) while the applier executes the one in front, at most
            // `PRESIGNED_AHEAD` of them (a bounded queue). It ends when the engine's
            // channel closes or the applier stops.
            let diverged = divergence.clone();
            let mut delivered = delivered;
            let ahead = ledger.presign_ahead(
                format!("presign-{id}"),
                PRESIGNED_AHEAD,
                move || delivered.blocking_recv().map(ToLedger),
                // A diverged ledger applies nothing more: nothing is checked for it.
                move || diverged.borrow().is_some(),
            )?;
            std::thread::Builder::new()
                .name(format!("ledger-{id}"))
                .spawn(move || apply_loop(&ledger, store, &ahead, &sink))?
        };
        Ok(Arc::new(Self {
            id,
            ledger,
            engine: RwLock::new(Some(engine)),
            applied,
            events,
            applier: Mutex::new(Some(applier)),
            apply_ns,
            divergence,
        }))
    }

    /// Where this validator's state departed from the consortium's, if it did (then its
    /// ledger no longer applies batches).
    pub fn divergence(&self) -> Option<Divergence> {
        *self.divergence.borrow()
    }

    /// Submits a request; resolves once this validator executed it (its sequence number).
    /// The engine is held only to queue the request, not while it waits: a stop never
    /// waits for a commit that may not come (a request waiting while the consortium has no
    /// quorum ends with an error when the node stops).
    pub async fn submit(&self, request: Request) -> Result<u64> {
        let executed = {
            let guard = self.engine.read().await;
            let engine = guard.as_ref().ok_or_else(|| anyhow!("validator {} is stopped", self.id))?;
            engine.submit_nowait(request).await?
        };
        Ok(executed.await.map_err(|_| anyhow!("validator {} stopped before the request executed", self.id))??)
    }

    /// Waits until the ledger applied batch `seq`.
    pub async fn wait_applied(&self, seq: u64) -> Result<()> {
        let mut rx = self.applied.clone();
        rx.wait_for(|s| *s >= seq).await.map_err(|_| anyhow!("validator {} stopped applying", self.id))?;
        Ok(())
    }

    pub fn applied_seq(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Batches applied from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Applied>> {
        self.events.subscribe()
    }

    /// The engine's progress (view, last executed, pending), if it runs.
    pub async fn status(&self) -> Option<dualchain_consensus::engine::EngineStatus> {
        let guard = self.engine.read().await;
        guard.as_ref()?.status().await.ok()
    }

    /// The validator sets as this validator's engine knows them (`None`: stopped).
    pub async fn validator_sets(&self) -> Option<dualchain_consensus::engine::ValidatorSets> {
        let guard = self.engine.read().await;
        guard.as_ref()?.validator_sets().await.ok()
    }

    /// Stops the engine (what it acknowledged is on disk) and the applier.
    pub async fn stop(&self) -> Result<()> {
        // Tell the core first (a shared hold), so that nothing queued behind it is waited on.
        if let Some(engine) = self.engine.read().await.as_ref() {
            engine.signal_stop();
        }
        if let Some(engine) = self.engine.write().await.take() {
            engine.shutdown().await?;
        }
        let handle = self.applier.lock().map_err(|_| anyhow!("applier lock poisoned"))?.take();
        if let Some(h) = handle {
            tokio::task::spawn_blocking(move || h.join()).await?.map_err(|_| anyhow!("ledger thread panicked"))??;
        }
        Ok(())
    }
}

/// Where applied batches are announced, and state roots reported.
struct Sink {
    applied: watch::Sender<u64>,
    events: broadcast::Sender<Arc<Applied>>,
    apply_ns: Arc<AtomicU64>,
    attester: Attester,
    divergence: watch::Receiver<Option<Divergence>>,
}

/// Why the applier stopped applying.
enum Halt {
    Ledger(LedgerError),
    Diverged(Divergence),
}

impl From<LedgerError> for Halt {
    fn from(e: LedgerError) -> Self {
        Halt::Ledger(e)
    }
}

impl From<dualchain_storage::StorageError> for Halt {
    fn from(e: dualchain_storage::StorageError) -> Self {
        Halt::Ledger(e.into())
    }
}

/// Applies one committed entry and reports the state root after a checkpoint's batch.
///
/// Every request of the batch goes to the ledger, also those the consensus layer reports
/// as already executed (same client and id): the ledger's own duplicate check by
/// transaction hash decides, so a batch applied live and the same batch replayed from the
/// archive (which keeps no such list) produce identical blocks.
/// Batches whose signatures are checked ahead of the one applying.
const PRESIGNED_AHEAD: usize = 2;

/// The ledger's view of the consensus archive: a validator's blocks refer to the
/// transactions of the committed batches the archive keeps for good, so the ledger writes
/// none of them again ([`dualchain_ledger::Batches`]).
///
/// The last batch read is kept decoded: a batch's data block and access block are read one
/// after the other (a replay of the ledger, an agent's catch-up), and decoding an archived
/// entry (its certificate, its requests, the batch digest over all of them) is the cost.
pub struct ArchivedBatches {
    log: ConsensusStore,
    last: Mutex<Option<LastBatch>>,
}

/// A batch's sequence number, digest and payloads.
type LastBatch = (u64, [u8; 32], Arc<[Vec<u8>]>);

impl ArchivedBatches {
    pub fn open(store: Arc<dyn KvEngine>) -> Result<Self, LedgerError> {
        Ok(Self { log: ConsensusStore::open(store)?, last: Mutex::new(None) })
    }

    /// The payloads of the last batch decoded, if it is the one at `seq` with `digest`.
    fn cached(&self, seq: u64, digest: &[u8; 32]) -> Option<Arc<[Vec<u8>]>> {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.as_ref().filter(|(s, d, _)| (*s, d) == (seq, digest)).map(|(_, _, p)| p.clone())
    }
}

impl dualchain_ledger::Batches for ArchivedBatches {
    fn payloads(&self, seq: u64, digest: &[u8; 32]) -> Result<Arc<[Vec<u8>]>, LedgerError> {
        if let Some(payloads) = self.cached(seq, digest) {
            return Ok(payloads);
        }
        let bytes = self
            .log
            .committed(seq)?
            .ok_or_else(|| LedgerError::Corrupt(format!("batch {seq}, which a block refers to, is not archived")))?;
        let a = parse_archive(&bytes).map_err(|e| LedgerError::Corrupt(format!("archived batch {seq}: {e}")))?;
        if a.entry.batch.digest() != *digest {
            return Err(LedgerError::Corrupt(format!("archived batch {seq} has another digest than its block names")));
        }
        let payloads: Arc<[Vec<u8>]> = a.entry.batch.requests().iter().map(|r| r.payload.clone()).collect();
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((seq, *digest, payloads.clone()));
        Ok(payloads)
    }

    /// One payload, read from the batch record the archive keeps under `(seq, digest)`
    /// without decoding the rest of the batch (the ledger checks it against the
    /// transaction hash its block names). An entry archived whole, with no batch record
    /// of its own, is read through [`Self::payloads`].
    fn payload(&self, seq: u64, digest: &[u8; 32], at: u32) -> Result<Option<Vec<u8>>, LedgerError> {
        if let Some(payloads) = self.cached(seq, digest) {
            return Ok(payloads.get(at as usize).cloned());
        }
        let Some(batch) = self.log.batch(seq, digest)? else {
            return Ok(self.payloads(seq, digest)?.get(at as usize).cloned());
        };
        let payload = dualchain_consensus::message::Batch::payload_at(&batch, at as usize)
            .map_err(|e| LedgerError::Corrupt(format!("archived batch {seq}: {e}")))?;
        Ok(payload.map(<[u8]>::to_vec))
    }
}

/// A committed entry as the ledger applies it.
fn committed_of(entry: &CommittedEntry, time_ms: u64) -> Committed<'_> {
    Committed {
        seq: entry.seq,
        time_ms,
        digest: entry.batch.digest(),
        certificate: entry.certificate_bytes(),
        payloads: entry.batch.requests().iter().map(|r| r.payload.as_slice()).collect(),
        validator_changes: entry
            .batch
            .requests()
            .iter()
            .enumerate()
            .filter(|(_, r)| r.client == dualchain_consensus::membership::RECONFIGURE_CLIENT)
            .map(|(i, r)| (i, r.id))
            .collect(),
    }
}

/// A delivered batch on its way through the pipelined apply.
struct ToLedger(Delivered);

impl ToApply for ToLedger {
    fn committed(&self) -> Committed<'_> {
        committed_of(&self.0.entry, self.0.time_ms)
    }
}

fn apply_entry(
    ledger: &Ledger,
    entry: &CommittedEntry,
    time_ms: u64,
    presigned: Option<Presigned>,
    sink: &Sink,
) -> Result<(), Halt> {
    if let Some(d) = *sink.divergence.borrow() {
        return Err(Halt::Diverged(d));
    }
    let started = std::time::Instant::now();
    let applied = ledger.apply_presigned(&committed_of(entry, time_ms), presigned)?;
    sink.apply_ns.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    if let Some(applied) = applied {
        if sink.attester.wants(applied.seq) {
            // The applier is the only writer: the fingerprint is the one after this batch.
            let digest = ledger.fingerprint()?.digest();
            if !sink.attester.attest(applied.seq, digest) {
                tracing::debug!(
                    seq = applied.seq,
                    "ledger root not reported: the engine's queue is full or it stopped"
                );
            }
        }
        sink.applied.send_replace(applied.seq);
        let _ = sink.events.send(Arc::new(applied));
    }
    Ok(())
}

/// Applies archived batches up to and including `to` (all of them when `None`).
fn catch_up(ledger: &Ledger, log: &ConsensusStore, to: Option<u64>, sink: &Sink) -> Result<(), Halt> {
    let last = match (to, log.last_committed()?) {
        (Some(t), Some(l)) => t.min(l),
        (None, Some(l)) => l,
        (_, None) => return Ok(()),
    };
    loop {
        let next = ledger.applied_seq()?.map_or(1, |a| a + 1);
        if next > last {
            return Ok(());
        }
        let rows = log.committed_range(next, last + 1, CATCH_UP_CHUNK)?;
        if rows.is_empty() {
            return Err(LedgerError::NotFound(format!("archived batch {next} (the log's last is {last})")).into());
        }
        for (_, bytes) in rows {
            let a = parse_archive(&bytes).map_err(|e| LedgerError::Corrupt(format!("archived batch: {e}")))?;
            apply_entry(ledger, &a.entry, a.time_ms, None, sink)?;
        }
    }
}

fn apply_loop(
    ledger: &Ledger,
    store: Arc<dyn KvEngine>,
    delivered: &std::sync::mpsc::Receiver<(ToLedger, Option<Presigned>)>,
    sink: &Sink,
) -> Result<(), LedgerError> {
    let log = ConsensusStore::open(store)?;
    let run = || -> Result<(), Halt> {
        catch_up(ledger, &log, None, sink)?;
        while let Ok((ToLedger(d), presigned)) = delivered.recv() {
            match apply_entry(ledger, &d.entry, d.time_ms, presigned, sink) {
                Err(Halt::Ledger(LedgerError::OutOfOrder { got, .. })) => {
                    catch_up(ledger, &log, Some(got - 1), sink)?;
                    apply_entry(ledger, &d.entry, d.time_ms, None, sink)?;
                }
                other => other?,
            }
        }
        Ok(())
    };
    match run() {
        Ok(()) => Ok(()),
        Err(Halt::Ledger(e)) => Err(e),
        Err(Halt::Diverged(d)) => {
            let f = ledger.fingerprint()?;
            tracing::error!(
                checkpoint = d.seq,
                applied = ?f.applied_seq,
                data_height = ?f.data_tip.map(|t| t.height),
                access_height = ?f.access_tip.map(|t| t.height),
                own_root = %hex::encode(d.own),
                quorum_root = %hex::encode(d.quorum),
                "ledger.halted: the state root after batch {} differs from the consortium's; this ledger applies \
                 nothing more (replace it with a healthy validator's copy and restart)",
                d.seq
            );
            // The engine goes on ordering and archiving; what it delivers is not applied.
            while delivered.recv().is_ok() {}
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualchain_consensus::message::Batch;
    use dualchain_consensus::replica::split_archive;
    use dualchain_ledger::Batches as _;
    use dualchain_storage::consensus::LogWrite;

    /// One payload is read from the archive's batch record, the same bytes the whole
    /// batch holds; past the batch's end there is none; another digest or a damaged
    /// record is refused by name, never served.
    #[test]
    fn one_payload_is_read_from_the_archived_batch_without_the_rest() {
        let engine: Arc<dyn KvEngine> = Arc::new(dualchain_storage::memory::MemoryEngine::new());
        let log = ConsensusStore::open(engine.clone()).unwrap();
        let requests: Vec<Request> =
            (0..5u8).map(|i| Request { client: 7, id: i.into(), payload: vec![i; 10 + usize::from(i)] }).collect();
        let batch = Arc::new(Batch::with_time(1_000, requests.clone()));
        let entry = CommittedEntry { seq: 3, view: 0, batch: batch.clone(), certificate: Vec::new() };
        let digest = batch.digest();
        log.write(&LogWrite {
            batches: vec![(3, digest, batch.encoded().to_vec())],
            committed: vec![(3, split_archive(&[0; 32], 1_000, &entry))],
            ..LogWrite::default()
        })
        .unwrap();

        let archive = ArchivedBatches::open(engine.clone()).unwrap();
        for (i, r) in requests.iter().enumerate() {
            assert_eq!(archive.payload(3, &digest, i as u32).unwrap().as_deref(), Some(&r.payload[..]));
        }
        assert_eq!(archive.payload(3, &digest, 5).unwrap(), None);
        let whole = archive.payloads(3, &digest).unwrap();
        assert_eq!(
            whole.iter().map(Vec::as_slice).collect::<Vec<_>>(),
            requests.iter().map(|r| &r.payload[..]).collect::<Vec<_>>()
        );
        // Now from the decoded batch it keeps: the same.
        assert_eq!(archive.payload(3, &digest, 4).unwrap().as_deref(), Some(&requests[4].payload[..]));

        let fresh = ArchivedBatches::open(engine.clone()).unwrap();
        let err = fresh.payload(3, &[9; 32], 0).unwrap_err();
        assert!(matches!(&err, LedgerError::Corrupt(m) if m.contains("another digest")), "{err}");
        let err = fresh.payload(4, &digest, 0).unwrap_err();
        assert!(matches!(&err, LedgerError::Corrupt(m) if m.contains("not archived")), "{err}");
        // A batch record cut short: named, not read past.
        let cut = batch.encoded()[..batch.encoded().len() - 3].to_vec();
        log.write(&LogWrite { batches: vec![(3, digest, cut)], ..LogWrite::default() }).unwrap();
        let err = fresh.payload(3, &digest, 4).unwrap_err();
        assert!(matches!(&err, LedgerError::Corrupt(m) if m.contains("archived batch 3")), "{err}");
        assert_eq!(fresh.payload(3, &digest, 0).unwrap().as_deref(), Some(&requests[0].payload[..]));
    }
}
