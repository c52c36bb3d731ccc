// Pippenger multi-scalar multiplication, Σ s_i·P_i, with signed windows, sort-based
// bucket accumulation in XYZZ coordinates and tree reductions. Each phase is a per-thread
// body shared by the CUDA kernels (msm.cu) and the host emulation (host/shim.cpp) that CI
// tests against blstrs.
//
// Phases, for n points, window width c, W = floor(255/c) + 1 windows and
// B = 2^(c-1) buckets per window:
//  1. digits: each scalar leaves Montgomery form and is recoded into W signed digits in
//     [-2^(c-1), 2^(c-1)] (a digit above 2^(c-1) borrows 2^c from the next window;
//     c·W ≥ 256 absorbs the last carry). Nonzero digits are counted per (window, bucket).
//  2. scan: exclusive prefix sums of the counts give each bucket's range inside its
//     window's slice of the sorted array (a counting sort, one block per window): each
//     thread sums a slice, the block scans the slice sums in log2(threads) Hillis–Steele
//     steps, and each thread writes its slice's offsets.
//  3. scatter: each nonzero digit places (point index | sign bit) at its bucket's cursor.
//  4. chunk: the sorted entries of a window are cut into chunks of K; a thread sums the
//     runs of equal buckets in its chunk with mixed XYZZ additions (8M + 2S each). A run
//     strictly inside the chunk is a whole bucket and is stored as such; the chunk's first
//     run goes to head[chunk] and a different last run to tail[chunk], since they may
//     continue in a neighbouring chunk. A bucket holding many points (repeated scalars,
//     e.g. the 0/1 values common in witnesses) is thus spread over many threads.
//  5. bucket: a segmented tree over the chunks' head pieces (log2(chunks) rounds) sums
//     the aligned blocks of chunks that lie inside one bucket; then each bucket that
//     crosses a chunk boundary, or touches one, gathers its pieces in at most
//     2·log2(chunks) additions; empty buckets become the identity.
//  6. segment: each window's buckets are cut into S segments; a thread computes
//     Σ_{j∈seg} (j+1)·B_j with the running-sum trick plus lo·Σ B_j.
//  7. reduce: the S segment sums of every window are added pairwise in log2(S) rounds (a
//     tree; round r adds the sum 2^r places on into each multiple of 2^(r+1)).
//  8. combine: one thread joins the W window sums by Horner's rule, c doublings per
//     window, on the device, and leaves one Jacobian point: the MSM.
//
// Scalars reach phase 1 in chunks (`first`, `count`): the host uploads chunk j + 1 from
// pinned memory on a second stream while phase 1 recodes chunk j, and a scalar vector
// already on the device (the QAP's h) is read in place as one chunk.
//
// Shifted bases. With a table of 2^(c·w)·P_i for every window w (phase 0, `msm_shift`,
// made once per base vector and kept beside it), Σ s_i·P_i = Σ_w Σ_i d_{w,i}·(2^(c·w)·P_i)
// is one window's MSM over W·n points: phase 1 counts every window's digits into one set
// of B buckets (`fold`), its W rows of n digits are read as one row of W·n, and phases 2–8
// run with n' = W·n and one window. The bucket reductions (2·B additions each) and the
// window combination's c·W doublings are paid once instead of W times, so the window can
// be as wide as log2(n), with fewer windows and so fewer bucket additions
// (MsmPlan::shifted_for_size).
#pragma once
#include "../ec/xyzz.cuh"

#define DC_SIGN_BIT 0x80000000u
// Threads of the scan block; a power of two (the Hillis–Steele steps assume it). Each
// thread sums 2^(c-1) / 1024 counters: 2,048 at c = 22.
#define DC_SCAN_THREADS 1024

// Windows per inversion in phase 0.
#define DC_SHIFT_GROUP 8

// Phase 0's products, out of line: it runs once per base vector, and Fp's product inlined
// at each of its call sites made NVRTC's compile of this unit about 8 s longer (63 s
// against 55 s for sm_80 on the 2-core build machine).
template <class F>
DC_HD_NOINLINE F msm_shift_mul(const F& a, const F& b) {
  return F::mul(a, b);
}

