//! WeChat Pay APIv3 (微信支付), Native payments — for owners with a merchant account of their own
//! (an enterprise or 个体工商户; individuals reach WeChat Pay through XorPay instead). Facts:
//! `shared/specs/payments.md` §2.6, checked against pay.weixin.qq.com/doc/v3.
//!
//! - **Requests** carry `Authorization: WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",
//!   signature="…",timestamp="…",serial_no="…"`, the signature SHA256withRSA with the merchant
//!   key over `METHOD\nPATH?QUERY\nTIMESTAMP\nNONCE\nBODY\n`, base64.
//! - **Answers and notifications** are signed by WeChat Pay over `TIMESTAMP\nNONCE\nBODY\n`
//!   (`Wechatpay-Timestamp`, `-Nonce`, `-Signature`, `-Serial`), checked with the WeChat Pay
//!   public key whose id (`PUB_KEY_ID_…`) the owner enters; timestamps more than 5 minutes off
//!   are refused (a replay). Probes signed `WECHATPAY/SIGNTEST/…` fail the check, as they should.
//! - **Native order**: `POST v3/pay/transactions/native` `{appid, mchid, description,
//!   out_trade_no, notify_url, amount: {total (fen), currency: CNY}}` → `{code_url}`, the QR
//!   code shown on the order page.
//! - **Notification**: JSON whose `resource` is AEAD_AES_256_GCM-encrypted with the APIv3 key
//!   (`nonce`, `associated_data`, base64 `ciphertext` with the tag at its end); inside, the
//!   transaction: `mchid` (must be ours), `out_trade_no`, `transaction_id` (the reference),
//!   `trade_state` (`SUCCESS` paid; `NOTPAY`, `USERPAYING` waiting; others failed), `amount`.
//!   Acknowledged with 204 and no body; refused with `{"code":"FAIL","message":…}`.
//! - **Query**: `GET v3/pay/transactions/out-trade-no/{id}?mchid=` (404 `ORDER_NOT_EXIST`).
//! - **Refund**: `POST v3/refund/domestic/refunds` with `out_refund_no` = our refund id (one
//!   refund per id, so a retry cannot refund twice).

use base64::Engine as _;
use openssl::pkey::{PKey, Private, Public};
use openssl::symm::{decrypt_aead, Cipher};
use yiren_core::error::{DomainError, DomainResult};
use yiren_core::payment::settings::GatewayConfig;
use yiren_core::payment::{
    Ack, BoxFuture, Field, Instruction, Kind, Lookup, Outcome, PaymentGateway, PaymentRequest,
    RawNotification, RefundRequest, RefundResult, Rejected, Verified,
};
use yiren_providers::http::{Fetched, HttpClient};

use crate::alipay::{private_key, public_key, rsa2_sign, rsa2_verify};
use crate::json_text;

/// The settings a WeChat Pay gateway needs.
pub const KIND: Kind = Kind {
    kind: "wechatpay",
    fields: &[
        Field::text("base_url", "https://api.mch.weixin.qq.com/"),
        Field::text("mchid", ""),
        Field::text("appid", ""),
        Field::text("serial_no", ""),
        Field::secret("private_key"),
        Field::secret("apiv3_key"),
        Field::text("public_key_id", ""),
        Field::text("public_key", ""),
    ],
};

/// How far a signed timestamp may be from now.
pub const TOLERANCE_S: i64 = 300;

/// A WeChat Pay merchant.
pub struct Wechatpay {
    id: String,
    base: String,
    mchid: String,
    appid: String,
    serial_no: String,
    key: PKey<Private>,
    apiv3_key: Vec<u8>,
    public_key_id: String,
    wechat_key: PKey<Public>,
    http: HttpClient,
}

