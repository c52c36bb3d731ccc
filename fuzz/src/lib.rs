//! Shared pieces of the fuzz targets and of the seed generator (`src/bin/seeds.rs`):
//! deterministic fixtures built with the crates' own constructors and encoders (every
//! random choice from a seeded ChaCha20, except inside rabe, which draws its own), and the
//! small framing some targets use to cut one input into several byte strings.

use dualchain_crypto::cbsre::{
    signcrypt, DatasetId, DelegatingSecretKey, ReKeyToken, RecordHeader, Reencrypted, Signcrypted, TokenScope,
};
use dualchain_crypto::cert::{AttributeSet, Certificate, CertificateAuthority, CertificateFields, Role};
use dualchain_crypto::ibe::{IbeCiphertext, IbePrivateKey, IbePublicParams, KeyRequest, KeyShare};
use dualchain_crypto::reencrypt::{reencrypt_records, CpuBackend};
use dualchain_crypto::sign::SigningKeypair;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// The time every fixture is valid at (UNIX seconds).
pub const NOW: u64 = 1_790_000_000;
const YEAR: u64 = 365 * 24 * 3600;

/// `data` decoded as a `T`, if it decodes; whatever decodes must re-encode to exactly `data`.
pub fn decode<T: dualchain_crypto::Codec>(data: &[u8]) -> Option<T> {
    let v = T::from_bytes(data).ok()?;
    assert_eq!(v.to_bytes(), data, "{} re-encodes differently", T::NAME);
    Some(v)
}

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

// ---- framing ------------------------------------------------------------------------------

/// Cuts `data` into `n` parts: the first `n - 1` each prefixed by a big-endian `u16` length
/// (clamped to what remains), the last part the rest. Never fails, so every input is used.
pub fn split(mut data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut parts = Vec::with_capacity(n);
    for _ in 1..n {
        let len = match data {
            [a, b, rest @ ..] => {
                data = rest;
                usize::from(u16::from_be_bytes([*a, *b])).min(data.len())
            }
            _ => {
                data = &[];
                0
            }
        };
        let (head, tail) = data.split_at(len);
        parts.push(head);
        data = tail;
    }
    parts.push(data);
    parts
}

/// The inverse of [`split`] (for seeds): every part but the last length-prefixed.
pub fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if i + 1 < parts.len() {
            let len = u16::try_from(p.len()).expect("seed part longer than u16::MAX");
            out.extend_from_slice(&len.to_be_bytes());
        }
        out.extend_from_slice(p);
    }
    out
}

// ---- crypto fixtures ----------------------------------------------------------------------

/// A member with its keys and certificate.
pub struct Member {
    pub signer: SigningKeypair,
    pub dsk: DelegatingSecretKey,
    pub cert: Certificate,
}

fn member(ca: &CertificateAuthority, rng: &mut ChaCha20Rng, id: &str, role: Role, serial: u64) -> Member {
    let signer = SigningKeypair::generate(rng);
    let dsk = DelegatingSecretKey::generate(rng);
    let attributes = AttributeSet::new([format!("role:{}", role.as_str())]).expect("fixture attributes");
    let cert = ca
        .issue(CertificateFields {
            serial,
            subject: id.into(),
            role,
            signing_key: signer.public(),
            delegating_key: dsk.public(),
            attribute_commitment: attributes.commit(&[7; 32]),
            not_before: NOW - 10,
            not_after: NOW + YEAR,
        })
        .expect("fixture certificate");
    Member { signer, dsk, cert }
}

/// A record header of `owner`'s dataset `dataset`.
pub fn header(owner: &str, dataset: &str, index: u64) -> RecordHeader {
    RecordHeader {
        owner: owner.into(),
        dataset: DatasetId::derive(owner, dataset),
        record_index: index,
        created_at: NOW,
        content_type: "fhir-r4:observation".into(),
    }
}

/// A FHIR Observation as a record's plaintext.
pub fn observation(i: u64) -> Vec<u8> {
    format!(
        r#"{{"resourceType":"Observation","id":"obs-{i}","status":"final","valueQuantity":{{"value":{},"unit":"/min"}}}}"#,
        60 + i % 40
    )
    .into_bytes()
}

