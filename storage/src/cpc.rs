//! The cloud privacy center's store (DESIGN.md §3 steps 4, 8–10; §7).
//!
//! - **Blobs**: each signcrypted record's encoding, split into checksummed chunks of
//!   [`CHUNK_LEN`] bytes (`cpc/blobs`: dataset ‖ record ‖ chunk), with its SHA-256 in the
//!   manifest.
//! - **Capsules** apart from payloads (`cpc/capsules`: dataset ‖ record), so a grant's
//!   re-encryption reads only capsules, in sequential scans of the runs of records its
//!   token selects.
//! - **Manifests** per dataset (`cpc/manifests`); the manifest hash is H1′, which must equal
//!   the H1 a requester took from the dataset's CP-ABE index before a fetch is served (the
//!   node checks it). A dataset becomes visible only when its manifest is written, after
//!   all of its records.
//! - **Grants** (`cpc/grants`): the owner's re-key token, requester, expiry, revocation.
//! - **Re-encryption jobs** (`cpc/jobs`, `cpc/results`): capsules are read in chunks,
//!   verified and re-encrypted through a [`ReencryptBackend`]; each chunk's results and the
//!   job's progress are one commit, and the last chunk's results are committed with the
//!   receipt. After a crash the job resumes at the first unfinished chunk; results are
//!   served only once the receipt exists, so no partial output is ever handed out.
//!   A job shows its progress per chunk ([`Progress`]: a bar on a terminal, log lines
//!   otherwise).

use std::sync::Arc;

use blstrs::G1Affine;
use dualchain_crypto::cbsre::{Capsule, DatasetId, ReKeyToken, Reencrypted, Signcrypted};
use dualchain_crypto::encoding::Writer;
use dualchain_crypto::reencrypt::ReencryptBackend;
use dualchain_crypto::sign::PublicKey;
use dualchain_crypto::{Codec, DecodeError};
use dualchain_progress::Progress;
use rand::RngCore;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::atomic;
use crate::engine::{prefix_end, Cf, KvEngine, WriteBatch};
use crate::error::{key_hex, Result, StorageError};
use crate::record::{self, be};

/// Blob chunk size.
pub const CHUNK_LEN: usize = 256 << 10;
/// Records per ingest commit.
pub const INGEST_BATCH: usize = 256;
/// Most records in one dataset.
pub const DATASET_RECORDS_MAX: usize = 1 << 24;
/// Longest owner name in a manifest.
const OWNER_LEN_MAX: usize = 256;
/// Longest re-key token in a grant record.
const TOKEN_LEN_MAX: usize = 1 << 12;
/// One manifest entry: blob length and hash.
const MANIFEST_ENTRY_LEN: usize = 8 + 32;
/// Longest blob a manifest may name: one signcrypted record's encoding. Reading a record
/// allocates its blob's length up front, so a manifest on disk may not name more.
const BLOB_LEN_MAX: usize = <Signcrypted as Codec>::MAX_LEN;

fn dataset_key(d: &DatasetId, index: u64) -> Vec<u8> {
    let mut k = d.0.to_vec();
    k.extend_from_slice(&be(index));
    k
}
fn chunk_key(d: &DatasetId, index: u64, chunk: u32) -> Vec<u8> {
    let mut k = dataset_key(d, index);
    k.extend_from_slice(&chunk.to_be_bytes());
    k
}
fn result_key(grant: &[u8; 32], index: u64) -> Vec<u8> {
    let mut k = grant.to_vec();
    k.extend_from_slice(&be(index));
    k
}
fn job_key(grant: &[u8; 32]) -> Vec<u8> {
    [b"job/".as_slice(), grant].concat()
}
fn receipt_key(grant: &[u8; 32]) -> Vec<u8> {
    [b"receipt/".as_slice(), grant].concat()
}
/// The tombstone of a grant the retention sweep cleared: when (UNIX seconds).
fn swept_key(grant: &[u8; 32]) -> Vec<u8> {
    [b"swept/".as_slice(), grant].concat()
}

/// The tombstone of a dataset its owner erased: when (UNIX seconds).
fn erased_key(dataset: &DatasetId) -> Vec<u8> {
    [b"erased/".as_slice(), &dataset.0].concat()
}

