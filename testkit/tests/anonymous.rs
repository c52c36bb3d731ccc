//! The anonymous path in a consortium whose institutions made their own keys
//! (`assemble --anonymous`): the audit authorities' nodes (the KGC and the CPCs) make the
//! escrow key on chain by themselves, each keeps its share of the secret on its own
//! machine, no other node holds any, and any majority of them opens what a requester
//! seals under the key while one cannot.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use dualchain_node::agents::escrow::{load_secret, DEALING_FILE, SECRET_FILE};
use dualchain_prover::escrow::seal;
use dualchain_testkit::consortium::{Consortium, FlowConfig, CPCS, KGC, NODES};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_authorities_make_the_escrow_key_and_each_keeps_its_share() -> Result<()> {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let data_dir = tmp.join(format!("anonymous-{}-{}", std::process::id(), rand::random::<u32>()));
    let c = Consortium::genesis(FlowConfig {
        records: 24,
        seed: None,
        params_dir: tmp.join("params"),
        data_dir: data_dir.clone(),
        institutions: true,
        ceremony: false,
        validators_only: 0,
        anonymous: true,
    })
    .await?;
    c.wait_ready(Duration::from_secs(120)).await?;

    let authorities = [KGC, CPCS[0], CPCS[1]];
    let secrets = |id: &str| -> Result<PathBuf> { Ok(c.dir.join(format!("node-{}/secrets", c.index_of(id)?))) };
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let formed = c.ledger(0)?.escrow_key()?.is_some();
        let kept =
            authorities.iter().map(|a| secrets(a).map(|d| d.join(SECRET_FILE).exists())).collect::<Result<Vec<_>>>()?;
        if formed && kept.iter().all(|k| *k) {
            break;
        }
        ensure!(Instant::now() < deadline, "the escrow key did not form: formed {formed}, kept {kept:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Every validator holds the same key, made from all three honest dealings.
    let key = c.ledger(0)?.escrow_key()?.unwrap();
    for ledger in c.ledgers() {
        let (dealings, complaints, record) = ledger.escrow_dkg()?;
        assert_eq!(ledger.escrow_key()?.as_ref(), Some(&key));
        assert_eq!((dealings.len(), complaints.len()), (3, 0));
        assert_eq!(record.unwrap().qualified, vec![1, 2, 3]);
    }
    // Each authority kept its share, readable by its owner alone, and dropped its polynomial.
    let mut kept = Vec::new();
    for a in authorities {
        let dir = secrets(a)?;
        let (secret, of) = load_secret(&dir)?.expect("a kept share");
        assert_eq!(of, key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(dir.join(SECRET_FILE))?.permissions().mode() & 0o777, 0o600);
        }
        assert!(!dir.join(DEALING_FILE).exists(), "{a} kept its dealing");
        kept.push(secret);
    }
    // No other institution's node holds any of it.
    for i in (0..NODES).filter(|i| authorities.iter().all(|a| c.index_of(a).ok() != Some(*i))) {
        let dir = c.dir.join(format!("node-{i}/secrets"));
        assert!(!dir.join(SECRET_FILE).exists() && !dir.join(DEALING_FILE).exists(), "node {i} holds escrow material");
    }
    // Any two authorities open a credential index sealed under the key; one cannot.
    let mut rng = rand::rngs::OsRng;
    let (sealed, _) = seal(&key, 17, &mut rng)?;
    let case = b"audit case: test";
    for pair in [[0, 1], [0, 2], [1, 2]] {
        let shares: Vec<_> =
            pair.iter().map(|i| kept[*i].decryption_share(&key, &sealed, case, &mut rng)).collect::<Result<_, _>>()?;
        assert_eq!(key.open(&sealed, &shares, case)?, 17);
        assert!(key.open(&sealed, &shares[..1], case).is_err());
    }
    c.shutdown().await?;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}
