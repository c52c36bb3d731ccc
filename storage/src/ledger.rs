//! Ledger stores: the two chains' blocks, the transaction index and contract state
//! (DESIGN.md §2, §7). The consensus log lives in [`crate::consensus`].
//!
//! Keys (big-endian numbers sort numerically):
//! - `blocks/<chain>`: `h ‖ height` → block, `x ‖ hash` → height;
//! - `blocks/data`: `b ‖ seq` → the payloads of the committed batch at `seq`, for a ledger
//!   that keeps the transactions its blocks refer to itself (opaque here; a validator's
//!   ledger reads them from the consensus archive instead and writes none);
//! - `tx_index`: tx hash → (chain, height, position);
//! - `state`: contract key → value;
//! - `meta`: `tip/<chain>` → (height, hash), `applied_seq` → last applied PBFT sequence.
//!
//! A committed PBFT batch — one block per chain, its transactions and its state changes —
//! is applied in one all-or-nothing commit ([`crate::atomic`]).

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::atomic;
use crate::engine::{prefix_end, Cf, KvEngine, WriteBatch};
use dualchain_crypto::encoding::{Reader, Writer};
use dualchain_crypto::DecodeError;

use crate::error::{key_hex, Result, StorageError};
use crate::record::{self, be};

/// Largest block header or body accepted.
pub const BLOCK_PART_LEN_MAX: usize = 64 << 20;
/// Largest state value or consensus-log entry.
pub const VALUE_LEN_MAX: usize = 16 << 20;

/// The two chains of the dual ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Chain {
    Data,
    Access,
}

impl Chain {
    fn cf(self) -> Cf {
        match self {
            Chain::Data => Cf::BlocksData,
            Chain::Access => Cf::BlocksAccess,
        }
    }
    fn code(self) -> u8 {
        match self {
            Chain::Data => 0,
            Chain::Access => 1,
        }
    }
    fn tip_key(self) -> &'static [u8] {
        match self {
            Chain::Data => b"tip/data",
            Chain::Access => b"tip/access",
        }
    }
}

/// A reference to a block of the other chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockRef {
    pub height: u64,
    pub hash: [u8; 32],
}

/// A block as stored: linkage and cross-link in the clear, header and body opaque (the
/// ledger crate defines them), and the commit certificate beside them.
///
/// The certificate is evidence attached to the block, not part of its identity: each
/// replica holds its own quorum of 2f + 1 signed commits for the same batch, so a hash
/// over it would differ between replicas whose ledgers are identical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlock {
    pub height: u64,
    pub prev_hash: [u8; 32],
    pub cross_link: BlockRef,
    pub header: Vec<u8>,
    pub body: Vec<u8>,
    pub certificate: Vec<u8>,
    /// This replica's notes on the block (the text behind refusal codes), outside the
    /// hash like the certificate: validators may word them differently.
    pub notes: Vec<u8>,
    pub hash: [u8; 32],
}

impl StoredBlock {
    pub fn new(height: u64, prev_hash: [u8; 32], cross_link: BlockRef, header: Vec<u8>, body: Vec<u8>) -> Self {
        let hash = Self::compute_hash(height, &prev_hash, &cross_link, &header, &body);
        Self { height, prev_hash, cross_link, header, body, certificate: Vec::new(), notes: Vec::new(), hash }
    }

    /// Attaches this replica's notes (not covered by the hash).
    pub fn with_notes(mut self, notes: Vec<u8>) -> Self {
        self.notes = notes;
        self
    }

    /// Attaches the commit certificate (not covered by the hash).
    pub fn with_certificate(mut self, certificate: Vec<u8>) -> Self {
        self.certificate = certificate;
        self
    }

    /// `SHA-256(DST ‖ height ‖ prev ‖ cross-link ‖ H(header) ‖ H(body))`.
    pub fn compute_hash(height: u64, prev: &[u8; 32], cross: &BlockRef, header: &[u8], body: &[u8]) -> [u8; 32] {
        Self::hash_from_digests(height, prev, cross, &Sha256::digest(header).into(), &Sha256::digest(body).into())
    }

