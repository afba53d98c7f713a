//! The product pool: one product model for every kind a one-person business sells (physical,
//! digital, licence key, membership, service, crowdfunding campaign), with up to three options,
//! variants priced per currency in minor units, stock per variant or untracked, per-language text,
//! and stable handles (a renamed handle keeps redirecting).
//!
//! Every change is written in one transaction together with a `catalog.index` job, so the search
//! index follows the catalog through the outbox.

pub mod collection;
pub mod csv;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use yiren_store::catalog::{
    self as store, AdjustmentRow, PriceRow, ProductFilter, ProductRow, TranslationRow, VariantRow,
};
use yiren_store::StoreError;

use crate::error::{DomainError, DomainResult};
use crate::event;
use crate::job::{self, EnqueueOptions};
use crate::{money, Ctx, Locale};

/// Bumped after every committed catalog change in this process (products, stock, collections,
/// site settings): pages cached under an older value are rendered again.
static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The current catalog generation (see [`changed`]).
pub fn generation() -> u64 {
    GENERATION.load(std::sync::atomic::Ordering::Acquire)
}

/// Bumped when what products *are* changes (text, prices, options, collections, status) — not
/// when only their stock moves; the copies [`for_variant`] keeps follow it.
static CONTENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Record that the catalog (or anything a shop page shows) changed.
pub fn changed() {
    CONTENT.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    GENERATION.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
}

/// Record that stock (or a campaign's progress) moved: shop pages are rendered again, copies of
/// product content stay.
pub fn stock_changed() {
    GENERATION.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
}

/// Copies of products (and their collections) for the cart and the checkout, which price every
/// line of every page view and order. A copy is used while no content change happened in this
/// process since it was read and it is younger than [`COPY_TTL`] (the bound on how long another
/// process's edit can go unseen); stock is never taken from it.
#[derive(Clone, Default)]
pub struct Cache(Arc<std::sync::Mutex<HashMap<i64, Copy>>>);

struct Copy {
    content: u64,
    at: std::time::Instant,
    product: Arc<(Product, Vec<i64>)>,
}

/// How long a product copy is used at most.
pub const COPY_TTL: std::time::Duration = std::time::Duration::from_secs(1);
/// Copies kept at most (the cache starts over when full).
const MAX_COPIES: usize = 2_000;

/// The product of a variant, with the collections it is in, for pricing: text, prices and
/// options from a copy while it is current, the variant's own row (stock) read now. Not found
/// when the variant or its product is gone.
pub async fn for_variant(ctx: &Ctx, variant_id: i64) -> DomainResult<(Product, Vec<i64>)> {
    let row = store::get_variant(ctx.db.read(), variant_id)
        .await
        .map_err(store_err)?;
    let content = CONTENT.load(std::sync::atomic::Ordering::Acquire);
    let kept = {
        let copies = ctx.catalog_cache.0.lock().expect("not poisoned");
        copies
            .get(&row.product_id)
            .filter(|c| c.content == content && c.at.elapsed() < COPY_TTL)
            .map(|c| c.product.clone())
    };
    let copy = match kept {
        Some(c) if c.0.variants.iter().any(|v| v.row.id == variant_id) => c,
        _ => {
            let p = get(ctx, row.product_id).await?;
            let collections = store::collections_of(ctx.db.read(), row.product_id).await?;
            let copy = Arc::new((p, collections));
            let mut copies = ctx.catalog_cache.0.lock().expect("not poisoned");
            if copies.len() >= MAX_COPIES {
                copies.clear();
            }
            copies.insert(
                row.product_id,
                Copy {
                    content,
                    at: std::time::Instant::now(),
                    product: copy.clone(),
                },
            );
            copy
        }
    };
    let (mut p, collections) = (copy.0.clone(), copy.1.clone());
    if let Some(v) = p.variants.iter_mut().find(|v| v.row.id == variant_id) {
        v.row = row;
    }
    Ok((p, collections))
}

/// The job kind that brings one product's search document up to date.
pub const INDEX_KIND: &str = "catalog.index";

/// Most variants a product may have.
pub const MAX_VARIANTS: usize = 100;
/// Most options (size, colour, material).
pub const MAX_OPTIONS: usize = 3;
/// Largest stock quantity or adjustment.
pub const MAX_QUANTITY: i64 = 1_000_000_000;

/// What kind of thing a product is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Physical,
    Digital,
    License,
    Membership,
    Service,
    Crowdfunding,
}

impl Kind {
    /// Every kind, in the order the admin lists them.
    pub const ALL: [Kind; 6] = [
        Kind::Physical,
        Kind::Digital,
        Kind::License,
        Kind::Membership,
        Kind::Service,
        Kind::Crowdfunding,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Physical => "physical",
            Kind::Digital => "digital",
            Kind::License => "license",
            Kind::Membership => "membership",
            Kind::Service => "service",
            Kind::Crowdfunding => "crowdfunding",
        }
    }

    /// Parse a stored or submitted name.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether its variants are shipped by default.
    pub fn ships(self) -> bool {
        matches!(self, Kind::Physical | Kind::Crowdfunding)
    }
}

/// Draft (only staff see it), active (for sale once its publish time has come), archived.
pub const STATUSES: [&str; 3] = ["draft", "active", "archived"];

/// What the kind needs beyond the common fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Details {
    /// Membership: days of access a purchase gives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership_days: Option<i64>,
    /// Membership: months of access a purchase gives, counted on the calendar in the shop's time
    /// zone (bought on 31 January, a month runs to 28/29 February). Either this or
    /// `membership_days`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership_months: Option<i64>,
    /// Crowdfunding: target in minor units of the shop currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_amount: Option<i64>,
    /// Crowdfunding: when the campaign closes (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<i64>,
    /// Service: ask the buyer for a date / a note when booking.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub booking: bool,
    /// Licence key: devices (instances) one key may be activated on; None: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_limit: Option<i64>,
    /// Licence key: days a key works after purchase; None: for ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_days: Option<i64>,
    /// Licence key: how generated keys look, `#` standing for a random character (see
    /// `license::generate`); None: the default pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_pattern: Option<String>,
}

/// One option and its values in display order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductOption {
    pub name: String,
    pub values: Vec<String>,
}

