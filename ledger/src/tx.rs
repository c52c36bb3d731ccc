//! Transactions: a member's signed statement to the native contracts.
//!
//! Wire form: `version (1) ‖ body length (u32 BE) ‖ body ‖ Ed25519 signature (64)`, the body
//! being the JSON of [`Tx`]. The signature covers the body bytes exactly as sent, under a
//! domain naming the consortium (`dualchain/v1/ledger-tx/<consortium id>`, [`TxDomain`]),
//! so no canonical re-serialisation is needed; the transaction
//! hash is SHA-256 over the whole wire form. JSON keeps the payload readable for auditors
//! and for the HTTP API; binary objects (certificates, proofs, ciphertexts) travel as hex of
//! their own canonical encodings and are decoded, bounded and checked by the contracts.

use blstrs::Scalar as Fr;
use dualchain_crypto::encoding::{Reader, Writer};
use dualchain_crypto::sign::{PublicKey, SigningKeypair, SIGNATURE_LEN};
use dualchain_crypto::DecodeError;
use dualchain_prover::field::{fr_from_bytes, fr_to_bytes};
use dualchain_prover::supply::Requirement;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::consent::Purpose;
use crate::error::LedgerError;
use crate::reason::{Reason, TxPart};

/// Wire format version.
pub const TX_VERSION: u8 = 1;
/// Largest transaction on the wire (an ABE ciphertext and a policy are the big parts).
pub const TX_LEN_MAX: usize = 256 << 10;
/// Longest member id, dataset name or reason.
pub const NAME_LEN_MAX: usize = 128;
/// Signature domain of ledger transactions (see [`TxDomain`], which adds the consortium).
pub const TX_SIGNING_USE: &str = "ledger-tx";

/// What a member's transaction signature is made under: [`TX_SIGNING_USE`], then `/` and
/// the consortium's identity, the hex SHA-256 of its CA's encoded public key (member
/// certificates chain to that CA). With the sender and nonce in the signed body, a
/// signature covers (consortium, member, sequence, payload): a transaction captured in one
/// consortium verifies in no other, even where the same member key is registered in both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxDomain(String);

impl TxDomain {
    /// The domain of the consortium whose CA is `ca`.
    pub fn of(ca: &dualchain_crypto::cert::CaPublicKey) -> Self {
        use dualchain_crypto::Codec;
        let id = Sha256::new().chain_update(b"dualchain/v1/consortium").chain_update(ca.to_bytes()).finalize();
        Self(format!("{TX_SIGNING_USE}/{}", hex::encode(id)))
    }

    /// The signing use string ([`dualchain_crypto::sign::domain_message`]).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub type Hash = [u8; 32];

/// Hex (de)serialisation of byte strings and 32-byte ids in transaction JSON.
pub mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <&str>::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }

    /// Exactly N bytes (32-byte ids, 64-byte signatures).
    pub mod id {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer, const N: usize>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&hex::encode(v))
        }
        pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<[u8; N], D::Error> {
            let s = <&str>::deserialize(d)?;
            let mut out = [0u8; N];
            hex::decode_to_slice(s, &mut out).map_err(serde::de::Error::custom)?;
            Ok(out)
        }
    }

    /// A list of byte strings, each in hex.
    pub mod list {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(v.iter().map(hex::encode))
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
            Vec::<String>::deserialize(d)?
                .into_iter()
                .map(|h| hex::decode(h).map_err(serde::de::Error::custom))
                .collect()
        }
    }

    /// An optional 32-byte id (absent or null: `None`).
    pub mod opt_id {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(v: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(b) => s.serialize_some(&hex::encode(b)),
                None => s.serialize_none(),
            }
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 32]>, D::Error> {
            let Some(h) = Option::<String>::deserialize(d)? else { return Ok(None) };
            let mut out = [0u8; 32];
            hex::decode_to_slice(h, &mut out).map_err(serde::de::Error::custom)?;
            Ok(Some(out))
        }
    }
}

