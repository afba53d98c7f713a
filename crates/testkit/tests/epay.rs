//! The EPay (彩虹易支付) gateway end to end, on both engines, against the fake aggregator in
//! `yiren_testkit::fake_epay` (written from the protocol rules, with its own MD5 signing): the
//! owner configures it in admin (the key write-only and sealed at rest, SEC-1); the customer
//! checks out, sees the aggregator's QR code on the order page (asked for once), pays; the fake
//! notifies on its retry schedule until it reads `success`. Negative cases: every forged class
//! that applies to this protocol (PAY-2), events late or out of order (PAY-3), the customer's
//! signed return racing the notification (PAY-4), the wrong amount (PAY-6), and reconciliation
//! of a notification that never came (PAY-7).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::stream::{self, StreamExt};

use yiren_core::catalog::Kind;
use yiren_core::payment::{reconcile, settings::GatewayConfig};
use yiren_core::{cart, checkout, order};
use yiren_testkit::fake_epay::FakeEpay;
use yiren_testkit::{both_engines, field_of, location, product, TestApp};

const PID: &str = "1001";
const KEY: &str = "k3Y-epay-0123456789abcdef";

async fn ebook(app: &TestApp) -> i64 {
    product(
        &app.state.ctx,
        "ebook",
        Kind::Digital,
        &[("EB", 9900, 10_000)],
    )
    .await[0]
}

/// A shop selling the ebook with the EPay gateway (in `mode`) configured against a new fake.
async fn shop(engine: yiren_testkit::Engine, mode: &str) -> (TestApp, FakeEpay, i64) {
    let app = TestApp::spawn(engine).await;
    let fake = FakeEpay::start(PID, KEY).await;
    configure(&app, &fake, mode).await;
    let v = ebook(&app).await;
    (app, fake, v)
}

/// The gateway as the owner would save it (core's own path; the admin form is tested below).
async fn configure(app: &TestApp, fake: &FakeEpay, mode: &str) {
    let c = GatewayConfig {
        id: "epay".into(),
        kind: "epay".into(),
        name: "支付宝".into(),
        enabled: true,
        fields: BTreeMap::from([
            ("base_url".into(), fake.base.clone()),
            ("pid".into(), PID.into()),
            ("type".into(), "alipay".into()),
            ("mode".into(), mode.into()),
        ]),
        secrets: BTreeMap::from([("key".into(), KEY.into())]),
    };
    yiren_core::payment::settings::put(&app.state.ctx, c)
        .await
        .unwrap();
}

