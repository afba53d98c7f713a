//! Crowdfunding campaigns: backers pay now; when the deadline passes (or the owner closes early)
//! the campaign is *funded* — its orders go to fulfilment — or it *fails* and every backer is
//! refunded in one batch.
//!
//! Language: *raised* is the campaign lines of paid, not cancelled orders after their discounts;
//! a *backer* is one such order. A campaign is *open* until its row in `campaigns` exists; closing
//! inserts that row once, so its outcome is decided exactly once however many closers race.
//!
//! The batch refund ([`RefundBackers`]) walks the backers' orders in id order and refunds each
//! under the key `campaign:{product}:{order}`: a run cut short by a crash starts again from the
//! beginning and every order already refunded is a no-op (the key is unique per gateway), so
//! nobody is refunded twice and nobody is skipped. Refunds go through the order's gateway when it
//! refunds, otherwise they are listed for the owner to send by hand (`refunds_to_send`).
//! Unpaid orders holding the campaign are cancelled first, so a late manual payment goes to the
//! owner's refund review instead of making a backer of a failed campaign.

use futures::future::BoxFuture;
use serde::Serialize;
use yiren_store::campaign::{self as store, CampaignRow};
use yiren_store::StoreError;

use crate::catalog::{self, Kind, Product};
use crate::error::{DomainError, DomainResult};
use crate::job::{self, EnqueueOptions, JobContext, JobError, JobHandler};
use crate::{event, order, Ctx};

/// Job: close every open campaign whose deadline has passed (scheduled every minute).
pub const SWEEP_KIND: &str = "campaign.sweep";
/// Job: refund the backers of a failed campaign.
pub const REFUND_KIND: &str = "campaign.refund";

const DAY_MS: i64 = 86_400_000;

/// Where a campaign stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Taking backers.
    Open,
    /// The deadline passed; the sweep closes it within a minute.
    Ended,
    /// Closed at or above its target (or by the owner): its orders go to fulfilment.
    Funded,
    /// Closed below its target: the backers are being refunded.
    Refunding,
    /// Closed below its target; every backer refunded.
    Failed,
}

/// A campaign's figures, for the product page, the embeddable widget and admin.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub product_id: i64,
    pub stage: Stage,
    pub currency: String,
    pub target: i64,
    pub raised: i64,
    pub backers: i64,
    /// Raised over target in whole percent (may pass 100).
    pub percent: i64,
    /// Whole days to the deadline, rounded up; 0 once it passed.
    pub days_left: i64,
    pub deadline: i64,
    pub target_display: String,
    pub raised_display: String,
}

impl Progress {
    /// Whether orders for it may be placed.
    pub fn accepting(&self) -> bool {
        self.stage == Stage::Open
    }
}

fn stage_of(c: Option<&CampaignRow>, deadline: i64, now: i64) -> Stage {
    match c.map(|c| c.state.as_str()) {
        Some("funded") => Stage::Funded,
        Some("refunding") => Stage::Refunding,
        Some(_) => Stage::Failed,
        None if deadline <= now => Stage::Ended,
        None => Stage::Open,
    }
}

/// The campaign of a crowdfunding product (None for any other kind). Once closed, the figures are
/// those it closed with.
pub async fn progress(ctx: &Ctx, p: &Product) -> DomainResult<Option<Progress>> {
    if p.row.kind != Kind::Crowdfunding.as_str() {
        return Ok(None);
    }
    let (Some(target), Some(deadline)) = (p.details.target_amount, p.details.deadline) else {
        return Ok(None);
    };
    let r = ctx.db.read();
    let closed = store::get(r, p.row.id).await?;
    let (raised, backers, currency) = match &closed {
        Some(c) => (c.raised, c.backers, c.currency.clone()),
        None => {
            let (raised, backers) = store::progress(r, p.row.id).await?;
            (raised, backers, crate::settings::load(ctx).await?.currency)
        }
    };
    let now = ctx.now();
    let left = (deadline - now).max(0);
    Ok(Some(Progress {
        product_id: p.row.id,
        stage: stage_of(closed.as_ref(), deadline, now),
        percent: if target > 0 {
            i64::try_from(i128::from(raised) * 100 / i128::from(target)).unwrap_or(i64::MAX)
        } else {
            100
        },
        days_left: left / DAY_MS + i64::from(left % DAY_MS != 0),
        target_display: crate::money::display(target, &currency),
        raised_display: crate::money::display(raised, &currency),
        currency,
        target,
        raised,
        backers,
        deadline,
    }))
}

