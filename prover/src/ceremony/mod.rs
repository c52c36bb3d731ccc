//! A multi-party Groth16 setup: no one holds the trapdoor.
//!
//! Bowe, Gabizon and Miers, "Scalable Multi-party Computation for zk-SNARK Parameters in
//! the Random Beacon Model" (ePrint 2017/1050), in two phases:
//!
//! - [`phase1`] (§3, "powers of tau"): participants in turn multiply a running
//!   accumulator `[τ^i]₁ (i < 2m−1), [τ^i]₂, [ατ^i]₁, [βτ^i]₁ (i < m), [β]₂` by secrets
//!   `τ', α', β'` of their own, so that `τ = Π τ'`, `α = Π α'`, `β = Π β'`.
//! - [`phase2`] (§4, per circuit shape): the circuit's QAP is evaluated at τ *in the
//!   exponent* from the accumulator's Lagrange form (a group FFT), giving bellperson's
//!   parameter layout with `γ = δ = 1`; participants in turn multiply `δ` by secrets `δ'`
//!   of their own and divide the `L` and `H` queries by them.
//!
//! Every contribution carries, for each secret `x`, a proof of knowledge ([`Knowledge`]):
//! `s`, `s·x` in G1 and `r·x` in G2, where `r` is hashed to G2 from the transcript so far
//! and `s, s·x` (BGM17 §3.1, `POK` / `CheckPOK`). The hash binds each proof to its place in
//! the transcript: a contribution cannot be moved, replayed or left out without a check
//! failing at that step. Anyone holding the transcript and the final accumulator or
//! parameters can verify the whole ceremony; the parameters are sound if one participant
//! drew its secrets honestly and destroyed them.
//!
//! Two departures from the paper, both as in the deployed ceremonies built on it (Zcash
//! Sapling, Filecoin): no random beacon at the end (Kohlweiss, Maller, Siim, Volkhov,
//! "Snarky Ceremonies", ASIACRYPT 2021, prove the protocol secure without it), and only
//! the heads of each intermediate accumulator (`[τ]₁, [τ]₂, [α]₁, [β]₁, [β]₂`) are kept in
//! the transcript, since the update checks use no other element; the final accumulator is
//! checked in full.

pub mod phase1;
pub mod phase2;

use blstrs::{Bls12, G1Affine, G1Projective, G2Affine, G2Prepared, G2Projective, Scalar as Fr};
use dualchain_crypto::encoding::{Reader, Writer};
use dualchain_crypto::DecodeError;
use ff::Field;
use group::{prime::PrimeCurveAffine, Curve, Group};
use pairing::{MillerLoopResult, MultiMillerLoop};
use rand_core::RngCore;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::backend::{CpuBackend, MsmBackend};

/// Domain separation of the hash to G2 of every proof of knowledge.
const HASH_DST: &[u8] = b"DUALCHAIN-CEREMONY-V1_BLS12381G2_XMD:SHA-256_SSWU_RO_";

/// Why a ceremony step or transcript is refused.
#[derive(Debug, Error)]
pub enum CeremonyError {
    /// Contribution `step` (0-based, in transcript order) by `who` fails a check.
    #[error("contribution {step} by {who:?}: {reason}")]
    Step { step: usize, who: String, reason: String },
    /// The transcript or the final values fail a check of the whole.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("circuit synthesis failed: {0}")]
    Synthesis(#[from] bellpepper_core::SynthesisError),
}

/// A proof of knowledge of a secret `x`: `s`, `s·x` in G1 and `r·x` in G2 with
/// `r = H(context ‖ s ‖ s·x)` (BGM17 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Knowledge {
    pub s: G1Affine,
    pub s_x: G1Affine,
    pub r_x: G2Affine,
}

impl Knowledge {
    pub(crate) fn prove(x: Fr, context: &[u8], rng: &mut impl RngCore) -> Self {
        let s = G1Projective::random(&mut *rng).to_affine();
        let s_x = (s * x).to_affine();
        let r = Self::r(context, &s, &s_x);
        Knowledge { s, s_x, r_x: (r * x).to_affine() }
    }

    /// The G2 point the proof is bound to.
    pub(crate) fn r(context: &[u8], s: &G1Affine, s_x: &G1Affine) -> G2Affine {
        let mut msg = Vec::with_capacity(context.len() + 96);
        msg.extend_from_slice(context);
        msg.extend_from_slice(&s.to_compressed());
        msg.extend_from_slice(&s_x.to_compressed());
        G2Projective::hash_to_curve(&msg, HASH_DST, &[]).to_affine()
    }

    /// `r` when the proof holds for `context`.
    pub(crate) fn check(&self, context: &[u8]) -> Option<G2Affine> {
        if bool::from(self.s.is_identity() | self.s_x.is_identity() | self.r_x.is_identity()) {
            return None;
        }
        let r = Self::r(context, &self.s, &self.s_x);
        same_ratio((self.s, self.s_x), (r, self.r_x)).then_some(r)
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.g1(&self.s);
        w.g1(&self.s_x);
        w.g2(&self.r_x);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Knowledge { s: r.g1("knowledge s")?, s_x: r.g1("knowledge s·x")?, r_x: r.g2("knowledge r·x")? })
    }
}

