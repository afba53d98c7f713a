//! `GET /downloads/{entitlement}/{file}?exp=&sig=`: a digital product's file for a buyer, through a
//! signed link that expires within 15 minutes (see `yiren_core::delivery`). Every refusal is a bare
//! 403 (bad, expired or revoked link) or 404 (no such file for it); the file is always an
//! attachment, never rendered by the browser: `Content-Disposition: attachment` with the name
//! encoded per RFC 6266, `application/octet-stream`, `nosniff`, and a sandbox CSP.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use yiren_core::{delivery, DomainError};

use crate::templates::error_page;
use crate::AppState;

/// Download routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/downloads/{entitlement}/{file}", get(download))
}

#[derive(Deserialize, Default)]
struct LinkQuery {
    #[serde(default)]
    exp: String,
    #[serde(default)]
    sig: String,
}

/// RFC 5987 `attr-char`s are sent as they are; everything else is percent-encoded.
const ATTR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment; filename="<ASCII fallback>"; filename*=UTF-8''<the real name>` (RFC 6266 §4.3).
pub fn content_disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{}",
        utf8_percent_encode(name, ATTR)
    )
}

async fn download(
    State(state): State<AppState>,
    Path((entitlement, file)): Path<(String, String)>,
    Query(q): Query<LinkQuery>,
) -> Response {
    let forbidden = || error_page(StatusCode::FORBIDDEN, "error.forbidden");
    let not_found = || error_page(StatusCode::NOT_FOUND, "error.not_found");
    let (Ok(entitlement), Ok(file), Ok(exp)) = (
        entitlement.parse::<i64>(),
        file.parse::<i64>(),
        q.exp.parse::<i64>(),
    ) else {
        return not_found();
    };
    let f = match delivery::open(&state.ctx, entitlement, file, exp, &q.sig).await {
        Ok(f) => f,
        Err(DomainError::Forbidden) => return forbidden(),
        Err(DomainError::NotFound) => return not_found(),
        Err(e) => return crate::admin::pages::domain_error_page(e),
    };
    let read = match state.files.get(&f.file_key, None).await {
        Ok(r) => r,
        Err(yiren_providers::files::FilesError::NotFound) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, file = f.id, "download could not be read");
            return error_page(StatusCode::SERVICE_UNAVAILABLE, "error.unavailable");
        }
    };
    let mut resp = read.bytes.into_response();
    let h = resp.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: header::HeaderName, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    set(h, header::CONTENT_TYPE, "application/octet-stream");
    set(
        h,
        header::CONTENT_DISPOSITION,
        &content_disposition(&f.name),
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "sandbox; default-src 'none'",
    );
    set(h, header::CACHE_CONTROL, "private, no-store");
    set(h, header::REFERRER_POLICY, "no-referrer");
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded_for_every_browser() {
        assert_eq!(
            content_disposition("课程 第1讲.pdf"),
            "attachment; filename=\"__ _1_.pdf\"; filename*=UTF-8''%E8%AF%BE%E7%A8%8B%20%E7%AC%AC1%E8%AE%B2.pdf"
        );
        assert_eq!(
            content_disposition("a\"b\\c;d.zip"),
            "attachment; filename=\"a_b_c;d.zip\"; filename*=UTF-8''a%22b%5Cc%3Bd.zip"
        );
    }
}
