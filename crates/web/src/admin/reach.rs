//! Admin pages of Reach: the delivery log (filter by recipient, status, channel; resend) with the
//! per-channel sending rates, the suppression list (mark, import, lift), topics, and broadcasts
//! (write in Markdown, pick topic/tag/channels, preview per channel and language, send now or
//! schedule, live progress and the final report).

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{context, Value};
use serde::Deserialize;
use yiren_core::reach::{self, broadcast, suppress, topic, Channel};
use yiren_core::{DomainError, Locale};
use yiren_store::reach::MessageFilter;

use super::pages::{domain_error_page, message, unprocessable, Empty};
use super::{base_ctx, notice};
use crate::security::{AdminSession, CsrfForm, OwnerSession};
use crate::AppState;

const PAGE: i64 = 50;

/// A refusal to show on the form (Ok), or an error for the error page (Err).
fn refused(e: DomainError) -> Result<Option<String>, DomainError> {
    match e {
        DomainError::Invalid { key, .. } | DomainError::Conflict { key } => Ok(message(key)),
        e => Err(e),
    }
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

// ---------------------------------------------------------------------------------------------
// Delivery log

#[derive(Deserialize, Default)]
pub struct LogQuery {
    recipient: Option<String>,
    status: Option<String>,
    channel: Option<String>,
    before: Option<i64>,
    notice: Option<String>,
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn message_view(m: &yiren_store::reach::MessageRow) -> Value {
    context! {
        id => m.id.to_string(), cause => m.cause.clone(), channel => m.channel.clone(),
        recipient => m.recipient.clone(), customer_id => m.customer_id.map(|c| c.to_string()),
        broadcast_id => m.broadcast_id.map(|c| c.to_string()), locale => m.locale.clone(),
        summary => m.summary.clone(), status => m.status.clone(), attempts => m.attempts,
        last_error => m.last_error.clone(), created_at => m.created_at, updated_at => m.updated_at,
        sent_at => m.sent_at,
    }
}

async fn render_log(
    state: &AppState,
    s: &yiren_core::auth::Session,
    q: &LogQuery,
    error: Option<String>,
) -> Response {
    let recipient = nonempty(&q.recipient).map(str::to_lowercase);
    let f = MessageFilter {
        recipient: recipient.as_deref(),
        status: nonempty(&q.status),
        channel: nonempty(&q.channel),
        ..Default::default()
    };
    let wechat = match reach::load_wechat(&state.ctx).await {
        Ok(w) => w,
        Err(e) => return domain_error_page(e),
    };
    let (rows, settings) = match (
        reach::log(&state.ctx, &f, q.before.unwrap_or(i64::MAX), PAGE + 1).await,
        reach::load_settings(&state.ctx).await,
    ) {
        (Ok(r), Ok(st)) => (r, st),
        (Err(DomainError::Invalid { .. }), _) => {
            return domain_error_page(DomainError::invalid("status", "error.invalid"))
        }
        (Err(e), _) | (_, Err(e)) => return domain_error_page(e),
    };
    let older = (rows.len() as i64 > PAGE).then(|| {
        let qs = serde_urlencoded::to_string([
            ("recipient", q.recipient.clone().unwrap_or_default()),
            ("status", q.status.clone().unwrap_or_default()),
            ("channel", q.channel.clone().unwrap_or_default()),
            ("before", rows[PAGE as usize - 1].id.to_string()),
        ])
        .unwrap_or_default();
        format!("/admin/messages?{qs}")
    });
    let rows: Vec<Value> = rows.iter().take(PAGE as usize).map(message_view).collect();
    let rates: Vec<Value> = Channel::ALL
        .iter()
        .map(|c| context! { channel => c.as_str(), rate => settings.rate_per_minute.get(c.as_str()).copied().unwrap_or(0) })
        .collect();
    let base = base_ctx(state, "/admin/messages", Some(s), &s.csrf_token).await;
    let ctx = context! {
        messages => rows, older => older, recipient => q.recipient.clone().unwrap_or_default(),
        filter_status => q.status.clone().unwrap_or_default(), filter_channel => q.channel.clone().unwrap_or_default(),
        statuses => reach::STATUSES, channels => Channel::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        rates => rates, error => error, notice => notice(q.notice.as_deref()),
        wechat => context! {
            appid => wechat.appid.clone(), has_secret => wechat.secret_sealed.is_some(),
            template_id => wechat.template_id.clone(), title_field => wechat.title_field.clone(),
            body_field => wechat.body_field.clone(), api_base => wechat.api_base.clone(),
            configured => wechat.configured(),
        },
        ..base
    };
    state.templates.render("admin/messages.html", ctx)
}

pub async fn log_page(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Query(q): Query<LogQuery>,
) -> Response {
    render_log(&state, &s, &q, None).await
}

pub async fn message_page(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    Query(q): Query<LogQuery>,
) -> Response {
    let m = match reach::get(&state.ctx, id).await {
        Ok(m) => m,
        Err(e) => return domain_error_page(e),
    };
    let base = base_ctx(&state, "/admin/messages", Some(&s), &s.csrf_token).await;
    let ctx = context! { m => message_view(&m), notice => notice(q.notice.as_deref()), ..base };
    state.templates.render("admin/message.html", ctx)
}

pub async fn resend(
    State(state): State<AppState>,
    AdminSession(_): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    match reach::resend(&state.ctx, id).await {
        Ok(_) => Redirect::to(&format!("/admin/messages/{id}?notice=reach.resent")).into_response(),
        Err(e) => domain_error_page(e),
    }
}

pub async fn save_rates(
    State(state): State<AppState>,
    OwnerSession(s): OwnerSession,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Response {
    for c in Channel::ALL {
        let raw = field(&pairs, &format!("rate_{}", c.as_str())).trim();
        let n = match raw {
            "" => 0,
            v => match v.parse::<u32>() {
                Ok(n) => n,
                Err(_) => {
                    return unprocessable(
                        render_log(
                            &state,
                            &s,
                            &LogQuery::default(),
                            message("reach.rate_invalid"),
                        )
                        .await,
                    )
                }
            },
        };
        if let Err(e) = reach::set_rate(&state.ctx, c, n).await {
            return match refused(e) {
                Ok(m) => unprocessable(render_log(&state, &s, &LogQuery::default(), m).await),
                Err(e) => domain_error_page(e),
            };
        }
    }
    Redirect::to("/admin/messages?notice=settings.saved").into_response()
}

#[derive(Deserialize)]
pub struct WechatForm {
    #[serde(default)]
    appid: String,
    #[serde(default)]
    secret: String,
    #[serde(default)]
    template_id: String,
    #[serde(default)]
    title_field: String,
    #[serde(default)]
    body_field: String,
    #[serde(default)]
    api_base: String,
}

pub async fn save_wechat(
    State(state): State<AppState>,
    OwnerSession(s): OwnerSession,
    CsrfForm(f): CsrfForm<WechatForm>,
) -> Response {
    let secret = Some(f.secret.as_str()).filter(|v| !v.is_empty());
    match reach::save_wechat(
        &state.ctx,
        &f.appid,
        secret,
        &f.template_id,
        &f.title_field,
        &f.body_field,
        &f.api_base,
    )
    .await
    {
        Ok(_) => Redirect::to("/admin/messages?notice=settings.saved").into_response(),
        Err(e) => match refused(e) {
            Ok(m) => unprocessable(render_log(&state, &s, &LogQuery::default(), m).await),
            Err(e) => domain_error_page(e),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Suppression list

async fn render_suppressions(
    state: &AppState,
    s: &yiren_core::auth::Session,
    error: Option<String>,
    notice_text: Option<String>,
) -> Response {
    let (rows, total) = match (
        suppress::list(&state.ctx, 500).await,
        yiren_store::reach::count_suppressions(state.ctx.db.read()).await,
    ) {
        (Ok(r), Ok(t)) => (r, t),
        (Err(e), _) => return domain_error_page(e),
        (_, Err(e)) => return domain_error_page(e.into()),
    };
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| context! { hash => r.hash.clone(), hint => r.hint.clone(), reason => r.reason.clone(), created_at => r.created_at })
        .collect();
    let base = base_ctx(state, "/admin/suppressions", Some(s), &s.csrf_token).await;
    let ctx = context! { rows => rows, total => total, reasons => suppress::REASONS, error => error, notice => notice_text, ..base };
    state.templates.render("admin/suppressions.html", ctx)
}

pub async fn suppressions_page(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Query(q): Query<LogQuery>,
) -> Response {
    let n = notice(q.notice.as_deref()).map(str::to_string);
    render_suppressions(&state, &s, None, n).await
}

#[derive(Deserialize)]
pub struct SuppressForm {
    #[serde(default)]
    list: String,
    #[serde(default)]
    reason: String,
}

pub async fn add_suppressions(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    CsrfForm(f): CsrfForm<SuppressForm>,
) -> Response {
    match suppress::import(&state.ctx, &f.list, &f.reason).await {
        Ok(r) if r.added + r.already == 0 => unprocessable(
            render_suppressions(&state, &s, message("reach.suppress_empty"), None).await,
        ),
        Ok(r) => {
            let l = crate::locale::current();
            let lines = r
                .invalid
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let mut text = l.tf(
                "reach.suppress_report",
                &[
                    ("added", &r.added.to_string()),
                    ("already", &r.already.to_string()),
                ],
            );
            if !lines.is_empty() {
                text.push(' ');
                text.push_str(&l.tf("reach.suppress_invalid_lines", &[("lines", &lines)]));
            }
            render_suppressions(&state, &s, None, Some(text)).await
        }
        Err(e) => match refused(e) {
            Ok(m) => unprocessable(render_suppressions(&state, &s, m, None).await),
            Err(e) => domain_error_page(e),
        },
    }
}

pub async fn delete_suppression(
    State(state): State<AppState>,
    AdminSession(_): AdminSession,
    Path(hash): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    match suppress::remove(&state.ctx, &hash).await {
        Ok(()) => Redirect::to("/admin/suppressions?notice=reach.unsuppressed").into_response(),
        Err(e) => domain_error_page(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Topics

async fn render_topics(
    state: &AppState,
    s: &yiren_core::auth::Session,
    error: Option<String>,
    notice_key: Option<&str>,
) -> Response {
    let (topics, counts) = match (
        topic::list(&state.ctx).await,
        yiren_store::reach::subscriber_counts(state.ctx.db.read()).await,
    ) {
        (Ok(t), Ok(c)) => (t, c),
        (Err(e), _) => return domain_error_page(e),
        (_, Err(e)) => return domain_error_page(e.into()),
    };
    let rows: Vec<Value> = topics
        .iter()
        .map(|t| {
            let n = |ch: &str| {
                counts
                    .iter()
                    .find(|(id, c, _)| *id == t.id && c == ch)
                    .map(|x| x.2)
                    .unwrap_or(0)
            };
            context! { id => t.id.to_string(), name => t.name.clone(), description => t.description.clone(),
                       email => n("email"), push => n("push") }
        })
        .collect();
    let base = base_ctx(state, "/admin/topics", Some(s), &s.csrf_token).await;
    let ctx = context! { topics => rows, error => error, notice => notice(notice_key), ..base };
    state.templates.render("admin/topics.html", ctx)
}

pub async fn topics_page(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Query(q): Query<LogQuery>,
) -> Response {
    render_topics(&state, &s, None, q.notice.as_deref()).await
}

#[derive(Deserialize)]
pub struct TopicForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

pub async fn create_topic(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    CsrfForm(f): CsrfForm<TopicForm>,
) -> Response {
    match topic::create(&state.ctx, &f.name, &f.description).await {
        Ok(_) => Redirect::to("/admin/topics?notice=settings.saved").into_response(),
        Err(e) => match refused(e) {
            Ok(m) => unprocessable(render_topics(&state, &s, m, None).await),
            Err(e) => domain_error_page(e),
        },
    }
}

pub async fn update_topic(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<TopicForm>,
) -> Response {
    match topic::update(&state.ctx, id, &f.name, &f.description).await {
        Ok(_) => Redirect::to("/admin/topics?notice=settings.saved").into_response(),
        Err(e) => match refused(e) {
            Ok(m) => unprocessable(render_topics(&state, &s, m, None).await),
            Err(e) => domain_error_page(e),
        },
    }
}

pub async fn delete_topic(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    match topic::delete(&state.ctx, id).await {
        Ok(()) => Redirect::to("/admin/topics?notice=settings.saved").into_response(),
        Err(e) => match refused(e) {
            Ok(m) => unprocessable(render_topics(&state, &s, m, None).await),
            Err(e) => domain_error_page(e),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Broadcasts

fn broadcast_view(b: &broadcast::Broadcast, topics: &[yiren_store::reach::TopicRow]) -> Value {
    let topic_name = topics
        .iter()
        .find(|t| t.id == b.row.topic_id)
        .map(|t| t.name.clone())
        .unwrap_or_default();
    context! {
        id => b.row.id.to_string(), topic_id => b.row.topic_id.to_string(), topic => topic_name,
        tag => b.row.tag.clone().unwrap_or_default(), status => b.row.status.clone(),
        channels => b.channels.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        texts => Value::from_serialize(&b.texts), scheduled_at => b.row.scheduled_at,
        recipients => b.row.recipients, created_at => b.row.created_at,
        started_at => b.row.started_at, finished_at => b.row.finished_at,
        subject => b.texts.values().next().map(|t| t.subject.clone()).unwrap_or_default(),
    }
}

pub async fn broadcasts_page(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Query(q): Query<LogQuery>,
) -> Response {
    let (list, topics) = match (
        broadcast::list(&state.ctx, q.before.unwrap_or(i64::MAX), 100).await,
        topic::list(&state.ctx).await,
    ) {
        (Ok(l), Ok(t)) => (l, t),
        (Err(e), _) | (_, Err(e)) => return domain_error_page(e),
    };
    let rows: Vec<Value> = list.iter().map(|b| broadcast_view(b, &topics)).collect();
    let base = base_ctx(&state, "/admin/broadcasts", Some(&s), &s.csrf_token).await;
    let ctx = context! { broadcasts => rows, notice => notice(q.notice.as_deref()), ..base };
    state.templates.render("admin/broadcasts.html", ctx)
}

async fn render_editor(
    state: &AppState,
    s: &yiren_core::auth::Session,
    b: Option<&broadcast::Broadcast>,
    draft: Option<&broadcast::Draft>,
    preview: &PreviewQuery,
    error: Option<String>,
) -> Response {
    let ctx_ = &state.ctx;
    let (topics, tags) = match (
        topic::list(ctx_).await,
        yiren_store::reach::tag_counts(ctx_.db.read()).await,
    ) {
        (Ok(t), Ok(g)) => (t, g),
        (Err(e), _) => return domain_error_page(e),
        (_, Err(e)) => return domain_error_page(e.into()),
    };
    let site = state.settings().await;
    let view = b.map(|b| broadcast_view(b, &topics));
    let (counts, preview_ctx) = match b {
        Some(b) => {
            let counts = match broadcast::counts(ctx_, b.row.id).await {
                Ok(c) => c,
                Err(e) => return domain_error_page(e),
            };
            let l = preview
                .lang
                .as_deref()
                .and_then(Locale::parse)
                .unwrap_or(site.default_locale);
            let channel = preview
                .channel
                .as_deref()
                .and_then(Channel::parse)
                .unwrap_or(Channel::Email);
            let text = b.text_for(l, site.default_locale);
            let p = match channel {
                Channel::Push => context! {
                    channel => "push", lang => l.tag(), subject => text.subject,
                    text => broadcast::markdown_text(&text.body),
                },
                _ => context! {
                    channel => "email", lang => l.tag(), subject => text.subject,
                    html => broadcast::markdown_html(&text.body), text => text.body,
                },
            };
            (
                counts
                    .into_iter()
                    .map(|(k, v)| context! { status => k, count => v })
                    .collect::<Vec<_>>(),
                Some(p),
            )
        }
        None => (Vec::new(), None),
    };
    let form = draft.map(|d| {
        context! {
            topic_id => d.topic_id.to_string(), tag => d.tag.clone().unwrap_or_default(),
            channels => d.channels.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
            texts => Value::from_serialize(&d.texts),
        }
    });
    let live = b.is_some_and(|b| b.row.status == "sending") || counts_pending(&counts);
    let base = base_ctx(state, "/admin/broadcasts", Some(s), &s.csrf_token).await;
    let ctx = context! {
        b => view, form => form, counts => counts, preview => preview_ctx, live => live,
        topics => topics.iter().map(|t| context! { id => t.id.to_string(), name => t.name.clone() }).collect::<Vec<_>>(),
        tags => tags.iter().map(|(t, n)| context! { tag => t.clone(), count => n }).collect::<Vec<_>>(),
        locales => Locale::ALL.iter().map(|l| context! { tag => l.tag(), name => l.native_name() }).collect::<Vec<_>>(),
        error => error, notice => notice(preview.notice.as_deref()), ..base
    };
    state.templates.render("admin/broadcast.html", ctx)
}

fn counts_pending(counts: &[Value]) -> bool {
    counts.iter().any(|c| {
        let st = c
            .get_attr("status")
            .map(|v| v.to_string())
            .unwrap_or_default();
        let n = c
            .get_attr("count")
            .ok()
            .and_then(|v| i64::try_from(v).ok())
            .unwrap_or(0);
        st == "queued" && n > 0
    })
}

#[derive(Deserialize, Default)]
pub struct PreviewQuery {
    lang: Option<String>,
    channel: Option<String>,
    notice: Option<String>,
}

pub async fn new_broadcast(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
) -> Response {
    render_editor(&state, &s, None, None, &PreviewQuery::default(), None).await
}

pub async fn broadcast_page(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    Query(q): Query<PreviewQuery>,
) -> Response {
    match broadcast::get(&state.ctx, id).await {
        Ok(b) => render_editor(&state, &s, Some(&b), None, &q, None).await,
        Err(e) => domain_error_page(e),
    }
}

fn draft_of(pairs: &[(String, String)]) -> broadcast::Draft {
    let mut texts = std::collections::BTreeMap::new();
    for l in Locale::ALL {
        let subject = field(pairs, &format!("subject_{}", l.tag()));
        let body = field(pairs, &format!("body_{}", l.tag()));
        if !subject.trim().is_empty() || !body.trim().is_empty() {
            texts.insert(
                l.tag().to_string(),
                broadcast::Text {
                    subject: subject.to_string(),
                    body: body.to_string(),
                },
            );
        }
    }
    broadcast::Draft {
        topic_id: field(pairs, "topic_id").parse().unwrap_or(0),
        tag: Some(field(pairs, "tag").to_string()),
        channels: pairs
            .iter()
            .filter(|(k, _)| k == "channel")
            .filter_map(|(_, v)| Channel::parse(v))
            .collect(),
        texts,
    }
}

pub async fn create_broadcast(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Response {
    let d = draft_of(&pairs);
    match broadcast::create(&state.ctx, &d).await {
        Ok(b) => Redirect::to(&format!(
            "/admin/broadcasts/{}?notice=settings.saved",
            b.row.id
        ))
        .into_response(),
        Err(DomainError::NotFound) => unprocessable(
            render_editor(
                &state,
                &s,
                None,
                Some(&d),
                &PreviewQuery::default(),
                message("reach.topic_required"),
            )
            .await,
        ),
        Err(e) => match refused(e) {
            Ok(m) => unprocessable(
                render_editor(&state, &s, None, Some(&d), &PreviewQuery::default(), m).await,
            ),
            Err(e) => domain_error_page(e),
        },
    }
}

pub async fn update_broadcast(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Response {
    let d = draft_of(&pairs);
    match broadcast::update(&state.ctx, id, &d).await {
        Ok(_) => {
            Redirect::to(&format!("/admin/broadcasts/{id}?notice=settings.saved")).into_response()
        }
        Err(e) => {
            let b = match broadcast::get(&state.ctx, id).await {
                Ok(b) => b,
                Err(e) => return domain_error_page(e),
            };
            match refused(e) {
                Ok(m) => unprocessable(
                    render_editor(&state, &s, Some(&b), Some(&d), &PreviewQuery::default(), m)
                        .await,
                ),
                Err(e) => domain_error_page(e),
            }
        }
    }
}

pub async fn send_broadcast(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Response {
    let site = state.settings().await;
    let b = match broadcast::get(&state.ctx, id).await {
        Ok(b) => b,
        Err(e) => return domain_error_page(e),
    };
    let Ok(at) = broadcast::parse_local(field(&pairs, "at"), &site.time_zone) else {
        return unprocessable(
            render_editor(
                &state,
                &s,
                Some(&b),
                None,
                &PreviewQuery::default(),
                message("reach.when_invalid"),
            )
            .await,
        );
    };
    match broadcast::send(&state.ctx, id, at).await {
        Ok(_) => {
            Redirect::to(&format!("/admin/broadcasts/{id}?notice=reach.sending")).into_response()
        }
        Err(e) => match refused(e) {
            Ok(m) => unprocessable(
                render_editor(&state, &s, Some(&b), None, &PreviewQuery::default(), m).await,
            ),
            Err(e) => domain_error_page(e),
        },
    }
}

pub async fn cancel_broadcast(
    State(state): State<AppState>,
    AdminSession(_): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    match broadcast::cancel(&state.ctx, id).await {
        Ok(_) => {
            Redirect::to(&format!("/admin/broadcasts/{id}?notice=reach.cancelled")).into_response()
        }
        Err(e) => domain_error_page(e),
    }
}

pub async fn delete_broadcast(
    State(state): State<AppState>,
    AdminSession(_): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    match broadcast::delete(&state.ctx, id).await {
        Ok(()) => Redirect::to("/admin/broadcasts?notice=settings.saved").into_response(),
        Err(e) => domain_error_page(e),
    }
}
