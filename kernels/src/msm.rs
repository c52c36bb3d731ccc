//! Multi-scalar multiplication on the GPU: [`MsmPlan`] (the window, chunk and segment
//! sizes shared by the kernels and the host emulation) and [`CudaMsm`], the prover's
//! `MsmBackend` on a CUDA device.
//!
//! The algorithm is described in `cuda/msm/msm.cuh`. `CudaMsm` keeps base vectors
//! resident on the device across calls (a proving key's queries are uploaded once and
//! found again by address, length and a fingerprint), with a table of their shifted
//! copies 2^(c·w)·P made on the device beside each when it fits, so an MSM on them runs
//! as one wide window ([`MsmPlan::shifted_for_size`]). Optional batched affine rounds
//! ([`AffineRounds`], off by default: [`CudaMsm::batched_affine`]) sum each bucket's
//! entries pairwise in affine coordinates before the XYZZ phase. Scalars go up in chunks from
//! pinned memory on a second stream, overlapped with their recoding, or are read in place
//! when already on the device (the QAP's h: `CudaNtt::h_msm` in the ntt module). An MSM
//! that does not fit the device's free memory is split into parts, and the CPU computes
//! it, with a logged reason, when the device fails. Results are the same group elements
//! as the CPU backend's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use blstrs::{G1Affine, G1Projective, G2Affine, G2Projective, Scalar as Fr};
use cudarc::driver::{CudaEvent, CudaSlice, CudaView, CudaViewMut, LaunchConfig, PinnedHostSlice, PushKernelArg};
use dualchain_prover::backend::{CpuBackend, MsmBackend};
use group::Group;
use sha2::{Digest, Sha256};

use crate::device::{grid, Gpu, Job};
use crate::error::{KernelError, Result};
use crate::layout::*;
use crate::scheduler::Priority;

/// Sizes of one MSM run. `c` is the window width, `windows = floor(255/c) + 1`,
/// `chunk` the sorted entries per accumulation thread, `segments` the reduction threads
/// per window. With `shifted`, the bases come from a table of their shifted copies
/// 2^(c·w)·P (kept resident beside them) and the sorted phases run on one window of
/// `windows·n` entries (`cuda/msm/msm.cuh`). Phase 1 takes the scalars `upload_chunk` at a
/// time; `affine` shapes the optional batched affine rounds before the chunk phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsmPlan {
    pub n: u32,
    pub c: u32,
    pub windows: u32,
    pub chunk: u32,
    pub segments: u32,
    pub shifted: bool,
    pub upload_chunk: u32,
    pub affine: AffineRounds,
}

/// Phase 3b's shape (`cuda/msm/msm.cuh`): `rounds` rounds of pairwise affine additions
/// inside each bucket's run (0: none, the chunk phase adds every entry in XYZZ
/// coordinates), `slice` sorted positions per thread in round 0 (doubled each round, so a
/// thread has at most `slice` heads), and one Fermat inversion per `group` threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AffineRounds {
    pub rounds: u32,
    pub slice: u32,
    pub group: u32,
}

impl AffineRounds {
    /// No affine rounds.
    pub const NONE: Self = Self { rounds: 0, slice: AFFINE_SLICE, group: AFFINE_GROUP };
}

/// Sorted positions per affine-round thread in round 0: about 32 heads on long runs, each
/// costing 6 field multiplications, against the thread's share of its group's inversion.
pub const AFFINE_SLICE: u32 = 64;

/// Threads per Fermat inversion in an affine round: about 570 multiplications (and 3 per
/// thread to hand out the inverses) shared by some 1,000 additions, by arithmetic.
pub const AFFINE_GROUP: u32 = 32;

/// The most affine rounds a plan takes: runs of up to 2^8 entries halve to one.
pub const MAX_AFFINE_ROUNDS: u32 = 8;

/// The widest window the kernels take: 2^21 buckets per window, about 4.8 GB of G1 bucket
/// sums at c = 22 (12 windows of 2^21 XYZZ points).
pub const MAX_WINDOW_BITS: u32 = 22;

