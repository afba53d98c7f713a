//! `/pay/{app}`: the checkout the owner's other apps send their customers to (收银台). The app's
//! signed request (`core::checkout_app`) is checked on the page and again when the form comes
//! back; the customer gives an email and picks a gateway; the order is placed (once per app
//! reference) and paid like any other. A request whose order exists goes to that order's page —
//! or, once paid, straight back to the app with a signed order id.

use axum::extract::{Extension, Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use minijinja::context;
use yiren_core::checkout_app::{self, Payer, Request as AppRequest};
use yiren_core::{money, order, payment, DomainError};

use crate::cart::{field, form_of};
use crate::security::{ClientIp, MaybeCustomer};
use crate::AppState;

/// The app checkout routes.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new().route(
        "/pay/{app}",
        get(page)
            .post(submit)
            .layer(axum::middleware::from_fn_with_state(
                state,
                crate::security::load_customer,
            )),
    )
}

/// Why a request is refused, as a page in the customer's language.
fn refusal(e: DomainError) -> Response {
    use crate::templates::error_page;
    match e {
        DomainError::NotFound => error_page(StatusCode::NOT_FOUND, "error.not_found"),
        DomainError::Forbidden => error_page(StatusCode::FORBIDDEN, "apps.signature_invalid"),
        DomainError::Invalid { key, .. } => error_page(StatusCode::BAD_REQUEST, key),
        DomainError::Conflict { key } => error_page(StatusCode::CONFLICT, key),
        e => crate::admin::pages::domain_error_page(e),
    }
}

async fn checked(
    state: &AppState,
    app: &str,
    params: &[(String, String)],
) -> Result<AppRequest, Response> {
    let Ok(app_id) = app.parse::<i64>() else {
        return Err(refusal(DomainError::NotFound));
    };
    checkout_app::check_request(&state.ctx, app_id, params, crate::locale::current())
        .await
        .map_err(refusal)
}

/// Where an order that exists sends the customer: back to the app once paid (or cancelled),
/// else to the order's page to pay.
async fn onward(state: &AppState, o: &yiren_store::order::OrderRow) -> Response {
    match checkout_app::return_url(&state.ctx, o).await {
        Ok(Some(url)) => return Redirect::to(&url).into_response(),
        Ok(None) => {}
        Err(e) => return crate::admin::pages::domain_error_page(e),
    }
    let key = order::access_key(&state.ctx, o.id);
    Redirect::to(&format!("/orders/{}?key={key}", o.id)).into_response()
}

async fn render(
    state: &AppState,
    req: &AppRequest,
    email: &str,
    gateway: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let t = crate::locale::current();
    let base = crate::admin::base_ctx(state, "/pay", None, "").await;
    let mut resp = state.templates.render(
        "shop/pay.html",
        context! {
            app_id => req.app.id.to_string(),
            app_name => req.app.name.clone(),
            title => req.title(),
            amount => money::display(req.amount(), &req.currency),
            product => matches!(req.what, checkout_app::What::Product { .. }),
            params => req.params.clone(),
            email => email,
            gateways => crate::checkout::offers(state, &req.currency),
            chosen => gateway,
            error => error.map(|k| t.t(k)),
            ..base
        },
    );
    *resp.status_mut() = status;
    crate::checkout::private(resp)
}

async fn page(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Extension(m): Extension<MaybeCustomer>,
    RawQuery(raw): RawQuery,
) -> Response {
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let req = match checked(&state, &app, &params).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match checkout_app::existing(&state.ctx, &req).await {
        Ok(Some(o)) => return onward(&state, &o).await,
        Ok(None) => {}
        Err(e) => return refusal(e),
    }
    let email = req
        .email
        .clone()
        .or_else(|| m.0.as_ref().and_then(|s| s.customer.email.clone()))
        .unwrap_or_default();
    render(&state, &req, &email, "", None, StatusCode::OK).await
}

async fn submit(
    State(state): State<AppState>,
    Path(app): Path<String>,
    ClientIp(ip): ClientIp,
    req: Request,
) -> Response {
    let base = crate::api::page::base_url(state.config.public_url.as_deref(), req.headers());
    let me = MaybeCustomer::of(&req);
    let form = match form_of(&state, req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    // The app's signed parameters come back as `p.<name>`.
    let params: Vec<(String, String)> = form
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("p.").map(|k| (k.to_string(), v.clone())))
        .collect();
    let r = match checked(&state, &app, &params).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let mut email = field(&form, "email").trim().to_string();
    if email.is_empty() {
        email = r
            .email
            .clone()
            .or_else(|| me.0.as_ref().and_then(|s| s.customer.email.clone()))
            .unwrap_or_default();
    }
    let gateway = match field(&form, "gateway") {
        "" => "manual".to_string(),
        g => g.to_string(),
    };
    let payer = Payer {
        email: email.clone(),
        customer_id: me.0.as_ref().map(|s| s.customer.id),
        gateway: gateway.clone(),
        locale: crate::locale::current(),
    };
    match checkout_app::place(&state.ctx, &r, &payer).await {
        Ok(o) if o.payment == "pending" && o.cancelled == 0 => {
            // An online gateway that sends the customer away does so now.
            match payment::start(&state.ctx, &o, &base, &ip.to_string()).await {
                Ok(payment::Instruction::Redirect { url }) => Redirect::to(&url).into_response(),
                Ok(_) => onward(&state, &o).await,
                Err(e) => {
                    tracing::warn!(order_id = o.id, error = %e, "could not start the payment");
                    onward(&state, &o).await
                }
            }
        }
        Ok(o) => onward(&state, &o).await,
        Err(e) => {
            let (key, status) = match e {
                DomainError::Invalid { key, .. } => (key, StatusCode::UNPROCESSABLE_ENTITY),
                DomainError::Conflict { key } => (key, StatusCode::CONFLICT),
                e => return refusal(e),
            };
            render(&state, &r, &email, &gateway, Some(key), status).await
        }
    }
}
