//! Product media: uploaded images (checked by their magic bytes, not their name), uploaded videos,
//! and Bilibili or YouTube embeds; alt text per language; an order the owner sets.
//!
//! Language: the *original* is the file as uploaded (or downloaded from a URL by the `media.fetch`
//! job); *sizes* are the thumbnail, medium and large renditions the `media.resize` job makes from
//! it, each as JPEG or PNG and, when smaller, as WebP. A media item's *status* moves
//! fetching → processing → ready (or failed). Files live in the file store
//! (`yiren_providers::files`) under `products/<product>/<media>/`; the row only names them.
//!
//! Boundaries: this module decides and records; the job handlers in the binary crate move the
//! bytes (file store, outbound HTTP) and call [`processed`], [`fetched`] or [`failed`].

use std::collections::BTreeMap;
use std::io::Cursor;

use serde::{Deserialize, Serialize};
use yiren_store::media::{self as store, MediaRow};
use yiren_store::StoreError;

use crate::error::{DomainError, DomainResult};
use crate::job::{self, EnqueueOptions};
use crate::{catalog, Ctx, Locale};

/// Job: make the sizes of an image.
pub const RESIZE_KIND: &str = "media.resize";
/// Job: download an image named by URL (imports, the API's `src`).
pub const FETCH_KIND: &str = "media.fetch";
/// Job: delete files of removed media.
pub const DELETE_KIND: &str = "media.delete";

/// Largest image accepted.
pub const MAX_IMAGE_BYTES: usize = 20 << 20;
/// Largest video file accepted (longer videos belong on Bilibili or YouTube, embedded).
pub const MAX_VIDEO_BYTES: usize = 50 << 20;
/// Largest image area accepted (a small file can decode to gigabytes: a "decompression bomb").
pub const MAX_PIXELS: u64 = 40_000_000;
/// Media items per product.
pub const MAX_PER_PRODUCT: usize = 50;
/// The sizes made of every image: name and longest edge in pixels (never enlarged).
pub const SIZES: [(&str, u32); 3] = [("thumb", 200), ("medium", 640), ("large", 1280)];

/// A file format recognised by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
    Gif,
    Webp,
    Mp4,
    Webm,
}

impl Format {
    /// Its MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Gif => "image/gif",
            Format::Webp => "image/webp",
            Format::Mp4 => "video/mp4",
            Format::Webm => "video/webm",
        }
    }
    /// Its file extension.
    pub fn ext(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            Format::Png => "png",
            Format::Gif => "gif",
            Format::Webp => "webp",
            Format::Mp4 => "mp4",
            Format::Webm => "webm",
        }
    }
    /// Whether it is a still image.
    pub fn is_image(self) -> bool {
        !matches!(self, Format::Mp4 | Format::Webm)
    }
    /// The format a MIME type names.
    pub fn from_mime(m: &str) -> Option<Format> {
        [
            Format::Jpeg,
            Format::Png,
            Format::Gif,
            Format::Webp,
            Format::Mp4,
            Format::Webm,
        ]
        .into_iter()
        .find(|f| f.mime() == m)
    }
    fn image_format(self) -> Option<image::ImageFormat> {
        match self {
            Format::Jpeg => Some(image::ImageFormat::Jpeg),
            Format::Png => Some(image::ImageFormat::Png),
            Format::Gif => Some(image::ImageFormat::Gif),
            Format::Webp => Some(image::ImageFormat::WebP),
            _ => None,
        }
    }
}

/// The format of a file, from its magic bytes; None for anything not accepted.
pub fn sniff(b: &[u8]) -> Option<Format> {
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Format::Jpeg)
    } else if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Format::Png)
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Some(Format::Gif)
    } else if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        Some(Format::Webp)
    } else if b.len() >= 12 && &b[4..8] == b"ftyp" {
        Some(Format::Mp4)
    } else if b.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        Some(Format::Webm)
    } else {
        None
    }
}

/// A checked upload.
#[derive(Debug, Clone, Copy)]
pub struct Inspected {
    pub format: Format,
    pub width: u32,
    pub height: u32,
    pub bytes: usize,
}