/// Scalars per upload chunk: 2^18 scalars, 8 MiB, so a chunk's copy from pinned memory
/// (about 0.3 ms at PCIe 4 ×16's 25 GB/s, by arithmetic: not measured) overlaps the
/// recoding of the one before it.
pub const UPLOAD_CHUNK: u32 = 1 << 18;

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

    /// The plan for `n` points on a table of shifted bases: the bucket reduction is paid
    /// once, not per window, so the cost is W·n bucket additions plus 2^c, least at about
    /// c = log2(n) (20 at 2^20: 14·n additions where [`MsmPlan::for_size`]'s c = 17 makes
    /// 16·n + 16·2^17 = 18·n). An error when W·n entries do not fit one run
    /// ([`MsmPlan::on_shifted_bases`]).
    pub fn shifted_for_size(n: usize) -> Result<Self> {
        let cost = |c: u32| (255 / c + 1) as u64 * n as u64 + (1u64 << c);
        let c = (4..=MAX_WINDOW_BITS).min_by_key(|&c| (cost(c), c)).expect("a non-empty range");
        Self::with_window(n, c).on_shifted_bases()
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
        let windows = 255 / c + 1;
        Ok(Self {
            n: n as u32,
            c,
            windows,
            chunk,
            segments,
            shifted: false,
            upload_chunk: UPLOAD_CHUNK,
            affine: AffineRounds::NONE,
        })
    }

    /// This plan on a table of shifted bases, when its W·n entries fit one run (the
    /// sorted entries keep a sign bit beside each index).
    pub fn on_shifted_bases(self) -> Result<Self> {
        if self.windows as u64 * self.n as u64 > i32::MAX as u64 {
            return Err(KernelError::Input(format!(
                "{} shifted copies of {} points exceed one MSM run",
                self.windows, self.n
            )));
        }
        Ok(Self { shifted: true, ..self })
    }

    /// This plan with scalars uploaded `upload_chunk` at a time.
    pub fn with_upload_chunk(self, upload_chunk: u32) -> Result<Self> {
        if upload_chunk == 0 {
            return Err(KernelError::Input("an upload chunk of no scalars".into()));
        }
        Ok(Self { upload_chunk, ..self })
    }

    /// This plan with `rounds` batched affine rounds before the chunk phase, `slice`
    /// positions per thread and one inversion per `group` threads ([`AffineRounds`]).
    pub fn with_affine_rounds(self, rounds: u32, slice: u32, group: u32) -> Result<Self> {
        if rounds > MAX_AFFINE_ROUNDS || slice == 0 || group == 0 || slice > 1 << 16 {
            return Err(KernelError::Input(format!(
                "bad affine rounds: {rounds} rounds, {slice} positions per thread, {group} threads per inversion"
            )));
        }
        Ok(Self { affine: AffineRounds { rounds, slice, group }, ..self })
    }

    /// This plan with as many affine rounds as its runs are expected to halve: log2 of the
    /// mean entries per bucket (about W·n / 2^(c−1) on shifted bases: 4 rounds at 2^20
    /// with c = 20), none when buckets hold two entries or fewer on average.
    pub fn with_batched_affine(self) -> Self {
        let mean = self.entries() as u64 / self.buckets() as u64;
        let rounds = if mean < 4 { 0 } else { (63 - mean.leading_zeros()).min(MAX_AFFINE_ROUNDS) };
        self.with_affine_rounds(rounds, AFFINE_SLICE, AFFINE_GROUP).expect("the default affine shape is valid")
    }

    /// Threads of affine round `round` (phase 3b's a and c launches).
    pub fn affine_threads(&self, round: u32) -> u32 {
        let span = (self.affine.slice as u64) << round;
        self.sorted_windows() * (self.entries() as u64).div_ceil(span) as u32
    }

    pub fn buckets(&self) -> u32 {
        1 << (self.c - 1)
    }

    /// Windows of the sorted phases (2–8): one on shifted bases.
    pub fn sorted_windows(&self) -> u32 {
        if self.shifted {
            1
        } else {
            self.windows
        }
    }

    /// Entries per sorted window: n, or W·n on shifted bases.
    pub fn entries(&self) -> u32 {
        if self.shifted {
            self.windows * self.n
        } else {
            self.n
        }
    }

    pub fn chunks(&self) -> u32 {
        self.entries().div_ceil(self.chunk)
    }

    /// Bytes of the shifted-base table for affine points of `affine_bytes`: W copies.
    pub fn table_bytes(&self, affine_bytes: usize) -> usize {
        self.windows as usize * self.n as usize * affine_bytes
    }

    /// Device bytes one run needs besides the bases (and their shifted table), for bucket
    /// points (XYZZ) of `bucket_point_bytes` and a result of `jacobian_bytes`: the scratch
    /// arena and the two upload chunks. With affine rounds, the arena also holds an affine
    /// point and a field element per sorted entry (partial sums, prefix products) and two
    /// field elements per round-0 thread; an affine point is half an XYZZ point, a field
    /// element a quarter.
    pub fn scratch_bytes(&self, bucket_point_bytes: usize, jacobian_bytes: usize) -> usize {
        let (n, w, b) = (self.n as usize, self.windows as usize, self.buckets() as usize);
        let sw = self.sorted_windows() as usize;
        let chunks = self.chunks() as usize;
        let field = bucket_point_bytes / 4;
        let affine = if self.affine.rounds > 0 {
            sw * self.entries() as usize * 3 * field + 2 * self.affine_threads(0) as usize * field
        } else {
            0
        };
        affine
            + 2 * self.upload_chunk.min(self.n) as usize * 32 // two upload chunks of scalars
            + w * n * (4 + 4 + 4)                   // digits, sorted indices, sorted buckets
            + sw * b * 4 * 3                        // counts, offsets, cursors
            + 2 * sw * chunks * bucket_point_bytes  // head, tail
            + sw * b * bucket_point_bytes           // bucket sums
            + sw * self.segments as usize * bucket_point_bytes
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
    const SHIFT: &'static str;
    const AFFINE_PAIRS: &'static str;
    const AFFINE_INVERT: &'static str;
    const AFFINE_FINISH: &'static str;
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
    const SHIFT: &'static str = "msm_shift_g1";
    const AFFINE_PAIRS: &'static str = "msm_affine_pairs_g1";
    const AFFINE_INVERT: &'static str = "msm_affine_invert_g1";
    const AFFINE_FINISH: &'static str = "msm_affine_finish_g1";
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
    const SHIFT: &'static str = "msm_shift_g2";
    const AFFINE_PAIRS: &'static str = "msm_affine_pairs_g2";
    const AFFINE_INVERT: &'static str = "msm_affine_invert_g2";
    const AFFINE_FINISH: &'static str = "msm_affine_finish_g2";
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

/// The scalars of one MSM run: on the host (uploaded chunk by chunk through pinned
/// memory), or already on the device (the QAP's h, read in place).
pub(crate) enum Scalars<'a> {
    Host(&'a [Fr]),
    Device(CudaView<'a, u32>),
}

impl Scalars<'_> {
    fn len(&self) -> usize {
        match self {
            Scalars::Host(s) => s.len(),
            Scalars::Device(v) => v.len() / 8,
        }
    }

    /// Scalars `start..end`.
    fn slice(&self, start: usize, end: usize) -> Scalars<'_> {
        match self {
            Scalars::Host(s) => Scalars::Host(&s[start..end]),
            Scalars::Device(v) => Scalars::Device(v.slice(start * 8..end * 8)),
        }
    }
}

