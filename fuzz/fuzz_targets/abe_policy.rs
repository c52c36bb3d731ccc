//! `Policy::parse` on any text: never panics, and an accepted policy's canonical text parses
//! back to the same policy (ciphertexts carry the canonical text, and their decoder parses
//! it), is a fixed point, and is satisfied by all of its own attributes (AND/OR is
//! monotone).
#![no_main]

use dualchain_crypto::abe::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(policy) = Policy::parse(text) else { return };
    let canonical = policy.canonical();
    let again = Policy::parse(&canonical)
        .unwrap_or_else(|e| panic!("the canonical text of an accepted policy is refused: {e}\n{canonical}"));
    assert_eq!(again, policy, "canonical text parses to another policy");
    assert_eq!(again.canonical(), canonical, "canonical text is not a fixed point");
    let leaves = policy.leaves();
    assert!(policy.is_satisfied_by(&leaves), "a policy is not satisfied by all of its attributes");
    assert!(!policy.is_satisfied_by(&[]), "a policy is satisfied by no attributes");
});
