//! Licence keys for software a shop sells: taken from the product's uploaded pool or generated
//! from its pattern when a paid order grants them, shown to the buyer on the order page, and
//! checked by the seller's software through the public licence API (activate / validate /
//! deactivate, in the spirit of Lemon Squeezy's), with a limit on devices (*instances*).
//!
//! Language: a key's *status* is `inactive` (sold, on no device), `active` (on one or more),
//! `disabled` (order refunded or access withdrawn) or — computed when read — `expired` (past its
//! `license_days`). Pool keys (`available`) belong to nobody and the API does not know them.
//!
//! Boundaries: [`assign`] and [`disable`] run inside the order's transaction (through
//! `delivery::grant` / `delivery::revoke`); activation counts are guarded UPDATEs, so the limit
//! holds whatever arrives at once.

use serde::Serialize;
use yiren_store::license::{self as store, InstanceRow, LicenseRow};
use yiren_store::order::OrderRow;
use yiren_store::{StoreError, Tx};

use crate::error::{DomainError, DomainResult};
use crate::{catalog, Ctx};

/// How generated keys look when the product sets no pattern: 20 random characters, 100 bits.
pub const DEFAULT_PATTERN: &str = "#####-#####-#####-#####";
/// The characters `#` stands for: no 0/O or 1/I, so a key read aloud or typed is unambiguous.
const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Random characters a pattern must have (5 bits each: 80 bits, beyond guessing over HTTP).
const MIN_RANDOM: usize = 16;
/// Unknown keys one address may try per window before it must wait (guessing keys stays hopeless).
pub const MISSES_PER_WINDOW: i64 = 30;
const MISS_WINDOW_MS: i64 = 600_000;
/// Keys one upload may add to a pool.
pub const MAX_POOL_UPLOAD: usize = 10_000;

/// Whether a pattern can make keys: at most 64 characters of `A-Z`, `0-9`, `-` and at least 16
/// `#` (each a random character).
pub fn pattern_ok(p: &str) -> bool {
    p.len() <= 64
        && p.chars().filter(|c| *c == '#').count() >= MIN_RANDOM
        && p.chars()
            .all(|c| c == '#' || c == '-' || c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// A key from `pattern`, every `#` replaced by a random character.
pub fn generate(rng: &crate::Rng, pattern: &str) -> String {
    let mut bytes = vec![0u8; pattern.len()];
    rng.fill(&mut bytes);
    pattern
        .chars()
        .zip(bytes)
        .map(|(c, b)| {
            if c == '#' {
                ALPHABET[(b & 31) as usize] as char
            } else {
                c
            }
        })
        .collect()
}

/// A key as the seller's software sends it: trimmed; 8–100 visible ASCII characters.
fn key_ok(k: &str) -> bool {
    (8..=100).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic())
}

/// Add keys to a product's pool, one per line (blank lines skipped, a key already known skipped);
/// how many were added. Only a licence product has a pool.
pub async fn add_pool(ctx: &Ctx, product_id: i64, text: &str) -> DomainResult<usize> {
    let p = catalog::get(ctx, product_id).await?;
    if p.row.kind != "license" {
        return Err(DomainError::invalid("keys", "license.not_license"));
    }
    let keys: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if keys.is_empty() || keys.len() > MAX_POOL_UPLOAD || !keys.iter().all(|k| key_ok(k)) {
        return Err(DomainError::invalid("keys", "license.pool_invalid"));
    }
    let mut tx = ctx.db.begin().await?;
    let mut added = 0;
    for k in keys {
        let row = LicenseRow {
            id: ctx.new_id(),
            product_id,
            license_key: k.to_string(),
            status: "available".into(),
            order_id: None,
            entitlement_id: None,
            activation_limit: None,
            activations: 0,
            expires_at: None,
            created_at: ctx.now(),
            assigned_at: None,
        };
        added += store::insert(&mut *tx, &row).await? as usize;
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(added)
}

/// Keys left in a product's pool.
pub async fn available(ctx: &Ctx, product_id: i64) -> DomainResult<i64> {
    Ok(store::available(ctx.db.read(), product_id).await?)
}

/// An order's keys.
pub async fn of_order(ctx: &Ctx, order_id: i64) -> DomainResult<Vec<LicenseRow>> {
    Ok(store::of_order(ctx.db.read(), order_id).await?)
}

/// Give a paid order `quantity` keys of a product: from the pool while it lasts, then generated
/// from the product's pattern. The product's activation limit and licence length apply.
pub(crate) async fn assign(
    ctx: &Ctx,
    tx: &mut Tx,
    o: &OrderRow,
    entitlement_id: i64,
    product_id: i64,
    quantity: i64,
) -> DomainResult<()> {
    let details = match yiren_store::catalog::get_product(&mut **tx, product_id).await {
        Ok(p) => serde_json::from_str::<catalog::Details>(&p.details).unwrap_or_default(),
        Err(StoreError::NotFound) => catalog::Details::default(),
        Err(e) => return Err(e.into()),
    };
    let now = ctx.now();
    let expires_at = details
        .license_days
        .map(|d| now.saturating_add(d.saturating_mul(86_400_000)));
    let pattern = details
        .license_pattern
        .filter(|p| pattern_ok(p))
        .unwrap_or_else(|| DEFAULT_PATTERN.to_string());
    for _ in 0..quantity.clamp(0, 1000) {
        let pooled = store::take_from_pool(
            tx,
            product_id,
            o.id,
            entitlement_id,
            details.activation_limit,
            expires_at,
            now,
        )
        .await?;
        if pooled.is_some() {
            continue;
        }
        loop {
            let row = LicenseRow {
                id: ctx.new_id(),
                product_id,
                license_key: generate(&ctx.rng, &pattern),
                status: "inactive".into(),
                order_id: Some(o.id),
                entitlement_id: Some(entitlement_id),
                activation_limit: details.activation_limit,
                activations: 0,
                expires_at,
                created_at: now,
                assigned_at: Some(now),
            };
            if store::insert(&mut **tx, &row).await? {
                break;
            }
        }
    }
    Ok(())
}

/// Disable an order's keys (or one entitlement's) inside the order's transaction.
pub(crate) async fn disable(
    tx: &mut Tx,
    order_id: i64,
    entitlement: Option<i64>,
) -> DomainResult<u64> {
    Ok(store::disable(tx, order_id, entitlement).await?)
}

/// A key's status as the API reports it (`expired` once past its end).
pub fn status_of(k: &LicenseRow, now: i64) -> &'static str {
    match k.status.as_str() {
        "disabled" => "disabled",
        _ if k.expires_at.is_some_and(|e| e <= now) => "expired",
        "active" => "active",
        _ => "inactive",
    }
}

/// Why the API refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A required field is missing or malformed (422).
    Invalid,
    /// No such key (404).
    NotFound,
    /// No such device for this key (404).
    InstanceNotFound,
    /// Every allowed device is taken (400).
    LimitReached,
    /// The key was disabled (400).
    Disabled,
    /// The key's time is up (400).
    Expired,
    /// Too many unknown keys from this address (429).
    Throttled,
}

