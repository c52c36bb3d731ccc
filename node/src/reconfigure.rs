//! Validator set changes as operators make them (issue 19; the rules and why they are safe
//! are `dualchain_consensus::membership`).
//!
//! A change goes round as one public file, `change.json` ([`ChangeFile`]):
//! 1. `dualchain validator propose`, at any validator: reads the sets in effect from its
//!    node (`GET /validators`) and writes the next set: the current validators, less those
//!    removed, plus those added (each from the `issued/<member>.toml` that `dualchain
//!    issue` wrote for a newcomer, with its consensus key, QUIC address and TLS
//!    certificate).
//! 2. `dualchain validator approve`, at each validator of the current set, on its own
//!    machine: shows what the change does, signs it with that validator's consensus key
//!    (which never leaves it), and adds the approval to the file.
//! 3. `dualchain validator submit`, at any validator, once 2f + 1 approved: its node checks
//!    the change as execution will and orders it (`POST /validators/change`).
//!
//! The change executes at sequence number s and the new set governs after the first
//! checkpoint at or above s + L − 1 (L: the watermark span). An added validator must be
//! running by then (`dualchain node` with the `node.toml` that `dualchain join` wrote it):
//! it catches up by state transfer and votes from that checkpoint on. A removed one stops
//! voting there; its operator stops it after.
//!
//! An approval signs the epoch, every validator of the next set with its key, and where the
//! added ones are reached: nothing in the file can be changed after approval without
//! making the approvals fail.
//!
//! **Rotating a validator's consensus TLS certificate or address in place** (beyond
//! DESIGN.md, where both are fixed at genesis; the engine's side is
//! `dualchain_consensus::engine`'s module docs). The same kind of change keeps the set and
//! names a new endpoint for one validator, which keeps its id and consensus key:
//! 1. `dualchain validator tls-key`, on the validator's machine: a new TLS key into
//!    `secrets/tls-next/` (it never leaves), and a public request ([`TlsRequest`]).
//! 2. `dualchain validator certify`, by whoever keeps the consortium's CA: the certificate
//!    for the replica's name from the kept TLS CA ([`TlsCertified`]).
//! 3. `dualchain validator propose --rotate`, on the validator's machine: checks the
//!    certificate against its key and the consortium's CA, installs it beside the key, and
//!    writes the change; then `approve` and `submit` as for any change.
//!
//! The running node needs no restart: where the change executes, its engine finds the new
//! identity in `secrets/tls-next/` ([`TlsNext`]) and presents it; peers accept both
//! certificates until the change is in effect, then only the new one. After a restart the
//! node binds the address the change named and presents the certificate it names.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, ensure, Context, Result};
use dualchain_consensus::engine::{endpoint_bytes, TlsSpares};
use dualchain_consensus::membership::{Reconfiguration, MEMBERS_MIN};
use dualchain_consensus::tls::{check_identity, server_name, NodeTls, TlsKey};
use dualchain_crypto::sign::{PublicKey, SigningKeypair};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{ConsortiumFile, NodeConfig, ValidatorEntry};
use crate::files::{read_secret, write_private};

/// A proposed validator set change with the approvals gathered so far (`change.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeFile {
    /// The consortium's name (consortium.toml), to keep two consortia's files apart.
    pub consortium: String,
    /// The epoch the next set starts: one above the set in effect when proposed.
    pub epoch: u64,
    /// Every validator of the next set, ascending ids, with its Ed25519 consensus key.
    pub members: Vec<SetMember>,
    /// The validators it adds, and where they are reached.
    #[serde(default)]
    pub added: Vec<Added>,
    /// Validators it keeps under a new endpoint (TLS certificate or address rotated).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rotated: Vec<Rotated>,
    /// Each approval's encoding (hex), one per validator of the current set.
    #[serde(default)]
    pub approvals: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetMember {
    pub id: u8,
    /// Hex of the 32-byte key.
    pub key: String,
}

/// A validator a change adds: its QUIC address and consensus TLS certificate (DER, hex),
/// which the change pins, and its API (for operators; not signed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Added {
    pub id: u8,
    pub quic: SocketAddr,
    pub tls_cert: String,
    pub api: String,
}

/// A validator a change keeps, reached from then on at `quic` with the consensus TLS
/// certificate `tls_cert` (DER, hex), both pinned by the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotated {
    pub id: u8,
    pub quic: SocketAddr,
    pub tls_cert: String,
}

