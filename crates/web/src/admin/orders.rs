//! Admin → Orders: the list (newest first), an order's page (lines, totals, address, payments,
//! timeline) with its actions — confirm a manual payment (once: a second click is a no-op),
//! cancel with or without restocking — Admin → Checkout: stock hold and expiry times, how
//! customers pay by hand, shipping rates and tax rates — and Admin → Discounts: codes and automatic
//! discounts on the whole order (use limits, minimum subtotal), turned on and off.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{context, Value};
use serde::Deserialize;
use yiren_core::checkout::{self, Config, Manual};
use yiren_core::delivery;
use yiren_core::discount::{self, DiscountInput};
use yiren_core::order;
use yiren_core::pricing::percent_text;
use yiren_core::{money, DomainError};

use super::pages::{domain_error_page, message, unprocessable};
use super::{base_ctx, notice};
use crate::security::{AdminSession, CsrfForm};
use crate::AppState;

const PAGE: i64 = 50;

#[derive(Deserialize, Default, serde::Serialize)]
pub struct ListQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    page: Option<i64>,
    #[serde(skip_serializing)]
    notice: Option<String>,
    /// Search: `#1001` is an order number; anything else is looked for in the number, email,
    /// address, note and tags.
    #[serde(default)]
    q: String,
    #[serde(default)]
    payment: String,
    #[serde(default)]
    fulfilment: String,
    #[serde(default)]
    gateway: String,
    /// `review`, `cancelled`, `open` (not cancelled), or empty.
    #[serde(default)]
    show: String,
}

const PAYMENTS: [&str; 5] = [
    "pending",
    "paid",
    "partially_refunded",
    "refunded",
    "voided",
];
const FULFILMENTS: [&str; 3] = ["unfulfilled", "partially_fulfilled", "fulfilled"];

impl ListQuery {
    /// The filter it asks for; values not in their lists are ignored.
    fn filter(&self) -> yiren_store::order::OrderFilter {
        let pick = |v: &str, allowed: &[&str]| allowed.contains(&v).then(|| v.to_string());
        let q = self.q.trim();
        let number = q
            .strip_prefix('#')
            .and_then(|n| n.trim().parse::<i64>().ok());
        yiren_store::order::OrderFilter {
            payment: pick(&self.payment, &PAYMENTS),
            fulfilment: pick(&self.fulfilment, &FULFILMENTS),
            gateway: Some(self.gateway.trim().to_string())
                .filter(|g| !g.is_empty() && g.len() <= 40),
            review: self.show == "review",
            cancelled: match self.show.as_str() {
                "cancelled" => Some(true),
                "open" => Some(false),
                _ => None,
            },
            number,
            text: (number.is_none() && !q.is_empty()).then(|| q.chars().take(100).collect()),
            ..Default::default()
        }
    }

    /// The list's address for another page with the same filter.
    fn page_url(&self, page: i64) -> String {
        let mut q = ListQuery {
            page: Some(page),
            notice: None,
            q: self.q.clone(),
            payment: self.payment.clone(),
            fulfilment: self.fulfilment.clone(),
            gateway: self.gateway.clone(),
            show: self.show.clone(),
        };
        if page == 1 {
            q.page = None;
        }
        format!(
            "/admin/orders?{}",
            serde_urlencoded::to_string(&q).unwrap_or_default()
        )
    }
}

