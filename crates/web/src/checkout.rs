//! `/checkout` (the form: contact, address, shipping, discount code, payment; server-rendered, no
//! JavaScript) and `/orders/{id}?key=` (the order's page: what was bought, what it costs, and how
//! to pay the owner). Every amount is computed by `core::checkout` from the catalog: the form has
//! no price fields, and any it is sent are never read. Cross-site posts are refused like the
//! cart's; the order page needs the key from the link the customer was sent to (a MAC of the order
//! id), so order ids cannot be walked, and it is never cached or sent as a referrer. A signed-in
//! customer's order is recorded as theirs (their order history at `/account/orders`).

use axum::extract::{Extension, Path, Query, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get};
use axum::Router;
use axum_extra::extract::cookie::CookieJar;
use minijinja::{context, Value};
use serde::Deserialize;
use yiren_core::checkout::{self, Address, Submit};
use yiren_core::{cart, money, order, payment, DomainError};

use crate::cart::{field, form_of, keep, lines_of};
use crate::security::{ClientIp, MaybeCustomer};
use crate::AppState;

/// Checkout routes.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/checkout",
            get(page)
                .post(submit)
                .layer(axum::middleware::from_fn_with_state(
                    state,
                    crate::security::load_customer,
                )),
        )
        .route("/orders/{id}", get(order_page))
        .route("/orders/{id}/status", get(order_status))
        .route(
            "/confirm-payment/{id}",
            get(confirm_page).post(confirm_submit),
        )
        .route("/payments/{gateway}/notify", any(notify))
}

/// The form fields a customer fills in (kept when the form comes back with an error).
const FIELDS: [&str; 13] = [
    "email",
    "name",
    "phone",
    "country",
    "province",
    "city",
    "district",
    "line1",
    "line2",
    "postal_code",
    "shipping",
    "code",
    "note",
];

pub(crate) fn private(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// The cookie naming this browser's checkout (for the owner's abandoned-checkout view).
const CHECKOUT_COOKIE: &str = "yiren_checkout";

/// Record the browser's checkout as seen (created on its first view) and keep its cookie. A
/// failure to record is logged: the customer's checkout goes on.
async fn note_checkout(
    state: &AppState,
    jar: CookieJar,
    email: &str,
    customer: Option<i64>,
    priced: &yiren_core::cart::Priced,
    currency: &str,
) -> CookieJar {
    let id = jar
        .get(CHECKOUT_COOKIE)
        .map(|c| c.value().to_string())
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| {
            let mut t = [0u8; 16];
            state.ctx.rng.fill(&mut t);
            hex::encode(t)
        });
    let touched =
        yiren_core::abandoned::touch(&state.ctx, &id, email, customer, priced, currency).await;
    if let Err(e) = touched {
        tracing::warn!(error = %e, "checkout not recorded");
    }
    let mut c = axum_extra::extract::cookie::Cookie::new(CHECKOUT_COOKIE, id);
    c.set_path("/");
    c.set_http_only(true);
    c.set_same_site(axum_extra::extract::cookie::SameSite::Lax);
    c.set_secure(state.config.https());
    c.set_max_age(time::Duration::days(7));
    jar.add(c)
}