/// A price in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    pub currency: String,
    pub amount: i64,
    pub compare_at: Option<i64>,
}

/// A variant as submitted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VariantInput {
    /// An existing variant of this product to update; None for a new one.
    pub id: Option<i64>,
    /// One value per option, in option order.
    pub values: Vec<String>,
    pub sku: String,
    pub barcode: String,
    pub grams: i64,
    /// None: as the kind suggests.
    pub requires_shipping: Option<bool>,
    pub cost: Option<i64>,
    pub track_inventory: bool,
    /// `deny` or `continue` selling when out of stock.
    pub continue_selling: bool,
    /// Stock of a new variant (existing stock changes only through adjustments).
    pub initial_stock: i64,
    /// At least the shop's currency.
    pub prices: Vec<Price>,
}

/// A product's text in another language.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Translation {
    pub locale: String,
    pub title: String,
    pub body: String,
    pub seo_title: String,
    pub seo_description: String,
    /// Option names in this language, in option order (an empty one keeps the default).
    #[serde(default)]
    pub options: Vec<String>,
    /// Option values in this language, by the default language's value (`白` → `White`).
    #[serde(default)]
    pub values: BTreeMap<String, String>,
}

/// How option names and values are stored per language.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct OptionText {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    names: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    values: BTreeMap<String, String>,
}

/// A product as submitted (admin form, API, import).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductInput {
    pub title: String,
    /// Markdown; sanitised when rendered.
    pub body: String,
    /// Empty: made from the title.
    pub handle: String,
    pub kind: Kind,
    pub status: String,
    pub vendor: String,
    pub product_type: String,
    /// Comma-separated.
    pub tags: String,
    pub seo_title: String,
    pub seo_description: String,
    pub publish_at: Option<i64>,
    pub details: Details,
    /// Option names (0 to 3); values come from the variants.
    pub options: Vec<String>,
    /// At least one.
    pub variants: Vec<VariantInput>,
    pub translations: Vec<Translation>,
}

impl Default for ProductInput {
    fn default() -> Self {
        ProductInput {
            title: String::new(),
            body: String::new(),
            handle: String::new(),
            kind: Kind::Physical,
            status: "draft".into(),
            vendor: String::new(),
            product_type: String::new(),
            tags: String::new(),
            seo_title: String::new(),
            seo_description: String::new(),
            publish_at: None,
            details: Details::default(),
            options: vec![],
            variants: vec![VariantInput::default()],
            translations: vec![],
        }
    }
}

/// A variant with its prices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub row: VariantRow,
    pub prices: Vec<Price>,
}

impl Variant {
    /// The price in `currency`, if set.
    pub fn price(&self, currency: &str) -> Option<&Price> {
        self.prices.iter().find(|p| p.currency == currency)
    }

    /// "M / Red"; empty for a product without options.
    pub fn title(&self) -> String {
        [&self.row.option1, &self.row.option2, &self.row.option3]
            .into_iter()
            .filter(|v| !v.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(" / ")
    }

    /// Whether a visitor may put it in the cart.
    pub fn available(&self) -> bool {
        self.row.track_inventory == 0
            || self.row.inventory_quantity > 0
            || self.row.inventory_policy == "continue"
    }
}

/// A product with everything that belongs to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub row: ProductRow,
    pub options: Vec<ProductOption>,
    pub details: Details,
    pub variants: Vec<Variant>,
    pub translations: Vec<Translation>,
}

/// A product's visible text in one language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Text {
    pub title: String,
    pub body: String,
    pub seo_title: String,
    pub seo_description: String,
}

impl Product {
    /// Tags, trimmed, without empties.
    pub fn tags(&self) -> Vec<String> {
        split_tags(&self.row.tags)
    }

    /// Text in `locale`, field by field falling back to the product's own (the shop's default
    /// language).
    pub fn text(&self, locale: Locale) -> Text {
        let own = Text {
            title: self.row.title.clone(),
            body: self.row.body.clone(),
            seo_title: self.row.seo_title.clone(),
            seo_description: self.row.seo_description.clone(),
        };
        let Some(t) = self.translations.iter().find(|t| t.locale == locale.tag()) else {
            return own;
        };
        let pick = |a: &str, b: String| {
            if a.trim().is_empty() {
                b
            } else {
                a.to_string()
            }
        };
        Text {
            title: pick(&t.title, own.title),
            body: pick(&t.body, own.body),
            seo_title: pick(&t.seo_title, own.seo_title),
            seo_description: pick(&t.seo_description, own.seo_description),
        }
    }

    /// Option names in `locale` (each falls back to the default language's).
    pub fn option_names(&self, locale: Locale) -> Vec<String> {
        let t = self.translations.iter().find(|t| t.locale == locale.tag());
        self.options
            .iter()
            .enumerate()
            .map(|(i, o)| {
                t.and_then(|t| t.options.get(i))
                    .filter(|n| !n.is_empty())
                    .unwrap_or(&o.name)
                    .clone()
            })
            .collect()
    }

    /// A variant's title ("M / White") in `locale` (each value falls back to its own).
    pub fn variant_title(&self, v: &Variant, locale: Locale) -> String {
        let t = self.translations.iter().find(|t| t.locale == locale.tag());
        [&v.row.option1, &v.row.option2, &v.row.option3]
            .into_iter()
            .filter(|x| !x.is_empty())
            .map(|x| {
                t.and_then(|t| t.values.get(x.as_str()))
                    .unwrap_or(x)
                    .clone()
            })
            .collect::<Vec<_>>()
            .join(" / ")
    }

    /// Visible to visitors at `now`.
    pub fn visible(&self, now: i64) -> bool {
        self.row.status == "active" && self.row.publish_at.is_none_or(|t| t <= now)
    }

    /// Lowest price in `currency` over the variants.
    pub fn min_price(&self, currency: &str) -> Option<i64> {
        self.variants
            .iter()
            .filter_map(|v| v.price(currency).map(|p| p.amount))
            .min()
    }

    /// Some variant can be bought.
    pub fn available(&self) -> bool {
        self.variants.iter().any(Variant::available)
    }

