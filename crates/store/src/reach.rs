//! Reach tables: the message log (`messages`, one row per (cause, channel, recipient)), the
//! suppression list, per-channel sending windows, topics and subscriptions, customers' own push
//! keys and tags, and broadcasts.

use sqlx::{Any, Executor};

use crate::writes::Write;
use crate::{StoreError, StoreResult};

// ---------------------------------------------------------------------------------------------
// Messages

/// One message in the log.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq)]
pub struct MessageRow {
    pub id: i64,
    pub cause: String,
    pub channel: String,
    pub recipient: String,
    pub customer_id: Option<i64>,
    pub broadcast_id: Option<i64>,
    pub locale: String,
    pub content: String,
    pub summary: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub sent_at: Option<i64>,
}

const MESSAGE_COLUMNS: &str =
    "id, cause, channel, recipient, customer_id, broadcast_id, locale, content, summary, \
     status, attempts, last_error, created_at, updated_at, sent_at";

/// A message not yet stored.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub id: i64,
    pub cause: &'a str,
    pub channel: &'a str,
    pub recipient: &'a str,
    pub customer_id: Option<i64>,
    pub broadcast_id: Option<i64>,
    pub locale: &'a str,
    pub content: &'a str,
    pub summary: &'a str,
}

/// Store a queued message; false when (cause, channel, recipient) already has one.
pub async fn insert_message<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    m: &NewMessage<'_>,
    now: i64,
) -> StoreResult<bool> {
    Ok(message_write(m, now).execute(exec).await? == 1)
}

/// [`insert_message`] added to `w` (whether it was new is not told: queue its job with
/// [`crate::job::enqueue_for_message`]).
pub fn insert_message_into(w: &mut crate::Writes, m: &NewMessage<'_>, now: i64) {
    w.push(message_write(m, now));
}

fn message_write(m: &NewMessage<'_>, now: i64) -> Write {
    let mut w = Write::new(
        "INSERT INTO messages (id, cause, channel, recipient, customer_id, broadcast_id, locale, content, summary, \
         status, attempts, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued', 0, $10, $10) \
         ON CONFLICT (cause, channel, recipient) DO NOTHING",
    );
    w.bind(m.id)
        .bind(m.cause)
        .bind(m.channel)
        .bind(m.recipient)
        .bind(m.customer_id)
        .bind(m.broadcast_id)
        .bind(m.locale)
        .bind(m.content)
        .bind(m.summary)
        .bind(now);
    w
}

/// One message.
pub async fn get_message<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
) -> StoreResult<MessageRow> {
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1");
    Ok(sqlx::query_as(&sql).bind(id).fetch_one(exec).await?)
}

/// Filters for the delivery log.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter<'a> {
    /// Exact recipient (an address, `customer:ID` or `owner:CHANNEL`).
    pub recipient: Option<&'a str>,
    pub customer_id: Option<i64>,
    pub status: Option<&'a str>,
    pub channel: Option<&'a str>,
    pub broadcast_id: Option<i64>,
}

/// Messages matching `f`, newest first, with ids below `before_id`.
pub async fn list_messages<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    f: &MessageFilter<'_>,
    before_id: i64,
    limit: i64,
) -> StoreResult<Vec<MessageRow>> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id < $1 \
         AND ($2 IS NULL OR recipient = $2) AND ($3 IS NULL OR customer_id = $3) \
         AND ($4 IS NULL OR status = $4) AND ($5 IS NULL OR channel = $5) AND ($6 IS NULL OR broadcast_id = $6) \
         ORDER BY id DESC LIMIT $7"
    );
    Ok(sqlx::query_as(&sql)
        .bind(before_id)
        .bind(f.recipient)
        .bind(f.customer_id)
        .bind(f.status)
        .bind(f.channel)
        .bind(f.broadcast_id)
        .bind(limit)
        .fetch_all(exec)
        .await?)
}

/// Move a message to `status` (only from one of `from`), recording the attempt count, error and
/// send time. False when it was not in one of `from`.
#[allow(clippy::too_many_arguments)]
pub async fn set_message_status<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    from: &[&str],
    status: &str,
    attempts: Option<i64>,
    error: Option<&str>,
    sent_at: Option<i64>,
    now: i64,
) -> StoreResult<bool> {
    let allowed = from
        .iter()
        .map(|s| format!("'{}'", s.replace('\'', "")))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "UPDATE messages SET status = $1, attempts = COALESCE($2, attempts), last_error = $3, \
         sent_at = COALESCE($4, sent_at), updated_at = $5 WHERE id = $6 AND status IN ({allowed})"
    );
    let r = sqlx::query(&sql)
        .bind(status)
        .bind(attempts)
        .bind(error)
        .bind(sent_at)
        .bind(now)
        .bind(id)
        .execute(exec)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Number of a broadcast's messages in each status.