/// Check a file: an accepted format by its bytes, within the size limit, and for an image a
/// readable header with a sane number of pixels.
pub fn inspect(b: &[u8]) -> DomainResult<Inspected> {
    let format = sniff(b).ok_or(DomainError::invalid("file", "media.type_unsupported"))?;
    let limit = if format.is_image() {
        MAX_IMAGE_BYTES
    } else {
        MAX_VIDEO_BYTES
    };
    if b.len() > limit {
        return Err(DomainError::invalid("file", "media.too_large"));
    }
    let (width, height) = match format.image_format() {
        Some(f) => image::ImageReader::with_format(Cursor::new(b), f)
            .into_dimensions()
            .map_err(|_| DomainError::invalid("file", "media.image_unreadable"))?,
        None => (0, 0),
    };
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(DomainError::invalid("file", "media.too_many_pixels"));
    }
    if format.is_image() && (width == 0 || height == 0) {
        return Err(DomainError::invalid("file", "media.image_unreadable"));
    }
    Ok(Inspected {
        format,
        width,
        height,
        bytes: b.len(),
    })
}

/// A video hosted elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Embed {
    /// `bilibili` or `youtube`.
    pub provider: &'static str,
    /// The video's id there (BV id, av number, YouTube id).
    pub video: String,
    /// The player address for an `<iframe>`.
    pub player: String,
}

/// Recognise a Bilibili or YouTube video page (or share) link.
pub fn parse_embed(raw: &str) -> Option<Embed> {
    let u = url::Url::parse(raw.trim()).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    let host = u
        .host_str()?
        .trim_start_matches("www.")
        .trim_start_matches("m.");
    let segs: Vec<&str> = u.path_segments()?.filter(|s| !s.is_empty()).collect();
    let yt_id = |s: &str| {
        (s.len() == 11
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .then(|| s.to_string())
    };
    let youtube = |id: String| Embed {
        provider: "youtube",
        player: format!("https://www.youtube-nocookie.com/embed/{id}"),
        video: id,
    };
    match host {
        "youtube.com" | "youtube-nocookie.com" => match segs.as_slice() {
            ["watch"] => u
                .query_pairs()
                .find(|(k, _)| k == "v")
                .and_then(|(_, v)| yt_id(&v))
                .map(youtube),
            ["embed" | "shorts" | "live", id] => yt_id(id).map(youtube),
            _ => None,
        },
        "youtu.be" => segs.first().and_then(|id| yt_id(id)).map(youtube),
        "bilibili.com" | "player.bilibili.com" => {
            let id = match segs.as_slice() {
                ["video", id] => id.to_string(),
                ["player.html"] => u
                    .query_pairs()
                    .find(|(k, _)| k == "bvid")
                    .map(|(_, v)| v.into_owned())?,
                _ => return None,
            };
            if id.len() == 12
                && id.starts_with("BV")
                && id.chars().all(|c| c.is_ascii_alphanumeric())
            {
                Some(Embed {
                    provider: "bilibili",
                    player: format!("https://player.bilibili.com/player.html?bvid={id}&autoplay=0"),
                    video: id,
                })
            } else {
                let n = id.strip_prefix("av")?;
                (!n.is_empty() && n.len() <= 12 && n.chars().all(|c| c.is_ascii_digit())).then(
                    || Embed {
                        provider: "bilibili",
                        player: format!(
                            "https://player.bilibili.com/player.html?aid={n}&autoplay=0"
                        ),
                        video: id.clone(),
                    },
                )
            }
        }
        _ => None,
    }
}

/// One generated size of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeFile {
    /// `thumb`, `medium` or `large`.
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub key: String,
    pub mime: String,
    pub bytes: u64,
}

/// A media item as pages and the API use it.
#[derive(Debug, Clone)]
pub struct Media {
    pub row: MediaRow,
    pub sizes: Vec<SizeFile>,
    pub alt: BTreeMap<String, String>,
}

/// The URL path a stored file is served at.
pub fn file_url(key: &str) -> String {
    format!("/media/{key}")
}

/// What a template needs to show one media item.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    pub id: i64,
    pub kind: String,
    pub status: String,
    /// The image (or video file) to show: medium size when made, else the original.
    pub src: String,
    pub width: u32,
    pub height: u32,
    pub alt: String,
    /// `srcset` of the JPEG/PNG sizes.
    pub srcset: String,
    /// `srcset` of the WebP sizes (empty when none was smaller).
    pub webp_srcset: String,
    /// A small picture for lists.
    pub thumb: String,
    pub thumb_width: u32,
    pub thumb_height: u32,
    /// For an embed: the player address.
    pub player: String,
    pub mime: String,
}

