//! The anonymous policy circuit (issue 17 item 3) against its native twin: a valid witness
//! proves a statement that names neither the member, its key nor its leaf; nullifiers
//! limit a credential to its budget per dataset and epoch without linking its requests;
//! the sealed identity opens to the credential's leaf for t audit authorities; and every
//! wrong witness or statement (another key, another index, another binding, a spent
//! budget) fails, natively with a reason and in the constraint system.

mod common;

use bellpepper_core::test_cs::TestConstraintSystem;
use bellpepper_core::Circuit;
use blstrs::Scalar as Fr;
use common::*;
use dualchain_prover::anonymous::{
    nullifier, nullifier_commitment, nullifier_scope, AnonymousCredential, AnonymousPolicyCircuit, AnonymousStatement,
    DemandNullifierCircuit, DemandNullifierStatement,
};
use dualchain_prover::escrow::{deal, seal, seal_with, AuthoritySecret, Committee, DkgShare, EscrowKey};
use dualchain_prover::groth16::Prover;
use dualchain_prover::policy::{key_hash, request_binding, CredentialTree};
use dualchain_prover::shapes::{AnyCircuit, Shape};
use dualchain_prover::verify::{verify, VerifyError};
use dualchain_prover::ProverError;
use ff::Field;

const INDEX: u64 = 77;

struct Audit {
    committee: Committee,
    dealings: Vec<dualchain_prover::escrow::Dealing>,
    shares: Vec<DkgShare>,
    key: EscrowKey,
}

fn audit() -> Audit {
    let mut rng = rng(21);
    let committee = Committee::new(2, 3).unwrap();
    let (mut dealings, mut shares) = (Vec::new(), Vec::new());
    for dealer in 1..=3 {
        let (d, s) = deal(&committee, dealer, &mut rng).unwrap();
        dealings.push(d);
        shares.extend(s);
    }
    let key = EscrowKey::from_dealings(&committee, &dealings).unwrap();
    Audit { committee, dealings, shares, key }
}

fn anonymous_credential(nk: u64) -> AnonymousCredential {
    let c = credential("cardiology", 4, [7; 32]);
    AnonymousCredential { attributes: c.attributes, salt: c.salt, key_hash: c.key_hash, nullifier_key: Fr::from(nk) }
}

/// The member's credential at [`INDEX`] of a registry with other members; a request for
/// dataset `[9; 32]` in epoch 20_000 with a budget of 3.
fn instance(audit: &Audit, credential: AnonymousCredential, counter: u16) -> (AnonymousPolicyCircuit, CredentialTree) {
    let mut tree = CredentialTree::new();
    tree.set(1, anonymous_credential(1).leaf());
    tree.set(INDEX, credential.leaf());
    tree.set(1 << 30, anonymous_credential(2).leaf());
    let (_, randomness) = seal(&audit.key, 0, &mut rng(counter.into())).unwrap();
    let circuit = AnonymousPolicyCircuit {
        path: tree.path(INDEX),
        credential,
        policy: policy(),
        binding: request_binding(&[42; 32], key_hash(&[0xa5; 32])),
        scope: nullifier_scope(&[9; 32], 20_000),
        budget: 3,
        counter,
        escrow_key: audit.key.public_key(),
        seal_randomness: randomness,
    };
    (circuit, tree)
}

fn run(c: AnonymousPolicyCircuit, statement: &AnonymousStatement) -> (bool, bool, usize) {
    let mut cs = TestConstraintSystem::<Fr>::new();
    c.synthesize(&mut cs).unwrap();
    (cs.is_satisfied(), cs.verify(&statement.public_inputs()), cs.num_constraints())
}

fn refused(c: &AnonymousPolicyCircuit, statement: &AnonymousStatement, reason: &str) {
    refused_with(c.check(statement), c, &statement.public_inputs(), reason);
}

/// The native check refuses with `reason`, and the constraints do not accept the witness
/// with these public inputs either.
fn refused_with<C: Circuit<Fr> + Clone>(check: Result<(), ProverError>, c: &C, inputs: &[Fr], reason: &str) {
    match check {
        Err(ProverError::Statement(why)) => assert!(why.contains(reason), "{why}"),
        other => panic!("expected a refusal ({reason}): {other:?}"),
    }
    let mut cs = TestConstraintSystem::<Fr>::new();
    c.clone().synthesize(&mut cs).unwrap();
    assert!(!(cs.is_satisfied() && cs.verify(inputs)), "{reason}: the constraints accept it");
}

