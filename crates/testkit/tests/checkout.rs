//! Checkout under concurrency, on both engines, through the real services and database: the
//! last units of a SKU (RELIABILITY INV-1), carts sharing SKUs locked in random order (INV-2),
//! holds that run out and payments that come late (INV-3), discount limits (COUP-1), and the
//! amounts computed from the catalog whatever the form says (MONEY-2). Every test ends with the
//! ledger audit: stock = Σ inventory ledger, held stock = what open orders hold, no stock that
//! may not oversell below zero, captured = Σ sales, uses = Σ recorded uses.
//!
//! These call the checkout service directly (every checkout its own task, up to 200 at once); the
//! checkout page and `POST /api/v1/orders` will run the same service.

use std::sync::Arc;

use futures::stream::{self, StreamExt};
use rand::{Rng, SeedableRng};
use yiren_core::catalog::{self, Kind};
use yiren_core::checkout::{self, Address, Config, ShippingRate, Submit, TaxRate};
use yiren_core::discount::{self, DiscountInput};
use yiren_core::error::DomainError;
use yiren_core::order::{self, Paid, Received};
use yiren_core::pricing::Shipping as Rule;
use yiren_core::together::{self, Piece};
use yiren_core::{cart, Ctx};
use yiren_store::order as store;
use yiren_testkit::{both_engines, product, wait_until, TestApp};

fn submit(token: String, email: &str, lines: &[(i64, i64)]) -> Submit {
    Submit {
        token,
        email: email.into(),
        lines: lines
            .iter()
            .map(|(v, q)| cart::Line {
                variant_id: *v,
                quantity: *q,
            })
            .collect(),
        gateway: "manual".into(),
        ..Default::default()
    }
}

fn conflict_key(r: &Result<store::OrderRow, DomainError>) -> Option<&'static str> {
    match r {
        Err(DomainError::Conflict { key }) => Some(key),
        _ => None,
    }
}

async fn audit_clean(ctx: &Ctx) {
    let problems = order::audit(ctx).await.unwrap();
    assert!(problems.is_empty(), "ledger audit: {problems:#?}");
}

async fn stock(ctx: &Ctx, variant: i64) -> (i64, i64) {
    store::stock_of(ctx.db.read(), variant).await.unwrap()
}

