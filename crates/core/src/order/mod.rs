//! Orders after checkout placed them: payments recorded once per gateway transaction, the hold on
//! their stock released when it runs out, unpaid orders expiring, cancellation with restock, the
//! timeline of every change, and the audit of stock and money against their ledgers.
//!
//! Language: see `checkout` for *hold* and *expire*; a *transaction* is money received (`sale`)
//! or returned (`refund`), unique per (gateway, reference), so a repeated notification or a second
//! click on "confirm payment" changes nothing; *short* is an order paid after its hold ran out
//! when the stock was gone: it is put under refund review instead of being fulfilled (INV-3).
//!
//! Shape: [`get`], [`list`], [`pay`], [`cancel`], [`release_hold`], [`expire`], [`audit`], the job
//! handler [`Deadline`]; the rules of the life cycle are [`state`].
//!
//! Boundaries: every change locks the order row, applies [`state::apply`] and performs its effects
//! in the same transaction; messages and webhooks go through the outbox (events).

mod refund;
pub mod state;

pub use refund::{
    mark_refund_sent, refund, send_refund, Refund, SendRefund, Sent, SEND_REFUND_KIND,
};

use futures::future::BoxFuture;
use serde::Serialize;
pub(crate) use yiren_store::order::StockMove;
use yiren_store::order::{self as store, EventRow, LineRow, OrderRow, TransactionRow};
use yiren_store::{StoreError, Tx, Writes};

use crate::error::{DomainError, DomainResult};
use crate::job::{JobContext, JobError, JobHandler};
use crate::{event, Ctx};
use state::{Effect, Event, Fulfilment, Payment, State};

/// Job: an unpaid order's clock — its stock's hold released when the hold ends ([`release_hold`]),
/// the customer reminded three quarters of the way to its expiry ([`remind`]), the order cancelled
/// when it expires ([`expire`]). One job per order ([`Deadline`]): it does what is due and defers
/// itself to the next time ([`next_due`]), so placing an order writes one job row, not three.
pub const DEADLINE_KIND: &str = "order.deadline";
/// The three jobs an order had before [`DEADLINE_KIND`] (release, expire, remind). A shop that
/// upgrades may still have them queued: [`Deadline`] runs them.
pub const EARLIER_KINDS: [&str; 3] = ["order.release", "order.expire", "order.remind"];

/// When the payment reminder of an order placed at `created_at` and expiring at `expires_at` goes
/// out: three quarters of the way (36 h into the default 48).
pub fn remind_at(created_at: i64, expires_at: i64) -> i64 {
    created_at + (expires_at - created_at) / 4 * 3
}

/// The first of an order's deadlines after `now`, as the order stands: its hold's end while it
/// holds stock; its reminder and its expiry while it is unpaid. None: nothing left to do.
pub fn next_due(o: &OrderRow, now: i64) -> Option<i64> {
    let open = o.payment == "pending" && o.cancelled == 0;
    let hold = (o.stock == "held").then_some(o.hold_until);
    let remind = open.then(|| remind_at(o.created_at, o.expires_at));
    let expire = open.then_some(o.expires_at);
    [hold, remind, expire]
        .into_iter()
        .flatten()
        .filter(|t| *t > now)
        .min()
}

/// An order with everything that belongs to it.
#[derive(Debug, Clone)]
pub struct Order {
    pub row: OrderRow,
    pub lines: Vec<LineRow>,
    pub events: Vec<EventRow>,
    pub transactions: Vec<TransactionRow>,
}

/// Where an order was sent: carrier and tracking number from its latest "fulfilled" entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shipment {
    pub carrier: String,
    pub tracking: String,
}

impl Order {
    /// The latest shipment, if the order was sent.
    pub fn shipment(&self) -> Option<Shipment> {
        let e = self.events.iter().rev().find(|e| e.kind == "fulfilled")?;
        let d: serde_json::Value = serde_json::from_str(&e.detail).ok()?;
        let text = |k: &str| d[k].as_str().unwrap_or("").to_string();
        Some(Shipment {
            carrier: text("carrier"),
            tracking: text("tracking"),
        })
    }
}