/// One deterministic instance of every type of the crypto crate's codec (but CP-ABE's), as
/// in its conformance tests, with the keys that open them.
pub struct CryptoWorld {
    pub ca: CertificateAuthority,
    pub owner: Member,
    pub requester: Member,
    /// Records 0 and 1 of the owner's dataset `icu`.
    pub records: Vec<Signcrypted>,
    pub token: ReKeyToken,
    pub reencrypted: Reencrypted,
    pub ibe_params: IbePublicParams,
    pub request: KeyRequest,
    pub share: KeyShare,
    pub ibe_ct: IbeCiphertext,
    pub ibe_key: IbePrivateKey,
    pub authority: dualchain_crypto::ibe::AuthoritySecret,
}

impl CryptoWorld {
    pub fn new() -> Self {
        let mut rng = rng(2026);
        let ca = CertificateAuthority::generate("consortium-ca", &mut rng).expect("fixture CA");
        let owner = member(&ca, &mut rng, "hospital-a", Role::Hospital, 1);
        let requester = member(&ca, &mut rng, "research-1", Role::ResearchInstitute, 2);
        let records: Vec<Signcrypted> = (0..2)
            .map(|i| {
                signcrypt(&mut rng, &owner.signer, &owner.dsk.public(), header("hospital-a", "icu", i), &observation(i))
                    .expect("fixture record")
            })
            .collect();
        let token = ReKeyToken::issue(
            &mut rng,
            &owner.signer,
            &owner.dsk,
            &requester.dsk.public(),
            TokenScope {
                owner: "hospital-a",
                requester: "research-1",
                dataset: DatasetId::derive("hospital-a", "icu"),
                grant_id: [1; 32],
                expiry: NOW + 60,
                records: None,
            },
        )
        .expect("fixture token");
        let reencrypted = reencrypt_records(&CpuBackend, &token, &owner.signer.public(), NOW, &records[..1], &mut rng)
            .expect("fixture re-encryption")
            .remove(0);
        let (ibe_params, secrets) =
            IbePublicParams::setup(&mut rng, &["kgc", "cpc-1", "cpc-2"]).expect("fixture IBE setup");
        let (request, state) = KeyRequest::new(&mut rng, "research-1", &requester.signer).expect("fixture request");
        let none = dualchain_crypto::cert::NoRevocations;
        let trust = dualchain_crypto::cert::TrustContext::new(ca.public(), NOW, &none);
        let mut shares: Vec<KeyShare> = Vec::new();
        for s in &secrets {
            let share =
                s.issue_share(&ibe_params, &request, shares.last(), &requester.cert, &trust).expect("fixture share");
            shares.push(share);
        }
        let ibe_key = state.finish(&ibe_params, &request, &shares).expect("fixture IBE key");
        let ibe_ct =
            dualchain_crypto::ibe::encrypt(&mut rng, &ibe_params, "research-1", b"token", b"").expect("fixture IBE");
        Self {
            ca,
            owner,
            requester,
            records,
            token,
            reencrypted,
            ibe_params,
            request,
            share: shares.remove(0),
            ibe_ct,
            ibe_key,
            authority: secrets[1].clone(),
        }
    }
}

impl Default for CryptoWorld {
    fn default() -> Self {
        Self::new()
    }
}

/// The fixture built once per process (targets that check decoded values against keys).
pub fn crypto_world() -> &'static CryptoWorld {
    static WORLD: std::sync::OnceLock<CryptoWorld> = std::sync::OnceLock::new();
    WORLD.get_or_init(CryptoWorld::new)
}

// ---- consensus fixtures -----------------------------------------------------------------

/// Four replicas' signing keys.
pub fn replica_keys() -> Vec<SigningKeypair> {
    let mut rng = rng(7);
    (0..4).map(|_| SigningKeypair::generate(&mut rng)).collect()
}

/// One signed frame of every consensus message kind, and the records a replica persists
/// (a checkpoint proof, a committed entry, an archived entry), signed by [`replica_keys`].
pub mod consensus {
    use std::sync::Arc;

    use dualchain_consensus::membership::{Epochs, Reconfiguration};
    use dualchain_consensus::message::{
        Available, Batch, BatchReply, CheckpointProof, CheckpointVote, CommittedEntry, Disseminate, FetchBatch,
        FetchState, Forward, Header, Holding, Message, NewView, Phase, Prepared, Refs, Request, Signed, StateReply,
        StateVote, ViewChange, Vote,
    };

