//! `zk`: supply proofs and policy proofs, verified for a whole batch at once.
//!
//! The executor collects every proof of a batch with its public inputs, derived from the
//! state as the previous batch left it ([`public_inputs`]), verifies them in one batch per
//! circuit (a random linear combination, one multi-Miller loop, one final exponentiation;
//! bisection names bad proofs), and hands each transaction its verdict. The contract
//! functions here then apply the verdicts in order.
//!
//! Only proofs worth verifying are verified ([`worth_verifying`]: the cheap checks come
//! first), and at most [`PROOFS_PER_MEMBER_MAX`] of one member's per batch: bisection
//! costs about two pairing checks per bad proof, so one member's bad proofs cost at most
//! its own budget, whatever it sends. Its proofs beyond the budget are refused with that
//! reason (a member's own node never sends that many in one batch).

use blstrs::Scalar as Fr;
use dualchain_prover::policy::{key_hash, request_binding};
use dualchain_prover::supply::{SupplyShape, SupplyStatement};

use super::context::{reject, Ctx, Exec, Refusal};
use super::{access, registry};
use crate::error::LedgerError;
use crate::genesis::Genesis;
use crate::reason::{Denial, ProofFault, Reason};
use crate::state::{dataset_key, demand_key, denial_key, grant_key, member_key, DatasetRecord, DemandRecord};
use crate::state::{pseudonym_key, DenialRecord, GrantRecord, GrantStatus, MemberRecord, Overlay, PseudonymRecord};
use crate::tx::{FrBytes, Hash, Tx, TxKind};

/// Proofs of one member verified in one batch; further ones are refused unverified.
pub const PROOFS_PER_MEMBER_MAX: usize = 64;

/// Which verifying key a proof is checked with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Circuit {
    Policy,
    /// The anonymous policy circuit ([`super::anonymous`]).
    AnonymousPolicy,
    /// A named demand's nullifier proof ([`super::budget::named_statement`]).
    DemandNullifier,
    Supply(SupplyShape),
}

/// The circuit and public inputs of a transaction's proof against `state`, or the reason
/// the proof cannot be checked (then the contract refuses the transaction anyway).
pub fn public_inputs(
    state: &Overlay<'_>,
    genesis: &Genesis,
    time_ms: u64,
    tx: &Tx,
) -> Result<Option<(Circuit, Vec<Fr>)>, LedgerError> {
    let demand_of = |id: &Hash| -> Result<Option<(DemandRecord, DatasetRecord)>, LedgerError> {
        let Some(d) = state.get::<DemandRecord>(&demand_key(id))? else { return Ok(None) };
        let Some(ds) = state.get::<DatasetRecord>(&dataset_key(&d.dataset))? else { return Ok(None) };
        Ok(Some((d, ds)))
    };
    match &tx.kind {
        TxKind::SupplyProof { demand, .. } => {
            let Some((d, ds)) = demand_of(demand)? else { return Ok(None) };
            let (Ok(c), Ok(h), Ok(k)) = (ds.commitment.to_fr(), d.requirement_hash.to_fr(), ds.consent.to_fr()) else {
                return Ok(None);
            };
            let Some(shape) = SupplyShape::for_records(ds.capacity as usize) else { return Ok(None) };
            let statement = SupplyStatement {
                dataset_commitment: c,
                requirement_hash: h,
                consent_commitment: k,
                use_index: d.use_index,
            };
            Ok(Some((Circuit::Supply(shape), statement.public_inputs())))
        }
        TxKind::RequestAccess { request, demand, root, .. } => {
            let Some((_, ds)) = demand_of(demand)? else { return Ok(None) };
            let Some(m) = state.get::<MemberRecord>(&member_key(&tx.sender))? else { return Ok(None) };
            let (Ok(root), Ok(policy)) = (root.to_fr(), ds.zk_policy_hash.to_fr()) else { return Ok(None) };
            let binding = request_binding(request, key_hash(&m.signing_key));
            Ok(Some((Circuit::Policy, vec![root, policy, binding])))
        }
        TxKind::AnonymousDemand(_) => Ok(super::anonymous::statement(state, genesis, time_ms, tx)?
            .map(|st| (Circuit::AnonymousPolicy, st.public_inputs()))),
        TxKind::Demand { .. } => Ok(super::budget::named_statement(state, genesis, time_ms, tx)?
            .map(|st| (Circuit::DemandNullifier, st.public_inputs()))),
        _ => Ok(None),
    }
}

/// Whether `tx`'s proof is worth verifying: `false` when its contract refuses it, whatever
/// the proof, on checks that come before the verdict and that no other transaction of the
/// same batch can change (the dataset's owner, the demand's requester, a demand already
/// proven or a request id already used before the batch, the duration; the sender's role,
/// which only its own renewal could change: the executor does not ask for renewing senders).
/// Verification is the costly step; a member cannot make the consortium pay for proofs
/// the contract would refuse anyway.
pub fn worth_verifying(
    state: &Overlay<'_>,
    genesis: &Genesis,
    sender: &MemberRecord,
    tx: &Tx,
) -> Result<bool, LedgerError> {
    Ok(match &tx.kind {
        TxKind::SupplyProof { demand, .. } => {
            let Some(d) = state.get::<DemandRecord>(&demand_key(demand))? else { return Ok(false) };
            let Some(ds) = state.get::<DatasetRecord>(&dataset_key(&d.dataset))? else { return Ok(false) };
            ds.owner == sender.id && d.supplied_by.is_none()
        }
        TxKind::RequestAccess { request, demand, duration_s, .. } => {
            let Some(d) = state.get::<DemandRecord>(&demand_key(demand))? else { return Ok(false) };
            ["research", "hospital"].contains(&sender.role.as_str())
                && d.requester == sender.id
                && (1..=super::registry::parameters(state, genesis)?.grant_duration_max_s).contains(duration_s)
                && state.get::<GrantRecord>(&grant_key(request))?.is_none()
                && state.get::<DenialRecord>(&denial_key(request))?.is_none()
        }
        TxKind::Demand { .. } => super::budget::named_worth_verifying(state, genesis, sender, tx)?,
        _ => false,
    })
}

