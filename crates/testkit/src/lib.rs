//! Test support for Yiren: [`TestApp`] builds the app exactly as `serve` does (same
//! [`yiren::App::build`]) on a random port with a fresh database; [`Engine`] runs a test on SQLite
//! and, when `YIREN_TEST_DATABASE_URL` is set, on PostgreSQL too (a fresh database per test);
//! [`both_engines!`] writes the pair; [`Receiver`] is an idempotent HTTP receiver; [`browser`]
//! drives headless Chromium.

pub mod browser;
pub mod fake_alipay;
pub mod fake_epay;
pub mod fake_gateway;
pub mod fake_lemonsqueezy;
pub mod fake_oauth;
pub mod fake_pay;
pub mod fake_paypal;
pub mod fake_push;
pub mod fake_stripe;
pub mod fake_wechat;
pub mod fake_wechatpay;
pub mod fake_xorpay;
pub mod fake_xunhupay;
pub mod gateway_suite;
pub mod process;
mod receiver;
pub mod s3;
pub mod smtp;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use yiren::{App, Config, Deps};
use yiren_core::{ManualClock, Rng};
use yiren_web::AppState;

pub use receiver::Receiver;

/// Environment variable naming the PostgreSQL server tests may create databases on.
pub const PG_ENV: &str = "YIREN_TEST_DATABASE_URL";
/// When set to 1, a missing [`PG_ENV`] fails the PostgreSQL half of each test instead of skipping it.
pub const PG_REQUIRED_ENV: &str = "YIREN_TEST_REQUIRE_POSTGRES";

/// A database engine to test on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    /// PostgreSQL if configured; None (and a note) when not, unless it is required.
    pub fn postgres() -> Option<Engine> {
        if std::env::var(PG_ENV).is_ok_and(|v| !v.is_empty()) {
            return Some(Engine::Postgres);
        }
        if std::env::var(PG_REQUIRED_ENV).is_ok_and(|v| v == "1") {
            panic!("{PG_REQUIRED_ENV}=1 but {PG_ENV} is not set");
        }
        eprintln!("PostgreSQL half skipped: set {PG_ENV}=postgres://postgres@127.0.0.1:5432/postgres to run it");
        None
    }
}

/// Run each `async fn name(engine: Engine) { ... }` as two tests, `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! both_engines {
    ($( $(#[$m:meta])* async fn $name:ident($e:ident : Engine) $body:block )*) => {
        $(
            $(#[$m])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let $e = $crate::Engine::Sqlite;
                    $body
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let Some($e) = $crate::Engine::postgres() else { return };
                    $body
                }
            }
        )*
    };
}

/// A fresh, empty database for one test: a SQLite file in a temporary data directory, or a new
/// PostgreSQL database dropped when this is dropped.
pub struct TestDb {
    /// The engine.
    pub engine: Engine,
    /// The URL to pass as `--database-url` (empty for SQLite: the data directory's default file).
    pub url: String,
    /// The data directory.
    pub data_dir: tempfile::TempDir,
    pg_name: Option<String>,
}

