//! The Groth16 ceremony's files as `dualchain ceremony` and a node read them: the
//! phase-1 accumulator, the phase-1 transcript and a shape's phase-2 transcript
//! (`dualchain_prover::ceremony`). The first byte picks the decoder. Never panics; what
//! decodes writes back to the same bytes (the encodings are canonical).
#![no_main]

use dualchain_prover::ceremony::{phase1, phase2};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((which, body)) = data.split_first() else { return };
    match which % 3 {
        0 => {
            if let Ok(acc) = phase1::Accumulator::from_bytes(body) {
                assert_eq!(acc.to_bytes(), body, "accumulator writes back differently");
            }
        }
        1 => {
            if let Ok(t) = phase1::Transcript::from_bytes(body) {
                assert_eq!(t.to_bytes(), body, "phase-1 transcript writes back differently");
            }
        }
        _ => {
            if let Ok(t) = phase2::Transcript::from_bytes(body) {
                assert_eq!(t.to_bytes(), body, "phase-2 transcript writes back differently");
            }
        }
    }
});
