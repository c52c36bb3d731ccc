//! A hospital's node: it keeps its datasets' openings, proves supply when a demand on one
//! of them is final, and issues the re-key (sealed to the grant's CPC under ESKI-IBE) when
//! a grant is final.
//!
//! Consent (beyond DESIGN.md): it keeps its patients' Consents
//! ([`crate::member::consent`]) and, for each dataset, the consent mask of every record
//! with the salt of their commitment C_K on chain. A recorded Consent re-commits every
//! dataset it holds with fresh salts ([`OwnerNode::record_consent`]), so the chain does not
//! tell which datasets hold the patient's records. Before a supply proof, the dataset's
//! masks are brought up to date (a consent period may have begun or ended), and where they
//! changed every dataset is re-committed the same way; the proof counts only records whose
//! consent permits the demand's use, and a re-key selects only those, with the masks as
//! they are when it is issued.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use blstrs::Scalar as Fr;
use dualchain_crypto::cbsre::{
    DatasetId, DelegatingPublicKey, DelegatingSecretKey, ReKeyToken, RecordSelection, TokenScope,
};
use dualchain_crypto::cert::Certificate;
use dualchain_crypto::ibe::{self, IbePublicParams};
use dualchain_crypto::Codec;
use dualchain_kernels::Compute;
use dualchain_ledger::tx::{Hash, TxKind};
use dualchain_prover::params::ProvingKey;
use dualchain_prover::supply::{self, SupplyCircuit, SupplyShape};
use dualchain_prover::verify::proof_to_bytes;
use dualchain_prover::ProverError;
use ff::Field;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::follow::{follow_home, Agent};
use super::{Activity, AgentMetrics, Log, Reaction};
use crate::files::write_private;
use crate::member::client::Client;
use crate::member::consent::{ConsentBook, ConsentRule};
use crate::member::emergency::{seal_pointer, Scope, Subjects, SUBJECTS_AAD};
use crate::member::erasure::{Erasure, ErasureLog};
use crate::member::pseudonym::{PseudonymKey, Pseudonyms, PSEUDONYMS_AAD};
use crate::member::sharing;
use crate::member::{Member, REKEY_AAD};

/// A dataset as its owner keeps it: the records the commitment opens to, its name and
/// the CPC holding it (neither is on chain; both are in its CP-ABE index).
#[derive(Clone)]
pub struct OwnedDataset {
    pub name: String,
    pub cpc: String,
    pub shape: SupplyShape,
    pub records: Vec<supply::Record>,
    pub salt: Fr,
    /// Each record's patient reference (taken out of the record before it left; see
    /// [`crate::member::pseudonym`]), aligned with `records`; empty for datasets kept by
    /// earlier builds, whose records carry their references.
    pub patients: Vec<String>,
    /// The key of this dataset's per-grant pseudonyms.
    pub pseudonym_key: PseudonymKey,
    /// The dataset's own delegating key, its records are signcrypted to and its re-key
    /// tokens issued from (beyond DESIGN.md, where one key per owner serves every dataset:
    /// a CPC colluding with one grantee recovers it, and with it every dataset of the
    /// owner). `None` for datasets of earlier builds, which use the member's key.
    pub dsk: Option<DelegatingSecretKey>,
    /// The manifest hash H1 (`None` for datasets of earlier builds): a break-glass grant's
    /// pointer carries it, since its clinician may not open the CP-ABE index.
    pub h1: Option<Hash>,
    /// Each record's consent mask as last committed (C_K on chain opens to these under
    /// `consent_salt`).
    pub consent: Vec<u8>,
    pub consent_salt: Fr,
    /// What each grant's re-key selected (record indexes), noted once the ledger accepted
    /// it: the access log names the patients a grant delivered, and a changed consent the
    /// grants that delivered the patient's records, from this.
    pub delivered: Vec<(Hash, Vec<u32>)>,
    /// The dataset this one replaces: a patient's erasure registers the other patients'
    /// records anew, then erases the old dataset (a retry after a crash in between finds
    /// the replacement here instead of making another).
    pub replaces: Option<Hash>,
}

impl OwnedDataset {
    pub fn to_json(&self) -> serde_json::Value {
        let records: Vec<[u64; 8]> = self.records.iter().map(supply::Record::fields).collect();
        serde_json::json!({
            "name": self.name,
            "cpc": self.cpc,
            "shape": dualchain_prover::shapes::Shape::Supply(self.shape).name(),
            "salt": hex::encode(dualchain_ledger::tx::FrBytes::from_fr(&self.salt).0),
            "records": records,
            "patients": self.patients,
            "pseudonym_key": hex::encode(self.pseudonym_key.0),
            "dsk": self.dsk.as_ref().map(crate::files::to_hex),
            "h1": self.h1.map(hex::encode),
            "consent": hex::encode(&self.consent),
            "consent_salt": hex::encode(dualchain_ledger::tx::FrBytes::from_fr(&self.consent_salt).0),
            "delivered": self.delivered.iter().map(|(g, r)| serde_json::json!([hex::encode(g), r])).collect::<Vec<_>>(),
            "replaces": self.replaces.map(hex::encode),
        })
    }

