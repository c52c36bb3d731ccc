//! The KGC's node: its enrollment desk and the publication of credential leaves.
//!
//! A member made its keys on its own machine (`dualchain keygen`) and holds a certificate
//! over its attribute *commitment*. Once its registration is final it opens that
//! commitment to the KGC (`POST /kgc/enroll`): the desk checks the opening against the
//! certificate on the ledger, derives the member's CP-ABE key for exactly those attributes
//! and returns it sealed to the member's ESKI-IBE identity, so only the member can open it;
//! it also records the member's credential leaf, and its anonymous leaf where the member
//! sent the commitment to its nullifier key (`dualchain_prover::anonymous`: the KGC never
//! sees the key, so it cannot compute the member's nullifiers). The publisher puts each
//! leaf on the ledger once its member is registered, and never one whose member or
//! credential was revoked. The KGC learns the attributes it certifies keys for (DESIGN.md
//! §4.3), nothing else of the member.
//!
//! A test consortium's genesis (`dualchain init`) names the leaves up front; they are
//! published the same way.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, ensure, Result};
use dualchain_crypto::abe::ac17::Ac17;
use dualchain_crypto::abe::AbeScheme;
use dualchain_crypto::cert::{AttributeSet, Certificate, Role};
use dualchain_crypto::ibe::{self, IbeCiphertext, IbePublicParams};
use dualchain_crypto::Codec;
use dualchain_ledger::tx::{FrBytes, Hash, Outcome, TxKind};
use dualchain_ledger::Ledger;
use dualchain_prover::anonymous::anonymous_leaf;
use rand::rngs::OsRng;

use super::follow::{follow_home, Agent};
use super::{Log, Reaction};
use crate::files::write_private;
use crate::member::client::Client;
use crate::member::{credential_for, Member, ABE_KEY_AAD, ATTRIBUTE_SALT_LEN};

/// How long one publication may wait for finality before the round is tried again.
const ATTEMPT_WAIT_MAX: Duration = Duration::from_secs(30);
const ROUND_PAUSE: Duration = Duration::from_millis(300);

/// A credential to publish: the member, its leaf and, where it enrolled with a nullifier
/// key commitment, its anonymous leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub member: String,
    pub leaf: FrBytes,
    pub anonymous_leaf: Option<FrBytes>,
}

/// Credential leaves to publish.
pub type Credentials = Mutex<Vec<Issued>>;

/// How the desk keeps its credentials on disk: `[member, leaf hex, anonymous leaf hex or
/// null]` (files written before anonymous leaves hold pairs).
type Kept = Vec<(String, String, Option<String>)>;

fn leaf_from_hex(hex_leaf: &str, member: &str, path: &std::path::Path) -> Result<FrBytes> {
    let mut b = [0u8; 32];
    hex::decode_to_slice(hex_leaf, &mut b).map_err(|e| anyhow!("credential of {member} in {}: {e}", path.display()))?;
    Ok(FrBytes(b))
}

/// The KGC's enrollment desk: its CP-ABE master key and the leaves it has to publish
/// (kept in `data/kgc-credentials.json`, mode 0600, across restarts).
pub struct Desk {
    msk: <Ac17 as AbeScheme>::MasterKey,
    pub credentials: Arc<Credentials>,
    path: PathBuf,
}

impl Desk {
    /// The desk with the leaves named at genesis and those enrolled before (from `path`).
    pub fn open(msk: <Ac17 as AbeScheme>::MasterKey, genesis: Vec<Issued>, path: PathBuf) -> Result<Self> {
        let mut all = genesis;
        if path.exists() {
            let bytes = crate::files::read_secret(&path)?;
            let kept: Kept = match serde_json::from_slice(&bytes) {
                Ok(k) => k,
                Err(_) => {
                    let pairs: Vec<(String, String)> = serde_json::from_slice(&bytes)?;
                    pairs.into_iter().map(|(m, l)| (m, l, None)).collect()
                }
            };
            for (member, leaf, anonymous) in kept {
                let leaf = leaf_from_hex(&leaf, &member, &path)?;
                let anonymous_leaf = anonymous.map(|a| leaf_from_hex(&a, &member, &path)).transpose()?;
                if !all.iter().any(|c| c.member == member) {
                    all.push(Issued { member, leaf, anonymous_leaf });
                }
            }
        }
        Ok(Self { msk, credentials: Arc::new(Mutex::new(all)), path })
    }

