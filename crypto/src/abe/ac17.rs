//! AC17 (FAME) CP-ABE via `rabe` 0.4.2, wrapped so that no input reaches a library panic.
//!
//! rabe's own parser prints to stdout and its MSP conversion panics on flat gates of more
//! than two inputs, so policies are parsed and normalised by [`super::policy`] and only
//! their canonical binary text is handed to rabe.
//!
//! Encoding: `rabe-bn` exposes no point encoding or validation, only serde on raw
//! Jacobian coordinates. Our codec writes a bounded, length-prefixed JSON body of the rabe
//! structure with every point normalised to affine form. The decoder first refuses any
//! field element whose Montgomery limbs are not below its modulus (rabe-bn's arithmetic
//! assumes reduced input and would compute garbage, or trip its own assertions, on
//! anything else), then any body that does not re-encode to the same bytes (so
//! non-normalised coordinates are refused). It then validates every group element with the only tool rabe-bn offers:
//! `r·P = O`, computed as `(r − 1)·P + P` with `r − 1 = −1` in Fr. rabe-bn's addition
//! formulas do not use the curve constant, so for an off-curve point this computes on some
//! other curve `y² = x³ + b'` whose order is not a multiple of r, and the check fails; for
//! G2 and GT it is the prime-order subgroup check. Vector lengths and attribute labels are
//! checked against the structure AC17 needs (rabe indexes them without bounds checks).

use rabe::schemes::ac17 as fame;
use rabe::utils::policy::pest::PolicyLanguage;
use rabe_bn::{Fr, Group, Gt, G1, G2};
use serde::{de::DeserializeOwned, Serialize};

use super::{AbeScheme, Policy};
use crate::cert::AttributeSet;
use crate::encoding::{tags, Codec, Reader, Writer};
use crate::error::{CryptoError, DecodeError};

/// AC17's assumption size k = 2: vectors of k + 1 = 3 group elements.
const K1: usize = 3;
const K: usize = 2;
/// Bounds of the JSON bodies.
const PUBLIC_KEY_JSON_MAX: usize = 64 << 10;
const MASTER_KEY_JSON_MAX: usize = 64 << 10;
const USER_KEY_JSON_MAX: usize = 1 << 20;
/// Largest plaintext under ABE (index pointers and key bundles).
pub const PLAINTEXT_LEN_MAX: usize = 1 << 20;
const CIPHERTEXT_JSON_MAX: usize = 4 << 20;

/// The AC17 scheme marker.
pub struct Ac17;

#[derive(Clone, Debug, PartialEq)]
pub struct Ac17PublicKey(fame::Ac17PublicKey);
#[derive(Clone, PartialEq)]
pub struct Ac17MasterKey(fame::Ac17MasterKey);
#[derive(Clone, PartialEq)]
pub struct Ac17UserKey {
    inner: fame::Ac17CpSecretKey,
    attributes: AttributeSet,
}
#[derive(Clone, Debug, PartialEq)]
pub struct Ac17Ciphertext {
    inner: fame::Ac17CpCiphertext,
    policy: Policy,
}

impl std::fmt::Debug for Ac17MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ac17MasterKey(..)")
    }
}
impl std::fmt::Debug for Ac17UserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ac17UserKey").field("attributes", &self.attributes).finish_non_exhaustive()
    }
}

fn abe_err(e: rabe::error::RabeError) -> CryptoError {
    CryptoError::Abe(e.to_string())
}

// ---- group-element normalisation and validation -------------------------------------

fn norm_g1(mut p: G1) -> G1 {
    p.normalize();
    p
}
fn norm_g2(mut p: G2) -> G2 {
    p.normalize();
    p
}
fn norm_gt(g: Gt) -> Gt {
    g * Gt::one()
}