fn pg_admin_url() -> String {
    std::env::var(PG_ENV).unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn pg_url_for(db: &str) -> String {
    let mut u = url::Url::parse(&pg_admin_url()).expect("valid test database URL");
    u.set_path(&format!("/{db}"));
    u.to_string()
}

async fn pg_exec(sql: &str) {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(&pg_admin_url())
        .await
        .expect("connect to the test PostgreSQL server");
    sqlx::query(sql)
        .execute(&mut c)
        .await
        .expect("admin statement");
    c.close().await.ok();
}

impl TestDb {
    /// A fresh database on `engine`.
    pub async fn new(engine: Engine) -> TestDb {
        let data_dir = tempfile::Builder::new()
            .prefix("yiren-test-")
            .tempdir()
            .expect("temp dir");
        match engine {
            Engine::Sqlite => TestDb {
                engine,
                url: String::new(),
                data_dir,
                pg_name: None,
            },
            Engine::Postgres => {
                let name = format!("yiren_t_{}", Rng::os().u64() % 1_000_000_000_000);
                pg_exec(&format!("CREATE DATABASE {name}")).await;
                TestDb {
                    engine,
                    url: pg_url_for(&name),
                    data_dir,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// A configuration pointing at this database and data directory, on a random port.
    pub fn config(&self) -> Config {
        let mut c = Config {
            data_dir: self.data_dir.path().to_path_buf(),
            ..Default::default()
        };
        c.database.url = yiren_core::Secret::new(self.url.clone());
        c.server.addr = "127.0.0.1:0".into();
        c.server.shutdown_grace_secs = 5;
        c.jobs.poll_interval_ms = 20;
        c.outbound.allow_private = true;
        c
    }

    /// The data directory path.
    pub fn dir(&self) -> &Path {
        self.data_dir.path()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Best effort, on a separate thread so it works whether or not a runtime is running.
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(async {
                        use sqlx::Connection;
                        if let Ok(mut c) = sqlx::PgConnection::connect(&pg_admin_url()).await {
                            let _ = sqlx::query(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .execute(&mut c)
                            .await;
                        }
                    });
                }
            })
            .join();
        }
    }
}

/// A running app on a random port.
pub struct TestApp {
    /// The database and data directory.
    pub db: TestDb,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The one-time setup URL printed at start (None once an owner exists).
    pub setup_url: Option<String>,
    /// The clock the app reads; advance it to move time.
    pub clock: ManualClock,
    /// The app's state (database, services).
    pub state: AppState,
    /// The configuration it was built with.
    pub config: Config,
    /// Metrics listener address, when configured.
    pub metrics_addr: Option<std::net::SocketAddr>,
    shutdown: CancellationToken,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Now, in unix milliseconds, from the real clock.
pub fn real_now() -> i64 {
    use yiren_core::Clock;
    yiren_core::SystemClock.now_ms()
}

impl TestApp {
    /// Spawn on a fresh database.
    pub async fn spawn(engine: Engine) -> TestApp {
        Self::spawn_with(engine, |_| {}).await
    }

    /// Spawn with a configuration adjusted by `f`.
    pub async fn spawn_with(engine: Engine, f: impl FnOnce(&mut Config)) -> TestApp {
        let db = TestDb::new(engine).await;
        let mut config = db.config();
        f(&mut config);
        Self::start(db, config).await
    }

    /// Start the app on an existing database (e.g. after a restore).
    pub async fn start(db: TestDb, config: Config) -> TestApp {
        Self::start_with_gateways(db, config, vec![]).await
    }

    /// Spawn on a fresh database with payment gateways beyond the manual one (fakes).
    pub async fn spawn_with_gateways(
        engine: Engine,
        gateways: Vec<Arc<dyn yiren_core::payment::PaymentGateway>>,
    ) -> TestApp {
        let db = TestDb::new(engine).await;
        let config = db.config();
        Self::start_with_gateways(db, config, gateways).await
    }

    /// [`TestApp::start`] with payment gateways beyond the manual one.
    pub async fn start_with_gateways(
        db: TestDb,
        config: Config,
        gateways: Vec<Arc<dyn yiren_core::payment::PaymentGateway>>,
    ) -> TestApp {
        let clock = ManualClock::new(real_now());
        let deps = Deps {
            clock: Arc::new(clock.clone()),
            rng: Rng::os(),
            gateways,
        };
        let app = App::build(&config, deps).await.expect("app builds");
        let base = format!("http://{}", app.local_addr());
        let setup_url = app.setup_url.clone();
        let metrics_addr = app.metrics_addr();
        let state = app.state.clone();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(app.run(shutdown.clone()));
        TestApp {
            db,
            base,
            setup_url,
            clock,
            state,
            config,
            metrics_addr,
            shutdown,
            handle: Some(handle),
        }
    }

    /// The app built on a fresh database but not started — no HTTP server, no job worker — for a
    /// test that runs the jobs itself (two simulated years of renewals) with nothing else
    /// running beside it. Returns the database (dropped with the test), the state and the clock.
    pub async fn built(engine: Engine) -> (TestDb, AppState, ManualClock) {
        let db = TestDb::new(engine).await;
        let config = db.config();
        let clock = ManualClock::new(real_now());
        let deps = Deps {
            clock: Arc::new(clock.clone()),
            rng: Rng::os(),
            gateways: vec![],
        };
        let app = App::build(&config, deps).await.expect("app builds");
        let state = app.state.clone();
        (db, state, clock)
    }

    /// An app whose mail goes to `sink` (From: `小店 <shop@example.com>`).
    pub async fn spawn_with_sink(engine: Engine, sink: &smtp::SmtpSink) -> TestApp {
        let url = sink.url();
        TestApp::spawn_with(engine, move |c| {
            c.mail.smtp_url = yiren_core::Secret::new(url);
            c.mail.from = "小店 <shop@example.com>".into();
        })
        .await
    }

    /// A browser-like client with its own cookie jar (no redirects followed).
    pub fn client(&self) -> reqwest::Client {
        client_from(None)
    }

    /// A client whose requests come from another loopback address (a different client IP).
    pub fn client_from(&self, ip: &str) -> reqwest::Client {
        client_from(Some(ip))
    }

    /// Absolute URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Complete setup through the real form; returns a signed-in client.
    pub async fn setup_owner(&self, email: &str, password: &str) -> reqwest::Client {
        let c = self.client();
        let url = self.setup_url.clone().expect("setup pending");
        let csrf = csrf_of(&c.get(&url).send().await.unwrap().text().await.unwrap());
        let r = c
            .post(&url)
            .form(&setup_form(&csrf, "测试小店", "zh-CN", email, password))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            303,
            "setup should redirect: {}",
            r.text().await.unwrap_or_default()
        );
        c
    }

    /// Sign in through the real form with `c`; returns the response.
    pub async fn sign_in(
        &self,
        c: &reqwest::Client,
        email: &str,
        password: &str,
    ) -> reqwest::Response {
        let csrf = self.csrf(c, "/admin/sign-in").await;
        c.post(self.url("/admin/sign-in"))
            .form(&[
                ("_csrf", csrf.as_str()),
                ("email", email),
                ("password", password),
                ("next", "/admin"),
            ])
            .send()
            .await
            .unwrap()
    }

    /// Every table's rows, with the bookkeeping columns a read legitimately touches blanked: two
    /// snapshots compare equal when nothing changed.
    pub async fn snapshot(&self) -> Vec<serde_json::Value> {
        let db = &self.state.ctx.db;
        let mut conn = db.read().acquire().await.unwrap();
        let mut out = Vec::new();
        for table in yiren_store::schema::TABLES {
            yiren_store::dump::read_table(&mut conn, db.engine(), table, |mut row| {
                row.remove("last_seen_at");
                row.remove("last_used_at");
                out.push(serde_json::json!({ "table": table, "row": row }));
                Ok(())
            })
            .await
            .unwrap();
        }
        out
    }

    /// Every message written to the mail directory (no SMTP configured) addressed to `to`, oldest
    /// first, as raw RFC 5322 text.
    pub fn mails_to(&self, to: &str) -> Vec<String> {
        let dir = self.db.dir().join("mail");
        let mut found: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                    .filter_map(|e| {
                        let text = std::fs::read_to_string(e.path()).ok()?;
                        let modified = e.metadata().ok()?.modified().ok()?;
                        let head = text.split("\r\n\r\n").next().unwrap_or("");
                        head.lines()
                            .any(|l| l.to_ascii_lowercase().starts_with("to:") && l.contains(to))
                            .then_some((modified, text))
                    })
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found.into_iter().map(|(_, t)| t).collect()
    }

    /// Wait (up to 15 s) until `to` has received more than `seen` messages; return the newest.
    pub async fn wait_for_mail(&self, to: &str, seen: usize) -> String {
        for _ in 0..300 {
            let all = self.mails_to(to);
            if all.len() > seen {
                return all.last().unwrap().clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no mail to {to} after 15 s");
    }

    /// Ask for a sign-in code for `email` with `c` and return the code from the mail it gets.
    pub async fn request_code(&self, c: &reqwest::Client, email: &str) -> String {
        let seen = self.mails_to(email).len();
        let csrf = self.csrf(c, "/account/sign-in").await;
        let r = c
            .post(self.url("/account/code"))
            .form(&[("_csrf", csrf.as_str()), ("email", email)])
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            303,
            "code request: {}",
            r.text().await.unwrap_or_default()
        );
        code_in_mail(&self.wait_for_mail(email, seen).await)
    }

    /// Submit a code for `email` with `c` (the browser that asked for it); returns the response.
    pub async fn submit_code(
        &self,
        c: &reqwest::Client,
        email: &str,
        code: &str,
    ) -> reqwest::Response {
        let csrf = self.csrf(c, "/account/verify").await;
        c.post(self.url("/account/verify"))
            .form(&[("_csrf", csrf.as_str()), ("email", email), ("code", code)])
            .send()
            .await
            .unwrap()
    }

    /// Sign a customer in (or up) by email code; returns the signed-in client.
    pub async fn customer(&self, email: &str) -> reqwest::Client {
        let c = self.client();
        let code = self.request_code(&c, email).await;
        let r = self.submit_code(&c, email, &code).await;
        assert_eq!(
            r.status(),
            303,
            "verify: {}",
            r.text().await.unwrap_or_default()
        );
        c
    }

    /// The CSRF token on an admin page, fetched with `c`.
    pub async fn csrf(&self, c: &reqwest::Client, path: &str) -> String {
        csrf_of(
            &c.get(self.url(path))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        )
    }

    /// Create an API token with `scopes` for the account signed in on `c`, through the admin form.
    pub async fn api_token(&self, c: &reqwest::Client, scopes: &[&str]) -> String {
        let csrf = self.csrf(c, "/admin/tokens").await;
        let mut form: Vec<(&str, &str)> = vec![("_csrf", csrf.as_str()), ("name", "test")];
        form.extend(scopes.iter().map(|s| ("scope", *s)));
        let page = c
            .post(self.url("/admin/tokens"))
            .form(&form)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let start =
            page.find("id=\"new-token\">").expect("token shown") + "id=\"new-token\">".len();
        page[start..].split('<').next().unwrap().to_string()
    }

    /// Stop gracefully and wait.
    pub async fn stop(mut self) -> TestDb {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), h).await;
        }
        self.state.ctx.db.close().await;
        std::mem::replace(
            &mut self.db,
            TestDb {
                engine: Engine::Sqlite,
                url: String::new(),
                data_dir: tempfile::tempdir().unwrap(),
                pg_name: None,
            },
        )
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn client_from(ip: Option<&str>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30));
    if let Some(ip) = ip {
        b = b.local_address(ip.parse::<std::net::IpAddr>().expect("ip"));
    }
    b.build().expect("client")
}

