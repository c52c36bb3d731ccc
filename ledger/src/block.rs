//! Blocks of the two chains and inclusion proofs.
//!
//! Every committed PBFT batch yields at most one block per chain (a chain without
//! transactions in the batch gets none: empty blocks would only restate the certificate).
//! The header carries the batch's sequence number, agreed time and digest and the
//! Merkle root over the block's entries; through the stored block's linkage, the previous
//! block and the other chain's latest block (cross-link). The PBFT commit certificate is
//! stored with the block but outside its hash: each replica holds its own quorum of
//! commits for the same batch, and identical ledgers must have identical block hashes.
//! An entry is a transaction with its outcome; the Merkle leaf is `tx hash ‖ outcome JSON`,
//! so an inclusion proof shows both that a transaction is on the chain and what the
//! contracts made of it.
//!
//! ## Blocks refer to their batch (version 3)
//!
//! The transactions themselves are in the committed batch the header names (sequence
//! number and digest), which the consensus archive keeps for good. So a block stores, per
//! entry, only where its transaction sits in that batch, the transaction's hash and the
//! outcome ([`EntryRef`]), and [`Block::open`] joins the transactions back from the batch,
//! checking each against its hash. The block hash covers those references, and through
//! the transaction hashes and the header's batch digest, the transactions. Before this
//! (version 2), every block held its transactions again, hex-encoded inside JSON (over
//! twice their size), written beside the archive's copy (issue: write each batch once).
//! Version 2 blocks are still read as they were written.

use std::collections::BTreeMap;

use dualchain_crypto::encoding::{decode_list, encode_list, ListBounds};
use dualchain_storage::ledger::{BlockRef, Chain, StoredBlock};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::LedgerError;
use crate::merkle;
use crate::tx::{hex_bytes, tx_hash, Hash, Outcome};

/// Version 3: entries refer to the transactions of the committed batch instead of holding
/// them. (Version 2: refusals are reason codes, and headers carry the state root.)
pub const BLOCK_VERSION: u8 = 3;
/// The last version whose blocks hold their transactions inline.
const INLINE_VERSION: u8 = 2;

/// A block header (stored as JSON inside [`StoredBlock::header`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockHeader {
    pub version: u8,
    pub chain: ChainName,
    /// PBFT sequence number of the batch. (Not its view: a batch prepared in one view may
    /// commit in the next at some replicas, and the header must be the same everywhere.)
    pub seq: u64,
    /// Agreed ledger time (UNIX ms) after the batch.
    pub time_ms: u64,
    #[serde(with = "hex_bytes::id")]
    pub batch_digest: Hash,
    #[serde(with = "hex_bytes::id")]
    pub entries_root: Hash,
    pub entries: u32,
    /// The contract state after the batch ([`crate::state::next_state_root`]): validators
    /// that agree on the blocks agree on the state they leave.
    #[serde(with = "hex_bytes::id")]
    pub state_root: Hash,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainName {
    Data,
    Access,
}

impl From<Chain> for ChainName {
    fn from(c: Chain) -> Self {
        match c {
            Chain::Data => ChainName::Data,
            Chain::Access => ChainName::Access,
        }
    }
}

impl From<ChainName> for Chain {
    fn from(c: ChainName) -> Self {
        match c {
            ChainName::Data => Chain::Data,
            ChainName::Access => Chain::Access,
        }
    }
}

/// One transaction of a block with its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    #[serde(with = "hex_bytes")]
    pub tx: Vec<u8>,
    pub outcome: Outcome,
}

impl Entry {
    pub fn hash(&self) -> Hash {
        tx_hash(&self.tx)
    }
    /// The Merkle leaf: `tx hash ‖ outcome JSON`.
    pub fn leaf(&self) -> Hash {
        leaf_of(&self.hash(), &self.outcome)
    }
}

/// An entry as a version 3 block stores it: the position of its transaction in the
/// committed batch the header names, the transaction's hash and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryRef {
    pub at: u32,
    #[serde(with = "hex_bytes::id")]
    pub tx_hash: Hash,
    pub outcome: Outcome,
}