pub async fn broadcast_counts<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    broadcast_id: i64,
) -> StoreResult<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT status, COUNT(*) FROM messages WHERE broadcast_id = $1 GROUP BY status",
    )
    .bind(broadcast_id)
    .fetch_all(exec)
    .await?)
}

/// Cancel a broadcast's messages not yet sent; returns how many.
pub async fn cancel_broadcast_messages<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    broadcast_id: i64,
    now: i64,
) -> StoreResult<u64> {
    let r = sqlx::query(
        "UPDATE messages SET status = 'cancelled', updated_at = $1 WHERE broadcast_id = $2 AND status = 'queued'",
    )
    .bind(now)
    .bind(broadcast_id)
    .execute(exec)
    .await?;
    Ok(r.rows_affected())
}

/// Delete a customer's messages (account deletion: the log names their address).
pub async fn delete_customer_messages<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    customer_id: i64,
    email: Option<&str>,
) -> StoreResult<u64> {
    let r = sqlx::query("DELETE FROM messages WHERE customer_id = $1 OR recipient = $2")
        .bind(customer_id)
        .bind(email.unwrap_or(""))
        .execute(exec)
        .await?;
    Ok(r.rows_affected())
}

/// Delete a customer's subscriptions, push key and tags (account deletion).
pub async fn delete_customer_reach(tx: &mut crate::Tx, customer_id: i64) -> StoreResult<()> {
    for table in ["subscriptions", "customer_push", "customer_tags"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE customer_id = $1"))
            .bind(customer_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Suppression

/// One suppressed address (kept as a keyed hash and a masked hint).
#[derive(Debug, Clone, sqlx::FromRow, PartialEq)]
pub struct SuppressionRow {
    pub hash: String,
    pub hint: String,
    pub reason: String,
    pub created_at: i64,
}

/// Suppress an address; false when it already was.
pub async fn suppress<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    hash: &str,
    hint: &str,
    reason: &str,
    now: i64,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "INSERT INTO suppressions (hash, hint, reason, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (hash) DO NOTHING",
    )
    .bind(hash)
    .bind(hint)
    .bind(reason)
    .bind(now)
    .execute(exec)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Whether an address hash is suppressed.
pub async fn is_suppressed<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    hash: &str,
) -> StoreResult<bool> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM suppressions WHERE hash = $1")
        .bind(hash)
        .fetch_one(exec)
        .await?;
    Ok(n > 0)
}

/// Suppressions, newest first, created before `before` (ms).
pub async fn list_suppressions<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    limit: i64,
) -> StoreResult<Vec<SuppressionRow>> {
    Ok(sqlx::query_as(
        "SELECT hash, hint, reason, created_at FROM suppressions ORDER BY created_at DESC, hash LIMIT $1",
    )
    .bind(limit)
    .fetch_all(exec)
    .await?)
}

/// Number of suppressed addresses.
pub async fn count_suppressions<'e, E: Executor<'e, Database = Any>>(exec: E) -> StoreResult<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM suppressions")
        .fetch_one(exec)
        .await?)
}

/// Lift a suppression.
pub async fn unsuppress<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    hash: &str,
) -> StoreResult<()> {
    let r = sqlx::query("DELETE FROM suppressions WHERE hash = $1")
        .bind(hash)
        .execute(exec)
        .await?;
    crate::one_row(&r)
}

// ---------------------------------------------------------------------------------------------
// Sending windows

/// Count one send for `channel` in the window starting at `window_start`, unless `limit` sends
/// were already counted there. True when the send may go.
pub async fn take_send_slot<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    channel: &str,
    window_start: i64,
    limit: i64,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "INSERT INTO send_windows (channel, window_start, sent) VALUES ($1, $2, 1) \
         ON CONFLICT (channel, window_start) DO UPDATE SET sent = send_windows.sent + 1 \
         WHERE send_windows.sent < $3",
    )
    .bind(channel)
    .bind(window_start)
    .bind(limit)
    .execute(exec)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Forget windows that started before `before`.
