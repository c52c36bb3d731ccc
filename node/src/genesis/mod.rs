//! Genesis: a consortium's files for N nodes.
//!
//! A deployed consortium's genesis runs across its institutions, and no machine sees
//! another's secrets: each institution makes its keys on its own machine
//! ([`institution::keygen`]), a coordinator assembles `consortium.toml` from their signed
//! public contributions with the certificate authorities it keeps ([`assemble`]), each
//! institution checks the result against its contribution before it writes its node's
//! configuration ([`institution::join`]), and the members' ESKI-IBE and CP-ABE keys are
//! issued online by the authorities' nodes at first start (`crate::enrollment`). The
//! Groth16 parameters come from a multi-party ceremony ([`ceremony`]), verified and pinned
//! with their transcripts. This goes beyond DESIGN.md §6, whose genesis runs on one
//! machine.
//!
//! `dualchain init` ([`run`]) is that one-machine genesis, kept as the shortcut for a
//! *test consortium* (the demo when seeded, tests): it writes `consortium.toml`, `params/`
//! and one directory per node with its `node.toml` and `secrets/`. Each node hosts one
//! member; the default layout for N nodes takes the first N of: kgc, hospital-a,
//! research-1, cpc-1, hospital-b, cpc-2, research-2 (nodes beyond 7 are validators only);
//! `--member` replaces it. It certifies every member, runs the blinded ESKI-IBE issuing
//! round trip between each member and every authority, and derives CP-ABE keys for
//! requesting members and the KGC's credential leaves, all on one machine, which therefore
//! sees every secret. Its Groth16 parameters come from a ceremony (`--ceremony`) or from
//! this machine (generated, or from the local parameter cache), and then `consortium.toml`
//! says, in the words of [`ceremony::TEST_CONSORTIUM`], that it is a test consortium.
//! Members register on chain and the KGC publishes credentials when the nodes first start.
//!
//! | module | what |
//! | --- | --- |
//! | [`institution`] | an institution's keys made on its own machine (`keygen`) and its check of the assembled consortium (`join`) |
//! | [`assemble`] | the coordinator's assembly of the consortium from public contributions, with the CAs it keeps |
//! | [`issue`] | the coordinator's certificate for an institution that joins after genesis (admitted on chain by the members' quorum) |
//! | [`ceremony`] | the multi-party Groth16 setup as operators run it; the provenance check a node makes |
//! | [`layout`] | which member each node hosts |
//! | [`params`] | Groth16 parameter files: the local cache, the pinned copies |
//! | [`node_file`] | a node's commented `node.toml` |

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;

use anyhow::{anyhow, ensure, Context, Result};
use dualchain_consensus::tls::{NodeTls, TlsCa};
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
    ApiConfig, ConsensusConfig, ConsortiumFile, MemberEntry, NodeConfig, OwnerConfig, ParamsEntry, SecretsConfig,
    TauEntry, ValidatorEntry,
};
use crate::files::{to_hex, write_private};
use crate::member::{issue_ibe_key, Member, MemberFile};

pub mod assemble;
pub mod ceremony;
pub mod institution;
pub mod issue;
pub mod layout;
pub mod node_file;
pub mod params;

use layout::{default_layout, parse_member, Spec};

