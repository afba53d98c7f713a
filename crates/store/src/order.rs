//! Orders and what checkout writes with them: order rows, their lines and timeline, discounts and
//! their uses, payment and refund transactions, stock held for open checkouts, and the audit that
//! checks the stock and money columns against their ledgers.

use sqlx::{Any, Executor};

use crate::{StoreResult, Tx, Writes};

/// An order as stored.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct OrderRow {
    pub id: i64,
    pub number: i64,
    pub checkout_token: String,
    pub customer_id: Option<i64>,
    pub email: String,
    pub locale: String,
    pub currency: String,
    pub subtotal: i64,
    pub discount: i64,
    pub shipping: i64,
    pub shipping_discount: i64,
    pub tax: i64,
    pub tax_inclusive: i64,
    pub total: i64,
    pub payment: String,
    pub fulfilment: String,
    pub cancelled: i64,
    pub refund_review: i64,
    pub captured: i64,
    pub refunded: i64,
    pub units: i64,
    pub fulfilled: i64,
    pub stock: String,
    pub hold_until: i64,
    pub expires_at: i64,
    pub gateway: String,
    pub shipping_method: String,
    pub address: String,
    pub note: String,
    pub tags: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const ORDER_COLUMNS: &str = "id, number, checkout_token, customer_id, email, locale, currency, subtotal, \
     discount, shipping, shipping_discount, tax, tax_inclusive, total, payment, fulfilment, cancelled, \
     refund_review, captured, refunded, units, fulfilled, stock, hold_until, expires_at, gateway, \
     shipping_method, address, note, tags, created_at, updated_at";

/// One line of an order: what was sold, as it was when sold.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct LineRow {
    pub order_id: i64,
    pub position: i64,
    pub variant_id: Option<i64>,
    pub product_id: Option<i64>,
    pub kind: String,
    pub title: String,
    pub variant_title: String,
    pub sku: String,
    pub quantity: i64,
    pub unit_price: i64,
    pub subtotal: i64,
    pub discount: i64,
    pub tax: i64,
    pub grams: i64,
    pub requires_shipping: i64,
    pub tracked: i64,
    /// Units sent so far.
    pub fulfilled: i64,
    /// Units refunded by line so far.
    pub refunded_units: i64,
    /// Units put back in stock so far (a tracked line).
    pub restocked: i64,
}

/// The columns checkout writes (the counters start at 0).
const LINE_COLUMNS: &str =
    "order_id, position, variant_id, product_id, kind, title, variant_title, sku, \
     quantity, unit_price, subtotal, discount, tax, grams, requires_shipping, tracked";
const LINE_SELECT: &str =
    "order_id, position, variant_id, product_id, kind, title, variant_title, sku, \
     quantity, unit_price, subtotal, discount, tax, grams, requires_shipping, tracked, \
     fulfilled, refunded_units, restocked";

/// A discount: a code, or automatic (no code).
#[derive(Default, Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct DiscountRow {
    pub id: i64,
    pub code: Option<String>,
    pub title: String,
    pub kind: String,
    pub value: i64,
    pub buy: i64,
    pub get: i64,
    pub applies: String,
    pub targets: String,
    pub min_subtotal: i64,
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    pub usage_limit: Option<i64>,
    pub per_customer: Option<i64>,
    pub used: i64,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const DISCOUNT_COLUMNS: &str =
    "id, code, title, kind, value, buy, get, applies, targets, min_subtotal, \
     starts_at, ends_at, usage_limit, per_customer, used, status, created_at, updated_at";

/// One entry of an order's timeline.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct EventRow {
    pub id: i64,
    pub order_id: i64,
    pub kind: String,
    pub actor: String,
    pub detail: String,
    pub created_at: i64,
}

/// Money received (`sale`) or returned (`refund`).
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct TransactionRow {
    pub id: i64,
    pub order_id: i64,
    pub kind: String,
    pub gateway: String,
    pub reference: String,
    pub amount: i64,
    pub currency: String,
    pub actor: String,
    pub created_at: i64,
    /// Refunds: `done`, `pending` (queued for the gateway), `manual` (the owner sends the money),
    /// `failed` (the gateway refused). Sales: `done`.
    pub status: String,
}

