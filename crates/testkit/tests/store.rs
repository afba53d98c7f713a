//! The store: both engines reach the same schema, every SQLite connection has its pragmas, job
//! claims never hand one job to two workers, and bad database URLs fail fast with advice.

use yiren_store::engine::DbOptions;
use yiren_store::job::{self, NewJob};
use yiren_store::{schema, Db, Engine as DbEngine};
use yiren_testkit::{both_engines, Engine, TestDb};

async fn open(t: &TestDb) -> Db {
    let url = if t.url.is_empty() {
        format!("sqlite://{}/yiren.db", t.dir().display())
    } else {
        t.url.clone()
    };
    let db = Db::connect(
        &url,
        &DbOptions {
            create_sqlite: true,
            ..Default::default()
        },
    )
    .await
    .expect("connect");
    db.migrate().await.expect("migrate");
    db
}

#[tokio::test]
async fn both_engines_reach_the_same_schema() {
    let lite = TestDb::new(Engine::Sqlite).await;
    let lite_db = open(&lite).await;
    let lite_schema = schema::describe_all(
        &mut lite_db.read().acquire().await.unwrap(),
        DbEngine::Sqlite,
    )
    .await
    .unwrap();
    let mut tables: Vec<&str> = schema::TABLES.to_vec();
    tables.sort();
    assert_eq!(
        lite_schema.keys().map(String::as_str).collect::<Vec<_>>(),
        tables,
        "schema::TABLES must list every table"
    );
    let Some(_) = Engine::postgres() else { return };
    let pg = TestDb::new(Engine::Postgres).await;
    let pg_db = open(&pg).await;
    let pg_schema = schema::describe_all(
        &mut pg_db.read().acquire().await.unwrap(),
        DbEngine::Postgres,
    )
    .await
    .unwrap();
    for (name, t) in &lite_schema {
        assert_eq!(
            Some(t),
            pg_schema.get(name),
            "table {name} differs between SQLite and PostgreSQL"
        );
    }
    assert_eq!(lite_schema.len(), pg_schema.len());
    pg_db.close().await;
}

#[tokio::test]
async fn every_pooled_sqlite_connection_has_wal_full_sync_foreign_keys_and_busy_timeout() {
    let t = TestDb::new(Engine::Sqlite).await;
    let db = open(&t).await;
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(db.read().acquire().await.unwrap());
    }
    conns.push(db.write().acquire().await.unwrap());
    for c in conns.iter_mut() {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut **c)
            .await
            .unwrap();
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut **c)
            .await
            .unwrap();
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut **c)
            .await
            .unwrap();
        let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut **c)
            .await
            .unwrap();
        assert_eq!((mode.as_str(), sync, fk, busy), ("wal", 2, 1, 5000));
    }
}

