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

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{anyhow, bail, ensure, Context, Result};
use dualchain_consensus::engine::endpoint_bytes;
use dualchain_consensus::membership::{Reconfiguration, MEMBERS_MIN};
use dualchain_crypto::sign::{PublicKey, SigningKeypair};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{ConsortiumFile, ValidatorEntry};

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
/// validator's id continues the roster, in order).
pub fn propose(consortium: &str, sets: &Sets, add: &[ValidatorEntry], remove: &[u8]) -> Result<ChangeFile> {
    let latest = sets.epochs.last().ok_or_else(|| anyhow!("the node lists no validator set"))?;
    ensure!(
        latest.in_effect,
        "epoch {} is scheduled (it governs after sequence {}) and not in effect yet: propose the next change \
         after it took effect",
        latest.epoch,
        latest.after_seq
    );
    ensure!(!add.is_empty() || !remove.is_empty(), "the change adds and removes nobody");
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
    Ok(ChangeFile { consortium: consortium.into(), epoch: latest.epoch + 1, members, added, approvals: Vec::new() })
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
        let mut endpoints = Vec::with_capacity(self.added.len());
        for a in &self.added {
            let cert = hex::decode(&a.tls_cert).map_err(|e| anyhow!("validator {}'s TLS certificate: {e}", a.id))?;
            endpoints.push((a.id, endpoint_bytes(a.quic, &cert)));
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