/// The base field's modulus q and the scalar field's modulus r of rabe-bn's BN254, as
/// little-endian 64-bit limbs (rabe-bn 0.4.23, `fields/fp.rs`). A serialised `Fq` or `Fr`
/// is its Montgomery form, which is below the modulus for every reduced element.
const FQ_MODULUS: [u64; 4] = [0x3c208c16d87cfd47, 0x97816a916871ca8d, 0xb85045b68181585d, 0x30644e72e131a029];
const FR_MODULUS: [u64; 4] = [0x43e1f593f0000001, 0x2833e84879b97091, 0xb85045b68181585d, 0x30644e72e131a029];

/// Whether little-endian limbs are strictly below the modulus.
fn below(limbs: &[u64; 4], modulus: &[u64; 4]) -> bool {
    limbs.iter().rev().cmp(modulus.iter().rev()) == std::cmp::Ordering::Less
}

/// Refuses any field element in a parsed rabe body that is not reduced. serde writes a
/// field element as an array of four integers; nothing else in these structures is one,
/// except a byte string of four bytes, and every such value is below both moduli.
fn check_reduced(what: &'static str, value: &serde_json::Value, modulus: &[u64; 4]) -> Result<(), DecodeError> {
    match value {
        serde_json::Value::Array(items) => {
            let limbs: Option<Vec<u64>> = items.iter().map(serde_json::Value::as_u64).collect();
            match limbs.as_deref().map(<&[u64; 4]>::try_from) {
                Some(Ok(limbs)) if !below(limbs, modulus) => Err(invalid(what, "field element not reduced")),
                Some(Ok(_)) => Ok(()),
                _ => items.iter().try_for_each(|item| check_reduced(what, item, modulus)),
            }
        }
        serde_json::Value::Object(fields) => fields.values().try_for_each(|v| check_reduced(what, v, modulus)),
        _ => Ok(()),
    }
}

fn invalid(what: &'static str, reason: &str) -> DecodeError {
    DecodeError::Invalid { what, reason: reason.into() }
}

fn check_g1(what: &'static str, p: &G1) -> Result<(), DecodeError> {
    let minus_one = -Fr::one();
    if p.is_zero() || !(*p * minus_one + *p).is_zero() {
        return Err(DecodeError::InvalidPoint { what });
    }
    Ok(())
}
fn check_g2(what: &'static str, p: &G2) -> Result<(), DecodeError> {
    let minus_one = -Fr::one();
    if p.is_zero() || !(*p * minus_one + *p).is_zero() {
        return Err(DecodeError::InvalidPoint { what });
    }
    Ok(())
}
fn check_gt(what: &'static str, g: &Gt) -> Result<(), DecodeError> {
    if *g == Gt::one() || g.pow(-Fr::one()) * *g != Gt::one() {
        return Err(DecodeError::InvalidPoint { what });
    }
    Ok(())
}
fn check_len<T>(what: &'static str, v: &[T], n: usize) -> Result<(), DecodeError> {
    if v.len() != n {
        return Err(invalid(what, &format!("expected {n} elements, found {}", v.len())));
    }
    Ok(())
}

// ---- JSON bodies -------------------------------------------------------------------------

fn write_json<T: Serialize>(w: &mut Writer, value: &T) {
    let body = serde_json::to_vec(value).expect("rabe structures serialise to JSON");
    w.bytes(&body);
}

/// Reads a JSON body, refuses unreduced field elements before any arithmetic touches them
/// (those in the top-level fields named in `scalars` are in Fr, all others in Fq), and
/// requires that the normalised value re-encodes to the same bytes.
fn read_json<T: Serialize + DeserializeOwned>(
    r: &mut Reader<'_>,
    what: &'static str,
    max: usize,
    scalars: &[&str],
    normalise: impl Fn(&T) -> T,
) -> Result<T, DecodeError> {
    let raw = r.bytes(what, max)?;
    let malformed = |e: serde_json::Error| invalid(what, &format!("malformed body: {e}"));
    let tree: serde_json::Value = serde_json::from_slice(raw).map_err(malformed)?;
    // Our encoder writes every structure as an object; serde would also take an array.
    let serde_json::Value::Object(fields) = &tree else {
        return Err(invalid(what, "non-canonical encoding"));
    };
    fields.iter().try_for_each(|(name, v)| {
        let modulus = if scalars.contains(&name.as_str()) { &FR_MODULUS } else { &FQ_MODULUS };
        check_reduced(what, v, modulus)
    })?;
    let value: T = serde_json::from_value(tree).map_err(malformed)?;
    let canonical = serde_json::to_vec(&normalise(&value)).expect("rabe structures serialise to JSON");
    if canonical != raw {
        return Err(invalid(what, "non-canonical encoding"));
    }
    Ok(value)
}

