//! The executor against bad input and failures: malformed bytes, tampered and forged
//! transactions, unknown and unauthorised members, replays, gaps, torn and failed writes.
//! (Proof verdicts are exercised end to end in `tests/tests/flow.rs`.)

use std::sync::{Arc, OnceLock};

use bellperson::groth16::VerifyingKey;
use blstrs::Bls12;
use dualchain_crypto::cbsre::DelegatingSecretKey;
use dualchain_crypto::cert::{AttributeSet, Certificate, CertificateAuthority, CertificateFields, Role};
use dualchain_crypto::sign::SigningKeypair;
use dualchain_crypto::Codec;
use dualchain_ledger::block::Block;
use dualchain_ledger::genesis::Founders;
use dualchain_ledger::reason::{CertProblem, ProofFault, Reason, TxPart};
use dualchain_ledger::tx::{FrBytes, Outcome, SignedTx, Tx, TxDomain, TxKind};
use dualchain_ledger::{Applied, Committed, Genesis, Ledger, LedgerError};
use dualchain_prover::backend::CpuBackend;
use dualchain_prover::params::ProvingKey;
use dualchain_prover::shapes::Shape;
use dualchain_storage::ledger::Chain;
use dualchain_storage::memory::MemoryEngine;
use dualchain_storage::wrappers::{Fault, Faulty};
use dualchain_storage::KvEngine;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sha2::Digest as _;

mod common;
use common::any_heart_rate;

const T0_MS: u64 = 1_790_000_000_000;

fn policy_vk() -> VerifyingKey<Bls12> {
    static VK: OnceLock<VerifyingKey<Bls12>> = OnceLock::new();
    VK.get_or_init(|| ProvingKey::generate(Shape::Policy, &mut ChaCha20Rng::seed_from_u64(1)).unwrap().vk().clone())
        .clone()
}

struct World {
    ca: CertificateAuthority,
    genesis: Genesis,
    rng: ChaCha20Rng,
}

struct Who {
    id: String,
    key: SigningKeypair,
    /// The consortium it signs for.
    domain: TxDomain,
    cert: Vec<u8>,
    nonce: u64,
}

impl Who {
    fn tx(&mut self, kind: TxKind) -> SignedTx {
        self.nonce += 1;
        SignedTx::sign(Tx { sender: self.id.clone(), nonce: self.nonce, kind }, &self.key, &self.domain).unwrap()
    }
    fn register(&mut self) -> SignedTx {
        let certificate = self.cert.clone();
        self.tx(TxKind::RegisterMember { certificate })
    }
}

impl World {
    fn new() -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let ca = CertificateAuthority::generate("ca", &mut rng).unwrap();
        let genesis = Genesis {
            ca: ca.public().clone(),
            policy_vk: policy_vk(),
            supply_vks: vec![],
            grant_duration_max_s: 3600,
            revocation_quorum: 1,
            founders: Founders::AnyCertified,
            anonymous: None,
        };
        Self { ca, genesis, rng }
    }

    fn member(&mut self, id: &str, role: Role, ca: Option<&CertificateAuthority>) -> Who {
        self.member_for(id, role, ca, 3600)
    }

    /// [`World::member`] with a certificate valid `valid_s` seconds from `T0_MS`.
    /// The KGC, hospitals a and b and research-1, certified for `valid_s` seconds.
    fn four_members(&mut self, valid_s: u64) -> [Who; 4] {
        [
            self.member_for("kgc", Role::Kgc, None, valid_s),
            self.member_for("hospital-a", Role::Hospital, None, valid_s),
            self.member_for("hospital-b", Role::Hospital, None, valid_s),
            self.member_for("research-1", Role::ResearchInstitute, None, valid_s),
        ]
    }

    fn member_for(&mut self, id: &str, role: Role, ca: Option<&CertificateAuthority>, valid_s: u64) -> Who {
        let key = SigningKeypair::generate(&mut self.rng);
        let dsk = DelegatingSecretKey::generate(&mut self.rng);
        let attrs = AttributeSet::new([format!("role:{}", role.as_str())]).unwrap();
        let ca = ca.unwrap_or(&self.ca);
        let cert = ca
            .issue(CertificateFields {
                serial: 1,
                subject: id.into(),
                role,
                signing_key: key.public(),
                delegating_key: dsk.public(),
                attribute_commitment: attrs.commit(&[0; 32]),
                not_before: T0_MS / 1000 - 10,
                not_after: T0_MS / 1000 + valid_s,
            })
            .unwrap();
        Who { id: id.into(), key, cert: cert.to_bytes(), nonce: 0, domain: self.genesis.tx_domain() }
    }

    /// `who`'s certificate renewed by the CA: the same keys, `serial`.
    fn renewed(&self, who: &Who, serial: u64) -> Vec<u8> {
        let old = Certificate::from_bytes(&who.cert).unwrap();
        self.ca.issue(CertificateFields { serial, ..old.fields }).unwrap().to_bytes()
    }
}

/// `renew_key`'s transactions: a member's renewal to a new signing key, then one signed
/// with the new key, one with the old, and one forged.
struct Renewal {
    renewal: Vec<u8>,
    with_new: Vec<u8>,
    with_old: Vec<u8>,
    forged: Vec<u8>,
}

impl World {
    /// `a`'s certificate renewed to a new signing key, and what `a` signs after it.
    fn renew_key(&mut self, a: &mut Who) -> Renewal {
        let old_key = a.key.clone();
        let new_key = SigningKeypair::generate(&mut self.rng);
        let old = Certificate::from_bytes(&a.cert).unwrap();
        let renewed =
            self.ca.issue(CertificateFields { serial: 2, signing_key: new_key.public(), ..old.fields }).unwrap();
        a.key = new_key;
        let renewal = a.tx(TxKind::RegisterMember { certificate: renewed.to_bytes() }).to_bytes();
        let with_new = acts(a);
        a.key = old_key;
        let with_old = acts(a);
        let mut forged = a.tx(TxKind::RevokeGrant { grant: [2; 32], reason: "x".into() });
        forged.signature[0] ^= 1;
        Renewal { renewal, with_new, with_old, forged: forged.to_bytes() }
    }
}

fn batch(ledger: &Ledger, seq: u64, payloads: &[Vec<u8>]) -> Result<Option<Applied>, LedgerError> {
    batch_at(ledger, seq, T0_MS + seq, payloads)
}

/// [`batch`] at ledger time `time_ms`.
fn batch_at(ledger: &Ledger, seq: u64, time_ms: u64, payloads: &[Vec<u8>]) -> Result<Option<Applied>, LedgerError> {
    ledger.apply(&Committed {
        seq,
        time_ms,
        digest: [seq as u8; 32],
        certificate: vec![7; 10],
        payloads: payloads.iter().map(Vec::as_slice).collect(),
        validator_changes: vec![],
    })
}

fn outcomes(a: &Applied) -> Vec<Outcome> {
    a.txs.iter().map(|t| t.outcome.clone()).collect()
}

/// The outcome's reason code (panics for an accepted transaction).
fn reason(o: &Outcome) -> &Reason {
    o.reason().unwrap_or_else(|| panic!("accepted, where a refusal was expected"))
}

fn fr(x: u64) -> FrBytes {
    FrBytes::from_fr(&blstrs::Scalar::from(x))
}