async fn render(
    state: &AppState,
    jar: CookieJar,
    form: &[(String, String)],
    customer: Option<i64>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let priced = match crate::cart::priced(state, &jar).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if priced.lines.is_empty() {
        return Redirect::to("/cart").into_response();
    }
    let cfg = match checkout::config(&state.ctx).await {
        Ok(c) => c,
        Err(e) => return crate::admin::pages::domain_error_page(e),
    };
    let currency = state.settings().await.currency;
    let rates: Vec<Value> = cfg
        .shipping
        .iter()
        .map(|r| {
            let price = match r.rule {
                yiren_core::pricing::Shipping::Flat { price }
                | yiren_core::pricing::Shipping::FreeAbove { price, .. } => price,
                yiren_core::pricing::Shipping::ByWeight { first_price, .. } => first_price,
            };
            context! { name => r.name.clone(), regions => r.regions.join(", "), from => money::display(price, &currency) }
        })
        .collect();
    let mut token = [0u8; 16];
    state.ctx.rng.fill(&mut token);
    let token = match field(form, "token") {
        "" => hex::encode(token),
        t => t.to_string(),
    };
    let values: std::collections::BTreeMap<&str, &str> =
        FIELDS.iter().map(|k| (*k, field(form, k))).collect();
    let t = crate::locale::current();
    let base = crate::admin::base_ctx(state, "/checkout", None, "").await;
    let mut resp = state.templates.render(
        "shop/checkout.html",
        context! {
            cart => Value::from_serialize(&priced),
            rates => rates,
            manual_ready => cfg.manual.ready(),
            gateways => offers(state, &currency),
            chosen => match field(form, "gateway") { "" => "manual", g => g },
            token => token,
            v => values,
            error => error.map(|k| t.t(k)),
            ..base
        },
    );
    *resp.status_mut() = status;
    let jar = keep(state, jar, &priced.kept());
    let jar = note_checkout(
        state,
        jar,
        field(form, "email"),
        customer,
        &priced,
        &currency,
    )
    .await;
    (jar, private(resp)).into_response()
}

/// The ways to pay the checkout offers for this currency: (id, label); the manual gateway is
/// named by the page.
pub(crate) fn offers(state: &AppState, currency: &str) -> Vec<Value> {
    state
        .ctx
        .gateways
        .offers()
        .into_iter()
        .filter(|o| {
            state
                .ctx
                .gateways
                .get(&o.id)
                .is_some_and(|g| g.accepts(currency))
        })
        .map(|o| {
            let name = if o.name.is_empty() {
                o.id.clone()
            } else {
                o.name
            };
            context! { id => o.id, name => name }
        })
        .collect()
}

/// How an order stands, as its customer is told (message key): on the order page and in their
/// order history.
pub(crate) fn status_key(r: &yiren_store::order::OrderRow) -> &'static str {
    if r.cancelled == 1 {
        return "order.status_cancelled";
    }
    match r.payment.as_str() {
        "pending" => "order.status_pending",
        "paid" if r.fulfilment == "fulfilled" => "order.status_shipped",
        "paid" => "order.status_paid",
        "partially_refunded" | "refunded" => "order.status_refunded",
        _ => "order.status_cancelled",
    }
}

/// The signed-in customer's email, which the form starts with (and a blank email falls back to).
fn account_email(m: &MaybeCustomer) -> Option<String> {
    m.0.as_ref().and_then(|s| s.customer.email.clone())
}

async fn page(
    State(state): State<AppState>,
    Extension(m): Extension<MaybeCustomer>,
    jar: CookieJar,
) -> Response {
    let start: Vec<(String, String)> = account_email(&m)
        .map(|e| vec![("email".to_string(), e)])
        .unwrap_or_default();
    let customer = m.0.as_ref().map(|s| s.customer.id);
    render(&state, jar, &start, customer, None, StatusCode::OK).await
}

fn submission(form: &[(String, String)], lines: Vec<cart::Line>) -> Submit {
    let f = |k: &str| field(form, k).to_string();
    let address = Address {
        name: f("name"),
        phone: f("phone"),
        country: f("country"),
        province: f("province"),
        city: f("city"),
        district: f("district"),
        line1: f("line1"),
        line2: f("line2"),
        postal_code: f("postal_code"),
    };
    let filled = address != Address::default() && address.line1.trim() != "";
    let opt = |k: &str| Some(f(k)).filter(|v| !v.trim().is_empty());
    Submit {
        token: f("token"),
        email: f("email"),
        customer_id: None,
        locale: crate::locale::current(),
        lines,
        address: filled.then_some(address),
        shipping: opt("shipping"),
        code: opt("code"),
        note: f("note"),
        gateway: match f("gateway").as_str() {
            "" => "manual".into(),
            g => g.to_string(),
        },
        started: None,
        app: None,
        renewal: None,
    }
}