pub async fn list(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Query(q): Query<ListQuery>,
) -> Response {
    let page = q.page.unwrap_or(1).clamp(1, 10_000);
    let filter = q.filter();
    let mut rows = match order::search(&state.ctx, &filter, PAGE + 1, (page - 1) * PAGE).await {
        Ok(r) => r,
        Err(e) => return domain_error_page(e),
    };
    let more = rows.len() as i64 > PAGE;
    rows.truncate(PAGE as usize);
    let t = crate::locale::current();
    let rows: Vec<Value> = rows
        .iter()
        .map(|o| context! {
            id => o.id.to_string(), number => o.number, email => o.email.clone(), at => o.created_at,
            total => money::display(o.total, &o.currency),
            payment => t.t(&format!("orders.payment_{}", o.payment)), fulfilment => t.t(&format!("orders.fulfilment_{}", o.fulfilment)),
            cancelled => o.cancelled == 1, review => o.refund_review == 1,
        })
        .collect();
    let base = base_ctx(&state, "/admin/orders", Some(&s), &s.csrf_token).await;
    state.templates.render(
        "admin/orders.html",
        context! {
            rows => rows,
            prev => (page > 1).then(|| q.page_url(page - 1)),
            next => more.then(|| q.page_url(page + 1)),
            q => q.q.clone(), payment => q.payment.clone(), fulfilment => q.fulfilment.clone(),
            gateway => q.gateway.clone(), show => q.show.clone(),
            payments => PAYMENTS.iter().map(|p| context! { value => *p, label => t.t(&format!("orders.payment_{p}")) }).collect::<Vec<_>>(),
            fulfilments => FULFILMENTS.iter().map(|p| context! { value => *p, label => t.t(&format!("orders.fulfilment_{p}")) }).collect::<Vec<_>>(),
            gateways => state.ctx.gateways.ids(),
            filtered => filter != yiren_store::order::OrderFilter::default(),
            notice => notice(q.notice.as_deref()), ..base
        },
    )
}

#[derive(Deserialize, Default)]
pub struct PageQuery {
    page: Option<i64>,
}

/// Checkouts left without an order (newest first), with the contact when known.
pub async fn abandoned(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Query(q): Query<PageQuery>,
) -> Response {
    let page = q.page.unwrap_or(1).clamp(1, 10_000);
    let mut rows = match yiren_core::abandoned::list(&state.ctx, PAGE + 1, (page - 1) * PAGE).await
    {
        Ok(r) => r,
        Err(e) => return domain_error_page(e),
    };
    let more = rows.len() as i64 > PAGE;
    rows.truncate(PAGE as usize);
    let base = base_ctx(&state, "/admin/orders", Some(&s), &s.csrf_token).await;
    state.templates.render(
        "admin/checkouts.html",
        context! {
            rows => Value::from_serialize(&rows),
            quiet_minutes => yiren_core::abandoned::QUIET_MS / 60_000,
            prev => (page > 1).then(|| format!("/admin/checkouts?page={}", page - 1)),
            next => more.then(|| format!("/admin/checkouts?page={}", page + 1)),
            ..base
        },
    )
}

