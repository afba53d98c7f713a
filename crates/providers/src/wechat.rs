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
