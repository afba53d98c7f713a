//! WeChat 公众号 message login (消息上行), for owners with an unverified subscription account:
//!
//! 1. The browser asks for a code (`POST /account/wechat/start`): a 6-digit code, valid
//!    [`CODE_TTL_MS`], bound to this browser, is shown with the account's QR image.
//! 2. The customer sends the code to the account. WeChat POSTs the message to `/wechat/callback`
//!    (signed: `sha1(sort(token, timestamp, nonce))`); Yiren binds the sender's OpenID to the
//!    waiting code and replies with a confirmation text.
//! 3. The page polls (`POST /account/wechat/poll`) and completes without a reload; the session is
//!    created for the identity `wechat:<OpenID>` (or the identity is linked, when a signed-in
//!    customer started it from their security page).
//!
//! Callback forwarding: when a forward URL is configured, every message is first offered to it and
//! handled here only if the target does not handle it. Replays: a message id is handled once (the
//! same reply is returned for WeChat's retries); callbacks older than 5 minutes are refused.

use axum::body::Bytes;
use axum::extract::{Extension, Query, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use axum_extra::extract::cookie::CookieJar;
use minijinja::context;
use serde::{Deserialize, Serialize};
use yiren_core::customer::{settings as methods, ExternalIdentity};
use yiren_core::id::hash_token;
use yiren_providers::wechat as wx;
use yiren_store::customer as store;
use yiren_store::StoreError;

use super::{domain_error_page, invite_from, local_next, page_ctx};
use crate::security::{self, ClientIp, CsrfForm, MaybeCustomer, UserAgent};
use crate::AppState;

/// How long a WeChat login code waits for its message.
pub const CODE_TTL_MS: i64 = 5 * 60_000;
const MAX_CLOCK_SKEW_SECS: i64 = 300;

fn flow_key(code: &str) -> String {
    hash_token(&format!("wechat:{code}"))
}

#[derive(Deserialize, Default)]
pub struct PageQuery {
    link: Option<String>,
    next: Option<String>,
}

async fn enabled(state: &AppState) -> Result<methods::WechatSettings, Response> {
    match methods::load(&state.ctx).await {
        Ok(m) if m.wechat.enabled && !m.wechat.token.is_empty() => Ok(m.wechat),
        Ok(_) => Err(crate::templates::error_page(
            StatusCode::NOT_FOUND,
            "error.not_found",
        )),
        Err(e) => Err(domain_error_page(e)),
    }
}

pub async fn page(
    State(state): State<AppState>,
    jar: CookieJar,
    Extension(current): Extension<MaybeCustomer>,
    Query(q): Query<PageQuery>,
) -> Response {
    let wx = match enabled(&state).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (jar, csrf) = match &current.0 {
        Some(s) => (jar, s.csrf_token.clone()),
        None => security::pre_session_csrf(&state, jar),
    };
    let (jar, _) = security::browser_binding(&state, jar);
    let base = page_ctx(&state, "/account/wechat", current.0.as_ref(), &csrf).await;
    let ctx = context! {
        account_name => wx.account_name, qr_image_url => wx.qr_image_url,
        link => q.link.as_deref() == Some("1") && current.0.is_some(),
        next => local_next(q.next.as_deref()), code => (), ..base
    };
    (jar, state.templates.render("account/wechat.html", ctx)).into_response()
}

#[derive(Deserialize)]
pub struct StartForm {
    link: Option<String>,
    next: Option<String>,
}

#[derive(Serialize, Deserialize, Default)]
struct FlowData {
    next: String,
    invite: Option<String>,
    openid: Option<String>,
}

pub async fn start(
    State(state): State<AppState>,
    jar: CookieJar,
    Extension(current): Extension<MaybeCustomer>,
    CsrfForm(f): CsrfForm<StartForm>,
) -> Response {
    let wx = match enabled(&state).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let link_to = match (f.link.as_deref() == Some("1"), &current.0) {
        (true, Some(s)) => Some(s.customer.id),
        (true, None) => {
            return crate::templates::error_page(StatusCode::UNAUTHORIZED, "error.unauthenticated")
        }
        _ => None,
    };
    let (jar, binding) = security::browser_binding(&state, jar);
    let next = local_next(f.next.as_deref());
    let data = FlowData {
        next: next.clone(),
        invite: invite_from(&jar),
        openid: None,
    };
    let now = state.ctx.now();
    let mut code = String::new();
    for _ in 0..8 {
        let candidate = format!("{:06}", state.ctx.rng.u64() % 1_000_000);
        match store::insert_flow(
            state.ctx.db.write(),
            &flow_key(&candidate),
            "wechat",
            &hash_token(&binding),
            &serde_json::to_string(&data).unwrap_or_default(),
            link_to,
            now,
            now + CODE_TTL_MS,
        )
        .await
        {
            Ok(()) => {
                code = candidate;
                break;
            }
            // A code still waiting (or expired but not yet cleaned up) holds it: draw another.
            Err(StoreError::Conflict(_)) => {
                if let Ok(Some(old)) =
                    store::find_flow(state.ctx.db.read(), &flow_key(&candidate)).await
                {
                    if old.expires_at <= now {
                        let _ = store::take_flow(state.ctx.db.write(), &flow_key(&candidate)).await;
                    }
                }
            }
            Err(e) => return domain_error_page(e.into()),
        }
    }
    if code.is_empty() {
        return crate::templates::error_page(StatusCode::SERVICE_UNAVAILABLE, "error.unavailable");
    }
    let csrf = current
        .0
        .as_ref()
        .map(|s| s.csrf_token.clone())
        .unwrap_or_else(|| security::pre_session_csrf(&state, jar.clone()).1);
    let base = page_ctx(&state, "/account/wechat", current.0.as_ref(), &csrf).await;
    let ctx = context! {
        account_name => wx.account_name, qr_image_url => wx.qr_image_url, link => link_to.is_some(),
        next => next, code => code, minutes => CODE_TTL_MS / 60_000, ..base
    };
    (jar, state.templates.render("account/wechat.html", ctx)).into_response()
}

#[derive(Deserialize)]
pub struct PollForm {
    code: String,
}

#[derive(Serialize)]
struct PollAnswer {
    done: bool,
    expired: bool,
    redirect: Option<String>,
    error: Option<String>,
}

fn answer(headers: &HeaderMap, status: StatusCode, a: PollAnswer, fallback: Response) -> Response {
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        (status, Json(a)).into_response()
    } else {
        fallback
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn poll(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    UserAgent(ua): UserAgent,
    Extension(current): Extension<MaybeCustomer>,
    CsrfForm(f): CsrfForm<PollForm>,
) -> Response {
    let code = f.code.trim();
    let key = flow_key(code);
    let binding = security::existing_binding(&state, &jar).unwrap_or_default();
    let now = state.ctx.now();
    let flow = match store::find_flow(state.ctx.db.read(), &key).await {
        Ok(f) => f.filter(|f| f.kind == "wechat" && f.binding_hash == hash_token(&binding)),
        Err(e) => return domain_error_page(e.into()),
    };
    let Some(flow) = flow.filter(|f| f.expires_at > now || f.done_at.is_some()) else {
        let a = PollAnswer {
            done: false,
            expired: true,
            redirect: None,
            error: None,
        };
        let page = Redirect::to("/account/wechat?notice=expired").into_response();
        return answer(&headers, StatusCode::OK, a, page);
    };
    if flow.done_at.is_none() {
        let a = PollAnswer {
            done: false,
            expired: false,
            redirect: None,
            error: None,
        };
        let page = Redirect::to("/account/wechat").into_response();
        return answer(&headers, StatusCode::OK, a, page);
    }
    // Complete: take the flow so it signs in exactly once.
    let flow = match store::take_flow(state.ctx.db.write(), &key).await {
        Ok(Some(f)) => f,
        Ok(None) => {
            let a = PollAnswer {
                done: false,
                expired: true,
                redirect: None,
                error: None,
            };
            return answer(
                &headers,
                StatusCode::OK,
                a,
                Redirect::to("/account/wechat").into_response(),
            );
        }
        Err(e) => return domain_error_page(e.into()),
    };
    let data: FlowData = serde_json::from_str(&flow.data).unwrap_or_default();
    let Some(openid) = data.openid else {
        return crate::templates::error_page(StatusCode::BAD_REQUEST, "error.invalid");
    };
    let ext = ExternalIdentity {
        provider: "wechat".into(),
        subject: openid,
        verified_email: None,
        display: None,
    };
    let refuse = |key: &'static str, status: StatusCode| {
        let msg = crate::locale::current().t(key).to_string();
        let a = PollAnswer {
            done: false,
            expired: false,
            redirect: None,
            error: Some(msg),
        };
        answer(
            &headers,
            status,
            a,
            crate::templates::error_page(status, key),
        )
    };
    match super::complete_external(
        &state,
        jar,
        current.0,
        flow.customer_id,
        &ext,
        "wechat",
        data.invite.as_deref(),
        data.next,
        &ip.to_string(),
        ua.as_deref(),
    )
    .await
    {
        Ok((jar, to)) => {
            let a = PollAnswer {
                done: true,
                expired: false,
                redirect: Some(to.clone()),
                error: None,
            };
            let page = Redirect::to(&to).into_response();
            (jar, answer(&headers, StatusCode::OK, a, page)).into_response()
        }
        Err((status, key)) => refuse(key, status),
    }
}

#[derive(Deserialize)]
pub struct Signed {
    #[serde(default)]
    signature: String,
    #[serde(default)]
    timestamp: String,
    #[serde(default)]
    nonce: String,
    #[serde(default)]
    echostr: String,
}

fn plain(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

/// Why a callback is refused, if it is.
fn refused(state: &AppState, wx: &methods::WechatSettings, q: &Signed) -> Option<&'static str> {
    if !wx::verify(&wx.token, &q.timestamp, &q.nonce, &q.signature) {
        return Some("bad signature");
    }
    let ts: i64 = q.timestamp.parse().unwrap_or(0);
    if (state.ctx.now() / 1000 - ts).abs() > MAX_CLOCK_SKEW_SECS {
        return Some("stale timestamp");
    }
    None
}

/// GET `/wechat/callback`: WeChat's configuration check — echo `echostr` when the signature holds.
pub async fn verify_endpoint(State(state): State<AppState>, Query(q): Query<Signed>) -> Response {
    let wx = match enabled(&state).await {
        Ok(w) => w,
        Err(_) => return plain(StatusCode::NOT_FOUND, "not found"),
    };
    if !wx::verify(&wx.token, &q.timestamp, &q.nonce, &q.signature) {
        return plain(StatusCode::FORBIDDEN, "bad signature");
    }
    plain(StatusCode::OK, q.echostr)
}

fn xml(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Pull a 6-digit code out of a message like "123456" or "登录 123456".
fn code_in(content: &str) -> Option<String> {
    let chars: Vec<char> = content.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            if i - start == 6 {
                return Some(chars[start..i].iter().collect());
            }
        } else {
            i += 1;
        }
    }
    None
}

