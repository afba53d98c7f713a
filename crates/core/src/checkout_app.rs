//! The checkout for the owner's other apps (收银台): every business the owner runs is an *app*
//! that shares this one checkout, its gateways, its orders and its customer records.
//!
//! Language: an *app* is registered by the owner (name, return URL, webhook URL) and holds a
//! *secret* shared with it; the app's *request* sends a customer here — its own *reference*
//! (`ref`), either an amount and title or a product, a timestamp, and a *signature*; the order it
//! becomes is an *app order*; the *return* sends the customer back with a signed order id; the
//! *webhook* tells the app's server what happened to the order, signed the same way.
//!
//! Signatures: HMAC-SHA256 under the app's secret, as lower-case hex, over the *canonical text*
//! of the parameters — every parameter except `sig`, sorted by name, written `name=value`
//! (values as they are, not URL-encoded), joined by `&`. Webhooks sign `"{t}.{body}"` and send
//! `Yiren-Signature: t=<unix seconds>,v1=<hex>`. docs/checkout-apps.md has examples.
//!
//! Shape: [`App`], [`AppInput`], [`create`] / [`update`] / [`rotate_secret`] / [`set_enabled`],
//! [`check_request`] → [`Request`], [`place`], [`return_url`], [`view`] / [`for_app`] (the
//! API's answer), [`notify_into`] + [`webhook`] (the outbox job and what it posts).
//!
//! Boundaries: orders are placed by `checkout::place` (an `AppPlacement` on the submission, so the
//! app order row commits with the order); the webhook job is queued by `event::record_into` for
//! the order topics an app hears about, inside the change's transaction, and only when the order
//! is an app's (the statement itself checks); the binary's `apps.notify` handler posts it through
//! the guarded outbound client. Choices: a request is good for [`REQUEST_WINDOW_SECS`] either side
//! of its timestamp; the same reference sent again finds its order (a different amount, title or
//! product under it is refused); a disabled app sends nobody to pay, but its existing orders keep
//! their API answers and webhooks.

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use yiren_store::checkout_app::{self as store, AppOrderRow, AppRow};
use yiren_store::order::OrderRow;

use crate::checkout::{AppPlacement, CustomLine, Submit};
use crate::error::{DomainError, DomainResult};
use crate::{cart, catalog, Ctx, Locale};

/// What the server key seals app secrets under.
const SEAL: &str = "checkout-app-secret";
/// The job that posts an app order's news to the app's webhook.
pub const NOTIFY_KIND: &str = "apps.notify";
/// How far a request's timestamp may be from now, either way (seconds).
pub const REQUEST_WINDOW_SECS: i64 = 30 * 60;
/// Attempts at a webhook (5 s doubling to 1 h: about a day and a half) before the dead list.
const NOTIFY_ATTEMPTS: i64 = 40;

/// The parameters a request may carry.
const PARAMS: [&str; 10] = [
    "ref", "amount", "currency", "title", "product", "variant", "quantity", "email", "ts", "sig",
];

/// A registered app (its secret is never part of it).
#[derive(Debug, Clone, Serialize)]
pub struct App {
    pub id: i64,
    pub name: String,
    pub return_url: String,
    pub webhook_url: String,
    pub active: bool,
    pub created_at: i64,
}

impl App {
    fn of(r: &AppRow) -> App {
        App {
            id: r.id,
            name: r.name.clone(),
            return_url: r.return_url.clone(),
            webhook_url: r.webhook_url.clone(),
            active: r.status == "active",
            created_at: r.created_at,
        }
    }
}

/// What the owner fills in.
#[derive(Debug, Clone, Default)]
pub struct AppInput {
    pub name: String,
    pub return_url: String,
    /// Empty: no webhook.
    pub webhook_url: String,
}

/// An absolute http(s) URL with a host, no fragment, at most 500 bytes.
fn check_url(raw: &str, field: &'static str) -> DomainResult<String> {
    let raw = raw.trim();
    let bad = || DomainError::invalid(field, "apps.url_invalid");
    if raw.len() > 500 {
        return Err(bad());
    }
    let u = url::Url::parse(raw).map_err(|_| bad())?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() || u.fragment().is_some() {
        return Err(bad());
    }
    Ok(raw.to_string())
}