fn norm_pk(pk: &fame::Ac17PublicKey) -> fame::Ac17PublicKey {
    fame::Ac17PublicKey {
        g: norm_g1(pk.g),
        h_a: pk.h_a.iter().copied().map(norm_g2).collect(),
        e_gh_ka: pk.e_gh_ka.iter().copied().map(norm_gt).collect(),
    }
}

fn norm_msk(m: &fame::Ac17MasterKey) -> fame::Ac17MasterKey {
    fame::Ac17MasterKey {
        g: norm_g1(m.g),
        h: norm_g2(m.h),
        g_k: m.g_k.iter().copied().map(norm_g1).collect(),
        a: m.a.clone(),
        b: m.b.clone(),
    }
}

fn norm_row(row: &(String, Vec<G1>)) -> (String, Vec<G1>) {
    (row.0.clone(), row.1.iter().copied().map(norm_g1).collect())
}

fn norm_uk(k: &fame::Ac17CpSecretKey) -> fame::Ac17CpSecretKey {
    fame::Ac17CpSecretKey {
        attr: k.attr.clone(),
        sk: fame::Ac17SecretKey {
            k_0: k.sk.k_0.iter().copied().map(norm_g2).collect(),
            k: k.sk.k.iter().map(norm_row).collect(),
            k_p: k.sk.k_p.iter().copied().map(norm_g1).collect(),
        },
    }
}

fn norm_ct(c: &fame::Ac17CpCiphertext) -> fame::Ac17CpCiphertext {
    fame::Ac17CpCiphertext {
        policy: c.policy.clone(),
        ct: fame::Ac17Ciphertext {
            c_0: c.ct.c_0.iter().copied().map(norm_g2).collect(),
            c: c.ct.c.iter().map(norm_row).collect(),
            c_p: norm_gt(c.ct.c_p),
            ct: c.ct.ct.clone(),
        },
    }
}

fn check_rows(what: &'static str, rows: &[(String, Vec<G1>)], labels: &[&str]) -> Result<(), DecodeError> {
    check_len(what, rows, labels.len())?;
    // rabe orders ciphertext rows by its MSP construction, not left to right: compare as sets
    // (labels are unique, see `repeated_attribute`).
    let mut found: Vec<&str> = rows.iter().map(|(label, _)| label.as_str()).collect();
    let mut expected = labels.to_vec();
    found.sort_unstable();
    expected.sort_unstable();
    if found != expected {
        return Err(invalid(what, "row labels do not match the attributes"));
    }
    for (_, points) in rows {
        check_len(what, points, K1)?;
        for p in points {
            check_g1(what, p)?;
        }
    }
    Ok(())
}

// ---- codecs ------------------------------------------------------------------------------

impl Codec for Ac17PublicKey {
    const TAG: u8 = tags::ABE_PUBLIC_KEY;
    const NAME: &'static str = "CP-ABE public key";
    const MAX_LEN: usize = 2 + 4 + PUBLIC_KEY_JSON_MAX;
    fn encode_body(&self, w: &mut Writer) {
        write_json(w, &norm_pk(&self.0));
    }
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let pk: fame::Ac17PublicKey = read_json(r, Self::NAME, PUBLIC_KEY_JSON_MAX, &[], norm_pk)?;
        check_g1("CP-ABE public key g", &pk.g)?;
        check_len("CP-ABE public key h_A", &pk.h_a, K1)?;
        check_len("CP-ABE public key e(g,h)^kA", &pk.e_gh_ka, K)?;
        pk.h_a.iter().try_for_each(|p| check_g2("CP-ABE public key h_A", p))?;
        pk.e_gh_ka.iter().try_for_each(|g| check_gt("CP-ABE public key e(g,h)^kA", g))?;
        Ok(Self(pk))
    }
}

