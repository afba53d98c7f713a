//! Delivery of what is not shipped: the private files of digital products, downloaded through
//! signed, expiring links; and the entitlements a paid order grants.
//!
//! Language: an *entitlement* is what one paid order grants for one product — downloads of a
//! digital product's files (counted against the checkout setting `download_limit`), a membership
//! (the product's `membership_days` × quantity, from payment — or, for a member buying again,
//! from the end of the period they already have), licence keys. It is *revoked*
//! when the order is fully refunded or cancelled after payment, or by the owner; a revoked
//! entitlement gives nothing from that moment. A *download link* is
//! `/downloads/{entitlement}/{file}?exp=&sig=`: `sig` is an HMAC-SHA256 (256 bits) under the server
//! key over (file, order, customer, expiry), valid for at most [`LINK_MINUTES`]; pages make fresh
//! ones each time they are shown (RELIABILITY DL-1).
//!
//! Boundaries: [`grant`] and [`revoke`] run inside the order's transaction (`order::pay`,
//! `order::refund`, `order::cancel`, a free checkout); bytes are moved by the web layer (upload) and
//! the `media.delete` job (removal); this module checks uploads and decides.

use std::io::{Cursor, Read};

use serde::Serialize;
use yiren_store::delivery::{self as store, EntitlementRow, FileRow};
use yiren_store::order::OrderRow;
use yiren_store::{StoreError, Tx};

use crate::error::{DomainError, DomainResult};
use crate::{catalog, Ctx};

/// Largest file a digital product may deliver.
pub const MAX_FILE_BYTES: usize = 100 << 20;
/// Files per digital product.
pub const MAX_FILES: usize = 20;
/// How long a download link works.
pub const LINK_MINUTES: i64 = 15;
/// An uploaded archive may unpack to at most this much…
pub const MAX_UNZIPPED_BYTES: u64 = 2 << 30;
/// …in at most this many entries.
pub const MAX_ZIP_ENTRIES: usize = 10_000;

/// MAC purpose of download links.
const LINK_PURPOSE: &str = "download";

/// An uploaded file that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The file name the buyer will get (path parts, control characters and reserved names gone).
    pub name: String,
    pub mime: &'static str,
}

