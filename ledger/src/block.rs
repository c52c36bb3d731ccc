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
    let corrupt = |what: String| LedgerError::Corrupt(format!("kept batch {seq}: {what}"));
    let (held, frame) = raw.split_at_checked(32).ok_or_else(|| corrupt("shorter than its digest".into()))?;
    if held != digest {
        return Err(corrupt("its digest is not the one its block names".into()));
    }
    let items = decode_list(frame, "kept batch", KEPT_BATCH).map_err(|e| corrupt(e.to_string()))?;
    Ok(items.into_iter().map(<[u8]>::to_vec).collect())
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
        let header: BlockHeader =
            serde_json::from_slice(&stored.header).map_err(|e| corrupt(&format!("header: {e}")))?;
        let (entries, positions, leaves) = match header.version {
            INLINE_VERSION => {
                let entries: Vec<Entry> =
                    serde_json::from_slice(&stored.body).map_err(|e| corrupt(&format!("body: {e}")))?;
                let leaves: Vec<Hash> = entries.iter().map(Entry::leaf).collect();
                (entries, Vec::new(), leaves)
            }
            BLOCK_VERSION => {
                let refs: Vec<EntryRef> =
                    serde_json::from_slice(&stored.body).map_err(|e| corrupt(&format!("body: {e}")))?;
                let payloads = batch(header.seq, &header.batch_digest)?;
                let mut last = None;
                let mut entries = Vec::with_capacity(refs.len());
                for r in &refs {
                    if last.is_some_and(|l| r.at <= l) {
                        return Err(corrupt("refers to its batch's transactions out of order"));
                    }
                    last = Some(r.at);
                    let tx = payloads
                        .as_ref()
                        .get(r.at as usize)
                        .ok_or_else(|| corrupt(&format!("refers to transaction {} past its batch's end", r.at)))?
                        .as_ref();
                    if tx_hash(tx) != r.tx_hash {
                        return Err(corrupt(&format!("entry at {} is not its batch's transaction", r.at)));
                    }
                    entries.push(Entry { tx: tx.to_vec(), outcome: r.outcome.clone() });
                }
                (entries, refs.iter().map(|r| r.at).collect(), refs.iter().map(EntryRef::leaf).collect())
            }
            v => return Err(corrupt(&format!("has version {v}, which this build does not read"))),
        };
        if merkle::root(&leaves) != header.entries_root || entries.len() != header.entries as usize {
            return Err(corrupt("entries do not match its header"));
        }
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
        let leaves: Vec<Hash> = self.entries.iter().map(Entry::leaf).collect();
        let entry = self.entries.get(index)?;
        Some(InclusionProof {
            chain: self.header.chain,
            height: self.height,
            prev_hash: self.prev_hash,
            cross_link: (self.cross_link.height, self.cross_link.hash),
            header: stored.header.clone(),
            body_hash: Sha256::digest(&stored.body).into(),
            index: index as u32,
            tx_hash: entry.hash(),
            outcome: entry.outcome.clone(),
            path: merkle::path(&leaves, index)?,
        })
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
