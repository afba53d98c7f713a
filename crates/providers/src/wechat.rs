//! WeChat 公众号 (official account) message callbacks: the signature check, the inbound XML, the
//! passive text reply, and callback forwarding.
//!
//! Facts (WeChat's message API): every callback carries `signature`, `timestamp` and `nonce` in the
//! query; `signature = sha1(sort([token, timestamp, nonce]).join(""))`. The configuration check is a
//! GET that must echo `echostr`. Messages are POSTed as XML; a passive reply is an XML text message
//! sent back within 5 s; WeChat retries a message it got no answer to, up to 3 times, with the same
//! `MsgId`.

use serde::Deserialize;
use sha1::{Digest, Sha1};

use crate::http::HttpClient;

/// The signature WeChat computes for a callback.
pub fn signature(token: &str, timestamp: &str, nonce: &str) -> String {
    let mut parts = [token, timestamp, nonce];
    parts.sort_unstable();
    hex::encode(Sha1::digest(parts.concat().as_bytes()))
}

/// Check a callback's signature (constant time).
pub fn verify(token: &str, timestamp: &str, nonce: &str, sig: &str) -> bool {
    let expected = signature(token, timestamp, nonce);
    expected.len() == sig.len()
        && expected
            .bytes()
            .zip(sig.to_ascii_lowercase().bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// An inbound message (the fields we use).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct Inbound {
    /// The account's id.
    #[serde(rename = "ToUserName")]
    pub to_user: String,
    /// The sender's OpenID.
    #[serde(rename = "FromUserName")]
    pub from_user: String,
    #[serde(rename = "CreateTime")]
    pub create_time: i64,
    /// `text`, `event`, `image`, ...
    #[serde(rename = "MsgType")]
    pub msg_type: String,
    #[serde(rename = "Content")]
    pub content: String,
    #[serde(rename = "MsgId")]
    pub msg_id: String,
    /// For events: `subscribe`, `unsubscribe`, `SCAN`, ...
    #[serde(rename = "Event")]
    pub event: String,
}

/// Parse an inbound message; None when the body is not a message.
pub fn parse(body: &[u8]) -> Option<Inbound> {
    if body.len() > 64 * 1024 {
        return None;
    }
    let s = std::str::from_utf8(body).ok()?;
    // No DTDs or entities beyond XML's five: quick-xml does not expand external entities.
    if s.contains("<!DOCTYPE") || s.contains("<!ENTITY") {
        return None;
    }
    let m: Inbound = quick_xml::de::from_str(s).ok()?;
    (!m.from_user.is_empty() && !m.msg_type.is_empty()).then_some(m)
}

fn cdata(s: &str) -> String {
    format!("<![CDATA[{}]]>", s.replace("]]>", "]]]]><![CDATA[>"))
}

/// A passive text reply to `to` (the sender's OpenID) from the account `from`.
pub fn text_reply(to: &str, from: &str, now_secs: i64, content: &str) -> String {
    format!(
        "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{now_secs}</CreateTime><MsgType>{}</MsgType><Content>{}</Content></xml>",
        cdata(to),
        cdata(from),
        cdata("text"),
        cdata(content)
    )
}

/// Offer a callback to another site first (one 公众号 serving several sites). Returns the target's
/// reply when it handled the message: a 2xx answer with a non-empty body (which may be WeChat's
/// `success`). Anything else — an error, a timeout, a non-2xx answer, an empty body — means the
/// message is handled here.
pub async fn forward(http: &HttpClient, target: &str, query: &str, body: &[u8]) -> Option<Vec<u8>> {
    let url = if query.is_empty() {
        target.to_string()
    } else if target.contains('?') {
        format!("{target}&{query}")
    } else {
        format!("{target}?{query}")
    };
    let rb = http
        .request(reqwest::Method::POST, &url)
        .ok()?
        .header("content-type", "text/xml; charset=utf-8")
        .timeout(std::time::Duration::from_secs(3))
        .body(body.to_vec());
    match http.send(rb).await {
        Ok(f) if (200..300).contains(&f.status) && !f.body.iter().all(u8::is_ascii_whitespace) => {
            Some(f.body)
        }
        Ok(f) => {
            tracing::debug!(
                status = f.status,
                "forward target did not handle the message"
            );
            None
        }
        Err(e) => {
            tracing::info!(error = %e, "forward target unreachable; handling here");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_sha1_of_the_sorted_parts() {
        // sorted: "1409304348", "nonce", "token"
        let expected = hex::encode(Sha1::digest(b"1409304348noncetoken"));
        assert_eq!(signature("token", "1409304348", "nonce"), expected);
        assert!(verify(
            "token",
            "1409304348",
            "nonce",
            &expected.to_uppercase()
        ));
        assert!(!verify("token", "1409304349", "nonce", &expected));
        assert!(!verify("token", "1409304348", "nonce", ""));
    }

    #[test]
    fn messages_parse_and_replies_escape_cdata() {
        let xml = b"<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oABC]]></FromUserName><CreateTime>1348831860</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[123456]]></Content><MsgId>1234567890123456</MsgId></xml>";
        let m = parse(xml).unwrap();
        assert_eq!(
            (m.from_user.as_str(), m.content.as_str(), m.msg_id.as_str()),
            ("oABC", "123456", "1234567890123456")
        );
        assert!(parse(b"<xml><!DOCTYPE x [<!ENTITY a 'b'>]></xml>").is_none());
        assert!(parse(b"not xml").is_none());
        let r = text_reply("oABC", "gh_1", 1, "a]]>b");
        assert!(r.contains("<Content><![CDATA[a]]]]><![CDATA[>b]]></Content>"));
    }
}

/// Why a 公众号 API call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The access token is invalid or expired (40001, 40014, 42001): fetch a new one and retry.
    #[error("access token rejected ({0})")]
    TokenRejected(i64),
    /// Worth retrying later; `retry_after_ms` for rate limits (45009).
    #[error("{message}")]
    Transient {
        message: String,
        retry_after_ms: Option<i64>,
    },
    /// Retrying cannot help (wrong appid/secret, the user unfollowed — 43004, a bad template).
    #[error("{0}")]
    Permanent(String),
}

fn api_error(v: &serde_json::Value) -> Option<ApiError> {
    let code = v["errcode"].as_i64().unwrap_or(0);
    if code == 0 {
        return None;
    }
    let msg = format!(
        "WeChat errcode {code}: {}",
        v["errmsg"].as_str().unwrap_or("")
    );
    Some(match code {
        40001 | 40014 | 42001 => ApiError::TokenRejected(code),
        -1 => ApiError::Transient {
            message: msg,
            retry_after_ms: None,
        },
        45009 | 45047 => ApiError::Transient {
            message: msg,
            retry_after_ms: Some(60_000),
        },
        _ => ApiError::Permanent(msg),
    })
}

async fn call(
    http: &HttpClient,
    rb: Result<reqwest::RequestBuilder, crate::http::OutboundError>,
) -> Result<serde_json::Value, ApiError> {
    let rb = rb.map_err(|e| ApiError::Permanent(e.to_string()))?;
    let r = http.send(rb).await.map_err(|e| ApiError::Transient {
        message: e.to_string(),
        retry_after_ms: None,
    })?;
    if r.status >= 500 || r.status == 429 {
        return Err(ApiError::Transient {
            message: format!("WeChat API answered {}", r.status),
            retry_after_ms: None,
        });
    }
    let v: serde_json::Value =
        serde_json::from_slice(&r.body).map_err(|_| ApiError::Transient {
            message: format!("WeChat API answered {} with no JSON", r.status),
            retry_after_ms: None,
        })?;
    match api_error(&v) {
        Some(e) => Err(e),
        None => Ok(v),
    }
}

/// Fetch an access token (`GET /cgi-bin/token`): `(token, expires_in seconds)`. `base` is
/// `https://api.weixin.qq.com` (or a test server).
pub async fn access_token(
    http: &HttpClient,
    base: &str,
    appid: &str,
    secret: &str,
) -> Result<(String, i64), ApiError> {
    let mut u = url::Url::parse(&format!("{}/cgi-bin/token", base.trim_end_matches('/')))
        .map_err(|e| ApiError::Permanent(e.to_string()))?;
    u.query_pairs_mut()
        .append_pair("grant_type", "client_credential")
        .append_pair("appid", appid)
        .append_pair("secret", secret);
    let v = call(http, http.request(reqwest::Method::GET, u.as_str())).await?;
    match (v["access_token"].as_str(), v["expires_in"].as_i64()) {
        (Some(t), Some(e)) => Ok((t.to_string(), e)),
        _ => Err(ApiError::Permanent("no access_token in the answer".into())),
    }
}

/// Send a template message (`POST /cgi-bin/message/template/send`) to a follower's openid.
pub async fn send_template(
    http: &HttpClient,
    base: &str,
    token: &str,
    openid: &str,
    template_id: &str,
    url: Option<&str>,
    fields: &[(&str, &str)],
) -> Result<(), ApiError> {
    let mut u = url::Url::parse(&format!(
        "{}/cgi-bin/message/template/send",
        base.trim_end_matches('/')
    ))
    .map_err(|e| ApiError::Permanent(e.to_string()))?;
    u.query_pairs_mut().append_pair("access_token", token);
    let data: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::json!({ "value": v })))
        .collect();
    let mut body = serde_json::json!({"touser": openid, "template_id": template_id, "data": data});
    if let Some(link) = url {
        body["url"] = serde_json::Value::String(link.to_string());
    }
    let rb = http
        .request(reqwest::Method::POST, u.as_str())
        .map(|rb| rb.json(&body));
    call(http, rb).await.map(|_| ())
}