impl Refusal {
    /// The message key (`license.*`).
    pub fn key(self) -> &'static str {
        match self {
            Refusal::Invalid => "license.invalid_request",
            Refusal::NotFound => "license.not_found",
            Refusal::InstanceNotFound => "license.instance_not_found",
            Refusal::LimitReached => "license.limit_reached",
            Refusal::Disabled => "license.disabled",
            Refusal::Expired => "license.expired",
            Refusal::Throttled => "license.throttled",
        }
    }
    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            Refusal::Invalid => 422,
            Refusal::NotFound | Refusal::InstanceNotFound => 404,
            Refusal::Throttled => 429,
            _ => 400,
        }
    }
}

/// A key, and the device the call was about, as the API shows them.
#[derive(Debug, Clone, Serialize)]
pub struct Licensed {
    pub license_key: KeyView,
    pub instance: Option<InstanceView>,
    pub meta: Meta,
}

/// A key in API replies.
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    pub id: i64,
    pub status: &'static str,
    pub key: String,
    pub activation_limit: Option<i64>,
    pub activation_usage: i64,
    pub created_at: String,
    pub expires_at: Option<String>,
}

/// A device in API replies.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceView {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

/// What the key was sold with.
#[derive(Debug, Clone, Serialize)]
pub struct Meta {
    pub order_id: Option<i64>,
    pub product_id: i64,
    pub product_name: String,
    pub customer_email: String,
}

