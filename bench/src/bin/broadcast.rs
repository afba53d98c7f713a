//! Broadcast benchmark (issue 4): the real `yiren serve` sends a broadcast to N subscribers into
//! the testkit's SMTP sink on loopback. Prints, for each N, the time from the first to the last
//! delivery, messages/s, the server's peak RSS (VmHWM) and its RSS at the end — so 10,000 and
//! 100,000 recipients can be compared (memory must not grow with the list) — beside a baseline
//! measured in the same run: the same number of connections sending prebuilt messages straight
//! to the sink with lettre (no database, no queue). Figures only; nothing passes or fails.
//!
//! Usage: broadcast <path to release yiren> [N ...]   (default: 10000 100000)

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lettre::message::Mailbox;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;
use lettre::Message;
use yiren_core::reach::{broadcast, topic, Channel};
use yiren_testkit::smtp::SmtpSink;

const CONCURRENCY: usize = 4;

fn kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn pipeline(bin: &str, n: i64) -> (f64, u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = yiren::Config {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    config.server.addr = "127.0.0.1:0".into();
    let ctx = yiren::context(&config, Default::default()).await.unwrap();
    let tp = topic::create(&ctx, "新品", "").await.unwrap();
    let now = yiren_testkit::real_now();
    for chunk in (1..=n).collect::<Vec<_>>().chunks(10_000) {
        let mut tx = ctx.db.begin().await.unwrap();
        for &i in chunk {
            let email = format!("r{i:06}@example.com");
            let c = yiren_store::customer::NewCustomer {
                id: i,
                email: Some(&email),
                email_verified: true,
                name: "",
                ..Default::default()
            };
            yiren_store::customer::insert(&mut *tx, &c, now)
                .await
                .unwrap();
            let s = yiren_store::reach::SubscriptionRow {
                customer_id: i,
                topic_id: tp.id,
                channel: "email".into(),
                subscribed: 1,
                source: "bench".into(),
                updated_at: now,
            };
            yiren_store::reach::put_subscription(&mut *tx, &s)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let d = broadcast::Draft {
        topic_id: tp.id,
        tag: None,
        channels: vec![Channel::Email],
        texts: [(
            "zh-CN".to_string(),
            broadcast::Text {
                subject: "本周新品".into(),
                body: "# 新品上架\n\n![封面](https://cdn.example.com/a.png)\n\n春季新品，**限时**八折。[看看](https://shop.example.com/p/1)".into(),
            },
        )]
        .into(),
    };
    let b = broadcast::create(&ctx, &d).await.unwrap();
    broadcast::send(&ctx, b.row.id, None).await.unwrap();
    ctx.db.close().await;

    let sink = SmtpSink::start();
    sink.discard_messages();
    let mut child = Command::new(bin)
        .args(["--data-dir"])
        .arg(dir.path())
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("YIREN_MAIL__SMTP_URL", sink.url())
        .env("YIREN_JOBS__CONCURRENCY", CONCURRENCY.to_string())
        .env("YIREN_LOG__LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start yiren");
    let pid = child.id();
    let mut first: Option<Instant> = None;
    let started = Instant::now();
    while sink.count() < n as usize {
        if first.is_none() && sink.count() > 0 {
            first = Some(Instant::now());
        }
        assert!(
            started.elapsed() < Duration::from_secs(3600),
            "stuck at {}",
            sink.count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = first.unwrap_or(started).elapsed().as_secs_f64();
    let (hwm, rss) = (kb(pid, "VmHWM"), kb(pid, "VmRSS"));
    let _ = child.kill();
    let _ = child.wait();
    (secs, hwm, rss)
}

async fn baseline(n: usize) -> f64 {
    let sink = SmtpSink::start();
    sink.discard_messages();
    let from: Mailbox = "小店 <shop@example.com>".parse().unwrap();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..CONCURRENCY {
        let (addr, from) = (sink.addr, from.clone());
        tasks.push(tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let mut c =
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &ClientId::default())
                    .await
                    .unwrap();
            for i in (w..n).step_by(CONCURRENCY) {
                let m = Message::builder()
                    .from(from.clone())
                    .to(format!("r{i:06}@example.com").parse().unwrap())
                    .subject("本周新品")
                    .body("春季新品，限时八折。".repeat(40))
                    .unwrap();
                c.send(m.envelope(), &m.formatted()).await.unwrap();
            }
            let _ = c.quit().await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bin = args
        .get(1)
        .expect("usage: broadcast <yiren binary> [N ...]")
        .clone();
    let sizes: Vec<i64> = if args.len() > 2 {
        args[2..].iter().map(|a| a.parse().expect("N")).collect()
    } else {
        vec![10_000, 100_000]
    };
    let raw = baseline(10_000).await;
    println!("baseline: lettre straight to the sink, {CONCURRENCY} connections: {raw:.0} msgs/s");
    for n in sizes {
        let (secs, hwm, rss) = pipeline(&bin, n).await;
        let rate = n as f64 / secs;
        println!(
            "broadcast to {n:>7}: {secs:6.1} s, {rate:5.0} msgs/s ({:.0} % of baseline), peak RSS {:.1} MB, RSS at end {:.1} MB",
            100.0 * rate / raw,
            hwm as f64 / 1024.0,
            rss as f64 / 1024.0
        );
    }
}
