//! The executor: one committed PBFT batch in, at most one block per chain and the contract
//! state changes out, all persisted in one atomic commit.
//!
//! Order of work for a batch:
//! 1. decode every payload (bounded; undecodable bytes are recorded with the reason) and
//!    drop duplicates of transactions already on the ledger or earlier in the batch
//!    (recorded, not indexed again);
//! 2. check signatures against the state the previous batch left, derive the public
//!    inputs of every proof from that state, and verify all proofs in one batch per
//!    circuit (coefficients drawn from the batch digest: every validator agrees);
//! 3. execute the transactions in order through the contracts, each checked again against
//!    the state as it evolves (membership, revocation, certificate expiry at ledger time,
//!    signature);
//! 4. build the data block and the access block (cross-linked, carrying the commit
//!    certificate and the Merkle root of their entries) and write blocks, transaction
//!    index, state and the applied sequence number at once.
//!
//! A storage failure poisons the ledger (the in-memory credential tree may be ahead of the
//! store): it must be reopened, and then resumes from the store's applied sequence number.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use blstrs::{Bls12, Scalar as Fr};
use dualchain_crypto::cert::Certificate;
use dualchain_crypto::sign::PublicKey;
use dualchain_crypto::Codec;
use dualchain_prover::backend::MillerBackend;
use dualchain_prover::policy::{CredentialTree, MerklePath};
use dualchain_prover::verify::{proof_from_bytes, BatchVerifier, VerifyError};
use dualchain_storage::ledger::{BlockRef, Chain, CommittedBatch, LedgerStore, StoredBlock, TxLocation};
use dualchain_storage::KvEngine;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sha2::{Digest as _, Sha256};

use crate::block::{self, Block, BlockHeader, Entry, EntryRef, InclusionProof, BLOCK_VERSION};
use crate::contracts::zk::{self, Circuit};
use crate::contracts::{self, anonymous, registry, Ctx, Refusal};
use crate::error::LedgerError;
use crate::genesis::Genesis;
use crate::merkle;
use crate::reason::{ProofFault, Reason};
use crate::state::{self, AccessRecord, DatasetRecord, DemandRecord, DenialRecord, GrantRecord, MemberRecord};
use crate::state::{BreakGlassRecord, Overlay, RegistryRecord};
use crate::tx::{pseudonym_key, tx_hash, FrBytes, Hash, Outcome, SignedTx, Tx, TxDecodeError, TxDomain, TxKind};

/// A committed batch as the consensus layer delivers it.
pub struct Committed<'a> {
    pub seq: u64,
    /// Agreed ledger time (UNIX ms).
    pub time_ms: u64,
    pub digest: [u8; 32],
    /// The encoded commit certificate.
    pub certificate: Vec<u8>,
    /// Every request payload of the batch, in order.
    pub payloads: Vec<&'a [u8]>,
    /// Payloads that are consensus' own requests, not transactions: validator set changes,
    /// by index into `payloads`, with the epoch each would start. Consensus checks and
    /// decides them where it executes them (the validator sets are consensus' state, shown
    /// by `GET /validators`); the ledger records each as
    /// [`Outcome::ValidatorSetChange`], so that the chain shows when a change was ordered.
    pub validator_changes: Vec<(usize, u64)>,
}

/// Where the transactions of a ledger's blocks are read from: a block refers to the
/// transactions of its committed batch by position ([`crate::block`]).
///
/// A validator's ledger reads them from its consensus archive, which keeps every
/// committed batch for good (`node/src/validator.rs`), so it writes no transaction
/// itself. A ledger opened without one ([`Ledger::open`]) keeps each batch's payloads
/// once, in its own store, beside the blocks.
pub trait Batches: Send + Sync {
    /// The payloads of the batch committed at `seq`, in order; an error if none is held
    /// or the one held does not have `digest`. Shared, so that a source may hand the same
    /// decoded batch to both chains' blocks of a batch without decoding or copying it
    /// again.
    fn payloads(&self, seq: u64, digest: &Hash) -> Result<Arc<[Vec<u8>]>, LedgerError>;

    /// The payload at position `at` of the batch committed at `seq` (`None` past the
    /// batch's end), with the errors of [`Batches::payloads`]: what reading one
    /// transaction needs. By default through [`Batches::payloads`]; a source that can
    /// read one payload without decoding its whole batch does so.
    fn payload(&self, seq: u64, digest: &Hash, at: u32) -> Result<Option<Vec<u8>>, LedgerError> {
        Ok(self.payloads(seq, digest)?.get(at as usize).cloned())
    }
}

/// One transaction as applied.
#[derive(Debug, Clone)]
pub struct AppliedTx {
    pub hash: Hash,
    pub chain: Chain,
    /// `None` for bytes that did not decode.
    pub tx: Option<Tx>,
    pub outcome: Outcome,
    /// The text of the error behind a refusal's code, if there is one (this replica's
    /// words, kept beside the block: see [`crate::reason`]).
    pub detail: Option<String>,
}

/// What a batch added to the ledger.
#[derive(Debug, Clone)]
pub struct Applied {
    pub seq: u64,
    pub time_ms: u64,
    pub data: Option<BlockRef>,
    pub access: Option<BlockRef>,
    pub txs: Vec<AppliedTx>,
    /// The state root after the batch (carried by its blocks).
    pub state_root: Hash,
}

/// A height per chain (data, access): where reading the ledger starts next.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Heights {
    pub data: u64,
    pub access: u64,
}

impl Heights {
    pub fn of(&self, chain: Chain) -> u64 {
        match chain {
            Chain::Data => self.data,
            Chain::Access => self.access,
        }
    }

    /// Moves the height of `chain` up to `height` (never down).
    pub fn raise(&mut self, chain: Chain, height: u64) {
        let h = match chain {
            Chain::Data => &mut self.data,
            Chain::Access => &mut self.access,
        };
        *h = (*h).max(height);
    }

    /// Past the blocks a batch added.
    pub fn after(&mut self, applied: &Applied) {
        if let Some(b) = applied.data {
            self.raise(Chain::Data, b.height + 1);
        }
        if let Some(b) = applied.access {
            self.raise(Chain::Access, b.height + 1);
        }
    }
}

