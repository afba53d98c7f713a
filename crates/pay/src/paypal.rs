//! PayPal Checkout (Orders v2) — open to individuals in most countries. Facts:
//! `shared/specs/payments.md` §2.8, checked against developer.paypal.com (orders, webhooks,
//! verify-webhook-signature).
//!
//! - **Token**: `POST {base}v1/oauth2/token` with the client id and secret (Basic) →
//!   `access_token`, kept until shortly before it expires.
//! - **Create**: `POST {base}v2/checkout/orders` — `intent: CAPTURE`, one purchase unit with our
//!   order id as `reference_id` and `custom_id`, the amount in the currency's decimals, the order
//!   page as `return_url`/`cancel_url` — with `PayPal-Request-Id` per order, so asking twice
//!   opens one order. The customer is sent to the `payer-action` link (its `token` is PayPal's
//!   order id).
//! - **Capture**: an approved order is only a promise; the money is taken by
//!   `POST v2/checkout/orders/{id}/capture` (`PayPal-Request-Id` per order). It happens on
//!   whichever comes first: the customer's return (`token` must be the order this payment
//!   started), the `CHECKOUT.ORDER.APPROVED` webhook, or reconciliation. A second capture is
//!   answered `ORDER_ALREADY_CAPTURED`, and the order is read for the capture made. The payment's
//!   reference is the capture id, so it is recorded once.
//! - **Webhooks** are believed only when PayPal's `v1/notifications/verify-webhook-signature`
//!   says `SUCCESS` for the transmission headers, our webhook id and the event; if PayPal cannot
//!   be asked, the event is refused with a 503 and PayPal sends it again (up to 25 times over
//!   three days). `PAYMENT.CAPTURE.COMPLETED` is a payment; `…PENDING` waits; `…DENIED` failed;
//!   other events are acknowledged and ignored.
//! - **Query**: `GET v2/checkout/orders/{id}` (the id from the start).
//! - **Refund**: `POST v2/payments/captures/{id}/refund` with `PayPal-Request-Id` = our refund id.
//! - **Subscriptions** (an order of one membership counted in months): a product
//!   (`POST v1/catalogs/products`, one per gateway), a plan billing the order's total every so
//!   many months (`POST v1/billing/plans`, `interval_unit: MONTH`, no end) and a subscription on it
//!   with our order id as `custom_id` (`POST v1/billing/subscriptions`), each with a
//!   `PayPal-Request-Id`; the customer approves at the `approve` link. Each charge is a
//!   `PAYMENT.SALE.COMPLETED` naming the subscription (`billing_agreement_id`) and our order
//!   (`custom`): the first records the order's payment, the later ones renewals (reference: the
//!   sale id). `BILLING.SUBSCRIPTION.ACTIVATED` names the subscription for the order,
//!   `BILLING.SUBSCRIPTION.PAYMENT.FAILED` is a failed renewal, and `…CANCELLED`, `…EXPIRED`,
//!   `…SUSPENDED` end it. A refund of a subscription's sale is not sent through PayPal (its sales
//!   are refunded at `v1/payments/sale/{id}/refund`, not built): it is recorded for the owner.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use yiren_core::error::{DomainError, DomainResult};
use yiren_core::money;
use yiren_core::payment::settings::GatewayConfig;
use yiren_core::payment::{
    Ack, BoxFuture, Field, Instruction, Kind, Lookup, Outcome, PaymentGateway, PaymentRequest,
    RawNotification, Recurring, RefundRequest, RefundResult, Rejected, Verified,
};
use yiren_providers::http::HttpClient;

use crate::json_text;

/// The settings a PayPal gateway needs.
pub const KIND: Kind = Kind {
    kind: "paypal",
    fields: &[
        Field::text("base_url", "https://api-m.paypal.com/"),
        Field::text("client_id", ""),
        Field::secret("client_secret"),
        Field::text("webhook_id", ""),
    ],
};

/// Currencies PayPal takes with the decimals we keep (not TWD, which PayPal takes whole; not KRW).
const CURRENCIES: &[&str] = &[
    "USD", "EUR", "GBP", "HKD", "JPY", "SGD", "AUD", "CAD", "CHF", "NZD", "MYR", "THB", "CNY",
];

/// A PayPal REST app.
pub struct Paypal {
    id: String,
    base: String,
    client_id: String,
    secret: String,
    webhook_id: String,
    http: HttpClient,
    token: Mutex<Option<(String, Instant)>>,
}

fn unavailable(e: impl std::fmt::Display) -> DomainError {
    crate::unavailable("paypal", e)
}