    /// Stock over tracked variants (None when nothing is tracked).
    pub fn stock(&self) -> Option<i64> {
        let tracked: Vec<i64> = self
            .variants
            .iter()
            .filter(|v| v.row.track_inventory == 1)
            .map(|v| v.row.inventory_quantity)
            .collect();
        (!tracked.is_empty()).then(|| tracked.iter().sum())
    }
}

/// Tags from a comma-separated string (ASCII or full-width commas), trimmed, unique, in order.
pub fn split_tags(s: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    s.split([',', '，'])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .filter(|t| seen.insert(t.to_lowercase()))
        .map(str::to_string)
        .collect()
}

/// A handle made from a title: lowercase letters and digits of any script, words joined by `-`.
pub fn slugify(title: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c);
        } else {
            dash = true;
        }
        if out.chars().count() >= 80 {
            break;
        }
    }
    out
}

pub(crate) fn valid_handle(h: &str) -> bool {
    let n = h.chars().count();
    (1..=120).contains(&n)
        && !h.starts_with('-')
        && !h.ends_with('-')
        && !h.contains("--")
        && h.chars()
            .all(|c| c == '-' || (c.is_alphanumeric() && !c.is_uppercase()))
}

pub(crate) fn text(raw: &str, max: usize, field: &'static str) -> DomainResult<String> {
    let s = raw.trim();
    if s.chars().count() > max || s.chars().any(|c| c.is_control()) {
        return Err(DomainError::invalid(field, "catalog.field_invalid"));
    }
    Ok(s.to_string())
}

pub(crate) fn long_text(raw: &str, max: usize, field: &'static str) -> DomainResult<String> {
    if raw.chars().count() > max
        || raw
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(DomainError::invalid(field, "catalog.field_invalid"));
    }
    Ok(raw.replace("\r\n", "\n").trim().to_string())
}

/// A validated product, ready to store.
struct Checked {
    title: String,
    body: String,
    handle: String,
    status: String,
    vendor: String,
    product_type: String,
    tags: String,
    seo_title: String,
    seo_description: String,
    options: Vec<ProductOption>,
    details: Details,
    variants: Vec<VariantInput>,
    translations: Vec<Translation>,
}

impl Checked {
    /// The product row these fields make.
    fn row(
        &self,
        id: i64,
        handle: &str,
        input: &ProductInput,
        created_at: i64,
        now: i64,
    ) -> ProductRow {
        ProductRow {
            id,
            handle: handle.to_string(),
            kind: input.kind.as_str().into(),
            status: self.status.clone(),
            title: self.title.clone(),
            body: self.body.clone(),
            vendor: self.vendor.clone(),
            product_type: self.product_type.clone(),
            tags: self.tags.clone(),
            options: serde_json::to_string(&self.options).expect("serialisable"),
            seo_title: self.seo_title.clone(),
            seo_description: self.seo_description.clone(),
            publish_at: input.publish_at,
            details: serde_json::to_string(&self.details).expect("serialisable"),
            created_at,
            updated_at: now,
        }
    }
}

/// Check a product with the rules `create` and `update` apply, writing nothing (the import's
/// preview).
pub fn validate(p: &ProductInput, shop_currency: &str) -> DomainResult<()> {
    check(p, shop_currency).map(|_| ())
}