/// What an extension promises: its MIME type and how its bytes must begin (None: text, which must
/// be UTF-8 without NUL; `Some(&[])`: no signature is known and any bytes are accepted).
fn kind_of(ext: &str) -> Option<(&'static str, Option<&'static [&'static [u8]]>)> {
    const ZIP: &[&[u8]] = &[b"PK\x03\x04", b"PK\x05\x06"];
    Some(match ext {
        "pdf" => ("application/pdf", Some(&[b"%PDF-"])),
        "zip" => ("application/zip", Some(ZIP)),
        "epub" => ("application/epub+zip", Some(ZIP)),
        "docx" | "xlsx" | "pptx" | "key" | "pages" | "numbers" | "sketch" | "apk" | "jar" => {
            ("application/octet-stream", Some(ZIP))
        }
        "png" => ("image/png", Some(&[b"\x89PNG\r\n\x1a\n"])),
        "jpg" | "jpeg" => ("image/jpeg", Some(&[b"\xff\xd8\xff"])),
        "gif" => ("image/gif", Some(&[b"GIF87a", b"GIF89a"])),
        "webp" | "wav" | "avi" => ("application/octet-stream", Some(&[b"RIFF"])),
        "mp3" => (
            "audio/mpeg",
            Some(&[b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"]),
        ),
        "flac" => ("audio/flac", Some(&[b"fLaC"])),
        "ogg" | "oga" | "ogv" => ("application/ogg", Some(&[b"OggS"])),
        "gz" | "tgz" => ("application/gzip", Some(&[b"\x1f\x8b"])),
        "7z" => (
            "application/x-7z-compressed",
            Some(&[b"7z\xbc\xaf\x27\x1c"]),
        ),
        "rar" => ("application/vnd.rar", Some(&[b"Rar!\x1a\x07"])),
        "psd" => ("image/vnd.adobe.photoshop", Some(&[b"8BPS"])),
        "mobi" | "azw3" | "mp4" | "m4a" | "m4v" | "mov" => ("application/octet-stream", Some(&[])),
        "txt" | "md" | "csv" | "json" | "srt" | "vtt" => ("text/plain", None),
        "svg" => ("image/svg+xml", None),
        "exe" | "msi" => ("application/octet-stream", Some(&[b"MZ"])),
        "dmg" | "iso" | "bin" | "blend" | "ttf" | "otf" | "woff2" | "lut" | "cube" | "xmp"
        | "lrtemplate" | "procreate" | "brushset" | "abr" | "ai" | "eps" | "indd" => {
            ("application/octet-stream", Some(&[]))
        }
        _ => return None,
    })
}

/// Windows device names, which no file may be called (with any extension).
const RESERVED: [&str; 22] = [
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
    "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];

/// The name a file is saved under: its last path part (either slash), without control characters,
/// at most 150 characters; None when nothing usable is left or it is a reserved device name.
pub fn clean_name(name: &str) -> Option<String> {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '<' | '>' | ':' | '|' | '?' | '*'))
        .collect();
    let cleaned = cleaned.trim().trim_end_matches(['.', ' ']).to_string();
    if cleaned.is_empty() || cleaned.starts_with('.') || cleaned.chars().count() > 150 {
        return None;
    }
    let stem = cleaned.split('.').next().unwrap_or("").to_lowercase();
    if RESERVED.contains(&stem.trim()) {
        return None;
    }
    Some(cleaned)
}

fn refuse(key: &'static str) -> DomainError {
    DomainError::invalid("file", key)
}

/// Whether `bytes` is also something a browser would run: HTML or script markup near the start,
/// or (for a type that is not an archive) a zip directory at the end — a polyglot.
fn looks_polyglot(bytes: &[u8], archive: bool) -> bool {
    let head = &bytes[..bytes.len().min(1024)];
    let lower = head.to_ascii_lowercase();
    let markup = [
        &b"<script"[..],
        b"<html",
        b"<!doctype html",
        b"<svg",
        b"<iframe",
    ]
    .iter()
    .any(|m| lower.windows(m.len()).any(|w| w == *m));
    let tail = &bytes[bytes.len().saturating_sub(65_557)..];
    let zip_dir = !archive && tail.windows(4).any(|w| w == b"PK\x05\x06");
    markup || zip_dir
}

/// Refuse an SVG that could run script when opened.
fn svg_is_active(text: &str) -> bool {
    let lower = text.to_lowercase();
    [
        "<script",
        "javascript:",
        "<foreignobject",
        "<iframe",
        "<embed",
        "<object",
    ]
    .iter()
    .any(|m| lower.contains(m))
        || lower
            .split(|c: char| c.is_whitespace() || c == '/' || c == '<')
            .any(|w| w.starts_with("on") && w.contains('='))
}

/// Open an archive and check its entries: count, total unpacked size (by unpacking, so a lying
/// header cannot hide a bomb), no symbolic links, no names that climb out of the folder.
fn check_zip(bytes: &[u8], max_unzipped: u64) -> DomainResult<()> {
    let mut zip =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|_| refuse("delivery.zip_invalid"))?;
    if zip.len() > MAX_ZIP_ENTRIES {
        return Err(refuse("delivery.zip_too_large"));
    }
    let mut left = max_unzipped;
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|_| refuse("delivery.zip_invalid"))?;
        if entry.is_symlink() || entry.enclosed_name().is_none() {
            return Err(refuse("delivery.zip_unsafe"));
        }
        if entry.size() > left {
            return Err(refuse("delivery.zip_too_large"));
        }
        let n = std::io::copy(&mut (&mut entry).take(left + 1), &mut std::io::sink())
            .map_err(|_| refuse("delivery.zip_invalid"))?;
        if n > left {
            return Err(refuse("delivery.zip_too_large"));
        }
        left -= n;
    }
    Ok(())
}

