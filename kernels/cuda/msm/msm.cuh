// Pippenger multi-scalar multiplication, Σ s_i·P_i, with signed windows and sort-based
// bucket accumulation. Each phase is a per-thread body shared by the CUDA kernels
// (msm.cu) and the host emulation (host/shim.cpp) that CI tests against blstrs.
//
// Phases, for n points, window width c, W = floor(255/c) + 1 windows and
// B = 2^(c-1) buckets per window:
//  1. digits: each scalar leaves Montgomery form and is recoded into W signed digits in
//     [-2^(c-1), 2^(c-1)] (a digit above 2^(c-1) borrows 2^c from the next window;
//     c·W ≥ 256 absorbs the last carry). Nonzero digits are counted per (window, bucket).
//  2. scan: exclusive prefix sums of the counts give each bucket's range inside its
//     window's slice of the sorted array (a counting sort, one block per window).
//  3. scatter: each nonzero digit places (point index | sign bit) at its bucket's cursor.
//  4. chunk: the sorted entries of a window are cut into chunks of K; a thread sums the
//     runs of equal buckets in its chunk with mixed additions. A run strictly inside the
//     chunk is a whole bucket and is stored as such; the chunk's first run goes to
//     head[chunk] and a different last run to tail[chunk], since they may continue in a
//     neighbouring chunk. A bucket holding many points (repeated scalars, e.g. the 0/1
//     values common in witnesses) is thus spread over many threads.
//  5. bucket: each bucket that crosses a chunk boundary, or touches one, gathers its
//     head/tail pieces; empty buckets become the identity.
//  6. segment: each window's buckets are cut into S segments; a thread computes
//     Σ_{j∈seg} (j+1)·B_j with the running-sum trick plus lo·Σ B_j.
//  7. window: the segments of a window are summed. The host combines the W window sums
//     by Horner's rule with c doublings per window.
#pragma once
#include "../ec/curve.cuh"

#define DC_SIGN_BIT 0x80000000u

// Phase 1, thread i < n. `scalars` holds blstrs scalars (Montgomery form, 8 words each).
DC_HD void msm_digits_body(u32 i, const u32* scalars, u32 n, u32 c, u32 windows, i32* digits,
                           u32* counts) {
  Fr s;
  DC_UNROLL for (int k = 0; k < 8; k++) s.l[k] = scalars[8 * (u64)i + k];
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
      dc_atomic_add(&counts[(u64)w * buckets + b], 1);
    }
  }
}

// Phase 2, block per window with `threads` threads: partial sums of contiguous slices...
DC_HD void msm_scan_partial_body(u32 tid, u32 threads, u32 w, const u32* counts, u32 buckets,
                                 u32* partials) {
  u32 per = (buckets + threads - 1) / threads;
  u32 lo = tid * per, hi = lo + per < buckets ? lo + per : buckets;
  u32 sum = 0;
  for (u32 j = lo; j < hi; j++) sum += counts[(u64)w * buckets + j];
  partials[tid] = sum;
}

// ...an exclusive scan of the partials by one thread...
DC_HD void msm_scan_serial_body(u32 threads, u32* partials) {
  u32 run = 0;
  for (u32 t = 0; t < threads; t++) {
    u32 v = partials[t];
    partials[t] = run;
    run += v;
  }
}

// ...then each slice's offsets, written twice: `offsets` stays, `cursor` is consumed by
// the scatter.
DC_HD void msm_scan_write_body(u32 tid, u32 threads, u32 w, const u32* counts, u32 buckets,
                               const u32* partials, u32* offsets, u32* cursor) {
  u32 per = (buckets + threads - 1) / threads;
  u32 lo = tid * per, hi = lo + per < buckets ? lo + per : buckets;
  u32 run = partials[tid];
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
                          const u32* counts, Jacobian<F>* head, Jacobian<F>* tail,
                          Jacobian<F>* bucket_sums) {
  const u32 buckets = 1u << (c - 1);
  const u32 chunks = (n + k - 1) / k;
  if (tid >= windows * chunks) return;
  u32 w = tid / chunks, t = tid % chunks;
  u32 total = msm_window_total(w, buckets, offsets, counts);
  u32 start = t * k;
  if (start >= total) return;
  u32 end = start + k < total ? start + k : total;
  const u64 base = (u64)w * n;
  Jacobian<F> acc = jac_inf<F>();
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
      acc = jac_inf<F>();
      run_start = pos;
      cur = sorted_bucket[base + pos];
    }
    u32 e = sorted_idx[base + pos];
    Affine<F> p = bases[e & ~DC_SIGN_BIT];
    if (e & DC_SIGN_BIT) p = affine_neg(p);
    acc = jac_add_affine(acc, p);
  }
}

// Phase 5, thread tid < windows·B.
template <class F>
DC_HD void msm_bucket_body(u32 tid, u32 n, u32 c, u32 windows, u32 k, const u32* offsets,
                           const u32* counts, const Jacobian<F>* head, const Jacobian<F>* tail,
                           Jacobian<F>* bucket_sums) {
  const u32 buckets = 1u << (c - 1);
  if (tid >= windows * buckets) return;
  const u32 chunks = (n + k - 1) / k;
  u32 w = tid / buckets;
  u32 cnt = counts[tid];
  if (cnt == 0) {
    bucket_sums[tid] = jac_inf<F>();
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
  Jacobian<F> acc = o == t0 * k ? head[hw + t0] : tail[hw + t0];
  for (u32 t = t0 + 1; t <= t1; t++) acc = jac_add(acc, head[hw + t]);
  bucket_sums[tid] = acc;
}

// Phase 6, thread tid < windows·S.
template <class F>
DC_HD void msm_segment_body(u32 tid, u32 c, u32 windows, u32 segments,
                            const Jacobian<F>* bucket_sums, Jacobian<F>* segment_sums) {
  const u32 buckets = 1u << (c - 1);
  if (tid >= windows * segments) return;
  u32 w = tid / segments, s = tid % segments;
  u32 per = (buckets + segments - 1) / segments;
  u32 lo = s * per;
  u32 hi = lo + per < buckets ? lo + per : buckets;
  Jacobian<F> running = jac_inf<F>();
  Jacobian<F> acc = jac_inf<F>();
  for (u32 j = hi; j > lo; j--) {
    running = jac_add(running, bucket_sums[(u64)w * buckets + j - 1]);
    acc = jac_add(acc, running);
  }
  // acc = Σ (j - lo + 1)·B_j; bucket j carries weight j + 1.
  if (lo > 0 && lo < hi) acc = jac_add(acc, jac_mul_u32(running, lo));
  segment_sums[tid] = acc;
}

// Phase 7, thread w < windows.
template <class F>
DC_HD void msm_window_body(u32 w, u32 windows, u32 segments, const Jacobian<F>* segment_sums,
                           Jacobian<F>* window_sums) {
  if (w >= windows) return;
  Jacobian<F> acc = jac_inf<F>();
  for (u32 s = 0; s < segments; s++) acc = jac_add(acc, segment_sums[(u64)w * segments + s]);
  window_sums[w] = acc;
}
