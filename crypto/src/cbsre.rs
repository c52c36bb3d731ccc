//! CBSRE: certificate-based signcryption with proxy re-encryption (DESIGN.md §4.1).
//!
//! An Umbral-style KEM (Nuñez, "Umbral: a threshold proxy re-encryption scheme", 2017,
//! §3–4, here with one proxy: t = n = 1) on BLS12-381 G1, combined with ChaCha20-Poly1305
//! and an Ed25519 signature under the owner's certified signing key.
//!
//! - Owner delegating key `a`, `A = a·P1` (certified, separate from identity keys).
//! - Signcrypt `m`: `r, u ← Fr*`, `E = r·P1`, `V = u·P1`, `h = H(E, V)`, `σ = u + r·h`;
//!   capsule `κ = (E, V, σ)`; `K = KDF((r + u)·A ‖ κ)`; `c = AEAD_K(m, aad = header)`;
//!   `sig = Sign(header ‖ κ ‖ c)`. Capsule check: `σ·P1 = V + h·E`.
//! - Owner decrypt: `K = KDF(a·(E + V) ‖ κ)`.
//! - Re-key to `B = b·P1`: `x ← Fr*`, `X = x·P1`, `d = H(X, B, x·B)`, `rk = a·d⁻¹`, in a
//!   token signed by the owner and scoped to (owner, requester, dataset, grant, expiry).
//! - Re-encrypt (CPC): check the capsule, `E' = rk·E`, `V' = rk·V`.
//! - Requester decrypt: `d = H(X, B, b·X)`, `K = KDF(d·(E' + V') ‖ κ)`, verify the owner's
//!   signature. Correct because `d·rk·(E + V) = a·(r + u)·P1 = (r + u)·A`.
//!
//! Deviation from DESIGN.md, on purpose: the owner's signature covers the capsule as well
//! as header and ciphertext (`header ‖ κ ‖ c` instead of `header ‖ c`), so a CPC cannot
//! swap capsules between records of the same owner without the requester noticing.
//!
//! Known limit (as in Umbral): a CPC colluding with a requester learns `a`; delegating keys
//! are therefore separate from identity keys and rotate.
//!
//! Batch operations (capsule checks by one MSM over a random linear combination and 2N
//! scalar multiplications) live in the `reencrypt` module, which builds on the types here;
//! this module does not refer to it, so the two never import each other.

use blstrs::{G1Affine, G1Projective, Scalar};
use ff::Field;
use group::{Curve, Group};
use rand_core::CryptoRngCore;

use crate::encoding::{tags, Codec, Reader, Writer, IDENT_LEN_MAX};
use crate::error::{CryptoError, DecodeError, TokenProblem};
use crate::hash::{hash_to_scalar, AeadKey, Transcript, AEAD_TAG_LEN};
use crate::sign::{self, PublicKey, SigningKeypair, SIGNATURE_LEN};

/// Largest plaintext record (a FHIR Observation or Bundle) signcrypted as one unit. Larger
/// bundles are split by the storage layer.
pub const RECORD_LEN_MAX: usize = 4 << 20;
const CIPHERTEXT_LEN_MAX: usize = RECORD_LEN_MAX + AEAD_TAG_LEN;

const SIGN_USE: &str = "cbsre-signcrypt";
const TOKEN_SIGN_USE: &str = "cbsre-rekey-token";

/// A uniformly random non-zero scalar.
pub(crate) fn random_nonzero(rng: &mut impl CryptoRngCore) -> Scalar {
    loop {
        let s = Scalar::random(&mut *rng);
        if !bool::from(s.is_zero()) {
            return s;
        }
    }
}

/// An owner's or requester's delegating (PRE) secret key `a`.
#[derive(Clone, PartialEq, Eq)]
pub struct DelegatingSecretKey(pub(crate) Scalar);

impl std::fmt::Debug for DelegatingSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DelegatingSecretKey(..)")
    }
}

/// A delegating public key `A = a·P1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelegatingPublicKey(pub G1Affine);

impl DelegatingSecretKey {
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        Self(random_nonzero(rng))
    }
    pub fn public(&self) -> DelegatingPublicKey {
        DelegatingPublicKey((G1Projective::generator() * self.0).to_affine())
    }
}

