//! CP-ABE (AC17 via rabe): policies with flat gates of many inputs, satisfied and
//! unsatisfied keys, and hostile encodings that must be refused without a panic.

use dualchain_crypto::abe::ac17::{Ac17, Ac17Ciphertext, Ac17MasterKey, Ac17PublicKey, Ac17UserKey};
use dualchain_crypto::abe::{AbeScheme, Policy};
use dualchain_crypto::cert::AttributeSet;
use dualchain_crypto::error::{CryptoError, DecodeError};
use dualchain_crypto::Codec;

fn attrs(a: &[&str]) -> AttributeSet {
    AttributeSet::new(a.iter().copied()).unwrap()
}

#[test]
fn authorised_keys_decrypt_and_others_are_refused() {
    let (pk, msk) = Ac17::setup().unwrap();
    // A flat four-input OR inside an AND: rabe itself would panic on the flat gate.
    let policy =
        Policy::parse("role:research and (dept:cardiology or dept:oncology or dept:icu or dept:neurology)").unwrap();
    let ct = Ac17::encrypt(&pk, &policy, b"H1|cpc-1|dataset-locator").unwrap();
    let good = Ac17::keygen(&msk, &attrs(&["role:research", "dept:icu"])).unwrap();
    assert_eq!(Ac17::decrypt(&good, &ct).unwrap(), b"H1|cpc-1|dataset-locator");
    for denied in [&["role:research"][..], &["dept:icu", "dept:oncology"], &["role:hospital", "dept:icu"]] {
        let key = Ac17::keygen(&msk, &attrs(denied)).unwrap();
        match Ac17::decrypt(&key, &ct) {
            Err(CryptoError::Abe(msg)) => assert!(msg.contains("do not satisfy"), "{msg}"),
            other => panic!("{denied:?}: {other:?}"),
        }
    }
    // A key from another authority's master key does not decrypt.
    let (_, other_msk) = Ac17::setup().unwrap();
    let foreign = Ac17::keygen(&other_msk, &attrs(&["role:research", "dept:icu"])).unwrap();
    assert!(Ac17::decrypt(&foreign, &ct).is_err());
}

