//! CP-ABE (AC17 via rabe) public keys, master keys, user keys and ciphertexts, picked by
//! their own type tag, then used as a node would use one from outside: a ciphertext is
//! decrypted with a fixture key, a user key decrypts a fixture ciphertext, a public key
//! encrypts, a master key issues a key. rabe indexes and unwraps freely, so the decoder
//! must refuse everything that would reach such a panic. Never panics; whatever decodes
//! re-encodes to the same bytes.
#![no_main]

use dualchain_crypto::abe::ac17::{Ac17, Ac17Ciphertext, Ac17MasterKey, Ac17PublicKey, Ac17UserKey};
use dualchain_crypto::abe::{AbeScheme, Policy};
use dualchain_crypto::encoding::tags;
use dualchain_fuzz::abe::{abe_world, attributes, POLICY};
use dualchain_fuzz::decode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let w = abe_world();
    match data.first().copied() {
        Some(tags::ABE_PUBLIC_KEY) => {
            if let Some(pk) = decode::<Ac17PublicKey>(data) {
                let policy = Policy::parse(POLICY).expect("fixture policy");
                let _ = Ac17::encrypt(&pk, &policy, b"m");
            }
        }
        Some(tags::ABE_MASTER_KEY) => {
            if let Some(msk) = decode::<Ac17MasterKey>(data) {
                let _ = Ac17::keygen(&msk, &attributes());
            }
        }
        Some(tags::ABE_USER_KEY) => {
            if let Some(key) = decode::<Ac17UserKey>(data) {
                let _ = Ac17::decrypt(&key, &w.ct);
                let _ = Ac17::attributes(&key);
            }
        }
        Some(tags::ABE_CIPHERTEXT) => {
            if let Some(ct) = decode::<Ac17Ciphertext>(data) {
                let _ = Ac17::decrypt(&w.key, &ct);
                let _ = Ac17::policy(&ct).canonical();
            }
        }
        _ => {}
    }
});