async fn submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    req: Request,
) -> Response {
    let base = crate::api::page::base_url(state.config.public_url.as_deref(), req.headers());
    let me = MaybeCustomer::of(&req);
    let form = match form_of(&state, req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let lines = lines_of(&jar);
    let customer = me.0.as_ref().map(|s| s.customer.id);
    let mut s = submission(&form, lines);
    s.started = jar
        .get(CHECKOUT_COOKIE)
        .map(|c| c.value().chars().take(64).collect());
    // A signed-in customer's order is theirs (their order history, their downloads).
    if let Some(session) = &me.0 {
        s.customer_id = Some(session.customer.id);
        if s.email.trim().is_empty() {
            s.email = account_email(&me).unwrap_or_default();
        }
    }
    match checkout::place(&state.ctx, &s).await {
        Ok(o) => {
            let key = order::access_key(&state.ctx, o.id);
            let jar = keep(&state, jar, &[]);
            // The browser's checkout became this order (marked so in the order's transaction).
            let mut gone = axum_extra::extract::cookie::Cookie::from(CHECKOUT_COOKIE);
            gone.set_path("/");
            let jar = jar.remove(gone);
            if let Some(session) = &me.0 {
                // The order is placed; a saved cart left behind is only untidy.
                if let Err(e) = yiren_core::cart::save(&state.ctx, session.customer.id, &[]).await {
                    tracing::warn!(error = %e, "the saved cart was not emptied after checkout");
                }
            }
            let page = format!("/orders/{}?key={key}", o.id);
            // An online gateway that sends the customer away does so now; the others are shown
            // on the order page.
            let to = match (
                o.payment.as_str(),
                payment::start(&state.ctx, &o, &base, &ip.to_string()).await,
            ) {
                ("pending", Ok(payment::Instruction::Redirect { url })) => url,
                ("pending", Err(e)) => {
                    tracing::warn!(order_id = o.id, error = %e, "could not start the payment");
                    page
                }
                _ => page,
            };
            (jar, Redirect::to(&to)).into_response()
        }
        Err(e) => {
            // The form comes back with the reason: 422 for what the customer can fix, 409 when
            // the stock or a limit ran out under them.
            let (key, status) = match e {
                DomainError::Invalid { key, .. } => (key, StatusCode::UNPROCESSABLE_ENTITY),
                DomainError::Conflict { key } => (key, StatusCode::CONFLICT),
                DomainError::NotFound => ("checkout.line_gone", StatusCode::UNPROCESSABLE_ENTITY),
                e => return crate::admin::pages::domain_error_page(e),
            };
            render(&state, jar, &form, customer, Some(key), status).await
        }
    }
}

#[derive(Deserialize)]
pub struct KeyQuery {
    #[serde(default)]
    key: String,
}

/// A receipt link drawn as an SVG QR code (dark modules as one path; no text from the link).
fn qr_svg(link: &str) -> Option<String> {
    if link.is_empty() {
        return None;
    }
    let code = qrcode::QrCode::new(link.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color>()
            .min_dimensions(200, 200)
            .build(),
    )
}

async fn order_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<KeyQuery>,
    RawQuery(raw): RawQuery,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
) -> Response {
    let not_found = || crate::templates::error_page(StatusCode::NOT_FOUND, "error.not_found");
    let Ok(id) = id.parse::<i64>() else {
        return not_found();
    };
    let mut o = match order::by_access_key(&state.ctx, id, &q.key).await {
        Ok(o) => o,
        Err(DomainError::NotFound) => return not_found(),
        Err(e) => return crate::admin::pages::domain_error_page(e),
    };
    let online = o.row.gateway != "manual";
    let gw = state.ctx.gateways.get(&o.row.gateway);
    if let (true, Some(gw), Some(raw)) = (online, &gw, &raw) {
        // Back from the gateway with its signed answer: recorded through the same path as the
        // notification (whichever comes first records it; PAY-4).
        if o.row.payment == "pending"
            && payment::returned(&state.ctx, gw.as_ref(), id, raw)
                .await
                .is_some()
        {
            o = match order::get(&state.ctx, id).await {
                Ok(o) => o,
                Err(e) => return crate::admin::pages::domain_error_page(e),
            };
        }
    }
    // An app's order that is settled goes back to the app, with its signed order id.
    match yiren_core::checkout_app::return_url(&state.ctx, &o.row).await {
        Ok(Some(url)) => return private(Redirect::to(&url).into_response()),
        Ok(None) => {}
        Err(e) => return crate::admin::pages::domain_error_page(e),
    }
    let cfg = match checkout::config(&state.ctx).await {
        Ok(c) => c,
        Err(e) => return crate::admin::pages::domain_error_page(e),
    };
    let r = &o.row;
    let m = |v: i64| money::display(v, &r.currency);
    let lines: Vec<Value> = o
        .lines
        .iter()
        .map(|l| context! { title => l.title.clone(), variant_title => l.variant_title.clone(), quantity => l.quantity, unit => m(l.unit_price), total => m(l.subtotal - l.discount) })
        .collect();
    let awaiting = r.payment == "pending" && r.cancelled == 0;
    let t = crate::locale::current();
    let status = status_key(r);
    let shipped = o.shipment().map(|x| Value::from_serialize(&x));
    let granted = match yiren_core::delivery::shown(&state.ctx, r.id).await {
        Ok(g) => g,
        Err(e) => return crate::admin::pages::domain_error_page(e),
    };
    // An online payment not made yet: the QR code or link the gateway gave (asked for once).
    let pay = if awaiting && online && gw.is_some() {
        let base_url = crate::api::page::base_url(state.config.public_url.as_deref(), &headers);
        match payment::start(&state.ctx, r, &base_url, &ip.to_string()).await {
            Ok(payment::Instruction::Qr { payload }) => Some(pay_ctx(qr_svg(&payload), None, None)),
            Ok(payment::Instruction::Redirect { url }) => Some(pay_ctx(None, Some(url), None)),
            Ok(payment::Instruction::Form { action, fields }) => {
                Some(pay_ctx(None, None, Some((action, fields))))
            }
            Ok(payment::Instruction::Manual) => None,
            Err(e) => {
                tracing::warn!(order_id = r.id, error = %e, "could not start the payment");
                Some(pay_ctx(None, None, None))
            }
        }
    } else {
        None
    };
    let base = crate::admin::base_ctx(&state, "/orders", None, "").await;
    let resp = state.templates.render(
        "shop/order.html",
        context! {
            number => r.number,
            status => t.t(status),
            awaiting => awaiting,
            lines => lines,
            subtotal => m(r.subtotal), discount => (r.discount > 0).then(|| m(r.discount)),
            shipping => m(r.shipping - r.shipping_discount), tax => (r.tax > 0).then(|| m(r.tax)),
            tax_inclusive => r.tax_inclusive == 1,
            total => m(r.total),
            expires_at => r.expires_at,
            shipped => shipped,
            granted => granted,
            manual => awaiting && r.gateway == "manual",
            pay => pay,
            status_url => format!("/orders/{}/status?key={}", r.id, q.key),
            instructions => cfg.manual.instructions.clone(),
            wechat_qr => awaiting.then(|| qr_svg(&cfg.manual.wechat)).flatten(),
            alipay_qr => awaiting.then(|| qr_svg(&cfg.manual.alipay)).flatten(),
            ..base
        },
    );
    private(resp)
}

