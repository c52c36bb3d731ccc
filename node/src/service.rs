//! `dualchain node --config FILE`: one consortium node as a long-running process. This
//! module assembles a node from its files ([`Service::start`]), serves its API, and shuts
//! it down; what a running node is lives in [`crate::runtime`].
//!
//! A node is a validator (the PBFT engine over QUIC with mutual TLS, its log and ledger in
//! one RocksDB under `data_dir/validator`) and hosts at most one member, the institution
//! that runs it, with that member's agents: a hospital's node keeps its datasets' openings
//! and proves supply / issues re-keys on its own; a CPC's node keeps its capsule store
//! (`data_dir/cpc`) and re-encrypts when a re-key is final; the KGC's node publishes the
//! credentials named at genesis as members register. Every node registers its member on
//! first start. The HTTP API ([`crate::api`]) serves institutions, gateways and peers.
//!
//! On SIGTERM or SIGINT the API stops taking requests and finishes those in flight, the
//! agents stop, and the engine shuts down (everything it acknowledged is synced in its
//! log); the ledger applier drains. After a SIGKILL the next start recovers from the same
//! stores: the engine from its log, the ledger from the consensus archive, the agents by
//! replaying the ledger (their reactions check the ledger first, so nothing is done
//! twice).

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{anyhow, bail, ensure, Context, Result};
use axum::Router;
use dualchain_consensus::engine::{Engine, EngineConfig};
use dualchain_consensus::metrics::Metrics;
use dualchain_consensus::tls::NodeTls;
use dualchain_crypto::cert::{CaPublicKey, Role};
use dualchain_crypto::sign::{PublicKey, SigningKeypair};
use dualchain_kernels::Compute;
use dualchain_ledger::genesis::{Anonymity, Escrow, Founders};
use dualchain_ledger::tx::FrBytes;
use dualchain_ledger::{Genesis, Ledger};
use dualchain_prover::params::ProvingKey;
use dualchain_prover::shapes::Shape;
use dualchain_prover::supply::SupplyShape;
use dualchain_storage::cpc::CpcStore;
use dualchain_storage::rocks::{RocksConfig, RocksEngine};
use dualchain_storage::wrappers::{Metered, StorageMetrics};
use dualchain_storage::KvEngine;
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;

use crate::agents::escrow;
use crate::agents::kgc::{self, Desk};
use crate::agents::{registration, Agent, AgentMetrics, CpcNode, Log, OwnerNode};
use crate::api::{ApiMetrics, ApiState};
use crate::config::{ConsortiumFile, NodeConfig};
use crate::files::{from_hex, read_secret};
use crate::member::client::Client;
use crate::member::consent::ConsentBook;
use crate::member::erasure::ErasureLog;
use crate::member::MemberFile;
use crate::metrics::{register_gauges, ScrapeGauges};
use crate::runtime::{unix_ms, Authority, Hosted, Node};
use crate::validator::Validator;

/// A node assembled and running: its parts, its API's state, and the agents' tasks.
pub struct Service {
    pub node: Arc<Node>,
    pub api: ApiState,
    running: Arc<Running>,
}

/// The Groth16 proving keys a genesis pins: the policy circuit's, one per supply shape,
/// and the anonymous policy circuit's and the demand nullifier circuit's where the
/// consortium opened the anonymous path.
struct ProvingKeys {
    policy: Arc<ProvingKey>,
    supply: HashMap<SupplyShape, Arc<ProvingKey>>,
    anonymous: Option<Arc<ProvingKey>>,
    demand_nullifier: Option<Arc<ProvingKey>>,
}