    /// The block hash from the digests of header and body (what an inclusion proof
    /// carries instead of the body).
    pub fn hash_from_digests(
        height: u64,
        prev: &[u8; 32],
        cross: &BlockRef,
        header_digest: &[u8; 32],
        body_digest: &[u8; 32],
    ) -> [u8; 32] {
        Sha256::new()
            .chain_update(b"dualchain/v1/block")
            .chain_update(height.to_be_bytes())
            .chain_update(prev)
            .chain_update(cross.height.to_be_bytes())
            .chain_update(cross.hash)
            .chain_update(header_digest)
            .chain_update(body_digest)
            .finalize()
            .into()
    }

    fn encode(&self) -> Vec<u8> {
        let parts = self.header.len() + self.body.len() + self.certificate.len() + self.notes.len();
        let mut w = Writer::with_capacity(parts + 128);
        w.u64(self.height);
        w.fixed(&self.prev_hash);
        w.u64(self.cross_link.height);
        w.fixed(&self.cross_link.hash);
        w.bytes(&self.header);
        w.bytes(&self.body);
        w.bytes(&self.certificate);
        w.bytes(&self.notes);
        w.fixed(&self.hash);
        w.into_bytes()
    }

    fn decode(cf: Cf, key: &[u8], payload: &[u8]) -> Result<Self> {
        let block = record::decode(cf, key, payload, |r| {
            Ok(Self {
                height: r.u64()?,
                prev_hash: r.array()?,
                cross_link: BlockRef { height: r.u64()?, hash: r.array()? },
                header: r.bytes("block header", BLOCK_PART_LEN_MAX)?.to_vec(),
                body: r.bytes("block body", BLOCK_PART_LEN_MAX)?.to_vec(),
                certificate: r.bytes("block certificate", BLOCK_PART_LEN_MAX)?.to_vec(),
                notes: r.bytes("block notes", BLOCK_PART_LEN_MAX)?.to_vec(),
                hash: r.array()?,
            })
        })?;
        let b = &block;
        if Self::compute_hash(b.height, &b.prev_hash, &b.cross_link, &b.header, &b.body) != b.hash {
            return Err(record::corrupt(cf, key, "block hash mismatch"));
        }
        Ok(block)
    }
}

/// Where a transaction landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxLocation {
    pub chain: Chain,
    pub height: u64,
    pub position: u32,
}

/// One committed PBFT batch, cut into a block per chain.
#[derive(Debug, Clone, Default)]
pub struct CommittedBatch {
    /// PBFT sequence number of the batch.
    pub seq: u64,
    /// The batch's transactions as the ledger encodes them, where the ledger keeps them
    /// itself (`None`: another store holds them, or no block refers to them).
    pub batch: Option<Vec<u8>>,
    pub data_block: Option<StoredBlock>,
    pub access_block: Option<StoredBlock>,
    /// (tx hash, location) of every transaction in the blocks.
    pub txs: Vec<([u8; 32], TxLocation)>,
    /// Contract state changes: `None` deletes the key.
    pub state: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// The commitment to the contract state after the batch, if the ledger keeps one.
    pub state_root: Option<[u8; 32]>,
}

/// The ledger's view of the store.
pub struct LedgerStore {
    engine: Arc<dyn KvEngine>,
}

fn block_key(height: u64) -> Vec<u8> {
    let mut k = vec![b'h'];
    k.extend_from_slice(&be(height));
    k
}
fn batch_key(seq: u64) -> Vec<u8> {
    let mut k = vec![b'b'];
    k.extend_from_slice(&be(seq));
    k
}
fn hash_key(hash: &[u8; 32]) -> Vec<u8> {
    let mut k = vec![b'x'];
    k.extend_from_slice(hash);
    k
}

impl LedgerStore {
    /// Opens the ledger view, finishing any interrupted commit first.
    pub fn open(engine: Arc<dyn KvEngine>) -> Result<Self> {
        atomic::recover(engine.as_ref())?;
        Ok(Self { engine })
    }

    fn get_record(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        record::get(self.engine.as_ref(), cf, key)
    }

    /// The chain's latest block, if any.
    pub fn tip(&self, chain: Chain) -> Result<Option<BlockRef>> {
        let key = chain.tip_key();
        let Some(p) = self.get_record(Cf::Meta, key)? else { return Ok(None) };
        record::decode(Cf::Meta, key, &p, |r| Ok(BlockRef { height: r.u64()?, hash: r.array()? })).map(Some)
    }

