//! `Idempotency-Key` on POST: the first response (if not a 5xx) is stored for 24 hours, per token
//! and key, and replayed with `Idempotent-Replayed: true`; the same key with a different request
//! (method, path, query or body) is 422; a key whose first request is still running is 409.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use yiren_store::idempotency as store;

use super::extract::Principal;
use crate::error::ApiError;
use crate::AppState;

const TTL_MS: i64 = 24 * 3_600_000;
/// Response headers kept with a stored response.
const KEPT: [header::HeaderName; 2] = [header::CONTENT_TYPE, header::LOCATION];

/// The middleware (runs after authentication).
pub async fn idempotency(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(key) = req.headers().get("idempotency-key").cloned() else {
        return next.run(req).await;
    };
    let key = match key.to_str() {
        Ok(k)
            if !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| (0x21..0x7f).contains(&b)) =>
        {
            k.to_string()
        }
        _ => return ApiError::invalid("error.idempotency_key_invalid").into_response(),
    };
    let Some(principal) = req.extensions().get::<Principal>().cloned() else {
        return ApiError::bad_token().into_response();
    };
    let token_id = principal.token.id;
    let (parts, body) = req.into_parts();
    let limit = crate::body_limit(&state, parts.uri.path());
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "error.payload_too_large",
            )
            .into_response()
        }
    };
    let mut h = Sha256::new();
    h.update(parts.method.as_str());
    h.update([0]);
    h.update(parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or(""));
    h.update([0]);
    h.update(&bytes);
    let request_hash = hex::encode(h.finalize());
    let ctx = &state.ctx;
    let db = &ctx.db;

    for _ in 0..2 {
        let now = ctx.now();
        match store::claim(db.write(), token_id, &key, &request_hash, now).await {
            Ok(true) => {
                let req = Request::from_parts(parts, Body::from(bytes));
                let resp = next.run(req).await;
                return store_response(&state, token_id, &key, resp).await;
            }
            Ok(false) => {}
            Err(e) => return ApiError::from(e).into_response(),
        }
        let existing = match store::find(db.read(), token_id, &key).await {
            Ok(Some(r)) => r,
            Ok(None) => continue, // released in between: claim again
            Err(e) => return ApiError::from(e).into_response(),
        };
        if existing.created_at < now - TTL_MS {
            if let Err(e) = store::release(db.write(), token_id, &key).await {
                return ApiError::from(e).into_response();
            }
            continue;
        }
        if existing.request_hash != request_hash {
            return ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "error.idempotency_mismatch",
            )
            .into_response();
        }
        if existing.status == 0 {
            return ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_in_progress",
                "error.idempotency_in_progress",
            )
            .into_response();
        }
        return replay(&existing);
    }
    ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_in_progress",
        "error.idempotency_in_progress",
    )
    .into_response()
}

async fn store_response(state: &AppState, token_id: i64, key: &str, resp: Response) -> Response {
    let db = &state.ctx.db;
    let status = resp.status();
    if status.is_server_error() {
        let _ = store::release(db.write(), token_id, key).await;
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, 4 << 20).await {
        Ok(b) => b,
        Err(_) => {
            let _ = store::release(db.write(), token_id, key).await;
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let headers: Vec<(String, String)> = KEPT
        .iter()
        .filter_map(|n| {
            parts
                .headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(|v| (n.as_str().to_string(), v.to_string()))
        })
        .collect();
    let headers_json = serde_json::to_string(&headers).unwrap_or_else(|_| "[]".into());
    let body_text = String::from_utf8_lossy(&bytes).into_owned();
    if let Err(e) = store::complete(
        db.write(),
        token_id,
        key,
        status.as_u16() as i64,
        &headers_json,
        &body_text,
    )
    .await
    {
        tracing::error!(error = %e, "could not store idempotent response");
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn replay(row: &store::IdempotencyRow) -> Response {
    let status = StatusCode::from_u16(row.status as u16).unwrap_or(StatusCode::OK);
    let mut resp = (status, row.body.clone()).into_response();
    let headers: Vec<(String, String)> = serde_json::from_str(&row.headers).unwrap_or_default();
    for (k, v) in headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::try_from(k.as_str()),
            HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().insert(name, value);
        }
    }
    resp.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    resp
}
