//! Lemon Squeezy — a merchant of record: it sells to the customer in its own name, handles sales
//! tax and VAT, and pays the owner out; open to individuals. Facts: `shared/specs/payments.md`
//! §2.9, checked against docs.lemonsqueezy.com (checkouts, webhooks, signing requests).
//!
//! - **Create**: `POST {base}v1/checkouts` (JSON:API, `Authorization: Bearer`) for the owner's
//!   store and one "pay what the shop says" variant, with `custom_price` (the order's total, in
//!   the store currency's cents), the order's number as the product name, the order page as
//!   `redirect_url`, the customer's email, and our order id in `checkout_data.custom`; the
//!   customer goes to the answer's `url`.
//! - **Webhook**: JSON with `X-Event-Name` and `X-Signature` = hex HMAC-SHA256 of the raw body
//!   with the signing secret (compared in constant time). `order_created` with `status=paid` is a
//!   payment (its `subtotal`: Lemon Squeezy adds tax on top of our price, and keeps it); the
//!   reference is Lemon Squeezy's order id; events without our order id, other events, and other
//!   stores' orders are acknowledged and ignored. Any 200 stops its retries (three, within about
//!   two and a half minutes).
//! - **No query**: Lemon Squeezy's API cannot find an order by our id, so reconciliation records
//!   "unknown" for these orders; a lost webhook is resent from Lemon Squeezy's dashboard.
//! - Refunds are made in Lemon Squeezy's dashboard (recorded here for the owner to do).
//! - **Subscriptions**: with a subscription variant configured (billed every month, priced per
//!   checkout), a one-month membership's checkout uses it, so Lemon Squeezy renews it. The first
//!   payment is still `order_created`; `subscription_created` names the subscription (its id)
//!   and our order (the checkout's custom data, which Lemon Squeezy passes to every subscription
//!   event) and attaches it to the membership's plan; `subscription_payment_success` with
//!   `billing_reason=renewal` is a renewal (reference: the subscription invoice's id, amount its
//!   `subtotal`), `subscription_payment_failed` a failed renewal, and `subscription_expired` /
//!   `subscription_cancelled` end it.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use yiren_core::error::{DomainError, DomainResult};
use yiren_core::payment::settings::GatewayConfig;
use yiren_core::payment::{
    Ack, BoxFuture, Field, Instruction, Kind, Lookup, Outcome, PaymentGateway, PaymentRequest,
    RawNotification, Recurring, Rejected, Verified,
};
use yiren_providers::http::HttpClient;

use crate::json_text;

/// The settings a Lemon Squeezy gateway needs.
pub const KIND: Kind = Kind {
    kind: "lemonsqueezy",
    fields: &[
        Field::text("base_url", "https://api.lemonsqueezy.com/"),
        Field::secret("api_key"),
        Field::secret("signing_secret"),
        Field::text("store_id", ""),
        Field::text("variant_id", ""),
        Field::optional("subscription_variant_id"),
        Field::text("currency", "USD"),
    ],
};

/// A Lemon Squeezy store.
pub struct LemonSqueezy {
    id: String,
    base: String,
    api_key: String,
    secret: String,
    store_id: String,
    variant_id: String,
    /// A subscription variant billed monthly, if the owner set one.
    subscription_variant_id: Option<String>,
    currency: String,
    http: HttpClient,
}

fn unavailable(e: impl std::fmt::Display) -> DomainError {
    crate::unavailable("lemonsqueezy", e)
}

/// `hex(HMAC-SHA256(secret, body))`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("any key length");
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