/// The ledger of one validator.
pub struct Ledger {
    store: LedgerStore,
    genesis: Genesis,
    /// What members' transactions are signed under ([`Genesis::tx_domain`]).
    tx_domain: TxDomain,
    verifiers: BTreeMap<Circuit, Arc<BatchVerifier>>,
    inner: Mutex<Inner>,
    /// Members' signing keys, decoded ([`Ledger::member_key`]).
    keys: Mutex<HashMap<[u8; 32], PublicKey>>,
    /// Where blocks' transactions are read from; `None`: this ledger keeps them.
    batches: Option<Arc<dyn Batches>>,
}

/// Decoded member keys kept at most; the cache is emptied when it is full. Each costs
/// under 200 bytes.
const KEY_CACHE_MAX: usize = 16_384;

struct Inner {
    tree: CredentialTree,
    poisoned: bool,
}

impl Ledger {
    /// Opens the ledger over `engine` (rebuilding the credential tree from its leaves).
    ///
    /// `miller` runs the Miller loops of batch proof verification: the CPU
    /// ([`dualchain_prover::backend::CpuBackend`]) or whatever GPU backend the node's
    /// assembler opened. Every backend reaches the same verdicts.
    pub fn open(
        engine: Arc<dyn KvEngine>,
        genesis: Genesis,
        miller: Arc<dyn MillerBackend>,
    ) -> Result<Self, LedgerError> {
        let store = LedgerStore::open(engine)?;
        let mut verifiers = BTreeMap::new();
        let verifier = |vk| Arc::new(BatchVerifier::new(vk).with_miller(miller.clone()));
        verifiers.insert(Circuit::Policy, verifier(&genesis.policy_vk));
        for (shape, vk) in &genesis.supply_vks {
            verifiers.insert(Circuit::Supply(*shape), verifier(vk));
        }
        if let Some(a) = &genesis.anonymous {
            verifiers.insert(Circuit::AnonymousPolicy, verifier(&a.vk));
            verifiers.insert(Circuit::DemandNullifier, verifier(&a.demand_nullifier_vk));
        }
        let tree = load_tree(&store)?;
        let tx_domain = genesis.tx_domain();
        Ok(Self {
            store,
            genesis,
            tx_domain,
            verifiers,
            inner: Mutex::new(Inner { tree, poisoned: false }),
            keys: Mutex::new(HashMap::new()),
            batches: None,
        })
    }

    /// Reads the transactions of its blocks from `batches` instead of keeping them: for a
    /// ledger beside a consensus archive that holds every batch it applies.
    pub fn with_batches(mut self, batches: Arc<dyn Batches>) -> Self {
        self.batches = Some(batches);
        self
    }

    /// The payloads of the committed batch a block refers to.
    fn batch_payloads(&self, seq: u64, digest: &Hash) -> Result<Arc<[Vec<u8>]>, LedgerError> {
        if let Some(b) = &self.batches {
            return b.payloads(seq, digest);
        }
        block::decode_kept_batch(seq, digest, &self.kept_batch(seq)?).map(Arc::from)
    }

    /// The payload at `at` of the committed batch a block refers to.
    fn batch_payload(&self, seq: u64, digest: &Hash, at: u32) -> Result<Option<Vec<u8>>, LedgerError> {
        if let Some(b) = &self.batches {
            return b.payload(seq, digest, at);
        }
        block::kept_batch_payload(seq, digest, &self.kept_batch(seq)?, at)
    }

    /// The record of the batch at `seq` this ledger keeps itself (no source beside it).
    fn kept_batch(&self, seq: u64) -> Result<Vec<u8>, LedgerError> {
        self.store
            .batch(seq)?
            .ok_or_else(|| LedgerError::Corrupt(format!("batch {seq}, which a block refers to, is not kept")))
    }

    /// A stored block, opened with the transactions of its batch.
    fn open_block(&self, stored: &StoredBlock) -> Result<Block, LedgerError> {
        Block::open(stored, |seq, digest| self.batch_payloads(seq, digest))
    }

