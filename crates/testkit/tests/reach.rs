//! Reach end to end, on both engines, against the real SMTP sink and the push fakes: topics and
//! subscriptions; a broadcast written in admin (Markdown sanitised, per-language text, tag
//! audience), previewed, sent, received exactly by the subscribers with both parts and the RFC 8058
//! headers; one-click unsubscribe from a cookie-less client; the preferences page by signed token;
//! customers' own push keys; scheduling and cancelling; the delivery log (filter, resend); the
//! suppression list (import, never mailed); the per-channel sending rate.

use std::collections::BTreeMap;

use yiren_core::reach::{self, broadcast, topic, Channel};
use yiren_core::Clock as _;
use yiren_core::Locale;
use yiren_testkit::fake_push::{self, FakePush};
use yiren_testkit::smtp::{Received, SmtpSink};
use yiren_testkit::{both_engines, csrf_of, TestApp};

const OWNER: &str = "owner@example.com";
const PW: &str = "a long owner passphrase";

async fn app_with_sink(engine: yiren_testkit::Engine, sink: &SmtpSink) -> TestApp {
    TestApp::spawn_with_sink(engine, sink).await
}

async fn new_customer(app: &TestApp, email: &str, locale: Locale) -> i64 {
    yiren_core::customer::create_by_staff(&app.state.ctx, email, "", None, Some(locale))
        .await
        .unwrap()
        .id
}

async fn subscribe(app: &TestApp, customer: i64, topic_id: i64, ch: Channel) {
    topic::set(&app.state.ctx, customer, topic_id, ch, true, "test")
        .await
        .unwrap();
}

async fn post_form(
    app: &TestApp,
    c: &reqwest::Client,
    page: &str,
    action: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let csrf = app.csrf(c, page).await;
    let mut f = vec![("_csrf", csrf.as_str())];
    f.extend_from_slice(form);
    c.post(app.url(action))
        .header("accept-language", "en")
        .form(&f)
        .send()
        .await
        .unwrap()
}

async fn ask_code(app: &TestApp, email: &str) {
    let c = app.client();
    let r = post_form(
        app,
        &c,
        "/account/sign-in",
        "/account/code",
        &[("email", email)],
    )
    .await;
    assert_eq!(r.status(), 303);
}

fn parse(r: &Received) -> mail_parser::Message<'_> {
    mail_parser::MessageParser::default()
        .parse(&r.data)
        .expect("a valid message")
}

async fn log(app: &TestApp) -> Vec<yiren_store::reach::MessageRow> {
    yiren_store::reach::list_messages(app.state.ctx.db.read(), &Default::default(), i64::MAX, 1000)
        .await
        .unwrap()
}

async fn wait_log(
    app: &TestApp,
    what: &str,
    f: impl Fn(&[yiren_store::reach::MessageRow]) -> bool,
) {
    for _ in 0..400 {
        if f(&log(app).await) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}: {:?}", log(app).await);
}

fn texts(pairs: &[(&str, &str, &str)]) -> BTreeMap<String, broadcast::Text> {
    pairs
        .iter()
        .map(|(l, s, b)| {
            (
                l.to_string(),
                broadcast::Text {
                    subject: s.to_string(),
                    body: b.to_string(),
                },
            )
        })
        .collect()
}