impl LemonSqueezy {
    /// From the owner's settings.
    pub fn from_config(c: &GatewayConfig, http: HttpClient) -> DomainResult<LemonSqueezy> {
        let base = crate::base_url(c)?;
        let number = |name: &'static str| {
            let v = c.field(name).trim().to_string();
            if v.is_empty() || v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
                Err(DomainError::invalid(name, "payments.lemonsqueezy_id"))
            } else {
                Ok(v)
            }
        };
        let currency = c.field("currency").trim().to_ascii_uppercase();
        if yiren_core::money::exponent(&currency).is_none() {
            return Err(DomainError::invalid(
                "currency",
                "settings.currency_invalid",
            ));
        }
        let secret = crate::secret(c, "signing_secret")?;
        if !(6..=40).contains(&secret.len()) {
            return Err(DomainError::invalid(
                "signing_secret",
                "payments.lemonsqueezy_secret",
            ));
        }
        Ok(LemonSqueezy {
            id: c.id.clone(),
            base,
            api_key: crate::secret(c, "api_key")?,
            secret,
            store_id: number("store_id")?,
            variant_id: number("variant_id")?,
            subscription_variant_id: if c.field("subscription_variant_id").trim().is_empty() {
                None
            } else {
                Some(number("subscription_variant_id")?)
            },
            currency,
            http,
        })
    }
}

impl LemonSqueezy {
    /// The subscription events of this store's subscriptions that carry our order: `Ok(None)`
    /// for anything else.
    fn subscription_event(
        &self,
        event: &serde_json::Value,
        order_ref: &str,
    ) -> Result<Option<Verified>, Rejected> {
        let name = event["meta"]["event_name"].as_str().unwrap_or("");
        if !name.starts_with("subscription_") || order_ref.is_empty() {
            return Ok(None);
        }
        let data = &event["data"];
        let a = &data["attributes"];
        if json_text(a, "store_id") != self.store_id {
            return Ok(None);
        }
        let id = |v: &serde_json::Value, k: &str| {
            let s = json_text(v, k);
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                Err(Rejected::Malformed(format!("no {k}")))
            } else {
                Ok(s)
            }
        };
        let about = |recurring, outcome| Verified {
            recurring: Some(recurring),
            order_ref: order_ref.to_string(),
            reference: String::new(),
            amount: 0,
            currency: String::new(),
            outcome,
        };
        Ok(Some(match name {
            // data: the subscription.
            "subscription_created" => about(Recurring::Started(id(data, "id")?), Outcome::Pending),
            "subscription_cancelled" | "subscription_expired" => {
                about(Recurring::Ended(id(data, "id")?), Outcome::Pending)
            }
            // data: a subscription invoice.
            "subscription_payment_success" | "subscription_payment_failed" => {
                let sub = id(a, "subscription_id")?;
                if json_text(a, "billing_reason") != "renewal" {
                    // The first charge is the order (`order_created`).
                    return Ok(Some(about(Recurring::Started(sub), Outcome::Pending)));
                }
                let paid =
                    name == "subscription_payment_success" && json_text(a, "status") == "paid";
                Verified {
                    recurring: Some(Recurring::Renewal(sub)),
                    order_ref: order_ref.to_string(),
                    reference: format!("invoice:{}", id(data, "id")?),
                    amount: a["subtotal"]
                        .as_i64()
                        .ok_or_else(|| Rejected::Malformed("no subtotal".into()))?,
                    currency: json_text(a, "currency").to_ascii_uppercase(),
                    outcome: if paid { Outcome::Paid } else { Outcome::Failed },
                }
            }
            _ => return Ok(None),
        }))
    }
}

impl PaymentGateway for LemonSqueezy {
    fn id(&self) -> &str {
        &self.id
    }

    fn accepts(&self, currency: &str) -> bool {
        currency == self.currency
    }