/// What `GET /validators` answers, the parts a proposal reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Sets {
    /// The epoch in effect at the node asked.
    pub epoch: u64,
    pub roster: Vec<RosterEntry>,
    pub epochs: Vec<EpochSet>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RosterEntry {
    pub id: u8,
    pub key: String,
    /// Where its replica is reached now (absent: no endpoint known).
    #[serde(default)]
    pub quic: Option<String>,
    /// SHA-256 of the consensus TLS certificate pinned for it now.
    #[serde(default)]
    pub tls_cert_sha256: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EpochSet {
    pub epoch: u64,
    pub after_seq: u64,
    pub members: Vec<u8>,
    pub in_effect: bool,
}

fn key_of(hex_key: &str) -> Result<PublicKey> {
    let mut k = [0u8; 32];
    hex::decode_to_slice(hex_key, &mut k).map_err(|e| anyhow!("a consensus key {hex_key:?}: {e}"))?;
    Ok(PublicKey::from_raw(&k)?)
}

/// The next set after `sets`' latest: its validators less `remove`, plus `add` (each added
/// validator's id continues the roster, in order), with `rotate`'s validator moved to its
/// new endpoint.
pub fn propose(
    consortium: &str,
    sets: &Sets,
    add: &[ValidatorEntry],
    remove: &[u8],
    rotate: Option<Rotated>,
) -> Result<ChangeFile> {
    let latest = sets.epochs.last().ok_or_else(|| anyhow!("the node lists no validator set"))?;
    ensure!(
        latest.in_effect,
        "epoch {} is scheduled (it governs after sequence {}) and not in effect yet: propose the next change \
         after it took effect",
        latest.epoch,
        latest.after_seq
    );
    ensure!(!add.is_empty() || !remove.is_empty() || rotate.is_some(), "the change adds, removes and rotates nobody");
    let mut ids: Vec<u8> = latest.members.clone();
    for r in remove {
        ensure!(ids.contains(r), "validator {r} is not in the set of epoch {}", latest.epoch);
        ids.retain(|i| i != r);
    }
    let mut add: Vec<&ValidatorEntry> = add.iter().collect();
    add.sort_by_key(|v| v.id);
    let mut keys: Vec<(u8, String)> = sets.roster.iter().map(|r| (r.id, r.key.clone())).collect();
    for v in &add {
        ensure!(
            v.id as usize == keys.len(),
            "validator {} cannot be added now: the next id is {} (ids continue the roster, which holds every \
             validator the consortium has had)",
            v.id,
            keys.len()
        );
        ensure!(
            keys.iter().all(|(_, k)| *k != v.signing_key),
            "validator {}'s key already belongs to a validator",
            v.id
        );
        key_of(&v.signing_key)?;
        hex::decode(&v.tls_cert).map_err(|e| anyhow!("validator {}'s TLS certificate: {e}", v.id))?;
        keys.push((v.id, v.signing_key.clone()));
        ids.push(v.id);
    }
    ids.sort_unstable();
    ensure!(ids.len() >= MEMBERS_MIN, "the next set would have {} validators; it needs {MEMBERS_MIN}", ids.len());
    let members = ids
        .iter()
        .map(|id| {
            let key = keys.iter().find(|(k, _)| k == id).map(|(_, key)| key.clone());
            Ok(SetMember { id: *id, key: key.ok_or_else(|| anyhow!("no key for validator {id}"))? })
        })
        .collect::<Result<_>>()?;
    let added = add
        .iter()
        .map(|v| Added { id: v.id, quic: v.quic, tls_cert: v.tls_cert.clone(), api: v.api.clone() })
        .collect();
    if let Some(r) = &rotate {
        ensure!(
            ids.contains(&r.id) && !add.iter().any(|v| v.id == r.id),
            "validator {} is not kept in the next set: only a kept validator rotates in place",
            r.id
        );
        hex::decode(&r.tls_cert).map_err(|e| anyhow!("validator {}'s next TLS certificate: {e}", r.id))?;
    }
    Ok(ChangeFile {
        consortium: consortium.into(),
        epoch: latest.epoch + 1,
        members,
        added,
        rotated: rotate.into_iter().collect(),
        approvals: Vec::new(),
    })
}

impl ChangeFile {
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, serde_json::to_vec_pretty(self)?).with_context(|| format!("writing {}", path.display()))
    }

    /// The change as consensus orders it, with the approvals gathered so far.
    pub fn reconfiguration(&self) -> Result<Reconfiguration> {
        let members = self.members.iter().map(|m| Ok((m.id, key_of(&m.key)?))).collect::<Result<Vec<_>>>()?;
        let mut endpoints = Vec::with_capacity(self.added.len() + self.rotated.len());
        let named = self.added.iter().map(|a| (a.id, a.quic, &a.tls_cert));
        for (id, quic, cert) in named.chain(self.rotated.iter().map(|r| (r.id, r.quic, &r.tls_cert))) {
            let cert = hex::decode(cert).map_err(|e| anyhow!("validator {id}'s TLS certificate: {e}"))?;
            endpoints.push((id, endpoint_bytes(quic, &cert)));
        }
        endpoints.sort_by_key(|(id, _)| *id);
        let approvals = self
            .approvals
            .iter()
            .map(|a| {
                let bytes = hex::decode(a).map_err(|e| anyhow!("an approval: {e}"))?;
                Reconfiguration::approval_from_bytes(&bytes).map_err(|e| anyhow!("an approval: {e}"))
            })
            .collect::<Result<_>>()?;
        Ok(Reconfiguration { epoch: self.epoch, members, endpoints, approvals })
    }

    /// Who approved so far.
    pub fn approvers(&self) -> Result<Vec<u8>> {
        Ok(self.reconfiguration()?.approvals.iter().map(|a| a.from).collect())
    }

    /// Validator `id` approves with its consensus key `key` (an earlier approval of its is
    /// replaced). Every approval already there must verify under the key this file gives
    /// its validator, if it gives one.
    pub fn approve(&mut self, consortium: &ConsortiumFile, key: &SigningKeypair, id: u8) -> Result<()> {
        ensure!(
            self.consortium == consortium.name,
            "the change is for consortium {:?}, this node's is {:?}",
            self.consortium,
            consortium.name
        );
        let mut r = self.reconfiguration()?;
        for a in &r.approvals {
            if let Some(m) = self.members.iter().find(|m| m.id == a.from) {
                ensure!(
                    r.approval_verifies(a, &key_of(&m.key)?),
                    "validator {}'s approval in the file does not verify: the file changed after it approved",
                    a.from
                );
            }
        }
        r.approvals.retain(|a| a.from != id);
        let mine = Reconfiguration::approve(key, id, r.epoch, &r.members, &r.endpoints);
        r.approvals.push(mine);
        r.approvals.sort_by_key(|a| a.from);
        self.approvals = r.approvals.iter().map(|a| hex::encode(Reconfiguration::approval_to_bytes(a))).collect();
        Ok(())
    }

    /// What an approver reads before approving.
    pub fn summary(&self, sets: Option<&Sets>) -> String {
        let ids: Vec<u8> = self.members.iter().map(|m| m.id).collect();
        let mut out = format!("validator set change to epoch {} of {}\n", self.epoch, self.consortium);
        out += &format!("  next set: {ids:?} ({} validators)\n", ids.len());
        if let Some(current) = sets.and_then(|s| s.epochs.iter().find(|e| e.epoch == s.epoch)) {
            let removed: Vec<u8> = current.members.iter().copied().filter(|i| !ids.contains(i)).collect();
            out += &format!("  current set (epoch {}): {:?}\n", current.epoch, current.members);
            out += &format!("  removes: {removed:?}\n");
        }
        for a in &self.added {
            let key = self.members.iter().find(|m| m.id == a.id).map_or("?", |m| m.key.as_str());
            out += &format!("  adds validator {} at {} (API {}), consensus key {key}\n", a.id, a.quic, a.api);
        }
        for r in &self.rotated {
            let sha = hex::decode(&r.tls_cert)
                .map(|c| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(c)))
                .unwrap_or_default();
            out += &format!(
                "  rotates validator {} in place: reached at {} with the TLS certificate of SHA-256 {sha}\n",
                r.id, r.quic
            );
        }
        out += &format!("  approved by: {:?}\n", self.approvers().unwrap_or_default());
        out
    }
}

