//! `dualchain node --config FILE`: one consortium node as a long-running process.
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
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use dualchain_consensus::engine::{Engine, EngineConfig};
use dualchain_consensus::metrics::Metrics;
use dualchain_consensus::tls::NodeTls;
use dualchain_crypto::abe::ac17::Ac17;
use dualchain_crypto::abe::AbeScheme;
use dualchain_crypto::cert::{CaPublicKey, Role};
use dualchain_crypto::ibe::IbePublicParams;
use dualchain_crypto::sign::{PublicKey, SigningKeypair};
use dualchain_ledger::tx::{FrBytes, Outcome, TxKind};
use dualchain_ledger::{Genesis, Ledger};
use dualchain_prover::params::ProvingKey;
use dualchain_prover::shapes::Shape;
use dualchain_prover::supply::SupplyShape;
use dualchain_storage::cpc::CpcStore;
use dualchain_storage::rocks::{RocksConfig, RocksEngine};
use dualchain_storage::wrappers::{Metered, StorageMetrics};
use dualchain_storage::KvEngine;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;

use crate::agents::{AgentMetrics, CpcNode, Log, OwnerNode};
use crate::api::ApiMetrics;
use crate::config::{from_hex, ConsortiumFile, NodeConfig};
use crate::consortium::{Client, Validator};
use crate::members::{Member, MemberFile};

/// The member a node hosts, with its agents.
pub struct Hosted {
    pub member: Arc<Member>,
    pub client: Arc<Client>,
    pub owner: Option<Arc<OwnerNode>>,
    pub cpc: Option<Arc<CpcNode>>,
    /// For the KGC: the credential leaves to publish (member, leaf).
    pub credentials: Vec<(String, FrBytes)>,
}