/// A scalar of BLS12-381 as 32 little-endian bytes (canonical: decoding checks the range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrBytes(#[serde(with = "hex_bytes::id")] pub [u8; 32]);

impl FrBytes {
    pub fn from_fr(x: &Fr) -> Self {
        Self(fr_to_bytes(x))
    }
    pub fn to_fr(&self) -> Result<Fr, String> {
        fr_from_bytes(&self.0).ok_or_else(|| "field element is not canonical".to_string())
    }
}

/// What a dataset's demands may ask, set by its owner at registration (issue: supply proofs
/// must not be a query oracle). A supply proof publishes one bit: at least `threshold`
/// records match the demand. Unbounded, demands with threshold 1 and narrow value and time
/// windows recover single patients' values by binary search. The access contract refuses a
/// demand outside this policy, with the limit it broke.
///
/// Beyond DESIGN.md, which lets any member post any demand: the cohort minimum is the
/// k-anonymity bound of Sweeney (2002) applied to what a supply proof reveals; the value
/// span, time window and per-requester budget limit how finely and how often one member
/// can partition the data (a differencing attack needs many narrow queries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Disclosure {
    /// A demand's threshold is at least this.
    pub min_cohort: u16,
    /// A demand bounded on both sides spans at least this many thousandths of the unit
    /// (values are fixed-point, see `supply::fhir`).
    pub min_value_span: u32,
    /// A demand's time window spans at least this many minutes.
    pub min_window_min: u32,
    /// Demands one requester may publish on the dataset per epoch.
    pub demands_per_epoch: u16,
    /// The epoch, in hours of ledger time.
    pub epoch_h: u32,
}

impl Default for Disclosure {
    /// A cohort of 10, 10 units of value, an hour of time, 10 demands a day.
    fn default() -> Self {
        Self { min_cohort: 10, min_value_span: 10_000, min_window_min: 60, demands_per_epoch: 10, epoch_h: 24 }
    }
}

impl Disclosure {
    /// Largest cohort minimum (a dataset's largest shape).
    pub const COHORT_MAX: u16 = 4096;
    /// Largest budget per epoch.
    pub const DEMANDS_PER_EPOCH_MAX: u16 = 1000;
    /// Longest epoch: a year.
    pub const EPOCH_H_MAX: u32 = 24 * 366;

    /// Bounds a policy must be within to be registered.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=Self::COHORT_MAX).contains(&self.min_cohort) {
            return Err(format!("min_cohort must be 1..={}", Self::COHORT_MAX));
        }
        if !(1..=Self::DEMANDS_PER_EPOCH_MAX).contains(&self.demands_per_epoch) {
            return Err(format!("demands_per_epoch must be 1..={}", Self::DEMANDS_PER_EPOCH_MAX));
        }
        if !(1..=Self::EPOCH_H_MAX).contains(&self.epoch_h) {
            return Err(format!("epoch_h must be 1..={}", Self::EPOCH_H_MAX));
        }
        Ok(())
    }

    /// The epoch a ledger time falls in.
    pub fn epoch_of(&self, time_ms: u64) -> u64 {
        time_ms / (u64::from(self.epoch_h.max(1)) * 3_600_000)
    }

    /// Whether a requirement asks no more finely than this policy allows: the first limit
    /// it breaks, as the access contract's refusal, or none.
    pub fn check(&self, r: &Requirement) -> Result<(), Reason> {
        if r.threshold < self.min_cohort {
            return Err(Reason::CohortTooSmall { min: self.min_cohort });
        }
        if let (Some(lo), Some(hi)) = (r.value_min, r.value_max) {
            if hi.saturating_sub(lo) < self.min_value_span {
                return Err(Reason::ValueSpanTooNarrow { min: self.min_value_span });
            }
        }
        if r.time_to.saturating_sub(r.time_from) < self.min_window_min {
            return Err(Reason::TimeWindowTooNarrow { min_minutes: self.min_window_min });
        }
        Ok(())
    }
}

