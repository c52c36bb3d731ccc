//! Phase 1, powers of tau (BGM17 §3): a circuit-independent accumulator that any number of
//! participants update in turn, and the transcript that proves each update.

use blstrs::{G1Affine, G2Affine, Scalar as Fr};
use dualchain_crypto::encoding::{Reader, Writer};
use ff::Field;
use group::{prime::PrimeCurveAffine, Curve};
use rand_core::RngCore;

use super::{
    consecutive, context, read_g1s, read_g2s, same_ratio, scale_by_powers, write_g1s, write_g2s, CeremonyError,
    Knowledge,
};

const MAGIC: &[u8; 8] = b"DCTAU001";
const TRANSCRIPT_MAGIC: &[u8; 8] = b"DCTAUTR1";
/// Largest supported domain: 2^22 constraints (the largest shape needs 2^19).
pub const LOG_M_MAX: u32 = 22;
/// Most contributions in one transcript.
pub const STEPS_MAX: usize = 1024;
/// Longest participant name.
pub const NAME_MAX: usize = 128;

/// `[τ^i]₁ (i < 2m−1)`, `[τ^i]₂, [ατ^i]₁, [βτ^i]₁ (i < m)` and `[β]₂`, for circuits of up to
/// `m` constraints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accumulator {
    pub tau_g1: Vec<G1Affine>,
    pub tau_g2: Vec<G2Affine>,
    pub alpha_tau_g1: Vec<G1Affine>,
    pub beta_tau_g1: Vec<G1Affine>,
    pub beta_g2: G2Affine,
}

/// The elements of an accumulator that the update checks use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heads {
    pub tau_g1: G1Affine,
    pub tau_g2: G2Affine,
    pub alpha_g1: G1Affine,
    pub beta_g1: G1Affine,
    pub beta_g2: G2Affine,
}

impl Heads {
    /// Before any contribution: every secret is 1.
    pub fn start() -> Self {
        let (g1, g2) = (G1Affine::generator(), G2Affine::generator());
        Heads { tau_g1: g1, tau_g2: g2, alpha_g1: g1, beta_g1: g1, beta_g2: g2 }
    }

    fn encode(&self, w: &mut Writer) {
        w.g1(&self.tau_g1);
        w.g2(&self.tau_g2);
        w.g1(&self.alpha_g1);
        w.g1(&self.beta_g1);
        w.g2(&self.beta_g2);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CeremonyError> {
        Ok(Heads {
            tau_g1: r.g1("[τ]₁")?,
            tau_g2: r.g2("[τ]₂")?,
            alpha_g1: r.g1("[α]₁")?,
            beta_g1: r.g1("[β]₁")?,
            beta_g2: r.g2("[β]₂")?,
        })
    }
}

impl Accumulator {
    /// The starting accumulator for domains of up to `2^log_m` (every secret 1).
    pub fn new(log_m: u32) -> Result<Self, CeremonyError> {
        if log_m == 0 || log_m > LOG_M_MAX {
            return Err(CeremonyError::Invalid(format!("domain 2^{log_m} is outside 2^1 to 2^{LOG_M_MAX}")));
        }
        let m = 1usize << log_m;
        let (g1, g2) = (G1Affine::generator(), G2Affine::generator());
        Ok(Accumulator {
            tau_g1: vec![g1; 2 * m - 1],
            tau_g2: vec![g2; m],
            alpha_tau_g1: vec![g1; m],
            beta_tau_g1: vec![g1; m],
            beta_g2: g2,
        })
    }

    /// `m`: the largest domain (number of constraints) the accumulator serves.
    pub fn degree(&self) -> usize {
        self.tau_g2.len()
    }

    pub fn heads(&self) -> Heads {
        Heads {
            tau_g1: self.tau_g1[1],
            tau_g2: self.tau_g2[1],
            alpha_g1: self.alpha_tau_g1[0],
            beta_g1: self.beta_tau_g1[0],
            beta_g2: self.beta_g2,
        }
    }