impl Media {
    /// The alt text in `locale`, else in `fallback`, else any.
    pub fn alt_for(&self, locale: Locale, fallback: Locale) -> String {
        [locale.tag(), fallback.tag()]
            .iter()
            .find_map(|t| self.alt.get(*t).filter(|s| !s.is_empty()))
            .or_else(|| self.alt.values().find(|s| !s.is_empty()))
            .cloned()
            .unwrap_or_default()
    }

    fn size(&self, name: &str, webp: bool) -> Option<&SizeFile> {
        self.sizes
            .iter()
            .find(|s| s.name == name && (s.mime == "image/webp") == webp)
    }

    /// The view of this item in a language.
    pub fn view(&self, locale: Locale, fallback: Locale) -> View {
        let r = &self.row;
        let original = (file_url(&r.storage_key), r.width as u32, r.height as u32);
        let pick = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| self.size(n, false))
                .map(|s| (file_url(&s.key), s.width, s.height))
        };
        let (src, width, height) = pick(&["medium", "large", "thumb"]).unwrap_or(original.clone());
        let (thumb, tw, th) = pick(&["thumb", "medium"]).unwrap_or(original);
        let set = |webp: bool| {
            SIZES
                .iter()
                .filter_map(|(n, _)| self.size(n, webp))
                .map(|s| format!("{} {}w", file_url(&s.key), s.width))
                .collect::<Vec<_>>()
                .join(", ")
        };
        View {
            id: r.id,
            kind: r.kind.clone(),
            status: r.status.clone(),
            src: if r.kind == "embed" || r.storage_key.is_empty() {
                String::new()
            } else {
                src
            },
            width,
            height,
            alt: self.alt_for(locale, fallback),
            srcset: set(false),
            webp_srcset: set(true),
            thumb: if r.storage_key.is_empty() || r.kind != "image" {
                String::new()
            } else {
                thumb
            },
            thumb_width: tw,
            thumb_height: th,
            player: if r.kind == "embed" {
                parse_embed(&r.source_url)
                    .map(|e| e.player)
                    .unwrap_or_default()
            } else {
                String::new()
            },
            mime: r.mime.clone(),
        }
    }

    /// Every file this item has in the store.
    pub fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.sizes.iter().map(|s| s.key.clone()).collect();
        if !self.row.storage_key.is_empty() {
            k.push(self.row.storage_key.clone());
        }
        k
    }
}

fn media(row: MediaRow) -> DomainResult<Media> {
    let sizes = serde_json::from_str(&row.sizes)
        .map_err(|e| StoreError::Corrupt(format!("media {} sizes: {e}", row.id)))?;
    let alt = serde_json::from_str(&row.alt)
        .map_err(|e| StoreError::Corrupt(format!("media {} alt: {e}", row.id)))?;
    Ok(Media { row, sizes, alt })
}

fn store_err(e: StoreError) -> DomainError {
    match e {
        StoreError::NotFound => DomainError::NotFound,
        e => e.into(),
    }
}

/// The key of a media item's original file.
pub fn original_key(product_id: i64, media_id: i64, format: Format) -> String {
    format!("products/{product_id}/{media_id}/original.{}", format.ext())
}

/// Clean alt text: per known language, at most 300 characters, no control characters.
fn clean_alt(alt: &BTreeMap<String, String>) -> DomainResult<String> {
    let mut out = BTreeMap::new();
    for (tag, text) in alt {
        let l = Locale::parse(tag).ok_or(DomainError::invalid("alt", "media.alt_invalid"))?;
        let t = text.trim();
        if t.chars().count() > 300 || t.chars().any(char::is_control) {
            return Err(DomainError::invalid("alt", "media.alt_invalid"));
        }
        if !t.is_empty() {
            out.insert(l.tag().to_string(), t.to_string());
        }
    }
    Ok(serde_json::to_string(&out).expect("serialisable"))
}

async fn room_for_one(ctx: &Ctx, product_id: i64) -> DomainResult<()> {
    catalog::get(ctx, product_id).await?;
    if store::of_products(ctx.db.read(), &[product_id])
        .await?
        .len()
        >= MAX_PER_PRODUCT
    {
        return Err(DomainError::invalid("file", "media.too_many"));
    }
    Ok(())
}