fn not_found(e: StoreError) -> DomainError {
    match e {
        StoreError::NotFound => DomainError::NotFound,
        e => e.into(),
    }
}

/// One order.
pub async fn get(ctx: &Ctx, id: i64) -> DomainResult<Order> {
    let r = ctx.db.read();
    let row = store::get(r, id).await.map_err(not_found)?;
    Ok(Order {
        lines: store::lines(r, id).await?,
        events: store::events(r, id).await?,
        transactions: store::transactions(r, id).await?,
        row,
    })
}

/// An order for a message about it: the row and lines, and the timeline only when `timeline`
/// (the shipped mail names the carrier and tracking number); no transactions.
pub(crate) async fn for_message(ctx: &Ctx, id: i64, timeline: bool) -> DomainResult<Order> {
    let r = ctx.db.read();
    let row = store::get(r, id).await.map_err(not_found)?;
    Ok(Order {
        lines: store::lines(r, id).await?,
        events: if timeline {
            store::events(r, id).await?
        } else {
            vec![]
        },
        transactions: vec![],
        row,
    })
}

/// Orders newest first; only one customer's when `customer_id` is given.
pub async fn list(
    ctx: &Ctx,
    customer_id: Option<i64>,
    limit: i64,
    offset: i64,
) -> DomainResult<Vec<OrderRow>> {
    Ok(store::list(
        ctx.db.read(),
        customer_id,
        limit.clamp(1, 100),
        offset.max(0),
    )
    .await?)
}

/// Orders matching the admin list's filter and search, newest first.
pub async fn search(
    ctx: &Ctx,
    f: &store::OrderFilter,
    limit: i64,
    offset: i64,
) -> DomainResult<Vec<OrderRow>> {
    Ok(store::search(ctx.db.read(), f, limit.clamp(1, 251), offset.max(0)).await?)
}

/// Orders with an id below `before`, newest first (the API's cursor pages; ids grow with time).
pub async fn list_before(
    ctx: &Ctx,
    customer_id: Option<i64>,
    before: i64,
    limit: i64,
) -> DomainResult<Vec<OrderRow>> {
    Ok(store::list_before(ctx.db.read(), customer_id, before, limit.clamp(1, 251)).await?)
}

/// The secret part of the link to an order's page (`/orders/{id}?key=`), so a guest can come back to
/// it and nobody can guess another order's: a MAC of the id under the server key.
pub fn access_key(ctx: &Ctx, order_id: i64) -> String {
    ctx.keys.mac("order-page", &[&order_id.to_string()])
}

/// The order behind a page link, or NotFound when the key does not match (no existence oracle).
pub async fn by_access_key(ctx: &Ctx, order_id: i64, key: &str) -> DomainResult<Order> {
    if !ctx.keys.verify("order-page", &[&order_id.to_string()], key) {
        return Err(DomainError::NotFound);
    }
    get(ctx, order_id).await
}

/// The link in the owner's new-order push that confirms a manual payment without signing in:
/// `/confirm-payment/{id}?sig=` (a MAC of the id under the server key). It opens a page that asks
/// first — a chat app previewing the link cannot confirm anything — and, like the admin button,
/// only ever records the one payment `confirm:<id>`.
pub fn confirm_link(ctx: &Ctx, order_id: i64) -> String {
    let sig = ctx.keys.mac("confirm-payment", &[&order_id.to_string()]);
    format!("/confirm-payment/{order_id}?sig={sig}")
}

/// Whether `sig` is the one [`confirm_link`] made for the order.
pub fn confirm_link_ok(ctx: &Ctx, order_id: i64, sig: &str) -> bool {
    ctx.keys
        .verify("confirm-payment", &[&order_id.to_string()], sig)
}

