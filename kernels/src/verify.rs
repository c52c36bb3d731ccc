//! Batch Groth16 verification on the GPU: [`CudaMiller`], the prover's `MillerBackend`.
//! Each proof's Miller loop `f(r_i·A_i, B_i)` runs in its own device thread (the tower
//! and loop of `cuda/pairing/`), a product tree multiplies them, and the single Fp12
//! comes back for the CPU's final exponentiation, so the verdict is the CPU path's.
//!
//! Jobs run at [`Priority::Consensus`] (blocks wait for them) with a short deadline; a
//! busy or failing device falls back to the CPU's multi-Miller loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use blstrs::{G1Affine, G2Affine, MillerLoopResult};
use cudarc::driver::PushKernelArg;
use dualchain_prover::backend::{CpuBackend, MillerBackend};

use crate::device::{grid, Gpu};
use crate::error::{KernelError, Result};
use crate::layout::{fp12_from_words, g1_affine_words, g2_affine_words, miller_result, FP12_WORDS};
use crate::msm::BackendStats;
use crate::scheduler::Priority;

pub struct CudaMiller {
    gpu: Arc<Gpu>,
    /// Batches with fewer proofs than this run on the CPU.
    pub min_pairs: usize,
    pub deadline: Duration,
    pub stats: Arc<BackendStats>,
}

impl CudaMiller {
    pub fn new(gpu: Arc<Gpu>) -> Self {
        Self { gpu, min_pairs: 64, deadline: Priority::Consensus.default_deadline(), stats: Arc::default() }
    }

    /// `Π f(p_i, q_i)` on the device.
    pub fn try_miller_product(&self, p: &[G1Affine], q: &[G2Affine]) -> Result<MillerLoopResult> {
        if p.len() != q.len() {
            return Err(KernelError::Input(format!("{} G1 points for {} G2 points", p.len(), q.len())));
        }
        if p.is_empty() {
            return Ok(MillerLoopResult::default());
        }
        let n = u32::try_from(p.len()).map_err(|_| KernelError::Input("too many pairs".into()))?;
        let words = self.gpu.job(Priority::Consensus, self.deadline, "Miller loops", |job| {
            let p_dev = job.upload(g1_affine_words(p))?;
            let q_dev = job.upload(g2_affine_words(q))?;
            let mut a = job.zeros::<u32>(p.len() * FP12_WORDS)?;
            let mut b = job.zeros::<u32>(p.len().div_ceil(2) * FP12_WORDS)?;
            let launch = KernelError::driver("pairing launch");
            // SAFETY: miller_loops(u32 n, const G1Affine* p, const G2Affine* q, Fp12* out):
            // p holds n points (24 words), q n points (48 words), `a` n Fp12 (144 words).
            unsafe {
                job.stream()
                    .launch_builder(job.function("miller_loops")?)
                    .arg(&n)
                    .arg(&p_dev)
                    .arg(&q_dev)
                    .arg(&mut a)
                    .launch(grid(n as u64)?)
                    .map_err(launch)?;
            }
            // Product tree: each pass halves the count, ping-ponging between a and b.
            let mut len = n;
            let mut in_a = true;
            while len > 1 {
                let (src, dst) = if in_a { (&a, &mut b) } else { (&b, &mut a) };
                // SAFETY: fp12_pair_product(u32 n, const Fp12* in, Fp12* out) reads n and
                // writes ceil(n/2) values; `src` holds at least n, `dst` at least ceil(n/2).
                unsafe {
                    job.stream()
                        .launch_builder(job.function("fp12_pair_product")?)
                        .arg(&len)
                        .arg(src)
                        .arg(dst)
                        .launch(grid(len.div_ceil(2) as u64)?)
                        .map_err(launch)?;
                }
                len = len.div_ceil(2);
                in_a = !in_a;
            }
            let all = job.download(if in_a { &a } else { &b })?;
            Ok(all[..FP12_WORDS].to_vec())
        })?;
        Ok(miller_result(fp12_from_words(&words)))
    }
}

impl MillerBackend for CudaMiller {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn miller_product(&self, p: &[G1Affine], q: &[G2Affine]) -> MillerLoopResult {
        if p.len() < self.min_pairs {
            return CpuBackend.miller_product(p, q);
        }
        let started = Instant::now();
        match self.try_miller_product(p, q) {
            Ok(r) => {
                self.stats.gpu_done(started);
                r
            }
            Err(e) => {
                self.stats.fell_back("Miller loops", p.len(), &e);
                CpuBackend.miller_product(p, q)
            }
        }
    }
}
