//! Genesis without a trusted dealer, from an institution's side: `dualchain keygen` makes
//! its keys on its own machine, and `dualchain join` checks what the coordinator assembled
//! against them before the node starts (the `assemble` module is the coordinator's side).
//!
//! `keygen` writes, under the institution's directory:
//! - `secrets/` (mode 0600): the validator's consensus key, the consensus and API TLS keys,
//!   and `keygen.json` with the member's signing and CBSRE delegating keys, its attribute
//!   salt, and, for an authority, its ESKI-IBE share (the KGC and every CPC) and the CP-ABE
//!   master key (the KGC). None of these leaves the machine.
//! - `contribution.toml`: the public part (keys, addresses, the authority's link of the
//!   ESKI-IBE master-key chain, the KGC's CP-ABE public key), signed with the member's
//!   key. It also names the member's attributes and their salt, which the certificate
//!   authority checks before it certifies their commitment: send it to the coordinator,
//!   not to everyone.
//!
//! A **validator-only institution** (`--role validator`: a node that orders and keeps the
//! ledger and hosts no member, for example an operator trusted by the others to add a
//! fault domain) makes the validator's keys only: its contribution names no member keys
//! and no attributes, is signed with its consensus key, and `join` writes a `node.toml`
//! without a member. (Before, such a node needed `dualchain init`, which sees every
//! secret.)
//!
//! The ESKI-IBE chain is built in turn, as in DESIGN.md §4.2: the KGC's keygen starts it
//! (link 0); each CPC's keygen extends the link of the authority before it (`--ibe-after`
//! that authority's contribution). No party ever holds another's share.
//!
//! `join` reads the assembled consortium (`consortium.toml`, `params/`, `issued/<id>.toml`)
//! and refuses it unless it lists this institution exactly as its contribution said: its
//! validator key and addresses, TLS certificates for its own keys chaining to the
//! consortium's CA, a member certificate over its keys and attribute commitment from the
//! member CA, its link of the IBE chain and (the KGC) its CP-ABE public key. Only then does
//! it write `node.toml` and `secrets/member.json`. The member's ESKI-IBE key and CP-ABE key
//! are obtained when the node first runs, from the authorities' nodes (the blinded issuing
//! round trip over the API; see `crate::enrollment`).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, ensure, Context, Result};
use blstrs::{G1Affine, G2Affine};
use dualchain_consensus::tls::{self as ctls, NodeTls, TlsKey};
use dualchain_crypto::abe::ac17::Ac17;
use dualchain_crypto::abe::AbeScheme;
use dualchain_crypto::cbsre::DelegatingSecretKey;
use dualchain_crypto::cert::{AttributeSet, CaPublicKey, Certificate, NoRevocations, Role};
use dualchain_crypto::ibe::{AuthoritySecret, IbePublicParams};
use dualchain_crypto::sign::{PublicKey, SigningKeypair};
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::{node_config, node_file, NodeLayout};
use crate::config::{ConsortiumFile, NodeConfig, ValidatorEntry};
use crate::files::{from_hex, read_secret, to_hex, write_private};
use crate::member::{role_from_str, MemberFile, ATTRIBUTE_SALT_LEN};

/// Signing use of a contribution's signature.
const CONTRIBUTION_SIGN_USE: &str = "genesis-contribution";

/// `dualchain keygen`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct KeygenOptions {
    /// The consortium's name, as the coordinator will assemble it.
    #[arg(long)]
    pub consortium: String,
    /// The member's id (letters, digits, '-' or '_').
    #[arg(long)]
    pub id: String,
    /// kgc, hospital, research or cpc; or validator, for a node that hosts no member.
    #[arg(long)]
    pub role: String,
    /// Attributes the member is certified with (`role:<role>` is added).
    #[arg(long = "attr", value_delimiter = ',')]
    pub attributes: Vec<String>,
    /// The IP address (or DNS name) the node is reached at.
    #[arg(long)]
    pub host: String,
    #[arg(long, default_value_t = 7700)]
    pub quic_port: u16,
    #[arg(long, default_value_t = 8700)]
    pub api_port: u16,
    /// A CPC: the contribution of the authority before it in the ESKI-IBE chain (the KGC's
    /// for the first CPC).
    #[arg(long)]
    pub ibe_after: Option<PathBuf>,
    /// The institution's directory (created; must not hold keys yet).
    #[arg(long)]
    pub dir: PathBuf,
}

