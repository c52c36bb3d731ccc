//! Phase 2, per circuit shape (BGM17 §4): bellperson's Groth16 parameters computed from the
//! phase-1 accumulator with `γ = δ = 1`, then updated in turn by participants who each
//! multiply `δ` by a secret `δ'` and divide the `L` and `H` queries by it.
//!
//! The starting parameters are a deterministic function of the accumulator and the
//! circuit (a group FFT into the Lagrange basis, then the QAP in the exponent: minutes for
//! large circuits, done once by whoever runs `ceremony start`). A verifier needs from the
//! transcript only each step's proof of knowledge and `[δ]₁` after it, and does not redo
//! that work: it checks each query against the accumulator by a random linear
//! combination, whose expected value is one MSM over the powers of τ with coefficients
//! from a field FFT ([`Transcript::verify`]). This check is this crate's, not BGM17's
//! (whose verifier recomputes the parameters); it rests on the linearity of the Lagrange
//! basis and on small-exponent batch verification.

use std::sync::Arc;

use bellpepper_core::{Circuit, ConstraintSystem, Index, LinearCombination, SynthesisError, Variable};
use bellperson::groth16::{Parameters, VerifyingKey};
use blstrs::{Bls12, G1Affine, G1Projective, G2Affine, G2Projective, Scalar as Fr};
use dualchain_crypto::encoding::{Reader, Writer};
use ff::Field;
use group::{prime::PrimeCurveAffine, Curve, Group};
use rand_core::RngCore;
use rayon::prelude::*;
use sha2::Digest;

use super::phase1::{check_name, nonzero, Accumulator, Heads, NAME_MAX, STEPS_MAX};
use super::{context, same_ratio, weights, CeremonyError, Knowledge, Msm};
use crate::ntt::{ntt_in_place, root_of_unity};

const TRANSCRIPT_MAGIC: &[u8; 8] = b"DCPH2TR1";

/// A circuit's R1CS matrices: per constraint, the sparse A, B and C rows.
#[derive(Default)]
pub struct Matrices {
    pub inputs: usize,
    pub aux: usize,
    pub a: Vec<Vec<(Index, Fr)>>,
    pub b: Vec<Vec<(Index, Fr)>>,
    pub c: Vec<Vec<(Index, Fr)>>,
}

fn row(lc: &LinearCombination<Fr>) -> Vec<(Index, Fr)> {
    lc.iter_inputs()
        .map(|(i, c)| (Index::Input(*i), *c))
        .chain(lc.iter_aux().map(|(i, c)| (Index::Aux(*i), *c)))
        .filter(|(_, c)| !c.is_zero_vartime())
        .collect()
}

impl ConstraintSystem<Fr> for Matrices {
    type Root = Self;

    fn new() -> Self {
        Matrices { inputs: 1, ..Default::default() }
    }

    fn alloc<F, A, AR>(&mut self, _: A, _: F) -> Result<Variable, SynthesisError>
    where
        F: FnOnce() -> Result<Fr, SynthesisError>,
        A: FnOnce() -> AR,
        AR: Into<String>,
    {
        self.aux += 1;
        Ok(Variable::new_unchecked(Index::Aux(self.aux - 1)))
    }

    fn alloc_input<F, A, AR>(&mut self, _: A, _: F) -> Result<Variable, SynthesisError>
    where
        F: FnOnce() -> Result<Fr, SynthesisError>,
        A: FnOnce() -> AR,
        AR: Into<String>,
    {
        self.inputs += 1;
        Ok(Variable::new_unchecked(Index::Input(self.inputs - 1)))
    }

    fn enforce<A, AR, LA, LB, LC>(&mut self, _: A, a: LA, b: LB, c: LC)
    where
        A: FnOnce() -> AR,
        AR: Into<String>,
        LA: FnOnce(LinearCombination<Fr>) -> LinearCombination<Fr>,
        LB: FnOnce(LinearCombination<Fr>) -> LinearCombination<Fr>,
        LC: FnOnce(LinearCombination<Fr>) -> LinearCombination<Fr>,
    {
        self.a.push(row(&a(LinearCombination::zero())));
        self.b.push(row(&b(LinearCombination::zero())));
        self.c.push(row(&c(LinearCombination::zero())));
    }