/// `GET /validators` of the node at `base` (`https://…`, trusting only the consortium's
/// TLS CA `ca_der`).
pub async fn fetch_sets(base: &str, ca_der: &[u8]) -> Result<Sets> {
    let v = call(base, ca_der, reqwest::Method::GET, "/validators", None).await?;
    serde_json::from_value(v).context("GET /validators answered something else")
}

/// `POST /validators/change` at the node at `base`: orders the change; the node's answer
/// once it executed there (`epoch`, `after_seq`, `executed_seq`, `validators`).
pub async fn submit(base: &str, ca_der: &[u8], change: &ChangeFile) -> Result<Value> {
    let r = change.reconfiguration()?;
    let body = serde_json::json!({ "change": hex::encode(r.to_bytes()) });
    call(base, ca_der, reqwest::Method::POST, "/validators/change", Some(body)).await
}

async fn call(base: &str, ca_der: &[u8], method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
    let base = base.trim_end_matches('/');
    let http = crate::api::client::http_client(ca_der, base.starts_with("https://"))?;
    let mut req = http.request(method.clone(), format!("{base}{path}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.map_err(|e| anyhow!("{method} {base}{path}: {e}"))?;
    let status = resp.status();
    let v: Value = resp.json().await.map_err(|e| anyhow!("{method} {path}: the answer: {e}"))?;
    if !status.is_success() {
        let why = v["issue"][0]["diagnostics"].as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
        bail!("{method} {path}: {status}: {why}");
    }
    Ok(v)
}

/// A validator's request for its next consensus TLS certificate: public, for whoever keeps
/// the consortium's CA (`dualchain validator tls-key` writes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsRequest {
    pub consortium: String,
    pub node: u8,
    /// The new key's raw P-256 public key (hex).
    pub public_key: String,
}

/// The CA's answer to a [`TlsRequest`] (`dualchain validator certify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsCertified {
    pub consortium: String,
    pub node: u8,
    /// The certificate (DER, hex) for the replica's TLS name.
    pub tls_cert: String,
}

