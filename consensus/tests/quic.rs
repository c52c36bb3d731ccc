//! Real sockets: four replicas on loopback over QUIC with mutual TLS and RocksDB logs
//! commit a stream of requests; one is stopped, the others go on, it restarts from its log
//! and catches up; all end with identical histories and archives.

use std::time::Duration;

use dualchain_consensus::engine::{Engine, EngineStatus};
use dualchain_consensus::local::LocalCluster;
use dualchain_consensus::metrics::Metrics;
use dualchain_consensus::replica::parse_archive;
use dualchain_consensus::tls::TlsCa;
use dualchain_consensus::{Config, Request};
use dualchain_storage::consensus::ConsensusStore;
use dualchain_storage::rocks::RocksConfig;
use prometheus_client::registry::Registry;
use rand::SeedableRng;

/// Sequence number, history digest and batch digest of an archived entry.
type ArchivedRow = (u64, [u8; 32], [u8; 32]);

fn config(n: usize, id: u8) -> Config {
    Config::loopback(n, id)
}

fn cluster(dir: &std::path::Path) -> LocalCluster {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
    LocalCluster::new(4, dir, &RocksConfig::default(), &mut rng).unwrap()
}

fn start(cluster: &mut LocalCluster, id: usize) -> Engine {
    start_with(cluster, id, Metrics::unregistered())
}

fn start_with(cluster: &mut LocalCluster, id: usize, metrics: Metrics) -> Engine {
    let (engine, mut delivered) = cluster.start(id, config(4, id as u8), metrics).unwrap();
    // The application: drain deliveries.
    tokio::spawn(async move { while delivered.recv().await.is_some() {} });
    engine
}

fn request(client: u64, id: u64) -> Request {
    Request { client, id, payload: vec![(id % 251) as u8; 256] }
}

