//! Parameter files: round trip with a content hash; corrupt, truncated, pinned-hash and
//! mismatched-shape files are refused with a clear error.

mod common;

use common::*;
use dualchain_prover::params::ProvingKey;
use dualchain_prover::shapes::Shape;
use dualchain_prover::supply::SupplyShape;
use dualchain_prover::ProverError;

#[test]
fn parameter_files_round_trip_and_bad_files_are_refused() {
    let pk = proving_key(Shape::Policy);
    let dir = std::env::temp_dir().join(format!("dualchain-params-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.params");
    let hash = pk.write_file(&path).unwrap();
    let loaded = ProvingKey::load_file(&path, Shape::Policy, Some(hash)).unwrap();
    assert_eq!(loaded.content_hash, hash);
    assert_eq!(loaded.circuit, pk.circuit);
    assert_eq!(loaded.params.vk, pk.params.vk);

    let bytes = std::fs::read(&path).unwrap();
    let reason = |r: Result<ProvingKey, ProverError>| match r {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a bad parameter file was accepted"),
    };
    // A flipped byte in the body.
    let mut corrupt = bytes.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 1;
    assert!(reason(ProvingKey::from_file_bytes(&corrupt, Shape::Policy, None)).contains("content hash mismatch"));
    // Truncated.
    assert!(
        reason(ProvingKey::from_file_bytes(&bytes[..bytes.len() - 100], Shape::Policy, None)).contains("content hash")
    );
    assert!(reason(ProvingKey::from_file_bytes(&bytes[..10], Shape::Policy, None)).contains("truncated"));
    // Not a parameter file.
    assert!(reason(ProvingKey::from_file_bytes(&[0u8; 200], Shape::Policy, None)).contains("magic"));
    // Another pinned hash.
    assert!(reason(ProvingKey::from_file_bytes(&bytes, Shape::Policy, Some([0; 32]))).contains("pinned"));
    // Loaded for another shape.
    let e = reason(ProvingKey::from_file_bytes(&bytes, Shape::Supply(SupplyShape::Records64), None));
    assert!(e.contains("supply-64") && e.contains("policy"), "{e}");
    // A missing file names its path.
    assert!(reason(ProvingKey::load_file(&dir.join("absent"), Shape::Policy, None)).contains("absent"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A file whose content hash is right but whose header lies: every length is bounded by the
/// bytes present, so it is refused with a reason, never a panic or a huge allocation.
#[test]
fn parameter_headers_that_lie_are_refused() {
    use sha2::{Digest, Sha256};
    let file = |name: &[u8], name_len: u8, body_len: u64, body: &[u8]| {
        let mut f = b"DCGROTH1".to_vec();
        f.extend_from_slice(&1u16.to_le_bytes());
        f.push(name_len);
        f.extend_from_slice(name);
        f.extend_from_slice(&[7; 32]);
        for v in [1u64, 2, 3, body_len] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        f.extend_from_slice(body);
        let hash = Sha256::digest(&f);
        f.extend_from_slice(&hash);
        f
    };
    let reason = |bytes: &[u8]| match ProvingKey::from_file_bytes(bytes, Shape::Policy, None) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a lying parameter file was accepted"),
    };
    let name = Shape::Policy.name().as_bytes();
    let len = name.len() as u8;
    // A body length beyond the file, up to u64::MAX.
    for body_len in [17, u64::from(u32::MAX) + 1, u64::MAX] {
        let e = reason(&file(name, len, body_len, &[0; 16]));
        assert!(e.contains("parameter body"), "{e}");
    }
    // Bytes after the body.
    assert!(reason(&file(name, len, 8, &[0; 16])).contains("trailing bytes"));
    // A name length that runs past the header.
    let e = reason(&file(name, 200, 0, &[]));
    assert!(e.contains("shape name") && e.contains("truncated"), "{e}");
    // Another format version.
    let mut other = file(name, len, 0, &[]);
    other[8] = 2;
    let n = other.len() - 32;
    let hash = Sha256::digest(&other[..n]);
    other[n..].copy_from_slice(&hash);
    assert!(reason(&other).contains("unsupported format version 2"));
}

/// A file whose hash is right and whose points are all on the curve, but one of which lies
/// outside the prime-order subgroup, is refused and the point named.
#[test]
fn a_point_outside_the_subgroup_is_refused() {
    use blstrs::{Fp, G1Affine};
    use ff::Field;
    use sha2::{Digest, Sha256};
    // y² = x³ + 4 at the smallest x with a square right side: on the curve, and (with
    // overwhelming probability, checked) not in the subgroup of order r.
    let off = (1u64..)
        .find_map(|x| {
            let x = Fp::from(x);
            let y: Option<Fp> = (x.square() * x + Fp::from(4)).sqrt().into();
            y.map(|y| G1Affine::from_raw_unchecked(x, y, false))
        })
        .unwrap();
    assert!(bool::from(off.is_on_curve()) && !bool::from(off.is_torsion_free()));
    let mut pk = proving_key(Shape::Policy);
    std::sync::Arc::make_mut(&mut pk.params.h)[3] = off;
    let mut bytes = pk.to_file_bytes().unwrap();
    let n = bytes.len() - 32;
    let hash = Sha256::digest(&bytes[..n]);
    bytes[n..].copy_from_slice(&hash);
    match ProvingKey::from_file_bytes(&bytes, Shape::Policy, None) {
        Err(e) => assert!(e.to_string().contains("point 3 of h is not on the curve or not in its subgroup"), "{e}"),
        Ok(_) => panic!("a proving key with a point outside the subgroup was accepted"),
    }
}