    pub fn from_json(v: &serde_json::Value) -> Result<Self> {
        let shape = match v["shape"].as_str().and_then(dualchain_prover::shapes::Shape::from_name) {
            Some(dualchain_prover::shapes::Shape::Supply(s)) => s,
            _ => bail!("no supply shape"),
        };
        let mut salt = [0u8; 32];
        hex::decode_to_slice(v["salt"].as_str().unwrap_or(""), &mut salt)?;
        let salt = dualchain_ledger::tx::FrBytes(salt).to_fr().map_err(|e| anyhow!(e))?;
        let rows: Vec<[u64; 8]> = serde_json::from_value(v["records"].clone())?;
        let records: Vec<supply::Record> =
            rows.into_iter().map(supply::Record::from_fields).collect::<Result<_, _>>()?;
        let text = |k: &str| v[k].as_str().map(str::to_string).ok_or_else(|| anyhow!("no {k}"));
        let patients: Vec<String> = match v.get("patients") {
            Some(p) => serde_json::from_value(p.clone())?,
            None => Vec::new(),
        };
        if !patients.is_empty() && patients.len() != records.len() {
            bail!("{} patient references for {} records", patients.len(), records.len());
        }
        let pseudonym_key = match v.get("pseudonym_key").and_then(|k| k.as_str()) {
            Some(k) => {
                let mut key = [0u8; 32];
                hex::decode_to_slice(k, &mut key).context("pseudonym_key")?;
                PseudonymKey(key)
            }
            None => PseudonymKey::random(),
        };
        let dsk = match v.get("dsk").and_then(|k| k.as_str()) {
            Some(k) => Some(crate::files::from_hex(k, "dataset delegating key")?),
            None => None,
        };
        // An optional 32-byte id in hex.
        let opt_id = |key: &str| -> Result<Option<Hash>> {
            let Some(k) = v.get(key).and_then(|k| k.as_str()) else { return Ok(None) };
            let mut id = [0u8; 32];
            hex::decode_to_slice(k, &mut id).context(key.to_string())?;
            Ok(Some(id))
        };
        let h1 = opt_id("h1")?;
        // Datasets of earlier builds: every record permitted every use (their commitment on
        // chain differs; the first supply proof re-commits it).
        let consent = match v.get("consent").and_then(|k| k.as_str()) {
            Some(k) => hex::decode(k).context("consent")?,
            None => vec![supply::ALL_USES; records.len()],
        };
        if consent.len() != records.len() {
            bail!("{} consent masks for {} records", consent.len(), records.len());
        }
        let consent_salt = match v.get("consent_salt").and_then(|k| k.as_str()) {
            Some(k) => {
                let mut b = [0u8; 32];
                hex::decode_to_slice(k, &mut b).context("consent_salt")?;
                dualchain_ledger::tx::FrBytes(b).to_fr().map_err(|e| anyhow!(e))?
            }
            None => Fr::ZERO,
        };
        let mut delivered = Vec::new();
        for entry in v.get("delivered").and_then(|d| d.as_array()).into_iter().flatten() {
            let mut g = [0u8; 32];
            hex::decode_to_slice(entry[0].as_str().unwrap_or_default(), &mut g).context("delivered grant")?;
            let rows: Vec<u32> = serde_json::from_value(entry[1].clone()).context("delivered records")?;
            if rows.iter().any(|r| *r as usize >= records.len()) {
                bail!("a grant delivered a record the dataset does not hold");
            }
            delivered.push((g, rows));
        }
        let replaces = opt_id("replaces")?;
        Ok(Self {
            name: text("name")?,
            cpc: text("cpc")?,
            shape,
            records,
            salt,
            patients,
            pseudonym_key,
            dsk,
            h1,
            consent,
            consent_salt,
            delivered,
            replaces,
        })
    }

    /// The patients whose records grant `g` delivered, if its selection was noted here.
    pub fn delivered_patients(&self, g: &Hash) -> Option<Vec<String>> {
        let (_, rows) = self.delivered.iter().find(|(id, _)| id == g)?;
        let mut out: Vec<String> = rows.iter().filter_map(|i| self.patients.get(*i as usize).cloned()).collect();
        out.sort();
        out.dedup();
        Some(out)
    }

    /// The consent commitment C_K of the masks as kept.
    pub fn consent_commitment(&self) -> Result<Fr> {
        Ok(supply::consent_commitment(self.shape, &self.consent, self.consent_salt)?)
    }

    /// Each record's consent mask under `book` at `now_ms` (a record without a patient
    /// reference, of an earlier build: every use).
    pub fn masks_now(&self, book: &ConsentBook, now_ms: i64) -> Vec<u8> {
        (0..self.records.len())
            .map(|i| self.patients.get(i).map_or(supply::ALL_USES, |p| book.mask_of(p, now_ms)))
            .collect()
    }
}

/// The Consent could not be kept (nothing changed).
#[derive(Debug, Clone, Copy)]
pub struct ConsentNotKept;

impl std::fmt::Display for ConsentNotKept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the Consent could not be kept")
    }
}

