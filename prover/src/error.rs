//! Errors of the prover crate.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ProverError {
    /// The witness does not prove the statement (the prover refuses to make a false proof).
    #[error("statement not provable: {0}")]
    Statement(String),
    #[error("constraint {index} of {shape} is not satisfied by the witness")]
    Unsatisfied { shape: String, index: usize },
    #[error("circuit synthesis failed: {0}")]
    Synthesis(#[from] bellpepper_core::SynthesisError),
    #[error("parameters file {path}: {reason}")]
    Params { path: String, reason: String },
    #[error("parameters are for {found}, expected {expected}")]
    ShapeMismatch { expected: String, found: String },
    #[error("proof encoding: {0}")]
    Encoding(String),
    #[error("{expected} public inputs expected, got {found}")]
    PublicInputCount { expected: usize, found: usize },
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("backend {backend}: {reason}")]
    Backend { backend: &'static str, reason: String },
}