/// A dataset registration (data chain): only what the contracts check. Everything else
/// about the dataset (its name, where its records are, the manifest hash H1, how many
/// records it holds and the exact zero-knowledge policy) is inside the CP-ABE index, so
/// a member whose attributes do not satisfy the policy learns neither where the data is
/// nor how large it is (DESIGN.md put H1, the CPC and the count on chain beside the index;
/// that made the CP-ABE gate protect nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetRegistration {
    /// An identifier the owner's node draws at random (it reveals neither owner nor name).
    #[serde(with = "hex_bytes::id")]
    pub dataset: Hash,
    /// The dataset commitment C_D the supply circuit opens.
    pub commitment: FrBytes,
    /// Records the supply circuit holds (64, 256, 1024 or 4096): the proof's shape, a size
    /// class and no finer.
    pub capacity: u64,
    /// The access policy, one statement ([`crate::policy`]) in canonical text. Its CP-ABE
    /// form is public by the scheme anyway (AC17 ciphertexts carry their policy).
    pub policy: String,
    /// The index `{dataset, name, H1, CPC, records}` encrypted under the statement's
    /// CP-ABE form.
    #[serde(with = "hex_bytes")]
    pub abe_index: Vec<u8>,
    /// The hash of the statement's zero-knowledge form (the policy proof's public input).
    pub zk_policy_hash: FrBytes,
    /// The consent commitment C_K to the records' consent masks (the supply circuit's;
    /// [`crate::consent`]); `CommitConsent` replaces it.
    pub consent: FrBytes,
    /// What demands on the dataset may ask (the defaults where absent).
    #[serde(default)]
    pub disclosure: Disclosure,
}

/// Where a credential's anonymous leaf sits in the credential tree: at its index plus
/// this. One tree, so one root and one revocation rule for both forms; the two leaf forms
/// hash different inputs, so neither circuit accepts the other's leaf.
pub const ANONYMOUS_LEAF_OFFSET: u64 = 1 << 31;

/// What marks a pseudonymous sender. The registry refuses member ids that start with it,
/// so no member can take a pseudonym's name.
pub const PSEUDONYM_PREFIX: &str = "anon:";