/// The setup page's fields: a site named `site` in `locale` (CNY or USD by locale, Shanghai or UTC),
/// owned by `email` with `password`.
pub fn setup_form<'a>(
    csrf: &'a str,
    site: &'a str,
    locale: &'a str,
    email: &'a str,
    password: &'a str,
) -> Vec<(&'a str, &'a str)> {
    let (currency, zone) = if locale == "zh-CN" {
        ("CNY", "Asia/Shanghai")
    } else {
        ("USD", "UTC")
    };
    vec![
        ("_csrf", csrf),
        ("site_name", site),
        ("locale", locale),
        ("currency", currency),
        ("time_zone", zone),
        ("name", if locale == "zh-CN" { "店主" } else { "Owner" }),
        ("email", email),
        ("password", password),
        ("password_confirm", password),
    ]
}

/// The body of a GET to `url` on `c`, as text.
pub async fn text_of(c: &reqwest::Client, url: impl reqwest::IntoUrl) -> String {
    c.get(url).send().await.unwrap().text().await.unwrap()
}

/// The `Location` header of a response ("" when none).
pub fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The text part of a raw message, decoded.
pub fn mail_text(mail: &str) -> String {
    mail_parser::MessageParser::default()
        .parse(mail.as_bytes())
        .and_then(|m| m.body_text(0).map(|t| t.into_owned()))
        .unwrap_or_else(|| panic!("not a message with a text part: {mail}"))
}