    /// Enrolls `member` (registered on `ledger`) with the attributes its certificate
    /// commits to: records its credential leaf and returns its CP-ABE key sealed to its
    /// ESKI-IBE identity. Refuses revoked members, roles that request no data, and an
    /// opening that does not match the certificate.
    pub fn enroll(
        &self,
        ledger: &Ledger,
        ibe_params: &IbePublicParams,
        member: &str,
        attributes: &[String],
        salt: &[u8; ATTRIBUTE_SALT_LEN],
        nullifier_commitment: Option<blstrs::Scalar>,
    ) -> Result<IbeCiphertext> {
        let rec = ledger.member(member)?.ok_or_else(|| anyhow!("{member} is not registered"))?;
        ensure!(rec.revoked.is_none(), "{member} is revoked");
        let cert = Certificate::from_bytes(&rec.certificate)?;
        ensure!(
            matches!(cert.fields.role, Role::Hospital | Role::ResearchInstitute),
            "{member} is a {}: only hospitals and research institutes hold CP-ABE keys",
            cert.fields.role
        );
        let attributes = AttributeSet::new(attributes.iter().map(String::as_str))?;
        cert.check_attribute_opening(&attributes, salt)
            .map_err(|_| anyhow!("these attributes and salt do not open {member}'s certified commitment"))?;
        let key = Ac17::keygen(&self.msk, &dualchain_ledger::policy::abe_key_attributes(&attributes)?)?;
        let sealed = ibe::encrypt(&mut OsRng, ibe_params, member, &key.to_bytes(), ABE_KEY_AAD)?;
        let credential = credential_for(&attributes, salt, cert.fields.signing_key.as_bytes());
        let leaf = FrBytes::from_fr(&credential.leaf());
        let anonymous_leaf = nullifier_commitment.map(|nkc| {
            FrBytes::from_fr(&anonymous_leaf(&credential.attributes, credential.salt, credential.key_hash, nkc))
        });
        let mut creds = self.credentials.lock().unwrap_or_else(|p| p.into_inner());
        if !creds.iter().any(|c| c.member == member) {
            creds.push(Issued { member: member.to_string(), leaf, anonymous_leaf });
            let kept: Kept = creds
                .iter()
                .map(|c| (c.member.clone(), hex::encode(c.leaf.0), c.anonymous_leaf.map(|a| hex::encode(a.0))))
                .collect();
            write_private(&self.path, &serde_json::to_vec_pretty(&kept)?)?;
        }
        Ok(sealed)
    }
}

/// Publishes every credential in `credentials` whose member is registered, for as long as
/// the node runs (members enroll at any time).
pub async fn publish_credentials(
    ledger: Arc<Ledger>,
    client: Arc<Client>,
    kgc: Arc<Member>,
    credentials: Arc<Credentials>,
) {
    loop {
        tokio::time::sleep(ROUND_PAUSE).await;
        if ledger.member(&kgc.id).ok().flatten().is_none() {
            // The KGC itself is not registered yet.
            continue;
        }
        let list = credentials.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for Issued { member: m, leaf, anonymous_leaf } in &list {
            let rec = match ledger.member(m) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the registry");
                    continue;
                }
            };
            if rec.credential.is_some() || rec.credential_revoked.is_some() || rec.revoked.is_some() {
                continue;
            }
            let kind = TxKind::IssueCredential { member: m.clone(), leaf: *leaf, anonymous_leaf: *anonymous_leaf };
            match tokio::time::timeout(ATTEMPT_WAIT_MAX, client.submit(kind)).await {
                Ok(Ok(f)) => match f.outcome {
                    Outcome::Rejected { reason } => tracing::warn!(member = %m, %reason, "credential rejected"),
                    _ => tracing::info!(member = %m, "credential published"),
                },
                Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "credential not final yet"),
                Err(_) => tracing::warn!("credential not final within {ATTEMPT_WAIT_MAX:?}; retrying"),
            }
        }
    }
}

/// Withdraws, with the usual `RevokeCredential`, the credential of a clinician whose
/// break-glass use the owner reviewed as unjustified and asked to revoke
/// (`dualchain_ledger::contracts::emergency`). The KGC acts on the review on chain, which
/// names the request, its clinician and the reviewing owner, and the clinician's credential
/// at the time. It withdraws that credential once: a replay after a restart finds it
/// withdrawn, or finds a credential the KGC issued after the review, which stays.
pub fn follow_break_glass_reviews(client: &Arc<Client>, kgc: &Member, log: Log) -> Agent {
    let c = client.clone();
    follow_home(&kgc.id, log, client, move |kind| match kind {
        TxKind::ReviewBreakGlass { request, revoke_credential: true, .. } => {
            let c = c.clone();
            Some(Box::pin(async move { revoke_for_review(&c, request).await }) as Reaction)
        }
        _ => None,
    })
}

async fn revoke_for_review(client: &Client, request: Hash) -> Result<()> {
    let ledger = &client.home().ledger;
    let Some(bg) = ledger.break_glass(&request)? else { return Ok(()) };
    let Some(review) = bg.review.filter(|r| r.revoke_credential && !r.justified) else { return Ok(()) };
    let Some(m) = ledger.member(&bg.requester)? else { return Ok(()) };
    let active = ledger.active_credential(&bg.requester)?;
    if active.is_none() || active != review.credential || m.revoked.is_some() {
        return Ok(());
    }
    let reason = format!("break-glass {} reviewed unjustified by {}", &hex::encode(request)[..16], bg.owner);
    client.submit_accepted(TxKind::RevokeCredential { member: bg.requester.clone(), reason }).await?;
    tracing::warn!(member = %bg.requester, owner = %bg.owner, "credential withdrawn after an unjustified break-glass use");
    Ok(())
}