/// The longest grant a consortium allows unless its genesis says otherwise (30 days).
pub const GRANT_DURATION_MAX_S: u64 = 30 * 24 * 3600;

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
    /// Open the anonymous request path: the parameters include the `policy-anonymous`
    /// circuit, and once the nodes run, the audit authorities (the KGC and the CPCs) make
    /// the escrow key on chain (docs/privacy.md).
    #[arg(long)]
    pub anonymous: bool,
    /// Groth16 parameter cache (default: ~/.cache/dualchain/params).
    #[arg(long)]
    pub params_cache: Option<PathBuf>,
    /// Consensus timing preset written to every node: lan, wan or loopback.
    #[arg(long, default_value = "lan")]
    pub preset: String,
    /// Serve the API over plain HTTP (loopback test clusters only; the default is HTTPS
    /// with certificates from the consortium's CA).
    #[arg(long)]
    pub insecure_http: bool,
    /// Take the Groth16 parameters from this ceremony directory (`dualchain ceremony`),
    /// verified first, instead of making them on this machine. Without it the consortium
    /// is a test consortium and `consortium.toml` says so.
    #[arg(long)]
    pub ceremony: Option<PathBuf>,
    /// Derive every genesis secret from this number: tests and demos only (the consortium
    /// is a test consortium, and its parameters never enter the shared parameter cache).
    #[arg(long)]
    pub seed: Option<u64>,
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
    let layout = check_layout(opts)?;
    ensure!(
        opts.seed.is_none() || opts.ceremony.is_none(),
        "--seed makes a test consortium; it cannot be combined with a ceremony's parameters"
    );
    let specs: Vec<&Spec> = layout.iter().flatten().collect();
    let progress = dualchain_progress::Progress::new("genesis", 5);
    progress.set_message("member certificates, ESKI-IBE and CP-ABE keys");
    let mut rng = match opts.seed {
        Some(s) => ChaCha20Rng::seed_from_u64(s),
        None => ChaCha20Rng::from_entropy(),
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let keys = member_keys(opts, &specs, &mut rng, now)?;
    progress.inc(1);
    progress.set_message("Groth16 parameters");
    let (params, tau, params_generated) = write_params(opts, &mut rng)?;
    let test_consortium = tau.is_none().then(|| ceremony::TEST_CONSORTIUM.to_string());
    progress.inc(1);
    progress.set_message("validators' keys and TLS");
    let (validators, node_secrets) = validator_entries(opts, &mut rng)?;
    progress.inc(1);
    progress.set_message("consortium.toml");
    let mut entries = Vec::new();
    let mut node_member = vec![None; opts.nodes];
    let mut fi = keys.files.iter();
    for (i, s) in layout.iter().enumerate() {
        if let Some(s) = s {
            entries.push(MemberEntry { id: s.id.clone(), role: s.role.as_str().into(), node: i as u8 });
            node_member[i] = fi.next();
        }
    }
    let consortium = ConsortiumFile {
        name: opts.name.clone(),
        created_unix: now,
        grant_duration_max_s: GRANT_DURATION_MAX_S,
        revocation_quorum: Some(crate::config::majority(entries.len())),
        dissemination: Some(true),
        member_ca: to_hex(keys.ca.public()),
        tls_ca: hex::encode(node_secrets.tls_ca.cert_der()),
        ibe_params: to_hex(&keys.ibe),
        abe_public: to_hex(&keys.abe_pk),
        test_consortium,
        params,
        tau,
        validators,
        members: entries,
    };
    write_consortium(&opts.out, &consortium, "dualchain init")?;
    progress.inc(1);
    progress.set_message("node files and secrets");
    let default_cpc = specs.iter().find(|s| s.role == Role::Cpc).map(|s| s.id.clone());
    let mut report = InitReport { nodes: Vec::new(), params_generated };
    for (i, (key, tls, api_port, api_tls)) in node_secrets.nodes.into_iter().enumerate() {
        let member = node_member[i];
        let dir = write_node_dir(opts, i, (&key, &tls, api_port, api_tls.as_ref()), member, &default_cpc)?;
        report.nodes.push((i as u8, member.map(|f| f.id.clone()), dir));
    }
    progress.inc(1);
    Ok(report)
}

/// Writes `dir/consortium.toml`, with its header, written by `by`.
pub(crate) fn write_consortium(dir: &std::path::Path, consortium: &ConsortiumFile, by: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        dir.join("consortium.toml"),
        format!(
            "# dualchain consortium genesis — public; identical on every node.\n\
             # Written by `{by}`; do not edit (validators compare it byte for byte in spirit:\n\
             # a node with another genesis refuses its peers' certificates and blocks).\n{}",
            toml::to_string_pretty(consortium)?
        ),
    )?;
    Ok(())
}

/// Refuses a bad request before any work: node count, hosts, the member layout (unique
/// ids, one KGC, at least one CPC) and an output directory that already holds a consortium.
fn check_layout(opts: &InitOptions) -> Result<Vec<Option<Spec>>> {
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
    Ok(layout)
}

/// The member CA's name for consortium `name`.
pub(crate) fn member_ca_name(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || ".:_-".contains(c) { c } else { '-' })
        .chain("-member-ca".chars())
        .collect()
}