impl Codec for DelegatingSecretKey {
    const TAG: u8 = tags::DELEGATING_SECRET;
    const NAME: &'static str = "delegating secret key";
    const MAX_LEN: usize = 2 + 32;
    fn encode_body(&self, w: &mut Writer) {
        w.scalar(&self.0);
    }
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self(r.nonzero_scalar("delegating secret key")?))
    }
}

impl Codec for DelegatingPublicKey {
    const TAG: u8 = tags::DELEGATING_PUBLIC;
    const NAME: &'static str = "delegating public key";
    const MAX_LEN: usize = 2 + 48;
    fn encode_body(&self, w: &mut Writer) {
        w.g1(&self.0);
    }
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self(r.g1("delegating public key")?))
    }
}

/// Identifier of a dataset (a hash chosen by its owner at registration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DatasetId(pub [u8; 32]);

impl DatasetId {
    /// The dataset id of an owner's named dataset.
    pub fn derive(owner: &str, name: &str) -> Self {
        Self(crate::hash::digest("dataset-id", &Transcript::new().part(owner.as_bytes()).part(name.as_bytes())))
    }
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Display for DatasetId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex()[..16])
    }
}

/// Public header of a signcrypted record, bound as AEAD associated data and signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    pub owner: String,
    pub dataset: DatasetId,
    pub record_index: u64,
    /// UNIX seconds at which the owner signcrypted the record.
    pub created_at: u64,
    /// e.g. `fhir-r4:observation` or `fhir-r4:bundle`.
    pub content_type: String,
}

impl RecordHeader {
    fn encode(&self, w: &mut Writer) {
        w.str(&self.owner);
        w.fixed(&self.dataset.0);
        w.u64(self.record_index);
        w.u64(self.created_at);
        w.str(&self.content_type);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            owner: r.ident("record owner")?,
            dataset: DatasetId(r.array()?),
            record_index: r.u64()?,
            created_at: r.u64()?,
            content_type: r.ident("content type")?,
        })
    }
    fn to_aad(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.encode(&mut w);
        w.into_bytes()
    }
    const LEN_MAX: usize = 4 + IDENT_LEN_MAX + 32 + 8 + 8 + 4 + IDENT_LEN_MAX;
}

/// The KEM capsule `κ = (E, V, σ)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capsule {
    pub e: G1Affine,
    pub v: G1Affine,
    pub sigma: Scalar,
}

impl Capsule {
    /// `h = H(E, V)`.
    pub fn challenge(&self) -> Scalar {
        let mut m = [0u8; 96];
        m[..48].copy_from_slice(&self.e.to_compressed());
        m[48..].copy_from_slice(&self.v.to_compressed());
        hash_to_scalar("cbsre-capsule", &m)
    }

    /// The capsule check `σ·P1 = V + h·E`.
    pub fn is_valid(&self) -> bool {
        let lhs = G1Projective::generator() * self.sigma;
        let rhs = G1Projective::from(self.v) + G1Projective::from(self.e) * self.challenge();
        lhs == rhs
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.g1(&self.e);
        w.g1(&self.v);
        w.scalar(&self.sigma);
    }
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self { e: r.g1("capsule E")?, v: r.g1("capsule V")?, sigma: r.scalar("capsule sigma")? })
    }
    fn bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.encode(&mut w);
        w.into_bytes()
    }
    pub const LEN: usize = 48 + 48 + 32;
}

impl Codec for Capsule {
    const TAG: u8 = tags::CAPSULE;
    const NAME: &'static str = "capsule";
    const MAX_LEN: usize = 2 + Capsule::LEN;
    fn encode_body(&self, w: &mut Writer) {
        self.encode(w);
    }
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::decode(r)
    }
}

fn kem_key(shared: &G1Affine, capsule: &Capsule) -> AeadKey {
    let ikm = Transcript::new().part(&shared.to_compressed()).part(&capsule.bytes());
    AeadKey::derive("cbsre-kem", ikm.as_bytes(), b"")
}