fn unavailable(e: impl std::fmt::Display) -> DomainError {
    crate::unavailable("wechatpay", e)
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Open an AEAD_AES_256_GCM `resource`: (key, nonce, associated data, base64 ciphertext‖tag).
pub fn decrypt(key: &[u8], nonce: &str, aad: &str, ciphertext: &str) -> Option<Vec<u8>> {
    let data = base64::engine::general_purpose::STANDARD
        .decode(ciphertext)
        .ok()?;
    if key.len() != 32 || data.len() < 16 {
        return None;
    }
    let (body, tag) = data.split_at(data.len() - 16);
    decrypt_aead(
        Cipher::aes_256_gcm(),
        key,
        Some(nonce.as_bytes()),
        aad.as_bytes(),
        body,
        tag,
    )
    .ok()
}

impl Wechatpay {
    /// From the owner's settings.
    pub fn from_config(c: &GatewayConfig, http: HttpClient) -> DomainResult<Wechatpay> {
        let base = crate::base_url(c)?;
        let mchid = c.field("mchid").trim().to_string();
        if mchid.is_empty() || mchid.len() > 32 || !mchid.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DomainError::invalid("mchid", "payments.wechatpay_mchid"));
        }
        let field = |name: &'static str| {
            let v = c.field(name).trim().to_string();
            if v.is_empty() || v.len() > 64 || !v.bytes().all(|b| b.is_ascii_graphic()) {
                Err(DomainError::invalid(name, "payments.field_invalid"))
            } else {
                Ok(v)
            }
        };
        let apiv3_key = crate::secret(c, "apiv3_key")?.into_bytes();
        if apiv3_key.len() != 32 {
            return Err(DomainError::invalid(
                "apiv3_key",
                "payments.wechatpay_apiv3_key",
            ));
        }
        Ok(Wechatpay {
            id: c.id.clone(),
            base,
            mchid,
            appid: field("appid")?,
            serial_no: field("serial_no")?,
            key: private_key(&crate::secret(c, "private_key")?).ok_or(DomainError::invalid(
                "private_key",
                "payments.wechatpay_private_key",
            ))?,
            apiv3_key,
            public_key_id: field("public_key_id")?,
            wechat_key: public_key(c.field("public_key")).ok_or(DomainError::invalid(
                "public_key",
                "payments.wechatpay_public_key",
            ))?,
            http,
        })
    }

    /// The `Authorization` header for a request.
    fn authorization(&self, method: &str, path_and_query: &str, body: &str) -> String {
        let nonce = format!("{:032x}", rand::random::<u128>());
        let ts = now_s();
        let message = format!("{method}\n{path_and_query}\n{ts}\n{nonce}\n{body}\n");
        format!(
            "WECHATPAY2-SHA256-RSA2048 mchid=\"{}\",nonce_str=\"{nonce}\",signature=\"{}\",timestamp=\"{ts}\",serial_no=\"{}\"",
            self.mchid,
            rsa2_sign(&self.key, &message),
            self.serial_no
        )
    }

    /// Whether WeChat Pay signed `body` with these headers (answers and notifications alike).
    fn signed_by_wechat(
        &self,
        header: impl Fn(&str) -> Option<String>,
        body: &[u8],
        now_s: i64,
    ) -> Result<(), Rejected> {
        let (Some(ts), Some(nonce), Some(sig), Some(serial)) = (
            header("wechatpay-timestamp"),
            header("wechatpay-nonce"),
            header("wechatpay-signature"),
            header("wechatpay-serial"),
        ) else {
            return Err(Rejected::Signature);
        };
        if serial != self.public_key_id {
            return Err(Rejected::Signature);
        }
        let body =
            std::str::from_utf8(body).map_err(|_| Rejected::Malformed("not UTF-8".into()))?;
        if !rsa2_verify(&self.wechat_key, &format!("{ts}\n{nonce}\n{body}\n"), &sig) {
            return Err(Rejected::Signature);
        }
        let ts: i64 = ts.parse().map_err(|_| Rejected::Signature)?;
        if (now_s - ts).abs() > TOLERANCE_S {
            return Err(Rejected::Stale);
        }
        Ok(())
    }

    /// Send a signed request; (status, JSON body) once WeChat Pay's signature on the answer
    /// checks (an answer with no body is not signed).
    async fn call(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        body: Option<serde_json::Value>,
    ) -> DomainResult<(u16, serde_json::Value)> {
        let text = body.map(|b| b.to_string()).unwrap_or_default();
        let url = format!("{}{path_and_query}", self.base);
        // What is signed is the URL's path and query, as sent.
        let signed_path = url::Url::parse(&url)
            .map(|u| match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_string(),
            })
            .map_err(unavailable)?;
        let auth = self.authorization(method.as_str(), &signed_path, &text);
        let mut rb = self
            .http
            .request(method, &url)
            .map_err(unavailable)?
            .header("Authorization", auth)
            .header("Accept", "application/json");
        if !text.is_empty() {
            rb = rb.header("Content-Type", "application/json").body(text);
        }
        let r: Fetched = self.http.send(rb).await.map_err(unavailable)?;
        if r.status >= 500 || r.status == 429 {
            return Err(unavailable(format!("answered {}", r.status)));
        }
        if r.status < 300 {
            let header = |k: &str| {
                r.headers
                    .get(k)
                    .and_then(|v| v.to_str().ok())
                    .map(String::from)
            };
            self.signed_by_wechat(header, &r.body, now_s())
                .map_err(|e| unavailable(format!("the answer's signature: {e}")))?;
        }
        let v = serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null);
        Ok((r.status, v))
    }
}

