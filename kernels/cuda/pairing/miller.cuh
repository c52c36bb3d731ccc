// The optimal ate Miller loop of BLS12-381, f_{|x|,Q}(P) conjugated (x < 0), for one pair
// P ∈ G1 (affine), Q ∈ G2 (affine on the M-type twist E': y^2 = x^3 + 4ξ).
//
// Derivation of the lines (kept here so the code can be checked by hand). The untwist
// ψ(x', y') = (x' w^-2, y' w^-3) maps E' to E. A line through ψ(T) with twist slope λ',
// evaluated at P = (xP, yP), is yP - (λ'/w) xP + (λ' xT - yT)/w^3; multiplied by w^3 (in
// Fp4, so erased by the final exponentiation) it is the sparse Fp12 element
//     (λ' xT - yT)  +  (-λ' xP)·v  +  yP·(v w)         [coefficients c0.c0, c0.c1, c1.c1]
// and any Fp2 factor of it is erased too. With T = (X, Y, Z) Jacobian on E':
//  - doubling, λ' = 3X^2 / (2YZ), scaled by 2YZ^3:
//       c0.c0 = 3X^3 - 2Y^2,   c0.c1 = -3X^2 Z^2 · xP,   c1.c1 = 2YZ^3 · yP;
//  - adding affine Q, λ' = R / (ZH) with R = yQ Z^3 - Y, H = xQ Z^2 - X, scaled by 2ZH
//    (which is Z of T + Q in madd-2007-bl):
//       c0.c0 = 2R xQ - yQ · 2ZH,   c0.c1 = -2R · xP,   c1.c1 = 2ZH · yP.
// Degenerate inputs (P or Q the identity) contribute 1; for points of order r the loop
// never meets T = ±Q, since |x| < r.
#pragma once
#include "../ec/curve.cuh"
#include "tower.cuh"

// |x| = 0xd201000000010000 for BLS12-381's x = -0xd201000000010000.
#define DC_BLS_X 0xd201000000010000ull

DC_HD Fp2 fp2_scale(const Fp2& a, const Fp& s) {
  Fp2 r; r.c0 = Fp::mul_outlined(a.c0, s); r.c1 = Fp::mul_outlined(a.c1, s); return r;
}

// f · (a + b v + c v w).
DC_HD Fp12 mul_by_line(const Fp12& f, const Fp2& a, const Fp2& b, const Fp2& c) {
  Fp12 l;
  l.c0 = Fp6::zero();
  l.c1 = Fp6::zero();
  l.c0.c0 = a;
  l.c0.c1 = b;
  l.c1.c1 = c;
  return Fp12::mul(f, l);
}

DC_HD Fp12 miller_loop_body(const G1Affine& p, const G2Affine& q) {
  if (affine_is_inf(p) || affine_is_inf(q)) return Fp12::one();
  Fp12 f = Fp12::one();
  G2Jacobian t = jac_from_affine(q);
  for (int i = 62; i >= 0; i--) {
    f = Fp12::sqr(f);
    // Doubling line at T, then T = 2T.
    {
      Fp2 xx = Fp2::sqr(t.x);
      Fp2 yy = Fp2::sqr(t.y);
      Fp2 zz = Fp2::sqr(t.z);
      Fp2 x3 = Fp2::add(Fp2::dbl(xx), xx);  // 3X^2
      Fp2 a = Fp2::sub(Fp2::mul(x3, t.x), Fp2::dbl(yy));
      Fp2 b = Fp2::neg(fp2_scale(Fp2::mul(x3, zz), p.x));
      Fp2 c = fp2_scale(Fp2::mul(Fp2::dbl(Fp2::mul(t.y, t.z)), zz), p.y);
      f = mul_by_line(f, a, b, c);
      t = jac_dbl(t);
    }
    if ((DC_BLS_X >> i) & 1) {
      Fp2 zz = Fp2::sqr(t.z);
      Fp2 r = Fp2::sub(Fp2::mul(Fp2::mul(q.y, t.z), zz), t.y);
      Fp2 h = Fp2::sub(Fp2::mul(q.x, zz), t.x);
      Fp2 zh2 = Fp2::dbl(Fp2::mul(t.z, h));
      Fp2 r2 = Fp2::dbl(r);
      Fp2 a = Fp2::sub(Fp2::mul(r2, q.x), Fp2::mul(q.y, zh2));
      Fp2 b = Fp2::neg(fp2_scale(r2, p.x));
      Fp2 c = fp2_scale(zh2, p.y);
      f = mul_by_line(f, a, b, c);
      t = jac_add_affine(t, q);
    }
  }
  return Fp12::conjugate(f);
}

// Thread i < n: out[i] = Miller loop of (p[i], q[i]).
DC_HD void miller_body(u32 i, u32 n, const G1Affine* p, const G2Affine* q, Fp12* out) {
  if (i >= n) return;
  out[i] = miller_loop_body(p[i], q[i]);
}

// Thread i < half: out[i] = in[2i]·in[2i+1] (in[2i] alone when 2i+1 = n).
DC_HD void fp12_pair_product_body(u32 i, u32 n, const Fp12* in, Fp12* out) {
  u32 half = (n + 1) / 2;
  if (i >= half) return;
  out[i] = 2 * i + 1 < n ? Fp12::mul(in[2 * i], in[2 * i + 1]) : in[2 * i];
}
