//! Alipay open platform (支付宝开放平台): 当面付 (a QR code on the order page — the product
//! Alipay opens to some individuals), 电脑网站支付 and 手机网站支付. Facts:
//! `shared/specs/payments.md` §2.5, checked against opendocs.alipay.com.
//!
//! - **Requests** go to the gateway (`…/gateway.do`) with the common parameters `app_id, method,
//!   format=JSON, charset=utf-8, sign_type=RSA2, timestamp` (GMT+8), `version=1.0`, `notify_url`,
//!   `biz_content` (JSON), and `sign`: every non-empty parameter but `sign` (`sign_type`
//!   included), sorted, `k=v&…` with raw values, SHA256withRSA (PKCS#1 v1.5) with the app's
//!   private key, base64.
//! - **Answers** are `{"<method>_response": {…}, "sign": "…"}`; the signature covers the exact
//!   text of the response node, checked with the Alipay public key before anything in it is used.
//! - `alipay.trade.precreate` gives `qr_code` (shown on the order page);
//!   `alipay.trade.page.pay` / `alipay.trade.wap.pay` are a signed GET to the gateway the customer
//!   is sent to, and come back to `return_url`.
//! - **Notifications** are POSTed forms; verified with `sign` and `sign_type` both left out
//!   (rsaCheckV1); `app_id` must be ours; `TRADE_SUCCESS`/`TRADE_FINISHED` paid,
//!   `WAIT_BUYER_PAY` waiting, `TRADE_CLOSED` failed; the reference is Alipay's `trade_no`. The
//!   answer must be exactly `success` (Alipay notifies 8 times over 25 hours otherwise).
//! - `alipay.trade.query` for reconciliation; `alipay.trade.refund` with `out_request_no` = our
//!   refund id, so a retry cannot refund twice.
//! - Yuan with two decimals; CNY only.

use base64::Engine as _;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private, Public};
use openssl::rsa::Rsa;
use openssl::sign::{Signer, Verifier};
use yiren_core::error::{DomainError, DomainResult};
use yiren_core::money;
use yiren_core::payment::settings::GatewayConfig;
use yiren_core::payment::{
    Ack, BoxFuture, Field, Instruction, Kind, Lookup, Outcome, PaymentGateway, PaymentRequest,
    RawNotification, RefundRequest, RefundResult, Rejected, Verified,
};
use yiren_providers::http::HttpClient;

use crate::{json_text, param, required};

/// The settings an Alipay gateway needs.
pub const KIND: Kind = Kind {
    kind: "alipay",
    fields: &[
        Field::text("gateway_url", "https://openapi.alipay.com/gateway.do"),
        Field::text("app_id", ""),
        Field::secret("private_key"),
        Field::text("alipay_public_key", ""),
        Field::choice("product", "precreate", &["precreate", "page", "wap"]),
    ],
};

/// An Alipay app.
pub struct Alipay {
    id: String,
    gateway: String,
    app_id: String,
    key: PKey<Private>,
    alipay_key: PKey<Public>,
    product: String,
    http: HttpClient,
}

fn unavailable(e: impl std::fmt::Display) -> DomainError {
    crate::unavailable("alipay", e)
}

