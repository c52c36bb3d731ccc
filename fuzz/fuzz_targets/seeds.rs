//! Not a fuzz target: writes the seed corpora, `corpus/<target>/<name>`, from the crates'
//! own encoders and the fixtures of `dualchain_fuzz` (fixed RNG seeds, so regenerating gives
//! the same bytes, except CP-ABE's, whose randomness rabe draws itself), then exits.
//!
//! `cargo +nightly fuzz run --sanitizer none seeds` (from the repository root), or
//! `SEEDS_OUT=<dir>` to write elsewhere. It is built as a fuzz target so that it shares the
//! targets' build.
#![no_main]
// The seeds are written in `init`, which exits: the fuzz function after it never runs.
#![allow(unreachable_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dualchain_consensus::message::Batch;
use dualchain_consensus::replica::archive_bytes;
use dualchain_crypto::encoding::{encode_list, Writer};
use dualchain_crypto::Codec;
use dualchain_fuzz::{abe, consensus, crypto_world, escrow, join, ledger, oblivious, storage};
use dualchain_ledger::block::{Block, ChainName};
use dualchain_ledger::reason::{Denial, ProofFault};
use dualchain_ledger::state::{
    AccessEvent, AccessRecord, BreakGlassRecord, BreakGlassReview, DatasetRecord, DemandRecord, DenialRecord,
    GrantRecord, GrantRef, GrantStatus, MemberRecord, RegistryRecord, RootRecord,
};
use dualchain_ledger::tx::FrBytes;
use dualchain_prover::shapes::Shape;
use libfuzzer_sys::fuzz_target;

struct Out {
    root: PathBuf,
    bytes: usize,
}

impl Out {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).expect("create corpus directory");
        std::fs::write(dir.join(name), bytes).expect("write seed");
        self.bytes += bytes.len();
    }
}

fn with(which: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![which];
    v.extend_from_slice(body);
    v
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("fixture serialises")
}

fn crypto(out: &mut Out) {
    let w = crypto_world();
    for (name, b) in [
        ("ca_public_key", w.ca.public().to_bytes()),
        ("certificate", w.owner.cert.to_bytes()),
        ("signing_key", w.owner.signer.to_bytes()),
        ("ibe_public_params", w.ibe_params.to_bytes()),
        ("ibe_key_request", w.request.to_bytes()),
        ("ibe_key_share", w.share.to_bytes()),
        ("ibe_private_key", w.ibe_key.to_bytes()),
        ("ibe_ciphertext", w.ibe_ct.to_bytes()),
        ("ibe_authority_secret", w.authority.to_bytes()),
    ] {
        out.put("crypto_keys", name, &b);
    }
    for (name, b) in [
        ("delegating_secret", w.owner.dsk.to_bytes()),
        ("delegating_public", w.owner.dsk.public().to_bytes()),
        ("capsule", w.records[0].capsule.to_bytes()),
        ("signcrypted", w.records[0].to_bytes()),
        ("rekey_token", w.token.to_bytes()),
        ("reencrypted", w.reencrypted.to_bytes()),
    ] {
        out.put("capsule", name, &b);
    }
    let a = abe::abe_world();
    for (name, b) in [
        ("public_key", a.pk.to_bytes()),
        ("master_key", a.msk.to_bytes()),
        ("user_key", a.key.to_bytes()),
        ("ciphertext", a.ct.to_bytes()),
    ] {
        out.put("abe_ciphertext", name, &b);
    }
    for (i, text) in [
        abe::POLICY,
        "a",
        "\"role:hospital\"",
        "(a or b) and (c or d) and e",
        "a OR b OR c OR d OR e OR f OR g OR h",
        "((((a and b)))) or (c and (d or (e and f)))",
    ]
    .iter()
    .enumerate()
    {
        out.put("abe_policy", &format!("policy_{i}"), text.as_bytes());
    }
    for (i, text) in [
        dualchain_node::config::DEFAULT_POLICY,
        "role:research and (dept:icu or dept:cardiology) and clearance>=3 and training_until>=20800",
        "clearance>=2 and clearance<=5",
        "(role:research and dept:icu) or (country:de and clearance:7)",
        "role:research and dept:icu or dept:cardiology",
        "(dept:a or dept:b) and (country:x or country:y) and (role:p or role:q)",
        // `and` inside `or` left to precedence: one level typed, two written out.
        "role:r3 or dept:d3 and (role:r2 or dept:d2 and (role:r1 or dept:d1 and (role:r0 or dept:d0 and (role:r))))",
    ]
    .iter()
    .enumerate()
    {
        out.put("access_policy", &format!("statement_{i}"), text.as_bytes());
    }
    // Reader: list frames, canonical points and scalars, and scripts.
    let items: Vec<&[u8]> = vec![b"alpha", b"", &[0xff; 16]];
    out.put("crypto_encoding", "list_small", &with(0, &encode_list(&items)));
    out.put("crypto_encoding", "list_huge", &with(1, &encode_list(&items)));
    let mut points = Writer::default();
    points.g2(&w.ibe_params.master());
    out.put("crypto_encoding", "g2", &with(2, &points.into_bytes()));
    out.put("crypto_encoding", "capsule_points", &with(2, &w.records[0].capsule.to_bytes()[2..]));
    let mut script = Writer::default();
    script.fixed(&[0, 7, 13, 15, 12, 17]); // u8, bytes, g1, scalar, ident, list
    script.u8(1);
    script.bytes(b"payload");
    script.fixed(&w.records[0].capsule.to_bytes()[2..50]);
    script.fixed(&[0x11; 32]);
    script.str("hospital-a");
    script.fixed(&encode_list(&items));
    out.put("crypto_encoding", "script", &with(3 | (6 << 2), &script.into_bytes()));
}