    /// The last applied PBFT sequence number.
    pub fn applied_seq(&self) -> Result<Option<u64>> {
        match self.get_record(Cf::Meta, b"applied_seq")? {
            Some(p) => Ok(Some(record::read_u64(Cf::Meta, b"applied_seq", &p)?)),
            None => Ok(None),
        }
    }

    /// The state commitment stored with the last batch that set one.
    pub fn state_root(&self) -> Result<Option<[u8; 32]>> {
        let key = b"state_root";
        let Some(p) = self.get_record(Cf::Meta, key)? else { return Ok(None) };
        record::decode(Cf::Meta, key, &p, |r| r.array()).map(Some)
    }

    pub fn block(&self, chain: Chain, height: u64) -> Result<Option<StoredBlock>> {
        let key = block_key(height);
        match self.get_record(chain.cf(), &key)? {
            Some(p) => Ok(Some(StoredBlock::decode(chain.cf(), &key, &p)?)),
            None => Ok(None),
        }
    }

    pub fn block_by_hash(&self, chain: Chain, hash: &[u8; 32]) -> Result<Option<StoredBlock>> {
        let key = hash_key(hash);
        match self.get_record(chain.cf(), &key)? {
            Some(p) => self.block(chain, record::read_u64(chain.cf(), &key, &p)?),
            None => Ok(None),
        }
    }

    /// The batch kept at `seq` ([`CommittedBatch::batch`]), if this ledger keeps it.
    pub fn batch(&self, seq: u64) -> Result<Option<Vec<u8>>> {
        self.get_record(Cf::BlocksData, &batch_key(seq))
    }

