//! Health as operators and the dashboard see it.

use serde::Serialize;

use crate::Ctx;

/// The server's health.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// The database answers.
    pub db_ok: bool,
    /// Every embedded migration is applied.
    pub migrations_ok: bool,
    /// `sqlite` or `postgres`.
    pub engine: &'static str,
}

impl Health {
    /// Ready to serve: database up and schema current.
    pub fn ready(&self) -> bool {
        self.db_ok && self.migrations_ok
    }
}

/// Check the database and the schema.
pub async fn check(ctx: &Ctx) -> Health {
    let db_ok = ctx.db.ping().await.is_ok();
    let migrations_ok = db_ok && ctx.db.migrations_applied().await.unwrap_or(false);
    Health {
        db_ok,
        migrations_ok,
        engine: ctx.db.engine().name(),
    }
}