fn escrow_seeds(out: &mut Out) {
    let w = escrow::escrow_world();
    for (name, b) in [
        ("dealing", w.dealings[0].to_bytes()),
        ("dkg_share", w.shares[1].to_bytes()),
        ("key", w.key.to_bytes()),
        ("authority_secret", w.secrets[2].to_bytes()),
        ("sealed", w.sealed.to_bytes()),
        ("decryption_share", w.decryption[1].to_bytes()),
    ] {
        out.put("escrow", name, &b);
    }
}

fn oblivious_seeds(out: &mut Out) {
    let w = oblivious::oblivious_world();
    out.put("oblivious", "key_config", &with(0, &w.gateway.config().to_bytes()));
    out.put("oblivious", "request", &with(1, &w.request));
    out.put("oblivious", "response", &with(2, &w.response));
}

fn consensus_seeds(out: &mut Out) {
    for (name, m) in consensus::messages() {
        out.put("consensus_message", name, &m.to_bytes());
    }
    let entry = consensus::committed_entry();
    out.put("consensus_records", "checkpoint_proof", &with(0, &consensus::checkpoint_proof().to_bytes()));
    out.put("consensus_records", "committed_entry", &with(1, &entry.to_bytes()));
    out.put("consensus_records", "archive", &with(2, &archive_bytes(&[4; 32], 1_790_000_000_000, &entry)));
    out.put("consensus_records", "batch", &with(3, consensus::batch().encoded()));
    out.put("consensus_records", "null_batch", &with(3, Batch::null().encoded()));
    let (change, epochs) = consensus::reconfiguration();
    out.put("consensus_records", "reconfiguration", &with(4, &change.to_bytes()));
    out.put("consensus_records", "membership", &with(5, &epochs.to_bytes()));
}

