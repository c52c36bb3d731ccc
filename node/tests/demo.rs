//! The demo flow end to end: the authorised requester gets exactly the uploaded records,
//! the unauthorised one is refused.

use dualchain_node::demo::{run, DemoConfig};

#[test]
fn demo_shares_records_with_the_authorised_requester_only() {
    let mut out = Vec::new();
    let report = run(&DemoConfig { records: 12, seed: Some(7) }, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(report.records_uploaded, 12);
    assert_eq!(report.records_reencrypted, 12);
    assert!(report.records_match);
    assert_eq!(report.steps.len(), 9);
    assert!(report.denials.iter().all(|(who, _)| who == "research-2"));
    assert!(report.denials[0].1.contains("do not satisfy"), "{:?}", report.denials);
    assert!(text.contains("research-2  DENIED"), "{text}");
    assert!(text.contains("12/12 records decrypted"), "{text}");
}

#[test]
fn demo_rejects_an_empty_dataset() {
    assert!(run(&DemoConfig { records: 0, seed: Some(1) }, &mut Vec::new()).is_err());
}
