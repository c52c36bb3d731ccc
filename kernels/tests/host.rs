//! The CUDA arithmetic, compiled for the host, against blstrs: field operations, point
//! operations, the MSM algorithm (every phase, as the kernels run it) and the NTT, on
//! random values and on the edge cases (zero, one, −1, the identity, P + P, P − P,
//! duplicate points, repeated scalars).

use blstrs::{Fp, Fp2, G1Affine, G1Projective, G2Affine, G2Projective, Scalar as Fr};
use dualchain_kernels::host;
use dualchain_kernels::msm::MAX_AFFINE_ROUNDS;
use dualchain_kernels::ntt::{passes, PASS_MAX};
use dualchain_kernels::MsmPlan;
use dualchain_prover::backend::{naive_msm_g1, quotient_by_transforms, CpuBackend, MsmBackend, NttBackend};
use dualchain_prover::ntt::root_of_unity;
use ff::{Field, PrimeField};
use group::{Curve, Group};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn fp_edge() -> Vec<Fp> {
    vec![Fp::ZERO, Fp::ONE, -Fp::ONE, Fp::ONE + Fp::ONE, -(Fp::ONE + Fp::ONE)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn fp_ops_match_blstrs(seed in any::<u64>()) {
        let mut r = rng(seed);
        let (a, b) = (Fp::random(&mut r), Fp::random(&mut r));
        prop_assert_eq!(host::fp_mul(&a, &b), a * b);
        prop_assert_eq!(host::fp_add(&a, &b), a + b);
        prop_assert_eq!(host::fp_sub(&a, &b), a - b);
        prop_assert_eq!(host::fp_neg(&a), -a);
    }

    #[test]
    fn fr_ops_match_blstrs(seed in any::<u64>()) {
        let mut r = rng(seed);
        let (a, b) = (Fr::random(&mut r), Fr::random(&mut r));
        prop_assert_eq!(host::fr_mul(&a, &b), a * b);
        prop_assert_eq!(host::fr_add(&a, &b), a + b);
        prop_assert_eq!(host::fr_sub(&a, &b), a - b);
        let canon: Vec<u8> = host::fr_canonical_words(&a).iter().flat_map(|w| w.to_le_bytes()).collect();
        prop_assert_eq!(canon, a.to_repr().as_ref().to_vec());
    }

    #[test]
    fn fp2_ops_match_blstrs(seed in any::<u64>()) {
        let mut r = rng(seed);
        let (a, b) = (Fp2::random(&mut r), Fp2::random(&mut r));
        prop_assert_eq!(host::fp2_mul(&a, &b), a * b);
        prop_assert_eq!(host::fp2_sqr(&a), a.square());
    }
}

#[test]
fn field_edge_cases() {
    for a in fp_edge() {
        for b in fp_edge() {
            assert_eq!(host::fp_mul(&a, &b), a * b);
            assert_eq!(host::fp_add(&a, &b), a + b);
            assert_eq!(host::fp_sub(&a, &b), a - b);
        }
        assert_eq!(host::fp_neg(&a), -a);
    }
    let fr_edge = [Fr::ZERO, Fr::ONE, -Fr::ONE, Fr::ROOT_OF_UNITY];
    for a in fr_edge {
        for b in fr_edge {
            assert_eq!(host::fr_mul(&a, &b), a * b);
            assert_eq!(host::fr_add(&a, &b), a + b);
            assert_eq!(host::fr_sub(&a, &b), a - b);
        }
    }
    assert_eq!(host::fr_canonical_words(&Fr::ONE), vec![1, 0, 0, 0, 0, 0, 0, 0]);
    assert!(host::fr_canonical_words(&Fr::ZERO).iter().all(|w| *w == 0));
}

/// The Fermat inversions the shifted-base tables use, on random elements and the edges
/// (0 maps to 0, as the affine conversion of the identity relies on not reaching it).
#[test]
fn field_inversion_matches_blstrs() {
    let mut r = rng(21);
    for a in fp_edge().into_iter().chain((0..8).map(|_| Fp::random(&mut r))) {
        assert_eq!(host::fp_inv(&a), a.invert().unwrap_or(Fp::ZERO), "{a:?}");
    }
    for a in [Fp2::ZERO, Fp2::ONE, -Fp2::ONE, Fp2::random(&mut r), Fp2::random(&mut r), Fp2::new(Fp::ZERO, Fp::ONE)] {
        assert_eq!(host::fp2_inv(&a), a.invert().unwrap_or(Fp2::ZERO), "{a:?}");
    }
}

/// Phase 0: entry w·n + i of the table is 2^(c·w)·P_i in blstrs' affine layout, the
/// identity included.
#[test]
fn shifted_base_tables_match_blstrs() {
    let mut bases = g1_points(5, 22);
    bases[2] = G1Affine::from(G1Projective::identity());
    for (c, windows) in [(7u32, 37u32), (13, 20)] {
        let table = host::g1_shift_table(&bases, c, windows);
        let mut want = Vec::new();
        for w in 0..windows {
            for p in &bases {
                let mut q = G1Projective::from(*p);
                for _ in 0..c * w {
                    q = q.double();
                }
                want.push(q.to_affine());
            }
        }
        assert_eq!(table, dualchain_kernels::layout::g1_affine_words(&want), "c = {c}");
    }
}

#[test]
fn g1_point_ops_match_blstrs() {
    let mut r = rng(7);
    let id = G1Projective::identity();
    for _ in 0..16 {
        let (p, q) = (G1Projective::random(&mut r), G1Projective::random(&mut r));
        assert_eq!(host::g1_add(&p, &q), p + q);
        assert_eq!(host::g1_dbl(&p), p.double());
        assert_eq!(host::g1_add_affine(&p, &q.to_affine()), p + q);
        // Exceptional cases: P + P, P + (−P), the identity on either side.
        assert_eq!(host::g1_add(&p, &p), p.double());
        assert_eq!(host::g1_add_affine(&p, &p.to_affine()), p.double());
        assert_eq!(host::g1_add(&p, &-p), id);
        assert_eq!(host::g1_add_affine(&p, &(-p).to_affine()), id);
        assert_eq!(host::g1_add(&id, &p), p);
        assert_eq!(host::g1_add(&p, &id), p);
        assert_eq!(host::g1_add_affine(&id, &p.to_affine()), p);
        assert_eq!(host::g1_add_affine(&p, &G1Affine::from(id)), p);
    }
    assert_eq!(host::g1_dbl(&id), id);
}

#[test]
fn g2_point_ops_match_blstrs() {
    let mut r = rng(8);
    let id = G2Projective::identity();
    for _ in 0..8 {
        let (p, q) = (G2Projective::random(&mut r), G2Projective::random(&mut r));
        assert_eq!(host::g2_add(&p, &q), p + q);
        assert_eq!(host::g2_dbl(&p), p.double());
        assert_eq!(host::g2_add_affine(&p, &q.to_affine()), p + q);
        assert_eq!(host::g2_add(&p, &p), p.double());
        assert_eq!(host::g2_add_affine(&p, &p.to_affine()), p.double());
        assert_eq!(host::g2_add(&p, &-p), id);
        assert_eq!(host::g2_add_affine(&id, &p.to_affine()), p);
        assert_eq!(host::g2_add_affine(&p, &G2Affine::from(id)), p);
    }
}

/// The XYZZ formulas of one group against blstrs: general addition, mixed addition and
/// doubling, with every exceptional case the MSM can meet.
fn check_xyzz<G: Curve>(
    points: &mut dyn FnMut() -> G,
    add: fn(&G, &G) -> G,
    add_affine: fn(&G, &G::AffineRepr) -> G,
    dbl: fn(&G) -> G,
) {
    let id = G::identity();
    for _ in 0..8 {
        let (p, q) = (points(), points());
        assert_eq!(add(&p, &q), p + q);
        assert_eq!(add_affine(&p, &q.to_affine()), p + q);
        assert_eq!(dbl(&p), p.double());
        assert_eq!(add(&p, &p), p.double());
        assert_eq!(add_affine(&p, &p.to_affine()), p.double());
        assert_eq!(add(&p, &-p), id);
        assert_eq!(add_affine(&p, &(-p).to_affine()), id);
        assert_eq!(add(&id, &p), p);
        assert_eq!(add(&p, &id), p);
        assert_eq!(add_affine(&id, &p.to_affine()), p);
        assert_eq!(add_affine(&p, &id.to_affine()), p);
    }
    assert_eq!(dbl(&id), id);
    assert_eq!(add(&id, &id), id);
}

/// The XYZZ bucket formulas, on points whose Z is not 1 (sums of random points), so ZZ and
/// ZZZ are general.
#[test]
fn xyzz_bucket_formulas_match_blstrs() {
    let mut r = rng(9);
    let mut g1 = || G1Projective::random(&mut r) + G1Projective::random(&mut r);
    check_xyzz(&mut g1, host::g1_xyzz_add, host::g1_xyzz_add_affine, host::g1_xyzz_dbl);
    let mut r = rng(10);
    let mut g2 = || G2Projective::random(&mut r) + G2Projective::random(&mut r);
    check_xyzz(&mut g2, host::g2_xyzz_add, host::g2_xyzz_add_affine, host::g2_xyzz_dbl);
}

/// The MSM's inner loop is the mixed XYZZ addition: 8 multiplications and 2 squarings,
/// against 7 + 4 for the Jacobian formula it replaced.
#[test]
fn a_bucket_addition_costs_ten_field_multiplications() {
    let mut r = rng(12);
    let p = G1Projective::random(&mut r) + G1Projective::random(&mut r);
    let q = G1Projective::random(&mut r).to_affine();
    assert_eq!(host::g1_bucket_addition_cost(&p, &q), 10);
}

fn g1_points(n: usize, seed: u64) -> Vec<G1Affine> {
    let mut r = rng(seed);
    let proj: Vec<G1Projective> = (0..n).map(|_| G1Projective::random(&mut r)).collect();
    let mut out = vec![G1Affine::from(G1Projective::identity()); n];
    G1Projective::batch_normalize(&proj, &mut out);
    out
}

fn scalars(n: usize, seed: u64) -> Vec<Fr> {
    let mut r = rng(seed);
    (0..n).map(|_| Fr::random(&mut r)).collect()
}

/// Plans that stress the chunk and segment boundaries: chunks of 1, 2, 3, 4 and 7
/// entries (a bucket of repeated scalars then spans hundreds of chunks, summed through the
/// piece tree), narrow and wide windows, one and many segments (the reduction tree).
///
/// The size's shifted plan runs on a table of shifted bases (one window of W·n entries,
/// the buckets counted across windows; the random test adds one with narrow chunks), and
/// scalars arrive in upload chunks of 1, 7 and 64 as well as whole.
///
/// Two plans sum the runs pairwise in affine coordinates first (phase 3b): the shifted
/// plan, with every round up to the most and one position per thread in round 0 (so heads
/// sit at threads' edges) and 32 threads per inversion, and a windowed plan with 2
/// positions per thread and 16 threads per inversion. The random test adds the shifted
/// plan without affine rounds, and with its default ones.
fn plans(n: usize) -> Vec<MsmPlan> {
    let shifted = MsmPlan::shifted_for_size(n).unwrap();
    let mut v = vec![
        MsmPlan::for_size(n),
        shifted.with_upload_chunk(1).unwrap().with_affine_rounds(MAX_AFFINE_ROUNDS, 1, 32).unwrap(),
        MsmPlan::with(n, 5, 3, 4).unwrap().with_affine_rounds(3, 2, 16).unwrap(),
    ];
    for (c, chunk, seg, upload) in
        [(2, 1, 1, 7), (3, 2, 3, 0), (5, 3, 16, 64), (8, 7, 5, 0), (11, 32, 64, 0), (14, 4, 128, 0)]
    {
        let mut plan = MsmPlan::with(n, c, chunk, seg).unwrap();
        if upload > 0 {
            plan = plan.with_upload_chunk(upload).unwrap();
        }
        v.push(plan);
    }
    v
}

/// On a table of shifted bases an MSM pays its bucket reduction once, with a window as
/// wide as log2(n), so it makes fewer field multiplications than one window at a time
/// (the table's own, made once per base vector, counted apart).
#[test]
fn shifted_bases_make_fewer_field_multiplications() {
    let n = 1 << 8;
    let (bases, s) = (g1_points(n, 23), scalars(n, 24));
    let want = naive_msm_g1(&bases, &s);
    let plain = MsmPlan::for_size(n);
    let (got, plain_muls) = host::count_field_muls(|| host::msm_g1(&bases, &s, &plain));
    assert_eq!(got, want);
    let shifted = MsmPlan::shifted_for_size(n).unwrap();
    assert!(shifted.shifted && shifted.c > plain.c, "{shifted:?}");
    let (got, muls) = host::count_field_muls(|| host::msm_g1(&bases, &s, &shifted));
    assert_eq!(got, want);
    let (_, table) = host::count_field_muls(|| host::g1_shift_table(&bases, shifted.c, shifted.windows));
    let shifted_muls = muls - table;
    assert!(
        (shifted_muls as f64) < 0.9 * plain_muls as f64,
        "shifted {shifted_muls} against {plain_muls} field multiplications"
    );
}

/// Summing the runs pairwise in affine coordinates, with one inversion per group of
/// threads, makes fewer field multiplications than adding every entry in XYZZ
/// coordinates, the inversions included; a plan whose buckets hold two entries or fewer
/// on average takes no affine rounds.
#[test]
fn batched_affine_makes_fewer_field_multiplications() {
    let n = 1 << 10;
    let (bases, s) = (g1_points(n, 25), scalars(n, 26));
    let want = naive_msm_g1(&bases, &s);
    let xyzz = MsmPlan::shifted_for_size(n).unwrap();
    let affine = xyzz.with_batched_affine();
    assert!(affine.affine.rounds >= 3, "{affine:?}");
    let (got, xyzz_muls) = host::count_field_muls(|| host::msm_g1(&bases, &s, &xyzz));
    assert_eq!(got, want);
    let (got, affine_muls) = host::count_field_muls(|| host::msm_g1(&bases, &s, &affine));
    assert_eq!(got, want);
    // The emulation makes the shifted table first; it is the same for both.
    let (_, table) = host::count_field_muls(|| host::g1_shift_table(&bases, xyzz.c, xyzz.windows));
    let (xyzz_muls, affine_muls) = (xyzz_muls - table, affine_muls - table);
    assert!(
        (affine_muls as f64) < 0.9 * xyzz_muls as f64,
        "affine rounds {affine_muls} against {xyzz_muls} field multiplications"
    );
    eprintln!("{affine_muls} against {xyzz_muls} field multiplications");
    assert_eq!(MsmPlan::with(n, 11, 32, 16).unwrap().with_batched_affine().affine.rounds, 0);
}

#[test]
fn msm_g1_random_matches_blstrs() {
    for n in [1usize, 2, 5, 64, 300] {
        let bases = g1_points(n, n as u64);
        let s = scalars(n, 100 + n as u64);
        let want = naive_msm_g1(&bases, &s);
        let narrow_shifted =
            MsmPlan::with(n, 8, 3, 16).unwrap().on_shifted_bases().unwrap().with_upload_chunk(64).unwrap();
        let shifted = MsmPlan::shifted_for_size(n).unwrap();
        for plan in plans(n).into_iter().chain([narrow_shifted, shifted, shifted.with_batched_affine()]) {
            assert_eq!(host::msm_g1(&bases, &s, &plan), want, "n = {n}, {plan:?}");
        }
    }
}

#[test]
fn msm_g1_edge_cases_match_blstrs() {
    let n = 257;
    let base = g1_points(n, 3);
    let rand_s = scalars(n, 4);
    let id = G1Affine::from(G1Projective::identity());
    let cases: Vec<(&str, Vec<G1Affine>, Vec<Fr>)> = vec![
        ("all zero scalars", base.clone(), vec![Fr::ZERO; n]),
        ("all one scalars", base.clone(), vec![Fr::ONE; n]),
        ("all −1 scalars", base.clone(), vec![-Fr::ONE; n]),
        ("bits, as in witnesses", base.clone(), (0..n).map(|i| Fr::from((i % 3 == 0) as u64)).collect()),
        ("one repeated scalar", base.clone(), vec![rand_s[0]; n]),
        ("small scalars", base.clone(), (0..n).map(|i| Fr::from(i as u64 % 9)).collect()),
        ("identity points", (0..n).map(|i| if i % 2 == 0 { id } else { base[i] }).collect(), rand_s.clone()),
        ("one duplicated point", vec![base[0]; n], rand_s.clone()),
        ("duplicated point and scalar", vec![base[1]; n], vec![rand_s[1]; n]),
        (
            "P and −P cancel",
            (0..n).map(|i| if i % 2 == 0 { base[0] } else { -base[0] }).collect(),
            vec![Fr::from(5); n],
        ),
    ];
    for (what, b, s) in cases {
        let want = naive_msm_g1(&b, &s);
        assert_eq!(want, CpuBackend.msm_g1(&b, &s), "{what}: CPU backend");
        for plan in plans(n) {
            assert_eq!(host::msm_g1(&b, &s, &plan), want, "{what}, {plan:?}");
        }
    }
}

#[test]
fn msm_g2_matches_blstrs() {
    let n = 40;
    let mut r = rng(11);
    let proj: Vec<G2Projective> = (0..n).map(|_| G2Projective::random(&mut r)).collect();
    let bases: Vec<G2Affine> = proj.iter().map(|p| p.to_affine()).collect();
    for s in [scalars(n, 12), vec![Fr::ONE; n], (0..n).map(|i| Fr::from(i as u64 % 4)).collect()] {
        let want: G2Projective = bases.iter().zip(&s).map(|(p, k)| G2Projective::from(*p) * k).sum();
        assert_eq!(CpuBackend.msm_g2(&bases, &s), want);
        for plan in [
            MsmPlan::for_size(n),
            MsmPlan::with(n, 3, 2, 2).unwrap(),
            MsmPlan::with(n, 7, 5, 9).unwrap(),
            MsmPlan::with(n, 7, 5, 9).unwrap().on_shifted_bases().unwrap().with_upload_chunk(3).unwrap(),
            MsmPlan::with(n, 4, 3, 2).unwrap().on_shifted_bases().unwrap().with_affine_rounds(4, 1, 2).unwrap(),
        ] {
            assert_eq!(host::msm_g2(&bases, &s, &plan), want, "{plan:?}");
        }
    }
    let dup = vec![bases[0]; n];
    let s = scalars(n, 13);
    let want: G2Projective = dup.iter().zip(&s).map(|(p, k)| G2Projective::from(*p) * k).sum();
    assert_eq!(host::msm_g2(&dup, &s, &MsmPlan::with(n, 4, 3, 2).unwrap()), want);
    let affine = MsmPlan::with(n, 4, 3, 2).unwrap().with_affine_rounds(3, 2, 2).unwrap();
    assert_eq!(host::msm_g2(&dup, &s, &affine), want);
}

/// Every pass width from radix-2 stages one at a time to the device's 9, so groups,
/// strides and twiddles are checked across pass boundaries.
#[test]
fn ntt_matches_cpu() {
    for log_n in 0..=11u32 {
        let n = 1usize << log_n;
        let omega = root_of_unity(log_n);
        for v in [scalars(n, log_n as u64), vec![Fr::ZERO; n], vec![Fr::ONE; n]] {
            let mut want = v.clone();
            CpuBackend.ntt(&mut want, omega);
            for pass_max in [1, 2, 3, 4, PASS_MAX] {
                let mut got = v.clone();
                host::ntt(&mut got, omega, pass_max);
                assert_eq!(got, want, "2^{log_n}, passes of {pass_max}");
            }
        }
    }
    assert_eq!(passes(20).collect::<Vec<_>>(), vec![(0, 9), (9, 9), (18, 2)]);
    assert_eq!(passes(9).collect::<Vec<_>>(), vec![(0, 9)]);
    assert_eq!(passes(0).count(), 0);
}

/// The device's QAP step, emulated launch by launch, gives the CPU prover's h; so does a
/// witness whose evaluations are shorter than the domain (zero padding).
#[test]
fn device_quotient_matches_the_cpu_quotient() {
    for log_m in [1u32, 3, 6, 10, 12] {
        let m = 1usize << log_m;
        let (a, b) = (scalars(m, 31), scalars(m, 32));
        // c = a·b on the domain makes A·B − C divisible by Z, as a satisfied witness does.
        let c: Vec<Fr> = a.iter().zip(&b).map(|(x, y)| x * y).collect();
        let want = quotient_by_transforms(&CpuBackend, a.clone(), b.clone(), c.clone(), m);
        assert_eq!(want.len(), m - 1);
        for pass_max in [2, PASS_MAX] {
            assert_eq!(host::quotient(&a, &b, &c, m, pass_max), want, "m = 2^{log_m}, passes of {pass_max}");
        }
        let short = m - m / 4;
        let want =
            quotient_by_transforms(&CpuBackend, a[..short].to_vec(), b[..short].to_vec(), c[..short].to_vec(), m);
        assert_eq!(host::quotient(&a[..short], &b[..short], &c[..short], m, PASS_MAX), want, "padded, 2^{log_m}");
    }
}

#[test]
fn batch_scalar_multiplication_matches_blstrs() {
    let points = g1_points(33, 21);
    let mut with_identity = points.clone();
    with_identity[5] = G1Affine::from(G1Projective::identity());
    with_identity[6] = with_identity[7];
    let mut r = rng(22);
    for k in [Fr::random(&mut r), Fr::ZERO, Fr::ONE, -Fr::ONE, Fr::from(0x1_0000_0001u64)] {
        for pts in [&points, &with_identity] {
            let want: Vec<G1Projective> = pts.iter().map(|p| G1Projective::from(*p) * k).collect();
            assert_eq!(host::g1_scale(pts, &k), want);
        }
    }
    assert!(host::g1_scale(&[], &Fr::ONE).is_empty());
}

#[test]
fn fp12_multiplication_matches_blstrs() {
    let mut r = rng(30);
    for _ in 0..8 {
        let (a, b) = (blstrs::Fp12::random(&mut r), blstrs::Fp12::random(&mut r));
        assert_eq!(host::fp12_mul(&a, &b), a * b);
    }
}

/// The device Miller loop, after blstrs' final exponentiation, is the pairing; products of
/// several loops are the product of pairings (the batch verification equation).
#[test]
fn miller_loops_give_the_pairing() {
    use pairing::MillerLoopResult as _;
    let mut r = rng(31);
    let p: Vec<G1Affine> = (0..3).map(|_| G1Projective::random(&mut r).to_affine()).collect();
    let q: Vec<G2Affine> = (0..3).map(|_| G2Projective::random(&mut r).to_affine()).collect();
    for i in 0..3 {
        let got = host::miller_product(&p[i..i + 1], &q[i..i + 1]).final_exponentiation();
        assert_eq!(got, blstrs::pairing(&p[i], &q[i]), "pair {i}");
    }
    let want = blstrs::pairing(&p[0], &q[0]) + blstrs::pairing(&p[1], &q[1]) + blstrs::pairing(&p[2], &q[2]);
    assert_eq!(host::miller_product(&p, &q).final_exponentiation(), want);
    // e(aP, Q)·e(-aP, Q) = 1, and the identity contributes nothing.
    let neg: G1Affine = (-G1Projective::from(p[0])).to_affine();
    assert_eq!(host::miller_product(&[p[0], neg], &[q[0], q[0]]).final_exponentiation(), blstrs::Gt::identity());
    let id1 = G1Affine::from(G1Projective::identity());
    let id2 = G2Affine::from(G2Projective::identity());
    assert_eq!(host::miller_product(&[id1, p[1]], &[q[1], id2]).final_exponentiation(), blstrs::Gt::identity());
}
