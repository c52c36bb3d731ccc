//! The anonymous path on the ledger (issue 17 item 3): a demand made by a one-time key with
//! a real anonymous policy proof, granted and served without any record naming the member,
//! and opened by t audit authorities. What the member's signature stopped is stopped here
//! too: forgery, replay, reuse of a nullifier beyond the budget, and a revoked credential.
//!
//! The supply proofs in these tests come from a verifying key whose trapdoor the test
//! knows ([`Trapdoor`]): the supply circuit is not what is under test, and its statement
//! is still the one the ledger derives. The anonymous proofs are real Groth16 proofs of
//! the `policy-anonymous` circuit.

use std::path::Path;
use std::sync::Arc;

use bellperson::groth16::{Proof, VerifyingKey};
use blstrs::{Bls12, G1Projective, G2Projective, Scalar as Fr};
use dualchain_crypto::abe::ac17::Ac17;
use dualchain_crypto::abe::AbeScheme;
use dualchain_crypto::cbsre::{signcrypt, DatasetId, DelegatingPublicKey, DelegatingSecretKey, RecordHeader};
use dualchain_crypto::cert::{AttributeSet, CertificateAuthority, CertificateFields, Role};
use dualchain_crypto::ibe::{self, IbePublicParams};
use dualchain_crypto::sign::SigningKeypair;
use dualchain_crypto::Codec;
use dualchain_ledger::contracts::access::ANONYMOUS_PSEUDONYMS_TYPE;
use dualchain_ledger::genesis::{Anonymity, Escrow, Founders};
use dualchain_ledger::policy::{credential_vector, AccessPolicy, Forms};
use dualchain_ledger::reason::{Denial, ProofFault, Reason};
use dualchain_ledger::tx::{
    pseudonym_of, AnonymousDemand, DatasetRegistration, DemandNullifier, Disclosure, FrBytes, Outcome, SignedTx, Tx,
    TxKind,
};
use dualchain_ledger::{Applied, Committed, Genesis, Ledger};
use dualchain_prover::anonymous::{
    nullifier_scope, AnonymousCredential, AnonymousPolicyCircuit, DemandNullifierCircuit,
};
use dualchain_prover::backend::CpuBackend;
use dualchain_prover::escrow::{deal, seal, AuthoritySecret, Committee, Dealing, DkgShare, EscrowKey, Sealed};
use dualchain_prover::groth16::Prover;
use dualchain_prover::params::ProvingKey;
use dualchain_prover::policy::{key_hash, request_binding};
use dualchain_prover::shapes::{AnyCircuit, Shape};
use dualchain_prover::supply::SupplyShape;
use dualchain_prover::verify::proof_to_bytes;
use dualchain_storage::memory::MemoryEngine;
use ff::Field;
use group::{Curve, Group};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

mod common;
use common::any_heart_rate;

const T0_MS: u64 = 1_790_000_000_000;
const DATASET: [u8; 32] = [0xd5; 32];
/// The audit authorities of an on-chain DKG, in committee order.
const AUTHORITIES: [&str; 3] = ["kgc", "cpc-1", "cpc-2"];
const STATEMENT: &str = "role:research and (dept:icu or dept:cardiology) and clearance>=3";

/// A verifying key made from known secrets, and the forger they allow: a supply proof for
/// any statement (the Groth16 verification equation with every discrete log known).
struct Trapdoor {
    alpha: Fr,
    beta: Fr,
    delta: Fr,
    ic: Vec<Fr>,
    vk: VerifyingKey<Bls12>,
}

impl Trapdoor {
    fn new(inputs: usize, rng: &mut ChaCha20Rng) -> Self {
        let (alpha, beta, delta) = (Fr::random(&mut *rng), Fr::random(&mut *rng), Fr::random(&mut *rng));
        let ic: Vec<Fr> = (0..=inputs).map(|_| Fr::random(&mut *rng)).collect();
        let (g1, g2) = (G1Projective::generator(), G2Projective::generator());
        let vk = VerifyingKey {
            alpha_g1: (g1 * alpha).to_affine(),
            beta_g1: (g1 * beta).to_affine(),
            beta_g2: (g2 * beta).to_affine(),
            gamma_g2: G2Projective::generator().to_affine(),
            delta_g1: (g1 * delta).to_affine(),
            delta_g2: (g2 * delta).to_affine(),
            ic: ic.iter().map(|k| (g1 * k).to_affine()).collect(),
        };
        Self { alpha, beta, delta, ic, vk }
    }

    /// `A = r·G1`, `B = G2`, `C = (r − αβ − Σ x_i·k_i) / δ · G1`.
    fn forge(&self, inputs: &[Fr], rng: &mut ChaCha20Rng) -> Vec<u8> {
        let r = Fr::random(rng);
        let acc = inputs.iter().zip(&self.ic[1..]).fold(self.ic[0], |acc, (x, k)| acc + x * k);
        let c = (r - self.alpha * self.beta - acc) * self.delta.invert().unwrap();
        let proof = Proof::<Bls12> {
            a: (G1Projective::generator() * r).to_affine(),
            b: G2Projective::generator().to_affine(),
            c: (G1Projective::generator() * c).to_affine(),
        };
        proof_to_bytes(&proof).to_vec()
    }
}

/// The audit authorities: 2 of 3 open a sealed identity.
struct Audit {
    committee: Committee,
    dealings: Vec<Dealing>,
    shares: Vec<DkgShare>,
    key: EscrowKey,
}

impl Audit {
    fn new(rng: &mut ChaCha20Rng) -> Self {
        let committee = Committee::new(2, 3).unwrap();
        let (mut dealings, mut shares) = (Vec::new(), Vec::new());
        for dealer in 1..=3 {
            let (d, s) = deal(&committee, dealer, rng).unwrap();
            dealings.push(d);
            shares.extend(s);
        }
        let key = EscrowKey::from_dealings(&committee, &dealings).unwrap();
        Self { committee, dealings, shares, key }
    }

    fn secret(&self, index: u16) -> AuthoritySecret {
        AuthoritySecret::from_shares(&self.committee, index, &self.dealings, &self.shares).unwrap()
    }
}

/// A member with its keys and its anonymous credential's secrets.
struct Member {
    id: String,
    key: SigningKeypair,
    cert: Vec<u8>,
    nonce: u64,
    attributes: AttributeSet,
    salt: Fr,
    nullifier_key: Fr,
}

/// A consortium's ledger with the anonymous path open, its members and the owner's
/// registered dataset.
struct World {
    rng: ChaCha20Rng,
    genesis: Genesis,
    engine: Arc<dyn dualchain_storage::KvEngine>,
    ledger: Ledger,
    audit: Audit,
    supply: Trapdoor,
    forms: Forms,
    pk: ProvingKey,
    named_pk: ProvingKey,
    ibe: IbePublicParams,
    seq: u64,
    /// The ledger time of the last batch.
    now: u64,
    kgc: Member,
    owner: Member,
    cpc: Member,
    cpc2: Member,
    requesters: Vec<Member>,
}

