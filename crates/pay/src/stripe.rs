//! Stripe Checkout — cards, Alipay and WeChat Pay abroad (individuals and sole proprietors in
//! Stripe's countries, Hong Kong among them; not mainland China). Facts:
//! `shared/specs/payments.md` §2.7, checked against Stripe's API reference.
//!
//! - **Create**: `POST {base}v1/checkout/sessions` (form, `Authorization: Bearer sk_…`) with
//!   `mode=payment`, one inline line (`price_data[currency|unit_amount|product_data][name]`,
//!   quantity 1), `success_url`/`cancel_url` (the order page), `client_reference_id` and the
//!   order id in the session's and the PaymentIntent's `metadata[yiren_order]`; an
//!   `Idempotency-Key` per order, so asking twice opens one session. The customer is sent to the
//!   answer's `url`.
//! - **Webhook**: a JSON event; `Stripe-Signature: t=…,v1=…[,v1=…]` where each `v1` is
//!   `hex(HMAC-SHA256(whsec, "{t}.{raw body}"))` — any one matching (a rolled secret sends two) is
//!   enough, compared in constant time; `t` within 300 s of now. `checkout.session.completed`
//!   and `checkout.session.async_payment_succeeded` with `payment_status=paid` are payments;
//!   `…async_payment_failed` a failure; any other event, or one for a session without our
//!   metadata (the account may serve other sites), is acknowledged and ignored. Any 2xx stops
//!   Stripe's retries (for up to three days).
//! - The payment's reference is the PaymentIntent id (`pi_…`): the events about one payment and
//!   the query all name it, so however many events arrive it is recorded once.
//! - **Query**: `GET {base}v1/payment_intents/search?query=metadata['yiren_order']:'{id}'` —
//!   a `succeeded` intent is a payment of its `amount_received`.
//! - **Refund**: `POST {base}v1/refunds` with `payment_intent`, `amount` and an
//!   `Idempotency-Key` per refund, so a retry after a timeout cannot refund twice.
//! - Amounts are integers in the currency's minor unit (as ours are); the currency lowercase.
//! - **Subscriptions** (a membership counted in months, `PaymentRequest::every_months`): the
//!   session is created with `mode=subscription`, the inline price made recurring
//!   (`price_data[recurring][interval]=month`, `[interval_count]`) and our order in
//!   `subscription_data[metadata][yiren_order]` (a subscription-mode session takes no
//!   `payment_intent_data`). Its first payment is the invoice the session opened: the reference is
//!   the invoice id (`in_…`), named by `checkout.session.completed` (`invoice`, `subscription`)
//!   and by `invoice.paid` with `billing_reason=subscription_create` — whichever comes first is
//!   recorded, the other is a duplicate. Later `invoice.paid` events (`subscription_cycle`, …)
//!   are renewals; `invoice.payment_failed` for one is a failed renewal; and
//!   `customer.subscription.deleted` ends the subscription. An invoice names its subscription as
//!   `subscription` (API versions before 2025-03) or `parent.subscription_details.subscription`,
//!   and our order in `subscription_details.metadata` / `parent.subscription_details.metadata`.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use yiren_core::error::{DomainError, DomainResult};
use yiren_core::payment::settings::GatewayConfig;
use yiren_core::payment::{
    Ack, BoxFuture, Field, Instruction, Kind, Lookup, Outcome, PaymentGateway, PaymentRequest,
    RawNotification, Recurring, RefundRequest, RefundResult, Rejected, Verified,
};
use yiren_providers::http::HttpClient;

use crate::json_text;

/// The settings a Stripe gateway needs.
pub const KIND: Kind = Kind {
    kind: "stripe",
    fields: &[
        Field::text("base_url", "https://api.stripe.com/"),
        Field::secret("secret_key"),
        Field::secret("webhook_secret"),
    ],
};

/// How far a webhook's timestamp may be from now.
pub const TOLERANCE_S: i64 = 300;

/// The metadata key naming our order.
const ORDER_KEY: &str = "yiren_order";

/// A Stripe account.
pub struct Stripe {
    id: String,
    base: String,
    key: String,
    webhook_secret: String,
    http: HttpClient,
}

fn unavailable(e: impl std::fmt::Display) -> DomainError {
    crate::unavailable("stripe", e)
}

