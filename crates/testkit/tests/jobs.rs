//! Durable jobs through the real worker: the outbox commits with its cause, retries back off,
//! rate-limit advice is honoured, failures reach the dead list and come back, schedules fire once
//! per occurrence, and shutdown returns unfinished jobs.

use std::time::Duration;

use serde_json::json;
use yiren_core::job::{self, EnqueueOptions, Schedule, Worker, WorkerConfig};
use yiren_store::job as store;
use yiren_testkit::{both_engines, Receiver, TestApp};

async fn enqueue_ping(app: &TestApp, url: &str, key: &str, max_attempts: i64) -> i64 {
    let ctx = &app.state.ctx;
    let mut tx = ctx.db.begin().await.unwrap();
    let id = job::enqueue(
        ctx,
        &mut tx,
        "diagnostic.ping",
        &json!({"url": url, "key": key}),
        EnqueueOptions {
            max_attempts,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn wait_until(
    app: &TestApp,
    id: i64,
    what: &str,
    pred: impl Fn(&store::JobRow) -> bool,
) -> store::JobRow {
    for _ in 0..500 {
        let j = store::get(app.state.ctx.db.read(), id).await.unwrap();
        if pred(&j) {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "job {id} never became {what}: {:?}",
        store::get(app.state.ctx.db.read(), id).await.unwrap()
    );
}

async fn wait_for(app: &TestApp, id: i64, state: &str) -> store::JobRow {
    wait_until(app, id, state, |j| j.state == state).await
}

/// Wait until attempt `n` failed and the job waits for its retry.
async fn wait_failed(app: &TestApp, id: i64, n: i64) -> store::JobRow {
    wait_until(app, id, "failed and queued", |j| {
        j.state == "queued" && j.attempts == n && j.last_error.is_some()
    })
    .await
}

both_engines! {
    async fn a_job_exists_exactly_when_its_transaction_commits(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let rx = Receiver::start().await;
        let ctx = &app.state.ctx;
        let mut tx = ctx.db.begin().await.unwrap();
        job::enqueue(ctx, &mut tx, "diagnostic.ping", &json!({"url": rx.url, "key": "rolled-back"}), EnqueueOptions::default()).await.unwrap();
        tx.rollback().await.unwrap();
        let id = enqueue_ping(&app, &rx.url, "committed", 3).await;
        wait_for(&app, id, "done").await;
        assert!(rx.has("committed"));
        assert!(!rx.has("rolled-back"));
        assert_eq!(store::counts(ctx.db.read()).await.unwrap(), vec![("done".to_string(), 1)]);
    }

    async fn failures_back_off_then_go_dead_and_a_retry_brings_them_back(engine: Engine) {
        let app = TestApp::spawn_with(engine, |c| c.server.metrics_addr = "127.0.0.1:0".into()).await;
        let rx = Receiver::start().await;
        let id = enqueue_ping(&app, &rx.route("broken"), "k", 3).await;
        let mut last_run_at = 0;
        for attempt in 1..=2 {
            let j = wait_failed(&app, id, attempt).await;
            assert!(j.last_error.as_deref().unwrap().contains("500"));
            let delay = j.run_at - app.clock_now();
            let base = 5_000 * (1 << (attempt - 1));
            assert!(delay >= base * 8 / 10 - 100 && delay <= base * 12 / 10, "attempt {attempt}: delay {delay} ms");
            assert!(j.run_at > last_run_at);
            last_run_at = j.run_at;
            app.clock.advance(delay + 1);
        }
        let dead = wait_for(&app, id, "dead").await;
        assert_eq!(dead.attempts, 3);
        let metrics = reqwest::get(format!("http://{}/metrics", app.metrics_addr.unwrap())).await.unwrap().text().await.unwrap();
        assert!(metrics.contains("yiren_job_failures_total{kind=\"diagnostic.ping\"} 3"), "{metrics}");
        assert!(metrics.contains("yiren_jobs{state=\"dead\"} 1"));
        assert!(metrics.contains("yiren_db_pool_connections{state=\"open\"}"));
        // The dashboard lists it with a retry button; the button queues it again.
        let c = app.setup_owner("o@example.com", "a long owner passphrase").await;
        let dash = c.get(app.url("/admin")).send().await.unwrap().text().await.unwrap();
        assert!(dash.contains(&format!("/admin/jobs/{id}/retry")));
        let csrf = app.csrf(&c, "/admin").await;
        assert_eq!(c.post(app.url(&format!("/admin/jobs/{id}/retry"))).form(&[("_csrf", csrf.as_str())]).send().await.unwrap().status(), 303);
        let j = store::get(app.state.ctx.db.read(), id).await.unwrap();
        assert!(j.state == "queued" || j.state == "running");
    }

    async fn a_rate_limit_retry_after_is_honoured(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let rx = Receiver::start().await;
        let id = enqueue_ping(&app, &rx.route("limited"), "r", 5).await;
        let j = wait_failed(&app, id, 1).await;
        assert_eq!(j.run_at - app.clock_now(), 120_000, "exactly the advised 120 s");
        app.clock.advance(120_001);
        wait_for(&app, id, "done").await;
        assert!(rx.has("r"));
    }

    async fn a_schedule_fires_once_per_occurrence_even_with_two_workers(engine: Engine) {
        let app = TestApp::spawn_with(engine, |c| c.jobs.schedules.clear()).await;
        let ctx = app.state.ctx.clone();
        let every_minute = Schedule::new("probe", "* * * * *", "test.noop", json!({})).unwrap();
        let cfg = |id: &str| WorkerConfig { worker_id: id.into(), concurrency: 1, poll_interval: Duration::from_millis(10), lease: Duration::from_secs(60), shutdown_grace: Duration::from_secs(1) };
        let a = Worker::new(ctx.clone(), job::Registry::default(), vec![every_minute.clone()], cfg("a"));
        let b = Worker::new(ctx.clone(), job::Registry::default(), vec![every_minute], cfg("b"));
        assert_eq!(a.tick_schedules().await.unwrap() + b.tick_schedules().await.unwrap(), 0, "the first tick only plans");
        for minute in 1..=3 {
            app.clock.advance(60_000);
            let (x, y) = tokio::join!(a.tick_schedules(), b.tick_schedules());
            assert_eq!(x.unwrap() + y.unwrap(), 1, "minute {minute}");
        }
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE kind = 'test.noop'").fetch_one(ctx.db.read()).await.unwrap();
        assert_eq!(n, 3);
    }

    async fn shutdown_returns_a_running_job_to_the_queue(engine: Engine) {
        let app = TestApp::spawn_with(engine, |c| c.server.shutdown_grace_secs = 1).await;
        let rx = Receiver::start().await;
        let id = enqueue_ping(&app, &rx.route("slow"), "s", 5).await;
        wait_for(&app, id, "running").await;
        let db = app.stop().await;
        let url = if db.url.is_empty() { format!("sqlite://{}/yiren.db", db.dir().display()) } else { db.url.clone() };
        let reopened = yiren_store::Db::connect(&url, &Default::default()).await.unwrap();
        let j = store::get(reopened.read(), id).await.unwrap();
        assert_eq!((j.state.as_str(), j.attempts, j.locked_by), ("queued", 0, None));
        reopened.close().await;
    }
}

both_engines! {
    async fn the_cleanup_job_removes_expired_sessions_and_old_keys(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let c = app.setup_owner("o@example.com", "a long owner passphrase").await;
        let ctx = &app.state.ctx;
        let sessions = || async { sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM staff_sessions").fetch_one(ctx.db.read()).await.unwrap() };
        assert_eq!(sessions().await, 1);
        app.clock.advance(13 * 3_600_000);
        let mut tx = ctx.db.begin().await.unwrap();
        let id = job::enqueue(ctx, &mut tx, "maintenance.cleanup", &json!(null), EnqueueOptions::default()).await.unwrap().unwrap();
        tx.commit().await.unwrap();
        wait_for(&app, id, "done").await;
        assert_eq!(sessions().await, 0, "the expired session row is gone");
        assert_eq!(c.get(app.url("/admin")).send().await.unwrap().status(), 303);
    }
}

trait ClockNow {
    fn clock_now(&self) -> i64;
}

impl ClockNow for TestApp {
    fn clock_now(&self) -> i64 {
        use yiren_core::Clock;
        self.clock.now_ms()
    }
}
