//! Per-grant patient pseudonyms: two grants cannot be joined on the patient.
//!
//! Beyond DESIGN.md, whose records reach the requester as the hospital uploaded them:
//! - **At upload** the owner's node takes out of each Observation what names or links the
//!   patient ([`deidentify`]: `id`, `identifier`, `subject`, `encounter`, `basedOn`,
//!   `partOf`, `focus`, `specimen`, `hasMember`, `derivedFrom`, `performer`, `note`,
//!   `text`) before signcrypting it, so the CPC stores, and every grant delivers, records
//!   without a patient reference. The owner keeps each record's patient reference and a
//!   random 32-byte key per dataset, in its own 0600 dataset file.
//! - **At the re-key** the owner's node computes, for each patient among the records the
//!   grant delivers, the pseudonym `HMAC-SHA256(key, grant ‖ reference)` truncated to 128
//!   bits ([`Pseudonyms::for_grant`]), and seals the list to the requester's ESKI-IBE
//!   identity (not to the CPC, which learns neither the pseudonyms nor which records share
//!   a patient). The access contract checks it is sealed to the grant's requester. An
//!   anonymous requester has no IBE identity: the list is signcrypted to the one-time
//!   delegating key of its demand instead ([`Pseudonyms::signcrypt_to`]).
//! - **At the fetch** the requester's node opens the list and sets each delivered
//!   Observation's `subject` to a logical reference (`identifier` with system
//!   `urn:dualchain:grant:<grant id>`), so records of one patient within a grant share a
//!   pseudonym (longitudinal analysis still works) and the same patient has another one in
//!   every other grant. Only the hospital, which holds the key and the references, maps a
//!   pseudonym back ([`Pseudonyms::reidentify`]).
//!
//! A break-glass grant is the exception: the clinician named the patients, so the owner
//! seals those references instead of pseudonyms
//! (`Subjects`, in `member/emergency.rs`).
//!
//! What this does not hide: the same record delivered by two grants is the same
//! Observation (value, time, device), so grants overlapping in records can be joined on
//! those records; and `device` stays (the supply record encodes it), with the IEEE 11073
//! system id of a device registered at the hospital's node, which links the patients of
//! one bedside device over time, and the records of one personal device's wearer.

use anyhow::{anyhow, ensure, Result};
use dualchain_crypto::cbsre::{
    signcrypt, DatasetId, DelegatingPublicKey, DelegatingSecretKey, RecordHeader, Signcrypted,
};
use dualchain_crypto::encoding::{Reader, Writer};
use dualchain_crypto::sign::{PublicKey, SigningKeypair};
use dualchain_crypto::Codec;
use dualchain_ledger::contracts::access::ANONYMOUS_PSEUDONYMS_TYPE;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// What [`Pseudonyms::to_bytes`] is sealed with.
pub const PSEUDONYMS_AAD: &[u8] = b"grant-pseudonyms";
/// Most records of one grant (the largest supply circuit's dataset).
pub const RECORDS_MAX: usize = 4096;
/// A pseudonym's length in bytes.
pub const PSEUDONYM_LEN: usize = 16;

/// Observation elements that name or link the patient, removed before records leave the
/// hospital.
pub const REMOVED: [&str; 13] = [
    "id",
    "identifier",
    "subject",
    "encounter",
    "basedOn",
    "partOf",
    "focus",
    "specimen",
    "hasMember",
    "derivedFrom",
    "performer",
    "note",
    "text",
];

/// The Observation without what links it to its patient, and the patient reference it had.
pub fn deidentify(obs: &Value) -> (Value, Option<String>) {
    let patient = obs["subject"]["reference"].as_str().map(str::to_owned);
    let mut out = obs.clone();
    if let Some(map) = out.as_object_mut() {
        for k in REMOVED {
            map.remove(k);
        }
    }
    (out, patient)
}

/// A dataset's pseudonym key (random, kept by its owner only).
#[derive(Clone, PartialEq, Eq)]
pub struct PseudonymKey(pub [u8; 32]);

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(..)")
    }
}

impl PseudonymKey {
    pub fn random() -> Self {
        let mut k = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut k);
        Self(k)
    }

    /// The pseudonym of `patient` in `grant`.
    pub fn pseudonym(&self, grant: &[u8; 32], patient: &str) -> [u8; PSEUDONYM_LEN] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"dualchain/v1/grant-pseudonym");
        mac.update(grant);
        mac.update(patient.as_bytes());
        mac.finalize().into_bytes()[..PSEUDONYM_LEN].try_into().expect("16 of 32 bytes")
    }
}