// ---------------------------------------------------------------------------------------------
// Orders

/// Orders with an id below `before`, newest first, optionally only one customer's.
pub async fn list_before<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    customer_id: Option<i64>,
    before: i64,
    limit: i64,
) -> StoreResult<Vec<OrderRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE id < $1 AND ($2 = 0 OR customer_id = $3) \
         ORDER BY id DESC LIMIT $4"
    ))
    .bind(before)
    .bind(customer_id.is_some() as i64)
    .bind(customer_id.unwrap_or(0))
    .bind(limit)
    .fetch_all(exec)
    .await?)
}

/// Take the next order number. The counter row stays locked until the transaction ends, so
/// numbers are handed out in commit order without gaps on both engines.
pub async fn next_number(tx: &mut Tx) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "UPDATE counters SET value = value + 1 WHERE name = 'order_number' RETURNING value",
    )
    .fetch_one(&mut **tx)
    .await?)
}

/// Add the writes of an order with its lines; running them is a `Conflict` when its checkout
/// token was used.
pub fn insert(w: &mut Writes, o: &OrderRow, lines: &[LineRow]) {
    w.add(format!(
        "INSERT INTO orders ({ORDER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
         $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32)"
    ))
    .bind(o.id)
    .bind(o.number)
    .bind(&o.checkout_token)
    .bind(o.customer_id)
    .bind(&o.email)
    .bind(&o.locale)
    .bind(&o.currency)
    .bind(o.subtotal)
    .bind(o.discount)
    .bind(o.shipping)
    .bind(o.shipping_discount)
    .bind(o.tax)
    .bind(o.tax_inclusive)
    .bind(o.total)
    .bind(&o.payment)
    .bind(&o.fulfilment)
    .bind(o.cancelled)
    .bind(o.refund_review)
    .bind(o.captured)
    .bind(o.refunded)
    .bind(o.units)
    .bind(o.fulfilled)
    .bind(&o.stock)
    .bind(o.hold_until)
    .bind(o.expires_at)
    .bind(&o.gateway)
    .bind(&o.shipping_method)
    .bind(&o.address)
    .bind(&o.note)
    .bind(&o.tags)
    .bind(o.created_at)
    .bind(o.updated_at);
    for l in lines {
        w.add(format!(
            "INSERT INTO order_lines ({LINE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
             $11, $12, $13, $14, $15, $16)"
        ))
        .bind(l.order_id)
        .bind(l.position)
        .bind(l.variant_id)
        .bind(l.product_id)
        .bind(&l.kind)
        .bind(&l.title)
        .bind(&l.variant_title)
        .bind(&l.sku)
        .bind(l.quantity)
        .bind(l.unit_price)
        .bind(l.subtotal)
        .bind(l.discount)
        .bind(l.tax)
        .bind(l.grams)
        .bind(l.requires_shipping)
        .bind(l.tracked);
    }
}

/// One order.
pub async fn get<'e, E: Executor<'e, Database = Any>>(exec: E, id: i64) -> StoreResult<OrderRow> {
    Ok(
        sqlx::query_as(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"))
            .bind(id)
            .fetch_one(exec)
            .await?,
    )
}

/// The order placed with a checkout token.
pub async fn by_token<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    token: &str,
) -> StoreResult<Option<OrderRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE checkout_token = $1"
    ))
    .bind(token)
    .fetch_optional(exec)
    .await?)
}

/// An order's lines in order.
pub async fn lines<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    order_id: i64,
) -> StoreResult<Vec<LineRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {LINE_SELECT} FROM order_lines WHERE order_id = $1 ORDER BY position"
    ))
    .bind(order_id)
    .fetch_all(exec)
    .await?)
}

/// What the admin order list is narrowed to; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    /// `pending`, `paid`, `partially_refunded`, `refunded`, `voided`.
    pub payment: Option<String>,
    /// `unfulfilled`, `partially_fulfilled`, `fulfilled`.
    pub fulfilment: Option<String>,
    pub gateway: Option<String>,
    /// Only flagged for a refund review.
    pub review: bool,
    /// Only cancelled (Some(true)) or only not cancelled (Some(false)).
    pub cancelled: Option<bool>,
    /// This order number.
    pub number: Option<i64>,
    /// Text in the order number, the email, the address (name, phone, place), the note or the
    /// tags; matched case-insensitively as a substring.
    pub text: Option<String>,
    /// Placed at or after / before (unix ms).
    pub from: Option<i64>,
    pub until: Option<i64>,
}

