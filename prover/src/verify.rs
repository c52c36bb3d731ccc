//! Groth16 verification: single proofs (bellperson's verifier) and batches.
//!
//! Batch verification of n proofs of one circuit (the small-exponent test of Bellare,
//! Garay and Rabin, EUROCRYPT '98, as in the Zcash protocol spec §B.2): with 128-bit random
//! `r_i`, check
//! `Π e(r_i·A_i, B_i) · e(−Σr_i·α, β) · e(−Σ r_i·IC(x_i), γ) · e(−Σ r_i·C_i, δ) = 1`,
//! one multi-Miller loop over n + 3 pairs and one final exponentiation. A failing batch
//! is split in halves recursively to name the bad proofs.

use bellperson::groth16::{self, PreparedVerifyingKey, Proof, VerifyingKey};
use blstrs::{Bls12, G1Affine, G1Projective, G2Affine, G2Prepared, Scalar as Fr};
use ff::Field;
use group::{prime::PrimeCurveAffine, Curve, Group};
use pairing::{MillerLoopResult, MultiMillerLoop};
use rand_core::RngCore;
use rayon::prelude::*;

use crate::backend::{CpuBackend, MillerBackend};
use crate::error::ProverError;

/// Length of a proof's canonical encoding (compressed A ‖ B ‖ C).
pub const PROOF_LEN: usize = 48 + 96 + 48;

/// Why a verification failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("{expected} public inputs expected, got {found}")]
    PublicInputCount { expected: usize, found: usize },
    #[error("the proof does not verify")]
    Invalid,
    #[error("proofs {0:?} of the batch do not verify")]
    BadProofs(Vec<usize>),
}

/// Verifies one proof.
pub fn verify(
    pvk: &PreparedVerifyingKey<Bls12>,
    vk: &VerifyingKey<Bls12>,
    proof: &Proof<Bls12>,
    inputs: &[Fr],
) -> Result<(), VerifyError> {
    if inputs.len() + 1 != vk.ic.len() {
        return Err(VerifyError::PublicInputCount { expected: vk.ic.len() - 1, found: inputs.len() });
    }
    match groth16::verify_proof(pvk, proof, inputs) {
        Ok(true) => Ok(()),
        _ => Err(VerifyError::Invalid),
    }
}

/// A verifying key prepared for batch verification.
pub struct BatchVerifier {
    vk: VerifyingKey<Bls12>,
    pvk: PreparedVerifyingKey<Bls12>,
    beta: G2Prepared,
    gamma: G2Prepared,
    delta: G2Prepared,
    miller: std::sync::Arc<dyn MillerBackend>,
}

impl BatchVerifier {
    pub fn new(vk: &VerifyingKey<Bls12>) -> Self {
        Self {
            vk: vk.clone(),
            pvk: groth16::prepare_verifying_key(vk),
            beta: G2Prepared::from(vk.beta_g2),
            gamma: G2Prepared::from(vk.gamma_g2),
            delta: G2Prepared::from(vk.delta_g2),
            miller: std::sync::Arc::new(CpuBackend),
        }
    }

    /// Runs the proofs' Miller loops on `backend` (the verdicts are the same on every
    /// backend: the equation and its weights do not change).
    pub fn with_miller(mut self, backend: std::sync::Arc<dyn MillerBackend>) -> Self {
        self.miller = backend;
        self
    }

    /// Verifies all proofs; on failure names every bad one.
    pub fn verify(
        &self,
        proofs: &[Proof<Bls12>],
        inputs: &[Vec<Fr>],
        rng: &mut impl RngCore,
    ) -> Result<(), VerifyError> {
        assert_eq!(proofs.len(), inputs.len(), "one input vector per proof");
        if let Some(bad) = inputs.iter().find(|x| x.len() + 1 != self.vk.ic.len()) {
            return Err(VerifyError::PublicInputCount { expected: self.vk.ic.len() - 1, found: bad.len() });
        }
        let idx: Vec<usize> = (0..proofs.len()).collect();
        let mut bad = Vec::new();
        self.bisect(proofs, inputs, &idx, rng, &mut bad);
        if bad.is_empty() {
            Ok(())
        } else {
            bad.sort_unstable();
            Err(VerifyError::BadProofs(bad))
        }
    }

    fn bisect(
        &self,
        proofs: &[Proof<Bls12>],
        inputs: &[Vec<Fr>],
        idx: &[usize],
        rng: &mut impl RngCore,
        bad: &mut Vec<usize>,
    ) {
        if idx.is_empty() || self.check(proofs, inputs, idx, rng) {
            return;
        }
        if idx.len() == 1 {
            bad.push(idx[0]);
            return;
        }
        let (l, r) = idx.split_at(idx.len() / 2);
        self.bisect(proofs, inputs, l, rng, bad);
        self.bisect(proofs, inputs, r, rng, bad);
    }

    /// The batch equation over the proofs at `idx` (a single proof takes the single-proof
    /// path, which uses the precomputed `e(α, β)`).
    fn check(&self, proofs: &[Proof<Bls12>], inputs: &[Vec<Fr>], idx: &[usize], rng: &mut impl RngCore) -> bool {
        if let [i] = idx {
            return matches!(groth16::verify_proof(&self.pvk, &proofs[*i], &inputs[*i]), Ok(true));
        }
        self.check_batch(proofs, inputs, idx, rng)
    }

