//! The circuits against their native twins: satisfied by valid witnesses with public inputs
//! equal to the natively computed statement, unsatisfied by every kind of invalid witness.

mod common;

use bellpepper_core::test_cs::TestConstraintSystem;
use bellpepper_core::Circuit;
use blstrs::Scalar as Fr;
use common::requirement;
use dualchain_prover::policy::{
    self, categorical, key_hash, schema, Credential, CredentialTree, Op, PolicyCircuit, PolicyDnf, Predicate,
};
use dualchain_prover::supply::{self, Record, Requirement, SupplyCircuit, SupplyShape};
use ff::Field;

fn run<C: Circuit<Fr>>(c: C) -> (bool, Vec<Fr>, usize) {
    let mut cs = TestConstraintSystem::<Fr>::new();
    c.synthesize(&mut cs).unwrap();
    let inputs = cs.scalar_inputs();
    (cs.is_satisfied(), inputs[1..].to_vec(), cs.num_constraints())
}

pub fn research_credential(dept: &str, clearance: u64) -> Credential {
    let mut attributes = [0u64; policy::ATTRIBUTES];
    attributes[schema::ROLE as usize] = categorical("research");
    attributes[schema::DEPARTMENT as usize] = categorical(dept);
    attributes[schema::CLEARANCE as usize] = clearance;
    attributes[schema::TRAINING_VALID_UNTIL as usize] = 20_800;
    Credential { attributes, salt: Fr::from(99u64), key_hash: key_hash(&[7; 32]) }
}

/// role = research AND (dept = cardiology OR dept = icu) AND clearance >= 3 AND training
/// valid until at least day 20_500; or role = research AND clearance >= 5.
pub fn demo_policy() -> PolicyDnf {
    let role = Predicate { attribute: schema::ROLE, op: Op::Eq, constant: categorical("research") };
    let clear3 = Predicate { attribute: schema::CLEARANCE, op: Op::Ge, constant: 3 };
    let training = Predicate { attribute: schema::TRAINING_VALID_UNTIL, op: Op::Ge, constant: 20_500 };
    let dept = |d: &str| Predicate { attribute: schema::DEPARTMENT, op: Op::Eq, constant: categorical(d) };
    PolicyDnf::new(vec![
        vec![role, dept("cardiology"), clear3, training],
        vec![role, dept("icu"), clear3, training],
        vec![role, Predicate { attribute: schema::CLEARANCE, op: Op::Ge, constant: 5 }],
    ])
    .unwrap()
}

fn policy_instance(cred: Credential, policy: PolicyDnf) -> (PolicyCircuit, CredentialTree) {
    let mut tree = CredentialTree::new();
    tree.set(3, Fr::from(12345u64));
    tree.set(77, cred.leaf());
    tree.set(1 << 31, Fr::from(5u64));
    let path = tree.path(77);
    (PolicyCircuit { credential: cred, path, policy, request_id: [42; 32] }, tree)
}

#[test]
fn policy_circuit_matches_native_and_rejects_bad_witnesses() {
    let (good, tree) = policy_instance(research_credential("cardiology", 4), demo_policy());
    let st = good.statement();
    assert_eq!(st.credential_root, tree.root());
    good.check(&st).unwrap();
    let (ok, inputs, n) = run(good.clone());
    assert!(ok);
    assert_eq!(inputs, st.public_inputs());
    println!("policy constraints: {n}");
    assert!(n + 4 <= 1 << 14, "{n} constraints no longer fit a 2^14 domain");

    // Attributes that miss the policy (dermatology, clearance 4): unsatisfiable.
    let (bad, _) = policy_instance(research_credential("dermatology", 4), demo_policy());
    assert!(bad.check(&bad.statement()).is_err());
    assert!(!run(bad).0);
    // ... but clearance 5 satisfies the third clause.
    let (alt, _) = policy_instance(research_credential("dermatology", 5), demo_policy());
    assert!(run(alt).0);

    // A credential not in the tree: the circuit computes another root.
    let mut outsider = good.clone();
    outsider.credential.salt = Fr::from(100u64);
    assert_ne!(outsider.statement().credential_root, st.credential_root);
    assert!(outsider.check(&st).is_err());

    // Another key's binding differs; another request's binding differs.
    let mut other_req = good.clone();
    other_req.request_id = [43; 32];
    assert_ne!(other_req.statement().binding, st.binding);
}