/// PayPal's order id in a URL it gave (`…?token=ID`).
fn token_of(url: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The link the customer approves at (`payer-action` for an order, `approve` for a subscription).
fn approve_link(v: &serde_json::Value) -> String {
    v["links"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["rel"] == "payer-action" || l["rel"] == "approve")
        .map(|l| json_text(l, "href"))
        .unwrap_or_default()
}

/// The events about subscriptions (`resource` a sale or a subscription): `Ok(None)` for others.
fn subscription_event(
    kind: &str,
    resource: &serde_json::Value,
) -> Result<Option<Verified>, Rejected> {
    let id = |k: &str| {
        let s = json_text(resource, k);
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            Err(Rejected::Malformed(format!("no {k}")))
        } else {
            Ok(s)
        }
    };
    let about = |recurring, outcome| Verified {
        recurring: Some(recurring),
        order_ref: json_text(resource, "custom_id"),
        reference: String::new(),
        amount: 0,
        currency: String::new(),
        outcome,
    };
    Ok(Some(match kind {
        "PAYMENT.SALE.COMPLETED" => {
            if json_text(resource, "billing_agreement_id").is_empty() {
                // A sale of something else on the account.
                return Ok(None);
            }
            let currency = json_text(&resource["amount"], "currency");
            let amount = money::parse(&json_text(&resource["amount"], "total"), &currency, "total")
                .map_err(|_| Rejected::Malformed("no amount".into()))?;
            Verified {
                recurring: Some(Recurring::Payment(id("billing_agreement_id")?)),
                order_ref: json_text(resource, "custom"),
                reference: id("id")?,
                amount,
                currency,
                outcome: if json_text(resource, "state") == "completed" {
                    Outcome::Paid
                } else {
                    Outcome::Pending
                },
            }
        }
        "BILLING.SUBSCRIPTION.ACTIVATED" => about(Recurring::Started(id("id")?), Outcome::Pending),
        "BILLING.SUBSCRIPTION.PAYMENT.FAILED" => {
            about(Recurring::Renewal(id("id")?), Outcome::Failed)
        }
        "BILLING.SUBSCRIPTION.CANCELLED"
        | "BILLING.SUBSCRIPTION.EXPIRED"
        | "BILLING.SUBSCRIPTION.SUSPENDED" => about(Recurring::Ended(id("id")?), Outcome::Pending),
        _ => return Ok(None),
    }))
}

/// A capture (`{id, status, amount: {currency_code, value}, custom_id}`) as what it says.
fn capture_of(c: &serde_json::Value, order_ref: &str) -> Option<Verified> {
    let currency = json_text(&c["amount"], "currency_code");
    let amount = money::parse(&json_text(&c["amount"], "value"), &currency, "value").ok()?;
    let custom = json_text(c, "custom_id");
    Some(Verified {
        recurring: None,
        order_ref: if custom.is_empty() {
            order_ref.to_string()
        } else {
            custom
        },
        reference: json_text(c, "id"),
        amount,
        currency,
        outcome: match json_text(c, "status").as_str() {
            "COMPLETED" => Outcome::Paid,
            "DECLINED" | "FAILED" => Outcome::Failed,
            _ => Outcome::Pending,
        },
    })
}

/// The first capture of an order (`purchase_units[0].payments.captures[0]`).
fn first_capture(order: &serde_json::Value) -> Option<Verified> {
    let unit = &order["purchase_units"][0];
    capture_of(
        &unit["payments"]["captures"][0],
        unit["custom_id"].as_str().unwrap_or(""),
    )
}

