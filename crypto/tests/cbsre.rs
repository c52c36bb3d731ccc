//! CBSRE: signcryption, owner decryption, re-key tokens, batch re-encryption and requester
//! decryption, with the negative cases a CPC and a requester must refuse.

mod common;

use blstrs::{G1Projective, Scalar};
use common::*;
use dualchain_crypto::cbsre::{signcrypt, Capsule, DatasetId, ReKeyToken, RecordSelection, Signcrypted, TokenScope};
use dualchain_crypto::cert::Role;
use dualchain_crypto::error::{CryptoError, TokenProblem};
use dualchain_crypto::reencrypt::{reencrypt_records, CpuBackend, ReencryptBackend};
use dualchain_crypto::Codec;
use ff::Field;
use group::{Curve, Group};

struct Fixture {
    owner: Member,
    requester: Member,
    records: Vec<Signcrypted>,
    plaintexts: Vec<Vec<u8>>,
    token: ReKeyToken,
}

fn fixture(n: u64) -> Fixture {
    let mut rng = rng(11);
    let ca = ca(&mut rng);
    let owner = member(&ca, &mut rng, "hospital-a", Role::Hospital, 1, &["role:hospital"]);
    let requester = member(&ca, &mut rng, "research-1", Role::ResearchInstitute, 2, &["role:research"]);
    let plaintexts: Vec<Vec<u8>> = (0..n).map(observation).collect();
    let records = plaintexts
        .iter()
        .enumerate()
        .map(|(i, m)| {
            signcrypt(&mut rng, &owner.signer, &owner.dsk.public(), header("hospital-a", "icu-2026", i as u64), m)
                .unwrap()
        })
        .collect();
    let token = ReKeyToken::issue(&mut rng, &owner.signer, &owner.dsk, &requester.dsk.public(), scope(None)).unwrap();
    Fixture { owner, requester, records, plaintexts, token }
}

/// The fixture's grant: research-1's, on hospital-a's `icu-2026`, for an hour.
fn scope(records: Option<RecordSelection>) -> TokenScope<'static> {
    TokenScope {
        owner: "hospital-a",
        requester: "research-1",
        dataset: DatasetId::derive("hospital-a", "icu-2026"),
        grant_id: [9; 32],
        expiry: NOW + 3600,
        records,
    }
}

#[test]
fn owner_decrypts_its_own_records() {
    let f = fixture(3);
    for (rec, pt) in f.records.iter().zip(&f.plaintexts) {
        assert_eq!(&rec.owner_decrypt(&f.owner.dsk, &f.owner.signer.public()).unwrap(), pt);
        assert!(rec.capsule.is_valid());
    }
}

#[test]
fn requester_decrypts_after_batch_reencryption() {
    let f = fixture(16);
    let out = reencrypt_records(&CpuBackend, &f.token, &f.owner.signer.public(), NOW, &f.records, &mut rng(1)).unwrap();
    assert_eq!(out.len(), 16);
    for (re, pt) in out.iter().zip(&f.plaintexts) {
        assert_eq!(&re.decrypt(&f.requester.dsk, &f.owner.signer.public()).unwrap(), pt);
    }
    // Another member's delegating key cannot decrypt the re-encrypted records, nor can the
    // owner's key (the re-encrypted capsule is bound to the requester's d).
    let mut r = rng(5);
    let stranger = dualchain_crypto::cbsre::DelegatingSecretKey::generate(&mut r);
    assert!(matches!(out[0].decrypt(&stranger, &f.owner.signer.public()), Err(CryptoError::Decryption(_))));
    assert!(out[0].decrypt(&f.owner.dsk, &f.owner.signer.public()).is_err());
}

#[test]
fn batch_reencryption_equals_single_reencryption() {
    let f = fixture(33);
    let capsules: Vec<Capsule> = f.records.iter().map(|r| r.capsule).collect();
    let batch = CpuBackend.reencrypt(&f.token.rk, &capsules);
    for (c, (e1, v1)) in capsules.iter().zip(&batch) {
        assert_eq!((G1Projective::from(c.e) * f.token.rk).to_affine(), *e1);
        assert_eq!((G1Projective::from(c.v) * f.token.rk).to_affine(), *v1);
    }
    assert!(CpuBackend.reencrypt(&f.token.rk, &[]).is_empty());
}

#[test]
fn batch_capsule_verification_agrees_with_single_checks_and_names_bad_capsules() {
    let f = fixture(40);
    let mut capsules: Vec<Capsule> = f.records.iter().map(|r| r.capsule).collect();
    for n in [0usize, 1, 2, 7, 40] {
        assert_eq!(CpuBackend.verify_capsules(&capsules[..n], [3; 32]), Ok(()), "n = {n}");
    }
    // Corrupt capsules 4 and 31 in different ways: a shifted sigma and a swapped V.
    capsules[4].sigma += Scalar::ONE;
    capsules[31].v = capsules[30].v;
    assert!(!capsules[4].is_valid() && !capsules[31].is_valid());
    assert_eq!(CpuBackend.verify_capsules(&capsules, [3; 32]), Err(vec![4, 31]));
    // Cancelling errors in two capsules do not fool the random linear combination.
    let mut pair: Vec<Capsule> = f.records[..2].iter().map(|r| r.capsule).collect();
    pair[0].sigma += Scalar::ONE;
    pair[1].sigma -= Scalar::ONE;
    assert_eq!(CpuBackend.verify_capsules(&pair, [8; 32]), Err(vec![0, 1]));
}

