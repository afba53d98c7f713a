//! 虎皮椒 (xunhupay) — WeChat Pay and Alipay for individuals. Facts: `shared/specs/payments.md`
//! §2.3, checked against xunhupay.com/doc (pay, query).
//!
//! - **Hash**: every non-empty parameter but `hash`, sorted by name, joined `k=v&k=v` (raw
//!   values), the app secret appended directly, MD5 in lowercase hex. The same rule signs the
//!   requests, the answers and the notifications.
//! - **Create**: `POST {base}payment/do.html` (form) with `version=1.1, appid, trade_order_id,
//!   total_fee, title, time, notify_url, return_url, nonce_str, hash` → `{errcode: 0, url,
//!   url_qrcode, hash}`; the customer is sent to `url` (虎皮椒's page: a QR code on a computer,
//!   the wallet on a phone). The answer's own `hash` is not checked: which of its fields it covers
//!   is not documented, and the answer comes over HTTPS from the configured address.
//! - **Notification**: a POSTed form `trade_order_id, total_fee, transaction_id, open_order_id,
//!   order_title, status, plugins, attach, appid, time, nonce_str, hash`; `status` `OD` is paid,
//!   `WP` waiting, `CD` cancelled. The answer `success` stops the retries (at most 5).
//! - **Query**: `POST {base}payment/query.html` with `appid, out_trade_order, time, nonce_str,
//!   hash` → `{errcode, data: {status}}`. A paid answer is a payment of the amount the order was
//!   created with (signed at creation).
//! - The payment's reference is our order id (虎皮椒 keys a payment by `trade_order_id` per app,
//!   and the query answers by it), so the notification and the query record the same payment.
//! - Yuan with two decimals; CNY only; refunds are recorded for the owner to send by hand.

use yiren_core::error::{DomainError, DomainResult};
use yiren_core::money;
use yiren_core::payment::settings::GatewayConfig;
use yiren_core::payment::{
    Ack, BoxFuture, Field, Instruction, Kind, Lookup, Outcome, PaymentGateway, PaymentRequest,
    RawNotification, Rejected, Verified,
};
use yiren_providers::http::HttpClient;

use crate::{json_text, md5_hex, param, required};

/// The settings a 虎皮椒 gateway needs.
pub const KIND: Kind = Kind {
    kind: "xunhupay",
    fields: &[
        Field::text("base_url", "https://api.xunhupay.com/"),
        Field::text("appid", ""),
        Field::secret("appsecret"),
    ],
};

/// A 虎皮椒 app.
pub struct Xunhupay {
    id: String,
    base: String,
    appid: String,
    secret: String,
    http: HttpClient,
}

fn unavailable(e: impl std::fmt::Display) -> DomainError {
    crate::unavailable("xunhupay", e)
}

/// The hash rule over `params` (see the module's notes).
pub fn hash(params: &[(String, String)], secret: &str) -> String {
    let mut p: Vec<&(String, String)> = params
        .iter()
        .filter(|(k, v)| k != "hash" && !v.is_empty())
        .collect();
    p.sort_by(|a, b| a.0.cmp(&b.0));
    let joined = p
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    md5_hex(&format!("{joined}{secret}"))
}

impl Xunhupay {
    /// From the owner's settings.
    pub fn from_config(c: &GatewayConfig, http: HttpClient) -> DomainResult<Xunhupay> {
        let base = crate::base_url(c)?;
        let appid = c.field("appid").trim().to_string();
        if appid.is_empty() || appid.len() > 32 || !appid.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(DomainError::invalid("appid", "payments.xunhupay_appid"));
        }
        Ok(Xunhupay {
            id: c.id.clone(),
            base,
            appid,
            secret: crate::secret(c, "appsecret")?,
            http,
        })
    }

    /// `fields` plus appid, time, nonce_str and the hash.
    fn signed(&self, fields: &[(&str, String)]) -> Vec<(String, String)> {
        let nonce = format!("{:016x}", rand::random::<u64>());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut p: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        p.push(("appid".into(), self.appid.clone()));
        p.push(("time".into(), now.to_string()));
        p.push(("nonce_str".into(), nonce));
        let h = hash(&p, &self.secret);
        p.push(("hash".into(), h));
        p
    }

    /// The payment's form.
    fn form(&self, req: &PaymentRequest) -> Vec<(String, String)> {
        self.signed(&[
            ("version", "1.1".into()),
            ("trade_order_id", req.order_ref.clone()),
            ("total_fee", money::format(req.amount, "CNY")),
            ("title", req.description.clone()),
            ("notify_url", req.notify_url.clone()),
            ("return_url", req.return_url.clone()),
        ])
    }
}

impl PaymentGateway for Xunhupay {
    fn id(&self) -> &str {
        &self.id
    }

    fn accepts(&self, currency: &str) -> bool {
        currency == "CNY"
    }