both_engines! {
    async fn concurrent_workers_never_claim_the_same_job(engine: Engine) {
        let t = TestDb::new(engine).await;
        let db = open(&t).await;
        let now = 1_800_000_000_000i64;
        let mut tx = db.begin().await.unwrap();
        for i in 0..300 {
            let payload = format!("{{\"i\":{i}}}");
            job::enqueue(&mut *tx, &NewJob { id: i + 1, kind: "k", payload: &payload, run_at: now, max_attempts: 3, unique_key: None }, now).await.unwrap();
        }
        tx.commit().await.unwrap();
        // Four independent handles, as four server processes would have.
        let mut handles = Vec::new();
        for w in 0..4 {
            let db = open(&t).await;
            handles.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = job::claim(&db, &format!("w{w}"), now, now + 60_000, 7, &[]).await.unwrap();
                    if got.is_empty() { break; }
                    mine.extend(got.into_iter().map(|j| j.id));
                }
                mine
            }));
        }
        let mut all = Vec::new();
        for h in handles { all.extend(h.await.unwrap()); }
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!((n, all.len()), (300, 300), "every job claimed exactly once");
    }

    async fn a_unique_key_makes_the_second_enqueue_a_no_op(engine: Engine) {
        let t = TestDb::new(engine).await;
        let db = open(&t).await;
        let j = |id| NewJob { id, kind: "k", payload: "{}", run_at: 0, max_attempts: 1, unique_key: Some("order:1:paid") };
        assert!(job::enqueue(db.write(), &j(1), 0).await.unwrap());
        assert!(!job::enqueue(db.write(), &j(2), 0).await.unwrap());
        assert_eq!(job::counts(db.read()).await.unwrap(), vec![("queued".to_string(), 1)]);
    }

    async fn an_expired_lease_makes_the_job_due_again(engine: Engine) {
        let t = TestDb::new(engine).await;
        let db = open(&t).await;
        job::enqueue(db.write(), &NewJob { id: 9, kind: "k", payload: "{}", run_at: 0, max_attempts: 5, unique_key: None }, 0).await.unwrap();
        assert_eq!(job::claim(&db, "dead-process", 10, 1_000, 5, &[]).await.unwrap().len(), 1);
        assert!(job::claim(&db, "other", 500, 60_000, 5, &[]).await.unwrap().is_empty(), "lease still held");
        let again = job::claim(&db, "other", 1_001, 60_000, 5, &[]).await.unwrap();
        assert_eq!((again.len(), again[0].attempts), (1, 2));
    }

    /// A claim takes the earliest due jobs first, whether queued or left by a lapsed lease, up to
    /// its limit, and never one that is not due, held, or running in this worker.
    async fn a_claim_takes_the_earliest_due_jobs_of_both_kinds(engine: Engine) {
        let t = TestDb::new(engine).await;
        let db = open(&t).await;
        let j = |id, run_at| NewJob { id, kind: "k", payload: "{}", run_at, max_attempts: 5, unique_key: None };
        // Jobs 1 (run_at 10) and 2 (run_at 40) are claimed by a process that dies (lease to 1,000),
        // 3 by one that lives (lease to 90,000).
        for (id, at) in [(1, 10), (2, 40)] {
            job::enqueue(db.write(), &j(id, at), 0).await.unwrap();
        }
        assert_eq!(job::claim(&db, "dead", 50, 1_000, 5, &[]).await.unwrap().len(), 2);
        job::enqueue(db.write(), &j(3, 5), 0).await.unwrap();
        assert_eq!(job::claim(&db, "alive", 50, 90_000, 5, &[]).await.unwrap().len(), 1);
        // Queued: 4 due at 20, 5 due at 30, 6 due at 45, 8 due at 1, 7 not due before 10,000.
        for (id, at) in [(4, 20), (5, 30), (6, 45), (7, 10_000), (8, 1)] {
            job::enqueue(db.write(), &j(id, at), 0).await.unwrap();
        }
        let ids = |rows: Vec<job::JobRow>| {
            let mut v: Vec<i64> = rows.into_iter().map(|r| r.id).collect();
            v.sort();
            v
        };
        // At 2,000: due are 8 (1), 1 (10, lapsed), 4 (20), 5 (30), 2 (40, lapsed), 6 (45); 8 is
        // running in this worker.
        let first = job::claim(&db, "w", 2_000, 60_000, 3, &[8]).await.unwrap();
        assert_eq!(ids(first), vec![1, 4, 5], "the three earliest, both kinds merged");
        let rest = job::claim(&db, "w", 2_000, 60_000, 10, &[8]).await.unwrap();
        assert_eq!(ids(rest), vec![2, 6]);
        assert!(job::claim(&db, "w", 2_000, 60_000, 10, &[8]).await.unwrap().is_empty());
    }

    async fn a_worker_never_takes_back_a_job_it_is_still_running(engine: Engine) {
        let t = TestDb::new(engine).await;
        let db = open(&t).await;
        job::enqueue(db.write(), &NewJob { id: 7, kind: "k", payload: "{}", run_at: 0, max_attempts: 5, unique_key: None }, 0).await.unwrap();
        assert_eq!(job::claim(&db, "w", 10, 1_000, 5, &[]).await.unwrap().len(), 1);
        // The heartbeat came late and the lease lapsed while job 7 still runs in this worker.
        assert!(job::claim(&db, "w", 2_000, 60_000, 5, &[7]).await.unwrap().is_empty(), "still running here");
        // Once it is no longer running here (its outcome could not be recorded), it is due again.
        assert_eq!(job::claim(&db, "w", 2_000, 60_000, 5, &[]).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn bad_database_urls_fail_fast_and_say_what_to_do() {
    let opts = DbOptions {
        acquire_timeout: std::time::Duration::from_secs(3),
        ..Default::default()
    };
    let cases = [
        ("mysql://root@localhost/shop", "does not support"),
        ("not a url", "no scheme"),
        ("sqlite:///nonexistent-dir/x/yiren.db", "does not exist"),
        (
            "postgres://postgres@127.0.0.1:1/yiren",
            "Check that the server is running",
        ),
        ("postgres://postgres:s3cret@127.0.0.1:1/yiren", "***"),
    ];
    for (url, expect) in cases {
        let start = std::time::Instant::now();
        let err = Db::connect(url, &opts).await.expect_err(url).to_string();
        assert!(err.contains(expect), "{url}: {err}");
        assert!(!err.contains("s3cret"), "password leaked: {err}");
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
    }
    if Engine::postgres().is_some() {
        let t = TestDb::new(Engine::Postgres).await;
        let missing = t
            .url
            .rsplit_once('/')
            .map(|(b, _)| format!("{b}/yiren_no_such_db"))
            .unwrap();
        let err = Db::connect(&missing, &opts)
            .await
            .expect_err("missing database")
            .to_string();
        assert!(err.contains("createdb"), "{err}");
    }
}
