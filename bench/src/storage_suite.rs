//! The `storage` suite (RocksDB in a temporary directory, WAL synced on every write):
//!
//! - ledger apply of committed batches with 1, 100 and 1000 transactions: batches/s and
//!   MB/s, against the same batches with the WAL sync off (the cost of durability);
//! - CPC ingest of FHIR-sized records (1 KiB, 4 KiB) and bundles (1 MiB): records/s and
//!   MB/s, against the memory engine running the same code (the cost of the disk);
//! - batch re-encryption end to end (scan capsules, verify, re-encrypt, write results and
//!   receipt) at 2^10, 2^14 (and 2^17 in the full run) capsules per grant: capsules/s
//!   against the crypto alone on the same capsules, and the share of time in storage.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use blstrs::{G1Affine, Scalar};
use dualchain_crypto::cbsre::{
    signcrypt, Capsule, DatasetId, DelegatingSecretKey, ReKeyToken, RecordHeader, TokenScope,
};
use dualchain_crypto::reencrypt::{CpuBackend, ReencryptBackend};
use dualchain_crypto::sign::SigningKeypair;
use dualchain_progress::Progress;
use dualchain_storage::cpc::CpcStore;
use dualchain_storage::ledger::{BlockRef, Chain, CommittedBatch, LedgerStore, StoredBlock, TxLocation};
use dualchain_storage::memory::MemoryEngine;
use dualchain_storage::rocks::{RocksConfig, RocksEngine};
use dualchain_storage::KvEngine;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::measure::Record as Row;

const NOW: u64 = 1_790_000_000;

struct TempDir(std::path::PathBuf);
impl TempDir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("dualchain-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        Self(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rocks(dir: &TempDir, sync: bool) -> Result<Arc<dyn KvEngine>> {
    Ok(Arc::new(RocksEngine::open(&dir.0, &RocksConfig { sync_writes: sync, ..RocksConfig::default() })?))
}

fn batch(store: &LedgerStore, k: u64, txs: usize) -> Result<(CommittedBatch, usize)> {
    let tip =
        |c| store.tip(c).map(|t| t.map(|t| (t.height + 1, t.hash, t)).unwrap_or((0, [0; 32], BlockRef::default())));
    let (hd, pd, _) = tip(Chain::Data)?;
    let (ha, pa, ta) = tip(Chain::Access)?;
    // A transaction of about 300 bytes (a signed demand or grant with its proof).
    let tx: Vec<u8> = (0..300u32).map(|i| (i * 7 + k as u32) as u8).collect();
    let body: Vec<u8> = tx.repeat(txs.div_ceil(2));
    let data = StoredBlock::new(hd, pd, ta, vec![1; 200], body.clone());
    let access = StoredBlock::new(ha, pa, BlockRef { height: data.height, hash: data.hash }, vec![2; 200], body);
    let mut txl = Vec::with_capacity(txs);
    let mut state = Vec::with_capacity(txs);
    for i in 0..txs {
        let mut h = [0u8; 32];
        h[..8].copy_from_slice(&k.to_be_bytes());
        h[8..16].copy_from_slice(&(i as u64).to_be_bytes());
        txl.push((
            h,
            TxLocation { chain: if i % 2 == 0 { Chain::Data } else { Chain::Access }, height: hd, position: i as u32 },
        ));
        state.push((format!("acct/{}", (k as usize * txs + i) % 100_000).into_bytes(), Some(vec![k as u8; 64])));
    }
    let bytes = data.body.len() * 2 + 400 + txs * (32 + 13 + 20 + 64);
    Ok((
        CommittedBatch {
            seq: k,
            batch: None,
            data_block: Some(data),
            access_block: Some(access),
            txs: txl,
            state,
            state_root: None,
        },
        bytes,
    ))
}

fn ledger_rate(engine: Arc<dyn KvEngine>, txs: usize, t: Duration) -> Result<(f64, f64)> {
    let store = LedgerStore::open(engine)?;
    let start = Instant::now();
    let (mut n, mut bytes) = (0u64, 0usize);
    while n < 3 || start.elapsed() < t {
        let (b, sz) = batch(&store, n, txs)?;
        store.apply(&b)?;
        n += 1;
        bytes += sz;
    }
    let s = start.elapsed().as_secs_f64();
    Ok((n as f64 / s, bytes as f64 / s / 1e6))
}

fn row(name: &str, params: String, value: f64, unit: &str, baseline: Option<f64>) -> Row {
    Row { name: name.into(), params, value, unit: unit.into(), baseline, ratio: baseline.map(|b| value / b) }
}

struct Owner {
    signer: SigningKeypair,
    dsk: DelegatingSecretKey,
    requester: DelegatingSecretKey,
}

fn records(
    o: &Owner,
    dataset: DatasetId,
    n: usize,
    len: usize,
    rng: &mut ChaCha20Rng,
) -> Result<Vec<dualchain_crypto::cbsre::Signcrypted>> {
    let payload = vec![b'x'; len];
    (0..n)
        .map(|i| {
            let h = RecordHeader {
                owner: "hospital-a".into(),
                dataset,
                record_index: i as u64,
                created_at: NOW,
                content_type: "fhir-r4:observation".into(),
            };
            Ok(signcrypt(rng, &o.signer, &o.dsk.public(), h, &payload)?)
        })
        .collect()
}

