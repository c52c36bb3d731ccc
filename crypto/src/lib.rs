//! dualchain's access-control cryptography (DESIGN.md §4.1–§4.3).
//!
//! | module | scheme |
//! | --- | --- |
//! | [`cert`] | member certificates signed by the consortium CA (Ed25519, RFC 8032) |
//! | [`cbsre`] | certificate-based signcryption with Umbral-style proxy re-encryption on BLS12-381 |
//! | [`reencrypt`] | batch capsule verification (one MSM) and batch re-encryption behind [`reencrypt::ReencryptBackend`] |
//! | [`ibe`] | ESKI-IBE: escrow-free, blinded, verifiable key issuing for Boneh–Franklin IBE |
//! | [`abe`] | CP-ABE behind [`abe::AbeScheme`], implemented with rabe's AC17 (FAME) |
//! | [`encoding`] | versioned, canonical, bounded encodings of every key and ciphertext |
//! | [`hash`] | RFC 9380 hash-to-curve/field, HKDF-SHA256, ChaCha20-Poly1305 |
//! | [`sign`] | Ed25519 with domain separation and batch verification |
//!
//! Curve BLS12-381 (`blstrs`) everywhere except CP-ABE (BN254 inside rabe; see [`abe`]).
//! Every domain-separation tag is `dualchain/v1/<use>`. No function here reads a clock,
//! a file or the network: time and revocation state are inputs.

#![forbid(unsafe_code)]

pub mod abe;
pub mod cbsre;
pub mod cert;
pub mod encoding;
pub mod error;
pub mod hash;
pub mod ibe;
pub mod oblivious;
pub mod reencrypt;
pub mod sign;

pub use encoding::Codec;
pub use error::{CryptoError, DecodeError};
