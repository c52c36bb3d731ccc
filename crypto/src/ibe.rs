//! ESKI-IBE: escrow-free identity-based key issuing over Boneh–Franklin IBE
//! (DESIGN.md §4.2; Boneh and Franklin, "Identity-Based Encryption from the Weil Pairing",
//! CRYPTO 2001, §4 BasicIdent/FullIdent with a KEM+AEAD in place of the FO transform).
//!
//! The master secret is the product `s = s_0·s_1···s_n` of the KGC's share `s_0` and one
//! share per CPC; no single authority can compute a private key.
//!
//! - Public chain: `S_i = s_i·P1`, `Y_0 = s_0·P2`, `Y_i = s_i·Y_(i−1)`, master `Y = Y_n`.
//!   Anyone checks `e(S_0, P2) = e(P1, Y_0)` and `e(S_i, Y_(i−1)) = e(P1, Y_i)`.
//! - Request: `Q = H_G1(ID)`, blinding `x ← Fr*`, `X_0 = x·Q`, with a Schnorr proof of
//!   knowledge of `x` for base `Q` (Fiat–Shamir, bound to the identity and a fresh nonce),
//!   signed with the member's certified Ed25519 key. Thus keys are issued only for the
//!   authenticated identity, and the authorities never see `Q`'s key.
//! - Issuing: the KGC returns `D_0 = s_0·X_0`; CPC_i checks `e(D_(i−1), P2) = e(X_0, Y_(i−1))`
//!   and returns `D_i = s_i·D_(i−1)`. The requester checks every step,
//!   `e(D_i, P2) = e(X_0, Y_i)`, so a wrong share is detected and its authority named.
//! - Unblinding: `S_ID = x⁻¹·D_n`, checked by `e(S_ID, P2) = e(Q, Y)`.
//! - Encrypt to ID: `U = r·P2`, `K = KDF(e(Q, Y)^r ‖ U ‖ ID)`, ChaCha20-Poly1305.
//!   Decrypt: `e(S_ID, U) = e(Q, Y)^r`.

use blstrs::{Bls12, G1Affine, G1Projective, G2Affine, G2Prepared, G2Projective, Gt, Scalar};
use ff::Field;
use group::{Curve, Group};
use pairing::{MillerLoopResult, MultiMillerLoop};
use rand_core::CryptoRngCore;

use crate::cbsre::random_nonzero;
use crate::cert::{Certificate, TrustContext};
use crate::encoding::{check_ident, tags, Codec, Reader, Writer, IDENT_LEN_MAX};
use crate::error::{CryptoError, DecodeError, IbeProblem};
use crate::hash::{gt_bytes, hash_to_g1, hash_to_scalar, AeadKey, Transcript, AEAD_TAG_LEN};
use crate::sign::{self, SigningKeypair, SIGNATURE_LEN};

/// Most authorities (KGC + CPCs) in one chain.
pub const AUTHORITIES_MAX: usize = 16;
/// Largest IBE plaintext (keys and tokens are small; an ABE user key is the largest).
pub const PLAINTEXT_LEN_MAX: usize = 1 << 20;

const REQUEST_SIGN_USE: &str = "eski-key-request";

/// `e(a, b) == e(c, d)`, by one multi-Miller loop and one final exponentiation.
pub(crate) fn pairings_equal(a: &G1Affine, b: &G2Affine, c: &G1Affine, d: &G2Affine) -> bool {
    let neg_c = (-G1Projective::from(*c)).to_affine();
    let b = G2Prepared::from(*b);
    let d = G2Prepared::from(*d);
    bool::from(Bls12::multi_miller_loop(&[(a, &b), (&neg_c, &d)]).final_exponentiation().is_identity())
}

fn p1() -> G1Affine {
    G1Affine::from(G1Projective::generator())
}
fn p2() -> G2Affine {
    G2Affine::from(G2Projective::generator())
}

/// `Q = H_G1(ID)`.
pub fn identity_point(identity: &str) -> G1Affine {
    hash_to_g1("eski-ibe-identity", identity.as_bytes()).to_affine()
}

/// One authority's secret share (index 0 is the KGC, 1..=n the CPCs).
#[derive(Clone)]
pub struct AuthoritySecret {
    pub index: usize,
    pub name: String,
    s: Scalar,
}