// Phase 0, thread i < n (shifted bases only): table[w·n + i] = 2^(c·w)·bases[i] in
// affine form, for w < windows. The doubling chain runs in Jacobian coordinates; each
// group of up to DC_SHIFT_GROUP windows goes to affine form with one inversion, shared by
// Montgomery's trick (the identity, and all its doublings, stay (0, 0) and share nothing).
template <class F>
DC_HD void msm_shift_body(u32 i, u32 n, u32 c, u32 windows, const Affine<F>* bases,
                          Affine<F>* table) {
  Jacobian<F> p = jac_from_affine(bases[i]);
  for (u32 w0 = 0; w0 < windows; w0 += DC_SHIFT_GROUP) {
    const u32 g = windows - w0 < DC_SHIFT_GROUP ? windows - w0 : DC_SHIFT_GROUP;
    Jacobian<F> pts[DC_SHIFT_GROUP];
    F prefix[DC_SHIFT_GROUP];  // the product of the non-zero Z of pts[0..j]
    F acc = F::one();
    for (u32 j = 0; j < g; j++) {
      pts[j] = p;
      if (!jac_is_inf(p)) acc = msm_shift_mul(acc, p.z);
      prefix[j] = acc;
      if (w0 + j + 1 < windows)
        for (u32 b = 0; b < c; b++) p = jac_dbl(p);
    }
    F inv = F::inv(acc);  // 1 / (the product of the non-zero Z of pts[0..j]), j from g − 1 down
    for (u32 j = g; j-- > 0;) {
      Affine<F> a;
      if (jac_is_inf(pts[j])) {
        a.x = F::zero();
        a.y = F::zero();
      } else {
        F zi = j > 0 ? msm_shift_mul(inv, prefix[j - 1]) : inv;
        inv = msm_shift_mul(inv, pts[j].z);
        F zi2 = msm_shift_mul(zi, zi);
        a.x = msm_shift_mul(pts[j].x, zi2);
        a.y = msm_shift_mul(pts[j].y, msm_shift_mul(zi2, zi));
      }
      table[(u64)(w0 + j) * n + i] = a;
    }
  }
}

// Phase 1, thread t of a chunk of scalars first..first+count−1: scalar i = first + t, read
// from `chunk`, which holds the chunk's blstrs scalars (Montgomery form, 8 words each).
// Digit (w, i) goes to digits[w·n + i]; its bucket is counted in window w's counters, or
// with `fold` (shifted bases) in the one window's.
DC_HD void msm_digits_body(u32 t, const u32* chunk, u32 first, u32 n, u32 c, u32 windows,
                           u32 fold, i32* digits, u32* counts) {
  const u32 i = first + t;
  Fr s;
  DC_UNROLL for (int k = 0; k < 8; k++) s.l[k] = chunk[8 * (u64)t + k];
  s = Fr::from_mont(s);
  const u32 buckets = 1u << (c - 1);
  const u32 mask = (1u << c) - 1;
  u32 carry = 0;
  for (u32 w = 0; w < windows; w++) {
    u32 bit = w * c;
    u32 limb = bit / 32, shift = bit % 32;
    u64 v = 0;
    if (limb < 8) v = (u64)s.l[limb] >> shift;
    if (limb + 1 < 8) v |= (u64)s.l[limb + 1] << (32 - shift);
    i32 d = (i32)((u32)v & mask) + (i32)carry;
    if (d > (i32)buckets) {
      d -= (i32)(1u << c);
      carry = 1;
    } else {
      carry = 0;
    }
    digits[(u64)w * n + i] = d;
    if (d != 0) {
      u32 b = (u32)(d < 0 ? -d : d) - 1;
      dc_atomic_add(&counts[(u64)(fold ? 0 : w) * buckets + b], 1);
    }
  }
}

// Phase 2, block per window with `threads` threads (a power of two): the sum of each
// thread's contiguous slice of the window's counts...
DC_HD void msm_scan_partial_body(u32 tid, u32 threads, u32 w, const u32* counts, u32 buckets,
                                 u32* partials) {
  u32 per = (buckets + threads - 1) / threads;
  u32 lo = tid * per, hi = lo + per < buckets ? lo + per : buckets;
  u32 sum = 0;
  for (u32 j = lo; j < hi; j++) sum += counts[(u64)w * buckets + j];
  partials[tid] = sum;
}

// ...one Hillis–Steele step of the inclusive scan of those sums (offset 1, 2, 4, … below
// `threads`, reading one buffer and writing the other between barriers)...
DC_HD void msm_scan_step_body(u32 tid, u32 offset, const u32* in, u32* out) {
  out[tid] = in[tid] + (tid >= offset ? in[tid - offset] : 0u);
}

// ...then each slice's offsets from `start`, its exclusive prefix (inclusive scan minus
// its own sum), written twice: `offsets` stays, `cursor` is consumed by the scatter.
DC_HD void msm_scan_write_body(u32 tid, u32 threads, u32 w, const u32* counts, u32 buckets,
                               u32 start, u32* offsets, u32* cursor) {
  u32 per = (buckets + threads - 1) / threads;
  u32 lo = tid * per, hi = lo + per < buckets ? lo + per : buckets;
  u32 run = start;
  for (u32 j = lo; j < hi; j++) {
    u64 k = (u64)w * buckets + j;
    offsets[k] = run;
    cursor[k] = run;
    run += counts[k];
  }
}