/// The members' keys and the consortium's public parameters they were issued under.
struct MemberKeys {
    ca: CertificateAuthority,
    ibe: IbePublicParams,
    abe_pk: <Ac17 as AbeScheme>::PublicKey,
    /// One per member, in layout order.
    files: Vec<MemberFile>,
}

/// Certificates, ESKI-IBE (the KGC and the CPCs are the authorities; every member's key
/// by the blinded issuing round trip), CP-ABE keys for requesting members, and the
/// credential leaves the KGC will publish.
fn member_keys(opts: &InitOptions, specs: &[&Spec], rng: &mut ChaCha20Rng, now: u64) -> Result<MemberKeys> {
    let ca = CertificateAuthority::generate(&member_ca_name(&opts.name), rng)?;
    let mut members = Vec::new();
    for (serial, s) in specs.iter().enumerate() {
        let attrs: Vec<&str> = s.attributes.iter().map(String::as_str).collect();
        members.push(Member::certify(&ca, rng, &s.id, s.role, &attrs, serial as u64 + 1, now)?);
    }
    let authorities: Vec<String> = specs
        .iter()
        .filter(|s| s.role == Role::Kgc)
        .chain(specs.iter().filter(|s| s.role == Role::Cpc))
        .map(|s| s.id.clone())
        .collect();
    let names: Vec<&str> = authorities.iter().map(String::as_str).collect();
    let (ibe, secrets) = IbePublicParams::setup(rng, &names)?;
    ibe.verify_chain()?;
    let (abe_pk, abe_msk) = Ac17::setup()?;
    let mut files = Vec::new();
    let (mut credentials, mut anonymous) = (Vec::new(), Vec::new());
    for m in &mut members {
        let shares: Vec<_> = secrets.iter().collect();
        m.ibe_key = Some(issue_ibe_key(rng, &ibe, &shares, m, ca.public(), now)?);
        if matches!(m.role, Role::Hospital | Role::ResearchInstitute) {
            m.cert.check_attribute_opening(&m.attributes, &m.attribute_salt)?;
            m.abe_key = Some(Ac17::keygen(&abe_msk, &dualchain_ledger::policy::abe_key_attributes(&m.attributes)?)?);
            credentials.push((m.id.clone(), hex::encode(FrBytes::from_fr(&m.credential().leaf()).0)));
            anonymous.push((m.id.clone(), hex::encode(FrBytes::from_fr(&m.anonymous_credential().leaf()).0)));
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
            f.anonymous_credentials = anonymous.clone();
        }
    }
    Ok(MemberKeys { ca, ibe, abe_pk, files })
}

/// Groth16 parameters: from a verified ceremony with its transcripts, or (a test
/// consortium) from the cache or generated into it; copied to `params/` and pinned by
/// hash. Returns the pins, the ceremony's phase-1 entry and the shapes generated here.
fn write_params(
    opts: &InitOptions,
    rng: &mut ChaCha20Rng,
) -> Result<(Vec<ParamsEntry>, Option<TauEntry>, Vec<String>)> {
    let req = ParamsRequest {
        out: &opts.out,
        supply_records: &opts.supply_records,
        anonymous: opts.anonymous,
        ceremony: opts.ceremony.as_deref(),
        params_cache: opts.params_cache.clone(),
        seeded: opts.seed.is_some(),
    };
    req.write(rng)
}

/// The circuit shapes of a consortium: the policy circuit, the supply shape holding each
/// of `supply_records`, and the anonymous policy and demand nullifier circuits where the
/// anonymous path is open.
pub fn consortium_shapes(supply_records: &[usize], anonymous: bool) -> Result<Vec<Shape>> {
    let mut shapes = vec![Shape::Policy];
    for r in supply_records {
        let s = SupplyShape::for_records(*r).ok_or_else(|| anyhow!("no supply shape holds {r} records"))?;
        if !shapes.contains(&Shape::Supply(s)) {
            shapes.push(Shape::Supply(s));
        }
    }
    if anonymous {
        shapes.extend([Shape::AnonymousPolicy, Shape::DemandNullifier]);
    }
    Ok(shapes)
}

/// Where a consortium's Groth16 parameters come from and go to.
pub(crate) struct ParamsRequest<'a> {
    /// The consortium directory (`params/` is written under it).
    pub out: &'a std::path::Path,
    pub supply_records: &'a [usize],
    /// Whether the `policy-anonymous` circuit is among them.
    pub anonymous: bool,
    /// A ceremony directory; none makes a test consortium's parameters here.
    pub ceremony: Option<&'a std::path::Path>,
    pub params_cache: Option<PathBuf>,
    /// Seeded parameters (tests and demos): never from or into the shared cache.
    pub seeded: bool,
}

