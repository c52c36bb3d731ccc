// MSM kernels for G1 and G2: thin wrappers over the bodies in msm.cuh.
#include "msm.cuh"

#define DC_TID (blockIdx.x * blockDim.x + threadIdx.x)

extern "C" __global__ void msm_digits(const u32* chunk, u32 first, u32 count, u32 n, u32 c,
                                      u32 windows, u32 fold, i32* digits, u32* counts) {
  u32 t = DC_TID;
  if (t < count) msm_digits_body(t, chunk, first, n, c, windows, fold, digits, counts);
}

// One block of DC_SCAN_THREADS threads per window.
extern "C" __global__ void msm_scan(const u32* counts, u32 buckets, u32* offsets, u32* cursor) {
  __shared__ u32 partials[DC_SCAN_THREADS];
  __shared__ u32 scan[2][DC_SCAN_THREADS];
  u32 w = blockIdx.x, tid = threadIdx.x;
  msm_scan_partial_body(tid, DC_SCAN_THREADS, w, counts, buckets, partials);
  scan[0][tid] = partials[tid];
  __syncthreads();
  u32 src = 0;
  for (u32 offset = 1; offset < DC_SCAN_THREADS; offset <<= 1) {
    msm_scan_step_body(tid, offset, scan[src], scan[src ^ 1]);
    src ^= 1;
    __syncthreads();
  }
  msm_scan_write_body(tid, DC_SCAN_THREADS, w, counts, buckets, scan[src][tid] - partials[tid],
                      offsets, cursor);
}

extern "C" __global__ void msm_scatter(u32 n, u32 c, u32 windows, const i32* digits,
                                       u32* cursor, u32* sorted_idx, u32* sorted_bucket) {
  u32 i = DC_TID;
  if (i < n) msm_scatter_body(i, n, c, windows, digits, cursor, sorted_idx, sorted_bucket);
}

#define DC_MSM_KERNELS(G, F)                                                                  \
  extern "C" __global__ void msm_shift_##G(u32 n, u32 c, u32 windows, const Affine<F>* bases, \
                                           Affine<F>* table) {                                \
    u32 i = DC_TID;                                                                           \
    if (i < n) msm_shift_body<F>(i, n, c, windows, bases, table);                             \
  }                                                                                           \
  extern "C" __global__ void msm_affine_pairs_##G(                                            \
      u32 n, u32 c, u32 windows, u32 round, u32 slice, const Affine<F>* bases,                \
      const u32* sorted_idx, const u32* sorted_bucket, const u32* offsets, const u32* counts, \
      const Affine<F>* pts, F* pref, F* tprod) {                                              \
    msm_affine_pairs_body<F>(DC_TID, n, c, windows, round, slice, bases, sorted_idx,          \
                             sorted_bucket, offsets, counts, pts, pref, tprod);               \
  }                                                                                           \
  extern "C" __global__ void msm_affine_invert_##G(u32 threads, u32 group, const F* tprod,     \
                                                   F* tinv) {                                 \
    msm_affine_invert_body<F>(DC_TID, threads, group, tprod, tinv);                           \
  }                                                                                           \
  extern "C" __global__ void msm_affine_finish_##G(                                           \
      u32 n, u32 c, u32 windows, u32 round, u32 slice, const Affine<F>* bases,                \
      const u32* sorted_idx, const u32* sorted_bucket, const u32* offsets, const u32* counts, \
      Affine<F>* pts, const F* pref, const F* tinv) {                                         \
    msm_affine_finish_body<F>(DC_TID, n, c, windows, round, slice, bases, sorted_idx,         \
                              sorted_bucket, offsets, counts, pts, pref, tinv);               \
  }                                                                                           \
  extern "C" __global__ void msm_chunk_##G(                                                   \
      u32 n, u32 c, u32 windows, u32 k, u32 rounds, const Affine<F>* bases,                   \
      const Affine<F>* pts, const u32* sorted_idx, const u32* sorted_bucket,                  \
      const u32* offsets, const u32* counts, Xyzz<F>* head, Xyzz<F>* tail,                    \
      Xyzz<F>* bucket_sums) {                                                                 \
    msm_chunk_body<F>(DC_TID, n, c, windows, k, rounds, bases, pts, sorted_idx,               \
                      sorted_bucket, offsets, counts, head, tail, bucket_sums);               \
  }                                                                                           \
  extern "C" __global__ void msm_piece_tree_##G(u32 n, u32 c, u32 windows, u32 k, u32 stride, \
                                                const u32* sorted_bucket, const u32* offsets, \
                                                const u32* counts, Xyzz<F>* head) {           \
    msm_piece_tree_body<F>(DC_TID, n, c, windows, k, stride, sorted_bucket, offsets, counts,  \
                           head);                                                             \
  }                                                                                           \
  extern "C" __global__ void msm_bucket_##G(u32 n, u32 c, u32 windows, u32 k,                 \
                                            const u32* offsets, const u32* counts,            \
                                            const Xyzz<F>* head, const Xyzz<F>* tail,         \
                                            Xyzz<F>* bucket_sums) {                           \
    msm_bucket_body<F>(DC_TID, n, c, windows, k, offsets, counts, head, tail, bucket_sums);   \
  }                                                                                           \
  extern "C" __global__ void msm_segment_##G(u32 c, u32 windows, u32 segments,                \
                                             const Xyzz<F>* bucket_sums,                      \
                                             Xyzz<F>* segment_sums) {                         \
    msm_segment_body<F>(DC_TID, c, windows, segments, bucket_sums, segment_sums);             \
  }                                                                                           \
  extern "C" __global__ void msm_reduce_##G(u32 windows, u32 segments, u32 stride,            \
                                            Xyzz<F>* sums) {                                  \
    msm_reduce_body<F>(DC_TID, windows, segments, stride, sums);                              \
  }                                                                                           \
  extern "C" __global__ void msm_combine_##G(u32 c, u32 windows, u32 segments,                \
                                             const Xyzz<F>* sums, Jacobian<F>* out) {         \
    msm_combine_body<F>(DC_TID, c, windows, segments, sums, out);                             \
  }

DC_MSM_KERNELS(g1, Fp)
DC_MSM_KERNELS(g2, Fp2)