/// Gauges refreshed at every scrape from counters kept elsewhere.
#[derive(Default)]
pub struct ScrapeGauges {
    pub applied_seq: Gauge,
    pub apply_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub view: Gauge,
    pub storage_gets: Gauge,
    pub storage_writes: Gauge,
    pub storage_written_bytes: Gauge,
    pub storage_write_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub gpu_available: Gauge,
    pub gpu_jobs: Family<[(&'static str, String); 1], Gauge>,
    pub gpu_fallbacks: Family<[(&'static str, String); 1], Gauge>,
    pub gpu_seconds: Family<[(&'static str, String); 1], Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub agent_failures: Gauge,
    pub members_registered: Gauge,
}

/// A running node.
pub struct Node {
    pub cfg: NodeConfig,
    pub consortium: ConsortiumFile,
    pub validator: Arc<Validator>,
    pub ledger: Arc<Ledger>,
    pub hosted: Option<Hosted>,
    pub policy_pk: Arc<ProvingKey>,
    pub supply_pks: HashMap<SupplyShape, Arc<ProvingKey>>,
    pub ibe: IbePublicParams,
    pub abe_pk: <Ac17 as AbeScheme>::PublicKey,
    pub registry: Registry,
    pub api_metrics: ApiMetrics,
    pub agent_metrics: AgentMetrics,
    pub gauges: ScrapeGauges,
    pub storage: Arc<StorageMetrics>,
    pub log: Log,
    /// When this process started (UNIX ms): signed requests from before are refused.
    pub started_ms: u64,
    /// Where the heavy work runs, and why (reported at start-up and in /health).
    pub compute: String,
    pub data_dir: PathBuf,
    pub nonces: Mutex<HashMap<(String, String), u64>>,
    /// A hospital's patient registry and staged observations (posts and seals take turns).
    pub owner_state: tokio::sync::Mutex<crate::api::OwnerState>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn read_secret(path: &std::path::Path) -> Result<Vec<u8>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(m) = std::fs::metadata(path) {
            if m.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "secret file is readable by group or others; chmod 600 it");
            }
        }
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Chooses where proving runs (the CUDA backends or the CPU, `[gpu]`), once per process.
/// Batch verification and re-encryption run on the CPU in this build.
fn select_compute(cfg: &NodeConfig) -> Result<&'static dualchain_kernels::Compute> {
    let compute = dualchain_kernels::select::init_global(cfg.gpu.policy(), cfg.gpu.device)
        .map_err(|e| anyhow!("[gpu] required = true, but the GPU did not open: {e}"))?;
    if compute.gpu_available() {
        tracing::info!(backend = %compute.describe(), "compute backend for proving");
    } else {
        tracing::warn!(backend = %compute.describe(), "compute backend for proving: the CPU");
    }
    Ok(compute)
}

impl Node {
    /// Opens the stores, starts the validator and the hosted member's agents.
    pub async fn start(cfg: NodeConfig) -> Result<Arc<Self>> {
        let consortium = ConsortiumFile::load(&cfg.path(&cfg.consortium))?;
        let n = consortium.validators.len();
        let id = cfg.node as usize;
        ensure!(id < n, "node {id} is not in the consortium (it has {n} validators)");
        let me = consortium.validators[id].clone();

        // Genesis: the member CA and the pinned Groth16 parameters.
        let params_dir = cfg.path(&cfg.params_dir);
        let c2 = consortium.clone();
        let params = tokio::task::spawn_blocking(move || crate::init::load_params(&c2, &params_dir)).await??;
        let mut policy_pk = None;
        let mut supply_pks = HashMap::new();
        for (shape, pk) in params {
            match shape {
                Shape::Policy => policy_pk = Some(Arc::new(pk)),
                Shape::Supply(s) => {
                    supply_pks.insert(s, Arc::new(pk));
                }
            }
        }
        let policy_pk = policy_pk.ok_or_else(|| anyhow!("no policy parameters"))?;
        let ca: CaPublicKey = from_hex(&consortium.member_ca, "member CA")?;
        let mut supply_vks: Vec<_> = supply_pks.iter().map(|(s, pk)| (*s, pk.vk().clone())).collect();
        supply_vks.sort_by_key(|(s, _)| s.records());
        let genesis = Genesis {
            ca,
            policy_vk: policy_pk.vk().clone(),
            supply_vks,
            grant_duration_max_s: consortium.grant_duration_max_s,
        };

        // The validator.
        let data_dir = cfg.path(&cfg.data_dir);
        std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let rocks = RocksEngine::open(&data_dir.join("validator"), &RocksConfig::default())
            .with_context(|| format!("opening RocksDB in {}", data_dir.join("validator").display()))?;
        let metered = Metered::new(rocks);
        let storage = metered.metrics.clone();
        let store: Arc<dyn KvEngine> = Arc::new(metered);
        let mut registry = Registry::default();
        let consensus_metrics = Metrics::register(&mut registry);
        let key: SigningKeypair =
            from_hex(String::from_utf8(read_secret(&cfg.path(&cfg.secrets.validator_key))?)?.trim(), "validator key")?;
        ensure!(
            hex::encode(key.public().as_bytes()) == me.signing_key,
            "the validator key is not the one genesis lists for node {id}"
        );
        let tls =
            NodeTls { cert_der: hex::decode(&me.tls_cert)?, key_der: read_secret(&cfg.path(&cfg.secrets.tls_key))? };
        let keys = consortium
            .validators
            .iter()
            .map(|v| {
                let mut k = [0u8; 32];
                hex::decode_to_slice(&v.signing_key, &mut k)?;
                Ok(PublicKey::from_raw(&k)?)
            })
            .collect::<Result<Vec<_>>>()?;
        let socket = UdpSocket::bind(me.quic).with_context(|| format!("binding QUIC to {}", me.quic))?;
        let ledger =
            Arc::new(Ledger::open(store.clone(), genesis, dualchain_kernels::select::global().miller.clone())?);
        let (engine, delivered) = Engine::start(EngineConfig {
            replica: cfg.consensus.replica(n, id as u8)?,
            key,
            keys,
            addrs: consortium.validators.iter().map(|v| v.quic).collect(),
            tls_ca_der: hex::decode(&consortium.tls_ca)?,
            tls,
            peer_certs: consortium.validators.iter().map(|v| hex::decode(&v.tls_cert)).collect::<Result<_, _>>()?,
            socket,
            store: store.clone(),
            metrics: consensus_metrics,
        })?;
        let validator = Validator::launch(id, store, ledger.clone(), engine, delivered)?;

        let ibe: IbePublicParams = from_hex(&consortium.ibe_params, "IBE parameters")?;
        let abe_pk: <Ac17 as AbeScheme>::PublicKey = from_hex(&consortium.abe_public, "CP-ABE public key")?;
        let agent_metrics = AgentMetrics::register(&mut registry);
        let api_metrics = ApiMetrics::register(&mut registry);
        let gauges = ScrapeGauges::default();
        register_gauges(&mut registry, &gauges);
        let log = Log::default();

        // The hosted member and its agents.
        let mut hosted = None;
        if let Some(path) = &cfg.secrets.member {
            let file: MemberFile = serde_json::from_slice(&read_secret(&cfg.path(path))?)
                .with_context(|| format!("parsing {}", cfg.path(path).display()))?;
            let member = Arc::new(file.member()?);
            let entry = consortium
                .member(&member.id)
                .ok_or_else(|| anyhow!("{} is not a member in consortium.toml", member.id))?;
            ensure!(entry.node as usize == id, "{} is hosted by node {}, not {id}", member.id, entry.node);
            let client = Arc::new(Client::new(&member.id, member.signer.clone(), validator.clone()));
            let mut h =
                Hosted { member: member.clone(), client: client.clone(), owner: None, cpc: None, credentials: vec![] };
            match member.role {
                Role::Hospital => {
                    let owner = Arc::new(OwnerNode {
                        member: member.clone(),
                        client: client.clone(),
                        datasets: Mutex::new(HashMap::new()),
                        supply_keys: supply_pks.clone(),
                        ibe: ibe.clone(),
                        log: log.clone(),
                        metrics: agent_metrics.clone(),
                        persist: Some(data_dir.join("owned")),
                    });
                    let loaded = owner.load_datasets()?;
                    tracing::info!(datasets = loaded, "owner's datasets loaded");
                    h.owner = Some(owner);
                }
                Role::Cpc => {
                    let engine = RocksEngine::open(&data_dir.join("cpc"), &RocksConfig::default())?;
                    let store = Arc::new(CpcStore::open(Arc::new(engine))?);
                    let mut node = CpcNode::new(member.clone(), client.clone(), store, log.clone());
                    node.chunk_records = cfg.cpc.reencrypt_chunk.max(1);
                    node.metrics = agent_metrics.clone();
                    h.cpc = Some(Arc::new(node));
                }
                Role::Kgc => {
                    for (m, leaf) in &file.credentials {
                        let mut b = [0u8; 32];
                        hex::decode_to_slice(leaf, &mut b).map_err(|e| anyhow!("credential of {m}: {e}"))?;
                        h.credentials.push((m.clone(), FrBytes(b)));
                    }
                }
                _ => {}
            }
            hosted = Some(h);
        }

        let node = Arc::new(Self {
            compute: select_compute(&cfg)?.describe(),
            cfg,
            consortium,
            validator,
            ledger,
            hosted,
            policy_pk,
            supply_pks,
            ibe,
            abe_pk,
            registry,
            api_metrics,
            agent_metrics,
            gauges,
            storage,
            log,
            started_ms: unix_ms(),
            data_dir,
            nonces: Mutex::new(HashMap::new()),
            owner_state: tokio::sync::Mutex::new(Default::default()),
            tasks: Mutex::new(Vec::new()),
        });
        node.spawn_agents();
        Ok(node)
    }

    fn spawn_agents(self: &Arc<Self>) {
        let mut tasks = Vec::new();
        if let Some(h) = &self.hosted {
            if let Some(o) = &h.owner {
                tasks.push(o.spawn());
            }
            if let Some(c) = &h.cpc {
                tasks.push(c.spawn());
            }
            let me = self.clone();
            tasks.push(tokio::spawn(async move { me.register_member().await }));
            if !h.credentials.is_empty() {
                let me = self.clone();
                tasks.push(tokio::spawn(async move { me.publish_credentials().await }));
            }
        }
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).extend(tasks);
    }

    /// Registers the hosted member's certificate unless the ledger already holds it.
    async fn register_member(self: Arc<Self>) {
        let Some(h) = &self.hosted else { return };
        loop {
            match self.ledger.member(&h.member.id) {
                Ok(Some(m)) if m.serial >= h.member.cert.fields.serial => {
                    tracing::info!(member = %h.member.id, "member registered on the ledger");
                    return;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "reading the registry"),
            }
            let kind = TxKind::RegisterMember { certificate: dualchain_crypto::Codec::to_bytes(&h.member.cert) };
            match tokio::time::timeout(Duration::from_secs(30), h.client.submit(kind)).await {
                Ok(Ok(f)) => {
                    if let Outcome::Rejected { reason } = f.outcome {
                        tracing::warn!(member = %h.member.id, %reason, "registration rejected");
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "registration not final yet"),
                Err(_) => tracing::warn!("registration not final within 30 s; retrying"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The KGC publishes each genesis credential once its member is registered (never one
    /// that was revoked).
    async fn publish_credentials(self: Arc<Self>) {
        let Some(h) = &self.hosted else { return };
        loop {
            if self.ledger.member(&h.member.id).ok().flatten().is_none() {
                // The KGC itself is not registered yet.
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
            let mut pending = 0;
            for (m, leaf) in &h.credentials {
                let rec = match self.ledger.member(m) {
                    Ok(Some(r)) => r,
                    Ok(None) => {
                        pending += 1;
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the registry");
                        pending += 1;
                        continue;
                    }
                };
                if rec.credential.is_some() || rec.credential_revoked.is_some() || rec.revoked.is_some() {
                    continue;
                }
                pending += 1;
                let kind = TxKind::IssueCredential { member: m.clone(), leaf: *leaf };
                match tokio::time::timeout(Duration::from_secs(30), h.client.submit(kind)).await {
                    Ok(Ok(f)) => match f.outcome {
                        Outcome::Rejected { reason } => tracing::warn!(member = %m, %reason, "credential rejected"),
                        _ => tracing::info!(member = %m, "credential published"),
                    },
                    Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "credential not final yet"),
                    Err(_) => tracing::warn!("credential not final within 30 s; retrying"),
                }
            }
            if pending == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Whether the hosted member can act: registered, and holding its credential where
    /// genesis gave it one.
    pub fn ready(&self) -> Result<bool> {
        let Some(h) = &self.hosted else { return Ok(true) };
        let Some(m) = self.ledger.member(&h.member.id)? else { return Ok(false) };
        let wants_credential = matches!(h.member.role, Role::Hospital | Role::ResearchInstitute);
        Ok(!wants_credential || m.credential.is_some())
    }

    /// Refreshes the scrape-time gauges and encodes every series (Prometheus text format).
    pub async fn metrics_text(&self) -> Result<String> {
        let g = &self.gauges;
        g.applied_seq.set(self.validator.applied_seq() as i64);
        g.apply_seconds.set(self.validator.apply_ns.load(Ordering::Relaxed) as f64 / 1e9);
        if let Some(s) = self.validator.status().await {
            g.view.set(s.view as i64);
        }
        let s = &self.storage;
        g.storage_gets.set(s.gets.load(Ordering::Relaxed) as i64);
        g.storage_writes.set(s.writes.load(Ordering::Relaxed) as i64);
        g.storage_written_bytes.set(s.written_bytes.load(Ordering::Relaxed) as i64);
        g.storage_write_seconds.set(s.write_nanos.load(Ordering::Relaxed) as f64 / 1e9);
        let compute = dualchain_kernels::select::global();
        g.gpu_available.set(compute.gpu_available() as i64);
        for (kernel, stats) in &compute.stats {
            let l = [("kernel", kernel.to_string())];
            g.gpu_jobs.get_or_create(&l).set(stats.gpu_jobs.load(Ordering::Relaxed) as i64);
            g.gpu_fallbacks.get_or_create(&l).set(stats.fallbacks.load(Ordering::Relaxed) as i64);
            g.gpu_seconds.get_or_create(&l).set(stats.gpu_seconds_micros.load(Ordering::Relaxed) as f64 / 1e6);
        }
        let failures =
            self.log.entries().iter().filter(|(_, a)| matches!(a, crate::agents::Activity::Failed { .. })).count();
        g.agent_failures.set(failures as i64);
        g.members_registered.set(self.ledger.members()?.len() as i64);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// Stops the agents and the validator (the engine syncs what it acknowledged).
    pub async fn shutdown(&self) -> Result<()> {
        for t in self.tasks.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            t.abort();
        }
        self.validator.stop().await
    }

    pub fn hosted(&self) -> Option<&Hosted> {
        self.hosted.as_ref()
    }
}

fn register_gauges(r: &mut Registry, g: &ScrapeGauges) {
    r.register("dualchain_ledger_applied_seq", "Last batch applied to the ledger", g.applied_seq.clone());
    r.register(
        "dualchain_ledger_apply_seconds",
        "Time spent applying batches (signatures, batch proof verification, contracts, store write)",
        g.apply_seconds.clone(),
    );
    r.register("dualchain_ledger_members", "Members registered on the ledger", g.members_registered.clone());
    r.register("dualchain_consensus_current_view", "The engine's view (as reported to the API)", g.view.clone());
    r.register("dualchain_storage_gets", "Point reads of the validator's store", g.storage_gets.clone());
    r.register(
        "dualchain_storage_writes",
        "Atomic synced write batches of the validator's store",
        g.storage_writes.clone(),
    );
    r.register(
        "dualchain_storage_written_bytes",
        "Bytes written to the validator's store",
        g.storage_written_bytes.clone(),
    );
    r.register(
        "dualchain_storage_write_seconds",
        "Time spent in writes including the sync",
        g.storage_write_seconds.clone(),
    );
    r.register(
        "dualchain_kernels_gpu_available",
        "1 when a CUDA device serves proving, batch verification and re-encryption; 0 when the CPU does",
        g.gpu_available.clone(),
    );
    r.register("dualchain_kernels_gpu_jobs", "Kernel jobs run on the GPU, by kernel", g.gpu_jobs.clone());
    r.register(
        "dualchain_kernels_gpu_fallbacks",
        "GPU jobs that failed and were computed on the CPU instead, by kernel",
        g.gpu_fallbacks.clone(),
    );
    r.register("dualchain_kernels_gpu_seconds", "Time in GPU jobs, by kernel", g.gpu_seconds.clone());
    for kernel in dualchain_kernels::select::KERNELS {
        let l = [("kernel", kernel.to_string())];
        let _ = g.gpu_jobs.get_or_create(&l);
        let _ = g.gpu_fallbacks.get_or_create(&l);
        let _ = g.gpu_seconds.get_or_create(&l);
    }
    r.register("dualchain_agent_failures", "Reactions to the ledger that failed", g.agent_failures.clone());
}

/// Runs a node until SIGTERM or SIGINT.
pub async fn run(cfg: NodeConfig) -> Result<()> {
    let listen = cfg.api.listen;
    let node = Node::start(cfg).await?;
    let me = &node.consortium.validators[node.cfg.node as usize];
    tracing::info!(
        node = node.cfg.node,
        member = node.hosted.as_ref().map_or("-", |h| h.member.id.as_str()),
        role = node.hosted.as_ref().map_or("validator", |h| h.member.role.as_str()),
        quic = %me.quic,
        api = %listen,
        validators = node.consortium.validators.len(),
        "node started"
    );
    tracing::info!(compute = %node.compute, "compute backend");
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding the API to {listen}"))?;
    let app = crate::api::router(node.clone());
    let serve = axum::serve(listener, app).with_graceful_shutdown(stop_signal());
    if let Err(e) = serve.await {
        tracing::error!(error = %e, "API server failed");
    }
    tracing::info!("stopping: API closed, stopping agents and the validator");
    node.shutdown().await?;
    tracing::info!(applied = node.validator.applied_seq(), "stopped");
    Ok(())
}

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
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match cfg.format.as_str() {
        "text" => builder.try_init(),
        other => bail!("log format {other:?} is not supported (text)"),
    }
    .map_err(|e| anyhow!("installing the logger: {e}"))
}