/// `g1.1 / g1.0 = g2.1 / g2.0` as discrete logarithms: `e(g1.0, g2.1) = e(g1.1, g2.0)`.
pub fn same_ratio(g1: (G1Affine, G1Affine), g2: (G2Affine, G2Affine)) -> bool {
    let (a, b) = (G2Prepared::from(g2.1), G2Prepared::from(g2.0));
    let minus = -g1.1;
    Bls12::multi_miller_loop(&[(&g1.0, &a), (&minus, &b)]).final_exponentiation().is_identity().into()
}

/// `Σ s_i·p_i` by Pippenger's method (blst's multi-threaded MSM), for either group.
pub(crate) trait Msm: PrimeCurveAffine<Scalar = Fr> + Sized {
    fn msm(points: &[Self], scalars: &[Fr]) -> Self::Curve;
}

impl Msm for G1Affine {
    fn msm(points: &[Self], scalars: &[Fr]) -> G1Projective {
        CpuBackend.msm_g1(points, scalars)
    }
}

impl Msm for G2Affine {
    fn msm(points: &[Self], scalars: &[Fr]) -> G2Projective {
        CpuBackend.msm_g2(points, scalars)
    }
}

/// `n` scalars drawn from `rng`: the weights of a random linear combination.
pub(crate) fn weights(n: usize, rng: &mut impl RngCore) -> Vec<Fr> {
    (0..n).map(|_| Fr::random(&mut *rng)).collect()
}

/// Random linear combinations of consecutive elements, `(Σ ρ_i v_i, Σ ρ_i v_{i+1})`: the
/// vector is a geometric progression with ratio `x` iff the pair has ratio `x` (except with
/// probability about `len / r` over the verifier's ρ). Two MSMs, not one scalar
/// multiplication per element.
fn consecutive<P: Msm>(v: &[P], rng: &mut impl RngCore) -> (P, P)
where
    P::Curve: Curve<AffineRepr = P>,
{
    let rho = weights(v.len().saturating_sub(1), rng);
    (P::msm(&v[..v.len() - 1], &rho).to_affine(), P::msm(&v[1..], &rho).to_affine())
}

/// A running SHA-256 over a transcript's steps: the context each proof of knowledge is
/// bound to.
fn context(label: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((label.len() as u64).to_le_bytes());
    h.update(label);
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// Multiplies `v[i]` by `factor · x^i` for every `i`, in parallel.
fn scale_by_powers<P: PrimeCurveAffine + Send + Sync>(v: &mut [P], factor: Fr, x: Fr)
where
    P::Curve: Group<Scalar = Fr> + Curve<AffineRepr = P> + Send + Sync,
{
    use rayon::prelude::*;
    const CHUNK: usize = 1024;
    v.par_chunks_mut(CHUNK).enumerate().for_each(|(c, chunk)| {
        let mut k = factor * x.pow_vartime([(c * CHUNK) as u64]);
        let proj: Vec<P::Curve> = chunk
            .iter()
            .map(|p| {
                let q = p.to_curve() * k;
                k *= x;
                q
            })
            .collect();
        P::Curve::batch_normalize(&proj, chunk);
    });
}

/// A bounded, named list of points for transcript encodings.
fn write_g1s(w: &mut Writer, v: &[G1Affine]) {
    w.u32(u32::try_from(v.len()).expect("fewer than 2^32 points"));
    for p in v {
        w.g1(p);
    }
}

fn write_g2s(w: &mut Writer, v: &[G2Affine]) {
    w.u32(u32::try_from(v.len()).expect("fewer than 2^32 points"));
    for p in v {
        w.g2(p);
    }
}

/// Compressed sizes, for bounding counts by the bytes that remain.
const G1_LEN: usize = 48;
const G2_LEN: usize = 96;

fn read_g1s(r: &mut Reader<'_>, what: &'static str, max: usize) -> Result<Vec<G1Affine>, DecodeError> {
    let n = r.count_sized(what, max, G1_LEN)?;
    let bytes = r.take(n * G1_LEN)?;
    decode_points(bytes, G1_LEN, what, |b| G1Affine::from_compressed(b.try_into().expect("48 bytes")).into())
}

fn read_g2s(r: &mut Reader<'_>, what: &'static str, max: usize) -> Result<Vec<G2Affine>, DecodeError> {
    let n = r.count_sized(what, max, G2_LEN)?;
    let bytes = r.take(n * G2_LEN)?;
    decode_points(bytes, G2_LEN, what, |b| G2Affine::from_compressed(b.try_into().expect("96 bytes")).into())
}

/// Decodes compressed points in parallel; each must be in the prime-order subgroup and
/// not the identity.
fn decode_points<P: PrimeCurveAffine + Send>(
    bytes: &[u8],
    len: usize,
    what: &'static str,
    decode: impl Fn(&[u8]) -> Option<P> + Sync,
) -> Result<Vec<P>, DecodeError> {
    use rayon::prelude::*;
    let points: Option<Vec<P>> =
        bytes.par_chunks(len).map(|b| decode(b).filter(|p| !bool::from(p.is_identity()))).collect();
    points.ok_or(DecodeError::InvalidPoint { what })
}
