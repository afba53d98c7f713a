//! Every push channel against its local fake: the request the real service expects (path, key,
//! body, signature checked by the fake with the service's own rule), success, a wrong key or a bad
//! signature (permanent), the service's rate-limit answer (transient, with its advised delay) and
//! an outage (transient).

use yiren_providers::http::{HttpClient, OutboundPolicy};
use yiren_providers::push::{send, PushError, PushMessage, PushTarget};
use yiren_testkit::fake_push::*;
use yiren_testkit::real_now;

fn http() -> HttpClient {
    HttpClient::new(OutboundPolicy {
        allow_private: true,
        ..Default::default()
    })
    .unwrap()
}

fn msg() -> PushMessage {
    PushMessage {
        title: "新订单 #1001".into(),
        body: "¥128.00 · 2 件".into(),
        url: Some("https://shop.example/admin/orders/1001".into()),
    }
}

fn targets(base: &str) -> Vec<(&'static str, PushTarget)> {
    let b = Some(base.to_string());
    vec![
        (
            "serverchan",
            PushTarget::ServerChan {
                sendkey: SC_TURBO_KEY.into(),
                base: b.clone(),
            },
        ),
        (
            "serverchan3",
            PushTarget::ServerChan {
                sendkey: SC3_KEY.into(),
                base: b.clone(),
            },
        ),
        (
            "pushdeer",
            PushTarget::PushDeer {
                pushkey: PUSHDEER_KEY.into(),
                base: b.clone(),
            },
        ),
        (
            "bark",
            PushTarget::Bark {
                device_key: BARK_KEY.into(),
                base: b.clone(),
            },
        ),
        (
            "wecom",
            PushTarget::WeCom {
                key: WECOM_KEY.into(),
                base: b.clone(),
            },
        ),
        (
            "feishu",
            PushTarget::Feishu {
                hook_url: format!("{base}/open-apis/bot/v2/hook/{FEISHU_TOKEN}"),
                secret: Some(FEISHU_SECRET.into()),
            },
        ),
        (
            "dingtalk",
            PushTarget::DingTalk {
                access_token: DINGTALK_TOKEN.into(),
                secret: Some(DINGTALK_SECRET.into()),
                base: b.clone(),
            },
        ),
        (
            "telegram",
            PushTarget::Telegram {
                token: TELEGRAM_TOKEN.into(),
                chat_id: "42".into(),
                base: b.clone(),
            },
        ),
        (
            "webhook",
            PushTarget::Webhook {
                url: format!("{base}/hook"),
                secret: WEBHOOK_SECRET.into(),
            },
        ),
    ]
}

#[tokio::test]
async fn every_channel_delivers_in_its_services_format() {
    let fake = FakePush::start().await;
    for (name, t) in targets(&fake.base) {
        send(&http(), &t, &msg(), real_now())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let got = fake.received();
    let names: Vec<&str> = got.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        names,
        [
            "serverchan",
            "serverchan3",
            "pushdeer",
            "bark",
            "wecom",
            "feishu",
            "dingtalk",
            "telegram",
            "webhook"
        ]
    );
    let find = |c: &str| got.iter().find(|(n, _)| n == c).unwrap().1.clone();
    assert_eq!(find("serverchan")["title"], "新订单 #1001");
    assert!(find("serverchan")["desp"]
        .as_str()
        .unwrap()
        .contains("shop.example"));
    assert_eq!(find("pushdeer")["text"], "新订单 #1001");
    assert_eq!(
        find("bark")["url"],
        "https://shop.example/admin/orders/1001"
    );
    assert!(find("wecom")["markdown"]["content"]
        .as_str()
        .unwrap()
        .contains("¥128.00"));
    assert!(find("feishu")["content"]["text"]
        .as_str()
        .unwrap()
        .starts_with("新订单"));
    assert_eq!(find("dingtalk")["markdown"]["title"], "新订单 #1001");
    assert_eq!(find("telegram")["chat_id"], "42");
    assert_eq!(find("webhook")["title"], "新订单 #1001");
}

#[tokio::test]
async fn wrong_keys_and_bad_signatures_are_permanent() {
    let fake = FakePush::start().await;
    let b = Some(fake.base.clone());
    let wrong = vec![
        PushTarget::ServerChan {
            sendkey: "SCTwrong".into(),
            base: b.clone(),
        },
        PushTarget::PushDeer {
            pushkey: "PDUwrong".into(),
            base: b.clone(),
        },
        PushTarget::Bark {
            device_key: "nope".into(),
            base: b.clone(),
        },
        PushTarget::WeCom {
            key: "nope".into(),
            base: b.clone(),
        },
        PushTarget::Feishu {
            hook_url: format!("{}/open-apis/bot/v2/hook/{FEISHU_TOKEN}", fake.base),
            secret: Some("not-the-secret".into()),
        },
        PushTarget::DingTalk {
            access_token: DINGTALK_TOKEN.into(),
            secret: Some("SECwrong".into()),
            base: b.clone(),
        },
        PushTarget::Telegram {
            token: "1:wrong".into(),
            chat_id: "42".into(),
            base: b.clone(),
        },
        PushTarget::Webhook {
            url: format!("{}/hook", fake.base),
            secret: "whsec_wrong".into(),
        },
    ];
    for t in wrong {
        match send(&http(), &t, &msg(), real_now()).await {
            Err(PushError::Permanent(_)) => {}
            other => panic!("{t:?}: {other:?}"),
        }
    }
    // A Feishu signature older than an hour is refused too.
    let (_, feishu) = targets(&fake.base).remove(5);
    assert!(matches!(
        send(&http(), &feishu, &msg(), real_now() - 2 * 3_600_000).await,
        Err(PushError::Permanent(_))
    ));
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn rate_limits_are_transient_with_the_services_advice() {
    let fake = FakePush::start().await;
    let by_name: std::collections::HashMap<&str, PushTarget> =
        targets(&fake.base).into_iter().collect();
    for (channel, advised_ms) in [
        ("wecom", Some(60_000)),
        ("feishu", Some(60_000)),
        ("dingtalk", Some(600_000)),
        ("telegram", Some(7_000)),
        ("webhook", Some(30_000)),
    ] {
        fake.rate_limit_next(channel, 1);
        match send(&http(), &by_name[channel], &msg(), real_now()).await {
            Err(PushError::Transient { retry_after_ms, .. }) => {
                assert_eq!(retry_after_ms, advised_ms, "{channel}")
            }
            other => panic!("{channel}: {other:?}"),
        }
        // The next try goes through.
        send(&http(), &by_name[channel], &msg(), real_now())
            .await
            .unwrap();
    }
    for channel in ["serverchan", "webhook"] {
        fake.down_next(channel, 1);
        assert!(
            matches!(
                send(&http(), &by_name[channel], &msg(), real_now()).await,
                Err(PushError::Transient { .. })
            ),
            "{channel}"
        );
    }
    // Nothing listening: transient.
    let gone = PushTarget::Webhook {
        url: "http://127.0.0.1:9/hook".into(),
        secret: "x".into(),
    };
    assert!(matches!(
        send(&http(), &gone, &msg(), real_now()).await,
        Err(PushError::Transient { .. })
    ));
}