    fn push_namespace<NR, N>(&mut self, _: N)
    where
        NR: Into<String>,
        N: FnOnce() -> NR,
    {
    }
    fn pop_namespace(&mut self) {}
    fn get_root(&mut self) -> &mut Self::Root {
        self
    }
}

impl Matrices {
    /// The circuit's matrices with bellperson's `input_i · 0 = 0` constraints appended,
    /// which put every input in A (the prover's [`crate::r1cs::WitnessCs::finish`]).
    pub fn of<C: Circuit<Fr>>(circuit: C) -> Result<Self, CeremonyError> {
        let mut cs = Matrices::new();
        circuit.synthesize(&mut cs)?;
        for i in 0..cs.inputs {
            cs.a.push(vec![(Index::Input(i), Fr::ONE)]);
            cs.b.push(Vec::new());
            cs.c.push(Vec::new());
        }
        Ok(cs)
    }

    /// The QAP domain: the constraints rounded up to a power of two.
    pub fn domain(&self) -> usize {
        self.a.len().next_power_of_two().max(2)
    }
}

/// In-place inverse FFT over a group: `v_j ← (1/m) Σ_i ω^{−ij} v_i`, turning `[τ^i]` into
/// the Lagrange basis `[L_j(τ)]` of the domain of `m = v.len()` points.
fn group_ifft<G: Group<Scalar = Fr> + Send + Sync>(v: &mut [G]) {
    let m = v.len();
    let log_m = m.trailing_zeros();
    let omega_inv = root_of_unity(log_m).invert().unwrap();
    for i in 0..m {
        let j = i.reverse_bits() >> (usize::BITS - log_m);
        if i < j {
            v.swap(i, j);
        }
    }
    // ω^{-k} for k < m/2; a stage of half-length h uses every (m/2h)-th.
    let mut table = Vec::with_capacity(m / 2);
    let mut w = Fr::ONE;
    for _ in 0..m / 2 {
        table.push(w);
        w *= omega_inv;
    }
    let mut half = 1;
    while half < m {
        let stride = m / (2 * half);
        v.par_chunks_mut(2 * half).for_each(|chunk| {
            let (lo, hi) = chunk.split_at_mut(half);
            lo.par_iter_mut().zip(hi.par_iter_mut()).enumerate().for_each(|(k, (a, b))| {
                let t = if k == 0 { *b } else { *b * table[k * stride] };
                *b = *a - t;
                *a += t;
            });
        });
        half *= 2;
    }
    let m_inv = Fr::from(m as u64).invert().unwrap();
    v.par_iter_mut().for_each(|p| *p *= m_inv);
}

fn lagrange_g1(powers: &[G1Affine], m: usize) -> Vec<G1Projective> {
    let mut v: Vec<G1Projective> = powers[..m].par_iter().map(|p| p.to_curve()).collect();
    group_ifft(&mut v);
    v
}

/// A variable's position when inputs come first, then aux.
fn var(index: &Index, inputs: usize) -> usize {
    match index {
        Index::Input(i) => *i,
        Index::Aux(i) => inputs + *i,
    }
}

/// The matrix by variable (inputs first, then aux): for each, the constraints it occurs in
/// with its coefficient.
fn columns(rows: &[Vec<(Index, Fr)>], inputs: usize, aux: usize) -> Vec<Vec<(usize, Fr)>> {
    let mut cols = vec![Vec::new(); inputs + aux];
    for (j, row) in rows.iter().enumerate() {
        for (index, coeff) in row {
            cols[var(index, inputs)].push((j, *coeff));
        }
    }
    cols
}

