//! CP-ABE behind a trait (DESIGN.md §4.3).
//!
//! The KGC holds the master key and issues user keys for the attributes the CA certified;
//! owners encrypt dataset index pointers under an access [`Policy`]. The only scheme today
//! is [`ac17::Ac17`], Agrawal and Chase's FAME ("FAME: Fast Attribute-based Message
//! Encryption", CCS 2017, §3) as implemented by `rabe`. rabe runs on BN254, about 100-bit
//! security after the 2016 exTNFS improvements — below the 128-bit level of the rest of
//! dualchain. The trait exists so a BLS12-381 scheme can replace it without touching callers.

pub mod ac17;
pub mod policy;

pub use policy::Policy;

use crate::cert::AttributeSet;
use crate::encoding::Codec;
use crate::error::CryptoError;

/// A ciphertext-policy attribute-based encryption scheme.
pub trait AbeScheme {
    type PublicKey: Codec + Clone;
    type MasterKey: Codec;
    type UserKey: Codec + Clone;
    type Ciphertext: Codec + Clone;

    /// Short scheme name for logs (`ac17-bn254`).
    const NAME: &'static str;

    fn setup() -> Result<(Self::PublicKey, Self::MasterKey), CryptoError>;
    fn keygen(msk: &Self::MasterKey, attributes: &AttributeSet) -> Result<Self::UserKey, CryptoError>;
    fn encrypt(pk: &Self::PublicKey, policy: &Policy, plaintext: &[u8]) -> Result<Self::Ciphertext, CryptoError>;
    /// Decrypts; a key whose attributes do not satisfy the policy gets a clear error.
    fn decrypt(key: &Self::UserKey, ct: &Self::Ciphertext) -> Result<Vec<u8>, CryptoError>;
    fn policy(ct: &Self::Ciphertext) -> &Policy;
    fn attributes(key: &Self::UserKey) -> &AttributeSet;
}