impl Paypal {
    /// From the owner's settings.
    pub fn from_config(c: &GatewayConfig, http: HttpClient) -> DomainResult<Paypal> {
        let base = crate::base_url(c)?;
        let text = |name: &'static str| {
            let v = c.field(name).trim().to_string();
            if v.is_empty() || v.len() > 100 || !v.bytes().all(|b| b.is_ascii_graphic()) {
                Err(DomainError::invalid(name, "payments.field_invalid"))
            } else {
                Ok(v)
            }
        };
        Ok(Paypal {
            id: c.id.clone(),
            base,
            client_id: text("client_id")?,
            secret: crate::secret(c, "client_secret")?,
            webhook_id: text("webhook_id")?,
            http,
            token: Mutex::new(None),
        })
    }

    /// An access token (kept until a minute before it expires).
    async fn token(&self) -> DomainResult<String> {
        if let Some((t, until)) = self.token.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            if Instant::now() < until {
                return Ok(t);
            }
        }
        let rb = self
            .http
            .request(
                reqwest::Method::POST,
                &format!("{}v1/oauth2/token", self.base),
            )
            .map_err(unavailable)?
            .basic_auth(&self.client_id, Some(&self.secret))
            .form(&[("grant_type", "client_credentials")]);
        let v = crate::read_json(&self.http, "paypal", rb).await?;
        let token = json_text(&v, "access_token");
        if token.is_empty() {
            return Err(unavailable(format!(
                "no access token: {}",
                json_text(&v, "error_description")
            )));
        }
        let life = v["expires_in"].as_u64().unwrap_or(300).saturating_sub(60);
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((token.clone(), Instant::now() + Duration::from_secs(life)));
        Ok(token)
    }

    /// Call the API; (status, JSON). 5xx and 429 are worth retrying (an `Err`).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        request_id: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> DomainResult<(u16, serde_json::Value)> {
        let mut rb = self
            .http
            .request(method, &format!("{}{path}", self.base))
            .map_err(unavailable)?
            .bearer_auth(self.token().await?);
        if let Some(id) = request_id {
            rb = rb.header("PayPal-Request-Id", id);
        }
        if let Some(b) = body {
            rb = rb
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let r = self.http.send(rb).await.map_err(unavailable)?;
        if r.status >= 500 || r.status == 429 {
            return Err(unavailable(format!("{path} answered {}", r.status)));
        }
        Ok((
            r.status,
            serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null),
        ))
    }

    /// Take the money of an approved order; None when it is not approved yet.
    async fn capture(&self, order_id: &str) -> DomainResult<Option<Verified>> {
        let path = format!("v2/checkout/orders/{order_id}/capture");
        let request_id = format!("yiren-capture-{order_id}");
        let (status, v) = self
            .call(
                reqwest::Method::POST,
                &path,
                Some(&request_id),
                Some(serde_json::json!({})),
            )
            .await?;
        let issue = json_text(&v["details"][0], "issue");
        match (status, issue.as_str()) {
            (200 | 201, _) => Ok(first_capture(&v)),
            (422, "ORDER_ALREADY_CAPTURED") => self.order(order_id).await,
            (422, "ORDER_NOT_APPROVED") => Ok(None),
            (404, _) => Err(DomainError::invalid(
                "token",
                "payments.paypal_order_unknown",
            )),
            _ => Err(unavailable(format!("capture ({status}): {issue}"))),
        }
    }

    /// Start a subscription billing the order's total every `months` months; the approval link.
    async fn subscribe(&self, req: &PaymentRequest, months: i64) -> DomainResult<Instruction> {
        let refused = |what: &str, status: u16, v: &serde_json::Value| {
            unavailable(format!(
                "{what} refused ({status}): {}",
                json_text(v, "message")
            ))
        };
        let product = serde_json::json!({"name": "Memberships", "type": "SERVICE"});
        let (status, v) = self
            .call(
                reqwest::Method::POST,
                "v1/catalogs/products",
                Some(&format!("yiren-product-{}", self.id)),
                Some(product),
            )
            .await?;
        let product_id = json_text(&v, "id");
        if !(200..300).contains(&status) || product_id.is_empty() {
            return Err(refused("product", status, &v));
        }
        let plan = serde_json::json!({
            "product_id": product_id, "name": format!("{} / {months} month(s)", req.description),
            "billing_cycles": [{
                "frequency": {"interval_unit": "MONTH", "interval_count": months},
                "tenure_type": "REGULAR", "sequence": 1, "total_cycles": 0,
                "pricing_scheme": {"fixed_price": {"currency_code": req.currency, "value": money::format(req.amount, &req.currency)}},
            }],
            "payment_preferences": {"auto_bill_outstanding": true, "payment_failure_threshold": 3},
        });
        let (status, v) = self
            .call(
                reqwest::Method::POST,
                "v1/billing/plans",
                Some(&format!("yiren-plan-{}", req.order_ref)),
                Some(plan),
            )
            .await?;
        let plan_id = json_text(&v, "id");
        if !(200..300).contains(&status) || plan_id.is_empty() {
            return Err(refused("plan", status, &v));
        }
        let subscription = serde_json::json!({
            "plan_id": plan_id, "custom_id": req.order_ref,
            "application_context": {
                "return_url": req.return_url, "cancel_url": req.return_url,
                "user_action": "SUBSCRIBE_NOW", "shipping_preference": "NO_SHIPPING",
            },
        });
        let (status, v) = self
            .call(
                reqwest::Method::POST,
                "v1/billing/subscriptions",
                Some(&format!("yiren-subscription-{}", req.order_ref)),
                Some(subscription),
            )
            .await?;
        let link = approve_link(&v);
        if !(200..300).contains(&status) || !link.starts_with("http") {
            return Err(refused("subscription", status, &v));
        }
        Ok(Instruction::Redirect { url: link })
    }

    /// What PayPal says of one of its orders (capturing it if approved).
    async fn order(&self, order_id: &str) -> DomainResult<Option<Verified>> {
        let (status, v) = self
            .call(
                reqwest::Method::GET,
                &format!("v2/checkout/orders/{order_id}"),
                None,
                None,
            )
            .await?;
        if status == 404 {
            return Ok(None);
        }
        if status != 200 {
            return Err(unavailable(format!("order ({status})")));
        }
        let custom = json_text(&v["purchase_units"][0], "custom_id");
        match json_text(&v, "status").as_str() {
            "COMPLETED" => Ok(first_capture(&v)),
            "APPROVED" => Box::pin(self.capture(order_id)).await,
            "VOIDED" => Ok(Some(Verified {
                recurring: None,
                order_ref: custom,
                reference: String::new(),
                amount: 0,
                currency: String::new(),
                outcome: Outcome::Failed,
            })),
            _ => Ok(Some(Verified {
                recurring: None,
                order_ref: custom,
                reference: String::new(),
                amount: 0,
                currency: String::new(),
                outcome: Outcome::Pending,
            })),
        }
    }
}