impl ProvingKeys {
    async fn load(cfg: &NodeConfig, consortium: &ConsortiumFile) -> Result<Self> {
        let params_dir = cfg.path(&cfg.params_dir);
        let c2 = consortium.clone();
        let data_dir = cfg.path(&cfg.data_dir);
        let params = tokio::task::spawn_blocking(move || -> Result<_> {
            use crate::genesis::ceremony::{check_provenance, Provenance};
            match check_provenance(&c2, &params_dir, &data_dir)? {
                Provenance::Test => tracing::warn!(
                    "this is a test consortium: one machine made its Groth16 trapdoor and every secret; \
                     not for patient data (see README: the ceremony)"
                ),
                Provenance::Ceremony { verified_now } => {
                    tracing::info!(verified_now, "Groth16 parameters from a verified multi-party ceremony")
                }
            }
            crate::genesis::params::load_params(&c2, &params_dir)
        })
        .await??;
        let (mut policy, mut anonymous, mut demand_nullifier) = (None, None, None);
        let mut supply = HashMap::new();
        for (shape, pk) in params {
            match shape {
                Shape::Policy => policy = Some(pk),
                Shape::AnonymousPolicy => anonymous = Some(pk),
                Shape::DemandNullifier => demand_nullifier = Some(pk),
                Shape::Supply(s) => {
                    supply.insert(s, pk);
                }
            }
        }
        if anonymous.is_some() != demand_nullifier.is_some() {
            bail!(
                "the parameters hold one of policy-anonymous and demand-nullifier without the other: \
                 the anonymous path needs both (assemble the consortium again with --anonymous)"
            );
        }
        let policy = policy.ok_or_else(|| anyhow!("no policy parameters"))?;
        Ok(Self { policy, supply, anonymous, demand_nullifier })
    }

    /// The ledger's genesis: the member CA, the verifying keys, the membership quorum,
    /// the founders (consortium.toml's `members`) and, where the consortium's parameters
    /// include the anonymous policy circuit, the anonymous path with its audit committee.
    fn genesis(&self, consortium: &ConsortiumFile) -> Result<Genesis> {
        let ca: CaPublicKey = from_hex(&consortium.member_ca, "member CA")?;
        let mut supply_vks: Vec<_> = self.supply.iter().map(|(s, pk)| (*s, pk.vk().clone())).collect();
        supply_vks.sort_by_key(|(s, _)| s.records());
        Ok(Genesis {
            ca,
            policy_vk: self.policy.vk().clone(),
            supply_vks,
            grant_duration_max_s: consortium.grant_duration_max_s,
            revocation_quorum: consortium.membership_quorum(),
            founders: Founders::listed(consortium.founders()),
            anonymous: match (&self.anonymous, &self.demand_nullifier) {
                (Some(pk), Some(named)) => Some(Anonymity {
                    vk: pk.vk().clone(),
                    demand_nullifier_vk: named.vk().clone(),
                    escrow: audit_committee(consortium)?,
                }),
                _ => None,
            },
        })
    }
}

/// The audit authorities that make the escrow key on chain: the ESKI-IBE authorities (the
/// KGC, then the CPCs, in chain order), any majority of them. The same authorities that
/// together issue members' IBE keys, and none of them alone.
fn audit_committee(consortium: &ConsortiumFile) -> Result<Escrow> {
    let ibe: dualchain_crypto::ibe::IbePublicParams = from_hex(&consortium.ibe_params, "ESKI-IBE parameters")?;
    let members = ibe.authorities.clone();
    let threshold = u16::try_from(crate::config::majority(members.len()))?;
    // Checked here, at start, rather than by the first DKG transaction.
    dualchain_prover::escrow::Committee::new(threshold, u16::try_from(members.len())?)
        .map_err(|e| anyhow!("the audit committee of {} authorities: {e}", members.len()))?;
    Ok(Escrow::Committee { members, threshold })
}

/// Chooses where proving, batch verification and re-encryption run (the CUDA backends or
/// the CPU, `[gpu]`), once per process; the choice is passed to every part that computes.
fn select_compute(cfg: &NodeConfig) -> Result<&'static Compute> {
    let compute = dualchain_kernels::select::init_global(cfg.gpu.policy(), cfg.gpu.device)
        .map_err(|e| anyhow!("[gpu] required = true, but the GPU did not open: {e}"))?;
    if compute.gpu_available() {
        tracing::info!(backend = %compute.describe(), "compute backend for proving");
    } else {
        tracing::warn!(backend = %compute.describe(), "compute backend for proving: the CPU");
    }
    Ok(compute)
}