/// `Σ_j coeff_j · basis_j` per variable, in parallel over the variables (coefficients ±1,
/// common in R1CS, cost an addition, not a scalar multiplication).
fn evaluate<G: Group<Scalar = Fr> + Send + Sync>(cols: &[Vec<(usize, Fr)>], basis: &[G]) -> Vec<G> {
    let minus_one = -Fr::ONE;
    cols.par_iter()
        .map(|col| {
            col.iter().fold(G::identity(), |acc, (j, coeff)| {
                if *coeff == Fr::ONE {
                    acc + basis[*j]
                } else if *coeff == minus_one {
                    acc - basis[*j]
                } else {
                    acc + basis[*j] * coeff
                }
            })
        })
        .collect()
}

/// The transposed product `c_q = Σ_v r_v·M[q][v]`: over the constraints, the coefficients
/// of the combination `Σ_v r_v·(column v)` of one matrix.
fn combine(rows: &[Vec<(Index, Fr)>], inputs: usize, r: &[Fr]) -> Vec<Fr> {
    rows.par_iter().map(|row| row.iter().map(|(index, coeff)| r[var(index, inputs)] * coeff).sum()).collect()
}

/// Coefficients `c` over the Lagrange basis of the domain of `n` points, turned into
/// coefficients over the powers: `Σ_q c_q·L_q(τ) = Σ_i d_i·τ^i` with `d` the inverse FFT
/// of `c`. (The Lagrange basis is the inverse group FFT of the powers, and the FFT matrix
/// is symmetric.) This lets a verifier check a query against the accumulator with one
/// field FFT and one MSM, where computing it takes a group FFT.
fn to_powers(mut c: Vec<Fr>, n: usize) -> Vec<Fr> {
    c.resize(n, Fr::ZERO);
    let omega_inv = root_of_unity(n.trailing_zeros()).invert().unwrap();
    ntt_in_place(&mut c, omega_inv);
    let n_inv = Fr::from(n as u64).invert().unwrap();
    c.par_iter_mut().for_each(|x| *x *= n_inv);
    c
}

/// Which variables (inputs first, then aux) the A and B queries keep, in their order: the
/// prover's densities keep every input in A and otherwise the variables that occur.
struct Layout {
    a: Vec<usize>,
    b: Vec<usize>,
}

impl Layout {
    fn of(m: &Matrices) -> Self {
        let (inputs, aux) = (m.inputs, m.aux);
        let (_, a_aux) = occurs(&m.a, inputs, aux);
        let (b_in, b_aux) = occurs(&m.b, inputs, aux);
        let kept = |d: &[bool], offset: usize| -> Vec<usize> {
            d.iter().enumerate().filter(|(_, d)| **d).map(|(i, _)| offset + i).collect()
        };
        let mut a: Vec<usize> = (0..inputs).collect();
        a.extend(kept(&a_aux, inputs));
        let mut b = kept(&b_in, 0);
        b.extend(kept(&b_aux, inputs));
        Layout { a, b }
    }
}

fn affine<G: Curve + Send + Sync>(v: &[G]) -> Vec<G::AffineRepr>
where
    G::AffineRepr: Default + Clone + Send,
{
    let mut out = vec![G::AffineRepr::default(); v.len()];
    G::batch_normalize(v, &mut out);
    out
}

/// Which variables occur in some row (the parameters keep only those, as the prover's
/// densities expect).
fn occurs(rows: &[Vec<(Index, Fr)>], inputs: usize, aux: usize) -> (Vec<bool>, Vec<bool>) {
    let (mut i_d, mut a_d) = (vec![false; inputs], vec![false; aux]);
    for (index, _) in rows.iter().flatten() {
        match index {
            Index::Input(i) => i_d[*i] = true,
            Index::Aux(i) => a_d[*i] = true,
        }
    }
    (i_d, a_d)
}