/// A record signcrypted by its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signcrypted {
    pub header: RecordHeader,
    pub capsule: Capsule,
    pub ciphertext: Vec<u8>,
    pub signature: [u8; SIGNATURE_LEN],
}

fn signed_bytes(header: &RecordHeader, capsule: &Capsule, ciphertext: &[u8]) -> Vec<u8> {
    let mut w = Writer::default();
    header.encode(&mut w);
    capsule.encode(&mut w);
    w.bytes(ciphertext);
    w.into_bytes()
}

/// Signcrypts `plaintext` for the owner's delegating key `owner_dk`, signed by `signer`.
pub fn signcrypt(
    rng: &mut impl CryptoRngCore,
    signer: &SigningKeypair,
    owner_dk: &DelegatingPublicKey,
    header: RecordHeader,
    plaintext: &[u8],
) -> Result<Signcrypted, CryptoError> {
    if plaintext.len() > RECORD_LEN_MAX {
        return Err(CryptoError::InvalidArgument(format!(
            "record of {} bytes exceeds the signcryption maximum of {RECORD_LEN_MAX} bytes",
            plaintext.len()
        )));
    }
    crate::encoding::check_ident("record owner", &header.owner)?;
    crate::encoding::check_ident("content type", &header.content_type)?;
    let r = random_nonzero(rng);
    let u = random_nonzero(rng);
    let g = G1Projective::generator();
    let mut capsule = Capsule { e: (g * r).to_affine(), v: (g * u).to_affine(), sigma: Scalar::ZERO };
    capsule.sigma = u + r * capsule.challenge();
    let shared = (G1Projective::from(owner_dk.0) * (r + u)).to_affine();
    let ciphertext = kem_key(&shared, &capsule).seal(plaintext, &header.to_aad());
    let signature = signer.sign(SIGN_USE, &signed_bytes(&header, &capsule, &ciphertext));
    Ok(Signcrypted { header, capsule, ciphertext, signature })
}

impl Signcrypted {
    /// Checks the owner's signature over header, capsule and ciphertext.
    pub fn verify_signature(&self, owner_signing_key: &PublicKey) -> Result<(), CryptoError> {
        sign::require(
            owner_signing_key,
            SIGN_USE,
            &signed_bytes(&self.header, &self.capsule, &self.ciphertext),
            &self.signature,
            "owner signature on a signcrypted record",
        )
    }

    /// Owner decryption: `K = KDF(a·(E + V) ‖ κ)`, after signature and capsule checks.
    pub fn owner_decrypt(
        &self,
        owner_dsk: &DelegatingSecretKey,
        owner_signing_key: &PublicKey,
    ) -> Result<Vec<u8>, CryptoError> {
        self.verify_signature(owner_signing_key)?;
        if !self.capsule.is_valid() {
            return Err(CryptoError::BadCapsule { index: 0 });
        }
        let shared =
            ((G1Projective::from(self.capsule.e) + G1Projective::from(self.capsule.v)) * owner_dsk.0).to_affine();
        kem_key(&shared, &self.capsule).open(&self.ciphertext, &self.header.to_aad())
    }
}

impl Codec for Signcrypted {
    const TAG: u8 = tags::SIGNCRYPTED;
    const NAME: &'static str = "signcrypted record";
    const MAX_LEN: usize = 2 + RecordHeader::LEN_MAX + Capsule::LEN + 4 + CIPHERTEXT_LEN_MAX + SIGNATURE_LEN;
    fn encode_body(&self, w: &mut Writer) {
        self.header.encode(w);
        self.capsule.encode(w);
        w.bytes(&self.ciphertext);
        w.fixed(&self.signature);
    }
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let header = RecordHeader::decode(r)?;
        let capsule = Capsule::decode(r)?;
        let ciphertext = r.bytes("record ciphertext", CIPHERTEXT_LEN_MAX)?.to_vec();
        if ciphertext.len() < AEAD_TAG_LEN {
            return Err(DecodeError::Invalid { what: "record ciphertext", reason: "shorter than the AEAD tag".into() });
        }
        let signature = sign::read_signature(r)?;
        Ok(Self { header, capsule, ciphertext, signature })
    }
}

