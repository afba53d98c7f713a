//! A broadcast to 10,000 subscribers, sent by the real binary into the real SMTP sink, killed with
//! SIGKILL mid-way and restarted: every subscriber's mailbox receives the message exactly once —
//! one Message-ID per subscriber, nobody missed — and the SMTP transactions repeated by the kill
//! are at most the messages that were in flight. On both engines.
//!
//! Why a transaction can repeat at all (RFC 1047): a message is recorded as sent after the server
//! accepted it. A kill between the server's "250" and that commit leaves a message the server has
//! and the log does not, so it goes again after the restart with the same Message-ID, which
//! mailbox providers collapse into one message (as Gmail and Exchange do, and Sieve's
//! `duplicate`, RFC 7352). Recording it before the final "." instead trades that repeat for a
//! possible loss: the commit itself takes as long as the window it closes (measured: one message
//! lost in a PostgreSQL run). Each job sends its messages one after another, so at most one per
//! running job is in that window.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use yiren_core::reach::{broadcast, topic, Channel};
use yiren_testkit::process::{yiren, Server};
use yiren_testkit::smtp::SmtpSink;
use yiren_testkit::{both_engines, TestDb};

const N: i64 = 10_000;
const CONCURRENCY: usize = 4;

fn message_id(raw: &[u8]) -> String {
    let m = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("a valid message");
    m.message_id().expect("a Message-ID").to_string()
}

both_engines! {
    async fn a_killed_broadcast_resumes_and_nobody_gets_it_twice(engine: Engine) {
        let t = TestDb::new(engine).await;
        let sink = SmtpSink::start();
        let db_args: Vec<&str> = if t.url.is_empty() { vec![] } else { vec!["--database-url", t.url.as_str()] };
        assert!(yiren(t.dir()).arg("migrate").args(&db_args).status().unwrap().success());
        // The audience: 10,000 customers subscribed to one topic by email; a broadcast sent to them.
        let ctx = yiren::context(&t.config(), Default::default()).await.unwrap();
        let seed = Instant::now();
        let tp = topic::create(&ctx, "新品", "").await.unwrap();
        let now = yiren_testkit::real_now();
        let mut tx = ctx.db.begin().await.unwrap();
        for i in 1..=N {
            let email = format!("r{i:05}@example.com");
            let c = yiren_store::customer::NewCustomer { id: i, email: Some(&email), email_verified: true, name: "", ..Default::default() };
            yiren_store::customer::insert(&mut *tx, &c, now).await.unwrap();
            let s = yiren_store::reach::SubscriptionRow { customer_id: i, topic_id: tp.id, channel: "email".into(), subscribed: 1, source: "test".into(), updated_at: now };
            yiren_store::reach::put_subscription(&mut *tx, &s).await.unwrap();
        }
        tx.commit().await.unwrap();
        eprintln!("seeded in {:?}", seed.elapsed());
        let d = broadcast::Draft {
            topic_id: tp.id,
            tag: None,
            channels: vec![Channel::Email],
            texts: [("zh-CN".to_string(), broadcast::Text { subject: "本周新品".into(), body: "**上新**".into() })].into(),
        };
        let b = broadcast::create(&ctx, &d).await.unwrap();
        broadcast::send(&ctx, b.row.id, None).await.unwrap();

        let concurrency = CONCURRENCY.to_string();
        let env = [
            ("YIREN_MAIL__SMTP_URL", sink.url()),
            ("YIREN_JOBS__CONCURRENCY", concurrency.clone()),
            ("YIREN_JOBS__POLL_INTERVAL_MS", "10".into()),
            // Short, so the restart takes over the killed process's jobs soon. A lease that lapses
            // under load while its job still runs is not taken back by the same process.
            ("YIREN_JOBS__LEASE_SECS", "2".into()),
        ];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let server = Server::start(t.dir(), &t.url, &env);
        let start = Instant::now();
        while sink.count() < 3_000 {
            assert!(start.elapsed() < Duration::from_secs(300), "only {} sent", sink.count());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        eprintln!("{} sent in {:?}", sink.count(), start.elapsed());
        server.signal(libc::SIGKILL);
        server.wait(Duration::from_secs(10));
        let at_kill = sink.count();
        assert!(at_kill < N as usize, "the kill came mid-way ({at_kill} sent)");

        let server = Server::start(t.dir(), &t.url, &env);
        let start = Instant::now();
        loop {
            let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE status = 'queued'").fetch_one(ctx.db.read()).await.unwrap();
            let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages").fetch_one(ctx.db.read()).await.unwrap();
            let status = broadcast::get(&ctx, b.row.id).await.unwrap().row.status;
            if open == 0 && total == N && status == "sent" {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(600), "{open} open of {total} after restart ({status})");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!("finished {:?} after the restart", start.elapsed());
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.signal(libc::SIGTERM);
        server.wait(Duration::from_secs(30));

        let sent: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE status = 'sent'").fetch_one(ctx.db.read()).await.unwrap();
        assert_eq!(sent, N, "every copy is logged as sent");
        let got = sink.received();
        let mut by_recipient: HashMap<String, Vec<String>> = HashMap::new();
        for r in &got {
            assert_eq!(r.to.len(), 1);
            by_recipient.entry(r.to[0].clone()).or_default().push(message_id(&r.data));
        }
        assert_eq!(by_recipient.len(), N as usize, "every subscriber got it");
        for (to, ids) in &by_recipient {
            assert!(ids.iter().all(|i| *i == ids[0]), "{to} got two different messages: {ids:?}");
        }
        let distinct: std::collections::HashSet<&String> = by_recipient.values().map(|v| &v[0]).collect();
        assert_eq!(distinct.len(), N as usize, "one message per subscriber");
        let repeats = got.len() - N as usize;
        eprintln!("killed after {at_kill} deliveries; {} deliveries in all; {repeats} repeated after the crash", got.len());
        assert!(repeats <= CONCURRENCY, "{repeats} repeated transactions: more than the {CONCURRENCY} that can be in flight");
        ctx.db.close().await;
    }
}