/// `hex(HMAC-SHA256(secret, "{t}.{body}"))`.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("any key length");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

/// An error answer's message.
fn error_message(v: &serde_json::Value) -> String {
    json_text(&v["error"], "message")
}

impl Stripe {
    /// From the owner's settings.
    pub fn from_config(c: &GatewayConfig, http: HttpClient) -> DomainResult<Stripe> {
        let base = crate::base_url(c)?;
        let key = crate::secret(c, "secret_key")?;
        if !(key.starts_with("sk_") || key.starts_with("rk_")) {
            return Err(DomainError::invalid("secret_key", "payments.stripe_key"));
        }
        let webhook_secret = crate::secret(c, "webhook_secret")?;
        if !webhook_secret.starts_with("whsec_") {
            return Err(DomainError::invalid(
                "webhook_secret",
                "payments.stripe_webhook_secret",
            ));
        }
        Ok(Stripe {
            id: c.id.clone(),
            base,
            key,
            webhook_secret,
            http,
        })
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> DomainResult<reqwest::RequestBuilder> {
        Ok(self
            .http
            .request(method, &format!("{}{path}", self.base))
            .map_err(unavailable)?
            .bearer_auth(&self.key))
    }

    /// Send; (status, JSON). A 5xx or no JSON is worth retrying (an `Err`).
    async fn call(&self, rb: reqwest::RequestBuilder) -> DomainResult<(u16, serde_json::Value)> {
        let r = self.http.send(rb).await.map_err(unavailable)?;
        if r.status >= 500 || r.status == 429 {
            return Err(unavailable(format!("answered {}", r.status)));
        }
        let v = serde_json::from_slice(&r.body)
            .map_err(|_| unavailable(format!("answered {} without JSON", r.status)))?;
        Ok((r.status, v))
    }

    /// The session's form.
    fn form(&self, req: &PaymentRequest) -> Vec<(String, String)> {
        let mode = if req.every_months.is_some() {
            "subscription"
        } else {
            "payment"
        };
        let mut form: Vec<(String, String)> = [
            ("mode", mode.to_string()),
            (
                "line_items[0][price_data][currency]",
                req.currency.to_ascii_lowercase(),
            ),
            (
                "line_items[0][price_data][unit_amount]",
                req.amount.to_string(),
            ),
            (
                "line_items[0][price_data][product_data][name]",
                req.description.clone(),
            ),
            ("line_items[0][quantity]", "1".into()),
            ("success_url", req.return_url.clone()),
            ("cancel_url", req.return_url.clone()),
            ("client_reference_id", req.order_ref.clone()),
            ("metadata[yiren_order]", req.order_ref.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let extra = match req.every_months {
            Some(months) => vec![
                (
                    "line_items[0][price_data][recurring][interval]",
                    "month".to_string(),
                ),
                (
                    "line_items[0][price_data][recurring][interval_count]",
                    months.to_string(),
                ),
                (
                    "subscription_data[metadata][yiren_order]",
                    req.order_ref.clone(),
                ),
            ],
            None => vec![(
                "payment_intent_data[metadata][yiren_order]",
                req.order_ref.clone(),
            )],
        };
        form.extend(extra.into_iter().map(|(k, v)| (k.to_string(), v)));
        form
    }
}

/// Read a `Stripe-Signature` header: its `t` and every `v1`.
fn parse_header(h: &str) -> Option<(i64, Vec<&str>)> {
    let mut t = None;
    let mut v1 = vec![];
    for part in h.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "t" if t.is_none() => t = Some(v.parse().ok()?),
            "t" => return None,
            "v1" => v1.push(v),
            _ => {}
        }
    }
    Some((t?, v1))
}

impl PaymentGateway for Stripe {
    fn id(&self) -> &str {
        &self.id
    }

    fn accepts(&self, currency: &str) -> bool {
        yiren_core::money::exponent(currency).is_some()
    }

    fn create<'a>(&'a self, req: &'a PaymentRequest) -> BoxFuture<'a, DomainResult<Instruction>> {
        Box::pin(async move {
            if !self.accepts(&req.currency) {
                return Err(DomainError::invalid("gateway", "checkout.gateway_currency"));
            }
            let rb = self
                .request(reqwest::Method::POST, "v1/checkout/sessions")?
                .header("Idempotency-Key", format!("yiren-order-{}", req.order_ref))
                .form(&self.form(req));
            let (status, v) = self.call(rb).await?;
            let url = json_text(&v, "url");
            if status != 200 || !url.starts_with("http") {
                return Err(unavailable(format!(
                    "checkout session refused ({status}): {}",
                    error_message(&v)
                )));
            }
            tracing::info!(order = %req.order_ref, session = %json_text(&v, "id"), "stripe checkout session created");
            Ok(Instruction::Redirect { url })
        })
    }

