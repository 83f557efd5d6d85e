//! What can go wrong in the store, each variant saying what to do about it, and conversions
//! from the backends' own errors so that backend code writes `?` rather than `map_err`.

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store is unavailable ({0}); check that Redis is running and reachable")]
    Unavailable(String),
    #[error("the embedded store failed: {0}")]
    Embedded(String),
    #[error("a stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("invalid value: {0}")]
    Invalid(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("the task's lease was lost (it was taken over, cancelled or completed elsewhere)")]
    LeaseLost,
    #[error("{0} kept changing under this write; retry")]
    Contended(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

macro_rules! embedded_errors {
    ($($error:ty),* $(,)?) => {
        $(impl From<$error> for StoreError {
            fn from(e: $error) -> Self {
                Self::Embedded(e.to_string())
            }
        })*
    };
}

embedded_errors!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
);

/// Serializes a stored document (JSON): a failure is a value that cannot be stored.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Invalid(e.to_string()))
}

/// Reads a stored document (JSON): a failure means the record is corrupt.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}