    pub fn tx(&self, hash: &[u8; 32]) -> Result<Option<TxLocation>> {
        let Some(p) = self.get_record(Cf::TxIndex, hash)? else { return Ok(None) };
        record::decode(Cf::TxIndex, hash, &p, |r: &mut Reader<'_>| {
            let chain = match r.u8()? {
                0 => Chain::Data,
                1 => Chain::Access,
                value => return Err(DecodeError::UnknownVariant { what: "chain", value }),
            };
            Ok(TxLocation { chain, height: r.u64()?, position: r.u32()? })
        })
        .map(Some)
    }

    pub fn state(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_record(Cf::State, key)
    }

    /// State entries under a prefix, in key order, at most `limit`.
    pub fn state_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let end = prefix_end(prefix);
        self.engine
            .scan(Cf::State, prefix, Some(&end), limit)?
            .into_iter()
            .map(|(k, v)| {
                let p = record::open(Cf::State, &k, &v)?.to_vec();
                Ok((k, p))
            })
            .collect()
    }

    fn check_link(&self, chain: Chain, block: &StoredBlock) -> Result<()> {
        let tip = self.tip(chain)?;
        let (expected_height, expected_prev) = match tip {
            Some(t) => (t.height + 1, t.hash),
            None => (0, [0u8; 32]),
        };
        if block.height != expected_height || block.prev_hash != expected_prev {
            return Err(StorageError::Conflict(format!(
                "{chain:?} block {} does not extend the tip (expected height {expected_height} with the tip's hash)",
                block.height
            )));
        }
        if StoredBlock::compute_hash(block.height, &block.prev_hash, &block.cross_link, &block.header, &block.body)
            != block.hash
        {
            return Err(StorageError::Invalid(format!("{chain:?} block {} carries a wrong hash", block.height)));
        }
        Ok(())
    }

    /// Removes the whole ledger (blocks, transaction index, contract state, tips, applied
    /// sequence number and state root) in one atomic write, leaving every other column
    /// family (the consensus log and archive) as it is. A validator re-applies its archive
    /// at start, so this is how a ledger whose state departed from the consortium's is
    /// rebuilt from the agreed history.
    pub fn clear(&self) -> Result<()> {
        let mut wb = WriteBatch::new();
        // Every ledger key is shorter than this (ASCII state keys, 32-byte hashes, 9-byte
        // heights): the range covers the column families whole.
        let end = vec![0xff; 1024];
        for cf in [Cf::BlocksData, Cf::BlocksAccess, Cf::TxIndex, Cf::State] {
            wb.delete_range(cf, Vec::new(), end.clone());
        }
        for key in [Chain::Data.tip_key(), Chain::Access.tip_key(), b"applied_seq", b"state_root"] {
            wb.delete(Cf::Meta, key.to_vec());
        }
        atomic::commit(self.engine.as_ref(), wb)
    }

    /// Applies a committed batch: both blocks, the transaction index, the state changes and
    /// the heights, all or nothing. Batches apply in sequence order, each once.
    pub fn apply(&self, batch: &CommittedBatch) -> Result<()> {
        if let Some(seq) = self.applied_seq()? {
            if batch.seq <= seq {
                return Err(StorageError::Conflict(format!("batch {} is already applied (last {seq})", batch.seq)));
            }
        }
        let mut wb = WriteBatch::new();
        if let Some(kept) = &batch.batch {
            if kept.len() > BLOCK_PART_LEN_MAX {
                return Err(StorageError::Invalid(format!("batch {} too large to keep", batch.seq)));
            }
            wb.put(Cf::BlocksData, batch_key(batch.seq), record::seal(kept));
        }
        for (chain, block) in [(Chain::Data, &batch.data_block), (Chain::Access, &batch.access_block)] {
            let Some(b) = block else { continue };
            self.check_link(chain, b)?;
            wb.put(chain.cf(), block_key(b.height), record::seal(&b.encode()));
            wb.put(chain.cf(), hash_key(&b.hash), record::seal(&be(b.height)));
            let mut tip = Writer::with_capacity(8 + 32);
            tip.u64(b.height);
            tip.fixed(&b.hash);
            wb.put(Cf::Meta, chain.tip_key(), record::seal(&tip.into_bytes()));
        }
        for (hash, loc) in &batch.txs {
            let mut v = Writer::with_capacity(1 + 8 + 4);
            v.u8(loc.chain.code());
            v.u64(loc.height);
            v.u32(loc.position);
            wb.put(Cf::TxIndex, hash.to_vec(), record::seal(&v.into_bytes()));
        }
        for (key, value) in &batch.state {
            match value {
                Some(v) if v.len() <= VALUE_LEN_MAX => wb.put(Cf::State, key.clone(), record::seal(v)),
                Some(_) => return Err(StorageError::Invalid(format!("state value for {} too large", key_hex(key)))),
                None => wb.delete(Cf::State, key.clone()),
            }
        }
        if let Some(root) = batch.state_root {
            wb.put(Cf::Meta, b"state_root".to_vec(), record::seal(&root));
        }
        wb.put(Cf::Meta, b"applied_seq".to_vec(), record::seal(&be(batch.seq)));
        atomic::commit(self.engine.as_ref(), wb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored block's layout: `height ‖ prev ‖ cross height ‖ cross hash ‖ header ‖ body ‖
    /// certificate ‖ notes (each u32 BE length-prefixed) ‖ hash`, integers big-endian.
    #[test]
    fn block_layout_is_fixed_and_decodes_back() {
        let cross = BlockRef { height: 4, hash: [5; 32] };
        let block = StoredBlock::new(2, [1; 32], cross, b"hd".to_vec(), b"body".to_vec())
            .with_certificate(vec![6])
            .with_notes(b"n".to_vec());
        let unnoted = StoredBlock::new(2, [1; 32], cross, b"hd".to_vec(), b"body".to_vec());
        assert_eq!(block.hash, unnoted.hash, "notes and certificate are outside the hash");
        let expected = [
            &2u64.to_be_bytes()[..],
            &[1; 32],
            &4u64.to_be_bytes(),
            &[5; 32],
            &2u32.to_be_bytes(),
            b"hd",
            &4u32.to_be_bytes(),
            b"body",
            &1u32.to_be_bytes(),
            &[6],
            &1u32.to_be_bytes(),
            b"n",
            &block.hash,
        ]
        .concat();
        assert_eq!(block.encode(), expected);
        assert_eq!(StoredBlock::decode(Cf::BlocksData, b"k", &expected).unwrap(), block);
        let mut tampered = expected.clone();
        tampered[8 + 32 + 8 + 32 + 4] ^= 1;
        assert!(matches!(StoredBlock::decode(Cf::BlocksData, b"k", &tampered), Err(StorageError::Corrupt { .. })));
        let mut trailing = expected;
        trailing.push(0);
        assert!(matches!(StoredBlock::decode(Cf::BlocksData, b"k", &trailing), Err(StorageError::Corrupt { .. })));
    }
}