/// RFC 4648 base32, lower case: the alphabet of a pseudonym's key.
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// The sender name of a one-time key: `anon:` and the key in unpadded lower-case base32
/// (57 characters), a valid identifier wherever the consortium names a party (re-key
/// tokens, fetch requests) and distinct from every member id. A transaction from it is
/// signed by that key, so the name is all a validator needs to check it.
pub fn pseudonym_of(key: &PublicKey) -> String {
    let mut out = String::with_capacity(PSEUDONYM_PREFIX.len() + 52);
    out.push_str(PSEUDONYM_PREFIX);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in key.as_bytes() {
        acc = (acc << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Whether `sender` names a pseudonym (it may still name no valid key).
pub fn is_pseudonym(sender: &str) -> bool {
    sender.starts_with(PSEUDONYM_PREFIX)
}

/// The one-time key a pseudonymous sender names: `None` for a member id, `Some(Err)` for
/// a pseudonym that does not name a key, or names one in another spelling than
/// [`pseudonym_of`]'s.
pub fn pseudonym_key(sender: &str) -> Option<Result<PublicKey, String>> {
    let encoded = sender.strip_prefix(PSEUDONYM_PREFIX)?;
    let decode = || -> Result<PublicKey, String> {
        let mut raw = Vec::with_capacity(33);
        let (mut acc, mut bits) = (0u32, 0u32);
        for c in encoded.bytes() {
            let v = BASE32.iter().position(|x| *x == c).ok_or("pseudonym: not base32")? as u32;
            acc = (acc << 5) | v;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                raw.push((acc >> bits) as u8);
            }
        }
        let raw: [u8; 32] = raw.try_into().map_err(|_| "pseudonym: not a 32-byte key".to_string())?;
        let key = PublicKey::from_raw(&raw).map_err(|e| format!("pseudonym: {e}"))?;
        // One name per key: trailing bits zero, nothing appended.
        if pseudonym_of(&key) != sender {
            return Err("pseudonym: not the key's canonical name".into());
        }
        Ok(key)
    };
    Some(decode())
}

/// An anonymous demand (see [`TxKind::AnonymousDemand`]). Every field but the proof's
/// witnesses is public; none names the member. The proof's statement
/// (`dualchain_prover::anonymous::AnonymousStatement`) is derived by the ledger: `root`,
/// the dataset's policy hash, the binding of `demand` to the sender's one-time key, the
/// scope of the dataset and the epoch at ledger time, the dataset's demand budget, the
/// `nullifier`, the consortium's escrow key and `sealed_identity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnonymousDemand {
    #[serde(with = "hex_bytes::id")]
    pub demand: Hash,
    #[serde(with = "hex_bytes::id")]
    pub dataset: Hash,
    pub requirement: Requirement,
    /// What the records are for; an anonymous requester's use is counted as a research
    /// institute's (the role its credential need not reveal).
    #[serde(default)]
    pub purpose: Purpose,
    /// The credential root the proof names.
    pub root: FrBytes,
    pub nullifier: FrBytes,
    /// The credential's leaf index, sealed under the escrow key (`escrow::Sealed`).
    #[serde(with = "hex_bytes")]
    pub sealed_identity: Vec<u8>,
    /// The one-time delegating public key the grant's re-encryption key is made for.
    #[serde(with = "hex_bytes")]
    pub delegating_key: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub proof: Vec<u8>,
}

/// A named demand's nullifier: one of the `budget` nullifiers the requester's credential
/// has for the dataset and epoch, the same ones its anonymous demands spend, with a
/// `demand-nullifier` proof (`dualchain_prover::anonymous::DemandNullifierCircuit`) against
/// the anonymous leaf the ledger holds for the signer's credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemandNullifier {
    pub nullifier: FrBytes,
    #[serde(with = "hex_bytes")]
    pub proof: Vec<u8>,
}

/// A dataset's new consent commitment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentCommitment {
    #[serde(with = "hex_bytes::id")]
    pub dataset: Hash,
    pub commitment: FrBytes,
}

