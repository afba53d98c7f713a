//! Durable jobs: the transactional outbox and the workers that drain it.
//!
//! Language: a *job* is a side effect recorded in the `jobs` table in the same transaction as its
//! cause; a *handler* performs one kind of job and must be idempotent (delivery is at least once);
//! a *lease* is how long a claimed job belongs to one worker; the *dead list* holds jobs that kept
//! failing, shown in admin with a retry button; a *schedule* enqueues a job on a cron expression.
//!
//! Shape: [`enqueue`], [`JobHandler`], [`Registry`], [`Worker`], [`Schedule`].
//!
//! Boundaries: `yiren-store::job`; handlers reach the outside world through providers they own.

mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Serialize;
use yiren_store::job::{self as store, NewJob};

use crate::error::{DomainError, DomainResult};
use crate::Ctx;

pub use worker::{Schedule, Worker, WorkerConfig};

/// How a job is enqueued.
#[derive(Debug, Clone)]
pub struct EnqueueOptions {
    /// Run no earlier than this (unix ms); None = now.
    pub run_at: Option<i64>,
    /// Attempts before the job goes to the dead list.
    pub max_attempts: i64,
    /// Deduplication key: a second job with the same key is not created.
    pub unique_key: Option<String>,
}

impl Default for EnqueueOptions {
    fn default() -> Self {
        EnqueueOptions {
            run_at: None,
            max_attempts: 10,
            unique_key: None,
        }
    }
}

/// Write a job inside the caller's transaction, so it exists exactly when the change commits.
/// Returns the new job id, or None when `unique_key` already exists.
pub async fn enqueue(
    ctx: &Ctx,
    tx: &mut yiren_store::Tx,
    kind: &str,
    payload: &impl Serialize,
    opts: EnqueueOptions,
) -> DomainResult<Option<i64>> {
    let payload = serde_json::to_string(payload).unwrap_or_else(|_| "null".into());
    let id = ctx.new_id();
    let now = ctx.now();
    let job = NewJob {
        id,
        kind,
        payload: &payload,
        run_at: opts.run_at.unwrap_or(now),
        max_attempts: opts.max_attempts.max(1),
        unique_key: opts.unique_key.as_deref(),
    };
    Ok(store::enqueue(&mut **tx, &job, now).await?.then_some(id))
}

/// Queue several jobs in the caller's transaction with one statement (see [`enqueue`]); how
/// many were created (a unique key already queued is skipped).
pub async fn enqueue_many(
    ctx: &Ctx,
    tx: &mut yiren_store::Tx,
    jobs: &[(&str, serde_json::Value, EnqueueOptions)],
) -> DomainResult<u64> {
    let now = ctx.now();
    let payloads: Vec<String> = jobs.iter().map(|(_, p, _)| p.to_string()).collect();
    Ok(store::enqueue_many(&mut **tx, &new_jobs(ctx, jobs, &payloads, now), now).await?)
}

/// [`enqueue_many`] added to `w`.
pub fn enqueue_many_into(
    ctx: &Ctx,
    w: &mut yiren_store::Writes,
    jobs: &[(&str, serde_json::Value, EnqueueOptions)],
) {
    let now = ctx.now();
    let payloads: Vec<String> = jobs.iter().map(|(_, p, _)| p.to_string()).collect();
    store::enqueue_many_into(w, &new_jobs(ctx, jobs, &payloads, now), now);
}

fn new_jobs<'a>(
    ctx: &Ctx,
    jobs: &'a [(&'a str, serde_json::Value, EnqueueOptions)],
    payloads: &'a [String],
    now: i64,
) -> Vec<NewJob<'a>> {
    jobs.iter()
        .zip(payloads)
        .map(|((kind, _, opts), payload)| NewJob {
            id: ctx.new_id(),
            kind,
            payload,
            run_at: opts.run_at.unwrap_or(now),
            max_attempts: opts.max_attempts.max(1),
            unique_key: opts.unique_key.as_deref(),
        })
        .collect()
}

