//! Errors of the ledger crate.

use dualchain_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("corrupt ledger data: {0}")]
    Corrupt(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("the ledger failed to persist a batch earlier; reopen it from its store")]
    Poisoned,
    #[error(
        "batch {got} arrived but batch {expected} is next; apply the missing batches from the consensus log first"
    )]
    OutOfOrder { expected: u64, got: u64 },
    #[error("genesis: {0}")]
    Genesis(String),
}