// Phase 3, thread i < n.
DC_HD void msm_scatter_body(u32 i, u32 n, u32 c, u32 windows, const i32* digits, u32* cursor,
                            u32* sorted_idx, u32* sorted_bucket) {
  const u32 buckets = 1u << (c - 1);
  for (u32 w = 0; w < windows; w++) {
    i32 d = digits[(u64)w * n + i];
    if (d == 0) continue;
    u32 b = (u32)(d < 0 ? -d : d) - 1;
    u32 pos = dc_atomic_add(&cursor[(u64)w * buckets + b], 1);
    sorted_idx[(u64)w * n + pos] = i | (d < 0 ? DC_SIGN_BIT : 0u);
    sorted_bucket[(u64)w * n + pos] = b;
  }
}

// Number of sorted entries of window w.
DC_HD u32 msm_window_total(u32 w, u32 buckets, const u32* offsets, const u32* counts) {
  u64 last = (u64)w * buckets + buckets - 1;
  return offsets[last] + counts[last];
}

// Phase 4, thread tid < windows·chunks, chunks = ceil(n / K).
template <class F>
DC_HD void msm_chunk_body(u32 tid, u32 n, u32 c, u32 windows, u32 k, const Affine<F>* bases,
                          const u32* sorted_idx, const u32* sorted_bucket, const u32* offsets,
                          const u32* counts, Xyzz<F>* head, Xyzz<F>* tail,
                          Xyzz<F>* bucket_sums) {
  const u32 buckets = 1u << (c - 1);
  const u32 chunks = (n + k - 1) / k;
  if (tid >= windows * chunks) return;
  u32 w = tid / chunks, t = tid % chunks;
  u32 total = msm_window_total(w, buckets, offsets, counts);
  u32 start = t * k;
  if (start >= total) return;
  u32 end = start + k < total ? start + k : total;
  const u64 base = (u64)w * n;
  Xyzz<F> acc = xyzz_inf<F>();
  u32 run_start = start;
  u32 cur = sorted_bucket[base + start];
  for (u32 pos = start; pos <= end; pos++) {
    bool flush = pos == end || sorted_bucket[base + pos] != cur;
    if (flush) {
      if (run_start == start) {
        head[(u64)w * chunks + t] = acc;
      } else if (pos == end) {
        tail[(u64)w * chunks + t] = acc;
      } else {
        bucket_sums[(u64)w * buckets + cur] = acc;
      }
      if (pos == end) break;
      acc = xyzz_inf<F>();
      run_start = pos;
      cur = sorted_bucket[base + pos];
    }
    u32 e = sorted_idx[base + pos];
    Affine<F> p = bases[e & ~DC_SIGN_BIT];
    if (e & DC_SIGN_BIT) p = affine_neg(p);
    acc = xyzz_add_affine(acc, p);
  }
}

// The bucket of chunk t's first entry in window w, or DC_NO_BUCKET past the window's end.
#define DC_NO_BUCKET 0xffffffffu
DC_HD u32 msm_chunk_key(u32 t, u32 k, u64 base, u32 total, const u32* sorted_bucket) {
  return (u64)t * k < total ? sorted_bucket[base + (u64)t * k] : DC_NO_BUCKET;
}

// Phase 5a, one round of a segmented tree over the chunks' head pieces, for a bucket
// spread over many chunks (thread tid < windows·ceil(chunks / 2·stride), stride = 1, 2,
// 4, … below the chunk count). Chunk t = 2·stride·i takes in the piece `stride` on when
// the whole block [t, t + 2·stride) starts with one bucket: sorted keys make equal
// endpoints mean one run. After the rounds, head[t] holds the sum of the largest aligned
// block from t that lies inside one bucket's run (blocks that were not whole keep the sum
// of their whole half), so phase 5b sums any run of chunks in 2·log2(chunks) additions.
// Every round from stride 1 up to the last below the chunk count must run: phase 5b reads
// blocks of any size that fits.
template <class F>
DC_HD void msm_piece_tree_body(u32 tid, u32 n, u32 c, u32 windows, u32 k, u32 stride,
                               const u32* sorted_bucket, const u32* offsets, const u32* counts,
                               Xyzz<F>* head) {
  const u32 buckets = 1u << (c - 1);
  const u32 chunks = (n + k - 1) / k;
  u32 pairs = (chunks + 2 * stride - 1) / (2 * stride);
  if (tid >= windows * pairs) return;
  u32 w = tid / pairs;
  u32 t = (tid % pairs) * 2 * stride;
  u32 last = t + 2 * stride - 1;
  if (last >= chunks) return;
  u32 total = msm_window_total(w, buckets, offsets, counts);
  const u64 base = (u64)w * n;
  u32 key = msm_chunk_key(t, k, base, total, sorted_bucket);
  if (key == DC_NO_BUCKET || key != msm_chunk_key(last, k, base, total, sorted_bucket)) return;
  u64 hw = (u64)w * chunks;
  head[hw + t] = xyzz_add(head[hw + t], head[hw + t + stride]);
}