    /// A member's signing key as the state stores it, decoded (`None`: not a valid key).
    /// Decoding (a point decompression and a small-order check) costs about a third of a
    /// strict signature check, and the same few members sign most transactions, so decoded
    /// keys are kept, up to [`KEY_CACHE_MAX`]. One-time keys (pseudonyms) are not kept.
    pub fn member_key(&self, raw: &[u8; 32]) -> Option<PublicKey> {
        if let Some(key) = self.keys.lock().unwrap_or_else(|p| p.into_inner()).get(raw) {
            return Some(*key);
        }
        let key = PublicKey::from_raw(raw).ok()?;
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= KEY_CACHE_MAX {
            keys.clear();
        }
        keys.insert(*raw, key);
        Some(key)
    }

    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// What this consortium's members sign their transactions under.
    pub fn tx_domain(&self) -> &TxDomain {
        &self.tx_domain
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn applied_seq(&self) -> Result<Option<u64>, LedgerError> {
        Ok(self.store.applied_seq()?)
    }

    /// Applies a committed batch. Returns `None` for a batch already applied (replays after
    /// a restart are harmless); a gap in sequence numbers is an error.
    pub fn apply(&self, c: &Committed<'_>) -> Result<Option<Applied>, LedgerError> {
        self.apply_presigned(c, None)
    }

    /// Step 1's decoding and step 2's signature checks for `c`, ahead of its apply: every
    /// payload hashed and decoded, and every decodable transaction's signature checked
    /// under the key the state holds for its sender now, in parallel. A validator runs
    /// this for the next batches while the current one executes ([`Ledger::presign_ahead`]:
    /// a pipelined apply, the checks, most of the work, overlapping execution and the store
    /// write). The state may then be a batch or more behind; that changes no decision,
    /// because execution uses a verdict only while the sender's key is still the one it was
    /// checked under, and checks again otherwise (a renewal in between), or where there is
    /// none (a member registered in between). Takes no lock: it reads committed state only.
    pub fn presign(&self, c: &Committed<'_>) -> Result<Presigned, LedgerError> {
        let decoded = decode_payloads(c);
        let verdicts = self.verify_signatures(decoded.iter().enumerate().filter_map(|(i, d)| match &d.tx {
            Some(Ok(stx)) => Some((i, stx)),
            _ => None,
        }))?;
        Ok(Presigned { digest: c.digest, decoded, verdicts })
    }

    /// The pipelined apply's first stage: a thread (named `name`) that takes each batch
    /// from `next` in order, runs [`Ledger::presign`] on it unless `skip` says not to (a
    /// ledger that applies nothing more), and hands both on, at most `depth` batches ahead
    /// of the applier reading the returned queue. A failed check hands the batch on
    /// unchecked: the applier then checks in place and reports the error. The thread ends
    /// when `next` does or when the queue's reader is dropped.
    pub fn presign_ahead<B: ToApply>(
        self: &Arc<Self>,
        name: String,
        depth: usize,
        mut next: impl FnMut() -> Option<B> + Send + 'static,
        skip: impl Fn() -> bool + Send + 'static,
    ) -> std::io::Result<std::sync::mpsc::Receiver<(B, Option<Presigned>)>> {
        let (ahead, queue) = std::sync::mpsc::sync_channel(depth);
        let ledger = self.clone();
        std::thread::Builder::new().name(name).spawn(move || {
            while let Some(batch) = next() {
                let presigned = if skip() { None } else { ledger.presign(&batch.committed()).ok() };
                if ahead.send((batch, presigned)).is_err() {
                    return; // the applier stopped
                }
            }
        })?;
        Ok(queue)
    }

    /// [`Ledger::apply`] with the signature checks [`Ledger::presign`] made ahead for this
    /// batch (ignored if they were made for another), or made here (`None`). Either way
    /// the outcomes, blocks and state are the same.
    pub fn apply_presigned(&self, c: &Committed<'_>, ahead: Option<Presigned>) -> Result<Option<Applied>, LedgerError> {
        let mut inner = self.inner();
        if inner.poisoned {
            return Err(LedgerError::Poisoned);
        }
        let applied = self.store.applied_seq()?;
        if applied.is_some_and(|a| c.seq <= a) {
            return Ok(None);
        }
        let expected = applied.map_or(1, |a| a + 1);
        if c.seq != expected {
            return Err(LedgerError::OutOfOrder { expected, got: c.seq });
        }
        let snapshot = inner.tree.clone();
        match self.execute(&mut inner.tree, c, ahead.filter(|p| p.digest == c.digest)) {
            Ok(a) => Ok(Some(a)),
            Err(e) => {
                inner.tree = snapshot;
                if matches!(e, LedgerError::Storage(_)) {
                    inner.poisoned = true;
                }
                Err(e)
            }
        }
    }

    fn execute(
        &self,
        tree: &mut CredentialTree,
        c: &Committed<'_>,
        presigned: Option<Presigned>,
    ) -> Result<Applied, LedgerError> {
        // 1. Decode (here, or ahead: see `presign`) and de-duplicate.
        let (decoded, ahead) = match presigned {
            Some(p) => (p.decoded, Some(p.verdicts)),
            None => (decode_payloads(c), None),
        };
        let items = self.decode_items(c, decoded)?;

        // 2. Signatures and proofs against the previous state: every sender's signature
        // under the key the previous state holds for it, in parallel (or as checked ahead,
        // against a state as old or older: see `presign`); proofs in one batch each.
        let signatures = match ahead {
            Some(s) => s,
            None => self.verify_signatures(items.iter().enumerate().filter_map(|(i, item)| {
                match (&item.early, &item.tx) {
                    (None, Some(stx)) => Some((i, stx)),
                    _ => None,
                }
            }))?,
        };
        let verdicts = self.verify_proofs(c, &items, &signatures)?;

        // 3. Execute in order.
        let mut overlay = Overlay::new(&self.store);
        let mut outcomes = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let outcome = match (item.change, &item.early, &item.tx) {
                (Some(epoch), _, _) => (Outcome::ValidatorSetChange { epoch }, None),
                (None, Some((reason, detail)), _) => (Outcome::Rejected { reason: reason.clone() }, detail.clone()),
                (None, None, Some(stx)) => {
                    let ahead = Ahead { proof: verdicts.get(&i).copied(), signature: signatures.get(&i).copied() };
                    self.run(&mut overlay, tree, c, item.hash, stx, ahead)?
                }
                (None, None, None) => unreachable!("an item without a transaction has its early reason"),
            };
            outcomes.push(outcome);
        }

        // 4. Blocks, index, state, all at once.
        self.persist(c, items, outcomes, overlay)
    }

    /// Step 1: every payload decoded ([`decode_payloads`]; undecodable bytes are recorded
    /// with the reason, as the batch holds them) and duplicates marked.
    fn decode_items(&self, c: &Committed<'_>, decoded: Vec<Decoded>) -> Result<Vec<Item>, LedgerError> {
        let mut seen = HashSet::new();
        let mut items: Vec<Item> = Vec::with_capacity(decoded.len());
        for (i, Decoded { hash, tx }) in decoded.into_iter().enumerate() {
            let item = match tx {
                None => {
                    let epoch = c.validator_changes.iter().find(|(at, _)| *at == i).map(|(_, e)| *e);
                    let duplicate = !seen.insert(hash) || self.store.tx(&hash)?.is_some();
                    Item { hash, tx: None, early: None, duplicate, change: epoch }
                }
                Some(Err(e)) => {
                    let early = Some((Reason::Undecodable { part: e.part }, Some(e.detail)));
                    Item { hash, tx: None, early, duplicate: false, change: None }
                }
                Some(Ok(stx)) => {
                    let duplicate = !seen.insert(hash) || self.store.tx(&hash)?.is_some();
                    let early = duplicate.then_some((Reason::Duplicate, None));
                    Item { hash, tx: Some(stx), early, duplicate, change: None }
                }
            };
            items.push(item);
        }
        Ok(items)
    }

