//! `/topics`, `/subscriptions`, `/broadcasts`: Reach over the API (scopes `reach:read`,
//! `reach:write`). A broadcast is created as a draft, then sent now or scheduled with
//! `POST /broadcasts/{id}/send`; its `counts` report where its copies stand.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use yiren_core::reach::{broadcast, topic, Channel};

use super::extract::{ts, ts_opt, ApiJson, Principal};
use crate::error::ApiError;
use crate::AppState;

fn channel(s: &str) -> Result<Channel, ApiError> {
    Channel::parse(s).ok_or_else(|| ApiError::invalid("reach.channels_invalid").field("channel"))
}

/// A topic customers subscribe to.
#[derive(Serialize, ToSchema)]
pub struct Topic {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<yiren_store::reach::TopicRow> for Topic {
    fn from(t: yiren_store::reach::TopicRow) -> Self {
        Topic {
            id: t.id,
            name: t.name,
            description: t.description,
            created_at: ts(t.created_at),
            updated_at: ts(t.updated_at),
        }
    }
}

/// `{"topics": [...]}`
#[derive(Serialize, ToSchema)]
pub struct TopicListResponse {
    pub topics: Vec<Topic>,
}

/// `{"topic": {...}}`
#[derive(Serialize, ToSchema)]
pub struct TopicResponse {
    pub topic: Topic,
}

/// Fields of a topic.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicInput {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// `{"topic": {"name", "description"}}`
#[derive(Deserialize, ToSchema)]
pub struct TopicRequest {
    pub topic: TopicInput,
}

/// List topics, by name.
#[utoipa::path(get, path = "/api/v1/topics", tag = "reach", responses((status = 200, body = TopicListResponse)))]
pub async fn list_topics(
    State(state): State<AppState>,
    p: Principal,
) -> Result<Json<TopicListResponse>, ApiError> {
    p.require("reach:read")?;
    Ok(Json(TopicListResponse {
        topics: topic::list(&state.ctx)
            .await?
            .into_iter()
            .map(Topic::from)
            .collect(),
    }))
}

/// Create a topic.
#[utoipa::path(post, path = "/api/v1/topics", tag = "reach", request_body = TopicRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 hours")),
    responses((status = 201, body = TopicResponse), (status = 409, body = super::extract::ErrorBody), (status = 422, body = super::extract::ErrorBody)))]
pub async fn create_topic(
    State(state): State<AppState>,
    p: Principal,
    body: ApiJson<TopicRequest>,
) -> Result<(StatusCode, Json<TopicResponse>), ApiError> {
    p.require("reach:write")?;
    // The body is read only once the token may do this (no 422 before the 403).
    let body = body.0?;
    let t = topic::create(&state.ctx, &body.topic.name, &body.topic.description).await?;
    Ok((StatusCode::CREATED, Json(TopicResponse { topic: t.into() })))
}

/// One topic.
#[utoipa::path(get, path = "/api/v1/topics/{id}", tag = "reach", params(("id" = i64, Path)),
    responses((status = 200, body = TopicResponse), (status = 404, body = super::extract::ErrorBody)))]
pub async fn get_topic(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<Json<TopicResponse>, ApiError> {
    p.require("reach:read")?;
    Ok(Json(TopicResponse {
        topic: topic::get(&state.ctx, id).await?.into(),
    }))
}

/// Rename or redescribe a topic.
#[utoipa::path(put, path = "/api/v1/topics/{id}", tag = "reach", params(("id" = i64, Path)), request_body = TopicRequest,
    responses((status = 200, body = TopicResponse), (status = 404, body = super::extract::ErrorBody), (status = 409, body = super::extract::ErrorBody), (status = 422, body = super::extract::ErrorBody)))]
pub async fn update_topic(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
    body: ApiJson<TopicRequest>,
) -> Result<Json<TopicResponse>, ApiError> {
    p.require("reach:write")?;
    // The body is read only once the token may do this (no 422 before the 403).
    let body = body.0?;
    let t = topic::update(&state.ctx, id, &body.topic.name, &body.topic.description).await?;
    Ok(Json(TopicResponse { topic: t.into() }))
}