/// A transaction's trade state as an outcome.
fn outcome(state: &str) -> Outcome {
    match state {
        "SUCCESS" => Outcome::Paid,
        "NOTPAY" | "USERPAYING" => Outcome::Pending,
        _ => Outcome::Failed,
    }
}

impl PaymentGateway for Wechatpay {
    fn id(&self) -> &str {
        &self.id
    }

    fn accepts(&self, currency: &str) -> bool {
        currency == "CNY"
    }

    fn create<'a>(&'a self, req: &'a PaymentRequest) -> BoxFuture<'a, DomainResult<Instruction>> {
        Box::pin(async move {
            crate::only_cny(req)?;
            let body = serde_json::json!({
                "appid": self.appid, "mchid": self.mchid, "description": req.description,
                "out_trade_no": req.order_ref, "notify_url": req.notify_url,
                "amount": {"total": req.amount, "currency": "CNY"},
            });
            let (status, v) = self
                .call(
                    reqwest::Method::POST,
                    "v3/pay/transactions/native",
                    Some(body),
                )
                .await?;
            let code_url = json_text(&v, "code_url");
            if status != 200 || code_url.is_empty() {
                return Err(unavailable(format!(
                    "native order refused ({status}): {} {}",
                    json_text(&v, "code"),
                    json_text(&v, "message")
                )));
            }
            Ok(Instruction::Qr { payload: code_url })
        })
    }

    fn verify(&self, raw: &RawNotification, now_ms: i64) -> Result<Verified, Rejected> {
        self.signed_by_wechat(
            |k| raw.header(k).map(String::from),
            &raw.body,
            now_ms / 1000,
        )?;
        let event: serde_json::Value = serde_json::from_slice(&raw.body)
            .map_err(|_| Rejected::Malformed("not JSON".into()))?;
        let r = &event["resource"];
        if r["algorithm"] != "AEAD_AES_256_GCM" {
            return Err(Rejected::Malformed("not AEAD_AES_256_GCM".into()));
        }
        let plain = decrypt(
            &self.apiv3_key,
            r["nonce"].as_str().unwrap_or(""),
            r["associated_data"].as_str().unwrap_or(""),
            r["ciphertext"].as_str().unwrap_or(""),
        )
        .ok_or_else(|| {
            Rejected::Malformed("the resource does not open with the APIv3 key".into())
        })?;
        let t: serde_json::Value = serde_json::from_slice(&plain)
            .map_err(|_| Rejected::Malformed("the resource is not JSON".into()))?;
        if t["mchid"] != self.mchid.as_str() {
            return Err(Rejected::Merchant);
        }
        let need = |k: &str| {
            t[k].as_str()
                .filter(|v| !v.is_empty())
                .map(String::from)
                .ok_or_else(|| Rejected::Malformed(format!("no {k}")))
        };
        let state = need("trade_state")?;
        Ok(Verified {
            recurring: None,
            order_ref: need("out_trade_no")?,
            reference: if state == "SUCCESS" {
                need("transaction_id")?
            } else {
                String::new()
            },
            amount: t["amount"]["total"]
                .as_i64()
                .ok_or_else(|| Rejected::Malformed("no amount".into()))?,
            currency: t["amount"]["currency"]
                .as_str()
                .unwrap_or("CNY")
                .to_string(),
            outcome: outcome(&state),
        })
    }

