//! The wire and disk formats: conformance fixtures (a hash of each deterministic encoding is
//! committed, so changing a format is a deliberate act), round trips, and the negative
//! space — truncation, trailing bytes, wrong tags and versions, flipped bytes, off-curve
//! points, non-canonical scalars — none of which may panic or be accepted.

mod common;

use blstrs::{G1Affine, G1Projective, G2Projective, Scalar};
use common::*;
use dualchain_crypto::cbsre::{
    signcrypt, Capsule, DatasetId, DelegatingPublicKey, DelegatingSecretKey, ReKeyToken, Reencrypted, Signcrypted,
    TokenScope,
};
use dualchain_crypto::cert::{CaPublicKey, Certificate, Role};
use dualchain_crypto::encoding::ENCODING_VERSION;
use dualchain_crypto::error::DecodeError;
use dualchain_crypto::ibe::{
    encrypt, AuthoritySecret, IbeCiphertext, IbePrivateKey, IbePublicParams, KeyRequest, KeyShare,
};
use dualchain_crypto::reencrypt::{reencrypt_records, CpuBackend};
use dualchain_crypto::sign::SigningKeypair;
use dualchain_crypto::Codec;
use group::{Curve, Group};
use sha2::{Digest, Sha256};

/// One deterministic instance of every encoded type (all randomness from a seeded RNG).
struct Samples {
    ca: CaPublicKey,
    cert: Certificate,
    dsk: DelegatingSecretKey,
    dpk: DelegatingPublicKey,
    capsule: Capsule,
    record: Signcrypted,
    token: ReKeyToken,
    reencrypted: Reencrypted,
    ibe_params: IbePublicParams,
    request: KeyRequest,
    share: KeyShare,
    ibe_ct: IbeCiphertext,
    ibe_key: IbePrivateKey,
    authority: AuthoritySecret,
    signing_key: SigningKeypair,
}

fn samples() -> Samples {
    let mut rng = rng(2026);
    let ca = ca(&mut rng);
    let owner = member(&ca, &mut rng, "hospital-a", Role::Hospital, 1, &["role:hospital"]);
    let requester = member(&ca, &mut rng, "research-1", Role::ResearchInstitute, 2, &["role:research"]);
    let record =
        signcrypt(&mut rng, &owner.signer, &owner.dsk.public(), header("hospital-a", "icu", 0), &observation(0))
            .unwrap();
    let token = ReKeyToken::issue(
        &mut rng,
        &owner.signer,
        &owner.dsk,
        &requester.dsk.public(),
        TokenScope {
            owner: "hospital-a",
            requester: "research-1",
            dataset: DatasetId::derive("hospital-a", "icu"),
            grant_id: [1; 32],
            expiry: NOW + 60,
            records: None,
        },
    )
    .unwrap();
    let reencrypted =
        reencrypt_records(&CpuBackend, &token, &owner.signer.public(), NOW, std::slice::from_ref(&record), &mut rng)
            .unwrap()
            .remove(0);
    let (ibe_params, secrets) = IbePublicParams::setup(&mut rng, &["kgc", "cpc-1", "cpc-2", "cpc-3"]).unwrap();
    let (request, state) = KeyRequest::new(&mut rng, "research-1", &requester.signer).unwrap();
    let trust = dualchain_crypto::cert::TrustContext::new(ca.public(), NOW, &dualchain_crypto::cert::NoRevocations);
    let mut shares: Vec<KeyShare> = Vec::new();
    for s in &secrets {
        let share = s.issue_share(&ibe_params, &request, shares.last(), &requester.cert, &trust).unwrap();
        shares.push(share);
    }
    let ibe_key = state.finish(&ibe_params, &request, &shares).unwrap();
    let share = secrets[0]
        .issue_share(
            &ibe_params,
            &request,
            None,
            &requester.cert,
            &dualchain_crypto::cert::TrustContext::new(ca.public(), NOW, &dualchain_crypto::cert::NoRevocations),
        )
        .unwrap();
    let ibe_ct = encrypt(&mut rng, &ibe_params, "research-1", b"token", b"").unwrap();
    Samples {
        ca: ca.public().clone(),
        cert: owner.cert.clone(),
        dpk: owner.dsk.public(),
        dsk: owner.dsk,
        capsule: record.capsule,
        record,
        token,
        reencrypted,
        ibe_params,
        request,
        share,
        ibe_ct,
        ibe_key,
        authority: secrets[1].clone(),
        signing_key: owner.signer,
    }
}

