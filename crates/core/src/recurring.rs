//! Recurring memberships: a membership counted in months renews, period after period, until the
//! customer or the owner cancels it or a renewal goes unpaid (RELIABILITY TIME-1).
//!
//! Language: a *plan* is one holder's recurring membership of a product, started by the paid
//! order that first bought it (period 0); *period k* runs from the plan's anchor plus
//! `offset + k × every` months to the next such boundary, on the calendar of the plan's time zone
//! (`core::period`: 31 January → 28/29 February → 31 March); every period is paid by one order
//! and recorded once — the period key (plan, k) is unique, so the sweep running twice, two
//! servers, or a gateway's repeated event cannot renew a period twice.
//!
//! Two ways to renew:
//! - **by order** (gateways without recurring billing: the manual QR, EPay, XorPay, 虎皮椒,
//!   Alipay, WeChat Pay): the hourly sweep places the renewal order [`LEAD_MS`] before the period
//!   starts, at the plan's price, and mails the customer its pay link (the order's reminder
//!   follows); the order stays payable until [`GRACE_MS`] into the period. Access is extended
//!   only when it is paid; left unpaid, the order expires and the plan *lapses*.
//! - **by the gateway** (Stripe subscriptions, Lemon Squeezy, PayPal): the gateway charges on its
//!   own schedule and reports each renewal; [`renewed`] records it as a paid renewal order for
//!   the next period, which extends the membership through the same grant. A failed charge
//!   mails the customer once per period; the gateway ending the subscription cancels the plan.
//!
//! Boundaries: the plan starts inside the first order's payment transaction
//! (`delivery::grant` calls [`start_in`]); a period's order is placed through the checkout
//! (`checkout::Submit::renewal`), which writes the period row with the order's rows.

use futures::future::BoxFuture;
use yiren_store::order::OrderRow;
use yiren_store::recurring::{self as store, PeriodRow, PlanRow};
use yiren_store::{StoreError, Tx};

use crate::error::{DomainError, DomainResult};
use crate::job::{JobContext, JobError, JobHandler};
use crate::Ctx;

/// Job: place the renewal orders that are due and end the plans left unpaid (hourly).
pub const SWEEP_KIND: &str = "recurring.sweep";
/// A renewal order is placed this long before its period starts.
pub const LEAD_MS: i64 = 7 * 86_400_000;
/// ... and stays payable this long after the period started.
pub const GRACE_MS: i64 = 3 * 86_400_000;

/// The instant period `k` of a plan starts.
pub fn boundary(p: &PlanRow, k: i64) -> Option<i64> {
    let months = p
        .offset_months
        .checked_add(p.every_months.checked_mul(k)?)?;
    crate::period::boundary(p.anchor_at, &p.tz, 1, months)
}

/// What a paid membership line brings to [`start_in`].
pub(crate) struct Bought<'a> {
    pub product_id: i64,
    pub variant_id: i64,
    pub title: &'a str,
    /// What the line cost (after discounts, with tax the customer paid on top).
    pub amount: i64,
    pub every_months: i64,
    pub tz: &'a str,
    /// The membership the payment granted: start, end and the anchor its months count from.
    pub starts_at: i64,
    pub ends_at: i64,
    pub anchor_at: i64,
}