/// The accumulator's Lagrange form over the domain of `n` points: `[L_j(τ)]₁`,
/// `[αL_j(τ)]₁`, `[βL_j(τ)]₁` and `[L_j(τ)]₂`, four group FFTs (most of phase 2's start).
/// Every shape with this domain starts from the same bases, so `ceremony start` computes
/// them once per domain size.
pub struct Lagrange {
    n: usize,
    /// Which accumulator the bases are of.
    heads: Heads,
    g1: Vec<G1Projective>,
    alpha: Vec<G1Projective>,
    beta: Vec<G1Projective>,
    g2: Vec<G2Projective>,
}

impl Lagrange {
    pub fn of(acc: &Accumulator, n: usize) -> Result<Self, CeremonyError> {
        if !n.is_power_of_two() || n < 2 || n > acc.degree() {
            return Err(CeremonyError::Invalid(format!(
                "the circuit needs a domain of {n} points; the accumulator serves {}",
                acc.degree()
            )));
        }
        let mut g2: Vec<G2Projective> = acc.tau_g2[..n].par_iter().map(|p| p.to_curve()).collect();
        group_ifft(&mut g2);
        Ok(Lagrange {
            n,
            heads: acc.heads(),
            g1: lagrange_g1(&acc.tau_g1, n),
            alpha: lagrange_g1(&acc.alpha_tau_g1, n),
            beta: lagrange_g1(&acc.beta_tau_g1, n),
            g2,
        })
    }

    /// The domain size.
    pub fn domain(&self) -> usize {
        self.n
    }
}

/// The starting parameters (`γ = δ = 1`) of a circuit from a phase-1 accumulator.
pub fn initial(acc: &Accumulator, m: &Matrices) -> Result<Parameters<Bls12>, CeremonyError> {
    initial_from(acc, &Lagrange::of(acc, m.domain())?, m)
}

/// [`initial`] from the accumulator's Lagrange form at the circuit's domain.
pub fn initial_from(acc: &Accumulator, bases: &Lagrange, m: &Matrices) -> Result<Parameters<Bls12>, CeremonyError> {
    let n = m.domain();
    if bases.n != n || bases.heads != acc.heads() {
        return Err(CeremonyError::Invalid(format!(
            "the Lagrange bases are of another accumulator or domain ({} points; the circuit needs {n})",
            bases.n
        )));
    }
    let (l_g1, l_alpha, l_beta, l_g2) = (&bases.g1, &bases.alpha, &bases.beta, &bases.g2);

    let (inputs, aux) = (m.inputs, m.aux);
    let (ca, cb, cc) = (columns(&m.a, inputs, aux), columns(&m.b, inputs, aux), columns(&m.c, inputs, aux));
    let a = evaluate(&ca, l_g1);
    let b1 = evaluate(&cb, l_g1);
    let b2 = evaluate(&cb, l_g2);
    // β·A_i + α·B_i + C_i, from [βL_j], [αL_j] and [L_j].
    let (ba, ab, c) = (evaluate(&ca, l_beta), evaluate(&cb, l_alpha), evaluate(&cc, l_g1));
    let num: Vec<G1Projective> = (0..inputs + aux).into_par_iter().map(|i| ba[i] + ab[i] + c[i]).collect();
    let (ic, l) = num.split_at(inputs);
    let layout = Layout::of(m);
    let pick = |v: &[G1Projective], kept: &[usize]| affine(&kept.iter().map(|&i| v[i]).collect::<Vec<_>>());
    // H: [τ^i·(τ^n − 1)] = [τ^{i+n}] − [τ^i] for i < n − 1.
    let h: Vec<G1Projective> =
        (0..n - 1).into_par_iter().map(|i| acc.tau_g1[i + n].to_curve() - acc.tau_g1[i].to_curve()).collect();

    let vk = VerifyingKey::<Bls12> {
        alpha_g1: acc.alpha_tau_g1[0],
        beta_g1: acc.beta_tau_g1[0],
        beta_g2: acc.beta_g2,
        gamma_g2: G2Affine::generator(),
        delta_g1: G1Affine::generator(),
        delta_g2: G2Affine::generator(),
        ic: affine(ic),
    };
    Ok(Parameters {
        vk,
        h: Arc::new(affine(&h)),
        l: Arc::new(affine(l)),
        a: Arc::new(pick(&a, &layout.a)),
        b_g1: Arc::new(pick(&b1, &layout.b)),
        b_g2: Arc::new(affine(&layout.b.iter().map(|&i| b2[i]).collect::<Vec<_>>())),
    })
}

