//! RELIABILITY DUR-1 for checkout, on both engines: the real binary under concurrent checkout load
//! (16 shoppers, each: add to cart, open the checkout, place the order) is killed with SIGKILL 20
//! times at a random moment 0.5–3 s into the load, and restarted on the same data. Afterwards every
//! order a shopper saw acknowledged (the 303 to its page) exists with the amount and lines it was
//! placed with, the ledger audit is clean (stock = Σ ledger, held = Σ open orders, no oversell),
//! order numbers have no gaps, and SQLite's integrity check says ok.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use yiren_core::catalog::Kind;
use yiren_testkit::process::{yiren, Server};
use yiren_testkit::{both_engines, field_of, product, TestDb};

const CYCLES: usize = 20;
const SHOPPERS: usize = 16;
const PRICE: i64 = 1_234;

/// An order a shopper saw acknowledged: its id and what it should cost.
type Acked = Arc<Mutex<Vec<(i64, i64, i64)>>>;

/// One shopper's checkouts until `stop`; every 303 to an order page is recorded with its amount.
async fn shop(base: String, variant: i64, acked: Acked, stop: Arc<std::sync::atomic::AtomicBool>) {
    let mut n = 0u32;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        n += 1;
        let c = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let quantity: i64 = rand::thread_rng().gen_range(1..=3);
        let added = c
            .post(format!("{base}/cart/add"))
            .form(&[
                ("variant_id", variant.to_string()),
                ("quantity", quantity.to_string()),
            ])
            .send()
            .await;
        if added.is_err() {
            continue;
        }
        let Ok(Ok(form)) = c
            .get(format!("{base}/checkout"))
            .send()
            .await
            .map(|r| r.error_for_status())
        else {
            continue;
        };
        let Ok(form) = form.text().await else {
            continue;
        };
        if !form.contains("name=\"token\"") {
            continue;
        }
        let token = field_of(&form, "token");
        let email = format!("dur{n}-{}@example.com", rand::random::<u32>());
        let Ok(placed) = c
            .post(format!("{base}/checkout"))
            .form(&[("token", token.as_str()), ("email", email.as_str())])
            .send()
            .await
        else {
            continue;
        };
        if placed.status() != 303 {
            continue;
        }
        let to = placed.headers()["location"].to_str().unwrap().to_string();
        let id: i64 = to
            .strip_prefix("/orders/")
            .and_then(|r| r.split('?').next())
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("{to}"));
        acked.lock().unwrap().push((id, quantity * PRICE, quantity));
    }
}

both_engines! {
    async fn acknowledged_orders_survive_sigkill_under_load(engine: Engine) {
        let t = TestDb::new(engine).await;
        let db_args: Vec<&str> = if t.url.is_empty() { vec![] } else { vec!["--database-url", t.url.as_str()] };
        assert!(yiren(t.dir()).arg("migrate").args(&db_args).status().unwrap().success());
        let ctx = yiren::context(&t.config(), Default::default()).await.unwrap();
        let variant = product(&ctx, "ebook", Kind::Digital, &[("EB", PRICE, 1_000_000)]).await[0];
        ctx.db.close().await;

        let acked: Acked = Arc::default();
        let mut kills = 0;
        let started = Instant::now();
        for cycle in 0..CYCLES {
            let server = Server::start(t.dir(), &t.url, &[]);
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let shoppers: Vec<_> = (0..SHOPPERS)
                .map(|_| tokio::spawn(shop(server.base.clone(), variant, acked.clone(), stop.clone())))
                .collect();
            let run = rand::thread_rng().gen_range(500..=3_000);
            tokio::time::sleep(Duration::from_millis(run)).await;
            server.signal(libc::SIGKILL);
            server.wait(Duration::from_secs(10));
            kills += 1;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            for s in shoppers {
                s.await.unwrap();
            }
            eprintln!("cycle {cycle}: killed after {run} ms; {} orders acknowledged so far", acked.lock().unwrap().len());
        }
        let acked = acked.lock().unwrap().clone();
        eprintln!("{kills} kills, {} acknowledged orders in {:?}", acked.len(), started.elapsed());
        assert_eq!(kills, CYCLES);
        assert!(acked.len() >= CYCLES, "the load placed orders ({})", acked.len());

        // A restart recovers, and nothing acknowledged is missing or changed.
        let server = Server::start(t.dir(), &t.url, &[]);
        let up = reqwest::get(format!("{}/healthz", server.base)).await.unwrap();
        assert!(up.status().is_success(), "{}", up.status());
        let ctx = yiren::context(&t.config(), Default::default()).await.unwrap();
        for (id, total, quantity) in &acked {
            let o = yiren_core::order::get(&ctx, *id).await.unwrap_or_else(|e| panic!("acknowledged order {id} lost: {e}"));
            assert_eq!((o.row.total, o.row.currency.as_str(), o.row.units), (*total, "CNY", *quantity), "order {id}");
            assert_eq!(o.lines.len(), 1);
            assert_eq!(o.lines[0].quantity * o.lines[0].unit_price, *total);
        }
        let problems = yiren_core::order::audit(&ctx).await.unwrap();
        assert!(problems.is_empty(), "ledger audit after {kills} kills: {problems:#?}");
        let (count, max): (i64, i64) = sqlx::query_as("SELECT COUNT(*), CAST(COALESCE(MAX(number), 1000) AS BIGINT) FROM orders").fetch_one(ctx.db.read()).await.unwrap();
        assert_eq!(max - 1000, count, "order numbers without gaps");
        if t.url.is_empty() {
            let ok: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(ctx.db.read()).await.unwrap();
            assert_eq!(ok, "ok");
        }
        eprintln!("{count} orders stored, {} acknowledged", acked.len());
        ctx.db.close().await;
        server.signal(libc::SIGTERM);
        server.wait(Duration::from_secs(30));
    }
}
