//! `dualchain init`: a consortium's genesis for N nodes.
//!
//! Writes `consortium.toml` (public, identical on every node), `params/` (Groth16
//! parameter files, pinned by hash in `consortium.toml`) and one directory per node with
//! its `node.toml` and `secrets/`. Each node hosts one member (the institution running it);
//! the default layout for N nodes takes the first N of: kgc, hospital-a, research-1,
//! cpc-1, hospital-b, cpc-2, research-2 (nodes beyond 7 are validators only); `--member`
//! replaces it.
//!
//! Genesis is one ceremony on one machine: it certifies every member, runs the blinded
//! ESKI-IBE issuing round trip between each member and every authority (the KGC and the
//! CPCs), derives CP-ABE keys for requesting members and the KGC's credential leaves, and
//! generates the Groth16 parameters (or takes them from the local parameter cache). The
//! ceremony's machine therefore sees every secret once; a consortium that must avoid this
//! runs the member-side steps on each institution's machine and a multi-party setup for the
//! Groth16 parameters, neither of which this command does. Members register on chain and
//! the KGC publishes credentials when the nodes first start.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, ensure, Context, Result};
use dualchain_consensus::tls::TlsCa;
use dualchain_crypto::abe::ac17::Ac17;
use dualchain_crypto::abe::AbeScheme;
use dualchain_crypto::cert::{CertificateAuthority, Role};
use dualchain_crypto::ibe::IbePublicParams;
use dualchain_crypto::sign::SigningKeypair;
use dualchain_ledger::tx::FrBytes;
use dualchain_prover::shapes::Shape;
use dualchain_prover::supply::SupplyShape;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::config::{
    to_hex, write_private, ApiConfig, ConsensusConfig, ConsortiumFile, MemberEntry, NodeConfig, ParamsEntry,
    SecretsConfig, ValidatorEntry,
};
use crate::members::{issue_ibe_key, role_from_str, Member, MemberFile};
use crate::{flow, zk};

/// What `dualchain init` is asked for (its command-line arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct InitOptions {
    /// Number of nodes (validators), at least 4.
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Output directory (must not hold a consortium yet).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value = "dualchain consortium")]
    pub name: String,
    /// Comma-separated IP address of each node (or one for all).
    #[arg(long, default_value = "127.0.0.1", value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// First QUIC port (node i uses base + i on a shared host, base on its own host);
    /// 0 picks free ports now (for clusters on one host).
    #[arg(long, default_value_t = 7700)]
    pub quic_port: u16,
    /// First API port; 0 picks free ports.
    #[arg(long, default_value_t = 8700)]
    pub api_port: u16,
    /// `id:role[:attr,attr]` for each node in order (`-` for a validator-only node);
    /// default: kgc, hospital-a, research-1, cpc-1, hospital-b, cpc-2, research-2.
    #[arg(long = "member")]
    pub members: Vec<String>,
    /// Dataset sizes the supply circuit is set up for (rounded up to a shape).
    #[arg(long, default_value = "64", value_delimiter = ',')]
    pub supply_records: Vec<usize>,
    /// Groth16 parameter cache (default: ~/.cache/dualchain/params).
    #[arg(long)]
    pub params_cache: Option<PathBuf>,
    /// Consensus timing preset written to every node: lan, wan or loopback.
    #[arg(long, default_value = "lan")]
    pub preset: String,
    #[arg(long)]
    pub seed: Option<u64>,
}

/// A member of the layout.
#[derive(Debug, Clone)]
struct Spec {
    id: String,
    role: Role,
    attributes: Vec<String>,
}

fn default_layout(n: usize) -> Vec<Option<Spec>> {
    let all: [(&str, Role, &[&str]); 7] = [
        (flow::KGC, Role::Kgc, &["role:kgc"]),
        (flow::HOSPITAL_A, Role::Hospital, &["role:hospital", "dept:icu"]),
        (flow::RESEARCH, Role::ResearchInstitute, &["role:research", "dept:cardiology"]),
        ("cpc-1", Role::Cpc, &["role:cpc"]),
        (flow::HOSPITAL_B, Role::Hospital, &["role:hospital", "dept:dermatology"]),
        ("cpc-2", Role::Cpc, &["role:cpc"]),
        ("research-2", Role::ResearchInstitute, &["role:research", "dept:icu"]),
    ];
    (0..n)
        .map(|i| {
            all.get(i).map(|(id, role, attrs)| Spec {
                id: id.to_string(),
                role: *role,
                attributes: attrs.iter().map(|a| a.to_string()).collect(),
            })
        })
        .collect()
}