async fn render_order(
    state: &AppState,
    s: &yiren_core::auth::Session,
    id: i64,
    notice_key: Option<&str>,
    error: Option<String>,
) -> Response {
    let o = match order::get(&state.ctx, id).await {
        Ok(o) => o,
        Err(e) => return domain_error_page(e),
    };
    let r = &o.row;
    let m = |v: i64| money::display(v, &r.currency);
    let t = crate::locale::current();
    let lines: Vec<Value> = o
        .lines
        .iter()
        .map(|l| context! { position => l.position, product_id => l.product_id.map(|p| p.to_string()), title => l.title.clone(), variant_title => l.variant_title.clone(), sku => l.sku.clone(), quantity => l.quantity, unit => m(l.unit_price), discount => (l.discount > 0).then(|| m(l.discount)), total => m(l.subtotal - l.discount), fulfilled => l.fulfilled, refunded => l.refunded_units, to_send => l.quantity - l.fulfilled, to_refund => l.quantity - l.refunded_units })
        .collect();
    let events: Vec<Value> = o
        .events
        .iter()
        .map(|e| context! { kind => t.t(&format!("orders.event_{}", e.kind)), actor => e.actor.clone(), at => e.created_at, detail => e.detail.clone() })
        .collect();
    let payments: Vec<Value> = o
        .transactions
        .iter()
        .map(|x| context! { id => x.id.to_string(), kind => x.kind.clone(), gateway => x.gateway.clone(), reference => x.reference.clone(), amount => money::display(x.amount, &x.currency), actor => x.actor.clone(), at => x.created_at, status => (x.kind == "refund").then(|| t.t(&format!("orders.refund_{}", x.status))), to_send => x.kind == "refund" && matches!(x.status.as_str(), "manual" | "failed") })
        .collect();
    let address: Option<checkout::Address> = serde_json::from_str(&r.address).ok();
    let keys = match yiren_core::license::of_order(&state.ctx, id).await {
        Ok(k) => k,
        Err(e) => return domain_error_page(e),
    };
    let granted: Vec<Value> = match delivery::entitlements(&state.ctx, id).await {
        Ok(g) => g
            .iter()
            .map(|e| {
                let keys: Vec<String> = keys
                    .iter()
                    .filter(|k| k.entitlement_id == Some(e.id))
                    .map(|k| format!("{} ({})", k.license_key, yiren_core::license::status_of(k, state.ctx.now())))
                    .collect();
                context! { id => e.id.to_string(), kind => t.t(&format!("orders.grant_{}", e.kind)), title => e.title.clone(), downloads => e.downloads, limit => e.download_limit, ends_at => e.ends_at, revoked_at => e.revoked_at, keys => keys }
            })
            .collect(),
        Err(e) => return domain_error_page(e),
    };
    let via_app = match yiren_core::checkout_app::of_order(&state.ctx, id).await {
        Ok(a) => a.map(|(app, x)| context! { name => app.name, reference => x.app_ref }),
        Err(e) => return domain_error_page(e),
    };
    let renews = match yiren_core::recurring::period_of_order(&state.ctx, id).await {
        Ok(p) => p.map(|p| context! { plan_id => p.plan_id.to_string(), period => p.period }),
        Err(e) => return domain_error_page(e),
    };
    let base = base_ctx(state, "/admin/orders", Some(s), &s.csrf_token).await;
    let state_now = order::state_of(r);
    let mut token = [0u8; 16];
    state.ctx.rng.fill(&mut token);
    let refund_token = hex::encode(token);
    state.templates.render(
        "admin/order.html",
        context! {
            id => r.id.to_string(), number => r.number, email => r.email.clone(), at => r.created_at,
            note => r.note.clone(), shipping_method => r.shipping_method.clone(),
            address => address.map(|a| Value::from_serialize(&a)),
            payment => t.t(&format!("orders.payment_{}", r.payment)), fulfilment => t.t(&format!("orders.fulfilment_{}", r.fulfilment)),
            cancelled => r.cancelled == 1, review => r.refund_review == 1, stock => t.t(&format!("orders.stock_{}", r.stock)),
            lines => lines, events => events, payments => payments, granted => granted,
            subtotal => m(r.subtotal), discount => (r.discount > 0).then(|| m(r.discount)),
            shipping => m(r.shipping - r.shipping_discount), tax => (r.tax > 0).then(|| m(r.tax)), tax_inclusive => r.tax_inclusive == 1,
            total => m(r.total), gateway => r.gateway.clone(), via_app => via_app, renews => renews,
            can_confirm => order::state::apply(&state_now, &order::state::Event::Paid { amount: r.total }).is_ok(),
            can_cancel => order::state::apply(&state_now, &order::state::Event::Cancel).is_ok(),
            can_refund => r.captured > r.refunded && matches!(r.payment.as_str(), "paid" | "partially_refunded"),
            refundable => money::format(r.captured - r.refunded, &r.currency),
            can_fulfil => r.fulfilled < r.units && order::state::apply(&state_now, &order::state::Event::Fulfil { units: r.units - r.fulfilled }).is_ok(),
            refund_token => refund_token.clone(),
            customer_link => format!("/orders/{}?key={}", r.id, order::access_key(&state.ctx, r.id)),
            notice => notice_key.map(|k| t.t(k)), error => error, ..base
        },
    )
}

#[derive(Deserialize, Default)]
pub struct OrderQuery {
    notice: Option<String>,
}

pub async fn detail(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    Query(q): Query<OrderQuery>,
) -> Response {
    let key = q.notice.as_deref().filter(|k| {
        [
            "orders.confirmed",
            "orders.already_confirmed",
            "orders.cancelled",
            "orders.access_revoked",
            "orders.refund_marked_sent",
            "orders.refunded",
            "orders.fulfilled",
        ]
        .contains(k)
    });
    render_order(&state, &s, id, key, None).await
}

#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    restock: String,
}

