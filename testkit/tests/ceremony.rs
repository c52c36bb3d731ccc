//! Where a consortium's Groth16 parameters come from, as genesis records it and a node
//! checks it: a test consortium says so in `consortium.toml`, in exact words; a consortium
//! from a ceremony pins the transcripts, and a node verifies them before using the
//! parameters (once per machine).

use std::path::{Path, PathBuf};

use dualchain_node::config::ConsortiumFile;
use dualchain_node::genesis::ceremony::{self, check_provenance, Provenance, TEST_CONSORTIUM};
use dualchain_node::genesis::{self, InitOptions};
use dualchain_prover::shapes::Shape;
use dualchain_prover::supply::SupplyShape;

fn tmp(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}-{}", std::process::id(), rand::random::<u32>()))
}

fn init_options(out: &Path, params_cache: &Path, seed: Option<u64>, ceremony: Option<PathBuf>) -> InitOptions {
    InitOptions {
        nodes: 4,
        out: out.to_path_buf(),
        name: "ceremony test".into(),
        hosts: vec!["127.0.0.1".into()],
        quic_port: 0,
        api_port: 0,
        members: vec![],
        supply_records: vec![64],
        anonymous: false,
        params_cache: Some(params_cache.to_path_buf()),
        preset: "loopback".into(),
        seed,
        ceremony,
        insecure_http: false,
    }
}

fn rewrite(path: &Path, edit: impl FnOnce(&mut ConsortiumFile)) -> ConsortiumFile {
    let mut c = ConsortiumFile::load(path).unwrap();
    edit(&mut c);
    std::fs::write(path, toml::to_string_pretty(&c).unwrap()).unwrap();
    ConsortiumFile::load(path).unwrap()
}

#[test]
fn a_test_consortium_says_so_and_a_node_accepts_only_those_words() {
    let out = tmp("test-consortium");
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("params");
    genesis::run(&init_options(&out, &cache, Some(3), None)).unwrap();
    let file = out.join("consortium.toml");
    let c = ConsortiumFile::load(&file).unwrap();
    assert_eq!(c.test_consortium.as_deref(), Some(TEST_CONSORTIUM));
    assert!(c.tau.is_none() && c.params.iter().all(|p| p.transcript.is_none()));
    let (params, data) = (out.join("params"), out.join("node-0/data"));
    assert_eq!(check_provenance(&c, &params, &data).unwrap(), Provenance::Test);

    // Seeded parameters stay apart from the operator's cache.
    let seeded = std::fs::read_dir(cache.join("insecure-seeded")).unwrap();
    assert!(seeded.flatten().any(|e| e.file_name().to_string_lossy().starts_with("policy-")));

    // Other words, or none and no ceremony: refused.
    let c = rewrite(&file, |c| c.test_consortium = Some("trust me".into()));
    let e = format!("{:#}", check_provenance(&c, &params, &data).unwrap_err());
    assert!(e.contains("not the one dualchain writes"), "{e}");
    let c = rewrite(&file, |c| c.test_consortium = None);
    let e = format!("{:#}", check_provenance(&c, &params, &data).unwrap_err());
    assert!(e.contains("names no Groth16 ceremony"), "{e}");

    // A seed cannot be combined with a ceremony.
    let e = genesis::run(&init_options(&tmp("seeded-ceremony"), &cache, Some(3), Some(out.clone()))).unwrap_err();
    assert!(format!("{e:#}").contains("--seed"), "{e:#}");
}

/// Two institutions per phase run the ceremony through the same functions as
/// `dualchain ceremony`; `init --ceremony` takes its parameters; a node verifies them once
/// and refuses tampered files.
#[test]
fn a_consortium_from_a_ceremony_is_verified_by_its_nodes_slow() {
    let dir = tmp("ceremony");
    let shapes = [Shape::Policy, Shape::Supply(SupplyShape::Records64)];
    ceremony::new(&dir, &shapes).unwrap();
    let d1 = ceremony::tau(&dir, "hospital-a").unwrap();
    ceremony::tau(&dir, "research-1").unwrap();
    assert!(ceremony::tau(&dir, "hospital-a").is_err(), "a second contribution under one name");
    ceremony::start(&dir).unwrap();
    assert!(ceremony::tau(&dir, "late").is_err(), "phase 1 is closed once phase 2 starts");
    ceremony::delta(&dir, "hospital-a").unwrap();
    ceremony::delta(&dir, "cpc-1").unwrap();
    let v = ceremony::verify(&dir).unwrap();
    assert_eq!(v.tau[0], ("hospital-a".to_string(), d1));
    assert_eq!(v.shapes.len(), 2);
    assert!(v.shapes.iter().all(|(_, steps)| steps.len() == 2));

    let out = tmp("ceremony-consortium");
    let cache = tmp("unused-cache");
    let report = genesis::run(&init_options(&out, &cache, None, Some(dir.clone()))).unwrap();
    assert!(report.params_generated.is_empty());
    assert!(!cache.exists(), "a ceremony's consortium takes nothing from the cache");
    let c = ConsortiumFile::load(&out.join("consortium.toml")).unwrap();
    assert!(c.test_consortium.is_none() && c.tau.is_some());
    let (params, data) = (out.join("params"), out.join("node-0/data"));
    // The coordinator (init, in this process) verified it; a node in a process of its own
    // verifies again.
    ceremony::forget_verified();
    assert_eq!(check_provenance(&c, &params, &data).unwrap(), Provenance::Ceremony { verified_now: true });
    assert_eq!(check_provenance(&c, &params, &data).unwrap(), Provenance::Ceremony { verified_now: false });
    // Another node of this process shares the verdict (the bytes it names were verified).
    let other = check_provenance(&c, &params, &out.join("node-2/data")).unwrap();
    assert_eq!(other, Provenance::Ceremony { verified_now: false });
    // And loads them at the pins consortium.toml names (what a starting node does next).
    dualchain_node::genesis::params::load_params(&c, &params).expect("the ceremony's parameters load at their pins");

    // A transcript changed after genesis no longer matches its pin.
    let t = params.join("policy.phase2");
    let mut bytes = std::fs::read(&t).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&t, &bytes).unwrap();
    let e = format!("{:#}", check_provenance(&c, &params, &out.join("node-1/data")).unwrap_err());
    assert!(e.contains("does not match its pin"), "{e}");
}