/// A header of a raw message, decoded (e.g. `Subject`).
pub fn mail_header(mail: &str, name: &str) -> Option<String> {
    let m = mail_parser::MessageParser::default().parse(mail.as_bytes())?;
    m.header(name).and_then(|h| h.as_text()).map(str::to_string)
}

/// The 6-digit code in a sign-in mail's text part.
pub fn code_in_mail(mail: &str) -> String {
    let text = mail_text(mail);
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap_or_else(|| panic!("no code in mail: {text}"))
        .to_string()
}

/// Extract the `_csrf` hidden field from a page.
pub fn csrf_of(page: &str) -> String {
    field_of(page, "_csrf")
}

/// The value of the first form field called `name` on a page (`name="…" value="…"`).
pub fn field_of(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in page: {}", &page[..page.len().min(500)]))
        + marker.len();
    page[start..].split('"').next().unwrap().to_string()
}

/// An active product with one tracked variant per (sku, price in CNY fen, stock), 500 g each;
/// returns the variant ids.
pub async fn product(
    ctx: &yiren_core::Ctx,
    handle: &str,
    kind: yiren_core::catalog::Kind,
    variants: &[(&str, i64, i64)],
) -> Vec<i64> {
    use yiren_core::catalog::{Price, ProductInput, VariantInput};
    let input = ProductInput {
        title: format!("商品 {handle}"),
        handle: handle.into(),
        kind,
        status: "active".into(),
        options: vec!["款式".into()],
        variants: variants
            .iter()
            .map(|(sku, amount, stock)| VariantInput {
                values: vec![sku.to_string()],
                sku: sku.to_string(),
                track_inventory: true,
                initial_stock: *stock,
                grams: 500,
                prices: vec![Price {
                    currency: "CNY".into(),
                    amount: *amount,
                    compare_at: None,
                }],
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let p = yiren_core::catalog::create(ctx, &input, "test")
        .await
        .expect("product");
    p.variants.iter().map(|v| v.row.id).collect()
}

/// A customer's paid monthly membership (¥19.00, manual payment confirmed): the recurring plan it
/// started (`core::recurring`). `handle` names the membership product it creates.
pub async fn membership_plan(
    ctx: &yiren_core::Ctx,
    handle: &str,
    customer_id: i64,
    email: &str,
) -> i64 {
    use yiren_core::catalog::{self, Details, Kind, Price, ProductInput, VariantInput};
    let input = ProductInput {
        title: "月度会员".into(),
        handle: handle.into(),
        kind: Kind::Membership,
        status: "active".into(),
        details: Details {
            membership_months: Some(1),
            ..Default::default()
        },
        variants: vec![VariantInput {
            prices: vec![Price {
                currency: "CNY".into(),
                amount: 1_900,
                compare_at: None,
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let v = catalog::create(ctx, &input, "test").await.unwrap().variants[0]
        .row
        .id;
    let s = yiren_core::checkout::Submit {
        token: format!("plan-{handle}"),
        email: email.into(),
        customer_id: Some(customer_id),
        lines: vec![yiren_core::cart::Line {
            variant_id: v,
            quantity: 1,
        }],
        gateway: "manual".into(),
        ..Default::default()
    };
    let o = yiren_core::checkout::place(ctx, &s).await.unwrap();
    yiren_core::order::confirm_manual(ctx, o.id, "owner@example.com")
        .await
        .unwrap();
    yiren_store::recurring::by_first_order(ctx.db.read(), o.id)
        .await
        .unwrap()
        .expect("a monthly membership starts a plan")
        .id
}

/// Path of the `yiren` binary built for the tests (target/<profile>/yiren).
pub fn yiren_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("yiren");
    assert!(
        bin.is_file(),
        "{} not built: run the tests with `cargo nextest run --workspace`",
        bin.display()
    );
    bin
}

/// Write a test artifact (screenshots, logs) under `<workspace>/target/test-artifacts/`.
pub fn artifact_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .and_then(|d| d.parent())
        .expect("target dir")
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).ok();
    dir.join(name)
}

/// Install a test log subscriber once (RUST_LOG decides the level).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Poll `f` every 50 ms until it holds; panics naming `what` after 60 s. For effects that arrive
/// through the job queue (media sizes, imports, index updates).
pub async fn wait_until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !f().await {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
