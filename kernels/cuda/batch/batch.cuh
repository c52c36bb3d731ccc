// Batch scalar multiplication by one public scalar: out[i] = k·P_i. This is the CPC's
// re-encryption (2N points, one re-key k per grant). Every thread walks the same bits of
// k, so warps never diverge.
#pragma once
#include "../ec/curve.cuh"

// k is the canonical scalar as 8 little-endian words; `bits` its bit length.
template <class F>
DC_HD void scale_body(u32 i, u32 n, const Affine<F>* in, const u32* k, u32 bits, Jacobian<F>* out) {
  if (i >= n) return;
  Affine<F> p = in[i];
  Jacobian<F> acc = jac_inf<F>();
  for (u32 b = bits; b > 0; b--) {
    acc = jac_dbl(acc);
    if ((k[(b - 1) / 32] >> ((b - 1) % 32)) & 1) acc = jac_add_affine(acc, p);
  }
  out[i] = acc;
}
