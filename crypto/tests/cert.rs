//! Member certificates: issue and verify, and every way a certificate must be refused.

mod common;

use std::collections::BTreeSet;

use common::*;
use dualchain_crypto::cert::{CertificateAuthority, NoRevocations, Role};
use dualchain_crypto::error::{CertificateProblem, CryptoError};

fn reason(r: Result<(), CryptoError>) -> CertificateProblem {
    match r {
        Err(CryptoError::Certificate { reason, .. }) => reason,
        other => panic!("expected a certificate error, got {other:?}"),
    }
}

#[test]
fn a_fresh_certificate_verifies_and_bad_ones_are_named() {
    let mut rng = rng(1);
    let ca = ca(&mut rng);
    let m = member(&ca, &mut rng, "hospital-a", Role::Hospital, 42, &["role:hospital"]);
    m.cert.verify(ca.public(), NOW, &NoRevocations).unwrap();
    m.cert.verify_role(ca.public(), NOW, &NoRevocations, Role::Hospital).unwrap();

    assert!(matches!(
        reason(m.cert.verify_role(ca.public(), NOW, &NoRevocations, Role::Cpc)),
        CertificateProblem::WrongRole { .. }
    ));
    assert!(matches!(
        reason(m.cert.verify(ca.public(), NOW + YEAR, &NoRevocations)),
        CertificateProblem::Expired { .. }
    ));
    assert!(matches!(
        reason(m.cert.verify(ca.public(), NOW - 11, &NoRevocations)),
        CertificateProblem::NotYetValid { .. }
    ));
    let revoked: BTreeSet<u64> = [42].into();
    assert_eq!(reason(m.cert.verify(ca.public(), NOW, &revoked)), CertificateProblem::Revoked);

    // Issued by another CA, or another CA's key presented under this CA's name.
    let rogue = CertificateAuthority::generate("consortium-ca", &mut rng).unwrap();
    let forged = member(&rogue, &mut rng, "hospital-a", Role::Hospital, 42, &["role:hospital"]);
    assert_eq!(reason(forged.cert.verify(ca.public(), NOW, &NoRevocations)), CertificateProblem::UnknownIssuer);
    let mut relabelled = forged.cert.clone();
    relabelled.issuer = m.cert.issuer;
    assert_eq!(reason(relabelled.verify(ca.public(), NOW, &NoRevocations)), CertificateProblem::BadSignature);

    // Any changed field breaks the CA signature.
    let mut promoted = m.cert.clone();
    promoted.fields.role = Role::Kgc;
    assert_eq!(reason(promoted.verify(ca.public(), NOW, &NoRevocations)), CertificateProblem::BadSignature);
    let mut extended = m.cert.clone();
    extended.fields.not_after += 1;
    assert_eq!(reason(extended.verify(ca.public(), NOW, &NoRevocations)), CertificateProblem::BadSignature);
}

#[test]
fn member_signatures_are_checked_with_the_certified_key() {
    let mut rng = rng(2);
    let ca = ca(&mut rng);
    let m = member(&ca, &mut rng, "research-1", Role::ResearchInstitute, 1, &["role:research"]);
    let other = member(&ca, &mut rng, "research-2", Role::ResearchInstitute, 2, &["role:research"]);
    let sig = m.signer.sign("tx", b"payload");
    m.cert.verify_member_signature("tx", b"payload", &sig).unwrap();
    assert!(other.cert.verify_member_signature("tx", b"payload", &sig).is_err());
}

#[test]
fn attribute_sets_are_validated_and_commitments_bind() {
    use dualchain_crypto::cert::AttributeSet;
    let a = AttributeSet::new(["dept:cardiology", "role:research", "role:research"]).unwrap();
    assert_eq!(a.len(), 2);
    let b = AttributeSet::new(["role:research", "dept:oncology"]).unwrap();
    assert_ne!(a.commit(&[1; 32]), b.commit(&[1; 32]));
    assert_ne!(a.commit(&[1; 32]), a.commit(&[2; 32]));
    assert!(AttributeSet::new(Vec::<String>::new()).is_err());
    assert!(AttributeSet::new(["Role:Research"]).is_err());
    assert!(AttributeSet::new([""]).is_err());
    assert!(AttributeSet::new((0..40).map(|i| format!("a{i}"))).is_err());
}

#[test]
fn attribute_openings_must_match_the_certified_commitment() {
    use dualchain_crypto::cert::AttributeSet;
    let mut rng = rng(3);
    let ca = ca(&mut rng);
    let m = member(&ca, &mut rng, "research-1", Role::ResearchInstitute, 1, &["role:research", "dept:icu"]);
    m.cert.check_attribute_opening(&m.attributes, &[7; 32]).unwrap();
    assert!(m.cert.check_attribute_opening(&m.attributes, &[8; 32]).is_err());
    let inflated = AttributeSet::new(["role:research", "dept:icu", "dept:oncology"]).unwrap();
    assert!(matches!(
        reason(m.cert.check_attribute_opening(&inflated, &[7; 32])),
        CertificateProblem::AttributeMismatch
    ));
}
