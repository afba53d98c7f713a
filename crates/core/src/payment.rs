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
use std::sync::{Arc, RwLock};

use serde::Serialize;

pub use futures::future::BoxFuture;

use crate::error::{DomainError, DomainResult};
use crate::order::{self, Paid, Received};
use crate::Ctx;

pub mod reconcile;
pub mod settings;

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
    /// The paying customer's IP address (some gateways' APIs want it).
    pub client_ip: String,
    /// The order is one membership counted in months: a gateway that bills by itself
    /// ([`PaymentGateway::bills_recurring`]) may set up a subscription charging the same amount
    /// every this many months (`core::recurring`). None for everything else.
    pub every_months: Option<i64>,
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

/// A payment to ask a gateway about (reconciliation). Some gateways' queries answer with a
/// status only: the payment was created with this amount, signed, and the gateway takes no
/// other, so a "paid" answer is a payment of exactly this.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub order_ref: String,
    pub amount: i64,
    pub currency: String,
    /// What the gateway answered when the payment was started (the redirect URL or QR payload),
    /// for gateways that can only be asked by their own id (PayPal's order id is in its URL).
    pub started: Option<String>,
}

impl Lookup {
    /// The answer of a gateway whose query names a status only: the payment this order was
    /// created with, keyed by the order id (for gateways that key a payment by it).
    pub fn status_only(&self, outcome: Outcome) -> Verified {
        Verified {
            recurring: None,
            order_ref: self.order_ref.clone(),
            reference: self.order_ref.clone(),
            amount: self.amount,
            currency: self.currency.clone(),
            outcome,
        }
    }
}

/// A notification about a gateway's subscription (a membership the gateway bills by itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recurring {
    /// The payment (the outcome) that started subscription `.0`: the order's membership renews
    /// through the gateway.
    Started(String),
    /// A renewal charge of subscription `.0`: paid (recorded as the plan's next period) or failed
    /// (the customer is told).
    Renewal(String),
    /// A paid charge of subscription `.0` that the gateway does not say is the first or a
    /// renewal (PayPal's sales): the first when no plan has the subscription yet, else a renewal.
    Payment(String),
    /// The gateway stopped subscription `.0` (cancelled, expired): no more renewals.
    Ended(String),
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
    /// Set when the notification is about a subscription the gateway bills.
    pub recurring: Option<Recurring>,
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
    /// It could not be checked now (the gateway's verification service did not answer): the
    /// gateway is asked to send it again.
    #[error("cannot be checked now: {0}")]
    Unavailable(String),
}

