//! Errors of the crypto crate: one enum for decoding (untrusted bytes) and one for the
//! schemes. Messages name the object and the check that failed so an operator can act.

use thiserror::Error;

/// Why a byte string was rejected by a decoder. Every decoder in this crate is bounded and
/// canonical: input that would re-encode differently is rejected, never normalised.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("{what}: input of {len} bytes exceeds the maximum of {max} bytes")]
    TooLong { what: &'static str, len: usize, max: usize },
    #[error("{what}: truncated input")]
    Truncated { what: &'static str },
    #[error("{what}: {count} trailing bytes after a complete encoding")]
    TrailingBytes { what: &'static str, count: usize },
    #[error("{what}: wrong type tag {found:#04x} (expected {expected:#04x})")]
    WrongTag { what: &'static str, expected: u8, found: u8 },
    #[error("{what}: unsupported encoding version {found} (this build reads version {supported})")]
    UnsupportedVersion { what: &'static str, found: u8, supported: u8 },
    #[error("{what}: not a valid compressed curve point in the prime-order subgroup")]
    InvalidPoint { what: &'static str },
    #[error("{what}: the identity point is not allowed here")]
    IdentityPoint { what: &'static str },
    #[error("{what}: scalar is not canonical (must be below the group order)")]
    NonCanonicalScalar { what: &'static str },
    #[error("{what}: unknown value {value}")]
    UnknownVariant { what: &'static str, value: u8 },
    #[error("{what}: {reason}")]
    Invalid { what: &'static str, reason: String },
}

/// Errors of the cryptographic schemes (certificates, CBSRE, ESKI-IBE, CP-ABE).
#[derive(Debug, Error)]
pub enum CryptoError {
    #[error("malformed input: {0}")]
    Decode(#[from] DecodeError),
    #[error("signature check failed: {0}")]
    BadSignature(&'static str),
    #[error("certificate {serial} of {subject}: {reason}")]
    Certificate { subject: String, serial: u64, reason: CertificateProblem },
    #[error("capsule {index} failed its validity check (sigma*P1 != V + h*E)")]
    BadCapsule { index: usize },
    #[error("decryption failed: {0}")]
    Decryption(&'static str),
    #[error("re-encryption token refused: {0}")]
    Token(TokenProblem),
    #[error("ESKI-IBE: {0}")]
    Ibe(IbeProblem),
    #[error("CP-ABE: {0}")]
    Abe(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// What is wrong with a member certificate.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CertificateProblem {
    #[error("not issued by this consortium CA")]
    UnknownIssuer,
    #[error("CA signature does not verify")]
    BadSignature,
    #[error("not valid before {not_before} (now {now})")]
    NotYetValid { not_before: u64, now: u64 },
    #[error("expired at {not_after} (now {now})")]
    Expired { not_after: u64, now: u64 },
    #[error("revoked")]
    Revoked,
    #[error("role {found} where {expected} is required")]
    WrongRole { expected: String, found: String },
    #[error("the presented attributes do not open the certified attribute commitment")]
    AttributeMismatch,
    #[error("subject does not match the claimed identity {claimed}")]
    WrongSubject { claimed: String },
}

/// Why a CPC refuses a re-encryption token.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenProblem {
    #[error("the owner's signature does not verify")]
    BadSignature,
    #[error("expired at {expiry} (now {now})")]
    Expired { expiry: u64, now: u64 },
    #[error("scoped to dataset {token} but the records belong to dataset {records}")]
    WrongDataset { token: String, records: String },
    #[error("issued by owner {token} but the records belong to {records}")]
    WrongOwner { token: String, records: String },
    #[error("a record was signcrypted for another delegating key than the token's owner key")]
    WrongDelegatingKey,
    #[error("record {index} is not among the records the token selects")]
    RecordNotSelected { index: u64 },
}

/// Which step of ESKI-IBE key issuing failed, naming the authority at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IbeProblem {
    #[error("master-key chain link {index} ({authority}) does not verify: e(S_i, Y_(i-1)) != e(P1, Y_i)")]
    BadChainLink { index: usize, authority: String },
    #[error("the master-key chain has {found} links where {expected} authorities are configured")]
    ChainLength { expected: usize, found: usize },
    #[error("key share from {authority} (step {index}) is wrong: e(D_i, P2) != e(X_0, Y_i)")]
    BadShare { index: usize, authority: String },
    #[error("the proof of knowledge of the blinding factor does not verify")]
    BadBlindingProof,
    #[error("the unblinded key does not verify against the master public key")]
    BadUnblindedKey,
    #[error("the request was issued for identity {request} but the certificate names {certificate}")]
    IdentityMismatch { request: String, certificate: String },
    #[error("request is for step {found}, this authority serves step {expected}")]
    WrongStep { expected: usize, found: usize },
}