fn parse_member(s: &str) -> Result<Option<Spec>> {
    if s == "-" {
        return Ok(None);
    }
    let mut parts = s.splitn(3, ':');
    let id = parts.next().filter(|i| !i.is_empty()).ok_or_else(|| anyhow!("--member {s:?}: no id"))?;
    ensure!(
        id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "--member {s:?}: ids are up to 64 letters, digits, '-' or '_'"
    );
    let role = role_from_str(parts.next().ok_or_else(|| anyhow!("--member {s:?}: no role"))?)?;
    ensure!(role != Role::Validator, "--member {s:?}: validators are nodes, not members");
    let mut attributes: Vec<String> =
        parts.next().map(|a| a.split(',').filter(|x| !x.is_empty()).map(str::to_string).collect()).unwrap_or_default();
    let role_attr = format!("role:{}", role.as_str());
    if !attributes.contains(&role_attr) {
        attributes.insert(0, role_attr);
    }
    Ok(Some(Spec { id: id.into(), role, attributes }))
}

fn free_port_udp(host: &str) -> Result<u16> {
    Ok(UdpSocket::bind((host, 0))?.local_addr()?.port())
}

fn free_port_tcp(host: &str) -> Result<u16> {
    Ok(TcpListener::bind((host, 0))?.local_addr()?.port())
}

/// What `init` produced.
#[derive(Debug)]
pub struct InitReport {
    pub nodes: Vec<(u8, Option<String>, PathBuf)>,
    pub params_generated: Vec<String>,
}

