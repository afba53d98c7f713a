//! Owner notifications end to end: channels added and tested from admin against the push fakes,
//! events routed to channels through the outbox (new customer, a job on the dead list), quiet
//! hours, a service's rate limit honoured, secrets sealed at rest. On both engines.

use yiren_core::Clock as _;
use yiren_testkit::fake_push::{self, FakePush};
use yiren_testkit::{both_engines, location, Receiver, TestApp};

const OWNER: &str = "owner@example.com";
const PW: &str = "a long owner passphrase";

async fn add_channel(
    app: &TestApp,
    owner: &reqwest::Client,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let csrf = app.csrf(owner, "/admin/notifications").await;
    let mut f = vec![("_csrf", csrf.as_str())];
    f.extend_from_slice(form);
    owner
        .post(app.url("/admin/notifications/channels"))
        .form(&f)
        .send()
        .await
        .unwrap()
}

async fn channel_ids(app: &TestApp) -> Vec<String> {
    yiren_core::notify::load(&app.state.ctx)
        .await
        .unwrap()
        .channels
        .into_iter()
        .map(|c| c.id)
        .collect()
}

async fn route(app: &TestApp, owner: &reqwest::Client, routes: &[String], quiet: (u32, u32)) {
    let csrf = app.csrf(owner, "/admin/notifications").await;
    let (qs, qe) = (quiet.0.to_string(), quiet.1.to_string());
    let mut f: Vec<(&str, &str)> = vec![
        ("_csrf", csrf.as_str()),
        ("quiet_start", &qs),
        ("quiet_end", &qe),
    ];
    for r in routes {
        f.push(("route", r));
    }
    let r = owner
        .post(app.url("/admin/notifications"))
        .form(&f)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
}