/// The exact answer a gateway expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Ack {
    /// A plain-text answer (what most gateways read).
    pub fn text(status: u16, body: &str) -> Ack {
        Ack {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
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
    fn id(&self) -> &str;
    /// Currencies it accepts (ISO 4217).
    fn accepts(&self, currency: &str) -> bool;
    /// Create a payment for an order.
    fn create<'a>(&'a self, req: &'a PaymentRequest) -> BoxFuture<'a, DomainResult<Instruction>>;
    /// Check a notification from the raw request.
    fn verify(&self, raw: &RawNotification, now_ms: i64) -> Result<Verified, Rejected>;
    /// Check a notification, for gateways whose check needs a call (PayPal verifies by asking
    /// PayPal, and takes an approved payment then); the others check it in place.
    fn verify_notification<'a>(
        &'a self,
        raw: &'a RawNotification,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Verified, Rejected>> {
        Box::pin(async move { self.verify(raw, now_ms) })
    }
    /// The customer came back with `query` (the gateway's part of the return URL) after
    /// [`PaymentGateway::verify`] did not believe it as a signed answer: some gateways take the
    /// payment now (PayPal's capture). `started` is what the gateway answered when the payment
    /// was started. None when there is nothing to do.
    fn complete<'a>(
        &'a self,
        query: &'a str,
        started: Option<&'a str>,
    ) -> BoxFuture<'a, DomainResult<Option<Verified>>> {
        let _ = (query, started);
        Box::pin(async { Ok(None) })
    }
    /// The answer that stops the gateway's retries.
    fn ack(&self) -> Ack;
    /// The answer for a notification that was not accepted (the gateway may retry).
    fn nack(&self, retry: bool) -> Ack;
    /// Ask the gateway about a payment (reconciliation); None when it knows nothing yet.
    fn query<'a>(&'a self, q: &'a Lookup) -> BoxFuture<'a, DomainResult<Option<Verified>>>;
    /// Whether it charges renewals by itself when asked ([`PaymentRequest::every_months`]) and
    /// reports them ([`Recurring`]); when not, renewals go by order and reminder.
    fn bills_recurring(&self) -> bool {
        false
    }
    /// Whether [`PaymentGateway::refund`] sends money back; when not, a refund is recorded for
    /// the owner to send by hand.
    fn refunds(&self) -> bool {
        false
    }
    /// Whether the customer pays the owner directly ([`Instruction::Manual`]): nothing is started
    /// at a gateway and nothing is kept, so showing the instructions reads nothing.
    fn paid_offline(&self) -> bool {
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
    fn id(&self) -> &str {
        "manual"
    }
    fn accepts(&self, _currency: &str) -> bool {
        true
    }
    fn create<'a>(&'a self, _req: &'a PaymentRequest) -> BoxFuture<'a, DomainResult<Instruction>> {
        Box::pin(async { Ok(Instruction::Manual) })
    }
    fn paid_offline(&self) -> bool {
        true
    }
    fn verify(&self, _raw: &RawNotification, _now_ms: i64) -> Result<Verified, Rejected> {
        Err(Rejected::Unsupported)
    }
    fn ack(&self) -> Ack {
        Ack::text(200, "ok")
    }
    fn nack(&self, _retry: bool) -> Ack {
        Ack::text(404, "not found")
    }
    fn query<'a>(&'a self, _q: &'a Lookup) -> BoxFuture<'a, DomainResult<Option<Verified>>> {
        Box::pin(async { Ok(None) })
    }
}

/// A setting a kind of gateway needs (the admin form is drawn from these).
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// Key in [`settings::GatewayConfig`]'s `fields` or `secrets`.
    pub name: &'static str,
    /// Write-only in admin, encrypted at rest (SEC-1).
    pub secret: bool,
    pub required: bool,
    /// The value a new gateway starts with.
    pub default: &'static str,
    /// When not empty, the only values allowed.
    pub choices: &'static [&'static str],
}

impl Field {
    /// A setting the owner fills in, shown in admin; a new gateway starts with `default`.
    pub const fn text(name: &'static str, default: &'static str) -> Field {
        Field {
            name,
            secret: false,
            required: true,
            default,
            choices: &[],
        }
    }

    /// A setting the owner may leave empty.
    pub const fn optional(name: &'static str) -> Field {
        Field {
            name,
            secret: false,
            required: false,
            default: "",
            choices: &[],
        }
    }

    /// A secret: write-only in admin, sealed at rest.
    pub const fn secret(name: &'static str) -> Field {
        Field {
            name,
            secret: true,
            required: true,
            default: "",
            choices: &[],
        }
    }

    /// One of `choices`, starting at `default`.
    pub const fn choice(
        name: &'static str,
        default: &'static str,
        choices: &'static [&'static str],
    ) -> Field {
        Field {
            name,
            secret: false,
            required: true,
            default,
            choices,
        }
    }
}

/// A kind of gateway the owner can configure (EPay, XorPay, ...).
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    /// `epay`, ...; message keys `payments.kind.{kind}`, `payments.field.{kind}.{field}`.
    pub kind: &'static str,
    pub fields: &'static [Field],
}

