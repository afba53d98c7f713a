//! Checkout benchmark (issue 6): durable checkouts per second and their p99 under concurrent load,
//! on SQLite and on PostgreSQL, beside the limit measured in the same run for one durable SQLite
//! commit per request (a bare axum handler that inserts one row per POST into a WAL database with
//! `synchronous = FULL`, as Yiren's). The checkout figure: shoppers' carts are filled and their
//! checkout forms opened beforehand (untimed, `seconds` × 1,500 of them), then the shoppers submit
//! them all at once — the rate and p99 of the request that turns a cart into an order (its 303
//! comes after the order's transaction committed: nothing is acknowledged before it is durable).
//! Then, for comparison, the whole flow for `seconds`: each shopper loops add to cart, open the
//! checkout form, place the order. Figures only; nothing passes or fails.
//!
//! Usage: checkout <path to release yiren> [seconds] [shoppers]   (default 10 s, 16 shoppers)
//! PostgreSQL is measured when `YIREN_TEST_DATABASE_URL` names a server (a fresh database is made).

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use yiren_core::catalog::{self, Kind, Price, ProductInput, VariantInput};
use yiren_testkit::browser::free_port;
use yiren_testkit::{Engine, TestDb};

/// A browser's cookies, as the server set them (name → value; a removal empties the value).
#[derive(Default)]
struct Cookies(std::collections::BTreeMap<String, String>);

