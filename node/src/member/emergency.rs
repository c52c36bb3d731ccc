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
use dualchain_crypto::encoding::{Reader, Writer};
use dualchain_crypto::ibe::{self, IbeCiphertext, IbePrivateKey, IbePublicParams};
use dualchain_crypto::Codec;
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use dualchain_ledger::tx::Hash;
use serde_json::{json, Value};

use crate::member::pseudonym::{by_first_use, check_first_use, set_subjects, RECORDS_MAX};

/// IBE associated data of a sealed scope.
pub const SCOPE_AAD: &[u8] = b"break-glass-scope";
/// IBE associated data of a break-glass grant's sealed pointer.
pub const POINTER_AAD: &[u8] = b"break-glass-pointer";
/// IBE associated data of a break-glass grant's sealed [`Subjects`].
pub const SUBJECTS_AAD: &[u8] = b"break-glass-subjects";
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

/// The patient of each record a break-glass grant delivers, named as the clinician named
/// them in the scope.
///
/// A research grant's records reach the requester under per-grant pseudonyms
/// ([`crate::member::pseudonym`]). A clinician treating named patients needs to know
/// whose record is whose, and already knows the names: so a break-glass grant carries,
/// sealed to the clinician in the grant's `sealed_pseudonyms` field, the scope's patient
/// references that have records in the dataset and each record's position among them.
/// It reveals to the clinician nothing the scope did not name, and to everyone else, as
/// for pseudonyms, only a ciphertext's length. The clinician's node sets each delivered
/// Observation's `subject` to `{"reference": …}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    pub patients: Vec<String>,
    pub of_record: Vec<u16>,
}

impl Subjects {
    /// For the records a break-glass grant delivers, given each one's patient reference in
    /// ascending record index; every one must be named by `scope`.
    pub fn for_grant<'a>(scope: &Scope, patients: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let (distinct, of_record) = by_first_use(patients)?;
        for p in &distinct {
            ensure!(scope.patients.iter().any(|s| s == p), "a delivered record's patient is not in the scope");
        }
        Ok(Self { patients: distinct.into_iter().map(str::to_owned).collect(), of_record })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(1);
        w.u32(self.patients.len() as u32);
        self.patients.iter().for_each(|p| w.str(p));
        w.u32(self.of_record.len() as u32);
        self.of_record.iter().for_each(|i| w.u16(*i));
        w.into_bytes()
    }

    /// Bounded as a scope is, and canonical as [`by_first_use`] makes positions.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "break-glass subjects");
        ensure!(r.u8()? == 1, "break-glass subjects of an unknown version");
        let n = r.count_sized("patients", PATIENTS_MAX, 5)?;
        let mut patients = Vec::with_capacity(n);
        for _ in 0..n {
            let p = r.str("patient", PATIENT_LEN_MAX)?;
            ensure!(!p.is_empty() && !p.chars().any(char::is_control), "a patient reference is printable");
            patients.push(p.to_owned());
        }
        let m = r.count_sized("records", RECORDS_MAX, 2)?;
        let of_record = (0..m).map(|_| r.u16()).collect::<Result<Vec<_>, _>>()?;
        r.finish()?;
        check_first_use(&of_record, patients.len(), "break-glass patient")?;
        Ok(Self { patients, of_record })
    }

    /// Sets each delivered Observation's `subject` to its patient's reference.
    pub fn apply(&self, records: &mut [(u64, Value)]) -> Result<()> {
        let subjects: Vec<Value> = self.patients.iter().map(|p| json!({ "reference": p })).collect();
        set_subjects(records, &self.of_record, &subjects)
    }
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

    #[test]
    fn break_glass_deliveries_name_the_scopes_patients_and_no_other() {
        let mut rng = rand::rngs::OsRng;
        let names = vec!["Patient/p-1".to_string(), "Patient/p-2".to_string(), "Patient/p-3".to_string()];
        let scope = Scope::new(&mut rng, names, "multi-vehicle collision".into()).unwrap();
        let refs = ["Patient/p-2", "Patient/p-1", "Patient/p-2"];
        let s = Subjects::for_grant(&scope, refs).unwrap();
        assert_eq!(
            (s.patients.as_slice(), s.of_record.as_slice()),
            (&["Patient/p-2".into(), "Patient/p-1".into()][..], &[0, 1, 0][..])
        );
        assert_eq!(Subjects::from_bytes(&s.to_bytes()).unwrap(), s);
        // The owner's node never names a patient the clinician did not.
        let err = Subjects::for_grant(&scope, ["Patient/p-1", "Patient/p-9"]).unwrap_err().to_string();
        assert!(err.contains("not in the scope"), "{err}");

        // Delivered out of order, matched by record index.
        let mut records: Vec<(u64, Value)> = [8u64, 2, 5].iter().map(|i| (*i, json!({"n": i}))).collect();
        s.apply(&mut records).unwrap();
        let named: Vec<(u64, &str)> =
            records.iter().map(|(i, o)| (*i, o["subject"]["reference"].as_str().unwrap())).collect();
        assert_eq!(named, [(2, "Patient/p-2"), (5, "Patient/p-1"), (8, "Patient/p-2")]);
        assert!(s.apply(&mut records[..2].to_vec()).is_err(), "a count mismatch is refused");

        // Malformed lists are refused, not trusted.
        let bad = |patients: Vec<&str>, of_record: Vec<u16>| {
            Subjects { patients: patients.into_iter().map(str::to_owned).collect(), of_record }.to_bytes()
        };
        for (bytes, what) in [
            (bad(vec!["Patient/a", "Patient/b"], vec![1, 0]), "out of order"),
            (bad(vec!["Patient/a", "Patient/b"], vec![0, 0]), "no record uses"),
            (bad(vec!["Patient/\u{7}"], vec![0]), "printable"),
            (bad(vec![""], vec![0]), "printable"),
        ] {
            let err = format!("{:#}", Subjects::from_bytes(&bytes).unwrap_err());
            assert!(err.contains(what), "{what}: {err}");
        }
        let long = "P".repeat(PATIENT_LEN_MAX + 1);
        assert!(Subjects::from_bytes(&bad(vec![&long], vec![0])).is_err());
        let many: Vec<String> = (0..=PATIENTS_MAX).map(|i| format!("Patient/{i}")).collect();
        let of_record = (0..=PATIENTS_MAX as u16).collect();
        assert!(Subjects::from_bytes(&bad(many.iter().map(String::as_str).collect(), of_record)).is_err());
        let mut trailing = s.to_bytes();
        trailing.push(0);
        assert!(Subjects::from_bytes(&trailing).is_err());
    }
}