/// The validator's parts: the engine over QUIC, the ledger, and the store's metrics.
struct ValidatorParts {
    validator: Arc<Validator>,
    ledger: Arc<Ledger>,
    storage: Arc<StorageMetrics>,
}

/// The validator's RocksDB (ledger and consensus log) under the node's data directory.
fn validator_store_path(cfg: &NodeConfig) -> std::path::PathBuf {
    cfg.path(&cfg.data_dir).join("validator")
}

/// Clears a stopped node's ledger, keeping its consensus log and archive (see
/// [`dualchain_storage::ledger::LedgerStore::clear`]): returns the batch the ledger had
/// applied and the number of archived batches it re-applies at its next start. Fails while
/// the node runs (RocksDB's lock).
pub fn clear_ledger(cfg: &NodeConfig) -> Result<(Option<u64>, u64)> {
    let (ledger, engine) = open_stopped_ledger(cfg)?;
    let applied = ledger.applied_seq()?;
    let archived = dualchain_storage::consensus::ConsensusStore::open(engine)?.last_committed()?.unwrap_or(0);
    ledger.clear()?;
    Ok((applied, archived))
}

/// A stopped node's ledger store (and the RocksDB under it), to read or repair offline.
/// Fails while the node runs (RocksDB's lock).
pub fn open_stopped_ledger(cfg: &NodeConfig) -> Result<(dualchain_storage::ledger::LedgerStore, Arc<dyn KvEngine>)> {
    let path = validator_store_path(cfg);
    ensure!(path.is_dir(), "no validator store at {}", path.display());
    let rocks = RocksEngine::open(&path, &RocksConfig::default())
        .with_context(|| format!("opening {} (is the node still running?)", path.display()))?;
    let engine: Arc<dyn KvEngine> = Arc::new(rocks);
    Ok((dualchain_storage::ledger::LedgerStore::open(engine.clone())?, engine))
}

/// Opens the validator's RocksDB, its ledger, and starts its engine and applier.
fn open_validator(
    cfg: &NodeConfig,
    consortium: &ConsortiumFile,
    genesis: Genesis,
    compute: &'static Compute,
    registry: &mut Registry,
) -> Result<ValidatorParts> {
    let n = consortium.validators.len();
    let id = cfg.node as usize;
    let me = cfg.own_validator(consortium)?;
    let data_dir = cfg.path(&cfg.data_dir);
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    // The data directory holds plaintext FHIR (staged Observations, patients, datasets'
    // openings) and the CPC's store, whose files RocksDB creates world-readable: the
    // directory itself is closed to group and others.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {} to its owner", data_dir.display()))?;
    }
    let rocks = RocksEngine::open(&validator_store_path(cfg), &RocksConfig::default())
        .with_context(|| format!("opening RocksDB in {}", validator_store_path(cfg).display()))?;
    let metered = Metered::new(rocks);
    let storage = metered.metrics.clone();
    let store: Arc<dyn KvEngine> = Arc::new(metered);
    let consensus_metrics = Metrics::register(registry);
    let key: SigningKeypair =
        from_hex(String::from_utf8(read_secret(&cfg.path(&cfg.secrets.validator_key))?)?.trim(), "validator key")?;
    ensure!(
        hex::encode(key.public().as_bytes()) == me.signing_key,
        "the validator key is not the one {} lists for node {id}",
        if cfg.joined.is_some() { "node.toml's [joined]" } else { "genesis" }
    );
    let tls = NodeTls { cert_der: hex::decode(&me.tls_cert)?, key_der: read_secret(&cfg.path(&cfg.secrets.tls_key))? };
    let keys = consortium
        .validators
        .iter()
        .map(|v| {
            let mut k = [0u8; 32];
            hex::decode_to_slice(&v.signing_key, &mut k)?;
            Ok(PublicKey::from_raw(&k)?)
        })
        .collect::<Result<Vec<_>>>()?;
    // A rotation may have moved this validator since genesis or its joining.
    let listen =
        dualchain_consensus::engine::recorded_endpoint(store.clone(), &keys, id as u8)?.map_or(me.quic, |(a, _)| a);
    let socket = UdpSocket::bind(listen).with_context(|| format!("binding QUIC to {listen}"))?;
    // Batch proof verification's Miller loops run where the assembler chose.
    // Blocks refer to the archive's batches: each transaction is written once.
    let ledger = Arc::new(
        Ledger::open(store.clone(), genesis, compute.miller.clone())?
            .with_batches(Arc::new(crate::validator::ArchivedBatches::open(store.clone())?)),
    );
    let (engine, delivered) = Engine::start(EngineConfig {
        replica: cfg.consensus.replica(n, id as u8, consortium.disseminates())?,
        key,
        keys,
        addrs: consortium.validators.iter().map(|v| v.quic).collect(),
        tls_ca_der: hex::decode(&consortium.tls_ca)?,
        tls,
        peer_certs: consortium.validators.iter().map(|v| hex::decode(&v.tls_cert)).collect::<Result<_, _>>()?,
        socket,
        store: store.clone(),
        metrics: consensus_metrics,
        request_check: Some(Arc::new(crate::validator::MemberRequests { ledger: ledger.clone() })),
        tls_spares: Some(Arc::new(crate::reconfigure::TlsNext { dir: crate::reconfigure::tls_next_dir(cfg) })),
    })?;
    let validator = Validator::launch(id, store, ledger.clone(), engine, delivered)?;
    Ok(ValidatorParts { validator, ledger, storage })
}