/// How the order page shows an online payment: a QR code, a link, or a form (none: the gateway
/// could not be reached).
fn pay_ctx(
    qr: Option<String>,
    link: Option<String>,
    form: Option<(String, Vec<(String, String)>)>,
) -> Value {
    let unavailable = qr.is_none() && link.is_none() && form.is_none();
    let (action, fields) = form.unzip();
    context! { qr => qr, link => link, action => action, fields => fields, unavailable => unavailable }
}

/// `/orders/{id}/status?key=`: how the order stands, for the order page to follow a payment
/// made on another device (the QR code) without a reload.
async fn order_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<KeyQuery>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return crate::error::ApiError::not_found().into_response();
    };
    let o = match order::by_access_key(&state.ctx, id, &q.key).await {
        Ok(o) => o,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let t = crate::locale::current();
    // An app's order, once settled: where the page sends the customer back to.
    let back = match yiren_core::checkout_app::return_url(&state.ctx, &o.row).await {
        Ok(u) => u,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let body = serde_json::json!({
        "payment": o.row.payment,
        "cancelled": o.row.cancelled != 0,
        "status": t.t(status_key(&o.row)),
        "return_url": back,
    });
    let mut resp = axum::Json(body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[derive(Deserialize, Default)]
struct SigQuery {
    #[serde(default)]
    sig: String,
}

/// The page behind the owner's push link: what would be confirmed, and a button. A wrong link is
/// a plain 404.
async fn confirm_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<SigQuery>,
) -> Response {
    confirm_render(&state, &id, &q.sig, None).await
}

async fn confirm_render(state: &AppState, id: &str, sig: &str, done: Option<&str>) -> Response {
    let not_found = || crate::templates::error_page(StatusCode::NOT_FOUND, "error.not_found");
    let Ok(id) = id.parse::<i64>() else {
        return not_found();
    };
    if !order::confirm_link_ok(&state.ctx, id, sig) {
        return not_found();
    }
    let o = match order::get(&state.ctx, id).await {
        Ok(o) => o.row,
        Err(DomainError::NotFound) => return not_found(),
        Err(e) => return crate::admin::pages::domain_error_page(e),
    };
    let base = crate::admin::base_ctx(state, "/confirm-payment", None, "").await;
    let resp = state.templates.render(
        "shop/confirm_payment.html",
        context! {
            id => o.id.to_string(), sig => sig, number => o.number, email => o.email.clone(),
            total => money::display(o.total, &o.currency),
            pending => o.payment == "pending" && o.cancelled == 0,
            done => done.map(|k| crate::locale::current().t(k)),
            ..base
        },
    );
    private(resp)
}

/// The owner's "yes, it arrived": the link's MAC is the credential (a cross-site page cannot know
/// it, and cross-site posts are refused anyway); recorded once, like the admin button.
async fn confirm_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let form = match form_of(&state, req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let sig = field(&form, "sig").to_string();
    let Some(order_id) = id
        .parse::<i64>()
        .ok()
        .filter(|i| order::confirm_link_ok(&state.ctx, *i, &sig))
    else {
        return crate::templates::error_page(StatusCode::NOT_FOUND, "error.not_found");
    };
    match order::confirm_manual(&state.ctx, order_id, "owner:push-link").await {
        Ok(_) => confirm_render(&state, &id, &sig, Some("order.confirm_done")).await,
        Err(DomainError::Conflict { .. }) => {
            confirm_render(&state, &id, &sig, Some("order.confirm_not_pending")).await
        }
        Err(e) => crate::admin::pages::domain_error_page(e),
    }
}

/// `/payments/{gateway}/notify`: the one entry for every gateway's notifications (any method; the
/// raw request goes to the gateway to verify).
async fn notify(
    State(state): State<AppState>,
    Path(gateway): Path<String>,
    req: Request,
) -> Response {
    let Some(gw) = state.ctx.gateways.get(&gateway) else {
        return crate::templates::error_page(StatusCode::NOT_FOUND, "error.not_found");
    };
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, state.config.max_body_bytes).await else {
        let a = gw.nack(false);
        return (StatusCode::PAYLOAD_TOO_LARGE, a.body).into_response();
    };
    let raw = payment::RawNotification {
        method: parts.method.to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body: body.to_vec(),
    };
    let ack = payment::notify(&state.ctx, gw.as_ref(), &raw).await;
    let status = StatusCode::from_u16(ack.status).unwrap_or(StatusCode::OK);
    (status, [(header::CONTENT_TYPE, ack.content_type)], ack.body).into_response()
}
