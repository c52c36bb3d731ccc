//! Member certificates signed by the consortium CA (DESIGN.md §3 step 2).
//!
//! A certificate binds a member's identity and role to its Ed25519 signing key, its CBSRE
//! delegating key (§4.1) and a commitment to its attributes, for a validity window, under a
//! serial number the registry can revoke. The CA signs the canonical encoding of every field
//! but the signature (X.509-like "to-be-signed" bytes) with Ed25519 under the domain
//! `dualchain/v1/certificate`.
//!
//! Verification takes the clock and the revocation set as inputs — the crate never reads a
//! clock or a database — so the ledger, the CPC and tests supply them deterministically.

use std::collections::BTreeSet;

use rand_core::CryptoRngCore;

use crate::cbsre::DelegatingPublicKey;
use crate::encoding::{check_ident, tags, Codec, Reader, Writer, IDENT_LEN_MAX};
use crate::error::{CertificateProblem, CryptoError, DecodeError};
use crate::hash::{digest, Transcript};
use crate::sign::{self, PublicKey, SigningKeypair, SIGNATURE_LEN};

const SIGN_USE: &str = "certificate";

/// Roles a consortium member can hold (DESIGN.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Validator,
    Hospital,
    ResearchInstitute,
    Cpc,
    Kgc,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Validator, Role::Hospital, Role::ResearchInstitute, Role::Cpc, Role::Kgc];

    fn code(self) -> u8 {
        match self {
            Role::Validator => 1,
            Role::Hospital => 2,
            Role::ResearchInstitute => 3,
            Role::Cpc => 4,
            Role::Kgc => 5,
        }
    }
    fn from_code(v: u8) -> Result<Self, DecodeError> {
        Role::ALL.into_iter().find(|r| r.code() == v).ok_or(DecodeError::UnknownVariant { what: "role", value: v })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Validator => "validator",
            Role::Hospital => "hospital",
            Role::ResearchInstitute => "research",
            Role::Cpc => "cpc",
            Role::Kgc => "kgc",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// A member's attributes as certified by the CA (e.g. `role:research`, `dept:cardiology`):
/// validated identifiers, sorted and de-duplicated so the set has one encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeSet(BTreeSet<String>);

/// Most attributes one member can hold.
pub const ATTRIBUTES_MAX: usize = 32;

impl AttributeSet {
    pub fn new<I, S>(attrs: I) -> Result<Self, CryptoError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let set: BTreeSet<String> = attrs.into_iter().map(Into::into).collect();
        if set.is_empty() || set.len() > ATTRIBUTES_MAX {
            return Err(CryptoError::InvalidArgument(format!(
                "an attribute set holds 1..={ATTRIBUTES_MAX} attributes, got {}",
                set.len()
            )));
        }
        for a in &set {
            check_ident("attribute", a)?;
        }
        Ok(Self(set))
    }
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Hiding, binding commitment SHA-256(DST ‖ salt ‖ attributes) to the set. The member
    /// keeps the salt and opens the commitment to the KGC to obtain CP-ABE keys.
    pub fn commit(&self, salt: &[u8; 32]) -> [u8; 32] {
        let mut t = Transcript::new().part(salt);
        for a in &self.0 {
            t = t.part(a.as_bytes());
        }
        digest("attribute-commitment", &t)
    }
}

/// Checked revocation: the registry contract, a CRL, or a test set.
pub trait RevocationCheck {
    fn is_revoked(&self, serial: u64) -> bool;
}

impl RevocationCheck for BTreeSet<u64> {
    fn is_revoked(&self, serial: u64) -> bool {
        self.contains(&serial)
    }
}

/// No revocations (genesis, tests).
pub struct NoRevocations;
impl RevocationCheck for NoRevocations {
    fn is_revoked(&self, _serial: u64) -> bool {
        false
    }
}

