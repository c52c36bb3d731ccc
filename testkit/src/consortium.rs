//! An in-process consortium built the way a deployment is built, for the demo, the
//! end-to-end tests and the e2e benchmark.
//!
//! Genesis is `dualchain init`'s own code ([`dualchain_node::genesis::run`]): the default
//! layout of seven nodes (kgc, hospital-a, research-1, cpc-1, hospital-b, cpc-2,
//! research-2), on loopback with free ports. Each node is a
//! [`dualchain_node::service::Service`] started from its `node.toml`, exactly as
//! `dualchain node` starts one: a validator (PBFT over loopback QUIC with mutual TLS, its log
//! and ledger in RocksDB), the hosted member's agents, and the HTTP API served on loopback.
//! Members act through their own node's API ([`ApiClient`]), as institutions, gateways and
//! `dualchain client` do, so the demo and the tests run the same upload, demand, access,
//! fetch and audit code as a deployment.
//!
//! Tests also reach into a node (its ledger, its agents, its member's keys) to inspect, and
//! to play an adversary: a forged policy proof, a proof against a stale root, a
//! transaction the API would refuse to send. Those tools are marked as such below.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use blstrs::Scalar as Fr;
use dualchain_crypto::cbsre::DatasetId;
use dualchain_crypto::cert::AttributeSet;
use dualchain_ledger::state::{DemandRecord, GrantRecord};
use dualchain_ledger::tx::{FrBytes, Hash};
use dualchain_ledger::Ledger;
use dualchain_node::agents::{CpcNode, Log, OwnedDataset, OwnerNode};
use dualchain_node::api::client::{ApiClient, ApiRefusal};
use dualchain_node::config::{ConsortiumFile, NodeConfig};
use dualchain_node::genesis::{self, InitOptions};
use dualchain_node::member::client::{Client, Final};
use dualchain_node::member::{sharing, Member, MemberFile};
use dualchain_node::runtime::Node;
use dualchain_node::service::Service;
use dualchain_prover::policy::{CredentialTree, MerklePath};
use dualchain_prover::supply::{self, SupplyShape};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::fhir;

pub const KGC: &str = "kgc";
pub const HOSPITAL_A: &str = "hospital-a";
pub const RESEARCH: &str = "research-1";
pub const HOSPITAL_B: &str = "hospital-b";
pub const RESEARCH_2: &str = "research-2";
pub const CPCS: [&str; 2] = ["cpc-1", "cpc-2"];
/// Nodes of the consortium; node `i` hosts the `i`-th member of genesis's default layout.
pub const NODES: usize = 7;

/// The CP-ABE policy every node of the in-process consortium writes on its datasets: the
/// deployment default ([`dualchain_node::config::DEFAULT_ABE_POLICY`]), which research-1
/// (cardiology) satisfies and hospital-b (a hospital, dermatology) does not.
pub const DEMO_POLICY: &str = dualchain_node::config::DEFAULT_POLICY;

/// How long a helper waits for the consortium (finality, proofs, re-encryption).
pub const WAIT: Duration = Duration::from_secs(120);

/// The cohort minimum of the fixture's datasets (`Consortium::upload`).
pub const FIXTURE_COHORT: u16 = 4;

/// What a consortium is set up with.
#[derive(Debug, Clone)]
pub struct FlowConfig {
    /// Observations per uploaded dataset (sets the supply circuit's shape).
    pub records: usize,
    /// Seed of the genesis keys and the synthetic data (tests only: a seeded genesis is
    /// reproducible by anyone who knows the seed).
    pub seed: Option<u64>,
    /// Where Groth16 parameter files are cached between runs.
    pub params_dir: PathBuf,
    /// Where the consortium's files and the nodes' RocksDB directories go.
    pub data_dir: PathBuf,
    /// Genesis as deployments run it: each institution makes its keys
    /// (`dualchain keygen`), a coordinator assembles the consortium from the public parts
    /// (`assemble`, with test parameters), each institution checks and joins (`join`),
    /// and the members obtain their ESKI-IBE and CP-ABE keys from the authorities' nodes
    /// when they start. Otherwise `dualchain init` makes every key on one machine (from
    /// `seed` when given).
    pub institutions: bool,
    /// With `institutions`: the Groth16 parameters from a ceremony among the institutions
    /// (each adds its phase-1 and phase-2 secrets; the coordinator and every node verify)
    /// instead of test parameters.
    pub ceremony: bool,
    /// With `institutions`: validator-only institutions (`keygen --role validator`, no
    /// member) beside the [`NODES`] members' nodes, as nodes `NODES..`.
    pub validators_only: usize,
    /// Open the anonymous path (`--anonymous`): the parameters include the anonymous
    /// policy circuit, and the audit authorities' nodes make the escrow key on chain.
    pub anonymous: bool,
}

