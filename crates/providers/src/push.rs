//! Push channels an individual can use without a company: Server酱 (Turbo and ³), PushDeer, Bark,
//! WeCom group robot, Feishu bot (signed), DingTalk robot (signed), Telegram bot, and a generic
//! signed webhook. [`send`] speaks each service's request format and reads its answer into
//! success, a transient failure (with the service's advised delay when it gives one) or a
//! permanent failure. Every request goes through the guarded [`HttpClient`].
//!
//! Protocol facts: ../shared/specs/reach.md. Base URLs default to the public services and can be
//! pointed at a self-hosted server (PushDeer, Bark) or a test fake.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::http::{Fetched, HttpClient, OutboundError};

/// Where a push goes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PushTarget {
    /// Server酱: a Turbo key (`SCT…`) or a Server酱³ key (`sctp{uid}t…`), told apart by the key.
    ServerChan {
        sendkey: String,
        #[serde(default)]
        base: Option<String>,
    },
    /// PushDeer (cloud or self-hosted).
    PushDeer {
        pushkey: String,
        #[serde(default)]
        base: Option<String>,
    },
    /// Bark (cloud or self-hosted bark-server).
    Bark {
        device_key: String,
        #[serde(default)]
        base: Option<String>,
    },
    /// WeCom (企业微信) group robot.
    WeCom {
        key: String,
        #[serde(default)]
        base: Option<String>,
    },
    /// Feishu/Lark custom bot, signed when a secret is set.
    Feishu {
        hook_url: String,
        #[serde(default)]
        secret: Option<String>,
    },
    /// DingTalk custom robot, signed when a secret is set.
    DingTalk {
        access_token: String,
        #[serde(default)]
        secret: Option<String>,
        #[serde(default)]
        base: Option<String>,
    },
    /// Telegram bot.
    Telegram {
        token: String,
        chat_id: String,
        #[serde(default)]
        base: Option<String>,
    },
    /// Any URL: a JSON POST signed with HMAC-SHA256 (`Yiren-Signature: t=…,v1=…`).
    Webhook { url: String, secret: String },
}

/// What to push.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PushMessage {
    pub title: String,
    /// Plain text or light Markdown.
    pub body: String,
    /// A link to open, if any.
    #[serde(default)]
    pub url: Option<String>,
}

/// Why a push failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PushError {
    /// Worth retrying; `retry_after_ms` is the service's own advice when it gave one.
    #[error("{message}")]
    Transient {
        message: String,
        retry_after_ms: Option<i64>,
    },
    /// Retrying will not help (a wrong key, a bad signature, a refused request).
    #[error("{0}")]
    Permanent(String),
}

fn transient(message: impl Into<String>) -> PushError {
    PushError::Transient {
        message: message.into(),
        retry_after_ms: None,
    }
}

impl From<OutboundError> for PushError {
    fn from(e: OutboundError) -> Self {
        match e {
            OutboundError::Forbidden(_) | OutboundError::BadUrl(_) => {
                PushError::Permanent(e.to_string())
            }
            e => transient(e.to_string()),
        }
    }
}

fn base<'a>(b: &'a Option<String>, default: &'a str) -> &'a str {
    b.as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or(default)
        .trim_end_matches('/')
}

/// HMAC-SHA256 as bytes.
fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

/// Feishu: base64(HMAC-SHA256(key = "{timestamp}\n{secret}", message = "")).
pub fn feishu_sign(timestamp_secs: i64, secret: &str) -> String {
    let key = format!("{timestamp_secs}\n{secret}");
    base64::engine::general_purpose::STANDARD.encode(hmac(key.as_bytes(), b""))
}

/// DingTalk: base64(HMAC-SHA256(key = secret, message = "{timestamp_ms}\n{secret}")), to be
/// URL-encoded in the query.
pub fn dingtalk_sign(timestamp_ms: i64, secret: &str) -> String {
    let msg = format!("{timestamp_ms}\n{secret}");
    base64::engine::general_purpose::STANDARD.encode(hmac(secret.as_bytes(), msg.as_bytes()))
}

/// The generic webhook's signature header value for a body sent at `timestamp_secs`.
pub fn webhook_signature(secret: &str, timestamp_secs: i64, body: &[u8]) -> String {
    let mut msg = format!("{timestamp_secs}.").into_bytes();
    msg.extend_from_slice(body);
    format!(
        "t={timestamp_secs},v1={}",
        hex::encode(hmac(secret.as_bytes(), &msg))
    )
}

/// The Server酱³ uid inside a key (`sctp{uid}t…`).
fn sc3_uid(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("sctp")?;
    let end = rest.find('t')?;
    let uid = &rest[..end];
    (!uid.is_empty() && uid.chars().all(|c| c.is_ascii_digit())).then_some(uid)
}