/// Makes gateways from the owner's settings; the binary supplies it (the implementations live in
/// `yiren-pay`, which speaks to the outside world).
pub trait GatewayFactory: Send + Sync + 'static {
    /// The kinds it can make.
    fn kinds(&self) -> &'static [Kind];
    /// A gateway from a configuration whose required fields are filled; `Invalid` names what is
    /// wrong.
    fn build(&self, c: &settings::GatewayConfig) -> DomainResult<Arc<dyn PaymentGateway>>;
}

/// A gateway the checkout offers: its id and the name customers see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Offer {
    pub id: String,
    pub name: String,
}

/// The gateways this server knows, by id: the manual one, any fixed at start-up (tests' fakes),
/// and those the owner configured in admin — rebuilt whenever the owner saves them. A configured
/// gateway that is disabled still verifies notifications and answers queries for payments
/// already started; only enabled ones are offered at checkout.
#[derive(Clone)]
pub struct Gateways(Arc<Registry>);

struct Registry {
    fixed: Vec<Arc<dyn PaymentGateway>>,
    factory: Option<Arc<dyn GatewayFactory>>,
    live: RwLock<Arc<Live>>,
}

#[derive(Default)]
struct Live {
    by_id: BTreeMap<String, Arc<dyn PaymentGateway>>,
    offered: Vec<Offer>,
}

impl Gateways {
    /// The manual gateway plus `extra`, all offered; nothing configurable.
    pub fn new(extra: Vec<Arc<dyn PaymentGateway>>) -> Gateways {
        Gateways::with_factory(extra, None)
    }

    /// As [`Gateways::new`], with the factory that makes the owner's configured gateways.
    pub fn with_factory(
        extra: Vec<Arc<dyn PaymentGateway>>,
        factory: Option<Arc<dyn GatewayFactory>>,
    ) -> Gateways {
        let mut fixed: Vec<Arc<dyn PaymentGateway>> = vec![Arc::new(Manual)];
        fixed.extend(extra);
        let g = Gateways(Arc::new(Registry {
            fixed,
            factory,
            live: RwLock::new(Arc::default()),
        }));
        g.swap(BTreeMap::new(), vec![]);
        g
    }

    fn swap(&self, configured: BTreeMap<String, Arc<dyn PaymentGateway>>, offered: Vec<Offer>) {
        let mut by_id = configured;
        let mut all = vec![];
        for g in &self.0.fixed {
            by_id.insert(g.id().to_string(), g.clone());
            all.push(Offer {
                id: g.id().to_string(),
                name: String::new(),
            });
        }
        all.extend(offered);
        *self.0.live.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Live {
            by_id,
            offered: all,
        });
    }

    fn live(&self) -> Arc<Live> {
        self.0
            .live
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The gateway with this id (enabled or not).
    pub fn get(&self, id: &str) -> Option<Arc<dyn PaymentGateway>> {
        self.live().by_id.get(id).cloned()
    }

    /// The gateway with this id if the checkout offers it.
    pub fn offered(&self, id: &str) -> Option<Arc<dyn PaymentGateway>> {
        let live = self.live();
        live.offered
            .iter()
            .any(|o| o.id == id)
            .then(|| live.by_id.get(id).cloned())
            .flatten()
    }

    /// What the checkout offers, manual first, then the owner's gateways in their order. The
    /// manual gateway and fixed ones have an empty name (the page names them).
    pub fn offers(&self) -> Vec<Offer> {
        self.live().offered.clone()
    }

    /// Every id.
    pub fn ids(&self) -> Vec<String> {
        self.live().by_id.keys().cloned().collect()
    }

    /// The kinds the owner can configure (none without a factory).
    pub fn kinds(&self) -> &'static [Kind] {
        self.0.factory.as_ref().map(|f| f.kinds()).unwrap_or(&[])
    }

    /// Make one gateway from its configuration (to check it before saving).
    pub fn build(&self, c: &settings::GatewayConfig) -> DomainResult<Arc<dyn PaymentGateway>> {
        let f = self
            .0
            .factory
            .as_ref()
            .ok_or(DomainError::invalid("kind", "payments.kind_unknown"))?;
        f.build(c)
    }

    /// Replace the configured gateways with these (each built; one that cannot be built is left
    /// out and logged, so one broken entry does not take the others down).
    pub fn install(&self, configs: &[settings::GatewayConfig]) {
        let mut by_id = BTreeMap::new();
        let mut offered = vec![];
        for c in configs {
            match self.build(c) {
                Ok(g) => {
                    if c.enabled {
                        offered.push(Offer {
                            id: c.id.clone(),
                            name: c.name.clone(),
                        });
                    }
                    by_id.insert(c.id.clone(), g);
                }
                Err(e) => {
                    tracing::error!(gateway = %c.id, error = %e, "payment gateway not usable; fix it in admin")
                }
            }
        }
        self.swap(by_id, offered);
    }
}

