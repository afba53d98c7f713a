//! Backup and restore: a round trip is lossless, across engines in both directions, while the
//! server runs; restore refuses a database that is not empty.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use yiren::backup;
use yiren_testkit::{both_engines, Engine, TestApp, TestDb};

/// Every entry of an archive but the manifest (whose time and source engine differ by design).
fn contents(archive: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(archive).unwrap(),
    ));
    let mut out = BTreeMap::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        if name != "manifest.json" {
            out.insert(name, data);
        }
    }
    out
}

async fn populate(app: &TestApp) {
    let c = app
        .setup_owner("owner@example.com", "a long owner passphrase")
        .await;
    app.api_token(&c, &["shop:read", "jobs:read"]).await;
    let csrf = app.csrf(&c, "/admin/staff").await;
    c.post(app.url("/admin/staff"))
        .form(&[
            ("_csrf", csrf.as_str()),
            ("name", "助手 \"Q\" 'x'\n"),
            ("email", "h@example.com"),
            ("password", "helper passphrase 1"),
        ])
        .send()
        .await
        .unwrap();
    let ctx = &app.state.ctx;
    let mut tx = ctx.db.begin().await.unwrap();
    for i in 0..5 {
        let opts = yiren_core::job::EnqueueOptions {
            run_at: Some(i64::MAX / 4),
            unique_key: Some(format!("u{i}")),
            ..Default::default()
        };
        yiren_core::job::enqueue(
            ctx,
            &mut tx,
            "test.noop",
            &serde_json::json!({"i": i, "text": "中文 ✓"}),
            opts,
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    // The user pool and single sign-on: a customer and a client app.
    app.customer("customer@example.com").await;
    yiren_core::oidc::create_client(ctx, "App", "https://app.example/cb", "", true)
        .await
        .unwrap();
    std::fs::create_dir_all(app.db.dir().join("files/products")).unwrap();
    std::fs::write(app.db.dir().join("files/products/a.bin"), [0u8, 1, 2, 255]).unwrap();
    std::fs::create_dir_all(app.db.dir().join("themes/shop")).unwrap();
    std::fs::write(
        app.db.dir().join("themes/shop/home.html"),
        "{% extends \"base.html\" %}{% block body %}<h1>MY THEME</h1>{% endblock %}",
    )
    .unwrap();
}

fn other(engine: Engine) -> Engine {
    match engine {
        Engine::Sqlite if Engine::postgres().is_some() => Engine::Postgres,
        _ => Engine::Sqlite,
    }
}

both_engines! {
    async fn a_round_trip_is_lossless_across_engines(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        populate(&app).await;
        let work = tempfile::tempdir().unwrap();
        let first = work.path().join("first.tar.gz");
        // Online: the server is running while the backup is taken.
        let m = backup::backup(&app.config, &app.state.ctx.db, &first).await.unwrap();
        assert_eq!((m.tables["staff"], m.tables["jobs"], m.tables["customers"], m.files), (2, 6, 1, 2), "5 test jobs and the customer's code mail");
        let source = contents(&first);
        drop(app);

        // Into the other engine, then back out again.
        let target = TestDb::new(other(engine)).await;
        let config = target.config();
        let db = yiren::open_db(&config).await.unwrap();
        backup::restore(&config, &db, &first).await.unwrap();
        let second = work.path().join("second.tar.gz");
        backup::backup(&config, &db, &second).await.unwrap();
        assert_eq!(contents(&second), source, "{engine:?} -> {:?} -> archive is identical", target.engine);

        // The restored site works: the owner signs in with the old password, the theme applies.
        db.close().await;
        let app2 = TestApp::start(target, config).await;
        assert!(app2.setup_url.is_none(), "no setup link: the owner exists");
        let c = app2.client();
        assert_eq!(app2.sign_in(&c, "owner@example.com", "a long owner passphrase").await.status(), 303);
        let home = c.get(app2.url("/")).send().await.unwrap().text().await.unwrap();
        assert!(home.contains("MY THEME"));
        // The server key came along: the single sign-on signing key still decrypts (the start
        // checks it) and the published key is the same.
        assert!(source.contains_key("secret.key"));
        let jwks: serde_json::Value = c.get(app2.url("/oauth/jwks.json")).send().await.unwrap().json().await.unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    }

    async fn restore_refuses_a_database_that_is_not_empty(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        populate(&app).await;
        let work = tempfile::tempdir().unwrap();
        let file = work.path().join("b.tar.gz");
        backup::backup(&app.config, &app.state.ctx.db, &file).await.unwrap();
        std::fs::remove_dir_all(app.db.dir().join("files")).unwrap();
        std::fs::remove_dir_all(app.db.dir().join("themes")).unwrap();
        let err = backup::restore(&app.config, &app.state.ctx.db, &file).await.unwrap_err().to_string();
        assert!(err.contains("not empty"), "{err}");
        let junk = work.path().join("junk.tar.gz");
        std::fs::write(&junk, b"not a backup").unwrap();
        let fresh = TestDb::new(engine).await;
        let cfg = fresh.config();
        let db = yiren::open_db(&cfg).await.unwrap();
        assert!(backup::restore(&cfg, &db, &junk).await.is_err());
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM staff").fetch_one(db.read()).await.unwrap();
        assert_eq!(n, 0, "nothing half-written");
        db.close().await;
    }
}
