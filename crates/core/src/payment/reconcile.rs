//! Reconciliation (RELIABILITY PAY-7): a scheduled job asks each online gateway about the orders
//! still pending after their notification should have come, and settles those the gateway has
//! paid through the same path as a notification ([`super::settle`]). Every check is recorded
//! (`payment_checks`) for the owner's reconciliation report.
//!
//! Window: orders placed between [`LOOKBACK_MS`] and [`GRACE_MS`] ago. A notification normally
//! arrives within seconds; after the grace an order is asked about again once a quarter of its
//! age has passed since the last check (5 min, then ~6, ~8, ... up to 12 h apart: about 30 checks
//! over the two days, not one per run), until it is paid, cancelled, or older than the lookback.

use futures::future::BoxFuture;
use yiren_store::payment::{self as store, CheckRow};

use super::{Outcome, Settled};
use crate::error::DomainResult;
use crate::job::{JobContext, JobError, JobHandler};
use crate::Ctx;

/// Job kind (scheduled every few minutes by the binary).
pub const KIND: &str = "payment.reconcile";
/// How long after placing an order its notification should have come.
pub const GRACE_MS: i64 = 5 * 60_000;
/// How far back pending orders are still asked about.
pub const LOOKBACK_MS: i64 = 48 * 3_600_000;
/// Orders asked about in one run at most (the rest wait for the next).
const BATCH: usize = 200;

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Run {
    pub checked: usize,
    pub paid: usize,
}

/// Ask the gateways about the pending orders that are due (every one in the window when `all`:
/// the owner's "check now"); record what each said.
pub async fn run(ctx: &Ctx, all: bool) -> DomainResult<Run> {
    let now = ctx.now();
    let due = store::awaiting(ctx.db.read(), now - LOOKBACK_MS, now - GRACE_MS)
        .await?
        .into_iter()
        .filter(|o| {
            all || o
                .last_checked
                .is_none_or(|last| now - last >= GRACE_MS.max((now - o.created_at) / 4))
        })
        .take(BATCH);
    let mut out = Run::default();
    for store::Awaiting {
        id: order_id,
        gateway,
        total,
        currency,
        started,
        ..
    } in due
    {
        let Some(gw) = ctx.gateways.get(&gateway) else {
            continue;
        };
        let (outcome, detail) = match gw
            .query(&super::Lookup {
                order_ref: order_id.to_string(),
                amount: total,
                currency,
                started,
            })
            .await
        {
            Err(e) => ("error", e.to_string()),
            Ok(None) => ("unknown", String::new()),
            Ok(Some(v)) if v.order_ref != order_id.to_string() => {
                ("error", format!("answer names order {}", v.order_ref))
            }
            Ok(Some(v)) if v.outcome != Outcome::Paid => ("pending", String::new()),
            Ok(Some(v)) => {
                match super::settle(ctx, gw.as_ref(), &v, &format!("reconcile:{gateway}")).await {
                    Settled::Recorded => {
                        out.paid += 1;
                        ("paid", v.reference.clone())
                    }
                    Settled::Parked(key) => ("parked", key.to_string()),
                    Settled::NotPaid => ("pending", String::new()),
                    Settled::UnknownOrder => ("unknown", String::new()),
                    Settled::Failed(e) => ("error", e),
                }
            }
        };
        out.checked += 1;
        let row = CheckRow {
            id: ctx.new_id(),
            order_id,
            gateway: gateway.clone(),
            outcome: outcome.into(),
            detail: detail.chars().take(500).collect(),
            checked_at: ctx.now(),
        };
        store::put_check(ctx.db.write(), &row).await?;
    }
    if out.checked > 0 {
        tracing::info!(
            checked = out.checked,
            paid = out.paid,
            "payments reconciled"
        );
    }
    Ok(out)
}

/// The reconciliation report: outcome counts over the last `days`, and the latest checks with
/// their order numbers.
pub async fn report(
    ctx: &Ctx,
    days: i64,
    limit: i64,
) -> DomainResult<(Vec<(String, i64)>, Vec<(CheckRow, i64)>)> {
    let since = ctx.now() - days * 86_400_000;
    Ok((
        store::outcome_counts(ctx.db.read(), since).await?,
        store::checks(ctx.db.read(), limit).await?,
    ))
}

/// The scheduled job.
pub struct Reconcile;

impl JobHandler for Reconcile {
    fn run<'a>(
        &'a self,
        ctx: &'a Ctx,
        _job: &'a JobContext,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            run(ctx, false)
                .await
                .map_err(|e| JobError::transient(e.to_string()))?;
            Ok(())
        })
    }
}