    pub fn batch() -> Batch {
        Batch::with_time(
            1_790_000_000_000,
            vec![
                Request { client: 1, id: 1, payload: b"tx one".to_vec() },
                Request { client: 2, id: 7, payload: vec![0xab; 40] },
            ],
        )
    }

    pub fn committed_entry() -> CommittedEntry {
        let keys = super::replica_keys();
        let b = batch();
        let vote = Vote { phase: Phase::Commit, view: 0, seq: 1, digest: b.digest() };
        let certificate = (0..3).map(|i| Signed::sign(&keys[i], i as u8, vote)).collect();
        CommittedEntry { seq: 1, view: 0, batch: Arc::new(b), certificate }
    }

    /// The fixture validators' set grown by a fifth (reached at an endpoint), approved by
    /// three of the four, and the validator sets after it executed at sequence number 5.
    pub fn reconfiguration() -> (Reconfiguration, Epochs) {
        let keys = super::replica_keys();
        let fifth = super::SigningKeypair::generate(&mut super::rng(8));
        let mut members: Vec<_> = keys.iter().enumerate().map(|(i, k)| (i as u8, k.public())).collect();
        members.push((4, fifth.public()));
        let endpoints = vec![(4, b"127.0.0.1:9404 and its certificate".to_vec())];
        let approvals =
            (0..3).map(|i| Reconfiguration::approve(&keys[i], i as u8, 1, &members, &endpoints)).collect();
        let change = Reconfiguration { epoch: 1, members, endpoints, approvals };
        let mut epochs = Epochs::genesis(keys.iter().map(|k| k.public()).collect());
        epochs.schedule(&change.request(), 5, 64, 16).expect("the fixture change is valid");
        (change, epochs)
    }

    pub fn checkpoint_proof() -> CheckpointProof {
        let keys = super::replica_keys();
        let vote = CheckpointVote { seq: 128, digest: [9; 32] };
        CheckpointProof {
            seq: 128,
            digest: [9; 32],
            votes: (0..3).map(|i| Signed::sign(&keys[i], i as u8, vote)).collect(),
        }
    }

    pub fn messages() -> Vec<(&'static str, Message)> {
        let keys = super::replica_keys();
        let b = batch();
        let header = Header { view: 0, seq: 1, digest: b.digest() };
        let pre_prepare = Signed::sign(&keys[0], 0, header);
        let prepare = |i: usize| {
            Signed::sign(&keys[i], i as u8, Vote { phase: Phase::Prepare, view: 0, seq: 1, digest: b.digest() })
        };
        let view_change = Signed::sign(
            &keys[1],
            1,
            ViewChange {
                view: 1,
                checkpoint: checkpoint_proof(),
                prepared: vec![Prepared { pre_prepare: pre_prepare.clone(), prepares: vec![prepare(1), prepare(2)] }],
            },
        );
        // A part, its holders' votes, their certificate and a proposal naming it.
        let part = Batch::new(b.requests().to_vec());
        let holding = |i: usize| Signed::sign(&keys[i], i as u8, Holding { digest: part.digest() });
        let available = Available { digest: part.digest(), votes: (0..3).map(holding).collect() };
        let joined = Batch::join(1_790_000_000_000, &[&part]).expect("one small part joins");
        vec![
            ("forward", Message::Forward(Signed::sign(&keys[1], 1, Forward { requests: b.requests().to_vec() }))),
            ("pre_prepare", Message::PrePrepare(pre_prepare.clone(), Arc::new(b.clone()))),
            ("prepare", Message::Vote(prepare(2))),
            (
                "commit",
                Message::Vote(Signed::sign(
                    &keys[3],
                    3,
                    Vote { phase: Phase::Commit, view: 0, seq: 1, digest: b.digest() },
                )),
            ),
            (
                "checkpoint",
                Message::Checkpoint(Signed::sign(&keys[2], 2, CheckpointVote { seq: 128, digest: [9; 32] })),
            ),
            ("view_change", Message::ViewChange(view_change.clone())),
            (
                "new_view",
                Message::NewView(Signed::sign(
                    &keys[1],
                    1,
                    NewView {
                        view: 1,
                        view_changes: vec![view_change],
                        pre_prepares: vec![Signed::sign(&keys[1], 1, Header { view: 1, ..header })],
                    },
                )),
            ),
            ("fetch_batch", Message::FetchBatch(Signed::sign(&keys[0], 0, FetchBatch { digest: b.digest() }))),
            ("batch_reply", Message::BatchReply(Signed::sign(&keys[3], 3, BatchReply { batch: Arc::new(b.clone()) }))),
            ("fetch_state", Message::FetchState(Signed::sign(&keys[2], 2, FetchState { from_seq: 1 }))),
            (
                "state_reply",
                Message::StateReply(Signed::sign(&keys[0], 0, StateReply { entries: vec![committed_entry()], checkpoint: Default::default() })),
            ),
            ("state_root", Message::StateRoot(Signed::sign(&keys[1], 1, StateVote { seq: 128, root: [3; 32] }))),
            ("disseminate", Message::Disseminate(Signed::sign(&keys[2], 2, Disseminate { part: Arc::new(part.clone()) }))),
            ("holding", Message::Holding(holding(1))),
            ("available", Message::Available(Signed::sign(&keys[2], 2, available.clone()))),
            (
                "propose",
                Message::Propose(
                    Signed::sign(&keys[0], 0, Header { view: 0, seq: 3, digest: joined.digest() }),
                    Arc::new(Refs { time_ms: 1_790_000_000_000, parts: vec![available] }),
                ),
            ),
            (
                "null_pre_prepare",
                Message::PrePrepare(
                    Signed::sign(&keys[0], 0, Header { view: 0, seq: 2, digest: Batch::null().digest() }),
                    Arc::new(Batch::null()),
                ),
            ),
        ]
    }
}