async fn wait_received(fake: &FakePush, n: usize) -> Vec<(String, serde_json::Value)> {
    for _ in 0..300 {
        if fake.received().len() >= n {
            return fake.received();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("got {} pushes, expected {n}", fake.received().len());
}

both_engines! {
    async fn channels_are_added_and_tested_from_admin(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let fake = FakePush::start().await;
        let owner = app.setup_owner(OWNER, PW).await;
        let r = add_channel(&app, &owner, &[("kind", "bark"), ("name", "我的 iPhone"), ("key", fake_push::BARK_KEY), ("base", &fake.base)]).await;
        assert_eq!(r.status(), 303);
        let r = add_channel(&app, &owner, &[("kind", "pushdeer"), ("name", "Wrong"), ("key", "PDUwrong"), ("base", &fake.base)]).await;
        assert_eq!(r.status(), 303);
        // Incomplete: a Telegram channel without chat_id.
        let r = add_channel(&app, &owner, &[("kind", "telegram"), ("name", "T"), ("key", fake_push::TELEGRAM_TOKEN)]).await;
        assert_eq!(r.status(), 422);
        let stored = yiren_store::settings::get(app.state.ctx.db.read(), "owner_notify").await.unwrap().unwrap();
        assert!(stored.contains("我的 iPhone") && !stored.contains(fake_push::BARK_KEY), "keys are sealed at rest");
        let ids = channel_ids(&app).await;
        let csrf = app.csrf(&owner, "/admin/notifications").await;
        let page = owner.post(app.url(&format!("/admin/notifications/channels/{}/test", ids[0]))).form(&[("_csrf", csrf.as_str())]).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("class=\"notice\"") && page.contains("我的 iPhone"), "test sent");
        assert_eq!(fake.received()[0].0, "bark");
        let page = owner.post(app.url(&format!("/admin/notifications/channels/{}/test", ids[1]))).form(&[("_csrf", csrf.as_str())]).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("class=\"error\"") && page.contains("80501"), "the service's refusal is shown");
        // Delete.
        let r = owner.post(app.url(&format!("/admin/notifications/channels/{}/delete", ids[1]))).form(&[("_csrf", csrf.as_str())]).send().await.unwrap();
        assert_eq!(location(&r), "/admin/notifications?notice=settings.saved");
        assert_eq!(channel_ids(&app).await.len(), 1);
    }

    async fn new_customers_and_dead_jobs_reach_the_owner_once_outside_quiet_hours(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let fake = FakePush::start().await;
        let owner = app.setup_owner(OWNER, PW).await;
        add_channel(&app, &owner, &[("kind", "wecom"), ("name", "群"), ("key", fake_push::WECOM_KEY), ("base", &fake.base)]).await;
        let id = channel_ids(&app).await.remove(0);
        route(&app, &owner, &[format!("new_customer:{id}"), format!("job_dead:{id}")], (0, 0)).await;
        // A new customer: one push, with the address.
        app.customer("first@example.com").await;
        let got = wait_received(&fake, 1).await;
        assert!(got[0].1["markdown"]["content"].as_str().unwrap().contains("first@example.com"));
        // The same customer signing in again is not new: nothing more.
        app.customer("first@example.com").await;
        // A job that dies is announced (and a dead notification would not be).
        let rx = Receiver::start().await;
        let ctx = &app.state.ctx;
        let mut tx = ctx.db.begin().await.unwrap();
        yiren_core::job::enqueue(ctx, &mut tx, "diagnostic.ping", &serde_json::json!({"url": rx.route("broken"), "key": "k"}), yiren_core::job::EnqueueOptions { max_attempts: 1, ..Default::default() }).await.unwrap();
        tx.commit().await.unwrap();
        let got = wait_received(&fake, 2).await;
        assert!(got[1].1["markdown"]["content"].as_str().unwrap().contains("diagnostic.ping"));
        // The service's rate limit (WeCom 45009): retried after its minute, delivered once.
        fake.rate_limit_next("wecom", 1);
        app.customer("second@example.com").await;
        // Wait for the refused attempt itself: advancing the clock before it happens would only
        // push its retry a minute past the new time.
        for _ in 0..500 {
            if fake.rate_limits_left("wecom") == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(fake.rate_limits_left("wecom"), 0, "the push was attempted");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(fake.received().len(), 2, "held back by the rate limit");
        app.clock.advance(61_000);
        let got = wait_received(&fake, 3).await;
        assert!(got[2].1["markdown"]["content"].as_str().unwrap().contains("second@example.com"));
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(fake.received().len(), 3);
        // Quiet hours (site time zone): the hour we are in is quiet, so the push waits for its end.
        let tz: chrono_tz::Tz = "Asia/Shanghai".parse().unwrap();
        use chrono::{TimeZone, Timelike};
        let h = tz.timestamp_millis_opt(app.clock.now_ms()).unwrap().hour();
        route(&app, &owner, &[format!("new_customer:{id}")], (h, (h + 1) % 24)).await;
        app.customer("night@example.com").await;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(fake.received().len(), 3, "quiet");
        app.clock.advance(3_600_000);
        let got = wait_received(&fake, 4).await;
        assert!(got[3].1["markdown"]["content"].as_str().unwrap().contains("night@example.com"));
    }

    /// A new order and its payment reach the owner once each, whatever repeats.
    async fn new_orders_and_payments_reach_the_owner_once(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let fake = FakePush::start().await;
        let owner = app.setup_owner(OWNER, PW).await;
        add_channel(&app, &owner, &[("kind", "wecom"), ("name", "群"), ("key", fake_push::WECOM_KEY), ("base", &fake.base)]).await;
        let id = channel_ids(&app).await.remove(0);
        route(&app, &owner, &[format!("new_order:{id}"), format!("payment_received:{id}")], (0, 0)).await;
        let ctx = &app.state.ctx;
        let input = yiren_core::catalog::ProductInput {
            title: "课程".into(), handle: "course".into(), kind: yiren_core::catalog::Kind::Digital, status: "active".into(),
            variants: vec![yiren_core::catalog::VariantInput { prices: vec![yiren_core::catalog::Price { currency: "CNY".into(), amount: 19_900, compare_at: None }], ..Default::default() }],
            ..Default::default()
        };
        let v = yiren_core::catalog::create(ctx, &input, "test").await.unwrap().variants[0].row.id;
        let s = yiren_core::checkout::Submit {
            token: "owner-news".into(), email: "fan@example.com".into(), gateway: "manual".into(),
            lines: vec![yiren_core::cart::Line { variant_id: v, quantity: 1 }],
            ..Default::default()
        };
        let o = yiren_core::checkout::place(ctx, &s).await.unwrap();
        yiren_core::checkout::place(ctx, &s).await.unwrap();
        // The same event for the same cause again: no second message, and no job without one.
        let count = |sql: &'static str| async move {
            sqlx::query_scalar::<_, i64>(sql).fetch_one(ctx.db.read()).await.unwrap()
        };
        let jobs = "SELECT COUNT(*) FROM jobs WHERE kind = 'message.send'";
        let owner_messages = "SELECT COUNT(*) FROM messages WHERE cause LIKE 'owner:new_order:%'";
        let before = (count(jobs).await, count(owner_messages).await);
        assert_eq!(before.1, 1);
        let news = yiren_core::notify::OwnerEvent::NewOrder {
            order_id: o.id, confirm: true, number: o.number, total: "¥199.00".into(), email: o.email.clone(),
        };
        let mut tx = ctx.db.begin().await.unwrap();
        yiren_core::notify::emit(ctx, &mut tx, &news, &o.id.to_string()).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!((count(jobs).await, count(owner_messages).await), before);
        let got = wait_received(&fake, 1).await;
        let text = got[0].1["markdown"]["content"].as_str().unwrap().to_string();
        assert!(text.contains("#1001") && text.contains("¥199.00") && text.contains("fan@example.com"), "{text}");
        // The push carries the signed link that confirms the manual payment: it opens a page that
        // asks first (a chat app's link preview confirms nothing); a wrong signature is a 404.
        let at = text.find("/confirm-payment/").unwrap_or_else(|| panic!("no confirm link: {text}"));
        let path: String = text[at..].chars().take_while(|c| !c.is_whitespace() && *c != ')' && *c != ']').collect();
        assert!(text[..at].ends_with(&app.base), "rooted at {}: {text}", app.base);
        assert_eq!(path, yiren_core::order::confirm_link(ctx, o.id));
        let c = app.client();
        let page = c.get(app.url(&path)).send().await.unwrap();
        assert_eq!(page.headers()["cache-control"], "no-store");
        let page = page.text().await.unwrap();
        assert!(page.contains("fan@example.com 的 ¥199.00 到账了吗") && page.contains("id=\"confirm-payment\""), "{page}");
        assert_eq!(yiren_store::order::get(ctx.db.read(), o.id).await.unwrap().payment, "pending", "opening the link confirms nothing");
        let sig = path.split("sig=").nth(1).unwrap().to_string();
        let forged = format!("{}{}", &sig[..63], if sig.ends_with('0') { '1' } else { '0' });
        assert_eq!(c.get(app.url(&format!("/confirm-payment/{}?sig={forged}", o.id))).send().await.unwrap().status(), 404);
        assert_eq!(c.post(app.url(&format!("/confirm-payment/{}", o.id))).form(&[("sig", forged.as_str())]).send().await.unwrap().status(), 404);
        let cross = c.post(app.url(&format!("/confirm-payment/{}", o.id))).header("origin", "https://evil.example").form(&[("sig", sig.as_str())]).send().await.unwrap();
        assert_eq!(cross.status(), 403);
        for _ in 0..2 {
            let done = c.post(app.url(&format!("/confirm-payment/{}", o.id))).form(&[("sig", sig.as_str())]).send().await.unwrap().text().await.unwrap();
            assert!(done.contains("已确认收款"), "{done}");
        }
        let row = yiren_store::order::get(ctx.db.read(), o.id).await.unwrap();
        assert_eq!((row.payment.as_str(), row.captured), ("paid", 19_900));
        let timeline = yiren_core::order::get(ctx, o.id).await.unwrap().events;
        assert!(timeline.iter().any(|e| e.kind == "paid" && e.actor == "owner:push-link"));
        let got = wait_received(&fake, 2).await;
        assert!(got[1].1["markdown"]["content"].as_str().unwrap().contains("已收到 ¥199.00"), "{:?}", got[1]);
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(fake.received().len(), 2, "once per order and kind");
    }
}
