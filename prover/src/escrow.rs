//! Identity escrow, t of n: a requester's identity sealed so that any `t` of the `n` audit
//! authorities (the KGC and the CPCs) can open it together and no `t − 1` of them can
//! (issue 17 item 3, docs/privacy.md "Open: requester anonymity").
//!
//! What is sealed is the requester's credential leaf index: the registry maps it to the
//! member, and nothing else on the anonymous path names one.
//!
//! The constructions, all on Jubjub (the twisted Edwards curve over BLS12-381's scalar
//! field, through the `jubjub` crate), so that a later circuit can prove in its own field
//! that a request's sealed identity is well formed:
//!
//! - **Key generation without a dealer**: Pedersen's joint-Feldman DKG (T. P. Pedersen, "A
//!   threshold cryptosystem without a trusted party", EUROCRYPT '91). Each authority `i`
//!   picks a polynomial `f_i` of degree `t − 1`, publishes a [`Dealing`] (the Feldman
//!   commitments `a_ik·G`, with a Schnorr proof of knowledge of `a_i0` bound to the
//!   dealer and the committee, as in FROST's key generation, so that no dealer can
//!   publish a commitment chosen from the others' to set the key), and sends each
//!   authority `j` its [`DkgShare`] `f_i(j)`
//!   privately. Authority `j` checks every share against its dealing
//!   (`f_i(j)·G = Σ_k j^k·A_ik`); a dealer whose share fails is accused, and the share it
//!   then reveals is checked by everyone ([`Dealing::verify_share`]); dealers that fail
//!   are left out of the qualified set. The escrow key is `Σ_i A_i0`, authority `j`'s
//!   secret is `x_j = Σ_i f_i(j)`, and its verification key `x_j·G` is computable by all
//!   from the dealings. Gennaro, Jarecki, Krawczyk and Rabin (J. Cryptology 2007) show the
//!   key can be biased by a rushing dealer, and (CT-RSA 2003) that this does not weaken
//!   ElGamal-type encryption under it, which is this module's only use of the key.
//! - **Sealing**: hashed ElGamal. `R = r·G`, `S = r·Y`, `c = m + P(tag, S_u, S_v)` with `P`
//!   the workspace's Poseidon over BLS12-381's scalar field (Jubjub's base field, so the
//!   mask of a point's coordinates is one native hash in a circuit). A fixed-base and a
//!   variable-base multiplication and one hash: the verifiable-encryption cost DESIGN-level
//!   docs estimate.
//! - **Opening**: each authority publishes a [`DecryptionShare`] `D_j = x_j·R` with a
//!   Chaum–Pedersen proof (D. Chaum, T. P. Pedersen, "Wallet databases with observers",
//!   CRYPTO '92) that `log_G(x_j·G) = log_R(D_j)`, made non-interactive with Fiat–Shamir
//!   (SHA-512, domain-separated, bound to the sealed identity and to a context the
//!   authorities name, e.g. the audit case). Any `t` valid shares from distinct
//!   authorities give `S = Σ λ_j·D_j` by Lagrange interpolation at 0; a forged or
//!   misdirected share is refused by its proof, not by the result.
//!
//! Hashed ElGamal alone is malleable (`c + δ` opens to `m + δ`); the proof that a request
//! carries binds the sealed value as a public input, so a changed value breaks the proof.
//! Without that binding a sealed identity is evidence only of what its sealer chose.

use bellpepper_core::num::AllocatedNum;
use bellpepper_core::{Circuit, ConstraintSystem, SynthesisError};
use blstrs::Scalar as Fr;
use dualchain_crypto::encoding::{tags, Codec, Reader, Writer};
use dualchain_crypto::error::DecodeError;
use ff::{Field, PrimeField};
use group::{Group, GroupEncoding};
use jubjub::{Fr as Scalar, SubgroupPoint};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha512};
use thiserror::Error;

use crate::edwards::{self, coordinates, Point};
use crate::field::{fr_from_bytes, fr_from_u64};
use crate::gadgets::{self, Lc};
use crate::poseidon::{hash3, hash3_gadget};