fn ledger_seeds(out: &mut Out) {
    for (name, tx) in ledger::txs() {
        out.put("signed_tx", name, &tx.to_bytes());
    }
    let stored = ledger::stored_block(ChainName::Data, 1, [2; 32]);
    let kept = ledger::kept_batch();
    out.put("block", "block", &with(0, &join(&[&stored.header, &stored.body, &stored.notes, &kept])));
    let b = Block::open(&stored, |_, _| Ok(ledger::batch_payloads())).expect("fixture block opens");
    let proof = b.inclusion_proof(&stored, 1).expect("fixture proof");
    out.put("block", "inclusion_proof", &with(1, &json(&proof)));

    let w = crypto_world();
    let one = FrBytes([1; 32]);
    let member = MemberRecord {
        id: "hospital-a".into(),
        role: "hospital".into(),
        serial: 1,
        certificate: w.owner.cert.to_bytes(),
        signing_key: [7; 32],
        not_after: 1_800_000_000,
        revoked: None,
        credential: Some(0),
        credential_revoked: None,
        registered_ms: 1_790_000_000_000,
    };
    let dataset = DatasetRecord {
        id: [4; 32],
        owner: "hospital-a".into(),
        commitment: one,
        capacity: 64,
        policy: abe::POLICY.into(),
        abe_index: vec![0x33, 1],
        zk_policy_hash: one,
        disclosure: Default::default(),
        consent: one,
        consent_version: 2,
        consent_ms: 1_790_000_000_000,
        erased: None,
        registered_ms: 1_790_000_000_000,
        tx: [6; 32],
    };
    let demand = DemandRecord {
        id: [6; 32],
        dataset: [4; 32],
        requester: "research-1".into(),
        requirement: ledger::requirement(),
        requirement_hash: one,
        purpose: Default::default(),
        use_index: 0,
        published_ms: 1_790_000_000_000,
        supplied_by: Some([8; 32]),
    };
    let grant = GrantRecord {
        id: [9; 32],
        dataset: [4; 32],
        demand: [6; 32],
        requester: "research-1".into(),
        owner: "hospital-a".into(),
        cpc: "cpc-1".into(),
        granted_ms: 1_790_000_000_000,
        expires_ms: 1_790_003_600_000,
        status: GrantStatus::Revoked { reason: "done".into(), at_ms: 1_790_000_100_000 },
        sealed_token: Some(vec![1, 2, 3]),
        sealed_pseudonyms: Some(vec![4, 5]),
        receipts: 1,
        break_glass: Some([12; 32]),
        sealed_pointer: Some(vec![6, 7]),
    };
    let break_glass = BreakGlassRecord {
        id: [12; 32],
        requester: "hospital-b".into(),
        owner: "hospital-a".into(),
        purpose: "ETREAT".into(),
        scope_digest: [13; 32],
        requested_ms: 1_790_000_000_000,
        until_ms: 1_790_014_400_000,
        grants: vec![GrantRef([9; 32])],
        review: Some(BreakGlassReview {
            justified: false,
            note: "no emergency on record".into(),
            revoke_credential: true,
            at_ms: 1_790_000_500_000,
            tx: [14; 32],
            credential: Some(dualchain_ledger::tx::FrBytes([0x21; 32])),
        }),
        tx: [15; 32],
    };
    let denial = DenialRecord {
        request: [8; 32],
        demand: [6; 32],
        requester: "research-1".into(),
        denial: Denial::PolicyProof { proof: ProofFault::Invalid },
        at_ms: 1_790_000_000_000,
    };
    let access = AccessRecord {
        event: AccessEvent::Fetched,
        dataset: [4; 32],
        grant: [9; 32],
        requester: "research-1".into(),
        owner: "hospital-a".into(),
        cpc: "cpc-1".into(),
        records: 64,
        results_digest: [10; 32],
        at_ms: 1_790_000_000_000,
        receipt_tx: [11; 32],
    };
    let e = escrow::escrow_world();
    let pseudonym = dualchain_ledger::state::PseudonymRecord {
        pseudonym: format!("anon:{}", "a".repeat(52)),
        demand: [6; 32],
        root: one,
        nullifier: FrBytes([15; 32]),
        sealed_identity: e.sealed.to_bytes(),
        delegating_key: w.requester.dsk.public().to_bytes(),
        at_ms: 1_790_000_000_000,
        granted: Some([18; 32]),
    };
    let dealing = dualchain_ledger::state::DealingRecord {
        dealer: 1,
        member: "kgc".into(),
        dealing: e.dealings[0].to_bytes(),
        sealed_shares: vec![w.ibe_ct.to_bytes(); 3],
        at_ms: 1_790_000_000_000,
    };
    let complaint = dualchain_ledger::state::ComplaintRecord {
        dealer: 2,
        recipient: 1,
        at_ms: 1_790_000_000_000,
        revealed: Some(e.shares[3].to_bytes()),
    };
    let escrow_key = dualchain_ledger::state::EscrowKeyRecord {
        key: e.key.to_bytes(),
        qualified: vec![1, 2, 3],
        at_ms: 1_790_000_000_000,
    };
    let audit_case = dualchain_ledger::state::AuditCaseRecord {
        id: [16; 32],
        pseudonym: pseudonym.pseudonym.clone(),
        case: "complaint 7".into(),
        opened_ms: 1_790_000_000_000,
        approvals: vec![dualchain_ledger::state::Approval { by: "kgc".into(), at_ms: 1_790_000_000_000, tx: [17; 32] }],
        approved_ms: Some(1_790_000_000_000),
        shares: vec![(1, e.decryption[0].to_bytes().iter().map(|b| format!("{b:02x}")).collect())],
        opening: Some(dualchain_ledger::state::AuditOpening {
            index: (1 << 31) + 2,
            member: Some("research-1".into()),
            at_ms: 1_790_000_000_000,
        }),
    };
    for (i, (name, bytes)) in [
        ("member", json(&member)),
        ("registry", json(&RegistryRecord { next_leaf: 3, epoch: 1, root: Some(one) })),
        ("root", json(&RootRecord { epoch: 1, superseded_ms: Some(1_790_000_000_000) })),
        ("dataset", json(&dataset)),
        ("demand", json(&demand)),
        ("grant", json(&grant)),
        ("denial", json(&denial)),
        ("access", json(&access)),
        ("break_glass", json(&break_glass)),
        ("pseudonym", json(&pseudonym)),
        ("escrow_dealing", json(&dealing)),
        ("escrow_complaint", json(&complaint)),
        ("escrow_key", json(&escrow_key)),
        ("audit_case", json(&audit_case)),
    ]
    .into_iter()
    .enumerate()
    {
        out.put("ledger_state", name, &with(i as u8, &bytes));
    }
}