/// `%`, `_` and `\` taken literally in a LIKE pattern (with `ESCAPE '\'`).
fn like_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Orders matching `f`, newest first.
pub async fn search<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    f: &OrderFilter,
    limit: i64,
    offset: i64,
) -> StoreResult<Vec<OrderRow>> {
    let mut sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE 1 = 1");
    let mut texts: Vec<String> = vec![];
    let mut ints: Vec<(usize, i64)> = vec![];
    let mut n = 0;
    let mut text = |sql: &mut String, cond: &str, v: String, texts: &mut Vec<String>| {
        n += 1;
        sql.push_str(&cond.replace('?', &format!("${n}")));
        texts.push(v);
        n
    };
    let mut order: Vec<(bool, usize)> = vec![]; // (is_text, index) in bind order
    if let Some(p) = &f.payment {
        text(&mut sql, " AND payment = ?", p.clone(), &mut texts);
        order.push((true, texts.len() - 1));
    }
    if let Some(p) = &f.fulfilment {
        text(&mut sql, " AND fulfilment = ?", p.clone(), &mut texts);
        order.push((true, texts.len() - 1));
    }
    if let Some(g) = &f.gateway {
        text(&mut sql, " AND gateway = ?", g.clone(), &mut texts);
        order.push((true, texts.len() - 1));
    }
    if let Some(t) = f.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let pattern = like_literal(t);
        text(
            &mut sql,
            " AND (LOWER(email) LIKE ? ESCAPE '\\' OR LOWER(address) LIKE ? ESCAPE '\\' \
             OR LOWER(note) LIKE ? ESCAPE '\\' OR LOWER(tags) LIKE ? ESCAPE '\\' \
             OR CAST(number AS TEXT) LIKE ? ESCAPE '\\')",
            pattern,
            &mut texts,
        );
        order.push((true, texts.len() - 1));
    }
    if f.review {
        sql.push_str(" AND refund_review = 1");
    }
    match f.cancelled {
        Some(true) => sql.push_str(" AND cancelled = 1"),
        Some(false) => sql.push_str(" AND cancelled = 0"),
        None => {}
    }
    for (cond, v) in [
        (" AND number = ?", f.number),
        (" AND created_at >= ?", f.from),
        (" AND created_at < ?", f.until),
    ] {
        if let Some(v) = v {
            n += 1;
            sql.push_str(&cond.replace('?', &format!("${n}")));
            ints.push((n, v));
            order.push((false, ints.len() - 1));
        }
    }
    sql.push_str(&format!(
        " ORDER BY created_at DESC, id DESC LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    ));
    let mut q = sqlx::query_as::<_, OrderRow>(&sql);
    for (is_text, i) in order {
        q = if is_text {
            q.bind(texts[i].clone())
        } else {
            q.bind(ints[i].1)
        };
    }
    Ok(q.bind(limit).bind(offset).fetch_all(exec).await?)
}

/// Add to a line's counters (units sent, refunded, restocked), each kept within the line's
/// quantity; false (nothing changed) when one would pass it.
pub async fn count_line(
    tx: &mut Tx,
    order_id: i64,
    position: i64,
    fulfilled: i64,
    refunded: i64,
    restocked: i64,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE order_lines SET fulfilled = fulfilled + $1, refunded_units = refunded_units + $2, \
         restocked = restocked + $3 WHERE order_id = $4 AND position = $5 \
         AND fulfilled + $1 <= quantity AND refunded_units + $2 <= quantity AND restocked + $3 <= quantity",
    )
    .bind(fulfilled)
    .bind(refunded)
    .bind(restocked)
    .bind(order_id)
    .bind(position)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Orders newest first, optionally only one customer's.
pub async fn list<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    customer_id: Option<i64>,
    limit: i64,
    offset: i64,
) -> StoreResult<Vec<OrderRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE ($1 = 0 OR customer_id = $2) \
         ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
    ))
    .bind(customer_id.is_some() as i64)
    .bind(customer_id.unwrap_or(0))
    .bind(limit)
    .bind(offset)
    .fetch_all(exec)
    .await?)
}