/// Runs the genesis ceremony and writes the consortium's files under `opts.out`.
pub fn run(opts: &InitOptions) -> Result<InitReport> {
    let n = opts.nodes;
    ensure!((4..=64).contains(&n), "--nodes must be in 4..=64 (n = 3f + 1 with f >= 1)");
    ensure!(
        !opts.out.join("consortium.toml").exists(),
        "{} already holds a consortium; choose another directory",
        opts.out.display()
    );
    ensure!(opts.hosts.len() == 1 || opts.hosts.len() == n, "--hosts takes one host or one per node");
    let layout = if opts.members.is_empty() {
        default_layout(n)
    } else {
        ensure!(opts.members.len() == n, "--member must be given once per node ('-' for none)");
        opts.members.iter().map(|s| parse_member(s)).collect::<Result<_>>()?
    };
    let specs: Vec<&Spec> = layout.iter().flatten().collect();
    for (i, s) in specs.iter().enumerate() {
        ensure!(specs[..i].iter().all(|o| o.id != s.id), "member {} appears twice", s.id);
    }
    ensure!(specs.iter().filter(|s| s.role == Role::Kgc).count() == 1, "a consortium needs exactly one KGC");
    ensure!(specs.iter().any(|s| s.role == Role::Cpc), "a consortium needs at least one CPC");

    let mut rng = match opts.seed {
        Some(s) => ChaCha20Rng::seed_from_u64(s),
        None => ChaCha20Rng::from_entropy(),
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();

    // Members: certificates, ESKI-IBE (KGC and CPCs are the authorities), CP-ABE.
    let ca_name: String = opts
        .name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || ".:_-".contains(c) { c } else { '-' })
        .chain("-member-ca".chars())
        .collect();
    let ca = CertificateAuthority::generate(&ca_name, &mut rng)?;
    let mut members = Vec::new();
    for (serial, s) in specs.iter().enumerate() {
        let attrs: Vec<&str> = s.attributes.iter().map(String::as_str).collect();
        members.push(Member::certify(&ca, &mut rng, &s.id, s.role, &attrs, serial as u64 + 1, now)?);
    }
    let authorities: Vec<String> = specs
        .iter()
        .filter(|s| s.role == Role::Kgc)
        .chain(specs.iter().filter(|s| s.role == Role::Cpc))
        .map(|s| s.id.clone())
        .collect();
    let names: Vec<&str> = authorities.iter().map(String::as_str).collect();
    let (ibe, secrets) = IbePublicParams::setup(&mut rng, &names)?;
    ibe.verify_chain()?;
    let (abe_pk, abe_msk) = Ac17::setup()?;
    let mut files = Vec::new();
    let mut credentials = Vec::new();
    for m in &mut members {
        let shares: Vec<_> = secrets.iter().collect();
        m.ibe_key = Some(issue_ibe_key(&mut rng, &ibe, &shares, m, ca.public(), now)?);
        if matches!(m.role, Role::Hospital | Role::ResearchInstitute) {
            m.cert.check_attribute_opening(&m.attributes, &m.attribute_salt)?;
            m.abe_key = Some(Ac17::keygen(&abe_msk, &m.attributes)?);
            credentials.push((m.id.clone(), hex::encode(FrBytes::from_fr(&m.credential().leaf()).0)));
        }
        let mut f = MemberFile::of(m);
        if let Some(i) = authorities.iter().position(|a| *a == m.id) {
            f.ibe_authority = Some(to_hex(&secrets[i]));
        }
        files.push(f);
    }
    for f in &mut files {
        if f.role == "kgc" {
            f.abe_master = Some(to_hex(&abe_msk));
            f.credentials = credentials.clone();
        }
    }

    // Groth16 parameters: from the cache (or generated into it), copied and pinned.
    let params_out = opts.out.join("params");
    std::fs::create_dir_all(&params_out).with_context(|| format!("creating {}", params_out.display()))?;
    let mut shapes = vec![Shape::Policy];
    for r in &opts.supply_records {
        let s = SupplyShape::for_records(*r).ok_or_else(|| anyhow!("no supply shape holds {r} records"))?;
        if !shapes.contains(&Shape::Supply(s)) {
            shapes.push(Shape::Supply(s));
        }
    }
    let params_cache = opts.params_cache.clone().unwrap_or_else(zk::default_params_dir);
    let mut params = Vec::new();
    let mut params_generated = Vec::new();
    for shape in shapes {
        let mut krng = ChaCha20Rng::from_rng(&mut rng)?;
        let (pk, generated) = zk::load_or_generate(shape, &params_cache, &mut krng)?;
        if generated {
            params_generated.push(shape.name().to_string());
        }
        let file = format!("{}.params", shape.name());
        let bytes = pk.to_file_bytes()?;
        let pin = &bytes[bytes.len() - 32..];
        write_private(&params_out.join(&file), &bytes)?;
        params.push(ParamsEntry { shape: shape.name().into(), file, sha256: hex::encode(pin) });
    }

    // Validators: consensus keys, TLS, addresses.
    let tls_ca = TlsCa::generate(&opts.name)?;
    let host_of = |i: usize| opts.hosts.get(i).unwrap_or(&opts.hosts[0]).clone();
    let shared_host = opts.hosts.len() == 1;
    let port = |base: u16, i: usize, free: &dyn Fn(&str) -> Result<u16>| -> Result<u16> {
        if base == 0 {
            free(&host_of(i))
        } else if shared_host {
            base.checked_add(i as u16).ok_or_else(|| anyhow!("port out of range"))
        } else {
            Ok(base)
        }
    };
    let mut validators = Vec::new();
    let mut node_secrets = Vec::new();
    for i in 0..n {
        let key = SigningKeypair::generate(&mut rng);
        let tls = tls_ca.issue(i as u8)?;
        let host = host_of(i);
        let quic: SocketAddr = format!("{host}:{}", port(opts.quic_port, i, &free_port_udp)?)
            .parse()
            .with_context(|| format!("host {host:?} is not an IP address"))?;
        let api_port = port(opts.api_port, i, &free_port_tcp)?;
        validators.push(ValidatorEntry {
            id: i as u8,
            quic,
            api: format!("http://{host}:{api_port}"),
            signing_key: hex::encode(key.public().as_bytes()),
            tls_cert: hex::encode(&tls.cert_der),
        });
        node_secrets.push((key, tls, api_port));
    }
    let mut entries = Vec::new();
    let mut node_member = vec![None; n];
    let mut fi = files.iter();
    for (i, s) in layout.iter().enumerate() {
        if let Some(s) = s {
            entries.push(MemberEntry { id: s.id.clone(), role: s.role.as_str().into(), node: i as u8 });
            node_member[i] = fi.next();
        }
    }
    let consortium = ConsortiumFile {
        name: opts.name.clone(),
        created_unix: now,
        grant_duration_max_s: flow::GRANT_DURATION_MAX_S,
        member_ca: to_hex(ca.public()),
        tls_ca: hex::encode(tls_ca.cert_der()),
        ibe_params: to_hex(&ibe),
        abe_public: to_hex(&abe_pk),
        params,
        validators,
        members: entries,
    };
    std::fs::write(
        opts.out.join("consortium.toml"),
        format!(
            "# dualchain consortium genesis — public; identical on every node.\n\
             # Written by `dualchain init`; do not edit (validators compare it byte for byte in spirit:\n\
             # a node with another genesis refuses its peers' certificates and blocks).\n{}",
            toml::to_string_pretty(&consortium)?
        ),
    )?;

    let mut report = InitReport { nodes: Vec::new(), params_generated };
    let default_cpc = specs.iter().find(|s| s.role == Role::Cpc).map(|s| s.id.clone());
    for (i, (key, tls, api_port)) in node_secrets.into_iter().enumerate() {
        let dir = opts.out.join(format!("node-{i}"));
        write_private(&dir.join("secrets/validator.key"), to_hex(&key).as_bytes())?;
        write_private(&dir.join("secrets/tls.key"), &tls.key_der)?;
        let member = node_member[i];
        if let Some(f) = member {
            write_private(&dir.join("secrets/member.json"), &serde_json::to_vec_pretty(f)?)?;
        }
        let listen_host = if host_of(i) == "127.0.0.1" { "127.0.0.1".to_string() } else { "0.0.0.0".to_string() };
        let cfg = NodeConfig {
            node: i as u8,
            consortium: "../consortium.toml".into(),
            params_dir: "../params".into(),
            data_dir: "data".into(),
            secrets: SecretsConfig {
                validator_key: "secrets/validator.key".into(),
                tls_key: "secrets/tls.key".into(),
                member: member.map(|_| "secrets/member.json".into()),
            },
            api: ApiConfig { listen: format!("{listen_host}:{api_port}").parse()?, ..ApiConfig::default() },
            consensus: ConsensusConfig { preset: opts.preset.clone(), ..ConsensusConfig::default() },
            owner: crate::config::OwnerConfig { default_cpc: default_cpc.clone(), ..Default::default() },
            cpc: Default::default(),
            gpu: Default::default(),
            log: Default::default(),
            base: PathBuf::new(),
        };
        std::fs::write(dir.join("node.toml"), node_toml(&cfg)?)?;
        report.nodes.push((i as u8, member.map(|f| f.id.clone()), dir));
    }
    Ok(report)
}

