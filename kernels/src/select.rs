//! Choosing where proving runs: the CUDA backends when a usable device is there, the CPU
//! backends otherwise, with the reason recorded for logs, `/health` and metrics.

use std::sync::{Arc, OnceLock};

use bellpepper_core::Circuit;
use bellperson::groth16::Proof;
use blstrs::{Bls12, Scalar as Fr};
use dualchain_crypto::reencrypt::{CpuBackend as CpuReencrypt, ReencryptBackend};
use dualchain_prover::backend::{CpuBackend, MillerBackend, MsmBackend, NttBackend};
use dualchain_prover::error::ProverError;
use dualchain_prover::groth16::{ProofTimings, Prover, Synthesized};
use dualchain_prover::params::ProvingKey;
use ff::Field;
use rand_core::RngCore;

use crate::cache::{default_dir, ModuleCache};
use crate::device::{DeviceInfo, Gpu};
use crate::error::{KernelError, Result};
use crate::guard::{self_test, CheckedMiller, GpuGuard, Workload};
use crate::msm::{BackendStats, CudaMsm};
use crate::ntt::CudaNtt;
use crate::pipeline::{PipelineSlot, Stages};
use crate::reencrypt::CudaReencrypt;
use crate::verify::CudaMiller;

/// The labels of the GPU backends' counters in [`Compute::stats`], one per kernel family.
pub const KERNELS: [&str; 4] = ["msm", "ntt", "reencrypt", "miller"];

/// The operator's choice (`[gpu]` in a node's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GpuPolicy {
    /// Use device `ordinal` when it opens; otherwise the CPU, logging why.
    #[default]
    Auto,
    /// Never touch a GPU.
    Off,
    /// Fail start-up when the device does not open.
    Require,
}

/// The proving backends in effect.
#[derive(Clone)]
pub struct Compute {
    pub msm: Arc<dyn MsmBackend>,
    pub ntt: Arc<dyn NttBackend>,
    /// Batch proof verification's Miller loops.
    pub miller: Arc<dyn MillerBackend>,
    /// The CPC's batch capsule verification and re-encryption.
    pub reencrypt: Arc<dyn ReencryptBackend + Send + Sync>,
    /// The device in use, if any.
    pub device: Option<DeviceInfo>,
    /// The open device behind the CUDA backends.
    pub gpu: Option<Arc<Gpu>>,
    /// Why the CPU is used, when it is.
    pub fallback: Option<String>,
    /// Counters of the GPU backends (empty on the CPU).
    pub stats: Vec<(&'static str, Arc<BackendStats>)>,
    /// Cross-checks against the CPU and the workloads they disabled ([`crate::guard`]).
    pub guard: Arc<GpuGuard>,
    /// The proving pipeline, started by the first [`Compute::prove_queued`].
    pub pipeline: PipelineSlot,
}

impl Stages for Compute {
    /// Stages 2–4 of a synthesized statement on these backends, with the CPU check of a
    /// device's proof: `None` when the device's proof did not verify (proving is then
    /// off the device, and the caller proves again on the CPU).
    fn prove_synthesized(
        &self,
        pk: &ProvingKey,
        w: Synthesized,
        rng: &mut dyn RngCore,
    ) -> std::result::Result<Option<(Proof<Bls12>, ProofTimings)>, ProverError> {
        let prover = self.prover();
        let (r, s) = (Fr::random(&mut *rng), Fr::random(&mut *rng));
        if prover.msm.name() == "cpu" && prover.ntt.name() == "cpu" {
            return prover.prove_with(pk, w, r, s).map(Some);
        }
        let inputs = w.public_inputs().to_vec();
        let (proof, timings) = prover.prove_with(pk, w, r, s)?;
        self.guard.checked();
        let pvk = bellperson::groth16::prepare_verifying_key(pk.vk());
        if dualchain_prover::verify::verify(&pvk, pk.vk(), &proof, &inputs).is_ok() {
            return Ok(Some((proof, timings)));
        }
        let why = format!("a {} proof from the device does not verify", pk.shape.name());
        self.guard.disable(Workload::Proving, &why);
        Ok(None)
    }
}

impl std::fmt::Debug for Compute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Compute {
    /// The CPU backends, with the reason they were chosen.
    pub fn cpu(reason: impl Into<String>) -> Self {
        Self {
            msm: Arc::new(CpuBackend),
            ntt: Arc::new(CpuBackend),
            reencrypt: Arc::new(CpuReencrypt),
            miller: Arc::new(CpuBackend),
            device: None,
            gpu: None,
            fallback: Some(reason.into()),
            stats: Vec::new(),
            guard: Arc::default(),
            pipeline: PipelineSlot::default(),
        }
    }

