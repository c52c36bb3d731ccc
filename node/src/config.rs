//! The files of a deployed consortium (written by `dualchain init`, read by
//! `dualchain node` and `dualchain client`):
//!
//! - `consortium.toml`: public genesis, the same on every node — the member CA's key, the
//!   consensus TLS CA, every validator's consensus key, QUIC and API addresses and TLS
//!   certificate, the ESKI-IBE and CP-ABE public parameters, the Groth16 parameter files
//!   pinned by hash, and which member each node hosts;
//! - `params/`: the Groth16 parameter files;
//! - `node-<i>/node.toml`: one node's settings (below), with safe defaults for everything
//!   but the paths;
//! - `node-<i>/secrets/`: the node's validator key, TLS key and its member's keys
//!   (mode 0600).
//!
//! Paths in a node's file are relative to the file's own directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

/// `consortium.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsortiumFile {
    pub name: String,
    pub created_unix: u64,
    /// Longest grant a requester may ask for, in seconds.
    pub grant_duration_max_s: u64,
    /// The membership quorum: how many distinct members in good standing must approve
    /// revoking a member (`POST /members/{id}/revoke` from each) or admitting one not
    /// listed in `members` (`POST /members/{id}/admit`). Genesis writes a majority of the
    /// members it lists; absent, that majority is meant. Identical on every node, like the
    /// rest. The key keeps its first name; `membership_quorum` is read as the same.
    #[serde(default, alias = "membership_quorum", skip_serializing_if = "Option::is_none")]
    pub revocation_quorum: Option<u32>,
    /// How requests reach the ordering: `true`, every validator disseminates its own
    /// members' requests in parts and the primary orders certified parts by reference
    /// (`dualchain_consensus::replica::dissemination`); `false`, validators forward
    /// requests to the primary, which carries every batch. Genesis writes `true`. Absent,
    /// `false`: a consortium made before the key existed keeps running as its validators
    /// did. A consensus setting every validator must share (a validator that forwards to a
    /// primary that orders parts waits forever), so it lives here, not in `node.toml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dissemination: Option<bool>,
    /// The member certificate authority's public key (hex of its encoding).
    pub member_ca: String,
    /// The consensus TLS CA certificate (hex of DER).
    pub tls_ca: String,
    /// ESKI-IBE public parameters (hex).
    pub ibe_params: String,
    /// CP-ABE public key (hex).
    pub abe_public: String,
    /// Present only in a consortium whose parameters one machine made: the exact words of
    /// `genesis::ceremony::TEST_CONSORTIUM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_consortium: Option<String>,
    pub params: Vec<ParamsEntry>,
    /// The Groth16 ceremony's phase 1 (absent in a test consortium).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tau: Option<TauEntry>,
    pub validators: Vec<ValidatorEntry>,
    /// The members named at genesis, the founders: each registers on its certificate
    /// alone. Any other member the member CA certifies later (`dualchain issue`) joins only
    /// with the membership quorum's approval. Every node's ledger reads its founders from
    /// this list, so it is never edited after genesis: a member listed here later would
    /// register without approval at nodes with the edited file and not at the others.
    pub members: Vec<MemberEntry>,
}

/// The ceremony's phase-1 files, pinned.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TauEntry {
    pub accumulator: String,
    pub accumulator_sha256: String,
    pub transcript: String,
    pub transcript_sha256: String,
}

/// A Groth16 parameter file, pinned by the SHA-256 of its contents.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamsEntry {
    /// `policy` or `supply-<records>`.
    pub shape: String,
    pub file: String,
    pub sha256: String,
    /// The shape's phase-2 transcript, pinned (absent in a test consortium).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript_sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorEntry {
    pub id: u8,
    /// QUIC address the replica listens on and peers dial.
    pub quic: SocketAddr,
    /// Base URL of the node's API (`https://host:port`; `http://` only for a loopback test).
    pub api: String,
    /// Ed25519 consensus key (hex).
    pub signing_key: String,
    /// TLS certificate issued at genesis (hex of DER).
    pub tls_cert: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberEntry {
    pub id: String,
    /// `kgc`, `hospital`, `research` or `cpc`.
    pub role: String,
    /// The node (validator id) hosting the member.
    pub node: u8,
}

/// More than half of `n` (at least 1).
pub fn majority(n: usize) -> u32 {
    (n / 2 + 1) as u32
}

