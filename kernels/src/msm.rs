//! Multi-scalar multiplication on the GPU: [`MsmPlan`] (the window, chunk and segment
//! sizes shared by the kernels and the host emulation) and [`CudaMsm`], the prover's
//! `MsmBackend` on a CUDA device.
//!
//! The algorithm is described in `cuda/msm/msm.cuh`. `CudaMsm` keeps base vectors
//! resident on the device across calls (a proving key's queries are uploaded once and
//! found again by address, length and a fingerprint), splits an MSM that does not fit the
//! device's free memory into parts, and falls back to the CPU with a logged reason when
//! the device fails. Results are the same group elements as the CPU backend's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use blstrs::{G1Affine, G1Projective, G2Affine, G2Projective, Scalar as Fr};
use cudarc::driver::{CudaSlice, CudaView, LaunchConfig, PushKernelArg};
use dualchain_prover::backend::{CpuBackend, MsmBackend};
use group::Group;
use sha2::{Digest, Sha256};

use crate::device::{grid, Gpu, Job};
use crate::error::{KernelError, Result};
use crate::layout::*;
use crate::scheduler::Priority;

/// Sizes of one MSM run. `c` is the window width, `windows = floor(255/c) + 1`,
/// `chunk` the sorted entries per accumulation thread, `segments` the reduction threads
/// per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsmPlan {
    pub n: u32,
    pub c: u32,
    pub windows: u32,
    pub chunk: u32,
    pub segments: u32,
}

impl MsmPlan {
    /// The plan the backend uses for `n` points: windows of about log2(n) − 4 bits (so
    /// each bucket gets around 16·2 points on average with signed digits), 4 to 16 bits.
    pub fn for_size(n: usize) -> Self {
        let log = usize::BITS - n.max(2).saturating_sub(1).leading_zeros();
        let c = log.saturating_sub(4).clamp(4, 16);
        let buckets = 1u32 << (c - 1);
        Self::with(n, c, 32, (buckets / 64).max(1)).expect("the default plan is valid")
    }

    /// A plan with explicit sizes (tests use small chunks to cross many boundaries).
    pub fn with(n: usize, c: u32, chunk: u32, segments: u32) -> Result<Self> {
        if n > (i32::MAX as usize) {
            return Err(KernelError::Input(format!("{n} points exceed one MSM run")));
        }
        if !(2..=16).contains(&c) || chunk == 0 || segments == 0 || segments > (1 << (c - 1)) {
            return Err(KernelError::Input(format!("bad MSM plan: c = {c}, chunk = {chunk}, segments = {segments}")));
        }
        Ok(Self { n: n as u32, c, windows: 255 / c + 1, chunk, segments })
    }

    pub fn buckets(&self) -> u32 {
        1 << (self.c - 1)
    }

    pub fn chunks(&self) -> u32 {
        self.n.div_ceil(self.chunk)
    }

    /// Device bytes one run needs besides the bases, for a point of `jacobian_bytes`.
    pub fn scratch_bytes(&self, jacobian_bytes: usize) -> usize {
        let (n, w, b) = (self.n as usize, self.windows as usize, self.buckets() as usize);
        let chunks = self.chunks() as usize;
        n * 32                                   // scalars
            + w * n * (4 + 4 + 4)                // digits, sorted indices, sorted buckets
            + w * b * 4 * 3                      // counts, offsets, cursors
            + 2 * w * chunks * jacobian_bytes    // head, tail
            + w * b * jacobian_bytes             // bucket sums
            + w * self.segments as usize * jacobian_bytes
            + w * jacobian_bytes
    }

    /// Σ_w 2^(c·w)·sums[w] by Horner's rule.
    pub fn combine<G: Group>(&self, sums: &[G]) -> G {
        let mut acc = G::identity();
        for s in sums.iter().rev() {
            for _ in 0..self.c {
                acc = acc.double();
            }
            acc += s;
        }
        acc
    }
}

