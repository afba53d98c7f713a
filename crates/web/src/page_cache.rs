//! Rendered shop pages kept in memory, so a product page costs a lookup instead of queries and a
//! render. An entry is keyed by language and URL and used while the catalog generation it was
//! rendered under is current ([`yiren_core::catalog::generation`], bumped after every catalog or
//! settings change in this process) and for at most [`TTL`], which bounds how late a scheduled
//! product appears and how long a change made by another process (a CLI import) stays unseen.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Longest an entry is served.
pub const TTL: Duration = Duration::from_secs(5);
/// Entries kept; when full, the cache starts over. With pages of a few kB this stays within a few
/// MB however many distinct URLs crawlers ask for.
const MAX_ENTRIES: usize = 1024;
/// Pages larger than this are not kept.
const MAX_PAGE: usize = 512 * 1024;

struct Entry {
    html: Bytes,
    generation: u64,
    at: Instant,
}

/// The cache.
#[derive(Default)]
pub struct PageCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl PageCache {
    /// The cached page for `key`, if still current.
    pub fn get(&self, key: &str) -> Option<Response> {
        let generation = yiren_core::catalog::generation();
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let e = entries.get(key)?;
        if e.generation != generation || e.at.elapsed() > TTL {
            return None;
        }
        Some(html(e.html.clone()))
    }

    /// Render with `render` and keep the result when it is a page (200) of reasonable size.
    /// `generation` is read before rendering, so a change during the render is never masked.
    pub async fn render(
        &self,
        key: String,
        render: impl std::future::Future<Output = Response>,
    ) -> Response {
        if let Some(r) = self.get(&key) {
            return r;
        }
        let generation = yiren_core::catalog::generation();
        let resp = render.await;
        if resp.status() != StatusCode::OK {
            return resp;
        }
        let (parts, body) = resp.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_PAGE).await else {
            return (StatusCode::INTERNAL_SERVER_ERROR, "page too large").into_response();
        };
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            key,
            Entry {
                html: bytes.clone(),
                generation,
                at: Instant::now(),
            },
        );
        drop(entries);
        Response::from_parts(parts, axum::body::Body::from(bytes))
    }
}

fn html(body: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}
