//! The `events` log: what happened to the shop's resources (`products/create`, ...), written in the
//! same transaction as the change, read in id order by API clients and, later, webhook delivery.

use sqlx::{Any, Executor};

use crate::StoreResult;

/// One event.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct EventRow {
    pub id: i64,
    pub topic: String,
    pub subject_id: i64,
    /// JSON.
    pub payload: String,
    pub created_at: i64,
}

/// Record an event inside the change's transaction.
pub fn insert(w: &mut crate::Writes, e: &EventRow) {
    w.add(
        "INSERT INTO events (id, topic, subject_id, payload, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(e.id)
    .bind(&e.topic)
    .bind(e.subject_id)
    .bind(&e.payload)
    .bind(e.created_at);
}

/// Events after `since_id`, oldest first, optionally of one topic.
pub async fn after<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    since_id: i64,
    topic: Option<&str>,
    limit: i64,
) -> StoreResult<Vec<EventRow>> {
    let rows = match topic {
        Some(t) => {
            sqlx::query_as(
                "SELECT id, topic, subject_id, payload, created_at FROM events \
                 WHERE id > $1 AND topic = $2 ORDER BY id LIMIT $3",
            )
            .bind(since_id)
            .bind(t)
            .bind(limit)
            .fetch_all(exec)
            .await?
        }
        None => {
            sqlx::query_as(
                "SELECT id, topic, subject_id, payload, created_at FROM events \
                 WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .bind(since_id)
            .bind(limit)
            .fetch_all(exec)
            .await?
        }
    };
    Ok(rows)
}
