//! The `crypto` suite: the access-control cryptography's hot paths, each against the
//! straightforward path it replaces.
//!
//! - `cbsre::verify_capsules`: batch (one MSM over a random linear combination) vs one
//!   capsule check at a time.
//! - `cbsre::reencrypt`: the CPU backend's parallel batch vs a sequential loop.
//! - `cbsre::signcrypt`, `cbsre::requester_decrypt`: per-record costs (no baseline).
//! - `sign::verify`: ed25519 batch verification vs single verification.
//! - `ibe::issue_key`: blinded issuing through a KGC and n CPCs (all checks included).
//! - `abe::encrypt` / `abe::decrypt` by policy size.

use std::time::Duration;

use anyhow::Result;
use dualchain_crypto::abe::ac17::Ac17;
use dualchain_crypto::abe::{AbeScheme, Policy};
use dualchain_crypto::cbsre::{
    signcrypt, Capsule, DatasetId, DelegatingSecretKey, ReKeyToken, RecordHeader, TokenScope,
};
use dualchain_crypto::cert::{
    AttributeSet, CertificateAuthority, CertificateFields, NoRevocations, Role, TrustContext,
};
use dualchain_crypto::ibe::{IbePublicParams, KeyRequest};
use dualchain_crypto::reencrypt::{reencrypt_records, CpuBackend, ReencryptBackend};
use dualchain_crypto::sign::{verify_batch, SignedItem, SigningKeypair};
use dualchain_progress::Progress;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::measure::{ops_per_second, Record};

const NOW: u64 = 1_790_000_000;

