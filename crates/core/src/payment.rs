//! Payment gateways: the [`PaymentGateway`] trait every gateway implements, the registry the
//! server holds them in, and the ONE notification handler all of them go through.
//!
//! Language: a gateway *creates* a payment for an order (a redirect, a QR payload, an
//! auto-submitting form, or — for the manual gateway — the owner's own instructions); it later
//! sends a *notification* (a signed request) that the gateway *verifies* from the raw request; the
//! handler answers with the gateway's exact *acknowledgement* only after the payment is committed,
//! so a crash before the commit makes the gateway retry (RELIABILITY PAY-5); the gateway's
//! transaction id is the payment's *reference*, unique per gateway, so a repeated notification is
//! acknowledged and changes nothing (PAY-1); amount and currency are checked against the order
//! (PAY-6) — a mismatch is parked on the order's timeline for the owner and acknowledged, since
//! retrying cannot fix it.
//!
//! Boundaries: gateways never touch the database; `order::pay` records the payment and applies the
//! state machine. Forged or malformed notifications change nothing and are logged as security
//! events (target `security`).

use std::collections::BTreeMap;
use std::sync::Arc;

pub use futures::future::BoxFuture;

use crate::error::{DomainError, DomainResult};
use crate::order::{self, Paid, Received};
use crate::Ctx;

/// What a gateway needs to create a payment.
#[derive(Debug, Clone)]
pub struct PaymentRequest {
    /// Our order id, as the gateway carries it back (`out_trade_no` and the like).
    pub order_ref: String,
    pub number: i64,
    pub amount: i64,
    pub currency: String,
    pub description: String,
    /// Where the customer comes back to, and where the gateway sends notifications.
    pub return_url: String,
    pub notify_url: String,
}

/// How the customer pays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    Redirect {
        url: String,
    },
    Qr {
        payload: String,
    },
    Form {
        action: String,
        fields: Vec<(String, String)>,
    },
    /// The order page shows the owner's own instructions (the manual gateway).
    Manual,
}

/// A notification as it arrived, untouched.
#[derive(Debug, Clone, Default)]
pub struct RawNotification {
    pub method: String,
    /// The query string, undecoded.
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawNotification {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the gateway says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Paid,
    Pending,
    Failed,
}

/// A notification whose signature and merchant the gateway checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub order_ref: String,
    pub reference: String,
    pub amount: i64,
    pub currency: String,
    pub outcome: Outcome,
}

/// Why a notification was not believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("signature missing or wrong")]
    Signature,
    #[error("not for this merchant")]
    Merchant,
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("too old or from the future")]
    Stale,
    #[error("this gateway sends no notifications")]
    Unsupported,
}

/// The exact answer a gateway expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

/// A refund to send through the gateway that took the payment.
#[derive(Debug, Clone)]
pub struct RefundRequest {
    /// Our order id, as the payment carried it.
    pub order_ref: String,
    /// The gateway's transaction id of the payment being refunded.
    pub payment_reference: String,
    /// Our id for this refund (`out_refund_no` and the like): the gateway refunds once per id, so
    /// sending the same request again after a crash or a timeout cannot refund twice.
    pub refund_ref: String,
    pub amount: i64,
    /// What the payment was (some gateways want it beside the refund amount).
    pub payment_amount: i64,
    pub currency: String,
    pub reason: String,
}

/// What the gateway said about a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundResult {
    /// The money is on its way back; the gateway's refund id.
    Done { reference: String },
    /// The gateway refused it for good (the payment is too old, the balance is short, ...): the
    /// owner has to send the money another way.
    Refused { reason: String },
}

/// A payment gateway. Implementations are pure protocol: signing, verifying, formatting amounts.
pub trait PaymentGateway: Send + Sync + 'static {
    /// Stable id, used in URLs (`/payments/{id}/notify`) and as the transaction's gateway.
    fn id(&self) -> &'static str;
    /// Currencies it accepts (ISO 4217).
    fn accepts(&self, currency: &str) -> bool;
    /// Create a payment for an order.
    fn create<'a>(&'a self, req: &'a PaymentRequest) -> BoxFuture<'a, DomainResult<Instruction>>;
    /// Check a notification from the raw request.
    fn verify(&self, raw: &RawNotification, now_ms: i64) -> Result<Verified, Rejected>;
    /// The answer that stops the gateway's retries.
    fn ack(&self) -> Ack;
    /// The answer for a notification that was not accepted (the gateway may retry).
    fn nack(&self, retry: bool) -> Ack;
    /// Ask the gateway about a payment (reconciliation); None when it knows nothing yet.
    fn query<'a>(&'a self, order_ref: &'a str) -> BoxFuture<'a, DomainResult<Option<Verified>>>;
    /// Whether [`PaymentGateway::refund`] sends money back; when not, a refund is recorded for
    /// the owner to send by hand.
    fn refunds(&self) -> bool {
        false
    }
    /// Send a refund. An `Err` is a failure worth retrying (network, 5xx): the request is sent
    /// again with the same `refund_ref`.
    fn refund<'a>(&'a self, req: &'a RefundRequest) -> BoxFuture<'a, DomainResult<RefundResult>> {
        let _ = req;
        Box::pin(async {
            Ok(RefundResult::Refused {
                reason: "this gateway does not refund".into(),
            })
        })
    }
}