pub async fn delete_send_windows_before<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    before: i64,
) -> StoreResult<u64> {
    let r = sqlx::query("DELETE FROM send_windows WHERE window_start < $1")
        .bind(before)
        .execute(exec)
        .await?;
    Ok(r.rows_affected())
}

// ---------------------------------------------------------------------------------------------
// Topics and subscriptions

/// A topic customers subscribe to.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq)]
pub struct TopicRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Store a topic; a taken name is a conflict.
pub async fn insert_topic<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    name: &str,
    description: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO topics (id, name, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(id)
    .bind(name)
    .bind(description)
    .bind(now)
    .execute(exec)
    .await?;
    Ok(())
}

/// Rename or redescribe a topic.
pub async fn update_topic<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    name: &str,
    description: &str,
    now: i64,
) -> StoreResult<()> {
    let r =
        sqlx::query("UPDATE topics SET name = $1, description = $2, updated_at = $3 WHERE id = $4")
            .bind(name)
            .bind(description)
            .bind(now)
            .bind(id)
            .execute(exec)
            .await?;
    crate::one_row(&r)
}

/// Delete a topic (its subscriptions go with it); a topic with broadcasts is a conflict.
pub async fn delete_topic<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
) -> StoreResult<()> {
    let r = sqlx::query(
        "DELETE FROM topics WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM broadcasts WHERE topic_id = $1)",
    )
    .bind(id)
    .execute(exec)
    .await?;
    if r.rows_affected() == 0 {
        return Err(StoreError::Conflict("broadcasts_topic_id".into()));
    }
    Ok(())
}

/// One topic.
pub async fn get_topic<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
) -> StoreResult<TopicRow> {
    Ok(sqlx::query_as(
        "SELECT id, name, description, created_at, updated_at FROM topics WHERE id = $1",
    )
    .bind(id)
    .fetch_one(exec)
    .await?)
}

/// All topics, by name.
pub async fn list_topics<'e, E: Executor<'e, Database = Any>>(
    exec: E,
) -> StoreResult<Vec<TopicRow>> {
    Ok(sqlx::query_as(
        "SELECT id, name, description, created_at, updated_at FROM topics ORDER BY name, id",
    )
    .fetch_all(exec)
    .await?)
}

/// One subscription state.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq)]
pub struct SubscriptionRow {
    pub customer_id: i64,
    pub topic_id: i64,
    pub channel: String,
    pub subscribed: i64,
    pub source: String,
    pub updated_at: i64,
}

/// Set a customer's choice for (topic, channel).
pub async fn put_subscription<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    s: &SubscriptionRow,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO subscriptions (customer_id, topic_id, channel, subscribed, source, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (customer_id, topic_id, channel) DO UPDATE SET \
         subscribed = excluded.subscribed, source = excluded.source, updated_at = excluded.updated_at",
    )
    .bind(s.customer_id)
    .bind(s.topic_id)
    .bind(&s.channel)
    .bind(s.subscribed)
    .bind(&s.source)
    .bind(s.updated_at)
    .execute(exec)
    .await?;
    Ok(())
}

/// A customer's subscription rows (or everyone's for a topic when `customer_id` is None).
pub async fn list_subscriptions<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    customer_id: Option<i64>,
    topic_id: Option<i64>,
    after: (i64, i64, &str),
    limit: i64,
) -> StoreResult<Vec<SubscriptionRow>> {
    Ok(sqlx::query_as(
        "SELECT customer_id, topic_id, channel, subscribed, source, updated_at FROM subscriptions \
         WHERE ($1 IS NULL OR customer_id = $1) AND ($2 IS NULL OR topic_id = $2) \
         AND (customer_id > $3 OR (customer_id = $3 AND (topic_id > $4 OR (topic_id = $4 AND channel > $5)))) \
         ORDER BY customer_id, topic_id, channel LIMIT $6",
    )
    .bind(customer_id)
    .bind(topic_id)
    .bind(after.0)
    .bind(after.1)
    .bind(after.2)
    .bind(limit)
    .fetch_all(exec)
    .await?)
}

/// Whether a customer is subscribed to (topic, channel).
pub async fn is_subscribed<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    customer_id: i64,
    topic_id: i64,
    channel: &str,
) -> StoreResult<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM subscriptions WHERE customer_id = $1 AND topic_id = $2 AND channel = $3 AND subscribed = 1",
    )
    .bind(customer_id)
    .bind(topic_id)
    .bind(channel)
    .fetch_one(exec)
    .await?;
    Ok(n > 0)
}