/// A node's file with a comment on every setting.
fn node_toml(c: &NodeConfig) -> Result<String> {
    let member = match &c.secrets.member {
        Some(p) => format!("member = {:?}", p.display().to_string()),
        None => "# member = \"secrets/member.json\"   # this node hosts no member".into(),
    };
    Ok(format!(
        r#"# dualchain node configuration (written by `dualchain init`).
# Relative paths are relative to this file's directory.

# This node's validator id in consortium.toml.
node = {node}
consortium = {consortium:?}
params_dir = {params:?}
# RocksDB (consensus log, ledger, CPC store) and the member's own state. Back it up.
data_dir = {data:?}

[secrets]
validator_key = "secrets/validator.key"
tls_key = "secrets/tls.key"
{member}

[api]
# The HTTP/JSON API for institutions, gateways and peer nodes. Every call but /health,
# /metrics and /openapi.json is signed with a member's key; put a TLS-terminating proxy in
# front of it when it leaves the host.
listen = "{listen}"
body_limit_bytes = {limit}
# Signed requests older or newer than this (seconds) are refused (clocks are NTP-synced).
clock_skew_s = {skew}
# Longest time a `wait` parameter may hold a request (seconds).
wait_max_s = {wait}

[consensus]
# lan (one data centre), wan (several sites) or loopback (a cluster on one host).
preset = "{preset}"
# view_change_timeout_ms = 2000
# batch_delay_ms = 2

[owner]
# For hospitals: where datasets are stored, how many observations posted one by one make a
# dataset, and who may request them (CP-ABE policy and its zero-knowledge twin).
{cpc}
dataset_records = {records}
abe_policy = {policy:?}
departments = {departments:?}

[cpc]
# For CPCs: capsules re-encrypted per batch chunk.
reencrypt_chunk = {chunk}

[gpu]
# Use a CUDA device where present; the CPU is the fallback and gives identical results.
enabled = {gpu}
# Refuse to start when the device does not open (instead of falling back to the CPU).
required = false
# CUDA device ordinal.
device = 0

[log]
# A tracing filter, e.g. "info" or "info,dualchain_consensus=debug" (RUST_LOG overrides).
level = "{level}"
# text (one line per event on stderr)
format = "{format}"
"#,
        node = c.node,
        consortium = c.consortium.display().to_string(),
        params = c.params_dir.display().to_string(),
        data = c.data_dir.display().to_string(),
        listen = c.api.listen,
        limit = c.api.body_limit_bytes,
        skew = c.api.clock_skew_s,
        wait = c.api.wait_max_s,
        preset = c.consensus.preset,
        cpc = match &c.owner.default_cpc {
            Some(cpc) => format!("default_cpc = {cpc:?}"),
            None => "# default_cpc = \"cpc-1\"".into(),
        },
        records = c.owner.dataset_records,
        policy = c.owner.abe_policy,
        departments = c.owner.departments,
        chunk = c.cpc.reencrypt_chunk,
        gpu = c.gpu.enabled,
        level = c.log.level,
        format = c.log.format,
    ))
}

