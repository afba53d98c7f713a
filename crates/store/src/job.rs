//! The job table: a transactional outbox with leases, retries and a dead list.
//!
//! A job is inserted in the same transaction as the change that causes it ([`enqueue`] takes the
//! caller's transaction). Workers claim due jobs with a lease ([`claim`]); a job whose lease ran out
//! (its process died) is due again, so delivery is at least once.

use sqlx::{Any, Executor};

use crate::writes::Write;
use crate::{Db, StoreResult, Writes};

/// A job to store.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub id: i64,
    pub kind: &'a str,
    pub payload: &'a str,
    pub run_at: i64,
    pub max_attempts: i64,
    /// When set, a second job with the same key is silently not created.
    pub unique_key: Option<&'a str>,
}

/// A stored job.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub state: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at: i64,
    pub locked_by: Option<String>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

const COLUMNS: &str =
    "id, kind, payload, state, attempts, max_attempts, run_at, locked_by, last_error, created_at, updated_at, finished_at";

/// Insert a job inside the caller's transaction. Returns false when `unique_key` already exists.
pub async fn enqueue<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    job: &NewJob<'_>,
    now: i64,
) -> StoreResult<bool> {
    let w = job_write(
        "INSERT INTO jobs (id, kind, payload, state, attempts, max_attempts, run_at, unique_key, created_at, updated_at) \
         VALUES ($1, $2, $3, 'queued', 0, $4, $5, $6, $7, $7) ON CONFLICT DO NOTHING",
        job,
        now,
    );
    Ok(w.execute(exec).await? == 1)
}

/// `sql` with the job's values bound as `$1`…`$7` (id, kind, payload, max attempts, run at,
/// unique key, now).
fn job_write(sql: &str, job: &NewJob<'_>, now: i64) -> Write {
    let mut w = Write::new(sql);
    w.bind(job.id)
        .bind(job.kind)
        .bind(job.payload)
        .bind(job.max_attempts)
        .bind(job.run_at)
        .bind(job.unique_key)
        .bind(now);
    w
}

/// Insert several jobs in one statement (each skipped when its unique key exists); how many
/// were created.
pub async fn enqueue_many<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    jobs: &[NewJob<'_>],
    now: i64,
) -> StoreResult<u64> {
    if jobs.is_empty() {
        return Ok(0);
    }
    let sql = many_sql(jobs.len());
    let mut q = sqlx::query(&sql);
    for j in jobs {
        q = q
            .bind(j.id)
            .bind(j.kind)
            .bind(j.payload)
            .bind(j.max_attempts)
            .bind(j.run_at)
            .bind(j.unique_key);
    }
    Ok(q.bind(now).execute(exec).await?.rows_affected())
}

