//! `auth-timing`: RELIABILITY AUTH-1/AUTH-2 figures — argon2id hash time (20 hashes) and the
//! median sign-in time for an unknown email beside a wrong password (the dummy hash should make
//! them equal), and the peak extra memory of 100 concurrent sign-ins. Prints figures; asserts nothing.

use std::sync::Arc;
use std::time::Instant;

use yiren_core::auth::{self, AuthPolicy, Role};
use yiren_core::password::Hasher;
use yiren_core::{Ctx, Rng, SystemClock};
use yiren_store::engine::DbOptions;
use yiren_store::Db;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let samples: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let dir = std::env::temp_dir().join(format!("yiren-auth-timing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = Db::connect(
        &format!("sqlite://{}/t.db", dir.display()),
        &DbOptions {
            create_sqlite: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    db.migrate().await.unwrap();
    let ctx = Ctx {
        db,
        clock: Arc::new(SystemClock),
        rng: Rng::os(),
        hasher: Hasher::default(),
        auth: AuthPolicy::default(),
        keys: yiren_core::keys::Keys::from_bytes([0; 32]),
        gateways: Default::default(),
        templates_dir: None,
        settings_cache: Default::default(),
        catalog_cache: Default::default(),
        together: Default::default(),
    };

    let mut hashes = Vec::new();
    for i in 0..20 {
        let t = Instant::now();
        ctx.hasher
            .hash(&format!("benchmark password {i}"), [i as u8; 16])
            .await
            .unwrap();
        hashes.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!("argon2id (m=19456, t=2, p=1) hash: median {:.0} ms, max {:.0} ms over 20 (target <= 250 ms)", median(hashes.clone()), hashes.iter().cloned().fold(0.0, f64::max));

    let mut tx = ctx.db.begin().await.unwrap();
    auth::create_staff(
        &ctx,
        &mut tx,
        "owner@example.com",
        "Owner",
        "a long owner passphrase",
        Role::Owner,
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..samples {
        // A fresh client address per attempt keeps throttling out of the measurement.
        let ip = format!("10.{}.{}.{}", i / 65536 % 256, i / 256 % 256, i % 256);
        let t = Instant::now();
        let _ = auth::sign_in(&ctx, "owner@example.com", "wrong password!!", &ip, None).await;
        wrong.push(t.elapsed().as_secs_f64() * 1000.0);
        let ip = format!("11.{}.{}.{}", i / 65536 % 256, i / 256 % 256, i % 256);
        let t = Instant::now();
        let _ = auth::sign_in(
            &ctx,
            &format!("nobody{i}@example.com"),
            "wrong password!!",
            &ip,
            None,
        )
        .await;
        unknown.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (w, u) = (median(wrong), median(unknown));
    println!("sign-in, wrong password: median {w:.1} ms; unknown email: median {u:.1} ms; difference {:.1} % over {samples} samples each (target < 5 %)", 100.0 * (w - u).abs() / w.max(u));

    // The same for customers (password sign-in): a customer with a password, one without, and
    // an unknown address must all take the same work.
    let mut tx = ctx.db.begin().await.unwrap();
    yiren_core::customer::create(
        &ctx,
        &mut tx,
        &yiren_core::customer::NewAccount {
            email: Some("buyer@example.com"),
            email_verified: true,
            name: "Buyer",
            password: Some("a long buyer passphrase"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..samples {
        let ip = format!("13.{}.{}.{}", i / 65536 % 256, i / 256 % 256, i % 256);
        let t = Instant::now();
        let _ = yiren_core::customer::sign_in_password(
            &ctx,
            "buyer@example.com",
            "wrong password!!",
            &ip,
            None,
        )
        .await;
        wrong.push(t.elapsed().as_secs_f64() * 1000.0);
        let ip = format!("14.{}.{}.{}", i / 65536 % 256, i / 256 % 256, i % 256);
        let t = Instant::now();
        let _ = yiren_core::customer::sign_in_password(
            &ctx,
            &format!("nobody{i}@example.com"),
            "wrong password!!",
            &ip,
            None,
        )
        .await;
        unknown.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (w, u) = (median(wrong), median(unknown));
    println!("customer sign-in, wrong password: median {w:.1} ms; unknown email: median {u:.1} ms; difference {:.1} % over {samples} samples each (target < 5 %)", 100.0 * (w - u).abs() / w.max(u));

    // 100 sign-ins at once: the semaphore keeps argon2's 19 MiB per hash bounded.
    let before = rss_kib();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let ip = format!("12.0.{}.{}", i / 256, i % 256);
            let _ = auth::sign_in(
                &ctx,
                "owner@example.com",
                "a long owner passphrase",
                &ip,
                None,
            )
            .await;
        }));
    }
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let watcher = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        })
    };
    let t = Instant::now();
    for task in tasks {
        task.await.unwrap();
    }
    watcher.abort();
    let extra = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(before);
    println!(
        "100 concurrent sign-ins: {:.0} ms in all, peak extra RSS {:.1} MB (target < 200 MB)",
        t.elapsed().as_secs_f64() * 1000.0,
        extra as f64 / 1024.0
    );
    std::fs::remove_dir_all(&dir).ok();
}
