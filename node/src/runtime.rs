//! The parts of a running node that its API reads: the validator and its ledger, the
//! hosted member with its agents, the proving keys, the public parameters, the metrics
//! registry. The `service` module assembles a [`Node`] and shuts it down.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use anyhow::Result;
use dualchain_crypto::abe::ac17::Ac17;
use dualchain_crypto::abe::AbeScheme;
use dualchain_crypto::cert::Role;
use dualchain_crypto::ibe::{AuthoritySecret, IbePublicParams};
use dualchain_kernels::Compute;
use dualchain_ledger::Ledger;
use dualchain_prover::params::ProvingKey;
use dualchain_prover::supply::SupplyShape;
use dualchain_storage::wrappers::StorageMetrics;
use prometheus_client::registry::Registry;

use crate::agents::kgc::Desk;
use crate::agents::{AgentMetrics, CpcNode, Log, OwnerNode};
use crate::config::{ConsortiumFile, NodeConfig};
use crate::member::client::Client;
use crate::member::Member;
use crate::metrics::ScrapeGauges;
use crate::validator::Validator;

pub use crate::clock::unix_ms;

/// The member a node hosts, with its agents.
pub struct Hosted {
    pub member: Arc<Member>,
    pub client: Arc<Client>,
    pub owner: Option<Arc<OwnerNode>>,
    pub cpc: Option<Arc<CpcNode>>,
}

/// What a node holds as an ESKI-IBE authority (the KGC and every CPC): its share, and for
/// the KGC the CP-ABE master key with the desk that enrolls members.
pub struct Authority {
    pub ibe_share: AuthoritySecret,
    pub kgc: Option<Arc<Desk>>,
}

/// A running node.
pub struct Node {
    pub cfg: NodeConfig,
    pub consortium: ConsortiumFile,
    pub validator: Arc<Validator>,
    pub ledger: Arc<Ledger>,
    /// The hosted member, once it holds its keys (a member whose genesis left its ESKI-IBE
    /// and CP-ABE keys to be issued gets them from the authorities first: `enrollment`).
    pub hosted: OnceLock<Hosted>,
    pub authority: Option<Authority>,
    pub policy_pk: Arc<ProvingKey>,
    /// The anonymous policy circuit's key, where the consortium opened the anonymous path.
    pub anonymous_pk: Option<Arc<ProvingKey>>,
    /// The demand nullifier circuit's key (same consortia): a named demand of a member
    /// who could ask anonymously proves one of its credential's nullifiers with it.
    pub demand_nullifier_pk: Option<Arc<ProvingKey>>,
    /// The nullifiers this node's named demands are spending while they are ordered.
    pub named_nullifiers: crate::member::anonymous::PendingNullifiers,
    /// This node's oblivious gateway key, loaded or made at first use (by the API's
    /// oblivious gateway).
    pub oblivious_key: OnceLock<Arc<dualchain_crypto::oblivious::GatewayKey>>,
    pub supply_pks: HashMap<SupplyShape, Arc<ProvingKey>>,
    pub ibe: IbePublicParams,
    pub abe_pk: <Ac17 as AbeScheme>::PublicKey,
    pub registry: Registry,
    pub agent_metrics: AgentMetrics,
    pub gauges: ScrapeGauges,
    pub storage: Arc<StorageMetrics>,
    pub log: Log,
    /// When this process started (UNIX ms): signed requests from before are refused.
    pub started_ms: u64,
    /// Where the heavy work runs (the CUDA backends or the CPU), chosen at start-up.
    pub compute: &'static Compute,
    pub data_dir: PathBuf,
    /// The HTTP client of calls to peer nodes' APIs, shared so that connections and TLS
    /// sessions are reused (`ApiClient::of_peer`).
    pub peers: reqwest::Client,
}

impl Node {
    /// The directory of the hosted member's secret files (`secrets/`, beside
    /// `member.json`), if the node hosts a member.
    pub fn secrets_dir(&self) -> Option<PathBuf> {
        let member = self.cfg.secrets.member.as_ref()?;
        self.cfg.path(member).parent().map(std::path::Path::to_path_buf)
    }

