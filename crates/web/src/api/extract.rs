//! API authentication, JSON bodies and shared response shapes.

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::ToSchema;
use yiren_core::api_token::{self, ApiToken};
use yiren_core::auth::Staff;

use crate::error::ApiError;
use crate::AppState;

/// The error envelope.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// An error's code and message (in the caller's language).
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `not_found`, `invalid`, `unauthorized`.
    pub code: String,
    /// Human-readable message in the language of `Accept-Language` (or the site default).
    pub message: String,
    /// The offending field, for `invalid`.
    pub field: Option<String>,
}

/// `{"count": n}` for `/count` endpoints.
#[derive(Serialize, ToSchema)]
pub struct CountResponse {
    pub count: i64,
}

/// The caller: an API token and the staff account it belongs to.
#[derive(Clone, Debug)]
pub struct Principal {
    pub token: ApiToken,
    pub staff: Staff,
}

impl Principal {
    /// Fail with 403 unless the token carries `scope`.
    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        if self.token.allows(scope) {
            Ok(())
        } else {
            Err(ApiError::missing_scope(scope))
        }
    }
}

/// Middleware: resolve `Authorization: Bearer <token>`; everything else is 401. Cookies are not read.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let secret = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() < 200);
    let Some(secret) = secret else {
        return unauthorized();
    };
    match api_token::authenticate(&state.ctx, secret).await {
        Ok(Some((token, staff))) => {
            req.extensions_mut().insert(Principal { token, staff });
            next.run(req).await
        }
        Ok(None) => unauthorized(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

fn unauthorized() -> Response {
    let mut r = ApiError::bad_token().into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    r
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(ApiError::bad_token)
    }
}

/// A JSON body whose rejections use the API error envelope (400 unreadable, 415 wrong type,
/// 413 too large, 422 wrong shape). The rejection is kept, not returned: the handler checks the
/// token's scope first and then takes the body with `body.0?`, so a caller without the scope gets
/// 403 whatever it sent (RELIABILITY IDOR-1), never a 422 that answers for a route it may not use.
pub struct ApiJson<T>(pub Result<T, ApiError>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = std::convert::Infallible;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(ApiJson(parse_json(req, state).await))
    }
}

async fn parse_json<T: DeserializeOwned, S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<T, ApiError> {
    {
        use axum::extract::rejection::JsonRejection;
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(v),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "error.bad_request",
            )
            .arg("detail", "Content-Type must be application/json")),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "error.bad_request",
            )
            .arg("detail", e.body_text())),
            Err(JsonRejection::JsonSyntaxError(e)) => {
                Err(
                    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", "error.bad_request")
                        .arg("detail", e.body_text()),
                )
            }
            Err(JsonRejection::BytesRejection(_)) => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "error.payload_too_large",
            )),
            Err(e) => {
                Err(
                    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", "error.bad_request")
                        .arg("detail", e.body_text()),
                )
            }
        }
    }
}

/// RFC 3339 for API timestamps.
pub fn ts(ms: i64) -> String {
    yiren_core::clock::rfc3339(ms)
}

/// RFC 3339 for optional timestamps.
pub fn ts_opt(ms: Option<i64>) -> Option<String> {
    ms.map(ts)
}
