//! Blocks of the two chains and inclusion proofs.
//!
//! Every committed PBFT batch yields at most one block per chain (a chain without
//! transactions in the batch gets none: empty blocks would only restate the certificate).
//! The header carries the batch's sequence number, agreed time and digest and the
//! Merkle root over the block's entries; through the stored block's linkage, the previous
//! block and the other chain's latest block (cross-link). The PBFT commit certificate is
//! stored with the block but outside its hash: each replica holds its own quorum of
//! commits for the same batch, and identical ledgers must have identical block hashes.
//! An entry is the transaction's wire bytes with its outcome; the Merkle leaf is
//! `tx hash ‖ outcome JSON`, so an inclusion proof shows both that a transaction is on the
//! chain and what the contracts made of it.

use std::collections::BTreeMap;

use dualchain_storage::ledger::{BlockRef, Chain, StoredBlock};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::LedgerError;
use crate::merkle;
use crate::tx::{hex_bytes, tx_hash, Hash, Outcome};

/// Version 2: refusals are reason codes, and headers carry the state root.
pub const BLOCK_VERSION: u8 = 2;

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
        let mut l = self.hash().to_vec();
        l.extend_from_slice(&serde_json::to_vec(&self.outcome).expect("outcome serialises"));
        merkle::leaf_hash(&l)
    }
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
    /// The commit certificate this replica holds for the batch (2f + 1 signed commits as
    /// the consensus log encodes them).
    pub certificate: Vec<u8>,
    /// This replica's notes, outside the hash: entry index → the text of the error behind
    /// the entry's reason code (see [`crate::reason`]).
    pub notes: BTreeMap<u32, String>,
}

impl Block {
    /// Builds the stored form of a block.
    pub fn seal(
        height: u64,
        prev_hash: Hash,
        cross_link: BlockRef,
        header: &BlockHeader,
        entries: &[Entry],
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

    /// Decodes a stored block and checks its entries against the header's root.
    pub fn open(stored: &StoredBlock) -> Result<Self, LedgerError> {
        let header: BlockHeader = serde_json::from_slice(&stored.header)
            .map_err(|e| LedgerError::Corrupt(format!("block {} header: {e}", stored.height)))?;
        let entries: Vec<Entry> = serde_json::from_slice(&stored.body)
            .map_err(|e| LedgerError::Corrupt(format!("block {} body: {e}", stored.height)))?;
        let leaves: Vec<Hash> = entries.iter().map(Entry::leaf).collect();
        if merkle::root(&leaves) != header.entries_root || entries.len() != header.entries as usize {
            return Err(LedgerError::Corrupt(format!("block {} entries do not match its header", stored.height)));
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
            certificate: stored.certificate.clone(),
            notes,
        })
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
        let mut l = self.tx_hash.to_vec();
        l.extend_from_slice(&serde_json::to_vec(&self.outcome).expect("outcome serialises"));
        let root =
            merkle::root_from_path(merkle::leaf_hash(&l), self.index as usize, header.entries as usize, &self.path)
                .ok_or_else(|| LedgerError::Malformed("inclusion path has the wrong length".into()))?;
        if root != header.entries_root {
            return Err(LedgerError::Malformed("inclusion path does not lead to the block's entries root".into()));
        }
        let cross = BlockRef { height: self.cross_link.0, hash: self.cross_link.1 };
        let header_digest: Hash = Sha256::digest(&self.header).into();
        Ok(StoredBlock::hash_from_digests(self.height, &self.prev_hash, &cross, &header_digest, &self.body_hash))
    }
}
