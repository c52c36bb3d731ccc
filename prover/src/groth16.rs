//! The Groth16 proving pipeline (Groth, "On the Size of Pairing-based Non-interactive
//! Arguments", EUROCRYPT 2016, §3.2), with its heavy kernels behind [`MsmBackend`] and
//! [`NttBackend`]:
//!
//! 1. witness synthesis into `z = (1, x, w)` and the evaluations `a_i = ⟨A_i, z⟩`,
//!    `b_i = ⟨B_i, z⟩`, `c_i = ⟨C_i, z⟩` of every constraint (a witness that violates a
//!    constraint is refused here, naming the constraint);
//! 2. QAP: inverse NTT of a, b, c to coefficients, NTT on the coset `g·⟨ω⟩`, pointwise
//!    `(a·b − c)/Z(g·ω^i)` with `Z(X) = X^m − 1` constant on the coset, inverse coset NTT
//!    to the m − 1 coefficients of `h(X)`;
//! 3. MSMs: `H = Σ h_i·[τ^i Z(τ)/δ]₁`, `L = Σ w_j·[(βA_j+αB_j+C_j)(τ)/δ]₁`,
//!    `Σ z_j·[A_j(τ)]₁`, `Σ z_j·[B_j(τ)]₁` and `Σ z_j·[B_j(τ)]₂` over bellperson's
//!    parameter layout (query entries of variables that never occur are absent); a
//!    device backend may hand the G2 MSM to the CPU, beside its G1 MSMs;
//! 4. randomisation: `A = α + Σ z_j A_j + rδ`, `B = β + Σ z_j B_j + sδ`,
//!    `C = H + L + s·A + r·B₁ − rs·δ`.
//!
//! The proofs are standard Groth16 proofs for bellperson's parameters and verify with its
//! verifier; with the same `r, s` they are identical to bellperson's own.

use std::time::{Duration, Instant};

use bellpepper_core::{Circuit, ConstraintSystem};
use bellperson::groth16::Proof;
use blstrs::{Bls12, G1Projective, G2Projective, Scalar as Fr};
use ff::Field;
use group::Curve;
use rand_core::RngCore;

use crate::backend::{CpuBackend, MsmBackend, NttBackend};
use crate::error::ProverError;
use crate::params::ProvingKey;
use crate::r1cs::WitnessCs;

/// Where one proof's time went.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProofTimings {
    pub synthesis: Duration,
    pub ntt: Duration,
    pub msm_h: Duration,
    pub msm_l: Duration,
    pub msm_a: Duration,
    pub msm_b_g1: Duration,
    /// Overlaps the four G1 MSMs' times when the backend hands G2 to the CPU.
    pub msm_b_g2: Duration,
    pub total: Duration,
}

/// The prover: a pair of backends. Parameters stay resident in the [`ProvingKey`].
pub struct Prover<'a> {
    pub msm: &'a dyn MsmBackend,
    pub ntt: &'a dyn NttBackend,
}

impl Default for Prover<'static> {
    fn default() -> Self {
        Self { msm: &CpuBackend, ntt: &CpuBackend }
    }
}

/// A synthesized instance, ready for the QAP and MSM stages.
pub struct Synthesized {
    cs: WitnessCs,
    synthesis: Duration,
}

impl Synthesized {
    /// The statement's public inputs (without the leading one), as a verifier takes them.
    pub fn public_inputs(&self) -> &[Fr] {
        &self.cs.inputs[1..]
    }
}

/// Stage 2's result: h, or, where the NTT backend ran the H MSM on h itself, that MSM and
/// its time.
enum Quotient {
    Values(Vec<Fr>),
    HMsm(G1Projective, Duration),
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let v = f();
    (v, start.elapsed())
}