impl Codec for Ac17MasterKey {
    const TAG: u8 = tags::ABE_MASTER_KEY;
    const NAME: &'static str = "CP-ABE master key";
    const MAX_LEN: usize = 2 + 4 + MASTER_KEY_JSON_MAX;
    fn encode_body(&self, w: &mut Writer) {
        write_json(w, &norm_msk(&self.0));
    }
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let m: fame::Ac17MasterKey = read_json(r, Self::NAME, MASTER_KEY_JSON_MAX, &["a", "b"], norm_msk)?;
        check_g1("CP-ABE master key g", &m.g)?;
        check_g2("CP-ABE master key h", &m.h)?;
        check_len("CP-ABE master key g_k", &m.g_k, K1)?;
        m.g_k.iter().try_for_each(|p| check_g1("CP-ABE master key g_k", p))?;
        check_len("CP-ABE master key a", &m.a, K)?;
        check_len("CP-ABE master key b", &m.b, K)?;
        // rabe inverts a_t during key generation and unwraps the result.
        if m.a.iter().chain(&m.b).any(Fr::is_zero) {
            return Err(invalid("CP-ABE master key", "zero exponent"));
        }
        Ok(Self(m))
    }
}

impl Codec for Ac17UserKey {
    const TAG: u8 = tags::ABE_USER_KEY;
    const NAME: &'static str = "CP-ABE user key";
    const MAX_LEN: usize = 2 + 4 + USER_KEY_JSON_MAX;
    fn encode_body(&self, w: &mut Writer) {
        write_json(w, &norm_uk(&self.inner));
    }
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let k: fame::Ac17CpSecretKey = read_json(r, Self::NAME, USER_KEY_JSON_MAX, &[], norm_uk)?;
        let attributes = AttributeSet::new(k.attr.iter().cloned())
            .map_err(|e| invalid("CP-ABE user key attributes", &e.to_string()))?;
        // Keys are generated from an AttributeSet: sorted, unique, in this order.
        if !attributes.iter().eq(k.attr.iter().map(String::as_str)) {
            return Err(invalid("CP-ABE user key attributes", "not sorted and unique"));
        }
        check_len("CP-ABE user key k_0", &k.sk.k_0, K1)?;
        k.sk.k_0.iter().try_for_each(|p| check_g2("CP-ABE user key k_0", p))?;
        check_len("CP-ABE user key k'", &k.sk.k_p, K1)?;
        k.sk.k_p.iter().try_for_each(|p| check_g1("CP-ABE user key k'", p))?;
        let labels: Vec<&str> = k.attr.iter().map(String::as_str).collect();
        check_rows("CP-ABE user key rows", &k.sk.k, &labels)?;
        Ok(Self { inner: k, attributes })
    }
}

