//! `access` + `zk` on the anonymous path (issue 17 item 3; docs/privacy.md "Requester
//! anonymity"): a demand made by a one-time key with an anonymous policy proof
//! (`dualchain_prover::anonymous`) instead of a member's signature.
//!
//! What the member's signature gave, and what stands in for it here:
//! - *who may ask*: the proof shows a credential in the registry's tree whose attributes
//!   satisfy the dataset's policy (so an anonymous demand is stricter than a named one,
//!   which any research institute or hospital may make);
//! - *revocation*: the proof names a credential root that must be acceptable now, and the
//!   pseudonym's access request later needs that root to have survived every revocation
//!   since ([`super::registry::root_revoked`]);
//! - *the demand budget*: a nullifier per demand, `budget` of them per credential,
//!   dataset and epoch, each spent once ([`crate::state::nullifier_key`]); the budget is
//!   the dataset's `Disclosure::demands_per_epoch`, and a demand buys one grant;
//! - *no replay*: the proof binds the demand id and the one-time key that signs the
//!   transaction; a copy with another key fails the proof, the same bytes are a
//!   duplicate, and a new demand id needs a new proof and a fresh nullifier;
//! - *accountability*: the credential's index, sealed under the audit authorities' escrow
//!   key, proven well formed. t of them open it (`dualchain_prover::escrow`); fewer, or
//!   anyone else, learn nothing of it.
//!
//! A member's named demands spend the same credential's nullifiers ([`super::budget`]).
//!
//! The demand is recorded with the pseudonym as its requester, so the owner's supply
//! proof, the grant, the re-key and the CPC's access records name the pseudonym only.
//! Consent is counted for a research institute's use of the purpose: the credential's
//! role stays hidden, and research is the use patients are asked about for data sharing.

use dualchain_crypto::cbsre::DelegatingPublicKey;
use dualchain_crypto::Codec;
use dualchain_prover::anonymous::{nullifier_scope, AnonymousStatement};
use dualchain_prover::escrow::Sealed;
use dualchain_prover::policy::{key_hash, request_binding};

use super::access::{check_demand, put_demand};
use super::context::{reject, reject_because, Ctx, Exec};
use super::registry::root_denial;
use crate::consent::use_index;
use crate::error::LedgerError;
use crate::genesis::Genesis;
use crate::reason::{ProofFault, Reason};
use crate::state::{dataset_key, demand_key, nullifier_key, pseudonym_key, DatasetRecord, DemandRecord, Overlay};
use crate::state::{PseudonymRecord, RootRecord};
use crate::tx::{pseudonym_key as key_of, AnonymousDemand, Hash, Tx, TxKind};

/// The role an anonymous requester's use is counted for.
pub const ANONYMOUS_ROLE: &str = "research";

/// Anonymous policy proofs verified in one batch; further ones are refused unverified
/// (each comes from a fresh key, so the per-member budget does not hold them).
pub const ANONYMOUS_PROOFS_PER_BATCH_MAX: usize = 256;

/// The statement an anonymous demand's proof must prove, derived from `state` (the
/// previous batch's) at ledger time `time_ms`; `None` where the demand names something
/// unknown or malformed (its contract then refuses it).
pub fn statement(
    state: &Overlay<'_>,
    genesis: &Genesis,
    time_ms: u64,
    tx: &Tx,
) -> Result<Option<AnonymousStatement>, LedgerError> {
    let TxKind::AnonymousDemand(d) = &tx.kind else { return Ok(None) };
    let Some(escrow_key) = super::escrow::key(state, genesis)? else { return Ok(None) };
    let Some(Ok(one_time)) = key_of(&tx.sender) else { return Ok(None) };
    let Some(ds) = state.get::<DatasetRecord>(&dataset_key(&d.dataset))? else { return Ok(None) };
    let (Ok(root), Ok(policy), Ok(nullifier)) = (d.root.to_fr(), ds.zk_policy_hash.to_fr(), d.nullifier.to_fr()) else {
        return Ok(None);
    };
    let Ok(sealed) = Sealed::from_bytes(&d.sealed_identity) else { return Ok(None) };
    Ok(Some(AnonymousStatement {
        credential_root: root,
        policy_hash: policy,
        binding: request_binding(&d.demand, key_hash(one_time.as_bytes())),
        scope: nullifier_scope(&d.dataset, ds.disclosure.epoch_of(time_ms)),
        budget: ds.disclosure.demands_per_epoch,
        nullifier,
        escrow_key: escrow_key.public_key(),
        sealed,
    }))
}

