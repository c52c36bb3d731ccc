//! Contract state: typed records under prefixed keys in the ledger's `state` column
//! family (JSON values), read through a per-batch overlay so a batch's changes reach the
//! store in the same atomic write as its blocks.

use std::collections::BTreeMap;

use dualchain_storage::ledger::LedgerStore;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use dualchain_prover::supply::Requirement;

use crate::error::LedgerError;
pub use crate::genesis::Parameters;
use crate::reason::{Denial, Reason};
use crate::tx::{hex_bytes, Disclosure, FrBytes, Hash};

/// Key of a member record.
pub fn member_key(id: &str) -> Vec<u8> {
    format!("member/{id}").into_bytes()
}
pub fn dataset_key(id: &Hash) -> Vec<u8> {
    format!("dataset/{}", hex::encode(id)).into_bytes()
}
pub fn demand_key(id: &Hash) -> Vec<u8> {
    format!("demand/{}", hex::encode(id)).into_bytes()
}
pub fn grant_key(id: &Hash) -> Vec<u8> {
    format!("grant/{}", hex::encode(id)).into_bytes()
}
pub fn denial_key(id: &Hash) -> Vec<u8> {
    format!("denial/{}", hex::encode(id)).into_bytes()
}
pub fn root_key(root: &FrBytes) -> Vec<u8> {
    format!("root/{}", hex::encode(root.0)).into_bytes()
}
/// Access records of a dataset, in ledger order.
pub fn audit_prefix(dataset: &Hash) -> Vec<u8> {
    format!("audit/{}/", hex::encode(dataset)).into_bytes()
}
pub fn audit_key(dataset: &Hash, seq: u64, receipt_tx: &Hash) -> Vec<u8> {
    let mut k = audit_prefix(dataset);
    k.extend_from_slice(format!("{seq:020}/{}", hex::encode(receipt_tx)).as_bytes());
    k
}
/// Demands a requester published on a dataset in one epoch of its disclosure policy.
pub fn demand_count_key(dataset: &Hash, requester: &str, epoch: u64) -> Vec<u8> {
    format!("demands/{}/{epoch}/{requester}", hex::encode(dataset)).into_bytes()
}
/// A break-glass request.
pub fn break_glass_key(id: &Hash) -> Vec<u8> {
    format!("breakglass/{}", hex::encode(id)).into_bytes()
}
/// An owner's break-glass requests (its review queue), in ledger order.
pub fn break_glass_owner_prefix(owner: &str) -> Vec<u8> {
    format!("breakglass-to/{owner}/").into_bytes()
}
pub fn break_glass_owner_key(owner: &str, seq: u64, id: &Hash) -> Vec<u8> {
    let mut k = break_glass_owner_prefix(owner);
    k.extend_from_slice(format!("{seq:020}/{}", hex::encode(id)).as_bytes());
    k
}
/// How many of a clinician's break-glass requests to one owner await that owner's review
/// (hex ids: member ids may hold '/').
pub fn break_glass_open_key(requester: &str, owner: &str) -> Vec<u8> {
    format!("breakglass-open/{}/{}", hex::encode(requester), hex::encode(owner)).into_bytes()
}
pub const REGISTRY_KEY: &[u8] = b"registry";
pub const MEMBER_PREFIX: &[u8] = b"member/";

/// A registered member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub id: String,
    pub role: String,
    pub serial: u64,
    #[serde(with = "hex_bytes")]
    pub certificate: Vec<u8>,
    #[serde(with = "hex_bytes::id")]
    pub signing_key: [u8; 32],
    pub not_after: u64,
    pub revoked: Option<String>,
    /// Index of its leaf in the credential tree, once issued.
    pub credential: Option<u64>,
    pub credential_revoked: Option<String>,
    pub registered_ms: u64,
}

/// Key of the revocation record of a member.
pub fn revocation_key(member: &str) -> Vec<u8> {
    format!("revocation/{member}").into_bytes()
}

/// The revocation of a member by a quorum of members (`registry::revoke_member`): the
/// reason its first approver gave, who approved and when, and when the quorum was
/// reached. Approvals older than `registry::APPROVALS_OPEN_MS` lapse: the next one opens
/// the record afresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationRecord {
    pub member: String,
    pub reason: String,
    pub opened_ms: u64,
    pub approvals: Vec<Approval>,
    pub revoked_ms: Option<u64>,
}