async fn view(ctx: &Ctx, k: &LicenseRow, instance: Option<&InstanceRow>) -> DomainResult<Licensed> {
    let e = match k.entitlement_id {
        Some(id) => yiren_store::delivery::get_entitlement(ctx.db.read(), id)
            .await
            .ok(),
        None => None,
    };
    Ok(Licensed {
        license_key: KeyView {
            id: k.id,
            status: status_of(k, ctx.now()),
            key: k.license_key.clone(),
            activation_limit: k.activation_limit,
            activation_usage: k.activations,
            created_at: crate::clock::rfc3339(k.assigned_at.unwrap_or(k.created_at)),
            expires_at: k.expires_at.map(crate::clock::rfc3339),
        },
        instance: instance.map(|i| InstanceView {
            id: i.id.clone(),
            name: i.name.clone(),
            created_at: crate::clock::rfc3339(i.created_at),
        }),
        meta: Meta {
            order_id: k.order_id,
            product_id: k.product_id,
            product_name: e.as_ref().map(|e| e.title.clone()).unwrap_or_default(),
            customer_email: e.map(|e| e.email).unwrap_or_default(),
        },
    })
}

/// The sold key with this text, or the refusal. An address that sent too many unknown keys in
/// the current window is refused before the lookup, so the answer tells it nothing.
async fn find(ctx: &Ctx, key: &str, ip: &str) -> DomainResult<Result<LicenseRow, Refusal>> {
    let key = key.trim();
    if key.is_empty() {
        return Ok(Err(Refusal::Invalid));
    }
    let now = ctx.now();
    let window = now - now.rem_euclid(MISS_WINDOW_MS);
    let counter = format!("license-miss:{ip}");
    let seen = yiren_store::throttle::find(ctx.db.read(), &counter).await?;
    if seen.is_some_and(|r| r.last_failure_at == window && r.failures >= MISSES_PER_WINDOW) {
        return Ok(Err(Refusal::Throttled));
    }
    let found = if key_ok(key) {
        store::by_key(ctx.db.read(), key).await?
    } else {
        None
    };
    match found {
        Some(k) => Ok(Ok(k)),
        None => {
            yiren_store::throttle::bump_window(
                ctx.db.write(),
                &counter,
                window,
                window + MISS_WINDOW_MS,
            )
            .await?;
            Ok(Err(Refusal::NotFound))
        }
    }
}

/// Refuse a key that cannot be used now.
fn usable(k: &LicenseRow, now: i64) -> Result<(), Refusal> {
    match status_of(k, now) {
        "disabled" => Err(Refusal::Disabled),
        "expired" => Err(Refusal::Expired),
        _ => Ok(()),
    }
}

/// Activate a key on a new device called `name` (1–200 characters).
pub async fn activate(
    ctx: &Ctx,
    key: &str,
    name: &str,
    ip: &str,
) -> DomainResult<Result<Licensed, Refusal>> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Ok(Err(Refusal::Invalid));
    }
    let k = match find(ctx, key, ip).await? {
        Ok(k) => k,
        Err(r) => return Ok(Err(r)),
    };
    if let Err(r) = usable(&k, ctx.now()) {
        return Ok(Err(r));
    }
    let mut tx = ctx.db.begin().await?;
    if !store::add_activation(&mut tx, k.id).await? {
        drop(tx);
        // Disabled in the meantime, or every device taken.
        let now = store::get(ctx.db.read(), k.id).await?;
        return Ok(Err(usable(&now, ctx.now())
            .err()
            .unwrap_or(Refusal::LimitReached)));
    }
    let mut id = [0u8; 16];
    ctx.rng.fill(&mut id);
    let instance = InstanceRow {
        id: hex::encode(id),
        license_id: k.id,
        name: name.to_string(),
        created_at: ctx.now(),
    };
    store::insert_instance(&mut tx, &instance).await?;
    tx.commit().await.map_err(StoreError::from)?;
    let k = store::get(ctx.db.read(), k.id).await?;
    Ok(Ok(view(ctx, &k, Some(&instance)).await?))
}

/// Check a key (and, when given, that it is activated on that device).
pub async fn validate(
    ctx: &Ctx,
    key: &str,
    instance_id: Option<&str>,
    ip: &str,
) -> DomainResult<Result<Licensed, Refusal>> {
    let k = match find(ctx, key, ip).await? {
        Ok(k) => k,
        Err(r) => return Ok(Err(r)),
    };
    let instance = match instance_id.map(str::trim).filter(|i| !i.is_empty()) {
        Some(i) => match store::instance(ctx.db.read(), k.id, i).await? {
            Some(i) => Some(i),
            None => return Ok(Err(Refusal::InstanceNotFound)),
        },
        None => None,
    };
    if let Err(r) = usable(&k, ctx.now()) {
        return Ok(Err(r));
    }
    Ok(Ok(view(ctx, &k, instance.as_ref()).await?))
}

