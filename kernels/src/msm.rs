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
use cudarc::driver::{CudaSlice, CudaView, CudaViewMut, LaunchConfig, PushKernelArg};
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

/// The widest window the kernels take: 2^21 buckets per window, about 4.8 GB of G1 bucket
/// sums at c = 22 (12 windows of 2^21 XYZZ points).
pub const MAX_WINDOW_BITS: u32 = 22;

impl MsmPlan {
    /// The plan for `n` points with no memory limit: windows of log2(n) − 3 bits, 4 to
    /// [`MAX_WINDOW_BITS`] (21 at 2^24 points, 17 at 2^20).
    ///
    /// With signed digits a window costs n bucket additions plus about 2^c for its bucket
    /// reduction, so the total is about (256/c)·(n + 2^c), least near c = log2(n) − 3.5
    /// for the sizes that matter; the reductions here run as parallel trees, which favours
    /// the wider of the two neighbours.
    pub fn for_size(n: usize) -> Self {
        let log = usize::BITS - n.max(2).saturating_sub(1).leading_zeros();
        Self::with_window(n, log.saturating_sub(3).clamp(4, MAX_WINDOW_BITS))
    }

    /// The plan for `n` points whose scratch fits `budget` bytes, for bucket points of
    /// `bucket_point_bytes` (XYZZ) and results of `jacobian_bytes`: the widest window up
    /// to the size's that fits. Narrowing saves bucket memory but adds windows, each with
    /// n digits and sorted entries, so scratch has a floor; `None` below it (the caller
    /// splits the MSM into parts).
    pub fn for_memory(n: usize, bucket_point_bytes: usize, jacobian_bytes: usize, budget: usize) -> Option<Self> {
        let widest = Self::for_size(n).c;
        (4..=widest)
            .rev()
            .map(|c| Self::with_window(n, c))
            .find(|p| p.scratch_bytes(bucket_point_bytes, jacobian_bytes) <= budget)
    }

    /// The size plan's chunk and segment counts for window width `c`.
    fn with_window(n: usize, c: u32) -> Self {
        let buckets = 1u32 << (c - 1);
        Self::with(n, c, 32, (buckets / 64).max(1)).expect("the default plan is valid")
    }