// Phase 5b, thread tid < windows·B: each bucket that crosses a chunk boundary, or touches
// one, gathers its pieces: the tail of its first chunk (unless it starts that chunk) and
// the heads of the chunks after it, through the aligned blocks phase 5a summed.
template <class F>
DC_HD void msm_bucket_body(u32 tid, u32 n, u32 c, u32 windows, u32 k, const u32* offsets,
                           const u32* counts, const Xyzz<F>* head, const Xyzz<F>* tail,
                           Xyzz<F>* bucket_sums) {
  const u32 buckets = 1u << (c - 1);
  if (tid >= windows * buckets) return;
  const u32 chunks = (n + k - 1) / k;
  u32 w = tid / buckets;
  u32 cnt = counts[tid];
  if (cnt == 0) {
    bucket_sums[tid] = xyzz_inf<F>();
    return;
  }
  u32 total = msm_window_total(w, buckets, offsets, counts);
  u32 o = offsets[tid];
  u32 t0 = o / k, t1 = (o + cnt - 1) / k;
  u64 hw = (u64)w * chunks;
  if (t0 == t1) {
    u32 chunk_end = (t0 + 1) * k < total ? (t0 + 1) * k : total;
    if (o == t0 * k) {
      bucket_sums[tid] = head[hw + t0];
    } else if (o + cnt == chunk_end) {
      bucket_sums[tid] = tail[hw + t0];
    }
    // Otherwise the run lay strictly inside one chunk and phase 4 stored it whole.
    return;
  }
  bool starts_chunk = o == t0 * k;
  Xyzz<F> acc = starts_chunk ? xyzz_inf<F>() : tail[hw + t0];
  u32 t = starts_chunk ? t0 : t0 + 1;
  while (t <= t1) {
    // The largest aligned block from t inside [t, t1]; phase 5a summed it into head[t].
    u32 size = 1;
    while (t % (2 * size) == 0 && t + 2 * size - 1 <= t1) size *= 2;
    acc = xyzz_add(acc, head[hw + t]);
    t += size;
  }
  bucket_sums[tid] = acc;
}

// Phase 6, thread tid < windows·S.
template <class F>
DC_HD void msm_segment_body(u32 tid, u32 c, u32 windows, u32 segments,
                            const Xyzz<F>* bucket_sums, Xyzz<F>* segment_sums) {
  const u32 buckets = 1u << (c - 1);
  if (tid >= windows * segments) return;
  u32 w = tid / segments, s = tid % segments;
  u32 per = (buckets + segments - 1) / segments;
  u32 lo = s * per;
  u32 hi = lo + per < buckets ? lo + per : buckets;
  Xyzz<F> running = xyzz_inf<F>();
  Xyzz<F> acc = xyzz_inf<F>();
  for (u32 j = hi; j > lo; j--) {
    running = xyzz_add(running, bucket_sums[(u64)w * buckets + j - 1]);
    acc = xyzz_add(acc, running);
  }
  // acc = Σ (j - lo + 1)·B_j; bucket j carries weight j + 1.
  if (lo > 0 && lo < hi) acc = xyzz_add(acc, xyzz_mul_u32(running, lo));
  segment_sums[tid] = acc;
}

// Phase 7, one round of the tree: thread tid < windows·ceil(S / 2·stride) adds the sum
// `stride` places on into segment j = 2·stride·(tid mod that count) of its window.
template <class F>
DC_HD void msm_reduce_body(u32 tid, u32 windows, u32 segments, u32 stride, Xyzz<F>* sums) {
  u32 pairs = (segments + 2 * stride - 1) / (2 * stride);
  if (tid >= windows * pairs) return;
  u32 w = tid / pairs;
  u32 j = (tid % pairs) * 2 * stride;
  if (j + stride >= segments) return;
  u64 at = (u64)w * segments + j;
  sums[at] = xyzz_add(sums[at], sums[at + stride]);
}

// Phase 8, one thread: Σ_w 2^(c·w)·sums[w·S] by Horner's rule, in Jacobian coordinates
// (a Jacobian doubling costs 2M + 5S against XYZZ's 6M + 3S).
template <class F>
DC_HD void msm_combine_body(u32 tid, u32 c, u32 windows, u32 segments, const Xyzz<F>* sums,
                            Jacobian<F>* out) {
  if (tid != 0) return;
  Jacobian<F> acc = jac_inf<F>();
  for (u32 w = windows; w > 0; w--) {
    for (u32 b = 0; b < c; b++) acc = jac_dbl(acc);
    acc = jac_add(acc, xyzz_to_jacobian(sums[(u64)(w - 1) * segments]));
  }
  *out = acc;
}