/// Transactions of every kind, blocks and state records, built with the ledger's types.
pub mod ledger {
    use std::collections::BTreeMap;

    use dualchain_crypto::Codec;
    use dualchain_ledger::block::{Block, BlockHeader, ChainName, EntryRef};
    use dualchain_ledger::merkle;
    use dualchain_ledger::reason::Reason;
    use dualchain_ledger::tx::{DatasetRegistration, FrBytes, Outcome, SignedTx, Tx, TxKind};
    use dualchain_prover::supply::Requirement;
    use dualchain_storage::ledger::{BlockRef, StoredBlock};

    pub fn requirement() -> Requirement {
        Requirement {
            code: 88674,
            unit: 1,
            age_lo: 0,
            age_hi: 20,
            sex: 0,
            value_min: Some(40_000),
            value_max: Some(200_000),
            time_from: 29_833_333,
            time_to: 29_833_393,
            threshold: 3,
        }
    }

    /// A well-formed (not valid) Groth16 proof encoding: generators as A, B and C.
    pub fn proof() -> Vec<u8> {
        use group::prime::PrimeCurveAffine;
        let p = bellperson::groth16::Proof::<blstrs::Bls12> {
            a: blstrs::G1Affine::generator(),
            b: blstrs::G2Affine::generator(),
            c: blstrs::G1Affine::generator(),
        };
        dualchain_prover::verify::proof_to_bytes(&p).to_vec()
    }