/// Start a plan for a membership bought by the months (in the order's payment transaction). The
/// holder's earlier running plan of the same product is replaced: the new purchase follows on
/// from it, and the renewals continue from the new one. Nothing for a free purchase.
pub(crate) async fn start_in(
    ctx: &Ctx,
    tx: &mut Tx,
    o: &OrderRow,
    b: &Bought<'_>,
    gateway_ref: Option<&str>,
) -> DomainResult<()> {
    if b.amount <= 0 || b.every_months <= 0 {
        return Ok(());
    }
    let now = ctx.now();
    for old in store::running_of(tx, o.customer_id, &o.email, b.product_id).await? {
        store::stop(&mut **tx, old.id, "cancelled", now).await?;
    }
    let offset_months = crate::period::period_at(b.anchor_at, b.tz, 1, b.starts_at).unwrap_or(0);
    let plan = PlanRow {
        id: ctx.new_id(),
        customer_id: o.customer_id,
        email: o.email.clone(),
        product_id: b.product_id,
        variant_id: b.variant_id,
        title: b.title.to_string(),
        amount: b.amount,
        currency: o.currency.clone(),
        locale: o.locale.clone(),
        gateway: o.gateway.clone(),
        gateway_ref: gateway_ref.unwrap_or_default().to_string(),
        first_order_id: o.id,
        tz: b.tz.to_string(),
        anchor_at: b.anchor_at,
        offset_months,
        every_months: b.every_months,
        status: "active".into(),
        created_at: now,
        updated_at: now,
    };
    let first = PeriodRow {
        plan_id: plan.id,
        period: 0,
        order_id: o.id,
        starts_at: b.starts_at,
        ends_at: b.ends_at,
        paid_at: Some(now),
        created_at: now,
    };
    store::insert_plan(tx, &plan, &first).await?;
    Ok(())
}

/// The membership a paid renewal order grants — (starts_at, ends_at, anchor) — when the order
/// pays a plan's period; the period is marked paid and a past-due plan is active again. None when
/// the order renews nothing.
pub(crate) async fn paid_in(
    ctx: &Ctx,
    tx: &mut Tx,
    order_id: i64,
) -> DomainResult<Option<(i64, i64, i64)>> {
    let Some(period) = store::period_of_order(&mut **tx, order_id).await? else {
        return Ok(None);
    };
    let Some(plan) = store::get(&mut **tx, period.plan_id).await? else {
        return Ok(None);
    };
    let now = ctx.now();
    store::mark_paid(tx, plan.id, period.period, now).await?;
    if plan.status == "past_due" {
        store::set_status(&mut **tx, plan.id, "active", now).await?;
    }
    // Paid ahead: the period as planned; paid late (in its grace): from now to its end, so the
    // calendar keeps its anchor.
    let starts = now.clamp(period.starts_at, period.ends_at.max(period.starts_at));
    Ok(Some((starts, period.ends_at.max(starts), plan.anchor_at)))
}

/// The next period of a plan after `last`: (k, starts, ends).
fn next_period(p: &PlanRow, last: &PeriodRow) -> Option<(i64, i64, i64)> {
    let k = last.period + 1;
    Some((k, boundary(p, k)?, boundary(p, k + 1)?))
}

/// Place the order for period `k` of a plan with `gateway` (or find it: the token and the
/// period key make this once per period).
async fn place(
    ctx: &Ctx,
    p: &PlanRow,
    (k, starts_at, ends_at): (i64, i64, i64),
    gateway: &str,
) -> DomainResult<OrderRow> {
    let s = crate::checkout::Submit {
        token: format!("renew-{}-{k}", p.id),
        email: p.email.clone(),
        customer_id: p.customer_id,
        locale: crate::i18n::Locale::parse(&p.locale).unwrap_or_default(),
        gateway: gateway.to_string(),
        renewal: Some(crate::checkout::RenewalPlacement {
            plan_id: p.id,
            period: k,
            starts_at,
            ends_at,
            expires_at: starts_at + GRACE_MS,
            product_id: p.product_id,
            variant_id: p.variant_id,
            title: p.title.clone(),
            amount: p.amount,
            currency: p.currency.clone(),
        }),
        ..Default::default()
    };
    crate::checkout::place(ctx, &s).await
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Renewal orders placed.
    pub placed: usize,
    /// Plans ended because a renewal went unpaid.
    pub lapsed: usize,
}