/// Most audit authorities one escrow key is shared among.
pub const AUTHORITIES_MAX: u16 = 64;
/// Sealed values are credential leaf indices: the credential tree has depth 32.
pub const SEALED_VALUE_BITS: u32 = 32;
/// Largest context a decryption share is bound to.
pub const CONTEXT_MAX: usize = 256;
/// Poseidon domain tag of the sealing mask (ASCII "escrow", keeps it apart from Merkle
/// nodes, credential leaves and request bindings, which use the same arities).
const MASK_DOMAIN: u64 = 0x65_73_63_72_6f_77;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EscrowError {
    #[error("a threshold of {threshold} of {authorities} authorities is not possible (1 ≤ t ≤ n ≤ {AUTHORITIES_MAX})")]
    Committee { threshold: u16, authorities: u16 },
    #[error("authority {0} is not in the committee")]
    UnknownAuthority(u16),
    #[error("dealing of authority {dealer}: {reason}")]
    Dealing { dealer: u16, reason: String },
    #[error("the share from dealer {dealer} to authority {recipient} does not match the dealer's commitments")]
    BadShare { dealer: u16, recipient: u16 },
    #[error("{found} qualified dealings, at least {threshold} needed")]
    TooFewDealings { found: usize, threshold: u16 },
    #[error("the decryption share of authority {0} does not prove it came from that authority's key")]
    BadDecryptionShare(u16),
    #[error("{found} valid decryption shares from distinct authorities, {threshold} needed")]
    TooFewShares { found: usize, threshold: u16 },
    #[error("the sealed value opens to no credential index: it was not sealed under this escrow key")]
    NotSealedUnderKey,
    #[error("{0}")]
    Value(String),
}

/// The committee: `n` authorities numbered 1 to n, of which any `t` open a sealed value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committee {
    threshold: u16,
    authorities: u16,
}

impl Committee {
    pub fn new(threshold: u16, authorities: u16) -> Result<Self, EscrowError> {
        if threshold == 0 || threshold > authorities || authorities > AUTHORITIES_MAX {
            return Err(EscrowError::Committee { threshold, authorities });
        }
        Ok(Self { threshold, authorities })
    }
    pub fn threshold(&self) -> u16 {
        self.threshold
    }
    pub fn authorities(&self) -> u16 {
        self.authorities
    }
    fn check(&self, index: u16) -> Result<(), EscrowError> {
        if index == 0 || index > self.authorities {
            return Err(EscrowError::UnknownAuthority(index));
        }
        Ok(())
    }
}

fn generator() -> SubgroupPoint {
    SubgroupPoint::generator()
}

/// `Σ_k x^k·C_k`: a Feldman commitment vector evaluated at `x`.
fn evaluate_commitments(commitments: &[SubgroupPoint], x: u16) -> SubgroupPoint {
    let x = Scalar::from(u64::from(x));
    commitments.iter().rev().fold(SubgroupPoint::identity(), |acc, c| acc * x + c)
}

/// Lagrange's coefficients at `x` for the distinct authority indices `indices`:
/// `λ_i = Π_{j ≠ i} (x − x_j) / (x_i − x_j)`.
fn lagrange(indices: &[u16], x: u16) -> Vec<Scalar> {
    let xs: Vec<Scalar> = indices.iter().map(|i| Scalar::from(u64::from(*i))).collect();
    let x = Scalar::from(u64::from(x));
    (0..xs.len())
        .map(|i| {
            let (num, den) = xs
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .fold((Scalar::ONE, Scalar::ONE), |(num, den), (_, xj)| (num * (x - xj), den * (xs[i] - xj)));
            num * Option::<Scalar>::from(den.invert()).expect("distinct authority indices")
        })
        .collect()
}

/// A dealer's public part of the DKG: Feldman commitments to its polynomial's coefficients,
/// and a proof that the dealer knows its secret (the discrete log of the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dealing {
    dealer: u16,
    commitments: Vec<SubgroupPoint>,
    knowledge: Knowledge,
}

/// A Schnorr proof of knowledge of `a` with `A = a·G` (C. P. Schnorr, "Efficient signature
/// generation by smart cards", J. Cryptology 1991), non-interactive by Fiat–Shamir and
/// bound to the dealer and the committee, as each participant proves its constant term in
/// FROST's key generation (C. Komlo, I. Goldberg, "FROST", SAC 2020, round 1). It stops a
/// rogue-key dealing: a dealer that saw the others' commitments and chose
/// `A = Y − Σ A_i` to make the escrow key a `Y` of its choosing cannot know `log_G(A)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Knowledge {
    commitment: SubgroupPoint,
    response: Scalar,
}

impl Knowledge {
    fn challenge(committee: &Committee, dealer: u16, public: &SubgroupPoint, commitment: &SubgroupPoint) -> Scalar {
        let mut h = Sha512::new();
        h.update(b"dualchain escrow dealing knowledge v1");
        for x in [committee.threshold, committee.authorities, dealer] {
            h.update(x.to_be_bytes());
        }
        for p in [&generator(), public, commitment] {
            h.update(p.to_bytes());
        }
        Scalar::from_bytes_wide(&h.finalize().into())
    }