    /// Step 4: the block of each chain that received transactions (cross-linked, with the
    /// commit certificate), the transaction index and the state changes, in one commit.
    fn persist(
        &self,
        c: &Committed<'_>,
        items: Vec<Item>,
        outcomes: Vec<(Outcome, Option<String>)>,
        overlay: Overlay<'_>,
    ) -> Result<Applied, LedgerError> {
        // Per chain: the entries, the hash to index for each (none for a duplicate, whose
        // first occurrence stays indexed) and the notes.
        let mut per_chain: [ChainParts; 2] = Default::default();
        let mut applied_txs = Vec::with_capacity(items.len());
        for (at, (item, (outcome, detail))) in items.into_iter().zip(outcomes).enumerate() {
            let chain = item.tx.as_ref().map_or(Chain::Access, |t| t.tx.kind.chain());
            let (entries, hashes, notes) = &mut per_chain[chain_index(chain)];
            if let Some(d) = &detail {
                notes.insert(entries.len() as u32, d.clone());
            }
            entries.push(EntryRef { at: at as u32, tx_hash: item.hash, outcome: outcome.clone() });
            hashes.push((!item.duplicate).then_some(item.hash));
            applied_txs.push(AppliedTx { hash: item.hash, chain, tx: item.tx.map(|t| t.tx), outcome, detail });
        }
        let writes = overlay.into_writes();
        let state_root = state::next_state_root(&self.state_root()?, &writes);
        let data_tip = self.store.tip(Chain::Data)?;
        let access_tip = self.store.tip(Chain::Access)?;
        let mut index = Vec::new();
        let mut make = |chain: Chain, tip: Option<BlockRef>, cross: Option<BlockRef>| -> Result<_, LedgerError> {
            let (entries, hashes, notes) = &per_chain[chain_index(chain)];
            if entries.is_empty() {
                return Ok(None);
            }
            let height = tip.map_or(0, |t| t.height + 1);
            let leaves: Vec<Hash> = entries.iter().map(EntryRef::leaf).collect();
            let header = BlockHeader {
                version: BLOCK_VERSION,
                chain: chain.into(),
                seq: c.seq,
                time_ms: c.time_ms,
                batch_digest: c.digest,
                entries_root: merkle::root(&leaves),
                entries: entries.len() as u32,
                state_root,
            };
            for (position, hash) in hashes.iter().enumerate() {
                if let Some(h) = hash {
                    index.push((*h, TxLocation { chain, height, position: position as u32 }));
                }
            }
            let stored = Block::seal(
                height,
                tip.map_or([0; 32], |t| t.hash),
                cross.unwrap_or_default(),
                &header,
                entries,
                c.certificate.clone(),
                notes,
            )?;
            Ok(Some(stored))
        };
        let data_block = make(Chain::Data, data_tip, access_tip)?;
        let data_ref = data_block.as_ref().map(|b| BlockRef { height: b.height, hash: b.hash }).or(data_tip);
        let access_block = make(Chain::Access, access_tip, data_ref)?;
        let access_ref = access_block.as_ref().map(|b| BlockRef { height: b.height, hash: b.hash });
        let data_new = data_block.as_ref().map(|b| BlockRef { height: b.height, hash: b.hash });
        // The transactions the blocks refer to: kept here only where no archive holds them.
        let kept = (self.batches.is_none() && (data_block.is_some() || access_block.is_some()))
            .then(|| block::encode_kept_batch(&c.digest, &c.payloads));
        self.store.apply(&CommittedBatch {
            seq: c.seq,
            batch: kept,
            data_block,
            access_block,
            txs: index,
            state: writes,
            state_root: Some(state_root),
        })?;
        Ok(Applied { seq: c.seq, time_ms: c.time_ms, data: data_new, access: access_ref, txs: applied_txs, state_root })
    }

    /// Step 2, signatures: for each transaction from a member the previous state holds (all
    /// but registrations), the member's key then and whether the signature verifies under
    /// it. Strict single verification (the same decision at every node, unlike the batch
    /// equation), spread over the cores: the apply path keeps up with ordering. Execution
    /// uses a verdict only while the member's key is still the one it was checked
    /// against (a renewal earlier in the batch may change it), else verifies again.
    fn verify_signatures<'t>(
        &self,
        txs: impl Iterator<Item = (usize, &'t SignedTx)>,
    ) -> Result<HashMap<usize, Verdict>, LedgerError> {
        use rayon::prelude::*;
        let pre = Overlay::new(&self.store);
        let mut keyed = Vec::new();
        for (i, stx) in txs {
            if matches!(stx.tx.kind, TxKind::RegisterMember { .. }) {
                continue;
            }
            // A pseudonym is its own key, decoded once here.
            if let Some(key) = pseudonym_key(&stx.tx.sender) {
                if let Ok(key) = key {
                    keyed.push((i, *key.as_bytes(), Some(key), stx));
                }
                continue;
            }
            let Some(m) = pre.get::<MemberRecord>(&state::member_key(&stx.tx.sender))? else { continue };
            keyed.push((i, m.signing_key, None, stx));
        }
        // A member's key is decoded once and kept ([`Ledger::member_key`]); the checks run
        // in parallel. An undecodable stored key gets no verdict here (execution says why).
        let domain = &self.tx_domain;
        Ok(keyed
            .into_par_iter()
            .filter_map(|(i, raw, decoded, stx)| {
                let key = decoded.or_else(|| self.member_key(&raw))?;
                Some((i, (raw, stx.verify(&key, domain))))
            })
            .collect())
    }

