//! Ed25519 signatures (RFC 8032) for members, the CA and consensus messages.
//!
//! Verification uses `verify_strict`: it rejects small-order public keys and
//! non-canonical signatures, so one message has one valid signature encoding per key.
//! [`verify_batch`] checks many signatures at once (ed25519-dalek's randomized batch
//! equation; see its docs for where its acceptance differs from strict verification); a
//! failed batch is re-checked one by one to name the bad entry.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::encoding::{tags, Codec, Reader, Writer};
use crate::error::{CryptoError, DecodeError};

/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// An Ed25519 key pair. The secret never leaves through `Debug`.
#[derive(Clone)]
pub struct SigningKeypair {
    key: SigningKey,
}

impl std::fmt::Debug for SigningKeypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeypair").field("public", &self.public()).finish_non_exhaustive()
    }
}

impl SigningKeypair {
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        Self { key: SigningKey::generate(rng) }
    }
    pub fn public(&self) -> PublicKey {
        PublicKey(self.key.verifying_key())
    }
    /// Signs `msg` under the domain `dualchain/v1/<use>` (see [`domain_message`]).
    pub fn sign(&self, use_: &str, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.key.sign(&domain_message(use_, msg)).to_bytes()
    }
}

impl Codec for SigningKeypair {
    const TAG: u8 = tags::SIGNING_KEY;
    const NAME: &'static str = "signing key";
    const MAX_LEN: usize = 2 + 32;
    fn encode_body(&self, w: &mut Writer) {
        let secret = Zeroizing::new(self.key.to_bytes());
        w.fixed(&secret[..]);
    }
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let secret = Zeroizing::new(r.array::<32>()?);
        Ok(Self { key: SigningKey::from_bytes(&secret) })
    }
}

/// Prefixes a message with its domain so a signature for one use never verifies for another.
pub fn domain_message(use_: &str, msg: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(crate::hash::DST_PREFIX.len() + use_.len() + 1 + msg.len());
    m.extend_from_slice(crate::hash::DST_PREFIX.as_bytes());
    m.extend_from_slice(use_.as_bytes());
    m.push(0);
    m.extend_from_slice(msg);
    m
}

/// An Ed25519 public key, validated on decode (a point on the curve, not of small order).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", hex_short(self.0.as_bytes()))
    }
}

pub(crate) fn hex_short(b: &[u8]) -> String {
    b.iter().take(8).map(|x| format!("{x:02x}")).collect()
}

impl PublicKey {
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    pub fn from_raw(bytes: &[u8; 32]) -> Result<Self, DecodeError> {
        let key = VerifyingKey::from_bytes(bytes)
            .map_err(|_| DecodeError::Invalid { what: "ed25519 public key", reason: "not a curve point".into() })?;
        if key.is_weak() {
            return Err(DecodeError::Invalid { what: "ed25519 public key", reason: "small-order key".into() });
        }
        Ok(Self(key))
    }

    /// Verifies a signature made by [`SigningKeypair::sign`] for the same use.
    pub fn verify(&self, use_: &str, msg: &[u8], sig: &[u8; SIGNATURE_LEN]) -> bool {
        let sig = Signature::from_bytes(sig);
        self.0.verify_strict(&domain_message(use_, msg), &sig).is_ok()
    }

    pub(crate) fn encode_into(&self, w: &mut Writer) {
        w.fixed(self.0.as_bytes());
    }

    pub(crate) fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::from_raw(&r.array::<32>()?)
    }
}

/// One entry of a batch verification.
pub struct SignedItem<'a> {
    pub key: &'a PublicKey,
    pub use_: &'a str,
    pub msg: &'a [u8],
    pub sig: &'a [u8; SIGNATURE_LEN],
}

/// Verifies many signatures at once with ed25519-dalek's randomized batch equation
/// (Bernstein et al., "High-speed high-security signatures", 2011, §5). On failure the
/// entries are checked one by one with `verify_strict` and the first bad index is returned.
///
/// Acceptance differs from [`PublicKey::verify`] only for signatures a signer deliberately
/// built with a small-order component in `R`: the batch equation may accept such a
/// signature that strict verification refuses. Honest signers never produce them. Use this
/// where the signer set is the replica set and the batch is the unit of decision
/// (consensus messages); use [`PublicKey::verify`] where every node must reach the same
/// verdict on every single signature (ledger transactions).
pub fn verify_batch(items: &[SignedItem<'_>]) -> Result<(), usize> {
    if items.is_empty() {
        return Ok(());
    }
    let messages: Vec<Vec<u8>> = items.iter().map(|i| domain_message(i.use_, i.msg)).collect();
    let msg_refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let sigs: Vec<Signature> = items.iter().map(|i| Signature::from_bytes(i.sig)).collect();
    let keys: Vec<VerifyingKey> = items.iter().map(|i| i.key.0).collect();
    if ed25519_dalek::verify_batch(&msg_refs, &sigs, &keys).is_ok() {
        return Ok(());
    }
    // The batch failed, so at least one entry is bad; if strict checks find none (a
    // deliberately crafted signature), report the first entry rather than accept.
    Err(items.iter().position(|i| !i.key.verify(i.use_, i.msg, i.sig)).unwrap_or(0))
}

/// Reads a signature field.
pub(crate) fn read_signature(r: &mut Reader<'_>) -> Result<[u8; SIGNATURE_LEN], DecodeError> {
    r.array::<SIGNATURE_LEN>()
}

/// Convenience: verify or return a named signature error.
pub(crate) fn require(
    key: &PublicKey,
    use_: &str,
    msg: &[u8],
    sig: &[u8; SIGNATURE_LEN],
    what: &'static str,
) -> Result<(), CryptoError> {
    if key.verify(use_, msg, sig) {
        Ok(())
    } else {
        Err(CryptoError::BadSignature(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn signatures_are_domain_separated_and_tamper_evident() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let kp = SigningKeypair::generate(&mut rng);
        let sig = kp.sign("tx", b"hello");
        assert!(kp.public().verify("tx", b"hello", &sig));
        assert!(!kp.public().verify("block", b"hello", &sig));
        assert!(!kp.public().verify("tx", b"hellO", &sig));
        let mut bad = sig;
        bad[10] ^= 0x40;
        assert!(!kp.public().verify("tx", b"hello", &bad));
    }

    #[test]
    fn batch_verification_names_the_bad_entry() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        let kps: Vec<_> = (0..8).map(|_| SigningKeypair::generate(&mut rng)).collect();
        let pubs: Vec<_> = kps.iter().map(|k| k.public()).collect();
        let msgs: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 10]).collect();
        let mut sigs: Vec<_> = kps.iter().zip(&msgs).map(|(k, m)| k.sign("m", m)).collect();
        let items = |sigs: &Vec<[u8; 64]>| -> Result<(), usize> {
            let v: Vec<_> =
                (0..8).map(|i| SignedItem { key: &pubs[i], use_: "m", msg: &msgs[i], sig: &sigs[i] }).collect();
            verify_batch(&v)
        };
        assert_eq!(items(&sigs), Ok(()));
        sigs[5] = kps[4].sign("m", &msgs[5]);
        assert_eq!(items(&sigs), Err(5));
    }

    #[test]
    fn weak_and_invalid_public_keys_are_rejected() {
        // The identity point (small order) and a non-point.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(PublicKey::from_raw(&identity).is_err());
        // y = -1: the point of order 2.
        let mut order_two = [0xffu8; 32];
        order_two[0] = 0xec;
        order_two[31] = 0x7f;
        assert!(PublicKey::from_raw(&order_two).is_err());
    }
}