impl Cookies {
    fn take(&mut self, r: &reqwest::Response) {
        for v in r.headers().get_all(reqwest::header::SET_COOKIE) {
            let Some((name, value)) = v
                .to_str()
                .ok()
                .and_then(|v| v.split(';').next())
                .and_then(|kv| kv.split_once('='))
            else {
                continue;
            };
            if value.is_empty() {
                self.0.remove(name.trim());
            } else {
                self.0.insert(name.trim().to_string(), value.to_string());
            }
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Carts prepared per second of measurement for the checkout figure (more than the target rate,
/// so the placing runs at least about as long as the flow).
const PREPARED_PER_SEC: usize = 1_500;

/// A shop under load: its address, the one HTTP client and the variant every shopper buys.
#[derive(Clone)]
struct Shop {
    base: String,
    client: reqwest::Client,
    variant: i64,
}

/// A checkout form opened in a browser: its cookies and the form's token.
struct Ready {
    cookies: String,
    token: String,
}

impl Shop {
    /// A new browser adds the product to its cart and opens the checkout form.
    async fn open(&self) -> Option<Ready> {
        let mut jar = Cookies::default();
        let r = self
            .client
            .post(format!("{}/cart/add", self.base))
            .header(reqwest::header::COOKIE, jar.header())
            .form(&[
                ("variant_id", self.variant.to_string()),
                ("quantity", "1".into()),
            ])
            .send()
            .await
            .ok()?;
        jar.take(&r);
        let r = self
            .client
            .get(format!("{}/checkout", self.base))
            .header(reqwest::header::COOKIE, jar.header())
            .send()
            .await
            .ok()?;
        jar.take(&r);
        let form = r.text().await.ok()?;
        let token = form
            .split("name=\"token\" value=\"")
            .nth(1)?
            .split('"')
            .next()?
            .to_string();
        Some(Ready {
            cookies: jar.header(),
            token,
        })
    }

    /// Place the order of an opened form; the time until the server's 303 (sent after the
    /// order's commit), in ms.
    async fn place(&self, form: Ready) -> Option<f64> {
        let email = format!("b{}@example.com", rand::random::<u64>());
        let t = Instant::now();
        let r = self
            .client
            .post(format!("{}/checkout", self.base))
            .header(reqwest::header::COOKIE, form.cookies)
            .form(&[("token", form.token.as_str()), ("email", email.as_str())])
            .send()
            .await
            .ok()?;
        (r.status() == 303).then(|| t.elapsed().as_secs_f64() * 1000.0)
    }
}

/// `n` checkout forms opened by `workers` browsers at once.
async fn prepare(shop: &Shop, n: usize, workers: usize) -> Vec<Ready> {
    let left = Arc::new(std::sync::atomic::AtomicUsize::new(n));
    let out = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (shop, left, out) = (shop.clone(), left.clone(), out.clone());
            tokio::spawn(async move {
                while left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| l.checked_sub(1))
                    .is_ok()
                {
                    if let Some(r) = shop.open().await {
                        out.lock().unwrap().push(r);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let ready = std::mem::take(&mut *out.lock().unwrap());
    ready
}

/// Where the server's log goes: `BENCH_SERVER_LOG` (a log filter, e.g. `warn,sqlx=debug`) sends it to
/// `checkout-server.log` in the working directory, for finding out what a checkout costs.
fn server_log() -> Stdio {
    match std::env::var("BENCH_SERVER_LOG") {
        Ok(_) => std::fs::File::create("checkout-server.log")
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null()),
        Err(_) => Stdio::null(),
    }
}

/// Orders per second, p99 in ms, and how many attempts did not end in an order.
struct Figures {
    rate: f64,
    p99: f64,
    failed: usize,
}

fn p99(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

/// Run `workers` loops of `one` for `secs`; returns (completed per second, latencies in ms).
async fn load<F, Fut>(secs: u64, workers: usize, one: F) -> (f64, Vec<f64>)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Option<f64>> + Send,
{
    let one = Arc::new(one);
    let stop = Arc::new(AtomicBool::new(false));
    let lat = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (one, stop, lat) = (one.clone(), stop.clone(), lat.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(ms) = one().await {
                        lat.lock().unwrap().push(ms);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let lat = std::mem::take(&mut *lat.lock().unwrap());
    (lat.len() as f64 / elapsed, lat)
}

/// The limit: one durable SQLite commit per request.
async fn baseline(secs: u64, workers: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("commit.db"))
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Full);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let app = axum::Router::new().route(
        "/",
        post(move || {
            let pool = pool.clone();
            async move {
                sqlx::query("INSERT INTO t (v) VALUES ('an order')")
                    .execute(&pool)
                    .await
                    .unwrap();
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::new();
    let (rate, lat) = load(secs, workers, move || {
        let (c, url) = (client.clone(), url.clone());
        async move {
            let t = Instant::now();
            let ok = c.post(&url).send().await.ok()?.status().is_success();
            ok.then(|| t.elapsed().as_secs_f64() * 1000.0)
        }
    })
    .await;
    (rate, p99(lat))
}

/// Checkouts against the real binary on `engine`: placing prepared checkouts, the whole flow
/// (with the p99 of its placing and of the flow), and the orders stored.
async fn checkouts(
    bin: &str,
    engine: Engine,
    secs: u64,
    workers: usize,
) -> (Figures, (f64, f64, f64), i64) {
    let t = TestDb::new(engine).await;
    let db_args: Vec<&str> = if t.url.is_empty() {
        vec![]
    } else {
        vec!["--database-url", t.url.as_str()]
    };
    let migrated = Command::new(bin)
        .arg("--data-dir")
        .arg(t.dir())
        .arg("migrate")
        .args(&db_args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(migrated.success());
    let ctx = yiren::context(&t.config(), Default::default())
        .await
        .unwrap();
    let input = ProductInput {
        title: "电子书".into(),
        handle: "ebook".into(),
        kind: Kind::Digital,
        status: "active".into(),
        variants: vec![VariantInput {
            sku: "EB".into(),
            track_inventory: true,
            initial_stock: 100_000_000,
            prices: vec![Price {
                currency: "CNY".into(),
                amount: 2_900,
                compare_at: None,
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let variant = catalog::create(&ctx, &input, "bench")
        .await
        .unwrap()
        .variants[0]
        .row
        .id;
    let port = free_port();
    let mut child = Command::new(bin)
        .arg("--data-dir")
        .arg(t.dir())
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .args(&db_args)
        .env("YIREN_LOG__LEVEL", "warn")
        .env(
            "RUST_LOG",
            std::env::var("BENCH_SERVER_LOG").unwrap_or("warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(server_log())
        .spawn()
        .expect("start yiren");
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..500 {
        if reqwest::get(format!("{base}/healthz")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // One HTTP client for every shopper (as the limit's load uses), each loop a new browser: its
    // own cookies, kept here from `Set-Cookie` and sent back in `Cookie`.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let shop = Shop {
        base: base.clone(),
        client,
        variant,
    };
    // The checkout: carts filled and checkout forms opened beforehand (untimed), then every
    // shopper places the orders at once — the request that turns a cart into a durable order.
    let ready = prepare(&shop, secs as usize * PREPARED_PER_SEC, workers).await;
    let prepared = ready.len();
    let ready = Arc::new(Mutex::new(ready));
    let placed_lat = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (shop, ready, lat) = (shop.clone(), ready.clone(), placed_lat.clone());
            tokio::spawn(async move {
                loop {
                    let Some(form) = ready.lock().unwrap().pop() else {
                        break;
                    };
                    if let Some(ms) = shop.place(form).await {
                        lat.lock().unwrap().push(ms);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let place_elapsed = started.elapsed().as_secs_f64();
    let placed_lat = std::mem::take(&mut *placed_lat.lock().unwrap());
    let place = Figures {
        rate: placed_lat.len() as f64 / place_elapsed,
        p99: p99(placed_lat.clone()),
        failed: prepared - placed_lat.len(),
    };
    // The whole flow, for comparison: each shopper loops add to cart → open checkout → place.
    let flows = Arc::new(Mutex::new(Vec::new()));
    let flows2 = flows.clone();
    let (rate, placing) = load(secs, workers, move || {
        let (shop, flows) = (shop.clone(), flows2.clone());
        async move {
            let started = Instant::now();
            let form = shop.open().await?;
            let placed = shop.place(form).await?;
            flows
                .lock()
                .unwrap()
                .push(started.elapsed().as_secs_f64() * 1000.0);
            Some(placed)
        }
    })
    .await;
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(ctx.db.read())
        .await
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    ctx.db.close().await;
    let flow = std::mem::take(&mut *flows.lock().unwrap());
    (place, (rate, p99(placing), p99(flow)), stored)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let bin = args
        .next()
        .expect("usage: checkout <path to release yiren> [seconds] [shoppers]");
    let secs: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let workers: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(16);
    println!("checkout benchmark: {workers} concurrent shoppers, {secs} s per measurement");
    let (limit, limit_p99) = baseline(secs, workers).await;
    println!("limit: one durable SQLite commit per request (bare axum): {limit:7.0} req/s, p99 {limit_p99:6.2} ms");
    let mut engines = vec![("SQLite", Engine::Sqlite)];
    if let Some(pg) = Engine::postgres() {
        engines.push(("PostgreSQL", pg));
    }
    for (name, engine) in engines {
        let (place, (rate, placing, flow), stored) = checkouts(&bin, engine, secs, workers).await;
        println!(
            "checkout, {name:<10}: {:7.0} orders/s ({:.0} % of the limit), p99 {:6.2} ms (target >= 50 %, p99 <= 50 ms){}",
            place.rate,
            place.rate / limit * 100.0,
            place.p99,
            if place.failed > 0 { format!("; {} not placed", place.failed) } else { String::new() }
        );
        println!(
            "  whole flow (add to cart, open checkout, place): {rate:7.0} loops/s, p99 placing {placing:6.2} ms, p99 cart→order {flow:6.2} ms; {stored} orders stored"
        );
    }
}
