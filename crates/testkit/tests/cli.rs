//! The real `yiren` binary: fail-fast database URLs, `config example`, migrate/backup/restore,
//! graceful SIGTERM, and the crash test (SIGKILL mid-run loses no job).

use std::process::Command;
use std::time::{Duration, Instant};

use yiren_store::job::{self, NewJob};
use yiren_testkit::process::{yiren, Server};
use yiren_testkit::{both_engines, yiren_bin, Receiver, TestDb};

#[test]
fn a_bad_database_url_stops_the_server_at_once_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    for (url, expect) in [
        ("mysql://root@localhost/x", "does not support"),
        (
            "postgres://postgres:pw@127.0.0.1:1/yiren",
            "Check that the server is running",
        ),
        ("sqlite:///definitely/not/here.db", "does not exist"),
        ("::::", "no scheme"),
    ] {
        let start = Instant::now();
        let out = yiren(dir.path())
            .args(["serve", "--addr", "127.0.0.1:0", "--database-url", url])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{url} should fail");
        assert!(err.contains(expect), "{url}: {err}");
        assert!(!err.contains(":pw@"), "password shown: {err}");
        assert!(start.elapsed() < Duration::from_secs(15));
    }
    assert!(
        !dir.path().join("yiren.db").exists(),
        "no database created anywhere"
    );
}

#[test]
fn config_example_prints_every_section() {
    let out = Command::new(yiren_bin())
        .args(["config", "example"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for s in [
        "[server]",
        "[database]",
        "[jobs]",
        "[outbound]",
        "[log]",
        "data_dir",
    ] {
        assert!(text.contains(s), "{s}");
    }
}

#[test]
fn migrate_backup_and_restore_work_from_the_command_line() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let file = a.path().join("x.tar.gz");
    assert!(yiren(a.path()).arg("migrate").status().unwrap().success());
    // A real site: start the server and create the owner through the setup page.
    let server = Server::start(a.path(), "", &[]);
    let url = server.setup_url.clone().expect("setup link");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let csrf = yiren_testkit::csrf_of(&c.get(&url).send().await.unwrap().text().await.unwrap());
        let form =
            yiren_testkit::setup_form(&csrf, "S", "en", "o@example.com", "a long owner passphrase");
        assert_eq!(c.post(&url).form(&form).send().await.unwrap().status(), 303);
    });
    server.signal(libc::SIGTERM);
    assert!(server.wait(Duration::from_secs(30)).success());
    // The new machine was started once before the restore (so it holds a setup token): allowed.
    let started = Server::start(b.path(), "", &[]);
    started.signal(libc::SIGTERM);
    assert!(started.wait(Duration::from_secs(30)).success());
    let out = yiren(a.path()).arg("backup").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = yiren(b.path()).arg("restore").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(b.path().join("yiren.db").exists());
    let restored = Server::start(b.path(), "", &[]);
    assert!(
        restored.setup_url.is_none(),
        "the restored site has its owner: no setup link"
    );
    restored.signal(libc::SIGTERM);
    assert!(restored.wait(Duration::from_secs(30)).success());
    let again = yiren(b.path()).arg("restore").arg(&file).output().unwrap();
    assert!(!again.status.success(), "restoring twice is refused");
}

both_engines! {
    async fn oidc_rotate_key_adds_a_key_and_keeps_the_old_one_published(engine: Engine) {
        let t = TestDb::new(engine).await;
        let db_args: Vec<&str> = if t.url.is_empty() { vec![] } else { vec!["--database-url", t.url.as_str()] };
        for _ in 0..2 {
            let out = yiren(t.dir()).args(&db_args).args(["oidc", "rotate-key"]).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            assert!(String::from_utf8_lossy(&out.stdout).contains("new signing key"));
        }
        let url = if t.url.is_empty() { format!("sqlite://{}/yiren.db", t.dir().display()) } else { t.url.clone() };
        let db = yiren_store::Db::connect(&url, &Default::default()).await.unwrap();
        let keys = yiren_store::oidc::keys(db.read()).await.unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.iter().filter(|k| k.retired_at.is_none()).count(), 1, "one active key");
        assert!(!keys[0].private_key.contains("PRIVATE KEY"), "private keys are stored encrypted");
        db.close().await;
    }

    async fn sigterm_finishes_in_flight_work_and_exits_cleanly(engine: Engine) {
        let t = TestDb::new(engine).await;
        let server = Server::start(t.dir(), &t.url, &[]);
        let base = server.base.clone();
        assert_eq!(reqwest::get(format!("{base}/readyz")).await.unwrap().status(), 200);
        server.signal(libc::SIGTERM);
        let status = server.wait(Duration::from_secs(30));
        assert!(status.success(), "{status:?}");
    }

    async fn a_process_killed_mid_run_loses_no_job(engine: Engine) {
        let t = TestDb::new(engine).await;
        let rx = Receiver::start().await;
        // Migrate, then enqueue 1,000 jobs as a cause's transaction would.
        assert!(yiren(t.dir()).arg("migrate").args(if t.url.is_empty() { vec![] } else { vec!["--database-url", t.url.as_str()] }).status().unwrap().success());
        let url = if t.url.is_empty() { format!("sqlite://{}/yiren.db", t.dir().display()) } else { t.url.clone() };
        let db = yiren_store::Db::connect(&url, &Default::default()).await.unwrap();
        let now = yiren_testkit::real_now();
        let mut tx = db.begin().await.unwrap();
        for i in 0..1000i64 {
            let payload = serde_json::json!({"url": rx.url, "key": format!("job-{i}")}).to_string();
            job::enqueue(&mut *tx, &NewJob { id: 1_000_000 + i, kind: "diagnostic.ping", payload: &payload, run_at: now, max_attempts: 10, unique_key: None }, now).await.unwrap();
        }
        tx.commit().await.unwrap();
        let env = [("YIREN_OUTBOUND__ALLOW_PRIVATE", "true"), ("YIREN_JOBS__CONCURRENCY", "4"), ("YIREN_JOBS__POLL_INTERVAL_MS", "10"), ("YIREN_JOBS__LEASE_SECS", "2")];
        let server = Server::start(t.dir(), &t.url, &env);
        let start = Instant::now();
        while rx.distinct() < 200 {
            assert!(start.elapsed() < Duration::from_secs(120), "jobs are not running");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.signal(libc::SIGKILL);
        server.wait(Duration::from_secs(10));
        let at_kill = rx.distinct();
        assert!(at_kill < 1000, "the kill came mid-run ({at_kill} done)");
        let server = Server::start(t.dir(), &t.url, &env);
        let start = Instant::now();
        loop {
            let done: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'done' AND kind = 'diagnostic.ping'").fetch_one(db.read()).await.unwrap();
            if done == 1000 { break; }
            assert!(start.elapsed() < Duration::from_secs(180), "only {done} jobs done after restart");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(rx.distinct(), 1000, "every job's effect recorded");
        eprintln!("killed after {at_kill} effects; {} deliveries in all ({} repeated after the crash)", rx.deliveries(), rx.deliveries() as usize - 1000);
        server.signal(libc::SIGTERM);
        server.wait(Duration::from_secs(30));
        db.close().await;
    }
}