impl Default for Gateways {
    fn default() -> Self {
        Gateways::new(vec![])
    }
}

impl std::fmt::Debug for Gateways {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.ids()).finish()
    }
}

/// Start paying an order with its gateway. The first answer is kept (`payment_starts`), so
/// asking again — the order page, a second click — shows the same QR code or link instead of
/// opening a second payment at the gateway.
pub async fn start(
    ctx: &Ctx,
    o: &yiren_store::order::OrderRow,
    base_url: &str,
    client_ip: &str,
) -> DomainResult<Instruction> {
    if ctx
        .gateways
        .get(&o.gateway)
        .is_some_and(|g| g.paid_offline())
    {
        return Ok(Instruction::Manual);
    }
    if let Some(s) = yiren_store::payment::start(ctx.db.read(), o.id, &o.gateway).await? {
        if let Some(i) = instruction_of(&s) {
            return Ok(i);
        }
    }
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
        client_ip: client_ip.to_string(),
        every_months: if gw.bills_recurring() {
            crate::recurring::every_months_of(ctx, o).await?
        } else {
            None
        },
    };
    let i = gw.create(&req).await?;
    let (kind, payload) = match &i {
        Instruction::Redirect { url } => ("redirect", url.clone()),
        Instruction::Qr { payload } => ("qr", payload.clone()),
        Instruction::Form { action, fields } => (
            "form",
            serde_json::json!({ "action": action, "fields": fields }).to_string(),
        ),
        Instruction::Manual => return Ok(i),
    };
    let row = yiren_store::payment::StartRow {
        order_id: o.id,
        gateway: o.gateway.clone(),
        kind: kind.into(),
        payload,
        created_at: ctx.now(),
    };
    if !yiren_store::payment::put_start(ctx.db.write(), &row).await? {
        // Two starts raced: the one recorded first is the one shown.
        if let Some(s) = yiren_store::payment::start(ctx.db.write(), o.id, &o.gateway).await? {
            if let Some(first) = instruction_of(&s) {
                return Ok(first);
            }
        }
    }
    Ok(i)
}

fn instruction_of(s: &yiren_store::payment::StartRow) -> Option<Instruction> {
    match s.kind.as_str() {
        "redirect" => Some(Instruction::Redirect {
            url: s.payload.clone(),
        }),
        "qr" => Some(Instruction::Qr {
            payload: s.payload.clone(),
        }),
        "form" => {
            let v: serde_json::Value = serde_json::from_str(&s.payload).ok()?;
            Some(Instruction::Form {
                action: v["action"].as_str()?.to_string(),
                fields: serde_json::from_value(v["fields"].clone()).ok()?,
            })
        }
        _ => None,
    }
}

/// What recording a gateway's word about a payment came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Recorded now, or already (a duplicate).
    Recorded,
    /// The gateway says it is not paid (yet): nothing to record.
    NotPaid,
    /// Parked on the order's timeline (amount or currency mismatch, a state that does not allow
    /// it): retrying cannot change it.
    Parked(&'static str),
    /// No such order.
    UnknownOrder,
    /// Not recorded (the store failed); worth trying again.
    Failed(String),
}