impl AppInput {
    fn checked(&self) -> DomainResult<AppInput> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(DomainError::invalid("name", "apps.name_invalid"));
        }
        Ok(AppInput {
            name: name.to_string(),
            return_url: check_url(&self.return_url, "return_url")?,
            webhook_url: match self.webhook_url.trim() {
                "" => String::new(),
                u => check_url(u, "webhook_url")?,
            },
        })
    }
}

fn new_secret(ctx: &Ctx) -> String {
    let mut b = [0u8; 24];
    ctx.rng.fill(&mut b);
    format!("ysk_{}", hex::encode(b))
}

fn seal(ctx: &Ctx, secret: &str) -> String {
    let mut nonce = [0u8; 12];
    ctx.rng.fill(&mut nonce);
    ctx.keys.seal(SEAL, secret.as_bytes(), nonce)
}

/// The app's secret; an error when the server key no longer opens it (the key file changed).
fn secret_of(ctx: &Ctx, r: &AppRow) -> DomainResult<String> {
    ctx.keys
        .open(SEAL, &r.secret)
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| DomainError::Unavailable("the app secret cannot be opened".into()))
}

async fn row(ctx: &Ctx, id: i64) -> DomainResult<AppRow> {
    store::get(ctx.db.read(), id)
        .await?
        .ok_or(DomainError::NotFound)
}

/// Every app, newest first, with its order count and paid order count.
pub async fn list(ctx: &Ctx) -> DomainResult<Vec<(App, i64, i64)>> {
    Ok(store::list(ctx.db.read())
        .await?
        .iter()
        .map(|(r, n, p)| (App::of(r), *n, *p))
        .collect())
}

/// One app.
pub async fn get(ctx: &Ctx, id: i64) -> DomainResult<App> {
    Ok(App::of(&row(ctx, id).await?))
}

/// Register an app; its secret is returned this once.
pub async fn create(ctx: &Ctx, input: &AppInput) -> DomainResult<(App, String)> {
    let i = input.checked()?;
    let secret = new_secret(ctx);
    let now = ctx.now();
    let r = AppRow {
        id: ctx.new_id(),
        name: i.name,
        return_url: i.return_url,
        webhook_url: i.webhook_url,
        secret: seal(ctx, &secret),
        status: "active".into(),
        created_at: now,
        updated_at: now,
    };
    store::insert(ctx.db.write(), &r).await?;
    Ok((App::of(&r), secret))
}

/// Change an app's name and URLs.
pub async fn update(ctx: &Ctx, id: i64, input: &AppInput) -> DomainResult<App> {
    let i = input.checked()?;
    if !store::update(
        ctx.db.write(),
        id,
        &i.name,
        &i.return_url,
        &i.webhook_url,
        ctx.now(),
    )
    .await?
    {
        return Err(DomainError::NotFound);
    }
    get(ctx, id).await
}

/// A new secret (the old one stops working at once); returned this once.
pub async fn rotate_secret(ctx: &Ctx, id: i64) -> DomainResult<String> {
    let secret = new_secret(ctx);
    if !store::set_secret(ctx.db.write(), id, &seal(ctx, &secret), ctx.now()).await? {
        return Err(DomainError::NotFound);
    }
    Ok(secret)
}

/// Switch an app on or off.
pub async fn set_enabled(ctx: &Ctx, id: i64, on: bool) -> DomainResult<()> {
    let status = if on { "active" } else { "disabled" };
    if !store::set_status(ctx.db.write(), id, status, ctx.now()).await? {
        return Err(DomainError::NotFound);
    }
    Ok(())
}

