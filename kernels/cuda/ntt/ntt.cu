// NTT kernels over Fr: thin wrappers over the bodies in ntt.cuh.
#include "ntt.cuh"

#define DC_TID (blockIdx.x * blockDim.x + threadIdx.x)

extern "C" __global__ void ntt_powers(u32 count, const Fr* pow2, u32 bits, Fr* out) {
  ntt_powers_body(DC_TID, count, pow2, bits, out);
}

extern "C" __global__ void ntt_bitrev(u32 log_n, Fr* a) { ntt_bitrev_body(DC_TID, log_n, a); }

extern "C" __global__ void ntt_stage(u32 log_n, u32 s, const Fr* twiddles, Fr* a) {
  ntt_stage_body(DC_TID, log_n, s, twiddles, a);
}

extern "C" __global__ void ntt_mul(u32 n, const Fr* factors, Fr* a) {
  ntt_mul_body(DC_TID, n, factors, a);
}

extern "C" __global__ void ntt_scale(u32 n, const Fr* c, Fr* a) {
  ntt_scale_body(DC_TID, n, *c, a);
}