impl EntryRef {
    /// The Merkle leaf: `tx hash ‖ outcome JSON`, as [`Entry::leaf`].
    pub fn leaf(&self) -> Hash {
        leaf_of(&self.tx_hash, &self.outcome)
    }
}

/// The Merkle leaf of a transaction and its outcome: `tx hash ‖ outcome JSON`.
fn leaf_of(tx_hash: &Hash, outcome: &Outcome) -> Hash {
    let mut l = tx_hash.to_vec();
    l.extend_from_slice(&serde_json::to_vec(outcome).expect("outcome serialises"));
    merkle::leaf_hash(&l)
}

/// Bounds on a batch a ledger keeps itself: those of a consensus batch (requests per
/// batch, bytes per request), with room for the frame.
const KEPT_BATCH: ListBounds =
    ListBounds { items_max: 1 << 16, item_len_max: 1 << 20, len_max: (16 << 20) + (8 << 16) + 4 };

/// A batch as a ledger that keeps its blocks' transactions itself stores it (no consensus
/// archive beside it: see [`crate::Batches`]): `digest ‖ count ‖ (length ‖ payload)*`.
pub fn encode_kept_batch(digest: &Hash, payloads: &[&[u8]]) -> Vec<u8> {
    let mut kept = digest.to_vec();
    kept.extend_from_slice(&encode_list(payloads));
    kept
}

/// The payloads of a batch kept by [`encode_kept_batch`], checked to be the batch at `seq`
/// with `digest` as far as the record says.
pub fn decode_kept_batch(seq: u64, digest: &Hash, raw: &[u8]) -> Result<Vec<Vec<u8>>, LedgerError> {
    Ok(kept_items(seq, digest, raw)?.into_iter().map(<[u8]>::to_vec).collect())
}

/// The payload at `at` of a batch kept by [`encode_kept_batch`] (`None` past its end),
/// checked as [`decode_kept_batch`] checks the batch, without copying the others.
pub fn kept_batch_payload(seq: u64, digest: &Hash, raw: &[u8], at: u32) -> Result<Option<Vec<u8>>, LedgerError> {
    Ok(kept_items(seq, digest, raw)?.get(at as usize).map(|p| p.to_vec()))
}

/// The payloads of a kept batch, borrowed from its record.
fn kept_items<'a>(seq: u64, digest: &Hash, raw: &'a [u8]) -> Result<Vec<&'a [u8]>, LedgerError> {
    let corrupt = |what: String| LedgerError::Corrupt(format!("kept batch {seq}: {what}"));
    let (held, frame) = raw.split_at_checked(32).ok_or_else(|| corrupt("shorter than its digest".into()))?;
    if held != digest {
        return Err(corrupt("its digest is not the one its block names".into()));
    }
    decode_list(frame, "kept batch", KEPT_BATCH).map_err(|e| corrupt(e.to_string()))
}

/// What [`Block::decode`] checks of a block's entries against its header.
#[derive(Clone, Copy)]
enum Check {
    /// Their count.
    Count,
    /// Their count and Merkle root.
    Root,
}

/// The Merkle leaves of entries (transaction hash, outcome). Consecutive entries mostly
/// share their outcome (accepted), so its JSON is made once per run of equal outcomes.
fn leaves<'a>(entries: impl Iterator<Item = (Hash, &'a Outcome)>) -> Vec<Hash> {
    let mut last: Option<(&Outcome, Vec<u8>)> = None;
    let mut leaf = Vec::new();
    entries
        .map(|(tx_hash, outcome)| {
            if last.as_ref().is_none_or(|(o, _)| *o != outcome) {
                last = Some((outcome, serde_json::to_vec(outcome).expect("outcome serialises")));
            }
            leaf.clear();
            leaf.extend_from_slice(&tx_hash);
            leaf.extend_from_slice(&last.as_ref().expect("set above").1);
            merkle::leaf_hash(&leaf)
        })
        .collect()
}

/// A stored block's entries as its version holds them.
enum Body {
    /// Version 2: the transactions inline.
    Inline(Vec<Entry>),
    /// Version 3: references into the batch.
    Refs(Vec<EntryRef>),
}