impl ConsortiumFile {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let c: Self = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> Result<()> {
        if self.validators.len() < 4 {
            bail!(
                "a consortium needs at least 4 validators (n = 3f + 1, f >= 1); this one lists {}",
                self.validators.len()
            );
        }
        for (i, v) in self.validators.iter().enumerate() {
            if v.id as usize != i {
                bail!("validators must be listed in id order (entry {i} has id {})", v.id);
            }
        }
        for m in &self.members {
            if m.node as usize >= self.validators.len() {
                bail!("member {} is hosted by node {}, which does not exist", m.id, m.node);
            }
        }
        if self.revocation_quorum == Some(0) {
            bail!("revocation_quorum (the membership quorum) must be at least 1");
        }
        Ok(())
    }

    /// Approvals it takes to revoke a member or admit one not named at genesis: as
    /// written, or a majority of the members listed at genesis.
    pub fn membership_quorum(&self) -> u32 {
        self.revocation_quorum.unwrap_or_else(|| majority(self.members.len()))
    }

    /// Whether requests are disseminated apart from ordering (see `dissemination`).
    pub fn disseminates(&self) -> bool {
        self.dissemination.unwrap_or(false)
    }

    /// The ids of the members named at genesis (`members`).
    pub fn founders(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|m| m.id.as_str())
    }

    pub fn member(&self, id: &str) -> Option<&MemberEntry> {
        self.members.iter().find(|m| m.id == id)
    }

    /// The API base URL of the node hosting `member`.
    pub fn api_of(&self, member: &str) -> Result<&str> {
        Ok(&self.validators[self.node_of(member)? as usize].api)
    }

    /// The node that hosts `member`.
    pub fn node_of(&self, member: &str) -> Result<u8> {
        Ok(self.member(member).ok_or_else(|| anyhow!("{member} is not a member of this consortium"))?.node)
    }

    /// The consortium's identity, which every signed API request names: SHA-256 over its
    /// name and the two certificate authorities genesis made (unique per genesis).
    pub fn id(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in ["dualchain consortium v1", &self.name, &self.member_ca, &self.tls_ca] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().into()
    }
}

/// `node.toml`: one node's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's validator id in `consortium.toml`.
    pub node: u8,
    /// The consortium's genesis file.
    pub consortium: PathBuf,
    /// Directory of the Groth16 parameter files.
    pub params_dir: PathBuf,
    /// RocksDB and the node's own state (owned datasets, staged observations).
    pub data_dir: PathBuf,
    pub secrets: SecretsConfig,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub consensus: ConsensusConfig,
    #[serde(default)]
    pub owner: OwnerConfig,
    #[serde(default)]
    pub cpc: CpcConfig,
    #[serde(default)]
    pub gpu: GpuConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// This node's validator entry when it joined after genesis (`dualchain join` of a
    /// newcomer that `dualchain issue` gave a validator slot): consortium.toml, fixed at
    /// genesis, does not list it. Its id is `node`, at or above the genesis validators'
    /// count; it votes once a validator set change names it
    /// (`dualchain validator propose`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined: Option<ValidatorEntry>,
    /// Where this file was read from (paths are relative to its directory).
    #[serde(skip)]
    pub base: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// The validator's Ed25519 consensus key.
    pub validator_key: PathBuf,
    /// The validator's TLS private key (PKCS#8 DER).
    pub tls_key: PathBuf,
    /// The hosted member's keys (absent on a node that is a validator only).
    #[serde(default)]
    pub member: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address the HTTP API binds to.
    pub listen: SocketAddr,
    /// Largest request body accepted (bytes); larger bodies get 413.
    pub body_limit_bytes: usize,
    /// How far a signed request's time may be from this node's clock (seconds).
    pub clock_skew_s: u64,
    /// How long `wait` parameters may block a request (seconds).
    pub wait_max_s: u64,
    /// Requests served at once (`/health` and `/metrics` aside); more get 503.
    pub concurrency_max: usize,
    /// Longest a request may take, waiting included (seconds); then it gets 503.
    pub request_time_max_s: u64,
    /// Longest a request's body may take to arrive (seconds); then it gets 408.
    pub body_read_max_s: u64,
    /// Signed requests kept in the replay window (one clock skew); more get 503.
    pub nonces_max: usize,
    /// The API's HTTPS certificate (DER, from the consortium's CA at genesis) and its
    /// PKCS#8 private key (DER, under secrets/).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// How often the certificate and key files are read again for a renewal (seconds;
    /// `api::tls` module docs).
    pub tls_reload_s: u64,
    /// Serve plain HTTP instead of HTTPS: loopback tests only (the API carries decrypted
    /// records); refused on any other address.
    pub insecure_http: bool,
    /// How long a SMART Backend Services bearer token lasts (seconds).
    pub token_ttl_s: u64,
    /// Bearer tokens (and client assertions in their replay window) live at once; more get 503.
    pub tokens_max: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8700".parse().expect("literal"),
            body_limit_bytes: 8 << 20,
            clock_skew_s: 60,
            wait_max_s: 120,
            concurrency_max: 256,
            request_time_max_s: 180,
            body_read_max_s: 30,
            nonces_max: 1 << 20,
            tls_cert: None,
            tls_key: None,
            tls_reload_s: 60,
            insecure_http: false,
            token_ttl_s: 300,
            tokens_max: 1 << 16,
        }
    }
}