/// Phase 1 of `plan`: each chunk of host scalars is copied into one of two pinned buffers,
/// uploaded on the device's upload stream into one of two device buffers, and recoded on
/// the compute stream once its copy is done, so chunk j + 1 travels while chunk j is
/// recoded; a buffer is refilled only after the recoding that read it. Scalars on the
/// device are recoded in place in one launch.
fn recode(
    job: &Job<'_>,
    staging: &mut Staging,
    plan: &MsmPlan,
    scalars: &Scalars<'_>,
    digits: &mut CudaViewMut<'_, u32>,
    counts: &mut CudaViewMut<'_, u32>,
) -> Result<()> {
    let n = plan.n;
    let launch = KernelError::driver("MSM launch");
    match scalars {
        Scalars::Device(v) => launch_digits(job, plan, v, 0, n, digits, counts)?,
        Scalars::Host(host) => {
            let chunk = plan.upload_chunk.min(n) as usize;
            if host.len() <= chunk {
                // One chunk: nothing to overlap, so no pinned copy either.
                staging.ensure(job, host.len() * 8, false)?;
                let dev = staging.device[0].as_mut().expect("ensured");
                job.upload_into(fr_words(host), &mut dev.slice_mut(..host.len() * 8))?;
                return launch_digits(job, plan, &dev.as_view(), 0, n, digits, counts);
            }
            staging.ensure(job, chunk * 8, true)?;
            for (j, part) in host.chunks(chunk).enumerate() {
                let (pinned, dev, read) = staging.slot(j % 2);
                // Waits for this buffer's last copy to the device before overwriting it.
                pinned.as_mut_slice().map_err(launch)?[..part.len() * 8].copy_from_slice(fr_words(part));
                // The device buffer is refilled only once the recoding that read it is done.
                if let Some(read) = read.take() {
                    job.upload_stream().wait(&read).map_err(launch)?;
                }
                job.upload_stream().memcpy_htod(&*pinned, dev).map_err(KernelError::driver("upload"))?;
                job.moved(part.len() * 32);
                let copied = job.upload_stream().record_event(None).map_err(launch)?;
                job.stream().wait(&copied).map_err(launch)?;
                launch_digits(job, plan, &dev.as_view(), (j * chunk) as u32, part.len() as u32, digits, counts)?;
                *read = Some(job.stream().record_event(None).map_err(launch)?);
            }
        }
    }
    Ok(())
}