/// Confirm the manual payment of the whole order total (the owner saw the money arrive).
pub async fn confirm(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(_f): CsrfForm<ActionForm>,
) -> Response {
    match order::confirm_manual(&state.ctx, id, &s.staff.email).await {
        Ok(order::Paid::Applied) => {
            Redirect::to(&format!("/admin/orders/{id}?notice=orders.confirmed")).into_response()
        }
        Ok(order::Paid::Duplicate) => Redirect::to(&format!(
            "/admin/orders/{id}?notice=orders.already_confirmed"
        ))
        .into_response(),
        Err(DomainError::Conflict { key }) => {
            unprocessable(render_order(&state, &s, id, None, message(key)).await)
        }
        Err(e) => domain_error_page(e),
    }
}

/// Take back one thing the order granted (downloads stop at once; the timeline records who).
pub async fn revoke(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path((id, grant)): Path<(i64, i64)>,
    CsrfForm(_f): CsrfForm<ActionForm>,
) -> Response {
    match delivery::revoke_one(&state.ctx, id, grant, &s.staff.email).await {
        Ok(()) => Redirect::to(&format!("/admin/orders/{id}?notice=orders.access_revoked"))
            .into_response(),
        Err(e) => domain_error_page(e),
    }
}

/// The owner sent a refund's money by hand (a manual payment, or a gateway that refused it).
pub async fn refund_sent(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path((id, txn)): Path<(i64, i64)>,
    CsrfForm(_f): CsrfForm<ActionForm>,
) -> Response {
    match order::mark_refund_sent(&state.ctx, id, txn, &s.staff.email).await {
        Ok(_) => Redirect::to(&format!(
            "/admin/orders/{id}?notice=orders.refund_marked_sent"
        ))
        .into_response(),
        Err(e) => domain_error_page(e),
    }
}

/// Cancel the order; `restock=1` puts a paid order's units back on sale (held units always go back).
pub async fn cancel(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<ActionForm>,
) -> Response {
    match order::cancel(&state.ctx, id, &s.staff.email, f.restock == "1").await {
        Ok(_) => {
            Redirect::to(&format!("/admin/orders/{id}?notice=orders.cancelled")).into_response()
        }
        Err(DomainError::Conflict { key }) => {
            unprocessable(render_order(&state, &s, id, None, message(key)).await)
        }
        Err(e) => domain_error_page(e),
    }
}

async fn render_settings(
    state: &AppState,
    s: &yiren_core::auth::Session,
    form: Option<&SettingsForm>,
    saved: bool,
    error: Option<String>,
) -> Response {
    let cfg = match checkout::config(&state.ctx).await {
        Ok(c) => c,
        Err(e) => return domain_error_page(e),
    };
    let currency = state.settings().await.currency;
    let v = match form {
        Some(f) => {
            context! { hold_minutes => f.hold_minutes.clone(), expire_hours => f.expire_hours.clone(), download_limit => f.download_limit.clone(), instructions => f.instructions.clone(), wechat => f.wechat.clone(), alipay => f.alipay.clone(), shipping => f.shipping.clone(), taxes => f.taxes.clone() }
        }
        None => {
            context! { hold_minutes => cfg.hold_minutes.to_string(), expire_hours => cfg.expire_hours.to_string(), download_limit => cfg.download_limit.to_string(), instructions => cfg.manual.instructions.clone(), wechat => cfg.manual.wechat.clone(), alipay => cfg.manual.alipay.clone(), shipping => checkout::shipping_text(&cfg.shipping, &currency), taxes => checkout::taxes_text(&cfg.taxes) }
        }
    };
    let t = crate::locale::current();
    let base = base_ctx(state, "/admin/checkout", Some(s), &s.csrf_token).await;
    state.templates.render(
        "admin/checkout.html",
        context! { v => v, currency => currency, notice => saved.then(|| t.t("settings.saved")), error => error, ..base },
    )
}

#[derive(Deserialize, Default)]
pub struct SettingsQuery {
    notice: Option<String>,
}

pub async fn settings_page(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Query(q): Query<SettingsQuery>,
) -> Response {
    render_settings(
        &state,
        &s,
        None,
        q.notice.as_deref() == Some("settings.saved"),
        None,
    )
    .await
}