/// Subscribed customers per topic and channel: `(topic_id, channel, count)`.
pub async fn subscriber_counts<'e, E: Executor<'e, Database = Any>>(
    exec: E,
) -> StoreResult<Vec<(i64, String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT s.topic_id, s.channel, COUNT(*) FROM subscriptions s JOIN customers c ON c.id = s.customer_id \
         WHERE s.subscribed = 1 AND c.deleted_at IS NULL GROUP BY s.topic_id, s.channel",
    )
    .fetch_all(exec)
    .await?)
}

/// A broadcast's recipients with ids in `(after_customer, up_to]`: customers subscribed to
/// `topic_id`, optionally carrying `tag`, not disabled or deleted, in id order — one row per
/// subscribed channel. [`audience_page_end`] picks `up_to`.
pub async fn audience_page<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    topic_id: i64,
    tag: Option<&str>,
    after_customer: i64,
    up_to: i64,
) -> StoreResult<Vec<AudienceRow>> {
    Ok(sqlx::query_as(
        "SELECT c.id, c.email, c.locale, s.channel FROM customers c \
         JOIN subscriptions s ON s.customer_id = c.id AND s.topic_id = $1 AND s.subscribed = 1 \
         WHERE c.id > $2 AND c.id <= $3 AND c.deleted_at IS NULL AND c.disabled_at IS NULL \
         AND ($4 IS NULL OR EXISTS (SELECT 1 FROM customer_tags t WHERE t.customer_id = c.id AND t.tag = $4)) \
         ORDER BY c.id, s.channel",
    )
    .bind(topic_id)
    .bind(after_customer)
    .bind(up_to)
    .bind(tag)
    .fetch_all(exec)
    .await?)
}

/// One (customer, subscribed channel) pair of an audience page.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq)]
pub struct AudienceRow {
    pub id: i64,
    pub email: Option<String>,
    pub locale: Option<String>,
    pub channel: String,
}

/// The largest customer id among the next `limit` subscribers of a topic after `after_customer`
/// (the end of the page [`audience_page`] reads), or None when there are none.
pub async fn audience_page_end<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    topic_id: i64,
    after_customer: i64,
    limit: i64,
) -> StoreResult<Option<i64>> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT customer_id FROM subscriptions WHERE topic_id = $1 AND subscribed = 1 AND customer_id > $2 \
         ORDER BY customer_id LIMIT $3",
    )
    .bind(topic_id)
    .bind(after_customer)
    .bind(limit)
    .fetch_all(exec)
    .await?;
    Ok(ids.last().copied())
}

// ---------------------------------------------------------------------------------------------
// Customers' push keys and tags

/// Store (or replace) a customer's own push target, sealed.
pub async fn put_customer_push<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    customer_id: i64,
    kind: &str,
    sealed: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO customer_push (customer_id, kind, sealed, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (customer_id) DO UPDATE SET kind = excluded.kind, sealed = excluded.sealed, created_at = excluded.created_at",
    )
    .bind(customer_id)
    .bind(kind)
    .bind(sealed)
    .bind(now)
    .execute(exec)
    .await?;
    Ok(())
}

/// A customer's push target `(kind, sealed)`.
pub async fn get_customer_push<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    customer_id: i64,
) -> StoreResult<Option<(String, String)>> {
    Ok(
        sqlx::query_as("SELECT kind, sealed FROM customer_push WHERE customer_id = $1")
            .bind(customer_id)
            .fetch_optional(exec)
            .await?,
    )
}

/// Remove a customer's push target.
pub async fn delete_customer_push<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    customer_id: i64,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM customer_push WHERE customer_id = $1")
        .bind(customer_id)
        .execute(exec)
        .await?;
    Ok(())
}

/// Replace a customer's tags.
pub async fn set_customer_tags(
    tx: &mut crate::Tx,
    customer_id: i64,
    tags: &[String],
    now: i64,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM customer_tags WHERE customer_id = $1")
        .bind(customer_id)
        .execute(&mut **tx)
        .await?;
    for t in tags {
        sqlx::query(
            "INSERT INTO customer_tags (customer_id, tag, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(customer_id)
        .bind(t)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// A customer's tags, sorted.
pub async fn customer_tags<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    customer_id: i64,
) -> StoreResult<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT tag FROM customer_tags WHERE customer_id = $1 ORDER BY tag")
            .bind(customer_id)
            .fetch_all(exec)
            .await?,
    )
}

