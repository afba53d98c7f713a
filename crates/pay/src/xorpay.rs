//! XorPay — WeChat Pay and Alipay for individuals (a 服务商 opening 小微商户 accounts; the
//! money goes to the owner's own account). Facts: `shared/specs/payments.md` §2.2, checked
//! against xorpay.com/doc (native, query).
//!
//! - **Create**: `POST {base}api/pay/{aid}` (form) with `name, pay_type, price, order_id,
//!   notify_url, expire`; `sign = md5(name + pay_type + price + order_id + notify_url +
//!   app_secret)` — the values concatenated in that fixed order, nothing between them, lowercase
//!   hex. Answer `{"status": "ok", "aoid", "expires_in", "info": {"qr"}}`: the QR payload is
//!   shown on the shop's order page (`native` is WeChat, `alipay` is Alipay's 当面付). Any other
//!   `status` names the error (`sign_error`, `order_payed`, `fee_error`, ...).
//! - **Notification**: a POSTed form `aoid, order_id, pay_price, pay_time, more, detail, sign`
//!   with `sign = md5(aoid + order_id + pay_price + pay_time + app_secret)`; `more` and `detail`
//!   are not signed (and not read). A 200 answer stops the retries; we answer `ok`.
//! - **Query**: `GET {base}api/query2/{aid}?order_id=&sign=md5(order_id + app_secret)` →
//!   `{"status"}`: `not_exist`, `new` (not paid), `payed` (paid, not yet notified), `success`
//!   (paid and notified), `expire`, `fee_error`. It names no amount: a paid answer is a payment of
//!   the amount the order was created with (signed at creation; XorPay charges no other).
//! - The payment's reference is our order id: XorPay keys a payment by it (a second creation for
//!   it is refused) and its query answers by it, so the notification and the query record the
//!   same payment. Its `aoid` is logged.
//! - Amounts are yuan with two decimals; CNY only. No refunds through the API here: a refund is
//!   recorded for the owner to send from XorPay's dashboard.

use yiren_core::error::{DomainError, DomainResult};
use yiren_core::money;
use yiren_core::payment::settings::GatewayConfig;
use yiren_core::payment::{
    Ack, BoxFuture, Field, Instruction, Kind, Lookup, Outcome, PaymentGateway, PaymentRequest,
    RawNotification, Rejected, Verified,
};
use yiren_providers::http::HttpClient;

use crate::{json_text, md5_hex, param, required};

/// The settings a XorPay gateway needs.
pub const KIND: Kind = Kind {
    kind: "xorpay",
    fields: &[
        Field::text("base_url", "https://xorpay.com/"),
        Field::text("aid", ""),
        Field::secret("secret"),
        Field::choice("pay_type", "native", &["native", "alipay"]),
    ],
};

/// A XorPay app.
pub struct Xorpay {
    id: String,
    base: String,
    aid: String,
    secret: String,
    pay_type: String,
    http: HttpClient,
}

fn unavailable(e: impl std::fmt::Display) -> DomainError {
    crate::unavailable("xorpay", e)
}