/// One of the two groups, as the kernels see it.
pub(crate) trait Curve: Copy + Send + Sync + 'static {
    type Affine: Copy + Send + Sync;
    type Projective: Group + Send;
    const NAME: &'static str;
    const AFFINE_WORDS: usize;
    const JACOBIAN_WORDS: usize;
    const CHUNK: &'static str;
    const BUCKET: &'static str;
    const SEGMENT: &'static str;
    const WINDOW: &'static str;
    fn words(bases: &[Self::Affine]) -> &[u32];
    fn from_words(w: &[u32]) -> Self::Projective;
    fn cpu(bases: &[Self::Affine], scalars: &[Fr]) -> Self::Projective;
}

#[derive(Clone, Copy)]
pub(crate) struct G1;
#[derive(Clone, Copy)]
pub(crate) struct G2;

impl Curve for G1 {
    type Affine = G1Affine;
    type Projective = G1Projective;
    const NAME: &'static str = "g1";
    const AFFINE_WORDS: usize = G1_AFFINE_WORDS;
    const JACOBIAN_WORDS: usize = G1_JACOBIAN_WORDS;
    const CHUNK: &'static str = "msm_chunk_g1";
    const BUCKET: &'static str = "msm_bucket_g1";
    const SEGMENT: &'static str = "msm_segment_g1";
    const WINDOW: &'static str = "msm_window_g1";
    fn words(bases: &[G1Affine]) -> &[u32] {
        g1_affine_words(bases)
    }
    fn from_words(w: &[u32]) -> G1Projective {
        g1_from_jacobian_words(w)
    }
    fn cpu(bases: &[G1Affine], scalars: &[Fr]) -> G1Projective {
        CpuBackend.msm_g1(bases, scalars)
    }
}

impl Curve for G2 {
    type Affine = G2Affine;
    type Projective = G2Projective;
    const NAME: &'static str = "g2";
    const AFFINE_WORDS: usize = G2_AFFINE_WORDS;
    const JACOBIAN_WORDS: usize = G2_JACOBIAN_WORDS;
    const CHUNK: &'static str = "msm_chunk_g2";
    const BUCKET: &'static str = "msm_bucket_g2";
    const SEGMENT: &'static str = "msm_segment_g2";
    const WINDOW: &'static str = "msm_window_g2";
    fn words(bases: &[G2Affine]) -> &[u32] {
        g2_affine_words(bases)
    }
    fn from_words(w: &[u32]) -> G2Projective {
        g2_from_jacobian_words(w)
    }
    fn cpu(bases: &[G2Affine], scalars: &[Fr]) -> G2Projective {
        CpuBackend.msm_g2(bases, scalars)
    }
}