/// The states a job moves through.
pub const STATES: [&str; 4] = ["queued", "running", "done", "dead"];

/// Parse a state filter; anything but a known state is invalid.
pub fn parse_state(s: Option<&str>) -> DomainResult<Option<&'static str>> {
    match s {
        None | Some("") => Ok(None),
        Some(s) => STATES
            .iter()
            .find(|k| **k == s)
            .map(|k| Some(*k))
            .ok_or(DomainError::invalid("state", "error.invalid")),
    }
}

/// Jobs in a state (or all), newest first, with ids below `before_id`.
pub async fn list(
    ctx: &Ctx,
    state: Option<&str>,
    before_id: i64,
    limit: i64,
) -> DomainResult<Vec<store::JobRow>> {
    Ok(store::list(ctx.db.read(), state, before_id, limit).await?)
}

/// Number of jobs in every state (zero included), in [`STATES`] order.
pub async fn counts(ctx: &Ctx) -> DomainResult<Vec<(&'static str, i64)>> {
    let counts = store::counts(ctx.db.read()).await?;
    Ok(STATES
        .iter()
        .map(|st| {
            (
                *st,
                counts
                    .iter()
                    .find(|(k, _)| k == st)
                    .map(|(_, n)| *n)
                    .unwrap_or(0),
            )
        })
        .collect())
}

/// One job.
pub async fn get(ctx: &Ctx, id: i64) -> DomainResult<store::JobRow> {
    store::get(ctx.db.read(), id).await.map_err(not_found)
}

/// Put a dead job back in the queue with fresh attempts; NotFound unless it is dead.
pub async fn retry(ctx: &Ctx, id: i64) -> DomainResult<store::JobRow> {
    store::retry_dead(ctx.db.write(), id, ctx.now())
        .await
        .map_err(not_found)?;
    get(ctx, id).await
}

fn not_found(e: yiren_store::StoreError) -> DomainError {
    match e {
        yiren_store::StoreError::NotFound => DomainError::NotFound,
        e => e.into(),
    }
}

/// Why a job attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth retrying; `retry_after_ms` honours a service's advice (rate limits).
    #[error("{message}")]
    Transient {
        message: String,
        retry_after_ms: Option<i64>,
    },
    /// Retrying cannot help: the job goes straight to the dead list.
    #[error("{message}")]
    Permanent { message: String },
    /// Not now (a sending window is full): run again at `until_ms`; the attempt does not count.
    #[error("deferred: {reason}")]
    Defer { until_ms: i64, reason: String },
}

impl JobError {
    /// A transient failure.
    pub fn transient(message: impl Into<String>) -> Self {
        JobError::Transient {
            message: message.into(),
            retry_after_ms: None,
        }
    }
    /// A permanent failure.
    pub fn permanent(message: impl Into<String>) -> Self {
        JobError::Permanent {
            message: message.into(),
        }
    }
}

/// What a handler sees of its job.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub attempt: i64,
    /// Attempts allowed before the job goes to the dead list.
    pub max_attempts: i64,
    /// The worker holding the job's lease.
    worker: String,
    /// Set when the handler's own last transaction completed the job ([`JobContext::complete_in`]).
    completed: Arc<AtomicBool>,
}

impl JobContext {
    /// Mark the job done in `tx`, the handler's last transaction, so its outcome and the job's
    /// completion commit together (one commit instead of two). Call [`JobContext::committed`]
    /// once `tx` has committed; until then the worker completes the job itself as usual.
    pub async fn complete_in(&self, tx: &mut yiren_store::Tx, now: i64) -> DomainResult<()> {
        store::complete(&mut **tx, self.id, &self.worker, now).await?;
        Ok(())
    }

    /// [`JobContext::complete_in`] added to `w` (run before the same transaction commits).
    pub fn complete_into(&self, w: &mut yiren_store::Writes, now: i64) {
        store::complete_into(w, self.id, &self.worker, now);
    }

