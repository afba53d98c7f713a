//! Domain errors. Policy: a service returns a [`DomainError`] whose variants say what the caller can
//! do about it; user-facing text is never built here — variants carry a message-catalog key that
//! the web layer renders in the caller's language. Status codes exist only in `yiren-web`.

use yiren_store::StoreError;

/// An error from a domain service.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The thing asked for does not exist.
    #[error("not found")]
    NotFound,
    /// The input was understood but is not acceptable; `key` names the catalog message.
    #[error("invalid input: {key}")]
    Invalid {
        /// Message catalog key.
        key: &'static str,
        /// The offending field, when one is to blame.
        field: Option<&'static str>,
    },
    /// The change conflicts with existing state (a taken email, a used link).
    #[error("conflict: {key}")]
    Conflict {
        /// Message catalog key.
        key: &'static str,
    },
    /// The caller is known but may not do this.
    #[error("forbidden")]
    Forbidden,
    /// The caller must sign in (or present a valid token).
    #[error("unauthenticated")]
    Unauthenticated,
    /// Too many attempts; try again later.
    #[error("throttled for {retry_after_secs}s")]
    Throttled {
        /// Seconds until the next attempt is accepted.
        retry_after_secs: i64,
    },
    /// A service the change needs (the file store) failed; the change was not made.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DomainError {
    /// Shorthand for an invalid field.
    pub fn invalid(field: &'static str, key: &'static str) -> Self {
        DomainError::Invalid {
            key,
            field: Some(field),
        }
    }
}

/// Result of a domain service.
pub type DomainResult<T> = Result<T, DomainError>;