impl ParamsRequest<'_> {
    /// Copies or makes the parameters and pins them; returns the pins, the ceremony's
    /// phase-1 entry and the shapes generated here.
    pub fn write(&self, rng: &mut ChaCha20Rng) -> Result<(Vec<ParamsEntry>, Option<TauEntry>, Vec<String>)> {
        let opts = self;
        let params_out = opts.out.join("params");
        std::fs::create_dir_all(&params_out).with_context(|| format!("creating {}", params_out.display()))?;
        let shapes = consortium_shapes(opts.supply_records, opts.anonymous)?;
        if let Some(dir) = opts.ceremony {
            let verified = ceremony::verify_shapes(dir, &shapes)
                .with_context(|| format!("the ceremony in {} does not verify", dir.display()))?;
            let files = ceremony::CeremonyFiles { dir: dir.to_path_buf() };
            let tau = files.copy_phase1(&params_out)?;
            let mut entries = Vec::new();
            for shape in shapes {
                let (pf, tf) = files.copy_shape(shape, &params_out)?;
                entries.push(ParamsEntry {
                    shape: shape.name().into(),
                    sha256: ceremony::params_pin(&params_out.join(&pf))?,
                    file: pf,
                    transcript_sha256: Some(ceremony::file_sha256(&params_out.join(&tf))?),
                    transcript: Some(tf),
                });
            }
            tracing::info!(phase1 = verified.tau.len(), "Groth16 parameters from a verified ceremony");
            // The same pins a node's check computes: in-process nodes need not verify again.
            ceremony::remember_verified(ceremony::verdict_key(&tau, &entries));
            return Ok((entries, Some(tau), Vec::new()));
        }
        let params_cache = opts.params_cache.clone().unwrap_or_else(params::default_params_dir);
        let mut entries = Vec::new();
        let mut generated_shapes = Vec::new();
        for shape in shapes {
            let mut krng = ChaCha20Rng::from_rng(&mut *rng)?;
            let (pk, generated) = params::load_or_generate(shape, &params_cache, opts.seeded, &mut krng)?;
            if generated {
                generated_shapes.push(shape.name().to_string());
            }
            let file = format!("{}.params", shape.name());
            let bytes = pk.to_file_bytes()?;
            let pin = &bytes[bytes.len() - 32..];
            write_private(&params_out.join(&file), &bytes)?;
            entries.push(ParamsEntry {
                shape: shape.name().into(),
                file,
                sha256: hex::encode(pin),
                transcript: None,
                transcript_sha256: None,
            });
        }
        Ok((entries, None, generated_shapes))
    }
}

/// The validators' secrets genesis hands to each node: consensus key, TLS identity, API port.
struct NodeSecrets {
    tls_ca: TlsCa,
    /// Per node: consensus key, consensus TLS identity, API port, API TLS identity (none
    /// with `--insecure-http`).
    nodes: Vec<(SigningKeypair, NodeTls, u16, Option<NodeTls>)>,
}

/// Validators: consensus keys, TLS certificates from the consortium's TLS CA, addresses.
fn validator_entries(opts: &InitOptions, rng: &mut ChaCha20Rng) -> Result<(Vec<ValidatorEntry>, NodeSecrets)> {
    let tls_ca = TlsCa::generate(&opts.name)?;
    let shared_host = opts.hosts.len() == 1;
    let port = |base: u16, i: usize, free: &dyn Fn(&str) -> Result<u16>| -> Result<u16> {
        if base == 0 {
            free(host_of(opts, i))
        } else if shared_host {
            base.checked_add(i as u16).ok_or_else(|| anyhow!("port out of range"))
        } else {
            Ok(base)
        }
    };
    let mut validators = Vec::new();
    let mut nodes = Vec::new();
    for i in 0..opts.nodes {
        let key = SigningKeypair::generate(rng);
        let tls = tls_ca.issue(i as u8)?;
        let host = host_of(opts, i);
        let quic: SocketAddr = format!("{host}:{}", port(opts.quic_port, i, &free_port_udp)?)
            .parse()
            .with_context(|| format!("host {host:?} is not an IP address"))?;
        let api_port = port(opts.api_port, i, &free_port_tcp)?;
        let api_tls = if opts.insecure_http { None } else { Some(tls_ca.issue_api(i as u8, host)?) };
        let scheme = if opts.insecure_http { "http" } else { "https" };
        validators.push(ValidatorEntry {
            id: i as u8,
            quic,
            api: format!("{scheme}://{host}:{api_port}"),
            signing_key: hex::encode(key.public().as_bytes()),
            tls_cert: hex::encode(&tls.cert_der),
        });
        nodes.push((key, tls, api_port, api_tls));
    }
    Ok((validators, NodeSecrets { tls_ca, nodes }))
}