/// One authority's link of the ESKI-IBE chain: `S_i = s_i·P1`, `Y_i = s_i·Y_(i−1)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IbeLink {
    pub index: u8,
    /// Compressed G1 point (hex).
    pub s_pub: String,
    /// Compressed G2 point (hex).
    pub y: String,
}

impl IbeLink {
    fn of(index: usize, s: &G1Affine, y: &G2Affine) -> Self {
        Self { index: index as u8, s_pub: hex::encode(s.to_compressed()), y: hex::encode(y.to_compressed()) }
    }

    pub fn points(&self) -> Result<(G1Affine, G2Affine)> {
        let mut s = [0u8; 48];
        let mut y = [0u8; 96];
        hex::decode_to_slice(&self.s_pub, &mut s).map_err(|e| anyhow!("IBE link S: {e}"))?;
        hex::decode_to_slice(&self.y, &mut y).map_err(|e| anyhow!("IBE link Y: {e}"))?;
        let s = Option::from(G1Affine::from_compressed(&s)).ok_or_else(|| anyhow!("IBE link S is not a G1 point"))?;
        let y = Option::from(G2Affine::from_compressed(&y)).ok_or_else(|| anyhow!("IBE link Y is not a G2 point"))?;
        Ok((s, y))
    }
}

/// What an institution publishes to the coordinator (signed by its member key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContributionBody {
    pub consortium: String,
    pub id: String,
    /// A member's role, or `validator` for a validator-only institution (whose member
    /// fields are empty).
    pub role: String,
    /// For the certificate authority to check before certifying their commitment.
    pub attributes: Vec<String>,
    pub attribute_salt: String,
    pub host: String,
    pub quic_port: u16,
    pub api_port: u16,
    /// The member's Ed25519 key (hex of its 32 bytes).
    pub signing_key: String,
    /// The member's CBSRE delegating public key (hex of its encoding).
    pub delegating_key: String,
    /// The validator's Ed25519 consensus key.
    pub validator_key: String,
    /// Raw P-256 public keys of the consensus and API TLS identities.
    pub tls_public: String,
    pub api_tls_public: String,
    /// An authority's link of the ESKI-IBE chain.
    #[serde(default)]
    pub ibe: Option<IbeLink>,
    /// The KGC's CP-ABE public key.
    #[serde(default)]
    pub abe_public: Option<String>,
}

/// A contribution file (`contribution.toml`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contribution {
    pub body: ContributionBody,
    /// Ed25519 signature by `body.signing_key` over the body's JSON.
    pub signature: String,
}

impl ContributionBody {
    fn signed_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a contribution serializes")
    }

    pub fn role(&self) -> Result<Role> {
        role_from_str(&self.role)
    }

    /// A validator-only institution's: no member keys, no attributes.
    pub fn validator_only(&self) -> bool {
        self.role == Role::Validator.as_str()
    }

    pub fn signing_key(&self) -> Result<PublicKey> {
        raw_key(&self.signing_key, "signing key")
    }

    pub fn validator_key(&self) -> Result<PublicKey> {
        raw_key(&self.validator_key, "validator key")
    }

    pub fn attribute_set(&self) -> Result<AttributeSet> {
        let set = AttributeSet::new(self.attributes.iter().map(String::as_str))?;
        dualchain_ledger::policy::check_attributes(&set)?;
        Ok(set)
    }

    pub fn attribute_salt(&self) -> Result<[u8; ATTRIBUTE_SALT_LEN]> {
        let mut salt = [0u8; ATTRIBUTE_SALT_LEN];
        hex::decode_to_slice(&self.attribute_salt, &mut salt).map_err(|e| anyhow!("attribute salt: {e}"))?;
        Ok(salt)
    }
}