/// Delete a topic (refused with 409 once broadcasts were sent under it).
#[utoipa::path(delete, path = "/api/v1/topics/{id}", tag = "reach", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = super::extract::ErrorBody), (status = 409, body = super::extract::ErrorBody)))]
pub async fn delete_topic(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    p.require("reach:write")?;
    topic::delete(&state.ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A customer's choice for one topic on one channel.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Subscription {
    pub customer_id: i64,
    pub topic_id: i64,
    /// `email` or `push`.
    pub channel: String,
    pub subscribed: bool,
    /// Who set it last (`account`, `preferences_link`, `unsubscribe`, `api`, …).
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub updated_at: String,
}

impl From<yiren_store::reach::SubscriptionRow> for Subscription {
    fn from(s: yiren_store::reach::SubscriptionRow) -> Self {
        Subscription {
            customer_id: s.customer_id,
            topic_id: s.topic_id,
            channel: s.channel,
            subscribed: s.subscribed == 1,
            source: s.source,
            updated_at: ts(s.updated_at),
        }
    }
}

/// `{"subscriptions": [...]}`
#[derive(Serialize, ToSchema)]
pub struct SubscriptionListResponse {
    pub subscriptions: Vec<Subscription>,
}

/// `{"subscription": {...}}`
#[derive(Serialize, ToSchema)]
pub struct SubscriptionResponse {
    pub subscription: Subscription,
}

/// Set a subscription.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionInput {
    pub customer_id: i64,
    pub topic_id: i64,
    pub channel: String,
    pub subscribed: bool,
}

/// `{"subscription": {"customer_id", "topic_id", "channel", "subscribed"}}`
#[derive(Deserialize, ToSchema)]
pub struct SubscriptionRequest {
    pub subscription: SubscriptionInput,
}

/// Filters for subscriptions.
#[derive(Deserialize, IntoParams)]
pub struct SubscriptionFilter {
    pub customer_id: Option<i64>,
    pub topic_id: Option<i64>,
    /// Page size (1–250, default 50).
    pub limit: Option<i64>,
    /// Continue after this row: `CUSTOMER_ID.TOPIC_ID.CHANNEL` of the last row of the previous
    /// page (rows come in that order).
    pub after: Option<String>,
}

/// List subscription states (opted in and opted out), by customer, topic and channel.
#[utoipa::path(get, path = "/api/v1/subscriptions", tag = "reach", params(SubscriptionFilter),
    responses((status = 200, body = SubscriptionListResponse)))]
pub async fn list_subscriptions(
    State(state): State<AppState>,
    p: Principal,
    Query(f): Query<SubscriptionFilter>,
) -> Result<Json<SubscriptionListResponse>, ApiError> {
    p.require("reach:read")?;
    let limit = f.limit.unwrap_or(50);
    if !(1..=250).contains(&limit) {
        return Err(ApiError::invalid("error.invalid").field("limit"));
    }
    let cursor: Option<(i64, i64, String)> = match f.after.as_deref() {
        None | Some("") => None,
        Some(a) => {
            let mut it = a.splitn(3, '.');
            let parsed = (|| {
                Some((
                    it.next()?.parse().ok()?,
                    it.next()?.parse().ok()?,
                    it.next()?.to_string(),
                ))
            })();
            Some(parsed.ok_or_else(|| ApiError::invalid("error.invalid").field("after"))?)
        }
    };
    let after = match &cursor {
        Some((c, t, ch)) => (*c, *t, ch.as_str()),
        None => (i64::MIN, i64::MIN, ""),
    };
    let rows = topic::subscriptions(&state.ctx, f.customer_id, f.topic_id, after, limit).await?;
    Ok(Json(SubscriptionListResponse {
        subscriptions: rows.into_iter().map(Subscription::from).collect(),
    }))
}

/// Subscribe or unsubscribe a customer (for example after a consent collected elsewhere).
#[utoipa::path(put, path = "/api/v1/subscriptions", tag = "reach", request_body = SubscriptionRequest,
    responses((status = 200, body = SubscriptionResponse), (status = 404, body = super::extract::ErrorBody), (status = 422, body = super::extract::ErrorBody)))]
pub async fn put_subscription(
    State(state): State<AppState>,
    p: Principal,
    body: ApiJson<SubscriptionRequest>,
) -> Result<Json<SubscriptionResponse>, ApiError> {
    p.require("reach:write")?;
    // The body is read only once the token may do this (no 422 before the 403).
    let body = body.0?;
    let s = body.subscription;
    let ch = channel(&s.channel)?;
    if ch == Channel::Wechat {
        return Err(ApiError::invalid("reach.channels_invalid").field("channel"));
    }
    let row = topic::set(
        &state.ctx,
        s.customer_id,
        s.topic_id,
        ch,
        s.subscribed,
        "api",
    )
    .await?;
    Ok(Json(SubscriptionResponse {
        subscription: row.into(),
    }))
}

