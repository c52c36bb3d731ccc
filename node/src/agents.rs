//! What members' nodes do on their own as the ledger moves (DESIGN.md §3 steps 6, 8–10):
//!
//! - an owner's node proves supply as soon as a demand on one of its datasets is final,
//!   and issues the re-key (sealed to the grant's CPC) as soon as a grant is final;
//! - a CPC's node, once a re-key for one of its grants is final, opens it, checks it
//!   against the chain and its manifest, re-encrypts the dataset's capsules in one batch
//!   and files the receipt; it drops a grant the moment its revocation is final, and
//!   serves re-encrypted records only to the grant's requester while the grant is usable.
//!
//! Each node follows its home validator's applied batches; a reaction runs in its own task
//! so a long proof never holds up the next event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use blstrs::Scalar as Fr;
use dualchain_crypto::cbsre::{DatasetId, ReKeyToken, Reencrypted, Signcrypted, TokenScope};
use dualchain_crypto::cert::Certificate;
use dualchain_crypto::ibe::{self, IbeCiphertext, IbePublicParams};
use dualchain_crypto::reencrypt::ReencryptBackend;
use dualchain_crypto::sign::PublicKey;
use dualchain_crypto::Codec;
use dualchain_ledger::tx::{Hash, TxKind};
use dualchain_ledger::Ledger;
use dualchain_prover::params::ProvingKey;
use dualchain_prover::supply::{self, SupplyCircuit, SupplyShape};
use dualchain_prover::verify::proof_to_bytes;
use dualchain_prover::ProverError;
use dualchain_storage::cpc::{CpcStore, Manifest};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::consortium::Client;
use crate::members::{Member, REKEY_AAD};

/// Something a node did, for the demo's summary and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    SupplyProved { demand: Hash, prove: Duration },
    SupplyImpossible { demand: Hash, reason: String },
    ReKeyIssued { grant: Hash },
    Reencrypted { grant: Hash, records: u64, took: Duration },
    GrantDropped { grant: Hash },
    Failed { what: String, error: String },
}

/// What the agents count for Prometheus (unregistered handles unless the node registers
/// them; clones share the same series).
#[derive(Clone)]
pub struct AgentMetrics {
    /// Groth16 proofs made, by circuit (`supply`, `policy`).
    pub proofs: Family<CircuitLabel, Counter>,
    /// Proving time in seconds, by circuit.
    pub prove_seconds: Family<CircuitLabel, Histogram, fn() -> Histogram>,
    /// Capsules re-encrypted by this CPC.
    pub reencrypted_records: Counter,
    /// Re-encryption batches (one per grant served).
    pub reencrypt_batches: Counter,
    /// Records taken in by this CPC.
    pub ingested_records: Counter,
    /// Fetches served (`ok`) or refused (`refused`).
    pub fetches: Family<ResultLabel, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CircuitLabel {
    pub circuit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

fn prove_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 14))
}

impl Default for AgentMetrics {
    fn default() -> Self {
        Self {
            proofs: Family::default(),
            prove_seconds: Family::new_with_constructor(prove_buckets),
            reencrypted_records: Counter::default(),
            reencrypt_batches: Counter::default(),
            ingested_records: Counter::default(),
            fetches: Family::default(),
        }
    }
}

impl AgentMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register("dualchain_prover_proofs", "Groth16 proofs made by this node", m.proofs.clone());
        registry.register("dualchain_prover_prove_seconds", "Groth16 proving time", m.prove_seconds.clone());
        registry.register("dualchain_cpc_reencrypted_records", "Capsules re-encrypted", m.reencrypted_records.clone());
        registry.register("dualchain_cpc_reencrypt_batches", "Re-encryption batches", m.reencrypt_batches.clone());
        registry.register("dualchain_cpc_ingested_records", "Records taken in", m.ingested_records.clone());
        registry.register("dualchain_cpc_fetches", "Fetches served or refused", m.fetches.clone());
        // Every series exists from the start (at zero), so dashboards and alerts see them.
        for circuit in ["supply", "policy"] {
            let l = CircuitLabel { circuit: circuit.into() };
            let _ = m.proofs.get_or_create(&l);
            let _ = m.prove_seconds.get_or_create(&l);
        }
        for result in ["ok", "refused"] {
            let _ = m.fetches.get_or_create(&ResultLabel { result: result.into() });
        }
        m
    }

    pub fn proved(&self, circuit: &str, took: Duration) {
        let l = CircuitLabel { circuit: circuit.into() };
        self.proofs.get_or_create(&l).inc();
        self.prove_seconds.get_or_create(&l).observe(took.as_secs_f64());
    }
}

