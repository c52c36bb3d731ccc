//! Errors of the storage crate. Every message names what failed so an operator can act.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("I/O error: {0}")]
    Io(String),
    /// A write or sync failed earlier; the instance refuses further writes because its
    /// on-disk state is unknown. Restart the node to recover from the last durable state.
    #[error("store refuses writes after an earlier failure ({0}); reopen it to recover")]
    Poisoned(String),
    #[error("corrupt record in {cf} at key {key}: {reason}")]
    Corrupt { cf: &'static str, key: String, reason: String },
    #[error("{0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("grant refused: {0}")]
    Grant(String),
    #[error("crypto: {0}")]
    Crypto(#[from] dualchain_crypto::CryptoError),
    #[error("invalid input: {0}")]
    Invalid(String),
}

impl From<dualchain_crypto::DecodeError> for StorageError {
    fn from(e: dualchain_crypto::DecodeError) -> Self {
        StorageError::Crypto(e.into())
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Lower-case hex of a key, shortened for messages.
pub fn key_hex(key: &[u8]) -> String {
    let mut s: String = key.iter().take(48).map(|b| format!("{b:02x}")).collect();
    if key.len() > 48 {
        s.push('…');
    }
    s
}