    /// Multiplies in fresh secrets `τ', α', β'` (drawn from `rng`, dropped on return).
    fn update(&mut self, tau: Fr, alpha: Fr, beta: Fr) {
        scale_by_powers(&mut self.tau_g1, Fr::ONE, tau);
        scale_by_powers(&mut self.tau_g2, Fr::ONE, tau);
        scale_by_powers(&mut self.alpha_tau_g1, alpha, tau);
        scale_by_powers(&mut self.beta_tau_g1, beta, tau);
        self.beta_g2 = (self.beta_g2 * beta).to_affine();
    }

    /// The whole accumulator is one `τ, α, β`: the first powers are the generators and each
    /// vector is a geometric progression in `τ` (random linear combinations, BGM17 §3.2).
    pub fn check(&self, rng: &mut impl RngCore) -> Result<(), CeremonyError> {
        let m = self.degree();
        let bad = |what: &str| Err(CeremonyError::Invalid(format!("the accumulator's {what}")));
        if m < 2
            || !m.is_power_of_two()
            || self.tau_g1.len() != 2 * m - 1
            || self.alpha_tau_g1.len() != m
            || self.beta_tau_g1.len() != m
        {
            return bad("lengths do not match one domain");
        }
        if self.tau_g1[0] != G1Affine::generator() || self.tau_g2[0] != G2Affine::generator() {
            return bad("first powers are not the generators");
        }
        let (g1, g2) = (G1Affine::generator(), G2Affine::generator());
        let tau_2 = (g2, self.tau_g2[1]);
        if !same_ratio(consecutive(&self.tau_g1, rng), tau_2) {
            return bad("[τ^i]₁ are not powers of one τ");
        }
        let (x, y) = consecutive(&self.tau_g2, rng);
        if !same_ratio((g1, self.tau_g1[1]), (x, y)) {
            return bad("[τ^i]₂ are not the powers of [τ]₁'s τ");
        }
        if !same_ratio(consecutive(&self.alpha_tau_g1, rng), tau_2) {
            return bad("[ατ^i]₁ are not α times powers of τ");
        }
        if !same_ratio(consecutive(&self.beta_tau_g1, rng), tau_2) {
            return bad("[βτ^i]₁ are not β times powers of τ");
        }
        if !same_ratio((g1, self.beta_tau_g1[0]), (g2, self.beta_g2)) {
            return bad("[β]₂ does not match [β]₁");
        }
        Ok(())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let m = self.degree();
        let mut w = Writer::with_capacity(16 + 48 * (4 * m) + 96 * (m + 1));
        w.fixed(MAGIC);
        write_g1s(&mut w, &self.tau_g1);
        write_g2s(&mut w, &self.tau_g2);
        write_g1s(&mut w, &self.alpha_tau_g1);
        write_g1s(&mut w, &self.beta_tau_g1);
        w.g2(&self.beta_g2);
        w.into_bytes()
    }

    /// Decodes and checks every point (in the subgroup, not the identity) and the lengths;
    /// [`Accumulator::check`] checks the powers.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CeremonyError> {
        let mut r = Reader::new(bytes, "powers-of-tau accumulator");
        if r.array::<8>()? != *MAGIC {
            return Err(CeremonyError::Invalid("not a dualchain powers-of-tau accumulator".into()));
        }
        let m_max = 1usize << LOG_M_MAX;
        let acc = Accumulator {
            tau_g1: read_g1s(&mut r, "[τ^i]₁", 2 * m_max)?,
            tau_g2: read_g2s(&mut r, "[τ^i]₂", m_max)?,
            alpha_tau_g1: read_g1s(&mut r, "[ατ^i]₁", m_max)?,
            beta_tau_g1: read_g1s(&mut r, "[βτ^i]₁", m_max)?,
            beta_g2: r.g2("[β]₂")?,
        };
        r.finish()?;
        let m = acc.degree();
        if m < 2 || !m.is_power_of_two() || acc.tau_g1.len() != 2 * m - 1 {
            return Err(CeremonyError::Invalid("the accumulator's lengths do not match one domain".into()));
        }
        Ok(acc)
    }
}

