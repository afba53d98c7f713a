//! Refunds: recorded in the order's transaction (never more than was captured), then sent.
//!
//! Language: a refund's *status* says where its money is — `pending` while a job sends it through
//! a gateway that refunds, `done` once the gateway took it (or the owner marked it sent),
//! `manual` when the owner must send it back by hand (a manual payment, a gateway without
//! refunds), `failed` when the gateway refused it for good (the owner must act).
//!
//! Boundaries: the gateway is never called inside a database transaction. The refund row and the
//! job that sends it commit together (the outbox); the job sends the refund under the row's own
//! id, which the gateway keeps unique, so a crash or a timeout before the answer is recorded
//! sends the same refund again and the gateway refunds it once.

use futures::future::BoxFuture;
use yiren_store::order::{self as store, LineRow, TransactionRow};
use yiren_store::StoreError;

use super::{
    log, move_stock, not_found, restock_rest, set_state, state, state_of, summary, LineUnits,
    StockMove,
};
use crate::error::{DomainError, DomainResult};
use crate::job::{self, EnqueueOptions, JobContext, JobError, JobHandler};
use crate::payment::{RefundRequest, RefundResult};
use crate::{event, Ctx};
use state::{Effect, Event};

/// Job: send a `pending` refund through its gateway.
pub const SEND_REFUND_KIND: &str = "order.refund";

/// A refund to make.
#[derive(Debug, Clone)]
pub struct Refund {
    pub amount: i64,
    /// One-time key (the admin form's token, an API Idempotency-Key): the same key again is the
    /// same refund, not a second one.
    pub key: String,
    /// Put the units back on sale (a full refund of goods that came back).
    pub restock: bool,
    pub reason: String,
    /// Refund these units of these lines: the amount is then theirs (after their discounts, with
    /// tax added on top when prices exclude it), computed here; `amount` is ignored.
    pub lines: Vec<LineUnits>,
}

/// What `k` more units of a line give back when `line.refunded_units` were refunded before: the
/// line's net amount shared over its units so that all of them together give exactly the net
/// (cumulative rounding down).
pub fn line_refund(line: &LineRow, tax_inclusive: bool, k: i64) -> i64 {
    let net = i128::from(line.subtotal - line.discount)
        + if tax_inclusive {
            0
        } else {
            i128::from(line.tax)
        };
    let q = i128::from(line.quantity.max(1));
    let before = i128::from(line.refunded_units);
    let upto = |n: i128| net * n / q;
    i64::try_from(upto(before + i128::from(k)) - upto(before)).unwrap_or(i64::MAX)
}

/// Check units chosen by line against the order's lines with `room` (what is left of each line
/// for this purpose): each position once, known, 1..=room. Returns the lines with their units.
pub(super) fn choose(
    lines: &[LineRow],
    chosen: &[LineUnits],
    room: impl Fn(&LineRow) -> i64,
    key: &'static str,
) -> DomainResult<Vec<(LineRow, i64)>> {
    let mut out: Vec<(LineRow, i64)> = vec![];
    for c in chosen {
        let l = lines
            .iter()
            .find(|l| l.position == c.position)
            .ok_or(DomainError::invalid("lines", key))?;
        if c.quantity < 1
            || c.quantity > room(l)
            || out.iter().any(|(x, _)| x.position == c.position)
        {
            return Err(DomainError::invalid("lines", key));
        }
        out.push((l.clone(), c.quantity));
    }
    Ok(out)
}