/// Key of the admission record of a member not named at genesis.
pub fn admission_key(member: &str) -> Vec<u8> {
    format!("admission/{member}").into_bytes()
}

/// The admission of a member not named at genesis by a quorum of members
/// (`registry::admit_member`): the certificate its `RegisterMember` brought and its
/// SHA-256 (what approvals name), when that opened the record, who approved and when, and
/// when the quorum was reached. Approvals older than `registry::APPROVALS_OPEN_MS` lapse:
/// the next one opens the record afresh; a registration with another certificate replaces
/// the record and its approvals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionRecord {
    pub member: String,
    #[serde(with = "hex_bytes")]
    pub certificate: Vec<u8>,
    #[serde(with = "hex_bytes::id")]
    pub certificate_sha256: Hash,
    pub opened_ms: u64,
    pub approvals: Vec<Approval>,
    pub admitted_ms: Option<u64>,
}

/// The parameters in effect when a change replaced genesis' (absent until then).
pub const PARAMETERS_KEY: &[u8] = b"parameters/current";

/// The parameters in effect after a change, since when, by which transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParametersRecord {
    pub parameters: Parameters,
    pub since_ms: u64,
    #[serde(with = "hex_bytes::id")]
    pub tx: Hash,
}

/// The approvals of one proposed parameter set, by its [`Parameters::digest`].
pub fn parameters_proposal_key(digest: &Hash) -> Vec<u8> {
    format!("parameters/proposal/{}", hex::encode(digest)).into_bytes()
}

/// A proposed parameter set and who approved it. Approvals lapse 30 days (ledger time)
/// after the first; the record keeps when the set took effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParametersProposal {
    pub parameters: Parameters,
    pub opened_ms: u64,
    pub approvals: Vec<Approval>,
    pub applied_ms: Option<u64>,
}

/// One member's approval of a revocation, an admission or a parameter change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub by: String,
    pub at_ms: u64,
    #[serde(with = "hex_bytes::id")]
    pub tx: Hash,
}

/// Registry-wide values: the credential tree's next free leaf, its current root and the
/// revocation epoch (roots of an earlier epoch are no longer accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RegistryRecord {
    pub next_leaf: u64,
    pub epoch: u64,
    pub root: Option<FrBytes>,
}

/// A credential root that proofs may name: accepted while its epoch is current and, once
/// superseded by an addition, for a grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootRecord {
    pub epoch: u64,
    pub superseded_ms: Option<u64>,
}

