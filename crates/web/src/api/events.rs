//! `/events`: the event log (scope `events:read`) — what webhooks will deliver, readable now by
//! polling: `GET /events?since_id=<last id seen>` returns what happened after it, oldest first.

use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use yiren_core::event;

use super::extract::{ts, ErrorBody, Principal};
use crate::error::ApiError;
use crate::AppState;

/// One event.
#[derive(Serialize, ToSchema)]
pub struct Event {
    pub id: i64,
    /// `products/create`, `products/update`, `products/delete`, `inventory_levels/update`.
    pub topic: String,
    /// The product (or, for inventory, the variant) it is about.
    pub subject_id: i64,
    /// What the topic carries (see docs/catalog.md).
    pub payload: serde_json::Value,
    pub created_at: String,
}

/// `{"events": [...]}`
#[derive(Serialize, ToSchema)]
pub struct EventListResponse {
    pub events: Vec<Event>,
}

/// Which events.
#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only events after this id (default 0: from the start).
    pub since_id: Option<i64>,
    /// Only this topic.
    pub topic: Option<String>,
    /// At most this many (1–250, default 50).
    pub limit: Option<i64>,
}

/// Events after `since_id`, oldest first.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventQuery),
    responses((status = 200, body = EventListResponse), (status = 422, body = ErrorBody)))]
pub async fn list_events(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<EventQuery>,
) -> Result<Json<EventListResponse>, ApiError> {
    p.require("events:read")?;
    let topic = match q.topic.as_deref() {
        None | Some("") => None,
        Some(t) => Some(
            *event::TOPICS
                .iter()
                .find(|k| **k == t)
                .ok_or_else(|| ApiError::invalid("error.invalid").field("topic"))?,
        ),
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=250).contains(&limit) {
        return Err(ApiError::invalid("error.invalid").field("limit"));
    }
    let rows = event::after(&state.ctx, q.since_id.unwrap_or(0), topic, limit).await?;
    Ok(Json(EventListResponse {
        events: rows
            .into_iter()
            .map(|r| Event {
                id: r.id,
                topic: r.topic,
                subject_id: r.subject_id,
                payload: serde_json::from_str(&r.payload).unwrap_or(serde_json::Value::Null),
                created_at: ts(r.created_at),
            })
            .collect(),
    }))
}