    fn ack(&self) -> Ack {
        Ack {
            status: 204,
            content_type: "application/json",
            body: String::new(),
        }
    }

    fn nack(&self, retry: bool) -> Ack {
        let (status, message) = if retry {
            (503, "retry later")
        } else {
            (400, "rejected")
        };
        Ack {
            status,
            content_type: "application/json",
            body: format!("{{\"code\":\"FAIL\",\"message\":\"{message}\"}}"),
        }
    }

    fn query<'a>(&'a self, q: &'a Lookup) -> BoxFuture<'a, DomainResult<Option<Verified>>> {
        Box::pin(async move {
            if !q.order_ref.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Ok(None);
            }
            let path = format!(
                "v3/pay/transactions/out-trade-no/{}?mchid={}",
                q.order_ref, self.mchid
            );
            let (status, t) = self.call(reqwest::Method::GET, &path, None).await?;
            if status == 404 {
                return Ok(None);
            }
            if status != 200 {
                return Err(unavailable(format!(
                    "query ({status}): {}",
                    json_text(&t, "message")
                )));
            }
            let state = json_text(&t, "trade_state");
            Ok(Some(Verified {
                recurring: None,
                order_ref: json_text(&t, "out_trade_no"),
                reference: json_text(&t, "transaction_id"),
                amount: t["amount"]["total"].as_i64().unwrap_or(0),
                currency: t["amount"]["currency"]
                    .as_str()
                    .unwrap_or("CNY")
                    .to_string(),
                outcome: outcome(&state),
            }))
        })
    }

    fn refunds(&self) -> bool {
        true
    }

    fn refund<'a>(&'a self, req: &'a RefundRequest) -> BoxFuture<'a, DomainResult<RefundResult>> {
        Box::pin(async move {
            let body = serde_json::json!({
                "transaction_id": req.payment_reference, "out_refund_no": req.refund_ref,
                "reason": req.reason,
                "amount": {"refund": req.amount, "total": req.payment_amount, "currency": "CNY"},
            });
            let (status, v) = self
                .call(
                    reqwest::Method::POST,
                    "v3/refund/domestic/refunds",
                    Some(body),
                )
                .await?;
            match (status, json_text(&v, "status").as_str()) {
                (200, "SUCCESS" | "PROCESSING") => Ok(RefundResult::Done {
                    reference: json_text(&v, "refund_id"),
                }),
                _ => Ok(RefundResult::Refused {
                    reason: format!("{} {}", json_text(&v, "code"), json_text(&v, "message")),
                }),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::symm::encrypt_aead;

    /// A resource sealed with AES-256-GCM opens with the same key, nonce and associated data,
    /// and with nothing else.
    #[test]
    fn the_resource_opens_only_with_its_key_nonce_and_data() {
        let key = b"0123456789abcdef0123456789abcdef";
        let mut tag = [0u8; 16];
        let ct = encrypt_aead(
            Cipher::aes_256_gcm(),
            key,
            Some(b"nonce1234567"),
            b"transaction",
            br#"{"trade_state":"SUCCESS"}"#,
            &mut tag,
        )
        .unwrap();
        let sealed = base64::engine::general_purpose::STANDARD.encode([ct, tag.to_vec()].concat());
        assert_eq!(
            decrypt(key, "nonce1234567", "transaction", &sealed).unwrap(),
            br#"{"trade_state":"SUCCESS"}"#
        );
        assert!(decrypt(
            b"0123456789abcdef0123456789abcdeX",
            "nonce1234567",
            "transaction",
            &sealed
        )
        .is_none());
        assert!(decrypt(key, "nonce1234568", "transaction", &sealed).is_none());
        assert!(decrypt(key, "nonce1234567", "refund", &sealed).is_none());
        assert!(decrypt(key, "nonce1234567", "transaction", "c2hvcnQ=").is_none());
    }
}