fn tx(m: &mut Member, genesis: &Genesis, kind: TxKind) -> Vec<u8> {
    m.nonce += 1;
    SignedTx::sign(Tx { sender: m.id.clone(), nonce: m.nonce, kind }, &m.key, &genesis.tx_domain()).unwrap().to_bytes()
}

impl World {
    /// Registers everyone, issues the credentials (anonymous leaves for the requesters) and
    /// registers the dataset with `disclosure`; the escrow key fixed at genesis.
    fn new(disclosure: Disclosure) -> Self {
        Self::build(disclosure, false)
    }

    /// [`World::new`] with the escrow key to be made on chain by the audit authorities
    /// kgc, cpc-1 and cpc-2, any two of them.
    fn on_chain_dkg(disclosure: Disclosure) -> Self {
        Self::build(disclosure, true)
    }

    fn build(disclosure: Disclosure, on_chain: bool) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(17);
        let ca = CertificateAuthority::generate("ca", &mut rng).unwrap();
        let audit = Audit::new(&mut rng);
        let supply = Trapdoor::new(Shape::Supply(SupplyShape::Records64).public_inputs(), &mut rng);
        let pk = ProvingKey::cached_for_tests(Shape::AnonymousPolicy, Path::new(env!("CARGO_TARGET_TMPDIR"))).unwrap();
        let named_pk =
            ProvingKey::cached_for_tests(Shape::DemandNullifier, Path::new(env!("CARGO_TARGET_TMPDIR"))).unwrap();
        let genesis = Genesis {
            ca: ca.public().clone(),
            policy_vk: dualchain_ledger::genesis::placeholder_verifying_key(3),
            supply_vks: vec![(SupplyShape::Records64, supply.vk.clone())],
            grant_duration_max_s: 3600,
            revocation_quorum: 2,
            founders: Founders::AnyCertified,
            anonymous: Some(Anonymity {
                vk: pk.vk().clone(),
                demand_nullifier_vk: named_pk.vk().clone(),
                escrow: if on_chain {
                    Escrow::Committee { members: AUTHORITIES.iter().map(|a| a.to_string()).collect(), threshold: 2 }
                } else {
                    Escrow::Fixed(audit.key.clone())
                },
            }),
        };
        let engine: Arc<dyn dualchain_storage::KvEngine> = Arc::new(MemoryEngine::new());
        let ledger = Ledger::open(engine.clone(), genesis.clone(), Arc::new(CpuBackend)).unwrap();
        let member = |id: &str, role: Role, attrs: &[&str], rng: &mut ChaCha20Rng| {
            let key = SigningKeypair::generate(&mut *rng);
            let attributes = AttributeSet::new(attrs.iter().map(|a| a.to_string())).unwrap();
            let cert = ca
                .issue(CertificateFields {
                    serial: 1,
                    subject: id.into(),
                    role,
                    signing_key: key.public(),
                    delegating_key: DelegatingSecretKey::generate(&mut *rng).public(),
                    attribute_commitment: attributes.commit(&[0; 32]),
                    not_before: T0_MS / 1000 - 10,
                    not_after: T0_MS / 1000 + 365 * 86_400,
                })
                .unwrap()
                .to_bytes();
            let (salt, nullifier_key) = (Fr::random(&mut *rng), Fr::random(&mut *rng));
            Member { id: id.into(), key, cert, nonce: 0, attributes, salt, nullifier_key }
        };
        let kgc = member("kgc", Role::Kgc, &["role:kgc"], &mut rng);
        let owner = member("hospital-a", Role::Hospital, &["role:hospital"], &mut rng);
        let cpc = member("cpc-1", Role::Cpc, &["role:cpc"], &mut rng);
        let cpc2 = member("cpc-2", Role::Cpc, &["role:cpc"], &mut rng);
        let requesters = vec![
            member(
                "research-1",
                Role::ResearchInstitute,
                &["role:research", "dept:cardiology", "clearance:4"],
                &mut rng,
            ),
            member("research-2", Role::ResearchInstitute, &["role:research", "dept:icu", "clearance:5"], &mut rng),
            member("research-3", Role::ResearchInstitute, &["role:research", "dept:oncology", "clearance:5"], &mut rng),
        ];
        let forms = AccessPolicy::parse(STATEMENT).unwrap().compile().unwrap();
        let (ibe, _) = IbePublicParams::setup(&mut rng, &["kgc", "cpc-1"]).unwrap();
        let mut w = Self {
            rng,
            genesis,
            engine,
            ledger,
            audit,
            supply,
            forms,
            pk,
            named_pk,
            ibe,
            seq: 0,
            now: T0_MS,
            kgc,
            owner,
            cpc,
            cpc2,
            requesters,
        };