/// What webhooks and the event log carry about an order.
pub fn summary(o: &OrderRow) -> serde_json::Value {
    serde_json::json!({
        "id": o.id,
        "order_number": o.number,
        "name": format!("#{}", o.number),
        "currency": o.currency,
        "total_price": crate::money::format(o.total, &o.currency),
        "financial_status": o.payment,
        "fulfillment_status": o.fulfilment,
        "cancelled": o.cancelled == 1,
        "created_at": crate::clock::rfc3339(o.created_at),
    })
}

/// Add a timeline entry inside `tx`.
pub(crate) async fn log(
    ctx: &Ctx,
    tx: &mut Tx,
    order_id: i64,
    kind: &str,
    actor: &str,
    detail: serde_json::Value,
) -> DomainResult<()> {
    let mut w = Writes::new();
    log_into(ctx, &mut w, order_id, kind, actor, detail);
    Ok(w.run(tx).await?)
}

/// [`log`] added to `w`.
pub(crate) fn log_into(
    ctx: &Ctx,
    w: &mut Writes,
    order_id: i64,
    kind: &str,
    actor: &str,
    detail: serde_json::Value,
) {
    let e = EventRow {
        id: ctx.new_id(),
        order_id,
        kind: kind.into(),
        actor: actor.chars().take(120).collect(),
        detail: detail.to_string(),
        created_at: ctx.now(),
    };
    store::add_event(w, &e);
}

fn payment_of(s: &str) -> Payment {
    match s {
        "paid" => Payment::Paid,
        "partially_refunded" => Payment::PartiallyRefunded,
        "refunded" => Payment::Refunded,
        "voided" => Payment::Voided,
        _ => Payment::Pending,
    }
}

fn fulfilment_of(s: &str) -> Fulfilment {
    match s {
        "partially_fulfilled" => Fulfilment::PartiallyFulfilled,
        "fulfilled" => Fulfilment::Fulfilled,
        _ => Fulfilment::Unfulfilled,
    }
}

fn name<T: Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The state machine's view of a stored order.
pub fn state_of(o: &OrderRow) -> State {
    State {
        payment: payment_of(&o.payment),
        fulfilment: fulfilment_of(&o.fulfilment),
        cancelled: o.cancelled == 1,
        refund_review: o.refund_review == 1,
        total: o.total,
        captured: o.captured,
        refunded: o.refunded,
        units: o.units,
        fulfilled: o.fulfilled,
    }
}

fn set_state(o: &mut OrderRow, s: &State, now: i64) {
    o.payment = name(s.payment);
    o.fulfilment = name(s.fulfilment);
    o.cancelled = s.cancelled as i64;
    o.refund_review = s.refund_review as i64;
    o.captured = s.captured;
    o.refunded = s.refunded;
    o.fulfilled = s.fulfilled;
    o.updated_at = now;
}

/// Some units of one order line (by its position).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineUnits {
    pub position: i64,
    pub quantity: i64,
}

/// Put back on sale every unit of a paid order's tracked lines not put back before (a full
/// refund or a cancellation with restock), in variant order; the order's stock is then released.
pub(crate) async fn restock_rest(
    ctx: &Ctx,
    tx: &mut Tx,
    o: &mut OrderRow,
    reason: &str,
    actor: &str,
) -> DomainResult<()> {
    let mut lines = store::lines(&mut **tx, o.id).await?;
    lines.sort_by_key(|l| (l.variant_id, l.position));
    for l in lines {
        let n = l.quantity - l.restocked;
        if let (1, Some(v), true) = (l.tracked, l.variant_id, n > 0) {
            move_stock(
                ctx,
                tx,
                StockMove {
                    variant_id: v,
                    delta: n,
                    reserved: 0,
                    guard: false,
                    reason,
                    actor,
                },
            )
            .await?;
            store::count_line(tx, o.id, l.position, 0, 0, n).await?;
        }
    }
    o.stock = "released".into();
    Ok(())
}