impl PaymentGateway for Paypal {
    fn id(&self) -> &str {
        &self.id
    }

    fn accepts(&self, currency: &str) -> bool {
        CURRENCIES.contains(&currency)
    }

    fn create<'a>(&'a self, req: &'a PaymentRequest) -> BoxFuture<'a, DomainResult<Instruction>> {
        Box::pin(async move {
            if !self.accepts(&req.currency) {
                return Err(DomainError::invalid("gateway", "checkout.gateway_currency"));
            }
            if let Some(months) = req.every_months {
                return self.subscribe(req, months).await;
            }
            let body = serde_json::json!({
                "intent": "CAPTURE",
                "purchase_units": [{
                    "reference_id": req.order_ref, "custom_id": req.order_ref, "description": req.description,
                    "amount": {"currency_code": req.currency, "value": money::format(req.amount, &req.currency)},
                }],
                "payment_source": {"paypal": {"experience_context": {
                    "return_url": req.return_url, "cancel_url": req.return_url,
                    "user_action": "PAY_NOW", "shipping_preference": "NO_SHIPPING",
                }}},
            });
            let request_id = format!("yiren-order-{}", req.order_ref);
            let (status, v) = self
                .call(
                    reqwest::Method::POST,
                    "v2/checkout/orders",
                    Some(&request_id),
                    Some(body),
                )
                .await?;
            let link = approve_link(&v);
            if !(200..300).contains(&status) || !link.starts_with("http") {
                return Err(unavailable(format!(
                    "order refused ({status}): {}",
                    json_text(&v, "message")
                )));
            }
            Ok(Instruction::Redirect { url: link })
        })
    }

    fn verify(&self, _raw: &RawNotification, _now_ms: i64) -> Result<Verified, Rejected> {
        // Only PayPal can say whether a webhook is PayPal's: see verify_notification.
        Err(Rejected::Unsupported)
    }