        let mut regs = Vec::new();
        for m in [&mut w.kgc, &mut w.owner, &mut w.cpc, &mut w.cpc2].into_iter().chain(w.requesters.iter_mut()) {
            let certificate = m.cert.clone();
            regs.push(tx(m, &w.genesis, TxKind::RegisterMember { certificate }));
        }
        w.all_accepted(&regs);
        let mut issue = Vec::new();
        for i in 0..w.requesters.len() {
            let r = &w.requesters[i];
            let cred = w.credential(i);
            let leaf = FrBytes::from_fr(
                &dualchain_prover::policy::Credential {
                    attributes: cred.attributes,
                    salt: cred.salt,
                    key_hash: cred.key_hash,
                }
                .leaf(),
            );
            let kind = TxKind::IssueCredential {
                member: r.id.clone(),
                leaf,
                anonymous_leaf: Some(FrBytes::from_fr(&cred.leaf())),
            };
            issue.push(tx(&mut w.kgc, &w.genesis, kind));
        }
        w.all_accepted(&issue);
        let (abe_pk, _) = Ac17::setup().unwrap();
        let abe_index = Ac17::encrypt(&abe_pk, &w.forms.abe, b"{}").unwrap().to_bytes();
        let reg = TxKind::RegisterDataset(DatasetRegistration {
            dataset: DATASET,
            commitment: FrBytes::from_fr(&Fr::from(5u64)),
            capacity: 64,
            policy: STATEMENT.into(),
            abe_index,
            zk_policy_hash: FrBytes::from_fr(&w.forms.dnf.hash()),
            consent: FrBytes::from_fr(&Fr::from(9u64)),
            disclosure,
        });
        let reg = tx(&mut w.owner, &w.genesis, reg);
        w.all_accepted(&[reg]);
        w
    }

    fn credential(&self, i: usize) -> AnonymousCredential {
        let m = &self.requesters[i];
        AnonymousCredential {
            attributes: credential_vector(&m.attributes),
            salt: m.salt,
            key_hash: key_hash(m.key.public().as_bytes()),
            nullifier_key: m.nullifier_key,
        }
    }

    fn time_ms(&self) -> u64 {
        self.now
    }

    fn apply(&mut self, payloads: &[Vec<u8>]) -> Applied {
        self.apply_at(self.time_ms() + 1000, payloads)
    }

    fn apply_at(&mut self, time_ms: u64, payloads: &[Vec<u8>]) -> Applied {
        self.seq += 1;
        self.now = time_ms;
        let seq = self.seq;
        self.ledger
            .apply(&Committed {
                seq,
                time_ms,
                digest: Fr::from(seq).to_bytes_be(),
                certificate: vec![7; 10],
                payloads: payloads.iter().map(Vec::as_slice).collect(),
                validator_changes: vec![],
            })
            .unwrap()
            .unwrap()
    }

    fn all_accepted(&mut self, payloads: &[Vec<u8>]) -> Applied {
        let a = self.apply(payloads);
        for t in &a.txs {
            assert!(
                t.outcome.is_accepted(),
                "{:?}: {:?} {:?}",
                t.tx.as_ref().map(|t| t.kind.name()),
                t.outcome,
                t.detail
            );
        }
        a
    }

    /// Requester `i`'s anonymous demand `demand` on the dataset, spending its `counter`-th
    /// nullifier of the epoch at `time_ms`, signed by a fresh one-time key.
    fn anonymous_demand(&mut self, i: usize, demand: [u8; 32], counter: u16, time_ms: u64) -> Anon {
        let one_time = SigningKeypair::generate(&mut self.rng);
        let delegating = DelegatingSecretKey::generate(&mut self.rng);
        let id = self.requesters[i].id.clone();
        let path = self.ledger.anonymous_credential_path(&id).unwrap().expect("an anonymous leaf");
        let root = self.ledger.credential_root().unwrap().unwrap();
        let ds = self.ledger.dataset(&DATASET).unwrap().unwrap();
        let escrow = self.ledger.escrow_key().unwrap().expect("an escrow key");
        let (_, randomness) = seal(&escrow, 0, &mut self.rng).unwrap();
        let circuit = AnonymousPolicyCircuit {
            credential: self.credential(i),
            path,
            policy: self.forms.dnf.clone(),
            binding: request_binding(&demand, key_hash(one_time.public().as_bytes())),
            scope: nullifier_scope(&DATASET, ds.disclosure.epoch_of(time_ms)),
            budget: ds.disclosure.demands_per_epoch,
            counter,
            escrow_key: escrow.public_key(),
            seal_randomness: randomness,
        };
        let statement = circuit.statement();
        assert_eq!(FrBytes::from_fr(&statement.credential_root), root);
        let (proof, _) =
            Prover::default().prove(&self.pk, AnyCircuit::AnonymousPolicy(Box::new(circuit)), &mut self.rng).unwrap();
        let body = AnonymousDemand {
            demand,
            dataset: DATASET,
            requirement: any_heart_rate(10),
            purpose: Default::default(),
            root,
            nullifier: FrBytes::from_fr(&statement.nullifier),
            sealed_identity: statement.sealed.to_bytes(),
            delegating_key: delegating.public().to_bytes(),
            proof: proof_to_bytes(&proof).to_vec(),
        };
        Anon { one_time, body, nonce: 0 }
    }

    /// Requester `i`'s named demand `demand`, spending its credential's `counter`-th
    /// nullifier of the epoch at `time_ms` with a `demand-nullifier` proof.
    fn named_demand(&mut self, i: usize, demand: [u8; 32], counter: u16, time_ms: u64) -> (DemandNullifier, Vec<u8>) {
        let n = self.demand_nullifier(i, counter, time_ms);
        let kind = TxKind::Demand {
            demand,
            dataset: DATASET,
            requirement: any_heart_rate(10),
            purpose: Default::default(),
            nullifier: Some(n.clone()),
        };
        (n.clone(), tx(&mut self.requesters[i], &self.genesis, kind))
    }

    /// Requester `i`'s `counter`-th nullifier of the epoch at `time_ms`, with its proof.
    fn demand_nullifier(&mut self, i: usize, counter: u16, time_ms: u64) -> DemandNullifier {
        let ds = self.ledger.dataset(&DATASET).unwrap().unwrap();
        let circuit = DemandNullifierCircuit {
            credential: self.credential(i),
            scope: nullifier_scope(&DATASET, ds.disclosure.epoch_of(time_ms)),
            budget: ds.disclosure.demands_per_epoch,
            counter,
        };
        let statement = circuit.statement();
        let id = self.requesters[i].id.clone();
        assert_eq!(self.ledger.anonymous_credential(&id).unwrap(), Some(FrBytes::from_fr(&statement.anonymous_leaf)));
        let (proof, _) =
            Prover::default().prove(&self.named_pk, AnyCircuit::DemandNullifier(circuit), &mut self.rng).unwrap();
        DemandNullifier { nullifier: FrBytes::from_fr(&statement.nullifier), proof: proof_to_bytes(&proof).to_vec() }
    }

    /// The owner's supply proof of `demand`, for the statement the ledger derives.
    fn supply_proof(&mut self, demand: [u8; 32]) -> Vec<u8> {
        let probe = TxKind::SupplyProof { demand, proof: vec![] };
        let probe = Tx { sender: self.owner.id.clone(), nonce: 0, kind: probe };
        let inputs = {
            let store = dualchain_storage::ledger::LedgerStore::open(self.engine()).unwrap();
            let state = dualchain_ledger::state::Overlay::new(&store);
            let time = self.time_ms();
            dualchain_ledger::contracts::zk::public_inputs(&state, &self.genesis, time, &probe).unwrap().unwrap().1
        };
        let proof = self.supply.forge(&inputs, &mut self.rng);
        tx(&mut self.owner, &self.genesis, TxKind::SupplyProof { demand, proof })
    }

    fn engine(&self) -> Arc<dyn dualchain_storage::KvEngine> {
        self.engine.clone()
    }
}

/// An anonymous requester's one-time key and demand.
struct Anon {
    one_time: SigningKeypair,
    body: AnonymousDemand,
    nonce: u64,
}

impl Anon {
    fn pseudonym(&self) -> String {
        pseudonym_of(&self.one_time.public())
    }

    fn sign(&mut self, genesis: &Genesis, kind: TxKind) -> Vec<u8> {
        self.nonce += 1;
        let tx = Tx { sender: self.pseudonym(), nonce: self.nonce, kind };
        SignedTx::sign(tx, &self.one_time, &genesis.tx_domain()).unwrap().to_bytes()
    }

    fn demand(&mut self, genesis: &Genesis) -> Vec<u8> {
        let kind = TxKind::AnonymousDemand(self.body.clone());
        self.sign(genesis, kind)
    }

    fn request(&mut self, genesis: &Genesis, request: [u8; 32]) -> Vec<u8> {
        let kind = TxKind::RequestAccess {
            request,
            demand: self.body.demand,
            root: self.body.root,
            proof: vec![],
            duration_s: 600,
        };
        self.sign(genesis, kind)
    }
}