    fn verify(&self, raw: &RawNotification, now_ms: i64) -> Result<Verified, Rejected> {
        let header = raw.header("stripe-signature").ok_or(Rejected::Signature)?;
        let (t, v1) = parse_header(header).ok_or(Rejected::Signature)?;
        let expected = signature(&self.webhook_secret, t, &raw.body);
        if !v1.iter().any(|given| crate::same(given, &expected)) {
            return Err(Rejected::Signature);
        }
        if (now_ms / 1000 - t).abs() > TOLERANCE_S {
            return Err(Rejected::Stale);
        }
        if raw.body.len() > 256 * 1024 {
            return Err(Rejected::Malformed("too large".into()));
        }
        let event: serde_json::Value = serde_json::from_slice(&raw.body)
            .map_err(|_| Rejected::Malformed("not JSON".into()))?;
        let object = &event["data"]["object"];
        let kind = event["type"].as_str().unwrap_or("");
        if let Some(v) = subscription_event(kind, object)? {
            return Ok(v);
        }
        let order_ref = object["metadata"][ORDER_KEY].as_str().unwrap_or("");
        let outcome = match kind {
            "checkout.session.completed" | "checkout.session.async_payment_succeeded"
                if object["payment_status"] == "paid" =>
            {
                Outcome::Paid
            }
            "checkout.session.async_payment_failed" => Outcome::Failed,
            _ => Outcome::Pending,
        };
        if order_ref.is_empty() || outcome != Outcome::Paid {
            // Not a payment of ours: acknowledged, nothing recorded.
            return Ok(Verified {
                recurring: None,
                order_ref: order_ref.to_string(),
                reference: String::new(),
                amount: 0,
                currency: String::new(),
                outcome: if outcome == Outcome::Paid {
                    Outcome::Pending
                } else {
                    outcome
                },
            });
        }
        // A subscription's first payment is its first invoice; any other, the PaymentIntent.
        let subscription = object["subscription"]
            .as_str()
            .filter(|s| s.starts_with("sub_"));
        let reference = match subscription {
            Some(_) if object["mode"] == "subscription" => object["invoice"]
                .as_str()
                .filter(|s| s.starts_with("in_"))
                .ok_or_else(|| Rejected::Malformed("no invoice".into()))?,
            _ => object["payment_intent"]
                .as_str()
                .filter(|s| s.starts_with("pi_"))
                .ok_or_else(|| Rejected::Malformed("no payment_intent".into()))?,
        };
        let amount = object["amount_total"]
            .as_i64()
            .filter(|a| *a >= 0)
            .ok_or_else(|| Rejected::Malformed("no amount_total".into()))?;
        let currency = object["currency"]
            .as_str()
            .filter(|c| c.len() == 3)
            .ok_or_else(|| Rejected::Malformed("no currency".into()))?;
        Ok(Verified {
            recurring: subscription
                .filter(|_| object["mode"] == "subscription")
                .map(|s| Recurring::Started(s.to_string())),
            order_ref: order_ref.to_string(),
            reference: reference.to_string(),
            amount,
            currency: currency.to_ascii_uppercase(),
            outcome,
        })
    }

    fn bills_recurring(&self) -> bool {
        true
    }

    fn ack(&self) -> Ack {
        Ack {
            status: 200,
            content_type: "application/json",
            body: "{\"received\":true}".into(),
        }
    }

    fn nack(&self, retry: bool) -> Ack {
        Ack::text(if retry { 503 } else { 400 }, "fail")
    }