/// Write an order's state columns (the caller read the order in this transaction with [`lock`]).
pub async fn save_state(tx: &mut Tx, o: &OrderRow) -> StoreResult<()> {
    let r = sqlx::query(
        "UPDATE orders SET payment = $1, fulfilment = $2, cancelled = $3, refund_review = $4, \
         captured = $5, refunded = $6, fulfilled = $7, stock = $8, updated_at = $9 WHERE id = $10",
    )
    .bind(&o.payment)
    .bind(&o.fulfilment)
    .bind(o.cancelled)
    .bind(o.refund_review)
    .bind(o.captured)
    .bind(o.refunded)
    .bind(o.fulfilled)
    .bind(&o.stock)
    .bind(o.updated_at)
    .bind(o.id)
    .execute(&mut **tx)
    .await?;
    crate::one_row(&r)
}

/// Read an order for change, holding its row until the transaction ends (PostgreSQL row lock;
/// SQLite's write transaction already excludes other writers).
pub async fn lock(tx: &mut Tx, id: i64) -> StoreResult<OrderRow> {
    // A no-op write takes the row lock on PostgreSQL before the read.
    let r = sqlx::query("UPDATE orders SET updated_at = updated_at WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    crate::one_row(&r)?;
    get(&mut **tx, id).await
}

/// Move an order's stock from `from` to `to`; false when it was not at `from` (someone else moved
/// it first), so each move happens once.
pub async fn move_stock_state(tx: &mut Tx, id: i64, from: &str, to: &str) -> StoreResult<bool> {
    let r = sqlx::query("UPDATE orders SET stock = $1 WHERE id = $2 AND stock = $3")
        .bind(to)
        .bind(id)
        .bind(from)
        .execute(&mut **tx)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Add an entry to an order's timeline.
pub fn add_event(w: &mut Writes, e: &EventRow) {
    w.add(
        "INSERT INTO order_events (id, order_id, kind, actor, detail, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(e.id)
    .bind(e.order_id)
    .bind(&e.kind)
    .bind(&e.actor)
    .bind(&e.detail)
    .bind(e.created_at);
}

/// An order's timeline, oldest first.
pub async fn events<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    order_id: i64,
) -> StoreResult<Vec<EventRow>> {
    Ok(sqlx::query_as(
        "SELECT id, order_id, kind, actor, detail, created_at FROM order_events WHERE order_id = $1 \
         ORDER BY created_at, id",
    )
    .bind(order_id)
    .fetch_all(exec)
    .await?)
}

// ---------------------------------------------------------------------------------------------
// Stock

/// One change to a variant's stock (see [`move_stock`]).
#[derive(Clone, Copy, Debug)]
pub struct StockMove<'a> {
    pub variant_id: i64,
    /// Change to the sellable stock; recorded in the inventory ledger when not zero.
    pub delta: i64,
    /// Change to the held stock.
    pub reserved: i64,
    /// Make the change only if a tracked variant that may not oversell stays at zero or above.
    pub guard: bool,
    /// The ledger entry's reason and who made the change.
    pub reason: &'a str,
    pub actor: &'a str,
}

/// Apply a [`StockMove`], the ledger entry (id `id`) added to `w`. Returns the sellable stock
/// after the change, or None when it was not made (sold out under the guard, or the variant is
/// gone). One statement, so concurrent checkouts cannot both take the last unit on either
/// engine; the table's CHECK constraint backs it up.
pub async fn move_stock(
    tx: &mut Tx,
    w: &mut Writes,
    id: i64,
    m: &StockMove<'_>,
    now: i64,
) -> StoreResult<Option<i64>> {
    let StockMove {
        variant_id,
        delta,
        reserved,
        guard,
        reason,
        actor,
    } = *m;
    let after: Option<i64> = sqlx::query_scalar(
        "UPDATE variants SET inventory_quantity = inventory_quantity + $1, reserved = reserved + $2, \
         updated_at = $3 WHERE id = $4 AND ($5 = 0 OR track_inventory = 0 OR inventory_policy = 'continue' \
         OR inventory_quantity + $1 >= 0) RETURNING inventory_quantity",
    )
    .bind(delta)
    .bind(reserved)
    .bind(now)
    .bind(variant_id)
    .bind(guard as i64)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(after) = after else {
        return Ok(None);
    };
    if delta != 0 {
        w.add(
            "INSERT INTO inventory_adjustments (id, variant_id, delta, quantity_after, reason, actor, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(variant_id)
        .bind(delta)
        .bind(after)
        .bind(reason)
        .bind(actor)
        .bind(now);
    }
    Ok(Some(after))
}

/// (sellable, held) stock of a variant.
pub async fn stock_of<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    variant_id: i64,
) -> StoreResult<(i64, i64)> {
    Ok(
        sqlx::query_as("SELECT inventory_quantity, reserved FROM variants WHERE id = $1")
            .bind(variant_id)
            .fetch_one(exec)
            .await?,
    )
}

// ---------------------------------------------------------------------------------------------
// Discounts

/// Insert a discount; `Conflict` when the code is taken.
pub async fn insert_discount<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    d: &DiscountRow,
) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO discounts ({DISCOUNT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         $12, $13, $14, $15, $16, $17, $18)"
    ))
    .bind(d.id)
    .bind(&d.code)
    .bind(&d.title)
    .bind(&d.kind)
    .bind(d.value)
    .bind(d.buy)
    .bind(d.get)
    .bind(&d.applies)
    .bind(&d.targets)
    .bind(d.min_subtotal)
    .bind(d.starts_at)
    .bind(d.ends_at)
    .bind(d.usage_limit)
    .bind(d.per_customer)
    .bind(d.used)
    .bind(&d.status)
    .bind(d.created_at)
    .bind(d.updated_at)
    .execute(exec)
    .await?;
    Ok(())
}