/// The canonical text of `params` (see the module header).
pub fn canonical(params: &[(String, String)]) -> String {
    let mut p: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "sig").collect();
    p.sort();
    p.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn hmac_hex(secret: &str, text: &str) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("any key length");
    m.update(text.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// The signature of `params` under `secret`.
pub fn sign(secret: &str, params: &[(String, String)]) -> String {
    hmac_hex(secret, &canonical(params))
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// What an app asks the customer to pay for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// An amount (minor units of the shop currency) and a title.
    Custom(CustomLine),
    /// A variant of a catalog product, priced from the catalog.
    Product {
        variant_id: i64,
        quantity: i64,
        title: String,
        amount: i64,
    },
}

/// A checked request.
#[derive(Debug, Clone)]
pub struct Request {
    pub app: App,
    pub reference: String,
    pub currency: String,
    pub what: What,
    /// The customer's email when the app knows it.
    pub email: Option<String>,
    /// The signed parameters, for the form to send back.
    pub params: Vec<(String, String)>,
}

impl Request {
    /// The title shown and recorded.
    pub fn title(&self) -> &str {
        match &self.what {
            What::Custom(c) => &c.title,
            What::Product { title, .. } => title,
        }
    }
    /// What the customer is asked to pay (a product's automatic discounts may lower it).
    pub fn amount(&self) -> i64 {
        match &self.what {
            What::Custom(c) => c.amount,
            What::Product {
                amount, quantity, ..
            } => amount.saturating_mul(*quantity),
        }
    }
}

fn text_ok(v: &str, max: usize) -> bool {
    !v.trim().is_empty() && v.chars().count() <= max && !v.chars().any(char::is_control)
}

/// Check a request from app `app_id`: the app is active, every parameter is known and given
/// once, the signature is the app's, the timestamp is within [`REQUEST_WINDOW_SECS`], and what
/// it asks for is well formed and sold here. A bad signature is `Forbidden`; the rest are
/// `Invalid` with the field to blame.
pub async fn check_request(
    ctx: &Ctx,
    app_id: i64,
    params: &[(String, String)],
    locale: Locale,
) -> DomainResult<Request> {
    let r = row(ctx, app_id).await?;
    if r.status != "active" {
        return Err(DomainError::Conflict {
            key: "apps.disabled",
        });
    }
    for (i, (k, _)) in params.iter().enumerate() {
        if !PARAMS.contains(&k.as_str()) {
            return Err(DomainError::invalid("params", "apps.param_unknown"));
        }
        if params[..i].iter().any(|(o, _)| o == k) {
            return Err(DomainError::invalid("params", "apps.param_repeated"));
        }
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let secret = secret_of(ctx, &r)?;
    let sig = get("sig").unwrap_or("");
    if !same(&sign(&secret, params), &sig.to_ascii_lowercase()) {
        return Err(DomainError::Forbidden);
    }
    let ts = get("ts")
        .and_then(|t| t.parse::<i64>().ok())
        .ok_or(DomainError::invalid("ts", "apps.ts_invalid"))?;
    if (ctx.now() / 1000 - ts).abs() > REQUEST_WINDOW_SECS {
        return Err(DomainError::invalid("ts", "apps.link_expired"));
    }
    let reference = get("ref").unwrap_or("");
    if reference.is_empty()
        || reference.len() > 64
        || !reference.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(DomainError::invalid("ref", "apps.ref_invalid"));
    }
    let currency = crate::settings::load(ctx).await?.currency;
    if get("currency") != Some(currency.as_str()) {
        return Err(DomainError::invalid("currency", "apps.currency_invalid"));
    }
    let email = match get("email") {
        None | Some("") => None,
        Some(e) => Some(crate::auth::parse_email(e)?),
    };
    let what = match (get("amount"), get("product")) {
        (Some(amount), None) => {
            if get("variant").is_some() || get("quantity").is_some() {
                return Err(DomainError::invalid("params", "apps.param_unknown"));
            }
            let amount = amount
                .parse::<i64>()
                .ok()
                .filter(|a| (1..=crate::money::MAX_MINOR).contains(a))
                .ok_or(DomainError::invalid("amount", "apps.amount_invalid"))?;
            let title = get("title").unwrap_or("").trim();
            if !text_ok(title, 200) {
                return Err(DomainError::invalid("title", "apps.title_invalid"));
            }
            What::Custom(CustomLine {
                title: title.to_string(),
                amount,
            })
        }
        (None, Some(handle)) => {
            if get("title").is_some() {
                return Err(DomainError::invalid("params", "apps.param_unknown"));
            }
            product_line(
                ctx,
                handle,
                get("variant"),
                get("quantity"),
                &currency,
                locale,
            )
            .await?
        }
        _ => return Err(DomainError::invalid("amount", "apps.amount_or_product")),
    };
    Ok(Request {
        app: App::of(&r),
        reference: reference.to_string(),
        currency,
        what,
        email,
        params: params.to_vec(),
    })
}

async fn product_line(
    ctx: &Ctx,
    handle: &str,
    variant: Option<&str>,
    quantity: Option<&str>,
    currency: &str,
    locale: Locale,
) -> DomainResult<What> {
    let gone = || DomainError::invalid("product", "apps.product_unknown");
    let p = match catalog::by_handle(ctx, handle).await {
        Ok(catalog::Found::Product(p)) => *p,
        Ok(catalog::Found::MovedTo(h)) => match catalog::by_handle(ctx, &h).await {
            Ok(catalog::Found::Product(p)) => *p,
            _ => return Err(gone()),
        },
        Err(DomainError::NotFound) => return Err(gone()),
        Err(e) => return Err(e),
    };
    if !p.visible(ctx.now()) {
        return Err(gone());
    }
    let v = match variant {
        None => p.variants.first(),
        Some(v) => {
            let id = v.parse::<i64>().map_err(|_| gone())?;
            p.variants.iter().find(|x| x.row.id == id)
        }
    }
    .ok_or_else(gone)?;
    if v.row.requires_shipping == 1 {
        return Err(DomainError::invalid("product", "apps.product_ships"));
    }
    let quantity = match quantity {
        None => 1,
        Some(q) => q
            .parse::<i64>()
            .ok()
            .filter(|q| (1..=cart::MAX_QUANTITY).contains(q))
            .ok_or(DomainError::invalid("quantity", "cart.quantity_invalid"))?,
    };
    let amount = v.price(currency).map(|pr| pr.amount).ok_or_else(gone)?;
    let title = match p.variant_title(v, locale) {
        t if t.is_empty() => p.text(locale).title,
        t => format!("{} — {t}", p.text(locale).title),
    };
    Ok(What::Product {
        variant_id: v.row.id,
        quantity,
        title,
        amount,
    })
}

/// The checkout token of an app's reference: the same reference is the same order.
fn token_of(app_id: i64, reference: &str) -> String {
    use sha2::Digest;
    let h = Sha256::digest(format!("{app_id}\0{reference}").as_bytes());
    format!("app-{app_id}-{}", &hex::encode(h)[..40])
}

/// The customer who pays.
#[derive(Debug, Clone, Default)]
pub struct Payer {
    pub email: String,
    pub customer_id: Option<i64>,
    pub gateway: String,
    pub locale: Locale,
}

/// Place the order a checked request asks for (or find the one its reference placed before: the
/// same thing again is that order, something else under the same reference is refused with a
/// conflict).
pub async fn place(ctx: &Ctx, req: &Request, payer: &Payer) -> DomainResult<OrderRow> {
    if let Some(existing) = existing(ctx, req).await? {
        return Ok(existing);
    }
    let (lines, custom) = match &req.what {
        What::Custom(c) => (vec![], Some(c.clone())),
        What::Product {
            variant_id,
            quantity,
            ..
        } => (
            vec![cart::Line {
                variant_id: *variant_id,
                quantity: *quantity,
            }],
            None,
        ),
    };
    let s = Submit {
        token: token_of(req.app.id, &req.reference),
        email: payer.email.clone(),
        customer_id: payer.customer_id,
        locale: payer.locale,
        lines,
        gateway: payer.gateway.clone(),
        app: Some(AppPlacement {
            app_id: req.app.id,
            app_ref: req.reference.clone(),
            custom,
        }),
        ..Default::default()
    };
    let o = crate::checkout::place(ctx, &s).await?;
    // Two submissions under one reference at once: the order placed is this request's only if
    // it is the same thing.
    Ok(existing(ctx, req).await?.unwrap_or(o))
}

/// The order the request's reference placed before, if it asked for the same thing.
pub async fn existing(ctx: &Ctx, req: &Request) -> DomainResult<Option<OrderRow>> {
    let Some(a) = store::by_ref(ctx.db.read(), req.app.id, &req.reference).await? else {
        return Ok(None);
    };
    let o = crate::order::get(ctx, a.order_id).await?;
    let same_thing = match (&req.what, o.lines.as_slice()) {
        (What::Custom(c), [l]) => {
            l.variant_id.is_none() && l.title == c.title && l.unit_price == c.amount
        }
        (
            What::Product {
                variant_id,
                quantity,
                ..
            },
            [l],
        ) => l.variant_id == Some(*variant_id) && l.quantity == *quantity,
        _ => false,
    };
    if !same_thing {
        return Err(DomainError::Conflict {
            key: "apps.ref_reused",
        });
    }
    Ok(Some(o.row))
}

/// The app behind an order, with its reference (None: not an app order).
pub async fn of_order(ctx: &Ctx, order_id: i64) -> DomainResult<Option<(App, AppOrderRow)>> {
    let Some(a) = store::by_order(ctx.db.read(), order_id).await? else {
        return Ok(None);
    };
    Ok(Some((get(ctx, a.app_id).await?, a)))
}

/// How an app order stands, for the app: `pending`, `paid`, `partially_refunded`, `refunded`,
/// `voided`, or `cancelled` (cancelled wins: money that came after the cancellation is the
/// owner's to refund, and the app should not deliver).
pub fn status(o: &OrderRow) -> &'static str {
    if o.cancelled == 1 {
        return "cancelled";
    }
    match o.payment.as_str() {
        "paid" => "paid",
        "partially_refunded" => "partially_refunded",
        "refunded" => "refunded",
        "voided" => "voided",
        _ => "pending",
    }
}