/// What a transaction asks of the contracts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TxKind {
    /// `registry`: a member joins with its CA certificate (signed by the certified key).
    RegisterMember {
        #[serde(with = "hex_bytes")]
        certificate: Vec<u8>,
    },
    /// `registry`: the KGC, having checked the member's attribute opening against its
    /// certificate, publishes its credential leaf (attributes stay private), and, where the
    /// member enrolled with a nullifier key commitment, its anonymous leaf
    /// (`dualchain_prover::anonymous::AnonymousCredential::leaf`), which the tree holds at
    /// the credential's index plus [`ANONYMOUS_LEAF_OFFSET`].
    IssueCredential {
        member: String,
        leaf: FrBytes,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        anonymous_leaf: Option<FrBytes>,
    },
    /// `registry`: the KGC withdraws a credential (the credential root changes).
    RevokeCredential { member: String, reason: String },
    /// `registry`: a member's approval of revoking `member` (and its credential); at the
    /// membership quorum nothing the member signs counts any more.
    RevokeMember { member: String, reason: String },
    /// `registry`: a member's approval of admitting `member`, a member not named at
    /// genesis whose `RegisterMember` opened an admission, with exactly the certificate
    /// whose SHA-256 (over its encoding) is `certificate_sha256`. At the membership quorum
    /// the member is registered.
    AdmitMember {
        member: String,
        #[serde(with = "hex_bytes::id")]
        certificate_sha256: Hash,
    },
    /// `registry`: a member's approval of these consortium parameters. At the membership
    /// quorum in effect they replace the ones in effect, from the next transaction on.
    ChangeParameters { grant_duration_max_s: u64, membership_quorum: u32 },
    /// `abe`: an owner registers a dataset.
    RegisterDataset(DatasetRegistration),
    /// `access`: a requester publishes a data requirement against a dataset.
    Demand {
        #[serde(with = "hex_bytes::id")]
        demand: Hash,
        #[serde(with = "hex_bytes::id")]
        dataset: Hash,
        requirement: Requirement,
        /// What the records are for (`HRESCH` where absent): with the requester's role, the
        /// use the supply proof counts consented records for ([`crate::consent`]).
        #[serde(default)]
        purpose: Purpose,
        /// Where the requester's credential has an anonymous leaf: one of its nullifiers
        /// for the dataset and epoch, with its proof, so that the member's named and
        /// anonymous demands share one budget ([`DemandNullifier`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nullifier: Option<DemandNullifier>,
    },
    /// `access` + `zk`: a requester publishes a demand without naming itself: the sender is
    /// a pseudonym (its one-time key, [`pseudonym_of`]), and an anonymous policy proof
    /// shows that some credential in the tree satisfies the dataset's policy, spends one of
    /// that credential's nullifiers for the dataset and epoch, and seals the credential's
    /// index for the audit authorities ([`AnonymousDemand`]).
    AnonymousDemand(AnonymousDemand),
    /// `zk`: the owner proves that its committed dataset meets the demand.
    SupplyProof {
        #[serde(with = "hex_bytes::id")]
        demand: Hash,
        #[serde(with = "hex_bytes")]
        proof: Vec<u8>,
    },
    /// `zk` + `access`: the requester proves its credential satisfies the dataset's policy
    /// (against the credential root it names) and asks for a grant of `duration_s`. From
    /// the pseudonym that made an anonymous demand: no proof (its demand's stands for it)
    /// and the root that proof named.
    RequestAccess {
        #[serde(with = "hex_bytes::id")]
        request: Hash,
        #[serde(with = "hex_bytes::id")]
        demand: Hash,
        root: FrBytes,
        #[serde(with = "hex_bytes")]
        proof: Vec<u8>,
        duration_s: u64,
    },
    /// `access`: the owner's node issues the re-encryption key for a grant, sealed to the
    /// grant's CPC with IBE (only that CPC can open it).
    IssueReKey {
        #[serde(with = "hex_bytes::id")]
        grant: Hash,
        #[serde(with = "hex_bytes")]
        sealed_token: Vec<u8>,
        /// The delivered records' patient pseudonyms for this grant, sealed to the
        /// requester with IBE (empty: the records carry no pseudonyms).
        #[serde(with = "hex_bytes", default, skip_serializing_if = "Vec::is_empty")]
        sealed_pseudonyms: Vec<u8>,
    },
    /// `audit`: a member's approval of opening who made the anonymous demand of
    /// `pseudonym`, for `case` (why, for the record). At the membership quorum the case is
    /// open to the audit authorities' decryption shares.
    OpenAudit { pseudonym: String, case: String },
    /// `audit`: an audit authority's decryption share of an approved case's sealed
    /// identity (`escrow::DecryptionShare`, bound to the case). At t valid shares the
    /// ledger opens it and records the member.
    AuditShare {
        #[serde(with = "hex_bytes::id")]
        case: Hash,
        #[serde(with = "hex_bytes")]
        share: Vec<u8>,
    },
    /// `escrow`: an audit authority's round of the escrow key's DKG (Pedersen's joint
    /// Feldman, `dualchain_prover::escrow`): its dealing (the Feldman commitments) and its
    /// share for each authority, IBE-sealed to that authority's identity, in committee
    /// order.
    EscrowDealing {
        #[serde(with = "hex_bytes")]
        dealing: Vec<u8>,
        #[serde(with = "hex_bytes::list")]
        sealed_shares: Vec<Vec<u8>>,
    },
    /// `escrow`: an audit authority accuses `dealer` (an authority index) of a share that
    /// does not open or does not match its dealing.
    EscrowComplaint { dealer: u16 },
    /// `escrow`: the accused dealer answers by revealing the share it owed `recipient`;
    /// a share that matches its dealing clears it.
    EscrowReveal {
        recipient: u16,
        #[serde(with = "hex_bytes")]
        share: Vec<u8>,
    },
    /// `escrow`: an audit authority states that it checked its share of every dealing
    /// (each verified, or revealed after its complaint): the DKG may close without waiting
    /// out its window once every authority did.
    EscrowAck {},
    /// `escrow`: an audit authority closes the DKG: the key forms from the dealings of
    /// every dealer no standing complaint disqualifies.
    CloseEscrow {},
    /// `abe`: the owner erases a dataset (the tombstone: when and why, nothing of the
    /// data). Its CPC deletes the records and every grant's results; the owner's node
    /// destroys the dataset's delegating key, so copies kept anywhere no longer decrypt.
    EraseDataset {
        #[serde(with = "hex_bytes::id")]
        dataset: Hash,
        reason: String,
    },
    /// `access`: the owner (or the KGC) revokes a grant.
    RevokeGrant {
        #[serde(with = "hex_bytes::id")]
        grant: Hash,
        reason: String,
    },
    /// `access`: the CPC's receipt for a completed batch re-encryption; creates the
    /// access record.
    Receipt {
        #[serde(with = "hex_bytes::id")]
        grant: Hash,
        records: u64,
        #[serde(with = "hex_bytes::id")]
        results_digest: Hash,
    },
    /// `access`: the CPC records a fetch of a grant's re-encrypted records by its
    /// requester, before it serves them: `records` results whose SHA-256 is `results_digest`.
    Fetched {
        #[serde(with = "hex_bytes::id")]
        grant: Hash,
        records: u64,
        #[serde(with = "hex_bytes::id")]
        results_digest: Hash,
    },
    /// `access`: a clinician asks a hospital for emergency access (break-glass: the
    /// `emergency` contract) for a purpose of use (`ETREAT`) and `duration_s`.
    /// The patients and the justification are sealed to the owner with IBE; the chain
    /// keeps their SHA-256 (`scope_digest`), for the review.
    BreakGlass {
        #[serde(with = "hex_bytes::id")]
        request: Hash,
        owner: String,
        purpose: String,
        duration_s: u64,
        #[serde(with = "hex_bytes::id")]
        scope_digest: Hash,
        #[serde(with = "hex_bytes")]
        sealed_scope: Vec<u8>,
    },
    /// `access`: the owner's node answers a break-glass request with a grant over the
    /// records of the named patients in one of its datasets, its re-key issued at once.
    /// `sealed_pointer` tells the clinician where the records are (the index's
    /// `{dataset, name, H1, CPC, records}`), sealed to it with IBE: the clinician need not
    /// satisfy the dataset's access policy.
    BreakGlassGrant {
        #[serde(with = "hex_bytes::id")]
        request: Hash,
        #[serde(with = "hex_bytes::id")]
        grant: Hash,
        #[serde(with = "hex_bytes::id")]
        dataset: Hash,
        #[serde(with = "hex_bytes")]
        sealed_token: Vec<u8>,
        #[serde(with = "hex_bytes", default, skip_serializing_if = "Vec::is_empty")]
        sealed_pseudonyms: Vec<u8>,
        #[serde(with = "hex_bytes")]
        sealed_pointer: Vec<u8>,
    },
    /// `consent`: a hospital publishes new consent commitments C_K for its datasets (after a
    /// patient's consent changed; it may re-commit them all with fresh salts, so the chain
    /// does not tell which datasets hold that patient's records).
    CommitConsent { commitments: Vec<ConsentCommitment> },
    /// `access`: a reviewer at the owner marks a break-glass use justified or not. An
    /// unjustified one ends its grants, and with `revoke_credential` asks the KGC to
    /// withdraw the clinician's credential (the usual revocation).
    ReviewBreakGlass {
        #[serde(with = "hex_bytes::id")]
        request: Hash,
        justified: bool,
        note: String,
        #[serde(default)]
        revoke_credential: bool,
    },
}

