//! What a customer hears about: topics × channels (signed in at `/account/notifications`, or from
//! any bulk email's link at `/preferences/{token}` without signing in), their own push key
//! (Server酱, PushDeer, Bark — checked by a test push when saved), and RFC 8058 one-click
//! unsubscribe at `/unsubscribe/{token}/{topic}`.
//!
//! The unsubscribe POST carries no CSRF token by design: mail providers send it from their own
//! servers with the body `List-Unsubscribe=One-Click`; the signed token in the URL is the
//! authority, and the only thing it can do is stop mail.

use std::collections::BTreeSet;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use minijinja::{context, Value};
use serde::Deserialize;
use yiren_core::reach::{self, topic, Channel};
use yiren_core::DomainError;
use yiren_providers::push::{self, PushMessage, PushTarget};

use super::{domain_error_page, notice, page_ctx, with_status};
use crate::security::{CsrfForm, CustomerAuth};
use crate::AppState;

/// Push services a customer can use with a personal key.
pub const PUSH_KINDS: &[&str] = &["serverchan", "pushdeer", "bark"];

#[derive(Deserialize, Default)]
pub struct PageQuery {
    notice: Option<String>,
}

async fn matrix(state: &AppState, customer_id: i64) -> Result<Value, DomainError> {
    let ctx_ = &state.ctx;
    let topics = topic::list(ctx_).await?;
    let channels = topic::channels_for(ctx_, customer_id).await?;
    let chosen = topic::chosen(ctx_, customer_id).await?;
    let push = reach::customer_push(ctx_, customer_id).await?;
    Ok(context! {
        topics => topics.iter().map(|t| context! {
            id => t.id.to_string(), name => t.name.clone(), description => t.description.clone(),
            on => channels.iter().filter(|c| chosen.contains(&(t.id, **c))).map(|c| c.as_str()).collect::<Vec<_>>(),
        }).collect::<Vec<_>>(),
        channels => channels.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        push_kind => push.map(|(k, _)| k),
        push_kinds => PUSH_KINDS,
    })
}

fn wanted(pairs: &[(String, String)]) -> BTreeSet<(i64, Channel)> {
    pairs
        .iter()
        .filter(|(k, _)| k == "sub")
        .filter_map(|(_, v)| v.split_once(':'))
        .filter_map(|(t, c)| Some((t.parse().ok()?, Channel::parse(c)?)))
        .collect()
}

async fn render(
    state: &AppState,
    s: Option<&yiren_core::customer::CustomerSession>,
    token: Option<&str>,
    csrf: &str,
    notice_text: Option<String>,
    error: Option<String>,
    customer_id: i64,
) -> Response {
    let m = match matrix(state, customer_id).await {
        Ok(m) => m,
        Err(e) => return domain_error_page(e),
    };
    let path = match token {
        Some(t) => format!("/preferences/{t}"),
        None => "/account/notifications".into(),
    };
    let base = page_ctx(state, &path, s, csrf).await;
    let ctx = context! {
        action => path, signed_in => s.is_some(), m => m, notice => notice_text, error => error, ..base
    };
    state.templates.render("account/notifications.html", ctx)
}

pub async fn page(
    State(state): State<AppState>,
    CustomerAuth(s): CustomerAuth,
    Query(q): Query<PageQuery>,
) -> Response {
    let n = notice(q.notice.as_deref()).map(str::to_string);
    render(
        &state,
        Some(&s),
        None,
        &s.csrf_token,
        n,
        None,
        s.customer.id,
    )
    .await
}

pub async fn save(
    State(state): State<AppState>,
    CustomerAuth(s): CustomerAuth,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Response {
    match topic::set_preferences(&state.ctx, s.customer.id, &wanted(&pairs), "account").await {
        Ok(()) => Redirect::to("/account/notifications?notice=account.saved").into_response(),
        Err(e) => domain_error_page(e),
    }
}

#[derive(Deserialize)]
pub struct PushForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    base: String,
}

