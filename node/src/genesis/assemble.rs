//! `dualchain assemble`: the coordinator's side of a genesis without a trusted dealer.
//!
//! The coordinator (whoever the consortium chose to run its certificate authorities) reads
//! every institution's contribution ([`super::institution`]), refuses the set unless it is
//! sound, and writes the consortium from public parts only:
//! - every contribution is signed by the member key it names, for this consortium;
//! - ids, member keys, validator keys and TLS keys are unique;
//! - exactly one KGC and at least one CPC, and the ESKI-IBE chain is complete: the KGC's
//!   link first, then one link per CPC in the order they extended it, every link checked
//!   by its pairing equation (DESIGN.md §4.2);
//! - the KGC brings the CP-ABE public key.
//!
//! It then issues, from CAs it keeps in `--ca DIR` (`secrets/member-ca.key` and
//! `secrets/tls-ca.key`, mode 0600; made on first use and reused after, so that
//! certificates can be renewed and issued later): each member's certificate over its keys
//! and attribute commitment (after checking the commitment opens to the attributes), each
//! validator's consensus TLS certificate and each API's HTTPS certificate, all for keys the
//! coordinator never sees the private half of. Output: `consortium.toml`, `params/` (from
//! a verified ceremony, or made here for a test consortium, which then says so) and
//! `issued/<id>.toml`. Nothing in it is secret.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, ensure, Context, Result};
use dualchain_consensus::tls::TlsCa;
use dualchain_crypto::cbsre::DelegatingPublicKey;
use dualchain_crypto::cert::{Certificate, CertificateAuthority, CertificateFields, Role};
use dualchain_crypto::ibe::IbePublicParams;
use dualchain_crypto::sign::SigningKeypair;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

use super::institution::{Contribution, ContributionBody, IssuedFile};
use super::{ceremony, member_ca_name, write_consortium, ParamsRequest, GRANT_DURATION_MAX_S};
use crate::config::{ConsortiumFile, MemberEntry, ValidatorEntry};
use crate::files::{from_hex, read_secret, to_hex, write_private};

/// Member certificates are valid this long (renewal: the lifecycle work).
const CERT_VALIDITY_S: u64 = 365 * 24 * 3600;

/// `dualchain assemble`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct AssembleOptions {
    /// The consortium's name (every contribution must name it).
    #[arg(long)]
    pub name: String,
    /// Each institution's `contribution.toml`, in node order (node 0 first).
    #[arg(long = "contribution", required = true)]
    pub contributions: Vec<PathBuf>,
    /// The certificate authorities' directory (kept by the coordinator; made if absent).
    #[arg(long)]
    pub ca: PathBuf,
    /// Output directory (must not hold a consortium yet).
    #[arg(long)]
    pub out: PathBuf,
    /// Dataset sizes the supply circuit is set up for (rounded up to a shape).
    #[arg(long, default_value = "64", value_delimiter = ',')]
    pub supply_records: Vec<usize>,
    /// Open the anonymous request path: the parameters include the `policy-anonymous`
    /// circuit, and once the nodes run, the audit authorities (the KGC and the CPCs) make
    /// the escrow key on chain (docs/privacy.md).
    #[arg(long)]
    pub anonymous: bool,
    /// The Groth16 parameters' ceremony directory (`dualchain ceremony`).
    #[arg(long)]
    pub ceremony: Option<PathBuf>,
    /// Make the Groth16 parameters here instead: a test consortium, and consortium.toml
    /// says so.
    #[arg(long)]
    pub test_params: bool,
    /// Parameter cache for `--test-params` (default: ~/.cache/dualchain/params).
    #[arg(long)]
    pub params_cache: Option<PathBuf>,
}

/// The coordinator's CAs, as kept in `--ca DIR`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaFile {
    consortium: String,
    member_ca: String,
    /// The member CA's Ed25519 key (hex of its encoding).
    member_ca_key: String,
    /// The next member certificate serial.
    next_serial: u64,
}

pub(super) struct Cas {
    pub(super) member: CertificateAuthority,
    pub(super) tls: TlsCa,
    pub(super) next_serial: u64,
}

const CA_FILE: &str = "secrets/member-ca.json";
const TLS_CA_KEY: &str = "secrets/tls-ca.key";