fn check(p: &ProductInput, shop_currency: &str) -> DomainResult<Checked> {
    let title = text(&p.title, 255, "title")?;
    if title.is_empty() {
        return Err(DomainError::invalid("title", "catalog.title_required"));
    }
    let body = long_text(&p.body, 65_536, "body")?;
    let handle = p.handle.trim().to_lowercase();
    if !handle.is_empty() && !valid_handle(&handle) {
        return Err(DomainError::invalid("handle", "catalog.handle_invalid"));
    }
    if !STATUSES.contains(&p.status.as_str()) {
        return Err(DomainError::invalid("status", "catalog.status_invalid"));
    }
    let vendor = text(&p.vendor, 120, "vendor")?;
    let product_type = text(&p.product_type, 120, "product_type")?;
    let tags = split_tags(&text(&p.tags, 1000, "tags")?);
    if tags.iter().any(|t| t.chars().count() > 60) || tags.len() > 50 {
        return Err(DomainError::invalid("tags", "catalog.field_invalid"));
    }
    let seo_title = text(&p.seo_title, 120, "seo_title")?;
    let seo_description = text(&p.seo_description, 320, "seo_description")?;

    // Options: names unique; every variant has one non-empty value per option; combinations unique.
    let names: Vec<String> = p
        .options
        .iter()
        .map(|n| text(n, 60, "options"))
        .collect::<DomainResult<_>>()?;
    let names: Vec<String> = names.into_iter().filter(|n| !n.is_empty()).collect();
    if names.len() > MAX_OPTIONS {
        return Err(DomainError::invalid("options", "catalog.too_many_options"));
    }
    let lower: HashSet<String> = names.iter().map(|n| n.to_lowercase()).collect();
    if lower.len() != names.len() {
        return Err(DomainError::invalid("options", "catalog.option_duplicate"));
    }
    if p.variants.is_empty() {
        return Err(DomainError::invalid("variants", "catalog.variant_required"));
    }
    if p.variants.len() > MAX_VARIANTS {
        return Err(DomainError::invalid(
            "variants",
            "catalog.too_many_variants",
        ));
    }
    if names.is_empty() && p.variants.len() > 1 {
        return Err(DomainError::invalid("options", "catalog.options_required"));
    }
    let mut options: Vec<ProductOption> = names
        .iter()
        .map(|n| ProductOption {
            name: n.clone(),
            values: vec![],
        })
        .collect();
    let mut combos = HashSet::new();
    let mut ids = HashSet::new();
    let mut variants = Vec::with_capacity(p.variants.len());
    for v in &p.variants {
        let mut values: Vec<String> = v
            .values
            .iter()
            .map(|x| text(x, 120, "variants"))
            .collect::<DomainResult<_>>()?;
        // A form sends three value fields; the unused ones at the end are empty.
        while values.last().is_some_and(String::is_empty) {
            values.pop();
        }
        if values.len() != names.len() || values.iter().any(String::is_empty) {
            return Err(DomainError::invalid("variants", "catalog.variant_values"));
        }
        if !combos.insert(values.iter().map(|x| x.to_lowercase()).collect::<Vec<_>>()) {
            return Err(DomainError::invalid(
                "variants",
                "catalog.variant_duplicate",
            ));
        }
        if let Some(id) = v.id {
            if !ids.insert(id) {
                return Err(DomainError::invalid(
                    "variants",
                    "catalog.variant_duplicate",
                ));
            }
        }
        for (o, value) in options.iter_mut().zip(&values) {
            if !o.values.contains(value) {
                o.values.push(value.clone());
            }
        }
        let sku = text(&v.sku, 100, "sku")?;
        let barcode = text(&v.barcode, 100, "barcode")?;
        if !(0..=MAX_QUANTITY).contains(&v.grams) {
            return Err(DomainError::invalid("grams", "catalog.weight_invalid"));
        }
        if !(0..=MAX_QUANTITY).contains(&v.initial_stock) && v.id.is_none() {
            return Err(DomainError::invalid(
                "inventory",
                "catalog.quantity_invalid",
            ));
        }
        if v.cost.is_some_and(|c| !(0..=money::MAX_MINOR).contains(&c)) {
            return Err(DomainError::invalid("cost", "catalog.price_invalid"));
        }
        let mut currencies = HashSet::new();
        for pr in &v.prices {
            if money::exponent(&pr.currency).is_none() || !currencies.insert(pr.currency.clone()) {
                return Err(DomainError::invalid(
                    "currency",
                    "settings.currency_invalid",
                ));
            }
            let ok = |a: i64| (0..=money::MAX_MINOR).contains(&a);
            if !ok(pr.amount) || pr.compare_at.is_some_and(|c| !ok(c)) {
                return Err(DomainError::invalid("price", "catalog.price_invalid"));
            }
        }
        if !currencies.contains(shop_currency) {
            return Err(DomainError::invalid("price", "catalog.price_required"));
        }
        variants.push(VariantInput {
            values,
            sku,
            barcode,
            ..v.clone()
        });
    }

    let mut translations = Vec::new();
    let mut locales = HashSet::new();
    for t in &p.translations {
        let Some(l) = Locale::parse(&t.locale) else {
            return Err(DomainError::invalid("locale", "catalog.locale_invalid"));
        };
        if !locales.insert(l.tag()) {
            return Err(DomainError::invalid("locale", "catalog.locale_invalid"));
        }
        // Option names: at most one per option. Values: only for values some variant has; others
        // (a variant just removed, a mistyped value) are dropped, and the editor shows what stayed.
        if t.options.len() > options.len() {
            return Err(DomainError::invalid(
                "options",
                "catalog.option_translation_invalid",
            ));
        }
        let mut names: Vec<String> = t
            .options
            .iter()
            .map(|n| text(n, 60, "options"))
            .collect::<DomainResult<_>>()?;
        while names.last().is_some_and(String::is_empty) {
            names.pop();
        }
        let mut values = BTreeMap::new();
        for (from, to) in &t.values {
            let (from, to) = (text(from, 120, "options")?, text(to, 120, "options")?);
            if to.is_empty() {
                continue;
            }
            if options.iter().any(|o| o.values.contains(&from)) {
                values.insert(from, to);
            }
        }
        let tr = Translation {
            locale: l.tag().to_string(),
            title: text(&t.title, 255, "title")?,
            body: long_text(&t.body, 65_536, "body")?,
            seo_title: text(&t.seo_title, 120, "seo_title")?,
            seo_description: text(&t.seo_description, 320, "seo_description")?,
            options: names,
            values,
        };
        if !(tr.title.is_empty()
            && tr.body.is_empty()
            && tr.seo_title.is_empty()
            && tr.seo_description.is_empty()
            && tr.options.is_empty()
            && tr.values.is_empty())
        {
            translations.push(tr);
        }
    }
    let d = &p.details;
    if d.membership_days
        .is_some_and(|n| !(1..=36_600).contains(&n))
        || d.membership_months
            .is_some_and(|n| !(1..=1_200).contains(&n))
        || d.target_amount
            .is_some_and(|a| !(1..=money::MAX_MINOR).contains(&a))
        || d.activation_limit.is_some_and(|n| !(1..=1000).contains(&n))
        || d.license_days.is_some_and(|n| !(1..=36_600).contains(&n))
    {
        return Err(DomainError::invalid("details", "catalog.details_invalid"));
    }
    if p.kind == Kind::Membership && d.membership_days.is_none() == d.membership_months.is_none() {
        return Err(DomainError::invalid(
            "membership_days",
            "catalog.membership_days_required",
        ));
    }
    if p.kind == Kind::Crowdfunding && (d.target_amount.is_none() || d.deadline.is_none()) {
        return Err(DomainError::invalid(
            "target_amount",
            "catalog.campaign_required",
        ));
    }
    let details = Details {
        membership_days: d.membership_days.filter(|_| p.kind == Kind::Membership),
        membership_months: d.membership_months.filter(|_| p.kind == Kind::Membership),
        target_amount: d.target_amount.filter(|_| p.kind == Kind::Crowdfunding),
        deadline: d.deadline.filter(|_| p.kind == Kind::Crowdfunding),
        booking: d.booking && p.kind == Kind::Service,
        activation_limit: d.activation_limit.filter(|_| p.kind == Kind::License),
        license_days: d.license_days.filter(|_| p.kind == Kind::License),
        license_pattern: d
            .license_pattern
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty() && p.kind == Kind::License)
            .map(str::to_string),
    };
    if let Some(pattern) = &details.license_pattern {
        if !crate::license::pattern_ok(pattern) {
            return Err(DomainError::invalid(
                "license_pattern",
                "catalog.license_pattern_invalid",
            ));
        }
    }
    Ok(Checked {
        title,
        body,
        handle,
        status: p.status.clone(),
        vendor,
        product_type,
        tags: tags.join(", "),
        seo_title,
        seo_description,
        options,
        details,
        variants,
        translations,
    })
}

pub(crate) fn store_err(e: StoreError) -> DomainError {
    match e {
        StoreError::NotFound => DomainError::NotFound,
        StoreError::Conflict(_) => DomainError::Conflict {
            key: "catalog.handle_taken",
        },
        // The one CHECK a catalog write can trip: tracked stock that may not oversell below zero.
        StoreError::Check(_) => DomainError::invalid("inventory", "catalog.stock_negative"),
        e => e.into(),
    }
}