/// Consensus timing. `lan` suits one data centre, `wan` several sites, `loopback` a
/// cluster on one host (tests).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsensusConfig {
    pub preset: String,
    /// Overrides of the preset (milliseconds); absent means the preset's value.
    pub view_change_timeout_ms: Option<u64>,
    pub batch_delay_ms: Option<u64>,
    /// Admission control: requests of this node's own clients waiting at its validator
    /// beyond which new ones are refused (503 consensus-busy). Absent: 8192.
    pub admission_len_max: Option<usize>,
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        Self { preset: "lan".into(), view_change_timeout_ms: None, batch_delay_ms: None, admission_len_max: None }
    }
}

impl ConsensusConfig {
    /// The replica's settings: this file's timing on the consortium's `n` and, from the
    /// genesis file, how requests reach the ordering (`dissemination`).
    pub fn replica(&self, n: usize, id: u8, dissemination: bool) -> Result<dualchain_consensus::Config> {
        let mut c = match self.preset.as_str() {
            "loopback" => dualchain_consensus::Config::loopback(n, id),
            "lan" => dualchain_consensus::Config::new(n, id),
            "wan" => dualchain_consensus::Config {
                view_change_timeout_ms: 8000,
                retransmit_ms: 2000,
                state_fetch_ms: 4000,
                batch_delay_ms: 10,
                ..dualchain_consensus::Config::new(n, id)
            },
            other => bail!("unknown consensus preset {other:?} (lan, wan or loopback)"),
        };
        if let Some(v) = self.view_change_timeout_ms {
            c.view_change_timeout_ms = v;
        }
        if let Some(v) = self.batch_delay_ms {
            c.batch_delay_ms = v;
        }
        if let Some(v) = self.admission_len_max {
            c.admission_len_max = v;
        }
        c.dissemination = dissemination;
        // A validator added after genesis has an id at or above the genesis `n`.
        let checked = if (id as usize) < n { c.validate() } else { c.validate_tunables() };
        checked.map_err(|e| anyhow!("consensus settings: {e}"))?;
        Ok(c)
    }
}

/// The access policy of a hospital's new datasets unless `owner.policy` sets one:
/// researchers of cardiology, intensive care and anesthesiology.
pub const DEFAULT_POLICY: &str = "role:research and (dept:cardiology or dept:icu or dept:anesthesiology)";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OwnerConfig {
    /// The CPC that stores this hospital's datasets unless a request names another.
    pub default_cpc: Option<String>,
    /// Observations posted one by one are staged and sealed into a dataset at this count.
    pub dataset_records: usize,
    /// Who may request new datasets: one statement
    /// ([`dualchain_ledger::policy`]), from which the CP-ABE policy of the index and the
    /// zero-knowledge policy of the proof are both compiled. (`abe_policy`, its name
    /// before the two forms were one, is read as the same key.)
    #[serde(alias = "abe_policy")]
    pub policy: String,
    /// Gone: the departments are part of `policy`. Present in a file, it is refused with
    /// that reason rather than as an unknown key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub departments: Option<Vec<String>>,
    /// What demands on new datasets may ask (an upload's query parameters override it).
    pub disclosure: dualchain_ledger::tx::Disclosure,
    /// Take Observations only from devices registered at this node (`POST /fhir/Device`
    /// with the device's IEEE 11073 system id); others, and Observations naming no device,
    /// are refused (422 `unregistered-device`).
    pub require_registered_devices: bool,
    /// What a patient without an active Consent consents to: `permit` (every use; the
    /// default) or `deny` (none: opt-in only).
    pub consent_default: crate::member::consent::ConsentDefault,
}