#[derive(Deserialize, Default)]
pub struct SettingsForm {
    #[serde(default)]
    hold_minutes: String,
    #[serde(default)]
    expire_hours: String,
    #[serde(default)]
    download_limit: String,
    #[serde(default)]
    instructions: String,
    #[serde(default)]
    wechat: String,
    #[serde(default)]
    alipay: String,
    #[serde(default)]
    shipping: String,
    #[serde(default)]
    taxes: String,
}

pub async fn save_settings(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    CsrfForm(f): CsrfForm<SettingsForm>,
) -> Response {
    let currency = state.settings().await.currency;
    let number = |v: &str, field: &'static str| {
        v.trim()
            .parse::<i64>()
            .map_err(|_| DomainError::invalid(field, "checkout.config_invalid"))
    };
    let cfg = (|| -> Result<Config, DomainError> {
        Ok(Config {
            hold_minutes: number(&f.hold_minutes, "hold_minutes")?,
            expire_hours: number(&f.expire_hours, "expire_hours")?,
            download_limit: number(&f.download_limit, "download_limit")?,
            shipping: checkout::parse_shipping(&f.shipping, &currency)?,
            taxes: checkout::parse_taxes(&f.taxes)?,
            manual: Manual {
                instructions: f.instructions.trim().to_string(),
                wechat: f.wechat.trim().to_string(),
                alipay: f.alipay.trim().to_string(),
            },
        })
    })();
    let result = match cfg {
        Ok(c) => checkout::save_config(&state.ctx, &c).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Redirect::to("/admin/checkout?notice=settings.saved").into_response(),
        Err(DomainError::Invalid { key, .. }) => {
            unprocessable(render_settings(&state, &s, Some(&f), false, message(key)).await)
        }
        Err(e) => domain_error_page(e),
    }
}

/// The discounts page: the list and the new-discount form, or (with `editing`) one discount's form.
async fn render_discounts(
    state: &AppState,
    s: &yiren_core::auth::Session,
    form: Option<&DiscountForm>,
    editing: Option<i64>,
    notice_key: Option<&str>,
    error: Option<String>,
) -> Response {
    let rows = match discount::list(&state.ctx).await {
        Ok(r) => r,
        Err(e) => return domain_error_page(e),
    };
    let site = state.settings().await;
    let (currency, tz) = (site.currency.clone(), site.time_zone.clone());
    let t = crate::locale::current();
    let now = state.ctx.now();
    let at = |ms: i64| yiren_core::clock::display_in(ms, &tz);
    let rows: Vec<Value> = rows
        .iter()
        .map(|d| {
            let value = match d.kind.as_str() {
                "percent" => format!("{}%", percent_text(d.value)),
                "amount" => money::display(d.value, &currency),
                "free_shipping" => t.t("discounts.free_shipping").to_string(),
                _ => format!("{} + {} @ {}%", d.buy, d.get, percent_text(d.value)),
            };
            let dates = match (d.starts_at, d.ends_at) {
                (_, Some(e)) if e <= now => Some(t.tf("discounts.ended", &[("at", &at(e))])),
                (Some(b), _) if b > now => Some(t.tf("discounts.not_started", &[("at", &at(b))])),
                (_, Some(e)) => Some(t.tf("discounts.until", &[("at", &at(e))])),
                _ => None,
            };
            context! {
                id => d.id.to_string(), code => d.code.clone(), title => d.title.clone(), value => value,
                applies => (d.applies != "all").then(|| t.t(&format!("discounts.applies_{}", d.applies)).to_string()),
                min => (d.min_subtotal > 0).then(|| money::display(d.min_subtotal, &currency)),
                used => d.used, limit => d.usage_limit, per_customer => d.per_customer,
                dates => dates, active => d.status == "active",
            }
        })
        .collect();
    let base = base_ctx(state, "/admin/discounts", Some(s), &s.csrf_token).await;
    state.templates.render(
        "admin/discounts.html",
        context! {
            rows => rows, currency => currency, time_zone => tz,
            editing => editing.map(|id| id.to_string()),
            v => form.map(Value::from_serialize),
            notice => notice_key.map(|k| t.t(k)), error => error, ..base
        },
    )
}

#[derive(Deserialize, Default)]
pub struct DiscountsQuery {
    notice: Option<String>,
}