async fn submit_all(engines: &[Option<Engine>], client: u64, ids: std::ops::Range<u64>) {
    let mut waits = Vec::new();
    for id in ids {
        let live: Vec<&Engine> = engines.iter().flatten().collect();
        let e = live[id as usize % live.len()];
        waits.push(e.submit_nowait(request(client, id)).await.unwrap());
    }
    for w in waits {
        tokio::time::timeout(Duration::from_secs(60), w).await.expect("committed in time").unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_replicas_commit_over_quic_and_a_restarted_one_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = cluster(dir.path());
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let mut engines: Vec<Option<Engine>> = vec![Some(start_with(&mut cluster, 0, metrics))];
    engines.extend((1..4).map(|i| Some(start(&mut cluster, i))));

    submit_all(&engines, 1, 0..300).await;

    // Stop replica 2 (its log is on disk), keep going without it.
    engines[2].take().unwrap().shutdown().await.unwrap();
    submit_all(&engines, 2, 0..300).await;

    // Restart it on the same address from its store.
    engines[2] = Some(start(&mut cluster, 2));
    submit_all(&engines, 3, 0..100).await;

    // Everyone reaches the same history.
    let mut statuses = Vec::new();
    for _ in 0..100 {
        statuses.clear();
        for e in engines.iter().flatten() {
            statuses.push(e.status().await.unwrap());
        }
        let top = statuses.iter().map(|s| s.last_executed).max().unwrap();
        if statuses.iter().all(|s| s.last_executed == top) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = statuses[0];
    assert!(first.last_executed > 0);
    for s in &statuses {
        assert_eq!(s.last_executed, first.last_executed, "{statuses:?}");
        assert_eq!(s.history, first.history, "{statuses:?}");
    }
    // Replica 0's metrics, in Prometheus text format.
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let committed: f64 = text
        .lines()
        .find(|l| l.starts_with("dualchain_consensus_committed_requests_total "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("committed requests series");
    assert!(committed >= 700.0, "{committed}");
    assert!(text.contains("dualchain_consensus_commit_latency_seconds_bucket"));
    assert!(text.contains("dualchain_consensus_persist_seconds_count"));
    assert!(text.ends_with("# EOF\n"));
    for e in engines.into_iter().flatten() {
        e.shutdown().await.unwrap();
    }
    // The archives agree entry by entry: same batches, same history digests (the commit
    // certificates may hold different sets of 2f + 1 commits).
    let archives: Vec<Vec<ArchivedRow>> = cluster
        .stores
        .iter()
        .map(|s| {
            let store = ConsensusStore::open(s.clone()).unwrap();
            store
                .committed_range(0, u64::MAX, usize::MAX)
                .unwrap()
                .into_iter()
                .map(|(seq, raw)| {
                    let a = parse_archive(&raw).unwrap();
                    assert!(a.time_ms > 1_600_000_000_000, "batches carry the wall-clock time");
                    (seq, a.history, a.entry.batch.digest())
                })
                .collect()
        })
        .collect();
    assert_eq!(archives[0].len() as u64, first.last_executed);
    for (i, a) in archives.iter().enumerate() {
        assert!(a == &archives[0], "replica {i}'s archive differs from replica 0's");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = cluster(dir.path());
    // Replica 3 holds a certificate for its name from a rogue CA.
    let rogue = TlsCa::generate("rogue").unwrap();
    cluster.tls[3] = rogue.issue(3).unwrap();
    let engines: Vec<Option<Engine>> = (0..4).map(|i| Some(start(&mut cluster, i))).collect();
    // Three genuine replicas (2f + 1) still commit; the rogue one never connects, so it
    // executes nothing.
    submit_all(&engines[..3], 1, 0..50).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rogue_status = engines[3].as_ref().unwrap().status().await.unwrap();
    assert_eq!(rogue_status.last_executed, 0);
    for e in engines.into_iter().flatten() {
        e.shutdown().await.unwrap();
    }
}

/// A peer with a genuine certificate whose frames do not verify is disconnected after
/// INVALID_FRAMES_MAX of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_invalid_frames_is_disconnected() {
    use dualchain_consensus::engine::INVALID_FRAMES_MAX;
    use dualchain_consensus::message::{Message, Phase, Signed, Vote};
    use dualchain_consensus::tls::{quic_client_config, server_name};

    let dir = tempfile::tempdir().unwrap();
    let mut cluster = cluster(dir.path());
    let engine = start(&mut cluster, 0);
    // Replica 3's TLS identity, but votes signed with a key that is not replica 3's.
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quic_client_config(&cluster.ca_der, &cluster.tls[3]).unwrap());
    let conn = endpoint.connect(cluster.addrs[0], &server_name(0)).unwrap().await.unwrap();
    let mut stream = conn.open_uni().await.unwrap();
    let wrong = dualchain_crypto::sign::SigningKeypair::generate(&mut rand::thread_rng());
    let mut sent = 0;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let vote = Vote { phase: Phase::Prepare, view: 0, seq: sent + 1, digest: [1; 32] };
            let bytes = Message::Vote(Signed::sign(&wrong, 3, vote)).to_bytes();
            let mut frame = (bytes.len() as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(&bytes);
            if stream.write_all(&frame).await.is_err() {
                return conn.close_reason();
            }
            sent += 1;
            if sent > 10 * INVALID_FRAMES_MAX as u64 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    })
    .await
    .expect("the connection was not closed");
    match closed {
        Some(quinn::ConnectionError::ApplicationClosed(c)) => {
            assert_eq!(c.error_code, quinn::VarInt::from_u32(5));
            assert_eq!(&c.reason[..], b"invalid frames");
        }
        other => panic!("closed for another reason: {other:?}"),
    }
    assert!(sent >= INVALID_FRAMES_MAX as u64);
    engine.shutdown().await.unwrap();
}

/// A peer with its genuine identity and key whose validly signed messages prove it faulty
/// (pre-prepares from a backup) is counted, throttled, then banned: its connection is
/// closed and a new one refused; every step is in the metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_signed_messages_prove_it_faulty_is_throttled_then_banned() {
    use std::sync::Arc;

    use dualchain_consensus::message::{Batch, Header, Message, Signed};
    use dualchain_consensus::metrics::PeerLabel;
    use dualchain_consensus::standing::FAULTS_BAN;
    use dualchain_consensus::tls::{quic_client_config, server_name};

    let dir = tempfile::tempdir().unwrap();
    let mut cluster = cluster(dir.path());
    let metrics = Metrics::unregistered();
    let engine = start_with(&mut cluster, 0, metrics.clone());
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quic_client_config(&cluster.ca_der, &cluster.tls[3]).unwrap());
    let conn = endpoint.connect(cluster.addrs[0], &server_name(0)).unwrap().await.unwrap();
    let mut stream = conn.open_uni().await.unwrap();
    let mut sent = 0u64;
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let batch = Arc::new(Batch::new(vec![request(9, sent)]));
            let header = Header { view: 0, seq: sent + 1, digest: batch.digest() };
            let bytes = Message::PrePrepare(Signed::sign(&cluster.keys[3], 3, header), batch).to_bytes();
            let mut frame = (bytes.len() as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(&bytes);
            if stream.write_all(&frame).await.is_err() {
                return conn.close_reason();
            }
            sent += 1;
            if sent > 2 * FAULTS_BAN as u64 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    })
    .await
    .expect("the connection was not closed");
    match closed {
        Some(quinn::ConnectionError::ApplicationClosed(c)) => assert_eq!(&c.reason[..], b"banned"),
        other => panic!("closed for another reason: {other:?}"),
    }
    assert!(sent >= FAULTS_BAN as u64);
    let peer = PeerLabel { peer: "3".into() };
    assert!(metrics.peer_faults.get_or_create(&peer).get() >= FAULTS_BAN as u64);
    assert_eq!(metrics.peer_throttles.get_or_create(&peer).get(), 1);
    assert_eq!(metrics.peer_bans.get_or_create(&peer).get(), 1);
    // While banned, a new connection is refused.
    let again = endpoint.connect(cluster.addrs[0], &server_name(0)).unwrap().await.unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(10), again.closed()).await.expect("refused");
    match reason {
        quinn::ConnectionError::ApplicationClosed(c) => assert_eq!(&c.reason[..], b"banned"),
        other => panic!("closed for another reason: {other:?}"),
    }
    // Another peer is not touched.
    assert_eq!(metrics.peer_faults.get_or_create(&PeerLabel { peer: "1".into() }).get(), 0);
    engine.shutdown().await.unwrap();
}

