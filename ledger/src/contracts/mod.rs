//! The native contracts: deterministic Rust over the state overlay, no VM.
//!
//! A contract function checks everything first and writes only once the transaction is
//! accepted, so a refusal leaves no trace but its recorded reason.

pub mod abe;
pub mod access;
pub mod anonymous;
pub mod audit;
pub mod budget;
pub mod consent;
pub mod context;
pub mod emergency;
pub mod escrow;
pub mod registry;
pub mod zk;

pub use context::{check_text, reject, Ctx, Exec, Refusal};
pub use registry::ROOT_GRACE_MS;

use crate::state::AccessEvent;
use crate::tx::TxKind;

/// Runs a verified transaction's contract.
pub fn dispatch(ctx: &mut Ctx<'_, '_>, kind: &TxKind) -> Exec {
    match kind {
        TxKind::RegisterMember { certificate } => registry::register_member(ctx, certificate),
        TxKind::IssueCredential { member, leaf, anonymous_leaf } => {
            registry::issue_credential(ctx, member, leaf, anonymous_leaf.as_ref())
        }
        TxKind::RevokeCredential { member, reason } => registry::revoke_credential(ctx, member, reason),
        TxKind::RevokeMember { member, reason } => registry::revoke_member(ctx, member, reason),
        TxKind::AdmitMember { member, certificate_sha256 } => registry::admit_member(ctx, member, certificate_sha256),
        TxKind::ChangeParameters { grant_duration_max_s, membership_quorum } => registry::change_parameters(
            ctx,
            &crate::state::Parameters {
                grant_duration_max_s: *grant_duration_max_s,
                membership_quorum: *membership_quorum,
            },
        ),
        TxKind::RegisterDataset(reg) => abe::register_dataset(ctx, reg),
        TxKind::EraseDataset { dataset, reason } => abe::erase_dataset(ctx, dataset, reason),
        TxKind::Demand { demand, dataset, requirement, purpose, nullifier } => {
            access::demand(ctx, demand, dataset, requirement, *purpose, nullifier.as_ref())
        }
        TxKind::AnonymousDemand(d) => anonymous::demand(ctx, d),
        TxKind::OpenAudit { pseudonym, case } => audit::open_case(ctx, pseudonym, case),
        TxKind::AuditShare { case, share } => audit::share(ctx, case, share),
        TxKind::EscrowDealing { dealing, sealed_shares } => escrow::deal(ctx, dealing, sealed_shares),
        TxKind::EscrowComplaint { dealer } => escrow::complain(ctx, *dealer),
        TxKind::EscrowReveal { recipient, share } => escrow::reveal(ctx, *recipient, share),
        TxKind::CloseEscrow {} => escrow::close(ctx),
        TxKind::EscrowAck {} => escrow::ack(ctx),
        TxKind::CommitConsent { commitments } => consent::commit(ctx, commitments),
        TxKind::SupplyProof { demand, .. } => zk::supply_proof(ctx, demand),
        TxKind::RequestAccess { request, demand, root, proof, duration_s } => {
            zk::request_access(ctx, request, demand, root, proof, *duration_s)
        }
        TxKind::IssueReKey { grant, sealed_token, sealed_pseudonyms } => {
            access::issue_rekey(ctx, grant, sealed_token, sealed_pseudonyms)
        }
        TxKind::RevokeGrant { grant, reason } => access::revoke_grant(ctx, grant, reason),
        TxKind::Receipt { grant, records, results_digest } => {
            access::record_access(ctx, AccessEvent::Reencrypted, grant, *records, results_digest)
        }
        TxKind::Fetched { grant, records, results_digest } => {
            access::record_access(ctx, AccessEvent::Fetched, grant, *records, results_digest)
        }
        TxKind::BreakGlass { request, owner, purpose, duration_s, scope_digest, sealed_scope } => {
            let r =
                emergency::Request { id: request, owner, purpose, duration_s: *duration_s, scope_digest, sealed_scope };
            emergency::request(ctx, r)
        }
        TxKind::BreakGlassGrant { request, grant, dataset, sealed_token, sealed_pseudonyms, sealed_pointer } => {
            emergency::grant(
                ctx,
                emergency::Grant { request, grant, dataset, sealed_token, sealed_pseudonyms, sealed_pointer },
            )
        }
        TxKind::ReviewBreakGlass { request, justified, note, revoke_credential } => {
            emergency::review(ctx, request, *justified, note, *revoke_credential)
        }
    }
}
