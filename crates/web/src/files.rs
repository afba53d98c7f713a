//! `GET /media/products/...`: product media files from the file store (data directory or bucket),
//! whichever is configured, with long-lived caching (a key never changes content: a new upload
//! gets a new key) and single byte ranges, which browsers need to seek in a video.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use yiren_core::{media, DomainError};
use yiren_providers::files::FilesError;

use crate::templates::error_page;
use crate::AppState;

/// Store an uploaded file for a product and record it: checked by its bytes (and, with
/// `images_only`, refused unless it is an image), the product's room checked, the original written
/// to the file store, then the row and its `media.resize` job committed. The one path for admin and
/// API uploads.
pub async fn upload(
    state: &AppState,
    product_id: i64,
    bytes: Vec<u8>,
    alt: &std::collections::BTreeMap<String, String>,
    images_only: bool,
) -> Result<media::Media, DomainError> {
    let checked = media::inspect(&bytes)?;
    if images_only && !checked.format.is_image() {
        return Err(DomainError::invalid("file", "media.type_unsupported"));
    }
    media::check_room(&state.ctx, product_id).await?;
    let id = state.ctx.new_id();
    state
        .files
        .put(&media::original_key(product_id, id, checked.format), bytes)
        .await
        .map_err(|e| DomainError::Unavailable(e.to_string()))?;
    media::add_uploaded(&state.ctx, product_id, id, &checked, alt).await
}

/// File routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/media/{*key}", get(serve))
}

/// The MIME type of a media key, or None when the key is not one this route serves:
/// `products/<digits>/<digits>/<name>.<ext>`.
fn media_type(key: &str) -> Option<&'static str> {
    let parts: Vec<&str> = key.split('/').collect();
    let [root, product, media, file] = parts.as_slice() else {
        return None;
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    if *root != "products" || !digits(product) || !digits(media) {
        return None;
    }
    let (name, ext) = file.split_once('.')?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    Some(match ext {
        "jpg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        _ => return None,
    })
}

/// One `bytes=a-b` or `bytes=a-` range; anything else is served whole.
fn range_of(headers: &HeaderMap) -> Option<std::ops::Range<u64>> {
    let v = headers.get(header::RANGE)?.to_str().ok()?;
    let spec = v.strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let start: u64 = a.trim().parse().ok()?;
    let end = match b.trim() {
        "" => u64::MAX,
        b => b.parse::<u64>().ok()?.checked_add(1)?,
    };
    (start < end).then_some(start..end)
}

async fn serve(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(mime) = media_type(&key) else {
        return error_page(StatusCode::NOT_FOUND, "error.not_found");
    };
    let want = range_of(&headers);
    let asked = want
        .clone()
        .map(|r| (r.start, (r.end != u64::MAX).then_some(r.end)));
    let read = match state.files.get(&key, asked).await {
        Ok(r) => r,
        Err(FilesError::NotFound | FilesError::BadKey) => {
            return error_page(StatusCode::NOT_FOUND, "error.not_found")
        }
        // A start beyond the end (the file store words it "Wanted range starting at…", S3 answers
        // 416 "Range Not Satisfiable").
        Err(e) if want.is_some() && e.to_string().to_lowercase().contains("range") => {
            let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            r.headers_mut()
                .insert(header::CONTENT_RANGE, HeaderValue::from_static("bytes */*"));
            return r;
        }
        Err(e) => {
            tracing::error!(error = %e, key, "media file could not be read");
            return error_page(StatusCode::SERVICE_UNAVAILABLE, "error.unavailable");
        }
    };
    let mut resp = read.bytes.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(r) = read.range {
        let v = format!(
            "bytes {}-{}/{}",
            r.start,
            r.end.saturating_sub(1),
            read.total
        );
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(header::CONTENT_RANGE, v);
        }
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_media_keys_are_served() {
        assert_eq!(media_type("products/1/2/medium.jpg"), Some("image/jpeg"));
        assert_eq!(media_type("products/1/2/original.mp4"), Some("video/mp4"));
        for bad in [
            "products/1/2/../../key",
            "products/a/2/x.jpg",
            "products/1/2/x.svg",
            "products/1/2/x.html",
            "private/1/2/x.jpg",
            "products/1/2/X.jpg",
            "products/1/2/x.jpg/more",
            "products//2/x.jpg",
        ] {
            assert_eq!(media_type(bad), None, "{bad}");
        }
    }

    #[test]
    fn ranges_are_one_span() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
            m
        };
        assert_eq!(range_of(&h("bytes=0-99")), Some(0..100));
        assert_eq!(range_of(&h("bytes=100-")), Some(100..u64::MAX));
        assert_eq!(range_of(&h("bytes=0-1,5-6")), None);
        assert_eq!(range_of(&h("bytes=9-3")), None);
        assert_eq!(range_of(&h("items=0-1")), None);
    }
}