    /// Step 2: verdicts for every proof-carrying transaction whose signature checks out
    /// against the previous state and that passes the cheap checks (see [`zk`]), within
    /// each member's budget.
    fn verify_proofs(
        &self,
        c: &Committed<'_>,
        items: &[Item],
        signatures: &HashMap<usize, Verdict>,
    ) -> Result<HashMap<usize, Result<(), ProofFault>>, LedgerError> {
        let pre = Overlay::new(&self.store);
        let mut groups: BTreeMap<Circuit, Vec<ProofItem>> = BTreeMap::new();
        let mut verdicts = HashMap::new();
        let mut budget: HashMap<String, usize> = HashMap::new();
        // Members renewing their certificate in this batch may change role and validity
        // before their proofs run: only the signature filter applies to them (the budget too).
        let renewing: HashSet<&str> = items
            .iter()
            .filter_map(|it| it.tx.as_ref())
            .filter(|s| matches!(s.tx.kind, TxKind::RegisterMember { .. }))
            .map(|s| s.tx.sender.as_str())
            .collect();
        let mut anonymous = 0usize;
        for (i, item) in items.iter().enumerate() {
            let (None, Some(stx)) = (&item.early, &item.tx) else { continue };
            if let TxKind::AnonymousDemand(d) = &stx.tx.kind {
                // From a pseudonym, signed by its key, worth it, within the batch's budget.
                let Some(Ok(key)) = pseudonym_key(&stx.tx.sender) else { continue };
                if !signature_holds(signatures.get(&i), key.as_bytes(), stx, &self.tx_domain).unwrap_or(false)
                    || !anonymous::worth_verifying(&pre, &stx.tx.sender, d)?
                {
                    continue;
                }
                let Some((circuit, inputs)) = zk::public_inputs(&pre, &self.genesis, c.time_ms, &stx.tx)? else {
                    continue;
                };
                anonymous += 1;
                if anonymous > anonymous::ANONYMOUS_PROOFS_PER_BATCH_MAX {
                    verdicts.insert(i, Err(ProofFault::OverBudget { max: anonymous::ANONYMOUS_PROOFS_PER_BATCH_MAX }));
                    continue;
                }
                match proof_from_bytes(&d.proof) {
                    Ok(p) => groups.entry(circuit).or_default().push((i, p, inputs)),
                    Err(_) => {
                        verdicts.insert(i, Err(ProofFault::Undecodable));
                    }
                }
                continue;
            }
            let proof = match &stx.tx.kind {
                TxKind::SupplyProof { proof, .. } | TxKind::RequestAccess { proof, .. } => proof,
                TxKind::Demand { nullifier: Some(n), .. } => &n.proof,
                _ => continue,
            };
            // The cheap checks first; each `continue` is a transaction that `run` or its
            // contract refuses before it reads a verdict.
            let Some(m) = pre.get::<MemberRecord>(&state::member_key(&stx.tx.sender))? else { continue };
            let renews = renewing.contains(m.id.as_str());
            if m.revoked.is_some() || (!renews && c.time_ms / 1000 > m.not_after) {
                continue;
            }
            if !signature_holds(signatures.get(&i), &m.signing_key, stx, &self.tx_domain).unwrap_or(false)
                || (!renews && !zk::worth_verifying(&pre, &self.genesis, &m, &stx.tx)?)
            {
                continue;
            }
            let Some((circuit, inputs)) = zk::public_inputs(&pre, &self.genesis, c.time_ms, &stx.tx)? else { continue };
            let spent = budget.entry(m.id.clone()).or_insert(0usize);
            *spent += 1;
            if *spent > zk::PROOFS_PER_MEMBER_MAX {
                verdicts.insert(i, Err(ProofFault::OverBudget { max: zk::PROOFS_PER_MEMBER_MAX }));
                continue;
            }
            match proof_from_bytes(proof) {
                Ok(p) => groups.entry(circuit).or_default().push((i, p, inputs)),
                Err(_) => {
                    verdicts.insert(i, Err(ProofFault::Undecodable));
                }
            }
        }
        let seed: [u8; 32] = Sha256::new()
            .chain_update(b"dualchain/v1/zk-batch")
            .chain_update(c.seq.to_be_bytes())
            .chain_update(c.digest)
            .finalize()
            .into();
        let mut rng = ChaCha20Rng::from_seed(seed);
        for (circuit, group) in groups {
            let Some(verifier) = self.verifiers.get(&circuit) else {
                for (i, _, _) in group {
                    verdicts.insert(i, Err(ProofFault::NoVerifyingKey));
                }
                continue;
            };
            let proofs: Vec<_> = group.iter().map(|(_, p, _)| p.clone()).collect();
            let inputs: Vec<_> = group.iter().map(|(_, _, x)| x.clone()).collect();
            let bad: HashSet<usize> = match verifier.verify(&proofs, &inputs, &mut rng) {
                Ok(()) => HashSet::new(),
                Err(VerifyError::BadProofs(b)) => b.into_iter().collect(),
                Err(_) => {
                    for (i, _, _) in &group {
                        verdicts.insert(*i, Err(ProofFault::StatementShape));
                    }
                    continue;
                }
            };
            for (k, (i, _, _)) in group.iter().enumerate() {
                let v = if bad.contains(&k) { Err(ProofFault::Invalid) } else { Ok(()) };
                verdicts.insert(*i, v);
            }
        }
        Ok(verdicts)
    }

    /// Step 3 for one transaction: sender checks, then its contract.
    fn run(
        &self,
        overlay: &mut Overlay<'_>,
        tree: &mut CredentialTree,
        c: &Committed<'_>,
        hash: Hash,
        stx: &SignedTx,
        ahead: Ahead,
    ) -> Result<(Outcome, Option<String>), LedgerError> {
        let tx = &stx.tx;
        let rejected = |reason: Reason| Ok((Outcome::Rejected { reason }, None));
        let sender = if let TxKind::RegisterMember { certificate } = &tx.kind {
            match Certificate::from_bytes(certificate) {
                Ok(cert) if cert.fields.subject != tx.sender => {
                    return rejected(Reason::CertificateOfOther {
                        subject: cert.fields.subject.clone(),
                        sender: tx.sender.clone(),
                    })
                }
                Ok(cert) if !stx.verify(&cert.fields.signing_key, &self.tx_domain) => {
                    return rejected(Reason::BadSignature)
                }
                Ok(_) => None,
                Err(e) => {
                    return Ok((Outcome::Rejected { reason: Reason::CertificateUndecodable }, Some(e.to_string())))
                }
            }
        } else if let Some(key) = pseudonym_key(&tx.sender) {
            let key = match key {
                Ok(k) => k,
                Err(e) => return Ok((Outcome::Rejected { reason: Reason::PseudonymInvalid }, Some(e))),
            };
            if !signature_holds(ahead.signature.as_ref(), key.as_bytes(), stx, &self.tx_domain).unwrap_or(false) {
                return rejected(Reason::BadSignature);
            }
            match &tx.kind {
                TxKind::AnonymousDemand(_) => {}
                TxKind::RequestAccess { .. } | TxKind::RevokeGrant { .. } => {
                    if overlay.get::<state::PseudonymRecord>(&state::pseudonym_key(&tx.sender))?.is_none() {
                        return rejected(Reason::UnknownPseudonym);
                    }
                }
                _ => return rejected(Reason::PseudonymNotAllowed),
            }
            None
        } else {
            let Some(m) = overlay.get::<MemberRecord>(&state::member_key(&tx.sender))? else {
                return rejected(Reason::UnknownMember { member: tx.sender.clone() });
            };
            if let Some(r) = &m.revoked {
                return rejected(Reason::MemberRevoked { member: m.id.clone(), revocation: r.clone() });
            }
            if c.time_ms / 1000 > m.not_after {
                return rejected(Reason::CertificateExpired { member: m.id.clone() });
            }
            let Some(verified) = signature_holds(ahead.signature.as_ref(), &m.signing_key, stx, &self.tx_domain) else {
                return Err(LedgerError::Corrupt(format!("member {} has an invalid stored key", m.id)));
            };
            if !verified {
                return rejected(Reason::BadSignature);
            }
            Some(m)
        };
        let mut ctx = Ctx {
            state: overlay,
            genesis: &self.genesis,
            tree,
            seq: c.seq,
            time_ms: c.time_ms,
            tx_hash: hash,
            sender: sender.as_ref(),
            pseudonym: pseudonym_key(&tx.sender).map(|_| tx.sender.as_str()),
            proof_verdict: ahead.proof,
        };
        match contracts::dispatch(&mut ctx, &tx.kind) {
            Ok(()) => Ok((Outcome::Accepted, None)),
            Err(Refusal::Rejected { reason, detail }) => Ok((Outcome::Rejected { reason }, detail)),
            Err(Refusal::Denied(reason)) => Ok((Outcome::Rejected { reason }, None)),
            Err(Refusal::Fatal(e)) => Err(e),
        }
    }

