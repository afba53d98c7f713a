//! `/cart`: the visitor's cart page (server-rendered, no JavaScript), `POST /cart/add` from a
//! product page and `POST /cart/update` from the cart. The cart lives in a cookie
//! ([`yiren_core::cart`]), and for a signed-in customer also in their saved cart, merged on
//! sign-in ([`after_sign_in`]); every amount on the page is computed here from the catalog. Cross-site
//! posts are refused (Origin / Sec-Fetch-Site), since shop pages are cached and carry no token.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use minijinja::{context, Value};
use yiren_core::{cart, DomainError};

use crate::security::MaybeCustomer;
use crate::templates::error_page;
use crate::AppState;

const COOKIE: &str = "yiren_cart";

/// Cart routes (the signed-in customer, if any, is loaded: their cart is saved too).
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/cart", get(page))
        .route("/cart/add", post(add))
        .route("/cart/update", post(update))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            crate::security::load_customer,
        ))
}

/// The signed-in customer (a session past its second factor), if any.
fn customer_of(req: &Request) -> Option<i64> {
    req.extensions()
        .get::<MaybeCustomer>()
        .and_then(|m| m.0.as_ref())
        .filter(|s| !s.mfa_pending)
        .map(|s| s.customer.id)
}

/// Keep `lines` in the cookie, and for a signed-in customer in their saved cart.
async fn keep_for(
    state: &AppState,
    jar: CookieJar,
    customer: Option<i64>,
    lines: &[cart::Line],
) -> Result<CookieJar, Response> {
    if let Some(id) = customer {
        cart::save(&state.ctx, id, lines)
            .await
            .map_err(crate::admin::pages::domain_error_page)?;
    }
    Ok(keep(state, jar, lines))
}

/// After a sign-in with `token`: the browser's cart merged into the customer's saved one, in the
/// cookie and saved (nothing happens for a session still waiting for its second factor). The
/// sign-in stands if this fails: the browser keeps its own cart, and the failure is logged.
pub(crate) async fn after_sign_in(state: &AppState, jar: CookieJar, token: &str) -> CookieJar {
    let merged = async {
        let session = yiren_core::customer::session_from_token(&state.ctx, token).await?;
        match session.filter(|s| !s.mfa_pending) {
            Some(s) => cart::merge_on_sign_in(&state.ctx, s.customer.id, &lines_of(&jar))
                .await
                .map(Some),
            None => Ok(None),
        }
    }
    .await;
    match merged {
        Ok(Some(lines)) => keep(state, jar, &lines),
        Ok(None) => jar,
        Err(e) => {
            tracing::warn!(error = %e, "the cart was not merged on sign-in");
            jar
        }
    }
}

/// A cookie that empties the browser's cart (on sign-out: the cart stays saved with the account).
pub(crate) fn clear(state: &AppState, jar: CookieJar) -> CookieJar {
    keep(state, jar, &[])
}

pub(crate) fn lines_of(jar: &CookieJar) -> Vec<cart::Line> {
    jar.get(COOKIE)
        .map(|c| cart::parse(c.value()))
        .unwrap_or_default()
}

pub(crate) fn keep(state: &AppState, jar: CookieJar, lines: &[cart::Line]) -> CookieJar {
    let mut c = Cookie::new(COOKIE, cart::format(lines));
    c.set_path("/");
    c.set_http_only(true);
    c.set_same_site(SameSite::Lax);
    c.set_secure(state.config.https());
    if lines.is_empty() {
        c.make_removal();
    } else {
        c.set_max_age(time::Duration::days(30));
    }
    jar.add(c)
}

/// The visitor's cart priced from the catalog now, in the page's language (an error page if the
/// catalog cannot be read).
pub(crate) async fn priced(state: &AppState, jar: &CookieJar) -> Result<cart::Priced, Response> {
    cart::price(&state.ctx, &lines_of(jar), crate::locale::current())
        .await
        .map_err(crate::admin::pages::domain_error_page)
}