fn verdict(ctx: &Ctx<'_, '_>) -> Result<(), ProofFault> {
    ctx.proof_verdict.unwrap_or(Err(ProofFault::StatementUnknown))
}

pub fn supply_proof(ctx: &mut Ctx<'_, '_>, demand: &Hash) -> Exec {
    let sender = ctx.sender()?.id.clone();
    let Some(mut d) = ctx.state.get::<DemandRecord>(&demand_key(demand))? else {
        return reject(Reason::UnknownDemand);
    };
    let Some(ds) = ctx.state.get::<DatasetRecord>(&dataset_key(&d.dataset))? else {
        return reject(Reason::DemandDatasetUnknown);
    };
    if ds.owner != sender {
        return reject(Reason::NotDatasetOwner { owner: ds.owner });
    }
    if d.supplied_by.is_some() {
        return reject(Reason::DemandAlreadyProven);
    }
    if let Err(proof) = verdict(ctx) {
        return reject(Reason::SupplyProofRefused { proof });
    }
    d.supplied_by = Some(ctx.tx_hash);
    ctx.state.put(demand_key(demand), &d);
    Ok(())
}

/// Grants access when the demand is proven and the policy proof holds against an
/// acceptable root; otherwise records the denial with its reason.
///
/// From a pseudonym ([`super::anonymous`]) the request carries no proof: its demand's
/// anonymous policy proof stands for it, and `root` must be the root that proof named,
/// which must have survived every revocation since.
pub fn request_access(
    ctx: &mut Ctx<'_, '_>,
    request: &Hash,
    demand: &Hash,
    root: &FrBytes,
    proof: &[u8],
    duration_s: u64,
) -> Exec {
    let (sender, anonymous_root) = match ctx.pseudonym {
        Some(p) => {
            let Some(rec) = ctx.state.get::<PseudonymRecord>(&pseudonym_key(p))? else {
                return reject(Reason::UnknownPseudonym);
            };
            if rec.root != *root || !proof.is_empty() {
                return reject(Reason::AnonymousProofRefused { proof: ProofFault::StatementShape });
            }
            if rec.granted.is_some() {
                return reject(Reason::PseudonymGranted);
            }
            (p.to_string(), Some(rec.root))
        }
        None => (ctx.require_role(&["research", "hospital"])?.id.clone(), None),
    };
    if ctx.state.get::<GrantRecord>(&grant_key(request))?.is_some()
        || ctx.state.get::<DenialRecord>(&denial_key(request))?.is_some()
    {
        return reject(Reason::RequestIdUsed);
    }
    let Some(d) = ctx.state.get::<DemandRecord>(&demand_key(demand))? else {
        return reject(Reason::UnknownDemand);
    };
    if d.requester != sender {
        return reject(Reason::NotYourDemand { requester: d.requester });
    }
    if d.supplied_by.is_none() {
        return reject(Reason::SupplyNotProven);
    }
    let max = super::registry::parameters(ctx.state, ctx.genesis)?.grant_duration_max_s;
    if duration_s == 0 || duration_s > max {
        return reject(Reason::DurationOutOfRange { max });
    }
    let Some(ds) = ctx.state.get::<DatasetRecord>(&dataset_key(&d.dataset))? else {
        return reject(Reason::DemandDatasetUnknown);
    };
    if ds.erased.is_some() {
        return reject(Reason::DatasetErased);
    }
    let denial = match anonymous_root {
        Some(r) => registry::root_revoked(ctx, &r)?,
        None => match registry::root_denial(ctx, root)? {
            Some(d) => Some(d),
            None => verdict(ctx).err().map(|proof| Denial::PolicyProof { proof }),
        },
    };
    if let Some(denial) = denial {
        let rec = DenialRecord { request: *request, demand: *demand, requester: sender, denial, at_ms: ctx.time_ms };
        ctx.state.put(denial_key(request), &rec);
        // The denial is state (queryable, audited); the outcome names it.
        return Err(Refusal::Denied(Reason::AccessDenied { denial }));
    }
    let grant = GrantRecord {
        id: *request,
        dataset: ds.id,
        demand: *demand,
        requester: sender,
        owner: ds.owner.clone(),
        cpc: String::new(),
        granted_ms: ctx.time_ms,
        expires_ms: ctx.time_ms.saturating_add(duration_s.saturating_mul(1000)),
        status: GrantStatus::Active,
        sealed_token: None,
        sealed_pseudonyms: None,
        receipts: 0,
        break_glass: None,
        sealed_pointer: None,
    };
    access::put_grant(ctx, &grant);
    if let Some(p) = ctx.pseudonym {
        let key = pseudonym_key(p);
        if let Some(mut rec) = ctx.state.get::<PseudonymRecord>(&key)? {
            rec.granted = Some(*request);
            ctx.state.put(key, &rec);
        }
    }
    Ok(())
}