    // ---- queries -------------------------------------------------------------------

    pub fn tip(&self, chain: Chain) -> Result<Option<BlockRef>, LedgerError> {
        Ok(self.store.tip(chain)?)
    }

    pub fn block(&self, chain: Chain, height: u64) -> Result<Option<Block>, LedgerError> {
        self.store.block(chain, height)?.as_ref().map(|b| self.open_block(b)).transpose()
    }

    /// The accepted transactions (hash, body) of the blocks from `from` on, data chain then
    /// access chain, oldest first, and the heights that follow the blocks read (where the
    /// next call starts). Chains start at height 0: from `Heights::default()` this is the
    /// whole ledger, as a node's agents replay it at start.
    pub fn accepted_txs_since(&self, from: Heights) -> Result<(Vec<(Hash, Tx)>, Heights), LedgerError> {
        let mut out = Vec::new();
        let mut next = from;
        for chain in [Chain::Data, Chain::Access] {
            let Some(tip) = self.tip(chain)? else { continue };
            for height in from.of(chain)..=tip.height {
                let block = self.block(chain, height)?.ok_or_else(|| {
                    LedgerError::Corrupt(format!("{chain:?} block {height} is missing below the tip"))
                })?;
                for e in block.entries.iter().filter(|e| e.outcome.is_accepted()) {
                    out.push((e.hash(), SignedTx::from_bytes(&e.tx)?.tx));
                }
            }
            next.raise(chain, tip.height + 1);
        }
        Ok((out, next))
    }

    fn get<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, LedgerError> {
        self.store.state(key)?.map(|v| state::decode(key, &v)).transpose()
    }

    pub fn member(&self, id: &str) -> Result<Option<MemberRecord>, LedgerError> {
        self.get(&state::member_key(id))
    }
    /// The approvals of revoking `member`, open or complete (`registry::revoke_member`).
    pub fn revocation(&self, member: &str) -> Result<Option<state::RevocationRecord>, LedgerError> {
        self.get(&state::revocation_key(member))
    }
    /// The admission of `member`, a member not named at genesis: its certificate and the
    /// approvals, open or complete (`registry::admit_member`).
    pub fn admission(&self, member: &str) -> Result<Option<state::AdmissionRecord>, LedgerError> {
        self.get(&state::admission_key(member))
    }
    /// `member`'s active credential, its leaf in the credential tree (none when it has
    /// none, or it was withdrawn).
    pub fn active_credential(&self, member: &str) -> Result<Option<FrBytes>, LedgerError> {
        match self.member(member)? {
            Some(MemberRecord { credential: Some(index), credential_revoked: None, .. }) => {
                self.get(&crate::contracts::registry::leaf_key(index))
            }
            _ => Ok(None),
        }
    }
    /// The consortium parameters in effect (genesis', or the last change the membership
    /// quorum approved) and the record of that change.
    pub fn parameters(&self) -> Result<(state::Parameters, Option<state::ParametersRecord>), LedgerError> {
        let record: Option<state::ParametersRecord> = self.get(state::PARAMETERS_KEY)?;
        Ok((record.as_ref().map_or_else(|| self.genesis.parameters(), |r| r.parameters), record))
    }
    /// The approvals of the parameter set `p`, if any member proposed it.
    pub fn parameters_proposal(&self, p: &state::Parameters) -> Result<Option<state::ParametersProposal>, LedgerError> {
        self.get(&state::parameters_proposal_key(&p.digest()))
    }
    pub fn members(&self) -> Result<Vec<MemberRecord>, LedgerError> {
        self.store.state_prefix(state::MEMBER_PREFIX, usize::MAX)?.iter().map(|(k, v)| state::decode(k, v)).collect()
    }
    pub fn dataset(&self, id: &Hash) -> Result<Option<DatasetRecord>, LedgerError> {
        self.get(&state::dataset_key(id))
    }
    pub fn demand(&self, id: &Hash) -> Result<Option<DemandRecord>, LedgerError> {
        self.get(&state::demand_key(id))
    }
    pub fn grant(&self, id: &Hash) -> Result<Option<GrantRecord>, LedgerError> {
        self.get(&state::grant_key(id))
    }
    pub fn denial(&self, id: &Hash) -> Result<Option<DenialRecord>, LedgerError> {
        self.get(&state::denial_key(id))
    }

    /// The credential root proofs should name now, if any credential was issued.
    pub fn credential_root(&self) -> Result<Option<FrBytes>, LedgerError> {
        Ok(self.get::<RegistryRecord>(state::REGISTRY_KEY)?.and_then(|r| r.root))
    }

    /// A member's credential path in the current tree (public data: leaves are on chain).
    pub fn credential_path(&self, member: &str) -> Result<Option<MerklePath>, LedgerError> {
        let Some(m) = self.member(member)? else { return Ok(None) };
        Ok(m.credential.filter(|_| m.credential_revoked.is_none()).map(|i| self.inner().tree.path(i)))
    }

    /// `member`'s anonymous leaf, when its active credential has one.
    pub fn anonymous_credential(&self, member: &str) -> Result<Option<FrBytes>, LedgerError> {
        let Some(m) = self.member(member)? else { return Ok(None) };
        contracts::budget::anonymous_leaf(&Overlay::new(&self.store), &m)
    }

    /// A member's path to its anonymous leaf (at its credential index plus
    /// [`crate::tx::ANONYMOUS_LEAF_OFFSET`]), when its active credential has one.
    pub fn anonymous_credential_path(&self, member: &str) -> Result<Option<MerklePath>, LedgerError> {
        let Some(m) = self.member(member)? else { return Ok(None) };
        let Some(index) = m.credential.filter(|_| m.credential_revoked.is_none()) else { return Ok(None) };
        let index = index + crate::tx::ANONYMOUS_LEAF_OFFSET;
        match self.get::<FrBytes>(&registry::leaf_key(index))? {
            Some(leaf) if leaf.0 != [0; 32] => Ok(Some(self.inner().tree.path(index))),
            _ => Ok(None),
        }
    }

    /// The member whose credential sits at leaf `index` of the tree, in either form: where
    /// the audit authorities' opening of a sealed identity leads.
    pub fn credential_holder(&self, index: u64) -> Result<Option<MemberRecord>, LedgerError> {
        let index = index.checked_sub(crate::tx::ANONYMOUS_LEAF_OFFSET).unwrap_or(index);
        Ok(self.members()?.into_iter().find(|m| m.credential == Some(index)))
    }

