//! The end-to-end suite every payment gateway passes, on both engines, against its local fake
//! (see [`crate::fake_gateway::GatewayFake`]): the customer checks out and pays, the fake
//! notifies on its retry schedule until acknowledged; then RELIABILITY PAY-5 (the answer lost
//! after the commit), PAY-2 (every forged class, each 100 times) with PAY-6 (a correctly signed
//! wrong amount), PAY-3 (late and out-of-order events), PAY-4 (the customer's return racing the
//! notification, 200 orders), PAY-7 (reconciliation of a notification that never came), and
//! SEC-1 (configured through the admin form; secrets write-only and sealed at rest).
//! [`gateway_suite!`](crate::gateway_suite) writes the tests for one fake.

use std::sync::Arc;

use futures::stream::{self, StreamExt};
use yiren_core::catalog::Kind;
use yiren_core::payment::{reconcile, settings::GatewayConfig};
use yiren_core::{cart, checkout, order};

use crate::fake_gateway::{GatewayFake, Notice};
use crate::{field_of, location, product, text_of, Engine, TestApp};

/// Write the suite's tests for a fake: `gateway_suite!(FakeEpay);`.
#[macro_export]
macro_rules! gateway_suite {
    ($fake:ty) => {
        $crate::both_engines! {
            async fn pays_end_to_end(engine: Engine) { $crate::gateway_suite::pays_end_to_end::<$fake>(engine).await }
            async fn notifies_again_until_acknowledged(engine: Engine) { $crate::gateway_suite::notifies_again_until_acknowledged::<$fake>(engine).await }
            async fn forged_or_mismatched_notifications_never_pay(engine: Engine) { $crate::gateway_suite::forged_or_mismatched_notifications_never_pay::<$fake>(engine).await }
            async fn late_and_out_of_order_events(engine: Engine) { $crate::gateway_suite::late_and_out_of_order_events::<$fake>(engine).await }
            async fn the_return_and_the_notification_racing_pay_once(engine: Engine) { $crate::gateway_suite::the_return_and_the_notification_racing_pay_once::<$fake>(engine).await }
            async fn reconciliation_records_a_lost_notification(engine: Engine) { $crate::gateway_suite::reconciliation_records_a_lost_notification::<$fake>(engine).await }
            async fn configured_in_admin_with_sealed_secrets(engine: Engine) { $crate::gateway_suite::configured_in_admin_with_sealed_secrets::<$fake>(engine).await }
        }
    };
}

/// The ebook every suite shop sells: ¥99.00, digital (delivered on payment).
pub async fn ebook(app: &TestApp) -> i64 {
    product(
        &app.state.ctx,
        "ebook",
        Kind::Digital,
        &[("EB", 9900, 10_000)],
    )
    .await[0]
}

/// The gateway as the owner would save it (core's own path; the admin form has its own tests).
pub async fn configure<F: GatewayFake>(app: &TestApp, fake: &F) {
    fake.set_endpoint(&app.url(&format!("/payments/{}/notify", fake.kind())));
    let (fields, secrets) = fake.settings();
    let c = GatewayConfig {
        id: fake.kind().into(),
        kind: fake.kind().into(),
        name: "支付宝".into(),
        enabled: true,
        fields,
        secrets,
    };
    yiren_core::payment::settings::put(&app.state.ctx, c)
        .await
        .unwrap();
}

/// A shop selling the ebook with the gateway configured against a new fake.
pub async fn shop<F: GatewayFake>(engine: Engine) -> (TestApp, F, i64) {
    let app = TestApp::spawn(engine).await;
    let fake = F::start().await;
    configure(&app, &fake).await;
    let v = ebook(&app).await;
    (app, fake, v)
}