/// The tracked units of an order by variant, in variant id order (the lock order).
async fn tracked_units(tx: &mut Tx, order_id: i64) -> DomainResult<Vec<(i64, i64)>> {
    let mut m = std::collections::BTreeMap::new();
    for l in store::lines(&mut **tx, order_id).await? {
        if let (1, Some(v)) = (l.tracked, l.variant_id) {
            *m.entry(v).or_insert(0) += l.quantity;
        }
    }
    Ok(m.into_iter().collect())
}

/// Move a variant's stock (see [`store::move_stock`]); when the sellable stock crosses zero the
/// product's search document is refreshed (its "in stock" filter). None: refused.
pub(crate) async fn move_stock(
    ctx: &Ctx,
    tx: &mut Tx,
    m: StockMove<'_>,
) -> DomainResult<Option<i64>> {
    let mut w = Writes::new();
    let after = move_stock_in(ctx, tx, &mut w, m).await?;
    w.run(tx).await?;
    Ok(after)
}

/// [`move_stock`] with its ledger entry added to `w` (the stock itself changes now).
pub(crate) async fn move_stock_in(
    ctx: &Ctx,
    tx: &mut Tx,
    w: &mut Writes,
    m: StockMove<'_>,
) -> DomainResult<Option<i64>> {
    let after = store::move_stock(tx, w, ctx.new_id(), &m, ctx.now()).await?;
    let StockMove {
        variant_id, delta, ..
    } = m;
    if let Some(a) = after {
        if delta != 0 && ((a <= 0) != (a - delta <= 0)) {
            let product = yiren_store::catalog::get_variant(&mut **tx, variant_id)
                .await?
                .product_id;
            crate::catalog::enqueue_index(ctx, tx, product).await?;
        }
    }
    Ok(after)
}

/// Put an order's held stock back on sale (once: only from `held`).
async fn release_in(ctx: &Ctx, tx: &mut Tx, o: &mut OrderRow, actor: &str) -> DomainResult<bool> {
    if !store::move_stock_state(tx, o.id, "held", "released").await? {
        return Ok(false);
    }
    o.stock = "released".into();
    let reason = format!("order #{} released", o.number);
    for (v, n) in tracked_units(tx, o.id).await? {
        // A variant deleted since is simply gone.
        move_stock(
            ctx,
            tx,
            StockMove {
                variant_id: v,
                delta: n,
                reserved: -n,
                guard: false,
                reason: &reason,
                actor,
            },
        )
        .await?;
    }
    Ok(true)
}

