// Fp2 = Fp[u]/(u^2 + 1), laid out as blst's `blst_fp2` (c0 then c1). Its products call
// Fp's out-of-line product (see Fe::mul): inlined here they would be inlined into every
// G2 and pairing formula.
#pragma once
#include "field.cuh"

struct Fp2 {
  Fp c0, c1;

  static DC_HD Fp2 zero() { Fp2 r; r.c0 = Fp::zero(); r.c1 = Fp::zero(); return r; }
  static DC_HD Fp2 one() { Fp2 r; r.c0 = Fp::one(); r.c1 = Fp::zero(); return r; }
  static DC_HD bool is_zero(const Fp2& a) { return Fp::is_zero(a.c0) && Fp::is_zero(a.c1); }
  static DC_HD bool eq(const Fp2& a, const Fp2& b) { return Fp::eq(a.c0, b.c0) && Fp::eq(a.c1, b.c1); }
  static DC_HD Fp2 add(const Fp2& a, const Fp2& b) {
    Fp2 r; r.c0 = Fp::add(a.c0, b.c0); r.c1 = Fp::add(a.c1, b.c1); return r;
  }
  static DC_HD Fp2 sub(const Fp2& a, const Fp2& b) {
    Fp2 r; r.c0 = Fp::sub(a.c0, b.c0); r.c1 = Fp::sub(a.c1, b.c1); return r;
  }
  static DC_HD Fp2 dbl(const Fp2& a) { return add(a, a); }
  static DC_HD Fp2 neg(const Fp2& a) { Fp2 r; r.c0 = Fp::neg(a.c0); r.c1 = Fp::neg(a.c1); return r; }

  // Karatsuba: (a0 + a1 u)(b0 + b1 u) = a0 b0 - a1 b1 + ((a0 + a1)(b0 + b1) - a0 b0 - a1 b1) u.
  static DC_HD Fp2 mul(const Fp2& a, const Fp2& b) {
    Fp t0 = Fp::mul_outlined(a.c0, b.c0);
    Fp t1 = Fp::mul_outlined(a.c1, b.c1);
    Fp t2 = Fp::mul_outlined(Fp::add(a.c0, a.c1), Fp::add(b.c0, b.c1));
    Fp2 r;
    r.c0 = Fp::sub(t0, t1);
    r.c1 = Fp::sub(Fp::sub(t2, t0), t1);
    return r;
  }

  // (a0 + a1 u)^2 = (a0 + a1)(a0 - a1) + 2 a0 a1 u.
  static DC_HD Fp2 sqr(const Fp2& a) {
    Fp2 r;
    r.c0 = Fp::mul_outlined(Fp::add(a.c0, a.c1), Fp::sub(a.c0, a.c1));
    Fp t = Fp::mul_outlined(a.c0, a.c1);
    r.c1 = Fp::add(t, t);
    return r;
  }

  // (a0 + a1 u)^-1 = (a0 − a1 u)/(a0² + a1²); 0 for 0.
  static DC_HD Fp2 inv(const Fp2& a) {
    Fp d = Fp::inv(Fp::add(Fp::mul_outlined(a.c0, a.c0), Fp::mul_outlined(a.c1, a.c1)));
    Fp2 r;
    r.c0 = Fp::mul_outlined(a.c0, d);
    r.c1 = Fp::neg(Fp::mul_outlined(a.c1, d));
    return r;
  }
};