/// A shared activity log.
#[derive(Default, Clone)]
pub struct Log(Arc<Mutex<Vec<(String, Activity)>>>);

impl Log {
    pub fn push(&self, who: &str, a: Activity) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push((who.to_string(), a));
    }
    pub fn entries(&self) -> Vec<(String, Activity)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A node's reaction to one accepted transaction.
type Reaction = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>;

/// Follows the client's home validator and runs `react` for every accepted transaction,
/// each reaction in its own task; failures go to the log.
///
/// It first replays what is already on the ledger (after a restart, the demands, grants
/// and re-keys that arrived while the node was down), then follows new batches; each
/// transaction is dispatched once, and every reaction checks the ledger before it acts,
/// so replaying work already done does nothing.
fn follow(
    who: &str,
    log: Log,
    client: &Client,
    react: impl Fn(TxKind) -> Option<Reaction> + Send + Sync + 'static,
) -> JoinHandle<()> {
    let who = who.to_string();
    let mut events = client.home().subscribe();
    let ledger = client.home().ledger.clone();
    tokio::spawn(async move {
        let mut seen = std::collections::HashSet::new();
        let dispatch = |hash: Hash, tx: &dualchain_ledger::tx::Tx, seen: &mut std::collections::HashSet<Hash>| {
            if !seen.insert(hash) {
                return;
            }
            if let Some(fut) = react(tx.kind.clone()) {
                let (log, who, what) = (log.clone(), who.clone(), tx.kind.name());
                tokio::spawn(async move {
                    if let Err(e) = fut.await {
                        log.push(
                            &who,
                            Activity::Failed { what: format!("reacting to {what}"), error: format!("{e:#}") },
                        );
                    }
                });
            }
        };
        match accepted_txs(&ledger) {
            Ok(past) => past.iter().for_each(|(h, tx)| dispatch(*h, tx, &mut seen)),
            Err(e) => log.push(&who, Activity::Failed { what: "replaying the ledger".into(), error: format!("{e:#}") }),
        }
        loop {
            let applied = match events.recv().await {
                Ok(a) => a,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    log.push(
                        &who,
                        Activity::Failed { what: "following the ledger".into(), error: format!("missed {n} batches") },
                    );
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            for t in &applied.txs {
                if let (Some(tx), true) = (&t.tx, t.outcome.is_accepted()) {
                    dispatch(t.hash, tx, &mut seen);
                }
            }
        }
    })
}

/// Every accepted transaction on the ledger, data chain then access chain.
fn accepted_txs(ledger: &Ledger) -> Result<Vec<(Hash, dualchain_ledger::tx::Tx)>> {
    use dualchain_storage::ledger::Chain;
    let mut out = Vec::new();
    for chain in [Chain::Data, Chain::Access] {
        let tip = ledger.tip(chain)?.map_or(0, |t| t.height);
        for h in 1..=tip {
            let block = ledger.block(chain, h)?.ok_or_else(|| anyhow!("block {h} missing"))?;
            for e in block.entries.iter().filter(|e| e.outcome.is_accepted()) {
                let stx = dualchain_ledger::tx::SignedTx::from_bytes(&e.tx)?;
                out.push((e.hash(), stx.tx));
            }
        }
    }
    Ok(out)
}

/// A dataset as its owner keeps it: the records the commitment opens to.
pub struct OwnedDataset {
    pub shape: SupplyShape,
    pub records: Vec<supply::Record>,
    pub salt: Fr,
}

impl OwnedDataset {
    pub fn to_json(&self) -> serde_json::Value {
        let records: Vec<[u64; 8]> = self.records.iter().map(supply::Record::fields).collect();
        serde_json::json!({
            "shape": dualchain_prover::shapes::Shape::Supply(self.shape).name(),
            "salt": hex::encode(dualchain_ledger::tx::FrBytes::from_fr(&self.salt).0),
            "records": records,
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
        let records = rows.into_iter().map(supply::Record::from_fields).collect::<Result<_, _>>()?;
        Ok(Self { shape, records, salt })
    }
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
}

impl OwnerNode {
    /// Keeps a dataset's opening (written to disk before it returns, where the node
    /// persists them: the supply proofs of later demands need it).
    pub fn add_dataset(&self, id: DatasetId, d: OwnedDataset) -> Result<()> {
        if let Some(dir) = &self.persist {
            crate::config::write_private(
                &dir.join(format!("{}.json", id.to_hex())),
                &serde_json::to_vec(&d.to_json())?,
            )?;
        }
        self.datasets.lock().unwrap_or_else(|p| p.into_inner()).insert(id.0, Arc::new(d));
        Ok(())
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

    fn dataset(&self, id: &Hash) -> Option<Arc<OwnedDataset>> {
        self.datasets.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    /// Starts reacting to the home validator's ledger.
    pub fn spawn(self: &Arc<Self>) -> JoinHandle<()> {
        let me = self.clone();
        follow(&self.member.id, self.log.clone(), &self.client, move |kind| {
            let me = me.clone();
            match kind {
                TxKind::Demand { demand, dataset, requirement } => {
                    let d = me.dataset(&dataset)?;
                    Some(Box::pin(async move { me.prove_supply(demand, d, requirement).await }) as Reaction)
                }
                TxKind::RequestAccess { request, .. } => Some(Box::pin(async move { me.issue_rekey(request).await })),
                _ => None,
            }
        })
    }

    async fn prove_supply(self: Arc<Self>, demand: Hash, d: Arc<OwnedDataset>, req: supply::Requirement) -> Result<()> {
        if self.client.home().ledger.demand(&demand)?.is_none_or(|d| d.supplied_by.is_some()) {
            return Ok(()); // proved before (a replay after a restart)
        }
        let pk =
            self.supply_keys.get(&d.shape).cloned().ok_or_else(|| anyhow!("no proving key for {}", d.shape.name()))?;
        let started = Instant::now();
        let proved = tokio::task::spawn_blocking(move || -> Result<Option<Vec<u8>>, ProverError> {
            let circuit = match SupplyCircuit::new(d.shape, &d.records, d.salt, req) {
                Ok(c) => c,
                Err(ProverError::Unsatisfied { .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            match dualchain_kernels::select::global().prover().prove(&pk, circuit, &mut ChaCha20Rng::from_entropy()) {
                Ok((proof, _)) => Ok(Some(proof_to_bytes(&proof).to_vec())),
                Err(ProverError::Unsatisfied { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await??;
        let Some(proof) = proved else {
            let reason = "the dataset does not meet the requirement; no supply proof exists".to_string();
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
        let requester = ledger.member(&grant.requester)?.ok_or_else(|| anyhow!("unknown requester"))?;
        let cert = Certificate::from_bytes(&requester.certificate)?;
        let mut rng = ChaCha20Rng::from_entropy();
        let token = ReKeyToken::issue(
            &mut rng,
            &self.member.signer,
            &self.member.dsk,
            &cert.fields.delegating_key,
            TokenScope {
                owner: &grant.owner,
                requester: &grant.requester,
                dataset: DatasetId(grant.dataset),
                grant_id,
                expiry: grant.expires_ms / 1000,
            },
        )?;
        let sealed = ibe::encrypt(&mut rng, &self.ibe, &grant.cpc, &token.to_bytes(), REKEY_AAD)?;
        self.client.submit_accepted(TxKind::IssueReKey { grant: grant_id, sealed_token: sealed.to_bytes() }).await?;
        self.log.push(&self.member.id, Activity::ReKeyIssued { grant: grant_id });
        Ok(())
    }
}

/// A signed request for re-encrypted records (JSON with hex bytes between nodes).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchRequest {
    #[serde(with = "dualchain_ledger::tx::hex_bytes::id")]
    pub grant: Hash,
    pub requester: String,
    /// H1 as the requester read it from the CP-ABE index.
    #[serde(with = "dualchain_ledger::tx::hex_bytes::id")]
    pub h1: Hash,
    pub at_ms: u64,
    #[serde(with = "dualchain_ledger::tx::hex_bytes::id")]
    pub signature: [u8; 64],
}

pub const FETCH_SIGNING_USE: &str = "cpc-fetch";
/// How far a fetch request's time may be from the CPC's clock.
pub const FETCH_SKEW_MS: u64 = 60_000;

impl FetchRequest {
    fn message(grant: &Hash, requester: &str, h1: &Hash, at_ms: u64) -> Vec<u8> {
        let mut m = grant.to_vec();
        m.extend_from_slice(h1);
        m.extend_from_slice(&at_ms.to_be_bytes());
        m.extend_from_slice(requester.as_bytes());
        m
    }
    pub fn sign(member: &Member, grant: Hash, h1: Hash) -> Self {
        let at_ms = unix_ms();
        let signature = member.signer.sign(FETCH_SIGNING_USE, &Self::message(&grant, &member.id, &h1, at_ms));
        Self { grant, requester: member.id.clone(), h1, at_ms, signature }
    }
}

/// A cloud privacy center's node.
pub struct CpcNode {
    pub member: Arc<Member>,
    pub client: Arc<Client>,
    pub store: Arc<CpcStore>,
    pub backend: Arc<dyn ReencryptBackend + Send + Sync>,
    pub log: Log,
    /// Capsules re-encrypted per batch chunk.
    pub chunk_records: usize,
    pub metrics: AgentMetrics,
}

impl CpcNode {
    pub fn new(member: Arc<Member>, client: Arc<Client>, store: Arc<CpcStore>, log: Log) -> Self {
        Self {
            member,
            client,
            store,
            backend: dualchain_kernels::select::global().reencrypt.clone(),
            log,
            chunk_records: 4096,
            metrics: AgentMetrics::default(),
        }
    }

    fn ledger(&self) -> &Ledger {
        &self.client.home().ledger
    }

    fn signing_key_of(&self, member: &str) -> Result<PublicKey> {
        let m = self.ledger().member(member)?.ok_or_else(|| anyhow!("unknown member {member}"))?;
        if let Some(r) = m.revoked {
            bail!("member {member} is revoked ({r})");
        }
        Ok(PublicKey::from_raw(&m.signing_key)?)
    }

    /// Takes an owner's signcrypted records (each signature checked) and returns the
    /// manifest, whose hash is H1′.
    pub fn upload(&self, owner: &str, records: &[Signcrypted]) -> Result<Manifest> {
        let m = self.ledger().member(owner)?.ok_or_else(|| anyhow!("unknown member {owner}"))?;
        ensure!(m.role == "hospital" && m.revoked.is_none(), "{owner} is not an active data owner");
        let manifest = self.store.ingest(&PublicKey::from_raw(&m.signing_key)?, records)?;
        self.metrics.ingested_records.inc_by(records.len() as u64);
        Ok(manifest)
    }

    pub fn spawn(self: &Arc<Self>) -> JoinHandle<()> {
        let me = self.clone();
        follow(&self.member.id, self.log.clone(), &self.client, move |kind| {
            let me = me.clone();
            match kind {
                TxKind::IssueReKey { grant, sealed_token } => {
                    Some(Box::pin(async move { me.serve_grant(grant, sealed_token).await }) as Reaction)
                }
                TxKind::RevokeGrant { grant, .. } => Some(Box::pin(async move { me.drop_grant(grant) })),
                _ => None,
            }
        })
    }

    async fn serve_grant(self: Arc<Self>, grant_id: Hash, sealed: Vec<u8>) -> Result<()> {
        let Some(grant) = self.ledger().grant(&grant_id)? else { return Ok(()) };
        if grant.cpc != self.member.id || grant.receipts > 0 || grant.usable(unix_ms()).is_err() {
            return Ok(()); // someone else's, served before, or no longer usable
        }
        let ct = IbeCiphertext::from_bytes(&sealed)?;
        let token = ReKeyToken::from_bytes(&self.member.ibe_key()?.decrypt(&ct, REKEY_AAD)?)?;
        ensure!(
            token.grant_id == grant_id && token.owner == grant.owner && token.requester == grant.requester,
            "the re-key token does not match its grant"
        );
        let dataset = self.ledger().dataset(&grant.dataset)?.ok_or_else(|| anyhow!("unknown dataset"))?;
        let owner_key = self.signing_key_of(&grant.owner)?;
        let now_s = unix_ms() / 1000;
        if self.store.grant(&grant_id)?.is_none() {
            self.store.put_grant(grant_id, token, dataset.h1, &owner_key, now_s).context("storing the grant")?;
        }
        let me = self.clone();
        let started = Instant::now();
        let receipt = tokio::task::spawn_blocking(move || {
            me.store.reencrypt(
                &grant_id,
                me.backend.as_ref(),
                &owner_key,
                now_s,
                me.chunk_records,
                &mut ChaCha20Rng::from_entropy(),
            )
        })
        .await??;
        let took = started.elapsed();
        self.metrics.reencrypted_records.inc_by(receipt.records);
        self.metrics.reencrypt_batches.inc();
        self.client
            .submit_accepted(TxKind::Receipt {
                grant: grant_id,
                records: receipt.records,
                results_digest: receipt.results_digest,
            })
            .await?;
        self.log.push(&self.member.id, Activity::Reencrypted { grant: grant_id, records: receipt.records, took });
        Ok(())
    }

    fn drop_grant(&self, grant_id: Hash) -> Result<()> {
        if self.store.grant(&grant_id)?.is_some() {
            self.store.revoke_grant(&grant_id)?;
            self.log.push(&self.member.id, Activity::GrantDropped { grant: grant_id });
        }
        Ok(())
    }

    /// Serves a grant's re-encrypted records to its requester: the request's signature,
    /// the requester's membership, the grant's state on chain (active, not expired), H1
    /// against this CPC's manifest H1′, then the stored results.
    pub fn fetch(&self, req: &FetchRequest) -> Result<Vec<Reencrypted>> {
        let r = self.fetch_checked(req);
        let result = if r.is_ok() { "ok" } else { "refused" };
        self.metrics.fetches.get_or_create(&ResultLabel { result: result.into() }).inc();
        r
    }

    fn fetch_checked(&self, req: &FetchRequest) -> Result<Vec<Reencrypted>> {
        let now = unix_ms();
        ensure!(now.abs_diff(req.at_ms) <= FETCH_SKEW_MS, "fetch request too old or from the future");
        let key = self.signing_key_of(&req.requester)?;
        ensure!(
            key.verify(
                FETCH_SIGNING_USE,
                &FetchRequest::message(&req.grant, &req.requester, &req.h1, req.at_ms),
                &req.signature
            ),
            "fetch request signature does not verify"
        );
        let grant = self.ledger().grant_usable(&req.grant, now).map_err(|e| anyhow!("refused: {e}"))?;
        ensure!(
            grant.requester == req.requester,
            "refused: the grant is {}'s, not {}'s",
            grant.requester,
            req.requester
        );
        ensure!(grant.cpc == self.member.id, "refused: the grant is served by {}", grant.cpc);
        let manifest =
            self.store.manifest(&DatasetId(grant.dataset))?.ok_or_else(|| anyhow!("dataset not held here"))?;
        ensure!(manifest.hash() == req.h1, "refused: H1 from the index differs from this CPC's manifest H1'");
        let owner_key = self.signing_key_of(&grant.owner)?;
        Ok(self.store.results(&req.grant, &owner_key, now / 1000)?)
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
            shape: SupplyShape::Records64,
            records: vec![r, supply::Record::default()],
            salt: Fr::from(5u64),
        };
        let back = OwnedDataset::from_json(&d.to_json()).unwrap();
        assert_eq!((back.shape, back.records.clone(), back.salt), (d.shape, d.records.clone(), d.salt));
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