/// The hosted member's file (`secrets.member`), if the node hosts one.
fn member_file(cfg: &NodeConfig) -> Result<Option<(MemberFile, std::path::PathBuf)>> {
    let Some(path) = &cfg.secrets.member else { return Ok(None) };
    let path = cfg.path(path);
    let file: MemberFile =
        serde_json::from_slice(&read_secret(&path)?).with_context(|| format!("parsing {}", path.display()))?;
    Ok(Some((file, path)))
}

/// What the hosted member holds as an ESKI-IBE authority, and the KGC's desk.
fn authority_of(cfg: &NodeConfig, file: &MemberFile) -> Result<Option<Authority>> {
    let Some(share) = &file.ibe_authority else { return Ok(None) };
    let ibe_share = from_hex(share, "ESKI-IBE authority share")?;
    let kgc = match &file.abe_master {
        Some(msk) => {
            let leaf = |m: &str, hex_leaf: &str| -> Result<FrBytes> {
                let mut b = [0u8; 32];
                hex::decode_to_slice(hex_leaf, &mut b).map_err(|e| anyhow!("credential of {m}: {e}"))?;
                Ok(FrBytes(b))
            };
            let mut genesis = Vec::new();
            for (m, l) in &file.credentials {
                let anonymous_leaf = match file.anonymous_credentials.iter().find(|(a, _)| a == m) {
                    Some((_, a)) => Some(leaf(m, a)?),
                    None => None,
                };
                genesis.push(kgc::Issued { member: m.clone(), leaf: leaf(m, l)?, anonymous_leaf });
            }
            let path = cfg.path(&cfg.data_dir).join("kgc-credentials.json");
            Some(Arc::new(Desk::open(from_hex(msk, "CP-ABE master key")?, genesis, path)?))
        }
        None => None,
    };
    Ok(Some(Authority { ibe_share, kgc }))
}