/// Record what a gateway said about a payment — from a notification, the customer's return, or
/// a query — through the one path: idempotent on the gateway's reference, amount and currency
/// checked against the order (PAY-1, PAY-6).
pub async fn settle(ctx: &Ctx, gw: &dyn PaymentGateway, v: &Verified, actor: &str) -> Settled {
    let first_of = match recurring(ctx, gw, v, actor).await {
        Next::Done(settled) => return settled,
        Next::Pay { starts } => starts,
    };
    // Not a payment (pending, failed, or an event about something else): nothing to record.
    if v.outcome != Outcome::Paid {
        return Settled::NotPaid;
    }
    let Ok(order_id) = v.order_ref.parse::<i64>() else {
        return Settled::UnknownOrder;
    };
    let r = received(gw, v);
    match order::pay_with(ctx, order_id, &r, actor, first_of).await {
        Ok(Paid::Applied | Paid::Duplicate) => Settled::Recorded,
        Err(DomainError::Conflict { key }) => Settled::Parked(key),
        Err(DomainError::NotFound) => Settled::UnknownOrder,
        Err(e) => Settled::Failed(e.to_string()),
    }
}

/// What [`recurring`] leaves to do.
enum Next<'a> {
    /// Nothing more: this is what it came to.
    Done(Settled),
    /// Record the payment on its order — the first of subscription `starts`, if it names one.
    Pay { starts: Option<&'a str> },
}

/// The part of [`settle`] about the gateway's subscriptions (`core::recurring`): renewals paid or
/// failed, a subscription named or ended. A renewal of a subscription no plan knows yet is
/// "failed" so that the gateway sends it again (its first payment is still on the way).
async fn recurring<'a>(
    ctx: &Ctx,
    gw: &dyn PaymentGateway,
    v: &'a Verified,
    actor: &str,
) -> Next<'a> {
    let not_yet = |what: &str| Next::Done(Settled::Failed(format!("{what} not known yet")));
    let failed = |e: DomainError| match e {
        DomainError::Conflict { key } => Next::Done(Settled::Parked(key)),
        e => Next::Done(Settled::Failed(e.to_string())),
    };
    let Some(event) = &v.recurring else {
        return Next::Pay { starts: None };
    };
    let about = |sub: &'a str| (gw.id(), sub, v.order_ref.as_str());
    match (event, v.outcome) {
        (Recurring::Started(sub), Outcome::Paid) => Next::Pay { starts: Some(sub) },
        (Recurring::Renewal(sub) | Recurring::Payment(sub), Outcome::Paid) => {
            match crate::recurring::renewed(ctx, about(sub), &received(gw, v), actor).await {
                Ok(_) => Next::Done(Settled::Recorded),
                // A charge that may be the first: no plan has it, so it starts one.
                Err(DomainError::NotFound) if matches!(event, Recurring::Payment(_)) => {
                    Next::Pay { starts: Some(sub) }
                }
                Err(DomainError::NotFound) => not_yet("subscription"),
                Err(e) => failed(e),
            }
        }
        (Recurring::Renewal(sub), Outcome::Failed) => {
            match crate::recurring::renewal_failed(ctx, about(sub)).await {
                Ok(()) => Next::Done(Settled::NotPaid),
                Err(DomainError::NotFound) => not_yet("subscription"),
                Err(e) => failed(e),
            }
        }
        // The gateway names the subscription apart from the payment (Lemon Squeezy, PayPal).
        (Recurring::Started(sub), Outcome::Pending) => {
            match crate::recurring::attach(ctx, gw.id(), &v.order_ref, sub).await {
                Ok(()) => Next::Done(Settled::NotPaid),
                Err(DomainError::NotFound) => not_yet("order's payment"),
                Err(e) => failed(e),
            }
        }
        (Recurring::Ended(sub), _) => match crate::recurring::ended(ctx, gw.id(), sub).await {
            // An unknown subscription (another site's, or one never started) has nothing to end.
            Ok(()) | Err(DomainError::NotFound) => Next::Done(Settled::NotPaid),
            Err(e) => failed(e),
        },
        // A renewal or charge still pending, a first charge that failed: nothing to record.
        _ => Next::Done(Settled::NotPaid),
    }
}