/// Whether a product can be bought now as far as its campaign goes (always, for other kinds).
pub async fn accepting(ctx: &Ctx, p: &Product) -> DomainResult<bool> {
    Ok(progress(ctx, p).await?.is_none_or(|g| g.accepting()))
}

/// How the owner closes a campaign early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Decide by the target.
    ByTarget,
    Funded,
    Failed,
}

/// Close a campaign: funded (its orders may be fulfilled) or failed (a job refunds every backer).
/// Only the first close counts; a second returns the campaign as the first left it.
pub async fn close(
    ctx: &Ctx,
    product_id: i64,
    outcome: Outcome,
    actor: &str,
) -> DomainResult<CampaignRow> {
    Ok(close_once(ctx, product_id, outcome, actor).await?.0)
}

/// [`close`], and whether this call closed it.
async fn close_once(
    ctx: &Ctx,
    product_id: i64,
    outcome: Outcome,
    actor: &str,
) -> DomainResult<(CampaignRow, bool)> {
    let p = catalog::get(ctx, product_id).await?;
    let (Some(target), Some(_)) = (p.details.target_amount, p.details.deadline) else {
        return Err(DomainError::invalid("product", "campaign.not_a_campaign"));
    };
    if p.row.kind != Kind::Crowdfunding.as_str() {
        return Err(DomainError::invalid("product", "campaign.not_a_campaign"));
    }
    let currency = crate::settings::load(ctx).await?.currency;
    let mut tx = ctx.db.begin().await?;
    let (raised, backers) = store::progress(&mut *tx, product_id).await?;
    let funded = match outcome {
        Outcome::ByTarget => raised >= target,
        Outcome::Funded => true,
        Outcome::Failed => false,
    };
    let row = CampaignRow {
        product_id,
        state: if funded { "funded" } else { "refunding" }.into(),
        raised,
        backers,
        target,
        currency,
        closed_by: actor.chars().take(120).collect(),
        closed_at: ctx.now(),
    };
    if !store::close(&mut tx, &row).await? {
        drop(tx);
        let first = store::get(ctx.db.read(), product_id)
            .await?
            .ok_or(DomainError::NotFound)?;
        return Ok((first, false));
    }
    if !funded {
        let opts = EnqueueOptions {
            unique_key: Some(format!("{REFUND_KIND}:{product_id}")),
            max_attempts: 50,
            ..Default::default()
        };
        let payload = serde_json::json!({ "product_id": product_id });
        job::enqueue(ctx, &mut tx, REFUND_KIND, &payload, opts).await?;
    }
    let payload = serde_json::json!({
        "product_id": product_id, "state": row.state, "raised": raised, "backers": backers,
        "target": target, "currency": row.currency,
    });
    event::record(ctx, &mut tx, event::CAMPAIGN_CLOSED, product_id, &payload).await?;
    tx.commit().await.map_err(StoreError::from)?;
    crate::catalog::changed();
    tracing::info!(product_id, state = %row.state, raised, backers, "campaign closed");
    Ok((row, true))
}

/// Close every open campaign whose deadline has passed, by its target. Returns how many closed.
pub async fn sweep(ctx: &Ctx) -> DomainResult<usize> {
    let now = ctx.now();
    let mut n = 0;
    for (id, details) in store::open_campaigns(ctx.db.read()).await? {
        let due = serde_json::from_str::<catalog::Details>(&details)
            .ok()
            .and_then(|d| d.deadline)
            .is_some_and(|d| d <= now);
        if due
            && close_once(ctx, id, Outcome::ByTarget, "system:deadline")
                .await?
                .1
        {
            n += 1;
        }
    }
    Ok(n)
}

