//! Keeping a wrong GPU answer from costing anything: a known-answer self-test before a
//! device is used, and CPU cross-checks where an answer leaves the node or decides what
//! the ledger accepts.
//!
//! What a wrong answer could do, and what stops it:
//! - **Proofs.** A proof computed with a faulty MSM or NTT does not verify; submitted, it
//!   would be refused by every validator and the member's request would fail. Every proof
//!   made on the GPU is verified on the CPU before it leaves the node
//!   (`Compute::prove` in the `select` module, about 2 ms a proof); one that fails is made again
//!   on the CPU and the device is no longer used for proving.
//! - **Batch verification.** A validator's verdicts must match every other validator's.
//!   A faulty Miller product makes a batch of valid proofs fail, and the batch is then
//!   split down to single proofs, which are always checked on the CPU with bellperson
//!   (`dualchain_prover::verify`): a false rejection costs time, never a verdict. A false
//!   acceptance needs the wrong product to equal the inverse of the batch's other factors
//!   after the final exponentiation, which a fault does not hit by chance. Still, the
//!   device's products are compared with the CPU's after the final exponentiation for every
//!   batch of the warm-up and a sample after it ([`CheckedMiller`]); at the first
//!   disagreement the CPU's product is used and the device is no longer used for
//!   verification.
//! - **At device open**, [`self_test`] runs fixed vectors through every backend (G1 and G2
//!   MSM with the scalars 0, 1 and −1 among random ones, NTT, coset NTT, Miller products)
//!   and compares each with the CPU; any difference keeps the device unused, with the
//!   reason in the log, `/health` and metrics.
//!
//! A disabled workload stays on the CPU until the node restarts (a device that was wrong
//! once is not trusted again without an operator looking at it).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use blstrs::{G1Affine, G2Affine, MillerLoopResult, Scalar as Fr};
use dualchain_prover::backend::{quotient_by_transforms, CpuBackend, MillerBackend, MsmBackend, NttBackend};
use dualchain_prover::ntt::root_of_unity;

use crate::testdata::{g1_points, g2_points};
use ff::{Field, PrimeField};
use pairing::MillerLoopResult as _;
use rand::SeedableRng;

/// What the device is used for, each disabled on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Proving,
    Verification,
}

impl Workload {
    pub const ALL: [Workload; 2] = [Workload::Proving, Workload::Verification];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Proving => "proving",
            Workload::Verification => "verification",
        }
    }
}

/// The device's standing: cross-checks made, disagreements found, workloads disabled.
#[derive(Debug, Default)]
pub struct GpuGuard {
    disabled: [AtomicBool; 2],
    pub cross_checks: AtomicU64,
    pub mismatches: AtomicU64,
    reason: Mutex<Option<String>>,
}

impl GpuGuard {
    pub fn disabled(&self, w: Workload) -> bool {
        self.disabled[w as usize].load(Ordering::Relaxed)
    }

    /// Stops using the device for `w`, and says why (logged once per workload).
    pub fn disable(&self, w: Workload, why: &str) {
        self.mismatches.fetch_add(1, Ordering::Relaxed);
        if !self.disabled[w as usize].swap(true, Ordering::Relaxed) {
            tracing::error!(
                workload = w.name(),
                why,
                "GPU answer differs from the CPU's: the device is no longer used for this work"
            );
            let mut reason = self.reason.lock().expect("not poisoned");
            let line = format!("{}: {why}", w.name());
            *reason = Some(match reason.take() {
                Some(r) => format!("{r}; {line}"),
                None => line,
            });
        }
    }

    /// Why workloads were disabled, if any was.
    pub fn reason(&self) -> Option<String> {
        self.reason.lock().expect("not poisoned").clone()
    }

    pub(crate) fn checked(&self) {
        self.cross_checks.fetch_add(1, Ordering::Relaxed);
    }
}

/// Batch verification's Miller products on a device, compared with the CPU's for the
/// first [`CheckedMiller::warmup`] calls and every [`CheckedMiller::sample_every`]-th
/// after; the CPU's product is what a checked call returns.
pub struct CheckedMiller {
    pub device: Arc<dyn MillerBackend>,
    pub guard: Arc<GpuGuard>,
    /// Calls with fewer pairs run on the CPU inside the device backend: nothing to check.
    pub device_min_pairs: usize,
    pub warmup: u64,
    /// 0: no checks after the warm-up.
    pub sample_every: u64,
    calls: AtomicU64,
}

/// Every call checked until this many device products agreed.
pub const WARMUP_CHECKS: u64 = 64;
/// After the warm-up, one call in this many is checked.
pub const SAMPLE_EVERY: u64 = 16;

