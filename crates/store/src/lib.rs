//! Persistence for Yiren.
//!
//! Language: a *store* is one database (SQLite file or PostgreSQL database) reached through [`Db`];
//! a *write transaction* is the unit of change; the *outbox* is the `jobs` table, written in the
//! same transaction as the change that causes a side effect.
//!
//! Shape: [`Db`] (pools + engine), [`Tx`] (a write transaction), one module per table family
//! (`settings`, `staff`, `session`, `throttle`, `api_token`, `idempotency`, `job`), [`schema`] for
//! introspection and [`dump`] for the engine-neutral backup format.
//!
//! Boundaries: every query is written once in SQL both engines accept (`$1` placeholders,
//! `INSERT ... ON CONFLICT`, `RETURNING`). The few real engine differences live in [`engine`].
//! Time is never read here: callers pass `now` (unix milliseconds, UTC), so the clock stays injectable.

pub mod abandoned;
pub mod api_token;
pub mod campaign;
pub mod catalog;
pub mod checkout_app;
pub mod customer;
pub mod delivery;
pub mod dump;
pub mod engine;
mod error;
pub mod event;
pub mod idempotency;
pub mod job;
pub mod license;
pub mod media;
pub mod oidc;
pub mod order;
pub mod payment;
pub mod reach;
pub mod recurring;
pub mod schema;
pub mod session;
pub mod settings;
pub mod staff;
pub mod throttle;
pub mod writes;

pub use engine::{ConnectError, Db, Engine, Tx};
pub use error::StoreError;
pub use writes::Writes;

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// The embedded migrations, applied at start on both engines.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Escape `%`, `_` and `\\` for a `LIKE ... ESCAPE '\\'` pattern.
pub fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `NotFound` when a statement meant for one row touched none.
pub(crate) fn one_row(r: &sqlx::any::AnyQueryResult) -> StoreResult<()> {
    if r.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