fn storage_seeds(out: &mut Out) {
    let p = storage::populated();
    for (i, (cf, key, value)) in p.records.iter().enumerate() {
        let payload = match value {
            Some(v) => v[5..].to_vec(), // the payload inside its envelope
            None => {
                // A redo intent (deleted once applied): one put in meta.
                let mut w = Writer::default();
                w.u32(1);
                w.fixed(&[1, 12]);
                w.bytes(b"x");
                w.bytes(b"y");
                w.into_bytes()
            }
        };
        let name = format!("{i:02}_{}_{}", cf.name().replace('/', "_"), hex_prefix(key));
        out.put("storage_record", &name, &[&[i as u8, 1][..], &payload].concat());
    }
}

fn hex_prefix(key: &[u8]) -> String {
    key.iter()
        .take(6)
        .map(|b| if b.is_ascii_alphanumeric() { (*b as char).to_string() } else { format!("{b:02x}") })
        .collect()
}

fn params_seed(out: &mut Out) {
    use bellperson::groth16::Parameters;
    use blstrs::{Bls12, G1Affine, G2Affine};
    use group::prime::PrimeCurveAffine;
    let shape = Shape::Policy;
    let circuit = shape.circuit_shape().expect("policy circuit");
    let (g1, g2) = (G1Affine::generator(), G2Affine::generator());
    let params = Parameters::<Bls12> {
        vk: dualchain_ledger::genesis::placeholder_verifying_key(shape.public_inputs()),
        h: Arc::new(vec![g1]),
        l: Arc::new(vec![g1]),
        a: Arc::new(vec![g1]),
        b_g1: Arc::new(vec![g1]),
        b_g2: Arc::new(vec![g2]),
    };
    let mut body = Vec::new();
    params.write(&mut body).expect("write parameters");
    // The file layout of prover/src/params.rs, without its trailing content hash.
    let mut w = Writer::default();
    w.fixed(b"DCGROTH1");
    w.u16_le(1);
    w.u8(shape.name().len() as u8);
    w.fixed(shape.name().as_bytes());
    w.fixed(&circuit.digest);
    for v in [circuit.constraints, circuit.inputs, circuit.aux, body.len()] {
        w.u64_le(v as u64);
    }
    w.fixed(&body);
    out.put("params_file", "policy_small_body", &w.into_bytes());
}