    /// One transaction of every kind, signed by the fixture owner.
    pub fn txs() -> Vec<(&'static str, SignedTx)> {
        let w = super::crypto_world();
        let one = FrBytes([1; 32]);
        let kinds = vec![
            ("register_member", TxKind::RegisterMember { certificate: w.owner.cert.to_bytes() }),
            ("issue_credential", TxKind::IssueCredential { member: "research-1".into(), leaf: one, anonymous_leaf: None }),
            ("revoke_credential", TxKind::RevokeCredential { member: "research-1".into(), reason: "left".into() }),
            ("revoke_member", TxKind::RevokeMember { member: "research-1".into(), reason: "left".into() }),
            (
                "register_dataset",
                TxKind::RegisterDataset(DatasetRegistration {
                    dataset: [4; 32],
                    commitment: one,
                    capacity: 64,
                    policy: "role:research and dept:icu".into(),
                    abe_index: vec![0x33, 1, 0, 0],
                    zk_policy_hash: one,
                    consent: one,
                    disclosure: Default::default(),
                }),
            ),
            (
                "demand",
                TxKind::Demand {
                    demand: [6; 32],
                    dataset: [4; 32],
                    requirement: requirement(),
                    purpose: dualchain_ledger::consent::Purpose::Treatment,
                    nullifier: None,
                },
            ),
            (
                "demand_nullified",
                TxKind::Demand {
                    demand: [6; 32],
                    dataset: [4; 32],
                    requirement: requirement(),
                    purpose: dualchain_ledger::consent::Purpose::Research,
                    nullifier: Some(dualchain_ledger::tx::DemandNullifier { nullifier: one, proof: proof() }),
                },
            ),
            ("supply_proof", TxKind::SupplyProof { demand: [6; 32], proof: proof() }),
            (
                "request_access",
                TxKind::RequestAccess {
                    request: [8; 32],
                    demand: [6; 32],
                    root: one,
                    proof: proof(),
                    duration_s: 3600,
                },
            ),
            (
                "issue_rekey",
                TxKind::IssueReKey {
                    grant: [9; 32],
                    sealed_token: w.ibe_ct.to_bytes(),
                    sealed_pseudonyms: w.ibe_ct.to_bytes(),
                },
            ),
            ("revoke_grant", TxKind::RevokeGrant { grant: [9; 32], reason: "done".into() }),
            ("erase_dataset", TxKind::EraseDataset { dataset: [4; 32], reason: "patient request".into() }),
            ("receipt", TxKind::Receipt { grant: [9; 32], records: 64, results_digest: [10; 32] }),
            ("fetched", TxKind::Fetched { grant: [9; 32], records: 22, results_digest: [10; 32] }),
            (
                "break_glass",
                TxKind::BreakGlass {
                    request: [11; 32],
                    owner: "hospital-b".into(),
                    purpose: "ETREAT".into(),
                    duration_s: 3600,
                    scope_digest: [12; 32],
                    sealed_scope: w.ibe_ct.to_bytes(),
                },
            ),
            (
                "break_glass_grant",
                TxKind::BreakGlassGrant {
                    request: [11; 32],
                    grant: [13; 32],
                    dataset: [4; 32],
                    sealed_token: w.ibe_ct.to_bytes(),
                    sealed_pseudonyms: vec![],
                    sealed_pointer: w.ibe_ct.to_bytes(),
                },
            ),
            (
                "review_break_glass",
                TxKind::ReviewBreakGlass {
                    request: [11; 32],
                    justified: false,
                    note: "no emergency on record".into(),
                    revoke_credential: true,
                },
            ),
            (
                "commit_consent",
                TxKind::CommitConsent {
                    commitments: vec![dualchain_ledger::tx::ConsentCommitment { dataset: [4; 32], commitment: one }],
                },
            ),
            // Last, so that the kinds before keep their nonces (and their seeds' bytes).
            (
                "admit_member",
                TxKind::AdmitMember {
                    member: "research-1".into(),
                    certificate_sha256: dualchain_ledger::tx::certificate_sha256(&w.requester.cert.to_bytes()),
                },
            ),
            ("change_parameters", TxKind::ChangeParameters { grant_duration_max_s: 7200, membership_quorum: 2 }),
            (
                "anonymous_demand",
                TxKind::AnonymousDemand(dualchain_ledger::tx::AnonymousDemand {
                    demand: [14; 32],
                    dataset: [4; 32],
                    requirement: requirement(),
                    purpose: dualchain_ledger::consent::Purpose::Research,
                    root: one,
                    nullifier: FrBytes([15; 32]),
                    sealed_identity: super::escrow::escrow_world().sealed.to_bytes(),
                    delegating_key: w.requester.dsk.public().to_bytes(),
                    proof: proof(),
                }),
            ),
            (
                "escrow_dealing",
                TxKind::EscrowDealing {
                    dealing: super::escrow::escrow_world().dealings[0].to_bytes(),
                    sealed_shares: vec![w.ibe_ct.to_bytes(); 3],
                },
            ),
            ("escrow_complaint", TxKind::EscrowComplaint { dealer: 2 }),
            (
                "escrow_reveal",
                TxKind::EscrowReveal { recipient: 1, share: super::escrow::escrow_world().shares[3].to_bytes() },
            ),
            ("close_escrow", TxKind::CloseEscrow {}),
            ("escrow_ack", TxKind::EscrowAck {}),
            ("open_audit", TxKind::OpenAudit { pseudonym: format!("anon:{}", "a".repeat(52)), case: "complaint 7".into() }),
            (
                "audit_share",
                TxKind::AuditShare { case: [16; 32], share: super::escrow::escrow_world().decryption[0].to_bytes() },
            ),
        ];
        // Signed for the consortium of the world's CA.
        let domain = dualchain_ledger::tx::TxDomain::of(w.ca.public());
        kinds
            .into_iter()
            .enumerate()
            .map(|(i, (name, kind))| {
                let tx = Tx { sender: "hospital-a".into(), nonce: i as u64 + 1, kind };
                (name, SignedTx::sign(tx, &w.owner.signer, &domain).expect("fixture transaction"))
            })
            .collect()
    }