    /// Whether the hosted member can act: registered, and holding its credential where
    /// genesis gave it one.
    pub fn ready(&self) -> Result<bool> {
        let Some(h) = self.hosted() else { return Ok(self.cfg.secrets.member.is_none()) };
        let Some(m) = self.ledger.member(&h.member.id)? else { return Ok(false) };
        let wants_credential = matches!(h.member.role, Role::Hospital | Role::ResearchInstitute);
        Ok(!wants_credential || m.credential.is_some())
    }

    /// When this node's TLS certificates expire (UNIX s), by use: the API's as its file holds
    /// it (what the server serves from its next reload; none over plain HTTP), and the
    /// consensus one it presents (the one the latest rotation named, else its
    /// configuration's). An operator's own API certificate may expire; the consortium CA's
    /// run to 4096.
    pub async fn tls_not_after(&self) -> Vec<(&'static str, u64)> {
        use crate::x509::certificate_not_after;
        let mut out = Vec::new();
        let api = self.cfg.api.tls_cert.as_ref().filter(|_| !self.cfg.api.insecure_http);
        if let Some(t) =
            api.and_then(|p| std::fs::read(self.cfg.path(p)).ok()).and_then(|d| certificate_not_after(&d).ok())
        {
            out.push(("api", t));
        }
        let rotated = self.validator.validator_sets().await.and_then(|s| {
            dualchain_consensus::engine::parse_endpoint(s.epochs.endpoint(self.cfg.node)).map(|(_, cert)| cert)
        });
        let cert = rotated
            .or_else(|| self.cfg.own_validator(&self.consortium).ok().and_then(|v| hex::decode(&v.tls_cert).ok()));
        if let Some(t) = cert.and_then(|d| certificate_not_after(&d).ok()) {
            out.push(("consensus", t));
        }
        out
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
        let compute = self.compute;
        g.gpu_available.set(compute.gpu_available() as i64);
        for (kernel, stats) in &compute.stats {
            let l = [("kernel", kernel.to_string())];
            g.gpu_jobs.get_or_create(&l).set(stats.gpu_jobs.load(Ordering::Relaxed) as i64);
            g.gpu_fallbacks.get_or_create(&l).set(stats.fallbacks.load(Ordering::Relaxed) as i64);
            g.gpu_seconds.get_or_create(&l).set(stats.gpu_seconds_micros.load(Ordering::Relaxed) as f64 / 1e6);
        }
        let guard = &compute.guard;
        g.gpu_cross_checks.set(guard.cross_checks.load(Ordering::Relaxed) as i64);
        g.gpu_mismatches.set(guard.mismatches.load(Ordering::Relaxed) as i64);
        for w in dualchain_kernels::guard::Workload::ALL {
            g.gpu_disabled.get_or_create(&[("workload", w.name().to_string())]).set(guard.disabled(w) as i64);
        }
        g.agent_failures.set(self.log.failures() as i64);
        let members = self.ledger.members()?;
        g.members_registered.set(members.len() as i64);
        g.certificate_expiry.clear();
        let now = (unix_ms() / 1000) as i64;
        for m in members.iter().filter(|m| m.revoked.is_none()) {
            g.certificate_expiry.get_or_create(&[("member", m.id.clone())]).set(m.not_after as i64 - now);
        }
        g.tls_expiry.clear();
        for (what, not_after) in self.tls_not_after().await {
            g.tls_expiry.get_or_create(&[("use", what.to_string())]).set(not_after as i64 - now);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    pub fn hosted(&self) -> Option<&Hosted> {
        self.hosted.get()
    }

    /// The CPC this node hosts, if it is member `id` (calls to it then stay in process).
    pub fn local_cpc(&self, id: &str) -> Option<Arc<CpcNode>> {
        self.hosted().and_then(|h| h.cpc.clone()).filter(|c| c.member.id == id)
    }
}