/// What erasing a dataset deleted: its records and the grants on it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Erased {
    pub records: usize,
    pub grants: usize,
}

/// Grants read per step of a retention sweep.
const SWEEP_PAGE: usize = 256;

/// What a retention sweep deleted: the grants it cleared and their re-encrypted records.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub grants: usize,
    pub results: usize,
}

/// One record of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    pub blob_len: u64,
    pub blob_hash: [u8; 32],
}

/// A dataset's manifest; its hash is H1′.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub dataset: DatasetId,
    pub owner: String,
    pub entries: Vec<ManifestEntry>,
}

impl Manifest {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(32 + 4 + self.owner.len() + 8 + MANIFEST_ENTRY_LEN * self.entries.len());
        w.fixed(&self.dataset.0);
        w.str(&self.owner);
        w.u64(self.entries.len() as u64);
        for e in &self.entries {
            w.u64(e.blob_len);
            w.fixed(&e.blob_hash);
        }
        w.into_bytes()
    }
    fn decode(key: &[u8], p: &[u8]) -> Result<Self> {
        record::decode(Cf::CpcManifests, key, p, |r| {
            let dataset = DatasetId(r.array()?);
            let owner = r.str("manifest owner", OWNER_LEN_MAX)?.to_owned();
            let n = r.u64()?;
            let n = r.check_count("manifest entries", n, DATASET_RECORDS_MAX, MANIFEST_ENTRY_LEN)?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                let blob_len = r.u64()?;
                if blob_len > BLOB_LEN_MAX as u64 {
                    let len = usize::try_from(blob_len).unwrap_or(usize::MAX);
                    return Err(DecodeError::TooLong { what: "manifest blob", len, max: BLOB_LEN_MAX });
                }
                entries.push(ManifestEntry { blob_len, blob_hash: r.array()? });
            }
            Ok(Self { dataset, owner, entries })
        })
    }
    /// H1′ = SHA-256(DST ‖ manifest).
    pub fn hash(&self) -> [u8; 32] {
        Sha256::new().chain_update(b"dualchain/v1/cpc-manifest").chain_update(self.encode()).finalize().into()
    }
}

/// A grant as the CPC holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: [u8; 32],
    pub token: ReKeyToken,
    pub revoked: bool,
}

impl Grant {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.fixed(&self.id);
        w.u8(u8::from(self.revoked));
        w.bytes(&self.token.to_bytes());
        w.into_bytes()
    }
    fn decode(key: &[u8], p: &[u8]) -> Result<Self> {
        record::decode(Cf::CpcGrants, key, p, |r| {
            Ok(Self {
                id: r.array()?,
                revoked: r.bool("grant revoked")?,
                token: ReKeyToken::from_bytes(r.bytes("grant token", TOKEN_LEN_MAX)?)?,
            })
        })
    }
}

/// The CPC's receipt for a completed re-encryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub grant: [u8; 32],
    pub dataset: DatasetId,
    pub records: u64,
    /// SHA-256 over the re-encrypted capsules in record order.
    pub results_digest: [u8; 32],
    pub completed_at: u64,
}

impl Receipt {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(32 + 32 + 8 + 32 + 8);
        w.fixed(&self.grant);
        w.fixed(&self.dataset.0);
        w.u64(self.records);
        w.fixed(&self.results_digest);
        w.u64(self.completed_at);
        w.into_bytes()
    }
    fn decode(key: &[u8], p: &[u8]) -> Result<Self> {
        record::decode(Cf::CpcJobs, key, p, |r| {
            Ok(Self {
                grant: r.array()?,
                dataset: DatasetId(r.array()?),
                records: r.u64()?,
                results_digest: r.array()?,
                completed_at: r.u64()?,
            })
        })
    }
}

/// Progress of one grant's re-encryption job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Job {
    next: u64,
    digest_state: [u8; 32],
}

impl Job {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(8 + 32);
        w.u64(self.next);
        w.fixed(&self.digest_state);
        w.into_bytes()
    }
    fn decode(key: &[u8], p: &[u8]) -> Result<Self> {
        record::decode(Cf::CpcJobs, key, p, |r| Ok(Self { next: r.u64()?, digest_state: r.array()? }))
    }
}