/// One discount.
pub async fn get_discount<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
) -> StoreResult<DiscountRow> {
    Ok(sqlx::query_as(&format!(
        "SELECT {DISCOUNT_COLUMNS} FROM discounts WHERE id = $1"
    ))
    .bind(id)
    .fetch_one(exec)
    .await?)
}

/// The discount with this (upper-case) code.
pub async fn discount_by_code<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    code: &str,
) -> StoreResult<Option<DiscountRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {DISCOUNT_COLUMNS} FROM discounts WHERE code = $1"
    ))
    .bind(code)
    .fetch_optional(exec)
    .await?)
}

/// Every discount, newest first; only the active automatic ones (no code) when `automatic`.
pub async fn discounts<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    automatic: bool,
) -> StoreResult<Vec<DiscountRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {DISCOUNT_COLUMNS} FROM discounts WHERE $1 = 0 OR (code IS NULL AND status = 'active') \
         ORDER BY created_at DESC, id DESC"
    ))
    .bind(automatic as i64)
    .fetch_all(exec)
    .await?)
}

/// Count one more use of a discount if its limit allows; false when it is used up or disabled.
/// The row stays locked until the transaction ends, so the per-customer count read after it is
/// not raced by another checkout with the same discount.
pub async fn take_use(tx: &mut Tx, id: i64, now: i64) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE discounts SET used = used + 1, updated_at = $1 WHERE id = $2 AND status = 'active' \
         AND (usage_limit IS NULL OR used < usage_limit)",
    )
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// How many orders `customer` placed with a discount.
pub async fn uses_by(tx: &mut Tx, id: i64, customer: &str) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM discount_uses WHERE discount_id = $1 AND customer = $2",
    )
    .bind(id)
    .bind(customer)
    .fetch_one(&mut **tx)
    .await?)
}