/// Every tag in use with its number of customers.
pub async fn tag_counts<'e, E: Executor<'e, Database = Any>>(
    exec: E,
) -> StoreResult<Vec<(String, i64)>> {
    Ok(
        sqlx::query_as("SELECT tag, COUNT(*) FROM customer_tags GROUP BY tag ORDER BY tag")
            .fetch_all(exec)
            .await?,
    )
}

// ---------------------------------------------------------------------------------------------
// Broadcasts

/// A broadcast.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq)]
pub struct BroadcastRow {
    pub id: i64,
    pub topic_id: i64,
    pub tag: Option<String>,
    pub channels: String,
    pub content: String,
    pub status: String,
    pub scheduled_at: Option<i64>,
    pub after_customer: i64,
    pub recipients: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

const BROADCAST_COLUMNS: &str =
    "id, topic_id, tag, channels, content, status, scheduled_at, after_customer, recipients, \
     created_at, updated_at, started_at, finished_at";

/// Store a draft.
pub async fn insert_broadcast<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    b: &BroadcastRow,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO broadcasts (id, topic_id, tag, channels, content, status, scheduled_at, after_customer, recipients, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0, $8, $8)",
    )
    .bind(b.id)
    .bind(b.topic_id)
    .bind(&b.tag)
    .bind(&b.channels)
    .bind(&b.content)
    .bind(&b.status)
    .bind(b.scheduled_at)
    .bind(b.created_at)
    .execute(exec)
    .await?;
    Ok(())
}

/// Change a draft's audience and content (only while it is a draft).
pub async fn update_draft<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    b: &BroadcastRow,
    now: i64,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE broadcasts SET topic_id = $1, tag = $2, channels = $3, content = $4, updated_at = $5 \
         WHERE id = $6 AND status = 'draft'",
    )
    .bind(b.topic_id)
    .bind(&b.tag)
    .bind(&b.channels)
    .bind(&b.content)
    .bind(now)
    .bind(b.id)
    .execute(exec)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// One broadcast.
pub async fn get_broadcast<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
) -> StoreResult<BroadcastRow> {
    let sql = format!("SELECT {BROADCAST_COLUMNS} FROM broadcasts WHERE id = $1");
    Ok(sqlx::query_as(&sql).bind(id).fetch_one(exec).await?)
}

/// Broadcasts, newest first, with ids below `before_id`.
pub async fn list_broadcasts<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    before_id: i64,
    limit: i64,
) -> StoreResult<Vec<BroadcastRow>> {
    let sql = format!(
        "SELECT {BROADCAST_COLUMNS} FROM broadcasts WHERE id < $1 ORDER BY id DESC LIMIT $2"
    );
    Ok(sqlx::query_as(&sql)
        .bind(before_id)
        .bind(limit)
        .fetch_all(exec)
        .await?)
}

/// Move a broadcast between states (only from one of `from`); false otherwise.
pub async fn set_broadcast_status<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    from: &[&str],
    status: &str,
    scheduled_at: Option<i64>,
    now: i64,
) -> StoreResult<bool> {
    let allowed = from
        .iter()
        .map(|s| format!("'{}'", s.replace('\'', "")))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "UPDATE broadcasts SET status = $1, scheduled_at = COALESCE($2, scheduled_at), updated_at = $3, \
         started_at = CASE WHEN $1 = 'sending' THEN COALESCE(started_at, $3) ELSE started_at END, \
         finished_at = CASE WHEN $1 IN ('sent', 'cancelled') THEN $3 ELSE finished_at END \
         WHERE id = $4 AND status IN ({allowed})"
    );
    let r = sqlx::query(&sql)
        .bind(status)
        .bind(scheduled_at)
        .bind(now)
        .bind(id)
        .execute(exec)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Record a batch: the audience cursor moves to `after_customer` and `added` recipients count.
pub async fn advance_broadcast<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    after_customer: i64,
    added: i64,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE broadcasts SET after_customer = $1, recipients = recipients + $2, updated_at = $3 WHERE id = $4",
    )
    .bind(after_customer)
    .bind(added)
    .bind(now)
    .bind(id)
    .execute(exec)
    .await?;
    Ok(())
}

/// Delete a draft.
pub async fn delete_draft<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
) -> StoreResult<()> {
    let r = sqlx::query("DELETE FROM broadcasts WHERE id = $1 AND status = 'draft'")
        .bind(id)
        .execute(exec)
        .await?;
    crate::one_row(&r)
}