    /// The transaction given to [`JobContext::complete_in`] has committed.
    pub fn committed(&self) {
        self.completed.store(true, Ordering::Release);
    }

    fn is_completed(&self) -> bool {
        self.completed.load(Ordering::Acquire)
    }
}

/// Performs one kind of job. Must be idempotent: the same job may run more than once.
pub trait JobHandler: Send + Sync + 'static {
    /// Perform the job.
    fn run<'a>(&'a self, ctx: &'a Ctx, job: &'a JobContext) -> BoxFuture<'a, Result<(), JobError>>;
}

/// Handlers by job kind.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<String, Arc<dyn JobHandler>>,
}

impl Registry {
    /// Register a handler for `kind`.
    pub fn register(&mut self, kind: &str, h: impl JobHandler) -> &mut Self {
        self.handlers.insert(kind.to_string(), Arc::new(h));
        self
    }
    /// The handler for `kind`.
    pub fn get(&self, kind: &str) -> Option<Arc<dyn JobHandler>> {
        self.handlers.get(kind).cloned()
    }
    /// Registered kinds.
    pub fn kinds(&self) -> Vec<String> {
        let mut k: Vec<_> = self.handlers.keys().cloned().collect();
        k.sort();
        k
    }
}

/// Retry delay for the `attempt`-th failure: 5 s doubling up to 1 h, with ±20 % jitter.
pub fn backoff_ms(attempt: i64, jitter_unit: f64) -> i64 {
    let base = 5_000i64
        .saturating_mul(1i64 << (attempt.clamp(1, 20) - 1) as u32)
        .min(3_600_000);
    let jitter = (base as f64 * 0.2 * (jitter_unit * 2.0 - 1.0)) as i64;
    base + jitter
}

/// Deletes expired sessions, old idempotency keys, stale throttle rows and old finished jobs.
pub struct Cleanup;

impl JobHandler for Cleanup {
    fn run<'a>(
        &'a self,
        ctx: &'a Ctx,
        _job: &'a JobContext,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let now = ctx.now();
            let w = ctx.db.write();
            let err = |e: yiren_store::StoreError| JobError::transient(e.to_string());
            yiren_store::session::delete_expired(w, now, ctx.auth.idle_timeout_ms)
                .await
                .map_err(err)?;
            yiren_store::idempotency::delete_older_than(w, now - 24 * 3_600_000)
                .await
                .map_err(err)?;
            // Abandoned checkouts are kept 90 days.
            yiren_store::abandoned::prune(w, now - 90 * 24 * 3_600_000)
                .await
                .map_err(err)?;
            yiren_store::throttle::delete_stale(w, now - 24 * 3_600_000)
                .await
                .map_err(err)?;
            let c = ctx.auth.customer_idle_timeout_ms;
            yiren_store::customer::delete_expired_sessions(w, now, c)
                .await
                .map_err(err)?;
            yiren_store::customer::delete_codes(w, None, now - 24 * 3_600_000)
                .await
                .map_err(err)?;
            yiren_store::customer::delete_expired_flows(w, now)
                .await
                .map_err(err)?;
            yiren_store::oidc::delete_expired(w, now)
                .await
                .map_err(err)?;
            yiren_store::reach::delete_send_windows_before(w, now - 3_600_000)
                .await
                .map_err(err)?;
            store::delete_done_before(w, now - 7 * 24 * 3_600_000)
                .await
                .map_err(err)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_with_bounded_jitter_and_a_cap() {
        assert_eq!(backoff_ms(1, 0.5), 5_000);
        assert_eq!(backoff_ms(2, 0.5), 10_000);
        assert_eq!(backoff_ms(30, 0.5), 3_600_000);
        assert!((4_000..=6_000).contains(&backoff_ms(1, 0.0)));
        assert!((4_000..=6_000).contains(&backoff_ms(1, 1.0)));
    }
}
