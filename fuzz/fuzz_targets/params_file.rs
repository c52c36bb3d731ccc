//! Groth16 parameter files as a node loads them (`ProvingKey::from_file_bytes`, what
//! `load_file` runs on a file's bytes) for the `policy` shape. The input is the file
//! without its trailing content hash, which the target appends, so the fuzzer gets past
//! the hash and into the header, the circuit check and bellperson's parameter reader.
//! Never panics; a file that loads writes back to the same bytes.
#![no_main]

use dualchain_prover::params::ProvingKey;
use dualchain_prover::shapes::Shape;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fuzz_target!(
    init: {
        // No progress output per input.
        std::env::set_var("DUALCHAIN_PROGRESS", "off");
    },
    |data: &[u8]| {
        let mut file = data.to_vec();
        file.extend_from_slice(&Sha256::digest(data));
        if let Ok(pk) = ProvingKey::from_file_bytes(&file, Shape::Policy, None) {
            assert_eq!(pk.to_file_bytes().expect("a loaded key writes"), file, "parameters write back differently");
        }
    }
);