/// Writes contract state straight into a store, as batch 1 (records whose transactions need
/// CP-ABE material or proofs that are beside the point of a test).
fn seed_state(engine: &Arc<dyn KvEngine>, put: impl FnOnce(&mut dualchain_ledger::state::Overlay<'_>)) {
    use dualchain_storage::ledger::{CommittedBatch, LedgerStore};
    let store = LedgerStore::open(engine.clone()).unwrap();
    let mut o = dualchain_ledger::state::Overlay::new(&store);
    put(&mut o);
    let state = o.into_writes();
    store
        .apply(&CommittedBatch {
            seq: 1,
            batch: None,
            data_block: None,
            access_block: None,
            txs: vec![],
            state,
            state_root: None,
        })
        .unwrap();
}

/// A 64-record dataset of hospital-a's, as the ledger records it.
fn hospital_a_dataset(
    id: [u8; 32],
    disclosure: dualchain_ledger::tx::Disclosure,
) -> dualchain_ledger::state::DatasetRecord {
    dualchain_ledger::state::DatasetRecord {
        id,
        owner: "hospital-a".into(),
        commitment: fr(5),
        capacity: 64,
        policy: String::new(),
        abe_index: vec![],
        zk_policy_hash: fr(6),
        disclosure,
        consent: fr(8),
        consent_version: 0,
        consent_ms: T0_MS,
        erased: None,
        registered_ms: T0_MS,
        tx: [0; 32],
    }
}

fn open(engine: Arc<dyn KvEngine>, w: &World) -> Ledger {
    Ledger::open(engine, w.genesis.clone(), Arc::new(CpuBackend)).unwrap()
}

#[test]
fn malformed_bytes_are_recorded_with_a_reason_and_change_nothing() {
    let w = World::new();
    let ledger = open(Arc::new(MemoryEngine::new()), &w);
    let mut good = {
        let mut w2 = World::new();
        w2.member("kgc", Role::Kgc, None).register().to_bytes()
    };
    let mut trailing = good.clone();
    trailing.push(0);
    good[0] = 9; // unknown version
    let cases: Vec<(Vec<u8>, TxPart, &str)> = vec![
        (vec![], TxPart::Empty, "empty"),
        (good.clone(), TxPart::Version, "version"),
        (trailing, TxPart::Framing, "trailing"),
        (vec![1, 0, 0, 0, 2, b'{', b'}'], TxPart::Framing, "truncated"),
        ([vec![1, 0, 0, 0, 2], b"{}".to_vec(), vec![0; 64]].concat(), TxPart::Body, "body"),
        (vec![1; 300 << 10], TxPart::TooLong, "exceeds"),
    ];
    let payloads: Vec<Vec<u8>> = cases.iter().map(|(p, _, _)| p.clone()).collect();
    let a = batch(&ledger, 1, &payloads).unwrap().unwrap();
    for ((_, part, words), got) in cases.iter().zip(&a.txs) {
        assert_eq!(reason(&got.outcome), &Reason::Undecodable { part: *part });
        let detail = got.detail.as_deref().unwrap_or_default();
        assert!(detail.contains(words), "the decoder's words travel beside the block: {detail}");
    }
    assert!(a.data.is_none() && a.access.is_some(), "undecodable bytes land on the access chain");
    assert!(ledger.members().unwrap().is_empty());
    let block = ledger.block(Chain::Access, 0).unwrap().unwrap();
    assert_eq!(block.entries.len(), 6);
    // Each entry refers to the batch's bytes as they were ordered, a huge payload too.
    for (entry, payload) in block.entries.iter().zip(&payloads) {
        assert_eq!(&entry.tx, payload);
    }
    let (at, indexed) = ledger.tx(&dualchain_ledger::tx::tx_hash(&payloads[5])).unwrap().unwrap();
    assert_eq!((at.position, &indexed.tx), (5, &payloads[5]), "the huge payload is indexed by its own hash");
    assert_eq!(block.notes.len(), 6, "each refusal's words are noted beside the block");
    assert!(block.notes[&4].starts_with("body: "), "{:?}", block.notes);
}

#[test]
fn a_validator_set_change_is_recorded_as_such_beside_transactions() {
    let w = World::new();
    let ledger = open(Arc::new(MemoryEngine::new()), &w);
    let mut w2 = World::new();
    let mut kgc = w2.member("kgc", Role::Kgc, None);
    let change = vec![0u8; 200]; // consensus' bytes: opaque to the ledger
    let payloads = [kgc.register().to_bytes(), change.clone(), b"garbage".to_vec()];
    let a = ledger
        .apply(&Committed {
            seq: 1,
            time_ms: T0_MS + 1,
            digest: [1; 32],
            certificate: vec![7; 10],
            payloads: payloads.iter().map(Vec::as_slice).collect(),
            validator_changes: vec![(1, 3)],
        })
        .unwrap()
        .unwrap();
    let got = outcomes(&a);
    assert_eq!(got[..2], [Outcome::Accepted, Outcome::ValidatorSetChange { epoch: 3 }]);
    assert!(matches!(reason(&got[2]), Reason::Undecodable { .. }), "unmarked bytes stay garbage: {got:?}");
    assert!(a.txs[1].detail.is_none() && a.txs[1].tx.is_none());
    // Recorded whole, on the access chain, indexed by its hash, and nothing else changed.
    let block = ledger.block(Chain::Access, 0).unwrap().unwrap();
    let entry = block.entries.iter().find(|e| e.outcome == Outcome::ValidatorSetChange { epoch: 3 }).unwrap();
    assert_eq!(entry.tx, change);
    let (_, indexed) = ledger.tx(&a.txs[1].hash).unwrap().unwrap();
    assert_eq!(indexed.outcome, Outcome::ValidatorSetChange { epoch: 3 });
    assert_eq!(ledger.members().unwrap().len(), 1);
    let json = serde_json::to_value(&entry.outcome).unwrap();
    assert_eq!(json, serde_json::json!({"status": "validator_set_change", "epoch": 3}));
}

#[test]
fn signatures_certificates_and_membership_are_checked() {
    let mut w = World::new();
    let ledger = open(Arc::new(MemoryEngine::new()), &w);
    let mut kgc = w.member("kgc", Role::Kgc, None);
    let mut hospital = w.member("hospital-a", Role::Hospital, None);
    let rogue_ca = CertificateAuthority::generate("rogue", &mut ChaCha20Rng::seed_from_u64(9)).unwrap();
    let mut forged = w.member("mallory", Role::Kgc, Some(&rogue_ca));
    let mut stranger = w.member("stranger", Role::Hospital, None);

    // Someone else's certificate, a tampered body, a rogue CA's certificate.
    let mut imposter = w.member("imposter", Role::Hospital, None);
    imposter.cert = kgc.cert.clone();
    let mut tampered = hospital.register();
    tampered.body = String::from_utf8(tampered.body.clone()).unwrap().replace("hospital-a", "hospital-b").into_bytes();
    let payloads = vec![
        kgc.register().to_bytes(),
        imposter.register().to_bytes(),
        tampered.to_bytes(),
        forged.register().to_bytes(),
        hospital.register().to_bytes(),
    ];
    let a = batch(&ledger, 1, &payloads).unwrap().unwrap();
    let o = outcomes(&a);
    assert!(o[0].is_accepted());
    let other =
        |subject: &str, sender: &str| Reason::CertificateOfOther { subject: subject.into(), sender: sender.into() };
    assert_eq!(reason(&o[1]), &other("kgc", "imposter"));
    assert_eq!(reason(&o[2]), &other("hospital-a", "hospital-b"));
    assert_eq!(reason(&o[3]), &Reason::CertificateRefused { problem: CertProblem::UnknownIssuer });
    assert!(a.txs[3].detail.as_deref().unwrap_or_default().contains("mallory"), "{:?}", a.txs[3].detail);
    assert!(o[4].is_accepted());
    assert_eq!(ledger.members().unwrap().len(), 2);

    // Unknown member, bad signature by a known member, wrong role; then the member's own
    // key signing for another consortium (the rogue CA's), or for none.
    let mut by_wrong_key = hospital.tx(TxKind::RevokeMember { member: "kgc".into(), reason: "x".into() });
    by_wrong_key.signature = stranger.key.sign(w.genesis.tx_domain().as_str(), &by_wrong_key.body);
    let mut elsewhere = hospital.tx(TxKind::RevokeGrant { grant: [1; 32], reason: "x".into() });
    elsewhere.signature = hospital.key.sign(TxDomain::of(rogue_ca.public()).as_str(), &elsewhere.body);
    let mut unbound = hospital.tx(TxKind::RevokeGrant { grant: [2; 32], reason: "x".into() });
    unbound.signature = hospital.key.sign("ledger-tx", &unbound.body);
    let payloads = vec![
        stranger.tx(TxKind::RevokeMember { member: "kgc".into(), reason: "x".into() }).to_bytes(),
        SignedTx::from_bytes(&by_wrong_key.to_bytes()).unwrap().to_bytes(),
        hospital
            .tx(TxKind::IssueCredential { member: "kgc".into(), leaf: FrBytes([1; 32]), anonymous_leaf: None })
            .to_bytes(),
        kgc.tx(TxKind::IssueCredential { member: "nobody".into(), leaf: FrBytes([1; 32]), anonymous_leaf: None })
            .to_bytes(),
        kgc.tx(TxKind::IssueCredential {
            member: "hospital-a".into(),
            leaf: FrBytes([0xff; 32]),
            anonymous_leaf: None,
        })
        .to_bytes(),
        kgc.tx(TxKind::IssueCredential { member: "hospital-a".into(), leaf: FrBytes([0; 32]), anonymous_leaf: None })
            .to_bytes(),
        elsewhere.to_bytes(),
        unbound.to_bytes(),
    ];
    let a = batch(&ledger, 2, &payloads).unwrap().unwrap();
    let o = outcomes(&a);
    assert_eq!(reason(&o[0]), &Reason::UnknownMember { member: "stranger".into() });
    assert_eq!(reason(&o[1]), &Reason::BadSignature);
    let role = Reason::RoleRequired { roles: vec!["kgc".into()], member: "hospital-a".into(), role: "hospital".into() };
    assert_eq!(reason(&o[2]), &role);
    assert_eq!(reason(&o[2]).to_string(), "this transaction needs role kgc; hospital-a is hospital");
    assert_eq!(reason(&o[3]), &Reason::UnknownMember { member: "nobody".into() });
    assert_eq!(reason(&o[4]), &Reason::CredentialLeafInvalid);
    assert!(a.txs[4].detail.as_deref().unwrap_or_default().contains("not canonical"), "{:?}", a.txs[4].detail);
    assert_eq!(reason(&o[5]), &Reason::CredentialLeafZero);
    assert_eq!(reason(&o[6]), &Reason::BadSignature, "signed for another consortium");
    assert_eq!(reason(&o[7]), &Reason::BadSignature, "signed for no consortium");
    assert!(ledger.credential_root().unwrap().is_none(), "nothing was issued");

    // A revoked member's transactions no longer count.
    let a = batch(
        &ledger,
        3,
        &[
            kgc.tx(TxKind::RevokeMember { member: "hospital-a".into(), reason: "audit".into() }).to_bytes(),
            hospital.tx(TxKind::RevokeGrant { grant: [1; 32], reason: "x".into() }).to_bytes(),
        ],
    )
    .unwrap()
    .unwrap();
    let o = outcomes(&a);
    assert!(o[0].is_accepted());
    let revoked = Reason::MemberRevoked { member: "hospital-a".into(), revocation: "audit".into() };
    assert_eq!(reason(&o[1]), &revoked);
    assert_eq!(reason(&o[1]).to_string(), "member hospital-a is revoked (audit)");
}

#[test]
fn a_member_is_revoked_at_the_quorum_of_approvals_in_good_standing_and_not_before() {
    let mut w = World::new();
    w.genesis.revocation_quorum = 3;
    let ledger = open(Arc::new(MemoryEngine::new()), &w);
    let year = 400 * 24 * 3600;
    let [mut kgc, mut a, mut b, mut r] = w.four_members(year);
    let mut mallory = w.member_for("mallory", Role::Hospital, None, year);
    let mut eve = w.member_for("eve", Role::Hospital, None, year);
    let regs: Vec<Vec<u8>> = [&mut kgc, &mut a, &mut b, &mut r, &mut mallory, &mut eve]
        .into_iter()
        .map(|m| m.register().to_bytes())
        .collect();
    assert!(batch(&ledger, 1, &regs).unwrap().unwrap().txs.iter().all(|t| t.outcome.is_accepted()));
    let revoked = |id: &str| ledger.member(id).unwrap().unwrap().revoked;

    // The KGC alone does not revoke, nor by approving twice; the member still acts.
    let o = outcomes(
        &batch(&ledger, 2, &[revoke(&mut kgc, "mallory"), revoke(&mut kgc, "mallory"), acts(&mut mallory)])
            .unwrap()
            .unwrap(),
    );
    assert!(o[0].is_accepted());
    assert_eq!(reason(&o[1]), &Reason::RevocationAlreadyApproved { member: "mallory".into(), by: "kgc".into() });
    assert_eq!(reason(&o[1]).to_string(), "kgc already approved the revocation of member mallory");
    assert!(!matches!(reason(&o[2]), Reason::MemberRevoked { .. }), "{:?}", o[2]);
    assert_eq!(revoked("mallory"), None);

    // hospital-b approves too; then hospital-b is itself revoked by three others.
    batch(&ledger, 3, &[revoke(&mut b, "mallory")]).unwrap().unwrap();
    all_accepted(
        &ledger,
        4,
        &[revoke(&mut kgc, "hospital-b"), revoke(&mut a, "hospital-b"), revoke(&mut r, "hospital-b")],
    );
    assert_eq!(revoked("hospital-b").as_deref(), Some("forged records"));
    // A third approval of mallory's revocation: three approvals, two in good standing.
    batch(&ledger, 5, &[revoke(&mut a, "mallory")]).unwrap().unwrap();
    assert_eq!(revoked("mallory"), None, "a revoked approver still counted");
    let record = ledger.revocation("mallory").unwrap().unwrap();
    assert_eq!(record.approvals.iter().map(|x| x.by.as_str()).collect::<Vec<_>>(), ["kgc", "hospital-b", "hospital-a"]);
    assert_eq!(record.revoked_ms, None);
    // The fourth, research-1's, reaches the quorum.
    batch(&ledger, 6, &[revoke(&mut r, "mallory")]).unwrap().unwrap();
    assert_eq!(revoked("mallory").as_deref(), Some("forged records"));
    assert_eq!(ledger.revocation("mallory").unwrap().unwrap().revoked_ms, Some(T0_MS + 6));
    let o = outcomes(&batch(&ledger, 7, &[acts(&mut mallory), revoke(&mut a, "nobody")]).unwrap().unwrap());
    assert!(matches!(reason(&o[0]), Reason::MemberRevoked { .. }), "{:?}", o[0]);
    assert_eq!(reason(&o[1]), &Reason::UnknownMember { member: "nobody".into() });
    let o = outcomes(&batch(&ledger, 8, &[revoke(&mut kgc, "mallory")]).unwrap().unwrap());
    assert_eq!(reason(&o[0]), &Reason::MemberAlreadyRevoked { member: "mallory".into() });

    // Approvals lapse: two for eve, then a month passes; the next one starts afresh.
    batch(&ledger, 9, &[revoke(&mut kgc, "eve"), revoke(&mut a, "eve")]).unwrap().unwrap();
    let later = T0_MS + dualchain_ledger::contracts::registry::APPROVALS_OPEN_MS + 10;
    let o = outcomes(&batch_at(&ledger, 10, later, &[revoke(&mut r, "eve")]).unwrap().unwrap());
    assert!(o[0].is_accepted(), "{o:?}");
    assert_eq!(revoked("eve"), None, "lapsed approvals counted");
    let record = ledger.revocation("eve").unwrap().unwrap();
    assert_eq!((record.approvals.len(), record.opened_ms), (1, later));
    // A member may approve its own removal (leaving): eve's own approval is the second.
    batch_at(&ledger, 11, later + 1, &[revoke(&mut eve, "eve")]).unwrap().unwrap();
    assert_eq!(revoked("eve"), None);
    batch_at(&ledger, 12, later + 2, &[revoke(&mut kgc, "eve")]).unwrap().unwrap();
    assert_eq!(revoked("eve").as_deref(), Some("forged records"));
}

/// An approval of revoking `member`, for forged records.
fn revoke(who: &mut Who, member: &str) -> Vec<u8> {
    who.tx(TxKind::RevokeMember { member: member.into(), reason: "forged records".into() }).to_bytes()
}

/// A transaction only a registered member's counts (whether it is accepted shows who is one).
fn acts(who: &mut Who) -> Vec<u8> {
    who.tx(TxKind::RevokeGrant { grant: [1; 32], reason: "x".into() }).to_bytes()
}

/// Applies `txs` at `seq` and checks that every one was accepted.
fn all_accepted(ledger: &Ledger, seq: u64, txs: &[Vec<u8>]) {
    let o = outcomes(&batch(ledger, seq, txs).unwrap().unwrap());
    assert!(o.iter().all(Outcome::is_accepted), "{o:?}");
}

/// An approval of the parameters (grant limit `grant_s`, membership quorum `quorum`).
fn params(who: &mut Who, grant_s: u64, quorum: u32) -> Vec<u8> {
    who.tx(TxKind::ChangeParameters { grant_duration_max_s: grant_s, membership_quorum: quorum }).to_bytes()
}

#[test]
fn the_members_change_the_parameters_at_the_quorum_and_the_new_quorum_counts_from_then_on() {
    let mut w = World::new();
    w.genesis.revocation_quorum = 2;
    let ledger = open(Arc::new(MemoryEngine::new()), &w);
    let year = 400 * 24 * 3600;
    let [mut kgc, mut a, mut b, mut r] = w.four_members(year);
    let regs: Vec<Vec<u8>> = [&mut kgc, &mut a, &mut b, &mut r].into_iter().map(|m| m.register().to_bytes()).collect();
    all_accepted(&ledger, 1, &regs);
    let in_effect = || ledger.parameters().unwrap().0;
    assert_eq!((in_effect().grant_duration_max_s, in_effect().membership_quorum), (3600, 2), "genesis' first");

    // Refused: no change, a grant limit or a quorum out of range (a quorum above the four
    // members in good standing could never be reached again).
    let o = outcomes(
        &batch(
            &ledger,
            2,
            &[params(&mut kgc, 3600, 2), params(&mut kgc, 10, 2), params(&mut kgc, 7200, 0), params(&mut kgc, 7200, 5)],
        )
        .unwrap()
        .unwrap(),
    );
    assert_eq!(reason(&o[0]), &Reason::ParametersUnchanged);
    assert!(
        matches!(reason(&o[1]), Reason::ParameterOutOfRange { parameter, .. } if parameter == "grant_duration_max_s")
    );
    let quorum_range = Reason::ParameterOutOfRange { parameter: "membership_quorum".into(), min: 1, max: 4 };
    assert_eq!((reason(&o[2]), reason(&o[3])), (&quorum_range, &quorum_range));
    assert_eq!(reason(&o[3]).to_string(), "membership_quorum must be in 1..=4");

    // One approval is not the quorum of two, and approving twice is refused.
    let o = outcomes(&batch(&ledger, 3, &[params(&mut kgc, 7200, 3), params(&mut kgc, 7200, 3)]).unwrap().unwrap());
    assert!(o[0].is_accepted());
    assert_eq!(reason(&o[1]), &Reason::ParametersAlreadyApproved { by: "kgc".into() });
    assert_eq!(in_effect().membership_quorum, 2);
    // An approval of another set counts for that set only.
    all_accepted(&ledger, 4, &[params(&mut b, 7200, 4)]);
    assert_eq!(in_effect().membership_quorum, 2);
    // The second approval of the same set makes it the parameters in effect.
    all_accepted(&ledger, 5, &[params(&mut a, 7200, 3)]);
    let (p, record) = ledger.parameters().unwrap();
    assert_eq!((p.grant_duration_max_s, p.membership_quorum), (7200, 3));
    assert_eq!(record.unwrap().since_ms, T0_MS + 5);
    let proposal = ledger.parameters_proposal(&p).unwrap().unwrap();
    assert_eq!(proposal.approvals.iter().map(|x| x.by.as_str()).collect::<Vec<_>>(), ["kgc", "hospital-a"]);
    assert_eq!(proposal.applied_ms, Some(T0_MS + 5));

    // From then on a revocation takes three approvals, not two.
    all_accepted(&ledger, 6, &[revoke(&mut kgc, "research-1"), revoke(&mut a, "research-1")]);
    assert_eq!(ledger.member("research-1").unwrap().unwrap().revoked, None, "the old quorum still counted");
    all_accepted(&ledger, 7, &[revoke(&mut b, "research-1")]);
    assert!(ledger.member("research-1").unwrap().unwrap().revoked.is_some());
    // A revoked member approves nothing; three members remain in good standing, so a
    // quorum of four is now out of range.
    let o = outcomes(&batch(&ledger, 8, &[params(&mut r, 7200, 2), params(&mut kgc, 7200, 4)]).unwrap().unwrap());
    assert!(matches!(reason(&o[0]), Reason::MemberRevoked { .. }), "{:?}", o[0]);
    assert_eq!(reason(&o[1]), &Reason::ParameterOutOfRange { parameter: "membership_quorum".into(), min: 1, max: 3 });
}

/// Approvals of admitting `member` with the certificate `cert`.
fn admit(who: &mut Who, member: &str, cert: &[u8]) -> Vec<u8> {
    let certificate_sha256 = sha2::Sha256::digest(cert).into();
    who.tx(TxKind::AdmitMember { member: member.into(), certificate_sha256 }).to_bytes()
}

#[test]
fn a_member_not_named_at_genesis_joins_at_the_quorum_of_approvals_in_good_standing() {
    let mut w = World::new();
    w.genesis.revocation_quorum = 3;
    w.genesis.founders = Founders::listed(["kgc", "hospital-a", "hospital-b", "research-1"]);
    let ledger = open(Arc::new(MemoryEngine::new()), &w);
    let year = 400 * 24 * 3600;
    let [mut kgc, mut a, mut b, mut r] = w.four_members(year);
    let mut newcomer = w.member_for("clinic-n", Role::Hospital, None, year);
    let registered = |id: &str| ledger.member(id).unwrap();

    // The founders register on their certificates alone.
    let regs: Vec<Vec<u8>> = [&mut kgc, &mut a, &mut b, &mut r].into_iter().map(|m| m.register().to_bytes()).collect();
    assert!(batch(&ledger, 1, &regs).unwrap().unwrap().txs.iter().all(|t| t.outcome.is_accepted()));
    assert_eq!(ledger.members().unwrap().len(), 4);

    // The newcomer's registration opens its admission and registers nothing: what else it
    // signs is a stranger's; the same registration again is refused while it is open.
    let cert = newcomer.cert.clone();
    let o = outcomes(&batch(&ledger, 2, &[newcomer.register().to_bytes()]).unwrap().unwrap());
    assert!(o[0].is_accepted(), "{o:?}");
    assert_eq!(registered("clinic-n"), None);
    let record = ledger.admission("clinic-n").unwrap().unwrap();
    assert_eq!(record.certificate, cert);
    assert_eq!(record.certificate_sha256, <[u8; 32]>::from(sha2::Sha256::digest(&cert)));
    assert!(record.approvals.is_empty() && record.admitted_ms.is_none());
    let o = outcomes(&batch(&ledger, 3, &[acts(&mut newcomer), newcomer.register().to_bytes()]).unwrap().unwrap());
    assert_eq!(reason(&o[0]), &Reason::UnknownMember { member: "clinic-n".into() });
    assert_eq!(reason(&o[1]), &Reason::AdmissionPending { member: "clinic-n".into() });

    // Another certificate's digest, an admission nobody opened, the KGC approving twice.
    let o = outcomes(
        &batch(
            &ledger,
            4,
            &[
                admit(&mut kgc, "clinic-n", b"another certificate"),
                admit(&mut kgc, "nobody", &cert),
                admit(&mut kgc, "clinic-n", &cert),
                admit(&mut kgc, "clinic-n", &cert),
            ],
        )
        .unwrap()
        .unwrap(),
    );
    assert_eq!(reason(&o[0]), &Reason::AdmissionCertificateDiffers { member: "clinic-n".into() });
    assert_eq!(reason(&o[1]), &Reason::UnknownAdmission { member: "nobody".into() });
    assert!(o[2].is_accepted(), "{o:?}");
    assert_eq!(reason(&o[3]), &Reason::AdmissionAlreadyApproved { member: "clinic-n".into(), by: "kgc".into() });
    assert_eq!(reason(&o[3]).to_string(), "kgc already approved the admission of clinic-n");
    assert_eq!(registered("clinic-n"), None);

    // hospital-b approves, then is revoked; hospital-a's approval is the third, but only
    // two approvers are in good standing.
    batch(&ledger, 5, &[admit(&mut b, "clinic-n", &cert)]).unwrap().unwrap();
    all_accepted(
        &ledger,
        6,
        &[revoke(&mut kgc, "hospital-b"), revoke(&mut a, "hospital-b"), revoke(&mut r, "hospital-b")],
    );
    assert!(registered("hospital-b").unwrap().revoked.is_some());
    let o = outcomes(&batch(&ledger, 7, &[admit(&mut a, "clinic-n", &cert), acts(&mut newcomer)]).unwrap().unwrap());
    assert!(o[0].is_accepted(), "{o:?}");
    assert_eq!(registered("clinic-n"), None, "a revoked approver still counted");
    assert_eq!(reason(&o[1]), &Reason::UnknownMember { member: "clinic-n".into() });
    // research-1's approval reaches the quorum: registered as a founder would be.
    let o = outcomes(&batch(&ledger, 8, &[admit(&mut r, "clinic-n", &cert)]).unwrap().unwrap());
    assert!(o[0].is_accepted(), "{o:?}");
    let m = registered("clinic-n").expect("admitted");
    assert_eq!(
        (m.role.as_str(), m.serial, m.certificate.clone(), m.registered_ms),
        ("hospital", 1, cert.clone(), T0_MS + 8)
    );
    assert_eq!(m.signing_key, *newcomer.key.public().as_bytes());
    let record = ledger.admission("clinic-n").unwrap().unwrap();
    let approvers: Vec<_> = record.approvals.iter().map(|x| x.by.as_str()).collect();
    assert_eq!(approvers, ["kgc", "hospital-b", "hospital-a", "research-1"]);
    assert_eq!(record.admitted_ms, Some(T0_MS + 8));

    // Admitted, it transacts; approving it again is refused; it renews without approvals.
    let renewed = w.renewed(&newcomer, 2);
    let o = outcomes(
        &batch(
            &ledger,
            9,
            &[
                acts(&mut newcomer),
                admit(&mut a, "clinic-n", &cert),
                newcomer.tx(TxKind::RegisterMember { certificate: renewed.clone() }).to_bytes(),
            ],
        )
        .unwrap()
        .unwrap(),
    );
    assert_eq!(reason(&o[0]), &Reason::UnknownGrant, "its transaction reached its contract");
    assert_eq!(reason(&o[1]), &Reason::MemberAlreadyRegistered { member: "clinic-n".into() });
    assert!(o[2].is_accepted(), "{o:?}");
    assert_eq!((registered("clinic-n").unwrap().serial, registered("clinic-n").unwrap().certificate), (2, renewed));

    // Revoked, it is never admitted again: neither a new registration nor approvals.
    let o = outcomes(
        &batch(
            &ledger,
            10,
            &[revoke(&mut kgc, "clinic-n"), revoke(&mut a, "clinic-n"), revoke(&mut newcomer, "clinic-n")],
        )
        .unwrap()
        .unwrap(),
    );
    assert!(o.iter().all(Outcome::is_accepted), "{o:?}");
    let revocation = "forged records".to_string();
    let again = w.renewed(&newcomer, 3);
    let o = outcomes(
        &batch(
            &ledger,
            11,
            &[
                newcomer.tx(TxKind::RegisterMember { certificate: again.clone() }).to_bytes(),
                admit(&mut kgc, "clinic-n", &again),
                admit(&mut a, "clinic-n", &cert),
            ],
        )
        .unwrap()
        .unwrap(),
    );
    let revoked = Reason::MemberRevoked { member: "clinic-n".into(), revocation };
    assert_eq!(o.iter().map(reason).collect::<Vec<_>>(), [&revoked, &revoked, &revoked]);
    assert_eq!(registered("clinic-n").unwrap().serial, 2);
    assert_eq!(ledger.admission("clinic-n").unwrap().unwrap(), record, "the admission record is as it was");
}

#[test]
fn admission_approvals_lapse_name_one_certificate_and_admit_only_a_valid_one() {
    let mut w = World::new();
    w.genesis.revocation_quorum = 2;
    w.genesis.founders = Founders::listed(["kgc", "hospital-a", "hospital-b"]);
    let ledger = open(Arc::new(MemoryEngine::new()), &w);
    let year = 400 * 24 * 3600;
    let mut kgc = w.member_for("kgc", Role::Kgc, None, year);
    let mut a = w.member_for("hospital-a", Role::Hospital, None, year);
    let mut b = w.member_for("hospital-b", Role::Hospital, None, year);
    let mut newcomer = w.member_for("clinic-n", Role::Hospital, None, year);
    let mut brief = w.member_for("clinic-h", Role::Hospital, None, 3600);
    let regs: Vec<Vec<u8>> =
        [&mut kgc, &mut a, &mut b, &mut newcomer, &mut brief].into_iter().map(|m| m.register().to_bytes()).collect();
    let o = outcomes(&batch(&ledger, 1, &regs).unwrap().unwrap());
    assert!(o.iter().all(Outcome::is_accepted), "{o:?}");
    assert_eq!(ledger.members().unwrap().len(), 3, "only the founders are registered");
    let cert = newcomer.cert.clone();

    // A certificate valid when its admission opened, expired when the quorum is reached:
    // the approval that would admit it is refused.
    let two_hours = T0_MS + 2 * 3600 * 1000;
    let o = outcomes(
        &batch_at(
            &ledger,
            2,
            two_hours,
            &[admit(&mut kgc, "clinic-h", &brief.cert), admit(&mut a, "clinic-h", &brief.cert)],
        )
        .unwrap()
        .unwrap(),
    );
    assert!(o[0].is_accepted(), "{o:?}");
    assert_eq!(reason(&o[1]), &Reason::CertificateRefused { problem: CertProblem::Expired });
    assert_eq!(ledger.member("clinic-h").unwrap(), None);
    assert_eq!(ledger.admission("clinic-h").unwrap().unwrap().approvals.len(), 1);

    // One approval, then a month passes: the next approval opens the admission afresh.
    batch_at(&ledger, 3, two_hours + 1, &[admit(&mut kgc, "clinic-n", &cert)]).unwrap().unwrap();
    let later = two_hours + dualchain_ledger::contracts::registry::APPROVALS_OPEN_MS + 10;
    let o = outcomes(&batch_at(&ledger, 4, later, &[admit(&mut a, "clinic-n", &cert)]).unwrap().unwrap());
    assert!(o[0].is_accepted(), "{o:?}");
    assert_eq!(ledger.member("clinic-n").unwrap(), None, "lapsed approvals counted");
    let record = ledger.admission("clinic-n").unwrap().unwrap();
    assert_eq!((record.approvals.len(), record.opened_ms), (1, later));

    // Another certificate for the same id replaces the admission and its approvals: an
    // approval of the first certificate is refused, the new one needs its own.
    let other = w.renewed(&newcomer, 2);
    let o = outcomes(
        &batch_at(
            &ledger,
            5,
            later + 1,
            &[
                newcomer.tx(TxKind::RegisterMember { certificate: other.clone() }).to_bytes(),
                admit(&mut b, "clinic-n", &cert),
                admit(&mut b, "clinic-n", &other),
            ],
        )
        .unwrap()
        .unwrap(),
    );
    assert!(o[0].is_accepted(), "{o:?}");
    assert_eq!(reason(&o[1]), &Reason::AdmissionCertificateDiffers { member: "clinic-n".into() });
    assert!(o[2].is_accepted(), "{o:?}");
    let record = ledger.admission("clinic-n").unwrap().unwrap();
    assert_eq!(record.certificate, other);
    assert_eq!(record.approvals.iter().map(|x| x.by.as_str()).collect::<Vec<_>>(), ["hospital-b"]);
    assert_eq!(ledger.member("clinic-n").unwrap(), None);
    batch_at(&ledger, 6, later + 2, &[admit(&mut a, "clinic-n", &other)]).unwrap().unwrap();
    assert_eq!(ledger.member("clinic-n").unwrap().unwrap().certificate, other);
}

#[test]
fn replays_are_duplicates_and_not_indexed_twice() {
    let mut w = World::new();
    let ledger = open(Arc::new(MemoryEngine::new()), &w);
    let mut kgc = w.member("kgc", Role::Kgc, None);
    let reg = kgc.register();
    let a = batch(&ledger, 1, &[reg.to_bytes(), reg.to_bytes()]).unwrap().unwrap();
    assert!(a.txs[0].outcome.is_accepted());
    assert_eq!(reason(&a.txs[1].outcome), &Reason::Duplicate);
    let a = batch(&ledger, 2, &[reg.to_bytes()]).unwrap().unwrap();
    assert_eq!(reason(&a.txs[0].outcome), &Reason::Duplicate);
    let (loc, entry) = ledger.tx(&reg.hash).unwrap().unwrap();
    assert_eq!((loc.chain, loc.height, loc.position), (Chain::Data, 0, 0), "the index keeps the first");
    assert!(entry.outcome.is_accepted());
    // A batch already applied is ignored; one from the future is refused.
    assert!(batch(&ledger, 2, &[]).unwrap().is_none());
    assert!(matches!(batch(&ledger, 5, &[]), Err(LedgerError::OutOfOrder { expected: 3, got: 5 })));
}

/// What a restarted node's agents replay: every accepted transaction, the first block's
/// (height 0) included, none refused.
#[test]
fn accepted_txs_lists_every_accepted_transaction_from_height_zero() {
    let mut w = World::new();
    let ledger = open(Arc::new(MemoryEngine::new()), &w);
    let all = || ledger.accepted_txs_since(dualchain_ledger::Heights::default()).unwrap().0;
    assert!(all().is_empty());
    let mut kgc = w.member("kgc", Role::Kgc, None);
    let mut hospital = w.member("hospital-a", Role::Hospital, None);
    let mut stranger = w.member("stranger", Role::Hospital, None);
    let a1 = batch(&ledger, 1, &[kgc.register().to_bytes(), vec![0xde, 0xad]]).unwrap().unwrap();
    let a2 = batch(
        &ledger,
        2,
        &[
            hospital.register().to_bytes(),
            stranger.tx(TxKind::RevokeMember { member: "kgc".into(), reason: "x".into() }).to_bytes(),
        ],
    )
    .unwrap()
    .unwrap();
    let accepted = |a: &Applied| -> Vec<_> {
        a.txs.iter().filter(|t| t.outcome.is_accepted()).map(|t| (t.hash, t.tx.clone().unwrap())).collect()
    };
    let want: Vec<_> = [accepted(&a1), accepted(&a2)].concat();
    assert_eq!(want.len(), 2, "the malformed bytes and the stranger's revocation are refused");
    let got = all();
    assert_eq!(got.iter().map(|(h, _)| *h).collect::<Vec<_>>(), want.iter().map(|(h, _)| *h).collect::<Vec<_>>());
    assert_eq!(got.iter().map(|(_, t)| t.sender.clone()).collect::<Vec<_>>(), ["kgc", "hospital-a"]);
    // From the heights after batch 1: only batch 2's; and the heights after it.
    let mut after_1 = dualchain_ledger::Heights::default();
    after_1.after(&a1);
    let (since, next) = ledger.accepted_txs_since(after_1).unwrap();
    assert_eq!(
        since.iter().map(|(h, _)| *h).collect::<Vec<_>>(),
        accepted(&a2).iter().map(|(h, _)| *h).collect::<Vec<_>>()
    );
    let mut after_2 = after_1;
    after_2.after(&a2);
    assert_eq!(next, after_2);
    assert!(ledger.accepted_txs_since(next).unwrap().0.is_empty());
}

#[test]
fn blocks_link_and_cross_link_and_prove_their_entries() {
    let mut w = World::new();
    let ledger = open(Arc::new(MemoryEngine::new()), &w);
    let mut kgc = w.member("kgc", Role::Kgc, None);
    let mut hospital = w.member("hospital-a", Role::Hospital, None);
    let a1 = batch(&ledger, 1, &[kgc.register().to_bytes(), vec![0xde, 0xad]]).unwrap().unwrap();
    let a2 = batch(&ledger, 2, &[hospital.register().to_bytes()]).unwrap().unwrap();
    let (d0, x0, d1) = (a1.data.unwrap(), a1.access.unwrap(), a2.data.unwrap());
    assert!(a2.access.is_none());
    let data1 = ledger.block(Chain::Data, 1).unwrap().unwrap();
    assert_eq!(data1.prev_hash, d0.hash);
    assert_eq!(data1.cross_link, x0, "the data block links the access chain's tip");
    let access0 = ledger.block(Chain::Access, 0).unwrap().unwrap();
    assert_eq!(access0.cross_link, d0, "the access block links the same batch's data block");
    assert_eq!(access0.certificate, vec![7; 10], "the certificate is kept beside the block");
    assert_eq!(data1.hash, d1.hash);
    let tx = &a2.txs[0];
    let proof = ledger.inclusion_proof(&tx.hash).unwrap().unwrap();
    assert_eq!(proof.verify().unwrap(), d1.hash);
    let mut bad = proof.clone();
    bad.tx_hash[0] ^= 1;
    assert!(bad.verify().is_err());

    // A stored block whose body was altered does not open.
    let mut stored = dualchain_storage::ledger::StoredBlock::new(
        data1.height,
        data1.prev_hash,
        data1.cross_link,
        b"{}".to_vec(),
        b"[]".to_vec(),
    );
    stored.body = b"[1]".to_vec();
    assert!(Block::open(&stored, |_, _| Ok(Vec::<Vec<u8>>::new())).is_err());
}

/// What a block hashes is the same on every validator: refusals are codes, the words of
/// the errors behind them are notes outside the hash, and the state root commits to the
/// contract state, so a validator whose state differs is caught at the first block it
/// builds from the difference.
#[test]
fn blocks_hash_codes_not_words_and_carry_the_state_root() {
    let mut w = World::new();
    let mut kgc = w.member("kgc", Role::Kgc, None);
    let mut hospital = w.member("hospital-a", Role::Hospital, None);
    let mut broken = hospital.register();
    broken.body = br#"{"sender":"x","nonce":1,"kind":"bogus"}"#.to_vec();
    let mut odd_cert = w.member("odd", Role::Hospital, None);
    odd_cert.cert.truncate(20);
    let first = vec![
        kgc.register().to_bytes(),
        hospital.register().to_bytes(),
        broken.to_bytes(),
        odd_cert.register().to_bytes(),
        kgc.tx(TxKind::IssueCredential {
            member: "hospital-a".into(),
            leaf: FrBytes([0xff; 32]),
            anonymous_leaf: None,
        })
        .to_bytes(),
    ];
    let engine_b = Arc::new(MemoryEngine::new());
    let (a, b) = (open(Arc::new(MemoryEngine::new()), &w), open(engine_b.clone(), &w));
    let (applied_a, applied_b) = (batch(&a, 1, &first).unwrap().unwrap(), batch(&b, 1, &first).unwrap().unwrap());
    assert_eq!(a.fingerprint().unwrap(), b.fingerprint().unwrap());
    assert_ne!(a.state_root().unwrap(), [0; 32], "registrations wrote state");
    assert_eq!(applied_a.state_root, a.state_root().unwrap());

    // Three refusals carry words (a serde error, a decoder error, a field error): none is
    // in the hashed body, all are noted beside it.
    let details: Vec<(usize, &str)> =
        applied_a.txs.iter().enumerate().filter_map(|(i, t)| Some((i, t.detail.as_deref()?))).collect();
    assert_eq!(details.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![2, 3, 4], "{details:?}");
    for chain in [Chain::Data, Chain::Access] {
        let block = a.block(chain, 0).unwrap().unwrap();
        assert_eq!(block.header.state_root, applied_a.state_root, "{chain:?} block carries the root");
        let hashed = serde_json::to_string(&block.entries).unwrap();
        for (_, d) in &details {
            assert!(!hashed.contains(d), "{chain:?} block hashes the words {d:?}");
        }
    }
    let access = a.block(Chain::Access, 0).unwrap().unwrap();
    assert!(access.notes.values().any(|n| n.starts_with("body: ")), "{:?}", access.notes);

    // A validator that words an error differently builds the same block: rewrite B's
    // notes and its blocks still open with the same hash.
    let store = dualchain_storage::ledger::LedgerStore::open(engine_b.clone()).unwrap();
    let stored = store.block(Chain::Access, 0).unwrap().unwrap();
    let reworded = stored.clone().with_notes(br#"{"0":"anders formuliert"}"#.to_vec());
    let kept = |seq, digest: &_| dualchain_ledger::block::decode_kept_batch(seq, digest, &store.batch(seq)?.unwrap());
    assert_eq!(Block::open(&reworded, kept).unwrap().hash, Block::open(&stored, kept).unwrap().hash);
    assert_eq!(applied_b.access, applied_a.access);

    // A batch that writes nothing (a replay) leaves the root as it was.
    let root = a.state_root().unwrap();
    batch(&a, 2, &first[..1]).unwrap().unwrap();
    batch(&b, 2, &first[..1]).unwrap().unwrap();
    assert_eq!(a.state_root().unwrap(), root);

    // B's state is damaged behind the ledger's back (hospital-a looks revoked). The next
    // batch that reads it writes differently: roots and blocks part at that batch.
    let mut m = b.member("hospital-a").unwrap().unwrap();
    m.revoked = Some("bit rot".into());
    let mut wb = dualchain_storage::engine::WriteBatch::new();
    let key = dualchain_ledger::state::member_key("hospital-a");
    wb.put(
        dualchain_storage::engine::Cf::State,
        key,
        dualchain_storage::record::seal(&serde_json::to_vec(&m).unwrap()),
    );
    engine_b.write(wb).unwrap();
    let third = vec![kgc
        .tx(TxKind::IssueCredential { member: "hospital-a".into(), leaf: FrBytes([1; 32]), anonymous_leaf: None })
        .to_bytes()];
    let (x, y) = (batch(&a, 3, &third).unwrap().unwrap(), batch(&b, 3, &third).unwrap().unwrap());
    assert!(x.txs[0].outcome.is_accepted() && !y.txs[0].outcome.is_accepted());
    assert_ne!(x.state_root, y.state_root, "the damaged validator's root departs at batch 3");
    assert_ne!(a.fingerprint().unwrap(), b.fingerprint().unwrap());
}

/// A ledger cleared from its store (the repair of a diverged validator) re-applies the
/// same batches into the same fingerprint; other column families are untouched.
#[test]
fn a_cleared_ledger_rebuilds_to_the_same_fingerprint() {
    let mut w = World::new();
    let mut kgc = w.member("kgc", Role::Kgc, None);
    let mut hospital = w.member("hospital-a", Role::Hospital, None);
    let batches = [
        vec![kgc.register().to_bytes(), hospital.register().to_bytes()],
        vec![kgc
            .tx(TxKind::IssueCredential { member: "hospital-a".into(), leaf: FrBytes([1; 32]), anonymous_leaf: None })
            .to_bytes()],
    ];
    let engine = Arc::new(MemoryEngine::new());
    let mut other = dualchain_storage::engine::WriteBatch::new();
    other.put(dualchain_storage::engine::Cf::ConsensusLog, b"k".to_vec(), b"v".to_vec());
    engine.write(other).unwrap();
    let ledger = open(engine.clone(), &w);
    for (i, b) in batches.iter().enumerate() {
        batch(&ledger, i as u64 + 1, b).unwrap().unwrap();
    }
    let before = ledger.fingerprint().unwrap();
    drop(ledger);
    dualchain_storage::ledger::LedgerStore::open(engine.clone()).unwrap().clear().unwrap();
    let ledger = open(engine.clone(), &w);
    assert_eq!(ledger.applied_seq().unwrap(), None);
    assert!(ledger.members().unwrap().is_empty() && ledger.credential_root().unwrap().is_none());
    assert_eq!(ledger.state_root().unwrap(), [0; 32]);
    for (i, b) in batches.iter().enumerate() {
        batch(&ledger, i as u64 + 1, b).unwrap().unwrap();
    }
    assert_eq!(ledger.fingerprint().unwrap(), before);
    let kept = engine.get(dualchain_storage::engine::Cf::ConsensusLog, b"k").unwrap();
    assert_eq!(kept.as_deref(), Some(&b"v"[..]), "the consensus log is not the ledger's");
}

#[test]
fn a_failed_or_torn_write_loses_nothing_and_is_applied_once_after_reopening() {
    // With a tearing engine every commit is three writes (redo intent, batch, clear): batch 2
    // is torn in its intent (nothing applies) or in its body (the intent completes it).
    for fault in [Fault::FailAt { write: 1 }, Fault::TearAt { write: 3, keep: 0 }, Fault::TearAt { write: 4, keep: 2 }]
    {
        let mut w = World::new();
        let mut kgc = w.member("kgc", Role::Kgc, None);
        let mut hospital = w.member("hospital-a", Role::Hospital, None);
        let first = vec![kgc.register().to_bytes()];
        let second = vec![hospital.register().to_bytes()];

        // Reference: a ledger without faults.
        let clean = open(Arc::new(MemoryEngine::new()), &w);
        batch(&clean, 1, &first).unwrap();
        batch(&clean, 2, &second).unwrap();

        let disk = Arc::new(MemoryEngine::new());
        let faulty = Arc::new(Faulty::new(disk.clone(), Some(fault)));
        let ledger = open(faulty.clone(), &w);
        batch(&ledger, 1, &first).unwrap();
        assert!(batch(&ledger, 2, &second).is_err(), "{fault:?}");
        assert!(matches!(batch(&ledger, 2, &second), Err(LedgerError::Poisoned)));
        drop(ledger);

        // Reopen on what survived: the storage layer's redo intent completes a torn batch
        // or it never happened. Batch 1 is there; batch 2 is all there or not at all, and
        // then applies once.
        let reopened = open(disk, &w);
        match reopened.applied_seq().unwrap() {
            Some(1) => {
                assert!(reopened.member("hospital-a").unwrap().is_none(), "{fault:?}: half a batch");
                batch(&reopened, 2, &second).unwrap().unwrap();
            }
            Some(2) => assert!(reopened.member("hospital-a").unwrap().is_some()),
            other => panic!("{fault:?}: applied {other:?}"),
        }
        assert!(batch(&reopened, 2, &second).unwrap().is_none());
        assert_eq!(reopened.fingerprint().unwrap(), clean.fingerprint().unwrap(), "{fault:?}");
    }
}

/// A Miller-loop backend that counts what it is asked (the cost of verification).
#[derive(Default)]
struct Counting(std::sync::atomic::AtomicUsize);

impl dualchain_prover::backend::MillerBackend for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }
    fn miller_product(&self, p: &[blstrs::G1Affine], q: &[blstrs::G2Affine]) -> blstrs::MillerLoopResult {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        CpuBackend.miller_product(p, q)
    }
}