/// Where a node keeps its next consensus TLS identities: `secrets/tls-next/` beside its TLS
/// key, `<stem>.key` (PKCS#8 DER, the owner's only) and `<stem>.cert` (DER, hex) once
/// certified.
pub fn tls_next_dir(cfg: &NodeConfig) -> PathBuf {
    let key = cfg.path(&cfg.secrets.tls_key);
    key.parent().map_or_else(|| PathBuf::from("tls-next"), |d| d.join("tls-next"))
}

/// Makes this validator's next TLS key in [`tls_next_dir`] and the request for its
/// certificate.
pub fn new_tls_key(cfg: &NodeConfig, consortium: &ConsortiumFile) -> Result<(TlsRequest, PathBuf)> {
    let key = TlsKey::generate()?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
    let path = tls_next_dir(cfg).join(format!("{now}.key"));
    write_private(&path, &key.key_der)?;
    let request =
        TlsRequest { consortium: consortium.name.clone(), node: cfg.node, public_key: hex::encode(&key.public_raw) };
    Ok((request, path))
}

/// Checks `certified` against the consortium's CA and a key in [`tls_next_dir`] (the
/// certificate is for that key and for this replica's TLS name) and installs it beside the
/// key: the endpoint a rotation names for this validator, at `quic`.
pub fn install_tls_cert(
    cfg: &NodeConfig,
    consortium: &ConsortiumFile,
    certified: &TlsCertified,
    quic: SocketAddr,
) -> Result<Rotated> {
    ensure!(
        certified.consortium == consortium.name && certified.node == cfg.node,
        "the certificate is for node {} of {:?}; this is node {} of {:?}",
        certified.node,
        certified.consortium,
        cfg.node,
        consortium.name
    );
    let cert = hex::decode(&certified.tls_cert).context("the certificate's hex")?;
    let ca = hex::decode(&consortium.tls_ca).context("consortium.toml's tls_ca")?;
    let dir = tls_next_dir(cfg);
    let entries = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {} (run `dualchain validator tls-key` first)", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "key") {
            continue;
        }
        let node = NodeTls { cert_der: cert.clone(), key_der: read_secret(&path)? };
        if check_identity(&ca, &node, &server_name(cfg.node)).is_ok() {
            std::fs::write(path.with_extension("cert"), &certified.tls_cert)
                .with_context(|| format!("writing {}", path.with_extension("cert").display()))?;
            return Ok(Rotated { id: cfg.node, quic, tls_cert: certified.tls_cert.clone() });
        }
    }
    bail!(
        "no key in {} matches the certificate, or it is not the consortium CA's certificate for replica {}",
        dir.display(),
        cfg.node
    )
}

