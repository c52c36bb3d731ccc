//! The member-side steps of the sharing flow (DESIGN.md §3), used by the node's API: the owner
//! signcrypts records and prepares a dataset's registration; the requester opens a
//! dataset's CP-ABE index and proves the access policy.

use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Result};
use blstrs::Scalar as Fr;
use dualchain_crypto::abe::ac17::Ac17;
use dualchain_crypto::abe::AbeScheme;
use dualchain_crypto::cbsre::{signcrypt, DatasetId, DelegatingPublicKey, RecordHeader, Signcrypted};
use dualchain_crypto::Codec;
use dualchain_kernels::Compute;
use dualchain_ledger::policy::AccessPolicy;
use dualchain_ledger::state::DatasetRecord;
use dualchain_ledger::tx::{DatasetRegistration, Disclosure, FrBytes, Hash, TxKind};
use dualchain_ledger::Ledger;
use dualchain_prover::params::ProvingKey;
use dualchain_prover::policy::{Credential, MerklePath, PolicyCircuit, PolicyDnf};
use dualchain_prover::supply::{self, SupplyShape};
use dualchain_prover::verify::proof_to_bytes;
use ff::Field;
use rand::{CryptoRng, RngCore};

use super::Member;

/// Content type of the signcrypted records.
pub const RECORD_CONTENT_TYPE: &str = "fhir-r4:observation";

/// Signcrypts `plaintexts` as records `0..` of `dataset`; `progress(done, total)` is called
/// every 16 records.
pub fn signcrypt_dataset(
    rng: &mut (impl RngCore + CryptoRng),
    owner: &Member,
    delegating: &DelegatingPublicKey,
    dataset: DatasetId,
    plaintexts: &[Vec<u8>],
    now: u64,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<Signcrypted>> {
    let mut records = Vec::with_capacity(plaintexts.len());
    for (i, pt) in plaintexts.iter().enumerate() {
        let header = RecordHeader {
            owner: owner.id.clone(),
            dataset,
            record_index: i as u64,
            created_at: now,
            content_type: RECORD_CONTENT_TYPE.into(),
        };
        records.push(signcrypt(rng, &owner.signer, delegating, header, pt)?);
        if i % 16 == 15 || i + 1 == plaintexts.len() {
            progress(i + 1, plaintexts.len());
        }
    }
    Ok(records)
}

/// A dataset's registration, and the opening its owner keeps.
pub struct Prepared {
    pub tx: TxKind,
    pub commitment: Fr,
    pub salt: Fr,
    /// The salt of the consent commitment C_K.
    pub consent_salt: Fr,
}

/// What a dataset is registered with.
pub struct DatasetSpec<'a> {
    pub dataset: DatasetId,
    pub name: &'a str,
    pub h1: Hash,
    pub cpc: &'a str,
    pub shape: SupplyShape,
    pub records: &'a [supply::Record],
    /// Each record's consent mask ([`crate::member::consent`]).
    pub consent: &'a [u8],
    /// The access policy statement: the index is encrypted under its CP-ABE form, and its
    /// zero-knowledge form's hash is what policy proofs show.
    pub policy: &'a str,
    /// What demands on the dataset may ask.
    pub disclosure: Disclosure,
}

/// The commitment C_D to the records under a fresh salt, the CP-ABE index (dataset, name,
/// H1, CPC, count, zero-knowledge policy) and the registration transaction, which carries
/// none of those in clear (see [`DatasetRegistration`]).
pub fn prepare_registration(
    rng: &mut (impl RngCore + CryptoRng),
    abe_pk: &<Ac17 as AbeScheme>::PublicKey,
    spec: &DatasetSpec<'_>,
) -> Result<Prepared> {
    let salt = Fr::random(&mut *rng);
    let commitment = supply::dataset_commitment(spec.shape, spec.records, salt)?;
    let consent_salt = Fr::random(&mut *rng);
    let consent = supply::consent_commitment(spec.shape, spec.consent, consent_salt)?;
    let statement = AccessPolicy::parse(spec.policy)?;
    let forms = statement.compile()?;
    let index = index_entry(&spec.dataset.0, spec.name, &spec.h1, spec.cpc, spec.records.len() as u64);
    let abe_index = Ac17::encrypt(abe_pk, &forms.abe, &index)?.to_bytes();
    let tx = TxKind::RegisterDataset(DatasetRegistration {
        dataset: spec.dataset.0,
        commitment: FrBytes::from_fr(&commitment),
        capacity: spec.shape.records() as u64,
        policy: statement.to_string(),
        abe_index,
        zk_policy_hash: FrBytes::from_fr(&forms.dnf.hash()),
        consent: FrBytes::from_fr(&consent),
        disclosure: spec.disclosure,
    });
    Ok(Prepared { tx, commitment, salt, consent_salt })
}