/// The hosted member with the agents its role runs (its file holds every key).
fn host_member(node: &Node, file: &MemberFile) -> Result<Hosted> {
    let cfg = &node.cfg;
    let id = cfg.node as usize;
    let member = Arc::new(file.member()?);
    // A founder is hosted where consortium.toml says; a member admitted after genesis by
    // the validator that joined with it (`dualchain issue` gave both).
    match node.consortium.member(&member.id) {
        Some(entry) => {
            ensure!(entry.node as usize == id, "{} is hosted by node {}, not {id}", member.id, entry.node)
        }
        None => ensure!(
            cfg.joined.is_some(),
            "{} is not a member in consortium.toml: a member admitted after genesis is hosted by the validator \
             that joined with it (node.toml's [joined])",
            member.id
        ),
    }
    let client = Arc::new(Client::new(&member.id, member.signer.clone(), node.validator.clone()));
    let mut h = Hosted { member: member.clone(), client: client.clone(), owner: None, cpc: None };
    let data_dir = cfg.path(&cfg.data_dir);
    match member.role {
        Role::Hospital => {
            let journals = crate::member::journal::open_store(&data_dir.join("member"))?;
            let owner = Arc::new(OwnerNode {
                member: member.clone(),
                client: client.clone(),
                datasets: Mutex::new(HashMap::new()),
                supply_keys: node.supply_pks.clone(),
                ibe: node.ibe.clone(),
                log: node.log.clone(),
                metrics: node.agent_metrics.clone(),
                persist: Some(data_dir.join("owned")),
                compute: node.compute,
                consents: Mutex::new(ConsentBook::open(
                    Some(journals.clone()),
                    Some(&data_dir.join("consents.json")),
                    cfg.owner.consent_default,
                )?),
                consent_lock: Default::default(),
                erasures: Mutex::new(ErasureLog::open(Some(journals), Some(&data_dir.join("erasures.json")))?),
            });
            let loaded = owner.load_datasets()?;
            tracing::info!(datasets = loaded, "owner's datasets loaded");
            h.owner = Some(owner);
        }
        Role::Cpc => {
            let engine = RocksEngine::open(&data_dir.join("cpc"), &RocksConfig::default())?;
            let store = Arc::new(CpcStore::open(Arc::new(engine))?);
            let mut cpc =
                CpcNode::new(member.clone(), client.clone(), store, node.compute.reencrypt.clone(), node.log.clone());
            cpc.chunk_records = cfg.cpc.reencrypt_chunk.max(1);
            cpc.metrics = node.agent_metrics.clone();
            h.cpc = Some(Arc::new(cpc));
        }
        _ => {}
    }
    Ok(h)
}

/// The tasks and agents a running service stops at shutdown.
#[derive(Default)]
struct Running {
    tasks: Mutex<Vec<JoinHandle<()>>>,
    agents: Mutex<Vec<Agent>>,
}

impl Running {
    fn push_task(&self, t: JoinHandle<()>) {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).push(t);
    }

    /// Starts the hosted member's agents: the owner's and the CPC's reactions, renewals,
    /// the KGC's publication of credentials (registration starts before, at
    /// [`Service::start`], since enrollment needs it).
    fn spawn_member(&self, node: &Arc<Node>) {
        let Some(h) = node.hosted() else { return };
        let mut agents = Vec::new();
        if let Some(o) = &h.owner {
            agents.push(o.spawn());
        }
        if let Some(c) = &h.cpc {
            agents.push(c.spawn());
            self.push_task(tokio::spawn(c.clone().sweep_every(crate::agents::cpc::SWEEP_EVERY)));
        }
        let (ledger, client, member) = (node.ledger.clone(), h.client.clone(), h.member.clone());
        if let Some(path) = &node.cfg.secrets.member {
            let watch =
                registration::follow_renewals(ledger.clone(), client.clone(), member.clone(), node.cfg.path(path));
            self.push_task(tokio::spawn(watch));
        }
        // An audit authority of a consortium with the anonymous path makes the escrow key
        // with the others, and keeps its share beside its member keys.
        if let Some(dir) = node.secrets_dir() {
            if escrow::committee_of(&ledger, &member.id).is_some() {
                let dkg = escrow::run(ledger.clone(), client.clone(), member.clone(), node.ibe.clone(), dir);
                self.push_task(tokio::spawn(dkg));
            }
        }
        if let Some(desk) = node.authority.as_ref().and_then(|a| a.kgc.as_ref()) {
            agents.push(kgc::follow_break_glass_reviews(&client, &member, node.log.clone()));
            self.push_task(tokio::spawn(kgc::publish_credentials(ledger, client, member, desk.credentials.clone())));
        }
        self.agents.lock().unwrap_or_else(|p| p.into_inner()).extend(agents);
    }
}