    fn query<'a>(&'a self, q: &'a Lookup) -> BoxFuture<'a, DomainResult<Option<Verified>>> {
        Box::pin(async move {
            if !q.order_ref.bytes().all(|b| b.is_ascii_digit()) {
                return Ok(None);
            }
            let search = format!("metadata['{ORDER_KEY}']:'{}'", q.order_ref);
            let rb = self
                .request(reqwest::Method::GET, "v1/payment_intents/search")?
                .query(&[("query", search.as_str())]);
            let (status, v) = self.call(rb).await?;
            if status != 200 {
                return Err(unavailable(format!(
                    "search refused ({status}): {}",
                    error_message(&v)
                )));
            }
            let intents = v["data"].as_array().cloned().unwrap_or_default();
            let ours = intents
                .iter()
                .filter(|pi| pi["metadata"][ORDER_KEY] == q.order_ref.as_str());
            let mut found = None;
            for pi in ours {
                let succeeded = pi["status"] == "succeeded";
                let v = Verified {
                    recurring: None,
                    order_ref: q.order_ref.clone(),
                    reference: json_text(pi, "id"),
                    amount: pi["amount_received"].as_i64().unwrap_or(0),
                    currency: json_text(pi, "currency").to_ascii_uppercase(),
                    outcome: if succeeded {
                        Outcome::Paid
                    } else {
                        Outcome::Pending
                    },
                };
                if succeeded {
                    return Ok(Some(v));
                }
                found = Some(v);
            }
            Ok(found)
        })
    }

    fn refunds(&self) -> bool {
        true
    }