fn new_row(ctx: &Ctx, id: i64, product_id: i64, kind: &str, status: &str, alt: String) -> MediaRow {
    let now = ctx.now();
    MediaRow {
        id,
        product_id,
        position: 0,
        kind: kind.into(),
        status: status.into(),
        mime: String::new(),
        bytes: 0,
        width: 0,
        height: 0,
        storage_key: String::new(),
        source_url: String::new(),
        sizes: "[]".into(),
        alt,
        error: String::new(),
        created_at: now,
        updated_at: now,
    }
}

/// Check a product can take one more item, before its file is written.
pub async fn check_room(ctx: &Ctx, product_id: i64) -> DomainResult<()> {
    room_for_one(ctx, product_id).await
}

/// Record an uploaded file already written at `original_key(product_id, id, format)`. Images go to
/// `processing` with a `media.resize` job in the same transaction; videos are ready as they are.
pub async fn add_uploaded(
    ctx: &Ctx,
    product_id: i64,
    id: i64,
    f: &Inspected,
    alt: &BTreeMap<String, String>,
) -> DomainResult<Media> {
    let alt = clean_alt(alt)?;
    room_for_one(ctx, product_id).await?;
    let image = f.format.is_image();
    let mut row = new_row(
        ctx,
        id,
        product_id,
        if image { "image" } else { "video" },
        if image { "processing" } else { "ready" },
        alt,
    );
    row.mime = f.format.mime().into();
    row.bytes = f.bytes as i64;
    row.width = f.width.into();
    row.height = f.height.into();
    row.storage_key = original_key(product_id, id, f.format);
    let mut tx = ctx.db.begin().await?;
    store::insert(&mut tx, &row).await.map_err(store_err)?;
    if image {
        enqueue_resize(ctx, &mut tx, id).await?;
    }
    catalog::record_updated(ctx, &mut tx, product_id).await?;
    tx.commit().await.map_err(StoreError::from)?;
    catalog::changed();
    get(ctx, id).await
}

/// Add a Bilibili or YouTube video by its page link.
pub async fn add_embed(
    ctx: &Ctx,
    product_id: i64,
    url: &str,
    alt: &BTreeMap<String, String>,
) -> DomainResult<Media> {
    let e = parse_embed(url).ok_or(DomainError::invalid("url", "media.embed_unsupported"))?;
    let alt = clean_alt(alt)?;
    room_for_one(ctx, product_id).await?;
    let id = ctx.new_id();
    let mut row = new_row(ctx, id, product_id, "embed", "ready", alt);
    row.source_url = url.trim().into();
    row.mime = format!("video/x-{}", e.provider);
    let mut tx = ctx.db.begin().await?;
    store::insert(&mut tx, &row).await.map_err(store_err)?;
    catalog::record_updated(ctx, &mut tx, product_id).await?;
    tx.commit().await.map_err(StoreError::from)?;
    catalog::changed();
    get(ctx, id).await
}