/// A re-encryption key token: `rk = a·d⁻¹` with its public `X`, scoped and signed by the
/// owner. It travels to the CPC sealed with ESKI-IBE to the CPC's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReKeyToken {
    pub owner: String,
    pub requester: String,
    pub dataset: DatasetId,
    /// The access contract's grant this token serves.
    pub grant_id: [u8; 32],
    pub requester_key: DelegatingPublicKey,
    pub rk: Scalar,
    pub x_pub: G1Affine,
    /// UNIX seconds after which the CPC refuses the token.
    pub expiry: u64,
    /// The records the CPC re-encrypts under it (minimum necessary); `None`: all of them.
    pub records: Option<RecordSelection>,
    pub signature: [u8; SIGNATURE_LEN],
}

/// Derives `d = H(X, B, Z)` with `Z = x·B = b·X`.
fn rekey_d(x_pub: &G1Affine, b_pub: &G1Affine, z: &G1Affine) -> Scalar {
    let t = Transcript::new().part(&x_pub.to_compressed()).part(&b_pub.to_compressed()).part(&z.to_compressed());
    hash_to_scalar("cbsre-rekey", t.as_bytes())
}

/// The records of a dataset a re-key token covers, as a bitmap over record indexes
/// (bit `i % 8` of byte `i / 8`). Canonical: at least one record, no trailing zero byte.
///
/// Beyond DESIGN.md, whose token covers the whole dataset: the owner's node selects the
/// records that satisfy the grant's demand (minimum necessary, HIPAA 45 CFR 164.502(b)),
/// the selection is signed with the rest of the token, the CPC re-encrypts only those, and
/// [`ReKeyToken::check_scope`] refuses any other record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSelection(Vec<u8>);

impl RecordSelection {
    /// Most records a selection names (a dataset's largest shape).
    pub const RECORDS_MAX: u64 = 4096;
    const LEN_MAX: usize = (Self::RECORDS_MAX / 8) as usize;

    /// The records at `indexes`; `None` when there are none or one is out of range.
    pub fn of(indexes: impl IntoIterator<Item = u64>) -> Option<Self> {
        let mut bits = Vec::new();
        for i in indexes {
            if i >= Self::RECORDS_MAX {
                return None;
            }
            let byte = (i / 8) as usize;
            if bits.len() <= byte {
                bits.resize(byte + 1, 0);
            }
            bits[byte] |= 1 << (i % 8);
        }
        (!bits.is_empty()).then_some(Self(bits))
    }

    pub fn contains(&self, index: u64) -> bool {
        self.0.get((index / 8) as usize).is_some_and(|b| b & (1 << (index % 8)) != 0)
    }

    /// The selected indexes, ascending.
    pub fn indexes(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.0.len() as u64 * 8).filter(|i| self.contains(*i))
    }

    pub fn count(&self) -> u64 {
        self.0.iter().map(|b| u64::from(b.count_ones())).sum()
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let what = "token records";
        match bytes.last() {
            None => Err(DecodeError::Invalid { what, reason: "selects no record".into() }),
            Some(0) => Err(DecodeError::Invalid { what, reason: "trailing zero byte".into() }),
            Some(_) => Ok(Self(bytes.to_vec())),
        }
    }
}

/// What a re-key token is scoped to.
#[derive(Debug, Clone)]
pub struct TokenScope<'a> {
    pub owner: &'a str,
    pub requester: &'a str,
    pub dataset: DatasetId,
    pub grant_id: [u8; 32],
    pub expiry: u64,
    /// The records the grant delivers (those that satisfy its demand); `None`: all.
    pub records: Option<RecordSelection>,
}

