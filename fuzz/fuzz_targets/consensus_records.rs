//! What a replica reads back from its own disk and from state transfer: checkpoint proofs,
//! committed entries, archived entries (`parse_archive`), batches, validator set changes
//! (ordered requests, checked where they execute) and the persisted validator sets. The
//! first byte picks the decoder, the rest is its input. Never panics; whatever decodes
//! re-encodes to the same bytes, a decoded batch's digest is the digest of a batch rebuilt
//! from its parts, and a change the fixture genesis refuses leaves its sets unchanged.
#![no_main]

use dualchain_consensus::membership::{Epochs, Reconfiguration, RECONFIGURE_CLIENT};
use dualchain_consensus::message::{Batch, CheckpointProof, CommittedEntry, Request};
use dualchain_consensus::replica::{archive_bytes, parse_archive};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, input)) = data.split_first() else { return };
    match which % 6 {
        0 => {
            if let Ok(p) = CheckpointProof::from_bytes(input) {
                assert_eq!(p.to_bytes(), input, "checkpoint proof re-encodes differently");
            }
        }
        1 => {
            if let Ok(e) = CommittedEntry::from_bytes(input) {
                assert_eq!(e.to_bytes(), input, "committed entry re-encodes differently");
                let _ = e.certificate_bytes();
            }
        }
        2 => {
            if let Ok(a) = parse_archive(input) {
                assert_eq!(archive_bytes(&a.history, a.time_ms, &a.entry), input, "archive re-encodes differently");
            }
        }
        4 => {
            if let Ok(r) = Reconfiguration::from_bytes(input) {
                assert_eq!(r.to_bytes(), input, "reconfiguration re-encodes differently");
            }
            let keys = dualchain_fuzz::replica_keys();
            let genesis = Epochs::genesis(keys.iter().map(|k| k.public()).collect());
            let mut epochs = genesis.clone();
            let request = Request { client: RECONFIGURE_CLIENT, id: 1, payload: input.to_vec() };
            if epochs.schedule(&request, 5, 64, 16).is_err() {
                assert_eq!(epochs, genesis, "a refused change changed the sets");
            }
        }
        5 => {
            let keys: Vec<_> = dualchain_fuzz::replica_keys().iter().map(|k| k.public()).collect();
            if let Ok(e) = Epochs::from_bytes(input, &keys) {
                assert_eq!(e.to_bytes(), input, "validator sets re-encode differently");
                let _ = e.governing(u64::MAX);
            }
        }
        _ => {
            if let Ok(b) = Batch::decode(input) {
                assert_eq!(b.encoded(), input);
                let rebuilt = Batch::with_time(b.time_ms(), b.requests().to_vec());
                assert_eq!(rebuilt.digest(), b.digest(), "a batch's digest depends on more than its parts");
                assert_eq!(rebuilt, b);
            }
        }
    }
});