fn target_of(f: &PushForm) -> Option<PushTarget> {
    let key = f.key.trim().to_string();
    let base = Some(f.base.trim().to_string()).filter(|b| !b.is_empty());
    if key.is_empty()
        || key.len() > 200
        || key.chars().any(|c| c.is_control() || c.is_whitespace())
        || base
            .as_deref()
            .is_some_and(|b| !(b.starts_with("https://") || b.starts_with("http://")))
    {
        return None;
    }
    Some(match f.kind.as_str() {
        "serverchan" => PushTarget::ServerChan { sendkey: key, base },
        "pushdeer" => PushTarget::PushDeer { pushkey: key, base },
        "bark" => PushTarget::Bark {
            device_key: key,
            base,
        },
        _ => return None,
    })
}

pub async fn save_push(
    State(state): State<AppState>,
    CustomerAuth(s): CustomerAuth,
    CsrfForm(f): CsrfForm<PushForm>,
) -> Response {
    let l = crate::locale::current();
    let refuse = |msg: String| async {
        with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            render(
                &state,
                Some(&s),
                None,
                &s.csrf_token,
                None,
                Some(msg),
                s.customer.id,
            )
            .await,
        )
    };
    let Some(target) = target_of(&f) else {
        return refuse(l.t("reach.push_key_invalid").to_string()).await;
    };
    // A key that cannot receive a push is refused now, not discovered at the first broadcast.
    let site = state.settings().await;
    let msg = PushMessage {
        title: l.tf("notify.test_title", &[("site", &site.name)]),
        body: l.t("reach.push_test_body").to_string(),
        url: None,
    };
    if let Err(e) = push::send(&state.http, &target, &msg, state.ctx.now()).await {
        return refuse(l.tf("reach.push_test_failed", &[("error", &e.to_string())])).await;
    }
    let json = serde_json::to_value(&target).unwrap_or_default();
    match reach::set_customer_push(&state.ctx, s.customer.id, &f.kind, &json).await {
        Ok(()) => Redirect::to("/account/notifications?notice=account.saved").into_response(),
        Err(e) => domain_error_page(e),
    }
}

pub async fn delete_push(
    State(state): State<AppState>,
    CustomerAuth(s): CustomerAuth,
    CsrfForm(_): CsrfForm<crate::admin::pages::Empty>,
) -> Response {
    match reach::remove_customer_push(&state.ctx, s.customer.id).await {
        Ok(()) => Redirect::to("/account/notifications?notice=account.saved").into_response(),
        Err(e) => domain_error_page(e),
    }
}

// ---- without signing in: signed links from bulk email ----

fn token_customer(state: &AppState, token: &str) -> Result<i64, DomainError> {
    topic::customer_from_token(&state.ctx, token)
}

pub async fn preferences_page(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(token): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let id = match token_customer(&state, &token) {
        Ok(id) => id,
        Err(e) => return domain_error_page(e),
    };
    let (jar, csrf) = crate::security::pre_session_csrf(&state, jar);
    let n = notice(q.notice.as_deref()).map(str::to_string);
    (
        jar,
        render(&state, None, Some(&token), &csrf, n, None, id).await,
    )
        .into_response()
}