    /// The digest of the batch the fixture blocks refer to.
    pub const BATCH_DIGEST: [u8; 32] = [2; 32];

    /// The payloads of the batch the fixture blocks refer to: three of [`txs`].
    pub fn batch_payloads() -> Vec<Vec<u8>> {
        txs().into_iter().take(3).map(|(_, tx)| tx.to_bytes()).collect()
    }

    /// [`batch_payloads`] as a ledger keeps them.
    pub fn kept_batch() -> Vec<u8> {
        let payloads = batch_payloads();
        dualchain_ledger::block::encode_kept_batch(&BATCH_DIGEST, &payloads.iter().map(Vec::as_slice).collect::<Vec<_>>())
    }

    /// A stored block at `height` (on an empty chain: 0) referring to the three
    /// transactions of [`batch_payloads`] (one refused), with notes.
    pub fn stored_block(chain: ChainName, height: u64, prev_hash: [u8; 32]) -> StoredBlock {
        let entries: Vec<EntryRef> = batch_payloads()
            .iter()
            .enumerate()
            .map(|(i, tx)| EntryRef {
                at: i as u32,
                tx_hash: dualchain_ledger::tx::tx_hash(tx),
                outcome: if i == 1 { Outcome::Rejected { reason: Reason::UnknownDataset } } else { Outcome::Accepted },
            })
            .collect();
        let leaves: Vec<_> = entries.iter().map(EntryRef::leaf).collect();
        let header = BlockHeader {
            version: dualchain_ledger::block::BLOCK_VERSION,
            chain,
            seq: 1,
            time_ms: 1_790_000_000_000,
            batch_digest: BATCH_DIGEST,
            entries_root: merkle::root(&leaves),
            entries: entries.len() as u32,
            state_root: [3; 32],
        };
        let notes = BTreeMap::from([(1u32, "no dataset 0404…".to_string())]);
        Block::seal(
            height,
            prev_hash,
            BlockRef { height: 0, hash: [0; 32] },
            &header,
            &entries,
            vec![0, 0, 0, 0],
            &notes,
        )
        .expect("fixture block")
    }
}

/// A CP-ABE (AC17) authority, a user key and a ciphertext. rabe draws its own randomness,
/// so these differ from run to run; the seeds keep the ones written once.
pub mod abe {
    use dualchain_crypto::abe::ac17::{Ac17, Ac17Ciphertext, Ac17MasterKey, Ac17PublicKey, Ac17UserKey};
    use dualchain_crypto::abe::{AbeScheme, Policy};
    use dualchain_crypto::cert::AttributeSet;

    pub struct AbeWorld {
        pub pk: Ac17PublicKey,
        pub msk: Ac17MasterKey,
        pub key: Ac17UserKey,
        pub ct: Ac17Ciphertext,
    }

    pub const POLICY: &str = "role:research and (dept:cardiology or dept:icu or dept:oncology)";

    pub fn attributes() -> AttributeSet {
        AttributeSet::new(["role:research", "dept:icu"]).expect("fixture attributes")
    }

    impl AbeWorld {
        pub fn new() -> Self {
            let (pk, msk) = Ac17::setup().expect("ABE setup");
            let key = Ac17::keygen(&msk, &attributes()).expect("ABE key");
            let policy = Policy::parse(POLICY).expect("fixture policy");
            let ct = Ac17::encrypt(&pk, &policy, b"dataset|h1|cpc-1").expect("ABE encryption");
            Self { pk, msk, key, ct }
        }
    }

    impl Default for AbeWorld {
        fn default() -> Self {
            Self::new()
        }
    }

    pub fn abe_world() -> &'static AbeWorld {
        static WORLD: std::sync::OnceLock<AbeWorld> = std::sync::OnceLock::new();
        WORLD.get_or_init(AbeWorld::new)
    }
}

/// A 2-of-3 identity escrow committee after its key generation, one sealed credential
/// index and the decryption shares of authorities 1 and 2 for it.
pub mod escrow {
    use dualchain_prover::escrow::{
        deal, seal, AuthoritySecret, Committee, DecryptionShare, Dealing, DkgShare, EscrowKey, Sealed,
    };