/// The next TLS identities a node holds ([`tls_next_dir`]), read when its engine looks one
/// up (a rotation executing): installing one needs no restart.
pub struct TlsNext {
    pub dir: PathBuf,
}

impl TlsSpares for TlsNext {
    /// Every installed next identity: a `.cert` (hex, as [`install_tls_cert`] writes it)
    /// beside its `.key`. One that does not read is skipped.
    fn all(&self) -> Vec<NodeTls> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        let mut held = Vec::new();
        for path in entries.flatten().map(|e| e.path()) {
            if path.extension().is_none_or(|e| e != "cert") {
                continue;
            }
            let cert = std::fs::read_to_string(&path).ok().and_then(|c| hex::decode(c.trim()).ok());
            let key = read_secret(&path.with_extension("key")).ok();
            if let (Some(cert_der), Some(key_der)) = (cert, key) {
                held.push(NodeTls { cert_der, key_der });
            }
        }
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualchain_consensus::tls::TlsCa;

    #[test]
    fn a_next_certificate_is_installed_only_for_its_key_from_the_consortium_ca_and_then_held() {
        let dir = std::env::temp_dir().join(format!("dualchain-tls-next-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let toml = "node = 2\nconsortium = \"c.toml\"\nparams_dir = \"p\"\ndata_dir = \"d\"\n[secrets]\n\
                    validator_key = \"secrets/k\"\ntls_key = \"secrets/tls.key\"\n";
        std::fs::write(dir.join("node.toml"), toml).unwrap();
        let cfg = NodeConfig::load(&dir.join("node.toml")).unwrap();
        let ca = TlsCa::generate("c").unwrap();
        let consortium: ConsortiumFile = toml::from_str(&format!(
            "name = \"c\"\ncreated_unix = 0\ngrant_duration_max_s = 60\nmember_ca = \"\"\ntls_ca = \"{}\"\n\
             ibe_params = \"\"\nabe_public = \"\"\nparams = []\nvalidators = []\nmembers = []\n",
            hex::encode(ca.cert_der())
        ))
        .unwrap();
        let (request, key_path) = new_tls_key(&cfg, &consortium).unwrap();
        assert_eq!((request.node, request.consortium.as_str()), (2, "c"));
        assert!(key_path.starts_with(dir.join("secrets/tls-next")), "{}", key_path.display());
        let public = hex::decode(&request.public_key).unwrap();
        let quic: SocketAddr = "127.0.0.1:9402".parse().unwrap();
        let answer = |cert: Vec<u8>, node| TlsCertified { consortium: "c".into(), node, tls_cert: hex::encode(cert) };
        // A certificate from another CA with the consortium's name, the CA's certificate
        // for another replica's name, and the CA's certificate for another key: refused.
        let rogue = TlsCa::generate("c").unwrap();
        let bad = [rogue.certify(2, &public).unwrap(), ca.certify(3, &public).unwrap(), ca.issue(2).unwrap().cert_der];
        for cert in bad {
            let why = install_tls_cert(&cfg, &consortium, &answer(cert, 2), quic).unwrap_err();
            assert!(format!("{why:#}").contains("no key in"), "{why:#}");
        }
        let good = ca.certify(2, &public).unwrap();
        let why = install_tls_cert(&cfg, &consortium, &answer(good.clone(), 3), quic).unwrap_err();
        assert!(format!("{why:#}").contains("certificate is for node 3"), "{why:#}");
        // What the engine reads is nothing until the certificate is installed (a key alone
        // is no identity), then the key made for it with its certificate, and nothing else:
        // a second key, not yet certified, is not one.
        let next = TlsNext { dir: tls_next_dir(&cfg) };
        assert!(next.all().is_empty());
        let rotated = install_tls_cert(&cfg, &consortium, &answer(good.clone(), 2), quic).unwrap();
        assert_eq!(rotated, Rotated { id: 2, quic, tls_cert: hex::encode(&good) });
        new_tls_key(&cfg, &consortium).unwrap();
        let held = next.all();
        assert_eq!(
            held.iter().map(|t| (&t.cert_der, &t.key_der)).collect::<Vec<_>>(),
            [(&good, &std::fs::read(&key_path).unwrap())]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