/// HTTP-level outcome shared by every channel: 429 and 5xx are transient.
fn http_level(f: &Fetched) -> Result<(), PushError> {
    match f.status {
        200..=299 => Ok(()),
        429 => Err(PushError::Transient {
            message: "rate limited (429)".into(),
            retry_after_ms: f.retry_after_ms(),
        }),
        s if s >= 500 => Err(transient(format!("server error {s}"))),
        s => Err(PushError::Permanent(format!(
            "refused with {s}: {}",
            String::from_utf8_lossy(&f.body)
                .chars()
                .take(200)
                .collect::<String>()
        ))),
    }
}

fn json_of(f: &Fetched) -> Result<serde_json::Value, PushError> {
    serde_json::from_slice(&f.body)
        .map_err(|_| transient(format!("unreadable answer (HTTP {})", f.status)))
}

/// Read a `{code|errcode: N, msg|message|errmsg: …}` answer: `ok` codes succeed, `rate` codes are
/// transient with `rate_ms` advice, anything else is permanent.
fn coded(
    v: &serde_json::Value,
    field: &str,
    ok: i64,
    rate: &[i64],
    rate_ms: i64,
) -> Result<(), PushError> {
    let code = v.get(field).and_then(|c| c.as_i64());
    let msg = ["msg", "message", "errmsg", "error"]
        .iter()
        .find_map(|k| v.get(*k).and_then(|m| m.as_str()))
        .unwrap_or("")
        .to_string();
    match code {
        Some(c) if c == ok => Ok(()),
        Some(c) if rate.contains(&c) => Err(PushError::Transient {
            message: format!("rate limited ({c}: {msg})"),
            retry_after_ms: Some(rate_ms),
        }),
        Some(c) => Err(PushError::Permanent(format!("error {c}: {msg}"))),
        None => Err(transient(format!("answer without {field}"))),
    }
}