/// A dataset as its owner uploaded it.
pub struct Upload {
    pub dataset: DatasetId,
    pub owner: String,
    pub cpc: String,
    /// The uploaded Observations, as posted.
    pub observations: Vec<Value>,
    pub h1: Hash,
    /// The supply circuit's records and the commitment's salt (the owner node's secret).
    pub zk_records: Vec<supply::Record>,
    pub salt: Fr,
    /// The registration's batch.
    pub seq: u64,
    /// The owner's node's answer: a FHIR transaction-response Bundle.
    pub answer: Value,
}

impl Upload {
    /// The Observations a grant under `requirement` delivers: those whose records satisfy
    /// it (minimum necessary), in upload order.
    pub fn matching(&self, requirement: &supply::Requirement) -> Vec<Value> {
        let rows = self.observations.iter().zip(&self.zk_records);
        rows.filter(|(_, r)| requirement.matches(r)).map(|(o, _)| o.clone()).collect()
    }

    /// Checks what a grant under `requirement` delivered: exactly the matching
    /// Observations, without what linked them to their patients, each with a pseudonym of
    /// `grant` as its subject, one per patient (same patient, same pseudonym; another
    /// patient, another). Returns the pseudonyms in delivery order.
    pub fn check_delivery(
        &self,
        requirement: &supply::Requirement,
        fetched: &[Value],
        grant: &Hash,
    ) -> Result<Vec<String>> {
        let want = self.matching(requirement);
        ensure!(fetched.len() == want.len(), "{} records delivered, {} match the demand", fetched.len(), want.len());
        let system = format!("urn:dualchain:grant:{}", hex::encode(grant));
        let mut pseudonyms = Vec::with_capacity(fetched.len());
        let mut seen: Vec<(String, String)> = Vec::new();
        for (got, original) in fetched.iter().zip(&want) {
            let mut got = got.clone();
            let subject = got.as_object_mut().and_then(|o| o.remove("subject")).unwrap_or_default();
            ensure!(subject["identifier"]["system"] == system.as_str(), "subject {subject} is not of this grant");
            let pseudonym = subject["identifier"]["value"].as_str().unwrap_or_default().to_owned();
            let (deidentified, patient) = dualchain_node::member::pseudonym::deidentify(original);
            ensure!(got == deidentified, "delivered {got}, uploaded (without its patient links) {deidentified}");
            let patient = patient.unwrap_or_default();
            for (p, q) in &seen {
                ensure!((*p == patient) == (*q == pseudonym), "{patient} and {p} get pseudonyms {pseudonym} and {q}");
            }
            seen.push((patient, pseudonym.clone()));
            pseudonyms.push(pseudonym);
        }
        Ok(pseudonyms)
    }
}

/// The answer to an access request made through the API.
#[derive(Debug, Clone)]
pub struct Access {
    pub request: Hash,
    pub granted: bool,
    /// The ledger's reason when the request was denied.
    pub denial: Option<String>,
    pub prove: Duration,
}

/// A node started in this process: the service and its API server.
struct Running {
    service: Service,
    server: JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<()>,
}

/// Heart rates of the last two hours, `threshold` of them; `anonymous` as the API takes it.
fn demand_spec(dataset: &DatasetId, threshold: u16, anonymous: bool) -> Value {
    let now = now_s();
    json!({
        "dataset": dataset.to_hex(), "code": "8867-4", "unit": "/min",
        "value_min": 40.0, "value_max": 200.0,
        "since": now - 7200, "until": now + 60, "threshold": threshold, "anonymous": anonymous,
    })
}

/// A free loopback port (UDP and TCP), reserved for the rest of this process so that no
/// other test process of the host is handed it (see [`crate::ports`]).
pub fn free_port() -> Result<u16> {
    crate::ports::reserve(1)
}

/// The name of the in-process consortium.
const CONSORTIUM_NAME: &str = "dualchain in-process consortium";