/// Phase 1 on one chunk: scalars `first..first + count` of the n, held by `chunk`.
fn launch_digits(
    job: &Job<'_>,
    plan: &MsmPlan,
    chunk: &CudaView<'_, u32>,
    first: u32,
    count: u32,
    digits: &mut CudaViewMut<'_, u32>,
    counts: &mut CudaViewMut<'_, u32>,
) -> Result<()> {
    let (n, c, w, fold) = (plan.n, plan.c, plan.windows, plan.shifted as u32);
    debug_assert!(chunk.len() >= count as usize * 8 && first + count <= n);
    // SAFETY: msm_digits(const u32* chunk, u32 first, u32 count, u32 n, u32 c, u32 windows,
    // u32 fold, i32* digits, u32* counts): `chunk` holds `count` scalars (8 words each),
    // `digits` W·n words, `counts` the plan's counters (W·B, or B with `fold`).
    unsafe {
        job.stream()
            .launch_builder(job.function("msm_digits")?)
            .arg(chunk)
            .arg(&first)
            .arg(&count)
            .arg(&n)
            .arg(&c)
            .arg(&w)
            .arg(&fold)
            .arg(digits)
            .arg(counts)
            .launch(grid(count as u64)?)
            .map_err(KernelError::driver("MSM launch"))?;
    }
    Ok(())
}