    fn create<'a>(&'a self, req: &'a PaymentRequest) -> BoxFuture<'a, DomainResult<Instruction>> {
        Box::pin(async move {
            crate::only_cny(req)?;
            let url = format!("{}payment/do.html", self.base);
            let v = crate::post_form_json(&self.http, "xunhupay", &url, &self.form(req)).await?;
            if json_text(&v, "errcode") != "0" {
                return Err(unavailable(format!(
                    "payment/do.html refused: {} {}",
                    json_text(&v, "errcode"),
                    json_text(&v, "errmsg")
                )));
            }
            let to = json_text(&v, "url");
            if !to.starts_with("https://") && !to.starts_with("http://") {
                return Err(unavailable("payment/do.html gave no payment page"));
            }
            Ok(Instruction::Redirect { url: to })
        })
    }

    fn verify(&self, raw: &RawNotification, _now_ms: i64) -> Result<Verified, Rejected> {
        let params = crate::notification_params(raw)?;
        let given = param(&params, "hash")
            .filter(|s| !s.is_empty())
            .ok_or(Rejected::Signature)?;
        if !crate::same(given, &hash(&params, &self.secret)) {
            return Err(Rejected::Signature);
        }
        if param(&params, "appid") != Some(self.appid.as_str()) {
            return Err(Rejected::Merchant);
        }
        let amount = money::parse(required(&params, "total_fee")?, "CNY", "total_fee")
            .map_err(|_| Rejected::Malformed("total_fee is not an amount".into()))?;
        let order = required(&params, "trade_order_id")?;
        Ok(Verified {
            recurring: None,
            order_ref: order.to_string(),
            reference: order.to_string(),
            amount,
            currency: "CNY".into(),
            outcome: match required(&params, "status")? {
                "OD" => Outcome::Paid,
                "CD" => Outcome::Failed,
                _ => Outcome::Pending,
            },
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
            let url = format!("{}payment/query.html", self.base);
            let form = self.signed(&[("out_trade_order", q.order_ref.clone())]);
            let v = crate::post_form_json(&self.http, "xunhupay", &url, &form).await?;
            if json_text(&v, "errcode") != "0" {
                return Err(unavailable(format!(
                    "payment/query.html: {} {}",
                    json_text(&v, "errcode"),
                    json_text(&v, "errmsg")
                )));
            }
            let outcome = match json_text(&v["data"], "status").as_str() {
                "OD" => Outcome::Paid,
                "WP" => Outcome::Pending,
                "CD" => Outcome::Failed,
                other => return Err(unavailable(format!("payment/query.html status {other:?}"))),
            };
            Ok(Some(q.status_only(outcome)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule, against a vector computed apart:
    /// `printf 'appid=2019&title=书 1&total_fee=0.10SECRET' | md5sum`; `hash` and empty values
    /// are left out, names sorted, values raw.
    #[test]
    fn hashes_sorted_raw_values_with_the_secret_appended() {
        let p: Vec<(String, String)> = [
            ("total_fee", "0.10"),
            ("hash", "x"),
            ("title", "书 1"),
            ("attach", ""),
            ("appid", "2019"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(hash(&p, "SECRET"), VECTOR);
    }

    const VECTOR: &str = "55e5ba2e890cc89b47719a0abe78e1da";

    /// Notifications: `OD` pays, `WP` waits, `CD` fails; another app's is refused.
    #[test]
    fn statuses_and_the_app_are_read_from_a_notification() {
        let mut c = GatewayConfig {
            id: "xunhupay".into(),
            kind: "xunhupay".into(),
            ..Default::default()
        };
        c.fields
            .insert("base_url".into(), "https://api.xunhupay.example/".into());
        c.fields.insert("appid".into(), "2019".into());
        c.secrets.insert("appsecret".into(), "SECRET".into());
        let g = Xunhupay::from_config(&c, HttpClient::new(Default::default()).unwrap()).unwrap();
        let note = |status: &str, appid: &str| {
            let mut p: Vec<(String, String)> = [
                ("trade_order_id", "42"),
                ("total_fee", "0.10"),
                ("status", status),
                ("appid", appid),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            let h = hash(&p, "SECRET");
            p.push(("hash".into(), h));
            RawNotification {
                method: "POST".into(),
                body: serde_urlencoded::to_string(&p).unwrap().into_bytes(),
                ..Default::default()
            }
        };
        for (status, outcome) in [
            ("OD", Outcome::Paid),
            ("WP", Outcome::Pending),
            ("CD", Outcome::Failed),
        ] {
            let v = g.verify(&note(status, "2019"), 0).unwrap();
            assert_eq!(
                (v.outcome, v.amount, v.order_ref.as_str()),
                (outcome, 10, "42")
            );
        }
        assert_eq!(g.verify(&note("OD", "2020"), 0), Err(Rejected::Merchant));
    }
}
