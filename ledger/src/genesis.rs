//! What the consortium fixed at genesis and every validator executes against. Both the
//! executor and the contracts read it; it depends on neither.

use bellperson::groth16::VerifyingKey;
use blstrs::Bls12;
use dualchain_crypto::cert::CaPublicKey;
use dualchain_prover::supply::SupplyShape;

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
    /// Distinct members whose `RevokeMember` it takes to revoke a member (at least 1):
    /// no single institution, the KGC included, removes another where it is above 1.
    pub revocation_quorum: u32,
}

impl Genesis {
    /// A genesis whose ledger sees no proofs (tests, fuzzing, benchmarks of membership
    /// checks): the placeholder verifying key, no supply shapes, grants of at most a
    /// minute, and any one member's approval revokes a member.
    pub fn without_proofs(ca: CaPublicKey) -> Self {
        Self {
            ca,
            policy_vk: placeholder_verifying_key(3),
            supply_vks: vec![],
            grant_duration_max_s: 60,
            revocation_quorum: 1,
        }
    }

    /// The domain its members' transactions are signed under.
    pub fn tx_domain(&self) -> crate::tx::TxDomain {
        crate::tx::TxDomain::of(&self.ca)
    }
}
