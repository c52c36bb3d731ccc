//! The demo flow end to end: the authorised requester gets exactly the uploaded records,
//! the unauthorised one is refused.

use dualchain_node::demo::{run, DemoConfig};

#[test]
fn demo_shares_records_with_the_authorised_requester_only() {
    let mut out = Vec::new();
    let params_dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("demo-params");
    let report = run(&DemoConfig { records: 12, seed: Some(7), params_dir }, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(report.records_uploaded, 12);
    assert_eq!(report.records_reencrypted, 12);
    assert!(report.records_match);
    assert_eq!(report.steps.len(), 13);
    // research-2 is refused three times: no policy proof exists, the CP-ABE index stays
    // closed, and records re-encrypted for research-1 do not open with its key.
    assert_eq!(report.denials.len(), 3, "{:?}", report.denials);
    assert!(report.denials.iter().all(|(who, _)| who == "research-2"));
    assert!(report.denials.iter().all(|(_, why)| !why.is_empty()));
    // One supply proof and research-1's policy proof were made and verified.
    let names: Vec<&str> = report.proofs.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["supply", "policy (research-1)"]);
    assert!(text.contains("research-2  DENIED"), "{text}");
    assert!(text.contains("12/12 records decrypted"), "{text}");
}

#[test]
fn demo_rejects_an_empty_dataset() {
    let cfg = DemoConfig { records: 0, seed: Some(1), ..DemoConfig::default() };
    assert!(run(&cfg, &mut Vec::new()).is_err());
}