    fn prove<R: RngCore + CryptoRng>(committee: &Committee, dealer: u16, secret: &Scalar, rng: &mut R) -> Self {
        let k = Scalar::random(&mut *rng);
        let commitment = generator() * k;
        let c = Self::challenge(committee, dealer, &(generator() * secret), &commitment);
        Knowledge { commitment, response: k + c * secret }
    }

    fn verify(&self, committee: &Committee, dealer: u16, public: &SubgroupPoint) -> bool {
        let c = Self::challenge(committee, dealer, public, &self.commitment);
        generator() * self.response == self.commitment + public * c
    }
}

/// A dealer's evaluation `f_i(j)` for authority `j`, sent to `j` alone (sealed to its
/// key in transit). Its `Debug` output hides the value.
#[derive(Clone, PartialEq, Eq)]
pub struct DkgShare {
    dealer: u16,
    recipient: u16,
    value: Scalar,
}

impl std::fmt::Debug for DkgShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkgShare")
            .field("dealer", &self.dealer)
            .field("recipient", &self.recipient)
            .finish_non_exhaustive()
    }
}

impl DkgShare {
    pub fn dealer(&self) -> u16 {
        self.dealer
    }
    pub fn recipient(&self) -> u16 {
        self.recipient
    }
}

/// Authority `dealer`'s round of the DKG: its dealing, for everyone, and one share for
/// each authority (itself included).
pub fn deal<R: RngCore + CryptoRng>(
    committee: &Committee,
    dealer: u16,
    rng: &mut R,
) -> Result<(Dealing, Vec<DkgShare>), EscrowError> {
    committee.check(dealer)?;
    let coefficients: Vec<Scalar> = (0..committee.threshold).map(|_| Scalar::random(&mut *rng)).collect();
    let commitments = coefficients.iter().map(|a| generator() * a).collect();
    let knowledge = Knowledge::prove(committee, dealer, &coefficients[0], rng);
    let shares = (1..=committee.authorities)
        .map(|j| {
            let x = Scalar::from(u64::from(j));
            let value = coefficients.iter().rev().fold(Scalar::ZERO, |acc, a| acc * x + a);
            DkgShare { dealer, recipient: j, value }
        })
        .collect();
    Ok((Dealing { dealer, commitments, knowledge }, shares))
}

impl Dealing {
    pub fn dealer(&self) -> u16 {
        self.dealer
    }

    /// The Feldman commitments `a_k·G`, constant term first (public).
    pub fn commitments(&self) -> &[SubgroupPoint] {
        &self.commitments
    }

    /// Checks the dealing's shape against the committee, and its proof of knowledge of the
    /// dealer's secret.
    pub fn check(&self, committee: &Committee) -> Result<(), EscrowError> {
        committee.check(self.dealer)?;
        if self.commitments.len() != usize::from(committee.threshold) {
            return Err(EscrowError::Dealing {
                dealer: self.dealer,
                reason: format!("{} commitments for a threshold of {}", self.commitments.len(), committee.threshold),
            });
        }
        if bool::from(self.commitments[0].is_identity()) {
            return Err(EscrowError::Dealing { dealer: self.dealer, reason: "a zero secret".into() });
        }
        if !self.knowledge.verify(committee, self.dealer, &self.commitments[0]) {
            return Err(EscrowError::Dealing {
                dealer: self.dealer,
                reason: "no proof that the dealer knows its secret (a rogue-key dealing?)".into(),
            });
        }
        Ok(())
    }

    /// Whether `share` is this dealer's evaluation at its recipient: what the recipient
    /// checks on receipt, and what everyone checks of a share revealed after an accusation.
    pub fn verify_share(&self, share: &DkgShare) -> Result<(), EscrowError> {
        let bad = EscrowError::BadShare { dealer: share.dealer, recipient: share.recipient };
        if share.dealer != self.dealer || share.recipient == 0 {
            return Err(bad);
        }
        if generator() * share.value != evaluate_commitments(&self.commitments, share.recipient) {
            return Err(bad);
        }
        Ok(())
    }
}

/// Checks the qualified dealings: each well formed, from distinct dealers, at least `t`.
fn qualified<'a>(committee: &Committee, dealings: &'a [Dealing]) -> Result<Vec<&'a Dealing>, EscrowError> {
    let mut seen = std::collections::BTreeSet::new();
    for d in dealings {
        d.check(committee)?;
        if !seen.insert(d.dealer) {
            return Err(EscrowError::Dealing { dealer: d.dealer, reason: "dealt twice".into() });
        }
    }
    if dealings.len() < usize::from(committee.threshold) {
        return Err(EscrowError::TooFewDealings { found: dealings.len(), threshold: committee.threshold });
    }
    Ok(dealings.iter().collect())
}