fn received(gw: &dyn PaymentGateway, v: &Verified) -> Received {
    Received {
        gateway: gw.id().to_string(),
        reference: v.reference.clone(),
        amount: v.amount,
        currency: v.currency.clone(),
    }
}

/// The one notification handler. Verifies, records the payment (idempotent on the gateway's
/// reference), and only then returns the acknowledgement; anything not committed gets the
/// gateway's failure answer so it tries again.
pub async fn notify(ctx: &Ctx, gw: &dyn PaymentGateway, raw: &RawNotification) -> Ack {
    let v = match gw.verify_notification(raw, ctx.now()).await {
        Ok(v) => v,
        Err(Rejected::Unavailable(why)) => {
            tracing::warn!(gateway = gw.id(), reason = %why, "payment notification not checked now; the gateway will retry");
            return gw.nack(true);
        }
        Err(why) => {
            tracing::warn!(target: "security", gateway = gw.id(), reason = %why, "payment notification rejected");
            return gw.nack(false);
        }
    };
    match settle(ctx, gw, &v, &format!("gateway:{}", gw.id())).await {
        Settled::Recorded => {
            // PAY-5: committed, but the answer never reaches the gateway (it will retry).
            fail::fail_point!("payment.notify.after_commit", |_| gw.nack(true));
            gw.ack()
        }
        // Nothing to record yet: a pending or failed attempt leaves the order waiting.
        Settled::NotPaid => gw.ack(),
        Settled::Parked(key) => {
            tracing::warn!(target: "security", gateway = gw.id(), order = %v.order_ref, reason = key, "payment notification parked");
            gw.ack()
        }
        Settled::UnknownOrder => {
            tracing::warn!(target: "security", gateway = gw.id(), "payment notification for an unknown order");
            gw.nack(false)
        }
        Settled::Failed(e) => {
            tracing::error!(gateway = gw.id(), order = %v.order_ref, error = %e, "payment notification not recorded; the gateway will retry");
            gw.nack(true)
        }
    }
}

/// The customer came back from the gateway with its signed answer in the query string (some
/// gateways sign the return like the notification): believed only if it verifies, and then
/// recorded through the same path, so whichever of the return and the notification arrives
/// first records the payment and the other changes nothing (PAY-4). Unsigned or forged returns
/// change nothing (the order page's own `key` parameter is left out before verifying).
pub async fn returned(
    ctx: &Ctx,
    gw: &dyn PaymentGateway,
    order_id: i64,
    query: &str,
) -> Option<Settled> {
    // The order page's own `key` is ours, not the gateway's: it is not part of what it signed.
    let theirs: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(url::form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| k != "key"))
        .finish();
    if theirs.is_empty() {
        return None;
    }
    let raw = RawNotification {
        method: "GET".into(),
        query: theirs.clone(),
        ..Default::default()
    };
    let v = match gw.verify(&raw, ctx.now()) {
        Ok(v) => v,
        Err(_) => {
            let started = yiren_store::payment::start(ctx.db.read(), order_id, gw.id())
                .await
                .ok()
                .flatten()
                .map(|s| s.payload);
            match gw.complete(&theirs, started.as_deref()).await {
                Ok(Some(v)) => v,
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!(gateway = gw.id(), order = order_id, error = %e, "payment not completed on return; reconciliation will ask again");
                    return None;
                }
            }
        }
    };
    Some(settle(ctx, gw, &v, &format!("return:{}", gw.id())).await)
}
