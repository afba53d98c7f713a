//! The event log webhooks will be built on: every change to a product or its stock writes an event
//! in the change's own transaction (so an event exists exactly when the change committed), with a
//! Shopify-style topic and a small JSON payload naming what changed. Readers page through it by id
//! (`GET /api/v1/events?since_id=`); ids grow with time.

use serde::Serialize;
use yiren_store::event::{self as store, EventRow};
use yiren_store::Writes;

use crate::error::DomainResult;
use crate::Ctx;

/// A product was created.
pub const PRODUCT_CREATED: &str = "products/create";
/// A product's fields, variants, status, tags or media changed.
pub const PRODUCT_UPDATED: &str = "products/update";
/// A product was deleted.
pub const PRODUCT_DELETED: &str = "products/delete";
/// A variant's stock changed through an adjustment.
pub const INVENTORY_UPDATED: &str = "inventory_levels/update";

/// An order was placed.
pub const ORDER_CREATED: &str = "orders/create";
/// An order's payment was received.
pub const ORDER_PAID: &str = "orders/paid";
/// An order was cancelled (by the owner, the customer, or expiry).
pub const ORDER_CANCELLED: &str = "orders/cancelled";

/// An order's units were sent.
pub const ORDER_FULFILLED: &str = "orders/fulfilled";
/// Money went back to the customer (part or all).
pub const ORDER_REFUNDED: &str = "orders/refunded";
/// A crowdfunding campaign closed, funded or not (the subject is the product).
pub const CAMPAIGN_CLOSED: &str = "campaigns/close";

/// Every topic, for validating filters.
pub const TOPICS: [&str; 10] = [
    PRODUCT_CREATED,
    PRODUCT_UPDATED,
    PRODUCT_DELETED,
    INVENTORY_UPDATED,
    ORDER_CREATED,
    ORDER_PAID,
    ORDER_CANCELLED,
    ORDER_FULFILLED,
    ORDER_REFUNDED,
    CAMPAIGN_CLOSED,
];

/// Write an event inside the caller's transaction.
pub async fn record(
    ctx: &Ctx,
    tx: &mut yiren_store::Tx,
    topic: &'static str,
    subject_id: i64,
    payload: &impl Serialize,
) -> DomainResult<()> {
    let mut w = Writes::new();
    record_into(ctx, &mut w, topic, subject_id, payload);
    Ok(w.run(tx).await?)
}

/// [`record`] added to `w`, which the caller runs in the change's transaction.
pub fn record_into(
    ctx: &Ctx,
    w: &mut Writes,
    topic: &'static str,
    subject_id: i64,
    payload: &impl Serialize,
) {
    let id = ctx.new_id();
    if topic.starts_with("orders/") {
        // An app's order: its webhook, queued with the event (the statement checks it is one).
        crate::checkout_app::notify_into(ctx, w, topic, subject_id, id);
    }
    let row = EventRow {
        id,
        topic: topic.into(),
        subject_id,
        payload: serde_json::to_string(payload).unwrap_or_else(|_| "{}".into()),
        created_at: ctx.now(),
    };
    store::insert(w, &row);
}

/// Events after `since_id` (oldest first), optionally of one topic; at most 250.
pub async fn after(
    ctx: &Ctx,
    since_id: i64,
    topic: Option<&str>,
    limit: i64,
) -> DomainResult<Vec<EventRow>> {
    Ok(store::after(ctx.db.read(), since_id, topic, limit.clamp(1, 250)).await?)
}