/// One participant's update of `δ`: a proof of knowledge of `δ'` and `[δ]₁` after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub who: String,
    pub delta: Knowledge,
    pub delta_after: G1Affine,
}

impl Step {
    /// SHA-256 of the step's encoding: what a participant notes when it contributes and
    /// finds again in [`Transcript::verify`]'s output.
    pub fn digest(&self) -> [u8; 32] {
        let mut w = Writer::with_capacity(256);
        self.encode(&mut w);
        sha2::Sha256::digest(w.into_bytes()).into()
    }

    fn encode(&self, w: &mut Writer) {
        w.str(&self.who);
        self.delta.encode(w);
        w.g1(&self.delta_after);
    }
}

/// The phase-2 contributions of one circuit shape, bound to its name and circuit digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    pub shape: String,
    pub circuit_digest: [u8; 32],
    pub steps: Vec<Step>,
}

/// Multiplies every point by `x`, in parallel.
fn scale<P: PrimeCurveAffine + Send + Sync>(v: &mut [P], x: Fr)
where
    P::Curve: Group<Scalar = Fr> + Curve<AffineRepr = P> + Send + Sync,
{
    super::scale_by_powers(v, x, Fr::ONE);
}

impl Transcript {
    pub fn new(shape: &str, circuit_digest: [u8; 32]) -> Self {
        Transcript { shape: shape.into(), circuit_digest, steps: Vec::new() }
    }

    fn context(&self, k: usize, who: &str) -> [u8; 32] {
        let mut earlier = Writer::with_capacity(512);
        for s in &self.steps[..k] {
            s.encode(&mut earlier);
        }
        context(
            b"dualchain phase 2",
            &[self.shape.as_bytes(), &self.circuit_digest, &earlier.into_bytes(), who.as_bytes()],
        )
    }

    /// `who` multiplies `δ` by a fresh secret (dropped on return) and appends the step.
    pub fn contribute(
        &mut self,
        params: &mut Parameters<Bls12>,
        who: &str,
        rng: &mut impl RngCore,
    ) -> Result<(), CeremonyError> {
        self.contribute_secret(params, who, nonzero(rng), rng)
    }

    /// [`Transcript::contribute`] with a secret `δ'` the caller drew and must destroy
    /// afterwards; 0 is refused.
    pub fn contribute_secret(
        &mut self,
        params: &mut Parameters<Bls12>,
        who: &str,
        d: Fr,
        rng: &mut impl RngCore,
    ) -> Result<(), CeremonyError> {
        check_name(who)?;
        if self.steps.len() >= STEPS_MAX {
            return Err(CeremonyError::Invalid(format!("a transcript holds at most {STEPS_MAX} contributions")));
        }
        let before = self.steps.last().map(|s| s.delta_after).unwrap_or_else(G1Affine::generator);
        if params.vk.delta_g1 != before {
            return Err(CeremonyError::Invalid("the parameters are not the transcript's latest".into()));
        }
        let Some(d_inv) = Option::<Fr>::from(d.invert()) else {
            return Err(CeremonyError::Invalid("a secret of 0 would erase the parameters".into()));
        };
        let delta = Knowledge::prove(d, &self.context(self.steps.len(), who), rng);
        params.vk.delta_g1 = (params.vk.delta_g1 * d).to_affine();
        params.vk.delta_g2 = (params.vk.delta_g2 * d).to_affine();
        let mut l = params.l.as_ref().clone();
        scale(&mut l, d_inv);
        params.l = Arc::new(l);
        let mut h = params.h.as_ref().clone();
        scale(&mut h, d_inv);
        params.h = Arc::new(h);
        self.steps.push(Step { who: who.into(), delta, delta_after: params.vk.delta_g1 });
        Ok(())
    }