impl std::fmt::Debug for AuthoritySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthoritySecret").field("index", &self.index).field("name", &self.name).finish_non_exhaustive()
    }
}

impl AuthoritySecret {
    pub fn generate(rng: &mut impl CryptoRngCore, index: usize, name: &str) -> Result<Self, CryptoError> {
        check_ident("authority name", name)?;
        if index >= AUTHORITIES_MAX {
            return Err(CryptoError::InvalidArgument(format!("authority index {index} exceeds {AUTHORITIES_MAX}")));
        }
        Ok(Self { index, name: name.to_owned(), s: random_nonzero(rng) })
    }

    /// This authority's link of the public chain: `(S_i, Y_i)` from `Y_(i−1)` (the KGC,
    /// index 0, starts from `P2`).
    pub fn contribute(&self, prev_y: Option<&G2Affine>) -> (G1Affine, G2Affine) {
        let base = prev_y.copied().unwrap_or_else(p2);
        ((G1Projective::generator() * self.s).to_affine(), (G2Projective::from(base) * self.s).to_affine())
    }

    /// Issues this authority's share for an authenticated request. The KGC (index 0)
    /// multiplies the blinded point; a CPC first checks the previous authority's share.
    pub fn issue_share(
        &self,
        params: &IbePublicParams,
        request: &KeyRequest,
        previous: Option<&KeyShare>,
        requester_cert: &Certificate,
        trust: &TrustContext<'_>,
    ) -> Result<KeyShare, CryptoError> {
        request.authenticate(requester_cert, trust)?;
        let base = match (self.index, previous) {
            (0, None) => request.x0,
            (i, Some(prev)) if i > 0 => {
                if prev.index as usize + 1 != i {
                    return Err(CryptoError::Ibe(IbeProblem::WrongStep {
                        expected: i - 1,
                        found: prev.index as usize,
                    }));
                }
                params.verify_share(request, prev)?;
                prev.d
            }
            (i, _) => {
                return Err(CryptoError::InvalidArgument(format!(
                    "authority {i} {} a previous share",
                    if i == 0 { "takes no" } else { "needs" }
                )))
            }
        };
        Ok(KeyShare {
            index: self.index as u32,
            authority: self.name.clone(),
            d: (G1Projective::from(base) * self.s).to_affine(),
        })
    }
}

impl Codec for AuthoritySecret {
    const TAG: u8 = tags::IBE_AUTHORITY_SECRET;
    const NAME: &'static str = "ESKI-IBE authority secret";
    const MAX_LEN: usize = 2 + 1 + 4 + IDENT_LEN_MAX + 32;
    fn encode_body(&self, w: &mut Writer) {
        w.u8(self.index as u8);
        w.str(&self.name);
        w.scalar(&self.s);
    }
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let index = r.u8()? as usize;
        if index >= AUTHORITIES_MAX {
            return Err(DecodeError::Invalid {
                what: "authority index",
                reason: format!("{index} >= {AUTHORITIES_MAX}"),
            });
        }
        Ok(Self { index, name: r.ident("authority name")?, s: r.nonzero_scalar("authority share")? })
    }
}

/// The public, verifiable master-key chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IbePublicParams {
    /// Authority names; index 0 is the KGC.
    pub authorities: Vec<String>,
    pub s_pub: Vec<G1Affine>,
    pub y: Vec<G2Affine>,
}

impl IbePublicParams {
    /// Runs the whole setup in one place (genesis tooling and tests): the KGC and each CPC
    /// generate a share and extend the chain in order.
    pub fn setup(rng: &mut impl CryptoRngCore, names: &[&str]) -> Result<(Self, Vec<AuthoritySecret>), CryptoError> {
        if names.len() < 2 || names.len() > AUTHORITIES_MAX {
            return Err(CryptoError::InvalidArgument(format!(
                "ESKI-IBE needs a KGC and 1..{} CPCs, got {} authorities",
                AUTHORITIES_MAX - 1,
                names.len()
            )));
        }
        let mut secrets = Vec::with_capacity(names.len());
        let mut params = Self { authorities: Vec::new(), s_pub: Vec::new(), y: Vec::new() };
        for (i, name) in names.iter().enumerate() {
            let secret = AuthoritySecret::generate(rng, i, name)?;
            let (s, y) = secret.contribute(params.y.last());
            params.authorities.push((*name).to_owned());
            params.s_pub.push(s);
            params.y.push(y);
            secrets.push(secret);
        }
        Ok((params, secrets))
    }