/// One participant's update: proofs of knowledge of `τ', α', β'` and the heads after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub who: String,
    pub tau: Knowledge,
    pub alpha: Knowledge,
    pub beta: Knowledge,
    pub after: Heads,
}

impl Step {
    /// SHA-256 of the step's encoding: what a participant notes when it contributes and
    /// finds again in [`Transcript::verify`]'s output.
    pub fn digest(&self) -> [u8; 32] {
        let mut w = Writer::with_capacity(512);
        self.encode(&mut w);
        sha2::Sha256::digest(w.into_bytes()).into()
    }

    fn encode(&self, w: &mut Writer) {
        w.str(&self.who);
        self.tau.encode(w);
        self.alpha.encode(w);
        self.beta.encode(w);
        self.after.encode(w);
    }
}

/// The contributions in order, for an accumulator of domain `2^log_m`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    pub log_m: u32,
    pub steps: Vec<Step>,
}

impl Transcript {
    pub fn new(log_m: u32) -> Self {
        Transcript { log_m, steps: Vec::new() }
    }

    /// What step `k`'s proofs of τ', α' and β' are bound to: the domain, every earlier
    /// step, the name and the secret's name.
    fn contexts(&self, k: usize, who: &str) -> [[u8; 32]; 3] {
        let mut earlier = Writer::with_capacity(1024);
        for s in &self.steps[..k] {
            s.encode(&mut earlier);
        }
        let earlier = earlier.into_bytes();
        ["tau", "alpha", "beta"].map(|secret| {
            context(b"dualchain phase 1", &[&self.log_m.to_le_bytes(), &earlier, who.as_bytes(), secret.as_bytes()])
        })
    }

    /// `who` updates `acc` with fresh secrets and appends the step. The secrets exist only
    /// inside this call.
    pub fn contribute(
        &mut self,
        acc: &mut Accumulator,
        who: &str,
        rng: &mut impl RngCore,
    ) -> Result<(), CeremonyError> {
        let secrets = [nonzero(rng), nonzero(rng), nonzero(rng)];
        self.contribute_secrets(acc, who, secrets, rng)
    }

    /// [`Transcript::contribute`] with secrets `[τ', α', β']` the caller drew (from its own
    /// entropy source) and must destroy afterwards; a secret of 0 is refused.
    pub fn contribute_secrets(
        &mut self,
        acc: &mut Accumulator,
        who: &str,
        [tau, alpha, beta]: [Fr; 3],
        rng: &mut impl RngCore,
    ) -> Result<(), CeremonyError> {
        check_name(who)?;
        if self.steps.len() >= STEPS_MAX {
            return Err(CeremonyError::Invalid(format!("a transcript holds at most {STEPS_MAX} contributions")));
        }
        if bool::from(tau.is_zero() | alpha.is_zero() | beta.is_zero()) {
            return Err(CeremonyError::Invalid("a secret of 0 would erase the accumulator".into()));
        }
        let before = self.steps.last().map(|s| s.after).unwrap_or_else(Heads::start);
        if acc.heads() != before || acc.degree() != 1usize << self.log_m {
            return Err(CeremonyError::Invalid("the accumulator is not the transcript's latest".into()));
        }
        let [c_tau, c_alpha, c_beta] = self.contexts(self.steps.len(), who);
        let (tau_pok, alpha_pok, beta_pok) = (
            Knowledge::prove(tau, &c_tau, rng),
            Knowledge::prove(alpha, &c_alpha, rng),
            Knowledge::prove(beta, &c_beta, rng),
        );
        acc.update(tau, alpha, beta);
        self.steps.push(Step { who: who.into(), tau: tau_pok, alpha: alpha_pok, beta: beta_pok, after: acc.heads() });
        Ok(())
    }