/// Where the customer goes back to once an app's order is settled (paid, refunded, cancelled…):
/// the app's return URL with `order_id`, `ref`, `status`, `ts` and `sig` added (the app checks
/// the signature, then asks the API). None while the order awaits payment, and for orders that
/// are not an app's.
pub async fn return_url(ctx: &Ctx, order: &OrderRow) -> DomainResult<Option<String>> {
    if order.payment == "pending" && order.cancelled == 0 {
        return Ok(None);
    }
    let Some(a) = store::by_order(ctx.db.read(), order.id).await? else {
        return Ok(None);
    };
    let r = row(ctx, a.app_id).await?;
    let secret = secret_of(ctx, &r)?;
    let params = vec![
        ("order_id".to_string(), order.id.to_string()),
        ("ref".to_string(), a.app_ref.clone()),
        ("status".to_string(), status(order).to_string()),
        ("ts".to_string(), (ctx.now() / 1000).to_string()),
    ];
    let sig = sign(&secret, &params);
    let mut u = url::Url::parse(&r.return_url)
        .map_err(|_| DomainError::invalid("return_url", "apps.url_invalid"))?;
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in &params {
            q.append_pair(k, v);
        }
        q.append_pair("sig", &sig);
    }
    Ok(Some(u.to_string()))
}

