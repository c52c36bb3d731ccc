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
//  3b. affine rounds (optional, R of them): the runs of equal buckets are summed pairwise
//     in affine coordinates, the slopes' inversions batched by Montgomery's trick, each
//     round halving every run in place (see below).
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

// Products outside the point additions, out of line: phase 0's (it runs once per base
// vector) and the batch inversions' of phase 3b. Fp's product inlined at each of phase 0's
// call sites made NVRTC's compile of this unit about 8 s longer (63 s against 55 s for
// sm_80 on the 2-core build machine).
template <class F>
DC_HD_NOINLINE F msm_mul(const F& a, const F& b) {
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
      if (!jac_is_inf(p)) acc = msm_mul(acc, p.z);
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
        F zi = j > 0 ? msm_mul(inv, prefix[j - 1]) : inv;
        inv = msm_mul(inv, pts[j].z);
        F zi2 = msm_mul(zi, zi);
        a.x = msm_mul(pts[j].x, zi2);
        a.y = msm_mul(pts[j].y, msm_mul(zi2, zi));
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

// Phase 3b (batched affine accumulation, `rounds` > 0): before the chunk phase, the runs of
// equal buckets are summed pairwise in affine coordinates, each round halving every run.
// In round r the live entries of a run starting at s are at s + j·2^r; the entry at
// s + 2j·2^r (a head) takes in the one 2^r on, when the run has it, and keeps the sum at
// its own position of `pts`. So no compaction or scan is needed, and after R rounds the
// chunk phase adds only the entries at s + j·2^R, read from `pts`.
//
// An affine addition needs the inverse of its slope's denominator. The inverses of a
// round are batched by Montgomery's trick (Montgomery 1987, "Speeding the Pollard and
// elliptic curve methods of factorization", §10.3.1) on two levels:
//  a. pairs: thread t takes the heads of a slice of `slice`·2^r positions, stores the
//     product of the denominators before each head at the head (`pref`), and their whole
//     product in tprod[t];
//  b. invert: thread g inverts the product of `group` threads' products with one Fermat
//     inversion and hands each thread the inverse of its own (3 multiplications per
//     thread), so every lane of a warp inverts a group of its own: no lane waits on
//     another's inversion;
//  c. finish: thread t walks its heads backwards, peeling each head's inverse off its
//     thread's (2 multiplications), and writes the sum.
// An addition then costs 6 multiplications (1 in a; 2 in c to peel the inverse; λ, λ², and
// y3) plus a share of the inversion, against 8M + 2S for a mixed XYZZ addition; round 0
// reads its points from the bases through the sorted indices, as the chunk phase would.
// The exceptional cases are exact, as in curve.cuh: an identity input gives the other
// point, P + P uses the tangent's slope 3x²/2y, P + (−P) and a point of order 2 doubled
// give the identity, (0, 0); each of these has the denominator 1 in the batch, so no
// denominator is ever zero.
#define DC_PAIR_GENERAL 0u
#define DC_PAIR_DOUBLE 1u
#define DC_PAIR_LEFT 2u   // the sum is p (q is the identity)
#define DC_PAIR_RIGHT 3u  // the sum is q (p is the identity)
#define DC_PAIR_INF 4u

// The case of p + q and its slope's denominator (1 outside the general and doubling cases).
template <class F>
DC_HD u32 affine_pair_case(const Affine<F>& p, const Affine<F>& q, F* den) {
  *den = F::one();
  if (affine_is_inf(q)) return DC_PAIR_LEFT;
  if (affine_is_inf(p)) return DC_PAIR_RIGHT;
  if (!F::eq(p.x, q.x)) {
    *den = F::sub(q.x, p.x);
    return DC_PAIR_GENERAL;
  }
  if (!F::eq(p.y, q.y) || F::is_zero(p.y)) return DC_PAIR_INF;
  *den = F::dbl(p.y);
  return DC_PAIR_DOUBLE;
}

// p + q given its case and the inverse of its denominator.
template <class F>
DC_HD_NOINLINE Affine<F> affine_pair_sum(const Affine<F>& p, const Affine<F>& q, u32 kind,
                                         const F& inv_den) {
  if (kind == DC_PAIR_LEFT) return p;
  if (kind == DC_PAIR_RIGHT) return q;
  Affine<F> r;
  if (kind == DC_PAIR_INF) {
    r.x = F::zero();
    r.y = F::zero();
    return r;
  }
  F num;
  if (kind == DC_PAIR_GENERAL) {
    num = F::sub(q.y, p.y);
  } else {
    F x2 = F::sqr(p.x);
    num = F::add(F::dbl(x2), x2);
  }
  F l = F::mul(num, inv_den);
  r.x = F::sub(F::sub(F::sqr(l), p.x), q.x);
  r.y = F::sub(F::mul(l, F::sub(p.x, r.x)), p.y);
  return r;
}

// The live entry of window w at position pos in round r: the signed base in round 0,
// else the partial sum kept in `pts`.
template <class F>
DC_HD Affine<F> msm_affine_entry(u32 round, u64 at, const Affine<F>* bases, const u32* sorted_idx,
                                 const Affine<F>* pts) {
  if (round > 0) return pts[at];
  u32 e = sorted_idx[at];
  Affine<F> p = bases[e & ~DC_SIGN_BIT];
  return (e & DC_SIGN_BIT) ? affine_neg(p) : p;
}

// The slice of thread tid in round r: window w, positions [lo, hi) of that window (empty
// past the window's entries). False when tid is past the last slice.
DC_HD bool msm_affine_slice(u32 tid, u32 n, u32 c, u32 windows, u32 round, u32 slice,
                            const u32* offsets, const u32* counts, u32* w, u32* lo, u32* hi) {
  const u32 buckets = 1u << (c - 1);
  const u64 span = (u64)slice << round;
  const u32 slices = (u32)((n + span - 1) / span);
  if (tid >= windows * slices) return false;
  *w = tid / slices;
  u32 total = msm_window_total(*w, buckets, offsets, counts);
  u64 l = (u64)(tid % slices) * span, h = l + span;
  *lo = l < total ? (u32)l : total;
  *hi = h < total ? (u32)h : total;
  return true;
}

// The run (start, length) of the entry at pos of window w.
DC_HD void msm_run_of(u32 pos, u32 w, u32 buckets, u64 base, const u32* sorted_bucket,
                      const u32* offsets, const u32* counts, u32* start, u32* len) {
  u64 k = (u64)w * buckets + sorted_bucket[base + pos];
  *start = offsets[k];
  *len = counts[k];
}

// Phase 3b, a: thread tid of round r.
template <class F>
DC_HD void msm_affine_pairs_body(u32 tid, u32 n, u32 c, u32 windows, u32 round, u32 slice,
                                 const Affine<F>* bases, const u32* sorted_idx,
                                 const u32* sorted_bucket, const u32* offsets, const u32* counts,
                                 const Affine<F>* pts, F* pref, F* tprod) {
  u32 w, lo, hi;
  if (!msm_affine_slice(tid, n, c, windows, round, slice, offsets, counts, &w, &lo, &hi)) return;
  const u32 buckets = 1u << (c - 1), half = 1u << round, step = 2u << round;
  const u64 base = (u64)w * n;
  F acc = F::one();
  u32 pos = lo;
  while (pos < hi) {
    u32 s, len;
    msm_run_of(pos, w, buckets, base, sorted_bucket, offsets, counts, &s, &len);
    u32 end = s + len, mis = (pos - s) & (step - 1);
    if (mis != 0) {
      // The run's next head, or the next run.
      pos = pos + (step - mis) < end ? pos + (step - mis) : end;
      continue;
    }
    if (pos + half < end) {
      F den;
      affine_pair_case(msm_affine_entry(round, base + pos, bases, sorted_idx, pts),
                       msm_affine_entry(round, base + pos + half, bases, sorted_idx, pts), &den);
      pref[base + pos] = acc;
      acc = msm_mul(acc, den);
    }
    pos = pos + step < end ? pos + step : end;
  }
  tprod[tid] = acc;
}

// Phase 3b, b: thread g of ceil(threads / group): tinv[t] = 1 / tprod[t] for the threads t
// of group g, with one inversion.
template <class F>
DC_HD void msm_affine_invert_body(u32 g, u32 threads, u32 group, const F* tprod, F* tinv) {
  u64 lo = (u64)g * group;
  if (lo >= threads) return;
  u32 hi = lo + group < threads ? (u32)(lo + group) : threads;
  F acc = F::one();
  for (u32 t = (u32)lo; t < hi; t++) {
    tinv[t] = acc;  // the product of the group's products before t
    acc = msm_mul(acc, tprod[t]);
  }
  F inv = F::inv(acc);  // 1 / the product of the products of t' ≤ t, t from hi − 1 down
  for (u32 t = hi; t-- > (u32)lo;) {
    F mine = msm_mul(inv, tinv[t]);
    inv = msm_mul(inv, tprod[t]);
    tinv[t] = mine;
  }
}

// Phase 3b, c: thread tid of round r walks its heads from the last, as a left them.
template <class F>
DC_HD void msm_affine_finish_body(u32 tid, u32 n, u32 c, u32 windows, u32 round, u32 slice,
                                  const Affine<F>* bases, const u32* sorted_idx,
                                  const u32* sorted_bucket, const u32* offsets,
                                  const u32* counts, Affine<F>* pts, const F* pref,
                                  const F* tinv) {
  u32 w, lo, hi;
  if (!msm_affine_slice(tid, n, c, windows, round, slice, offsets, counts, &w, &lo, &hi)) return;
  const u32 buckets = 1u << (c - 1), half = 1u << round, step = 2u << round;
  const u64 base = (u64)w * n;
  F inv = tinv[tid];  // 1 / the product of the denominators of the heads not yet finished
  u32 pos = hi;
  while (pos > lo) {
    pos--;
    u32 s, len;
    msm_run_of(pos, w, buckets, base, sorted_bucket, offsets, counts, &s, &len);
    // The run's last candidate at or before pos.
    u32 at = pos - ((pos - s) & (step - 1));
    if (at < lo) break;  // the slice holds no candidate before pos: its run began earlier
    pos = at;
    if (at + half < s + len) {
      Affine<F> p = msm_affine_entry(round, base + at, bases, sorted_idx, pts);
      Affine<F> q = msm_affine_entry(round, base + at + half, bases, sorted_idx, pts);
      F den;
      u32 kind = affine_pair_case(p, q, &den);
      F inv_den = msm_mul(inv, pref[base + at]);
      inv = msm_mul(inv, den);
      pts[base + at] = affine_pair_sum(p, q, kind, inv_den);
    } else if (round == 0) {
      // The last entry of a run of odd length: carried as it is to the next round.
      pts[base + at] = msm_affine_entry(0, base + at, bases, sorted_idx, pts);
    }
  }
}

// Phase 4, thread tid < windows·chunks, chunks = ceil(n / K). After R affine rounds (phase 3b) it adds
// only the live entries, s + j·2^R in a run starting at s, from `pts`.
template <class F>
DC_HD void msm_chunk_body(u32 tid, u32 n, u32 c, u32 windows, u32 k, u32 rounds,
                          const Affine<F>* bases, const Affine<F>* pts, const u32* sorted_idx,
                          const u32* sorted_bucket, const u32* offsets, const u32* counts,
                          Xyzz<F>* head, Xyzz<F>* tail, Xyzz<F>* bucket_sums) {
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
  const u32 live = (1u << rounds) - 1;
  u32 run_s = offsets[(u64)w * buckets + cur];
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
      run_s = offsets[(u64)w * buckets + cur];
    }
    if (((pos - run_s) & live) == 0)
      acc = xyzz_add_affine(acc, msm_affine_entry(rounds, base + pos, bases, sorted_idx, pts));
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