impl Default for OwnerConfig {
    fn default() -> Self {
        Self {
            default_cpc: None,
            dataset_records: 64,
            policy: DEFAULT_POLICY.into(),
            departments: None,
            disclosure: Default::default(),
            require_registered_devices: false,
            consent_default: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CpcConfig {
    /// Capsules re-encrypted per batch chunk.
    pub reencrypt_chunk: usize,
}

impl Default for CpcConfig {
    fn default() -> Self {
        Self { reencrypt_chunk: 4096 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuConfig {
    /// Use a CUDA device where one is present (the CPU is the fallback either way).
    pub enabled: bool,
    /// Refuse to start when the device does not open, instead of falling back.
    pub required: bool,
    /// Which CUDA device (ordinal, as `nvidia-smi` lists them).
    pub device: usize,
}

impl Default for GpuConfig {
    fn default() -> Self {
        Self { enabled: true, required: false, device: 0 }
    }
}

impl GpuConfig {
    pub fn policy(&self) -> dualchain_kernels::GpuPolicy {
        use dualchain_kernels::GpuPolicy;
        match (self.enabled, self.required) {
            (false, _) => GpuPolicy::Off,
            (true, true) => GpuPolicy::Require,
            (true, false) => GpuPolicy::Auto,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter: a level (`info`) or per-module directives
    /// (`info,dualchain_consensus=debug`). `RUST_LOG` overrides it.
    pub level: String,
    /// `text` (one line per event on stderr; journald adds the timestamps it needs).
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into(), format: "text".into() }
    }
}

impl NodeConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut c: Self = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        c.base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        c.owner.disclosure.validate().map_err(|e| anyhow::anyhow!("owner.disclosure: {e}"))?;
        if let Some(d) = &c.owner.departments {
            bail!(
                "owner.departments ({d:?}) is no longer read: state the departments in owner.policy, \
                 from which both the CP-ABE and the zero-knowledge policy are compiled \
                 (e.g. \"role:research and (dept:cardiology or dept:icu)\")"
            );
        }
        dualchain_ledger::policy::AccessPolicy::parse(&c.owner.policy)
            .and_then(|p| p.compile())
            .map_err(|e| anyhow::anyhow!("owner.policy {:?}: {e}", c.owner.policy))?;
        if c.owner.dataset_records == 0 {
            bail!("owner.dataset_records must be positive");
        }
        if c.api.body_limit_bytes < 1024 {
            bail!("api.body_limit_bytes must be at least 1024");
        }
        if c.api.concurrency_max == 0 || c.api.nonces_max == 0 || c.api.body_read_max_s == 0 {
            bail!("api.concurrency_max, api.nonces_max and api.body_read_max_s must be positive");
        }
        if c.api.request_time_max_s <= c.api.wait_max_s {
            bail!("api.request_time_max_s must exceed api.wait_max_s (a waiting request would be cut first)");
        }
        Ok(c)
    }

    /// This node's validator entry: consortium.toml's for a genesis validator, `joined`
    /// for one that joined after genesis (and never both).
    pub fn own_validator<'a>(&'a self, consortium: &'a ConsortiumFile) -> Result<&'a ValidatorEntry> {
        let n = consortium.validators.len();
        match (&self.joined, consortium.validators.get(self.node as usize)) {
            (None, Some(v)) => Ok(v),
            (Some(j), None) if j.id == self.node => Ok(j),
            (Some(j), None) => bail!("node.toml's [joined] is validator {}, not node {}", j.id, self.node),
            (Some(_), Some(_)) => {
                bail!("node {} is a genesis validator; node.toml's [joined] is for one added later", self.node)
            }
            (None, None) => bail!(
                "node {} is not in the consortium (it has {n} genesis validators) and node.toml has no [joined]                  entry for a validator added later",
                self.node
            ),
        }
    }

    /// A path from this file, resolved against its directory.
    pub fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_files_take_defaults_and_refuse_unknown_keys() {
        let dir = std::env::temp_dir().join(format!("dualchain-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let base = "node = 2\nconsortium = \"../c.toml\"\nparams_dir = \"p\"\ndata_dir = \"/var/lib/x\"\n[secrets]\nvalidator_key = \"k\"\ntls_key = \"t\"\n";
        std::fs::write(dir.join("a.toml"), base).unwrap();
        let c = NodeConfig::load(&dir.join("a.toml")).unwrap();
        assert_eq!((c.node, c.api.body_limit_bytes, c.secrets.member.clone()), (2, 8 << 20, None));
        assert_eq!(c.path(Path::new("p")), dir.join("p"));
        assert_eq!(c.path(&c.data_dir), PathBuf::from("/var/lib/x"));
        assert_eq!(c.consensus.replica(4, 2, true).unwrap().view_change_timeout_ms, 2000);
        std::fs::write(dir.join("b.toml"), format!("{base}[api]\nlisten = \"127.0.0.1:1\"\nbody_limt = 5\n")).unwrap();
        assert!(format!("{:#}", NodeConfig::load(&dir.join("b.toml")).unwrap_err()).contains("body_limt"));
        std::fs::write(dir.join("c.toml"), format!("{base}[consensus]\npreset = \"moon\"\n")).unwrap();
        let c = NodeConfig::load(&dir.join("c.toml")).unwrap();
        assert!(c.consensus.replica(4, 0, true).is_err());

        // The access policy: one statement, its earlier key read as the same, the
        // departments list of the two-form days refused with the way forward.
        let owner = |body: &str| {
            std::fs::write(dir.join("d.toml"), format!("{base}[owner]\n{body}\n")).unwrap();
            NodeConfig::load(&dir.join("d.toml")).map_err(|e| format!("{e:#}"))
        };
        assert_eq!(NodeConfig::load(&dir.join("a.toml")).unwrap().owner.policy, DEFAULT_POLICY);
        let c = owner("policy = \"role:research and clearance>=3\"").unwrap();
        assert_eq!(c.owner.policy, "role:research and clearance>=3");
        assert_eq!(owner("abe_policy = \"role:research\"").unwrap().owner.policy, "role:research");
        let e = owner("policy = \"role:research\"\ndepartments = [\"icu\"]").unwrap_err();
        assert!(e.contains("owner.departments") && e.contains("owner.policy"), "{e}");
        let e = owner("policy = \"role:research and salary:high\"").unwrap_err();
        assert!(e.contains("owner.policy") && e.contains("not a credential key"), "{e}");
        // Consent: every use unless a Consent restricts, or opt-in only.
        use crate::member::consent::ConsentDefault;
        assert_eq!(NodeConfig::load(&dir.join("a.toml")).unwrap().owner.consent_default, ConsentDefault::Permit);
        assert_eq!(owner("consent_default = \"deny\"").unwrap().owner.consent_default, ConsentDefault::Deny);
        assert!(owner("consent_default = \"opt-in\"").unwrap_err().contains("consent_default"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_membership_quorum_and_dissemination_are_read_from_genesis_and_the_founders_are_the_members() {
        let validators: String = (0..4)
            .map(|i| {
                format!(
                    "[[validators]]\nid = {i}\nquic = \"127.0.0.1:{}\"\napi = \"http://127.0.0.1:1\"\n\
                     signing_key = \"\"\ntls_cert = \"\"\n",
                    7700 + i
                )
            })
            .collect();
        let members: String = ["kgc", "hospital-a", "research-1"]
            .iter()
            .zip(0..)
            .map(|(id, node)| format!("[[members]]\nid = \"{id}\"\nrole = \"hospital\"\nnode = {node}\n"))
            .collect();
        let file = |quorum: &str| -> Result<ConsortiumFile> {
            let text = format!(
                "name = \"c\"\ncreated_unix = 0\ngrant_duration_max_s = 60\n{quorum}\nmember_ca = \"\"\n\
                 tls_ca = \"\"\nibe_params = \"\"\nabe_public = \"\"\nparams = []\n{validators}{members}"
            );
            let c: ConsortiumFile = toml::from_str(&text)?;
            c.check()?;
            Ok(c)
        };
        assert_eq!(file("revocation_quorum = 3").unwrap().membership_quorum(), 3);
        assert_eq!(file("membership_quorum = 1").unwrap().membership_quorum(), 1);
        let c = file("").unwrap();
        assert_eq!(c.membership_quorum(), 2, "a majority of the three members");
        assert_eq!(c.founders().collect::<Vec<_>>(), ["kgc", "hospital-a", "research-1"]);
        assert!(format!("{:#}", file("revocation_quorum = 0").unwrap_err()).contains("at least 1"));
        // Written back under its first name, which older nodes read.
        let text = toml::to_string(&file("membership_quorum = 3").unwrap()).unwrap();
        assert!(text.contains("revocation_quorum = 3") && !text.contains("membership_quorum"), "{text}");
        // How requests reach the ordering: as written; absent (a consortium made before the
        // key), forwarding to the primary, as its validators ran; and the replica follows it.
        assert!(!c.disseminates());
        assert!(file("dissemination = true").unwrap().disseminates());
        assert!(!file("dissemination = false").unwrap().disseminates());
        assert!(file("dissemination = \"yes\"").is_err());
        let consensus = ConsensusConfig::default();
        for on in [false, true] {
            assert_eq!(consensus.replica(4, 1, on).unwrap().dissemination, on);
        }
    }
}