impl ReKeyToken {
    /// The owner issues a re-key token to the requester's delegating key `B`.
    pub fn issue(
        rng: &mut impl CryptoRngCore,
        owner_signer: &SigningKeypair,
        owner_dsk: &DelegatingSecretKey,
        requester_key: &DelegatingPublicKey,
        scope: TokenScope<'_>,
    ) -> Result<Self, CryptoError> {
        crate::encoding::check_ident("token owner", scope.owner)?;
        crate::encoding::check_ident("token requester", scope.requester)?;
        let x = random_nonzero(rng);
        let x_pub = (G1Projective::generator() * x).to_affine();
        let z = (G1Projective::from(requester_key.0) * x).to_affine();
        let d = rekey_d(&x_pub, &requester_key.0, &z);
        // d is a hash output; zero has negligible probability and would only yield rk = 0.
        let d_inv = Option::<Scalar>::from(d.invert())
            .ok_or_else(|| CryptoError::InvalidArgument("degenerate re-key derivation".into()))?;
        let mut token = Self {
            owner: scope.owner.to_owned(),
            requester: scope.requester.to_owned(),
            dataset: scope.dataset,
            grant_id: scope.grant_id,
            requester_key: *requester_key,
            rk: owner_dsk.0 * d_inv,
            x_pub,
            expiry: scope.expiry,
            records: scope.records,
            signature: [0; SIGNATURE_LEN],
        };
        token.signature = owner_signer.sign(TOKEN_SIGN_USE, &token.signed_bytes());
        Ok(token)
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.encode_unsigned(&mut w);
        w.into_bytes()
    }

    fn encode_unsigned(&self, w: &mut Writer) {
        w.str(&self.owner);
        w.str(&self.requester);
        w.fixed(&self.dataset.0);
        w.fixed(&self.grant_id);
        w.g1(&self.requester_key.0);
        w.scalar(&self.rk);
        w.g1(&self.x_pub);
        w.u64(self.expiry);
        match &self.records {
            None => w.u8(0),
            Some(sel) => {
                w.u8(1);
                w.bytes(&sel.0);
            }
        }
    }

    /// The CPC's check: the owner's signature and the expiry at `now`.
    pub fn verify(&self, owner_signing_key: &PublicKey, now: u64) -> Result<(), CryptoError> {
        if !owner_signing_key.verify(TOKEN_SIGN_USE, &self.signed_bytes(), &self.signature) {
            return Err(CryptoError::Token(TokenProblem::BadSignature));
        }
        if now >= self.expiry {
            return Err(CryptoError::Token(TokenProblem::Expired { expiry: self.expiry, now }));
        }
        Ok(())
    }

    /// Checks that a record falls in the token's scope.
    pub fn check_scope(&self, header: &RecordHeader) -> Result<(), CryptoError> {
        if header.owner != self.owner {
            return Err(CryptoError::Token(TokenProblem::WrongOwner {
                token: self.owner.clone(),
                records: header.owner.clone(),
            }));
        }
        if header.dataset != self.dataset {
            return Err(CryptoError::Token(TokenProblem::WrongDataset {
                token: self.dataset.to_hex(),
                records: header.dataset.to_hex(),
            }));
        }
        if self.records.as_ref().is_some_and(|sel| !sel.contains(header.record_index)) {
            return Err(CryptoError::Token(TokenProblem::RecordNotSelected { index: header.record_index }));
        }
        Ok(())
    }
}

impl Codec for ReKeyToken {
    const TAG: u8 = tags::REKEY_TOKEN;
    const NAME: &'static str = "re-key token";
    const MAX_LEN: usize =
        2 + 2 * (4 + IDENT_LEN_MAX) + 32 + 32 + 48 + 32 + 48 + 8 + 1 + 4 + RecordSelection::LEN_MAX + SIGNATURE_LEN;
    fn encode_body(&self, w: &mut Writer) {
        self.encode_unsigned(w);
        w.fixed(&self.signature);
    }
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            owner: r.ident("token owner")?,
            requester: r.ident("token requester")?,
            dataset: DatasetId(r.array()?),
            grant_id: r.array()?,
            requester_key: DelegatingPublicKey(r.g1("requester delegating key")?),
            rk: r.nonzero_scalar("re-encryption key")?,
            x_pub: r.g1("token X")?,
            expiry: r.u64()?,
            records: match r.u8()? {
                0 => None,
                1 => Some(RecordSelection::decode(r.bytes("token records", RecordSelection::LEN_MAX)?)?),
                value => return Err(DecodeError::UnknownVariant { what: "token records", value }),
            },
            signature: sign::read_signature(r)?,
        })
    }
}