/// The pseudonyms of one grant's records: one per distinct patient, and for each
/// delivered record (in ascending record index) the position of its patient's pseudonym.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pseudonyms {
    pub patients: Vec<[u8; PSEUDONYM_LEN]>,
    pub of_record: Vec<u16>,
}

impl Pseudonyms {
    /// For the records a grant delivers, given each one's patient reference in ascending
    /// record index.
    pub fn for_grant<'a>(
        key: &PseudonymKey,
        grant: &[u8; 32],
        patients: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self> {
        let (distinct, of_record) = by_first_use(patients)?;
        // One HMAC per patient, not per record.
        Ok(Self { patients: distinct.iter().map(|p| key.pseudonym(grant, p)).collect(), of_record })
    }

    /// The hospital's side: which of `candidates` (patient references) a pseudonym of
    /// `grant` stands for.
    pub fn reidentify<'a>(
        key: &PseudonymKey,
        grant: &[u8; 32],
        pseudonym: &[u8; PSEUDONYM_LEN],
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> Option<&'a str> {
        candidates.into_iter().find(|c| key.pseudonym(grant, c) == *pseudonym)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(1);
        w.u32(self.patients.len() as u32);
        self.patients.iter().for_each(|p| w.fixed(p));
        w.u32(self.of_record.len() as u32);
        self.of_record.iter().for_each(|i| w.u16(*i));
        w.into_bytes()
    }

    /// Bounded and canonical: every position names a pseudonym, every pseudonym is used,
    /// and pseudonyms appear in order of first use.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "grant pseudonyms");
        ensure!(r.u8()? == 1, "grant pseudonyms of an unknown version");
        let n = r.count_sized("pseudonyms", RECORDS_MAX, PSEUDONYM_LEN)?;
        let patients = (0..n).map(|_| r.array::<PSEUDONYM_LEN>()).collect::<Result<Vec<_>, _>>()?;
        let m = r.count_sized("records", RECORDS_MAX, 2)?;
        let of_record = (0..m).map(|_| r.u16()).collect::<Result<Vec<_>, _>>()?;
        r.finish()?;
        check_first_use(&of_record, patients.len(), "grant pseudonym")?;
        Ok(Self { patients, of_record })
    }

    /// An anonymous grant's pseudonyms, signcrypted by the owner to the one-time
    /// delegating key of the requester's demand (a pseudonym has no IBE identity): CBSRE's
    /// KEM and AEAD under the owner's signature (`dualchain_crypto::cbsre`, Umbral's KEM
    /// with one recipient), the header naming the owner, the dataset and
    /// [`ANONYMOUS_PSEUDONYMS_TYPE`], which the access contract checks. Each demand has
    /// its own one-time key and buys one grant, so the key binds the list to the grant.
    pub fn signcrypt_to(
        &self,
        rng: &mut (impl rand::RngCore + rand::CryptoRng),
        owner: &SigningKeypair,
        owner_id: &str,
        dataset: &[u8; 32],
        to: &DelegatingPublicKey,
    ) -> Result<Vec<u8>> {
        let header = RecordHeader {
            owner: owner_id.to_owned(),
            dataset: DatasetId(*dataset),
            record_index: 0,
            created_at: crate::clock::unix_ms() / 1000,
            content_type: ANONYMOUS_PSEUDONYMS_TYPE.to_owned(),
        };
        Ok(signcrypt(rng, owner, to, header, &self.to_bytes())?.to_bytes())
    }

    /// Opens [`Pseudonyms::signcrypt_to`]'s output with the one-time delegating key,
    /// after checking the owner's signature and that the header names the grant's owner
    /// and dataset.
    pub fn open_signcrypted(
        bytes: &[u8],
        one_time: &DelegatingSecretKey,
        owner_key: &PublicKey,
        owner_id: &str,
        dataset: &[u8; 32],
    ) -> Result<Self> {
        let s = Signcrypted::from_bytes(bytes)?;
        ensure!(
            s.header.owner == owner_id
                && s.header.dataset.0 == *dataset
                && s.header.content_type == ANONYMOUS_PSEUDONYMS_TYPE,
            "the sealed pseudonyms are not the grant's"
        );
        Self::from_bytes(&s.owner_decrypt(one_time, owner_key)?)
    }

    /// Sets each delivered Observation's `subject` to its patient's pseudonym in `grant`.
    /// `records` are (record index, Observation) as delivered; they are matched to the
    /// pseudonyms in ascending record index.
    pub fn apply(&self, grant: &[u8; 32], records: &mut [(u64, Value)]) -> Result<()> {
        let system = format!("urn:dualchain:grant:{}", hex::encode(grant));
        let subjects: Vec<Value> =
            self.patients.iter().map(|p| json!({"identifier": {"system": system, "value": hex::encode(p)}})).collect();
        set_subjects(records, &self.of_record, &subjects)
    }
}