fn reasons(a: &Applied) -> Vec<Option<Reason>> {
    a.txs.iter().map(|t| t.outcome.reason().cloned()).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The whole flow, demand to fetch: the ledger accepts a real anonymous proof against
/// the statement it derives, and no transaction or record of the flow holds anything
/// that names the member (its id, its keys, its key hash, its leaves, its index). Two
/// audit authorities open the sealed identity to the member; one cannot.
#[test]
fn an_anonymous_demand_is_granted_and_served_without_naming_the_member() {
    let mut w = World::new(Disclosure::default());
    let t = w.time_ms() + 1000;
    let mut anon = w.anonymous_demand(0, [0xa1; 32], 0, t);
    let demand_tx = anon.demand(&w.genesis);
    w.all_accepted(std::slice::from_ref(&demand_tx));
    let supply = w.supply_proof([0xa1; 32]);
    w.all_accepted(&[supply]);
    let request_tx = anon.request(&w.genesis, [0xb1; 32]);
    w.all_accepted(std::slice::from_ref(&request_tx));
    // The demand's nullifier bought one grant: the pseudonym asks no second time.
    let again = anon.request(&w.genesis, [0xb2; 32]);
    assert_eq!(reasons(&w.apply(&[again])), vec![Some(Reason::PseudonymGranted)]);
    assert!(w.ledger.grant(&[0xb2; 32]).unwrap().is_none());

    let pseudonym = anon.pseudonym();
    let grant = w.ledger.grant(&[0xb1; 32]).unwrap().unwrap();
    assert_eq!((grant.requester.as_str(), grant.owner.as_str()), (pseudonym.as_str(), "hospital-a"));
    let rec = w.ledger.pseudonym(&pseudonym).unwrap().unwrap();
    assert_eq!(rec.delegating_key, anon.body.delegating_key, "the re-key is made for the one-time delegating key");

    // The owner's re-key: sealed to the CPC. The patients' pseudonyms cannot be sealed to
    // an anonymous requester's IBE identity (it has none; a pseudonym is no IBE identity,
    // and any identity is refused): they are signcrypted by the owner to the one-time
    // delegating key, the header naming the owner, the grant's dataset and the type.
    let token = ibe::encrypt(&mut w.rng, &w.ibe, "cpc-1", b"token", b"rekey").unwrap().to_bytes();
    let ibe_sealed = ibe::encrypt(&mut w.rng, &w.ibe, "research-1", b"p", b"grant-pseudonyms").unwrap().to_bytes();
    let one_time = DelegatingPublicKey::from_bytes(&anon.body.delegating_key).unwrap();
    let mut signcrypted = |owner: &str, dataset: [u8; 32], content_type: &str| {
        let header = RecordHeader {
            owner: owner.into(),
            dataset: DatasetId(dataset),
            record_index: 0,
            created_at: 0,
            content_type: content_type.into(),
        };
        signcrypt(&mut w.rng, &w.owner.key, &one_time, header, b"pseudonyms").unwrap().to_bytes()
    };
    let sealed = [
        ibe_sealed,
        signcrypted("hospital-a", [0x77; 32], ANONYMOUS_PSEUDONYMS_TYPE),
        signcrypted("hospital-a", DATASET, "fhir-r4:observation"),
        signcrypted("hospital-b", DATASET, ANONYMOUS_PSEUDONYMS_TYPE),
        signcrypted("hospital-a", DATASET, ANONYMOUS_PSEUDONYMS_TYPE),
    ];
    let rekey =
        |t: Vec<u8>, p: Vec<u8>| TxKind::IssueReKey { grant: [0xb1; 32], sealed_token: t, sealed_pseudonyms: p };
    let txs: Vec<Vec<u8>> =
        sealed.iter().map(|p| tx(&mut w.owner, &w.genesis, rekey(token.clone(), p.clone()))).collect();
    let a = w.apply(&txs);
    let invalid = Some(Reason::SealedPseudonymsInvalid);
    assert_eq!(reasons(&a), vec![invalid.clone(), invalid.clone(), invalid.clone(), invalid, None], "{:?}", a.txs);
    let grant = w.ledger.grant(&[0xb1; 32]).unwrap().unwrap();
    assert_eq!(grant.sealed_pseudonyms.as_deref(), Some(&sealed[4][..]));
    let digest = [0x5e; 32];
    let receipt =
        tx(&mut w.cpc, &w.genesis, TxKind::Receipt { grant: [0xb1; 32], records: 64, results_digest: digest });
    let fetched =
        tx(&mut w.cpc, &w.genesis, TxKind::Fetched { grant: [0xb1; 32], records: 64, results_digest: digest });
    w.all_accepted(&[receipt, fetched]);
    let records = w.ledger.access_records(&DATASET).unwrap();
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r.requester == pseudonym));

    // Nothing of the flow names research-1: not the transactions, not the records.
    let member = &w.requesters[0];
    let index = w.ledger.member(&member.id).unwrap().unwrap().credential.unwrap();
    let cred = w.credential(0);
    let identifying: Vec<(&str, Vec<u8>)> = vec![
        ("member id", member.id.as_bytes().to_vec()),
        ("signing key", member.key.public().as_bytes().to_vec()),
        ("signing key (hex)", hex::encode(member.key.public().as_bytes()).into_bytes()),
        ("key hash", FrBytes::from_fr(&cred.key_hash).0.to_vec()),
        ("key hash (hex)", hex::encode(FrBytes::from_fr(&cred.key_hash).0).into_bytes()),
        ("anonymous leaf (hex)", hex::encode(FrBytes::from_fr(&cred.leaf()).0).into_bytes()),
        ("nullifier key (hex)", hex::encode(FrBytes::from_fr(&cred.nullifier_key).0).into_bytes()),
    ];
    let grant_json = serde_json::to_vec(&grant).unwrap();
    let demand_json = serde_json::to_vec(&w.ledger.demand(&[0xa1; 32]).unwrap().unwrap()).unwrap();
    let pseudonym_json = serde_json::to_vec(&rec).unwrap();
    let access_json = serde_json::to_vec(&records).unwrap();
    let seen: Vec<(&str, &Vec<u8>)> = vec![
        ("demand tx", &demand_tx),
        ("request tx", &request_tx),
        ("grant", &grant_json),
        ("demand", &demand_json),
        ("pseudonym", &pseudonym_json),
        ("access records", &access_json),
    ];
    for (what, bytes) in &seen {
        for (name, needle) in &identifying {
            assert!(!contains(bytes, needle), "the {what} holds the member's {name}");
        }
    }
    // The index appears nowhere in clear either: the sealed identity is all there is.
    let sealed = Sealed::from_bytes(&rec.sealed_identity).unwrap();
    let index_json = format!("{}", index + dualchain_ledger::tx::ANONYMOUS_LEAF_OFFSET);
    assert!(!contains(&demand_tx, index_json.as_bytes()) && !contains(&pseudonym_json, index_json.as_bytes()));

    // Two authorities open it, for a named case; the registry maps the index to the member.
    let case = b"audit case 1: demand a1a1";
    let shares: Vec<_> = [1u16, 3]
        .iter()
        .map(|i| w.audit.secret(*i).decryption_share(&w.audit.key, &sealed, case, &mut w.rng).unwrap())
        .collect();
    let opened = w.audit.key.open(&sealed, &shares, case).unwrap();
    assert_eq!(w.ledger.credential_holder(opened).unwrap().unwrap().id, "research-1");
    // One authority alone cannot.
    assert!(w.audit.key.open(&sealed, &shares[..1], case).is_err());
}