    /// The master public key `Y = Y_n`.
    pub fn master(&self) -> G2Affine {
        *self.y.last().expect("a decoded or set-up chain is never empty")
    }

    /// Checks every link of the chain; names the first broken one.
    pub fn verify_chain(&self) -> Result<(), CryptoError> {
        let n = self.authorities.len();
        if self.s_pub.len() != n || self.y.len() != n || n < 2 {
            return Err(CryptoError::Ibe(IbeProblem::ChainLength {
                expected: n,
                found: self.y.len().min(self.s_pub.len()),
            }));
        }
        for i in 0..n {
            let prev = if i == 0 { p2() } else { self.y[i - 1] };
            if !pairings_equal(&self.s_pub[i], &prev, &p1(), &self.y[i]) {
                return Err(CryptoError::Ibe(IbeProblem::BadChainLink {
                    index: i,
                    authority: self.authorities[i].clone(),
                }));
            }
        }
        Ok(())
    }

    /// The requester's check of one share: `e(D_i, P2) = e(X_0, Y_i)`.
    pub fn verify_share(&self, request: &KeyRequest, share: &KeyShare) -> Result<(), CryptoError> {
        let i = share.index as usize;
        let bad = || CryptoError::Ibe(IbeProblem::BadShare { index: i, authority: share.authority.clone() });
        if i >= self.y.len() || self.authorities[i] != share.authority {
            return Err(bad());
        }
        if pairings_equal(&share.d, &p2(), &request.x0, &self.y[i]) {
            Ok(())
        } else {
            Err(bad())
        }
    }
}

impl Codec for IbePublicParams {
    const TAG: u8 = tags::IBE_PUBLIC_PARAMS;
    const NAME: &'static str = "ESKI-IBE public parameters";
    const MAX_LEN: usize = 2 + 4 + AUTHORITIES_MAX * (4 + IDENT_LEN_MAX + 48 + 96);
    fn encode_body(&self, w: &mut Writer) {
        w.u32(self.authorities.len() as u32);
        for ((name, s), y) in self.authorities.iter().zip(&self.s_pub).zip(&self.y) {
            w.str(name);
            w.g1(s);
            w.g2(y);
        }
    }
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.count("authorities", AUTHORITIES_MAX)?;
        if n < 2 {
            return Err(DecodeError::Invalid {
                what: "authorities",
                reason: "a KGC and at least one CPC are required".into(),
            });
        }
        let mut p = Self { authorities: Vec::with_capacity(n), s_pub: Vec::with_capacity(n), y: Vec::with_capacity(n) };
        for _ in 0..n {
            p.authorities.push(r.ident("authority name")?);
            p.s_pub.push(r.g1("S_i")?);
            p.y.push(r.g2("Y_i")?);
        }
        Ok(p)
    }
}

/// A blinded, authenticated key request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRequest {
    pub identity: String,
    pub x0: G1Affine,
    pub pok_commitment: G1Affine,
    pub pok_response: Scalar,
    /// Fresh per request; authorities may refuse a nonce they have already served.
    pub nonce: [u8; 32],
    pub signature: [u8; SIGNATURE_LEN],
}

/// The requester's secret state between request and unblinding.
pub struct BlindingState {
    identity: String,
    x: Scalar,
}

fn pok_challenge(identity: &str, q: &G1Affine, x0: &G1Affine, t: &G1Affine, nonce: &[u8; 32]) -> Scalar {
    let tr = Transcript::new()
        .part(identity.as_bytes())
        .part(&q.to_compressed())
        .part(&x0.to_compressed())
        .part(&t.to_compressed())
        .part(nonce);
    hash_to_scalar("eski-blinding-pok", tr.as_bytes())
}

impl KeyRequest {
    /// Creates a blinded request for `identity`, signed with the member's signing key.
    pub fn new(
        rng: &mut impl CryptoRngCore,
        identity: &str,
        signer: &SigningKeypair,
    ) -> Result<(Self, BlindingState), CryptoError> {
        check_ident("identity", identity)?;
        let q = identity_point(identity);
        let x = random_nonzero(rng);
        let x0 = (G1Projective::from(q) * x).to_affine();
        let t = random_nonzero(rng);
        let commitment = (G1Projective::from(q) * t).to_affine();
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        let c = pok_challenge(identity, &q, &x0, &commitment, &nonce);
        let mut req = Self {
            identity: identity.to_owned(),
            x0,
            pok_commitment: commitment,
            pok_response: t + c * x,
            nonce,
            signature: [0; SIGNATURE_LEN],
        };
        req.signature = signer.sign(REQUEST_SIGN_USE, &req.signed_bytes());
        Ok((req, BlindingState { identity: identity.to_owned(), x }))
    }