/// A guest buys variant `v` through the checkout form paying with `gateway`; (order id, where
/// the checkout sent them).
pub async fn buy(app: &TestApp, c: &reqwest::Client, v: i64, gateway: &str) -> (i64, String) {
    c.post(app.url("/cart/add"))
        .form(&[("variant_id", v.to_string()), ("quantity", "1".into())])
        .send()
        .await
        .unwrap();
    let page = text_of(c, app.url("/checkout")).await;
    assert!(
        page.contains(&format!("name=\"gateway\" value=\"{gateway}\"")),
        "{gateway} offered at checkout: {page}"
    );
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
pub async fn state(app: &TestApp, id: i64) -> (String, usize, usize, usize) {
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

pub fn paid() -> (String, usize, usize, usize) {
    ("paid".into(), 1, 1, 1)
}

pub fn pending() -> (String, usize, usize, usize) {
    ("pending".into(), 0, 0, 0)
}

/// Deliver a notification to `/payments/{gateway}/notify`.
pub async fn deliver(app: &TestApp, gateway: &str, n: &Notice) -> (u16, String) {
    // One client for every delivery (making one per request costs more than the request).
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let c = CLIENT.get_or_init(|| app.client());
    let r = n
        .request(c, &app.url(&format!("/payments/{gateway}/notify")))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn send<F: GatewayFake>(app: &TestApp, fake: &F, n: &Notice) -> (u16, String) {
    deliver(app, fake.kind(), n).await
}

fn answer((status, body): (u16, &str)) -> (u16, String) {
    (status, body.to_string())
}

/// The whole path: the payment created once however often the order page is seen (a QR code
/// on our page, or the gateway's own page); the fake pays, notifies, reads its
/// acknowledgement; the order is paid and delivered; the customer's return changes nothing more.
pub async fn pays_end_to_end<F: GatewayFake>(engine: Engine) {
    let (app, fake, v) = shop::<F>(engine).await;
    let kind = fake.kind();
    let c = app.client();
    let (id, to) = buy(&app, &c, v, kind).await;
    let order_ref = id.to_string();
    if to.starts_with('/') {
        assert!(to.starts_with(&format!("/orders/{id}?key=")), "{to}");
        for _ in 0..3 {
            let page = text_of(&c, app.url(&to)).await;
            assert!(
                page.contains("id=\"pay-qr\"") && page.contains("<svg") && page.contains("扫码"),
                "a QR code on the order page: {page}"
            );
            assert!(page.contains("/assets/order-status.js"));
        }
        let status: serde_json::Value = c
            .get(app.url(&to.replace('?', "/status?")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(status["payment"], "pending");
    } else {
        assert!(
            to.starts_with(&fake.desk().base),
            "sent to the gateway: {to}"
        );
        let page = c.get(&to).send().await.unwrap();
        assert_eq!(page.status(), 200, "the gateway took the request");
        assert!(page.text().await.unwrap().contains(fake.money_sent()));
    }
    assert_eq!(
        fake.desk().count(fake.create_endpoint()),
        1,
        "the payment is created once: {:?}",
        fake.desk().requests()
    );
    let t = fake
        .desk()
        .trade(&order_ref)
        .expect("a payment at the gateway");
    assert_eq!(t.money, fake.money_sent());
    if !t.notify_url.is_empty() {
        assert_eq!(t.notify_url, app.url(&format!("/payments/{kind}/notify")));
    }

    let back = fake.pay(&order_ref);
    assert_eq!(
        fake.desk().wait_answers(&order_ref, 1).await,
        vec![answer(fake.ack())]
    );
    assert_eq!(state(&app, id).await, paid());
    let o = order::get(&app.state.ctx, id).await.unwrap();
    assert_eq!(
        (o.transactions[0].gateway.as_str(), o.transactions[0].amount),
        (kind, 9900)
    );
    // The customer comes back (or, where the gateway sends nobody back, looks at the page that
    // showed the QR code): shown as paid, recorded once.
    let back = returned_to(&app, id, back);
    assert!(
        back.starts_with(&app.url(&format!("/orders/{id}?key="))),
        "{back}"
    );
    let page = text_of(&c, &back).await;
    assert!(
        page.contains("已付款") && !page.contains("id=\"pay-qr\""),
        "{page}"
    );
    assert_eq!(state(&app, id).await, paid());
    assert!(order::audit(&app.state.ctx).await.unwrap().is_empty());
}

/// PAY-5: the first answer is lost after the commit; the gateway notifies again, the retry is
/// acknowledged and changes nothing.
pub async fn notifies_again_until_acknowledged<F: GatewayFake>(engine: Engine) {
    let scenario = fail::FailScenario::setup();
    let (app, fake, v) = shop::<F>(engine).await;
    let (id, _) = buy(&app, &app.client(), v, fake.kind()).await;
    fail::cfg("payment.notify.after_commit", "1*return").unwrap();
    fake.pay(&id.to_string());
    let answers = fake.desk().wait_answers(&id.to_string(), 2).await;
    assert_eq!(
        (answers[0].0, &answers[1]),
        (503, &answer(fake.ack())),
        "{answers:?}"
    );
    assert_eq!(state(&app, id).await, paid());
    scenario.teardown();
}

/// PAY-2: forged notifications are refused and change nothing — each class 100 times, 16 at a
/// time; PAY-6: a correctly signed one with the wrong amount is acknowledged (retrying cannot
/// fix it) and parked, never paid.
pub async fn forged_or_mismatched_notifications_never_pay<F: GatewayFake>(engine: Engine) {
    let (app, fake, v) = shop::<F>(engine).await;
    let (id, _) = buy(&app, &app.client(), v, fake.kind()).await;
    let order_ref = id.to_string();
    let forged = fake.forgeries(&order_ref);
    let app = Arc::new(app);
    let deliveries: Vec<(&str, Notice)> = forged
        .iter()
        .flat_map(|(w, n)| std::iter::repeat_n((*w, n.clone()), 100))
        .collect();
    let kind = fake.kind();
    let answers: Vec<(&str, (u16, String))> = stream::iter(deliveries)
        .map(|(w, n)| {
            let app = app.clone();
            async move { (w, deliver(&app, kind, &n).await) }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert_eq!(answers.len(), forged.len() * 100);
    for (what, got) in &answers {
        assert_eq!(*got, answer(fake.nack()), "{what}");
    }
    assert_eq!(state(&app, id).await, pending(), "nothing changed");
    // Signed, but not paid yet: acknowledged, nothing recorded.
    if let Some(np) = fake.not_paid(&order_ref) {
        assert_eq!(send(&app, &fake, &np).await, answer(fake.ack()));
    }
    // Signed, the wrong amount (a misbehaving gateway): acknowledged and parked.
    fake.desk().set_money_sent(Some(fake.wrong_money()));
    fake.pay(&order_ref);
    assert_eq!(
        fake.desk().wait_answers(&order_ref, 1).await,
        vec![answer(fake.ack())]
    );
    let o = order::get(&app.state.ctx, id).await.unwrap();
    assert_eq!(
        (o.row.payment.as_str(), o.transactions.len()),
        ("pending", 0)
    );
    assert_eq!(
        o.events
            .iter()
            .filter(|e| e.kind == "payment_refused")
            .count(),
        1
    );
    // The right one, signed as sent after the fact, pays it.
    fake.desk().set_money_sent(None);
    assert_eq!(
        send(&app, &fake, &fake.notice(&order_ref, &[], None)).await,
        answer(fake.ack())
    );
    assert_eq!(state(&app, id).await, paid());
}

/// PAY-3: a payment for an order cancelled meanwhile is recorded for a refund, not fulfilled; a
/// duplicate after the payment, and a "not paid" event arriving after it, change nothing.
pub async fn late_and_out_of_order_events<F: GatewayFake>(engine: Engine) {
    let (app, fake, v) = shop::<F>(engine).await;
    let (id, _) = buy(&app, &app.client(), v, fake.kind()).await;
    order::cancel(&app.state.ctx, id, "owner", true)
        .await
        .unwrap();
    fake.pay(&id.to_string());
    assert_eq!(
        fake.desk().wait_answers(&id.to_string(), 1).await,
        vec![answer(fake.ack())]
    );
    let o = order::get(&app.state.ctx, id).await.unwrap().row;
    assert_eq!(
        (o.payment.as_str(), o.refund_review, o.fulfilment.as_str()),
        ("paid", 1, "unfulfilled")
    );
    assert!(
        yiren_core::delivery::entitlements(&app.state.ctx, id)
            .await
            .unwrap()
            .is_empty(),
        "a cancelled order is not delivered"
    );

    let (id2, _) = buy(&app, &app.client(), v, fake.kind()).await;
    let r2 = id2.to_string();
    fake.pay(&r2);
    fake.desk().wait_answers(&r2, 1).await;
    let mut late = vec![fake.notice(&r2, &[], None)];
    late.extend(fake.not_paid(&r2));
    for n in late {
        assert_eq!(send(&app, &fake, &n).await, answer(fake.ack()));
    }
    assert_eq!(state(&app, id2).await, paid());
    assert!(order::audit(&app.state.ctx).await.unwrap().is_empty());
}

/// PAY-4: 200 orders; for each, the customer's return and the notification arrive at the same
/// moment: 200 payments, none recorded twice; a forged signed return changes nothing.
pub async fn the_return_and_the_notification_racing_pay_once<F: GatewayFake>(engine: Engine) {
    let (app, fake, v) = shop::<F>(engine).await;
    let app = Arc::new(app);
    fake.desk().set_notify(false);
    let c = app.client();
    let (first, page) = buy(&app, &c, v, fake.kind()).await;
    let ctx = &app.state.ctx;
    if fake.signed_return() {
        // A return signed with another key is not believed.
        let page = if page.starts_with('/') {
            page.clone()
        } else {
            order_page(&app, first)
        };
        let forged = format!(
            "{page}&{}",
            fake.notice(&first.to_string(), &[], Some("wrong"))
                .encoded()
        );
        assert!(text_of(&c, app.url(&forged)).await.contains("等待付款"));
        assert_eq!(state(&app, first).await, pending());
    }
    // 199 more, placed and started through the services (the first went through the pages).
    let mut orders = vec![first];
    for i in 0..199 {
        let s = checkout::Submit {
            token: format!("race-{i}"),
            email: format!("r{i}@example.com"),
            lines: vec![cart::Line {
                variant_id: v,
                quantity: 1,
            }],
            gateway: fake.kind().into(),
            ..Default::default()
        };
        let o = checkout::place(ctx, &s).await.unwrap();
        yiren_core::payment::start(ctx, &o, &app.base, "127.0.0.1")
            .await
            .unwrap();
        orders.push(o.id);
    }
    if fake.desk().trade(&first.to_string()).is_none() {
        // Created when the customer reaches the gateway's page.
        assert_eq!(c.get(&page).send().await.unwrap().status(), 200);
    }
    // Paid at the gateway (its notifications held back); then return and notification together.
    let races: Vec<(i64, String, Notice)> = orders
        .iter()
        .map(|id| {
            let back = returned_to(&app, *id, fake.pay(&id.to_string()));
            (*id, back, fake.notice(&id.to_string(), &[], None))
        })
        .collect();
    let shared = app.client();
    let ack = answer(fake.ack());
    stream::iter(races)
        .map(|(id, back, notice)| {
            let (app, client, fake, ack) = (app.clone(), shared.clone(), fake.clone(), ack.clone());
            async move {
                let (page, got) =
                    tokio::join!(client.get(&back).send(), send(&app, &fake, &notice));
                assert_eq!(
                    (page.unwrap().status().as_u16(), got),
                    (200, ack),
                    "order {id}"
                );
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

/// Where the customer comes back to after paying: the gateway's return, or the order page
/// itself when the gateway sends nobody back (a QR code scanned with a phone).
fn returned_to(app: &TestApp, id: i64, back: String) -> String {
    if back.is_empty() {
        app.url(&order_page(app, id))
    } else {
        back
    }
}

/// The order page of an order, with its key.
fn order_page(app: &TestApp, id: i64) -> String {
    format!("/orders/{id}?key={}", order::access_key(&app.state.ctx, id))
}

/// PAY-7: the notification never comes; the scheduled check asks the gateway after the grace
/// period and records the payment through the same path; the owner's report shows what each
/// check found.
pub async fn reconciliation_records_a_lost_notification<F: GatewayFake>(engine: Engine) {
    // The built-in five-minute schedule would run it too as the clock moves: moved to once a
    // year, so the runs counted here are the test's own.
    let app = TestApp::spawn_with(engine, |c| {
        c.jobs.schedules.push(yiren::config::ScheduleConfig {
            name: "payments".into(),
            cron: "0 0 1 1 *".into(),
            kind: reconcile::KIND.into(),
            payload: None,
        })
    })
    .await;
    let owner = app
        .setup_owner("owner@example.com", "correct horse battery staple")
        .await;
    let fake = F::start().await;
    configure(&app, &fake).await;
    fake.desk().set_notify(false);
    let v = ebook(&app).await;
    let (paid_id, to) = buy(&app, &app.client(), v, fake.kind()).await;
    if !to.starts_with('/') {
        app.client().get(&to).send().await.unwrap();
    }
    let (waiting_id, to) = buy(&app, &app.client(), v, fake.kind()).await;
    if !to.starts_with('/') {
        app.client().get(&to).send().await.unwrap();
    }
    fake.pay(&paid_id.to_string());
    let ctx = &app.state.ctx;
    if !fake.queries() {
        // A gateway that cannot be asked: each check is recorded as "unknown" for the owner.
        app.clock.advance(reconcile::GRACE_MS + 1_000);
        assert_eq!(
            reconcile::run(ctx, false).await.unwrap(),
            reconcile::Run {
                checked: 2,
                paid: 0
            }
        );
        assert_eq!(
            (state(&app, paid_id).await, state(&app, waiting_id).await),
            (pending(), pending())
        );
        let page = text_of(&owner, app.url("/admin/payments")).await;
        assert!(page.contains("收款方不知道这笔订单: 2"), "{page}");
        return;
    }
    // Within the grace period nothing is asked.
    assert_eq!(
        reconcile::run(ctx, false).await.unwrap(),
        reconcile::Run::default()
    );
    app.clock.advance(reconcile::GRACE_MS + 1_000);
    assert_eq!(
        reconcile::run(ctx, false).await.unwrap(),
        reconcile::Run {
            checked: 2,
            paid: 1
        }
    );
    assert_eq!(state(&app, paid_id).await, paid());
    assert_eq!(state(&app, waiting_id).await, pending());
    assert_eq!(
        fake.desk().count(fake.query_endpoint()),
        2,
        "{:?}",
        fake.desk().requests()
    );
    // Not again at once; once a quarter of its age (at least the grace) has passed, only what is
    // still pending is asked again.
    assert_eq!(
        reconcile::run(ctx, false).await.unwrap(),
        reconcile::Run::default()
    );
    app.clock.advance(reconcile::GRACE_MS);
    assert_eq!(
        reconcile::run(ctx, false).await.unwrap(),
        reconcile::Run {
            checked: 1,
            paid: 0
        }
    );
    assert_eq!(
        reconcile::run(ctx, false).await.unwrap(),
        reconcile::Run::default()
    );
    let page = text_of(&owner, app.url("/admin/payments")).await;
    assert!(
        page.contains("已支付（本次补记）: 1") && page.contains("尚未支付: 2"),
        "{page}"
    );
    assert!(page.contains(&format!("/admin/orders/{paid_id}")), "{page}");
    // The owner can run it now.
    let csrf = app.csrf(&owner, "/admin/payments").await;
    let r = owner
        .post(app.url("/admin/payments/reconcile"))
        .form(&[("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), "/admin/payments?notice=payments.reconciled");
    let page = text_of(&owner, app.url("/admin/payments")).await;
    assert!(page.contains("尚未支付: 3"), "{page}");
    // Past the lookback, no more.
    app.clock.advance(reconcile::LOOKBACK_MS);
    assert_eq!(
        reconcile::run(ctx, false).await.unwrap(),
        reconcile::Run::default()
    );
}

/// SEC-1: the owner configures the gateway through the admin form; without its secrets it is
/// refused; the secrets are never shown again and are sealed in the database; the gateway then
/// signs with them.
pub async fn configured_in_admin_with_sealed_secrets<F: GatewayFake>(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let owner = app
        .setup_owner("owner@example.com", "correct horse battery staple")
        .await;
    let fake = F::start().await;
    let kind = fake.kind();
    fake.set_endpoint(&app.url(&format!("/payments/{kind}/notify")));
    let csrf = app.csrf(&owner, "/admin/payments").await;
    let (fields, secrets) = fake.settings();
    let mut form: Vec<(String, String)> = vec![
        ("_csrf".into(), csrf),
        ("id".into(), kind.into()),
        ("kind".into(), kind.into()),
        ("name".into(), "微信支付".into()),
        ("enabled".into(), "1".into()),
    ];
    form.extend(fields.iter().map(|(k, v)| (format!("f.{k}"), v.clone())));
    let post = |form: Vec<(String, String)>| {
        let (owner, url) = (owner.clone(), app.url("/admin/payments"));
        async move { owner.post(url).form(&form).send().await.unwrap() }
    };
    let r = post(form.clone()).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("请填写所有必填项"));
    form.extend(secrets.iter().map(|(k, v)| (format!("s.{k}"), v.clone())));
    assert_eq!(
        location(&post(form).await),
        "/admin/payments?notice=payments.saved"
    );
    let page = text_of(&owner, app.url("/admin/payments")).await;
    let stored: String =
        sqlx::query_scalar("SELECT value FROM settings WHERE key = 'payment_gateways'")
            .fetch_one(app.state.ctx.db.read())
            .await
            .unwrap();
    for secret in secrets.values() {
        assert!(!page.contains(secret.as_str()), "never shown again");
        assert!(
            !stored.contains(secret.as_str()),
            "sealed at rest: {stored}"
        );
    }
    assert!(
        page.contains(&format!("&#x2f;payments&#x2f;{kind}&#x2f;notify")),
        "the notification URL: {page}"
    );
    let v = ebook(&app).await;
    let (id, to) = buy(&app, &app.client(), v, kind).await;
    if !to.starts_with('/') {
        app.client().get(&to).send().await.unwrap();
    }
    assert!(
        fake.desk().trade(&id.to_string()).is_some(),
        "the gateway accepted the signature"
    );
}

/// Refund `amount` of a paid order through its gateway as the owner would, and wait until the
/// gateway's answer is recorded (the job sends it, or this does, whichever comes first; once
/// either way). The refund's transaction.
pub async fn refund_through_gateway(
    app: &TestApp,
    id: i64,
    amount: i64,
) -> yiren_store::order::TransactionRow {
    let ctx = &app.state.ctx;
    let r = order::Refund {
        amount,
        key: format!("refund-{id}-{amount}"),
        restock: false,
        reason: "returned".into(),
        lines: vec![],
    };
    assert!(order::refund(ctx, id, &r, "owner").await.unwrap());
    let refund = || async {
        order::get(ctx, id)
            .await
            .unwrap()
            .transactions
            .into_iter()
            .find(|t| t.kind == "refund")
            .unwrap()
    };
    let t = refund().await;
    let _ = order::send_refund(ctx, t.id).await.unwrap();
    for _ in 0..200 {
        if refund().await.status == "done" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let t = refund().await;
    assert_eq!(t.status, "done", "{t:?}");
    assert_eq!(
        order::send_refund(ctx, t.id).await.unwrap(),
        order::Sent::Nothing,
        "sent once"
    );
    t
}
