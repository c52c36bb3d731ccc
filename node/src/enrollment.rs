//! A member's enrollment after a per-institution genesis (`dualchain keygen`, `assemble`,
//! `join`): its node holds the keys the member made itself, but not yet the ones
//! authorities issue. On first start, once its registration is final, the node obtains:
//! 1. its ESKI-IBE private key, by the blinded issuing round trip with every authority in
//!    chain order (`POST /ibe/share` at the KGC's node, then each CPC's), checking each
//!    share against the public chain so that a wrong one names its authority; no authority
//!    sees the key, and none can compute it alone (DESIGN.md §4.2);
//! 2. for a hospital or research institute, its CP-ABE key from the KGC
//!    (`POST /kgc/enroll`, sealed to its IBE identity), which also has the KGC publish its
//!    credential, and its anonymous credential over the commitment to the member's
//!    nullifier key (`Member::nullifier_key`; the key itself never leaves the member).
//!
//! Each key is written to `secrets/member.json` as soon as it is obtained, so a restart
//! resumes where enrollment stopped. Authorities that cannot be reached are retried with
//! back-off; the member's agents start once it holds every key.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use dualchain_crypto::cert::Role;
use dualchain_crypto::ibe::{IbeCiphertext, IbePrivateKey, KeyRequest, KeyShare};
use dualchain_crypto::Codec;
use rand::rngs::OsRng;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::api::client::ApiClient;
use crate::files::{from_hex, to_hex, write_private};
use crate::member::{AbeUserKey, Member, MemberFile, ABE_KEY_AAD};
use crate::runtime::Node;

const RETRY_FIRST: Duration = Duration::from_millis(300);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Whether `file` still lacks a key the authorities issue.
pub fn needs_enrollment(file: &MemberFile) -> Result<bool> {
    let role = crate::member::role_from_str(&file.role)?;
    Ok(file.ibe_key.is_none() || (wants_abe_key(role) && file.abe_key.is_none()))
}

fn wants_abe_key(role: Role) -> bool {
    matches!(role, Role::Hospital | Role::ResearchInstitute)
}

/// Runs `step` until it succeeds, pausing longer after each failure.
async fn retry<T, F, Fut>(what: &str, mut step: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut pause = RETRY_FIRST;
    loop {
        match step().await {
            Ok(v) => return v,
            Err(e) => tracing::warn!(error = %format!("{e:#}"), retry_in = ?pause, "enrollment: {what}"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RETRY_MAX);
    }
}

/// Completes `file` (kept at `path`) with the keys the authorities issue; returns it.
pub async fn enroll(node: &Node, mut file: MemberFile, path: PathBuf) -> Result<MemberFile> {
    let member = file.member()?;
    // The node registers the member meanwhile (authorities check requests against the
    // certificate on the ledger).
    loop {
        match node.ledger.member(&member.id) {
            Ok(Some(_)) => break,
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "reading the registry"),
        }
        tokio::time::sleep(RETRY_FIRST).await;
    }
    if file.ibe_key.is_none() {
        let key = ibe_key(node, &member).await?;
        file.ibe_key = Some(to_hex(&key));
        write_private(&path, &serde_json::to_vec_pretty(&file)?)?;
        tracing::info!(member = %member.id, authorities = node.ibe.authorities.len(), "ESKI-IBE key issued");
    }
    if wants_abe_key(member.role) && file.abe_key.is_none() {
        let ibe_key: IbePrivateKey = from_hex(file.ibe_key.as_deref().expect("set above"), "IBE key")?;
        let key = retry("CP-ABE key from the KGC", || abe_key(node, &member, &ibe_key)).await;
        file.abe_key = Some(to_hex(&key));
        write_private(&path, &serde_json::to_vec_pretty(&file)?)?;
        tracing::info!(member = %member.id, "CP-ABE key issued by the KGC");
    }
    Ok(file)
}

#[derive(Deserialize)]
struct ShareAnswer {
    share: String,
}

/// The blinded issuing round trip with every authority, in chain order.
async fn ibe_key(node: &Node, member: &Member) -> Result<IbePrivateKey> {
    let (request, state) = KeyRequest::new(&mut OsRng, &member.id, &member.signer)?;
    let mut shares: Vec<KeyShare> = Vec::new();
    for (i, authority) in node.ibe.authorities.iter().enumerate() {
        let body = json!({
            "request": to_hex(&request),
            "previous": shares.last().map(to_hex),
        });
        let share = retry(&format!("ESKI-IBE share from {authority}"), || async {
            let api = ApiClient::of_peer(node, authority, member)?;
            let a: ShareAnswer = api.call(Method::POST, "/ibe/share", Some(&body)).await?;
            let share: KeyShare = from_hex(&a.share, "key share")?;
            ensure!(share.index as usize == i, "{authority} answered with share {} for step {i}", share.index);
            node.ibe.verify_share(&request, &share).map_err(|e| anyhow!("{authority}'s share: {e}"))?;
            Ok(share)
        })
        .await;
        shares.push(share);
    }
    state.finish(&node.ibe, &request, &shares).context("unblinding the ESKI-IBE key")
}

#[derive(Deserialize)]
struct EnrollAnswer {
    abe_key: String,
}

/// Opens the certified attribute commitment to the KGC; its answer is sealed to us.
async fn abe_key(node: &Node, member: &Member, ibe_key: &IbePrivateKey) -> Result<AbeUserKey> {
    let kgc = node
        .consortium
        .members
        .iter()
        .find(|m| m.role == Role::Kgc.as_str())
        .ok_or_else(|| anyhow!("the consortium has no KGC"))?;
    let api = ApiClient::of_peer(node, &kgc.id, member)?;
    // The commitment to its nullifier key, for its anonymous credential leaf (the KGC
    // never sees the key, so it cannot compute the member's nullifiers).
    let nk_commitment = dualchain_prover::anonymous::nullifier_commitment(member.nullifier_key());
    let body = json!({
        "attributes": member.attributes.iter().collect::<Vec<_>>(),
        "salt": hex::encode(member.attribute_salt),
        "nullifier_commitment": hex::encode(dualchain_prover::field::fr_to_bytes(&nk_commitment)),
    });
    let a: EnrollAnswer = api.call(Method::POST, "/kgc/enroll", Some(&body)).await?;
    let sealed: IbeCiphertext = from_hex(&a.abe_key, "sealed CP-ABE key")?;
    let key = AbeUserKey::from_bytes(&ibe_key.decrypt(&sealed, ABE_KEY_AAD)?)?;
    Ok(key)
}