/// The public escrow key: the key values are sealed under, and each authority's
/// verification key. Every authority computes the same one from the qualified dealings;
/// its encoding is what the consortium records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscrowKey {
    committee: Committee,
    public: SubgroupPoint,
    /// `x_j·G` for authorities 1..=n.
    verification: Vec<SubgroupPoint>,
}

impl EscrowKey {
    /// The key from the qualified dealings (those whose dealers no upheld accusation left
    /// out).
    pub fn from_dealings(committee: &Committee, dealings: &[Dealing]) -> Result<Self, EscrowError> {
        let dealings = qualified(committee, dealings)?;
        let public: SubgroupPoint = dealings.iter().map(|d| d.commitments[0]).sum();
        let verification: Vec<SubgroupPoint> = (1..=committee.authorities)
            .map(|j| dealings.iter().map(|d| evaluate_commitments(&d.commitments, j)).sum())
            .collect();
        // The identity as a key (or an authority's key) would make sealing transparent; it
        // takes dealers that cancel each other out, and the key's encoding refuses it too.
        if bool::from(public.is_identity()) || verification.iter().any(|v| bool::from(v.is_identity())) {
            return Err(EscrowError::Dealing { dealer: dealings[0].dealer, reason: "the dealings cancel out".into() });
        }
        Ok(Self { committee: *committee, public, verification })
    }
    pub fn committee(&self) -> Committee {
        self.committee
    }
    /// The key values are sealed under (`Y = x·G`).
    pub fn public_key(&self) -> SubgroupPoint {
        self.public
    }
    fn verification_key(&self, index: u16) -> Result<SubgroupPoint, EscrowError> {
        self.committee.check(index)?;
        Ok(self.verification[usize::from(index) - 1])
    }
}

/// One authority's share of the escrow secret. Its `Debug` output hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthoritySecret {
    index: u16,
    secret: Scalar,
}

impl std::fmt::Debug for AuthoritySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthoritySecret").field("index", &self.index).finish_non_exhaustive()
    }
}

impl AuthoritySecret {
    /// Authority `index`'s secret from the shares the qualified dealers sent it. Every
    /// share is checked against its dealing; the first that fails is named, so that its
    /// dealer can be accused.
    pub fn from_shares(
        committee: &Committee,
        index: u16,
        dealings: &[Dealing],
        shares: &[DkgShare],
    ) -> Result<Self, EscrowError> {
        committee.check(index)?;
        let dealings = qualified(committee, dealings)?;
        let mut secret = Scalar::ZERO;
        for dealing in dealings {
            let share = shares
                .iter()
                .find(|s| s.dealer == dealing.dealer && s.recipient == index)
                .ok_or(EscrowError::BadShare { dealer: dealing.dealer, recipient: index })?;
            dealing.verify_share(share)?;
            secret += share.value;
        }
        Ok(Self { index, secret })
    }
    pub fn index(&self) -> u16 {
        self.index
    }
}

/// A sealed value: `(R, c)` with `R = r·G` and `c = m + P(tag, (r·Y)_u, (r·Y)_v)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    ephemeral: SubgroupPoint,
    masked: Fr,
}

fn mask(shared: &SubgroupPoint) -> Fr {
    let (u, v) = coordinates(shared);
    hash3(fr_from_u64(MASK_DOMAIN), u, v)
}

/// Seals `value` (a credential leaf index, below 2^32) under the escrow key. Returns the
/// sealed value and the randomness `r`, which a requester's proof takes as a witness.
pub fn seal<R: RngCore + CryptoRng>(key: &EscrowKey, value: u64, rng: &mut R) -> Result<(Sealed, Scalar), EscrowError> {
    if value >> SEALED_VALUE_BITS != 0 {
        return Err(EscrowError::Value(format!("{value} is not a credential index (below 2^{SEALED_VALUE_BITS})")));
    }
    let r = loop {
        let r = Scalar::random(&mut *rng);
        if !bool::from(r.is_zero()) {
            break r;
        }
    };
    Ok((seal_with(&key.public, value, &r), r))
}

/// The sealed value for a given key point, value and randomness: what [`seal`] computes
/// and what a proof's statement recomputes from its witness.
pub fn seal_with(key: &SubgroupPoint, value: u64, randomness: &Scalar) -> Sealed {
    Sealed { ephemeral: generator() * randomness, masked: fr_from_u64(value) + mask(&(key * randomness)) }
}

/// Authority `j`'s part of opening one sealed value: `D_j = x_j·R` and its proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecryptionShare {
    index: u16,
    share: SubgroupPoint,
    challenge: Scalar,
    response: Scalar,
}