/// Every sample's encoding, named.
fn encodings(s: &Samples) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("ca_public_key", s.ca.to_bytes()),
        ("certificate", s.cert.to_bytes()),
        ("delegating_secret", s.dsk.to_bytes()),
        ("delegating_public", s.dpk.to_bytes()),
        ("capsule", s.capsule.to_bytes()),
        ("signcrypted", s.record.to_bytes()),
        ("rekey_token", s.token.to_bytes()),
        ("reencrypted", s.reencrypted.to_bytes()),
        ("ibe_public_params", s.ibe_params.to_bytes()),
        ("ibe_key_request", s.request.to_bytes()),
        ("ibe_key_share", s.share.to_bytes()),
        ("ibe_ciphertext", s.ibe_ct.to_bytes()),
        ("ibe_private_key", s.ibe_key.to_bytes()),
        ("ibe_authority_secret", s.authority.to_bytes()),
        ("signing_key", s.signing_key.to_bytes()),
    ]
}

/// Decodes with the type named, re-encodes on success.
fn decode_as(name: &str, bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
    fn rt<T: Codec>(b: &[u8]) -> Result<Vec<u8>, DecodeError> {
        T::from_bytes(b).map(|v| v.to_bytes())
    }
    match name {
        "ca_public_key" => rt::<CaPublicKey>(bytes),
        "certificate" => rt::<Certificate>(bytes),
        "delegating_secret" => rt::<DelegatingSecretKey>(bytes),
        "delegating_public" => rt::<DelegatingPublicKey>(bytes),
        "capsule" => rt::<Capsule>(bytes),
        "signcrypted" => rt::<Signcrypted>(bytes),
        "rekey_token" => rt::<ReKeyToken>(bytes),
        "reencrypted" => rt::<Reencrypted>(bytes),
        "ibe_public_params" => rt::<IbePublicParams>(bytes),
        "ibe_key_request" => rt::<KeyRequest>(bytes),
        "ibe_key_share" => rt::<KeyShare>(bytes),
        "ibe_ciphertext" => rt::<IbeCiphertext>(bytes),
        "ibe_private_key" => rt::<IbePrivateKey>(bytes),
        "ibe_authority_secret" => rt::<AuthoritySecret>(bytes),
        "signing_key" => rt::<SigningKeypair>(bytes),
        other => panic!("unknown sample {other}"),
    }
}

/// SHA-256 of each sample encoding. Regenerate only when a format change is intended (and
/// bump `ENCODING_VERSION` when old data must still be told apart):
/// `UPDATE_FIXTURES=1 cargo test -p dualchain-crypto --test encoding -- --nocapture`.
const FIXTURES: &str = include_str!("fixtures/encodings.txt");

#[test]
fn encodings_match_the_committed_fixtures() {
    let s = samples();
    let actual: String =
        encodings(&s).iter().map(|(name, b)| format!("{name} {}\n", hex::encode(Sha256::digest(b)))).collect();
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        println!("{actual}");
        return;
    }
    assert_eq!(actual, FIXTURES, "an encoding changed: if intended, regenerate tests/fixtures/encodings.txt");
}

#[test]
fn every_encoding_round_trips_byte_for_byte() {
    let s = samples();
    for (name, bytes) in encodings(&s) {
        assert_eq!(bytes[1], ENCODING_VERSION, "{name}");
        assert_eq!(decode_as(name, &bytes).unwrap(), bytes, "{name}");
    }
}

#[test]
fn truncations_trailing_bytes_tags_and_versions_are_refused() {
    let s = samples();
    let all = encodings(&s);
    for (name, bytes) in &all {
        for cut in 0..bytes.len() {
            assert!(decode_as(name, &bytes[..cut]).is_err(), "{name} truncated to {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            matches!(decode_as(name, &longer), Err(DecodeError::TrailingBytes { .. } | DecodeError::TooLong { .. })),
            "{name}"
        );
        let mut v = bytes.clone();
        v[1] = ENCODING_VERSION + 1;
        assert!(matches!(decode_as(name, &v), Err(DecodeError::UnsupportedVersion { .. })), "{name}");
        // Another type's bytes never decode as this type.
        for (other, other_bytes) in &all {
            if other != name {
                assert!(decode_as(name, other_bytes).is_err(), "{other} decoded as {name}");
            }
        }
    }
}

#[test]
fn flipped_bytes_are_refused_or_stay_canonical() {
    // Each single-bit flip either fails to decode or yields a value that re-encodes to the
    // flipped bytes exactly (a different but valid value); it never panics.
    let s = samples();
    for (name, bytes) in encodings(&s) {
        if bytes.len() > 4096 {
            continue;
        }
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut b = bytes.clone();
                b[i] ^= bit;
                if let Ok(re) = decode_as(name, &b) {
                    assert_eq!(re, b, "{name}: byte {i} bit {bit:#x} decoded non-canonically");
                }
            }
        }
    }
}