/// What a relying party checks certificates against: the CA, the clock and the
/// revocation state, all supplied by the caller.
#[derive(Clone, Copy)]
pub struct TrustContext<'a> {
    pub ca: &'a CaPublicKey,
    /// UNIX seconds.
    pub now: u64,
    pub revocations: &'a dyn RevocationCheck,
}

impl<'a> TrustContext<'a> {
    pub fn new(ca: &'a CaPublicKey, now: u64, revocations: &'a dyn RevocationCheck) -> Self {
        Self { ca, now, revocations }
    }

    /// Verifies a certificate in this context.
    pub fn verify(&self, cert: &Certificate) -> Result<(), CryptoError> {
        cert.verify(self.ca, self.now, self.revocations)
    }
}

/// The consortium CA's public identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaPublicKey {
    pub name: String,
    pub key: PublicKey,
}

impl CaPublicKey {
    /// SHA-256 fingerprint that certificates name as their issuer.
    pub fn fingerprint(&self) -> [u8; 32] {
        digest("ca-fingerprint", &Transcript::new().part(self.name.as_bytes()).part(self.key.as_bytes()))
    }
}

impl Codec for CaPublicKey {
    const TAG: u8 = tags::CA_PUBLIC_KEY;
    const NAME: &'static str = "CA public key";
    const MAX_LEN: usize = 2 + 4 + IDENT_LEN_MAX + 32;
    fn encode_body(&self, w: &mut Writer) {
        w.str(&self.name);
        self.key.encode_into(w);
    }
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self { name: r.ident("CA name")?, key: PublicKey::decode_from(r)? })
    }
}

/// The consortium CA (an offline genesis role).
pub struct CertificateAuthority {
    public: CaPublicKey,
    keypair: SigningKeypair,
}

impl CertificateAuthority {
    pub fn generate(name: &str, rng: &mut impl CryptoRngCore) -> Result<Self, CryptoError> {
        check_ident("CA name", name)?;
        let keypair = SigningKeypair::generate(rng);
        Ok(Self { public: CaPublicKey { name: name.to_owned(), key: keypair.public() }, keypair })
    }

    pub fn from_keypair(name: &str, keypair: SigningKeypair) -> Result<Self, CryptoError> {
        check_ident("CA name", name)?;
        Ok(Self { public: CaPublicKey { name: name.to_owned(), key: keypair.public() }, keypair })
    }

    pub fn public(&self) -> &CaPublicKey {
        &self.public
    }

    pub fn keypair(&self) -> &SigningKeypair {
        &self.keypair
    }

    /// Issues a certificate for the given fields.
    pub fn issue(&self, fields: CertificateFields) -> Result<Certificate, CryptoError> {
        check_ident("member id", &fields.subject)?;
        if fields.not_after <= fields.not_before {
            return Err(CryptoError::InvalidArgument("certificate validity window is empty".into()));
        }
        let mut cert = Certificate { fields, issuer: self.public.fingerprint(), signature: [0; SIGNATURE_LEN] };
        cert.signature = self.keypair.sign(SIGN_USE, &cert.to_be_signed());
        Ok(cert)
    }
}

/// The certified fields of a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFields {
    pub serial: u64,
    pub subject: String,
    pub role: Role,
    pub signing_key: PublicKey,
    pub delegating_key: DelegatingPublicKey,
    pub attribute_commitment: [u8; 32],
    pub not_before: u64,
    pub not_after: u64,
}

/// A member certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub fields: CertificateFields,
    /// Fingerprint of the issuing CA's public key.
    pub issuer: [u8; 32],
    pub signature: [u8; SIGNATURE_LEN],
}

impl Certificate {
    fn encode_tbs(&self, w: &mut Writer) {
        let f = &self.fields;
        w.u64(f.serial);
        w.str(&f.subject);
        w.u8(f.role.code());
        f.signing_key.encode_into(w);
        w.g1(&f.delegating_key.0);
        w.fixed(&f.attribute_commitment);
        w.u64(f.not_before);
        w.u64(f.not_after);
        w.fixed(&self.issuer);
    }

