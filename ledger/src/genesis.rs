//! What the consortium fixed at genesis and every validator executes against. Both the
//! executor and the contracts read it; it depends on neither.
//!
//! Membership after genesis: the members named at genesis ([`Founders`]) register with
//! their certificate alone; any other member the consortium CA certifies joins only once
//! the membership quorum ([`Genesis::membership_quorum`]) of members in good standing
//! approved it, the same quorum that revokes a member (issue 19: "approved by a quorum of
//! existing institutions … a member leaves or is removed with the same quorum").

use std::collections::BTreeSet;

use bellperson::groth16::VerifyingKey;
use blstrs::Bls12;
use dualchain_crypto::cert::CaPublicKey;
use dualchain_prover::escrow::EscrowKey;
use dualchain_prover::supply::SupplyShape;
use serde::{Deserialize, Serialize};

/// A verifying key of fixed points, for a circuit of `public_inputs` inputs, under which no
/// proof verifies: the genesis of a ledger that sees no proofs (tests, fuzzing, benchmarks
/// of membership checks).
pub fn placeholder_verifying_key(public_inputs: usize) -> VerifyingKey<Bls12> {
    use group::prime::PrimeCurveAffine;
    let (g1, g2) = (blstrs::G1Affine::generator(), blstrs::G2Affine::generator());
    VerifyingKey {
        alpha_g1: g1,
        beta_g1: g1,
        beta_g2: g2,
        gamma_g2: g2,
        delta_g1: g1,
        delta_g2: g2,
        ic: vec![g1; public_inputs + 1],
    }
}

/// What the consortium fixed at genesis and every validator executes against.
#[derive(Clone)]
pub struct Genesis {
    /// The consortium CA: member certificates must chain to it.
    pub ca: CaPublicKey,
    /// Verifying keys of the policy circuit and of each supply shape (their parameter
    /// files' hashes are pinned at genesis).
    pub policy_vk: VerifyingKey<Bls12>,
    pub supply_vks: Vec<(SupplyShape, VerifyingKey<Bls12>)>,
    /// Longest grant a requester may ask for.
    pub grant_duration_max_s: u64,
    /// The membership quorum: distinct members in good standing whose `RevokeMember` it
    /// takes to revoke a member, and whose `AdmitMember` it takes to admit one not named at
    /// genesis (read it through [`Genesis::membership_quorum`], which is at least 1). No
    /// single institution, the KGC or the CA's holder included, removes or adds another
    /// where it is above 1. (The name predates admissions; consortium.toml keeps it.)
    pub revocation_quorum: u32,
    /// Who registers without approval.
    pub founders: Founders,
    /// The anonymous path (`AnonymousDemand`), where the consortium opened it: the
    /// verifying key of the anonymous policy circuit and the audit authorities' escrow key.
    /// Absent: anonymous demands are refused.
    pub anonymous: Option<Anonymity>,
}

/// What the anonymous path is checked against: the `policy-anonymous` and
/// `demand-nullifier` verifying keys and
/// where the escrow key requesters seal their credential index under comes from.
#[derive(Clone)]
pub struct Anonymity {
    pub vk: VerifyingKey<Bls12>,
    /// The `demand-nullifier` verifying key: a named demand of a member who could also
    /// ask anonymously proves its nullifier with it (one budget across both paths).
    pub demand_nullifier_vk: VerifyingKey<Bls12>,
    pub escrow: Escrow,
}

/// Where the escrow key comes from (`dualchain_prover::escrow`; no one holds its secret
/// alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Escrow {
    /// A key made before genesis, by a DKG the ledger did not see (tests, and a test
    /// consortium whose one machine ran it).
    Fixed(EscrowKey),
    /// The audit committee that makes the key on chain with its DKG (the `escrow`
    /// contract): `members[k]` is authority `k + 1`, any `threshold` of them open a sealed
    /// identity. The anonymous path opens once the key is formed.
    Committee { members: Vec<String>, threshold: u16 },
}

/// The members a ledger registers on their certificate alone (`RegisterMember`); every
/// other member certified by the consortium CA waits for the membership quorum's
/// `AdmitMember` approvals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Founders {
    /// Any certified member registers at once: no admission by quorum. Only for ledgers
    /// that test something else ([`Genesis::without_proofs`]: tests, fuzzing, benchmarks);
    /// a node's genesis always lists its founders.
    AnyCertified,
    /// The members named at genesis (consortium.toml's `members`), by id.
    Listed(BTreeSet<String>),
}

impl Founders {
    /// The founders named by these ids.
    pub fn listed<S: Into<String>>(ids: impl IntoIterator<Item = S>) -> Self {
        Self::Listed(ids.into_iter().map(Into::into).collect())
    }

    /// Whether `member` registers without approval.
    pub fn contains(&self, member: &str) -> bool {
        match self {
            Founders::AnyCertified => true,
            Founders::Listed(ids) => ids.contains(member),
        }
    }
}

impl Genesis {
    /// A genesis whose ledger sees no proofs (tests, fuzzing, benchmarks of membership
    /// checks): the placeholder verifying key, no supply shapes, grants of at most a
    /// minute, any one member's approval revokes a member, and every certified member
    /// registers at once ([`Founders::AnyCertified`]; set `founders` to test admissions).
    pub fn without_proofs(ca: CaPublicKey) -> Self {
        Self {
            ca,
            policy_vk: placeholder_verifying_key(3),
            supply_vks: vec![],
            grant_duration_max_s: 60,
            revocation_quorum: 1,
            founders: Founders::AnyCertified,
            anonymous: None,
        }
    }

    /// Distinct approvals of members in good standing that revoke a member, or admit one
    /// not named at genesis (`revocation_quorum`, at least 1).
    pub fn membership_quorum(&self) -> u32 {
        self.revocation_quorum.max(1)
    }

    /// The parameters genesis sets, in effect until the members change them (the
    /// registry contract's `change_parameters`).
    pub fn parameters(&self) -> Parameters {
        Parameters { grant_duration_max_s: self.grant_duration_max_s, membership_quorum: self.membership_quorum() }
    }

    /// The domain its members' transactions are signed under.
    pub fn tx_domain(&self) -> crate::tx::TxDomain {
        crate::tx::TxDomain::of(&self.ca)
    }
}

/// The consortium's parameters that its members change by quorum (the registry
/// contract's `change_parameters`); genesis sets the first ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameters {
    /// The longest grant a requester may be given (seconds).
    pub grant_duration_max_s: u64,
    /// Approvals of members in good standing that revoke a member, admit one not named at
    /// genesis, or change these parameters.
    pub membership_quorum: u32,
}

impl Parameters {
    /// What approvals of one proposed set name: SHA-256 of its JSON.
    pub fn digest(&self) -> crate::tx::Hash {
        use sha2::Digest as _;
        sha2::Sha256::digest(serde_json::to_vec(self).expect("parameters serialise")).into()
    }
}