impl DecryptionShare {
    pub fn index(&self) -> u16 {
        self.index
    }
}

/// The Fiat–Shamir challenge of a Chaum–Pedersen proof, bound to everything it speaks of.
fn challenge(
    index: u16,
    verification: &SubgroupPoint,
    sealed: &Sealed,
    share: &SubgroupPoint,
    commitments: [&SubgroupPoint; 2],
    context: &[u8],
) -> Scalar {
    let mut h = Sha512::new();
    h.update(b"dualchain escrow decryption share v1");
    h.update(index.to_be_bytes());
    for p in [&generator(), verification, &sealed.ephemeral, share, commitments[0], commitments[1]] {
        h.update(p.to_bytes());
    }
    h.update(sealed.masked.to_bytes_le());
    h.update((context.len() as u64).to_be_bytes());
    h.update(context);
    Scalar::from_bytes_wide(&h.finalize().into())
}

impl AuthoritySecret {
    /// This authority's decryption share of `sealed`, bound to `context` (the audit case
    /// that justifies the opening; at most [`CONTEXT_MAX`] bytes).
    pub fn decryption_share<R: RngCore + CryptoRng>(
        &self,
        key: &EscrowKey,
        sealed: &Sealed,
        context: &[u8],
        rng: &mut R,
    ) -> Result<DecryptionShare, EscrowError> {
        if context.len() > CONTEXT_MAX {
            return Err(EscrowError::Value(format!(
                "an audit context of {} bytes (at most {CONTEXT_MAX})",
                context.len()
            )));
        }
        let verification = key.verification_key(self.index)?;
        if generator() * self.secret != verification {
            return Err(EscrowError::BadDecryptionShare(self.index));
        }
        let share = sealed.ephemeral * self.secret;
        let k = Scalar::random(&mut *rng);
        let (a1, a2) = (generator() * k, sealed.ephemeral * k);
        let c = challenge(self.index, &verification, sealed, &share, [&a1, &a2], context);
        Ok(DecryptionShare { index: self.index, share, challenge: c, response: k + c * self.secret })
    }
}

impl EscrowKey {
    /// Checks one decryption share's proof against the authority's verification key.
    pub fn verify_share(&self, sealed: &Sealed, share: &DecryptionShare, context: &[u8]) -> Result<(), EscrowError> {
        let verification = self.verification_key(share.index)?;
        // z·G − c·X = k·G and z·R − c·D = k·R for the honest prover's k.
        let a1 = generator() * share.response - verification * share.challenge;
        let a2 = sealed.ephemeral * share.response - share.share * share.challenge;
        let c = challenge(share.index, &verification, sealed, &share.share, [&a1, &a2], context);
        if c != share.challenge {
            return Err(EscrowError::BadDecryptionShare(share.index));
        }
        Ok(())
    }