    fn create<'a>(&'a self, req: &'a PaymentRequest) -> BoxFuture<'a, DomainResult<Instruction>> {
        Box::pin(async move {
            if !self.accepts(&req.currency) {
                return Err(DomainError::invalid("gateway", "checkout.gateway_currency"));
            }
            let variant = match (&self.subscription_variant_id, req.every_months) {
                (Some(v), Some(1)) => v,
                _ => &self.variant_id,
            };
            let body = serde_json::json!({"data": {
                "type": "checkouts",
                "attributes": {
                    "custom_price": req.amount,
                    "product_options": {"name": req.description, "redirect_url": req.return_url},
                    "checkout_data": {"custom": {"yiren_order": req.order_ref}},
                },
                "relationships": {
                    "store": {"data": {"type": "stores", "id": self.store_id}},
                    "variant": {"data": {"type": "variants", "id": variant}},
                },
            }});
            let rb = self
                .http
                .request(reqwest::Method::POST, &format!("{}v1/checkouts", self.base))
                .map_err(unavailable)?
                .bearer_auth(&self.api_key)
                .header("Accept", "application/vnd.api+json")
                .header("Content-Type", "application/vnd.api+json")
                .body(body.to_string());
            let r = self.http.send(rb).await.map_err(unavailable)?;
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let url = json_text(&v["data"]["attributes"], "url");
            if r.status >= 500 || r.status == 429 {
                return Err(unavailable(format!("answered {}", r.status)));
            }
            if !(200..300).contains(&r.status) || !url.starts_with("http") {
                return Err(unavailable(format!(
                    "checkout refused ({}): {}",
                    r.status,
                    json_text(&v["errors"][0], "detail")
                )));
            }
            Ok(Instruction::Redirect { url })
        })
    }

    fn verify(&self, raw: &RawNotification, _now_ms: i64) -> Result<Verified, Rejected> {
        let given = raw.header("x-signature").ok_or(Rejected::Signature)?;
        if !crate::same(given, &signature(&self.secret, &raw.body)) {
            return Err(Rejected::Signature);
        }
        let event: serde_json::Value = serde_json::from_slice(&raw.body)
            .map_err(|_| Rejected::Malformed("not JSON".into()))?;
        let a = &event["data"]["attributes"];
        let order_ref = json_text(&event["meta"]["custom_data"], "yiren_order");
        if let Some(v) = self.subscription_event(&event, &order_ref)? {
            return Ok(v);
        }
        let ours = event["meta"]["event_name"] == "order_created"
            && !order_ref.is_empty()
            && json_text(a, "store_id") == self.store_id;
        let outcome = match json_text(a, "status").as_str() {
            "paid" if ours => Outcome::Paid,
            "failed" if ours => Outcome::Failed,
            _ => Outcome::Pending,
        };
        if outcome != Outcome::Paid {
            // Not a payment of ours: acknowledged, nothing recorded.
            return Ok(Verified {
                recurring: None,
                order_ref,
                reference: String::new(),
                amount: 0,
                currency: String::new(),
                outcome,
            });
        }
        let reference = json_text(&event["data"], "id");
        if reference.is_empty() {
            return Err(Rejected::Malformed("no order id".into()));
        }
        Ok(Verified {
            recurring: None,
            order_ref,
            reference,
            amount: a["subtotal"]
                .as_i64()
                .ok_or_else(|| Rejected::Malformed("no subtotal".into()))?,
            currency: json_text(a, "currency").to_ascii_uppercase(),
            outcome,
        })
    }

    fn bills_recurring(&self) -> bool {
        self.subscription_variant_id.is_some()
    }

    fn ack(&self) -> Ack {
        Ack::text(200, "ok")
    }

    fn nack(&self, retry: bool) -> Ack {
        Ack::text(if retry { 503 } else { 400 }, "fail")
    }

    fn query<'a>(&'a self, _q: &'a Lookup) -> BoxFuture<'a, DomainResult<Option<Verified>>> {
        // The API cannot find an order by our id (see the module's notes).
        Box::pin(async { Ok(None) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a vector computed apart:
    /// `printf '{"meta":{}}' | openssl dgst -sha256 -hmac lemon-secret`.
    #[test]
    fn signs_the_raw_body() {
        assert_eq!(signature("lemon-secret", br#"{"meta":{}}"#), VECTOR);
    }

    const VECTOR: &str = "404543dca2f3cab6e2bb4782eee35a0a968d349102fdae53b3ab1f21da88f058";
}
