// Extended Jacobian ("XYZZ") coordinates for bucket accumulation: (X, Y, ZZ, ZZZ) with
// x = X/ZZ, y = Y/ZZZ and ZZ^3 = ZZZ^2; the point at infinity has ZZ = ZZZ = 0.
//
// Formulas: Sutherland 2008, as given in the Explicit-Formulas Database (shortw/xyzz:
// madd-2008-s, add-2008-s, dbl-2008-s-1), with a = 0. Adding an affine point costs
// 8M + 2S against 7M + 4S for Jacobian madd-2007-bl, and, more to the point on a GPU, it
// needs no squaring of a sum and no doubling chains, and ZZ and ZZZ update independently.
// The exceptional cases (an infinity input, P + P, P + (-P)) are handled explicitly, as in
// curve.cuh, so repeated points and scalars sum exactly.
//
// Every formula is one out-of-line function on the device, so the MSM module keeps one copy
// of each per group and NVRTC's compile time stays bounded.
#pragma once
#include "curve.cuh"

template <class F>
struct Xyzz {
  F x, y, zz, zzz;
};

template <class F>
DC_HD Xyzz<F> xyzz_inf() {
  Xyzz<F> r;
  r.x = F::one();
  r.y = F::one();
  r.zz = F::zero();
  r.zzz = F::zero();
  return r;
}

template <class F>
DC_HD bool xyzz_is_inf(const Xyzz<F>& p) {
  return F::is_zero(p.zz);
}

template <class F>
DC_HD Xyzz<F> xyzz_from_affine(const Affine<F>& p) {
  if (affine_is_inf(p)) return xyzz_inf<F>();
  Xyzz<F> r;
  r.x = p.x;
  r.y = p.y;
  r.zz = F::one();
  r.zzz = F::one();
  return r;
}

// (X, Y, Z) -> (X, Y, Z^2, Z^3).
template <class F>
DC_HD Xyzz<F> xyzz_from_jacobian(const Jacobian<F>& p) {
  if (jac_is_inf(p)) return xyzz_inf<F>();
  Xyzz<F> r;
  r.x = p.x;
  r.y = p.y;
  r.zz = F::sqr(p.z);
  r.zzz = F::mul(r.zz, p.z);
  return r;
}

// (X, Y, ZZ, ZZZ) -> (X·ZZ^2, Y·ZZ^3, ZZZ): the Jacobian point (X', Y', Z') = (λ²X, λ³Y, λZ)
// for Z = ZZZ/ZZ and λ = ZZ, with no inversion (x = X·ZZ²/ZZZ² = X/ZZ since ZZ³ = ZZZ²).
template <class F>
DC_HD_NOINLINE Jacobian<F> xyzz_to_jacobian(const Xyzz<F>& p) {
  if (xyzz_is_inf(p)) return jac_inf<F>();
  F zz2 = F::sqr(p.zz);
  Jacobian<F> r;
  r.x = F::mul(p.x, zz2);
  r.y = F::mul(p.y, F::mul(zz2, p.zz));
  r.z = p.zzz;
  return r;
}

// dbl-2008-s-1 (a = 0): 6M + 3S.
template <class F>
DC_HD_NOINLINE Xyzz<F> xyzz_dbl(const Xyzz<F>& p) {
  if (xyzz_is_inf(p)) return p;
  F u = F::dbl(p.y);
  F v = F::sqr(u);
  F w = F::mul(u, v);
  F s = F::mul(p.x, v);
  F x2 = F::sqr(p.x);
  F m = F::add(F::dbl(x2), x2);
  Xyzz<F> r;
  r.x = F::sub(F::sqr(m), F::dbl(s));
  r.y = F::sub(F::mul(m, F::sub(s, r.x)), F::mul(w, p.y));
  r.zz = F::mul(v, p.zz);
  r.zzz = F::mul(w, p.zzz);
  return r;
}

// madd-2008-s: p + q with q affine, 8M + 2S.
template <class F>
DC_HD_NOINLINE Xyzz<F> xyzz_add_affine(const Xyzz<F>& p, const Affine<F>& q) {
  if (affine_is_inf(q)) return p;
  if (xyzz_is_inf(p)) return xyzz_from_affine(q);
  F u2 = F::mul(q.x, p.zz);
  F s2 = F::mul(q.y, p.zzz);
  F pp_ = F::sub(u2, p.x);
  F rr = F::sub(s2, p.y);
  if (F::is_zero(pp_)) {
    if (F::is_zero(rr)) return xyzz_dbl(p);
    return xyzz_inf<F>();
  }
  F pp = F::sqr(pp_);
  F ppp = F::mul(pp_, pp);
  F q1 = F::mul(p.x, pp);
  Xyzz<F> r;
  r.x = F::sub(F::sub(F::sqr(rr), ppp), F::dbl(q1));
  r.y = F::sub(F::mul(rr, F::sub(q1, r.x)), F::mul(p.y, ppp));
  r.zz = F::mul(p.zz, pp);
  r.zzz = F::mul(p.zzz, ppp);
  return r;
}

// add-2008-s: 12M + 2S.
template <class F>
DC_HD_NOINLINE Xyzz<F> xyzz_add(const Xyzz<F>& p, const Xyzz<F>& q) {
  if (xyzz_is_inf(q)) return p;
  if (xyzz_is_inf(p)) return q;
  F u1 = F::mul(p.x, q.zz);
  F u2 = F::mul(q.x, p.zz);
  F s1 = F::mul(p.y, q.zzz);
  F s2 = F::mul(q.y, p.zzz);
  F pp_ = F::sub(u2, u1);
  F rr = F::sub(s2, s1);
  if (F::is_zero(pp_)) {
    if (F::is_zero(rr)) return xyzz_dbl(p);
    return xyzz_inf<F>();
  }
  F pp = F::sqr(pp_);
  F ppp = F::mul(pp_, pp);
  F q1 = F::mul(u1, pp);
  Xyzz<F> r;
  r.x = F::sub(F::sub(F::sqr(rr), ppp), F::dbl(q1));
  r.y = F::sub(F::mul(rr, F::sub(q1, r.x)), F::mul(s1, ppp));
  r.zz = F::mul(F::mul(p.zz, q.zz), pp);
  r.zzz = F::mul(F::mul(p.zzz, q.zzz), ppp);
  return r;
}

// k·p for a small public k (double and add, most significant set bit first).
template <class F>
DC_HD Xyzz<F> xyzz_mul_u32(const Xyzz<F>& p, u32 k) {
  Xyzz<F> r = xyzz_inf<F>();
  bool started = false;
  for (int i = 31; i >= 0; i--) {
    if (started) r = xyzz_dbl(r);
    if ((k >> i) & 1) {
      r = started ? xyzz_add(r, p) : p;
      started = true;
    }
  }
  return r;
}

typedef Xyzz<Fp> G1Xyzz;
typedef Xyzz<Fp2> G2Xyzz;