/// A decoded block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub height: u64,
    pub hash: Hash,
    pub prev_hash: Hash,
    pub cross_link: BlockRef,
    pub header: BlockHeader,
    pub entries: Vec<Entry>,
    /// Where each entry's transaction sits in the batch the header names (a version 3
    /// block; empty for a version 2 block, which holds its transactions).
    pub positions: Vec<u32>,
    /// The commit certificate this replica holds for the batch (2f + 1 signed commits as
    /// the consensus log encodes them).
    pub certificate: Vec<u8>,
    /// This replica's notes, outside the hash: entry index → the text of the error behind
    /// the entry's reason code (see [`crate::reason`]).
    pub notes: BTreeMap<u32, String>,
}

impl Block {
    /// Builds the stored form of a block whose entries refer to the transactions of the
    /// batch its header names.
    pub fn seal(
        height: u64,
        prev_hash: Hash,
        cross_link: BlockRef,
        header: &BlockHeader,
        entries: &[EntryRef],
        certificate: Vec<u8>,
        notes: &BTreeMap<u32, String>,
    ) -> Result<StoredBlock, LedgerError> {
        let h = serde_json::to_vec(header).map_err(|e| LedgerError::Malformed(e.to_string()))?;
        let b = serde_json::to_vec(entries).map_err(|e| LedgerError::Malformed(e.to_string()))?;
        let n = if notes.is_empty() {
            Vec::new()
        } else {
            serde_json::to_vec(notes).map_err(|e| LedgerError::Malformed(e.to_string()))?
        };
        Ok(StoredBlock::new(height, prev_hash, cross_link, h, b).with_certificate(certificate).with_notes(n))
    }

    /// Decodes a stored block, joins its transactions back from its batch and checks its
    /// entries against the header's root. `batch` gives the payloads of the committed
    /// batch at a sequence number with a digest (asked only for a version 3 block).
    pub fn open<B: AsRef<[P]>, P: AsRef<[u8]>>(
        stored: &StoredBlock,
        batch: impl FnOnce(u64, &Hash) -> Result<B, LedgerError>,
    ) -> Result<Self, LedgerError> {
        let corrupt = |what: &str| LedgerError::Corrupt(format!("block {} {what}", stored.height));
        let (header, body) = Self::decode(stored, Check::Root)?;
        let (entries, positions) = match body {
            Body::Inline(entries) => (entries, Vec::new()),
            Body::Refs(refs) => {
                let payloads = batch(header.seq, &header.batch_digest)?;
                let mut entries = Vec::with_capacity(refs.len());
                for r in &refs {
                    let tx = payloads
                        .as_ref()
                        .get(r.at as usize)
                        .ok_or_else(|| corrupt(&format!("refers to transaction {} past its batch's end", r.at)))?
                        .as_ref();
                    entries.push(Self::joined(stored, r, tx)?);
                }
                (entries, refs.iter().map(|r| r.at).collect())
            }
        };
        let notes = if stored.notes.is_empty() {
            BTreeMap::new()
        } else {
            serde_json::from_slice(&stored.notes)
                .map_err(|e| LedgerError::Corrupt(format!("block {} notes: {e}", stored.height)))?
        };
        Ok(Self {
            height: stored.height,
            hash: stored.hash,
            prev_hash: stored.prev_hash,
            cross_link: stored.cross_link,
            header,
            entries,
            positions,
            certificate: stored.certificate.clone(),
            notes,
        })
    }

