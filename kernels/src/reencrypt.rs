//! The CPC's batch work on the GPU: [`CudaReencrypt`], the crypto crate's
//! `ReencryptBackend` on a CUDA device (DESIGN.md §4.1).
//!
//! - Capsule verification evaluates the crypto crate's batch combination
//!   (`batch_combination`: one MSM of 2N + 1 points) with the device MSM and checks for
//!   the identity; a failing batch is explained capsule by capsule on the CPU, exactly as
//!   the CPU backend does.
//! - Re-encryption is the `g1_scale` kernel: 2N scalar multiplications by the grant's
//!   re-key, one thread per point, normalised to affine on the host. The results are the
//!   CPU backend's, bit for bit.
//!
//! Jobs run at [`Priority::Reencrypt`]; a device failure or a busy device falls back to
//! the CPU backend with a logged reason and a counted fallback.

use std::sync::Arc;
use std::time::{Duration, Instant};

use blstrs::{G1Affine, G1Projective, Scalar as Fr};
use cudarc::driver::PushKernelArg;
use dualchain_crypto::cbsre::Capsule;
use dualchain_crypto::reencrypt::{
    batch_combination, name_bad_capsules, reencryption_points, CpuBackend, ReencryptBackend,
};
use ff::PrimeField;
use group::{Curve, Group};

use crate::device::{grid, Gpu};
use crate::error::{KernelError, Result};
use crate::layout::{g1_affine_words, g1_from_jacobian_words, G1_JACOBIAN_WORDS};
use crate::msm::{BackendStats, CudaMsm};
use crate::scheduler::Priority;

pub struct CudaReencrypt {
    gpu: Arc<Gpu>,
    msm: CudaMsm,
    /// Batches smaller than this run on the CPU.
    pub min_capsules: usize,
    pub deadline: Duration,
    pub stats: Arc<BackendStats>,
}

impl CudaReencrypt {
    pub fn new(gpu: Arc<Gpu>) -> Self {
        let mut msm = CudaMsm::new(gpu.clone());
        msm.min_points = 0;
        msm.deadline = Priority::Reencrypt.default_deadline();
        let stats = msm.stats.clone();
        Self { gpu, msm, min_capsules: 256, deadline: Priority::Reencrypt.default_deadline(), stats }
    }

    /// Whether the batch equation holds, evaluated on the device.
    pub fn try_combination_holds(&self, capsules: &[Capsule], seed: [u8; 32]) -> Result<bool> {
        let (points, scalars) = batch_combination(capsules, seed);
        let sum = self.msm.transient_msm_g1(Priority::Reencrypt, &points, &scalars)?;
        Ok(bool::from(sum.is_identity()))
    }

    /// `(rk·E_i, rk·V_i)` for every capsule, computed on the device.
    pub fn try_reencrypt(&self, rk: &Fr, capsules: &[Capsule]) -> Result<Vec<(G1Affine, G1Affine)>> {
        let points = reencryption_points(capsules);
        let scaled = scale_g1(&self.gpu, Priority::Reencrypt, self.deadline, &points, rk)?;
        let mut affine = vec![G1Affine::default(); scaled.len()];
        G1Projective::batch_normalize(&scaled, &mut affine);
        Ok(affine.chunks_exact(2).map(|p| (p[0], p[1])).collect())
    }
}

/// `k·P_i` for every point, on the device (the `g1_scale` kernel).
pub(crate) fn scale_g1(
    gpu: &Gpu,
    class: Priority,
    deadline: Duration,
    points: &[G1Affine],
    k: &Fr,
) -> Result<Vec<G1Projective>> {
    if points.is_empty() {
        return Ok(Vec::new());
    }
    let n = u32::try_from(points.len()).map_err(|_| KernelError::Input("too many points".into()))?;
    let (k_words, bits) = scalar_bits(k);
    let words = gpu.job(class, deadline, "batch scalar multiplication", |job| {
        let input = job.upload(g1_affine_words(points))?;
        let k_dev = job.upload(&k_words)?;
        let mut out = job.zeros::<u32>(points.len() * G1_JACOBIAN_WORDS)?;
        // SAFETY: g1_scale(u32 n, const G1Affine* in, const u32* k, u32 bits,
        // G1Jacobian* out): `input` holds n affine points (24 words each), `k_dev` 8 words,
        // `out` n Jacobian points (36 words each); bits ≤ 256.
        unsafe {
            job.stream()
                .launch_builder(job.function("g1_scale")?)
                .arg(&n)
                .arg(&input)
                .arg(&k_dev)
                .arg(&bits)
                .arg(&mut out)
                .launch(grid(n as u64)?)
                .map_err(KernelError::driver("scale launch"))?;
        }
        job.download(&out)
    })?;
    Ok(words.chunks_exact(G1_JACOBIAN_WORDS).map(g1_from_jacobian_words).collect())
}

impl ReencryptBackend for CudaReencrypt {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn verify_capsules(&self, capsules: &[Capsule], seed: [u8; 32]) -> std::result::Result<(), Vec<usize>> {
        if capsules.len() < self.min_capsules {
            return CpuBackend.verify_capsules(capsules, seed);
        }
        let started = Instant::now();
        match self.try_combination_holds(capsules, seed) {
            Ok(true) => {
                self.stats.gpu_done(started);
                Ok(())
            }
            Ok(false) => Err(name_bad_capsules(capsules)),
            Err(e) => {
                self.stats.fell_back("capsule verification", capsules.len(), &e);
                CpuBackend.verify_capsules(capsules, seed)
            }
        }
    }

    fn reencrypt(&self, rk: &Fr, capsules: &[Capsule]) -> Vec<(G1Affine, G1Affine)> {
        if capsules.len() < self.min_capsules {
            return CpuBackend.reencrypt(rk, capsules);
        }
        let started = Instant::now();
        match self.try_reencrypt(rk, capsules) {
            Ok(out) => {
                self.stats.gpu_done(started);
                out
            }
            Err(e) => {
                self.stats.fell_back("re-encryption", capsules.len(), &e);
                CpuBackend.reencrypt(rk, capsules)
            }
        }
    }
}

/// The canonical words and bit length `g1_scale` takes for `k` (exposed for the host
/// tests of the kernel body).
pub fn scalar_bits(k: &Fr) -> (Vec<u32>, u32) {
    let repr = k.to_repr();
    let words: Vec<u32> = repr.as_ref().chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let bits = match words.iter().rposition(|w| *w != 0) {
        Some(top) => top as u32 * 32 + (32 - words[top].leading_zeros()),
        None => 0,
    };
    (words, bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ff::Field;

    #[test]
    fn scalar_bit_lengths() {
        assert_eq!(scalar_bits(&Fr::ZERO).1, 0);
        assert_eq!(scalar_bits(&Fr::ONE).1, 1);
        assert_eq!(scalar_bits(&Fr::from(0x1_0000_0000u64)).1, 33);
        assert_eq!(scalar_bits(&-Fr::ONE).1, 255);
    }
}
