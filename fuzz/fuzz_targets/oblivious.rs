//! The oblivious gateway's decoders (`dualchain_crypto::oblivious`), on bytes a relay or a
//! gateway may send: the first byte picks a key configuration, an encapsulated request
//! opened with the fixture gateway's key, or an encapsulated response opened with the
//! fixture client's context. Never panics; a configuration that decodes re-encodes to the
//! same bytes; only the fixture's own request opens, to its own plaintext, and only the
//! fixture's own response opens.
#![no_main]

use dualchain_crypto::oblivious::KeyConfig;
use dualchain_fuzz::oblivious::{oblivious_world, REQUEST};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let w = oblivious_world();
    let Some((which, rest)) = data.split_first() else { return };
    match which % 3 {
        0 => {
            if let Ok(c) = KeyConfig::from_bytes(rest) {
                assert_eq!(c.to_bytes(), rest, "a key configuration re-encodes differently");
            }
        }
        1 => {
            if let Ok((plain, answer)) = w.gateway.open_request(rest) {
                assert_eq!(rest, w.request.as_slice(), "a request the fixture did not seal opened");
                assert_eq!(plain, REQUEST);
                let _ = answer.seal(&plain, &mut dualchain_fuzz::rng(1));
            }
        }
        _ => {
            if w.client.open_response(rest).is_ok() {
                assert_eq!(rest, w.response.as_slice(), "a response the fixture's gateway did not seal opened");
            }
        }
    }
});