/// A credential has `demands_per_epoch` nullifiers per dataset and epoch: each is spent
/// once, a spent one is refused, and the next epoch brings new ones. Forged, replayed,
/// moved and misdirected demands are refused, each with its reason.
#[test]
fn nullifiers_budget_anonymous_demands_and_forgeries_and_replays_are_refused() {
    let mut w = World::new(Disclosure { demands_per_epoch: 2, ..Disclosure::default() });
    let t = w.time_ms() + 1000;
    let mut first = w.anonymous_demand(1, [1; 32], 0, t);
    // Counter 0 again, a fresh key and demand id: the same nullifier.
    let mut again = w.anonymous_demand(1, [2; 32], 0, t);
    let mut second = w.anonymous_demand(1, [3; 32], 1, t);
    assert_eq!(first.body.nullifier, again.body.nullifier);
    assert_ne!(first.body.nullifier, second.body.nullifier, "two requests of one credential do not link");
    let first_tx = first.demand(&w.genesis);
    let a = w.apply(&[first_tx.clone(), again.demand(&w.genesis), second.demand(&w.genesis), first_tx.clone()]);
    assert_eq!(reasons(&a), vec![None, Some(Reason::NullifierSpent), None, Some(Reason::Duplicate)]);
    assert_eq!(w.ledger.nullifier(&first.body.nullifier).unwrap(), Some([1; 32]));

    // Forgeries, each from a fresh one-time key unless it says otherwise.
    let t = w.time_ms() + 1000;
    let fresh = w.anonymous_demand(0, [4; 32], 0, t);
    let mut forged = Vec::new();
    let moved = |mutate: &dyn Fn(&mut AnonymousDemand), rng: &mut ChaCha20Rng| {
        let mut a = Anon { one_time: SigningKeypair::generate(rng), body: fresh.body.clone(), nonce: 0 };
        mutate(&mut a.body);
        a
    };
    // The proof under another one-time key (a front-runner copying it): the binding fails.
    forged.push((moved(&|_| {}, &mut w.rng), Reason::AnonymousProofRefused { proof: ProofFault::Invalid }));
    // Moved to another demand id.
    forged.push((
        moved(&|b| b.demand = [5; 32], &mut w.rng),
        Reason::AnonymousProofRefused { proof: ProofFault::Invalid },
    ));
    // A nullifier that is not the credential's (to dodge the budget).
    let other = FrBytes::from_fr(&Fr::from(77u64));
    forged.push((
        moved(&|b| b.nullifier = other, &mut w.rng),
        Reason::AnonymousProofRefused { proof: ProofFault::Invalid },
    ));
    // The sealed identity of another index (framing another member).
    let (framing, _) = seal(&w.audit.key, 1, &mut ChaCha20Rng::seed_from_u64(3)).unwrap();
    let framing = framing.to_bytes();
    forged.push((
        moved(&|b| b.sealed_identity = framing.clone(), &mut w.rng),
        Reason::AnonymousProofRefused { proof: ProofFault::Invalid },
    ));
    // Malformed parts.
    forged.push((moved(&|b| b.sealed_identity = vec![0x45, 1, 2], &mut w.rng), Reason::SealedIdentityInvalid));
    forged.push((moved(&|b| b.delegating_key = vec![9; 48], &mut w.rng), Reason::DelegatingKeyInvalid));
    forged.push((
        moved(&|b| b.proof = vec![1; 192], &mut w.rng),
        Reason::AnonymousProofRefused { proof: ProofFault::Undecodable },
    ));
    forged.push((moved(&|b| b.nullifier = FrBytes([0xff; 32]), &mut w.rng), Reason::NullifierInvalid));
    let mut payloads: Vec<Vec<u8>> = forged.iter_mut().map(|(a, _)| a.demand(&w.genesis)).collect();
    let mut want: Vec<Option<Reason>> = forged.iter().map(|(_, r)| Some(r.clone())).collect();
    // Signed by the one-time key, but a second spelling of its name (the last character
    // carries 4 padding bits; one is set): not a pseudonym, or one key would have two.
    let mut upper = Anon { one_time: SigningKeypair::generate(&mut w.rng), body: fresh.body.clone(), nonce: 0 };
    let mut respelled = upper.pseudonym();
    let alphabet = "abcdefghijklmnopqrstuvwxyz234567";
    let last = alphabet.find(respelled.pop().unwrap()).unwrap();
    respelled.push(alphabet.as_bytes()[last ^ 1] as char);
    let body = Tx { sender: respelled, nonce: 1, kind: TxKind::AnonymousDemand(fresh.body.clone()) };
    payloads.push(SignedTx::sign(body, &upper.one_time, &w.genesis.tx_domain()).unwrap().to_bytes());
    want.push(Some(Reason::PseudonymInvalid));
    // A pseudonym's demand signed by another key.
    let mut body = Tx { sender: upper.pseudonym(), nonce: 2, kind: TxKind::AnonymousDemand(fresh.body.clone()) };
    let stranger = SigningKeypair::generate(&mut w.rng);
    payloads.push(SignedTx::sign(body.clone(), &stranger, &w.genesis.tx_domain()).unwrap().to_bytes());
    want.push(Some(Reason::BadSignature));
    // A member's own key: that would name it.
    payloads.push(tx(&mut w.requesters[2], &w.genesis, TxKind::AnonymousDemand(fresh.body.clone())));
    want.push(Some(Reason::PseudonymInvalid));
    // A pseudonym that made no demand, and a pseudonym asking what only members may.
    body.kind = TxKind::RequestAccess {
        request: [6; 32],
        demand: [1; 32],
        root: fresh.body.root,
        proof: vec![],
        duration_s: 60,
    };
    payloads.push(upper.sign(&w.genesis, body.kind.clone()));
    want.push(Some(Reason::UnknownPseudonym));
    payloads.push(upper.sign(&w.genesis, TxKind::RevokeCredential { member: "research-1".into(), reason: "x".into() }));
    want.push(Some(Reason::PseudonymNotAllowed));
    let a = w.apply(&payloads);
    assert_eq!(reasons(&a), want);
    assert!(w.ledger.demand(&[4; 32]).unwrap().is_none() && w.ledger.demand(&[5; 32]).unwrap().is_none());

    // Both of the epoch's nullifiers are spent (the circuit proves no counter at or above
    // the budget: `dualchain-prover`'s tests); the next epoch brings fresh ones.
    let next_epoch = T0_MS + 24 * 3_600_000 + 5_000;
    let mut renewed = w.anonymous_demand(1, [7; 32], 0, next_epoch);
    assert_ne!(renewed.body.nullifier, first.body.nullifier);
    let a = w.apply_at(next_epoch, &[renewed.demand(&w.genesis)]);
    assert_eq!(reasons(&a), vec![None]);

    // A consortium whose genesis has no escrow key refuses the path.
    let mut closed = w.genesis.clone();
    closed.anonymous = None;
    let ledger = Ledger::open(Arc::new(MemoryEngine::new()), closed, Arc::new(CpuBackend)).unwrap();
    let a = ledger
        .apply(&Committed {
            seq: 1,
            time_ms: T0_MS,
            digest: [1; 32],
            certificate: vec![7; 10],
            payloads: vec![&fresh_demand(&fresh, &w.genesis, &mut w.rng)],
            validator_changes: vec![],
        })
        .unwrap()
        .unwrap();
    assert_eq!(reasons(&a), vec![Some(Reason::AnonymousPathClosed)]);
}