/// The distinct patients of `patients` (one per record, in ascending record index) in
/// order of first use, and each record's position among them. At most [`RECORDS_MAX`]
/// records.
pub fn by_first_use<'a>(patients: impl IntoIterator<Item = &'a str>) -> Result<(Vec<&'a str>, Vec<u16>)> {
    let (mut distinct, mut of_record) = (Vec::new(), Vec::new());
    let mut seen: std::collections::HashMap<&str, u16> = std::collections::HashMap::new();
    for p in patients {
        ensure!(of_record.len() < RECORDS_MAX, "a grant delivers at most {RECORDS_MAX} records");
        let at = *seen.entry(p).or_insert_with(|| {
            distinct.push(p);
            (distinct.len() - 1) as u16
        });
        of_record.push(at);
    }
    Ok((distinct, of_record))
}

/// Checks that positions are canonical for `n` patients, as [`by_first_use`] makes them:
/// every position names a patient, every patient is used, in order of first use.
pub fn check_first_use(of_record: &[u16], n: usize, what: &str) -> Result<()> {
    let mut next = 0usize;
    for &i in of_record {
        let i = i as usize;
        ensure!(i <= next && i < n, "{what}s out of order or out of range");
        next = next.max(i + 1);
    }
    ensure!(next == n, "a {what} no record uses");
    Ok(())
}