fn api_seeds(out: &mut Out) {
    let patient = serde_json::json!({
        "resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1961-03-01"
    });
    let observation = |id: &str, value: f64| {
        serde_json::json!({
            "resourceType": "Observation", "id": id, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "valueQuantity": {"value": value, "unit": "/min", "code": "/min"},
            "effectiveDateTime": "2026-09-21T10:00:00Z",
            "subject": {"reference": "Patient/p1"},
            "device": {"reference": "Device/monitor-3"}
        })
    };
    let bundle = serde_json::json!({
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:0b9a", "resource": patient},
            {"resource": observation("o1", 72.0)},
            {"resource": observation("o2", 131.5)}
        ]
    });
    out.put("fhir_bundle", "bundle", &json(&bundle));
    out.put("fhir_bundle", "patient", &json(&patient));
    out.put("fhir_bundle", "observation", &json(&observation("o3", 64.0)));
    let demand = serde_json::json!({
        "dataset": hex_id(4), "code": "8867-4", "unit": "/min", "value_min": 40.0, "value_max": 200.5,
        "since": 1_790_000_000u64, "until": 1_790_003_600u64, "threshold": 3,
        "age_band_min": 2, "age_band_max": 18, "sex": "female"
    });
    out.put("api_json", "demand", &with(0, &json(&demand)));
    out.put("api_json", "access", &with(1, &json(&serde_json::json!({"demand": hex_id(6), "duration_s": 3600}))));
    out.put("api_json", "revoke", &with(2, &json(&serde_json::json!({"reason": "study finished"}))));
    let w = crypto_world();
    out.put("api_json", "record_list", &with(3, &encode_list([w.records[0].to_bytes(), w.reencrypted.to_bytes()])));
    out.put("api_json", "timestamp", &with(4, b"2026-11-24T00:00:00Z"));
    out.put("api_json", "date", &with(4, b"1961-03-01"));
    // What a FHIR client sends besides resources (the fhir_search_smart target).
    out.put("fhir_search_smart", "assertion", &with(1, br#"eyJhbGciOiJFUzM4NCIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0.eyJpc3MiOiJlbmdpbmUiLCJzdWIiOiJlbmdpbmUiLCJhdWQiOiJodHRwczovLzEyNy4wLjAuMTo4NzAwL3NtYXJ0L3Rva2VuIiwianRpIjoiMSIsImV4cCI6MTgwMDAwMDEwMH0.c2lnbmF0dXJl"#));
    out.put("fhir_search_smart", "device", &with(3, br#"{"resourceType":"Device","id":"ox-1","identifier":[{"system":"urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680","value":"00:1C:05:FF:FE:12:34:56"}],"device":{"reference":"urn:uuid:d"}}"#));
    out.put("fhir_search_smart", "registration", &with(2, br#"{"client_id":"lab-engine","scope":"system/Observation.write system/Observation.rs","jwks":{"keys":[{"kty":"EC","crv":"P-384","kid":"k1","alg":"ES384","x":"AAAA","y":"AAAA"}]}}"#));
    out.put("fhir_search_smart", "search", &with(0, br#"code=http://loinc.org|8867-4&date=ge2026-12-02&_count=2&_offset=1"#));
    out.put("fhir_search_smart", "search_dates", &with(0, br#"subject=p1&date=2026-12-03T10:00%2B01:00&_sort=date"#));
}

/// A phase-1 accumulator of domain 2^2 after two contributions, its transcript, and a
/// phase-2 transcript of two steps (points valid, not a real contribution).
fn ceremony_seeds(out: &mut Out) {
    use dualchain_prover::ceremony::{phase1, phase2, Knowledge};
    use group::{prime::PrimeCurveAffine, Curve};
    use rand::SeedableRng;
    let rng = &mut rand_chacha::ChaCha20Rng::seed_from_u64(18);
    let mut acc = phase1::Accumulator::new(2).expect("domain");
    let mut t1 = phase1::Transcript::new(2);
    for who in ["hospital-a", "research-1"] {
        t1.contribute(&mut acc, who, rng).expect("contribution");
    }
    out.put("ceremony_files", "accumulator", &with(0, &acc.to_bytes()));
    out.put("ceremony_files", "phase1_transcript", &with(1, &t1.to_bytes()));
    let (g1, g2) = (blstrs::G1Affine::generator(), blstrs::G2Affine::generator());
    let twice = (blstrs::G1Projective::from(g1) + g1).to_affine();
    let step = |who: &str| phase2::Step {
        who: who.into(),
        delta: Knowledge { s: g1, s_x: twice, r_x: g2 },
        delta_after: twice,
    };
    let t2 = phase2::Transcript { shape: "policy".into(), circuit_digest: [7; 32], steps: vec![step("kgc"), step("cpc-1")] };
    out.put("ceremony_files", "phase2_transcript", &with(2, &t2.to_bytes()));
}

/// Two institutions' real contributions (the KGC's and a CPC's extending its IBE link)
/// and an issued file, as `dualchain keygen` and `assemble` write them.
fn genesis_seeds(out: &mut Out) {
    use dualchain_node::genesis::institution::{keygen, IssuedFile, KeygenOptions};
    let dir = std::env::temp_dir().join(format!("dualchain-seeds-genesis-{}", std::process::id()));
    let opts = |id: &str, role: &str, after: Option<PathBuf>| KeygenOptions {
        consortium: "seed consortium".into(),
        id: id.into(),
        role: role.into(),
        attributes: vec!["dept:icu".into()],
        host: "127.0.0.1".into(),
        quic_port: 7700,
        api_port: 8700,
        ibe_after: after,
        dir: dir.join(id),
    };
    let kgc = keygen(&opts("kgc", "kgc", None)).expect("keygen");
    let cpc = keygen(&opts("cpc-1", "cpc", Some(kgc.clone()))).expect("keygen");
    let with = |b: u8, text: &str| [&[b][..], text.as_bytes()].concat();
    out.put("genesis_contribution", "kgc", &with(0, &std::fs::read_to_string(&kgc).expect("read")));
    out.put("genesis_contribution", "cpc", &with(0, &std::fs::read_to_string(&cpc).expect("read")));
    let issued = IssuedFile {
        id: "kgc".into(),
        node: Some(0),
        certificate: hex_id(1),
        api_tls_cert: Some(hex_id(2)),
        validator: None,
    };
    out.put("genesis_contribution", "issued", &with(1, &toml::to_string(&issued).expect("toml")));
    // A member issued after genesis, with the validator slot of its node.
    let slot = dualchain_node::config::ValidatorEntry {
        id: 4,
        quic: "127.0.0.1:7704".parse().expect("address"),
        api: "https://127.0.0.1:8704".into(),
        signing_key: hex_id(3),
        tls_cert: hex_id(4),
    };
    let later = IssuedFile { id: "clinic-n".into(), node: Some(4), validator: Some(slot), ..issued };
    out.put("genesis_contribution", "issued-later", &with(1, &toml::to_string(&later).expect("toml")));
    let _ = std::fs::remove_dir_all(&dir);
}

fn hex_id(b: u8) -> String {
    format!("{b:02x}").repeat(32)
}

fn write_all(root: &Path) -> usize {
    let mut out = Out { root: root.to_path_buf(), bytes: 0 };
    crypto(&mut out);
    escrow_seeds(&mut out);
    oblivious_seeds(&mut out);
    genesis_seeds(&mut out);
    consensus_seeds(&mut out);
    ledger_seeds(&mut out);
    storage_seeds(&mut out);
    params_seed(&mut out);
    api_seeds(&mut out);
    ceremony_seeds(&mut out);
    out.bytes
}

fuzz_target!(
    init: {
        std::env::set_var("DUALCHAIN_PROGRESS", "off");
        let root = std::env::var_os("SEEDS_OUT").map(PathBuf::from).unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
        });
        let bytes = write_all(&root);
        eprintln!("seeds: wrote {bytes} bytes under {}", root.display());
        std::process::exit(0);
    },
    |_data: &[u8]| {}
);