    /// The batch equation proper.
    fn check_batch(&self, proofs: &[Proof<Bls12>], inputs: &[Vec<Fr>], idx: &[usize], rng: &mut impl RngCore) -> bool {
        let weights: Vec<Fr> = idx
            .iter()
            .map(|_| {
                let mut b = [0u8; 32];
                rng.fill_bytes(&mut b[..16]);
                b[0] |= 1;
                Option::from(Fr::from_bytes_le(&b)).expect("128-bit values are below r")
            })
            .collect();
        let sum_r: Fr = weights.iter().sum();
        // Σ r_i·IC(x_i) = (Σ r_i)·IC_0 + Σ_j (Σ_i r_i x_ij)·IC_(j+1).
        let n_in = self.vk.ic.len() - 1;
        let mut ic_scalars = vec![Fr::ZERO; n_in + 1];
        ic_scalars[0] = sum_r;
        for (w, &i) in weights.iter().zip(idx) {
            for (j, x) in inputs[i].iter().enumerate() {
                ic_scalars[j + 1] += *w * x;
            }
        }
        let ic_points: Vec<G1Projective> = self.vk.ic.iter().map(|p| G1Projective::from(*p)).collect();
        let acc_ic = G1Projective::multi_exp(&ic_points, &ic_scalars);
        let c_points: Vec<G1Projective> = idx.iter().map(|&i| G1Projective::from(proofs[i].c)).collect();
        let acc_c = G1Projective::multi_exp(&c_points, &weights);
        let acc_alpha = G1Projective::from(self.vk.alpha_g1) * sum_r;

        let scaled_a: Vec<G1Affine> =
            idx.par_iter().zip(weights.par_iter()).map(|(&i, w)| mul_128(&proofs[i].a, w).to_affine()).collect();
        let b: Vec<G2Affine> = idx.iter().map(|&i| proofs[i].b).collect();
        let neg = [(-acc_alpha).to_affine(), (-acc_ic).to_affine(), (-acc_c).to_affine()];
        // The n Miller loops of the proofs go to the backend (a GPU runs them in parallel);
        // the three fixed pairs use the prepared β, γ, δ; one final exponentiation.
        let fixed = Bls12::multi_miller_loop(&[(&neg[0], &self.beta), (&neg[1], &self.gamma), (&neg[2], &self.delta)]);
        let ml = self.miller.miller_product(&scaled_a, &b) + fixed;
        bool::from(ml.final_exponentiation().is_identity())
    }
}

/// `k·P` for a weight `k < 2^128`, by a 4-bit fixed window over its 128 bits: about half
/// the doublings of a full-width multiplication, which the batch does once per proof.
fn mul_128(p: &G1Affine, k: &Fr) -> G1Projective {
    let bytes = k.to_bytes_le();
    debug_assert!(bytes[16..].iter().all(|b| *b == 0), "weights are 128-bit");
    let mut table = [G1Projective::identity(); 16];
    for i in 1..16 {
        table[i] = table[i - 1] + p;
    }
    let mut acc = G1Projective::identity();
    for byte in bytes[..16].iter().rev() {
        for nibble in [byte >> 4, byte & 0x0f] {
            for _ in 0..4 {
                acc = acc.double();
            }
            if nibble != 0 {
                acc += table[nibble as usize];
            }
        }
    }
    acc
}

/// The canonical proof encoding: compressed A (G1) ‖ B (G2) ‖ C (G1).
pub fn proof_to_bytes(p: &Proof<Bls12>) -> [u8; PROOF_LEN] {
    let mut out = [0u8; PROOF_LEN];
    out[..48].copy_from_slice(&p.a.to_compressed());
    out[48..144].copy_from_slice(&p.b.to_compressed());
    out[144..].copy_from_slice(&p.c.to_compressed());
    out
}

/// Decodes a proof, rejecting wrong lengths, off-curve or non-subgroup points and the
/// identity.
pub fn proof_from_bytes(bytes: &[u8]) -> Result<Proof<Bls12>, ProverError> {
    if bytes.len() != PROOF_LEN {
        return Err(ProverError::Encoding(format!("a proof is {PROOF_LEN} bytes, got {}", bytes.len())));
    }
    let g1 = |b: &[u8], what: &str| -> Result<G1Affine, ProverError> {
        let p: Option<G1Affine> = G1Affine::from_compressed(b.try_into().expect("48 bytes")).into();
        let p = p.ok_or_else(|| ProverError::Encoding(format!("{what} is not a valid G1 point")))?;
        if bool::from(p.is_identity()) {
            return Err(ProverError::Encoding(format!("{what} is the identity")));
        }
        Ok(p)
    };
    let b: Option<G2Affine> = G2Affine::from_compressed(bytes[48..144].try_into().expect("96 bytes")).into();
    let b = b.ok_or_else(|| ProverError::Encoding("B is not a valid G2 point".into()))?;
    if bool::from(b.is_identity()) {
        return Err(ProverError::Encoding("B is the identity".into()));
    }
    Ok(Proof { a: g1(&bytes[..48], "A")?, b, c: g1(&bytes[144..], "C")? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mul_128_equals_scalar_multiplication() {
        let p = (G1Projective::generator() * Fr::from(123_456_789u64)).to_affine();
        for k in [0u128, 1, 2, 15, 16, 0xdead_beef, u128::MAX, 1 << 127] {
            let mut b = [0u8; 32];
            b[..16].copy_from_slice(&k.to_le_bytes());
            let s: Fr = Option::from(Fr::from_bytes_le(&b)).unwrap();
            assert_eq!(mul_128(&p, &s), G1Projective::from(p) * s, "k = {k}");
        }
    }
}