/// The CPC store.
pub struct CpcStore {
    engine: Arc<dyn KvEngine>,
}

impl CpcStore {
    /// Opens the CPC view, finishing any interrupted commit first.
    pub fn open(engine: Arc<dyn KvEngine>) -> Result<Self> {
        atomic::recover(engine.as_ref())?;
        Ok(Self { engine })
    }

    fn get_record(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        record::get(self.engine.as_ref(), cf, key)
    }

    /// Stores a dataset's signcrypted records (indices 0..n, one owner, one dataset) after
    /// checking every owner signature, then its manifest. Returns the manifest (H1′).
    pub fn ingest(&self, owner_signing_key: &PublicKey, records: &[Signcrypted]) -> Result<Manifest> {
        let first =
            records.first().ok_or_else(|| StorageError::Invalid("a dataset needs at least one record".into()))?;
        if records.len() > DATASET_RECORDS_MAX {
            return Err(StorageError::Invalid(format!("more than {DATASET_RECORDS_MAX} records")));
        }
        let (dataset, owner) = (first.header.dataset, first.header.owner.clone());
        if self.manifest(&dataset)?.is_some() {
            return Err(StorageError::Conflict(format!("dataset {dataset} is already stored")));
        }
        if self.erased(&dataset)?.is_some() {
            return Err(StorageError::Conflict(format!("dataset {dataset} was erased")));
        }
        let mut entries = Vec::with_capacity(records.len());
        for (chunk_no, chunk) in records.chunks(INGEST_BATCH).enumerate() {
            let mut wb = WriteBatch::new();
            for (j, rec) in chunk.iter().enumerate() {
                let index = (chunk_no * INGEST_BATCH + j) as u64;
                if rec.header.dataset != dataset || rec.header.owner != owner || rec.header.record_index != index {
                    return Err(StorageError::Invalid(format!(
                        "record {index} is not record {index} of dataset {dataset} by {owner}"
                    )));
                }
                rec.verify_signature(owner_signing_key)?;
                wb.put(Cf::CpcCapsules, dataset_key(&dataset, index), record::seal(&rec.capsule.to_bytes()));
                let blob = rec.to_bytes();
                for (c, part) in blob.chunks(CHUNK_LEN).enumerate() {
                    wb.put(Cf::CpcBlobs, chunk_key(&dataset, index, c as u32), record::seal(part));
                }
                entries.push(ManifestEntry { blob_len: blob.len() as u64, blob_hash: Sha256::digest(&blob).into() });
            }
            atomic::commit(self.engine.as_ref(), wb)?;
        }
        let manifest = Manifest { dataset, owner, entries };
        let mut wb = WriteBatch::new();
        wb.put(Cf::CpcManifests, dataset.0.to_vec(), record::seal(&manifest.encode()));
        atomic::commit(self.engine.as_ref(), wb)?;
        Ok(manifest)
    }

    pub fn manifest(&self, dataset: &DatasetId) -> Result<Option<Manifest>> {
        match self.get_record(Cf::CpcManifests, &dataset.0)? {
            Some(p) => Ok(Some(Manifest::decode(&dataset.0, &p)?)),
            None => Ok(None),
        }
    }

    /// Reads one record back, checking every chunk's checksum and the blob's hash.
    pub fn record(&self, dataset: &DatasetId, index: u64) -> Result<Signcrypted> {
        let manifest = self.manifest(dataset)?.ok_or_else(|| StorageError::NotFound(format!("dataset {dataset}")))?;
        self.record_in(&manifest, index)
    }

    /// Every record of a dataset, in index order, each read as [`CpcStore::record`] reads
    /// one (its owner takes them back to re-register what an erasure leaves).
    pub fn records(&self, dataset: &DatasetId) -> Result<Vec<Signcrypted>> {
        let manifest = self.manifest(dataset)?.ok_or_else(|| StorageError::NotFound(format!("dataset {dataset}")))?;
        (0..manifest.entries.len() as u64).map(|i| self.record_in(&manifest, i)).collect()
    }