/// Refund part or all of what was captured — never more (RELIABILITY MONEY-3; the order row is
/// locked, so simultaneous refunds add up against the same ceiling). Recorded as a `refund`
/// transaction under the order's gateway with the caller's key: `pending` with a job that sends it
/// when the gateway refunds, otherwise `manual`, a reminder to send the money back (the timeline
/// and the order page say so). Returns false for a repeated key.
pub async fn refund(ctx: &Ctx, order_id: i64, r: &Refund, actor: &str) -> DomainResult<bool> {
    let key = r.key.trim();
    if key.is_empty() || key.len() > 100 || r.reason.chars().count() > 500 {
        return Err(DomainError::invalid("key", "order.refund_invalid"));
    }
    let mut tx = ctx.db.begin().await?;
    let mut o = store::lock(&mut tx, order_id).await.map_err(not_found)?;
    let by_line = if r.lines.is_empty() {
        vec![]
    } else {
        let lines = store::lines(&mut *tx, order_id).await?;
        choose(
            &lines,
            &r.lines,
            |l| l.quantity - l.refunded_units,
            "order.refund_lines_invalid",
        )?
    };
    let amount = if by_line.is_empty() {
        r.amount
    } else {
        let inclusive = o.tax_inclusive == 1;
        by_line
            .iter()
            .map(|(l, k)| line_refund(l, inclusive, *k))
            .sum()
    };
    // Every refusal is a 422: more than is left, or an order with nothing to refund (unpaid,
    // voided, already refunded).
    let applied = state::apply(&state_of(&o), &Event::Refund { amount })
        .map_err(|why| DomainError::invalid("amount", why.key()));
    let (next, effects) = match applied {
        Ok(x) => x,
        Err(e) => {
            drop(tx);
            // A replay of a refund already made is not an error.
            let seen = store::transactions(ctx.db.read(), order_id)
                .await?
                .iter()
                .any(|t| t.kind == "refund" && t.reference == format!("refund:{key}"));
            return if seen { Ok(false) } else { Err(e) };
        }
    };
    let through_gateway = ctx.gateways.get(&o.gateway).is_some_and(|g| g.refunds());
    let t = TransactionRow {
        id: ctx.new_id(),
        order_id,
        kind: "refund".into(),
        gateway: o.gateway.clone(),
        reference: format!("refund:{key}"),
        amount,
        currency: o.currency.clone(),
        actor: actor.chars().take(120).collect(),
        created_at: ctx.now(),
        status: if through_gateway { "pending" } else { "manual" }.into(),
    };
    if !store::add_transaction(&mut tx, &t).await? {
        return Ok(false);
    }
    set_state(&mut o, &next, ctx.now());
    let reason = format!("order #{} refunded", o.number);
    // The chosen units, in variant order (the lock order); their units back on sale when asked.
    let mut by_variant = by_line.clone();
    by_variant.sort_by_key(|(l, _)| (l.variant_id, l.position));
    for (l, k) in &by_variant {
        let back =
            r.restock && o.stock == "committed" && l.tracked == 1 && l.restocked + k <= l.quantity;
        if let (true, Some(v)) = (back, l.variant_id) {
            move_stock(
                ctx,
                &mut tx,
                StockMove {
                    variant_id: v,
                    delta: *k,
                    reserved: 0,
                    guard: false,
                    reason: &reason,
                    actor,
                },
            )
            .await?;
        }
        let restocked = if back && l.variant_id.is_some() {
            *k
        } else {
            0
        };
        if !store::count_line(&mut tx, o.id, l.position, 0, *k, restocked).await? {
            return Err(DomainError::invalid("lines", "order.refund_lines_invalid"));
        }
    }
    // A full refund by amount with restock puts everything back; by line, only the chosen units.
    if r.restock
        && by_line.is_empty()
        && o.stock == "committed"
        && effects.contains(&Effect::Revoke)
    {
        restock_rest(ctx, &mut tx, &mut o, &reason, actor).await?;
    }
    if effects.contains(&Effect::Revoke) {
        crate::delivery::revoke(ctx, &mut tx, o.id, None).await?;
    }
    if through_gateway {
        let opts = EnqueueOptions {
            unique_key: Some(format!("{SEND_REFUND_KIND}:{}", t.id)),
            max_attempts: 20,
            ..Default::default()
        };
        let payload = serde_json::json!({ "transaction": t.id });
        job::enqueue(ctx, &mut tx, SEND_REFUND_KIND, &payload, opts).await?;
    }
    let units: Vec<serde_json::Value> = by_line
        .iter()
        .map(|(l, k)| serde_json::json!({ "position": l.position, "quantity": k }))
        .collect();
    let detail = serde_json::json!({
        "amount": amount, "reason": r.reason, "restock": r.restock, "lines": units,
        "send_money_back": !through_gateway, "transaction": t.id,
    });
    log(ctx, &mut tx, order_id, "refunded", actor, detail).await?;
    crate::mail::order_mail(ctx, &mut tx, &o, "refunded").await?;
    store::save_state(&mut tx, &o).await?;
    event::record(ctx, &mut tx, event::ORDER_REFUNDED, order_id, &summary(&o)).await?;
    tx.commit().await.map_err(StoreError::from)?;
    crate::catalog::stock_changed();
    Ok(true)
}