fn raw_key(hex_key: &str, what: &str) -> Result<PublicKey> {
    let mut k = [0u8; 32];
    hex::decode_to_slice(hex_key, &mut k).map_err(|e| anyhow!("{what}: {e}"))?;
    Ok(PublicKey::from_raw(&k)?)
}

impl Contribution {
    /// Reads a contribution file; [`Contribution::verify`] checks its signature (assembly
    /// verifies every contribution it is given).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// The signature is the member key's over this body (a validator-only institution's:
    /// the consensus key's).
    pub fn verify(&self) -> Result<()> {
        let mut sig = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut sig).map_err(|e| anyhow!("signature: {e}"))?;
        let (key, what) = if self.body.validator_only() {
            (self.body.validator_key()?, "validator key")
        } else {
            (self.body.signing_key()?, "signing key")
        };
        ensure!(
            key.verify(CONTRIBUTION_SIGN_USE, &self.body.signed_bytes(), &sig),
            "the signature of {}'s contribution does not verify under the {what} it names",
            self.body.id
        );
        Ok(())
    }

    pub(crate) fn sign(body: ContributionBody, signer: &SigningKeypair) -> Self {
        let signature = hex::encode(signer.sign(CONTRIBUTION_SIGN_USE, &body.signed_bytes()));
        Self { body, signature }
    }

    fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(
            path,
            format!(
                "# dualchain genesis contribution of {}: public keys for the coordinator to assemble.\n\
                 # It names the member's attributes and their salt for the certificate authority to\n\
                 # check: send it to the coordinator, not to every member.\n{}",
                self.body.id,
                toml::to_string_pretty(self)?
            ),
        )
        .with_context(|| format!("writing {}", path.display()))
    }
}

/// The secrets `keygen` made (`secrets/keygen.json`, 0600), until `join` turns them into
/// `secrets/member.json`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeygenSecrets {
    signer: String,
    dsk: String,
    #[serde(default)]
    ibe_authority: Option<String>,
    #[serde(default)]
    abe_master: Option<String>,
}

const CONTRIBUTION_FILE: &str = "contribution.toml";
const KEYGEN_SECRETS: &str = "secrets/keygen.json";