/// Loads every parameter file named in the genesis, checked against its pin.
pub fn load_params(
    consortium: &ConsortiumFile,
    dir: &Path,
) -> Result<Vec<(Shape, dualchain_prover::params::ProvingKey)>> {
    let mut out = Vec::new();
    for p in &consortium.params {
        let shape = Shape::from_name(&p.shape).ok_or_else(|| anyhow!("unknown circuit shape {:?}", p.shape))?;
        let mut pin = [0u8; 32];
        hex::decode_to_slice(&p.sha256, &mut pin).map_err(|e| anyhow!("params pin for {}: {e}", p.shape))?;
        let pk = dualchain_prover::params::ProvingKey::load_file(&dir.join(&p.file), shape, Some(pin))
            .with_context(|| format!("loading the {} parameters", p.shape))?;
        out.push((shape, pk));
    }
    if !out.iter().any(|(s, _)| *s == Shape::Policy) {
        bail!("the genesis names no policy circuit parameters");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_specs_parse_or_say_why() {
        let s = parse_member("lab-9:research:dept:icu,clearance:3").unwrap().unwrap();
        assert_eq!((s.id.as_str(), s.role), ("lab-9", Role::ResearchInstitute));
        assert_eq!(s.attributes, ["role:research", "dept:icu", "clearance:3"]);
        assert!(parse_member("-").unwrap().is_none());
        for bad in ["", ":cpc", "x:validator", "x:wizard", "bad id:cpc", "x"] {
            assert!(parse_member(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn init_refuses_bad_layouts_before_doing_any_work() {
        let dir = std::env::temp_dir().join(format!("dualchain-init-refusals-{}", std::process::id()));
        let opts = |nodes: usize, members: &[&str]| InitOptions {
            nodes,
            out: dir.clone(),
            name: "t".into(),
            hosts: vec!["127.0.0.1".into()],
            quic_port: 0,
            api_port: 0,
            members: members.iter().map(|m| m.to_string()).collect(),
            supply_records: vec![64],
            params_cache: Some(dir.join("params")),
            preset: "loopback".into(),
            seed: Some(1),
        };
        let why = |o: InitOptions| format!("{:#}", run(&o).unwrap_err());
        assert!(why(opts(3, &[])).contains("4..=64"));
        assert!(why(opts(4, &["a:kgc", "b:cpc", "c:hospital"])).contains("once per node"));
        assert!(why(opts(4, &["a:kgc", "a:cpc", "c:hospital", "-"])).contains("twice"));
        assert!(why(opts(4, &["a:cpc", "b:cpc", "c:hospital", "-"])).contains("exactly one KGC"));
        assert!(why(opts(4, &["a:kgc", "b:hospital", "c:hospital", "-"])).contains("at least one CPC"));
        assert!(!dir.join("consortium.toml").exists());
    }
}