/// An app order as the app sees it (the API's answer and the webhook's `data`).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppOrder {
    /// The order id (text: JavaScript numbers cannot hold it exactly).
    pub id: String,
    pub app_id: String,
    /// The app's own reference, as it sent it.
    #[serde(rename = "ref")]
    pub reference: String,
    /// `pending`, `paid`, `partially_refunded`, `refunded`, `voided` or `cancelled`. Deliver
    /// only on `paid`.
    pub status: String,
    /// The shop's order number (`#1001`).
    pub number: i64,
    pub title: String,
    /// What the customer pays, in minor units of `currency` (fen, cents).
    pub amount: i64,
    pub currency: String,
    /// Minor units returned to the customer so far.
    pub refunded: i64,
    pub email: String,
    pub customer_id: Option<String>,
    /// The payment gateway the customer chose.
    pub gateway: String,
    pub created_at: String,
    pub paid_at: Option<String>,
}

/// The app order `order_id` as the app sees it.
pub async fn view(ctx: &Ctx, order_id: i64) -> DomainResult<AppOrder> {
    let a = store::by_order(ctx.db.read(), order_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let o = crate::order::get(ctx, order_id).await?;
    let paid_at = yiren_store::order::transactions(ctx.db.read(), order_id)
        .await?
        .iter()
        .filter(|t| t.kind == "sale")
        .map(|t| t.created_at)
        .min();
    let title = match o.lines.as_slice() {
        [l] => l.title.clone(),
        ls => ls
            .iter()
            .map(|l| l.title.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    };
    let r = &o.row;
    Ok(AppOrder {
        id: r.id.to_string(),
        app_id: a.app_id.to_string(),
        reference: a.app_ref,
        status: status(r).into(),
        number: r.number,
        title,
        amount: r.total,
        currency: r.currency.clone(),
        refunded: r.refunded,
        email: r.email.clone(),
        customer_id: r.customer_id.map(|c| c.to_string()),
        gateway: r.gateway.clone(),
        created_at: crate::clock::rfc3339(r.created_at),
        paid_at: paid_at.map(crate::clock::rfc3339),
    })
}

/// The API's answer to an app presenting its id and secret: its own order, or `NotFound` (also
/// for another app's order: no existence oracle); a wrong id or secret is `Unauthenticated`.
pub async fn for_app(
    ctx: &Ctx,
    app_id: &str,
    secret: &str,
    order_id: i64,
) -> DomainResult<AppOrder> {
    let r = match app_id.parse::<i64>() {
        Ok(id) => store::get(ctx.db.read(), id).await?,
        Err(_) => None,
    };
    let Some(r) = r else {
        return Err(DomainError::Unauthenticated);
    };
    if !same(&secret_of(ctx, &r)?, secret) {
        return Err(DomainError::Unauthenticated);
    }
    match store::by_order(ctx.db.read(), order_id).await? {
        Some(a) if a.app_id == r.id => view(ctx, order_id).await,
        _ => Err(DomainError::NotFound),
    }
}

/// The order topics an app hears about, and the webhook type each becomes.
fn webhook_type(topic: &str) -> Option<&'static str> {
    match topic {
        crate::event::ORDER_PAID => Some("order.paid"),
        crate::event::ORDER_CANCELLED => Some("order.cancelled"),
        crate::event::ORDER_REFUNDED => Some("order.refunded"),
        crate::event::ORDER_FULFILLED => Some("order.fulfilled"),
        _ => None,
    }
}

/// Queue the webhook for event `event_id` (`topic` about order `order_id`) in the change's
/// writes; the statement inserts it only when the order is an app's.
pub(crate) fn notify_into(
    ctx: &Ctx,
    w: &mut yiren_store::Writes,
    topic: &str,
    order_id: i64,
    event_id: i64,
) {
    let Some(kind) = webhook_type(topic) else {
        return;
    };
    let payload =
        serde_json::json!({ "order_id": order_id, "event_id": event_id, "type": kind }).to_string();
    let key = format!("{NOTIFY_KIND}:{event_id}");
    let now = ctx.now();
    yiren_store::job::enqueue_for_app_order(
        w,
        &yiren_store::job::NewJob {
            id: ctx.new_id(),
            kind: NOTIFY_KIND,
            payload: &payload,
            run_at: now,
            max_attempts: NOTIFY_ATTEMPTS,
            unique_key: Some(&key),
        },
        now,
        order_id,
    );
}

/// A webhook ready to sign and post (the poster signs `body` as the shop's own webhooks are
/// signed: `Yiren-Signature: t=<sent_at>,v1=hex(HMAC-SHA256(secret, "<sent_at>.<body>"))`).
pub struct Webhook {
    pub url: String,
    pub body: String,
    /// The app's secret, to sign with.
    pub secret: String,
    /// Unix seconds.
    pub sent_at: i64,
    pub event_id: String,
}

/// The webhook the `apps.notify` job `payload` posts, as the order stands now; None when the app
/// has no webhook URL (nothing to send).
pub async fn webhook(ctx: &Ctx, payload: &str) -> DomainResult<Option<Webhook>> {
    #[derive(serde::Deserialize)]
    struct P {
        order_id: i64,
        event_id: i64,
        #[serde(rename = "type")]
        kind: String,
    }
    let p: P = serde_json::from_str(payload)
        .map_err(|_| DomainError::invalid("payload", "error.invalid"))?;
    let a = store::by_order(ctx.db.read(), p.order_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let r = row(ctx, a.app_id).await?;
    if r.webhook_url.is_empty() {
        return Ok(None);
    }
    let data = view(ctx, p.order_id).await?;
    let body = serde_json::json!({
        "id": p.event_id.to_string(),
        "type": p.kind,
        "created_at": crate::clock::rfc3339(ctx.now()),
        "data": data,
    })
    .to_string();
    Ok(Some(Webhook {
        secret: secret_of(ctx, &r)?,
        url: r.webhook_url,
        body,
        sent_at: ctx.now() / 1000,
        event_id: p.event_id.to_string(),
    }))
}

/// A signed request for the owner to try the checkout as the app would: one minor unit of the
/// shop currency under a fresh `test-…` reference, good for [`REQUEST_WINDOW_SECS`].
pub async fn test_link(ctx: &Ctx, app_id: i64, base_url: &str) -> DomainResult<String> {
    let r = row(ctx, app_id).await?;
    let secret = secret_of(ctx, &r)?;
    let currency = crate::settings::load(ctx).await?.currency;
    let ts = ctx.now() / 1000;
    let mut params = vec![
        ("ref".to_string(), format!("test-{ts}")),
        ("amount".to_string(), "1".to_string()),
        ("currency".to_string(), currency),
        ("title".to_string(), "Test · 测试".to_string()),
        ("ts".to_string(), ts.to_string()),
    ];
    let sig = sign(&secret, &params);
    params.push(("sig".to_string(), sig));
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    Ok(format!("{base_url}/pay/{app_id}?{q}"))
}