impl Service {
    /// Opens the stores, starts the validator and the hosted member's agents.
    pub async fn start(cfg: NodeConfig) -> Result<Self> {
        let consortium = ConsortiumFile::load(&cfg.path(&cfg.consortium))?;
        cfg.own_validator(&consortium)?;
        let compute = select_compute(&cfg)?;
        let keys = ProvingKeys::load(&cfg, &consortium).await?;
        let genesis = keys.genesis(&consortium)?;
        let mut registry = Registry::default();
        let parts = open_validator(&cfg, &consortium, genesis, compute, &mut registry)?;
        let ibe = from_hex(&consortium.ibe_params, "IBE parameters")?;
        let abe_pk = from_hex(&consortium.abe_public, "CP-ABE public key")?;
        let agent_metrics = AgentMetrics::register(&mut registry);
        let api_metrics = ApiMetrics::register(&mut registry);
        let gauges = ScrapeGauges::default();
        register_gauges(&mut registry, &gauges);
        let log = Log::default();
        let member = member_file(&cfg)?;
        let authority = member.as_ref().map(|(f, _)| authority_of(&cfg, f)).transpose()?.flatten();
        let peers = crate::api::client::http_client(
            &hex::decode(&consortium.tls_ca).context("consortium.toml's tls_ca")?,
            consortium.validators.iter().any(|v| v.api.starts_with("https://")),
        )?;
        let node = Arc::new(Node {
            data_dir: cfg.path(&cfg.data_dir),
            compute,
            peers,
            cfg,
            consortium,
            validator: parts.validator,
            ledger: parts.ledger,
            hosted: OnceLock::new(),
            authority,
            policy_pk: keys.policy,
            anonymous_pk: keys.anonymous,
            demand_nullifier_pk: keys.demand_nullifier,
            named_nullifiers: Default::default(),
            oblivious_key: Default::default(),
            supply_pks: keys.supply,
            ibe,
            abe_pk,
            registry,
            agent_metrics,
            gauges,
            storage: parts.storage,
            log,
            started_ms: unix_ms(),
        });
        let running = Arc::new(Running::default());
        if let Some((file, _)) = &member {
            let m = Arc::new(file.member()?);
            let client = Arc::new(Client::new(&m.id, m.signer.clone(), node.validator.clone()));
            running.push_task(tokio::spawn(registration::register_member(node.ledger.clone(), client, m)));
        }
        match member {
            Some((file, path)) if crate::enrollment::needs_enrollment(&file)? => {
                // Keys made on the institution's own machine: the authorities issue the
                // rest once the member is registered; its agents start after.
                let (n, r) = (node.clone(), running.clone());
                running.push_task(tokio::spawn(async move {
                    let hosted = match crate::enrollment::enroll(&n, file, path).await {
                        Ok(f) => host_member(&n, &f),
                        Err(e) => Err(e),
                    };
                    match hosted {
                        Ok(h) => {
                            let _ = n.hosted.set(h);
                            r.spawn_member(&n);
                        }
                        Err(e) => tracing::error!(error = %format!("{e:#}"), "enrollment failed; the member's agents do not run"),
                    }
                }));
            }
            Some((file, _)) => {
                let _ = node.hosted.set(host_member(&node, &file)?);
                running.spawn_member(&node);
            }
            None => {}
        }
        Ok(Self { api: ApiState::new(node.clone(), api_metrics), node, running })
    }

    /// The node's HTTP API.
    pub fn router(&self) -> Router {
        crate::api::router(self.api.clone())
    }