/// A dataset's tombstone: when and why its owner erased it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Erasure {
    pub at_ms: u64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetRecord {
    #[serde(with = "hex_bytes::id")]
    pub id: Hash,
    pub owner: String,
    pub commitment: FrBytes,
    /// Records the supply circuit holds (the registration's size class).
    pub capacity: u64,
    /// The access policy statement, from which both of its forms compile.
    pub policy: String,
    #[serde(with = "hex_bytes")]
    pub abe_index: Vec<u8>,
    pub zk_policy_hash: FrBytes,
    #[serde(default)]
    pub disclosure: Disclosure,
    /// The consent commitment C_K supply proofs are checked against: the registration's,
    /// then each `CommitConsent`'s.
    pub consent: FrBytes,
    /// How many times the owner replaced it, and when last (0 and the registration time
    /// until then).
    #[serde(default)]
    pub consent_version: u64,
    #[serde(default)]
    pub consent_ms: u64,
    /// Set when the owner erased the dataset (its index is then dropped from state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased: Option<Erasure>,
    pub registered_ms: u64,
    #[serde(with = "hex_bytes::id")]
    pub tx: Hash,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemandRecord {
    #[serde(with = "hex_bytes::id")]
    pub id: Hash,
    #[serde(with = "hex_bytes::id")]
    pub dataset: Hash,
    pub requester: String,
    pub requirement: Requirement,
    pub requirement_hash: FrBytes,
    /// What the records are for; with the requester's role, the consent use a supply proof
    /// counts records for ([`crate::consent::use_index`]).
    #[serde(default)]
    pub purpose: crate::consent::Purpose,
    #[serde(default)]
    pub use_index: u8,
    pub published_ms: u64,
    /// The accepted supply proof's transaction, once the owner proved the demand.
    pub supplied_by: Option<[u8; 32]>,
}

/// Key of an audit authority's dealing in the escrow DKG, by authority index.
pub fn escrow_dealing_key(dealer: u16) -> Vec<u8> {
    format!("escrow/dealing/{dealer:05}").into_bytes()
}
pub const ESCROW_DEALING_PREFIX: &[u8] = b"escrow/dealing/";
/// Key of a complaint against `dealer` by `recipient`.
pub fn escrow_complaint_key(dealer: u16, recipient: u16) -> Vec<u8> {
    format!("escrow/complaint/{dealer:05}/{recipient:05}").into_bytes()
}
pub const ESCROW_COMPLAINT_PREFIX: &[u8] = b"escrow/complaint/";
/// The escrow key, once the DKG closed.
pub const ESCROW_KEY: &[u8] = b"escrow/key";
/// An audit authority's acknowledgement of its shares (its index and ledger time).
pub fn escrow_ack_key(authority: u16) -> Vec<u8> {
    format!("escrow/ack/{authority:05}").into_bytes()
}
pub const ESCROW_ACK_PREFIX: &[u8] = b"escrow/ack/";

/// An audit authority's round of the DKG, as the `escrow` contract accepted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealingRecord {
    pub dealer: u16,
    pub member: String,
    #[serde(with = "hex_bytes")]
    pub dealing: Vec<u8>,
    /// The share for authority `k + 1`, IBE-sealed to it, at `k`.
    #[serde(with = "crate::tx::hex_bytes::list")]
    pub sealed_shares: Vec<Vec<u8>>,
    pub at_ms: u64,
}

/// A complaint against a dealer, and the share the dealer revealed to answer it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplaintRecord {
    pub dealer: u16,
    pub recipient: u16,
    pub at_ms: u64,
    #[serde(with = "opt_hex", default)]
    pub revealed: Option<Vec<u8>>,
}

/// The escrow key the DKG made, from the dealings of `qualified`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscrowKeyRecord {
    #[serde(with = "hex_bytes")]
    pub key: Vec<u8>,
    pub qualified: Vec<u16>,
    pub at_ms: u64,
}

/// Key of an audit case (`contracts::audit::case_id`).
pub fn audit_case_key(id: &Hash) -> Vec<u8> {
    format!("audit-case/{}", hex::encode(id)).into_bytes()
}
pub const AUDIT_CASE_PREFIX: &[u8] = b"audit-case/";

/// A case for opening who made an anonymous demand: the members who approved it, the
/// audit authorities' decryption shares once approved, and what they opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCaseRecord {
    #[serde(with = "hex_bytes::id")]
    pub id: Hash,
    pub pseudonym: String,
    pub case: String,
    pub opened_ms: u64,
    pub approvals: Vec<Approval>,
    pub approved_ms: Option<u64>,
    /// (authority index, decryption share), each verified against the sealed identity.
    pub shares: Vec<(u16, String)>,
    pub opening: Option<AuditOpening>,
}

/// What an audit case opened: the credential's leaf index and the member it belongs to
/// (none where the registry no longer maps it to one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditOpening {
    pub index: u64,
    pub member: Option<String>,
    pub at_ms: u64,
}

/// Key of a pseudonym's record (by its name, `crate::tx::pseudonym_of`).
pub fn pseudonym_key(pseudonym: &str) -> Vec<u8> {
    format!("pseudonym/{pseudonym}").into_bytes()
}
/// Key of a spent nullifier.
pub fn nullifier_key(nullifier: &FrBytes) -> Vec<u8> {
    format!("nullifier/{}", hex::encode(nullifier.0)).into_bytes()
}