/// What the requester learns from the CP-ABE index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexPointer {
    pub dataset: Hash,
    pub name: String,
    pub h1: Hash,
    pub cpc: String,
    pub records: u64,
    /// The access policy the requester's proof must satisfy: the zero-knowledge form of
    /// the statement on chain.
    pub zk_policy: PolicyDnf,
}

/// The zero-knowledge form of a dataset's access policy, compiled from the statement on
/// chain and checked against the hash the registration committed to (the contract
/// checked it too; a ledger of an earlier build would fail here with the reason).
pub fn zk_policy(ds: &DatasetRecord) -> Result<PolicyDnf> {
    let dnf = AccessPolicy::parse(&ds.policy)?.compile()?.dnf;
    ensure!(
        FrBytes::from_fr(&dnf.hash()) == ds.zk_policy_hash,
        "the dataset's policy statement does not compile to the policy hash it was registered with"
    );
    Ok(dnf)
}

/// A dataset's index entry `{dataset, name, h1, cpc, records}` as JSON bytes: the
/// plaintext of its CP-ABE index, and of a break-glass grant's sealed pointer.
pub fn index_entry(dataset: &Hash, name: &str, h1: &Hash, cpc: &str, records: u64) -> Vec<u8> {
    let v = serde_json::json!({
        "dataset": hex::encode(dataset), "name": name, "h1": hex::encode(h1), "cpc": cpc, "records": records,
    });
    serde_json::to_vec(&v).expect("JSON values serialise")
}

/// Opens a dataset's CP-ABE index with the member's attribute key, and checks it against
/// the registration (the dataset id); the zero-knowledge policy is the statement's.
pub fn open_index(m: &Member, ledger: &Ledger, dataset: &Hash) -> Result<IndexPointer> {
    let key = m.abe_key.as_ref().ok_or_else(|| anyhow!("{} holds no CP-ABE key", m.id))?;
    let ds = ledger.dataset(dataset)?.ok_or_else(|| anyhow!("unknown dataset"))?;
    let ct = <Ac17 as AbeScheme>::Ciphertext::from_bytes(&ds.abe_index)?;
    read_index_entry(&Ac17::decrypt(key, &ct)?, &ds)
}

/// Reads an index entry ([`index_entry`]) of the dataset `ds`, checking that it names it.
pub fn read_index_entry(bytes: &[u8], ds: &DatasetRecord) -> Result<IndexPointer> {
    let dataset = &ds.id;
    let index: serde_json::Value = serde_json::from_slice(bytes)?;
    let field = |k: &str| index[k].as_str().map(str::to_string).ok_or_else(|| anyhow!("index without {k}"));
    let mut h1 = [0u8; 32];
    hex::decode_to_slice(field("h1")?, &mut h1)?;
    let mut ds_id = [0u8; 32];
    hex::decode_to_slice(field("dataset")?, &mut ds_id)?;
    ensure!(ds_id == *dataset, "the index names another dataset");
    let zk_policy = zk_policy(ds)?;
    Ok(IndexPointer {
        dataset: ds_id,
        name: field("name")?,
        h1,
        cpc: field("cpc")?,
        records: index["records"].as_u64().unwrap_or(0),
        zk_policy,
    })
}

/// A policy proof of `policy` (opened from the dataset's index), bound to `request_id`:
/// the proof's bytes and the proving time.
pub async fn prove_policy(
    compute: &'static Compute,
    pk: std::sync::Arc<ProvingKey>,
    policy: PolicyDnf,
    credential: Credential,
    path: MerklePath,
    request_id: Hash,
) -> Result<(Vec<u8>, Duration)> {
    let circuit = PolicyCircuit { credential, path, policy, request_id };
    let started = Instant::now();
    let proof = tokio::task::spawn_blocking(move || compute.prove_queued(pk, circuit)).await??.0;
    Ok((proof_to_bytes(&proof).to_vec(), started.elapsed()))
}

/// What a requester submits to ask for access: a fresh request id and the
/// `RequestAccess` transaction carrying its policy proof, with the proving time.
pub struct AccessRequest {
    pub request: Hash,
    pub tx: TxKind,
    pub prove: Duration,
}

/// Step 7 for a requester: a fresh request id, the policy proof for `credential` at `path`
/// of the policy opened from the dataset's index, bound to the request id, and the
/// request naming `root` for `duration_s`.
#[allow(clippy::too_many_arguments)]
pub async fn access_request(
    compute: &'static Compute,
    pk: std::sync::Arc<ProvingKey>,
    demand: &Hash,
    policy: PolicyDnf,
    credential: Credential,
    path: MerklePath,
    root: FrBytes,
    duration_s: u64,
) -> Result<AccessRequest> {
    let mut request = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut request);
    let (proof, prove) = prove_policy(compute, pk, policy, credential, path, request).await?;
    Ok(AccessRequest {
        request,
        tx: TxKind::RequestAccess { request, demand: *demand, root, proof, duration_s },
        prove,
    })
}