#[test]
fn policies_that_repeat_an_attribute_are_refused_with_advice() {
    // rabe's AC17 cannot decrypt these (rows are matched by name), so they never get made.
    let (pk, _) = Ac17::setup().unwrap();
    let policy = Policy::parse("(a and b) or (a and c)").unwrap();
    match Ac17::encrypt(&pk, &policy, b"m") {
        Err(CryptoError::Abe(msg)) => assert!(msg.contains("more than once"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn encodings_round_trip_and_hostile_bytes_are_refused() {
    let (pk, msk) = Ac17::setup().unwrap();
    let policy = Policy::parse("role:research and dept:icu").unwrap();
    let ct = Ac17::encrypt(&pk, &policy, b"pointer").unwrap();
    let key = Ac17::keygen(&msk, &attrs(&["role:research", "dept:icu"])).unwrap();

    let ct_bytes = ct.to_bytes();
    let ct2 = Ac17Ciphertext::from_bytes(&ct_bytes).unwrap();
    assert_eq!(ct2.to_bytes(), ct_bytes);
    let key2 = Ac17UserKey::from_bytes(&key.to_bytes()).unwrap();
    assert_eq!(Ac17::decrypt(&key2, &ct2).unwrap(), b"pointer");
    let pk2 = Ac17PublicKey::from_bytes(&pk.to_bytes()).unwrap();
    assert_eq!(pk2.to_bytes(), pk.to_bytes());
    let msk2 = <Ac17 as AbeScheme>::MasterKey::from_bytes(&msk.to_bytes()).unwrap();
    assert_eq!(msk2.to_bytes(), msk.to_bytes());

    // Truncations are refused.
    for cut in [0, 1, 2, 10, ct_bytes.len() / 2, ct_bytes.len() - 1] {
        assert!(Ac17Ciphertext::from_bytes(&ct_bytes[..cut]).is_err(), "cut {cut}");
    }
    // Every changed digit inside the JSON body is refused (off-curve point, wrong label,
    // unreduced coordinate or malformed body) or, if accepted, re-encodes canonically.
    let body_start = 6;
    for i in (body_start..ct_bytes.len()).step_by(37) {
        let mut b = ct_bytes.clone();
        b[i] = match b[i] {
            b'0'..=b'8' => b[i] + 1,
            b'9' => b'0',
            other => other ^ 0x20,
        };
        if let Ok(decoded) = Ac17Ciphertext::from_bytes(&b) {
            assert_eq!(decoded.to_bytes(), b);
            let _ = Ac17::decrypt(&key, &decoded);
        }
    }
}

#[test]
fn a_ciphertext_with_a_non_canonical_policy_is_refused() {
    let (pk, _) = Ac17::setup().unwrap();
    let ct = Ac17::encrypt(&pk, &Policy::parse("a and b").unwrap(), b"m").unwrap();
    let bytes = ct.to_bytes();
    let text = String::from_utf8_lossy(&bytes[6..]).into_owned();
    // Replace the canonical policy with an equivalent flat, rabe-panicking form.
    let hostile = text.replace(r#"(\"a\" and \"b\")"#, r#"\"a\" and \"b\" and \"a\""#);
    assert_ne!(hostile, text, "the policy text was found in the encoding");
    let mut b = bytes[..2].to_vec();
    b.extend_from_slice(&(hostile.len() as u32).to_be_bytes());
    b.extend_from_slice(hostile.as_bytes());
    match Ac17Ciphertext::from_bytes(&b) {
        Err(DecodeError::Invalid { what, .. }) => assert!(what.contains("policy"), "{what}"),
        other => panic!("{other:?}"),
    }
}

/// BN254's base field modulus q and scalar field modulus r, little-endian 64-bit limbs.
const Q: [u64; 4] = [0x3c208c16d87cfd47, 0x97816a916871ca8d, 0xb85045b68181585d, 0x30644e72e131a029];
const R: [u64; 4] = [0x43e1f593f0000001, 0x2833e84879b97091, 0xb85045b68181585d, 0x30644e72e131a029];

/// Re-encodes `value` with the field element at `path` (a JSON pointer to an array of four
/// limbs) replaced by `limbs(old)`.
fn with_limbs<T: Codec>(value: &T, path: &str, limbs: impl Fn([u64; 4]) -> [u64; 4]) -> Vec<u8> {
    let bytes = value.to_bytes();
    let mut tree: serde_json::Value = serde_json::from_slice(&bytes[6..]).unwrap();
    let slot = tree.pointer_mut(path).unwrap_or_else(|| panic!("{path} is in the encoding"));
    let old: Vec<u64> = slot.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    *slot = serde_json::json!(limbs(old.try_into().unwrap()));
    let body = serde_json::to_vec(&tree).unwrap();
    let mut b = bytes[..2].to_vec();
    b.extend_from_slice(&(body.len() as u32).to_be_bytes());
    b.extend_from_slice(&body);
    b
}

/// `a + m` over 256 bits (no overflow for a < m, since 2m < 2^256).
fn plus(a: [u64; 4], m: [u64; 4]) -> [u64; 4] {
    let mut out = [0u64; 4];
    let mut carry = false;
    for i in 0..4 {
        let (s, c1) = a[i].overflowing_add(m[i]);
        let (s, c2) = s.overflowing_add(u64::from(carry));
        out[i] = s;
        carry = c1 || c2;
    }
    assert!(!carry);
    out
}

fn refused_as_unreduced<T: Codec + std::fmt::Debug>(bytes: &[u8], case: &str) {
    match T::from_bytes(bytes) {
        Err(DecodeError::Invalid { reason, .. }) => assert!(reason.contains("not reduced"), "{case}: {reason}"),
        other => panic!("{case}: {other:?}"),
    }
}

#[test]
fn unreduced_field_elements_are_refused_before_any_arithmetic() {
    // rabe-bn computes on raw Montgomery limbs: a coordinate at or above q would reach its
    // arithmetic (and a debug assertion) through the point checks. Each such body is refused
    // as unreduced, whichever group or field the element sits in.
    let (pk, msk) = Ac17::setup().unwrap();
    let ct = Ac17::encrypt(&pk, &Policy::parse("a and b").unwrap(), b"m").unwrap();
    for (path, case) in [
        ("/ct/c/0/1/0/x", "a row point in G1"),
        ("/ct/c/1/1/2/y", "another row point in G1"),
        ("/ct/c_0/0/x/c0", "a point in G2"),
        ("/ct/c_p/c0/c0/c1", "an element of GT"),
    ] {
        refused_as_unreduced::<Ac17Ciphertext>(&with_limbs(&ct, path, |old| plus(old, Q)), case);
        refused_as_unreduced::<Ac17Ciphertext>(&with_limbs(&ct, path, |_| Q), case);
        refused_as_unreduced::<Ac17Ciphertext>(&with_limbs(&ct, path, |_| [u64::MAX; 4]), case);
    }
    refused_as_unreduced::<Ac17PublicKey>(&with_limbs(&pk, "/g/x", |old| plus(old, Q)), "the public key's g");
    // The master key's exponents are in Fr, whose modulus r is below q: r itself is a
    // valid coordinate but not a valid exponent.
    refused_as_unreduced::<Ac17MasterKey>(&with_limbs(&msk, "/a/0", |_| R), "an exponent equal to r");
    refused_as_unreduced::<Ac17MasterKey>(&with_limbs(&msk, "/b/1", |old| plus(old, R)), "an exponent above r");
    // Reduced elements pass this check: the same re-encoding, untouched, still decodes
    // (or, where serde orders keys otherwise, fails only as non-canonical).
    match Ac17Ciphertext::from_bytes(&with_limbs(&ct, "/ct/c_0/0/x/c0", |old| old)) {
        Ok(decoded) => assert_eq!(decoded, ct),
        Err(DecodeError::Invalid { reason, .. }) => assert!(reason.contains("non-canonical"), "{reason}"),
        Err(other) => panic!("{other:?}"),
    }
}