both_engines! {
    /// INV-1: K units, N > K concurrent checkouts of one unit each: exactly K orders, N − K
    /// `checkout.sold_out`, nothing else, and the stock ends at 0 with K held.
    async fn the_last_units_go_to_exactly_as_many_checkouts(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let ctx = Arc::new(app.state.ctx.clone());
        let seed: u64 = rand::random();
        println!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for round in 0..20 {
            let k: i64 = rng.gen_range(1..=50);
            let n: i64 = rng.gen_range(k + 1..=1000);
            let v = product(&ctx, &format!("last-{round}"), Kind::Digital, &[("L", 990, k)]).await[0];
            let results: Vec<_> = stream::iter(0..n)
                .map(|i| {
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        checkout::place(&ctx, &submit(format!("inv1-{round}-{i}"), &format!("b{i}@example.com"), &[(v, 1)])).await
                    })
                })
                .buffer_unordered(200)
                .map(|j| j.unwrap())
                .collect()
                .await;
            let ok = results.iter().filter(|r| r.is_ok()).count() as i64;
            let sold_out = results.iter().filter(|r| conflict_key(r) == Some("checkout.sold_out")).count() as i64;
            assert_eq!((ok, sold_out), (k, n - k), "round {round}: K={k} N={n}: {:?}", results.iter().find(|r| r.is_err() && conflict_key(r) != Some("checkout.sold_out")));
            assert_eq!(stock(&ctx, v).await, (0, k), "round {round}");
            let mut numbers: Vec<i64> = results.iter().filter_map(|r| r.as_ref().ok().map(|o| o.number)).collect();
            numbers.sort();
            numbers.dedup();
            assert_eq!(numbers.len() as i64, k, "order numbers are unique");
        }
        audit_clean(&ctx).await;
        // The database itself refuses stock below zero for a variant that may not oversell.
        let v = product(&ctx, "guarded", Kind::Digital, &[("G", 100, 1)]).await[0];
        let e = catalog::adjust(&ctx, v, -2, "count", "test").await.unwrap_err();
        assert!(matches!(e, DomainError::Invalid { key: "catalog.stock_negative", .. }), "{e:?}");
        let mut tx = ctx.db.begin().await.unwrap();
        let raw = sqlx::query("UPDATE variants SET inventory_quantity = -1 WHERE id = $1").bind(v).execute(&mut *tx).await;
        assert!(raw.is_err(), "CHECK constraint");
        drop(tx);
        app.stop().await;
    }

    /// Orders submitted while the writer is busy are written together (SQLite; PostgreSQL writes
    /// each alone): in one such commit a refused order (sold out, the same form twice) is undone
    /// alone and the others are kept, and every answer is the one a lone order would get.
    async fn orders_written_together_are_refused_or_kept_one_by_one(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let ctx = Arc::new(app.state.ctx.clone());
        let v = product(&ctx, "together", Kind::Digital, &[("T", 500, 4)]).await[0];
        // Hold the writer (on PostgreSQL: a transaction that blocks nobody).
        let hold = ctx.db.begin().await.unwrap();
        let spawn = |token: String, email: String| {
            let ctx = ctx.clone();
            tokio::spawn(async move { checkout::place(&ctx, &submit(token, &email, &[(v, 1)])).await })
        };
        // The same form twice, then eight other shoppers, in this order.
        let mut jobs = vec![spawn("same-form".into(), "twice@example.com".into())];
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        jobs.push(spawn("same-form".into(), "twice@example.com".into()));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        for i in 0..8 {
            jobs.push(spawn(format!("other-{i}"), format!("o{i}@example.com")));
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let shared_before = ctx.together.shared_commits("order");
        drop(hold);
        let mut results = vec![];
        for j in jobs {
            results.push(j.await.unwrap());
        }
        let (first, again) = (results[0].as_ref().unwrap(), results[1].as_ref().unwrap());
        assert_eq!(first.id, again.id, "the same form twice is one order");
        let others = &results[2..];
        let placed = others.iter().filter(|r| r.is_ok()).count();
        let sold_out = others.iter().filter(|r| conflict_key(r) == Some("checkout.sold_out")).count();
        assert_eq!((placed, sold_out), (3, 5), "{others:?}");
        assert_eq!(stock(&ctx, v).await, (0, 4));
        let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders").fetch_one(ctx.db.read()).await.unwrap();
        assert_eq!(orders, 4);
        if engine == yiren_testkit::Engine::Sqlite {
            // The first order waited alone for the writer; the nine behind it shared one commit.
            assert_eq!(ctx.together.shared_commits("order"), shared_before + 1);
        } else {
            assert_eq!(ctx.together.shared_commits("order"), 0);
        }
        audit_clean(&ctx).await;
        app.stop().await;
    }

    /// Pieces of other kinds join the orders' commit (job claims and outcomes, messages'
    /// outcomes — here a test's own piece): each written under its own savepoint, a failing one
    /// undone alone, every answer only after the commit.
    async fn pieces_of_every_kind_share_a_commit_and_fail_alone(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let ctx = Arc::new(app.state.ctx.clone());
        let v = product(&ctx, "mixed", Kind::Digital, &[("M", 500, 10)]).await[0];
        let hold = ctx.db.begin().await.unwrap();
        let order = |i: usize| {
            let ctx = ctx.clone();
            tokio::spawn(async move { checkout::place(&ctx, &submit(format!("mixed-{i}"), &format!("m{i}@example.com"), &[(v, 1)])).await })
        };
        let setting = |key: &'static str, fail: bool| {
            let ctx = ctx.clone();
            tokio::spawn(async move { together::write(&ctx, Setting { key, fail }).await })
        };
        // The first piece waits alone for the held writer; the five behind it go together.
        let first = order(0);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let (before, orders_before) = (ctx.together.shared_commits_any(), ctx.together.shared_commits("order"));
        let others = vec![order(1), order(2)];
        let kept = setting("test.kept", false);
        let undone = setting("test.undone", true);
        let also = setting("test.also", false);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        if engine == yiren_testkit::Engine::Sqlite {
            // (PostgreSQL: the held transaction blocks nobody; each piece commits on its own.)
            assert!(!kept.is_finished() && !others[0].is_finished(), "nothing is answered before its commit");
        }
        drop(hold);
        first.await.unwrap().unwrap();
        for o in others {
            o.await.unwrap().unwrap();
        }
        assert_eq!(kept.await.unwrap().unwrap(), "test.kept");
        assert!(matches!(undone.await.unwrap(), Err(DomainError::Conflict { key: "error.conflict" })));
        assert_eq!(also.await.unwrap().unwrap(), "test.also");
        let stored: Vec<String> = sqlx::query_scalar("SELECT key FROM settings WHERE key LIKE 'test.%' ORDER BY key")
            .fetch_all(ctx.db.read())
            .await
            .unwrap();
        assert_eq!(stored, ["test.also", "test.kept"], "the failing piece was undone alone");
        let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders").fetch_one(ctx.db.read()).await.unwrap();
        assert_eq!(orders, 3);
        if engine == yiren_testkit::Engine::Sqlite {
            assert!(ctx.together.shared_commits_any() > before);
            assert_eq!(ctx.together.shared_commits("order"), orders_before + 1, "the two orders behind the first shared a commit");
        } else {
            assert_eq!(ctx.together.shared_commits_any(), 0, "PostgreSQL writes each piece alone");
        }
        audit_clean(&ctx).await;
        app.stop().await;
    }

    /// INV-2: carts of 2–4 lines over three SKUs with 100 each, lines in random order, 64 at a
    /// time: no oversell, no deadlock reaching the caller, every unit accounted for.
    async fn carts_sharing_skus_never_oversell_or_deadlock(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let ctx = Arc::new(app.state.ctx.clone());
        let skus = product(&ctx, "bundle", Kind::Digital, &[("A", 1000, 100), ("B", 2000, 100), ("C", 3000, 100)]).await;
        let seed: u64 = rand::random();
        println!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let carts: Vec<Vec<(i64, i64)>> = (0..300)
            .map(|_| {
                let mut lines: Vec<(i64, i64)> = (0..rng.gen_range(2..=4)).map(|_| (skus[rng.gen_range(0..3)], rng.gen_range(1..=3))).collect();
                // Random order, repeats allowed (they merge).
                for i in (1..lines.len()).rev() {
                    lines.swap(i, rng.gen_range(0..=i));
                }
                lines
            })
            .collect();
        let results: Vec<_> = stream::iter(carts.clone().into_iter().enumerate())
            .map(|(i, lines)| {
                let ctx = ctx.clone();
                tokio::spawn(async move { checkout::place(&ctx, &submit(format!("inv2-{i}"), "bundle@example.com", &lines)).await })
            })
            .buffer_unordered(64)
            .map(|j| j.unwrap())
            .collect()
            .await;
        let mut sold = [0i64; 3];
        let mut placed = 0;
        for r in &results {
            match r {
                Ok(o) => {
                    placed += 1;
                    for l in store::lines(ctx.db.read(), o.id).await.unwrap() {
                        let i = skus.iter().position(|s| Some(*s) == l.variant_id).unwrap();
                        sold[i] += l.quantity;
                    }
                }
                Err(DomainError::Conflict { key: "checkout.sold_out" }) => {}
                Err(e) => panic!("only sold_out may fail: {e:?}"),
            }
        }
        assert!(placed > 0);
        for (i, v) in skus.iter().enumerate() {
            let (left, held) = stock(&ctx, *v).await;
            assert!(left >= 0, "{left}");
            assert_eq!((left + sold[i], held), (100, sold[i]), "sku {i}: every unit is either left or held");
        }
        audit_clean(&ctx).await;
        app.stop().await;
    }

    /// INV-3: holds of 100 abandoned checkouts run out (worker jobs on the injected clock) and
    /// the stock comes back exactly once; late payments take stock again while there is some,
    /// then the rest are paid but short and put under refund review. Unpaid orders expire.
    async fn holds_expire_once_and_late_payments_never_oversell(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let ctx = Arc::new(app.state.ctx.clone());
        checkout::save_config(&ctx, &Config { hold_minutes: 15, expire_hours: 2, ..Default::default() }).await.unwrap();
        let v = product(&ctx, "held", Kind::Digital, &[("H", 500, 100)]).await[0];
        let mut orders = vec![];
        for i in 0..100 {
            orders.push(checkout::place(&ctx, &submit(format!("inv3-{i}"), "late@example.com", &[(v, 1)])).await.unwrap());
        }
        assert_eq!(stock(&ctx, v).await, (0, 100));
        // Before the hold ends nothing is released, even if asked.
        assert!(!order::release_hold(&ctx, orders[0].id).await.unwrap());
        app.clock.advance(16 * 60_000);
        wait_until("every hold released", || async { stock(&ctx, v).await == (100, 0) }).await;
        for o in &orders[..5] {
            assert!(!order::release_hold(&ctx, o.id).await.unwrap(), "released once");
        }
        assert_eq!(stock(&ctx, v).await, (100, 0));
        audit_clean(&ctx).await;
        // Someone else buys 95 of the 100; ten late payments: five find stock, five are short.
        catalog::adjust(&ctx, v, -95, "sold elsewhere", "test").await.unwrap();
        for (i, o) in orders[..10].iter().enumerate() {
            let paid = order::pay(&ctx, o.id, &Received { gateway: "manual".into(), reference: format!("late-{i}"), amount: 500, currency: "CNY".into() }, "owner").await.unwrap();
            assert_eq!(paid, Paid::Applied);
        }
        let rows: Vec<_> = stream::iter(&orders[..10]).then(|o| { let ctx = ctx.clone(); async move { store::get(ctx.db.read(), o.id).await.unwrap() } }).collect().await;
        let committed = rows.iter().filter(|o| o.stock == "committed").count();
        let short: Vec<_> = rows.iter().filter(|o| o.stock == "short").collect();
        assert_eq!((committed, short.len()), (5, 5));
        assert!(short.iter().all(|o| o.refund_review == 1 && o.payment == "paid"));
        assert_eq!(stock(&ctx, v).await, (0, 0), "never oversold");
        let timeline = order::get(&ctx, short[0].id).await.unwrap().events;
        let kinds: Vec<&str> = timeline.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["placed", "hold_released", "paid", "stock_short", "refund_review"]);
        // A repeated confirmation is a no-op.
        let again = order::pay(&ctx, orders[0].id, &Received { gateway: "manual".into(), reference: "late-0".into(), amount: 500, currency: "CNY".into() }, "owner").await.unwrap();
        assert_eq!(again, Paid::Duplicate);
        // The other 90 expire: cancelled, nothing to restock twice.
        app.clock.advance(2 * 3_600_000);
        wait_until("unpaid orders expire", || async {
            store::get(ctx.db.read(), orders[99].id).await.unwrap().cancelled == 1
        }).await;
        wait_until("all 90 expired", || async {
            let mut n = 0;
            for o in &orders[10..] { n += store::get(ctx.db.read(), o.id).await.unwrap().cancelled; }
            n == 90
        }).await;
        assert_eq!(stock(&ctx, v).await, (0, 0));
        // A payment for an expired order is taken but goes to refund review, never fulfilment.
        let late = &orders[50];
        order::pay(&ctx, late.id, &Received { gateway: "manual".into(), reference: "after-expiry".into(), amount: 500, currency: "CNY".into() }, "owner").await.unwrap();
        let row = store::get(ctx.db.read(), late.id).await.unwrap();
        assert_eq!((row.payment.as_str(), row.refund_review, row.stock.as_str()), ("paid", 1, "released"));
        audit_clean(&ctx).await;
        app.stop().await;
    }

    /// COUP-1: a code with 1 use × 200 concurrent checkouts, 10 uses × 500, one use per customer
    /// × 50 by one customer: 1, 10 and 1 orders carry it; the losers get a 409 before any order
    /// exists; never an order placed without the discount it was quoted with.
    async fn discount_limits_hold_under_concurrency(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let ctx = Arc::new(app.state.ctx.clone());
        let v = product(&ctx, "coupon", Kind::Digital, &[("C", 10_000, 0)]).await[0];
        catalog::adjust(&ctx, v, 900_000, "plenty", "test").await.unwrap();
        let code = |code: &str, usage_limit: Option<i64>, per_customer: Option<i64>| DiscountInput {
            code: code.into(),
            title: code.into(),
            kind: "percent".into(),
            value: 2000,
            applies: "all".into(),
            usage_limit,
            per_customer,
            ..Default::default()
        };
        let one = discount::create(&ctx, &code("ONCE", Some(1), None)).await.unwrap();
        let ten = discount::create(&ctx, &code("TEN", Some(10), None)).await.unwrap();
        let mine = discount::create(&ctx, &code("mine-1", None, Some(1))).await.unwrap();
        assert_eq!(mine.code.as_deref(), Some("MINE-1"));
        for (d, n, same_customer, want) in [(&one, 200, false, 1), (&ten, 500, false, 10), (&mine, 50, true, 1)] {
            let c = d.code.clone().unwrap();
            let results: Vec<_> = stream::iter(0..n)
                .map(|i| {
                    let ctx = ctx.clone();
                    let c = c.clone();
                    tokio::spawn(async move {
                        let email = if same_customer { "same@example.com".to_string() } else { format!("c{i}@example.com") };
                        let mut s = submit(format!("coup-{c}-{i}"), &email, &[(v, 1)]);
                        s.code = Some(c.to_lowercase());
                        checkout::place(&ctx, &s).await
                    })
                })
                .buffer_unordered(200)
                .map(|j| j.unwrap())
                .collect()
                .await;
            let ok: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
            assert_eq!(ok.len(), want, "{c}: {:?}", results.iter().find(|r| r.is_err()));
            assert!(ok.iter().all(|o| o.total == 8000 && o.discount == 2000), "every order carries the discount");
            let losers = results.iter().filter(|r| matches!(conflict_key(r), Some("checkout.code_used_up" | "checkout.code_used_by_you")) || matches!(r, Err(DomainError::Invalid { key: "checkout.code_unknown", .. }))).count();
            assert_eq!(losers, n - want, "{c}");
            assert_eq!(discount::get(&ctx, d.id).await.unwrap().used, want as i64);
        }
        audit_clean(&ctx).await;
        // Cancelling an unpaid order gives its use back.
        let placed: Vec<i64> = store::list(ctx.db.read(), None, 1000, 0).await.unwrap().iter().filter(|o| o.discount > 0).map(|o| o.id).collect();
        let mut with_once = None;
        for id in placed {
            if order::get(&ctx, id).await.unwrap().events[0].detail.contains("ONCE") { with_once = Some(id); }
        }
        order::cancel(&ctx, with_once.unwrap(), "owner", true).await.unwrap();
        assert_eq!(discount::get(&ctx, one.id).await.unwrap().used, 0);
        let mut s = submit("coup-after-cancel".into(), "again@example.com", &[(v, 1)]);
        s.code = Some("ONCE".into());
        assert_eq!(checkout::place(&ctx, &s).await.unwrap().discount, 2000);
        audit_clean(&ctx).await;
        // A fixed amount larger than the cart takes it to zero, never below: a free order, paid.
        let big = discount::create(&ctx, &DiscountInput { code: "ALL-OFF".into(), title: "all off".into(), kind: "amount".into(), value: 50_000, applies: "all".into(), ..Default::default() }).await.unwrap();
        let mut s = submit("free".into(), "free@example.com", &[(v, 2)]);
        s.code = big.code.clone();
        let o = checkout::place(&ctx, &s).await.unwrap();
        assert_eq!((o.total, o.discount, o.payment.as_str(), o.stock.as_str()), (0, 20_000, "paid", "committed"));
        audit_clean(&ctx).await;
        // An automatic discount needs no code and applies once its minimum is reached.
        discount::create(&ctx, &DiscountInput { title: "满 300 减 10%".into(), kind: "percent".into(), value: 1000, applies: "all".into(), min_subtotal: 30_000, ..Default::default() }).await.unwrap();
        let two = checkout::place(&ctx, &submit("auto-2".into(), "auto@example.com", &[(v, 2)])).await.unwrap();
        let three = checkout::place(&ctx, &submit("auto-3".into(), "auto@example.com", &[(v, 3)])).await.unwrap();
        assert_eq!((two.discount, three.discount, three.total), (0, 3000, 27_000));
        audit_clean(&ctx).await;
        app.stop().await;
    }

    /// MONEY-2 and the rest of placing: quantities checked, the amounts computed from the
    /// catalog with shipping by region and tax, the form's token making a double submit one
    /// order, and the timeline and event log written with the order.
    async fn an_order_is_priced_from_the_catalog_and_placed_once(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let ctx = Arc::new(app.state.ctx.clone());
        let v = product(&ctx, "tea", Kind::Physical, &[("T", 12_800, 10)]).await[0];
        let address = Address { name: "张三".into(), phone: "13800000000".into(), country: "CN".into(), province: "广东省".into(), city: "深圳市".into(), district: "南山区".into(), line1: "科技园 1 号".into(), ..Default::default() };
        let mut s = submit("money-2".into(), "buyer@example.com", &[(v, 2)]);
        s.address = Some(address.clone());
        // No shipping rate for the region yet.
        let e = checkout::place(&ctx, &s).await.unwrap_err();
        assert!(matches!(e, DomainError::Invalid { key: "checkout.no_shipping", .. }), "{e:?}");
        checkout::save_config(&ctx, &Config {
            shipping: vec![
                ShippingRate { name: "顺丰".into(), regions: vec!["CN".into()], rule: Rule::ByWeight { first_grams: 1000, first_price: 1200, step_grams: 500, step_price: 300 } },
                ShippingRate { name: "Abroad".into(), regions: vec!["*".into()], rule: Rule::Flat { price: 9000 } },
            ],
            taxes: vec![TaxRate { region: "CN".into(), rate: 1300, inclusive: true }, TaxRate { region: "CN/广东省".into(), rate: 600, inclusive: true }],
            ..Default::default()
        }).await.unwrap();
        let e = checkout::place(&ctx, &s).await.unwrap_err();
        assert!(matches!(e, DomainError::Invalid { key: "checkout.shipping_required", .. }), "two rates offered: {e:?}");
        s.shipping = Some("顺丰".into());
        // Bad quantities never reach the database.
        for q in [-1, 0, 100, i64::MAX] {
            let mut bad = s.clone();
            bad.token = format!("bad-{q}");
            bad.lines[0].quantity = q;
            let e = checkout::place(&ctx, &bad).await.unwrap_err();
            assert!(matches!(e, DomainError::Invalid { key: "cart.quantity_invalid", .. }), "{q}: {e:?}");
        }
        let mut bad = s.clone();
        bad.token = "bad-address".into();
        bad.address.as_mut().unwrap().district.clear();
        assert!(matches!(checkout::place(&ctx, &bad).await.unwrap_err(), DomainError::Invalid { key: "checkout.address_incomplete", .. }));
        let o = checkout::place(&ctx, &s).await.unwrap();
        // 2 × 128.00; 1 kg: 12.00 for the first 1000 g; 6 % Guangdong tax included (the province
        // wins over the country): 25600 × 600 / 10600 = 1449.06 → 1449.
        assert_eq!((o.subtotal, o.shipping, o.tax, o.total, o.tax_inclusive), (25_600, 1200, 1449, 26_800, 1));
        assert_eq!(o.number, 1001);
        assert!(o.address.contains("南山区"));
        // The same form again (a double click) is the same order; stock moved once.
        let again = checkout::place(&ctx, &s).await.unwrap();
        assert_eq!(again.id, o.id);
        assert_eq!(stock(&ctx, v).await, (8, 2));
        let both = futures::future::join_all((0..5).map(|i| { let ctx = ctx.clone(); let mut s = s.clone(); s.token = "twice".into(); let _ = i; async move { checkout::place(&ctx, &s).await.unwrap().id } })).await;
        assert!(both.windows(2).all(|w| w[0] == w[1]), "one order for one token: {both:?}");
        assert_eq!(stock(&ctx, v).await, (6, 4));
        // A foreign address pays the flat rate and no tax.
        let mut abroad = s.clone();
        abroad.token = "abroad".into();
        abroad.address = Some(Address { name: "Ann".into(), country: "US".into(), city: "Austin".into(), line1: "1 Main St".into(), ..Default::default() });
        abroad.shipping = Some("Abroad".into());
        let o2 = checkout::place(&ctx, &abroad).await.unwrap();
        assert_eq!((o2.shipping, o2.tax, o2.total), (9000, 0, 34_600));
        // A currency swap or a wrong amount is refused and written to the timeline (PAY-6).
        for (amount, currency) in [(26_799, "CNY"), (26_801, "CNY"), (26_800, "USD"), (53_600, "CNY")] {
            let e = order::pay(&ctx, o.id, &Received { gateway: "manual".into(), reference: format!("{amount}{currency}"), amount, currency: currency.into() }, "owner").await.unwrap_err();
            assert!(matches!(e, DomainError::Conflict { key: "order.amount_mismatch" }), "{e:?}");
        }
        let full = order::get(&ctx, o.id).await.unwrap();
        assert_eq!(full.row.payment, "pending");
        assert_eq!(full.events.iter().filter(|e| e.kind == "payment_refused").count(), 4);
        assert_eq!(order::pay(&ctx, o.id, &Received { gateway: "manual".into(), reference: "ok".into(), amount: 26_800, currency: "CNY".into() }, "owner").await.unwrap(), Paid::Applied);
        assert_eq!(stock(&ctx, v).await, (4, 4), "the paid order's held units are now the customer's");
        let topics: Vec<String> = yiren_core::event::after(&ctx, 0, None, 250).await.unwrap().into_iter().map(|e| e.topic).filter(|t| t.starts_with("orders/")).collect();
        assert_eq!(topics, ["orders/create", "orders/create", "orders/create", "orders/paid"]);
        // Cancelling the paid order with restock puts its units back; it awaits a refund.
        let c = order::cancel(&ctx, o.id, "owner", true).await.unwrap();
        assert_eq!((c.cancelled, c.refund_review), (1, 1));
        assert_eq!(stock(&ctx, v).await, (6, 4));
        audit_clean(&ctx).await;
        app.stop().await;
    }

    /// MONEY-3: 20 simultaneous full refunds of one order — exactly one goes through; partial
    /// refunds stop at what was captured; the same key twice is one refund; nothing to refund on an
    /// unpaid order. Fulfilment only when paid, once.
    async fn refunds_never_exceed_what_was_paid(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let ctx = Arc::new(app.state.ctx.clone());
        let v = product(&ctx, "refund", Kind::Digital, &[("R", 10_000, 100)]).await[0];
        let paid_order = |i: usize| {
            let ctx = ctx.clone();
            async move {
                let o = checkout::place(&ctx, &submit(format!("refund-{i}"), "r@example.com", &[(v, 1)])).await.unwrap();
                order::pay(&ctx, o.id, &Received { gateway: "manual".into(), reference: format!("confirm:{}", o.id), amount: 10_000, currency: "CNY".into() }, "owner").await.unwrap();
                o.id
            }
        };
        let refund = |amount: i64, key: &str| order::Refund { amount, key: key.into(), restock: false, reason: "test".into(), lines: vec![] };
        let one = paid_order(0).await;
        let results = futures::future::join_all((0..20).map(|i| {
            let ctx = ctx.clone();
            let r = refund(10_000, &format!("full-{i}"));
            tokio::spawn(async move { order::refund(&ctx, one, &r, "owner").await })
        }))
        .await;
        let ok = results.iter().filter(|r| matches!(r.as_ref().unwrap(), Ok(true))).count();
        let refused = results.iter().filter(|r| matches!(r.as_ref().unwrap(), Err(DomainError::Invalid { .. }))).count();
        assert_eq!((ok, refused), (1, 19));
        let o = store::get(ctx.db.read(), one).await.unwrap();
        assert_eq!((o.payment.as_str(), o.refunded), ("refunded", 10_000));

        let two = paid_order(1).await;
        for i in 0..3 {
            assert!(order::refund(&ctx, two, &refund(3000, &format!("part-{i}")), "owner").await.unwrap());
        }
        let e = order::refund(&ctx, two, &refund(3000, "part-3"), "owner").await.unwrap_err();
        assert!(matches!(e, DomainError::Invalid { key: "order.over_refund", .. }), "{e:?}");
        assert!(!order::refund(&ctx, two, &refund(1000, "part-0"), "owner").await.unwrap(), "a replayed key is the same refund");
        assert!(order::refund(&ctx, two, &refund(1000, "part-4"), "owner").await.unwrap());
        let o = store::get(ctx.db.read(), two).await.unwrap();
        assert_eq!((o.payment.as_str(), o.refunded), ("refunded", 10_000));

        let unpaid = checkout::place(&ctx, &submit("refund-unpaid".into(), "r@example.com", &[(v, 1)])).await.unwrap();
        let e = order::refund(&ctx, unpaid.id, &refund(100, "u"), "owner").await.unwrap_err();
        assert!(matches!(e, DomainError::Invalid { key: "order.transition_refused", .. }), "{e:?}");
        let e = order::fulfil(&ctx, unpaid.id, &[], "顺丰", "SF1", "owner").await.unwrap_err();
        assert!(matches!(e, DomainError::Conflict { key: "order.transition_refused" }), "{e:?}");
        let three = paid_order(2).await;
        let f = order::fulfil(&ctx, three, &[], "顺丰", "SF123", "owner").await.unwrap();
        assert_eq!(f.fulfilment, "fulfilled");
        assert!(order::fulfil(&ctx, three, &[], "顺丰", "SF124", "owner").await.is_err(), "nothing left to send");
        assert!(order::cancel(&ctx, three, "owner", true).await.is_err(), "a sent order is refunded, not cancelled");
        audit_clean(&ctx).await;
        app.stop().await;
    }

    /// Fulfilment and refunds by line: a line never sends or refunds more than its units; a line's
    /// refunds add up to exactly its amount (33.33 × 3 in units of one); restock applies to the
    /// chosen units only; the admin form and the API speak lines too.
    async fn orders_are_sent_and_refunded_by_line(engine: Engine) {
        use order::{LineUnits, Refund};
        let app = TestApp::spawn(engine).await;
        let ctx = app.state.ctx.clone();
        let vs = product(&ctx, "kit", Kind::Digital, &[("A", 3333, 10), ("B", 1000, 10)]).await;
        let (a, b) = (vs[0], vs[1]);
        let o = checkout::place(&ctx, &submit("by-line".into(), "l@example.com", &[(a, 3), (b, 2)])).await.unwrap();
        assert_eq!(o.total, 11_999);
        order::confirm_manual(&ctx, o.id, "owner").await.unwrap();
        let unit = |position: i64, quantity: i64| LineUnits { position, quantity };
        let line = |n: i64| { let ctx = ctx.clone(); async move { order::get(&ctx, o.id).await.unwrap().lines.into_iter().find(|l| l.position == n).unwrap() } };
        let (p1, p2) = {
            let lines = order::get(&ctx, o.id).await.unwrap().lines;
            (lines.iter().find(|l| l.variant_id == Some(a)).unwrap().position, lines.iter().find(|l| l.variant_id == Some(b)).unwrap().position)
        };

        // Send by line: 2 of the 3 A's.
        let r = order::fulfil(&ctx, o.id, &[unit(p1, 2)], "顺丰", "SF1", "owner").await.unwrap();
        assert_eq!((r.fulfilment.as_str(), r.fulfilled), ("partially_fulfilled", 2));
        for bad in [vec![unit(p1, 2)], vec![unit(p1, 0)], vec![unit(99, 1)], vec![unit(p2, 1), unit(p2, 1)], vec![unit(p1, -1)]] {
            let e = order::fulfil(&ctx, o.id, &bad, "顺丰", "SF2", "owner").await.unwrap_err();
            assert!(matches!(e, DomainError::Invalid { key: "order.fulfil_lines_invalid", .. }), "{bad:?}: {e:?}");
        }
        assert_eq!(line(p1).await.fulfilled, 2, "a refused shipment changes nothing");
        // Everything left: 1 A and 2 B.
        let r = order::fulfil(&ctx, o.id, &[], "顺丰", "SF3", "owner").await.unwrap();
        assert_eq!((r.fulfilment.as_str(), r.fulfilled), ("fulfilled", 5));
        assert_eq!((line(p1).await.fulfilled, line(p2).await.fulfilled), (3, 2));

        // Refund by line: one A (restocked), then the two others (not restocked): 3,333 + 6,666 =
        // the line's 9,999 exactly; the amount sent is ignored.
        let by_line = |key: &str, lines: Vec<LineUnits>, restock: bool| Refund { amount: 1, key: key.into(), restock, reason: String::new(), lines };
        assert!(order::refund(&ctx, o.id, &by_line("r1", vec![unit(p1, 1)], true), "owner").await.unwrap());
        assert_eq!(stock(&ctx, a).await.0, 8);
        assert!(order::refund(&ctx, o.id, &by_line("r2", vec![unit(p1, 2)], false), "owner").await.unwrap());
        let got = order::get(&ctx, o.id).await.unwrap();
        let refunds: Vec<i64> = got.transactions.iter().filter(|t| t.kind == "refund").map(|t| t.amount).collect();
        assert_eq!(refunds, vec![3_333, 6_666]);
        assert_eq!((line(p1).await.refunded_units, line(p1).await.restocked), (3, 1));
        let e = order::refund(&ctx, o.id, &by_line("r3", vec![unit(p1, 1)], false), "owner").await.unwrap_err();
        assert!(matches!(e, DomainError::Invalid { key: "order.refund_lines_invalid", .. }), "{e:?}");
        // The B's through the admin form (units per line), restocked: the order is refunded in
        // full, and only the chosen units went back (A's two unrestocked units stay sold).
        let owner = app.setup_owner("owner@example.com", "correct horse battery staple").await;
        let page = owner.get(app.url(&format!("/admin/orders/{}", o.id))).send().await.unwrap().text().await.unwrap();
        assert!(page.contains(&format!("name=\"r_{p2}\"")), "{page}");
        let form = [("_csrf", yiren_testkit::csrf_of(&page)), ("token", yiren_testkit::field_of(&page, "token")), ("amount", "0.01".into()), ("restock", "1".into()), (format!("r_{p2}").leak() as &str, "2".into())];
        let r = owner.post(app.url(&format!("/admin/orders/{}/refund", o.id))).form(&form).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let got = order::get(&ctx, o.id).await.unwrap();
        assert_eq!((got.row.payment.as_str(), got.row.refunded), ("refunded", 11_999));
        assert_eq!((stock(&ctx, a).await.0, stock(&ctx, b).await.0), (8, 10));
        audit_clean(&ctx).await;

        // The API: line items carry their id and counts; fulfilments and refunds by line item.
        let token = app.api_token(&owner, &["orders:read", "orders:write"]).await;
        let o2 = checkout::place(&ctx, &submit("by-line-api".into(), "m@example.com", &[(a, 2)])).await.unwrap();
        order::confirm_manual(&ctx, o2.id, "owner").await.unwrap();
        let api = |path: String, body: serde_json::Value| app.client().post(app.url(&path)).bearer_auth(&token).json(&body).send();
        let pos = order::get(&ctx, o2.id).await.unwrap().lines[0].position;
        let r = api(format!("/api/v1/orders/{}/fulfillments", o2.id), serde_json::json!({ "fulfillment": { "tracking_number": "SF9", "line_items": [{ "line_item_id": pos, "quantity": 1 }] } })).await.unwrap();
        assert_eq!(r.status(), 201);
        let j: serde_json::Value = r.json().await.unwrap();
        assert_eq!((j["order"]["fulfillment_status"].as_str(), j["order"]["line_items"][0]["fulfilled_quantity"].as_i64()), (Some("partial"), Some(1)));
        let r = api(format!("/api/v1/orders/{}/refunds", o2.id), serde_json::json!({ "refund": { "refund_line_items": [{ "line_item_id": pos, "quantity": 1 }] } })).await.unwrap();
        assert_eq!(r.status(), 201);
        let j: serde_json::Value = r.json().await.unwrap();
        assert_eq!(j["order"]["line_items"][0]["refunded_quantity"].as_i64(), Some(1));
        assert_eq!(j["order"]["transactions"][1]["amount"].as_str(), Some("33.33"));
        assert_eq!(j["order"]["transactions"][1]["status"].as_str(), Some("manual"));
        let r = api(format!("/api/v1/orders/{}/refunds", o2.id), serde_json::json!({ "refund": { "refund_line_items": [{ "line_item_id": pos, "quantity": 2 }] } })).await.unwrap();
        assert_eq!(r.status(), 422);
        audit_clean(&ctx).await;
        app.stop().await;
    }
}

/// A test's own piece: one settings row, or a refusal after writing it (undone with its savepoint).
struct Setting {
    key: &'static str,
    fail: bool,
}

impl Piece for Setting {
    type Out = &'static str;
    const NAME: &'static str = "test.setting";

    fn write<'a>(
        &'a self,
        ctx: &'a Ctx,
        tx: &'a mut yiren_store::Tx,
        _w: &'a mut yiren_store::Writes,
    ) -> futures::future::BoxFuture<'a, Result<&'static str, DomainError>> {
        Box::pin(async move {
            yiren_store::settings::put(&mut **tx, self.key, "1", ctx.now()).await?;
            if self.fail {
                return Err(DomainError::Conflict {
                    key: "error.conflict",
                });
            }
            Ok(self.key)
        })
    }
}
