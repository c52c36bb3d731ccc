//! One demand budget across the named and the anonymous path (docs/privacy.md
//! "Requester anonymity"). Where a member's credential has an anonymous leaf, the member
//! could ask anonymously too, so its *named* demands spend the same nullifiers as its
//! anonymous ones ([`spend_named_nullifier`]): a named demand carries one of the
//! credential's nullifiers for the dataset and epoch, proven with the small
//! `demand-nullifier` circuit (`dualchain_prover::anonymous::DemandNullifierCircuit`)
//! against the anonymous leaf the ledger holds for the signer. The member's named and
//! anonymous demands on a dataset in an epoch then together stay within the dataset's
//! `demands_per_epoch`; the per-member count of named demands still applies beside it.

use dualchain_prover::anonymous::{nullifier_scope, DemandNullifierStatement};

use super::context::{reject, Ctx, Exec};
use crate::error::LedgerError;
use crate::genesis::Genesis;
use crate::reason::{ProofFault, Reason};
use crate::state::Overlay;
use crate::state::{dataset_key, demand_key, member_key, nullifier_key, DatasetRecord, DemandRecord, MemberRecord};
use crate::tx::{DemandNullifier, FrBytes, Hash, Tx, TxKind, ANONYMOUS_LEAF_OFFSET};

/// The anonymous leaf of `m`'s active credential, if it has one (state as `state` holds it).
pub fn anonymous_leaf(state: &Overlay<'_>, m: &MemberRecord) -> Result<Option<FrBytes>, LedgerError> {
    let Some(index) = m.credential.filter(|_| m.credential_revoked.is_none()) else { return Ok(None) };
    Ok(state.get::<FrBytes>(&super::registry::leaf_key(index + ANONYMOUS_LEAF_OFFSET))?.filter(|l| l.0 != [0; 32]))
}

/// The leaf a named demand of `m` proves its nullifier against: `Some` where the
/// consortium has the anonymous path and `m`'s credential an anonymous leaf (then `m`
/// could also ask anonymously, and its named demands must share the budget).
fn named_leaf(state: &Overlay<'_>, genesis: &Genesis, m: &MemberRecord) -> Result<Option<FrBytes>, LedgerError> {
    if genesis.anonymous.is_none() {
        return Ok(None);
    }
    anonymous_leaf(state, m)
}

/// The statement a named demand's nullifier proof must prove, derived from `state` at
/// ledger time `time_ms`; `None` where the demand carries no nullifier or names something
/// unknown or malformed (its contract then refuses it).
pub fn named_statement(
    state: &Overlay<'_>,
    genesis: &Genesis,
    time_ms: u64,
    tx: &Tx,
) -> Result<Option<DemandNullifierStatement>, LedgerError> {
    let TxKind::Demand { dataset, nullifier: Some(n), .. } = &tx.kind else { return Ok(None) };
    let Some(m) = state.get::<MemberRecord>(&member_key(&tx.sender))? else { return Ok(None) };
    let Some(leaf) = named_leaf(state, genesis, &m)? else { return Ok(None) };
    let Some(ds) = state.get::<DatasetRecord>(&dataset_key(dataset))? else { return Ok(None) };
    let (Ok(leaf), Ok(nullifier)) = (leaf.to_fr(), n.nullifier.to_fr()) else { return Ok(None) };
    Ok(Some(DemandNullifierStatement {
        anonymous_leaf: leaf,
        scope: nullifier_scope(dataset, ds.disclosure.epoch_of(time_ms)),
        budget: ds.disclosure.demands_per_epoch,
        nullifier,
    }))
}

/// Whether a named demand's nullifier proof is worth verifying (the checks of
/// [`spend_named_nullifier`] and `check_demand` that come before the verdict, as the
/// previous batch left them).
pub fn named_worth_verifying(
    state: &Overlay<'_>,
    genesis: &Genesis,
    m: &MemberRecord,
    tx: &Tx,
) -> Result<bool, LedgerError> {
    let TxKind::Demand { demand, dataset, nullifier: Some(n), .. } = &tx.kind else { return Ok(false) };
    let dataset_open = state.get::<DatasetRecord>(&dataset_key(dataset))?.is_some_and(|ds| ds.erased.is_none());
    Ok(dataset_open
        && ["research", "hospital"].contains(&m.role.as_str())
        && named_leaf(state, genesis, m)?.is_some()
        && state.get::<DemandRecord>(&demand_key(demand))?.is_none()
        && state.get::<Hash>(&nullifier_key(&n.nullifier))?.is_none())
}

/// A named demand's share of its credential's budget: where `m` could also ask
/// anonymously, the demand must spend one of the credential's nullifiers for the dataset
/// and epoch, proven against its anonymous leaf; elsewhere it must carry none.
pub(super) fn spend_named_nullifier(
    ctx: &mut Ctx<'_, '_>,
    m: &MemberRecord,
    demand: &Hash,
    nullifier: Option<&DemandNullifier>,
) -> Exec {
    let n = match (named_leaf(ctx.state, ctx.genesis, m)?, nullifier) {
        (None, None) => return Ok(()),
        (None, Some(_)) => return reject(Reason::DemandNullifierUnexpected),
        (Some(_), None) => return reject(Reason::DemandNullifierRequired),
        (Some(_), Some(n)) => n,
    };
    if n.nullifier.to_fr().is_err() {
        return reject(Reason::NullifierInvalid);
    }
    if ctx.state.get::<Hash>(&nullifier_key(&n.nullifier))?.is_some() {
        return reject(Reason::NullifierSpent);
    }
    if let Err(proof) = ctx.proof_verdict.unwrap_or(Err(ProofFault::StatementUnknown)) {
        return reject(Reason::DemandNullifierRefused { proof });
    }
    ctx.state.put(nullifier_key(&n.nullifier), demand);
    Ok(())
}
