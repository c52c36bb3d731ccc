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
