//! Property tests of algebraic laws and normalisation.

mod common;

use common::*;
use dualchain_crypto::abe::Policy;
use dualchain_crypto::cbsre::{signcrypt, Capsule};
use dualchain_crypto::cert::Role;
use dualchain_crypto::reencrypt::{CpuBackend, ReencryptBackend};
use proptest::prelude::*;

/// Random policy texts over a small alphabet, with flat and nested gates.
fn policy_text() -> impl Strategy<Value = String> {
    let leaf = prop::sample::select(vec!["a", "b", "c", "d", "e"]).prop_map(str::to_owned);
    leaf.prop_recursive(4, 24, 5, |inner| {
        (prop::collection::vec(inner, 2..5), any::<bool>())
            .prop_map(|(items, and)| format!("({})", items.join(if and { " and " } else { " or " })))
    })
}

/// Evaluates a policy text directly (flat n-ary gates), independently of the normaliser.
fn eval(text: &str, attrs: &[&str]) -> bool {
    Policy::parse(text).is_ok() && {
        // A tiny recursive evaluator over the raw tokens, with n-ary gates as written.
        fn parse_or(t: &[&str], i: &mut usize, attrs: &[&str]) -> bool {
            let mut v = parse_and(t, i, attrs);
            while *i < t.len() && t[*i] == "or" {
                *i += 1;
                let r = parse_and(t, i, attrs);
                v = v || r;
            }
            v
        }
        fn parse_and(t: &[&str], i: &mut usize, attrs: &[&str]) -> bool {
            let mut v = atom(t, i, attrs);
            while *i < t.len() && t[*i] == "and" {
                *i += 1;
                let r = atom(t, i, attrs);
                v = v && r;
            }
            v
        }
        fn atom(t: &[&str], i: &mut usize, attrs: &[&str]) -> bool {
            let tok = t[*i];
            *i += 1;
            if tok == "(" {
                let v = parse_or(t, i, attrs);
                *i += 1; // ')'
                v
            } else {
                attrs.contains(&tok)
            }
        }
        let spaced = text.replace('(', " ( ").replace(')', " ) ");
        let toks: Vec<&str> = spaced.split_whitespace().collect();
        parse_or(&toks, &mut 0, attrs)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn normalised_policies_are_binary_fixed_points_with_the_same_meaning(
        text in policy_text(),
        attrs in prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "d", "e"]), 0..5),
    ) {
        let p = Policy::parse(&text).unwrap();
        let canonical = p.canonical();
        prop_assert_eq!(Policy::parse(&canonical).unwrap(), p.clone());
        prop_assert_eq!(p.is_satisfied_by(&attrs), eval(&text, &attrs));
        // Binary: every gate in the canonical text joins exactly two operands.
        prop_assert_eq!(canonical.matches('(').count(), canonical.matches(" and ").count() + canonical.matches(" or ").count());
    }

    #[test]
    fn batch_capsule_verification_equals_all_single_checks(
        n in 1usize..12,
        corrupt in prop::collection::vec(any::<bool>(), 12),
        seed in any::<[u8; 32]>(),
    ) {
        let mut r = rng(n as u64);
        let ca = ca(&mut r);
        let owner = member(&ca, &mut r, "hospital-a", Role::Hospital, 1, &["role:hospital"]);
        let mut capsules: Vec<Capsule> = (0..n as u64)
            .map(|i| signcrypt(&mut r, &owner.signer, &owner.dsk.public(), header("hospital-a", "d", i), b"m").unwrap().capsule)
            .collect();
        for (c, bad) in capsules.iter_mut().zip(&corrupt) {
            if *bad {
                c.sigma += blstrs::Scalar::from(1u64);
            }
        }
        let expected: Vec<usize> = (0..n).filter(|&i| !capsules[i].is_valid()).collect();
        let got = CpuBackend.verify_capsules(&capsules, seed);
        if expected.is_empty() {
            prop_assert_eq!(got, Ok(()));
        } else {
            prop_assert_eq!(got, Err(expected));
        }
    }

    #[test]
    fn signcryption_round_trips_any_message(msg in prop::collection::vec(any::<u8>(), 0..2048), seed in any::<u64>()) {
        let mut r = rng(seed);
        let ca = ca(&mut r);
        let owner = member(&ca, &mut r, "hospital-a", Role::Hospital, 1, &["role:hospital"]);
        let rec = signcrypt(&mut r, &owner.signer, &owner.dsk.public(), header("hospital-a", "d", 0), &msg).unwrap();
        prop_assert_eq!(rec.owner_decrypt(&owner.dsk, &owner.signer.public()).unwrap(), msg);
    }
}
