// Batch kernels of the CPC: thin wrappers over batch.cuh.
#include "batch.cuh"

#define DC_TID (blockIdx.x * blockDim.x + threadIdx.x)

extern "C" __global__ void g1_scale(u32 n, const G1Affine* in, const u32* k, u32 bits, G1Jacobian* out) {
  scale_body<Fp>(DC_TID, n, in, k, bits, out);
}
