//! The sharing flow of DESIGN.md §3 in an in-process consortium: 4 validators ordering one
//! PBFT log over loopback QUIC with mutual TLS, each with its ledger on RocksDB; a KGC, two
//! hospitals, a research institute and three CPCs as members, each with its client on a
//! home validator; owners' and CPCs' nodes reacting to the ledger on their own
//! ([`crate::agents`]). The demo and the end-to-end tests drive the same steps.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use blstrs::Scalar as Fr;
use dualchain_consensus::local::LocalCluster;
use dualchain_consensus::Config;
use dualchain_crypto::abe::ac17::Ac17;
use dualchain_crypto::abe::AbeScheme;
use dualchain_crypto::cbsre::{DatasetId, Signcrypted};
use dualchain_crypto::cert::{CertificateAuthority, Role};
use dualchain_crypto::ibe::{AuthoritySecret, IbePublicParams};
use dualchain_crypto::Codec;
use dualchain_ledger::state::{DemandRecord, GrantRecord};
use dualchain_ledger::tx::{FrBytes, Hash, TxKind};
use dualchain_ledger::Genesis;
use dualchain_prover::params::ProvingKey;
use dualchain_prover::policy::{CredentialTree, MerklePath};
use dualchain_prover::shapes::Shape;
use dualchain_prover::supply::{self, Requirement, SupplyShape};
use dualchain_storage::cpc::CpcStore;
use dualchain_storage::rocks::{RocksConfig, RocksEngine};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::agents::{CpcNode, FetchRequest, Log, OwnedDataset, OwnerNode};
use crate::consortium::{Client, Final, Validator};
use crate::members::{issue_ibe_key, seal_abe_key, Member, ABE_KEY_AAD};
use crate::{fhir, sharing, zk};

pub const KGC: &str = "kgc";
pub const HOSPITAL_A: &str = "hospital-a";
pub const HOSPITAL_B: &str = "hospital-b";
pub const RESEARCH: &str = "research-1";
pub const CPCS: [&str; 3] = ["cpc-1", "cpc-2", "cpc-3"];
pub const VALIDATORS: usize = 4;

/// The CP-ABE policy of the demo datasets and its zero-knowledge twin's departments.
pub const DEMO_POLICY: &str = "role:research and (dept:cardiology or dept:icu or dept:anesthesiology)";
pub const DEPARTMENTS: [&str; 3] = ["cardiology", "icu", "anesthesiology"];

/// Longest grant (genesis).
pub const GRANT_DURATION_MAX_S: u64 = 30 * 24 * 3600;

/// What a consortium is set up with.
#[derive(Debug, Clone)]
pub struct FlowConfig {
    /// Observations per uploaded dataset (sets the supply circuit's shape).
    pub records: usize,
    pub seed: Option<u64>,
    /// Where Groth16 parameter files are cached between runs.
    pub params_dir: PathBuf,
    /// Where the validators' and CPCs' RocksDB directories go.
    pub data_dir: PathBuf,
}

/// An uploaded dataset as its owner knows it.
pub struct Upload {
    pub dataset: DatasetId,
    pub owner: String,
    pub cpc: String,
    pub plaintexts: Vec<Vec<u8>>,
    pub observations: Vec<serde_json::Value>,
    pub h1: Hash,
    pub commitment: Fr,
    /// The commitment's salt (the owner's secret).
    pub salt: Fr,
    pub zk_records: Vec<supply::Record>,
    pub ward: fhir::Ward,
    pub registration: Final,
}

pub use crate::sharing::IndexPointer;

/// A running consortium.
pub struct Consortium {
    pub cfg: FlowConfig,
    pub cluster: LocalCluster,
    pub validators: Vec<Arc<Validator>>,
    pub genesis: Genesis,
    pub ca: CertificateAuthority,
    pub ibe: IbePublicParams,
    /// The KGC's and each CPC's ESKI-IBE share (each held by its authority).
    ibe_secrets: Vec<(String, AuthoritySecret)>,
    pub abe_pk: <Ac17 as AbeScheme>::PublicKey,
    abe_msk: <Ac17 as AbeScheme>::MasterKey,
    pub policy_pk: Arc<ProvingKey>,
    pub supply_pks: HashMap<SupplyShape, Arc<ProvingKey>>,
    pub supply_shape: SupplyShape,
    pub members: HashMap<String, Arc<Member>>,
    pending: HashMap<String, Member>,
    pub clients: HashMap<String, Arc<Client>>,
    pub owners: HashMap<String, Arc<OwnerNode>>,
    pub cpcs: HashMap<String, Arc<CpcNode>>,
    pub log: Log,
    rng: Mutex<ChaCha20Rng>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    consensus: Vec<Config>,
    /// Parameters generated (not loaded) at genesis, with the time it took.
    pub params_generated: Vec<(String, Duration)>,
}

