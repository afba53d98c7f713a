//! Recurring memberships: the plans and their periods (one row per period, the key unique).

use sqlx::{Any, Executor};

use crate::{StoreResult, Tx, Writes};

/// A recurring membership.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct PlanRow {
    pub id: i64,
    pub customer_id: Option<i64>,
    pub email: String,
    pub product_id: i64,
    pub variant_id: i64,
    pub title: String,
    pub amount: i64,
    pub currency: String,
    pub locale: String,
    pub gateway: String,
    /// The gateway's subscription id; empty when renewals go by order and reminder.
    pub gateway_ref: String,
    pub first_order_id: i64,
    pub tz: String,
    pub anchor_at: i64,
    pub offset_months: i64,
    pub every_months: i64,
    /// `active`, `past_due`, `cancelled` or `lapsed`.
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const PLAN_COLUMNS: &str = "id, customer_id, email, product_id, variant_id, title, amount, currency, locale, gateway, \
     gateway_ref, first_order_id, tz, anchor_at, offset_months, every_months, status, created_at, updated_at";

/// One period of a plan and the order that pays it.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct PeriodRow {
    pub plan_id: i64,
    pub period: i64,
    pub order_id: i64,
    pub starts_at: i64,
    pub ends_at: i64,
    pub paid_at: Option<i64>,
    pub created_at: i64,
}

const PERIOD_COLUMNS: &str = "plan_id, period, order_id, starts_at, ends_at, paid_at, created_at";

/// Start a plan with its first, paid period (in the first order's payment transaction).
pub async fn insert_plan(tx: &mut Tx, p: &PlanRow, first: &PeriodRow) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO recurring_plans ({PLAN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
         $11, $12, $13, $14, $15, $16, $17, $18, $19)"
    ))
    .bind(p.id)
    .bind(p.customer_id)
    .bind(&p.email)
    .bind(p.product_id)
    .bind(p.variant_id)
    .bind(&p.title)
    .bind(p.amount)
    .bind(&p.currency)
    .bind(&p.locale)
    .bind(&p.gateway)
    .bind(&p.gateway_ref)
    .bind(p.first_order_id)
    .bind(&p.tz)
    .bind(p.anchor_at)
    .bind(p.offset_months)
    .bind(p.every_months)
    .bind(&p.status)
    .bind(p.created_at)
    .bind(p.updated_at)
    .execute(&mut **tx)
    .await?;
    insert_period_into(&mut Writes::new(), first).run(tx).await
}

/// Record a period with the order being placed for it (run with the order's own rows): the
/// period key is the primary key, so a second order for one period fails the placement.
pub fn insert_period_into<'w>(w: &'w mut Writes, r: &PeriodRow) -> &'w mut Writes {
    w.add(format!(
        "INSERT INTO recurring_periods ({PERIOD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .bind(r.plan_id)
    .bind(r.period)
    .bind(r.order_id)
    .bind(r.starts_at)
    .bind(r.ends_at)
    .bind(r.paid_at)
    .bind(r.created_at);
    w
}

/// A plan by id.
pub async fn get<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
) -> StoreResult<Option<PlanRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {PLAN_COLUMNS} FROM recurring_plans WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(exec)
    .await?)
}

/// The plan a gateway's subscription id belongs to.
pub async fn by_gateway_ref<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    gateway: &str,
    gateway_ref: &str,
) -> StoreResult<Option<PlanRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {PLAN_COLUMNS} FROM recurring_plans WHERE gateway = $1 AND gateway_ref = $2 AND gateway_ref <> ''"
    ))
    .bind(gateway)
    .bind(gateway_ref)
    .fetch_optional(exec)
    .await?)
}

/// The plan an order started, if any.
pub async fn by_first_order<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    order_id: i64,
) -> StoreResult<Option<PlanRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {PLAN_COLUMNS} FROM recurring_plans WHERE first_order_id = $1"
    ))
    .bind(order_id)
    .fetch_optional(exec)
    .await?)
}

/// The holder's running plans (active or past due) of a product; the holder is the customer,
/// or the email of a guest.
pub async fn running_of(
    tx: &mut Tx,
    customer_id: Option<i64>,
    email: &str,
    product_id: i64,
) -> StoreResult<Vec<PlanRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {PLAN_COLUMNS} FROM recurring_plans WHERE product_id = $1 \
         AND status IN ('active', 'past_due') \
         AND ((customer_id IS NOT NULL AND customer_id = $2) OR (customer_id IS NULL AND email = $3)) \
         ORDER BY id"
    ))
    .bind(product_id)
    .bind(customer_id)
    .bind(email)
    .fetch_all(&mut **tx)
    .await?)
}

/// A plan's status.
pub async fn set_status<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    status: &str,
    now: i64,
) -> StoreResult<bool> {
    let r = sqlx::query("UPDATE recurring_plans SET status = $1, updated_at = $2 WHERE id = $3")
        .bind(status)
        .bind(now)
        .bind(id)
        .execute(exec)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// End a running (active or past due) plan with `status` (`cancelled`, `lapsed`); false when it
/// was not running — so two who end it at once cannot both act on it.
pub async fn stop<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    status: &str,
    now: i64,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE recurring_plans SET status = $1, updated_at = $2 \
         WHERE id = $3 AND status IN ('active', 'past_due')",
    )
    .bind(status)
    .bind(now)
    .bind(id)
    .execute(exec)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Name the gateway's subscription of a plan that has none yet; false when it had one.