#[test]
fn a_valid_witness_proves_a_statement_that_names_no_member_and_t_authorities_open_it() {
    let audit = audit();
    let cred = anonymous_credential(1234);
    let (circuit, tree) = instance(&audit, cred.clone(), 0);
    let st = circuit.statement();
    assert_eq!(st.credential_root, tree.root());
    circuit.check(&st).unwrap();
    let (satisfied, inputs_match, constraints) = run(circuit.clone(), &st);
    assert!(satisfied && inputs_match);

    // Nothing public is the member's key hash, its nullifier key or commitment, its leaf
    // or its index: the statement is the registry's root, the policy, the request's
    // one-time binding, the scope and budget, a pseudorandom nullifier and a ciphertext.
    let public = st.public_inputs();
    for secret in
        [cred.key_hash, cred.nullifier_key, nullifier_commitment(cred.nullifier_key), cred.leaf(), Fr::from(INDEX)]
    {
        assert!(!public.contains(&secret));
    }
    // The same member asking the same with another one-time key makes unrelated inputs
    // apart from the shared root, policy, scope, budget and escrow key.
    let (mut again, _) = instance(&audit, cred, 1);
    again.binding = request_binding(&[43; 32], key_hash(&[0x5a; 32]));
    let st2 = again.statement();
    let public2 = st2.public_inputs();
    let differing: Vec<usize> = (0..public.len()).filter(|i| public[*i] != public2[*i]).collect();
    assert_eq!(differing, vec![2, 5, 8, 9, 10], "binding, nullifier and the sealed identity differ");

    // Two of the three audit authorities open the sealed identity to the leaf index.
    let mut rng = rng(5);
    let case = b"audit: demand 7e1a";
    let opened = [1u16, 3]
        .iter()
        .map(|i| {
            AuthoritySecret::from_shares(&audit.committee, *i, &audit.dealings, &audit.shares)
                .unwrap()
                .decryption_share(&audit.key, &st.sealed, case, &mut rng)
                .unwrap()
        })
        .collect::<Vec<_>>();
    assert_eq!(audit.key.open(&st.sealed, &opened, case).unwrap(), INDEX);

    // Its cost beside the policy circuit's.
    let mut policy_cs = TestConstraintSystem::<Fr>::new();
    policy_circuit(credential("cardiology", 4, [7; 32]), [42; 32]).0.synthesize(&mut policy_cs).unwrap();
    let policy_constraints = policy_cs.num_constraints();
    eprintln!("constraints: policy {policy_constraints}, anonymous policy {constraints}");
    assert!(constraints > policy_constraints && constraints - policy_constraints < 8_000);
    assert_eq!(Shape::AnonymousPolicy.circuit_shape().unwrap().constraints, constraints);
}

#[test]
fn nullifiers_hold_a_credential_to_its_budget_without_linking_its_requests() {
    let audit = audit();
    let scope = nullifier_scope(&[9; 32], 20_000);
    let nk = Fr::from(1234u64);
    // Budget 3: three distinct nullifiers, each one usable once.
    let spent: Vec<Fr> = (0..3).map(|k| nullifier(nk, scope, k)).collect();
    assert!(spent[0] != spent[1] && spent[1] != spent[2] && spent[0] != spent[2]);
    for counter in 0..3 {
        let (c, _) = instance(&audit, anonymous_credential(1234), counter);
        assert_eq!(c.statement().nullifier, spent[usize::from(counter)]);
        c.check(&c.statement()).unwrap();
    }
    // A fourth request has no nullifier left: counter 3 is not below the budget.
    let (fourth, _) = instance(&audit, anonymous_credential(1234), 3);
    refused(&fourth, &fourth.statement(), "used up");
    // Another member, another dataset or another epoch: other nullifiers.
    assert_ne!(nullifier(Fr::from(1235u64), scope, 0), spent[0]);
    assert_ne!(nullifier(nk, nullifier_scope(&[8; 32], 20_000), 0), spent[0]);
    assert_ne!(nullifier(nk, nullifier_scope(&[9; 32], 20_001), 0), spent[0]);
    // A claimed nullifier that is not this credential's (to dodge the reuse check) fails.
    let (c, _) = instance(&audit, anonymous_credential(1234), 0);
    let mut st = c.statement();
    st.nullifier = nullifier(Fr::from(999u64), scope, 0);
    refused(&c, &st, "nullifier");
}