    fn encode_unsigned(&self, w: &mut Writer) {
        w.str(&self.identity);
        w.g1(&self.x0);
        w.g1(&self.pok_commitment);
        w.scalar(&self.pok_response);
        w.fixed(&self.nonce);
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.encode_unsigned(&mut w);
        w.into_bytes()
    }

    /// Checks the proof of knowledge: `z·Q = T + c·X_0`.
    pub fn verify_proof(&self) -> Result<(), CryptoError> {
        let q = identity_point(&self.identity);
        let c = pok_challenge(&self.identity, &q, &self.x0, &self.pok_commitment, &self.nonce);
        let lhs = G1Projective::from(q) * self.pok_response;
        let rhs = G1Projective::from(self.pok_commitment) + G1Projective::from(self.x0) * c;
        if lhs == rhs {
            Ok(())
        } else {
            Err(CryptoError::Ibe(IbeProblem::BadBlindingProof))
        }
    }

    /// What each authority checks: a valid certificate for exactly this identity, the
    /// member's signature on the request, and the proof of knowledge.
    pub fn authenticate(&self, cert: &Certificate, trust: &TrustContext<'_>) -> Result<(), CryptoError> {
        trust.verify(cert)?;
        if cert.subject() != self.identity {
            return Err(CryptoError::Ibe(IbeProblem::IdentityMismatch {
                request: self.identity.clone(),
                certificate: cert.subject().to_owned(),
            }));
        }
        cert.verify_member_signature(REQUEST_SIGN_USE, &self.signed_bytes(), &self.signature)?;
        self.verify_proof()
    }
}

impl Codec for KeyRequest {
    const TAG: u8 = tags::IBE_KEY_REQUEST;
    const NAME: &'static str = "ESKI-IBE key request";
    const MAX_LEN: usize = 2 + 4 + IDENT_LEN_MAX + 48 + 48 + 32 + 32 + SIGNATURE_LEN;
    fn encode_body(&self, w: &mut Writer) {
        self.encode_unsigned(w);
        w.fixed(&self.signature);
    }
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            identity: r.ident("identity")?,
            x0: r.g1("blinded identity X_0")?,
            pok_commitment: r.g1("proof commitment")?,
            pok_response: r.scalar("proof response")?,
            nonce: r.array()?,
            signature: sign::read_signature(r)?,
        })
    }
}

/// One authority's answer `D_i`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyShare {
    pub index: u32,
    pub authority: String,
    pub d: G1Affine,
}

impl Codec for KeyShare {
    const TAG: u8 = tags::IBE_KEY_SHARE;
    const NAME: &'static str = "ESKI-IBE key share";
    const MAX_LEN: usize = 2 + 4 + 4 + IDENT_LEN_MAX + 48;
    fn encode_body(&self, w: &mut Writer) {
        w.u32(self.index);
        w.str(&self.authority);
        w.g1(&self.d);
    }
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let index = r.u32()?;
        if index as usize >= AUTHORITIES_MAX {
            return Err(DecodeError::Invalid { what: "share index", reason: format!("{index} >= {AUTHORITIES_MAX}") });
        }
        Ok(Self { index, authority: r.ident("authority name")?, d: r.g1("key share D_i")? })
    }
}

/// An identity's private key `S_ID = s·Q`.
#[derive(Clone, PartialEq, Eq)]
pub struct IbePrivateKey {
    pub identity: String,
    s_id: G1Affine,
}

impl std::fmt::Debug for IbePrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IbePrivateKey").field("identity", &self.identity).finish_non_exhaustive()
    }
}