    fn verify_notification<'a>(
        &'a self,
        raw: &'a RawNotification,
        _now_ms: i64,
    ) -> BoxFuture<'a, Result<Verified, Rejected>> {
        Box::pin(async move {
            let h = |k: &str| raw.header(k).unwrap_or("").to_string();
            let names = [
                "paypal-transmission-id",
                "paypal-transmission-time",
                "paypal-transmission-sig",
                "paypal-cert-url",
                "paypal-auth-algo",
            ];
            if names.iter().any(|k| h(k).is_empty()) {
                return Err(Rejected::Signature);
            }
            if raw.body.len() > 64 * 1024 {
                return Err(Rejected::Malformed("too large".into()));
            }
            let event: serde_json::Value = serde_json::from_slice(&raw.body)
                .map_err(|_| Rejected::Malformed("not JSON".into()))?;
            let check = serde_json::json!({
                "transmission_id": h(names[0]), "transmission_time": h(names[1]),
                "transmission_sig": h(names[2]), "cert_url": h(names[3]), "auth_algo": h(names[4]),
                "webhook_id": self.webhook_id, "webhook_event": event,
            });
            let (status, v) = self
                .call(
                    reqwest::Method::POST,
                    "v1/notifications/verify-webhook-signature",
                    None,
                    Some(check),
                )
                .await
                .map_err(|e| Rejected::Unavailable(e.to_string()))?;
            if status != 200 {
                return Err(Rejected::Unavailable(format!(
                    "verification answered {status}"
                )));
            }
            if v["verification_status"] != "SUCCESS" {
                return Err(Rejected::Signature);
            }
            let resource = &event["resource"];
            if let Some(v) =
                subscription_event(event["event_type"].as_str().unwrap_or(""), resource)?
            {
                return Ok(v);
            }
            let ignored = |outcome| Verified {
                recurring: None,
                order_ref: json_text(resource, "custom_id"),
                reference: String::new(),
                amount: 0,
                currency: String::new(),
                outcome,
            };
            match event["event_type"].as_str().unwrap_or("") {
                "PAYMENT.CAPTURE.COMPLETED" => capture_of(resource, "")
                    .filter(|v| !v.reference.is_empty() && !v.order_ref.is_empty())
                    .ok_or_else(|| Rejected::Malformed("not a capture".into())),
                "PAYMENT.CAPTURE.DENIED" => Ok(ignored(Outcome::Failed)),
                "CHECKOUT.ORDER.APPROVED" => {
                    let id = json_text(resource, "id");
                    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                        return Err(Rejected::Malformed("no order id".into()));
                    }
                    match self.capture(&id).await {
                        Ok(Some(v)) => Ok(v),
                        Ok(None) => Ok(ignored(Outcome::Pending)),
                        Err(DomainError::Invalid { .. }) => {
                            Err(Rejected::Malformed("no such PayPal order".into()))
                        }
                        Err(e) => Err(Rejected::Unavailable(e.to_string())),
                    }
                }
                _ => Ok(ignored(Outcome::Pending)),
            }
        })
    }

    fn complete<'a>(
        &'a self,
        query: &'a str,
        started: Option<&'a str>,
    ) -> BoxFuture<'a, DomainResult<Option<Verified>>> {
        Box::pin(async move {
            let (Some(token), Some(ours)) =
                (token_of(&format!("?{query}")), started.and_then(token_of))
            else {
                return Ok(None);
            };
            if token != ours {
                return Ok(None);
            }
            self.capture(&token).await
        })
    }

    fn bills_recurring(&self) -> bool {
        true
    }

    fn ack(&self) -> Ack {
        Ack::text(200, "ok")
    }

    fn nack(&self, retry: bool) -> Ack {
        Ack::text(if retry { 503 } else { 400 }, "fail")
    }

    fn query<'a>(&'a self, q: &'a Lookup) -> BoxFuture<'a, DomainResult<Option<Verified>>> {
        Box::pin(async move {
            let Some(token) = q.started.as_deref().and_then(token_of) else {
                return Ok(None);
            };
            self.order(&token).await
        })
    }

    fn refunds(&self) -> bool {
        true
    }

    fn refund<'a>(&'a self, req: &'a RefundRequest) -> BoxFuture<'a, DomainResult<RefundResult>> {
        Box::pin(async move {
            if !req
                .payment_reference
                .bytes()
                .all(|b| b.is_ascii_alphanumeric())
            {
                return Ok(RefundResult::Refused {
                    reason: "not a PayPal capture".into(),
                });
            }
            let body = serde_json::json!({"amount": {
                "currency_code": req.currency, "value": money::format(req.amount, &req.currency),
            }});
            let (status, v) = self
                .call(
                    reqwest::Method::POST,
                    &format!("v2/payments/captures/{}/refund", req.payment_reference),
                    Some(&format!("yiren-refund-{}", req.refund_ref)),
                    Some(body),
                )
                .await?;
            if (200..300).contains(&status) && json_text(&v, "status") != "FAILED" {
                return Ok(RefundResult::Done {
                    reference: json_text(&v, "id"),
                });
            }
            Ok(RefundResult::Refused {
                reason: format!(
                    "{} {}",
                    json_text(&v["details"][0], "issue"),
                    json_text(&v, "message")
                ),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_id_is_the_token_of_its_url() {
        assert_eq!(
            token_of("https://www.paypal.com/checkoutnow?token=5O190127TN364715T").as_deref(),
            Some("5O190127TN364715T")
        );
        assert_eq!(
            token_of("https://x/?a=1&token=ABC&PayerID=Z").as_deref(),
            Some("ABC")
        );
        assert_eq!(token_of("https://x/?token=../etc"), None);
        assert_eq!(token_of("https://x/"), None);
    }
}