    /// Entry `index` of a stored block alone (`None` past its last entry), its transaction
    /// read by `payload`: the transaction at a position of the committed batch at a
    /// sequence number with a digest (`None` past the batch's end), and checked against
    /// the hash its entry names. Reading one transaction so costs one transaction, not the
    /// whole batch (what an API read of a transaction needs).
    ///
    /// The entries are not hashed again into the header's root: the block hash, which the
    /// store checks when it reads a block, covers header and entries as they were sealed,
    /// and the root was computed from those entries then. Whole opens ([`Block::open`])
    /// and proofs ([`Block::proof_of`]) check the root.
    pub fn open_entry(
        stored: &StoredBlock,
        index: usize,
        payload: impl FnOnce(u64, &Hash, u32) -> Result<Option<Vec<u8>>, LedgerError>,
    ) -> Result<Option<Entry>, LedgerError> {
        let (header, body) = Self::decode(stored, Check::Count)?;
        match body {
            Body::Inline(mut entries) => Ok((index < entries.len()).then(|| entries.swap_remove(index))),
            Body::Refs(refs) => {
                let Some(r) = refs.get(index) else { return Ok(None) };
                let tx = payload(header.seq, &header.batch_digest, r.at)?.ok_or_else(|| {
                    LedgerError::Corrupt(format!(
                        "block {} refers to transaction {} past its batch's end",
                        stored.height, r.at
                    ))
                })?;
                Self::joined(stored, r, &tx).map(Some)
            }
        }
    }

    /// The inclusion proof of entry `index` of a stored block (`None` past its last
    /// entry), checked to lead to the header's root. A version 3 block's entries name
    /// their transactions' hashes, so its proof needs none of the transactions; a version
    /// 2 block's leaves hash them.
    pub fn proof_of(stored: &StoredBlock, index: usize) -> Result<Option<InclusionProof>, LedgerError> {
        let (header, body) = Self::decode(stored, Check::Count)?;
        let (leaves, tx_hash, outcome) = match body {
            Body::Inline(mut entries) => {
                if index >= entries.len() {
                    return Ok(None);
                }
                let leaves = leaves(entries.iter().map(|e| (e.hash(), &e.outcome)));
                let e = entries.swap_remove(index);
                (leaves, e.hash(), e.outcome)
            }
            Body::Refs(mut refs) => {
                if index >= refs.len() {
                    return Ok(None);
                }
                let leaves = leaves(refs.iter().map(|r| (r.tx_hash, &r.outcome)));
                let r = refs.swap_remove(index);
                (leaves, r.tx_hash, r.outcome)
            }
        };
        let proof = InclusionProof::of(stored, header.chain, &leaves, index, tx_hash, outcome);
        if let Some(p) = &proof {
            if merkle::root_from_path(leaves[index], index, leaves.len(), &p.path) != Some(header.entries_root) {
                return Err(LedgerError::Corrupt(format!("block {} entries do not match its header", stored.height)));
            }
        }
        Ok(proof)
    }

    /// A stored block's header and entries, their count checked against the header's
    /// (and a version 3 block's positions to be increasing), and with [`Check::Root`]
    /// their Merkle root too, before any transaction is read.
    fn decode(stored: &StoredBlock, check: Check) -> Result<(BlockHeader, Body), LedgerError> {
        let corrupt = |what: &str| LedgerError::Corrupt(format!("block {} {what}", stored.height));
        let header: BlockHeader =
            serde_json::from_slice(&stored.header).map_err(|e| corrupt(&format!("header: {e}")))?;
        let body = match header.version {
            INLINE_VERSION => {
                Body::Inline(serde_json::from_slice(&stored.body).map_err(|e| corrupt(&format!("body: {e}")))?)
            }
            BLOCK_VERSION => {
                let refs: Vec<EntryRef> =
                    serde_json::from_slice(&stored.body).map_err(|e| corrupt(&format!("body: {e}")))?;
                if refs.windows(2).any(|w| w[1].at <= w[0].at) {
                    return Err(corrupt("refers to its batch's transactions out of order"));
                }
                Body::Refs(refs)
            }
            v => return Err(corrupt(&format!("has version {v}, which this build does not read"))),
        };
        let (count, root) = match (&body, check) {
            (Body::Inline(e), Check::Count) => (e.len(), None),
            (Body::Refs(r), Check::Count) => (r.len(), None),
            (Body::Inline(e), Check::Root) => (e.len(), Some(leaves(e.iter().map(|e| (e.hash(), &e.outcome))))),
            (Body::Refs(r), Check::Root) => (r.len(), Some(leaves(r.iter().map(|r| (r.tx_hash, &r.outcome))))),
        };
        if count != header.entries as usize || root.is_some_and(|l| merkle::root(&l) != header.entries_root) {
            return Err(corrupt("entries do not match its header"));
        }
        Ok((header, body))
    }

