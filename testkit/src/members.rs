//! A ledger on a memory store whose members a test CA registers, for what reads membership
//! without consensus or proofs: the validators' check of forwarded requests
//! (`dualchain_node::validator::MemberRequests`), its test and its benchmark.

use std::sync::Arc;

use anyhow::Result;
use dualchain_consensus::Request;
use dualchain_crypto::cbsre::DelegatingSecretKey;
use dualchain_crypto::cert::{AttributeSet, CertificateAuthority, CertificateFields, Role};
use dualchain_crypto::sign::SigningKeypair;
use dualchain_crypto::Codec;
use dualchain_ledger::tx::{client_id, SignedTx, Tx, TxDomain, TxKind};
use dualchain_ledger::{Applied, Committed, Genesis, Ledger};
use dualchain_prover::backend::CpuBackend;
use dualchain_storage::memory::MemoryEngine;
use dualchain_storage::KvEngine;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// The ledger's time (UNIX seconds) at its first batch.
pub const T0_S: u64 = 1_790_000_000;

/// A ledger and the CA whose members it admits (no proofs: its verifying keys are
/// placeholders).
pub struct MemberLedger {
    pub ledger: Arc<Ledger>,
    pub ca: CertificateAuthority,
    pub rng: ChaCha20Rng,
    seq: u64,
}

impl MemberLedger {
    pub fn new(seed: u64) -> Result<Self> {
        Self::on(Arc::new(MemoryEngine::new()), seed)
    }

    /// The same over `engine` (RocksDB, for what measures the ledger's writes).
    pub fn on(engine: Arc<dyn KvEngine>, seed: u64) -> Result<Self> {
        Self::open(engine, seed, None)
    }

    /// The same, reading its blocks' transactions from `batches` (as a validator's ledger
    /// reads its consensus archive) instead of keeping them.
    pub fn beside(engine: Arc<dyn KvEngine>, seed: u64, batches: Arc<dyn dualchain_ledger::Batches>) -> Result<Self> {
        Self::open(engine, seed, Some(batches))
    }

    fn open(engine: Arc<dyn KvEngine>, seed: u64, batches: Option<Arc<dyn dualchain_ledger::Batches>>) -> Result<Self> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let ca = CertificateAuthority::generate("ca", &mut rng)?;
        let genesis = Genesis::without_proofs(ca.public().clone());
        let mut ledger = Ledger::open(engine, genesis, Arc::new(CpuBackend))?;
        if let Some(b) = batches {
            ledger = ledger.with_batches(b);
        }
        Ok(Self { ledger: Arc::new(ledger), ca, rng, seq: 0 })
    }

    /// Applies `payloads` as the next batch (one block), a millisecond after the last.
    pub fn apply(&mut self, payloads: &[&[u8]]) -> Result<Applied> {
        self.seq += 1;
        let mut digest = [0u8; 32];
        digest[..8].copy_from_slice(&self.seq.to_be_bytes());
        let applied = self.ledger.apply(&Committed {
            seq: self.seq,
            time_ms: T0_S * 1000 + self.seq,
            digest,
            certificate: vec![],
            payloads: payloads.to_vec(),
            validator_changes: vec![],
        })?;
        applied.ok_or_else(|| anyhow::anyhow!("batch {} was already applied", self.seq))
    }

    /// A certificate of `subject` for `key`, valid for an hour from [`T0_S`].
    pub fn certificate(&mut self, subject: &str, role: Role, key: &SigningKeypair) -> Result<Vec<u8>> {
        let cert = self.ca.issue(CertificateFields {
            serial: 1,
            subject: subject.into(),
            role,
            signing_key: key.public(),
            delegating_key: DelegatingSecretKey::generate(&mut self.rng).public(),
            attribute_commitment: AttributeSet::new([format!("role:{}", role.as_str())])?.commit(&[0; 32]),
            not_before: T0_S - 10,
            not_after: T0_S + 3600,
        })?;
        Ok(cert.to_bytes())
    }

    /// Registers `id` (one batch) and returns its signing key.
    pub fn register(&mut self, id: &str, role: Role) -> Result<SigningKeypair> {
        let key = SigningKeypair::generate(&mut self.rng);
        let certificate = self.certificate(id, role, &key)?;
        let stx = self.signed(id, 1, TxKind::RegisterMember { certificate }, &key)?;
        self.apply(&[&stx.to_bytes()])?;
        Ok(key)
    }

    /// `sender`'s transaction, signed with `key` for this ledger's consortium.
    pub fn signed(&self, sender: &str, nonce: u64, kind: TxKind, key: &SigningKeypair) -> Result<SignedTx> {
        signed(sender, nonce, kind, key, self.ledger.tx_domain())
    }
}

/// `sender`'s transaction, signed with `key` for the consortium of `domain`.
pub fn signed(sender: &str, nonce: u64, kind: TxKind, key: &SigningKeypair, domain: &TxDomain) -> Result<SignedTx> {
    Ok(SignedTx::sign(Tx { sender: sender.into(), nonce, kind }, key, domain)?)
}

/// The consensus request that carries a transaction: its sender's client, its nonce.
pub fn request(stx: &SignedTx) -> Request {
    Request { client: client_id(&stx.tx.sender), id: stx.tx.nonce, payload: stx.to_bytes() }
}
