//! Discounts the owner sets up: codes the customer enters and automatic ones, each a percentage,
//! a fixed amount, free shipping or buy-X-get-Y, on everything, some products or some collections,
//! with a minimum subtotal, a date range, a total use limit and a per-customer limit.
//!
//! Language: a *use* is one order placed with the discount; it is counted when the order is placed
//! (inside its transaction, so a limit holds under any concurrency — RELIABILITY COUP-1) and given
//! back when an unpaid order is cancelled or expires.
//!
//! Boundaries: the arithmetic is `pricing`; `checkout` takes the uses.

use serde::{Deserialize, Serialize};
use yiren_store::order::{self as store, DiscountRow};
use yiren_store::StoreError;

use crate::error::{DomainError, DomainResult};
use crate::pricing::{self, Applies, Value};
use crate::Ctx;

/// The kinds, as stored.
pub const KINDS: [&str; 4] = ["percent", "amount", "free_shipping", "buy_x_get_y"];

/// What the owner enters.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct DiscountInput {
    /// Empty: automatic.
    pub code: String,
    pub title: String,
    /// One of [`KINDS`].
    pub kind: String,
    /// Basis points (percent, buy-X-get-Y) or minor units (amount).
    pub value: i64,
    pub buy: i64,
    pub get: i64,
    /// `all`, `products` or `collections`.
    pub applies: String,
    pub targets: Vec<i64>,
    pub min_subtotal: i64,
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    pub usage_limit: Option<i64>,
    pub per_customer: Option<i64>,
    /// Set up turned off (`disabled`); the default is on.
    #[serde(default)]
    pub disabled: bool,
}

/// Upper-case, trimmed; letters, digits, `-` and `_`, 3 to 40 of them.
pub fn normalise_code(code: &str) -> DomainResult<String> {
    let c = code.trim().to_uppercase();
    let ok = (3..=40).contains(&c.chars().count())
        && c.chars()
            .all(|ch| ch.is_alphanumeric() || ch == '-' || ch == '_');
    if ok {
        Ok(c)
    } else {
        Err(DomainError::invalid("code", "discount.code_invalid"))
    }
}

fn check(input: &DiscountInput) -> DomainResult<()> {
    let bad = |field: &'static str| Err(DomainError::invalid(field, "discount.invalid"));
    if input.title.trim().is_empty() || input.title.chars().count() > 200 {
        return Err(DomainError::invalid("title", "discount.title_required"));
    }
    if !KINDS.contains(&input.kind.as_str()) {
        return bad("kind");
    }
    if !["all", "products", "collections"].contains(&input.applies.as_str())
        || (input.applies != "all" && input.targets.is_empty())
        || input.targets.len() > 1000
    {
        return bad("applies");
    }
    if input.min_subtotal < 0 || input.min_subtotal > crate::money::MAX_MINOR {
        return bad("min_subtotal");
    }
    if matches!((input.starts_at, input.ends_at), (Some(s), Some(e)) if e <= s) {
        return bad("ends_at");
    }
    if input.usage_limit.is_some_and(|n| n < 1) || input.per_customer.is_some_and(|n| n < 1) {
        return bad("usage_limit");
    }
    // The arithmetic's own limits (percent ≤ 100 %, buy/get 1..=1000, amount ≥ 0).
    let probe = to_pricing_parts(&input.kind, input.value, input.buy, input.get);
    let line = pricing::Line {
        product_id: 1,
        collections: vec![],
        unit_price: 1,
        quantity: 1,
        grams: 0,
        requires_shipping: false,
    };
    let d = pricing::Discount {
        id: 0,
        value: probe,
        applies: Applies::All,
        min_subtotal: 0,
    };
    if input.value < 0 || input.value > crate::money::MAX_MINOR {
        return bad("value");
    }
    pricing::price(&[line], &[d], None, None)
        .map_err(|_| DomainError::invalid("value", "pricing.discount_invalid"))?;
    Ok(())
}

fn to_pricing_parts(kind: &str, value: i64, buy: i64, get: i64) -> Value {
    match kind {
        "percent" => Value::Percent(value),
        "amount" => Value::Amount(value),
        "free_shipping" => Value::FreeShipping,
        _ => Value::BuyXGetY {
            buy,
            get,
            off: value,
        },
    }
}

/// The arithmetic's view of a stored discount.
pub fn to_pricing(d: &DiscountRow) -> pricing::Discount {
    let targets: Vec<i64> = serde_json::from_str(&d.targets).unwrap_or_default();
    pricing::Discount {
        id: d.id,
        value: to_pricing_parts(&d.kind, d.value, d.buy, d.get),
        applies: match d.applies.as_str() {
            "products" => Applies::Products(targets),
            "collections" => Applies::Collections(targets),
            _ => Applies::All,
        },
        min_subtotal: d.min_subtotal,
    }
}

/// Whether a discount may apply at `now` (active, inside its dates, not used up). The use limit
/// is checked again when the use is taken.
pub fn open(d: &DiscountRow, now: i64) -> bool {
    d.status == "active"
        && d.starts_at.is_none_or(|s| s <= now)
        && d.ends_at.is_none_or(|e| now < e)
        && d.usage_limit.is_none_or(|n| d.used < n)
}