impl CheckedMiller {
    pub fn new(device: Arc<dyn MillerBackend>, device_min_pairs: usize, guard: Arc<GpuGuard>) -> Self {
        Self {
            device,
            guard,
            device_min_pairs,
            warmup: WARMUP_CHECKS,
            sample_every: SAMPLE_EVERY,
            calls: AtomicU64::new(0),
        }
    }
}

impl MillerBackend for CheckedMiller {
    fn name(&self) -> &'static str {
        self.device.name()
    }

    fn miller_product(&self, p: &[G1Affine], q: &[G2Affine]) -> MillerLoopResult {
        if self.guard.disabled(Workload::Verification) || p.len() < self.device_min_pairs {
            return CpuBackend.miller_product(p, q);
        }
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let got = self.device.miller_product(p, q);
        let due = n < self.warmup || (self.sample_every > 0 && n % self.sample_every == 0);
        if !due {
            return got;
        }
        let want = CpuBackend.miller_product(p, q);
        self.guard.checked();
        if got.final_exponentiation() != want.final_exponentiation() {
            let why = format!("the Miller product of {} pairs differs from the CPU's", p.len());
            self.guard.disable(Workload::Verification, &why);
        }
        want
    }
}

/// Sizes of the self-test: above the device backends' CPU cut-offs, small enough to take
/// well under a second on the CPU side.
pub const SELF_TEST_MSM_POINTS: usize = 1 << 12;
pub const SELF_TEST_NTT_LEN: usize = 1 << 12;
pub const SELF_TEST_PAIRS: usize = 128;