/// What recording a Consent did: the datasets re-committed, and the grants made before it
/// over datasets holding the patient's records (what they delivered stays delivered).
#[derive(Debug, Clone)]
pub struct ConsentChange {
    /// The Consent as kept, tagged with the commitments' transactions.
    pub consent: serde_json::Value,
    pub recommitted: usize,
    pub records: usize,
    pub earlier_grants: Vec<dualchain_ledger::state::GrantRecord>,
}

/// What a grant's sealed re-key names besides the dataset: the grant, its requester and
/// when it ends.
struct Sealing<'a> {
    grant: Hash,
    requester: &'a str,
    expires_ms: u64,
}

/// A hospital's node.
pub struct OwnerNode {
    pub member: Arc<Member>,
    pub client: Arc<Client>,
    pub datasets: Mutex<HashMap<Hash, Arc<OwnedDataset>>>,
    pub supply_keys: HashMap<SupplyShape, Arc<ProvingKey>>,
    pub ibe: IbePublicParams,
    pub log: Log,
    pub metrics: AgentMetrics,
    /// Where datasets are kept across restarts (none: in memory only).
    pub persist: Option<std::path::PathBuf>,
    /// Where proving runs (the CUDA backends or the CPU), chosen by whoever assembles the node.
    pub compute: &'static Compute,
    /// The patients' Consents.
    pub consents: Mutex<ConsentBook>,
    /// Written while the consent state changes (a Consent recorded, the commitments
    /// re-published); read while it is used against the chain (a supply proof, a dataset's
    /// registration), so those run side by side and never across a change.
    pub consent_lock: tokio::sync::RwLock<()>,
    /// What this hospital erased ([`crate::member::erasure`]).
    pub erasures: Mutex<ErasureLog>,
}

impl OwnerNode {
    /// Keeps a dataset's opening (written to disk before it returns, where the node
    /// persists them: the supply proofs of later demands need it).
    pub fn add_dataset(&self, id: DatasetId, d: OwnedDataset) -> Result<()> {
        if let Some(dir) = &self.persist {
            write_private(&dir.join(format!("{}.json", id.to_hex())), &serde_json::to_vec(&d.to_json())?)?;
        }
        self.datasets.lock().unwrap_or_else(|p| p.into_inner()).insert(id.0, Arc::new(d));
        Ok(())
    }

    /// Changes a kept dataset in place, on disk first: one read-modify-write under the
    /// datasets' lock, so two changes (a re-key's delivery note, new consent masks) never
    /// overwrite each other. Returns the dataset as changed, or `None` if it is not kept.
    fn update_dataset(&self, id: &Hash, change: impl FnOnce(&mut OwnedDataset)) -> Result<Option<Arc<OwnedDataset>>> {
        let mut kept = self.datasets.lock().unwrap_or_else(|p| p.into_inner());
        let Some(d) = kept.get(id) else { return Ok(None) };
        let mut updated = (**d).clone();
        change(&mut updated);
        if let Some(dir) = &self.persist {
            write_private(&dir.join(format!("{}.json", hex::encode(id))), &serde_json::to_vec(&updated.to_json())?)?;
        }
        let updated = Arc::new(updated);
        kept.insert(*id, updated.clone());
        Ok(Some(updated))
    }

    /// Loads the datasets kept under `persist`.
    pub fn load_datasets(&self) -> Result<usize> {
        let Some(dir) = &self.persist else { return Ok(0) };
        let Ok(entries) = std::fs::read_dir(dir) else { return Ok(0) };
        let mut n = 0;
        for e in entries {
            let path = e?.path();
            let Some(stem) =
                path.file_stem().and_then(|s| s.to_str()).filter(|_| path.extension().is_some_and(|x| x == "json"))
            else {
                continue;
            };
            let mut id = [0u8; 32];
            hex::decode_to_slice(stem, &mut id).with_context(|| format!("{}", path.display()))?;
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
            let d = OwnedDataset::from_json(&v).with_context(|| format!("{}", path.display()))?;
            self.datasets.lock().unwrap_or_else(|p| p.into_inner()).insert(id, Arc::new(d));
            n += 1;
        }
        Ok(n)
    }

