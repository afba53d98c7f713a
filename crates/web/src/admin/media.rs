//! Admin → a product's media: upload images or a video file (checked by their bytes; sizes are
//! made by a job), add a Bilibili or YouTube link, alt text per language, order (numbers in the
//! form, which a small script also sets by drag and drop), removal.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use yiren_core::{delivery, media, DomainError, Locale};

use super::pages::domain_error_page;
use super::products::editor_refusing;
use crate::security::{AdminSession, CsrfForm, CsrfMultipart};
use crate::AppState;

fn alt_of(fields: &[(String, String)]) -> BTreeMap<String, String> {
    Locale::ALL
        .iter()
        .filter_map(|l| {
            let name = format!("alt_{}", l.tag());
            fields
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (l.tag().to_string(), v.clone()))
        })
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

fn back(product_id: i64, notice: &str) -> Response {
    Redirect::to(&format!(
        "/admin/products/{product_id}?notice={notice}#media"
    ))
    .into_response()
}

/// Upload one or more files, or add a video link when one is given.
pub async fn upload(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    form: CsrfMultipart,
) -> Response {
    let alt = alt_of(&form.fields);
    let link = field(&form.fields, "embed_url").trim();
    let result = async {
        if form.files.is_empty() && link.is_empty() {
            return Err(DomainError::invalid("file", "media.file_required"));
        }
        if !link.is_empty() {
            media::add_embed(&state.ctx, id, link, &alt).await?;
        }
        for f in &form.files {
            crate::files::upload(&state, id, f.bytes.to_vec(), &alt, false).await?;
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => back(id, "media.added"),
        Err(e) => editor_refusing(&state, &s, id, e).await,
    }
}

/// Upload files a digital product delivers to its buyers: each checked (name, type by its bytes,
/// archives unpacked to count them) before anything is stored; the first refusal stops the rest.
pub async fn upload_file(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    form: CsrfMultipart,
) -> Response {
    let result = async {
        if form.files.is_empty() {
            return Err(DomainError::invalid("file", "media.file_required"));
        }
        for f in &form.files {
            delivery::check_room(&state.ctx, id).await?;
            let (name, bytes) = (f.file_name.clone(), f.bytes.clone());
            let checked = tokio::task::spawn_blocking(move || {
                delivery::inspect(&name, &bytes, delivery::MAX_UNZIPPED_BYTES)
            })
            .await
            .map_err(|e| DomainError::Unavailable(e.to_string()))??;
            let fid = state.ctx.new_id();
            state
                .files
                .put(&delivery::file_key(id, fid), f.bytes.to_vec())
                .await
                .map_err(|e| DomainError::Unavailable(e.to_string()))?;
            delivery::add_file(&state.ctx, id, fid, &checked, f.bytes.len()).await?;
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => Redirect::to(&format!("/admin/products/{id}?notice=delivery.added#files"))
            .into_response(),
        Err(e) => editor_refusing(&state, &s, id, e).await,
    }
}

/// Remove a file a digital product delivers (links to it stop working at once).
pub async fn delete_file(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path((id, fid)): Path<(i64, i64)>,
    CsrfForm(_): CsrfForm<super::pages::Empty>,
) -> Response {
    match delivery::remove_file(&state.ctx, id, fid).await {
        Ok(()) => Redirect::to(&format!(
            "/admin/products/{id}?notice=delivery.removed#files"
        ))
        .into_response(),
        Err(e) => editor_refusing(&state, &s, id, e).await,
    }
}

#[derive(serde::Deserialize)]
pub struct PoolForm {
    #[serde(default)]
    keys: String,
}

/// Add licence keys to a licence product's pool, one per line.
pub async fn add_keys(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<PoolForm>,
) -> Response {
    match yiren_core::license::add_pool(&state.ctx, id, &f.keys).await {
        Ok(_) => Redirect::to(&format!(
            "/admin/products/{id}?notice=license.pool_added#keys"
        ))
        .into_response(),
        Err(e) => editor_refusing(&state, &s, id, e).await,
    }
}

/// Save the order: fields `pos_<media id>` hold numbers; items are sorted by them.
pub async fn order(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Response {
    let mut items: Vec<(i64, usize, i64)> = Vec::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if let Some(mid) = k.strip_prefix("pos_").and_then(|m| m.parse::<i64>().ok()) {
            let pos = v.trim().parse::<i64>().unwrap_or(i64::MAX);
            items.push((pos, i, mid));
        }
    }
    items.sort();
    let ids: Vec<i64> = items.iter().map(|(_, _, m)| *m).collect();
    match media::reorder(&state.ctx, id, &ids).await {
        Ok(()) => back(id, "settings.saved"),
        Err(e) => editor_refusing(&state, &s, id, e).await,
    }
}

/// Save one item's alt text.
pub async fn update(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(mid): Path<i64>,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Response {
    let m = match media::get(&state.ctx, mid).await {
        Ok(m) => m,
        Err(e) => return domain_error_page(e),
    };
    let pid = m.row.product_id;
    match media::set_alt(&state.ctx, pid, mid, &alt_of(&pairs)).await {
        Ok(()) => back(pid, "settings.saved"),
        Err(e) => editor_refusing(&state, &s, pid, e).await,
    }
}

/// Remove one item.
pub async fn delete(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(mid): Path<i64>,
    CsrfForm(_): CsrfForm<super::pages::Empty>,
) -> Response {
    let m = match media::get(&state.ctx, mid).await {
        Ok(m) => m,
        Err(e) => return domain_error_page(e),
    };
    let pid = m.row.product_id;
    match media::remove(&state.ctx, pid, mid).await {
        Ok(()) => back(pid, "media.removed"),
        Err(e) => editor_refusing(&state, &s, pid, e).await,
    }
}
