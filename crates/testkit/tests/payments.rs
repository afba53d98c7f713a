//! The one notification handler, over real HTTP on both engines, against `fakepay` (a gateway
//! protocol written for tests: sorted fields signed with HMAC-SHA256, a merchant id, a timestamp,
//! the `success` acknowledgement): duplicated, reordered and concurrent notifications pay each
//! order once (RELIABILITY PAY-1); forged ones change nothing (PAY-2, the classes that apply to this
//! protocol); amount and currency mismatches are parked, never paid (PAY-6); checkout with an online
//! gateway sends the customer to it.

use std::sync::Arc;

use futures::stream::{self, StreamExt};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use yiren_core::catalog::Kind;
use yiren_core::checkout::{self, Submit};
use yiren_core::{cart, order};
use yiren_testkit::fake_pay::{self, FakePay};
use yiren_testkit::{both_engines, field_of, location, product, TestApp};

const SECRET: &str = "fakepay-secret-0123456789";

async fn app(engine: yiren_testkit::Engine) -> TestApp {
    let gw = FakePay::new(SECRET);
    TestApp::spawn_with_gateways(engine, vec![Arc::new(gw)]).await
}

async fn ebook(app: &TestApp) -> i64 {
    product(
        &app.state.ctx,
        "ebook",
        Kind::Digital,
        &[("EB", 9900, 10_000)],
    )
    .await[0]
}

async fn place(app: &TestApp, v: i64, i: usize) -> i64 {
    let s = Submit {
        token: format!("pay-{i}"),
        email: format!("p{i}@example.com"),
        lines: vec![cart::Line {
            variant_id: v,
            quantity: 1,
        }],
        gateway: "fakepay".into(),
        ..Default::default()
    };
    checkout::place(&app.state.ctx, &s).await.unwrap().id
}

/// A notification's form fields, signed with `secret`.
fn notification(secret: &str, fields: &[(&str, String)]) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let sig = fake_pay::sign(secret, &p);
    p.push(("sign".into(), sig));
    p
}

fn paid(
    order: i64,
    txn: &str,
    amount: &str,
    currency: &str,
    t: i64,
) -> Vec<(&'static str, String)> {
    vec![
        ("merchant", "M100".into()),
        ("order", order.to_string()),
        ("txn", txn.into()),
        ("amount", amount.into()),
        ("currency", currency.into()),
        ("status", "paid".into()),
        ("t", t.to_string()),
    ]
}