/// DER bytes from a key as pasted: PEM (with or without its line breaks) or bare base64.
fn der_of(text: &str) -> Option<Vec<u8>> {
    // `-----BEGIN …-----` and `-----END …-----` are dropped wherever they are (a PEM pasted into
    // a one-line field loses its line breaks); what is left is the base64 body.
    // A marker is `BEGIN <label>` / `END <label>` between the dashes; base64 has no spaces, so
    // a body that happens to contain the letters "END" is not taken for one.
    let body: String = text
        .split("-----")
        .filter(|part| {
            let p = part.trim();
            !(p.starts_with("BEGIN ") || p.starts_with("END "))
        })
        .flat_map(|part| part.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// The app's private key: PKCS#8 or PKCS#1 (what Alipay's key tool writes), PEM or bare base64.
pub fn private_key(text: &str) -> Option<PKey<Private>> {
    let der = der_of(text)?;
    PKey::private_key_from_der(&der)
        .ok()
        .or_else(|| {
            Rsa::private_key_from_der(&der)
                .ok()
                .and_then(|r| PKey::from_rsa(r).ok())
        })
        .filter(|k| k.rsa().is_ok_and(|r| r.size() >= 256))
}

/// Alipay's public key: X.509 SubjectPublicKeyInfo or PKCS#1, PEM or bare base64.
pub fn public_key(text: &str) -> Option<PKey<Public>> {
    let der = der_of(text)?;
    PKey::public_key_from_der(&der)
        .ok()
        .or_else(|| {
            Rsa::public_key_from_der_pkcs1(&der)
                .ok()
                .and_then(|r| PKey::from_rsa(r).ok())
        })
        .filter(|k| k.rsa().is_ok_and(|r| r.size() >= 256))
}

/// `k=v&…` over the non-empty parameters not in `skip`, sorted by name.
pub fn content(params: &[(String, String)], skip: &[&str]) -> String {
    let mut p: Vec<&(String, String)> = params
        .iter()
        .filter(|(k, v)| !v.is_empty() && !skip.contains(&k.as_str()))
        .collect();
    p.sort_by(|a, b| a.0.cmp(&b.0));
    p.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// SHA256withRSA over `text`, base64.
pub fn rsa2_sign(key: &PKey<Private>, text: &str) -> String {
    let mut s = Signer::new(MessageDigest::sha256(), key).expect("an RSA key signs");
    s.update(text.as_bytes()).expect("in memory");
    base64::engine::general_purpose::STANDARD.encode(s.sign_to_vec().expect("an RSA key signs"))
}

/// Whether `sign` (base64) is Alipay's SHA256withRSA signature of `text`.
pub fn rsa2_verify(key: &PKey<Public>, text: &str, sign: &str) -> bool {
    let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(sign) else {
        return false;
    };
    Verifier::new(MessageDigest::sha256(), key)
        .and_then(|mut v| {
            v.update(text.as_bytes())?;
            v.verify(&sig)
        })
        .unwrap_or(false)
}

/// The exact text of the value under the top-level key `name` of a JSON object, as it was sent
/// (Alipay signs those bytes; re-serialising could change them). Strings and escapes are
/// skipped over, so braces inside them do not count.
pub fn raw_node<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\"");
    let at = body.find(&key)? + key.len();
    let rest = body[at..].trim_start().strip_prefix(':')?.trim_start();
    let start = body.len() - rest.len();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, c) in rest.char_indices() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' | '[' => depth += 1,
            '}' | ']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(&body[start..start + i + 1]);
                }
            }
            _ if depth == 0 => return None,
            _ => {}
        }
    }
    None
}

/// Now in Beijing time, as Alipay's `timestamp` wants it.
fn timestamp() -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::now_utc()
        .to_offset(time::macros::offset!(+8))
        .format(&fmt)
        .unwrap_or_default()
}

