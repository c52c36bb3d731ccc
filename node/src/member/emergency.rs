//! Break-glass from the members' side (the contract: `dualchain_ledger::contracts::emergency`):
//! the scope a clinician seals to the owner, and the pointer the owner seals back.
//!
//! The scope names the patients as the owner knows them (the `subject.reference` of its
//! Observations, e.g. `Patient/p-17`; in practice from the patient, a referral letter or
//! the owner's emergency desk) and says why. It is sealed to the owner with ESKI-IBE, and
//! the chain keeps its SHA-256: the scope carries 16 random bytes, so the digest cannot be
//! matched against guessed patient references, and the owner's node refuses a scope whose
//! digest is not the one on chain, so the review judges what was actually asked.

use anyhow::{anyhow, ensure, Result};
use dualchain_crypto::ibe::{self, IbeCiphertext, IbePrivateKey, IbePublicParams};
use dualchain_crypto::Codec;
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use dualchain_ledger::tx::Hash;

/// IBE associated data of a sealed scope.
pub const SCOPE_AAD: &[u8] = b"break-glass-scope";
/// IBE associated data of a break-glass grant's sealed pointer.
pub const POINTER_AAD: &[u8] = b"break-glass-pointer";
/// Patients one break-glass request may name.
pub const PATIENTS_MAX: usize = 8;
/// Longest patient reference.
pub const PATIENT_LEN_MAX: usize = 128;
/// Longest justification.
pub const JUSTIFICATION_LEN_MAX: usize = 2000;

/// What a clinician asks for and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    pub patients: Vec<String>,
    pub justification: String,
    /// 16 random bytes (hex), so that the digest on chain reveals nothing.
    pub salt: String,
}

impl Scope {
    /// A scope for `patients` with a fresh salt; refuses an empty, oversized or
    /// unprintable one.
    pub fn new(rng: &mut (impl RngCore + CryptoRng), patients: Vec<String>, justification: String) -> Result<Self> {
        let mut salt = [0u8; 16];
        rng.fill_bytes(&mut salt);
        let s = Self { patients, justification, salt: hex::encode(salt) };
        s.validate()?;
        Ok(s)
    }

    pub fn validate(&self) -> Result<()> {
        ensure!(
            (1..=PATIENTS_MAX).contains(&self.patients.len()),
            "a break-glass request names 1..={PATIENTS_MAX} patients"
        );
        for p in &self.patients {
            ensure!(
                !p.is_empty() && p.len() <= PATIENT_LEN_MAX && !p.chars().any(char::is_control),
                "a patient reference is 1..={PATIENT_LEN_MAX} printable characters"
            );
        }
        let j = self.justification.trim();
        ensure!(
            !j.is_empty() && self.justification.len() <= JUSTIFICATION_LEN_MAX,
            "a justification of 1..={JUSTIFICATION_LEN_MAX} bytes is required"
        );
        ensure!(self.salt.len() == 32 && hex::decode(&self.salt).is_ok(), "the scope's salt is 16 bytes of hex");
        Ok(())
    }

    /// The scope's bytes, as sealed.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a scope serialises")
    }

    /// Seals the scope to `owner`: the ciphertext and the digest that goes on chain.
    pub fn seal(
        &self,
        rng: &mut (impl RngCore + CryptoRng),
        params: &IbePublicParams,
        owner: &str,
    ) -> Result<(Vec<u8>, Hash)> {
        let bytes = self.to_bytes();
        let sealed = ibe::encrypt(rng, params, owner, &bytes, SCOPE_AAD)?.to_bytes();
        Ok((sealed, Sha256::digest(&bytes).into()))
    }

    /// Opens a sealed scope with the owner's IBE key, checking it against the digest on
    /// chain and its bounds.
    pub fn open(key: &IbePrivateKey, sealed: &[u8], digest: &Hash) -> Result<Self> {
        let bytes = key.decrypt(&IbeCiphertext::from_bytes(sealed)?, SCOPE_AAD)?;
        ensure!(
            Sha256::digest(&bytes).as_slice() == digest,
            "the sealed scope is not the one whose digest is on chain"
        );
        let s: Self = serde_json::from_slice(&bytes).map_err(|e| anyhow!("the sealed scope does not parse: {e}"))?;
        s.validate()?;
        Ok(s)
    }
}

/// Seals a dataset's index entry to the requester of a break-glass grant.
pub fn seal_pointer(
    rng: &mut (impl RngCore + CryptoRng),
    params: &IbePublicParams,
    requester: &str,
    entry: &[u8],
) -> Result<Vec<u8>> {
    Ok(ibe::encrypt(rng, params, requester, entry, POINTER_AAD)?.to_bytes())
}

/// Opens a break-glass grant's sealed pointer (an index entry) with the requester's key.
pub fn open_pointer(key: &IbePrivateKey, sealed: &[u8]) -> Result<Vec<u8>> {
    Ok(key.decrypt(&IbeCiphertext::from_bytes(sealed)?, POINTER_AAD)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_open_only_with_their_digest_and_within_bounds() {
        let mut rng = rand::rngs::OsRng;
        let s = Scope::new(&mut rng, vec!["Patient/p-1".into()], "unconscious on arrival".into()).unwrap();
        let again = Scope::new(&mut rng, vec!["Patient/p-1".into()], "unconscious on arrival".into()).unwrap();
        // The salt makes equal scopes' digests differ: the chain's digest names no patient.
        assert_ne!(Sha256::digest(s.to_bytes()), Sha256::digest(again.to_bytes()));
        assert!(Scope::new(&mut rng, vec![], "x".into()).is_err());
        assert!(Scope::new(&mut rng, vec!["Patient/a".into()], "  ".into()).is_err());
        let many = (0..=PATIENTS_MAX).map(|i| format!("Patient/{i}")).collect();
        assert!(Scope::new(&mut rng, many, "mass casualty".into()).is_err());
        assert!(Scope::new(&mut rng, vec!["Patient/\n".into()], "x".into()).is_err());
    }
}