/// Record that an order used a discount.
pub fn add_use(w: &mut Writes, id: i64, order_id: i64, customer: &str, amount: i64, now: i64) {
    w.add(
        "INSERT INTO discount_uses (discount_id, order_id, customer, amount, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(order_id)
    .bind(customer)
    .bind(amount)
    .bind(now);
}

/// Give back the discount uses of an order that was never paid; returns how many.
pub async fn give_back_uses(tx: &mut Tx, order_id: i64, now: i64) -> StoreResult<u64> {
    let ids: Vec<i64> =
        sqlx::query_scalar("DELETE FROM discount_uses WHERE order_id = $1 RETURNING discount_id")
            .bind(order_id)
            .fetch_all(&mut **tx)
            .await?;
    for id in &ids {
        sqlx::query("UPDATE discounts SET used = used - 1, updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(ids.len() as u64)
}

// ---------------------------------------------------------------------------------------------
// Transactions

/// Record money received or returned; false when (gateway, reference) is already recorded.
pub async fn add_transaction(tx: &mut Tx, t: &TransactionRow) -> StoreResult<bool> {
    let r = sqlx::query(
        "INSERT INTO transactions (id, order_id, kind, gateway, reference, amount, currency, actor, created_at, status) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (gateway, reference) DO NOTHING",
    )
    .bind(t.id)
    .bind(t.order_id)
    .bind(&t.kind)
    .bind(&t.gateway)
    .bind(&t.reference)
    .bind(t.amount)
    .bind(&t.currency)
    .bind(&t.actor)
    .bind(t.created_at)
    .bind(&t.status)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The order a gateway's transaction (by its reference) was recorded on, if it was.
pub async fn order_of_transaction<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    gateway: &str,
    reference: &str,
) -> StoreResult<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT order_id FROM transactions WHERE gateway = $1 AND reference = $2",
    )
    .bind(gateway)
    .bind(reference)
    .fetch_optional(exec)
    .await?)
}

/// An order's transactions, oldest first.
pub async fn transactions<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    order_id: i64,
) -> StoreResult<Vec<TransactionRow>> {
    Ok(sqlx::query_as(
        "SELECT id, order_id, kind, gateway, reference, amount, currency, actor, created_at, status \
         FROM transactions WHERE order_id = $1 ORDER BY created_at, id",
    )
    .bind(order_id)
    .fetch_all(exec)
    .await?)
}

/// One transaction.
pub async fn get_transaction<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
) -> StoreResult<TransactionRow> {
    Ok(sqlx::query_as(
        "SELECT id, order_id, kind, gateway, reference, amount, currency, actor, created_at, status \
         FROM transactions WHERE id = $1",
    )
    .bind(id)
    .fetch_one(exec)
    .await?)
}

/// Move a transaction from status `from` to `to`; false when it was not in `from` (someone else
/// moved it first).
pub async fn set_transaction_status<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    from: &str,
    to: &str,
) -> StoreResult<bool> {
    let r = sqlx::query("UPDATE transactions SET status = $1 WHERE id = $2 AND status = $3")
        .bind(to)
        .bind(id)
        .bind(from)
        .execute(exec)
        .await?;
    Ok(r.rows_affected() == 1)
}

// ---------------------------------------------------------------------------------------------
// Audit

