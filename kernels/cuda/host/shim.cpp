// Host build of the CUDA arithmetic and kernel bodies, with a C ABI for the Rust tests that
// compare them with blstrs. Each "kernel" is emulated by running its body for every
// thread index in turn, phase after phase, exactly as the launches in msm.cu/ntt.cu
// order them on the device.
#include <cstring>
#include <vector>

#include "../batch/batch.cuh"
#include "../msm/msm.cuh"
#include "../ntt/ntt.cuh"
#include "../pairing/miller.cuh"

template <class T>
static T load(const u32* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
template <class T>
static void store(u32* p, const T& v) {
  std::memcpy(p, &v, sizeof(T));
}

extern "C" {

// Field multiplications this thread has made since the last call (see DC_COUNT_MUL).
u64 dc_take_mul_count() {
  u64 n = dc_host_mul_count();
  dc_host_mul_count() = 0;
  return n;
}

void dc_fp_mul(const u32* a, const u32* b, u32* r) { store(r, Fp::mul(load<Fp>(a), load<Fp>(b))); }
void dc_fp_add(const u32* a, const u32* b, u32* r) { store(r, Fp::add(load<Fp>(a), load<Fp>(b))); }
void dc_fp_sub(const u32* a, const u32* b, u32* r) { store(r, Fp::sub(load<Fp>(a), load<Fp>(b))); }
void dc_fp_neg(const u32* a, u32* r) { store(r, Fp::neg(load<Fp>(a))); }
void dc_fr_mul(const u32* a, const u32* b, u32* r) { store(r, Fr::mul(load<Fr>(a), load<Fr>(b))); }
void dc_fr_add(const u32* a, const u32* b, u32* r) { store(r, Fr::add(load<Fr>(a), load<Fr>(b))); }
void dc_fr_sub(const u32* a, const u32* b, u32* r) { store(r, Fr::sub(load<Fr>(a), load<Fr>(b))); }
void dc_fr_from_mont(const u32* a, u32* r) { store(r, Fr::from_mont(load<Fr>(a))); }
void dc_fp2_mul(const u32* a, const u32* b, u32* r) { store(r, Fp2::mul(load<Fp2>(a), load<Fp2>(b))); }
void dc_fp2_sqr(const u32* a, u32* r) { store(r, Fp2::sqr(load<Fp2>(a))); }

void dc_g1_add(const u32* p, const u32* q, u32* r) {
  store(r, jac_add(load<G1Jacobian>(p), load<G1Jacobian>(q)));
}
void dc_g1_dbl(const u32* p, u32* r) { store(r, jac_dbl(load<G1Jacobian>(p))); }
void dc_g1_add_affine(const u32* p, const u32* q, u32* r) {
  store(r, jac_add_affine(load<G1Jacobian>(p), load<G1Affine>(q)));
}
// XYZZ formulas on Jacobian inputs and outputs: each input is taken to (X, Y, Z², Z³), so
// the formulas see the general ZZ, ZZZ that bucket sums have.
void dc_g1_xyzz_add(const u32* p, const u32* q, u32* r) {
  store(r, xyzz_to_jacobian(xyzz_add(xyzz_from_jacobian(load<G1Jacobian>(p)),
                                     xyzz_from_jacobian(load<G1Jacobian>(q)))));
}
void dc_g1_xyzz_add_affine(const u32* p, const u32* q, u32* r) {
  store(r, xyzz_to_jacobian(xyzz_add_affine(xyzz_from_jacobian(load<G1Jacobian>(p)), load<G1Affine>(q))));
}
void dc_g1_xyzz_dbl(const u32* p, u32* r) {
  store(r, xyzz_to_jacobian(xyzz_dbl(xyzz_from_jacobian(load<G1Jacobian>(p)))));
}
void dc_g2_xyzz_add(const u32* p, const u32* q, u32* r) {
  store(r, xyzz_to_jacobian(xyzz_add(xyzz_from_jacobian(load<G2Jacobian>(p)),
                                     xyzz_from_jacobian(load<G2Jacobian>(q)))));
}
void dc_g2_xyzz_add_affine(const u32* p, const u32* q, u32* r) {
  store(r, xyzz_to_jacobian(xyzz_add_affine(xyzz_from_jacobian(load<G2Jacobian>(p)), load<G2Affine>(q))));
}
void dc_g2_xyzz_dbl(const u32* p, u32* r) {
  store(r, xyzz_to_jacobian(xyzz_dbl(xyzz_from_jacobian(load<G2Jacobian>(p)))));
}
// The field multiplications of one mixed XYZZ addition of two general points.
u64 dc_g1_xyzz_add_affine_cost(const u32* p, const u32* q) {
  G1Xyzz a = xyzz_from_jacobian(load<G1Jacobian>(p));
  G1Affine b = load<G1Affine>(q);
  u64 before = dc_host_mul_count();
  G1Xyzz r = xyzz_add_affine(a, b);
  u64 cost = dc_host_mul_count() - before;
  (void)r;
  return cost;
}
void dc_g2_add(const u32* p, const u32* q, u32* r) {
  store(r, jac_add(load<G2Jacobian>(p), load<G2Jacobian>(q)));
}
void dc_g2_dbl(const u32* p, u32* r) { store(r, jac_dbl(load<G2Jacobian>(p))); }
void dc_g2_add_affine(const u32* p, const u32* q, u32* r) {
  store(r, jac_add_affine(load<G2Jacobian>(p), load<G2Affine>(q)));
}

}  // extern "C"

// `len` values whose bytes are all 0xa5.
template <class T>
static std::vector<T> poisoned(size_t len) {
  std::vector<T> v(len);
  if (len) std::memset(static_cast<void*>(v.data()), 0xa5, sizeof(T) * len);
  return v;
}

// All MSM phases for one group, launched in the order CudaMsm launches them; `out`
// receives the MSM as one Jacobian point. Scalars reach phase 1 in chunks of
// `upload_chunk`, as CudaMsm uploads them. With `shifted`, phase 0 first makes the table
// of shifted bases (which CudaMsm keeps resident beside the bases) and phases 2–8 run on
// one window of W·n entries. With `rounds`, phase 3b sums the runs pairwise in affine
// coordinates first, `slice` positions per thread and one inversion per `group` threads.
template <class F>
static void msm_emulate(const u32* bases_words, const u32* scalars, u32 n, u32 c, u32 windows_,
                        u32 k, u32 segments, u32 shifted, u32 upload_chunk, u32 rounds,
                        u32 slice, u32 group, u32* out) {
  const u32 buckets = 1u << (c - 1);
  const u32 digit_windows = windows_;
  // The sorted phases' shape: W windows of n entries, or one of W·n.
  const u32 windows = shifted ? 1 : windows_;
  const u32 n_digits = n;
  n = shifted ? windows_ * n_digits : n_digits;
  const u32 chunks = (n + k - 1) / k;
  const u32 scan_threads = DC_SCAN_THREADS;
  std::vector<Affine<F>> bases(n_digits);
  if (n_digits) std::memcpy(bases.data(), bases_words, sizeof(Affine<F>) * n_digits);
  if (shifted) {
    std::vector<Affine<F>> table = poisoned<Affine<F>>((size_t)n);
    for (u32 i = 0; i < n_digits; i++)
      msm_shift_body<F>(i, n_digits, c, digit_windows, bases.data(), table.data());
    bases.swap(table);
  }
  // The device takes its scratch from an arena that only zeroes the counters: every other
  // buffer starts as garbage here too (a pattern that is no reduced field element), so a
  // phase that read what no earlier phase wrote would fail the tests.
  std::vector<u32> counts((size_t)windows * buckets, 0), partials(scan_threads),
      scan_a(scan_threads), scan_b(scan_threads);
  std::vector<i32> digits = poisoned<i32>((size_t)digit_windows * n_digits);
  std::vector<u32> offsets = poisoned<u32>(counts.size()), cursor = poisoned<u32>(counts.size());
  std::vector<u32> sorted_idx = poisoned<u32>((size_t)windows * n),
                   sorted_bucket = poisoned<u32>((size_t)windows * n);
  std::vector<Xyzz<F>> head = poisoned<Xyzz<F>>((size_t)windows * chunks),
                       tail = poisoned<Xyzz<F>>((size_t)windows * chunks),
                       bucket_sums = poisoned<Xyzz<F>>((size_t)windows * buckets),
                       segment_sums = poisoned<Xyzz<F>>((size_t)windows * segments);
  // Phase 1 chunk by chunk, each from its own staging copy (as the device's double buffer).
  for (u32 first = 0; first < n_digits; first += upload_chunk) {
    u32 count = n_digits - first < upload_chunk ? n_digits - first : upload_chunk;
    std::vector<u32> staged(scalars + 8 * (size_t)first, scalars + 8 * ((size_t)first + count));
    for (u32 t = 0; t < count; t++)
      msm_digits_body(t, staged.data(), first, n_digits, c, digit_windows, shifted, digits.data(),
                      counts.data());
  }
  for (u32 w = 0; w < windows; w++) {
    for (u32 t = 0; t < scan_threads; t++)
      msm_scan_partial_body(t, scan_threads, w, counts.data(), buckets, partials.data());
    scan_a = partials;
    for (u32 offset = 1; offset < scan_threads; offset <<= 1) {
      for (u32 t = 0; t < scan_threads; t++) msm_scan_step_body(t, offset, scan_a.data(), scan_b.data());
      scan_a.swap(scan_b);
    }
    for (u32 t = 0; t < scan_threads; t++)
      msm_scan_write_body(t, scan_threads, w, counts.data(), buckets, scan_a[t] - partials[t],
                          offsets.data(), cursor.data());
  }
  for (u32 i = 0; i < n; i++)
    msm_scatter_body(i, n, c, windows, digits.data(), cursor.data(), sorted_idx.data(),
                     sorted_bucket.data());
  // Phase 3b: R affine rounds, each its three launches.
  std::vector<Affine<F>> pts = poisoned<Affine<F>>(rounds ? (size_t)windows * n : 0);
  std::vector<F> pref = poisoned<F>(pts.size());
  for (u32 r = 0; r < rounds; r++) {
    u64 span = (u64)slice << r;
    u32 threads = windows * (u32)((n + span - 1) / span);
    std::vector<F> tprod = poisoned<F>(threads), tinv = poisoned<F>(threads);
    for (u32 t = 0; t < threads; t++)
      msm_affine_pairs_body<F>(t, n, c, windows, r, slice, bases.data(), sorted_idx.data(),
                               sorted_bucket.data(), offsets.data(), counts.data(), pts.data(),
                               pref.data(), tprod.data());
    for (u32 g = 0; g < (threads + group - 1) / group; g++)
      msm_affine_invert_body<F>(g, threads, group, tprod.data(), tinv.data());
    for (u32 t = 0; t < threads; t++)
      msm_affine_finish_body<F>(t, n, c, windows, r, slice, bases.data(), sorted_idx.data(),
                                sorted_bucket.data(), offsets.data(), counts.data(), pts.data(),
                                pref.data(), tinv.data());
  }
  for (u32 t = 0; t < windows * chunks; t++)
    msm_chunk_body<F>(t, n, c, windows, k, rounds, bases.data(), pts.data(), sorted_idx.data(),
                      sorted_bucket.data(), offsets.data(), counts.data(), head.data(), tail.data(),
                      bucket_sums.data());
  for (u32 stride = 1; stride < chunks; stride *= 2) {
    u32 threads = windows * ((chunks + 2 * stride - 1) / (2 * stride));
    for (u32 t = 0; t < threads; t++)
      msm_piece_tree_body<F>(t, n, c, windows, k, stride, sorted_bucket.data(), offsets.data(),
                             counts.data(), head.data());
  }
  for (u32 t = 0; t < windows * buckets; t++)
    msm_bucket_body<F>(t, n, c, windows, k, offsets.data(), counts.data(), head.data(), tail.data(),
                       bucket_sums.data());
  for (u32 t = 0; t < windows * segments; t++)
    msm_segment_body<F>(t, c, windows, segments, bucket_sums.data(), segment_sums.data());
  for (u32 stride = 1; stride < segments; stride *= 2) {
    u32 threads = windows * ((segments + 2 * stride - 1) / (2 * stride));
    for (u32 t = 0; t < threads; t++) msm_reduce_body<F>(t, windows, segments, stride, segment_sums.data());
  }
  Jacobian<F> result;
  msm_combine_body<F>(0, c, windows, segments, segment_sums.data(), &result);
  std::memcpy(out, &result, sizeof(Jacobian<F>));
}

extern "C" {

void dc_msm_g1(const u32* bases, const u32* scalars, u32 n, u32 c, u32 windows, u32 k,
               u32 segments, u32 shifted, u32 upload_chunk, u32 rounds, u32 slice, u32 group,
               u32* out) {
  msm_emulate<Fp>(bases, scalars, n, c, windows, k, segments, shifted, upload_chunk, rounds,
                   slice, group, out);
}

void dc_msm_g2(const u32* bases, const u32* scalars, u32 n, u32 c, u32 windows, u32 k,
               u32 segments, u32 shifted, u32 upload_chunk, u32 rounds, u32 slice, u32 group,
               u32* out) {
  msm_emulate<Fp2>(bases, scalars, n, c, windows, k, segments, shifted, upload_chunk, rounds,
                   slice, group, out);
}

// Phase 0 alone: the table of 2^(c·w)·P_i, w < windows, for G1 bases.
void dc_msm_shift_g1(const u32* bases, u32 n, u32 c, u32 windows, u32* table) {
  for (u32 i = 0; i < n; i++)
    msm_shift_body<Fp>(i, n, c, windows, reinterpret_cast<const G1Affine*>(bases),
                       reinterpret_cast<G1Affine*>(table));
}

void dc_fp_inv(const u32* a, u32* r) { store(r, Fp::inv(load<Fp>(a))); }
void dc_fp2_inv(const u32* a, u32* r) { store(r, Fp2::inv(load<Fp2>(a))); }

// out[i] = base^i for i < count, as CudaNtt::powers launches ntt_powers.
static std::vector<Fr> ntt_power_table(Fr base, u32 count, u32 bits) {
  std::vector<Fr> pow2(bits > 0 ? bits : 1);
  for (u32 j = 0; j < pow2.size(); j++) {
    pow2[j] = base;
    base = Fr::sqr(base);
  }
  std::vector<Fr> out(count > 0 ? count : 1);
  for (u32 i = 0; i < count; i++) ntt_powers_body(i, count, pow2.data(), bits, out.data());
  return out;
}

// The forward transform as CudaNtt launches it: the bit-reversal, then passes of up to
// `pass_max` stages, each group's block run thread by thread, stage by stage.
static void ntt_emulate(Fr* a, u32 log_n, Fr omega, u32 pass_max) {
  const u32 n = 1u << log_n;
  std::vector<Fr> twiddles = ntt_power_table(omega, n / 2 > 0 ? n / 2 : 1, log_n > 0 ? log_n - 1 : 0);
  for (u32 i = 0; i < n; i++) ntt_bitrev_body(i, log_n, a);
  std::vector<Fr> buf(1u << pass_max);
  for (u32 s0 = 0; s0 < log_n;) {
    u32 k = log_n - s0 < pass_max ? log_n - s0 : pass_max;
    for (u32 g = 0; g < (n >> k); g++) {
      for (u32 j = 0; j < (1u << k); j++) buf[j] = a[ntt_pass_index(g, j, s0, k)];
      for (u32 s = s0; s < s0 + k; s++)
        for (u32 t = 0; t < (1u << (k - 1)); t++)
          ntt_pass_butterfly_body(t, g, log_n, s0, s, twiddles.data(), buf.data());
      for (u32 j = 0; j < (1u << k); j++) a[ntt_pass_index(g, j, s0, k)] = buf[j];
    }
    s0 += k;
  }
}

static void ntt_mul_emulate(Fr* a, u32 log_n, Fr base) {
  const u32 n = 1u << log_n;
  std::vector<Fr> f = ntt_power_table(base, n, log_n);
  for (u32 i = 0; i < n; i++) ntt_mul_body(i, n, f.data(), a);
}

static void ntt_scale_emulate(Fr* a, u32 log_n, Fr c) {
  for (u32 i = 0; i < (1u << log_n); i++) ntt_scale_body(i, 1u << log_n, c, a);
}

// Forward NTT of 2^log_n elements in place, with the launches of CudaNtt emulated.
void dc_ntt(u32* words, u32 log_n, const u32* omega, u32 pass_max) {
  ntt_emulate(reinterpret_cast<Fr*>(words), log_n, load<Fr>(omega), pass_max);
}

// The QAP's quotient as CudaNtt::quotient launches it, with a, b and c (2^log_n values
// each) on the device throughout: each of a, b, c is interpolated (inverse NTT, scaled by
// 1/n) and evaluated on the coset g·⟨ω⟩; then a = (a·b − c)/Z on the coset; then a is
// interpolated from the coset (inverse NTT, 1/n, g^-i). `a` receives h's coefficients.
void dc_quotient(u32* a_words, u32* b_words, u32* c_words, u32 log_n, const u32* consts,
                 u32 pass_max) {
  // consts: ω, ω^-1, g, g^-1, 1/n, 1/Z(g·ω^i), 8 words each.
  Fr omega = load<Fr>(consts), omega_inv = load<Fr>(consts + 8), g = load<Fr>(consts + 16),
     g_inv = load<Fr>(consts + 24), n_inv = load<Fr>(consts + 32), z_inv = load<Fr>(consts + 40);
  Fr* v[3] = {reinterpret_cast<Fr*>(a_words), reinterpret_cast<Fr*>(b_words),
              reinterpret_cast<Fr*>(c_words)};
  for (Fr* x : v) {
    ntt_emulate(x, log_n, omega_inv, pass_max);
    ntt_scale_emulate(x, log_n, n_inv);
    ntt_mul_emulate(x, log_n, g);
    ntt_emulate(x, log_n, omega, pass_max);
  }
  const u32 n = 1u << log_n;
  for (u32 i = 0; i < n; i++) ntt_qap_body(i, n, v[1], v[2], z_inv, v[0]);
  ntt_emulate(v[0], log_n, omega_inv, pass_max);
  ntt_scale_emulate(v[0], log_n, n_inv);
  ntt_mul_emulate(v[0], log_n, g_inv);
}

}  // extern "C"

extern "C" {

// out[i] = k·in[i] for n G1 points, as the g1_scale kernel computes it.
void dc_g1_scale(u32 n, const u32* in, const u32* k, u32 bits, u32* out) {
  std::vector<G1Affine> pts(n);
  if (n) std::memcpy(pts.data(), in, sizeof(G1Affine) * n);
  std::vector<G1Jacobian> res(n);
  for (u32 i = 0; i < n; i++) scale_body<Fp>(i, n, pts.data(), k, bits, res.data());
  if (n) std::memcpy(out, res.data(), sizeof(G1Jacobian) * n);
}

}  // extern "C"

extern "C" {

void dc_fp12_mul(const u32* a, const u32* b, u32* r) { store(r, Fp12::mul(load<Fp12>(a), load<Fp12>(b))); }

// Miller loops of n pairs and their product, as the kernels compute them.
void dc_miller_product(u32 n, const u32* p, const u32* q, u32* out) {
  std::vector<G1Affine> ps(n);
  std::vector<G2Affine> qs(n);
  if (n) {
    std::memcpy(ps.data(), p, sizeof(G1Affine) * n);
    std::memcpy(qs.data(), q, sizeof(G2Affine) * n);
  }
  std::vector<Fp12> cur(n > 0 ? n : 1, Fp12::one());
  for (u32 i = 0; i < n; i++) miller_body(i, n, ps.data(), qs.data(), cur.data());
  u32 len = n > 0 ? n : 1;
  while (len > 1) {
    std::vector<Fp12> next((len + 1) / 2);
    for (u32 i = 0; i < (len + 1) / 2; i++) fp12_pair_product_body(i, len, cur.data(), next.data());
    cur.swap(next);
    len = (len + 1) / 2;
  }
  store(out, cur[0]);
}

}  // extern "C"