/// Cheap checks come before proof verification, and one member's proofs cost at most its
/// budget: a revoked member's proofs and proofs the contract refuses anyway are never
/// verified, and past `PROOFS_PER_MEMBER_MAX` a member's proofs are refused unverified.
#[test]
fn proofs_are_verified_only_after_the_cheap_checks_and_within_a_members_budget() {
    use dualchain_ledger::contracts::zk::PROOFS_PER_MEMBER_MAX;
    use dualchain_ledger::state::{dataset_key, demand_key, DemandRecord};
    use dualchain_prover::supply::SupplyShape;
    use group::prime::PrimeCurveAffine;
    use std::sync::atomic::Ordering;

    let mut w = World::new();
    // A supply verifying key of fixed points: every proof below is bad under it.
    let vk = dualchain_ledger::genesis::placeholder_verifying_key(4);
    w.genesis.supply_vks = vec![(SupplyShape::Records64, vk)];
    let mut kgc = w.member("kgc", Role::Kgc, None);
    let mut owner = w.member("hospital-a", Role::Hospital, None);
    let mut other = w.member("hospital-b", Role::Hospital, None);
    let mut mallory = w.member("mallory", Role::Hospital, None);

    // A dataset of hospital-a's with an open demand, written straight into the state (its
    // registration needs CP-ABE material that is beside the point here).
    let engine: Arc<dyn KvEngine> = Arc::new(MemoryEngine::new());
    let dataset = [1u8; 32];
    let demand = [2u8; 32];
    seed_state(&engine, |o| {
        o.put(dataset_key(&dataset), &hospital_a_dataset(dataset, Default::default()));
        let requirement = any_heart_rate(1);
        o.put(
            demand_key(&demand),
            &DemandRecord {
                id: demand,
                dataset,
                requester: "research-1".into(),
                requirement,
                requirement_hash: fr(7),
                purpose: Default::default(),
                use_index: 0,
                published_ms: T0_MS,
                supplied_by: None,
            },
        );
    });
    let miller = Arc::new(Counting::default());
    let ledger = Ledger::open(engine, w.genesis.clone(), miller.clone()).unwrap();
    let regs = [kgc.register(), owner.register(), other.register(), mallory.register()];
    batch(&ledger, 2, &regs.iter().map(SignedTx::to_bytes).collect::<Vec<_>>()).unwrap().unwrap();
    let revoke = kgc.tx(TxKind::RevokeMember { member: "mallory".into(), reason: "audit".into() });
    assert!(batch(&ledger, 3, &[revoke.to_bytes()]).unwrap().unwrap().txs[0].outcome.is_accepted());

    let (g1, g2) = (blstrs::G1Affine::generator(), blstrs::G2Affine::generator());
    let bad = dualchain_prover::verify::proof_to_bytes(&bellperson::groth16::Proof::<Bls12> { a: g1, b: g2, c: g1 });
    let supply = |who: &mut Who, n: usize| -> Vec<Vec<u8>> {
        (0..n).map(|_| who.tx(TxKind::SupplyProof { demand, proof: bad.to_vec() }).to_bytes()).collect()
    };

    // A revoked member and a member who does not own the dataset: refused, nothing verified.
    let payloads = [supply(&mut mallory, 50), supply(&mut other, 50)].concat();
    let a = batch(&ledger, 4, &payloads).unwrap().unwrap();
    let o = outcomes(&a);
    assert!(o[..50].iter().all(|x| matches!(reason(x), Reason::MemberRevoked { .. })), "{:?}", o[0]);
    assert!(o[50..].iter().all(|x| matches!(reason(x), Reason::NotDatasetOwner { .. })), "{:?}", o[50]);
    assert_eq!(miller.0.load(Ordering::SeqCst), 0, "no Miller loop for proofs the contract refuses anyway");

    // The owner's bad proofs: the first PROOFS_PER_MEMBER_MAX are verified (and refused),
    // the rest are refused for the budget without being verified.
    let extra = 20;
    let a = batch(&ledger, 5, &supply(&mut owner, PROOFS_PER_MEMBER_MAX + extra)).unwrap().unwrap();
    let o = outcomes(&a);
    let refused = |proof| Reason::SupplyProofRefused { proof };
    assert!(o[..PROOFS_PER_MEMBER_MAX].iter().all(|x| reason(x) == &refused(ProofFault::Invalid)), "{:?}", o[0]);
    let over = refused(ProofFault::OverBudget { max: PROOFS_PER_MEMBER_MAX });
    assert!(o[PROOFS_PER_MEMBER_MAX..].iter().all(|x| reason(x) == &over));
    let spent = miller.0.load(Ordering::SeqCst);
    assert!(spent > 0, "the owner's proofs were verified");
    // Bisection over k bad proofs of n costs at most ~2k·log2(n) checks: the budget caps k and n.
    assert!(spent <= 4 * PROOFS_PER_MEMBER_MAX * 7, "{spent} Miller loops for {PROOFS_PER_MEMBER_MAX} proofs");
    assert!(ledger.demand(&demand).unwrap().unwrap().supplied_by.is_none());
}