#[test]
fn cpc_refuses_invalid_tokens_and_out_of_scope_records() {
    let f = fixture(4);
    let owner_vk = f.owner.signer.public();
    let run = |token: &ReKeyToken, now: u64, records: &[Signcrypted]| {
        reencrypt_records(&CpuBackend, token, &owner_vk, now, records, &mut rng(2))
    };
    // Expired.
    assert!(matches!(run(&f.token, NOW + 3600, &f.records), Err(CryptoError::Token(TokenProblem::Expired { .. }))));
    // Tampered scope (expiry extended) breaks the owner's signature.
    let mut extended = f.token.clone();
    extended.expiry += 1_000_000;
    assert!(matches!(run(&extended, NOW, &f.records), Err(CryptoError::Token(TokenProblem::BadSignature))));
    // Signed by someone other than the owner.
    assert!(matches!(
        reencrypt_records(&CpuBackend, &f.token, &f.requester.signer.public(), NOW, &f.records, &mut rng(2)),
        Err(CryptoError::Token(TokenProblem::BadSignature))
    ));
    // A record of another dataset.
    let mut r = rng(77);
    let other =
        signcrypt(&mut r, &f.owner.signer, &f.owner.dsk.public(), header("hospital-a", "other", 0), b"x").unwrap();
    let mut mixed = f.records.clone();
    mixed.push(other);
    assert!(matches!(run(&f.token, NOW, &mixed), Err(CryptoError::Token(TokenProblem::WrongDataset { .. }))));
    // A forged capsule is refused before anything is re-encrypted.
    let mut forged = f.records.clone();
    forged[2].capsule.sigma += Scalar::ONE;
    assert!(matches!(run(&f.token, NOW, &forged), Err(CryptoError::BadCapsule { index: 2 })));
}

#[test]
fn tampering_is_detected_by_owner_and_requester() {
    let f = fixture(2);
    let vk = f.owner.signer.public();
    let rec = &f.records[0];
    let mut ct = rec.clone();
    ct.ciphertext[3] ^= 1;
    assert!(matches!(ct.owner_decrypt(&f.owner.dsk, &vk), Err(CryptoError::BadSignature(_))));
    let mut hdr = rec.clone();
    hdr.header.record_index = 99;
    assert!(hdr.owner_decrypt(&f.owner.dsk, &vk).is_err());
    // A capsule swapped in from another record of the same owner: the signature covers it.
    let mut swapped = rec.clone();
    swapped.capsule = f.records[1].capsule;
    assert!(matches!(swapped.owner_decrypt(&f.owner.dsk, &vk), Err(CryptoError::BadSignature(_))));
    // Re-encrypted output with a wrong E' fails authentication at the requester.
    let mut out = reencrypt_records(&CpuBackend, &f.token, &vk, NOW, &f.records, &mut rng(3)).unwrap();
    out[0].e_prime = (G1Projective::from(out[0].e_prime) + G1Projective::generator()).to_affine();
    assert!(matches!(out[0].decrypt(&f.requester.dsk, &vk), Err(CryptoError::Decryption(_))));
    // A wrong owner key is refused by the signature check.
    assert!(out[1].decrypt(&f.requester.dsk, &f.requester.signer.public()).is_err());
}

#[test]
fn oversized_records_are_refused() {
    let f = fixture(0);
    let big = vec![0u8; dualchain_crypto::cbsre::RECORD_LEN_MAX + 1];
    let mut r = rng(4);
    assert!(matches!(
        signcrypt(&mut r, &f.owner.signer, &f.owner.dsk.public(), header("hospital-a", "d", 0), &big),
        Err(CryptoError::InvalidArgument(_))
    ));
}

#[test]
fn a_token_that_selects_records_reencrypts_those_and_refuses_the_others() {
    let f = fixture(8);
    let selected = RecordSelection::of([1, 5]).unwrap();
    assert_eq!((selected.count(), selected.indexes().collect::<Vec<_>>()), (2, vec![1, 5]));
    let token =
        ReKeyToken::issue(&mut rng(7), &f.owner.signer, &f.owner.dsk, &f.requester.dsk.public(), scope(Some(selected)))
            .unwrap();
    let owner_key = f.owner.signer.public();
    // The whole dataset: refused at the first record outside the selection.
    let err = reencrypt_records(&CpuBackend, &token, &owner_key, NOW, &f.records, &mut rng(1)).unwrap_err();
    assert!(matches!(err, CryptoError::Token(TokenProblem::RecordNotSelected { index: 0 })), "{err}");
    let chosen = [f.records[1].clone(), f.records[5].clone()];
    let out = reencrypt_records(&CpuBackend, &token, &owner_key, NOW, &chosen, &mut rng(1)).unwrap();
    assert_eq!(out[1].decrypt(&f.requester.dsk, &owner_key).unwrap(), f.plaintexts[5]);
    // It round-trips, and its selection is signed: changing it breaks the signature.
    let bytes = token.to_bytes();
    assert_eq!(ReKeyToken::from_bytes(&bytes).unwrap(), token);
    let mut widened = token.clone();
    widened.records = RecordSelection::of(0..8);
    assert!(matches!(widened.verify(&owner_key, NOW), Err(CryptoError::Token(TokenProblem::BadSignature))));
    // Malformed selections: an unknown variant byte, nothing selected, out of range.
    let at = bytes.len() - 64 - (1 + 4 + 1);
    let mut bad = bytes.clone();
    assert_eq!(bad[at], 1);
    bad[at] = 2;
    assert!(ReKeyToken::from_bytes(&bad).is_err());
    assert!(RecordSelection::of([]).is_none());
    assert!(RecordSelection::of([RecordSelection::RECORDS_MAX]).is_none());
}
