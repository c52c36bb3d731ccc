//! `Message::from_bytes` on any frame (what a replica reads from a peer): never panics; a
//! frame that decodes re-encodes to the same bytes (one encoding per message), and the
//! signature check and naming of any decoded message never panic either.
#![no_main]

use std::sync::OnceLock;

use dualchain_consensus::message::{verify_messages, Message};
use dualchain_crypto::sign::PublicKey;
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static [PublicKey] {
    static KEYS: OnceLock<Vec<PublicKey>> = OnceLock::new();
    KEYS.get_or_init(|| dualchain_fuzz::replica_keys().iter().map(|k| k.public()).collect())
}

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::from_bytes(data) else { return };
    assert_eq!(m.to_bytes(), data, "a decoded frame re-encodes differently");
    assert!(Message::kind_of(data).is_some());
    let _ = (m.name(), m.from());
    let verdicts = verify_messages(std::slice::from_ref(&m), keys());
    assert_eq!(verdicts.len(), 1);
});