impl BlindingState {
    /// Checks every share in order (naming a wrong one), unblinds and checks the key.
    pub fn finish(
        self,
        params: &IbePublicParams,
        request: &KeyRequest,
        shares: &[KeyShare],
    ) -> Result<IbePrivateKey, CryptoError> {
        if shares.len() != params.authorities.len() {
            return Err(CryptoError::Ibe(IbeProblem::ChainLength {
                expected: params.authorities.len(),
                found: shares.len(),
            }));
        }
        for (i, share) in shares.iter().enumerate() {
            if share.index as usize != i {
                return Err(CryptoError::Ibe(IbeProblem::WrongStep { expected: i, found: share.index as usize }));
            }
            params.verify_share(request, share)?;
        }
        let x_inv = Option::<Scalar>::from(self.x.invert()).expect("the blinding factor is non-zero");
        let last = shares.last().expect("length checked above");
        let s_id = (G1Projective::from(last.d) * x_inv).to_affine();
        let q = identity_point(&self.identity);
        if !pairings_equal(&s_id, &p2(), &q, &params.master()) {
            return Err(CryptoError::Ibe(IbeProblem::BadUnblindedKey));
        }
        Ok(IbePrivateKey { identity: self.identity, s_id })
    }
}

impl Codec for IbePrivateKey {
    const TAG: u8 = tags::IBE_PRIVATE_KEY;
    const NAME: &'static str = "ESKI-IBE private key";
    const MAX_LEN: usize = 2 + 4 + IDENT_LEN_MAX + 48;
    fn encode_body(&self, w: &mut Writer) {
        w.str(&self.identity);
        w.g1(&self.s_id);
    }
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self { identity: r.ident("identity")?, s_id: r.g1("private key")? })
    }
}

/// Boneh–Franklin hybrid ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IbeCiphertext {
    pub identity: String,
    pub u: G2Affine,
    pub ciphertext: Vec<u8>,
}

fn ibe_key(g: &Gt, u: &G2Affine, identity: &str) -> AeadKey {
    let ikm = Transcript::new().part(&gt_bytes(g)).part(&u.to_compressed()).part(identity.as_bytes());
    AeadKey::derive("eski-ibe-kem", ikm.as_bytes(), b"")
}

/// Encrypts to an identity under the master public key; `aad` is bound but not encrypted.
pub fn encrypt(
    rng: &mut impl CryptoRngCore,
    params: &IbePublicParams,
    identity: &str,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<IbeCiphertext, CryptoError> {
    check_ident("identity", identity)?;
    if plaintext.len() > PLAINTEXT_LEN_MAX {
        return Err(CryptoError::InvalidArgument(format!("IBE plaintext exceeds {PLAINTEXT_LEN_MAX} bytes")));
    }
    let r = random_nonzero(rng);
    let u = (G2Projective::generator() * r).to_affine();
    // e(Q, Y)^r = e(r·Q, Y): one G1 multiplication instead of a GT exponentiation.
    let rq = (G1Projective::from(identity_point(identity)) * r).to_affine();
    let g = blstrs::pairing(&rq, &params.master());
    let ciphertext = ibe_key(&g, &u, identity).seal(plaintext, aad);
    Ok(IbeCiphertext { identity: identity.to_owned(), u, ciphertext })
}

impl IbePrivateKey {
    /// Decrypts a ciphertext addressed to this key's identity.
    pub fn decrypt(&self, ct: &IbeCiphertext, aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if ct.identity != self.identity {
            return Err(CryptoError::Decryption("ciphertext is addressed to another identity"));
        }
        let g = blstrs::pairing(&self.s_id, &ct.u);
        ibe_key(&g, &ct.u, &self.identity).open(&ct.ciphertext, aad)
    }
}

impl Codec for IbeCiphertext {
    const TAG: u8 = tags::IBE_CIPHERTEXT;
    const NAME: &'static str = "IBE ciphertext";
    const MAX_LEN: usize = 2 + 4 + IDENT_LEN_MAX + 96 + 4 + PLAINTEXT_LEN_MAX + AEAD_TAG_LEN;
    fn encode_body(&self, w: &mut Writer) {
        w.str(&self.identity);
        w.g2(&self.u);
        w.bytes(&self.ciphertext);
    }
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let identity = r.ident("identity")?;
        let u = r.g2("IBE U")?;
        let ciphertext = r.bytes("IBE ciphertext", PLAINTEXT_LEN_MAX + AEAD_TAG_LEN)?.to_vec();
        if ciphertext.len() < AEAD_TAG_LEN {
            return Err(DecodeError::Invalid { what: "IBE ciphertext", reason: "shorter than the AEAD tag".into() });
        }
        Ok(Self { identity, u, ciphertext })
    }
}