/// The validator a member's client talks to (validator 3 serves nobody, so the tests can
/// stop it without cutting a member off).
fn home_of(member: &str) -> usize {
    match member {
        KGC | HOSPITAL_A | "cpc-1" => 0,
        RESEARCH | HOSPITAL_B | "cpc-2" => 1,
        _ => 2,
    }
}

fn now_unix() -> Result<u64> {
    Ok(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).context("clock before 1970")?.as_secs())
}

impl Consortium {
    /// Genesis and start: CA and member certificates, Groth16 parameters, ESKI-IBE and
    /// CP-ABE setup, the validators' keys, TLS and stores; validators started; clients.
    pub async fn genesis(cfg: FlowConfig) -> Result<Self> {
        let mut rng = match cfg.seed {
            Some(s) => ChaCha20Rng::seed_from_u64(s),
            None => ChaCha20Rng::from_entropy(),
        };
        let now = now_unix()?;
        let supply_shape = SupplyShape::for_records(cfg.records)
            .ok_or_else(|| anyhow!("{} records exceed the largest supply shape (4096)", cfg.records))?;
        let ca = CertificateAuthority::generate("consortium-ca", &mut rng)?;
        let specs: Vec<(&str, Role, Vec<&str>)> = vec![
            (KGC, Role::Kgc, vec!["role:kgc"]),
            (HOSPITAL_A, Role::Hospital, vec!["role:hospital", "dept:icu"]),
            (HOSPITAL_B, Role::Hospital, vec!["role:hospital", "dept:dermatology"]),
            (RESEARCH, Role::ResearchInstitute, vec!["role:research", "dept:cardiology"]),
            (CPCS[0], Role::Cpc, vec!["role:cpc"]),
            (CPCS[1], Role::Cpc, vec!["role:cpc"]),
            (CPCS[2], Role::Cpc, vec!["role:cpc"]),
        ];
        let mut pending = HashMap::new();
        for (serial, (id, role, attrs)) in specs.into_iter().enumerate() {
            pending.insert(id.to_string(), Member::certify(&ca, &mut rng, id, role, &attrs, serial as u64 + 1, now)?);
        }

        // Groth16 parameters per shape (generated once, cached by circuit digest).
        let mut params_generated = Vec::new();
        let mut keys = Vec::new();
        for shape in [Shape::Policy, Shape::Supply(supply_shape)] {
            let dir = cfg.params_dir.clone();
            let mut krng = ChaCha20Rng::from_rng(&mut rng)?;
            let started = Instant::now();
            let (pk, generated) =
                tokio::task::spawn_blocking(move || zk::load_or_generate(shape, &dir, &mut krng)).await??;
            if generated {
                params_generated.push((shape.name().to_string(), started.elapsed()));
            }
            keys.push(Arc::new(pk));
        }
        let supply_pk = keys.pop().ok_or_else(|| anyhow!("supply parameters"))?;
        let policy_pk = keys.pop().ok_or_else(|| anyhow!("policy parameters"))?;

        let authorities: Vec<&str> = std::iter::once(KGC).chain(CPCS).collect();
        let (ibe, secrets) = IbePublicParams::setup(&mut rng, &authorities)?;
        ibe.verify_chain()?;
        let ibe_secrets = authorities.iter().map(|a| a.to_string()).zip(secrets).collect();
        let (abe_pk, abe_msk) = Ac17::setup()?;

        let genesis = Genesis {
            ca: ca.public().clone(),
            policy_vk: policy_pk.vk().clone(),
            supply_vks: vec![(supply_shape, supply_pk.vk().clone())],
            grant_duration_max_s: GRANT_DURATION_MAX_S,
        };
        std::fs::create_dir_all(&cfg.data_dir)?;
        let mut cluster = LocalCluster::new(VALIDATORS, &cfg.data_dir, &RocksConfig::default(), &mut rng)?;
        let consensus: Vec<Config> = (0..VALIDATORS).map(|i| Config::loopback(VALIDATORS, i as u8)).collect();
        let mut validators = Vec::new();
        for (i, c) in consensus.iter().enumerate() {
            validators.push(Validator::start(&mut cluster, i, genesis.clone(), c.clone())?);
        }
        let clients = pending
            .values()
            .map(|m| (m.id.clone(), Arc::new(Client::new(&m.id, m.signer.clone(), validators[home_of(&m.id)].clone()))))
            .collect();
        let mut supply_pks = HashMap::new();
        supply_pks.insert(supply_shape, supply_pk);
        Ok(Self {
            cfg,
            cluster,
            validators,
            genesis,
            ca,
            ibe,
            ibe_secrets,
            abe_pk,
            abe_msk,
            policy_pk,
            supply_pks,
            supply_shape,
            members: HashMap::new(),
            pending,
            clients,
            owners: HashMap::new(),
            cpcs: HashMap::new(),
            log: Log::default(),
            rng: Mutex::new(rng),
            tasks: Vec::new(),
            consensus,
            params_generated,
        })
    }