    /// Opens `sealed` from decryption shares: every share's proof is checked, and `t`
    /// valid shares from distinct authorities are required. An invalid share is an error
    /// naming its authority, whatever the others are, so that a cheating authority is found.
    pub fn open(&self, sealed: &Sealed, shares: &[DecryptionShare], context: &[u8]) -> Result<u64, EscrowError> {
        let mut chosen: Vec<&DecryptionShare> = Vec::new();
        for share in shares {
            self.verify_share(sealed, share, context)?;
            if !chosen.iter().any(|c| c.index == share.index) {
                chosen.push(share);
            }
        }
        let t = usize::from(self.committee.threshold);
        if chosen.len() < t {
            return Err(EscrowError::TooFewShares { found: chosen.len(), threshold: self.committee.threshold });
        }
        chosen.truncate(t);
        let indices: Vec<u16> = chosen.iter().map(|s| s.index).collect();
        let shared = lagrange(&indices, 0).iter().zip(&chosen).map(|(lambda, s)| s.share * lambda).sum();
        let value = sealed.masked - mask(&shared);
        let bytes = value.to_bytes_le();
        if bytes[(SEALED_VALUE_BITS / 8) as usize..].iter().any(|b| *b != 0) {
            return Err(EscrowError::NotSealedUnderKey);
        }
        Ok(u64::from(u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"))))
    }
}

// ---- the proof that a sealed value is well formed -----------------------------------------

impl Sealed {
    /// The public inputs of [`SealCircuit`] for this sealed value under `key`: the key's
    /// and `R`'s coordinates, then the masked value.
    pub fn public_inputs(&self, key: &EscrowKey) -> Vec<Fr> {
        let mut inputs = public_key_inputs(&key.public).to_vec();
        inputs.extend(self.inputs());
        inputs
    }

    /// `R`'s coordinates and the masked value, as a proof's public inputs.
    pub fn inputs(&self) -> [Fr; 3] {
        let (ru, rv) = coordinates(&self.ephemeral);
        [ru, rv, self.masked]
    }
}

/// A key point's coordinates, as a proof's public inputs.
pub fn public_key_inputs(key: &SubgroupPoint) -> [Fr; 2] {
    let (u, v) = coordinates(key);
    [u, v]
}

/// In a circuit: allocates the escrow key's coordinates as public inputs (the verifier
/// supplies the key the consortium recorded, so the circuit need not check it is a point).
pub fn alloc_key_input<CS: ConstraintSystem<Fr>>(mut cs: CS, key: &SubgroupPoint) -> Result<Point, SynthesisError> {
    let (yu, yv) = coordinates(key);
    let u = AllocatedNum::alloc_input(cs.namespace(|| "key u"), || Ok(yu))?;
    let v = AllocatedNum::alloc_input(cs.namespace(|| "key v"), || Ok(yv))?;
    Ok(Point { u: Lc::num(&u), v: Lc::num(&v) })
}

/// In a circuit: makes `R` and the masked value public inputs, equal to what
/// [`seal_gadget`] computed (3 constraints).
pub fn inputize_sealed<CS: ConstraintSystem<Fr>>(
    mut cs: CS,
    ephemeral: &Point,
    masked: &Lc,
) -> Result<(), SynthesisError> {
    let (ru, rv) = ephemeral.value();
    let r_u = AllocatedNum::alloc_input(cs.namespace(|| "R u"), || Ok(ru))?;
    let r_v = AllocatedNum::alloc_input(cs.namespace(|| "R v"), || Ok(rv))?;
    edwards::enforce_equal(cs.namespace(|| "R"), ephemeral, &Lc::num(&r_u).lc, &Lc::num(&r_v).lc);
    let c = AllocatedNum::alloc_input(cs.namespace(|| "masked input"), || Ok(masked.value))?;
    cs.enforce(|| "masked equals input", |_| masked.lc.clone(), |lc| lc + CS::one(), |lc| lc + c.get_variable());
    Ok(())
}

/// The bits of a Jubjub scalar, least significant first (its order is below 2^252).
pub const SCALAR_BITS: usize = 252;

/// In a circuit: seals `value` (a range-checked credential index) under the escrow key
/// `key` with randomness `randomness`, and returns `R` and the masked value. A
/// fixed-base and a variable-base multiplication, one Poseidon hash; [`SealCircuit`],
/// which adds the index's range check and the public inputs, is 5,660 constraints.
pub fn seal_gadget<CS: ConstraintSystem<Fr>>(
    mut cs: CS,
    key: &Point,
    value: &Lc,
    randomness: &Scalar,
) -> Result<(Point, Lc), SynthesisError> {
    let repr = randomness.to_bytes();
    let bits = (0..SCALAR_BITS)
        .map(|i| gadgets::alloc_bit(cs.namespace(|| format!("r bit {i}")), (repr[i / 8] >> (i % 8)) & 1 == 1))
        .collect::<Result<Vec<_>, _>>()?;
    let ephemeral = edwards::fixed_base_mul(cs.namespace(|| "r·G"), &generator(), &bits)?;
    // r ≢ 0: R is not the identity, whose u is 0 (no other point of the prime-order
    // subgroup has u = 0); with R the identity the mask would be public (1 constraint).
    let inv_u = Option::<Fr>::from(ephemeral.u.value.invert()).unwrap_or(Fr::ZERO);
    let inv = cs.alloc(|| "inverse of R_u", || Ok(inv_u))?;
    cs.enforce(|| "R is not the identity", |_| ephemeral.u.lc.clone(), |lc| lc + inv, |lc| lc + CS::one());
    let shared = edwards::variable_base_mul(cs.namespace(|| "r·Y"), key, &bits)?;
    let domain = gadgets::alloc_constant(cs.namespace(|| "mask domain"), fr_from_u64(MASK_DOMAIN))?;
    let su = gadgets::alloc_lc(cs.namespace(|| "S u"), &shared.u)?;
    let sv = gadgets::alloc_lc(cs.namespace(|| "S v"), &shared.v)?;
    let mask = hash3_gadget(cs.namespace(|| "mask"), [&domain, &su, &sv])?;
    Ok((ephemeral, value.add(&Lc::num(&mask))))
}

/// The statement that a [`Sealed`] value seals a credential index below 2^32 under the
/// escrow key: public inputs as [`Sealed::public_inputs`]; witnesses the index and the
/// sealing randomness. The verifier supplies the key the consortium recorded, so the
/// circuit need not check that it is a curve point. This is the verifiable-encryption
/// part a requester's policy proof is to carry (docs/privacy.md); on its own it shows
/// the cost and soundness of that part.
#[derive(Clone, Debug)]
pub struct SealCircuit {
    pub key: SubgroupPoint,
    pub value: u64,
    pub randomness: Scalar,
}

impl Circuit<Fr> for SealCircuit {
    fn synthesize<CS: ConstraintSystem<Fr>>(self, cs: &mut CS) -> Result<(), SynthesisError> {
        let key = alloc_key_input(cs.namespace(|| "escrow key"), &self.key)?;
        let (value, _) = gadgets::alloc_uint(cs.namespace(|| "index"), self.value, SEALED_VALUE_BITS as usize)?;
        let (ephemeral, masked) = seal_gadget(cs.namespace(|| "seal"), &key, &Lc::num(&value), &self.randomness)?;
        inputize_sealed(cs.namespace(|| "sealed"), &ephemeral, &masked)
    }
}

// ---- encodings ---------------------------------------------------------------------------

fn read_point(r: &mut Reader<'_>, what: &'static str) -> Result<SubgroupPoint, DecodeError> {
    let bytes = r.array::<32>()?;
    Option::from(SubgroupPoint::from_bytes(&bytes)).ok_or(DecodeError::InvalidPoint { what })
}
fn read_nonzero_point(r: &mut Reader<'_>, what: &'static str) -> Result<SubgroupPoint, DecodeError> {
    let p = read_point(r, what)?;
    if bool::from(p.is_identity()) {
        return Err(DecodeError::InvalidPoint { what });
    }
    Ok(p)
}
fn read_scalar(r: &mut Reader<'_>, what: &'static str) -> Result<Scalar, DecodeError> {
    let bytes = r.array::<32>()?;
    Option::from(Scalar::from_repr(bytes))
        .ok_or_else(|| DecodeError::Invalid { what, reason: "scalar not below the group order".into() })
}
fn read_committee(r: &mut Reader<'_>, what: &'static str) -> Result<Committee, DecodeError> {
    let (threshold, authorities) = (r.u16()?, r.u16()?);
    Committee::new(threshold, authorities).map_err(|e| DecodeError::Invalid { what, reason: e.to_string() })
}
fn read_index(r: &mut Reader<'_>, what: &'static str) -> Result<u16, DecodeError> {
    let index = r.u16()?;
    if index == 0 || index > AUTHORITIES_MAX {
        return Err(DecodeError::Invalid { what, reason: format!("authority {index} out of range") });
    }
    Ok(index)
}

impl Codec for Dealing {
    const TAG: u8 = tags::ESCROW_DEALING;
    const NAME: &'static str = "escrow dealing";
    const MAX_LEN: usize = 2 + 2 + 4 + 32 * AUTHORITIES_MAX as usize + 64;
    fn encode_body(&self, w: &mut Writer) {
        w.u16(self.dealer);
        w.u32(self.commitments.len() as u32);
        self.commitments.iter().for_each(|c| w.fixed(&c.to_bytes()));
        w.fixed(&self.knowledge.commitment.to_bytes());
        w.fixed(&self.knowledge.response.to_bytes());
    }
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let dealer = read_index(r, Self::NAME)?;
        let n = r.count_sized(Self::NAME, usize::from(AUTHORITIES_MAX), 32)?;
        let commitments = (0..n).map(|_| read_point(r, "escrow dealing commitment")).collect::<Result<_, _>>()?;
        let knowledge = Knowledge {
            commitment: read_point(r, "escrow dealing proof commitment")?,
            response: read_scalar(r, "escrow dealing proof response")?,
        };
        Ok(Self { dealer, commitments, knowledge })
    }
}

impl Codec for DkgShare {
    const TAG: u8 = tags::ESCROW_DKG_SHARE;
    const NAME: &'static str = "escrow DKG share";
    const MAX_LEN: usize = 2 + 2 + 2 + 32;
    fn encode_body(&self, w: &mut Writer) {
        w.u16(self.dealer);
        w.u16(self.recipient);
        w.fixed(&self.value.to_bytes());
    }
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let dealer = read_index(r, Self::NAME)?;
        let recipient = read_index(r, Self::NAME)?;
        Ok(Self { dealer, recipient, value: read_scalar(r, Self::NAME)? })
    }
}