    /// The CUDA backends on an open device.
    pub fn gpu(gpu: Arc<Gpu>) -> Self {
        let msm = Arc::new(CudaMsm::new(gpu.clone()));
        let mut ntt = CudaNtt::new(gpu.clone());
        // The quotient hands h to the H MSM on the device.
        ntt.h_msm = Some(msm.clone());
        let reencrypt = CudaReencrypt::new(gpu.clone());
        let miller = CudaMiller::new(gpu.clone());
        let stats = KERNELS
            .into_iter()
            .zip([msm.stats.clone(), ntt.stats.clone(), reencrypt.stats.clone(), miller.stats.clone()])
            .collect();
        let guard = Arc::new(GpuGuard::default());
        let min_pairs = miller.min_pairs;
        let miller = CheckedMiller::new(Arc::new(miller), min_pairs, guard.clone());
        Self {
            msm,
            ntt: Arc::new(ntt),
            reencrypt: Arc::new(reencrypt),
            miller: Arc::new(miller),
            device: Some(gpu.info().clone()),
            gpu: Some(gpu),
            fallback: None,
            stats,
            guard,
            pipeline: PipelineSlot::default(),
        }
    }

    /// The device's backends pass the known-answer test ([`crate::guard::self_test`]),
    /// the Miller loops on the device itself, not through the cross-checking wrapper.
    fn run_self_test(&self) -> std::result::Result<(), String> {
        match &self.gpu {
            Some(gpu) => {
                let mut miller = CudaMiller::new(gpu.clone());
                miller.min_pairs = 0;
                self_test(&*self.msm, &*self.ntt, &miller)
            }
            None => Ok(()),
        }
    }

    /// Applies `policy` to device `ordinal`, compiling kernels into `cache`.
    pub fn select(policy: GpuPolicy, ordinal: usize, cache: &ModuleCache) -> Result<Self> {
        if policy == GpuPolicy::Off {
            return Ok(Self::cpu("GPU use disabled in the configuration"));
        }
        let opened = Gpu::open(ordinal, cache).and_then(|gpu| {
            let c = Self::gpu(gpu);
            c.run_self_test().map_err(KernelError::SelfTest)?;
            Ok(c)
        });
        match opened {
            Ok(c) => Ok(c),
            Err(e) if policy == GpuPolicy::Require => Err(e),
            Err(e) => Ok(Self::cpu(format!("fallback: {e}"))),
        }
    }

    /// A prover on these backends (the CPU's once a cross-check disabled the device for
    /// proving). Proofs that leave the node should come from [`Compute::prove`].
    pub fn prover(&self) -> Prover<'_> {
        if self.guard.disabled(Workload::Proving) {
            return Prover::default();
        }
        Prover { msm: &*self.msm, ntt: &*self.ntt }
    }