impl Xorpay {
    /// From the owner's settings.
    pub fn from_config(c: &GatewayConfig, http: HttpClient) -> DomainResult<Xorpay> {
        let base = crate::base_url(c)?;
        let aid = c.field("aid").trim().to_string();
        if aid.is_empty() || aid.len() > 32 || !aid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(DomainError::invalid("aid", "payments.xorpay_aid"));
        }
        Ok(Xorpay {
            id: c.id.clone(),
            base,
            aid,
            secret: crate::secret(c, "secret")?,
            pay_type: c.field("pay_type").to_string(),
            http,
        })
    }

    /// The signed form of a payment.
    fn form(&self, req: &PaymentRequest) -> Vec<(String, String)> {
        let price = money::format(req.amount, "CNY");
        let sign = md5_hex(&format!(
            "{}{}{}{}{}{}",
            req.description, self.pay_type, price, req.order_ref, req.notify_url, self.secret
        ));
        [
            ("name", req.description.clone()),
            ("pay_type", self.pay_type.clone()),
            ("price", price),
            ("order_id", req.order_ref.clone()),
            ("notify_url", req.notify_url.clone()),
            // Two days, as long as reconciliation keeps asking.
            ("expire", "172800".into()),
            ("sign", sign),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

impl PaymentGateway for Xorpay {
    fn id(&self) -> &str {
        &self.id
    }

    fn accepts(&self, currency: &str) -> bool {
        currency == "CNY"
    }

    fn create<'a>(&'a self, req: &'a PaymentRequest) -> BoxFuture<'a, DomainResult<Instruction>> {
        Box::pin(async move {
            crate::only_cny(req)?;
            let url = format!("{}api/pay/{}", self.base, self.aid);
            let v = crate::post_form_json(&self.http, "xorpay", &url, &self.form(req)).await?;
            let status = json_text(&v, "status");
            if status != "ok" {
                return Err(unavailable(format!("api/pay refused: {status}")));
            }
            let qr = json_text(&v["info"], "qr");
            if qr.is_empty() {
                return Err(unavailable("api/pay gave no QR code"));
            }
            tracing::info!(order = %req.order_ref, aoid = %json_text(&v, "aoid"), "xorpay payment created");
            Ok(Instruction::Qr { payload: qr })
        })
    }

    fn verify(&self, raw: &RawNotification, _now_ms: i64) -> Result<Verified, Rejected> {
        let params = crate::notification_params(raw)?;
        let given = param(&params, "sign")
            .filter(|s| !s.is_empty())
            .ok_or(Rejected::Signature)?;
        let (aoid, order_id, price, time) = (
            param(&params, "aoid").unwrap_or(""),
            param(&params, "order_id").unwrap_or(""),
            param(&params, "pay_price").unwrap_or(""),
            param(&params, "pay_time").unwrap_or(""),
        );
        let expected = md5_hex(&format!("{aoid}{order_id}{price}{time}{}", self.secret));
        if !crate::same(given, &expected) {
            return Err(Rejected::Signature);
        }
        let amount = money::parse(required(&params, "pay_price")?, "CNY", "pay_price")
            .map_err(|_| Rejected::Malformed("pay_price is not an amount".into()))?;
        required(&params, "aoid")?;
        tracing::info!(order = %order_id, aoid = %aoid, "xorpay notification");
        Ok(Verified {
            recurring: None,
            order_ref: required(&params, "order_id")?.to_string(),
            reference: order_id.to_string(),
            amount,
            currency: "CNY".into(),
            // XorPay notifies only payments.
            outcome: Outcome::Paid,
        })
    }

    fn ack(&self) -> Ack {
        Ack::text(200, "ok")
    }

    fn nack(&self, retry: bool) -> Ack {
        Ack::text(if retry { 503 } else { 400 }, "fail")
    }

    fn query<'a>(&'a self, q: &'a Lookup) -> BoxFuture<'a, DomainResult<Option<Verified>>> {
        Box::pin(async move {
            let url = format!("{}api/query2/{}", self.base, self.aid);
            let sign = md5_hex(&format!("{}{}", q.order_ref, self.secret));
            let rb = self
                .http
                .request(reqwest::Method::GET, &url)
                .map_err(unavailable)?
                .query(&[("order_id", q.order_ref.as_str()), ("sign", &sign)]);
            let v = crate::read_json(&self.http, "xorpay", rb).await?;
            let outcome = match json_text(&v, "status").as_str() {
                "not_exist" => return Ok(None),
                "payed" | "success" => Outcome::Paid,
                "new" | "fee_error" => Outcome::Pending,
                "expire" => Outcome::Failed,
                other => return Err(unavailable(format!("api/query2: {other}"))),
            };
            Ok(Some(q.status_only(outcome)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway() -> Xorpay {
        let mut c = GatewayConfig {
            id: "xorpay".into(),
            kind: "xorpay".into(),
            ..Default::default()
        };
        c.fields
            .insert("base_url".into(), "https://xorpay.example".into());
        c.fields.insert("aid".into(), "1234".into());
        c.fields.insert("pay_type".into(), "native".into());
        c.secrets.insert("secret".into(), "S3CRET".into());
        Xorpay::from_config(&c, HttpClient::new(Default::default()).unwrap()).unwrap()
    }

    /// The request signature is the five values and the secret, concatenated in the documented
    /// order; the vector was computed apart, with
    /// `printf '#1001native19.9042https://shop.example/payments/xorpay/notifyS3CRET' | md5sum`.
    #[test]
    fn the_request_is_signed_in_the_fixed_order() {
        let g = gateway();
        let req = PaymentRequest {
            order_ref: "42".into(),
            number: 1001,
            amount: 1_990,
            currency: "CNY".into(),
            description: "#1001".into(),
            return_url: String::new(),
            notify_url: "https://shop.example/payments/xorpay/notify".into(),
            client_ip: String::new(),
            every_months: None,
        };
        let f = g.form(&req);
        let get = |k: &str| f.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(get("price"), "19.90");
        assert_eq!(get("sign"), REQUEST_VECTOR);
    }

    const REQUEST_VECTOR: &str = "8625637f3b68557442d914361f4daf6c";

    /// The notification signature covers aoid, order_id, pay_price and pay_time only; the vector:
    /// `printf 'abc4219.902026-11-28 10:00:00S3CRET' | md5sum`.
    #[test]
    fn a_notification_is_verified_over_its_four_signed_values() {
        let g = gateway();
        let body = format!(
            "aoid=abc&order_id=42&pay_price=19.90&pay_time=2026-11-28+10%3A00%3A00&more=&detail=x&sign={NOTIFY_VECTOR}"
        );
        let raw = RawNotification {
            method: "POST".into(),
            body: body.into_bytes(),
            ..Default::default()
        };
        let v = g.verify(&raw, 0).unwrap();
        assert_eq!(
            (v.order_ref.as_str(), v.amount, v.outcome),
            ("42", 1_990, Outcome::Paid)
        );
        let tampered = RawNotification {
            body: String::from_utf8(raw.body.clone())
                .unwrap()
                .replace("19.90", "0.01")
                .into_bytes(),
            ..raw.clone()
        };
        assert_eq!(g.verify(&tampered, 0), Err(Rejected::Signature));
        // `detail` is not signed: changing it changes nothing.
        let detail = RawNotification {
            body: String::from_utf8(raw.body.clone())
                .unwrap()
                .replace("detail=x", "detail=y")
                .into_bytes(),
            ..raw
        };
        assert!(g.verify(&detail, 0).is_ok());
    }

    const NOTIFY_VECTOR: &str = "31a7cf5b4e05baeb60e3e74806720906";
}