pub fn run(quick: bool) -> Result<Vec<Record>> {
    let t = if quick { Duration::from_millis(300) } else { Duration::from_secs(2) };
    let sizes: &[usize] = if quick { &[64, 1024] } else { &[64, 1024, 16384] };
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut out = Vec::new();
    // Points: signcrypt, one per size, decrypt, Ed25519, IBE, three ABE policy sizes.
    let progress = Progress::new("bench crypto", (sizes.len() + 7) as u64);
    progress.set_message("signcrypting the records");

    let owner_signer = SigningKeypair::generate(&mut rng);
    let owner = DelegatingSecretKey::generate(&mut rng);
    let requester = DelegatingSecretKey::generate(&mut rng);
    let dataset = DatasetId::derive("hospital-a", "bench");
    let max = *sizes.last().expect("sizes");
    let record = br#"{"resourceType":"Observation","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"valueQuantity":{"value":72,"unit":"/min"}}"#;
    let header = |i: usize| RecordHeader {
        owner: "hospital-a".into(),
        dataset,
        record_index: i as u64,
        created_at: NOW,
        content_type: "fhir-r4:observation".into(),
    };
    let records: Vec<_> = (0..max)
        .map(|i| signcrypt(&mut rng, &owner_signer, &owner.public(), header(i), record))
        .collect::<Result<_, _>>()?;
    let token = ReKeyToken::issue(
        &mut rng,
        &owner_signer,
        &owner,
        &requester.public(),
        TokenScope {
            owner: "hospital-a",
            requester: "research-1",
            dataset,
            grant_id: [0; 32],
            expiry: NOW + 3600,
            records: None,
        },
    )?;

    let sc = ops_per_second(t, 1, || {
        let _ = signcrypt(&mut rng, &owner_signer, &owner.public(), header(0), record);
    });
    out.push(Record::throughput("cbsre::signcrypt", format!("bytes={}", record.len()), sc, None));
    progress.inc(1);

    for &n in sizes {
        progress.set_message(format!("capsules n={n}"));
        let capsules: Vec<Capsule> = records[..n].iter().map(|r| r.capsule).collect();
        let single = ops_per_second(t, n, || {
            assert!(capsules.iter().all(Capsule::is_valid));
        });
        let batch = ops_per_second(t, n, || {
            assert!(CpuBackend.verify_capsules(&capsules, [7; 32]).is_ok());
        });
        out.push(Record::throughput("cbsre::verify_capsules", format!("n={n},backend=cpu"), batch, Some(single)));

        let sequential = ops_per_second(t, n, || {
            for c in &capsules {
                let _ = CpuBackend.reencrypt(&token.rk, std::slice::from_ref(c));
            }
        });
        let parallel = ops_per_second(t, n, || {
            let _ = CpuBackend.reencrypt(&token.rk, &capsules);
        });
        out.push(Record::throughput("cbsre::reencrypt", format!("n={n},backend=cpu"), parallel, Some(sequential)));

        let pipeline = ops_per_second(t, n, || {
            let _ = reencrypt_records(
                &CpuBackend,
                &token,
                &owner_signer.public(),
                NOW,
                &records[..n],
                &mut rand::thread_rng(),
            );
        });
        out.push(Record::throughput("cbsre::reencrypt_records", format!("n={n},backend=cpu"), pipeline, None));
        progress.inc(1);
    }

    let re = reencrypt_records(&CpuBackend, &token, &owner_signer.public(), NOW, &records[..1], &mut rng)?;
    let dec = ops_per_second(t, 1, || {
        let _ = re[0].decrypt(&requester, &owner_signer.public());
    });
    out.push(Record::throughput("cbsre::requester_decrypt", format!("bytes={}", record.len()), dec, None));
    progress.inc(1);
    progress.set_message("ed25519");

    // Ed25519: batch vs single verification.
    let n_sig = if quick { 256 } else { 4096 };
    let keys: Vec<SigningKeypair> = (0..n_sig).map(|_| SigningKeypair::generate(&mut rng)).collect();
    let pubs: Vec<_> = keys.iter().map(SigningKeypair::public).collect();
    let msgs: Vec<Vec<u8>> = (0..n_sig).map(|i| format!("tx-{i}").into_bytes()).collect();
    let sigs: Vec<[u8; 64]> = keys.iter().zip(&msgs).map(|(k, m)| k.sign("tx", m)).collect();
    let items: Vec<SignedItem<'_>> =
        (0..n_sig).map(|i| SignedItem { key: &pubs[i], use_: "tx", msg: &msgs[i], sig: &sigs[i] }).collect();
    let single = ops_per_second(t, n_sig, || {
        assert!(items.iter().all(|i| i.key.verify(i.use_, i.msg, i.sig)));
    });
    let batch = ops_per_second(t, n_sig, || {
        assert!(verify_batch(&items).is_ok());
    });
    out.push(Record::throughput("sign::verify", format!("n={n_sig},mode=batch"), batch, Some(single)));
    progress.inc(1);
    progress.set_message("ibe");

    // ESKI-IBE key issuing through a KGC and 3 CPCs.
    let ca = CertificateAuthority::generate("consortium-ca", &mut rng)?;
    let member_signer = SigningKeypair::generate(&mut rng);
    let attrs = AttributeSet::new(["role:research"])?;
    let cert = ca.issue(CertificateFields {
        serial: 1,
        subject: "research-1".into(),
        role: Role::ResearchInstitute,
        signing_key: member_signer.public(),
        delegating_key: requester.public(),
        attribute_commitment: attrs.commit(&[0; 32]),
        not_before: NOW - 1,
        not_after: NOW + 3600,
    })?;
    let (params, secrets) = IbePublicParams::setup(&mut rng, &["kgc", "cpc-1", "cpc-2", "cpc-3"])?;
    let issue = ops_per_second(t, 1, || {
        let (req, state) = KeyRequest::new(&mut rng, "research-1", &member_signer).expect("request");
        let mut shares = Vec::new();
        for s in &secrets {
            let share = s
                .issue_share(&params, &req, shares.last(), &cert, &TrustContext::new(ca.public(), NOW, &NoRevocations))
                .expect("share");
            shares.push(share);
        }
        state.finish(&params, &req, &shares).expect("key");
    });
    out.push(Record::throughput("ibe::issue_key", "authorities=4".into(), issue, None));
    progress.inc(1);

    // CP-ABE by policy size.
    let (pk, msk) = Ac17::setup()?;
    for leaves in [2usize, 4, 8] {
        progress.set_message(format!("abe leaves={}", leaves + 1));
        let names: Vec<String> = (0..leaves).map(|i| format!("dept:d{i}")).collect();
        let policy = Policy::parse(&format!("role:research and ({})", names.join(" or ")))?;
        let key = Ac17::keygen(&msk, &AttributeSet::new(["role:research".to_owned(), names[leaves - 1].clone()])?)?;
        let ct = Ac17::encrypt(&pk, &policy, b"index pointer")?;
        let enc = ops_per_second(t, 1, || {
            let _ = Ac17::encrypt(&pk, &policy, b"index pointer");
        });
        let dec = ops_per_second(t, 1, || {
            let _ = Ac17::decrypt(&key, &ct);
        });
        out.push(Record::throughput("abe::encrypt", format!("leaves={}", leaves + 1), enc, None));
        out.push(Record::throughput("abe::decrypt", format!("leaves={}", leaves + 1), dec, None));
        progress.inc(1);
    }
    progress.finish();
    Ok(out)
}