    /// Destroys what this node keeps of an erased dataset: its file (records, patient
    /// references, pseudonym key, delegating key) and its copy in memory. Idempotent.
    pub fn forget(&self, id: &Hash) -> Result<()> {
        self.datasets.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        if let Some(dir) = &self.persist {
            match std::fs::remove_file(dir.join(format!("{}.json", hex::encode(id)))) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    pub fn dataset(&self, id: &Hash) -> Option<Arc<OwnedDataset>> {
        self.datasets.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    /// Whether this owner registered a dataset of that name (ids are drawn at random, so
    /// names are unique only here). One kept but never registered (a crash between the two)
    /// does not count: its upload runs again under a new id.
    pub fn has_name(&self, name: &str) -> Result<bool> {
        let ids: Vec<Hash> = {
            let kept = self.datasets.lock().unwrap_or_else(|p| p.into_inner());
            kept.iter().filter(|(_, d)| d.name == name).map(|(id, _)| *id).collect()
        };
        let ledger = &self.client.home().ledger;
        for id in ids {
            if ledger.dataset(&id)?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Notes what a grant's accepted re-key selected (see [`OwnedDataset::delivered`]).
    fn note_delivery(&self, dataset: &Hash, grant: Hash, selected: &[u64]) -> Result<()> {
        self.update_dataset(dataset, |d| {
            d.delivered.retain(|(g, _)| *g != grant);
            d.delivered.push((grant, selected.iter().map(|i| *i as u32).collect()));
        })?;
        Ok(())
    }

    /// The consent mask of `patient`'s records now.
    pub fn consent_mask(&self, patient: &str) -> u8 {
        self.consents.lock().unwrap_or_else(|p| p.into_inner()).mask_of(patient, crate::clock::unix_ms() as i64)
    }

    /// Records a patient's Consent (read by [`ConsentRule::from_fhir`]; its patient must be
    /// one of this hospital's) and re-commits every dataset kept here under fresh salts,
    /// returning once the commitments are final: every supply proof and re-key from then on
    /// follows it.
    ///
    /// Fails with [`ConsentNotKept`] in its chain when the Consent could not be kept; any
    /// other failure comes after it was kept (its commitments are not final yet, and the
    /// next supply proof publishes them).
    pub async fn record_consent(&self, consent: serde_json::Value, rule: ConsentRule) -> Result<ConsentChange> {
        let _held = self.consent_lock.write().await;
        let patient = rule.patient.clone();
        self.consents.lock().unwrap_or_else(|p| p.into_inner()).record(consent, rule).context(ConsentNotKept)?;
        let kept: Vec<Hash> = self.datasets.lock().unwrap_or_else(|p| p.into_inner()).keys().copied().collect();
        let (recommitted, txs) = self.commit_consent().await?;
        let tags: Vec<(&str, String)> = txs.iter().map(|h| ("tx", hex::encode(h))).collect();
        let consent = {
            let mut book = self.consents.lock().unwrap_or_else(|p| p.into_inner());
            book.tag_latest(&tags)?;
            book.all().last().map(|(c, _)| c.clone()).unwrap_or_default()
        };
        let names = std::slice::from_ref(&patient);
        let holding: HashMap<Hash, Arc<OwnedDataset>> =
            self.holding(names).into_iter().filter(|(id, _)| kept.contains(id)).collect();
        let records = holding.values().map(|d| d.patients.iter().filter(|p| **p == patient).count()).sum();
        let earlier_grants = self.grants_delivering(names, &holding)?;
        Ok(ConsentChange { consent, recommitted, records, earlier_grants })
    }

    /// The datasets kept here that hold records of the patient named by any of `names`.
    pub fn holding(&self, names: &[String]) -> Vec<(Hash, Arc<OwnedDataset>)> {
        let kept = self.datasets.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<_> = kept
            .iter()
            .filter(|(_, d)| d.patients.iter().any(|p| names.contains(p)))
            .map(|(id, d)| (*id, d.clone()))
            .collect();
        out.sort_by_key(|(id, _)| *id);
        out
    }

    /// The grants over `holding` (datasets holding the records of the patient named by any
    /// of `names`) that delivered the patient's records; where what a grant selected was
    /// not noted, every grant with a re-key over such a dataset.
    pub fn grants_delivering(
        &self,
        names: &[String],
        holding: &HashMap<Hash, Arc<OwnedDataset>>,
    ) -> Result<Vec<dualchain_ledger::state::GrantRecord>> {
        Ok(self
            .client
            .home()
            .ledger
            .grants(usize::MAX)?
            .into_iter()
            .filter(|g| g.owner == self.member.id && g.sealed_token.is_some())
            .filter(|g| {
                holding
                    .get(&g.dataset)
                    .is_some_and(|d| d.delivered_patients(&g.id).is_none_or(|p| p.iter().any(|x| names.contains(x))))
            })
            .collect())
    }

    /// The registered dataset kept here that replaces `old` (a patient's erasure that was
    /// interrupted after registering it).
    pub fn replacement_of(&self, old: &Hash) -> Result<Option<Hash>> {
        let ids: Vec<Hash> = {
            let kept = self.datasets.lock().unwrap_or_else(|p| p.into_inner());
            kept.iter().filter(|(_, d)| d.replaces == Some(*old)).map(|(id, _)| *id).collect()
        };
        for id in ids {
            if self.client.home().ledger.dataset(&id)?.is_some() {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// Erases `dataset` on chain (the tombstone says `reason`, nothing of the data),
    /// destroys what this node keeps of it, and notes the erasure in the journal: for a
    /// patient's erasure, `patient` and the dataset that holds the others' records. An
    /// erasure already on chain is noted, not repeated.
    pub async fn erase(
        &self,
        dataset: Hash,
        reason: String,
        patient: Option<String>,
        records: usize,
        replaced_by: Option<Hash>,
    ) -> Result<Erasure> {
        let erased_already = || anyhow!("dataset {} was erased already", hex::encode(dataset));
        if self.client.home().ledger.dataset(&dataset)?.and_then(|d| d.erased).is_some() {
            // Erased before: by an earlier attempt that this node journalled (a crash
            // before it saw the tombstone), or by this node in another request.
            self.forget(&dataset)?;
            return self.settle_erasure(&dataset)?.ok_or_else(erased_already);
        }
        // Journalled before it is submitted, so a crash cannot leave it out.
        let stx = self.client.sign(TxKind::EraseDataset { dataset, reason: reason.clone() })?;
        let e =
            Erasure { tx: stx.hash, seq: 0, at_ms: 0, dataset, reason, patient, records, replaced_by, pending: true };
        self.erasures.lock().unwrap_or_else(|p| p.into_inner()).intend(e)?;
        self.client.submit_signed_accepted(&stx).await?;
        self.forget(&dataset)?;
        self.settle_erasure(&dataset)?
            .ok_or_else(|| anyhow!("the erasure of {} is final but not on this ledger yet", hex::encode(dataset)))
    }

    /// The journal's final entry for `dataset`'s erasure, settling a pending one whose
    /// transaction the ledger accepted (batch and time as the ledger has them). None while
    /// no journalled attempt is final.
    fn settle_erasure(&self, dataset: &Hash) -> Result<Option<Erasure>> {
        let ledger = self.client.home().ledger.clone();
        let mut log = self.erasures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = log.of(dataset) {
            return Ok(Some(e.clone()));
        }
        let Some(tombstone) = ledger.dataset(dataset)?.and_then(|d| d.erased) else { return Ok(None) };
        for attempt in log.pending(dataset) {
            let Some((at, entry)) = ledger.tx(&attempt.tx)? else { continue };
            if entry.outcome.is_accepted() {
                let seq = ledger.block(at.chain, at.height)?.map_or(0, |b| b.header.seq);
                return Ok(Some(log.settle(&attempt.tx, seq, tombstone.at_ms)?));
            }
        }
        Ok(None)
    }

    /// Whether `dataset`'s masks are as committed and its commitment on chain is the one
    /// kept here (not after a consent period began or ended, nor after a crash between
    /// keeping and publishing).
    fn consent_current(&self, dataset: &Hash) -> Result<bool> {
        use dualchain_ledger::tx::FrBytes;
        let Some(d) = self.dataset(dataset) else { return Ok(true) };
        let Some(on_chain) = self.client.home().ledger.dataset(dataset)? else { return Ok(true) };
        let now = crate::clock::unix_ms() as i64;
        let masks = d.masks_now(&self.consents.lock().unwrap_or_else(|p| p.into_inner()), now);
        Ok(masks == d.consent && on_chain.consent == FrBytes::from_fr(&d.consent_commitment()?))
    }

    /// The consent state read-locked with `dataset`'s consent current: where it is not,
    /// every dataset kept here is re-committed first, as for a new Consent, so the chain
    /// does not tell which dataset changed.
    async fn consent_read_current(&self, dataset: &Hash) -> Result<tokio::sync::RwLockReadGuard<'_, ()>> {
        for _ in 0..3 {
            let read = self.consent_lock.read().await;
            if self.consent_current(dataset)? {
                return Ok(read);
            }
            drop(read);
            let _write = self.consent_lock.write().await;
            if !self.consent_current(dataset)? {
                self.commit_consent().await?;
            }
        }
        bail!("the consent state of the dataset kept changing; the proof waits for the next demand")
    }

    /// Brings the consent masks of every dataset kept here up to date and publishes their
    /// commitments under fresh salts. Erased or unregistered datasets are skipped. The
    /// caller holds `consent_lock` for writing. Returns how many it committed, and the
    /// transactions.
    async fn commit_consent(&self) -> Result<(usize, Vec<Hash>)> {
        use dualchain_ledger::contracts::consent::COMMITMENTS_MAX;
        use dualchain_ledger::tx::{ConsentCommitment, FrBytes};
        let ledger = self.client.home().ledger.clone();
        let now = crate::clock::unix_ms() as i64;
        let mut ids: Vec<Hash> = self.datasets.lock().unwrap_or_else(|p| p.into_inner()).keys().copied().collect();
        ids.sort();
        let mut commitments = Vec::new();
        for id in &ids {
            let Some(d) = self.dataset(id) else { continue };
            if ledger.dataset(id)?.is_none_or(|ds| ds.erased.is_some()) {
                continue;
            }
            let masks = d.masks_now(&self.consents.lock().unwrap_or_else(|p| p.into_inner()), now);
            let salt = Fr::random(&mut rand::rngs::OsRng);
            // Kept before it is published: a crash in between leaves the chain behind, and
            // the next use of the dataset publishes it again.
            let Some(updated) = self.update_dataset(id, |d| {
                d.consent = masks;
                d.consent_salt = salt;
            })?
            else {
                continue;
            };
            let commitment = FrBytes::from_fr(&updated.consent_commitment()?);
            commitments.push(ConsentCommitment { dataset: *id, commitment });
        }
        let mut txs = Vec::new();
        for chunk in commitments.chunks(COMMITMENTS_MAX) {
            txs.push(self.client.submit_accepted(TxKind::CommitConsent { commitments: chunk.to_vec() }).await?.hash);
        }
        Ok((commitments.len(), txs))
    }

    /// Starts reacting to the home validator's ledger.
    pub fn spawn(self: &Arc<Self>) -> Agent {
        let me = self.clone();
        follow_home(&self.member.id, self.log.clone(), &self.client, move |kind| {
            let me = me.clone();
            match kind {
                TxKind::Demand { demand, dataset, requirement, .. } => {
                    me.dataset(&dataset)?;
                    Some(Box::pin(async move { me.prove_supply(demand, dataset, requirement).await }) as Reaction)
                }
                TxKind::AnonymousDemand(d) => {
                    me.dataset(&d.dataset)?;
                    let (demand, dataset, requirement) = (d.demand, d.dataset, d.requirement);
                    Some(Box::pin(async move { me.prove_supply(demand, dataset, requirement).await }) as Reaction)
                }
                TxKind::RequestAccess { request, .. } => Some(Box::pin(async move { me.issue_rekey(request).await })),
                TxKind::EraseDataset { dataset, .. } => Some(Box::pin(async move {
                    me.forget(&dataset)?;
                    me.settle_erasure(&dataset).map(drop)
                })),
                TxKind::BreakGlass { request, owner, scope_digest, sealed_scope, .. } if owner == me.member.id => {
                    Some(Box::pin(async move { me.answer_break_glass(request, sealed_scope, scope_digest).await }))
                }
                _ => None,
            }
        })
    }

    async fn prove_supply(self: Arc<Self>, demand: Hash, dataset: Hash, req: supply::Requirement) -> Result<()> {
        let Some(record) = self.client.home().ledger.demand(&demand)?.filter(|d| d.supplied_by.is_none()) else {
            return Ok(()); // proved before (a replay after a restart)
        };
        // The proof is checked against the consent commitment on chain when it lands: no
        // Consent is recorded in between.
        let _held = self.consent_read_current(&dataset).await?;
        let d = self.dataset(&dataset).ok_or_else(|| anyhow!("the demand's dataset is no longer kept here"))?;
        let pk =
            self.supply_keys.get(&d.shape).cloned().ok_or_else(|| anyhow!("no proving key for {}", d.shape.name()))?;
        let started = Instant::now();
        let compute = self.compute;
        let consent = supply::Consent { masks: d.consent.clone(), salt: d.consent_salt, use_index: record.use_index };
        let proved = tokio::task::spawn_blocking(move || -> Result<Option<Vec<u8>>, ProverError> {
            let circuit =
                match SupplyCircuit::new(d.shape, &d.records, d.salt, req).and_then(|c| c.with_consent(&consent)) {
                    Ok(c) => c,
                    Err(ProverError::Unsatisfied { .. }) => return Ok(None),
                    Err(e) => return Err(e),
                };
            match compute.prove_queued(pk, circuit) {
                Ok((proof, _)) => Ok(Some(proof_to_bytes(&proof).to_vec())),
                Err(ProverError::Unsatisfied { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await??;
        let Some(proof) = proved else {
            let reason = format!(
                "the records whose patients consent to {} for a {} do not meet the requirement; no supply proof exists",
                record.purpose,
                self.client.home().ledger.member(&record.requester)?.map(|m| m.role).unwrap_or_default()
            );
            self.log.push(&self.member.id, Activity::SupplyImpossible { demand, reason });
            return Ok(());
        };
        let prove = started.elapsed();
        self.metrics.proved("supply", prove);
        self.client.submit_accepted(TxKind::SupplyProof { demand, proof }).await?;
        self.log.push(&self.member.id, Activity::SupplyProved { demand, prove });
        Ok(())
    }

    async fn issue_rekey(self: Arc<Self>, grant_id: Hash) -> Result<()> {
        let ledger = &self.client.home().ledger;
        let Some(grant) = ledger.grant(&grant_id)? else { return Ok(()) }; // a denial
        if grant.owner != self.member.id || grant.sealed_token.is_some() {
            return Ok(());
        }
        let d = self.dataset(&grant.dataset).ok_or_else(|| anyhow!("the grant's dataset is not kept here"))?;
        // Minimum necessary: the grant delivers the records that satisfy its demand, not the
        // dataset (the supply proof showed at least the threshold of them exist).
        // Consent as it is now: a patient who withdrew since the proof is left out.
        let demand = ledger.demand(&grant.demand)?.ok_or_else(|| anyhow!("the grant's demand is unknown"))?;
        let masks =
            d.masks_now(&self.consents.lock().unwrap_or_else(|p| p.into_inner()), crate::clock::unix_ms() as i64);
        let selected: Vec<u64> = d
            .records
            .iter()
            .enumerate()
            .filter(|(i, r)| demand.requirement.matches(r) && supply::permits(masks[*i], demand.use_index))
            .map(|(i, _)| i as u64)
            .collect();
        if selected.is_empty() {
            bail!("no record whose patient consents to {} satisfies the grant's demand", demand.purpose);
        }
        let (sealed_token, sealed_pseudonyms) = self.seal_grant(
            &grant.dataset,
            &d,
            &Sealing { grant: grant_id, requester: &grant.requester, expires_ms: grant.expires_ms },
            &selected,
            None,
        )?;
        let kind = TxKind::IssueReKey { grant: grant_id, sealed_token, sealed_pseudonyms };
        self.client.submit_accepted(kind).await?;
        self.note_delivery(&grant.dataset, grant_id, &selected)?;
        self.log.push(&self.member.id, Activity::ReKeyIssued { grant: grant_id });
        Ok(())
    }

    /// The re-key token for a grant of dataset `id` (kept as `d`) over its `selected`
    /// records, sealed to the dataset's CPC, and the selected records' patients, sealed to
    /// the requester (empty where the records carry none): per-grant pseudonyms, or for a
    /// break-glass grant answering `scope`, the references the scope named
    /// ([`Subjects`]).
    fn seal_grant(
        &self,
        id: &Hash,
        d: &OwnedDataset,
        grant: &Sealing<'_>,
        selected: &[u64],
        scope: Option<&Scope>,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let ledger = &self.client.home().ledger;
        let records = RecordSelection::of(selected.iter().copied())
            .ok_or_else(|| anyhow!("no record is selected for the grant"))?;
        // The key the records are re-encrypted to: the requester's certified delegating
        // key, or an anonymous requester's one-time key from its demand.
        let anonymous = dualchain_ledger::tx::is_pseudonym(grant.requester);
        let requester_key = if anonymous {
            let p = ledger.pseudonym(grant.requester)?.ok_or_else(|| anyhow!("unknown pseudonym"))?;
            DelegatingPublicKey::from_bytes(&p.delegating_key)?
        } else {
            let requester = ledger.member(grant.requester)?.ok_or_else(|| anyhow!("unknown requester"))?;
            Certificate::from_bytes(&requester.certificate)?.fields.delegating_key
        };
        let mut rng = ChaCha20Rng::from_entropy();
        let token = ReKeyToken::issue(
            &mut rng,
            &self.member.signer,
            d.dsk.as_ref().unwrap_or(&self.member.dsk),
            &requester_key,
            TokenScope {
                owner: &self.member.id,
                requester: grant.requester,
                dataset: DatasetId(*id),
                grant_id: grant.grant,
                expiry: grant.expires_ms / 1000,
                records: Some(records),
            },
        )?;
        let sealed = ibe::encrypt(&mut rng, &self.ibe, &d.cpc, &token.to_bytes(), REKEY_AAD)?;
        let refs = selected.iter().map(|i| d.patients[*i as usize].as_str());
        let sealed_pseudonyms = match scope {
            _ if d.patients.is_empty() => Vec::new(),
            // An anonymous requester has no IBE identity: to its demand's one-time key.
            None if anonymous => Pseudonyms::for_grant(&d.pseudonym_key, &grant.grant, refs)?.signcrypt_to(
                &mut rng,
                &self.member.signer,
                &self.member.id,
                id,
                &requester_key,
            )?,
            Some(scope) => {
                let s = Subjects::for_grant(scope, refs)?;
                ibe::encrypt(&mut rng, &self.ibe, grant.requester, &s.to_bytes(), SUBJECTS_AAD)?.to_bytes()
            }
            None => {
                let p = Pseudonyms::for_grant(&d.pseudonym_key, &grant.grant, refs)?;
                ibe::encrypt(&mut rng, &self.ibe, grant.requester, &p.to_bytes(), PSEUDONYMS_AAD)?.to_bytes()
            }
        };
        Ok((sealed.to_bytes(), sealed_pseudonyms))
    }

    /// Answers a break-glass request made to this hospital (the contract:
    /// `dualchain_ledger::contracts::emergency`): opens the sealed scope, checked against
    /// the digest on chain, and grants the clinician, until the request's time is over,
    /// the named patients' records in each of its datasets that holds some (at most
    /// `GRANTS_MAX` datasets), with the re-key issued in the same transaction. Emergency
    /// access comes first and the review after: the request is on the review queue from
    /// the moment it is final, and this node says so in its log and metrics.
    ///
    /// Idempotent: after a restart, datasets already granted are skipped.
    async fn answer_break_glass(self: Arc<Self>, request: Hash, sealed_scope: Vec<u8>, digest: Hash) -> Result<()> {
        use dualchain_ledger::contracts::emergency::GRANTS_MAX;
        let ledger = self.client.home().ledger.clone();
        let Some(bg) = ledger.break_glass(&request)? else { return Ok(()) };
        if bg.owner != self.member.id || bg.review.is_some() || crate::clock::unix_ms() >= bg.until_ms {
            return Ok(());
        }
        let mut granted = HashSet::new();
        for g in &bg.grants {
            if let Some(g) = ledger.grant(&g.0)? {
                granted.insert(g.dataset);
            }
        }
        if granted.is_empty() {
            self.metrics.break_glass.inc();
            tracing::warn!(
                request = %hex::encode(request), requester = %bg.requester, purpose = %bg.purpose,
                "break-glass: emergency access to this hospital's records; it awaits review"
            );
        }
        // A scope that does not open, parse or match its digest never will: no retries.
        let scope = match Scope::open(self.member.ibe_key()?, &sealed_scope, &digest) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(request = %hex::encode(request), error = %format!("{e:#}"), "break-glass: scope refused");
                self.log.push(&self.member.id, Activity::BreakGlassAnswered { request, grants: 0 });
                return Ok(());
            }
        };
        let mut kept: Vec<(Hash, Arc<OwnedDataset>)> =
            self.datasets.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (*k, v.clone())).collect();
        kept.sort_by_key(|(id, _)| *id);
        let mut grants = 0;
        for (dataset, d) in kept {
            if granted.len() + grants >= GRANTS_MAX || granted.contains(&dataset) {
                continue;
            }
            if ledger.dataset(&dataset)?.is_none_or(|ds| ds.erased.is_some()) {
                continue;
            }
            let selected: Vec<u64> = (0..d.patients.len())
                .filter(|i| scope.patients.iter().any(|p| *p == d.patients[*i]))
                .map(|i| i as u64)
                .collect();
            let Some(h1) = d.h1.filter(|_| !selected.is_empty()) else { continue };
            let mut id = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
            let sealing = Sealing { grant: id, requester: &bg.requester, expires_ms: bg.until_ms };
            let (sealed_token, sealed_pseudonyms) = self.seal_grant(&dataset, &d, &sealing, &selected, Some(&scope))?;
            let entry = sharing::index_entry(&dataset, &d.name, &h1, &d.cpc, selected.len() as u64);
            let sealed_pointer = seal_pointer(&mut rand::rngs::OsRng, &self.ibe, &bg.requester, &entry)?;
            let kind = TxKind::BreakGlassGrant {
                request,
                grant: id,
                dataset,
                sealed_token,
                sealed_pseudonyms,
                sealed_pointer,
            };
            self.client.submit_accepted(kind).await?;
            self.note_delivery(&dataset, id, &selected)?;
            grants += 1;
        }
        self.log.push(&self.member.id, Activity::BreakGlassAnswered { request, grants });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_datasets_round_trip_and_refuse_corrupt_records() {
        let r = supply::Record {
            present: true,
            code: 88674,
            unit: 1,
            age_band: 9,
            sex: 2,
            value: 72_000,
            time: 29_000_000,
            device: 7,
        };
        let d = OwnedDataset {
            name: "icu".into(),
            cpc: "cpc-1".into(),
            shape: SupplyShape::Records64,
            records: vec![r, supply::Record::default()],
            salt: Fr::from(5u64),
            patients: vec!["Patient/a".into(), "Patient/b".into()],
            pseudonym_key: PseudonymKey([7; 32]),
            dsk: Some(DelegatingSecretKey::generate(&mut rand::rngs::OsRng)),
            h1: Some([3; 32]),
            consent: vec![0b10, supply::ALL_USES],
            consent_salt: Fr::from(9u64),
            delivered: vec![([4; 32], vec![1])],
            replaces: Some([6; 32]),
        };
        let back = OwnedDataset::from_json(&d.to_json()).unwrap();
        assert_eq!((back.shape, back.records.clone(), back.salt), (d.shape, d.records.clone(), d.salt));
        assert_eq!((back.name.as_str(), back.cpc.as_str()), ("icu", "cpc-1"));
        assert_eq!((back.patients.clone(), back.pseudonym_key.clone()), (d.patients.clone(), d.pseudonym_key.clone()));
        assert_eq!(back.dsk.as_ref().map(|k| k.public()), d.dsk.as_ref().map(|k| k.public()));
        assert_eq!((back.h1, back.replaces), (d.h1, d.replaces));
        assert_eq!((back.consent.clone(), back.consent_salt), (d.consent.clone(), d.consent_salt));
        assert_eq!(back.consent_commitment().unwrap(), d.consent_commitment().unwrap());
        assert_eq!(back.delivered_patients(&[4; 32]), Some(vec!["Patient/b".to_string()]));
        assert_eq!(back.delivered_patients(&[5; 32]), None);
        let mut v = d.to_json();
        v["delivered"] = serde_json::json!([[hex::encode([4; 32]), [2]]]); // no record 2
        assert!(OwnedDataset::from_json(&v).is_err());
        let mut v = d.to_json();
        v["consent"] = serde_json::json!("02"); // not one per record
        assert!(OwnedDataset::from_json(&v).is_err());
        let mut v = d.to_json();
        v["patients"] = serde_json::json!(["Patient/a"]); // not one per record
        assert!(OwnedDataset::from_json(&v).is_err());
        let mut v = d.to_json();
        v["records"][0][4] = serde_json::json!(9); // sex code out of range
        assert!(OwnedDataset::from_json(&v).is_err());
        v = d.to_json();
        v["records"][0][2] = serde_json::json!(70_000); // wider than the unit field
        assert!(OwnedDataset::from_json(&v).is_err());
        v = d.to_json();
        v["shape"] = serde_json::json!("policy");
        assert!(OwnedDataset::from_json(&v).is_err());
    }
}