impl TxKind {
    /// The chain a transaction of this kind lands on (DESIGN.md §2).
    pub fn chain(&self) -> dualchain_storage::ledger::Chain {
        use dualchain_storage::ledger::Chain;
        match self {
            TxKind::RegisterMember { .. }
            | TxKind::IssueCredential { .. }
            | TxKind::RevokeCredential { .. }
            | TxKind::RevokeMember { .. }
            | TxKind::AdmitMember { .. }
            | TxKind::ChangeParameters { .. }
            | TxKind::RegisterDataset(_)
            | TxKind::EraseDataset { .. }
            | TxKind::EscrowDealing { .. }
            | TxKind::EscrowComplaint { .. }
            | TxKind::EscrowReveal { .. }
            | TxKind::CloseEscrow {}
            | TxKind::EscrowAck {}
            | TxKind::OpenAudit { .. }
            | TxKind::AuditShare { .. } => Chain::Data,
            _ => Chain::Access,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            TxKind::RegisterMember { .. } => "register_member",
            TxKind::IssueCredential { .. } => "issue_credential",
            TxKind::RevokeCredential { .. } => "revoke_credential",
            TxKind::RevokeMember { .. } => "revoke_member",
            TxKind::AdmitMember { .. } => "admit_member",
            TxKind::ChangeParameters { .. } => "change_parameters",
            TxKind::RegisterDataset(_) => "register_dataset",
            TxKind::Demand { .. } => "demand",
            TxKind::AnonymousDemand(_) => "anonymous_demand",
            TxKind::SupplyProof { .. } => "supply_proof",
            TxKind::RequestAccess { .. } => "request_access",
            TxKind::IssueReKey { .. } => "issue_rekey",
            TxKind::EraseDataset { .. } => "erase_dataset",
            TxKind::RevokeGrant { .. } => "revoke_grant",
            TxKind::Receipt { .. } => "receipt",
            TxKind::Fetched { .. } => "fetched",
            TxKind::BreakGlass { .. } => "break_glass",
            TxKind::BreakGlassGrant { .. } => "break_glass_grant",
            TxKind::ReviewBreakGlass { .. } => "review_break_glass",
            TxKind::CommitConsent { .. } => "commit_consent",
            TxKind::EscrowDealing { .. } => "escrow_dealing",
            TxKind::EscrowComplaint { .. } => "escrow_complaint",
            TxKind::EscrowReveal { .. } => "escrow_reveal",
            TxKind::CloseEscrow {} => "close_escrow",
            TxKind::EscrowAck {} => "escrow_ack",
            TxKind::OpenAudit { .. } => "open_audit",
            TxKind::AuditShare { .. } => "audit_share",
        }
    }
}