const DISCOUNT_NOTICES: [&str; 4] = [
    "discounts.created",
    "discounts.saved",
    "discounts.deleted",
    "settings.saved",
];

pub async fn discounts_page(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Query(q): Query<DiscountsQuery>,
) -> Response {
    let key = q.notice.as_deref().filter(|k| DISCOUNT_NOTICES.contains(k));
    render_discounts(&state, &s, None, None, key, None).await
}

/// One discount's form, filled in.
pub async fn discount_page(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
) -> Response {
    let site = state.settings().await;
    let form = match discount::get(&state.ctx, id).await {
        Ok(d) => form_of(&state, &d, &site.currency, &site.time_zone).await,
        Err(e) => Err(e),
    };
    match form {
        Ok(f) => render_discounts(&state, &s, Some(&f), Some(id), None, None).await,
        Err(e) => domain_error_page(e),
    }
}

#[derive(Deserialize, Default, serde::Serialize)]
pub struct DiscountForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    kind: String,
    /// Percent (`20`, `12.5`) or amount (`30.00`).
    #[serde(default)]
    value: String,
    #[serde(default)]
    buy: String,
    #[serde(default)]
    get: String,
    #[serde(default)]
    min_subtotal: String,
    #[serde(default)]
    usage_limit: String,
    #[serde(default)]
    per_customer: String,
    /// `all`, `products` or `collections`.
    #[serde(default)]
    applies: String,
    /// Product or collection handles, one per line (commas work too).
    #[serde(default)]
    targets: String,
    /// Local date-times in the site's time zone (`YYYY-MM-DDTHH:MM`); empty: open-ended.
    #[serde(default)]
    starts_at: String,
    #[serde(default)]
    ends_at: String,
}

/// A stored discount as its form shows it: amounts in the shop currency, targets by handle.
async fn form_of(
    state: &AppState,
    d: &yiren_store::order::DiscountRow,
    currency: &str,
    tz: &str,
) -> Result<DiscountForm, DomainError> {
    let i = discount::input_of(d);
    let mut handles = vec![];
    for id in &i.targets {
        let handle = match i.applies.as_str() {
            "products" => yiren_core::catalog::get(&state.ctx, *id).await?.row.handle,
            _ => {
                yiren_core::catalog::collection::get(&state.ctx, *id)
                    .await?
                    .row
                    .handle
            }
        };
        handles.push(handle);
    }
    let opt = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    let positive = |n: i64| opt(Some(n).filter(|n| *n > 0));
    let when = |v: Option<i64>| {
        v.map(|ms| yiren_core::clock::input_in(ms, tz))
            .unwrap_or_default()
    };
    Ok(DiscountForm {
        code: i.code,
        title: i.title,
        value: match i.kind.as_str() {
            "amount" => money::format(i.value, currency),
            "free_shipping" => String::new(),
            _ => percent_text(i.value),
        },
        kind: i.kind,
        buy: positive(i.buy),
        get: positive(i.get),
        min_subtotal: if i.min_subtotal > 0 {
            money::format(i.min_subtotal, currency)
        } else {
            String::new()
        },
        usage_limit: opt(i.usage_limit),
        per_customer: opt(i.per_customer),
        applies: i.applies,
        targets: handles.join("\n"),
        starts_at: when(i.starts_at),
        ends_at: when(i.ends_at),
    })
}

