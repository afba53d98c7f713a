//! Abandoned checkouts: each browser's checkout is recorded when its page is shown or its form
//! comes back with an error (the cart as priced, and the contact when known — a signed-in
//! customer, or the email typed in); placing the order marks it converted in the order's own
//! transaction (`checkout::Submit::started`). The owner sees those
//! that were left for [`QUIET_MS`] without becoming an order, kept 90 days.

use serde::Serialize;
use yiren_store::abandoned::{self as store, CheckoutRow};

use crate::cart::Priced;
use crate::error::DomainResult;
use crate::{money, Ctx};

/// A checkout counts as abandoned after this long without a visit or an order.
pub const QUIET_MS: i64 = 30 * 60_000;

/// An abandoned checkout as the owner sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Abandoned {
    pub email: String,
    pub customer_id: Option<i64>,
    pub items: Vec<Item>,
    pub subtotal: String,
    pub started_at: i64,
    pub last_seen_at: i64,
}

/// One cart line.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Item {
    pub title: String,
    pub quantity: i64,
}

/// Record that the browser's checkout `id` was seen with this cart and contact.
pub async fn touch(
    ctx: &Ctx,
    id: &str,
    email: &str,
    customer_id: Option<i64>,
    cart: &Priced,
    currency: &str,
) -> DomainResult<()> {
    let items: Vec<Item> = cart
        .lines
        .iter()
        .map(|l| Item {
            title: match l.variant_title.as_str() {
                "" => l.title.clone(),
                v => format!("{} ({v})", l.title),
            },
            quantity: l.quantity,
        })
        .collect();
    let email = email.trim();
    // Only something that looks like an address is kept.
    let email = if email.len() <= 254 && email.contains('@') && !email.chars().any(char::is_control)
    {
        email.to_lowercase()
    } else {
        String::new()
    };
    let now = ctx.now();
    let row = CheckoutRow {
        id: id.chars().take(64).collect(),
        email,
        customer_id,
        items: serde_json::to_string(&items).unwrap_or_else(|_| "[]".into()),
        subtotal: cart.subtotal,
        currency: currency.to_string(),
        order_id: None,
        created_at: now,
        updated_at: now,
    };
    // With whatever else is being written now (orders placed at the same moment): one commit.
    crate::together::write(ctx, Touch(row)).await
}

/// A checkout seen: a piece of the shared commit ([`crate::together`]).
struct Touch(CheckoutRow);

impl crate::together::Piece for Touch {
    type Out = ();
    const NAME: &'static str = "checkout.seen";

    fn write<'a>(
        &'a self,
        _ctx: &'a Ctx,
        _tx: &'a mut yiren_store::Tx,
        w: &'a mut yiren_store::Writes,
    ) -> futures::future::BoxFuture<'a, DomainResult<()>> {
        store::touch_into(w, &self.0);
        Box::pin(async { Ok(()) })
    }
}

/// Checkouts left without an order for [`QUIET_MS`], newest first.
pub async fn list(ctx: &Ctx, limit: i64, offset: i64) -> DomainResult<Vec<Abandoned>> {
    let rows = store::abandoned(
        ctx.db.read(),
        ctx.now() - QUIET_MS,
        limit.clamp(1, 101),
        offset.max(0),
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Abandoned {
            items: serde_json::from_str(&r.items).unwrap_or_default(),
            subtotal: money::display(r.subtotal, &r.currency),
            email: r.email,
            customer_id: r.customer_id,
            started_at: r.created_at,
            last_seen_at: r.updated_at,
        })
        .collect())
}