/// A transaction body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tx {
    /// The signing member's id.
    pub sender: String,
    /// Chosen by the sender, unique per sender (a replay of the same bytes is a duplicate).
    pub nonce: u64,
    pub kind: TxKind,
}

/// A decoded, not yet verified transaction with its wire bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTx {
    pub tx: Tx,
    pub body: Vec<u8>,
    pub signature: [u8; SIGNATURE_LEN],
    pub hash: Hash,
}

impl SignedTx {
    /// Signs `tx` with the member's key for the consortium of `domain`.
    pub fn sign(tx: Tx, key: &SigningKeypair, domain: &TxDomain) -> Result<Self, LedgerError> {
        let body = serde_json::to_vec(&tx).map_err(|e| LedgerError::Malformed(e.to_string()))?;
        let signature = key.sign(domain.as_str(), &body);
        let mut s = Self { tx, body, signature, hash: [0; 32] };
        s.hash = tx_hash(&s.to_bytes());
        if s.hash == [0; 32] {
            return Err(LedgerError::Malformed("degenerate hash".into()));
        }
        Ok(s)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(1 + 4 + self.body.len() + SIGNATURE_LEN);
        w.u8(TX_VERSION);
        w.bytes(&self.body);
        w.fixed(&self.signature);
        w.into_bytes()
    }