/// A backend that times the crypto work it does.
struct Timed {
    nanos: std::sync::atomic::AtomicU64,
}
impl ReencryptBackend for Timed {
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn verify_capsules(&self, c: &[Capsule], seed: [u8; 32]) -> Result<(), Vec<usize>> {
        let s = Instant::now();
        let r = CpuBackend.verify_capsules(c, seed);
        self.nanos.fetch_add(s.elapsed().as_nanos() as u64, std::sync::atomic::Ordering::Relaxed);
        r
    }
    fn reencrypt(&self, rk: &Scalar, c: &[Capsule]) -> Vec<(G1Affine, G1Affine)> {
        let s = Instant::now();
        let r = CpuBackend.reencrypt(rk, c);
        self.nanos.fetch_add(s.elapsed().as_nanos() as u64, std::sync::atomic::Ordering::Relaxed);
        r
    }
}

pub fn run(quick: bool) -> Result<Vec<Row>> {
    let t = if quick { Duration::from_millis(1500) } else { Duration::from_secs(5) };
    let mut out = Vec::new();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let ledger_txs = [1usize, 100, 1000];
    let ingest = [
        (1024usize, if quick { 2000 } else { 10_000 }),
        (4096, if quick { 1000 } else { 5000 }),
        (1 << 20, if quick { 16 } else { 64 }),
    ];
    let sizes: &[u32] = if quick { &[10, 14] } else { &[10, 14, 17] };
    let progress = Progress::new("bench storage", (ledger_txs.len() + ingest.len() + sizes.len()) as u64);

    for txs in ledger_txs {
        progress.set_message(format!("ledger txs={txs}"));
        let dir = TempDir::new(&format!("ledger-sync-{txs}"));
        let (bps, mbps) = ledger_rate(rocks(&dir, true)?, txs, t)?;
        let dir2 = TempDir::new(&format!("ledger-nosync-{txs}"));
        let (bps_ns, mbps_ns) = ledger_rate(rocks(&dir2, false)?, txs, t)?;
        out.push(row(
            "storage::ledger_apply",
            format!("txs={txs},sync=on,vs=sync-off"),
            bps,
            "batches/s",
            Some(bps_ns),
        ));
        out.push(row("storage::ledger_apply", format!("txs={txs},sync=on,vs=sync-off"), mbps, "MB/s", Some(mbps_ns)));
        progress.inc(1);
    }

    let owner = Owner {
        signer: SigningKeypair::generate(&mut rng),
        dsk: DelegatingSecretKey::generate(&mut rng),
        requester: DelegatingSecretKey::generate(&mut rng),
    };
    for (len, n) in ingest {
        progress.set_message(format!("cpc ingest record_bytes={len}"));
        let dataset = DatasetId::derive("hospital-a", &format!("ingest-{len}"));
        let recs = records(&owner, dataset, n, len, &mut rng)?;
        let bytes: usize = recs.iter().map(|r| r.ciphertext.len()).sum();
        let dir = TempDir::new(&format!("ingest-{len}"));
        let start = Instant::now();
        CpcStore::open(rocks(&dir, true)?)?.ingest(&owner.signer.public(), &recs)?;
        let s = start.elapsed().as_secs_f64();
        let start = Instant::now();
        CpcStore::open(Arc::new(MemoryEngine::new()))?.ingest(&owner.signer.public(), &recs)?;
        let s_mem = start.elapsed().as_secs_f64();
        out.push(row(
            "storage::cpc_ingest",
            format!("record_bytes={len},n={n},vs=memory"),
            n as f64 / s,
            "records/s",
            Some(n as f64 / s_mem),
        ));
        out.push(row(
            "storage::cpc_ingest",
            format!("record_bytes={len},n={n},vs=memory"),
            bytes as f64 / s / 1e6,
            "MB/s",
            Some(bytes as f64 / s_mem / 1e6),
        ));
        progress.inc(1);
    }

    for &log_n in sizes {
        progress.set_message(format!("cpc re-encryption capsules=2^{log_n}"));
        let n = 1usize << log_n;
        let dataset = DatasetId::derive("hospital-a", &format!("grant-{log_n}"));
        let recs = records(&owner, dataset, n, 64, &mut rng)?;
        let grant_id = [log_n as u8; 32];
        let token = ReKeyToken::issue(
            &mut rng,
            &owner.signer,
            &owner.dsk,
            &owner.requester.public(),
            TokenScope {
                owner: "hospital-a",
                requester: "research-1",
                dataset,
                grant_id,
                expiry: NOW + 3600,
                records: None,
            },
        )?;
        let dir = TempDir::new(&format!("reencrypt-{log_n}"));
        let cpc = CpcStore::open(rocks(&dir, true)?)?;
        cpc.ingest(&owner.signer.public(), &recs)?;
        cpc.put_grant(grant_id, token.clone(), &owner.signer.public(), NOW)?;
        let backend = Timed { nanos: Default::default() };
        let start = Instant::now();
        cpc.reencrypt(&grant_id, &backend, &owner.signer.public(), NOW, 4096, &mut rng)?;
        let total = start.elapsed().as_secs_f64();
        let crypto = backend.nanos.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e9;
        // The crypto alone on the same capsules, in the same chunking.
        let capsules: Vec<Capsule> = recs.iter().map(|r| r.capsule).collect();
        let start = Instant::now();
        for c in capsules.chunks(4096) {
            let _ = CpuBackend.verify_capsules(c, [1; 32]);
            let _ = CpuBackend.reencrypt(&token.rk, c);
        }
        let crypto_only = start.elapsed().as_secs_f64();
        out.push(row(
            "storage::reencrypt_e2e",
            format!("capsules=2^{log_n},chunk=4096,vs=crypto-only"),
            n as f64 / total,
            "capsules/s",
            Some(n as f64 / crypto_only),
        ));
        out.push(row(
            "storage::reencrypt_e2e_storage_share",
            format!("capsules=2^{log_n}"),
            100.0 * (1.0 - crypto / total),
            "%",
            None,
        ));
        progress.inc(1);
    }
    progress.finish();
    Ok(out)
}