/// Makes an institution's keys in `opts.dir`; returns the contribution's path.
pub fn keygen(opts: &KeygenOptions) -> Result<PathBuf> {
    let role = role_from_str(&opts.role)?;
    ensure!(!opts.host.is_empty(), "--host names the address the node is reached at");
    let dir = &opts.dir;
    ensure!(
        !dir.join(CONTRIBUTION_FILE).exists() && !dir.join("secrets").exists(),
        "{} already holds keys; keygen never overwrites them",
        dir.display()
    );
    if role == Role::Validator {
        return keygen_validator(opts);
    }
    let spec = super::layout::Spec::new(&opts.id, role, &opts.attributes)?;
    ensure!(
        (role == Role::Cpc) == opts.ibe_after.is_some(),
        "{}",
        if role == Role::Cpc {
            "a CPC extends the ESKI-IBE chain: --ibe-after names the contribution of the authority before it"
        } else {
            "only a CPC takes --ibe-after (the KGC starts the ESKI-IBE chain)"
        }
    );
    let mut rng = OsRng;
    let signer = SigningKeypair::generate(&mut rng);
    let dsk = DelegatingSecretKey::generate(&mut rng);
    let validator = SigningKeypair::generate(&mut rng);
    let tls = TlsKey::generate()?;
    let api_tls = TlsKey::generate()?;
    let mut salt = [0u8; ATTRIBUTE_SALT_LEN];
    rng.fill_bytes(&mut salt);
    let (mut ibe, mut ibe_authority, mut abe_public, mut abe_master) = (None, None, None, None);
    match role {
        Role::Kgc => {
            let share = AuthoritySecret::generate(&mut rng, 0, &spec.id)?;
            let (s, y) = share.contribute(None);
            ibe = Some(IbeLink::of(0, &s, &y));
            ibe_authority = Some(to_hex(&share));
            let (pk, msk) = Ac17::setup()?;
            abe_public = Some(to_hex(&pk));
            abe_master = Some(to_hex(&msk));
        }
        Role::Cpc => {
            let path = opts.ibe_after.as_ref().expect("checked above");
            let prev = Contribution::load(path)?;
            prev.verify().with_context(|| format!("{} is not a valid contribution", path.display()))?;
            ensure!(prev.body.consortium == opts.consortium, "{} is for another consortium", path.display());
            let link = prev.body.ibe.as_ref().ok_or_else(|| {
                anyhow!("{} is {}'s, which is not an ESKI-IBE authority", path.display(), prev.body.id)
            })?;
            let (_, prev_y) = link.points()?;
            let index = link.index as usize + 1;
            let share = AuthoritySecret::generate(&mut rng, index, &spec.id)?;
            let (s, y) = share.contribute(Some(&prev_y));
            ibe = Some(IbeLink::of(index, &s, &y));
            ibe_authority = Some(to_hex(&share));
        }
        _ => {}
    }
    let body = ContributionBody {
        consortium: opts.consortium.clone(),
        id: spec.id.clone(),
        role: role.as_str().into(),
        attributes: spec.attributes.clone(),
        attribute_salt: hex::encode(salt),
        host: opts.host.clone(),
        quic_port: opts.quic_port,
        api_port: opts.api_port,
        signing_key: hex::encode(signer.public().as_bytes()),
        delegating_key: to_hex(&dsk.public()),
        validator_key: hex::encode(validator.public().as_bytes()),
        tls_public: hex::encode(&tls.public_raw),
        api_tls_public: hex::encode(&api_tls.public_raw),
        ibe,
        abe_public,
    };
    write_private(&dir.join("secrets/validator.key"), to_hex(&validator).as_bytes())?;
    write_private(&dir.join("secrets/tls.key"), &tls.key_der)?;
    write_private(&dir.join("secrets/api-tls.key"), &api_tls.key_der)?;
    let secrets = KeygenSecrets { signer: to_hex(&signer), dsk: to_hex(&dsk), ibe_authority, abe_master };
    write_private(&dir.join(KEYGEN_SECRETS), &serde_json::to_vec_pretty(&secrets)?)?;
    let path = dir.join(CONTRIBUTION_FILE);
    Contribution::sign(body, &signer).save(&path)?;
    Ok(path)
}

/// A validator-only institution's keys: the consensus key and the two TLS keys; the
/// contribution is signed with the consensus key.
fn keygen_validator(opts: &KeygenOptions) -> Result<PathBuf> {
    super::layout::Spec::new(&opts.id, Role::Hospital, &[]).context("the institution's id")?;
    ensure!(
        opts.attributes.is_empty() && opts.ibe_after.is_none(),
        "a validator-only institution hosts no member: no attributes, no --ibe-after"
    );
    let validator = SigningKeypair::generate(&mut OsRng);
    let tls = TlsKey::generate()?;
    let api_tls = TlsKey::generate()?;
    let body = ContributionBody {
        consortium: opts.consortium.clone(),
        id: opts.id.clone(),
        role: Role::Validator.as_str().into(),
        attributes: Vec::new(),
        attribute_salt: String::new(),
        host: opts.host.clone(),
        quic_port: opts.quic_port,
        api_port: opts.api_port,
        signing_key: String::new(),
        delegating_key: String::new(),
        validator_key: hex::encode(validator.public().as_bytes()),
        tls_public: hex::encode(&tls.public_raw),
        api_tls_public: hex::encode(&api_tls.public_raw),
        ibe: None,
        abe_public: None,
    };
    let dir = &opts.dir;
    write_private(&dir.join("secrets/validator.key"), to_hex(&validator).as_bytes())?;
    write_private(&dir.join("secrets/tls.key"), &tls.key_der)?;
    write_private(&dir.join("secrets/api-tls.key"), &api_tls.key_der)?;
    let path = dir.join(CONTRIBUTION_FILE);
    Contribution::sign(body, &validator).save(&path)?;
    Ok(path)
}