impl Cas {
    /// The CAs kept in `dir`, or new ones (written there first).
    pub(super) fn open_or_create(dir: &Path, consortium: &str) -> Result<Self> {
        let path = dir.join(CA_FILE);
        if path.exists() {
            let f: CaFile =
                serde_json::from_slice(&read_secret(&path)?).with_context(|| format!("parsing {}", path.display()))?;
            ensure!(f.consortium == consortium, "{} keeps the CAs of {:?}", dir.display(), f.consortium);
            let key: SigningKeypair = from_hex(&f.member_ca_key, "member CA key")?;
            let member = CertificateAuthority::from_keypair(&f.member_ca, key)?;
            let tls = TlsCa::from_key_der(consortium, &read_secret(&dir.join(TLS_CA_KEY))?)?;
            return Ok(Self { member, tls, next_serial: f.next_serial });
        }
        let member = CertificateAuthority::generate(&member_ca_name(consortium), &mut rand::rngs::OsRng)?;
        let tls = TlsCa::generate(consortium)?;
        write_private(&dir.join(TLS_CA_KEY), &tls.key_der())?;
        let cas = Self { member, tls, next_serial: 1 };
        cas.save(dir, consortium)?;
        Ok(cas)
    }

    /// The CAs kept in `dir` that assembled `consortium` (renewals and later issues).
    pub(super) fn open_kept(dir: &Path, consortium: &ConsortiumFile) -> Result<Self> {
        ensure!(
            dir.join(CA_FILE).exists(),
            "{} keeps no CA: certificates after genesis come from the CAs that assembled the consortium",
            dir.display()
        );
        let cas = Self::open_or_create(dir, &consortium.name)?;
        ensure!(
            to_hex(cas.member.public()) == consortium.member_ca,
            "the member CA in {} is not the one consortium.toml names",
            dir.display()
        );
        // The kept key signs for the CA consortium.toml names (its certificate is made again
        // from the key at each opening, so the key is what is compared, by what it signs).
        let named = hex::decode(&consortium.tls_ca).context("consortium.toml's tls_ca")?;
        let probe = cas.tls.issue(0)?;
        dualchain_consensus::tls::check_identity(&named, &probe, &dualchain_consensus::tls::server_name(0))
            .map_err(|_| anyhow!("the TLS CA in {} is not the one consortium.toml names", dir.display()))?;
        Ok(cas)
    }

    /// A member certificate over a contribution's keys and attribute commitment, valid
    /// from a minute ago until `not_after`, with the next serial.
    pub(super) fn certify_member(&mut self, b: &ContributionBody, now: u64, not_after: u64) -> Result<Certificate> {
        let attributes = b.attribute_set()?;
        let delegating_key: DelegatingPublicKey = from_hex(&b.delegating_key, "delegating key")?;
        let cert = self.member.issue(CertificateFields {
            serial: self.next_serial,
            subject: b.id.clone(),
            role: b.role()?,
            signing_key: b.signing_key()?,
            delegating_key,
            attribute_commitment: attributes.commit(&b.attribute_salt()?),
            not_before: now - 60,
            not_after,
        })?;
        self.next_serial += 1;
        Ok(cert)
    }

    pub(super) fn save(&self, dir: &Path, consortium: &str) -> Result<()> {
        let f = CaFile {
            consortium: consortium.into(),
            member_ca: self.member.public().name.clone(),
            member_ca_key: to_hex(self.member.keypair()),
            next_serial: self.next_serial,
        };
        write_private(&dir.join(CA_FILE), &serde_json::to_vec_pretty(&f)?)
    }
}

/// What `assemble` wrote.
#[derive(Debug)]
pub struct AssembleReport {
    /// (node, institution) in node order.
    pub nodes: Vec<(u8, String)>,
    pub test_consortium: bool,
}