/// One budget across both paths (docs/privacy.md): a member whose credential has an
/// anonymous leaf spends the same nullifiers with its named demands as with its anonymous
/// ones, so the two together stay within `demands_per_epoch`; before, each path had its
/// own count and one member could ask twice the budget. A named demand without a
/// nullifier, with a nullifier the anonymous path spent, with another member's proof, a
/// nullifier not its credential's or an undecodable proof is refused with its reason; a
/// member with no anonymous leaf demands by name alone and may carry no nullifier.
#[test]
fn named_and_anonymous_demands_of_one_credential_share_one_budget() {
    let mut w = World::new(Disclosure { demands_per_epoch: 2, ..Disclosure::default() });
    let t = w.time_ms() + 1000;
    let bare = |w: &mut World, i: usize, demand: [u8; 32], nullifier: Option<DemandNullifier>| {
        let kind = TxKind::Demand {
            demand,
            dataset: DATASET,
            requirement: any_heart_rate(10),
            purpose: Default::default(),
            nullifier,
        };
        let m = if i == usize::MAX { &mut w.owner } else { &mut w.requesters[i] };
        tx(m, &w.genesis, kind)
    };
    let no_nullifier = bare(&mut w, 1, [1; 32], None);
    let (n0, named0) = w.named_demand(1, [2; 32], 0, t);
    let mut anon0 = w.anonymous_demand(1, [3; 32], 0, t);
    let mut anon1 = w.anonymous_demand(1, [4; 32], 1, t);
    let (n1, named1) = w.named_demand(1, [5; 32], 1, t);
    assert_eq!(n0.nullifier, anon0.body.nullifier, "counter 0 is one nullifier, whichever path spends it");
    assert_eq!(n1.nullifier, anon1.body.nullifier);
    let a = w.apply(&[no_nullifier, named0, anon0.demand(&w.genesis), anon1.demand(&w.genesis), named1]);
    assert_eq!(
        reasons(&a),
        vec![
            Some(Reason::DemandNullifierRequired),
            None,
            Some(Reason::NullifierSpent),
            None,
            Some(Reason::NullifierSpent)
        ]
    );
    assert_eq!(w.ledger.nullifier(&n0.nullifier).unwrap(), Some([2; 32]), "the named demand spent counter 0");
    assert_eq!(w.ledger.demand(&[4; 32]).unwrap().unwrap().requester, anon1.pseudonym());
    // The budget of 2 is spent, one by name and one anonymously; the named count alone
    // (1 of 2) would have let a third through. No counter below the budget is left, so
    // the member's only way on is a nullifier that is not its credential's.
    let mut forged = w.demand_nullifier(1, 0, t);
    forged.nullifier = FrBytes::from_fr(&Fr::from(77u64));
    let over = bare(&mut w, 1, [6; 32], Some(forged));
    // Requester 2's fresh nullifier and proof, copied into requester 0's demand.
    let theirs = w.demand_nullifier(2, 0, t);
    let copied = bare(&mut w, 0, [7; 32], Some(theirs.clone()));
    let mut garbage = w.demand_nullifier(0, 0, t);
    garbage.proof = vec![1; 10];
    let undecodable = bare(&mut w, 0, [8; 32], Some(garbage));
    // What a member with no anonymous leaf may and may not send.
    let owner_named = bare(&mut w, usize::MAX, [9; 32], None);
    let owner_nullified = bare(&mut w, usize::MAX, [10; 32], Some(theirs.clone()));
    // Requester 2's own use of the nullifier requester 0 copied still holds.
    let own = bare(&mut w, 2, [11; 32], Some(theirs));
    let a = w.apply(&[over, copied, undecodable, owner_named, owner_nullified, own]);
    assert_eq!(
        reasons(&a),
        vec![
            Some(Reason::DemandNullifierRefused { proof: ProofFault::Invalid }),
            Some(Reason::DemandNullifierRefused { proof: ProofFault::Invalid }),
            Some(Reason::DemandNullifierRefused { proof: ProofFault::Undecodable }),
            None,
            Some(Reason::DemandNullifierUnexpected),
            None,
        ]
    );
}

fn fresh_demand(a: &Anon, genesis: &Genesis, rng: &mut ChaCha20Rng) -> Vec<u8> {
    let mut copy = Anon { one_time: SigningKeypair::generate(rng), body: a.body.clone(), nonce: 0 };
    copy.demand(genesis)
}

/// Revoking a credential stops its anonymous requests: a pseudonym whose demand predates
/// the revocation is denied access, and its old root no longer carries a new demand.
#[test]
fn revoking_a_credential_stops_its_anonymous_requests() {
    let mut w = World::new(Disclosure::default());
    let t = w.time_ms() + 1000;
    let mut anon = w.anonymous_demand(0, [0x11; 32], 0, t);
    let mut later = w.anonymous_demand(0, [0x12; 32], 1, t);
    w.all_accepted(&[anon.demand(&w.genesis)]);
    let supply = w.supply_proof([0x11; 32]);
    w.all_accepted(&[supply]);
    let revoke = TxKind::RevokeCredential { member: "research-1".into(), reason: "left the study".into() };
    let revoke = tx(&mut w.kgc, &w.genesis, revoke);
    w.all_accepted(&[revoke]);
    let a = w.apply(&[anon.request(&w.genesis, [0x21; 32]), later.demand(&w.genesis)]);
    assert_eq!(
        reasons(&a),
        vec![
            Some(Reason::AccessDenied { denial: Denial::RootPredatesRevocation }),
            Some(Reason::CredentialRootRefused { denial: Denial::RootPredatesRevocation }),
        ]
    );
    assert!(w.ledger.grant(&[0x21; 32]).unwrap().is_none());
    assert!(w.ledger.anonymous_credential_path("research-1").unwrap().is_none(), "its anonymous leaf is gone");
    // The other requesters keep theirs.
    assert!(w.ledger.anonymous_credential_path("research-2").unwrap().is_some());
    assert!(matches!(a.txs[0].outcome, Outcome::Rejected { .. }));
}