async fn deliver(app: &TestApp, body: String) -> (u16, String) {
    let r = app
        .client()
        .post(app.url("/payments/fakepay/notify"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn form(p: &[(String, String)]) -> String {
    serde_urlencoded::to_string(p).unwrap()
}

both_engines! {
    /// PAY-1: 200 orders, each notification delivered 1–5 times, all shuffled, 32 at a time (so
    /// duplicates are in flight together): every delivery acknowledged, each order paid once.
    async fn duplicated_and_concurrent_notifications_pay_each_order_once(engine: Engine) {
        let app = app(engine).await;
        let v = ebook(&app).await;
        let seed: u64 = rand::random();
        println!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let now = yiren_core::Clock::now_ms(&app.clock) / 1000;
        let mut deliveries = vec![];
        let mut orders = vec![];
        for i in 0..200 {
            let id = place(&app, v, i).await;
            orders.push(id);
            let body = form(&notification(SECRET, &paid(id, &format!("T{i}"), "99.00", "CNY", now)));
            for _ in 0..rng.gen_range(1..=5) {
                deliveries.push(body.clone());
            }
        }
        deliveries.shuffle(&mut rng);
        let n = deliveries.len();
        let app = Arc::new(app);
        let answers: Vec<(u16, String)> = stream::iter(deliveries)
            .map(|b| { let app = app.clone(); async move { deliver(&app, b).await } })
            .buffer_unordered(32)
            .collect()
            .await;
        assert_eq!(answers.len(), n);
        assert!(answers.iter().all(|a| *a == (200, "success".to_string())), "{:?}", answers.iter().find(|a| a.0 != 200));
        let ctx = &app.state.ctx;
        for id in &orders {
            let o = order::get(ctx, *id).await.unwrap();
            assert_eq!((o.row.payment.as_str(), o.transactions.len(), o.row.captured), ("paid", 1, 9900));
            assert_eq!(o.events.iter().filter(|e| e.kind == "paid").count(), 1);
        }
        let paid_events = yiren_core::event::after(ctx, 0, Some("orders/paid"), 250).await.unwrap().len();
        assert_eq!(paid_events, 200);
        assert!(order::audit(ctx).await.unwrap().is_empty());
    }

    /// PAY-2 and PAY-6: forged notifications are refused with `fail` and change nothing; valid
    /// ones with the wrong amount or currency are acknowledged but parked on the timeline.
    async fn forged_and_mismatched_notifications_never_pay(engine: Engine) {
        let app = app(engine).await;
        let v = ebook(&app).await;
        let id = place(&app, v, 0).await;
        let now = yiren_core::Clock::now_ms(&app.clock) / 1000;
        let good = paid(id, "T1", "99.00", "CNY", now);
        let signed = |fields: &[(&str, String)]| form(&notification(SECRET, fields));
        let with = |k: &str, val: &str| -> Vec<(&'static str, String)> {
            good.iter().map(|(n, x)| (*n, if *n == k { val.to_string() } else { x.clone() })).collect()
        };
        let mut tampered = notification(SECRET, &good);
        tampered[3].1 = "0.01".into();
        let mut no_sign = notification(SECRET, &good);
        no_sign.pop();
        let mut doubled = notification(SECRET, &good);
        doubled.push(("amount".into(), "0.01".into()));
        let forged: Vec<(&str, String)> = vec![
            ("wrong key", form(&notification("another-secret", &good))),
            ("tampered after signing", form(&tampered)),
            ("no signature", form(&no_sign)),
            ("empty signature", form(&[notification(SECRET, &good), vec![]].concat().into_iter().map(|(k, v)| if k == "sign" { (k, String::new()) } else { (k, v) }).collect::<Vec<_>>())),
            ("wrong merchant", signed(&with("merchant", "M999"))),
            ("stale", signed(&with("t", &(now - 301).to_string()))),
            ("future", signed(&with("t", &(now + 301).to_string()))),
            ("unknown order", signed(&with("order", "12345"))),
            ("not a number", signed(&with("order", "abc"))),
            ("duplicate parameter", form(&doubled)),
            ("garbage", "%%%".into()),
        ];
        for (what, body) in forged {
            assert_eq!(deliver(&app, body).await, (400, "fail".into()), "{what}");
        }
        let r = app.client().post(app.url("/payments/fakepay/notify")).body(vec![0xff, 0xfe, 0x00]).send().await.unwrap();
        assert_eq!(r.status(), 400, "non-UTF-8");
        assert_eq!(app.client().post(app.url("/payments/nosuch/notify")).send().await.unwrap().status(), 404);
        assert_eq!(app.client().post(app.url("/payments/manual/notify")).send().await.unwrap().status(), 404, "the manual gateway takes no notifications");
        let o = order::get(&app.state.ctx, id).await.unwrap();
        assert_eq!((o.row.payment.as_str(), o.transactions.len(), o.events.len()), ("pending", 0, 1), "nothing changed");

        // Valid signatures, wrong money: acknowledged (retrying cannot help), parked, never paid.
        for (i, (amount, currency)) in [("98.99", "CNY"), ("99.01", "CNY"), ("0.01", "CNY"), ("198.00", "CNY"), ("99.00", "USD")].iter().enumerate() {
            let body = signed(&with("amount", amount).into_iter().map(|(k, v)| match k { "currency" => (k, currency.to_string()), "txn" => (k, format!("M{i}")), _ => (k, v) }).collect::<Vec<_>>());
            assert_eq!(deliver(&app, body).await, (200, "success".into()), "{amount} {currency}");
        }
        let o = order::get(&app.state.ctx, id).await.unwrap();
        assert_eq!(o.row.payment, "pending");
        assert_eq!(o.events.iter().filter(|e| e.kind == "payment_refused").count(), 5);
        // Pending and failed outcomes are acknowledged and change nothing.
        assert_eq!(deliver(&app, signed(&with("status", "failed"))).await, (200, "success".into()));
        assert_eq!(order::get(&app.state.ctx, id).await.unwrap().row.payment, "pending");
        // The real one pays it; a late payment for a cancelled order is parked for a refund.
        assert_eq!(deliver(&app, signed(&good)).await, (200, "success".into()));
        assert_eq!(order::get(&app.state.ctx, id).await.unwrap().row.payment, "paid");
        let id2 = place(&app, v, 1).await;
        order::cancel(&app.state.ctx, id2, "owner", true).await.unwrap();
        assert_eq!(deliver(&app, signed(&paid(id2, "T2", "99.00", "CNY", now))).await, (200, "success".into()));
        let o2 = order::get(&app.state.ctx, id2).await.unwrap().row;
        assert_eq!((o2.payment.as_str(), o2.refund_review, o2.fulfilment.as_str()), ("paid", 1, "unfulfilled"));
        assert!(order::audit(&app.state.ctx).await.unwrap().is_empty());
    }

    /// Checkout with an online gateway sends the customer to it; an unknown gateway is refused.
    async fn checkout_with_an_online_gateway_redirects_out(engine: Engine) {
        let app = app(engine).await;
        let v = ebook(&app).await;
        let c = app.client();
        c.post(app.url("/cart/add")).form(&[("variant_id", v.to_string()), ("quantity", "1".into())]).send().await.unwrap();
        let page = c.get(app.url("/checkout")).send().await.unwrap().text().await.unwrap();
        let token = field_of(&page, "token");
        let r = c.post(app.url("/checkout")).form(&[("token", token.as_str()), ("email", "out@example.com"), ("gateway", "nosuch")]).send().await.unwrap();
        assert_eq!(r.status(), 422);
        let r = c.post(app.url("/checkout")).form(&[("token", token.as_str()), ("email", "out@example.com"), ("gateway", "fakepay")]).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let to = location(&r);
        let id = order::list(&app.state.ctx, None, 10, 0).await.unwrap()[0].id;
        assert_eq!(to, format!("https://fakepay.test/pay?merchant=M100&order={id}&amount=99.00"));
    }

    /// PAY-5 with failpoints: the database failing between verification and commit gets the
    /// gateway's retry answer and leaves nothing behind, and the retry pays; a commit whose answer
    /// is lost (the gateway sees a failure) is retried, deduplicated, and fulfils once. (Failpoints
    /// are process-wide: nextest runs each test in a process of its own.)
    async fn the_answer_comes_only_after_the_commit(engine: Engine) {
        let scenario = fail::FailScenario::setup();
        let app = app(engine).await;
        let ctx = &app.state.ctx;
        let v = ebook(&app).await;
        let now = yiren_core::Clock::now_ms(&app.clock) / 1000;
        let once = |id: i64| async move {
            let o = order::get(ctx, id).await.unwrap();
            let grants = yiren_core::delivery::entitlements(ctx, id).await.unwrap().len();
            let paid_events = yiren_core::event::after(ctx, 0, Some("orders/paid"), 100).await.unwrap().iter().filter(|e| e.subject_id == id).count();
            (o.row.payment.clone(), o.transactions.len(), o.events.iter().filter(|e| e.kind == "paid").count(), grants, paid_events)
        };

        // Between verify and commit.
        let a = place(&app, v, 1).await;
        let body = form(&notification(SECRET, &paid(a, "TA", "99.00", "CNY", now)));
        fail::cfg("order.pay.before_commit", "return").unwrap();
        let (status, text) = deliver(&app, body.clone()).await;
        assert_eq!((status, text.as_str()), (500, "fail"), "a retryable failure");
        assert_eq!(once(a).await, ("pending".to_string(), 0, 0, 0, 0), "nothing of the payment remains");
        fail::remove("order.pay.before_commit");
        assert_eq!(deliver(&app, body).await, (200, "success".to_string()));
        assert_eq!(once(a).await, ("paid".to_string(), 1, 1, 1, 1));

        // Between commit and the answer.
        let b = place(&app, v, 2).await;
        let body = form(&notification(SECRET, &paid(b, "TB", "99.00", "CNY", now)));
        fail::cfg("payment.notify.after_commit", "return").unwrap();
        assert_eq!(deliver(&app, body.clone()).await.0, 500, "the gateway never saw the acknowledgement");
        assert_eq!(once(b).await, ("paid".to_string(), 1, 1, 1, 1), "but the payment is committed");
        fail::remove("payment.notify.after_commit");
        for _ in 0..3 {
            assert_eq!(deliver(&app, body.clone()).await, (200, "success".to_string()));
        }
        assert_eq!(once(b).await, ("paid".to_string(), 1, 1, 1, 1), "retries change nothing");
        assert!(order::audit(ctx).await.unwrap().is_empty());
        scenario.teardown();
    }
}