async fn shop_currency(ctx: &Ctx) -> DomainResult<String> {
    Ok(crate::settings::load(ctx).await?.currency)
}

/// Create a product; returns it as stored.
pub async fn create(ctx: &Ctx, input: &ProductInput, actor: &str) -> DomainResult<Product> {
    let c = check(input, &shop_currency(ctx).await?)?;
    if c.variants.iter().any(|v| v.id.is_some()) {
        return Err(DomainError::invalid("variants", "catalog.variant_unknown"));
    }
    let id = ctx.new_id();
    let now = ctx.now();
    let explicit = !c.handle.is_empty();
    let base = if explicit {
        c.handle.clone()
    } else {
        let s = slugify(&c.title);
        if s.is_empty() {
            format!("product-{id}")
        } else {
            s
        }
    };
    // An automatic handle takes the first free one of base, base-2, base-3, ...
    for n in 1..=50 {
        let handle = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        let row = c.row(id, &handle, input, now, now);
        let mut tx = ctx.db.begin().await?;
        match store::insert_product(&mut tx, &row).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) if !explicit => continue,
            Err(e) => return Err(store_err(e)),
        }
        store::drop_former_handle(&mut tx, &handle).await?;
        write_children(ctx, &mut tx, &row, input.kind, &c, actor).await?;
        enqueue_index(ctx, &mut tx, id).await?;
        event::record(ctx, &mut tx, event::PRODUCT_CREATED, id, &summary(&row)).await?;
        tx.commit().await.map_err(StoreError::from)?;
        changed();
        return get(ctx, id).await;
    }
    Err(DomainError::Conflict {
        key: "catalog.handle_taken",
    })
}

/// Replace a product's fields, options, variants and translations. Variants submitted with an id
/// keep it (and their stock); others are new; missing ones are deleted.
pub async fn update(
    ctx: &Ctx,
    id: i64,
    input: &ProductInput,
    actor: &str,
) -> DomainResult<Product> {
    let c = check(input, &shop_currency(ctx).await?)?;
    let old = get(ctx, id).await?;
    let known: HashSet<i64> = old.variants.iter().map(|v| v.row.id).collect();
    if c.variants
        .iter()
        .any(|v| v.id.is_some_and(|i| !known.contains(&i)))
    {
        return Err(DomainError::invalid("variants", "catalog.variant_unknown"));
    }
    let handle = if c.handle.is_empty() {
        old.row.handle.clone()
    } else {
        c.handle.clone()
    };
    let now = ctx.now();
    let row = c.row(id, &handle, input, old.row.created_at, now);
    let mut tx = ctx.db.begin().await?;
    store::update_product(&mut tx, &row)
        .await
        .map_err(store_err)?;
    if handle != old.row.handle {
        store::drop_former_handle(&mut tx, &handle).await?;
        store::keep_former_handle(&mut tx, &old.row.handle, id, now).await?;
    }
    write_children(ctx, &mut tx, &row, input.kind, &c, actor).await?;
    enqueue_index(ctx, &mut tx, id).await?;
    event::record(ctx, &mut tx, event::PRODUCT_UPDATED, id, &summary(&row)).await?;
    tx.commit().await.map_err(StoreError::from)?;
    changed();
    get(ctx, id).await
}

/// What a product event carries: enough to tell which product and what state it is in; the whole
/// product is one `GET /api/v1/products/{id}` away.
pub(crate) fn summary(row: &ProductRow) -> serde_json::Value {
    serde_json::json!({
        "id": row.id,
        "handle": row.handle,
        "title": row.title,
        "kind": row.kind,
        "status": row.status,
        "tags": row.tags,
        "updated_at": crate::clock::rfc3339(row.updated_at),
    })
}

/// Record `products/update` for a product inside `tx` (media and bulk changes use it).
pub(crate) async fn record_updated(
    ctx: &Ctx,
    tx: &mut yiren_store::Tx,
    id: i64,
) -> DomainResult<()> {
    let row = store::get_product(&mut **tx, id).await.map_err(store_err)?;
    event::record(ctx, tx, event::PRODUCT_UPDATED, id, &summary(&row)).await
}

async fn write_children(
    ctx: &Ctx,
    tx: &mut yiren_store::Tx,
    row: &ProductRow,
    kind: Kind,
    c: &Checked,
    actor: &str,
) -> DomainResult<()> {
    let now = row.updated_at;
    let mut keep = Vec::new();
    for (i, v) in c.variants.iter().enumerate() {
        let vid = v.id.unwrap_or_else(|| ctx.new_id());
        keep.push(vid);
        let value = |n: usize| v.values.get(n).cloned().unwrap_or_default();
        let vr = VariantRow {
            id: vid,
            product_id: row.id,
            position: i as i64 + 1,
            option1: value(0),
            option2: value(1),
            option3: value(2),
            sku: v.sku.clone(),
            barcode: v.barcode.clone(),
            grams: v.grams,
            requires_shipping: v.requires_shipping.unwrap_or(kind.ships()) as i64,
            cost: v.cost,
            track_inventory: v.track_inventory as i64,
            inventory_quantity: 0,
            inventory_policy: if v.continue_selling {
                "continue"
            } else {
                "deny"
            }
            .into(),
            created_at: now,
            updated_at: now,
        };
        store::put_variant(tx, &vr).await.map_err(store_err)?;
        let prices: Vec<PriceRow> = v
            .prices
            .iter()
            .map(|p| PriceRow {
                variant_id: vid,
                currency: p.currency.clone(),
                amount: p.amount,
                compare_at: p.compare_at,
            })
            .collect();
        store::put_prices(tx, vid, &prices).await?;
        if v.id.is_none() && v.initial_stock != 0 {
            let a = AdjustmentRow {
                id: ctx.new_id(),
                variant_id: vid,
                delta: v.initial_stock,
                quantity_after: 0,
                reason: "initial".into(),
                actor: actor.into(),
                created_at: now,
            };
            store::adjust_stock(tx, &a).await.map_err(store_err)?;
        }
    }
    store::delete_other_variants(tx, row.id, &keep).await?;
    let translations: Vec<TranslationRow> = c
        .translations
        .iter()
        .map(|t| TranslationRow {
            product_id: row.id,
            locale: t.locale.clone(),
            title: t.title.clone(),
            body: t.body.clone(),
            seo_title: t.seo_title.clone(),
            seo_description: t.seo_description.clone(),
            options: serde_json::to_string(&OptionText {
                names: t.options.clone(),
                values: t.values.clone(),
            })
            .expect("serialisable"),
        })
        .collect();
    store::put_translations(tx, row.id, &translations).await?;
    Ok(())
}