/// The submitted form as a discount: amounts in the shop currency, times in the site's zone,
/// targets looked up by handle.
async fn discount_input(
    state: &AppState,
    f: &DiscountForm,
    currency: &str,
    tz: &str,
) -> Result<DiscountInput, DomainError> {
    let bad = |field: &'static str| DomainError::invalid(field, "discount.invalid");
    let count = |v: &str, field: &'static str| -> Result<Option<i64>, DomainError> {
        match v.trim() {
            "" => Ok(None),
            n => n.parse::<i64>().map(Some).map_err(|_| bad(field)),
        }
    };
    let pct = |v: &str| money::parse(v.trim().trim_end_matches('%'), "USD", "value");
    let value = match f.kind.as_str() {
        "percent" => pct(&f.value)?,
        "amount" => money::parse(&f.value, currency, "value")?,
        "buy_x_get_y" => match f.value.trim() {
            "" => 10_000,
            v => pct(v)?,
        },
        _ => 0,
    };
    let min_subtotal = match f.min_subtotal.trim() {
        "" => 0,
        v => money::parse(v, currency, "min_subtotal")?,
    };
    let time = |v: &str, field: &'static str| {
        yiren_core::reach::broadcast::parse_local(v, tz)
            .map_err(|_| DomainError::invalid(field, "reach.when_invalid"))
    };
    let applies = match f.applies.trim() {
        "" => "all".to_string(),
        a => a.to_string(),
    };
    let handles: Vec<&str> = f
        .targets
        .split(['\n', ','])
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    if handles.len() > 1000 {
        return Err(bad("targets"));
    }
    let targets = match applies.as_str() {
        "products" => yiren_core::catalog::ids_by_handle(&state.ctx, &handles)
            .await
            .map_err(|_| DomainError::invalid("targets", "discount.target_unknown"))?,
        "collections" => {
            let mut ids = vec![];
            for h in &handles {
                let c = yiren_core::catalog::collection::by_handle(&state.ctx, h)
                    .await
                    .map_err(|e| match e {
                        DomainError::NotFound => {
                            DomainError::invalid("targets", "discount.target_unknown")
                        }
                        e => e,
                    })?;
                ids.push(c.row.id);
            }
            ids
        }
        _ => vec![],
    };
    Ok(DiscountInput {
        code: f.code.clone(),
        title: f.title.clone(),
        kind: f.kind.clone(),
        value,
        buy: count(&f.buy, "buy")?.unwrap_or(0),
        get: count(&f.get, "get")?.unwrap_or(0),
        applies,
        targets,
        min_subtotal,
        starts_at: time(&f.starts_at, "starts_at")?,
        ends_at: time(&f.ends_at, "ends_at")?,
        usage_limit: count(&f.usage_limit, "usage_limit")?,
        per_customer: count(&f.per_customer, "per_customer")?,
        disabled: false,
    })
}

/// Create (no id) or change a discount from its form; a refusal shows the form again with the
/// message and what was typed.
async fn save_discount(
    state: &AppState,
    s: &yiren_core::auth::Session,
    id: Option<i64>,
    f: &DiscountForm,
) -> Response {
    let site = state.settings().await;
    let result = match discount_input(state, f, &site.currency, &site.time_zone).await {
        Ok(input) => match id {
            None => discount::create(&state.ctx, &input).await.map(|_| ()),
            // The form edits what the discount is; on and off stay with the list's buttons.
            Some(id) => match discount::get(&state.ctx, id).await {
                Ok(old) => {
                    let input = DiscountInput {
                        disabled: old.status == "disabled",
                        ..input
                    };
                    discount::update(&state.ctx, id, &input).await.map(|_| ())
                }
                Err(e) => Err(e),
            },
        },
        Err(e) => Err(e),
    };
    let done = if id.is_some() {
        "discounts.saved"
    } else {
        "discounts.created"
    };
    match result {
        Ok(()) => Redirect::to(&format!("/admin/discounts?notice={done}")).into_response(),
        Err(DomainError::Invalid { key, .. } | DomainError::Conflict { key }) => {
            unprocessable(render_discounts(state, s, Some(f), id, None, message(key)).await)
        }
        Err(e) => domain_error_page(e),
    }
}

pub async fn create_discount(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    CsrfForm(f): CsrfForm<DiscountForm>,
) -> Response {
    save_discount(&state, &s, None, &f).await
}

pub async fn update_discount(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<DiscountForm>,
) -> Response {
    save_discount(&state, &s, Some(id), &f).await
}

/// Delete a discount no order used (one that was used: the page says to turn it off).
pub async fn delete_discount(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(_f): CsrfForm<ToggleForm>,
) -> Response {
    match discount::delete(&state.ctx, id).await {
        Ok(()) => Redirect::to("/admin/discounts?notice=discounts.deleted").into_response(),
        Err(DomainError::Conflict { key }) => {
            unprocessable(render_discounts(&state, &s, None, None, None, message(key)).await)
        }
        Err(e) => domain_error_page(e),
    }
}