/// Runs the seven phases of one MSM on bases already on the device.
fn run<C: Curve>(job: &Job<'_>, bases: &CudaView<'_, u32>, scalars: &[Fr]) -> Result<C::Projective> {
    let plan = MsmPlan::for_size(scalars.len());
    if scalars.is_empty() {
        return Ok(C::Projective::identity());
    }
    let (n, c, w, k, s) = (plan.n, plan.c, plan.windows, plan.chunk, plan.segments);
    let b = plan.buckets();
    let (wn, wb) = (w as usize * n as usize, w as usize * b as usize);
    let jac = C::JACOBIAN_WORDS;
    let stream = job.stream();
    let scalars_d = job.upload(fr_words(scalars))?;
    let mut digits = job.zeros::<i32>(wn)?;
    let mut counts = job.zeros::<u32>(wb)?;
    let mut offsets = job.zeros::<u32>(wb)?;
    let mut cursor = job.zeros::<u32>(wb)?;
    let mut sorted_idx = job.zeros::<u32>(wn)?;
    let mut sorted_bucket = job.zeros::<u32>(wn)?;
    let hw = w as usize * plan.chunks() as usize * jac;
    let mut head = job.zeros::<u32>(hw)?;
    let mut tail = job.zeros::<u32>(hw)?;
    let mut bucket_sums = job.zeros::<u32>(wb * jac)?;
    let mut segment_sums = job.zeros::<u32>(w as usize * s as usize * jac)?;
    let mut window_sums = job.zeros::<u32>(w as usize * jac)?;
    let launch = KernelError::driver("MSM launch");

    // SAFETY (every launch below): argument lists match the kernels' C signatures in
    // msm/msm.cu in order and type (u32 scalars, device pointers to u32/i32 words); every
    // buffer was allocated above with the length the kernel indexes up to for this plan
    // (n·W digits and sorted entries, W·B counters and bucket sums, W·chunks head/tail,
    // W·S segment sums, W window sums, each point `jac` words); `bases` holds n points.
    unsafe {
        stream
            .launch_builder(job.function("msm_digits")?)
            .arg(&scalars_d)
            .arg(&n)
            .arg(&c)
            .arg(&w)
            .arg(&mut digits)
            .arg(&mut counts)
            .launch(grid(n as u64)?)
            .map_err(launch)?;
        let scan = LaunchConfig { grid_dim: (w, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
        stream
            .launch_builder(job.function("msm_scan")?)
            .arg(&counts)
            .arg(&b)
            .arg(&mut offsets)
            .arg(&mut cursor)
            .launch(scan)
            .map_err(launch)?;
        stream
            .launch_builder(job.function("msm_scatter")?)
            .arg(&n)
            .arg(&c)
            .arg(&w)
            .arg(&digits)
            .arg(&mut cursor)
            .arg(&mut sorted_idx)
            .arg(&mut sorted_bucket)
            .launch(grid(n as u64)?)
            .map_err(launch)?;
        stream
            .launch_builder(job.function(C::CHUNK)?)
            .arg(&n)
            .arg(&c)
            .arg(&w)
            .arg(&k)
            .arg(bases)
            .arg(&sorted_idx)
            .arg(&sorted_bucket)
            .arg(&offsets)
            .arg(&counts)
            .arg(&mut head)
            .arg(&mut tail)
            .arg(&mut bucket_sums)
            .launch(grid(w as u64 * plan.chunks() as u64)?)
            .map_err(launch)?;
        stream
            .launch_builder(job.function(C::BUCKET)?)
            .arg(&n)
            .arg(&c)
            .arg(&w)
            .arg(&k)
            .arg(&offsets)
            .arg(&counts)
            .arg(&head)
            .arg(&tail)
            .arg(&mut bucket_sums)
            .launch(grid(wb as u64)?)
            .map_err(launch)?;
        stream
            .launch_builder(job.function(C::SEGMENT)?)
            .arg(&c)
            .arg(&w)
            .arg(&s)
            .arg(&bucket_sums)
            .arg(&mut segment_sums)
            .launch(grid(w as u64 * s as u64)?)
            .map_err(launch)?;
        stream
            .launch_builder(job.function(C::WINDOW)?)
            .arg(&w)
            .arg(&s)
            .arg(&segment_sums)
            .arg(&mut window_sums)
            .launch(grid(w as u64)?)
            .map_err(launch)?;
    }
    let words = job.download(&window_sums)?;
    let sums: Vec<C::Projective> = words.chunks_exact(jac).map(C::from_words).collect();
    Ok(plan.combine(&sums))
}

/// A base vector kept on the device, found again by address, length and fingerprint.
struct Resident {
    addr: usize,
    len: usize,
    fingerprint: [u8; 32],
    words: CudaSlice<u32>,
    last_used: u64,
}

fn fingerprint(words: &[u32], per_point: usize) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((words.len() as u64).to_le_bytes());
    let n = words.len() / per_point;
    for i in [0, n / 2, n.saturating_sub(1)] {
        if n > 0 {
            for w in &words[i * per_point..(i + 1) * per_point] {
                h.update(w.to_le_bytes());
            }
        }
    }
    h.finalize().into()
}

/// Counters of one backend, read by the node's metrics.
#[derive(Debug, Default)]
pub struct BackendStats {
    pub gpu_jobs: AtomicU64,
    pub gpu_seconds_micros: AtomicU64,
    pub cpu_small: AtomicU64,
    pub fallbacks: AtomicU64,
    pub bytes_uploaded: AtomicU64,
}

impl BackendStats {
    /// Records a GPU job that could not run (busy device, driver failure, memory) and
    /// logs why; the caller then computes on the CPU.
    pub(crate) fn fell_back(&self, job: &str, items: usize, e: &KernelError) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(job, items, error = %e, "GPU job not done on the GPU; computed on the CPU instead");
    }

    pub(crate) fn gpu_done(&self, started: Instant) {
        self.gpu_jobs.fetch_add(1, Ordering::Relaxed);
        self.gpu_seconds_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    }
}