/// A one-time key that made an anonymous demand: all the ledger knows of its requester.
/// Only the audit authorities, t of them together, can open `sealed_identity` to the
/// credential's index (`dualchain_prover::escrow`), and through the registry to a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PseudonymRecord {
    pub pseudonym: String,
    /// The demand it made (a pseudonym makes one).
    #[serde(with = "hex_bytes::id")]
    pub demand: Hash,
    /// The credential root its proof named: a revocation after the demand retires it, and
    /// with it the pseudonym's access requests.
    pub root: FrBytes,
    pub nullifier: FrBytes,
    #[serde(with = "hex_bytes")]
    pub sealed_identity: Vec<u8>,
    /// The one-time delegating key a grant's re-encryption key is made for.
    #[serde(with = "hex_bytes")]
    pub delegating_key: Vec<u8>,
    pub at_ms: u64,
    /// The grant its demand bought (one per pseudonym).
    #[serde(with = "crate::tx::hex_bytes::opt_id", default, skip_serializing_if = "Option::is_none")]
    pub granted: Option<Hash>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum GrantStatus {
    Active,
    Revoked { reason: String, at_ms: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRecord {
    #[serde(with = "hex_bytes::id")]
    pub id: Hash,
    #[serde(with = "hex_bytes::id")]
    pub dataset: Hash,
    #[serde(with = "hex_bytes::id")]
    pub demand: Hash,
    pub requester: String,
    pub owner: String,
    /// The CPC serving the grant: empty until the owner's re-key names it (the dataset's
    /// CPC is in its index, not on chain).
    pub cpc: String,
    pub granted_ms: u64,
    pub expires_ms: u64,
    pub status: GrantStatus,
    /// The re-key token sealed to the CPC, once the owner's node issued it.
    #[serde(with = "opt_hex")]
    pub sealed_token: Option<Vec<u8>>,
    /// The delivered records' patient pseudonyms, sealed to the requester (absent where
    /// the owner's records carry none).
    #[serde(with = "opt_hex", default, skip_serializing_if = "Option::is_none")]
    pub sealed_pseudonyms: Option<Vec<u8>>,
    pub receipts: u32,
    /// The break-glass request this grant answers (its `demand` is then all zeros: no
    /// demand, no policy proof).
    #[serde(with = "crate::tx::hex_bytes::opt_id", default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<Hash>,
    /// For a break-glass grant: where its records are, sealed to the requester.
    #[serde(with = "opt_hex", default, skip_serializing_if = "Option::is_none")]
    pub sealed_pointer: Option<Vec<u8>>,
}

impl GrantRecord {
    /// Active and not expired at ledger time `now_ms`.
    pub fn usable(&self, now_ms: u64) -> Result<(), Reason> {
        match &self.status {
            GrantStatus::Revoked { reason, .. } => Err(Reason::GrantRevoked { revocation: reason.clone() }),
            GrantStatus::Active if now_ms >= self.expires_ms => Err(Reason::GrantExpired),
            GrantStatus::Active => Ok(()),
        }
    }
}

/// A reviewer's verdict on a break-glass use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakGlassReview {
    pub justified: bool,
    pub note: String,
    /// The reviewer asked the KGC to withdraw the clinician's credential.
    pub revoke_credential: bool,
    pub at_ms: u64,
    /// The review's transaction.
    #[serde(with = "hex_bytes::id")]
    pub tx: Hash,
    /// With `revoke_credential`: the clinician's active credential (its leaf in the
    /// credential tree) when the review was final, the one the KGC withdraws; a credential
    /// issued again later (same position, new leaf) is not the review's to withdraw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<FrBytes>,
}

/// A break-glass request (HL7 v3 PurposeOfUse `ETREAT`): who asked whom, when, until
/// when, the digest of the sealed scope, the grants it produced and its review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakGlassRecord {
    #[serde(with = "hex_bytes::id")]
    pub id: Hash,
    pub requester: String,
    pub owner: String,
    pub purpose: String,
    #[serde(with = "hex_bytes::id")]
    pub scope_digest: Hash,
    pub requested_ms: u64,
    pub until_ms: u64,
    /// The grants the owner's node made for it, in order.
    pub grants: Vec<GrantRef>,
    pub review: Option<BreakGlassReview>,
    /// The request's transaction, for its inclusion proof.
    #[serde(with = "hex_bytes::id")]
    pub tx: Hash,
}

/// A grant's id (hex in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRef(#[serde(with = "hex_bytes::id")] pub Hash);

mod opt_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&hex::encode(b)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?.map(|h| hex::decode(h).map_err(serde::de::Error::custom)).transpose()
    }
}