/// Check an upload: a usable name with an extension this shop delivers, bytes that are what the
/// extension says (magic bytes; text is UTF-8), no polyglot, no active SVG, archives within the
/// caps. Refusals are 422 with a `delivery.*` key.
pub fn inspect(name: &str, bytes: &[u8], max_unzipped: u64) -> DomainResult<Checked> {
    if bytes.is_empty() {
        return Err(refuse("media.file_required"));
    }
    if bytes.len() > MAX_FILE_BYTES {
        return Err(refuse("delivery.too_large"));
    }
    let name = clean_name(name).ok_or_else(|| refuse("delivery.name_invalid"))?;
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_lowercase())
        .unwrap_or_default();
    let (mime, magic) = kind_of(&ext).ok_or_else(|| refuse("delivery.type_unsupported"))?;
    match magic {
        None => {
            let text = std::str::from_utf8(bytes).map_err(|_| refuse("delivery.type_mismatch"))?;
            if text.contains('\0') {
                return Err(refuse("delivery.type_mismatch"));
            }
            if ext == "svg" && svg_is_active(text) {
                return Err(refuse("delivery.active_content"));
            }
        }
        Some(signatures) => {
            if !signatures.is_empty() && !signatures.iter().any(|s| bytes.starts_with(s)) {
                return Err(refuse("delivery.type_mismatch"));
            }
            let archive = signatures.first() == Some(&&b"PK\x03\x04"[..]);
            if looks_polyglot(bytes, archive) {
                return Err(refuse("delivery.active_content"));
            }
            if archive {
                check_zip(bytes, max_unzipped)?;
            }
        }
    }
    Ok(Checked { name, mime })
}

/// Where a product file's bytes are kept in the file store.
pub fn file_key(product_id: i64, file_id: i64) -> String {
    format!("downloads/{product_id}/{file_id}")
}

/// A digital product's files.
pub async fn files(ctx: &Ctx, product_id: i64) -> DomainResult<Vec<FileRow>> {
    Ok(store::files_of(ctx.db.read(), product_id).await?)
}

/// Refuse before the bytes are stored: only a digital product takes files, and only so many.
pub async fn check_room(ctx: &Ctx, product_id: i64) -> DomainResult<()> {
    let p = catalog::get(ctx, product_id).await?;
    if p.row.kind != "digital" {
        return Err(refuse("delivery.not_digital"));
    }
    if files(ctx, product_id).await?.len() >= MAX_FILES {
        return Err(refuse("delivery.too_many"));
    }
    Ok(())
}

/// Record a file whose bytes were stored under [`file_key`]`(product_id, id)`.
pub async fn add_file(
    ctx: &Ctx,
    product_id: i64,
    id: i64,
    checked: &Checked,
    size: usize,
) -> DomainResult<FileRow> {
    let row = FileRow {
        id,
        product_id,
        name: checked.name.clone(),
        file_key: file_key(product_id, id),
        size: size as i64,
        mime: checked.mime.to_string(),
        position: 0,
        created_at: ctx.now(),
    };
    store::insert_file(ctx.db.write(), &row).await?;
    Ok(store::get_file(ctx.db.read(), id).await?)
}