/// A guest buys the ebook through the checkout form paying with `gateway`; (order id, where the
/// checkout sent them).
async fn buy(app: &TestApp, c: &reqwest::Client, v: i64, gateway: &str) -> (i64, String) {
    c.post(app.url("/cart/add"))
        .form(&[("variant_id", v.to_string()), ("quantity", "1".into())])
        .send()
        .await
        .unwrap();
    let page = c
        .get(app.url("/checkout"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = field_of(&page, "token");
    let r = c
        .post(app.url("/checkout"))
        .form(&[
            ("token", token.as_str()),
            ("email", "buyer@example.com"),
            ("gateway", gateway),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let to = location(&r);
    let id = order::list(&app.state.ctx, None, 1, 0).await.unwrap()[0].id;
    (id, to)
}

/// (payment, transactions, paid events, entitlements) of an order.
async fn state(app: &TestApp, id: i64) -> (String, usize, usize, usize) {
    let ctx = &app.state.ctx;
    let o = order::get(ctx, id).await.unwrap();
    let grants = yiren_core::delivery::entitlements(ctx, id)
        .await
        .unwrap()
        .len();
    (
        o.row.payment.clone(),
        o.transactions.len(),
        o.events.iter().filter(|e| e.kind == "paid").count(),
        grants,
    )
}

async fn notify(app: &TestApp, query: &str) -> (u16, String) {
    // One client for every delivery (making one per request costs more than the request).
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let r = CLIENT
        .get_or_init(|| app.client())
        .get(app.url(&format!("/payments/epay/notify?{query}")))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn paid() -> (String, usize, usize, usize) {
    ("paid".into(), 1, 1, 1)
}

fn pending() -> (String, usize, usize, usize) {
    ("pending".into(), 0, 0, 0)
}

both_engines! {
    /// The whole path in API mode: the QR code from mapi.php on the order page (asked for once,
    /// however often the page is seen), the fake pays, notifies, reads `success`; the order is
    /// paid and delivered; the customer's signed return changes nothing more.
    async fn an_order_is_paid_through_an_epay_aggregator(engine: Engine) {
        let (app, fake, v) = shop(engine, "api").await;
        let c = app.client();
        let form = {
            let c = app.client();
            c.post(app.url("/cart/add")).form(&[("variant_id", v.to_string()), ("quantity", "1".into())]).send().await.unwrap();
            c.get(app.url("/checkout")).send().await.unwrap().text().await.unwrap()
        };
        assert!(form.contains("name=\"gateway\" value=\"epay\"") && form.contains("支付宝"), "offered at checkout: {form}");
        let (id, to) = buy(&app, &c, v, "epay").await;
        assert!(to.starts_with(&format!("/orders/{id}?key=")), "a QR code is shown on our page: {to}");
        let trades = fake.trades();
        assert_eq!(trades.len(), 1);
        let t = &trades[0];
        assert_eq!((t.via, t.out_trade_no.as_str(), t.money.as_str(), t.pay_type.as_str(), t.client_ip.as_str()), ("mapi.php", id.to_string().as_str(), "99.00", "alipay", "127.0.0.1"));
        assert_eq!(t.notify_url, app.url("/payments/epay/notify"));
        for _ in 0..3 {
            let page = c.get(app.url(&to)).send().await.unwrap().text().await.unwrap();
            assert!(page.contains("id=\"pay-qr\"") && page.contains("<svg") && page.contains("扫码"), "{page}");
            assert!(page.contains("/assets/order-status.js"));
        }
        assert_eq!(fake.requests().iter().filter(|r| *r == "mapi.php").count(), 1, "the payment is created once");
        let status: serde_json::Value = c.get(app.url(&to.replace('?', "/status?"))).send().await.unwrap().json().await.unwrap();
        assert_eq!(status["payment"], "pending");

        let back = fake.pay(&t.trade_no);
        assert_eq!(fake.wait_answers(&id.to_string(), 1).await, vec![(200, "success".to_string())]);
        assert_eq!(state(&app, id).await, paid());
        let o = order::get(&app.state.ctx, id).await.unwrap();
        assert_eq!((o.transactions[0].gateway.as_str(), o.transactions[0].reference.as_str(), o.transactions[0].amount), ("epay", t.trade_no.as_str(), 9900));
        let status: serde_json::Value = c.get(app.url(&to.replace('?', "/status?"))).send().await.unwrap().json().await.unwrap();
        assert_eq!(status["payment"], "paid");
        assert!(status["status"].as_str().unwrap().starts_with("已付款"), "{status}");
        // The customer comes back with the signed return: shown as paid, recorded once.
        assert!(back.starts_with(&app.url(&to)), "{back}");
        let page = c.get(&back).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("已付款") && !page.contains("id=\"pay-qr\""), "{page}");
        assert_eq!(state(&app, id).await, paid());
        assert!(order::audit(&app.state.ctx).await.unwrap().is_empty());
    }

    /// Page mode: the checkout sends the customer to submit.php with the signed parameters; the
    /// fake's cashier takes the payment and sends them back.
    async fn page_mode_sends_the_customer_to_the_cashier(engine: Engine) {
        let (app, fake, v) = shop(engine, "page").await;
        let c = app.client();
        let (id, to) = buy(&app, &c, v, "epay").await;
        assert!(to.starts_with(&format!("{}submit.php?", fake.base)), "{to}");
        let cashier = c.get(&to).send().await.unwrap();
        assert_eq!(cashier.status(), 200, "the fake accepted the signature");
        assert!(cashier.text().await.unwrap().contains("¥99.00"));
        let t = fake.trade(&id.to_string()).unwrap();
        let r = c.post(format!("{}cashier/{}/pay", fake.base, t.trade_no)).send().await.unwrap();
        let back = location(&r);
        assert!(back.starts_with(&app.url(&format!("/orders/{id}?key="))) && back.contains("sign="), "{back}");
        fake.wait_answers(&id.to_string(), 1).await;
        assert_eq!(state(&app, id).await, paid());
        // A tampered signed query at submit.php is refused by the aggregator.
        let tampered = to.replace("money=99.00", "money=0.01");
        assert_eq!(c.get(&tampered).send().await.unwrap().status(), 400);
    }

    /// The fake notifies again while the answer is not `success`: the first answer is lost after
    /// the commit (PAY-5), the retry is acknowledged and changes nothing.
    async fn notifications_are_sent_again_until_acknowledged(engine: Engine) {
        let scenario = fail::FailScenario::setup();
        let (app, fake, v) = shop(engine, "api").await;
        let (id, _) = buy(&app, &app.client(), v, "epay").await;
        fail::cfg("payment.notify.after_commit", "1*return").unwrap();
        fake.pay(&fake.trade(&id.to_string()).unwrap().trade_no);
        let answers = fake.wait_answers(&id.to_string(), 2).await;
        assert_eq!(answers, vec![(503, "fail".to_string()), (200, "success".to_string())]);
        assert_eq!(state(&app, id).await, paid());
        scenario.teardown();
    }

    /// PAY-2: forged notifications get `fail` and change nothing; PAY-6: a correctly signed one
    /// with the wrong amount is acknowledged (retrying cannot fix it) and parked, never paid.
    async fn forged_or_mismatched_epay_notifications_never_pay(engine: Engine) {
        let (app, fake, v) = shop(engine, "api").await;
        let (id, _) = buy(&app, &app.client(), v, "epay").await;
        let t = fake.trade(&id.to_string()).unwrap();
        let good = fake.notification(&t.trade_no, &[], None);
        let swap = |q: &str, from: &str, to: &str| q.replacen(from, to, 1);
        let sign_of = |q: &str| q.split('&').find(|p| p.starts_with("sign=")).unwrap().trim_start_matches("sign=").to_string();
        let forged: Vec<(&str, String)> = vec![
            ("wrong key", fake.notification(&t.trade_no, &[], Some("not-the-key"))),
            ("money changed after signing", swap(&good, "money=99.00", "money=0.01")),
            ("order changed after signing", swap(&good, &format!("out_trade_no={id}"), "out_trade_no=1")),
            ("status changed after signing", fake.notification(&t.trade_no, &[("trade_status", "WAIT_BUYER_PAY")], None).replace("WAIT_BUYER_PAY", "TRADE_SUCCESS")),
            ("no signature", good.split('&').filter(|p| !p.starts_with("sign=")).collect::<Vec<_>>().join("&")),
            ("empty signature", swap(&good, &format!("sign={}", sign_of(&good)), "sign=")),
            ("upper-case signature", swap(&good, &sign_of(&good), &sign_of(&good).to_uppercase())),
            ("another sign_type", swap(&good, "sign_type=MD5", "sign_type=RSA")),
            ("another merchant", fake.notification(&t.trade_no, &[("pid", "2002")], None)),
            ("unknown order", fake.notification(&t.trade_no, &[("out_trade_no", "424242")], None)),
            ("duplicate parameter", format!("{good}&money=0.01")),
            ("garbage", "%%%=&&=".into()),
            ("empty", String::new()),
            ("not UTF-8", swap(&good, "money=99.00", "money=%FF%FE")),
            ("overlong field, signed", fake.notification(&t.trade_no, &[("name", &"长".repeat(2_000))], None)),
        ];
        // RELIABILITY PAY-2: each class 100 times, 16 at a time.
        let app = Arc::new(app);
        let deliveries: Vec<(&str, String)> = forged.iter().flat_map(|(w, q)| std::iter::repeat_n((*w, q.clone()), 100)).collect();
        let answers: Vec<(&str, (u16, String))> = stream::iter(deliveries)
            .map(|(w, q)| { let app = app.clone(); async move { (w, notify(&app, &q).await) } })
            .buffer_unordered(16)
            .collect()
            .await;
        assert_eq!(answers.len(), forged.len() * 100);
        for (what, answer) in &answers {
            assert_eq!(*answer, (400, "fail".to_string()), "{what}");
        }
        assert_eq!(state(&app, id).await, pending(), "nothing changed");
        // Signed, but not paid yet: acknowledged, nothing recorded.
        assert_eq!(notify(&app, &fake.notification(&t.trade_no, &[("trade_status", "WAIT_BUYER_PAY")], None)).await, (200, "success".into()));
        // Signed, the wrong amount (a misbehaving aggregator): acknowledged and parked.
        fake.set_money_sent(Some("0.01"));
        fake.pay(&t.trade_no);
        assert_eq!(fake.wait_answers(&id.to_string(), 1).await, vec![(200, "success".to_string())]);
        let o = order::get(&app.state.ctx, id).await.unwrap();
        assert_eq!((o.row.payment.as_str(), o.transactions.len()), ("pending", 0));
        assert_eq!(o.events.iter().filter(|e| e.kind == "payment_refused").count(), 1);
        // The right one, signed as sent after the fact, pays it.
        fake.set_money_sent(None);
        assert_eq!(notify(&app, &fake.notification(&t.trade_no, &[], None)).await, (200, "success".into()));
        assert_eq!(state(&app, id).await, paid());
    }

    /// PAY-3: a payment for an order cancelled meanwhile is recorded for a refund, not fulfilled;
    /// a duplicate after the payment, and a "waiting" event arriving after it, change nothing.
    async fn late_and_out_of_order_epay_events(engine: Engine) {
        let (app, fake, v) = shop(engine, "api").await;
        let (id, _) = buy(&app, &app.client(), v, "epay").await;
        let t = fake.trade(&id.to_string()).unwrap();
        order::cancel(&app.state.ctx, id, "owner", true).await.unwrap();
        fake.pay(&t.trade_no);
        assert_eq!(fake.wait_answers(&id.to_string(), 1).await, vec![(200, "success".to_string())]);
        let o = order::get(&app.state.ctx, id).await.unwrap().row;
        assert_eq!((o.payment.as_str(), o.refund_review, o.fulfilment.as_str()), ("paid", 1, "unfulfilled"));
        assert!(yiren_core::delivery::entitlements(&app.state.ctx, id).await.unwrap().is_empty(), "a cancelled order is not delivered");

        let (id2, _) = buy(&app, &app.client(), v, "epay").await;
        let t2 = fake.trade(&id2.to_string()).unwrap();
        fake.pay(&t2.trade_no);
        fake.wait_answers(&id2.to_string(), 1).await;
        for q in [fake.notification(&t2.trade_no, &[], None), fake.notification(&t2.trade_no, &[("trade_status", "WAIT_BUYER_PAY")], None)] {
            assert_eq!(notify(&app, &q).await, (200, "success".into()));
        }
        assert_eq!(state(&app, id2).await, paid());
        assert!(order::audit(&app.state.ctx).await.unwrap().is_empty());
    }

    /// PAY-4: 200 orders; for each, the customer's signed return and the notification arrive at
    /// the same moment: 200 payments, none recorded twice; a forged return changes nothing.
    async fn the_return_and_the_notification_racing_pay_once(engine: Engine) {
        let (app, fake, v) = shop(engine, "api").await;
        let app = Arc::new(app);
        fake.set_notify(false);
        let c = app.client();
        let (first, page) = buy(&app, &c, v, "epay").await;
        let t = fake.trade(&first.to_string()).unwrap();
        // A return signed with another key is not believed.
        let forged = format!("{page}&{}", fake.notification(&t.trade_no, &[], Some("wrong")));
        assert!(c.get(app.url(&forged)).send().await.unwrap().text().await.unwrap().contains("等待付款"));
        assert_eq!(state(&app, first).await, pending());
        // 199 more, placed and started through the services (the first went through the pages).
        let ctx = &app.state.ctx;
        let mut orders = vec![first];
        for i in 0..199 {
            let s = checkout::Submit {
                token: format!("race-{i}"),
                email: format!("r{i}@example.com"),
                lines: vec![cart::Line { variant_id: v, quantity: 1 }],
                gateway: "epay".into(),
                ..Default::default()
            };
            let o = checkout::place(ctx, &s).await.unwrap();
            yiren_core::payment::start(ctx, &o, &app.base, "127.0.0.1").await.unwrap();
            orders.push(o.id);
        }
        // Paid at the aggregator (its notifications held back); then return and notification together.
        let races: Vec<(i64, String, String)> = orders
            .iter()
            .map(|id| {
                let back = fake.pay(&fake.trade(&id.to_string()).unwrap().trade_no);
                let query = back.split_once('?').unwrap().1.split_once('&').unwrap().1.to_string();
                (*id, back, query)
            })
            .collect();
        let shared = app.client();
        stream::iter(races)
            .map(|(id, back, query)| {
                let (app, client) = (app.clone(), shared.clone());
                async move {
                    let (page, ack) = tokio::join!(client.get(&back).send(), notify(&app, &query));
                    assert_eq!((page.unwrap().status().as_u16(), ack), (200, (200, "success".to_string())), "order {id}");
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        for id in &orders {
            assert_eq!(state(&app, *id).await, paid(), "order {id}");
        }
        assert!(order::audit(ctx).await.unwrap().is_empty());
    }

    /// PAY-7: the notification never comes; the scheduled check asks the aggregator after the
    /// grace period and records the payment through the same path; the owner's report shows what
    /// each check found.
    async fn reconciliation_records_a_payment_whose_notification_was_lost(engine: Engine) {
        // The built-in five-minute schedule would run it too as the clock moves: moved to once a
        // year, so the runs counted here are the test's own.
        let app = TestApp::spawn_with(engine, |c| c.jobs.schedules.push(yiren::config::ScheduleConfig {
            name: "payments".into(), cron: "0 0 1 1 *".into(), kind: reconcile::KIND.into(), payload: None,
        })).await;
        let owner = app.setup_owner("owner@example.com", "correct horse battery staple").await;
        let fake = FakeEpay::start(PID, KEY).await;
        configure(&app, &fake, "api").await;
        fake.set_notify(false);
        let v = ebook(&app).await;
        let (paid_id, _) = buy(&app, &app.client(), v, "epay").await;
        let (waiting_id, _) = buy(&app, &app.client(), v, "epay").await;
        fake.pay(&fake.trade(&paid_id.to_string()).unwrap().trade_no);
        let ctx = &app.state.ctx;
        // Within the grace period nothing is asked.
        assert_eq!(reconcile::run(ctx, false).await.unwrap(), reconcile::Run::default());
        app.clock.advance(reconcile::GRACE_MS + 1_000);
        assert_eq!(reconcile::run(ctx, false).await.unwrap(), reconcile::Run { checked: 2, paid: 1 });
        assert_eq!(state(&app, paid_id).await, paid());
        assert_eq!(state(&app, waiting_id).await, pending());
        assert_eq!(fake.requests().iter().filter(|r| *r == "api.php?act=order").count(), 2);
        // Not again at once; once a quarter of its age (at least the grace) has passed, only what
        // is still pending is asked again.
        assert_eq!(reconcile::run(ctx, false).await.unwrap(), reconcile::Run::default());
        app.clock.advance(reconcile::GRACE_MS);
        assert_eq!(reconcile::run(ctx, false).await.unwrap(), reconcile::Run { checked: 1, paid: 0 });
        assert_eq!(reconcile::run(ctx, false).await.unwrap(), reconcile::Run::default());
        let page = owner.get(app.url("/admin/payments")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("已支付（本次补记）: 1") && page.contains("尚未支付: 2"), "{page}");
        assert!(page.contains(&format!("/admin/orders/{paid_id}")), "{page}");
        // The owner can run it now.
        let csrf = app.csrf(&owner, "/admin/payments").await;
        let r = owner.post(app.url("/admin/payments/reconcile")).form(&[("_csrf", csrf.as_str())]).send().await.unwrap();
        assert_eq!(location(&r), "/admin/payments?notice=payments.reconciled");
        let page = owner.get(app.url("/admin/payments")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("尚未支付: 3"), "{page}");
        // Past the lookback, no more.
        app.clock.advance(reconcile::LOOKBACK_MS);
        assert_eq!(reconcile::run(ctx, false).await.unwrap(), reconcile::Run::default());
    }

    /// Admin: the owner adds the gateway through the form; the key is write-only, sealed in the
    /// database (SEC-1) and kept when the form is saved again without it; bad settings are refused
    /// with the reason; a disabled gateway is no longer offered but still verifies notifications
    /// for payments already started.
    async fn the_owner_configures_epay_in_admin(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let owner = app.setup_owner("owner@example.com", "correct horse battery staple").await;
        let fake = FakeEpay::start(PID, KEY).await;
        let csrf = app.csrf(&owner, "/admin/payments").await;
        let page = owner.get(app.url("/admin/payments")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("易支付兼容聚合支付") && page.contains("name=\"s.key\""), "{page}");
        let post = |fields: Vec<(&'static str, String)>| {
            let owner = owner.clone();
            let url = app.url("/admin/payments");
            let csrf = csrf.clone();
            async move {
                let mut f = fields;
                f.push(("_csrf", csrf));
                owner.post(url).form(&f).send().await.unwrap()
            }
        };
        let full = |key: &str, base: &str, pid: &str| -> Vec<(&'static str, String)> {
            vec![("id", "epay".into()), ("kind", "epay".into()), ("name", "支付宝".into()), ("enabled", "1".into()),
                 ("f.base_url", base.into()), ("f.pid", pid.into()), ("f.type", "alipay".into()), ("f.mode", "api".into()), ("s.key", key.into())]
        };
        for (fields, message) in [
            (full("", &fake.base, PID), "请填写所有必填项"),
            (full(KEY, "ftp://pay.example.com/", PID), "接口地址须为"),
            (full(KEY, &fake.base, "abc"), "商户 ID（pid）应为数字"),
            ([full(KEY, &fake.base, PID), vec![("f.type", "bitcoin".into())]].concat(), "请从列出的选项中选择"),
            ([full(KEY, &fake.base, PID), vec![("id", "manual".into())]].concat(), "ID 须为"),
        ] {
            let r = post(fields).await;
            assert_eq!(r.status(), 422);
            assert!(r.text().await.unwrap().contains(message), "{message}");
        }
        let r = post(full(KEY, &fake.base, PID)).await;
        assert_eq!(location(&r), "/admin/payments?notice=payments.saved");
        let page = owner.get(app.url("/admin/payments")).send().await.unwrap().text().await.unwrap();
        assert!(!page.contains(KEY), "the key is never shown again");
        assert!(page.contains("&#x2f;payments&#x2f;epay&#x2f;notify"), "the notification URL: {page}");
        let stored: String = sqlx::query_scalar("SELECT value FROM settings WHERE key = 'payment_gateways'")
            .fetch_one(app.state.ctx.db.read()).await.unwrap();
        assert!(!stored.contains(KEY) && stored.contains(&fake.base), "sealed at rest: {stored}");
        // Saved again without the key (renamed): the stored key stays and still signs.
        let mut again = full("", &fake.base, PID);
        again[2].1 = "Alipay".into();
        assert_eq!(location(&post(again).await), "/admin/payments?notice=payments.saved");
        let v = ebook(&app).await;
        let (id, _) = buy(&app, &app.client(), v, "epay").await;
        assert_eq!(fake.trades().len(), 1, "mapi.php accepted the signature with the kept key");
        // Switched off: not offered, an attempt to use it is refused; started payments still settle.
        let mut off = full("", &fake.base, PID);
        off.retain(|(k, _)| *k != "enabled");
        assert_eq!(location(&post(off).await), "/admin/payments?notice=payments.saved");
        let c = app.client();
        c.post(app.url("/cart/add")).form(&[("variant_id", v.to_string()), ("quantity", "1".into())]).send().await.unwrap();
        let form = c.get(app.url("/checkout")).send().await.unwrap().text().await.unwrap();
        assert!(!form.contains("value=\"epay\""), "{form}");
        let token = field_of(&form, "token");
        let r = c.post(app.url("/checkout")).form(&[("token", token.as_str()), ("email", "b@example.com"), ("gateway", "epay")]).send().await.unwrap();
        assert_eq!(r.status(), 422);
        fake.pay(&fake.trade(&id.to_string()).unwrap().trade_no);
        assert_eq!(fake.wait_answers(&id.to_string(), 1).await, vec![(200, "success".to_string())]);
        assert_eq!(state(&app, id).await, paid());
        // Removed.
        let r = owner.post(app.url("/admin/payments/epay/delete")).form(&[("_csrf", csrf.as_str())]).send().await.unwrap();
        assert_eq!(location(&r), "/admin/payments?notice=payments.deleted");
        assert!(app.state.ctx.gateways.get("epay").is_none());
    }
}
