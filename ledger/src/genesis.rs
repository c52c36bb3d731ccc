//! What the consortium fixed at genesis and every validator executes against. Both the
//! executor and the contracts read it; it depends on neither.

use bellperson::groth16::VerifyingKey;
use blstrs::Bls12;
use dualchain_crypto::cert::CaPublicKey;
use dualchain_prover::supply::SupplyShape;

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
}
