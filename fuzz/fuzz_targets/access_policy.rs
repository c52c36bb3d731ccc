//! `AccessPolicy::parse` and `compile` on any text (an owner's `owner.policy`, a
//! registration's statement): never panic; an accepted statement's canonical text (what
//! the chain records) parses back to the same statement and is a fixed point, and both of
//! its forms compile from the canonical text to the same result.
#![no_main]

use dualchain_ledger::policy::AccessPolicy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(statement) = AccessPolicy::parse(text) else { return };
    let canonical = statement.to_string();
    let again = AccessPolicy::parse(&canonical)
        .unwrap_or_else(|e| panic!("the canonical text of an accepted statement is refused: {e}\n{canonical}"));
    assert_eq!(again, statement, "canonical text parses to another statement");
    assert_eq!(again.to_string(), canonical, "canonical text is not a fixed point");
    match (statement.compile(), again.compile()) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "the canonical text compiles to other forms");
            let leaves = a.abe.leaves();
            assert!(a.abe.is_satisfied_by(&leaves), "the CP-ABE form is not satisfied by all of its attributes");
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "the canonical text is refused for another reason"),
        (a, b) => panic!("the statement and its canonical text compile differently: {a:?} / {b:?}"),
    }
});
