//! Errors on the wire. Policy (as crates.io's errors module): domain errors map to a status here
//! and nowhere else — NotFound → 404, Invalid → 422, Conflict → 409, Forbidden → 403,
//! Unauthenticated → 401, Throttled → 429 with Retry-After, store Unavailable → 503, anything else
//! → 500. 4xx bodies carry a code and a message in the caller's language; 5xx bodies are opaque
//! with the request id, and the whole cause chain goes to the log.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use yiren_core::{DomainError, Locale};
use yiren_store::StoreError;

/// An error answered as `{"error":{"code","message"}}`.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine code.
    pub code: &'static str,
    /// Catalog key of the message.
    pub key: &'static str,
    /// Placeholder values for the message.
    pub args: Vec<(&'static str, String)>,
    /// Field to blame, if any.
    pub field: Option<&'static str>,
    /// Seconds for Retry-After.
    pub retry_after: Option<i64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, key: &'static str) -> Self {
        ApiError {
            status,
            code,
            key,
            args: vec![],
            field: None,
            retry_after: None,
        }
    }
    /// Add a placeholder value.
    pub fn arg(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.args.push((k, v.into()));
        self
    }
    /// 404.
    pub fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "error.not_found")
    }
    /// 401 for a missing or bad token.
    pub fn bad_token() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "error.token_invalid",
        )
    }
    /// 403 for a missing scope.
    pub fn missing_scope(scope: &str) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", "error.scope_missing").arg("scope", scope)
    }
    /// 422 for a bad query or body detail.
    pub fn invalid(key: &'static str) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", key)
    }

    /// Blame a field.
    pub fn field(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }

    /// The message in a locale.
    pub fn message(&self, locale: Locale) -> String {
        let args: Vec<(&str, &str)> = self.args.iter().map(|(k, v)| (*k, v.as_str())).collect();
        locale.tf(self.key, &args)
    }

    /// Render in the caller's locale.
    pub fn into_response_in(self, locale: Locale) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: self.message(locale),
                field: self.field,
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                resp.headers_mut().insert("retry-after", v);
            }
        }
        resp
    }
}

/// Errors are rendered in the locale the locale middleware resolved (it re-renders on the way out).
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let locale = crate::locale::current();
        self.into_response_in(locale)
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::NotFound => ApiError::not_found(),
            DomainError::Invalid { key, field } => ApiError {
                field,
                ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", key)
            },
            DomainError::Conflict { key } => ApiError::new(StatusCode::CONFLICT, "conflict", key),
            DomainError::Forbidden => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", "error.forbidden")
            }
            DomainError::Unauthenticated => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "error.unauthenticated",
            ),
            DomainError::Throttled { retry_after_secs } => ApiError {
                retry_after: Some(retry_after_secs),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "throttled",
                    "error.throttled",
                )
                .arg("seconds", retry_after_secs.to_string())
            },
            DomainError::Unavailable(why) => {
                tracing::error!(error = %why, "a service the request needs failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "error.unavailable",
                )
            }
            DomainError::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found(),
            StoreError::Conflict(_) | StoreError::Check(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", "error.conflict")
            }
            e => internal(&e),
        }
    }
}

/// Log an unexpected error with its whole cause chain and answer an opaque 500 (503 when the
/// database is unreachable).
pub fn internal(e: &(dyn std::error::Error + 'static)) -> ApiError {
    let mut chain = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        src = s.source();
    }
    tracing::error!(error = %chain, "request failed");
    let unavailable = e
        .downcast_ref::<StoreError>()
        .is_some_and(|s| matches!(s, StoreError::Unavailable(_)));
    if unavailable {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "error.unavailable",
        );
    }
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "error.internal",
    )
    .arg("request_id", crate::locale::current_request_id())
}

/// Unknown routes: JSON under /api, a page elsewhere.
pub async fn fallback(req: axum::extract::Request) -> Response {
    if req.uri().path().starts_with("/api/") {
        ApiError::not_found().into_response()
    } else {
        crate::templates::error_page(StatusCode::NOT_FOUND, "error.not_found")
    }
}