    /// [`CpcStore::record`] against a manifest already read (callers reading many records
    /// decode the manifest once).
    fn record_in(&self, manifest: &Manifest, index: u64) -> Result<Signcrypted> {
        let dataset = &manifest.dataset;
        let entry =
            manifest.entries.get(index as usize).ok_or_else(|| StorageError::NotFound(format!("record {index}")))?;
        let from = dataset_key(dataset, index);
        let rows = self.engine.scan(Cf::CpcBlobs, &from, Some(&prefix_end(&from)), usize::MAX)?;
        let mut blob = Vec::with_capacity(entry.blob_len as usize);
        for (c, (k, v)) in rows.iter().enumerate() {
            if k[k.len() - 4..] != (c as u32).to_be_bytes() {
                return Err(StorageError::Corrupt {
                    cf: Cf::CpcBlobs.name(),
                    key: key_hex(k),
                    reason: "missing chunk".into(),
                });
            }
            blob.extend_from_slice(record::open(Cf::CpcBlobs, k, v)?);
        }
        if blob.len() as u64 != entry.blob_len || <[u8; 32]>::from(Sha256::digest(&blob)) != entry.blob_hash {
            return Err(StorageError::Corrupt {
                cf: Cf::CpcBlobs.name(),
                key: key_hex(&from),
                reason: "blob does not match its manifest entry".into(),
            });
        }
        Signcrypted::from_bytes(&blob).map_err(|e| StorageError::Corrupt {
            cf: Cf::CpcBlobs.name(),
            key: key_hex(&from),
            reason: e.to_string(),
        })
    }

    /// Accepts a grant: the owner's token must verify, be unexpired, match the dataset and
    /// select records it holds. (H1 is in the dataset's CP-ABE index, which a CPC cannot
    /// open: the requester presents it at fetch, checked against this store's manifest.)
    pub fn put_grant(
        &self,
        grant_id: [u8; 32],
        token: ReKeyToken,
        owner_signing_key: &PublicKey,
        now: u64,
    ) -> Result<()> {
        let manifest = self
            .manifest(&token.dataset)?
            .ok_or_else(|| StorageError::Grant(format!("unknown dataset {}", token.dataset)))?;
        if manifest.owner != token.owner {
            return Err(StorageError::Grant("the token's owner does not own the dataset".into()));
        }
        token.verify(owner_signing_key, now)?;
        selection(&token, manifest.entries.len() as u64)?;
        if token.grant_id != grant_id {
            return Err(StorageError::Grant("the token was issued for another grant".into()));
        }
        if self.get_record(Cf::CpcGrants, &grant_id)?.is_some() {
            return Err(StorageError::Conflict("grant already stored".into()));
        }
        if self.swept(&grant_id)?.is_some() {
            return Err(StorageError::Conflict("the grant ended and was swept; it is not stored again".into()));
        }
        let mut wb = WriteBatch::new();
        wb.put(Cf::CpcGrants, grant_id.to_vec(), record::seal(&Grant { id: grant_id, token, revoked: false }.encode()));
        atomic::commit(self.engine.as_ref(), wb)
    }

    pub fn grant(&self, id: &[u8; 32]) -> Result<Option<Grant>> {
        match self.get_record(Cf::CpcGrants, id)? {
            Some(p) => Ok(Some(Grant::decode(id, &p)?)),
            None => Ok(None),
        }
    }

    /// Revokes a grant: no further re-encryption or result delivery under it.
    pub fn revoke_grant(&self, id: &[u8; 32]) -> Result<()> {
        let mut g = self.grant(id)?.ok_or_else(|| StorageError::NotFound("grant".into()))?;
        g.revoked = true;
        let mut wb = WriteBatch::new();
        wb.put(Cf::CpcGrants, id.to_vec(), record::seal(&g.encode()));
        atomic::commit(self.engine.as_ref(), wb)
    }