    fn rng(&self) -> ChaCha20Rng {
        let mut r = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        ChaCha20Rng::from_rng(&mut *r).expect("ChaCha20 from ChaCha20")
    }

    pub fn client(&self, id: &str) -> Result<&Arc<Client>> {
        self.clients.get(id).ok_or_else(|| anyhow!("unknown member {id}"))
    }

    pub fn member(&self, id: &str) -> Result<&Arc<Member>> {
        self.members.get(id).ok_or_else(|| anyhow!("member {id} has not joined yet"))
    }

    /// Step 2: every member registers its certificate on the data chain.
    pub async fn register_members(&self) -> Result<Vec<Final>> {
        let mut set = tokio::task::JoinSet::new();
        for m in self.pending.values() {
            let client = self.client(&m.id)?.clone();
            let kind = TxKind::RegisterMember { certificate: m.cert.to_bytes() };
            set.spawn(async move { client.submit_accepted(kind).await });
        }
        let mut out: Vec<Final> = Vec::new();
        while let Some(r) = set.join_next().await {
            out.push(r??);
        }
        // Final on every member's home validator, so each authority sees every member.
        self.wait_all_applied(out.iter().map(|f| f.seq).max().unwrap_or(0)).await?;
        Ok(out)
    }

    /// Waits until every running validator applied batch `seq`.
    pub async fn wait_all_applied(&self, seq: u64) -> Result<()> {
        for v in &self.validators {
            tokio::time::timeout(Duration::from_secs(60), v.wait_applied(seq))
                .await
                .map_err(|_| anyhow!("validator {} did not apply batch {seq} within a minute", v.id))??;
        }
        Ok(())
    }

    /// Step 3: escrow-free IBE keys for every member (each authority checks the member is
    /// registered and active on chain before issuing its share), CP-ABE keys delivered
    /// IBE-encrypted to the members that request data, credential leaves published by the
    /// KGC. Then the members' nodes start.
    pub async fn issue_keys(&mut self) -> Result<()> {
        let now = now_unix()?;
        let mut rng = self.rng();
        let ledger = self.validators[home_of(KGC)].ledger.clone();
        let authorities: Vec<&AuthoritySecret> = self.ibe_secrets.iter().map(|(_, s)| s).collect();
        for m in self.pending.values_mut() {
            let rec = ledger.member(&m.id)?.ok_or_else(|| anyhow!("{} is not registered", m.id))?;
            ensure!(rec.revoked.is_none(), "{} is revoked", m.id);
            m.ibe_key = Some(issue_ibe_key(&mut rng, &self.ibe, &authorities, m, self.ca.public(), now)?);
        }
        let kgc = self.client(KGC)?.clone();
        let mut last = 0;
        for id in [RESEARCH, HOSPITAL_B] {
            let m = self.pending.get_mut(id).ok_or_else(|| anyhow!("{id}"))?;
            let sealed = seal_abe_key(&mut rng, &self.ibe, &self.abe_msk, m)?;
            let opened = m.ibe_key()?.decrypt(&sealed, ABE_KEY_AAD)?;
            m.abe_key = Some(<Ac17 as AbeScheme>::UserKey::from_bytes(&opened)?);
            m.cert.check_attribute_opening(&m.attributes, &m.attribute_salt)?;
            let leaf = FrBytes::from_fr(&m.credential().leaf());
            let f = kgc.submit_accepted(TxKind::IssueCredential { member: id.into(), leaf }).await?;
            last = last.max(f.seq);
        }
        self.wait_all_applied(last).await?;
        for (id, m) in self.pending.drain() {
            self.members.insert(id, Arc::new(m));
        }
        self.start_nodes()
    }