    /// A plan with explicit sizes (tests use small chunks to cross many boundaries).
    pub fn with(n: usize, c: u32, chunk: u32, segments: u32) -> Result<Self> {
        if n > (i32::MAX as usize) {
            return Err(KernelError::Input(format!("{n} points exceed one MSM run")));
        }
        if !(2..=MAX_WINDOW_BITS).contains(&c) || chunk == 0 || segments == 0 || segments > (1 << (c - 1)) {
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

    /// Device bytes one run needs besides the bases, for bucket points (XYZZ) of
    /// `bucket_point_bytes` and a result of `jacobian_bytes`.
    pub fn scratch_bytes(&self, bucket_point_bytes: usize, jacobian_bytes: usize) -> usize {
        let (n, w, b) = (self.n as usize, self.windows as usize, self.buckets() as usize);
        let chunks = self.chunks() as usize;
        n * 32                                      // scalars
            + w * n * (4 + 4 + 4)                   // digits, sorted indices, sorted buckets
            + w * b * 4 * 3                         // counts, offsets, cursors
            + 2 * w * chunks * bucket_point_bytes   // head, tail
            + w * b * bucket_point_bytes            // bucket sums
            + w * self.segments as usize * bucket_point_bytes
            + jacobian_bytes
    }
}

/// One of the two groups, as the kernels see it.
pub(crate) trait Curve: Copy + Send + Sync + 'static {
    type Affine: Copy + Send + Sync;
    type Projective: Group + Send;
    const NAME: &'static str;
    const AFFINE_WORDS: usize;
    const JACOBIAN_WORDS: usize;
    /// Words of an XYZZ bucket point: X, Y, ZZ, ZZZ.
    const XYZZ_WORDS: usize = 2 * Self::AFFINE_WORDS;
    const CHUNK: &'static str;
    const PIECE_TREE: &'static str;
    const BUCKET: &'static str;
    const SEGMENT: &'static str;
    const REDUCE: &'static str;
    const COMBINE: &'static str;
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
    const PIECE_TREE: &'static str = "msm_piece_tree_g1";
    const BUCKET: &'static str = "msm_bucket_g1";
    const SEGMENT: &'static str = "msm_segment_g1";
    const REDUCE: &'static str = "msm_reduce_g1";
    const COMBINE: &'static str = "msm_combine_g1";
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
    const PIECE_TREE: &'static str = "msm_piece_tree_g2";
    const BUCKET: &'static str = "msm_bucket_g2";
    const SEGMENT: &'static str = "msm_segment_g2";
    const REDUCE: &'static str = "msm_reduce_g2";
    const COMBINE: &'static str = "msm_combine_g2";
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

/// Threads of the `msm_scan` block (`DC_SCAN_THREADS` in msm/msm.cuh).
pub(crate) const SCAN_THREADS: u32 = 1024;

/// Runs the phases of one MSM with `plan` on bases already on the device; the device
/// combines the windows and one point comes back.
fn run<C: Curve>(
    job: &Job<'_>,
    arena: &mut Arena,
    plan: &MsmPlan,
    bases: &CudaView<'_, u32>,
    scalars: &[Fr],
) -> Result<C::Projective> {
    if scalars.is_empty() {
        return Ok(C::Projective::identity());
    }
    debug_assert_eq!(plan.n as usize, scalars.len());
    let (n, c, w, k, s) = (plan.n, plan.c, plan.windows, plan.chunk, plan.segments);
    let b = plan.buckets();
    let chunks = plan.chunks();
    let (wn, wb) = (w as usize * n as usize, w as usize * b as usize);
    let xyzz = C::XYZZ_WORDS;
    let stream = job.stream();
    let hw = w as usize * chunks as usize * xyzz;
    // Every buffer is a slice of the device's scratch arena, in this order.
    let sizes = [
        n as usize * 8,                 // scalars
        wn,                             // digits (i32 on the device)
        wb,                             // counts
        wb,                             // offsets
        wb,                             // cursor
        wn,                             // sorted indices
        wn,                             // sorted buckets
        hw,                             // head pieces
        hw,                             // tail pieces
        wb * xyzz,                      // bucket sums
        w as usize * s as usize * xyzz, // segment sums
        C::JACOBIAN_WORDS,              // the result
    ];
    let used: usize = sizes.iter().sum();
    debug_assert_eq!(used * 4, plan.scratch_bytes(xyzz * 4, C::JACOBIAN_WORDS * 4));
    let mut r0 = arena.take(job, used)?;
    let (mut scalars_d, mut r1) = r0.split_at_mut(sizes[0]);
    let (mut digits, mut r2) = r1.split_at_mut(sizes[1]);
    let (mut counts, mut r3) = r2.split_at_mut(sizes[2]);
    let (mut offsets, mut r4) = r3.split_at_mut(sizes[3]);
    let (mut cursor, mut r5) = r4.split_at_mut(sizes[4]);
    let (mut sorted_idx, mut r6) = r5.split_at_mut(sizes[5]);
    let (mut sorted_bucket, mut r7) = r6.split_at_mut(sizes[6]);
    let (mut head, mut r8) = r7.split_at_mut(sizes[7]);
    let (mut tail, mut r9) = r8.split_at_mut(sizes[8]);
    let (mut bucket_sums, mut r10) = r9.split_at_mut(sizes[9]);
    let (mut segment_sums, mut result) = r10.split_at_mut(sizes[10]);
    stream.memset_zeros(&mut counts).map_err(KernelError::driver("counter memset"))?;
    job.upload_into(fr_words(scalars), &mut scalars_d)?;
    let launch = KernelError::driver("MSM launch");
    // Rounds of a tree over `len` items per window: (stride, threads) for stride 1, 2, 4, …
    // below `len`, as msm_piece_tree/msm_reduce index them.
    let rounds = |len: u32| {
        std::iter::successors(Some(1u32), |s| s.checked_mul(2))
            .take_while(move |&s| s < len)
            .map(move |s| (s, w as u64 * len.div_ceil(2 * s) as u64))
    };

    // SAFETY (every launch below): argument lists match the kernels' C signatures in
    // msm/msm.cu in order and type (u32 scalars, device pointers to u32/i32 words: the
    // digits are i32 words in a u32 slice, same size); every buffer was carved above with
    // the length the kernel indexes up to for this plan
    // (n·W digits and sorted entries, W·B counters and bucket sums, W·chunks head/tail,
    // W·S segment sums, each bucket point `xyzz` words, one Jacobian result); `bases`
    // holds n points.
    unsafe {
        stream
            .launch_builder(job.function("msm_digits")?)
            .arg(&mut scalars_d)
            .arg(&n)
            .arg(&c)
            .arg(&w)
            .arg(&mut digits)
            .arg(&mut counts)
            .launch(grid(n as u64)?)
            .map_err(launch)?;
        let scan = LaunchConfig { grid_dim: (w, 1, 1), block_dim: (SCAN_THREADS, 1, 1), shared_mem_bytes: 0 };
        stream
            .launch_builder(job.function("msm_scan")?)
            .arg(&mut counts)
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
            .arg(&mut digits)
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
            .arg(&mut sorted_idx)
            .arg(&mut sorted_bucket)
            .arg(&mut offsets)
            .arg(&mut counts)
            .arg(&mut head)
            .arg(&mut tail)
            .arg(&mut bucket_sums)
            .launch(grid(w as u64 * chunks as u64)?)
            .map_err(launch)?;
        for (stride, threads) in rounds(chunks) {
            stream
                .launch_builder(job.function(C::PIECE_TREE)?)
                .arg(&n)
                .arg(&c)
                .arg(&w)
                .arg(&k)
                .arg(&stride)
                .arg(&mut sorted_bucket)
                .arg(&mut offsets)
                .arg(&mut counts)
                .arg(&mut head)
                .launch(grid(threads)?)
                .map_err(launch)?;
        }
        stream
            .launch_builder(job.function(C::BUCKET)?)
            .arg(&n)
            .arg(&c)
            .arg(&w)
            .arg(&k)
            .arg(&mut offsets)
            .arg(&mut counts)
            .arg(&mut head)
            .arg(&mut tail)
            .arg(&mut bucket_sums)
            .launch(grid(wb as u64)?)
            .map_err(launch)?;
        stream
            .launch_builder(job.function(C::SEGMENT)?)
            .arg(&c)
            .arg(&w)
            .arg(&s)
            .arg(&mut bucket_sums)
            .arg(&mut segment_sums)
            .launch(grid(w as u64 * s as u64)?)
            .map_err(launch)?;
        for (stride, threads) in rounds(s) {
            stream
                .launch_builder(job.function(C::REDUCE)?)
                .arg(&w)
                .arg(&s)
                .arg(&stride)
                .arg(&mut segment_sums)
                .launch(grid(threads)?)
                .map_err(launch)?;
        }
        stream
            .launch_builder(job.function(C::COMBINE)?)
            .arg(&c)
            .arg(&w)
            .arg(&s)
            .arg(&mut segment_sums)
            .arg(&mut result)
            .launch(grid(1)?)
            .map_err(launch)?;
    }
    Ok(C::from_words(&job.download_view(&result)?))
}

/// The device's MSM scratch: one allocation, sized for the largest plan run so far and
/// kept, so an MSM does not allocate and free a dozen buffers per call. Only the bucket
/// counters are zeroed per run: every other buffer is written by a phase before any phase
/// reads it, which the host emulation checks by starting them as garbage.
#[derive(Default)]
struct Arena {
    words: Option<CudaSlice<u32>>,
}

impl Arena {
    /// `len` words, growing the arena first when it is smaller.
    fn take(&mut self, job: &Job<'_>, len: usize) -> Result<CudaViewMut<'_, u32>> {
        if self.words.as_ref().is_none_or(|w| w.len() < len) {
            // Free the old arena before allocating the larger one.
            self.words = None;
            self.words = Some(job.zeros::<u32>(len)?);
        }
        Ok(self.words.as_mut().expect("allocated above").slice_mut(..len))
    }

    fn bytes(&self) -> usize {
        self.words.as_ref().map_or(0, |w| w.len() * 4)
    }
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
    arena: Mutex<Arena>,
    clock: AtomicU64,
    /// MSMs smaller than this run on the CPU (launch overhead dominates them).
    pub min_points: usize,
    /// Share of the device memory that resident bases may take.
    pub resident_fraction: f64,
    /// How long an MSM waits for the device before the CPU computes it.
    pub deadline: std::time::Duration,
    /// G2 MSMs of up to this many points run on the CPU, beside the proof's G1 MSMs on
    /// the device ([`MsmBackend::g2_on_cpu`]). 0 until a device measurement says where
    /// the CPU finishes first.
    pub g2_cpu_max_points: usize,
    pub stats: Arc<BackendStats>,
}

impl CudaMsm {
    pub fn new(gpu: Arc<Gpu>) -> Self {
        Self {
            gpu,
            resident: Mutex::new(Vec::new()),
            arena: Mutex::default(),
            clock: AtomicU64::new(0),
            min_points: 1 << 10,
            resident_fraction: 0.5,
            deadline: Priority::Proving.default_deadline(),
            g2_cpu_max_points: 0,
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
            // The size's window, narrowed until its scratch fits what is left (the arena
            // counts as free: it is reused or replaced); split into parts only when not
            // even narrow windows fit.
            let mut arena = self.arena.lock().unwrap_or_else(|p| p.into_inner());
            let (free, _) = job.gpu().memory()?;
            let free = free + arena.bytes();
            let budget = free.saturating_sub(free / 8);
            let (xyzz, jac) = (C::XYZZ_WORDS * 4, C::JACOBIAN_WORDS * 4);
            let mut part = bases.len();
            let plan_for = |len: usize| MsmPlan::for_memory(len, xyzz, jac, budget);
            while plan_for(part).is_none() {
                part = part.div_ceil(2);
                if part < 1024.min(bases.len()) {
                    let needed = MsmPlan::with_window(bases.len(), 4).scratch_bytes(xyzz, jac);
                    return Err(KernelError::OutOfMemory { needed, free });
                }
            }
            let mut acc = C::Projective::identity();
            let mut start = 0;
            while start < bases.len() {
                let end = (start + part).min(bases.len());
                let plan = plan_for(end - start).expect("a smaller part fits as the first did");
                let view = view_all.slice(start * C::AFFINE_WORDS..end * C::AFFINE_WORDS);
                acc += run::<C>(job, &mut arena, &plan, &view, &scalars[start..end])?;
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
            let mut arena = self.arena.lock().unwrap_or_else(|p| p.into_inner());
            let (free, _) = job.gpu().memory()?;
            let free = free + arena.bytes();
            let (xyzz, jac) = (G1::XYZZ_WORDS * 4, G1_JACOBIAN_WORDS * 4);
            let plan = MsmPlan::for_memory(bases.len(), xyzz, jac, free - free / 8).ok_or_else(|| {
                KernelError::OutOfMemory { needed: MsmPlan::with_window(bases.len(), 4).scratch_bytes(xyzz, jac), free }
            })?;
            run::<G1>(job, &mut arena, &plan, &dev.as_view(), scalars)
        })
    }

    /// Forgets every resident base vector and the scratch arena (frees their device
    /// memory).
    pub fn evict_all(&self) {
        self.resident.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.arena.lock().unwrap_or_else(|p| p.into_inner()).words = None;
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

    fn g2_on_cpu(&self, points: usize) -> bool {
        points > 0 && points <= self.g2_cpu_max_points
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

    /// The scan block the Rust side launches must be the size the kernel was written for.
    #[test]
    fn scan_threads_match_the_kernel() {
        let scan = format!("#define DC_SCAN_THREADS {SCAN_THREADS}\n");
        assert!(crate::source::MSM.source().contains(&scan), "{scan}");
    }

    #[test]
    fn plans_by_size() {
        assert_eq!(MsmPlan::for_size(1 << 24).c, 21);
        assert_eq!(MsmPlan::for_size(1 << 20).c, 17);
        assert_eq!(MsmPlan::for_size(1 << 16).c, 13);
        assert_eq!(MsmPlan::for_size(1 << 10).c, 7);
        assert_eq!(MsmPlan::for_size(1).c, 4);
        assert_eq!(MsmPlan::for_size(1 << 30).c, MAX_WINDOW_BITS);
        for n in [1usize, 7, 1 << 10, 1 << 20, 1 << 24] {
            let p = MsmPlan::for_size(n);
            // Signed digits: the last window absorbs the final carry.
            assert!(p.c * p.windows >= 256, "{p:?}");
            assert!(p.segments >= 1 && p.segments <= p.buckets());
        }
        assert!(MsmPlan::with(10, 1, 32, 1).is_err());
        assert!(MsmPlan::with(10, MAX_WINDOW_BITS + 1, 32, 1).is_err());
        assert!(MsmPlan::with(10, 4, 0, 1).is_err());
        assert!(MsmPlan::with(10, 4, 4, 9).is_err());
    }

    #[test]
    fn plans_narrow_their_windows_to_fit_the_device() {
        let (xyzz, jac) = (G1::XYZZ_WORDS * 4, G1_JACOBIAN_WORDS * 4);
        // 2^24 G1 points at c = 21 take about 8 GiB of scratch: inside an H100's 80 GB.
        let wide = MsmPlan::for_size(1 << 24);
        let bytes = wide.scratch_bytes(xyzz, jac);
        assert!(bytes > 4 << 30 && bytes < 16 << 30, "{bytes}");
        assert_eq!(MsmPlan::for_memory(1 << 24, xyzz, jac, 70 << 30), Some(wide));
        // A smaller budget narrows the window, and what comes back fits it.
        let narrow = MsmPlan::for_memory(1 << 24, xyzz, jac, 7 << 30).expect("a narrower window fits");
        assert!(narrow.c < wide.c, "{narrow:?}");
        assert!(narrow.scratch_bytes(xyzz, jac) <= 7 << 30);
        // It is the widest that fits.
        assert!(MsmPlan::with_window(1 << 24, narrow.c + 1).scratch_bytes(xyzz, jac) > 7 << 30);
        // Narrower windows mean more windows, each with n digits and sorted entries, so
        // scratch has a floor (about 6.5 GiB at 2^24, c = 18 or 19): below it nothing fits
        // and the caller splits the MSM into parts.
        assert_eq!(MsmPlan::for_memory(1 << 24, xyzz, jac, 6 << 30), None);
        assert!(MsmPlan::for_memory(1 << 23, xyzz, jac, 6 << 30).is_some());
    }
}
