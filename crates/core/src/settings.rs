//! Site settings: name, default language, currency and time zone.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use yiren_store::settings as store;

use crate::error::{DomainError, DomainResult};
use crate::{Ctx, Locale};

/// Currencies a shop may choose as its default (ISO 4217, with their minor-unit exponent).
pub const CURRENCIES: &[(&str, u8)] = &[
    ("CNY", 2),
    ("USD", 2),
    ("EUR", 2),
    ("HKD", 2),
    ("TWD", 2),
    ("JPY", 0),
    ("GBP", 2),
    ("SGD", 2),
    ("AUD", 2),
    ("CAD", 2),
    ("KRW", 0),
    ("MYR", 2),
    ("THB", 2),
    ("CHF", 2),
    ("NZD", 2),
];

/// The site's settings.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SiteSettings {
    /// Shown in titles and mail.
    pub name: String,
    /// Language for visitors whose browser asks for none we speak.
    pub default_locale: Locale,
    /// ISO 4217 code.
    pub currency: String,
    /// IANA time zone, e.g. Asia/Shanghai.
    pub time_zone: String,
}

impl Default for SiteSettings {
    fn default() -> Self {
        SiteSettings {
            name: "Yiren".into(),
            default_locale: Locale::ZhCn,
            currency: "CNY".into(),
            time_zone: "Asia/Shanghai".into(),
        }
    }
}

impl SiteSettings {
    /// Validate raw input into settings.
    pub fn parse(
        name: &str,
        locale: &str,
        currency: &str,
        time_zone: &str,
    ) -> DomainResult<SiteSettings> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(DomainError::invalid("site_name", "settings.name_invalid"));
        }
        let default_locale = Locale::parse(locale)
            .ok_or(DomainError::invalid("locale", "settings.locale_invalid"))?;
        let currency = currency.trim().to_ascii_uppercase();
        if !CURRENCIES.iter().any(|(c, _)| *c == currency) {
            return Err(DomainError::invalid(
                "currency",
                "settings.currency_invalid",
            ));
        }
        let time_zone = time_zone.trim();
        if time_zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(DomainError::invalid(
                "time_zone",
                "settings.time_zone_invalid",
            ));
        }
        Ok(SiteSettings {
            name: name.to_string(),
            default_locale,
            currency,
            time_zone: time_zone.to_string(),
        })
    }
}

/// The settings rows as last read, shared by the checkout, the cart and mails (each page and
/// order used to read them several times). A copy is used while no settings write happened in
/// this process since it was read and it is younger than [`CACHE_TTL`] (the bound on how long
/// another process's change, or one committed while it was being read, can go unseen).
#[derive(Clone, Default)]
pub struct Cache(Arc<Mutex<Option<Cached>>>);

struct Cached {
    writes: u64,
    at: Instant,
    rows: Arc<Vec<(String, String)>>,
}

/// How long a copy of the settings is used at most.
pub const CACHE_TTL: Duration = Duration::from_secs(1);

/// Every setting row (key, value), from the copy when it is current.
pub async fn rows(ctx: &Ctx) -> DomainResult<Arc<Vec<(String, String)>>> {
    let writes = store::writes();
    if let Some(rows) = current(ctx) {
        return Ok(rows);
    }
    let rows = Arc::new(store::all(ctx.db.read()).await?);
    *ctx.settings_cache.0.lock().expect("not poisoned") = Some(Cached {
        writes,
        at: Instant::now(),
        rows: rows.clone(),
    });
    Ok(rows)
}

fn current(ctx: &Ctx) -> Option<Arc<Vec<(String, String)>>> {
    let writes = store::writes();
    let copy = ctx.settings_cache.0.lock().expect("not poisoned");
    copy.as_ref()
        .filter(|c| c.writes == writes && c.at.elapsed() < CACHE_TTL)
        .map(|c| c.rows.clone())
}

/// Every setting row inside a transaction: the copy when it is current, else read through the
/// transaction (a second pooled connection could starve the pool when many transactions do
/// this at once) and not kept (the transaction may hold writes not committed yet).
pub async fn rows_in(
    ctx: &Ctx,
    tx: &mut yiren_store::Tx,
) -> DomainResult<Arc<Vec<(String, String)>>> {
    match current(ctx) {
        Some(rows) => Ok(rows),
        None => Ok(Arc::new(store::all(&mut **tx).await?)),
    }
}

/// One setting's raw value, if set (from the copy when it is current).
pub async fn value(ctx: &Ctx, key: &str) -> DomainResult<Option<String>> {
    Ok(rows(ctx)
        .await?
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone()))
}

/// Read the settings (defaults for anything unset).
pub async fn load(ctx: &Ctx) -> DomainResult<SiteSettings> {
    Ok(from_pairs(rows(ctx).await?.iter().cloned().collect()))
}

/// The settings from (key, value) rows as [`store::all`] returns them.
pub fn from_pairs(pairs: Vec<(String, String)>) -> SiteSettings {
    let mut s = SiteSettings::default();
    for (k, v) in pairs {
        match k.as_str() {
            "site.name" => s.name = v,
            "site.default_locale" => s.default_locale = Locale::parse(&v).unwrap_or_default(),
            "site.currency" => s.currency = v,
            "site.time_zone" => s.time_zone = v,
            _ => {}
        }
    }
    s
}

/// Write the settings inside a transaction.
pub async fn save_in(tx: &mut yiren_store::Tx, s: &SiteSettings, now: i64) -> DomainResult<()> {
    store::put(&mut **tx, "site.name", &s.name, now).await?;
    store::put(
        &mut **tx,
        "site.default_locale",
        s.default_locale.tag(),
        now,
    )
    .await?;
    store::put(&mut **tx, "site.currency", &s.currency, now).await?;
    store::put(&mut **tx, "site.time_zone", &s.time_zone, now).await?;
    Ok(())
}

/// Write the settings.
pub async fn save(ctx: &Ctx, s: &SiteSettings) -> DomainResult<()> {
    let mut tx = ctx.db.begin().await?;
    save_in(&mut tx, s, ctx.now()).await?;
    tx.commit().await.map_err(yiren_store::StoreError::from)?;
    store::note_write();
    crate::catalog::changed();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_input_is_checked_field_by_field() {
        assert!(SiteSettings::parse("小店", "zh-CN", "cny", "Asia/Shanghai").is_ok());
        assert!(SiteSettings::parse("", "en", "USD", "UTC").is_err());
        assert!(SiteSettings::parse("Shop", "fr", "USD", "UTC").is_err());
        assert!(SiteSettings::parse("Shop", "en", "XXX", "UTC").is_err());
        assert!(SiteSettings::parse("Shop", "en", "USD", "Mars/Base").is_err());
    }
}