/// Runs fixed vectors (a seeded generator, so every run and every node uses the same)
/// through the backends and compares each answer with the CPU's; the first difference is
/// the error.
pub fn self_test(msm: &dyn MsmBackend, ntt: &dyn NttBackend, miller: &dyn MillerBackend) -> Result<(), String> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0x5e1f_7e57);
    // Scalars with the edge cases a bucket method treats apart: 0, 1, −1, 2, r − 2.
    let mut scalars: Vec<Fr> = (0..SELF_TEST_MSM_POINTS).map(|_| Fr::random(&mut rng)).collect();
    for (i, s) in [Fr::ZERO, Fr::ONE, -Fr::ONE, Fr::from(2u64), -Fr::from(2u64)].into_iter().enumerate() {
        for k in 0..64 {
            scalars[i * 64 + k] = s;
        }
    }
    let g1: Vec<G1Affine> = g1_points(SELF_TEST_MSM_POINTS, 0x5e1f_0001);
    let g2: Vec<G2Affine> = g2_points(SELF_TEST_MSM_POINTS, 0x5e1f_0002);
    if msm.msm_g1(&g1, &scalars) != CpuBackend.msm_g1(&g1, &scalars) {
        return Err("G1 MSM differs from the CPU's".into());
    }
    if msm.msm_g2(&g2, &scalars) != CpuBackend.msm_g2(&g2, &scalars) {
        return Err("G2 MSM differs from the CPU's".into());
    }
    let omega = root_of_unity(SELF_TEST_NTT_LEN.trailing_zeros());
    let values: Vec<Fr> = (0..SELF_TEST_NTT_LEN).map(|_| Fr::random(&mut rng)).collect();
    let (mut got, mut want) = (values.clone(), values.clone());
    ntt.ntt(&mut got, omega);
    CpuBackend.ntt(&mut want, omega);
    if got != want {
        return Err("NTT differs from the CPU's".into());
    }
    let g = Fr::MULTIPLICATIVE_GENERATOR;
    let (mut got, mut want) = (values.clone(), values);
    ntt.coset_ntt(&mut got, omega, g);
    CpuBackend.coset_ntt(&mut want, omega, g);
    if got != want {
        return Err("coset NTT differs from the CPU's".into());
    }
    // The QAP's quotient, which the device runs whole: c = a·b on the domain, as a
    // satisfied witness gives.
    let m = SELF_TEST_NTT_LEN;
    let a: Vec<Fr> = (0..m).map(|_| Fr::random(&mut rng)).collect();
    let b: Vec<Fr> = (0..m).map(|_| Fr::random(&mut rng)).collect();
    let c: Vec<Fr> = a.iter().zip(&b).map(|(x, y)| x * y).collect();
    let want = quotient_by_transforms(&CpuBackend, a.clone(), b.clone(), c.clone(), m);
    // And the H MSM on h where the quotient left it, where the backend offers that.
    if let Some(q) = ntt.quotient_h_msm(&a, &b, &c, m, &g1[..m - 1]) {
        if q.h_acc != CpuBackend.msm_g1(&g1[..m - 1], &want) {
            return Err("the H MSM on the device's quotient differs from the CPU's".into());
        }
    }
    if ntt.quotient(a, b, c, m) != want {
        return Err("the QAP quotient differs from the CPU's".into());
    }
    let p: Vec<G1Affine> = g1[..SELF_TEST_PAIRS].to_vec();
    let q: Vec<G2Affine> = g2[..SELF_TEST_PAIRS].to_vec();
    let got = miller.miller_product(&p, &q).final_exponentiation();
    if got != CpuBackend.miller_product(&p, &q).final_exponentiation() {
        return Err("Miller product differs from the CPU's".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use blstrs::{G1Projective, G2Projective};
    use group::Group;

    use super::*;

    /// A backend that is wrong on purpose: one result changed.
    struct Faulty(&'static str);

    impl MsmBackend for Faulty {
        fn name(&self) -> &'static str {
            "faulty"
        }
        fn msm_g1(&self, b: &[G1Affine], s: &[Fr]) -> G1Projective {
            let r = CpuBackend.msm_g1(b, s);
            if self.0 == "g1" {
                r + G1Projective::generator()
            } else {
                r
            }
        }
        fn msm_g2(&self, b: &[G2Affine], s: &[Fr]) -> G2Projective {
            let r = CpuBackend.msm_g2(b, s);
            if self.0 == "g2" {
                r.double()
            } else {
                r
            }
        }
    }

    impl NttBackend for Faulty {
        fn name(&self) -> &'static str {
            "faulty"
        }
        fn ntt(&self, v: &mut [Fr], omega: Fr) {
            CpuBackend.ntt(v, omega);
            if self.0 == "ntt" {
                v[v.len() / 2] += Fr::ONE;
            }
        }
    }

    impl MillerBackend for Faulty {
        fn name(&self) -> &'static str {
            "faulty"
        }
        fn miller_product(&self, p: &[G1Affine], q: &[G2Affine]) -> MillerLoopResult {
            if self.0 == "miller" {
                // Drops the last pair, as a kernel that misses one thread would.
                CpuBackend.miller_product(&p[..p.len() - 1], &q[..q.len() - 1])
            } else {
                CpuBackend.miller_product(p, q)
            }
        }
    }

    #[test]
    fn the_self_test_passes_the_cpu_and_names_each_faulty_backend() {
        assert_eq!(self_test(&CpuBackend, &CpuBackend, &CpuBackend), Ok(()));
        let f = Faulty("g1");
        assert_eq!(self_test(&f, &CpuBackend, &CpuBackend), Err("G1 MSM differs from the CPU's".into()));
        let f = Faulty("g2");
        assert_eq!(self_test(&f, &CpuBackend, &CpuBackend), Err("G2 MSM differs from the CPU's".into()));
        let f = Faulty("ntt");
        assert_eq!(self_test(&CpuBackend, &f, &CpuBackend), Err("NTT differs from the CPU's".into()));
        let f = Faulty("miller");
        assert_eq!(self_test(&CpuBackend, &CpuBackend, &f), Err("Miller product differs from the CPU's".into()));
    }

    #[test]
    fn a_faulty_miller_product_is_replaced_by_the_cpus_and_disables_the_device() {
        let guard = Arc::new(GpuGuard::default());
        let checked = CheckedMiller::new(Arc::new(Faulty("miller")), 2, guard.clone());
        let seed = 1;
        let p = g1_points(4, seed);
        let q = g2_points(4, seed + 1);
        let want = CpuBackend.miller_product(&p, &q).final_exponentiation();
        assert_eq!(checked.miller_product(&p, &q).final_exponentiation(), want);
        assert!(guard.disabled(Workload::Verification));
        assert!(!guard.disabled(Workload::Proving));
        assert_eq!(guard.mismatches.load(Ordering::Relaxed), 1);
        assert!(guard.reason().unwrap().starts_with("verification: the Miller product of 4 pairs"));
        // From then on the CPU answers.
        assert_eq!(checked.miller_product(&p, &q).final_exponentiation(), want);
        assert_eq!(guard.cross_checks.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_sound_device_is_checked_through_the_warm_up_then_sampled() {
        let guard = Arc::new(GpuGuard::default());
        let mut checked = CheckedMiller::new(Arc::new(CpuBackend), 2, guard.clone());
        checked.warmup = 3;
        checked.sample_every = 4;
        let seed = 2;
        let p = g1_points(2, seed);
        let q = g2_points(2, seed + 1);
        for _ in 0..12 {
            checked.miller_product(&p, &q);
        }
        // Calls 0, 1, 2 (warm-up), then 4 and 8.
        assert_eq!(guard.cross_checks.load(Ordering::Relaxed), 5);
        assert!(!guard.disabled(Workload::Verification));
        // Below the device's cut-off nothing is checked (the CPU computed it).
        checked.miller_product(&p[..1], &q[..1]);
        assert_eq!(guard.cross_checks.load(Ordering::Relaxed), 5);
    }
}