pub async fn preferences_save(
    State(state): State<AppState>,
    Path(token): Path<String>,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Response {
    let id = match token_customer(&state, &token) {
        Ok(id) => id,
        Err(e) => return domain_error_page(e),
    };
    match topic::set_preferences(&state.ctx, id, &wanted(&pairs), "preferences_link").await {
        Ok(()) => {
            Redirect::to(&format!("/preferences/{token}?notice=account.saved")).into_response()
        }
        Err(e) => domain_error_page(e),
    }
}

async fn unsubscribe_view(state: &AppState, token: &str, topic_id: i64, done: bool) -> Response {
    let t = match topic::get(&state.ctx, topic_id).await {
        Ok(t) => t,
        Err(e) => return domain_error_page(e),
    };
    let base = page_ctx(state, &format!("/unsubscribe/{token}/{topic_id}"), None, "").await;
    let ctx = context! { topic => t.name, token => token, topic_id => topic_id.to_string(), done => done, ..base };
    state.templates.render("account/unsubscribe.html", ctx)
}

/// GET shows a button (link scanners must not unsubscribe anyone by following the link).
pub async fn unsubscribe_page(
    State(state): State<AppState>,
    Path((token, topic_id)): Path<(String, i64)>,
) -> Response {
    if let Err(e) = token_customer(&state, &token) {
        return domain_error_page(e);
    }
    unsubscribe_view(&state, &token, topic_id, false).await
}

/// POST unsubscribes from the topic's email (RFC 8058 one-click, or the page's button).
pub async fn unsubscribe(
    State(state): State<AppState>,
    Path((token, topic_id)): Path<(String, i64)>,
) -> Response {
    let id = match token_customer(&state, &token) {
        Ok(id) => id,
        Err(e) => return domain_error_page(e),
    };
    match topic::unsubscribe(&state.ctx, id, topic_id, Channel::Email).await {
        Ok(()) => unsubscribe_view(&state, &token, topic_id, true).await,
        Err(e) => domain_error_page(e),
    }
}

// ---- newsletter sign-up with double opt-in (no account needed) ----

async fn subscribe_view(
    state: &AppState,
    csrf: &str,
    stage: &str,
    error: Option<String>,
    topics_done: Vec<String>,
    token: Option<&str>,
) -> Response {
    let topics = match topic::list(&state.ctx).await {
        Ok(t) => t,
        Err(e) => return domain_error_page(e),
    };
    let base = page_ctx(state, "/subscribe", None, csrf).await;
    let ctx = context! {
        stage => stage, error => error, done => topics_done, token => token,
        topics => topics.iter().map(|t| context! { id => t.id.to_string(), name => t.name.clone(), description => t.description.clone() }).collect::<Vec<_>>(),
        ..base
    };
    state.templates.render("account/subscribe.html", ctx)
}

pub async fn subscribe_page(State(state): State<AppState>, jar: CookieJar) -> Response {
    let (jar, csrf) = crate::security::pre_session_csrf(&state, jar);
    (
        jar,
        subscribe_view(&state, &csrf, "form", None, Vec::new(), None).await,
    )
        .into_response()
}

pub async fn subscribe(
    State(state): State<AppState>,
    jar: CookieJar,
    crate::security::ClientIp(ip): crate::security::ClientIp,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Response {
    let (_, csrf) = crate::security::pre_session_csrf(&state, jar);
    let email = pairs
        .iter()
        .find(|(k, _)| k == "email")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let topics: Vec<i64> = pairs
        .iter()
        .filter(|(k, _)| k == "topic")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    let l = crate::locale::current();
    match topic::request_subscription(&state.ctx, email, &topics, &ip.to_string(), l).await {
        Ok(()) => subscribe_view(&state, &csrf, "sent", None, Vec::new(), None).await,
        Err(DomainError::Throttled { retry_after_secs }) => with_status(
            StatusCode::TOO_MANY_REQUESTS,
            Some(retry_after_secs),
            subscribe_view(
                &state,
                &csrf,
                "form",
                Some(l.tf(
                    "error.throttled",
                    &[("seconds", &retry_after_secs.to_string())],
                )),
                Vec::new(),
                None,
            )
            .await,
        ),
        Err(DomainError::Invalid { key, .. }) => with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            subscribe_view(
                &state,
                &csrf,
                "form",
                Some(l.t(key).to_string()),
                Vec::new(),
                None,
            )
            .await,
        ),
        Err(e) => domain_error_page(e),
    }
}

/// GET shows a button: a mail scanner following the link confirms nothing.
pub async fn confirm_page(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(token): Path<String>,
) -> Response {
    if let Err(e) = topic::read_subscribe_token(&state.ctx, &token) {
        return domain_error_page(e);
    }
    let (jar, csrf) = crate::security::pre_session_csrf(&state, jar);
    (
        jar,
        subscribe_view(&state, &csrf, "confirm", None, Vec::new(), Some(&token)).await,
    )
        .into_response()
}

pub async fn confirm(
    State(state): State<AppState>,
    Path(token): Path<String>,
    CsrfForm(_): CsrfForm<crate::admin::pages::Empty>,
) -> Response {
    match topic::confirm_subscription(&state.ctx, &token).await {
        Ok(done) => {
            let names = done.into_iter().map(|t| t.name).collect();
            subscribe_view(&state, "", "confirmed", None, names, None).await
        }
        Err(e) => domain_error_page(e),
    }
}