/// Checks the contributions and writes the consortium (see the module docs).
pub fn assemble(opts: &AssembleOptions) -> Result<AssembleReport> {
    ensure!(
        opts.ceremony.is_some() != opts.test_params,
        "say where the Groth16 parameters come from: --ceremony DIR, or --test-params for a test consortium"
    );
    ensure!(!opts.out.join("consortium.toml").exists(), "{} already holds a consortium", opts.out.display());
    let contributions = opts.contributions.iter().map(|p| Contribution::load(p)).collect::<Result<Vec<_>>>()?;
    let ibe = check_contributions(&opts.name, &contributions)?;
    let n = contributions.len();
    ensure!((4..=64).contains(&n), "a consortium needs 4..=64 nodes (n = 3f + 1, f >= 1); {n} contributions given");
    let mut cas = Cas::open_or_create(&opts.ca, &opts.name)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let mut validators = Vec::new();
    let mut members = Vec::new();
    let mut issued = Vec::new();
    for (i, c) in contributions.iter().enumerate() {
        let b = &c.body;
        let node = i as u8;
        let quic: SocketAddr = format!("{}:{}", b.host, b.quic_port)
            .parse()
            .with_context(|| format!("{}'s host {:?} is not an IP address", b.id, b.host))?;
        let tls_cert = cas.tls.certify(node, &hex::decode(&b.tls_public)?)?;
        let api_tls_cert = cas.tls.certify_api(node, &b.host, &hex::decode(&b.api_tls_public)?)?;
        validators.push(ValidatorEntry {
            id: node,
            quic,
            api: format!("https://{}:{}", b.host, b.api_port),
            signing_key: b.validator_key.clone(),
            tls_cert: hex::encode(tls_cert),
        });
        // A validator-only institution: its node, and no member.
        let certificate = if b.validator_only() {
            String::new()
        } else {
            members.push(MemberEntry { id: b.id.clone(), role: b.role.clone(), node });
            to_hex(&cas.certify_member(b, now, now + CERT_VALIDITY_S)?)
        };
        issued.push(IssuedFile {
            id: b.id.clone(),
            node: Some(node),
            certificate,
            api_tls_cert: Some(hex::encode(api_tls_cert)),
            validator: None,
        });
    }
    cas.save(&opts.ca, &opts.name)?;
    let mut rng = ChaCha20Rng::from_entropy();
    let (params, tau, _) = ParamsRequest {
        out: &opts.out,
        supply_records: &opts.supply_records,
        anonymous: opts.anonymous,
        ceremony: opts.ceremony.as_deref(),
        params_cache: opts.params_cache.clone(),
        seeded: false,
    }
    .write(&mut rng)?;
    let kgc = contributions.iter().find(|c| c.body.role == Role::Kgc.as_str()).expect("checked: one KGC");
    let consortium = ConsortiumFile {
        name: opts.name.clone(),
        created_unix: now,
        grant_duration_max_s: GRANT_DURATION_MAX_S,
        revocation_quorum: Some(crate::config::majority(members.len())),
        dissemination: Some(true),
        member_ca: to_hex(cas.member.public()),
        tls_ca: hex::encode(cas.tls.cert_der()),
        ibe_params: to_hex(&ibe),
        abe_public: kgc.body.abe_public.clone().expect("checked: the KGC brings it"),
        test_consortium: tau.is_none().then(|| ceremony::TEST_CONSORTIUM.to_string()),
        params,
        tau,
        validators,
        members,
    };
    write_consortium(&opts.out, &consortium, "dualchain assemble")?;
    for f in &issued {
        f.save(&opts.out, None)?;
    }
    Ok(AssembleReport {
        nodes: issued
            .iter()
            .map(|f| {
                let who = if f.certificate.is_empty() { format!("{} (validator only)", f.id) } else { f.id.clone() };
                (f.node.unwrap_or_default(), who)
            })
            .collect(),
        test_consortium: consortium.test_consortium.is_some(),
    })
}

/// `dualchain renew`'s arguments (the coordinator).
#[derive(Debug, Clone, clap::Args)]
pub struct RenewOptions {
    /// The certificate authorities' directory `assemble` used.
    #[arg(long)]
    pub ca: PathBuf,
    /// The assembled consortium (`consortium.toml`, `issued/`).
    #[arg(long)]
    pub genesis: PathBuf,
    /// The member whose certificate is renewed.
    #[arg(long)]
    pub member: String,
    /// Validity of the new certificate, in days from now.
    #[arg(long, default_value_t = 365)]
    pub days: u64,
}

/// Renews `opts.member`'s certificate from the kept member CA: the same subject, role,
/// keys and attribute commitment, the next serial, a new validity window. Rewrites
/// `issued/<member>.toml`; returns the new certificate's serial and expiry. The member
/// installs it (`dualchain install-certificate`) and its node registers it on chain, where
/// it takes effect at that height; no node restarts.
pub fn renew(opts: &RenewOptions) -> Result<(u64, u64)> {
    ensure!((1..=3650).contains(&opts.days), "--days must be in 1..=3650");
    let consortium = ConsortiumFile::load(&opts.genesis.join("consortium.toml"))?;
    let mut cas = Cas::open_kept(&opts.ca, &consortium)?;
    let path = IssuedFile::path(&opts.genesis, &opts.member);
    let mut issued: IssuedFile = toml::from_str(
        &std::fs::read_to_string(&path)
            .with_context(|| format!("reading {} (is {} a member?)", path.display(), opts.member))?,
    )
    .with_context(|| format!("parsing {}", path.display()))?;
    let old: Certificate = from_hex(&issued.certificate, "member certificate")?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let serial = cas.next_serial.max(old.fields.serial + 1);
    let not_after = now + opts.days * 24 * 3600;
    let cert = cas.member.issue(CertificateFields { serial, not_before: now - 60, not_after, ..old.fields })?;
    cas.next_serial = serial + 1;
    cas.save(&opts.ca, &consortium.name)?;
    issued.certificate = to_hex(&cert);
    issued.save(&opts.genesis, None)?;
    Ok((serial, not_after))
}