pub(crate) async fn enqueue_index(
    ctx: &Ctx,
    tx: &mut yiren_store::Tx,
    id: i64,
) -> DomainResult<()> {
    job::enqueue(
        ctx,
        tx,
        INDEX_KIND,
        &serde_json::json!({ "product_id": id }),
        EnqueueOptions {
            max_attempts: 10,
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

/// Delete a product (its search document goes with the same job).
pub async fn delete(ctx: &Ctx, id: i64) -> DomainResult<()> {
    let mut tx = ctx.db.begin().await?;
    let row = store::get_product(&mut *tx, id).await.map_err(store_err)?;
    crate::media::forget_files(ctx, &mut tx, id).await?;
    store::delete_product(&mut tx, id)
        .await
        .map_err(store_err)?;
    enqueue_index(ctx, &mut tx, id).await?;
    let gone = serde_json::json!({ "id": id, "handle": row.handle });
    event::record(ctx, &mut tx, event::PRODUCT_DELETED, id, &gone).await?;
    tx.commit().await.map_err(StoreError::from)?;
    changed();
    Ok(())
}

/// Set the status of several products; returns how many changed.
pub async fn set_status(ctx: &Ctx, ids: &[i64], status: &str) -> DomainResult<u64> {
    if !STATUSES.contains(&status) {
        return Err(DomainError::invalid("status", "catalog.status_invalid"));
    }
    let mut tx = ctx.db.begin().await?;
    let n = store::set_status(&mut tx, ids, status, ctx.now()).await?;
    for row in store::get_products(&mut *tx, ids).await? {
        enqueue_index(ctx, &mut tx, row.id).await?;
        event::record(ctx, &mut tx, event::PRODUCT_UPDATED, row.id, &summary(&row)).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    changed();
    Ok(n)
}

/// Add and remove tags on several products (case-insensitive match for removal).
pub async fn bulk_tags(
    ctx: &Ctx,
    ids: &[i64],
    add: &[String],
    remove: &[String],
) -> DomainResult<()> {
    if add.is_empty() && remove.is_empty() {
        return Err(DomainError::invalid("tag", "catalog.bulk_tag_required"));
    }
    if add
        .iter()
        .any(|t| t.chars().count() > 60 || t.chars().any(char::is_control))
    {
        return Err(DomainError::invalid("tag", "catalog.field_invalid"));
    }
    let gone: HashSet<String> = remove.iter().map(|t| t.to_lowercase()).collect();
    let now = ctx.now();
    let mut tx = ctx.db.begin().await?;
    for row in store::get_products(&mut *tx, ids).await? {
        let mut tags: Vec<String> = split_tags(&row.tags)
            .into_iter()
            .filter(|t| !gone.contains(&t.to_lowercase()))
            .collect();
        tags.extend(add.iter().cloned());
        let tags = split_tags(&tags.join(","));
        if tags.len() > 50 {
            return Err(DomainError::invalid("tag", "catalog.field_invalid"));
        }
        store::set_tags(&mut tx, row.id, &tags.join(", "), now).await?;
        enqueue_index(ctx, &mut tx, row.id).await?;
        record_updated(ctx, &mut tx, row.id).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    changed();
    Ok(())
}

/// How a bulk price change moves every variant's price in the shop currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceChange {
    /// Set to this amount (minor units).
    Set(i64),
    /// Add this amount (minor units, negative to lower).
    Add(i64),
    /// Change by this many hundredths of a percent (`-1000` = −10 %), rounded half up to the
    /// minor unit.
    Percent(i64),
}

impl PriceChange {
    /// Parse a percentage such as `-10`, `+12.5` or `7.25` into [`PriceChange::Percent`]: at most
    /// two decimals, from −99.99 % to +1000 %.
    pub fn percent(text: &str) -> DomainResult<PriceChange> {
        let bad = || DomainError::invalid("price_value", "catalog.percent_invalid");
        let t = text.trim().trim_end_matches('%').trim();
        let (neg, digits) = match t.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty()
            || whole.len() > 4
            || frac.len() > 2
            || !whole
                .bytes()
                .chain(frac.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let bp = whole.parse::<i64>().map_err(|_| bad())? * 100
            + format!("{frac:0<2}").parse::<i64>().map_err(|_| bad())?;
        let bp = if neg { -bp } else { bp };
        if !(-9_999..=100_000).contains(&bp) || bp == 0 {
            return Err(bad());
        }
        Ok(PriceChange::Percent(bp))
    }

    /// The new price for `amount`, or None when it would leave `0..=MAX_MINOR`.
    pub fn apply(self, amount: i64) -> Option<i64> {
        let new = match self {
            PriceChange::Set(a) => Some(a),
            PriceChange::Add(d) => amount.checked_add(d),
            PriceChange::Percent(bp) => money::mul_bps(amount, 10_000 + bp),
        }?;
        (0..=money::MAX_MINOR).contains(&new).then_some(new)
    }
}

/// Change the shop-currency price of every variant of the given products, all or none; with
/// `keep_old_as_compare_at`, a lowered price shows the old one struck through (when the variant
/// had no compare-at price, or a lower one). Returns how many variants changed.
pub async fn bulk_price(
    ctx: &Ctx,
    ids: &[i64],
    change: PriceChange,
    keep_old_as_compare_at: bool,
) -> DomainResult<u64> {
    if ids.is_empty() {
        return Err(DomainError::invalid("id", "catalog.bulk_none"));
    }
    let currency = shop_currency(ctx).await?;
    let now = ctx.now();
    let mut tx = ctx.db.begin().await?;
    let variants = store::variants(&mut *tx, ids).await?;
    let vids: Vec<i64> = variants.iter().map(|v| v.id).collect();
    let prices = store::prices(&mut *tx, &vids).await?;
    let mut changed_products = std::collections::BTreeSet::new();
    let mut n = 0;
    for v in &variants {
        let mut mine: Vec<PriceRow> = prices
            .iter()
            .filter(|p| p.variant_id == v.id)
            .cloned()
            .collect();
        let Some(p) = mine.iter_mut().find(|p| p.currency == currency) else {
            continue;
        };
        let new = change
            .apply(p.amount)
            .ok_or(DomainError::invalid("price_value", "catalog.price_invalid"))?;
        if new == p.amount {
            continue;
        }
        if keep_old_as_compare_at && new < p.amount && p.compare_at.is_none_or(|c| c < p.amount) {
            p.compare_at = Some(p.amount);
        }
        if p.compare_at.is_some_and(|c| c <= new) {
            // A compare-at price at or below the price is no discount: drop it.
            p.compare_at = None;
        }
        p.amount = new;
        store::put_prices(&mut tx, v.id, &mine).await?;
        changed_products.insert(v.product_id);
        n += 1;
    }
    for id in &changed_products {
        store::touch(&mut tx, *id, now).await?;
        enqueue_index(ctx, &mut tx, *id).await?;
        record_updated(ctx, &mut tx, *id).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    changed();
    Ok(n)
}

/// Change a variant's stock by `delta`, recording the reason and who did it.
pub async fn adjust(
    ctx: &Ctx,
    variant_id: i64,
    delta: i64,
    reason: &str,
    actor: &str,
) -> DomainResult<i64> {
    if delta == 0 || !(-MAX_QUANTITY..=MAX_QUANTITY).contains(&delta) {
        return Err(DomainError::invalid("delta", "catalog.quantity_invalid"));
    }
    let reason = text(reason, 200, "reason")?;
    if reason.is_empty() {
        return Err(DomainError::invalid("reason", "catalog.reason_required"));
    }
    let v = store::get_variant(ctx.db.read(), variant_id)
        .await
        .map_err(store_err)?;
    let mut tx = ctx.db.begin().await?;
    let a = AdjustmentRow {
        id: ctx.new_id(),
        variant_id,
        delta,
        quantity_after: 0,
        reason,
        actor: actor.chars().take(120).collect(),
        created_at: ctx.now(),
    };
    let after = store::adjust_stock(&mut tx, &a).await.map_err(store_err)?;
    if after.abs() > MAX_QUANTITY {
        return Err(DomainError::invalid("delta", "catalog.quantity_invalid"));
    }
    enqueue_index(ctx, &mut tx, v.product_id).await?;
    let what = serde_json::json!({
        "inventory_item_id": variant_id,
        "product_id": v.product_id,
        "sku": v.sku,
        "delta": delta,
        "available": after,
        "reason": a.reason,
        "actor": a.actor,
        "updated_at": crate::clock::rfc3339(a.created_at),
    });
    event::record(ctx, &mut tx, event::INVENTORY_UPDATED, variant_id, &what).await?;
    tx.commit().await.map_err(StoreError::from)?;
    changed();
    Ok(after)
}

/// The product a variant belongs to.
pub async fn variant_product(ctx: &Ctx, variant_id: i64) -> DomainResult<i64> {
    Ok(store::get_variant(ctx.db.read(), variant_id)
        .await
        .map_err(store_err)?
        .product_id)
}

/// One line of the inventory view.
#[derive(Debug, Clone, Serialize)]
pub struct StockLevel {
    pub variant_id: i64,
    pub product_id: i64,
    pub title: String,
    pub variant: String,
    pub sku: String,
    pub available: i64,
    pub continue_selling: bool,
}

/// Tracked variants for the inventory view (`query` matches product title or SKU; `at_most`
/// keeps low stock only).
pub async fn stock_levels(
    ctx: &Ctx,
    query: &str,
    at_most: Option<i64>,
    offset: i64,
    limit: i64,
) -> DomainResult<Vec<StockLevel>> {
    let query: String = query.chars().take(100).collect();
    Ok(
        store::stock_levels(ctx.db.read(), &query, at_most, offset.max(0), limit)
            .await?
            .into_iter()
            .map(|r| StockLevel {
                variant: [&r.option1, &r.option2, &r.option3]
                    .into_iter()
                    .filter(|v| !v.is_empty())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" / "),
                variant_id: r.variant_id,
                product_id: r.product_id,
                title: r.title,
                sku: r.sku,
                available: r.inventory_quantity,
                continue_selling: r.inventory_policy == "continue",
            })
            .collect(),
    )
}

/// The latest adjustments over the whole catalog, newest first.
pub async fn recent_adjustments(
    ctx: &Ctx,
    limit: i64,
) -> DomainResult<Vec<store::RecentAdjustment>> {
    Ok(store::recent_adjustments(ctx.db.read(), limit).await?)
}

/// The stock history of a product's variants, newest first.
pub async fn history(ctx: &Ctx, p: &Product, limit: i64) -> DomainResult<Vec<AdjustmentRow>> {
    let ids: Vec<i64> = p.variants.iter().map(|v| v.row.id).collect();
    Ok(store::adjustments(ctx.db.read(), &ids, limit).await?)
}

/// One product with its variants, prices and translations.
pub async fn get(ctx: &Ctx, id: i64) -> DomainResult<Product> {
    let row = store::get_product(ctx.db.read(), id)
        .await
        .map_err(store_err)?;
    Ok(assemble(ctx, vec![row]).await?.remove(0))
}

/// Several products (missing ids are left out), in the order of `ids`.
pub async fn get_many(ctx: &Ctx, ids: &[i64]) -> DomainResult<Vec<Product>> {
    let rows = store::get_products(ctx.db.read(), ids).await?;
    let mut all = assemble(ctx, rows).await?;
    let pos: BTreeMap<i64, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    all.sort_by_key(|p| pos.get(&p.row.id).copied().unwrap_or(usize::MAX));
    Ok(all)
}

/// Where a handle leads: the product, or the product's current handle when it is a former one.
pub enum Found {
    Product(Box<Product>),
    MovedTo(String),
}

/// Look a product up by handle (current, or former for a redirect).
pub async fn by_handle(ctx: &Ctx, handle: &str) -> DomainResult<Found> {
    if let Some(row) = store::by_handle(ctx.db.read(), handle).await? {
        return Ok(Found::Product(Box::new(
            assemble(ctx, vec![row]).await?.remove(0),
        )));
    }
    match store::former_handle(ctx.db.read(), handle).await? {
        Some(id) => Ok(Found::MovedTo(get(ctx, id).await?.row.handle)),
        None => Err(DomainError::NotFound),
    }
}

/// The ids of the products at `handles` (current or former), in order; refused when one is unknown.
pub async fn ids_by_handle(ctx: &Ctx, handles: &[&str]) -> DomainResult<Vec<i64>> {
    let mut ids = Vec::with_capacity(handles.len());
    for h in handles {
        let id = match store::by_handle(ctx.db.read(), h).await? {
            Some(row) => Some(row.id),
            None => store::former_handle(ctx.db.read(), h).await?,
        };
        ids.push(id.ok_or(DomainError::invalid("products", "catalog.product_unknown"))?);
    }
    Ok(ids)
}

/// A page of products for staff.
pub async fn list(
    ctx: &Ctx,
    f: &ProductFilter,
    before_id: i64,
    limit: i64,
) -> DomainResult<Vec<Product>> {
    let rows = store::list_products(ctx.db.read(), f, before_id, limit.clamp(1, 250)).await?;
    assemble(ctx, rows).await
}

/// How many products match.
pub async fn count(ctx: &Ctx, f: &ProductFilter) -> DomainResult<i64> {
    Ok(store::count_products(ctx.db.read(), f).await?)
}

/// Products a visitor sees on the home page, newest first.
pub async fn visible(ctx: &Ctx, limit: i64) -> DomainResult<Vec<Product>> {
    let rows = store::visible_products(ctx.db.read(), ctx.now(), limit).await?;
    assemble(ctx, rows).await
}

async fn assemble(ctx: &Ctx, rows: Vec<ProductRow>) -> DomainResult<Vec<Product>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let variants = store::variants(ctx.db.read(), &ids).await?;
    let vids: Vec<i64> = variants.iter().map(|v| v.id).collect();
    let mut prices: BTreeMap<i64, Vec<Price>> = BTreeMap::new();
    for p in store::prices(ctx.db.read(), &vids).await? {
        prices.entry(p.variant_id).or_default().push(Price {
            currency: p.currency,
            amount: p.amount,
            compare_at: p.compare_at,
        });
    }
    let mut by_product: BTreeMap<i64, Vec<Variant>> = BTreeMap::new();
    for v in variants {
        let ps = prices.remove(&v.id).unwrap_or_default();
        by_product
            .entry(v.product_id)
            .or_default()
            .push(Variant { row: v, prices: ps });
    }
    let mut trs: BTreeMap<i64, Vec<Translation>> = BTreeMap::new();
    for t in store::translations(ctx.db.read(), &ids).await? {
        let o: OptionText = serde_json::from_str(&t.options).map_err(|e| {
            StoreError::Corrupt(format!("product {} option text: {e}", t.product_id))
        })?;
        trs.entry(t.product_id).or_default().push(Translation {
            locale: t.locale,
            title: t.title,
            body: t.body,
            seo_title: t.seo_title,
            seo_description: t.seo_description,
            options: o.names,
            values: o.values,
        });
    }
    rows.into_iter()
        .map(|row| {
            let options = serde_json::from_str(&row.options)
                .map_err(|e| StoreError::Corrupt(format!("product {} options: {e}", row.id)))?;
            let details = serde_json::from_str(&row.details)
                .map_err(|e| StoreError::Corrupt(format!("product {} details: {e}", row.id)))?;
            Ok(Product {
                variants: by_product.remove(&row.id).unwrap_or_default(),
                translations: trs.remove(&row.id).unwrap_or_default(),
                options,
                details,
                row,
            })
        })
        .collect()
}

/// Ids of every product, in pages (for `yiren reindex`).
pub async fn all_ids(ctx: &Ctx, after: i64, limit: i64) -> DomainResult<Vec<i64>> {
    Ok(store::product_ids(ctx.db.read(), after, limit).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles() {
        assert_eq!(slugify("Linen Shirt — Blue!"), "linen-shirt-blue");
        assert_eq!(slugify("手工 茶杯 No.2"), "手工-茶杯-no-2");
        assert_eq!(slugify("!!!"), "");
        assert!(valid_handle("linen-shirt"));
        assert!(valid_handle("手工茶杯"));
        for bad in ["", "-a", "a-", "a--b", "A", "a b", "a/b", "a?b"] {
            assert!(!valid_handle(bad), "{bad}");
        }
    }

    #[test]
    fn tags_are_trimmed_and_unique() {
        assert_eq!(
            split_tags(" 新品，Sale, sale ,, 茶 "),
            vec!["新品", "Sale", "茶"]
        );
    }

    #[test]
    fn bulk_price_changes_are_exact_integers() {
        let pct = |t: &str| PriceChange::percent(t).unwrap();
        assert_eq!(pct("-10"), PriceChange::Percent(-1000));
        assert_eq!(pct("+12.5%"), PriceChange::Percent(1250));
        assert_eq!(pct("7.25"), PriceChange::Percent(725));
        for bad in ["", "0", "abc", "-100", "1.234", "1e3", "--5", "10001", "."] {
            assert!(PriceChange::percent(bad).is_err(), "{bad}");
        }
        // 329.00 − 10 % = 296.10; 0.05 − 50 % = 0.025 → 0.03 (half up); 3 × 33.33 % rounds.
        assert_eq!(pct("-10").apply(32900), Some(29610));
        assert_eq!(pct("-50").apply(5), Some(3));
        assert_eq!(pct("-50").apply(4), Some(2));
        assert_eq!(pct("33.33").apply(300), Some(400));
        assert_eq!(PriceChange::Add(-100).apply(99), None, "never below zero");
        assert_eq!(PriceChange::Add(1).apply(money::MAX_MINOR), None);
        assert_eq!(pct("1000").apply(money::MAX_MINOR), None, "no overflow");
        assert_eq!(PriceChange::Set(1500).apply(32900), Some(1500));
    }
}
