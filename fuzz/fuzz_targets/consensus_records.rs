//! What a replica reads back from its own disk and from state transfer: checkpoint proofs,
//! committed entries, archived entries (`parse_archive`) and batches. The first byte picks
//! the decoder, the rest is its input. Never panics; whatever decodes re-encodes to the
//! same bytes, and a decoded batch's digest is the digest of a batch rebuilt from its parts.
#![no_main]

use dualchain_consensus::message::{Batch, CheckpointProof, CommittedEntry};
use dualchain_consensus::replica::{archive_bytes, parse_archive};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, input)) = data.split_first() else { return };
    match which % 4 {
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