    fn start_nodes(&mut self) -> Result<()> {
        for id in [HOSPITAL_A, HOSPITAL_B] {
            let node = Arc::new(OwnerNode {
                member: self.member(id)?.clone(),
                client: self.client(id)?.clone(),
                datasets: Mutex::new(HashMap::new()),
                supply_keys: self.supply_pks.clone(),
                ibe: self.ibe.clone(),
                log: self.log.clone(),
                metrics: Default::default(),
                persist: None,
            });
            self.tasks.push(node.spawn());
            self.owners.insert(id.to_string(), node);
        }
        for id in CPCS {
            let engine = RocksEngine::open(&self.cfg.data_dir.join(id), &RocksConfig::default())?;
            let store = Arc::new(CpcStore::open(Arc::new(engine))?);
            let node =
                Arc::new(CpcNode::new(self.member(id)?.clone(), self.client(id)?.clone(), store, self.log.clone()));
            self.tasks.push(node.spawn());
            self.cpcs.insert(id.to_string(), node);
        }
        Ok(())
    }

    /// Step 4: the owner signcrypts `records` bedside-monitor Observations to `cpc`, which
    /// stores them and returns its manifest (H1′); the owner checks H1′, commits to the
    /// records (C_D), encrypts the index under the CP-ABE policy and registers the dataset.
    pub async fn upload(
        &self,
        owner: &str,
        name: &str,
        cpc: &str,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Upload> {
        let m = self.member(owner)?.clone();
        let mut rng = self.rng();
        let now = now_unix()?;
        let dataset = DatasetId::derive(owner, name);
        let ward = fhir::Ward { hospital: owner.into(), patients: 8, start_unix: now - 3600, interval_s: 30 };
        let observations = fhir::observations(&ward, self.cfg.records, &mut rng);
        let plaintexts: Vec<Vec<u8>> = observations.iter().map(serde_json::to_vec).collect::<Result<_, _>>()?;
        let records = sharing::signcrypt_dataset(&mut rng, &m, dataset, &plaintexts, now, progress)?;
        // Over the wire to the CPC: encodings, checked as they are stored.
        let wire: Vec<Signcrypted> =
            records.iter().map(|r| Signcrypted::from_bytes(&r.to_bytes())).collect::<Result<_, _>>()?;
        let cpc_node = self.cpcs.get(cpc).ok_or_else(|| anyhow!("unknown CPC {cpc}"))?.clone();
        let manifest = tokio::task::spawn_blocking(move || cpc_node.upload(&m.id, &wire)).await??;
        let h1 = manifest.hash();
        ensure!(manifest.entries.len() == records.len(), "the CPC's manifest lists {} records", manifest.entries.len());

        let zk_records: Vec<supply::Record> = observations
            .iter()
            .map(|o| fhir::to_record(o, &ward))
            .collect::<Result<_, String>>()
            .map_err(|e| anyhow!(e))?;
        let prepared = sharing::prepare_registration(
            &mut rng,
            &self.abe_pk,
            &sharing::DatasetSpec {
                dataset,
                name,
                h1,
                cpc,
                shape: self.supply_shape,
                records: &zk_records,
                abe_policy: DEMO_POLICY,
                departments: &DEPARTMENTS,
            },
        )?;
        let (commitment, salt) = (prepared.commitment, prepared.salt);
        self.owners
            .get(owner)
            .ok_or_else(|| anyhow!("{owner} runs no owner node"))?
            .add_dataset(dataset, OwnedDataset { shape: self.supply_shape, records: zk_records.clone(), salt })?;
        let registration = self.client(owner)?.submit_accepted(prepared.tx).await?;
        Ok(Upload {
            dataset,
            owner: owner.into(),
            cpc: cpc.into(),
            plaintexts,
            observations,
            h1,
            commitment,
            salt,
            zk_records,
            ward,
            registration,
        })
    }

    /// A demand for heart-rate observations of adult patients in 40..200 bpm over the last
    /// two hours, needing `threshold` of them.
    pub fn heart_rate_requirement(threshold: u16) -> Result<Requirement> {
        let now = now_unix()?;
        Ok(Requirement {
            code: supply::fhir::loinc_code("8867-4").ok_or_else(|| anyhow!("LOINC"))?,
            unit: supply::fhir::unit_code("/min"),
            age_lo: 0,
            age_hi: 20,
            sex: supply::sex::UNKNOWN_OR_ANY,
            value_min: Some(40_000),
            value_max: Some(200_000),
            time_from: supply::fhir::minutes(now - 7200).ok_or_else(|| anyhow!("time"))?,
            time_to: supply::fhir::minutes(now + 60).ok_or_else(|| anyhow!("time"))?,
            threshold,
        })
    }

    /// Step 5: a requester publishes a demand on a dataset.
    pub async fn demand(
        &self,
        requester: &str,
        dataset: &DatasetId,
        requirement: Requirement,
    ) -> Result<(Hash, Final)> {
        let mut id = [0u8; 32];
        self.rng().fill_bytes(&mut id);
        let f = self.client(requester)?.submit(TxKind::Demand { demand: id, dataset: dataset.0, requirement }).await?;
        Ok((id, f))
    }

    /// Waits (on `member`'s home ledger) until `check` holds for the demand.
    pub async fn wait_demand(&self, member: &str, demand: &Hash, timeout: Duration) -> Result<DemandRecord> {
        let ledger = self.client(member)?.home().ledger.clone();
        let id = *demand;
        wait_for(timeout, "the owner's supply proof", move || {
            Ok(ledger.demand(&id)?.filter(|d| d.supplied_by.is_some()))
        })
        .await
    }

    /// Step 8 (requester): opens the dataset's CP-ABE index with its attribute key.
    pub fn open_index(&self, requester: &str, dataset: &DatasetId) -> Result<IndexPointer> {
        sharing::open_index(self.member(requester)?, &self.client(requester)?.home().ledger, &dataset.0)
    }

    /// Step 7: the requester proves in zero knowledge that its credential satisfies the
    /// dataset's policy, bound to a fresh request id and its key, against the current
    /// credential root, and asks for a grant of `duration_s`. Returns the request id, the
    /// final transaction and the proving time.
    pub async fn request_access(
        &self,
        requester: &str,
        demand: &Hash,
        duration_s: u64,
    ) -> Result<(Hash, Final, Duration)> {
        let ledger = self.client(requester)?.home().ledger.clone();
        let root = ledger.credential_root()?.ok_or_else(|| anyhow!("no credential root yet"))?;
        let path = ledger.credential_path(requester)?.ok_or_else(|| anyhow!("{requester} holds no credential"))?;
        self.request_access_against(requester, demand, duration_s, root, path).await
    }

    /// [`Consortium::request_access`] against a given root and path (e.g. ones the
    /// requester kept from before a revocation).
    pub async fn request_access_against(
        &self,
        requester: &str,
        demand: &Hash,
        duration_s: u64,
        root: FrBytes,
        path: MerklePath,
    ) -> Result<(Hash, Final, Duration)> {
        let credential = self.member(requester)?.credential();
        self.prove_and_request(requester, demand, duration_s, root, credential, path).await
    }

    /// What an unauthorised requester can do: it cannot prove the policy with its own
    /// credential, so it claims the attributes the policy wants in a credential of its own
    /// making, proves membership in a tree of its own, and names the registry's root.
    pub async fn request_access_forged(&self, requester: &str, demand: &Hash) -> Result<(Hash, Final)> {
        let m = self.member(requester)?.clone();
        let ledger = self.client(requester)?.home().ledger.clone();
        let root = ledger.credential_root()?.ok_or_else(|| anyhow!("no credential root yet"))?;
        let claimed = dualchain_crypto::cert::AttributeSet::new(["role:research", "dept:cardiology"])?;
        let credential =
            crate::members::credential_for(&claimed, &m.attribute_salt, m.cert.fields.signing_key.as_bytes());
        let mut own_tree = CredentialTree::new();
        own_tree.set(0, credential.leaf());
        let (id, f, _) = self.prove_and_request(requester, demand, 3600, root, credential, own_tree.path(0)).await?;
        Ok((id, f))
    }

    /// Proves the demand's dataset policy for `credential` at `path` under a fresh request
    /// id and submits the request naming `root`.
    async fn prove_and_request(
        &self,
        requester: &str,
        demand: &Hash,
        duration_s: u64,
        root: FrBytes,
        credential: dualchain_prover::policy::Credential,
        path: MerklePath,
    ) -> Result<(Hash, Final, Duration)> {
        let ledger = self.client(requester)?.home().ledger.clone();
        let mut request_id = [0u8; 32];
        self.rng().fill_bytes(&mut request_id);
        let (proof, took) =
            sharing::prove_policy(self.policy_pk.clone(), &ledger, demand, credential, path, request_id).await?;
        let f = self
            .client(requester)?
            .submit(TxKind::RequestAccess { request: request_id, demand: *demand, root, proof, duration_s })
            .await?;
        Ok((request_id, f, took))
    }

    /// Waits until the grant's CPC filed its receipt (seen on `member`'s home ledger).
    pub async fn wait_receipt(&self, member: &str, grant: &Hash, timeout: Duration) -> Result<GrantRecord> {
        let ledger = self.client(member)?.home().ledger.clone();
        let id = *grant;
        wait_for(timeout, "the CPC's receipt", move || Ok(ledger.grant(&id)?.filter(|g| g.receipts > 0))).await
    }

    /// Step 9 (requester): asks the CPC for the re-encrypted records (signed request,
    /// H1 from the index), decrypts each and checks the owner's signature.
    pub async fn fetch_and_decrypt(
        &self,
        requester: &str,
        grant: &Hash,
        pointer: &IndexPointer,
    ) -> Result<Vec<Vec<u8>>> {
        let m = self.member(requester)?.clone();
        let cpc = self.cpcs.get(&pointer.cpc).ok_or_else(|| anyhow!("unknown CPC {}", pointer.cpc))?.clone();
        let owner = self.client(requester)?.home().ledger.grant(grant)?.ok_or_else(|| anyhow!("unknown grant"))?.owner;
        let owner_key = self.member(&owner)?.cert.fields.signing_key;
        let req = FetchRequest::sign(&m, *grant, pointer.h1);
        tokio::task::spawn_blocking(move || {
            let records = cpc.fetch(&req)?;
            records.iter().map(|r| Ok(r.decrypt(&m.dsk, &owner_key)?)).collect::<Result<Vec<_>>>()
        })
        .await?
    }

    /// Waits until every running validator applied the same batch and compares their
    /// ledgers (applied sequence number and both chain tips).
    pub async fn ledgers_identical(&self, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let prints: Vec<_> = self.validators.iter().map(|v| v.ledger.fingerprint()).collect::<Result<_, _>>()?;
            if prints.iter().all(|p| *p == prints[0]) {
                return Ok(prints[0].applied_seq.unwrap_or(0));
            }
            for (v, p) in self.validators.iter().zip(&prints).skip(1) {
                ensure!(
                    p.applied_seq != prints[0].applied_seq || *p == prints[0],
                    "validator {} holds another ledger than validator 0 at batch {:?}",
                    v.id,
                    p.applied_seq
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "validators did not converge within {timeout:?}: {:?}",
                    prints.iter().map(|p| p.applied_seq).collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops validator `i` (engine and ledger); its stores stay.
    pub async fn stop_validator(&self, i: usize) -> Result<()> {
        self.validators[i].stop().await
    }

    /// Restarts validator `i` from its stores (catching up from its log and its peers).
    pub fn restart_validator(&mut self, i: usize) -> Result<()> {
        let v = Validator::start(&mut self.cluster, i, self.genesis.clone(), self.consensus[i].clone())?;
        self.validators[i] = v;
        Ok(())
    }

    /// Stops nodes and validators.
    pub async fn shutdown(self) -> Result<()> {
        for t in &self.tasks {
            t.abort();
        }
        for v in &self.validators {
            v.stop().await?;
        }
        Ok(())
    }

    pub fn data_dir(&self) -> &Path {
        &self.cfg.data_dir
    }
}

/// Polls `f` every 20 ms until it yields a value.
pub async fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