/// Runs the phases of one MSM with `plan` on bases already on the device (the shifted
/// table when `plan.shifted`); the device combines the windows and one point comes back.
fn run<C: Curve>(
    job: &Job<'_>,
    scratch: &mut Scratch,
    plan: &MsmPlan,
    bases: &CudaView<'_, u32>,
    scalars: &Scalars<'_>,
) -> Result<C::Projective> {
    if scalars.len() == 0 {
        return Ok(C::Projective::identity());
    }
    debug_assert_eq!(plan.n as usize, scalars.len());
    // The sorted phases run on `w` windows of `n` entries: W of n, or one of W·n.
    let (n, c, w, k, s) = (plan.entries(), plan.c, plan.sorted_windows(), plan.chunk, plan.segments);
    let b = plan.buckets();
    let chunks = plan.chunks();
    let (wn, wb) = (w as usize * n as usize, w as usize * b as usize);
    let xyzz = C::XYZZ_WORDS;
    let stream = job.stream();
    let hw = w as usize * chunks as usize * xyzz;
    let (affine_rounds, slice, group) = (plan.affine.rounds, plan.affine.slice, plan.affine.group);
    let (affine, field) = (C::AFFINE_WORDS, C::AFFINE_WORDS / 2);
    let (pts_len, inv_len) = if affine_rounds > 0 { (wn, plan.affine_threads(0) as usize) } else { (0, 0) };
    // Every buffer is a slice of the device's scratch arena, in this order.
    let sizes = [
        plan.windows as usize * plan.n as usize, // digits (i32 on the device), W·n either way
        wb,                                      // counts
        wb,                                      // offsets
        wb,                                      // cursor
        wn,                                      // sorted indices
        wn,                                      // sorted buckets
        hw,                                      // head pieces
        hw,                                      // tail pieces
        wb * xyzz,                               // bucket sums
        w as usize * s as usize * xyzz,          // segment sums
        pts_len * affine,                        // affine partial sums (phase 3b)
        pts_len * field,                         // prefix products of the denominators
        inv_len * field,                         // each thread's product...
        inv_len * field,                         // ...and its inverse
        C::JACOBIAN_WORDS,                       // the result
    ];
    let used: usize = sizes.iter().sum();
    debug_assert_eq!(
        used * 4 + 2 * plan.upload_chunk.min(plan.n) as usize * 32,
        plan.scratch_bytes(xyzz * 4, C::JACOBIAN_WORDS * 4)
    );
    let Scratch { arena, staging } = scratch;
    let mut r1 = arena.take(job, used)?;
    let (mut digits, mut r2) = r1.split_at_mut(sizes[0]);
    let (mut counts, mut r3) = r2.split_at_mut(sizes[1]);
    let (mut offsets, mut r4) = r3.split_at_mut(sizes[2]);
    let (mut cursor, mut r5) = r4.split_at_mut(sizes[3]);
    let (mut sorted_idx, mut r6) = r5.split_at_mut(sizes[4]);
    let (mut sorted_bucket, mut r7) = r6.split_at_mut(sizes[5]);
    let (mut head, mut r8) = r7.split_at_mut(sizes[6]);
    let (mut tail, mut r9) = r8.split_at_mut(sizes[7]);
    let (mut bucket_sums, mut r10) = r9.split_at_mut(sizes[8]);
    let (mut segment_sums, mut r11) = r10.split_at_mut(sizes[9]);
    let (mut pts, mut r12) = r11.split_at_mut(sizes[10]);
    let (mut pref, mut r13) = r12.split_at_mut(sizes[11]);
    let (mut tprod, mut r14) = r13.split_at_mut(sizes[12]);
    let (mut tinv, mut result) = r14.split_at_mut(sizes[13]);
    stream.memset_zeros(&mut counts).map_err(KernelError::driver("counter memset"))?;
    recode(job, staging, plan, scalars, &mut digits, &mut counts)?;
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
    // the length the kernel indexes up to for this plan (for the sorted phases' n and w:
    // n·w sorted entries, w·B counters and bucket sums, w·chunks head/tail, w·S segment
    // sums, each bucket point `xyzz` words, one Jacobian result; with affine rounds, n·w
    // partial sums and prefix products and one product and inverse per thread of round 0,
    // which has the most threads of any round; without them `pts` is empty and the chunk
    // kernel reads no entry of it); `bases` holds n points.
    unsafe {
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
        for round in 0..affine_rounds {
            let threads = plan.affine_threads(round);
            // a, b and c of phase 3b; a and c take the same arguments, the last being each
            // thread's product (a writes it) or its inverse (c reads it).
            for kernel in [C::AFFINE_PAIRS, C::AFFINE_INVERT, C::AFFINE_FINISH] {
                if kernel == C::AFFINE_INVERT {
                    stream
                        .launch_builder(job.function(kernel)?)
                        .arg(&threads)
                        .arg(&group)
                        .arg(&mut tprod)
                        .arg(&mut tinv)
                        .launch(grid(threads.div_ceil(group) as u64)?)
                        .map_err(launch)?;
                    continue;
                }
                let per_thread = if kernel == C::AFFINE_PAIRS { &mut tprod } else { &mut tinv };
                stream
                    .launch_builder(job.function(kernel)?)
                    .arg(&n)
                    .arg(&c)
                    .arg(&w)
                    .arg(&round)
                    .arg(&slice)
                    .arg(bases)
                    .arg(&mut sorted_idx)
                    .arg(&mut sorted_bucket)
                    .arg(&mut offsets)
                    .arg(&mut counts)
                    .arg(&mut pts)
                    .arg(&mut pref)
                    .arg(per_thread)
                    .launch(grid(threads as u64)?)
                    .map_err(launch)?;
            }
        }
        stream
            .launch_builder(job.function(C::CHUNK)?)
            .arg(&n)
            .arg(&c)
            .arg(&w)
            .arg(&k)
            .arg(&affine_rounds)
            .arg(bases)
            .arg(&mut pts)
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

/// The device's MSM scratch: the arena and the upload chunks, both kept across runs.
#[derive(Default)]
struct Scratch {
    arena: Arena,
    staging: Staging,
}

impl Scratch {
    fn bytes(&self) -> usize {
        self.arena.bytes() + self.staging.bytes()
    }
}

/// The two upload chunks of host scalars: device buffers, the pinned host buffers they are
/// copied from (made only for MSMs of more than one chunk), and the event of the recoding
/// that last read each device buffer. Separate allocations from the arena, so a copy into
/// one waits for nothing else.
#[derive(Default)]
struct Staging {
    device: [Option<CudaSlice<u32>>; 2],
    pinned: [Option<PinnedHostSlice<u32>>; 2],
    read: [Option<CudaEvent>; 2],
}

impl Staging {
    /// Device buffers of at least `words` words and, with `pinned`, pinned host buffers of
    /// exactly `words` (each copy moves a whole pinned buffer).
    fn ensure(&mut self, job: &Job<'_>, words: usize, pinned: bool) -> Result<()> {
        for i in 0..2 {
            if self.device[i].as_ref().is_none_or(|d| d.len() < words) {
                self.read[i] = None;
                self.device[i] = None;
                self.device[i] = Some(job.zeros::<u32>(words)?);
            }
            if pinned && self.pinned[i].as_ref().is_none_or(|p| p.len() != words) {
                self.pinned[i] = None;
                self.pinned[i] = Some(job.alloc_pinned(words)?);
            }
        }
        Ok(())
    }

    #[allow(clippy::type_complexity)]
    fn slot(&mut self, i: usize) -> (&mut PinnedHostSlice<u32>, &mut CudaSlice<u32>, &mut Option<CudaEvent>) {
        (
            self.pinned[i].as_mut().expect("ensured with pinned buffers"),
            self.device[i].as_mut().expect("ensured"),
            &mut self.read[i],
        )
    }

    fn bytes(&self) -> usize {
        self.device.iter().flatten().map(|d| d.len() * 4).sum()
    }
}

/// The MSM arena: one allocation, sized for the largest plan run so far and
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

/// A base vector kept on the device, found again by address, length and fingerprint, with
/// its table of shifted copies once one was made (for the window width it was made for).
struct Resident {
    addr: usize,
    len: usize,
    fingerprint: [u8; 32],
    words: CudaSlice<u32>,
    shifted: Option<(u32, CudaSlice<u32>)>,
    last_used: u64,
}

impl Resident {
    fn bytes(&self) -> usize {
        (self.words.len() + self.shifted.as_ref().map_or(0, |(_, t)| t.len())) * 4
    }
}

/// Makes the table of shifted copies of `n` bases for `plan` on the device (phase 0).
fn shift_table<C: Curve>(job: &Job<'_>, plan: &MsmPlan, bases: &CudaView<'_, u32>) -> Result<CudaSlice<u32>> {
    let (n, c, w) = (plan.n, plan.c, plan.windows);
    let mut table = job.zeros::<u32>(w as usize * n as usize * C::AFFINE_WORDS)?;
    // SAFETY: msm_shift_<g>(u32 n, u32 c, u32 windows, const Affine* bases, Affine* table):
    // `bases` holds n affine points, `table` W·n.
    unsafe {
        job.stream()
            .launch_builder(job.function(C::SHIFT)?)
            .arg(&n)
            .arg(&c)
            .arg(&w)
            .arg(bases)
            .arg(&mut table)
            .launch(grid(n as u64)?)
            .map_err(KernelError::driver("MSM launch"))?;
    }
    Ok(table)
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
    scratch: Mutex<Scratch>,
    clock: AtomicU64,
    /// MSMs smaller than this run on the CPU (launch overhead dominates them).
    pub min_points: usize,
    /// Share of the device memory that resident bases may take.
    pub resident_fraction: f64,
    /// How long an MSM waits for the device before the CPU computes it.
    pub deadline: std::time::Duration,
    /// Whether resident bases get a table of shifted copies (W times their memory, inside
    /// `resident_fraction`) so that their MSMs run as one window ([`MsmPlan::shifted_for_size`]).
    pub shifted_bases: bool,
    /// Whether MSMs sum their buckets' runs pairwise in affine coordinates first
    /// ([`MsmPlan::with_batched_affine`]) when the extra scratch fits. Off until a device
    /// measures it against XYZZ accumulation alone: by count it makes fewer field
    /// multiplications, but it moves more memory and each round waits on a chain of
    /// inversions.
    pub batched_affine: bool,
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
            scratch: Mutex::default(),
            clock: AtomicU64::new(0),
            min_points: 1 << 10,
            resident_fraction: 0.5,
            deadline: Priority::Proving.default_deadline(),
            shifted_bases: true,
            batched_affine: false,
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
        let started = Instant::now();
        let out = self.gpu.job(Priority::Proving, self.deadline, "MSM", |job| {
            self.msm_in_job::<C>(job, bases, &Scalars::Host(scalars))
        })?;
        self.stats.gpu_done(started);
        Ok(out)
    }

    /// The MSM of `bases` (kept resident) and `scalars` inside a job: on the bases' table
    /// of shifted copies when it is there or fits beside them, else with the size's window
    /// narrowed until its scratch fits what is left (the scratch counts as free: it is
    /// reused or replaced), split into parts only when not even narrow windows fit.
    pub(crate) fn msm_in_job<C: Curve>(
        &self,
        job: &Job<'_>,
        bases: &[C::Affine],
        scalars: &Scalars<'_>,
    ) -> Result<C::Projective> {
        if bases.len() != scalars.len() {
            return Err(KernelError::Input(format!("{} bases for {} scalars", bases.len(), scalars.len())));
        }
        let words = C::words(bases);
        let (free, total) = job.gpu().memory()?;
        let mut resident = self.resident.lock().unwrap_or_else(|p| p.into_inner());
        let idx = self.ensure_resident::<C>(job, &mut resident, words, free)?;
        let mut scratch = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
        let (free, _) = job.gpu().memory()?;
        let free = free + scratch.bytes();
        let budget = free.saturating_sub(free / 8);
        let (xyzz, jac) = (C::XYZZ_WORDS * 4, C::JACOBIAN_WORDS * 4);
        // The plan with affine rounds when they are on and their scratch fits with `extra`.
        let affine = |plan: MsmPlan, extra: usize| {
            if !self.batched_affine {
                return plan;
            }
            let with = plan.with_batched_affine();
            if with.scratch_bytes(xyzz, jac) + extra <= budget {
                with
            } else {
                plan
            }
        };

        if self.shifted_bases {
            if let Ok(plan) = MsmPlan::shifted_for_size(bases.len()) {
                let have = matches!(resident[idx].shifted, Some((c, _)) if c == plan.c);
                // A table still to make must fit the resident share and, with the run's
                // scratch, the free memory; one already made needs room for the scratch.
                let to_make = if have { 0 } else { plan.table_bytes(C::AFFINE_WORDS * 4) };
                let held: usize = resident.iter().map(Resident::bytes).sum();
                let cap = (total as f64 * self.resident_fraction) as usize;
                if held + to_make <= cap && plan.scratch_bytes(xyzz, jac) + to_make <= budget {
                    if !have {
                        let table = shift_table::<C>(job, &plan, &resident[idx].words.as_view())?;
                        resident[idx].shifted = Some((plan.c, table));
                    }
                    let (_, table) = resident[idx].shifted.as_ref().expect("made above");
                    let plan = affine(plan, to_make);
                    return run::<C>(job, &mut scratch, &plan, &table.as_view(), scalars);
                }
            }
        }

        let view_all = resident[idx].words.as_view();
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
            let plan = affine(plan_for(end - start).expect("a smaller part fits as the first did"), 0);
            let view = view_all.slice(start * C::AFFINE_WORDS..end * C::AFFINE_WORDS);
            acc += run::<C>(job, &mut scratch, &plan, &view, &scalars.slice(start, end))?;
            start = end;
        }
        Ok(acc)
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
        let mut held: usize = resident.iter().map(Resident::bytes).sum();
        let mut free = free;
        while !resident.is_empty() && (held + bytes > cap || bytes > free) {
            let lru = resident.iter().enumerate().min_by_key(|(_, r)| r.last_used).map(|(i, _)| i).expect("non-empty");
            // What an eviction frees counts at once: with the figure measured before the
            // loop, one large upload would evict every resident vector.
            held -= resident[lru].bytes();
            free += resident[lru].bytes();
            resident.swap_remove(lru);
        }
        let dev = job.upload(words)?;
        self.stats.bytes_uploaded.fetch_add(bytes as u64, Ordering::Relaxed);
        resident.push(Resident { addr, len: words.len(), fingerprint: fp, words: dev, shifted: None, last_used: now });
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
            let mut scratch = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
            let (free, _) = job.gpu().memory()?;
            let free = free + scratch.bytes();
            let (xyzz, jac) = (G1::XYZZ_WORDS * 4, G1_JACOBIAN_WORDS * 4);
            let plan = MsmPlan::for_memory(bases.len(), xyzz, jac, free - free / 8).ok_or_else(|| {
                KernelError::OutOfMemory { needed: MsmPlan::with_window(bases.len(), 4).scratch_bytes(xyzz, jac), free }
            })?;
            run::<G1>(job, &mut scratch, &plan, &dev.as_view(), &Scalars::Host(scalars))
        })
    }

    /// Forgets every resident base vector, their shifted tables and the scratch (frees their device
    /// memory).
    pub fn evict_all(&self) {
        self.resident.lock().unwrap_or_else(|p| p.into_inner()).clear();
        *self.scratch.lock().unwrap_or_else(|p| p.into_inner()) = Scratch::default();
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
        // scratch has a floor (about 6 GiB at 2^24, c = 19): below it nothing fits and the
        // caller splits the MSM into parts.
        assert_eq!(MsmPlan::for_memory(1 << 24, xyzz, jac, 11 << 29), None);
        assert!(MsmPlan::for_memory(1 << 23, xyzz, jac, 11 << 29).is_some());
    }

    #[test]
    fn shifted_plans_by_size() {
        // The window that makes W·n + 2^c least.
        assert_eq!(MsmPlan::shifted_for_size(1 << 20).unwrap().c, 20);
        assert_eq!(MsmPlan::shifted_for_size(1 << 24).unwrap().c, MAX_WINDOW_BITS);
        assert_eq!(MsmPlan::shifted_for_size(1 << 16).unwrap().c, 16);
        for n in [1usize, 1 << 10, 1 << 20, 1 << 24] {
            let p = MsmPlan::shifted_for_size(n).unwrap();
            assert!(p.shifted && p.sorted_windows() == 1 && p.entries() == p.windows * p.n, "{p:?}");
            assert!(p.c * p.windows >= 256, "{p:?}");
            // One window's buckets instead of W: at 2^20, 2^19 XYZZ bucket sums, not 16·2^16.
            let plain = MsmPlan::for_size(n);
            if n >= 1 << 20 {
                assert!(p.scratch_bytes(192, 144) < 2 * plain.scratch_bytes(192, 144), "{p:?}");
            }
        }
        // The table: W copies of the bases.
        assert_eq!(MsmPlan::shifted_for_size(1 << 20).unwrap().table_bytes(96), 13 * (1 << 20) * 96);
        // W·n entries must keep their sign bit.
        assert!(MsmPlan::with(1 << 28, 4, 32, 1).unwrap().on_shifted_bases().is_err());
        assert!(MsmPlan::shifted_for_size(1 << 30).is_err());
        assert!(MsmPlan::with(10, 4, 32, 1).unwrap().with_upload_chunk(0).is_err());
    }

    #[test]
    fn affine_rounds_by_size() {
        // log2 of the mean entries per bucket: 13·2^20 / 2^19 = 26 at 2^20, 12·2^24 / 2^21 =
        // 96 at 2^24; none where buckets hold two entries or fewer.
        let at = |n: usize| MsmPlan::shifted_for_size(n).unwrap().with_batched_affine();
        assert_eq!(at(1 << 20).affine.rounds, 4);
        assert_eq!(at(1 << 24).affine.rounds, 6);
        assert_eq!(MsmPlan::with(1 << 12, 14, 32, 1).unwrap().with_batched_affine().affine.rounds, 0);
        assert_eq!(MsmPlan::with(1 << 12, 2, 32, 1).unwrap().with_batched_affine().affine.rounds, MAX_AFFINE_ROUNDS);
        // Threads halve round by round, and round 0 has one per `slice` entries.
        let p = at(1 << 20);
        assert_eq!(p.affine_threads(0), p.entries().div_ceil(AFFINE_SLICE));
        assert_eq!(p.affine_threads(1), p.entries().div_ceil(2 * AFFINE_SLICE));
        // The scratch grows by an affine point and a field element per entry and two field
        // elements per round-0 thread: 96 + 48 bytes per G1 entry.
        let plain = MsmPlan::shifted_for_size(1 << 20).unwrap();
        let extra = p.scratch_bytes(192, 144) - plain.scratch_bytes(192, 144);
        assert_eq!(extra, p.entries() as usize * 144 + 2 * p.affine_threads(0) as usize * 48);
        // Bad shapes are refused, not launched.
        let base = MsmPlan::with(64, 4, 4, 1).unwrap();
        assert!(base.with_affine_rounds(MAX_AFFINE_ROUNDS + 1, 4, 4).is_err());
        assert!(base.with_affine_rounds(2, 0, 4).is_err());
        assert!(base.with_affine_rounds(2, 4, 0).is_err());
        assert!(base.with_affine_rounds(2, 1 << 17, 4).is_err());
    }
}