    /// A pseudonym's record: what the ledger holds of an anonymous requester.
    pub fn pseudonym(&self, pseudonym: &str) -> Result<Option<state::PseudonymRecord>, LedgerError> {
        self.get(&state::pseudonym_key(pseudonym))
    }

    /// The escrow key anonymous demands seal under (fixed at genesis or formed by the
    /// audit authorities' DKG), once there is one.
    pub fn escrow_key(&self) -> Result<Option<dualchain_prover::escrow::EscrowKey>, LedgerError> {
        contracts::escrow::key(&Overlay::new(&self.store), &self.genesis)
    }

    /// The escrow DKG on chain: every dealing, every complaint (with its answer) and the
    /// key record once the DKG closed.
    pub fn escrow_dkg(&self) -> Result<EscrowDkg, LedgerError> {
        let o = Overlay::new(&self.store);
        Ok((contracts::escrow::dealings(&o)?, contracts::escrow::complaints(&o)?, o.get(state::ESCROW_KEY)?))
    }

    /// An audit case ([`crate::contracts::audit`]).
    pub fn audit_case(&self, id: &Hash) -> Result<Option<state::AuditCaseRecord>, LedgerError> {
        self.get(&state::audit_case_key(id))
    }

    /// Every audit case, in id order.
    pub fn audit_cases(&self) -> Result<Vec<state::AuditCaseRecord>, LedgerError> {
        Overlay::new(&self.store).prefix(state::AUDIT_CASE_PREFIX)
    }

    /// The audit authorities that acknowledged their DKG shares, by index.
    pub fn escrow_acks(&self) -> Result<Vec<u16>, LedgerError> {
        contracts::escrow::acks(&Overlay::new(&self.store))
    }

    /// The demand that spent a nullifier, if it is spent.
    pub fn nullifier(&self, nullifier: &FrBytes) -> Result<Option<Hash>, LedgerError> {
        self.get(&state::nullifier_key(nullifier))
    }

    /// A transaction's block entry and location. Only that transaction is read from its
    /// batch ([`Block::open_entry`]), not the whole batch: an API read costs one
    /// transaction however large the batch it was ordered in.
    pub fn tx(&self, hash: &Hash) -> Result<Option<(TxLocation, Entry)>, LedgerError> {
        let Some((loc, stored)) = self.indexed(hash)? else { return Ok(None) };
        let entry =
            Block::open_entry(&stored, loc.position as usize, |seq, digest, at| self.batch_payload(seq, digest, at))?
                .ok_or_else(|| LedgerError::Corrupt("indexed position outside its block".into()))?;
        if entry.hash() != *hash {
            return Err(LedgerError::Corrupt("the index names another transaction's entry".into()));
        }
        Ok(Some((loc, entry)))
    }

    /// The inclusion proof of a transaction and the hash of the block it proves into. A
    /// block's entries name their transactions' hashes, so no transaction is read.
    pub fn inclusion_proof(&self, hash: &Hash) -> Result<Option<InclusionProof>, LedgerError> {
        let Some((loc, stored)) = self.indexed(hash)? else { return Ok(None) };
        let proof = Block::proof_of(&stored, loc.position as usize)?
            .ok_or_else(|| LedgerError::Corrupt("indexed position outside its block".into()))?;
        if proof.tx_hash != *hash {
            return Err(LedgerError::Corrupt("the index names another transaction's entry".into()));
        }
        Ok(Some(proof))
    }

    /// Where the transaction index places `hash`, and that stored block.
    fn indexed(&self, hash: &Hash) -> Result<Option<(TxLocation, StoredBlock)>, LedgerError> {
        let Some(loc) = self.store.tx(hash)? else { return Ok(None) };
        let stored = self
            .store
            .block(loc.chain, loc.height)?
            .ok_or_else(|| LedgerError::Corrupt(format!("indexed block {:?}/{} missing", loc.chain, loc.height)))?;
        Ok(Some((loc, stored)))
    }

    /// The audit trail of a dataset: every access record with the inclusion proof of the
    /// receipt that created it.
    pub fn audit(&self, dataset: &Hash) -> Result<Vec<(AccessRecord, InclusionProof)>, LedgerError> {
        let proven = |rec: AccessRecord| {
            let proof = self.receipt_proof(&rec)?;
            Ok((rec, proof))
        };
        self.access_records(dataset)?.into_iter().map(proven).collect()
    }

    /// A dataset's access records, oldest first, without their proofs.
    pub fn access_records(&self, dataset: &Hash) -> Result<Vec<AccessRecord>, LedgerError> {
        let rows = self.store.state_prefix(&state::audit_prefix(dataset), usize::MAX)?;
        rows.iter().map(|(k, v)| state::decode(k, v)).collect()
    }

    /// The inclusion proof of the receipt that created an access record.
    pub fn receipt_proof(&self, rec: &AccessRecord) -> Result<InclusionProof, LedgerError> {
        self.inclusion_proof(&rec.receipt_tx)?
            .ok_or_else(|| LedgerError::Corrupt("access record without its receipt".into()))
    }

    /// Every grant, in id order, at most `limit`.
    pub fn grants(&self, limit: usize) -> Result<Vec<GrantRecord>, LedgerError> {
        self.store.state_prefix(b"grant/", limit)?.iter().map(|(k, v)| state::decode(k, v)).collect()
    }

    /// Every demand, in id order, at most `limit`.
    pub fn demands(&self, limit: usize) -> Result<Vec<DemandRecord>, LedgerError> {
        self.store.state_prefix(b"demand/", limit)?.iter().map(|(k, v)| state::decode(k, v)).collect()
    }

    /// A break-glass request.
    pub fn break_glass(&self, id: &Hash) -> Result<Option<BreakGlassRecord>, LedgerError> {
        self.get(&state::break_glass_key(id))
    }