/// Subject and Markdown body in one language.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct BroadcastText {
    pub subject: String,
    /// Markdown (sanitised when rendered; images allowed).
    pub body: String,
}

/// How many copies are in each state.
#[derive(Serialize, ToSchema)]
pub struct BroadcastCounts {
    pub queued: i64,
    pub sent: i64,
    pub failed: i64,
    pub suppressed: i64,
    pub cancelled: i64,
}

/// A broadcast.
#[derive(Serialize, ToSchema)]
pub struct Broadcast {
    pub id: i64,
    pub topic_id: i64,
    /// Only customers with this tag (none = everyone subscribed to the topic).
    pub tag: Option<String>,
    /// `email`, `push`.
    pub channels: Vec<String>,
    /// Language tag (`zh-CN`, `en`) → text.
    pub texts: BTreeMap<String, BroadcastText>,
    /// `draft`, `scheduled`, `sending`, `sent` (every recipient queued) or `cancelled`.
    pub status: String,
    pub scheduled_at: Option<String>,
    /// Copies queued so far.
    pub recipients: i64,
    pub counts: BroadcastCounts,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

async fn view(state: &AppState, b: broadcast::Broadcast) -> Result<Broadcast, ApiError> {
    let counts = broadcast::counts(&state.ctx, b.row.id).await?;
    let n = |k: &str| {
        counts
            .iter()
            .find(|(s, _)| *s == k)
            .map(|c| c.1)
            .unwrap_or(0)
    };
    Ok(Broadcast {
        id: b.row.id,
        topic_id: b.row.topic_id,
        tag: b.row.tag.clone(),
        channels: b.channels.iter().map(|c| c.as_str().to_string()).collect(),
        texts: b
            .texts
            .iter()
            .map(|(k, t)| {
                (
                    k.clone(),
                    BroadcastText {
                        subject: t.subject.clone(),
                        body: t.body.clone(),
                    },
                )
            })
            .collect(),
        status: b.row.status.clone(),
        scheduled_at: ts_opt(b.row.scheduled_at),
        recipients: b.row.recipients,
        counts: BroadcastCounts {
            queued: n("queued"),
            sent: n("sent"),
            failed: n("failed"),
            suppressed: n("suppressed"),
            cancelled: n("cancelled"),
        },
        created_at: ts(b.row.created_at),
        started_at: ts_opt(b.row.started_at),
        finished_at: ts_opt(b.row.finished_at),
    })
}

/// `{"broadcasts": [...]}`
#[derive(Serialize, ToSchema)]
pub struct BroadcastListResponse {
    pub broadcasts: Vec<Broadcast>,
}

/// `{"broadcast": {...}}`
#[derive(Serialize, ToSchema)]
pub struct BroadcastResponse {
    pub broadcast: Broadcast,
}

/// Fields of a draft.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BroadcastInput {
    pub topic_id: i64,
    #[serde(default)]
    pub tag: Option<String>,
    pub channels: Vec<String>,
    pub texts: BTreeMap<String, BroadcastText>,
}

/// `{"broadcast": {...}}`
#[derive(Deserialize, ToSchema)]
pub struct BroadcastRequest {
    pub broadcast: BroadcastInput,
}

fn draft(b: BroadcastInput) -> Result<broadcast::Draft, ApiError> {
    Ok(broadcast::Draft {
        topic_id: b.topic_id,
        tag: b.tag,
        channels: b
            .channels
            .iter()
            .map(|c| channel(c))
            .collect::<Result<_, _>>()?,
        texts: b
            .texts
            .into_iter()
            .map(|(k, t)| {
                (
                    k,
                    broadcast::Text {
                        subject: t.subject,
                        body: t.body,
                    },
                )
            })
            .collect(),
    })
}

/// List broadcasts, newest first (the 100 latest).
#[utoipa::path(get, path = "/api/v1/broadcasts", tag = "reach", responses((status = 200, body = BroadcastListResponse)))]
pub async fn list_broadcasts(
    State(state): State<AppState>,
    p: Principal,
) -> Result<Json<BroadcastListResponse>, ApiError> {
    p.require("reach:read")?;
    let mut out = Vec::new();
    for b in broadcast::list(&state.ctx, i64::MAX, 100).await? {
        out.push(view(&state, b).await?);
    }
    Ok(Json(BroadcastListResponse { broadcasts: out }))
}

