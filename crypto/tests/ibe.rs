//! ESKI-IBE: chain verification, blinded issuing through a KGC and three CPCs with every
//! step checked, detection and naming of a wrong share, authentication failures, and
//! hybrid IBE encryption.

mod common;

use std::collections::BTreeSet;

use blstrs::{G1Projective, G2Projective};
use common::*;
use dualchain_crypto::cert::{NoRevocations, Role, TrustContext};
use dualchain_crypto::error::{CertificateProblem, CryptoError, IbeProblem};
use dualchain_crypto::ibe::{encrypt, AuthoritySecret, IbePrivateKey, IbePublicParams, KeyRequest, KeyShare};
use dualchain_crypto::Codec;
use group::{Curve, Group};

const AUTHORITIES: [&str; 4] = ["kgc", "cpc-1", "cpc-2", "cpc-3"];

struct World {
    ca: dualchain_crypto::cert::CertificateAuthority,
    params: IbePublicParams,
    secrets: Vec<AuthoritySecret>,
    requester: Member,
}

fn world() -> World {
    let mut rng = rng(21);
    let ca = ca(&mut rng);
    let (params, secrets) = IbePublicParams::setup(&mut rng, &AUTHORITIES).unwrap();
    let requester = member(&ca, &mut rng, "research-1", Role::ResearchInstitute, 5, &["role:research"]);
    World { ca, params, secrets, requester }
}

/// Runs the issuing chain; `corrupt` replaces the share of one authority.
fn issue(w: &World, req: &KeyRequest, corrupt: Option<usize>) -> Result<Vec<KeyShare>, CryptoError> {
    let mut shares: Vec<KeyShare> = Vec::new();
    for secret in &w.secrets {
        let mut share = secret.issue_share(
            &w.params,
            req,
            shares.last(),
            &w.requester.cert,
            &TrustContext::new(w.ca.public(), NOW, &NoRevocations),
        )?;
        if corrupt == Some(secret.index) {
            share.d = (G1Projective::from(share.d) + G1Projective::generator()).to_affine();
        }
        shares.push(share);
    }
    Ok(shares)
}

#[test]
fn chain_verifies_and_a_broken_link_is_named() {
    let w = world();
    w.params.verify_chain().unwrap();
    for (i, name) in AUTHORITIES.iter().enumerate() {
        let mut bad = w.params.clone();
        bad.y[i] = (G2Projective::from(bad.y[i]).double()).to_affine();
        match bad.verify_chain() {
            Err(CryptoError::Ibe(IbeProblem::BadChainLink { index, authority })) => {
                assert_eq!(index, i);
                assert_eq!(&authority, name);
            }
            other => panic!("link {i}: {other:?}"),
        }
    }
}

#[test]
fn blinded_issuing_yields_a_working_key() {
    let w = world();
    let mut rng = rng(22);
    let (req, state) = KeyRequest::new(&mut rng, "research-1", &w.requester.signer).unwrap();
    let shares = issue(&w, &req, None).unwrap();
    let key = state.finish(&w.params, &req, &shares).unwrap();
    let ct = encrypt(&mut rng, &w.params, "research-1", b"cp-abe user key", b"aad").unwrap();
    assert_eq!(key.decrypt(&ct, b"aad").unwrap(), b"cp-abe user key");
    assert!(key.decrypt(&ct, b"other aad").is_err());
    let mut tampered = ct.clone();
    tampered.ciphertext[0] ^= 1;
    assert!(matches!(key.decrypt(&tampered, b"aad"), Err(CryptoError::Decryption(_))));
    // Addressed to someone else.
    let other = encrypt(&mut rng, &w.params, "research-2", b"secret", b"").unwrap();
    assert!(key.decrypt(&other, b"").is_err());
}