impl Codec for Ac17Ciphertext {
    const TAG: u8 = tags::ABE_CIPHERTEXT;
    const NAME: &'static str = "CP-ABE ciphertext";
    const MAX_LEN: usize = 2 + 4 + CIPHERTEXT_JSON_MAX;
    fn encode_body(&self, w: &mut Writer) {
        write_json(w, &norm_ct(&self.inner));
    }
    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let c: fame::Ac17CpCiphertext = read_json(r, Self::NAME, CIPHERTEXT_JSON_MAX, &[], norm_ct)?;
        if c.policy.1 != PolicyLanguage::HumanPolicy {
            return Err(invalid("CP-ABE ciphertext policy", "unsupported policy language"));
        }
        let policy = Policy::parse(&c.policy.0).map_err(|e| invalid("CP-ABE ciphertext policy", &e.to_string()))?;
        if policy.canonical() != c.policy.0 {
            return Err(invalid("CP-ABE ciphertext policy", "not in canonical form"));
        }
        if let Some(attr) = repeated_attribute(&policy) {
            return Err(invalid("CP-ABE ciphertext policy", &format!("attribute {attr} appears twice")));
        }
        check_len("CP-ABE ciphertext c_0", &c.ct.c_0, K1)?;
        c.ct.c_0.iter().try_for_each(|p| check_g2("CP-ABE ciphertext c_0", p))?;
        check_rows("CP-ABE ciphertext rows", &c.ct.c, &policy.leaves())?;
        check_gt("CP-ABE ciphertext c'", &c.ct.c_p)?;
        // rabe splits a 12-byte nonce off the front and expects a 16-byte GCM tag.
        if c.ct.ct.len() < 12 + 16 || c.ct.ct.len() > 12 + 16 + PLAINTEXT_LEN_MAX {
            return Err(invalid("CP-ABE ciphertext payload", "length out of range"));
        }
        Ok(Self { inner: c, policy })
    }
}

/// rabe's decryption matches ciphertext rows to key rows by attribute name, so a policy that
/// names an attribute twice yields ciphertexts no key can open. Such policies are refused.
fn repeated_attribute(policy: &Policy) -> Option<String> {
    let mut leaves = policy.leaves();
    leaves.sort_unstable();
    leaves.windows(2).find(|w| w[0] == w[1]).map(|w| w[0].to_owned())
}

// ---- the scheme ----------------------------------------------------------------------------

impl AbeScheme for Ac17 {
    type PublicKey = Ac17PublicKey;
    type MasterKey = Ac17MasterKey;
    type UserKey = Ac17UserKey;
    type Ciphertext = Ac17Ciphertext;
    const NAME: &'static str = "ac17-bn254";

    fn setup() -> Result<(Ac17PublicKey, Ac17MasterKey), CryptoError> {
        let (pk, msk) = fame::setup();
        Ok((Ac17PublicKey(pk), Ac17MasterKey(msk)))
    }

    fn keygen(msk: &Ac17MasterKey, attributes: &AttributeSet) -> Result<Ac17UserKey, CryptoError> {
        let attrs: Vec<&str> = attributes.iter().collect();
        let inner = fame::cp_keygen(&msk.0, &attrs).map_err(abe_err)?;
        Ok(Ac17UserKey { inner, attributes: attributes.clone() })
    }

    fn encrypt(pk: &Ac17PublicKey, policy: &Policy, plaintext: &[u8]) -> Result<Ac17Ciphertext, CryptoError> {
        if plaintext.len() > PLAINTEXT_LEN_MAX {
            return Err(CryptoError::InvalidArgument(format!("ABE plaintext exceeds {PLAINTEXT_LEN_MAX} bytes")));
        }
        if let Some(attr) = repeated_attribute(policy) {
            return Err(CryptoError::Abe(format!(
                "policy {policy} names attribute {attr} more than once, which AC17 (rabe) cannot decrypt; \
                 factor it out, e.g. `a and (b or c)` instead of `(a and b) or (a and c)`"
            )));
        }
        let inner =
            fame::cp_encrypt(&pk.0, &policy.canonical(), plaintext, PolicyLanguage::HumanPolicy).map_err(abe_err)?;
        Ok(Ac17Ciphertext { inner, policy: policy.clone() })
    }

    fn decrypt(key: &Ac17UserKey, ct: &Ac17Ciphertext) -> Result<Vec<u8>, CryptoError> {
        let attrs: Vec<&str> = key.attributes.iter().collect();
        if !ct.policy.is_satisfied_by(&attrs) {
            return Err(CryptoError::Abe(format!("the key's attributes do not satisfy the policy {}", ct.policy)));
        }
        fame::cp_decrypt(&key.inner, &ct.inner).map_err(abe_err)
    }

    fn policy(ct: &Ac17Ciphertext) -> &Policy {
        &ct.policy
    }

    fn attributes(key: &Ac17UserKey) -> &AttributeSet {
        &key.attributes
    }
}