    /// Proves one statement. A proof made on anything but the CPU is verified on the CPU
    /// before it is returned; one that does not verify is made again on the CPU, and the
    /// device is no longer used for proving ([`crate::guard`]).
    pub fn prove<C: Circuit<Fr> + Clone>(
        &self,
        pk: &ProvingKey,
        circuit: C,
        rng: &mut impl RngCore,
    ) -> std::result::Result<(Proof<Bls12>, ProofTimings), ProverError> {
        let w = Prover::synthesize(pk, circuit.clone())?;
        match self.prove_synthesized(pk, w, rng)? {
            Some(proved) => Ok(proved),
            None => Prover::default().prove(pk, circuit, rng),
        }
    }

    /// Proves one statement through this node's proving pipeline ([`crate::pipeline`]),
    /// started on first use: synthesis of the next queued proof overlaps this one's QAP
    /// and MSMs. Blocks until the proof is made; call from a blocking context.
    pub fn prove_queued<C: Circuit<Fr> + Clone + Send + 'static>(
        &'static self,
        pk: Arc<ProvingKey>,
        circuit: C,
    ) -> std::result::Result<(Proof<Bls12>, ProofTimings), ProverError> {
        self.pipeline.get_or_start(self).prove(pk, circuit)
    }

    pub fn gpu_available(&self) -> bool {
        self.device.is_some()
    }

    /// One line for logs and `/health`: `cuda on GPU 0 (…)` or `cpu (reason)`.
    pub fn describe(&self) -> String {
        match (&self.device, &self.fallback) {
            (Some(d), _) => match self.guard.reason() {
                Some(why) => format!("cuda on {d}, disabled for {why}"),
                None => format!("cuda on {d}"),
            },
            (None, Some(r)) => format!("cpu ({r})"),
            (None, None) => "cpu".into(),
        }
    }
}

static GLOBAL: OnceLock<Compute> = OnceLock::new();

/// Sets the process's backends once (a node does this at start-up); later calls return
/// the backends already chosen.
pub fn init_global(policy: GpuPolicy, ordinal: usize) -> Result<&'static Compute> {
    if let Some(c) = GLOBAL.get() {
        return Ok(c);
    }
    let chosen = Compute::select(policy, ordinal, &ModuleCache::new(default_dir()))?;
    Ok(GLOBAL.get_or_init(|| chosen))
}

/// The process's backends: those set by [`init_global`], else chosen now with
/// [`GpuPolicy::Auto`] on device 0.
pub fn global() -> &'static Compute {
    GLOBAL.get_or_init(|| {
        Compute::select(GpuPolicy::Auto, 0, &ModuleCache::new(default_dir()))
            .unwrap_or_else(|e: KernelError| Compute::cpu(format!("fallback: {e}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_means_cpu_with_the_reason() {
        let c = Compute::select(GpuPolicy::Off, 0, &ModuleCache::new("/nonexistent")).unwrap();
        assert!(!c.gpu_available());
        assert_eq!(c.describe(), "cpu (GPU use disabled in the configuration)");
        assert_eq!(c.prover().msm.name(), "cpu");
    }

    /// On a machine without a driver (CI), auto falls back and says why, and require
    /// refuses; with a GPU, both open it.
    #[test]
    fn auto_and_require_follow_the_machine() {
        let cache = ModuleCache::new(tempfile::tempdir().unwrap().path().join("k"));
        let auto = Compute::select(GpuPolicy::Auto, 0, &cache).unwrap();
        let require = Compute::select(GpuPolicy::Require, 0, &cache);
        if crate::device::driver_present() && crate::device::device_count().unwrap_or(0) > 0 {
            assert!(auto.gpu_available(), "{}", auto.describe());
            assert!(require.is_ok());
        } else {
            assert!(!auto.gpu_available());
            assert!(auto.describe().starts_with("cpu (fallback: "), "{}", auto.describe());
            assert!(require.is_err());
        }
        // A device that does not exist is refused by name.
        match Compute::select(GpuPolicy::Require, 99, &cache) {
            Err(KernelError::NoDriver | KernelError::NoDevice { .. }) => {}
            other => panic!("device 99 opened or failed oddly: {other:?}"),
        }
    }
}