    /// The retention sweep: deletes what grants that ended (revoked, or expired by `now`,
    /// UNIX seconds) leave behind: their re-encrypted records, their job and their token
    /// (the re-encryption key). A tombstone keeps the grant from being stored again and
    /// names why it is gone; the receipt (counts and digest, no data) stays for audit.
    /// Each grant is cleared in one atomic write, so a crash mid-sweep leaves every grant
    /// either whole or cleared, and the next sweep finishes the work.
    ///
    /// Beyond DESIGN.md, where re-encrypted results outlive their grant.
    pub fn sweep(&self, now: u64) -> Result<Swept> {
        let mut out = Swept::default();
        for id in self.grants_where(|g| g.revoked || now >= g.token.expiry)? {
            out.results += self.clear_grant(&id, now)?;
            out.grants += 1;
        }
        Ok(out)
    }

    /// The ids of the stored grants that satisfy `pick`, read a page at a time.
    fn grants_where(&self, pick: impl Fn(&Grant) -> bool) -> Result<Vec<[u8; 32]>> {
        let mut out = Vec::new();
        let mut from: Vec<u8> = Vec::new();
        loop {
            let rows = self.engine.scan(Cf::CpcGrants, &from, None, SWEEP_PAGE)?;
            let Some((last, _)) = rows.last() else { break };
            from = [last.as_slice(), &[0]].concat();
            for (k, v) in &rows {
                let g = Grant::decode(k, record::open(Cf::CpcGrants, k, v)?)?;
                if pick(&g) {
                    out.push(g.id);
                }
            }
            if rows.len() < SWEEP_PAGE {
                break;
            }
        }
        Ok(out)
    }

    /// Deletes one ended grant's results, job and token; leaves its tombstone. Returns the
    /// results deleted.
    fn clear_grant(&self, id: &[u8; 32], now: u64) -> Result<usize> {
        let results = self.engine.scan(Cf::CpcResults, id, Some(&prefix_end(id)), usize::MAX)?;
        let mut wb = WriteBatch::new();
        for (k, _) in &results {
            wb.delete(Cf::CpcResults, k.clone());
        }
        wb.delete(Cf::CpcJobs, job_key(id));
        wb.delete(Cf::CpcGrants, id.to_vec());
        wb.put(Cf::CpcJobs, swept_key(id), record::seal(&now.to_be_bytes()));
        atomic::commit(self.engine.as_ref(), wb)?;
        Ok(results.len())
    }

    /// Erases a dataset its owner erased on chain: its manifest, every record's payload and
    /// capsule, and every grant on it (results, job, token) in one atomic write; a
    /// tombstone refuses the dataset from then on. Idempotent.
    ///
    /// What was deleted from RocksDB stays in its files until compaction; those copies
    /// and any backup decrypt no more than the live records did (only the owner's dataset
    /// key or a grant's re-key opens them), and the owner's node destroys the dataset's
    /// key at the same time (crypto-shredding).
    pub fn erase_dataset(&self, dataset: &DatasetId, now: u64) -> Result<Erased> {
        if self.erased(dataset)?.is_some() {
            return Ok(Erased::default());
        }
        let grants = self.grants_where(|g| g.token.dataset == *dataset)?;
        for g in &grants {
            self.clear_grant(g, now)?;
        }
        let end = prefix_end(&dataset.0);
        let mut wb = WriteBatch::new();
        let capsules = self.engine.scan(Cf::CpcCapsules, &dataset.0, Some(&end), usize::MAX)?;
        for (k, _) in &capsules {
            wb.delete(Cf::CpcCapsules, k.clone());
        }
        for (k, _) in self.engine.scan(Cf::CpcBlobs, &dataset.0, Some(&end), usize::MAX)? {
            wb.delete(Cf::CpcBlobs, k);
        }
        wb.delete(Cf::CpcManifests, dataset.0.to_vec());
        wb.put(Cf::CpcJobs, erased_key(dataset), record::seal(&now.to_be_bytes()));
        atomic::commit(self.engine.as_ref(), wb)?;
        Ok(Erased { records: capsules.len(), grants: grants.len() })
    }

    /// When the dataset was erased here (UNIX seconds), if it was.
    pub fn erased(&self, dataset: &DatasetId) -> Result<Option<u64>> {
        let key = erased_key(dataset);
        match self.get_record(Cf::CpcJobs, &key)? {
            Some(p) => record::decode(Cf::CpcJobs, &key, &p, |r| r.u64()).map(Some),
            None => Ok(None),
        }
    }