#[derive(Deserialize)]
pub struct ToggleForm {
    #[serde(default)]
    active: String,
}

pub async fn toggle_discount(
    State(state): State<AppState>,
    AdminSession(_s): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<ToggleForm>,
) -> Response {
    match discount::set_active(&state.ctx, id, f.active == "1").await {
        Ok(()) => Redirect::to("/admin/discounts?notice=settings.saved").into_response(),
        Err(e) => domain_error_page(e),
    }
}

#[derive(Deserialize)]
pub struct RefundForm {
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    restock: String,
    #[serde(default)]
    token: String,
    /// `r_<line position>`: units of that line to refund.
    #[serde(flatten)]
    units: BTreeMap<String, String>,
}

/// The units per line a form chose in its `<prefix><position>` fields (blank or 0: none).
fn units_in(
    fields: &BTreeMap<String, String>,
    prefix: &str,
    bad: &'static str,
) -> Result<Vec<order::LineUnits>, DomainError> {
    let mut out = vec![];
    for (k, v) in fields {
        let Some(pos) = k.strip_prefix(prefix) else {
            continue;
        };
        let v = v.trim();
        if v.is_empty() || v == "0" {
            continue;
        }
        match (pos.parse::<i64>(), v.parse::<i64>()) {
            (Ok(position), Ok(quantity)) if quantity > 0 => {
                out.push(order::LineUnits { position, quantity })
            }
            _ => return Err(DomainError::invalid("lines", bad)),
        }
    }
    Ok(out)
}

/// Refund part or all of what was paid (the page's one-time token makes a double submit one refund).
pub async fn refund(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<RefundForm>,
) -> Response {
    let o = match order::get(&state.ctx, id).await {
        Ok(o) => o.row,
        Err(e) => return domain_error_page(e),
    };
    let lines = units_in(&f.units, "r_", "order.refund_lines_invalid");
    // Units chosen by line: the amount is theirs (computed by the order); otherwise the amount.
    let amount = match &lines {
        Ok(l) if !l.is_empty() => Ok(0),
        _ => money::parse(&f.amount, &o.currency, "amount"),
    };
    let result = match (amount, lines) {
        (Ok(amount), Ok(lines)) => {
            let r = order::Refund {
                amount,
                key: f.token.clone(),
                restock: f.restock == "1",
                reason: f.reason.trim().to_string(),
                lines,
            };
            order::refund(&state.ctx, id, &r, &s.staff.email).await
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    match result {
        Ok(_) => {
            Redirect::to(&format!("/admin/orders/{id}?notice=orders.refunded")).into_response()
        }
        Err(DomainError::Invalid { key, .. } | DomainError::Conflict { key }) => {
            unprocessable(render_order(&state, &s, id, None, message(key)).await)
        }
        Err(e) => domain_error_page(e),
    }
}

#[derive(Deserialize)]
pub struct FulfilForm {
    #[serde(default)]
    carrier: String,
    #[serde(default)]
    tracking: String,
    /// `f_<line position>`: units of that line to send (none chosen: everything left).
    #[serde(flatten)]
    units: BTreeMap<String, String>,
}

/// Mark units sent (chosen by line, or all that are left), with carrier and tracking number.
pub async fn fulfil(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<FulfilForm>,
) -> Response {
    let lines = match units_in(&f.units, "f_", "order.fulfil_lines_invalid") {
        Ok(l) => l,
        Err(DomainError::Invalid { key, .. }) => {
            return unprocessable(render_order(&state, &s, id, None, message(key)).await)
        }
        Err(e) => return domain_error_page(e),
    };
    match order::fulfil(
        &state.ctx,
        id,
        &lines,
        &f.carrier,
        &f.tracking,
        &s.staff.email,
    )
    .await
    {
        Ok(_) => {
            Redirect::to(&format!("/admin/orders/{id}?notice=orders.fulfilled")).into_response()
        }
        Err(DomainError::Invalid { key, .. } | DomainError::Conflict { key }) => {
            unprocessable(render_order(&state, &s, id, None, message(key)).await)
        }
        Err(e) => domain_error_page(e),
    }
}