fn host_of(opts: &InitOptions, i: usize) -> &str {
    opts.hosts.get(i).unwrap_or(&opts.hosts[0])
}

/// Writes node `i`'s directory: `secrets/` (mode 0600) and `node.toml`.
fn write_node_dir(
    opts: &InitOptions,
    i: usize,
    (key, tls, api_port, api_tls): (&SigningKeypair, &NodeTls, u16, Option<&NodeTls>),
    member: Option<&MemberFile>,
    default_cpc: &Option<String>,
) -> Result<PathBuf> {
    let dir = opts.out.join(format!("node-{i}"));
    write_private(&dir.join("secrets/validator.key"), to_hex(key).as_bytes())?;
    write_private(&dir.join("secrets/tls.key"), &tls.key_der)?;
    if let Some(t) = api_tls {
        write_private(&dir.join("secrets/api-tls.key"), &t.key_der)?;
        std::fs::write(dir.join("api-tls.der"), &t.cert_der)?;
    }
    if let Some(f) = member {
        write_private(&dir.join("secrets/member.json"), &serde_json::to_vec_pretty(f)?)?;
    }
    let cfg = node_config(&NodeLayout {
        node: i as u8,
        host: host_of(opts, i),
        api_port,
        preset: &opts.preset,
        member: member.is_some(),
        api_tls: api_tls.is_some(),
        default_cpc,
        consortium: "../consortium.toml",
        params_dir: "../params",
    })?;
    std::fs::write(dir.join("node.toml"), node_file::node_toml(&cfg)?)?;
    Ok(dir)
}

/// What a node's `node.toml` is written from.
pub(crate) struct NodeLayout<'a> {
    pub node: u8,
    pub host: &'a str,
    pub api_port: u16,
    pub preset: &'a str,
    pub member: bool,
    pub api_tls: bool,
    pub default_cpc: &'a Option<String>,
    /// Paths relative to the node's directory.
    pub consortium: &'a str,
    pub params_dir: &'a str,
}

/// A node's configuration as genesis writes it: secrets under `secrets/`, data under
/// `data/`, the API on all interfaces (loopback for a loopback host) over HTTPS.
pub(crate) fn node_config(l: &NodeLayout<'_>) -> Result<NodeConfig> {
    let listen_host = if l.host == "127.0.0.1" { "127.0.0.1" } else { "0.0.0.0" };
    Ok(NodeConfig {
        node: l.node,
        consortium: l.consortium.into(),
        params_dir: l.params_dir.into(),
        data_dir: "data".into(),
        secrets: SecretsConfig {
            validator_key: "secrets/validator.key".into(),
            tls_key: "secrets/tls.key".into(),
            member: l.member.then(|| "secrets/member.json".into()),
        },
        api: ApiConfig {
            listen: format!("{listen_host}:{}", l.api_port).parse()?,
            tls_cert: l.api_tls.then(|| "api-tls.der".into()),
            tls_key: l.api_tls.then(|| "secrets/api-tls.key".into()),
            insecure_http: !l.api_tls,
            ..ApiConfig::default()
        },
        consensus: ConsensusConfig { preset: l.preset.to_string(), ..ConsensusConfig::default() },
        owner: OwnerConfig { default_cpc: l.default_cpc.clone(), ..Default::default() },
        cpc: Default::default(),
        gpu: Default::default(),
        log: Default::default(),
        joined: None,
        base: PathBuf::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
            anonymous: false,
            params_cache: Some(dir.join("params")),
            preset: "loopback".into(),
            seed: Some(1),
            ceremony: None,
            insecure_http: false,
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