/// What [`send_refund`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// The gateway took it.
    Done,
    /// The gateway refused it; the owner must send the money another way.
    Refused(String),
    /// Nothing to send: not pending any more (sent before, or the owner settled it).
    Nothing,
}

/// Send a `pending` refund through its order's gateway and record the answer. The gateway is
/// called outside any transaction; an `Err` (network, the gateway's 5xx) leaves the refund
/// pending for the job to try again under the same refund id.
pub async fn send_refund(ctx: &Ctx, transaction_id: i64) -> DomainResult<Sent> {
    let r = ctx.db.read();
    let t = store::get_transaction(r, transaction_id)
        .await
        .map_err(not_found)?;
    if t.kind != "refund" || t.status != "pending" {
        return Ok(Sent::Nothing);
    }
    let o = store::get(r, t.order_id).await.map_err(not_found)?;
    let gw = ctx
        .gateways
        .get(&t.gateway)
        .filter(|g| g.refunds())
        .ok_or(DomainError::invalid("gateway", "checkout.gateway_unknown"))?;
    let sale = store::transactions(r, o.id)
        .await?
        .into_iter()
        .find(|x| x.kind == "sale" && x.gateway == t.gateway)
        .ok_or(DomainError::invalid("transaction", "order.refund_invalid"))?;
    let req = RefundRequest {
        order_ref: o.id.to_string(),
        payment_reference: sale.reference,
        refund_ref: t.id.to_string(),
        amount: t.amount,
        payment_amount: sale.amount,
        currency: t.currency.clone(),
        reason: format!("#{}", o.number),
    };
    let answer = gw.refund(&req).await?;
    let (status, kind, detail, sent) = match answer {
        RefundResult::Done { reference } => (
            "done",
            "refund_sent",
            serde_json::json!({ "amount": t.amount, "gateway": t.gateway, "reference": reference }),
            Sent::Done,
        ),
        RefundResult::Refused { reason } => {
            let reason: String = reason.chars().take(300).collect();
            (
                "failed",
                "refund_failed",
                serde_json::json!({ "amount": t.amount, "gateway": t.gateway, "reason": reason }),
                Sent::Refused(reason),
            )
        }
    };
    let mut tx = ctx.db.begin().await?;
    if !store::set_transaction_status(&mut *tx, t.id, "pending", status).await? {
        return Ok(Sent::Nothing);
    }
    let actor = format!("gateway:{}", t.gateway);
    log(ctx, &mut tx, o.id, kind, &actor, detail).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(sent)
}

/// The owner sent a `manual` or `failed` refund's money themselves: the refund is settled.
/// False when it was not waiting for that; not found unless the refund is this order's.
pub async fn mark_refund_sent(
    ctx: &Ctx,
    order_id: i64,
    transaction_id: i64,
    actor: &str,
) -> DomainResult<bool> {
    let mut tx = ctx.db.begin().await?;
    let t = store::get_transaction(&mut *tx, transaction_id)
        .await
        .map_err(not_found)?;
    if t.order_id != order_id {
        return Err(DomainError::NotFound);
    }
    let mut moved = false;
    for from in ["manual", "failed"] {
        if t.kind == "refund" && store::set_transaction_status(&mut *tx, t.id, from, "done").await?
        {
            moved = true;
            break;
        }
    }
    if !moved {
        return Ok(false);
    }
    let detail = serde_json::json!({ "amount": t.amount, "by_hand": true });
    log(ctx, &mut tx, t.order_id, "refund_sent", actor, detail).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(true)
}

/// Runs [`send_refund`]; a failure to reach the gateway is retried with backoff.
pub struct SendRefund;

impl JobHandler for SendRefund {
    fn run<'a>(&'a self, ctx: &'a Ctx, job: &'a JobContext) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let id = serde_json::from_str::<serde_json::Value>(&job.payload)
                .ok()
                .and_then(|v| v["transaction"].as_i64())
                .ok_or_else(|| JobError::permanent("payload has no transaction"))?;
            match send_refund(ctx, id).await {
                Ok(Sent::Refused(reason)) => {
                    tracing::warn!(transaction = id, %reason, "the gateway refused a refund");
                    Ok(())
                }
                Ok(_) => Ok(()),
                Err(DomainError::NotFound) => Err(JobError::permanent("no such refund")),
                Err(e) => Err(JobError::transient(e.to_string())),
            }
        })
    }
}