/// [`enqueue_many`] added to `w` (how many were created is not told).
pub fn enqueue_many_into(w: &mut Writes, jobs: &[NewJob<'_>], now: i64) {
    if jobs.is_empty() {
        return;
    }
    let q = w.add(many_sql(jobs.len()));
    for j in jobs {
        q.bind(j.id)
            .bind(j.kind)
            .bind(j.payload)
            .bind(j.max_attempts)
            .bind(j.run_at)
            .bind(j.unique_key);
    }
    q.bind(now);
}

/// The job inserted only when message `message_id` exists — it was just added to `w` by
/// [`crate::reach::insert_message_into`], which does nothing when its cause was queued before.
pub fn enqueue_for_message(w: &mut Writes, job: &NewJob<'_>, now: i64, message_id: i64) {
    enqueue_if(
        w,
        job,
        now,
        "SELECT 1 FROM messages WHERE id = $8",
        message_id,
    );
}

/// The job inserted only when order `order_id` was placed through one of the owner's apps (its
/// news goes to the app's webhook), decided by the statement itself: the caller reads nothing.
pub fn enqueue_for_app_order(w: &mut Writes, job: &NewJob<'_>, now: i64, order_id: i64) {
    enqueue_if(
        w,
        job,
        now,
        "SELECT 1 FROM app_orders WHERE order_id = $8",
        order_id,
    );
}

/// `job`, inserted only when `exists` (a query on `$8` = `id`) finds a row.
fn enqueue_if(w: &mut Writes, job: &NewJob<'_>, now: i64, exists: &'static str, id: i64) {
    // (An INSERT … SELECT followed by ON CONFLICT needs the WHERE, or SQLite reads ON as a join.)
    w.push(job_write(
        &format!(
            "INSERT INTO jobs (id, kind, payload, state, attempts, max_attempts, run_at, unique_key, created_at, updated_at) \
             SELECT $1, $2, $3, 'queued', 0, $4, $5, $6, $7, $7 WHERE EXISTS ({exists}) ON CONFLICT DO NOTHING"
        ),
        job,
        now,
    ))
    .bind(id);
}

/// `INSERT` of `n` jobs: six values each, then `now`.
fn many_sql(n: usize) -> String {
    let rows: Vec<String> = (0..n)
        .map(|i| {
            let b = i * 6;
            format!(
                "(${}, ${}, ${}, 'queued', 0, ${}, ${}, ${}, ${n}, ${n})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                n = n * 6 + 1
            )
        })
        .collect();
    format!(
        "INSERT INTO jobs (id, kind, payload, state, attempts, max_attempts, run_at, unique_key, created_at, updated_at) \
         VALUES {} ON CONFLICT DO NOTHING",
        rows.join(", ")
    )
}

/// Claim up to `limit` due jobs for `worker` with a lease ending at `lease_until`: one statement,
/// committing on its own, tried again on a busy or serialization error.
pub async fn claim(
    db: &Db,
    worker: &str,
    now: i64,
    lease_until: i64,
    limit: i64,
    running: &[i64],
) -> StoreResult<Vec<JobRow>> {
    db.retrying(|| {
        claim_in(
            db.write(),
            db.engine(),
            worker,
            now,
            lease_until,
            limit,
            running,
        )
    })
    .await
}

/// [`claim`] in the caller's transaction; `engine` decides how rows other workers hold are
/// skipped.
pub async fn claim_in<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    engine: crate::Engine,
    worker: &str,
    now: i64,
    lease_until: i64,
    limit: i64,
    running: &[i64],
) -> StoreResult<Vec<JobRow>> {
    // Jobs this process is still running are never taken again, even when a heartbeat came too
    // late and their lease lapsed: a second run beside the first would repeat its side effects.
    let mine = if running.is_empty() {
        String::new()
    } else {
        let ids: Vec<String> = running.iter().map(i64::to_string).collect();
        format!(" AND id NOT IN ({})", ids.join(","))
    };
    let sql = format!(
        "UPDATE jobs SET state = 'running', locked_by = $1, locked_until = $2, attempts = attempts + 1, updated_at = $3 \
         WHERE id IN ({}) RETURNING {COLUMNS}",
        engine.due_jobs(&mine)
    );
    Ok(sqlx::query_as(&sql)
        .bind(worker)
        .bind(lease_until)
        .bind(now)
        .bind(limit)
        .fetch_all(exec)
        .await?)
}

/// Mark a job done (only if this worker still holds it).
pub async fn complete<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    worker: &str,
    now: i64,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE jobs SET state = 'done', locked_by = NULL, locked_until = NULL, finished_at = $1, updated_at = $1 \
         WHERE id = $2 AND locked_by = $3 AND state = 'running'",
    )
    .bind(now)
    .bind(id)
    .bind(worker)
    .execute(exec)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// [`complete`] added to `w` (its result unread: a job no longer held stays as it is).
pub fn complete_into(w: &mut Writes, id: i64, worker: &str, now: i64) {
    w.add(
        "UPDATE jobs SET state = 'done', locked_by = NULL, locked_until = NULL, finished_at = $1, updated_at = $1 \
         WHERE id = $2 AND locked_by = $3 AND state = 'running'",
    )
    .bind(now)
    .bind(id)
    .bind(worker);
}

/// Record a failure: requeue at `retry_at`, or move to the dead list when `retry_at` is None.
pub async fn fail<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    worker: &str,
    error: &str,
    retry_at: Option<i64>,
    now: i64,
) -> StoreResult<()> {
    let (state, run_at, finished) = match retry_at {
        Some(at) => ("queued", at, None),
        None => ("dead", now, Some(now)),
    };
    sqlx::query(
        "UPDATE jobs SET state = $1, run_at = $2, last_error = $3, locked_by = NULL, locked_until = NULL, \
         finished_at = $4, updated_at = $5 WHERE id = $6 AND locked_by = $7",
    )
    .bind(state)
    .bind(run_at)
    .bind(error)
    .bind(finished)
    .bind(now)
    .bind(id)
    .bind(worker)
    .execute(exec)
    .await?;
    Ok(())
}

/// Extend the leases of every job `worker` is running (a heartbeat: a long job is not taken
/// over by another worker while its own is alive). Returns how many.
pub async fn extend_leases<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    worker: &str,
    lease_until: i64,
) -> StoreResult<u64> {
    let r = sqlx::query(
        "UPDATE jobs SET locked_until = $1 WHERE locked_by = $2 AND state = 'running' AND locked_until < $1",
    )
    .bind(lease_until)
    .bind(worker)
    .execute(exec)
    .await?;
    Ok(r.rows_affected())
}