    pub const CONTEXT: &[u8] = b"audit case";
    pub const SEALED_INDEX: u64 = 1234;

    pub struct EscrowWorld {
        pub committee: Committee,
        pub dealings: Vec<Dealing>,
        pub shares: Vec<DkgShare>,
        pub key: EscrowKey,
        pub secrets: Vec<AuthoritySecret>,
        pub sealed: Sealed,
        pub decryption: Vec<DecryptionShare>,
    }

    impl EscrowWorld {
        fn new() -> Self {
            let mut rng = super::rng(17);
            let committee = Committee::new(2, 3).expect("committee");
            let (mut dealings, mut shares) = (Vec::new(), Vec::new());
            for dealer in 1..=3 {
                let (d, s) = deal(&committee, dealer, &mut rng).expect("dealing");
                dealings.push(d);
                shares.extend(s);
            }
            let key = EscrowKey::from_dealings(&committee, &dealings).expect("escrow key");
            let secrets: Vec<AuthoritySecret> = (1..=3)
                .map(|i| AuthoritySecret::from_shares(&committee, i, &dealings, &shares).expect("secret"))
                .collect();
            let (sealed, _) = seal(&key, SEALED_INDEX, &mut rng).expect("sealing");
            let decryption = secrets[..2]
                .iter()
                .map(|s| s.decryption_share(&key, &sealed, CONTEXT, &mut rng).expect("decryption share"))
                .collect();
            Self { committee, dealings, shares, key, secrets, sealed, decryption }
        }
    }

    pub fn escrow_world() -> &'static EscrowWorld {
        static WORLD: std::sync::OnceLock<EscrowWorld> = std::sync::OnceLock::new();
        WORLD.get_or_init(EscrowWorld::new)
    }
}

/// The oblivious gateway's fixture: its key, a request sealed to it, and the client
/// context with the response that answers it.
pub mod oblivious {
    use dualchain_crypto::oblivious::{seal_request, ClientContext, GatewayKey};

    pub const REQUEST: &[u8] = br#"{"op":"submit","tx":"00"}"#;

    pub struct ObliviousWorld {
        pub gateway: GatewayKey,
        pub request: Vec<u8>,
        pub client: ClientContext,
        pub response: Vec<u8>,
    }

    pub fn oblivious_world() -> &'static ObliviousWorld {
        static WORLD: std::sync::OnceLock<ObliviousWorld> = std::sync::OnceLock::new();
        WORLD.get_or_init(|| {
            let mut rng = super::rng(23);
            let gateway = GatewayKey::generate(1, &mut rng);
            let (request, client) = seal_request(&gateway.config(), REQUEST, &mut rng).expect("sealing");
            let (_, answer) = gateway.open_request(&request).expect("the fixture's request opens");
            let response = answer.seal(b"{\"records\":[]}", &mut rng);
            ObliviousWorld { gateway, request, client, response }
        })
    }
}