/// The products or collections a discount names must exist (a typo would make it apply to
/// nothing, silently).
async fn check_targets(ctx: &Ctx, input: &DiscountInput) -> DomainResult<()> {
    for id in &input.targets {
        let found = match input.applies.as_str() {
            "products" => crate::catalog::get(ctx, *id).await.map(|_| ()),
            "collections" => crate::catalog::collection::get(ctx, *id).await.map(|_| ()),
            _ => Ok(()),
        };
        match found {
            Err(DomainError::NotFound) => {
                return Err(DomainError::invalid("targets", "discount.target_unknown"))
            }
            other => other?,
        }
    }
    Ok(())
}

fn code_of(input: &DiscountInput) -> DomainResult<Option<String>> {
    if input.code.trim().is_empty() {
        Ok(None)
    } else {
        normalise_code(&input.code).map(Some)
    }
}

fn code_taken(e: StoreError) -> DomainError {
    match e {
        StoreError::Conflict(_) => DomainError::Conflict {
            key: "discount.code_taken",
        },
        e => e.into(),
    }
}

/// The input, checked, written over `base` (which keeps its id, uses and creation time).
async fn row_of(ctx: &Ctx, input: &DiscountInput, base: DiscountRow) -> DomainResult<DiscountRow> {
    check(input)?;
    let code = code_of(input)?;
    check_targets(ctx, input).await?;
    Ok(DiscountRow {
        code,
        title: input.title.trim().to_string(),
        kind: input.kind.clone(),
        value: input.value,
        buy: input.buy,
        get: input.get,
        applies: input.applies.clone(),
        targets: serde_json::to_string(&input.targets).expect("serialisable"),
        min_subtotal: input.min_subtotal,
        starts_at: input.starts_at,
        ends_at: input.ends_at,
        usage_limit: input.usage_limit,
        per_customer: input.per_customer,
        status: status_of(input).into(),
        updated_at: ctx.now(),
        ..base
    })
}

/// Create a discount.
pub async fn create(ctx: &Ctx, input: &DiscountInput) -> DomainResult<DiscountRow> {
    let base = DiscountRow {
        id: ctx.new_id(),
        created_at: ctx.now(),
        ..Default::default()
    };
    let row = row_of(ctx, input, base).await?;
    store::insert_discount(ctx.db.write(), &row)
        .await
        .map_err(code_taken)?;
    Ok(row)
}

/// Change a discount. Its uses so far stay counted (and keep their amounts on their orders); a
/// use limit below them is refused.
pub async fn update(ctx: &Ctx, id: i64, input: &DiscountInput) -> DomainResult<DiscountRow> {
    let old = get(ctx, id).await?;
    let row = row_of(ctx, input, old).await?;
    if !store::update_discount(ctx.db.write(), &row)
        .await
        .map_err(code_taken)?
    {
        // Either it was deleted meanwhile, or the limit is below the uses.
        get(ctx, id).await?;
        return Err(DomainError::invalid(
            "usage_limit",
            "discount.limit_below_used",
        ));
    }
    get(ctx, id).await
}

/// Delete a discount no order has used; one with uses is refused (turn it off instead, so the
/// orders keep what they were given).
pub async fn delete(ctx: &Ctx, id: i64) -> DomainResult<()> {
    get(ctx, id).await?;
    if store::delete_unused_discount(ctx.db.write(), id).await? {
        Ok(())
    } else {
        get(ctx, id).await?;
        Err(DomainError::Conflict {
            key: "discount.in_use",
        })
    }
}

/// The input that would recreate a stored discount (forms and the API show it).
pub fn input_of(d: &DiscountRow) -> DiscountInput {
    DiscountInput {
        code: d.code.clone().unwrap_or_default(),
        title: d.title.clone(),
        kind: d.kind.clone(),
        value: d.value,
        buy: d.buy,
        get: d.get,
        applies: d.applies.clone(),
        targets: serde_json::from_str(&d.targets).unwrap_or_default(),
        min_subtotal: d.min_subtotal,
        starts_at: d.starts_at,
        ends_at: d.ends_at,
        usage_limit: d.usage_limit,
        per_customer: d.per_customer,
        disabled: d.status == "disabled",
    }
}

fn status_of(input: &DiscountInput) -> &'static str {
    if input.disabled {
        "disabled"
    } else {
        "active"
    }
}

/// One discount.
pub async fn get(ctx: &Ctx, id: i64) -> DomainResult<DiscountRow> {
    store::get_discount(ctx.db.read(), id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => DomainError::NotFound,
            e => e.into(),
        })
}

/// Every discount, newest first.
pub async fn list(ctx: &Ctx) -> DomainResult<Vec<DiscountRow>> {
    Ok(store::discounts(ctx.db.read(), false).await?)
}

/// Turn a discount on or off (uses already counted stay).
pub async fn set_active(ctx: &Ctx, id: i64, active: bool) -> DomainResult<()> {
    let status = if active { "active" } else { "disabled" };
    store::set_discount_status(ctx.db.write(), id, status, ctx.now())
        .await
        .map_err(|e| match e {
            StoreError::NotFound => DomainError::NotFound,
            e => e.into(),
        })
}