/// Sets each delivered Observation's `subject` to `subjects[of_record[k]]` for the k-th
/// record in ascending record index; `records` are (record index, Observation) as
/// delivered.
pub fn set_subjects(records: &mut [(u64, Value)], of_record: &[u16], subjects: &[Value]) -> Result<()> {
    ensure!(
        records.len() == of_record.len(),
        "the grant's patients cover {} records, the CPC delivered {}",
        of_record.len(),
        records.len()
    );
    records.sort_by_key(|(i, _)| *i);
    for ((_, obs), at) in records.iter_mut().zip(of_record) {
        obs["subject"] = subjects.get(*at as usize).ok_or_else(|| anyhow!("a patient position out of range"))?.clone();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_lose_what_links_the_patient_and_keep_the_measurement() {
        let obs = json!({
            "resourceType": "Observation", "id": "obs-17", "status": "final",
            "subject": {"reference": "Patient/p-0042"}, "encounter": {"reference": "Encounter/e9"},
            "identifier": [{"value": "MRN-1234"}], "text": {"div": "John Doe"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "effectiveDateTime": "2026-12-01T10:00:00Z", "valueQuantity": {"value": 72, "code": "/min"},
            "device": {"reference": "Device/bed-3"},
        });
        let (out, patient) = deidentify(&obs);
        assert_eq!(patient.as_deref(), Some("Patient/p-0042"));
        let text = out.to_string();
        for leak in ["p-0042", "obs-17", "e9", "MRN-1234", "John Doe"] {
            assert!(!text.contains(leak), "{leak} left in {text}");
        }
        for kept in ["8867-4", "2026-12-01T10:00:00Z", "72", "bed-3", "final"] {
            assert!(text.contains(kept), "{kept} missing from {text}");
        }
    }

    #[test]
    fn pseudonyms_differ_between_grants_and_only_the_key_holder_reidentifies() {
        let key = PseudonymKey::random();
        let (g1, g2) = ([1u8; 32], [2u8; 32]);
        let refs = ["Patient/a", "Patient/b", "Patient/a", "Patient/c", "Patient/b"];
        let p1 = Pseudonyms::for_grant(&key, &g1, refs).unwrap();
        let p2 = Pseudonyms::for_grant(&key, &g2, refs).unwrap();
        // Within a grant, one pseudonym per patient; across grants, none in common.
        assert_eq!(p1.of_record, [0, 1, 0, 2, 1]);
        assert_eq!(p1.patients.len(), 3);
        assert!(p1.patients.iter().all(|p| !p2.patients.contains(p)), "a pseudonym repeats across grants");
        // Another key (another dataset, or a guess) gives other pseudonyms.
        let other = Pseudonyms::for_grant(&PseudonymKey::random(), &g1, refs).unwrap();
        assert!(other.patients.iter().all(|p| !p1.patients.contains(p)));
        // The hospital maps back; without the key, a guess of the reference does not.
        assert_eq!(Pseudonyms::reidentify(&key, &g1, &p1.patients[2], refs), Some("Patient/c"));
        assert_eq!(Pseudonyms::reidentify(&PseudonymKey::random(), &g1, &p1.patients[2], refs), None);
        assert_eq!(Pseudonyms::from_bytes(&p1.to_bytes()).unwrap(), p1);

        // The requester's side: delivered out of order, matched by record index.
        let mut records: Vec<(u64, Value)> =
            [9u64, 3, 5, 1, 7].iter().map(|i| (*i, json!({"resourceType": "Observation", "n": i}))).collect();
        p1.apply(&g1, &mut records).unwrap();
        let value = |i: usize| records[i].1["subject"]["identifier"]["value"].as_str().unwrap().to_owned();
        assert_eq!(records[0].0, 1);
        assert_eq!(value(0), value(2), "records 1 and 5 are one patient's");
        assert_ne!(value(0), value(1));
        assert_eq!(records[0].1["subject"]["identifier"]["system"], format!("urn:dualchain:grant:{}", hex::encode(g1)));
        assert!(p1.apply(&g1, &mut records[..4].to_vec()).is_err(), "a count mismatch is refused");
    }

    /// An anonymous grant's list: the one-time key opens it, given the grant's owner and
    /// dataset; another key, another owner's signature, another dataset or a tampered
    /// ciphertext does not.
    #[test]
    fn pseudonyms_signcrypted_to_a_one_time_key_open_only_as_sealed() {
        let rng = &mut rand::rngs::OsRng;
        let p = Pseudonyms::for_grant(&PseudonymKey::random(), &[3; 32], ["Patient/a", "Patient/b"]).unwrap();
        let (owner, one_time) = (SigningKeypair::generate(rng), DelegatingSecretKey::generate(rng));
        let dataset = [0xd5; 32];
        let sealed = p.signcrypt_to(rng, &owner, "hospital-a", &dataset, &one_time.public()).unwrap();
        let open = |bytes: &[u8], dsk: &DelegatingSecretKey, key: &PublicKey, owner_id: &str, dataset: &[u8; 32]| {
            Pseudonyms::open_signcrypted(bytes, dsk, key, owner_id, dataset)
        };
        assert_eq!(open(&sealed, &one_time, &owner.public(), "hospital-a", &dataset).unwrap(), p);
        let other_key = DelegatingSecretKey::generate(rng);
        assert!(open(&sealed, &other_key, &owner.public(), "hospital-a", &dataset).is_err());
        assert!(open(&sealed, &one_time, &SigningKeypair::generate(rng).public(), "hospital-a", &dataset).is_err());
        assert!(open(&sealed, &one_time, &owner.public(), "hospital-b", &dataset).is_err());
        assert!(open(&sealed, &one_time, &owner.public(), "hospital-a", &[0; 32]).is_err());
        let mut tampered = sealed.clone();
        let last = tampered.len() - 80;
        tampered[last] ^= 1;
        assert!(open(&tampered, &one_time, &owner.public(), "hospital-a", &dataset).is_err());
    }

    #[test]
    fn malformed_pseudonym_lists_are_refused() {
        let good = Pseudonyms { patients: vec![[1; 16], [2; 16]], of_record: vec![0, 1, 0] }.to_bytes();
        for (bad, what) in [
            (Pseudonyms { patients: vec![[1; 16], [2; 16]], of_record: vec![1, 0] }, "out of order"),
            (Pseudonyms { patients: vec![[1; 16]], of_record: vec![0, 1] }, "out of range"),
            (Pseudonyms { patients: vec![[1; 16], [2; 16]], of_record: vec![0, 0] }, "no record uses"),
        ] {
            let err = Pseudonyms::from_bytes(&bad.to_bytes()).unwrap_err().to_string();
            assert!(err.contains(what), "{what}: {err}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(Pseudonyms::from_bytes(&trailing).is_err());
        assert!(Pseudonyms::from_bytes(&good[..good.len() - 1]).is_err());
        let mut huge = Writer::default();
        huge.u8(1);
        huge.u32(u32::MAX);
        assert!(Pseudonyms::from_bytes(&huge.into_bytes()).is_err());
        assert!(Pseudonyms::from_bytes(&[2]).is_err());
    }
}