/// The owner is paid directly (receipt QR code, bank transfer) and confirms in admin.
pub struct Manual;

impl PaymentGateway for Manual {
    fn id(&self) -> &'static str {
        "manual"
    }
    fn accepts(&self, _currency: &str) -> bool {
        true
    }
    fn create<'a>(&'a self, _req: &'a PaymentRequest) -> BoxFuture<'a, DomainResult<Instruction>> {
        Box::pin(async { Ok(Instruction::Manual) })
    }
    fn verify(&self, _raw: &RawNotification, _now_ms: i64) -> Result<Verified, Rejected> {
        Err(Rejected::Unsupported)
    }
    fn ack(&self) -> Ack {
        Ack {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            body: "ok".into(),
        }
    }
    fn nack(&self, _retry: bool) -> Ack {
        Ack {
            status: 404,
            content_type: "text/plain; charset=utf-8",
            body: "not found".into(),
        }
    }
    fn query<'a>(&'a self, _order_ref: &'a str) -> BoxFuture<'a, DomainResult<Option<Verified>>> {
        Box::pin(async { Ok(None) })
    }
}

/// The gateways this server offers, by id. The manual gateway is always there.
#[derive(Clone)]
pub struct Gateways(Arc<BTreeMap<&'static str, Arc<dyn PaymentGateway>>>);

impl Gateways {
    /// The manual gateway plus `extra`.
    pub fn new(extra: Vec<Arc<dyn PaymentGateway>>) -> Gateways {
        let mut m: BTreeMap<&'static str, Arc<dyn PaymentGateway>> = BTreeMap::new();
        m.insert("manual", Arc::new(Manual));
        for g in extra {
            m.insert(g.id(), g);
        }
        Gateways(Arc::new(m))
    }

    /// The gateway with this id.
    pub fn get(&self, id: &str) -> Option<Arc<dyn PaymentGateway>> {
        self.0.get(id).cloned()
    }

    /// Every id.
    pub fn ids(&self) -> Vec<&'static str> {
        self.0.keys().copied().collect()
    }
}

impl Default for Gateways {
    fn default() -> Self {
        Gateways::new(vec![])
    }
}

impl std::fmt::Debug for Gateways {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// Start paying an order (as just placed) with its gateway.
pub async fn start(
    ctx: &Ctx,
    o: &yiren_store::order::OrderRow,
    base_url: &str,
) -> DomainResult<Instruction> {
    let gw = ctx
        .gateways
        .get(&o.gateway)
        .ok_or(DomainError::invalid("gateway", "checkout.gateway_unknown"))?;
    let key = order::access_key(ctx, o.id);
    let req = PaymentRequest {
        order_ref: o.id.to_string(),
        number: o.number,
        amount: o.total,
        currency: o.currency.clone(),
        description: format!("#{}", o.number),
        return_url: format!("{base_url}/orders/{}?key={key}", o.id),
        notify_url: format!("{base_url}/payments/{}/notify", gw.id()),
    };
    gw.create(&req).await
}

/// The one notification handler. Verifies, records the payment (idempotent on the gateway's
/// reference), and only then returns the acknowledgement; anything not committed gets the
/// gateway's failure answer so it tries again.
pub async fn notify(ctx: &Ctx, gw: &dyn PaymentGateway, raw: &RawNotification) -> Ack {
    let v = match gw.verify(raw, ctx.now()) {
        Ok(v) => v,
        Err(why) => {
            tracing::warn!(target: "security", gateway = gw.id(), reason = %why, "payment notification rejected");
            return gw.nack(false);
        }
    };
    let Ok(order_id) = v.order_ref.parse::<i64>() else {
        tracing::warn!(target: "security", gateway = gw.id(), "payment notification for an unknown order");
        return gw.nack(false);
    };
    if v.outcome != Outcome::Paid {
        // Nothing to record yet: a pending or failed attempt leaves the order waiting.
        return gw.ack();
    }
    let r = Received {
        gateway: gw.id().to_string(),
        reference: v.reference.clone(),
        amount: v.amount,
        currency: v.currency.clone(),
    };
    match order::pay(ctx, order_id, &r, &format!("gateway:{}", gw.id())).await {
        Ok(Paid::Applied | Paid::Duplicate) => {
            // PAY-5: committed, but the answer never reaches the gateway (it will retry).
            fail::fail_point!("payment.notify.after_commit", |_| gw.nack(true));
            gw.ack()
        }
        // Parked on the order's timeline (amount or currency mismatch, a payment the order's
        // state does not allow): retrying cannot change it.
        Err(DomainError::Conflict { key }) => {
            tracing::warn!(target: "security", gateway = gw.id(), order_id, reason = key, "payment notification parked");
            gw.ack()
        }
        Err(DomainError::NotFound) => {
            tracing::warn!(target: "security", gateway = gw.id(), "payment notification for an unknown order");
            gw.nack(false)
        }
        Err(e) => {
            tracing::error!(gateway = gw.id(), order_id, error = %e, "payment notification not recorded; the gateway will retry");
            gw.nack(true)
        }
    }
}