    /// Stops the agents and the validator (the engine syncs what it acknowledged).
    /// The agents first drain (what they started finishes within [`AGENT_DRAIN`], while the
    /// validator still runs to commit what they submit); what is left is retried from the
    /// ledger on the next start.
    pub async fn shutdown(&self) -> Result<()> {
        for t in self.running.tasks.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            t.abort();
        }
        let mut draining = tokio::task::JoinSet::new();
        for agent in self.running.agents.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            draining.spawn(agent.drain(AGENT_DRAIN));
        }
        let mut drained = true;
        while let Some(d) = draining.join_next().await {
            drained &= d.unwrap_or(false);
        }
        if !drained {
            tracing::warn!(drain = ?AGENT_DRAIN, "agents' reactions still running after the drain time were stopped; they resume on restart");
        }
        self.node.validator.stop().await
    }
}

/// Runs a node until SIGTERM or SIGINT.
pub async fn run(cfg: NodeConfig) -> Result<()> {
    let listen = cfg.api.listen;
    let service = Service::start(cfg).await?;
    let node = service.node.clone();
    let me = node.cfg.own_validator(&node.consortium)?;
    tracing::info!(
        node = node.cfg.node,
        member = node.hosted().map_or("-", |h| h.member.id.as_str()),
        role = node.hosted().map_or("validator", |h| h.member.role.as_str()),
        enrolling = node.cfg.secrets.member.is_some() && node.hosted().is_none(),
        quic = %me.quic,
        api = %listen,
        validators = node.consortium.validators.len(),
        "node started"
    );
    tracing::info!(compute = %node.compute.describe(), "compute backend");
    let tls = crate::api::tls::server_config(&node.cfg, &node.consortium)?;
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding the API to {listen}"))?;
    let app = service.router();
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let serve = crate::api::tls::serve(listener, app, tls, async move {
        stop_signal().await;
        let _ = stopping_tx.send(true);
    });
    // After the signal, requests in flight get `API_DRAIN` to finish; then they are cut
    // (a request waiting for a commit may wait for minutes while there is no quorum).
    let drained = async {
        let _ = stopping.wait_for(|s| *s).await;
        tokio::time::sleep(API_DRAIN).await;
    };
    tokio::select! {
        served = serve => {
            if let Err(e) = served {
                tracing::error!(error = %e, "API server failed");
            }
        }
        _ = drained => tracing::warn!(drain = ?API_DRAIN, "API requests still in flight after the drain time; closing them"),
    }
    tracing::info!("stopping: API closed, stopping agents and the validator");
    match tokio::time::timeout(STOP_MAX, service.shutdown()).await {
        Ok(stopped) => stopped?,
        Err(_) => bail!("the validator did not stop within {STOP_MAX:?}; exiting (what it acknowledged is on disk)"),
    }
    tracing::info!(applied = node.validator.applied_seq(), "stopped");
    Ok(())
}

/// How long requests in flight may finish after SIGTERM or SIGINT.
pub const API_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);
/// How long the agents' running reactions may take to finish after the API closed.
pub const AGENT_DRAIN: std::time::Duration = std::time::Duration::from_secs(8);
/// How long the agents and the validator may take to stop after the API closed.
pub const STOP_MAX: std::time::Duration = std::time::Duration::from_secs(15);
/// How long blocking work (file and disk writes) may take to finish after that.
pub const BLOCKING_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            tracing::error!("cannot install signal handlers");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = int.recv() => tracing::info!("SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Sets up `tracing` for a short command run by a person (`init`, the demo): warnings, and
/// progress lines where stderr is not a terminal (a terminal gets bars instead).
pub fn init_command_logging() -> Result<()> {
    init_logging(&crate::config::LogConfig { level: "warn,dualchain_progress=info".into(), format: "text".into() })
}

/// Sets up `tracing` from the node's log settings (`RUST_LOG` overrides the level).
pub fn init_logging(cfg: &crate::config::LogConfig) -> Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::try_new(v),
        _ => EnvFilter::try_new(&cfg.level),
    }
    .map_err(|e| anyhow!("log level {:?}: {e}", cfg.level))?;
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| dualchain_progress::AboveBars(std::io::stderr()))
        .with_ansi(std::io::stderr().is_terminal());
    match cfg.format.as_str() {
        "text" => builder.try_init(),
        other => bail!("log format {other:?} is not supported (text)"),
    }
    .map_err(|e| anyhow!("installing the logger: {e}"))
}