impl Codec for EscrowKey {
    const TAG: u8 = tags::ESCROW_KEY;
    const NAME: &'static str = "escrow key";
    const MAX_LEN: usize = 2 + 4 + 32 + 32 * AUTHORITIES_MAX as usize;
    fn encode_body(&self, w: &mut Writer) {
        w.u16(self.committee.threshold);
        w.u16(self.committee.authorities);
        w.fixed(&self.public.to_bytes());
        self.verification.iter().for_each(|v| w.fixed(&v.to_bytes()));
    }
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let committee = read_committee(r, Self::NAME)?;
        let public = read_nonzero_point(r, "escrow public key")?;
        let verification: Vec<SubgroupPoint> = (0..committee.authorities)
            .map(|_| read_nonzero_point(r, "escrow verification key"))
            .collect::<Result<_, _>>()?;
        // The verification keys are a degree t − 1 polynomial's values at 1..=n whose value
        // at 0 is the public key: interpolate from the first t, check the rest and 0. At
        // most 64 authorities bound the cost (some thousand scalar multiplications).
        let t = committee.threshold;
        let first: Vec<u16> = (1..=t).collect();
        let at = |x: u16| -> SubgroupPoint {
            lagrange(&first, x).iter().zip(&verification).map(|(lambda, v)| v * lambda).sum()
        };
        if at(0) != public || (t + 1..=committee.authorities).any(|j| at(j) != verification[usize::from(j) - 1]) {
            return Err(DecodeError::Invalid {
                what: Self::NAME,
                reason: "the verification keys are not shares of the public key".into(),
            });
        }
        Ok(Self { committee, public, verification })
    }
}