/// What the coordinator issues an institution beside `consortium.toml`
/// (`issued/<id>.toml`, public).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuedFile {
    pub id: String,
    /// The validator that hosts the member (for a member issued after genesis, the
    /// validator slot `dualchain issue` gave it, which `validator` describes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u8>,
    /// The member certificate (hex of its encoding; empty for a validator-only
    /// institution).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub certificate: String,
    /// The API's HTTPS certificate (hex of DER; absent with `node`); a genesis validator's
    /// consensus TLS certificate is in `consortium.toml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_tls_cert: Option<String>,
    /// A member issued after genesis: its node's validator entry (id above every earlier
    /// one, consensus key, addresses, consensus TLS certificate), which consortium.toml
    /// does not list. It votes once a validator set change names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator: Option<ValidatorEntry>,
}

impl IssuedFile {
    /// The path of `member`'s file in the coordinator's output `genesis`.
    pub fn path(genesis: &Path, member: &str) -> PathBuf {
        genesis.join("issued").join(format!("{member}.toml"))
    }

    /// Writes it to [`IssuedFile::path`], after `header` (comment lines) if given.
    pub fn save(&self, genesis: &Path, header: Option<&str>) -> Result<PathBuf> {
        let path = Self::path(genesis, &self.id);
        std::fs::create_dir_all(path.parent().expect("a file in issued/"))?;
        let text = format!("{}{}", header.unwrap_or_default(), toml::to_string_pretty(self)?);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

/// `dualchain join`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct JoinOptions {
    /// The institution's directory (as `keygen` left it).
    #[arg(long)]
    pub dir: PathBuf,
    /// The coordinator's output: `consortium.toml`, `params/` and `issued/`.
    #[arg(long)]
    pub genesis: PathBuf,
    /// Consensus timing preset: lan, wan or loopback.
    #[arg(long, default_value = "lan")]
    pub preset: String,
    /// The CPC this hospital's datasets go to by default.
    #[arg(long)]
    pub default_cpc: Option<String>,
}

/// Checks the assembled consortium against this institution's contribution and keys, then
/// writes its `node.toml`, `secrets/member.json`, and copies of the public files.
pub fn join(opts: &JoinOptions) -> Result<u8> {
    let dir = &opts.dir;
    ensure!(
        !dir.join("secrets/member.json").exists() && !dir.join("node.toml").exists(),
        "{} has joined already",
        dir.display()
    );
    let own = Contribution::load(&dir.join(CONTRIBUTION_FILE))?;
    own.verify()?;
    let secrets: Option<KeygenSecrets> = if own.body.validator_only() {
        None
    } else {
        Some(
            serde_json::from_slice(&read_secret(&dir.join(KEYGEN_SECRETS))?)
                .with_context(|| format!("parsing {}", dir.join(KEYGEN_SECRETS).display()))?,
        )
    };
    let consortium_path = opts.genesis.join("consortium.toml");
    let consortium = ConsortiumFile::load(&consortium_path)?;
    let issued: IssuedFile = {
        let path = IssuedFile::path(&opts.genesis, &own.body.id);
        toml::from_str(&std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?)
            .with_context(|| format!("parsing {}", path.display()))?
    };
    let Some(api_tls_cert) = issued.api_tls_cert.clone() else {
        bail!(
            "issued/{}.toml names no node: {} was certified without a validator slot; the coordinator \
             issues it again with one (dualchain issue)",
            own.body.id,
            own.body.id
        );
    };
    let node = match (&issued.validator, &secrets) {
        (None, None) => check_validator_only(&consortium, &own.body, &issued, dir).with_context(|| {
            format!("the consortium in {} does not list {} as contributed", opts.genesis.display(), own.body.id)
        })?,
        (None, Some(secrets)) => check_assembly(&consortium, &own.body, &issued, dir, secrets).with_context(|| {
            format!("the consortium in {} does not list {} as contributed", opts.genesis.display(), own.body.id)
        })?,
        (Some(v), Some(secrets)) => check_issued_later(&consortium, &own.body, &issued, v, dir, secrets)
            .with_context(|| format!("issued/{}.toml is not what {} contributed", own.body.id, own.body.id))?,
        (Some(_), None) => bail!("a validator-only institution is not issued a member slot after genesis"),
    };
    // Public files, copied so that the node's directory is complete on its own.
    std::fs::copy(&consortium_path, dir.join("consortium.toml"))?;
    let params_src = opts.genesis.join("params");
    let params_dst = dir.join("params");
    std::fs::create_dir_all(&params_dst)?;
    for e in std::fs::read_dir(&params_src).with_context(|| format!("reading {}", params_src.display()))? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), params_dst.join(e.file_name()))?;
        }
    }
    std::fs::write(dir.join("api-tls.der"), hex::decode(&api_tls_cert)?)?;
    // A validator-only institution's node hosts no member.
    let member = secrets.is_some();
    if let Some(secrets) = secrets {
        write_member_file(dir, &own.body, &issued, secrets)?;
    }
    let default_cpc = opts.default_cpc.clone().or_else(|| {
        (own.body.role == Role::Hospital.as_str())
            .then(|| consortium.members.iter().find(|m| m.role == Role::Cpc.as_str()).map(|m| m.id.clone()))
            .flatten()
    });
    let cfg = node_config(&NodeLayout {
        node,
        host: &own.body.host,
        api_port: own.body.api_port,
        preset: &opts.preset,
        member,
        api_tls: true,
        default_cpc: &default_cpc,
        consortium: "consortium.toml",
        params_dir: "params",
    })?;
    let cfg = NodeConfig { joined: issued.validator.clone(), ..cfg };
    std::fs::write(dir.join("node.toml"), node_file::node_toml(&cfg)?)?;
    Ok(node)
}