pub async fn set_gateway_ref<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    gateway_ref: &str,
    now: i64,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE recurring_plans SET gateway_ref = $1, updated_at = $2 WHERE id = $3 AND gateway_ref = ''",
    )
    .bind(gateway_ref)
    .bind(now)
    .bind(id)
    .execute(exec)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Stop every running plan of a customer (their account is deleted); how many.
pub async fn stop_customer<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    customer_id: i64,
    now: i64,
) -> StoreResult<u64> {
    let r = sqlx::query(
        "UPDATE recurring_plans SET status = 'cancelled', updated_at = $1 \
         WHERE customer_id = $2 AND status IN ('active', 'past_due')",
    )
    .bind(now)
    .bind(customer_id)
    .execute(exec)
    .await?;
    Ok(r.rows_affected())
}

/// Plans, newest first (admin), `before` an id for the next page; `status` empty = all.
pub async fn list<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    status: &str,
    before: Option<i64>,
    limit: i64,
) -> StoreResult<Vec<PlanRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {PLAN_COLUMNS} FROM recurring_plans WHERE ($1 = '' OR status = $1) \
         AND id < $2 ORDER BY id DESC LIMIT $3"
    ))
    .bind(status)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(exec)
    .await?)
}

/// A customer's plans (by account, or by the email of their guest orders), newest first.
pub async fn of_customer<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    customer_id: i64,
    email: &str,
) -> StoreResult<Vec<PlanRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {PLAN_COLUMNS} FROM recurring_plans WHERE customer_id = $1 \
         OR (customer_id IS NULL AND email = $2) ORDER BY id DESC"
    ))
    .bind(customer_id)
    .bind(email)
    .fetch_all(exec)
    .await?)
}

/// Plans that renew by order (no gateway subscription) and still run, each with its latest
/// period: what the sweep looks at.
pub async fn renewing<'e, E: Executor<'e, Database = Any>>(
    exec: E,
) -> StoreResult<Vec<(PlanRow, PeriodRow)>> {
    #[derive(sqlx::FromRow)]
    struct Joined {
        #[sqlx(flatten)]
        plan: PlanRow,
        period: i64,
        order_id: i64,
        starts_at: i64,
        ends_at: i64,
        paid_at: Option<i64>,
        period_created_at: i64,
    }
    let cols = PLAN_COLUMNS
        .split(", ")
        .map(|c| format!("p.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let rows: Vec<Joined> = sqlx::query_as(&format!(
        "SELECT {cols}, x.period, x.order_id, x.starts_at, x.ends_at, x.paid_at, \
         x.created_at AS period_created_at \
         FROM recurring_plans p JOIN recurring_periods x ON x.plan_id = p.id \
         AND x.period = (SELECT MAX(y.period) FROM recurring_periods y WHERE y.plan_id = p.id) \
         WHERE p.status IN ('active', 'past_due') AND p.gateway_ref = '' ORDER BY p.id"
    ))
    .fetch_all(exec)
    .await?;
    Ok(rows
        .into_iter()
        .map(|j| {
            let period = PeriodRow {
                plan_id: j.plan.id,
                period: j.period,
                order_id: j.order_id,
                starts_at: j.starts_at,
                ends_at: j.ends_at,
                paid_at: j.paid_at,
                created_at: j.period_created_at,
            };
            (j.plan, period)
        })
        .collect())
}

/// The period an order was placed for, if it is a renewal (or a plan's first order).
pub async fn period_of_order<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    order_id: i64,
) -> StoreResult<Option<PeriodRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {PERIOD_COLUMNS} FROM recurring_periods WHERE order_id = $1"
    ))
    .bind(order_id)
    .fetch_optional(exec)
    .await?)
}

/// A plan's latest period.
pub async fn latest_period<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    plan_id: i64,
) -> StoreResult<Option<PeriodRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {PERIOD_COLUMNS} FROM recurring_periods WHERE plan_id = $1 ORDER BY period DESC LIMIT 1"
    ))
    .bind(plan_id)
    .fetch_optional(exec)
    .await?)
}

/// A plan's periods, oldest first.
pub async fn periods<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    plan_id: i64,
) -> StoreResult<Vec<PeriodRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {PERIOD_COLUMNS} FROM recurring_periods WHERE plan_id = $1 ORDER BY period"
    ))
    .bind(plan_id)
    .fetch_all(exec)
    .await?)
}

/// Mark a period paid (in its order's payment transaction); false when it already was.
pub async fn mark_paid(tx: &mut Tx, plan_id: i64, period: i64, now: i64) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE recurring_periods SET paid_at = $1 WHERE plan_id = $2 AND period = $3 AND paid_at IS NULL",
    )
    .bind(now)
    .bind(plan_id)
    .bind(period)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}