/// POST `/wechat/callback`: a message from WeChat.
pub async fn message(
    State(state): State<AppState>,
    Query(q): Query<Signed>,
    RawQuery(raw_query): RawQuery,
    body: Bytes,
) -> Response {
    let wx = match enabled(&state).await {
        Ok(w) => w,
        Err(_) => return plain(StatusCode::NOT_FOUND, "not found"),
    };
    if let Some(why) = refused(&state, &wx, &q) {
        return plain(StatusCode::FORBIDDEN, why);
    }
    if !wx.forward_url.is_empty() {
        if let Some(reply) = wx::forward(
            &state.http,
            &wx.forward_url,
            raw_query.as_deref().unwrap_or(""),
            &body,
        )
        .await
        {
            return (StatusCode::OK, reply).into_response();
        }
    }
    let Some(m) = wx::parse(&body) else {
        return plain(StatusCode::BAD_REQUEST, "not a message");
    };
    let now = state.ctx.now();
    let l = state.settings().await.default_locale;
    // One answer per message id: WeChat's retries (and replays) get the first reply again.
    let dedupe_key =
        (!m.msg_id.is_empty()).then(|| hash_token(&format!("wechat-msg:{}", m.msg_id)));
    if let Some(k) = &dedupe_key {
        match store::find_flow(state.ctx.db.read(), k).await {
            Ok(Some(f)) => return xml(f.data),
            Ok(None) => {}
            Err(e) => return domain_error_page(e.into()),
        }
    }
    let text = match (m.msg_type.as_str(), code_in(&m.content)) {
        ("text", Some(code)) => {
            let key = flow_key(&code);
            let completed = match store::find_flow(state.ctx.db.read(), &key).await {
                Ok(Some(f)) if f.kind == "wechat" && f.done_at.is_none() && f.expires_at > now => {
                    let mut data: FlowData = serde_json::from_str(&f.data).unwrap_or_default();
                    data.openid = Some(m.from_user.clone());
                    let d = serde_json::to_string(&data).unwrap_or_default();
                    match store::complete_flow(state.ctx.db.write(), &key, &d, now).await {
                        Ok(done) => done,
                        Err(e) => return domain_error_page(e.into()),
                    }
                }
                Ok(_) => false,
                Err(e) => return domain_error_page(e.into()),
            };
            if completed {
                l.t("wechat.reply_signed_in")
            } else {
                l.t("wechat.reply_code_invalid")
            }
        }
        ("event", _) if m.event == "subscribe" => l.t("wechat.reply_welcome"),
        _ => l.t("wechat.reply_help"),
    };
    let reply = wx::text_reply(&m.from_user, &m.to_user, now / 1000, text);
    if let Some(k) = dedupe_key {
        // Best effort: a concurrent retry may have stored it first.
        let _ = store::insert_flow(
            state.ctx.db.write(),
            &k,
            "wechat_msg",
            "",
            &reply,
            None,
            now,
            now + 3_600_000,
        )
        .await;
    }
    xml(reply)
}

#[cfg(test)]
mod tests {
    use super::code_in;

    #[test]
    fn codes_are_found_in_short_messages() {
        assert_eq!(code_in("123456").as_deref(), Some("123456"));
        assert_eq!(code_in("登录 123456").as_deref(), Some("123456"));
        assert_eq!(code_in("1234567"), None);
        assert_eq!(code_in("12345 6"), None);
        assert_eq!(code_in("hello"), None);
    }
}