/// Create a draft.
#[utoipa::path(post, path = "/api/v1/broadcasts", tag = "reach", request_body = BroadcastRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 hours")),
    responses((status = 201, body = BroadcastResponse), (status = 404, body = super::extract::ErrorBody), (status = 422, body = super::extract::ErrorBody)))]
pub async fn create_broadcast(
    State(state): State<AppState>,
    p: Principal,
    body: ApiJson<BroadcastRequest>,
) -> Result<(StatusCode, Json<BroadcastResponse>), ApiError> {
    p.require("reach:write")?;
    // The body is read only once the token may do this (no 422 before the 403).
    let body = body.0?;
    let b = broadcast::create(&state.ctx, &draft(body.broadcast)?).await?;
    Ok((
        StatusCode::CREATED,
        Json(BroadcastResponse {
            broadcast: view(&state, b).await?,
        }),
    ))
}

/// One broadcast, with its progress.
#[utoipa::path(get, path = "/api/v1/broadcasts/{id}", tag = "reach", params(("id" = i64, Path)),
    responses((status = 200, body = BroadcastResponse), (status = 404, body = super::extract::ErrorBody)))]
pub async fn get_broadcast(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<Json<BroadcastResponse>, ApiError> {
    p.require("reach:read")?;
    let b = broadcast::get(&state.ctx, id).await?;
    Ok(Json(BroadcastResponse {
        broadcast: view(&state, b).await?,
    }))
}

/// Change a draft (409 once it was scheduled or sent).
#[utoipa::path(put, path = "/api/v1/broadcasts/{id}", tag = "reach", params(("id" = i64, Path)), request_body = BroadcastRequest,
    responses((status = 200, body = BroadcastResponse), (status = 404, body = super::extract::ErrorBody), (status = 409, body = super::extract::ErrorBody), (status = 422, body = super::extract::ErrorBody)))]
pub async fn update_broadcast(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
    body: ApiJson<BroadcastRequest>,
) -> Result<Json<BroadcastResponse>, ApiError> {
    p.require("reach:write")?;
    // The body is read only once the token may do this (no 422 before the 403).
    let body = body.0?;
    let b = broadcast::update(&state.ctx, id, &draft(body.broadcast)?).await?;
    Ok(Json(BroadcastResponse {
        broadcast: view(&state, b).await?,
    }))
}

/// When to send.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// RFC 3339 time; absent or past = now.
    #[serde(default)]
    pub send_at: Option<String>,
}

/// Send a draft now or schedule it.
#[utoipa::path(post, path = "/api/v1/broadcasts/{id}/send", tag = "reach", params(("id" = i64, Path)), request_body = SendRequest,
    responses((status = 200, body = BroadcastResponse), (status = 404, body = super::extract::ErrorBody), (status = 409, body = super::extract::ErrorBody), (status = 422, body = super::extract::ErrorBody)))]
pub async fn send_broadcast(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
    body: ApiJson<SendRequest>,
) -> Result<Json<BroadcastResponse>, ApiError> {
    p.require("reach:write")?;
    // The body is read only once the token may do this (no 422 before the 403).
    let body = body.0?;
    let at = match body.send_at.as_deref() {
        None | Some("") => None,
        Some(t) => Some(
            yiren_core::clock::parse_rfc3339(t)
                .ok_or_else(|| ApiError::invalid("reach.when_invalid").field("send_at"))?,
        ),
    };
    let b = broadcast::send(&state.ctx, id, at).await?;
    Ok(Json(BroadcastResponse {
        broadcast: view(&state, b).await?,
    }))
}

/// Cancel: copies not yet sent never go.
#[utoipa::path(post, path = "/api/v1/broadcasts/{id}/cancel", tag = "reach", params(("id" = i64, Path)),
    responses((status = 200, body = BroadcastResponse), (status = 404, body = super::extract::ErrorBody), (status = 409, body = super::extract::ErrorBody)))]
pub async fn cancel_broadcast(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<Json<BroadcastResponse>, ApiError> {
    p.require("reach:write")?;
    let b = broadcast::cancel(&state.ctx, id).await?;
    Ok(Json(BroadcastResponse {
        broadcast: view(&state, b).await?,
    }))
}