/// The audit authorities make the escrow key on chain (joint-Feldman DKG over the ledger,
/// shares IBE-sealed): no one else may deal, a dealing must be the sender's and fit the
/// committee with a share sealed to each authority, a complaint is answered by revealing
/// the share or disqualifies its dealer, and the DKG closes when all dealt with no open
/// complaint or after its window. The key is the qualified dealers' sum, any two
/// authorities open what is sealed under it, and the anonymous path opens with it. An
/// identity is opened on chain only for a case the membership quorum approved, by t
/// authorities' shares bound to that case.
#[test]
fn the_audit_authorities_make_the_escrow_key_on_chain_and_open_only_approved_cases() {
    use dualchain_ledger::contracts::escrow::DKG_WINDOW_MS;

    let mut w = World::on_chain_dkg(Disclosure::default());
    assert!(w.ledger.escrow_key().unwrap().is_none());
    // Until the key forms, the anonymous path is closed.
    let mut early = Anon {
        one_time: SigningKeypair::generate(&mut w.rng),
        body: AnonymousDemand {
            demand: [0x31; 32],
            dataset: DATASET,
            requirement: any_heart_rate(10),
            purpose: Default::default(),
            root: w.ledger.credential_root().unwrap().unwrap(),
            nullifier: FrBytes::from_fr(&Fr::from(3u64)),
            sealed_identity: seal(&w.audit.key, 1, &mut w.rng).unwrap().0.to_bytes(),
            delegating_key: DelegatingSecretKey::generate(&mut w.rng).public().to_bytes(),
            proof: vec![1; 192],
        },
        nonce: 0,
    };
    let a = w.apply(&[early.demand(&w.genesis)]);
    assert_eq!(reasons(&a), vec![Some(Reason::AnonymousPathClosed)]);

    let committee = Committee::new(2, 3).unwrap();
    let dealt: Vec<(Dealing, Vec<DkgShare>)> = (1..=3).map(|k| deal(&committee, k, &mut w.rng).unwrap()).collect();
    let sealed = |shares: &[DkgShare], to: [&str; 3], rng: &mut ChaCha20Rng| -> Vec<Vec<u8>> {
        shares
            .iter()
            .zip(to)
            .map(|(s, id)| ibe::encrypt(rng, &w.ibe, id, &s.to_bytes(), b"escrow-share").unwrap().to_bytes())
            .collect()
    };
    let dealing =
        |k: usize, sealed_shares: Vec<Vec<u8>>| TxKind::EscrowDealing { dealing: dealt[k].0.to_bytes(), sealed_shares };
    let ok1 = sealed(&dealt[0].1, AUTHORITIES, &mut w.rng);
    let wrong_identity = sealed(&dealt[0].1, ["kgc", "kgc", "cpc-2"], &mut w.rng);
    let ok2 = sealed(&dealt[1].1, AUTHORITIES, &mut w.rng);
    let ok3 = sealed(&dealt[2].1, AUTHORITIES, &mut w.rng);
    let g = w.genesis.clone();
    let payloads = vec![
        tx(&mut w.owner, &g, dealing(0, ok1.clone())),
        tx(&mut w.kgc, &g, dealing(1, ok2.clone())),
        tx(&mut w.kgc, &g, dealing(0, wrong_identity)),
        tx(&mut w.kgc, &g, dealing(0, ok1[..2].to_vec())),
        tx(&mut w.kgc, &g, TxKind::EscrowDealing { dealing: vec![0x41, 0, 1], sealed_shares: ok1.clone() }),
        tx(&mut w.kgc, &g, dealing(0, ok1.clone())),
        tx(&mut w.kgc, &g, dealing(0, ok1.clone())),
        tx(&mut w.kgc, &g, TxKind::EscrowAck {}),
    ];
    let a = w.apply(&payloads);
    assert_eq!(
        reasons(&a),
        vec![
            Some(Reason::NotAuditAuthority),
            Some(Reason::EscrowDealingInvalid),
            Some(Reason::SealedShareInvalid { recipient: 2 }),
            Some(Reason::SealedShareInvalid { recipient: 3 }),
            Some(Reason::EscrowDealingInvalid),
            None,
            Some(Reason::EscrowAlreadyDealt),
            Some(Reason::EscrowAckEarly),
        ]
    );
    let first_dealing_ms = w.time_ms();
    // The others deal; kgc accuses both of them. cpc-2 deals last and closes at once, as a
    // dealer that chose the key from the others' commitments would: refused, for no one
    // has acknowledged its shares.
    let payloads = vec![
        tx(&mut w.cpc, &g, dealing(1, ok2)),
        tx(&mut w.cpc2, &g, dealing(2, ok3)),
        tx(&mut w.cpc2, &g, TxKind::CloseEscrow {}),
        tx(&mut w.kgc, &g, TxKind::EscrowComplaint { dealer: 2 }),
        tx(&mut w.kgc, &g, TxKind::EscrowComplaint { dealer: 3 }),
        tx(&mut w.kgc, &g, TxKind::EscrowComplaint { dealer: 2 }),
        tx(&mut w.owner, &g, TxKind::EscrowComplaint { dealer: 1 }),
        tx(&mut w.cpc, &g, TxKind::EscrowComplaint { dealer: 4 }),
        tx(&mut w.cpc, &g, TxKind::CloseEscrow {}),
    ];
    let a = w.apply(&payloads);
    let not_closable = Some(Reason::EscrowNotClosable { window_h: 48 });
    assert_eq!(
        reasons(&a),
        vec![
            None,
            None,
            not_closable.clone(),
            None,
            None,
            Some(Reason::ComplaintExists),
            Some(Reason::NotAuditAuthority),
            Some(Reason::UnknownDealing { dealer: 4 }),
            not_closable.clone(),
        ]
    );
    // cpc-1 answers with the share it owed kgc; cpc-2 cannot answer with anything else.
    let share = |dealer: usize, recipient: usize| dealt[dealer].1[recipient].to_bytes();
    let payloads = vec![
        tx(&mut w.cpc, &g, TxKind::EscrowReveal { recipient: 1, share: share(1, 0) }),
        tx(&mut w.cpc2, &g, TxKind::EscrowReveal { recipient: 1, share: share(2, 2) }),
        tx(&mut w.cpc2, &g, TxKind::EscrowReveal { recipient: 1, share: share(1, 0) }),
        tx(&mut w.cpc2, &g, TxKind::EscrowReveal { recipient: 2, share: share(2, 1) }),
        tx(&mut w.cpc2, &g, TxKind::EscrowReveal { recipient: 1, share: vec![0x42, 9] }),
        // cpc-1 and cpc-2 acknowledge their shares; kgc cannot while its complaint stands.
        tx(&mut w.cpc, &g, TxKind::EscrowAck {}),
        tx(&mut w.cpc, &g, TxKind::EscrowAck {}),
        tx(&mut w.cpc2, &g, TxKind::EscrowAck {}),
        tx(&mut w.kgc, &g, TxKind::EscrowAck {}),
        tx(&mut w.cpc, &g, TxKind::CloseEscrow {}),
    ];
    let a = w.apply(&payloads);
    assert_eq!(
        reasons(&a),
        vec![
            None,
            Some(Reason::RevealInvalid),
            Some(Reason::RevealInvalid),
            Some(Reason::UnknownComplaint),
            Some(Reason::RevealInvalid),
            None,
            Some(Reason::EscrowAlreadyAcked),
            None,
            Some(Reason::EscrowAckEarly),
            not_closable.clone(),
        ]
    );
    assert_eq!(w.ledger.escrow_acks().unwrap(), vec![2, 3]);
    // One window on, no more dealings; the DKG still waits for the complaint. After the
    // second window it closes without cpc-2, whose complaint stands.
    let late = tx(&mut w.cpc, &g, TxKind::CloseEscrow {});
    let a = w.apply_at(first_dealing_ms + DKG_WINDOW_MS, &[late]);
    assert_eq!(reasons(&a), vec![not_closable]);
    let close = tx(&mut w.cpc, &g, TxKind::CloseEscrow {});
    let a = w.apply_at(first_dealing_ms + 2 * DKG_WINDOW_MS, &[close]);
    assert_eq!(reasons(&a), vec![None]);
    let (_, _, record) = w.ledger.escrow_dkg().unwrap();
    assert_eq!(record.unwrap().qualified, vec![1, 2]);
    let key = w.ledger.escrow_key().unwrap().unwrap();
    let qualified = [dealt[0].0.clone(), dealt[1].0.clone()];
    assert_eq!(key, EscrowKey::from_dealings(&committee, &qualified).unwrap());
    let late = tx(&mut w.cpc2, &g, TxKind::EscrowComplaint { dealer: 1 });
    assert_eq!(reasons(&w.apply(&[late])), vec![Some(Reason::EscrowKeyFormed)]);

    // Each authority's secret is the sum of the qualified dealers' shares to it (kgc's from
    // cpc-1 is the revealed one); any two open what is sealed under the key, one cannot.
    let secret = |i: u16| {
        let shares: Vec<DkgShare> = dealt[..2].iter().map(|(_, s)| s[usize::from(i) - 1].clone()).collect();
        AuthoritySecret::from_shares(&committee, i, &qualified, &shares).unwrap()
    };
    let (value, _) = seal(&key, 4_000_000_001, &mut w.rng).unwrap();
    let case = b"audit case 7";
    let shares: Vec<_> =
        [1u16, 3].iter().map(|i| secret(*i).decryption_share(&key, &value, case, &mut w.rng).unwrap()).collect();
    assert_eq!(key.open(&value, &shares, case).unwrap(), 4_000_000_001);
    assert!(key.open(&value, &shares[1..], case).is_err());

    // The anonymous path is open under the key the authorities made.
    let t = w.time_ms() + 1000;
    let mut anon = w.anonymous_demand(1, [0x32; 32], 0, t);
    let a = w.apply_at(t, &[anon.demand(&w.genesis)]);
    assert_eq!(reasons(&a), vec![None]);

    // An audit case: the membership quorum (2) approves, then two authorities' shares
    // open the identity, which the ledger records.
    use dualchain_ledger::contracts::audit::case_id;
    let pseudonym = anon.pseudonym();
    let reason = "complaint 2026-41: demands beyond the study protocol";
    let case = case_id(&pseudonym, reason);
    let open = |by: &mut Member, p: &str| tx(by, &g, TxKind::OpenAudit { pseudonym: p.into(), case: reason.into() });
    let stx = |by: &mut Member, i: u16, context: &[u8], rng: &mut ChaCha20Rng| {
        let sealed = Sealed::from_bytes(&anon.body.sealed_identity).unwrap();
        let s = secret(i).decryption_share(&key, &sealed, context, rng).unwrap();
        tx(by, &g, TxKind::AuditShare { case, share: s.to_bytes() })
    };
    let early = stx(&mut w.kgc, 1, &case, &mut w.rng);
    let payloads =
        vec![open(&mut w.owner, "anon:nobody"), open(&mut w.owner, &pseudonym), open(&mut w.owner, &pseudonym), early];
    let a = w.apply(&payloads);
    assert_eq!(
        reasons(&a),
        vec![
            Some(Reason::UnknownPseudonym),
            None,
            Some(Reason::AuditAlreadyApproved { by: "hospital-a".into() }),
            Some(Reason::AuditCaseNotApproved),
        ]
    );
    let approve = open(&mut w.kgc, &pseudonym);
    w.all_accepted(&[approve]);
    assert!(w.ledger.audit_case(&case).unwrap().unwrap().approved_ms.is_some());
    let payloads = vec![
        stx(&mut w.kgc, 1, b"another case", &mut w.rng),
        stx(&mut w.kgc, 3, &case, &mut w.rng),
        stx(&mut w.owner, 1, &case, &mut w.rng),
        stx(&mut w.kgc, 1, &case, &mut w.rng),
        stx(&mut w.kgc, 1, &case, &mut w.rng),
    ];
    let a = w.apply(&payloads);
    assert_eq!(
        reasons(&a),
        vec![
            Some(Reason::AuditShareInvalid),
            Some(Reason::AuditShareInvalid),
            Some(Reason::NotAuditAuthority),
            None,
            Some(Reason::AuditShareDuplicate),
        ]
    );
    assert!(w.ledger.audit_case(&case).unwrap().unwrap().opening.is_none(), "one share opens nothing");
    let last = stx(&mut w.cpc2, 3, &case, &mut w.rng);
    w.all_accepted(&[last]);
    let opening = w.ledger.audit_case(&case).unwrap().unwrap().opening.unwrap();
    assert_eq!(opening.member.as_deref(), Some("research-2"));
    let late = stx(&mut w.cpc, 2, &case, &mut w.rng);
    assert_eq!(reasons(&w.apply(&[late])), vec![Some(Reason::AuditCaseOpened)]);
}