/// What one order gives back when its campaign fails: all that is left of it when it holds only
/// the campaign, otherwise the campaign lines (after their discounts), capped at what is left.
fn refund_for(o: &order::Order, product_id: i64) -> i64 {
    let left = o.row.captured - o.row.refunded;
    let mine: i64 = o
        .lines
        .iter()
        .filter(|l| l.product_id == Some(product_id))
        .map(|l| l.subtotal - l.discount + if o.row.tax_inclusive == 0 { l.tax } else { 0 })
        .sum();
    if o.lines.iter().all(|l| l.product_id == Some(product_id)) {
        left
    } else {
        mine.min(left)
    }
}

/// Refund every backer of a failed campaign (see the module documentation for why a rerun is
/// safe), then mark it failed. Returns the number of refunds made by this run.
pub async fn refund_backers(ctx: &Ctx, product_id: i64) -> DomainResult<usize> {
    let Some(c) = store::get(ctx.db.read(), product_id).await? else {
        return Err(DomainError::NotFound);
    };
    if c.state != "refunding" {
        return Ok(0);
    }
    let actor = "system:campaign";
    // Unpaid orders first: a payment arriving for one later goes to the owner's refund review.
    for id in store::pending_orders(ctx.db.read(), product_id).await? {
        match order::cancel(ctx, id, actor, true).await {
            Ok(_) | Err(DomainError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let mut made = 0;
    let mut after = 0;
    loop {
        let batch = store::backer_orders(ctx.db.read(), product_id, after, 100).await?;
        let Some(&last) = batch.last() else { break };
        after = last;
        for id in batch {
            let o = order::get(ctx, id).await?;
            let amount = refund_for(&o, product_id);
            if amount <= 0 {
                continue;
            }
            let r = order::Refund {
                amount,
                key: format!("campaign:{product_id}:{id}"),
                restock: true,
                reason: "crowdfunding campaign did not reach its target".into(),
                lines: vec![],
            };
            match order::refund(ctx, id, &r, actor).await {
                Ok(true) => made += 1,
                Ok(false) => {}
                // Nothing left to refund (the owner refunded it all meanwhile).
                Err(DomainError::Invalid { .. }) => {
                    tracing::warn!(order_id = id, product_id, "campaign refund refused");
                }
                Err(e) => return Err(e),
            }
        }
    }
    store::set_state(ctx.db.write(), product_id, "refunding", "failed").await?;
    crate::catalog::changed();
    Ok(made)
}

/// Whether an order's `lines` hold a campaign that is not funded (its units may not be sent yet).
pub(crate) async fn holds_back(
    tx: &mut yiren_store::Tx,
    lines: &[yiren_store::order::LineRow],
) -> DomainResult<bool> {
    for l in lines
        .iter()
        .filter(|l| l.kind == Kind::Crowdfunding.as_str())
    {
        let Some(pid) = l.product_id else { continue };
        let state = store::get(&mut **tx, pid).await?.map(|c| c.state);
        if state.as_deref() != Some("funded") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A campaign's refunds still to be sent by hand: (transaction, order id, number, email, amount,
/// status).
pub async fn refunds_to_send(
    ctx: &Ctx,
    product_id: i64,
) -> DomainResult<Vec<(i64, i64, i64, String, i64, String)>> {
    Ok(store::refunds_to_send(ctx.db.read(), product_id).await?)
}

/// Runs [`sweep`].
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

/// Runs [`refund_backers`]; an interrupted run is retried and picks up where it stopped.
pub struct RefundBackers;

impl JobHandler for RefundBackers {
    fn run<'a>(&'a self, ctx: &'a Ctx, job: &'a JobContext) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let id = serde_json::from_str::<serde_json::Value>(&job.payload)
                .ok()
                .and_then(|v| v["product_id"].as_i64())
                .ok_or_else(|| JobError::permanent("payload has no product_id"))?;
            match refund_backers(ctx, id).await {
                Ok(_) => Ok(()),
                Err(DomainError::NotFound) => Err(JobError::permanent("no such campaign")),
                Err(e) => Err(JobError::transient(e.to_string())),
            }
        })
    }
}