    fn refund<'a>(&'a self, req: &'a RefundRequest) -> BoxFuture<'a, DomainResult<RefundResult>> {
        Box::pin(async move {
            let rb = self
                .request(reqwest::Method::POST, "v1/refunds")?
                .header(
                    "Idempotency-Key",
                    format!("yiren-refund-{}", req.refund_ref),
                )
                .form(&[
                    ("payment_intent", req.payment_reference.as_str()),
                    ("amount", &req.amount.to_string()),
                    ("metadata[yiren_order]", &req.order_ref),
                ]);
            let (status, v) = self.call(rb).await?;
            if status == 200 && json_text(&v, "status") != "failed" {
                return Ok(RefundResult::Done {
                    reference: json_text(&v, "id"),
                });
            }
            Ok(RefundResult::Refused {
                reason: match error_message(&v) {
                    m if m.is_empty() => format!("stripe answered {status}"),
                    m => m,
                },
            })
        })
    }
}

/// An invoice's subscription and the metadata the subscription carries (both places an API
/// version puts them).
fn invoice_subscription(invoice: &serde_json::Value) -> (Option<&str>, &serde_json::Value) {
    let details = &invoice["parent"]["subscription_details"];
    let sub = invoice["subscription"]
        .as_str()
        .or_else(|| details["subscription"].as_str())
        .filter(|s| s.starts_with("sub_"));
    let metadata = if details["metadata"].is_object() {
        &details["metadata"]
    } else {
        &invoice["subscription_details"]["metadata"]
    };
    (sub, metadata)
}

/// The events about subscriptions: `Ok(None)` for any other.
fn subscription_event(
    kind: &str,
    object: &serde_json::Value,
) -> Result<Option<Verified>, Rejected> {
    let ended = |sub: &str| Verified {
        recurring: Some(Recurring::Ended(sub.to_string())),
        order_ref: json_text(&object["metadata"], ORDER_KEY),
        reference: String::new(),
        amount: 0,
        currency: String::new(),
        outcome: Outcome::Pending,
    };
    match kind {
        "customer.subscription.deleted" => {
            let sub = object["id"]
                .as_str()
                .filter(|s| s.starts_with("sub_"))
                .ok_or_else(|| Rejected::Malformed("no subscription id".into()))?;
            Ok(Some(ended(sub)))
        }
        "invoice.paid" | "invoice.payment_failed" => {
            let (sub, metadata) = invoice_subscription(object);
            let order_ref = json_text(metadata, ORDER_KEY);
            let Some(sub) = sub.filter(|_| !order_ref.is_empty()) else {
                // An invoice of something else on the account (another site's subscription).
                return Ok(Some(Verified {
                    recurring: None,
                    order_ref: String::new(),
                    reference: String::new(),
                    amount: 0,
                    currency: String::new(),
                    outcome: Outcome::Pending,
                }));
            };
            let reference = object["id"]
                .as_str()
                .filter(|s| s.starts_with("in_"))
                .ok_or_else(|| Rejected::Malformed("no invoice id".into()))?;
            let currency = object["currency"]
                .as_str()
                .filter(|c| c.len() == 3)
                .ok_or_else(|| Rejected::Malformed("no currency".into()))?;
            let paid = kind == "invoice.paid";
            let amount = if paid {
                object["amount_paid"]
                    .as_i64()
                    .filter(|a| *a >= 0)
                    .ok_or_else(|| Rejected::Malformed("no amount_paid".into()))?
            } else {
                object["amount_due"].as_i64().unwrap_or(0)
            };
            let first = object["billing_reason"] == "subscription_create";
            if first && !paid {
                // The first invoice failing is the checkout failing: nothing to record.
                return Ok(Some(Verified {
                    recurring: None,
                    order_ref,
                    reference: String::new(),
                    amount: 0,
                    currency: String::new(),
                    outcome: Outcome::Failed,
                }));
            }
            Ok(Some(Verified {
                recurring: Some(if first {
                    Recurring::Started(sub.to_string())
                } else {
                    Recurring::Renewal(sub.to_string())
                }),
                order_ref,
                reference: reference.to_string(),
                amount,
                currency: currency.to_ascii_uppercase(),
                outcome: if paid { Outcome::Paid } else { Outcome::Failed },
            }))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signature over `t.body`, against a vector computed apart:
    /// `printf '1700000000.{"id":"evt_1"}' | openssl dgst -sha256 -hmac whsec_test`.
    #[test]
    fn signs_the_timestamp_and_the_raw_body() {
        assert_eq!(
            signature("whsec_test", 1_700_000_000, br#"{"id":"evt_1"}"#),
            VECTOR
        );
    }

    const VECTOR: &str = "c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925";

    /// Invoices name their subscription in two places across API versions; both are read, an
    /// invoice without our order is someone else's, and the first invoice failing records nothing.
    #[test]
    fn reads_invoices_of_either_api_version() {
        let old = serde_json::json!({"id": "in_1", "subscription": "sub_1", "billing_reason": "subscription_cycle",
            "amount_paid": 1900, "currency": "usd", "subscription_details": {"metadata": {"yiren_order": "42"}}});
        let new = serde_json::json!({"id": "in_1", "billing_reason": "subscription_cycle", "amount_paid": 1900, "currency": "usd",
            "parent": {"subscription_details": {"subscription": "sub_1", "metadata": {"yiren_order": "42"}}}});
        for invoice in [old, new] {
            let v = subscription_event("invoice.paid", &invoice)
                .unwrap()
                .unwrap();
            assert_eq!(
                (
                    v.recurring,
                    v.order_ref.as_str(),
                    v.reference.as_str(),
                    v.amount,
                    v.currency.as_str(),
                    v.outcome
                ),
                (
                    Some(Recurring::Renewal("sub_1".into())),
                    "42",
                    "in_1",
                    1900,
                    "USD",
                    Outcome::Paid
                )
            );
            let f = subscription_event("invoice.payment_failed", &invoice)
                .unwrap()
                .unwrap();
            assert_eq!(
                (f.recurring, f.outcome),
                (Some(Recurring::Renewal("sub_1".into())), Outcome::Failed)
            );
        }
        let theirs = serde_json::json!({"id": "in_2", "subscription": "sub_2", "amount_paid": 5, "currency": "usd"});
        assert_eq!(
            subscription_event("invoice.paid", &theirs)
                .unwrap()
                .unwrap()
                .recurring,
            None
        );
        let first_failed = serde_json::json!({"id": "in_3", "subscription": "sub_3", "billing_reason": "subscription_create",
            "amount_due": 1900, "currency": "usd", "subscription_details": {"metadata": {"yiren_order": "43"}}});
        let v = subscription_event("invoice.payment_failed", &first_failed)
            .unwrap()
            .unwrap();
        assert_eq!((v.recurring, v.outcome), (None, Outcome::Failed));
        assert!(
            subscription_event("customer.created", &serde_json::json!({}))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn reads_every_v1_and_refuses_two_timestamps() {
        assert_eq!(
            parse_header("t=5,v1=aa,v0=zz,v1=bb"),
            Some((5, vec!["aa", "bb"]))
        );
        assert_eq!(parse_header("t=5,t=6,v1=aa"), None);
        assert_eq!(parse_header("v1=aa"), None);
        assert_eq!(parse_header("t=x,v1=aa"), None);
        assert_eq!(parse_header("garbage"), None);
    }
}