both_engines! {
    async fn a_broadcast_reaches_exactly_the_subscribers_with_one_click_unsubscribe(engine: Engine) {
        let sink = SmtpSink::start();
        let app = app_with_sink(engine, &sink).await;
        let owner = app.setup_owner(OWNER, PW).await;
        // Topics from admin.
        let r = post_form(&app, &owner, "/admin/topics", "/admin/topics", &[("name", "新品"), ("description", "New arrivals")]).await;
        assert_eq!(r.status(), 303);
        let r = post_form(&app, &owner, "/admin/topics", "/admin/topics", &[("name", "新品"), ("description", "")]).await;
        assert_eq!(r.status(), 422, "a taken name is refused");
        assert!(r.text().await.unwrap().contains("已有同名主题"));
        let t = topic::list(&app.state.ctx).await.unwrap().remove(0);
        // Audience: zh and en subscribers, one tagged VIP, one unsubscribed, one never subscribed,
        // one subscribed but disabled.
        let zh = new_customer(&app, "zh@example.com", Locale::ZhCn).await;
        let en = new_customer(&app, "en@example.com", Locale::En).await;
        let vip = new_customer(&app, "vip@example.com", Locale::En).await;
        let off = new_customer(&app, "off@example.com", Locale::En).await;
        let _never = new_customer(&app, "never@example.com", Locale::En).await;
        let gone = new_customer(&app, "disabled@example.com", Locale::En).await;
        for c in [zh, en, vip, off, gone] {
            subscribe(&app, c, t.id, Channel::Email).await;
        }
        topic::set(&app.state.ctx, off, t.id, Channel::Email, false, "test").await.unwrap();
        yiren_core::customer::set_disabled(&app.state.ctx, gone, true).await.unwrap();
        let r = post_form(&app, &owner, &format!("/admin/customers/{vip}"), &format!("/admin/customers/{vip}/tags"), &[("tags", "VIP, 老客户")]).await;
        assert_eq!(r.status(), 303);
        assert_eq!(yiren_core::customer::tags(&app.state.ctx, vip).await.unwrap(), vec!["VIP", "老客户"]);

        // Write it in admin: a subject with a line break is refused (it would be a header injection).
        let topic_id = t.id.to_string();
        let bad = post_form(&app, &owner, "/admin/broadcasts/new", "/admin/broadcasts", &[("topic_id", &topic_id), ("channel", "email"), ("subject_en", "Hi\r\nBcc: victim@example.com"), ("body_en", "x")]).await;
        assert_eq!(bad.status(), 422);
        let body_zh = "# 新品上架\n\n![封面](https://cdn.example.com/a.png)\n\n<script>alert(1)</script>[看看](https://shop.example.com/p/1)";
        let r = post_form(&app, &owner, "/admin/broadcasts/new", "/admin/broadcasts", &[
            ("topic_id", &topic_id), ("channel", "email"),
            ("subject_zh-CN", "本周新品"), ("body_zh-CN", body_zh),
            ("subject_en", "New this week"), ("body_en", "# New in\n\nSee [it](https://shop.example.com/p/1)"),
        ]).await;
        assert_eq!(r.status(), 303);
        let id: i64 = yiren_testkit::location(&r).trim_start_matches("/admin/broadcasts/").split('?').next().unwrap().parse().unwrap();
        // Preview per channel and language.
        let page = owner.get(app.url(&format!("/admin/broadcasts/{id}?lang=zh-CN&channel=email"))).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("<h1>新品上架</h1>") && page.contains(r#"<img src="https://cdn.example.com/a.png" alt="封面">"#), "{page}");
        assert!(!page.contains("<script>alert"), "sanitised");
        let page = owner.get(app.url(&format!("/admin/broadcasts/{id}?lang=en&channel=push"))).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("See it (https:&#x2f;&#x2f;shop.example.com&#x2f;p&#x2f;1)"), "{page}");
        // Send now.
        let r = post_form(&app, &owner, &format!("/admin/broadcasts/{id}"), &format!("/admin/broadcasts/{id}/send"), &[("at", "")]).await;
        assert_eq!(r.status(), 303);
        let got = sink.wait_for(3).await;
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        let got_again = sink.received();
        assert_eq!(got_again.len(), 3, "zh, en and vip — not the unsubscribed, never-subscribed or disabled");
        let mut to: Vec<String> = got.iter().map(|r| r.to[0].clone()).collect();
        to.sort();
        assert_eq!(to, vec!["en@example.com", "vip@example.com", "zh@example.com"]);
        for r in &got {
            let m = parse(r);
            let zh_mail = r.to[0] == "zh@example.com";
            assert_eq!(m.subject(), Some(if zh_mail { "本周新品" } else { "New this week" }), "recipient's language");
            let html = m.body_html(0).unwrap().into_owned();
            let text = m.body_text(0).unwrap().into_owned();
            assert!(!html.contains("<script"));
            let unsub = m.header("List-Unsubscribe").and_then(|h| h.as_text()).map(str::to_string)
                .or_else(|| m.header_raw("List-Unsubscribe").map(|s| s.trim().to_string())).unwrap();
            assert!(unsub.starts_with(&format!("<{}/unsubscribe/", app.base)) && unsub.ends_with(&format!("/{}>", t.id)), "{unsub}");
            assert_eq!(m.header_raw("List-Unsubscribe-Post").map(str::trim), Some("List-Unsubscribe=One-Click"));
            assert!(text.contains("/preferences/") && html.contains("/preferences/"), "a link to the preferences page in both parts");
            // Exactly the expected header set: nothing smuggled.
            let mut names: Vec<String> = m.headers().iter().map(|h| h.name().to_string()).collect();
            names.sort();
            assert_eq!(names, vec!["Content-Type", "Date", "From", "List-Unsubscribe", "List-Unsubscribe-Post", "MIME-Version", "Message-ID", "Subject", "To"], "{names:?}");
        }
        // Progress and report in admin.
        wait_log(&app, "all sent", |l| l.iter().filter(|m| m.status == "sent").count() == 3).await;
        for _ in 0..100 {
            if broadcast::get(&app.state.ctx, id).await.unwrap().row.status == "sent" { break; }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        let page = owner.get(app.url(&format!("/admin/broadcasts/{id}"))).header("accept-language", "en").send().await.unwrap().text().await.unwrap();
        assert!(page.contains(r#"<tr data-status="sent"><th>已发送</th><td><a href="/admin/messages?status=sent">3</a>"#), "{page}");
        assert!(page.contains(r#"id="broadcast-recipients">3<"#));

        // One-click unsubscribe: a POST from a client with no cookies and no CSRF token.
        let en_mail = got.iter().find(|r| r.to[0] == "en@example.com").unwrap();
        let m = parse(en_mail);
        let url = m.header_raw("List-Unsubscribe").unwrap().trim().trim_start_matches('<').trim_end_matches('>').to_string();
        let page = reqwest::get(&url).await.unwrap();
        assert_eq!(page.status(), 200, "GET only asks");
        assert!(reach::topic::chosen(&app.state.ctx, en).await.unwrap().contains(&(t.id, Channel::Email)), "a link scanner's GET changes nothing");
        let r = reqwest::Client::new().post(&url).header("content-type", "application/x-www-form-urlencoded").body("List-Unsubscribe=One-Click").send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(!reach::topic::chosen(&app.state.ctx, en).await.unwrap().contains(&(t.id, Channel::Email)));
        // A forged token does nothing.
        let forged = url.replace("/unsubscribe/", "/unsubscribe/1").to_string();
        assert_eq!(reqwest::Client::new().post(&forged).body("List-Unsubscribe=One-Click").send().await.unwrap().status(), 404);
        let (token, _) = url.split("/unsubscribe/").nth(1).unwrap().split_once('/').unwrap();
        let zh_token = topic::token(&app.state.ctx, zh);
        assert_ne!(token, zh_token);

        // The preferences page works without signing in; it re-subscribes and unsubscribes.
        let anon = app.client();
        let page = anon.get(app.url(&format!("/preferences/{zh_token}"))).send().await.unwrap().text().await.unwrap();
        assert!(page.contains(&format!(r#"value="{}:email" aria-label="新品 · "#, t.id)) && page.contains(" checked>"), "{page}");
        let csrf = csrf_of(&page);
        let r = anon.post(app.url(&format!("/preferences/{zh_token}"))).form(&[("_csrf", csrf.as_str())]).send().await.unwrap();
        assert_eq!(r.status(), 303, "nothing ticked = unsubscribe from all");
        assert!(topic::chosen(&app.state.ctx, zh).await.unwrap().is_empty());
        assert_eq!(anon.get(app.url("/preferences/1.00000000000000000000000000000000")).send().await.unwrap().status(), 404);

        // A second broadcast under the topic reaches only who is still subscribed (vip).
        let d = broadcast::Draft { topic_id: t.id, tag: Some("VIP".into()), channels: vec![Channel::Email], texts: texts(&[("en", "Second", "Only for you")]) };
        let b2 = broadcast::create(&app.state.ctx, &d).await.unwrap();
        broadcast::send(&app.state.ctx, b2.row.id, None).await.unwrap();
        let got = sink.wait_for(4).await;
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        assert_eq!(sink.received().len(), 4);
        assert_eq!(got[3].to, vec!["vip@example.com".to_string()]);
        // The topic cannot be deleted while broadcasts name it.
        let r = post_form(&app, &owner, "/admin/topics", &format!("/admin/topics/{}/delete", t.id), &[]).await;
        assert_eq!(r.status(), 422);
    }

    async fn scheduled_broadcasts_wait_and_cancelled_ones_never_go(engine: Engine) {
        let sink = SmtpSink::start();
        let app = app_with_sink(engine, &sink).await;
        let ctx = &app.state.ctx;
        let t = topic::create(ctx, "文章更新", "").await.unwrap();
        let c = new_customer(&app, "reader@example.com", Locale::ZhCn).await;
        subscribe(&app, c, t.id, Channel::Email).await;
        let d = broadcast::Draft { topic_id: t.id, tag: None, channels: vec![Channel::Email], texts: texts(&[("zh-CN", "周报", "正文")]) };
        let later = broadcast::create(ctx, &d).await.unwrap();
        let never = broadcast::create(ctx, &d).await.unwrap();
        let in_an_hour = app.clock.now_ms() + 3_600_000;
        assert_eq!(broadcast::send(ctx, later.row.id, Some(in_an_hour)).await.unwrap().row.status, "scheduled");
        broadcast::send(ctx, never.row.id, Some(in_an_hour)).await.unwrap();
        assert!(broadcast::update(ctx, later.row.id, &d).await.is_err(), "a scheduled broadcast is no longer a draft");
        broadcast::cancel(ctx, never.row.id).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert!(sink.received().is_empty(), "not before its time");
        app.clock.advance(3_600_001);
        let got = sink.wait_for(1).await;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(sink.received().len(), 1, "the cancelled one never goes");
        assert_eq!(parse(&got[0]).subject(), Some("周报"));
        assert_eq!(broadcast::get(ctx, never.row.id).await.unwrap().row.recipients, 0);
    }

    async fn customers_get_broadcasts_on_their_own_push_key(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let fake = FakePush::start().await;
        let ctx = &app.state.ctx;
        let t = topic::create(ctx, "新品", "").await.unwrap();
        let customer = app.customer("phone@example.com").await;
        let me: i64 = sqlx::query_scalar("SELECT id FROM customers WHERE email = 'phone@example.com'").fetch_one(ctx.db.read()).await.unwrap();
        // A wrong key is refused by the test push, and not saved.
        let r = post_form(&app, &customer, "/account/notifications", "/account/notifications/push", &[("kind", "bark"), ("key", "wrong"), ("base", &fake.base)]).await;
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains("测试推送失败"));
        assert!(reach::customer_push(ctx, me).await.unwrap().is_none());
        let r = post_form(&app, &customer, "/account/notifications", "/account/notifications/push", &[("kind", "bark"), ("key", fake_push::BARK_KEY), ("base", &fake.base)]).await;
        assert_eq!(r.status(), 303);
        assert_eq!(fake.received().len(), 1, "the test push");
        let stored: String = sqlx::query_scalar("SELECT sealed FROM customer_push").fetch_one(ctx.db.read()).await.unwrap();
        assert!(!stored.contains(fake_push::BARK_KEY), "sealed at rest");
        // Subscribe to the topic on push only, from the account page.
        let value = format!("{}:push", t.id);
        let r = post_form(&app, &customer, "/account/notifications", "/account/notifications", &[("sub", &value)]).await;
        assert_eq!(r.status(), 303);
        assert_eq!(topic::chosen(ctx, me).await.unwrap().into_iter().collect::<Vec<_>>(), vec![(t.id, Channel::Push)]);
        let d = broadcast::Draft { topic_id: t.id, tag: None, channels: vec![Channel::Email, Channel::Push], texts: texts(&[("zh-CN", "上新了", "**春季** 新品")]) };
        let b = broadcast::create(ctx, &d).await.unwrap();
        broadcast::send(ctx, b.row.id, None).await.unwrap();
        for _ in 0..400 {
            if fake.received().len() >= 2 { break; }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        let got = fake.received();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].1["title"], "上新了");
        assert_eq!(got[1].1["body"], "春季 新品");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(app.mails_to("phone@example.com").len(), 1, "only the sign-in code: push was the only channel chosen");
        // "Download my data" includes what Reach holds about them.
        let e = yiren_core::customer::export(ctx, me).await.unwrap();
        assert_eq!((e["subscriptions"][0]["topic"].as_str(), e["subscriptions"][0]["channel"].as_str()), (Some("新品"), Some("push")));
        assert_eq!(e["push_service"], "bark");
        assert!(e["messages"].as_array().unwrap().iter().any(|m| m["summary"] == "上新了" && m["status"] == "sent"), "{e}");
        assert!(!e.to_string().contains(fake_push::BARK_KEY), "the key itself is not exported");
        // The customer deletes their account: subscriptions, key and log rows go.
        yiren_core::customer::delete_account(ctx, me).await.unwrap();
        assert!(reach::customer_push(ctx, me).await.unwrap().is_none());
        assert!(log(&app).await.iter().all(|m| m.customer_id != Some(me) && m.recipient != "phone@example.com"));
    }

    async fn the_delivery_log_filters_and_resends_and_suppressed_addresses_are_never_mailed(engine: Engine) {
        let sink = SmtpSink::start();
        let app = app_with_sink(engine, &sink).await;
        let owner = app.setup_owner(OWNER, PW).await;
        let ctx = &app.state.ctx;
        // Import a list: two addresses, one junk line, one duplicate.
        let r = post_form(&app, &owner, "/admin/suppressions", "/admin/suppressions", &[("list", "email\nblocked@example.com\nnot an address\nBLOCKED@example.com, other@example.com"), ("reason", "complaint")]).await;
        assert_eq!(r.status(), 200);
        let page = r.text().await.unwrap();
        assert!(page.contains("新增 2 个，已在名单中 1 个。") && page.contains("（已跳过）：3。"), "{page}");
        assert!(page.contains("b***@example.com") && !page.contains("blocked@example.com"), "only a masked hint is shown");
        let stored: Vec<String> = sqlx::query_scalar("SELECT hint FROM suppressions").fetch_all(ctx.db.read()).await.unwrap();
        assert_eq!(stored.len(), 2);
        let raw = app.snapshot().await;
        assert!(!serde_json::to_string(&raw).unwrap().contains("blocked@example.com"), "the address itself is not stored");
        // A suppressed address asking for a code: logged as suppressed, never handed to SMTP.
        ask_code(&app, "blocked@example.com").await;
        ask_code(&app, "fine@example.com").await;
        sink.wait_for(1).await;
        wait_log(&app, "both settled", |l| l.len() == 2 && l.iter().all(|m| m.status == "sent" || m.status == "suppressed")).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(sink.received().len(), 1);
        assert_eq!(sink.received()[0].to, vec!["fine@example.com".to_string()]);
        // Filter the log by recipient.
        let page = owner.get(app.url("/admin/messages?recipient=Blocked%40example.com")).header("accept-language", "en").send().await.unwrap().text().await.unwrap();
        assert!(page.contains("data-status=\"suppressed\"") && !page.contains("fine@example.com"), "{page}");
        assert_eq!(owner.get(app.url("/admin/messages?status=bogus")).send().await.unwrap().status(), 422);
        // Lift the suppression and resend from the log: delivered once.
        let hash = reach::suppress::hash(ctx, "blocked@example.com");
        let r = post_form(&app, &owner, "/admin/suppressions", &format!("/admin/suppressions/{hash}/delete"), &[]).await;
        assert_eq!(r.status(), 303);
        let m = log(&app).await.into_iter().find(|m| m.recipient == "blocked@example.com").unwrap();
        let r = post_form(&app, &owner, &format!("/admin/messages/{}", m.id), &format!("/admin/messages/{}/resend", m.id), &[]).await;
        assert_eq!(r.status(), 303);
        sink.wait_for(2).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(sink.received().len(), 2);
        assert_eq!(reach::get(ctx, m.id).await.unwrap().status, "sent");
    }

    async fn the_owner_caps_a_channel_per_minute_and_the_rest_waits(engine: Engine) {
        let sink = SmtpSink::start();
        let app = app_with_sink(engine, &sink).await;
        let owner = app.setup_owner(OWNER, PW).await;
        let r = post_form(&app, &owner, "/admin/messages", "/admin/messages/rates", &[("rate_email", "2"), ("rate_push", ""), ("rate_wechat", "0")]).await;
        assert_eq!(r.status(), 303);
        let r = post_form(&app, &owner, "/admin/messages", "/admin/messages/rates", &[("rate_email", "-1")]).await;
        assert_eq!(r.status(), 422);
        let ctx = &app.state.ctx;
        let t = topic::create(ctx, "T", "").await.unwrap();
        for i in 0..5 {
            let c = new_customer(&app, &format!("r{i}@example.com"), Locale::En).await;
            subscribe(&app, c, t.id, Channel::Email).await;
        }
        let d = broadcast::Draft { topic_id: t.id, tag: None, channels: vec![Channel::Email], texts: texts(&[("en", "Hi", "Body")]) };
        let b = broadcast::create(ctx, &d).await.unwrap();
        // Start at the beginning of a minute so the window does not roll over mid-test.
        let now = app.clock.now_ms();
        app.clock.advance(60_000 - now.rem_euclid(60_000) + 1);
        broadcast::send(ctx, b.row.id, None).await.unwrap();
        sink.wait_for(2).await;
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        assert_eq!(sink.received().len(), 2, "two this minute");
        let deferred = yiren_store::job::list(ctx.db.read(), Some("queued"), i64::MAX, 100).await.unwrap();
        assert!(deferred.iter().filter(|j| j.kind == "message.send").all(|j| j.attempts == 0), "waiting for the window does not use up attempts");
        app.clock.advance(60_000);
        sink.wait_for(4).await;
        app.clock.advance(60_000);
        sink.wait_for(5).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(sink.received().len(), 5);
    }
}

both_engines! {
    async fn topics_subscriptions_and_broadcasts_over_the_api(engine: Engine) {
        let sink = SmtpSink::start();
        let app = app_with_sink(engine, &sink).await;
        let owner = app.setup_owner(OWNER, PW).await;
        let token = app.api_token(&owner, &["reach:read", "reach:write"]).await;
        let reader = app.api_token(&owner, &["reach:read"]).await;
        let api = reqwest::Client::new();
        let url = |p: &str| app.url(&format!("/api/v1{p}"));
        let r = api.post(url("/topics")).bearer_auth(&token).json(&serde_json::json!({"topic": {"name": "新品", "description": "New"}})).send().await.unwrap();
        assert_eq!(r.status(), 201);
        let topic_id = r.json::<serde_json::Value>().await.unwrap()["topic"]["id"].as_i64().unwrap();
        let r = api.post(url("/topics")).bearer_auth(&reader).json(&serde_json::json!({"topic": {"name": "x"}})).send().await.unwrap();
        assert_eq!(r.status(), 403, "reach:read cannot write");
        let r = api.post(url("/topics")).bearer_auth(&token).json(&serde_json::json!({"topic": {"name": "新品"}})).send().await.unwrap();
        assert_eq!(r.status(), 409);
        let c = new_customer(&app, "api@example.com", Locale::En).await;
        let r = api.put(url("/subscriptions")).bearer_auth(&token).json(&serde_json::json!({"subscription": {"customer_id": c, "topic_id": topic_id, "channel": "email", "subscribed": true}})).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<serde_json::Value>().await.unwrap()["subscription"]["source"], "api");
        let r = api.put(url("/subscriptions")).bearer_auth(&token).json(&serde_json::json!({"subscription": {"customer_id": c, "topic_id": topic_id, "channel": "sms", "subscribed": true}})).send().await.unwrap();
        assert_eq!(r.status(), 422);
        let r = api.put(url("/subscriptions")).bearer_auth(&token).json(&serde_json::json!({"subscription": {"customer_id": 999, "topic_id": topic_id, "channel": "email", "subscribed": true}})).send().await.unwrap();
        assert_eq!(r.status(), 404);
        let list: serde_json::Value = api.get(url(&format!("/subscriptions?topic_id={topic_id}"))).bearer_auth(&reader).send().await.unwrap().json().await.unwrap();
        assert_eq!(list["subscriptions"].as_array().unwrap().len(), 1);
        // A broadcast: draft, then send; its counts follow the copies.
        let body = serde_json::json!({"broadcast": {"topic_id": topic_id, "channels": ["email"], "texts": {"en": {"subject": "Hello over the API", "body": "**Hi**"}}}});
        let r = api.post(url("/broadcasts")).bearer_auth(&token).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 201);
        let b: serde_json::Value = r.json().await.unwrap();
        let id = b["broadcast"]["id"].as_i64().unwrap();
        assert_eq!(b["broadcast"]["status"], "draft");
        let bad = serde_json::json!({"broadcast": {"topic_id": topic_id, "channels": ["email"], "texts": {"en": {"subject": "a\r\nBcc: x@y.cn", "body": "b"}}}});
        assert_eq!(api.post(url("/broadcasts")).bearer_auth(&token).json(&bad).send().await.unwrap().status(), 422);
        let r = api.post(url(&format!("/broadcasts/{id}/send"))).bearer_auth(&token).json(&serde_json::json!({})).send().await.unwrap();
        assert_eq!(r.status(), 200);
        sink.wait_for(1).await;
        let mut last = serde_json::Value::Null;
        for _ in 0..200 {
            last = api.get(url(&format!("/broadcasts/{id}"))).bearer_auth(&reader).send().await.unwrap().json().await.unwrap();
            if last["broadcast"]["counts"]["sent"] == 1 && last["broadcast"]["status"] == "sent" { break; }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert_eq!(last["broadcast"]["counts"]["sent"], 1, "{last}");
        assert_eq!(last["broadcast"]["recipients"], 1);
        // A sent broadcast is no longer a draft.
        assert_eq!(api.put(url(&format!("/broadcasts/{id}"))).bearer_auth(&token).json(&body).send().await.unwrap().status(), 409);
        assert_eq!(api.post(url(&format!("/broadcasts/{id}/send"))).bearer_auth(&token).json(&serde_json::json!({})).send().await.unwrap().status(), 409);
        assert_eq!(api.delete(url(&format!("/topics/{topic_id}"))).bearer_auth(&token).send().await.unwrap().status(), 409);
    }
}

both_engines! {
    async fn newsletter_sign_up_is_double_opt_in_and_within_budget(engine: Engine) {
        // RELIABILITY RL-3: 1,000 addresses from one IP; one address from several IPs.
        let sink = SmtpSink::start();
        let app = app_with_sink(engine, &sink).await;
        let t = topic::create(&app.state.ctx, "新品", "").await.unwrap();
        let tid = t.id.to_string();
        let bot = app.client();
        let page = bot.get(app.url("/subscribe")).send().await.unwrap().text().await.unwrap();
        let csrf = csrf_of(&page);
        let (mut ok, mut throttled) = (0, 0);
        for i in 0..1000 {
            let email = format!("bot{i}@example.com");
            let r = bot.post(app.url("/subscribe")).form(&[("_csrf", csrf.as_str()), ("topic", tid.as_str()), ("email", email.as_str())]).send().await.unwrap();
            match r.status().as_u16() {
                200 => ok += 1,
                429 => throttled += 1,
                s => panic!("{s}"),
            }
        }
        assert_eq!((ok, throttled), (reach::topic::OPTIN_PER_IP_HOUR as usize, 1000 - reach::topic::OPTIN_PER_IP_HOUR as usize));
        // One address asked from five IPs: three confirmations at most.
        let mut sent_to_victim = 0;
        for n in 2..7 {
            let c = app.client_from(&format!("127.0.0.{n}"));
            let page = c.get(app.url("/subscribe")).send().await.unwrap().text().await.unwrap();
            let csrf = csrf_of(&page);
            let r = c.post(app.url("/subscribe")).form(&[("_csrf", csrf.as_str()), ("topic", tid.as_str()), ("email", "victim@example.com")]).send().await.unwrap();
            if r.status() == 200 { sent_to_victim += 1 } else { assert_eq!(r.status(), 429) }
        }
        assert_eq!(sent_to_victim, reach::topic::OPTIN_PER_ADDRESS_HOUR);
        let expected = (reach::topic::OPTIN_PER_IP_HOUR + reach::topic::OPTIN_PER_ADDRESS_HOUR) as usize;
        sink.wait_for(expected).await;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(sink.count(), expected, "0 sends beyond the budget");
        // Nobody is subscribed (or even a customer) before confirming.
        let subscribed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM subscriptions").fetch_one(app.state.ctx.db.read()).await.unwrap();
        assert_eq!(subscribed, 0);
        // Confirm one: the link shows a button; the POST subscribes.
        let mail = sink.received().into_iter().find(|m| m.to[0] == "bot0@example.com").unwrap();
        let m = mail_parser::MessageParser::default().parse(&mail.data).unwrap();
        let text = m.body_text(0).unwrap().into_owned();
        let link = text.split_whitespace().find(|w| w.contains("/subscribe/confirm/")).unwrap_or_else(|| panic!("{text}")).to_string();
        let human = app.client();
        let page = human.get(&link).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let csrf = csrf_of(&page.text().await.unwrap());
        let r = human.post(&link).form(&[("_csrf", csrf.as_str())]).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().contains("id=\"optin-done\""));
        let id: i64 = sqlx::query_scalar("SELECT id FROM customers WHERE email = 'bot0@example.com'").fetch_one(app.state.ctx.db.read()).await.unwrap();
        assert!(topic::chosen(&app.state.ctx, id).await.unwrap().contains(&(t.id, Channel::Email)));
        // A tampered link does nothing; an expired one says so.
        let forged = link.replace("/confirm/", "/confirm/x");
        assert_eq!(human.get(&forged).send().await.unwrap().status(), 404);
        app.clock.advance(reach::topic::OPTIN_TTL_MS + 1);
        assert_eq!(human.get(&link).send().await.unwrap().status(), 409);
    }
}

both_engines! {
    async fn broadcasts_reach_wechat_followers_as_template_messages(engine: Engine) {
        use yiren_testkit::fake_wechat::{self, FakeWechat};
        let app = TestApp::spawn(engine).await;
        let owner = app.setup_owner(OWNER, PW).await;
        let fake = FakeWechat::start(&["openid-follower"]).await;
        let ctx = &app.state.ctx;
        let t = topic::create(ctx, "新品", "").await.unwrap();
        let now = app.clock.now_ms();
        let mut ids = Vec::new();
        for (email, openid) in [("wx1@example.com", "openid-follower"), ("wx2@example.com", "openid-gone")] {
            let c = new_customer(&app, email, Locale::ZhCn).await;
            yiren_store::customer::insert_identity(ctx.db.write(), ctx.new_id(), c, "wechat", openid, None, None, now).await.unwrap();
            ids.push(c);
        }
        // Not set up yet: WeChat is not offered to customers.
        assert!(!topic::channels_for(ctx, ids[0]).await.unwrap().contains(&Channel::Wechat));
        let r = post_form(&app, &owner, "/admin/messages", "/admin/messages/wechat", &[("appid", fake_wechat::APPID), ("secret", fake_wechat::SECRET), ("template_id", fake_wechat::TEMPLATE_ID), ("title_field", "first"), ("body_field", "keyword1"), ("api_base", &fake.base)]).await;
        assert_eq!(r.status(), 303);
        let stored = serde_json::to_string(&app.snapshot().await).unwrap();
        assert!(!stored.contains(fake_wechat::SECRET), "the app secret is sealed");
        assert!(topic::channels_for(ctx, ids[0]).await.unwrap().contains(&Channel::Wechat));
        for c in &ids {
            subscribe(&app, *c, t.id, Channel::Wechat).await;
        }
        let d = broadcast::Draft { topic_id: t.id, tag: None, channels: vec![Channel::Wechat], texts: texts(&[("zh-CN", "春季上新", "**八折**，限时三天")]) };
        let b = broadcast::create(ctx, &d).await.unwrap();
        broadcast::send(ctx, b.row.id, None).await.unwrap();
        wait_log(&app, "both settled", |l| l.len() == 2 && l.iter().all(|m| m.status != "queued")).await;
        let got = fake.received();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["touser"], "openid-follower");
        assert_eq!(got[0]["data"]["first"]["value"], "春季上新");
        assert_eq!(got[0]["data"]["keyword1"]["value"], "八折，限时三天");
        let failed = log(&app).await.into_iter().find(|m| m.status == "failed").unwrap();
        assert!(failed.last_error.unwrap().contains("43004"), "an unfollowed account is not retried");
        assert_eq!(fake.token_calls(), 1, "one token for both messages (cached)");
        // WeChat revokes the token: the next send fetches a new one and goes through.
        fake.revoke_tokens();
        let b2 = broadcast::create(ctx, &d).await.unwrap();
        broadcast::send(ctx, b2.row.id, None).await.unwrap();
        wait_log(&app, "second settled", |l| l.len() == 4 && l.iter().all(|m| m.status != "queued")).await;
        assert_eq!(fake.received().len(), 2);
        assert_eq!(fake.token_calls(), 2);
    }
}
