//! Batch capsule verification and batch re-encryption: the CPC's hot loop (DESIGN.md §4.1).
//!
//! - Verification of N capsules collapses into one multi-scalar multiplication by a random
//!   linear combination (the small-exponent batch test of Bellare, Garay and Rabin,
//!   "Fast batch verification for modular exponentiation and digital signatures",
//!   EUROCRYPT '98): with 128-bit random weights `ρ_i`,
//!   `(Σ ρ_i σ_i)·P1 − Σ ρ_i·V_i − Σ (ρ_i h_i)·E_i = O` — one MSM of 2N + 1 points. A
//!   batch with a bad capsule fails except with probability 2^-128; the failing batch is then
//!   checked capsule by capsule so the bad ones are named.
//! - Re-encryption is 2N independent scalar multiplications by the same `rk`.
//!
//! Both sit behind [`ReencryptBackend`] so a GPU backend can replace the CPU one; every
//! backend must give bit-identical results (the differential tests compare them).

use blstrs::{G1Affine, G1Projective, Scalar};
use group::{prime::PrimeCurveAffine, Curve, Group};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;

use crate::cbsre::{Capsule, ReKeyToken, Reencrypted, Signcrypted};
use crate::error::CryptoError;
use crate::sign::PublicKey;

/// Largest number of capsules one batch call takes; callers chunk larger grants.
pub const BATCH_LEN_MAX: usize = 1 << 20;

/// A device that verifies and re-encrypts capsules in batches.
pub trait ReencryptBackend: Send + Sync {
    /// Short name for logs and metrics (`cpu`, `cuda`).
    fn name(&self) -> &'static str;

    /// Verifies every capsule. `seed` seeds the random weights; it must be unpredictable to
    /// whoever produced the capsules. Returns the indices of invalid capsules on failure.
    fn verify_capsules(&self, capsules: &[Capsule], seed: [u8; 32]) -> Result<(), Vec<usize>>;

    /// Returns `(rk·E_i, rk·V_i)` for every capsule, in order.
    fn reencrypt(&self, rk: &Scalar, capsules: &[Capsule]) -> Vec<(G1Affine, G1Affine)>;
}

/// The CPU backend: one MSM (blst's Pippenger) for verification, rayon for re-encryption.
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuBackend;

/// 128-bit weights expanded from a seed: short weights halve the MSM's doubling cost and
/// keep the soundness error at 2^-128.
fn batch_weights(seed: [u8; 32], n: usize) -> Vec<Scalar> {
    let mut rng = ChaCha20Rng::from_seed(seed);
    (0..n)
        .map(|_| {
            let mut le = [0u8; 32];
            rng.fill_bytes(&mut le[..16]);
            // Non-zero so that every capsule contributes to the combination.
            le[0] |= 1;
            Option::<Scalar>::from(Scalar::from_bytes_le(&le)).expect("a 128-bit value is below r")
        })
        .collect()
}

/// The batch equation's points and scalars for `capsules` under the weights from `seed`:
/// `Σ ρ_i σ_i·P1 − Σ ρ_i·V_i − Σ (ρ_i h_i)·E_i`, whose MSM is the identity exactly when the
/// batch holds. Every backend evaluates this same combination, so all reach the same
/// verdict for the same seed.
pub fn batch_combination(capsules: &[Capsule], seed: [u8; 32]) -> (Vec<G1Affine>, Vec<Scalar>) {
    let n = capsules.len();
    let weights = batch_weights(seed, n);
    let challenges: Vec<Scalar> = capsules.par_iter().map(Capsule::challenge).collect();
    let mut points = Vec::with_capacity(2 * n + 1);
    let mut scalars = Vec::with_capacity(2 * n + 1);
    let mut sigma_sum = Scalar::from(0u64);
    for ((c, h), rho) in capsules.iter().zip(&challenges).zip(&weights) {
        sigma_sum += *rho * c.sigma;
        points.push(c.v);
        scalars.push(-*rho);
        points.push(c.e);
        scalars.push(-(*rho * h));
    }
    points.push(G1Affine::generator());
    scalars.push(sigma_sum);
    (points, scalars)
}

/// After a failed batch: the indices of the invalid capsules, checked one by one (every
/// index if none fails alone, rather than accept a batch we could not explain).
pub fn name_bad_capsules(capsules: &[Capsule]) -> Vec<usize> {
    let bad: Vec<usize> = capsules.par_iter().enumerate().filter(|(_, c)| !c.is_valid()).map(|(i, _)| i).collect();
    if bad.is_empty() {
        (0..capsules.len()).collect()
    } else {
        bad
    }
}

/// The re-encryption's points in output order: `E_0, V_0, E_1, V_1, …`.
pub fn reencryption_points(capsules: &[Capsule]) -> Vec<G1Affine> {
    capsules.iter().flat_map(|c| [c.e, c.v]).collect()
}

impl ReencryptBackend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn verify_capsules(&self, capsules: &[Capsule], seed: [u8; 32]) -> Result<(), Vec<usize>> {
        if capsules.is_empty() {
            return Ok(());
        }
        let (points, scalars) = batch_combination(capsules, seed);
        let points: Vec<G1Projective> = points.iter().map(G1Projective::from).collect();
        if bool::from(G1Projective::multi_exp(&points, &scalars).is_identity()) {
            return Ok(());
        }
        Err(name_bad_capsules(capsules))
    }

    fn reencrypt(&self, rk: &Scalar, capsules: &[Capsule]) -> Vec<(G1Affine, G1Affine)> {
        let projective: Vec<G1Projective> = capsules
            .par_iter()
            .flat_map_iter(|c| [G1Projective::from(c.e) * rk, G1Projective::from(c.v) * rk])
            .collect();
        let mut affine = vec![G1Affine::default(); projective.len()];
        G1Projective::batch_normalize(&projective, &mut affine);
        affine.chunks_exact(2).map(|p| (p[0], p[1])).collect()
    }
}

/// The CPC's re-encryption of a grant's records: checks the token (owner signature, expiry,
/// scope of every record), verifies all capsules in one batch and re-encrypts them.
/// Nothing is returned unless every record passes.
pub fn reencrypt_records(
    backend: &dyn ReencryptBackend,
    token: &ReKeyToken,
    owner_signing_key: &PublicKey,
    now: u64,
    records: &[Signcrypted],
    rng: &mut impl rand_core::CryptoRngCore,
) -> Result<Vec<Reencrypted>, CryptoError> {
    if records.len() > BATCH_LEN_MAX {
        return Err(CryptoError::InvalidArgument(format!(
            "batch of {} records exceeds the maximum of {BATCH_LEN_MAX}",
            records.len()
        )));
    }
    token.verify(owner_signing_key, now)?;
    for rec in records {
        token.check_scope(&rec.header)?;
    }
    let capsules: Vec<Capsule> = records.iter().map(|r| r.capsule).collect();
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    if let Err(bad) = backend.verify_capsules(&capsules, seed) {
        return Err(CryptoError::BadCapsule { index: bad[0] });
    }
    let outputs = backend.reencrypt(&token.rk, &capsules);
    Ok(records
        .iter()
        .zip(outputs)
        .map(|(rec, (e_prime, v_prime))| Reencrypted { original: rec.clone(), e_prime, v_prime, x_pub: token.x_pub })
        .collect())
}