/// The checks on one contribution (module docs): signed by the member key it names, for
/// this consortium, its role, attributes, salt and validator key well formed, and an
/// ESKI-IBE link and CP-ABE key exactly where its role brings them. Returns its role.
pub fn check_contribution(consortium: &str, c: &Contribution) -> Result<Role> {
    let b = &c.body;
    c.verify()?;
    ensure!(
        b.consortium == consortium,
        "{}'s contribution is for consortium {:?}, not {consortium:?}",
        b.id,
        b.consortium
    );
    let role = b.role()?;
    b.validator_key()?;
    if b.validator_only() {
        ensure!(
            b.signing_key.is_empty()
                && b.delegating_key.is_empty()
                && b.attributes.is_empty()
                && b.attribute_salt.is_empty()
                && b.ibe.is_none()
                && b.abe_public.is_none(),
            "{} contributed as a validator only and brings a member's keys, attributes or authority links",
            b.id
        );
        return Ok(role);
    }
    b.attribute_set().with_context(|| format!("{}'s attributes", b.id))?;
    b.attribute_salt()?;
    let authority = matches!(role, Role::Kgc | Role::Cpc);
    ensure!(
        b.ibe.is_some() == authority,
        "{} ({role}) {} an ESKI-IBE link",
        b.id,
        if authority { "lacks" } else { "must not bring" }
    );
    ensure!(
        b.abe_public.is_some() == (role == Role::Kgc),
        "{} ({role}) {} the CP-ABE public key",
        b.id,
        if role == Role::Kgc { "lacks" } else { "must not bring" }
    );
    Ok(role)
}

