//! `fakepay`: a payment gateway protocol written for the tests, shaped like the aggregators Yiren
//! will speak (form-encoded notification, sorted `k=v&…` string signed with a shared secret, a
//! merchant id, a timestamp, the plain-text `success` acknowledgement). It runs through the real
//! registry, route and notification handler, so the tests exercise everything but a real
//! gateway's own signing rule.
//!
//! Notification fields: `merchant`, `order` (our order id), `txn` (the gateway's transaction id),
//! `amount` (decimal text), `currency`, `status` (`paid`, `pending`, `failed`), `t` (unix
//! seconds), `sign` (hex HMAC-SHA256 of the other fields sorted by name, joined `k=v` with `&`).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use yiren_core::error::DomainResult;
use yiren_core::payment::{
    Ack, BoxFuture, Instruction, Outcome, PaymentGateway, PaymentRequest, RawNotification,
    Rejected, Verified,
};

/// The fake gateway, configured with its merchant id and secret.
pub struct FakePay {
    pub merchant: String,
    pub secret: String,
}

/// The signature over `params` (without `sign`) under `secret`.
pub fn sign(secret: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "sign").collect();
    sorted.sort();
    let text = sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("any key");
    m.update(text.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

impl PaymentGateway for FakePay {
    fn id(&self) -> &'static str {
        "fakepay"
    }

    fn accepts(&self, currency: &str) -> bool {
        currency == "CNY"
    }

    fn create<'a>(&'a self, req: &'a PaymentRequest) -> BoxFuture<'a, DomainResult<Instruction>> {
        Box::pin(async move {
            Ok(Instruction::Redirect {
                url: format!(
                    "https://fakepay.test/pay?merchant={}&order={}&amount={}",
                    self.merchant,
                    req.order_ref,
                    yiren_core::money::format(req.amount, &req.currency)
                ),
            })
        })
    }

    fn verify(&self, raw: &RawNotification, now_ms: i64) -> Result<Verified, Rejected> {
        let text =
            std::str::from_utf8(&raw.body).map_err(|_| Rejected::Malformed("not UTF-8".into()))?;
        let params: Vec<(String, String)> = serde_urlencoded::from_str(text)
            .map_err(|_| Rejected::Malformed("not a form".into()))?;
        let mut names: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
        names.sort();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(Rejected::Malformed("a field appears twice".into()));
        }
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let given = get("sign")
            .filter(|s| !s.is_empty())
            .ok_or(Rejected::Signature)?;
        let given = hex::decode(given).map_err(|_| Rejected::Signature)?;
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(self.secret.as_bytes()).expect("any key");
        let mut sorted: Vec<&(String, String)> =
            params.iter().filter(|(k, _)| k != "sign").collect();
        sorted.sort();
        let signed = sorted
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        m.update(signed.as_bytes());
        // Constant-time comparison.
        m.verify_slice(&given).map_err(|_| Rejected::Signature)?;
        if get("merchant") != Some(self.merchant.as_str()) {
            return Err(Rejected::Merchant);
        }
        let t: i64 = get("t")
            .and_then(|t| t.parse().ok())
            .ok_or(Rejected::Malformed("t".into()))?;
        if (now_ms / 1000 - t).abs() > 300 {
            return Err(Rejected::Stale);
        }
        let currency = get("currency")
            .ok_or(Rejected::Malformed("currency".into()))?
            .to_string();
        let amount = yiren_core::money::parse(get("amount").unwrap_or(""), &currency, "amount")
            .map_err(|_| Rejected::Malformed("amount".into()))?;
        let outcome = match get("status") {
            Some("paid") => Outcome::Paid,
            Some("pending") => Outcome::Pending,
            Some("failed") => Outcome::Failed,
            _ => return Err(Rejected::Malformed("status".into())),
        };
        Ok(Verified {
            order_ref: get("order").unwrap_or("").to_string(),
            reference: get("txn")
                .filter(|t| !t.is_empty())
                .ok_or(Rejected::Malformed("txn".into()))?
                .to_string(),
            amount,
            currency,
            outcome,
        })
    }

    fn ack(&self) -> Ack {
        Ack {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            body: "success".into(),
        }
    }

    fn nack(&self, retry: bool) -> Ack {
        Ack {
            status: if retry { 500 } else { 400 },
            content_type: "text/plain; charset=utf-8",
            body: "fail".into(),
        }
    }

    fn query<'a>(&'a self, _order_ref: &'a str) -> BoxFuture<'a, DomainResult<Option<Verified>>> {
        Box::pin(async { Ok(None) })
    }
}