    /// The entry `r` names, with `tx` read from its batch, checked to be its transaction.
    fn joined(stored: &StoredBlock, r: &EntryRef, tx: &[u8]) -> Result<Entry, LedgerError> {
        if tx_hash(tx) != r.tx_hash {
            return Err(LedgerError::Corrupt(format!(
                "block {} entry at {} is not its batch's transaction",
                stored.height, r.at
            )));
        }
        Ok(Entry { tx: tx.to_vec(), outcome: r.outcome.clone() })
    }

    /// The entries as a version 3 block stores them (for a version 2 block, which holds no
    /// positions, none).
    pub fn refs(&self) -> Vec<EntryRef> {
        self.entries
            .iter()
            .zip(&self.positions)
            .map(|(e, &at)| EntryRef { at, tx_hash: e.hash(), outcome: e.outcome.clone() })
            .collect()
    }

    /// The inclusion proof of entry `index`.
    pub fn inclusion_proof(&self, stored: &StoredBlock, index: usize) -> Option<InclusionProof> {
        let leaves = leaves(self.entries.iter().map(|e| (e.hash(), &e.outcome)));
        let entry = self.entries.get(index)?;
        InclusionProof::of(stored, self.header.chain, &leaves, index, entry.hash(), entry.outcome.clone())
    }
}

/// Proof that a transaction, with its outcome, is entry `index` of the block whose hash
/// it yields. Whoever holds that block hash (a chain tip from any honest validator, or a
/// later block linking to it) checks it without the block body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    pub chain: ChainName,
    pub height: u64,
    #[serde(with = "hex_bytes::id")]
    pub prev_hash: Hash,
    pub cross_link: (u64, [u8; 32]),
    #[serde(with = "hex_bytes")]
    pub header: Vec<u8>,
    #[serde(with = "hex_bytes::id")]
    pub body_hash: Hash,
    pub index: u32,
    #[serde(with = "hex_bytes::id")]
    pub tx_hash: Hash,
    pub outcome: Outcome,
    pub path: Vec<Hash>,
}

impl InclusionProof {
    /// The proof of entry `index` of `stored`, whose entries' leaves are `leaves`.
    fn of(
        stored: &StoredBlock,
        chain: ChainName,
        leaves: &[Hash],
        index: usize,
        tx_hash: Hash,
        outcome: Outcome,
    ) -> Option<Self> {
        Some(Self {
            chain,
            height: stored.height,
            prev_hash: stored.prev_hash,
            cross_link: (stored.cross_link.height, stored.cross_link.hash),
            header: stored.header.clone(),
            body_hash: Sha256::digest(&stored.body).into(),
            index: index as u32,
            tx_hash,
            outcome,
            path: merkle::path(leaves, index)?,
        })
    }

    /// Checks the proof and returns the block hash it proves membership in.
    pub fn verify(&self) -> Result<Hash, LedgerError> {
        let header: BlockHeader =
            serde_json::from_slice(&self.header).map_err(|e| LedgerError::Malformed(format!("header: {e}")))?;
        if header.chain != self.chain {
            return Err(LedgerError::Malformed("proof names another chain than its header".into()));
        }
        let root = merkle::root_from_path(
            leaf_of(&self.tx_hash, &self.outcome),
            self.index as usize,
            header.entries as usize,
            &self.path,
        )
        .ok_or_else(|| LedgerError::Malformed("inclusion path has the wrong length".into()))?;
        if root != header.entries_root {
            return Err(LedgerError::Malformed("inclusion path does not lead to the block's entries root".into()));
        }
        let cross = BlockRef { height: self.cross_link.0, hash: self.cross_link.1 };
        let header_digest: Hash = Sha256::digest(&self.header).into();
        Ok(StoredBlock::hash_from_digests(self.height, &self.prev_hash, &cross, &header_digest, &self.body_hash))
    }
}