/// Starts replica `id` of `cluster` again (as it was, or at the address `cluster` names
/// for it now), once its socket is free: the old endpoint may still be closing its
/// connections.
async fn restart(cluster: &mut LocalCluster, id: usize) -> Engine {
    for attempt in 0.. {
        match cluster.start(id, config(4, id as u8), Metrics::unregistered()) {
            Ok((engine, mut delivered)) => {
                tokio::spawn(async move { while delivered.recv().await.is_some() {} });
                return engine;
            }
            Err(e) if attempt < 50 => eprintln!("restart: {e}"),
            Err(e) => panic!("restart: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    unreachable!("the loop returns or panics")
}

/// A validator that is down while its own rotation takes effect: from then on its peers
/// refuse its old certificate and dial it at its new address. Started again where it was,
/// from a store that never saw the change, it is not locked out: once f + 1 peers refuse
/// the certificate it presents, it presents the next one its host holds (which its peers
/// pin at either address), catches up, executes the change and moves. Its votes then count:
/// with validator 3 stopped, the consortium commits only with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_down_while_its_rotation_takes_effect_catches_up_under_its_next_identity() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = cluster(dir.path());
    let next = cluster.next_identity(2).unwrap();
    let mut engines: Vec<Option<Engine>> = (0..4).map(|i| (i != 2).then(|| start(&mut cluster, i))).collect();
    submit_all(&engines, 1, 0..50).await;

    let moved = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let change = cluster.rotation(1, &[0, 1, 2, 3], 2, moved, &next, &[0, 1, 3]);
    engines[0].as_ref().unwrap().submit(change).await.unwrap();
    wait_all(&engines, "validators 0, 1 and 3 in epoch 1", |s| s.epoch == 1).await;
    submit_all(&engines, 2, 0..50).await;

    // Validator 2 starts at its old address with its old certificate, as its node would.
    engines[2] = Some(restart(&mut cluster, 2).await);
    wait_all(&engines, "validator 2 caught up into epoch 1", |s| s.epoch == 1 && s.member).await;
    engines[3].take().unwrap().shutdown().await.unwrap();
    submit_all(&engines, 3, 0..50).await;
    same_history(&engines).await;
    for e in engines.into_iter().flatten() {
        e.shutdown().await.unwrap();
    }
}

/// Waits until every running engine executed as far as the furthest one, and checks that
/// they all hold the same history there.
async fn same_history(engines: &[Option<Engine>]) {
    let statuses = wait_all(engines, "the same history", |_| true).await;
    let top = statuses.iter().map(|s| s.last_executed).max().unwrap();
    let statuses = wait_all(engines, "the same history", |s| s.last_executed >= top).await;
    for s in &statuses {
        assert_eq!((s.last_executed, s.history), (statuses[0].last_executed, statuses[0].history), "{statuses:?}");
    }
}

/// Polls every running engine's status until `done` holds for all of them (90 s at most:
/// the default test run keeps both cores busy).
async fn wait_all(engines: &[Option<Engine>], what: &str, done: impl Fn(&EngineStatus) -> bool) -> Vec<EngineStatus> {
    let mut statuses = Vec::new();
    for _ in 0..900 {
        statuses.clear();
        for e in engines.iter().flatten() {
            statuses.push(e.status().await.unwrap());
        }
        if statuses.iter().all(&done) {
            return statuses;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: {statuses:?}");
}

/// A fifth validator joins a running consortium of four over real QUIC: three of the four
/// approve the change, it is ordered, the joiner (reached at the endpoint the change names)
/// catches up by state transfer, and once the change takes effect it votes. With one
/// genesis validator stopped, the other three and the joiner (a quorum of four of five)
/// go on committing, which they could not without the joiner's votes, one of them
/// restarted after the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifth_validator_joins_over_quic_and_its_votes_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = cluster(dir.path());
    let mut engines: Vec<Option<Engine>> = (0..4).map(|i| Some(start(&mut cluster, i))).collect();
    submit_all(&engines, 1, 0..100).await;

    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(10);
    let joiner = cluster.add_joiner(&mut rng).unwrap();
    assert_eq!(joiner, 4);
    engines.push(Some(start(&mut cluster, joiner)));
    let learner = engines[4].as_ref().unwrap().status().await.unwrap();
    assert_eq!((learner.epoch, learner.member), (0, false));
    // A change for an epoch that is not the next: ordered (its approvals verify), then
    // refused alike everywhere where it executes; nothing changes (had it passed,
    // validator 0 would vote no more). One with two approvals, which no set accepts, is
    // not even ordered: the primary drops it when it is forwarded
    // (`membership::tests::a_forwarded_change_is_ordered_only_with_approvals_that_verify`).
    let wrong_epoch = cluster.reconfiguration(2, &[1, 2, 3, 4], &[4], &[1, 2, 3]);
    engines[1].as_ref().unwrap().submit(wrong_epoch).await.unwrap();
    let change = cluster.reconfiguration(1, &[0, 1, 2, 3, 4], &[4], &[0, 2, 3]);
    engines[1].as_ref().unwrap().submit(change).await.unwrap();
    let statuses = wait_all(&engines, "every validator in epoch 1, voting", |s| s.epoch == 1 && s.member).await;
    assert!(statuses.iter().all(|s| s.stable_seq > 0), "{statuses:?}");
    // A validator restarted after the change reaches the joiner from its own log (the
    // persisted validator sets name the joiner's endpoint).
    engines[0].take().unwrap().shutdown().await.unwrap();
    engines[0] = Some(restart(&mut cluster, 0).await);

    // n = 5 tolerates one fault, and its quorum is 4: with validator 3 down, nothing
    // commits without the joiner's votes.
    engines[3].take().unwrap().shutdown().await.unwrap();
    submit_all(&engines, 2, 0..50).await;
    same_history(&engines).await;
    for e in engines.into_iter().flatten() {
        e.shutdown().await.unwrap();
    }
}

/// A validator rotates its TLS certificate and its address in place, keeping its id: three
/// of four approve a change that names its new endpoint. From there it presents the new
/// certificate at the new address; once the change is in effect its old certificate opens
/// no connection. With validator 3 down, nothing commits without its votes, before and
/// after it restarted (picking the new identity from its log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_rotates_its_certificate_and_address_in_place() {
    use dualchain_consensus::tls::{quic_client_config, server_name};
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = cluster(dir.path());
    let next = cluster.next_identity(2).unwrap();
    let mut engines: Vec<Option<Engine>> = (0..4).map(|i| Some(start(&mut cluster, i))).collect();
    submit_all(&engines, 1, 0..50).await;

    let moved = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let change = cluster.rotation(1, &[0, 1, 2, 3], 2, moved, &next, &[0, 1, 3]);
    engines[0].as_ref().unwrap().submit(change).await.unwrap();
    let statuses = wait_all(&engines, "every validator in epoch 1", |s| s.epoch == 1 && s.member).await;
    assert!(statuses.iter().all(|s| s.stable_seq > 0), "{statuses:?}");

    // The old certificate (still signed by the consortium's CA) is refused now.
    let old = cluster.tls[2].clone();
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    client.set_default_client_config(quic_client_config(&cluster.ca_der, &old).unwrap());
    let conn = client.connect(cluster.addrs[0], &server_name(0)).unwrap().await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await.expect("closed");
    match closed {
        quinn::ConnectionError::ApplicationClosed(c) => assert_eq!(&c.reason[..], b"unknown peer"),
        other => panic!("{other:?}"),
    }

    // n = 4, quorum 3: with validator 3 down, every commit needs validator 2's votes over
    // its new links.
    engines[3].take().unwrap().shutdown().await.unwrap();
    submit_all(&engines, 2, 0..50).await;
    // Restarted at its new address (as its node would be), it presents the new
    // certificate from its first handshake.
    engines[2].take().unwrap().shutdown().await.unwrap();
    cluster.addrs[2] = moved;
    engines[2] = Some(restart(&mut cluster, 2).await);
    submit_all(&engines, 3, 0..50).await;
    same_history(&engines).await;
    for e in engines.into_iter().flatten() {
        e.shutdown().await.unwrap();
    }
}
