//! Shared fixtures: a CA, members and a seeded RNG.
#![allow(dead_code)]

use dualchain_crypto::cbsre::{DatasetId, DelegatingSecretKey, RecordHeader};
use dualchain_crypto::cert::{AttributeSet, Certificate, CertificateAuthority, CertificateFields, Role};
use dualchain_crypto::sign::SigningKeypair;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

pub const NOW: u64 = 1_790_000_000;
pub const YEAR: u64 = 365 * 24 * 3600;

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

pub struct Member {
    pub id: String,
    pub signer: SigningKeypair,
    pub dsk: DelegatingSecretKey,
    pub attributes: AttributeSet,
    pub cert: Certificate,
}

pub fn member(
    ca: &CertificateAuthority,
    rng: &mut ChaCha20Rng,
    id: &str,
    role: Role,
    serial: u64,
    attrs: &[&str],
) -> Member {
    let signer = SigningKeypair::generate(rng);
    let dsk = DelegatingSecretKey::generate(rng);
    let attributes = AttributeSet::new(attrs.iter().copied()).unwrap();
    let cert = ca
        .issue(CertificateFields {
            serial,
            subject: id.into(),
            role,
            signing_key: signer.public(),
            delegating_key: dsk.public(),
            attribute_commitment: attributes.commit(&[7; 32]),
            not_before: NOW - 10,
            not_after: NOW + YEAR,
        })
        .unwrap();
    Member { id: id.into(), signer, dsk, attributes, cert }
}

pub fn ca(rng: &mut ChaCha20Rng) -> CertificateAuthority {
    CertificateAuthority::generate("consortium-ca", rng).unwrap()
}

pub fn header(owner: &str, dataset: &str, index: u64) -> RecordHeader {
    RecordHeader {
        owner: owner.into(),
        dataset: DatasetId::derive(owner, dataset),
        record_index: index,
        created_at: NOW,
        content_type: "fhir-r4:observation".into(),
    }
}

pub fn observation(i: u64) -> Vec<u8> {
    format!(r#"{{"resourceType":"Observation","id":"obs-{i}","status":"final","valueQuantity":{{"value":{},"unit":"/min"}}}}"#, 60 + i % 40)
        .into_bytes()
}