/// A record re-encrypted by a CPC for a requester: the original signcrypted record plus
/// `E' = rk·E`, `V' = rk·V` and the token's `X`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reencrypted {
    pub original: Signcrypted,
    pub e_prime: G1Affine,
    pub v_prime: G1Affine,
    pub x_pub: G1Affine,
}

impl Reencrypted {
    /// Requester decryption: `d = H(X, B, b·X)`, `K = KDF(d·(E' + V') ‖ κ)`, after checking
    /// the owner's signature and the capsule.
    pub fn decrypt(
        &self,
        requester_dsk: &DelegatingSecretKey,
        owner_signing_key: &PublicKey,
    ) -> Result<Vec<u8>, CryptoError> {
        self.original.verify_signature(owner_signing_key)?;
        if !self.original.capsule.is_valid() {
            return Err(CryptoError::BadCapsule { index: 0 });
        }
        let b_pub = requester_dsk.public();
        let z = (G1Projective::from(self.x_pub) * requester_dsk.0).to_affine();
        let d = rekey_d(&self.x_pub, &b_pub.0, &z);
        let shared = ((G1Projective::from(self.e_prime) + G1Projective::from(self.v_prime)) * d).to_affine();
        kem_key(&shared, &self.original.capsule).open(&self.original.ciphertext, &self.original.header.to_aad())
    }
}

impl Codec for Reencrypted {
    const TAG: u8 = tags::REENCRYPTED;
    const NAME: &'static str = "re-encrypted record";
    const MAX_LEN: usize = Signcrypted::MAX_LEN + 3 * 48;
    fn encode_body(&self, w: &mut Writer) {
        self.original.encode_body(w);
        w.g1(&self.e_prime);
        w.g1(&self.v_prime);
        w.g1(&self.x_pub);
    }
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            original: Signcrypted::decode_body(r)?,
            e_prime: r.g1("re-encrypted E'")?,
            v_prime: r.g1("re-encrypted V'")?,
            x_pub: r.g1("token X")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::rand_core::SeedableRng;

    use super::*;

    /// As in Umbral, a CPC (holding `rk`) colluding with a grantee (holding `b`) recovers
    /// the delegating secret the token was issued from: `a = rk · d`, `d = H(X, B, b·X)`.
    /// With one delegating key per dataset that is one dataset's key: it opens that
    /// dataset's records and no other dataset's of the same owner.
    #[test]
    fn a_cpc_and_a_grantee_recover_only_one_datasets_key() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
        let owner = SigningKeypair::generate(&mut rng);
        let (dsk_a, dsk_b) = (DelegatingSecretKey::generate(&mut rng), DelegatingSecretKey::generate(&mut rng));
        let grantee = DelegatingSecretKey::generate(&mut rng);
        let record = |dsk: &DelegatingSecretKey, name: &str, rng: &mut rand_chacha::ChaCha20Rng| {
            let header = RecordHeader {
                owner: "hospital-a".into(),
                dataset: DatasetId::derive("hospital-a", name),
                record_index: 0,
                created_at: 1,
                content_type: "fhir-r4:observation".into(),
            };
            signcrypt(rng, &owner, &dsk.public(), header, name.as_bytes()).unwrap()
        };
        let (in_a, in_b) = (record(&dsk_a, "icu", &mut rng), record(&dsk_b, "oncology", &mut rng));
        let scope = TokenScope {
            owner: "hospital-a",
            requester: "research-1",
            dataset: DatasetId::derive("hospital-a", "icu"),
            grant_id: [1; 32],
            expiry: 10,
            records: None,
        };
        let token = ReKeyToken::issue(&mut rng, &owner, &dsk_a, &grantee.public(), scope).unwrap();

        let z = (G1Projective::from(token.x_pub) * grantee.0).to_affine();
        let recovered = DelegatingSecretKey(token.rk * rekey_d(&token.x_pub, &grantee.public().0, &z));
        assert_eq!(recovered.0, dsk_a.0, "the collusion recovers the dataset's key");
        assert_eq!(in_a.owner_decrypt(&recovered, &owner.public()).unwrap(), b"icu");
        assert!(in_b.owner_decrypt(&recovered, &owner.public()).is_err(), "and opens no other dataset");
    }
}