#[test]
fn demands_outside_the_owners_disclosure_policy_are_refused_with_the_limit_they_break() {
    use dualchain_ledger::state::dataset_key;
    use dualchain_ledger::tx::Disclosure;
    use dualchain_prover::supply::Requirement;

    let mut w = World::new();
    let mut research = w.member("research-1", Role::ResearchInstitute, None);
    let mut other = w.member("research-2", Role::ResearchInstitute, None);
    let engine: Arc<dyn KvEngine> = Arc::new(MemoryEngine::new());
    let dataset = [1u8; 32];
    let disclosure =
        Disclosure { min_cohort: 10, min_value_span: 10_000, min_window_min: 60, demands_per_epoch: 3, epoch_h: 1 };
    seed_state(&engine, |o| o.put(dataset_key(&dataset), &hospital_a_dataset(dataset, disclosure)));
    let ledger = open(engine, &w);
    let regs = [research.register(), other.register()];
    batch(&ledger, 2, &regs.iter().map(SignedTx::to_bytes).collect::<Vec<_>>()).unwrap().unwrap();

    // Heart rates in 40..=200 bpm over a day, needing 10 of them: within the policy.
    let wide = Requirement {
        code: 88674,
        unit: 1,
        age_lo: 0,
        age_hi: 120,
        sex: 0,
        value_min: Some(40_000),
        value_max: Some(200_000),
        time_from: 29_833_000,
        time_to: 29_833_000 + 24 * 60,
        threshold: 10,
    };
    let mut n = 0u8;
    let mut demand = |who: &mut Who, requirement: Requirement| {
        n += 1;
        who.tx(TxKind::Demand { demand: [n; 32], dataset, requirement, purpose: Default::default(), nullifier: None })
            .to_bytes()
    };
    let probes = [
        demand(&mut research, Requirement { threshold: 1, ..wide }),
        // 58..=58 bpm: one value, the binary search of a single patient's heart rate.
        demand(&mut research, Requirement { value_min: Some(58_000), value_max: Some(58_000), ..wide }),
        demand(&mut research, Requirement { time_to: wide.time_from + 1, ..wide }),
        // One bound only: the cohort minimum is what limits it.
        demand(&mut research, Requirement { value_max: None, value_min: Some(120_000), ..wide }),
        demand(&mut research, wide),
        demand(&mut research, wide),
        demand(&mut research, wide),
        // Another requester has its own budget.
        demand(&mut other, wide),
    ];
    let a = batch(&ledger, 3, &probes).unwrap().unwrap();
    let o = outcomes(&a);
    assert_eq!(reason(&o[0]), &Reason::CohortTooSmall { min: 10 });
    assert_eq!(reason(&o[1]), &Reason::ValueSpanTooNarrow { min: 10_000 });
    assert_eq!(reason(&o[2]), &Reason::TimeWindowTooNarrow { min_minutes: 60 });
    assert!(o[3].is_accepted() && o[4].is_accepted() && o[5].is_accepted(), "{o:?}");
    assert_eq!(reason(&o[6]), &Reason::DemandBudgetSpent { budget: 3, epoch_h: 1 });
    assert!(o[7].is_accepted(), "{:?}", o[7]);
    assert!(reason(&o[6]).to_string().contains("3 demands on this dataset every 1 h"));
    assert!(ledger.demand(&[4; 32]).unwrap().is_some() && ledger.demand(&[7; 32]).unwrap().is_none());

    // The next epoch (T0 falls 2,800 s before an hour boundary): a fresh budget.
    let next = demand(&mut research, wide);
    let a = ledger
        .apply(&Committed {
            seq: 4,
            time_ms: T0_MS + 2_900_000,
            digest: [4; 32],
            certificate: vec![7; 10],
            payloads: vec![next.as_slice()],
            validator_changes: vec![],
        })
        .unwrap()
        .unwrap();
    assert!(a.txs[0].outcome.is_accepted(), "{:?}", a.txs[0].outcome);
}