    /// When the retention sweep cleared a grant (UNIX seconds), if it did.
    pub fn swept(&self, id: &[u8; 32]) -> Result<Option<u64>> {
        let key = swept_key(id);
        match self.get_record(Cf::CpcJobs, &key)? {
            Some(p) => record::decode(Cf::CpcJobs, &key, &p, |r| r.u64()).map(Some),
            None => Ok(None),
        }
    }

    fn usable_grant(&self, id: &[u8; 32], owner_signing_key: &PublicKey, now: u64) -> Result<Grant> {
        if let Some(at) = self.swept(id)? {
            return Err(StorageError::Grant(format!(
                "the grant ended; its re-encrypted records were deleted at {at} (retention)"
            )));
        }
        let g = self.grant(id)?.ok_or_else(|| StorageError::Grant("unknown grant".into()))?;
        if g.revoked {
            return Err(StorageError::Grant("the grant is revoked".into()));
        }
        if now >= g.token.expiry {
            return Err(StorageError::Grant(format!("the grant expired at {}", g.token.expiry)));
        }
        g.token.verify(owner_signing_key, now)?;
        Ok(g)
    }

    fn job(&self, grant: &[u8; 32]) -> Result<Option<Job>> {
        let key = job_key(grant);
        let Some(p) = self.get_record(Cf::CpcJobs, &key)? else { return Ok(None) };
        Job::decode(&key, &p).map(Some)
    }

    pub fn receipt(&self, grant: &[u8; 32]) -> Result<Option<Receipt>> {
        let key = receipt_key(grant);
        match self.get_record(Cf::CpcJobs, &key)? {
            Some(p) => Ok(Some(Receipt::decode(&key, &p)?)),
            None => Ok(None),
        }
    }

