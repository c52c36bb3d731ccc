//! Certificate-based signcryption and proxy re-encryption objects (delegating keys,
//! capsules, signcrypted records, re-key tokens, re-encrypted records), picked by their
//! own type tag, then what a CPC and a requester do with such an object from outside:
//! capsule checks (single and batched, which must agree), signature checks, token
//! checks, batch re-encryption, owner and requester decryption. Never panics; whatever
//! decodes re-encodes to the same bytes.
#![no_main]

use dualchain_crypto::cbsre::{
    Capsule, DelegatingPublicKey, DelegatingSecretKey, ReKeyToken, Reencrypted, Signcrypted,
};
use dualchain_crypto::encoding::tags;
use dualchain_crypto::reencrypt::{reencrypt_records, CpuBackend, ReencryptBackend};
use dualchain_fuzz::decode;
use dualchain_fuzz::{crypto_world, rng, NOW};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let w = crypto_world();
    let owner_key = w.owner.signer.public();
    match data.first().copied() {
        Some(tags::DELEGATING_SECRET) => {
            if let Some(k) = decode::<DelegatingSecretKey>(data) {
                let _ = k.public();
            }
        }
        Some(tags::DELEGATING_PUBLIC) => {
            let _ = decode::<DelegatingPublicKey>(data);
        }
        Some(tags::CAPSULE) => {
            if let Some(c) = decode::<Capsule>(data) {
                let batch = CpuBackend.verify_capsules(&[w.records[0].capsule, c], [5; 32]);
                if c.is_valid() {
                    assert_eq!(batch, Ok(()), "batch verification refuses a valid capsule");
                } else {
                    assert_eq!(batch, Err(vec![1]), "batch verification does not name the invalid capsule");
                }
                assert_eq!(CpuBackend.reencrypt(&w.token.rk, &[c]).len(), 1);
            }
        }
        Some(tags::SIGNCRYPTED) => {
            if let Some(sc) = decode::<Signcrypted>(data) {
                let _ = sc.verify_signature(&owner_key);
                let _ = sc.owner_decrypt(&w.owner.dsk, &owner_key);
                if let Ok(out) = reencrypt_records(&CpuBackend, &w.token, &owner_key, NOW, &[sc], &mut rng(1)) {
                    let _ = out[0].decrypt(&w.requester.dsk, &owner_key);
                }
            }
        }
        Some(tags::REKEY_TOKEN) => {
            if let Some(t) = decode::<ReKeyToken>(data) {
                let _ = t.verify(&owner_key, NOW);
                let _ = t.check_scope(&w.records[0].header);
                if let Ok(out) = reencrypt_records(&CpuBackend, &t, &owner_key, NOW, &w.records, &mut rng(1)) {
                    assert_eq!(out.len(), w.records.len());
                    let _ = out[0].decrypt(&w.requester.dsk, &owner_key);
                }
            }
        }
        Some(tags::REENCRYPTED) => {
            if let Some(r) = decode::<Reencrypted>(data) {
                let _ = r.decrypt(&w.requester.dsk, &owner_key);
            }
        }
        _ => {}
    }
});
