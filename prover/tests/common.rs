//! Shared fixtures for the proving tests: parameters cached on disk per circuit digest so
//! test processes reuse them, and statement builders.
#![allow(dead_code)]

use blstrs::Scalar as Fr;
use dualchain_prover::params::ProvingKey;
use dualchain_prover::policy::{
    categorical, key_hash, schema, Credential, CredentialTree, Op, PolicyCircuit, PolicyDnf, Predicate,
};
use dualchain_prover::shapes::Shape;
use dualchain_prover::supply::{Record, Requirement, SupplyCircuit, SupplyShape};
use rand::SeedableRng;

pub fn rng(seed: u64) -> rand_chacha::ChaCha20Rng {
    rand_chacha::ChaCha20Rng::seed_from_u64(seed)
}

/// Parameters for `shape`, generated once and cached under the target directory.
pub fn proving_key(shape: Shape) -> ProvingKey {
    // The directory is fixed at build time; a test binary copied to another machine (the
    // GPU tests) creates it there.
    ProvingKey::cached_for_tests(shape, std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))).unwrap()
}

pub fn credential(dept: &str, clearance: u64, key: [u8; 32]) -> Credential {
    let mut attributes = [0u64; 16];
    attributes[schema::ROLE as usize] = categorical("research");
    attributes[schema::DEPARTMENT as usize] = categorical(dept);
    attributes[schema::CLEARANCE as usize] = clearance;
    Credential { attributes, salt: Fr::from(99u64), key_hash: key_hash(&key) }
}

pub fn policy() -> PolicyDnf {
    let role = Predicate { attribute: schema::ROLE, op: Op::Eq, constant: categorical("research") };
    let dept = |d: &str| Predicate { attribute: schema::DEPARTMENT, op: Op::Eq, constant: categorical(d) };
    let clear = Predicate { attribute: schema::CLEARANCE, op: Op::Ge, constant: 3 };
    PolicyDnf::new(vec![vec![role, dept("cardiology"), clear], vec![role, dept("icu"), clear]]).unwrap()
}

/// A registry tree with a few members; `cred` at index 5.
pub fn policy_circuit(cred: Credential, request_id: [u8; 32]) -> (PolicyCircuit, CredentialTree) {
    let mut tree = CredentialTree::new();
    tree.set(1, credential("icu", 4, [1; 32]).leaf());
    tree.set(5, cred.leaf());
    tree.set(9, credential("oncology", 2, [2; 32]).leaf());
    let path = tree.path(5);
    (PolicyCircuit { credential: cred, path, policy: policy(), request_id }, tree)
}

pub fn records(n: u32) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            present: true,
            code: 88674,
            unit: 1,
            age_band: 8 + (i % 4) as u8,
            sex: 1 + (i % 2) as u8,
            value: (50 + i % 100) * 1000,
            time: 29_800_000 + i,
            device: 7,
        })
        .collect()
}

pub fn requirement(threshold: u16) -> Requirement {
    Requirement {
        code: 88674,
        unit: 1,
        age_lo: 8,
        age_hi: 12,
        sex: 0,
        value_min: Some(40_000),
        value_max: Some(200_000),
        time_from: 29_000_000,
        time_to: 30_000_000,
        threshold,
    }
}

pub fn supply_circuit(n: u32, threshold: u16) -> SupplyCircuit {
    supply_circuit_in(SupplyShape::Records64, n, threshold)
}

/// `n` records in a circuit of `shape`.
pub fn supply_circuit_in(shape: SupplyShape, n: u32, threshold: u16) -> SupplyCircuit {
    SupplyCircuit::new(shape, &records(n), Fr::from(5u64), requirement(threshold)).unwrap()
}
