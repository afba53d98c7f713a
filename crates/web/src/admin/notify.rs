//! Admin → Notifications (owner): push channels (Server酱, PushDeer, Bark, WeCom, Feishu,
//! DingTalk, Telegram, signed webhook) with a "send test" button, which events reach which
//! channel, and quiet hours.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use yiren_core::notify;
use yiren_core::DomainError;
use yiren_providers::push::{self, PushMessage, PushTarget};

use super::pages::{domain_error_page, message, unprocessable, Empty};
use super::{base_ctx, notice};
use crate::security::{CsrfForm, OwnerSession};
use crate::AppState;

/// Channel kinds the form offers.
pub const KINDS: &[&str] = &[
    "serverchan",
    "pushdeer",
    "bark",
    "wecom",
    "feishu",
    "dingtalk",
    "telegram",
    "webhook",
];

async fn render(
    state: &AppState,
    s: &yiren_core::auth::Session,
    result: Option<(bool, String)>,
    error: Option<String>,
    notice_key: Option<&str>,
) -> Response {
    let n = match notify::load(&state.ctx).await {
        Ok(n) => n,
        Err(e) => return domain_error_page(e),
    };
    let routed: Vec<String> = n
        .routes
        .iter()
        .flat_map(|(ev, ids)| ids.iter().map(move |id| format!("{ev}:{id}")))
        .collect();
    let base = base_ctx(state, "/admin/notifications", Some(s), &s.csrf_token).await;
    let ctx = context! {
        channels => n.channels.iter().map(|c| context! { id => c.id.clone(), name => c.name.clone(), kind => c.kind.clone() }).collect::<Vec<_>>(),
        events => notify::EVENTS, kinds => KINDS, routed => routed,
        quiet_start => n.quiet_start, quiet_end => n.quiet_end, hours => (0..24).collect::<Vec<u32>>(),
        test_ok => result.as_ref().map(|r| r.0), test_message => result.map(|r| r.1),
        error => error, notice => notice(notice_key), ..base
    };
    state.templates.render("admin/notifications.html", ctx)
}

#[derive(Deserialize, Default)]
pub struct NoticeQuery {
    notice: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    OwnerSession(s): OwnerSession,
    Query(q): Query<NoticeQuery>,
) -> Response {
    render(&state, &s, None, None, q.notice.as_deref()).await
}

#[derive(Deserialize)]
pub struct ChannelForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    secret: String,
    #[serde(default)]
    chat_id: String,
    #[serde(default)]
    base: String,
}

fn opt(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

fn target_of(f: &ChannelForm) -> Result<PushTarget, &'static str> {
    let key = f.key.trim().to_string();
    if key.is_empty() {
        return Err("notify.key_required");
    }
    if opt(&f.base).is_some_and(|b| !(b.starts_with("https://") || b.starts_with("http://"))) {
        return Err("signin.url_invalid");
    }
    Ok(match f.kind.as_str() {
        "serverchan" => PushTarget::ServerChan {
            sendkey: key,
            base: opt(&f.base),
        },
        "pushdeer" => PushTarget::PushDeer {
            pushkey: key,
            base: opt(&f.base),
        },
        "bark" => PushTarget::Bark {
            device_key: key,
            base: opt(&f.base),
        },
        "wecom" => PushTarget::WeCom {
            key,
            base: opt(&f.base),
        },
        "feishu" if key.starts_with("https://") || key.starts_with("http://") => {
            PushTarget::Feishu {
                hook_url: key,
                secret: opt(&f.secret),
            }
        }
        "dingtalk" => PushTarget::DingTalk {
            access_token: key,
            secret: opt(&f.secret),
            base: opt(&f.base),
        },
        "telegram" if opt(&f.chat_id).is_some() => PushTarget::Telegram {
            token: key,
            chat_id: f.chat_id.trim().into(),
            base: opt(&f.base),
        },
        "webhook"
            if (key.starts_with("https://") || key.starts_with("http://"))
                && opt(&f.secret).is_some() =>
        {
            PushTarget::Webhook {
                url: key,
                secret: f.secret.trim().into(),
            }
        }
        _ => return Err("notify.channel_incomplete"),
    })
}

pub async fn add_channel(
    State(state): State<AppState>,
    OwnerSession(s): OwnerSession,
    CsrfForm(f): CsrfForm<ChannelForm>,
) -> Response {
    let target = match target_of(&f) {
        Ok(t) => serde_json::to_value(&t).unwrap_or_default(),
        Err(key) => return unprocessable(render(&state, &s, None, message(key), None).await),
    };
    match notify::add_channel(&state.ctx, &f.name, &f.kind, &target).await {
        Ok(()) => Redirect::to("/admin/notifications?notice=notify.channel_added").into_response(),
        Err(DomainError::Invalid { key, .. }) => {
            unprocessable(render(&state, &s, None, message(key), None).await)
        }
        Err(e) => domain_error_page(e),
    }
}

pub async fn delete_channel(
    State(state): State<AppState>,
    OwnerSession(_): OwnerSession,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    match notify::remove_channel(&state.ctx, &id).await {
        Ok(()) => Redirect::to("/admin/notifications?notice=settings.saved").into_response(),
        Err(e) => domain_error_page(e),
    }
}

/// Send a test push now and show what the service answered.
pub async fn test_channel(
    State(state): State<AppState>,
    OwnerSession(s): OwnerSession,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    let n = match notify::load(&state.ctx).await {
        Ok(n) => n,
        Err(e) => return domain_error_page(e),
    };
    let Some(channel) = n.channels.iter().find(|c| c.id == id) else {
        return domain_error_page(DomainError::NotFound);
    };
    let l = crate::locale::current();
    let outcome = match notify::target(&state.ctx, channel)
        .and_then(|v| serde_json::from_value::<PushTarget>(v).ok())
    {
        None => (false, l.t("notify.unreadable").to_string()),
        Some(t) => {
            let site = state.settings().await;
            let msg = PushMessage {
                title: l.tf("notify.test_title", &[("site", &site.name)]),
                body: l.t("notify.test_body").to_string(),
                url: None,
            };
            match push::send(&state.http, &t, &msg, state.ctx.now()).await {
                Ok(()) => (true, l.tf("notify.test_ok", &[("name", &channel.name)])),
                Err(e) => (
                    false,
                    l.tf(
                        "notify.test_failed",
                        &[("name", &channel.name), ("error", &e.to_string())],
                    ),
                ),
            }
        }
    };
    render(&state, &s, Some(outcome), None, None).await
}

pub async fn save_routes(
    State(state): State<AppState>,
    OwnerSession(s): OwnerSession,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Response {
    let routes: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k == "route")
        .filter_map(|(_, v)| v.split_once(':'))
        .map(|(ev, id)| (ev.to_string(), id.to_string()))
        .collect();
    let hour = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse::<u32>().ok())
            .unwrap_or(0)
    };
    match notify::set_routes(&state.ctx, &routes, hour("quiet_start"), hour("quiet_end")).await {
        Ok(()) => Redirect::to("/admin/notifications?notice=settings.saved").into_response(),
        Err(DomainError::Invalid { key, .. }) => {
            unprocessable(render(&state, &s, None, message(key), None).await)
        }
        Err(e) => domain_error_page(e),
    }
}