/// Put a running job back in the queue until `run_at` without counting the attempt.
pub async fn defer<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    worker: &str,
    run_at: i64,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE jobs SET state = 'queued', attempts = attempts - 1, run_at = $1, locked_by = NULL, \
         locked_until = NULL, updated_at = $2 WHERE id = $3 AND locked_by = $4 AND state = 'running'",
    )
    .bind(run_at)
    .bind(now)
    .bind(id)
    .bind(worker)
    .execute(exec)
    .await?;
    Ok(())
}

/// Give back every job a worker still holds (graceful shutdown): it runs again soon, and the
/// interrupted attempt does not count.
pub async fn release_worker<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    worker: &str,
    now: i64,
) -> StoreResult<u64> {
    let r = sqlx::query(
        "UPDATE jobs SET state = 'queued', attempts = attempts - 1, locked_by = NULL, locked_until = NULL, \
         run_at = $1, updated_at = $1 WHERE locked_by = $2 AND state = 'running'",
    )
    .bind(now)
    .bind(worker)
    .execute(exec)
    .await?;
    Ok(r.rows_affected())
}

/// Put a dead job back in the queue with a fresh set of attempts.
pub async fn retry_dead<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    now: i64,
) -> StoreResult<()> {
    let r = sqlx::query(
        "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $1, finished_at = NULL, updated_at = $1 \
         WHERE id = $2 AND state = 'dead'",
    )
    .bind(now)
    .bind(id)
    .execute(exec)
    .await?;
    if r.rows_affected() == 0 {
        return Err(crate::StoreError::NotFound);
    }
    Ok(())
}

/// Get one job.
pub async fn get<'e, E: Executor<'e, Database = Any>>(exec: E, id: i64) -> StoreResult<JobRow> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_one(exec)
            .await?,
    )
}

/// Jobs in a state (or all), newest first, with id below `before_id`.
pub async fn list<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    state: Option<&str>,
    before_id: i64,
    limit: i64,
) -> StoreResult<Vec<JobRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE ($1 = '' OR state = $1) AND id < $2 ORDER BY id DESC LIMIT $3"
    ))
    .bind(state.unwrap_or(""))
    .bind(before_id)
    .bind(limit)
    .fetch_all(exec)
    .await?)
}

/// Number of jobs per state.
pub async fn counts<'e, E: Executor<'e, Database = Any>>(
    exec: E,
) -> StoreResult<Vec<(String, i64)>> {
    Ok(
        sqlx::query_as("SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state")
            .fetch_all(exec)
            .await?,
    )
}

/// Delete finished jobs older than `before` (dead jobs stay until handled).
pub async fn delete_done_before<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    before: i64,
) -> StoreResult<u64> {
    let r = sqlx::query("DELETE FROM jobs WHERE state = 'done' AND finished_at < $1")
        .bind(before)
        .execute(exec)
        .await?;
    Ok(r.rows_affected())
}

/// The next due time of a schedule, if it has run before.
pub async fn schedule_next<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    name: &str,
) -> StoreResult<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT next_run_at FROM job_schedules WHERE name = $1")
            .bind(name)
            .fetch_optional(exec)
            .await?,
    )
}

/// Set the next due time of a schedule.
pub async fn schedule_set<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    name: &str,
    next: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO job_schedules (name, next_run_at) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET next_run_at = excluded.next_run_at",
    )
    .bind(name)
    .bind(next)
    .execute(exec)
    .await?;
    Ok(())
}

/// Replace the payload of every job that mentions `needle` (e.g. a deleted customer's address, as
/// a JSON string) and cancel those not yet run: an erased person must not linger in the outbox.
pub async fn redact_mentioning<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    needle: &str,
    now: i64,
) -> StoreResult<u64> {
    let r = sqlx::query(
        "UPDATE jobs SET payload = '{\"redacted\":true}', last_error = NULL, \
         state = CASE WHEN state = 'queued' THEN 'done' ELSE state END, \
         finished_at = CASE WHEN state = 'queued' THEN $2 ELSE finished_at END, updated_at = $2 \
         WHERE payload LIKE $1 ESCAPE '\\'",
    )
    .bind(format!("%{}%", crate::like_escape(needle)))
    .bind(now)
    .execute(exec)
    .await?;
    Ok(r.rows_affected())
}