/// `secrets/member.json` from what keygen kept and the issued certificate (checked to open
/// to those keys); `secrets/keygen.json` is deleted.
fn write_member_file(dir: &Path, own: &ContributionBody, issued: &IssuedFile, secrets: KeygenSecrets) -> Result<()> {
    let file = MemberFile {
        id: own.id.clone(),
        role: own.role.clone(),
        signer: secrets.signer,
        dsk: secrets.dsk,
        attributes: own.attributes.clone(),
        attribute_salt: own.attribute_salt.clone(),
        certificate: issued.certificate.clone(),
        ibe_key: None,
        abe_key: None,
        ibe_authority: secrets.ibe_authority,
        abe_master: secrets.abe_master,
        credentials: Vec::new(),
        anonymous_credentials: Vec::new(),
    };
    file.member().context("the issued certificate does not open to this member's keys")?;
    write_private(&dir.join("secrets/member.json"), &serde_json::to_vec_pretty(&file)?)?;
    std::fs::remove_file(dir.join(KEYGEN_SECRETS))?;
    Ok(())
}

/// Every check `join` makes; returns the node that hosts this institution.
fn check_assembly(
    c: &ConsortiumFile,
    own: &ContributionBody,
    issued: &IssuedFile,
    dir: &Path,
    secrets: &KeygenSecrets,
) -> Result<u8> {
    ensure!(c.name == own.consortium, "the consortium is {:?}, not {:?}", c.name, own.consortium);
    let entry = c.member(&own.id).ok_or_else(|| anyhow!("{} is not a member", own.id))?;
    ensure!(entry.role == own.role, "{} is listed as {}, not {}", own.id, entry.role, own.role);
    ensure!(issued.id == own.id && issued.node == Some(entry.node), "issued/{}.toml is for another member", own.id);
    let node = entry.node;
    check_validator(c, own, issued, &c.validators[node as usize], dir)?;
    check_member_certificate(c, own, issued, secrets)?;
    Ok(node)
}