impl Codec for AuthoritySecret {
    const TAG: u8 = tags::ESCROW_AUTHORITY_SECRET;
    const NAME: &'static str = "escrow authority secret";
    const MAX_LEN: usize = 2 + 2 + 32;
    fn encode_body(&self, w: &mut Writer) {
        w.u16(self.index);
        w.fixed(&self.secret.to_bytes());
    }
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let index = read_index(r, Self::NAME)?;
        Ok(Self { index, secret: read_scalar(r, Self::NAME)? })
    }
}

impl Codec for Sealed {
    const TAG: u8 = tags::ESCROW_SEALED;
    const NAME: &'static str = "sealed identity";
    const MAX_LEN: usize = 2 + 32 + 32;
    fn encode_body(&self, w: &mut Writer) {
        w.fixed(&self.ephemeral.to_bytes());
        w.fixed(&self.masked.to_bytes_le());
    }
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let ephemeral = read_nonzero_point(r, "sealed identity R")?;
        let masked = fr_from_bytes(&r.array::<32>()?).ok_or_else(|| DecodeError::Invalid {
            what: Self::NAME,
            reason: "value not below the field order".into(),
        })?;
        Ok(Self { ephemeral, masked })
    }
}

impl Codec for DecryptionShare {
    const TAG: u8 = tags::ESCROW_DECRYPTION_SHARE;
    const NAME: &'static str = "escrow decryption share";
    const MAX_LEN: usize = 2 + 2 + 32 * 3;
    fn encode_body(&self, w: &mut Writer) {
        w.u16(self.index);
        w.fixed(&self.share.to_bytes());
        w.fixed(&self.challenge.to_bytes());
        w.fixed(&self.response.to_bytes());
    }
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let index = read_index(r, Self::NAME)?;
        let share = read_point(r, "escrow decryption share D")?;
        let challenge = read_scalar(r, Self::NAME)?;
        let response = read_scalar(r, Self::NAME)?;
        Ok(Self { index, share, challenge, response })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    /// What `t − 1` colluding authorities can compute: their shares interpolated as if the
    /// threshold were theirs. It is not the shared point, so the mask stays unknown to them.
    #[test]
    fn fewer_than_t_shares_interpolate_to_the_wrong_point() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let committee = Committee::new(3, 4).unwrap();
        let (mut dealings, mut shares) = (Vec::new(), Vec::new());
        for dealer in 1..=4 {
            let (d, s) = deal(&committee, dealer, &mut rng).unwrap();
            dealings.push(d);
            shares.extend(s);
        }
        let key = EscrowKey::from_dealings(&committee, &dealings).unwrap();
        let (sealed, r) = seal(&key, 77, &mut rng).unwrap();
        let shared = key.public * r;
        let secret = |i| AuthoritySecret::from_shares(&committee, i, &dealings, &shares).unwrap().secret;
        let interpolate = |who: &[u16]| -> SubgroupPoint {
            lagrange(who, 0).iter().zip(who).map(|(lambda, j)| sealed.ephemeral * (secret(*j) * lambda)).sum()
        };
        assert_eq!(interpolate(&[1, 2, 4]), shared, "t shares give the shared point");
        for pair in [[1, 2], [2, 4], [3, 1]] {
            let guess = interpolate(&pair);
            assert_ne!(guess, shared, "{pair:?}");
            assert_ne!(sealed.masked - mask(&guess), fr_from_u64(77), "{pair:?}");
        }
    }
}
