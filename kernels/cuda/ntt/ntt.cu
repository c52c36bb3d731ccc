// NTT kernels over Fr: thin wrappers over the bodies in ntt.cuh.
#include "ntt.cuh"

#define DC_TID (blockIdx.x * blockDim.x + threadIdx.x)

extern "C" __global__ void ntt_powers(u32 count, const Fr* pow2, u32 bits, Fr* out) {
  ntt_powers_body(DC_TID, count, pow2, bits, out);
}

extern "C" __global__ void ntt_bitrev(u32 log_n, Fr* a) { ntt_bitrev_body(DC_TID, log_n, a); }

// One pass of k <= DC_NTT_PASS_MAX stages from stage s0: a block of 2^(k-1) threads per
// group of 2^k elements (n / 2^k blocks).
extern "C" __global__ void ntt_pass(u32 log_n, u32 s0, u32 k, const Fr* twiddles, Fr* a) {
  __shared__ Fr buf[1u << DC_NTT_PASS_MAX];
  u32 g = blockIdx.x, t = threadIdx.x, m = 1u << k;
  for (u32 j = t; j < m; j += blockDim.x) buf[j] = a[ntt_pass_index(g, j, s0, k)];
  __syncthreads();
  for (u32 s = s0; s < s0 + k; s++) {
    ntt_pass_butterfly_body(t, g, log_n, s0, s, twiddles, buf);
    __syncthreads();
  }
  for (u32 j = t; j < m; j += blockDim.x) a[ntt_pass_index(g, j, s0, k)] = buf[j];
}

extern "C" __global__ void ntt_qap(u32 n, const Fr* b, const Fr* c, const Fr* z_inv, Fr* a) {
  ntt_qap_body(DC_TID, n, b, c, *z_inv, a);
}

extern "C" __global__ void ntt_mul(u32 n, const Fr* factors, Fr* a) {
  ntt_mul_body(DC_TID, n, factors, a);
}

extern "C" __global__ void ntt_scale(u32 n, const Fr* c, Fr* a) {
  ntt_scale_body(DC_TID, n, *c, a);
}
