//! Outgoing mail through a real SMTP server (the testkit's sink): the sign-in code mail, its
//! headers and both parts; a temporary refusal retried once and delivered once; a refused mailbox
//! logged as failed and suppressed (never mailed again). On both engines.

use yiren_testkit::smtp::SmtpSink;

use yiren_testkit::{both_engines, TestApp};

async fn app_with_sink(engine: yiren_testkit::Engine, sink: &SmtpSink) -> TestApp {
    TestApp::spawn_with_sink(engine, sink).await
}

async fn ask_code(app: &TestApp, email: &str) {
    let c = app.client();
    let csrf = app.csrf(&c, "/account/sign-in").await;
    let r = c
        .post(app.url("/account/code"))
        .header("accept-language", "en")
        .form(&[("_csrf", csrf.as_str()), ("email", email)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
}

async fn mail_jobs(app: &TestApp) -> Vec<yiren_store::job::JobRow> {
    yiren_store::job::list(app.state.ctx.db.read(), None, i64::MAX, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.kind == "message.send")
        .collect()
}

async fn messages(app: &TestApp) -> Vec<yiren_store::reach::MessageRow> {
    yiren_store::reach::list_messages(app.state.ctx.db.read(), &Default::default(), i64::MAX, 100)
        .await
        .unwrap()
}

both_engines! {
    async fn the_code_mail_goes_through_smtp_with_both_parts(engine: Engine) {
        let sink = SmtpSink::start();
        let app = app_with_sink(engine, &sink).await;
        ask_code(&app, "buyer@example.com").await;
        let got = sink.wait_for(1).await;
        assert_eq!(got[0].from, "shop@example.com");
        assert_eq!(got[0].to, vec!["buyer@example.com".to_string()]);
        let m = mail_parser::MessageParser::default().parse(&got[0].data).expect("a valid message");
        let from = m.from().and_then(|a| a.first()).unwrap();
        assert_eq!((from.name(), from.address()), (Some("小店"), Some("shop@example.com")));
        assert_eq!(m.to().and_then(|a| a.first()).and_then(|a| a.address()), Some("buyer@example.com"));
        assert!(m.date().is_some());
        let logged = messages(&app).await;
        assert_eq!(logged.len(), 1);
        assert_eq!(m.message_id(), Some(format!("m{}@example.com", logged[0].id).as_str()), "a Message-ID that stays the same across retries");
        assert_eq!((logged[0].status.as_str(), logged[0].channel.as_str(), logged[0].recipient.as_str()), ("sent", "email", "buyer@example.com"));
        assert!(!logged[0].content.contains(&m.subject().unwrap()[..6]), "the log never holds the code");
        assert!(m.header("List-Unsubscribe").is_none(), "transactional mail has no unsubscribe header");
        let text = m.body_text(0).unwrap().into_owned();
        let html = m.body_html(0).unwrap().into_owned();
        let code: String = text.split(|c: char| !c.is_ascii_digit()).find(|w| w.len() == 6).unwrap().to_string();
        assert!(m.subject().unwrap().contains(&code) && m.subject().unwrap().contains("sign-in code"), "English, as the request asked");
        assert!(html.contains(&code) && html.contains("<html"));
        assert!(!app.db.dir().join("mail").exists() || std::fs::read_dir(app.db.dir().join("mail")).unwrap().next().is_none(), "no .eml files when SMTP is set");
    }

    async fn a_temporary_refusal_is_retried_and_the_mail_arrives_once(engine: Engine) {
        let sink = SmtpSink::start();
        let app = app_with_sink(engine, &sink).await;
        sink.fail_next(1);
        ask_code(&app, "retry@example.com").await;
        // The 451 schedules a retry with a backoff; move the app's clock past it.
        for _ in 0..300 {
            if messages(&app).await.first().is_some_and(|m| m.attempts == 1 && m.status == "queued") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let m = messages(&app).await.remove(0);
        assert!(m.last_error.as_deref().unwrap_or("").contains("451"), "{m:?} / sink has {}", sink.received().len());
        assert_eq!(mail_jobs(&app).await.iter().filter(|j| j.state == "queued").count(), 1, "one retry job");
        app.clock.advance(60_000);
        let got = sink.wait_for(1).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(sink.received().len(), 1, "delivered once");
        assert_eq!(got[0].to, vec!["retry@example.com".to_string()]);
        // Each attempt's job was completed with the attempt's outcome (one transaction), and the
        // worker did not complete or fail it again.
        let mut states = vec![];
        for _ in 0..100 {
            states = mail_jobs(&app).await.into_iter().map(|j| j.state).collect::<Vec<_>>();
            if states.iter().all(|s| s == "done") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(states, vec!["done", "done"]);
        assert_eq!(messages(&app).await[0].status, "sent");
    }

    async fn a_refused_mailbox_is_logged_as_failed_and_never_mailed_again(engine: Engine) {
        let sink = SmtpSink::start();
        let app = app_with_sink(engine, &sink).await;
        ask_code(&app, "no-such-mailbox@example.com").await;
        for _ in 0..300 {
            if messages(&app).await.first().is_some_and(|m| m.status == "failed") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let m = messages(&app).await.remove(0);
        assert_eq!(m.status, "failed", "a 550 is not retried: {:?}", m.last_error);
        assert_eq!(m.attempts, 1);
        assert!(m.last_error.as_deref().unwrap_or("").contains("SMTP refused"), "{:?}", m.last_error);
        assert!(yiren_core::reach::suppress::is_suppressed(&app.state.ctx, "No-Such-Mailbox@example.com").await.unwrap(), "a bounce suppresses the address");
        // The next code for that address is never handed to SMTP.
        app.clock.advance(120_000);
        ask_code(&app, "no-such-mailbox@example.com").await;
        for _ in 0..300 {
            if messages(&app).await.iter().any(|m| m.status == "suppressed") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let all = messages(&app).await;
        assert_eq!(all.iter().map(|m| m.status.as_str()).collect::<Vec<_>>(), vec!["suppressed", "failed"]);
        assert!(sink.received().is_empty());
        assert_eq!(mail_jobs(&app).await.iter().filter(|j| j.state == "dead").count(), 0, "failures live in the delivery log, not the dead list");
    }

    async fn without_smtp_the_owner_reads_outgoing_mail_in_admin(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let owner = app.setup_owner("owner@example.com", "a long owner passphrase").await;
        let code = app.request_code(&app.client(), "reader@example.com").await;
        let page = owner.get(app.url("/admin/mail")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("reader@example.com"));
        let id = page.split("href=\"/admin/mail/").nth(1).unwrap().split('"').next().unwrap().to_string();
        let one = owner.get(app.url(&format!("/admin/mail/{id}"))).send().await.unwrap().text().await.unwrap();
        assert!(one.contains(&code), "the owner can read the code a customer was sent");
        for bad in ["..%2Fsecret", "secret.key", "..", "%2e%2e%2fyiren.db", "0000"] {
            assert_eq!(owner.get(app.url(&format!("/admin/mail/{bad}"))).send().await.unwrap().status(), 404, "{bad}");
        }
        // Only the owner reads mail (it holds sign-in codes).
        let csrf = app.csrf(&owner, "/admin/staff").await;
        owner.post(app.url("/admin/staff")).form(&[("_csrf", csrf.as_str()), ("name", "H"), ("email", "h@example.com"), ("password", "a long helper passphrase")]).send().await.unwrap();
        let helper = app.client();
        app.sign_in(&helper, "h@example.com", "a long helper passphrase").await;
        assert_eq!(helper.get(app.url("/admin/mail")).send().await.unwrap().status(), 403);
    }

    async fn with_smtp_the_mail_page_says_so(engine: Engine) {
        let sink = SmtpSink::start();
        let app = app_with_sink(engine, &sink).await;
        let owner = app.setup_owner("owner@example.com", "a long owner passphrase").await;
        let page = owner.get(app.url("/admin/mail")).header("accept-language", "en").send().await.unwrap().text().await.unwrap();
        assert!(page.contains("mail.smtp_url"));
        assert_eq!(owner.get(app.url("/admin/mail/0000-aaaa")).send().await.unwrap().status(), 404);
    }
}

async fn owner_form(
    app: &TestApp,
    owner: &reqwest::Client,
    action: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let csrf = app.csrf(owner, "/admin/mail").await;
    let mut f = vec![("_csrf", csrf.as_str())];
    f.extend_from_slice(form);
    owner.post(app.url(action)).form(&f).send().await.unwrap()
}

/// MAIL-1: line breaks, NULs, Unicode separators and encoded-word tricks in every header field a
/// person can type.
fn injection_payloads() -> Vec<String> {
    let tails = [
        "Bcc: evil@attacker.example",
        "Cc: evil@attacker.example",
        "To: evil@attacker.example",
        "Subject: spoofed",
    ];
    let breaks = [
        "\r\n", "\n", "\r", "%0d%0a", "%0a", "\0", "\u{2028}", "\u{2029}", "\r\n ", "\r\n\r\n",
        "\u{85}", "=0D=0A",
    ];
    let mut out: Vec<String> = Vec::new();
    for b in breaks {
        for t in &tails[..3] {
            out.push(format!("Shop{b}{t}"));
        }
    }
    out.push("=?utf-8?q?Shop=0D=0ABcc:_evil@attacker.example?=".into());
    out.push("=?utf-8?b?U2hvcA0KQmNjOiBldmlsQGF0dGFja2VyLmV4YW1wbGU=?=".into());
    out.push("\"Shop\r\nBcc: evil@attacker.example\"".into());
    out.push("Shop <evil@attacker.example>, other@attacker.example".into());
    out.push("Shop\tBcc: evil@attacker.example".into());
    out.push("Shop: Subject: spoofed".into());
    out.push("a".repeat(300));
    out.push("小店\r\nBcc: evil@attacker.example".into());
    out.push(format!("{}\r\nBcc: evil@attacker.example", "x".repeat(80)));
    out.push("Shop\x0bBcc: evil@attacker.example".into());
    out.push("Shop\x0cBcc: evil@attacker.example".into());
    out.push("Shop\u{2028}\u{2029}".into());
    out.push("Shop%0D%0ABcc:%20evil@attacker.example".into());
    out.push("Shop\\r\\nBcc: evil@attacker.example".into());
    assert!(out.len() >= 50, "{}", out.len());
    out
}

fn assert_clean(raw: &[u8], expect_reply_to: bool) {
    let m = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("a valid message");
    let mut names: Vec<String> = m.headers().iter().map(|h| h.name().to_string()).collect();
    names.sort();
    let mut expected = vec![
        "Content-Type",
        "Date",
        "From",
        "MIME-Version",
        "Message-ID",
        "Subject",
        "To",
    ];
    if expect_reply_to {
        expected.push("Reply-To");
        expected.sort();
    }
    assert_eq!(names, expected, "{}", String::from_utf8_lossy(raw));
    assert_eq!(m.to().map(|t| t.iter().count()), Some(1));
    assert!(!String::from_utf8_lossy(raw)
        .to_lowercase()
        .contains("\nbcc:"));
}

both_engines! {
    async fn smtp_set_in_admin_with_starttls_and_auth_and_a_send_test(engine: Engine) {
        let (sink, tls) = SmtpSink::start_starttls("shop@qq.example", "app-password-16");
        let ca = tls.cert.display().to_string();
        let app = TestApp::spawn_with(engine, move |c| c.mail.ca_file = ca).await;
        let owner = app.setup_owner("owner@example.com", "a long owner passphrase").await;
        let port = sink.port().to_string();
        let settings = |pw: &'static str| vec![("host", "localhost"), ("port", "PORT"), ("security", "starttls"), ("username", "shop@qq.example"), ("password", pw), ("from_name", "小店"), ("from_address", "shop@qq.example"), ("reply_to", "help@example.com")];
        let form: Vec<(&str, &str)> = settings("wrong").into_iter().map(|(k, v)| (k, if v == "PORT" { port.as_str() } else { v })).collect();
        assert_eq!(owner_form(&app, &owner, "/admin/mail/settings", &form).await.status(), 303);
        // A wrong app password: the test says what the server answered; nothing is delivered.
        let page = owner_form(&app, &owner, "/admin/mail/test", &[("to", "me@example.com")]).await.text().await.unwrap();
        assert!(page.contains("id=\"test-result\"") && page.contains("535"), "{page}");
        assert_eq!(sink.count(), 0);
        // The right one (the stored password is kept when the field is left empty on later saves).
        let form: Vec<(&str, &str)> = settings("app-password-16").into_iter().map(|(k, v)| (k, if v == "PORT" { port.as_str() } else { v })).collect();
        assert_eq!(owner_form(&app, &owner, "/admin/mail/settings", &form).await.status(), 303);
        let form: Vec<(&str, &str)> = settings("").into_iter().map(|(k, v)| (k, if v == "PORT" { port.as_str() } else { v })).collect();
        assert_eq!(owner_form(&app, &owner, "/admin/mail/settings", &form).await.status(), 303);
        let page = owner_form(&app, &owner, "/admin/mail/test", &[("to", "me@example.com")]).await.text().await.unwrap();
        assert!(page.contains("class=\"notice\" role=\"status\" id=\"test-result\""), "{page}");
        let got = sink.wait_for(1).await;
        let m = mail_parser::MessageParser::default().parse(&got[0].data).unwrap();
        let from = m.from().and_then(|a| a.first()).unwrap();
        assert_eq!((from.name(), from.address()), (Some("小店"), Some("shop@qq.example")));
        assert_eq!(m.reply_to().and_then(|a| a.first()).and_then(|a| a.address()), Some("help@example.com"));
        // The password is write-only and sealed at rest.
        let page = owner.get(app.url("/admin/mail")).send().await.unwrap().text().await.unwrap();
        assert!(!page.contains("app-password-16"));
        let stored = serde_json::to_string(&app.snapshot().await).unwrap();
        assert!(!stored.contains("app-password-16"), "sealed in the database");
        // Codes now go the same way.
        ask_code(&app, "buyer@example.com").await;
        let got = sink.wait_for(2).await;
        assert_eq!(got[1].to, vec!["buyer@example.com".to_string()]);
    }

    async fn implicit_tls_on_a_465_style_port(engine: Engine) {
        let (sink, tls) = SmtpSink::start_implicit_tls();
        let url = format!("smtps://localhost:{}", sink.port());
        let ca = tls.cert.display().to_string();
        let app = TestApp::spawn_with(engine, move |c| {
            c.mail.smtp_url = yiren_core::Secret::new(url);
            c.mail.ca_file = ca;
        })
        .await;
        ask_code(&app, "tls@example.com").await;
        let got = sink.wait_for(1).await;
        assert_eq!(got[0].to, vec!["tls@example.com".to_string()]);
        // Without the certificate trusted the handshake fails; the log says why, nothing is sent.
        let (sink2, _tls2) = SmtpSink::start_implicit_tls();
        let url = format!("smtps://localhost:{}", sink2.port());
        let app2 = TestApp::spawn_with(engine, move |c| c.mail.smtp_url = yiren_core::Secret::new(url)).await;
        ask_code(&app2, "untrusted@example.com").await;
        for _ in 0..300 {
            if messages(&app2).await.first().is_some_and(|m| m.attempts == 1) { break; }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let m = messages(&app2).await.remove(0);
        assert_ne!(m.status, "sent");
        assert!(m.last_error.as_deref().unwrap_or("").to_lowercase().contains("certificate"), "{m:?}");
        assert_eq!(sink2.count(), 0);
    }

    async fn header_injection_is_refused_or_encoded_in_every_typed_field(engine: Engine) {
        let sink = SmtpSink::start();
        let app = TestApp::spawn(engine).await;
        let owner = app.setup_owner("owner@example.com", "a long owner passphrase").await;
        let port = sink.port().to_string();
        let mut delivered = 0;
        let (mut refused, mut tried) = (0, 0);
        for p in injection_payloads() {
            for field in ["from_name", "reply_to", "username"] {
                let mut form = vec![("host", "127.0.0.1"), ("port", port.as_str()), ("security", "none"), ("from_name", "Shop"), ("from_address", "shop@example.com"), ("reply_to", "")];
                form.retain(|(k, _)| *k != field);
                form.push((field, p.as_str()));
                let r = owner_form(&app, &owner, "/admin/mail/settings", &form).await;
                tried += 1;
                if r.status() == 422 {
                    refused += 1;
                    continue;
                }
                assert_eq!(r.status(), 303, "{field} = {p:?}");
                let page = owner_form(&app, &owner, "/admin/mail/test", &[("to", "me@example.com")]).await.text().await.unwrap();
                assert!(page.contains("id=\"test-result\""), "{page}");
                if sink.count() > delivered {
                    delivered = sink.count();
                    assert_clean(&sink.received().last().unwrap().data, field == "reply_to");
                }
            }
        }
        eprintln!("{tried} settings saves: {refused} refused (422), {} test mails sent, each with exactly the expected headers", sink.count());
        // The subject of a broadcast: refused with 422 when it carries a line break.
        let ctx = &app.state.ctx;
        let t = yiren_core::reach::topic::create(ctx, "T", "").await.unwrap();
        for p in injection_payloads() {
            let d = yiren_core::reach::broadcast::Draft { topic_id: t.id, tag: None, channels: vec![yiren_core::reach::Channel::Email], texts: [("en".to_string(), yiren_core::reach::broadcast::Text { subject: p.clone(), body: "b".into() })].into() };
            if yiren_core::reach::broadcast::create(ctx, &d).await.is_ok() {
                assert!(!p.trim().chars().any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}'), "accepted {p:?}");
            }
        }
        // Everything that reached the sink had exactly the expected headers.
        for r in sink.received() {
            let text = r.text();
            assert!(!text.to_lowercase().contains("\nbcc:") && !text.to_lowercase().contains("\ncc:"), "{text}");
        }
    }
}

both_engines! {
    async fn a_six_hour_smtp_outage_loses_nothing_and_sends_once(engine: Engine) {
        // RELIABILITY DUR-6: the server answers 451 to everything for six (simulated) hours.
        let sink = SmtpSink::start();
        let app = app_with_sink(engine, &sink).await;
        sink.fail_next(u32::MAX);
        // A newsletter (a sign-in code would rightly be dropped once it expires, after 10 minutes).
        let ctx = &app.state.ctx;
        use yiren_core::reach::{broadcast, topic, Channel};
        let t = topic::create(ctx, "新品", "").await.unwrap();
        let c = yiren_core::customer::create_by_staff(ctx, "outage@example.com", "", None, None).await.unwrap();
        topic::set(ctx, c.id, t.id, Channel::Email, true, "test").await.unwrap();
        let d = broadcast::Draft { topic_id: t.id, tag: None, channels: vec![Channel::Email], texts: [("zh-CN".to_string(), broadcast::Text { subject: "周报".into(), body: "正文".into() })].into() };
        let b = broadcast::create(ctx, &d).await.unwrap();
        broadcast::send(ctx, b.row.id, None).await.unwrap();
        for _ in 0..200 {
            if messages(&app).await.first().is_some_and(|m| m.attempts == 1) { break; }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let mut attempts = 1;
        for _ in 0..12 {
            app.clock.advance(30 * 60_000);
            // Let the retry that just came due run.
            for _ in 0..100 {
                let a = messages(&app).await[0].attempts;
                if a > attempts { attempts = a; break; }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        let m = messages(&app).await.remove(0);
        assert_eq!(m.status, "queued", "still waiting after six hours: {m:?}");
        assert!(m.attempts >= 6, "{m:?}");
        assert_eq!(sink.count(), 0);
        // The server recovers: the mail goes, once.
        sink.fail_next(0);
        app.clock.advance(3_600_000);
        sink.wait_for(1).await;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        app.clock.advance(3_600_000);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(sink.count(), 1, "sent once");
        assert_eq!(messages(&app).await[0].status, "sent");
        eprintln!("{} attempts over the outage, then delivered once", m.attempts);
    }
}

both_engines! {
    async fn the_owner_overrides_mail_templates_per_language(engine: Engine) {
        let sink = SmtpSink::start();
        let app = app_with_sink(engine, &sink).await;
        let dir = app.db.dir().join("templates").join("mail");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("code.en.subject"), "[{{ site }}] your code\r\nBcc: evil@attacker.example").unwrap();
        std::fs::write(dir.join("code.html"), "<p class=\"brand\">{{ body }}</p><b>{{ code }}</b>{{ '<script>' }}").unwrap();
        std::fs::write(dir.join("code.txt"), "{% if broken %}").unwrap();
        ask_code(&app, "en@example.com").await;
        let got = sink.wait_for(1).await;
        let m = mail_parser::MessageParser::default().parse(&got[0].data).unwrap();
        assert_eq!(m.subject(), Some("[Yiren] your code Bcc: evil@attacker.example"), "one line, whatever the override says");
        assert!(m.header("Bcc").is_none());
        let html = m.body_html(0).unwrap().into_owned();
        assert!(html.starts_with("<p class=\"brand\">") && html.contains("&lt;script&gt;"), "{html}");
        let code: String = html.split("<b>").nth(1).unwrap().chars().take(6).collect();
        let text = m.body_text(0).unwrap().into_owned();
        assert!(text.contains(&code), "a broken override falls back to the built-in text: {text}");
        // Chinese has no subject override: the built-in one, in Chinese.
        let c = app.client();
        let csrf = app.csrf(&c, "/account/sign-in").await;
        c.post(app.url("/account/code")).header("accept-language", "zh-CN").form(&[("_csrf", csrf.as_str()), ("email", "zh@example.com")]).send().await.unwrap();
        let got = sink.wait_for(2).await;
        let m = mail_parser::MessageParser::default().parse(&got[1].data).unwrap();
        assert!(m.subject().unwrap().contains("登录验证码"), "{:?}", m.subject());
        assert!(m.body_html(0).unwrap().starts_with("<p class=\"brand\">"), "the shared HTML override applies to every language");
    }
}
