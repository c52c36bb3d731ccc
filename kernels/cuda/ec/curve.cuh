// Short Weierstrass curves y^2 = x^3 + b (a = 0) over F = Fp (G1) or Fp2 (G2).
//
// `Affine<F>` is blst's affine layout (x, y); blst marks the point at infinity by x = y = 0.
// `Jacobian<F>` is blst's `blst_p1`/`blst_p2` layout (X, Y, Z) with x = X/Z^2,
// y = Y/Z^3 and infinity at Z = 0, so a result can be handed to blstrs as a projective
// point without conversion. Formulas: Bernstein–Lange, Explicit-Formulas Database
// (dbl-2009-l, add-2007-bl, madd-2007-bl), with the exceptional cases (infinity inputs,
// P + P, P + (-P)) handled explicitly so duplicate points and the identity are exact.
#pragma once
#include "../ff/fp2.cuh"

template <class F>
struct Affine {
  F x, y;
};

template <class F>
struct Jacobian {
  F x, y, z;
};

template <class F>
DC_HD bool affine_is_inf(const Affine<F>& p) {
  return F::is_zero(p.x) && F::is_zero(p.y);
}

template <class F>
DC_HD Affine<F> affine_neg(const Affine<F>& p) {
  Affine<F> r;
  r.x = p.x;
  r.y = F::neg(p.y);
  return r;
}

template <class F>
DC_HD Jacobian<F> jac_inf() {
  Jacobian<F> r;
  r.x = F::one();
  r.y = F::one();
  r.z = F::zero();
  return r;
}

template <class F>
DC_HD bool jac_is_inf(const Jacobian<F>& p) {
  return F::is_zero(p.z);
}

template <class F>
DC_HD Jacobian<F> jac_from_affine(const Affine<F>& p) {
  if (affine_is_inf(p)) return jac_inf<F>();
  Jacobian<F> r;
  r.x = p.x;
  r.y = p.y;
  r.z = F::one();
  return r;
}

// dbl-2009-l.
template <class F>
DC_HD_NOINLINE Jacobian<F> jac_dbl(const Jacobian<F>& p) {
  if (jac_is_inf(p)) return p;
  F a = F::sqr(p.x);
  F b = F::sqr(p.y);
  F c = F::sqr(b);
  F d = F::sub(F::sub(F::sqr(F::add(p.x, b)), a), c);
  d = F::dbl(d);
  F e = F::add(F::dbl(a), a);
  F f = F::sqr(e);
  Jacobian<F> r;
  r.x = F::sub(f, F::dbl(d));
  F c8 = F::dbl(F::dbl(F::dbl(c)));
  r.y = F::sub(F::mul(e, F::sub(d, r.x)), c8);
  r.z = F::dbl(F::mul(p.y, p.z));
  return r;
}

// add-2007-bl.
template <class F>
DC_HD_NOINLINE Jacobian<F> jac_add(const Jacobian<F>& p, const Jacobian<F>& q) {
  if (jac_is_inf(p)) return q;
  if (jac_is_inf(q)) return p;
  F z1z1 = F::sqr(p.z);
  F z2z2 = F::sqr(q.z);
  F u1 = F::mul(p.x, z2z2);
  F u2 = F::mul(q.x, z1z1);
  F s1 = F::mul(F::mul(p.y, q.z), z2z2);
  F s2 = F::mul(F::mul(q.y, p.z), z1z1);
  F h = F::sub(u2, u1);
  F rr = F::dbl(F::sub(s2, s1));
  if (F::is_zero(h)) {
    if (F::is_zero(rr)) return jac_dbl(p);
    return jac_inf<F>();
  }
  F i = F::sqr(F::dbl(h));
  F j = F::mul(h, i);
  F v = F::mul(u1, i);
  Jacobian<F> r;
  r.x = F::sub(F::sub(F::sqr(rr), j), F::dbl(v));
  r.y = F::sub(F::mul(rr, F::sub(v, r.x)), F::dbl(F::mul(s1, j)));
  r.z = F::mul(F::sub(F::sub(F::sqr(F::add(p.z, q.z)), z1z1), z2z2), h);
  return r;
}

// madd-2007-bl: p + q with q affine.
template <class F>
DC_HD_NOINLINE Jacobian<F> jac_add_affine(const Jacobian<F>& p, const Affine<F>& q) {
  if (affine_is_inf(q)) return p;
  if (jac_is_inf(p)) return jac_from_affine(q);
  F z1z1 = F::sqr(p.z);
  F u2 = F::mul(q.x, z1z1);
  F s2 = F::mul(F::mul(q.y, p.z), z1z1);
  F h = F::sub(u2, p.x);
  F rr = F::dbl(F::sub(s2, p.y));
  if (F::is_zero(h)) {
    if (F::is_zero(rr)) return jac_dbl(p);
    return jac_inf<F>();
  }
  F hh = F::sqr(h);
  F i = F::dbl(F::dbl(hh));
  F j = F::mul(h, i);
  F v = F::mul(p.x, i);
  Jacobian<F> r;
  r.x = F::sub(F::sub(F::sqr(rr), j), F::dbl(v));
  r.y = F::sub(F::mul(rr, F::sub(v, r.x)), F::dbl(F::mul(p.y, j)));
  r.z = F::sub(F::sub(F::sqr(F::add(p.z, h)), z1z1), hh);
  return r;
}

// k·p for a small public k (double and add, most significant bit first).
template <class F>
DC_HD Jacobian<F> jac_mul_u32(const Jacobian<F>& p, u32 k) {
  Jacobian<F> r = jac_inf<F>();
  for (int i = 31; i >= 0; i--) {
    r = jac_dbl(r);
    if ((k >> i) & 1) r = jac_add(r, p);
  }
  return r;
}

typedef Affine<Fp> G1Affine;
typedef Jacobian<Fp> G1Jacobian;
typedef Affine<Fp2> G2Affine;
typedef Jacobian<Fp2> G2Jacobian;