/// A store populated by the stores' own writers (ledger, consensus, CPC), and every record
/// any of them ever wrote, redo intents included.
pub mod storage {
    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};

    use dualchain_consensus::replica::{split_archive, split_record};
    use dualchain_crypto::reencrypt::CpuBackend;
    use dualchain_ledger::block::ChainName;
    use dualchain_ledger::tx::Hash;
    use dualchain_storage::consensus::{ConsensusStore, LogWrite};
    use dualchain_storage::cpc::CpcStore;
    use dualchain_storage::engine::{Entry, Op};
    use dualchain_storage::ledger::{Chain, CommittedBatch, LedgerStore, TxLocation};
    use dualchain_storage::memory::MemoryEngine;
    use dualchain_storage::{Cf, KvEngine, Result, WriteBatch};

    /// An engine without atomic batches (so writers leave redo intents) that remembers the
    /// key of every put.
    #[derive(Default)]
    struct Recorder {
        inner: MemoryEngine,
        puts: Mutex<BTreeSet<(Cf, Vec<u8>)>>,
    }

    impl KvEngine for Recorder {
        fn name(&self) -> &'static str {
            "recorder"
        }
        fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
            self.inner.get(cf, key)
        }
        fn write(&self, batch: WriteBatch) -> Result<()> {
            let mut puts = self.puts.lock().unwrap_or_else(|e| e.into_inner());
            for op in &batch.ops {
                if let Op::Put { cf, key, .. } = op {
                    puts.insert((*cf, key.clone()));
                }
            }
            self.inner.write(batch)
        }
        fn scan(&self, cf: Cf, from: &[u8], to: Option<&[u8]>, limit: usize) -> Result<Vec<Entry>> {
            self.inner.scan(cf, from, to, limit)
        }
        fn atomic_batches(&self) -> bool {
            false
        }
    }

    /// The populated store: its final contents, and every `(cf, key)` ever put with the
    /// value it was put with last (the intent's is read from the intent itself).
    pub struct Populated {
        pub contents: Vec<(Cf, Vec<u8>, Vec<u8>)>,
        pub records: Vec<(Cf, Vec<u8>, Option<Vec<u8>>)>,
        pub tx_hashes: Vec<Hash>,
        pub block_hashes: Vec<(Chain, [u8; 32])>,
    }

    pub const GRANT: [u8; 32] = [1; 32];

    fn populate() -> Populated {
        let w = super::crypto_world();
        let engine = Arc::new(Recorder::default());
        let dyn_engine: Arc<dyn KvEngine> = engine.clone();

        let ledger = LedgerStore::open(dyn_engine.clone()).expect("open ledger store");
        let data = super::ledger::stored_block(ChainName::Data, 0, [0; 32]);
        let access = super::ledger::stored_block(ChainName::Access, 0, [0; 32]);
        let txs: Vec<Hash> = super::ledger::txs().iter().take(3).map(|(_, t)| t.hash).collect();
        let batch = CommittedBatch {
            seq: 1,
            batch: Some(super::ledger::kept_batch()),
            data_block: Some(data.clone()),
            access_block: Some(access.clone()),
            txs: txs
                .iter()
                .enumerate()
                .map(|(i, h)| (*h, TxLocation { chain: Chain::Data, height: 0, position: i as u32 }))
                .collect(),
            state: vec![
                (b"registry".to_vec(), Some(br#"{"next_leaf":1,"epoch":0,"root":null}"#.to_vec())),
                (b"member/hospital-a".to_vec(), Some(b"{}".to_vec())),
            ],
            state_root: Some([3; 32]),
        };
        ledger.apply(&batch).expect("apply a batch");

        let consensus = ConsensusStore::open(dyn_engine.clone()).expect("open consensus store");
        let messages = super::consensus::messages();
        let entry = super::consensus::committed_entry();
        consensus
            .write(&LogWrite {
                // The batch once at each sequence number; the pre-prepare record and the
                // committed entry refer to it.
                batches: [1, 2]
                    .map(|seq| (seq, entry.batch.digest(), entry.batch.encoded().to_vec()))
                    .to_vec(),
                records: vec![(2, split_record(&messages[1].1)), (2, split_record(&messages[2].1))],
                view: Some(1),
                checkpoint: Some((1, super::consensus::checkpoint_proof().to_bytes())),
                stable: Some(1),
                committed: vec![(1, split_archive(&[4; 32], 1_790_000_000_000, &entry))],
                sweep: Vec::new(),
                membership: None,
            })
            .expect("write the consensus log");

        let cpc = CpcStore::open(dyn_engine.clone()).expect("open CPC store");
        let owner_key = w.owner.signer.public();
        cpc.ingest(&owner_key, &w.records).expect("ingest");
        cpc.put_grant(GRANT, w.token.clone(), &owner_key, super::NOW).expect("grant");
        cpc.reencrypt(&GRANT, &CpuBackend, &owner_key, super::NOW, 1, &mut super::rng(3)).expect("re-encrypt");

        let mut contents = Vec::new();
        for cf in Cf::ALL {
            for (k, v) in engine.scan(cf, &[], None, usize::MAX).expect("scan") {
                contents.push((cf, k, v));
            }
        }
        let puts = engine.puts.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let records = puts
            .into_iter()
            .map(|(cf, key)| {
                let v = contents.iter().find(|(c, k, _)| *c == cf && *k == key).map(|(_, _, v)| v.clone());
                (cf, key, v)
            })
            .collect();
        Populated {
            contents,
            records,
            tx_hashes: txs,
            block_hashes: vec![(Chain::Data, data.hash), (Chain::Access, access.hash)],
        }
    }

    pub fn populated() -> &'static Populated {
        static P: std::sync::OnceLock<Populated> = std::sync::OnceLock::new();
        P.get_or_init(populate)
    }
}