    /// The break-glass requests made to `owner` (its review queue), oldest first.
    pub fn break_glass_to(&self, owner: &str) -> Result<Vec<BreakGlassRecord>, LedgerError> {
        let rows = self.store.state_prefix(&state::break_glass_owner_prefix(owner), usize::MAX)?;
        let mut out = Vec::with_capacity(rows.len());
        for (k, v) in rows {
            let id: Hash = state::decode(&k, &v)?;
            let r = self
                .break_glass(&id)?
                .ok_or_else(|| LedgerError::Corrupt("break-glass index names no request".into()))?;
            // Member ids may hold '/': the prefix of owner "a" also covers "a/b".
            if r.owner == owner {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Applied sequence number, both tips and the state root: equal on validators with
    /// identical ledgers.
    pub fn fingerprint(&self) -> Result<Fingerprint, LedgerError> {
        Ok(Fingerprint {
            applied_seq: self.store.applied_seq()?,
            data_tip: self.store.tip(Chain::Data)?,
            access_tip: self.store.tip(Chain::Access)?,
            state_root: self.state_root()?,
        })
    }

    /// The commitment to the contract state after the last applied batch (the zero root
    /// before the first write; see [`state::next_state_root`]).
    pub fn state_root(&self) -> Result<Hash, LedgerError> {
        Ok(self.store.state_root()?.unwrap_or_default())
    }

    /// Whether a grant may be served now (`now_ms`: the server's clock).
    pub fn grant_usable(&self, id: &Hash, now_ms: u64) -> Result<GrantRecord, String> {
        let g = self.grant(id).map_err(|e| e.to_string())?.ok_or_else(|| "unknown grant".to_string())?;
        g.usable(now_ms).map_err(|r| r.to_string())?;
        if self.dataset(&g.dataset).map_err(|e| e.to_string())?.is_some_and(|d| d.erased.is_some()) {
            return Err(Reason::DatasetErased.to_string());
        }
        Ok(g)
    }
}

/// The escrow DKG as the ledger holds it: the dealings, the complaints (with their
/// answers) and the key record once it closed.
pub type EscrowDkg = (Vec<state::DealingRecord>, Vec<state::ComplaintRecord>, Option<state::EscrowKeyRecord>);

/// One chain's part of a batch: its entries, the hash to index for each, and the notes.
type ChainParts = (Vec<EntryRef>, Vec<Option<Hash>>, BTreeMap<u32, String>);

/// A proof to verify: the transaction's position, the proof, its public inputs.
type ProofItem = (usize, bellperson::groth16::Proof<Bls12>, Vec<Fr>);

/// What identical ledgers share: the applied batch, both chain tips and the state root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    pub applied_seq: Option<u64>,
    pub data_tip: Option<BlockRef>,
    pub access_tip: Option<BlockRef>,
    pub state_root: Hash,
}

impl Fingerprint {
    /// One hash of the whole fingerprint: what validators compare after checkpoints. The
    /// tips cover every block (each outcome included), the state root every state change,
    /// so a validator that refused a transaction the others accepted, or wrote other state,
    /// differs here from that batch on.
    pub fn digest(&self) -> Hash {
        let tip = |t: Option<BlockRef>| {
            t.map_or([0; 40], |t| {
                let mut b = [0; 40];
                b[..8].copy_from_slice(&(t.height + 1).to_be_bytes());
                b[8..].copy_from_slice(&t.hash);
                b
            })
        };
        Sha256::new()
            .chain_update(b"dualchain/v1/ledger-fingerprint")
            .chain_update(self.applied_seq.map_or(0, |s| s + 1).to_be_bytes())
            .chain_update(tip(self.data_tip))
            .chain_update(tip(self.access_tip))
            .chain_update(self.state_root)
            .finalize()
            .into()
    }
}

/// A signature checked ahead of execution: the member key it was checked under, and
/// whether it verified.
type Verdict = ([u8; 32], bool);

/// A batch decoded and its signatures checked ahead of its apply ([`Ledger::presign`]),
/// by position in the batch, for the batch of this digest only.
#[derive(Debug, Clone)]
pub struct Presigned {
    digest: [u8; 32],
    decoded: Vec<Decoded>,
    verdicts: HashMap<usize, Verdict>,
}

/// A payload as step 1 decodes it: its hash, and its transaction or why it does not
/// decode (`None`: a validator set change, which is consensus' own).
#[derive(Debug, Clone)]
struct Decoded {
    hash: Hash,
    tx: Option<Result<SignedTx, TxDecodeError>>,
}

/// Every payload of `c` hashed and decoded, in parallel (pure: it reads no state).
fn decode_payloads(c: &Committed<'_>) -> Vec<Decoded> {
    use rayon::prelude::*;
    c.payloads
        .par_iter()
        .enumerate()
        .map(|(i, p)| Decoded {
            hash: tx_hash(p),
            tx: (!c.validator_changes.iter().any(|(at, _)| *at == i)).then(|| SignedTx::from_bytes(p)),
        })
        .collect()
}

/// What the pipelined apply carries ([`Ledger::presign_ahead`]): a committed batch in
/// whatever form its host holds it (a consensus delivery, for a validator).
pub trait ToApply: Send + 'static {
    fn committed(&self) -> Committed<'_>;
}

/// What step 2 decided ahead of a transaction's execution.
struct Ahead {
    proof: Option<Result<(), ProofFault>>,
    signature: Option<Verdict>,
}

/// Whether `stx`'s signature verifies under the member key `raw`, from the verdict checked
/// ahead when it was checked under that same key (`None`: the key does not decode).
fn signature_holds(ahead: Option<&Verdict>, raw: &[u8; 32], stx: &SignedTx, domain: &TxDomain) -> Option<bool> {
    match ahead {
        Some((checked, ok)) if checked == raw => Some(*ok),
        _ => Some(stx.verify(&PublicKey::from_raw(raw).ok()?, domain)),
    }
}

struct Item {
    hash: Hash,
    tx: Option<SignedTx>,
    /// Refused before execution: the code and the words behind it.
    early: Option<(Reason, Option<String>)>,
    duplicate: bool,
    /// A validator set change (the epoch it would start), recorded, not executed here.
    change: Option<u64>,
}

fn chain_index(c: Chain) -> usize {
    match c {
        Chain::Data => 0,
        Chain::Access => 1,
    }
}

fn load_tree(store: &LedgerStore) -> Result<CredentialTree, LedgerError> {
    let mut tree = CredentialTree::new();
    for (k, v) in store.state_prefix(registry::LEAF_PREFIX, usize::MAX)? {
        let leaf: FrBytes = state::decode(&k, &v)?;
        let index: u64 = std::str::from_utf8(&k[registry::LEAF_PREFIX.len()..])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| LedgerError::Corrupt(format!("credential leaf key {}", String::from_utf8_lossy(&k))))?;
        let value = leaf.to_fr().map_err(LedgerError::Corrupt)?;
        tree.set(index, value);
    }
    Ok(tree)
}
