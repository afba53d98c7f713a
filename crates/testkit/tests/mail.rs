//! Outgoing mail through a real SMTP server (the testkit's sink): the sign-in code mail, its
//! headers and both parts; a temporary refusal retried once and delivered once; a refused mailbox
//! logged as failed and suppressed (never mailed again). On both engines.

use yiren_testkit::smtp::SmtpSink;
use yiren_testkit::{both_engines, TestApp};

async fn app_with_sink(engine: yiren_testkit::Engine, sink: &SmtpSink) -> TestApp {
    let url = sink.url();
    TestApp::spawn_with(engine, move |c| {
        c.mail.smtp_url = yiren_core::Secret::new(url);
        c.mail.from = "小店 <shop@example.com>".into();
    })
    .await
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