/// `join`'s checks for a validator-only institution: a genesis validator entry with its
/// consensus key, addresses and TLS certificates for its own keys, and no member under its
/// id.
fn check_validator_only(c: &ConsortiumFile, own: &ContributionBody, issued: &IssuedFile, dir: &Path) -> Result<u8> {
    ensure!(c.name == own.consortium, "the consortium is {:?}, not {:?}", c.name, own.consortium);
    ensure!(c.member(&own.id).is_none(), "{} is listed as a member; it contributed as a validator only", own.id);
    let v = c
        .validators
        .iter()
        .find(|v| v.signing_key == own.validator_key)
        .ok_or_else(|| anyhow!("no validator has our consensus key"))?;
    ensure!(
        issued.id == own.id && issued.node == Some(v.id) && issued.certificate.is_empty(),
        "issued/{}.toml is for another institution",
        own.id
    );
    check_validator(c, own, issued, v, dir)?;
    Ok(v.id)
}

/// `join`'s checks for a member certified after genesis with a validator slot of its own
/// (`dualchain issue`): the founders' checks, against the slot in `issued/<id>.toml`; the
/// member is no founder.
fn check_issued_later(
    c: &ConsortiumFile,
    own: &ContributionBody,
    issued: &IssuedFile,
    v: &ValidatorEntry,
    dir: &Path,
    secrets: &KeygenSecrets,
) -> Result<u8> {
    ensure!(c.name == own.consortium, "the consortium is {:?}, not {:?}", c.name, own.consortium);
    ensure!(c.member(&own.id).is_none(), "{} is a founder: consortium.toml hosts it", own.id);
    ensure!(issued.id == own.id && issued.node == Some(v.id), "issued/{}.toml is for another member", own.id);
    ensure!(
        v.id as usize >= c.validators.len(),
        "validator {} is a genesis validator; a member issued later gets a new slot",
        v.id
    );
    check_validator(c, own, issued, v, dir)?;
    check_member_certificate(c, own, issued, secrets)?;
    Ok(v.id)
}

/// The validator entry is this institution's: its consensus key, addresses, and TLS
/// certificates from the consortium's CA for its own TLS keys.
fn check_validator(
    c: &ConsortiumFile,
    own: &ContributionBody,
    issued: &IssuedFile,
    v: &ValidatorEntry,
    dir: &Path,
) -> Result<()> {
    let node = v.id;
    ensure!(v.signing_key == own.validator_key, "node {node}'s validator key is not ours");
    ensure!(
        v.quic.port() == own.quic_port && v.quic.ip().to_string() == own.host,
        "node {node}'s QUIC address is {}, not {}:{}",
        v.quic,
        own.host,
        own.quic_port
    );
    let api = format!("https://{}:{}", own.host, own.api_port);
    ensure!(v.api == api, "node {node}'s API is {}, not {api}", v.api);
    let ca_der = hex::decode(&c.tls_ca).context("tls_ca")?;
    let tls = NodeTls { cert_der: hex::decode(&v.tls_cert)?, key_der: read_secret(&dir.join("secrets/tls.key"))? };
    ctls::check_identity(&ca_der, &tls, &ctls::server_name(node)).context("the consensus TLS certificate")?;
    let api_tls = NodeTls {
        cert_der: hex::decode(issued.api_tls_cert.as_deref().unwrap_or_default())?,
        key_der: read_secret(&dir.join("secrets/api-tls.key"))?,
    };
    ctls::check_identity(&ca_der, &api_tls, &own.host).context("the API's TLS certificate")?;
    Ok(())
}