/// A pseudonym names exactly one key, in one spelling, and is an identifier wherever the
/// consortium names a party; no member can register under a pseudonym's name.
#[test]
fn pseudonyms_name_one_key_each_and_no_member_takes_one() {
    use dualchain_crypto::encoding::check_ident;
    use dualchain_ledger::tx::{is_pseudonym, pseudonym_key};

    let mut rng = ChaCha20Rng::seed_from_u64(3);
    for _ in 0..64 {
        let key = SigningKeypair::generate(&mut rng).public();
        let name = pseudonym_of(&key);
        assert!(is_pseudonym(&name) && check_ident("pseudonym", &name).is_ok(), "{name}");
        assert_eq!(pseudonym_key(&name).unwrap().unwrap(), key);
    }
    assert!(pseudonym_key("research-1").is_none());
    for bad in ["anon:", "anon:abc", "anon:!!", &format!("anon:{}", "a".repeat(60))] {
        assert!(pseudonym_key(bad).unwrap().is_err(), "{bad}");
    }

    let mut w = World::new(Disclosure::default());
    let ca = CertificateAuthority::generate("ca", &mut ChaCha20Rng::seed_from_u64(17)).unwrap();
    let key = SigningKeypair::generate(&mut w.rng);
    let name = pseudonym_of(&key.public());
    let attributes = AttributeSet::new(["role:research"]).unwrap();
    let cert = ca
        .issue(CertificateFields {
            serial: 1,
            subject: name.clone(),
            role: Role::ResearchInstitute,
            signing_key: key.public(),
            delegating_key: DelegatingSecretKey::generate(&mut w.rng).public(),
            attribute_commitment: attributes.commit(&[0; 32]),
            not_before: T0_MS / 1000 - 10,
            not_after: T0_MS / 1000 + 86_400,
        })
        .unwrap();
    let mut m = Member {
        id: name.clone(),
        key,
        cert: cert.to_bytes(),
        nonce: 0,
        attributes,
        salt: Fr::ONE,
        nullifier_key: Fr::ONE,
    };
    let certificate = m.cert.clone();
    let a = w.apply(&[tx(&mut m, &w.genesis.clone(), TxKind::RegisterMember { certificate })]);
    assert_eq!(
        reasons(&a),
        vec![Some(Reason::CertificateRefused { problem: dualchain_ledger::reason::CertProblem::WrongSubject })]
    );
    assert!(w.ledger.member(&name).unwrap().is_none());
}