#[test]
fn wrong_keys_indices_bindings_and_escrow_keys_are_refused() {
    let audit = audit();
    let (c, _) = instance(&audit, anonymous_credential(1234), 0);
    let st = c.statement();
    // A nullifier key that is not the one the leaf commits to: not in the tree.
    let mut forged = c.clone();
    forged.credential.nullifier_key = Fr::from(4321u64);
    refused(&forged, &st, "not in the tree");
    // A sealed identity of another index (to frame another member): refused.
    let mut framed = st.clone();
    framed.sealed = seal_with(&st.escrow_key, INDEX + 1, &c.seal_randomness);
    refused(&c, &framed, "sealed identity");
    // Sealed under a key the authorities do not hold: refused.
    let mut elsewhere = c.clone();
    elsewhere.escrow_key = audit.key.public_key() + audit.key.public_key();
    refused(&elsewhere, &st, "sealed identity");
    // Another request's binding (replaying the proof with another one-time key): refused.
    let mut replay = st.clone();
    replay.binding = request_binding(&[42; 32], key_hash(&[0xa6; 32]));
    refused(&c, &replay, "binding");
    // Attributes that do not satisfy the policy.
    let mut weak = c.clone();
    weak.credential =
        AnonymousCredential { attributes: credential("oncology", 4, [7; 32]).attributes, ..c.credential.clone() };
    let mut tree = CredentialTree::new();
    tree.set(INDEX, weak.credential.leaf());
    weak.path = tree.path(INDEX);
    refused(&weak, &weak.statement(), "do not satisfy");
}

#[test]
fn anonymous_policy_proofs_verify_with_groth16_and_bind_their_statement() {
    let audit = audit();
    let pk = proving_key(Shape::AnonymousPolicy);
    let (c, _) = instance(&audit, anonymous_credential(1234), 1);
    let inputs = c.statement().public_inputs();
    let (proof, _) = Prover::default().prove(&pk, AnyCircuit::AnonymousPolicy(Box::new(c)), &mut rng(9)).unwrap();
    verify(&pk.pvk, pk.vk(), &proof, &inputs).unwrap();
    // Every public input is bound: changing any one fails verification.
    for i in 0..inputs.len() {
        let mut wrong = inputs.clone();
        wrong[i] += Fr::ONE;
        assert_eq!(verify(&pk.pvk, pk.vk(), &proof, &wrong), Err(VerifyError::Invalid), "input {i}");
    }
}

/// A named demand's nullifier proof (one budget across named and anonymous demands): it
/// proves the same nullifier an anonymous demand with that counter would spend, against
/// the member's anonymous leaf (public on chain with its credential), and nothing else of
/// the credential is public: not its key hash, nullifier key, attributes or the other
/// counters' nullifiers. A counter at the budget, another member's leaf, another scope and
/// a nullifier that is not the credential's each fail, natively and in the constraints.
#[test]
fn a_named_demand_proves_the_nullifier_its_anonymous_twin_would_spend_and_no_other() {
    let audit = audit();
    let cred = anonymous_credential(1234);
    let (anonymous, _) = instance(&audit, cred.clone(), 1);
    let named = DemandNullifierCircuit { credential: cred.clone(), scope: anonymous.scope, budget: 3, counter: 1 };
    let st = named.statement();
    assert_eq!(st.nullifier, anonymous.statement().nullifier, "one nullifier per counter, whichever path");
    assert_eq!(st.anonymous_leaf, cred.leaf());
    named.check(&st).unwrap();
    let mut cs = TestConstraintSystem::<Fr>::new();
    named.clone().synthesize(&mut cs).unwrap();
    assert!(cs.is_satisfied() && cs.verify(&st.public_inputs()));
    let constraints = cs.num_constraints();
    eprintln!("constraints: demand nullifier {constraints}");
    assert_eq!(Shape::DemandNullifier.circuit_shape().unwrap().constraints, constraints);
    let public = st.public_inputs();
    for secret in [cred.key_hash, cred.nullifier_key, nullifier_commitment(cred.nullifier_key)]
        .into_iter()
        .chain([0, 2].map(|k| nullifier(cred.nullifier_key, st.scope, k)))
    {
        assert!(!public.contains(&secret));
    }

    let named_refused = |c: &DemandNullifierCircuit, statement: &DemandNullifierStatement, reason: &str| {
        refused_with(c.check(statement), c, &statement.public_inputs(), reason)
    };
    // The budget's own counter: the fourth demand of a budget of three.
    let spent = DemandNullifierCircuit { counter: 3, ..named.clone() };
    named_refused(&spent, &spent.statement(), "not below the budget");
    // Another member's leaf (the ledger looks up the signer's).
    let other = DemandNullifierStatement { anonymous_leaf: anonymous_credential(1).leaf(), ..st };
    named_refused(&named, &other, "anonymous leaf");
    // Another dataset or epoch.
    let elsewhere = DemandNullifierStatement { scope: nullifier_scope(&[9; 32], 20_001), ..st };
    named_refused(&named, &elsewhere, "scope or budget");
    // A nullifier of the member's choosing (to dodge the budget).
    let chosen = DemandNullifierStatement { nullifier: Fr::from(77u64), ..st };
    named_refused(&named, &chosen, "nullifier is not");
}
