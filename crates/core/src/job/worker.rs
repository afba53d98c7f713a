//! The worker loop: claim due jobs, run them with bounded concurrency, record the outcome, fire
//! schedules; on shutdown stop claiming, let running jobs finish within a grace period, and give
//! back any that did not.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use yiren_store::job as store;

use super::{backoff_ms, EnqueueOptions, JobContext, JobError, Registry};
use crate::Ctx;

/// A job enqueued on a cron expression.
#[derive(Clone)]
pub struct Schedule {
    /// Unique name (one row in `job_schedules`).
    pub name: String,
    /// Parsed cron expression (5 fields, or 6 with seconds).
    pub cron: cron::Schedule,
    /// Job kind to enqueue.
    pub kind: String,
    /// Job payload (JSON).
    pub payload: serde_json::Value,
}

impl Schedule {
    /// Parse a cron expression: `min hour dom month dow`, or with a leading seconds field.
    pub fn new(
        name: &str,
        expr: &str,
        kind: &str,
        payload: serde_json::Value,
    ) -> Result<Schedule, String> {
        let fields = expr.split_whitespace().count();
        let full = if fields == 5 {
            format!("0 {expr}")
        } else {
            expr.to_string()
        };
        let cron = cron::Schedule::from_str(&full)
            .map_err(|e| format!("schedule {name}: invalid cron expression `{expr}`: {e}"))?;
        Ok(Schedule {
            name: name.into(),
            cron,
            kind: kind.into(),
            payload,
        })
    }

    /// The first due time strictly after `now_ms`.
    pub fn next_after(&self, now_ms: i64) -> Option<i64> {
        let now = chrono::DateTime::from_timestamp_millis(now_ms)?;
        self.cron.after(&now).next().map(|t| t.timestamp_millis())
    }
}

/// Worker tuning.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Identifies this worker's leases.
    pub worker_id: String,
    /// Jobs run at once.
    pub concurrency: usize,
    /// Pause between polls when idle.
    pub poll_interval: Duration,
    /// How long a claimed job belongs to this worker before others may take it.
    pub lease: Duration,
    /// How long running jobs may take to finish at shutdown before they are given back.
    pub shutdown_grace: Duration,
}

/// The ids of the jobs a worker is running.
type Active = Arc<std::sync::Mutex<std::collections::HashSet<i64>>>;

/// Takes a job out of [`Active`] when its run ends, however it ends.
struct Running(Active, i64);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(mut a) = self.0.lock() {
            a.remove(&self.1);
        }
    }
}

/// Drains the job table.
pub struct Worker {
    ctx: Ctx,
    registry: Registry,
    schedules: Vec<Schedule>,
    config: WorkerConfig,
    /// Per schedule, the first time worth looking at its row again: until then a tick touches
    /// no database (it runs after every job, and its transaction would take the SQLite writer).
    not_before: std::sync::Mutex<HashMap<String, i64>>,
}

impl Worker {
    /// A worker over `registry`'s job kinds.
    pub fn new(
        ctx: Ctx,
        registry: Registry,
        schedules: Vec<Schedule>,
        config: WorkerConfig,
    ) -> Self {
        Worker {
            ctx,
            registry,
            schedules,
            config,
            not_before: Default::default(),
        }
    }

    /// Enqueue due scheduled jobs. Several processes may tick at once: the unique key makes the
    /// second enqueue of the same occurrence a no-op.
    pub async fn tick_schedules(&self) -> crate::error::DomainResult<usize> {
        let now = self.ctx.now();
        let mut fired = 0;
        for s in &self.schedules {
            let wait = self
                .not_before
                .lock()
                .expect("not poisoned")
                .get(&s.name)
                .copied();
            if wait.is_some_and(|t| t > now) {
                continue;
            }
            let mut tx = self.ctx.db.begin().await?;
            let next = store::schedule_next(&mut *tx, &s.name).await?;
            let Some(following) = s.next_after(now) else {
                continue;
            };
            // The row's time when it is still ahead, else the occurrence planned now.
            let look_at = next.filter(|due| *due > now).unwrap_or(following);
            match next {
                None => store::schedule_set(&mut *tx, &s.name, following).await?,
                Some(due) if due <= now => {
                    let opts = EnqueueOptions {
                        unique_key: Some(format!("schedule:{}:{due}", s.name)),
                        max_attempts: 3,
                        ..Default::default()
                    };
                    if super::enqueue(&self.ctx, &mut tx, &s.kind, &s.payload, opts)
                        .await?
                        .is_some()
                    {
                        fired += 1;
                    }
                    store::schedule_set(&mut *tx, &s.name, following).await?;
                }
                Some(_) => {}
            }
            tx.commit().await.map_err(yiren_store::StoreError::from)?;
            self.not_before
                .lock()
                .expect("not poisoned")
                .insert(s.name.clone(), look_at);
        }
        Ok(fired)
    }

