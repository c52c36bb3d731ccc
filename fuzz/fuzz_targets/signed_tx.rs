//! `SignedTx::from_bytes` on any request payload (what a client submits and a batch
//! carries), then the contracts' own decoders of the fields the transaction names:
//! certificates, field elements, access policy statements (compiled to both forms), ABE
//! ciphertexts, requirements, Groth16 proofs, IBE-sealed tokens, escrow-sealed identities,
//! delegating keys and pseudonyms. Never panics; an accepted transaction re-encodes to the
//! same bytes with the same hash, its JSON body round-trips, and re-signing it gives a
//! transaction that decodes back to itself.
#![no_main]

use dualchain_crypto::abe::ac17::Ac17Ciphertext;
use dualchain_crypto::cbsre::DelegatingPublicKey;
use dualchain_crypto::cert::Certificate;
use dualchain_crypto::ibe::IbeCiphertext;
use dualchain_crypto::Codec;
use dualchain_ledger::policy::AccessPolicy;
use dualchain_ledger::tx::{tx_hash, SignedTx, Tx, TxKind};
use dualchain_prover::escrow::{Dealing, DecryptionShare, DkgShare, Sealed};
use dualchain_prover::verify::{proof_from_bytes, proof_to_bytes};
use libfuzzer_sys::fuzz_target;

fn proof(bytes: &[u8]) {
    if let Ok(p) = proof_from_bytes(bytes) {
        assert_eq!(proof_to_bytes(&p).as_slice(), bytes, "proof re-encodes differently");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = SignedTx::from_bytes(data) else { return };
    assert_eq!(s.to_bytes(), data, "transaction re-encodes differently");
    assert_eq!(s.hash, tx_hash(data));
    let json = serde_json::to_vec(&s.tx).expect("a decoded transaction serialises");
    let again: Tx = serde_json::from_slice(&json).expect("a transaction's JSON decodes");
    assert_eq!(again, s.tx, "transaction JSON does not round-trip");
    let _ = (s.tx.kind.name(), s.tx.kind.chain());
    let world = dualchain_fuzz::crypto_world();
    let (key, domain) = (&world.owner.signer, dualchain_ledger::tx::TxDomain::of(world.ca.public()));
    let _ = s.verify(&key.public(), &domain);
    if let Ok(resigned) = SignedTx::sign(s.tx.clone(), key, &domain) {
        assert_eq!(SignedTx::from_bytes(&resigned.to_bytes()).as_ref(), Ok(&resigned));
    }
    match &s.tx.kind {
        TxKind::RegisterMember { certificate } => {
            if let Ok(c) = Certificate::from_bytes(certificate) {
                assert_eq!(&c.to_bytes(), certificate);
            }
        }
        TxKind::IssueCredential { leaf, anonymous_leaf, .. } => {
            let _ = leaf.to_fr();
            let _ = anonymous_leaf.map(|l| l.to_fr());
        }
        TxKind::RegisterDataset(reg) => {
            let _ = reg.commitment.to_fr();
            let _ = AccessPolicy::parse(&reg.policy).and_then(|p| p.compile());
            if let Ok(ct) = Ac17Ciphertext::from_bytes(&reg.abe_index) {
                assert_eq!(ct.to_bytes(), reg.abe_index);
            }
            let _ = reg.zk_policy_hash.to_fr();
            let _ = reg.consent.to_fr();
            let _ = reg.disclosure.validate();
        }
        TxKind::Demand { requirement, purpose, nullifier, .. } => {
            let _ = requirement.validate();
            assert_eq!(dualchain_ledger::consent::Purpose::from_code(purpose.code()), Some(*purpose));
            if let Some(n) = nullifier {
                let _ = n.nullifier.to_fr();
                proof(&n.proof);
            }
        }
        TxKind::CommitConsent { commitments } => {
            for c in commitments {
                let _ = c.commitment.to_fr();
            }
        }
        TxKind::SupplyProof { proof: p, .. } => proof(p),
        TxKind::RequestAccess { root, proof: p, .. } => {
            let _ = root.to_fr();
            proof(p);
        }
        TxKind::BreakGlass { sealed_scope, .. } => {
            if let Ok(ct) = IbeCiphertext::from_bytes(sealed_scope) {
                assert_eq!(&ct.to_bytes(), sealed_scope);
            }
        }
        TxKind::IssueReKey { sealed_token, sealed_pseudonyms, .. }
        | TxKind::BreakGlassGrant { sealed_token, sealed_pseudonyms, .. } => {
            for sealed in [sealed_token, sealed_pseudonyms] {
                if let Ok(ct) = IbeCiphertext::from_bytes(sealed) {
                    assert_eq!(&ct.to_bytes(), sealed);
                }
            }
        }
        TxKind::AnonymousDemand(d) => {
            let _ = d.requirement.validate();
            let _ = (d.root.to_fr(), d.nullifier.to_fr());
            if let Ok(sealed) = Sealed::from_bytes(&d.sealed_identity) {
                assert_eq!(sealed.to_bytes(), d.sealed_identity);
            }
            if let Ok(k) = DelegatingPublicKey::from_bytes(&d.delegating_key) {
                assert_eq!(k.to_bytes(), d.delegating_key);
            }
            proof(&d.proof);
            // A pseudonym names exactly one key, by one spelling.
            if let Some(Ok(k)) = dualchain_ledger::tx::pseudonym_key(&s.tx.sender) {
                assert_eq!(dualchain_ledger::tx::pseudonym_of(&k), s.tx.sender);
            }
        }
        TxKind::EscrowDealing { dealing, sealed_shares } => {
            if let Ok(d) = Dealing::from_bytes(dealing) {
                assert_eq!(&d.to_bytes(), dealing);
            }
            for sealed in sealed_shares {
                if let Ok(ct) = IbeCiphertext::from_bytes(sealed) {
                    assert_eq!(&ct.to_bytes(), sealed);
                }
            }
        }
        TxKind::EscrowReveal { share, .. } => {
            if let Ok(s) = DkgShare::from_bytes(share) {
                assert_eq!(&s.to_bytes(), share);
            }
        }
        TxKind::AuditShare { share, .. } => {
            if let Ok(s) = DecryptionShare::from_bytes(share) {
                assert_eq!(&s.to_bytes(), share);
            }
        }
        TxKind::EscrowComplaint { .. } | TxKind::CloseEscrow {} | TxKind::EscrowAck {} | TxKind::OpenAudit { .. } => {}
        TxKind::RevokeCredential { .. }
        | TxKind::RevokeMember { .. }
        | TxKind::AdmitMember { .. }
        | TxKind::ChangeParameters { .. }
        | TxKind::RevokeGrant { .. }
        | TxKind::EraseDataset { .. }
        | TxKind::Receipt { .. }
        | TxKind::Fetched { .. }
        | TxKind::ReviewBreakGlass { .. } => {}
    }
});