/// Every way the stored figures disagree with their ledgers, described; empty when they agree:
/// a variant's stock is not the sum of its inventory ledger, its held stock is not what open
/// orders hold, a stock that may not oversell is below zero, an order's captured or refunded sum
/// is not the sum of its transactions, a discount's use count is not its recorded uses, an
/// order's units sent are not its lines', or a line's counters leave `0..=quantity`.
pub async fn audit<'e, E: Executor<'e, Database = Any> + Copy>(
    exec: E,
) -> StoreResult<Vec<String>> {
    let mut out = Vec::new();
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT v.id, v.inventory_quantity, CAST(COALESCE(SUM(a.delta), 0) AS BIGINT) FROM variants v \
         LEFT JOIN inventory_adjustments a ON a.variant_id = v.id GROUP BY v.id, v.inventory_quantity \
         HAVING v.inventory_quantity <> COALESCE(SUM(a.delta), 0)",
    )
    .fetch_all(exec)
    .await?;
    for (id, q, sum) in rows {
        out.push(format!("variant {id}: stock {q}, ledger sum {sum}"));
    }
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT v.id, v.reserved, CAST(COALESCE((SELECT SUM(l.quantity) FROM order_lines l JOIN orders o ON o.id = l.order_id \
         WHERE l.variant_id = v.id AND l.tracked = 1 AND o.stock = 'held'), 0) AS BIGINT) AS held FROM variants v",
    )
    .fetch_all(exec)
    .await?;
    for (id, reserved, held) in rows.into_iter().filter(|r| r.1 != r.2) {
        out.push(format!(
            "variant {id}: reserved {reserved}, open orders hold {held}"
        ));
    }
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT id, inventory_quantity FROM variants WHERE track_inventory = 1 \
         AND inventory_policy = 'deny' AND inventory_quantity < 0",
    )
    .fetch_all(exec)
    .await?;
    for (id, q) in rows {
        out.push(format!("variant {id}: stock {q} below zero"));
    }
    let rows: Vec<(i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT o.number, o.captured, o.refunded, \
         CAST(COALESCE((SELECT SUM(amount) FROM transactions t WHERE t.order_id = o.id AND t.kind = 'sale'), 0) AS BIGINT), \
         CAST(COALESCE((SELECT SUM(amount) FROM transactions t WHERE t.order_id = o.id AND t.kind = 'refund'), 0) AS BIGINT) \
         FROM orders o",
    )
    .fetch_all(exec)
    .await?;
    for (n, captured, refunded, sales, refunds) in rows {
        if captured != sales || refunded != refunds || refunded > captured {
            out.push(format!(
                "order #{n}: captured {captured} vs sales {sales}, refunded {refunded} vs refunds {refunds}"
            ));
        }
    }
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT d.id, d.used, (SELECT COUNT(*) FROM discount_uses u WHERE u.discount_id = d.id) FROM discounts d",
    )
    .fetch_all(exec)
    .await?;
    for (id, used, uses) in rows.into_iter().filter(|r| r.1 != r.2) {
        out.push(format!("discount {id}: used {used}, recorded uses {uses}"));
    }
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT o.number, o.fulfilled, CAST(COALESCE((SELECT SUM(l.fulfilled) FROM order_lines l \
         WHERE l.order_id = o.id), 0) AS BIGINT) FROM orders o",
    )
    .fetch_all(exec)
    .await?;
    for (n, fulfilled, lines) in rows.into_iter().filter(|r| r.1 != r.2) {
        out.push(format!(
            "order #{n}: {fulfilled} units sent, its lines say {lines}"
        ));
    }
    let over: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT order_id, position FROM order_lines WHERE fulfilled > quantity \
         OR refunded_units > quantity OR restocked > quantity OR fulfilled < 0 \
         OR refunded_units < 0 OR restocked < 0",
    )
    .fetch_all(exec)
    .await?;
    for (o, p) in over {
        out.push(format!(
            "order {o} line {p}: a counter outside 0..=quantity"
        ));
    }
    Ok(out)
}

/// Change what a discount is, and whether it is on (not its uses or creation). False when it would put the use
/// limit below the uses already counted (checked in the same statement, so a checkout taking a
/// use at the same moment cannot slip past it).
pub async fn update_discount<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    d: &DiscountRow,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE discounts SET code = $1, title = $2, kind = $3, value = $4, buy = $5, get = $6, \
         applies = $7, targets = $8, min_subtotal = $9, starts_at = $10, ends_at = $11, \
         usage_limit = $12, per_customer = $13, updated_at = $14, status = $16 \
         WHERE id = $15 AND ($12 IS NULL OR used <= $12)",
    )
    .bind(&d.code)
    .bind(&d.title)
    .bind(&d.kind)
    .bind(d.value)
    .bind(d.buy)
    .bind(d.get)
    .bind(&d.applies)
    .bind(&d.targets)
    .bind(d.min_subtotal)
    .bind(d.starts_at)
    .bind(d.ends_at)
    .bind(d.usage_limit)
    .bind(d.per_customer)
    .bind(d.updated_at)
    .bind(d.id)
    .bind(&d.status)
    .execute(exec)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Delete a discount no order holds a use of; false when one does (or it does not exist).
pub async fn delete_unused_discount<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "DELETE FROM discounts WHERE id = $1 \
         AND NOT EXISTS (SELECT 1 FROM discount_uses WHERE discount_id = $1)",
    )
    .bind(id)
    .execute(exec)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Turn a discount on (`active`) or off (`disabled`).
pub async fn set_discount_status<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    status: &str,
    now: i64,
) -> StoreResult<()> {
    let r = sqlx::query("UPDATE discounts SET status = $1, updated_at = $2 WHERE id = $3")
        .bind(status)
        .bind(now)
        .bind(id)
        .execute(exec)
        .await?;
    crate::one_row(&r)
}