/// Take the stock for a paid order: held stock becomes the customer's; released stock is taken
/// again if there is enough of every line, otherwise the order is `short`.
async fn commit_stock(ctx: &Ctx, tx: &mut Tx, o: &mut OrderRow, actor: &str) -> DomainResult<()> {
    let units = tracked_units(tx, o.id).await?;
    match o.stock.as_str() {
        "held" => {
            for (v, n) in &units {
                move_stock(
                    ctx,
                    tx,
                    StockMove {
                        variant_id: *v,
                        delta: 0,
                        reserved: -n,
                        guard: false,
                        reason: "",
                        actor,
                    },
                )
                .await?;
            }
            o.stock = "committed".into();
        }
        "released" => {
            let reason = format!("order #{} paid after its hold", o.number);
            const LATE: &str = "late_payment";
            yiren_store::engine::savepoint(tx, LATE).await?;
            let mut all = true;
            for (v, n) in &units {
                let ok = move_stock(
                    ctx,
                    tx,
                    StockMove {
                        variant_id: *v,
                        delta: -n,
                        reserved: 0,
                        guard: true,
                        reason: &reason,
                        actor,
                    },
                )
                .await?;
                if ok.is_none() {
                    all = false;
                    break;
                }
            }
            if all {
                yiren_store::engine::release_savepoint(tx, LATE).await?;
                o.stock = "committed".into();
            } else {
                yiren_store::engine::rollback_to_savepoint(tx, LATE).await?;
                o.stock = "short".into();
                o.refund_review = 1;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Money received for an order.
#[derive(Debug, Clone)]
pub struct Received {
    pub gateway: String,
    /// The gateway's transaction id (for a manual payment, the owner's confirmation).
    pub reference: String,
    pub amount: i64,
    pub currency: String,
}

/// What [`pay`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paid {
    /// The payment was recorded and the order moved on.
    Applied,
    /// This (gateway, reference) was recorded before: nothing changed.
    Duplicate,
}

/// Record a payment: once per (gateway, reference); the amount and currency must be the order's
/// (RELIABILITY PAY-6), and the state must allow it (STATE-1). A refused payment is written to the
/// order's timeline for the owner to see, and changes nothing else.
pub async fn pay(ctx: &Ctx, order_id: i64, r: &Received, actor: &str) -> DomainResult<Paid> {
    pay_with(ctx, order_id, r, actor, None).await
}

/// [`pay`] for a payment that starts the gateway's subscription `subscription` (a membership the
/// gateway goes on billing: `core::recurring`).
pub async fn pay_with(
    ctx: &Ctx,
    order_id: i64,
    r: &Received,
    actor: &str,
    subscription: Option<&str>,
) -> DomainResult<Paid> {
    let mut tx = ctx.db.begin().await?;
    let mut o = store::lock(&mut tx, order_id).await.map_err(not_found)?;
    let t = TransactionRow {
        id: ctx.new_id(),
        order_id,
        kind: "sale".into(),
        gateway: r.gateway.clone(),
        reference: r.reference.clone(),
        amount: r.amount,
        currency: r.currency.clone(),
        actor: actor.chars().take(120).collect(),
        created_at: ctx.now(),
        status: "done".into(),
    };
    let applied = if r.currency != o.currency || r.amount < 1 {
        Err(state::Refusal::AmountMismatch)
    } else {
        state::apply(&state_of(&o), &Event::Paid { amount: r.amount })
    };
    let (next, effects) = match applied {
        Ok(x) => x,
        Err(refusal) => {
            tx.rollback().await.map_err(StoreError::from)?;
            // A duplicate of a payment already recorded is not a refusal.
            let seen = store::transactions(ctx.db.read(), order_id)
                .await?
                .iter()
                .any(|x| x.gateway == r.gateway && x.reference == r.reference);
            if seen {
                return Ok(Paid::Duplicate);
            }
            let mut tx = ctx.db.begin().await?;
            let detail = serde_json::json!({
                "gateway": r.gateway, "reference": r.reference, "amount": r.amount,
                "currency": r.currency, "reason": refusal.key(),
            });
            log(ctx, &mut tx, order_id, "payment_refused", actor, detail).await?;
            tx.commit().await.map_err(StoreError::from)?;
            return Err(DomainError::Conflict { key: refusal.key() });
        }
    };
    if !store::add_transaction(&mut tx, &t).await? {
        tx.rollback().await.map_err(StoreError::from)?;
        return Ok(Paid::Duplicate);
    }
    set_state(&mut o, &next, ctx.now());
    let detail =
        serde_json::json!({ "gateway": r.gateway, "reference": r.reference, "amount": r.amount });
    log(ctx, &mut tx, order_id, "paid", actor, detail).await?;
    if effects.contains(&Effect::Receipt) {
        crate::mail::order_mail(ctx, &mut tx, &o, "paid").await?;
        let news = crate::notify::OwnerEvent::PaymentReceived {
            number: o.number,
            total: crate::money::display(o.total, &o.currency),
            gateway: r.gateway.clone(),
        };
        crate::notify::emit(ctx, &mut tx, &news, &o.id.to_string()).await?;
        commit_stock(ctx, &mut tx, &mut o, actor).await?;
        if o.stock == "short" {
            log(
                ctx,
                &mut tx,
                order_id,
                "stock_short",
                actor,
                serde_json::json!({}),
            )
            .await?;
        }
    }
    if effects.contains(&Effect::Grant) {
        crate::delivery::grant(ctx, &mut tx, &o, subscription).await?;
    }
    if effects.contains(&Effect::RefundReview) || o.refund_review == 1 {
        log(
            ctx,
            &mut tx,
            order_id,
            "refund_review",
            actor,
            serde_json::json!({}),
        )
        .await?;
    }
    store::save_state(&mut tx, &o).await?;
    event::record(ctx, &mut tx, event::ORDER_PAID, order_id, &summary(&o)).await?;
    // PAY-5: the database failing before the payment is committed (nothing of it may remain).
    fail::fail_point!("order.pay.before_commit", |_| Err(
        DomainError::Unavailable("failpoint order.pay.before_commit".into())
    ));
    tx.commit().await.map_err(StoreError::from)?;
    crate::catalog::stock_changed();
    Ok(Paid::Applied)
}

/// The owner confirms that the whole total of a manual payment arrived. One confirmation per
/// order (reference `confirm:<id>`): a second click, or a second tab, is a duplicate.
pub async fn confirm_manual(ctx: &Ctx, order_id: i64, actor: &str) -> DomainResult<Paid> {
    let o = store::get(ctx.db.read(), order_id)
        .await
        .map_err(not_found)?;
    let r = Received {
        gateway: "manual".into(),
        reference: format!("confirm:{order_id}"),
        amount: o.total,
        currency: o.currency,
    };
    pay(ctx, order_id, &r, actor).await
}

/// The API's `capture`: the owner says a manual payment of `amount` (decimal text in the order's
/// currency; none: the total) arrived. Only a manual order, only its whole total; once — a repeat
/// is [`Paid::Duplicate`]. Returns the sale.
pub async fn capture_manual(
    ctx: &Ctx,
    order_id: i64,
    amount: Option<&str>,
    actor: &str,
) -> DomainResult<(Paid, TransactionRow)> {
    let o = store::get(ctx.db.read(), order_id)
        .await
        .map_err(not_found)?;
    if o.gateway != "manual" {
        return Err(DomainError::invalid("kind", "order.not_manual"));
    }
    if let Some(a) = amount {
        if crate::money::parse(a, &o.currency, "amount")? != o.total {
            return Err(DomainError::invalid("amount", "order.amount_not_total"));
        }
    }
    let paid = confirm_manual(ctx, order_id, actor).await?;
    let reference = format!("confirm:{order_id}");
    let sale = store::transactions(ctx.db.read(), order_id)
        .await?
        .into_iter()
        .find(|t| t.kind == "sale" && t.reference == reference)
        .ok_or(DomainError::NotFound)?;
    Ok((paid, sale))
}

/// Cancel an order (owner, customer or expiry). Held stock goes back on sale; a paid order's
/// units go back when `restock` is set; an unpaid order gives its discount uses back.
pub async fn cancel(
    ctx: &Ctx,
    order_id: i64,
    actor: &str,
    restock: bool,
) -> DomainResult<OrderRow> {
    let mut tx = ctx.db.begin().await?;
    let mut o = store::lock(&mut tx, order_id).await.map_err(not_found)?;
    let (next, effects) = state::apply(&state_of(&o), &Event::Cancel)
        .map_err(|r| DomainError::Conflict { key: r.key() })?;
    let unpaid = o.payment == "pending";
    set_state(&mut o, &next, ctx.now());
    let restocks = effects.contains(&Effect::Restock);
    // Held stock goes back on sale in any case; a paid order's units only when asked.
    if restocks
        && !release_in(ctx, &mut tx, &mut o, actor).await?
        && restock
        && o.stock == "committed"
    {
        let reason = format!("order #{} cancelled", o.number);
        restock_rest(ctx, &mut tx, &mut o, &reason, actor).await?;
    }
    if unpaid {
        store::give_back_uses(&mut tx, o.id, ctx.now()).await?;
    }
    if effects.contains(&Effect::Revoke) {
        crate::delivery::revoke(ctx, &mut tx, o.id, None).await?;
    }
    let detail = serde_json::json!({ "restock": restock, "refund_review": o.refund_review == 1 });
    log(ctx, &mut tx, order_id, "cancelled", actor, detail).await?;
    store::save_state(&mut tx, &o).await?;
    event::record(ctx, &mut tx, event::ORDER_CANCELLED, order_id, &summary(&o)).await?;
    tx.commit().await.map_err(StoreError::from)?;
    crate::catalog::stock_changed();
    Ok(o)
}

/// Mark units sent — the chosen units of chosen lines, or (`lines` empty) everything not sent yet —
/// with the carrier and tracking number the customer will see. Only a paid order that is not
/// cancelled can be fulfilled (STATE-1); a line never sends more than its quantity.
pub async fn fulfil(
    ctx: &Ctx,
    order_id: i64,
    lines: &[LineUnits],
    carrier: &str,
    tracking: &str,
    actor: &str,
) -> DomainResult<OrderRow> {
    let (carrier, tracking) = (carrier.trim(), tracking.trim());
    let bad = |s: &str| s.chars().count() > 100 || s.chars().any(char::is_control);
    if bad(carrier) || bad(tracking) {
        return Err(DomainError::invalid("tracking", "order.tracking_invalid"));
    }
    let mut tx = ctx.db.begin().await?;
    let mut o = store::lock(&mut tx, order_id).await.map_err(not_found)?;
    let all = store::lines(&mut *tx, order_id).await?;
    if crate::campaign::holds_back(&mut tx, &all).await? {
        return Err(DomainError::Conflict {
            key: "campaign.not_funded",
        });
    }
    let chosen: Vec<(LineRow, i64)> = if lines.is_empty() {
        all.iter()
            .filter(|l| l.quantity > l.fulfilled)
            .map(|l| (l.clone(), l.quantity - l.fulfilled))
            .collect()
    } else {
        refund::choose(
            &all,
            lines,
            |l| l.quantity - l.fulfilled,
            "order.fulfil_lines_invalid",
        )?
    };
    let units: i64 = chosen.iter().map(|(_, k)| k).sum();
    let (next, _) = state::apply(&state_of(&o), &Event::Fulfil { units })
        .map_err(|r| DomainError::Conflict { key: r.key() })?;
    for (l, k) in &chosen {
        if !store::count_line(&mut tx, order_id, l.position, *k, 0, 0).await? {
            return Err(DomainError::invalid("lines", "order.fulfil_lines_invalid"));
        }
    }
    set_state(&mut o, &next, ctx.now());
    let sent: Vec<serde_json::Value> = chosen
        .iter()
        .map(|(l, k)| serde_json::json!({ "position": l.position, "quantity": k }))
        .collect();
    let detail = serde_json::json!({ "units": units, "lines": sent, "carrier": carrier, "tracking": tracking });
    log(ctx, &mut tx, order_id, "fulfilled", actor, detail).await?;
    crate::mail::order_mail(ctx, &mut tx, &o, "shipped").await?;
    store::save_state(&mut tx, &o).await?;
    event::record(ctx, &mut tx, event::ORDER_FULFILLED, order_id, &summary(&o)).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(o)
}

/// Release an unpaid order's stock if its hold has ended; true when this call released it.
pub async fn release_hold(ctx: &Ctx, order_id: i64) -> DomainResult<bool> {
    let mut tx = ctx.db.begin().await?;
    let mut o = match store::lock(&mut tx, order_id).await {
        Ok(o) => o,
        Err(StoreError::NotFound) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    if o.stock != "held" || o.hold_until > ctx.now() {
        return Ok(false);
    }
    let done = release_in(ctx, &mut tx, &mut o, "system").await?;
    if done {
        log(
            ctx,
            &mut tx,
            order_id,
            "hold_released",
            "system",
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await.map_err(StoreError::from)?;
        crate::catalog::stock_changed();
    }
    Ok(done)
}

/// Cancel an order still unpaid at its expiry time; true when this call cancelled it.
pub async fn expire(ctx: &Ctx, order_id: i64) -> DomainResult<bool> {
    let o = match store::get(ctx.db.read(), order_id).await {
        Ok(o) => o,
        Err(StoreError::NotFound) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    if o.payment != "pending" || o.cancelled == 1 || o.expires_at > ctx.now() {
        return Ok(false);
    }
    match cancel(ctx, order_id, "system:expired", true).await {
        Ok(_) => Ok(true),
        // Paid or cancelled in the meantime.
        Err(DomainError::Conflict { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Every disagreement between stored figures and their ledgers (empty when all agree).
pub async fn audit(ctx: &Ctx) -> DomainResult<Vec<String>> {
    Ok(store::audit(ctx.db.read()).await?)
}

fn order_id_of(job: &JobContext) -> Result<i64, JobError> {
    serde_json::from_str::<serde_json::Value>(&job.payload)
        .ok()
        .and_then(|v| v["order_id"].as_i64())
        .ok_or_else(|| JobError::permanent("payload has no order_id"))
}

/// Send the payment reminder of an order still unpaid (once per order: the mail's cause is
/// `order:<id>:reminder`); true when it was queued now.
pub async fn remind(ctx: &Ctx, order_id: i64) -> DomainResult<bool> {
    let mut tx = ctx.db.begin().await?;
    let o = match store::lock(&mut tx, order_id).await {
        Ok(o) => o,
        Err(StoreError::NotFound) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let reminded = store::events(&mut *tx, order_id)
        .await?
        .iter()
        .any(|e| e.kind == "reminded");
    if o.payment != "pending" || o.cancelled == 1 || reminded {
        return Ok(false);
    }
    crate::mail::order_mail(ctx, &mut tx, &o, "reminder").await?;
    log(
        ctx,
        &mut tx,
        order_id,
        "reminded",
        "system",
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(true)
}

/// Runs an order's deadlines ([`DEADLINE_KIND`]): whatever of them is due as the order stands —
/// the hold released; then either the order expired or, before that, the customer reminded (an
/// order found past its expiry is cancelled without a reminder) — then waits for the next one.
/// Each step checks again under the order's lock, so a run that races a payment does nothing.
pub struct Deadline;

impl JobHandler for Deadline {
    fn run<'a>(&'a self, ctx: &'a Ctx, job: &'a JobContext) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let id = order_id_of(job)?;
            let failed = |e: DomainError| JobError::transient(e.to_string());
            let o = match store::get(ctx.db.read(), id).await {
                Ok(o) => o,
                Err(StoreError::NotFound) => return Ok(()),
                Err(e) => return Err(JobError::transient(e.to_string())),
            };
            let now = ctx.now();
            if o.stock == "held" && o.hold_until <= now {
                release_hold(ctx, id).await.map_err(failed)?;
            }
            if o.payment == "pending" && o.cancelled == 0 {
                if o.expires_at <= now {
                    expire(ctx, id).await.map_err(failed)?;
                } else if remind_at(o.created_at, o.expires_at) <= now {
                    remind(ctx, id).await.map_err(failed)?;
                }
            }
            // Everything due by `now` was done (or found done); what the order changed into
            // since the read only makes a later run find nothing to do.
            match next_due(&o, now) {
                Some(at) => Err(JobError::Defer {
                    until_ms: at,
                    reason: "the order's next deadline".into(),
                }),
                None => Ok(()),
            }
        })
    }
}