/// Whether an anonymous demand's proof is worth verifying: `false` where its contract
/// refuses it on checks no other transaction of the batch can make pass (the dataset, the
/// demand id, the pseudonym, the nullifier and the root as the previous batch left them;
/// a transaction earlier in the batch can only make more of them fail).
pub fn worth_verifying(state: &Overlay<'_>, sender: &str, d: &AnonymousDemand) -> Result<bool, LedgerError> {
    let dataset_open = state.get::<DatasetRecord>(&dataset_key(&d.dataset))?.is_some_and(|ds| ds.erased.is_none());
    let root_known = state.get::<RootRecord>(&crate::state::root_key(&d.root))?.is_some();
    Ok(dataset_open
        && root_known
        && state.get::<DemandRecord>(&demand_key(&d.demand))?.is_none()
        && state.get::<PseudonymRecord>(&pseudonym_key(sender))?.is_none()
        && state.get::<Hash>(&nullifier_key(&d.nullifier))?.is_none())
}

/// The anonymous demand's contract.
pub fn demand(ctx: &mut Ctx<'_, '_>, d: &AnonymousDemand) -> Exec {
    let Some(pseudonym) = ctx.pseudonym.map(str::to_string) else {
        // A member's own key signed it: that names the requester, which the path exists
        // to avoid.
        return reject(Reason::PseudonymInvalid);
    };
    if super::escrow::key(ctx.state, ctx.genesis)?.is_none() {
        return reject(Reason::AnonymousPathClosed);
    }
    if ctx.state.get::<PseudonymRecord>(&pseudonym_key(&pseudonym))?.is_some() {
        return reject(Reason::PseudonymUsed);
    }
    check_demand(ctx, &d.demand, &d.dataset, &d.requirement)?;
    let use_index = use_index(d.purpose, ANONYMOUS_ROLE).expect("research is a recipient role");
    if let Some(denial) = root_denial(ctx, &d.root)? {
        return reject(Reason::CredentialRootRefused { denial });
    }
    if d.nullifier.to_fr().is_err() {
        return reject(Reason::NullifierInvalid);
    }
    if ctx.state.get::<Hash>(&nullifier_key(&d.nullifier))?.is_some() {
        return reject(Reason::NullifierSpent);
    }
    if let Err(e) = Sealed::from_bytes(&d.sealed_identity) {
        return reject_because(Reason::SealedIdentityInvalid, e);
    }
    if let Err(e) = DelegatingPublicKey::from_bytes(&d.delegating_key) {
        return reject_because(Reason::DelegatingKeyInvalid, e);
    }
    if let Err(proof) = ctx.proof_verdict.unwrap_or(Err(ProofFault::StatementUnknown)) {
        return reject(Reason::AnonymousProofRefused { proof });
    }
    ctx.state.put(nullifier_key(&d.nullifier), &d.demand);
    let record = PseudonymRecord {
        pseudonym: pseudonym.clone(),
        demand: d.demand,
        root: d.root,
        nullifier: d.nullifier,
        sealed_identity: d.sealed_identity.clone(),
        delegating_key: d.delegating_key.clone(),
        at_ms: ctx.time_ms,
        granted: None,
    };
    ctx.state.put(pseudonym_key(&pseudonym), &record);
    put_demand(ctx, &d.demand, &d.dataset, pseudonym, &d.requirement, d.purpose, use_index);
    Ok(())
}