impl Alipay {
    /// From the owner's settings.
    pub fn from_config(c: &GatewayConfig, http: HttpClient) -> DomainResult<Alipay> {
        let gateway = c.field("gateway_url").trim().to_string();
        let ok = url::Url::parse(&gateway)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            && !gateway.contains(['?', '#']);
        if !ok {
            return Err(DomainError::invalid("gateway_url", "payments.url_invalid"));
        }
        let app_id = c.field("app_id").trim().to_string();
        if app_id.is_empty() || app_id.len() > 32 || !app_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DomainError::invalid("app_id", "payments.alipay_app_id"));
        }
        let key = private_key(&crate::secret(c, "private_key")?).ok_or(DomainError::invalid(
            "private_key",
            "payments.alipay_private_key",
        ))?;
        let alipay_key = public_key(c.field("alipay_public_key")).ok_or(DomainError::invalid(
            "alipay_public_key",
            "payments.alipay_public_key",
        ))?;
        Ok(Alipay {
            id: c.id.clone(),
            gateway,
            app_id,
            key,
            alipay_key,
            product: c.field("product").to_string(),
            http,
        })
    }

    /// The signed parameters of a call.
    fn signed(
        &self,
        method: &str,
        biz: serde_json::Value,
        extra: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = [
            ("app_id", self.app_id.as_str()),
            ("method", method),
            ("format", "JSON"),
            ("charset", "utf-8"),
            ("sign_type", "RSA2"),
            ("version", "1.0"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        p.push(("timestamp".into(), timestamp()));
        p.push(("biz_content".into(), biz.to_string()));
        let sign = rsa2_sign(&self.key, &content(&p, &["sign"]));
        p.push(("sign".into(), sign));
        p
    }

    /// Call a method; its response node, once its signature is checked.
    async fn call(
        &self,
        method: &str,
        biz: serde_json::Value,
        extra: &[(&str, &str)],
    ) -> DomainResult<serde_json::Value> {
        let form = self.signed(method, biz, extra);
        let rb = self
            .http
            .request(reqwest::Method::POST, &self.gateway)
            .map_err(unavailable)?
            .form(&form);
        let r = self.http.send(rb).await.map_err(unavailable)?;
        if r.status >= 500 {
            return Err(unavailable(format!("answered {}", r.status)));
        }
        let body = String::from_utf8(r.body).map_err(|_| unavailable("the answer is not UTF-8"))?;
        let name = format!("{}_response", method.replace('.', "_"));
        let node = raw_node(&body, &name)
            .ok_or_else(|| unavailable(format!("no {name} in the answer ({})", r.status)))?;
        let all: serde_json::Value =
            serde_json::from_str(&body).map_err(|_| unavailable("the answer is not JSON"))?;
        let v: serde_json::Value =
            serde_json::from_str(node).map_err(|_| unavailable("the answer is not JSON"))?;
        let sign = all["sign"].as_str().unwrap_or("");
        // Alipay leaves an error about the call itself (a bad app id, a bad signature) unsigned.
        if sign.is_empty() && json_text(&v, "code") == "40002" {
            return Err(unavailable(format!(
                "{} {}",
                json_text(&v, "msg"),
                json_text(&v, "sub_msg")
            )));
        }
        if !rsa2_verify(&self.alipay_key, node, sign) {
            return Err(unavailable(
                "the answer's signature is wrong (check the Alipay public key)",
            ));
        }
        Ok(v)
    }
}

impl PaymentGateway for Alipay {
    fn id(&self) -> &str {
        &self.id
    }

    fn accepts(&self, currency: &str) -> bool {
        currency == "CNY"
    }

    fn create<'a>(&'a self, req: &'a PaymentRequest) -> BoxFuture<'a, DomainResult<Instruction>> {
        Box::pin(async move {
            crate::only_cny(req)?;
            let mut biz = serde_json::json!({
                "out_trade_no": req.order_ref,
                "total_amount": money::format(req.amount, "CNY"),
                "subject": req.description,
                // As long as reconciliation keeps asking.
                "timeout_express": "2d",
            });
            if self.product == "precreate" {
                let notify = [("notify_url", req.notify_url.as_str())];
                let v = self.call("alipay.trade.precreate", biz, &notify).await?;
                let qr = json_text(&v, "qr_code");
                if json_text(&v, "code") != "10000" || qr.is_empty() {
                    return Err(unavailable(format!(
                        "alipay.trade.precreate {}: {} {}",
                        json_text(&v, "code"),
                        json_text(&v, "sub_code"),
                        json_text(&v, "sub_msg")
                    )));
                }
                return Ok(Instruction::Qr { payload: qr });
            }
            let (method, code) = if self.product == "wap" {
                ("alipay.trade.wap.pay", "QUICK_WAP_WAY")
            } else {
                ("alipay.trade.page.pay", "FAST_INSTANT_TRADE_PAY")
            };
            biz["product_code"] = code.into();
            let extra = [
                ("notify_url", req.notify_url.as_str()),
                ("return_url", req.return_url.as_str()),
            ];
            let q = serde_urlencoded::to_string(self.signed(method, biz, &extra))
                .map_err(unavailable)?;
            Ok(Instruction::Redirect {
                url: format!("{}?{q}", self.gateway),
            })
        })
    }

    fn verify(&self, raw: &RawNotification, _now_ms: i64) -> Result<Verified, Rejected> {
        let params = crate::notification_params(raw)?;
        let given = param(&params, "sign")
            .filter(|s| !s.is_empty())
            .ok_or(Rejected::Signature)?;
        if param(&params, "sign_type").is_some_and(|t| t != "RSA2") {
            return Err(Rejected::Signature);
        }
        if !rsa2_verify(
            &self.alipay_key,
            &content(&params, &["sign", "sign_type"]),
            given,
        ) {
            return Err(Rejected::Signature);
        }
        if param(&params, "app_id") != Some(self.app_id.as_str()) {
            return Err(Rejected::Merchant);
        }
        let amount = money::parse(required(&params, "total_amount")?, "CNY", "total_amount")
            .map_err(|_| Rejected::Malformed("total_amount is not an amount".into()))?;
        Ok(Verified {
            recurring: None,
            order_ref: required(&params, "out_trade_no")?.to_string(),
            reference: required(&params, "trade_no")?.to_string(),
            amount,
            currency: "CNY".into(),
            outcome: status(required(&params, "trade_status")?),
        })
    }

    fn ack(&self) -> Ack {
        Ack::text(200, "success")
    }

    fn nack(&self, retry: bool) -> Ack {
        Ack::text(if retry { 503 } else { 400 }, "fail")
    }

    fn query<'a>(&'a self, q: &'a Lookup) -> BoxFuture<'a, DomainResult<Option<Verified>>> {
        Box::pin(async move {
            let v = self
                .call(
                    "alipay.trade.query",
                    serde_json::json!({ "out_trade_no": q.order_ref }),
                    &[],
                )
                .await?;
            match json_text(&v, "code").as_str() {
                "10000" => {}
                "40004" if json_text(&v, "sub_code") == "ACQ.TRADE_NOT_EXIST" => return Ok(None),
                code => {
                    return Err(unavailable(format!(
                        "alipay.trade.query {code}: {}",
                        json_text(&v, "sub_msg")
                    )))
                }
            }
            let amount = money::parse(&json_text(&v, "total_amount"), "CNY", "total_amount")
                .map_err(|_| unavailable("total_amount is not an amount"))?;
            Ok(Some(Verified {
                recurring: None,
                order_ref: json_text(&v, "out_trade_no"),
                reference: json_text(&v, "trade_no"),
                amount,
                currency: "CNY".into(),
                outcome: status(&json_text(&v, "trade_status")),
            }))
        })
    }

    fn refunds(&self) -> bool {
        true
    }

    fn refund<'a>(&'a self, req: &'a RefundRequest) -> BoxFuture<'a, DomainResult<RefundResult>> {
        Box::pin(async move {
            let biz = serde_json::json!({
                "trade_no": req.payment_reference,
                "refund_amount": money::format(req.amount, "CNY"),
                "out_request_no": req.refund_ref,
                "refund_reason": req.reason,
            });
            let v = self.call("alipay.trade.refund", biz, &[]).await?;
            match json_text(&v, "code").as_str() {
                "10000" => Ok(RefundResult::Done {
                    reference: req.refund_ref.clone(),
                }),
                // The system is busy: the same out_request_no is sent again later.
                "20000" => Err(unavailable("alipay.trade.refund: service busy")),
                _ => Ok(RefundResult::Refused {
                    reason: format!("{} {}", json_text(&v, "sub_code"), json_text(&v, "sub_msg")),
                }),
            }
        })
    }
}

/// A trade status as an outcome.
fn status(s: &str) -> Outcome {
    match s {
        "TRADE_SUCCESS" | "TRADE_FINISHED" => Outcome::Paid,
        "TRADE_CLOSED" => Outcome::Failed,
        _ => Outcome::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact text of the response node, whatever it holds: nested objects, braces and
    /// escaped quotes inside strings, spaces around the colon.
    #[test]
    fn the_response_node_is_cut_out_as_sent() {
        let body = r#"{"alipay_trade_query_response" : {"code":"10000","msg":"a \"}\" b","x":{"y":[1,{}]}},"sign":"S"}"#;
        assert_eq!(
            raw_node(body, "alipay_trade_query_response"),
            Some(r#"{"code":"10000","msg":"a \"}\" b","x":{"y":[1,{}]}}"#)
        );
        assert_eq!(raw_node(body, "missing"), None);
        assert_eq!(
            raw_node(r#"{"a_response":{"code":"1""#, "a_response"),
            None,
            "cut short"
        );
        assert_eq!(
            raw_node(r#"{"a_response":"text"}"#, "a_response"),
            None,
            "not an object"
        );
    }

    /// Requests sign everything but `sign`; notifications are checked without `sign_type` too;
    /// empty values are left out; names sorted; values raw.
    #[test]
    fn the_signed_text_follows_the_rule() {
        let p: Vec<(String, String)> = [
            ("sign_type", "RSA2"),
            ("b", "中 文"),
            ("sign", "x"),
            ("a", "1"),
            ("empty", ""),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(content(&p, &["sign"]), "a=1&b=中 文&sign_type=RSA2");
        assert_eq!(content(&p, &["sign", "sign_type"]), "a=1&b=中 文");
    }

    /// Keys as owners paste them — PKCS#1 or PKCS#8 PEM, bare base64, line breaks lost — are
    /// read; what is signed with the private key verifies with the public one, and nothing else.
    #[test]
    fn keys_in_every_pasted_form_sign_and_verify() {
        let rsa = Rsa::generate(2048).unwrap();
        let pkcs1 = String::from_utf8(rsa.private_key_to_pem().unwrap()).unwrap();
        let k = PKey::from_rsa(rsa).unwrap();
        let pkcs8 = String::from_utf8(k.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let bare_private =
            base64::engine::general_purpose::STANDARD.encode(k.private_key_to_der().unwrap());
        let spki = base64::engine::general_purpose::STANDARD.encode(k.public_key_to_der().unwrap());
        let pem_public = String::from_utf8(k.public_key_to_pem().unwrap()).unwrap();
        for text in [&pkcs1, &pkcs8, &bare_private, &pkcs1.replace('\n', "")] {
            let private = private_key(text).expect("readable");
            let public = public_key(&spki).unwrap();
            let sig = rsa2_sign(&private, "a=1&b=2");
            assert!(rsa2_verify(&public, "a=1&b=2", &sig));
            assert!(!rsa2_verify(&public, "a=1&b=3", &sig));
            assert!(!rsa2_verify(&public, "a=1&b=2", "not base64!"));
        }
        assert!(public_key(&pem_public).is_some());
        // A body whose base64 text happens to hold "END" or "BEGI" (about one key in 150) is
        // still read.
        let raw = base64::engine::general_purpose::STANDARD
            .decode("ENDABEGI")
            .unwrap();
        assert_eq!(
            der_of("-----BEGIN X-----\nENDABEGI\n-----END X-----"),
            Some(raw.clone())
        );
        assert_eq!(
            der_of("-----BEGIN X-----ENDABEGI-----END X-----"),
            Some(raw)
        );
        assert!(private_key("not a key").is_none() && public_key("bm90IGEga2V5").is_none());
        let small = PKey::from_rsa(Rsa::generate(1024).unwrap()).unwrap();
        let small = String::from_utf8(small.private_key_to_pem_pkcs8().unwrap()).unwrap();
        assert!(
            private_key(&small).is_none(),
            "RSA2 wants 2048 bits or more"
        );
    }
}
