//! The request's language: the user's explicit choice (the `yiren_lang` cookie set by the language
//! switcher, or a signed-in staff member's saved language), then `Accept-Language`, then the site
//! default. API requests ignore cookies. The result is kept in a task-local for the request, so
//! errors rendered anywhere use it.

use std::cell::Cell;

use axum::extract::{Path, Query, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use yiren_core::Locale;

use crate::AppState;

/// Name of the language cookie.
pub const LANG_COOKIE: &str = "yiren_lang";

tokio::task_local! {
    static LOCALE: Cell<(Locale, bool)>;
    static REQUEST_ID: String;
}

/// The current request's locale (the default outside a request).
pub fn current() -> Locale {
    LOCALE.try_with(|c| c.get().0).unwrap_or_default()
}

/// The current request's id, for error references.
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(|s| s.clone()).unwrap_or_default()
}

/// Prefer a signed-in staff member's saved language unless the visitor chose one explicitly.
pub fn prefer(locale: Option<Locale>) {
    if let Some(l) = locale {
        let _ = LOCALE.try_with(|c| {
            if !c.get().1 {
                c.set((l, false));
            }
        });
    }
}

/// Middleware: resolve the locale and run the request inside its scope.
pub async fn resolve_locale(
    State(state): State<AppState>,
    jar: CookieJar,
    req: Request,
    next: Next,
) -> Response {
    let is_api = req.uri().path().starts_with("/api/");
    let chosen = if is_api {
        None
    } else {
        jar.get(LANG_COOKIE).and_then(|c| Locale::parse(c.value()))
    };
    let locale = match chosen {
        Some(l) => l,
        None => match req
            .headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(Locale::negotiate)
        {
            Some(l) => l,
            None => state.settings().await.default_locale,
        },
    };
    let rid = req
        .headers()
        .get(&crate::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut resp = REQUEST_ID
        .scope(
            rid,
            LOCALE.scope(Cell::new((locale, chosen.is_some())), next.run(req)),
        )
        .await;
    if !is_api && !resp.headers().contains_key(header::CONTENT_LANGUAGE) {
        resp.headers_mut().insert(
            header::CONTENT_LANGUAGE,
            header::HeaderValue::from_static(locale.tag()),
        );
    }
    resp
}

/// Query of the language switcher.
#[derive(serde::Deserialize)]
pub struct SwitchQuery {
    next: Option<String>,
}

/// `GET /lang/{tag}`: remember the visitor's language and go back (only to a local path).
pub async fn switch(
    Path(tag): Path<String>,
    Query(q): Query<SwitchQuery>,
    jar: CookieJar,
) -> Response {
    let Some(l) = Locale::parse(&tag) else {
        return crate::templates::error_page(axum::http::StatusCode::NOT_FOUND, "error.not_found");
    };
    let next = q
        .next
        .filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or_else(|| "/".into());
    let mut c = Cookie::new(LANG_COOKIE, l.tag());
    c.set_path("/");
    c.set_same_site(SameSite::Lax);
    c.set_max_age(time::Duration::days(365));
    (jar.add(c), Redirect::to(&next)).into_response()
}