/// Genesis across institutions (see [`FlowConfig::institutions`]) into `dir/node-<i>`,
/// with the coordinator's CAs in `dir/ca` and its output in `dir/genesis`.
fn institutions_genesis(
    dir: &Path,
    params_cache: &Path,
    records: usize,
    with_ceremony: bool,
    validators_only: usize,
    anonymous: bool,
) -> Result<()> {
    use dualchain_node::genesis::assemble::{assemble, AssembleOptions};
    use dualchain_node::genesis::institution::{join, keygen, JoinOptions, KeygenOptions};
    let mut layout = dualchain_node::genesis::layout::default_layout(NODES);
    layout.extend((0..validators_only).map(|_| None));
    let mut contributions = Vec::new();
    let mut last_authority: Option<PathBuf> = None;
    // Consecutive ports from two reserved bases, one per node.
    let count = u16::try_from(layout.len()).context("too many nodes")?;
    let (quic_base, api_base) = (crate::ports::reserve(count)?, crate::ports::reserve(count)?);
    for ((i, spec), offset) in layout.iter().enumerate().zip(0u16..) {
        let (id, role, attributes) = match spec {
            Some(spec) => (spec.id.clone(), spec.role.as_str().to_string(), spec.attributes.clone()),
            None => (format!("operator-{i}"), "validator".to_string(), Vec::new()),
        };
        let path = keygen(&KeygenOptions {
            consortium: CONSORTIUM_NAME.into(),
            id,
            role: role.clone(),
            attributes,
            host: "127.0.0.1".into(),
            quic_port: quic_base + offset,
            api_port: api_base + offset,
            ibe_after: if role == "cpc" { last_authority.clone() } else { None },
            dir: dir.join(format!("node-{i}")),
        })?;
        if role == "kgc" || role == "cpc" {
            last_authority = Some(path.clone());
        }
        contributions.push(path);
    }
    let ceremony_dir = with_ceremony.then(|| dir.join("ceremony"));
    if let Some(cdir) = &ceremony_dir {
        use dualchain_node::genesis::ceremony;
        use dualchain_prover::shapes::Shape;
        let ids: Vec<&str> = layout.iter().flatten().map(|s| s.id.as_str()).collect();
        let shape =
            SupplyShape::for_records(records).ok_or_else(|| anyhow!("no supply shape holds {records} records"))?;
        let mut shapes = vec![Shape::Policy, Shape::Supply(shape)];
        if anonymous {
            shapes.extend([Shape::AnonymousPolicy, Shape::DemandNullifier]);
        }
        ceremony::new(cdir, &shapes)?;
        for id in &ids {
            ceremony::tau(cdir, id)?;
        }
        ceremony::start(cdir)?;
        for id in &ids {
            ceremony::delta(cdir, id)?;
        }
    }
    assemble(&AssembleOptions {
        name: CONSORTIUM_NAME.into(),
        contributions,
        ca: dir.join("ca"),
        out: dir.join("genesis"),
        supply_records: vec![records],
        anonymous,
        test_params: ceremony_dir.is_none(),
        ceremony: ceremony_dir,
        params_cache: Some(params_cache.to_path_buf()),
    })?;
    for i in 0..layout.len() {
        join(&JoinOptions {
            dir: dir.join(format!("node-{i}")),
            genesis: dir.join("genesis"),
            preset: "loopback".into(),
            default_cpc: None,
        })?;
    }
    Ok(())
}

/// A running consortium.
pub struct Consortium {
    pub cfg: FlowConfig,
    /// The consortium's files, as `dualchain init` wrote them.
    pub dir: PathBuf,
    pub file: ConsortiumFile,
    pub supply_shape: SupplyShape,
    /// Groth16 shapes generated (not taken from the cache) at genesis.
    pub params_generated: Vec<String>,
    nodes: Vec<Option<Running>>,
    apis: HashMap<String, ApiClient>,
    /// Members admitted after genesis, by the node that joined with each.
    joined: HashMap<String, usize>,
}

fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Consortium {
    /// Genesis by `dualchain init`'s code, then every node started from its files.
    pub async fn genesis(cfg: FlowConfig) -> Result<Self> {
        let supply_shape = SupplyShape::for_records(cfg.records)
            .ok_or_else(|| anyhow!("{} records exceed the largest supply shape (4096)", cfg.records))?;
        let dir = cfg.data_dir.join("consortium");
        std::fs::create_dir_all(&cfg.data_dir)?;
        ensure!(cfg.institutions || cfg.validators_only == 0, "validator-only nodes come from keygen (institutions)");
        let n = NODES + cfg.validators_only;
        let params_generated = if cfg.institutions {
            let (dir, params) = (dir.clone(), cfg.params_dir.clone());
            let (records, ceremony, extra, anonymous) = (cfg.records, cfg.ceremony, cfg.validators_only, cfg.anonymous);
            tokio::task::spawn_blocking(move || {
                institutions_genesis(&dir, &params, records, ceremony, extra, anonymous)
            })
            .await??;
            Vec::new()
        } else {
            let opts = InitOptions {
                nodes: NODES,
                out: dir.clone(),
                name: "dualchain in-process consortium".into(),
                hosts: vec!["127.0.0.1".into()],
                // Consecutive ports from base, reserved against other test processes.
                quic_port: crate::ports::reserve(NODES as u16)?,
                api_port: crate::ports::reserve(NODES as u16)?,
                members: Vec::new(),
                supply_records: vec![cfg.records],
                anonymous: cfg.anonymous,
                params_cache: Some(cfg.params_dir.clone()),
                preset: "loopback".into(),
                seed: cfg.seed,
                ceremony: None,
                insecure_http: false,
            };
            tokio::task::spawn_blocking(move || genesis::run(&opts)).await??.params_generated
        };
        let node0 = NodeConfig::load(&dir.join("node-0/node.toml"))?;
        let file = ConsortiumFile::load(&node0.path(&node0.consortium))?;
        let mut c = Self {
            cfg,
            dir,
            file,
            supply_shape,
            params_generated,
            nodes: (0..n).map(|_| None).collect(),
            apis: HashMap::new(),
            joined: HashMap::new(),
        };
        for i in 0..n {
            c.start_node(i).await.with_context(|| format!("starting node {i}"))?;
        }
        for m in &c.file.members {
            let cfg = c.node_config(m.node as usize)?;
            let key = cfg.secrets.member.as_ref().ok_or_else(|| anyhow!("node {} hosts no member", m.node))?;
            let member = serde_json::from_slice::<MemberFile>(&std::fs::read(cfg.path(key))?)?.member()?;
            c.apis.insert(m.id.clone(), ApiClient::of_node(&c.file, m.node, &m.id, member.signer)?);
        }
        Ok(c)
    }

    fn node_config(&self, i: usize) -> Result<NodeConfig> {
        NodeConfig::load(&self.dir.join(format!("node-{i}/node.toml")))
    }

    /// Starts node `i` from its files (as `dualchain node` does) and serves its API.
    pub async fn start_node(&mut self, i: usize) -> Result<()> {
        ensure!(self.nodes[i].is_none(), "node {i} is running");
        let cfg = self.node_config(i)?;
        let listen = cfg.api.listen;
        // A restarted node's stores are free once the last task of the old one has let go.
        let deadline = Instant::now() + Duration::from_secs(10);
        let service = loop {
            match Service::start(cfg.clone()).await {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline && format!("{e:#}").contains("lock") => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let tls = dualchain_node::api::tls::server_config(&cfg, &self.file)?;
        let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = service.router();
        let server = tokio::spawn(async move {
            let serve = dualchain_node::api::tls::serve(listener, app, tls, async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                eprintln!("API server failed: {e}");
            }
        });
        self.nodes[i] = Some(Running { service, server, stop });
        Ok(())
    }

    /// Starts a node that joined after genesis from `dir/node-<i>/node.toml` (as
    /// `dualchain join` wrote it for a newcomer with a validator slot), and a client of
    /// its member's API.
    pub async fn add_node(&mut self, i: usize) -> Result<()> {
        ensure!(i >= self.nodes.len(), "node {i} exists");
        self.nodes.resize_with(i + 1, || None);
        self.start_node(i).await?;
        let cfg = self.node_config(i)?;
        let v = cfg.own_validator(&self.file)?;
        let key = cfg.secrets.member.as_ref().ok_or_else(|| anyhow!("node {i} hosts no member"))?;
        let member = serde_json::from_slice::<MemberFile>(&std::fs::read(cfg.path(key))?)?.member()?;
        let ca = hex::decode(&self.file.tls_ca)?;
        let to = dualchain_node::api::client::Audience::new(&self.file, i as u8);
        self.apis.insert(member.id.clone(), ApiClient::new(&v.api, &ca, to, &member.id, member.signer)?);
        self.joined.insert(member.id, i);
        Ok(())
    }

    /// Stops node `i` as SIGTERM does (API closed, agents stopped, engine synced); its
    /// stores stay.
    pub async fn stop_node(&mut self, i: usize) -> Result<()> {
        let r = self.nodes[i].take().ok_or_else(|| anyhow!("node {i} is not running"))?;
        let _ = r.stop.send(());
        let _ = r.server.await;
        r.service.shutdown().await
    }

    /// Node `i`'s running parts.
    pub fn node(&self, i: usize) -> Result<&Arc<Node>> {
        Ok(&self.nodes[i].as_ref().ok_or_else(|| anyhow!("node {i} is not running"))?.service.node)
    }

    /// The node that hosts `member`.
    pub fn node_of(&self, member: &str) -> Result<&Arc<Node>> {
        self.node(self.index_of(member)?)
    }

    pub fn index_of(&self, member: &str) -> Result<usize> {
        match (self.file.member(member), self.joined.get(member)) {
            (Some(m), _) => Ok(m.node as usize),
            (None, Some(i)) => Ok(*i),
            (None, None) => bail!("unknown member {member}"),
        }
    }

    /// Node `i`'s ledger.
    pub fn ledger(&self, i: usize) -> Result<Arc<Ledger>> {
        Ok(self.node(i)?.ledger.clone())
    }

    /// The ledgers of the running nodes.
    pub fn ledgers(&self) -> Vec<Arc<Ledger>> {
        self.nodes.iter().flatten().map(|r| r.service.node.ledger.clone()).collect()
    }

    /// `member`'s client of its own node's API.
    pub fn api(&self, member: &str) -> Result<&ApiClient> {
        self.apis.get(member).ok_or_else(|| anyhow!("unknown member {member}"))
    }

    /// `member`'s keys, as its node holds them.
    pub fn member(&self, member: &str) -> Result<Arc<Member>> {
        Ok(self.node_of(member)?.hosted().ok_or_else(|| anyhow!("{member} is not hosted"))?.member.clone())
    }

    /// `member`'s transaction client on its node's validator.
    pub fn client(&self, member: &str) -> Result<Arc<Client>> {
        Ok(self.node_of(member)?.hosted().ok_or_else(|| anyhow!("{member} is not hosted"))?.client.clone())
    }

    /// A hospital's owner agent.
    pub fn owner(&self, member: &str) -> Result<Arc<OwnerNode>> {
        self.node_of(member)?.hosted().and_then(|h| h.owner.clone()).ok_or_else(|| anyhow!("{member} owns no data"))
    }

    /// A CPC's agent.
    pub fn cpc(&self, member: &str) -> Result<Arc<CpcNode>> {
        self.node_of(member)?.hosted().and_then(|h| h.cpc.clone()).ok_or_else(|| anyhow!("{member} is not a CPC"))
    }

    /// The activity log of `member`'s node's agents.
    pub fn log(&self, member: &str) -> Result<Log> {
        Ok(self.node_of(member)?.log.clone())
    }

    /// Waits until every running node's member is registered and holds its credential
    /// (the nodes register themselves; the KGC's node publishes the credentials).
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        wait_for(timeout, "every member registered with its credential", || {
            for r in self.nodes.iter().flatten() {
                if !r.service.node.ready()? {
                    return Ok(None);
                }
            }
            // Final everywhere: every ledger holds every member.
            let members = self.file.members.len();
            Ok(self.ledgers().iter().all(|l| l.members().is_ok_and(|m| m.len() >= members)).then_some(()))
        })
        .await
    }

    /// Step 4 through the owner's API: a transaction Bundle of `records` synthetic
    /// bedside-monitor Observations and their Patients, posted to `POST /fhir`; the owner's
    /// node signcrypts them to `cpc`, checks its manifest, commits and registers.
    pub async fn upload(&self, owner: &str, name: &str, cpc: &str) -> Result<Upload> {
        self.upload_with(owner, name, cpc, "").await
    }

    /// [`Self::upload`] with more query parameters (`&policy=…`, percent-encoded).
    pub async fn upload_with(&self, owner: &str, name: &str, cpc: &str, query: &str) -> Result<Upload> {
        let start = now_s().saturating_sub(60 + (self.cfg.records as u64 / 3 + 1) * 30);
        let ward = fhir::Ward { hospital: owner.into(), patients: 8, start_unix: start, interval_s: 30 };
        // Reproducible per (seed, dataset name) when seeded.
        let seed = name.bytes().fold(self.cfg.seed.unwrap_or_else(rand::random), |h, b| {
            h.rotate_left(5) ^ u64::from(b).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        });
        let observations = {
            use rand::SeedableRng;
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
            fhir::observations(&ward, self.cfg.records, &mut rng)
        };
        let bundle = fhir::transaction_bundle(&ward, &observations);
        // Demands for cohorts of 4 or more (the default, 10, would leave a 64-record fixture
        // little to ask); the other limits are the defaults.
        let path = format!("/fhir?dataset={name}&cpc={cpc}&min_cohort={FIXTURE_COHORT}{query}");
        let v: Value = self.api(owner)?.call(Method::POST, &path, Some(&bundle)).await?;
        let tag = |name: &str| {
            dualchain_node::api::fhir_routes::upload_tag(&v, name)
                .ok_or_else(|| anyhow!("the upload's answer has no {name} tag"))
        };
        let dataset = DatasetId(parse_hash(tag("dataset")?)?);
        let h1 = parse_hash(tag("h1")?)?;
        let seq: u64 = tag("seq")?.parse().map_err(|_| anyhow!("seq"))?;
        let owned: Arc<OwnedDataset> = self
            .owner(owner)?
            .datasets
            .lock()
            .map_err(|_| anyhow!("poisoned"))?
            .get(&dataset.0)
            .cloned()
            .ok_or_else(|| anyhow!("the owner's node does not keep the dataset"))?;
        Ok(Upload {
            dataset,
            owner: owner.into(),
            cpc: cpc.into(),
            observations,
            h1,
            zk_records: owned.records.clone(),
            salt: owned.salt,
            seq,
            answer: v,
        })
    }

    /// Step 5 through the requester's API, any requirement (`spec` without the dataset).
    pub async fn demand_spec(&self, requester: &str, dataset: &DatasetId, mut spec: Value) -> Result<Hash> {
        spec["dataset"] = json!(dataset.to_hex());
        let v: Value = self.api(requester)?.call(Method::POST, "/demands", Some(&spec)).await?;
        parse_hash(v["demand"].as_str().unwrap_or(""))
    }

    /// Step 5 through the requester's API: a demand for heart-rate observations in
    /// 40..200 bpm over the last two hours, needing `threshold` of them.
    pub async fn demand(&self, requester: &str, dataset: &DatasetId, threshold: u16) -> Result<Hash> {
        let spec = demand_spec(dataset, threshold, false);
        let v: Value = self.api(requester)?.call(Method::POST, "/demands", Some(&spec)).await?;
        parse_hash(v["demand"].as_str().unwrap_or(""))
    }

    /// [`Consortium::demand`] without naming the requester (`"anonymous": true`): its node
    /// proves it with a one-time key. The demand and the pseudonym it was made by.
    pub async fn demand_anonymous(
        &self,
        requester: &str,
        dataset: &DatasetId,
        threshold: u16,
    ) -> Result<(Hash, String, Duration)> {
        let spec = demand_spec(dataset, threshold, true);
        let v: Value = self.api(requester)?.call(Method::POST, "/demands", Some(&spec)).await?;
        let pseudonym = v["pseudonym"].as_str().ok_or_else(|| anyhow!("no pseudonym in {v}"))?.to_string();
        let prove = Duration::from_millis(v["prove_ms"].as_u64().unwrap_or(0));
        Ok((parse_hash(v["demand"].as_str().unwrap_or(""))?, pseudonym, prove))
    }

    /// Waits (through `member`'s API) until the owner's node proved supply of the demand.
    pub async fn wait_supplied(&self, member: &str, demand: &Hash) -> Result<DemandRecord> {
        let deadline = Instant::now() + WAIT;
        loop {
            let path = format!("/demands/{}?wait=10", hex::encode(demand));
            let d: DemandRecord = self.api(member)?.call(Method::GET, &path, None).await?;
            if d.supplied_by.is_some() {
                return Ok(d);
            }
            ensure!(Instant::now() < deadline, "no supply proof for the demand within {WAIT:?}");
        }
    }

    /// Step 7 through the requester's API: its node opens the dataset's CP-ABE index,
    /// proves the access policy in zero knowledge and submits the request for `duration_s`.
    pub async fn request_access(&self, requester: &str, demand: &Hash, duration_s: u64) -> Result<Access> {
        let body = json!({"demand": hex::encode(demand), "duration_s": duration_s});
        let v: Value = self.api(requester)?.call(Method::POST, "/access", Some(&body)).await?;
        Ok(Access {
            request: parse_hash(v["request"].as_str().unwrap_or(""))?,
            granted: v["granted"].as_bool().unwrap_or(false),
            denial: v["denial"]["text"].as_str().map(str::to_string),
            prove: Duration::from_millis(v["prove_ms"].as_u64().unwrap_or(0)),
        })
    }

    /// Waits (through `member`'s API) until the grant's CPC filed its receipt.
    pub async fn wait_receipt(&self, member: &str, grant: &Hash) -> Result<GrantRecord> {
        let deadline = Instant::now() + WAIT;
        loop {
            let path = format!("/grants/{}?wait=10", hex::encode(grant));
            let g: GrantRecord = self.api(member)?.call(Method::GET, &path, None).await?;
            if g.receipts > 0 {
                return Ok(g);
            }
            ensure!(Instant::now() < deadline, "no receipt for the grant within {WAIT:?}");
        }
    }

    /// Step 9 through the requester's API: its node fetches the re-encrypted records from
    /// the CPC, decrypts them and checks each owner signature; the Observations come back
    /// as a FHIR searchset Bundle.
    pub async fn fetch(&self, requester: &str, grant: &Hash) -> Result<Vec<Value>> {
        // The records are the matches; the delivery's Provenance is included after them.
        Ok(crate::fhir::matches(&self.fetch_bundle(requester, grant).await?))
    }

    /// [`Self::fetch`]'s searchset Bundle, whole.
    pub async fn fetch_bundle(&self, requester: &str, grant: &Hash) -> Result<Value> {
        let path = format!("/grants/{}/records?wait=30", hex::encode(grant));
        let v: Value = self.api(requester)?.call(Method::GET, &path, None).await?;
        ensure!(v["resourceType"] == "Bundle" && v["type"] == "searchset", "not a searchset Bundle");
        // FHIR R4: a Bundle is a Resource, not a DomainResource, and carries no extension.
        ensure!(v.get("extension").is_none(), "a searchset Bundle with an extension: {}", v["extension"]);
        let self_link = format!("grants/{}/records", hex::encode(grant));
        ensure!(v["link"][0]["relation"] == "self" && v["link"][0]["url"] == self_link.as_str(), "{}", v["link"]);
        Ok(v)
    }

    /// The audit trail of a dataset through `member`'s API, each inclusion proof checked
    /// against that node's blocks.
    pub async fn audit(&self, member: &str, dataset: &DatasetId) -> Result<Value> {
        self.api(member)?.call(Method::GET, &format!("/audit/{}", dataset.to_hex()), None).await
    }

    /// Revokes a grant through `member`'s API (its owner or its requester).
    pub async fn revoke_grant(&self, member: &str, grant: &Hash, reason: &str) -> Result<Value> {
        let path = format!("/grants/{}/revoke", hex::encode(grant));
        self.api(member)?.call(Method::POST, &path, Some(&json!({"reason": reason}))).await
    }

    /// Revokes `target` by the consortium's quorum: `first` approves with `reason`, then
    /// the other members in the order `consortium.toml` lists them (the target last of
    /// all, never), each through its own node's API, until an answer says the member is
    /// revoked. Returns the approvers, in order.
    /// Members other than `except` approve opening `pseudonym` for `reason`
    /// (`POST /audit-cases`) until the membership quorum approved it; then waits until the
    /// audit authorities' nodes opened it. The approvers and the member the ledger names.
    pub async fn open_audit(&self, pseudonym: &str, reason: &str, except: &str) -> Result<(Vec<String>, String)> {
        let id = dualchain_ledger::contracts::audit::case_id(pseudonym, reason);
        let ledger = self.ledger(0)?;
        let mut approvers = Vec::new();
        for by in self.file.members.iter().map(|m| m.id.as_str()).filter(|m| *m != except) {
            // Before the quorum, no authority gives a share.
            ensure!(ledger.audit_case(&id)?.is_none_or(|c| c.shares.is_empty()), "a share before approval");
            let body = json!({"pseudonym": pseudonym, "case": reason});
            let v: Value = self.api(by)?.call(Method::POST, "/audit-cases", Some(&body)).await?;
            approvers.push(by.to_string());
            let case = &v["case"];
            ensure!(case["approvals"].as_array().map(Vec::len) == Some(approvers.len()), "approvals so far: {case}");
            if !case["approved_ms"].is_null() {
                break;
            }
        }
        let opening =
            wait_for(WAIT, "the audit authorities' shares", || Ok(ledger.audit_case(&id)?.and_then(|c| c.opening)))
                .await?;
        Ok((approvers, opening.member.unwrap_or_default()))
    }

    pub async fn revoke_member(&self, target: &str, first: &str, reason: &str) -> Result<Vec<String>> {
        let others = self.file.members.iter().map(|m| m.id.as_str()).filter(|m| *m != first && *m != target);
        let mut approvers = Vec::new();
        for by in std::iter::once(first).chain(others) {
            let path = format!("/members/{target}/revoke");
            let v: Value = self.api(by)?.call(Method::POST, &path, Some(&json!({"reason": reason}))).await?;
            approvers.push(by.to_string());
            let r = &v["revocation"];
            ensure!(r["approvals"].as_array().map(Vec::len) == Some(approvers.len()), "approvals so far: {r}");
            if r["revoked"] == true {
                return Ok(approvers);
            }
        }
        bail!("every member approved revoking {target}, and it is not revoked")
    }

    /// An adversary's tool: proves the demand's dataset policy with the requester's own
    /// credential at `path` under `root` (e.g. a root from before a revocation) and submits
    /// the request through its validator, bypassing its node's checks.
    pub async fn request_access_against(
        &self,
        requester: &str,
        demand: &Hash,
        duration_s: u64,
        root: FrBytes,
        path: MerklePath,
    ) -> Result<(Hash, Final)> {
        let credential = self.member(requester)?.credential();
        self.prove_and_submit(requester, demand, duration_s, root, credential, path).await
    }

    /// An adversary's tool, what an unauthorised requester can do: it claims the
    /// attributes the policy wants in a credential of its own making, proves membership in
    /// a tree of its own, and names the registry's root.
    pub async fn request_access_forged(&self, requester: &str, demand: &Hash) -> Result<(Hash, Final)> {
        let m = self.member(requester)?;
        let ledger = self.node_of(requester)?.ledger.clone();
        let root = ledger.credential_root()?.ok_or_else(|| anyhow!("no credential root yet"))?;
        let claimed = AttributeSet::new(["role:research", "dept:cardiology"])?;
        let credential =
            dualchain_node::member::credential_for(&claimed, &m.attribute_salt, m.cert.fields.signing_key.as_bytes());
        let mut own_tree = CredentialTree::new();
        own_tree.set(0, credential.leaf());
        self.prove_and_submit(requester, demand, 3600, root, credential, own_tree.path(0)).await
    }

    async fn prove_and_submit(
        &self,
        requester: &str,
        demand: &Hash,
        duration_s: u64,
        root: FrBytes,
        credential: dualchain_prover::policy::Credential,
        path: MerklePath,
    ) -> Result<(Hash, Final)> {
        let node = self.node_of(requester)?;
        let dataset = node.ledger.demand(demand)?.ok_or_else(|| anyhow!("unknown demand"))?.dataset;
        // The policy is the statement on chain, whether or not the requester opens the index.
        let ds = node.ledger.dataset(&dataset)?.ok_or_else(|| anyhow!("unknown dataset"))?;
        let policy = sharing::zk_policy(&ds)?;
        let ask = sharing::access_request(
            node.compute,
            node.policy_pk.clone(),
            demand,
            policy,
            credential,
            path,
            root,
            duration_s,
        )
        .await?;
        let f = self.client(requester)?.submit(ask.tx).await?;
        Ok((ask.request, f))
    }

    /// The requirement of the demand a grant answers (node 0's ledger).
    pub fn grant_requirement(&self, grant: &Hash) -> Result<supply::Requirement> {
        let ledger = self.ledger(0)?;
        let g = ledger.grant(grant)?.ok_or_else(|| anyhow!("unknown grant"))?;
        Ok(ledger.demand(&g.demand)?.ok_or_else(|| anyhow!("unknown demand"))?.requirement)
    }

    /// Waits until every running node applied the same batch and compares their ledgers
    /// (applied sequence number and both chain tips).
    pub async fn ledgers_identical(&self, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let prints: Vec<_> = self.ledgers().iter().map(|l| l.fingerprint()).collect::<Result<_, _>>()?;
            if prints.iter().all(|p| *p == prints[0]) {
                return Ok(prints[0].applied_seq.unwrap_or(0));
            }
            for p in &prints[1..] {
                ensure!(
                    p.applied_seq != prints[0].applied_seq || *p == prints[0],
                    "two nodes hold different ledgers at batch {:?}",
                    p.applied_seq
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "ledgers did not converge within {timeout:?}: {:?}",
                    prints.iter().map(|p| p.applied_seq).collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops every node.
    pub async fn shutdown(mut self) -> Result<()> {
        for i in 0..self.nodes.len() {
            if self.nodes[i].is_some() {
                self.stop_node(i).await?;
            }
        }
        Ok(())
    }
}

/// The refusal behind an API error, if the node refused.
pub fn refusal(e: &anyhow::Error) -> Option<&ApiRefusal> {
    e.downcast_ref::<ApiRefusal>()
}

pub fn parse_hash(s: &str) -> Result<Hash> {
    let mut h = [0u8; 32];
    hex::decode_to_slice(s, &mut h).map_err(|e| anyhow!("{s:?} is not a 32-byte id: {e}"))?;
    Ok(h)
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