/// Add an image to be downloaded from `url` by a `media.fetch` job, inside the caller's
/// transaction (the import and the API use it). Returns the new item's id.
pub async fn add_from_url_in(
    ctx: &Ctx,
    tx: &mut yiren_store::Tx,
    product_id: i64,
    url: &str,
    alt: &BTreeMap<String, String>,
) -> DomainResult<i64> {
    let u = url::Url::parse(url.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or(DomainError::invalid("src", "media.url_invalid"))?;
    let alt = clean_alt(alt)?;
    let id = ctx.new_id();
    let mut row = new_row(ctx, id, product_id, "image", "fetching", alt);
    row.source_url = u.to_string();
    store::insert(tx, &row).await.map_err(store_err)?;
    job::enqueue(
        ctx,
        tx,
        FETCH_KIND,
        &serde_json::json!({ "media_id": id, "url": row.source_url }),
        EnqueueOptions {
            max_attempts: 5,
            ..Default::default()
        },
    )
    .await?;
    Ok(id)
}

/// Add an image by URL in a transaction of its own.
pub async fn add_from_url(
    ctx: &Ctx,
    product_id: i64,
    url: &str,
    alt: &BTreeMap<String, String>,
) -> DomainResult<Media> {
    room_for_one(ctx, product_id).await?;
    let mut tx = ctx.db.begin().await?;
    let id = add_from_url_in(ctx, &mut tx, product_id, url, alt).await?;
    catalog::record_updated(ctx, &mut tx, product_id).await?;
    tx.commit().await.map_err(StoreError::from)?;
    catalog::changed();
    get(ctx, id).await
}

async fn enqueue_resize(ctx: &Ctx, tx: &mut yiren_store::Tx, id: i64) -> DomainResult<()> {
    job::enqueue(
        ctx,
        tx,
        RESIZE_KIND,
        &serde_json::json!({ "media_id": id }),
        EnqueueOptions {
            max_attempts: 3,
            unique_key: Some(format!("media.resize:{id}")),
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

/// A downloaded image was written at `original_key(..)`: record it and queue its sizes.
pub async fn fetched(ctx: &Ctx, id: i64, f: &Inspected) -> DomainResult<()> {
    let m = get(ctx, id).await?;
    let mut row = m.row;
    row.status = "processing".into();
    row.mime = f.format.mime().into();
    row.bytes = f.bytes as i64;
    row.width = f.width.into();
    row.height = f.height.into();
    row.storage_key = original_key(row.product_id, id, f.format);
    row.updated_at = ctx.now();
    let mut tx = ctx.db.begin().await?;
    store::update_file(&mut tx, &row).await.map_err(store_err)?;
    enqueue_resize(ctx, &mut tx, id).await?;
    tx.commit().await.map_err(StoreError::from)?;
    catalog::changed();
    Ok(())
}

/// The sizes of an image were written: it is ready.
pub async fn processed(
    ctx: &Ctx,
    id: i64,
    width: u32,
    height: u32,
    sizes: &[SizeFile],
) -> DomainResult<()> {
    let m = get(ctx, id).await?;
    let mut row = m.row;
    row.status = "ready".into();
    row.width = width.into();
    row.height = height.into();
    row.sizes = serde_json::to_string(sizes).expect("serialisable");
    row.error.clear();
    row.updated_at = ctx.now();
    let mut tx = ctx.db.begin().await?;
    store::update_file(&mut tx, &row).await.map_err(store_err)?;
    catalog::record_updated(ctx, &mut tx, row.product_id).await?;
    tx.commit().await.map_err(StoreError::from)?;
    catalog::changed();
    Ok(())
}

/// Fetching or processing failed for good; the owner sees why in the editor.
pub async fn failed(ctx: &Ctx, id: i64, error: &str) -> DomainResult<()> {
    let m = get(ctx, id).await?;
    let mut row = m.row;
    row.status = "failed".into();
    row.error = error.chars().take(300).collect();
    row.updated_at = ctx.now();
    let mut tx = ctx.db.begin().await?;
    store::update_file(&mut tx, &row).await.map_err(store_err)?;
    tx.commit().await.map_err(StoreError::from)?;
    catalog::changed();
    Ok(())
}

/// One media item.
pub async fn get(ctx: &Ctx, id: i64) -> DomainResult<Media> {
    media(store::get(ctx.db.read(), id).await.map_err(store_err)?)
}

/// A product's media, in order.
pub async fn of_product(ctx: &Ctx, product_id: i64) -> DomainResult<Vec<Media>> {
    store::of_products(ctx.db.read(), &[product_id])
        .await?
        .into_iter()
        .map(media)
        .collect()
}

/// The media of several products, each list in order.
pub async fn of_products(
    ctx: &Ctx,
    product_ids: &[i64],
) -> DomainResult<BTreeMap<i64, Vec<Media>>> {
    let mut out: BTreeMap<i64, Vec<Media>> = BTreeMap::new();
    for row in store::of_products(ctx.db.read(), product_ids).await? {
        out.entry(row.product_id).or_default().push(media(row)?);
    }
    Ok(out)
}

/// Set an item's alt text.
pub async fn set_alt(
    ctx: &Ctx,
    product_id: i64,
    id: i64,
    alt: &BTreeMap<String, String>,
) -> DomainResult<()> {
    let alt = clean_alt(alt)?;
    let m = get(ctx, id).await?;
    if m.row.product_id != product_id {
        return Err(DomainError::NotFound);
    }
    let mut tx = ctx.db.begin().await?;
    store::set_alt(&mut tx, id, &alt, ctx.now())
        .await
        .map_err(store_err)?;
    catalog::record_updated(ctx, &mut tx, product_id).await?;
    tx.commit().await.map_err(StoreError::from)?;
    catalog::changed();
    Ok(())
}

/// Put a product's media in the order given; `ids` must be exactly its items.
pub async fn reorder(ctx: &Ctx, product_id: i64, ids: &[i64]) -> DomainResult<()> {
    let have: Vec<i64> = of_product(ctx, product_id)
        .await?
        .iter()
        .map(|m| m.row.id)
        .collect();
    let mut a = have.clone();
    let mut b = ids.to_vec();
    a.sort_unstable();
    b.sort_unstable();
    if a != b {
        return Err(DomainError::invalid("order", "media.order_invalid"));
    }
    let mut tx = ctx.db.begin().await?;
    store::reorder(&mut tx, product_id, ids).await?;
    catalog::record_updated(ctx, &mut tx, product_id).await?;
    tx.commit().await.map_err(StoreError::from)?;
    catalog::changed();
    Ok(())
}

pub(crate) async fn enqueue_delete(
    ctx: &Ctx,
    tx: &mut yiren_store::Tx,
    keys: &[String],
) -> DomainResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    job::enqueue(
        ctx,
        tx,
        DELETE_KIND,
        &serde_json::json!({ "keys": keys }),
        EnqueueOptions::default(),
    )
    .await?;
    Ok(())
}

/// Remove a media item; its files are deleted by a job after the commit.
pub async fn remove(ctx: &Ctx, product_id: i64, id: i64) -> DomainResult<()> {
    let m = get(ctx, id).await?;
    if m.row.product_id != product_id {
        return Err(DomainError::NotFound);
    }
    let mut tx = ctx.db.begin().await?;
    store::delete(&mut tx, id).await.map_err(store_err)?;
    enqueue_delete(ctx, &mut tx, &m.keys()).await?;
    catalog::record_updated(ctx, &mut tx, product_id).await?;
    tx.commit().await.map_err(StoreError::from)?;
    catalog::changed();
    Ok(())
}

/// Inside a product's deletion: queue the deletion of all its files (rows go by cascade).
pub(crate) async fn forget_files(
    ctx: &Ctx,
    tx: &mut yiren_store::Tx,
    product_id: i64,
) -> DomainResult<()> {
    let mut keys = Vec::new();
    for row in store::of_products(&mut **tx, &[product_id]).await? {
        keys.extend(media(row)?.keys());
    }
    enqueue_delete(ctx, tx, &keys).await
}

/// One rendered size, ready to be written to the file store.
#[derive(Debug)]
pub struct Rendered {
    pub file: SizeFile,
    pub data: Vec<u8>,
}

/// Make the sizes of an image (CPU-bound: run it on a blocking thread). Applies the EXIF
/// orientation; each size is JPEG (PNG when the image has transparency) and also WebP when that is
/// smaller. Returns the upright width and height and the files, keyed under `product/media`.
pub fn render(
    bytes: &[u8],
    product_id: i64,
    media_id: i64,
) -> Result<(u32, u32, Vec<Rendered>), String> {
    use image::ImageDecoder as _;
    let format = sniff(bytes)
        .and_then(Format::image_format)
        .ok_or("not an image")?;
    let mut decoder = image::ImageReader::with_format(Cursor::new(bytes), format)
        .into_decoder()
        .map_err(|e| e.to_string())?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let (w0, h0) = decoder.dimensions();
    if u64::from(w0) * u64::from(h0) > MAX_PIXELS {
        return Err("too many pixels".into());
    }
    let mut img = image::DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    img.apply_orientation(orientation);
    let (w, h) = (img.width(), img.height());
    let alpha = img.color().has_alpha();
    let mut out = Vec::new();
    for (name, edge) in SIZES {
        let scaled = if w.max(h) > edge {
            img.resize(edge, edge, image::imageops::FilterType::CatmullRom)
        } else {
            img.clone()
        };
        let (sw, sh) = (scaled.width(), scaled.height());
        let base = format!("products/{product_id}/{media_id}/{name}");
        let mut data = Vec::new();
        let (mime, ext) = if alpha {
            scaled
                .write_to(&mut Cursor::new(&mut data), image::ImageFormat::Png)
                .map_err(|e| e.to_string())?;
            ("image/png", "png")
        } else {
            let rgb = scaled.to_rgb8();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut data, 82)
                .encode_image(&rgb)
                .map_err(|e| e.to_string())?;
            ("image/jpeg", "jpg")
        };
        let rgba = scaled.to_rgba8();
        let webp = webp::Encoder::from_rgba(&rgba, sw, sh)
            .encode(80.0)
            .to_vec();
        let file = |mime: &str, ext: &str, len: usize| SizeFile {
            name: name.into(),
            width: sw,
            height: sh,
            key: format!("{base}.{ext}"),
            mime: mime.into(),
            bytes: len as u64,
        };
        if webp.len() < data.len() {
            out.push(Rendered {
                file: file("image/webp", "webp", webp.len()),
                data: webp,
            });
        }
        out.push(Rendered {
            file: file(mime, ext, data.len()),
            data,
        });
        if w.max(h) <= edge {
            // Larger sizes would be the same picture again.
            break;
        }
    }
    Ok((w, h, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_known_by_their_bytes_not_their_names() {
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0rest"), Some(Format::Jpeg));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Some(Format::Png));
        assert_eq!(sniff(b"GIF89a..."), Some(Format::Gif));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(Format::Webp));
        assert_eq!(sniff(b"\0\0\0\x20ftypisom"), Some(Format::Mp4));
        assert_eq!(sniff(b"\x1A\x45\xDF\xA3..."), Some(Format::Webm));
        assert_eq!(sniff(b"<svg xmlns="), None);
        assert_eq!(sniff(b"<html>"), None);
        assert_eq!(sniff(b"MZ\x90\0"), None);
        assert_eq!(sniff(b""), None);
        // A PNG signature with a broken header is refused when inspected.
        assert!(inspect(b"\x89PNG\r\n\x1a\ngarbage").is_err());
    }

    #[test]
    fn video_links_become_players() {
        let yt = parse_embed("https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=10").unwrap();
        assert_eq!(yt.provider, "youtube");
        assert_eq!(
            yt.player,
            "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ"
        );
        assert_eq!(
            parse_embed("https://youtu.be/dQw4w9WgXcQ").unwrap().video,
            "dQw4w9WgXcQ"
        );
        let bv = parse_embed("https://www.bilibili.com/video/BV1GJ411x7h7/?spm_id=1").unwrap();
        assert_eq!(bv.provider, "bilibili");
        assert!(bv.player.contains("bvid=BV1GJ411x7h7"));
        assert!(parse_embed("https://m.bilibili.com/video/av170001").is_some());
        for bad in [
            "https://evil.example/watch?v=dQw4w9WgXcQ",
            "javascript:alert(1)",
            "https://www.youtube.com/watch?v=short",
            "https://www.bilibili.com/video/BV1GJ411x7h7\"onload=x",
            "https://youtube.com.evil.example/embed/dQw4w9WgXcQ",
        ] {
            assert_eq!(parse_embed(bad), None, "{bad}");
        }
    }

    #[test]
    fn sizes_keep_the_aspect_ratio_and_are_never_enlarged() {
        let img = image::RgbImage::from_fn(1600, 900, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        });
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode_image(&img)
            .unwrap();
        let (w, h, out) = render(&jpeg, 1, 2).unwrap();
        assert_eq!((w, h), (1600, 900));
        let names: Vec<_> = out
            .iter()
            .filter(|r| r.file.mime == "image/jpeg")
            .map(|r| (r.file.name.as_str(), r.file.width, r.file.height))
            .collect();
        assert_eq!(
            names,
            [
                ("thumb", 200, 113),
                ("medium", 640, 360),
                ("large", 1280, 720)
            ]
        );
        for r in &out {
            assert_eq!(sniff(&r.data).unwrap().mime(), r.file.mime);
            assert!(r.file.key.starts_with("products/1/2/"));
        }
        // A small image is not enlarged: one size, as it is.
        let small = image::RgbaImage::from_pixel(120, 80, image::Rgba([1, 2, 3, 128]));
        let mut png = Vec::new();
        small
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let (_, _, out) = render(&png, 1, 3).unwrap();
        assert!(out
            .iter()
            .all(|r| r.file.name == "thumb" && r.file.width == 120));
        assert!(out.iter().any(|r| r.file.mime == "image/png"));
    }
}