/// Place every renewal order that is due, and end the plans whose renewal expired unpaid.
pub async fn sweep(ctx: &Ctx) -> DomainResult<Swept> {
    use futures::StreamExt;
    let now = ctx.now();
    let mut out = Swept::default();
    let mut due = vec![];
    for (plan, last) in store::renewing(ctx.db.read()).await? {
        if last.paid_at.is_none() {
            // Waiting for its order: ended if that expired (cancelled) unpaid.
            if now >= last.starts_at {
                let o = yiren_store::order::get(ctx.db.read(), last.order_id).await?;
                if o.cancelled == 1 && o.payment == "pending" {
                    lapse(ctx, &plan, &o).await?;
                    out.lapsed += 1;
                } else if plan.status == "active" {
                    store::set_status(ctx.db.write(), plan.id, "past_due", now).await?;
                }
            }
            continue;
        }
        let Some(next) = next_period(&plan, &last) else {
            continue;
        };
        if now >= next.1 - LEAD_MS {
            due.push((plan, next));
        }
    }
    // Several at once: on SQLite their orders share commits.
    let placed: Vec<DomainResult<()>> = futures::stream::iter(due)
        .map(|(plan, next)| async move {
            // The plan's gateway if the checkout still offers it; else the manual one.
            let gateway = if ctx.gateways.offered(&plan.gateway).is_some() {
                plan.gateway.clone()
            } else {
                "manual".to_string()
            };
            place(ctx, &plan, next, &gateway).await.map(|_| ())
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for r in placed {
        match r {
            Ok(()) => out.placed += 1,
            Err(e) => {
                tracing::error!(error = %e, "renewal order not placed; the next sweep tries again")
            }
        }
    }
    if out.placed + out.lapsed > 0 {
        tracing::info!(
            placed = out.placed,
            lapsed = out.lapsed,
            "recurring memberships swept"
        );
    }
    Ok(out)
}

/// A plan whose renewal order `o` expired unpaid ends; the customer is told once.
async fn lapse(ctx: &Ctx, plan: &PlanRow, o: &OrderRow) -> DomainResult<()> {
    let mut tx = ctx.db.begin().await?;
    if store::stop(&mut *tx, plan.id, "lapsed", ctx.now()).await? {
        crate::mail::order_mail(ctx, &mut tx, o, "lapsed").await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

/// The sweep as a job.
pub struct Sweep;

impl JobHandler for Sweep {
    fn run<'a>(
        &'a self,
        ctx: &'a Ctx,
        _job: &'a JobContext,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            sweep(ctx)
                .await
                .map_err(|e| JobError::transient(e.to_string()))?;
            Ok(())
        })
    }
}

/// A gateway reported a renewal payment of its subscription `gateway_ref`: recorded as the paid
/// order of the plan's next period (placed now if the sweep has not), once per gateway
/// reference. `Err(NotFound)` when no plan has that subscription yet (its first payment's event
/// has not arrived: the gateway is asked to send this one again).
pub async fn renewed(
    ctx: &Ctx,
    (gateway, gateway_ref, order_ref): (&str, &str, &str),
    received: &crate::order::Received,
    actor: &str,
) -> DomainResult<crate::order::Paid> {
    let plan = plan_of(ctx, gateway, gateway_ref, order_ref).await?;
    // A repeated event: the payment is recorded already.
    if yiren_store::order::order_of_transaction(ctx.db.read(), gateway, &received.reference)
        .await?
        .is_some()
    {
        return Ok(crate::order::Paid::Duplicate);
    }
    let last = store::latest_period(ctx.db.read(), plan.id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let order_id = if last.paid_at.is_none() {
        // The period is waiting for its payment (placed by an earlier attempt).
        last.order_id
    } else {
        let next =
            next_period(&plan, &last).ok_or(DomainError::invalid("period", "error.conflict"))?;
        place(ctx, &plan, next, gateway).await?.id
    };
    crate::order::pay(ctx, order_id, received, actor).await
}

/// The plan a gateway's subscription belongs to: by its id, or — when the event naming the
/// subscription was lost (Lemon Squeezy sends it apart from the payment) — by the order that
/// started the plan (`order_ref`, carried in the subscription's metadata), attached now.
/// `Err(NotFound)` when neither is known yet.
async fn plan_of(
    ctx: &Ctx,
    gateway: &str,
    gateway_ref: &str,
    order_ref: &str,
) -> DomainResult<PlanRow> {
    if let Some(plan) = store::by_gateway_ref(ctx.db.read(), gateway, gateway_ref).await? {
        return Ok(plan);
    }
    let first = match order_ref.parse::<i64>() {
        Ok(id) => store::by_first_order(ctx.db.read(), id).await?,
        Err(_) => None,
    };
    match first {
        Some(plan) if plan.gateway == gateway && plan.gateway_ref.is_empty() => {
            store::set_gateway_ref(ctx.db.write(), plan.id, gateway_ref, ctx.now()).await?;
            Ok(store::get(ctx.db.read(), plan.id).await?.unwrap_or(plan))
        }
        _ => Err(DomainError::NotFound),
    }
}

/// The gateway names its subscription `gateway_ref` for the membership our order `order_ref`
/// bought (apart from the payment): the order's plan renews through the gateway from now on.
/// `Err(NotFound)` while the order is not paid yet (the gateway is asked to send it again); an
/// order that started no plan has nothing to attach.
pub async fn attach(
    ctx: &Ctx,
    gateway: &str,
    order_ref: &str,
    gateway_ref: &str,
) -> DomainResult<()> {
    let Ok(order_id) = order_ref.parse::<i64>() else {
        return Ok(());
    };
    match store::by_first_order(ctx.db.read(), order_id).await? {
        Some(plan) if plan.gateway == gateway => {
            store::set_gateway_ref(ctx.db.write(), plan.id, gateway_ref, ctx.now()).await?;
            Ok(())
        }
        Some(_) => Ok(()),
        None => match yiren_store::order::get(ctx.db.read(), order_id).await {
            Ok(o) if o.payment == "pending" && o.cancelled == 0 => Err(DomainError::NotFound),
            Ok(_) | Err(StoreError::NotFound) => Ok(()),
            Err(e) => Err(e.into()),
        },
    }
}

/// A gateway could not charge a renewal of its subscription `gateway_ref`: the plan is past due
/// and the customer is told, once per period.
pub async fn renewal_failed(
    ctx: &Ctx,
    (gateway, gateway_ref, order_ref): (&str, &str, &str),
) -> DomainResult<()> {
    let plan = plan_of(ctx, gateway, gateway_ref, order_ref).await?;
    let last = store::latest_period(ctx.db.read(), plan.id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let first = yiren_store::order::get(ctx.db.read(), plan.first_order_id).await?;
    let mut tx = ctx.db.begin().await?;
    if plan.status == "active" {
        store::set_status(&mut *tx, plan.id, "past_due", ctx.now()).await?;
    }
    // The period the failed charge was for is the one after the last paid.
    let period = if last.paid_at.is_some() {
        last.period + 1
    } else {
        last.period
    };
    let cause = format!("recurring:{}:{period}:failed", plan.id);
    crate::mail::order_mail_once(ctx, &mut tx, &first, "renewal_failed", cause).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

/// The gateway ended its subscription `gateway_ref` (cancelled, expired): no more renewals; the
/// membership runs to the end of what was paid.
pub async fn ended(ctx: &Ctx, gateway: &str, gateway_ref: &str) -> DomainResult<()> {
    let plan = store::by_gateway_ref(ctx.db.read(), gateway, gateway_ref)
        .await?
        .ok_or(DomainError::NotFound)?;
    store::stop(ctx.db.write(), plan.id, "cancelled", ctx.now()).await?;
    Ok(())
}

/// A plan and its periods.
#[derive(Debug, Clone)]
pub struct Plan {
    pub row: PlanRow,
    pub periods: Vec<PeriodRow>,
}

impl Plan {
    /// When the paid periods run out.
    pub fn paid_through(&self) -> Option<i64> {
        self.periods
            .iter()
            .filter(|p| p.paid_at.is_some())
            .map(|p| p.ends_at)
            .max()
    }

    /// When the next period starts (None once the plan no longer renews).
    pub fn next_renewal(&self) -> Option<i64> {
        if !matches!(self.row.status.as_str(), "active" | "past_due") {
            return None;
        }
        let last = self.periods.last()?;
        if last.paid_at.is_none() {
            return Some(last.starts_at);
        }
        boundary(&self.row, last.period + 1)
    }
}

/// The period an order pays (a renewal, or period 0 of the plan it started), if any.
pub async fn period_of_order(ctx: &Ctx, order_id: i64) -> DomainResult<Option<PeriodRow>> {
    Ok(store::period_of_order(ctx.db.read(), order_id).await?)
}

/// A plan by id with its periods.
pub async fn get(ctx: &Ctx, id: i64) -> DomainResult<Plan> {
    let row = store::get(ctx.db.read(), id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let periods = store::periods(ctx.db.read(), id).await?;
    Ok(Plan { row, periods })
}

/// Plans for admin, newest first.
pub async fn list(
    ctx: &Ctx,
    status: &str,
    before: Option<i64>,
    limit: i64,
) -> DomainResult<Vec<PlanRow>> {
    Ok(store::list(ctx.db.read(), status, before, limit.clamp(1, 100)).await?)
}

/// A customer's plans with their periods.
pub async fn of_customer(ctx: &Ctx, customer_id: i64, email: &str) -> DomainResult<Vec<Plan>> {
    let mut out = vec![];
    for row in store::of_customer(ctx.db.read(), customer_id, email).await? {
        let periods = store::periods(ctx.db.read(), row.id).await?;
        out.push(Plan { row, periods });
    }
    Ok(out)
}

/// Stop a plan renewing (the customer from their account, or the owner): no more renewal orders;
/// what was paid runs to its end, and a renewal order already waiting is cancelled. A plan the
/// gateway bills is stopped at the gateway by the owner (its dashboard); its "ended" event then
/// arrives here. `Conflict` when the plan no longer renews.
pub async fn cancel(ctx: &Ctx, id: i64, actor: &str) -> DomainResult<PlanRow> {
    let plan = store::get(ctx.db.read(), id)
        .await?
        .ok_or(DomainError::NotFound)?;
    if !store::stop(ctx.db.write(), id, "cancelled", ctx.now()).await? {
        return Err(DomainError::Conflict {
            key: "recurring.not_running",
        });
    }
    if let Some(last) = store::latest_period(ctx.db.read(), id).await? {
        if last.paid_at.is_none() {
            match crate::order::cancel(ctx, last.order_id, actor, true).await {
                Ok(_) | Err(DomainError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    tracing::info!(plan = id, actor, "recurring membership cancelled");
    Ok(store::get(ctx.db.read(), id).await?.unwrap_or(plan))
}

/// The months a gateway that bills by itself should charge an order again after (its
/// subscription's interval): set only for an order of one membership counted in months, with
/// nothing else in it (the subscription charges the order's total), that renews no plan already.
pub async fn every_months_of(ctx: &Ctx, o: &OrderRow) -> DomainResult<Option<i64>> {
    let lines = yiren_store::order::lines(ctx.db.read(), o.id).await?;
    let [line] = lines.as_slice() else {
        return Ok(None);
    };
    if line.kind != "membership" || o.shipping > 0 || o.total <= 0 {
        return Ok(None);
    }
    let Some(product_id) = line.product_id else {
        return Ok(None);
    };
    if store::period_of_order(ctx.db.read(), o.id).await?.is_some() {
        return Ok(None);
    }
    let details = match yiren_store::catalog::get_product(ctx.db.read(), product_id).await {
        Ok(p) => serde_json::from_str::<crate::catalog::Details>(&p.details).ok(),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    Ok(details
        .and_then(|d| d.membership_months)
        .filter(|m| *m > 0)
        .map(|m| m.saturating_mul(line.quantity)))
}