    /// Checks every step against the one before it and the final accumulator against the
    /// last step. Returns each step's digest (SHA-256 of its encoding), which a participant
    /// compares with the one its contribution printed.
    pub fn verify(&self, acc: &Accumulator, rng: &mut impl RngCore) -> Result<Vec<[u8; 32]>, CeremonyError> {
        if self.steps.is_empty() {
            return Err(CeremonyError::Invalid("no contribution: the accumulator's secrets are all 1".into()));
        }
        if acc.degree() != 1usize << self.log_m {
            return Err(CeremonyError::Invalid("the accumulator is not this transcript's domain".into()));
        }
        let mut before = Heads::start();
        let mut digests = Vec::with_capacity(self.steps.len());
        for (k, s) in self.steps.iter().enumerate() {
            let fail = |reason: &str| CeremonyError::Step { step: k, who: s.who.clone(), reason: reason.into() };
            check_name(&s.who).map_err(|_| fail("the participant's name is empty or too long"))?;
            let [c_tau, c_alpha, c_beta] = self.contexts(k, &s.who);
            let r_tau = s.tau.check(&c_tau).ok_or_else(|| fail("the proof of knowledge of τ' fails"))?;
            let r_alpha = s.alpha.check(&c_alpha).ok_or_else(|| fail("the proof of knowledge of α' fails"))?;
            let r_beta = s.beta.check(&c_beta).ok_or_else(|| fail("the proof of knowledge of β' fails"))?;
            let (a, g1, g2) = (s.after, G1Affine::generator(), G2Affine::generator());
            if !same_ratio((before.tau_g1, a.tau_g1), (r_tau, s.tau.r_x)) {
                return Err(fail("[τ]₁ is not the earlier one times the proven τ'"));
            }
            if !same_ratio((before.alpha_g1, a.alpha_g1), (r_alpha, s.alpha.r_x)) {
                return Err(fail("[α]₁ is not the earlier one times the proven α'"));
            }
            if !same_ratio((before.beta_g1, a.beta_g1), (r_beta, s.beta.r_x)) {
                return Err(fail("[β]₁ is not the earlier one times the proven β'"));
            }
            if !same_ratio((g1, a.tau_g1), (g2, a.tau_g2)) {
                return Err(fail("[τ]₂ does not match [τ]₁"));
            }
            if !same_ratio((g1, a.beta_g1), (g2, a.beta_g2)) {
                return Err(fail("[β]₂ does not match [β]₁"));
            }
            digests.push(s.digest());
            before = a;
        }
        if acc.heads() != before {
            return Err(CeremonyError::Invalid("the accumulator is not the one the last contribution made".into()));
        }
        acc.check(rng)?;
        Ok(digests)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64 + 700 * self.steps.len());
        w.fixed(TRANSCRIPT_MAGIC);
        w.u32(self.log_m);
        w.u32(self.steps.len() as u32);
        for s in &self.steps {
            s.encode(&mut w);
        }
        w.into_bytes()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CeremonyError> {
        let mut r = Reader::new(bytes, "powers-of-tau transcript");
        if r.array::<8>()? != *TRANSCRIPT_MAGIC {
            return Err(CeremonyError::Invalid("not a dualchain powers-of-tau transcript".into()));
        }
        let log_m = r.u32()?;
        let n = r.count_sized("contributions", STEPS_MAX, 600)?;
        let mut steps = Vec::with_capacity(n);
        for _ in 0..n {
            let who = r.str("participant", NAME_MAX)?.to_owned();
            steps.push(Step {
                who,
                tau: Knowledge::decode(&mut r)?,
                alpha: Knowledge::decode(&mut r)?,
                beta: Knowledge::decode(&mut r)?,
                after: Heads::decode(&mut r)?,
            });
        }
        r.finish()?;
        Ok(Transcript { log_m, steps })
    }
}

use sha2::Digest as _;

pub(super) fn check_name(who: &str) -> Result<(), CeremonyError> {
    if who.is_empty() || who.len() > NAME_MAX {
        return Err(CeremonyError::Invalid(format!("a participant's name has 1 to {NAME_MAX} bytes")));
    }
    Ok(())
}

pub(super) fn nonzero(rng: &mut impl RngCore) -> Fr {
    loop {
        let x = Fr::random(&mut *rng);
        if !bool::from(x.is_zero()) {
            return x;
        }
    }
}