    /// Run until `cancel` fires, then shut down gracefully.
    pub async fn run(self, cancel: CancellationToken) {
        let this = Arc::new(self);
        let mut running: JoinSet<()> = JoinSet::new();
        // Ids of the jobs running here: the heartbeat keeps their leases and `claim` never takes
        // one of them a second time.
        let active: Active = Arc::default();
        tracing::info!(worker = %this.config.worker_id, "job worker started");
        let heartbeat_stop = CancellationToken::new();
        let heartbeat = tokio::spawn(
            this.clone()
                .heartbeat(active.clone(), heartbeat_stop.clone()),
        );
        loop {
            while running.try_join_next().is_some() {}
            if let Err(e) = this.tick_schedules().await {
                tracing::warn!(error = %e, "schedule tick failed");
            }
            let free = this.config.concurrency.saturating_sub(running.len());
            let mut claimed = 0;
            if free > 0 {
                let now = this.ctx.now();
                let lease_until = now + this.config.lease.as_millis() as i64;
                let mine: Vec<i64> = active
                    .lock()
                    .expect("not poisoned")
                    .iter()
                    .copied()
                    .collect();
                let claim = Claim {
                    worker: this.config.worker_id.clone(),
                    now,
                    lease_until,
                    limit: free as i64,
                    running: mine,
                };
                match claim.run(&this.ctx).await {
                    Ok(jobs) => {
                        claimed = jobs.len();
                        for job in jobs {
                            active.lock().expect("not poisoned").insert(job.id);
                            let w = this.clone();
                            let active = active.clone();
                            running.spawn(async move {
                                // Dropped after the outcome is recorded, or when the job panics.
                                let _running = Running(active, job.id);
                                w.execute(job).await;
                            });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming jobs failed"),
                }
            }
            if claimed == 0 || running.len() >= this.config.concurrency {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(this.config.poll_interval) => {}
                    Some(_) = running.join_next(), if !running.is_empty() => {}
                }
            } else if cancel.is_cancelled() {
                break;
            }
        }
        tracing::info!(
            running = running.len(),
            "job worker stopping: waiting for running jobs"
        );
        let drained = tokio::time::timeout(this.config.shutdown_grace, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            running.abort_all();
            while running.join_next().await.is_some() {}
        }
        heartbeat_stop.cancel();
        let _ = heartbeat.await;
        match store::release_worker(this.ctx.db.write(), &this.config.worker_id, this.ctx.now())
            .await
        {
            Ok(n) if n > 0 => tracing::info!(returned = n, "unfinished jobs returned to the queue"),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "could not return unfinished jobs; their leases will expire")
            }
        }
        tracing::info!("job worker stopped");
    }

    /// Keep the leases of the jobs running here, every third of the lease. A task of its own, so
    /// a claim or a schedule tick waiting for the database never delays it.
    async fn heartbeat(self: Arc<Self>, active: Active, stop: CancellationToken) {
        let lease_ms = self.config.lease.as_millis() as i64;
        let mut every = tokio::time::interval(self.config.lease / 3);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = every.tick() => {}
            }
            if active.lock().expect("not poisoned").is_empty() {
                continue;
            }
            let until = self.ctx.now() + lease_ms;
            if let Err(e) =
                store::extend_leases(self.ctx.db.write(), &self.config.worker_id, until).await
            {
                tracing::warn!(error = %e, "extending job leases failed");
            }
        }
    }

    async fn execute(&self, job: store::JobRow) {
        let worker = &self.config.worker_id;
        let ctx = &self.ctx;
        let jc = JobContext {
            id: job.id,
            kind: job.kind.clone(),
            payload: job.payload.clone(),
            attempt: job.attempts,
            max_attempts: job.max_attempts,
            worker: worker.clone(),
            completed: Default::default(),
        };
        let started = std::time::Instant::now();
        let outcome = if job.attempts > job.max_attempts {
            Err(JobError::permanent(
                "attempts exhausted (the worker running it stopped each time)",
            ))
        } else {
            match self.registry.get(&job.kind) {
                Some(h) => h.run(ctx, &jc).await,
                None => Err(JobError::permanent(format!(
                    "no handler for job kind {}",
                    job.kind
                ))),
            }
        };
        metrics::histogram!("yiren_job_duration_seconds", "kind" => job.kind.clone())
            .record(started.elapsed().as_secs_f64());
        let now = ctx.now();
        let result = match outcome {
            // The handler's last transaction completed it (nothing after that can undo it).
            _ if jc.is_completed() => {
                metrics::counter!("yiren_jobs_completed_total", "kind" => job.kind.clone())
                    .increment(1);
                Ok(())
            }
            Ok(()) => {
                let done = Complete {
                    id: job.id,
                    worker: worker.clone(),
                    now,
                };
                let r = crate::together::write(ctx, done)
                    .await
                    .map_err(|e| match e {
                        crate::DomainError::Store(s) => s,
                        e => yiren_store::StoreError::Corrupt(e.to_string()),
                    });
                metrics::counter!("yiren_jobs_completed_total", "kind" => job.kind.clone())
                    .increment(1);
                r
            }
            Err(JobError::Defer { until_ms, reason }) => {
                tracing::debug!(job = job.id, kind = %job.kind, %reason, "job deferred");
                store::defer(ctx.db.write(), job.id, worker, until_ms, now).await
            }
            Err(e) => {
                metrics::counter!("yiren_job_failures_total", "kind" => job.kind.clone())
                    .increment(1);
                let retry_at = match &e {
                    JobError::Permanent { .. } => None,
                    JobError::Defer { until_ms, .. } => Some(*until_ms),
                    JobError::Transient { .. } if job.attempts >= job.max_attempts => None,
                    JobError::Transient {
                        retry_after_ms: Some(ms),
                        ..
                    } => Some(now + ms),
                    JobError::Transient { .. } => {
                        let unit = (ctx.rng.u64() % 10_000) as f64 / 10_000.0;
                        Some(now + backoff_ms(job.attempts, unit))
                    }
                };
                if retry_at.is_none() {
                    metrics::counter!("yiren_jobs_dead_total", "kind" => job.kind.clone())
                        .increment(1);
                    tracing::error!(job = job.id, kind = %job.kind, attempts = job.attempts, error = %e, "job moved to the dead list");
                } else {
                    tracing::warn!(job = job.id, kind = %job.kind, attempts = job.attempts, error = %e, "job failed; will retry");
                }
                let msg: String = e.to_string().chars().take(2000).collect();
                if retry_at.is_some() || job.kind == crate::reach::KIND {
                    // (A message that dies is in the delivery log; it is not announced by another message.)
                    store::fail(ctx.db.write(), job.id, worker, &msg, retry_at, now).await
                } else {
                    // Dead: tell the owner, in the same transaction as the move.
                    let event = crate::notify::OwnerEvent::JobDead {
                        job_id: job.id,
                        kind: job.kind.clone(),
                        error: msg.clone(),
                    };
                    async {
                        let mut tx = ctx.db.begin().await?;
                        store::fail(&mut *tx, job.id, worker, &msg, None, now).await?;
                        crate::notify::emit(ctx, &mut tx, &event, &job.id.to_string())
                            .await
                            .map_err(|e| match e {
                                crate::DomainError::Store(s) => s,
                                e => yiren_store::StoreError::Corrupt(e.to_string()),
                            })?;
                        tx.commit().await?;
                        Ok(())
                    }
                    .await
                }
            }
        };
        if let Err(e) = result {
            tracing::error!(job = job.id, error = %e, "could not record job outcome; the lease will expire and it runs again");
        }
    }
}