/// A refused access request: who asked, for what, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenialRecord {
    #[serde(with = "hex_bytes::id")]
    pub request: Hash,
    #[serde(with = "hex_bytes::id")]
    pub demand: Hash,
    pub requester: String,
    pub denial: Denial,
    pub at_ms: u64,
}

/// What an access record records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessEvent {
    /// The CPC re-encrypted the grant's records (its receipt).
    #[default]
    Reencrypted,
    /// The CPC served the re-encrypted records to the requester (a fetch).
    Fetched,
}

/// Who accessed which dataset, when, under which grant (written by a CPC's receipt, and by
/// each fetch it serves).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRecord {
    /// Absent in records written before fetches were recorded: a receipt.
    #[serde(default)]
    pub event: AccessEvent,
    #[serde(with = "hex_bytes::id")]
    pub dataset: Hash,
    #[serde(with = "hex_bytes::id")]
    pub grant: Hash,
    pub requester: String,
    pub owner: String,
    pub cpc: String,
    pub records: u64,
    #[serde(with = "hex_bytes::id")]
    pub results_digest: Hash,
    pub at_ms: u64,
    /// The receipt's (or the fetch's) transaction, for its inclusion proof.
    #[serde(with = "hex_bytes::id")]
    pub receipt_tx: Hash,
}

/// Reads through a batch's pending writes to the store.
pub struct Overlay<'a> {
    store: &'a LedgerStore,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Overlay<'a> {
    pub fn new(store: &'a LedgerStore) -> Self {
        Self { store, writes: BTreeMap::new() }
    }

    pub fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, LedgerError> {
        let raw = match self.writes.get(key) {
            Some(v) => v.clone(),
            None => self.store.state(key)?,
        };
        raw.map(|v| decode(key, &v)).transpose()
    }

    pub fn put<T: Serialize>(&mut self, key: Vec<u8>, value: &T) {
        self.writes.insert(key, Some(serde_json::to_vec(value).expect("state records serialise")));
    }

    /// Every record under `prefix`, the batch's pending writes over the store's.
    pub fn prefix<T: DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<T>, LedgerError> {
        let mut all: BTreeMap<Vec<u8>, Vec<u8>> = self.store.state_prefix(prefix, usize::MAX)?.into_iter().collect();
        for (k, v) in self.writes.range(prefix.to_vec()..).take_while(|(k, _)| k.starts_with(prefix)) {
            match v {
                Some(v) => all.insert(k.clone(), v.clone()),
                None => all.remove(k),
            };
        }
        all.iter().map(|(k, v)| decode(k, v)).collect()
    }

    pub fn into_writes(self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        self.writes.into_iter().collect()
    }
}

/// The state root after a batch: `SHA-256(DST ‖ previous root ‖ count ‖ each write)`, each
/// write (in key order, as the overlay holds them) as `key length ‖ key ‖ 0` for a
/// deletion or `key length ‖ key ‖ 1 ‖ value length ‖ value`, lengths u32 BE. The first
/// batch starts from the zero root; a batch that writes nothing leaves the root as it is.
///
/// The root is a hash chain over the state's changes, not a Merkle tree over its entries:
/// it commits to the state (which is a function of its changes) and costs a pass over the
/// batch's writes only, but it cannot prove one entry. Its use is agreement: two validators
/// with equal roots hold the same contract state; at the first batch whose writes differ
/// anywhere, their roots differ from then on.
pub fn next_state_root(prev: &Hash, writes: &[(Vec<u8>, Option<Vec<u8>>)]) -> Hash {
    use sha2::{Digest as _, Sha256};
    if writes.is_empty() {
        return *prev;
    }
    let mut h = Sha256::new().chain_update(b"dualchain/v1/state-root").chain_update(prev);
    h.update((writes.len() as u64).to_be_bytes());
    for (k, v) in writes {
        h.update((k.len() as u32).to_be_bytes());
        h.update(k);
        match v {
            None => h.update([0]),
            Some(v) => {
                h.update([1]);
                h.update((v.len() as u32).to_be_bytes());
                h.update(v);
            }
        }
    }
    h.finalize().into()
}

/// Decodes a stored state record, naming the key when it does not parse.
pub fn decode<T: DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T, LedgerError> {
    serde_json::from_slice(value)
        .map_err(|e| LedgerError::Corrupt(format!("state record {}: {e}", String::from_utf8_lossy(key))))
}