#[test]
fn a_disclosure_policy_out_of_bounds_is_refused_at_registration() {
    use dualchain_ledger::tx::Disclosure;
    let d = Disclosure::default();
    assert!(d.validate().is_ok());
    for bad in [
        Disclosure { min_cohort: 0, ..d },
        Disclosure { min_cohort: Disclosure::COHORT_MAX + 1, ..d },
        Disclosure { demands_per_epoch: 0, ..d },
        Disclosure { epoch_h: 0, ..d },
        Disclosure { epoch_h: Disclosure::EPOCH_H_MAX + 1, ..d },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
    // Absent from a registration's JSON: the defaults; unknown fields: refused.
    let v: Disclosure = serde_json::from_str(r#"{"min_cohort": 20}"#).unwrap();
    assert_eq!(v, Disclosure { min_cohort: 20, ..d });
    assert!(serde_json::from_str::<Disclosure>(r#"{"min_kohort": 20}"#).is_err());
}

/// One policy, two enforcements: a registration is accepted only when its index is
/// encrypted under the statement's CP-ABE form and its policy hash is the statement's DNF.
#[test]
fn a_registration_whose_policy_forms_disagree_with_its_statement_is_refused() {
    use dualchain_crypto::abe::ac17::Ac17;
    use dualchain_crypto::abe::{AbeScheme, Policy};
    use dualchain_ledger::policy::AccessPolicy;
    use dualchain_ledger::tx::DatasetRegistration;

    let mut w = World::new();
    let ledger = open(Arc::new(MemoryEngine::new()), &w);
    let mut hospital = w.member("hospital-a", Role::Hospital, None);
    let a = batch(&ledger, 1, &[hospital.register().to_bytes()]).unwrap().unwrap();
    assert!(outcomes(&a)[0].is_accepted());

    let (pk, _) = Ac17::setup().unwrap();
    let statement = "role:research and (dept:icu or dept:cardiology) and clearance>=3";
    let forms = AccessPolicy::parse(statement).unwrap().compile().unwrap();
    let index_under = |p: &Policy| Ac17::encrypt(&pk, p, b"{}").unwrap().to_bytes();
    let narrower = AccessPolicy::parse("role:research and dept:icu and clearance>=3").unwrap().compile().unwrap();
    let reg = |n: u8, policy: &str, abe_index: Vec<u8>, zk: FrBytes| {
        TxKind::RegisterDataset(DatasetRegistration {
            dataset: [n; 32],
            commitment: fr(5),
            capacity: 64,
            policy: policy.into(),
            abe_index,
            zk_policy_hash: zk,
            consent: fr(9),
            disclosure: Default::default(),
        })
    };
    let zk = FrBytes::from_fr(&forms.dnf.hash());
    let cases = [
        // The index opens for the statement's members; the proof admits fewer (or more).
        (
            reg(1, statement, index_under(&forms.abe), FrBytes::from_fr(&narrower.dnf.hash())),
            Some(Reason::ZkPolicyDiffers),
        ),
        // The proof admits the statement's members; the index opens for others.
        (reg(2, statement, index_under(&narrower.abe), zk), Some(Reason::AbeIndexPolicyDiffers)),
        (
            reg(3, statement, index_under(&Policy::parse("role:research").unwrap()), zk),
            Some(Reason::AbeIndexPolicyDiffers),
        ),
        // A statement that does not compile, and one that is too long.
        (reg(4, "role:research and salary:high", index_under(&forms.abe), zk), Some(Reason::AbePolicyInvalid)),
        (
            reg(5, &"role:r or ".repeat(300), index_under(&forms.abe), zk),
            Some(Reason::AbePolicyTooLong { max: dualchain_ledger::contracts::abe::POLICY_LEN_MAX }),
        ),
        (reg(6, statement, index_under(&forms.abe), zk), None),
    ];
    let payloads: Vec<Vec<u8>> = cases.iter().map(|(kind, _)| hospital.tx(kind.clone()).to_bytes()).collect();
    let a = batch(&ledger, 2, &payloads).unwrap().unwrap();
    for (i, ((_, want), got)) in cases.iter().zip(outcomes(&a)).enumerate() {
        match want {
            Some(r) => assert_eq!(reason(&got), r, "case {i}: {:?}", a.txs[i].detail),
            None => assert!(got.is_accepted(), "case {i}: {got:?} {:?}", a.txs[i].detail),
        }
    }
    assert!(a.txs[1].detail.as_deref().unwrap_or_default().contains("dept:icu"), "{:?}", a.txs[1].detail);
    // Only the registration whose forms agree is recorded, with its statement.
    assert!(ledger.dataset(&[1; 32]).unwrap().is_none() && ledger.dataset(&[2; 32]).unwrap().is_none());
    assert_eq!(ledger.dataset(&[6; 32]).unwrap().unwrap().policy, statement);
}

/// A grant's patient pseudonyms are for its requester alone: the access contract records
/// them only sealed to the requester's IBE identity (not to the CPC, not to anyone else).
#[test]
fn grant_pseudonyms_are_accepted_only_sealed_to_the_requester() {
    use dualchain_crypto::ibe::{self, IbePublicParams};
    use dualchain_ledger::state::{grant_key, GrantRecord, GrantStatus};

    let mut w = World::new();
    let engine: Arc<dyn KvEngine> = Arc::new(MemoryEngine::new());
    let grant = |id: u8| GrantRecord {
        id: [id; 32],
        dataset: [4; 32],
        demand: [6; 32],
        requester: "research-1".into(),
        owner: "hospital-a".into(),
        cpc: String::new(),
        granted_ms: T0_MS,
        expires_ms: T0_MS + 3_600_000,
        status: GrantStatus::Active,
        sealed_token: None,
        sealed_pseudonyms: None,
        receipts: 0,
        break_glass: None,
        sealed_pointer: None,
    };
    seed_state(&engine, |o| (1..=4).for_each(|i| o.put(grant_key(&[i; 32]), &grant(i))));
    let ledger = open(engine, &w);
    let mut hospital = w.member("hospital-a", Role::Hospital, None);
    let mut cpc = w.member("cpc-1", Role::Cpc, None);
    let a = batch(&ledger, 2, &[hospital.register().to_bytes(), cpc.register().to_bytes()]).unwrap().unwrap();
    assert!(outcomes(&a).iter().all(Outcome::is_accepted), "{:?}", a.txs);

    let (params, _) = IbePublicParams::setup(&mut w.rng, &["kgc", "cpc-1"]).unwrap();
    let mut seal =
        |to: &str| ibe::encrypt(&mut w.rng, &params, to, b"pseudonyms", b"grant-pseudonyms").unwrap().to_bytes();
    let token = seal("cpc-1");
    let rekey = |g: u8, pseudonyms: Vec<u8>| TxKind::IssueReKey {
        grant: [g; 32],
        sealed_token: token.clone(),
        sealed_pseudonyms: pseudonyms,
    };
    let cases = [
        (rekey(1, seal("cpc-1")), Some(Reason::SealedPseudonymsInvalid)),
        (rekey(2, vec![0x44; 90]), Some(Reason::SealedPseudonymsInvalid)),
        (
            rekey(3, vec![0; dualchain_ledger::contracts::access::SEALED_PSEUDONYMS_LEN_MAX + 1]),
            Some(Reason::SealedPseudonymsTooLarge {
                max: dualchain_ledger::contracts::access::SEALED_PSEUDONYMS_LEN_MAX,
            }),
        ),
        (rekey(4, seal("research-1")), None),
    ];
    let payloads: Vec<Vec<u8>> = cases.iter().map(|(k, _)| hospital.tx(k.clone()).to_bytes()).collect();
    let a = batch(&ledger, 3, &payloads).unwrap().unwrap();
    for (i, ((_, want), got)) in cases.iter().zip(outcomes(&a)).enumerate() {
        match want {
            Some(r) => assert_eq!(reason(&got), r, "case {i}: {:?}", a.txs[i].detail),
            None => assert!(got.is_accepted(), "case {i}: {got:?} {:?}", a.txs[i].detail),
        }
    }
    assert!(a.txs[0].detail.as_deref().unwrap_or_default().contains("not to the requester"), "{:?}", a.txs[0].detail);
    // A refused re-key changes nothing; the accepted one records the sealed list.
    assert!(ledger.grant(&[1; 32]).unwrap().unwrap().sealed_token.is_none());
    let g = ledger.grant(&[4; 32]).unwrap().unwrap();
    assert_eq!((g.cpc.as_str(), g.sealed_pseudonyms.is_some()), ("cpc-1", true));
}

/// Only the owner erases a dataset, once; afterwards the record keeps the tombstone and
/// the commitment but not the index, and no demand is accepted for it.
#[test]
fn only_the_owner_erases_a_dataset_and_nothing_is_asked_of_it_afterwards() {
    use dualchain_ledger::state::dataset_key;

    let mut w = World::new();
    let mut hospital = w.member("hospital-a", Role::Hospital, None);
    let mut other = w.member("hospital-b", Role::Hospital, None);
    let mut research = w.member("research-1", Role::ResearchInstitute, None);
    let engine: Arc<dyn KvEngine> = Arc::new(MemoryEngine::new());
    let dataset = [1u8; 32];
    seed_state(&engine, |o| {
        let mut d = hospital_a_dataset(dataset, Default::default());
        d.abe_index = vec![0x33; 64];
        o.put(dataset_key(&dataset), &d)
    });
    let ledger = open(engine, &w);
    let regs = [hospital.register(), other.register(), research.register()];
    batch(&ledger, 2, &regs.iter().map(SignedTx::to_bytes).collect::<Vec<_>>()).unwrap().unwrap();

    let erase =
        |who: &mut Who, reason: &str| who.tx(TxKind::EraseDataset { dataset, reason: reason.into() }).to_bytes();
    let requirement = any_heart_rate(10);
    let payloads = vec![
        erase(&mut other, "not mine"),
        erase(&mut research, "not a hospital"),
        erase(&mut hospital, ""),
        erase(&mut hospital, "patient request (GDPR art. 17)"),
        erase(&mut hospital, "again"),
        research
            .tx(TxKind::Demand { demand: [9; 32], dataset, requirement, purpose: Default::default(), nullifier: None })
            .to_bytes(),
    ];
    let a = batch(&ledger, 3, &payloads).unwrap().unwrap();
    let o = outcomes(&a);
    assert_eq!(reason(&o[0]), &Reason::NotDatasetOwner { owner: "hospital-a".into() });
    assert!(matches!(reason(&o[1]), Reason::RoleRequired { .. }), "{:?}", o[1]);
    assert!(matches!(reason(&o[2]), Reason::TextInvalid { .. }), "{:?}", o[2]);
    assert!(o[3].is_accepted(), "{:?}", a.txs[3].detail);
    assert_eq!(reason(&o[4]), &Reason::DatasetErased);
    assert_eq!(reason(&o[5]), &Reason::DatasetErased);
    let d = ledger.dataset(&dataset).unwrap().unwrap();
    let tombstone = d.erased.expect("the tombstone");
    assert_eq!(tombstone.reason, "patient request (GDPR art. 17)");
    assert!(d.abe_index.is_empty(), "the index is dropped from state");
    assert_eq!(d.commitment, fr(5), "the commitment (hiding) stays");
}

/// Consent (`contracts::consent`): only the owner replaces its datasets' consent
/// commitments, each a field element, 1..=256 distinct datasets, none erased, all or none;
/// a demand's purpose and the requester's role fix the use its supply proof is checked for,
/// against the latest commitment.
#[test]
fn consent_commitments_are_the_owners_and_supply_proofs_are_checked_against_the_latest() {
    use dualchain_ledger::consent::{use_index, Purpose};
    use dualchain_ledger::contracts::consent::COMMITMENTS_MAX;
    use dualchain_ledger::contracts::zk::public_inputs;
    use dualchain_ledger::state::{dataset_key, Overlay};
    use dualchain_ledger::tx::ConsentCommitment;

    let mut w = World::new();
    let mut hospital = w.member("hospital-a", Role::Hospital, None);
    let mut other = w.member("hospital-b", Role::Hospital, None);
    let mut research = w.member("research-1", Role::ResearchInstitute, None);
    let engine: Arc<dyn KvEngine> = Arc::new(MemoryEngine::new());
    let (mine, erased) = ([1u8; 32], [2u8; 32]);
    seed_state(&engine, |o| {
        o.put(dataset_key(&mine), &hospital_a_dataset(mine, Default::default()));
        let mut e = hospital_a_dataset(erased, Default::default());
        e.erased = Some(dualchain_ledger::state::Erasure { at_ms: T0_MS, reason: "patient request".into() });
        o.put(dataset_key(&erased), &e);
    });
    let ledger = open(engine.clone(), &w);
    let regs = [hospital.register(), other.register(), research.register()];
    batch(&ledger, 2, &regs.iter().map(SignedTx::to_bytes).collect::<Vec<_>>()).unwrap().unwrap();

    let c = |dataset: [u8; 32], commitment: FrBytes| ConsentCommitment { dataset, commitment };
    let commit =
        |who: &mut Who, commitments: Vec<ConsentCommitment>| who.tx(TxKind::CommitConsent { commitments }).to_bytes();
    let not_a_field_element = FrBytes([0xff; 32]);
    let payloads = vec![
        commit(&mut other, vec![c(mine, fr(30))]),
        commit(&mut research, vec![c(mine, fr(30))]),
        commit(&mut hospital, vec![]),
        commit(&mut hospital, (0..=COMMITMENTS_MAX).map(|i| c([i as u8; 32], fr(30))).collect()),
        commit(&mut hospital, vec![c(mine, fr(30)), c(mine, fr(31))]),
        commit(&mut hospital, vec![c(mine, fr(30)), c([9; 32], fr(31))]),
        commit(&mut hospital, vec![c(mine, not_a_field_element)]),
        commit(&mut hospital, vec![c(mine, fr(30)), c(erased, fr(31))]),
        commit(&mut hospital, vec![c(mine, fr(32))]),
        research
            .tx(TxKind::Demand {
                demand: [7; 32],
                dataset: mine,
                requirement: any_heart_rate(10),
                purpose: Purpose::Treatment,
                nullifier: None,
            })
            .to_bytes(),
        other
            .tx(TxKind::Demand {
                demand: [8; 32],
                dataset: mine,
                requirement: any_heart_rate(10),
                purpose: Purpose::Research,
                nullifier: None,
            })
            .to_bytes(),
    ];
    let a = batch(&ledger, 3, &payloads).unwrap().unwrap();
    let o = outcomes(&a);
    assert_eq!(reason(&o[0]), &Reason::NotDatasetOwner { owner: "hospital-a".into() });
    assert!(matches!(reason(&o[1]), Reason::RoleRequired { .. }), "{:?}", o[1]);
    assert_eq!(reason(&o[2]), &Reason::ConsentCommitmentsOutOfRange { max: COMMITMENTS_MAX });
    assert_eq!(reason(&o[3]), &Reason::ConsentCommitmentsOutOfRange { max: COMMITMENTS_MAX });
    assert_eq!(reason(&o[4]), &Reason::ConsentDatasetRepeated);
    assert_eq!(reason(&o[5]), &Reason::UnknownDataset);
    assert_eq!(reason(&o[6]), &Reason::ConsentCommitmentInvalid);
    assert_eq!(reason(&o[7]), &Reason::DatasetErased);
    assert!(o[8].is_accepted() && o[9].is_accepted() && o[10].is_accepted(), "{o:?}");
    // The refused ones changed nothing (case 7 named this dataset first): one version on.
    let ds = ledger.dataset(&mine).unwrap().unwrap();
    assert_eq!((ds.consent, ds.consent_version), (fr(32), 1));
    // Each demand's use is its purpose for its requester's role.
    let d7 = ledger.demand(&[7; 32]).unwrap().unwrap();
    let d8 = ledger.demand(&[8; 32]).unwrap().unwrap();
    assert_eq!((d7.purpose, d7.use_index), (Purpose::Treatment, use_index(Purpose::Treatment, "research").unwrap()));
    assert_eq!(d8.use_index, use_index(Purpose::Research, "hospital").unwrap());
    assert_ne!(d7.use_index, d8.use_index);
    // A supply proof of demand 7 is checked against C_D, the requirement, the latest C_K and
    // demand 7's use.
    let proof = hospital.tx(TxKind::SupplyProof { demand: [7; 32], proof: vec![0; 192] });
    let store = dualchain_storage::ledger::LedgerStore::open(engine).unwrap();
    let state = Overlay::new(&store);
    let (_, inputs) = public_inputs(&state, &w.genesis, T0_MS, &proof.tx).unwrap().expect("a supply statement");
    assert_eq!(
        inputs,
        [
            fr(5).to_fr().unwrap(),
            d7.requirement_hash.to_fr().unwrap(),
            fr(32).to_fr().unwrap(),
            blstrs::Scalar::from(u64::from(d7.use_index))
        ]
    );
}

/// Break-glass (`contracts::emergency`): the identity checks all hold, the purpose and the
/// time are limited, the scope is sealed to the owner, a clinician has at most
/// `OPEN_MAX` uses awaiting review; only the owner grants, within the request's time and
/// before its review; a review is the owner's, once, and an unjustified one ends the
/// grants it made.
#[test]
fn break_glass_is_limited_granted_by_its_owner_and_reviewed_once() {
    use dualchain_crypto::ibe::{self, IbePublicParams};
    use dualchain_ledger::contracts::emergency::{DURATION_MAX_S, OPEN_MAX};
    use dualchain_ledger::state::{dataset_key, GrantStatus};

    let mut w = World::new();
    let mut owner = w.member("hospital-a", Role::Hospital, None);
    let mut clinician = w.member("hospital-b", Role::Hospital, None);
    let mut uncredentialed = w.member("hospital-c", Role::Hospital, None);
    let mut research = w.member("research-1", Role::ResearchInstitute, None);
    let mut cpc = w.member("cpc-1", Role::Cpc, None);
    let mut kgc = w.member("kgc", Role::Kgc, None);
    let engine: Arc<dyn KvEngine> = Arc::new(MemoryEngine::new());
    seed_state(&engine, |o| {
        o.put(dataset_key(&[1; 32]), &hospital_a_dataset([1; 32], Default::default()));
        let mut theirs = hospital_a_dataset([2; 32], Default::default());
        theirs.owner = "hospital-b".into();
        o.put(dataset_key(&[2; 32]), &theirs);
    });
    let ledger = open(engine, &w);
    let at = |seq: u64, time_ms: u64, payloads: Vec<Vec<u8>>| {
        let a = batch_at(&ledger, seq, time_ms, &payloads).unwrap().unwrap();
        (outcomes(&a), a)
    };
    let regs = [&mut owner, &mut clinician, &mut uncredentialed, &mut research, &mut cpc, &mut kgc]
        .map(|m| m.register().to_bytes())
        .to_vec();
    let (o, _) = at(2, T0_MS, regs);
    assert!(o.iter().all(Outcome::is_accepted), "{o:?}");
    let creds = ["hospital-b", "research-1"]
        .iter()
        .enumerate()
        .map(|(i, m)| {
            kgc.tx(TxKind::IssueCredential { member: m.to_string(), leaf: fr(20 + i as u64), anonymous_leaf: None })
                .to_bytes()
        })
        .collect();
    let (o, _) = at(3, T0_MS + 1, creds);
    assert!(o.iter().all(Outcome::is_accepted), "{o:?}");

    let (params, _) = IbePublicParams::setup(&mut w.rng, &["kgc", "cpc-1"]).unwrap();
    let mut seal = |to: &str| ibe::encrypt(&mut w.rng, &params, to, b"sealed", b"test").unwrap().to_bytes();
    let scope = seal("hospital-a");
    let request = |id: u8, owner: &str, purpose: &str, duration_s: u64, sealed_scope: &[u8]| TxKind::BreakGlass {
        request: [id; 32],
        owner: owner.into(),
        purpose: purpose.into(),
        duration_s,
        scope_digest: [0xd1; 32],
        sealed_scope: sealed_scope.to_vec(),
    };
    let t4 = T0_MS + 10_000;
    let (o, a) = at(
        4,
        t4,
        vec![
            research.tx(request(1, "hospital-a", "ETREAT", 3600, &scope)).to_bytes(),
            uncredentialed.tx(request(1, "hospital-a", "ETREAT", 3600, &scope)).to_bytes(),
            clinician.tx(request(1, "hospital-a", "HRESCH", 3600, &scope)).to_bytes(),
            clinician.tx(request(1, "hospital-a", "ETREAT", DURATION_MAX_S + 1, &scope)).to_bytes(),
            clinician.tx(request(1, "hospital-b", "ETREAT", 3600, &scope)).to_bytes(),
            clinician.tx(request(1, "research-1", "ETREAT", 3600, &scope)).to_bytes(),
            clinician.tx(request(1, "hospital-a", "ETREAT", 3600, &seal("hospital-b"))).to_bytes(),
            clinician.tx(request(1, "hospital-a", "ETREAT", 3600, &scope)).to_bytes(),
            clinician.tx(request(2, "hospital-a", "ETREAT", 60, &scope)).to_bytes(),
            clinician.tx(request(3, "hospital-a", "ETREAT", 3600, &scope)).to_bytes(),
            clinician.tx(request(4, "hospital-a", "ETREAT", 3600, &scope)).to_bytes(),
            clinician.tx(request(1, "hospital-a", "ETREAT", 3600, &scope)).to_bytes(),
            clinician.tx(request(6, "hospital-c", "ETREAT", 3600, &seal("hospital-c"))).to_bytes(),
        ],
    );
    assert!(matches!(reason(&o[0]), Reason::RoleRequired { .. }), "{:?}", o[0]);
    assert_eq!(reason(&o[1]), &Reason::NoActiveCredential { member: "hospital-c".into() });
    assert_eq!(reason(&o[2]), &Reason::PurposeUnsupported { allowed: vec!["ETREAT".into()] });
    assert_eq!(reason(&o[3]), &Reason::DurationOutOfRange { max: DURATION_MAX_S });
    assert_eq!(reason(&o[4]), &Reason::BreakGlassOwnerInvalid { owner: "hospital-b".into() });
    assert_eq!(reason(&o[5]), &Reason::BreakGlassOwnerInvalid { owner: "research-1".into() });
    assert_eq!(reason(&o[6]), &Reason::SealedScopeInvalid);
    assert!(a.txs[6].detail.as_deref().unwrap_or_default().contains("not to hospital-a"), "{:?}", a.txs[6].detail);
    assert!(o[7..10].iter().all(Outcome::is_accepted), "{:?}", &a.txs[7..10]);
    assert_eq!(reason(&o[10]), &Reason::BreakGlassUnreviewed { max: OPEN_MAX });
    assert_eq!(reason(&o[11]), &Reason::RequestIdUsed);
    assert!(o[12].is_accepted(), "the limit is per owner: {:?}", a.txs[12].detail);
    let r1 = ledger.break_glass(&[1; 32]).unwrap().unwrap();
    assert_eq!((r1.requester.as_str(), r1.until_ms), ("hospital-b", t4 + 3_600_000));

    let token = seal("cpc-1");
    let grant = |id: u8, dataset: u8, pointer: Vec<u8>| TxKind::BreakGlassGrant {
        request: [1; 32],
        grant: [id; 32],
        dataset: [dataset; 32],
        sealed_token: token.clone(),
        sealed_pseudonyms: vec![],
        sealed_pointer: pointer,
    };
    let pointer = seal("hospital-b");
    let (o, a) = at(
        5,
        t4 + 1,
        vec![
            clinician.tx(grant(9, 1, pointer.clone())).to_bytes(),
            owner.tx(grant(9, 2, pointer.clone())).to_bytes(),
            owner.tx(grant(9, 1, seal("hospital-a"))).to_bytes(),
            owner.tx(grant(9, 1, pointer.clone())).to_bytes(),
            owner.tx(grant(9, 1, pointer.clone())).to_bytes(),
        ],
    );
    assert_eq!(reason(&o[0]), &Reason::NotBreakGlassOwner { owner: "hospital-a".into() });
    assert_eq!(reason(&o[1]), &Reason::NotDatasetOwner { owner: "hospital-b".into() });
    assert_eq!(reason(&o[2]), &Reason::SealedPointerInvalid);
    assert!(o[3].is_accepted(), "{:?}", a.txs[3].detail);
    assert_eq!(reason(&o[4]), &Reason::GrantIdUsed);
    let g = ledger.grant(&[9; 32]).unwrap().unwrap();
    assert_eq!((g.break_glass, g.expires_ms, g.cpc.as_str()), (Some([1; 32]), r1.until_ms, "cpc-1"));
    assert_eq!((g.demand, g.requester.as_str()), ([0; 32], "hospital-b"));
    assert!(g.sealed_token.is_some() && g.sealed_pointer.is_some());

    let review = |justified: bool, revoke_credential: bool| TxKind::ReviewBreakGlass {
        request: [1; 32],
        justified,
        note: "no emergency on record at hospital-b's ED".into(),
        revoke_credential,
    };
    let (o, a) = at(
        6,
        t4 + 2,
        vec![
            clinician.tx(review(true, false)).to_bytes(),
            owner.tx(review(true, true)).to_bytes(),
            owner.tx(review(false, true)).to_bytes(),
            owner.tx(review(true, false)).to_bytes(),
            owner.tx(grant(10, 1, pointer.clone())).to_bytes(),
            clinician.tx(request(5, "hospital-a", "ETREAT", 3600, &scope)).to_bytes(),
        ],
    );
    assert_eq!(reason(&o[0]), &Reason::NotBreakGlassOwner { owner: "hospital-a".into() });
    assert_eq!(reason(&o[1]), &Reason::RevocationOfJustified);
    assert!(o[2].is_accepted(), "{:?}", a.txs[2].detail);
    assert_eq!(reason(&o[3]), &Reason::BreakGlassReviewed);
    assert_eq!(reason(&o[4]), &Reason::BreakGlassReviewed);
    assert!(o[5].is_accepted(), "a review frees a place in the clinician's queue: {:?}", a.txs[5].detail);
    let r1 = ledger.break_glass(&[1; 32]).unwrap().unwrap();
    let verdict = r1.review.expect("reviewed");
    assert!(!verdict.justified && verdict.revoke_credential);
    let reviewed = ledger.active_credential("hospital-b").unwrap();
    assert!(reviewed.is_some() && verdict.credential == reviewed, "the review names the credential to withdraw");
    assert!(
        matches!(ledger.grant(&[9; 32]).unwrap().unwrap().status, GrantStatus::Revoked { .. }),
        "an unjustified use's grants end with its review"
    );

    // Request 2 lasted a minute: after it, its owner grants nothing more under it.
    let late = owner.tx(TxKind::BreakGlassGrant {
        request: [2; 32],
        grant: [11; 32],
        dataset: [1; 32],
        sealed_token: token.clone(),
        sealed_pseudonyms: vec![],
        sealed_pointer: pointer.clone(),
    });
    let (o, _) = at(7, t4 + 61_000, vec![late.to_bytes()]);
    assert_eq!(reason(&o[0]), &Reason::BreakGlassExpired);
    // Once the clinician's credential is withdrawn, its open requests yield nothing more.
    let withdraw = TxKind::RevokeCredential { member: "hospital-b".into(), reason: "misuse".into() };
    let after = TxKind::BreakGlassGrant {
        request: [3; 32],
        grant: [12; 32],
        dataset: [1; 32],
        sealed_token: token.clone(),
        sealed_pseudonyms: vec![],
        sealed_pointer: pointer,
    };
    let (o, _) = at(8, t4 + 62_000, vec![kgc.tx(withdraw).to_bytes(), owner.tx(after).to_bytes()]);
    assert!(o[0].is_accepted(), "{:?}", o[0]);
    assert_eq!(reason(&o[1]), &Reason::NoActiveCredential { member: "hospital-b".into() });
    assert_eq!(ledger.active_credential("hospital-b").unwrap(), None);
    // Issued again later (same position in the tree, a new leaf), it is not the credential
    // the review named: the KGC's node, replaying the review, leaves it.
    let reissue =
        TxKind::IssueCredential { member: "hospital-b".into(), leaf: FrBytes([0x21; 32]), anonymous_leaf: None };
    let (o, _) = at(9, t4 + 63_000, vec![kgc.tx(reissue).to_bytes()]);
    assert!(o[0].is_accepted(), "{:?}", o[0]);
    let now = ledger.active_credential("hospital-b").unwrap();
    assert!(now.is_some() && now != verdict.credential);
    let queue: Vec<[u8; 32]> = ledger.break_glass_to("hospital-a").unwrap().iter().map(|r| r.id).collect();
    assert_eq!(queue, vec![[1; 32], [2; 32], [3; 32], [5; 32]], "the owner's queue, in ledger order");
    assert!(ledger.break_glass_to("hospital-b").unwrap().is_empty());
}

/// Signatures are checked ahead of execution, in parallel, under the keys the previous
/// state holds; a member whose renewal earlier in the same batch changed its key is
/// checked again under the new one: what it signs with the new key reaches its contract,
/// what it signs with the old key after the renewal is refused, and a forged signature is
/// refused either way.
#[test]
fn a_key_renewed_earlier_in_the_batch_decides_the_signatures_after_it() {
    let mut w = World::new();
    let ledger = open(Arc::new(MemoryEngine::new()), &w);
    let mut m = w.four_members(3600);
    let registrations: Vec<Vec<u8>> = m.iter_mut().map(|x| x.register().to_bytes()).collect();
    all_accepted(&ledger, 1, &registrations);

    let Renewal { renewal, with_new, with_old, forged } = w.renew_key(&mut m[1]);
    // Many transactions beside them, so the check ahead runs over many at once.
    let mut others: Vec<Vec<u8>> = (0..64).map(|_| acts(&mut m[2])).collect();
    let mut txs = vec![acts(&mut m[1]), renewal, with_new, with_old, forged];
    txs.append(&mut others);
    let o = outcomes(&batch(&ledger, 2, &txs).unwrap().unwrap());
    assert_eq!(reason(&o[0]), &Reason::UnknownGrant, "signed with the key in effect before the renewal");
    assert!(o[1].is_accepted(), "{o:?}");
    assert_eq!(reason(&o[2]), &Reason::UnknownGrant, "signed with the renewed key: it reached its contract");
    assert_eq!(reason(&o[3]), &Reason::BadSignature, "the old key no longer signs for it");
    assert_eq!(reason(&o[4]), &Reason::BadSignature);
    assert!(o[5..].iter().all(|x| reason(x) == &Reason::UnknownGrant), "{o:?}");
}

/// A pipelined apply: the next batch's signatures checked ahead, against the state before
/// the batch in front of it (which renews a member's key), decide what checking them in
/// place decides: the renewed key's transaction reaches its contract, the old key's and a
/// forged one are refused, and both ledgers end identical. Verdicts made for another batch
/// are not used.
#[test]
fn signatures_checked_a_batch_ahead_decide_as_checked_in_place() {
    let mut w = World::new();
    let (pipelined, in_place) = (open(Arc::new(MemoryEngine::new()), &w), open(Arc::new(MemoryEngine::new()), &w));
    let mut m = w.four_members(3600);
    let registrations: Vec<Vec<u8>> = m.iter_mut().map(|x| x.register().to_bytes()).collect();
    let before = acts(&mut m[1]);
    let Renewal { renewal, with_new, with_old, forged } = w.renew_key(&mut m[1]);
    let others: Vec<Vec<u8>> = (0..32).map(|_| acts(&mut m[2])).collect();
    let second = [vec![before, renewal], others.clone()].concat();
    let third = [vec![with_new, with_old, forged], others[..4].to_vec()].concat();
    fn committed(seq: u64, payloads: &[Vec<u8>]) -> Committed<'_> {
        Committed {
            seq,
            time_ms: T0_MS + seq,
            digest: [seq as u8; 32],
            certificate: vec![7; 10],
            payloads: payloads.iter().map(Vec::as_slice).collect(),
            validator_changes: vec![],
        }
    }
    for ledger in [&pipelined, &in_place] {
        all_accepted(ledger, 1, &registrations);
    }
    // Batch 3 checked while batch 2 is not yet applied; batch 2's own checks were made
    // for another batch and are not used.
    let (ahead_2, ahead_3) =
        (pipelined.presign(&committed(3, &second)).unwrap(), pipelined.presign(&committed(3, &third)).unwrap());
    let a2 = pipelined.apply_presigned(&committed(2, &second), Some(ahead_2)).unwrap().unwrap();
    let a3 = pipelined.apply_presigned(&committed(3, &third), Some(ahead_3)).unwrap().unwrap();
    let b2 = in_place.apply(&committed(2, &second)).unwrap().unwrap();
    let b3 = in_place.apply(&committed(3, &third)).unwrap().unwrap();
    assert_eq!(outcomes(&a2), outcomes(&b2));
    assert_eq!(outcomes(&a3), outcomes(&b3));
    let o = outcomes(&a3);
    assert_eq!(reason(&o[0]), &Reason::UnknownGrant, "signed with the renewed key: it reached its contract");
    assert_eq!(reason(&o[1]), &Reason::BadSignature, "the old key no longer signs for it");
    assert_eq!(reason(&o[2]), &Reason::BadSignature);
    assert_eq!(pipelined.fingerprint().unwrap().digest(), in_place.fingerprint().unwrap().digest());
    assert_eq!(pipelined.state_root().unwrap(), in_place.state_root().unwrap());
}

/// Members' keys are decoded once and kept: what is kept is the key the bytes encode, a
/// rotated key (other bytes) is another entry, and bytes that are no valid key (not a
/// point, or of small order) give none, kept or not.
#[test]
fn member_keys_are_decoded_once_and_invalid_ones_give_none() {
    let w = World::new();
    let ledger = open(Arc::new(MemoryEngine::new()), &w);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    let (a, b) = (SigningKeypair::generate(&mut rng).public(), SigningKeypair::generate(&mut rng).public());
    for _ in 0..2 {
        assert_eq!(ledger.member_key(a.as_bytes()), Some(a));
        assert_eq!(ledger.member_key(b.as_bytes()), Some(b));
    }
    let mut identity = [0u8; 32];
    identity[0] = 1; // the neutral element: a point, of small order
    assert!(ledger.member_key(&identity).is_none());
    assert!(ledger.member_key(&identity).is_none());
    // Arbitrary bytes: kept or not, the answer is the decoder's.
    let mut refused = 0;
    for i in 0..64u8 {
        let raw = [i, 7, 1, 9, 2, 8, 3, 6, 4, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];
        let decoded = dualchain_crypto::sign::PublicKey::from_raw(&raw).ok();
        refused += usize::from(decoded.is_none());
        for _ in 0..2 {
            assert_eq!(ledger.member_key(&raw), decoded);
        }
    }
    assert!(refused > 0, "some of the bytes are no point");
}

/// A batch's payloads held apart from the ledger, as a validator's consensus archive holds
/// them; what a test does to them is what a damaged archive would show.
#[derive(Default)]
struct Archive(std::sync::Mutex<std::collections::HashMap<u64, Archived>>);

/// A batch's digest and payloads.
type Archived = ([u8; 32], Vec<Vec<u8>>);

impl dualchain_ledger::Batches for Archive {
    fn payloads(&self, seq: u64, digest: &[u8; 32]) -> Result<Arc<[Vec<u8>]>, LedgerError> {
        match self.0.lock().unwrap().get(&seq) {
            Some((d, p)) if d == digest => Ok(p.clone().into()),
            Some(_) => Err(LedgerError::Corrupt(format!("archived batch {seq} has another digest"))),
            None => Err(LedgerError::Corrupt(format!("batch {seq} is not archived"))),
        }
    }
}

/// Blocks refer to the transactions of their batch instead of holding them: a ledger with
/// an archive beside it writes none of them, opens its blocks with the archive's, and
/// refuses, by name, a block whose batch the archive lacks or holds otherwise. A ledger
/// without one keeps each batch once and builds the same blocks.
#[test]
fn blocks_refer_to_their_batch_and_a_ledger_beside_an_archive_keeps_no_transaction() {
    let mut w = World::new();
    let mut kgc = w.member("kgc", Role::Kgc, None);
    let mut hospital = w.member("hospital-a", Role::Hospital, None);
    let payloads = vec![kgc.register().to_bytes(), vec![0xde, 0xad], hospital.register().to_bytes()];

    let archive = Arc::new(Archive::default());
    archive.0.lock().unwrap().insert(1, ([1; 32], payloads.clone()));
    let engine = Arc::new(MemoryEngine::new());
    let beside = open(engine.clone(), &w).with_batches(archive.clone());
    let own_engine = Arc::new(MemoryEngine::new());
    let own = open(own_engine.clone(), &w);
    let (a, b) = (batch(&beside, 1, &payloads).unwrap().unwrap(), batch(&own, 1, &payloads).unwrap().unwrap());
    assert_eq!((a.data, a.access), (b.data, b.access), "the same blocks, kept or not");
    assert_eq!(beside.fingerprint().unwrap(), own.fingerprint().unwrap());

    // No transaction's bytes are written by the ledger beside the archive, in any form.
    let written: Vec<Vec<u8>> = dualchain_storage::Cf::ALL
        .iter()
        .flat_map(|cf| engine.scan(*cf, &[], None, usize::MAX).unwrap())
        .map(|(_, v)| v)
        .collect();
    for p in &payloads {
        let hexed = hex::encode(p).into_bytes();
        for v in &written {
            assert!(!v.windows(p.len()).any(|x| x == p.as_slice()), "a payload was written");
            assert!(!v.windows(hexed.len()).any(|x| x == hexed.as_slice()), "a payload was written in hex");
        }
    }
    let store = dualchain_storage::ledger::LedgerStore::open(engine).unwrap();
    assert!(store.batch(1).unwrap().is_none());
    let kept = dualchain_storage::ledger::LedgerStore::open(own_engine).unwrap();
    assert!(kept.batch(1).unwrap().is_some(), "a ledger without an archive keeps the batch");

    // Blocks open with their transactions, from the archive and from what the other kept.
    for ledger in [&beside, &own] {
        let data = ledger.block(Chain::Data, 0).unwrap().unwrap();
        assert_eq!(
            data.entries.iter().map(|e| e.tx.clone()).collect::<Vec<_>>(),
            vec![payloads[0].clone(), payloads[2].clone()]
        );
        assert_eq!(data.positions, vec![0, 2]);
        let (_, entry) = ledger.tx(&a.txs[2].hash).unwrap().unwrap();
        assert_eq!(entry.tx, payloads[2]);
        let proof = ledger.inclusion_proof(&a.txs[2].hash).unwrap().unwrap();
        assert_eq!(proof.verify().unwrap(), data.hash);
    }

    // An archive that lost the batch, or holds other bytes under it, is named as such.
    let mut swapped = payloads.clone();
    swapped.swap(0, 2);
    archive.0.lock().unwrap().insert(1, ([1; 32], swapped));
    let err = beside.block(Chain::Data, 0).unwrap_err();
    assert!(matches!(&err, LedgerError::Corrupt(m) if m.contains("not its batch's transaction")), "{err}");
    archive.0.lock().unwrap().insert(1, ([1; 32], payloads[..1].to_vec()));
    let err = beside.tx(&a.txs[2].hash).unwrap_err();
    assert!(matches!(&err, LedgerError::Corrupt(m) if m.contains("past its batch's end")), "{err}");
    archive.0.lock().unwrap().insert(1, ([9; 32], payloads.clone()));
    let err = beside.tx(&a.txs[2].hash).unwrap_err();
    assert!(matches!(&err, LedgerError::Corrupt(m) if m.contains("another digest")), "{err}");
    archive.0.lock().unwrap().clear();
    // An inclusion proof reads no transaction: its block names the transaction's hash.
    let data = own.block(Chain::Data, 0).unwrap().unwrap();
    assert_eq!(beside.inclusion_proof(&a.txs[2].hash).unwrap().unwrap().verify().unwrap(), data.hash);
    // Reading one transaction reads that one: the archive's other payload going bad
    // does not stop it, its own going bad does.
    let mut other_bad = payloads.clone();
    other_bad[0] = b"not the kgc's registration".to_vec();
    archive.0.lock().unwrap().insert(1, ([1; 32], other_bad.clone()));
    assert_eq!(beside.tx(&a.txs[2].hash).unwrap().unwrap().1.tx, payloads[2]);
    let err = beside.tx(&a.txs[0].hash).unwrap_err();
    assert!(matches!(&err, LedgerError::Corrupt(m) if m.contains("not its batch's transaction")), "{err}");
    archive.0.lock().unwrap().clear();
    let err = beside.accepted_txs_since(Default::default()).unwrap_err();
    assert!(matches!(&err, LedgerError::Corrupt(m) if m.contains("not archived")), "{err}");
}

/// A block written before blocks referred to their batch (version 2, transactions inline)
/// still opens as it was written, and keeps its hash.
#[test]
fn a_version_2_block_still_opens_with_its_transactions_inline() {
    use dualchain_ledger::block::{BlockHeader, ChainName, Entry};
    let entries = vec![
        Entry { tx: vec![1, 2, 3], outcome: Outcome::Accepted },
        Entry { tx: vec![4], outcome: Outcome::Rejected { reason: Reason::Duplicate } },
    ];
    let leaves: Vec<_> = entries.iter().map(Entry::leaf).collect();
    let header = BlockHeader {
        version: 2,
        chain: ChainName::Access,
        seq: 3,
        time_ms: T0_MS,
        batch_digest: [3; 32],
        entries_root: dualchain_ledger::merkle::root(&leaves),
        entries: 2,
        state_root: [0; 32],
    };
    let stored = dualchain_storage::ledger::StoredBlock::new(
        0,
        [0; 32],
        Default::default(),
        serde_json::to_vec(&header).unwrap(),
        serde_json::to_vec(&entries).unwrap(),
    );
    let block =
        Block::open(&stored, |_, _| -> Result<Vec<Vec<u8>>, LedgerError> { panic!("no batch is read") }).unwrap();
    assert_eq!(block.entries, entries);
    assert!(block.positions.is_empty());
    assert_eq!(block.inclusion_proof(&stored, 1).unwrap().verify().unwrap(), stored.hash);
    // One entry, and a proof, from the stored block alone: the same.
    let one = Block::open_entry(&stored, 1, |_, _, _| panic!("no batch is read")).unwrap();
    assert_eq!(one.as_ref(), Some(&entries[1]));
    assert_eq!(Block::open_entry(&stored, 2, |_, _, _| panic!("no batch is read")).unwrap(), None);
    assert_eq!(Block::proof_of(&stored, 1).unwrap(), block.inclusion_proof(&stored, 1));
    assert_eq!(Block::proof_of(&stored, 2).unwrap(), None);
    // A block sealed with a root its entries do not make: a whole open and a proof name
    // it (reading one entry trusts the block hash the store checked, see open_entry).
    let mut wrong = header.clone();
    wrong.entries_root = [7; 32];
    let bad = dualchain_storage::ledger::StoredBlock::new(
        0,
        [0; 32],
        Default::default(),
        serde_json::to_vec(&wrong).unwrap(),
        serde_json::to_vec(&entries).unwrap(),
    );
    for err in [Block::proof_of(&bad, 0).unwrap_err(), Block::open(&bad, |_, _| Ok(Vec::<Vec<u8>>::new())).unwrap_err()]
    {
        assert!(err.to_string().contains("do not match its header"), "{err}");
    }
    // A version this build does not know is refused by name.
    let mut future = header;
    future.version = 4;
    let stored = dualchain_storage::ledger::StoredBlock::new(
        0,
        [0; 32],
        Default::default(),
        serde_json::to_vec(&future).unwrap(),
        b"[]".to_vec(),
    );
    let err = Block::open(&stored, |_, _| Ok(Vec::<Vec<u8>>::new())).unwrap_err();
    assert!(err.to_string().contains("version 4"), "{err}");
}