async fn render(
    state: &AppState,
    jar: CookieJar,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let priced = match priced(state, &jar).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    // Dropped or capped lines are forgotten, so the notice shows once.
    let jar = keep(state, jar, &priced.kept());
    let base = crate::admin::base_ctx(state, "/cart", None, "").await;
    let t = crate::locale::current();
    let notices: Vec<&str> = priced.notices.iter().map(|k| t.t(k)).collect();
    let mut resp = state.templates.render(
        "shop/cart.html",
        context! {
            cart => Value::from_serialize(&priced),
            notices => notices,
            error => error.map(|k| t.t(k)),
            max => cart::MAX_QUANTITY,
            ..base
        },
    );
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, "no-store".parse().expect("static"));
    (jar, resp).into_response()
}

async fn page(State(state): State<AppState>, jar: CookieJar) -> Response {
    render(&state, jar, None, StatusCode::OK).await
}

/// The form fields, read after the origin check.
pub(crate) async fn form_of(
    state: &AppState,
    req: Request,
) -> Result<Vec<(String, String)>, Response> {
    if !crate::security::same_origin(&req) {
        return Err(error_page(StatusCode::FORBIDDEN, "error.csrf"));
    }
    let bytes = axum::body::to_bytes(req.into_body(), state.config.max_body_bytes)
        .await
        .map_err(|_| error_page(StatusCode::PAYLOAD_TOO_LARGE, "error.payload_too_large"))?;
    serde_urlencoded::from_bytes(&bytes)
        .map_err(|_| error_page(StatusCode::BAD_REQUEST, "error.invalid"))
}

pub(crate) fn field<'a>(f: &'a [(String, String)], name: &str) -> &'a str {
    f.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

async fn add(State(state): State<AppState>, jar: CookieJar, req: Request) -> Response {
    let customer = customer_of(&req);
    let f = match form_of(&state, req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let mut lines = lines_of(&jar);
    let quantity = match field(&f, "quantity") {
        "" => Ok(1),
        q => cart::quantity(q),
    };
    let result = match (field(&f, "variant_id").parse::<i64>(), quantity) {
        (Ok(v), Ok(q)) => cart::add(&state.ctx, &mut lines, v, q).await,
        (Err(_), _) => Err(DomainError::NotFound),
        (_, Err(e)) => Err(e),
    };
    match result {
        Ok(()) => match keep_for(&state, jar, customer, &lines).await {
            Ok(jar) => (jar, Redirect::to("/cart")).into_response(),
            Err(r) => r,
        },
        Err(DomainError::Invalid { key, .. }) => {
            render(&state, jar, Some(key), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(DomainError::NotFound) => {
            render(
                &state,
                jar,
                Some("cart.line_gone"),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => crate::admin::pages::domain_error_page(e),
    }
}

/// New quantities (`q_<variant id>`; 0 removes), or `remove=<variant id>`.
async fn update(State(state): State<AppState>, jar: CookieJar, req: Request) -> Response {
    let customer = customer_of(&req);
    let f = match form_of(&state, req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let mut lines = lines_of(&jar);
    let remove = field(&f, "remove").parse::<i64>().ok();
    for l in &mut lines {
        if let Some((_, v)) = f.iter().find(|(k, _)| *k == format!("q_{}", l.variant_id)) {
            match cart::quantity(v) {
                Ok(q) => l.quantity = q,
                Err(_) => {
                    return render(
                        &state,
                        jar,
                        Some("cart.quantity_invalid"),
                        StatusCode::UNPROCESSABLE_ENTITY,
                    )
                    .await
                }
            }
        }
        if remove == Some(l.variant_id) {
            l.quantity = 0;
        }
    }
    lines.retain(|l| l.quantity > 0);
    match keep_for(&state, jar, customer, &lines).await {
        Ok(jar) => (jar, Redirect::to("/cart")).into_response(),
        Err(r) => r,
    }
}
