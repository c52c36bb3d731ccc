// Batch verification kernels: one Miller loop per thread, then a product tree.
#include "miller.cuh"

#define DC_TID (blockIdx.x * blockDim.x + threadIdx.x)

extern "C" __global__ void miller_loops(u32 n, const G1Affine* p, const G2Affine* q, Fp12* out) {
  miller_body(DC_TID, n, p, q, out);
}

extern "C" __global__ void fp12_pair_product(u32 n, const Fp12* in, Fp12* out) {
  fp12_pair_product_body(DC_TID, n, in, out);
}