#[test]
fn every_predicate_op_and_disabled_slot_behaves() {
    let cred = research_credential("icu", 2);
    let clearance =
        |op, c| PolicyDnf::new(vec![vec![Predicate { attribute: schema::CLEARANCE, op, constant: c }]]).unwrap();
    for (op, c, expect) in [
        (Op::Eq, 2, true),
        (Op::Eq, 3, false),
        (Op::Ne, 3, true),
        (Op::Ne, 2, false),
        (Op::Ge, 2, true),
        (Op::Ge, 3, false),
        (Op::Le, 2, true),
        (Op::Le, 1, false),
        (Op::Ge, 0, true),
        (Op::Le, u64::MAX, true),
    ] {
        let p = clearance(op, c);
        assert_eq!(p.is_satisfied_by(&cred.attributes), expect, "{op:?} {c}");
        let (circuit, _) = policy_instance(cred.clone(), p);
        assert_eq!(run(circuit).0, expect, "{op:?} {c}");
    }
    // Policies that differ only in a constant hash differently.
    assert_ne!(clearance(Op::Ge, 2).hash(), clearance(Op::Ge, 3).hash());
    assert_ne!(clearance(Op::Ge, 2).hash(), clearance(Op::Le, 2).hash());
}

#[test]
fn credential_tree_paths_verify_and_removal_changes_the_root() {
    let mut tree = CredentialTree::new();
    let empty = tree.root();
    for i in [0u64, 1, 2, 1000, u32::MAX as u64] {
        tree.set(i, Fr::from(i + 1));
    }
    for i in [0u64, 1, 2, 1000, u32::MAX as u64] {
        assert_eq!(policy::root_from_path(Fr::from(i + 1), &tree.path(i)), tree.root());
    }
    let before = tree.root();
    tree.set(1000, Fr::ZERO);
    assert_ne!(tree.root(), before);
    for i in [0u64, 1, 2, u32::MAX as u64] {
        tree.set(i, Fr::ZERO);
    }
    assert_eq!(tree.root(), empty);
}

pub fn heart_rate(i: u32, value_bpm: u32, age_band: u8) -> Record {
    Record {
        present: true,
        code: supply::fhir::loinc_code("8867-4").unwrap(),
        unit: supply::fhir::unit_code("/min"),
        age_band,
        sex: supply::sex::FEMALE,
        value: value_bpm * 1000,
        time: 29_800_000 + i,
        device: supply::fhir::device_code("Device/bedside-01"),
    }
}

fn records() -> Vec<Record> {
    // 40 matching, 10 out of the age range, 5 out of the value range, 5 of another code.
    let mut r: Vec<Record> = (0..40).map(|i| heart_rate(i, 60 + i % 50, 8 + (i % 5) as u8)).collect();
    r.extend((0..10).map(|i| heart_rate(100 + i, 70, 3)));
    r.extend((0..5).map(|i| heart_rate(200 + i, 230, 9)));
    r.extend((0..5).map(|i| Record { code: 594085, unit: 2, value: 97_000, ..heart_rate(300 + i, 97, 9) }));
    r
}

#[test]
fn supply_circuit_matches_native_and_counts_exactly() {
    let recs = records();
    let salt = Fr::from(2024u64);
    assert_eq!(requirement(1).count_matching(&recs), 40);
    let c = SupplyCircuit::new(SupplyShape::Records64, &recs, salt, requirement(40)).unwrap();
    let st = c.statement();
    assert_eq!(st.dataset_commitment, supply::dataset_commitment(SupplyShape::Records64, &recs, salt).unwrap());
    c.check(&st).unwrap();
    let (ok, inputs, n) = run(c);
    assert!(ok);
    assert_eq!(inputs, st.public_inputs());
    println!("supply-64 constraints: {n}");
    assert!(n < 1 << 15, "{n}");

    // Threshold 41: one short.
    let short = SupplyCircuit::new(SupplyShape::Records64, &recs, salt, requirement(41)).unwrap();
    assert!(short.check(&short.statement()).is_err());
    assert!(!run(short).0);

    // Tighter value bounds drop records; the sex filter and the time window apply.
    let mut req = requirement(1);
    req.value_max = Some(80_000);
    assert_eq!(req.count_matching(&recs), 21); // values 60..=80 among 60..=99
    let c = SupplyCircuit::new(SupplyShape::Records64, &recs, salt, Requirement { threshold: 21, ..req }).unwrap();
    assert!(run(c).0);
    let c = SupplyCircuit::new(SupplyShape::Records64, &recs, salt, Requirement { threshold: 22, ..req }).unwrap();
    assert!(!run(c).0);
    let male = Requirement { sex: supply::sex::MALE, ..requirement(1) };
    assert_eq!(male.count_matching(&recs), 0);
    assert!(!run(SupplyCircuit::new(SupplyShape::Records64, &recs, salt, male).unwrap()).0);
    let later = Requirement { time_from: 29_800_030, ..requirement(10) };
    assert_eq!(later.count_matching(&recs), 10);
    assert!(run(SupplyCircuit::new(SupplyShape::Records64, &recs, salt, later).unwrap()).0);
    let no_bounds = Requirement { value_min: None, value_max: None, ..requirement(45) };
    assert_eq!(no_bounds.count_matching(&recs), 45);
    assert!(run(SupplyCircuit::new(SupplyShape::Records64, &recs, salt, no_bounds).unwrap()).0);

    // A wrong commitment: another salt or one changed record.
    let other = SupplyCircuit::new(SupplyShape::Records64, &recs, Fr::from(1u64), requirement(40)).unwrap();
    assert!(other.check(&st).is_err());
    let mut changed = recs.clone();
    changed[0].value += 1;
    assert_ne!(supply::dataset_commitment(SupplyShape::Records64, &changed, salt).unwrap(), st.dataset_commitment);

    // Too many records for the shape, bad codes.
    assert!(SupplyCircuit::new(SupplyShape::Records64, &vec![heart_rate(0, 60, 8); 65], salt, requirement(1)).is_err());
    assert!(SupplyCircuit::new(SupplyShape::Records64, &recs, salt, Requirement { threshold: 0, ..requirement(1) })
        .is_err());
    assert_eq!(SupplyShape::for_records(65), Some(SupplyShape::Records1024));
}

