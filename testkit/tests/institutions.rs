//! Genesis across institutions, in process: each institution's keys made in its own
//! directory (`keygen`), the consortium assembled from public contributions, checked and
//! joined by each institution, and the members' ESKI-IBE and CP-ABE keys issued online by
//! the authorities' nodes; then the sharing flow runs on those keys.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use dualchain_node::member::MemberFile;
use dualchain_testkit::consortium::{Consortium, FlowConfig, CPCS, HOSPITAL_A, HOSPITAL_B, NODES, RESEARCH};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sharing_flow_on_keys_each_institution_made() -> Result<()> {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let data_dir = tmp.join(format!("institutions-{}-{}", std::process::id(), rand::random::<u32>()));
    let c = Consortium::genesis(FlowConfig {
        records: 24,
        seed: None,
        params_dir: tmp.join("params"),
        data_dir: data_dir.clone(),
        institutions: true,
    })
    .await?;
    c.wait_ready(Duration::from_secs(120)).await?;
    assert!(c.file.test_consortium.is_some(), "test parameters make a test consortium, and it says so");

    // The coordinator's output holds nothing secret: no member's keys, no CA key.
    let genesis = c.dir.join("genesis");
    for entry in walk(&genesis)?.into_iter().filter(|p| p.extension().is_some_and(|e| e == "toml")) {
        let text = String::from_utf8_lossy(&std::fs::read(&entry)?).to_string();
        for i in 0..NODES {
            let f: MemberFile =
                serde_json::from_slice(&std::fs::read(c.dir.join(format!("node-{i}/secrets/member.json")))?)?;
            assert!(!text.contains(&f.signer) && !text.contains(&f.dsk), "{} holds node {i}'s keys", entry.display());
            if let Some(s) = &f.ibe_authority {
                assert!(!text.contains(s.as_str()), "{} holds an IBE share", entry.display());
            }
        }
    }
    assert!(!c.dir.join("genesis/secrets").exists());
    // The enrolled keys work: the CP-ABE index opens for research-1 (its attributes), not
    // for the other hospital; the CPC decrypts its re-key tokens with its issued IBE key.
    let a = c.upload(HOSPITAL_A, "icu", CPCS[0]).await?;
    let demand = c.demand(RESEARCH, &a.dataset, 4).await?;
    c.wait_supplied(RESEARCH, &demand).await?;
    let ledger = c.ledger(2)?;
    let pointer = dualchain_node::member::sharing::open_index(&*c.member(RESEARCH)?, &ledger, &a.dataset.0)?;
    assert_eq!(pointer.cpc, CPCS[0]);
    assert!(dualchain_node::member::sharing::open_index(&*c.member(HOSPITAL_B)?, &ledger, &a.dataset.0).is_err());
    let access = c.request_access(RESEARCH, &demand, 3600).await?;
    assert!(access.granted, "{:?}", access.denial);
    c.wait_receipt(RESEARCH, &access.request).await?;
    let fetched = c.fetch(RESEARCH, &access.request).await?;
    let want = a.matching(&c.grant_requirement(&access.request)?);
    assert_eq!(fetched, want, "the grantee decrypts exactly what the demand asked for");
    // Keys issued online were kept: every member file now holds its IBE key.
    for i in 0..NODES {
        let f: MemberFile =
            serde_json::from_slice(&std::fs::read(c.dir.join(format!("node-{i}/secrets/member.json")))?)?;
        assert!(f.ibe_key.is_some(), "node {i} kept its IBE key");
    }
    c.shutdown().await?;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

fn walk(dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            out.extend(walk(&p)?);
        } else {
            out.push(p);
        }
    }
    Ok(out)
}