    fn to_be_signed(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(Self::TAG);
        w.u8(crate::encoding::ENCODING_VERSION);
        self.encode_tbs(&mut w);
        w.into_bytes()
    }

    pub fn subject(&self) -> &str {
        &self.fields.subject
    }

    fn problem(&self, reason: CertificateProblem) -> CryptoError {
        CryptoError::Certificate { subject: self.fields.subject.clone(), serial: self.fields.serial, reason }
    }

    /// Verifies issuer, signature, validity window at `now` (UNIX seconds) and revocation.
    pub fn verify(&self, ca: &CaPublicKey, now: u64, revocations: &dyn RevocationCheck) -> Result<(), CryptoError> {
        if self.issuer != ca.fingerprint() {
            return Err(self.problem(CertificateProblem::UnknownIssuer));
        }
        if !ca.key.verify(SIGN_USE, &self.to_be_signed(), &self.signature) {
            return Err(self.problem(CertificateProblem::BadSignature));
        }
        if now < self.fields.not_before {
            return Err(self.problem(CertificateProblem::NotYetValid { not_before: self.fields.not_before, now }));
        }
        if now >= self.fields.not_after {
            return Err(self.problem(CertificateProblem::Expired { not_after: self.fields.not_after, now }));
        }
        if revocations.is_revoked(self.fields.serial) {
            return Err(self.problem(CertificateProblem::Revoked));
        }
        Ok(())
    }

    /// [`Certificate::verify`] plus a role requirement.
    pub fn verify_role(
        &self,
        ca: &CaPublicKey,
        now: u64,
        revocations: &dyn RevocationCheck,
        role: Role,
    ) -> Result<(), CryptoError> {
        self.verify(ca, now, revocations)?;
        if self.fields.role != role {
            return Err(self.problem(CertificateProblem::WrongRole {
                expected: role.to_string(),
                found: self.fields.role.to_string(),
            }));
        }
        Ok(())
    }

    /// Checks a member's opening of its attribute commitment (attributes and salt), as the
    /// KGC does before issuing CP-ABE keys for those attributes.
    pub fn check_attribute_opening(&self, attributes: &AttributeSet, salt: &[u8; 32]) -> Result<(), CryptoError> {
        if attributes.commit(salt) != self.fields.attribute_commitment {
            return Err(self.problem(CertificateProblem::AttributeMismatch));
        }
        Ok(())
    }

    /// Verifies a member's signature over `msg` with the certified signing key.
    pub fn verify_member_signature(
        &self,
        use_: &str,
        msg: &[u8],
        sig: &[u8; SIGNATURE_LEN],
    ) -> Result<(), CryptoError> {
        sign::require(&self.fields.signing_key, use_, msg, sig, "member signature")
    }
}

impl Codec for Certificate {
    const TAG: u8 = tags::CERTIFICATE;
    const NAME: &'static str = "certificate";
    const MAX_LEN: usize = 2 + 8 + 4 + IDENT_LEN_MAX + 1 + 32 + 48 + 32 + 8 + 8 + 32 + SIGNATURE_LEN;
    fn encode_body(&self, w: &mut Writer) {
        self.encode_tbs(w);
        w.fixed(&self.signature);
    }
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let serial = r.u64()?;
        let subject = r.ident("member id")?;
        let role = Role::from_code(r.u8()?)?;
        let signing_key = PublicKey::decode_from(r)?;
        let delegating_key = DelegatingPublicKey(r.g1("delegating key")?);
        let attribute_commitment = r.array()?;
        let not_before = r.u64()?;
        let not_after = r.u64()?;
        if not_after <= not_before {
            return Err(DecodeError::Invalid { what: "certificate", reason: "validity window is empty".into() });
        }
        let issuer = r.array()?;
        let signature = sign::read_signature(r)?;
        Ok(Self {
            fields: CertificateFields {
                serial,
                subject,
                role,
                signing_key,
                delegating_key,
                attribute_commitment,
                not_before,
                not_after,
            },
            issuer,
            signature,
        })
    }
}