/// The prover's MSM backend on one CUDA device.
pub struct CudaMsm {
    gpu: Arc<Gpu>,
    resident: Mutex<Vec<Resident>>,
    clock: AtomicU64,
    /// MSMs smaller than this run on the CPU (launch overhead dominates them).
    pub min_points: usize,
    /// Share of the device memory that resident bases may take.
    pub resident_fraction: f64,
    /// How long an MSM waits for the device before the CPU computes it.
    pub deadline: std::time::Duration,
    pub stats: Arc<BackendStats>,
}

impl CudaMsm {
    pub fn new(gpu: Arc<Gpu>) -> Self {
        Self {
            gpu,
            resident: Mutex::new(Vec::new()),
            clock: AtomicU64::new(0),
            min_points: 1 << 10,
            resident_fraction: 0.5,
            deadline: Priority::Proving.default_deadline(),
            stats: Arc::default(),
        }
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// The MSM on the device, or the reason it could not run there.
    fn try_msm<C: Curve>(&self, bases: &[C::Affine], scalars: &[Fr]) -> Result<C::Projective> {
        if bases.len() != scalars.len() {
            return Err(KernelError::Input(format!("{} bases for {} scalars", bases.len(), scalars.len())));
        }
        if bases.is_empty() {
            // Nothing to upload: a zero-byte device allocation is an error on some drivers.
            return Ok(C::Projective::identity());
        }
        let words = C::words(bases);
        let started = Instant::now();
        let out = self.gpu.job(Priority::Proving, self.deadline, "MSM", |job| {
            let (free, _) = job.gpu().memory()?;
            let mut resident = self.resident.lock().unwrap_or_else(|p| p.into_inner());
            let idx = self.ensure_resident::<C>(job, &mut resident, words, free)?;
            let view_all = resident[idx].words.as_view();
            // Split so each part's scratch fits in what is left.
            let (free, _) = job.gpu().memory()?;
            let budget = free.saturating_sub(free / 8);
            let per_point = MsmPlan::for_size(bases.len()).scratch_bytes(C::JACOBIAN_WORDS * 4) / bases.len().max(1);
            let max_part = (budget / per_point.max(1)).max(1);
            if max_part < 1024.min(bases.len()) {
                return Err(KernelError::OutOfMemory { needed: per_point * bases.len(), free });
            }
            let mut acc = C::Projective::identity();
            let mut start = 0;
            while start < bases.len() {
                let end = (start + max_part).min(bases.len());
                let view = view_all.slice(start * C::AFFINE_WORDS..end * C::AFFINE_WORDS);
                acc += run::<C>(job, &view, &scalars[start..end])?;
                start = end;
            }
            Ok(acc)
        })?;
        self.stats.gpu_done(started);
        Ok(out)
    }

    /// Index of `words` among the resident vectors, uploading it (and evicting the least
    /// recently used vectors beyond the memory share) when absent.
    fn ensure_resident<C: Curve>(
        &self,
        job: &Job<'_>,
        resident: &mut Vec<Resident>,
        words: &[u32],
        free: usize,
    ) -> Result<usize> {
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        let addr = words.as_ptr() as usize;
        let fp = fingerprint(words, C::AFFINE_WORDS);
        if let Some(i) = resident.iter().position(|r| r.addr == addr && r.len == words.len() && r.fingerprint == fp) {
            resident[i].last_used = now;
            return Ok(i);
        }
        let (_, total) = job.gpu().memory()?;
        let cap = (total as f64 * self.resident_fraction) as usize;
        let bytes = words.len() * 4;
        let mut held: usize = resident.iter().map(|r| r.len * 4).sum();
        let mut free = free;
        while !resident.is_empty() && (held + bytes > cap || bytes > free) {
            let lru = resident.iter().enumerate().min_by_key(|(_, r)| r.last_used).map(|(i, _)| i).expect("non-empty");
            // What an eviction frees counts at once: with the figure measured before the
            // loop, one large upload would evict every resident vector.
            held -= resident[lru].len * 4;
            free += resident[lru].len * 4;
            resident.swap_remove(lru);
        }
        let dev = job.upload(words)?;
        self.stats.bytes_uploaded.fetch_add(bytes as u64, Ordering::Relaxed);
        resident.push(Resident { addr, len: words.len(), fingerprint: fp, words: dev, last_used: now });
        Ok(resident.len() - 1)
    }

    fn msm<C: Curve>(&self, bases: &[C::Affine], scalars: &[Fr]) -> C::Projective {
        if bases.len() < self.min_points {
            self.stats.cpu_small.fetch_add(1, Ordering::Relaxed);
            return C::cpu(bases, scalars);
        }
        match self.try_msm::<C>(bases, scalars) {
            Ok(p) => p,
            Err(e) => {
                self.stats.fell_back(if C::NAME == "g1" { "G1 MSM" } else { "G2 MSM" }, bases.len(), &e);
                C::cpu(bases, scalars)
            }
        }
    }

    /// An MSM on bases used once (uploaded for this call, not kept), run as a `class` job.
    pub fn transient_msm_g1(&self, class: Priority, bases: &[G1Affine], scalars: &[Fr]) -> Result<G1Projective> {
        if bases.len() != scalars.len() {
            return Err(KernelError::Input(format!("{} bases for {} scalars", bases.len(), scalars.len())));
        }
        if bases.is_empty() {
            return Ok(G1Projective::identity());
        }
        self.gpu.job(class, self.deadline, "MSM", |job| {
            let dev = job.upload(g1_affine_words(bases))?;
            run::<G1>(job, &dev.as_view(), scalars)
        })
    }

    /// Forgets every resident base vector (frees their device memory).
    pub fn evict_all(&self) {
        self.resident.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

impl MsmBackend for CudaMsm {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn msm_g1(&self, bases: &[G1Affine], scalars: &[Fr]) -> G1Projective {
        self.msm::<G1>(bases, scalars)
    }

    fn msm_g2(&self, bases: &[G2Affine], scalars: &[Fr]) -> G2Projective {
        self.msm::<G2>(bases, scalars)
    }
}

/// The device MSM on explicit inputs with errors surfaced (differential tests and the
/// kernels bench use this to see failures rather than a silent CPU fallback).
pub fn gpu_msm_g1(msm: &CudaMsm, bases: &[G1Affine], scalars: &[Fr]) -> Result<G1Projective> {
    msm.try_msm::<G1>(bases, scalars)
}

pub fn gpu_msm_g2(msm: &CudaMsm, bases: &[G2Affine], scalars: &[Fr]) -> Result<G2Projective> {
    msm.try_msm::<G2>(bases, scalars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_by_size() {
        assert_eq!(MsmPlan::for_size(1 << 20).c, 16);
        assert_eq!(MsmPlan::for_size(1 << 16).c, 12);
        assert_eq!(MsmPlan::for_size(1 << 10).c, 6);
        assert_eq!(MsmPlan::for_size(1).c, 4);
        for n in [1usize, 7, 1 << 10, 1 << 20, 1 << 24] {
            let p = MsmPlan::for_size(n);
            // Signed digits: the last window absorbs the final carry.
            assert!(p.c * p.windows >= 256, "{p:?}");
            assert!(p.segments >= 1 && p.segments <= p.buckets());
        }
        // 2^24 G1 points need about 7 GB of scratch: inside an H100's 80 GB.
        let bytes = MsmPlan::for_size(1 << 24).scratch_bytes(144);
        assert!(bytes < 16 << 30, "{bytes}");
        assert!(MsmPlan::with(10, 1, 32, 1).is_err());
        assert!(MsmPlan::with(10, 17, 32, 1).is_err());
        assert!(MsmPlan::with(10, 4, 0, 1).is_err());
        assert!(MsmPlan::with(10, 4, 4, 9).is_err());
    }
}
