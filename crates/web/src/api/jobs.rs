//! `/jobs`: the job queue, for monitoring and retrying dead jobs.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yiren_core::job;
use yiren_store::job::JobRow;

use super::extract::{ts, ts_opt, CountResponse, Principal};
use super::page::{base_url, with_link, PageQuery};
use crate::error::ApiError;
use crate::AppState;

/// A job in the outbox.
#[derive(Serialize, ToSchema)]
pub struct Job {
    pub id: i64,
    /// What the job does, e.g. `maintenance.cleanup`.
    pub kind: String,
    /// `queued`, `running`, `done` or `dead`.
    pub state: String,
    pub attempts: i64,
    pub max_attempts: i64,
    /// When it runs (next).
    pub run_at: String,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
}

impl From<JobRow> for Job {
    fn from(j: JobRow) -> Self {
        Job {
            id: j.id,
            kind: j.kind,
            state: j.state,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            run_at: ts(j.run_at),
            last_error: j.last_error,
            created_at: ts(j.created_at),
            updated_at: ts(j.updated_at),
            finished_at: ts_opt(j.finished_at),
        }
    }
}

/// `{"job": {...}}`
#[derive(Serialize, ToSchema)]
pub struct JobResponse {
    pub job: Job,
}

/// `{"jobs": [...]}`
#[derive(Serialize, ToSchema)]
pub struct JobListResponse {
    pub jobs: Vec<Job>,
}

/// Filters for the job list.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobFilter {
    /// Only jobs in this state: `queued`, `running`, `done` or `dead`.
    pub state: Option<String>,
}

#[derive(Deserialize, Serialize)]
struct Cursor {
    before: i64,
    state: Option<String>,
}

/// List jobs, newest first.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobFilter, PageQuery),
    responses((status = 200, body = JobListResponse, headers(("Link" = String, description = "rel=\"next\" cursor URL when more pages exist"))),
              (status = 422, body = super::extract::ErrorBody)))]
pub async fn list_jobs(
    State(state): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Query(f): Query<JobFilter>,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    p.require("jobs:read")?;
    let paging = q.parse::<Cursor>()?;
    let (before, filter) = match paging.cursor {
        Some(c) => (c.before, job::parse_state(c.state.as_deref())?),
        None => (i64::MAX, job::parse_state(f.state.as_deref())?),
    };
    let mut rows = job::list(&state.ctx, filter, before, paging.limit + 1).await?;
    let more = rows.len() as i64 > paging.limit;
    rows.truncate(paging.limit as usize);
    let next = more.then(|| Cursor {
        before: rows.last().map(|j| j.id).unwrap_or(0),
        state: filter.map(str::to_string),
    });
    let body = Json(JobListResponse {
        jobs: rows.into_iter().map(Job::from).collect(),
    });
    Ok(with_link(
        body,
        &base_url(state.config.public_url.as_deref(), &headers),
        "/api/v1/jobs",
        paging.limit,
        next,
    ))
}

/// Count jobs (optionally in one state).
#[utoipa::path(get, path = "/api/v1/jobs/count", tag = "jobs", params(JobFilter), responses((status = 200, body = CountResponse)))]
pub async fn count_jobs(
    State(state): State<AppState>,
    p: Principal,
    Query(f): Query<JobFilter>,
) -> Result<Json<CountResponse>, ApiError> {
    p.require("jobs:read")?;
    let filter = job::parse_state(f.state.as_deref())?;
    let counts = job::counts(&state.ctx).await?;
    let count = counts
        .iter()
        .filter(|(s, _)| filter.is_none_or(|f| f == *s))
        .map(|(_, n)| n)
        .sum();
    Ok(Json(CountResponse { count }))
}

/// Get one job.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = i64, Path)),
    responses((status = 200, body = JobResponse), (status = 404, body = super::extract::ErrorBody)))]
pub async fn get_job(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<Json<JobResponse>, ApiError> {
    p.require("jobs:read")?;
    Ok(Json(JobResponse {
        job: job::get(&state.ctx, id).await?.into(),
    }))
}

/// Put a dead job back in the queue.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "jobs", params(("id" = i64, Path)),
    responses((status = 200, body = JobResponse), (status = 404, body = super::extract::ErrorBody, description = "no dead job with this id")))]
pub async fn retry_job(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<Json<JobResponse>, ApiError> {
    p.require("jobs:write")?;
    Ok(Json(JobResponse {
        job: job::retry(&state.ctx, id).await?.into(),
    }))
}