#[test]
fn supply_circuit_counts_only_records_whose_consent_permits_the_use() {
    let recs = records();
    let salt = Fr::from(2024u64);
    // The first 5 of the 40 matching records deny use 0 (and permit use 1); the others
    // permit every use.
    let mut masks = vec![supply::ALL_USES; recs.len()];
    masks[..5].fill(0b0000_0010);
    let consent = |use_index| supply::Consent { masks: masks.clone(), salt: Fr::from(77u64), use_index };
    let with = |threshold, use_index| {
        SupplyCircuit::new(SupplyShape::Records64, &recs, salt, requirement(threshold))
            .unwrap()
            .with_consent(&consent(use_index))
            .unwrap()
    };
    let c = with(35, 0);
    assert_eq!(c.counted(), 35);
    let st = c.statement();
    assert_eq!(
        st.consent_commitment,
        supply::consent_commitment(SupplyShape::Records64, &masks, Fr::from(77u64)).unwrap()
    );
    c.check(&st).unwrap();
    let (ok, inputs, _) = run(c);
    assert!(ok);
    assert_eq!(inputs, st.public_inputs());
    // 36 is one more than consented records, though 40 match.
    let short = with(36, 0);
    assert!(short.check(&short.statement()).is_err());
    assert!(!run(short).0);
    // Use 1 is permitted by all 40; use 2 by 35.
    assert!(run(with(40, 1)).0);
    assert!(!run(with(36, 2)).0);
    // Another use, or changed masks, is another statement.
    assert!(with(35, 1).check(&st).is_err());
    let mut changed = masks.clone();
    changed[7] = 0;
    assert_ne!(
        supply::consent_commitment(SupplyShape::Records64, &changed, Fr::from(77u64)).unwrap(),
        st.consent_commitment
    );
    // A use outside 0..8 and masks beyond the shape are refused.
    let base = SupplyCircuit::new(SupplyShape::Records64, &recs, salt, requirement(1)).unwrap();
    assert!(base.clone().with_consent(&supply::Consent { use_index: 8, ..consent(0) }).is_err());
    assert!(base.with_consent(&supply::Consent { masks: vec![1; 65], ..consent(0) }).is_err());
    assert!(supply::permits(0b100, 2) && !supply::permits(0b100, 1) && !supply::permits(u8::MAX, 8));
}

#[test]
fn fhir_mappings() {
    assert_eq!(supply::fhir::loinc_code("8867-4"), Some(88674));
    assert_eq!(supply::fhir::loinc_code("59408-5"), Some(594085));
    for bad in ["8867", "-4", "8867-45", "88a7-4", "12345678-1"] {
        assert_eq!(supply::fhir::loinc_code(bad), None, "{bad}");
    }
    assert_eq!(supply::fhir::fixed_point(72.5), Some(72_500));
    assert_eq!(supply::fhir::fixed_point(-1.0), None);
    assert_eq!(supply::fhir::fixed_point(f64::NAN), None);
    assert_eq!(supply::fhir::fixed_point(5e6), None);
    assert_ne!(supply::fhir::unit_code("L/min"), supply::fhir::unit_code("/min"));
}