/// Release a device, so the key can be activated elsewhere. Allowed on a disabled or expired
/// key too (a customer moving away from it).
pub async fn deactivate(
    ctx: &Ctx,
    key: &str,
    instance_id: &str,
    ip: &str,
) -> DomainResult<Result<Licensed, Refusal>> {
    let k = match find(ctx, key, ip).await? {
        Ok(k) => k,
        Err(r) => return Ok(Err(r)),
    };
    let instance_id = instance_id.trim();
    if instance_id.is_empty() {
        return Ok(Err(Refusal::Invalid));
    }
    let mut tx = ctx.db.begin().await?;
    if !store::remove_instance(&mut tx, k.id, instance_id).await? {
        return Ok(Err(Refusal::InstanceNotFound));
    }
    tx.commit().await.map_err(StoreError::from)?;
    let k = store::get(ctx.db.read(), k.id).await?;
    Ok(Ok(view(ctx, &k, None).await?))
}

/// A sold key with its devices, as the owner sees it.
#[derive(Debug, Clone)]
pub struct Owned {
    pub row: LicenseRow,
    pub instances: Vec<InstanceRow>,
}

/// Sold keys (newest first, ids below `before`), optionally of one product or order.
pub async fn list(
    ctx: &Ctx,
    f: &store::KeyFilter,
    before: i64,
    limit: i64,
) -> DomainResult<Vec<LicenseRow>> {
    Ok(store::list_before(ctx.db.read(), f, before, limit.clamp(1, 250)).await?)
}

/// One sold key with its devices (a pool key is nobody's yet: not found).
pub async fn owned(ctx: &Ctx, id: i64) -> DomainResult<Owned> {
    let row = match store::get(ctx.db.read(), id).await {
        Ok(k) if k.status != "available" => k,
        Ok(_) | Err(StoreError::NotFound) => return Err(DomainError::NotFound),
        Err(e) => return Err(e.into()),
    };
    Ok(Owned {
        instances: store::instances(ctx.db.read(), id).await?,
        row,
    })
}

/// What the owner may change on a sold key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    /// Off: every call with the key is refused (`disabled`); on again: usable; none: as it is.
    pub enabled: Option<bool>,
    /// Devices allowed (1 to 10,000); none: no limit.
    pub activation_limit: Option<i64>,
    /// When it stops working; none: never.
    pub expires_at: Option<i64>,
}

/// Change a sold key; the order's timeline says who did what.
pub async fn change(ctx: &Ctx, id: i64, c: &KeyChange, actor: &str) -> DomainResult<Owned> {
    if c.activation_limit
        .is_some_and(|n| !(1..=10_000).contains(&n))
    {
        return Err(DomainError::invalid(
            "activation_limit",
            "license.limit_invalid",
        ));
    }
    let before = owned(ctx, id).await?.row;
    let mut tx = ctx.db.begin().await?;
    if !store::update_sold(&mut tx, id, c.enabled, c.activation_limit, c.expires_at).await? {
        return Err(DomainError::invalid(
            "activation_limit",
            "license.limit_below_devices",
        ));
    }
    if let Some(order_id) = before.order_id {
        let detail = serde_json::json!({
            "license": id, "enabled": c.enabled, "activation_limit": c.activation_limit,
            "expires_at": c.expires_at,
        });
        crate::order::log(ctx, &mut tx, order_id, "license_changed", actor, detail).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    owned(ctx, id).await
}

/// Release one device of a sold key for its owner (a customer who lost the machine).
pub async fn release(ctx: &Ctx, id: i64, instance_id: &str) -> DomainResult<Owned> {
    owned(ctx, id).await?;
    let mut tx = ctx.db.begin().await?;
    if !store::remove_instance(&mut tx, id, instance_id).await? {
        return Err(DomainError::NotFound);
    }
    tx.commit().await.map_err(StoreError::from)?;
    owned(ctx, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_need_enough_randomness() {
        assert!(pattern_ok(DEFAULT_PATTERN));
        assert!(pattern_ok("YIREN-################"));
        assert!(!pattern_ok("YIREN-###############"), "15 random characters");
        assert!(!pattern_ok("yiren-################"), "lower case");
        assert!(!pattern_ok(&"#".repeat(65)));
        let rng = crate::Rng::os();
        let a = generate(&rng, "PRO-####-####-####-####");
        let b = generate(&rng, "PRO-####-####-####-####");
        assert_ne!(a, b);
        assert!(a.starts_with("PRO-") && a.len() == 23);
        assert!(
            a[4..].bytes().all(|c| c == b'-' || ALPHABET.contains(&c)),
            "{a}"
        );
    }
}