impl Prover<'_> {
    /// Stage 1: synthesis, with the witness checked against every constraint.
    pub fn synthesize<C: Circuit<Fr>>(pk: &ProvingKey, circuit: C) -> Result<Synthesized, ProverError> {
        let start = Instant::now();
        let mut cs = WitnessCs::new();
        circuit.synthesize(&mut cs)?;
        if let Some(index) = cs.first_unsatisfied {
            return Err(ProverError::Unsatisfied { shape: pk.shape.name().into(), index });
        }
        let shape = &pk.circuit;
        if cs.inputs.len() != shape.inputs || cs.aux.len() != shape.aux || cs.a.len() != shape.constraints {
            return Err(ProverError::ShapeMismatch {
                expected: format!("{} ({} constraints)", pk.shape.name(), shape.constraints),
                found: format!(
                    "a circuit with {} constraints, {} inputs, {} aux",
                    cs.a.len(),
                    cs.inputs.len(),
                    cs.aux.len()
                ),
            });
        }
        cs.finish();
        Ok(Synthesized { cs, synthesis: start.elapsed() })
    }

    /// Proves one statement with fresh randomness.
    pub fn prove<C: Circuit<Fr>>(
        &self,
        pk: &ProvingKey,
        circuit: C,
        rng: &mut impl RngCore,
    ) -> Result<(Proof<Bls12>, ProofTimings), ProverError> {
        let (r, s) = (Fr::random(&mut *rng), Fr::random(&mut *rng));
        self.prove_with(pk, Self::synthesize(pk, circuit)?, r, s)
    }

    /// Proves many statements against one resident parameter set, as a pipeline: a
    /// second thread synthesizes the next witnesses (up to two ahead) while this one runs
    /// the QAP and MSM stages of the current proof, so CPU synthesis overlaps the heavy
    /// kernels (on a GPU backend, the device's work). Proofs come back in input order; the
    /// first failure stops the pipeline and is returned.
    pub fn prove_batch<C: Circuit<Fr> + Send>(
        &self,
        pk: &ProvingKey,
        circuits: Vec<C>,
        rng: &mut impl RngCore,
    ) -> Result<Vec<(Proof<Bls12>, ProofTimings)>, ProverError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Synthesized, ProverError>>(2);
        std::thread::scope(|scope| {
            scope.spawn(move || {
                for c in circuits {
                    let w = Self::synthesize(pk, c);
                    let failed = w.is_err();
                    // A closed channel means the consumer stopped on an error.
                    if tx.send(w).is_err() || failed {
                        break;
                    }
                }
            });
            let mut out = Vec::new();
            for w in rx {
                let (r, s) = (Fr::random(&mut *rng), Fr::random(&mut *rng));
                out.push(self.prove_with(pk, w?, r, s)?);
            }
            Ok(out)
        })
    }

    /// Stages 2–4 with explicit randomisers (tests compare against bellperson with them).
    pub fn prove_with(
        &self,
        pk: &ProvingKey,
        w: Synthesized,
        r: Fr,
        s: Fr,
    ) -> Result<(Proof<Bls12>, ProofTimings), ProverError> {
        let total = Instant::now();
        let params = &pk.params;
        let vk = &params.vk;
        let cs = w.cs;
        let mut t = ProofTimings { synthesis: w.synthesis, ..Default::default() };
        let mismatch = |what: &str| ProverError::ShapeMismatch {
            expected: format!("parameters for {}", pk.shape.name()),
            found: format!("parameters whose {what} does not match the circuit"),
        };

        // Stage 2: the QAP.
        let m = cs.a.len().next_power_of_two();
        if params.h.len() + 1 != m {
            return Err(mismatch("H query"));
        }
        // A backend may run the H MSM of stage 3 on h where the quotient left it.
        let (quotient, ntt_time) = match self.ntt.quotient_h_msm(&cs.a, &cs.b, &cs.c, m, &params.h) {
            Some(q) => (Quotient::HMsm(q.h_acc, q.msm), q.ntt),
            None => {
                let (h, time) = timed(|| self.ntt.quotient(cs.a, cs.b, cs.c, m));
                (Quotient::Values(h), time)
            }
        };
        t.ntt = ntt_time;

        // Stage 3: the MSMs.
        let density = &cs.density;
        let a_aux: Vec<Fr> = cs.aux.iter().zip(&density.a_aux).filter(|(_, d)| **d).map(|(v, _)| *v).collect();
        let b_scalars: Vec<Fr> = cs
            .inputs
            .iter()
            .zip(&density.b_input)
            .chain(cs.aux.iter().zip(&density.b_aux))
            .filter(|(_, d)| **d)
            .map(|(v, _)| *v)
            .collect();
        let n_in = cs.inputs.len();
        if params.a.len() != n_in + a_aux.len()
            || params.b_g1.len() != b_scalars.len()
            || params.b_g2.len() != b_scalars.len()
            || params.l.len() != cs.aux.len()
        {
            return Err(mismatch("A, B or L query"));
        }
        // A device backend may hand the G2 MSM to the CPU ([`MsmBackend::g2_on_cpu`]),
        // which then runs it beside the device's G1 MSMs. Otherwise the MSMs run one after
        // the other: on the CPU backend each already takes every core.
        let g1_msms = || {
            let (h_acc, h_time) = match &quotient {
                Quotient::HMsm(acc, time) => (*acc, *time),
                Quotient::Values(h) => timed(|| self.msm.msm_g1(&params.h, h)),
            };
            let (l_acc, l_time) = timed(|| self.msm.msm_g1(&params.l, &cs.aux));
            let (a_acc, a_time) =
                timed(|| self.msm.msm_g1(&params.a[..n_in], &cs.inputs) + self.msm.msm_g1(&params.a[n_in..], &a_aux));
            let (b1_acc, b1_time) = timed(|| self.msm.msm_g1(&params.b_g1, &b_scalars));
            ((h_acc, l_acc, a_acc, b1_acc), (h_time, l_time, a_time, b1_time))
        };
        let ((g1_sums, g1_times), (b2_acc, b2_time)) = if self.msm.g2_on_cpu(b_scalars.len()) {
            rayon::join(g1_msms, || timed(|| CpuBackend.msm_g2(&params.b_g2, &b_scalars)))
        } else {
            let g1 = g1_msms();
            (g1, timed(|| self.msm.msm_g2(&params.b_g2, &b_scalars)))
        };
        let (h_acc, l_acc, a_acc, b1_acc) = g1_sums;
        (t.msm_h, t.msm_l, t.msm_a, t.msm_b_g1) = g1_times;
        t.msm_b_g2 = b2_time;

        // Stage 4: randomisation.
        let g_a = G1Projective::from(vk.alpha_g1) + a_acc + G1Projective::from(vk.delta_g1) * r;
        let g_b2 = G2Projective::from(vk.beta_g2) + b2_acc + G2Projective::from(vk.delta_g2) * s;
        let g_b1 = G1Projective::from(vk.beta_g1) + b1_acc + G1Projective::from(vk.delta_g1) * s;
        let g_c = h_acc + l_acc + g_a * s + g_b1 * r - G1Projective::from(vk.delta_g1) * (r * s);
        t.total = total.elapsed() + t.synthesis;
        Ok((Proof { a: g_a.to_affine(), b: g_b2.to_affine(), c: g_c.to_affine() }, t))
    }
}