/// Remove a file; its bytes are deleted by a job after the commit. Links to it stop working.
pub async fn remove_file(ctx: &Ctx, product_id: i64, id: i64) -> DomainResult<()> {
    let f = store::get_file(ctx.db.read(), id)
        .await
        .map_err(|_| DomainError::NotFound)?;
    if f.product_id != product_id {
        return Err(DomainError::NotFound);
    }
    let mut tx = ctx.db.begin().await?;
    if store::delete_file(&mut *tx, id).await? {
        crate::media::enqueue_delete(ctx, &mut tx, std::slice::from_ref(&f.file_key)).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

/// How long a membership purchase lasts.
enum Term {
    /// `membership_days` × quantity.
    Days(i64),
    /// `membership_months` × quantity, on the calendar of a time zone.
    Months { months: i64, tz: String },
    /// No period set: access without an end.
    Open,
}

impl Term {
    fn of(d: &catalog::Details, quantity: i64, tz: &str) -> Term {
        match (d.membership_months, d.membership_days) {
            (Some(m), _) if m > 0 => Term::Months {
                months: m.saturating_mul(quantity),
                tz: tz.to_string(),
            },
            (_, Some(days)) if days > 0 => Term::Days(days.saturating_mul(quantity)),
            _ => Term::Open,
        }
    }

    /// (starts_at, ends_at, period_anchor) of a purchase paid at `now`, by a holder whose
    /// current membership of the product (still running) is `before`: the new term follows it
    /// rather than overlapping it, and a run of monthly terms keeps counting from its first
    /// purchase — 31 January, 28 February, 31 March — instead of from each term's end.
    fn after(&self, before: Option<&EntitlementRow>, now: i64) -> (i64, Option<i64>, Option<i64>) {
        let start = before.and_then(|e| e.ends_at).unwrap_or(now);
        match self {
            Term::Open => (start, None, None),
            Term::Days(days) => (
                start,
                Some(start.saturating_add(days.saturating_mul(86_400_000))),
                None,
            ),
            Term::Months { months, tz } => {
                // Count on from the run's anchor when the current term ends on one of its
                // month boundaries (1 month at a time); else start a run here.
                let on = before.and_then(|e| e.period_anchor).and_then(|anchor| {
                    let k = crate::period::period_at(anchor, tz, 1, start)?;
                    (crate::period::boundary(anchor, tz, 1, k)? == start).then_some((anchor, k))
                });
                let (anchor, k) = on.unwrap_or((start, 0));
                let end = crate::period::boundary(anchor, tz, 1, k.saturating_add(*months))
                    // An unknown zone (settings check it) or a date past the calendar's range.
                    .unwrap_or_else(|| start.saturating_add(months.saturating_mul(2_629_746_000)));
                (start, Some(end), Some(anchor))
            }
        }
    }
}

/// Grant what a paid order's lines give: downloads for digital products, a membership period,
/// licence keys. Once per order and product (a repeated grant changes nothing).
///
/// A membership counted in months starts a recurring plan (`core::recurring`) — billed by the
/// gateway when `subscription` names the gateway's subscription, else renewed by order; an order
/// that pays a plan's period grants that period.
pub(crate) async fn grant(
    ctx: &Ctx,
    tx: &mut Tx,
    o: &OrderRow,
    subscription: Option<&str>,
) -> DomainResult<()> {
    let cfg = crate::checkout::config_in(tx).await?;
    let mut by_product: std::collections::BTreeMap<i64, Bought> = Default::default();
    for l in yiren_store::order::lines(&mut **tx, o.id).await? {
        let Some(pid) = l.product_id else { continue };
        let e = by_product.entry(pid).or_insert(Bought {
            kind: l.kind.clone(),
            title: l.title.clone(),
            variant_id: l.variant_id.unwrap_or_default(),
            ..Default::default()
        });
        e.quantity += l.quantity;
        let tax = if o.tax_inclusive == 1 { 0 } else { l.tax };
        e.amount = e
            .amount
            .saturating_add(l.subtotal - l.discount)
            .saturating_add(tax);
    }
    let now = ctx.now();
    for (product_id, bought) in by_product {
        let Bought {
            kind,
            title,
            quantity,
            ..
        } = &bought;
        let quantity = *quantity;
        let title = title.clone();
        let (kind, membership) = match kind.as_str() {
            "digital" => ("download", None),
            "license" => ("license", None),
            "membership" => {
                if let Some((starts, ends, anchor)) =
                    crate::recurring::paid_in(ctx, tx, o.id).await?
                {
                    ("membership", Some((starts, Some(ends), Some(anchor))))
                } else {
                    let m = membership_of(ctx, tx, o, product_id, &bought, subscription).await?;
                    ("membership", Some(m))
                }
            }
            _ => continue,
        };
        let (starts_at, ends_at, period_anchor) = membership.unwrap_or((now, None, None));
        let e = EntitlementRow {
            id: ctx.new_id(),
            order_id: o.id,
            customer_id: o.customer_id,
            email: o.email.clone(),
            product_id,
            kind: kind.into(),
            title,
            starts_at,
            ends_at,
            downloads: 0,
            download_limit: if kind == "download" {
                cfg.download_limit
            } else {
                0
            },
            revoked_at: None,
            created_at: now,
            period_anchor,
        };
        if store::insert_entitlement(tx, &e).await? && kind == "license" {
            crate::license::assign(ctx, tx, o, e.id, product_id, quantity).await?;
        }
    }
    Ok(())
}

/// A paid order's lines of one product, added up.
#[derive(Debug, Default)]
struct Bought {
    kind: String,
    title: String,
    variant_id: i64,
    quantity: i64,
    /// What the lines cost the customer (after discounts, with tax paid on top).
    amount: i64,
}

/// The membership a plain purchase grants — (starts_at, ends_at, anchor) after the holder's
/// running one — and, for one counted in months, the recurring plan it starts.
async fn membership_of(
    ctx: &Ctx,
    tx: &mut Tx,
    o: &OrderRow,
    product_id: i64,
    bought: &Bought,
    subscription: Option<&str>,
) -> DomainResult<(i64, Option<i64>, Option<i64>)> {
    let now = ctx.now();
    let details = match yiren_store::catalog::get_product(&mut **tx, product_id).await {
        Ok(p) => serde_json::from_str::<catalog::Details>(&p.details).ok(),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let before = store::latest_membership(tx, o.customer_id, &o.email, product_id)
        .await?
        .filter(|e| e.ends_at.is_some_and(|end| end > now));
    let tz =
        crate::settings::from_pairs(crate::settings::rows_in(ctx, tx).await?.to_vec()).time_zone;
    let term = details
        .map(|d| Term::of(&d, bought.quantity, &tz))
        .unwrap_or(Term::Open);
    let m = term.after(before.as_ref(), now);
    if let (Term::Months { months, tz }, (starts_at, Some(ends_at), Some(anchor_at))) = (&term, m) {
        let b = crate::recurring::Bought {
            product_id,
            variant_id: bought.variant_id,
            title: &bought.title,
            amount: bought.amount,
            every_months: *months,
            tz,
            starts_at,
            ends_at,
            anchor_at,
        };
        crate::recurring::start_in(ctx, tx, o, &b, subscription).await?;
    }
    Ok(m)
}

/// Revoke an order's entitlements (or one of them) inside the order's transaction; how many.
pub(crate) async fn revoke(
    ctx: &Ctx,
    tx: &mut Tx,
    order_id: i64,
    only: Option<i64>,
) -> DomainResult<u64> {
    crate::license::disable(tx, order_id, only).await?;
    Ok(store::revoke(tx, order_id, only, ctx.now()).await?)
}

/// The owner takes back one entitlement of an order (a chargeback, abuse); the timeline says so.
pub async fn revoke_one(ctx: &Ctx, order_id: i64, id: i64, actor: &str) -> DomainResult<()> {
    let mut tx = ctx.db.begin().await?;
    yiren_store::order::lock(&mut tx, order_id)
        .await
        .map_err(|_| DomainError::NotFound)?;
    if revoke(ctx, &mut tx, order_id, Some(id)).await? == 0 {
        return Err(DomainError::NotFound);
    }
    let detail = serde_json::json!({ "entitlement": id.to_string() });
    crate::order::log(ctx, &mut tx, order_id, "access_revoked", actor, detail).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

/// An order's entitlements.
pub async fn entitlements(ctx: &Ctx, order_id: i64) -> DomainResult<Vec<EntitlementRow>> {
    Ok(store::entitlements_of(ctx.db.read(), order_id).await?)
}

/// Whose an entitlement is, as the link MAC names it: the customer id, or the guest's email.
fn holder(e: &EntitlementRow) -> String {
    match e.customer_id {
        Some(c) => format!("customer:{c}"),
        None => format!("guest:{}", e.email.to_lowercase()),
    }
}

fn link_parts(e: &EntitlementRow, file_id: i64, exp: i64) -> [String; 4] {
    [
        file_id.to_string(),
        e.order_id.to_string(),
        holder(e),
        exp.to_string(),
    ]
}

/// A download link for one file of an entitlement, valid for [`LINK_MINUTES`] from now.
pub fn link(ctx: &Ctx, e: &EntitlementRow, file_id: i64) -> String {
    link_expiring(ctx, e, file_id, ctx.now() / 1000 + LINK_MINUTES * 60)
}

/// A download link expiring at `exp` (unix seconds); [`open`] refuses it unless `exp` is within
/// [`LINK_MINUTES`] from the moment it is used. Pages use [`link`]; tests sign other expiries.
pub fn link_expiring(ctx: &Ctx, e: &EntitlementRow, file_id: i64, exp: i64) -> String {
    let parts = link_parts(e, file_id, exp);
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    let sig = ctx.keys.mac(LINK_PURPOSE, &refs);
    format!("/downloads/{}/{file_id}?exp={exp}&sig={sig}", e.id)
}

/// A file an entitlement can still give, with a fresh link.
#[derive(Debug, Clone, Serialize)]
pub struct Offered {
    pub id: String,
    pub name: String,
    pub size: i64,
    pub url: String,
}

/// What a customer's page shows for one entitlement.
#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub revoked: bool,
    pub downloads_left: i64,
    /// Unix ms.
    pub ends_at: Option<i64>,
    pub files: Vec<Offered>,
    /// Licence keys and their status.
    pub keys: Vec<KeyShown>,
}

/// A licence key on a customer's page.
#[derive(Debug, Clone, Serialize)]
pub struct KeyShown {
    pub key: String,
    pub status: &'static str,
    pub activations: i64,
    pub limit: Option<i64>,
}

/// An order's entitlements as its page shows them: links only while there is something to give.
pub async fn shown(ctx: &Ctx, order_id: i64) -> DomainResult<Vec<Shown>> {
    let mut out = vec![];
    let keys = crate::license::of_order(ctx, order_id).await?;
    for e in entitlements(ctx, order_id).await? {
        let left = (e.download_limit - e.downloads).max(0);
        let live = e.revoked_at.is_none() && left > 0;
        let files = if e.kind == "download" && live {
            files(ctx, e.product_id)
                .await?
                .into_iter()
                .map(|f| Offered {
                    id: f.id.to_string(),
                    url: link(ctx, &e, f.id),
                    name: f.name,
                    size: f.size,
                })
                .collect()
        } else {
            vec![]
        };
        out.push(Shown {
            id: e.id.to_string(),
            kind: e.kind.clone(),
            title: e.title.clone(),
            revoked: e.revoked_at.is_some(),
            downloads_left: left,
            ends_at: e.ends_at,
            files,
            keys: keys
                .iter()
                .filter(|k| k.entitlement_id == Some(e.id))
                .map(|k| KeyShown {
                    key: k.license_key.clone(),
                    status: crate::license::status_of(k, ctx.now()),
                    activations: k.activations,
                    limit: k.activation_limit,
                })
                .collect(),
        });
    }
    Ok(out)
}

/// Why a download was refused: a bad or expired link (403) or nothing to give (404).
fn forbidden() -> DomainError {
    DomainError::Forbidden
}

/// Open a download: the link must be genuine and unexpired, the file one of the entitlement's
/// product, the entitlement not revoked and not used up — that last check and the count are one
/// guarded statement. Returns the file to serve.
pub async fn open(
    ctx: &Ctx,
    entitlement_id: i64,
    file_id: i64,
    exp: i64,
    sig: &str,
) -> DomainResult<FileRow> {
    let now_s = ctx.now() / 1000;
    if exp < now_s || exp > now_s + LINK_MINUTES * 60 || sig.len() != 64 {
        return Err(forbidden());
    }
    let e = store::get_entitlement(ctx.db.read(), entitlement_id)
        .await
        .map_err(|_| forbidden())?;
    let parts = link_parts(&e, file_id, exp);
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    if !ctx.keys.verify(LINK_PURPOSE, &refs, sig) {
        return Err(forbidden());
    }
    let f = store::get_file(ctx.db.read(), file_id)
        .await
        .map_err(|_| DomainError::NotFound)?;
    if f.product_id != e.product_id || e.kind != "download" {
        return Err(DomainError::NotFound);
    }
    if !store::count_download(ctx.db.write(), e.id).await? {
        return Err(forbidden());
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn zip_of(entries: &[(&str, &[u8])], symlink: Option<(&str, &str)>) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in entries {
            w.start_file(*name, opts).unwrap();
            w.write_all(bytes).unwrap();
        }
        if let Some((name, target)) = symlink {
            w.add_symlink(name, target, opts).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn key(r: DomainResult<Checked>) -> &'static str {
        match r {
            Err(DomainError::Invalid { key, .. }) => key,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn names_lose_paths_and_reserved_words() {
        assert_eq!(
            clean_name("../../etc/课程.pdf").as_deref(),
            Some("课程.pdf")
        );
        assert_eq!(clean_name("C:\\Users\\a\\b.zip").as_deref(), Some("b.zip"));
        assert_eq!(clean_name("a\0b\r\n.txt").as_deref(), Some("ab.txt"));
        assert_eq!(clean_name("report.pdf. . ").as_deref(), Some("report.pdf"));
        for bad in [
            "",
            "..",
            "../",
            ".htaccess",
            "CON.pdf",
            "nul",
            "Lpt1.txt",
            "a/",
            "   ",
        ] {
            assert_eq!(clean_name(bad), None, "{bad:?}");
        }
        assert_eq!(clean_name(&"长".repeat(151)), None);
    }

    #[test]
    fn uploads_must_be_what_their_extension_says() {
        let max = MAX_UNZIPPED_BYTES;
        let ok = inspect("讲义.pdf", b"%PDF-1.7\n...", max).unwrap();
        assert_eq!((ok.name.as_str(), ok.mime), ("讲义.pdf", "application/pdf"));
        assert!(inspect("notes.txt", "笔记".as_bytes(), max).is_ok());
        assert!(inspect(
            "logo.svg",
            b"<svg xmlns='http://www.w3.org/2000/svg'><rect width='1'/></svg>",
            max
        )
        .is_ok());
        assert_eq!(
            key(inspect("book.pdf", b"\x89PNG\r\n\x1a\nxxxx", max)),
            "delivery.type_mismatch"
        );
        assert_eq!(
            key(inspect("a.txt", b"\xff\xfe\x00", max)),
            "delivery.type_mismatch"
        );
        assert_eq!(
            key(inspect("tool.xyz", b"anything", max)),
            "delivery.type_unsupported"
        );
        assert_eq!(
            key(inspect("noext", b"anything", max)),
            "delivery.type_unsupported"
        );
        assert_eq!(
            key(inspect("CON.pdf", b"%PDF-1.7", max)),
            "delivery.name_invalid"
        );
        // Polyglots: an image that is also a page, an image that is also an archive (GIFAR).
        let mut jpeg_html = b"\xff\xd8\xff\xe0".to_vec();
        jpeg_html.extend_from_slice(b"<html><script>alert(1)</script>");
        assert_eq!(
            key(inspect("cover.jpg", &jpeg_html, max)),
            "delivery.active_content"
        );
        let mut gifar = b"GIF89a".to_vec();
        gifar.extend(zip_of(&[("a.class", b"x")], None));
        assert_eq!(
            key(inspect("cover.gif", &gifar, max)),
            "delivery.active_content"
        );
        // SVG that would run script.
        for svg in [
            "<svg><script>alert(1)</script></svg>",
            "<svg onload=alert(1)></svg>",
            "<svg><a href='javascript:alert(1)'>x</a></svg>",
            "<svg><foreignObject><iframe/></foreignObject></svg>",
        ] {
            assert_eq!(
                key(inspect("x.svg", svg.as_bytes(), max)),
                "delivery.active_content",
                "{svg}"
            );
        }
    }

    #[test]
    fn archives_are_unpacked_within_caps() {
        let small = zip_of(&[("课程/01.mp4", b"abc"), ("课程/02.mp4", b"def")], None);
        assert!(inspect("course.zip", &small, 1 << 20).is_ok());
        // A bomb: 8 MiB of zeros compresses to a few KiB; the cap is what it unpacks to.
        let zeros = vec![0u8; 8 << 20];
        let bomb = zip_of(&[("zeros.bin", &zeros)], None);
        assert!(bomb.len() < 64 << 10);
        assert_eq!(
            key(inspect("bomb.zip", &bomb, 4 << 20)),
            "delivery.zip_too_large"
        );
        assert!(inspect("bomb.zip", &bomb, 16 << 20).is_ok());
        // Too many entries.
        let names: Vec<String> = (0..=MAX_ZIP_ENTRIES).map(|i| format!("{i}.txt")).collect();
        let many: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
        assert_eq!(
            key(inspect("many.zip", &zip_of(&many, None), 1 << 30)),
            "delivery.zip_too_large"
        );
        // Links and climbing names.
        let link = zip_of(&[("a.txt", b"a")], Some(("passwd", "/etc/passwd")));
        assert_eq!(
            key(inspect("link.zip", &link, 1 << 20)),
            "delivery.zip_unsafe"
        );
        let slip = zip_of(&[("../../evil.sh", b"rm -rf /")], None);
        assert_eq!(
            key(inspect("slip.zip", &slip, 1 << 20)),
            "delivery.zip_unsafe"
        );
        assert_eq!(
            key(inspect("broken.zip", b"PK\x03\x04garbage", 1 << 20)),
            "delivery.zip_invalid"
        );
    }
}