    /// Decodes the wire form: bounded, versioned, no trailing bytes, body a valid [`Tx`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TxDecodeError> {
        let fail = |part, detail: String| TxDecodeError { part, detail };
        if bytes.len() > TX_LEN_MAX {
            return Err(fail(TxPart::TooLong, format!("transaction of {} bytes exceeds {TX_LEN_MAX}", bytes.len())));
        }
        let mut r = Reader::new(bytes, "transaction");
        let version = r.u8().map_err(|_| fail(TxPart::Empty, "empty transaction".into()))?;
        if version != TX_VERSION {
            return Err(fail(TxPart::Version, format!("unknown transaction version {version}")));
        }
        let framing = |e: DecodeError| fail(TxPart::Framing, e.to_string());
        let body = r.bytes("transaction body", TX_LEN_MAX).map_err(framing)?.to_vec();
        let signature = r.array::<SIGNATURE_LEN>().map_err(framing)?;
        r.finish().map_err(framing)?;
        let tx: Tx = serde_json::from_slice(&body).map_err(|e| fail(TxPart::Body, format!("body: {e}")))?;
        Ok(Self { tx, body, signature, hash: tx_hash(bytes) })
    }

    /// Whether `key` signed this transaction for the consortium of `domain`.
    pub fn verify(&self, key: &PublicKey, domain: &TxDomain) -> bool {
        key.verify(domain.as_str(), &self.body, &self.signature)
    }
}

/// A member's consensus client id: the first 8 bytes of SHA-256 over its id. A request
/// carrying a member's transaction must name this client and the transaction's nonce as
/// its request number (checked before ordering, `dualchain::validator::MemberRequests`).
pub fn client_id(member: &str) -> u64 {
    let h = Sha256::digest(member.as_bytes());
    u64::from_be_bytes(h[..8].try_into().expect("8 bytes"))
}

/// What an `AdmitMember` names: the plain SHA-256 of a member certificate's encoding (as
/// `sha256sum` of the decoded bytes prints it, so an approver can check it by hand).
pub fn certificate_sha256(certificate: &[u8]) -> Hash {
    Sha256::digest(certificate).into()
}

/// SHA-256 over a transaction's wire bytes (also for bytes that do not decode).
pub fn tx_hash(wire: &[u8]) -> Hash {
    Sha256::new().chain_update(b"dualchain/v1/tx").chain_update(wire).finalize().into()
}

/// What the contracts made of a transaction; recorded in its block (and hashed with it:
/// a refusal holds only its [`Reason`] code, see [`crate::reason`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Accepted,
    Rejected {
        reason: Reason,
    },
    /// Not a transaction: a validator set change that consensus ordered and decided (it
    /// scheduled the set of `epoch`, or refused it alike everywhere; `GET /validators`
    /// shows which). Recorded so that the chain shows when it was ordered.
    ValidatorSetChange {
        epoch: u64,
    },
}

impl Outcome {
    pub fn is_accepted(&self) -> bool {
        matches!(self, Outcome::Accepted)
    }
    pub fn reason(&self) -> Option<&Reason> {
        match self {
            Outcome::Accepted | Outcome::ValidatorSetChange { .. } => None,
            Outcome::Rejected { reason } => Some(reason),
        }
    }
}

/// Why bytes are not a transaction: the layer that failed (the code a block records) and
/// the decoder's words (a note beside the block, never hashed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct TxDecodeError {
    pub part: TxPart,
    pub detail: String,
}

impl From<TxDecodeError> for LedgerError {
    fn from(e: TxDecodeError) -> Self {
        LedgerError::Malformed(e.detail)
    }
}