/// Send one push.
pub async fn send(
    http: &HttpClient,
    target: &PushTarget,
    msg: &PushMessage,
    now_ms: i64,
) -> Result<(), PushError> {
    let body_with_link = match &msg.url {
        Some(u) => format!("{}\n\n{u}", msg.body),
        None => msg.body.clone(),
    };
    match target {
        PushTarget::ServerChan { sendkey, base: b } => {
            let url = match sc3_uid(sendkey) {
                Some(uid) => {
                    let default = format!("https://{uid}.push.ft07.com");
                    format!("{}/send/{sendkey}.send", base(b, &default))
                }
                None => format!("{}/{sendkey}.send", base(b, "https://sctapi.ftqq.com")),
            };
            let rb = http
                .request(reqwest::Method::POST, &url)?
                .json(&serde_json::json!({"title": msg.title, "desp": body_with_link}));
            let f = http.send(rb).await?;
            http_level(&f)?;
            coded(&json_of(&f)?, "code", 0, &[], 0)
        }
        PushTarget::PushDeer { pushkey, base: b } => {
            let url = format!("{}/message/push", base(b, "https://api2.pushdeer.com"));
            let rb = http.request(reqwest::Method::POST, &url)?.form(&[
                ("pushkey", pushkey.as_str()),
                ("text", msg.title.as_str()),
                ("desp", body_with_link.as_str()),
                ("type", "markdown"),
            ]);
            let f = http.send(rb).await?;
            http_level(&f)?;
            coded(&json_of(&f)?, "code", 0, &[], 0)
        }
        PushTarget::Bark {
            device_key,
            base: b,
        } => {
            let url = format!("{}/push", base(b, "https://api.day.app"));
            let mut payload =
                serde_json::json!({"device_key": device_key, "title": msg.title, "body": msg.body});
            if let Some(u) = &msg.url {
                payload["url"] = u.clone().into();
            }
            let rb = http.request(reqwest::Method::POST, &url)?.json(&payload);
            let f = http.send(rb).await?;
            http_level(&f)?;
            coded(&json_of(&f)?, "code", 200, &[], 0)
        }
        PushTarget::WeCom { key, base: b } => {
            let url = format!(
                "{}/cgi-bin/webhook/send?key={}",
                base(b, "https://qyapi.weixin.qq.com"),
                urlencode(key)
            );
            let content = format!("**{}**\n{}", msg.title, body_with_link);
            let rb = http.request(reqwest::Method::POST, &url)?.json(
                &serde_json::json!({"msgtype": "markdown", "markdown": {"content": content}}),
            );
            let f = http.send(rb).await?;
            http_level(&f)?;
            // 45009: over 20 messages a minute for this robot.
            coded(&json_of(&f)?, "errcode", 0, &[45009], 60_000)
        }
        PushTarget::Feishu { hook_url, secret } => {
            let mut payload = serde_json::json!({"msg_type": "text", "content": {"text": format!("{}\n{}", msg.title, body_with_link)}});
            if let Some(s) = secret.as_deref().filter(|s| !s.is_empty()) {
                let ts = now_ms / 1000;
                payload["timestamp"] = ts.to_string().into();
                payload["sign"] = feishu_sign(ts, s).into();
            }
            let rb = http
                .request(reqwest::Method::POST, hook_url)?
                .json(&payload);
            let f = http.send(rb).await?;
            http_level(&f)?;
            // 9499 / 11232: too many requests.
            coded(&json_of(&f)?, "code", 0, &[9499, 11232], 60_000)
        }
        PushTarget::DingTalk {
            access_token,
            secret,
            base: b,
        } => {
            let mut url = format!(
                "{}/robot/send?access_token={}",
                base(b, "https://oapi.dingtalk.com"),
                urlencode(access_token)
            );
            if let Some(s) = secret.as_deref().filter(|s| !s.is_empty()) {
                url.push_str(&format!(
                    "&timestamp={now_ms}&sign={}",
                    urlencode(&dingtalk_sign(now_ms, s))
                ));
            }
            let rb = http.request(reqwest::Method::POST, &url)?.json(&serde_json::json!({
                "msgtype": "markdown", "markdown": {"title": msg.title, "text": format!("### {}\n{}", msg.title, body_with_link)}
            }));
            let f = http.send(rb).await?;
            http_level(&f)?;
            // 130101: sending too fast; the robot is throttled for 10 minutes.
            coded(&json_of(&f)?, "errcode", 0, &[130101], 10 * 60_000)
        }
        PushTarget::Telegram {
            token,
            chat_id,
            base: b,
        } => {
            let url = format!(
                "{}/bot{token}/sendMessage",
                base(b, "https://api.telegram.org")
            );
            let text: String = format!("{}\n\n{}", msg.title, body_with_link)
                .chars()
                .take(4096)
                .collect();
            let rb = http
                .request(reqwest::Method::POST, &url)?
                .json(&serde_json::json!({"chat_id": chat_id, "text": text}));
            let f = http.send(rb).await?;
            let v = json_of(&f);
            if f.status == 429 {
                let after = v
                    .as_ref()
                    .ok()
                    .and_then(|v| v.pointer("/parameters/retry_after"))
                    .and_then(|r| r.as_i64());
                return Err(PushError::Transient {
                    message: "rate limited (429)".into(),
                    retry_after_ms: after.map(|s| s * 1000),
                });
            }
            http_level(&f)?;
            match v?.get("ok").and_then(|o| o.as_bool()) {
                Some(true) => Ok(()),
                _ => Err(PushError::Permanent("Telegram answered ok=false".into())),
            }
        }
        PushTarget::Webhook { url, secret } => {
            let body = serde_json::to_vec(&serde_json::json!({
                "title": msg.title, "body": msg.body, "url": msg.url, "sent_at": now_ms / 1000,
            }))
            .unwrap_or_default();
            let sig = webhook_signature(secret, now_ms / 1000, &body);
            let rb = http
                .request(reqwest::Method::POST, url)?
                .header("content-type", "application/json")
                .header("yiren-signature", sig)
                .body(body);
            let f = http.send(rb).await?;
            http_level(&f)
        }
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_known_answers() {
        // Computed independently (Python's hmac) from each service's rule: Feishu keys the HMAC
        // with "timestamp\nsecret" over an empty message; DingTalk keys it with the secret over
        // "timestamp_ms\nsecret".
        assert_eq!(
            feishu_sign(1_700_000_000, "sec"),
            "ttGYnPblC3CcNExnS7y5igm57JhpqZJtHpJ+TURiUeg="
        );
        assert_eq!(
            dingtalk_sign(1_700_000_000_000, "sec"),
            "2Bn+1b9JMbAnwLtaHqn8F5V8vOWoUG9M7qcsi2p+u90="
        );
        assert_eq!(
            webhook_signature("k", 5, b"{}"),
            "t=5,v1=d066254199a6f40d63f96c33c549959d7a371ef849d13d2a85811237089b2d00"
        );
    }

    #[test]
    fn server_chan_keys_are_told_apart() {
        assert_eq!(sc3_uid("sctp1234tABCDEF"), Some("1234"));
        assert_eq!(sc3_uid("SCT12345ABCDE"), None);
        assert_eq!(sc3_uid("sctptABC"), None);
    }
}