#[test]
fn a_wrong_share_from_any_authority_is_detected_and_named() {
    let w = world();
    for bad in 0..AUTHORITIES.len() {
        let mut rng = rng(30 + bad as u64);
        let (req, state) = KeyRequest::new(&mut rng, "research-1", &w.requester.signer).unwrap();
        // The next CPC in the chain refuses to build on the wrong share...
        if bad + 1 < AUTHORITIES.len() {
            match issue(&w, &req, Some(bad)) {
                Err(CryptoError::Ibe(IbeProblem::BadShare { index, authority })) => {
                    assert_eq!((index, authority.as_str()), (bad, AUTHORITIES[bad]));
                }
                other => panic!("authority {bad}: {other:?}"),
            }
        }
        // ...and the requester's own per-step check names it too.
        let mut shares = issue(&w, &req, None).unwrap();
        shares[bad].d = (G1Projective::from(shares[bad].d).double()).to_affine();
        match state.finish(&w.params, &req, &shares) {
            Err(CryptoError::Ibe(IbeProblem::BadShare { index, authority })) => {
                assert_eq!((index, authority.as_str()), (bad, AUTHORITIES[bad]));
            }
            other => panic!("authority {bad}: {other:?}"),
        }
    }
}

#[test]
fn authorities_refuse_unauthenticated_requests() {
    let w = world();
    let mut rng = rng(40);
    // A request for another identity, signed by research-1: the certificate does not match.
    let (req, _) = KeyRequest::new(&mut rng, "hospital-a", &w.requester.signer).unwrap();
    assert!(matches!(issue(&w, &req, None), Err(CryptoError::Ibe(IbeProblem::IdentityMismatch { .. }))));
    // A request signed by a key other than the certified one.
    let impostor = dualchain_crypto::sign::SigningKeypair::generate(&mut rng);
    let (req, _) = KeyRequest::new(&mut rng, "research-1", &impostor).unwrap();
    assert!(matches!(issue(&w, &req, None), Err(CryptoError::BadSignature(_))));
    // A blinded point for another identity (the proof of knowledge fails): X_0 replaced.
    let (mut req, _) = KeyRequest::new(&mut rng, "research-1", &w.requester.signer).unwrap();
    let (other, _) = KeyRequest::new(&mut rng, "research-1", &w.requester.signer).unwrap();
    req.x0 = other.x0;
    assert!(matches!(req.verify_proof(), Err(CryptoError::Ibe(IbeProblem::BadBlindingProof))));
    // A revoked certificate.
    let (req, _) = KeyRequest::new(&mut rng, "research-1", &w.requester.signer).unwrap();
    let revoked: BTreeSet<u64> = [w.requester.cert.fields.serial].into();
    let err = w.secrets[0]
        .issue_share(&w.params, &req, None, &w.requester.cert, &TrustContext::new(w.ca.public(), NOW, &revoked))
        .unwrap_err();
    assert!(matches!(err, CryptoError::Certificate { reason: CertificateProblem::Revoked, .. }));
    // A CPC asked out of order.
    let kgc_share = w.secrets[0]
        .issue_share(&w.params, &req, None, &w.requester.cert, &TrustContext::new(w.ca.public(), NOW, &NoRevocations))
        .unwrap();
    assert!(matches!(
        w.secrets[2].issue_share(
            &w.params,
            &req,
            Some(&kgc_share),
            &w.requester.cert,
            &TrustContext::new(w.ca.public(), NOW, &NoRevocations)
        ),
        Err(CryptoError::Ibe(IbeProblem::WrongStep { expected: 1, found: 0 }))
    ));
}

#[test]
fn no_single_authority_holds_the_key() {
    // Each authority alone (without the others' shares) cannot produce S_ID: the key from
    // any proper subset of shares fails the unblinded-key check.
    let w = world();
    let mut rng = rng(50);
    let (req, state) = KeyRequest::new(&mut rng, "research-1", &w.requester.signer).unwrap();
    let shares = issue(&w, &req, None).unwrap();
    let short = &shares[..AUTHORITIES.len() - 1];
    assert!(matches!(state.finish(&w.params, &req, short), Err(CryptoError::Ibe(IbeProblem::ChainLength { .. }))));
    let _ = IbePrivateKey::from_bytes(&[0u8; 4]).unwrap_err();
}