/// The member certificate certifies this institution's keys and attributes, the ESKI-IBE
/// chain and the CP-ABE key are the ones it contributed (for an authority).
fn check_member_certificate(
    c: &ConsortiumFile,
    own: &ContributionBody,
    issued: &IssuedFile,
    secrets: &KeygenSecrets,
) -> Result<()> {
    let ca: CaPublicKey = from_hex(&c.member_ca, "member CA")?;
    let cert: Certificate = from_hex(&issued.certificate, "member certificate")?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    cert.verify(&ca, now, &NoRevocations).context("the member certificate does not verify under the member CA")?;
    let f = &cert.fields;
    ensure!(f.subject == own.id && f.role.as_str() == own.role, "the member certificate names someone else");
    ensure!(
        hex::encode(f.signing_key.as_bytes()) == own.signing_key,
        "the member certificate certifies another signing key"
    );
    ensure!(to_hex(&f.delegating_key) == own.delegating_key, "the member certificate certifies another delegating key");
    ensure!(
        f.attribute_commitment == own.attribute_set()?.commit(&own.attribute_salt()?),
        "the member certificate commits to other attributes"
    );
    let ibe: IbePublicParams = from_hex(&c.ibe_params, "IBE parameters")?;
    ibe.verify_chain().context("the ESKI-IBE chain")?;
    if let Some(link) = &own.ibe {
        let i = link.index as usize;
        let (s, y) = link.points()?;
        ensure!(
            ibe.authorities.get(i) == Some(&own.id) && ibe.s_pub[i] == s && ibe.y[i] == y,
            "the ESKI-IBE chain does not hold our link at position {i}"
        );
        ensure!(secrets.ibe_authority.is_some(), "our ESKI-IBE share is missing from {KEYGEN_SECRETS}");
    } else if ibe.authorities.contains(&own.id) {
        bail!("the ESKI-IBE chain lists us as an authority");
    }
    if let Some(pk) = &own.abe_public {
        ensure!(&c.abe_public == pk, "the CP-ABE public key is not the one our KGC made");
    }
    Ok(())
}

/// `dualchain install-certificate`'s arguments (an institution, after a renewal).
#[derive(Debug, Clone, clap::Args)]
pub struct InstallOptions {
    /// The node's configuration (its `secrets.member` file receives the certificate).
    #[arg(long)]
    pub config: PathBuf,
    /// The coordinator's `issued/<member>.toml` with the renewed certificate.
    #[arg(long)]
    pub issued: PathBuf,
}

/// Installs a renewed member certificate into the node's member file, after checking that
/// it verifies under the consortium's member CA, certifies this member's keys and
/// attribute commitment, and has a higher serial than the one held. A running node
/// registers it on chain within a minute (`agents::registration::follow_renewals`).
/// Returns the new serial and expiry.
pub fn install_certificate(opts: &InstallOptions) -> Result<(u64, u64)> {
    let cfg = crate::config::NodeConfig::load(&opts.config)?;
    let path = cfg.path(cfg.secrets.member.as_ref().ok_or_else(|| anyhow!("this node hosts no member"))?);
    let mut file: MemberFile =
        serde_json::from_slice(&read_secret(&path)?).with_context(|| format!("parsing {}", path.display()))?;
    let held = file.member()?;
    let issued: IssuedFile = toml::from_str(
        &std::fs::read_to_string(&opts.issued).with_context(|| format!("reading {}", opts.issued.display()))?,
    )
    .with_context(|| format!("parsing {}", opts.issued.display()))?;
    ensure!(issued.id == held.id, "{} is {}'s, not {}'s", opts.issued.display(), issued.id, held.id);
    let consortium = ConsortiumFile::load(&cfg.path(&cfg.consortium))?;
    let ca: CaPublicKey = from_hex(&consortium.member_ca, "member CA")?;
    let cert: Certificate = from_hex(&issued.certificate, "member certificate")?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    cert.verify(&ca, now, &NoRevocations).context("the renewed certificate does not verify under the member CA")?;
    let (old, new) = (&held.cert.fields, &cert.fields);
    ensure!(
        new.subject == old.subject
            && new.role == old.role
            && new.signing_key == old.signing_key
            && new.delegating_key == old.delegating_key
            && new.attribute_commitment == old.attribute_commitment,
        "the renewed certificate does not certify this member's keys and attributes"
    );
    ensure!(
        new.serial > old.serial,
        "the certificate's serial {} is not higher than the one held ({})",
        new.serial,
        old.serial
    );
    file.certificate = issued.certificate;
    file.member()?;
    write_private(&path, &serde_json::to_vec_pretty(&file)?)?;
    Ok((new.serial, new.not_after))
}