#[test]
fn off_curve_non_subgroup_and_identity_points_are_refused() {
    let s = samples();
    let good = s.dpk.to_bytes();
    // Identity in compressed form.
    let mut identity = vec![good[0], good[1], 0xc0];
    identity.extend_from_slice(&[0u8; 47]);
    assert!(matches!(DelegatingPublicKey::from_bytes(&identity), Err(DecodeError::IdentityPoint { .. })));
    // x coordinates that are not on the curve: search a few candidates deterministically.
    let mut rejected = 0;
    for x in 1u8..40 {
        let mut b = good.clone();
        b[2..].fill(0);
        b[2] = 0x80; // compressed flag
        b[49] = x;
        if DelegatingPublicKey::from_bytes(&b).is_err() {
            rejected += 1;
        }
    }
    assert!(rejected > 0);
    // x >= p (non-canonical field element).
    let mut b = good.clone();
    b[2] = 0x80 | 0x1f;
    b[3..].fill(0xff);
    assert!(matches!(DelegatingPublicKey::from_bytes(&b), Err(DecodeError::InvalidPoint { .. })));
    // A point on the curve but outside the prime-order subgroup: x = 0 is on y^2 = x^3 + 4
    // (y = 2) and has order 3.
    let mut b = good.clone();
    b[2..].fill(0);
    b[2] = 0x80;
    assert!(matches!(DelegatingPublicKey::from_bytes(&b), Err(DecodeError::InvalidPoint { .. })));
    let _ = (G1Affine::from(G1Projective::generator()), G2Projective::generator().to_affine());
}

#[test]
fn non_canonical_and_zero_scalars_are_refused() {
    let s = samples();
    let good = s.dsk.to_bytes();
    // r itself (little-endian) is not below the order.
    let mut b = good.clone();
    b[2..].copy_from_slice(&hex::decode("01000000fffffffffe5bfeff02a4bd5305d8a10908d83933487d9d2953a7ed73").unwrap());
    assert!(matches!(DelegatingSecretKey::from_bytes(&b), Err(DecodeError::NonCanonicalScalar { .. })));
    let mut z = good.clone();
    z[2..].fill(0);
    assert!(DelegatingSecretKey::from_bytes(&z).is_err());
    // A capsule with sigma = r - 1 + 1 (i.e. r) is refused; sigma = 0 is a valid encoding.
    let cap = s.capsule.to_bytes();
    let mut c = cap.clone();
    c[2 + 96..]
        .copy_from_slice(&hex::decode("01000000fffffffffe5bfeff02a4bd5305d8a10908d83933487d9d2953a7ed73").unwrap());
    assert!(matches!(Capsule::from_bytes(&c), Err(DecodeError::NonCanonicalScalar { .. })));
    let mut zero_sigma = cap.clone();
    zero_sigma[2 + 96..].fill(0);
    let decoded = Capsule::from_bytes(&zero_sigma).unwrap();
    assert_eq!(decoded.sigma, Scalar::from(0u64));
    assert!(!decoded.is_valid());
}

#[test]
fn length_prefixes_are_bounded_before_allocation() {
    let s = samples();
    let mut b = s.record.to_bytes();
    // The ciphertext length prefix sits after the header and capsule; claim 4 GiB.
    let hdr_len = 4 + "hospital-a".len() + 32 + 8 + 8 + 4 + "fhir-r4:observation".len();
    let at = 2 + hdr_len + Capsule::LEN;
    b[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(Signcrypted::from_bytes(&b), Err(DecodeError::TooLong { .. })));
    let huge = vec![0u8; Signcrypted::MAX_LEN + 1];
    assert!(matches!(Signcrypted::from_bytes(&huge), Err(DecodeError::TooLong { .. })));
}

#[test]
fn identifiers_are_validated_on_decode() {
    let s = samples();
    let mut b = s.ca.to_bytes();
    // "consortium-ca" → "Consortium-ca"
    b[6] = b'C';
    assert!(matches!(CaPublicKey::from_bytes(&b), Err(DecodeError::Invalid { .. })));
}