/// Every check on the set of contributions (module docs); returns the ESKI-IBE chain.
pub fn check_contributions(consortium: &str, contributions: &[Contribution]) -> Result<IbePublicParams> {
    let mut seen = HashSet::new();
    for c in contributions {
        let b = &c.body;
        check_contribution(consortium, c)?;
        ensure!(seen.insert(format!("id:{}", b.id)), "{} contributed twice", b.id);
        for (what, key) in [
            ("signing key", &b.signing_key),
            ("validator key", &b.validator_key),
            ("TLS key", &b.tls_public),
            ("API TLS key", &b.api_tls_public),
        ] {
            // A validator-only institution has no signing key.
            if key.is_empty() {
                continue;
            }
            ensure!(seen.insert(format!("key:{key}")), "{}'s {what} is already another contribution's", b.id);
        }
    }
    let of_role = |r: Role| contributions.iter().filter(move |c| c.body.role == r.as_str());
    ensure!(
        of_role(Role::Kgc).count() == 1,
        "a consortium needs exactly one KGC; {} contributed",
        of_role(Role::Kgc).count()
    );
    ensure!(of_role(Role::Cpc).count() >= 1, "a consortium needs at least one CPC; none contributed");
    let mut links: Vec<_> = contributions.iter().filter_map(|c| c.body.ibe.as_ref().map(|l| (l, &c.body.id))).collect();
    links.sort_by_key(|(l, _)| l.index);
    let mut ibe = IbePublicParams { authorities: Vec::new(), s_pub: Vec::new(), y: Vec::new() };
    for (i, (link, id)) in links.iter().enumerate() {
        if (link.index as usize) < i {
            bail!(
                "{} and {id} both claim position {} of the ESKI-IBE chain: it forks",
                ibe.authorities[link.index as usize],
                link.index
            );
        }
        if link.index as usize != i {
            bail!(
                "the ESKI-IBE chain is missing the authority at position {i} ({id} extended position {})",
                link.index as usize - 1
            );
        }
        let (s, y) = link.points()?;
        ibe.authorities.push((*id).clone());
        ibe.s_pub.push(s);
        ibe.y.push(y);
    }
    ensure!(
        ibe.authorities
            .first()
            .and_then(|id| contributions.iter().find(|c| &c.body.id == id))
            .map(|c| c.body.role.as_str())
            == Some(Role::Kgc.as_str()),
        "the ESKI-IBE chain must start with the KGC's link"
    );
    ibe.verify_chain().map_err(|e| anyhow!("the ESKI-IBE chain: {e}"))?;
    Ok(ibe)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::institution::{keygen, KeygenOptions};
    use super::*;

    pub(crate) const NAME: &str = "refusals";

    /// Keys for `specs` (id, role, --ibe-after index) made in `dir`; their contributions.
    pub(crate) fn contribute(dir: &Path, specs: &[(&str, &str, Option<usize>)]) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = Vec::new();
        for (i, (id, role, after)) in specs.iter().enumerate() {
            let p = keygen(&KeygenOptions {
                consortium: NAME.into(),
                id: id.to_string(),
                role: role.to_string(),
                attributes: vec![],
                host: "127.0.0.1".into(),
                quic_port: 7700 + i as u16,
                api_port: 8700 + i as u16,
                ibe_after: after.map(|a| paths[a].clone()),
                dir: dir.join(id),
            })
            .unwrap();
            paths.push(p);
        }
        paths
    }

    /// `c` with its body changed by `f` and signed again by its own member key (an
    /// institution that lies, not a forger).
    pub(crate) fn resigned(
        dir: &Path,
        c: &Contribution,
        f: impl FnOnce(&mut super::super::institution::ContributionBody),
    ) -> Contribution {
        let secrets: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(&c.body.id).join("secrets/keygen.json")).unwrap()).unwrap();
        let signer: SigningKeypair = from_hex(secrets["signer"].as_str().unwrap(), "signer").unwrap();
        let mut body = c.body.clone();
        f(&mut body);
        Contribution::sign(body, &signer)
    }

    fn why(cs: &[Contribution]) -> String {
        format!("{:#}", check_contributions(NAME, cs).unwrap_err())
    }

    #[test]
    fn assembly_refuses_forged_duplicated_or_incomplete_contributions() {
        let tmp = tempfile::tempdir().unwrap();
        let specs = [
            ("kgc", "kgc", None),
            ("hospital-a", "hospital", None),
            ("cpc-1", "cpc", Some(0)),
            ("cpc-2", "cpc", Some(2)),
            ("cpc-x", "cpc", Some(0)),
        ];
        let paths = contribute(tmp.path(), &specs);
        let all: Vec<Contribution> = paths.iter().map(|p| Contribution::load(p).unwrap()).collect();
        let (kgc, hosp, cpc1, cpc2, cpcx) = (&all[0], &all[1], &all[2], &all[3], &all[4]);
        let ibe = check_contributions(NAME, &[kgc.clone(), hosp.clone(), cpc1.clone(), cpc2.clone()]).unwrap();
        assert_eq!(ibe.authorities, ["kgc", "cpc-1", "cpc-2"]);

        // Signed by the wrong key: the body names another member's key.
        let mut forged = hosp.clone();
        forged.body.signing_key = kgc.body.signing_key.clone();
        assert!(format!("{:#}", forged.verify().unwrap_err()).contains("does not verify"));
        assert!(why(&[kgc.clone(), forged, cpc1.clone()]).contains("does not verify"));
        // A body changed after signing (another validator key slipped in).
        let mut swapped = hosp.clone();
        swapped.body.validator_key = cpc1.body.validator_key.clone();
        assert!(swapped.verify().is_err());
        // Duplicated identity, reused keys.
        assert!(why(&[kgc.clone(), hosp.clone(), hosp.clone(), cpc1.clone()]).contains("hospital-a contributed twice"));
        let same_id = resigned(tmp.path(), cpc2, |b| b.id = "hospital-a".into());
        assert!(why(&[kgc.clone(), hosp.clone(), cpc1.clone(), same_id]).contains("contributed twice"));
        // Missing authorities: no KGC; no CPC; a link of the chain skipped; a forked chain.
        assert!(why(&[hosp.clone(), cpc1.clone()]).contains("exactly one KGC"));
        assert!(why(&[kgc.clone(), hosp.clone()]).contains("at least one CPC"));
        assert!(why(&[kgc.clone(), hosp.clone(), cpc2.clone()]).contains("missing the authority at position 1"));
        assert!(why(&[kgc.clone(), cpc1.clone(), cpcx.clone()]).contains("forks"));
        // A link that does not extend the one before it (cpc-2 re-based on the KGC's).
        let rogue = resigned(tmp.path(), cpc2, |b| b.ibe.as_mut().unwrap().index = 1);
        assert!(why(&[kgc.clone(), hosp.clone(), rogue]).contains("link 1 (cpc-2) does not verify"));
        // Roles that do not match what they bring.
        let no_link = resigned(tmp.path(), cpc1, |b| b.ibe = None);
        assert!(why(&[kgc.clone(), no_link]).contains("lacks an ESKI-IBE link"));
        let other = resigned(tmp.path(), hosp, |b| b.consortium = "another".into());
        assert!(why(&[kgc.clone(), other, cpc1.clone()]).contains("for consortium \"another\""));
    }

    #[test]
    fn a_validator_only_contribution_brings_no_member_and_is_signed_by_its_consensus_key() {
        let tmp = tempfile::tempdir().unwrap();
        let specs = [("kgc", "kgc", None), ("cpc-1", "cpc", Some(0)), ("operator", "validator", None)];
        let all: Vec<Contribution> =
            contribute(tmp.path(), &specs).iter().map(|p| Contribution::load(p).unwrap()).collect();
        let ibe = check_contributions(NAME, &all).unwrap();
        assert_eq!(ibe.authorities, ["kgc", "cpc-1"]);
        let op = &all[2];
        assert!(op.body.validator_only() && op.body.signing_key.is_empty() && op.body.delegating_key.is_empty());
        assert!(!tmp.path().join("operator/secrets/keygen.json").exists(), "no member secrets made");
        // One that also brings a member's key, signed again with its own consensus key:
        // refused. One whose signature is not its consensus key's: refused.
        let key: SigningKeypair = crate::files::from_hex(
            std::fs::read_to_string(tmp.path().join("operator/secrets/validator.key")).unwrap().trim(),
            "validator key",
        )
        .unwrap();
        let mut body = op.body.clone();
        body.signing_key = all[0].body.signing_key.clone();
        let sneaky = Contribution::sign(body, &key);
        assert!(why(&[all[0].clone(), all[1].clone(), sneaky]).contains("as a validator only"));
        let mut swapped = op.clone();
        swapped.body.validator_key = all[0].body.validator_key.clone();
        assert!(why(&[all[0].clone(), all[1].clone(), swapped]).contains("does not verify under the validator key"));
        // keygen refuses attributes or a place in the IBE chain for it.
        let opts = |attributes: Vec<String>| KeygenOptions {
            consortium: NAME.into(),
            id: "operator-2".into(),
            role: "validator".into(),
            attributes,
            host: "127.0.0.1".into(),
            quic_port: 1,
            api_port: 2,
            ibe_after: None,
            dir: tmp.path().join("operator-2"),
        };
        assert!(format!("{:#}", keygen(&opts(vec!["dept:icu".into()])).unwrap_err()).contains("hosts no member"));
        keygen(&opts(vec![])).unwrap();
    }

    #[test]
    fn keygen_never_overwrites_keys_and_a_cpc_extends_the_chain() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = contribute(tmp.path(), &[("kgc", "kgc", None)]);
        let opts = |id: &str, role: &str, after: Option<PathBuf>| KeygenOptions {
            consortium: NAME.into(),
            id: id.into(),
            role: role.into(),
            attributes: vec![],
            host: "127.0.0.1".into(),
            quic_port: 1,
            api_port: 2,
            ibe_after: after,
            dir: tmp.path().join(id),
        };
        let again = format!("{:#}", keygen(&opts("kgc", "kgc", None)).unwrap_err());
        assert!(again.contains("never overwrites"), "{again}");
        assert!(format!("{:#}", keygen(&opts("c", "cpc", None)).unwrap_err()).contains("--ibe-after"));
        assert!(keygen(&opts("h", "hospital", Some(paths[0].clone()))).is_err());
        let mine = std::fs::metadata(tmp.path().join("kgc/secrets/keygen.json")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(mine.permissions().mode() & 0o777, 0o600);
        }
        let text = std::fs::read_to_string(&paths[0]).unwrap();
        let secrets = std::fs::read_to_string(tmp.path().join("kgc/secrets/keygen.json")).unwrap();
        let s: serde_json::Value = serde_json::from_str(&secrets).unwrap();
        for k in ["signer", "dsk", "ibe_authority", "abe_master"] {
            let v = s[k].as_str().unwrap();
            assert!(!text.contains(v), "the contribution holds the {k}");
        }
    }
}
