//! Cursor pagination: `?limit=` (1..=250, default 50) and an opaque `page_info` cursor that carries
//! the position and the filters (filters are not sent alongside it); the next page is announced in
//! a `Link: <...>; rel="next"` header, absent on the last page.

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::ApiError;

/// Raw paging query parameters.
#[derive(Debug, Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1 to 250 (default 50).
    pub limit: Option<i64>,
    /// Opaque cursor from a previous `Link` header.
    pub page_info: Option<String>,
}

/// Parsed paging: the size and the decoded cursor, if any.
pub struct Paging<C> {
    pub limit: i64,
    pub cursor: Option<C>,
}

impl PageQuery {
    /// Validate the query and decode the cursor.
    pub fn parse<C: DeserializeOwned>(&self) -> Result<Paging<C>, ApiError> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=250).contains(&limit) {
            return Err(ApiError::invalid("error.limit_invalid"));
        }
        let cursor = match &self.page_info {
            None => None,
            Some(s) => {
                let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(s)
                    .map_err(|_| ApiError::invalid("error.cursor_invalid"))?;
                Some(
                    serde_json::from_slice(&bytes)
                        .map_err(|_| ApiError::invalid("error.cursor_invalid"))?,
                )
            }
        };
        Ok(Paging { limit, cursor })
    }
}

/// Encode a cursor.
pub fn encode<C: Serialize>(c: &C) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(c).unwrap_or_default())
}

/// A JSON response with a `Link` header when there is a next page.
pub fn with_link<C: Serialize>(
    body: impl IntoResponse,
    base: &str,
    path: &str,
    limit: i64,
    next: Option<C>,
) -> Response {
    let mut resp = body.into_response();
    if let Some(c) = next {
        let url = format!(
            "<{base}{path}?limit={limit}&page_info={}>; rel=\"next\"",
            encode(&c)
        );
        if let Ok(v) = HeaderValue::from_str(&url) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    resp
}

/// The absolute base of this server as the client reached it (the configured public URL wins).
pub fn base_url(public_url: Option<&str>, headers: &HeaderMap) -> String {
    if let Some(u) = public_url {
        return u.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}