    /// Checks `params` against the circuit's QAP at the accumulator's τ (each query by a
    /// random linear combination, without recomputing the starting parameters) and every
    /// step's update of `δ`. Returns each step's digest.
    pub fn verify(
        &self,
        acc: &Accumulator,
        matrices: &Matrices,
        params: &Parameters<Bls12>,
        rng: &mut impl RngCore,
    ) -> Result<Vec<[u8; 32]>, CeremonyError> {
        if self.steps.is_empty() {
            return Err(CeremonyError::Invalid(format!("{}: no contribution: δ is 1", self.shape)));
        }
        let n = matrices.domain();
        if n > acc.degree() {
            return Err(CeremonyError::Invalid(format!(
                "the circuit needs a domain of {n} points; the accumulator serves {}",
                acc.degree()
            )));
        }
        let invalid = |what: &str| Err(CeremonyError::Invalid(format!("{}: {what}", self.shape)));
        let vk = &params.vk;
        if (vk.alpha_g1, vk.beta_g1, vk.beta_g2, vk.gamma_g2)
            != (acc.alpha_tau_g1[0], acc.beta_tau_g1[0], acc.beta_g2, G2Affine::generator())
        {
            return invalid("α, β or γ differ from the ones the accumulator gives");
        }
        let (inputs, aux) = (matrices.inputs, matrices.aux);
        let layout = Layout::of(matrices);
        if vk.ic.len() != inputs
            || params.a.len() != layout.a.len()
            || params.b_g1.len() != layout.b.len()
            || params.b_g2.len() != layout.b.len()
        {
            return invalid("the input, A or B query has the wrong length");
        }
        if params.l.len() != aux || params.h.len() != n - 1 {
            return invalid("the L or H query has the wrong length");
        }
        let mut before = G1Affine::generator();
        let mut digests = Vec::with_capacity(self.steps.len());
        for (k, s) in self.steps.iter().enumerate() {
            let fail = |reason: &str| CeremonyError::Step { step: k, who: s.who.clone(), reason: reason.into() };
            check_name(&s.who).map_err(|_| fail("the participant's name is empty or too long"))?;
            let r =
                s.delta.check(&self.context(k, &s.who)).ok_or_else(|| fail("the proof of knowledge of δ' fails"))?;
            if !same_ratio((before, s.delta_after), (r, s.delta.r_x)) {
                return Err(fail("[δ]₁ is not the earlier one times the proven δ'"));
            }
            digests.push(s.digest());
            before = s.delta_after;
        }
        if vk.delta_g1 != before {
            return invalid("[δ]₁ is not the one the last contribution made");
        }
        let (g1, g2) = (G1Affine::generator(), G2Affine::generator());
        if !same_ratio((g1, vk.delta_g1), (g2, vk.delta_g2)) {
            return invalid("[δ]₂ does not match [δ]₁");
        }

        // Every query against the circuit's QAP at the accumulator's τ, each by a random
        // linear combination (Bellare, Garay, Rabin, "Fast batch verification", 1998): a
        // wrong element passes with probability 1/r. The expected side is one MSM over the
        // accumulator's powers (`to_powers`), so no group FFT is recomputed.
        let powers = |g: &[G1Affine]| g[..n].to_vec();
        let bases3: Vec<G1Affine> = [powers(&acc.tau_g1), powers(&acc.alpha_tau_g1), powers(&acc.beta_tau_g1)].concat();
        // Σ_i (β·u_i + α·v_i + w_i)(τ) weighted by r: over [τ^j], [ατ^j] and [βτ^j].
        let numerator = |r: &[Fr]| -> G1Projective {
            let (w, v, u) =
                (combine(&matrices.c, inputs, r), combine(&matrices.b, inputs, r), combine(&matrices.a, inputs, r));
            G1Affine::msm(&bases3, &[to_powers(w, n), to_powers(v, n), to_powers(u, n)].concat())
        };
        let pick = |r: &[Fr], kept: &[usize]| -> Vec<Fr> { kept.iter().map(|&i| r[i]).collect() };
        let (r_a, r_b) = (weights(inputs + aux, rng), weights(inputs + aux, rng));
        let mut r_ic = weights(inputs, rng);
        r_ic.resize(inputs + aux, Fr::ZERO);
        let v_b = combine(&matrices.b, inputs, &r_b);
        // A, B in G1 and the input query (γ = 1), in one equation.
        let got: Vec<G1Affine> = [&params.a[..], &params.b_g1[..], &vk.ic[..]].concat();
        let got =
            G1Affine::msm(&got, &[pick(&r_a, &layout.a), pick(&r_b, &layout.b), r_ic[..inputs].to_vec()].concat());
        let mut u_a = combine(&matrices.a, inputs, &r_a);
        u_a.iter_mut().zip(&v_b).for_each(|(x, y)| *x += y);
        let want = G1Affine::msm(&acc.tau_g1[..n], &to_powers(u_a, n)) + numerator(&r_ic);
        if got != want {
            return invalid("the input, A or B queries differ from the circuit's at the accumulator's τ");
        }
        let got = G2Affine::msm(&params.b_g2, &pick(&r_b, &layout.b));
        if got != G2Affine::msm(&acc.tau_g2[..n], &to_powers(v_b, n)) {
            return invalid("the B query in G2 differs from the circuit's at the accumulator's τ");
        }
        // L and H are the starting ones divided by δ: e(Σρ·new, [δ]₂) = e(Σρ·start, g2).
        if aux > 0 {
            let mut r_l = vec![Fr::ZERO; inputs];
            r_l.extend(weights(aux, rng));
            let (new, start) = (G1Affine::msm(&params.l, &r_l[inputs..]), numerator(&r_l));
            if !same_ratio((new.to_affine(), start.to_affine()), (g2, vk.delta_g2)) {
                return invalid("the L query is not the circuit's divided by δ");
            }
        }
        // H_i = [τ^i·(τ^n − 1)] = [τ^{i+n}] − [τ^i].
        let rho = weights(n - 1, rng);
        let start = G1Affine::msm(&acc.tau_g1[n..2 * n - 1], &rho) - G1Affine::msm(&acc.tau_g1[..n - 1], &rho);
        if !same_ratio((G1Affine::msm(&params.h, &rho).to_affine(), start.to_affine()), (g2, vk.delta_g2)) {
            return invalid("the H query is not the circuit's divided by δ");
        }
        Ok(digests)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(128 + 300 * self.steps.len());
        w.fixed(TRANSCRIPT_MAGIC);
        w.str(&self.shape);
        w.fixed(&self.circuit_digest);
        w.u32(self.steps.len() as u32);
        for s in &self.steps {
            s.encode(&mut w);
        }
        w.into_bytes()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CeremonyError> {
        let mut r = Reader::new(bytes, "phase-2 transcript");
        if r.array::<8>()? != *TRANSCRIPT_MAGIC {
            return Err(CeremonyError::Invalid("not a dualchain phase-2 transcript".into()));
        }
        let shape = r.str("shape", 255)?.to_owned();
        let circuit_digest = r.array::<32>()?;
        let n = r.count_sized("contributions", STEPS_MAX, 240)?;
        let mut steps = Vec::with_capacity(n);
        for _ in 0..n {
            let who = r.str("participant", NAME_MAX)?.to_owned();
            steps.push(Step { who, delta: Knowledge::decode(&mut r)?, delta_after: r.g1("[δ]₁")? });
        }
        r.finish()?;
        Ok(Transcript { shape, circuit_digest, steps })
    }
}