/// Claiming due jobs: on SQLite a piece of the shared commit ([`crate::together`]), so a claim
/// made while orders or outcomes are being written costs no sync of its own.
struct Claim {
    worker: String,
    now: i64,
    lease_until: i64,
    limit: i64,
    running: Vec<i64>,
}

impl Claim {
    async fn run(self, ctx: &Ctx) -> crate::error::DomainResult<Vec<store::JobRow>> {
        if ctx.db.engine() == yiren_store::Engine::Sqlite {
            return crate::together::write(ctx, self).await;
        }
        // PostgreSQL: one statement on its own (SKIP LOCKED keeps workers apart).
        Ok(store::claim(
            &ctx.db,
            &self.worker,
            self.now,
            self.lease_until,
            self.limit,
            &self.running,
        )
        .await?)
    }
}

impl crate::together::Piece for Claim {
    type Out = Vec<store::JobRow>;
    const NAME: &'static str = "job.claim";

    fn write<'a>(
        &'a self,
        ctx: &'a Ctx,
        tx: &'a mut yiren_store::Tx,
        _w: &'a mut yiren_store::Writes,
    ) -> BoxFuture<'a, crate::error::DomainResult<Self::Out>> {
        Box::pin(async move {
            Ok(store::claim_in(
                &mut **tx,
                ctx.db.engine(),
                &self.worker,
                self.now,
                self.lease_until,
                self.limit,
                &self.running,
            )
            .await?)
        })
    }
}

/// A job done whose handler did not complete it in its own transaction.
struct Complete {
    id: i64,
    worker: String,
    now: i64,
}

impl crate::together::Piece for Complete {
    type Out = ();
    const NAME: &'static str = "job.complete";

    fn write<'a>(
        &'a self,
        _ctx: &'a Ctx,
        _tx: &'a mut yiren_store::Tx,
        w: &'a mut yiren_store::Writes,
    ) -> BoxFuture<'a, crate::error::DomainResult<()>> {
        store::complete_into(w, self.id, &self.worker, self.now);
        Box::pin(async { Ok(()) })
    }
}