    /// Up to `count` capsules of `dataset` from record `first` on, in record order; a gap or
    /// an empty read is corruption (the manifest says the records exist).
    fn capsules(&self, dataset: &DatasetId, first: u64, count: usize) -> Result<Vec<Capsule>> {
        let end = prefix_end(&dataset.0);
        let rows = self.engine.scan(Cf::CpcCapsules, &dataset_key(dataset, first), Some(&end), count)?;
        // Decoding validates both points of every capsule (decompression and subgroup
        // check), which costs as much as the batch verification itself: spread it over
        // the cores.
        let capsules: Vec<Capsule> = rows
            .par_iter()
            .enumerate()
            .map(|(i, (k, v))| {
                if k[32..] != be(first + i as u64) {
                    return Err(StorageError::Corrupt {
                        cf: Cf::CpcCapsules.name(),
                        key: key_hex(k),
                        reason: "capsule out of sequence".into(),
                    });
                }
                Capsule::from_bytes(record::open(Cf::CpcCapsules, k, v)?).map_err(|e| StorageError::Corrupt {
                    cf: Cf::CpcCapsules.name(),
                    key: key_hex(k),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<_>>()?;
        if capsules.is_empty() {
            return Err(StorageError::Corrupt {
                cf: Cf::CpcCapsules.name(),
                key: key_hex(&dataset_key(dataset, first)),
                reason: "capsule missing".into(),
            });
        }
        Ok(capsules)
    }

    /// The capsules of the records at `indexes` (ascending), read in runs of consecutive
    /// indexes.
    fn capsules_at(&self, dataset: &DatasetId, indexes: &[u64]) -> Result<Vec<Capsule>> {
        let mut out = Vec::with_capacity(indexes.len());
        let mut start = 0;
        while start < indexes.len() {
            let mut end = start + 1;
            while end < indexes.len() && indexes[end] == indexes[end - 1] + 1 {
                end += 1;
            }
            out.extend(self.capsules(dataset, indexes[start], end - start)?);
            start = end;
        }
        Ok(out)
    }

    /// Runs (or resumes) the grant's re-encryption in chunks of `chunk_records` capsules.
    /// Returns the receipt; a completed job returns its existing receipt.
    pub fn reencrypt(
        &self,
        grant_id: &[u8; 32],
        backend: &dyn ReencryptBackend,
        owner_signing_key: &PublicKey,
        now: u64,
        chunk_records: usize,
        rng: &mut impl RngCore,
    ) -> Result<Receipt> {
        if let Some(r) = self.receipt(grant_id)? {
            return Ok(r);
        }
        let grant = self.usable_grant(grant_id, owner_signing_key, now)?;
        let dataset = grant.token.dataset;
        let manifest = self.manifest(&dataset)?.ok_or_else(|| StorageError::NotFound(format!("dataset {dataset}")))?;
        // The records the token selects (those satisfying the grant's demand), or all.
        let selected = selection(&grant.token, manifest.entries.len() as u64)?;
        let total = selected.len() as u64;
        let mut job = self.job(grant_id)?.unwrap_or(Job { next: 0, digest_state: [0; 32] });
        let chunk_records = chunk_records.clamp(1, dualchain_crypto::reencrypt::BATCH_LEN_MAX);
        // Per chunk: a bar on a terminal, a few log lines otherwise. A resumed job starts
        // where it stopped.
        let progress = Progress::new(&format!("re-encrypting dataset {dataset}"), total);
        progress.set(job.next);
        while job.next < total {
            let chunk = &selected[job.next as usize..(job.next as usize + chunk_records).min(selected.len())];
            let capsules = self.capsules_at(&dataset, chunk)?;
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut seed);
            if let Err(bad) = backend.verify_capsules(&capsules, seed) {
                return Err(StorageError::Crypto(dualchain_crypto::CryptoError::BadCapsule {
                    index: chunk[bad[0]] as usize,
                }));
            }
            let outputs = backend.reencrypt(&grant.token.rk, &capsules);
            let mut wb = WriteBatch::new();
            let mut digest = Sha256::new().chain_update(job.digest_state);
            for (i, (e, v)) in outputs.iter().enumerate() {
                let mut w = Writer::with_capacity(2 * 48);
                w.g1(e);
                w.g1(v);
                let value = w.into_bytes();
                digest.update(&value);
                wb.put(Cf::CpcResults, result_key(grant_id, chunk[i]), record::seal(&value));
            }
            job = Job { next: job.next + outputs.len() as u64, digest_state: digest.finalize().into() };
            if job.next >= total {
                let receipt = Receipt {
                    grant: *grant_id,
                    dataset,
                    records: total,
                    results_digest: job.digest_state,
                    completed_at: now,
                };
                wb.put(Cf::CpcJobs, receipt_key(grant_id), record::seal(&receipt.encode()));
                wb.delete(Cf::CpcJobs, job_key(grant_id));
            } else {
                wb.put(Cf::CpcJobs, job_key(grant_id), record::seal(&job.encode()));
            }
            atomic::commit(self.engine.as_ref(), wb)?;
            progress.set(job.next);
        }
        progress.finish();
        self.receipt(grant_id)?.ok_or_else(|| StorageError::Conflict("job finished without a receipt".into()))
    }

    /// The re-encrypted records of a completed, unrevoked, unexpired grant.
    pub fn results(&self, grant_id: &[u8; 32], owner_signing_key: &PublicKey, now: u64) -> Result<Vec<Reencrypted>> {
        let grant = self.usable_grant(grant_id, owner_signing_key, now)?;
        let receipt =
            self.receipt(grant_id)?.ok_or_else(|| StorageError::Grant("re-encryption has not completed".into()))?;
        let manifest = self
            .manifest(&receipt.dataset)?
            .ok_or_else(|| StorageError::NotFound(format!("dataset {}", receipt.dataset)))?;
        let rows = self.engine.scan(Cf::CpcResults, grant_id, Some(&prefix_end(grant_id)), usize::MAX)?;
        if rows.len() as u64 != receipt.records {
            return Err(StorageError::Corrupt {
                cf: Cf::CpcResults.name(),
                key: key_hex(grant_id),
                reason: "result count differs from the receipt".into(),
            });
        }
        rows.iter()
            .map(|(k, v)| {
                let i = k.get(32..40).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
                let i = i.filter(|i| grant.token.records.as_ref().is_none_or(|sel| sel.contains(*i)));
                let i = i.ok_or_else(|| record::corrupt(Cf::CpcResults, k, "a result outside the token's records"))?;
                let p = record::open(Cf::CpcResults, k, v)?;
                let (e, v) = record::decode(Cf::CpcResults, k, p, |r| Ok((r.array::<48>()?, r.array::<48>()?)))?;
                let point = |b: &[u8; 48]| -> Result<G1Affine> {
                    Option::from(G1Affine::from_compressed(b)).ok_or_else(|| corrupt_result(k))
                };
                Ok(Reencrypted {
                    original: self.record_in(&manifest, i)?,
                    e_prime: point(&e)?,
                    v_prime: point(&v)?,
                    x_pub: grant.token.x_pub,
                })
            })
            .collect()
    }
}

/// The record indexes a token selects in a dataset of `total` records.
fn selection(token: &ReKeyToken, total: u64) -> Result<Vec<u64>> {
    let selected: Vec<u64> = match &token.records {
        None => (0..total).collect(),
        Some(sel) => sel.indexes().collect(),
    };
    match selected.last() {
        Some(&last) if last >= total => {
            Err(StorageError::Grant(format!("the token selects record {last}; the dataset holds {total}")))
        }
        _ => Ok(selected),
    }
}

fn corrupt_result(k: &[u8]) -> StorageError {
    record::corrupt(Cf::CpcResults, k, "not two compressed G1 points")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The manifest's bytes are H1′, compared with the H1 in the dataset's index: its layout
    /// (`dataset ‖ owner (u32 BE length) ‖ entries (u64 BE) ‖ (blob_len u64 BE ‖ hash)*`)
    /// may not drift.
    #[test]
    fn manifest_layout_is_fixed_and_decodes_back() {
        let m = Manifest {
            dataset: DatasetId([3; 32]),
            owner: "hospital-a".into(),
            entries: vec![ManifestEntry { blob_len: 7, blob_hash: [9; 32] }],
        };
        let expected =
            [&[3u8; 32][..], &10u32.to_be_bytes(), b"hospital-a", &1u64.to_be_bytes(), &7u64.to_be_bytes(), &[9; 32]]
                .concat();
        assert_eq!(m.encode(), expected);
        assert_eq!(Manifest::decode(b"k", &expected).unwrap(), m);
        // A count the payload cannot hold is refused before anything is allocated for it.
        let mut lying = expected[..32 + 4 + 10].to_vec();
        lying.extend_from_slice(&(DATASET_RECORDS_MAX as u64).to_be_bytes());
        assert!(matches!(Manifest::decode(b"k", &lying), Err(StorageError::Corrupt { .. })));
        for cut in 0..expected.len() {
            assert!(Manifest::decode(b"k", &expected[..cut]).is_err(), "cut at {cut}");
        }
    }

    /// Found by the `storage_record` fuzz target: a manifest naming a blob of 2^40 bytes made
    /// `record` allocate that much up front and abort. A blob longer than any signcrypted
    /// record is now refused as corruption when the manifest is read.
    #[test]
    fn a_manifest_naming_an_oversized_blob_is_corrupt() {
        let m = |blob_len| Manifest {
            dataset: DatasetId([3; 32]),
            owner: "hospital-a".into(),
            entries: vec![ManifestEntry { blob_len, blob_hash: [9; 32] }],
        };
        assert!(Manifest::decode(b"k", &m(BLOB_LEN_MAX as u64).encode()).is_ok());
        for blob_len in [BLOB_LEN_MAX as u64 + 1, 1 << 40, u64::MAX] {
            let err = Manifest::decode(b"k", &m(blob_len).encode()).unwrap_err();
            assert!(matches!(&err, StorageError::Corrupt { reason, .. } if reason.contains("manifest blob")), "{err}");
        }
        // Through the store: the record read reports corruption instead of aborting.
        let store = CpcStore::open(Arc::new(crate::memory::MemoryEngine::new())).unwrap();
        let mut wb = WriteBatch::new();
        wb.put(Cf::CpcManifests, [3u8; 32].to_vec(), record::seal(&m(1 << 40).encode()));
        store.engine.write(wb).unwrap();
        assert!(matches!(store.record(&DatasetId([3; 32]), 0), Err(StorageError::Corrupt { .. })));
    }
}
