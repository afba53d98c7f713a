//! Store errors. Policy: callers see four cases they can act on — the row is missing, a unique key
//! already holds the value, the database is unreachable or busy (retryable), or something else
//! (a bug or corruption, logged with its cause chain by the web layer and answered with a 500).

/// An error from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The requested row does not exist.
    #[error("not found")]
    NotFound,
    /// A unique constraint rejected the write; the payload names the constraint when known.
    #[error("conflict on {0}")]
    Conflict(String),
    /// A CHECK constraint rejected the write (a guard the code should have kept, such as stock
    /// that may not go below zero); the payload names the constraint when known.
    #[error("check failed on {0}")]
    Check(String),
    /// Serialization failure, deadlock or busy database: the whole transaction may be retried.
    #[error("transient database error: {0}")]
    Retryable(#[source] sqlx::Error),
    /// The database cannot be reached (pool timed out, connection refused).
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Data in the database does not have the expected shape.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
}

impl StoreError {
    /// True when retrying the whole transaction may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Retryable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                StoreError::Unavailable(e)
            }
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                // PostgreSQL: 40001 serialization_failure, 40P01 deadlock_detected.
                // SQLite: 5 SQLITE_BUSY, 6 SQLITE_LOCKED, 517 SQLITE_BUSY_SNAPSHOT.
                if matches!(code.as_str(), "40001" | "40P01" | "5" | "6" | "517" | "261") {
                    return StoreError::Retryable(e);
                }
                if db.kind() == sqlx::error::ErrorKind::CheckViolation {
                    let name = db.constraint().unwrap_or("check").to_string();
                    return StoreError::Check(name);
                }
                if db.is_unique_violation() {
                    let name = db.constraint().unwrap_or("unique key").to_string();
                    return StoreError::Conflict(name);
                }
                StoreError::Other(e)
            }
            _ => StoreError::Other(e),
        }
    }
}
