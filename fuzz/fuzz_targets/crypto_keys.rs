//! The crypto codec's keys, certificates and IBE objects, picked by their own type tag
//! (the encoding's first byte), then the checks a node runs on such an object from
//! outside: certificate verification against the consortium CA, IBE key-request proofs,
//! key-share verification, the authority chain, IBE decryption. Never panics; whatever
//! decodes re-encodes to the same bytes.
#![no_main]

use dualchain_crypto::cert::{CaPublicKey, Certificate, NoRevocations};
use dualchain_crypto::encoding::tags;
use dualchain_crypto::ibe::{AuthoritySecret, IbeCiphertext, IbePrivateKey, IbePublicParams, KeyRequest, KeyShare};
use dualchain_crypto::sign::SigningKeypair;
use dualchain_fuzz::decode;
use dualchain_fuzz::{crypto_world, NOW};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let w = crypto_world();
    match data.first().copied() {
        Some(tags::CA_PUBLIC_KEY) => {
            if let Some(ca) = decode::<CaPublicKey>(data) {
                let _ = w.owner.cert.verify(&ca, NOW, &NoRevocations);
            }
        }
        Some(tags::CERTIFICATE) => {
            if let Some(c) = decode::<Certificate>(data) {
                let _ = c.verify(w.ca.public(), NOW, &NoRevocations);
                let _ = c.subject();
            }
        }
        Some(tags::SIGNING_KEY) => {
            if let Some(k) = decode::<SigningKeypair>(data) {
                let sig = k.sign("fuzz", b"message");
                assert!(k.public().verify("fuzz", b"message", &sig), "a decoded key's signature does not verify");
            }
        }
        Some(tags::IBE_PUBLIC_PARAMS) => {
            if let Some(p) = decode::<IbePublicParams>(data) {
                let _ = p.verify_chain();
                let _ = p.verify_share(&w.request, &w.share);
            }
        }
        Some(tags::IBE_KEY_REQUEST) => {
            if let Some(r) = decode::<KeyRequest>(data) {
                let _ = r.verify_proof();
                let _ = w.ibe_params.verify_share(&r, &w.share);
            }
        }
        Some(tags::IBE_KEY_SHARE) => {
            if let Some(s) = decode::<KeyShare>(data) {
                let _ = w.ibe_params.verify_share(&w.request, &s);
            }
        }
        Some(tags::IBE_PRIVATE_KEY) => {
            if let Some(k) = decode::<IbePrivateKey>(data) {
                let _ = k.decrypt(&w.ibe_ct, b"");
            }
        }
        Some(tags::IBE_CIPHERTEXT) => {
            if let Some(ct) = decode::<IbeCiphertext>(data) {
                let _ = w.ibe_key.decrypt(&ct, b"");
            }
        }
        Some(tags::IBE_AUTHORITY_SECRET) => {
            let _ = decode::<AuthoritySecret>(data);
        }
        _ => {}
    }
});
